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
//! async runtime with a cap on concurrent connections and an idle timeout per read. One client
//! must not be able to hold every connection (the UDP rate limiter sends limited clients to
//! TCP, so a TCP denial plus a spoofed UDP flood would cut resolvers off). So, as NSD and Knot
//! do, the listener never waits for a free slot: [`TcpSlots`] caps connections per client
//! network (IPv4 /24, IPv6 /56, as the rate limiter counts), a new connection must deliver its
//! first whole message within a short deadline, and when every slot is taken a new connection
//! takes the slot of the connection that has been idle the longest (of its own network when
//! that network is at its cap). A connection is never closed while it is answering. All of
//! this is on the TCP side only: the UDP workers never see it. A TCP listener may serve TLS
//! instead ([`Channel::Tls`], zone transfers over TLS: [`super::xot`]): the same slots, the
//! same connection code, on the stream inside TLS.
//!
//! Sockets are bound up front by [`bind`], before anything else starts, so a taken port is
//! reported at once with its address. When the port is 0 (tests), UDP picks the port and TCP
//! binds the same one, so one address serves both.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, watch};

use super::rrl::{Network, RateLimiter, Verdict};
use super::stats::{Counters, DnsStats};
use super::transfers::Transfers;
use super::wire::{error_reply, parse_query, put_u16_prefixed};
use super::xfr::Transport;
use super::xot::Channel;
use super::zone::Zone;
use crate::sys::{UdpBatch, omit_path_mtu};

/// Which transports to serve, from acme-dns's `general.protocol`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Transports {
    /// Serve UDP.
    pub(crate) udp: bool,
    /// Serve TCP.
    pub(crate) tcp: bool,
}

/// Limits and sizes of the listeners.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ServerOptions {
    /// How long a TCP connection may sit idle between messages.
    pub(crate) tcp_idle_timeout: Duration,
    /// How long a new TCP connection may take to deliver its first whole message.
    pub(crate) tcp_first_message_timeout: Duration,
    /// Concurrent TCP connections at most; when all are taken, a new one takes the slot of the
    /// connection idle the longest.
    pub(crate) tcp_max_connections: usize,
    /// Concurrent TCP connections per client network (IPv4 /24, IPv6 /56) at most.
    pub(crate) tcp_max_connections_per_network: usize,
    /// UDP worker threads per listen address.
    pub(crate) udp_workers: usize,
    /// UDP answers per second per client network; 0 turns response rate limiting off.
    pub(crate) rate_limit: u32,
    /// Every how many rate-limited answers one is sent truncated (0: none).
    pub(crate) rate_limit_slip: u32,
}

/// A listen address could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen for DNS over {proto} on {addr}: {source}")]
pub(crate) struct BindError {
    /// "UDP", "TCP", or TLS with the key that names it.
    pub(crate) proto: &'static str,
    /// The address that failed.
    pub(crate) addr: SocketAddr,
    /// What the operating system said.
    pub(crate) source: io::Error,
}

