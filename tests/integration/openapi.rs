//! `docs/openapi.yaml` against the server: every route of the router is described, and
//! schemathesis (PyPI, in the tests' Python environment) finds no answer of the live server
//! outside the description, each test case authenticated with an account of its own.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::harness::*;

/// A file of the repository.
fn repo_file(path: &str) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The routes of `api::app` as (path, method), read from its source: each `.route("…", …)`
/// call with the method routers it chains (`get(…).patch(…)`).
fn router_routes(source: &str) -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    let mut rest = source;
    while let Some(at) = rest.find(".route(") {
        // The path is the first string literal of the call (rustfmt may put it on a new line).
        rest = rest[at + 7..].trim_start();
        let Some(quoted) = rest.strip_prefix('"') else { continue };
        rest = quoted;
        let path_end = rest.find('"').expect("the path's closing quote");
        let path = rest[..path_end].to_owned();
        // The call's arguments: up to the parenthesis that closes `.route(`.
        let mut depth = 1;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                depth += match c {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                depth == 0
            })
            .map_or(rest.len(), |(i, _)| i);
        let call = &rest[path_end..end];
        for method in ["get", "post", "put", "patch", "delete"] {
            let needle = format!("{method}(");
            let starts_call = |i: usize| {
                i == 0 || !call.as_bytes()[i - 1].is_ascii_alphanumeric() && call.as_bytes()[i - 1] != b'_'
            };
            if call.match_indices(&needle).any(|(i, _)| starts_call(i)) {
                routes.insert((path.clone(), method.to_owned()));
            }
        }
    }
    routes
}

/// The operations of the OpenAPI document as (path, method): `paths:` entries at two spaces,
/// their methods at four.
fn document_operations(yaml: &str) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    let mut in_paths = false;
    let mut path = None;
    for line in yaml.lines() {
        if !line.starts_with(' ') && !line.starts_with('#') && !line.is_empty() {
            in_paths = line == "paths:";
            continue;
        }
        if !in_paths {
            continue;
        }
        if let Some(p) = line.strip_prefix("  /") {
            path = Some(format!("/{}", p.trim_end_matches(':')));
        } else if let (Some(path), Some(m)) = (&path, line.strip_prefix("    ")) {
            let m = m.trim_end_matches(':');
            if ["get", "post", "put", "patch", "delete"].contains(&m) {
                operations.insert((path.clone(), m.to_owned()));
            }
        }
    }
    operations
}

#[test]
fn every_route_of_the_router_is_in_the_document() {
    let routes = router_routes(&repo_file("src/api/mod.rs"));
    assert!(routes.contains(&("/account".to_owned(), "patch".to_owned())), "the reader works: {routes:?}");
    let documented = document_operations(&repo_file("docs/openapi.yaml"));
    let missing: Vec<_> = routes.difference(&documented).collect();
    assert!(missing.is_empty(), "routes missing from docs/openapi.yaml: {missing:?}");
    let stale: Vec<_> = documented.difference(&routes).collect();
    assert!(stale.is_empty(), "docs/openapi.yaml describes routes the router lacks: {stale:?}");
}

#[test]
fn schemathesis_finds_no_answer_outside_the_document() {
    let venv = python_venv();
    let dir = TempDir::new();
    // The limits off (0): they answer 429 by design, and would hide every route's own logic
    // from the run after a few dozen requests (their 429 is in the document all the same).
    let limits = "register_rate_limit = 0\nauth_failure_limit = 0\nupdate_rate_limit = 0";
    let server = TestServer::start_with(&dir, &with_keys(&base_config(&dir.0), "api", limits));
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let spec = root.join("docs/openapi.yaml");
    let mut command = Command::new(venv.join("bin/schemathesis"));
    command
        .arg("run")
        .arg(&spec)
        .arg("--url")
        .arg(format!("http://{}", server.api))
        // Bounded: a fixed number of examples per operation, a fixed seed, no example database,
        // one worker, so the run is repeatable and takes well under a minute.
        .args(["--max-examples", "25", "--seed", "1", "--workers", "1", "--request-timeout", "5"])
        .args(["--generation-database", "none", "--no-color"])
        // A fresh account per test case (tests/e2e/schemathesis_hooks.py says why).
        .env("SCHEMATHESIS_HOOKS", "schemathesis_hooks")
        .env("PYTHONPATH", root.join("tests/e2e"))
        .env("ACME_DELEGATE_API", format!("http://{}", server.api))
        .current_dir(&dir.0);
    let (mut child, log, pumps) = spawn_logged(&mut command);
    let status = wait_or_kill(&mut child, Duration::from_secs(90));
    for pump in pumps {
        let _ = pump.join();
    }
    let output = log.lock().unwrap().join("\n");
    // Shown with --nocapture: the phases, the warnings, the counts.
    eprintln!("{output}");
    assert!(status.is_some(), "schemathesis did not finish within 90 s:\n{output}");
    assert!(status.unwrap().success(), "schemathesis found non-conformance:\n{output}");
    // The server stayed well.
    assert_eq!(server.http("GET", "/health", &[], b"").status, 200);
}
