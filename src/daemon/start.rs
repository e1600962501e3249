//! The steps of a start, in the order `run` takes them: what the start needs from outside
//! ([`Outside::take`]: certificates, the log key, every socket), the store and the zone
//! ([`open`]), then the running parts ([`Running`]): the DNS side, the zone's drivers, the API.
//!
//! Design note: each step is a function of its own so that the start reads one step at a time;
//! the order is the one the module note of `daemon` explains (what can fail does so before
//! anything answers; DNS starts on a loaded zone). Everything a later step or the shutdown
//! needs is in the structs the steps return, not in locals of one long function.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::reload::{CertFiles, Reloader};
use super::{DaemonError, bind_api, xot};
use crate::api::{self, AppState};
use crate::config::{Config, Tls};
use crate::dns::server;
use crate::dns::stats::DnsStats;
use crate::dns::transfers::Transfers;
use crate::dns::xot::Channel;
use crate::dns::zone::{Signer, Zone};
use crate::privacy::pseudonym::SubdomainLog;
use crate::store::Store;
use crate::zone_sync::{KeyError, ZoneSync, signing_keys};

/// What the start takes from outside before it opens the store: the API's TLS, the secret of
/// the log's pseudonyms and every socket, so that a bad file or a taken port stops it first.
pub(super) struct Outside {
    /// The DNS sockets.
    pub(super) dns: server::Bound,
    /// Zone transfers over TLS: the acceptor and its listeners.
    pub(super) transfer_tls: Option<(TlsAcceptor, Vec<TcpListener>)>,
    /// What the API step takes.
    pub(super) api: ApiParts,
}

/// What the API step takes of [`Outside`].
pub(super) struct ApiParts {
    /// The API's TLS acceptor, when TLS is on.
    tls: Option<TlsAcceptor>,
    /// With ACME, the client's settings and the slot its certificate goes into (the task that
    /// fills it starts with the API).
    acme: Option<(api::acme::Settings, Arc<api::acme::CertSlot>)>,
    /// With certificate files, the resolver that SIGHUP refills.
    cert_files: Option<Arc<CertFiles>>,
    /// How subdomains appear in the log.
    subdomain_log: SubdomainLog,
    /// The certificate of zone transfers over TLS, which SIGHUP reloads.
    transfer_certs: Option<Arc<CertFiles>>,
    /// The API's listener.
    listener: TcpListener,
    /// Its address.
    pub(super) addr: SocketAddr,
    /// The metrics listener, when metrics are on.
    metrics: Option<TcpListener>,
}

impl Outside {
    /// Reads the certificates and the log key and binds every socket, in that order.
    pub(super) fn take(config: &Config) -> Result<Self, DaemonError> {
        // With ACME the certificate comes later, into this slot, from a task the API step starts.
        let mut acme = None;
        // With certificate files, a resolver that SIGHUP can refill (`reload`).
        let mut cert_files = None;
        let tls = match &config.api.tls {
            Tls::None => None,
            Tls::Cert { privkey, fullchain } => {
                let files = CertFiles::load("api", fullchain, privkey).map_err(DaemonError::Tls)?;
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
                let certs =
                    CertFiles::load("transfer", &tls.fullchain, &tls.privkey).map_err(DaemonError::Tls)?;
                let acceptor = xot::acceptor(tls, &certs).map_err(DaemonError::Tls)?;
                (Some((acceptor, crate::dns::xot::bind(&tls.listen)?)), Some(certs))
            }
            None => (None, None),
        };
        let dns = server::bind(&config.dns.listen, config.dns.transports)?;
        let api_listener = bind_api(config.api.listen)?;
        let api_addr = api_listener.local_addr()?;
        // Metrics: bound with the others, so a taken port stops the start.
        let metrics = match &config.metrics {
            Some(metrics) => Some(bind_api(metrics.listen).map_err(|error| match error {
                DaemonError::ApiBind { addr, source } => DaemonError::MetricsBind { addr, source },
                other => other,
            })?),
            None => None,
        };
        let api = ApiParts {
            tls,
            acme,
            cert_files,
            subdomain_log,
            transfer_certs,
            listener: api_listener,
            addr: api_addr,
            metrics,
        };
        Ok(Self { dns, transfer_tls, api })
    }
}

/// The store and the zone it fills, ready to serve.
pub(super) struct Opened {
    /// The store.
    pub(super) store: Store,
    /// The zone, loaded.
    pub(super) zone: Arc<Zone>,
    /// Zone transfers, when `[transfer]` is on.
    pub(super) transfers: Option<Arc<Transfers>>,
    /// The one writer of the zone.
    pub(super) sync: ZoneSync,
    /// When the active signing key was made (for the metrics), when signed.
    pub(super) key_created: Option<i64>,
}

