//! Per-network rate limits for registration and failed authentication.
//!
//! Design note: counters live in memory, per instance, keyed by the client's truncated
//! network (/24 or /48), so one host cannot dodge a limit by rotating addresses within its own
//! network, and no full address is kept. A fixed window per key is crude but cheap and bounded;
//! the map is swept of expired windows whenever it grows large.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Keys kept before expired windows are swept.
const SWEEP_AT: usize = 10_000;

/// A fixed-window counter per key.
#[derive(Debug)]
pub struct RateLimit {
    /// Window length.
    window: Duration,
    /// Events allowed per window; 0 means unlimited.
    max: u32,
    /// Window start and count per key.
    counts: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimit {
    /// A limit of `max` events per `window`.
    pub fn new(max: u32, window: Duration) -> Self {
        Self { window, max, counts: Mutex::new(HashMap::new()) }
    }

    /// Seconds until `key` may act again, if it is over the limit now.
    pub fn blocked(&self, key: &str) -> Option<u64> {
        if self.max == 0 {
            return None;
        }
        let counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let (start, count) = counts.get(key)?;
        let elapsed = start.elapsed();
        (elapsed < self.window && *count >= self.max).then(|| (self.window - elapsed).as_secs().max(1))
    }

    /// Counts one event for `key`.
    pub fn hit(&self, key: &str) {
        if self.max == 0 {
            return;
        }
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if counts.len() >= SWEEP_AT {
            let window = self.window;
            counts.retain(|_, (start, _)| start.elapsed() < window);
        }
        let now = Instant::now();
        let entry = counts.entry(key.to_owned()).or_insert((now, 0));
        if entry.0.elapsed() >= self.window {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

/// The API's limits.
#[derive(Debug)]
pub struct Limits {
    /// Registrations per network per hour.
    pub register: RateLimit,
    /// Failed authentications per network per 10 minutes.
    pub auth_failures: RateLimit,
}

impl Limits {
    /// Limits with the configured maxima.
    pub fn new(register: u32, auth_failures: u32) -> Self {
        Self {
            register: RateLimit::new(register, Duration::from_secs(3600)),
            auth_failures: RateLimit::new(auth_failures, Duration::from_secs(600)),
        }
    }
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
    }
}
