//! The command line: `serve` (the default), `check-config`, and acme-dns's `-c FILE`.
//!
//! Design note: acme-dns is started as `acme-dns -c /etc/acme-dns/config.cfg`; the same line
//! with our binary's name starts this server, so an existing systemd unit changes only the
//! binary. Every subcommand that reads the configuration takes the same `-c` (and `--lenient`).
//! Logging is set up here, from `[logconfig]`, before anything else logs; its first line names
//! the version, the commit and the configuration in force. A command that writes to a store
//! while running on the demo configuration (no `-c`, no `ACME_DELEGATE_CONFIG`) says so on
//! stderr, with the database's path, so that an operator who forgot `-c` is not left with the
//! data in `./acme-delegate.db` unawares.

use std::path::PathBuf;
use std::process::ExitCode;

mod check;
pub(crate) mod client;
mod dnssec;
mod generate;
mod health;
mod logging;
mod steps;
mod transfer;

use clap::{Parser, Subcommand};

use self::transfer::TransferAction;
use crate::config::Config;

/// Authoritative DNS server and HTTP API for delegated ACME DNS-01 challenges,
/// compatible with acme-dns.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None, after_help = "\
Without a subcommand, the server runs (as `serve`).
Without -c, it runs a demo configuration: SQLite file ./acme-delegate.db,
DNS on 127.0.0.1:5053 (UDP and TCP), API on http://127.0.0.1:8053, zone auth.example.test.
SIGHUP reads the -c file again and applies what can change while serving (certificate files,
log level, registration, rate limits, retention, transfer networks and NOTIFY targets); the log
names what needs a restart.")]
pub(crate) struct Cli {
    /// Configuration file (acme-dns's config.cfg format).
    #[arg(short = 'c', long = "config", global = true, env = "ACME_DELEGATE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Unknown sections and keys in the configuration are warnings, not errors (as
    /// `unknown_keys = "warn"` in [general]): for a file that carries keys meant for another
    /// program.
    #[arg(long, global = true)]
    lenient: bool,

    /// What to do.
    #[command(subcommand)]
    command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the DNS server and the API (the default).
    Serve,
    /// Validate the configuration file (keys, values, the zone's records, the files it names,
    /// as the service's user when run as root), print what is in force, and exit.
    CheckConfig,
    /// The domain owner's side: register, update, certbot hook, check the delegation.
    Client {
        /// What to do.
        #[command(subcommand)]
        command: client::ClientCommand,
    },
    /// Copy the accounts and TXT values of an acme-dns database (SQLite file or postgres:// URL)
    /// into the configured store.
    ///
    /// The accounts keep their usernames, passwords and subdomains, so no client changes
    /// anything; the acme-dns database is only read. Imported keys are checked with bcrypt once,
    /// then stored as SHA-256.
    ///
    /// Every row is checked before it is written, with the rules the API and the zone apply: the
    /// subdomain is one DNS label of letters, digits and inner hyphens, at most 55 octets, that is
    /// not a name the zone serves itself (ns1, persist-…); each TXT value is 43 characters of
    /// base64url; the username is a UUID, the password a bcrypt hash, allowfrom a JSON list of
    /// networks. A row that fails is left out and named on stderr by its position (rowid in a
    /// SQLite file, its place in username order on PostgreSQL), its username and the reason; a
    /// value that fails is left out of an account imported without it. Usernames or subdomains
    /// that differ only in case are one account to the API: the first row is imported, the
    /// others are reported as conflicts. With --strict nothing is imported if any row fails.
    ///
    /// Safe to run again: accounts already in the store are skipped. A run that stops halfway
    /// (the store went away, say) reports how many accounts it committed; running it again
    /// resumes where it stopped.
    ///
    /// With [transfer] on, it loads the zone first as a server start would, and keeps the IXFR
    /// steps of what it imported in the store: a server started next sends the change to its
    /// secondaries incrementally (unless it is larger than the zone was).
    ImportAcmeDns {
        /// The acme-dns database: a file path or a postgres:// URL.
        source: String,
        /// Import nothing if any row fails its checks (reads the source twice).
        #[arg(long)]
        strict: bool,
    },
    /// The operator's view of accounts: list, show, export (JSON), delete (erasure).
    Account {
        /// What to do.
        #[command(subcommand)]
        action: AccountAction,
    },
    /// Privacy: the record of processing activities (GDPR Art. 30) for this configuration.
    Privacy {
        /// What to do.
        #[command(subcommand)]
        action: PrivacyAction,
    },
    /// DNSSEC: the DS record for the parent zone, the keys' status, key rollovers.
    Dnssec {
        /// What to show.
        #[command(subcommand)]
        action: dnssec::DnssecAction,
    },
    /// Zone transfers: where each secondary in `[transfer] notify` stands.
    Transfer {
        /// What to show.
        #[command(subcommand)]
        action: TransferAction,
    },
    /// Exit 0 when the server of this configuration answers: the zone's SOA over DNS and
    /// `GET /health` on the API (the container image's HEALTHCHECK).
    #[command(hide = true)]
    Healthcheck,
    /// Packaging: write the man pages or the shell completions into a directory.
    #[command(hide = true)]
    Generate {
        /// What to write.
        #[command(subcommand)]
        what: generate::Generate,
    },
}

