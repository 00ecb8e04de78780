//! The SMTP session state machine: parsed commands in, replies and instructions for the
//! driver out. It does no socket I/O; the driver ([`crate::conn`]) reads lines and data,
//! performs the TLS upgrade and enforces timeouts.
//!
//! What a state allows is decided in one place, [`Session::command`]: before EHLO only
//! EHLO/HELO and the stateless commands; MAIL needs a greeting (and on submission an
//! authenticated user); RCPT needs MAIL; DATA/BDAT need an accepted recipient. Every refusal has
//! its RFC 5321 reply and RFC 3463 status code.
//!
//! - [`auth`]: AUTH and its SASL exchange (submission only, only inside TLS);
//! - [`content`]: DATA/BDAT content and what happens to a finished message;
//! - [`policy`]: who may relay and who may use which sender address.

mod auth;
mod checks;
mod content;
mod policy;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rampart_auth::{Authenticator, Exchange, Identity};
use rampart_config::TlsMode;
use rampart_store::{AccountId, Store};
use tracing::{info, warn};

use crate::command::{self, Body, Command, ForwardPath, MailParams, ReversePath};
use crate::data::Fatal;
use crate::reply::Reply;
use crate::trace;
use content::Content;

pub use checks::SenderAuth;
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
}

/// One listener's settings, shared by its sessions.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listener: &'static str,
    pub role: Role,
    pub tls: TlsMode,
    pub max_command_line: usize,
    pub max_data_line: usize,
    pub max_message_size: u64,
    pub max_recipients: usize,
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
            max_message_size: c.max_message_size,
            max_recipients: c.max_recipients,
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

#[derive(Debug)]
struct Helo {
    name: String,
    extended: bool,
}

#[derive(Debug)]
struct Transaction {
    id: String,
    from: ReversePath,
    params: MailParams,
    /// Accepted recipients as given (for the Received header and logs).
    rcpts: Vec<String>,
    /// Local accounts they resolve to, deduplicated.
    accounts: Vec<AccountId>,
    /// Addresses elsewhere, for the outbound queue.
    remote: Vec<String>,
    content: Option<Content>,
    /// The SPF stage's findings at MAIL FROM (MX role with checks on).
    spf: Option<rampart_pipeline::SpfCheck>,
}

pub struct Session {
    services: Arc<Services>,
    settings: Arc<Settings>,
    remote: SocketAddr,
    helo: Option<Helo>,
    tls: Option<TlsInfo>,
    user: Option<Identity>,
    sasl: Option<Exchange>,
    auth_failures: u32,
    tx: Option<Transaction>,
    errors: u32,
    /// The BDAT chunk being read is the last one.
    bdat_last: bool,
    /// The BDAT chunk being read broke a line rule; reported when the chunk ends.
    bdat_fatal: Option<Fatal>,
    /// iprev of the client, looked up once per connection at the first MAIL.
    iprev: Option<(mail_auth::IprevOutput, rampart_pipeline::Entry)>,
}

