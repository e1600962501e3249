//! The request handlers.
//!
//! Design note: the checks of `/update` run in acme-dns's order (user, key format, account,
//! key, allowfrom, body), and every authentication failure gives the same 401 so that a
//! client cannot tell which check failed. The client address is the socket's peer unless a
//! proxy header is configured *and* the peer is a trusted proxy; then the right-most address
//! in the header that is not itself a trusted proxy counts (entries to its left are whatever
//! the client chose to send).

use std::net::{IpAddr, SocketAddr};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde::Serialize;
use serde_json::Value;

use super::AppState;
use super::credentials::{self, KEY_LEN};
use super::error::{ApiError, json_response};
use super::limits;
use crate::cidr::Cidr;
use crate::config::Registration as RegistrationMode;
use crate::privacy::ClientIp;
use crate::store::{Account, AuditEntry, StoreError};
use crate::zone_sync::SyncError;

/// `GET /health`: 200 with an empty body, as acme-dns answers.
pub(super) async fn health() -> StatusCode {
    StatusCode::OK
}

/// `GET /ready`: 200 when the store answers and takes writes and this instance's clock agrees
/// with the store's time, 503 otherwise (for load balancers and probes; `/health` stays as
/// acme-dns has it and checks nothing). DNS answers either way, from memory.
pub(super) async fn ready(State(state): State<AppState>) -> Result<Response, ApiError> {
    state.store.ready().await?;
    // The store's time answers for the store, and this instance's clock is compared with it.
    if let (_, Some(skew)) = state.sync.shared_time(false).await? {
        return Err(ApiError::ClockSkew(skew));
    }
    Ok(json_response(
        StatusCode::OK,
        format!("{{\"status\": \"ready\", \"subdomains\": {}}}", state.zone.subdomain_count()),
    ))
}

/// Reads the whole body within the configured size and time limits.
async fn read_body(state: &AppState, body: Body) -> Result<axum::body::Bytes, ApiError> {
    let read = axum::body::to_bytes(body, state.config.body_limit);
    match tokio::time::timeout(state.config.request_timeout, read).await {
        Err(_) => Err(ApiError::Timeout),
        Ok(Err(_)) => Err(ApiError::BodyTooLarge),
        Ok(Ok(bytes)) => Ok(bytes),
    }
}

/// Parses a body as a JSON object; an empty body or `null` is an empty object.
pub(crate) fn parse_object(body: &[u8]) -> Result<serde_json::Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(Value::Null) => Ok(serde_json::Map::new()),
        _ => Err(ApiError::MalformedJson),
    }
}

/// Looks a key up case-insensitively, as Go's JSON decoder does.
pub(super) fn field<'a>(object: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.get(name).or_else(|| object.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

/// The `/register` response, fields in acme-dns's order.
#[derive(Serialize)]
struct Registration<'a> {
    /// The `X-Api-User`.
    username: &'a str,
    /// The `X-Api-Key`, shown this once.
    password: &'a str,
    /// Name for the CNAME target.
    fulldomain: String,
    /// The label.
    subdomain: &'a str,
    /// Networks allowed to update.
    allowfrom: &'a [String],
}

/// Seconds since the epoch.
pub(super) fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Records one credential use; a failure to record is logged, not returned, so the audit
/// trail never turns a completed change into an error response.
pub(super) async fn audit(
    state: &AppState,
    username: Option<&str>,
    action: &str,
    outcome: &str,
    client: ClientIp,
) {
    let source = state.privacy.client_ip.render(client);
    let entry = AuditEntry::new(now(), username.map(str::to_owned), action, outcome, source);
    if let Err(error) = state.store.record_audit(entry).await {
        tracing::warn!("could not record an audit entry ({action}, {outcome}): {error}");
    }
}

