//! The process-wide metrics of the API, the writer and the store, kept as they happen.
//!
//! Design note: these are counted where they happen (a request answered, an update served, a
//! store error mapped), in code that has no handle on the exporter and should not grow one:
//! so they live in one process-wide [`Registry`] behind a `LazyLock`, and the call sites use
//! the small functions below. None of these paths is hot (an API request costs a database
//! transaction), so `prometheus`'s own label maps (a read lock and a hash per labelled
//! increment) are cheap enough here; the DNS path never comes here (see `dns::stats`).
//!
//! Every label value is a constant from the code (a route template, a method, a status, an
//! error kind): never an account, a subdomain, a name or an address.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// Buckets of the latency histograms, in seconds: from half a millisecond (an SQLite commit
/// on a fast disk) to 10 s (a PostgreSQL failover).
const LATENCY_BUCKETS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Every kind a store error is counted as (`store_error`).
const STORE_ERROR_KINDS: [&str; 3] = ["unavailable", "full", "backend"];
/// Every shared decision a clock can refuse (`clock_refusal`).
const CLOCK_REFUSALS: [&str; 3] = ["write_epoch", "purge", "apply_epoch"];

/// The metrics kept as they happen.
#[derive(Debug)]
pub(crate) struct Counters {
    /// Where they are registered, for the exporter to gather.
    pub registry: Registry,
    /// API requests answered, by route template, method and status.
    api_requests: IntCounterVec,
    /// From the start of the store write to the new value being served by the zone.
    update_latency: Histogram,
    /// Store failures, by kind.
    store_errors: IntCounterVec,
    /// Times the change feed lost its connection and reconnected (only PostgreSQL's feed has
    /// a connection to lose).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    feed_reconnects: IntCounter,
    /// Full resynchronisations of the zone from the store (every (re)connect of the feed).
    feed_resyncs: IntCounter,
    /// Changes received from the feed and not yet applied.
    feed_backlog: IntGauge,
    /// From a change's arrival from the feed to the zone serving it.
    feed_apply: Histogram,
    /// This instance's clock minus the store's, at the last comparison (`zone_sync::clock`).
    clock_skew: IntGauge,
    /// Shared decisions refused because of a clock, by what was refused.
    clock_refusals: IntCounterVec,
    /// The key rollover's step (0: none runs).
    rollover_step: IntGauge,
    /// Seconds until the rollover's next step may be taken (-1: it waits for servers or the
    /// parent, or none runs).
    rollover_next: IntGauge,
    /// Ticks of the rollover driver held by a server behind the step.
    rollover_held: IntCounter,
}

/// Builds one metric and registers it.
fn registered<M: prometheus::core::Collector + Clone + 'static>(registry: &Registry, metric: M) -> M {
    registry.register(Box::new(metric.clone())).expect("metric names are unique and valid");
    metric
}

