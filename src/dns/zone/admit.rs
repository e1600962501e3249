//! What the zone can serve: the one rule for registered names and their values.
//!
//! Design note: every instance and every secondary serves what the store holds, so one bad
//! row reaches every server. The rule is written once, here, and applied twice: where data
//! enters (the API's update, the acme-dns import) and where the zone is built from stored rows
//! ([`Zone::admit`]), so that a row written by an operator's SQL, an older version or a bug
//! cannot take DNS down either. A name the zone cannot serve is left out and a value it cannot
//! serve is dropped; each is logged when it is met (once per change of that name, never per
//! query) and counted ([`Zone::refused_rows`], exported as a metric).
//!
//! The rule:
//! - A subdomain is one DNS label of letters, digits and inner hyphens (as the UUIDs acme-dns
//!   and the API make), at most [`MAX_SUBDOMAIN`] octets, so that its persist name
//!   (`persist-<subdomain>`) is a label too. It does not start with the persist prefix, and
//!   it is not the first label of a name the zone serves from its configuration (`ns1`, a
//!   delegation, …). Underscore labels (`_acme-challenge`) and `*` fail the character rule.
//! - A dns-01 value is what the API accepts: 43 characters of base64url (a SHA-256 digest).
//! - A persist value is an RFC 8659 issue-value no longer than [`MAX_PERSIST_VALUE`].
//! - A name serves each value once (at its newest place) and at most [`MAX_VALUES`] values
//!   (the most `[dns] txt_values` allows); the newest are kept. Together the bounds keep every
//!   RRset far below one DNS message. The own challenge (`_acme-challenge`) serves each of its
//!   dns-01 values once too.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use super::Zone;
use super::dns_persist::PREFIX;

/// Longest subdomain label, in octets: a label is at most 63, and the persist name adds its
/// prefix.
pub const MAX_SUBDOMAIN: usize = 63 - PREFIX.len();

/// Length of a dns-01 TXT value: base64url of a SHA-256 digest without padding.
pub const TXT_LEN: usize = 43;

/// Most values one registered name serves (the upper bound of `[dns] txt_values`).
pub const MAX_VALUES: usize = 100;

/// Longest persist value: the longest issuer and account URI with every parameter, the
/// further ones included (about 1.5 KB: ten such records still fit one message many times).
pub(super) const MAX_PERSIST_VALUE: usize = crate::dns_persist::MAX_ISSUER
    + crate::dns_persist::MAX_ACCOUNT_URI
    + "; accounturi=; policy=wildcard; persistUntil=".len()
    + 20
    + crate::dns_persist::MAX_PARAMS_LEN;

/// Why a name or a value cannot be in the zone; the text names what is wrong without quoting
/// more than a short, escaped part of the data.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The subdomain is empty.
    #[error("the subdomain is empty")]
    EmptySubdomain,
    /// The subdomain is longer than [`MAX_SUBDOMAIN`] octets.
    #[error(
        "the subdomain is {0} octets long; at most {MAX_SUBDOMAIN} fit one DNS label with its persist name"
    )]
    LongSubdomain(usize),
    /// The subdomain holds something other than letters, digits and inner hyphens.
    #[error("the subdomain holds {0}, where only letters, digits and inner hyphens are allowed")]
    SubdomainCharacter(String),
    /// The subdomain is a name the server uses itself.
    #[error("the subdomain {0} is a name this zone serves itself")]
    ReservedSubdomain(String),
    /// A dns-01 value that is not 43 characters of base64url.
    #[error("a TXT value of {0} octets is not {TXT_LEN} characters of base64url")]
    TxtValue(usize),
    /// A persist value that is too long or not an issue-value.
    #[error("a persist value of {0} octets is not an issue-value of at most {MAX_PERSIST_VALUE} octets")]
    PersistValue(usize),
    /// More values than a name may serve.
    #[error("{0} values, where at most {MAX_VALUES} are served (the newest)")]
    TooManyValues(usize),
}

/// `text` in quotes, cut to `chars` characters, with anything unprintable escaped: stored data
/// named in a message (the import names rows the same way).
pub fn quote_short(text: &str, chars: usize) -> String {
    let mut out: String = text.chars().take(chars).flat_map(char::escape_default).collect();
    if text.chars().nth(chars).is_some() {
        out.push('…');
    }
    format!("\"{out}\"")
}

/// A name in a refusal: short, since it may be anything a row held.
fn quote(text: &str) -> String {
    quote_short(text, 24)
}

