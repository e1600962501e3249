//! DNSSEC primitives: the signing key, RRSIG generation, NSEC3 hashing, DNSKEY/DS/CDS data.
//!
//! Design note: signing is online but not per query. The zone signs ([`SigningKey::prepare`], then the
//! signature) when an RRset changes and when signatures age; answers then copy the stored RRSIG. Keys are
//! combined signing keys (CSK, flags 257), with ECDSA P-256 (algorithm 13) by default or
//! Ed25519 (15), both through `ring`. Outside a rollover one key does everything; during one,
//! a [`KeySet`] says for each key what it does ([`Roles`]: in the DNSKEY set, signing it,
//! signing the other sets, named by CDS), as the owner of the keys decided for that step. The private key arrives as PKCS#8 bytes from
//! whoever stores it (the store, so that every instance signs with the same key); this module
//! never sees the store.
//!
//! Signatures are deterministic: the same key, RRset and validity window give the same bytes on
//! every instance, so instances sharing a database serve (and transfer) one zone byte for byte.
//! Ed25519 is deterministic by definition (RFC 8032); for ECDSA we use RFC 6979 nonces through
//! RustCrypto's `p256` (ring draws ECDSA nonces from the RNG and cannot). ring still generates
//! keys, reads Ed25519 keys and verifies in tests; BENCHMARKS.md compares the two signers.
//! NSEC3 hashes (SHA-1, one per NXDOMAIN) come from RustCrypto's `sha1`, which uses the CPU's
//! SHA extensions where it has them; ring's SHA-1 is portable code only.
//!
//! Canonical form (RFC 4034 section 6): owner names in lower case, records of a set sorted by
//! their rdata, names inside the rdata of NS, CNAME, PTR, MX, SRV and SOA in lower case. The
//! zone keeps those embedded names in lower case from the start, so the served rdata is already
//! canonical and is signed as is.

use p256::ecdsa::signature::Signer as _;
use p256::pkcs8::DecodePrivateKey as _;
use ring::digest;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair};

use super::wire::{TooLong, put_u16_prefixed};

/// DNSSEC algorithms we sign with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    /// ECDSA P-256 with SHA-256 (13).
    EcdsaP256Sha256,
    /// Ed25519 (15).
    Ed25519,
}

impl Algorithm {
    /// The IANA number.
    pub(crate) fn number(self) -> u8 {
        match self {
            Self::EcdsaP256Sha256 => 13,
            Self::Ed25519 => 15,
        }
    }

    /// From the IANA number.
    pub(crate) fn from_number(n: u8) -> Option<Self> {
        match n {
            13 => Some(Self::EcdsaP256Sha256),
            15 => Some(Self::Ed25519),
            _ => None,
        }
    }

    /// The mnemonic.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::EcdsaP256Sha256 => "ECDSAP256SHA256",
            Self::Ed25519 => "ED25519",
        }
    }
}

/// A key could not be made or loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// ring rejected the PKCS#8 bytes.
    #[error("the stored {0} private key is not valid PKCS#8")]
    BadKey(&'static str),
    /// Key generation failed.
    #[error("cannot generate a {0} key")]
    Generate(&'static str),
}

/// The private half, by algorithm (shared, so a key set can be copied cheaply).
#[derive(Clone)]
enum Pair {
    /// ECDSA P-256, with RFC 6979 deterministic nonces.
    Ecdsa(std::sync::Arc<p256::ecdsa::SigningKey>),
    /// Ed25519.
    Ed25519(std::sync::Arc<Ed25519KeyPair>),
}

/// A combined signing key and its public data.
#[derive(Clone)]
pub struct SigningKey {
    /// Algorithm.
    algorithm: Algorithm,
    /// The key pair.
    pair: Pair,
    /// DNSKEY rdata (flags 257, protocol 3, algorithm, public key).
    dnskey: Vec<u8>,
    /// Key tag (RFC 4034 appendix B).
    key_tag: u16,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private key.
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm)
            .field("key_tag", &self.key_tag)
            .finish()
    }
}