impl Session {
    pub fn new(services: Arc<Services>, settings: Arc<Settings>, remote: SocketAddr) -> Session {
        Session {
            services,
            settings,
            remote,
            helo: None,
            tls: None,
            user: None,
            sasl: None,
            auth_failures: 0,
            tx: None,
            errors: 0,
            bdat_last: false,
            bdat_fatal: None,
            iprev: None,
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn greeting(&self) -> Reply {
        Reply::multi(220, vec![format!("{} ESMTP Rampart", self.services.hostname)])
    }

    /// The TLS handshake finished. Per RFC 3207 §4.2 the client starts over with EHLO.
    pub fn tls_started(&mut self, info: TlsInfo) {
        self.tls = Some(info);
        self.helo = None;
        self.tx = None;
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    pub fn services(&self) -> &Services {
        &self.services
    }

    /// How long to hold the greeting to catch early talkers, if at all for this client.
    pub fn pregreet_wait(&self) -> Option<Duration> {
        let wait = self.settings.pregreet_wait;
        (!wait.is_zero() && self.services.guard.pregreet_needed(self.remote.ip())).then_some(wait)
    }

    /// The client waited for the greeting (`talked` false) or did not.
    pub async fn pregreet_result(&mut self, talked: bool) -> Option<Next> {
        let guard = &self.services.guard;
        if !talked {
            guard.pregreet_passed(self.remote.ip());
            return None;
        }
        warn!(event = "pregreet", ip = %self.remote.ip(), listener = self.settings.listener);
        metrics::counter!("rampart_connections_refused_total", "listener" => self.settings.listener, "reason" => "pregreet").increment(1);
        guard.pregreet(self.remote.ip()).await;
        Some(Next::Close(Reply::new(554, "5.5.1", format!("{} Protocol error: you talked before the greeting", self.services.hostname))))
    }

    /// Reports a refused recipient to the guard; the session ends if the client is now banned.
    async fn probe(&mut self, reply: Reply) -> Next {
        match self.services.guard.probe(self.remote.ip()).await {
            rampart_guard::Verdict::Banned => Next::Close(self.shutdown_reply("Too many refused recipients")),
            rampart_guard::Verdict::Continue => Next::Reply(reply),
        }
    }

    fn rate_limited(&self, limit: &'static str) -> Next {
        info!(event = "rate_limited", ip = %self.remote.ip(), listener = self.settings.listener, limit);
        metrics::counter!("rampart_messages_total", "listener" => self.settings.listener, "result" => "refused", "reason" => limit).increment(1);
        Next::Reply(Reply::new(451, "4.7.0", "Too much mail from your address; try again later"))
    }

    pub fn timeout_reply(&self) -> Reply {
        Reply::new(421, "4.4.2", format!("{} Timeout, closing connection", self.services.hostname))
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

    /// A command line longer than the limit; the driver has discarded it.
    pub fn line_too_long(&mut self) -> Next {
        self.sasl = None;
        let max = self.settings.max_command_line;
        self.error(Reply::new(500, "5.5.2", format!("Line too long (limit {max} bytes)")))
    }

    /// A command line with a bare CR or LF. Where such a client thinks lines end is unknown,
    /// so nothing after it can be trusted.
    pub fn bad_line_ending(&mut self) -> Next {
        warn!(event = "bare_line_ending", ip = %self.remote.ip(), listener = self.settings.listener, phase = "command");
        Next::Close(Reply::new(500, "5.5.2", "Bare CR or LF in command; lines must end with CRLF"))
    }

    pub async fn command(&mut self, line: &[u8]) -> Next {
        if self.sasl.is_some() {
            return self.auth_response(line).await;
        }
        let cmd = match command::parse(line) {
            Ok(cmd) => cmd,
            Err(e) => return self.error(e.reply()),
        };
        match cmd {
            Command::Ehlo(name) => self.ehlo(name, true),
            Command::Helo(name) => self.ehlo(name, false),
            Command::Noop => Next::Reply(Reply::new(250, "2.0.0", "Ok")),
            Command::Rset => {
                self.tx = None;
                Next::Reply(Reply::new(250, "2.0.0", "Ok"))
            }
            Command::Quit => Next::Close(Reply::new(221, "2.0.0", format!("{} Bye", self.services.hostname))),
            Command::Help => Next::Reply(Reply::new(
                214,
                "2.0.0",
                "Commands: EHLO HELO AUTH MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS; see RFC 5321",
            )),
            // RFC 5321 §3.5.3: 252 neither confirms nor denies, so VRFY cannot harvest addresses.
            Command::Vrfy(_) => Next::Reply(Reply::new(252, "2.5.2", "Cannot VRFY user; send mail and it will be delivered or refused")),
            Command::Expn(_) => self.error(Reply::new(502, "5.5.1", "EXPN is not available")),
            Command::StartTls => self.starttls(),
            Command::Auth { mechanism, initial } => self.auth(mechanism, initial).await,
            Command::Mail { from, params } => self.mail(from, params).await,
            Command::Rcpt { to, .. } => self.rcpt(to).await,
            Command::Data => self.data_start(),
            Command::Bdat { size, last } => self.bdat_start(size, last).await,
        }
    }

    /// AUTH is offered on submission once the connection is encrypted: before that a password
    /// would cross the network in clear (RFC 8314 §3).
    fn offers_auth(&self) -> bool {
        self.settings.role == Role::Submission && self.tls.is_some()
    }

    fn ehlo(&mut self, name: String, extended: bool) -> Next {
        self.tx = None;
        let host = &self.services.hostname;
        if !extended {
            self.helo = Some(Helo { name, extended });
            return Next::Reply(Reply::multi(250, vec![host.clone()]));
        }
        let mut lines = vec![format!("{host} Hello {name} [{}]", self.remote.ip())];
        lines.push("PIPELINING".into());
        lines.push(format!("SIZE {}", self.settings.max_message_size));
        lines.push("8BITMIME".into());
        lines.push("SMTPUTF8".into());
        lines.push("ENHANCEDSTATUSCODES".into());
        lines.push("CHUNKING".into());
        if self.settings.tls == TlsMode::Starttls && self.tls.is_none() {
            lines.push("STARTTLS".into());
        }
        if self.offers_auth() && self.user.is_none() {
            let cb = self.tls.as_ref().is_some_and(|t| t.channel_binding.is_some());
            let names: Vec<&str> = self.services.auth.mechanisms(cb).iter().map(|m| m.name()).collect();
            lines.push(format!("AUTH {}", names.join(" ")));
        }
        self.helo = Some(Helo { name, extended });
        Next::Reply(Reply::multi(250, lines))
    }

    fn starttls(&mut self) -> Next {
        if self.tls.is_some() {
            return self.error(Reply::new(503, "5.5.1", "TLS is already active"));
        }
        if self.settings.tls != TlsMode::Starttls {
            return self.error(Reply::new(502, "5.5.1", "STARTTLS is not offered here"));
        }
        Next::StartTls(Reply::new(220, "2.0.0", "Ready to start TLS"))
    }

    async fn mail(&mut self, from: ReversePath, params: MailParams) -> Next {
        let Some(helo) = &self.helo else {
            return self.error(Reply::new(503, "5.5.1", "Send EHLO or HELO first"));
        };
        if self.tx.is_some() {
            return self.error(Reply::new(503, "5.5.1", "Nested MAIL command"));
        }
        if self.settings.role == Role::Submission && self.user.is_none() {
            // RFC 4954 §6: 530 when the server requires authentication.
            return self.error(Reply::new(530, "5.7.0", "Authentication required"));
        }
        let uses_extensions = params.size.is_some() || params.body != Body::SevenBit || params.smtputf8 || params.auth.is_some();
        if uses_extensions && !helo.extended {
            return self.error(Reply::new(555, "5.5.4", "Parameters need EHLO"));
        }
        if params.body == Body::BinaryMime {
            return self.error(Reply::new(555, "5.5.4", "BODY=BINARYMIME is not supported"));
        }
        // RFC 4954 §5: AUTH= is only meaningful where AUTH is offered; a submission server
        // records who submitted the message itself, so the value is accepted and ignored.
        if params.auth.is_some() && !self.offers_auth() {
            return self.error(Reply::new(555, "5.5.4", "AUTH= parameter is not supported on this port"));
        }
        if let Some(size) = params.size {
            if size > self.settings.max_message_size {
                return Next::Reply(Reply::new(
                    552,
                    "5.3.4",
                    format!("Message size exceeds the limit of {} bytes", self.settings.max_message_size),
                ));
            }
        }
        if !from.is_ascii() && !params.smtputf8 {
            return self.error(Reply::new(553, "5.6.7", "Non-ASCII address needs the SMTPUTF8 parameter"));
        }
        if !self.services.guard.smtp_message(self.remote.ip()) {
            return self.rate_limited("messages_per_hour");
        }
        if let (Some(user), ReversePath::Mailbox(m)) = (&self.user, &from) {
            if let Err(reply) = self.sender_allowed(user, &m.to_string()).await {
                info!(
                    event = "sender_refused", ip = %self.remote.ip(), listener = self.settings.listener,
                    user = %user.address, from = %m, place = "envelope"
                );
                return Next::Reply(reply);
            }
        }
        let spf = self.mail_from_checks(&from).await;
        self.tx = Some(Transaction {
            id: trace::new_id(),
            from,
            params,
            rcpts: Vec::new(),
            accounts: Vec::new(),
            remote: Vec::new(),
            content: None,
            spf,
        });
        Next::Reply(Reply::new(250, "2.1.0", "Ok"))
    }

    async fn rcpt(&mut self, to: ForwardPath) -> Next {
        let Some(tx) = &self.tx else {
            return self.error(Reply::new(503, "5.5.1", "Need MAIL before RCPT"));
        };
        if tx.content.is_some() {
            return self.error(Reply::new(503, "5.5.1", "RCPT after BDAT"));
        }
        if let ForwardPath::Mailbox(m) = &to {
            if !m.is_ascii() && !tx.params.smtputf8 {
                return self.error(Reply::new(553, "5.6.7", "Non-ASCII address needs the SMTPUTF8 parameter"));
            }
        }
        if tx.rcpts.len() >= self.settings.max_recipients {
            return Next::Reply(Reply::new(452, "4.5.3", "Too many recipients"));
        }
        let shown = to.to_string();
        match self.resolve_recipient(&to).await {
            Ok(_) if !self.services.guard.smtp_recipient(self.remote.ip()) => self.rate_limited("recipients_per_hour"),
            Ok((accounts, remote)) => {
                let tx = self.tx.as_mut().expect("checked above");
                for a in accounts {
                    if !tx.accounts.contains(&a) {
                        tx.accounts.push(a);
                    }
                }
                for r in remote {
                    if !tx.remote.contains(&r) {
                        tx.remote.push(r);
                    }
                }
                tx.rcpts.push(shown);
                Next::Reply(Reply::new(250, "2.1.5", "Ok"))
            }
            Err((reason, reply)) => {
                info!(
                    event = "rcpt_refused", ip = %self.remote.ip(), listener = self.settings.listener,
                    rcpt = %shown, reason, code = reply.code, user = self.user.as_ref().map_or("-", |u| u.address.as_str())
                );
                // Guessing addresses or trying to relay; an authenticated user's typo is neither.
                if self.user.is_none() && matches!(reason, "unknown_user" | "relay_denied") {
                    return self.probe(reply).await;
                }
                Next::Reply(reply)
            }
        }
    }
}
