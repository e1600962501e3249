//! The in-memory zone and the answer algorithm.
//!
//! Design note: the zone has two parts. The *static* part (apex SOA and NS, records from the
//! configuration, empty non-terminals, delegation points) is built once at start and never
//! changes, so it is read without locks. The *dynamic* part maps each registered subdomain's
//! label to its pre-rendered TXT records; it sits behind one `RwLock` that readers hold only
//! while copying a few hundred bytes into the response. Updates replace one entry, so an update
//! costs the same with ten accounts as with a million.
//!
//! Every record is stored pre-rendered (type, class, TTL, rdata) so that answering is a hash
//! lookup and a few `memcpy`s; the owner name of an answer is a compression pointer back to the
//! question. The SOA serial is the only field patched at answer time. This module knows nothing
//! of the store or the API: whoever owns the data calls [`Zone::set_txt`] and friends.
//!
//! Behaviour that differs from acme-dns on purpose (DESIGN.md section 3): exact names only,
//! names outside the zone are REFUSED, a registered name with no value answers NODATA with the
//! SOA (never NXDOMAIN), static data keeps its case, and the SOA serial moves with the zone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use super::records::{self, RecordError, StaticRecord, is_at_or_below, name_to_wire};
use super::wire::{self, Owner, QNAME_OFFSET, Query, Rcode, Response, RrSet, Section, rtype, txt_rdata};

/// What the zone is built from; `config` fills it from `[general]` and `[dns]`.
#[derive(Clone, Debug)]
pub struct ZoneSettings {
    /// Zone apex, e.g. `auth.example.org`.
    pub apex: String,
    /// SOA MNAME: the primary name server.
    pub nsname: String,
    /// SOA RNAME: the responsible mailbox in name form.
    pub nsadmin: String,
    /// Static records as zone-file lines.
    pub records: Vec<String>,
    /// TTL of the SOA record itself.
    pub soa_ttl: u32,
    /// Negative-caching TTL: SOA MINIMUM, and the TTL of the SOA in negative answers.
    pub negative_ttl: u32,
    /// TTL of the dynamic TXT records.
    pub txt_ttl: u32,
    /// TTL for static records written without one.
    pub default_ttl: u32,
    /// The UDP payload size we advertise and accept at most.
    pub udp_size: u16,
}

/// Why the zone could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    /// The apex or an SOA name is not a valid domain name.
    #[error("{field}: {source}")]
    Name {
        /// Which setting.
        field: &'static str,
        /// The underlying problem.
        source: RecordError,
    },
    /// A static record line is invalid.
    #[error("record {index} ({line:?}): {source}")]
    Record {
        /// Index in the list, from 0.
        index: usize,
        /// The line as written.
        line: String,
        /// The underlying problem.
        source: RecordError,
    },
    /// The records contradict each other.
    #[error("{0}")]
    Conflict(String),
}

/// A name in the static part and its RRsets.
#[derive(Debug, Default)]
struct Node {
    /// RRsets by type, in the order first written.
    rrsets: Vec<(u16, RrSet)>,
}

impl Node {
    /// The RRset of `rtype`, if any.
    fn get(&self, rtype: u16) -> Option<&RrSet> {
        self.rrsets.iter().find(|(t, _)| *t == rtype).map(|(_, set)| set)
    }
}

/// A delegation to another server below our apex: NS records and in-zone glue.
#[derive(Debug)]
struct Cut {
    /// Lower-case wire name of the delegation point.
    name: Vec<u8>,
    /// The NS RRset.
    ns: RrSet,
    /// Glue: owner name and its A/AAAA RRsets.
    glue: Vec<(Vec<u8>, RrSet)>,
}

/// The TXT values of one registered subdomain.
#[derive(Debug, Default)]
struct TxtEntry {
    /// Sequence of the newest value, so a late, older write never overwrites a newer one.
    seq: u64,
    /// Pre-rendered TXT records, oldest value first.
    rrset: RrSet,
}

