//! A user's OpenPGP key over the API: `/api/v1/users/{address}/pgp` for administrators (the
//! twin of `rampart user pgp set|show|remove`) and `/api/v1/me/pgp` for the user. Both run
//! the CLI's check (`NewPgpKey::checked`) and store calls.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use rampart_store::{NewPgpKey, PgpKey, PgpOptions, PlainSearch};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::info;

use crate::Services;
use crate::error::{ApiError, ApiResult, Body};
use crate::session::{Admin, Authed};

#[derive(Deserialize)]
pub struct SetKey {
    /// The armored public key (`gpg --armor --export ADDRESS`).
    key: String,
    #[serde(default)]
    protect_subject: bool,
    /// Served by the Web Key Directory; true unless said otherwise.
    #[serde(default = "yes")]
    publish: bool,
    /// Keep a plaintext search summary on a clear store (`rampart user pgp set --search`).
    #[serde(default)]
    search: bool,
}

fn yes() -> bool {
    true
}

/// The key as the API shows it.
fn key_json(k: &PgpKey, search: PlainSearch) -> Value {
    let info = k.describe();
    json!({
        "fingerprint": k.fingerprint,
        "algorithm": info.as_ref().map(|i| i.algorithm.clone()),
        "encryption_algorithm": info.as_ref().map(|i| i.encryption_algorithm.clone()),
        "created": info.as_ref().map(|i| i.created),
        "expires": info.as_ref().and_then(|i| i.expires),
        "user_ids": info.as_ref().map(|i| i.user_ids.clone()).unwrap_or_default(),
        "protect_subject": k.protect_subject,
        "publish": k.publish,
        "search": k.search,
        "server_search": search.is_on(),
        "server_search_detail": search.describe(),
        "updated": k.updated,
    })
}

async fn show(s: &Services, address: &str) -> ApiResult<Json<Value>> {
    let key = s.store.pgp_key(address).await?.ok_or(ApiError::NotFound)?;
    let search = s.store.pgp_plain_search(&key).await?;
    Ok(Json(key_json(&key, search)))
}

async fn set(s: &Services, address: &str, req: SetKey, by: &str) -> ApiResult<Json<Value>> {
    s.store.account(address).await?.ok_or(ApiError::NotFound)?;
    let options = PgpOptions { protect_subject: req.protect_subject, publish: req.publish, search: req.search };
    let new = NewPgpKey::checked(req.key.as_bytes(), address, options)
        .map_err(|e| ApiError::BadRequest(format!("key refused: {e}")))?;
    let fingerprint = new.fingerprint.clone();
    s.store.pgp_key_set(address, new).await?;
    info!(event = "pgp_key_set", proto = "web", user = %address, fingerprint = %fingerprint, by = %by);
    show(s, address).await
}

async fn remove(s: &Services, address: &str, by: &str) -> ApiResult<Json<Value>> {
    if !s.store.pgp_key_remove(address).await? {
        return Err(ApiError::NotFound);
    }
    info!(event = "pgp_key_removed", proto = "web", user = %address, by = %by);
    Ok(Json(json!({ "ok": true })))
}

pub async fn user_key(State(s): State<Arc<Services>>, Admin(c): Admin, Path(address): Path<String>) -> ApiResult<Json<Value>> {
    c.scope("users")?;
    show(&s, &address).await
}

pub async fn user_key_set(
    State(s): State<Arc<Services>>,
    Admin(c): Admin,
    Path(address): Path<String>,
    Body(req): Body<SetKey>,
) -> ApiResult<Json<Value>> {
    c.scope("users")?;
    set(&s, &address, req, &c.who()).await
}

pub async fn user_key_remove(State(s): State<Arc<Services>>, Admin(c): Admin, Path(address): Path<String>) -> ApiResult<Json<Value>> {
    c.scope("users")?;
    remove(&s, &address, &c.who()).await
}

/// The user's key, or `null` when there is none (the page asks without knowing).
pub async fn my_key(State(s): State<Arc<Services>>, Authed(caller): Authed) -> ApiResult<Json<Value>> {
    let (_, address) = caller.account()?;
    let Some(key) = s.store.pgp_key(address).await? else { return Ok(Json(Value::Null)) };
    let search = s.store.pgp_plain_search(&key).await?;
    Ok(Json(key_json(&key, search)))
}

pub async fn my_key_set(State(s): State<Arc<Services>>, Authed(caller): Authed, Body(req): Body<SetKey>) -> ApiResult<Json<Value>> {
    let (_, address) = caller.account()?;
    set(&s, address, req, address).await
}

pub async fn my_key_remove(State(s): State<Arc<Services>>, Authed(caller): Authed) -> ApiResult<Json<Value>> {
    let (_, address) = caller.account()?;
    remove(&s, address, address).await
}
