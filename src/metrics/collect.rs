//! What a scrape reads at scrape time: the build, the DNS counters, the zone, transfers, the
//! secondaries, the process.
//!
//! Design note: these values already exist elsewhere (the UDP workers' own counters, the zone's
//! serial and signatures, the NOTIFY tasks' records, `/proc`), so nothing here is kept between
//! scrapes: each scrape builds fresh, unregistered metrics from them and hands their families
//! to the encoder. That keeps the query path free of this crate's types and its locks, and a
//! value is never stale by more than the scrape itself.
//!
//! A closed set of label values (transfer kinds and outcomes, NOTIFY outcomes) is written in
//! full, zeros included, so a series exists from the first scrape. Points in time (signature
//! expiry, key creation) are exported as `_timestamp_seconds`, as Prometheus practice has it;
//! the older durations until or since them stay for the dashboards that plot them.
//!
//! Secondaries are labelled by their position in `[transfer] notify` (1, 2, …), not by address:
//! no label carries an address.

use std::sync::Arc;

use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{Gauge, GaugeVec, IntCounter, IntCounterVec, IntGauge, Opts};

use crate::dns::stats::{
    DnsStats, NOTIFY_OUTCOMES, QTYPE_NAMES, RCODE_NAMES, Snapshot, TRANSFER_KINDS, TRANSFER_OUTCOMES,
};
use crate::dns::transfers::Transfers;
use crate::dns::zone::Zone;

/// What the exporter reads from at scrape time.
#[derive(Clone, Debug)]
pub(crate) struct Sources {
    /// The DNS listeners' counters and the secondaries' records.
    pub dns: Arc<DnsStats>,
    /// The zone served.
    pub zone: Arc<Zone>,
    /// Zone transfers, when `[transfer]` is on.
    pub transfers: Option<Arc<Transfers>>,
    /// When the DNSSEC signing key was made (seconds since the epoch), when signing.
    pub key_created: Option<i64>,
}

/// Families of a freshly built metric.
fn families(metric: &impl Collector) -> Vec<MetricFamily> {
    metric.collect()
}

/// A labelled counter family built for one scrape.
fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric name and labels")
}

/// A gauge with this value.
fn gauge(name: &str, help: &str, value: f64) -> Vec<MetricFamily> {
    let metric = Gauge::new(name, help).expect("valid metric name");
    metric.set(value);
    families(&metric)
}

/// `acme_delegate_build_info`: 1, labelled with the version and the git commit built from
/// (`unknown` outside a checkout; build.rs sets it).
fn build_info() -> Vec<MetricFamily> {
    let info = GaugeVec::new(
        Opts::new(
            "acme_delegate_build_info",
            "Always 1; labelled with the version and the git commit (\"unknown\": not built from a checkout) of the running binary.",
        ),
        &["version", "commit"],
    )
    .expect("valid metric");
    let commit = option_env!("ACME_DELEGATE_COMMIT").unwrap_or("unknown");
    info.with_label_values(&[env!("CARGO_PKG_VERSION"), commit]).set(1.0);
    families(&info)
}

/// The DNS counters of both transports.
fn dns(stats: &DnsStats) -> Vec<MetricFamily> {
    let (udp, tcp) = stats.totals();
    let queries = counter_vec(
        "acme_delegate_dns_answers_total",
        "DNS answers sent, by transport, question type class (\"other\": any type not named, \"none\": no readable question) and header RCODE.",
        &["transport", "qtype", "rcode"],
    );
    let truncated = counter_vec(
        "acme_delegate_dns_truncated_total",
        "DNS answers sent with TC set: \"size\" (did not fit the client's UDP size) or \"rate_limit\" (the rate limiter's slip).",
        &["transport", "reason"],
    );
    let unanswered = counter_vec(
        "acme_delegate_dns_unanswered_total",
        "DNS messages received and left without an answer other than by the rate limiter (not a query, too large, malformed beyond an error answer).",
        &["transport"],
    );
    let fill = |transport: &str, snapshot: &Snapshot| {
        for (qtype, row) in QTYPE_NAMES.iter().zip(&snapshot.answers) {
            for (rcode, &count) in RCODE_NAMES.iter().zip(row) {
                // Only label sets that occurred: 2 × 13 × 16 mostly-zero series would swamp a
                // dashboard; a series appears with its first answer, as a labelled counter does.
                if count > 0 {
                    queries.with_label_values(&[transport, qtype, rcode]).inc_by(count);
                }
            }
        }
        truncated.with_label_values(&[transport, "size"]).inc_by(snapshot.truncated_size);
        unanswered.with_label_values(&[transport]).inc_by(snapshot.unanswered);
    };
    fill("udp", &udp);
    fill("tcp", &tcp);
    truncated.with_label_values(&["udp", "rate_limit"]).inc_by(udp.truncated_rate_limit);
    let dropped = IntCounter::new(
        "acme_delegate_dns_rate_limit_dropped_total",
        "UDP queries the response rate limiter dropped without an answer.",
    )
    .expect("valid metric name");
    dropped.inc_by(udp.dropped_rate_limit);
    let mut out = families(&queries);
    out.extend(families(&truncated));
    out.extend(families(&unanswered));
    out.extend(families(&dropped));
    out
}

