//! Answering a query from the zone: answers, referrals, NODATA and NXDOMAIN with their proofs.
//!
//! Design note: the query path takes the read lock once, copies pre-rendered records into the
//! response and allocates nothing of its own (the NXDOMAIN proofs sit in a fixed array). What a
//! signed negative answer sends whatever the name (the SOA's signatures at the negative TTL, and
//! under the apex two of the three NSEC3 links of an NXDOMAIN proof) is kept ready in the state
//! ([`Negative`]), so such an answer hashes the name and looks up one link: this brought the
//! instructions of a signed zone's queries from 1.15x an unsigned zone's to under 1.1x.

use super::nsec3::{Key, Nsec3Entry, ReadyLink, covering, nsec3_key};
use super::{Set, State, Zone};
use crate::dns::records::is_at_or_below;
use crate::dns::wire::{self, Owner, QNAME_OFFSET, Query, Rcode, Response, RrSet, Section, rtype};

/// Extended DNS Error (RFC 8914) "Prohibited" (18), pre-rendered: option 15, length 2, code.
const EDE_PROHIBITED: [u8; 6] = [0, 15, 0, 2, 0, 18];
/// Extended DNS Error (RFC 8914) "Not Authoritative" (20), pre-rendered.
const EDE_NOT_AUTHORITATIVE: [u8; 6] = [0, 15, 0, 2, 0, 20];

/// What signed negative answers send whatever the name, kept ready in the state so that a
/// negative answer looks up and renders only what depends on the name asked for.
#[derive(Clone, Debug, Default)]
pub(super) struct Negative {
    /// The SOA's signatures with the negative TTL, as negative answers send them (RFC 4034
    /// section 3: a signature follows its set's TTL down; its original TTL field stays).
    pub(super) soa_sigs: RrSet,
    /// The apex's link (the closest encloser of a name one label below it) and the link
    /// covering `*.<apex>` (no wildcard): every NXDOMAIN under the apex sends both.
    pub(super) links: [Option<ReadyLink>; 2],
}

/// One link of an NXDOMAIN proof: its hash, its owner label when kept ready, its record.
type Proof<'s> = Option<(Key, Option<&'s [u8; 33]>, &'s Set)>;

impl Zone {
    /// Keeps [`Negative`] ready in `state`. Called by whatever finishes a state (a commit, a
    /// whole-zone load, the start) after every change to the SOA, the chain and their
    /// signatures, so that an NXDOMAIN proof costs one hash and one look-up of the chain, not
    /// three look-ups and three renderings, and no look-up of the SOA.
    pub(super) fn refresh_negative(&self, state: &mut State) {
        if self.signer.is_none() {
            return;
        }
        let ttl = self.soa_ttl.min(self.negative_ttl);
        let mut soa_sigs = RrSet::default();
        if let Some(soa) = state.nodes.get(&self.apex).and_then(|apex| apex.get(rtype::SOA)) {
            for rdata in soa.sigs.rdatas() {
                soa_sigs.add(rtype::RRSIG, ttl, rdata);
            }
        }
        let ready = |(key, entry): (&Key, &Nsec3Entry)| ReadyLink {
            key: *key,
            label: key.label(),
            set: entry.set.clone(),
        };
        let (apex, wildcard) = self.apex_hashes;
        let links = [state.nsec3.get_key_value(&apex).map(ready), covering(state, &wildcard).map(ready)];
        state.negative = Negative { soa_sigs, links };
    }

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

    /// Appends the SOA for a negative answer, and for a signed one the proof of `kind`.
    fn push_negative<'s>(
        &self,
        state: &'s State,
        ctx: &Context<'_>,
        response: &mut Response<'_>,
        nxdomain: bool,
    ) {
        let apex_owner = Owner::Pointer(ctx.apex_ptr);
        response.push_all(Section::Authority, apex_owner, &state.soa_negative);
        if !ctx.dnssec {
            return;
        }
        // The SOA goes out with the negative TTL here, and so do its signatures.
        response.push_all(Section::Authority, apex_owner, &state.negative.soa_sigs);
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
            // The apex always exists: no look-up for the usual case, a name one label below it.
            if encloser.len() == self.apex.len() || self.exists(state, encloser) {
                break;
            }
        }
        // At most three proofs: the encloser's link, the links covering the next closer name
        // and the wildcard. Under the apex the first and last are kept ready in the state (see
        // `refresh_negative`), so only the next closer name is hashed and looked up. A fixed
        // array keeps the query path free of allocation.
        let found = |hit: Option<(&'s Key, &'s Nsec3Entry)>| hit.map(|(key, entry)| (*key, None, &entry.set));
        let next_cover = found(covering(state, &nsec3_key(next_closer)));
        let proofs: [Proof<'s>; 3] = if encloser.len() == self.apex.len() {
            let ready = |link: &'s Option<ReadyLink>| link.as_ref().map(|l| (l.key, Some(&l.label), &l.set));
            [ready(&state.negative.links[0]), next_cover, ready(&state.negative.links[1])]
        } else {
            // `*.<encloser>` on the stack: it is only hashed.
            let mut wildcard = [0u8; wire::MAX_NAME_LEN + 2];
            wildcard[..2].copy_from_slice(b"\x01*");
            wildcard[2..2 + encloser.len()].copy_from_slice(encloser);
            [
                found(state.nsec3.get_key_value(&nsec3_key(encloser))),
                next_cover,
                found(covering(state, &nsec3_key(&wildcard[..2 + encloser.len()]))),
            ]
        };
        // One record may serve twice: send it once.
        for i in 0..proofs.len() {
            if let Some((key, label, set)) = proofs[i]
                && !proofs[..i].iter().flatten().any(|p| p.0 == key)
            {
                let label = label.copied().unwrap_or_else(|| key.label());
                let owner = Owner::Prefixed(&label, ctx.apex_ptr);
                Self::push_set(response, Section::Authority, owner, set, true);
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
