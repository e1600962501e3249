//! The vocabulary of a store version's changes, as the owner of the data hands them to a
//! write ([`super::Write::edit`]).
//!
//! Design note: instances sharing one store must serve the same bytes for the same version.
//! So the owner of the data (`zone_sync`) gives the zone, for each version of the store in order,
//! its edits in one [`super::Write`] committed at the serial of that version, with the
//! signing epoch the store holds; the commit makes them one step (one journal entry), and a
//! load from a snapshot of the store is a write of every name at its version's serial. The
//! zone holds no counter of its own to order writes: the owner's versions are the order.

use super::Zone;

/// One change of a version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edit {
    /// A subdomain's TXT values, oldest first (registering it if new; none: NODATA).
    Txt {
        /// The subdomain label.
        subdomain: String,
        /// Its values.
        values: Vec<String>,
    },
    /// A subdomain is gone.
    Remove(String),
    /// The values of the API's own ACME challenge.
    OwnChallenge(Vec<String>),
}

impl Zone {
    /// The first registered subdomain label that `matches` accepts (for a removal logged by a
    /// digest of the label; a scan under the read lock, which queries share).
    pub(crate) fn find_subdomain(&self, matches: impl Fn(&str) -> bool) -> Option<String> {
        let state = self.read();
        state
            .dynamic
            .keys()
            .filter_map(|k| std::str::from_utf8(k).ok())
            .find(|l| matches(l))
            .map(str::to_owned)
    }
}
