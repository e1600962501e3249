//! The store contract, tested once and run on both engines: every `Store` method on SQLite
//! and on a real PostgreSQL (the `battery!` at the end instantiates each test for both), plus
//! the upgrade of databases made before the engines shared one migration list.
//!
//! These call the library directly; the process-level scenarios are in `stores.rs`.

use std::time::Duration;

use acme_delegate::config::{Database, Engine};
use acme_delegate::dns_persist::Record;
use acme_delegate::privacy::Secret;
use acme_delegate::store::import::{BATCH, Options, Report, Source};
use acme_delegate::store::{Account, AuditEntry, Change, PurgeRules, PutOutcome, Store, StoreError};

use crate::harness::TempDir;
#[cfg(feature = "postgres")]
use crate::pg;

/// Which engine a battery test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file in a temporary directory.
    Sqlite,
    /// A fresh database on the test PostgreSQL.
    #[cfg(feature = "postgres")]
    Postgres,
}

/// A database of one engine that no test has opened yet.
struct Fresh {
    /// Engine and file path or URL.
    database: Database,
    /// Holds the SQLite file's directory.
    _dir: TempDir,
}

impl Fresh {
    /// A new, empty database.
    fn new(backend: Backend) -> Self {
        let dir = TempDir::new();
        let database = match backend {
            Backend::Sqlite => {
                Database { engine: Engine::Sqlite, connection: dir.join("t.db").display().to_string() }
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres => Database { engine: Engine::Postgres, connection: pg::fresh_database() },
        };
        Self { database, _dir: dir }
    }

    /// Opens (another) store on it.
    async fn open(&self) -> Store {
        Store::open(&self.database).await.expect("store opens")
    }
}

/// Seconds since the epoch.
fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Account `n`, with a key hash and an allowfrom.
fn account(n: u8) -> Account {
    Account {
        username: format!("user-{n}"),
        key_hash: vec![n; 32],
        bcrypt_hash: None,
        subdomain: format!("sub-{n}"),
        allowfrom: vec!["10.0.0.0/8".into()],
    }
}

/// An audit entry of `username` at `at`.
fn audit(username: &str, at: i64) -> AuditEntry {
    AuditEntry::new(at, Some(username.to_owned()), "update", "ok", "192.0.2.0/24".into())
}

/// Strings from literals.
/// Import options as `import-acme-dns` makes them for the test zone (keep 2, not strict).
fn options() -> Options {
    Options {
        keep: 2,
        strict: false,
        subdomain: std::sync::Arc::new(acme_delegate::dns::zone::check_subdomain),
    }
}

/// Imports `source` into `store` with [`options`], calling `progress` after each batch.
async fn import_acme_dns(store: &Store, source: &str, progress: &mut (dyn FnMut(&Report) + Send)) -> Report {
    acme_delegate::store::import::import_acme_dns(store, source, &options(), progress).await.unwrap()
}

/// The UUID username of acme-dns account `n` of a test source.
fn uuid(n: usize) -> String {
    format!("{n:08x}-0000-4000-8000-000000000000")
}

/// A bcrypt-shaped hash for account `n` (the import checks the form; only a use checks more).
fn bcrypt_hash(n: usize) -> String {
    format!("$2a$10${n:053}")
}

/// A dns-01 value (43 characters of base64url) made from `tag`.
fn value(tag: &str) -> String {
    format!("{tag:_<43}")
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|&v| v.to_owned()).collect()
}

async fn accounts_are_stored_and_found(backend: Backend) {
    let db = Fresh::new(backend);
    let store = db.open().await;
    store.insert_account(&account(1)).await.unwrap();
    assert!(matches!(store.insert_account(&account(1)).await, Err(StoreError::Duplicate(_))));
    let other_name_same_subdomain = Account { username: "user-9".into(), ..account(1) };
    assert!(matches!(store.insert_account(&other_name_same_subdomain).await, Err(StoreError::Duplicate(_))));
    assert_eq!(store.account("user-1").await.unwrap(), Some(account(1)));
    assert_eq!(store.account("nobody").await.unwrap(), None);
    store.set_allowfrom("user-1", strings(&["192.0.2.0/24", "2001:db8::/32"])).await.unwrap();
    assert_eq!(
        store.account("user-1").await.unwrap().unwrap().allowfrom,
        strings(&["192.0.2.0/24", "2001:db8::/32"])
    );
    store.insert_account(&account(2)).await.unwrap();
    let listed: Vec<String> =
        store.accounts_page("", usize::MAX).await.unwrap().into_iter().map(|a| a.username).collect();
    assert_eq!(listed, strings(&["user-1", "user-2"]));
    store.ping().await.unwrap();
    store.close().await;
}

async fn keeps_the_newest_values_in_order(backend: Backend) {
    let db = Fresh::new(backend);
    let store = db.open().await;
    store.insert_account(&account(1)).await.unwrap();
    store.insert_account(&account(2)).await.unwrap();
    assert_eq!(store.txt_of("sub-1", 2).await.unwrap().map(|t| (t.seq, t.values)), Some((0, Vec::new())));
    assert_eq!(store.txt_of("sub-nobody", 2).await.unwrap(), None);
    let mut last_seq = 0;
    for value in ["a", "b", "c", "d"] {
        let now = store.update_txt("sub-1", value, 2).await.unwrap();
        assert!(now.seq > last_seq, "sequence numbers grow");
        last_seq = now.seq;
    }
    assert_eq!(store.txt_of("sub-1", 2).await.unwrap().unwrap().values, strings(&["c", "d"]));
    // A value sent again moves to the newest place instead of being kept twice.
    assert_eq!(store.update_txt("sub-1", "c", 2).await.unwrap().values, strings(&["d", "c"]));
    store.update_txt("sub-2", "x", 2).await.unwrap();
    let mut zone = store.zone_contents(2).await.unwrap();
    zone.sort_by(|a, b| a.subdomain.cmp(&b.subdomain));
    let zone: Vec<(String, Vec<String>)> = zone.into_iter().map(|t| (t.subdomain, t.values)).collect();
    assert_eq!(zone, [("sub-1".to_owned(), strings(&["d", "c"])), ("sub-2".to_owned(), strings(&["x"]))]);
    // Fewer asked for than stored: the newest.
    assert_eq!(
        store.zone_contents(1).await.unwrap().iter().find(|t| t.subdomain == "sub-1").unwrap().values,
        ["c"]
    );
    assert_eq!(store.txt_of("sub-1", 1).await.unwrap().unwrap().values, ["c"]);
    drop(store);
    // Reopening runs no migration twice, and the values are there.
    let store = db.open().await;
    assert_eq!(store.txt_of("sub-1", 3).await.unwrap().unwrap().values, strings(&["d", "c"]));
}

async fn rotation_and_bcrypt_upgrade(backend: Backend) {
    let db = Fresh::new(backend);
    let store = db.open().await;
    let imported = |n| Account { key_hash: Vec::new(), bcrypt_hash: Some("$2a$10$x".into()), ..account(n) };
    assert!(store.import_account(&imported(1)).await.unwrap());
    assert!(store.import_account(&imported(2)).await.unwrap());
    // The first use after the import replaces the bcrypt hash.
    store.upgrade_key("user-1", vec![5; 32]).await.unwrap();
    let now = store.account("user-1").await.unwrap().unwrap();
    assert_eq!((now.key_hash, now.bcrypt_hash), (vec![5; 32], None));
    // A rotation lands first; the bcrypt check of a request that began before it ends later.
    store.set_key("user-2", vec![7; 32]).await.unwrap();
    store.upgrade_key("user-2", vec![1; 32]).await.unwrap();
    let now = store.account("user-2").await.unwrap().unwrap();
    assert_eq!((now.key_hash, now.bcrypt_hash), (vec![7; 32], None));
}

