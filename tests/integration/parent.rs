//! The whole DNSSEC chain on loopback, with real peers (issue 21): Knot serves a signed parent
//! zone `example.org.` that delegates our zone (`auth.example.org.`, [`DOMAIN`]) and holds our
//! DS; unbound validates with nothing but the parent's key as its trust anchor; the test plays
//! the registrar, reading our CDS/CDNSKEY and writing the matching DS into the parent.
//!
//! The pieces, each usable on its own by a rollover test:
//! - [`Parent`]: knotd signing `example.org.` (automatic signing, short TTLs), NS and glue for
//!   our zone, and a DS set the test replaces ([`Parent::set_ds`]) and reads back
//!   ([`Parent::ds`]); [`Parent::trust_anchor`] is the parent's key as DS lines.
//! - [`Validator`]: the harness's [`Unbound`] with only the parent's anchor, a stub zone for the
//!   parent (Knot) and one for us (glue cannot carry a port; it may list several of our
//!   servers), and capped cache lifetimes.
//! - [`Registrar`]: reads our apex CDS and CDNSKEY, checks they agree, and puts the DS into the
//!   parent (RFC 7344/8078: no CDS = no change, `0 0 0 00` = remove the DS).
//! - [`Recorder`]: a thread sampling our DNSKEY and CDS and the parent's DS once a second;
//!   [`order_check`] holds a recording to the rollover's two timing rules.
//! - [`Prober`]: a thread sending paced queries through the validator and keeping every answer
//!   that is not a validated (AD) answer of the expected kind, with its time and, for a
//!   SERVFAIL, the validator's Extended DNS Error (bogus data or an unreachable server); a test
//!   that kills the one server a validator asks excuses the latter for that outage
//!   ([`ProbeReport::excuse_outage`]).
//!
//! Every wait is bounded; the peers are stopped (SIGTERM, then SIGKILL) when dropped.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::harness::*;

/// The parent zone Knot signs and serves.
pub const PARENT: &str = "example.org";

/// RR types used here that the harness does not name.
pub mod rt {
    /// DS.
    pub const DS: u16 = 43;
    /// DNSKEY.
    pub const DNSKEY: u16 = 48;
    /// CDS.
    pub const CDS: u16 = 59;
    /// CDNSKEY.
    pub const CDNSKEY: u16 = 60;
}

/// How long a query here waits for an answer (the harness's `udp_exchange`).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Sampling jitter [`order_check`] forgives: a sample is taken a little after its scheduled
/// second (three queries, a loaded machine), far less than the whole seconds the rules count.
const SAMPLE_SLACK: Duration = Duration::from_millis(250);

// ---------------------------------------------------------------------------------------------
// Small DNS helpers

/// A key as DS, CDS and DNSKEY name it: key tag and algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyId {
    /// Key tag (RFC 4034 appendix B).
    pub tag: u16,
    /// Algorithm number.
    pub alg: u8,
}

impl fmt::Display for KeyId {
    /// `tag/alg`, as in the failure messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tag, self.alg)
    }
}

/// The key tag of a DNSKEY rdata (RFC 4034 appendix B, for every algorithm but 1).
pub fn key_tag(rdata: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for (i, byte) in rdata.iter().enumerate() {
        sum += if i % 2 == 0 { u32::from(*byte) << 8 } else { u32::from(*byte) };
    }
    sum += (sum >> 16) & 0xFFFF;
    (sum & 0xFFFF) as u16
}

/// The key a DNSKEY (or CDNSKEY) rdata holds.
pub fn dnskey_id(rdata: &[u8]) -> KeyId {
    KeyId { tag: key_tag(rdata), alg: rdata[3] }
}

/// A DS (or CDS) rdata in presentation form: `tag alg digest-type HEX`, hex upper case, no
/// spaces: the one spelling [`Parent::set_ds`] takes and [`Parent::ds`] gives.
pub fn ds_text(rdata: &[u8]) -> String {
    let tag = u16::from_be_bytes([rdata[0], rdata[1]]);
    let digest: String = rdata[4..].iter().map(|b| format!("{b:02X}")).collect();
    format!("{tag} {} {} {digest}", rdata[2], rdata[3])
}

/// The key a DS text names; `None` for the RFC 8078 delete record (`0 0 0 00`, algorithm 0).
pub fn ds_key(text: &str) -> Option<KeyId> {
    let mut fields = text.split_whitespace();
    let tag = fields.next()?.parse().ok()?;
    let alg = fields.next()?.parse().ok()?;
    (alg != 0).then_some(KeyId { tag, alg })
}

/// The SHA-256 DS text (digest type 2) of a DNSKEY rdata at `owner` (RFC 4034 section 5.1.4).
pub fn ds_of(owner: &str, dnskey: &[u8]) -> String {
    let mut signed = name_wire(&owner.to_ascii_lowercase());
    signed.extend_from_slice(dnskey);
    let digest = ring::digest::digest(&ring::digest::SHA256, &signed);
    let id = dnskey_id(dnskey);
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    format!("{} {} 2 {hex}", id.tag, id.alg)
}

/// Normalises a DS text from any tool (`dnssec ds`'s line, dig's split digest) to [`ds_text`]'s
/// form: the four fields of the rdata, the digest joined and upper-cased.
pub fn normalise_ds(text: &str) -> String {
    let fields: Vec<&str> = text.split_whitespace().collect();
    let at = fields.iter().position(|f| *f == "DS").map_or(0, |p| p + 1);
    let digest: String = fields[at + 3..].concat().to_ascii_uppercase();
    format!("{} {} {} {digest}", fields[at], fields[at + 1], fields[at + 2])
}

/// A query with EDNS (1232) and the DO bit, RD clear: to an authoritative server.
fn query_do(name: &str, qtype: u16) -> Vec<u8> {
    let mut q = query(name, qtype, Some(1232));
    let flags = q.len() - 4;
    q[flags] |= 0x80;
    q
}

/// Asks an authoritative server `addr` over UDP (TCP when truncated); `None` on silence.
pub fn ask_at(addr: SocketAddr, name: &str, qtype: u16) -> Option<Message> {
    let q = query_do(name, qtype);
    let reply = Message::decode(&udp_exchange(addr, &q)?);
    if reply.tc() { tcp_exchange(addr, &q).map(|r| Message::decode(&r)) } else { Some(reply) }
}

/// The rdatas of type `qtype` in the answer of `addr` to `name`/`qtype`; `None` on silence or
/// an rcode other than NOERROR.
fn rdatas_at(addr: SocketAddr, name: &str, qtype: u16) -> Option<Vec<Vec<u8>>> {
    let reply = ask_at(addr, name, qtype)?;
    (reply.rcode == rcode::NOERROR)
        .then(|| reply.answers.iter().filter(|r| r.rtype == qtype).map(|r| r.rdata.clone()).collect())
}

