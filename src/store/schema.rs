//! The schema: one list of migrations for both engines, and the runner that applies it.
//!
//! Design note: version N means the same tables and columns on both engines. The numbering is
//! the one SQLite databases already carried (steps 1 to 5); PostgreSQL databases made before
//! the engines shared this list counted their own steps (1 to 3, having folded SQLite's first
//! three into one) and are mapped onto it when read (`postgres::shared_version`). Where the
//! engines spell a column type differently the scripts name a token, replaced by the engine's
//! `ColumnTypes`.

use super::StoreError;
use super::common::{Conn, Lock};

/// How an engine spells the column types the migrations name by token.
#[derive(Debug)]
pub(crate) struct ColumnTypes {
    /// `{int}`: a 64-bit integer.
    pub(crate) int: &'static str,
    /// `{bytes}`: a byte string.
    pub(crate) bytes: &'static str,
    /// `{seq}`: an integer key that grows and is never reused, even after deletes (TXT order).
    pub(crate) seq: &'static str,
    /// `{id}`: an integer key that grows (reuse after deletes is harmless).
    pub(crate) id: &'static str,
}

/// Schema migrations for both engines, in order; index + 1 is the version each one reaches.
///
/// The numbering is SQLite's from before the engines shared this list (PostgreSQL had folded
/// steps 1–3 into its first); see `postgres::shared_version` for how its old numbers map. Never
/// edit a step that has shipped: add one.
pub(super) const MIGRATIONS: &[&str] = &[
    // 1: accounts and their TXT values.
    "CREATE TABLE accounts (
        username   TEXT PRIMARY KEY,
        key_hash   {bytes} NOT NULL,
        subdomain  TEXT NOT NULL UNIQUE,
        allowfrom  TEXT NOT NULL DEFAULT '[]',
        created_at {int} NOT NULL
    );
    CREATE TABLE txt (
        seq        {seq},
        subdomain  TEXT NOT NULL REFERENCES accounts(subdomain) ON DELETE CASCADE,
        value      TEXT NOT NULL,
        updated_at {int} NOT NULL
    );
    CREATE INDEX txt_by_subdomain ON txt (subdomain, seq);",
    // 2: the DNSSEC signing key.
    "CREATE TABLE dnssec_keys (
        id          {id},
        algorithm   INTEGER NOT NULL,
        private_key {bytes} NOT NULL,
        created_at  {int} NOT NULL
    );",
    // 3: bcrypt hashes of accounts imported from acme-dns.
    "ALTER TABLE accounts ADD COLUMN bcrypt_hash TEXT;",
    // 4: last use (account expiry) and the audit trail.
    "ALTER TABLE accounts ADD COLUMN last_used {int};
    CREATE TABLE audit (
        id       {id},
        at       {int} NOT NULL,
        username TEXT,
        action   TEXT NOT NULL,
        outcome  TEXT NOT NULL,
        source   TEXT NOT NULL
    );
    CREATE INDEX audit_by_user ON audit (username);
    CREATE INDEX audit_by_time ON audit (at);",
    // 5: the API's own ACME challenge, shared by every instance serving the zone.
    "CREATE TABLE own_challenge (
        token      TEXT PRIMARY KEY,
        value      TEXT NOT NULL,
        expires_at {int} NOT NULL
    );",
    // 6: identical audit entries folded into one row with a count (issue 12 item 5).
    "ALTER TABLE audit ADD COLUMN occurrences {int} NOT NULL DEFAULT 1;
    ALTER TABLE audit ADD COLUMN last_at {int};",
    // 7: dns-persist-01 records, one per issuer per account, and each account's counter of
    // changes to them (see `dns_persist.rs`).
    "ALTER TABLE accounts ADD COLUMN persist_seq {int} NOT NULL DEFAULT 0;
    CREATE TABLE persist (
        subdomain     TEXT NOT NULL REFERENCES accounts(subdomain) ON DELETE CASCADE,
        issuer        TEXT NOT NULL,
        accounturi    TEXT NOT NULL,
        wildcard      {int} NOT NULL,
        persist_until {int},
        set_at        {int} NOT NULL,
        PRIMARY KEY (subdomain, issuer)
    );
    CREATE INDEX persist_by_expiry ON persist (persist_until);",
    // 8: the zone version (serial and signing epoch from the store, the same at every instance)
    // and the log of what each version changed (see `version.rs`). The serial base and first
    // epoch are set from the clock right after (`version::init`).
    "CREATE TABLE zone_version (
        id          INTEGER PRIMARY KEY,
        version     {int} NOT NULL,
        serial_base {int} NOT NULL,
        epoch       {int} NOT NULL
    );
    INSERT INTO zone_version (id, version, serial_base, epoch) VALUES (1, 0, 0, 0);
    CREATE TABLE zone_log (
        version {int} NOT NULL,
        name    TEXT NOT NULL,
        txt     TEXT,
        at      {int} NOT NULL,
        PRIMARY KEY (version, name)
    );
    CREATE INDEX zone_log_by_time ON zone_log (at);",
    // 9: signatures kept for reuse (see `signatures.rs`), by the digest of what they sign;
    // read back in `id` order (on SQLite, the table's own order).
    "CREATE TABLE signatures (
        id        {id},
        digest    {bytes} NOT NULL UNIQUE,
        epoch     {int} NOT NULL,
        signature {bytes} NOT NULL
    );
    CREATE INDEX signatures_by_epoch ON signatures (epoch);",
    // 10: the newest time the store handed out for a shared decision (signing epoch, purge),
    // below which an SQLite store's time never goes again (see `version::time`; unused on
    // PostgreSQL).
    "ALTER TABLE zone_version ADD COLUMN clock {int} NOT NULL DEFAULT 0;",
    // 11: the set each kept signature signs (its owner and type, hashed by the zone), so that
    // a newer signature of the set replaces it (`signatures.rs`); rows kept before have none.
    "ALTER TABLE signatures ADD COLUMN slot {int};
    CREATE INDEX signatures_by_slot ON signatures (slot);",
    // 12: the value each dns-persist-01 record serves, as written (it may carry further
    // parameters the other columns do not hold); rows kept before have none and serve what
    // their columns make.
    "ALTER TABLE persist ADD COLUMN value TEXT;",
    // 13: key rollovers (see `keys.rs`): what each key does now (`roles`, letters of
    // `dns::dnssec::Roles`), its state and since when; the one rollover row; and each
    // instance's served version, so a step waits for every instance. The key in use so far
    // (the first of the newest algorithm, as `zone_sync::signing_key` chose it) does everything.
    "ALTER TABLE dnssec_keys ADD COLUMN roles TEXT NOT NULL DEFAULT '';
    ALTER TABLE dnssec_keys ADD COLUMN state TEXT NOT NULL DEFAULT 'made';
    ALTER TABLE dnssec_keys ADD COLUMN since {int};
    UPDATE dnssec_keys SET roles = 'DKZC', state = 'active', since = created_at WHERE id = (
        SELECT MIN(id) FROM dnssec_keys WHERE algorithm = (
            SELECT algorithm FROM dnssec_keys ORDER BY id DESC LIMIT 1));
    CREATE TABLE dnssec_rollover (
        id        INTEGER PRIMARY KEY,
        kind      TEXT NOT NULL,
        step      {int} NOT NULL,
        since     {int} NOT NULL,
        version   {int} NOT NULL,
        served_at {int},
        ds_at     {int},
        old_key   {int} NOT NULL,
        new_key   {int} NOT NULL,
        started   {int} NOT NULL,
        done      {int} NOT NULL
    );
    CREATE TABLE instances (
        id      TEXT PRIMARY KEY,
        version {int} NOT NULL,
        seen_at {int} NOT NULL
    );",
    // 14: the IXFR journal, one row per serial step (see `journal.rs`); `id` orders the rows
    // for pruning, as serials wrap.
    "CREATE TABLE zone_journal (
        id          {id},
        serial_to   {int} NOT NULL UNIQUE,
        serial_from {int} NOT NULL,
        data        {bytes} NOT NULL
    );",
    // 15: how long each secondary took to serve each update (see `lag.rs`), the newest per
    // secondary kept; `lag_ms` NULL: not within `wait_timeout`.
    "CREATE TABLE secondary_lag (
        id        {id},
        secondary TEXT NOT NULL,
        serial    {int} NOT NULL,
        lag_ms    {int},
        at        {int} NOT NULL
    );
    CREATE INDEX secondary_lag_by_secondary ON secondary_lag (secondary, id);",
];

