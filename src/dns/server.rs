//! UDP and TCP listeners that answer from a shared [`Zone`].
//!
//! Design note: UDP is served by plain OS threads doing blocking, batched receives and sends
//! (`recvmmsg`/`sendmmsg`, see [`crate::sys`]) on a shared socket: per packet there is no task,
//! no waker and no allocation, which keeps the CPU cost per query close to the kernel's own
//! work per datagram. Each worker owns its receive and send buffers. The threads poll a stop
//! flag between batches and every half second. UDP sockets ignore path MTU information
//! ([`crate::sys::omit_path_mtu`]), so a forged ICMP message cannot make us fragment answers.
//!
//! TCP is rarer (truncated answers, zone tooling) and may be slow or hostile, so it runs on the
//! async runtime with a cap on concurrent connections and an idle timeout per read.
//!
//! Sockets are bound up front by [`bind`], before anything else starts, so a taken port is
//! reported at once with its address. When the port is 0 (tests), UDP picks the port and TCP
//! binds the same one, so one address serves both.

use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Semaphore, watch};

use super::rrl::{RateLimiter, Verdict};
use super::wire::{error_reply, parse_query};
use super::zone::Zone;
use crate::sys::{UdpBatch, omit_path_mtu};

/// Which transports to serve, from acme-dns's `general.protocol`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transports {
    /// Serve UDP.
    pub udp: bool,
    /// Serve TCP.
    pub tcp: bool,
}

/// Limits and sizes of the listeners.
#[derive(Clone, Copy, Debug)]
pub struct ServerOptions {
    /// How long a TCP connection may sit idle between messages.
    pub tcp_idle_timeout: Duration,
    /// Concurrent TCP connections at most; more wait in the kernel's backlog.
    pub tcp_max_connections: usize,
    /// UDP worker threads per listen address.
    pub udp_workers: usize,
    /// UDP answers per second per client network; 0 turns response rate limiting off.
    pub rate_limit: u32,
    /// Every how many rate-limited answers one is sent truncated (0: none).
    pub rate_limit_slip: u32,
}

/// A listen address could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen for DNS over {proto} on {addr}: {source}")]
pub struct BindError {
    /// "UDP" or "TCP".
    pub proto: &'static str,
    /// The address that failed.
    pub addr: SocketAddr,
    /// What the operating system said.
    pub source: io::Error,
}

/// Sockets bound and ready to serve.
#[derive(Debug)]
pub struct Bound {
    /// UDP sockets.
    pub udp: Vec<UdpSocket>,
    /// TCP listeners.
    pub tcp: Vec<TcpListener>,
}

/// Creates a socket with the options a server wants, bound to `addr`.
fn bind_socket(addr: SocketAddr, kind: Type, protocol: Protocol) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), kind, Some(protocol))?;
    if addr.is_ipv6() {
        // Each family is configured explicitly; never let [::] swallow IPv4 by surprise.
        socket.set_only_v6(true)?;
    }
    if kind == Type::STREAM {
        socket.set_reuse_address(true)?;
    } else {
        // Bursts arrive faster than one worker drains them; the kernel's default queue
        // (about 200 KB) overflows first. Ask for more; the kernel caps it at rmem_max/wmem_max.
        let _ = socket.set_recv_buffer_size(4 << 20);
        let _ = socket.set_send_buffer_size(4 << 20);
        omit_path_mtu(&socket, addr.is_ipv6())?;
    }
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// Binds a UDP socket.
fn bind_udp(addr: SocketAddr) -> Result<UdpSocket, BindError> {
    bind_socket(addr, Type::DGRAM, Protocol::UDP).map(Into::into).map_err(|source| BindError {
        proto: "UDP",
        addr,
        source,
    })
}

/// Binds and starts listening on a TCP socket.
fn bind_tcp(addr: SocketAddr) -> Result<TcpListener, BindError> {
    bind_socket(addr, Type::STREAM, Protocol::TCP)
        .and_then(|s| {
            s.listen(1024)?;
            s.set_nonblocking(true)?;
            Ok(s.into())
        })
        .map_err(|source| BindError { proto: "TCP", addr, source })
}

/// Binds every address for the chosen transports.
pub fn bind(addrs: &[SocketAddr], transports: Transports) -> Result<Bound, BindError> {
    let mut bound = Bound { udp: Vec::new(), tcp: Vec::new() };
    for &addr in addrs {
        if transports.udp && transports.tcp && addr.port() == 0 {
            // The kernel picks a UDP port; serve TCP on the same one. That TCP port may be in
            // use already (another socket's ephemeral port): then try another pair.
            let mut attempts = 0;
            loop {
                let udp = bind_udp(addr)?;
                let actual = udp.local_addr().map_err(|source| BindError { proto: "UDP", addr, source })?;
                match bind_tcp(actual) {
                    Ok(tcp) => {
                        bound.udp.push(udp);
                        bound.tcp.push(tcp);
                        break;
                    }
                    Err(e) if e.source.kind() == io::ErrorKind::AddrInUse && attempts < 20 => attempts += 1,
                    Err(e) => return Err(e),
                }
            }
        } else if transports.udp {
            bound.udp.push(bind_udp(addr)?);
            if transports.tcp {
                bound.tcp.push(bind_tcp(addr)?);
            }
        } else if transports.tcp {
            bound.tcp.push(bind_tcp(addr)?);
        }
    }
    Ok(bound)
}

/// The size limit of an answer sent over UDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxLen {
    /// What the query's EDNS buffer (or 512 bytes without EDNS) and our own limit allow.
    Udp,
    /// Nothing past the question: a truncated answer (TC) that sends the client to TCP.
    Empty,
}

