//! Integration tests: the real binary, real sockets. One test binary (see Cargo.toml).

mod api;
mod differential;
mod dns;
mod dnssec;
mod dnsviz;
mod e2e;
mod fuzz;
mod hardening;
mod hardening_store;
mod harness;
mod lifecycle;
mod metrics;
mod openapi;
mod persist;
mod persist_e2e;
mod pg;
mod privacy;
mod reload;
mod rrl;
mod same_zone;
mod stores;
mod stores_contract;
mod sync;
mod tls;
mod version;
mod xfr;
