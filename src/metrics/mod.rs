//! Prometheus metrics: `GET /metrics` on a listener of its own (`[metrics] listen`).
//!
//! Design note: metrics come from three kinds of place, each kept where it is cheapest.
//!
//! - **The DNS query path** counts into per-worker blocks of plain atomics in `dns::stats`
//!   (`dns/` depends on nothing outside it); a scrape sums them ([`collect`]).
//! - **Things that already have a value** (the zone's serial and signatures, the accounts it
//!   serves, each secondary's acknowledged serial, `/proc/self`) are read at scrape time
//!   ([`collect`], [`process`]) and stored nowhere else.
//! - **Events elsewhere** (API requests, update latency, store errors, the change feed) are
//!   counted as they happen into one process-wide registry ([`counters`]), through small
//!   functions the API, `zone_sync` and the store call; the API's two layers are in [`api`].
//!
//! The exporter is off unless configured, and then listens on its own address, never the
//! API's (the config refuses that). The daemon serves [`router`] with the API's accept loop
//! (`api::serve`: header timeout, connection cap, drain on shutdown). Output is the Prometheus
//! text format 0.0.4, written by the `prometheus` crate's encoder; no label carries an account,
//! a subdomain, a name or an address.

pub(crate) mod api;
pub(crate) mod collect;
pub(crate) mod counters;
mod process;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus::Encoder;

pub(crate) use collect::Sources;

/// The text of one scrape: every metric, families sorted by name.
pub(crate) fn render(sources: &Sources) -> String {
    let now = u64::from(crate::dns::zone::unix_now());
    let mut families = counters::COUNTERS.registry.gather();
    // A labelled family none of whose label sets has occurred yet has no sample to write.
    families.extend(collect::gather(sources, now).into_iter().filter(|f| !f.get_metric().is_empty()));
    families.sort_by(|a, b| a.name().cmp(b.name()));
    let mut out = Vec::with_capacity(16 * 1024);
    if let Err(error) = prometheus::TextEncoder::new().encode(&families, &mut out) {
        // Only a family without samples or a name fails, which the filter above rules out.
        tracing::error!("cannot encode the metrics: {error}");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// `GET /metrics`.
async fn metrics(State(sources): State<Sources>) -> Response {
    // The zone scan for the earliest signature can take a few milliseconds on a large zone:
    // off the async workers.
    let text = tokio::task::spawn_blocking(move || render(&sources)).await.unwrap_or_default();
    let mut response = (StatusCode::OK, text).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(prometheus::TEXT_FORMAT));
    response
}

/// The exporter's routes: `GET /metrics`, and 404 for anything else.
pub(crate) fn router(sources: Sources) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(sources)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::dns::stats::DnsStats;
    use crate::dns::zone::Zone;

    #[test]
    fn a_scrape_names_every_required_family() {
        let settings = crate::config::Config::embedded().dns.zone;
        let zone = Arc::new(Zone::new(&settings, None).unwrap());
        let dns = Arc::new(DnsStats::default());
        dns.udp_worker().answered(Some(16), &[0, 0, 0x84, 3, 0, 0, 0, 0, 0, 0, 0, 0], false);
        counters::api_request("/health", "GET", 200);
        counters::update_served(std::time::Duration::from_millis(3));
        let text = render(&Sources { dns, zone, transfers: None, key_created: None });
        for needle in [
            "acme_delegate_dns_answers_total{qtype=\"TXT\",rcode=\"NXDOMAIN\",transport=\"udp\"} 1",
            "acme_delegate_api_requests_total{method=\"GET\",route=\"/health\",status=\"200\"}",
            "acme_delegate_update_to_served_seconds_bucket{le=\"0.005\"}",
            "acme_delegate_accounts 0",
            "acme_delegate_dns_rate_limit_dropped_total 0",
            "acme_delegate_store_errors_total{kind=\"unavailable\"} 0",
            "acme_delegate_build_info{commit=",
            "process_resident_memory_bytes",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
    }
}
