//! The only unsafe code: batched UDP receive and send (`recvmmsg`/`sendmmsg`) on Linux.
//!
//! Design note: on loopback the CPU cost of answering a DNS query is mostly the two system
//! calls per packet. Receiving up to [`BATCH`] datagrams with one `recvmmsg` and sending all
//! their answers with one `sendmmsg` pays the kernel entry and exit once per batch instead of
//! twice per query; under light load a batch is simply one packet, so latency does not change
//! (`MSG_WAITFORONE` returns as soon as one datagram is there). NSD does the same.
//!
//! The buffers live in [`UdpBatch`], allocated once per worker. Every pointer handed to the
//! kernel points into that struct's own vectors, which are not resized while the call runs.
//!
//! Also here, because it needs `setsockopt` with Linux-only values: [`omit_path_mtu`]; and
//! [`release_free_memory`], glibc's `malloc_trim`, after the zone's bulk load; [`access`],
//! whether the service's user may read the files the configuration names (for `check-config`);
//! and [`effective_uid`], for the client's per-user defaults.
#![allow(
    unsafe_code,
    reason = "recvmmsg/sendmmsg, IP_MTU_DISCOVER, malloc_trim and geteuid have no safe wrapper in std"
)]

pub(crate) mod access;

use std::io;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;

/// Datagrams handled per system call at most.
pub(crate) const BATCH: usize = 32;
/// Receive buffer per datagram: larger queries are not legitimate for an authoritative server.
pub(crate) const RECV_SIZE: usize = 4096;

/// Reusable buffers for one worker's batched I/O.
pub(crate) struct UdpBatch {
    /// Receive buffers, `BATCH * RECV_SIZE` bytes.
    recv: Vec<u8>,
    /// Length received into each slot.
    lens: [usize; BATCH],
    /// Whether the datagram in a slot was cut short by the buffer.
    truncated: [bool; BATCH],
    /// Peer addresses, as the kernel wrote them.
    addrs: Vec<libc::sockaddr_storage>,
    /// Answers, one per slot; an empty answer is not sent.
    pub answers: Vec<Vec<u8>>,
    /// How many slots the last receive filled.
    count: usize,
}

impl Default for UdpBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl UdpBatch {
    /// Allocates the buffers.
    pub(crate) fn new() -> Self {
        // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
        let zero_addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        Self {
            recv: vec![0; BATCH * RECV_SIZE],
            lens: [0; BATCH],
            truncated: [false; BATCH],
            addrs: vec![zero_addr; BATCH],
            answers: (0..BATCH).map(|_| Vec::with_capacity(1232)).collect(),
            count: 0,
        }
    }

    /// Number of datagrams from the last receive.
    pub(crate) fn len(&self) -> usize {
        self.count
    }

    /// The datagram in slot `i`, or `None` if it was larger than the buffer.
    pub(crate) fn datagram(&self, i: usize) -> Option<&[u8]> {
        if self.truncated[i] {
            return None;
        }
        Some(&self.recv[i * RECV_SIZE..i * RECV_SIZE + self.lens[i]])
    }

    /// The sender of slot `i`.
    pub(crate) fn peer(&self, i: usize) -> Option<SocketAddr> {
        sockaddr_to_std(&self.addrs[i])
    }

