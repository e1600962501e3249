//! Account credentials: random names and keys, their hashes, and parsing of what clients send.
//!
//! Design note: keys are 40 random characters from a 64-character alphabet (240 bits), so a
//! fast hash is as safe as a slow one: nobody can guess a preimage of SHA-256 for a 240-bit
//! random input, and a slow hash (acme-dns uses bcrypt) only caps the update rate. Comparison
//! is constant-time all the same, so the response time says nothing about the stored hash.

use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};

use crate::privacy::Secret;

/// Characters of an API key (and of a valid ACME TXT value): base64url.
const KEY_ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Length of an API key.
pub(crate) const KEY_LEN: usize = 40;

/// Fills `buf` from the system's secure RNG.
fn random(buf: &mut [u8]) {
    // The OS RNG does not fail on a running Linux system; if it ever does, a credential made
    // from anything else would be worse than stopping.
    SystemRandom::new().fill(buf).expect("the system random number generator works");
}

/// A random version 4 UUID in canonical lower-case form.
pub(crate) fn random_uuid() -> String {
    let mut b = [0u8; 16];
    random(&mut b);
    b[6] = (b[6] & 0x0F) | 0x40;
    b[8] = (b[8] & 0x3F) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

/// A new random API key.
pub(crate) fn random_key() -> Secret<String> {
    let mut b = [0u8; KEY_LEN];
    random(&mut b);
    // 256 is a multiple of 64, so masking keeps every character equally likely.
    Secret::new(b.iter().map(|x| char::from(KEY_ALPHABET[usize::from(x & 63)])).collect())
}

/// SHA-256 of a key, as stored.
pub(crate) fn hash_key(key: &str) -> Vec<u8> {
    digest::digest(&digest::SHA256, key.as_bytes()).as_ref().to_vec()
}

/// Compares two byte strings in time independent of where they differ (their lengths are not
/// secret: a hash, or a token whose length the configuration fixes).
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    bool::from(a.ct_eq(b))
}

/// Whether `key` matches the stored SHA-256 `hash`.
pub(crate) fn verify_key(key: &str, hash: &[u8]) -> bool {
    constant_time_eq(&hash_key(key), hash)
}

/// Whether a string is base64url characters only, of the given length.
pub(crate) fn is_base64url(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|b| KEY_ALPHABET.contains(&b))
}

/// Parses a UUID in the forms acme-dns accepts (canonical, 32 hex digits, `{…}`, `urn:uuid:…`,
/// any case) into canonical lower-case form.
pub(crate) fn parse_uuid(text: &str) -> Option<String> {
    let mut s = text.trim();
    // `get`, not indexing: byte 9 may fall inside a multi-byte character (the CLI passes any text).
    if let Some(rest) = s.get(..9).filter(|p| p.eq_ignore_ascii_case("urn:uuid:")).and(s.get(9..)) {
        s = rest;
    } else if let Some(inner) = s.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
        s = inner;
    }
    let hex: String = match s.len() {
        36 => {
            let dashes = [8, 13, 18, 23];
            if !s.char_indices().all(|(i, c)| (c == '-') == dashes.contains(&i)) {
                return None;
            }
            s.chars().filter(|c| *c != '-').collect()
        }
        32 => s.to_owned(),
        _ => return None,
    };
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let hex = hex.to_ascii_lowercase();
    Some(format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_tells_equal_from_different_and_from_other_lengths() {
        assert!(constant_time_eq(b"token", b"token"));
        assert!(!constant_time_eq(b"token", b"tokem"));
        assert!(!constant_time_eq(b"token", b"token2"));
        assert!(!constant_time_eq(b"", b"t"));
    }

    #[test]
    fn generated_credentials_have_the_right_shape() {
        let id = random_uuid();
        assert_eq!(parse_uuid(&id).as_deref(), Some(id.as_str()));
        assert_eq!(&id[14..15], "4");
        let key = random_key();
        assert!(is_base64url(key.expose(), KEY_LEN));
        assert!(verify_key(key.expose(), &hash_key(key.expose())));
        assert!(!verify_key("x", &hash_key(key.expose())));
        assert_ne!(random_key().expose(), key.expose());
    }

    #[test]
    fn uuid_forms() {
        let canonical = "d420c923-bbd7-4056-ab64-c3ca54c9b3cf";
        for form in [
            "D420C923-BBD7-4056-AB64-C3CA54C9B3CF",
            "d420c923bbd74056ab64c3ca54c9b3cf",
            "{d420c923-bbd7-4056-ab64-c3ca54c9b3cf}",
            "urn:uuid:d420c923-bbd7-4056-ab64-c3ca54c9b3cf",
        ] {
            assert_eq!(parse_uuid(form).as_deref(), Some(canonical), "{form}");
        }
        assert_eq!(parse_uuid("d420c923-bbd7-4056-ab64-c3ca54c9b3c"), None);
        assert_eq!(parse_uuid("d420c923-bbd7-4056-ab64-c3ca54c9b3cg"), None);
        assert_eq!(parse_uuid("d420c923bbd7-4056-ab64-c3ca54c9b3cf-"), None);
        // A multi-byte character across byte 9 is refused, not a panic.
        assert_eq!(parse_uuid("aaaaaaaaé-x"), None);
        assert_eq!(parse_uuid("urn:uuid:é"), None);
    }
}
