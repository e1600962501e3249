//! `acme-delegate client …`: the domain owner's side, for any acme-dns-compatible server.
//!
//! Design note: acme-dns users piece this together from acme-dns-client, a Python hook script
//! and `dig`; here it is one binary that needs no server configuration:
//!
//! - `register` creates an account and stores it in the credentials file every acme-dns client
//!   reads (see [`storage`]), then prints the one CNAME to create and a CAA suggestion;
//! - `update` sets a TXT value by hand, `hook` does the same as certbot's
//!   `--manual-auth-hook` (from `CERTBOT_DOMAIN` and `CERTBOT_VALIDATION`);
//! - `check` verifies the CNAME and asks every authoritative nameserver directly (see
//!   [`check`]).
//!
//! Failures are one clear sentence on stderr and a non-zero exit (certbot shows the hook's
//! stderr and stops). HTTP is [`http`] (hyper, rustls; which certificates count is [`trust`]),
//! DNS is [`dns`] (our own small stub, so the check does not trust the server code it checks).

pub(crate) mod check;
pub(crate) mod dns;
pub(crate) mod dns_persist;
pub(crate) mod http;
pub(crate) mod storage;
pub(crate) mod trust;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use self::http::Url;
use self::storage::{Account, Storage, normalize_domain};

/// Client subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum ClientCommand {
    /// Register an account for a domain, store its credentials, and print the CNAME to create.
    Register(RegisterArgs),
    /// Set the TXT value served for a domain.
    Update(UpdateArgs),
    /// certbot --manual-auth-hook: set the TXT value from CERTBOT_DOMAIN and CERTBOT_VALIDATION.
    Hook(HookArgs),
    /// Check the CNAME and ask every authoritative nameserver what it serves.
    Check(CheckArgs),
    /// Publish (or delete, or only print) a dns-persist-01 record and print the
    /// `_validation-persist` CNAME.
    Persist(Box<dns_persist::PersistArgs>),
}

/// Options shared by every subcommand.
#[derive(Debug, Args)]
pub(crate) struct Common {
    /// The credentials file (JSON: domain -> account), written with mode 0600. Default for
    /// root: /etc/acme-delegate/client.json; for any other user:
    /// $XDG_CONFIG_HOME/acme-delegate/client.json (~/.config/acme-delegate/client.json when
    /// XDG_CONFIG_HOME is unset).
    #[arg(long, env = "ACME_DELEGATE_CLIENT_STORAGE", value_name = "FILE")]
    storage: Option<PathBuf>,
    /// Also trust the certificate(s) in this PEM file for the API's HTTPS, besides the system's
    /// store: the CA that issued the server's certificate, or the server's own certificate
    /// (self-signed, e.g. by `openssl req -x509`), which is then the one accepted (pinned).
    #[arg(long = "ca-file", env = "ACME_DELEGATE_CLIENT_CA_FILE", value_name = "PEM")]
    ca_file: Option<PathBuf>,
}

impl Common {
    /// HTTP options.
    fn http(&self) -> http::Options {
        http::Options { ca_files: self.ca_file.iter().cloned().collect() }
    }

    /// The credentials file: `--storage`, or the default of the user running the client.
    fn storage(&self) -> Result<PathBuf, String> {
        match &self.storage {
            Some(path) => Ok(path.clone()),
            None => storage::default_path(
                crate::sys::effective_uid(),
                std::env::var_os("XDG_CONFIG_HOME"),
                std::env::var_os("HOME"),
            ),
        }
    }
}

/// `client register`.
#[derive(Debug, Args)]
pub(crate) struct RegisterArgs {
    /// The API's base URL, e.g. https://auth.example.org
    #[arg(long, value_name = "URL")]
    server: String,
    /// The domain a certificate will be issued for (a wildcard uses its base name).
    #[arg(long, value_name = "NAME")]
    domain: String,
    /// Networks allowed to update the value (CIDR); repeat or list them. Default: anywhere.
    #[arg(long, value_name = "CIDR", num_args = 1.., value_delimiter = ',')]
    allowfrom: Vec<String>,
    /// Replace an account already stored for this domain.
    #[arg(long)]
    force: bool,
    /// Your ACME account URL: also print the dns-account-01 CNAME
    /// (`_<label>._acme-challenge.<domain>`) for that account.
    #[arg(long, value_name = "URL")]
    account_url: Option<String>,
    #[command(flatten)]
    common: Common,
}

/// `client update`.
#[derive(Debug, Args)]
pub(crate) struct UpdateArgs {
    /// The domain whose stored account is used.
    #[arg(long, value_name = "NAME")]
    domain: String,
    /// The value (the 43-character DNS-01 key authorization digest).
    #[arg(long, value_name = "VALUE")]
    txt: String,
    /// Use this API URL instead of the stored one.
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    #[command(flatten)]
    common: Common,
}

