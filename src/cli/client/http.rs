//! A minimal HTTP/1.1 client for the acme-dns API: one request per connection, over plain TCP
//! or TLS (rustls with the ring provider, trusting the system's CA store plus any `--ca-file`,
//! whose certificates also count as pinned server certificates: see [`super::trust`]).
//!
//! Design note: the client sends two kinds of request, a few times a day; a connection pool, a
//! cookie jar or HTTP/2 would be weight without use. hyper's low-level connection API does the
//! HTTP framing and its URI parser splits URLs; what a base URL may hold (scheme, host, port, base
//! path) is ours.
//! Redirects (acme-dns answers `//update` with 307) are followed only to the same scheme, host
//! and port, so credentials never travel to a server the user did not name. Every request,
//! connect and TLS handshake included, is bounded by one timeout.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls;

/// How long one request may take, redirects included.
const TIMEOUT: Duration = Duration::from_secs(30);
/// The largest response body read (acme-dns answers are a few hundred bytes).
const BODY_LIMIT: usize = 64 * 1024;
/// Redirects followed at most.
const MAX_REDIRECTS: usize = 3;

/// An `http://` or `https://` base URL, optionally with a path prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Url {
    /// TLS or not.
    pub https: bool,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Port (80 or 443 when not written).
    pub port: u16,
    /// Path prefix without a trailing slash ("" for the root).
    pub path: String,
}

impl Url {
    /// Parses a base URL such as `https://auth.example.org`, `http://127.0.0.1:8053/`,
    /// `https://[2001:db8::1]:8443/acme-dns` (hyper's URI parser splits it; the rules on what a
    /// base may hold are ours).
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("{text:?} is not a usable API URL: {why}");
        let trimmed = text.trim();
        if !trimmed.contains("://") {
            return Err(bad("it must start with https:// (or http://)"));
        }
        // The parser drops a fragment without a word; a base URL with one is a mistake.
        if trimmed.contains('#') {
            return Err(bad("no query or fragment allowed"));
        }
        let uri = trimmed.parse::<hyper::Uri>().map_err(|e| bad(&e.to_string()))?;
        let https = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad("it must start with https:// (or http://)")),
        };
        if uri.query().is_some() {
            return Err(bad("no query or fragment allowed"));
        }
        let authority = uri.authority().ok_or_else(|| bad("no host or port"))?;
        if authority.as_str().contains('@') {
            return Err(bad("credentials in the URL are not supported"));
        }
        // The parser takes "host:port" with a port it cannot read as no port at all, so the
        // port is read here from what follows the host.
        let bracketed = authority.host();
        let port = match authority.as_str().strip_prefix(bracketed).unwrap_or_default() {
            "" => {
                if https {
                    443
                } else {
                    80
                }
            }
            after => after.strip_prefix(':').and_then(|p| p.parse().ok()).ok_or_else(|| bad("bad port"))?,
        };
        let host = bracketed.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(bracketed);
        if host.is_empty() || port == 0 {
            return Err(bad("no host or port"));
        }
        let path = uri.path().trim_end_matches('/').to_owned();
        Ok(Self { https, host: host.to_ascii_lowercase(), port, path })
    }

    /// The `Host` header value.
    fn authority(&self) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        if self.port == if self.https { 443 } else { 80 } { host } else { format!("{host}:{}", self.port) }
    }

    /// The URL of a route below the base, e.g. `/update`.
    pub(crate) fn route(&self, route: &str) -> String {
        format!("{}{}", self.path, route)
    }

    /// Whether the host is a loopback address or `localhost` (plain HTTP is fine there).
    pub(crate) fn is_loopback(&self) -> bool {
        self.host == "localhost" || self.host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}{}", if self.https { "https" } else { "http" }, self.authority(), self.path)
    }
}

/// What came back.
#[derive(Debug)]
pub(crate) struct Response {
    /// HTTP status.
    pub status: u16,
    /// Body bytes (at most [`BODY_LIMIT`]).
    pub body: Vec<u8>,
}

impl Response {
    /// The `error` word of a JSON error body, or the body itself, for messages.
    pub(crate) fn error_text(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        match serde_json::from_slice::<serde_json::Value>(&self.body) {
            Ok(json) if json["error"].is_string() => json["error"].as_str().unwrap_or_default().to_owned(),
            _ if text.trim().is_empty() => "(empty body)".to_owned(),
            _ => text.chars().take(200).collect(),
        }
    }
}

