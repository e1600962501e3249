//! `acme-delegate dnssec …`: the DS for the parent, the keys and the rollover's state, and the
//! operator's two rollover commands (`rollover`, `ds-seen`).
//!
//! Design note: these commands only read and write the store; the running server(s) take the
//! rollover's steps (`zone_sync::rollover`). `rollover` records the new key and the request, and
//! the first driver tick (within a second) takes step 1. So a command never changes what DNS
//! serves by itself, and works the same with one instance or several.

use clap::Subcommand;

use super::{Config, base64, block_on, iso_time, open_store};
use crate::dns::dnssec::{Algorithm, KeyPolicy, SigningKey};
use crate::store::keys::{KeyRow, Rollover, RolloverKind, StartOutcome};
use crate::zone_sync::keys::{active, algorithm_name, load};
use crate::zone_sync::rollover::{describe, ds_step, last_step, wait_after};

/// `dnssec` subcommands.
#[derive(Debug, Subcommand)]
pub(super) enum DnssecAction {
    /// Print the DS record(s) (SHA-256) the parent zone must hold now, and the DNSKEY as a
    /// trust anchor. Makes the key if the server has not made it yet.
    Ds,
    /// Show every key (tag, algorithm, roles, state, since when) and the rollover's step, what
    /// it waits for and the earliest time of its next step.
    Status,
    /// Start a key rollover: a new key of the same algorithm (CSK rollover), or with
    /// `--algorithm` another one (algorithm rollover). The running server takes the steps;
    /// refused while a rollover runs.
    Rollover {
        /// The new key's algorithm: ecdsap256sha256 or ed25519 (default: the active key's).
        #[arg(long, value_parser = ["ecdsap256sha256", "ed25519"])]
        algorithm: Option<String>,
    },
    /// Tell a rollover that the parent now serves the new DS (the registrar shows it); needed
    /// only without `[dnssec] parent`, whose servers are otherwise asked.
    DsSeen,
}

/// Runs a `dnssec` subcommand against the configured store.
pub(super) fn run(config: &Config, action: &DnssecAction) -> Result<(), String> {
    let Some(settings) = config.dnssec.as_ref() else {
        return Err("dnssec.enabled is not true in this configuration: the zone is not signed".into());
    };
    block_on(async {
        let store = open_store(config).await?;
        let (rows, rollover) =
            crate::zone_sync::signing_keys(&store, settings.algorithm).await.map_err(|e| e.to_string())?;
        let apex = config.dns.zone.apex.trim_end_matches('.').to_ascii_lowercase();
        let apex_wire = crate::dns::records::name_to_wire(&apex).map_err(|e| e.to_string())?;
        let running = rollover.as_ref().filter(|r| !r.done);
        let result = match action {
            DnssecAction::Ds => ds(&rows, &apex, &apex_wire),
            DnssecAction::Status => {
                status(&rows, running, &apex, settings.validity, settings.refresh);
                if let Some(r) = running {
                    let time = store.time(false).await.map_err(|e| e.to_string())?;
                    waits(r, time.now, &settings.policy, max_ttl(config));
                    let persist_ttl = config.dns.zone.persist_ttl;
                    if persist_ttl > max_ttl(config) {
                        println!(
                            "           (a zone with dns-persist-01 names waits up to dns.persist_ttl = {persist_ttl} s \
                             instead of the {} s counted here; the server counts them)",
                            max_ttl(config)
                        );
                    }
                }
                Ok(())
            }
            DnssecAction::Rollover { algorithm } => start(&store, &rows, algorithm.as_deref()).await,
            DnssecAction::DsSeen => {
                match store.rollover_ds_seen(ds_step).await.map_err(|e| e.to_string())? {
                    Some(step) => {
                        println!(
                            "recorded: the parent serves the new DS (rollover step {step}); the old key leaves after the DS TTL"
                        );
                        Ok(())
                    }
                    None => Err(match running {
                        Some(r) => format!(
                            "the rollover is at step {} ({}), not waiting for the parent's DS (step {})",
                            r.step,
                            describe(r.kind, r.step),
                            ds_step(r.kind)
                        ),
                        None => "no key rollover runs".into(),
                    }),
                }
            }
        };
        store.close().await;
        result
    })
}

/// Prints the DS of every key the parent should hold now, and each key's trust anchor line.
fn ds(rows: &[KeyRow], apex: &str, apex_wire: &[u8]) -> Result<(), String> {
    let named: Vec<&KeyRow> = rows.iter().filter(|k| k.roles.contains('C')).collect();
    let named = if named.is_empty() { active(rows).into_iter().collect() } else { named };
    let keys: Vec<SigningKey> =
        named.into_iter().map(load).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
    for key in &keys {
        let ds = key.ds_rdata(apex_wire);
        let digest: String = ds[4..].iter().map(|b| format!("{b:02X}")).collect();
        println!("{apex}. IN DS {} {} 2 {digest}", key.key_tag(), key.algorithm().number());
    }
    println!("; as a trust anchor (unbound trust-anchor-file, delv -a):");
    for key in &keys {
        println!("{apex}. IN DNSKEY 257 3 {} {}", key.algorithm().number(), base64(&key.dnskey_rdata()[4..]));
    }
    Ok(())
}

