//! Reload without restart: SIGHUP (`systemctl reload`) re-reads the configuration file and
//! applies what can change while serving.
//!
//! Design note: a reload never touches a socket, the store or the zone, so DNS answers and open
//! API connections go on through it. What changes at run time is held in places built for
//! swapping: the API's router (rebuilt around a new state and swapped in whole, so a request
//! sees either the old settings or the new ones, never a mix), the certificates behind the TLS
//! acceptors of the API and of zone transfers over TLS (resolvers read at each handshake, one
//! loader for both), the log level (a reloadable filter) and the
//! privacy settings of the retention purge (a watch channel), the networks allowed to transfer
//! and the client address policy of transfer logs (both shared with the transfer service) and the NOTIFY
//! targets (the daemon replaces their tasks). Everything else (listen addresses, database,
//! zone, DNSSEC, the TSIG key, log destination) is compared with what runs, by value (the
//! config types compare; the TSIG key by name, algorithm and secret), and each difference is
//! named in the log as needing a restart when the file changes it: once, not again at every
//! later reload of the same file, and as needing none when it is put back. The running value
//! stays.
//! A new file that does not validate, or names certificate files that do not load, changes
//! nothing: the error names the key and the old configuration stays in force.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, RwLock};

use axum::Router;
use tokio::sync::watch;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;

use crate::api::{self, AppState};
use crate::config::{Config, Tls};
use crate::privacy::Privacy;

/// Sets the most verbose level logged; installed by the command line's logging set-up (the
/// daemon does not own the subscriber). Unset, a changed `loglevel` is reported as not applied.
pub(crate) static LOG_LEVEL: OnceLock<SetLogLevel> = OnceLock::new();

/// The hook behind [`LOG_LEVEL`]: sets the level, or says why it could not.
pub(crate) type SetLogLevel = Box<dyn Fn(tracing::Level) -> Result<(), String> + Send + Sync>;

/// A certificate from `tls_cert_fullchain` and `tls_cert_privkey` (the API's, and the zone
/// transfers' TLS listener's), read again on reload.
#[derive(Debug)]
pub(super) struct CertFiles(RwLock<Arc<CertifiedKey>>);

impl ResolvesServerCert for CertFiles {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.read().ok().map(|key| Arc::clone(&key))
    }
}

impl CertFiles {
    /// Loads the files named in `section`; the error names the key whose file is at fault.
    pub(super) fn load(section: &str, fullchain: &Path, privkey: &Path) -> Result<Arc<Self>, String> {
        Ok(Arc::new(Self(RwLock::new(Arc::new(certified_key(section, fullchain, privkey)?)))))
    }

    /// A TLS acceptor that serves whatever certificate this holds at each handshake.
    pub(super) fn acceptor(self: &Arc<Self>) -> Result<tokio_rustls::TlsAcceptor, String> {
        let config =
            api::tls_server_config()?.with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }

    /// Serves `key` from the next handshake on.
    fn replace(&self, key: CertifiedKey) {
        if let Ok(mut slot) = self.0.write() {
            *slot = Arc::new(key);
        }
    }
}

/// Reads the certificate files of `section` (`api`, `transfer`) as the start does
/// (`check-config` uses it): an error names the key whose file is at fault.
pub(crate) fn check_cert_files(section: &str, fullchain: &Path, privkey: &Path) -> Result<(), String> {
    certified_key(section, fullchain, privkey).map(drop)
}

