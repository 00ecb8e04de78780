//! One milter conversation, MTA side: [`MilterSession`] connects to a filter (TCP or Unix
//! socket), negotiates options, then offers it the SMTP events of one connection — connect,
//! HELO, and per message MAIL, RCPT, DATA, headers, end of headers, body, end of message — and
//! turns its answers into [`Step`]s and, at end of message, a [`Verdict`] with the
//! [`Modification`](super::Modification)s it asked for.
//!
//! Negotiation (OPTNEG): we speak version 6, allow every action of version 6, and offer every
//! `SMFIP_NO*` and `SMFIP_NR_*` flag and SKIP. A filter may choose a subset; anything else (a
//! newer version, a flag or action we did not offer) fails the session. Steps the filter does
//! not want are not sent; steps it will not answer (`NR_*`) are sent without waiting. A step
//! not in `[[filter.milter]] stages` is not sent either, except that a filter which wants
//! connect, MAIL or RCPT cannot do without them (libmilter's state machine ignores the
//! commands that follow, and the session would wait for answers that never come): leaving
//! those out for such a filter fails negotiation with a clear error. DATA and end of headers
//! are always sent when the filter wants them (libmilter needs end of headers after DATA).
//!
//! Timeouts (`connect_timeout`, `command_timeout`, `eom_timeout`): each command — writing it
//! and reading its answer — must finish within the command timeout; end of message, with all
//! its modifications, within the end-of-message timeout. `SMFIR_PROGRESS` is accepted but does
//! not extend either: the configured times are the longest waits. Any error (timeout, I/O,
//! a malformed or unexpected answer) leaves the session unusable; the caller applies
//! `on_error` and drops it.
//!
//! Limits at end of message (see [`super::eom`]): at most 1000 modifications of at most 1 MiB
//! together (besides the body), and a replacement body of at most the session's `max_body`
//! ([`DEFAULT_MAX_BODY`] unless set): a filter cannot make us hold more.

use std::io;
use std::time::Duration;

use rampart_config::Milter;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::codec::{Actions, BODY_CHUNK, Command, MIN_VERSION, MacroStage, OptNeg, Peer, Protocol, Reply, VERSION, packet_len};
use super::eom::Mods;
use super::macros::{Macros, Wanted};
use super::types::{Eom, Error, ErrorKind, Stage, Step, Verdict};
use crate::net::{Address, Stream};

/// The largest replacement body, unless [`MilterSession::set_max_body`] says otherwise.
pub const DEFAULT_MAX_BODY: usize = 64 * 1024 * 1024;

