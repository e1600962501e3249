//! `[transfer]`: zone transfers to secondaries, NOTIFY, and their TSIG key.
//!
//! Design note: the section is optional and its absence changes nothing (AXFR and IXFR stay
//! REFUSED). When present it is turned here, once, into [`TransferSettings`] of ready-made
//! values: networks, socket addresses, and a TSIG key whose secret is decoded and handed to
//! `ring` at once, so the text of the secret goes no further than this function and no error
//! message ever quotes it. Every error names its key (`transfer.tsig_secret: …`).
//!
//! Base64 is decoded by a few lines here rather than a crate: one key in one config file.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::raw::Transfer;
use super::{ConfigError, key_error, quoted};
use crate::cidr::Cidr;
use crate::dns::tsig::{TsigAlgorithm, TsigKey};
use crate::dns::xfr::{LogPolicy, TransferSettings};
use crate::dns::xfr_gate::TransferLimits;
use crate::privacy::IpPolicy;

/// An optional, non-empty string (surrounding spaces dropped).
fn string(entry: super::raw::Entry<'_>) -> Result<Option<String>, ConfigError> {
    Ok(entry.string()?.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()))
}

/// A secondary's address: `host:port`, `[v6]:port`, or an address alone for port 53.
fn secondary(text: &str) -> Option<SocketAddr> {
    let text = text.trim();
    text.parse()
        .ok()
        .or_else(|| text.trim_matches(['[', ']']).parse::<IpAddr>().ok().map(|ip| (ip, 53).into()))
}

/// Decodes standard base64 (RFC 4648 section 4), padding optional, whitespace ignored (a
/// secret pasted from `tsig-keygen` output may be wrapped). Leftover bits must be zero, and one
/// leftover character is never valid.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let body: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    LENIENT.decode(body).ok()
}