/// Reads a certificate chain and its private key, named by `section`'s `tls_cert_fullchain`
/// and `tls_cert_privkey`, and checks that they belong together.
pub(super) fn certified_key(section: &str, fullchain: &Path, privkey: &Path) -> Result<CertifiedKey, String> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(fullchain)
        .and_then(|iter| iter.collect())
        .map_err(|e| format!("{section}.tls_cert_fullchain: cannot read {}: {e}", fullchain.display()))?;
    if certs.is_empty() {
        return Err(format!("{section}.tls_cert_fullchain: no certificate in {}", fullchain.display()));
    }
    let key = PrivateKeyDer::from_pem_file(privkey).map_err(|e| {
        format!("{section}.tls_cert_privkey: cannot read a private key from {}: {e}", privkey.display())
    })?;
    let provider = tokio_rustls::rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(certs, key, &provider)
        .map_err(|e| format!("{section}.tls_cert_privkey: the key does not fit the certificate: {e}"))
}

/// What a new file changes, sorted into what is applied and what waits for a restart.
#[derive(Debug, Default, PartialEq, Eq)]
struct Plan {
    /// Settings applied now, by name.
    applied: Vec<&'static str>,
    /// Settings that differ but need a restart, by name.
    restart: Vec<&'static str>,
}

/// Compares the running configuration with a new one: what can be applied, what cannot.
fn plan(old: &Config, new: &Config) -> Plan {
    // Exhaustive on purpose: a new setting does not compile until it is sorted below (and in
    // `merge` when it can change at run time).
    let Config {
        source: _,
        dns: _,
        database: _,
        api: _,
        log: _,
        dnssec: _,
        privacy: _,
        transfer: _,
        transfer_tls: _,
        metrics: _,
        max_clock_skew: _,
        warnings: _,
        lenient: _,
    } = new;
    let crate::config::Api {
        listen: _,
        registration: _,
        register_rate_limit: _,
        auth_failure_limit: _,
        update_rate_limit: _,
        tls: _,
        use_header: _,
        header_name: _,
        trusted_proxies: _,
        body_limit: _,
        request_timeout: _,
        header_timeout: _,
        cors_origins: _,
        hsts: _,
    } = &new.api;
    let mut plan = Plan::default();
    let mut check = |changed: bool, name: &'static str, at_run_time: bool| {
        if changed {
            if at_run_time { plan.applied.push(name) } else { plan.restart.push(name) }
        }
    };
    let (o, n) = (&old.api, &new.api);
    check(o.registration != n.registration, "api.registration", true);
    check(
        (o.register_rate_limit, o.auth_failure_limit, o.update_rate_limit)
            != (n.register_rate_limit, n.auth_failure_limit, n.update_rate_limit),
        "api rate limits",
        true,
    );
    check(
        (&o.use_header, &o.header_name, &o.trusted_proxies, o.body_limit, o.request_timeout)
            != (&n.use_header, &n.header_name, &n.trusted_proxies, n.body_limit, n.request_timeout)
            || (&o.cors_origins, &o.hsts) != (&n.cors_origins, &n.hsts),
        "api request settings",
        true,
    );
    match (&o.tls, &n.tls) {
        (Tls::Cert { .. }, Tls::Cert { .. }) => check(true, "api TLS certificate files", true),
        (a, b) => check(a != b, "api.tls", false),
    }
    check(o.listen != n.listen, "api.ip/api.port", false);
    check(o.header_timeout != n.header_timeout, "api.header_timeout", false);
    check(old.max_clock_skew != new.max_clock_skew, "general.max_clock_skew", false);
    check(old.log.level != new.log.level, "logconfig.loglevel", LOG_LEVEL.get().is_some());
    check(
        old.log.target != new.log.target || old.log.json != new.log.json,
        "logconfig.logtype/logformat",
        false,
    );
    let (o, n) = (&old.privacy, &new.privacy);
    // `client_ip` is applied everywhere it is used: the API, the purge and, when transfers are
    // on, their log lines (`transfer.client_ip`, a copy shared with the transfer service and set in place).
    check(
        (o.client_ip, o.audit_retention, o.txt_retention, o.account_expiry, o.purge_interval)
            != (n.client_ip, n.audit_retention, n.txt_retention, n.account_expiry, n.purge_interval),
        "privacy retention and client_ip",
        true,
    );
    check(o.log_subdomain != n.log_subdomain, "privacy.log_subdomain", false);
    check(old.dns.listen != new.dns.listen, "general.listen", false);
    check(old.dns.transports != new.dns.transports, "general.protocol", false);
    check(old.dns.zone != new.dns.zone, "the zone (general.domain, records, [dns] TTLs)", false);
    check(old.dns.server != new.dns.server, "[dns] listener settings", false);
    check(old.dns.txt_values != new.dns.txt_values, "dns.txt_values", false);
    check(
        old.database.engine != new.database.engine || old.database.connection != new.database.connection,
        "[database]",
        false,
    );
    check(old.dnssec != new.dnssec, "[dnssec]", false);
    check(old.metrics != new.metrics, "[metrics]", false);
    match (&old.transfer, &new.transfer) {
        (Some(o), Some(n)) => {
            let crate::dns::xfr::TransferSettings {
                allow: _,
                notify: _,
                key: _,
                client_ip: _,
                wait: _,
                limits: _,
                gate: _,
            } = n;
            check(o.allow != n.allow, "transfer.allow_transfer", true);
            check(o.notify != n.notify, "transfer.notify", true);
            // Compared by name, algorithm and secret. The key is held by the transfer service and every
            // NOTIFY task, and a transfer in progress signs with it to the end: a restart
            // changes it for all of them at once.
            check(o.key != n.key, "transfer.tsig_name/tsig_algorithm/tsig_secret", false);
            check(o.wait != n.wait, "transfer.wait_for_secondaries/wait_timeout", false);
            check(o.limits != n.limits, "transfer.max_transfers*", false);
        }
        (o, n) => check(o.is_some() != n.is_some(), "[transfer] (on or off)", false),
    }
    match (&old.transfer_tls, &new.transfer_tls) {
        (Some(o), Some(n)) => {
            let crate::config::TransferTls {
                listen: _,
                fullchain: _,
                privkey: _,
                client_ca: _,
                clear_transfers: _,
            } = n;
            // The certificate is read again at every reload, as the API's; the listener, the
            // client CA (built into the TLS settings) and the clear-text rule need a restart.
            check(true, "transfer TLS certificate files", true);
            check(o.listen != n.listen, "transfer.tls_listen", false);
            check(o.client_ca != n.client_ca, "transfer.tls_client_ca", false);
            check(o.clear_transfers != n.clear_transfers, "transfer.clear_transfers", false);
        }
        (o, n) => check(o != n, "transfer.tls_listen (TLS on or off)", false),
    }
    plan
}

