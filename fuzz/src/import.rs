//! The `import_rows` target: an acme-dns SQLite file of arbitrary rows, imported into a fresh
//! SQLite store, loaded into a zone as the daemon starts, and transferred.
//!
//! Design note: this is the path of `acme-delegate import-acme-dns` and the next start, from
//! end to end through the public API: the import's row reader (`store::import`, which streams
//! and merges the two tables), the store's batch writer and snapshot, `ZoneSync::load`, and an
//! AXFR checked as in `xfr.rs`. The rows are arbitrary: any SQLite value in any column (text,
//! blob, integer, NULL), names that differ in case only, values of no account, a file with
//! acme-dns's constraints or without any. An import may refuse a file (an error is fine); it
//! must not panic, must count what it did consistently, and what it stored must load and
//! transfer. Files live in a directory of the process under the system's temporary directory
//! (`TMPDIR`; /dev/shm keeps the disk out of it), made anew for every input.

use std::path::PathBuf;
use std::sync::OnceLock;

use acme_delegate::config::{Database, Engine};
use acme_delegate::store::Store;
use acme_delegate::store::import::import_acme_dns;
use acme_delegate::sync::ZoneSync;
use arbitrary::Arbitrary;
use rusqlite::types::Value;

use crate::rows::Text;
use crate::xfr;

/// Rows per table at most.
const MAX_ROWS: usize = 24;
/// Bytes of text per input at most.
const MAX_BYTES: usize = 300_000;

/// A column's value, of any SQLite type.
#[derive(Arbitrary, Debug)]
pub enum Cell {
    /// Text.
    Text(Text),
    /// A blob (acme-dns's Go driver stores the hash so), UTF-8 or not.
    Blob(Vec<u8>),
    /// An integer.
    Int(i64),
    /// NULL.
    Null,
}

impl Cell {
    /// The SQLite value; `label` shapes text as a subdomain.
    fn value(&self, label: bool, budget: &mut usize) -> Value {
        match self {
            Cell::Text(text) => Value::Text(text.make(label, budget)),
            Cell::Blob(bytes) => Value::Blob(bytes.clone()),
            Cell::Int(n) => Value::Integer(*n),
            Cell::Null => Value::Null,
        }
    }
}

/// A `records` row: username, password hash, subdomain, allowfrom.
#[derive(Arbitrary, Debug)]
pub struct Account(Cell, Cell, Cell, Cell);

/// A `txt` row: subdomain, value, last update.
#[derive(Arbitrary, Debug)]
pub struct Txt(Cell, Cell, Cell);

/// An input: the two tables, the schema, how many values each name keeps, DNSSEC.
#[derive(Arbitrary, Debug)]
pub struct Source {
    /// acme-dns's schema (NOT NULL, UNIQUE) or columns without constraints.
    pub strict: bool,
    /// The `records` rows.
    pub accounts: Vec<Account>,
    /// The `txt` rows.
    pub txt: Vec<Txt>,
    /// Values kept per name (1 to 4).
    pub keep: u8,
    /// Whether the zone is signed.
    pub signed: bool,
}

/// The directory of this process's files, made once.
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("acme-delegate-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        dir
    })
}

/// Removes a SQLite file and its journals.
fn remove_db(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(name);
    }
}

/// Writes the acme-dns file; rows the schema refuses are left out, as acme-dns would have.
fn write_source(path: &std::path::Path, input: &Source) {
    remove_db(path);
    let conn = rusqlite::Connection::open(path).expect("a source file");
    let schema = if input.strict {
        "CREATE TABLE records(Username TEXT UNIQUE NOT NULL PRIMARY KEY, Password TEXT UNIQUE NOT NULL, \
             Subdomain TEXT UNIQUE NOT NULL, AllowFrom TEXT); \
         CREATE TABLE txt(Subdomain TEXT NOT NULL, Value TEXT NOT NULL DEFAULT '', LastUpdate INT);"
    } else {
        "CREATE TABLE records(Username, Password, Subdomain, AllowFrom); \
         CREATE TABLE txt(Subdomain, Value, LastUpdate);"
    };
    conn.execute_batch(schema).expect("the schema");
    let mut budget = MAX_BYTES;
    for Account(user, pass, sub, allow) in input.accounts.iter().take(MAX_ROWS) {
        let row = [
            user.value(true, &mut budget),
            pass.value(false, &mut budget),
            sub.value(true, &mut budget),
            allow.value(false, &mut budget),
        ];
        let _ = conn.execute("INSERT INTO records VALUES (?1, ?2, ?3, ?4)", rusqlite::params_from_iter(row));
    }
    for Txt(sub, value, at) in input.txt.iter().take(MAX_ROWS) {
        let row =
            [sub.value(true, &mut budget), value.value(false, &mut budget), at.value(false, &mut budget)];
        let _ = conn.execute("INSERT INTO txt VALUES (?1, ?2, ?3)", rusqlite::params_from_iter(row));
    }
}

/// Runs one input; panics when the import, the load or the transfer goes wrong.
pub fn run(input: &Source) {
    let source = dir().join("acme-dns.db");
    let target = dir().join("store.db");
    write_source(&source, input);
    remove_db(&target);
    let keep = usize::from(input.keep % 4) + 1;
    let database = Database { engine: Engine::Sqlite, connection: target.display().to_string() };
    let loaded = xfr::runtime().block_on(async {
        let store = Store::open(&database).await.expect("a fresh store opens");
        let report = match import_acme_dns(&store, &source.display().to_string(), keep, &mut |_| ()).await {
            Ok(report) => report,
            // A file the reader refuses (a column of the wrong type): said, not a crash.
            Err(_) => return None,
        };
        assert_eq!(report.imported + report.skipped, report.found, "import counts: {report:?}");
        let again = import_acme_dns(&store, &source.display().to_string(), keep, &mut |_| ())
            .await
            .expect("the same file imports a second time");
        assert_eq!((again.imported, again.values), (0, 0), "a second import changed something: {again:?}");
        let zone = xfr::zone(input.signed);
        let sync = ZoneSync::new(store, zone.clone(), keep);
        let count = sync.load().await.expect("the imported store loads");
        assert!(count >= report.imported, "{count} subdomains loaded, {} imported", report.imported);
        Some(zone)
    });
    // The transfer runs its own `block_on`, so after this one.
    if let Some(zone) = loaded {
        xfr::check_axfr(&zone);
    }
}