/// Which commands this session sends (offered by the config and wanted by the filter).
#[derive(Debug, Clone, Copy, Default)]
struct Plan {
    connect: bool,
    helo: bool,
    mail: bool,
    rcpt: bool,
    data: bool,
    header: bool,
    eoh: bool,
    body: bool,
    eom: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conn {
    Open,
    /// A connection-level verdict: nothing more is sent but QUIT.
    Done,
    Broken,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Msg {
    /// No MAIL sent since the last end of message or abort.
    Idle,
    Open,
    /// The filter gave this message-level verdict; the rest of the message is not sent and
    /// end of message returns it.
    Decided(Verdict),
}

/// What a reply means to the command that asked.
enum Answer {
    Continue,
    Skip,
    Verdict(Verdict),
}

/// A connected, negotiated milter.
pub struct MilterSession {
    name: String,
    io: Box<dyn Stream>,
    command_timeout: Duration,
    eom_timeout: Duration,
    actions: Actions,
    protocol: Protocol,
    plan: Plan,
    wanted: Wanted,
    conn: Conn,
    msg: Msg,
    skip_body: bool,
    max_body: usize,
}

impl MilterSession {
    /// Connects to `[[filter.milter]] address` within `connect_timeout` and negotiates.
    pub async fn open(cfg: &Milter) -> Result<MilterSession, Error> {
        let err = |kind| Error { milter: cfg.name.clone(), stage: Stage::Negotiate, kind };
        let address = Address::parse(&cfg.address).ok_or_else(|| err(ErrorKind::BadAddress(cfg.address.clone())))?;
        let io = address.connect(cfg.connect_timeout).await.map_err(|e| err(ErrorKind::Unreachable(e)))?;
        MilterSession::negotiate(io, cfg).await
    }

    /// Negotiates over a stream already connected (tests use an in-memory one).
    pub async fn negotiate(io: Box<dyn Stream>, cfg: &Milter) -> Result<MilterSession, Error> {
        let mut s = MilterSession {
            name: cfg.name.clone(),
            io,
            command_timeout: cfg.command_timeout,
            eom_timeout: cfg.eom_timeout,
            actions: Actions::default(),
            protocol: Protocol::default(),
            plan: Plan::default(),
            wanted: Wanted::default(),
            conn: Conn::Open,
            msg: Msg::Idle,
            skip_body: false,
            max_body: DEFAULT_MAX_BODY,
        };
        let offer = Command::OptNeg { version: VERSION, actions: Actions::ALL, protocol: Protocol::OFFERED };
        let mut wire = Vec::new();
        offer.encode(&mut wire).map_err(|e| s.fail(Stage::Negotiate, ErrorKind::Encode(e)))?;
        let timeout = s.command_timeout;
        let reply = s.guard(Stage::Negotiate, timeout, async |s| {
            s.io.write_all(&wire).await.map_err(ErrorKind::Io)?;
            s.read_reply().await
        });
        match reply.await? {
            Reply::OptNeg(o) => {
                let stages: Vec<&str> = cfg.stages.iter().map(String::as_str).collect();
                s.agree(o, &stages).map_err(|kind| s.fail(Stage::Negotiate, kind))?;
                Ok(s)
            }
            other => Err(s.fail(Stage::Negotiate, ErrorKind::Unexpected(reply_name(&other)))),
        }
    }

    /// The config's name for this filter.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What was negotiated: the actions the filter may take and its protocol flags.
    pub fn negotiated(&self) -> (Actions, Protocol) {
        (self.actions, self.protocol)
    }

    /// The largest replacement body accepted at end of message (default [`DEFAULT_MAX_BODY`];
    /// the caller's message size limit is a good value).
    pub fn set_max_body(&mut self, bytes: usize) {
        self.max_body = bytes;
    }

    /// Checks the filter's answer to our offer and settles what is sent.
    fn agree(&mut self, o: OptNeg, stages: &[&str]) -> Result<(), ErrorKind> {
        let refuse = |why: String| Err(ErrorKind::Negotiation(why));
        if !(MIN_VERSION..=VERSION).contains(&o.version) {
            return refuse(format!("the filter speaks version {}, we speak {MIN_VERSION} to {VERSION}", o.version));
        }
        if o.actions.0 & !Actions::ALL.0 != 0 {
            return refuse(format!("the filter wants actions {:#x} beyond the ones offered ({:#x})", o.actions.0, Actions::ALL.0));
        }
        if o.protocol.0 & !Protocol::OFFERED.0 != 0 {
            return refuse(format!("the filter wants protocol flags {:#x} we do not offer", o.protocol.0 & !Protocol::OFFERED.0));
        }
        let wants = |no: Protocol| !o.protocol.contains(no);
        let offered = |stage: &str| stages.contains(&stage);
        for (stage, no) in [("connect", Protocol::NO_CONNECT), ("mail", Protocol::NO_MAIL), ("rcpt", Protocol::NO_RCPT)] {
            if wants(no) && !offered(stage) {
                return refuse(format!("the filter needs the `{stage}` stage, which its `stages` leaves out"));
            }
        }
        self.plan = Plan {
            connect: wants(Protocol::NO_CONNECT),
            helo: offered("helo") && wants(Protocol::NO_HELO),
            mail: wants(Protocol::NO_MAIL),
            rcpt: wants(Protocol::NO_RCPT),
            data: wants(Protocol::NO_DATA),
            header: offered("header") && wants(Protocol::NO_HEADERS),
            eoh: wants(Protocol::NO_EOH),
            body: offered("body") && wants(Protocol::NO_BODY),
            eom: offered("eom"),
        };
        for list in &o.symlists {
            self.wanted.replace(list.stage, &list.names);
        }
        self.actions = o.actions;
        self.protocol = o.protocol;
        Ok(())
    }

    /// The client's name and address (`SMFIC_CONNECT`), with the connect macros.
    pub async fn connect(&mut self, macros: &Macros, hostname: &str, peer: Peer<'_>) -> Result<Step, Error> {
        let send = self.plan.connect && self.conn == Conn::Open;
        self.step(Stage::Connect, send, macros, &[], Command::Connect { hostname, peer }).await
    }

    /// The HELO/EHLO argument.
    pub async fn helo(&mut self, macros: &Macros, name: &str) -> Result<Step, Error> {
        let send = self.plan.helo && self.conn == Conn::Open;
        self.step(Stage::Helo, send, macros, &[], Command::Helo(name)).await
    }

    /// MAIL FROM: the sender as given (`<a@b>`, `<>`) and its ESMTP parameters. Starts a
    /// message; a message still open with this filter is aborted first.
    pub async fn mail(&mut self, macros: &Macros, from: &str, params: &[&str]) -> Result<Step, Error> {
        self.usable(Stage::Mail)?;
        if self.msg != Msg::Idle {
            self.abort().await?;
        }
        self.skip_body = false;
        if self.conn != Conn::Open {
            return Ok(Step::Continue);
        }
        self.msg = Msg::Open;
        let mut args = vec![from];
        args.extend_from_slice(params);
        let addr = bare(from);
        self.step(Stage::Mail, self.plan.mail, macros, &[("{mail_addr}", addr)], Command::Mail(args)).await
    }

    /// RCPT TO: one recipient and its parameters. Reject and tempfail here refuse only this
    /// recipient.
    pub async fn rcpt(&mut self, macros: &Macros, to: &str, params: &[&str]) -> Result<Step, Error> {
        let mut args = vec![to];
        args.extend_from_slice(params);
        let send = self.plan.rcpt && self.in_message();
        self.step(Stage::Rcpt, send, macros, &[("{rcpt_addr}", bare(to))], Command::Rcpt(args)).await
    }

    /// DATA (or the first BDAT), before any content.
    pub async fn data(&mut self, macros: &Macros) -> Result<Step, Error> {
        let send = self.plan.data && self.in_message();
        self.step(Stage::Data, send, macros, &[], Command::Data).await
    }

    /// One header as received: `value` is everything after the colon (a leading space or tab
    /// and a final CRLF are removed; inner folding is kept).
    pub async fn header(&mut self, name: &str, value: &[u8]) -> Result<Step, Error> {
        let value = value.strip_suffix(b"\r\n").unwrap_or(value);
        let value = value.strip_prefix(b" ").or_else(|| value.strip_prefix(b"\t")).unwrap_or(value);
        let send = self.plan.header && self.in_message();
        self.step(Stage::Header, send, &Macros::default(), &[], Command::Header { name, value }).await
    }

    /// End of the header section.
    pub async fn eoh(&mut self, macros: &Macros) -> Result<Step, Error> {
        let send = self.plan.eoh && self.in_message();
        self.step(Stage::Eoh, send, macros, &[], Command::Eoh).await
    }

    /// Body bytes (CRLF line ends, as stored), sent in chunks of at most 64 KiB. Call it as
    /// often as needed; after the filter answers SKIP the rest is not sent.
    pub async fn body(&mut self, bytes: &[u8]) -> Result<Step, Error> {
        self.usable(Stage::Body)?;
        for chunk in bytes.chunks(BODY_CHUNK) {
            if !self.plan.body || self.skip_body || !self.in_message() {
                break;
            }
            match self.send(Stage::Body, &Macros::default(), &[], Command::Body(chunk)).await? {
                Answer::Continue => {}
                Answer::Skip => self.skip_body = true,
                Answer::Verdict(v) => return Ok(Step::Verdict(v)),
            }
        }
        Ok(Step::Continue)
    }

    /// End of message: the filter's verdict and modifications. A verdict the filter gave
    /// earlier in the message stands (it is returned, and the filter told the message is over);
    /// without the `eom` stage offered the message is aborted and accepted here.
    pub async fn eom(&mut self, macros: &Macros) -> Result<Eom, Error> {
        self.usable(Stage::Eom)?;
        let verdict = match &self.msg {
            Msg::Decided(v) => Some(v.clone()),
            Msg::Open if self.conn == Conn::Open && self.plan.eom => None,
            _ => Some(Verdict::Accept),
        };
        if let Some(verdict) = verdict {
            self.abort().await?;
            return Ok(Eom { verdict, modifications: Vec::new() });
        }
        let mut wire = Vec::new();
        self.encode(Stage::Eom, macros, &[], Command::Eom, &mut wire)?;
        let (timeout, max_body) = (self.eom_timeout, self.max_body);
        let result = self.guard(Stage::Eom, timeout, async move |s| {
            s.io.write_all(&wire).await.map_err(ErrorKind::Io)?;
            s.collect_eom(max_body).await
        });
        let eom = result.await?;
        self.msg = Msg::Idle;
        if eom.verdict == Verdict::CloseConnection {
            self.conn = Conn::Done;
        }
        Ok(eom)
    }

    /// The message ended without an end of message (RSET, a refusal by us or another
    /// filter, a dropped client): tells the filter (`SMFIC_ABORT`, no answer). Does nothing
    /// when no message is open with this filter.
    pub async fn abort(&mut self) -> Result<(), Error> {
        self.usable(Stage::Abort)?;
        if self.msg == Msg::Idle || self.conn != Conn::Open {
            self.msg = Msg::Idle;
            return Ok(());
        }
        self.msg = Msg::Idle;
        self.write_only(Stage::Abort, Command::Abort).await
    }

    /// Ends the conversation (`SMFIC_QUIT`) and closes the connection.
    pub async fn quit(mut self) -> Result<(), Error> {
        if self.conn == Conn::Broken {
            return Ok(());
        }
        self.write_only(Stage::Quit, Command::Quit).await?;
        let _ = self.io.shutdown().await;
        Ok(())
    }

    /// After a failure every call fails: the conversation's state is unknown.
    fn usable(&self, stage: Stage) -> Result<(), Error> {
        if self.conn == Conn::Broken { Err(self.error(stage, ErrorKind::Broken)) } else { Ok(()) }
    }

    fn in_message(&self) -> bool {
        self.conn == Conn::Open && self.msg == Msg::Open
    }

    /// Sends one command (when `send`) and turns the answer into a [`Step`], updating what
    /// the verdict ends: the connection at connect/HELO, only the recipient for reject and
    /// tempfail at RCPT, the message otherwise.
    async fn step(&mut self, stage: Stage, send: bool, macros: &Macros, extra: &[(&str, &str)], cmd: Command<'_>) -> Result<Step, Error> {
        self.usable(stage)?;
        if !send {
            return Ok(Step::Continue);
        }
        let verdict = match self.send(stage, macros, extra, cmd).await? {
            Answer::Continue => return Ok(Step::Continue),
            Answer::Skip => return Err(self.fail(stage, ErrorKind::Unexpected("skip"))),
            Answer::Verdict(v) => v,
        };
        let recipient_only = stage == Stage::Rcpt && matches!(verdict, Verdict::Reject(_) | Verdict::Tempfail(_));
        if matches!(stage, Stage::Connect | Stage::Helo) || verdict == Verdict::CloseConnection {
            self.conn = Conn::Done;
        } else if !recipient_only {
            self.msg = Msg::Decided(verdict.clone());
        }
        Ok(Step::Verdict(verdict))
    }

    /// Writes the stage's macros and the command, then reads the answer unless the filter
    /// negotiated not to give one.
    async fn send(&mut self, stage: Stage, macros: &Macros, extra: &[(&str, &str)], cmd: Command<'_>) -> Result<Answer, Error> {
        let mut wire = Vec::new();
        self.encode(stage, macros, extra, cmd, &mut wire)?;
        let no_reply = no_reply_flag(stage).is_some_and(|f| self.protocol.contains(f));
        let timeout = self.command_timeout;
        let reply = self.guard(stage, timeout, async move |s| {
            s.io.write_all(&wire).await.map_err(ErrorKind::Io)?;
            if no_reply {
                return Ok(None);
            }
            loop {
                match s.read_reply().await? {
                    Reply::Progress => continue,
                    r => return Ok(Some(r)),
                }
            }
        });
        let Some(reply) = reply.await? else { return Ok(Answer::Continue) };
        answer(stage, reply).map_err(|kind| self.fail(stage, kind))
    }

    async fn write_only(&mut self, stage: Stage, cmd: Command<'_>) -> Result<(), Error> {
        let mut wire = Vec::new();
        cmd.encode(&mut wire).map_err(|e| self.fail(stage, ErrorKind::Encode(e)))?;
        let timeout = self.command_timeout;
        self.guard(stage, timeout, async move |s| s.io.write_all(&wire).await.map_err(ErrorKind::Io)).await
    }

    /// The macros packet for the stage (when any value is set) followed by the command.
    fn encode(&mut self, stage: Stage, macros: &Macros, extra: &[(&str, &str)], cmd: Command<'_>, wire: &mut Vec<u8>) -> Result<(), Error> {
        let encoded = (|| {
            if let Some(ms) = macro_stage(stage) {
                let pairs = self.wanted.pairs(ms, macros, extra);
                if !pairs.is_empty() {
                    Command::Macros { stage: ms, pairs }.encode(wire)?;
                }
            }
            cmd.encode(wire)
        })();
        encoded.map_err(|e| self.fail(stage, ErrorKind::Encode(e)))
    }

    /// Runs one exchange under a deadline; any failure marks the session broken.
    async fn guard<T>(
        &mut self,
        stage: Stage,
        timeout: Duration,
        f: impl AsyncFnOnce(&mut MilterSession) -> Result<T, ErrorKind>,
    ) -> Result<T, Error> {
        if self.conn == Conn::Broken {
            return Err(self.error(stage, ErrorKind::Broken));
        }
        let result = match tokio::time::timeout(timeout, f(self)).await {
            Ok(r) => r,
            Err(_) => Err(ErrorKind::Timeout(timeout)),
        };
        result.map_err(|kind| self.fail(stage, kind))
    }

    /// Reads one packet: the length is checked before the data is read.
    async fn read_reply(&mut self) -> Result<Reply, ErrorKind> {
        let mut header = [0u8; 4];
        self.io.read_exact(&mut header).await.map_err(closed_or_io)?;
        let len = packet_len(header).map_err(ErrorKind::Protocol)?;
        let mut packet = vec![0u8; len];
        self.io.read_exact(&mut packet).await.map_err(closed_or_io)?;
        Reply::decode(packet[0], &packet[1..]).map_err(ErrorKind::Protocol)
    }

    /// Reads modifications until the final answer.
    async fn collect_eom(&mut self, max_body: usize) -> Result<Eom, ErrorKind> {
        let mut mods = Mods::new(self.actions, max_body);
        loop {
            let verdict = match self.read_reply().await? {
                Reply::Progress => continue,
                Reply::Modify(m) => {
                    mods.push(m)?;
                    continue;
                }
                Reply::Continue => Verdict::Accept,
                other => match answer(Stage::Eom, other)? {
                    Answer::Verdict(v) => v,
                    Answer::Continue | Answer::Skip => return Err(ErrorKind::Unexpected("skip")),
                },
            };
            return Ok(Eom { verdict, modifications: mods.list });
        }
    }

    fn fail(&mut self, stage: Stage, kind: ErrorKind) -> Error {
        self.conn = Conn::Broken;
        self.error(stage, kind)
    }

    fn error(&self, stage: Stage, kind: ErrorKind) -> Error {
        Error { milter: self.name.clone(), stage, kind }
    }
}

/// A reply to a command before end of message.
fn answer(stage: Stage, reply: Reply) -> Result<Answer, ErrorKind> {
    Ok(match reply {
        Reply::Continue => Answer::Continue,
        Reply::Skip if stage == Stage::Body => Answer::Skip,
        Reply::Accept => Answer::Verdict(Verdict::Accept),
        Reply::Reject => Answer::Verdict(Verdict::Reject(None)),
        Reply::Tempfail => Answer::Verdict(Verdict::Tempfail(None)),
        Reply::ReplyCode(r) if r.is_temporary() => Answer::Verdict(Verdict::Tempfail(Some(r))),
        Reply::ReplyCode(r) => Answer::Verdict(Verdict::Reject(Some(r))),
        Reply::Discard => Answer::Verdict(Verdict::Discard),
        Reply::ConnFail | Reply::Shutdown => Answer::Verdict(Verdict::CloseConnection),
        other => return Err(ErrorKind::Unexpected(reply_name(&other))),
    })
}

fn reply_name(r: &Reply) -> &'static str {
    match r {
        Reply::OptNeg(_) => "optneg",
        Reply::Accept => "accept",
        Reply::Continue => "continue",
        Reply::Reject => "reject",
        Reply::Tempfail => "tempfail",
        Reply::Discard => "discard",
        Reply::Skip => "skip",
        Reply::Progress => "progress",
        Reply::ConnFail => "conn_fail",
        Reply::Shutdown => "shutdown",
        Reply::ReplyCode(_) => "replycode",
        Reply::SetSymList(_) => "setsymlist",
        Reply::Modify(_) => "a modification before end of message",
    }
}

/// The flag by which a filter says it will not answer this step. End of message and
/// negotiation are always answered; abort and quit never are (they are written only).
fn no_reply_flag(stage: Stage) -> Option<Protocol> {
    Some(match stage {
        Stage::Connect => Protocol::NR_CONNECT,
        Stage::Helo => Protocol::NR_HELO,
        Stage::Mail => Protocol::NR_MAIL,
        Stage::Rcpt => Protocol::NR_RCPT,
        Stage::Data => Protocol::NR_DATA,
        Stage::Header => Protocol::NR_HEADER,
        Stage::Eoh => Protocol::NR_EOH,
        Stage::Body => Protocol::NR_BODY,
        _ => return None,
    })
}

fn macro_stage(stage: Stage) -> Option<MacroStage> {
    Some(match stage {
        Stage::Connect => MacroStage::Connect,
        Stage::Helo => MacroStage::Helo,
        Stage::Mail => MacroStage::Mail,
        Stage::Rcpt => MacroStage::Rcpt,
        Stage::Data => MacroStage::Data,
        Stage::Eoh => MacroStage::Eoh,
        Stage::Eom => MacroStage::Eom,
        _ => return None,
    })
}

/// `<a@b>` → `a@b`, the form of `{mail_addr}` and `{rcpt_addr}`.
fn bare(addr: &str) -> &str {
    addr.strip_prefix('<').and_then(|a| a.strip_suffix('>')).unwrap_or(addr)
}

fn closed_or_io(e: io::Error) -> ErrorKind {
    if e.kind() == io::ErrorKind::UnexpectedEof { ErrorKind::Closed } else { ErrorKind::Io(e) }
}
