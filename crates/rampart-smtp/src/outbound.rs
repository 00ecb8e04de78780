//! One delivery attempt: the recipients of one queued message in one domain, to the domain's
//! MX hosts (RFC 5321 §5) or the route's smart host, with the route's TLS policy.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rampart_config::{OutboundTls, Route};
use tracing::{info, warn};

use crate::client::{Client, ClientError, Response, TlsClient, TlsOutcome};
use crate::dns::{self, Mx, Resolver};

/// What happened to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptResult {
    Delivered { reply: String },
    /// Try again later.
    Temporary { reason: String },
    /// Give up and tell the sender.
    Permanent { reason: String, status: String },
}

/// Everything outbound delivery needs that does not change between attempts.
pub struct Outbound {
    pub resolver: Resolver,
    pub hostname: String,
    pub remote_port: u16,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
    pub routes: Vec<ResolvedRoute>,
    /// Trust anchors for MX hosts.
    pub tls: TlsClient,
}

/// A `[[queue.route]]` with its secrets read and its client certificate loaded.
pub struct ResolvedRoute {
    pub route: Route,
    pub password: Option<String>,
    pub tls: Option<TlsClient>,
}

impl Outbound {
    fn route_for(&self, domain: &str) -> Option<&ResolvedRoute> {
        self.routes.iter().find(|r| r.route.domains.iter().any(|d| d == "*" || d.eq_ignore_ascii_case(domain)))
    }
}

/// One message to deliver to some recipients of one domain.
pub struct Attempt<'a> {
    pub id: &'a str,
    pub sender: &'a str,
    pub domain: &'a str,
    pub rcpts: &'a [String],
    pub message: &'a [u8],
    pub smtputf8: bool,
}

fn all(n: usize, r: RcptResult) -> Vec<RcptResult> {
    vec![r; n]
}

fn temporary(reason: impl Into<String>) -> RcptResult {
    RcptResult::Temporary { reason: reason.into() }
}

fn permanent(reason: impl Into<String>, status: &str) -> RcptResult {
    RcptResult::Permanent { reason: reason.into(), status: status.into() }
}

/// Why a host was given up on, to try the next one.
pub(crate) struct HostFailure(pub String);

/// Delivers to the first host that takes the transaction; results are in `rcpts` order.
pub async fn deliver(out: &Outbound, a: &Attempt<'_>) -> Vec<RcptResult> {
    let route = out.route_for(a.domain);
    let policy = route.map_or(OutboundTls::Opportunistic, |r| r.route.tls);
    let port = route.and_then(|r| r.route.port).unwrap_or(out.remote_port);
    let hosts = match route.and_then(|r| r.route.host.clone()) {
        Some(host) => vec![host],
        None => match dns::mx(&out.resolver, a.domain).await {
            Mx::Hosts(h) => h,
            Mx::Null => return all(a.rcpts.len(), permanent(format!("{} accepts no mail (null MX, RFC 7505)", a.domain), "5.1.10")),
            Mx::NoDomain => return all(a.rcpts.len(), permanent(format!("domain {} does not exist", a.domain), "5.1.2")),
            Mx::TempFail(e) => return all(a.rcpts.len(), temporary(format!("DNS lookup of {} failed: {e}", a.domain))),
        },
    };
    let mut last = String::from("no MX host");
    for host in &hosts {
        let ips = match dns::addresses(&out.resolver, host).await {
            Ok(ips) => ips,
            Err(e) => {
                last = e;
                continue;
            }
        };
        for ip in ips {
            let addr = SocketAddr::new(ip, port);
            match session(out, route, policy, host, addr, a).await {
                Ok(results) => return results,
                Err(HostFailure(why)) => {
                    info!(event = "delivery_host_failed", id = a.id, host = %host, addr = %addr, reason = %why);
                    last = format!("{host} [{addr}]: {why}");
                }
            }
        }
    }
    all(a.rcpts.len(), temporary(last))
}

fn describe(e: ClientError) -> HostFailure {
    HostFailure(e.to_string())
}

