//! An in-repository fuzzer that runs on stable Rust (issue 12 item 8).
//!
//! Design note: cargo-fuzz needs a nightly compiler and AFL/honggfuzz need their own compiler
//! wrappers; this machine and CI have only stable Rust. So this is a plain, honest mutation
//! fuzzer in the integration test binary: no coverage instrumentation, a seeded random
//! generator (`mutate.rs`), seeds from `fuzz/corpus/<target>/` plus queries built here, and a
//! corpus that grows when an input shows a new outcome ("feature", see `targets.rs`). Each
//! target checks invariants of its outcome (`check.rs` for DNS replies; `rows.rs` and `xfr.rs`
//! for `zone_rows`, store rows through the zone to its transfers). What it finds is
//! written to `target/fuzz-findings/<target>/`; a finding, once fixed, is copied into the
//! corpus so that `fuzz_corpus_replays_cleanly` keeps it fixed.
//!
//! `fuzz_corpus_replays_cleanly` runs in every `cargo test`. `fuzz_bounded_run` is ignored by
//! default; `scripts/test` runs it for 24 s in all, and docs/FUZZING.md has the longer runs:
//! `ACME_DELEGATE_FUZZ_SECONDS` is the total time (split evenly among the targets),
//! `ACME_DELEGATE_FUZZ_SEED` fixes the random seed, `ACME_DELEGATE_FUZZ_TARGET` runs one.

mod check;
mod mutate;
mod rows;
mod targets;
mod xfr;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mutate::{Rng, mutate_bytes, mutate_text};
use targets::Context;

/// One fuzz target.
struct Target {
    /// Its name, also its corpus directory.
    name: &'static str,
    /// Text inputs (line and token edits) rather than binary ones.
    text: bool,
    /// Largest input it is given.
    max_len: usize,
    /// Runs one input; panics when an invariant breaks; returns a feature number.
    run: fn(&Context, &[u8]) -> u64,
}

/// Every target.
const TARGETS: [Target; 8] = [
    Target { name: "dns_parse", text: false, max_len: 4096, run: targets::dns_parse },
    Target { name: "dns_answer", text: false, max_len: 4096, run: targets::dns_answer },
    Target { name: "dns_answer_signed", text: false, max_len: 4096, run: targets::dns_answer_signed },
    Target { name: "dns_transfer", text: false, max_len: 4096, run: targets::dns_transfer },
    Target { name: "config", text: true, max_len: 16_384, run: targets::config },
    Target { name: "json_body", text: true, max_len: 4096, run: targets::json_body },
    Target { name: "proxy_header", text: true, max_len: 1024, run: targets::proxy_header },
    Target {
        name: "zone_rows",
        text: false,
        max_len: 4096,
        run: |_, input| rows::run(&rows::Rows::read(input)),
    },
];

/// The corpus directory of a target.
fn corpus_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target)
}

/// The seeds of a target: its corpus files and, for the DNS targets, queries built here.
fn seeds(target: &Target) -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(corpus_dir(target.name))
        .map(|dir| dir.flatten().filter_map(|e| std::fs::read(e.path()).ok()).collect())
        .unwrap_or_default();
    if target.name.starts_with("dns_") {
        seeds.extend(built_queries());
    }
    if target.name == "config" {
        // The sample config exercises every key.
        let sample = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config.sample.cfg");
        seeds.push(std::fs::read(sample).unwrap());
    }
    assert!(!seeds.is_empty(), "no seeds for {}", target.name);
    seeds
}

/// Queries for every kind of name and type the zone knows, with and without EDNS and DO.
fn built_queries() -> Vec<Vec<u8>> {
    use crate::harness::{DOMAIN, query};
    let names = [
        DOMAIN.to_owned(),
        format!("ns1.{DOMAIN}"),
        format!("0b7e3c8a-1f2d-4e5a-9b6c-7d8e9f0a1b2c.{DOMAIN}"),
        format!("2d9a5eac-3b4f-4a7c-9d8e-9f0a1b2c3d4e.{DOMAIN}"),
        format!("x.0b7e3c8a-1f2d-4e5a-9b6c-7d8e9f0a1b2c.{DOMAIN}"),
        format!("missing.{DOMAIN}"),
        "example.com".to_owned(),
    ];
    let mut out = Vec::new();
    for name in &names {
        for qtype in [1u16, 2, 6, 16, 28, 43, 46, 48, 50, 51, 252, 251, 255] {
            out.push(query(name, qtype, None));
            let mut with_do = query(name, qtype, Some(1232));
            let flags = with_do.len() - 4;
            with_do[flags] = 0x80;
            out.push(with_do);
        }
    }
    out
}