impl Counters {
    /// Every metric at zero, registered.
    fn new() -> Self {
        let registry = Registry::new();
        let histogram = |name: &str, help: &str| {
            let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
            registered(&registry, Histogram::with_opts(opts).expect("valid histogram"))
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            registered(&registry, IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter"))
        };
        let counter = |name: &str, help: &str| {
            registered(&registry, IntCounter::new(name, help).expect("valid counter"))
        };
        let counters = Self {
            api_requests: counter_vec(
                "acme_delegate_api_requests_total",
                "API requests answered, by route template (\"other\": no route), method and status.",
                &["route", "method", "status"],
            ),
            update_latency: histogram(
                "acme_delegate_update_to_served_seconds",
                "From the start of an update's store write to its value being served by the zone.",
            ),
            store_errors: counter_vec(
                "acme_delegate_store_errors_total",
                "Failed store calls (a call retried after a lost connection counts its failed attempt): \"unavailable\" (the database could not be reached, or ended the connection), \"full\" (it had no space to write) or \"backend\" (it refused or failed the statement).",
                &["kind"],
            ),
            feed_reconnects: counter(
                "acme_delegate_change_feed_reconnects_total",
                "Times the change feed (PostgreSQL LISTEN) lost its connection and reconnected.",
            ),
            feed_resyncs: counter(
                "acme_delegate_change_feed_resyncs_total",
                "Full resynchronisations of the zone from the store, one per connect of the change feed.",
            ),
            feed_backlog: registered(
                &registry,
                IntGauge::new(
                    "acme_delegate_change_feed_backlog",
                    "Changes from other instances received and not yet applied to the zone.",
                )
                .expect("valid gauge"),
            ),
            feed_apply: histogram(
                "acme_delegate_change_feed_apply_seconds",
                "From a change's arrival on the change feed to the zone serving it (reading the store included).",
            ),
            clock_skew: registered(
                &registry,
                IntGauge::new(
                    "acme_delegate_clock_skew_seconds",
                    "This instance's clock minus the database's time, at the last comparison (beyond [general] max_clock_skew either way, the instance records no signing epoch and runs no purge).",
                )
                .expect("valid gauge"),
            ),
            clock_refusals: counter_vec(
                "acme_delegate_clock_refusals_total",
                "Shared decisions refused because of a clock: \"write_epoch\" and \"purge\" (this instance's clock is off), \"apply_epoch\" (a signing epoch in the database lies in the future).",
                &["what"],
            ),
            rollover_step: registered(
                &registry,
                IntGauge::new(
                    "acme_delegate_dnssec_rollover_step",
                    "The DNSSEC key rollover's current step (0: no rollover runs; `acme-delegate dnssec status` names the steps).",
                )
                .expect("valid gauge"),
            ),
            rollover_next: registered(
                &registry,
                IntGauge::new(
                    "acme_delegate_dnssec_rollover_next_step_seconds",
                    "Seconds until the key rollover's next step may be taken; -1 while it waits for a server, the parent, or when none runs.",
                )
                .expect("valid gauge"),
            ),
            rollover_held: counter(
                "acme_delegate_dnssec_rollover_held_total",
                "Checks (about one a second) at which the key rollover waited for an instance or secondary not yet serving its step.",
            ),
            registry,
        };
        counters.rollover_next.set(-1);
        // Each label set of a closed set is present from the start at 0: a series that appears
        // only with its first event leaves a dashboard panel with "No data" and makes `rate()`
        // miss that first event. (API requests are keyed by route and status, an open set: they
        // appear with their first request.)
        for kind in STORE_ERROR_KINDS {
            counters.store_errors.with_label_values(&[kind]);
        }
        for what in CLOCK_REFUSALS {
            counters.clock_refusals.with_label_values(&[what]);
        }
        counters
    }
}

/// The one set of counters of the process.
pub(crate) static COUNTERS: LazyLock<Counters> = LazyLock::new(Counters::new);

/// Counts one API request answered.
pub(crate) fn api_request(route: &str, method: &str, status: u16) {
    let buffer = itoa_status(status);
    let status = std::str::from_utf8(&buffer).unwrap_or("0");
    COUNTERS.api_requests.with_label_values(&[route, method, status]).inc();
}

/// The three digits of an HTTP status, without allocating.
fn itoa_status(status: u16) -> [u8; 3] {
    let status = status.min(999);
    [b'0' + (status / 100) as u8, b'0' + (status / 10 % 10) as u8, b'0' + (status % 10) as u8]
}

/// Records how long an update took from the store call's start to the zone serving it.
pub(crate) fn update_served(elapsed: Duration) {
    COUNTERS.update_latency.observe(elapsed.as_secs_f64());
}

/// Counts a store failure: `kind` is `"unavailable"`, `"full"` or `"backend"`.
pub(crate) fn store_error(kind: &'static str) {
    debug_assert!(STORE_ERROR_KINDS.contains(&kind), "{kind}");
    COUNTERS.store_errors.with_label_values(&[kind]).inc();
}

/// Counts a reconnect of the change feed.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) fn feed_reconnected() {
    COUNTERS.feed_reconnects.inc();
}

/// Records a change from the feed applied `elapsed` after it arrived, with `backlog` more
/// waiting; `resync` when it was a full resynchronisation.
pub(crate) fn feed_applied(elapsed: Duration, backlog: usize, resync: bool) {
    COUNTERS.feed_apply.observe(elapsed.as_secs_f64());
    COUNTERS.feed_backlog.set(i64::try_from(backlog).unwrap_or(i64::MAX));
    if resync {
        COUNTERS.feed_resyncs.inc();
    }
}

/// Records this instance's clock minus the store's time, in seconds.
pub(crate) fn clock_skew(seconds: i64) {
    COUNTERS.clock_skew.set(seconds);
}

/// Counts a shared decision refused because of a clock: `what` is `"write_epoch"`, `"purge"` or
/// `"apply_epoch"`.
pub(crate) fn clock_refusal(what: &'static str) {
    debug_assert!(CLOCK_REFUSALS.contains(&what), "{what}");
    COUNTERS.clock_refusals.with_label_values(&[what]).inc();
}

/// Sets the key rollover's step and the seconds until its next one (`None`: not by time).
pub(crate) fn rollover_state(step: u32, next: Option<i64>) {
    COUNTERS.rollover_step.set(i64::from(step));
    COUNTERS.rollover_next.set(next.map_or(-1, |n| n.max(0)));
}

/// Counts a rollover check held by a server behind the step.
pub(crate) fn rollover_held() {
    COUNTERS.rollover_held.inc();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_three_digits() {
        assert_eq!(&itoa_status(200), b"200");
        assert_eq!(&itoa_status(404), b"404");
        assert_eq!(&itoa_status(1200), b"999");
    }
}
