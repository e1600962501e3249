//! Building the zone from its settings: static records grouped into RRsets, delegations and
//! their glue found, and (when signing) the DNSSEC apex records, first signatures and chain.
//!
//! Design note: everything that can be wrong with the settings is found here, once, so that a
//! zone that was built can always answer; the rest of the zone never fails.

use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;

use super::nsec3::nsec3_key;
use super::{Cut, Node, Set, Signer, State, Zone, ZoneError, ZoneSettings, unix_now};
use crate::dns::dnssec::KeySet;
use crate::dns::records::{self, StaticRecord, is_at_or_below, name_to_wire};
use crate::dns::wire::{self, RrSet, rtype};

/// Lower-cases the domain names embedded in rdata of the types that carry them (RFC 4034
/// section 6.2), so the served data is in canonical form. Other data keeps its case.
fn canonical_rdata(rtype: u16, rdata: &[u8]) -> Vec<u8> {
    let name_from = match rtype {
        rtype::NS | rtype::CNAME | rtype::PTR => Some(0),
        rtype::MX => Some(2),
        rtype::SRV => Some(6),
        _ => None,
    };
    let mut out = rdata.to_vec();
    if let Some(from) = name_from
        && let Some(name) = out.get_mut(from..)
    {
        name.make_ascii_lowercase();
    }
    out
}

/// The checked static part of a zone: what [`Zone::new`] builds on.
struct StaticPart {
    /// Apex in lower-case wire form.
    apex: Vec<u8>,
    /// SOA MNAME and RNAME, lower-case wire form.
    soa_names: Vec<u8>,
    /// Static names and their sets (unsigned).
    nodes: HashMap<Vec<u8>, Node>,
    /// Delegation points below the apex.
    cuts: Vec<Cut>,
}

impl ZoneSettings {
    /// Finds what [`Zone::new`] would refuse (bad names, records that contradict each other),
    /// so that the configuration can refuse it first, naming the key, before anything is bound.
    pub fn check(&self) -> Result<(), ZoneError> {
        static_part(self).map(drop)
    }
}

/// Checks the names and static records of `settings` and groups the records into sets.
fn static_part(settings: &ZoneSettings) -> Result<StaticPart, ZoneError> {
    let name = |field, text: &str| name_to_wire(text).map_err(|source| ZoneError::Name { field, source });
    let apex = name("domain", &settings.apex)?.to_ascii_lowercase();
    let mut soa_names = name("nsname", &settings.nsname)?.to_ascii_lowercase();
    soa_names.extend(name("nsadmin", &settings.nsadmin.replacen('@', ".", 1))?.to_ascii_lowercase());

    let mut parsed: Vec<StaticRecord> = settings.records.clone();
    if let Some(r) = parsed.iter().find(|r| !is_at_or_below(&r.owner, &apex)) {
        // The records were parsed against another apex: settings made by hand, not by config.
        return Err(ZoneError::Conflict(format!(
            "owner {} is outside the zone",
            records::wire_to_text(&r.owner)
        )));
    }
    if !parsed.iter().any(|r| r.owner == apex && r.rtype == rtype::NS) {
        // A zone without apex NS is not a zone; use the SOA's name server.
        let mname = name("nsname", &settings.nsname)?.to_ascii_lowercase();
        parsed.push(StaticRecord {
            owner: apex.clone(),
            rtype: rtype::NS,
            ttl: settings.default_ttl,
            rdata: mname,
        });
    }
    for r in &parsed {
        if r.owner == apex && [rtype::SOA, rtype::DNSKEY, rtype::CDS, rtype::CDNSKEY].contains(&r.rtype) {
            return Err(ZoneError::Conflict(
                "SOA and DNSSEC records at the apex are made by the server".into(),
            ));
        }
    }

    // Group records into sets; one TTL per set (the smallest written), as RFC 2181 asks.
    let mut grouped: Vec<Grouped> = Vec::new();
    for r in &parsed {
        let rdata = canonical_rdata(r.rtype, &r.rdata);
        match grouped.iter_mut().find(|(o, t, _, _)| *o == r.owner && *t == r.rtype) {
            Some((_, _, ttl, rdatas)) => {
                *ttl = (*ttl).min(r.ttl);
                if !rdatas.contains(&rdata) {
                    rdatas.push(rdata);
                }
            }
            None => grouped.push((r.owner.clone(), r.rtype, r.ttl, vec![rdata])),
        }
    }
    let mut nodes: HashMap<Vec<u8>, Node> = HashMap::new();
    nodes.insert(apex.clone(), Node::default());
    for (owner, rtype, ttl, rdatas) in &grouped {
        let mut records = RrSet::default();
        for rdata in rdatas {
            records.add(*rtype, *ttl, rdata);
        }
        nodes.entry(owner.clone()).or_default().sets.push(Set { records, ..Set::default() });
        // Every name between the owner and the apex exists (empty non-terminals).
        let mut parent = owner.as_slice();
        while parent.len() > apex.len() {
            parent = &parent[1 + usize::from(parent[0])..];
            nodes.entry(parent.to_vec()).or_default();
        }
    }
    for (owner, node) in &nodes {
        if node.get(rtype::CNAME).is_some() && (node.sets.len() > 1 || *owner == apex) {
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
            for target in ns.records.rdatas() {
                if let Some(target_node) = nodes.get(target) {
                    for kind in [rtype::A, rtype::AAAA] {
                        if let Some(set) = target_node.get(kind) {
                            glue.push((target.to_vec(), set.records.clone()));
                        }
                    }
                }
            }
            cuts.push(Cut { name: owner.clone(), ns: ns.records.clone(), glue });
        }
    }
    Ok(StaticPart { apex, soa_names, nodes, cuts })
}