/// What one target's run came to.
struct Outcome {
    /// Inputs run.
    inputs: u64,
    /// Distinct findings (saved inputs), at most a few.
    findings: Vec<PathBuf>,
    /// Corpus size at the end.
    corpus: usize,
}

/// Saves an input that broke an invariant.
fn save_finding(target: &str, input: &[u8]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/fuzz-findings").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    let hash =
        input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3));
    let path = dir.join(format!("{hash:016x}"));
    std::fs::write(&path, input).unwrap();
    path
}

/// Runs one input, catching a panic; `Err` holds the saved input.
fn run_one(ctx: &Context, target: &Target, input: &[u8]) -> Result<u64, PathBuf> {
    catch_unwind(AssertUnwindSafe(|| (target.run)(ctx, input))).map_err(|_| save_finding(target.name, input))
}

/// Mutates and runs inputs of `target` until `until`.
fn fuzz(ctx: &Context, target: &Target, rng: &mut Rng, until: Instant) -> Outcome {
    let mut corpus = seeds(target);
    let mut seen = std::collections::HashSet::new();
    let mut outcome = Outcome { inputs: 0, findings: Vec::new(), corpus: 0 };
    for seed in &corpus {
        match run_one(ctx, target, seed) {
            Ok(feature) => drop(seen.insert(feature)),
            Err(path) => outcome.findings.push(path),
        }
    }
    while Instant::now() < until && outcome.findings.len() < 8 {
        // Check the clock every 64 inputs: the clock costs more than a small input.
        for _ in 0..64 {
            let mut input = corpus[rng.below(corpus.len())].clone();
            if target.text {
                mutate_text(rng, &mut input, &corpus, target.max_len);
            } else {
                mutate_bytes(rng, &mut input, &corpus, target.max_len);
            }
            outcome.inputs += 1;
            match run_one(ctx, target, &input) {
                Ok(feature) => {
                    if seen.insert(feature) && corpus.len() < 4096 {
                        corpus.push(input);
                    }
                }
                Err(path) => outcome.findings.push(path),
            }
        }
    }
    outcome.corpus = corpus.len();
    outcome
}

/// Every corpus entry and built seed of every target passes (the regression inputs included).
#[test]
fn fuzz_corpus_replays_cleanly() {
    let ctx = Context::new();
    for target in &TARGETS {
        for seed in seeds(target) {
            if let Err(path) = run_one(&ctx, target, &seed) {
                panic!("{}: a corpus input breaks an invariant (saved as {})", target.name, path.display());
            }
        }
    }
}

/// A bounded random run of every target (see the module note for the settings).
#[test]
#[ignore = "time-bounded fuzzing: scripts/test runs it; see docs/FUZZING.md"]
fn fuzz_bounded_run() {
    let total: f64 =
        std::env::var("ACME_DELEGATE_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(24.0);
    let seed =
        std::env::var("ACME_DELEGATE_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
        });
    let only = std::env::var("ACME_DELEGATE_FUZZ_TARGET").ok();
    let chosen: Vec<&Target> =
        TARGETS.iter().filter(|t| only.as_deref().is_none_or(|o| o == t.name)).collect();
    let each = Duration::from_secs_f64(total / chosen.len().max(1) as f64);
    let ctx = Context::new();
    let mut rng = Rng::new(seed);
    let mut findings = Vec::new();
    println!("fuzz: seed {seed}, {:.1} s per target", each.as_secs_f64());
    // Panics are the findings; their messages still print (the default hook), once each.
    for target in chosen {
        let start = Instant::now();
        let outcome = fuzz(&ctx, target, &mut rng, start + each);
        let rate = outcome.inputs as f64 / start.elapsed().as_secs_f64();
        println!(
            "fuzz: {:<18} {:>9} inputs {:>8.0}/s  corpus {:>5}  findings {}",
            target.name,
            outcome.inputs,
            rate,
            outcome.corpus,
            outcome.findings.len()
        );
        findings.extend(outcome.findings);
    }
    assert!(findings.is_empty(), "inputs that break an invariant: {findings:#?}");
}