/// `client hook`.
#[derive(Debug, Args)]
#[command(after_help = "\
Use: certbot certonly --manual --preferred-challenges dns \\
       --manual-auth-hook 'acme-delegate client hook' -d example.com -d '*.example.com'
No cleanup hook is needed: the server keeps the newest values and drops older ones.")]
pub(crate) struct HookArgs {
    /// Use this API URL instead of the stored one.
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    #[command(flatten)]
    common: Common,
}

/// `client check`.
#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// The domain to check (its stored account gives the expected CNAME target).
    #[arg(long, value_name = "NAME")]
    domain: String,
    /// Recursive resolver to use: ADDR or ADDR:PORT. Default: the first of /etc/resolv.conf.
    #[arg(long, env = "ACME_DELEGATE_RESOLVER", value_name = "ADDR")]
    resolver: Option<String>,
    /// Ask these authoritative servers (ADDR or ADDR:PORT) instead of the zone's NS set.
    #[arg(long, value_name = "ADDR", num_args = 1.., value_delimiter = ',')]
    nameserver: Vec<String>,
    /// Port on which the zone's nameservers are asked.
    #[arg(long, value_name = "PORT", default_value_t = 53)]
    ns_port: u16,
    /// A TXT value every nameserver must serve (repeatable). Without it they must agree.
    #[arg(long, value_name = "VALUE")]
    txt: Vec<String>,
    /// Seconds to wait for each DNS answer.
    #[arg(long, value_name = "SECONDS", default_value_t = 3)]
    timeout: u64,
    #[command(flatten)]
    common: Common,
}

/// Runs a client subcommand.
pub(crate) fn run(command: &ClientCommand) -> Result<(), String> {
    match command {
        ClientCommand::Register(args) => register(args),
        ClientCommand::Update(args) => {
            let domain = normalize_domain(&args.domain)?;
            update(&domain, &args.txt, args.server.as_deref(), &args.common)
        }
        ClientCommand::Hook(args) => hook(args),
        ClientCommand::Check(args) => check_command(args),
        ClientCommand::Persist(args) => dns_persist::run(args),
    }
}

/// The JSON `/register` answers with.
#[derive(serde::Deserialize)]
struct Registered {
    /// `X-Api-User`.
    username: String,
    /// `X-Api-Key`.
    password: String,
    /// The CNAME target.
    fulldomain: String,
    /// First label of `fulldomain`.
    subdomain: String,
    /// Networks allowed.
    #[serde(default)]
    allowfrom: Vec<String>,
}

/// Runs `register`.
fn register(args: &RegisterArgs) -> Result<(), String> {
    let domain = normalize_domain(&args.domain)?;
    let url = Url::parse(&args.server)?;
    let allowfrom: Vec<String> =
        args.allowfrom.iter().map(|a| a.trim().to_owned()).filter(|a| !a.is_empty()).collect();
    for network in &allowfrom {
        network.parse::<crate::cidr::Cidr>().map_err(|e| format!("--allowfrom: {e}"))?;
    }
    let mut storage = Storage::load(&args.common.storage()?)?;
    if let Some(existing) = storage.get(&domain)?
        && !args.force
    {
        return Err(format!(
            "{domain} is already registered in {} (fulldomain {}); --force registers a new account and replaces it",
            storage.path().display(),
            existing.fulldomain
        ));
    }
    if !url.https && !url.is_loopback() {
        eprintln!("warning: {url} is plain HTTP: the new key crosses the network unencrypted");
    }
    let body = if allowfrom.is_empty() {
        "{}".to_owned()
    } else {
        serde_json::json!({ "allowfrom": allowfrom }).to_string()
    };
    let options = args.common.http();
    let response = super::block_on(http::post_json(&url, "/register", &[], &body, &options))?;
    if !(200..300).contains(&response.status) {
        return Err(format!(
            "registration at {url} failed: HTTP {}: {}",
            response.status,
            response.error_text()
        ));
    }
    let registered: Registered = serde_json::from_slice(&response.body).map_err(|e| {
        format!(
            "registration at {url}: the answer is not an acme-dns account ({e}): {}",
            response.error_text()
        )
    })?;
    let fulldomain = registered.fulldomain.trim_end_matches('.').to_ascii_lowercase();
    if registered.subdomain.is_empty() || normalize_domain(&fulldomain).is_err() {
        return Err(format!("registration at {url}: the answer has no usable fulldomain/subdomain"));
    }
    let account = Account {
        username: registered.username,
        password: registered.password,
        fulldomain: fulldomain.clone(),
        subdomain: registered.subdomain,
        allowfrom: registered.allowfrom,
        server_url: url.to_string(),
    };
    storage.put(&domain, &account);
    if let Err(e) = storage.save() {
        // The key is shown only once: do not lose it.
        eprintln!("the new account could not be saved; keep these credentials:");
        eprintln!("{}", serde_json::to_string_pretty(&account).unwrap_or_default());
        return Err(e);
    }
    println!("Registered {domain} at {url}; credentials saved in {}.", storage.path().display());
    println!();
    println!("Create this record in the DNS zone of {domain}, once (it never changes):");
    println!();
    println!("_acme-challenge.{domain}. CNAME {fulldomain}.");
    println!();
    if let Some(account_url) = &args.account_url {
        println!("{}", account_cname(&domain, account_url, &fulldomain));
        println!();
    }
    println!("Recommended: CAA records naming your CA and allowing DNS-01 only (RFC 8659, RFC 8657),");
    println!("with your ACME account's URL in accounturi:");
    println!();
    println!(
        "{domain}. CAA 0 issue \"letsencrypt.org; validationmethods=dns-01; accounturi=<ACME account URL>\""
    );
    println!(
        "{domain}. CAA 0 issuewild \"letsencrypt.org; validationmethods=dns-01; accounturi=<ACME account URL>\""
    );
    println!();
    println!("Then verify: acme-delegate client check --domain {domain}");
    Ok(())
}

