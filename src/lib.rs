//! acme-delegate: an authoritative DNS server for one zone that answers ACME DNS-01 challenges
//! on behalf of other domains, with acme-dns's HTTP API to set the answers.
//!
//! The modules and which may use which are in ARCHITECTURE.md (its table is checked against
//! the code by `scripts/check-architecture`). Only what the binary, the integration tests and
//! the fuzz harness use is public; everything else is `pub(crate)`, and `unreachable_pub`
//! keeps it that way (a `pub` item nothing outside can reach is a warning, and CI denies
//! warnings).
#![deny(unsafe_code)]
#![warn(unreachable_pub)]

pub(crate) mod api;
pub mod cidr;
pub mod cli;
pub mod config;
pub(crate) mod daemon;
pub mod dns;
#[doc(hidden)]
pub mod fuzz;
pub(crate) mod metrics;
pub mod persist;
pub mod privacy;
pub mod store;
pub mod sync;
pub(crate) mod sys;
