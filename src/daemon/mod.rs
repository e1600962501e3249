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
//! `run` reads as its steps (`start`): take what the start needs from outside (certificates, the
//! log key, every socket), open the store and load the zone, start the DNS side, the zone's
//! drivers and the API, then serve until a signal and shut down. Each background loop lives
//! with its owner: the retention purge in `purge`, the zone's in `zone_sync`.
//!
//! Shutdown on SIGTERM or SIGINT: stop accepting, let open API requests finish (bounded), stop
//! the DNS workers, checkpoint the store, exit 0.

mod purge;
pub(crate) mod reload;
mod start;
pub(crate) mod xot;

pub(crate) use start::open_zone;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use tokio::sync::watch;

use crate::config::Config;
use crate::dns::server::BindError;
use crate::dns::zone::ZoneError;
use crate::privacy::pseudonym::KeyFileError;
use crate::store::{Store, StoreError};
use crate::zone_sync::{KeyError, SyncError};

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
    let outside = start::Outside::take(&config)?;
    let opened = start::open(&config).await?;
    let mut running = start::Running::new(&config);
    running.start_dns(&config, outside.dns, outside.transfer_tls, &opened)?;
    running.start_drivers(&config, &opened);
    let api_addr = outside.api.addr;
    let mut reloader = running.start_api(&config, outside.api, &opened)?;
    tracing::info!(
        "ready: serving zone {} with {} registered subdomains",
        opened.zone.apex_text(),
        opened.zone.subdomain_count()
    );
    if config.source.is_none() {
        demo_hint(&config, api_addr);
    }
    let signal = serve_until_stopped(&mut signals, &mut reloader, &mut running, &opened).await;
    tracing::info!("{signal} received: shutting down");
    shut_down(running, &opened.store).await
}

/// With the embedded demo configuration, says how to try the server.
fn demo_hint(config: &Config, api_addr: SocketAddr) {
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

/// Serves until SIGTERM or SIGINT, which it returns the name of; on SIGHUP reloads, and
/// replaces the NOTIFY tasks when their targets changed.
async fn serve_until_stopped(
    signals: &mut Signals,
    reloader: &mut reload::Reloader,
    running: &mut start::Running,
    opened: &start::Opened,
) -> &'static str {
    loop {
        match signals.wait().await {
            Wanted::Stop(name) => return name,
            Wanted::Reload => {
                if let (Some(targets), Some(transfers)) = (reloader.reload(), &opened.transfers) {
                    let _ = running.notify_stop.send(true);
                    let (stop, stop_rx) = watch::channel(false);
                    running.notify_stop = stop;
                    crate::dns::notify::spawn_to(
                        transfers,
                        &targets,
                        &mut running.tasks,
                        &stop_rx,
                        running.dns_stats.as_deref(),
                    );
                }
            }
        }
    }
}

/// Stops the tasks (the API drains its open requests) and the UDP workers, then closes the
/// store.
async fn shut_down(mut running: start::Running, store: &Store) -> Result<(), DaemonError> {
    let _ = running.shutdown_tx.send(true);
    let _ = running.notify_stop.send(true);
    running.stop.store(true, Ordering::Relaxed);
    while running.tasks.join_next().await.is_some() {}
    let udp_threads = running.udp_threads;
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
