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

use super::Zone;

/// What a persist label starts with.
const PREFIX: &str = "persist-";

/// The label of the persist name of `subdomain`'s account.
pub fn persist_label(subdomain: &str) -> String {
    format!("{PREFIX}{}", subdomain.to_ascii_lowercase())
}

/// Whether a lower-case label is a persist label.
fn is_persist_label(label: &[u8]) -> bool {
    label.starts_with(PREFIX.as_bytes())
}

impl Zone {
    /// The TTL of the TXT records at the registered name `label`.
    pub(super) fn dynamic_ttl(&self, label: &[u8]) -> u32 {
        if is_persist_label(label) { self.persist_ttl } else { self.txt_ttl }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_told_apart() {
        let label = persist_label("3F1C0000-0000-4000-8000-0000000000E2");
        assert_eq!(label, "persist-3f1c0000-0000-4000-8000-0000000000e2");
        assert!(label.len() <= 63);
        assert!(is_persist_label(label.as_bytes()));
        assert!(!is_persist_label(b"3f1c0000-0000-4000-8000-0000000000e2"));
    }
}
