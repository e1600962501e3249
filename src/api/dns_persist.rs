//! `POST /persist` and `DELETE /persist`: an account's dns-persist-01 records.
//!
//! Design note: the same authentication, `allowfrom` and per-account update rate as `/update`
//! (a persistent record is worth more than a dns-01 value, not less). Every field is checked
//! before anything is written, and a refused request writes nothing but its audit entry: the
//! error names the field (`bad_issuer`, `bad_accounturi`, `bad_policy`, `bad_persistuntil`,
//! `bad_params`). `params`, an object of strings, adds further `tag=value` parameters to the
//! served value, ordered by tag (syntax checked only, see `crate::dns_persist`): what a newer draft
//! defines can be published without a change here.
//! The records are served at the account's persist name, never at its `fulldomain` (see
//! `dns::zone::persist_label`); the domain owner points `_validation-persist.<domain>` there.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;

use super::AppState;
use super::error::{ApiError, json_response};
use super::handlers::{audit, authenticated_object, field};
use crate::dns::zone::persist_label;
use crate::dns_persist::{PersistError, Record};
use crate::store::{Account, PutOutcome};

/// The persist name of an account, as a domain owner's CNAME target (no final dot).
pub(super) fn persist_domain(state: &AppState, account: &Account) -> String {
    format!("{}.{}", persist_label(&account.subdomain), state.domain)
}

/// A string field of the request, `None` when absent or null, `bad` when of another type.
fn text<'a>(
    object: &'a serde_json::Map<String, Value>,
    name: &str,
    bad: PersistError,
) -> Result<Option<&'a str>, PersistError> {
    match field(object, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad),
    }
}

/// The record a `POST /persist` body describes, checked.
fn record_of(object: &serde_json::Map<String, Value>) -> Result<Record, PersistError> {
    let issuer = text(object, "issuer", PersistError::Issuer("not a string"))?;
    let accounturi = text(object, "accounturi", PersistError::AccountUri("not a string"))?;
    let policy = text(object, "policy", PersistError::Policy)?;
    let persist_until = match field(object, "persistuntil") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => {
            Some(n.as_i64().ok_or(PersistError::PersistUntil("not an integer number of seconds"))?)
        }
        Some(_) => return Err(PersistError::PersistUntil("not an integer number of seconds")),
    };
    let params = match field(object, "params") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(params)) => params
            .iter()
            .map(|(tag, value)| match value {
                Value::String(value) => Ok((tag.clone(), value.clone())),
                _ => Err(PersistError::Param(tag.chars().take(32).collect(), "the value is not a string")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(PersistError::Param("params".into(), "not an object of strings")),
    };
    Record::new(issuer, accounturi, policy, persist_until, super::handlers::now())?.with_params(params)
}

/// `POST /persist`: sets (or replaces) the account's record for one issuer.
pub(super) async fn put(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Result<Response, ApiError> {
    let (client, account, object) = authenticated_object(&state, peer, request, "persist_set").await?;
    if let Err(retry) = state.limits.updates.take(&account.username) {
        return Err(ApiError::RateLimited(retry));
    }
    let record = match record_of(&object) {
        Ok(record) => record,
        Err(error) => {
            let outcome = format!("bad_{}", error.field());
            audit(&state, Some(&account.username), "persist_set", &outcome, client).await;
            return Err(ApiError::BadPersist(error));
        }
    };
    let value = record.value();
    match state.sync.put_persist(&account.subdomain, record).await? {
        PutOutcome::Stored { replaced, .. } => {
            let action = if replaced { "persist_replace" } else { "persist_set" };
            audit(&state, Some(&account.username), action, "ok", client).await;
        }
        PutOutcome::Full => {
            audit(&state, Some(&account.username), "persist_set", "too_many_records", client).await;
            return Err(ApiError::TooManyPersistRecords);
        }
        // Erased between the authentication and the write.
        PutOutcome::NoAccount => return Err(ApiError::Forbidden),
    }
    tracing::info!(subdomain = %state.subdomain_log.render(&account.subdomain), "persistent record set");
    let body = serde_json::json!({ "persistdomain": persist_domain(&state, &account), "value": value });
    Ok(json_response(StatusCode::OK, body.to_string()))
}

/// `DELETE /persist`: removes the account's record for one issuer.
pub(super) async fn delete(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Result<Response, ApiError> {
    let (client, account, object) = authenticated_object(&state, peer, request, "persist_delete").await?;
    if let Err(retry) = state.limits.updates.take(&account.username) {
        return Err(ApiError::RateLimited(retry));
    }
    let issuer = match text(&object, "issuer", PersistError::Issuer("not a string"))
        .and_then(|i| crate::dns_persist::check_issuer(i.unwrap_or("")))
    {
        Ok(issuer) => issuer.to_owned(),
        Err(error) => {
            audit(&state, Some(&account.username), "persist_delete", "bad_issuer", client).await;
            return Err(ApiError::BadPersist(error));
        }
    };
    if state.sync.delete_persist(&account.subdomain, &issuer).await?.is_none() {
        audit(&state, Some(&account.username), "persist_delete", "not_found", client).await;
        return Err(ApiError::PersistNotFound);
    }
    audit(&state, Some(&account.username), "persist_delete", "ok", client).await;
    tracing::info!(subdomain = %state.subdomain_log.render(&account.subdomain), "persistent record deleted");
    let body = serde_json::json!({ "persistdomain": persist_domain(&state, &account), "deleted": issuer });
    Ok(json_response(StatusCode::OK, body.to_string()))
}
