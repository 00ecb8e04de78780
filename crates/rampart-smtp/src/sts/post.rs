//! Sending a TLS report to an `https:` rua (RFC 8460 §3, §5.3): one HTTP POST of the gzipped
//! JSON as `application/tlsrpt+gzip`, to a server whose certificate validates for the URI's
//! host; any 2xx is success, anything else (a redirect included: it is not followed) failure.

use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::client::TlsClient;
use crate::dns::{self, Resolver};

/// The longest a report POST may take, connect to answer: the report is small, and a receiver
/// that stalls must not hold up the reports to other domains.
pub const POST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a POST failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    #[error("not an https URI: {0}")]
    Uri(String),
    #[error("{0}")]
    Transport(String),
    #[error("the receiver answered HTTP {0}")]
    Status(u16),
    #[error("no answer within {}s", POST_TIMEOUT.as_secs())]
    Timeout,
}

/// POSTs `gzipped` (the report's gzipped JSON) to `uri`.
pub async fn post_report(tls: &TlsClient, resolver: &Resolver, uri: &str, gzipped: Vec<u8>) -> Result<(), PostError> {
    let parsed: hyper::Uri = uri.parse().map_err(|_| PostError::Uri(uri.chars().take(200).collect()))?;
    let host = match (parsed.scheme_str(), parsed.host()) {
        (Some(s), Some(h)) if s.eq_ignore_ascii_case("https") => h.trim_start_matches('[').trim_end_matches(']').to_string(),
        _ => return Err(PostError::Uri(uri.chars().take(200).collect())),
    };
    let port = parsed.port_u16().unwrap_or(443);
    let path = parsed.path_and_query().map_or("/", |p| p.as_str()).to_string();
    tokio::time::timeout(POST_TIMEOUT, post(tls, resolver, &host, port, &path, gzipped)).await.map_err(|_| PostError::Timeout)?
}

async fn post(tls: &TlsClient, resolver: &Resolver, host: &str, port: u16, path: &str, body: Vec<u8>) -> Result<(), PostError> {
    let t = |e: &dyn std::fmt::Display| PostError::Transport(format!("{host}: {e}"));
    let ips = dns::addresses(resolver, host).await.map_err(|e| t(&e))?;
    let ip = ips.first().ok_or_else(|| t(&"no address"))?;
    let tcp = TcpStream::connect((*ip, port)).await.map_err(|e| t(&e))?;
    let config = tls.verifying_config().map_err(|e| t(&e))?;
    let name = rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| t(&e))?;
    let stream = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.map_err(|e| t(&e))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| t(&e))?;
    // The connection task ends with the response (or the timeout dropping this future).
    let driver = tokio::spawn(conn);
    let authority = if port == 443 { host.to_string() } else { format!("{host}:{port}") };
    let request = hyper::Request::post(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::USER_AGENT, "rampart")
        // RFC 8460 §5.3: the gzipped report's media type (§6.4).
        .header(hyper::header::CONTENT_TYPE, "application/tlsrpt+gzip")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| t(&e))?;
    let response = sender.send_request(request).await.map_err(|e| t(&e));
    driver.abort();
    let status = response?.status();
    if status.is_success() { Ok(()) } else { Err(PostError::Status(status.as_u16())) }
}