    /// Receives up to [`BATCH`] datagrams, blocking (subject to the socket's read timeout)
    /// until at least one is there.
    pub(crate) fn receive(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        // SAFETY: mmsghdr and iovec are plain old data; all-zero is valid before we fill them.
        let mut iovecs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        let base = self.recv.as_mut_ptr();
        for i in 0..BATCH {
            // SAFETY: i * RECV_SIZE + RECV_SIZE <= recv.len(), so the pointer stays in bounds.
            iovecs[i].iov_base = unsafe { base.add(i * RECV_SIZE) }.cast();
            iovecs[i].iov_len = RECV_SIZE;
            headers[i].msg_hdr.msg_iov = &mut iovecs[i];
            headers[i].msg_hdr.msg_iovlen = 1;
            headers[i].msg_hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            headers[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        }
        // SAFETY: every header points at an iovec and an address slot owned by `self` or this
        // frame, all of which outlive the call; BATCH matches the array length.
        let n = unsafe {
            libc::recvmmsg(
                socket.as_raw_fd(),
                headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            self.count = 0;
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        for (i, header) in headers.iter().enumerate().take(n) {
            self.lens[i] = header.msg_len as usize;
            self.truncated[i] = header.msg_hdr.msg_flags & libc::MSG_TRUNC != 0;
        }
        self.count = n;
        Ok(n)
    }

    /// Sends every non-empty answer of the last batch to its peer.
    pub(crate) fn send(&mut self, socket: &UdpSocket) {
        // SAFETY: plain old data, zero is valid.
        let mut iovecs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        let mut headers: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        let mut count = 0;
        for i in 0..self.count {
            if self.answers[i].is_empty() {
                continue;
            }
            iovecs[count].iov_base = self.answers[i].as_mut_ptr().cast();
            iovecs[count].iov_len = self.answers[i].len();
            headers[count].msg_hdr.msg_iov = &mut iovecs[count];
            headers[count].msg_hdr.msg_iovlen = 1;
            headers[count].msg_hdr.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            headers[count].msg_hdr.msg_namelen = sockaddr_len(&self.addrs[i]);
            count += 1;
        }
        let mut sent = 0;
        while sent < count {
            // SAFETY: headers[sent..count] point at answers and addresses owned by `self`,
            // unchanged during the call.
            let n = unsafe {
                libc::sendmmsg(
                    socket.as_raw_fd(),
                    headers[sent..].as_mut_ptr(),
                    (count - sent) as libc::c_uint,
                    0,
                )
            };
            if n <= 0 {
                // The first message failed (e.g. an unreachable peer): skip it, send the rest.
                tracing::debug!("UDP send error: {}", io::Error::last_os_error());
                sent += 1;
            } else {
                sent += n as usize;
            }
        }
    }
}

/// Makes a UDP socket ignore path MTU information (`IP_PMTUDISC_OMIT`, `IPV6_PMTUDISC_OMIT`).
///
/// Why: the kernel learns a path MTU from ICMP "fragmentation needed" / "packet too big"
/// messages, which anyone can forge. A forged small MTU would make the kernel fragment our
/// answers, and fragments are what off-path DNS spoofing attacks inject. With this mode the
/// socket never stores or uses such information: answers go out whole up to the interface's
/// MTU, and with the default EDNS limit (1232 bytes) they are never fragmented by us.
pub(crate) fn omit_path_mtu(socket: &impl AsRawFd, ipv6: bool) -> io::Result<()> {
    let (level, name, value) = if ipv6 {
        (libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER, libc::IPV6_PMTUDISC_OMIT)
    } else {
        (libc::IPPROTO_IP, libc::IP_MTU_DISCOVER, libc::IP_PMTUDISC_OMIT)
    };
    // SAFETY: `value` is a c_int that lives for the call, and its size is passed with it.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// The length of the address actually stored in `addr`.
fn sockaddr_len(addr: &libc::sockaddr_storage) -> libc::socklen_t {
    let size = match i32::from(addr.ss_family) {
        libc::AF_INET => std::mem::size_of::<libc::sockaddr_in>(),
        _ => std::mem::size_of::<libc::sockaddr_in6>(),
    };
    size as libc::socklen_t
}

/// Converts a kernel socket address to std's.
fn sockaddr_to_std(addr: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(addr.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, which it is large and
            // aligned enough for.
            let v4 = unsafe { &*(addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = u32::from_be(v4.sin_addr.s_addr);
            Some(SocketAddr::V4(SocketAddrV4::new(ip.into(), u16::from_be(v4.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let v6 = unsafe { &*(addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                v6.sin6_addr.s6_addr.into(),
                u16::from_be(v6.sin6_port),
                v6.sin6_flowinfo,
                v6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Hands the allocator's free memory back to the system (glibc's `malloc_trim`; elsewhere
/// nothing).
///
/// Loading a million names makes a few hundred megabytes of rows that are freed once the zone
/// holds them; glibc keeps such memory in its per-thread arenas, where the resident size of
/// the server would carry it for good (measured at 1M names: 1.5 GB resident, 1.2 GB after a
/// trim; see BENCHMARKS.md). Call it after a bulk load, never on the query path: it walks
/// every arena.
pub(crate) fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointers and only returns free pages of glibc's own heap
    // to the kernel; it is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The process's effective user ID (`geteuid`): whose defaults apply, such as where the
/// client keeps its credentials (root's under /etc, anyone else's in their home).
pub(crate) fn effective_uid() -> u32 {
    // SAFETY: geteuid takes no arguments, touches no memory of ours and cannot fail.
    unsafe { libc::geteuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads an integer socket option back.
    fn int_option(socket: &UdpSocket, level: libc::c_int, name: libc::c_int) -> libc::c_int {
        let mut value: libc::c_int = -1;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: value and len are valid for writes of the sizes given.
        let rc = unsafe {
            libc::getsockopt(
                socket.as_raw_fd(),
                level,
                name,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0, "{}", io::Error::last_os_error());
        value
    }

    #[test]
    fn path_mtu_is_omitted_for_both_families() {
        let v4 = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_ne!(int_option(&v4, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER), libc::IP_PMTUDISC_OMIT);
        omit_path_mtu(&v4, false).unwrap();
        assert_eq!(int_option(&v4, libc::IPPROTO_IP, libc::IP_MTU_DISCOVER), libc::IP_PMTUDISC_OMIT);
        let v6 = UdpSocket::bind("[::1]:0").unwrap();
        omit_path_mtu(&v6, true).unwrap();
        assert_eq!(int_option(&v6, libc::IPPROTO_IPV6, libc::IPV6_MTU_DISCOVER), libc::IPV6_PMTUDISC_OMIT);
    }

    #[test]
    fn batch_round_trip() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        server.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.set_read_timeout(Some(std::time::Duration::from_secs(2))).unwrap();
        for i in 0..3u8 {
            client.send_to(&[i; 5], server.local_addr().unwrap()).unwrap();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut batch = UdpBatch::new();
        let n = batch.receive(&server).unwrap();
        assert_eq!(n, 3);
        for i in 0..n {
            assert_eq!(batch.datagram(i).unwrap(), &[i as u8; 5]);
            assert_eq!(batch.peer(i), Some(client.local_addr().unwrap()));
            batch.answers[i].clear();
            batch.answers[i].extend_from_slice(&[i as u8 + 10; 3]);
        }
        batch.answers[1].clear(); // silence for the second
        batch.send(&server);
        let mut buf = [0u8; 16];
        assert_eq!(client.recv(&mut buf).unwrap(), 3);
        assert_eq!(buf[0], 10);
        assert_eq!(client.recv(&mut buf).unwrap(), 3);
        assert_eq!(buf[0], 12);
    }
}
