//! Response rate limiting (RRL) for UDP answers, against reflection attacks.
//!
//! Design note: a DNS answer can be many times the size of its query (a signed NXDOMAIN is
//! about 700 bytes for a 50-byte query), and over UDP the source address is not proven. An
//! attacker who sends queries "from" a victim's address gets our answers delivered to the
//! victim. So each client network (IPv4 /24, IPv6 /56, as BIND and NSD count them) gets a token
//! bucket of `rate` answers per second, with one second's worth of burst. Past the limit, every
//! `slip`-th answer goes out truncated (TC, no records: smaller than the query's answer, and it
//! tells a real resolver behind that address to ask again over TCP, which is never limited);
//! the others are dropped.
//!
//! One table is shared by the UDP workers (they share a socket, so any of them may receive a
//! network's next query), locked once per received batch. The table is bounded: when it is
//! full, networks whose buckets have refilled are forgotten (they are indistinguishable from
//! new ones), and if none has, a new network is answered without being counted (a flood from
//! that many networks is not a reflection towards one victim). Client networks live only in
//! memory, and a network is forgotten within a minute of its bucket filling up again (a sweep
//! at most once a minute), so the table is not a record of who asked. Client addresses are
//! never logged; a summary of what was limited is, at most every ten seconds.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Networks tracked at most.
const MAX_NETWORKS: usize = 100_000;
/// How often at most a summary of limited answers is logged.
const REPORT_EVERY: Duration = Duration::from_secs(10);
/// How often the networks whose buckets are full again are forgotten, in ms.
const SWEEP_EVERY_MS: u64 = 60_000;

/// What to do with the answer to one datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limit: answer in full.
    Answer,
    /// Over the limit, and this one slips through: answer with TC and no records.
    Truncate,
    /// Over the limit: send nothing.
    Drop,
}

/// A client network: IPv4 /24 or IPv6 /56, with the family so the two cannot collide.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Network(bool, u64);

impl Network {
    /// The network `addr` belongs to; an IPv4-mapped IPv6 address counts as IPv4.
    fn of(addr: IpAddr) -> Self {
        match crate::cidr::canonical(addr) {
            IpAddr::V4(v4) => Network(false, u64::from(u32::from(v4) & 0xFFFF_FF00)),
            IpAddr::V6(v6) => {
                let top = u64::from_be_bytes(v6.octets()[..8].try_into().unwrap_or([0; 8]));
                Network(true, top & !0xFF)
            }
        }
    }
}

/// One network's bucket.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    /// Credit in thousandths of an answer.
    credit: u64,
    /// When the credit was last brought up to date, in ms since the limiter started.
    at_ms: u64,
    /// Answers limited so far, for choosing which ones slip.
    limited: u64,
}

/// The shared state behind the lock.
#[derive(Debug)]
struct Table {
    /// Buckets by network.
    buckets: HashMap<Network, Bucket>,
    /// Answers dropped since the last report.
    dropped: u64,
    /// Answers truncated since the last report.
    truncated: u64,
    /// When the last report was logged (or the limiter started).
    reported: Instant,
    /// When the table was last swept, in ms since the limiter started.
    swept_ms: u64,
}

/// The response rate limiter shared by the UDP workers.
#[derive(Debug)]
pub struct RateLimiter {
    /// Answers per second per network.
    rate: u64,
    /// Every `slip`-th limited answer is sent truncated; 0 drops them all.
    slip: u64,
    /// The start of the limiter's clock.
    epoch: Instant,
    /// Buckets and counters.
    table: Mutex<Table>,
}

impl RateLimiter {
    /// A limiter allowing `rate` answers per second per network (`rate` > 0).
    pub fn new(rate: u32, slip: u32) -> Self {
        let now = Instant::now();
        Self {
            rate: u64::from(rate.max(1)),
            slip: u64::from(slip),
            epoch: now,
            table: Mutex::new(Table {
                buckets: HashMap::new(),
                dropped: 0,
                truncated: 0,
                reported: now,
                swept_ms: 0,
            }),
        }
    }