/// The version `--version` and the man pages name: the package version, and the git commit
/// when built from a checkout (set by build.rs).
fn version() -> &'static str {
    static VERSION: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| match option_env!("ACME_DELEGATE_COMMIT") {
            Some(commit) => format!("{} (git {commit})", env!("CARGO_PKG_VERSION")),
            None => env!("CARGO_PKG_VERSION").to_owned(),
        });
    &VERSION
}

/// `account` subcommands.
#[derive(Debug, Subcommand)]
enum AccountAction {
    /// One line per account: username, subdomain, registered, last used.
    List,
    /// Everything held about one account, readable.
    Show {
        /// Username (X-Api-User).
        username: String,
    },
    /// Everything held about one account as JSON (what GET /account returns).
    Export {
        /// Username (X-Api-User).
        username: String,
    },
    /// Erase an account, its TXT values and its audit entries. A running server stops
    /// answering for it within a second.
    Delete {
        /// Username (X-Api-User).
        username: String,
    },
}

/// `privacy` subcommands.
#[derive(Debug, Subcommand)]
enum PrivacyAction {
    /// Print the record of processing activities built from the configuration.
    Report {
        /// Output format.
        #[arg(long, value_enum, default_value = "markdown")]
        format: ReportFormat,
    },
}

/// Formats of the privacy report.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum ReportFormat {
    /// Markdown, for people.
    Markdown,
    /// JSON, for tools.
    Json,
}