/// Builds `[transfer]` from its raw section; `None` when the file sets none of its keys.
pub(super) fn parse(
    section: &Transfer,
    client_ip: IpPolicy,
    warnings: &mut Vec<String>,
) -> Result<Option<TransferSettings>, ConfigError> {
    if section.is_empty() {
        return Ok(None);
    }
    let allow = section
        .allow_transfer()
        .strings()?
        .iter()
        .map(|text| {
            text.trim().parse::<Cidr>().map_err(|e| key_error("transfer.allow_transfer", e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if allow.is_empty() {
        warnings.push("transfer.allow_transfer is empty: every AXFR/IXFR request will be refused".into());
    }
    let notify = section
        .notify()
        .strings()?
        .iter()
        .map(|text| {
            secondary(text).ok_or_else(|| {
                key_error(
                    "transfer.notify",
                    format!(
                        "{} is not an address with a port (\"192.0.2.1:53\", \"[2001:db8::1]:53\")",
                        quoted(text)
                    ),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let allow = crate::dns::xfr::AllowList::new(allow);
    let name = string(section.tsig_name())?;
    let algorithm_text = string(section.tsig_algorithm())?;
    let secret = string(section.tsig_secret())?;
    let key = match (name, secret) {
        (None, None) if algorithm_text.is_none() => None,
        (None, _) => {
            return Err(key_error(
                "transfer.tsig_name",
                "missing: tsig_algorithm/tsig_secret need a key name",
            ));
        }
        (Some(_), None) => {
            return Err(key_error("transfer.tsig_secret", "missing: the key needs its secret (base64)"));
        }
        (Some(name), Some(secret)) => {
            let algorithm = match &algorithm_text {
                None => TsigAlgorithm::HmacSha256,
                Some(text) => TsigAlgorithm::from_name(text).ok_or_else(|| {
                    key_error(
                        "transfer.tsig_algorithm",
                        format!("{} is not \"hmac-sha256\" or \"hmac-sha512\"", quoted(text)),
                    )
                })?,
            };
            // Never quote the secret: say what is wrong with it, not what it is.
            let bytes = base64_decode(&secret)
                .ok_or_else(|| key_error("transfer.tsig_secret", "not valid base64"))?;
            if bytes.len() < 16 {
                return Err(key_error(
                    "transfer.tsig_secret",
                    format!("{} bytes is too short for a key; use 32 random bytes or more", bytes.len()),
                ));
            }
            let key = TsigKey::new(&name, algorithm, &bytes).ok_or_else(|| {
                key_error("transfer.tsig_name", format!("{} is not a valid domain name", quoted(&name)))
            })?;
            Some(Arc::new(key))
        }
    };
    let wait_all = match string(section.wait_for_secondaries())?.as_deref() {
        // With secondaries, an update is acknowledged once they serve it (bounded by
        // `wait_timeout`): a CA validates from several perspectives, each of which may ask any
        // of the zone's servers, so a 200 before they all serve the value fails some checks.
        None => !notify.is_empty(),
        Some("none") => false,
        Some("all") => true,
        Some(other) => {
            return Err(key_error(
                "transfer.wait_for_secondaries",
                format!("{} is not \"none\" or \"all\"", quoted(other)),
            ));
        }
    };
    let timeout = section.wait_timeout().integer(super::defaults::WAIT_TIMEOUT as i64, 1..=300)?;
    let wait = wait_all.then(|| std::time::Duration::from_secs(timeout as u64));
    if wait.is_some() && notify.is_empty() {
        warnings.push(
            "transfer.wait_for_secondaries = \"all\" without transfer.notify: nobody to wait for".into(),
        );
    }
    let total = section.max_transfers().integer(super::defaults::MAX_TRANSFERS as i64, 1..=10_000)? as usize;
    let per_network = section
        .max_transfers_per_network()
        .integer(super::defaults::MAX_TRANSFERS_PER_NETWORK as i64, 1..=10_000)?
        as usize;
    if per_network > total {
        warnings.push(format!(
            "transfer.max_transfers_per_network ({per_network}) is above transfer.max_transfers ({total}): \
             the total is the cap"
        ));
    }
    let limits = TransferLimits { total, per_network };
    Ok(Some(TransferSettings {
        allow,
        notify,
        key,
        client_ip: LogPolicy::new(client_ip),
        wait,
        limits,
        gate: Default::default(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses a `[transfer]` body.
    fn parse_text(body: &str) -> Result<Option<TransferSettings>, ConfigError> {
        let file = super::super::raw::File::parse(&format!("[transfer]\n{body}"), "test", &mut Vec::new())?;
        parse(&file.transfer, IpPolicy::Truncated, &mut Vec::new())
    }

    /// The key named in an error.
    fn error_key(body: &str) -> String {
        match parse_text(body) {
            Err(ConfigError::Key { key, .. }) => key,
            other => panic!("expected a key error, got {other:?}"),
        }
    }

    #[test]
    fn every_key_is_documented_in_the_sample() {
        let sample = include_str!("../../config.sample.cfg");
        for key in Transfer::KEYS {
            assert!(sample.contains(&format!("# {key} = ")), "{key} missing from config.sample.cfg");
        }
    }

    #[test]
    fn base64_round_trips_known_vectors() {
        assert_eq!(base64_decode("Zm9vYmFy").unwrap(), b"foobar");
        assert_eq!(base64_decode("Zm9vYg==").unwrap(), b"foob");
        assert_eq!(base64_decode("Zm9vYmE=").unwrap(), b"fooba");
        assert_eq!(base64_decode("Zm9v YmFy\n").unwrap(), b"foobar");
        assert!(base64_decode("Zm9vY").is_none(), "a lone leftover character");
        assert!(base64_decode("Zm9vYm!=").is_none());
    }

    #[test]
    fn a_full_section_is_read() {
        let settings = parse_text(
            "allow_transfer = [\"127.0.0.1/32\", \"::1/128\"]\nnotify = [\"127.0.0.1:5301\", \"::1\"]\n\
             tsig_name = \"transfer-key\"\ntsig_algorithm = \"hmac-sha512\"\n\
             tsig_secret = \"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA==\"",
        )
        .unwrap()
        .unwrap();
        assert_eq!(settings.allow.len(), 2);
        assert_eq!(settings.notify[1], "[::1]:53".parse().unwrap());
        let key = settings.key.unwrap();
        assert_eq!((key.name(), key.algorithm()), ("transfer-key", TsigAlgorithm::HmacSha512));
        assert!(!format!("{key:?}").contains("c2Vj"), "the secret never shows");
        assert!(parse(&Transfer::default(), IpPolicy::Truncated, &mut Vec::new()).unwrap().is_none());
    }

    #[test]
    fn waiting_for_secondaries_is_the_default_with_secondaries() {
        let wait =
            |body: &str| parse_text(&format!("notify = [\"127.0.0.1:5301\"]\n{body}")).unwrap().unwrap().wait;
        // With secondaries, waiting for them is the default; without, nothing to wait for.
        assert_eq!(wait(""), Some(std::time::Duration::from_secs(10)));
        assert_eq!(parse_text("allow_transfer = [\"127.0.0.1/32\"]").unwrap().unwrap().wait, None);
        assert_eq!(wait("wait_for_secondaries = \"none\"\nwait_timeout = 3"), None);
        assert_eq!(wait("wait_for_secondaries = \"all\""), Some(std::time::Duration::from_secs(10)));
        assert_eq!(
            wait("wait_for_secondaries = \"all\"\nwait_timeout = 3"),
            Some(std::time::Duration::from_secs(3))
        );
        assert_eq!(error_key("wait_for_secondaries = \"some\""), "transfer.wait_for_secondaries");
        assert_eq!(error_key("wait_for_secondaries = \"all\"\nwait_timeout = 0"), "transfer.wait_timeout");
    }

    #[test]
    fn transfer_caps_have_defaults_and_bounds() {
        let limits = |body: &str| parse_text(body).unwrap().unwrap().limits;
        assert_eq!(limits("notify = []"), TransferLimits { total: 16, per_network: 4 });
        assert_eq!(
            limits("max_transfers = 2\nmax_transfers_per_network = 1"),
            TransferLimits { total: 2, per_network: 1 }
        );
        assert_eq!(error_key("max_transfers = 0"), "transfer.max_transfers");
        assert_eq!(error_key("max_transfers_per_network = -1"), "transfer.max_transfers_per_network");
    }

    #[test]
    fn errors_name_the_key() {
        assert_eq!(error_key("allow_transfer = [\"10.0.0.300/8\"]"), "transfer.allow_transfer");
        assert_eq!(error_key("notify = [\"somewhere\"]"), "transfer.notify");
        assert_eq!(error_key("tsig_name = \"k\"\ntsig_secret = \"not base64!\""), "transfer.tsig_secret");
        assert_eq!(error_key("tsig_name = \"k\""), "transfer.tsig_secret");
        assert_eq!(error_key("tsig_secret = \"c2VjcmV0LXNlY3JldC1zZWNyZXQ=\""), "transfer.tsig_name");
        let bad_algorithm =
            "tsig_name = \"k\"\ntsig_secret = \"c2VjcmV0LXNlY3JldC1zZWNyZXQ=\"\ntsig_algorithm = \"md5\"";
        assert_eq!(error_key(bad_algorithm), "transfer.tsig_algorithm");
        match parse_text("tsig_name = \"k\"\ntsig_secret = \"SECRETSECRET!\"") {
            Err(error) => assert!(!error.to_string().contains("SECRETSECRET"), "{error}"),
            Ok(_) => panic!("must fail"),
        }
    }
}