/// A recursive query to the resolver at `addr` with RD and AD set (AD: tell me whether it
/// validated), as [`Unbound::resolve`] sends it; the decoded reply, `None` after 2 s of silence.
pub fn resolve_at(addr: SocketAddr, name: &str, qtype: u16) -> Option<Message> {
    let mut q = query(name, qtype, Some(1232));
    q[2] = 0x01;
    q[3] = 0x20;
    udp_exchange(addr, &q).map(|r| Message::decode(&r))
}

// ---------------------------------------------------------------------------------------------
// Parent

/// Knot signing and serving the parent zone `example.org.` on a loopback port, delegating our
/// zone with NS `ns1.auth.example.org.` and glue 127.0.0.1 (the port comes from the validator's
/// stub zone: glue cannot carry one), and holding a DS set for it that the test replaces.
///
/// Signing is Knot's automatic policy: one ECDSA P-256 CSK, DNSKEY and zone TTLs of
/// [`Parent::DNSKEY_TTL`] seconds, NSEC. The DS records go in with [`Parent::DS_TTL`].
pub struct Parent {
    /// knotd, stopped first when dropped (fields drop in order).
    _guard: Guard,
    /// Its address (UDP and TCP).
    pub addr: SocketAddr,
    /// Its configuration file (for knotc).
    config: PathBuf,
    /// Its directory: configuration, zone file, key and journal databases, log.
    dir: TempDir,
}

impl Parent {
    /// TTL of the DS records the parent serves (seconds).
    pub const DS_TTL: u32 = 2;
    /// TTL of the parent's DNSKEY set and of its other records (seconds).
    pub const DNSKEY_TTL: u32 = 2;

    /// Starts knotd and waits (at most 10 s) until it serves its DNSKEY set signed; panics with
    /// its log if it does not.
    pub fn start() -> Self {
        let dir = TempDir::new();
        let port = free_port(&["127.0.0.1"]);
        let d = dir.0.display();
        let ttl = Self::DNSKEY_TTL;
        let config = format!(
            r#"server:
    listen: 127.0.0.1@{port}
    rundir: "{d}"
control:
    listen: "{d}/knot.sock"
log:
  - target: "{d}/knot.log"
    any: info
database:
    storage: "{d}"
policy:
  - id: fast
    algorithm: ecdsap256sha256
    single-type-signing: on
    dnskey-ttl: {ttl}
    zone-max-ttl: {ttl}
    propagation-delay: 0
    nsec3: off
zone:
  - domain: {PARENT}
    file: "{d}/{PARENT}.zone"
    dnssec-signing: on
    dnssec-policy: fast
    zonefile-sync: -1
    journal-content: all
"#
        );
        // SOA minimum 1: a denial from the parent (no DS yet) is cached for a second only.
        let zone = format!(
            "$TTL {ttl}\n\
             @ SOA ns1.{PARENT}. admin.{PARENT}. 1 60 60 3600 1\n\
             @ NS ns1.{PARENT}.\n\
             ns1 A 127.0.0.1\n\
             {DOMAIN}. NS ns1.{DOMAIN}.\n\
             ns1.{DOMAIN}. A 127.0.0.1\n"
        );
        let path = dir.join("knot.conf");
        std::fs::write(&path, config).unwrap();
        std::fs::write(dir.join(&format!("{PARENT}.zone")), zone).unwrap();
        let child = Command::new("knotd")
            .arg("-c")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("knotd runs (Debian package knot)");
        let parent = Self {
            _guard: Guard { child },
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
            config: path,
            dir,
        };
        let signed = || {
            ask_at(parent.addr, PARENT, rt::DNSKEY).is_some_and(|m| {
                m.answers.iter().any(|r| r.rtype == rt::DNSKEY)
                    && m.answers.iter().any(|r| r.rtype == t::RRSIG)
            })
        };
        if !crate::pg::eventually(Duration::from_secs(10), signed) {
            panic!("knotd did not serve a signed {PARENT}:\n{}", parent.log_text());
        }
        parent
    }

    /// knotd's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("knot.log")).unwrap_or_default()
    }

    /// Runs `knotc` with these arguments (5 s timeout); stdout and stderr, or both on failure.
    fn knotc(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("knotc")
            .arg("-c")
            .arg(&self.config)
            .args(["-t", "5"])
            .args(args)
            .output()
            .map_err(|e| format!("knotc: {e}"))?;
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        if out.status.success() { Ok(text) } else { Err(format!("knotc {}: {text}", args.join(" "))) }
    }

    /// Replaces the DS set of our zone with `ds` (texts as `tag alg digest-type hex`, an empty
    /// slice removes it) in one transaction of the parent, which Knot signs at commit; then waits
    /// (at most 10 s) until the parent serves exactly that set.
    pub fn set_ds(&self, ds: &[String]) -> Result<(), String> {
        let zone = format!("{PARENT}.");
        let owner = format!("{DOMAIN}.");
        self.knotc(&["zone-begin", &zone])?;
        let edit = || -> Result<(), String> {
            if let Err(e) = self.knotc(&["zone-unset", &zone, &owner, "DS"]) {
                // "not exists": there was no DS set to remove.
                if !e.contains("not exists") {
                    return Err(e);
                }
            }
            for record in ds {
                let mut args = vec!["zone-set", &zone, &owner];
                let ttl = Self::DS_TTL.to_string();
                let mut fields = vec![ttl.as_str(), "DS"];
                fields.extend(record.split_whitespace());
                args.extend(fields);
                self.knotc(&args)?;
            }
            Ok(())
        };
        if let Err(e) = edit() {
            let _ = self.knotc(&["zone-abort", &zone]);
            return Err(e);
        }
        self.knotc(&["zone-commit", &zone])?;
        let want: BTreeSet<String> = ds.iter().map(|d| normalise_ds(d)).collect();
        let mut served = BTreeSet::new();
        let matched = crate::pg::eventually(Duration::from_secs(10), || {
            served = self.ds().unwrap_or_default().into_iter().collect();
            served == want
        });
        if matched { Ok(()) } else { Err(format!("the parent serves DS {served:?}, not {want:?}")) }
    }

    /// The DS set the parent serves for our zone, sorted (empty when it has none); `None` when
    /// it does not answer.
    pub fn ds(&self) -> Option<Vec<String>> {
        parent_ds(self.addr)
    }

    /// The parent's trust anchor: one DS line (`example.org. IN DS tag 13 2 HEX`) for each
    /// key with the SEP flag in the DNSKEY set it serves.
    pub fn trust_anchor(&self) -> Vec<String> {
        let keys = rdatas_at(self.addr, PARENT, rt::DNSKEY).expect("the parent's DNSKEY set");
        let anchors: Vec<String> = keys
            .iter()
            .filter(|k| k[1] & 1 == 1)
            .map(|k| format!("{PARENT}. IN DS {}", ds_of(PARENT, k)))
            .collect();
        assert!(!anchors.is_empty(), "the parent has no SEP key: {keys:?}");
        anchors
    }
}