/// The zone of a configuration and the sync that fills it from the store, as a start makes
/// them, not loaded yet: signed with the store's key set in force, journalling its steps when
/// `[transfer]` is on.
pub(crate) struct ZoneParts {
    /// The zone.
    pub(crate) zone: Arc<Zone>,
    /// Zone transfers, when `[transfer]` is on.
    pub(crate) transfers: Option<Arc<Transfers>>,
    /// The one writer of the zone.
    pub(crate) sync: ZoneSync,
    /// When the active signing key was made (for the metrics), when signed.
    pub(crate) key_created: Option<i64>,
}

/// Makes the zone of `config` on `store` (see [`ZoneParts`]). A command that changes the zone
/// while no server runs makes the same one, so that the steps it computes are those a server
/// would have served.
pub(crate) async fn open_zone(config: &Config, store: &Store) -> Result<ZoneParts, DaemonError> {
    let (signer, key_created) = signer(config, store).await?;
    let zone = Arc::new(Zone::new(&config.dns.zone, signer)?);
    // Zone transfers: the zone journals its steps from here on (the load is not one).
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
    Ok(ZoneParts { zone, transfers, sync, key_created })
}

/// Opens the store, builds the zone with its signing key and loads it with every registered
/// name (renewing signatures that are due), its key set and its IXFR journal.
pub(super) async fn open(config: &Config) -> Result<Opened, DaemonError> {
    let store = Store::open(&config.database).await?;
    let ZoneParts { zone, transfers, sync, key_created } = open_zone(config, &store).await?;
    sync.load(true).await?;
    // Steps kept in the database before this start: a secondary behind it gets an IXFR.
    if let Err(error) = sync.seed_journal().await {
        tracing::warn!("IXFR journal: could not read the steps kept in the database: {error}");
    }
    // The rows read for the load are freed; give them back rather than keep them resident.
    crate::sys::release_free_memory();
    Ok(Opened { store, zone, transfers, sync, key_created })
}

/// The zone's signer from the store's active key (made there at the first signed start), and
/// when that key was made; `None` for an unsigned zone.
async fn signer(config: &Config, store: &Store) -> Result<(Option<Signer>, Option<i64>), DaemonError> {
    let Some(dnssec) = &config.dnssec else { return Ok((None, None)) };
    let (rows, rollover) = signing_keys(store, dnssec.algorithm).await?;
    let active = crate::zone_sync::keys::active(&rows).ok_or(KeyError::NoActiveKey)?;
    let key = crate::zone_sync::keys::load(active)?;
    tracing::info!("DNSSEC on: {} key tag {}", key.algorithm().name(), key.key_tag());
    if let Some(r) = rollover.filter(|r| !r.done) {
        tracing::info!(
            "a key rollover ({}) stands at step {}: {}; it goes on from there",
            r.kind.name(),
            r.step,
            crate::zone_sync::rollover::describe(r.kind, r.step)
        );
    }
    let signer = Signer { key, validity: dnssec.validity, refresh: dnssec.refresh };
    Ok((Some(signer), Some(active.created_at)))
}

/// What runs until the shutdown: the tasks, the UDP worker threads and what stops them.
pub(super) struct Running {
    /// The async tasks (listeners, drivers, the API).
    pub(super) tasks: JoinSet<()>,
    /// Tells the tasks to stop.
    pub(super) shutdown_tx: watch::Sender<bool>,
    /// What the tasks watch.
    pub(super) shutdown_rx: watch::Receiver<bool>,
    /// Tells the UDP worker threads to stop.
    pub(super) stop: Arc<AtomicBool>,
    /// The UDP worker threads.
    pub(super) udp_threads: Vec<JoinHandle<()>>,
    /// Stops the NOTIFY tasks (at shutdown, or when a reload replaces the targets).
    pub(super) notify_stop: watch::Sender<bool>,
    /// The DNS counters, when metrics are on.
    pub(super) dns_stats: Option<Arc<DnsStats>>,
}

impl Running {
    /// Nothing running yet; counts DNS traffic when metrics are on.
    pub(super) fn new(config: &Config) -> Self {
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        Self {
            tasks: JoinSet::new(),
            shutdown_tx,
            shutdown_rx,
            stop: Arc::new(AtomicBool::new(false)),
            udp_threads: Vec::new(),
            notify_stop: watch::channel(false).0,
            dns_stats: config.metrics.is_some().then(|| Arc::new(DnsStats::default())),
        }
    }