/// Formats seconds since the epoch as an ISO 8601 UTC date and time.
fn iso_time(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let rest = seconds.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

/// Opens the configured store; an acme-dns database is refused with the command that imports
/// it, complete.
async fn open_store(config: &Config) -> Result<crate::store::Store, String> {
    crate::store::Store::open(&config.database).await.map_err(|error| store_error(config, &error))
}

/// A store error as the operator reads it: the refusal of an acme-dns database gets the
/// commands that take it over, with this configuration's path.
fn store_error(config: &Config, error: &crate::store::StoreError) -> String {
    let crate::store::StoreError::ForeignSchema(target) = error else { return error.to_string() };
    let config_path = config.source.as_ref().map_or_else(
        || "/etc/acme-delegate/config.cfg".to_owned(),
        |path| std::path::absolute(path).unwrap_or_else(|_| path.clone()).display().to_string(),
    );
    let write = if config.source.is_some() { "in" } else { "in a configuration file such as" };
    format!(
        "{error}. To take it over, set database.connection {write} {config_path} to a new database \
         (say /var/lib/acme-delegate/acme-delegate.db), then run: \
         acme-delegate import-acme-dns {target} -c {config_path}"
    )
}

/// With the demo configuration (no `-c`, no `ACME_DELEGATE_CONFIG`), says so on stderr before
/// a command writes to its store, naming the database.
fn demo_notice(config: &Config) {
    if config.source.is_some() {
        return;
    }
    let database = std::path::absolute(&config.database.connection)
        .map_or_else(|_| config.database.connection.clone(), |path| path.display().to_string());
    eprintln!(
        "acme-delegate: no -c FILE and no ACME_DELEGATE_CONFIG: using the demo configuration, \
         with its database {database}"
    );
}

/// Runs an `account` subcommand against the configured store.
fn account(config: &Config, action: &AccountAction) -> Result<(), String> {
    block_on(async {
        let store = open_store(config).await?;
        let domain = config.dns.zone.apex.trim_end_matches('.').to_ascii_lowercase();
        let find = |username: &str| {
            let username =
                crate::api::credentials::parse_uuid(username).unwrap_or_else(|| username.to_owned());
            let store = store.clone();
            async move {
                store
                    .account_record(&username, config.dns.txt_values)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("no account {username}"))
            }
        };
        match action {
            AccountAction::List => list_accounts(&store).await?,
            AccountAction::Show { username } => {
                let r = find(username).await?;
                println!("username:   {}", r.account.username);
                println!("fulldomain: {}.{domain}", r.account.subdomain);
                println!(
                    "allowfrom:  {}",
                    if r.account.allowfrom.is_empty() {
                        "anywhere".to_owned()
                    } else {
                        r.account.allowfrom.join(", ")
                    }
                );
                println!("registered: {}", iso_time(r.created_at));
                println!("last used:  {}", r.last_used.map_or("never".to_owned(), iso_time));
                for (value, at) in &r.txt {
                    println!("txt:        {value}  (set {})", iso_time(*at));
                }
                for p in &r.persist {
                    println!("persist:    {}  (set {})", p.value, iso_time(p.set_at));
                }
                println!("audit entries: {}", r.audit.len());
                for e in &r.audit {
                    println!("  {}  {:<14} {:<18} {}", iso_time(e.at), e.action, e.outcome, e.source);
                }
            }
            AccountAction::Export { username } => {
                let r = find(username).await?;
                let mut json = r.export_json(&domain, &config.privacy);
                let label = crate::dns::zone::persist_label(&r.account.subdomain);
                json["persistdomain"] = format!("{label}.{domain}").into();
                println!("{}", serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?);
            }
            AccountAction::Delete { username } => {
                let r = find(username).await?;
                store.delete_account(&r.account.username).await.map_err(|e| e.to_string())?;
                // This process has no purge task to clean PostgreSQL's table files later.
                store.clean_erased().await.map_err(|e| e.to_string())?;
                println!(
                    "deleted account {} ({}.{domain}), its TXT values and audit entries",
                    r.account.username, r.account.subdomain
                );
            }
        }
        store.close().await;
        Ok(())
    })
}

/// Prints every account, a page at a time (a million accounts never sit in memory at once),
/// through one buffer; stops quietly when the reader goes away (`| head`).
async fn list_accounts(store: &crate::store::Store) -> Result<(), String> {
    use std::io::Write;
    /// Accounts per page: one query each, a few megabytes.
    const PAGE: usize = 10_000;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut total = 0usize;
    let mut after = String::new();
    if writeln!(out, "{:<36}  {:<36}  {:<20}  last used", "username", "subdomain", "registered").is_err() {
        return Ok(());
    }
    loop {
        let page = store.accounts_page(&after, PAGE).await.map_err(|e| e.to_string())?;
        let Some(last) = page.last() else { break };
        after.clone_from(&last.username);
        total += page.len();
        for a in &page {
            let used = a.last_used.map_or("never".to_owned(), iso_time);
            let line = writeln!(
                out,
                "{:<36}  {:<36}  {:<20}  {used}",
                a.username,
                a.subdomain,
                iso_time(a.created_at)
            );
            if line.is_err() {
                return Ok(());
            }
        }
    }
    let _ = writeln!(out, "{total} accounts").and_then(|()| out.flush());
    Ok(())
}

