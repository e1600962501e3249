//! The zone version: one store-wide counter of changes to what DNS serves, and the log of
//! what each version changed.
//!
//! Design note: instances sharing a database must serve the same zone byte for byte, so the
//! SOA serial and the signatures' validity window come from the store, not from each
//! instance's clock. One row (`zone_version`) holds the version, the serial base fixed when
//! the table was made (serial = base + version, RFC 1982 arithmetic) and the signing epoch.
//! Every write that changes what DNS serves increments the version in its own transaction
//! (`UPDATE … RETURNING`: the row lock is held until commit, so versions commit in order and a
//! rolled-back write leaves no gap, as a sequence would) and writes one `zone_log` row per name
//! it changed, holding that name's resulting TXT values (NULL: the name is gone). The log is
//! what makes every instance apply exactly the same changes at exactly the same serial: an
//! instance at version A reads the rows after A and applies them version by version, so the
//! zone at serial base + V, and the IXFR journal entry leading to it, is the same everywhere.
//! No timers wait for missing versions: the log has them all. A version missing from the log
//! (pruned, or an erased account's rows) makes the reader resynchronise from a snapshot that
//! reads the version and the contents together.
//!
//! Time for what the instances share comes from the store too ([`time`]): PostgreSQL's server
//! clock, or on SQLite the host's, there never behind the newest time the store handed out
//! before (`zone_version.clock`, recorded by each signing epoch and each check of the
//! signatures and the purge): a clock that goes back on the one host of an SQLite file does not
//! take the signing epoch or the purge's cut back with it. An epoch ahead of that time is
//! refused here, and refused by every reader (`zone_sync::clock`).
//!
//! Two names in the log are not subdomains (those are UUID labels): [`OWN_CHALLENGE`] carries
//! the API's own ACME challenge values, [`SIGN`] a new signing epoch (every instance re-signs
//! everything with it, the same way). An erased account leaves no trace of its subdomain: its
//! earlier rows go, and its removal is logged under a digest of the label ([`erased_name`]),
//! which an instance serving the label can match and nobody else can reverse (the label has
//! 122 random bits).

use super::common::{Conn, Row, Value};
use super::{Change, StoreError, TxtValues};

/// The log name of the API's own ACME challenge values.
pub(crate) const OWN_CHALLENGE: &str = "*own-challenge";
/// The log name of a new signing epoch (its one value is the epoch in decimal).
pub(crate) const SIGN: &str = "*sign";
/// The first character of the log name of an erased subdomain: `-` and the SHA-256 of the
/// label in hex (labels are UUIDs and never start with `-`).
pub(crate) const ERASED: char = '-';
/// The first character of the log name of an account's dns-persist-01 name: `+` and the
/// subdomain (the zone serves it at `dns::zone::persist_label` of the subdomain).
pub(crate) const PERSIST: char = '+';
/// Versions kept in the log behind the newest; an instance further behind resynchronises.
const KEEP_VERSIONS: i64 = 10_000;

/// The zone version as the store holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ZoneVersion {
    /// Changes made so far.
    pub version: u64,
    /// The serial of version 0, fixed when the schema was made.
    pub(crate) serial_base: u32,
    /// The signing epoch (seconds since the epoch, on the hour): signatures are valid from an
    /// hour before it for the configured validity after it.
    pub(crate) epoch: u32,
}

impl ZoneVersion {
    /// The SOA serial of `version` (RFC 1982: wraps around).
    pub(crate) fn serial_of(&self, version: u64) -> u32 {
        self.serial_base.wrapping_add(version as u32)
    }

    /// The SOA serial of this version.
    pub(crate) fn serial(&self) -> u32 {
        self.serial_of(self.version)
    }
}

/// One row of the log: what one name became at one version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// The version that changed it.
    pub version: u64,
    /// A subdomain label, [`OWN_CHALLENGE`] or [`SIGN`].
    pub name: String,
    /// Its TXT values after the change, oldest first; `None`: the name is gone.
    pub values: Option<Vec<String>>,
}

/// Everything the zone is built from, read in one consistent snapshot.
#[derive(Clone, Debug)]
pub struct ZoneSnapshot {
    /// The version the contents are at.
    pub(crate) version: ZoneVersion,
    /// Every subdomain with its values.
    pub contents: Vec<TxtValues>,
    /// The API's own ACME challenge values.
    pub(crate) own_challenge: Vec<String>,
    /// What each account's persist name serves, by subdomain.
    pub(crate) persist: Vec<TxtValues>,
}

