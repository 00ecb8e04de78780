//! The Web Key Directory (draft-koch-openpgp-webkey-service §3.1): users' OpenPGP keys
//! (`rampart user pgp set`, not `--no-publish`) for mail clients that look a recipient's key
//! up. The direct method, `https://DOMAIN/.well-known/openpgpkey/hu/HASH?l=LOCAL`, takes the
//! domain from the Host; the advanced method, `https://openpgpkey.DOMAIN/.well-known/
//! openpgpkey/DOMAIN/hu/HASH`, from the path. HASH is the z-base-32 SHA-1 of the lowercased
//! local part (`rampart_pgp::wkd`). The key is the binary transferable public key.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::Services;

pub fn routes() -> Router<Arc<Services>> {
    Router::new()
        .route("/.well-known/openpgpkey/hu/{hash}", get(direct_key))
        .route("/.well-known/openpgpkey/policy", get(direct_policy))
        .route("/.well-known/openpgpkey/{domain}/hu/{hash}", get(advanced_key))
        .route("/.well-known/openpgpkey/{domain}/policy", get(advanced_policy))
}

/// The request's Host without the port, lowercased.
fn host(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let host = host.rsplit_once(':').filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit())).map_or(host, |(h, _)| h);
    Some(host.trim_end_matches('.').to_ascii_lowercase())
}

async fn direct_key(State(s): State<Arc<Services>>, headers: HeaderMap, Path(hash): Path<String>) -> Response {
    let Some(domain) = host(&headers) else { return StatusCode::NOT_FOUND.into_response() };
    key(&s, &domain, &hash).await
}

async fn advanced_key(State(s): State<Arc<Services>>, Path((domain, hash)): Path<(String, String)>) -> Response {
    key(&s, &domain.to_ascii_lowercase(), &hash).await
}

async fn direct_policy(State(s): State<Arc<Services>>, headers: HeaderMap) -> Response {
    let Some(domain) = host(&headers) else { return StatusCode::NOT_FOUND.into_response() };
    policy(&s, &domain).await
}

async fn advanced_policy(State(s): State<Arc<Services>>, Path(domain): Path<String>) -> Response {
    policy(&s, &domain.to_ascii_lowercase()).await
}

/// §4.5: the policy file of a domain that takes part; empty: no options.
async fn policy(s: &Services, domain: &str) -> Response {
    match s.store.is_local_domain(domain).await {
        Ok(true) => ([(header::CONTENT_TYPE, "text/plain"), (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")], "").into_response(),
        Ok(false) => StatusCode::NOT_FOUND.into_response(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// The published key whose local part hashes to `hash`, or 404. The `l` parameter is only a
/// hint (§3.1): the hash decides.
async fn key(s: &Services, domain: &str, hash: &str) -> Response {
    let keys = match s.store.pgp_published(domain).await {
        Ok(keys) => keys,
        Err(_) => return StatusCode::SERVICE_UNAVAILABLE.into_response(),
    };
    let found = keys.into_iter().find(|k| k.address.rsplit_once('@').is_some_and(|(local, _)| rampart_pgp::wkd::hashed_local(local) == hash));
    match found {
        // §3.1: "application/octet-stream", the binary key; any origin may read it (§3.1 CORS).
        Some(k) => ([(header::CONTENT_TYPE, "application/octet-stream"), (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")], k.key).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_without_port() {
        let mut h = HeaderMap::new();
        assert_eq!(host(&h), None);
        h.insert(header::HOST, "Example.test:8443".parse().unwrap());
        assert_eq!(host(&h).as_deref(), Some("example.test"));
        h.insert(header::HOST, "openpgpkey.example.test.".parse().unwrap());
        assert_eq!(host(&h).as_deref(), Some("openpgpkey.example.test"));
    }
}