/// The dns-account-01 line (draft-ietf-acme-dns-account-label): the challenge name of the ACME
/// account `account_url`, with its CNAME to `fulldomain`. Several ACME accounts (a CDN and the
/// owner) can then validate the same domain at once, each at its own name.
fn account_cname(domain: &str, account_url: &str, fulldomain: &str) -> String {
    let label = crate::dns_persist::account_label(account_url);
    format!(
        "For dns-account-01 with the ACME account {account_url}, instead or as well:\n\n\
         _{label}._acme-challenge.{domain}. CNAME {fulldomain}."
    )
}

/// Whether `txt` looks like a DNS-01 value: 43 characters of base64url.
fn valid_txt(txt: &str) -> bool {
    txt.len() == 43 && txt.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The stored account of `domain` and the API URL to use: `server` when given, else the one
/// the account was registered at.
fn account_and_url(storage: &Storage, domain: &str, server: Option<&str>) -> Result<(Account, Url), String> {
    let account = storage.get(domain)?.ok_or_else(|| {
        format!(
            "no account for {domain} in {}: run `acme-delegate client register --server URL --domain {domain}` first",
            storage.path().display()
        )
    })?;
    let url = match server {
        Some(server) => Url::parse(server)?,
        None if account.server_url.is_empty() => {
            return Err(format!(
                "the account for {domain} in {} names no server_url: give --server URL",
                storage.path().display()
            ));
        }
        None => Url::parse(&account.server_url)?,
    };
    Ok((account, url))
}

/// Sets the TXT value for `domain` (normalised) with its stored account.
fn update(domain: &str, txt: &str, server: Option<&str>, common: &Common) -> Result<(), String> {
    if !valid_txt(txt) {
        return Err(format!("{txt:?} is not a DNS-01 value (43 characters of A-Z a-z 0-9 - _)"));
    }
    let storage = Storage::load(&common.storage()?)?;
    let (account, url) = account_and_url(&storage, domain, server)?;
    let body = serde_json::json!({ "subdomain": account.subdomain, "txt": txt }).to_string();
    let headers = [("X-Api-User", account.username.as_str()), ("X-Api-Key", account.password.as_str())];
    let response = super::block_on(http::post_json(&url, "/update", &headers, &body, &common.http()))?;
    match response.status {
        200..=299 => {
            let echoed = serde_json::from_slice::<serde_json::Value>(&response.body).ok();
            match echoed.as_ref().and_then(|j| j.get("txt")).and_then(|t| t.as_str()) {
                Some(value) if value != txt => {
                    Err(format!("{url} answered {} but echoed another value: {value:?}", response.status))
                }
                _ => {
                    println!(
                        "_acme-challenge.{domain} -> {}: TXT \"{txt}\" set at {url}",
                        account.fulldomain
                    );
                    Ok(())
                }
            }
        }
        401 | 403 => Err(format!(
            "{url} refused the update for {domain} ({} {}): wrong username or key in {}, or this machine's address is outside the account's allowfrom ({})",
            response.status,
            response.error_text(),
            storage.path().display(),
            if account.allowfrom.is_empty() { "anywhere".to_owned() } else { account.allowfrom.join(", ") }
        )),
        status => {
            Err(format!("{url} refused the update for {domain}: HTTP {status}: {}", response.error_text()))
        }
    }
}

/// Runs `hook` (certbot's `--manual-auth-hook`).
fn hook(args: &HookArgs) -> Result<(), String> {
    let var = |name: &str| {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty()).ok_or_else(|| {
            format!("{name} is not set: `client hook` is run by certbot as --manual-auth-hook (or use `client update`)")
        })
    };
    let domain = normalize_domain(&var("CERTBOT_DOMAIN")?)?;
    let validation = var("CERTBOT_VALIDATION")?;
    update(&domain, validation.trim(), args.server.as_deref(), &args.common)
}

