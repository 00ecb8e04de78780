//! Self-service: a user's own password, TOTP, app passwords and quarantine.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::info;

use super::{app_password_json, checked_secrets, held_json, logins_json, new_app_password};
use crate::{Client, Services};
use crate::error::{ApiError, ApiResult, Body};
use crate::session::{Authed, Caller, Enrolling};

/// The account's own password again (not an app password). A wrong one counts as a failed
/// login: someone holding a stolen session must not get unlimited guesses at it.
pub(super) async fn recheck(s: &Services, client: &Client, address: &str, password: &str, what: &str) -> ApiResult<()> {
    match s.auth.verify_account_password(address, password).await {
        Ok(_) => Ok(()),
        _ => {
            crate::login::count_failure(s, client.0.ip(), address, "recheck").await;
            Err(ApiError::BadRequest(format!("the {what} is wrong")))
        }
    }
}

#[derive(Deserialize)]
pub struct PasswordChange {
    current: String,
    new: String,
}

/// The current password is required, and the new one must pass the policy. Other sessions
/// of the account end; this one goes on.
pub async fn change_password(
    State(s): State<Arc<Services>>,
    Authed(caller): Authed,
    Extension(client): Extension<Client>,
    Body(req): Body<PasswordChange>,
) -> ApiResult<Json<Value>> {
    let (account, address) = caller.account()?;
    recheck(&s, &client, address, &req.current, "current password").await?;
    let secrets = checked_secrets(&s, address, &req.new)?;
    rewrap_user_key(&s, account, address, &req.current, &req.new, &secrets).await?;
    s.store.set_secrets(address, &secrets).await?;
    let keep = match &caller {
        Caller::Session { id_hash, .. } => Some(id_hash.as_str()),
        Caller::Token { .. } => None,
    };
    s.store.sessions_remove(account, keep).await?;
    info!(event = "password_changed", proto = "web", user = %address);
    Ok(Json(json!({ "ok": true })))
}

/// Per-user encryption: the key's password wrap is remade under the new password (opened
/// with the current one) before the password changes, so the mail stays readable.
async fn rewrap_user_key(s: &Services, account: rampart_store::AccountId, address: &str, current: &str, new: &str, secrets: &rampart_store::Secrets) -> ApiResult<()> {
    use rampart_auth::scram::ScramKeys;
    if !s.store.has_user_key(account).await? {
        return Ok(());
    }
    let old_keys = s.store.credentials(address).await?.and_then(|c| c.scram_sha256).as_deref().and_then(ScramKeys::decode).ok_or(ApiError::Internal)?;
    let new_keys = secrets.scram_sha256.as_deref().and_then(ScramKeys::decode).ok_or(ApiError::Internal)?;
    let (current, new) = (zeroize::Zeroizing::new(current.to_string()), zeroize::Zeroizing::new(new.to_string()));
    // Two PBKDF2 runs of the SCRAM iterations: off the async threads.
    let (old_key, new_key) = tokio::task::spawn_blocking(move || (old_keys.client_key(&current), new_keys.client_key(&new)))
        .await
        .map_err(|_| ApiError::Internal)?;
    let opener = (rampart_store::userkey::PASSWORD.to_string(), old_key);
    s.store.add_user_key_wrap(account, rampart_store::userkey::PASSWORD, new_key, Some(opener)).await?;
    Ok(())
}

/// Starts TOTP enrollment: the secret, its `otpauth://` URI and a QR code of it (SVG). A
/// session that logged in within `FRESH_LOGIN` enrolls as it is (an admin made to enroll does
/// it right after logging in); an older one sends `{password}` again (`reauth_required`).
pub async fn totp_begin(
    State(s): State<Arc<Services>>,
    Enrolling(caller): Enrolling,
    Extension(client): Extension<Client>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    let (account, address) = caller.account()?;
    if !caller.logged_in_recently(crate::now()) {
        // The body is optional: a fresh session sends none.
        let given = serde_json::from_slice::<Password>(&body).ok().map(|p| p.password).filter(|p| !p.is_empty());
        let password = given.ok_or(ApiError::Forbidden("reauth_required"))?;
        recheck(&s, &client, address, &password, "password").await?;
    }
    let secret = rampart_auth::totp::begin(s.store.as_ref(), account).await?;
    let uri = rampart_auth::totp::uri(&secret, address, &s.issuer()).ok_or(ApiError::Internal)?;
    let qr = qrcode::QrCode::new(uri.as_bytes()).map_err(|_| ApiError::Internal)?;
    let svg = qr.render::<qrcode::render::svg::Color>().min_dimensions(200, 200).build();
    Ok(Json(json!({ "secret": secret, "uri": uri, "qr_svg": svg })))
}

#[derive(Deserialize)]
pub struct Code {
    code: String,
}

