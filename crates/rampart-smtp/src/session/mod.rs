//! The SMTP session state machine: parsed commands in, replies and instructions for the
//! driver out. It does no socket I/O; the driver ([`crate::conn`]) reads lines and data,
//! performs the TLS upgrade and enforces timeouts.
//!
//! A session is two things: the [`Connection`] (who the client is, what it has established —
//! TLS, a login — and what the guard found) and the [`state::Phase`] of RFC 5321's command
//! sequence, an enum whose variants carry only what is valid in them. [`Session::allowed`]
//! decides what each phase accepts; every policy refusal is a typed trail entry turned into a
//! reply by the one `rampart_pipeline::decide`.
//!
//! - [`state`]: phases, the transaction, what each phase allows;
//! - [`envelope`]: EHLO, STARTTLS, MAIL and RCPT;
//! - [`auth`]: AUTH and its SASL exchange (submission only, only inside TLS);
//! - [`content`]: receiving DATA/BDAT content;
//! - [`finish`]: what happens to a finished message, step by step;
//! - [`checks`]: the session's side of sender authentication (SPF, DKIM, ARC, DMARC, signing);
//! - [`policy`]: who may relay and who may use which sender address;
//! - [`gateway`]: recipients of gateway domains, downstreams relaying out, the relayed copy.
//! - [`sending`]: sending quotas and containment of submitted mail (see [`crate::sending`]).

mod auth;
mod checks;
mod content;
mod envelope;
mod filters;
mod finish;
mod limits;
mod gateway;
mod milters;
mod policy;
mod sending;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rampart_auth::{Authenticator, Identity};
use rampart_config::TlsMode;
use rampart_pipeline::{Decision, Entry, Outcome, Reason, Stage, Trail};
use rampart_store::Store;
use tracing::warn;

use crate::command::{self, Command};
use crate::reply::Reply;
use state::Phase;

pub use checks::SenderAuth;
pub use filters::Filters;
pub use limits::Limits;
pub use policy::SenderPolicy;

/// What the session does on a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Port 25: mail from the internet for local domains; no AUTH.
    Mx,
    /// Ports 587 and 465 (RFC 6409, RFC 8314): authenticated users send mail anywhere.
    Submission,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Mx => "mx",
            Role::Submission => "submission",
        }
    }
}

/// Limits on authentication attempts within one session.
#[derive(Debug, Clone, Copy)]
pub struct AuthLimits {
    /// Failures before the session is closed.
    pub max_failures: u32,
    /// Pause before a failure reply, times the failures so far.
    pub failure_delay: Duration,
}

/// Everything the session needs from the rest of the server.
pub struct Services {
    pub store: Arc<dyn Store>,
    /// Our name in banners and Received headers.
    pub hostname: String,
    /// Sub-address separator (`+`); empty for none.
    pub recipient_delimiter: String,
    pub auth: Arc<Authenticator>,
    pub auth_limits: AuthLimits,
    pub senders: SenderPolicy,
    /// Leave the client's address out of Received headers of submitted mail.
    pub hide_client: bool,
    /// Woken when a message is queued for delivery elsewhere.
    pub queue_wakeup: Arc<tokio::sync::Notify>,
    /// SPF, DKIM, ARC and DMARC on the MX; DKIM signing and ARC sealing.
    pub sender_auth: SenderAuth,
    /// Counts failures, probes and rates per client; may ban.
    pub guard: Arc<rampart_guard::Guard>,
    /// The content layer: blocklists, spam scoring, greylisting, quarantine.
    pub filters: Filters,
    /// `[[limits.override]]`: other limits for particular senders.
    pub limit_overrides: Vec<rampart_config::LimitOverride>,
    /// `[[gateway.route]]`: domains relayed to a downstream, and downstreams that relay out.
    pub gateway: crate::gateway::Gateway,
    /// Sending quotas and containment of submitted mail.
    pub sending: Arc<crate::sending::Sending>,
}

/// One listener's settings, shared by its sessions.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listener: &'static str,
    pub role: Role,
    pub tls: TlsMode,
    pub max_command_line: usize,
    pub max_data_line: usize,
    /// Message limits (size, recipients, headers, MIME structure) unless a sender's
    /// `[[limits.override]]` changes them.
    pub limits: Limits,
    pub max_errors: u32,
    pub idle_timeout: Duration,
    pub session_timeout: Duration,
    pub line_timeout: Duration,
    pub pregreet_wait: Duration,
}

