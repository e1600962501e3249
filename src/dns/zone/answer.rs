//! Answering a query from the zone: answers, referrals, NODATA and NXDOMAIN with their proofs.
//!
//! Design note: the query path takes the read lock once, copies pre-rendered records into the
//! response and allocates nothing of its own (the NXDOMAIN proofs sit in a fixed array).

use super::nsec3::{Key, Nsec3Entry, nsec3_key};
use super::{Set, State, Zone};
use crate::dns::records::is_at_or_below;
use crate::dns::wire::{self, Owner, QNAME_OFFSET, Query, Rcode, Response, RrSet, Section, rtype};

/// Extended DNS Error (RFC 8914) "Prohibited" (18), pre-rendered: option 15, length 2, code.
const EDE_PROHIBITED: [u8; 6] = [0, 15, 0, 2, 0, 18];
/// Extended DNS Error (RFC 8914) "Not Authoritative" (20), pre-rendered.
const EDE_NOT_AUTHORITATIVE: [u8; 6] = [0, 15, 0, 2, 0, 20];

impl Zone {
    /// The largest response for `query` over UDP.
    pub fn udp_limit(&self, query: &Query<'_>) -> usize {
        match query.edns {
            Some(edns) => usize::from(edns.udp_size.min(self.udp_size)),
            None => 512,
        }
    }

    /// The UDP payload size our OPT records advertise.
    pub(crate) fn edns_udp_size(&self) -> u16 {
        self.udp_size
    }

    /// Writes the complete response to `query` into `out`, at most `max_len` bytes.
    pub fn answer(&self, query: &Query<'_>, max_len: usize, out: &mut Vec<u8>) {
        let mut response = Response::new(out, query, self.udp_size);
        if let Some(edns) = query.edns
            && edns.version != 0
        {
            response.set_rcode(Rcode::BadVers);
            return response.finish(max_len);
        }
        // Our name server identifier, only to a query that asks for it (RFC 5001).
        let nsid: &[u8] = if query.edns.is_some_and(|e| e.nsid) { &self.nsid_option } else { &[] };
        // A refusal says why in an Extended DNS Error (RFC 8914), so an operator reading a
        // resolver's log can tell "not served here" from a failure.
        let refuse: Option<(Rcode, &[u8])> = match query.qtype {
            _ if query.qclass != wire::CLASS_IN => Some((Rcode::Refused, &EDE_NOT_AUTHORITATIVE)),
            rtype::AXFR | rtype::IXFR => Some((Rcode::Refused, &EDE_PROHIBITED)),
            rtype::MAILA | rtype::MAILB => Some((Rcode::NotImp, &[])),
            _ => None,
        };
        if let Some((rcode, ede)) = refuse {
            response.set_rcode(rcode);
            return response.finish_with_options(max_len, &[nsid, ede]);
        }
        let mut lower = [0u8; wire::MAX_NAME_LEN];
        let len = wire::lowercase_name(query.qname, &mut lower);
        let name = &lower[..len];
        if !is_at_or_below(name, &self.apex) {
            response.set_rcode(Rcode::Refused);
            return response.finish_with_options(max_len, &[nsid, &EDE_NOT_AUTHORITATIVE]);
        }
        let dnssec = self.signer.is_some() && query.edns.is_some_and(|e| e.dnssec_ok);
        let ctx = Context {
            qtype: query.qtype,
            name,
            apex_ptr: QNAME_OFFSET + (len - self.apex.len()) as u16,
            dnssec,
        };
        let state = self.read();
        self.answer_in_zone(&state, &ctx, &mut response);
        drop(state);
        response.finish_with_options(max_len, &[nsid]);
    }

    /// Appends a set (and its signatures when asked for).
    fn push_set(response: &mut Response<'_>, section: Section, owner: Owner<'_>, set: &Set, dnssec: bool) {
        response.push_all(section, owner, &set.records);
        if dnssec {
            response.push_all(section, owner, &set.sigs);
        }
    }

    /// Appends the NSEC3 record of `hash` (and its signature) to the authority section.
    fn push_nsec3(&self, state: &State, ctx: &Context<'_>, response: &mut Response<'_>, hash: &Key) {
        if let Some(entry) = state.nsec3.get(hash) {
            Self::push_nsec3_entry(ctx, response, *hash, entry);
        }
    }