/// The configuration that runs after a reload: the old one with the run-time settings of the
/// new one.
fn merge(old: &Config, new: &Config) -> Config {
    let mut running = old.clone();
    let (api, n) = (&mut running.api, &new.api);
    api.registration = n.registration.clone();
    (api.register_rate_limit, api.auth_failure_limit, api.update_rate_limit) =
        (n.register_rate_limit, n.auth_failure_limit, n.update_rate_limit);
    (api.use_header, api.header_name, api.trusted_proxies) =
        (n.use_header, n.header_name.clone(), n.trusted_proxies.clone());
    (api.body_limit, api.request_timeout) = (n.body_limit, n.request_timeout);
    (api.cors_origins, api.hsts) = (n.cors_origins.clone(), n.hsts.clone());
    if let (Tls::Cert { .. }, Tls::Cert { .. }) = (&api.tls, &n.tls) {
        api.tls = n.tls.clone();
    }
    if LOG_LEVEL.get().is_some() {
        running.log.level = new.log.level;
    }
    let (p, n) = (&mut running.privacy, &new.privacy);
    (p.client_ip, p.audit_retention, p.txt_retention) = (n.client_ip, n.audit_retention, n.txt_retention);
    (p.account_expiry, p.purge_interval) = (n.account_expiry, n.purge_interval);
    if let (Some(t), Some(n)) = (&mut running.transfer_tls, &new.transfer_tls) {
        (t.fullchain, t.privkey) = (n.fullchain.clone(), n.privkey.clone());
    }
    if let (Some(t), Some(n)) = (&mut running.transfer, &new.transfer) {
        // The allow list is shared with the transfer service: `Reloader::reload` changes it in place.
        t.notify = n.notify.clone();
    }
    running
}

