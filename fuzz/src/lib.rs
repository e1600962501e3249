//! What the libFuzzer targets share: the stable fuzzer's targets and checks (the row target
//! `zone_rows` among them), compiled from their own files, and the import target.
//!
//! Design note: the stable in-repository fuzzer (tests/integration/fuzz/) stays the gate that
//! CI runs; this crate runs the same targets under libFuzzer's coverage feedback, so the checks
//! are not copied but included (`#[path]`), with the two helpers of the test harness they call
//! (`harness` below). The row targets (`rows`, `import`) drive the library's public API from
//! what a store may hold to what a secondary receives, and check every message it would get;
//! `import` needs rusqlite for its source file, so it lives here only.

#[path = "../../tests/integration/fuzz/check.rs"]
pub mod check;
#[path = "../../tests/integration/fuzz/rows.rs"]
pub mod rows;
#[path = "../../tests/integration/fuzz/targets.rs"]
pub mod targets;
#[path = "../../tests/integration/fuzz/xfr.rs"]
pub mod xfr;

pub mod import;

use std::sync::OnceLock;

/// The stable targets' zones and keys, built once per process (key generation is slow).
pub fn context() -> &'static targets::Context {
    static CONTEXT: OnceLock<targets::Context> = OnceLock::new();
    CONTEXT.get_or_init(targets::Context::new)
}

/// The two helpers of tests/integration/harness.rs that `targets.rs` calls, with the same
/// results (the harness itself starts servers and is not for a fuzz build).
pub mod harness {
    use std::path::Path;

    /// The test zone's apex.
    pub const DOMAIN: &str = "auth.example.org";

    /// The integration tests' base configuration: the test zone with a few static records,
    /// SQLite in `dir`, the API on a free loopback port.
    pub fn base_config(dir: &Path) -> String {
        format!(
            r#"[general]
listen = "127.0.0.1:0"
protocol = "both"
domain = "{DOMAIN}"
nsname = "ns1.{DOMAIN}"
nsadmin = "admin.example.org"
records = [
    "{DOMAIN}. A 192.0.2.1",
    "{DOMAIN}. NS ns1.{DOMAIN}.",
    "ns1.{DOMAIN}. A 192.0.2.2",
    "{DOMAIN}. TXT \"Hello World, Mixed Case\"",
]

[database]
engine = "sqlite3"
connection = "{db}"

[api]
ip = "127.0.0.1"
port = "0"
tls = "none"

[logconfig]
loglevel = "info"
logtype = "stdout"
logformat = "text"
"#,
            db = dir.join("acme-delegate.db").display()
        )
    }

    /// A 43-character TXT value (the length of an ACME key authorization digest) from `seed`.
    pub fn txt_value(seed: u32) -> String {
        let base = format!("{seed:08}");
        let mut out = String::new();
        while out.len() < 43 {
            out.push_str(&base);
            out.push('_');
        }
        out.truncate(43);
        out
    }
}