/// The authoritative zone, shared by all DNS workers.
#[derive(Debug)]
pub struct Zone {
    /// Apex in lower-case wire form.
    apex: Vec<u8>,
    /// Static names, apex and empty non-terminals included.
    nodes: HashMap<Vec<u8>, Node>,
    /// Delegation points below the apex.
    cuts: Vec<Cut>,
    /// SOA tail with the SOA's own TTL.
    soa: Vec<u8>,
    /// SOA tail with the negative TTL, for the authority section of negative answers.
    soa_negative: Vec<u8>,
    /// Offset of the serial inside a SOA tail.
    serial_at: usize,
    /// Current SOA serial.
    serial: AtomicU32,
    /// TTL of dynamic TXT records.
    txt_ttl: u32,
    /// Largest UDP payload we send.
    udp_size: u16,
    /// Registered subdomains by lower-case label.
    dynamic: RwLock<HashMap<Vec<u8>, TxtEntry>>,
}

/// Seconds since the epoch, as a serial candidate.
fn unix_now() -> u32 {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// Builds a SOA tail (type, class, TTL, rdlength, rdata) and the serial's offset in it.
fn soa_tail(mname: &[u8], rname: &[u8], ttl: u32, minimum: u32) -> (Vec<u8>, usize) {
    let mut rdata = Vec::with_capacity(mname.len() + rname.len() + 20);
    rdata.extend_from_slice(mname);
    rdata.extend_from_slice(rname);
    let serial_in_rdata = rdata.len();
    for value in [0u32, 28_800, 7_200, 604_800, minimum] {
        rdata.extend_from_slice(&value.to_be_bytes());
    }
    let mut set = RrSet::default();
    set.add(rtype::SOA, ttl, &rdata);
    let tail = set.tails().next().map(<[u8]>::to_vec).unwrap_or_default();
    (tail, 10 + serial_in_rdata)
}

impl Zone {
    /// Builds the zone from its settings; no subdomains are registered yet.
    pub fn new(settings: &ZoneSettings) -> Result<Self, ZoneError> {
        let name = |field, text: &str| name_to_wire(text).map_err(|source| ZoneError::Name { field, source });
        let apex = name("domain", &settings.apex)?.to_ascii_lowercase();
        let mname = name("nsname", &settings.nsname)?;
        let rname = name("nsadmin", &settings.nsadmin.replacen('@', ".", 1))?;
        let (soa, serial_at) = soa_tail(&mname, &rname, settings.soa_ttl, settings.negative_ttl);
        let negative_ttl = settings.soa_ttl.min(settings.negative_ttl);
        let (soa_negative, _) = soa_tail(&mname, &rname, negative_ttl, settings.negative_ttl);

        let mut parsed: Vec<StaticRecord> = Vec::new();
        for (index, line) in settings.records.iter().enumerate() {
            let record = records::parse_record(line, &apex, settings.default_ttl)
                .map_err(|source| ZoneError::Record { index, line: line.clone(), source })?;
            parsed.push(record);
        }
        if !parsed.iter().any(|r| r.owner == apex && r.rtype == rtype::NS) {
            // A zone without apex NS is not a zone; use the SOA's name server.
            parsed.push(StaticRecord {
                owner: apex.clone(),
                rtype: rtype::NS,
                ttl: settings.default_ttl,
                rdata: mname.clone(),
            });
        }

        let mut nodes: HashMap<Vec<u8>, Node> = HashMap::new();
        nodes.insert(apex.clone(), Node::default());
        for record in &parsed {
            let node = nodes.entry(record.owner.clone()).or_default();
            match node.rrsets.iter_mut().find(|(t, _)| *t == record.rtype) {
                Some((_, set)) => set.add(record.rtype, record.ttl, &record.rdata),
                None => {
                    let mut set = RrSet::default();
                    set.add(record.rtype, record.ttl, &record.rdata);
                    node.rrsets.push((record.rtype, set));
                }
            }
            // Every name between the owner and the apex exists (empty non-terminals).
            let mut parent = record.owner.as_slice();
            while parent.len() > apex.len() {
                parent = &parent[1 + usize::from(parent[0])..];
                nodes.entry(parent.to_vec()).or_default();
            }
        }
        for (owner, node) in &nodes {
            let has_cname = node.get(rtype::CNAME).is_some();
            if has_cname && (node.rrsets.len() > 1 || *owner == apex) {
                return Err(ZoneError::Conflict(format!(
                    "CNAME at {} cannot coexist with other records",
                    records::wire_to_text(owner)
                )));
            }
        }
        let mut cuts = Vec::new();
        for (owner, node) in &nodes {
            if *owner == apex {
                continue;
            }
            if let Some(ns) = node.get(rtype::NS) {
                let mut glue = Vec::new();
                for tail in ns.tails() {
                    let target = tail[10..].to_ascii_lowercase();
                    if let Some(target_node) = nodes.get(&target) {
                        for kind in [rtype::A, rtype::AAAA] {
                            if let Some(set) = target_node.get(kind) {
                                glue.push((tail[10..].to_vec(), set.clone()));
                            }
                        }
                    }
                }
                cuts.push(Cut { name: owner.clone(), ns: ns.clone(), glue });
            }
        }
        Ok(Self {
            apex,
            nodes,
            cuts,
            soa,
            soa_negative,
            serial_at,
            serial: AtomicU32::new(unix_now()),
            txt_ttl: settings.txt_ttl,
            udp_size: settings.udp_size,
            dynamic: RwLock::new(HashMap::new()),
        })
    }

    /// The apex as dotted text without the final dot.
    pub fn apex_text(&self) -> String {
        records::wire_to_text(&self.apex).trim_end_matches('.').to_owned()
    }

    /// The current SOA serial.
    pub fn serial(&self) -> u32 {
        self.serial.load(Ordering::Relaxed)
    }

    /// Moves the serial forward: to the current time, or by one if that is not later.
    fn bump_serial(&self) {
        let now = unix_now();
        let _ = self.serial.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
            Some(if now.wrapping_sub(old) as i32 > 0 { now } else { old.wrapping_add(1) })
        });
    }

    /// Number of registered subdomains.
    pub fn subdomain_count(&self) -> usize {
        self.dynamic.read().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Renders TXT values (oldest first) into an RRset.
    fn render_txt(&self, values: &[&str]) -> RrSet {
        let mut set = RrSet::default();
        for value in values.iter().filter(|v| !v.is_empty()) {
            set.add(rtype::TXT, self.txt_ttl, &txt_rdata(value.as_bytes()));
        }
        set
    }

    /// Registers `subdomain` if new and sets its TXT values (oldest first) as of `seq`.
    ///
    /// An older `seq` than the one already held is ignored, so concurrent updates that reach
    /// the zone out of order cannot go back in time. Returns whether anything changed.
    pub fn set_txt(&self, subdomain: &str, seq: u64, values: &[&str]) -> bool {
        let key = subdomain.to_ascii_lowercase().into_bytes();
        let rrset = self.render_txt(values);
        let mut map = self.dynamic.write().unwrap_or_else(PoisonError::into_inner);
        let entry = map.entry(key).or_default();
        if seq < entry.seq {
            return false;
        }
        entry.seq = seq;
        entry.rrset = rrset;
        drop(map);
        self.bump_serial();
        true
    }

    /// Removes a subdomain; its name stops existing at once.
    pub fn remove(&self, subdomain: &str) -> bool {
        let key = subdomain.to_ascii_lowercase().into_bytes();
        let removed = self.dynamic.write().unwrap_or_else(PoisonError::into_inner).remove(&key);
        if removed.is_some() {
            self.bump_serial();
        }
        removed.is_some()
    }

    /// Replaces every subdomain at once (start-up load, resync after a lost change feed).
    pub fn replace_all<'a>(&self, entries: impl IntoIterator<Item = (&'a str, u64, Vec<&'a str>)>) {
        let mut fresh = HashMap::new();
        for (subdomain, seq, values) in entries {
            let rrset = self.render_txt(&values);
            fresh.insert(subdomain.to_ascii_lowercase().into_bytes(), TxtEntry { seq, rrset });
        }
        *self.dynamic.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        self.bump_serial();
    }

    /// The largest response for `query` over UDP.
    pub fn udp_limit(&self, query: &Query<'_>) -> usize {
        match query.edns {
            Some(edns) => usize::from(edns.udp_size.min(self.udp_size)),
            None => 512,
        }
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
        if query.qclass != wire::CLASS_IN {
            response.set_rcode(Rcode::Refused);
            return response.finish(max_len);
        }
        match query.qtype {
            rtype::AXFR | rtype::IXFR => {
                response.set_rcode(Rcode::Refused);
                return response.finish(max_len);
            }
            rtype::MAILA | rtype::MAILB => {
                response.set_rcode(Rcode::NotImp);
                return response.finish(max_len);
            }
            _ => {}
        }
        let mut lower = [0u8; wire::MAX_NAME_LEN];
        let len = wire::lowercase_name(query.qname, &mut lower);
        let name = &lower[..len];
        if !is_at_or_below(name, &self.apex) {
            response.set_rcode(Rcode::Refused);
            return response.finish(max_len);
        }
        // Offsets of names inside the question, for compression pointers.
        let apex_ptr = QNAME_OFFSET + (len - self.apex.len()) as u16;
        self.answer_in_zone(query.qtype, name, apex_ptr, &mut response);
        response.finish(max_len);
    }

    /// Fills in a response for `name` (lower-case wire), which is at or below the apex.
    fn answer_in_zone(&self, qtype: u16, name: &[u8], apex_ptr: u16, response: &mut Response<'_>) {
        let here = Owner::Pointer(QNAME_OFFSET);
        for cut in &self.cuts {
            if is_at_or_below(name, &cut.name) && !(name == cut.name && qtype == rtype::DS) {
                let cut_ptr = QNAME_OFFSET + (name.len() - cut.name.len()) as u16;
                response.push_all(Section::Authority, Owner::Pointer(cut_ptr), &cut.ns);
                for (owner, set) in &cut.glue {
                    response.push_all(Section::Additional, Owner::Name(owner), set);
                }
                return;
            }
        }
        response.set_authoritative(true);
        if let Some(node) = self.nodes.get(name) {
            let is_apex = name.len() == self.apex.len();
            if is_apex && (qtype == rtype::SOA || qtype == rtype::ANY) {
                self.push_soa(response, Section::Answer, here, false);
                return;
            }
            let set = match qtype {
                rtype::ANY => node.rrsets.first().map(|(_, set)| set),
                _ => node.get(qtype).or_else(|| node.get(rtype::CNAME)),
            };
            match set {
                Some(set) => response.push_all(Section::Answer, here, set),
                None => self.push_soa(response, Section::Authority, Owner::Pointer(apex_ptr), true),
            }
            return;
        }
        // A registered subdomain is exactly one label below the apex.
        let label_len = usize::from(name[0]);
        if 1 + label_len + self.apex.len() == name.len() {
            let map = self.dynamic.read().unwrap_or_else(PoisonError::into_inner);
            if let Some(entry) = map.get(&name[1..=label_len]) {
                if (qtype == rtype::TXT || qtype == rtype::ANY) && !entry.rrset.is_empty() {
                    response.push_all(Section::Answer, here, &entry.rrset);
                } else {
                    drop(map);
                    self.push_soa(response, Section::Authority, Owner::Pointer(apex_ptr), true);
                }
                return;
            }
        }
        response.set_rcode(Rcode::NxDomain);
        self.push_soa(response, Section::Authority, Owner::Pointer(apex_ptr), true);
    }

    /// Appends the SOA with the current serial.
    fn push_soa(&self, response: &mut Response<'_>, section: Section, owner: Owner<'_>, negative: bool) {
        let mut tail = [0u8; 10 + 2 * wire::MAX_NAME_LEN + 20];
        let template = if negative { &self.soa_negative } else { &self.soa };
        let tail = &mut tail[..template.len()];
        tail.copy_from_slice(template);
        tail[self.serial_at..self.serial_at + 4].copy_from_slice(&self.serial().to_be_bytes());
        response.push(section, owner, tail);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::wire::parse_query;

    fn settings() -> ZoneSettings {
        ZoneSettings {
            apex: "auth.example.org".into(),
            nsname: "ns1.auth.example.org".into(),
            nsadmin: "admin.example.org".into(),
            records: vec![
                "auth.example.org. A 192.0.2.1".into(),
                "ns1.auth.example.org. A 192.0.2.2".into(),
                "a.b.auth.example.org. TXT \"Mixed Case\"".into(),
                "sub.auth.example.org. NS ns.sub.auth.example.org.".into(),
                "ns.sub.auth.example.org. A 192.0.2.3".into(),
            ],
            soa_ttl: 3600,
            negative_ttl: 60,
            txt_ttl: 1,
            default_ttl: 3600,
            udp_size: 1232,
        }
    }

    fn ask(zone: &Zone, name: &str, qtype: u16) -> Vec<u8> {
        let mut m = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        m.extend(name_to_wire(name).unwrap());
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        let q = parse_query(&m).unwrap();
        let mut out = Vec::new();
        zone.answer(&q, 512, &mut out);
        out
    }

    /// (rcode, aa, ancount, nscount, arcount)
    fn summary(r: &[u8]) -> (u8, bool, u16, u16, u16) {
        let count = |i: usize| u16::from_be_bytes([r[i], r[i + 1]]);
        (r[3] & 0x0F, r[2] & 0x04 != 0, count(6), count(8), count(10))
    }

    #[test]
    fn apex_and_static() {
        let zone = Zone::new(&settings()).unwrap();
        assert_eq!(summary(&ask(&zone, "auth.example.org", rtype::SOA)), (0, true, 1, 0, 0));
        assert_eq!(summary(&ask(&zone, "AUTH.example.org", rtype::NS)), (0, true, 1, 0, 0));
        assert_eq!(summary(&ask(&zone, "auth.example.org", rtype::MX)), (0, true, 0, 1, 0));
        let r = ask(&zone, "a.b.auth.example.org", rtype::TXT);
        assert!(r.windows(10).any(|w| w == b"Mixed Case"));
        // Empty non-terminal: NODATA.
        assert_eq!(summary(&ask(&zone, "b.auth.example.org", rtype::A)), (0, true, 0, 1, 0));
        assert_eq!(summary(&ask(&zone, "nope.auth.example.org", rtype::A)), (3, true, 0, 1, 0));
        assert_eq!(summary(&ask(&zone, "example.com", rtype::A)), (5, false, 0, 0, 0));
    }

    #[test]
    fn referral_below_a_cut() {
        let zone = Zone::new(&settings()).unwrap();
        assert_eq!(summary(&ask(&zone, "x.sub.auth.example.org", rtype::A)), (0, false, 0, 1, 1));
    }

    #[test]
    fn dynamic_txt_lifecycle() {
        let zone = Zone::new(&settings()).unwrap();
        let sub = "d420c923-bbd7-4056-ab64-c3ca54c9b3cf";
        let name = format!("{sub}.auth.example.org");
        assert_eq!(summary(&ask(&zone, &name, rtype::TXT)).0, 3);
        let serial = zone.serial();
        zone.set_txt(sub, 0, &[]);
        assert!(zone.serial() != serial);
        assert_eq!(summary(&ask(&zone, &name, rtype::TXT)), (0, true, 0, 1, 0));
        assert_eq!(summary(&ask(&zone, &name, rtype::A)), (0, true, 0, 1, 0));
        zone.set_txt(sub, 2, &["one", "two"]);
        assert_eq!(summary(&ask(&zone, &name.to_uppercase(), rtype::TXT)), (0, true, 2, 0, 0));
        assert!(!zone.set_txt(sub, 1, &["stale"]));
        let r = ask(&zone, &name, rtype::TXT);
        let one = r.windows(3).position(|w| w == b"one").unwrap();
        let two = r.windows(3).position(|w| w == b"two").unwrap();
        assert!(one < two, "values in update order");
        assert_eq!(summary(&ask(&zone, &format!("x.{name}"), rtype::TXT)).0, 3);
        zone.remove(sub);
        assert_eq!(summary(&ask(&zone, &name, rtype::TXT)).0, 3);
    }

    #[test]
    fn conflicting_cname_is_refused() {
        let mut s = settings();
        s.records.push("c.auth.example.org. CNAME x.example.com.".into());
        s.records.push("c.auth.example.org. A 192.0.2.9".into());
        assert!(matches!(Zone::new(&s), Err(ZoneError::Conflict(_))));
    }
}
