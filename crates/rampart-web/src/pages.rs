//! The pages: one HTML shell, a script and a style sheet, all compiled into the binary; the
//! script draws every page from the JSON API (nothing a page does is possible only through
//! HTML). No inline script, so the Content-Security-Policy forbids it outright.

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::Services;

const INDEX: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/app.css");
const CERTS: &str = include_str!("../assets/certs.js");

pub fn routes() -> Router<Arc<Services>> {
    Router::new()
        .route("/", get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX).into_response() }))
        .route("/app.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], SCRIPT).into_response() }))
        .route("/certs.js", get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], CERTS).into_response() }))
        .route("/app.css", get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response() }))
}
