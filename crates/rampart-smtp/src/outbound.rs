//! Sessions to remote hosts for the queue: [`connect`] opens one for a domain (its MX hosts by
//! preference, RFC 5321 §5, or its route's smart host, with the route's TLS policy and AUTH),
//! and [`Session::send`] delivers one message's recipients in that domain over it, as many
//! times as the queue reuses the connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// MTA-STS and TLS reporting; None applies no published policy and records nothing.
    pub policies: Option<Arc<crate::sts::TlsPolicies>>,
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
    pub rcpts: &'a [String],
    pub message: &'a [u8],
    pub smtputf8: bool,
}

pub(crate) fn all(n: usize, r: RcptResult) -> Vec<RcptResult> {
    vec![r; n]
}

pub(crate) fn temporary(reason: impl Into<String>) -> RcptResult {
    RcptResult::Temporary { reason: reason.into() }
}

fn permanent(reason: impl Into<String>, status: &str) -> RcptResult {
    RcptResult::Permanent { reason: reason.into(), status: status.into() }
}

/// Why a host was given up on, to try the next one, and the RFC 8460 result type when it was
/// TLS that failed.
pub(crate) struct HostFailure(pub String, pub Option<&'static str>);

impl HostFailure {
    fn new(why: impl Into<String>) -> HostFailure {
        HostFailure(why.into(), None)
    }
}

/// An open SMTP session to one destination (a domain's MX host or its route's smart host),
/// with TLS and AUTH as the destination's route asks, ready for the next transaction. The
/// queue keeps it for the domain's next messages; it is never used for another domain, so
/// every message goes out under its own domain's route and TLS policy.
pub struct Session {
    client: Client,
    pub host: String,
    pub addr: SocketAddr,
    /// Transactions tried on this connection.
    pub transactions: u32,
    pub opened: Instant,
    /// The connection broke or the server said 421: it must not be used again.
    closed: bool,
}

/// Why a session broke off in the middle of a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lost {
    /// Before the end of the message was sent (or a reused connection refused the
    /// transaction with 421): the server accepted nothing, so the message can go over
    /// another connection at once.
    Early(String),
    /// After the end of the message was sent, before its reply: the server may have it.
    /// Retried later like any temporary failure (a rare duplicate, RFC 5321 §6.1).
    Late(String),
}

/// Opens a session for `domain`: its route's smart host, or its MX hosts by preference and
/// their addresses in turn, skipping `avoid` (an address whose session just broke, with the
/// reason, reported if no other host is left). An MX delivery follows the domain's MTA-STS
/// policy ([`secure`]). An error applies to every recipient in the domain: permanent for a
/// null MX or a domain that does not exist, else temporary.
pub async fn connect(out: &Outbound, domain: &str, id: &str, avoid: Option<(SocketAddr, String)>) -> Result<Session, RcptResult> {
    let route = out.route_for(domain);
    let port = route.and_then(|r| r.route.port).unwrap_or(out.remote_port);
    let smart_host = route.and_then(|r| r.route.host.clone());
    let hosts = match &smart_host {
        Some(host) => vec![host.clone()],
        None => match dns::mx(&out.resolver, domain).await {
            Mx::Hosts(h) => h,
            Mx::Null => return Err(permanent(format!("{domain} accepts no mail (null MX, RFC 7505)"), "5.1.10")),
            Mx::NoDomain => return Err(permanent(format!("domain {domain} does not exist"), "5.1.2")),
            Mx::TempFail(e) => return Err(temporary(format!("DNS lookup of {domain} failed: {e}"))),
        },
    };
    let plan = secure::Plan::new(out, domain, smart_host.is_some()).await;
    let route_tls = route.map_or(OutboundTls::Opportunistic, |r| r.route.tls);
    let (avoid, mut last) = match avoid {
        Some((addr, why)) => (Some(addr), why),
        None => (None, String::from("no MX host")),
    };
    for host in &hosts {
        let hp = match plan.for_host(host, port, route_tls).await {
            Ok(hp) => hp,
            Err(why) => {
                last = why;
                continue;
            }
        };
        let tls_client = hp.client.as_ref().or_else(|| route.and_then(|r| r.tls.as_ref())).unwrap_or(&out.tls);
        let ips = match dns::addresses(&out.resolver, host).await {
            Ok(ips) => ips,
            Err(e) => {
                last = e;
                continue;
            }
        };
        for addr in ips.into_iter().map(|ip| SocketAddr::new(ip, port)).filter(|a| Some(*a) != avoid) {
            match start(out, route, tls_client, hp.tls, host, addr, id).await {
                Ok((client, tls)) => {
                    plan.opened(&hp, host, addr, tls.as_ref()).await;
                    return Ok(Session { client, host: host.clone(), addr, transactions: 0, opened: Instant::now(), closed: false });
                }
                Err(failure) => {
                    plan.failed(&hp, host, addr, &failure).await;
                    info!(event = "delivery_host_failed", id, host = %host, addr = %addr, reason = %failure.0);
                    last = format!("{host} [{addr}]: {}", failure.0);
                }
            }
        }
    }
    Err(temporary(last))
}

