//! API errors: a status, a stable `error` code and a message for people. Internal causes are
//! logged here and never sent.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use rampart_store::{ErrorKind, StoreError};
use tracing::warn;

#[derive(Debug)]
pub enum ApiError {
    /// Not logged in, or the session is over (`login_failed`, `totp_required`, `unauthenticated`).
    Unauthorized(&'static str),
    /// Logged in but not allowed (`forbidden`, `csrf`, `enroll_2fa_first`, `scope`).
    Forbidden(&'static str),
    NotFound,
    /// The request is wrong; the text says how.
    BadRequest(String),
    /// The guard refused for now (`account_protected`).
    TooMany(&'static str),
    Unavailable,
    Internal,
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &str, String) {
        match self {
            ApiError::Unauthorized(code) => (StatusCode::UNAUTHORIZED, code, "log in first".into()),
            ApiError::Forbidden(code) => (StatusCode::FORBIDDEN, code, "not allowed".into()),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found", "no such thing".into()),
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, "bad_request", m.clone()),
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