/// Client options that apply to every request.
#[derive(Clone, Debug, Default)]
pub(crate) struct Options {
    /// Extra PEM file(s) of certificates to trust, besides the system's store: CA certificates,
    /// or the server's own certificate (pinned).
    pub ca_files: Vec<PathBuf>,
}

/// Sends a POST with a JSON body to `route` below `base`; follows same-origin 307/308.
pub(crate) async fn post_json(
    base: &Url,
    route: &str,
    headers: &[(&str, &str)],
    body: &str,
    options: &Options,
) -> Result<Response, String> {
    send_json("POST", base, route, headers, body, options).await
}

/// Like [`post_json`] with another method (`DELETE /persist` carries a JSON body too).
pub(crate) async fn send_json(
    method: &str,
    base: &Url,
    route: &str,
    headers: &[(&str, &str)],
    body: &str,
    options: &Options,
) -> Result<Response, String> {
    match tokio::time::timeout(TIMEOUT, post_following(method, base, route, headers, body, options)).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer from {base} within {} s", TIMEOUT.as_secs())),
    }
}

/// [`send_json`] without the overall timeout.
async fn post_following(
    method: &str,
    base: &Url,
    route: &str,
    headers: &[(&str, &str)],
    body: &str,
    options: &Options,
) -> Result<Response, String> {
    let mut path = base.route(route);
    let tls = if base.https { Some(tls_connector(options)?) } else { None };
    for _ in 0..=MAX_REDIRECTS {
        let response = post_once(method, base, &path, headers, body, tls.as_ref(), options).await?;
        if !matches!(response.0.status, 307 | 308) {
            return Ok(response.0);
        }
        let location = response.1.ok_or_else(|| format!("{base}{path}: redirect without a Location"))?;
        path = same_origin_path(base, &location).ok_or_else(|| {
            format!("{base}{path} redirects to {location}: not followed (another server would see the credentials)")
        })?;
    }
    Err(format!("{base}{}: too many redirects", base.route(route)))
}

/// The path of a redirect target on the same origin as `base`, if it is one.
fn same_origin_path(base: &Url, location: &str) -> Option<String> {
    // A path alone stays on the server; "//host/..." names another one.
    if location.starts_with('/') && !location.starts_with("//") {
        return Some(location.to_owned());
    }
    let uri: hyper::Uri = location.trim().parse().ok()?;
    let target = Url::parse(&format!("{}://{}", uri.scheme_str()?, uri.authority()?)).ok()?;
    // "http://host?x" has no path: the request goes to "/?x".
    let path = match uri.path_and_query().map(|p| p.as_str()) {
        Some(p) if p.starts_with('/') => p.to_owned(),
        Some(p) => format!("/{p}"),
        None => "/".to_owned(),
    };
    (target.https == base.https && target.host == base.host && target.port == base.port).then_some(path)
}

/// One request on a new connection; returns the response and its `Location` header.
async fn post_once(
    method: &str,
    base: &Url,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
    tls: Option<&tokio_rustls::TlsConnector>,
    options: &Options,
) -> Result<(Response, Option<String>), String> {
    let tcp = TcpStream::connect((base.host.as_str(), base.port))
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", base.authority()))?;
    let _ = tcp.set_nodelay(true);
    let mut request = hyper::Request::builder()
        .method(method)
        .uri(if path.is_empty() { "/" } else { path })
        .header("Host", base.authority())
        .header("User-Agent", concat!("acme-delegate/", env!("CARGO_PKG_VERSION")))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_owned())))
        .map_err(|e| format!("cannot build the request: {e}"))?;
    match tls {
        Some(connector) => {
            let name = rustls::pki_types::ServerName::try_from(base.host.clone())
                .map_err(|_| format!("{:?} is not a valid TLS server name", base.host))?;
            let stream = connector
                .connect(name, tcp)
                .await
                .map_err(|e| super::trust::explain(&e, &base.authority(), &options.ca_files))?;
            exchange(stream, request).await
        }
        None => exchange(tcp, request).await,
    }
}

/// Runs one request/response over an established stream.
async fn exchange<S>(
    stream: S,
    request: hyper::Request<Full<Bytes>>,
) -> Result<(Response, Option<String>), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    let driver = tokio::spawn(connection);
    let response = sender.send_request(request).await.map_err(|e| format!("HTTP request failed: {e}"))?;
    let status = response.status().as_u16();
    let location = response.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = Limited::new(response.into_body(), BODY_LIMIT)
        .collect()
        .await
        .map_err(|e| format!("reading the response failed: {e}"))?
        .to_bytes()
        .to_vec();
    drop(sender);
    driver.abort();
    Ok((Response { status, body }, location))
}