/// Confirms enrollment with a current code; answers the recovery codes, shown once.
pub async fn totp_confirm(
    State(s): State<Arc<Services>>,
    Enrolling(caller): Enrolling,
    Body(req): Body<Code>,
) -> ApiResult<Json<Value>> {
    let (account, address) = caller.account()?;
    let now = crate::now().max(0) as u64;
    let codes = rampart_auth::totp::confirm(s.store.as_ref(), account, &req.code, now).await?;
    info!(event = "totp_enrolled", proto = "web", user = %address);
    Ok(Json(json!({ "recovery_codes": codes })))
}

#[derive(Deserialize)]
pub struct Password {
    password: String,
}

/// Turns TOTP off; needs the password. An admin under `web.require_2fa_for_admins` is then
/// limited to enrolling again.
pub async fn totp_disable(
    State(s): State<Arc<Services>>,
    Authed(caller): Authed,
    Extension(client): Extension<Client>,
    Body(req): Body<Password>,
) -> ApiResult<Json<Value>> {
    let (account, address) = caller.account()?;
    recheck(&s, &client, address, &req.password, "password").await?;
    let removed = s.store.totp_remove(account).await?;
    info!(event = "totp_disabled", proto = "web", user = %address, by = %address);
    Ok(Json(json!({ "ok": removed })))
}

pub async fn app_passwords(State(s): State<Arc<Services>>, Authed(caller): Authed) -> ApiResult<Json<Value>> {
    let (_, address) = caller.account()?;
    let list: Vec<Value> = s.store.list_app_passwords(address).await?.iter().map(app_password_json).collect();
    Ok(Json(json!(list)))
}

#[derive(Deserialize)]
pub struct NewAppPassword {
    name: String,
    /// The account's own password: required when per-user encryption is on, so that the app
    /// password can open the mail too.
    #[serde(default)]
    password: Option<String>,
}

/// Creates an app password for IMAP and SMTP clients; the answer is the only time it is shown.
pub async fn app_password_add(
    State(s): State<Arc<Services>>,
    Authed(caller): Authed,
    Extension(client): Extension<Client>,
    Body(req): Body<NewAppPassword>,
) -> ApiResult<Json<Value>> {
    let (account, address) = caller.account()?;
    let per_user = s.store.has_user_key(account).await?;
    if per_user {
        let Some(own) = req.password.as_deref() else {
            return Err(ApiError::BadRequest("per-user encryption is on: give your password, so that the app password opens your mail".into()));
        };
        recheck(&s, &client, address, own, "password").await?;
    }
    let password = new_app_password(&s, address, &req.name).await?;
    if let (true, Some(own)) = (per_user, req.password.as_deref()) {
        super::encryption::wrap_app_password(&s, account, address, req.name.trim(), &password, own).await?;
    }
    Ok(Json(json!({ "name": req.name.trim(), "password": password })))
}

pub async fn app_password_revoke(
    State(s): State<Arc<Services>>,
    Authed(caller): Authed,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    let (account, address) = caller.account()?;
    super::encryption::unwrap_app_password(&s, account, address, &name).await?;
    s.store.revoke_app_password(address, &name).await?;
    Ok(Json(json!({ "ok": true })))
}

/// Messages held for this user.
pub async fn quarantine(State(s): State<Arc<Services>>, Authed(caller): Authed) -> ApiResult<Json<Value>> {
    let (account, _) = caller.account()?;
    let list: Vec<Value> = s.store.held(Some(account)).await?.iter().map(held_json).collect();
    Ok(Json(json!(list)))
}

/// Releases a held message into this user's INBOX only.
pub async fn quarantine_release(
    State(s): State<Arc<Services>>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let (account, address) = caller.account()?;
    let n = s.quarantine.release(&id, Some(account)).await?;
    info!(event = "quarantine_released", proto = "web", id = %id, by = %address, mailboxes = n);
    Ok(Json(json!({ "released": n })))
}

/// Where and how this account logged in: network, protocol, first and last time, count.
pub async fn logins(State(s): State<Arc<Services>>, Authed(caller): Authed) -> ApiResult<Json<Value>> {
    let (_, address) = caller.account()?;
    Ok(Json(logins_json(&s, address).await?))
}

/// New recovery codes (the old ones stop working); needs the password. Shown once.
pub async fn recovery_codes(
    State(s): State<Arc<Services>>,
    Authed(caller): Authed,
    Extension(client): Extension<Client>,
    Body(req): Body<Password>,
) -> ApiResult<Json<Value>> {
    let (account, address) = caller.account()?;
    recheck(&s, &client, address, &req.password, "password").await?;
    let codes = rampart_auth::totp::renew_recovery_codes(s.store.as_ref(), account).await?;
    info!(event = "recovery_codes_renewed", proto = "web", user = %address);
    Ok(Json(json!({ "recovery_codes": codes })))
}

/// How many recovery codes are left.
pub async fn recovery_codes_left(State(s): State<Arc<Services>>, Authed(caller): Authed) -> ApiResult<Json<Value>> {
    let (account, _) = caller.account()?;
    Ok(Json(json!({ "left": s.store.recovery_codes_left(account).await? })))
}