impl Zone {
    /// Builds the zone from its settings (signed when `signer` is given); no subdomains yet.
    pub fn new(settings: &ZoneSettings, signer: Option<Signer>) -> Result<Self, ZoneError> {
        let StaticPart { apex, soa_names, nodes, cuts } = static_part(settings)?;
        let owners = nodes.keys().chain(cuts.iter().map(|cut| &cut.name)).map(Vec::as_slice);
        let reserved = super::admit::reserved_labels(&apex, owners);
        let zone = Self {
            apex: apex.clone(),
            soa_names,
            soa_ttl: settings.soa_ttl,
            negative_ttl: settings.negative_ttl,
            txt_ttl: settings.txt_ttl,
            persist_ttl: settings.persist_ttl,
            udp_size: settings.udp_size,
            nsid_option: settings.nsid.as_deref().map(nsid_option).unwrap_or_default(),
            cuts,
            keys: RwLock::new(std::sync::Arc::new(match &signer {
                Some(signer) => KeySet::single(signer.key.clone(), settings.soa_ttl),
                None => KeySet { keys: Vec::new(), dnskey_ttl: settings.soa_ttl, publish_cds: false },
            })),
            signer,
            apex_hashes: (nsec3_key(&apex), {
                let mut wildcard = b"\x01*".to_vec();
                wildcard.extend_from_slice(&apex);
                nsec3_key(&wildcard)
            }),
            state: RwLock::new(State {
                serial: unix_now(),
                nodes,
                soa_negative: RrSet::default(),
                dynamic: HashMap::new(),
                persist_names: 0,
                nsec3: BTreeMap::new(),
                own_challenge: Vec::new(),
                negative: super::answer::Negative::default(),
            }),
            turn: std::sync::Mutex::new(()),
            history: std::sync::OnceLock::new(),
            serials: tokio::sync::watch::Sender::new(0),
            // On the hour, as the store keeps it; replaced by the store's at load.
            epoch: std::sync::atomic::AtomicU32::new(unix_now() - unix_now() % 3600),
            memo: super::memo::Memo::default(),
            reserved,
            refused: std::sync::atomic::AtomicU64::new(0),
        };
        {
            let mut state = zone.write();
            if zone.signer.is_some() {
                zone.render_apex_keys(&mut state);
                // Algorithm 1 (SHA-1), no flags, 0 extra iterations, no salt (RFC 9276).
                let mut records = RrSet::default();
                records.add(rtype::NSEC3PARAM, settings.soa_ttl, &[1, 0, 0, 0, 0]);
                state.nodes.entry(apex.clone()).or_default().sets.push(Set { records, ..Set::default() });
            }
            zone.render_soa(&mut state);
            if zone.signer.is_some() {
                let owners: Vec<Vec<u8>> = state.nodes.keys().cloned().collect();
                for owner in owners {
                    if zone.cut_at_or_above(&owner).is_some() {
                        continue;
                    }
                    let signed: Vec<Set> = state.nodes[&owner]
                        .sets
                        .iter()
                        .map(|set| {
                            if set.sigs.is_empty() {
                                zone.signed(&owner, set.records.clone())
                            } else {
                                set.clone()
                            }
                        })
                        .collect();
                    if let Some(node) = state.nodes.get_mut(&owner) {
                        node.sets = signed;
                    }
                }
                zone.rebuild_chain(&mut state);
                zone.refresh_negative(&mut state);
            }
            zone.serials.send_replace(state.serial);
        }
        Ok(zone)
    }
}

/// The NSID option (RFC 5001) carrying `id`: code, length, data. The identifier is bounded by
/// the configuration (255 bytes at most); a longer one is cut there.
fn nsid_option(id: &[u8]) -> Vec<u8> {
    let id = &id[..id.len().min(255)];
    let mut option = Vec::with_capacity(4 + id.len());
    option.extend_from_slice(&wire::OPTION_NSID.to_be_bytes());
    // Cut to 255 bytes just above, so the 16-bit length always fits.
    if wire::put_u16_prefixed(&mut option, id).is_err() {
        return Vec::new();
    }
    option
}

/// Static records grouped into a set while building: owner, type, TTL, rdatas.
type Grouped = (Vec<u8>, u16, u32, Vec<Vec<u8>>);