/// Holds what a reload can change, and changes it.
pub(super) struct Reloader {
    /// The file to read again; `None` for the embedded demo configuration.
    path: Option<PathBuf>,
    /// The configuration in force.
    running: Config,
    /// The file as read last (what needs a restart is named once, when it changes).
    read: Config,
    /// The API state in force.
    state: AppState,
    /// The router requests go to; replaced whole on reload.
    router: Arc<RwLock<Router>>,
    /// The certificate files' resolver, with `api.tls = "cert"`.
    certs: Option<Arc<CertFiles>>,
    /// The zone transfers' TLS certificate, with `transfer.tls_listen`.
    transfer_certs: Option<Arc<CertFiles>>,
    /// The privacy settings the retention purge uses.
    privacy: watch::Sender<Privacy>,
}

impl Reloader {
    /// Takes over the running configuration and API state. Returns the router to serve (it
    /// forwards each request to the router in force) and the purge's view of the privacy
    /// settings.
    pub(super) fn new(
        config: &Config,
        state: AppState,
        certs: Option<Arc<CertFiles>>,
        transfer_certs: Option<Arc<CertFiles>>,
    ) -> (Self, Router, watch::Receiver<Privacy>) {
        let router = Arc::new(RwLock::new(api::app(state.clone())));
        let current = Arc::clone(&router);
        let forward = tower::service_fn(move |request: axum::extract::Request| {
            // A clone of the router in force: a request in flight keeps the settings it began with.
            let app = current.read().ok().map(|app| app.clone());
            async move {
                use tower::ServiceExt;
                match app {
                    Some(app) => app.oneshot(request).await,
                    None => Ok(http_500()),
                }
            }
        });
        let (privacy, privacy_rx) = watch::channel(config.privacy.clone());
        let (path, running, read) = (config.source.clone(), config.clone(), config.clone());
        let reloader = Self { path, running, read, state, router, certs, transfer_certs, privacy };
        (reloader, Router::new().fallback_service(forward), privacy_rx)
    }

