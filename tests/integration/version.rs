//! `--version` names the package version and, built from a checkout, the git commit.

use std::process::Command;

use crate::harness::binary;

#[test]
fn version_names_the_git_commit_of_a_checkout() {
    let out = Command::new(binary()).arg("--version").output().expect("the binary runs");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let expected = format!("acme-delegate {}", env!("CARGO_PKG_VERSION"));
    assert!(text.starts_with(&expected), "{text}");
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    // Outside a checkout (a source tarball) the version stands alone.
    if let Ok(head) = head
        && head.status.success()
    {
        let commit = String::from_utf8_lossy(&head.stdout).trim().to_owned();
        assert_eq!(text.trim(), format!("{expected} (git {commit})"));
    }
}

#[test]
fn help_keeps_the_packaging_subcommand_hidden_and_names_the_reload() {
    let out = Command::new(binary()).arg("--help").output().expect("the binary runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("generate"), "--help shows the hidden generate subcommand:\n{text}");
    assert!(text.contains("SIGHUP"), "--help does not say what SIGHUP does:\n{text}");
}
