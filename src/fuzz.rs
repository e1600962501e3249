//! Entry points for the fuzz harness (`tests/integration/fuzz/`), not a public API.
//!
//! Design note: the harness drives the parsers from outside the crate, and most of them are
//! public already (the DNS wire reader, the zone's answer function, TSIG and transfers, the
//! config reader). The two that belong to the API's handlers stay private there; these thin
//! wrappers are the only door to them, hidden from the docs, so the handlers' module need not
//! grow a public surface for a test.

use std::net::IpAddr;

use crate::cidr::Cidr;

/// The request-body reader of `/register`, `/update` and `/account`: `Some(keys)` for a body it
/// accepts (a JSON object, `null` or blank), `None` for one it refuses.
pub fn json_object(body: &[u8]) -> Option<Vec<String>> {
    crate::api::handlers::parse_object(body).ok().map(|map| map.keys().cloned().collect())
}

/// The proxy-header reader: the client address behind the trusted proxy `peer` (an address in
/// one of `trusted`), given the raw values of the header in the order received.
pub fn forwarded_client(peer: IpAddr, values: &[&[u8]], trusted: &[Cidr]) -> IpAddr {
    let trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
    crate::api::handlers::forwarded_client(peer, values.iter().copied(), trusted)
}
