//! The composition root: binds sockets, opens the store, loads the zone, runs until a signal.
//!
//! Design note: everything that can fail because of the environment (ports taken, database
//! unreadable, bad records) fails here, before any listener answers, with a message that names
//! the address, file or key. Sockets are bound first so that a second instance on the same
//! ports exits at once instead of hanging (acme-dns v2's failure). The DNS workers start only
//! after the zone holds every subdomain, so no resolver ever sees a half-loaded zone.
//!
//! SIGHUP reloads what can change while serving (`reload`): certificates, log level,
//! registration, rate limits, retention and `client_ip`, transfer networks and NOTIFY targets;
//! the rest is named in the log as needing a restart.
//!
//! Shutdown on SIGTERM or SIGINT: stop accepting, let open API requests finish (bounded), stop
//! the DNS workers, checkpoint the store, exit 0.

pub(crate) mod reload;
pub(crate) mod xot;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

use crate::api::{self, AppState};
use crate::config::{Config, Tls};
use crate::dns::server::{self, BindError};
use crate::dns::transfers::Transfers;
use crate::dns::xot::Channel;
use crate::dns::zone::{Signer, Zone, ZoneError};
use crate::privacy::Privacy;
use crate::privacy::pseudonym::{KeyFileError, SubdomainLog};
use crate::store::{PurgeRules, Store, StoreError};
use crate::sync::{KeyError, SyncError, ZoneSync, signing_keys};

/// Connections the kernel queues for the API before we accept them: enough for a burst of
/// renewals at the top of the hour, as nginx's default (511) and more.
const API_LISTEN_BACKLOG: i32 = 1024;

