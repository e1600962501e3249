//! acme-delegate: an authoritative DNS server for one zone that answers ACME DNS-01 challenges
//! on behalf of other domains, with acme-dns's HTTP API to set the answers.
//!
//! Module map (arrows are the only allowed dependencies):
//!
//! - [`dns`]: wire format, in-memory zone, UDP/TCP listeners. Depends on nothing else here.
//! - [`store`]: durable accounts and TXT values (SQLite). → `config`.
//! - [`sync`]: the one writer: commit to the store, then apply to the zone. → `store`, `dns`.
//! - [`api`]: `/register`, `/update`, `/health`. → `sync`, `store`, `dns::zone` (reading),
//!   `config`, `privacy`.
//! - [`config`]: `config.cfg` parsing and validation. → `dns` (settings types), `cidr`.
//! - [`privacy`]: self-redacting types for secrets and client addresses.
//! - [`metrics`]: the Prometheus exporter; reads `dns` (its counters, the zone) at scrape time,
//!   and keeps the counters the API, `sync` and `store` call into (a leaf for them).
//! - `fuzz` (hidden): the doors of the fuzz harness (`tests/integration/fuzz`) to the API's
//!   private readers.
//! - [`daemon`]: composition root; binds, loads, runs, shuts down. → everything.
//! - [`cli`]: the command line. → `config`, `daemon`.
//! - [`sys`]: the only unsafe code (batched UDP system calls), used by the DNS listeners (and
//!   `geteuid` for the client).
#![deny(unsafe_code)]

pub mod api;
pub mod cidr;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod dns;
#[doc(hidden)]
pub mod fuzz;
pub mod metrics;
pub mod persist;
pub mod privacy;
pub mod store;
pub mod sync;
pub mod sys;
