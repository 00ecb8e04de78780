//! What the dashboard shows that only the binary can compute: the certificates the server
//! presents, `[tls]` files and the store's in one list (read as `rampart audit` reads them), an account's sending quotas (as `rampart
//! quota show` computes them) and the audit's findings (served by [`crate::audit`]). The binary
//! supplies [`Dashboard`]; the handlers here serve it.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use rampart_store::StoreError;
use serde::Serialize;
use serde_json::{Value, json};

use crate::Services;
use crate::error::ApiResult;
use crate::session::Admin;

/// A certificate the server presents: a `[tls]` file or one of the store's.
#[derive(Debug, Clone, Serialize)]
pub struct CertExpiry {
    /// The file's path, or `certificate #ID` for the store's.
    pub file: String,
    /// The store's id; None for a file.
    pub id: Option<i64>,
    /// The store's names for it; empty for a file.
    pub names: Vec<String>,
    /// Where the store assigns it (`listener smtp`, `host NAME`...).
    pub used_by: Vec<String>,
    /// Unix seconds; None when the file cannot be used (`problem` says why).
    pub not_after: Option<i64>,
    pub self_signed: bool,
    pub problem: Option<String>,
}

/// One sending quota of an account: what it used and its limit (0: none).
#[derive(Debug, Clone, Serialize)]
pub struct QuotaUse {
    pub key: &'static str,
    pub used: u64,
    pub limit: u64,
}

/// An account's sending quotas.
#[derive(Debug, Clone, Serialize)]
pub struct AccountQuota {
    /// `[quota] enabled`: when off, use is counted but nothing is refused.
    pub enabled: bool,
    /// On the exception list: never held to quotas.
    pub exempt: bool,
    pub quotas: Vec<QuotaUse>,
}

#[async_trait::async_trait]
pub trait Dashboard: Send + Sync {
    /// The `[tls]` files and the store's certificates (read as `rampart audit` reads them).
    async fn certificates(&self) -> Vec<CertExpiry>;
    async fn quota(&self, address: &str) -> Result<AccountQuota, StoreError>;
    /// `rampart audit`'s checks, most severe findings first; None when the audit could not run
    /// (the binary logs why). Slow (DNS lookups): only the background loop calls it.
    async fn audit(&self) -> Option<Vec<crate::AuditFinding>>;
}

/// Below this many days left a certificate is marked: the audit's medium finding starts there.
const EXPIRING_DAYS: i64 = 14;

/// `GET /api/v1/dashboard/certificates`: each certificate with its days left and a status
/// (`ok`, `expiring`, `expired`, `error`).
pub async fn certificates(State(s): State<Arc<Services>>, Admin(c): Admin) -> ApiResult<Json<Value>> {
    c.scope("stats")?;
    let now = crate::now();
    let list: Vec<Value> = s
        .dashboard
        .certificates()
        .await
        .into_iter()
        .map(|cert| {
            let days = cert.not_after.map(|t| (t - now).div_euclid(86_400));
            let status = match days {
                None => "error",
                Some(d) if d < 0 => "expired",
                Some(d) if d < EXPIRING_DAYS => "expiring",
                Some(_) => "ok",
            };
            json!({ "file": cert.file, "id": cert.id, "names": cert.names, "used_by": cert.used_by, "not_after": cert.not_after, "days_left": days, "self_signed": cert.self_signed,
                    "problem": cert.problem, "status": status })
        })
        .collect();
    Ok(Json(json!(list)))
}
