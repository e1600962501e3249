//! The credentials file: a JSON map from domain to the account registered for it.
//!
//! Design note: the format is the one acme-dns clients already share (acme-dns-client,
//! goacmedns/lego, certbot-dns-acmedns's registration file, cert-manager's secret, Caddy's
//! libdns/acmedns): `{"example.com": {"username", "password", "fulldomain", "subdomain",
//! "allowfrom", "server_url"}}`. One file can feed any of them. Entries this program did not
//! write are kept exactly as they were; keys written by other tools (`*.example.com`,
//! `_acme-challenge.example.com`, a trailing dot, capitals) are found too. The file holds
//! passwords: it is written to a temporary file with mode 0600 in the same directory and renamed
//! over the old one, so a reader never sees half a file and the secret is never world-readable.
//!
//! Where it lives by default depends on who runs the client ([`default_path`]): root (certbot's
//! hooks, a system timer) keeps [`SYSTEM_PATH`], which only root can write; any other user (a
//! domain owner at their shell) keeps it in their own configuration directory, as the XDG Base
//! Directory specification says: `$XDG_CONFIG_HOME/acme-delegate/client.json`, or
//! `~/.config/acme-delegate/client.json` when that variable is unset.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The credentials file of root (user ID 0).
pub(crate) const SYSTEM_PATH: &str = "/etc/acme-delegate/client.json";

/// The default credentials file of the user `uid`, given the values of `XDG_CONFIG_HOME` and
/// `HOME`: [`SYSTEM_PATH`] for root, else under the user's configuration directory. A relative
/// or empty `XDG_CONFIG_HOME` is ignored, as the XDG specification says.
pub(crate) fn default_path(
    uid: u32,
    xdg_config_home: Option<OsString>,
    home: Option<OsString>,
) -> Result<PathBuf, String> {
    if uid == 0 {
        return Ok(PathBuf::from(SYSTEM_PATH));
    }
    let absolute = |value: Option<OsString>| value.map(PathBuf::from).filter(|p| p.is_absolute());
    let config = match (absolute(xdg_config_home), absolute(home)) {
        (Some(xdg), _) => xdg,
        (None, Some(home)) => home.join(".config"),
        (None, None) => {
            return Err(
                "neither XDG_CONFIG_HOME nor HOME is set to an absolute path: give --storage FILE".into()
            );
        }
    };
    Ok(config.join("acme-delegate").join("client.json"))
}

/// One registered account, as `/register` returned it plus the server it lives on.
#[derive(Clone, Deserialize, Serialize, PartialEq, Eq)]
pub(crate) struct Account {
    /// `X-Api-User`.
    pub username: String,
    /// `X-Api-Key`.
    pub password: String,
    /// The name the `_acme-challenge` CNAME points at (no trailing dot).
    pub fulldomain: String,
    /// The first label of `fulldomain`; sent with every update.
    pub subdomain: String,
    /// Networks allowed to update (empty: anywhere).
    #[serde(default)]
    pub allowfrom: Vec<String>,
    /// The API's base URL (absent in files made by cert-manager users or old clients).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub server_url: String,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("fulldomain", &self.fulldomain)
            .field("subdomain", &self.subdomain)
            .field("allowfrom", &self.allowfrom)
            .field("server_url", &self.server_url)
            .finish()
    }
}

/// The credentials file, loaded.
#[derive(Debug)]
pub(crate) struct Storage {
    /// Where it lives.
    path: PathBuf,
    /// Every entry, ours and others', in file order.
    entries: Map<String, Value>,
}

/// Turns what a user or certbot gives as a domain into the storage key: no trailing dot, lower
/// case, without a leading `*.` (a wildcard is validated at its base name) or `_acme-challenge.`.
pub(crate) fn normalize_domain(text: &str) -> Result<String, String> {
    let mut name = text.trim().trim_end_matches('.').to_ascii_lowercase();
    if let Some(rest) = name.strip_prefix("*.") {
        name = rest.to_owned();
    }
    if let Some(rest) = name.strip_prefix("_acme-challenge.") {
        name = rest.to_owned();
    }
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(valid_label) {
        return Err(format!(
            "{text:?} is not a domain name (write it as example.com; international names in their xn-- form)"
        ));
    }
    Ok(name)
}

