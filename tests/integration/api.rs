//! The HTTP API against the real server: acme-dns's contract and its clients' quirks.

use crate::harness::*;

#[test]
fn register_update_and_serve() {
    let (server, _dir) = TestServer::start();
    let account = server.register();
    let value = txt_value(1);
    let r = server.update(&account, &value);
    assert_eq!(r.status, 200);
    assert_eq!(r.body_text(), format!("{{\"txt\": \"{value}\"}}"));
    let reply = server.ask(account["fulldomain"].as_str().unwrap(), t::TXT);
    assert_eq!(reply.txts(), vec![value]);
}