/// The key tag of DNSKEY rdata (RFC 4034 appendix B).
pub(crate) fn key_tag(dnskey: &[u8]) -> u16 {
    let mut acc: u32 = 0;
    for (i, b) in dnskey.iter().enumerate() {
        acc += if i & 1 == 1 { u32::from(*b) } else { u32::from(*b) << 8 };
    }
    acc += (acc >> 16) & 0xFFFF;
    (acc & 0xFFFF) as u16
}

impl SigningKey {
    /// Generates a new key; returns its PKCS#8 bytes for storage.
    pub fn generate(algorithm: Algorithm) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        let doc = match algorithm {
            Algorithm::EcdsaP256Sha256 => {
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            }
            Algorithm::Ed25519 => Ed25519KeyPair::generate_pkcs8(&rng),
        }
        .map_err(|_| KeyError::Generate(algorithm.name()))?;
        Ok(doc.as_ref().to_vec())
    }

    /// Loads a key from PKCS#8 bytes.
    pub fn from_pkcs8(algorithm: Algorithm, pkcs8: &[u8]) -> Result<Self, KeyError> {
        let bad = || KeyError::BadKey(algorithm.name());
        let (pair, public) = match algorithm {
            Algorithm::EcdsaP256Sha256 => {
                let pair = p256::ecdsa::SigningKey::from_pkcs8_der(pkcs8).map_err(|_| bad())?;
                // The uncompressed point is 0x04 || X || Y; DNSKEY holds X || Y.
                let point = pair.verifying_key().to_encoded_point(false);
                let public = point.as_bytes().get(1..).ok_or_else(bad)?.to_vec();
                (Pair::Ecdsa(std::sync::Arc::new(pair)), public)
            }
            Algorithm::Ed25519 => {
                let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map_err(|_| bad())?;
                let public = pair.public_key().as_ref().to_vec();
                (Pair::Ed25519(std::sync::Arc::new(pair)), public)
            }
        };
        let mut dnskey = vec![0x01, 0x01, 3, algorithm.number()];
        dnskey.extend_from_slice(&public);
        let key_tag = key_tag(&dnskey);
        Ok(Self { algorithm, pair, dnskey, key_tag })
    }

    /// The algorithm.
    pub(crate) fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The key tag.
    pub(crate) fn key_tag(&self) -> u16 {
        self.key_tag
    }

    /// DNSKEY (and CDNSKEY) rdata.
    pub(crate) fn dnskey_rdata(&self) -> &[u8] {
        &self.dnskey
    }

    /// DS (and CDS) rdata with a SHA-256 digest, for the zone `apex` (lower-case wire).
    pub(crate) fn ds_rdata(&self, apex: &[u8]) -> Vec<u8> {
        let mut input = apex.to_vec();
        input.extend_from_slice(&self.dnskey);
        let digest = digest::digest(&digest::SHA256, &input);
        let mut out = self.key_tag.to_be_bytes().to_vec();
        out.push(self.algorithm.number());
        out.push(2);
        out.extend_from_slice(digest.as_ref());
        out
    }

    /// Signs raw bytes.
    fn sign(&self, data: &[u8]) -> Vec<u8> {
        match &self.pair {
            // SHA-256 of the data, nonce by RFC 6979: r || s, 32 bytes each (RFC 6605).
            Pair::Ecdsa(pair) => {
                let sig: p256::ecdsa::Signature = pair.sign(data);
                sig.to_bytes().to_vec()
            }
            Pair::Ed25519(pair) => pair.sign(data).as_ref().to_vec(),
        }
    }

    /// Makes RRSIG rdata over an RRset.
    ///
    /// `owner` and `signer` are lower-case wire names; `rdatas` are in canonical form.
    #[cfg(test)]
    pub(crate) fn sign_rrset(&self, rrset: &RrsetToSign<'_>, validity: Validity, signer: &[u8]) -> Vec<u8> {
        self.finish(self.prepare(rrset, validity, signer).expect("the tests' rdata fits a record"))
    }

    /// Everything about a signature but the signature: the RRSIG rdata before it and the bytes
    /// it signs (RFC 4034 section 3.1.8.1), for [`Self::finish`] or a remembered signature.
    /// An rdata longer than a record can hold (65,535 bytes) is an error: no record can carry
    /// it, so no signature covers it.
    pub(crate) fn prepare(
        &self,
        rrset: &RrsetToSign<'_>,
        validity: Validity,
        signer: &[u8],
    ) -> Result<Prepared, TooLong> {
        let labels = count_labels(rrset.owner);
        let mut rdata = Vec::with_capacity(18 + signer.len() + SIGNATURE_LEN);
        rdata.extend_from_slice(&rrset.rtype.to_be_bytes());
        rdata.push(self.algorithm.number());
        rdata.push(labels);
        rdata.extend_from_slice(&rrset.ttl.to_be_bytes());
        rdata.extend_from_slice(&validity.expiration.to_be_bytes());
        rdata.extend_from_slice(&validity.inception.to_be_bytes());
        rdata.extend_from_slice(&self.key_tag.to_be_bytes());
        rdata.extend_from_slice(signer);
        let mut data = rdata.clone();
        let mut sorted: Vec<&[u8]> = rrset.rdatas.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        for rd in sorted {
            data.extend_from_slice(rrset.owner);
            data.extend_from_slice(&rrset.rtype.to_be_bytes());
            data.extend_from_slice(&1u16.to_be_bytes());
            data.extend_from_slice(&rrset.ttl.to_be_bytes());
            put_u16_prefixed(&mut data, rd)?;
        }
        Ok(Prepared { rdata, data })
    }

    /// What names a signature for remembering it: SHA-256 over this key's DNSKEY and the signed
    /// bytes. Deterministic signatures make a signature a function of exactly these, so a
    /// signature remembered under this digest is the one [`Self::finish`] would make.
    pub(crate) fn memo_digest(&self, prepared: &Prepared) -> MemoDigest {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(&self.dnskey);
        ctx.update(&prepared.data);
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }

    /// Signs prepared input: the complete RRSIG rdata.
    pub(crate) fn finish(&self, prepared: Prepared) -> Vec<u8> {
        let Prepared { mut rdata, data } = prepared;
        rdata.extend_from_slice(&self.sign(&data));
        rdata
    }
}