/// Runs a `privacy` subcommand.
fn privacy(config: &Config, action: &PrivacyAction) -> Result<(), String> {
    let PrivacyAction::Report { format } = action;
    let facts = crate::privacy::report::Facts {
        domain: config.dns.zone.apex.clone(),
        privacy: config.privacy.clone(),
        registration: config.api.registration.name().to_owned(),
        store: format!("{:?}", config.database.engine).to_ascii_lowercase(),
        api_tls: config.api.tls != crate::config::Tls::None,
        proxy_header: config.api.use_header,
        dnssec: config.dnssec.is_some(),
        txt_values: config.dns.txt_values,
        dns_rate_limit: config.dns.server.rate_limit,
    };
    match format {
        ReportFormat::Markdown => print!("{}", crate::privacy::report::markdown(&facts)),
        ReportFormat::Json => {
            let json = crate::privacy::report::record(&facts);
            println!("{}", serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?);
        }
    }
    Ok(())
}

/// Standard base64 (for DNSKEY presentation).
fn base64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Runs a one-off command's future on a small runtime of its own.
fn block_on<T>(future: impl std::future::Future<Output = Result<T, String>>) -> Result<T, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?
        .block_on(future)
}

/// The import's progress: on a terminal, a line on stderr every two seconds or so (a million
/// accounts take most of a minute); elsewhere nothing, so scripts get the summary only.
fn progress_line() -> impl FnMut(&crate::store::import::Report) + Send {
    use std::io::IsTerminal;
    let terminal = std::io::stderr().is_terminal();
    let start = std::time::Instant::now();
    let mut last = start;
    move |r| {
        if terminal && last.elapsed() >= std::time::Duration::from_secs(2) {
            last = std::time::Instant::now();
            eprintln!(
                "{:>5.0} s: {} accounts read, {} imported, {} skipped, {} TXT values",
                start.elapsed().as_secs_f64(),
                r.found,
                r.imported,
                r.skipped,
                r.values
            );
        }
    }
}

/// Runs `import-acme-dns`.
fn import(config: &Config, source: &str, strict: bool) -> Result<(), String> {
    // The zone's rule for subdomains, with the names this configuration serves.
    let zone = crate::dns::zone::Zone::new(&config.dns.zone, None).map_err(|e| e.to_string())?;
    let zone = std::sync::Arc::new(zone);
    let options = crate::store::import::Options {
        keep: config.dns.txt_values,
        strict,
        subdomain: std::sync::Arc::new(move |label: &str| zone.check_subdomain(label)),
    };
    let source_name = crate::store::redact(source);
    let list = |report: &crate::store::import::Report| {
        for rejection in &report.rejections {
            eprintln!("{rejection}");
        }
        let listed = report.rejections.len();
        if report.refused + report.refused_values > listed {
            eprintln!("… and {} more not listed", report.refused + report.refused_values - listed);
        }
    };
    block_on(async {
        let store = open_store(config).await?;
        // The zone as served before the import, to keep the import's IXFR steps (`steps.rs`).
        let loaded = steps::before_change(config, &store).await;
        let mut progress = progress_line();
        let result = crate::store::import::import_acme_dns(&store, source, &options, &mut progress).await;
        // Whatever part of the import committed, even when it then failed.
        let kept = steps::after_change(loaded).await;
        store.close().await;
        let report = match result {
            Ok(report) => report,
            Err(error) => {
                if let Some(report) = error.report() {
                    list(report);
                }
                kept.iter().for_each(|kept| println!("{kept}"));
                return Err(format!("import of {source_name} failed: {error}"));
            }
        };
        list(&report);
        println!(
            "acme-dns database {source_name}: {} accounts found, {} imported, {} already present (skipped), {} TXT values copied",
            report.found, report.imported, report.skipped, report.values
        );
        if report.refused + report.refused_values > 0 {
            println!(
                "{} accounts and {} TXT values failed their checks and were left out (listed on stderr)",
                report.refused, report.refused_values
            );
        }
        println!("Imported keys are checked with bcrypt once, then stored as SHA-256.");
        kept.iter().for_each(|kept| println!("{kept}"));
        Ok(())
    })
}

