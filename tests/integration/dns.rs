//! DNS behaviour against the real server over UDP and TCP.

use crate::harness::*;

#[test]
fn apex_soa_is_authoritative() {
    let (server, _dir) = TestServer::start();
    let reply = server.ask(DOMAIN, t::SOA);
    assert_eq!(reply.rcode, rcode::NOERROR);
    assert!(reply.aa());
    assert_eq!(reply.answers.len(), 1);
}
