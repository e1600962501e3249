//! Taking over an acme-dns database (`acme-delegate import-acme-dns <source>`).
//!
//! Design note: acme-dns keeps accounts in `records` (username, bcrypt hash of the key,
//! subdomain, allowfrom as a JSON list) and two rows per subdomain in `txt`. The import copies
//! accounts with their bcrypt hash (which the API verifies once and then replaces with our
//! SHA-256 hash) and the non-empty TXT values in update order. It is idempotent: an account
//! already present (same username or subdomain) is skipped, with its values, so running it
//! again changes nothing. The source is only read.
//!
//! In SQLite acme-dns stores the hash as a BLOB (Go `[]byte`), in PostgreSQL as TEXT; both are
//! accepted.

use super::{Account, Store, StoreError};

/// One acme-dns account with its TXT values (oldest first).
#[derive(Debug)]
struct Source {
    /// The account.
    account: Account,
    /// Non-empty values, in update order.
    values: Vec<String>,
}

/// What an import did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Accounts found in the source.
    pub found: usize,
    /// Accounts copied.
    pub imported: usize,
    /// Accounts already present, left as they are.
    pub skipped: usize,
    /// TXT values copied.
    pub values: usize,
}

/// Turns a stored hash (BLOB or TEXT) into text.
#[cfg(feature = "sqlite")]
fn hash_text(value: rusqlite::types::Value) -> Option<String> {
    match value {
        rusqlite::types::Value::Text(s) => Some(s),
        rusqlite::types::Value::Blob(b) => String::from_utf8(b).ok(),
        _ => None,
    }
}

/// Builds an account from acme-dns's columns.
fn account(username: String, hash: String, subdomain: String, allowfrom: Option<String>) -> Account {
    let allowfrom: Vec<String> = allowfrom.and_then(|a| serde_json::from_str(&a).ok()).unwrap_or_default();
    Account {
        username: username.to_ascii_lowercase(),
        key_hash: Vec::new(),
        bcrypt_hash: Some(hash),
        subdomain: subdomain.to_ascii_lowercase(),
        allowfrom: allowfrom.into_iter().filter(|a| !a.is_empty()).collect(),
    }
}

/// Reads an acme-dns SQLite file.
#[cfg(feature = "sqlite")]
fn read_sqlite(path: &str) -> Result<Vec<Source>, StoreError> {
    let open = |e: rusqlite::Error| StoreError::Open { target: path.to_owned(), reason: e.to_string() };
    let conn = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(open)?;
    let mut stmt =
        conn.prepare("SELECT Username, Password, Subdomain, AllowFrom FROM records").map_err(open)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, rusqlite::types::Value>(1)?,
                r.get::<_, String>(2)?,
                r.get(3)?,
            ))
        })
        .map_err(open)?;
    let mut out = Vec::new();
    for row in rows {
        let (username, hash, subdomain, allowfrom) = row.map_err(open)?;
        let Some(hash) = hash_text(hash) else { continue };
        out.push(Source { account: account(username, hash, subdomain, allowfrom), values: Vec::new() });
    }
    let mut stmt = conn
        .prepare("SELECT Subdomain, Value FROM txt WHERE Value <> '' ORDER BY LastUpdate, rowid")
        .map_err(open)?;
    let values =
        stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))).map_err(open)?;
    for value in values {
        let (subdomain, value) = value.map_err(open)?;
        if let Some(source) = out.iter_mut().find(|s| s.account.subdomain.eq_ignore_ascii_case(&subdomain)) {
            source.values.push(value);
        }
    }
    Ok(out)
}

/// Reads an acme-dns PostgreSQL database.
#[cfg(feature = "postgres")]
async fn read_postgres(url: &str) -> Result<Vec<Source>, StoreError> {
    let target = super::redact(url);
    let open = |e: tokio_postgres::Error| StoreError::Open { target: target.clone(), reason: e.to_string() };
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.map_err(open)?;
    let driver = tokio::spawn(connection);
    let rows = client
        .query("SELECT username, password, subdomain, allowfrom FROM records", &[])
        .await
        .map_err(open)?;
    let mut out: Vec<Source> = rows
        .iter()
        .map(|r| Source { account: account(r.get(0), r.get(1), r.get(2), r.get(3)), values: Vec::new() })
        .collect();
    let values = client
        .query("SELECT subdomain, value FROM txt WHERE value <> '' ORDER BY lastupdate, rowid", &[])
        .await
        .map_err(open)?;
    for row in values {
        let subdomain: String = row.get(0);
        if let Some(source) = out.iter_mut().find(|s| s.account.subdomain.eq_ignore_ascii_case(&subdomain)) {
            source.values.push(row.get(1));
        }
    }
    driver.abort();
    Ok(out)
}

/// Without the `sqlite` feature an acme-dns SQLite file cannot be read.
#[cfg(not(feature = "sqlite"))]
fn read_sqlite(path: &str) -> Result<Vec<Source>, StoreError> {
    Err(super::not_built(path, "sqlite"))
}

/// Without the `postgres` feature an acme-dns PostgreSQL database cannot be read.
#[cfg(not(feature = "postgres"))]
async fn read_postgres(url: &str) -> Result<Vec<Source>, StoreError> {
    Err(super::not_built(&super::redact(url), "postgres"))
}

/// Imports the acme-dns database at `source` (a file path or a `postgres://` URL) into `store`.
pub async fn import_acme_dns(store: &Store, source: &str, keep: usize) -> Result<Report, StoreError> {
    let sources = if source.starts_with("postgres://") || source.starts_with("postgresql://") {
        read_postgres(source).await?
    } else {
        let path = source.to_owned();
        if !std::path::Path::new(&path).exists() {
            return Err(StoreError::Open { target: path, reason: "no such file".into() });
        }
        tokio::task::spawn_blocking(move || read_sqlite(&path))
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))??
    };
    let mut report = Report { found: sources.len(), ..Report::default() };
    for source in sources {
        if !store.import_account(&source.account).await? {
            report.skipped += 1;
            continue;
        }
        report.imported += 1;
        let start = source.values.len().saturating_sub(keep);
        for value in &source.values[start..] {
            store.update_txt(&source.account.subdomain, value, keep).await?;
            report.values += 1;
        }
    }
    Ok(report)
}
