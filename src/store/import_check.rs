//! The import's checks of each acme-dns row, before anything is written.
//!
//! Design note: an imported row reaches every instance and every secondary, so the import
//! applies the zone's own rule (`dns::zone::admit`: a subdomain is one short DNS label that
//! collides with nothing the zone serves, a value is what the API accepts) and the API's rules
//! for the rest of an account: the username is a UUID (the API finds accounts by the UUID in
//! `X-Api-User`), the key hash is a bcrypt hash, `allowfrom` is a JSON list of networks (an
//! unreadable list is refused, never read as "no restriction"). A row that fails is left out
//! and reported by its position and username; a value that fails is left out of its account,
//! which is imported without it. Usernames or subdomains that differ only in case name one
//! account to the API and the zone: the first row is imported, the others are reported as
//! conflicts inside the source (not as "already present").
//!
//! The position of a row is its `rowid` in an acme-dns SQLite file, and its place in username
//! order in a PostgreSQL database (whose `records` table has no row number).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use super::Account;
use super::import::Source;
use crate::cidr::Cidr;
use crate::dns::zone::{Refusal, check_txt_value, quote_short};

/// The subdomain check of the zone being imported into ([`crate::dns::zone::Zone::check_subdomain`]
/// knows the names its configuration serves).
pub(crate) type SubdomainCheck = Arc<dyn Fn(&str) -> Result<(), Refusal> + Send + Sync>;

/// Most rejections listed in a report; the rest are counted.
pub const LISTED: usize = 1000;

/// A row the import left out, or a value of a row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The row's position (see the module note).
    pub(crate) row: u64,
    /// Its username, quoted short and escaped.
    pub(crate) username: String,
    /// What is wrong.
    pub(crate) reason: String,
    /// Whether the whole account was left out (or only a value of it).
    pub(crate) account: bool,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.account { "not imported" } else { "imported without this value" };
        write!(f, "row {} (username {}): {what}: {}", self.row, self.username, self.reason)
    }
}

/// What the checks left out so far, shared with whoever reports on the import.
#[derive(Debug, Default)]
pub(crate) struct Rejections {
    /// The first [`LISTED`] rejections.
    pub(crate) listed: Vec<Rejection>,
    /// Accounts left out.
    pub(crate) accounts: usize,
    /// Values left out of accounts that were imported.
    pub(crate) values: usize,
}

/// One account as the source holds it, unchecked.
#[derive(Debug)]
pub(crate) struct Row {
    /// Position (see the module note).
    pub(crate) row: u64,
    /// Username as stored.
    pub(crate) username: String,
    /// The bcrypt hash, `None` when the column is neither text nor bytes of UTF-8.
    pub(crate) hash: Option<String>,
    /// Subdomain as stored.
    pub(crate) subdomain: String,
    /// `allowfrom` as stored (a JSON list), if any.
    pub(crate) allowfrom: Option<String>,
    /// Non-empty values, oldest first.
    pub(crate) values: Vec<String>,
}

/// Applies the rules to each row of one pass over the source.
pub(crate) struct Checker {
    /// The zone's subdomain rule.
    subdomain: SubdomainCheck,
    /// Lower-cased usernames that occur more than once in the source, with the row that took
    /// each (none yet).
    usernames: HashMap<String, Option<u64>>,
    /// Lower-cased subdomains that occur more than once in the source, likewise.
    subdomains: HashMap<String, Option<u64>>,
    /// What was left out.
    rejections: Arc<Mutex<Rejections>>,
}

/// A column's text in a report: quoted, escaped, at most 40 characters.
fn quote(text: &str) -> String {
    quote_short(text, 40)
}