impl Settings {
    pub fn from_config(listener: &'static str, role: Role, c: &rampart_config::SmtpListener) -> Settings {
        Settings {
            listener,
            role,
            tls: c.tls,
            max_command_line: c.max_command_line,
            max_data_line: c.max_data_line,
            limits: Limits::from_config(c),
            max_errors: c.max_errors,
            idle_timeout: c.idle_timeout,
            session_timeout: c.session_timeout,
            line_timeout: c.line_timeout,
            pregreet_wait: c.pregreet_wait,
        }
    }
}

/// The negotiated TLS parameters, recorded in the Received header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    pub version: String,
    pub cipher: String,
    /// `tls-exporter` bytes for SCRAM-SHA-256-PLUS.
    pub channel_binding: Option<Vec<u8>>,
}

/// What the driver must do after a command.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Send the reply and read the next command.
    Reply(Reply),
    /// Send the reply and close the connection.
    Close(Reply),
    /// Send the reply, discard any input already buffered, then run the TLS handshake.
    StartTls(Reply),
    /// Send the 354 reply, then feed the content to [`Session::data`].
    Data(Reply),
    /// Read exactly `size` bytes into [`Session::bdat_data`], then call [`Session::bdat_end`].
    Bdat { size: u64 },
    /// Read and throw away `size` bytes (RFC 3030 §3: a refused chunk still follows), then reply.
    BdatDiscard { size: u64, reply: Reply },
}

/// The connection's side of a session: the client, what it established, and what was found
/// about it before any transaction.
pub(crate) struct Connection {
    services: Arc<Services>,
    settings: Arc<Settings>,
    remote: SocketAddr,
    tls: Option<TlsInfo>,
    user: Option<Identity>,
    auth_failures: u32,
    errors: u32,
    /// The guard's finding at accept; first entry of every message's trail.
    connect: Entry,
    /// iprev of the client, looked up once per connection at the first MAIL.
    iprev: Option<(mail_auth::IprevOutput, Entry)>,
    /// What the client address blocklists say, asked once per connection.
    listings: filters::Listings,
    /// The milters that follow this connection.
    milters: milters::Milters,
    /// The gateway route whose downstream this client is (its `relay_from`), on the MX.
    downstream: Option<usize>,
}

pub struct Session {
    conn: Connection,
    phase: Phase,
    /// Set after a command that must end a pipelined group (RFC 2920 §3.1) from a client that
    /// has not authenticated: the driver then checks that nothing more was sent before our reply.
    sync_point: Option<&'static str>,
}

/// Commands after which a client must wait for the reply (RFC 2920 §3.1: "EHLO, DATA, VRFY,
/// EXPN, TURN, QUIT, and NOOP ... can only appear as the last command in a group").
fn ends_group(cmd: &Command) -> Option<&'static str> {
    Some(match cmd {
        Command::Ehlo(_) => "EHLO",
        Command::Helo(_) => "HELO",
        Command::Data => "DATA",
        Command::Vrfy(_) => "VRFY",
        Command::Expn(_) => "EXPN",
        Command::Quit => "QUIT",
        Command::Noop => "NOOP",
        _ => return None,
    })
}

impl Session {
    /// A session for a client the guard let in; `connect` records on what grounds.
    pub fn new(services: Arc<Services>, settings: Arc<Settings>, remote: SocketAddr, connect: Entry) -> Session {
        let mut macros = rampart_external::milter::Macros::new();
        macros.set("j", services.hostname.clone()).set("daemon_name", settings.listener).set("client_addr", remote.ip().to_string());
        macros.set("client_name", format!("[{}]", remote.ip()));
        let milters = milters::Milters::new(&services.filters.milters, settings.role, macros);
        let downstream = if settings.role == Role::Mx { services.gateway.downstream(remote.ip()) } else { None };
        let mut conn = Connection {
            services,
            settings,
            remote,
            tls: None,
            user: None,
            auth_failures: 0,
            errors: 0,
            connect,
            iprev: None,
            listings: Default::default(),
            milters,
            downstream,
        };
        conn.start_listings();
        Session { conn, phase: Phase::Connected, sync_point: None }
    }

    pub fn settings(&self) -> &Settings {
        &self.conn.settings
    }

    pub fn greeting(&self) -> Reply {
        Reply::multi(220, vec![format!("{} ESMTP Rampart", self.conn.services.hostname)])
    }

