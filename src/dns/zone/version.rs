//! Versioned changes: a store version's edits applied at the serial and signing epoch that the
//! owner of the data gives.
//!
//! Design note: instances sharing one store must serve the same bytes for the same version.
//! So the owner of the data (`sync`) hands the zone, for each version of the store in order,
//! its edits and its serial, and the zone applies them as one step: rendered and signed before
//! the lock, then installed and the serial moved under one write lock, so no query or transfer
//! sees part of a version at the previous serial, and the IXFR journal entry for the serial
//! holds exactly that version's changes. A resynchronisation from a snapshot
//! ([`Zone::load_version`]) and a new signing epoch ([`Zone::resign`]) end at the serial given,
//! too; a new epoch swaps every signature in and moves the serial under one write lock, while a
//! resync (start-up, or a version missing from the store's log: rare) goes in a few locked
//! steps, between which a reader may see part of it at the old serial. The older entry points (`set_txt`, `remove`, …) remain for a zone without a store; they
//! move the serial by one.

use super::{Set, Zone};

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

/// An edit made ready outside the lock.
enum Ready {
    /// A rendered (and signed) TXT entry by key.
    Txt(Vec<u8>, Set),
    /// A removal by key.
    Remove(Vec<u8>),
    /// The own challenge values and their set.
    Own(Vec<String>, Option<Set>),
}

impl Zone {
    /// Applies the edits of store version `seq` and moves the serial to `serial`, as one step.
    pub fn apply_version(&self, serial: u32, seq: u64, edits: &[Edit]) {
        let ready: Vec<Ready> = edits
            .iter()
            .map(|edit| match edit {
                Edit::Txt { subdomain, values } => {
                    let key = subdomain.to_ascii_lowercase().into_bytes();
                    // A name the zone cannot serve is not served (as if removed); see `admit`.
                    let Some(strs) = self.admit(subdomain, values.iter().map(String::as_str)) else {
                        return Ready::Remove(key);
                    };
                    // The same values keep their signatures (they would come out the same).
                    let held =
                        self.read().dynamic.get(&key).filter(|h| h.holds(&strs)).map(|h| h.set.clone());
                    let set = held.unwrap_or_else(|| self.render_txt(&key, &strs));
                    Ready::Txt(key, set)
                }
                Edit::Remove(subdomain) => Ready::Remove(subdomain.to_ascii_lowercase().into_bytes()),
                Edit::OwnChallenge(values) => {
                    let values = self.admit_own_challenge(values);
                    let set = self.render_own_challenge(&values);
                    Ready::Own(values, set)
                }
            })
            .collect();
        let mut state = self.write();
        for edit in ready {
            match edit {
                Ready::Txt(key, set) => self.install_entry(&mut state, key, seq, set),
                Ready::Remove(key) => {
                    self.remove_entry(&mut state, &key);
                }
                Ready::Own(values, set) => self.install_own_challenge(&mut state, &values, set),
            }
        }
        self.move_serial(&mut state, serial);
    }

    /// Makes the zone what a store snapshot holds (start-up, or a resync the log cannot serve):
    /// the signing epoch, every subdomain (read after `mark`, see [`Zone::replace_all`]) and the
    /// own challenge values, ending at `serial`. Returns how many subdomains changed.
    pub fn load_version<'a>(
        &self,
        mark: u64,
        serial: u32,
        epoch: u32,
        entries: impl IntoIterator<Item = (&'a str, u64, Vec<&'a str>)>,
        own_challenge: &[String],
    ) -> usize {
        // The steps below leave the serial alone; it moves once, at the end.
        self.write().hold = true;
        if epoch != self.epoch() {
            self.resign_sets(epoch, None);
        }
        let changed = self.replace_all(mark, entries);
        self.set_own_challenge(own_challenge);
        let mut state = self.write();
        state.hold = false;
        if state.serial == serial {
            if !self.has_pending_changes() {
                return changed;
            }
            // The same serial with other contents: no secondary may get a difference for it.
            self.forget_changes();
        }
        self.move_serial(&mut state, serial);
        changed
    }

    /// The first registered subdomain label that `matches` accepts (for a removal logged by a
    /// digest of the label; a scan under the read lock, which queries share).
    pub fn find_subdomain(&self, matches: impl Fn(&str) -> bool) -> Option<String> {
        let state = self.read();
        state
            .dynamic
            .keys()
            .filter_map(|k| std::str::from_utf8(k).ok())
            .find(|l| matches(l))
            .map(str::to_owned)
    }

    /// Sets the signing epoch, signs every set anew and moves the serial to `serial`.
    pub fn resign(&self, serial: u32, epoch: u32) -> usize {
        self.resign_sets(epoch, Some(serial))
    }
}
