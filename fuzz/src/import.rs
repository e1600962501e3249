//! The `import_rows` target: an acme-dns SQLite file of arbitrary rows, imported into a fresh
//! SQLite store, loaded into a zone as the daemon starts, and transferred.
//!
//! Design note: this is the path of `acme-delegate import-acme-dns` and the next start, from
//! end to end through the public API: the import's row reader (`store::import`, which streams
//! and merges the two tables), the store's batch writer and snapshot, `ZoneSync::load`, and an
//! AXFR checked as in `xfr.rs`. The rows are arbitrary: any SQLite value in any column (text,
//! blob, integer, NULL), names that differ in case only, values of no account, a file with
//! acme-dns's constraints or without any, imported with `--strict` or without. An import may
//! refuse a file (an error is fine); it must not panic, must count what it did consistently
//! (found = imported + skipped + refused, each refusal listed), and what it stored must load
//! and transfer, and be rows the zone serves in full: every account passed the zone's rule,
//! so the zone refuses none of them. The input is read as choices (`rows::Reader`), with a
//! usual text for each column (a UUID, a bcrypt-shaped hash, a list of networks, a value).
//! Files live in a directory of the process under the system's temporary directory (`TMPDIR`;
//! /dev/shm keeps the disk out of it), made anew for every input.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use acme_delegate::config::{Database, Engine};
use acme_delegate::store::Store;
use acme_delegate::store::import::{ImportError, Options, import_acme_dns};
use acme_delegate::store::import_check::LISTED;
use acme_delegate::zone_sync::ZoneSync;
use rusqlite::types::Value;

use crate::rows::{Reader, Text, usual_label, usual_value};
use crate::xfr;

/// Rows per table at most.
const MAX_ROWS: usize = 24;
/// Bytes of text per input at most.
const MAX_BYTES: usize = 300_000;

/// A column's value, of any SQLite type.
#[derive(Debug)]
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
    /// Reads a cell.
    fn read(r: &mut Reader) -> Self {
        match r.u8() % 4 {
            0 => Cell::Text(Text::read(r)),
            1 => {
                let len = usize::from(r.u8());
                Cell::Blob(r.bytes(len).to_vec())
            }
            2 => Cell::Int(i64::from_be_bytes(std::array::from_fn(|_| r.u8()))),
            _ => Cell::Null,
        }
    }

    /// The SQLite value; `usual` makes the column's usual text.
    fn value(&self, usual: fn(u8) -> String, budget: &mut usize) -> Value {
        match self {
            Cell::Text(text) => Value::Text(text.make(usual, budget)),
            Cell::Blob(bytes) => Value::Blob(bytes.clone()),
            Cell::Int(n) => Value::Integer(*n),
            Cell::Null => Value::Null,
        }
    }
}

/// A usual password hash: the form of a bcrypt hash, numbered (unique, as acme-dns's schema
/// wants).
fn usual_hash(n: u8) -> String {
    format!("$2a$10${n:0>53}")
}

/// A usual `allowfrom` column: a JSON list of networks, or something close to one.
fn usual_allowfrom(n: u8) -> String {
    const LISTS: [&str; 8] = [
        "[]",
        "[\"\"]",
        "[\"192.0.2.0/24\"]",
        "[\"[::1]/128\", \"10.0.0.1\"]",
        "[\"300.1.1.1/8\"]",
        "{}",
        "null",
        "[\"192.0.2.0/24\",",
    ];
    LISTS[usize::from(n) % LISTS.len()].to_owned()
}

/// A `records` row: username, password hash, subdomain, allowfrom.
#[derive(Debug)]
pub struct Account(Cell, Cell, Cell, Cell);

/// A `txt` row: subdomain, value, last update.
#[derive(Debug)]
pub struct Txt(Cell, Cell, Cell);

