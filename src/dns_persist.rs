//! dns-persist-01 records and dns-account-01 names: the rules, written once.
//!
//! Design note: a persistent validation record (draft-ietf-acme-dns-persist-02, CA/B Forum BR
//! 3.2.2.4.22) tells one CA that one ACME account may be issued certificates for a domain
//! until the record goes away. Its value is an RFC 8659 issue-value:
//! `<issuer-domain-name>; accounturi=<URI>[; policy=wildcard][; persistUntil=<unix time>]`,
//! then any further `tag=value` parameters the request gives.
//! This module holds what the API (validation, the served string), the store (which keeps the
//! fields and the string), and the client (the same string, the hashed account URI of the
//! draft's §4.1, the CA-side parse for `client check`, the dns-account-01 label) must agree
//! on. It depends on nothing else in the crate but `ring` for SHA-256.
//!
//! Limits are deliberate: a record per issuer and at most [`MAX_RECORDS`] per account keep one
//! account's TXT RRset small (ten records of the longest allowed form fit one TCP answer with
//! room to spare); an account URI of at most [`MAX_ACCOUNT_URI`] octets holds every real CA's
//! account URL and the hashed form with a long prefix.
//!
//! Further parameters: the drafts still move (a client reports that -04 names the account
//! parameter `accountdigest`; the CA/B Forum text still says `accounturi`), and RFC 8659 has a
//! CA ignore the tags it does not know. So a request may add up to [`MAX_PARAMS`] parameters,
//! checked for the issue-value syntax only (an alphanumeric tag, a printable ASCII value
//! without `;`), bounded in length so that the served value stays within what the zone admits.
//! The tags this module writes itself (`accounturi`, `policy`, `persistUntil`) have their own
//! fields and cannot be given twice.

use std::collections::BTreeMap;

/// Most persistent records (issuers) one account may hold.
pub(crate) const MAX_RECORDS: usize = 10;
/// Longest issuer domain name, in octets (a domain name in text form without the final dot).
pub(crate) const MAX_ISSUER: usize = 253;
/// Longest account URI, in octets.
pub(crate) const MAX_ACCOUNT_URI: usize = 512;
/// The one policy the draft defines.
pub(crate) const WILDCARD: &str = "wildcard";
/// The owner label the draft puts the record at, below the validated domain.
pub(crate) const OWNER_LABEL: &str = "_validation-persist";
/// Most further parameters one record may carry.
pub(crate) const MAX_PARAMS: usize = 4;
/// Longest tag of a further parameter, in octets.
pub(crate) const MAX_PARAM_TAG: usize = 32;
/// Longest value of a further parameter, in octets (a base64url SHA-256 digest with a long
/// prefix fits).
pub(crate) const MAX_PARAM_VALUE: usize = 128;
/// Longest the further parameters make a value, in octets (each is `; tag=value`).
pub(crate) const MAX_PARAMS_LEN: usize = MAX_PARAMS * ("; =".len() + MAX_PARAM_TAG + MAX_PARAM_VALUE);
/// The tags [`Record::value`] writes from their own fields (compared case-insensitively).
const OWN_TAGS: [&str; 3] = ["accounturi", "policy", "persistuntil"];
/// What a U-label gets told.
const USE_A_LABELS: &str = "non-ASCII (a U-label): give the A-label (punycode, xn--...)";

