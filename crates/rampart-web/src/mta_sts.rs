//! The MTA-STS policy file (RFC 8461 §3.3) at `https://mta-sts.DOMAIN/.well-known/mta-sts.txt`
//! for every local domain, from `[mta_sts]`: answered only when the request's host is
//! `mta-sts.` followed by a local domain, as `text/plain`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::Services;

pub fn routes() -> Router<Arc<Services>> {
    Router::new().route("/.well-known/mta-sts.txt", get(policy))
}

/// The policy domain a request is for: its Host without port, after `mta-sts.`.
fn policy_domain(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let host = host.rsplit_once(':').filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit())).map_or(host, |(h, _)| h);
    let domain = host.trim_end_matches('.').to_ascii_lowercase().strip_prefix("mta-sts.")?.to_string();
    (!domain.is_empty()).then_some(domain)
}

async fn policy(State(s): State<Arc<Services>>, headers: HeaderMap) -> Response {
    let Some(domain) = policy_domain(&headers) else { return StatusCode::NOT_FOUND.into_response() };
    match s.store.is_local_domain(&domain).await {
        Ok(true) => {}
        Ok(false) => return StatusCode::NOT_FOUND.into_response(),
        Err(_) => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
    let text = s.mta_sts.policy_text(&s.hostname);
    ([(header::CONTENT_TYPE, "text/plain"), (header::CACHE_CONTROL, "max-age=300")], text).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domain_from_host() {
        let mut h = HeaderMap::new();
        assert_eq!(policy_domain(&h), None);
        h.insert(header::HOST, "MTA-STS.Example.test:8443".parse().unwrap());
        assert_eq!(policy_domain(&h).as_deref(), Some("example.test"));
        h.insert(header::HOST, "mx.example.test".parse().unwrap());
        assert_eq!(policy_domain(&h), None);
        h.insert(header::HOST, "mta-sts.".parse().unwrap());
        assert_eq!(policy_domain(&h), None);
    }
}