/// The DS set the parent at `addr` serves for our zone, sorted; `None` on silence.
fn parent_ds(addr: SocketAddr) -> Option<Vec<String>> {
    let reply = ask_at(addr, DOMAIN, rt::DS)?;
    let mut ds: Vec<String> =
        reply.answers.iter().filter(|r| r.rtype == rt::DS).map(|r| ds_text(&r.rdata)).collect();
    ds.sort();
    (reply.rcode == rcode::NOERROR).then_some(ds)
}

// ---------------------------------------------------------------------------------------------
// Validator

/// unbound validating with only the parent's key as trust anchor: a stub zone sends
/// `example.org.` to Knot and one sends our zone to our server, so every answer about us is
/// secure only through the parent's signed DS.
///
/// `cache_max_ttl` caps how long it caches anything. Keep it at or above the TTLs the test
/// judges (our DNSKEY TTL, the parent's DS TTL): a lower cap would hide a key removed too early.
/// Bogus answers are cached one second (`val-bogus-ttl`), but a DS or DNSKEY set that fails
/// validation blacks our whole zone out for 60 s in unbound 1.17 (its fixed `BOGUS_KEY_TTL`):
/// one bad moment of a rollover shows as a minute of SERVFAIL, which the [`Prober`] counts.
pub struct Validator {
    /// The resolver (stopped when dropped).
    _unbound: Unbound,
    /// Its address.
    pub addr: SocketAddr,
    /// Its directory (configuration, anchor, log), removed after it stops.
    _dir: TempDir,
}

impl Validator {
    /// Starts unbound for `parent` and our server `ours`; waits until the parent's SOA
    /// validates (AD), which proves the anchor, and panics with its log if it does not in 10 s.
    pub fn start(parent: &Parent, ours: &TestServer, cache_max_ttl: u32) -> Self {
        Self::start_at(parent, ours.udp.port(), cache_max_ttl)
    }

    /// Like [`Validator::start`], with our zone's stub at `port` on 127.0.0.1 (a secondary).
    pub fn start_at(parent: &Parent, port: u16, cache_max_ttl: u32) -> Self {
        Self::start_stubs(parent, &[port], cache_max_ttl)
    }

    /// Like [`Validator::start`], with our zone's stub listing every port of `ports` on
    /// 127.0.0.1 (several instances answering for the zone).
    pub fn start_stubs(parent: &Parent, ports: &[u16], cache_max_ttl: u32) -> Self {
        let dir = TempDir::new();
        std::fs::write(dir.join("parent.anchor"), parent.trust_anchor().join("\n") + "\n").unwrap();
        let more = format!(
            r#"    module-config: "validator iterator"
    trust-anchor-file: "{d}/parent.anchor"
    qname-minimisation: no
    prefetch: no
    val-permissive-mode: no
    val-bogus-ttl: 1
    ede: yes
    cache-max-ttl: {cache_max_ttl}
    cache-max-negative-ttl: {cache_max_ttl}
    infra-keep-probing: yes
stub-zone:
    name: "{PARENT}"
    stub-addr: 127.0.0.1@{parent_port}
"#,
            d = dir.0.display(),
            parent_port = parent.addr.port(),
        );
        let unbound = Unbound::start_stubs(&dir.0, ports, &more, (PARENT, t::SOA));
        let addr: SocketAddr = unbound.addr().parse().unwrap();
        let validator = Self { _unbound: unbound, addr, _dir: dir };
        let secure = || validator.resolve(PARENT, t::SOA).is_some_and(|m| m.ad());
        if !crate::pg::eventually(Duration::from_secs(10), secure) {
            panic!("unbound does not validate {PARENT}:\n{}", validator.log_text());
        }
        validator
    }

    /// A recursive query with AD set; the reply, `None` after 2 s of silence.
    pub fn resolve(&self, name: &str, qtype: u16) -> Option<Message> {
        resolve_at(self.addr, name, qtype)
    }

