//! Security headers on every response, and the http listener's redirect.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Scripts, styles and images only from this server; no inline script, no framing, no
/// plugins; forms post only here.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
                   form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

pub async fn secure(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name, value: &'static str| {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    };
    set(h, header::STRICT_TRANSPORT_SECURITY, "max-age=31536000; includeSubDomains");
    set(h, header::CONTENT_SECURITY_POLICY, CSP);
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "no-referrer");
    // Answers carry account data: no shared or browser cache keeps them.
    set(h, header::CACHE_CONTROL, "no-store");
    resp
}

/// A Host header we may redirect to: a host name or an IP literal, with an optional port.
fn host_name(host: &str) -> Option<&str> {
    let name = match host.rsplit_once(':') {
        Some((n, p)) if !host.ends_with(']') && p.bytes().all(|b| b.is_ascii_digit()) => n,
        _ => host,
    };
    let ok = !name.is_empty()
        && name.len() <= 255
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'));
    ok.then_some(name)
}

/// 301 to the same host and path over HTTPS; 400 without a usable Host.
pub fn to_https(req: &Request, https_port: Option<u16>) -> Response {
    let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).and_then(host_name);
    let Some(host) = host else { return (StatusCode::BAD_REQUEST, "a Host header is needed\n").into_response() };
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let port = match https_port {
        Some(443) | None => String::new(),
        Some(p) => format!(":{p}"),
    };
    let location = format!("https://{host}{port}{path}");
    match HeaderValue::from_str(&location) {
        Ok(v) => (StatusCode::MOVED_PERMANENTLY, [(header::LOCATION, v)]).into_response(),
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(host_name("mx.example.test"), Some("mx.example.test"));
        assert_eq!(host_name("mx.example.test:8080"), Some("mx.example.test"));
        assert_eq!(host_name("[::1]:80"), Some("[::1]"));
        assert_eq!(host_name("[::1]"), Some("[::1]"));
        assert_eq!(host_name("evil.test/x"), None);
        assert_eq!(host_name(""), None);
    }
}

/// Body limits for [`whole_body`].
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    pub max: usize,
    pub timeout: std::time::Duration,
}

/// Reads the whole request body (at most `max` bytes, within `timeout`) before any handler
/// runs. A body trickled in slowly cannot hold a connection, and a handler that refuses early
/// (no login, no CSRF token) never leaves unread bytes behind, which would make hyper drop a
/// keep-alive connection the client still means to use.
pub async fn whole_body(axum::extract::State(limits): axum::extract::State<BodyLimits>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let close = [(header::CONNECTION, HeaderValue::from_static("close"))];
    match tokio::time::timeout(limits.timeout, axum::body::to_bytes(body, limits.max)).await {
        Ok(Ok(bytes)) => next.run(Request::from_parts(parts, axum::body::Body::from(bytes))).await,
        Ok(Err(_)) => (StatusCode::PAYLOAD_TOO_LARGE, close, "the request body is too large\n").into_response(),
        Err(_) => (StatusCode::REQUEST_TIMEOUT, close, "the request body came too slowly\n").into_response(),
    }
}