async fn import_skips_what_exists(backend: Backend) {
    let db = Fresh::new(backend);
    let store = db.open().await;
    store.insert_account(&account(1)).await.unwrap();
    assert!(!store.import_account(&account(1)).await.unwrap(), "same username and subdomain");
    assert!(!store.import_account(&Account { username: "other".into(), ..account(1) }).await.unwrap());
    assert!(!store.import_account(&Account { subdomain: "other".into(), ..account(1) }).await.unwrap());
    assert!(store.import_account(&account(2)).await.unwrap());
    assert_eq!(store.accounts_page("", usize::MAX).await.unwrap().len(), 2);

    // An acme-dns SQLite file, imported twice: the second changes nothing.
    let dir = TempDir::new();
    let source = dir.join("acme-dns.db");
    let conn = rusqlite::Connection::open(&source).unwrap();
    conn.execute_batch(
        "CREATE TABLE records(Username TEXT UNIQUE NOT NULL PRIMARY KEY, Password TEXT UNIQUE NOT NULL,
             Subdomain TEXT UNIQUE NOT NULL, AllowFrom TEXT);
         CREATE TABLE txt(Subdomain TEXT NOT NULL, Value TEXT NOT NULL DEFAULT '', LastUpdate INT);",
    )
    .unwrap();
    let (user, hash) = (uuid(0xAA1).to_uppercase(), bcrypt_hash(1));
    conn.execute(
        "INSERT INTO records VALUES (?1, CAST(?2 AS BLOB), 'SUB-A', '[\"\", \"10.0.0.0/8\"]')",
        [&user, &hash],
    )
    .unwrap();
    let (old, older, new) = (value("old"), value("older"), value("new"));
    conn.execute(
        "INSERT INTO txt VALUES ('SUB-A', ?1, 1), ('SUB-A', ?2, 0), ('SUB-A', '', 2), ('SUB-A', ?3, 3)",
        [&old, &older, &new],
    )
    .unwrap();
    drop(conn);
    let source = source.to_str().unwrap();
    let report = import_acme_dns(&store, source, &mut |_| ()).await;
    assert_eq!((report.found, report.imported, report.skipped, report.values), (1, 1, 0, 2));
    let again = import_acme_dns(&store, source, &mut |_| ()).await;
    assert_eq!((again.imported, again.skipped, again.values), (0, 1, 0));
    let imported = store.account(&uuid(0xAA1)).await.unwrap().unwrap();
    assert_eq!((imported.bcrypt_hash, imported.allowfrom), (Some(hash), strings(&["10.0.0.0/8"])));
    assert_eq!(store.txt_of("sub-a", 2).await.unwrap().unwrap().values, [old, new]);
}

/// An acme-dns `records` row: username, hash, subdomain, allowfrom.
type AcmeDnsRecord = (String, String, String, String);
/// An acme-dns `txt` row: subdomain, value, last update.
type AcmeDnsTxt = (String, String, i64);

