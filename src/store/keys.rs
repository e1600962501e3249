//! DNSSEC keys and their rollover: the keys with what each does now, the one rollover row, and
//! the versions each instance serves.
//!
//! Design note: a key's roles (`dnssec_keys.roles`, the letters of `dns::dnssec::Roles`) are
//! what the zone does with it at the current step; a row with no roles is a key made for a
//! rollover that has not reached the zone yet, or one retired. Every change of roles is a zone
//! version whose one log row ([`KEYS`]) carries the whole key set of that version (ids and
//! roles), so each instance applies exactly that set at exactly that serial, whatever the
//! table holds by the time it reads the log; the private keys never enter the log (they are
//! read by id, and a key row never changes its key).
//!
//! The rollover row (`dnssec_rollover`, id 1) is the rollover's state: kind, step, when the
//! step was taken and at which version, when every server was seen serving it (`served_at`)
//! and when the parent's DS was seen naming the new key (`ds_at`). Every instance may try to
//! advance it; [`advance`] is a compare-and-set on the step, in the transaction that logs the
//! new key set, so two instances never both take a step, and a killed instance leaves the row
//! as it stood. `instances` holds each running instance's served version (a heartbeat): a step
//! counts as served only when every instance seen lately serves its version.

use super::common::{Conn, Lock, Row, now};
// The engines, by the names the `run!` and `atomic!` macros use.
#[cfg(feature = "postgres")]
use super::postgres;
#[cfg(feature = "sqlite")]
use super::sqlite;
use super::version::{Edits, time};
use super::{Store, StoreError};
use crate::privacy::Secret;

/// The log name of a new key set (its values: `rolling` or `steady`, then `id:roles` per key).
pub(crate) const KEYS: &str = "*keys";

/// A stored key.
#[derive(Clone, Debug)]
pub struct KeyRow {
    /// Its row id (the log names keys by it).
    pub(crate) id: i64,
    /// DNSSEC algorithm number.
    pub(crate) algorithm: u8,
    /// PKCS#8 private key.
    pub(crate) pkcs8: Secret<Vec<u8>>,
    /// When it was made (seconds since the epoch).
    pub(crate) created_at: i64,
    /// What it does now (letters of `Roles`); empty: nothing.
    pub(crate) roles: String,
    /// Its state, for people: made, published, active, retiring, retired.
    pub(crate) state: String,
    /// Since when it is in that state.
    pub(crate) since: Option<i64>,
}

/// Which rollover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RolloverKind {
    /// A new key of the same algorithm (RFC 7583 CSK rollover).
    Csk,
    /// A key of another algorithm (RFC 6781 section 4.1.4).
    Algorithm,
}

impl RolloverKind {
    /// As stored.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Csk => "csk",
            Self::Algorithm => "algorithm",
        }
    }
}

/// The rollover row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rollover {
    /// Its kind.
    pub(crate) kind: RolloverKind,
    /// The step reached (0: asked for, not taken yet).
    pub(crate) step: u32,
    /// When the step was taken (store time).
    pub(crate) since: i64,
    /// The zone version that took it.
    pub(crate) version: u64,
    /// When every server was first seen serving that version.
    pub(crate) served_at: Option<i64>,
    /// When the parent's DS was seen naming the new key alone (or `dnssec ds-seen` said so).
    pub(crate) ds_at: Option<i64>,
    /// The key rolled out.
    pub(crate) old_key: i64,
    /// The key rolled in.
    pub(crate) new_key: i64,
    /// When the rollover was asked for.
    pub(crate) started: i64,
    /// Whether it ended.
    pub(crate) done: bool,
}

/// The columns [`rollover_from`] reads, in its order.
const ROLLOVER_COLUMNS: &str =
    "kind, step, since, version, served_at, ds_at, old_key, new_key, started, done";

/// A rollover from a row of [`ROLLOVER_COLUMNS`].
fn rollover_from(row: &Row) -> Result<Rollover, StoreError> {
    let kind = match row.text(0)?.as_str() {
        "csk" => RolloverKind::Csk,
        "algorithm" => RolloverKind::Algorithm,
        other => return Err(StoreError::Backend(format!("unknown rollover kind {other:?}"))),
    };
    Ok(Rollover {
        kind,
        step: u32::try_from(row.int(1)?).unwrap_or(0),
        since: row.int(2)?,
        version: u64::try_from(row.int(3)?).unwrap_or(0),
        served_at: row.opt_int(4)?,
        ds_at: row.opt_int(5)?,
        old_key: row.int(6)?,
        new_key: row.int(7)?,
        started: row.int(8)?,
        done: row.int(9)? != 0,
    })
}

