//! Integration tests: the real binary, real sockets. One test binary (see Cargo.toml).

mod api;
mod differential;
mod dns;
mod dnssec;
mod dnsviz;
mod e2e;
mod harness;
mod lifecycle;
mod pg;
mod privacy;
mod rrl;
mod stores;
mod sync;
mod tls;