    /// Reads the file again and applies what can change; logs what was applied, what needs a
    /// restart, or why the file was refused. Returns the new NOTIFY targets when they changed:
    /// the caller owns the tasks, and replaces them.
    pub(super) fn reload(&mut self) -> Option<Vec<std::net::SocketAddr>> {
        let Some(path) = self.path.clone() else {
            tracing::warn!("SIGHUP: no configuration file (-c) to read again; nothing changed");
            return None;
        };
        tracing::info!("SIGHUP: reading {} again", path.display());
        // The command line's --lenient holds for the file read again, as it did at the start.
        let new = match Config::from_file_with(&path, self.running.lenient) {
            Ok(new) => new,
            Err(error) => {
                tracing::error!("reload refused, the running configuration stays in force: {error}");
                return None;
            }
        };
        // Everything that can fail comes before anything changes.
        let key = match (&self.certs, &new.api.tls) {
            (Some(_), Tls::Cert { privkey, fullchain }) => certified_key("api", fullchain, privkey).map(Some),
            _ => Ok(None),
        };
        let transfer_key = match (&self.transfer_certs, &new.transfer_tls) {
            (Some(_), Some(tls)) => certified_key("transfer", &tls.fullchain, &tls.privkey).map(Some),
            _ => Ok(None),
        };
        let (key, transfer_key) = match (key, transfer_key) {
            (Ok(key), Ok(transfer_key)) => (key, transfer_key),
            (Err(error), _) | (_, Err(error)) => {
                tracing::error!("reload refused, the running configuration stays in force: {error}");
                return None;
            }
        };
        for warning in &new.warnings {
            tracing::warn!("{warning}");
        }
        let plan = plan(&self.running, &new);
        // What needs a restart is named when it changes, not again at every later reload; and
        // a setting put back to the running value is named as needing none any more.
        let pending = self::plan(&self.running, &self.read).restart;
        let changed = self::plan(&self.read, &new).restart;
        let running = merge(&self.running, &new);
        if let (Some(certs), Some(key)) = (&self.certs, key) {
            certs.replace(key);
        }
        if let (Some(certs), Some(key)) = (&self.transfer_certs, transfer_key) {
            certs.replace(key);
        }
        if running.log.level != self.running.log.level
            && let Some(Err(error)) = LOG_LEVEL.get().map(|set| set(running.log.level))
        {
            tracing::warn!("logconfig.loglevel not applied: {error}");
        }
        let mut state = self.state.clone();
        state.config = Arc::new(running.api.clone());
        state.privacy = running.privacy.clone();
        let api = (&running.api, &self.running.api);
        if (api.0.register_rate_limit, api.0.auth_failure_limit, api.0.update_rate_limit)
            != (api.1.register_rate_limit, api.1.auth_failure_limit, api.1.update_rate_limit)
        {
            // New limits start with empty counters: carrying counts across different limits
            // would need a rule for each, and a reload is rare.
            state.limits = Arc::new(api::limits::Limits::new(
                running.api.register_rate_limit,
                running.api.auth_failure_limit,
                running.api.update_rate_limit,
            ));
        }
        let app = api::app(state.clone());
        if let Ok(mut router) = self.router.write() {
            *router = app;
        }
        self.privacy.send_replace(running.privacy.clone());
        let mut notify = None;
        if let (Some(old), Some(new)) = (&self.running.transfer, &new.transfer) {
            old.allow.replace(new.allow.networks());
            old.client_ip.replace(new.client_ip.get());
            if old.notify != new.notify {
                notify = Some(new.notify.clone());
            }
        }
        self.state = state;
        self.running = running;
        self.read = new;
        for name in plan.restart.iter().filter(|name| changed.contains(name)) {
            tracing::warn!("reload: {name} changed and needs a restart; the running value stays");
        }
        for name in pending.iter().filter(|name| !plan.restart.contains(name)) {
            tracing::info!("reload: {name} is back to the running value; no restart needed for it");
        }
        let applied =
            if plan.applied.is_empty() { "nothing changed".to_owned() } else { plan.applied.join(", ") };
        tracing::info!("reloaded: {applied}");
        notify
    }
}