/// One key's new roles and state, for [`advance`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyChange {
    /// The key's id.
    pub(crate) id: i64,
    /// Its roles from the step on.
    pub(crate) roles: String,
    /// Its state from the step on.
    pub(crate) state: &'static str,
}

/// What [`Store::start_rollover`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum StartOutcome {
    /// Recorded: the rollover's row (step 0; a driver takes step 1).
    Started(Rollover),
    /// Refused: this rollover is running.
    Running(Rollover),
    /// Refused: no key is active to roll from.
    NoKey,
}

/// The key set as a log row's values: `rolling` or `steady`, then `id:roles` for each key
/// that has roles.
pub(crate) fn encode_key_set(rolling: bool, keys: &[(i64, String)]) -> Vec<String> {
    let head = if rolling { "rolling" } else { "steady" };
    std::iter::once(head.to_owned())
        .chain(keys.iter().filter(|(_, r)| !r.is_empty()).map(|(id, roles)| format!("{id}:{roles}")))
        .collect()
}

/// [`encode_key_set`] read back; `None` when malformed.
pub(crate) fn decode_key_set(values: &[String]) -> Option<(bool, Vec<(i64, String)>)> {
    let (head, rest) = values.split_first()?;
    let rolling = match head.as_str() {
        "rolling" => true,
        "steady" => false,
        _ => return None,
    };
    let keys = rest
        .iter()
        .map(|v| {
            let (id, roles) = v.split_once(':')?;
            Some((id.parse().ok()?, roles.to_owned()))
        })
        .collect::<Option<Vec<_>>>()?;
    Some((rolling, keys))
}

/// Every key, oldest first.
async fn keys(c: &impl Conn) -> Result<Vec<KeyRow>, StoreError> {
    let rows = c
        .query(
            "SELECT id, algorithm, private_key, created_at, roles, state, since FROM dnssec_keys ORDER BY id",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(KeyRow {
                id: r.int(0)?,
                algorithm: u8::try_from(r.int(1)?).unwrap_or(0),
                pkcs8: Secret::new(r.bytes(2)?),
                created_at: r.int(3)?,
                roles: r.text(4)?,
                state: r.text(5)?,
                since: r.opt_int(6)?,
            })
        })
        .collect()
}

/// The rollover row, if any.
async fn rollover(c: &impl Conn) -> Result<Option<Rollover>, StoreError> {
    let sql = format!("SELECT {ROLLOVER_COLUMNS} FROM dnssec_rollover WHERE id = 1");
    c.query(&sql, &[]).await?.first().map(rollover_from).transpose()
}

/// Stores `pkcs8` as the one key doing everything, unless a key has roles already.
async fn first_key(c: &impl Conn, algorithm: u8, pkcs8: &Secret<Vec<u8>>) -> Result<(), StoreError> {
    // Instances starting together would each see no key and store their own.
    c.lock(Lock::DnssecKey).await?;
    let at = now();
    c.execute(
        "INSERT INTO dnssec_keys (algorithm, private_key, created_at, roles, state, since) \
         SELECT $1, $2, $3, 'DKZC', 'active', $3 WHERE NOT EXISTS (SELECT 1 FROM dnssec_keys WHERE roles <> '')",
        &[i64::from(algorithm).into(), pkcs8.expose().as_slice().into(), at.into()],
    )
    .await?;
    Ok(())
}

/// Records a rollover to a new key (`pkcs8`, of `algorithm`) from the active key, unless one
/// is running.
async fn start(
    c: &impl Conn,
    kind: RolloverKind,
    algorithm: u8,
    pkcs8: &Secret<Vec<u8>>,
) -> Result<StartOutcome, StoreError> {
    c.lock(Lock::DnssecKey).await?;
    if let Some(running) = rollover(c).await?.filter(|r| !r.done) {
        return Ok(StartOutcome::Running(running));
    }
    // The active key (see `zone_sync::keys::active`).
    let Some(old) = keys(c)
        .await?
        .into_iter()
        .rev()
        .find(|k| k.state == "active" && k.roles.contains('Z') && k.roles.contains('D'))
    else {
        return Ok(StartOutcome::NoKey);
    };
    let at = time(c, true).await?.now;
    let rows = c
        .query(
            "INSERT INTO dnssec_keys (algorithm, private_key, created_at, roles, state, since) \
             VALUES ($1, $2, $3, '', 'made', $3) RETURNING id",
            &[i64::from(algorithm).into(), pkcs8.expose().as_slice().into(), at.into()],
        )
        .await?;
    let new = rows.first().ok_or_else(|| StoreError::Backend("the new key has no id".into()))?.int(0)?;
    c.execute("DELETE FROM dnssec_rollover", &[]).await?;
    c.execute(
        "INSERT INTO dnssec_rollover (id, kind, step, since, version, old_key, new_key, started, done) \
         VALUES (1, $1, 0, $2, 0, $3, $4, $2, 0)",
        &[kind.name().into(), at.into(), old.id.into(), new.into()],
    )
    .await?;
    Ok(StartOutcome::Started(
        rollover(c).await?.ok_or_else(|| StoreError::Backend("no rollover row".into()))?,
    ))
}