/// What a key does in the zone at one step of its life (RFC 7583's states, as the zone needs
/// them): each flag is one kind of record the key puts in or signs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Roles {
    /// Its DNSKEY record is in the apex DNSKEY set.
    pub(crate) dnskey: bool,
    /// It signs the DNSKEY set (and CDS and CDNSKEY, which the parent checks against it).
    pub(crate) signs_keys: bool,
    /// It signs every other set.
    pub(crate) signs_zone: bool,
    /// The parent should hold its DS: CDS and CDNSKEY name it (when the zone publishes them).
    pub(crate) cds: bool,
}

impl Roles {
    /// A key doing everything: the one key outside a rollover.
    pub(crate) const ALL: Self = Self { dnskey: true, signs_keys: true, signs_zone: true, cds: true };
    /// A key doing nothing (made, or retired).
    pub(crate) const NONE: Self = Self { dnskey: false, signs_keys: false, signs_zone: false, cds: false };

    /// The roles as stored: a letter for each (`D`, `K`, `Z`, `C`), in that order (the stored
    /// codes are written by the rollover's steps; only the unit tests need to make one here).
    #[cfg(test)]
    pub(crate) fn code(self) -> String {
        [(self.dnskey, 'D'), (self.signs_keys, 'K'), (self.signs_zone, 'Z'), (self.cds, 'C')]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, c)| *c)
            .collect()
    }

    /// From the stored letters (`D`, `K`, `Z`, `C`); `None` for any other letter.
    pub(crate) fn parse(code: &str) -> Option<Self> {
        let mut roles = Self::NONE;
        for c in code.chars() {
            match c {
                'D' => roles.dnskey = true,
                'K' => roles.signs_keys = true,
                'Z' => roles.signs_zone = true,
                'C' => roles.cds = true,
                _ => return None,
            }
        }
        Some(roles)
    }

    /// Whether the key is in the zone at all (in DNSKEY or making signatures).
    pub(crate) fn is_used(self) -> bool {
        self.dnskey || self.signs_keys || self.signs_zone
    }
}