/// An input: the two tables, the schema, how many values each name keeps, DNSSEC, and
/// whether the import is strict.
#[derive(Debug)]
pub struct Source {
    /// acme-dns's schema (NOT NULL, UNIQUE) or columns without constraints.
    pub schema: bool,
    /// The `records` rows.
    pub accounts: Vec<Account>,
    /// The `txt` rows.
    pub txt: Vec<Txt>,
    /// Values kept per name (1 to 4).
    pub keep: u8,
    /// Whether the zone is signed.
    pub signed: bool,
    /// `--strict`: nothing is imported when a row fails its checks.
    pub strict: bool,
}

impl Source {
    /// Reads an input.
    pub fn read(data: &[u8]) -> Self {
        let r = &mut Reader::new(data);
        let flags = r.u8();
        let accounts = (0..r.count(MAX_ROWS))
            .map(|_| Account(Cell::read(r), Cell::read(r), Cell::read(r), Cell::read(r)))
            .collect();
        let txt = (0..r.count(MAX_ROWS)).map(|_| Txt(Cell::read(r), Cell::read(r), Cell::read(r))).collect();
        Self {
            schema: flags & 1 == 1,
            accounts,
            txt,
            keep: flags >> 4,
            signed: flags & 2 == 2,
            strict: flags & 4 == 4,
        }
    }
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
    let schema = if input.schema {
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
            user.value(usual_label, &mut budget),
            pass.value(usual_hash, &mut budget),
            sub.value(usual_label, &mut budget),
            allow.value(usual_allowfrom, &mut budget),
        ];
        let _ = conn.execute("INSERT INTO records VALUES (?1, ?2, ?3, ?4)", rusqlite::params_from_iter(row));
    }
    for Txt(sub, value, at) in input.txt.iter().take(MAX_ROWS) {
        let row = [
            sub.value(usual_label, &mut budget),
            value.value(usual_value, &mut budget),
            at.value(usual_value, &mut budget),
        ];
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
    let zone = xfr::zone(input.signed);
    let rule = Arc::clone(&zone);
    let options = Options {
        keep,
        strict: input.strict,
        subdomain: Arc::new(move |label: &str| rule.check_subdomain(label)),
    };
    let source = source.display().to_string();
    let loaded = xfr::runtime().block_on(async {
        let store = Store::open(&database).await.expect("a fresh store opens");
        let report = match import_acme_dns(&store, &source, &options, &mut |_| ()).await {
            Ok(report) => report,
            Err(ImportError::Refused { report }) => {
                assert!(input.strict, "refused without --strict: {report:?}");
                assert!(
                    report.refused + report.refused_values > 0,
                    "refused, but nothing failed: {report:?}"
                );
                return false;
            }
            // A file the reader refuses (a column of the wrong type): said, not a crash.
            Err(_) => return false,
        };
        let listed = (report.refused + report.refused_values).min(LISTED);
        assert_eq!(
            report.imported + report.skipped + report.refused,
            report.found,
            "import counts: {report:?}"
        );
        assert_eq!(report.skipped, 0, "a fresh store has nothing to skip: {report:?}");
        assert_eq!(report.rejections.len(), listed, "rejections listed: {report:?}");
        if input.strict {
            assert_eq!(
                report.refused + report.refused_values,
                0,
                "--strict imported refused rows: {report:?}"
            );
        }
        let again = import_acme_dns(&store, &source, &options, &mut |_| ())
            .await
            .expect("the same file imports again");
        assert_eq!((again.imported, again.values), (0, 0), "a second import changed something: {again:?}");
        assert_eq!(
            (again.found, again.skipped, again.refused),
            (report.found, report.imported, report.refused),
            "the second import counts otherwise: {again:?}, first {report:?}"
        );
        let sync = ZoneSync::new(store, zone.clone(), keep, acme_delegate::config::defaults::MAX_CLOCK_SKEW);
        let count = sync.load(true).await.expect("the imported store loads");
        assert_eq!(count, report.imported, "subdomains loaded against imported: {report:?}");
        assert_eq!(zone.refused_rows(), 0, "the zone refuses rows the import wrote: {report:?}");
        true
    });
    // The transfer runs its own `block_on`, so after this one.
    if loaded {
        xfr::check_axfr(&zone);
    }
}