/// Whether two DNS names are the same: ASCII case and a final dot do not matter.
pub(crate) fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.').eq_ignore_ascii_case(b.trim_end_matches('.'))
}

impl Storage {
    /// Loads the file; a file that does not exist yet is an empty map.
    pub(crate) fn load(path: &Path) -> Result<Self, String> {
        let entries = match std::fs::read(path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Map::new(),
            Ok(bytes) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(Value::Object(map)) => map,
                Ok(_) => return Err(format!("{}: not a JSON object (domain -> account)", path.display())),
                Err(e) => return Err(format!("{}: not valid JSON: {e}", path.display())),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        Ok(Self { path: path.to_owned(), entries })
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The key under which `domain` (already normalised) is stored, if any: the exact key first,
    /// then any key that normalises to the same name.
    fn key_of(&self, domain: &str) -> Option<String> {
        if self.entries.contains_key(domain) {
            return Some(domain.to_owned());
        }
        self.entries.keys().find(|k| normalize_domain(k).is_ok_and(|k| k == domain)).cloned()
    }

    /// The account for `domain` (normalised), if one is stored.
    pub(crate) fn get(&self, domain: &str) -> Result<Option<Account>, String> {
        let Some(key) = self.key_of(domain) else { return Ok(None) };
        let value = self.entries[&key].clone();
        let account: Account = serde_json::from_value(value).map_err(|e| {
            format!(
                "{}: the entry {key:?} is not an account (username, password, fulldomain, subdomain): {e}",
                self.path.display()
            )
        })?;
        Ok(Some(account))
    }

    /// Stores (or replaces) the account for `domain` (normalised).
    pub(crate) fn put(&mut self, domain: &str, account: &Account) {
        let key = self.key_of(domain).unwrap_or_else(|| domain.to_owned());
        let value = serde_json::to_value(account).expect("an account serialises");
        self.entries.insert(key, value);
    }

    /// The stored domains, as written in the file.
    #[cfg(test)]
    pub(crate) fn domains(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Writes the file: a temporary file with mode 0600 beside it, then a rename. A missing
    /// directory is created with mode 0700.
    pub(crate) fn save(&self) -> Result<(), String> {
        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
            _ => PathBuf::from("."),
        };
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let name = self.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let mut text = serde_json::to_string_pretty(&self.entries).expect("JSON serialises");
        text.push('\n');
        let write = || -> std::io::Result<()> {
            let mut file =
                std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temp)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&temp, &self.path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&temp);
            format!("cannot write {}: {e}", self.path.display())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn account(n: u8) -> Account {
        Account {
            username: format!("user-{n}"),
            password: format!("pass-{n}"),
            fulldomain: format!("sub-{n}.auth.example.org"),
            subdomain: format!("sub-{n}"),
            allowfrom: vec![],
            server_url: "https://auth.example.org".into(),
        }
    }

    fn temp_path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("acme-delegate-storage-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("sub").join("client.json")
    }

    #[test]
    fn the_default_path_follows_the_user() {
        let os = |s: &str| Some(OsString::from(s));
        assert_eq!(default_path(0, os("/x"), os("/root")).unwrap(), PathBuf::from(SYSTEM_PATH));
        assert_eq!(
            default_path(1000, os("/home/a/cfg"), os("/home/a")).unwrap(),
            PathBuf::from("/home/a/cfg/acme-delegate/client.json")
        );
        assert_eq!(
            default_path(1000, None, os("/home/a")).unwrap(),
            PathBuf::from("/home/a/.config/acme-delegate/client.json")
        );
        // Relative or empty XDG_CONFIG_HOME does not count.
        for xdg in ["", "cfg"] {
            assert_eq!(
                default_path(1000, os(xdg), os("/home/a")).unwrap(),
                PathBuf::from("/home/a/.config/acme-delegate/client.json")
            );
        }
        assert!(default_path(1000, None, None).unwrap_err().contains("--storage"));
    }

    #[test]
    fn domains_are_normalised() {
        assert_eq!(normalize_domain("Example.COM.").unwrap(), "example.com");
        assert_eq!(normalize_domain("*.example.com").unwrap(), "example.com");
        assert_eq!(normalize_domain("_acme-challenge.www.example.com.").unwrap(), "www.example.com");
        assert_eq!(normalize_domain(" xn--bcher-kva.example ").unwrap(), "xn--bcher-kva.example");
        for bad in ["", ".", "a..b", "exa mple.com", "*.", "bücher.example", &"a".repeat(64)] {
            assert!(normalize_domain(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_compare_without_case_or_final_dot() {
        assert!(same_name("ABC.auth.example.org.", "abc.AUTH.example.org"));
        assert!(same_name("abc.auth.example.org", "abc.auth.example.org."));
        assert!(!same_name("abc.auth.example.org", "abd.auth.example.org"));
        assert!(!same_name("abc.auth.example.org", "abc.auth.example.org.evil"));
    }

    #[test]
    fn a_missing_file_is_empty_and_saving_makes_it_private() {
        let path = temp_path("save");
        let mut storage = Storage::load(&path).unwrap();
        assert!(storage.get("example.com").unwrap().is_none());
        storage.put("example.com", &account(1));
        storage.save().unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap()).unwrap().permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let again = Storage::load(&path).unwrap();
        assert_eq!(again.get("example.com").unwrap(), Some(account(1)));
        // The shared format: a map from domain to the lower-case account keys.
        let json: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(json["example.com"]["fulldomain"], "sub-1.auth.example.org");
        assert_eq!(json["example.com"]["server_url"], "https://auth.example.org");
        assert_eq!(json["example.com"]["allowfrom"], serde_json::json!([]));
        let _ = std::fs::remove_dir_all(path.parent().unwrap().parent().unwrap());
    }

    #[test]
    fn other_tools_entries_are_found_and_kept() {
        let path = temp_path("others");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        // cert-manager style (no server_url), a wildcard key, an _acme-challenge key, and an
        // entry of some other shape that must survive untouched.
        std::fs::write(
            &path,
            r#"{
  "Example.com.": {"username": "u", "password": "p", "fulldomain": "s.auth.example.org", "subdomain": "s", "allowfrom": []},
  "*.wild.example": {"username": "w", "password": "p", "fulldomain": "w.auth.example.org", "subdomain": "w"},
  "_acme-challenge.posh.example": {"username": "x", "password": "p", "fulldomain": "x.auth.example.org", "subdomain": "x"},
  "other": {"something": ["else", 1]}
}"#,
        )
        .unwrap();
        let mut storage = Storage::load(&path).unwrap();
        let found = storage.get("example.com").unwrap().unwrap();
        assert_eq!((found.username.as_str(), found.server_url.as_str()), ("u", ""));
        assert_eq!(storage.get("wild.example").unwrap().unwrap().username, "w");
        assert_eq!(storage.get("posh.example").unwrap().unwrap().username, "x");
        assert!(storage.get("other").is_err(), "not an account: a clear error");
        // Replacing keeps the key as the file had it.
        storage.put("example.com", &account(2));
        storage.save().unwrap();
        let json: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(json["Example.com."]["username"], "user-2");
        assert_eq!(json["other"], serde_json::json!({"something": ["else", 1]}));
        assert_eq!(json.as_object().unwrap().len(), 4);
        let _ = std::fs::remove_dir_all(path.parent().unwrap().parent().unwrap());
    }

    #[test]
    fn broken_files_are_reported_not_overwritten() {
        let path = temp_path("broken");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "{not json").unwrap();
        assert!(Storage::load(&path).unwrap_err().contains("not valid JSON"));
        std::fs::write(&path, "[1, 2]").unwrap();
        assert!(Storage::load(&path).unwrap_err().contains("not a JSON object"));
        std::fs::write(&path, "\n").unwrap();
        assert!(Storage::load(&path).unwrap().domains().next().is_none());
        let _ = std::fs::remove_dir_all(path.parent().unwrap().parent().unwrap());
    }

    #[test]
    fn debug_output_hides_the_password() {
        let text = format!("{:?}", account(3));
        assert!(!text.contains("pass-3") && text.contains("redacted"), "{text}");
    }
}