/// A key and what it does.
#[derive(Clone, Debug)]
pub(crate) struct ZoneKey {
    /// The key.
    pub(crate) key: SigningKey,
    /// Its roles now.
    pub(crate) roles: Roles,
}

/// The keys a zone uses, with what each does, and how the apex key sets are served.
#[derive(Clone, Debug)]
pub struct KeySet {
    /// The keys, in the store's order (oldest first).
    pub(crate) keys: Vec<ZoneKey>,
    /// TTL of the DNSKEY, CDS and CDNSKEY sets.
    pub(crate) dnskey_ttl: u32,
    /// Whether CDS and CDNSKEY are published (for the keys with the `cds` role).
    pub(crate) publish_cds: bool,
}

impl KeySet {
    /// One key doing everything, CDS published.
    pub(crate) fn single(key: SigningKey, dnskey_ttl: u32) -> Self {
        Self { keys: vec![ZoneKey { key, roles: Roles::ALL }], dnskey_ttl, publish_cds: true }
    }

    /// The keys with roles matching `pick`.
    pub(crate) fn with(&self, pick: impl Fn(Roles) -> bool) -> impl Iterator<Item = &SigningKey> {
        self.keys.iter().filter(move |k| pick(k.roles)).map(|k| &k.key)
    }
}

/// When the zone publishes CDS and CDNSKEY (`[dnssec] cds`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum CdsPolicy {
    /// Always, for the key(s) the parent should hold.
    #[default]
    Always,
    /// Only while a rollover runs.
    Rollover,
    /// Never (the operator tells the registrar).
    Never,
}

impl CdsPolicy {
    /// Whether CDS is published, while a rollover runs (`rolling`) or not.
    pub(crate) fn publishes(self, rolling: bool) -> bool {
        match self {
            Self::Always => true,
            Self::Rollover => rolling,
            Self::Never => false,
        }
    }
}

/// How keys are kept and rolled (`[dnssec]`): the timings of RFC 7583 and where the parent is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KeyPolicy {
    /// The configured algorithm.
    pub(crate) algorithm: Algorithm,
    /// When CDS and CDNSKEY are published.
    pub(crate) cds: CdsPolicy,
    /// The parent zone's servers, asked for our DS during a rollover (empty: the operator says
    /// when the parent holds the new DS, `dnssec ds-seen`).
    pub(crate) parent: Vec<std::net::SocketAddr>,
    /// TTL of our DS at the parent, seconds.
    pub(crate) parent_ds_ttl: u32,
    /// A key this old (seconds) is rolled; 0: only on command.
    pub(crate) key_lifetime: u64,
    /// TTL of our DNSKEY, CDS and CDNSKEY sets, seconds.
    pub(crate) dnskey_ttl: u32,
    /// Time for a change to reach every server and cache after it is served, seconds.
    pub(crate) propagation_delay: u32,
}

/// Signature length of both our algorithms (P-256: r || s; Ed25519).
pub(crate) const SIGNATURE_LEN: usize = 64;

/// A signature's memo key (see [`SigningKey::memo_digest`]).
pub(crate) type MemoDigest = [u8; 32];

/// A signature as remembered.
pub(crate) type Signature = [u8; SIGNATURE_LEN];

/// Signing input made by [`SigningKey::prepare`].
#[derive(Debug)]
pub(crate) struct Prepared {
    /// RRSIG rdata up to the signature.
    rdata: Vec<u8>,
    /// The bytes signed.
    data: Vec<u8>,
}

impl Prepared {
    /// The complete RRSIG rdata with a signature made before for the same input.
    pub(crate) fn with_signature(mut self, signature: &Signature) -> Vec<u8> {
        self.rdata.extend_from_slice(signature);
        self.rdata
    }
}

/// An RRset as input to signing.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RrsetToSign<'a> {
    /// Owner, lower-case wire form.
    pub(crate) owner: &'a [u8],
    /// Type.
    pub(crate) rtype: u16,
    /// TTL (the RRSIG's original TTL).
    pub(crate) ttl: u32,
    /// Each record's rdata, canonical form.
    pub(crate) rdatas: &'a [&'a [u8]],
}