/// The store's time, and the signing epoch it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StoreTime {
    /// Seconds since the epoch: the database's clock, or the newest time recorded if that is
    /// later (see [`time`]).
    pub(crate) now: i64,
    /// The signing epoch recorded (see [`ZoneVersion::epoch`]).
    pub(crate) epoch: u32,
}

/// The store's time: the database's clock. Instances take from it what they share (the signing
/// epoch, the purge's cut); each compares it with its own clock (`zone_sync::clock`).
///
/// On SQLite that clock is the host's, which nothing checks: there the store's time is never
/// earlier than the newest time recorded before, and `record` records it, so a clock that goes
/// back does not take the store's time back, even across restarts. PostgreSQL's clock needs no
/// such floor: every instance compares its own clock with it, and refuses while they disagree
/// (a floor would only keep them refusing after the server's clock was set right).
pub(crate) async fn time<C: Conn>(c: &C, record: bool) -> Result<StoreTime, StoreError> {
    let clock = c.clock().await?;
    let rows = c.query("SELECT clock, epoch FROM zone_version WHERE id = 1", &[]).await?;
    let row = rows.first().ok_or_else(|| StoreError::Backend("the zone_version row is missing".into()))?;
    let (recorded, epoch) = (row.int(0)?, u32_of(row.int(1)?));
    if !C::HOST_CLOCK {
        return Ok(StoreTime { now: clock, epoch });
    }
    if record && clock > recorded {
        c.execute("UPDATE zone_version SET clock = $1 WHERE id = 1 AND clock < $1", &[clock.into()]).await?;
    }
    Ok(StoreTime { now: clock.max(recorded), epoch })
}

/// A u32 column (serial base, epoch) that the schema keeps in range.
fn u32_of(v: i64) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

/// Reads the version row.
pub(crate) async fn zone_version(c: &impl Conn) -> Result<ZoneVersion, StoreError> {
    let rows = c.query("SELECT version, serial_base, epoch FROM zone_version WHERE id = 1", &[]).await?;
    let row = rows.first().ok_or_else(|| StoreError::Backend("the zone_version row is missing".into()))?;
    let int = |i: usize| match row.0.get(i) {
        Some(Value::Int(v)) => Ok(*v),
        _ => Err(StoreError::Backend(format!("zone_version column {i} is not an integer"))),
    };
    Ok(ZoneVersion {
        version: u64::try_from(int(0)?).unwrap_or(0),
        serial_base: u32_of(int(1)?),
        epoch: u32_of(int(2)?),
    })
}

/// A write that changes nothing, for `Store::ready` after a write failed for lack of space:
/// the version row rewritten as it is (a page to SQLite's WAL, a row version on PostgreSQL),
/// the one row every change of the zone writes.
pub(crate) async fn probe_write(c: &impl Conn) -> Result<(), StoreError> {
    c.execute("UPDATE zone_version SET epoch = epoch WHERE id = 1", &[]).await.map(drop)
}

/// See [`super::Store::zone_snapshot`].
pub(crate) async fn snapshot(c: &impl Conn, keep: usize) -> Result<ZoneSnapshot, StoreError> {
    c.snapshot().await?;
    Ok(ZoneSnapshot {
        version: zone_version(c).await?,
        contents: zone_contents(c, keep).await?,
        own_challenge: super::common::own_challenges(c).await?,
        persist: super::dns_persist::contents(c).await?,
    })
}

