//! The HTTP API: acme-dns's `/register`, `/update` and `/health`.
//!
//! Beyond acme-dns: `GET /ready` (checks the store) and the account holder's own rights with
//! the account's credentials: `GET /account` (access, portability), `PATCH /account`
//! (rectify `allowfrom`), `POST /account/rotate` (new key), `DELETE /account` (erasure);
//! `POST /persist` and `DELETE /persist` (dns-persist-01 records, see `dns_persist.rs`).
//!
//! Design note: handlers write through the [`Store`] first and then update the in-memory
//! [`Zone`], so a 200 means "on disk and being served". The router is wrapped once per
//! connection with the peer's address and a path normaliser (`//update` and `/update/` reach
//! `/update`, as clients with a trailing slash in their base URL need), and served by our own
//! accept loop so that slow clients meet a header-read timeout and shutdown drains connections.
//!
//! Request bodies are read as raw bytes whatever the Content-Type (acme.sh posts JSON as
//! form-encoded) and parsed as JSON with case-insensitive keys (goacmedns sends `SubDomain`).

pub(crate) mod acme;
pub(crate) mod credentials;
mod dns_persist;
pub(crate) mod error;
pub(crate) mod handlers;
pub(crate) mod limits;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, options, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::sync::{Semaphore, watch};
pub(crate) use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::config::Api as ApiConfig;
use crate::dns::zone::Zone;
use crate::privacy::Privacy;
use crate::privacy::pseudonym::SubdomainLog;
use crate::store::Store;
use crate::zone_sync::ZoneSync;
use error::ApiError;

/// How long a shutdown waits for open API requests to finish: longer than any request takes
/// (bodies and headers have their own deadlines), shorter than a supervisor's stop timeout.
const DRAIN_TIME: Duration = Duration::from_secs(10);

/// Shared state of the handlers.
#[derive(Clone, Debug)]
pub(crate) struct AppState {
    /// The durable store.
    pub store: Store,
    /// The only way to change what is served: store first, then zone.
    pub sync: ZoneSync,
    /// The zone being served, for reading.
    pub zone: Arc<Zone>,
    /// API settings.
    pub config: Arc<ApiConfig>,
    /// The zone apex, for `fulldomain`.
    pub domain: Arc<str>,
    /// TXT values kept per subdomain.
    pub txt_values: usize,
    /// Minimisation and retention settings.
    pub privacy: Privacy,
    /// How subdomains are written into logs (pseudonyms by default).
    pub subdomain_log: SubdomainLog,
    /// Rate limits, shared by all connections.
    pub limits: Arc<limits::Limits>,
}

/// Builds the router with all routes and fallbacks.
pub(crate) fn app(state: AppState) -> Router {
    Router::new()
        .route("/register", post(handlers::register).merge(allow("POST, OPTIONS")))
        .route("/update", post(handlers::update).merge(allow("POST, OPTIONS")))
        .route("/health", get(handlers::health).merge(allow("GET, HEAD, OPTIONS")))
        .route("/ready", get(handlers::ready).merge(allow("GET, HEAD, OPTIONS")))
        .route(
            "/account",
            get(handlers::account_get)
                .patch(handlers::account_patch)
                .delete(handlers::account_delete)
                .merge(allow("GET, HEAD, PATCH, DELETE, OPTIONS")),
        )
        .route("/account/rotate", post(handlers::account_rotate).merge(allow("POST, OPTIONS")))
        .route(
            "/persist",
            post(dns_persist::put).delete(dns_persist::delete).merge(allow("POST, DELETE, OPTIONS")),
        )
        // Metrics: the matched route's template for the count below (keep this after the
        // last route; it applies to the routes added before it).
        .route_layer(middleware::from_fn(crate::metrics::api::mark_route))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(Arc::clone(&state.config), headers_layer))
        // Metrics: outermost, so every answer is counted, preflights and 404s included.
        .layer(middleware::from_fn(crate::metrics::api::count))
        .with_state(state)
}

/// Every method the API serves, for `OPTIONS *`.
const ALL_METHODS: &str = "GET, HEAD, POST, PATCH, DELETE, OPTIONS";

/// Answers a plain OPTIONS request (not a CORS preflight, which [`headers_layer`] answers) with
/// 200 and the route's methods in `Allow` (RFC 9110 section 9.3.7), as acme-dns's router does.
fn allow(methods: &'static str) -> MethodRouter<AppState> {
    options(move || async move { (StatusCode::OK, [(header::ALLOW, methods)]) })
}

/// Collapses repeated slashes, drops a trailing slash and decodes percent-encoded unreserved
/// characters (RFC 3986 section 6.2.2.2: `/%75pdate` is `/update`), before routing.
fn normalise_path(uri: &Uri) -> Option<Uri> {
    let path = uri.path();
    if !path.contains("//") && !path.contains('%') && (path.len() <= 1 || !path.ends_with('/')) {
        return None;
    }
    let mut clean = String::with_capacity(path.len());
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        clean.push('/');
        push_decoded(segment, &mut clean);
    }
    if clean.is_empty() {
        clean.push('/');
    }
    if let Some(query) = uri.query() {
        clean.push('?');
        clean.push_str(query);
    }
    clean.parse().ok()
}