fn describe(e: ClientError) -> HostFailure {
    HostFailure::new(e.to_string())
}

/// As [`describe`], for the TLS handshake: a failure there is a TLS outcome to report.
fn describe_tls(e: ClientError) -> HostFailure {
    match e {
        ClientError::Tls(why) => {
            let result = crate::sts::certificate_result(&why);
            HostFailure(format!("TLS: {why}"), Some(result))
        }
        other => describe(other),
    }
}

/// Connects to one host and gets the session ready for MAIL ([`open`]: greeting, EHLO,
/// STARTTLS or implicit TLS as `policy` demands), then AUTH when the route has credentials.
async fn start(
    out: &Outbound,
    route: Option<&ResolvedRoute>,
    tls_client: &TlsClient,
    policy: OutboundTls,
    host: &str,
    addr: SocketAddr,
    id: &str,
) -> Result<(Client, Option<TlsOutcome>), HostFailure> {
    let peer = Peer { hostname: &out.hostname, tls: tls_client, policy, host, addr };
    let (mut c, tls) = open(&peer, out.connect_timeout, out.command_timeout).await?;
    // Once per connection, with the message that opened it.
    match &tls {
        Some(t) => info!(
            event = "delivery_tls", id, host = %host, addr = %addr, tls = %t.version, cipher = %t.cipher,
            verified = t.unverified.is_none(), reason = t.unverified.as_deref().unwrap_or("-")
        ),
        None => info!(event = "delivery_tls", id, host = %host, addr = %addr, tls = "none"),
    }
    if let Some(r) = route.filter(|r| r.route.auth_username.is_some()) {
        authenticate(&mut c, r).await?;
    }
    Ok((c, tls))
}

impl Session {
    /// Sends one message; results are in `a.rcpts` order. After an error the session is
    /// spent (drop it) and the recipients' fate is the error's.
    pub async fn send(&mut self, a: &Attempt<'_>) -> Result<Vec<RcptResult>, Lost> {
        let outcome = transaction(self, a).await;
        self.transactions += 1;
        match &outcome {
            Ok(results) => {
                for (rcpt, result) in a.rcpts.iter().zip(results) {
                    let (outcome, detail) = match result {
                        RcptResult::Delivered { reply } => ("delivered", reply.as_str()),
                        RcptResult::Temporary { reason } => ("deferred", reason.as_str()),
                        RcptResult::Permanent { reason, .. } => ("failed", reason.as_str()),
                    };
                    info!(event = "delivery", id = a.id, rcpt = %rcpt, host = %self.host, addr = %self.addr, result = outcome, reply = %detail);
                }
            }
            Err(Lost::Early(why) | Lost::Late(why)) => {
                self.closed = true;
                info!(event = "delivery_host_failed", id = a.id, host = %self.host, addr = %self.addr, reason = %why);
            }
        }
        outcome
    }

    /// Whether the connection can carry another transaction: intact, fewer than
    /// `max_transactions` so far and younger than `max_age`.
    pub fn reusable(&self, max_transactions: u32, max_age: Duration) -> bool {
        !self.closed && self.transactions < max_transactions && self.opened.elapsed() < max_age
    }