    /// The TLS handshake finished. Per RFC 3207 §4.2 the client starts over with EHLO.
    pub fn tls_started(&mut self, info: TlsInfo) {
        self.conn.tls = Some(info);
        self.phase = Phase::Connected;
    }

    pub fn is_tls(&self) -> bool {
        self.conn.tls.is_some()
    }

    pub fn remote(&self) -> SocketAddr {
        self.conn.remote
    }

    pub fn services(&self) -> &Services {
        &self.conn.services
    }

    /// How long to hold the greeting to catch early talkers, if at all for this client.
    pub fn pregreet_wait(&self) -> Option<Duration> {
        let wait = self.conn.settings.pregreet_wait;
        (!wait.is_zero() && self.conn.services.guard.pregreet_needed(self.conn.remote.ip())).then_some(wait)
    }

    /// The client waited for the greeting (`talked` false) or did not.
    pub async fn pregreet_result(&mut self, talked: bool) -> Option<Next> {
        let conn = &self.conn;
        let guard = &conn.services.guard;
        if !talked {
            guard.pregreet_passed(conn.remote.ip());
            return None;
        }
        warn!(event = "pregreet", ip = %conn.remote.ip(), listener = conn.settings.listener);
        metrics::counter!("rampart_connections_refused_total", "listener" => conn.settings.listener, "reason" => "pregreet").increment(1);
        guard.pregreet(conn.remote.ip()).await;
        let decision = rampart_pipeline::decide(&Trail(vec![Entry::new(Stage::Connect, Outcome::Fail, Reason::Pregreet)]), &Default::default());
        Some(Next::Close(conn.connect_reply(&decision)))
    }

    /// The command that must have ended the client's last group, if it must have; cleared.
    pub fn take_sync_point(&mut self) -> Option<&'static str> {
        self.sync_point.take()
    }

    /// The client sent more before the reply it had to wait for (RFC 2920 §3.1): a client that
    /// does not wait is a spam engine blasting a script, and one that sends data before the 354
    /// may be smuggling. Refused and disconnected, as Postfix's smtpd_forbid_unauth_pipelining.
    pub fn pipelining_violation(&self, after: &'static str) -> Next {
        let conn = &self.conn;
        warn!(event = "pipelining_violation", ip = %conn.remote.ip(), listener = conn.settings.listener, after);
        metrics::counter!("rampart_connections_refused_total", "listener" => conn.settings.listener, "reason" => "pipelining").increment(1);
        Next::Close(Reply::new(554, "5.5.0", "Error: SMTP protocol synchronization"))
    }

    pub fn timeout_reply(&self) -> Reply {
        Reply::new(421, "4.4.2", format!("{} Timeout, closing connection", self.conn.services.hostname))
    }

    /// A command line longer than the limit; the driver has discarded it.
    pub fn line_too_long(&mut self) -> Next {
        if matches!(self.phase, Phase::Auth(..)) {
            self.phase = std::mem::replace(&mut self.phase, Phase::Connected).reset();
        }
        let max = self.conn.settings.max_command_line;
        self.conn.error(Reply::new(500, "5.5.2", format!("Line too long (limit {max} bytes)")))
    }

    /// A command line with a bare CR or LF. Where such a client thinks lines end is unknown,
    /// so nothing after it can be trusted.
    pub fn bad_line_ending(&mut self) -> Next {
        let conn = &self.conn;
        warn!(event = "bare_line_ending", ip = %conn.remote.ip(), listener = conn.settings.listener, phase = "command");
        Next::Close(Reply::new(500, "5.5.2", "Bare CR or LF in command; lines must end with CRLF"))
    }

    pub async fn command(&mut self, line: &[u8]) -> Next {
        if let Phase::Auth(_, exchange) = &mut self.phase {
            let (next, done) = self.conn.auth_response(exchange, line).await;
            if done {
                self.phase = std::mem::replace(&mut self.phase, Phase::Connected).reset();
            }
            return next;
        }
        let cmd = match command::parse(line) {
            Ok(cmd) => cmd,
            Err(e) => return self.conn.error(e.reply()),
        };
        if self.conn.user.is_none() {
            self.sync_point = ends_group(&cmd);
        }
        if let Err(reply) = self.allowed(&cmd) {
            return match (cmd, self.conn.error(reply)) {
                // RFC 3030 §3: a refused chunk's bytes still follow and must be read.
                (Command::Bdat { size, .. }, Next::Reply(reply)) => Next::BdatDiscard { size, reply },
                (_, next) => next,
            };
        }
        match cmd {
            Command::Ehlo(name) => self.ehlo(name, true).await,
            Command::Helo(name) => self.ehlo(name, false).await,
            Command::Noop => Next::Reply(Reply::new(250, "2.0.0", "Ok")),
            Command::Rset => {
                if matches!(self.phase, Phase::Mail(..) | Phase::Chunking { .. }) && !self.conn.milters.is_empty() {
                    self.conn.milters.abort().await;
                }
                self.phase = std::mem::replace(&mut self.phase, Phase::Connected).reset();
                Next::Reply(Reply::new(250, "2.0.0", "Ok"))
            }
            Command::Quit => Next::Close(Reply::new(221, "2.0.0", format!("{} Bye", self.conn.services.hostname))),
            Command::Help => Next::Reply(Reply::new(
                214,
                "2.0.0",
                "Commands: EHLO HELO AUTH MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS; see RFC 5321",
            )),
            // RFC 5321 §3.5.3: 252 neither confirms nor denies, so VRFY cannot harvest addresses.
            Command::Vrfy(_) => Next::Reply(Reply::new(252, "2.5.2", "Cannot VRFY user; send mail and it will be delivered or refused")),
            Command::Expn(_) => self.conn.error(Reply::new(502, "5.5.1", "EXPN is not available")),
            Command::StartTls => self.starttls(),
            Command::Auth { mechanism, initial } => self.auth(mechanism, initial).await,
            Command::Mail { from, params } => self.mail(from, params).await,
            Command::Rcpt { to, .. } => self.rcpt(to).await,
            Command::Data => self.data_start().await,
            Command::Bdat { size, last } => self.bdat_start(size, last).await,
        }
    }
}

