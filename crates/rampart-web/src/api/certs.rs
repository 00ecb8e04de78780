//! Admin endpoints for the certificate store: the same actions as `rampart cert ...`, through
//! `rampart_tls::admin`. Private keys are taken (import) but never returned.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use rampart_store::certs::{StoredCert, Usage};
use rampart_tls::admin::{self, AdminError};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::info;

use crate::Services;
use crate::error::{ApiError, ApiResult};
use crate::session::Admin;

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Store(s) => s.into(),
            other => ApiError::BadRequest(other.to_string()),
        }
    }
}

fn cert_json(c: &StoredCert, uses: Vec<String>) -> Value {
    json!({
        "id": c.id, "names": c.names, "issuer": c.issuer, "not_before": c.not_before, "not_after": c.not_after,
        "key_type": c.key_type, "source": c.source, "pending": c.chain_pem.is_none(), "csr": c.csr_pem.as_ref().filter(|_| c.chain_pem.is_none()),
        "created": c.created, "used_by": uses,
    })
}

/// Every certificate with where it is used (keys never).
pub async fn list(State(s): State<Arc<Services>>, Admin(c): Admin) -> ApiResult<Json<Value>> {
    c.scope("certificates")?;
    let all = s.store.assignments().await?;
    let list: Vec<Value> = s.store.certificates().await?.iter().map(|cert| cert_json(cert, admin::uses(cert.id, &all))).collect();
    Ok(Json(json!(list)))
}

pub async fn show(State(s): State<Arc<Services>>, Admin(c): Admin, Path(id): Path<i64>) -> ApiResult<Json<Value>> {
    c.scope("certificates")?;
    let all = s.store.assignments().await?;
    Ok(Json(cert_json(&s.store.certificate(id).await?, admin::uses(id, &all))))
}

#[derive(Deserialize)]
pub struct NewCert {
    names: Vec<String>,
    key_type: Option<String>,
    days: Option<i64>,
}

pub async fn self_signed(State(s): State<Arc<Services>>, Admin(c): Admin, Json(req): Json<NewCert>) -> ApiResult<Json<Value>> {
    c.scope("certificates")?;
    let kind = admin::key_type(req.key_type.as_deref().unwrap_or("ecdsa-p256"))?;
    let id = admin::self_signed(s.store.as_ref(), &admin::names(&req.names)?, kind, req.days.unwrap_or(365)).await?;
    info!(event = "certificate_added", proto = "web", id, source = "self-signed", by = %c.who());
    Ok(Json(json!({ "id": id })))
}

pub async fn csr(State(s): State<Arc<Services>>, Admin(c): Admin, Json(req): Json<NewCert>) -> ApiResult<Json<Value>> {
    c.scope("certificates")?;
    let kind = admin::key_type(req.key_type.as_deref().unwrap_or("ecdsa-p256"))?;
    let (id, request) = admin::csr(s.store.as_ref(), &admin::names(&req.names)?, kind).await?;
    info!(event = "certificate_added", proto = "web", id, source = "csr", by = %c.who());
    Ok(Json(json!({ "id": id, "csr": request })))
}

#[derive(Deserialize)]
pub struct Import {
    cert: String,
    /// Left out: the certificate completes the pending CSR whose key it matches.
    key: Option<String>,
}

pub async fn import(State(s): State<Arc<Services>>, Admin(c): Admin, Json(req): Json<Import>) -> ApiResult<Json<Value>> {
    c.scope("certificates")?;
    let id = match &req.key {
        Some(key) => admin::import(s.store.as_ref(), &req.cert, key).await?,
        None => admin::complete(s.store.as_ref(), &req.cert).await?,
    };
    info!(event = "certificate_added", proto = "web", id, source = "imported", by = %c.who());
    Ok(Json(json!({ "id": id })))
}

pub async fn delete(State(s): State<Arc<Services>>, Admin(c): Admin, Path(id): Path<i64>) -> ApiResult<Json<Value>> {
    c.scope("certificates")?;
    s.store.delete_certificate(id).await?;
    info!(event = "certificate_deleted", proto = "web", id, by = %c.who());
    Ok(Json(json!({ "deleted": id })))
}

#[derive(Deserialize)]
pub struct Use {
    /// `listener`, `host` or `smart-host`.
    usage: String,
    target: String,
}

fn usage(u: &str) -> ApiResult<Usage> {
    Usage::parse(u).ok_or_else(|| ApiError::BadRequest("usage is listener, host or smart-host".into()))
}

pub async fn assign(State(s): State<Arc<Services>>, Admin(c): Admin, Path(id): Path<i64>, Json(req): Json<Use>) -> ApiResult<Json<Value>> {
    c.scope("certificates")?;
    admin::assign(s.store.as_ref(), id, usage(&req.usage)?, &req.target).await?;
    info!(event = "certificate_assigned", proto = "web", id, usage = %req.usage, target = %req.target, by = %c.who());
    Ok(Json(json!({ "id": id, "usage": req.usage, "target": req.target })))
}

pub async fn unassign(State(s): State<Arc<Services>>, Admin(c): Admin, Path(id): Path<i64>, Json(req): Json<Use>) -> ApiResult<Json<Value>> {
    c.scope("certificates")?;
    s.store.unassign_certificate(id, usage(&req.usage)?, &req.target).await?;
    Ok(Json(json!({ "id": id })))
}

#[derive(Deserialize)]
pub struct Order {
    names: Vec<String>,
}

/// Queues an ACME order for the running server (as `rampart cert acme` does) and returns the
/// request's id at once; the certificate appears in the list when issued.
pub async fn acme(State(s): State<Arc<Services>>, Admin(c): Admin, Json(req): Json<Order>) -> ApiResult<Json<Value>> {
    c.scope("certificates")?;
    let names = admin::names(&req.names)?;
    let id = s.store.request_acme(&names).await?;
    info!(event = "acme_requested", proto = "web", request = id, names = %names.join(","), by = %c.who());
    Ok(Json(json!({ "request": id })))
}