    pub async fn quit(self) {
        if !self.closed {
            self.client.quit().await;
        }
    }
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
        tls = Some(c.upgrade(p.tls, p.host, true).await.map_err(describe_tls)?);
    }
    let greeting = c.read_response().await.map_err(describe)?;
    if greeting.code != 220 {
        return Err(HostFailure::new(format!("greeting {}", greeting.text())));
    }
    let ehlo = c.ehlo(p.hostname).await.map_err(describe)?;
    if ehlo.code != 250 {
        return Err(HostFailure::new(format!("HELO refused: {}", ehlo.text())));
    }
    if tls.is_some() {
        return Ok((c, tls));
    }
    if c.has("STARTTLS") {
        let r = c.command("STARTTLS").await.map_err(describe)?;
        if r.code != 220 {
            return Err(HostFailure::new(format!("STARTTLS refused: {}", r.text())));
        }
        tls = Some(c.upgrade(p.tls, p.host, p.policy == OutboundTls::Verify).await.map_err(describe_tls)?);
        let r = c.ehlo(p.hostname).await.map_err(describe)?;
        if r.code != 250 {
            return Err(HostFailure::new(format!("EHLO after STARTTLS refused: {}", r.text())));
        }
    } else if matches!(p.policy, OutboundTls::Require | OutboundTls::Verify) {
        let why = "TLS is required for this destination but the server offers no STARTTLS";
        return Err(HostFailure(why.into(), Some("starttls-not-supported")));
    }
    Ok((c, tls))
}

