//! Rate limits for registration, failed authentication and updates.
//!
//! Design note: counters live in memory, per instance. A fixed window per key is crude but
//! cheap and bounded: the map is swept of expired windows when it grows large, and never holds
//! more than [`MAX_KEYS`] keys (past that an arbitrary key is dropped to make room), so a flood
//! of fresh keys cannot exhaust memory. The map hashes with std's keyed SipHash, so clients
//! cannot aim their keys at one bucket.
//!
//! - **Registration** is counted per client network (/24 or /48), so one host cannot dodge the
//!   limit by rotating addresses within its own network, and no full address is kept. The
//!   check and the count are one step ([`RateLimit::reserve`]) taken before the body is read:
//!   a thousand concurrent requests from one network take at most `max` places, whatever
//!   their timing, and the rest are refused at once.
//! - **Failed authentication** is counted per client network *and* the username the request
//!   presented (requests without a well-formed username share the network's "no username"
//!   counter). Once that pair has failed `max` times in ten minutes, its failures are answered
//!   429 instead of 401. A request whose key verifies is served all the same, whatever others
//!   did: behind a proxy every client shares one network, and anyone who knows your username
//!   could otherwise stop your renewals from there. That gives a right/wrong answer per try at
//!   full speed, which does not matter: keys are 40 random characters (240 bits), beyond reach
//!   of any guessing rate. What the limit still does: a client that keeps failing is told so
//!   (429 with `Retry-After`), and its failures write no audit row or log line each and cost
//!   no bcrypt check. An acme-dns account still holding its bcrypt hash is therefore the one
//!   exception: its key is not checked while throttled, each check costing tens of
//!   milliseconds of CPU (see `handlers::authenticate`). Rotating usernames gains an attacker
//!   nothing, and filling the map to push one pair's counter out takes [`MAX_KEYS`] fresh keys
//!   per reset. Delaying answers instead of refusing them slows nobody who sends in parallel,
//!   and holds connections.
//! - **Updates** are counted per account (`update_rate_limit` per minute), so one account
//!   cannot grow the audit trail and the database without bound. Every authenticated update
//!   counts, accepted or not, since each one writes an audit row.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Keys kept before expired windows are swept.
const SWEEP_AT: usize = 10_000;
/// Keys kept at most; past this an arbitrary key is dropped for a new one.
const MAX_KEYS: usize = 100_000;
/// How often at most the map is swept, so that a map full of live keys is not scanned anew for
/// every request.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The counters behind the lock.
#[derive(Debug)]
struct Table {
    /// Window start and count per key.
    counts: HashMap<String, (Instant, u32)>,
    /// When expired windows were last swept.
    swept: Instant,
}

/// A fixed-window counter per key.
#[derive(Debug)]
pub(crate) struct RateLimit {
    /// Window length.
    window: Duration,
    /// Events allowed per window; 0 means unlimited.
    max: u32,
    /// The counters.
    table: Mutex<Table>,
}

/// A place taken by [`RateLimit::reserve`]: given back when dropped, unless [`Self::keep`]
/// was called.
#[derive(Debug)]
#[must_use = "dropping a reservation gives its place back at once"]
pub(crate) struct Reservation<'a> {
    /// The limit it was taken from; `None` once kept, or when the limit is off.
    limit: Option<&'a RateLimit>,
    /// The key it counts for.
    key: String,
    /// The window it was counted in: a place is given back only to the same window.
    window_start: Instant,
}

impl Reservation<'_> {
    /// Keeps the place counted: the event happened.
    pub(crate) fn keep(mut self) {
        self.limit = None;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if let Some(limit) = self.limit {
            limit.give_back(&self.key, self.window_start);
        }
    }
}

impl RateLimit {
    /// A limit of `max` events per `window`.
    pub(crate) fn new(max: u32, window: Duration) -> Self {
        let table = Table { counts: HashMap::new(), swept: Instant::now() };
        Self { window, max, table: Mutex::new(table) }
    }

    /// The table, even if a panicking thread left the lock poisoned (counters stay usable).
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Seconds until `key` may act again, if it is over the limit now.
    pub(crate) fn blocked(&self, key: &str) -> Option<u64> {
        if self.max == 0 {
            return None;
        }
        let table = self.lock();
        let (start, count) = table.counts.get(key)?;
        self.retry_after(*start, *count)
    }

    /// Seconds left in a window that began at `start`, if `count` has reached the limit.
    fn retry_after(&self, start: Instant, count: u32) -> Option<u64> {
        let elapsed = start.elapsed();
        (elapsed < self.window && count >= self.max).then(|| (self.window - elapsed).as_secs().max(1))
    }