    /// unbound's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self._dir.join("unbound.log")).unwrap_or_default()
    }

    /// The lines of its log that report an answer failing validation (`val-log-level: 2`
    /// logs each one, with the reason): bogus data, as opposed to a server that did not answer.
    pub fn validation_failures(&self) -> Vec<String> {
        self.log_text().lines().filter(|l| l.contains("validation failure")).map(str::to_owned).collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Registrar

/// The test as registrar: reads our apex CDS and CDNSKEY from our server and brings the
/// parent's DS set in line (RFC 7344, RFC 8078).
pub struct Registrar {
    /// Our server's DNS address.
    pub ours: SocketAddr,
}

impl Registrar {
    /// A registrar for the server at `ours`.
    pub fn new(ours: SocketAddr) -> Self {
        Self { ours }
    }

    /// Our CDS set as texts, sorted, straight from our server; `Err` when it does not answer.
    pub fn cds(&self) -> Result<Vec<String>, String> {
        self.cds_via(None)
    }

    /// The rdatas of `qtype` at our apex: through `validator` when given (the answer must be
    /// NOERROR with AD: the parent acts only on what validates through the current chain, RFC
    /// 7344 section 4.1), else straight from our server.
    fn apex_set(&self, qtype: u16, validator: Option<&Validator>) -> Result<Vec<Vec<u8>>, String> {
        let Some(validator) = validator else {
            return rdatas_at(self.ours, DOMAIN, qtype).ok_or_else(|| format!("no answer to type {qtype}"));
        };
        let reply = validator
            .resolve(DOMAIN, qtype)
            .ok_or_else(|| format!("the validator is silent about type {qtype}"))?;
        if reply.rcode != rcode::NOERROR || !reply.ad() {
            return Err(format!(
                "type {qtype} through the validator: rcode {}, AD {}",
                reply.rcode,
                reply.ad()
            ));
        }
        Ok(reply.answers.iter().filter(|r| r.rtype == qtype).map(|r| r.rdata.clone()).collect())
    }

    /// Our CDS set as texts, sorted, read as [`Self::apex_set`] does.
    fn cds_via(&self, validator: Option<&Validator>) -> Result<Vec<String>, String> {
        let mut cds: Vec<String> = self.apex_set(rt::CDS, validator)?.iter().map(|r| ds_text(r)).collect();
        cds.sort();
        Ok(cds)
    }

    /// Reads our CDS and CDNSKEY (through `validator` when given, see [`Self::apex_set`]) and
    /// updates the parent; returns the DS set the parent then serves. No CDS, or the set the
    /// parent already has, leaves the parent alone; the delete record `0 0 0 00` (alone)
    /// removes the DS (RFC 8078). Every other CDS of digest type 2 must be the SHA-256 digest of
    /// a CDNSKEY, and every CDNSKEY must have its CDS (RFC 7344 section 4: both name the same
    /// keys); `Err` otherwise. Through a validator the two sets are cached apart, so a caller
    /// polling during a change retries an `Err` at its next poll before calling it a failure.
    pub fn sync(&self, parent: &Parent, validator: Option<&Validator>) -> Result<Vec<String>, String> {
        let cds = self.cds_via(validator)?;
        let served = parent.ds().ok_or("the parent is silent")?;
        if cds.is_empty() || cds == served {
            return Ok(served);
        }
        if cds.iter().any(|c| ds_key(c).is_none()) {
            if cds.len() != 1 {
                return Err(format!("a CDS delete record among others: {cds:?}"));
            }
            parent.set_ds(&[])?;
            return Ok(Vec::new());
        }
        let cdnskey = self.apex_set(rt::CDNSKEY, validator)?;
        let from_keys: BTreeSet<String> = cdnskey.iter().map(|k| ds_of(DOMAIN, k)).collect();
        let named: BTreeSet<KeyId> = cds.iter().filter_map(|c| ds_key(c)).collect();
        if let Some(c) =
            cds.iter().find(|c| c.split_whitespace().nth(2) == Some("2") && !from_keys.contains(*c))
        {
            return Err(format!("CDS {c} matches no CDNSKEY"));
        }
        let keys = cdnskey.iter().map(|k| dnskey_id(k)).filter(|k| k.alg != 0);
        if let Some(k) = keys.into_iter().find(|k| !named.contains(k)) {
            return Err(format!("CDNSKEY {k} has no CDS"));
        }
        parent.set_ds(&cds)?;
        Ok(cds)
    }
}

// ---------------------------------------------------------------------------------------------
// Recorder and the ordering rules

/// What the recorder saw at one moment; a `None` set is one whose query went unanswered.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Time since the recording began.
    pub at: Duration,
    /// The keys of our DNSKEY set (from our server).
    pub dnskey: Option<BTreeSet<KeyId>>,
    /// Our CDS set, as texts.
    pub cds: Option<BTreeSet<String>>,
    /// The keys of our CDNSKEY set.
    pub cdnskey: Option<BTreeSet<KeyId>>,
    /// The DS set the parent serves for us, as texts.
    pub parent_ds: Option<BTreeSet<String>>,
}

impl Sample {
    /// The keys the CDS set names (the delete record names none).
    pub fn cds_keys(&self) -> Option<BTreeSet<KeyId>> {
        self.cds.as_ref().map(|s| s.iter().filter_map(|c| ds_key(c)).collect())
    }

    /// The keys the parent's DS set names.
    pub fn ds_keys(&self) -> Option<BTreeSet<KeyId>> {
        self.parent_ds.as_ref().map(|s| s.iter().filter_map(|c| ds_key(c)).collect())
    }
}

/// A thread taking a [`Sample`] once a second (on a fixed schedule from its start, so gaps
/// between first sightings are whole seconds) until stopped or `bound` passes.
pub struct Recorder {
    /// Set to stop the thread.
    stop: Arc<AtomicBool>,
    /// The thread; gives the recording.
    handle: JoinHandle<Vec<Sample>>,
}

impl Recorder {
    /// Starts sampling our server at `ours` and the parent at `parent`, for at most `bound`.
    pub fn start(ours: SocketAddr, parent: &Parent, bound: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let parent = parent.addr;
        let handle = std::thread::spawn(move || {
            let start = Instant::now();
            let mut samples = Vec::new();
            for n in 0u32.. {
                let due = start + Duration::from_secs(u64::from(n));
                while Instant::now() < due && !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                if flag.load(Ordering::Relaxed) || due > start + bound {
                    break;
                }
                let at = start.elapsed();
                let keys =
                    |qtype| rdatas_at(ours, DOMAIN, qtype).map(|s| s.iter().map(|k| dnskey_id(k)).collect());
                samples.push(Sample {
                    at,
                    dnskey: keys(rt::DNSKEY),
                    cds: rdatas_at(ours, DOMAIN, rt::CDS).map(|s| s.iter().map(|r| ds_text(r)).collect()),
                    cdnskey: keys(rt::CDNSKEY),
                    parent_ds: parent_ds(parent).map(|s| s.into_iter().collect()),
                });
            }
            samples
        });
        Self { stop, handle }
    }

    /// Stops the thread and returns the recording.
    pub fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("the recorder thread")
    }
}

/// The recording as a table, one sample a line, for failure messages.
pub fn show(recording: &[Sample]) -> String {
    let keys = |s: &Option<BTreeSet<KeyId>>| {
        s.as_ref().map_or("?".to_owned(), |s| s.iter().map(ToString::to_string).collect::<Vec<_>>().join(","))
    };
    recording
        .iter()
        .map(|s| {
            format!(
                "{:6.2}s dnskey [{}] cds [{}] parent ds [{}]\n",
                s.at.as_secs_f64(),
                keys(&s.dnskey),
                keys(&s.cds_keys()),
                keys(&s.ds_keys())
            )
        })
        .collect()
}

