//! Starting and stopping: signals, taken ports, crashes.

use std::time::Duration;

use crate::harness::*;

#[test]
fn sigterm_exits_cleanly() {
    let (mut server, _dir) = TestServer::start();
    server.signal("TERM");
    let status = server.wait(Duration::from_secs(10)).expect("exits after SIGTERM");
    assert!(status.success(), "{status:?}\n{}", server.log_text());
}
