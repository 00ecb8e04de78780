//! Per-user encryption from the web (issue 16): the same actions as `rampart user encryption`
//! for the logged-in user — status, enable (the recovery code is in the answer, once), recover
//! after an administrator's reset — and the status for administrators. Each step that opens or
//! makes a wrap takes the account's own password again, checked as a login would be.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::{Extension, Json};
use rampart_auth::scram::ScramKeys;
use rampart_store::AccountId;
use rampart_store::userkey::{PASSWORD, RECOVERY, UserKeyStatus};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::info;
use zeroize::Zeroizing;

use super::account::recheck;
use crate::error::{ApiError, ApiResult, Body};
use crate::session::{Admin, Authed};
use crate::{Client, Services};

fn status_json(status: Option<UserKeyStatus>) -> Value {
    match status {
        None => json!({ "enabled": false }),
        Some(s) => json!({
            "enabled": true,
            "since": s.enabled,
            "wraps": s.wraps,
            "password_opens": s.wraps.iter().any(|w| w == PASSWORD),
            "unlocked": s.unlocked,
            "unconverted": s.unconverted,
        }),
    }
}

/// The ClientKey of `password` under the account's SCRAM keys (what the password wrap is
/// made with), computed off the async threads.
pub(super) async fn password_key(s: &Services, address: &str, password: &str) -> ApiResult<Zeroizing<[u8; 32]>> {
    let keys = s.store.credentials(address).await?.and_then(|c| c.scram_sha256).as_deref().and_then(ScramKeys::decode).ok_or(ApiError::Internal)?;
    let password = Zeroizing::new(password.to_string());
    tokio::task::spawn_blocking(move || keys.client_key(&password)).await.map_err(|_| ApiError::Internal)
}

pub async fn my_status(State(s): State<Arc<Services>>, Authed(caller): Authed) -> ApiResult<Json<Value>> {
    let (account, _) = caller.account()?;
    Ok(Json(status_json(s.store.user_key_status(account).await?)))
}

#[derive(Deserialize)]
pub struct Enable {
    password: String,
}

/// Turns per-user encryption on; the answer carries the recovery code, shown this once.
pub async fn my_enable(
    State(s): State<Arc<Services>>,
    Authed(caller): Authed,
    Extension(client): Extension<Client>,
    Body(req): Body<Enable>,
) -> ApiResult<Json<Value>> {
    let (account, address) = caller.account()?;
    recheck(&s, &client, address, &req.password, "password").await?;
    if s.store.has_user_key(account).await? {
        return Err(ApiError::BadRequest("per-user encryption is on already".into()));
    }
    let key = password_key(&s, address, &req.password).await?;
    let code = s.store.enable_user_key(account, key).await?;
    info!(event = "user_encryption_enabled", proto = "web", user = %address);
    // The mail already stored, in the background: a large mailbox takes a while.
    let (store, user) = (s.store.clone(), address.to_string());
    tokio::spawn(async move {
        match store.convert_user_messages(account).await {
            Ok(n) => info!(event = "user_encryption_converted", user = %user, messages = n),
            Err(e) => tracing::error!(event = "user_encryption_convert_failed", user = %user, error = %e.chain()),
        }
    });
    Ok(Json(json!({ "enabled": true, "recovery_code": code.as_str() })))
}

#[derive(Deserialize)]
pub struct Recover {
    password: String,
    recovery_code: String,
}

/// After an administrator's reset: the current password opens the mail again, through the
/// recovery code.
pub async fn my_recover(
    State(s): State<Arc<Services>>,
    Authed(caller): Authed,
    Extension(client): Extension<Client>,
    Body(req): Body<Recover>,
) -> ApiResult<Json<Value>> {
    let (account, address) = caller.account()?;
    recheck(&s, &client, address, &req.password, "password").await?;
    let key = password_key(&s, address, &req.password).await?;
    let opener = (RECOVERY.to_string(), rampart_store::peruser::unlock_from_text(&req.recovery_code));
    match s.store.add_user_key_wrap(account, PASSWORD, key, Some(opener)).await {
        Ok(true) => {}
        Ok(false) => return Err(ApiError::BadRequest("per-user encryption is off".into())),
        Err(_) => return Err(ApiError::BadRequest("the recovery code does not open the key".into())),
    }
    info!(event = "user_encryption_recovered", proto = "web", user = %address);
    Ok(Json(json!({ "ok": true })))
}

/// An administrator's view: on or off, the wraps, whether a login holds the key — never the
/// mail, which the server cannot read.
pub async fn user_status(State(s): State<Arc<Services>>, Admin(caller): Admin, Path(address): Path<String>) -> ApiResult<Json<Value>> {
    caller.scope("users")?;
    let account = s.store.account(&address).await?.ok_or(ApiError::NotFound)?;
    Ok(Json(status_json(s.store.user_key_status(account.id).await?)))
}

/// For an app password made by a per-user account: its wrap, opened with the password wrap
/// (`password`, the account's own, is required then). Called after the app password exists.
pub(super) async fn wrap_app_password(s: &Services, account: AccountId, address: &str, name: &str, app: &str, password: &str) -> ApiResult<()> {
    let id = s.store.list_app_passwords(address).await?.into_iter().find(|a| a.name == name).map(|a| a.id).ok_or(ApiError::Internal)?;
    let opener = (PASSWORD.to_string(), password_key(s, address, password).await?);
    let key = rampart_store::peruser::unlock_from_text(app);
    s.store.add_user_key_wrap(account, &rampart_store::userkey::app_wrap(id), key, Some(opener)).await?;
    Ok(())
}

/// Before revoking app password `name`: its wrap goes too.
pub(super) async fn unwrap_app_password(s: &Services, account: AccountId, address: &str, name: &str) -> ApiResult<()> {
    if let Some(id) = s.store.list_app_passwords(address).await?.into_iter().find(|a| a.name == name).map(|a| a.id) {
        s.store.remove_user_key_wrap(account, &rampart_store::userkey::app_wrap(id)).await?;
    }
    Ok(())
}