/// Holds a recording to the two timing rules of a key rollover (issue 21; RFC 7583's
/// double-KSK timeline for a CSK):
/// 1. a new key (not in DNSKEY at the first sample) is in DNSKEY for at least `dnskey_ttl +
///    propagation_delay` before the CDS first names it, and the CDS never names a key that
///    is not in DNSKEY;
/// 2. a key the parent's DS named stays in DNSKEY until at least `parent_ds_ttl` after the DS
///    stops naming it (so also: never leaves DNSKEY while the DS still names it).
///
/// Times are first sightings on the one-second schedule, so a gap is exact to within the
/// sampling jitter ([`SAMPLE_SLACK`] forgiven). Samples with an unanswered query are skipped
/// for the sets they lack. `Err` names the key, the times and shows the recording.
pub fn order_check(
    recording: &[Sample],
    dnskey_ttl: Duration,
    propagation_delay: Duration,
    parent_ds_ttl: Duration,
) -> Result<(), String> {
    let fail = |what: String| Err(format!("{what}\nrecording:\n{}", show(recording)));
    let with_keys: Vec<(Duration, BTreeSet<KeyId>)> =
        recording.iter().filter_map(|s| Some((s.at, s.dnskey.clone()?))).collect();
    let Some((_, initial)) = with_keys.first() else { return Ok(()) };
    let first_in_dnskey = |k: &KeyId| with_keys.iter().find(|(_, set)| set.contains(k)).map(|(at, _)| *at);
    // Rule 1.
    let mut first_cds: BTreeMap<KeyId, Duration> = BTreeMap::new();
    for s in recording {
        let (Some(cds), Some(dnskey)) = (s.cds_keys(), &s.dnskey) else { continue };
        for k in cds {
            if !dnskey.contains(&k) {
                return fail(format!("at {:?} the CDS names key {k}, which is not in DNSKEY", s.at));
            }
            first_cds.entry(k).or_insert(s.at);
        }
    }
    let needed = dnskey_ttl + propagation_delay;
    for (k, cds_at) in &first_cds {
        if initial.contains(k) {
            continue;
        }
        let Some(key_at) = first_in_dnskey(k) else { continue };
        if *cds_at + SAMPLE_SLACK < key_at + needed {
            return fail(format!(
                "key {k} entered DNSKEY at {key_at:?} and its CDS at {cds_at:?}: {:?} apart, \
                 at least {needed:?} (DNSKEY TTL + propagation delay) needed",
                cds_at.saturating_sub(key_at)
            ));
        }
    }
    // Rule 2.
    let with_ds: Vec<(Duration, BTreeSet<KeyId>)> =
        recording.iter().filter_map(|s| Some((s.at, s.ds_keys()?))).collect();
    let named: BTreeSet<KeyId> = with_ds.iter().flat_map(|(_, set)| set.iter().copied()).collect();
    for k in named {
        // From the first moment both name the key...
        let Some(both_at) = recording
            .iter()
            .find(|s| {
                s.ds_keys().is_some_and(|d| d.contains(&k))
                    && s.dnskey.as_ref().is_some_and(|d| d.contains(&k))
            })
            .map(|s| s.at)
        else {
            continue;
        };
        // ...to when the DS stopped naming it (after its last naming), if it did...
        let last_named = with_ds.iter().rev().find(|(_, set)| set.contains(&k)).map(|(at, _)| *at);
        let ds_gone =
            with_ds.iter().find(|(at, set)| Some(*at) > last_named && !set.contains(&k)).map(|(at, _)| *at);
        // ...the key must be in every DNSKEY sample until `parent_ds_ttl` after that.
        let until = ds_gone.map(|gone| gone + parent_ds_ttl);
        let missing = with_keys.iter().find(|(at, set)| {
            *at > both_at && !set.contains(&k) && until.is_none_or(|until| *at + SAMPLE_SLACK < until)
        });
        if let Some((at, _)) = missing {
            return fail(match ds_gone.filter(|gone| gone <= at) {
                None => format!("key {k} left DNSKEY at {at:?} while the parent's DS still names it"),
                Some(gone) => format!(
                    "key {k} left DNSKEY at {at:?}, {:?} after the parent's DS stopped naming it \
                     (at {gone:?}); at least the DS TTL {parent_ds_ttl:?} needed",
                    at.saturating_sub(gone)
                ),
            });
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Prober

/// What a probe's answer must be (besides validated: AD, never SERVFAIL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// NOERROR with records of the asked type.
    Answer,
    /// NOERROR without records of the asked type.
    NoData,
    /// NXDOMAIN.
    NxDomain,
}

/// One query the prober repeats.
#[derive(Clone, Debug)]
pub struct Probe {
    /// The name.
    pub name: String,
    /// The type.
    pub qtype: u16,
    /// The answer it must get.
    pub expect: Expect,
}

impl Probe {
    /// A probe of `name`/`qtype` expecting `expect`.
    pub fn new(name: &str, qtype: u16, expect: Expect) -> Self {
        Self { name: name.to_owned(), qtype, expect }
    }
}

/// What was wrong with one probe's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// No answer in 2 s.
    Silent,
    /// SERVFAIL, with the Extended DNS Error code the validator gave (RFC 8914), if any.
    Servfail(Option<u16>),
    /// An answer (not SERVFAIL) without the AD bit.
    NotAd,
    /// A validated answer of the wrong kind (rcode or emptiness not as expected).
    Wrong,
}

impl Fault {
    /// Whether this is what a validator answers when the zone's servers do not: silence, or a
    /// SERVFAIL whose Extended DNS Error, if any, is not one of RFC 8914's DNSSEC codes
    /// (1 and 2, 5 to 12: unsupported algorithm or digest, indeterminate, bogus, expired or
    /// early signatures, missing DNSKEY, RRSIG or NSEC, no zone key bit).
    pub fn is_unreachable(&self) -> bool {
        match self {
            Self::Silent => true,
            Self::Servfail(ede) => !ede.is_some_and(|code| matches!(code, 1 | 2 | 5..=12)),
            Self::NotAd | Self::Wrong => false,
        }
    }
}

/// The Extended DNS Error info-code (RFC 8914, EDNS option 15) a reply carries, if any.
pub fn ede_code(reply: &Message) -> Option<u16> {
    let mut options = reply.opt()?.rdata.as_slice();
    while let [c0, c1, l0, l1, rest @ ..] = options {
        let len = usize::from(u16::from_be_bytes([*l0, *l1]));
        let data = rest.get(..len)?;
        if u16::from_be_bytes([*c0, *c1]) == 15 {
            return data.get(..2).map(|code| u16::from_be_bytes([code[0], code[1]]));
        }
        options = &rest[len..];
    }
    None
}

/// One probe whose answer was not a validated answer of its kind.
#[derive(Clone, Debug)]
pub struct Failure {
    /// When it was sent, since the prober started.
    pub at: Duration,
    /// What was wrong.
    pub fault: Fault,
    /// The query and what came back, for messages.
    pub text: String,
}

/// What the prober counted.
#[derive(Clone, Debug)]
pub struct ProbeReport {
    /// When the prober started (the origin of every `at`).
    pub started: Instant,
    /// How long it ran.
    pub elapsed: Duration,
    /// Queries sent.
    pub sent: usize,
    /// Every failed probe, in order.
    pub failures: Vec<Failure>,
    /// Failures taken out of `failures` by [`ProbeReport::excuse_outage`]: silence and SERVFAIL
    /// while the one server the validator asks was down.
    pub excused: Vec<Failure>,
    /// When each validated answer of the right kind came (its probe's send time).
    pub validated: Vec<Duration>,
    /// The TXT values each TXT probe received, as they changed: (time, name, values).
    pub txt_seen: Vec<(Duration, String, Vec<String>)>,
}

impl ProbeReport {
    /// An empty report of a prober started at `started`.
    fn new(started: Instant) -> Self {
        Self {
            started,
            elapsed: Duration::ZERO,
            sent: 0,
            failures: Vec::new(),
            excused: Vec::new(),
            validated: Vec::new(),
            txt_seen: Vec::new(),
        }
    }

    /// Queries per second.
    pub fn rate(&self) -> f64 {
        self.sent as f64 / self.elapsed.as_secs_f64().max(0.001)
    }

    /// How many failures (not excused) had a fault that is `kind`.
    pub fn count(&self, kind: impl Fn(&Fault) -> bool) -> usize {
        self.failures.iter().filter(|f| kind(&f.fault)).count()
    }

    /// `Ok` if every query got a validated answer of its kind at `min_rate` per second or more
    /// (excused failures apart); else the counts and the first failures.
    pub fn check(&self, min_rate: f64) -> Result<(), String> {
        if self.failures.is_empty() && self.rate() >= min_rate {
            return Ok(());
        }
        let first: Vec<&str> = self.failures.iter().take(20).map(|f| f.text.as_str()).collect();
        Err(format!(
            "{} queries in {:?} ({:.1}/s, {min_rate}/s needed): {} SERVFAIL, {} without AD, {} silent, \
             {} wrong ({} excused as an outage); first failures:\n{}",
            self.sent,
            self.elapsed,
            self.rate(),
            self.count(|f| matches!(f, Fault::Servfail(_))),
            self.count(|f| *f == Fault::NotAd),
            self.count(|f| *f == Fault::Silent),
            self.count(|f| *f == Fault::Wrong),
            self.excused.len(),
            first.join("\n")
        ))
    }

    /// Excuses the outage of the one server a validator asks, killed at `down` and started again
    /// at `up`: silence and SERVFAIL are what a resolver owes its client while the zone's only
    /// server is dead, and for a while after (it retries a server that timed out only after a
    /// back-off, and fetches again what it failed to fetch). So those failures sent from `down`
    /// less [`PROBE_TIMEOUT`] (a query then waits into the outage) to `recovery` after `up`
    /// move to [`Self::excused`], if [`Fault::is_unreachable`]: a SERVFAIL the validator marks
    /// with a DNSSEC Extended DNS Error is bogus data, never excused, as is an answer without
    /// AD or of the wrong kind, and anything outside that window (the validator's log is the
    /// second witness: [`Validator::validation_failures`]). `Err` when no validated answer came
    /// in the window after `up`; else how long after `up` the last excused failure was sent
    /// (zero: none).
    pub fn excuse_outage(
        &mut self,
        down: Instant,
        up: Instant,
        recovery: Duration,
    ) -> Result<Duration, String> {
        let from = down.saturating_duration_since(self.started).saturating_sub(PROBE_TIMEOUT);
        let up_at = up.saturating_duration_since(self.started);
        let until = up_at + recovery;
        if !self.validated.iter().any(|at| (up_at..until).contains(at)) {
            return Err(format!("no validated answer within {recovery:?} of the restart at {up_at:?}"));
        }
        let excusable = |f: &Failure| (from..until).contains(&f.at) && f.fault.is_unreachable();
        let (excused, kept): (Vec<Failure>, Vec<Failure>) = self.failures.drain(..).partition(excusable);
        self.failures = kept;
        let last = excused.iter().map(|f| f.at.saturating_sub(up_at)).max().unwrap_or_default();
        self.excused.extend(excused);
        Ok(last)
    }

    /// Whether a probe of `name` received `value` among its TXT values (validated: only AD
    /// answers are recorded).
    pub fn saw_txt(&self, name: &str, value: &str) -> bool {
        self.txt_seen.iter().any(|(_, n, values)| n == name && values.iter().any(|v| v == value))
    }
}

/// A thread sending the probes in turn through the validator, `per_second` queries a second
/// on a fixed schedule, until stopped or `bound` passes.
pub struct Prober {
    /// Set to stop the thread.
    stop: Arc<AtomicBool>,
    /// The thread; gives the report.
    handle: JoinHandle<ProbeReport>,
}

impl Prober {
    /// Starts probing the resolver at `resolver` (e.g. [`Validator::addr`]).
    pub fn start(resolver: SocketAddr, probes: Vec<Probe>, per_second: u32, bound: Duration) -> Self {
        assert!(!probes.is_empty() && per_second > 0);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let start = Instant::now();
            let interval = Duration::from_secs(1) / per_second;
            let mut report = ProbeReport::new(start);
            let mut last_txt: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for n in 0u32.. {
                let due = start + interval * n;
                while Instant::now() < due && !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                if flag.load(Ordering::Relaxed) || due > start + bound {
                    break;
                }
                let probe = &probes[n as usize % probes.len()];
                report.sent += 1;
                let at = start.elapsed();
                let problem = match resolve_at(resolver, &probe.name, probe.qtype) {
                    None => Some((Fault::Silent, "no answer".to_owned())),
                    Some(m) if m.rcode == 2 => {
                        let ede = ede_code(&m);
                        Some((Fault::Servfail(ede), format!("SERVFAIL (EDE {ede:?})")))
                    }
                    Some(m) if !m.ad() => Some((Fault::NotAd, format!("no AD (rcode {})", m.rcode))),
                    Some(m) => {
                        let has = m.answers.iter().any(|r| r.rtype == probe.qtype);
                        let right = match probe.expect {
                            Expect::Answer => m.rcode == rcode::NOERROR && has,
                            Expect::NoData => m.rcode == rcode::NOERROR && !has,
                            Expect::NxDomain => m.rcode == rcode::NXDOMAIN,
                        };
                        if probe.qtype == t::TXT && has {
                            let values = m.txts();
                            if last_txt.get(&probe.name) != Some(&values) {
                                report.txt_seen.push((at, probe.name.clone(), values.clone()));
                                last_txt.insert(probe.name.clone(), values);
                            }
                        }
                        (!right).then(|| {
                            let what = format!(
                                "rcode {}, {} answers, {:?} expected",
                                m.rcode,
                                m.answers.len(),
                                probe.expect
                            );
                            (Fault::Wrong, what)
                        })
                    }
                };
                match problem {
                    None => report.validated.push(at),
                    Some((fault, what)) => {
                        let text = format!("{at:?} {} {}: {what}", probe.name, probe.qtype);
                        report.failures.push(Failure { at, fault, text });
                    }
                }
            }
            report.elapsed = start.elapsed();
            report
        });
        Self { stop, handle }
    }

    /// Stops the thread and returns its report.
    pub fn finish(self) -> ProbeReport {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("the prober thread")
    }
}