impl Connection {
    /// AUTH is offered on submission once the connection is encrypted: before that a password
    /// would cross the network in clear (RFC 8314 §3).
    fn offers_auth(&self) -> bool {
        self.settings.role == Role::Submission && self.tls.is_some()
    }

    fn user_name(&self) -> &str {
        self.user.as_ref().map_or("-", |u| u.address.as_str())
    }

    fn shutdown_reply(&self, why: &str) -> Reply {
        Reply::new(421, "4.7.0", format!("{} {why}, closing connection", self.services.hostname))
    }

    /// A client error: counted, and past the limit the session ends.
    fn error(&mut self, reply: Reply) -> Next {
        self.errors += 1;
        if self.errors >= self.settings.max_errors {
            warn!(event = "too_many_errors", ip = %self.remote.ip(), listener = self.settings.listener, errors = self.errors);
            return Next::Close(self.shutdown_reply("Too many errors"));
        }
        Next::Reply(reply)
    }

    /// The local policy `decide` applies: the inbound one on the MX, the outbound one (spam only
    /// refuses) for submitted mail.
    fn policy(&self) -> &rampart_pipeline::Policy {
        match self.settings.role {
            Role::Mx => &self.services.sender_auth.policy,
            Role::Submission => &self.services.sender_auth.outbound_policy,
        }
    }

    /// The connection's trail so far plus `entry`: what the one `decide` makes of a command.
    fn decide(&self, entry: Entry) -> Decision {
        let trail = Trail(vec![self.connect.clone(), entry]);
        rampart_pipeline::decide(&trail, self.policy())
    }

    /// The reply for a decision; a refusal without one (never, for refusing entries) becomes
    /// a temporary failure rather than an acceptance.
    fn reply(decision: &Decision) -> Reply {
        match &decision.refusal {
            Some(r) => Reply::new(r.code, r.status, r.text.clone()),
            None => Reply::new(451, "4.3.0", "Temporary failure, try again later"),
        }
    }

    /// A refusal of the whole connection, named by our host as RFC 5321 §4.2 greetings are.
    fn connect_reply(&self, decision: &Decision) -> Reply {
        let r = Self::reply(decision);
        Reply::new(r.code, r.status, format!("{} {}", self.services.hostname, r.lines.concat()))
    }

    /// Reports a refused recipient to the guard; the session ends if the client is now banned.
    async fn probe(&mut self, reply: Reply) -> Next {
        match self.services.guard.probe(self.remote.ip()).await {
            rampart_guard::Verdict::Banned => Next::Close(self.shutdown_reply("Too many refused recipients")),
            rampart_guard::Verdict::Continue => Next::Reply(reply),
        }
    }
}