/// Takes step `to` from step `from` (compare-and-set: `None` when the row is no longer at
/// `from`, another instance took it), giving the keys their new roles and logging the
/// resulting key set as a new zone version. Returns the version.
async fn advance(
    c: &impl Conn,
    (from, to): (u32, u32),
    changes: &[KeyChange],
    rolling: bool,
) -> Result<Option<u64>, StoreError> {
    let at = time(c, true).await?.now;
    let moved = c
        .execute(
            "UPDATE dnssec_rollover SET step = $2, since = $3, served_at = NULL, ds_at = NULL \
             WHERE id = 1 AND step = $1 AND done = 0",
            &[i64::from(from).into(), i64::from(to).into(), at.into()],
        )
        .await?;
    if moved == 0 {
        return Ok(None);
    }
    for change in changes {
        c.execute(
            "UPDATE dnssec_keys SET roles = $2, state = $3, since = $4 WHERE id = $1",
            &[change.id.into(), change.roles.as_str().into(), change.state.into(), at.into()],
        )
        .await?;
    }
    let set: Vec<(i64, String)> = keys(c).await?.into_iter().map(|k| (k.id, k.roles)).collect();
    let mut edits = Edits::default();
    let version = edits.log(c, KEYS, Some(&encode_key_set(rolling, &set))).await?;
    c.execute(
        "UPDATE dnssec_rollover SET version = $1 WHERE id = 1",
        &[super::common::count(version as usize)],
    )
    .await?;
    edits.finish(c, KEYS).await?;
    Ok(Some(version))
}

/// Records when step `step` was first seen served everywhere (`served_at`) or the parent's DS
/// seen (`ds_at`); nothing if the row moved on or it was recorded before.
async fn mark(c: &impl Conn, column: Mark, step: u32, at: i64) -> Result<bool, StoreError> {
    let sql = match column {
        Mark::Served => {
            "UPDATE dnssec_rollover SET served_at = $2 WHERE id = 1 AND step = $1 AND served_at IS NULL"
        }
        Mark::Ds => "UPDATE dnssec_rollover SET ds_at = $2 WHERE id = 1 AND step = $1 AND ds_at IS NULL",
    };
    Ok(c.execute(sql, &[i64::from(step).into(), at.into()]).await? > 0)
}

/// Ends the rollover at its last step `step`; whether this call ended it.
async fn finish(c: &impl Conn, step: u32) -> Result<bool, StoreError> {
    let sql = "UPDATE dnssec_rollover SET done = 1 WHERE id = 1 AND step = $1 AND done = 0";
    Ok(c.execute(sql, &[i64::from(step).into()]).await? > 0)
}

/// Records the parent's new DS as seen (`dnssec ds-seen`), if the rollover waits for it:
/// the step it was recorded at, or `None` when no rollover is at its DS step.
async fn ds_seen(c: &impl Conn, ds_step: impl Fn(RolloverKind) -> u32) -> Result<Option<u32>, StoreError> {
    let Some(r) = rollover(c).await?.filter(|r| !r.done && r.step == ds_step(r.kind)) else {
        return Ok(None);
    };
    let at = time(c, true).await?.now;
    mark(c, Mark::Ds, r.step, at).await?;
    Ok(Some(r.step))
}

/// Which moment [`Store::mark_rollover`] records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mark {
    /// Every server serves the step.
    Served,
    /// The parent's DS names the new key alone.
    Ds,
}