// ---------------------------------------------------------------------------------------------
// Our server in the chain

/// Our server signed, with TTLs short enough for a rollover test to run in seconds.
pub struct Child {
    /// The server.
    pub server: TestServer,
    /// Its directory (configuration, SQLite database).
    pub dir: TempDir,
}

impl Child {
    /// TTL of our DNSKEY, CDS and CDNSKEY sets (`[dnssec] dnskey_ttl`, and `[dns] soa_ttl`),
    /// seconds.
    pub const DNSKEY_TTL: u32 = 3;
    /// The propagation delay the rollover tests configure (`[dnssec] propagation_delay`).
    pub const PROPAGATION: u32 = 1;

    /// The `[dnssec]` timing lines of a rollover test against `parent`: our DS TTL there, the
    /// propagation delay, and the parent's server to ask for the DS.
    pub fn rollover_timing(parent: &Parent) -> String {
        format!(
            "parent = [\"{}\"]\nparent_ds_ttl = {}\npropagation_delay = {}\n",
            parent.addr,
            Parent::DS_TTL,
            Self::PROPAGATION
        )
    }

    /// Starts our server with DNSSEC on and short TTLs (DNSKEY and static records
    /// [`Child::DNSKEY_TTL`], negative answers 1 s, TXT 1 s).
    pub fn start() -> Self {
        Self::start_with("")
    }

