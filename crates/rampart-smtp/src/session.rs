//! The SMTP session state machine: parsed commands in, replies and instructions for the
//! driver out. It does no socket I/O; the driver ([`crate::conn`]) reads lines and data,
//! performs the TLS upgrade and enforces timeouts.
//!
//! What a state allows is decided in one place, [`Session::command`]: before EHLO only
//! EHLO/HELO and the stateless commands; MAIL needs a greeting; RCPT needs MAIL; DATA/BDAT need
//! an accepted recipient. Every refusal has its RFC 5321 reply and RFC 3463 status code.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rampart_config::TlsMode;
use rampart_store::{AccountId, BlobWriter, Delivery, Folder, Store, Target, address};
use tracing::{info, warn};

use crate::command::{self, Body, Command, Domain, ForwardPath, MailParams, ReversePath};
use crate::data::{Fatal, Fed, Framing, Receiver, Soft};
use crate::reply::Reply;
use crate::trace;

/// What the session does on a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Port 25: mail from the internet for local domains; no AUTH.
    Mx,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Mx => "mx",
        }
    }
}

/// Everything the session needs from the rest of the server.
pub struct Services {
    pub store: Arc<dyn Store>,
    /// Our name in banners and Received headers.
    pub hostname: String,
    /// Sub-address separator (`+`); empty for none.
    pub recipient_delimiter: String,
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
        }
    }
}

/// The negotiated TLS parameters, recorded in the Received header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    pub version: String,
    pub cipher: String,
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
    content: Option<Content>,
}

/// A message being received.
#[derive(Debug)]
struct Content {
    receiver: Receiver,
    /// None once a limit was hit: nothing more is kept.
    blob: Option<BlobWriter>,
    scratch: Vec<u8>,
}

pub struct Session {
    services: Arc<Services>,
    settings: Arc<Settings>,
    remote: SocketAddr,
    helo: Option<Helo>,
    tls: Option<TlsInfo>,
    tx: Option<Transaction>,
    errors: u32,
    /// The BDAT chunk being read is the last one.
    bdat_last: bool,
    /// The BDAT chunk being read broke a line rule; reported when the chunk ends.
    bdat_fatal: Option<Fatal>,
}