/// See [`super::Store::zone_contents`]: grouped and cut to `keep` here.
pub(crate) async fn zone_contents(c: &impl Conn, keep: usize) -> Result<Vec<TxtValues>, StoreError> {
    // A page of accounts at a time (with their values): the rows of a million accounts read
    // at once held ~0.5 GB on top of what they become. Called inside a snapshot transaction
    // for a consistent read, so paging sees one state of the store.
    let mut out = Vec::new();
    let mut after = String::new();
    loop {
        let rows = c
            .query(
                "SELECT a.subdomain, t.seq, t.value FROM \
                 (SELECT subdomain FROM accounts WHERE subdomain > $1 ORDER BY subdomain LIMIT $2) a \
                 LEFT JOIN txt t ON t.subdomain = a.subdomain ORDER BY a.subdomain, t.seq",
                &[after.as_str().into(), super::common::count(CONTENTS_PAGE)],
            )
            .await?;
        let before = out.len();
        let mut current: Option<(String, Vec<(i64, String)>)> = None;
        for row in &rows {
            let subdomain = row.text(0)?;
            if current.as_ref().is_none_or(|(s, _)| *s != subdomain) {
                out.extend(current.take().map(|(s, pairs)| super::common::newest(s, pairs, keep)));
                current = Some((subdomain, Vec::new()));
            }
            if let (Some(seq), Some(value), Some((_, pairs))) =
                (row.opt_int(1)?, row.opt_text(2)?, current.as_mut())
            {
                pairs.push((seq, value));
            }
        }
        out.extend(current.map(|(s, pairs)| super::common::newest(s, pairs, keep)));
        match out.last() {
            Some(last) if out.len() - before == CONTENTS_PAGE => after.clone_from(&last.subdomain),
            _ => return Ok(out),
        }
    }
}

/// Accounts read per statement by [`zone_contents`].
const CONTENTS_PAGE: usize = 20_000;

/// Fixes the serial base and the first signing epoch of a new schema (once: a base never
/// changes after, or serials would jump).
pub(crate) async fn init(c: &impl Conn) -> Result<(), StoreError> {
    // The database's clock: an instance with a wrong clock that makes the schema must not
    // start the zone with an epoch in the future.
    let now = c.clock().await?;
    // Starting at the clock keeps serials increasing for secondaries that knew the clock-based
    // serials of earlier versions.
    c.execute(
        "UPDATE zone_version SET serial_base = $1, epoch = $2 WHERE id = 1 AND serial_base = 0",
        &[(now & 0xFFFF_FFFF).into(), (now - now % 3600).into()],
    )
    .await?;
    Ok(())
}

/// The names one write changes, under the one version it takes (lazily: a write that changes
/// nothing DNS serves takes none).
#[derive(Debug, Default)]
pub(crate) struct Edits {
    /// The version taken, once a name was logged.
    version: Option<u64>,
}

impl Edits {
    /// Logs that `name` now has `values` (`None`: gone), taking the next version first if this
    /// write has none yet.
    pub(crate) async fn log(
        &mut self,
        c: &impl Conn,
        name: &str,
        values: Option<&[String]>,
    ) -> Result<u64, StoreError> {
        let version = match self.version {
            Some(v) => v,
            None => {
                let rows = c
                    .query(
                        "UPDATE zone_version SET version = version + 1 WHERE id = 1 RETURNING version",
                        &[],
                    )
                    .await?;
                let v = first_int(&rows)?;
                self.version = Some(v);
                v
            }
        };
        let values = values.map(encode).transpose()?;
        c.execute(
            "INSERT INTO zone_log (version, name, txt, at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (version, name) DO UPDATE SET txt = excluded.txt",
            &[version_value(version), name.into(), values.into(), super::common::now().into()],
        )
        .await?;
        Ok(version)
    }

    /// Tells the other instances of the new version, if one was taken; returns it.
    pub(crate) async fn finish(self, c: &impl Conn, hint: &str) -> Result<Option<u64>, StoreError> {
        if let Some(version) = self.version {
            c.notify(&Change::Version { version, hint: hint.to_owned() }).await?;
        }
        Ok(self.version)
    }
}

/// A version as a parameter.
fn version_value(version: u64) -> Value {
    Value::Int(i64::try_from(version).unwrap_or(i64::MAX))
}

/// The integer in the first column of the first row.
fn first_int(rows: &[Row]) -> Result<u64, StoreError> {
    match rows.first().and_then(|r| r.0.first()) {
        Some(Value::Int(v)) => Ok(u64::try_from(*v).unwrap_or(0)),
        _ => Err(StoreError::Backend("the zone_version row is missing".into())),
    }
}

/// Values as the log keeps them: a JSON list.
fn encode(values: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(values).map_err(StoreError::json("the values of a zone_log row"))
}