async fn session(
    out: &Outbound,
    route: Option<&ResolvedRoute>,
    policy: OutboundTls,
    host: &str,
    addr: SocketAddr,
    a: &Attempt<'_>,
) -> Result<Vec<RcptResult>, HostFailure> {
    let tls_client = route.and_then(|r| r.tls.as_ref()).unwrap_or(&out.tls);
    let peer = Peer { hostname: &out.hostname, tls: tls_client, policy, host, addr };
    let (mut c, tls) = open(&peer, out.connect_timeout, out.command_timeout).await?;
    match &tls {
        Some(t) => info!(
            event = "delivery_tls", id = a.id, host = %host, addr = %addr, tls = %t.version, cipher = %t.cipher,
            verified = t.unverified.is_none(), reason = t.unverified.as_deref().unwrap_or("-")
        ),
        None => info!(event = "delivery_tls", id = a.id, host = %host, addr = %addr, tls = "none"),
    }
    if let Some(r) = route.filter(|r| r.route.auth_username.is_some()) {
        authenticate(&mut c, r).await?;
    }
    let results = transaction(&mut c, a).await.map_err(describe)?;
    for (rcpt, result) in a.rcpts.iter().zip(&results) {
        let (outcome, detail) = match result {
            RcptResult::Delivered { reply } => ("delivered", reply.as_str()),
            RcptResult::Temporary { reason } => ("deferred", reason.as_str()),
            RcptResult::Permanent { reason, .. } => ("failed", reason.as_str()),
        };
        info!(event = "delivery", id = a.id, rcpt = %rcpt, host = %host, addr = %addr, result = outcome, reply = %detail);
    }
    c.quit().await;
    Ok(results)
}

/// The server a client session is opened to, and how.
pub(crate) struct Peer<'a> {
    /// Our name, for EHLO.
    pub hostname: &'a str,
    pub tls: &'a TlsClient,
    pub policy: OutboundTls,
    /// The host's name, for SNI and certificate checks.
    pub host: &'a str,
    pub addr: SocketAddr,
}

/// Connects, reads the greeting, says EHLO and upgrades to TLS as `policy` asks (EHLO again
/// inside TLS): a session ready for AUTH or MAIL. Queue deliveries and gateway callouts share it.
pub(crate) async fn open(p: &Peer<'_>, connect_timeout: Duration, command_timeout: Duration) -> Result<(Client, Option<TlsOutcome>), HostFailure> {
    let mut c = Client::connect(p.addr, connect_timeout, command_timeout).await.map_err(describe)?;
    let mut tls: Option<TlsOutcome> = None;
    if p.policy == OutboundTls::Implicit {
        tls = Some(c.upgrade(p.tls, p.host, true).await.map_err(describe)?);
    }
    let greeting = c.read_response().await.map_err(describe)?;
    if greeting.code != 220 {
        return Err(HostFailure(format!("greeting {}", greeting.text())));
    }
    let ehlo = c.ehlo(p.hostname).await.map_err(describe)?;
    if ehlo.code != 250 {
        return Err(HostFailure(format!("HELO refused: {}", ehlo.text())));
    }
    if tls.is_some() {
        return Ok((c, tls));
    }
    if c.has("STARTTLS") {
        let r = c.command("STARTTLS").await.map_err(describe)?;
        if r.code != 220 {
            return Err(HostFailure(format!("STARTTLS refused: {}", r.text())));
        }
        tls = Some(c.upgrade(p.tls, p.host, p.policy == OutboundTls::Verify).await.map_err(describe)?);
        let r = c.ehlo(p.hostname).await.map_err(describe)?;
        if r.code != 250 {
            return Err(HostFailure(format!("EHLO after STARTTLS refused: {}", r.text())));
        }
    } else if matches!(p.policy, OutboundTls::Require | OutboundTls::Verify) {
        return Err(HostFailure("TLS is required for this destination but the server offers no STARTTLS".into()));
    }
    Ok((c, tls))
}

/// AUTH PLAIN to a smart host; only ever inside TLS.
async fn authenticate(c: &mut Client, r: &ResolvedRoute) -> Result<(), HostFailure> {
    let user = r.route.auth_username.as_deref().unwrap_or_default();
    let password = r.password.as_deref().unwrap_or_default();
    let offered = c.extensions.get("AUTH").map(|m| m.to_ascii_uppercase()).unwrap_or_default();
    if !offered.split(' ').any(|m| m == "PLAIN") {
        return Err(HostFailure(format!("the smart host offers no AUTH PLAIN (offers: {offered})")));
    }
    let token = B64.encode(format!("\0{user}\0{password}"));
    let reply = c.command(&format!("AUTH PLAIN {token}")).await.map_err(describe)?;
    if reply.code != 235 {
        warn!(event = "smarthost_auth_failed", user = %user, reply = %reply.text());
        return Err(HostFailure(format!("authentication as {user} failed: {}", reply.text())));
    }
    Ok(())
}

