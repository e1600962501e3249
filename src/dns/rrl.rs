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
//! network's next query), locked once per received batch. It is a fixed array of slots chosen
//! by a keyed hash of the network: constant cost per packet and bounded memory, even under a
//! flood from spoofed sources, and never a state in which new networks go unlimited. A slot
//! whose network has been quiet for a second (its bucket is full again) is taken over by the
//! next network hashed to it; two busy networks on one slot share its budget, which errs on
//! the side of limiting. Client networks live only in memory, and a slot is emptied within a
//! minute of its network going quiet (a sweep once a minute, also when no traffic comes), so
//! the table is not a record of who asked. Client addresses are never logged; a summary of
//! what was limited is, at most every ten seconds.

use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Slots in the table (a power of two).
const SLOTS: usize = 1 << 16;
/// How often at most a summary of limited answers is logged.
const REPORT_EVERY: Duration = Duration::from_secs(10);
/// How often the networks whose buckets are full again are forgotten, in ms.
const SWEEP_EVERY_MS: u64 = 60_000;

/// What to do with the answer to one datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Within the limit: answer in full.
    Answer,
    /// Over the limit, and this one slips through: answer with TC and no records.
    Truncate,
    /// Over the limit: send nothing.
    Drop,
}

/// A client network: IPv4 /24 or IPv6 /56, with the family so the two cannot collide.
/// (The TCP listener caps connections per network by the same measure.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct Network(bool, u64);

impl Network {
    /// The network `addr` belongs to; an IPv4-mapped IPv6 address counts as IPv4.
    pub(super) fn of(addr: IpAddr) -> Self {
        match crate::cidr::canonical(addr) {
            IpAddr::V4(v4) => Network(false, u64::from(u32::from(v4) & 0xFFFF_FF00)),
            IpAddr::V6(v6) => {
                let top = u64::from_be_bytes(v6.octets()[..8].try_into().unwrap_or([0; 8]));
                Network(true, top & !0xFF)
            }
        }
    }
}

/// One slot: the network it counts for, and its bucket.
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    /// The network, or `None` for an empty slot.
    network: Option<Network>,
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
    /// The slots, [`SLOTS`] of them.
    slots: Vec<Slot>,
    /// The keyed hash that picks a network's slot (random per process: the slot of a network
    /// cannot be predicted to aim collisions at it).
    hasher: std::collections::hash_map::RandomState,
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
pub(crate) struct RateLimiter {
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
    pub(crate) fn new(rate: u32, slip: u32) -> Self {
        let now = Instant::now();
        Self {
            rate: u64::from(rate.max(1)),
            slip: u64::from(slip),
            epoch: now,
            table: Mutex::new(Table {
                slots: vec![Slot::default(); SLOTS],
                hasher: std::collections::hash_map::RandomState::new(),
                dropped: 0,
                truncated: 0,
                reported: now,
                swept_ms: 0,
            }),
        }
    }

    /// Whether a slot's network has been quiet for a second: its bucket is full again, so it is
    /// no different from a network never seen.
    fn quiet(slot: &Slot, now_ms: u64) -> bool {
        now_ms.saturating_sub(slot.at_ms) >= 1000
    }

    /// Empties the slots of quiet networks, at most once a minute.
    fn sweep_if_due(table: &mut Table, now_ms: u64) {
        if now_ms.saturating_sub(table.swept_ms) >= SWEEP_EVERY_MS {
            for slot in table.slots.iter_mut().filter(|s| s.network.is_some() && Self::quiet(s, now_ms)) {
                *slot = Slot::default();
            }
            table.swept_ms = now_ms;
        }
    }

    /// `now` on the limiter's clock, in ms.
    fn ms(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    /// Lets the sweep run while no traffic comes (called by idle workers).
    pub(crate) fn tick(&self, now: Instant) {
        let now_ms = self.ms(now);
        let mut table = self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Self::sweep_if_due(&mut table, now_ms);
    }

    /// Decides, for each peer of a received batch in order, what its answer may be.
    pub(crate) fn judge(
        &self,
        now: Instant,
        peers: impl Iterator<Item = Option<SocketAddr>>,
        out: &mut Vec<Verdict>,
    ) {
        out.clear();
        let now_ms = self.ms(now);
        let full = self.rate * 1000;
        // A poisoned lock only means another worker panicked mid-update; the counts stay usable.
        let mut table = self.table.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Self::sweep_if_due(&mut table, now_ms);
        for peer in peers {
            let Some(peer) = peer else {
                out.push(Verdict::Answer);
                continue;
            };
            let network = Network::of(peer.ip());
            let index = table.hasher.hash_one(network) as usize & (SLOTS - 1);
            let bucket = &mut table.slots[index];
            if bucket.network != Some(network) && (bucket.network.is_none() || Self::quiet(bucket, now_ms)) {
                *bucket = Slot { network: Some(network), credit: full, at_ms: now_ms, limited: 0 };
            }
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
        let held =
            |l: &RateLimiter| l.table.lock().unwrap().slots.iter().filter(|s| s.network.is_some()).count();
        judge(&limiter, start, &["203.0.113.1:1", "198.51.100.1:1"]);
        assert_eq!(held(&limiter), 2);
        // A minute later one of them asks again: the sweep forgets the other.
        judge(&limiter, start + Duration::from_secs(61), &["203.0.113.1:1"]);
        assert_eq!(held(&limiter), 1);
        // Without any traffic, the idle workers' tick sweeps too.
        limiter.tick(start + Duration::from_secs(122));
        assert_eq!(held(&limiter), 0);
    }

    #[test]
    fn a_flood_from_many_networks_does_not_unlimit_a_victim() {
        let limiter = RateLimiter::new(5, 0);
        let now = Instant::now();
        // More busy networks than slots (spoofed sources)...
        let flood: Vec<String> =
            (0..200_000u32).map(|i| format!("10.{}.{}.1:53", i >> 8 & 0xFF, i & 0xFF)).collect();
        let mut out = Vec::new();
        limiter.judge(now, flood.iter().map(|p| Some(p.parse().unwrap())), &mut out);
        // ...and one victim's network is still held to its budget.
        let v = judge(&limiter, now, &["192.0.2.1:53"; 20]);
        assert!(v.iter().filter(|v| **v == Verdict::Answer).count() <= 5, "{v:?}");
    }

    #[test]
    fn unknown_peers_are_answered() {
        let limiter = RateLimiter::new(1, 0);
        let mut out = Vec::new();
        limiter.judge(Instant::now(), [None, None].into_iter(), &mut out);
        assert_eq!(out, [Verdict::Answer, Verdict::Answer]);
    }
}
