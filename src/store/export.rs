//! The export of everything held about one account (GDPR Art. 15 access and Art. 20
//! portability): the API's `GET /account` and the operator's `account export` print the same.

use serde_json::Value;

use super::AccountRecord;
use crate::privacy::Privacy;

impl AccountRecord {
    /// Everything held about the account as JSON, with the retention settings that apply to
    /// it; `domain` is the zone apex, for `fulldomain`.
    pub(crate) fn export_json(&self, domain: &str, privacy: &Privacy) -> Value {
        let record = self;
        let a = &record.account;
        serde_json::json!({
            "username": a.username,
            "subdomain": a.subdomain,
            "fulldomain": format!("{}.{}", a.subdomain, domain),
            "allowfrom": a.allowfrom,
            "created_at": record.created_at,
            "last_used": record.last_used,
            "key": if a.key_hash.is_empty() { "bcrypt hash imported from acme-dns" } else { "SHA-256 hash of the key (the key itself is not stored)" },
            "txt": record.txt.iter().map(|(value, at)| serde_json::json!({"value": value, "set_at": at})).collect::<Vec<_>>(),
            // dns-persist-01 records (the account URI can identify an ACME account holder).
            "persist": record.persist.iter().map(|p| serde_json::json!({
                "issuer": p.record.issuer, "value": p.value, "set_at": p.set_at,
                "persist_until": p.record.persist_until,
            })).collect::<Vec<_>>(),
            "audit": record.audit.iter().map(|e| serde_json::json!({
                "at": e.at, "action": e.action, "outcome": e.outcome, "source": e.source,
                "count": e.count, "last_at": e.last_at,
            })).collect::<Vec<_>>(),
            "retention": {
                "audit_seconds": privacy.audit_retention,
                "txt_seconds": privacy.txt_retention,
                "unused_account_seconds": privacy.account_expiry,
                "persist": "until persistUntil passes, the record is deleted, or the account is erased",
                "client_ip": privacy.client_ip.name(),
            },
        })
    }
}
