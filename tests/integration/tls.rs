//! The API over HTTPS (`api.tls = "cert"`), with a certificate made by openssl and curl as the
//! client.

use std::process::Command;

use crate::harness::*;

#[test]
fn api_serves_https_from_certificate_files() {
    let dir = TempDir::new();
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"])
        .args(["-days", "2", "-subj", "/CN=localhost", "-keyout"])
        .arg(dir.join("key.pem"))
        .arg("-out")
        .arg(dir.join("cert.pem"))
        .output()
        .expect("openssl runs");
    assert!(status.status.success());
    let config = with_tls_cert(&base_config(&dir.0), &dir.join("key.pem"), &dir.join("cert.pem"));
    let server = TestServer::start_with(&dir, &config);
    assert!(server.log_text().contains(&format!("API listening on https://{}", server.api)));
    let out = Command::new("curl")
        .args(["-s", "--cacert"])
        .arg(dir.join("cert.pem"))
        .args(["-X", "POST", "--resolve"])
        .arg(format!("localhost:{}:127.0.0.1", server.api.port()))
        .arg(format!("https://localhost:{}/register", server.api.port()))
        .output()
        .expect("curl runs");
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).expect("register JSON over HTTPS");
    assert!(body["fulldomain"].as_str().unwrap().ends_with(DOMAIN));
    // Plain HTTP to the TLS port gets no API answer.
    let plain = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5"])
        .arg(format!("http://{}/health", server.api))
        .output()
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&plain.stdout), "200");
}

#[test]
fn missing_certificate_refuses_to_start_naming_the_key() {
    let dir = TempDir::new();
    let missing = std::path::Path::new("/nonexistent");
    let config = with_tls_cert(&base_config(&dir.0), &missing.join("key.pem"), &missing.join("cert.pem"));
    let log = TestServer::try_start(&dir, &config).err().expect("must not start");
    assert!(log.join("\n").contains("api.tls_cert_fullchain"), "{log:?}");
}
