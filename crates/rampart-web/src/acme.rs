//! ACME HTTP-01 (RFC 8555 §8.3) on the http listener: `/.well-known/acme-challenge/TOKEN`
//! answers with the key authorization while an order waits for it; everything else keeps
//! redirecting to https.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rampart_tls::acme::Http01Tokens;

/// The challenge route, to merge before the redirect router.
pub fn http01(tokens: Arc<Http01Tokens>) -> Router {
    Router::new().route("/.well-known/acme-challenge/{token}", get(answer)).with_state(tokens)
}

async fn answer(State(tokens): State<Arc<Http01Tokens>>, Path(token): Path<String>) -> Response {
    match tokens.get(&token) {
        Some(key_authorization) => ([(header::CONTENT_TYPE, "application/octet-stream")], key_authorization).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}