/// A migration with the engine's column types in place of the tokens.
pub(super) fn render(script: &str, types: &ColumnTypes) -> String {
    script
        .replace("{int}", types.int)
        .replace("{bytes}", types.bytes)
        .replace("{seq}", types.seq)
        .replace("{id}", types.id)
}

/// Refuses an acme-dns database and a newer schema, then runs the pending migrations. Call it
/// in a transaction: all of them apply, or none.
pub(super) async fn migrate<C: Conn>(c: &C, target: &str) -> Result<(), StoreError> {
    c.lock(Lock::Schema).await?;
    // Before anything is written: another program's database is left exactly as it was.
    if c.has_table("records").await? && !c.has_table("accounts").await? {
        // The command line adds how to take it over, with the configuration's path.
        return Err(StoreError::ForeignSchema(target.to_owned()));
    }
    let found = c.schema_version().await?;
    let known = MIGRATIONS.len() as i64;
    if found > known {
        return Err(StoreError::TooNew { found, known });
    }
    for (index, script) in MIGRATIONS.iter().enumerate().skip(usize::try_from(found).unwrap_or(0)) {
        c.batch(&render(script, &C::TYPES)).await?;
        tracing::info!("database schema migrated to version {}", index + 1);
    }
    if found != known {
        c.set_schema_version(known).await?;
    }
    super::version::init(c).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_name_only_known_tokens() {
        let types = ColumnTypes { int: "I", bytes: "B", seq: "S", id: "D" };
        for script in MIGRATIONS {
            assert!(!render(script, &types).contains('{'), "{script}");
        }
    }
}
