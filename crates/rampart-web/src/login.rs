//! `POST /api/v1/login` and the session's own endpoints (`logout`, `logout-all`, `me`).
//!
//! A login needs the account password (never an app password: those are for mail clients,
//! and are not even tried, so a login costs one argon2 verification whether the account
//! exists or has app passwords) and, when the account has TOTP, a current code or an unused
//! recovery code. Failures are
//! logged as `event=auth_failure proto=web ip=...` (the line the fail2ban filter matches) and
//! counted by the guard with IMAP's and SMTP's, so the same per-address, per-network and
//! per-account limits and bans apply.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use rampart_auth::Failure;
use rampart_auth::totp::{random_token, token_hash};
use rampart_store::Role;
use serde::Deserialize;
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::error::{ApiError, ApiResult, Body};
use crate::session::{self, Caller, Enrolling};
use crate::{Client, Services};

#[derive(Deserialize)]
pub struct LoginRequest {
    username: String,
    password: String,
    /// A TOTP code or a recovery code.
    #[serde(default)]
    totp: Option<String>,
}

/// `user=` in log lines: what the client sent, without anything that could forge a field.
fn log_user(user: &str) -> String {
    user.chars().take(128).map(|c| if c.is_control() || c.is_whitespace() || c == '"' { '?' } else { c }).collect()
}

async fn failed(s: &Services, ip: IpAddr, user: &str, reason: &str) -> ApiError {
    count_failure(s, ip, user, reason).await;
    ApiError::Unauthorized("login_failed")
}

/// A wrong password, at login or when a session re-enters it (password change, TOTP off, new
/// recovery codes): logged for fail2ban, counted by the guard (bans), and answered late.
pub(crate) async fn count_failure(s: &Services, ip: IpAddr, user: &str, reason: &str) {
    warn!(event = "auth_failure", proto = "web", ip = %ip, listener = "https", user = %log_user(user), mechanism = "password", reason);
    s.guard.auth_failure("web", ip, Some(user)).await;
    // Each answer to a guesser waits.
    tokio::time::sleep(s.web.get().failure_delay).await;
}

pub async fn login(
    State(s): State<Arc<Services>>,
    Extension(Client(remote)): Extension<Client>,
    Body(req): Body<LoginRequest>,
) -> ApiResult<Response> {
    let ip = remote.ip();
    let user = req.username.trim();
    // One argon2 verification, whoever `user` is (see `verify_account_password`): an unknown
    // user, a wrong password and an app password cost the same and read `bad_credentials`.
    let identity = match s.auth.verify_account_password(user, &req.password).await {
        Ok(id) => id,
        Err(Failure::Temporary(e)) => {
            warn!(event = "auth_error", proto = "web", ip = %ip, error = %e);
            return Err(ApiError::Unavailable);
        }
        Err(f) => return Err(failed(&s, ip, user, f.reason()).await),
    };
    if !s.guard.login_allowed(ip, &identity.address).await {
        return Err(ApiError::TooMany("account_protected"));
    }
    // Suspended by the administrator or by containment (logins and sending): refused as IMAP
    // and SMTP refuse it, not counted as a guess.
    if s.guard.login_suspended(&identity.address).await {
        info!(event = "auth_refused", proto = "web", ip = %ip, listener = "https", user = %identity.address, reason = "account_suspended");
        return Err(ApiError::Forbidden("account_suspended"));
    }
    let account = s.store.web_account(&identity.address).await?.ok_or(ApiError::Unauthorized("login_failed"))?;
    if account.totp {
        let Some(code) = req.totp.as_deref().filter(|c| !c.trim().is_empty()) else {
            // The password was right; the client asks for the second factor and tries again.
            return Err(ApiError::Unauthorized("totp_required"));
        };
        let now = crate::now().max(0) as u64;
        if !rampart_auth::totp::verify(s.store.as_ref(), identity.account, code, now).await? {
            return Err(failed(&s, ip, &identity.address, "bad_totp").await);
        }
    }
    s.guard.auth_success("web", ip, &identity.address).await;
    info!(event = "auth_success", proto = "web", ip = %ip, listener = "https", user = %identity.address, mechanism = "password",
          totp = account.totp);
    let id = random_token(32);
    let csrf = random_token(24);
    s.store.session_put(&token_hash(&id), identity.account, &csrf, crate::now()).await?;
    let enroll_only = account.role == Role::Admin && s.web.get().require_2fa_for_admins && !account.totp;
    let body = json!({
        "address": identity.address,
        "role": account.role.name(),
        "totp": account.totp,
        "csrf": csrf,
        "enroll_2fa_first": enroll_only,
    });
    Ok(([(header::SET_COOKIE, session::set_cookie(&id))], Json(body)).into_response())
}

/// Ends this session.
pub async fn logout(State(s): State<Arc<Services>>, Enrolling(caller): Enrolling) -> ApiResult<Response> {
    if let Caller::Session { id_hash, .. } = &caller {
        s.store.session_remove(id_hash).await?;
    }
    Ok(([(header::SET_COOKIE, session::clear_cookie())], Json(json!({ "ok": true }))).into_response())
}

/// Ends every session of this account, on every device.
pub async fn logout_all(State(s): State<Arc<Services>>, Enrolling(caller): Enrolling) -> ApiResult<Response> {
    let (account, address) = caller.account()?;
    let n = s.store.sessions_remove(account, None).await?;
    info!(event = "web_logout_all", user = %address, sessions = n);
    Ok(([(header::SET_COOKIE, session::clear_cookie())], Json(json!({ "ok": true, "sessions": n }))).into_response())
}

/// Who is logged in, and the CSRF token again (a reloaded page has only the cookie).
pub async fn me(State(s): State<Arc<Services>>, headers: HeaderMap, Enrolling(caller): Enrolling) -> ApiResult<Json<Value>> {
    match &caller {
        Caller::Session { address, role, totp, .. } => {
            let csrf = match session::cookie(&headers) {
                Some(id) => s.store.session(&token_hash(&id)).await?.map(|x| x.csrf),
                None => None,
            };
            let enroll_only = *role == Role::Admin && s.web.get().require_2fa_for_admins && !totp;
            Ok(Json(json!({
                "address": address, "role": role.name(), "totp": totp, "csrf": csrf, "enroll_2fa_first": enroll_only,
            })))
        }
        Caller::Token { name, scopes } => Ok(Json(json!({ "token": name, "role": "admin", "scopes": scopes }))),
    }
}