/// Sockets bound and ready to serve.
#[derive(Debug)]
pub(crate) struct Bound {
    /// UDP sockets.
    pub(crate) udp: Vec<UdpSocket>,
    /// TCP listeners.
    pub(crate) tcp: Vec<TcpListener>,
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
pub(super) fn bind_tcp(addr: SocketAddr) -> Result<TcpListener, BindError> {
    bind_socket(addr, Type::STREAM, Protocol::TCP)
        .and_then(|s| {
            s.listen(1024)?;
            s.set_nonblocking(true)?;
            Ok(s.into())
        })
        .map_err(|source| BindError { proto: "TCP", addr, source })
}

/// Binds every address for the chosen transports.
pub(crate) fn bind(addrs: &[SocketAddr], transports: Transports) -> Result<Bound, BindError> {
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
/// Returns the question's type when the message parsed (for the counters).
/// With `transfers` (when `[transfer]` is on), signed requests and IXFR over UDP are theirs.
pub fn handle_message(
    zone: &Zone,
    transfers: Option<&Transfers>,
    msg: &[u8],
    udp: Option<MaxLen>,
    out: &mut Vec<u8>,
) -> Option<u16> {
    match parse_query(msg) {
        Ok(query) => {
            let limit = match udp {
                Some(MaxLen::Udp) => zone.udp_limit(&query),
                Some(MaxLen::Empty) => 0,
                None => usize::from(u16::MAX),
            };
            // Transfers on: signed requests and IXFR over UDP need more than the zone's answer.
            if let Some(transfers) = transfers
                && super::xfr::answer(transfers, &query, limit, out)
            {
                return Some(query.qtype);
            }
            zone.answer(&query, limit, out);
            Some(query.qtype)
        }
        Err(error) => {
            match error.rcode() {
                Some(rcode) => error_reply(msg, rcode, zone.edns_udp_size(), out),
                None => out.clear(),
            }
            None
        }
    }
}

/// Receives and answers datagrams in batches until `stop` is set; counts into `stats` (this
/// thread's own block) when metrics are on.
fn udp_worker(
    socket: UdpSocket,
    zone: Arc<Zone>,
    transfers: Option<Arc<Transfers>>,
    limiter: Option<Arc<RateLimiter>>,
    stop: Arc<AtomicBool>,
    stats: Option<Arc<Counters>>,
) {
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
                (Some(msg), Verdict::Answer) => {
                    let qtype = handle_message(&zone, transfers.as_deref(), msg, Some(MaxLen::Udp), &mut out);
                    if let Some(stats) = &stats {
                        stats.answered(qtype, &out, false);
                    }
                }
                (Some(msg), Verdict::Truncate) => {
                    let qtype =
                        handle_message(&zone, transfers.as_deref(), msg, Some(MaxLen::Empty), &mut out);
                    if let Some(stats) = &stats {
                        stats.answered(qtype, &out, true);
                    }
                }
                // Over the rate limit, or larger than any query we accept: no answer.
                (Some(_), Verdict::Drop) => {
                    out.clear();
                    if let Some(stats) = &stats {
                        stats.dropped();
                    }
                }
                (None, _) => {
                    out.clear();
                    if let Some(stats) = &stats {
                        stats.unanswered();
                    }
                }
            }
            batch.answers[i] = out;
        }
        batch.send(&socket);
    }
}

/// Starts the UDP workers; they run until `stop` is set. With `stats`, each worker counts into
/// a block of its own.
pub(crate) fn spawn_udp(
    sockets: Vec<UdpSocket>,
    zone: &Arc<Zone>,
    transfers: Option<&Arc<Transfers>>,
    options: ServerOptions,
    stop: &Arc<AtomicBool>,
    stats: Option<&DnsStats>,
) -> io::Result<Vec<JoinHandle<()>>> {
    let mut handles = Vec::new();
    // One limiter for every socket and worker: a client network's budget is one budget.
    let limiter = (options.rate_limit > 0)
        .then(|| Arc::new(RateLimiter::new(options.rate_limit, options.rate_limit_slip)));
    for socket in sockets {
        for index in 0..options.udp_workers.max(1) {
            let socket = socket.try_clone()?;
            let zone = Arc::clone(zone);
            let transfers = transfers.cloned();
            let limiter = limiter.clone();
            let stop = Arc::clone(stop);
            let counters = stats.map(DnsStats::udp_worker);
            let handle = std::thread::Builder::new()
                .name(format!("dns-udp-{index}"))
                .spawn(move || udp_worker(socket, zone, transfers, limiter, stop, counters))?;
            handles.push(handle);
        }
    }
    Ok(handles)
}

/// One open TCP connection, as [`TcpSlots`] sees it.
#[derive(Debug)]
struct Connection {
    /// Its client's network.
    network: Network,
    /// When it last finished answering a message (or was accepted).
    active_at: Instant,
    /// Whether it is answering a message now; then it is not closed to make room.
    busy: bool,
    /// Wakes its task to close it.
    close: Arc<Notify>,
}

/// The open connections of one TCP listener, behind the lock.
#[derive(Debug, Default)]
struct SlotTable {
    /// Open connections by id.
    connections: HashMap<u64, Connection>,
    /// Open connections per network.
    per_network: HashMap<Network, usize>,
    /// The id of the next connection.
    next_id: u64,
}

impl SlotTable {
    /// Forgets connection `id`, if it is still here; returns it.
    fn remove(&mut self, id: u64) -> Option<Connection> {
        let connection = self.connections.remove(&id)?;
        if let Some(count) = self.per_network.get_mut(&connection.network) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_network.remove(&connection.network);
            }
        }
        Some(connection)
    }

    /// The connection idle the longest (of `network` only, if given), if any is idle.
    ///
    /// A linear scan, done only when a cap is reached; the table holds at most
    /// `tcp_max_connections` entries (256 by default).
    fn oldest_idle(&self, network: Option<Network>) -> Option<u64> {
        self.connections
            .iter()
            .filter(|(_, c)| !c.busy && network.is_none_or(|n| c.network == n))
            .min_by_key(|(_, c)| c.active_at)
            .map(|(id, _)| *id)
    }
}