/// Why a persistent record was refused; each names the request field at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PersistError {
    /// `issuer` is missing or not a lower-case A-label domain name without the final dot.
    #[error("issuer: {0}")]
    Issuer(&'static str),
    /// `accounturi` is missing, not an absolute URI, or holds characters an issue-value cannot.
    #[error("accounturi: {0}")]
    AccountUri(&'static str),
    /// `policy` is present and not `wildcard`.
    #[error("policy: only \"wildcard\" is defined")]
    Policy,
    /// `persistuntil` is not an integer, or is already past.
    #[error("persistuntil: {0}")]
    PersistUntil(&'static str),
    /// A further parameter is not a tag and value of the issue-value syntax, or too many or
    /// too long: the tag at fault (escaped, shortened) and why.
    #[error("params: {0}: {1}")]
    Param(String, &'static str),
}

impl PersistError {
    /// The request field at fault.
    pub(crate) fn field(&self) -> &'static str {
        match self {
            Self::AccountUri(_) => "accounturi",
            Self::Issuer(_) => "issuer",
            Self::PersistUntil(_) => "persistuntil",
            Self::Policy => "policy",
            Self::Param(..) => "params",
        }
    }
}

/// One persistent record, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The CA's issuer domain name (e.g. `letsencrypt.org`).
    pub issuer: String,
    /// The ACME account the CA may issue to.
    pub accounturi: String,
    /// Whether wildcard certificates are allowed too.
    pub wildcard: bool,
    /// Seconds since the epoch after which the record no longer counts.
    pub persist_until: Option<i64>,
    /// Further `tag=value` parameters, served after the others in this order.
    pub params: Vec<(String, String)>,
}

impl Record {
    /// Checks the fields of a request (`now` in seconds since the epoch): the first field at
    /// fault, in the order issuer, accounturi, policy, persistuntil.
    pub(crate) fn new(
        issuer: Option<&str>,
        accounturi: Option<&str>,
        policy: Option<&str>,
        persist_until: Option<i64>,
        now: i64,
    ) -> Result<Self, PersistError> {
        let issuer = check_issuer(issuer.ok_or(PersistError::Issuer("missing"))?)?;
        let accounturi = check_account_uri(accounturi.ok_or(PersistError::AccountUri("missing"))?)?;
        let wildcard = match policy {
            None => false,
            Some(WILDCARD) => true,
            Some(_) => return Err(PersistError::Policy),
        };
        if persist_until.is_some_and(|t| t <= now) {
            return Err(PersistError::PersistUntil("already past"));
        }
        Ok(Self {
            issuer: issuer.to_owned(),
            accounturi: accounturi.to_owned(),
            wildcard,
            persist_until,
            params: Vec::new(),
        })
    }

    /// The record with further parameters, each checked (see the module note): the first at
    /// fault is named.
    pub(crate) fn with_params(mut self, params: Vec<(String, String)>) -> Result<Self, PersistError> {
        if params.len() > MAX_PARAMS {
            return Err(PersistError::Param(format!("{} parameters", params.len()), "at most 4"));
        }
        for (i, (tag, value)) in params.iter().enumerate() {
            check_param(tag, value)?;
            let clash = OWN_TAGS.iter().any(|own| tag.eq_ignore_ascii_case(own))
                || params[..i].iter().any(|(earlier, _)| earlier.eq_ignore_ascii_case(tag));
            if clash {
                return Err(PersistError::Param(tag.clone(), "given twice (tags are case-insensitive)"));
            }
        }
        self.params = params;
        Ok(self)
    }

    /// The TXT value as served, in the draft's form (`persistUntil` spelled as the draft
    /// spells it; the request's key is lower-case like our other keys).
    pub fn value(&self) -> String {
        let mut value = format!("{}; accounturi={}", self.issuer, self.accounturi);
        if self.wildcard {
            value.push_str("; policy=wildcard");
        }
        if let Some(until) = self.persist_until {
            value.push_str(&format!("; persistUntil={until}"));
        }
        for (tag, param) in &self.params {
            value.push_str(&format!("; {tag}={param}"));
        }
        value
    }
}

/// Checks an issuer domain name: RFC 8659's `issuer-domain-name`, restricted to lower-case
/// A-labels so that what a CA compares (case-insensitively) is what we stored.
pub(crate) fn check_issuer(issuer: &str) -> Result<&str, PersistError> {
    if issuer.is_empty() {
        return Err(PersistError::Issuer("missing"));
    }
    if issuer.len() > MAX_ISSUER {
        return Err(PersistError::Issuer("longer than 253 octets"));
    }
    if !issuer.is_ascii() {
        return Err(PersistError::Issuer(USE_A_LABELS));
    }
    if issuer.ends_with('.') {
        return Err(PersistError::Issuer("must not end with a dot"));
    }
    for label in issuer.split('.') {
        let bytes = label.as_bytes();
        if bytes.is_empty() || bytes.len() > 63 {
            return Err(PersistError::Issuer("each label must be 1 to 63 octets"));
        }
        if !bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-') {
            return Err(PersistError::Issuer("only lower-case letters, digits and '-' (an A-label)"));
        }
        if bytes[0] == b'-' || bytes[bytes.len() - 1] == b'-' {
            return Err(PersistError::Issuer("a label must not begin or end with '-'"));
        }
    }
    Ok(issuer)
}