/// Parses an `allowfrom` list as acme-dns does; `""` entries mean "no restriction".
fn parse_allowfrom(value: Option<&Value>) -> Result<Vec<String>, ApiError> {
    let mut allowfrom = Vec::new();
    match value {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                let Value::String(text) = item else { return Err(ApiError::MalformedJson) };
                if text.is_empty() {
                    continue;
                }
                text.parse::<Cidr>().map_err(|_| ApiError::InvalidAllowfrom)?;
                allowfrom.push(text.replace(['[', ']'], ""));
            }
        }
        Some(_) => return Err(ApiError::MalformedJson),
    }
    Ok(allowfrom)
}

/// The registration response body for an account and its fresh key.
fn credentials_body(state: &AppState, account: &Account, key: &str) -> Result<String, ApiError> {
    let body = Registration {
        username: &account.username,
        password: key,
        fulldomain: format!("{}.{}", account.subdomain, state.domain),
        subdomain: &account.subdomain,
        allowfrom: &account.allowfrom,
    };
    serde_json::to_string(&body).map_err(|_| ApiError::MalformedJson)
}

/// `POST /register`: creates an account with a fresh subdomain.
pub(super) async fn register(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Result<Response, ApiError> {
    let client = client_ip(&state, peer, request.headers());
    match &state.config.registration {
        RegistrationMode::Open => {}
        RegistrationMode::Closed => return Err(ApiError::RegistrationDisabled),
        RegistrationMode::Token(token) => {
            let presented = request
                .headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            if !credentials::constant_time_eq(presented.trim().as_bytes(), token.expose().as_bytes()) {
                audit(&state, None, "register", "bad_registration_token", client).await;
                return Err(ApiError::RegistrationToken);
            }
        }
    }
    // Check and count in one step, before any work: concurrent requests cannot all pass a
    // check that is counted only later. The place is given back (the reservation dropped)
    // when the request fails before the store is asked to write: a bad body, a timeout or a
    // client that hangs up created nothing and should not cost the network a registration.
    // Once the write is attempted the place is kept even if the store fails, since a failed
    // or timed-out write may still have committed the account.
    let reservation = state.limits.register.reserve(&client.truncated()).map_err(ApiError::RateLimited)?;
    let body = read_body(&state, request.into_body()).await?;
    let object = parse_object(&body)?;
    let allowfrom = parse_allowfrom(field(&object, "allowfrom"))?;
    let key = credentials::random_key();
    reservation.keep();
    let mut attempts = 0;
    let account = loop {
        let account = Account {
            username: credentials::random_uuid(),
            key_hash: credentials::hash_key(key.expose()),
            bcrypt_hash: None,
            subdomain: credentials::random_uuid(),
            allowfrom: allowfrom.clone(),
        };
        // The audit entry commits with the account: one commit per registration.
        let source = state.privacy.client_ip.render(client);
        let entry = AuditEntry::new(now(), Some(account.username.clone()), "register", "ok", source);
        match state.sync.register(account.clone(), entry).await {
            Ok(()) => break account,
            // Two random UUIDs colliding is astronomically unlikely; retry rather than fail.
            Err(SyncError::Store(StoreError::Duplicate(_))) if attempts < 3 => attempts += 1,
            Err(error) => return Err(error.into()),
        }
    };
    tracing::info!(
        subdomain = %state.subdomain_log.render(&account.subdomain),
        client = %state.privacy.client_ip.render(client),
        "account registered"
    );
    Ok(json_response(StatusCode::CREATED, credentials_body(&state, &account, key.expose())?))
}

/// Authenticates a request by `X-Api-User`/`X-Api-Key` and the account's `allowfrom`.
///
/// Every failure is the same 401 to the client; the audit trail and the log say which check
/// failed, and the client's network and the username presented are counted towards the
/// failed-authentication limit. Past that limit a failure is a 429 instead, without an audit
/// row or a log line, but a request whose credentials are right is still served (see
/// `limits`).
async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    client: ClientIp,
    action: &str,
) -> Result<Account, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let key = header("x-api-key");
    let username = credentials::parse_uuid(&header("x-api-user"));
    // Failures count per network and the username presented (see `limits`).
    let failures = limits::failure_key(&client.truncated(), username.as_deref().unwrap_or(""));
    let blocked = state.limits.auth_failures.blocked(&failures);
    let fail = |username: Option<String>, outcome: &'static str| async move {
        state.limits.auth_failures.hit(&failures);
        if let Some(retry) = blocked {
            // Throttled: neither an audit row nor a log line per request, so a client that
            // keeps failing at full speed grows neither the database nor the log.
            return ApiError::RateLimited(retry);
        }
        audit(state, username.as_deref(), action, outcome, client).await;
        tracing::info!(client = %state.privacy.client_ip.render(client), "{action} refused: {outcome}");
        ApiError::Forbidden
    };
    let Some(username) = username else {
        return Err(fail(None, "bad_username").await);
    };
    if !credentials::is_base64url(&key, KEY_LEN) {
        return Err(fail(None, "bad_key_format").await);
    }
    // A throttled request still costs one account lookup and one SHA-256, no more than an
    // unthrottled request with a fresh username costs.
    let account = state.store.account(&username).await?;
    let key_ok = match &account {
        // A bcrypt hash (an acme-dns account not used since its import) is not checked while
        // throttled: at tens of milliseconds of CPU each, unlimited checks would let whoever
        // is throttled keep the cores busy, while the limit caps them at `auth_failure_limit`
        // per network and username per ten minutes. Such an account can thus still be locked
        // out from a network, as before; only until its first successful use from elsewhere
        // (or the window's end), which replaces the bcrypt hash by a SHA-256 one for good.
        Some(a) if a.key_hash.is_empty() && blocked.is_some() => false,
        Some(a) if a.key_hash.is_empty() => verify_imported(state, a, &key).await?,
        // Hash and compare even for unknown users, so timing does not reveal which exist.
        other => {
            credentials::verify_key(&key, other.as_ref().map_or(&[0u8; 32][..], |a| a.key_hash.as_slice()))
        }
    };
    let Some(account) = account else { return Err(fail(None, "unknown_user").await) };
    if !key_ok {
        return Err(fail(Some(account.username), "bad_key").await);
    }
    if !allowed_from(&account.allowfrom, client) {
        return Err(fail(Some(account.username), "not_allowed_from").await);
    }
    Ok(account)
}