fn classify(r: &Response, default_status: &str) -> RcptResult {
    if r.is_transient() {
        temporary(r.text())
    } else {
        permanent(r.text(), &r.enhanced().unwrap_or_else(|| default_status.to_string()))
    }
}

/// MAIL, RCPT..., DATA: pipelined when the server allows it (RFC 2920).
async fn transaction(c: &mut Client, a: &Attempt<'_>) -> Result<Vec<RcptResult>, ClientError> {
    let n = a.rcpts.len();
    if a.smtputf8 && !c.has("SMTPUTF8") {
        return Ok(all(n, permanent("the receiving server does not support SMTPUTF8 addresses", "5.6.7")));
    }
    let size = a.message.len();
    if let Some(limit) = c.extensions.get("SIZE").and_then(|v| v.parse::<usize>().ok()).filter(|l| *l > 0)
        && size > limit {
            return Ok(all(n, permanent(format!("the message ({size} bytes) exceeds the receiver's limit of {limit}"), "5.3.4")));
        }
    let mut mail = format!("MAIL FROM:<{}>", a.sender);
    if c.has("SIZE") {
        mail.push_str(&format!(" SIZE={size}"));
    }
    if c.has("8BITMIME") && !a.message.is_ascii() {
        mail.push_str(" BODY=8BITMIME");
    }
    if a.smtputf8 {
        mail.push_str(" SMTPUTF8");
    }
    let mut rcpt_results: Vec<Option<RcptResult>> = vec![None; n];
    let mail_reply = if c.has("PIPELINING") {
        let mut batch = format!("{mail}\r\n");
        for r in a.rcpts {
            batch.push_str(&format!("RCPT TO:<{r}>\r\n"));
        }
        c.send(batch.as_bytes()).await?;
        let mail_reply = c.read_response().await?;
        for slot in rcpt_results.iter_mut() {
            let r = c.read_response().await?;
            *slot = Some(if r.is_positive() { RcptResult::Delivered { reply: String::new() } } else { classify(&r, "5.1.1") });
        }
        mail_reply
    } else {
        let mail_reply = c.command(&mail).await?;
        if mail_reply.is_positive() {
            for (i, r) in a.rcpts.iter().enumerate() {
                let reply = c.command(&format!("RCPT TO:<{r}>")).await?;
                rcpt_results[i] =
                    Some(if reply.is_positive() { RcptResult::Delivered { reply: String::new() } } else { classify(&reply, "5.1.1") });
            }
        }
        mail_reply
    };
    if !mail_reply.is_positive() {
        let _ = c.command("RSET").await;
        return Ok(all(n, classify(&mail_reply, "5.1.7")));
    }
    let accepted: Vec<usize> =
        (0..n).filter(|&i| matches!(rcpt_results[i], Some(RcptResult::Delivered { .. }))).collect();
    if accepted.is_empty() {
        let _ = c.command("RSET").await;
        return Ok(rcpt_results.into_iter().map(|r| r.expect("every recipient got a reply")).collect());
    }
    let data = c.command("DATA").await?;
    let final_result = if data.code != 354 {
        classify(&data, "5.0.0")
    } else {
        c.send_data(a.message).await?;
        let done = c.read_response().await?;
        if done.is_positive() { RcptResult::Delivered { reply: done.text() } } else { classify(&done, "5.0.0") }
    };
    for i in accepted {
        rcpt_results[i] = Some(final_result.clone());
    }
    Ok(rcpt_results.into_iter().map(|r| r.expect("every recipient got a reply")).collect())
}

/// Trust anchors for outbound TLS: the system's (Debian's ca-certificates) plus
/// `queue.extra_ca_file`.
pub fn root_store(extra_ca_file: Option<&std::path::Path>) -> Result<Arc<rustls::RootCertStore>, String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = extra_ca_file {
        let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("queue.extra_ca_file: {}: {e}", path.display()))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("queue.extra_ca_file: {}: {e}", path.display()))?;
            roots.add(cert).map_err(|e| format!("queue.extra_ca_file: {}: {e}", path.display()))?;
        }
    }
    Ok(Arc::new(roots))
}