/// The log after `after`, in version order.
pub(crate) async fn log_since(c: &impl Conn, after: u64) -> Result<Vec<LogEntry>, StoreError> {
    let rows = c
        .query(
            "SELECT version, name, txt FROM zone_log WHERE version > $1 ORDER BY version, name",
            &[version_value(after)],
        )
        .await?;
    rows.iter()
        .map(|r| {
            let (Some(Value::Int(version)), Some(Value::Text(name)), Some(txt)) =
                (r.0.first(), r.0.get(1), r.0.get(2))
            else {
                return Err(StoreError::Backend("a zone_log row is malformed".into()));
            };
            let values = match txt {
                Value::Text(json) => Some(
                    serde_json::from_str(json)
                        .map_err(StoreError::json(format!("zone_log values of {name}")))?,
                ),
                _ => None,
            };
            Ok(LogEntry { version: u64::try_from(*version).unwrap_or(0), name: name.clone(), values })
        })
        .collect()
}

/// How many rows the log holds after version `after`: the names those versions changed.
pub(crate) async fn log_rows_since(c: &impl Conn, after: u64) -> Result<u64, StoreError> {
    let rows = c.query("SELECT count(*) FROM zone_log WHERE version > $1", &[version_value(after)]).await?;
    let n = rows.first().map(|row| row.int(0)).transpose()?.unwrap_or(0);
    Ok(u64::try_from(n).unwrap_or(0))
}

/// When the first change after version `after` was made (seconds since the epoch), if the
/// log still holds one: how long a server at `after` has been missing a change.
pub(crate) async fn first_change_after(c: &impl Conn, after: u64) -> Result<Option<i64>, StoreError> {
    let rows = c.query("SELECT MIN(at) FROM zone_log WHERE version > $1", &[version_value(after)]).await?;
    Ok(match rows.first().and_then(|r| r.0.first()) {
        Some(Value::Int(at)) => Some(*at),
        _ => None,
    })
}

/// Records the signing epoch `epoch` as a new version, unless the store's epoch is no longer
/// `seen` (another instance did it first: the conditional update finds no row once that
/// instance committed, as the row lock makes this one wait for it). Returns the new version.
///
/// An epoch ahead of the store's time is refused: its signatures would begin in the future,
/// and validators would reject them until then.
pub(crate) async fn new_epoch(c: &impl Conn, seen: u32, epoch: u32) -> Result<Option<u64>, StoreError> {
    let now = time(c, true).await?.now;
    if i64::from(epoch) > now {
        return Err(StoreError::Backend(format!(
            "refused to record signing epoch {epoch}: it is ahead of the database's time ({now})"
        )));
    }
    let rows = c
        .query(
            "UPDATE zone_version SET epoch = $2 WHERE id = 1 AND epoch = $1 RETURNING version",
            &[i64::from(seen).into(), i64::from(epoch).into()],
        )
        .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut edits = Edits::default();
    edits.log(c, SIGN, Some(&[epoch.to_string()])).await?;
    edits.finish(c, SIGN).await
}

/// Forgets log rows far behind the newest version, and those written before `before` (the
/// TXT retention: the log holds TXT values and must not keep them longer than the `txt` table
/// does). An instance further behind resynchronises.
pub(crate) async fn prune(c: &impl Conn, before: i64) -> Result<(), StoreError> {
    c.execute(
        "DELETE FROM zone_log WHERE at < $2 OR \
         version <= (SELECT version FROM zone_version WHERE id = 1) - $1",
        &[KEEP_VERSIONS.into(), before.into()],
    )
    .await?;
    Ok(())
}

/// The log name of the persist name of `subdomain`.
pub(crate) fn persist_name(subdomain: &str) -> String {
    format!("{PERSIST}{subdomain}")
}

/// The log name of an erased subdomain's removal.
pub fn erased_name(subdomain: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, subdomain.to_ascii_lowercase().as_bytes());
    let mut name = String::from(ERASED);
    for byte in digest.as_ref() {
        name.push_str(&format!("{byte:02x}"));
    }
    name
}

/// Logs the erasure of `subdomain` and forgets its earlier rows: erasure leaves neither its
/// values nor its name in the log.
pub(crate) async fn log_erasure(edits: &mut Edits, c: &impl Conn, subdomain: &str) -> Result<(), StoreError> {
    c.execute(
        "DELETE FROM zone_log WHERE name = $1 OR name = $2",
        &[subdomain.into(), persist_name(subdomain).into()],
    )
    .await?;
    edits.log(c, &erased_name(subdomain), None).await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_wrap_around() {
        let v = ZoneVersion { version: 5, serial_base: u32::MAX - 1, epoch: 0 };
        assert_eq!(v.serial(), 3);
        assert_eq!(v.serial_of(1), u32::MAX);
    }
}