/// The start every authenticated endpoint with a JSON body shares: the client's address, the
/// body (read within the size and time limits before the credentials are checked, so a slow
/// or oversized request costs no hash), the account the credentials prove, the JSON object.
pub(super) async fn authenticated_object(
    state: &AppState,
    peer: SocketAddr,
    request: Request,
    action: &str,
) -> Result<(ClientIp, Account, serde_json::Map<String, Value>), ApiError> {
    let client = client_ip(state, peer, request.headers());
    let (parts, body) = request.into_parts();
    let body = read_body(state, body).await?;
    let account = authenticate(state, &parts.headers, client, action).await?;
    Ok((client, account, parse_object(&body)?))
}

/// `POST /update`: sets a TXT value of the caller's own subdomain.
pub(super) async fn update(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Result<Response, ApiError> {
    let (client, account, object) = authenticated_object(&state, peer, request, "update").await?;
    // Every authenticated update counts, accepted or not: each writes an audit row. A refused
    // one writes none, so an account past its rate cannot grow the database.
    if let Err(retry) = state.limits.updates.take(&account.username) {
        tracing::debug!("update refused: over the account's update rate");
        return Err(ApiError::RateLimited(retry));
    }
    let subdomain = field(&object, "subdomain").and_then(Value::as_str).unwrap_or("");
    if !subdomain.eq_ignore_ascii_case(&account.subdomain) {
        state.limits.auth_failures.hit(&limits::failure_key(&client.truncated(), &account.username));
        audit(&state, Some(&account.username), "update", "wrong_subdomain", client).await;
        return Err(ApiError::Forbidden);
    }
    let txt = field(&object, "txt").and_then(Value::as_str).unwrap_or("");
    // The zone's own rule (`dns::zone::admit`), so the API never stores what DNS would not serve.
    if crate::dns::zone::check_txt_value(txt).is_err() {
        audit(&state, Some(&account.username), "update", "bad_txt", client).await;
        return Err(ApiError::BadTxt);
    }
    state.sync.update_txt(&account.subdomain, txt).await?;
    audit(&state, Some(&account.username), "update", "ok", client).await;
    tracing::info!(
        subdomain = %state.subdomain_log.render(&account.subdomain),
        client = %state.privacy.client_ip.render(client),
        "TXT updated"
    );
    Ok(json_response(StatusCode::OK, format!("{{\"txt\": \"{txt}\"}}")))
}

/// `GET /account`: everything held about the caller's account (access and portability).
pub(super) async fn account_get(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let client = client_ip(&state, peer, &headers);
    let account = authenticate(&state, &headers, client, "account_read").await?;
    // Record the access first, so the export includes it.
    audit(&state, Some(&account.username), "account_read", "ok", client).await;
    let record =
        state.store.account_record(&account.username, state.txt_values).await?.ok_or(ApiError::Forbidden)?;
    let mut json = record.export_json(&state.domain, &state.privacy);
    json["persistdomain"] = super::dns_persist::persist_domain(&state, &account).into();
    Ok(json_response(StatusCode::OK, json.to_string()))
}

/// `PATCH /account`: replaces `allowfrom` (rectification).
pub(super) async fn account_patch(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Result<Response, ApiError> {
    let (client, account, object) = authenticated_object(&state, peer, request, "account_update").await?;
    let Some(value) = field(&object, "allowfrom") else { return Err(ApiError::MalformedJson) };
    let allowfrom = parse_allowfrom(Some(value))?;
    state.store.set_allowfrom(&account.username, allowfrom.clone()).await?;
    audit(&state, Some(&account.username), "account_update", "ok", client).await;
    Ok(json_response(StatusCode::OK, serde_json::json!({ "allowfrom": allowfrom }).to_string()))
}

/// `POST /account/rotate`: a new key; the old one stops working at once.
pub(super) async fn account_rotate(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let client = client_ip(&state, peer, &headers);
    let account = authenticate(&state, &headers, client, "rotate").await?;
    let key = credentials::random_key();
    state.store.set_key(&account.username, credentials::hash_key(key.expose())).await?;
    audit(&state, Some(&account.username), "rotate", "ok", client).await;
    tracing::info!(subdomain = %state.subdomain_log.render(&account.subdomain), "API key rotated");
    Ok(json_response(StatusCode::OK, credentials_body(&state, &account, key.expose())?))
}

/// `DELETE /account`: erases the account, its TXT values and its audit trail.
pub(super) async fn account_delete(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let client = client_ip(&state, peer, &headers);
    let account = authenticate(&state, &headers, client, "delete").await?;
    state.sync.delete_account(&account.username).await?;
    // No audit entry: erasure leaves no row about the account.
    tracing::info!("account deleted at its holder's request");
    Ok(json_response(StatusCode::OK, serde_json::json!({ "deleted": account.username }).to_string()))
}

/// Checks a key against an account imported from acme-dns (bcrypt), and on success replaces
/// the bcrypt hash by our SHA-256 hash, so the slow check happens once per account.
async fn verify_imported(state: &AppState, account: &Account, key: &str) -> Result<bool, ApiError> {
    let Some(hash) = account.bcrypt_hash.clone() else { return Ok(false) };
    let candidate = key.to_owned();
    // bcrypt at cost 10 takes tens of milliseconds: keep it off the async workers.
    let ok = tokio::task::spawn_blocking(move || bcrypt::verify(candidate, &hash).unwrap_or(false))
        .await
        .unwrap_or(false);
    if ok {
        state.store.upgrade_key(&account.username, credentials::hash_key(key)).await?;
        tracing::info!(
            subdomain = %state.subdomain_log.render(&account.subdomain),
            "imported acme-dns key verified and rehashed with SHA-256"
        );
    }
    Ok(ok)
}

/// Whether `client` may update an account restricted to `allowfrom`.
///
/// An empty list, or one without a single valid network, means no restriction (as in acme-dns).
fn allowed_from(allowfrom: &[String], client: ClientIp) -> bool {
    let networks: Vec<Cidr> = allowfrom.iter().filter_map(|text| text.parse().ok()).collect();
    networks.is_empty() || networks.iter().any(|net| net.contains(client.expose()))
}

/// The client's address: the peer, or from the proxy header when the peer is a trusted proxy.
fn client_ip(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> ClientIp {
    let peer_ip = crate::cidr::canonical(peer.ip());
    let config = &state.config;
    let trusted = |ip: IpAddr| config.trusted_proxies.iter().any(|net| net.contains(ip));
    if !config.use_header || !trusted(peer_ip) {
        return ClientIp::new(peer_ip);
    }
    let values = headers.get_all(config.header_name.as_str()).iter().map(|v| v.as_bytes());
    ClientIp::new(forwarded_client(peer_ip, values, trusted))
}

/// The client behind the trusted proxy `peer_ip`, from the raw values of the proxy header (in
/// the order received) and the test for our own proxies.
pub(crate) fn forwarded_client<'a>(
    peer_ip: IpAddr,
    values: impl Iterator<Item = &'a [u8]>,
    trusted: impl Fn(IpAddr) -> bool,
) -> IpAddr {
    // Split the raw bytes: a proxy appends to the client's own line, so a line the client made
    // invalid (bytes that are not text) must not take the proxy's entry with it. A part that
    // is not text becomes "?" and so ends the walk below, as any other non-address does.
    let entries: Vec<&str> = values
        .flat_map(|v| v.split(|b| *b == b','))
        .map(|part| std::str::from_utf8(part).unwrap_or("?"))
        .map(|s| s.trim().trim_start_matches('[').trim_end_matches(']'))
        .filter(|s| !s.is_empty())
        .collect();
    // Right to left: each of our proxies appended the address it saw, so the right-most
    // entries are the trustworthy ones. Skip our own proxies; the first other address is the
    // client. Everything further left was written by the client itself: an entry that is not
    // an address ends the walk there, and never lets an address left of it count.
    let mut client = peer_ip;
    for text in entries.iter().rev() {
        let Ok(ip) = text.parse::<IpAddr>() else { break };
        client = crate::cidr::canonical(ip);
        if !trusted(client) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowfrom_rules() {
        let ip = |s: &str| ClientIp::new(s.parse().unwrap());
        assert!(allowed_from(&[], ip("192.0.2.1")));
        assert!(allowed_from(&["10.0.0.0/8".into()], ip("10.1.2.3")));
        assert!(!allowed_from(&["10.0.0.0/8".into()], ip("192.0.2.1")));
        assert!(allowed_from(&["10.0.0.0/8".into()], ip("::ffff:10.1.2.3")));
    }

    #[test]
    fn json_keys_are_case_insensitive() {
        let object = parse_object(br#"{"SubDomain": "a", "Txt": "b"}"#).unwrap();
        assert_eq!(field(&object, "subdomain"), Some(&Value::String("a".into())));
        assert_eq!(field(&object, "txt"), Some(&Value::String("b".into())));
        assert!(parse_object(b"").unwrap().is_empty());
        assert!(parse_object(b"null").unwrap().is_empty());
        assert!(parse_object(b"[1]").is_err());
        assert!(parse_object(b"allowfrom=1").is_err());
    }
}