/// Appends a path segment with its percent-encoded unreserved characters (letters, digits,
/// `-._~`) decoded; every other escape (`%2F` above all) stays as it is, so the segments
/// do not change.
fn push_decoded(segment: &str, out: &mut String) {
    let mut rest = segment;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let escape = &rest[at..];
        let decoded = escape
            .get(1..3)
            .filter(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .filter(|b| b.is_ascii_alphanumeric() || b"-._~".contains(b));
        match decoded {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &escape[3..];
            }
            None => {
                out.push('%');
                rest = &escape[1..];
            }
        }
    }
    out.push_str(rest);
}

/// Adds HSTS and CORS headers, and answers CORS preflight requests and `OPTIONS *`.
async fn headers_layer(
    axum::extract::State(config): axum::extract::State<Arc<ApiConfig>>,
    request: Request,
    next: Next,
) -> Response {
    let origin = request.headers().get(header::ORIGIN).cloned();
    let allowed_origin = origin.filter(|o| {
        config.cors_origins.is_empty()
            || config
                .cors_origins
                .iter()
                .any(|c| c == "*" || o.to_str().is_ok_and(|o| o.eq_ignore_ascii_case(c)))
    });
    let preflight = request.method() == Method::OPTIONS
        && request.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    // `OPTIONS *` asks about the server as a whole (RFC 9110 section 9.3.7); no route has
    // that path.
    let whole_server = request.method() == Method::OPTIONS && request.uri() == "*";
    let mut response = if whole_server {
        (StatusCode::OK, [(header::ALLOW, ALL_METHODS)]).into_response()
    } else if preflight {
        let mut r = StatusCode::NO_CONTENT.into_response();
        if allowed_origin.is_some() {
            let h = r.headers_mut();
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, POST, PATCH, DELETE"),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("content-type, x-api-user, x-api-key"),
            );
            h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        }
        r
    } else {
        next.run(request).await
    };
    let headers = response.headers_mut();
    if let Some(origin) = allowed_origin {
        let value = if config.cors_origins.iter().any(|c| c == "*") || config.cors_origins.is_empty() {
            HeaderValue::from_static("*")
        } else {
            origin
        };
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(hsts) = config.hsts.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
        headers.insert(header::STRICT_TRANSPORT_SECURITY, hsts);
    }
    response
}

/// Concurrent API connections at most.
const MAX_CONNECTIONS: usize = 1024;

/// The API's TLS settings (ring, rustls's safe protocol versions, no client certificates),
/// waiting for the certificate: from files, or from ACME.
pub(crate) fn tls_server_config() -> Result<
    tokio_rustls::rustls::ConfigBuilder<
        tokio_rustls::rustls::ServerConfig,
        tokio_rustls::rustls::server::WantsServerCert,
    >,
    String,
> {
    use tokio_rustls::rustls;
    Ok(rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("api.tls: {e}"))?
        .with_no_client_auth())
}

/// Serves the API on `listener` until `shutdown` changes, then drains open connections.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    tls: Option<TlsAcceptor>,
    header_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = Arc::clone(&slots).acquire_owned().await else { break };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::warn!("API accept failed: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => break,
        };
        let service = app.clone().map_request(move |mut request: Request<hyper::body::Incoming>| {
            if let Some(uri) = normalise_path(request.uri()) {
                *request.uri_mut() = uri;
            }
            request.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            request
        });
        let builder = {
            let mut b = hyper::server::conn::http1::Builder::new();
            b.timer(TokioTimer::new()).header_read_timeout(header_timeout);
            b
        };
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            let service = TowerToHyperService::new(service);
            match tls {
                None => {
                    let _ = watcher.watch(builder.serve_connection(TokioIo::new(stream), service)).await;
                }
                Some(acceptor) => {
                    // The handshake gets the same limit as the headers: a silent peer is dropped.
                    let Ok(Ok(stream)) = tokio::time::timeout(header_timeout, acceptor.accept(stream)).await
                    else {
                        return;
                    };
                    let _ = watcher.watch(builder.serve_connection(TokioIo::new(stream), service)).await;
                }
            }
            drop(permit);
        });
    }
    if tokio::time::timeout(DRAIN_TIME, graceful.shutdown()).await.is_err() {
        tracing::warn!("API connections still open after {} s; closing them", DRAIN_TIME.as_secs());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised() {
        let n = |p: &str| normalise_path(&p.parse().unwrap()).map(|u| u.to_string());
        assert_eq!(n("//update").as_deref(), Some("/update"));
        assert_eq!(n("/update/").as_deref(), Some("/update"));
        assert_eq!(n("/a//b/?x=1").as_deref(), Some("/a/b?x=1"));
        assert_eq!(n("/update"), None);
        assert_eq!(n("/"), None);
        assert_eq!(n("/%75pdate").as_deref(), Some("/update"));
        assert_eq!(n("/%72egister").as_deref(), Some("/register"));
        assert_eq!(n("/acc%6Funt/%72%6F%74%61%74%65").as_deref(), Some("/account/rotate"));
        // Reserved characters and broken escapes stay encoded.
        assert_eq!(n("/a%2Fb/%zz/%4").as_deref(), Some("/a%2Fb/%zz/%4"));
        assert_eq!(n("/%2B5x").as_deref(), Some("/%2B5x"));
    }
}