/// Why the server could not start or run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DaemonError {
    /// The zone settings are invalid.
    #[error("general.records / zone: {0}")]
    Zone(#[from] ZoneError),
    /// A DNS listen address could not be bound.
    #[error("{0}")]
    Bind(#[from] BindError),
    /// The metrics address could not be bound.
    #[error("cannot listen for metrics on {addr} (metrics.listen): {source}")]
    MetricsBind {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The API address could not be bound.
    #[error("cannot listen for the API on {addr}: {source}")]
    ApiBind {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The store failed at start.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The DNSSEC key could not be made or loaded.
    #[error("dnssec: {0}")]
    Key(#[from] KeyError),
    /// The zone could not be loaded from the store (the store, the key set, or the signing).
    #[error("{0}")]
    Sync(#[from] SyncError),
    /// A DNS worker thread panicked (its message was printed when it did).
    #[error("{0} DNS worker thread(s) panicked while serving")]
    WorkerPanicked(usize),
    /// The API's certificate or key could not be loaded.
    #[error("{0}")]
    Tls(String),
    /// The secret for the pseudonyms of subdomains in logs could not be read or made.
    #[error("{0}")]
    LogKey(#[from] KeyFileError),
    /// Any other I/O failure (threads, signals).
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Removes what is past retention, and stops serving what was removed.
///
/// Safe with several instances on one database: each deletion is idempotent, and the other
/// instances hear of the changes through the change feed. The cuts are taken from the store's
/// time, and an instance whose clock is off runs none (`sync::clock`): it would delete what
/// is fresh for every instance, or keep what is due.
async fn purge(sync: &ZoneSync, privacy: &Privacy) -> Result<(), SyncError> {
    let (time, skew) = sync.shared_time(true).await?;
    if let Some(skew) = skew {
        crate::metrics::counters::clock_refusal("purge");
        tracing::warn!("retention purge skipped: {skew}");
        return Ok(());
    }
    let now = time.now;
    let age = |seconds: u64| now.saturating_sub(i64::try_from(seconds).unwrap_or(i64::MAX));
    let rules = PurgeRules {
        now,
        audit_before: age(privacy.audit_retention),
        txt_before: age(privacy.txt_retention),
        unused_before: privacy.account_expiry.map(age),
    };
    let purged = sync.purge(rules).await?;
    if purged.audit_entries + purged.txt_cleared.len() + purged.accounts_expired.len() > 0 {
        tracing::info!(
            "retention: removed {} audit entries, cleared old TXT values of {} subdomains, deleted {} unused accounts",
            purged.audit_entries,
            purged.txt_cleared.len(),
            purged.accounts_expired.len()
        );
    }
    if !purged.persist_expired.is_empty() {
        let accounts = purged.persist_expired.len();
        tracing::info!(
            "retention: removed dns-persist-01 records past their persistUntil from {accounts} accounts"
        );
    }
    Ok(())
}

/// Binds the API's TCP listener.
fn bind_api(addr: SocketAddr) -> Result<std::net::TcpListener, DaemonError> {
    let bind = || -> std::io::Result<std::net::TcpListener> {
        let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
        socket.set_reuse_address(true)?;
        if addr.is_ipv6() && addr.ip().is_unspecified() {
            // "All interfaces" for the API means both families, as Go's ":port" does.
            socket.set_only_v6(false)?;
        }
        socket.bind(&addr.into())?;
        socket.listen(API_LISTEN_BACKLOG)?;
        socket.set_nonblocking(true)?;
        Ok(socket.into())
    };
    bind().map_err(|source| DaemonError::ApiBind { addr, source })
}

/// SIGTERM, SIGINT and SIGHUP, caught from the moment they are created.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

/// What a signal asks for.
enum Wanted {
    /// Stop (SIGTERM or SIGINT, named).
    Stop(&'static str),
    /// Read the configuration again (SIGHUP).
    Reload,
}

impl Signals {
    /// Installs the handlers. Done first thing in `run`, so that a signal sent as soon as
    /// "ready" is logged (a supervisor, a test) is caught rather than killing the process.
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for the next signal.
    async fn wait(&mut self) -> Wanted {
        tokio::select! {
            _ = self.term.recv() => Wanted::Stop("SIGTERM"),
            _ = self.int.recv() => Wanted::Stop("SIGINT"),
            _ = self.hup.recv() => Wanted::Reload,
        }
    }
}

/// Runs the server until a signal; returns once everything has stopped.
pub(crate) async fn run(config: Config) -> Result<(), DaemonError> {
    let mut signals = Signals::install()?;
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    // With ACME the certificate comes later, into this slot, from a task started below.
    let mut acme = None;
    // With certificate files, a resolver that SIGHUP can refill (`reload`).
    let mut cert_files = None;
    let tls = match &config.api.tls {
        Tls::None => None,
        Tls::Cert { privkey, fullchain } => {
            let files = reload::CertFiles::load("api", fullchain, privkey).map_err(DaemonError::Tls)?;
            let acceptor = files.acceptor().map_err(DaemonError::Tls)?;
            cert_files = Some(files);
            Some(acceptor)
        }
        Tls::Acme { directory, cache_dir, email, ca_file } => {
            let slot = Arc::new(api::acme::CertSlot::default());
            let settings = api::acme::Settings {
                domain: config.dns.zone.apex.clone(),
                directory: directory.clone(),
                cache_dir: cache_dir.clone(),
                email: email.clone(),
                ca_file: ca_file.clone(),
            };
            let acceptor = api::acme::acceptor(Arc::clone(&slot)).map_err(DaemonError::Tls)?;
            acme = Some((settings, slot));
            Some(acceptor)
        }
    };
    let subdomain_log = SubdomainLog::open(&config.privacy.log_subdomain)?;
    // Zone transfers over TLS: the certificate (reloadable, as the API's) and the listeners.
    let (transfer_tls, transfer_certs) = match &config.transfer_tls {
        Some(tls) => {
            let certs = reload::CertFiles::load("transfer", &tls.fullchain, &tls.privkey)
                .map_err(DaemonError::Tls)?;
            let acceptor = xot::acceptor(tls, &certs).map_err(DaemonError::Tls)?;
            (Some((acceptor, crate::dns::xot::bind(&tls.listen)?)), Some(certs))
        }
        None => (None, None),
    };
    let bound = server::bind(&config.dns.listen, config.dns.transports)?;
    let api_listener = bind_api(config.api.listen)?;
    let api_addr = api_listener.local_addr()?;
    // Metrics: bound with the others, so a taken port stops the start; counters only when on.
    let metrics_listener = match &config.metrics {
        Some(metrics) => Some(bind_api(metrics.listen).map_err(|error| match error {
            DaemonError::ApiBind { addr, source } => DaemonError::MetricsBind { addr, source },
            other => other,
        })?),
        None => None,
    };
    let dns_stats = config.metrics.is_some().then(|| Arc::new(crate::dns::stats::DnsStats::default()));

    let store = Store::open(&config.database).await?;
    let mut key_created = None;
    let signer = match &config.dnssec {
        None => None,
        Some(dnssec) => {
            let (rows, rollover) = signing_keys(&store, dnssec.algorithm).await?;
            let active = crate::sync::keys::active(&rows).ok_or(KeyError::NoActiveKey)?;
            let key = crate::sync::keys::load(active)?;
            key_created = Some(active.created_at);
            tracing::info!("DNSSEC on: {} key tag {}", key.algorithm().name(), key.key_tag());
            if let Some(r) = rollover.filter(|r| !r.done) {
                tracing::info!(
                    "a key rollover ({}) stands at step {}: {}; it goes on from there",
                    r.kind.name(),
                    r.step,
                    crate::sync::rollover::describe(r.kind, r.step)
                );
            }
            Some(Signer { key, validity: dnssec.validity, refresh: dnssec.refresh })
        }
    };
    let zone = Arc::new(Zone::new(&config.dns.zone, signer)?);
    // Zone transfers: the zone journals its steps from here on (the load below is not one).
    let transfers = config.transfer.clone().map(|settings| {
        Arc::new(Transfers::new(Arc::clone(&zone), settings, crate::dns::journal::Limits::default()))
    });
    let mut sync =
        ZoneSync::new(store.clone(), Arc::clone(&zone), config.dns.txt_values, config.max_clock_skew)
            .with_transfers(transfers.clone());
    if let Some(dnssec) = &config.dnssec {
        sync = sync.with_key_policy(dnssec.policy.clone());
        // The key set in force (several keys mid-rollover), before anything is signed for good.
        sync.install_keys().await?;
    }
    sync.load().await?;
    // Steps kept in the database before this start: a secondary behind it gets an IXFR.
    if let Err(error) = sync.seed_journal().await {
        tracing::warn!("IXFR journal: could not read the steps kept in the database: {error}");
    }
    // The rows read for the load are freed; give them back rather than keep them resident.
    crate::sys::release_free_memory();

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let stop = Arc::new(AtomicBool::new(false));
    for socket in &bound.udp {
        tracing::info!("listening for DNS over UDP on {}", socket.local_addr()?);
    }
    for listener in &bound.tcp {
        tracing::info!("listening for DNS over TCP on {}", listener.local_addr()?);
    }
    let udp_threads = server::spawn_udp(
        bound.udp,
        &zone,
        transfers.as_ref(),
        config.dns.server,
        &stop,
        dns_stats.as_deref(),
    )?;
    let mut tasks = tokio::task::JoinSet::new();
    // The NOTIFY tasks stop on this (at shutdown, or when a reload replaces the targets).
    let (mut notify_stop, notify_rx) = watch::channel(false);
    if let Some(transfers) = &transfers {
        // Tell the secondaries of each change.
        let transfer = transfers.settings();
        let (networks, secondaries) = (transfer.allow.len(), transfer.notify.len());
        let key =
            transfer.key.as_ref().map_or("no TSIG key".to_owned(), |k| format!("TSIG key {}", k.name()));
        crate::dns::notify::spawn(transfers, &mut tasks, &notify_rx, dns_stats.as_deref());
        tracing::info!(
            "zone transfers on: {networks} networks allowed, {secondaries} secondaries notified, {key}"
        );
    }
    // With `clear_transfers = false`, transfers are served over TLS only.
    let clear = Channel::Clear { transfers: config.transfer_tls.as_ref().is_none_or(|t| t.clear_transfers) };
    let tls_listeners = transfer_tls.into_iter().flat_map(|(acceptor, listeners)| {
        listeners.into_iter().map(move |listener| (listener, Channel::Tls(acceptor.clone())))
    });
    for (listener, channel) in bound.tcp.into_iter().map(|l| (l, clear.clone())).chain(tls_listeners) {
        if let Channel::Tls(_) = channel {
            tracing::info!(
                "listening for zone transfers over TLS (XoT, ALPN dot) on {}",
                listener.local_addr()?
            );
        }
        let (zone, transfers) = (Arc::clone(&zone), transfers.clone());
        let shutdown = shutdown_rx.clone();
        let options = config.dns.server;
        let stats = dns_stats.as_ref().map(|s| s.tcp());
        tasks.spawn(async move {
            if let Err(error) =
                server::serve_tcp(listener, zone, transfers, options, channel, shutdown, stats).await
            {
                tracing::error!("DNS over TCP or TLS stopped: {error}");
            }
        });
    }
    if let Some(dnssec) = &config.dnssec {
        // Key rollovers: every instance reports its version and tries the next step.
        tasks.spawn(crate::sync::rollover::run(sync.clone(), dnssec.policy.clone(), shutdown_rx.clone()));
        // Every signature made is kept in the store, so the next start reads instead of signs.
        tasks.spawn(sync.clone().keep_signatures(shutdown_rx.clone()));
        // Check often enough that no signature gets within a quarter of the window of expiring.
        let every = std::time::Duration::from_secs(u64::from((dnssec.refresh / 4).clamp(1, 300)));
        let sync = sync.clone();
        let mut shutdown = shutdown_rx.clone();
        tasks.spawn(async move {
            loop {
                // At once first: a start may serve signatures that are due (see `ZoneSync::load`).
                // A new signing epoch is a store event: one instance records it, all apply it.
                match sync.refresh_signatures().await {
                    Ok(true) => tracing::info!("recorded a new signing epoch for every instance"),
                    Ok(false) => {}
                    Err(error) => tracing::warn!("could not renew the signatures (retried later): {error}"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = shutdown.changed() => return,
                }
            }
        });
    }
    tasks.spawn(sync.clone().follow(store.subscribe(), shutdown_rx.clone()));
    let state = AppState {
        store: store.clone(),
        sync: sync.clone(),
        zone: Arc::clone(&zone),
        config: Arc::new(config.api.clone()),
        domain: zone.apex_text().into(),
        txt_values: config.dns.txt_values,
        privacy: config.privacy.clone(),
        subdomain_log,
        limits: Arc::new(api::limits::Limits::new(
            config.api.register_rate_limit,
            config.api.auth_failure_limit,
            config.api.update_rate_limit,
        )),
    };
    let (mut reloader, app, mut privacy_rx) =
        reload::Reloader::new(&config, state, cert_files, transfer_certs);
    {
        let sync = sync.clone();
        let mut shutdown = shutdown_rx.clone();
        tasks.spawn(async move {
            loop {
                // The settings in force now: a reload may have changed them since the last run.
                let privacy = privacy_rx.borrow().clone();
                if let Err(error) = purge(&sync, &privacy).await {
                    tracing::warn!("retention purge failed (retried later): {error}");
                }
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(privacy.purge_interval)) => {}
                    // A reload: run with the new retention now, and wait the new interval.
                    _ = privacy_rx.changed() => {}
                    _ = shutdown.changed() => return,
                }
            }
        });
    }
    if let Some((settings, slot)) = acme {
        tasks.spawn(api::acme::run(settings, slot, sync.clone(), shutdown_rx.clone()));
    }
    let listener = tokio::net::TcpListener::from_std(api_listener)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tasks.spawn(api::serve(listener, app, tls, config.api.header_timeout, shutdown_rx.clone()));
    tracing::info!("API listening on {scheme}://{api_addr}");
    if let (Some(listener), Some(dns)) = (metrics_listener, dns_stats.clone()) {
        let addr = listener.local_addr()?;
        let sources = crate::metrics::Sources {
            dns,
            zone: Arc::clone(&zone),
            transfers: transfers.clone(),
            key_created,
        };
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let router = crate::metrics::router(sources);
        tasks.spawn(api::serve(listener, router, None, config.api.header_timeout, shutdown_rx.clone()));
        tracing::info!("metrics listening on http://{addr}/metrics");
    }
    tracing::info!(
        "ready: serving zone {} with {} registered subdomains",
        zone.apex_text(),
        zone.subdomain_count()
    );
    if config.source.is_none() {
        tracing::info!(
            "no -c FILE given: running the embedded demo configuration. Try:\n  \
             curl -s -X POST http://{api_addr}/register\n  \
             curl -s -X POST http://{api_addr}/update -H 'X-Api-User: <username>' -H 'X-Api-Key: <password>' \
             -d '{{\"subdomain\": \"<subdomain>\", \"txt\": \"LHDhK3oGRvkiefQnx7OOczTY5Tic_xZ6HcMOc_gmtoM\"}}'\n  \
             dig @{} -p {} <fulldomain> TXT",
            config.dns.listen.first().map_or("127.0.0.1".into(), |a| a.ip().to_string()),
            config.dns.listen.first().map_or(53, SocketAddr::port),
        );
    }

    let signal = loop {
        match signals.wait().await {
            Wanted::Stop(name) => break name,
            Wanted::Reload => {
                if let (Some(targets), Some(transfers)) = (reloader.reload(), &transfers) {
                    let _ = notify_stop.send(true);
                    let (stop, stop_rx) = watch::channel(false);
                    notify_stop = stop;
                    crate::dns::notify::spawn_to(
                        transfers,
                        &targets,
                        &mut tasks,
                        &stop_rx,
                        dns_stats.as_deref(),
                    );
                }
            }
        }
    };
    tracing::info!("{signal} received: shutting down");
    let _ = shutdown_tx.send(true);
    let _ = notify_stop.send(true);
    stop.store(true, Ordering::Relaxed);
    while tasks.join_next().await.is_some() {}
    let panicked = tokio::task::spawn_blocking(move || {
        udp_threads.into_iter().map(std::thread::JoinHandle::join).filter(Result::is_err).count()
    })
    .await
    .map_err(std::io::Error::other)?;
    store.close().await;
    if panicked > 0 {
        return Err(DaemonError::WorkerPanicked(panicked));
    }
    tracing::info!("stopped");
    Ok(())
}