/// A TLS connector trusting the system's CA store and the given extra files (as roots, and
/// each certificate in them also as the server's own, pinned).
fn tls_connector(options: &Options) -> Result<tokio_rustls::TlsConnector, String> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    let mut pinned = Vec::new();
    for file in &options.ca_files {
        use rustls::pki_types::pem::PemObject;
        let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(file)
            .and_then(|iter| iter.collect::<Result<_, _>>())
            .map_err(|e| format!("--ca-file {}: {e}", file.display()))?;
        if certs.is_empty() {
            return Err(format!("--ca-file {}: no certificate in it", file.display()));
        }
        for cert in certs {
            roots.add(cert.clone()).map_err(|e| format!("--ca-file {}: {e}", file.display()))?;
            pinned.push(cert);
        }
    }
    if roots.is_empty() {
        return Err("no trusted CA certificates: install ca-certificates, or name one with --ca-file".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = super::trust::PinningVerifier::new(roots, pinned, provider.clone())?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let u = Url::parse("https://auth.example.org").unwrap();
        assert_eq!((u.https, u.host.as_str(), u.port, u.path.as_str()), (true, "auth.example.org", 443, ""));
        assert_eq!(u.route("/update"), "/update");
        assert_eq!(u.to_string(), "https://auth.example.org");
        let u = Url::parse("http://127.0.0.1:8053/").unwrap();
        assert_eq!((u.https, u.port, u.path.as_str()), (false, 8053, ""));
        assert_eq!(u.route("/update"), "/update", "a trailing slash does not make //update");
        assert!(u.is_loopback());
        let u = Url::parse("HTTPS://[2001:db8::1]:8443/acme-dns/").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.path.as_str()), ("2001:db8::1", 8443, "/acme-dns"));
        assert_eq!(u.authority(), "[2001:db8::1]:8443");
        assert_eq!(u.route("/register"), "/acme-dns/register");
        assert!(!u.is_loopback());
        assert_eq!(Url::parse("http://[::1]").unwrap().authority(), "[::1]");
        for bad in [
            "auth.example.org",
            "ftp://x",
            "https://",
            "https://:443",
            "https://h:port",
            "https://h:0",
            "https://u:p@h",
            "https://h/?q",
            "https://[::1",
            "https://h/#top",
            "https://h:99999",
            "https://exa mple.org",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
        for no_scheme in ["auth.example.org/acme", "localhost:8053/"] {
            assert!(Url::parse(no_scheme).unwrap_err().contains("must start with https://"), "{no_scheme}");
        }
    }

    #[test]
    fn redirects_stay_on_the_same_origin() {
        let base = Url::parse("http://127.0.0.1:8053").unwrap();
        assert_eq!(same_origin_path(&base, "/update").as_deref(), Some("/update"));
        assert_eq!(same_origin_path(&base, "http://127.0.0.1:8053/update").as_deref(), Some("/update"));
        assert_eq!(same_origin_path(&base, "http://127.0.0.1:8053").as_deref(), Some("/"));
        assert_eq!(same_origin_path(&base, "http://127.0.0.1:9999/update"), None);
        assert_eq!(same_origin_path(&base, "https://127.0.0.1:8053/update"), None);
        assert_eq!(same_origin_path(&base, "//evil.example/update"), None);
        assert_eq!(same_origin_path(&base, "http://evil.example/update"), None);
        assert_eq!(same_origin_path(&base, "HTTP://127.0.0.1:8053/u?x=1").as_deref(), Some("/u?x=1"));
        assert_eq!(same_origin_path(&base, "http://u@127.0.0.1:8053/update"), None);
        assert_eq!(same_origin_path(&base, "http://127.0.0.1:8053?x=1").as_deref(), Some("/?x=1"));
    }

    #[test]
    fn error_text_prefers_the_json_error_word() {
        let r = Response { status: 401, body: br#"{"error": "forbidden"}"#.to_vec() };
        assert_eq!(r.error_text(), "forbidden");
        let r = Response { status: 502, body: b"Bad Gateway".to_vec() };
        assert_eq!(r.error_text(), "Bad Gateway");
        let r = Response { status: 500, body: vec![] };
        assert_eq!(r.error_text(), "(empty body)");
    }
}