/// Prints the active key as before, then every key and the rollover's step.
fn status(rows: &[KeyRow], running: Option<&Rollover>, apex: &str, validity: u32, refresh: u32) {
    println!("zone:      {apex}");
    if let Some(row) = active(rows)
        && let Ok(key) = load(row)
    {
        println!("key tag:   {}", key.key_tag());
        println!("algorithm: {} ({})", key.algorithm().number(), key.algorithm().name());
        println!("role:      CSK (flags 257), the active key");
        let age =
            crate::dns::zone::unix_now().saturating_sub(u32::try_from(row.created_at).unwrap_or(0)) / 86_400;
        println!("created:   {} ({age} days ago)", iso_time(row.created_at));
    }
    println!("validity:  {validity} s, renewed {refresh} s before expiry");
    println!("keys:");
    for row in rows {
        let tag = load(row).map_or_else(|_| "?".to_owned(), |k| k.key_tag().to_string());
        let roles = if row.roles.is_empty() { "-" } else { row.roles.as_str() };
        let since = row.since.map_or_else(|| "-".to_owned(), iso_time);
        println!(
            "  tag {tag:>5}  {:<15}  roles {roles:<4}  {:<9}  since {since}",
            algorithm_name(row.algorithm),
            row.state
        );
    }
    println!("           (roles: D in DNSKEY, K signs the DNSKEY set, Z signs the zone, C named by CDS)");
    match running {
        None => println!("rollover:  none running"),
        Some(r) => println!(
            "rollover:  {} rollover, step {} of {}: {} (since {})",
            r.kind.name(),
            r.step,
            last_step(r.kind),
            describe(r.kind, r.step),
            iso_time(r.since)
        ),
    }
}

/// Prints what a running rollover waits for and the earliest time of its next step.
fn waits(r: &Rollover, now: i64, policy: &KeyPolicy, max_ttl: u32) {
    if r.step == 0 {
        println!("waiting:   a running server to take step 1");
        return;
    }
    let Some(served) = r.served_at else {
        println!(
            "waiting:   every instance and `[transfer] notify` secondary to serve step {} (zone version {})",
            r.step, r.version
        );
        return;
    };
    let (after_served, after_ds) = wait_after(r.kind, r.step, policy, max_ttl);
    let mut until = served + i64::try_from(after_served).unwrap_or(0);
    if let Some(after_ds) = after_ds {
        let Some(ds_at) = r.ds_at else {
            println!(
                "waiting:   the parent's DS naming the new key only ({})",
                if policy.parent.is_empty() {
                    "run `acme-delegate dnssec ds-seen` once the registrar shows it"
                } else {
                    "asking [dnssec] parent"
                }
            );
            return;
        };
        until = until.max(ds_at + i64::try_from(after_ds).unwrap_or(0));
    }
    let what = if r.step >= last_step(r.kind) { "done" } else { "next step" };
    println!("waiting:   time (TTLs and propagation delay)");
    println!("{what}: not before {} (in {} s)", iso_time(until), (until - now).max(0));
}

/// The largest TTL the configured zone serves, as the server computes it (`Zone::max_ttl`),
/// but for persist records, which this command cannot see (with them, the server may wait
/// longer than shown).
fn max_ttl(config: &Config) -> u32 {
    let zone = &config.dns.zone;
    let dnskey = config.dnssec.as_ref().map_or(0, |d| d.policy.dnskey_ttl);
    zone.records
        .iter()
        .map(|r| r.ttl)
        .chain([zone.soa_ttl, zone.negative_ttl, zone.txt_ttl, dnskey])
        .max()
        .unwrap_or(0)
}

/// Records a rollover to a new key (of `algorithm`, or the active key's).
async fn start(store: &crate::store::Store, rows: &[KeyRow], algorithm: Option<&str>) -> Result<(), String> {
    let active = active(rows).ok_or("no active key in the database")?;
    let current = load(active).map_err(|e| e.to_string())?.algorithm();
    let algorithm = match algorithm {
        Some("ed25519") => Algorithm::Ed25519,
        Some(_) => Algorithm::EcdsaP256Sha256,
        None => current,
    };
    let kind = if algorithm == current { RolloverKind::Csk } else { RolloverKind::Algorithm };
    let pkcs8 = SigningKey::generate(algorithm).map_err(|e| e.to_string())?;
    let outcome = store
        .start_rollover(kind, algorithm.number(), crate::privacy::Secret::new(pkcs8))
        .await
        .map_err(|e| e.to_string())?;
    match outcome {
        StartOutcome::Started(_) => {
            println!(
                "{} rollover to a new {} key recorded; the running server takes its steps \
                 (`acme-delegate dnssec status` shows them)",
                kind.name(),
                algorithm.name()
            );
            if kind == RolloverKind::Algorithm {
                println!(
                    "once it is done, set dnssec.algorithm = \"{}\" in the configuration",
                    algorithm.name().to_ascii_lowercase()
                );
            }
            Ok(())
        }
        StartOutcome::Running(r) => Err(format!(
            "a {} rollover is running (step {} of {}: {}); wait until `acme-delegate dnssec status` shows it done",
            r.kind.name(),
            r.step,
            last_step(r.kind),
            describe(r.kind, r.step)
        )),
        StartOutcome::NoKey => Err("no active key in the database to roll from".into()),
    }
}