/// Checks a subdomain label against the rule of this module, apart from the names the zone's
/// configuration serves (see [`Zone::check_subdomain`]). Letters may be in either case: the
/// zone and the store fold them.
pub fn check_subdomain(label: &str) -> Result<(), Refusal> {
    let bytes = label.as_bytes();
    if bytes.is_empty() {
        return Err(Refusal::EmptySubdomain);
    }
    if bytes.len() > MAX_SUBDOMAIN {
        return Err(Refusal::LongSubdomain(bytes.len()));
    }
    if let Some(bad) = label.chars().find(|c| !c.is_ascii_alphanumeric() && *c != '-') {
        return Err(Refusal::SubdomainCharacter(quote(&bad.to_string())));
    }
    if bytes.first() == Some(&b'-') || bytes.last() == Some(&b'-') {
        return Err(Refusal::SubdomainCharacter("a hyphen at its start or end".into()));
    }
    if label.get(..PREFIX.len()).is_some_and(|p| p.eq_ignore_ascii_case(PREFIX)) {
        return Err(Refusal::ReservedSubdomain(quote(label)));
    }
    Ok(())
}

/// Checks a dns-01 value: exactly what `POST /update` accepts.
pub fn check_txt_value(value: &str) -> Result<(), Refusal> {
    let ok =
        value.len() == TXT_LEN && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok { Ok(()) } else { Err(Refusal::TxtValue(value.len())) }
}

/// Checks a dns-01 persist value (the API makes them from checked fields; this bounds what a
/// stored row can carry).
pub fn check_persist_value(value: &str) -> Result<(), Refusal> {
    let ok = value.len() <= MAX_PERSIST_VALUE && crate::dns_persist::Parsed::parse(value).is_some();
    if ok { Ok(()) } else { Err(Refusal::PersistValue(value.len())) }
}

/// The first labels below `apex` of the names the configuration serves (each static owner and
/// delegation point): a subdomain of that label would collide with them.
pub(super) fn reserved_labels<'a>(apex: &[u8], owners: impl Iterator<Item = &'a [u8]>) -> HashSet<Vec<u8>> {
    owners
        .filter(|owner| owner.len() > apex.len() && owner.ends_with(apex))
        .filter_map(|owner| {
            // Walk to the label just before the apex.
            let mut at = 0;
            loop {
                let len = usize::from(*owner.get(at)?);
                if at + 1 + len == owner.len() - apex.len() {
                    return owner.get(at + 1..at + 1 + len).map(<[u8]>::to_ascii_lowercase);
                }
                at += 1 + len;
            }
        })
        .collect()
}

/// `values` with each value once, at its newest (last) place. As the store keeps values when
/// one is sent again: two identical records are one record to DNS (RFC 2181 section 5), and an
/// IXFR could not carry the second.
fn served_once<T: AsRef<str>>(values: Vec<T>) -> Vec<T> {
    let mut seen = HashSet::with_capacity(values.len());
    let mut newest_first: Vec<T> =
        values.into_iter().rev().filter(|v| seen.insert(v.as_ref().to_owned())).collect();
    newest_first.reverse();
    newest_first
}

impl Zone {
    /// Checks a subdomain label as [`check_subdomain`] does, and that the configuration serves
    /// no name at or below it.
    pub fn check_subdomain(&self, label: &str) -> Result<(), Refusal> {
        check_subdomain(label)?;
        if self.reserved.contains(label.to_ascii_lowercase().as_bytes()) {
            return Err(Refusal::ReservedSubdomain(quote(label)));
        }
        Ok(())
    }

    /// Checks a registered name's label (a subdomain or its persist name) and its values,
    /// returning the values to serve (the newest [`MAX_VALUES`] of those that pass), or `None`
    /// when the name cannot be in the zone at all. What is left out is logged and counted.
    pub(super) fn admit<T: AsRef<str>>(
        &self,
        label: &str,
        values: impl IntoIterator<Item = T>,
    ) -> Option<Vec<T>> {
        let (subdomain, persist) = match label.get(..PREFIX.len()) {
            Some(p) if p.eq_ignore_ascii_case(PREFIX) => (&label[PREFIX.len()..], true),
            _ => (label, false),
        };
        if let Err(refusal) = self.check_subdomain(subdomain) {
            self.refuse(label, &refusal, 1 + values.into_iter().count());
            return None;
        }
        let check = if persist { check_persist_value } else { check_txt_value };
        let mut kept: Vec<T> = Vec::new();
        for value in values.into_iter().filter(|v| !v.as_ref().is_empty()) {
            match check(value.as_ref()) {
                Ok(()) => kept.push(value),
                Err(refusal) => self.refuse(label, &refusal, 1),
            }
        }
        let mut kept = served_once(kept);
        if kept.len() > MAX_VALUES {
            self.refuse(label, &Refusal::TooManyValues(kept.len()), kept.len() - MAX_VALUES);
            kept.drain(..kept.len() - MAX_VALUES);
        }
        Some(kept)
    }