    /// Starts the DNS side on the loaded zone: the UDP workers, the NOTIFY tasks, the TCP
    /// listeners and those of zone transfers over TLS.
    pub(super) fn start_dns(
        &mut self,
        config: &Config,
        bound: server::Bound,
        transfer_tls: Option<(TlsAcceptor, Vec<TcpListener>)>,
        opened: &Opened,
    ) -> Result<(), DaemonError> {
        for socket in &bound.udp {
            tracing::info!("listening for DNS over UDP on {}", socket.local_addr()?);
        }
        for listener in &bound.tcp {
            tracing::info!("listening for DNS over TCP on {}", listener.local_addr()?);
        }
        let transfers = &opened.transfers;
        self.udp_threads = server::spawn_udp(
            bound.udp,
            &opened.zone,
            transfers.as_ref(),
            config.dns.server,
            &self.stop,
            self.dns_stats.as_deref(),
        )?;
        // The NOTIFY tasks stop on this (at shutdown, or when a reload replaces the targets).
        let (notify_stop, notify_rx) = watch::channel(false);
        self.notify_stop = notify_stop;
        if let Some(transfers) = transfers {
            // Tell the secondaries of each change.
            let transfer = transfers.settings();
            let (networks, secondaries) = (transfer.allow.len(), transfer.notify.len());
            let key =
                transfer.key.as_ref().map_or("no TSIG key".to_owned(), |k| format!("TSIG key {}", k.name()));
            crate::dns::notify::spawn(transfers, &mut self.tasks, &notify_rx, self.dns_stats.as_deref());
            tracing::info!(
                "zone transfers on: {networks} networks allowed, {secondaries} secondaries notified, {key}"
            );
        }
        // With `clear_transfers = false`, transfers are served over TLS only.
        let clear =
            Channel::Clear { transfers: config.transfer_tls.as_ref().is_none_or(|t| t.clear_transfers) };
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
            let (zone, transfers) = (Arc::clone(&opened.zone), transfers.clone());
            let shutdown = self.shutdown_rx.clone();
            let options = config.dns.server;
            let stats = self.dns_stats.as_ref().map(|s| s.tcp());
            self.tasks.spawn(async move {
                if let Err(error) =
                    server::serve_tcp(listener, zone, transfers, options, channel, shutdown, stats).await
                {
                    tracing::error!("DNS over TCP or TLS stopped: {error}");
                }
            });
        }
        Ok(())
    }

    /// Starts what drives the zone besides the API: with DNSSEC the rollover driver, the keeper
    /// of signatures and their renewal; always the follower of the store's change feed.
    pub(super) fn start_drivers(&mut self, config: &Config, opened: &Opened) {
        let (sync, shutdown) = (&opened.sync, &self.shutdown_rx);
        if let Some(dnssec) = &config.dnssec {
            // Key rollovers: every instance reports its version and tries the next step.
            self.tasks.spawn(crate::zone_sync::rollover::run(
                sync.clone(),
                dnssec.policy.clone(),
                shutdown.clone(),
            ));
            // Every signature made is kept in the store, so the next start reads instead of signs.
            self.tasks.spawn(sync.clone().keep_signatures(shutdown.clone()));
            self.tasks.spawn(sync.clone().renew_signatures(dnssec.refresh, shutdown.clone()));
        }
        self.tasks.spawn(sync.clone().follow(opened.store.subscribe(), shutdown.clone()));
    }

    /// Starts the API (and the metrics exporter when on) with what follows its settings: the
    /// retention purge and, with ACME, the client of the API's own certificate. Returns what
    /// SIGHUP calls.
    pub(super) fn start_api(
        &mut self,
        config: &Config,
        parts: ApiParts,
        opened: &Opened,
    ) -> Result<Reloader, DaemonError> {
        let ApiParts { tls, acme, cert_files, subdomain_log, transfer_certs, listener, addr, metrics } =
            parts;
        let zone = &opened.zone;
        let state = AppState {
            store: opened.store.clone(),
            sync: opened.sync.clone(),
            zone: Arc::clone(zone),
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
        let (reloader, app, privacy_rx) = Reloader::new(config, state, cert_files, transfer_certs);
        let shutdown = &self.shutdown_rx;
        self.tasks.spawn(super::purge::run(opened.sync.clone(), privacy_rx, shutdown.clone()));
        if let Some((settings, slot)) = acme {
            self.tasks.spawn(api::acme::run(settings, slot, opened.sync.clone(), shutdown.clone()));
        }
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        self.tasks.spawn(api::serve(listener, app, tls, config.api.header_timeout, shutdown.clone()));
        tracing::info!("API listening on {scheme}://{addr}");
        if let (Some(listener), Some(dns)) = (metrics, self.dns_stats.clone()) {
            let addr = listener.local_addr()?;
            let sources = crate::metrics::Sources {
                dns,
                zone: Arc::clone(zone),
                transfers: opened.transfers.clone(),
                key_created: opened.key_created,
            };
            let listener = tokio::net::TcpListener::from_std(listener)?;
            let router = crate::metrics::router(sources);
            self.tasks.spawn(api::serve(listener, router, None, config.api.header_timeout, shutdown.clone()));
            tracing::info!("metrics listening on http://{addr}/metrics");
        }
        Ok(reloader)
    }
}
