//! API errors: a status, a stable `error` code and a message for people. Internal causes are
//! logged here and never sent.
//!
//! Statuses: 400 for malformed input (a body that is not the JSON asked for, a bad name or
//! address), 404 for what does not exist, 409 for a request that conflicts with what is there
//! (it exists already, the domain is in use, the last administrator). [`Body`] is the JSON
//! body extractor that answers its refusals in this shape too.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use rampart_store::{ErrorKind, StoreError};
use tracing::warn;

#[derive(Debug)]
pub enum ApiError {
    /// Not logged in, or the session is over (`login_failed`, `totp_required`, `unauthenticated`).
    Unauthorized(&'static str),
    /// Logged in but not allowed (`forbidden`, `csrf`, `enroll_2fa_first`, `scope`,
    /// `reauth_required`).
    Forbidden(&'static str),
    NotFound,
    /// The request is wrong; the text says how.
    BadRequest(String),
    /// The request conflicts with the current state (`exists`, `in_use`, `last_admin`,
    /// `conflict`); the text says how.
    Conflict(&'static str, String),
    /// The guard refused for now (`account_protected`).
    TooMany(&'static str),
    Unavailable,
    Internal,
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &str, String) {
        match self {
            ApiError::Unauthorized(code) => (StatusCode::UNAUTHORIZED, code, "log in first".into()),
            ApiError::Forbidden("reauth_required") => (
                StatusCode::FORBIDDEN,
                "reauth_required",
                format!("enter your password again: this session logged in more than {} minutes ago", crate::session::FRESH_LOGIN / 60),
            ),
            ApiError::Forbidden(code) => (StatusCode::FORBIDDEN, code, "not allowed".into()),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found", "no such thing".into()),
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m.clone()),
            ApiError::Conflict(code, m) => (StatusCode::CONFLICT, code, m.clone()),
            ApiError::TooMany(code) => (StatusCode::TOO_MANY_REQUESTS, code, "try again later".into()),
            ApiError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "try again later".into()),
            ApiError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "something went wrong on the server".into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = self.parts();
        let mut resp = (status, Json(serde_json::json!({ "error": code, "message": message }))).into_response();
        if matches!(self, ApiError::Unauthorized("login_failed")) {
            // A failed login may have banned the client: make it reconnect, so the guard sees it.
            resp.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e.kind() {
            // The store's own words, as the CLI prints them.
            ErrorKind::Refused => match e {
                StoreError::NotFound(_) => ApiError::NotFound,
                StoreError::Exists(_) => ApiError::Conflict("exists", e.to_string()),
                StoreError::LastAdmin(_) => ApiError::Conflict("last_admin", e.to_string()),
                StoreError::InUse { .. } | StoreError::HasChildren(_) => ApiError::Conflict("in_use", e.to_string()),
                StoreError::Conflict { .. } | StoreError::TooManyAppPasswords { .. } | StoreError::InboxUndeletable => {
                    ApiError::Conflict("conflict", e.to_string())
                }
                other => ApiError::BadRequest(other.to_string()),
            },
            ErrorKind::Unavailable => {
                warn!(event = "store_error", proto = "web", error = %e.chain());
                ApiError::Unavailable
            }
            ErrorKind::Internal => {
                warn!(event = "store_error", proto = "web", error = %e.chain());
                ApiError::Internal
            }
        }
    }
}

impl From<rampart_auth::totp::TotpError> for ApiError {
    fn from(e: rampart_auth::totp::TotpError) -> Self {
        use rampart_auth::totp::TotpError;
        match e {
            TotpError::Store(s) => s.into(),
            other => ApiError::BadRequest(other.to_string()),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// A JSON request body. axum's own `Json` answers a body it cannot read with 415 or 422 and a
/// plain-text message; this answers 400 in the API's `{error, message}` shape.
pub struct Body<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for Body<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(body)) => Ok(Body(body)),
            // axum's text names only what the client sent wrong (a missing field, bad JSON).
            Err(rejection) => Err(ApiError::BadRequest(rejection.body_text())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_refusals_map_to_statuses() {
        let status = |e: StoreError| ApiError::from(e).parts().0;
        assert_eq!(status(StoreError::Exists("domain x".into())), StatusCode::CONFLICT);
        assert_eq!(status(StoreError::LastAdmin("a@b.test".into())), StatusCode::CONFLICT);
        assert_eq!(status(StoreError::InUse { domain: "x".into(), accounts: 1, aliases: 0 }), StatusCode::CONFLICT);
        assert_eq!(status(StoreError::InvalidDomain("x y".into())), StatusCode::BAD_REQUEST);
        assert_eq!(status(StoreError::SelfAlias("a@b.test".into())), StatusCode::BAD_REQUEST);
        assert_eq!(status(StoreError::NotFound("x".into())), StatusCode::NOT_FOUND);
    }
}