/// Runs `check`.
fn check_command(args: &CheckArgs) -> Result<(), String> {
    let domain = normalize_domain(&args.domain)?;
    let storage = Storage::load(&args.common.storage()?)?;
    let account = storage.get(&domain)?.ok_or_else(|| {
        format!("no account for {domain} in {}: nothing to check against", storage.path().display())
    })?;
    let resolver = match &args.resolver {
        Some(text) => check::parse_server(text, 53)?,
        None => check::system_resolver(),
    };
    let nameservers =
        args.nameserver.iter().map(|n| check::parse_server(n, 53)).collect::<Result<Vec<_>, _>>()?;
    let settings = check::Settings {
        resolver,
        nameservers,
        ns_port: args.ns_port,
        expected: args.txt.clone(),
        timeout: Duration::from_secs(args.timeout.max(1)),
    };
    let outcome = check::run(&domain, &account.fulldomain, &settings);
    print!("{}", outcome.text);
    let (text, persist_ok) = dns_persist::check(&domain, &account, settings.resolver, settings.timeout);
    print!("{text}");
    if outcome.ok && persist_ok { Ok(()) } else { Err(format!("check of {domain} failed (see above)")) }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    /// The client commands parsed on their own.
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: super::ClientCommand,
    }

    #[test]
    fn txt_values_are_checked_before_sending() {
        assert!(super::valid_txt("LHDhK3oGRvkiefQnx7OOczTY5Tic_xZ6HcMOc_gmtoM"));
        assert!(!super::valid_txt("LHDhK3oGRvkiefQnx7OOczTY5Tic_xZ6HcMOc_gmto"));
        assert!(!super::valid_txt("LHDhK3oGRvkiefQnx7OOczTY5Tic_xZ6HcMOc_gmto="));
    }

    #[test]
    fn arguments_parse() {
        let cli = Cli::try_parse_from([
            "x",
            "register",
            "--server",
            "https://auth.example.org",
            "--domain",
            "example.com",
            "--allowfrom",
            "192.0.2.0/24,2001:db8::/32",
            "--allowfrom",
            "198.51.100.7/32",
            "--storage",
            "/tmp/s.json",
        ])
        .unwrap();
        let super::ClientCommand::Register(args) = cli.command else { panic!() };
        assert_eq!(args.allowfrom, ["192.0.2.0/24", "2001:db8::/32", "198.51.100.7/32"]);
        assert_eq!(args.common.storage(), Ok(std::path::PathBuf::from("/tmp/s.json")));
        let cli = Cli::try_parse_from([
            "x",
            "check",
            "--domain",
            "example.com",
            "--resolver",
            "127.0.0.1:5353",
            "--nameserver",
            "127.0.0.1:1,127.0.0.2:1",
            "--txt",
            "a",
            "--txt",
            "b",
        ])
        .unwrap();
        let super::ClientCommand::Check(args) = cli.command else { panic!() };
        assert_eq!(args.nameserver.len(), 2);
        assert_eq!(args.txt, ["a", "b"]);
        assert_eq!(args.ns_port, 53);
        assert!(Cli::try_parse_from(["x", "update", "--domain", "example.com"]).is_err(), "--txt required");
        let persist =
            ["x", "persist", "--domain", "example.com", "--issuer", "ca.example", "--account-url", "u:1"];
        assert!(Cli::try_parse_from(persist).is_ok());
        let hashed_without_thumbprint = [&persist[..], &["--account-hash-prefix", "acct:"]].concat();
        assert!(Cli::try_parse_from(hashed_without_thumbprint).is_err());
        // --value stands for --issuer and --account-url, never beside them.
        let value = ["x", "persist", "--domain", "example.com", "--value", "ca.example; accounturi=u:1"];
        assert!(Cli::try_parse_from(value).is_ok());
        assert!(Cli::try_parse_from([&value[..], &["--issuer", "ca.example"]].concat()).is_err());
        assert!(Cli::try_parse_from(["x", "persist", "--domain", "example.com", "--print"]).is_err());
    }

    #[test]
    fn dns_account_01_label_vector() {
        // draft-ietf-acme-dns-account-label: base32(SHA-256(URL)[..10]), lower-cased; the value
        // was computed independently (Python's hashlib and base64.b32encode).
        let line = super::account_cname("example.com", "https://ca.example/acct/123", "x.auth.example.org");
        assert!(
            line.ends_with("_h5zlfqoi7m5jaytl._acme-challenge.example.com. CNAME x.auth.example.org."),
            "{line}"
        );
    }
}