/// A signature validity window, in seconds since the epoch (RFC 1982 serial arithmetic).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Validity {
    /// Signature inception.
    pub(crate) inception: u32,
    /// Signature expiration.
    pub(crate) expiration: u32,
}

/// Labels in a wire name, not counting the root or a leading `*` label (RRSIG labels field).
pub(crate) fn count_labels(name: &[u8]) -> u8 {
    let mut count = 0u8;
    let mut pos = 0;
    while let Some(&len) = name.get(pos) {
        if len == 0 {
            break;
        }
        if !(pos == 0 && len == 1 && name.get(1) == Some(&b'*')) {
            count += 1;
        }
        pos += 1 + usize::from(len);
    }
    count
}

/// NSEC3 hash with RFC 9276 parameters: SHA-1, no salt, no extra iterations.
pub(crate) fn nsec3_hash(name_lower: &[u8]) -> [u8; 20] {
    use sha1::Digest;
    sha1::Sha1::digest(name_lower).into()
}

/// Base32hex (RFC 4648) in lower case, as NSEC3 owner labels are written.
#[cfg(test)]
pub(crate) fn base32hex(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let mut buffer: u64 = 0;
    let mut bits = 0;
    for &b in data {
        buffer = (buffer << 8) | u64::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Builds an NSEC/NSEC3 type bitmap from type numbers.
pub(crate) fn type_bitmap(types: &[u16]) -> Vec<u8> {
    let mut sorted = types.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = Vec::new();
    let mut window: Option<(u8, [u8; 32], usize)> = None;
    let flush = |out: &mut Vec<u8>, w: &(u8, [u8; 32], usize)| {
        out.push(w.0);
        out.push(w.2 as u8);
        out.extend_from_slice(&w.1[..w.2]);
    };
    for t in sorted {
        let (hi, lo) = ((t >> 8) as u8, (t & 0xFF) as u8);
        if window.as_ref().is_some_and(|w| w.0 != hi)
            && let Some(w) = window.take()
        {
            flush(&mut out, &w);
        }
        let w = window.get_or_insert((hi, [0u8; 32], 0));
        let byte = usize::from(lo / 8);
        w.1[byte] |= 0x80 >> (lo % 8);
        w.2 = w.2.max(byte + 1);
    }
    if let Some(w) = window {
        flush(&mut out, &w);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32hex_matches_rfc4648() {
        assert_eq!(base32hex(b"f"), "co");
        assert_eq!(base32hex(b"fo"), "cpng");
        assert_eq!(base32hex(b"foobar"), "cpnmuoj1e8");
    }

    #[test]
    fn nsec3_hash_matches_rfc5155_example() {
        // RFC 5155 appendix A uses salt aabbccdd and 12 iterations; with no salt and 0
        // iterations the hash of "example" is SHA-1 of its wire form.
        let wire = b"\x07example\x00";
        let expected = digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, wire);
        assert_eq!(&nsec3_hash(wire)[..], expected.as_ref());
        assert_eq!(base32hex(&nsec3_hash(wire)).len(), 32);
    }

    #[test]
    fn bitmap_windows() {
        // A(1), MX(15), RRSIG(46), NSEC3(50)... example from RFC 4034 section 4.3 style.
        assert_eq!(type_bitmap(&[1, 15]), vec![0, 2, 0x40, 0x01]);
        assert_eq!(type_bitmap(&[257]), vec![1, 1, 0x40]);
        assert_eq!(type_bitmap(&[]), Vec::<u8>::new());
    }

    #[test]
    fn cds_is_published_as_the_policy_says() {
        let cases = [
            (CdsPolicy::Always, true, true),
            (CdsPolicy::Rollover, false, true),
            (CdsPolicy::Never, false, false),
        ];
        for (policy, steady, rolling) in cases {
            assert_eq!((policy.publishes(false), policy.publishes(true)), (steady, rolling), "{policy:?}");
        }
    }

    #[test]
    fn roles_round_trip_through_their_code() {
        for code in ["", "D", "DK", "KZ", "DKZ", "DKZC", "DC"] {
            assert_eq!(Roles::parse(code).unwrap().code(), code);
        }
        assert_eq!(Roles::ALL.code(), "DKZC");
        assert!(Roles::parse("DX").is_none());
        assert!(!Roles::parse("C").unwrap().is_used());
    }

    #[test]
    fn labels_and_tags() {
        assert_eq!(count_labels(b"\x01*\x04auth\x07example\x00"), 2);
        assert_eq!(count_labels(b"\x00"), 0);
        // Key tag: the one's-complement-like sum of RFC 4034 appendix B, by hand for 4 bytes.
        assert_eq!(key_tag(&[0x01, 0x01, 0x03, 0x0d]), 0x0101 + 0x030d);
    }

    #[test]
    fn keys_sign_and_verify() {
        for algorithm in [Algorithm::EcdsaP256Sha256, Algorithm::Ed25519] {
            let pkcs8 = SigningKey::generate(algorithm).unwrap();
            let key = SigningKey::from_pkcs8(algorithm, &pkcs8).unwrap();
            assert_eq!(key.dnskey_rdata()[3], algorithm.number());
            let owner = b"\x04auth\x07example\x00";
            let rdata: &[u8] = b"\x03abc";
            let set = RrsetToSign { owner, rtype: 16, ttl: 1, rdatas: &[rdata] };
            let validity = Validity { inception: 1, expiration: 2 };
            let rrsig = key.sign_rrset(&set, validity, owner);
            assert_eq!(&rrsig[..2], &[0, 16]);
            assert_eq!(rrsig[3], 2);
            let sig = &rrsig[18 + owner.len()..];
            assert_eq!(sig.len(), 64);
            // Verify with ring's public-key verifier over the same signed data.
            let mut data = rrsig[..18 + owner.len()].to_vec();
            data.extend_from_slice(owner);
            data.extend_from_slice(&[0, 16, 0, 1, 0, 0, 0, 1, 0, 4]);
            data.extend_from_slice(rdata);
            let (alg, public): (&dyn signature::VerificationAlgorithm, Vec<u8>) = match algorithm {
                Algorithm::EcdsaP256Sha256 => {
                    let mut p = vec![4];
                    p.extend_from_slice(&key.dnskey_rdata()[4..]);
                    (&signature::ECDSA_P256_SHA256_FIXED, p)
                }
                Algorithm::Ed25519 => (&signature::ED25519, key.dnskey_rdata()[4..].to_vec()),
            };
            signature::UnparsedPublicKey::new(alg, &public).verify(&data, sig).unwrap();
            // Deterministic: another load of the same key signs the same bytes.
            let again = SigningKey::from_pkcs8(algorithm, &pkcs8).unwrap();
            assert_eq!(again.sign_rrset(&set, validity, owner), rrsig, "{algorithm:?}");
        }
    }

    /// Signing speed of ring's randomised ECDSA against p256's RFC 6979 signer (BENCHMARKS.md):
    /// `cargo test --release --lib -- --ignored --nocapture ecdsa_signing_speed`.
    #[test]
    #[ignore = "a measurement, not a check; run in a release build"]
    fn ecdsa_signing_speed() {
        let pkcs8 = SigningKey::generate(Algorithm::EcdsaP256Sha256).unwrap();
        let rng = SystemRandom::new();
        let ring =
            EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng).unwrap();
        let ours = SigningKey::from_pkcs8(Algorithm::EcdsaP256Sha256, &pkcs8).unwrap();
        let data = [7u8; 200];
        let n = 20_000;
        let start = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(ring.sign(&rng, &data).unwrap());
        }
        let ring_us = start.elapsed().as_secs_f64() * 1e6 / f64::from(n);
        let start = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(ours.sign(&data));
        }
        let p256_us = start.elapsed().as_secs_f64() * 1e6 / f64::from(n);
        eprintln!("ECDSA P-256 sign: ring {ring_us:.1} us, p256 (RFC 6979) {p256_us:.1} us");
    }
}
