//! API errors and their one translation to HTTP.
//!
//! Design note: every failure of a request is an [`ApiError`] variant; [`IntoResponse`] below is
//! the only place that picks the status code and the body. Bodies are one-line JSON in the
//! exact form acme-dns writes (`{"error": "forbidden"}`, a space after the colon), because some
//! clients compare them as text. Internal details (database messages) go to the log, never to
//! the client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::store::StoreError;
use crate::zone_sync::SyncError;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// The body is not the JSON we expect.
    #[error("malformed JSON payload")]
    MalformedJson,
    /// An `allowfrom` entry is not a network in CIDR form.
    #[error("invalid allowfrom CIDR")]
    InvalidAllowfrom,
    /// Authentication or authorisation failed, for any reason.
    #[error("forbidden")]
    Forbidden,
    /// The TXT value is not 43 base64url characters.
    #[error("bad TXT value")]
    BadTxt,
    /// Registration needs a token and the request did not carry the right one.
    #[error("registration token missing or wrong")]
    RegistrationToken,
    /// Too many requests from this network; retry after that many seconds.
    #[error("rate limited")]
    RateLimited(u64),
    /// Registration is switched off.
    #[error("registration is disabled")]
    RegistrationDisabled,
    /// No such route.
    #[error("not found")]
    NotFound,
    /// The route exists with another method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The body is larger than `api.body_limit`.
    #[error("request body too large")]
    BodyTooLarge,
    /// The body did not arrive within `api.request_timeout`.
    #[error("request body timed out")]
    Timeout,
    /// A dns-persist-01 record field is wrong (the error names it).
    #[error("bad persistent record: {0}")]
    BadPersist(crate::dns_persist::PersistError),
    /// The account holds the most dns-persist-01 records allowed.
    #[error("too many persistent records")]
    TooManyPersistRecords,
    /// The account holds no dns-persist-01 record of that issuer.
    #[error("no such persistent record")]
    PersistNotFound,
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The store took the change, but the zone could not follow it: the key set a version
    /// names is unusable, or the signing work failed (a fault of ours, not the database's).
    #[error("zone: {0}")]
    Zone(SyncError),
    /// This instance's clock is too far from the database's (`/ready`).
    #[error("{0}")]
    ClockSkew(crate::zone_sync::clock::Skew),
}

impl ApiError {
    /// Status code and the error word clients see.
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::MalformedJson => (StatusCode::BAD_REQUEST, "malformed_json_payload"),
            Self::InvalidAllowfrom => (StatusCode::BAD_REQUEST, "invalid_allowfrom_cidr"),
            Self::Forbidden => (StatusCode::UNAUTHORIZED, "forbidden"),
            Self::BadTxt => (StatusCode::BAD_REQUEST, "bad_txt"),
            Self::RegistrationDisabled => (StatusCode::NOT_FOUND, "registration_disabled"),
            Self::RegistrationToken => (StatusCode::UNAUTHORIZED, "registration_token_invalid"),
            Self::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::BodyTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            Self::Timeout => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            Self::BadPersist(e) => (StatusCode::BAD_REQUEST, bad_persist_code(e)),
            Self::TooManyPersistRecords => (StatusCode::CONFLICT, "too_many_persist_records"),
            Self::PersistNotFound => (StatusCode::NOT_FOUND, "persist_record_not_found"),
            // The database is away (or restarting) or out of space: a client may retry later,
            // and DNS keeps answering meanwhile; neither is this request's fault nor ours.
            Self::Store(StoreError::Unavailable(_) | StoreError::Disconnected(_)) => {
                (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
            }
            Self::Store(StoreError::Full(_)) => (StatusCode::SERVICE_UNAVAILABLE, "store_full"),
            Self::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "db_error"),
            Self::Zone(_) => (StatusCode::INTERNAL_SERVER_ERROR, "zone_error"),
            Self::ClockSkew(_) => (StatusCode::SERVICE_UNAVAILABLE, "clock_skew"),
        }
    }
}

impl From<SyncError> for ApiError {
    /// A store failure on the way to the zone is the store's (503 when it may pass); the rest
    /// is the zone's.
    fn from(error: SyncError) -> Self {
        match error {
            SyncError::Store(error) => Self::Store(error),
            other => Self::Zone(other),
        }
    }
}

/// The error word of a refused dns-persist-01 field: `bad_` and the field's name.
fn bad_persist_code(error: &crate::dns_persist::PersistError) -> &'static str {
    use crate::dns_persist::PersistError;
    match error {
        PersistError::AccountUri(_) => "bad_accounturi",
        PersistError::Issuer(_) => "bad_issuer",
        PersistError::PersistUntil(_) => "bad_persistuntil",
        PersistError::Policy => "bad_policy",
        PersistError::Param(..) => "bad_params",
    }
}

/// A one-line JSON response with `application/json`.
pub(crate) fn json_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        match &self {
            Self::Store(error) => tracing::error!("request failed: {error}"),
            Self::Zone(error) => tracing::error!("request failed: {error}"),
            _ => {}
        }
        let body = match &self {
            // Which field, and what about it: the client sent it, so nothing here is secret.
            Self::BadPersist(e) => {
                serde_json::json!({ "error": code, "field": e.field(), "detail": e.to_string() }).to_string()
            }
            // Only the clocks: nothing here is secret, and it tells the operator what to fix.
            Self::ClockSkew(skew) => serde_json::json!({
                "error": code,
                "skew_seconds": skew.seconds,
                "max_clock_skew": skew.bound,
                "detail": skew.to_string(),
            })
            .to_string(),
            _ => format!("{{\"error\": \"{code}\"}}"),
        };
        let mut response = json_response(status, body);
        if let Self::RateLimited(seconds) = self
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicked_signing_task_is_a_zone_error_not_a_database_error() {
        let panicked = tokio::task::spawn_blocking(|| panic!("signing failed")).await.unwrap_err();
        let error = ApiError::from(SyncError::task("re-signing")(panicked));
        assert_eq!(error.status_and_code(), (StatusCode::INTERNAL_SERVER_ERROR, "zone_error"));
        assert!(error.to_string().starts_with("zone: re-signing did not finish"), "{error}");
        let ApiError::Zone(sync) = &error else { panic!("not a zone error: {error:?}") };
        let source = std::error::Error::source(sync).expect("the panic is kept as the source");
        assert!(
            source.downcast_ref::<tokio::task::JoinError>().is_some_and(tokio::task::JoinError::is_panic)
        );
    }

    #[test]
    fn a_store_failure_on_the_way_to_the_zone_stays_the_stores() {
        let error = ApiError::from(SyncError::Store(StoreError::Unavailable("no connection".into())));
        assert_eq!(error.status_and_code(), (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"));
        let keys = SyncError::from(crate::zone_sync::KeyError::Store(StoreError::Full("disk".into())));
        assert!(matches!(keys, SyncError::Store(StoreError::Full(_))));
        let keys = SyncError::from(crate::zone_sync::KeyError::NoActiveKey);
        let error = ApiError::from(keys);
        assert_eq!(error.status_and_code(), (StatusCode::INTERNAL_SERVER_ERROR, "zone_error"));
    }
}