    /// Appends one NSEC3 record (of link `hash`) and its signature to the authority section.
    fn push_nsec3_entry(ctx: &Context<'_>, response: &mut Response<'_>, hash: Key, entry: &Nsec3Entry) {
        let label = hash.label();
        Self::push_set(response, Section::Authority, Owner::Prefixed(&label, ctx.apex_ptr), &entry.set, true);
    }

    /// The NSEC3 entry covering `hash` (the greatest one below it, circularly), found with one
    /// walk of the tree.
    fn covering<'s>(state: &'s State, hash: &Key) -> Option<(&'s Key, &'s Nsec3Entry)> {
        state.nsec3.range(..*hash).next_back().or_else(|| state.nsec3.iter().next_back())
    }

    /// Appends the SOA for a negative answer, and for a signed one the proof of `kind`.
    fn push_negative(&self, state: &State, ctx: &Context<'_>, response: &mut Response<'_>, nxdomain: bool) {
        let apex_owner = Owner::Pointer(ctx.apex_ptr);
        response.push_all(Section::Authority, apex_owner, &state.soa_negative);
        if !ctx.dnssec {
            return;
        }
        if let Some(apex) = state.nodes.get(&self.apex)
            && let Some(soa) = apex.get(rtype::SOA)
        {
            // The SOA goes out with the negative TTL here, so its signature must too (RFC 4034
            // section 3); the signature's original TTL field stays the SOA's own TTL.
            let ttl = self.soa_ttl.min(self.negative_ttl);
            response.push_all_with_ttl(Section::Authority, apex_owner, &soa.sigs, ttl);
        }
        if !nxdomain {
            self.push_nsec3(state, ctx, response, &nsec3_key(ctx.name));
            return;
        }
        // Closest encloser proof (RFC 5155 section 7.2.1) plus the wildcard's non-existence.
        let mut encloser = ctx.name;
        let mut next_closer = ctx.name;
        while encloser.len() > self.apex.len() {
            next_closer = encloser;
            encloser = &encloser[1 + usize::from(encloser[0])..];
            if self.exists(state, encloser) {
                break;
            }
        }
        let (encloser_hash, wildcard_hash) = if encloser.len() == self.apex.len() {
            self.apex_hashes
        } else {
            let mut wildcard = Vec::with_capacity(encloser.len() + 2);
            wildcard.extend_from_slice(b"\x01*");
            wildcard.extend_from_slice(encloser);
            (nsec3_key(encloser), nsec3_key(&wildcard))
        };
        // At most three proofs, each found with one walk of the tree; a fixed array keeps the
        // query path free of allocation. One record may serve twice: send it once.
        let mut proofs: [Option<(&Key, &Nsec3Entry)>; 3] = [None; 3];
        proofs[0] = state.nsec3.get_key_value(&encloser_hash);
        proofs[1] = Self::covering(state, &nsec3_key(next_closer));
        proofs[2] = Self::covering(state, &wildcard_hash);
        for i in 0..proofs.len() {
            if let Some((key, entry)) = proofs[i]
                && !proofs[..i].iter().flatten().any(|(k, _)| *k == key)
            {
                Self::push_nsec3_entry(ctx, response, *key, entry);
            }
        }
    }

    /// Whether `name` (at or below the apex) exists in the zone.
    fn exists(&self, state: &State, name: &[u8]) -> bool {
        if state.nodes.contains_key(name) {
            return true;
        }
        let label_len = usize::from(name[0]);
        1 + label_len + self.apex.len() == name.len() && state.dynamic.contains_key(&name[1..=label_len])
    }

    /// Fills in a response for a name at or below the apex.
    fn answer_in_zone(&self, state: &State, ctx: &Context<'_>, response: &mut Response<'_>) {
        let here = Owner::Pointer(QNAME_OFFSET);
        let (qtype, name) = (ctx.qtype, ctx.name);
        if let Some(cut) = self.cut_at_or_above(name)
            && !(name == cut.name && qtype == rtype::DS)
        {
            let cut_ptr = QNAME_OFFSET + (name.len() - cut.name.len()) as u16;
            response.push_all(Section::Authority, Owner::Pointer(cut_ptr), &cut.ns);
            if ctx.dnssec {
                // No DS at the cut: prove it, so validators accept the insecure delegation.
                self.push_nsec3(state, ctx, response, &nsec3_key(&cut.name));
            }
            for (owner, set) in &cut.glue {
                response.push_all(Section::Additional, Owner::Name(owner), set);
            }
            return;
        }
        response.set_authoritative(true);
        if let Some(node) = state.nodes.get(name) {
            if qtype == rtype::RRSIG {
                return self.answer_signatures(state, ctx, response, &node.sets);
            }
            let set = match qtype {
                rtype::ANY => node.sets.first(),
                _ => node.get(qtype).or_else(|| node.get(rtype::CNAME)),
            };
            match set {
                Some(set) => {
                    Self::push_set(response, Section::Answer, here, set, ctx.dnssec);
                    if qtype == rtype::NS && name == self.apex.as_slice() {
                        self.push_ns_addresses(state, ctx, response, &set.records);
                    }
                }
                None => self.push_negative(state, ctx, response, false),
            }
            return;
        }
        // A registered subdomain is exactly one label below the apex.
        let label_len = usize::from(name[0]);
        if 1 + label_len + self.apex.len() == name.len()
            && let Some(entry) = state.dynamic.get(&name[1..=label_len])
        {
            if qtype == rtype::RRSIG {
                self.answer_signatures(state, ctx, response, std::slice::from_ref(&entry.set));
            } else if qtype == rtype::ANY || entry.set.records.type_and_ttl().is_some_and(|(t, _)| t == qtype)
            {
                // The name's one set: its TXT values, or the marker of a name without any
                // (what a secondary holding the transferred zone answers too).
                Self::push_set(response, Section::Answer, here, &entry.set, ctx.dnssec);
            } else {
                self.push_negative(state, ctx, response, false);
            }
            return;
        }
        response.set_rcode(Rcode::NxDomain);
        self.push_negative(state, ctx, response, true);
    }

    /// Answers a query for type RRSIG with every signature at the name, as Knot does: the
    /// name's NSEC3 bitmap lists RRSIG, so a NODATA would contradict its own proof (RFC 5155
    /// section 8.5). Signatures are the data asked for, so they are sent without DO too.
    fn answer_signatures(&self, state: &State, ctx: &Context<'_>, response: &mut Response<'_>, sets: &[Set]) {
        let mut any = false;
        for set in sets.iter().filter(|set| !set.sigs.is_empty()) {
            response.push_all(Section::Answer, Owner::Pointer(QNAME_OFFSET), &set.sigs);
            any = true;
        }
        if !any {
            self.push_negative(state, ctx, response, false);
        }
    }

    /// Adds the addresses of the in-zone name servers to an answer for the apex NS, as Knot
    /// and BIND do, which saves every resolver a query. They are a courtesy: when the answer
    /// does not fit they are left out rather than the answer truncated.
    fn push_ns_addresses(&self, state: &State, ctx: &Context<'_>, response: &mut Response<'_>, ns: &RrSet) {
        response.mark_optional();
        for target in ns.rdatas() {
            // Only names we are authoritative for: not outside the zone, not below a cut.
            if !is_at_or_below(target, &self.apex) || self.cut_at_or_above(target).is_some() {
                continue;
            }
            let Some(node) = state.nodes.get(target) else { continue };
            let owner = Owner::Prefixed(&target[..target.len() - self.apex.len()], ctx.apex_ptr);
            for kind in [rtype::A, rtype::AAAA] {
                if let Some(set) = node.get(kind) {
                    Self::push_set(response, Section::Additional, owner, set, ctx.dnssec);
                }
            }
        }
    }
}

/// What the answer functions need to know about the query.
struct Context<'a> {
    /// Query type.
    qtype: u16,
    /// Lower-case query name.
    name: &'a [u8],
    /// Offset of the apex inside the question, for compression.
    apex_ptr: u16,
    /// Whether to add signatures and denial proofs.
    dnssec: bool,
}