/// The answer when the router lock was poisoned (a panic while swapping: never expected).
fn http_500() -> axum::response::Response {
    use axum::response::IntoResponse;
    let json = [(axum::http::header::CONTENT_TYPE, "application/json")];
    (axum::http::StatusCode::INTERNAL_SERVER_ERROR, json, r#"{"error": "internal"}"#).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A configuration from the embedded default with `edit` applied to its text.
    fn config(edit: impl Fn(String) -> String) -> Config {
        Config::from_text(&edit(crate::config::EMBEDDED_DEFAULT.to_owned()), "test").unwrap()
    }

    #[test]
    fn same_file_changes_nothing() {
        let a = config(|t| t);
        assert_eq!(plan(&a, &a.clone()), Plan::default());
    }

    #[test]
    fn run_time_settings_are_applied_and_the_rest_waits_for_a_restart() {
        let old = config(|t| t);
        let new = config(|t| {
            t.replace("[api]\n", "[api]\nregistration = \"closed\"\nupdate_rate_limit = 5\n")
                + "\n[privacy]\ntxt_retention = \"1d\"\n"
        });
        let p = plan(&old, &new);
        assert!(p.applied.contains(&"api.registration"), "{p:?}");
        assert!(p.applied.contains(&"api rate limits"), "{p:?}");
        assert!(p.applied.contains(&"privacy retention and client_ip"), "{p:?}");
        assert!(p.restart.is_empty(), "{p:?}");
        let merged = merge(&old, &new);
        assert_eq!(merged.api.registration, crate::config::Registration::Closed);
        assert_eq!(merged.api.update_rate_limit, 5);
        assert_eq!(merged.privacy.txt_retention, 86_400);
    }

    #[test]
    fn listen_addresses_database_and_zone_need_a_restart() {
        let old = config(|t| t);
        let new = config(|t| {
            t.replace("127.0.0.1:5053", "127.0.0.1:5054")
                .replace("acme-delegate.db", "other.db")
                .replace("auth.example.test", "auth.example.net")
        });
        let p = plan(&old, &new);
        for name in ["general.listen", "[database]", "the zone (general.domain, records, [dns] TTLs)"] {
            assert!(p.restart.contains(&name), "{name} missing from {p:?}");
        }
        let merged = merge(&old, &new);
        assert_eq!(merged.dns.listen, old.dns.listen);
        assert_eq!(merged.database.connection, old.database.connection);
    }

    #[test]
    fn a_new_tsig_secret_needs_a_restart_and_client_ip_is_applied() {
        let transfer = |secret: &str| {
            format!(
                "\n[transfer]\nallow_transfer = [\"127.0.0.1/32\"]\ntsig_name = \"k\"\ntsig_secret = \"{secret}\"\n"
            )
        };
        let old = config(|t| t + &transfer("c2VjcmV0LXNlY3JldC1zZWNyZXQtMQ=="));
        let new = config(|t| t + &transfer("c2VjcmV0LXNlY3JldC1zZWNyZXQtMg=="));
        let p = plan(&old, &new);
        assert_eq!(p.restart, ["transfer.tsig_name/tsig_algorithm/tsig_secret"], "{p:?}");
        assert!(p.applied.is_empty(), "{p:?}");
        let private = config(|t| {
            t + &transfer("c2VjcmV0LXNlY3JldC1zZWNyZXQtMQ==") + "[privacy]\nclient_ip = \"none\"\n"
        });
        let p = plan(&old, &private);
        assert_eq!((p.applied, p.restart), (vec!["privacy retention and client_ip"], vec![]));
    }
    #[test]
    fn transfer_tls_files_are_read_again_and_its_listener_needs_a_restart() {
        let tls = |port: u16, files: &str, more: &str| {
            format!(
                "\n[transfer]\nallow_transfer = [\"127.0.0.1/32\"]\ntls_listen = \"127.0.0.1:{port}\"\n\
                 tls_cert_fullchain = \"/etc/{files}.pem\"\ntls_cert_privkey = \"/etc/{files}.key\"\n{more}"
            )
        };
        let old = config(|t| t + &tls(853, "a", ""));
        let renewed = config(|t| t + &tls(853, "b", ""));
        let p = plan(&old, &renewed);
        assert_eq!((p.applied, p.restart), (vec!["transfer TLS certificate files"], vec![]));
        let merged = merge(&old, &renewed);
        let running = merged.transfer_tls.unwrap();
        assert_eq!(running.fullchain, std::path::PathBuf::from("/etc/b.pem"));
        let moved =
            config(|t| t + &tls(8853, "a", "tls_client_ca = \"/etc/ca.pem\"\nclear_transfers = false\n"));
        let p = plan(&old, &moved);
        assert_eq!(p.restart, ["transfer.tls_listen", "transfer.tls_client_ca", "transfer.clear_transfers"]);
        assert_eq!(merge(&old, &moved).transfer_tls, old.transfer_tls);
        let off = config(|t| t + "\n[transfer]\nallow_transfer = [\"127.0.0.1/32\"]\n");
        assert_eq!(plan(&old, &off).restart, ["transfer.tls_listen (TLS on or off)"]);
    }
}