    /// Decides, for each peer of a received batch in order, what its answer may be.
    pub fn judge(
        &self,
        now: Instant,
        peers: impl Iterator<Item = Option<SocketAddr>>,
        out: &mut Vec<Verdict>,
    ) {
        out.clear();
        let now_ms = u64::try_from(now.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX);
        let full = self.rate * 1000;
        // A poisoned lock only means another worker panicked mid-update; the counts stay usable.
        let mut table = self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if now_ms.saturating_sub(table.swept_ms) >= SWEEP_EVERY_MS {
            table.buckets.retain(|_, b| now_ms.saturating_sub(b.at_ms) < 1000);
            table.swept_ms = now_ms;
        }
        for peer in peers {
            let Some(peer) = peer else {
                out.push(Verdict::Answer);
                continue;
            };
            let network = Network::of(peer.ip());
            if !table.buckets.contains_key(&network) && table.buckets.len() >= MAX_NETWORKS {
                // Forget the networks whose buckets are full again: they behave like new ones.
                table.buckets.retain(|_, b| now_ms.saturating_sub(b.at_ms) < 1000);
                if table.buckets.len() >= MAX_NETWORKS {
                    out.push(Verdict::Answer);
                    continue;
                }
            }
            let bucket =
                table.buckets.entry(network).or_insert(Bucket { credit: full, at_ms: now_ms, limited: 0 });
            let elapsed = now_ms.saturating_sub(bucket.at_ms);
            bucket.credit = bucket.credit.saturating_add(elapsed.saturating_mul(self.rate)).min(full);
            bucket.at_ms = now_ms;
            if bucket.credit >= 1000 {
                bucket.credit -= 1000;
                out.push(Verdict::Answer);
                continue;
            }
            bucket.limited += 1;
            if self.slip > 0 && bucket.limited.is_multiple_of(self.slip) {
                table.truncated += 1;
                out.push(Verdict::Truncate);
            } else {
                table.dropped += 1;
                out.push(Verdict::Drop);
            }
        }
        if (table.dropped > 0 || table.truncated > 0) && now.duration_since(table.reported) >= REPORT_EVERY {
            tracing::warn!(
                "response rate limit ({} answers/s per network): {} answers dropped and {} sent truncated \
                 in the last {} s",
                self.rate,
                table.dropped,
                table.truncated,
                now.duration_since(table.reported).as_secs()
            );
            table.dropped = 0;
            table.truncated = 0;
            table.reported = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(s: &str) -> Option<SocketAddr> {
        Some(s.parse().unwrap())
    }

    fn judge(limiter: &RateLimiter, now: Instant, peers: &[&str]) -> Vec<Verdict> {
        let mut out = Vec::new();
        limiter.judge(now, peers.iter().map(|p| peer(p)), &mut out);
        out
    }

    #[test]
    fn a_burst_past_the_rate_is_dropped_with_every_second_one_truncated() {
        let limiter = RateLimiter::new(3, 2);
        let now = Instant::now();
        let v = judge(&limiter, now, &["192.0.2.1:53"; 7]);
        use Verdict::*;
        assert_eq!(v, [Answer, Answer, Answer, Drop, Truncate, Drop, Truncate]);
    }

    #[test]
    fn networks_are_counted_apart_and_addresses_within_one_together() {
        let limiter = RateLimiter::new(1, 0);
        let now = Instant::now();
        let v = judge(&limiter, now, &["192.0.2.1:1", "192.0.2.200:2", "192.0.3.1:3", "[2001:db8::1]:4"]);
        assert_eq!(v, [Verdict::Answer, Verdict::Drop, Verdict::Answer, Verdict::Answer]);
        // /56 for IPv6: the next /64 inside it shares the bucket; the next /56 does not.
        let v = judge(&limiter, now, &["[2001:db8:0:ff::1]:1", "[2001:db8:0:100::1]:1"]);
        assert_eq!(v, [Verdict::Drop, Verdict::Answer]);
        // An IPv4-mapped address is its IPv4 network.
        assert_eq!(judge(&limiter, now, &["[::ffff:192.0.3.9]:1"]), [Verdict::Drop]);
    }

    #[test]
    fn credit_comes_back_with_time_up_to_one_second_of_burst() {
        let limiter = RateLimiter::new(10, 1);
        let start = Instant::now();
        assert!(judge(&limiter, start, &["198.51.100.7:1"; 10]).iter().all(|v| *v == Verdict::Answer));
        assert_eq!(judge(&limiter, start, &["198.51.100.7:1"]), [Verdict::Truncate]);
        // 100 ms later one answer's worth is back.
        let later = start + Duration::from_millis(100);
        assert_eq!(judge(&limiter, later, &["198.51.100.7:1"; 2]), [Verdict::Answer, Verdict::Truncate]);
        // After a long pause the bucket holds one second's worth, not more.
        let much_later = later + Duration::from_secs(60);
        let v = judge(&limiter, much_later, &["198.51.100.7:1"; 11]);
        assert_eq!(v.iter().filter(|v| **v == Verdict::Answer).count(), 10);
    }

    #[test]
    fn idle_networks_are_forgotten_within_a_minute() {
        let limiter = RateLimiter::new(5, 0);
        let start = Instant::now();
        judge(&limiter, start, &["203.0.113.1:1", "198.51.100.1:1"]);
        assert_eq!(limiter.table.lock().unwrap().buckets.len(), 2);
        // A minute later one of them asks again: the sweep forgets the other.
        judge(&limiter, start + Duration::from_secs(61), &["203.0.113.1:1"]);
        assert_eq!(limiter.table.lock().unwrap().buckets.len(), 1);
    }

    #[test]
    fn unknown_peers_are_answered() {
        let limiter = RateLimiter::new(1, 0);
        let mut out = Vec::new();
        limiter.judge(Instant::now(), [None, None].into_iter(), &mut out);
        assert_eq!(out, [Verdict::Answer, Verdict::Answer]);
    }
}