    /// The values of the API's own challenge that the zone can serve (dns-01 values, each
    /// once).
    pub(super) fn admit_own_challenge(&self, values: &[String]) -> Vec<String> {
        let mut kept = Vec::with_capacity(values.len());
        for value in values {
            match check_txt_value(value) {
                Ok(()) => kept.push(value.clone()),
                Err(refusal) => self.refuse("_acme-challenge", &refusal, 1),
            }
        }
        served_once(kept)
    }

    /// Logs and counts `rows` stored rows left out of the zone at `label`.
    fn refuse(&self, label: &str, refusal: &Refusal, rows: usize) {
        self.refused.fetch_add(rows as u64, Ordering::Relaxed);
        // The label is quoted short and escaped: it may be anything a row held.
        tracing::warn!(
            name = %quote(label),
            "a stored row cannot be served and is left out of the zone: {refusal} \
             (fix or delete the row in the store; the API and the import never write such a row)"
        );
    }

    /// How many stored rows (names and values) the zone has left out since it was built.
    pub fn refused_rows(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUE: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    #[test]
    fn subdomains_are_one_short_label() {
        assert_eq!(check_subdomain("3f1c0000-0000-4000-8000-0000000000e2"), Ok(()));
        assert_eq!(check_subdomain("ABC-def"), Ok(()));
        assert_eq!(check_subdomain(&"a".repeat(MAX_SUBDOMAIN)), Ok(()));
        assert_eq!(check_subdomain(""), Err(Refusal::EmptySubdomain));
        assert_eq!(check_subdomain(&"a".repeat(64)), Err(Refusal::LongSubdomain(64)));
        assert_eq!(check_subdomain(&"a".repeat(300)), Err(Refusal::LongSubdomain(300)));
        for bad in ["a.b.c", "..", "a\0b", "*", "_acme-challenge", "é", "a b", "-a", "a-"] {
            assert!(matches!(check_subdomain(bad), Err(Refusal::SubdomainCharacter(_))), "{bad:?}");
        }
        assert!(matches!(check_subdomain("persist-abc"), Err(Refusal::ReservedSubdomain(_))));
        assert!(matches!(check_subdomain("PERSIST-abc"), Err(Refusal::ReservedSubdomain(_))));
    }

    #[test]
    fn values_are_what_the_api_accepts() {
        assert_eq!(check_txt_value(VALUE), Ok(()));
        assert_eq!(check_txt_value("A-_zaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), Ok(()));
        assert_eq!(check_txt_value(&"a".repeat(44)), Err(Refusal::TxtValue(44)));
        assert_eq!(check_txt_value(&"a".repeat(70_000)), Err(Refusal::TxtValue(70_000)));
        assert_eq!(
            check_txt_value("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa="),
            Err(Refusal::TxtValue(43))
        );
        assert_eq!(check_persist_value("ca.example; accounturi=https://ca.example/acct/1"), Ok(()));
        assert!(check_persist_value(&format!("ca.example; accounturi={}", "a".repeat(2000))).is_err());
        assert!(check_persist_value("not an issuer!").is_err());
    }

    #[test]
    fn the_longest_persist_value_the_api_makes_is_admitted() {
        use crate::dns_persist::{MAX_ACCOUNT_URI, MAX_PARAMS, Record};
        let longest = Record::new(
            Some(&format!("{0}.{0}.{0}.{1}", "a".repeat(63), "b".repeat(61))),
            Some(&format!("a:{}", "b".repeat(MAX_ACCOUNT_URI - 2))),
            Some("wildcard"),
            Some(i64::MAX),
            1_800_000_000,
        )
        .unwrap()
        .with_params((0..MAX_PARAMS).map(|i| (format!("{i}{}", "t".repeat(31)), "v".repeat(128))).collect())
        .unwrap();
        assert_eq!(check_persist_value(&longest.value()), Ok(()));
    }

    #[test]
    fn reserved_labels_are_the_first_below_the_apex() {
        let apex = b"\x04auth\x07example\x00";
        let ns = b"\x03ns1\x04auth\x07example\x00";
        let deep = b"\x03www\x03Sub\x04auth\x07example\x00";
        let owners: [&[u8]; 3] = [apex, ns, deep];
        let reserved = reserved_labels(apex, owners.into_iter());
        assert_eq!(reserved, HashSet::from([b"ns1".to_vec(), b"sub".to_vec()]));
    }

    #[test]
    fn the_zone_leaves_out_what_it_cannot_serve_and_never_panics() {
        use super::super::Edit;
        use super::super::tests::{settings, val};
        let zone = Zone::new(&settings(), None).unwrap();
        let good = "3f1c0000-0000-4000-8000-0000000000e2";
        let txt = |subdomain: &str, values: Vec<String>| Edit::Txt { subdomain: subdomain.into(), values };
        let huge = "a".repeat(70_000);
        let edits = [
            txt(good, vec![val("one").into(), huge.clone(), "short".into()]),
            txt(&"b".repeat(300), vec![val("x").into()]),
            txt("a.b.c", vec![]),
            txt("..", vec![]),
            txt("nul\0", vec![]),
            txt("*", vec![val("x").into()]),
            txt("_acme-challenge", vec![val("x").into()]),
            txt("ns1", vec![val("x").into()]),
            txt("SUB", vec![val("x").into()]),
            txt("persist-x", vec![huge]),
        ];
        super::super::tests::at(&zone, 7, |w| {
            for edit in &edits {
                w.edit(edit);
            }
        });
        assert_eq!(zone.serial(), 7);
        assert_eq!(zone.subdomain_count(), 1, "only the good name is registered");
        // Two values dropped at the good name, each bad name with its values, the persist value.
        assert_eq!(zone.refused_rows(), 2 + 2 + 1 + 1 + 1 + 2 + 2 + 2 + 2 + 1);
        let answer = super::super::tests::ask_with(&zone, &format!("{good}.auth.example.org"), 16, false);
        assert!(answer.windows(43).any(|w| w == val("one").as_bytes()));
        // A value given twice is served once, at its newest place.
        super::super::tests::at(&zone, 8, |w| {
            w.edit(&txt(good, vec![val("a").into(), val("b").into(), val("a").into()]));
        });
        let state = zone.read();
        let rdatas: Vec<&[u8]> =
            state.dynamic[good.as_bytes()].set.records.rdatas().map(|r| &r[1..]).collect();
        assert_eq!(rdatas, [val("b").as_bytes(), val("a").as_bytes()]);
        drop(state);
        // Too many values: the newest are served.
        let many: Vec<String> = (0..MAX_VALUES + 5).map(|i| val(&format!("v{i}")).to_owned()).collect();
        super::super::tests::at(&zone, 9, |w| {
            w.edit(&txt(good, many));
        });
        let state = zone.read();
        let records = &state.dynamic[good.as_bytes()].set.records;
        assert_eq!(records.len(), MAX_VALUES);
        assert_eq!(records.rdatas().next().map(|r| &r[1..]), Some(val("v5").as_bytes()));
        drop(state);
    }

    #[test]
    fn an_own_challenge_value_given_twice_is_served_once() {
        use super::super::Edit;
        use super::super::tests::{ask_with, settings, val};
        let zone = Zone::new(&settings(), None).unwrap();
        let name = "_acme-challenge.auth.example.org";
        let answers = |reply: &[u8]| u16::from_be_bytes([reply[6], reply[7]]);
        super::super::tests::step(&zone, |w| {
            w.own_challenge(&[val("a").into(), val("b").into(), val("a").into()]);
        });
        assert_eq!(zone.read().own_challenge, [val("b"), val("a")], "once, at its newest place");
        assert_eq!(answers(&ask_with(&zone, name, 16, false)), 2);
        super::super::tests::at(&zone, 9, |w| {
            w.edit(&Edit::OwnChallenge(vec![val("c").into(), val("c").into()]));
        });
        assert_eq!(answers(&ask_with(&zone, name, 16, false)), 1);
    }

    #[test]
    fn quotes_are_short_and_escaped() {
        assert_eq!(quote("a\0b"), "\"a\\u{0}b\"");
        assert_eq!(quote(&"x".repeat(100)), format!("\"{}…\"", "x".repeat(24)));
    }
}