/// Checks a further parameter: RFC 8659 §4.2's tag (here alphanumeric, as [`Parsed`] reads
/// it) and value (%x21-3A / %x3C-7E), neither empty, within [`MAX_PARAM_TAG`] and
/// [`MAX_PARAM_VALUE`].
fn check_param(tag: &str, value: &str) -> Result<(), PersistError> {
    let named = |why| {
        let shown: String = tag.chars().take(MAX_PARAM_TAG).flat_map(char::escape_default).collect();
        Err(PersistError::Param(shown, why))
    };
    if tag.is_empty() || tag.len() > MAX_PARAM_TAG || !tag.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return named("a tag is 1 to 32 letters and digits");
    }
    if value.is_empty() || value.len() > MAX_PARAM_VALUE {
        return named("a value is 1 to 128 octets");
    }
    if !value.is_ascii() {
        return named("the value is non-ASCII: a name in it must be an A-label (punycode, xn--...)");
    }
    if !value.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b';') {
        return named("a value must not hold ';', whitespace or control characters");
    }
    Ok(())
}

/// The further parameters of a value [`Record::value`] wrote (in order, as written): what
/// follows the issuer, less the tags it writes from its own fields.
pub(crate) fn params_of(value: &str) -> Vec<(String, String)> {
    value
        .split(';')
        .skip(1)
        .filter_map(|part| part.trim_matches([' ', '\t']).split_once('='))
        .filter(|(tag, _)| !OWN_TAGS.iter().any(|own| tag.eq_ignore_ascii_case(own)))
        .map(|(tag, value)| (tag.to_owned(), value.to_owned()))
        .collect()
}

/// Checks an account URI: absolute (`scheme:rest`, RFC 3986 §3.1), and only the octets an
/// RFC 8659 parameter value may hold (%x21-3A / %x3C-7E: no `;`, space or control character).
pub(crate) fn check_account_uri(uri: &str) -> Result<&str, PersistError> {
    if uri.is_empty() {
        return Err(PersistError::AccountUri("missing"));
    }
    if uri.len() > MAX_ACCOUNT_URI {
        return Err(PersistError::AccountUri("longer than 512 octets"));
    }
    if !uri.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b';') {
        return Err(PersistError::AccountUri(
            "must not hold ';', whitespace, control or non-ASCII characters",
        ));
    }
    let absolute = uri.split_once(':').is_some_and(|(scheme, rest)| {
        let s = scheme.as_bytes();
        !rest.is_empty()
            && s.first().is_some_and(u8::is_ascii_alphabetic)
            && s.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    });
    if !absolute {
        return Err(PersistError::AccountUri("not an absolute URI (scheme:…)"));
    }
    Ok(uri)
}

/// A record as a CA reads it (RFC 8659 §4.2 syntax): the issuer and the parameters, tags
/// lower-cased (the draft compares them case-insensitively), or `None` if it does not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Parsed {
    /// The issuer domain name, lower-cased.
    pub(crate) issuer: String,
    /// Parameters by lower-cased tag.
    pub(crate) params: BTreeMap<String, String>,
}

impl Parsed {
    /// Parses a TXT value (its strings already joined).
    pub(crate) fn parse(value: &str) -> Option<Self> {
        let mut parts = value.split(';');
        let issuer = parts.next()?.trim_matches([' ', '\t']);
        check_issuer(&issuer.to_ascii_lowercase()).ok()?;
        let mut params = BTreeMap::new();
        for part in parts {
            let part = part.trim_matches([' ', '\t']);
            if part.is_empty() {
                continue;
            }
            let (tag, val) = part.split_once('=')?;
            let (tag, val) = (tag.trim_matches([' ', '\t']), val.trim_matches([' ', '\t']));
            if tag.is_empty() || !tag.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return None;
            }
            if !val.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
                return None;
            }
            params.insert(tag.to_ascii_lowercase(), val.to_owned());
        }
        Some(Self { issuer: issuer.to_ascii_lowercase(), params })
    }

    /// `persistUntil`, if present and a number.
    pub(crate) fn persist_until(&self) -> Option<i64> {
        self.params.get("persistuntil").and_then(|v| v.parse().ok())
    }

    /// Whether `policy=wildcard` is present (values compared case-insensitively, as the draft
    /// says).
    pub(crate) fn allows_wildcard(&self) -> bool {
        self.params.get("policy").is_some_and(|p| p.eq_ignore_ascii_case(WILDCARD))
    }
}

