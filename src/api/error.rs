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

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
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
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
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
            Self::Store(StoreError::Unavailable(_)) => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable"),
            Self::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "db_error"),
        }
    }
}

/// A one-line JSON response with `application/json`.
pub fn json_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let Self::Store(error) = &self {
            tracing::error!("request failed: {error}");
        }
        let mut response = json_response(status, format!("{{\"error\": \"{code}\"}}"));
        if let Self::RateLimited(seconds) = self
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}
