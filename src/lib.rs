//! acme-delegate: an authoritative DNS server for one zone that answers ACME DNS-01 challenges
//! on behalf of other domains, with acme-dns's HTTP API to set the answers.
//!
//! The modules and which may use which are in ARCHITECTURE.md (its table is checked against
//! the code by `scripts/check-architecture`). What the binary, the integration tests and the
//! fuzz harness (`fuzz/`) use is public, with the types that public signatures name; the rest
//! is meant to be `pub(crate)`. `unreachable_pub` (a warning, and CI denies warnings) flags a
//! `pub` item that no path from outside reaches, but not one that is reachable and unused: for
//! an item of a public module, the check is to narrow it and compile the tests and `fuzz/`.
#![deny(unsafe_code)]
#![warn(unreachable_pub)]

pub(crate) mod api;
pub mod cidr;
pub mod cli;
pub mod config;
pub(crate) mod daemon;
pub mod dns;
pub mod dns_persist;
#[doc(hidden)]
pub mod fuzz;
pub(crate) mod metrics;
pub mod privacy;
pub mod store;
pub(crate) mod sys;
pub mod zone_sync;