/// Records that instance `id` serves `version`; returns the instances seen since `since` with
/// the version each serves.
async fn heartbeat(
    c: &impl Conn,
    id: &str,
    version: u64,
    since: i64,
) -> Result<Vec<(String, u64)>, StoreError> {
    let at = now();
    let version = super::common::count(usize::try_from(version).unwrap_or(usize::MAX));
    if c.execute(
        "UPDATE instances SET version = $2, seen_at = $3 WHERE id = $1",
        &[id.into(), version.clone(), at.into()],
    )
    .await?
        == 0
    {
        c.execute(
            "INSERT INTO instances (id, version, seen_at) VALUES ($1, $2, $3)",
            &[id.into(), version, at.into()],
        )
        .await?;
    }
    // Instances gone for a day are forgotten.
    c.execute("DELETE FROM instances WHERE seen_at < $1", &[(at - 86_400).into()]).await?;
    let rows =
        c.query("SELECT id, version FROM instances WHERE seen_at >= $1 ORDER BY id", &[since.into()]).await?;
    rows.iter().map(|r| Ok((r.text(0)?, u64::try_from(r.int(1)?).unwrap_or(0)))).collect()
}

impl Store {
    /// Every DNSSEC key, oldest first.
    pub(crate) async fn dnssec_keys(&self) -> Result<Vec<KeyRow>, StoreError> {
        read!(self, c => keys(c))
    }

    /// Stores `pkcs8` as the zone's one key unless a key is in use (instances starting together
    /// agree on one: each then reads back whichever was stored first).
    pub(crate) async fn add_first_dnssec_key(
        &self,
        algorithm: u8,
        pkcs8: Secret<Vec<u8>>,
    ) -> Result<(), StoreError> {
        atomic!(self, c => first_key(c, algorithm, &pkcs8))
    }

    /// The rollover row, if a rollover was ever asked for.
    pub(crate) async fn rollover(&self) -> Result<Option<Rollover>, StoreError> {
        read!(self, c => rollover(c))
    }

    /// Asks for a rollover of `kind` to the new key `pkcs8` of `algorithm`.
    pub(crate) async fn start_rollover(
        &self,
        kind: RolloverKind,
        algorithm: u8,
        pkcs8: Secret<Vec<u8>>,
    ) -> Result<StartOutcome, StoreError> {
        atomic!(self, c => start(c, kind, algorithm, &pkcs8))
    }

    /// Takes a rollover step (see [`advance`]); the new version, or `None` if another instance
    /// took it.
    pub(crate) async fn advance_rollover(
        &self,
        steps: (u32, u32),
        changes: Vec<KeyChange>,
        rolling: bool,
    ) -> Result<Option<u64>, StoreError> {
        atomic!(self, c => advance(c, steps, &changes, rolling))
    }

    /// Ends the rollover at its last step `step`; whether this call ended it.
    pub(crate) async fn finish_rollover(&self, step: u32) -> Result<bool, StoreError> {
        atomic!(self, c => finish(c, step))
    }

    /// Records the parent's new DS as seen if a rollover waits for it at its DS step
    /// (`ds_step` of its kind): that step, or `None`.
    pub(crate) async fn rollover_ds_seen(
        &self,
        ds_step: fn(RolloverKind) -> u32,
    ) -> Result<Option<u32>, StoreError> {
        atomic!(self, c => ds_seen(c, ds_step))
    }

    /// Records a moment of step `step` (see [`Mark`]); whether it was recorded now.
    pub(crate) async fn mark_rollover(&self, column: Mark, step: u32, at: i64) -> Result<bool, StoreError> {
        atomic!(self, c => mark(c, column, step, at))
    }

    /// Records this instance's served version; the instances seen since `since` and theirs.
    pub(crate) async fn heartbeat(
        &self,
        id: &str,
        version: u64,
        since: i64,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let id = id.to_owned();
        atomic!(self, c => heartbeat(c, &id, version, since))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_sets_round_trip_through_the_log() {
        let keys = vec![(1, "DK".to_owned()), (2, String::new()), (3, "DKZC".to_owned())];
        let values = encode_key_set(true, &keys);
        assert_eq!(values, ["rolling", "1:DK", "3:DKZC"]);
        assert_eq!(decode_key_set(&values), Some((true, vec![(1, "DK".into()), (3, "DKZC".into())])));
        assert_eq!(decode_key_set(&["steady".into()]), Some((false, vec![])));
        assert_eq!(decode_key_set(&["other".into()]), None);
        assert_eq!(decode_key_set(&["steady".into(), "x:DK".into()]), None);
    }
}