/// AUTH PLAIN to a smart host; only ever inside TLS.
async fn authenticate(c: &mut Client, r: &ResolvedRoute) -> Result<(), HostFailure> {
    let user = r.route.auth_username.as_deref().unwrap_or_default();
    let password = r.password.as_deref().unwrap_or_default();
    let offered = c.extensions.get("AUTH").map(|m| m.to_ascii_uppercase()).unwrap_or_default();
    if !offered.split(' ').any(|m| m == "PLAIN") {
        return Err(HostFailure::new(format!("the smart host offers no AUTH PLAIN (offers: {offered})")));
    }
    let token = B64.encode(format!("\0{user}\0{password}"));
    let reply = c.command(&format!("AUTH PLAIN {token}")).await.map_err(describe)?;
    if reply.code != 235 {
        warn!(event = "smarthost_auth_failed", user = %user, reply = %reply.text());
        return Err(HostFailure::new(format!("authentication as {user} failed: {}", reply.text())));
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

/// MAIL, RCPT..., DATA: pipelined when the server allows it (RFC 2920). On a reused
/// connection an RSET goes first, as Postfix does: it finds a connection the server has
/// dropped before anything of the message is sent.
async fn transaction(s: &mut Session, a: &Attempt<'_>) -> Result<Vec<RcptResult>, Lost> {
    let n = a.rcpts.len();
    let c = &s.client;
    if a.smtputf8 && !c.has("SMTPUTF8") {
        return Ok(all(n, permanent("the receiving server does not support SMTPUTF8 addresses", "5.6.7")));
    }
    let size = a.message.len();
    if let Some(limit) = c.extensions.get("SIZE").and_then(|v| v.parse::<usize>().ok()).filter(|l| *l > 0)
        && size > limit {
            return Ok(all(n, permanent(format!("the message ({size} bytes) exceeds the receiver's limit of {limit}"), "5.3.4")));
        }
    let (mail_reply, mut rcpt_results, data_reply) = envelope(s, a).await?;
    if !mail_reply.is_positive() {
        end_unwanted_data(s, data_reply.as_ref()).await;
        reset(s).await;
        return Ok(all(n, classify(&mail_reply, "5.1.7")));
    }
    let accepted: Vec<usize> = (0..n).filter(|&i| matches!(rcpt_results[i], RcptResult::Delivered { .. })).collect();
    if accepted.is_empty() {
        end_unwanted_data(s, data_reply.as_ref()).await;
        reset(s).await;
        return Ok(rcpt_results);
    }
    let data = match data_reply {
        Some(reply) => reply,
        None => s.client.command("DATA").await.map_err(early)?,
    };
    s.closed |= data.code == 421;
    let final_result = if data.code != 354 {
        reset(s).await;
        classify(&data, "5.0.0")
    } else {
        // From here on the server may have the message: a broken connection is `Late`.
        s.client.send_data(a.message).await.map_err(late)?;
        let done = s.client.read_response().await.map_err(late)?;
        s.closed |= done.code == 421;
        if done.is_positive() { RcptResult::Delivered { reply: done.text() } } else { classify(&done, "5.0.0") }
    };
    for i in accepted {
        rcpt_results[i] = final_result.clone();
    }
    Ok(rcpt_results)
}

fn early(e: ClientError) -> Lost {
    Lost::Early(e.to_string())
}

fn late(e: ClientError) -> Lost {
    Lost::Late(e.to_string())
}

/// A pipelined DATA that the server answered with 354 although it accepted no sender or no
/// recipient (RFC 2920 §3.1 has it refuse DATA then): the lone terminating dot ends it, and
/// the server refuses that empty message.
async fn end_unwanted_data(s: &mut Session, data: Option<&Response>) {
    if s.closed || data.is_none_or(|d| d.code != 354) {
        return;
    }
    if s.client.send(b".\r\n").await.is_err() || s.client.read_response().await.is_err() {
        s.closed = true;
    }
}

/// Ends a transaction the server refused, so the connection can carry the next one.
async fn reset(s: &mut Session) {
    if s.closed {
        return;
    }
    match s.client.command("RSET").await {
        Ok(r) if r.is_positive() => {}
        _ => s.closed = true,
    }
}

fn mail_command(c: &Client, a: &Attempt<'_>) -> String {
    let mut mail = format!("MAIL FROM:<{}>", a.sender);
    if c.has("SIZE") {
        mail.push_str(&format!(" SIZE={}", a.message.len()));
    }
    if c.has("8BITMIME") && !a.message.is_ascii() {
        mail.push_str(" BODY=8BITMIME");
    }
    if a.smtputf8 {
        mail.push_str(" SMTPUTF8");
    }
    mail
}

fn rcpt_result(r: &Response) -> RcptResult {
    if r.is_positive() { RcptResult::Delivered { reply: String::new() } } else { classify(r, "5.1.1") }
}

/// The RSET probe (reused connections), MAIL, the RCPTs and, with PIPELINING, DATA: MAIL's
/// reply, each recipient's (`Delivered` meaning accepted so far) and DATA's when it went along.
/// DATA may end a pipelined group (RFC 2920 §3.1), as Postfix's client sends it: one round
/// trip less per message, which over a reused connection is one of three.
async fn envelope(s: &mut Session, a: &Attempt<'_>) -> Result<(Response, Vec<RcptResult>, Option<Response>), Lost> {
    let reused = s.transactions > 0;
    let mail = mail_command(&s.client, a);
    let c = &mut s.client;
    let mut results = Vec::with_capacity(a.rcpts.len());
    let (probe, mail_reply, data_reply) = if c.has("PIPELINING") {
        let mut batch = if reused { String::from("RSET\r\n") } else { String::new() };
        batch.push_str(&format!("{mail}\r\n"));
        for r in a.rcpts {
            batch.push_str(&format!("RCPT TO:<{r}>\r\n"));
        }
        batch.push_str("DATA\r\n");
        c.send(batch.as_bytes()).await.map_err(early)?;
        let probe = if reused { Some(c.read_response().await.map_err(early)?) } else { None };
        let mail_reply = c.read_response().await.map_err(early)?;
        for _ in a.rcpts {
            results.push(rcpt_result(&c.read_response().await.map_err(early)?));
        }
        (probe, mail_reply, Some(c.read_response().await.map_err(early)?))
    } else {
        let probe = if reused { Some(c.command("RSET").await.map_err(early)?) } else { None };
        let mail_reply = c.command(&mail).await.map_err(early)?;
        for r in a.rcpts {
            if mail_reply.is_positive() {
                results.push(rcpt_result(&c.command(&format!("RCPT TO:<{r}>")).await.map_err(early)?));
            }
        }
        (probe, mail_reply, None)
    };
    s.closed |= mail_reply.code == 421 || data_reply.as_ref().is_some_and(|d| d.code == 421);
    // A reused connection the server no longer wants (an idle timeout, a per-connection
    // limit) has accepted nothing: the message goes over a fresh one at once.
    if let Some(p) = probe.filter(|p| !p.is_positive()) {
        return Err(Lost::Early(format!("RSET on a reused connection: {}", p.text())));
    }
    if reused && mail_reply.code == 421 {
        return Err(Lost::Early(format!("MAIL on a reused connection: {}", mail_reply.text())));
    }
    Ok((mail_reply, results, data_reply))
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

mod secure;

#[cfg(test)]
mod tests;