impl Session {
    pub fn new(services: Arc<Services>, settings: Arc<Settings>, remote: SocketAddr) -> Session {
        Session {
            services,
            settings,
            remote,
            helo: None,
            tls: None,
            tx: None,
            errors: 0,
            bdat_last: false,
            bdat_fatal: None,
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
                "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS; see RFC 5321",
            )),
            // RFC 5321 §3.5.3: 252 neither confirms nor denies, so VRFY cannot harvest addresses.
            Command::Vrfy(_) => Next::Reply(Reply::new(252, "2.5.2", "Cannot VRFY user; send mail and it will be delivered or refused")),
            Command::Expn(_) => self.error(Reply::new(502, "5.5.1", "EXPN is not available")),
            Command::StartTls => self.starttls(),
            Command::Auth { .. } => self.error(Reply::new(503, "5.5.1", "AUTH is not available on this port")),
            Command::Mail { from, params } => self.mail(from, params),
            Command::Rcpt { to, .. } => self.rcpt(to).await,
            Command::Data => self.data_start(),
            Command::Bdat { size, last } => self.bdat_start(size, last).await,
        }
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

    fn mail(&mut self, from: ReversePath, params: MailParams) -> Next {
        let Some(helo) = &self.helo else {
            return self.error(Reply::new(503, "5.5.1", "Send EHLO or HELO first"));
        };
        if self.tx.is_some() {
            return self.error(Reply::new(503, "5.5.1", "Nested MAIL command"));
        }
        let uses_extensions = params.size.is_some() || params.body != Body::SevenBit || params.smtputf8 || params.auth.is_some();
        if uses_extensions && !helo.extended {
            return self.error(Reply::new(555, "5.5.4", "Parameters need EHLO"));
        }
        if params.body == Body::BinaryMime {
            return self.error(Reply::new(555, "5.5.4", "BODY=BINARYMIME is not supported"));
        }
        if params.auth.is_some() {
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
        self.tx = Some(Transaction {
            id: trace::new_id(),
            from,
            params,
            rcpts: Vec::new(),
            accounts: Vec::new(),
            content: None,
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
            Ok(accounts) => {
                let tx = self.tx.as_mut().expect("checked above");
                for a in accounts {
                    if !tx.accounts.contains(&a) {
                        tx.accounts.push(a);
                    }
                }
                tx.rcpts.push(shown);
                Next::Reply(Reply::new(250, "2.1.5", "Ok"))
            }
            Err((reason, reply)) => {
                info!(
                    event = "rcpt_refused", ip = %self.remote.ip(), listener = self.settings.listener,
                    rcpt = %shown, reason, code = reply.code
                );
                Next::Reply(reply)
            }
        }
    }

    /// Relay policy and recipient lookup. Only names in our local domains that resolve to an
    /// account (directly, by sub-address, or through aliases) are accepted; everything else is
    /// refused, so the MX role can never relay.
    async fn resolve_recipient(&self, to: &ForwardPath) -> Result<Vec<AccountId>, (&'static str, Reply)> {
        let relay_denied = || ("relay_denied", Reply::new(554, "5.7.1", "Relay access denied"));
        let unknown = || ("unknown_user", Reply::new(550, "5.1.1", "Recipient address rejected: user unknown"));
        let tempfail = || ("store_unavailable", Reply::new(451, "4.3.0", "Temporary lookup failure, try again later"));
        let store = &self.services.store;

        let candidates: Vec<String> = match to {
            ForwardPath::Postmaster => {
                // The postmaster of the first local domain that has one answers for the server.
                let domains = store.list_domains().await.map_err(|_| tempfail())?;
                domains.into_iter().map(|d| format!("postmaster@{d}")).collect()
            }
            ForwardPath::Mailbox(m) => {
                let Domain::Name(domain) = &m.domain else { return Err(relay_denied()) };
                if !store.is_local_domain(domain).await.map_err(|_| tempfail())? {
                    return Err(relay_denied());
                }
                let Ok(canonical) = address::canonical(&format!("{}@{}", m.local, domain)) else {
                    return Err(unknown());
                };
                let (local, domain) = canonical.rsplit_once('@').expect("canonical addresses have an @");
                let base = address::strip_subaddress(local, &self.services.recipient_delimiter);
                let mut c = vec![canonical.clone()];
                if base != local {
                    c.push(format!("{base}@{domain}"));
                }
                c
            }
        };
        for candidate in candidates {
            let resolution = store.resolve(&candidate).await.map_err(|_| tempfail())?;
            if !resolution.remote.is_empty() {
                // Forwarding to other domains needs the outbound queue; until it exists the
                // sender is asked to retry rather than having part of the mail dropped.
                return Err((
                    "forwarding_unavailable",
                    Reply::new(451, "4.3.0", "Forwarding for this address is not available yet"),
                ));
            }
            if !resolution.accounts.is_empty() {
                return Ok(resolution.accounts);
            }
        }
        Err(unknown())
    }

    /// Why message content may not start now, if it may not.
    fn content_refusal(&self) -> Option<Reply> {
        match &self.tx {
            None => Some(Reply::new(503, "5.5.1", "Need MAIL and RCPT first")),
            Some(tx) if tx.rcpts.is_empty() => Some(Reply::new(554, "5.5.1", "No valid recipients")),
            Some(_) => None,
        }
    }

    fn new_content(&self, framing: Framing) -> Result<Content, Reply> {
        let blob = self.services.store.blob_writer().map_err(|e| {
            warn!(event = "store_error", error = %e);
            Reply::new(451, "4.3.0", "Temporary storage failure, try again later")
        })?;
        Ok(Content {
            receiver: Receiver::new(framing, self.settings.max_message_size, self.settings.max_data_line),
            blob: Some(blob),
            scratch: Vec::new(),
        })
    }

    fn data_start(&mut self) -> Next {
        if let Some(reply) = self.content_refusal() {
            return self.error(reply);
        }
        if self.tx.as_ref().is_some_and(|tx| tx.content.is_some()) {
            return self.error(Reply::new(503, "5.5.1", "DATA after BDAT"));
        }
        match self.new_content(Framing::Dot) {
            Ok(content) => {
                self.tx.as_mut().expect("content_refusal checked").content = Some(content);
                Next::Data(Reply::new(354, "", "End data with <CR><LF>.<CR><LF>"))
            }
            Err(reply) => Next::Reply(reply),
        }
    }

    /// Feeds DATA content. `Err` means the session must end with that reply.
    pub async fn data(&mut self, input: &[u8]) -> Result<Fed, Next> {
        let content = self.tx.as_mut().and_then(|tx| tx.content.as_mut()).expect("data() follows Next::Data");
        match feed(content, input).await {
            Ok(fed) => Ok(fed),
            Err(fatal) => Err(self.fatal_content(fatal)),
        }
    }

    fn fatal_content(&mut self, fatal: Fatal) -> Next {
        self.tx = None;
        let (what, reply) = match fatal {
            Fatal::BareLf => ("bare_lf", Reply::new(500, "5.5.2", "Bare LF in message; lines must end with CRLF")),
            Fatal::BareCr => ("bare_cr", Reply::new(500, "5.5.2", "Bare CR in message; lines must end with CRLF")),
            Fatal::Nul => ("nul", Reply::new(500, "5.6.0", "NUL character in message")),
        };
        warn!(event = "message_refused", ip = %self.remote.ip(), listener = self.settings.listener, reason = what);
        Next::Close(reply)
    }

    /// The DATA terminator arrived: store the message or say why not.
    pub async fn data_end(&mut self) -> Next {
        let tx = self.tx.take().expect("data_end() follows data()");
        self.finish(tx).await
    }

    async fn bdat_start(&mut self, size: u64, last: bool) -> Next {
        let refusal = if !self.helo.as_ref().is_some_and(|h| h.extended) {
            Some(Reply::new(503, "5.5.1", "BDAT needs EHLO"))
        } else {
            self.content_refusal()
        };
        if let Some(reply) = refusal {
            return match self.error(reply) {
                Next::Reply(reply) => Next::BdatDiscard { size, reply },
                close => close,
            };
        }
        let tx = self.tx.as_ref().expect("content_refusal checked");
        if tx.content.is_none() {
            match self.new_content(Framing::Chunked) {
                Ok(c) => self.tx.as_mut().expect("checked").content = Some(c),
                Err(reply) => return Next::BdatDiscard { size, reply },
            }
        }
        self.bdat_last = last;
        Next::Bdat { size }
    }

    /// Feeds one piece of a BDAT chunk. A fatal error here keeps the stream in sync (the
    /// chunk has a length), so the rest of the chunk is discarded and the reply comes at its end.
    pub async fn bdat_data(&mut self, input: &[u8]) {
        let Some(tx) = self.tx.as_mut() else { return };
        let Some(content) = tx.content.as_mut() else { return };
        if let Err(fatal) = feed(content, input).await {
            self.bdat_fatal = Some(fatal);
            tx.content = None;
        }
    }

    pub async fn bdat_end(&mut self) -> Next {
        let Some(tx) = self.tx.as_mut() else {
            return Next::Reply(Reply::new(503, "5.5.1", "No transaction"));
        };
        if self.bdat_fatal.is_none() && self.bdat_last {
            let content = tx.content.as_ref().expect("bdat_end() follows bdat_start()");
            self.bdat_fatal = content.receiver.finish_chunks().err();
        }
        if let Some(fatal) = self.bdat_fatal.take() {
            // The chunk length kept the stream in sync, so the session may go on.
            return match self.fatal_content(fatal) {
                Next::Close(reply) => self.error(reply),
                other => other,
            };
        }
        if !self.bdat_last {
            let received = tx.content.as_ref().map_or(0, |c| c.receiver.size());
            return Next::Reply(Reply::new(250, "2.0.0", format!("{received} octets received")));
        }
        let tx = self.tx.take().expect("checked above");
        self.finish(tx).await
    }

    async fn finish(&mut self, mut tx: Transaction) -> Next {
        let content = tx.content.take().expect("a finished transaction has content");
        match content.receiver.soft_error() {
            Some(Soft::TooBig) => {
                info!(event = "message_refused", ip = %self.remote.ip(), id = %tx.id, reason = "too_big", size = content.receiver.size());
                return Next::Reply(Reply::new(
                    552,
                    "5.3.4",
                    format!("Message size exceeds the limit of {} bytes", self.settings.max_message_size),
                ));
            }
            Some(Soft::LineTooLong) => {
                info!(event = "message_refused", ip = %self.remote.ip(), id = %tx.id, reason = "line_too_long");
                return Next::Reply(Reply::new(
                    554,
                    "5.6.0",
                    format!("Message has a line longer than {} bytes", self.settings.max_data_line),
                ));
            }
            None => {}
        }
        let Some(writer) = content.blob else {
            warn!(event = "store_error", id = %tx.id, error = "writing the message failed");
            return Next::Reply(Reply::new(451, "4.3.0", "Temporary storage failure, try again later"));
        };
        let blob = match writer.finish().await {
            Ok(blob) => blob,
            Err(e) => {
                warn!(event = "store_error", id = %tx.id, error = %e);
                return Next::Reply(Reply::new(451, "4.3.0", "Temporary storage failure, try again later"));
            }
        };
        let size = blob.size();
        let prefix = trace::prefix(&trace::Stamp {
            id: &tx.id,
            from: &tx.from,
            helo: self.helo.as_ref().map_or("unknown", |h| h.name.as_str()),
            extended: self.helo.as_ref().is_some_and(|h| h.extended),
            remote: self.remote.ip(),
            hostname: &self.services.hostname,
            tls: self.tls.as_ref(),
            smtputf8: tx.params.smtputf8,
            rcpts: &tx.rcpts,
        });
        let trail = serde_json::json!([
            {"stage": "connect", "verdict": "accept", "reason": "no_filter_configured"},
            {"stage": "recipients", "verdict": "accept", "reason": "local_mailbox"},
            {"stage": "content", "verdict": "accept", "reason": "within_limits"},
        ])
        .to_string();
        let delivery = Delivery {
            blob,
            prefix,
            internal_date: chrono::Utc::now().timestamp(),
            targets: tx.accounts.iter().map(|&account| Target { account, folder: Folder::Inbox }).collect(),
            reference: tx.id.clone(),
            trail,
        };
        match self.services.store.deliver(delivery).await {
            Ok(_) => {
                info!(
                    event = "delivered", ip = %self.remote.ip(), listener = self.settings.listener, id = %tx.id,
                    from = %format!("<{}>", tx.from), rcpts = tx.rcpts.len(), size
                );
                Next::Reply(Reply::new(250, "2.0.0", format!("Ok: queued as {}", tx.id)))
            }
            Err(e) => {
                warn!(event = "store_error", id = %tx.id, error = %e);
                Next::Reply(Reply::new(451, "4.3.0", "Temporary storage failure, try again later"))
            }
        }
    }
}

/// Runs content through the receiver and appends what it keeps to the blob.
async fn feed(content: &mut Content, input: &[u8]) -> Result<Fed, Fatal> {
    content.scratch.clear();
    let fed = content.receiver.feed(input, &mut content.scratch)?;
    if content.receiver.soft_error().is_some() {
        // Past a limit: drop the partial blob now rather than holding it to the end.
        content.blob = None;
    } else if let Some(blob) = content.blob.as_mut() {
        if !content.scratch.is_empty() && blob.write(&content.scratch).await.is_err() {
            content.blob = None;
        }
    }
    Ok(fed)
}