/// The zone, its signatures and the secondaries.
fn zone(sources: &Sources, now: u64) -> Vec<MetricFamily> {
    let zone = &sources.zone;
    let accounts =
        IntGauge::new("acme_delegate_accounts", "Registered accounts (one subdomain each) the zone serves.")
            .expect("valid metric name");
    accounts.set(i64::try_from(zone.subdomain_count()).unwrap_or(i64::MAX));
    let mut out = families(&accounts);
    out.extend(gauge(
        "acme_delegate_zone_serial",
        "The SOA serial the zone serves.",
        f64::from(zone.serial()),
    ));
    let refused = IntCounter::new(
        "acme_delegate_zone_rows_refused_total",
        "Stored rows (names and TXT values) left out of the zone because it cannot serve them; each is logged with its name.",
    )
    .expect("valid metric name");
    refused.inc_by(zone.refused_rows());
    out.extend(families(&refused));
    if let Some(expires) = zone.earliest_signature_expiry() {
        out.extend(gauge(
            "acme_delegate_dnssec_signature_expiry_seconds",
            "Seconds until the zone's earliest RRSIG expires (negative: expired).",
            f64::from(expires) - now as f64,
        ));
        out.extend(gauge(
            "acme_delegate_dnssec_signature_expiry_timestamp_seconds",
            "When the zone's earliest RRSIG expires, in seconds since the epoch.",
            f64::from(expires),
        ));
    }
    if zone.is_signed() {
        let signatures = counter_vec(
            "acme_delegate_dnssec_signatures_total",
            "RRSIGs this instance put in its zone since it started, by how: made (signed here) or kept (read back from the signatures the database keeps).",
            &["how"],
        );
        signatures.with_label_values(&["made"]).inc_by(zone.signatures_made());
        signatures.with_label_values(&["kept"]).inc_by(zone.signatures_reused());
        out.extend(families(&signatures));
    }
    if let Some(created) = sources.key_created {
        out.extend(gauge(
            "acme_delegate_dnssec_key_age_seconds",
            "Seconds since the zone's signing key was made.",
            now as f64 - created as f64,
        ));
        out.extend(gauge(
            "acme_delegate_dnssec_key_created_timestamp_seconds",
            "When the zone's signing key was made, in seconds since the epoch.",
            created as f64,
        ));
    }
    if let Some(transfers) = sources.transfers.as_ref().map(|t| t.settings()) {
        out.extend(gauge(
            "acme_delegate_transfers_running",
            "Zone transfers (AXFR, IXFR over TCP) being sent now.",
            transfers.gate.running() as f64,
        ));
        let refused = IntCounter::new(
            "acme_delegate_transfers_refused_busy_total",
            "Transfer requests refused because [transfer] max_transfers or max_transfers_per_network was reached.",
        )
        .expect("valid metric name");
        refused.inc_by(transfers.gate.refused_busy());
        out.extend(families(&refused));
        let outcomes = counter_vec(
            "acme_delegate_transfers_total",
            "Zone transfer requests over TCP, by kind and outcome: \"complete\" (sent to the end), \"cut_short\" (the client stopped reading or left) or \"refused\" (answered with an error: TSIG, not allowed, too many at once, malformed, not our zone).",
            &["kind", "outcome"],
        );
        for (kind, row) in TRANSFER_KINDS.iter().zip(transfers.gate.outcomes.snapshot()) {
            for (outcome, count) in TRANSFER_OUTCOMES.iter().zip(row) {
                outcomes.with_label_values(&[kind, outcome]).inc_by(count);
            }
        }
        out.extend(families(&outcomes));
    }
    let secondaries = sources.dns.secondaries();
    if !secondaries.is_empty() {
        let serial = GaugeVec::new(
            Opts::new(
                "acme_delegate_secondary_serial",
                "The serial a secondary last acknowledged a NOTIFY for (it transfers it next), by position in [transfer] notify; absent until the first acknowledgement.",
            ),
            &["secondary"],
        )
        .expect("valid metric");
        let behind = GaugeVec::new(
            Opts::new(
                "acme_delegate_secondary_seconds_behind",
                "Seconds since the zone first held a serial the secondary has not acknowledged (0: up to date), by position in [transfer] notify.",
            ),
            &["secondary"],
        )
        .expect("valid metric");
        let notifies = counter_vec(
            "acme_delegate_notifies_total",
            "NOTIFY messages sent (each retry counts), by position of the secondary in [transfer] notify and outcome: \"acknowledged\", \"timeout\", \"error_rcode\" (answered with an error), \"bad_tsig\" (the answer's TSIG missing or wrong) or \"unreachable\" (sending or receiving failed).",
            &["secondary", "outcome"],
        );
        for (index, secondary) in secondaries.iter().enumerate() {
            let label = (index + 1).to_string();
            for (outcome, count) in NOTIFY_OUTCOMES.iter().zip(secondary.notifies()) {
                notifies.with_label_values(&[label.as_str(), outcome]).inc_by(count);
            }
            if let Some(acknowledged) = secondary.serial() {
                serial.with_label_values(&[&label]).set(f64::from(acknowledged));
            }
            behind.with_label_values(&[&label]).set(secondary.seconds_behind(now) as f64);
        }
        out.extend(families(&serial));
        out.extend(families(&behind));
        out.extend(families(&notifies));
    }
    out
}

/// Everything read at scrape time, at `now` (seconds since the epoch).
pub(crate) fn gather(sources: &Sources, now: u64) -> Vec<MetricFamily> {
    let mut out = build_info();
    out.extend(dns(&sources.dns));
    out.extend(zone(sources, now));
    out.extend(super::process::gather());
    out
}
