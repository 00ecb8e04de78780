//! Who is asking: a web session (cookie) or an API token (`Authorization: Bearer`).
//!
//! Session IDs are 32 random bytes, stored only as their SHA-256; the cookie is
//! `__Host-rampart=ID; Secure; HttpOnly; SameSite=Strict; Path=/` (the `__Host-` prefix makes
//! browsers refuse it without Secure and Path=/ or with a Domain). Sessions end after
//! `web.session_idle_timeout` unused and `web.session_max_age` after login. Every request
//! that changes something through a session must carry the session's CSRF token in
//! `X-CSRF-Token` (SameSite=Strict is the first line, this the second).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};
use rampart_auth::totp::token_hash;
use rampart_store::{AccountId, Role};
use subtle::ConstantTimeEq;

use crate::Services;
use crate::error::ApiError;

pub const COOKIE: &str = "__Host-rampart";
/// A session's last use is written at most this often (seconds): not a write per request.
const TOUCH_EVERY: i64 = 60;
/// A session that logged in this recently (seconds) may enroll TOTP without typing the
/// password again: the password was just given. An older one may be a cookie left on a shared
/// or stolen device, which must not bind its own authenticator to the account.
pub const FRESH_LOGIN: i64 = 300;

/// What the caller is.
#[derive(Debug, Clone)]
pub enum Caller {
    /// `created`: when the session logged in (unix seconds).
    Session { account: AccountId, address: String, role: Role, totp: bool, id_hash: String, created: i64 },
    /// An API token: admin rights within its scopes.
    Token { name: String, scopes: Vec<String> },
}

/// Any logged-in caller, including an admin who must enroll TOTP first (only the enrollment
/// endpoints take this).
pub struct Enrolling(pub Caller);

/// A logged-in caller with full rights of its role.
pub struct Authed(pub Caller);

/// An admin session or an API token.
pub struct Admin(pub Caller);

/// API token scopes; a token without scopes has them all.
pub const SCOPES: [&str; 9] = ["domains", "users", "aliases", "quarantine", "spam", "bans", "queue", "stats", "certificates"];

impl Caller {
    /// The account behind a session; `Forbidden` for an API token (self-service needs a person).
    pub fn account(&self) -> Result<(AccountId, &str), ApiError> {
        match self {
            Caller::Session { account, address, .. } => Ok((*account, address)),
            Caller::Token { .. } => Err(ApiError::Forbidden("forbidden")),
        }
    }

    /// For what makes or acts on administrators (creating one, changing roles, resetting an
    /// admin's password or second factor): an admin's session or a token without scopes. A
    /// scoped token could otherwise make itself an admin and reach every scope.
    pub fn full_admin(&self) -> Result<(), ApiError> {
        match self {
            Caller::Token { scopes, .. } if !scopes.is_empty() => Err(ApiError::Forbidden("scope")),
            _ => Ok(()),
        }
    }

    /// For admin endpoints: an API token must have `scope`.
    pub fn scope(&self, scope: &str) -> Result<(), ApiError> {
        match self {
            Caller::Token { scopes, .. } if !scopes.is_empty() && !scopes.iter().any(|s| s == scope) => {
                Err(ApiError::Forbidden("scope"))
            }
            _ => Ok(()),
        }
    }

    /// A session that logged in within [`FRESH_LOGIN`]; never an API token.
    pub fn logged_in_recently(&self, now: i64) -> bool {
        matches!(self, Caller::Session { created, .. } if now - created <= FRESH_LOGIN)
    }

    pub fn who(&self) -> String {
        match self {
            Caller::Session { address, .. } => address.clone(),
            Caller::Token { name, .. } => format!("token:{name}"),
        }
    }
}

/// The session cookie's value, if sent.
pub fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())
}

pub fn set_cookie(id: &str) -> String {
    format!("{COOKIE}={id}; Secure; HttpOnly; SameSite=Strict; Path=/")
}

pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Secure; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

async fn caller(parts: &Parts, s: &Arc<Services>) -> Result<(Caller, bool), ApiError> {
    if let Some(auth) = parts.headers.get(header::AUTHORIZATION) {
        let token = auth.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).ok_or(ApiError::Unauthorized("unauthenticated"))?;
        let t = s.store.api_token_use(&token_hash(token.trim()), crate::now()).await?;
        let t = t.ok_or(ApiError::Unauthorized("unauthenticated"))?;
        return Ok((Caller::Token { name: t.name, scopes: t.scopes }, false));
    }
    let id = cookie(&parts.headers).ok_or(ApiError::Unauthorized("unauthenticated"))?;
    let id_hash = token_hash(&id);
    let session = s.store.session(&id_hash).await?.ok_or(ApiError::Unauthorized("unauthenticated"))?;
    let now = crate::now();
    let web = s.web.get();
    let idle = web.session_idle_timeout.as_secs() as i64;
    let max_age = web.session_max_age.as_secs() as i64;
    if now - session.last_seen > idle || now - session.created > max_age {
        s.store.session_remove(&id_hash).await?;
        return Err(ApiError::Unauthorized("session_expired"));
    }
    if changes_state(&parts.method) {
        let sent = parts.headers.get("x-csrf-token").map(|v| v.as_bytes()).unwrap_or_default();
        if !bool::from(sent.ct_eq(session.csrf.as_bytes())) {
            return Err(ApiError::Forbidden("csrf"));
        }
    }
    if now - session.last_seen >= TOUCH_EVERY {
        s.store.session_touch(&id_hash, now).await?;
    }
    let enroll_only = session.role == Role::Admin && web.require_2fa_for_admins && !session.totp;
    let caller = Caller::Session { account: session.account, address: session.address, role: session.role, totp: session.totp, id_hash,
                                  created: session.created };
    Ok((caller, enroll_only))
}

impl FromRequestParts<Arc<Services>> for Enrolling {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, s: &Arc<Services>) -> Result<Self, ApiError> {
        Ok(Enrolling(caller(parts, s).await?.0))
    }
}

impl FromRequestParts<Arc<Services>> for Authed {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, s: &Arc<Services>) -> Result<Self, ApiError> {
        let (caller, enroll_only) = caller(parts, s).await?;
        if enroll_only {
            return Err(ApiError::Forbidden("enroll_2fa_first"));
        }
        Ok(Authed(caller))
    }
}

impl FromRequestParts<Arc<Services>> for Admin {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, s: &Arc<Services>) -> Result<Self, ApiError> {
        let Authed(caller) = Authed::from_request_parts(parts, s).await?;
        match &caller {
            Caller::Session { role: Role::Admin, .. } | Caller::Token { .. } => Ok(Admin(caller)),
            Caller::Session { .. } => Err(ApiError::Forbidden("forbidden")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; __Host-rampart=abc; b=2".parse().unwrap());
        assert_eq!(cookie(&h).as_deref(), Some("abc"));
        h.insert(header::COOKIE, "rampart=abc".parse().unwrap());
        assert_eq!(cookie(&h), None);
    }
}