/// An acme-dns source of a little more than one import batch: (username, hash, subdomain,
/// allowfrom) and (subdomain, value, last update) rows, with what the importer must cope with:
/// accounts without values, with one, with a repeated one, with more than are kept, names in
/// upper case, values of no account, and the account `n = 3` that the target already has.
fn acme_dns_rows() -> (Vec<AcmeDnsRecord>, Vec<AcmeDnsTxt>) {
    let (mut records, mut txt) = (Vec::new(), Vec::new());
    for n in 0..BATCH + 321 {
        let subdomain = if n % 7 == 0 { format!("SUB-{n:05}") } else { format!("sub-{n:05}") };
        let allowfrom = if n % 5 == 0 { r#"["10.0.0.0/8", ""]"# } else { "[]" };
        records.push((uuid(n), bcrypt_hash(n), subdomain.clone(), allowfrom.to_owned()));
        // acme-dns's two rows per account; '' until updated. Times tie on purpose (acme-dns's
        // seconds), where the row order decides.
        let values: Vec<String> = match n % 4 {
            0 => vec![String::new(), String::new()],
            1 => vec![value(&format!("a{n}")), String::new()],
            2 => vec![value(&format!("a{n}")), value(&format!("b{n}")), value(&format!("a{n}"))],
            _ => vec![value(&format!("a{n}")), value(&format!("b{n}")), value(&format!("c{n}"))],
        };
        for (i, value) in values.into_iter().enumerate() {
            txt.push((subdomain.to_lowercase(), value, (n % 3) as i64 + i64::from(i as u8 / 2)));
        }
    }
    txt.push(("nobody".into(), value("orphan"), 5));
    (records, txt)
}

/// Accounts (username, subdomain, used), values per subdomain, a sample of accounts in full.
type Contents = (Vec<(String, String, bool)>, Vec<(String, Vec<String>)>, Vec<Account>);

/// What a store holds, comparable across imports: every account's name, subdomain and whether
/// it counts as used, every subdomain's values, and every seventh account in full (in few
/// queries: this runs on PostgreSQL too).
async fn contents(store: &Store) -> Contents {
    let summaries = store.accounts_page("", usize::MAX).await.unwrap();
    let mut sample = Vec::new();
    for summary in summaries.iter().step_by(7) {
        sample.push(store.account(&summary.username).await.unwrap().unwrap());
    }
    let names = summaries.into_iter().map(|a| (a.username, a.subdomain, a.last_used.is_some())).collect();
    let values = store.zone_contents(2).await.unwrap().into_iter().map(|t| (t.subdomain, t.values)).collect();
    (names, values, sample)
}

/// The streamed, batched importer gives what importing row by row gives (each account, then
/// each of its values through `update_txt`, as the importer did before), from an acme-dns
/// SQLite file and, on PostgreSQL, from an acme-dns PostgreSQL database; running instances
/// hear of the new names; a second run changes nothing.
async fn streamed_import_matches_row_by_row(backend: Backend) {
    let (records, txt) = acme_dns_rows();
    let dir = TempDir::new();
    let source = dir.join("acme-dns.db");
    let mut conn = rusqlite::Connection::open(&source).unwrap();
    conn.execute_batch(
        "CREATE TABLE records(Username TEXT UNIQUE NOT NULL PRIMARY KEY, Password TEXT UNIQUE NOT NULL,
             Subdomain TEXT UNIQUE NOT NULL, AllowFrom TEXT);
         CREATE TABLE txt(Subdomain TEXT NOT NULL, Value TEXT NOT NULL DEFAULT '', LastUpdate INT);",
    )
    .unwrap();
    let tx = conn.transaction().unwrap();
    for (n, (username, hash, subdomain, allowfrom)) in records.iter().enumerate() {
        // acme-dns writes the hash as a BLOB; TEXT is read too.
        let hash: rusqlite::types::Value =
            if n % 2 == 0 { hash.as_bytes().to_vec().into() } else { hash.clone().into() };
        tx.execute(
            "INSERT INTO records VALUES (?1, ?2, ?3, ?4)",
            rusqlite::params![username, hash, subdomain, allowfrom],
        )
        .unwrap();
    }
    for (subdomain, value, at) in &txt {
        tx.execute("INSERT INTO txt VALUES (?1, ?2, ?3)", rusqlite::params![subdomain, value, at]).unwrap();
    }
    tx.commit().unwrap();
    drop(conn);

    // Row by row, as before: on SQLite whatever the engine under test (the battery holds the
    // engines to the same results; row by row on PostgreSQL would take minutes).
    let expected_db = Fresh::new(Backend::Sqlite);
    let expected = expected_db.open().await;
    let mut ordered = txt.clone();
    ordered.sort_by_key(|(_, _, at)| *at); // stable: ties keep the row order
    let is_three = |a: &Account| a.username == uuid(3);
    for (username, hash, subdomain, allowfrom) in &records {
        let allowfrom: Vec<String> = serde_json::from_str::<Vec<String>>(allowfrom).unwrap();
        let account = Account {
            username: username.clone(),
            key_hash: Vec::new(),
            bcrypt_hash: Some(hash.clone()),
            subdomain: subdomain.to_lowercase(),
            allowfrom: allowfrom.into_iter().filter(|a| !a.is_empty()).collect(),
        };
        if is_three(&account) {
            expected.insert_account(&account).await.unwrap();
            continue;
        }
        assert!(expected.import_account(&account).await.unwrap());
        for (_, value, _) in ordered.iter().filter(|(s, v, _)| *s == account.subdomain && !v.is_empty()) {
            expected.update_txt(&account.subdomain, value, 2).await.unwrap();
        }
    }
    let expected = contents(&expected).await;

    let db = Fresh::new(backend);
    let store = db.open().await;
    // Account 3 as the reference stored it (not imported: present already).
    let existing = Account {
        username: records[3].0.clone(),
        key_hash: Vec::new(),
        bcrypt_hash: Some(records[3].1.clone()),
        subdomain: records[3].2.clone(),
        allowfrom: Vec::new(),
    };
    store.insert_account(&existing).await.unwrap();
    let mut feed = db.open().await.subscribe();
    #[cfg(feature = "postgres")]
    if backend == Backend::Postgres {
        // Listening once the feed says so (its first resync); then nothing is missed.
        let first = tokio::time::timeout(Duration::from_secs(5), feed.recv()).await;
        assert_eq!(first.ok().flatten(), Some(Change::Resync));
    }
    let before = store.zone_version().await.unwrap();
    let mut batches = 0;
    let report = import_acme_dns(&store, source.to_str().unwrap(), &mut |_| batches += 1).await;
    let values = expected.1.iter().filter(|(s, _)| *s != existing.subdomain).map(|(_, v)| v.len()).sum();
    assert_eq!(
        (report.found, report.imported, report.skipped, report.values),
        (records.len(), records.len() - 1, 1, values)
    );
    assert_eq!(batches, 2, "one progress call per committed batch");
    assert_eq!(contents(&store).await, expected);
    // One zone version per batch, logging every new name with the values it now has: what
    // running instances apply.
    let log = store.zone_log_since(before.version).await.unwrap();
    assert_eq!(store.zone_version().await.unwrap().version, before.version + 2);
    assert_eq!(log.len(), report.imported, "one log row per imported name");
    let logged: std::collections::HashMap<&str, &Option<Vec<String>>> =
        log.iter().map(|e| (e.name.as_str(), &e.values)).collect();
    for (subdomain, values) in expected.1.iter().filter(|(s, _)| *s != existing.subdomain) {
        assert_eq!(logged.get(subdomain.as_str()), Some(&&Some(values.clone())), "{subdomain}");
    }
    #[cfg(feature = "postgres")]
    if backend == Backend::Postgres {
        // Each batch is announced once, when it commits.
        let mut heard = Vec::new();
        while let Ok(Some(change)) = tokio::time::timeout(Duration::from_secs(5), feed.recv()).await {
            if let Change::Version { version, hint } = change {
                heard.push((version, hint));
            }
            if heard.len() == 2 {
                break;
            }
        }
        let v = before.version;
        assert_eq!(heard, [(v + 1, "import".to_owned()), (v + 2, "import".to_owned())]);
    }
    let again = import_acme_dns(&store, source.to_str().unwrap(), &mut |_| ()).await;
    assert_eq!(
        (again.found, again.imported, again.skipped, again.values),
        (records.len(), 0, records.len(), 0)
    );
    assert_eq!(contents(&store).await, expected);

    // The same source as an acme-dns PostgreSQL database.
    #[cfg(feature = "postgres")]
    if backend == Backend::Postgres {
        let url = pg::fresh_database();
        let mut sql = String::from(
            "CREATE TABLE records(Username TEXT UNIQUE NOT NULL PRIMARY KEY, Password TEXT UNIQUE NOT NULL,
                 Subdomain TEXT UNIQUE NOT NULL, AllowFrom TEXT);
             CREATE TABLE txt(rowid SERIAL, Subdomain TEXT NOT NULL, Value TEXT NOT NULL DEFAULT '', LastUpdate INT);
             INSERT INTO records VALUES ",
        );
        let rows: Vec<String> =
            records.iter().map(|(u, h, s, a)| format!("('{u}', '{h}', '{s}', '{a}')")).collect();
        sql.push_str(&rows.join(", "));
        sql.push_str(";\nINSERT INTO txt (Subdomain, Value, LastUpdate) VALUES ");
        let rows: Vec<String> = txt.iter().map(|(s, v, at)| format!("('{s}', '{v}', {at})")).collect();
        sql.push_str(&rows.join(", "));
        sql.push(';');
        // Through stdin: the statement is larger than one command-line argument may be.
        let mut psql = std::process::Command::new("psql")
            .args([url.as_str(), "-v", "ON_ERROR_STOP=1", "-q"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("psql runs");
        std::io::Write::write_all(&mut psql.stdin.take().unwrap(), sql.as_bytes()).unwrap();
        assert!(psql.wait().unwrap().success(), "psql could not create the acme-dns database");
        let db = Fresh::new(backend);
        let store = db.open().await;
        store.insert_account(&existing).await.unwrap();
        let report = import_acme_dns(&store, &url, &mut |_| ()).await;
        assert_eq!((report.imported, report.skipped, report.values), (records.len() - 1, 1, values));
        assert_eq!(contents(&store).await, expected);
    }
    drop(feed);
}

async fn own_challenges_are_published_and_withdrawn(backend: Backend) {
    let db = Fresh::new(backend);
    let store = db.open().await;
    let later = now() + 600;
    store.put_own_challenge("t2", Some("second"), later).await.unwrap();
    store.put_own_challenge("t1", Some("first"), later).await.unwrap();
    store.put_own_challenge("t0", Some("stale"), now() - 1).await.unwrap();
    assert_eq!(store.own_challenges().await.unwrap(), strings(&["first", "second"]));
    store.put_own_challenge("t1", Some("replaced"), later).await.unwrap();
    store.put_own_challenge("t2", None, later).await.unwrap();
    assert_eq!(store.own_challenges().await.unwrap(), strings(&["replaced"]));
}

async fn one_dnssec_key_per_algorithm(backend: Backend) {
    let db = Fresh::new(backend);
    let (a, b) = (db.open().await, db.open().await);
    assert!(a.dnssec_key(13).await.unwrap().is_none());
    // Two instances starting together: both store, one wins, both read the same key.
    let (ra, rb) = tokio::join!(
        a.add_dnssec_key_if_none(13, Secret::new(vec![1; 8])),
        b.add_dnssec_key_if_none(13, Secret::new(vec![2; 8]))
    );
    ra.unwrap();
    rb.unwrap();
    let (ka, kb) = (a.dnssec_key(13).await.unwrap().unwrap(), b.dnssec_key(13).await.unwrap().unwrap());
    assert_eq!(ka.pkcs8.expose(), kb.pkcs8.expose());
    assert_eq!((ka.algorithm, ka.created_at > 0), (13, true));
    a.add_dnssec_key_if_none(13, Secret::new(vec![3; 8])).await.unwrap();
    assert_eq!(a.dnssec_key(13).await.unwrap().unwrap().pkcs8.expose(), ka.pkcs8.expose());
    assert!(a.dnssec_key(15).await.unwrap().is_none());
}

async fn account_record_holds_everything(backend: Backend) {
    let db = Fresh::new(backend);
    let store = db.open().await;
    store.insert_account(&account(1)).await.unwrap();
    assert!(store.account_record("user-1", 2).await.unwrap().unwrap().last_used.is_none());
    for value in ["a", "b", "c"] {
        store.update_txt("sub-1", value, 3).await.unwrap();
    }
    store.record_audit(audit("user-1", 100)).await.unwrap();
    store.record_audit(audit("user-1", 50)).await.unwrap();
    store.record_audit(AuditEntry { username: None, ..audit("", 70) }).await.unwrap();
    let record = store.account_record("user-1", 2).await.unwrap().unwrap();
    assert_eq!(record.account, account(1));
    assert!(record.created_at > 0 && record.last_used.is_some_and(|t| t >= record.created_at));
    // Values newest first, `keep` of them; the trail in the order written.
    assert_eq!(record.txt.iter().map(|(v, _)| v.as_str()).collect::<Vec<_>>(), ["c", "b"]);
    assert_eq!(record.audit, [audit("user-1", 100), audit("user-1", 50)]);
    assert!(store.account_record("nobody", 2).await.unwrap().is_none());
}

async fn delete_erases_the_account_and_its_data(backend: Backend) {
    let db = Fresh::new(backend);
    let store = db.open().await;
    store.insert_account(&account(1)).await.unwrap();
    store.insert_account(&account(2)).await.unwrap();
    store.update_txt("sub-1", "a", 2).await.unwrap();
    store.update_txt("sub-2", "b", 2).await.unwrap();
    store.record_audit(audit("user-1", 1)).await.unwrap();
    store.record_audit(audit("user-2", 1)).await.unwrap();
    store.record_audit(audit("ghost", 1)).await.unwrap();
    assert_eq!(store.delete_account("user-1").await.unwrap().as_deref(), Some("sub-1"));
    assert_eq!(store.account("user-1").await.unwrap(), None);
    assert_eq!(store.txt_of("sub-1", 2).await.unwrap(), None);
    assert_eq!(store.delete_account("user-1").await.unwrap(), None);
    // The trail of a username that never had an account goes too.
    assert_eq!(store.delete_account("ghost").await.unwrap(), None);
    // Nothing of the other account is touched.
    let other = store.account_record("user-2", 2).await.unwrap().unwrap();
    assert_eq!((other.txt.len(), other.audit.len()), (1, 1));
    // The name can be registered again with no values left over.
    store.insert_account(&account(1)).await.unwrap();
    let again = store.account_record("user-1", 2).await.unwrap().unwrap();
    assert_eq!((again.txt.len(), again.audit.len()), (0, 0));
}

async fn purge_removes_what_is_past_retention(backend: Backend) {
    let db = Fresh::new(backend);
    let store = db.open().await;
    let t = now();
    for n in [3, 1, 2] {
        store.insert_account(&account(n)).await.unwrap();
    }
    store.update_txt("sub-3", "x", 2).await.unwrap();
    store.update_txt("sub-1", "y", 2).await.unwrap();
    store.update_txt("sub-1", "z", 2).await.unwrap();
    // Far enough apart not to be folded into one entry (the fold window is an hour).
    store.record_audit(audit("user-1", t - 5000)).await.unwrap();
    store.record_audit(audit("user-1", t + 100)).await.unwrap();
    store.record_audit(audit("user-2", t + 100)).await.unwrap();
    // Nothing is old enough: nothing goes.
    let kept = store
        .purge(PurgeRules { now: now(), audit_before: t - 10_000, txt_before: t - 1000, unused_before: None })
        .await;
    let kept = kept.unwrap();
    assert_eq!((kept.audit_entries, kept.txt_cleared.len(), kept.accounts_expired.len()), (0, 0, 0));
    // Old audit entries and every TXT value (all set before t + 10); each subdomain once, sorted.
    let purged = store
        .purge(PurgeRules { now: now(), audit_before: t, txt_before: t + 10, unused_before: None })
        .await
        .unwrap();
    assert_eq!(purged.audit_entries, 1);
    assert_eq!(purged.txt_cleared, strings(&["sub-1", "sub-3"]));
    assert!(purged.accounts_expired.is_empty());
    assert_eq!(store.txt_of("sub-1", 2).await.unwrap().unwrap().values, Vec::<String>::new());
    assert_eq!(store.accounts_page("", usize::MAX).await.unwrap().len(), 3, "values expire, accounts stay");
    // Unused accounts: all of them (last used or created before t + 10), with their trails.
    store.update_txt("sub-2", "w", 2).await.unwrap();
    let purged = store
        .purge(PurgeRules {
            now: now(),
            audit_before: t - 1000,
            txt_before: t - 1000,
            unused_before: Some(t + 10),
        })
        .await;
    let purged = purged.unwrap();
    assert_eq!(purged.accounts_expired, strings(&["sub-1", "sub-2", "sub-3"]));
    assert!(purged.txt_cleared.is_empty() && purged.audit_entries == 0);
    assert!(store.accounts_page("", usize::MAX).await.unwrap().is_empty());
    store.insert_account(&account(2)).await.unwrap();
    let fresh = store.account_record("user-2", 2).await.unwrap().unwrap();
    assert_eq!((fresh.txt.len(), fresh.audit.len()), (0, 0), "the expired account's data went with it");
    // An account used recently is kept.
    let kept = store
        .purge(PurgeRules { now: now(), audit_before: 0, txt_before: 0, unused_before: Some(t - 1000) })
        .await;
    assert!(kept.unwrap().accounts_expired.is_empty());
}

async fn change_feed_reports_other_writers(backend: Backend) {
    let db = Fresh::new(backend);
    let (reader, writer) = (db.open().await, db.open().await);
    let mut feed = reader.subscribe();
    if backend == Backend::Sqlite {
        // The SQLite feed reads its starting `data_version` in a task of its own: a commit made
        // before that read is the starting point, not a change (the test raced it and failed
        // now and then).
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let next = async |feed: &mut tokio::sync::mpsc::Receiver<Change>| {
        tokio::time::timeout(Duration::from_secs(5), feed.recv()).await.expect("a change within 5 s").unwrap()
    };
    if backend != Backend::Sqlite {
        // After every (re)connect, the feed first asks for a resync.
        assert_eq!(next(&mut feed).await, Change::Resync);
    }
    writer.insert_account(&account(1)).await.unwrap();
    match backend {
        // SQLite has no LISTEN: another connection's commit shows as a resync.
        Backend::Sqlite => assert_eq!(next(&mut feed).await, Change::Resync),
        #[cfg(feature = "postgres")]
        Backend::Postgres => {
            let version = |version: u64, hint: &str| Change::Version { version, hint: hint.into() };
            assert_eq!(next(&mut feed).await, version(1, "sub-1"));
            writer.update_txt("sub-1", "a", 2).await.unwrap();
            assert_eq!(next(&mut feed).await, version(2, "sub-1"));
            writer.put_persist("sub-1", &persist("ca.example", None), 10).await.unwrap();
            assert_eq!(next(&mut feed).await, version(3, "sub-1"), "a persistent record");
            writer.put_own_challenge("t", Some("v"), now() + 60).await.unwrap();
            assert_eq!(next(&mut feed).await, version(4, "*own-challenge"));
            writer.delete_account("user-1").await.unwrap();
            assert_eq!(next(&mut feed).await, version(5, "erasure"));
        }
    }
    // Every backend logs what each version changed; an erased account's earlier values go.
    let log = writer.zone_log_since(0).await.unwrap();
    let entries: Vec<(u64, &str, Option<Vec<String>>)> =
        log.iter().map(|e| (e.version, e.name.as_str(), e.values.clone())).collect();
    match backend {
        Backend::Sqlite => assert_eq!(entries, [(1, "sub-1", Some(vec![]))]),
        #[cfg(feature = "postgres")]
        Backend::Postgres => {
            let erased = acme_delegate::store::version::erased_name("sub-1");
            // The persist name's row (version 3) went with the erasure too.
            assert_eq!(entries, [(4, "*own-challenge", Some(strings(&["v"]))), (5, erased.as_str(), None)]);
            assert_eq!(writer.zone_version().await.unwrap().version, 5);
        }
    }
    // The log keeps TXT values no longer than the txt table: the purge prunes it by age.
    let rules = PurgeRules { now: now(), audit_before: 0, txt_before: now() + 10, unused_before: None };
    writer.purge(rules).await.unwrap();
    assert_eq!(writer.zone_log_since(0).await.unwrap(), []);
}

async fn a_newer_schema_is_refused(backend: Backend) {
    let db = Fresh::new(backend);
    db.open().await.close().await;
    match backend {
        Backend::Sqlite => {
            let conn = rusqlite::Connection::open(&db.database.connection).unwrap();
            conn.pragma_update(None, "user_version", 99).unwrap();
        }
        #[cfg(feature = "postgres")]
        Backend::Postgres => {
            pg::psql(&db.database.connection, "UPDATE acme_delegate_schema SET version = 99");
        }
    }
    match Store::open(&db.database).await {
        Err(StoreError::TooNew { found: 99, known }) => assert!(known >= 5),
        other => panic!("expected TooNew, got {other:?}"),
    }
}

/// Issue 12 item 5: identical uses within the fold window become one entry with a count;
/// another outcome, another network, or a use past the window start a new entry.
async fn identical_audit_entries_are_folded(backend: Backend) {
    let db = Fresh::new(backend);
    let store = db.open().await;
    store.insert_account(&account(1)).await.unwrap();
    let t = now();
    for i in 0..1000 {
        store.record_audit(audit("user-1", t + i % 7)).await.unwrap();
    }
    let failure = AuditEntry { outcome: "bad_key".into(), ..audit("user-1", t + 10) };
    store.record_audit(failure.clone()).await.unwrap();
    store.record_audit(failure.clone()).await.unwrap();
    let elsewhere = AuditEntry { source: "198.51.100.0/24".into(), ..audit("user-1", t + 11) };
    store.record_audit(elsewhere).await.unwrap();
    store.record_audit(audit("user-1", t + 4000)).await.unwrap();
    let trail = store.account_record("user-1", 2).await.unwrap().unwrap().audit;
    let summary: Vec<(&str, &str, i64, i64)> =
        trail.iter().map(|e| (e.outcome.as_str(), e.source.as_str(), e.count, e.last_at - t)).collect();
    assert_eq!(
        summary,
        [
            ("ok", "192.0.2.0/24", 1000, 6),
            ("bad_key", "192.0.2.0/24", 2, 10),
            ("ok", "198.51.100.0/24", 1, 11),
            ("ok", "192.0.2.0/24", 1, 4000),
        ]
    );
    assert_eq!(trail[0].at, t);
}

/// A dns-persist-01 record of `issuer`, valid until `until`.
fn persist(issuer: &str, until: Option<i64>) -> Record {
    Record {
        issuer: issuer.into(),
        accounturi: "https://ca.example/acct/1".into(),
        wildcard: false,
        persist_until: until,
        params: Vec::new(),
    }
}

/// What a put stored: (replaced, counter, served values).
fn stored(outcome: PutOutcome) -> (bool, u64, Vec<String>) {
    match outcome {
        PutOutcome::Stored { replaced, served } => (replaced, served.seq, served.values),
        other => panic!("expected Stored, got {other:?}"),
    }
}

async fn persist_records_are_kept_per_issuer(backend: Backend) {
    let db = Fresh::new(backend);
    let store = db.open().await;
    store.insert_account(&account(1)).await.unwrap();
    assert_eq!(store.persist_of("sub-1").await.unwrap(), None, "no persist name before a record");
    let le = persist("letsencrypt.org", None);
    assert_eq!(stored(store.put_persist("sub-1", &le, 10).await.unwrap()), (false, 1, vec![le.value()]));
    // The same issuer again replaces its record; the counter moves with every change.
    let le2 = Record { wildcard: true, persist_until: Some(now() + 3600), ..le.clone() };
    assert_eq!(stored(store.put_persist("sub-1", &le2, 10).await.unwrap()), (true, 2, vec![le2.value()]));
    // Further parameters are kept (in the served value) and read back.
    let other =
        Record { params: vec![("accountdigest".into(), "sha-256/x".into())], ..persist("ca.example", None) };
    // Served by issuer, the same order on every instance.
    let (_, seq, values) = stored(store.put_persist("sub-1", &other, 10).await.unwrap());
    assert_eq!((seq, values), (3, vec![other.value(), le2.value()]));
    let record = store.account_record("user-1", 2).await.unwrap().unwrap();
    assert_eq!(record.persist.iter().map(|p| p.record.clone()).collect::<Vec<_>>(), [other.clone(), le2]);
    assert!(record.persist.iter().all(|p| p.set_at >= now() - 60));
    assert_eq!(store.delete_persist("sub-1", "nobody.example").await.unwrap(), None);
    let left = store.delete_persist("sub-1", "letsencrypt.org").await.unwrap().unwrap();
    assert_eq!((left.seq, left.values), (4, vec![other.value()]));
    // Once all are gone the name stays, empty, with a newer counter than any write before.
    let empty = store.delete_persist("sub-1", "ca.example").await.unwrap().unwrap();
    assert_eq!((empty.seq, empty.values.len()), (5, 0));
    assert_eq!(store.persist_of("sub-1").await.unwrap(), Some(empty.clone()));
    assert_eq!(store.persist_contents().await.unwrap(), [empty]);
    // No account, no record; dns-01 values are untouched by all of this.
    assert_eq!(store.put_persist("sub-9", &other, 10).await.unwrap(), PutOutcome::NoAccount);
    assert!(store.txt_of("sub-1", 2).await.unwrap().unwrap().values.is_empty());
}

async fn persist_records_are_limited_per_account(backend: Backend) {
    let db = Fresh::new(backend);
    let store = db.open().await;
    store.insert_account(&account(1)).await.unwrap();
    store.insert_account(&account(2)).await.unwrap();
    for n in 0..3 {
        stored(store.put_persist("sub-1", &persist(&format!("ca{n}.example"), None), 3).await.unwrap());
    }
    // A fourth issuer is refused and nothing changes; replacing one of the three is fine.
    assert_eq!(store.put_persist("sub-1", &persist("ca9.example", None), 3).await.unwrap(), PutOutcome::Full);
    assert_eq!(store.persist_of("sub-1").await.unwrap().unwrap().values.len(), 3);
    assert!(
        stored(store.put_persist("sub-1", &persist("ca1.example", Some(now() + 60)), 3).await.unwrap()).0
    );
    // The limit is per account.
    stored(store.put_persist("sub-2", &persist("ca9.example", None), 3).await.unwrap());
    let records = store.account_record("user-1", 2).await.unwrap().unwrap().persist;
    assert_eq!(
        records.iter().map(|p| p.record.issuer.as_str()).collect::<Vec<_>>(),
        ["ca0.example", "ca1.example", "ca2.example"]
    );
}

async fn persist_limit_holds_under_concurrent_writers(backend: Backend) {
    let db = Fresh::new(backend);
    // Two instances on one database, twelve issuers at once: exactly the limit gets in.
    let (a, b) = (db.open().await, db.open().await);
    a.insert_account(&account(1)).await.unwrap();
    let writes = (0..12).map(|n| {
        let store = if n % 2 == 0 { a.clone() } else { b.clone() };
        tokio::spawn(async move {
            store.put_persist("sub-1", &persist(&format!("ca{n}.example"), None), 10).await
        })
    });
    let mut outcomes = Vec::new();
    for write in writes {
        outcomes.push(write.await.unwrap().unwrap());
    }
    let stored = outcomes.iter().filter(|o| matches!(o, PutOutcome::Stored { .. })).count();
    assert_eq!((stored, outcomes.len() - stored), (10, 2), "{outcomes:?}");
    assert_eq!(a.persist_of("sub-1").await.unwrap().unwrap().values.len(), 10);
}

async fn persist_records_expire_and_keep_accounts_in_use(backend: Backend) {
    let db = Fresh::new(backend);
    let store = db.open().await;
    let t = now();
    for n in 1..=4 {
        store.insert_account(&account(n)).await.unwrap();
    }
    // The store takes what the API checked; a passed persistUntil stands for one that passed
    // while stored.
    stored(store.put_persist("sub-1", &persist("ca.example", Some(t - 1)), 10).await.unwrap());
    stored(store.put_persist("sub-2", &persist("ca.example", Some(t + 3600)), 10).await.unwrap());
    stored(store.put_persist("sub-3", &persist("ca.example", None), 10).await.unwrap());
    stored(store.put_persist("sub-3", &persist("old.example", Some(t - 5)), 10).await.unwrap());
    // TXT retention alone never touches them.
    let purged = store
        .purge(PurgeRules { now: now(), audit_before: 0, txt_before: t + 10, unused_before: None })
        .await
        .unwrap();
    assert_eq!(purged.persist_expired, strings(&["sub-1", "sub-3"]));
    assert_eq!(
        store.persist_of("sub-3").await.unwrap().unwrap().values,
        [persist("ca.example", None).value()]
    );
    assert!(store.persist_of("sub-1").await.unwrap().unwrap().values.is_empty());
    assert_eq!(store.persist_of("sub-2").await.unwrap().unwrap().values.len(), 1);
    // Every account is unused by its dns-01 activity; those with a live record are in use.
    let purged = store
        .purge(PurgeRules { now: now(), audit_before: 0, txt_before: 0, unused_before: Some(t + 10) })
        .await
        .unwrap();
    assert_eq!(purged.accounts_expired, strings(&["sub-1", "sub-4"]));
    let left: Vec<String> =
        store.accounts_page("", usize::MAX).await.unwrap().into_iter().map(|a| a.subdomain).collect();
    assert_eq!(left, strings(&["sub-2", "sub-3"]));
}

async fn persist_records_are_erased_with_the_account(backend: Backend) {
    let db = Fresh::new(backend);
    let store = db.open().await;
    store.insert_account(&account(1)).await.unwrap();
    stored(store.put_persist("sub-1", &persist("ca.example", None), 10).await.unwrap());
    assert_eq!(store.delete_account("user-1").await.unwrap().as_deref(), Some("sub-1"));
    assert_eq!(store.persist_of("sub-1").await.unwrap(), None);
    assert!(store.persist_contents().await.unwrap().is_empty());
    // A new account with the same name starts with none and no persist name.
    store.insert_account(&account(1)).await.unwrap();
    assert_eq!(store.persist_of("sub-1").await.unwrap(), None);
    assert!(store.account_record("user-1", 2).await.unwrap().unwrap().persist.is_empty());
}

async fn zone_contents_reads_every_account_across_pages(backend: Backend) {
    let db = Fresh::new(backend);
    let store = db.open().await;
    // More than two pages of the store's read (20,000 accounts a statement), some without
    // values, some with more than are kept.
    let total = 45_001;
    let source = |n: usize| Source {
        account: Account {
            username: format!("user-{n:06}"),
            key_hash: vec![1; 32],
            bcrypt_hash: None,
            subdomain: format!("sub-{n:06}"),
            allowfrom: Vec::new(),
        },
        values: (0..n % 4).map(|v| format!("v{n}-{v}")).collect(),
    };
    for start in (0..total).step_by(10_000) {
        store.import_batch((start..total.min(start + 10_000)).map(source).collect(), 2).await.unwrap();
    }
    let contents = store.zone_contents(2).await.unwrap();
    assert_eq!(contents.len(), total);
    let snapshot = store.zone_snapshot(2).await.unwrap().contents;
    assert_eq!(snapshot.len(), total);
    for (n, (read, snap)) in contents.iter().zip(&snapshot).enumerate() {
        assert_eq!(read.subdomain, format!("sub-{n:06}"));
        let values = source(n).values;
        let newest = values[values.len().saturating_sub(2)..].to_vec();
        assert_eq!(read.values, newest, "{}", read.subdomain);
        assert_eq!((&snap.subdomain, &snap.values), (&read.subdomain, &read.values));
    }
}

/// Signatures to keep, each of a set of its own (here its slot is the digest's first 8 bytes).
fn slotted(rows: &[([u8; 32], [u8; 64])]) -> Vec<(u64, [u8; 32], [u8; 64])> {
    rows.iter().map(|&(d, s)| (u64::from_be_bytes(d[..8].try_into().unwrap()), d, s)).collect()
}

/// A new signature of a set replaces the set's kept rows, of any epoch; other sets' rows stay.
async fn a_new_signature_of_a_set_replaces_its_row(backend: Backend) {
    let db = Fresh::new(backend);
    let store = db.open().await;
    let rows: Vec<_> = (0..3u8).map(|n| (u64::from(n) + 1, [n; 32], [n; 64])).collect();
    store.keep_signatures(100, rows).await.unwrap();
    // Set 2 signed again (a name updated), set 3 at a new epoch.
    store.keep_signatures(100, vec![(2, [20; 32], [20; 64])]).await.unwrap();
    store.keep_signatures(101, vec![(3, [30; 32], [30; 64])]).await.unwrap();
    let page = store.kept_signatures(100, 0, 10).await.unwrap().rows;
    assert_eq!(page, vec![([0; 32], [0; 64]), ([20; 32], [20; 64])]);
    assert_eq!(store.kept_signatures(101, 0, 10).await.unwrap().rows, vec![([30; 32], [30; 64])]);
    // The same signature again changes nothing; two hundred updates of one set leave one row.
    store.keep_signatures(100, vec![(2, [20; 32], [20; 64])]).await.unwrap();
    for n in 0..200u32 {
        let mut digest = [7; 32];
        digest[..4].copy_from_slice(&n.to_be_bytes());
        store.keep_signatures(100, vec![(9, digest, [7; 64])]).await.unwrap();
    }
    assert_eq!(store.kept_signature_count(100).await.unwrap(), 3);
}

async fn kept_signatures_are_paged_by_epoch_and_pruned(backend: Backend) {
    let db = Fresh::new(backend);
    let store = db.open().await;
    // Digests in no particular order, more than a page and more than one write batch.
    let row = |n: u32, fill: u8| {
        let mut digest = [0u8; 32];
        digest[..4].copy_from_slice(&n.wrapping_mul(2_654_435_761).to_be_bytes());
        digest[4..8].copy_from_slice(&n.to_be_bytes());
        (digest, [fill; 64])
    };
    let old: Vec<_> = (0..2500).map(|n| row(n, 1)).collect();
    store.keep_signatures(100, slotted(&old[..1500])).await.unwrap();
    store.keep_signatures(100, slotted(&old[1000..])).await.unwrap(); // 500 again
    // The same digest is never stored twice, and a second write does not replace the first.
    store.keep_signatures(100, slotted(&[row(7, 9)])).await.unwrap();
    store.keep_signatures(200, slotted(&(5000..5003).map(|n| row(n, 2)).collect::<Vec<_>>())).await.unwrap();
    // A later epoch's rows (another instance ahead of this one) are never pruned.
    store.keep_signatures(300, slotted(&[row(6000, 3)])).await.unwrap();
    let (mut paged, mut after, mut pages) = (Vec::new(), 0, 0);
    loop {
        let page = store.kept_signatures(100, after, 1000).await.unwrap();
        assert!(page.rows.len() <= 1000);
        pages += 1;
        after = page.next;
        paged.extend(page.rows);
        if !page.full {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(store.kept_signature_count(100).await.unwrap(), 2500);
    assert_eq!(paged, old, "every row of the epoch once, in the order written, as first written");
    assert_eq!(store.prune_signatures(200, 2000).await.unwrap(), 2000);
    assert_eq!(store.prune_signatures(200, 2000).await.unwrap(), 500);
    assert!(store.kept_signatures(100, 0, 10).await.unwrap().rows.is_empty());
    assert_eq!(store.kept_signatures(200, 0, 10).await.unwrap().rows.len(), 3);
    assert_eq!(store.prune_signatures(200, 2000).await.unwrap(), 0);
    assert_eq!(store.kept_signatures(300, 0, 10).await.unwrap().rows.len(), 1);
}

/// Journal steps: a step kept twice (two instances) is one row; the newest come first; a prune
/// keeps the newest by insertion, whatever their serials (they wrap); an erasure empties it.
async fn journal_steps_are_kept_once_and_pruned_oldest_first(backend: Backend) {
    use acme_delegate::store::JournalRow;
    let fresh = Fresh::new(backend);
    let store = fresh.open().await;
    let row = |from: u32, to: u32, tag: u8| JournalRow { from, to, data: vec![tag; 3] };
    assert!(store.journal_rows(10).await.unwrap().is_empty());
    for (from, to) in [(u32::MAX - 1, u32::MAX), (u32::MAX, 0), (0, 1), (1, 2)] {
        store.put_journal_step(row(from, to, 1)).await.unwrap();
    }
    store.put_journal_step(row(0, 1, 2)).await.unwrap();
    let serials = |rows: Vec<JournalRow>| rows.iter().map(|r| (r.from, r.to, r.data[0])).collect::<Vec<_>>();
    assert_eq!(
        serials(store.journal_rows(10).await.unwrap()),
        [(1, 2, 1), (0, 1, 1), (u32::MAX, 0, 1), (u32::MAX - 1, u32::MAX, 1)]
    );
    assert_eq!(serials(store.journal_rows(2).await.unwrap()), [(1, 2, 1), (0, 1, 1)]);
    assert_eq!(store.prune_journal(10).await.unwrap(), 0);
    assert_eq!(store.prune_journal(3).await.unwrap(), 1);
    assert_eq!(store.journal_rows(10).await.unwrap().len(), 3);
    assert_eq!(store.prune_journal(0).await.unwrap(), 3);
    assert!(store.journal_rows(10).await.unwrap().is_empty());
    // The steps hold the records they changed: an erasure takes every one with it.
    store.put_journal_step(row(5, 6, 1)).await.unwrap();
    assert_eq!(store.delete_account("nobody").await.unwrap(), None);
    assert!(store.journal_rows(10).await.unwrap().is_empty(), "emptied by an erasure");
}

/// Each secondary keeps its newest lags, newest first; a wait that ran out is kept as such.
async fn secondary_lags_are_kept_per_secondary_and_pruned_oldest_first(backend: Backend) {
    use acme_delegate::store::lag::{KEEP, Lag};
    let fresh = Fresh::new(backend);
    let store = fresh.open().await;
    let lag = |secondary: &str, millis: Option<u64>| Lag { secondary: secondary.to_owned(), millis };
    assert!(store.lags().await.unwrap().is_empty());
    for serial in 0..KEEP as u32 + 5 {
        let lags = vec![lag("192.0.2.1:53", Some(u64::from(serial))), lag("192.0.2.2:53", None)];
        store.record_lags(serial, if serial < 2 { lags } else { lags[..1].to_vec() }).await.unwrap();
    }
    let lags = store.lags().await.unwrap();
    let of = |secondary: &str| {
        lags.iter().filter(|l| l.secondary == secondary).map(|l| l.millis).collect::<Vec<_>>()
    };
    let first = of("192.0.2.1:53");
    assert_eq!(first.len(), KEEP);
    assert_eq!(
        (first[0], first[KEEP - 1]),
        (Some(KEEP as u64 + 4), Some(5)),
        "newest first, the oldest gone"
    );
    assert_eq!(of("192.0.2.2:53"), [None, None]);
}

/// The same tests on SQLite and on PostgreSQL.
macro_rules! battery {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $name() { super::$name(super::Backend::Sqlite).await } )*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $( #[tokio::test] async fn $name() { super::$name(super::Backend::Postgres).await } )*
        }
    };
}

battery!(
    journal_steps_are_kept_once_and_pruned_oldest_first,
    secondary_lags_are_kept_per_secondary_and_pruned_oldest_first,
    accounts_are_stored_and_found,
    keeps_the_newest_values_in_order,
    rotation_and_bcrypt_upgrade,
    import_skips_what_exists,
    streamed_import_matches_row_by_row,
    own_challenges_are_published_and_withdrawn,
    one_dnssec_key_per_algorithm,
    account_record_holds_everything,
    delete_erases_the_account_and_its_data,
    purge_removes_what_is_past_retention,
    identical_audit_entries_are_folded,
    change_feed_reports_other_writers,
    a_newer_schema_is_refused,
    persist_records_are_kept_per_issuer,
    persist_records_are_limited_per_account,
    persist_limit_holds_under_concurrent_writers,
    persist_records_expire_and_keep_accounts_in_use,
    persist_records_are_erased_with_the_account,
    kept_signatures_are_paged_by_epoch_and_pruned,
    a_new_signature_of_a_set_replaces_its_row,
    zone_contents_reads_every_account_across_pages,
);

// ---- databases made before the engines shared one migration list ----

/// SQLite's migrations as they shipped before the shared list (its numbering is the shared one).
const SQLITE_BEFORE: [&str; 5] = [
    include_str!("fixtures/schema-before-shared/sqlite-1.sql"),
    include_str!("fixtures/schema-before-shared/sqlite-2.sql"),
    include_str!("fixtures/schema-before-shared/sqlite-3.sql"),
    include_str!("fixtures/schema-before-shared/sqlite-4.sql"),
    include_str!("fixtures/schema-before-shared/sqlite-5.sql"),
];

/// PostgreSQL's migrations as they shipped before the shared list (its own numbering, 1–3).
#[cfg(feature = "postgres")]
const POSTGRES_BEFORE: [&str; 3] = [
    include_str!("fixtures/schema-before-shared/postgres-1.sql"),
    include_str!("fixtures/schema-before-shared/postgres-2.sql"),
    include_str!("fixtures/schema-before-shared/postgres-3.sql"),
];

/// Data any of those schemas holds (from the first version on), `{bytes}` being the engine's
/// literal for the key hash 0x0101.
const OLD_DATA: &str = "
    INSERT INTO accounts (username, key_hash, subdomain, allowfrom, created_at)
        VALUES ('user-1', {bytes}, 'sub-1', '[\"10.0.0.0/8\"]', 1);
    INSERT INTO txt (subdomain, value, updated_at) VALUES ('sub-1', 'a', 1);
    INSERT INTO txt (subdomain, value, updated_at) VALUES ('sub-1', 'b', 2);";

/// Checks that an upgraded store kept the old data and works in every part of the schema.
async fn upgraded_store_works(store: &Store) {
    let old = store.account("user-1").await.unwrap().expect("the old account");
    assert_eq!((old.key_hash, old.allowfrom, old.bcrypt_hash), (vec![1, 1], strings(&["10.0.0.0/8"]), None));
    assert_eq!(store.txt_of("sub-1", 2).await.unwrap().unwrap().values, strings(&["a", "b"]));
    // An old account takes dns-persist-01 records (its counter starts at 0).
    assert_eq!(store.persist_of("sub-1").await.unwrap(), None);
    assert_eq!(stored(store.put_persist("sub-1", &persist("ca.example", None), 10).await.unwrap()).1, 1);
    assert_eq!(store.update_txt("sub-1", "c", 2).await.unwrap().values, strings(&["b", "c"]));
    store.record_audit(audit("user-1", now())).await.unwrap();
    store.put_own_challenge("t", Some("v"), now() + 60).await.unwrap();
    store.add_dnssec_key_if_none(13, Secret::new(vec![9])).await.unwrap();
    store.keep_signatures(1, vec![(1, [1; 32], [2; 64])]).await.unwrap();
    assert_eq!(store.kept_signatures(1, 0, 10).await.unwrap().rows, vec![([1; 32], [2; 64])]);
    assert!(store.import_account(&Account { bcrypt_hash: Some("$2a$".into()), ..account(2) }).await.unwrap());
    assert!(store.account_record("user-1", 2).await.unwrap().unwrap().last_used.is_some());
}

/// The schema of a SQLite file, in comparable form: version, then each table's columns (name,
/// type, not null, default, key position) and the indexes, sorted.
fn sqlite_schema(path: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
    let mut out = vec![format!("version {version}")];
    let names: Vec<(String, String)> = conn
        .prepare("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (kind, name) in names {
        out.push(format!("{kind} {name}"));
        if kind == "table" {
            let mut columns: Vec<String> = conn
                .prepare(&format!(
                    "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info('{name}')"
                ))
                .unwrap()
                .query_map([], |r| {
                    Ok(format!(
                        "  {} {} {} {:?} {}",
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, Option<String>>(3)?,
                        r.get::<_, i64>(4)?
                    ))
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            columns.sort();
            out.extend(columns);
        }
    }
    out
}

#[tokio::test]
async fn sqlite_databases_of_every_old_version_upgrade() {
    let fresh = Fresh::new(Backend::Sqlite);
    fresh.open().await.close().await;
    let want = sqlite_schema(&fresh.database.connection);
    assert_eq!(want[0], "version 15");
    for version in 1..=SQLITE_BEFORE.len() {
        let old = Fresh::new(Backend::Sqlite);
        // As the code before the shared list left it: WAL, one transaction per step.
        let mut conn = rusqlite::Connection::open(&old.database.connection).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        for (index, script) in SQLITE_BEFORE[..version].iter().enumerate() {
            let tx = conn.transaction().unwrap();
            tx.execute_batch(script).unwrap();
            tx.pragma_update(None, "user_version", index as i64 + 1).unwrap();
            tx.commit().unwrap();
        }
        conn.execute_batch(&OLD_DATA.replace("{bytes}", "X'0101'")).unwrap();
        drop(conn);
        let store = old.open().await;
        upgraded_store_works(&store).await;
        store.close().await;
        assert_eq!(sqlite_schema(&old.database.connection), want, "upgraded from SQLite version {version}");
    }
}

/// The schema of a PostgreSQL database, in comparable form: the version row, each column
/// (table, name, type, nullable, default) and the indexes, sorted.
#[cfg(feature = "postgres")]
fn postgres_schema(url: &str) -> String {
    pg::psql(
        url,
        "SELECT 'version ' || version || ' ' || shared FROM acme_delegate_schema;
         SELECT table_name || ' ' || column_name || ' ' || data_type || ' ' || is_nullable || ' '
             || coalesce(column_default, '-')
             FROM information_schema.columns WHERE table_schema = current_schema()
             ORDER BY table_name, column_name;
         SELECT 'index ' || tablename || ' ' || indexname FROM pg_indexes
             WHERE schemaname = current_schema() ORDER BY tablename, indexname;",
    )
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_databases_of_every_old_version_upgrade() {
    let fresh = Fresh::new(Backend::Postgres);
    fresh.open().await.close().await;
    let want = postgres_schema(&fresh.database.connection);
    assert!(want.starts_with("version 15 true\n"), "{want}");
    for version in 1..=POSTGRES_BEFORE.len() {
        let old = Fresh::new(Backend::Postgres);
        // As the code before the shared list left it: all steps, then its own count.
        let script = format!(
            "{} CREATE TABLE acme_delegate_schema (version BIGINT NOT NULL);
             INSERT INTO acme_delegate_schema (version) VALUES ({version}); {}",
            POSTGRES_BEFORE[..version].join("\n"),
            OLD_DATA.replace("{bytes}", "'\\x0101'")
        );
        pg::psql(&old.database.connection, &script);
        let store = old.open().await;
        upgraded_store_works(&store).await;
        store.close().await;
        assert_eq!(
            postgres_schema(&old.database.connection),
            want,
            "upgraded from PostgreSQL version {version}"
        );
    }
}