    /// Counts one event for `key`.
    pub(crate) fn hit(&self, key: &str) {
        if self.max == 0 {
            return;
        }
        let mut table = self.lock();
        let entry = self.entry(&mut table, key);
        entry.1 = entry.1.saturating_add(1);
    }

    /// Checks and counts one event for `key` in one step: `Err(seconds)` when over the limit
    /// (nothing is counted then), otherwise the event is counted.
    pub(crate) fn take(&self, key: &str) -> Result<(), u64> {
        self.reserve(key).map(Reservation::keep)
    }

    /// Like [`Self::take`], but the place is given back if the returned reservation is dropped
    /// without [`Reservation::keep`] (the event did not happen after all).
    pub(crate) fn reserve(&self, key: &str) -> Result<Reservation<'_>, u64> {
        if self.max == 0 {
            return Ok(Reservation { limit: None, key: String::new(), window_start: Instant::now() });
        }
        let mut table = self.lock();
        let entry = self.entry(&mut table, key);
        if let Some(retry) = self.retry_after(entry.0, entry.1) {
            return Err(retry);
        }
        entry.1 = entry.1.saturating_add(1);
        Ok(Reservation { limit: Some(self), key: key.to_owned(), window_start: entry.0 })
    }

    /// Uncounts a reserved event, if its window is still the current one.
    fn give_back(&self, key: &str, window_start: Instant) {
        let mut table = self.lock();
        if let Some(entry) = table.counts.get_mut(key)
            && entry.0 == window_start
        {
            entry.1 = entry.1.saturating_sub(1);
        }
    }

    /// The counter of `key`, started afresh when its window has passed; makes room first if
    /// the map is large.
    fn entry<'t>(&self, table: &'t mut Table, key: &str) -> &'t mut (Instant, u32) {
        let now = Instant::now();
        if !table.counts.contains_key(key) {
            if table.counts.len() >= SWEEP_AT && now.duration_since(table.swept) >= SWEEP_EVERY {
                let window = self.window;
                table.counts.retain(|_, (start, _)| start.elapsed() < window);
                table.swept = now;
            }
            if table.counts.len() >= MAX_KEYS
                && let Some(victim) = table.counts.keys().next().cloned()
            {
                table.counts.remove(&victim);
            }
        }
        let entry = table.counts.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry
    }
}

/// The API's limits.
#[derive(Debug)]
pub(crate) struct Limits {
    /// Registrations per network per hour.
    pub register: RateLimit,
    /// Failed authentications per network and username per 10 minutes (then failures are 429).
    pub auth_failures: RateLimit,
    /// Updates per account per minute.
    pub updates: RateLimit,
}

impl Limits {
    /// Limits with the configured maxima.
    pub(crate) fn new(register: u32, auth_failures: u32, updates: u32) -> Self {
        Self {
            register: RateLimit::new(register, Duration::from_secs(3600)),
            auth_failures: RateLimit::new(auth_failures, Duration::from_secs(600)),
            updates: RateLimit::new(updates, Duration::from_secs(60)),
        }
    }
}

/// The failed-authentication key of a client network and the username a request presented
/// (empty when it presented none that parses).
pub(crate) fn failure_key(network: &str, username: &str) -> String {
    format!("{network} {username}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_key_within_the_window() {
        let limit = RateLimit::new(2, Duration::from_secs(60));
        assert_eq!(limit.blocked("a"), None);
        limit.hit("a");
        limit.hit("a");
        assert!(limit.blocked("a").is_some());
        assert_eq!(limit.blocked("b"), None);
        let short = RateLimit::new(1, Duration::from_millis(20));
        short.hit("a");
        assert!(short.blocked("a").is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(short.blocked("a"), None);
        let off = RateLimit::new(0, Duration::from_secs(60));
        off.hit("a");
        assert_eq!(off.blocked("a"), None);
        assert!(off.take("a").is_ok());
    }

    #[test]
    fn reserve_checks_and_counts_at_once_and_gives_back_when_dropped() {
        let limit = RateLimit::new(2, Duration::from_secs(60));
        let first = limit.reserve("a").unwrap();
        let second = limit.reserve("a").unwrap();
        assert!(limit.reserve("a").is_err(), "two places are taken while both are pending");
        drop(first);
        let third = limit.reserve("a").unwrap();
        second.keep();
        third.keep();
        assert!(limit.take("a").is_err());
        assert!(limit.take("b").is_ok());
    }

    #[test]
    fn the_map_stays_bounded() {
        let limit = RateLimit::new(1, Duration::from_secs(60));
        for i in 0..MAX_KEYS + 10 {
            limit.hit(&i.to_string());
        }
        assert!(limit.lock().counts.len() <= MAX_KEYS);
    }
}
