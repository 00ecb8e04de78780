//! Finding a domain's MTA-STS policy on the network: the `_mta-sts` TXT record (RFC 8461 §3.1,
//! parsed by mail-auth) and the policy file over HTTPS (§3.3): certificate valid for
//! `mta-sts.DOMAIN`, status 200 only (no redirects), `text/plain`, at most [`MAX_POLICY`] bytes,
//! everything within the fetch timeout.

use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use hickory_resolver::proto::rr::RData;
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::mta_sts::MtaSts;
use tokio::net::TcpStream;

use crate::client::TlsClient;
use crate::dns::{self, Resolver};

/// RFC 8461 §3.3 leaves the limit to the sender; 64 KiB is far above any real policy.
pub const MAX_POLICY: usize = 64 * 1024;

/// What the `_mta-sts` TXT lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Txt {
    /// Exactly one `v=STSv1` record, with this id.
    Id(String),
    /// No usable record (none, several, or an invalid one: §3.1 treats all alike).
    Absent,
    /// DNS did not answer.
    TempFail(String),
}

/// Why a policy could not be had; each maps to an RFC 8460 §4.3.2.2 result type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    /// The policy host's certificate did not validate (sts-webpki-invalid).
    #[error("policy host certificate: {0}")]
    Webpki(String),
    /// Anything else on the way (sts-policy-fetch-error).
    #[error("policy fetch: {0}")]
    Fetch(String),
    /// The file was fetched but is not a valid policy (sts-policy-invalid).
    #[error("policy invalid: {0}")]
    Invalid(String),
}

impl FetchError {
    pub fn result_type(&self) -> &'static str {
        match self {
            FetchError::Webpki(_) => "sts-webpki-invalid",
            FetchError::Fetch(_) => "sts-policy-fetch-error",
            FetchError::Invalid(_) => "sts-policy-invalid",
        }
    }
}

pub async fn txt_id(resolver: &Resolver, domain: &str) -> Txt {
    let name = format!("_mta-sts.{}.", domain.trim_end_matches('.'));
    match resolver.txt_lookup(name.as_str()).await {
        Ok(lookup) => {
            // §3.1: records that do not start with v=STSv1 are someone else's; of the rest,
            // exactly one must be there and valid.
            let ours: Vec<String> = lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::TXT(t) => Some(t.txt_data.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect::<String>()),
                    _ => None,
                })
                .filter(|t| t.starts_with("v=STSv1"))
                .collect();
            match ours.as_slice() {
                [one] => MtaSts::parse(one.as_bytes()).map_or(Txt::Absent, |r| Txt::Id(r.id)),
                _ => Txt::Absent,
            }
        }
        Err(e) if e.is_nx_domain() || e.is_no_records_found() => Txt::Absent,
        Err(e) => Txt::TempFail(e.to_string()),
    }
}

/// Fetches `https://mta-sts.DOMAIN/.well-known/mta-sts.txt` (on `port`) and returns its text.
pub async fn policy_text(tls: &TlsClient, resolver: &Resolver, domain: &str, port: u16, timeout: Duration) -> Result<String, FetchError> {
    let host = format!("mta-sts.{}", domain.trim_end_matches('.'));
    tokio::time::timeout(timeout, get(tls, resolver, &host, port))
        .await
        .map_err(|_| FetchError::Fetch(format!("no policy from {host} within {}s", timeout.as_secs())))?
}

async fn get(tls: &TlsClient, resolver: &Resolver, host: &str, port: u16) -> Result<String, FetchError> {
    let ips = dns::addresses(resolver, host).await.map_err(FetchError::Fetch)?;
    let ip = ips.first().ok_or_else(|| FetchError::Fetch(format!("no address for {host}")))?;
    let tcp = TcpStream::connect((*ip, port)).await.map_err(|e| FetchError::Fetch(format!("{host}: {e}")))?;
    let config = tls.verifying_config().map_err(|e| FetchError::Fetch(e.to_string()))?;
    let name = rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| FetchError::Fetch(e.to_string()))?;
    let stream = tokio_rustls::TlsConnector::from(config).connect(name, tcp).await.map_err(|e| {
        // A certificate problem is the one §3.3 singles out; the rest are transport failures.
        match e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) {
            Some(rustls::Error::InvalidCertificate(c)) => FetchError::Webpki(format!("{c:?}")),
            _ => FetchError::Fetch(format!("TLS with {host}: {e}")),
        }
    })?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| FetchError::Fetch(e.to_string()))?;
    // The connection task ends with the response (or the timeout dropping this future).
    let driver = tokio::spawn(conn);
    let request = hyper::Request::get("/.well-known/mta-sts.txt")
        .header(hyper::header::HOST, host)
        .header(hyper::header::USER_AGENT, "rampart")
        .body(Empty::<Bytes>::new())
        .map_err(|e| FetchError::Fetch(e.to_string()))?;
    let response = sender.send_request(request).await.map_err(|e| FetchError::Fetch(e.to_string()))?;
    let result = read(response, host).await;
    driver.abort();
    result
}

async fn read(response: hyper::Response<hyper::body::Incoming>, host: &str) -> Result<String, FetchError> {
    // §3.3: "Senders MUST NOT follow HTTP redirects"; only 200 carries a policy.
    if response.status() != hyper::StatusCode::OK {
        return Err(FetchError::Fetch(format!("{host} answered HTTP {}", response.status().as_u16())));
    }
    let media = response.headers().get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !media.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("text/plain") {
        return Err(FetchError::Invalid(format!("media type `{}` is not text/plain", media.chars().take(60).collect::<String>())));
    }
    let body = Limited::new(response.into_body(), MAX_POLICY)
        .collect()
        .await
        .map_err(|e| FetchError::Fetch(format!("policy body from {host}: {e}")))?
        .to_bytes();
    String::from_utf8(body.to_vec()).map_err(|_| FetchError::Invalid("the policy is not UTF-8".into()))
}
