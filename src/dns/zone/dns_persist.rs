//! The persist names: where an account's dns-persist-01 records are served.
//!
//! Design note: an account's persistent records live at a name of their own, never in the TXT
//! RRset of its subdomain, so dns-01 values (short-lived, `txt_ttl`) and persistent records
//! (long-lived, `persist_ttl`) never share a set or a TTL. The name is derived from the
//! subdomain (`persist-<subdomain>`), which keeps one key for both in the store, the change
//! feed (a NOTIFY names the subdomain; the follower reloads both names) and the API. In the
//! zone it is a registered name like any other (`State::dynamic`): it gets its NSEC3 link,
//! signatures, journal entries and transfers through the same paths as a subdomain; only its
//! TTL differs, chosen here by the form of the label.
//!
//! Subdomains are UUIDs (36 characters; acme-dns made them the same way), so a persist label
//! is never a subdomain's and fits a DNS label (44 of 63 octets).

use super::{State, TxtEntry, Zone};

/// What a persist label starts with.
pub(super) const PREFIX: &str = "persist-";

/// The label of the persist name of `subdomain`'s account.
pub fn persist_label(subdomain: &str) -> String {
    format!("{PREFIX}{}", subdomain.to_ascii_lowercase())
}

/// Whether a lower-case label is a persist label.
pub(super) fn is_persist_label(label: &[u8]) -> bool {
    label.starts_with(PREFIX.as_bytes())
}

impl State {
    /// Adds or replaces a registered name, counting persist names (so that the count of
    /// subdomains, for `/ready` and the metrics, stays a count of accounts).
    pub(super) fn insert_dynamic(&mut self, key: Vec<u8>, entry: TxtEntry) -> Option<TxtEntry> {
        let persist = is_persist_label(&key);
        let old = self.dynamic.insert(key, entry);
        if persist && old.is_none() {
            self.persist_names += 1;
        }
        old
    }

    /// Removes a registered name, counting persist names.
    pub(super) fn remove_dynamic(&mut self, key: &[u8]) -> Option<TxtEntry> {
        let old = self.dynamic.remove(key);
        if old.is_some() && is_persist_label(key) {
            self.persist_names -= 1;
        }
        old
    }
}

impl Zone {
    /// The TTL of the TXT records at the registered name `label`.
    pub(super) fn dynamic_ttl(&self, label: &[u8]) -> u32 {
        if is_persist_label(label) { self.persist_ttl } else { self.txt_ttl }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{step, val};
    use super::*;
    use crate::dns::dnssec::{Algorithm, SigningKey};
    use crate::dns::wire::rtype;
    use crate::dns::zone::nsec3::nsec3_key;
    use crate::dns::zone::{Signer, ZoneSettings};

    /// A signed zone with `txt_ttl` 1 and `persist_ttl` 300.
    fn zone() -> Zone {
        // The shared test settings without static records.
        let settings = ZoneSettings { records: Vec::new(), ..crate::dns::zone::tests::settings() };
        let pkcs8 = SigningKey::generate(Algorithm::EcdsaP256Sha256).unwrap();
        let key = SigningKey::from_pkcs8(Algorithm::EcdsaP256Sha256, &pkcs8).unwrap();
        Zone::new(&settings, Some(Signer { key, validity: 3600, refresh: 600 })).unwrap()
    }

    #[test]
    fn a_persist_name_is_a_signed_name_with_its_own_ttl() {
        let zone = zone();
        let sub = "3f1c0000-0000-4000-8000-0000000000e2";
        let label = persist_label(sub);
        step(&zone, |w| {
            w.txt(sub, &[val("dns-01 value")]).txt(&label, &["ca.example; accounturi=acct:1"]);
        });
        let state = zone.read();
        let ttl = |l: &str| state.dynamic[l.as_bytes()].set.records.type_and_ttl();
        assert_eq!((ttl(sub), ttl(&label)), (Some((rtype::TXT, 1)), Some((rtype::TXT, 300))));
        assert!(!state.dynamic[label.as_bytes()].set.sigs.is_empty(), "signed");
        let name = zone.subdomain_name(label.as_bytes());
        assert!(state.nsec3.contains_key(&nsec3_key(&name)), "in the NSEC3 chain");
        drop(state);
        // Not a subdomain: the count of accounts stays one.
        assert_eq!(zone.subdomain_count(), 1);
        // Removed with its account: out of the chain too.
        assert_eq!(
            step(&zone, |w| {
                w.remove(&label);
            })
            .changed,
            1
        );
        assert_eq!(zone.subdomain_count(), 1);
        assert!(!zone.read().nsec3.contains_key(&nsec3_key(&name)));
    }

    #[test]
    fn labels_are_told_apart() {
        let label = persist_label("3F1C0000-0000-4000-8000-0000000000E2");
        assert_eq!(label, "persist-3f1c0000-0000-4000-8000-0000000000e2");
        assert!(label.len() <= 63);
        assert!(is_persist_label(label.as_bytes()));
        assert!(!is_persist_label(b"3f1c0000-0000-4000-8000-0000000000e2"));
    }
}
