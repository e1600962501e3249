//! The zone's keys from the store: the first key, the configured algorithm held to the active
//! key, and the key set of a version turned into what the zone signs with.
//!
//! Design note: the store says which keys the zone uses and what each does (`store::keys`);
//! this instance adds only what is its own: the DNSKEY TTL and whether CDS is published
//! (`[dnssec] cds`). The private keys are read by id whenever a key set is applied (a handful
//! of rows, at each rollover step), so no key is held here besides the zone's.

use crate::dns::dnssec::{Algorithm, KeyPolicy, KeySet, Roles, SigningKey, ZoneKey};
use crate::privacy::Secret;
use crate::store::keys::{KeyRow, Rollover, RolloverKind};
use crate::store::{Store, StoreError};

/// Why the zone's signing keys could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The key could not be made, or the stored one not read.
    #[error("{0}")]
    Make(#[from] crate::dns::dnssec::KeyError),
    /// The database holds no active signing key (not even right after storing the first).
    #[error("the database holds no active signing key")]
    NoActiveKey,
    /// The configuration names another algorithm than the key the zone is signed with. Making
    /// a key of the new algorithm and serving it alone would make the zone bogus at every
    /// validator until the parent's DS names it and its old DS has expired from caches.
    #[error(
        "dnssec.algorithm is {configured}, but the zone is signed with a {active} key. Switching keys \
         at a start would make the zone bogus at every validating resolver (and so fail every CA's \
         challenge check) until the parent's DS names the new key. To change the algorithm, keep \
         dnssec.algorithm = \"{active}\" and run `acme-delegate dnssec rollover --algorithm \
         {configured}`, then set dnssec.algorithm = \"{configured}\" once `acme-delegate dnssec \
         status` shows it done (if that rollover just ended, only the setting is left to change)"
    )]
    AlgorithmChanged {
        /// The configured algorithm, as the configuration spells it.
        configured: String,
        /// The active key's algorithm (its name, or its number when unknown).
        active: String,
    },
    /// The store names a key the zone cannot use.
    #[error("the key set of the database is unusable: {0}")]
    BadSet(String),
}

/// An algorithm as the configuration spells it.
pub(crate) fn algorithm_name(number: u8) -> String {
    Algorithm::from_number(number)
        .map_or_else(|| format!("algorithm {number}"), |a| a.name().to_ascii_lowercase())
}

/// The active key: the one in state `active` (the parent's key, or the one it moves to),
/// which is in DNSKEY and signs the zone data; exactly one at any step of a rollover.
pub(crate) fn active(rows: &[KeyRow]) -> Option<&KeyRow> {
    rows.iter().rev().find(|k| k.state == "active" && k.roles.contains('D') && k.roles.contains('Z'))
}

/// Reads the keys, making and storing the first one on first use; refuses a configured
/// algorithm that differs from the active key's (either key's during an algorithm rollover).
///
/// Returns every key, oldest first, and the rollover row.
pub async fn signing_keys(
    store: &Store,
    algorithm: Algorithm,
) -> Result<(Vec<KeyRow>, Option<Rollover>), KeyError> {
    let mut rows = store.dnssec_keys().await?;
    if active(&rows).is_none() {
        let pkcs8 = SigningKey::generate(algorithm)?;
        store.add_first_dnssec_key(algorithm.number(), Secret::new(pkcs8)).await?;
        tracing::info!("made a new {} signing key", algorithm.name());
        rows = store.dnssec_keys().await?;
    }
    let active = active(&rows).ok_or(KeyError::NoActiveKey)?;
    let rollover = store.rollover().await?;
    let mut allowed = vec![active.algorithm];
    if let Some(r) = rollover.as_ref().filter(|r| !r.done && r.kind == RolloverKind::Algorithm) {
        allowed.extend(rows.iter().filter(|k| k.id == r.old_key || k.id == r.new_key).map(|k| k.algorithm));
    }
    if !allowed.contains(&algorithm.number()) {
        return Err(KeyError::AlgorithmChanged {
            configured: algorithm_name(algorithm.number()),
            active: algorithm_name(active.algorithm),
        });
    }
    Ok((rows, rollover))
}

/// Loads a stored key.
pub(crate) fn load(row: &KeyRow) -> Result<SigningKey, KeyError> {
    let algorithm = Algorithm::from_number(row.algorithm).ok_or_else(|| {
        KeyError::BadSet(format!("key {} has algorithm {}, which is not signed with", row.id, row.algorithm))
    })?;
    Ok(SigningKey::from_pkcs8(algorithm, row.pkcs8.expose())?)
}

/// The zone's key set for `set` (key ids and role letters, as a version logs them) from the
/// stored `rows`, with this instance's `policy` and `rolling` (a rollover runs).
pub(crate) fn key_set(
    rows: &[KeyRow],
    set: &[(i64, String)],
    rolling: bool,
    policy: &KeyPolicy,
) -> Result<KeySet, KeyError> {
    let mut keys = Vec::new();
    for (id, code) in set {
        let roles =
            Roles::parse(code).ok_or_else(|| KeyError::BadSet(format!("key {id} has roles {code:?}")))?;
        if !roles.is_used() && !roles.cds {
            continue;
        }
        let row =
            rows.iter().find(|k| k.id == *id).ok_or_else(|| KeyError::BadSet(format!("no key {id}")))?;
        keys.push(ZoneKey { key: load(row)?, roles });
    }
    if !keys.iter().any(|k| k.roles.dnskey && k.roles.signs_keys) || !keys.iter().any(|k| k.roles.signs_zone)
    {
        return Err(KeyError::BadSet(format!("no key would publish or sign the zone in {set:?}")));
    }
    Ok(KeySet { keys, dnskey_ttl: policy.dnskey_ttl, publish_cds: policy.cds.publishes(rolling) })
}

/// The key set the store holds now (the last version's), for a start or a resync.
pub(crate) fn current_set(
    rows: &[KeyRow],
    rollover: Option<&Rollover>,
    policy: &KeyPolicy,
) -> Result<KeySet, KeyError> {
    let set: Vec<(i64, String)> = rows.iter().map(|k| (k.id, k.roles.clone())).collect();
    key_set(rows, &set, is_rolling(rollover), policy)
}

/// Whether a rollover runs (and so CDS shows with `cds = "rollover"`): taken its first step
/// and not yet its last (the last step's version says it is over).
pub(crate) fn is_rolling(rollover: Option<&Rollover>) -> bool {
    rollover.is_some_and(|r| !r.done && r.step >= 1 && r.step < crate::zone_sync::rollover::last_step(r.kind))
}