/// The hashed account URI of draft -02 §4.1: `<prefix>sha-256/<base64url(SHA-256(len(domain) ||
/// domain || thumbprint || account URL))>`, `len` one octet; `domain` is `*` for the opt-out.
///
/// Returns `None` when `domain` is longer than 255 octets (its length must fit one octet).
pub fn hashed_account_uri(prefix: &str, domain: &str, thumbprint: &str, account_url: &str) -> Option<String> {
    let len = u8::try_from(domain.len()).ok()?;
    let mut input = vec![len];
    input.extend_from_slice(domain.as_bytes());
    input.extend_from_slice(thumbprint.as_bytes());
    input.extend_from_slice(account_url.as_bytes());
    let digest = ring::digest::digest(&ring::digest::SHA256, &input);
    Some(format!("{prefix}sha-256/{}", base64url(digest.as_ref())))
}

/// The dns-account-01 label of an ACME account (draft-ietf-acme-dns-account-label): the first
/// 10 octets of SHA-256(account URL), base32 (RFC 4648 alphabet), lower-cased: 16 characters.
pub fn account_label(account_url: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, account_url.as_bytes());
    base32_lower(&digest.as_ref()[..10])
}

/// RFC 4648 base32 of whole 5-octet groups, lower-cased (no padding is needed for 10 octets).
fn base32_lower(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::with_capacity(data.len() * 8 / 5 + 1);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in data {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Unpadded base64url (RFC 4648 §5).
fn base64url(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn record(issuer: &str, uri: &str) -> Result<Record, PersistError> {
        Record::new(Some(issuer), Some(uri), None, None, NOW)
    }

    #[test]
    fn draft_hashed_account_uri_vectors() {
        // draft-ietf-acme-dns-persist-02 §10.2.
        let (thumbprint, url) =
            ("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs", "https://ca.example/acct/123");
        assert_eq!(
            hashed_account_uri("", "example.com", thumbprint, url).unwrap(),
            "sha-256/5SQm7n6tPh2-PlLbCKGnViTXX5z19SCN4cPGQHSk-kw"
        );
        assert_eq!(
            hashed_account_uri("acct:", "*", thumbprint, url).unwrap(),
            "acct:sha-256/NpDnSwUthQK8zCgFdefYxAdAVPnygMLbs9US6oO-5ug"
        );
        assert!(hashed_account_uri("", &"a".repeat(256), thumbprint, url).is_none());
    }

    #[test]
    fn account_label_vector() {
        assert_eq!(account_label("https://ca.example/acct/123"), "h5zlfqoi7m5jaytl");
        assert_eq!(base32_lower(b"foobar"), "mzxw6ytboi"); // RFC 4648 §10, lower-cased, unpadded
    }

    #[test]
    fn base64url_matches_rfc4648() {
        assert_eq!(base64url(b"foob"), "Zm9vYg");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
    }

    #[test]
    fn values_follow_the_draft() {
        let full = Record::new(
            Some("letsencrypt.org"),
            Some("https://acme-v02.api.letsencrypt.org/acme/acct/1"),
            Some("wildcard"),
            Some(NOW + 1),
            NOW,
        )
        .unwrap();
        assert_eq!(
            full.value(),
            "letsencrypt.org; accounturi=https://acme-v02.api.letsencrypt.org/acme/acct/1; policy=wildcard; \
             persistUntil=1800000001"
        );
        let parsed = Parsed::parse(&full.value()).unwrap();
        assert_eq!(parsed.issuer, "letsencrypt.org");
        assert_eq!(parsed.params["accounturi"], full.accounturi);
        assert!(parsed.allows_wildcard());
        assert_eq!(parsed.persist_until(), Some(NOW + 1));
        assert_eq!(record("ca.example", "acct:x").unwrap().value(), "ca.example; accounturi=acct:x");
    }

    #[test]
    fn bad_fields_are_named() {
        let uri = "https://ca.example/acct/1";
        for issuer in ["", "Letsencrypt.org", "letsencrypt.org.", "a..b", "-a.b", "a_b.org", "bücher.de"] {
            assert_eq!(record(issuer, uri).unwrap_err().field(), "issuer", "{issuer}");
        }
        assert!(record(&format!("{}.{}", "a".repeat(63), "b".repeat(190)), uri).is_err());
        assert!(record(&"a".repeat(64), uri).is_err());
        assert!(record("xn--bcher-kva.de", uri).is_ok());
        for bad in
            ["", "no-scheme", "https://a; b", "https://a b", "https://a\tb", "https://é", "1http:x", "x:"]
        {
            assert_eq!(record("ca.example", bad).unwrap_err().field(), "accounturi", "{bad:?}");
        }
        assert!(record("ca.example", &format!("https://{}", "a".repeat(MAX_ACCOUNT_URI))).is_err());
        let missing = Record::new(Some("ca.example"), None, None, None, NOW).unwrap_err();
        assert_eq!(missing.field(), "accounturi");
        let policy = Record::new(Some("ca.example"), Some(uri), Some("Wildcard"), None, NOW).unwrap_err();
        assert_eq!(policy, PersistError::Policy);
        let past = Record::new(Some("ca.example"), Some(uri), None, Some(NOW), NOW).unwrap_err();
        assert_eq!(past.field(), "persistuntil");
    }

    /// Further parameters as a request gives them.
    fn params(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(t, v)| ((*t).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn further_parameters_are_served_after_the_others() {
        let digest = "sha-256/5SQm7n6tPh2-PlLbCKGnViTXX5z19SCN4cPGQHSk-kw";
        let r = Record::new(Some("ca.example"), Some("acct:1"), Some("wildcard"), None, NOW)
            .unwrap()
            .with_params(params(&[("accountdigest", digest), ("x2", "a=b")]))
            .unwrap();
        let value = r.value();
        assert_eq!(
            value,
            format!("ca.example; accounturi=acct:1; policy=wildcard; accountdigest={digest}; x2=a=b")
        );
        assert_eq!(Parsed::parse(&value).unwrap().params["accountdigest"], digest);
        assert_eq!(params_of(&value), r.params);
        // That the zone admits the longest value is checked on its side (`dns::zone::admit`),
        // which depends on this module and not the other way round.
    }

    #[test]
    fn bad_further_parameters_are_named() {
        let base = || record("ca.example", "acct:1").unwrap();
        let refused = |list: &[(&str, &str)]| base().with_params(params(list)).unwrap_err();
        for (tag, value) in [
            ("", "v"),
            ("a-b", "v"),
            ("a b", "v"),
            ("t", ""),
            ("t", "a;b"),
            ("t", "a b"),
            ("t", "\u{7f}"),
            ("AccountURI", "acct:2"),
            ("persistUntil", "1"),
            ("policy", "wildcard"),
        ] {
            let error = refused(&[(tag, value)]);
            assert_eq!(error.field(), "params", "{tag:?}={value:?}");
        }
        assert!(refused(&[("t", &"v".repeat(MAX_PARAM_VALUE + 1))]).to_string().contains("params: t:"));
        assert!(refused(&[(&"t".repeat(MAX_PARAM_TAG + 1), "v")]).to_string().starts_with("params: "));
        assert!(refused(&[("t", "bücher.de")]).to_string().contains("xn--"));
        let twice = refused(&[("t", "1"), ("T", "2")]);
        assert_eq!(twice, PersistError::Param("T".into(), "given twice (tags are case-insensitive)"));
        let many: Vec<(String, String)> = (0..=MAX_PARAMS).map(|i| (format!("t{i}"), "v".into())).collect();
        assert_eq!(base().with_params(many).unwrap_err().field(), "params");
    }

    #[test]
    fn a_u_label_issuer_gets_the_punycode_hint() {
        let error = record("bücher.de", "acct:1").unwrap_err();
        assert_eq!(error.field(), "issuer");
        assert!(error.to_string().contains("punycode, xn--"), "{error}");
    }

    #[test]
    fn the_ca_side_parse_is_lenient_where_rfc_8659_is() {
        let parsed = Parsed::parse("CA.Example ;AccountURI=acct:1 ;  PersistUntil=5").unwrap();
        assert_eq!(parsed.issuer, "ca.example");
        assert_eq!(parsed.params["accounturi"], "acct:1");
        assert_eq!(parsed.persist_until(), Some(5));
        assert!(!parsed.allows_wildcard());
        assert!(Parsed::parse("ca.example; accounturi").is_none());
        assert!(Parsed::parse("not a domain; a=b").is_none());
    }
}