/// Loads the configuration named by `-c`, or the embedded default.
fn load(path: Option<&PathBuf>, lenient: bool) -> Result<Config, String> {
    match path {
        Some(path) => Config::from_file_with(path, lenient).map_err(|e| format!("configuration error: {e}")),
        None => Ok(Config::embedded()),
    }
}

/// Runs `serve`.
fn serve(config: Config) -> Result<(), String> {
    logging::init(&config)?;
    // The first line of the log: what runs, from which commit, on which configuration.
    let source = config.source.as_ref().map_or_else(
        || {
            let database = std::path::absolute(&config.database.connection)
                .map_or_else(|_| config.database.connection.clone(), |p| p.display().to_string());
            format!("the demo configuration (no -c FILE), database {database}")
        },
        |path| {
            let path = std::path::absolute(path).unwrap_or_else(|_| path.clone());
            format!("configuration {}", path.display())
        },
    );
    tracing::info!("acme-delegate {} starting with {source}", version());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("acme-delegate")
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let result = runtime.block_on(crate::daemon::run(config.clone()));
    result.map_err(|error| {
        let message = match &error {
            crate::daemon::DaemonError::Store(store) => store_error(&config, store),
            other => other.to_string(),
        };
        tracing::error!("{message}");
        message
    })
}

/// Parses the command line and runs it.
pub fn run() -> ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    // The client's subcommands do not show the server's -c (see `generate::for_users`).
    let matches = generate::for_users(Cli::command().version(version())).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    match &cli.command {
        // The client and the packaging tool need no server configuration.
        Some(Command::Client { command }) => return finish(client::run(command)),
        Some(Command::Generate { what }) => {
            return finish(generate::run(what).map(|n| println!("wrote {n} files")));
        }
        _ => {}
    }
    let result = load(cli.config.as_ref(), cli.lenient).and_then(|config| match cli.command {
        None | Some(Command::Serve) => {
            demo_notice(&config);
            serve(config)
        }
        Some(Command::CheckConfig) => check::run(&config),
        Some(Command::Dnssec { action }) => {
            demo_notice(&config);
            dnssec::run(&config, &action)
        }
        Some(Command::ImportAcmeDns { source, strict }) => {
            demo_notice(&config);
            import(&config, &source, strict)
        }
        Some(Command::Account { action }) => {
            demo_notice(&config);
            account(&config, &action)
        }
        Some(Command::Privacy { action }) => privacy(&config, &action),
        Some(Command::Transfer { action: TransferAction::Status }) => transfer::status(&config),
        Some(Command::Healthcheck) => health::run(&config).map(|summary| println!("{summary}")),
        Some(Command::Client { .. } | Command::Generate { .. }) => Ok(()),
    });
    finish(result)
}

/// Prints an error, if any, and turns the result into an exit code.
fn finish(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("acme-delegate: {message}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn iso_times() {
        assert_eq!(super::iso_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::iso_time(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::iso_time(1_795_893_817), "2026-11-28T19:23:37Z");
    }

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(super::base64(b""), "");
        assert_eq!(super::base64(b"f"), "Zg==");
        assert_eq!(super::base64(b"fo"), "Zm8=");
        assert_eq!(super::base64(b"foobar"), "Zm9vYmFy");
    }
}