/// Answers one message into `out`; leaves `out` empty when the message deserves silence.
/// `udp` is the size limit for UDP; TCP (`None`) has none but the 64 KB of its framing.
pub fn handle_message(zone: &Zone, msg: &[u8], udp: Option<MaxLen>, out: &mut Vec<u8>) {
    match parse_query(msg) {
        Ok(query) => {
            let limit = match udp {
                Some(MaxLen::Udp) => zone.udp_limit(&query),
                Some(MaxLen::Empty) => 0,
                None => usize::from(u16::MAX),
            };
            zone.answer(&query, limit, out);
        }
        Err(error) => match error.rcode() {
            Some(rcode) => error_reply(msg, rcode, zone.edns_udp_size(), out),
            None => out.clear(),
        },
    }
}

/// Receives and answers datagrams in batches until `stop` is set.
fn udp_worker(socket: UdpSocket, zone: Arc<Zone>, limiter: Option<Arc<RateLimiter>>, stop: Arc<AtomicBool>) {
    // A timeout lets the thread notice `stop` while no traffic arrives.
    if let Err(error) = socket.set_read_timeout(Some(Duration::from_millis(500))) {
        tracing::error!("cannot set UDP read timeout: {error}");
        return;
    }
    let mut batch = UdpBatch::new();
    let mut verdicts = Vec::with_capacity(crate::sys::BATCH);
    while !stop.load(Ordering::Relaxed) {
        match batch.receive(&socket) {
            Ok(_) => {}
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                // Idle: let the rate limiter forget quiet networks even when nothing arrives.
                if let Some(limiter) = &limiter {
                    limiter.tick(Instant::now());
                }
                continue;
            }
            Err(error) => {
                // ICMP errors from earlier sends surface here on some systems; keep serving.
                tracing::debug!("UDP receive error: {error}");
                continue;
            }
        }
        verdicts.clear();
        if let Some(limiter) = &limiter {
            limiter.judge(Instant::now(), (0..batch.len()).map(|i| batch.peer(i)), &mut verdicts);
        }
        for i in 0..batch.len() {
            let mut out = std::mem::take(&mut batch.answers[i]);
            let verdict = verdicts.get(i).copied().unwrap_or(Verdict::Answer);
            match (batch.datagram(i), verdict) {
                (Some(msg), Verdict::Answer) => handle_message(&zone, msg, Some(MaxLen::Udp), &mut out),
                (Some(msg), Verdict::Truncate) => handle_message(&zone, msg, Some(MaxLen::Empty), &mut out),
                // Over the rate limit, or larger than any query we accept: no answer.
                (Some(_), Verdict::Drop) | (None, _) => out.clear(),
            }
            batch.answers[i] = out;
        }
        batch.send(&socket);
    }
}

/// Starts the UDP workers; they run until `stop` is set.
pub fn spawn_udp(
    sockets: Vec<UdpSocket>,
    zone: &Arc<Zone>,
    options: ServerOptions,
    stop: &Arc<AtomicBool>,
) -> io::Result<Vec<JoinHandle<()>>> {
    let mut handles = Vec::new();
    // One limiter for every socket and worker: a client network's budget is one budget.
    let limiter = (options.rate_limit > 0)
        .then(|| Arc::new(RateLimiter::new(options.rate_limit, options.rate_limit_slip)));
    for socket in sockets {
        for index in 0..options.udp_workers.max(1) {
            let socket = socket.try_clone()?;
            let zone = Arc::clone(zone);
            let limiter = limiter.clone();
            let stop = Arc::clone(stop);
            let handle = std::thread::Builder::new()
                .name(format!("dns-udp-{index}"))
                .spawn(move || udp_worker(socket, zone, limiter, stop))?;
            handles.push(handle);
        }
    }
    Ok(handles)
}

/// Serves one TCP connection: length-prefixed messages until idle, EOF or shutdown.
async fn tcp_connection(
    mut stream: tokio::net::TcpStream,
    zone: Arc<Zone>,
    idle: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut msg = Vec::new();
    let mut out = Vec::with_capacity(4096);
    loop {
        let read_len = tokio::select! {
            r = tokio::time::timeout(idle, stream.read_u16()) => r,
            _ = shutdown.changed() => return,
        };
        let Ok(Ok(len)) = read_len else { return };
        msg.resize(usize::from(len), 0);
        match tokio::time::timeout(idle, stream.read_exact(&mut msg)).await {
            Ok(Ok(_)) => {}
            _ => return,
        }
        handle_message(&zone, &msg, None, &mut out);
        if out.is_empty() {
            return;
        }
        let mut framed = Vec::with_capacity(out.len() + 2);
        framed.extend_from_slice(&(out.len() as u16).to_be_bytes());
        framed.extend_from_slice(&out);
        match tokio::time::timeout(idle, stream.write_all(&framed)).await {
            Ok(Ok(())) => {}
            _ => return,
        }
    }
}

/// Accepts TCP connections on `listener` until shutdown.
pub async fn serve_tcp(
    listener: TcpListener,
    zone: Arc<Zone>,
    options: ServerOptions,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let slots = Arc::new(Semaphore::new(options.tcp_max_connections.max(1)));
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => p,
            _ = shutdown.changed() => return Ok(()),
        };
        let Ok(permit) = permit else { return Ok(()) };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return Ok(()),
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!("TCP accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let zone = Arc::clone(&zone);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tcp_connection(stream, zone, options.tcp_idle_timeout, shutdown).await;
            drop(permit);
        });
    }
}