/// Who holds the TCP connection slots of one listener, and which to give up for a new one.
#[derive(Debug)]
pub(super) struct TcpSlots {
    /// Connections at most.
    max: usize,
    /// Connections per network at most.
    per_network: usize,
    /// The connections.
    table: Mutex<SlotTable>,
}

/// A connection's place in [`TcpSlots`]; given up when dropped.
#[derive(Debug)]
pub(super) struct Slot {
    /// The table it is in.
    slots: Arc<TcpSlots>,
    /// Its id there.
    id: u64,
    /// Notified when the slot is taken for a newer connection.
    pub(super) close: Arc<Notify>,
}

impl TcpSlots {
    /// Slots for `max` connections, `per_network` of them per client network.
    fn new(max: usize, per_network: usize) -> Self {
        Self { max: max.max(1), per_network: per_network.max(1), table: Mutex::default() }
    }

    /// The table, even if a panicking task left the lock poisoned.
    fn lock(&self) -> std::sync::MutexGuard<'_, SlotTable> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for a new connection from `network`, closing an idle connection to make room if
    /// a cap is reached (one of the same network when that network is at its cap); `None` when
    /// every connection that could make room is answering.
    fn admit(self: &Arc<Self>, network: Network) -> Option<Slot> {
        let mut table = self.lock();
        let own = table.per_network.get(&network).copied().unwrap_or(0);
        let victim = if own >= self.per_network {
            Some(table.oldest_idle(Some(network))?)
        } else if table.connections.len() >= self.max {
            Some(table.oldest_idle(None)?)
        } else {
            None
        };
        if let Some(victim) = victim.and_then(|id| table.remove(id)) {
            victim.close.notify_one();
        }
        let id = table.next_id;
        table.next_id += 1;
        let close = Arc::new(Notify::new());
        let connection =
            Connection { network, active_at: Instant::now(), busy: false, close: Arc::clone(&close) };
        table.connections.insert(id, connection);
        *table.per_network.entry(network).or_insert(0) += 1;
        Some(Slot { slots: Arc::clone(self), id, close })
    }
}

impl Slot {
    /// Marks the connection as answering (`true`, not to be closed for room) or as done with
    /// a message and idle again (`false`).
    fn set_busy(&self, busy: bool) {
        if let Some(connection) = self.slots.lock().connections.get_mut(&self.id) {
            connection.busy = busy;
            connection.active_at = Instant::now();
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.lock().remove(self.id);
    }
}

/// What the task of one connection holds besides its stream.
pub(super) struct Serving {
    /// The zone answered from.
    pub(super) zone: Arc<Zone>,
    /// Zone transfers, when `[transfer]` is configured.
    pub(super) transfers: Option<Arc<Transfers>>,
    /// The listener's limits.
    pub(super) options: ServerOptions,
    /// The connection's place among the listener's.
    pub(super) slot: Slot,
    /// Changes at shutdown.
    pub(super) shutdown: watch::Receiver<bool>,
    /// Where to count answers, when metrics are on.
    pub(super) stats: Option<Arc<Counters>>,
}

/// Serves one connection (clear TCP, or the stream inside TLS): length-prefixed messages until
/// idle, EOF, shutdown, or its slot is taken for a newer connection.
pub(super) async fn tcp_connection<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    peer: SocketAddr,
    transport: Transport,
    serving: &mut Serving,
) {
    let Serving { zone, transfers, options, slot, shutdown, stats } = serving;
    let options = *options;
    let mut msg = Vec::new();
    let mut out = Vec::with_capacity(4096);
    // The first message must arrive whole, and soon: a connection that sends nothing, or one
    // byte, holds its slot only that long. Later messages may take the idle time.
    let mut deadline = options.tcp_first_message_timeout;
    loop {
        let read = async {
            let len = stream.read_u16().await?;
            msg.resize(usize::from(len), 0);
            stream.read_exact(&mut msg).await
        };
        let read = tokio::select! {
            r = tokio::time::timeout(deadline, read) => r,
            _ = shutdown.changed() => return,
            _ = slot.close.notified() => return,
        };
        let Ok(Ok(_)) = read else { return };
        deadline = options.tcp_idle_timeout;
        // Busy from here until the answer is written: a full listener never closes it.
        slot.set_busy(true);
        // Transfers on: AXFR and IXFR are streamed, inside this connection's slot.
        if let Some(transfers) = transfers.as_ref() {
            let idle = options.tcp_idle_timeout;
            match super::xfr::serve_tcp(transfers, &msg, peer, transport, stream, idle).await {
                super::xfr::Outcome::Sent => {
                    slot.set_busy(false);
                    continue;
                }
                super::xfr::Outcome::Close => return,
                super::xfr::Outcome::NotMine => {}
            }
        }
        let qtype = handle_message(zone, transfers.as_deref(), &msg, None, &mut out);
        if let Some(stats) = &stats {
            stats.answered(qtype, &out, false);
        }
        if out.is_empty() {
            return;
        }
        let mut framed = Vec::with_capacity(out.len() + 2);
        // An answer is cut to 65,535 bytes on TCP; one that was not cannot be framed.
        if put_u16_prefixed(&mut framed, &out).is_err() {
            return;
        }
        // `flush`: a TLS stream holds what is written until then.
        let write = async {
            stream.write_all(&framed).await?;
            stream.flush().await
        };
        match tokio::time::timeout(options.tcp_idle_timeout, write).await {
            Ok(Ok(())) => {}
            _ => return,
        }
        slot.set_busy(false);
    }
}

