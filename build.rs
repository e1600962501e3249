//! Build script: records the git commit the binary is built from, for `--version`.
//!
//! Design note: it runs git only when the checkout's HEAD or the branch it names moves (the
//! `rerun-if-changed` lines below), so an ordinary rebuild does not run it, and it needs no
//! build-dependency. Outside a checkout (a source tarball, git missing) it sets nothing and
//! `--version` names the version alone.

use std::process::Command;

/// Runs git with `args` in the package directory; its trimmed output, if it succeeded.
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git").args(args).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let Some(commit) = git(&["rev-parse", "--short=12", "HEAD"]) else { return };
    // HEAD names the branch; the branch's ref file (or packed-refs) moves on each commit. In a
    // worktree these live under different directories, which --git-path resolves.
    let mut watched = vec!["HEAD".to_owned(), "packed-refs".to_owned()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for name in watched {
        if let Some(path) = git(&["rev-parse", "--git-path", &name])
            && std::path::Path::new(&path).exists()
        {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rustc-env=ACME_DELEGATE_COMMIT={commit}");
}