    /// Like [`Child::start`], with `dnssec` lines added to `[dnssec]` (say, a rollover's timings).
    pub fn start_with(dnssec: &str) -> Self {
        Self::start_with_sections(dnssec, &[])
    }

    /// Like [`Child::start_with`], with more `(section, lines)` (say, `[transfer]`).
    pub fn start_with_sections(dnssec: &str, more: &[(&str, &str)]) -> Self {
        let dir = TempDir::new();
        let server = TestServer::start_with(&dir, &Self::config(&base_config(&dir.0), dnssec, more));
        Self { server, dir }
    }

    /// The configuration [`Child::start_with_sections`] starts with, from `base` (say, a
    /// PostgreSQL one): DNSSEC on, the short TTLs, `dnssec` lines and `more` sections added.
    pub fn config(base: &str, dnssec: &str, more: &[(&str, &str)]) -> String {
        let ttl = Self::DNSKEY_TTL;
        let config = with_keys(base, "dnssec", &format!("enabled = true\ndnskey_ttl = {ttl}\n{dnssec}"));
        let config = with_keys(
            &config,
            "dns",
            &format!("soa_ttl = {ttl}\ndefault_ttl = {ttl}\nnegative_ttl = 1\ntxt_ttl = 1"),
        );
        let mut config = with_keys(&config, "api", "register_rate_limit = 0");
        for (section, lines) in more {
            config = with_keys(&config, section, lines);
        }
        config
    }

    /// Runs `acme-delegate dnssec ARGS -c config`; its stdout, or its output on failure.
    pub fn dnssec(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(binary())
            .arg("dnssec")
            .args(args)
            .arg("-c")
            .arg(self.dir.join("config.cfg"))
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(text)
        } else {
            Err(format!("{text}{}", String::from_utf8_lossy(&out.stderr)))
        }
    }

    /// The DS lines `acme-delegate dnssec ds` prints, normalised.
    pub fn ds(&self) -> Vec<String> {
        let text = self.dnssec(&["ds"]).expect("dnssec ds");
        text.lines().filter(|l| l.starts_with(&format!("{DOMAIN}. IN DS "))).map(normalise_ds).collect()
    }

    /// The probes of issue 21 for `account` (whose TXT the test changes) and `quiet` (an account
    /// with a value that stays): TXT answers, NODATA, NXDOMAIN and our DNSKEY.
    pub fn probes(account: &serde_json::Value, quiet: &serde_json::Value) -> Vec<Probe> {
        let changing = account["fulldomain"].as_str().unwrap();
        let steady = quiet["fulldomain"].as_str().unwrap();
        vec![
            Probe::new(changing, t::TXT, Expect::Answer),
            Probe::new(steady, t::TXT, Expect::Answer),
            Probe::new(steady, t::A, Expect::NoData),
            Probe::new(&format!("nope.{DOMAIN}"), t::TXT, Expect::NxDomain),
            Probe::new(DOMAIN, rt::DNSKEY, Expect::Answer),
        ]
    }
}

// ---------------------------------------------------------------------------------------------
// Tests

/// Registers two accounts and gives each a first value; returns (changing, quiet).
pub fn two_accounts(server: &TestServer) -> (serde_json::Value, serde_json::Value) {
    let (changing, quiet) = (server.register(), server.register());
    assert_eq!(server.update(&changing, &txt_value(100)).status, 200);
    assert_eq!(server.update(&quiet, &txt_value(200)).status, 200);
    (changing, quiet)
}