/// Accepts TCP connections on `listener` until shutdown, clear or in TLS as `channel` says;
/// counts into `stats` when given. With `transfers`, AXFR and IXFR are served on the
/// connections.
pub(crate) async fn serve_tcp(
    listener: TcpListener,
    zone: Arc<Zone>,
    transfers: Option<Arc<Transfers>>,
    options: ServerOptions,
    channel: Channel,
    mut shutdown: watch::Receiver<bool>,
    stats: Option<Arc<Counters>>,
) -> io::Result<()> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let slots = Arc::new(TcpSlots::new(options.tcp_max_connections, options.tcp_max_connections_per_network));
    if let Some(gate) = transfers.as_ref().map(|t| Arc::clone(&t.settings().gate)) {
        // Refused transfers are summed per network: write the summaries of ended windows even
        // when no further refusal comes to do it.
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(5)) => gate.flush(),
                    _ = shutdown.changed() => return,
                }
            }
        });
    }
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return Ok(()),
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!("TCP accept failed: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // No slot (every connection that could make room is answering): close at once.
        let Some(slot) = slots.admit(Network::of(peer.ip())) else { continue };
        let mut serving = Serving {
            zone: Arc::clone(&zone),
            transfers: transfers.clone(),
            options,
            slot,
            shutdown: shutdown.clone(),
            stats: stats.clone(),
        };
        match &channel {
            Channel::Clear { transfers } => {
                let transport = Transport::Tcp { transfers: *transfers };
                let mut stream = stream;
                tokio::spawn(async move { tcp_connection(&mut stream, peer, transport, &mut serving).await });
            }
            Channel::Tls(acceptor) => {
                let acceptor = acceptor.clone();
                tokio::spawn(async move { super::xot::connection(stream, peer, acceptor, serving).await });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The network of a test address.
    fn net(ip: &str) -> Network {
        Network::of(ip.parse().unwrap())
    }

    #[test]
    fn a_full_listener_closes_the_longest_idle_connection() {
        let slots = Arc::new(TcpSlots::new(3, 3));
        let first = slots.admit(net("192.0.2.1")).unwrap();
        let second = slots.admit(net("192.0.2.2")).unwrap();
        let third = slots.admit(net("192.0.2.3")).unwrap();
        first.set_busy(true);
        // Full: the oldest idle one (second) makes room; the busy one is kept.
        let fourth = slots.admit(net("198.51.100.1")).unwrap();
        assert!(slots.lock().connections.contains_key(&first.id));
        assert!(!slots.lock().connections.contains_key(&second.id));
        third.set_busy(true);
        fourth.set_busy(true);
        assert!(slots.admit(net("203.0.113.1")).is_none(), "every connection is answering");
        drop(second);
        assert_eq!(slots.lock().connections.len(), 3);
    }

    #[test]
    fn a_network_at_its_cap_makes_room_only_among_its_own() {
        let slots = Arc::new(TcpSlots::new(10, 2));
        let other = slots.admit(net("198.51.100.1")).unwrap();
        let a = slots.admit(net("192.0.2.1")).unwrap();
        let b = slots.admit(net("192.0.2.2")).unwrap();
        let c = slots.admit(net("192.0.2.3")).unwrap();
        let table = slots.lock();
        assert!(table.connections.contains_key(&other.id));
        assert!(!table.connections.contains_key(&a.id));
        assert!(table.connections.contains_key(&b.id) && table.connections.contains_key(&c.id));
        assert_eq!(table.per_network.get(&net("192.0.2.99")), Some(&2));
    }
}