/// Whether `text` is a UUID in canonical lower-case form (what the API looks accounts up by).
fn is_uuid(text: &str) -> bool {
    text.len() == 36
        && text.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

/// Whether `hash` has the form of a bcrypt hash (`$2a$10$` and 53 characters).
fn is_bcrypt(hash: &str) -> bool {
    hash.len() == 60 && hash.starts_with("$2") && hash.bytes().all(|b| b.is_ascii_graphic())
}

/// Reads an `allowfrom` column: a JSON list of networks, `""` entries meaning no restriction.
fn allowfrom(column: Option<&str>) -> Result<Vec<String>, String> {
    let Some(text) = column.filter(|t| !t.trim().is_empty()) else { return Ok(Vec::new()) };
    let list: Vec<String> = serde_json::from_str(text)
        .map_err(|_| format!("allowfrom {} is not a JSON list of strings", quote(text)))?;
    let list: Vec<String> = list.into_iter().filter(|a| !a.is_empty()).collect();
    for network in &list {
        network.parse::<Cidr>().map_err(|_| format!("allowfrom holds {}, not a network", quote(network)))?;
    }
    Ok(list.into_iter().map(|a| a.replace(['[', ']'], "")).collect())
}

impl Checker {
    /// A checker applying `subdomain` (the zone's rule) and reporting into `rejections`.
    pub(crate) fn new(subdomain: SubdomainCheck, rejections: Arc<Mutex<Rejections>>) -> Self {
        Self { subdomain, usernames: HashMap::new(), subdomains: HashMap::new(), rejections }
    }

    /// Names the usernames and subdomains (lower-cased) that occur more than once in the source.
    pub(crate) fn set_duplicates(&mut self, usernames: Vec<String>, subdomains: Vec<String>) {
        self.usernames = usernames.into_iter().map(|u| (u, None)).collect();
        self.subdomains = subdomains.into_iter().map(|s| (s, None)).collect();
    }

    /// Records one rejection.
    fn reject(&self, row: &Row, reason: String, account: bool) {
        let mut rejections = self.rejections.lock().unwrap_or_else(PoisonError::into_inner);
        if account {
            rejections.accounts += 1;
        } else {
            rejections.values += 1;
        }
        if rejections.listed.len() < LISTED {
            let username = quote(&row.username);
            rejections.listed.push(Rejection { row: row.row, username, reason, account });
        }
    }

    /// The account of `row` with the values that pass, or `None` when the row is left out.
    pub(crate) fn check(&mut self, row: Row) -> Option<Source> {
        let username = row.username.to_ascii_lowercase();
        let subdomain = row.subdomain.to_ascii_lowercase();
        let account = (|| {
            if !is_uuid(&username) {
                return Err("the username is not a UUID".to_owned());
            }
            (self.subdomain)(&subdomain).map_err(|refusal| refusal.to_string())?;
            let hash = row.hash.as_deref().filter(|h| is_bcrypt(h));
            let hash = hash.ok_or("the password column is not a bcrypt hash")?.to_owned();
            let allowfrom = allowfrom(row.allowfrom.as_deref())?;
            for (name, seen, what) in
                [(&username, &self.usernames, "username"), (&subdomain, &self.subdomains, "subdomain")]
            {
                if let Some(Some(first)) = seen.get(name.as_str()) {
                    return Err(format!(
                        "its {what} differs only in case from that of row {first}, imported"
                    ));
                }
            }
            // Both are this row's now (a row left out above takes neither).
            for (name, seen) in [(&username, &mut self.usernames), (&subdomain, &mut self.subdomains)] {
                if let Some(taken) = seen.get_mut(name.as_str()) {
                    *taken = Some(row.row);
                }
            }
            Ok(Account {
                username: username.clone(),
                key_hash: Vec::new(),
                bcrypt_hash: Some(hash),
                subdomain: subdomain.clone(),
                allowfrom,
            })
        })();
        let account = match account {
            Ok(account) => account,
            Err(reason) => {
                self.reject(&row, reason, true);
                return None;
            }
        };
        let mut values = Vec::with_capacity(row.values.len());
        for value in &row.values {
            match check_txt_value(value) {
                Ok(()) => values.push(value.clone()),
                Err(refusal) => self.reject(&row, refusal.to_string(), false),
            }
        }
        Some(Source { account, values })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = "c36f50e8-4632-44f0-83fe-e070fef28a10";
    const SUB: &str = "a097455b-52cc-4569-90c8-7a4b97c6eba8";
    const HASH: &str = "$2a$10$0123456789012345678901uJxFV0wYpH1bYbN7RT2PDFJOfhb0H6a";
    const VALUE: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn row(n: u64, username: &str, subdomain: &str, values: &[&str]) -> Row {
        Row {
            row: n,
            username: username.into(),
            hash: Some(HASH.into()),
            subdomain: subdomain.into(),
            allowfrom: Some("[\"\", \"10.0.0.0/8\"]".into()),
            values: values.iter().map(|&v| v.to_owned()).collect(),
        }
    }

    fn checker() -> (Checker, Arc<Mutex<Rejections>>) {
        let rejections = Arc::new(Mutex::new(Rejections::default()));
        let check: SubdomainCheck = Arc::new(crate::dns::zone::check_subdomain);
        (Checker::new(check, rejections.clone()), rejections)
    }

    #[test]
    fn a_good_row_passes_folded_and_bad_values_are_left_out() {
        let (mut checker, rejections) = checker();
        let long = "b".repeat(70_000);
        let source =
            checker.check(row(1, &USER.to_uppercase(), &SUB.to_uppercase(), &[VALUE, &long])).unwrap();
        assert_eq!(source.account.username, USER);
        assert_eq!(source.account.subdomain, SUB);
        assert_eq!(source.account.allowfrom, ["10.0.0.0/8"]);
        assert_eq!(source.values, [VALUE]);
        let rejections = rejections.lock().unwrap();
        assert_eq!((rejections.accounts, rejections.values), (0, 1));
        assert!(rejections.listed[0].to_string().contains("70000 octets"), "{}", rejections.listed[0]);
    }

    #[test]
    fn bad_rows_are_left_out_with_the_reason() {
        let (mut checker, rejections) = checker();
        let cases: [(Row, &str); 7] = [
            (row(1, "AA-1", SUB, &[]), "not a UUID"),
            (row(2, USER, &"a".repeat(64), &[]), "64 octets"),
            (row(3, USER, "a.b.c", &[]), "letters, digits"),
            (row(4, USER, "*", &[]), "letters, digits"),
            (Row { hash: Some("secret".into()), ..row(5, USER, SUB, &[]) }, "bcrypt"),
            (Row { hash: None, ..row(6, USER, SUB, &[]) }, "bcrypt"),
            (
                Row { allowfrom: Some("[\"not a network\"]".into()), ..row(7, USER, SUB, &[]) },
                "not a network",
            ),
        ];
        for (row, reason) in cases {
            assert!(checker.check(row).is_none(), "{reason}");
        }
        let rejections = rejections.lock().unwrap();
        assert_eq!(rejections.accounts, 7);
        for (rejection, (n, reason)) in rejections.listed.iter().zip([
            (1, "not a UUID"),
            (2, "64 octets"),
            (3, "letters, digits"),
            (4, "letters, digits"),
            (5, "bcrypt"),
            (6, "bcrypt"),
            (7, "not a network"),
        ]) {
            assert_eq!(rejection.row, n);
            assert!(rejection.reason.contains(reason), "{rejection}");
        }
    }

    #[test]
    fn case_duplicates_in_the_source_are_conflicts() {
        let (mut checker, rejections) = checker();
        checker.set_duplicates(vec![USER.into()], vec![]);
        assert!(checker.check(row(3, USER, SUB, &[])).is_some());
        let other = "b097455b-52cc-4569-90c8-7a4b97c6eba8";
        assert!(checker.check(row(9, &USER.to_uppercase(), other, &[])).is_none());
        let rejections = rejections.lock().unwrap();
        assert_eq!(rejections.listed[0].row, 9);
        assert!(rejections.listed[0].reason.contains("differs only in case from that of row 3"));
    }
}