/// The chain of trust from a parent we do not run, end to end: Knot signs `example.org.` and
/// serves the DS that `acme-delegate dnssec ds` prints; unbound, trusting only Knot's key,
/// validates every kind of our answer (AD, never SERVFAIL) at 10 queries a second while an
/// account's TXT changes; our CDS agrees with that DS. Then the same validator is seen to notice
/// a wrong DS (SERVFAIL) and a missing one (no AD), so the probing proves the chain.
#[test]
fn the_parents_ds_makes_our_answers_secure() {
    let parent = Parent::start();
    let child = Child::start();
    let server = &child.server;
    let ds = child.ds();
    assert_eq!(ds.len(), 1, "one key, one DS: {ds:?}");
    parent.set_ds(&ds).unwrap();
    assert_eq!(parent.ds(), Some(ds.clone()));
    let validator = Validator::start(&parent, server, 5);
    let registrar = Registrar::new(server.udp);
    assert_eq!(registrar.cds().unwrap(), ds, "our CDS is the DS `dnssec ds` prints");
    assert_eq!(registrar.sync(&parent, Some(&validator)).unwrap(), ds, "the registrar keeps that DS");
    let (changing, quiet) = two_accounts(server);
    let name = changing["fulldomain"].as_str().unwrap().to_owned();

    let recorder = Recorder::start(server.udp, &parent, Duration::from_secs(30));
    let prober = Prober::start(validator.addr, Child::probes(&changing, &quiet), 10, Duration::from_secs(30));
    let mut last = String::new();
    for i in 1..=4 {
        std::thread::sleep(Duration::from_secs(2));
        last = txt_value(100 + i);
        assert_eq!(server.update(&changing, &last).status, 200);
    }
    // The last value's TTL is 1 s, unbound counts whole seconds: 2.5 s to see it.
    std::thread::sleep(Duration::from_millis(2500));
    let report = prober.finish();
    let recording = recorder.finish();
    eprintln!(
        "{} probes in {:?} ({:.1}/s), {} samples",
        report.sent,
        report.elapsed,
        report.rate(),
        recording.len()
    );
    report.check(5.0).unwrap_or_else(|e| panic!("{e}\nunbound:\n{}", validator.log_text()));
    assert!(report.saw_txt(&name, &last), "the last value validated: {:?}", report.txt_seen);
    let ours = ds_key(&ds[0]).unwrap();
    assert!(recording.len() >= 9, "{}", show(&recording));
    for s in &recording {
        assert_eq!(s.dnskey, Some(BTreeSet::from([ours])), "{}", show(&recording));
        assert_eq!(s.cdnskey, Some(BTreeSet::from([ours])), "{}", show(&recording));
        assert_eq!(s.cds, Some(ds.iter().cloned().collect()), "{}", show(&recording));
        assert_eq!(s.parent_ds, Some(ds.iter().cloned().collect()), "{}", show(&recording));
    }
    let ttl = |s: u32| Duration::from_secs(u64::from(s));
    order_check(&recording, ttl(Child::DNSKEY_TTL), ttl(1), ttl(Parent::DS_TTL)).unwrap();

    // No DS: our zone is insecure; answers come, without AD.
    parent.set_ds(&[]).unwrap();
    let insecure = || validator.resolve(&name, t::TXT).is_some_and(|m| m.rcode == rcode::NOERROR && !m.ad());
    assert!(crate::pg::eventually(Duration::from_secs(15), insecure), "no DS: an insecure answer");
    // The registrar reads our CDS (not validated now: no chain) and puts the DS back.
    assert_eq!(registrar.sync(&parent, None).unwrap(), ds);
    let secure = || validator.resolve(&name, t::TXT).is_some_and(|m| m.ad());
    assert!(crate::pg::eventually(Duration::from_secs(15), secure), "the DS back: secure again");
    // A DS naming our key with a wrong digest: once the cached key and DS expire, SERVFAIL
    // (last: unbound then blacks the zone out for a minute).
    let (head, digit) = ds[0].split_at(ds[0].len() - 1);
    let wrong = format!("{head}{}", if digit == "0" { "1" } else { "0" });
    parent.set_ds(&[wrong]).unwrap();
    let servfail = || validator.resolve(&name, t::TXT).is_some_and(|m| m.rcode == 2);
    assert!(crate::pg::eventually(Duration::from_secs(15), servfail), "a wrong DS must break the chain");
}

/// Issue 21's CSK rollover: throughout the rollover, with the test as the registrar acting on
/// our CDS every second, unbound keeps answering every probe validated at 10 a second, and the
/// recording keeps both timing rules. The server knows the parent's DS TTL
/// ([`Parent::DS_TTL`]), the propagation delay and the parent's server ([`Child::rollover_timing`]).
#[test]
fn csk_rollover_keeps_validating() {
    let parent = Parent::start();
    let child = Child::start_with(&Child::rollover_timing(&parent));
    let server = &child.server;
    parent.set_ds(&child.ds()).unwrap();
    let validator = Validator::start(&parent, server, 5);
    let accounts = two_accounts(server);
    let rolled = crate::rollover::roll(&child, &parent, &validator, &accounts, &["rollover"]);
    eprintln!("CSK rollover done in {:.1} s", rolled.elapsed.as_secs_f64());
    rolled.check(&accounts.0);
    assert_eq!(rolled.new_key.alg, rolled.old_key.alg, "a CSK rollover keeps the algorithm");
}

/// A recorded moment for the checks of [`order_check`]: key tags (algorithm 13) in DNSKEY, CDS
/// and the parent's DS at second `at`.
fn moment(at: u64, dnskey: &[u16], cds: &[u16], ds: &[u16]) -> Sample {
    let ds_set = |tags: &[u16]| Some(tags.iter().map(|t| format!("{t} 13 2 AB{t:04X}")).collect());
    let keys: Option<BTreeSet<KeyId>> = Some(dnskey.iter().map(|&tag| KeyId { tag, alg: 13 }).collect());
    Sample {
        at: Duration::from_secs(at),
        dnskey: keys.clone(),
        cds: ds_set(cds),
        cdnskey: keys,
        parent_ds: ds_set(ds),
    }
}

/// The ordering rules accept a rollover that waits long enough at both ends and reject each way
/// of hurrying it (DNSKEY TTL 3 s + 1 s propagation, DS TTL 2 s): no peers, just the check.
#[test]
fn order_check_holds_the_rollover_timing() {
    let check =
        |r: &[Sample]| order_check(r, Duration::from_secs(3), Duration::from_secs(1), Duration::from_secs(2));
    // Key 1 at first; key 2 published at 2 s, its CDS at `cds_at` (6 s is right), the DS
    // swapped at `ds_at`, key 1 removed at `removed_at` (9 s is right after a swap at 7 s).
    let timeline = |cds_at: u64, ds_at: u64, removed_at: u64| -> Vec<Sample> {
        (0..12)
            .map(|s| {
                let dnskey: &[u16] = match s {
                    s if s < 2 => &[1],
                    s if s < removed_at => &[1, 2],
                    _ => &[2],
                };
                let cds: &[u16] = if s < cds_at { &[1] } else { &[2] };
                let ds: &[u16] = if s < ds_at { &[1] } else { &[2] };
                moment(s, dnskey, cds, ds)
            })
            .collect()
    };
    check(&timeline(6, 7, 9)).unwrap();
    let early_cds = check(&timeline(5, 7, 9)).unwrap_err();
    assert!(early_cds.contains("key 2/13 entered DNSKEY at 2s and its CDS at 5s"), "{early_cds}");
    let early_removal = check(&timeline(6, 7, 8)).unwrap_err();
    assert!(early_removal.contains("key 1/13 left DNSKEY at 8s, 1s after"), "{early_removal}");
    let while_named = check(&timeline(6, 20, 9)).unwrap_err();
    assert!(
        while_named.contains("key 1/13 left DNSKEY at 9s while the parent's DS still names it"),
        "{while_named}"
    );
    // A CDS for a key not (yet) published.
    let mut ahead = timeline(6, 7, 9);
    ahead[1] = moment(1, &[1], &[2], &[1]);
    let err = check(&ahead).unwrap_err();
    assert!(err.contains("CDS names key 2/13, which is not in DNSKEY"), "{err}");
    // Unanswered queries are gaps, not violations.
    let mut gaps = timeline(6, 7, 9);
    gaps[8].dnskey = None;
    check(&gaps).unwrap();
}
