//! Milters (`[[filter.milter]]`, the Sendmail milter protocol v6): each configured filter
//! follows the session — connect and HELO, MAIL, RCPT for recipients we accepted, DATA — and
//! gets the whole message at the end of data, when its verdict and modifications are applied.
//! Every answer is a trail entry named after the milter, and `decide` weighs them like any
//! other stage. A milter that cannot be asked gets its `on_error`: defer (the default),
//! accept (tagged), or refuse.
//!
//! Scope, as in Postfix: a refusal at connect or HELO refuses every MAIL of the connection;
//! at MAIL the transaction; at RCPT that recipient; at the end of data the message. With
//! several milters each gets the original message; their modifications are applied in
//! configuration order.

use std::sync::Arc;

use rampart_config::{AppliesTo, Milter as MilterConfig, OnError};
use rampart_external::milter::{Eom, Error as MilterError, Macros, MilterSession, Modification, Peer, SmtpReply, Step, Verdict};
use rampart_pipeline::{Entry, Outcome, Reason, Stage};
use tracing::{info, warn};

use super::{Connection, Next, Role};
use crate::reply::Reply;

/// Body chunks sent per `body` command (libmilter's limit is 64 KiB).
const BODY_CHUNK: usize = 64 * 1024;

/// One configured milter on this connection.
struct Slot {
    cfg: Arc<MilterConfig>,
    /// None before it is opened, and after it failed or accepted the connection.
    session: Option<MilterSession>,
    /// It accepted (`a`) the current transaction: nothing more until the next one.
    done_for_message: bool,
}

/// The milters of one connection.
#[derive(Default)]
pub(super) struct Milters {
    slots: Vec<Slot>,
    macros: Macros,
    /// A refusal of the whole connection (at connect or HELO): every MAIL gets it.
    refusal: Option<(Entry, Option<Reply>)>,
    opened: bool,
}

/// A command of the envelope, sent to every milter in turn.
#[derive(Clone, Copy)]
enum Cmd<'a> {
    Mail(&'a str),
    Rcpt(&'a str),
    Data,
}

/// What a milter said that ends (or marks) the current command.
pub(super) struct Answer {
    pub entry: Entry,
    /// The milter's own reply (`y` or a reply code given with reject/tempfail).
    pub reply: Option<Reply>,
}

fn entry(result: Outcome, reason: Reason, milter: &str, detail: String) -> Entry {
    let detail = if detail.is_empty() { milter.to_string() } else { format!("{milter}: {detail}") };
    Entry::new(Stage::Milter, result, reason).detail(detail)
}

fn smtp_reply(r: &SmtpReply) -> Reply {
    Reply::multi(r.code, r.lines.clone())
}

/// The entry (and reply) for a verdict before the end of data; None to go on.
fn verdict_entry(name: &str, step: &str, v: Verdict) -> Option<Answer> {
    let text = |r: &Option<SmtpReply>| r.as_ref().map(|r| format!("at {step}: {} {}", r.code, r.lines.join(" "))).unwrap_or(format!("at {step}"));
    Some(match v {
        Verdict::Accept => return None,
        Verdict::Reject(r) => Answer { entry: entry(Outcome::Fail, Reason::MilterRejected, name, text(&r)), reply: r.as_ref().map(smtp_reply) },
        Verdict::Tempfail(r) => {
            Answer { entry: entry(Outcome::TempError, Reason::MilterTempfailed, name, text(&r)), reply: r.as_ref().map(smtp_reply) }
        }
        Verdict::Discard => Answer { entry: entry(Outcome::Neutral, Reason::MilterDiscarded, name, format!("at {step}")), reply: None },
        Verdict::CloseConnection => Answer {
            entry: entry(Outcome::TempError, Reason::MilterTempfailed, name, format!("at {step}: asked to close the connection")),
            reply: Some(Reply::new(421, "4.7.0", "Service not available, closing connection")),
        },
    })
}

/// `on_error` for a milter that failed: the entry, or None when it is simply left out.
fn failure(cfg: &MilterConfig, e: &MilterError) -> Entry {
    warn!(event = "milter_failed", milter = %cfg.name, stage = %e.stage, error = %e.kind);
    let (result, why) = match cfg.on_error {
        OnError::Tempfail => (Outcome::TempError, "deferred"),
        OnError::Reject => (Outcome::Fail, "refused"),
        OnError::Accept => (Outcome::Skipped, "accepted unchecked"),
    };
    entry(result, Reason::MilterUnavailable, &cfg.name, format!("{why}: {} at {}", e.kind, e.stage))
}

impl Milters {
    pub(super) fn new(configs: &[Arc<MilterConfig>], role: Role, macros: Macros) -> Milters {
        let applies = |c: &MilterConfig| match c.applies_to {
            AppliesTo::Both => true,
            AppliesTo::Mx => role == Role::Mx,
            AppliesTo::Submission => role == Role::Submission,
        };
        let slots = configs.iter().filter(|c| applies(c)).map(|cfg| Slot { cfg: cfg.clone(), session: None, done_for_message: false }).collect();
        Milters { slots, macros, refusal: None, opened: false }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub(super) fn set_macro(&mut self, name: &str, value: impl Into<String>) {
        self.macros.set(name, value);
    }

    /// The connection-scope refusal, if a milter gave one at connect or HELO.
    pub(super) fn connection_refusal(&self) -> Option<(Entry, Option<Reply>)> {
        self.refusal.clone()
    }

    /// Opens every milter and sends connect (first time only), then HELO. A failure or a
    /// refusal here covers the whole connection.
    pub(super) async fn helo(&mut self, peer: std::net::SocketAddr, name: &str) {
        let first = !std::mem::replace(&mut self.opened, true);
        for slot in &mut self.slots {
            if first {
                match MilterSession::open(&slot.cfg).await {
                    Ok(s) => slot.session = Some(s),
                    Err(e) => {
                        let e = failure(&slot.cfg, &e);
                        if e.result != Outcome::Skipped && self.refusal.is_none() {
                            self.refusal = Some((e, None));
                        }
                        continue;
                    }
                }
            }
            let Some(session) = slot.session.as_mut() else { continue };
            let hostname = format!("[{}]", peer.ip());
            let step = if first { session.connect(&self.macros, &hostname, Peer::Inet(peer)).await } else { Ok(Step::Continue) };
            let step = match step {
                Ok(Step::Continue) => session.helo(&self.macros, name).await,
                other => other,
            };
            match step {
                Ok(Step::Continue) => {}
                Ok(Step::Verdict(v)) => {
                    slot.session = None;
                    if let Some(a) = verdict_entry(&slot.cfg.name, "connect", v)
                        && self.refusal.is_none() {
                            self.refusal = Some((a.entry, a.reply));
                        }
                }
                Err(e) => {
                    slot.session = None;
                    let e = failure(&slot.cfg, &e);
                    if e.result != Outcome::Skipped && self.refusal.is_none() {
                        self.refusal = Some((e, None));
                    }
                }
            }
        }
    }

    /// Sends `cmd` to every milter still in the transaction; the first refusal ends it and
    /// the others are told to forget the message. Entries for milters that failed with
    /// `on_error = "accept"` are returned too.
    async fn each(&mut self, step: &str, cmd: Cmd<'_>) -> (Option<Answer>, Vec<Entry>) {
        let mut tagged = Vec::new();
        for i in 0..self.slots.len() {
            let slot = &mut self.slots[i];
            if slot.done_for_message {
                continue;
            }
            let Some(session) = slot.session.as_mut() else { continue };
            let sent = match cmd {
                Cmd::Mail(from) => session.mail(&self.macros, from, &[]).await,
                Cmd::Rcpt(to) => session.rcpt(&self.macros, to, &[]).await,
                Cmd::Data => session.data(&self.macros).await,
            };
            match sent {
                Ok(Step::Continue) => {}
                Ok(Step::Verdict(Verdict::Accept)) => slot.done_for_message = true,
                Ok(Step::Verdict(v)) => {
                    let answer = verdict_entry(&slot.cfg.name, step, v);
                    self.abort().await;
                    return (answer, tagged);
                }
                Err(e) => {
                    slot.session = None;
                    let e = failure(&slot.cfg, &e);
                    if e.result == Outcome::Skipped {
                        tagged.push(e);
                    } else {
                        self.abort().await;
                        return (Some(Answer { entry: e, reply: None }), tagged);
                    }
                }
            }
        }
        (None, tagged)
    }

    pub(super) async fn mail(&mut self, from: &str, id: &str) -> (Option<Answer>, Vec<Entry>) {
        self.macros.set("i", id);
        self.macros.set("mail_addr", from);
        for slot in &mut self.slots {
            slot.done_for_message = false;
        }
        let from = format!("<{from}>");
        self.each("MAIL", Cmd::Mail(&from)).await
    }

    pub(super) async fn rcpt(&mut self, to: &str) -> (Option<Answer>, Vec<Entry>) {
        self.macros.set("rcpt_addr", to.trim_matches(['<', '>']));
        self.each("RCPT", Cmd::Rcpt(to)).await
    }

    pub(super) async fn data(&mut self) -> (Option<Answer>, Vec<Entry>) {
        self.each("DATA", Cmd::Data).await
    }

    /// Tells every milter to forget the current message (RSET, a refusal).
    pub(super) async fn abort(&mut self) {
        for slot in &mut self.slots {
            if let Some(s) = slot.session.as_mut()
                && let Err(e) = s.abort().await {
                    warn!(event = "milter_failed", milter = %slot.cfg.name, stage = "abort", error = %e.kind);
                    slot.session = None;
                }
        }
    }

    /// The message to every milter still in the transaction: its header fields, the body in
    /// chunks, end of message. Returns the entries and the modifications to apply, in order.
    pub(super) async fn end_of_message(&mut self, message: &[u8], max_body: usize) -> (Vec<Entry>, Vec<(String, Modification)>, Option<Reply>) {
        let (fields, body) = rampart_external::milter::content::split(message);
        let mut entries = Vec::new();
        let mut changes = Vec::new();
        let mut reply = None;
        for slot in &mut self.slots {
            if slot.done_for_message {
                entries.push(entry(Outcome::Pass, Reason::MilterAccepted, &slot.cfg.name, "accepted before the end of data".into()));
                continue;
            }
            let Some(session) = slot.session.as_mut() else { continue };
            session.set_max_body(max_body);
            match send_message(session, &self.macros, &fields, body).await {
                Ok(Eom { verdict, modifications }) => {
                    let name = slot.cfg.name.clone();
                    match verdict_entry(&name, "end of data", verdict) {
                        None => entries.push(entry(Outcome::Pass, Reason::MilterAccepted, &name, String::new())),
                        Some(a) => {
                            reply = reply.or(a.reply);
                            entries.push(a.entry);
                        }
                    }
                    changes.extend(modifications.into_iter().map(|m| (name.clone(), m)));
                }
                Err(e) => {
                    slot.session = None;
                    entries.push(failure(&slot.cfg, &e));
                }
            }
        }
        (entries, changes, reply)
    }
}

async fn send_message(s: &mut MilterSession, macros: &Macros, fields: &[(&str, &[u8])], body: &[u8]) -> Result<Eom, MilterError> {
    for (name, value) in fields {
        if let Step::Verdict(v) = s.header(name, value).await? {
            return Ok(Eom { verdict: v, modifications: Vec::new() });
        }
    }
    if let Step::Verdict(v) = s.eoh(macros).await? {
        return Ok(Eom { verdict: v, modifications: Vec::new() });
    }
    for chunk in body.chunks(BODY_CHUNK) {
        if let Step::Verdict(v) = s.body(chunk).await? {
            return Ok(Eom { verdict: v, modifications: Vec::new() });
        }
    }
    s.eom(macros).await
}

impl Connection {
    /// The reply for a milter's refusal at a command: the milter's own words when it gave
    /// some, else `decide`'s. None when `decide` does not refuse (a tagged failure).
    pub(super) fn milter_refusal(&self, answer: Answer) -> Option<Next> {
        let decision = self.decide(answer.entry.clone());
        decision.refusal.as_ref()?;
        info!(event = "milter_refused", ip = %self.remote.ip(), listener = self.settings.listener, reason = %decision.reason.name(), detail = %answer.entry.detail);
        let reply = answer.reply.unwrap_or_else(|| Connection::reply(&decision));
        Some(if reply.code == 421 { Next::Close(reply) } else { Next::Reply(reply) })
    }
}

/// The milters' modifications, applied: what changed in the message and its envelope.
#[derive(Default)]
pub(super) struct Applied {
    /// The message rewritten (headers changed or inserted, body replaced); None when only
    /// headers were added, which go into the stored prefix instead.
    pub message: Option<Vec<u8>>,
    /// Header fields to add, as `Name: value\r\n` lines.
    pub added: String,
    pub add_rcpts: Vec<String>,
    pub del_rcpts: Vec<String>,
    pub from: Option<String>,
    /// One entry per modification, and the quarantine a milter asked for.
    pub entries: Vec<Entry>,
}

/// A header field as a milter writes it: the value without the space after the colon.
fn field(name: &str, value: &[u8]) -> Vec<u8> {
    let mut out = format!("{name}: ").into_bytes();
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
    out
}

/// Applies `changes` (in order) to `message`. Only what needs the message rewritten rewrites
/// it; the rest is returned for the envelope and the prefix.
pub(super) fn apply(message: &[u8], changes: Vec<(String, Modification)>) -> Applied {
    let (fields, body) = rampart_external::milter::content::split(message);
    // Original fields keep their exact bytes ("Name:" + value as received).
    let mut headers: Vec<(String, Vec<u8>)> = fields
        .iter()
        .map(|(n, v)| {
            let mut line = format!("{n}:").into_bytes();
            line.extend_from_slice(v);
            line.extend_from_slice(b"\r\n");
            (n.to_string(), line)
        })
        .collect();
    let mut new_body: Option<Vec<u8>> = None;
    let mut rewritten = false;
    let mut out = Applied::default();
    for (milter, change) in changes {
        let note = |what: String| entry(Outcome::Pass, Reason::MilterModified, &milter, what);
        match change {
            Modification::AddHeader { name, value } => {
                out.added.push_str(&String::from_utf8_lossy(&field(&name, &value)));
                out.entries.push(note(format!("added header {name}")));
            }
            Modification::ChangeHeader { index, name, value } => {
                let at = headers.iter().enumerate().filter(|(_, (n, _))| n.eq_ignore_ascii_case(&name)).nth(index.saturating_sub(1) as usize).map(|(i, _)| i);
                match (at, value.is_empty()) {
                    (Some(i), true) => drop(headers.remove(i)),
                    (Some(i), false) => headers[i].1 = field(&name, &value),
                    (None, true) => {}
                    (None, false) => headers.push((name.clone(), field(&name, &value))),
                }
                rewritten = true;
                let what = if value.is_empty() { "deleted" } else { "changed" };
                out.entries.push(note(format!("{what} header {name} #{index}")));
            }
            Modification::InsertHeader { index, name, value } => {
                let at = (index as usize).min(headers.len());
                headers.insert(at, (name.clone(), field(&name, &value)));
                rewritten = true;
                out.entries.push(note(format!("inserted header {name} at {index}")));
            }
            Modification::ReplaceBody(b) => {
                out.entries.push(note(format!("replaced the body ({} bytes)", b.len())));
                new_body = Some(b);
                rewritten = true;
            }
            Modification::AddRcpt { rcpt, .. } => {
                out.entries.push(note(format!("added recipient {rcpt}")));
                out.add_rcpts.push(rcpt);
            }
            Modification::DelRcpt(rcpt) => {
                out.entries.push(note(format!("removed recipient {rcpt}")));
                out.del_rcpts.push(rcpt);
            }
            Modification::ChangeFrom { from, .. } => {
                out.entries.push(note(format!("changed the sender to {from}")));
                out.from = Some(from);
            }
            Modification::Quarantine(reason) => {
                out.entries.push(entry(Outcome::Neutral, Reason::MilterQuarantined, &milter, reason));
            }
        }
    }
    if rewritten {
        let mut message: Vec<u8> = headers.into_iter().flat_map(|(_, line)| line).collect();
        message.extend_from_slice(b"\r\n");
        message.extend_from_slice(new_body.as_deref().unwrap_or(body));
        out.message = Some(message);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, change: Modification) -> (String, Modification) {
        (name.to_string(), change)
    }

    #[test]
    fn modifications_apply_in_order() {
        let msg = b"From: a@b.test\r\nX-Tag: one\r\nSubject: hi\r\nX-Tag: two\r\n\r\nbody\r\n";
        let applied = apply(
            msg,
            vec![
                m("f", Modification::AddHeader { name: "X-Scanned".into(), value: b"yes".to_vec() }),
                m("f", Modification::ChangeHeader { index: 2, name: "x-tag".into(), value: b"TWO".to_vec() }),
                m("f", Modification::ChangeHeader { index: 1, name: "X-Tag".into(), value: Vec::new() }),
                m("g", Modification::InsertHeader { index: 0, name: "X-First".into(), value: b"1".to_vec() }),
                m("g", Modification::AddRcpt { rcpt: "<c@example.test>".into(), args: None }),
                m("g", Modification::Quarantine("looks bad".into())),
            ],
        );
        assert_eq!(applied.added, "X-Scanned: yes\r\n");
        assert_eq!(applied.message.unwrap(), b"X-First: 1\r\nFrom: a@b.test\r\nSubject: hi\r\nx-tag: TWO\r\n\r\nbody\r\n");
        assert_eq!(applied.add_rcpts, ["<c@example.test>"]);
        assert_eq!(applied.entries.len(), 6);
        assert_eq!(applied.entries[5].reason, Reason::MilterQuarantined);
        assert_eq!(applied.entries[5].detail, "g: looks bad");
        // Only added headers: the message itself is not rewritten.
        let added = apply(msg, vec![m("f", Modification::AddHeader { name: "X-A".into(), value: b"1".to_vec() })]);
        assert!(added.message.is_none());
        let body = apply(msg, vec![m("f", Modification::ReplaceBody(b"new\r\n".to_vec()))]);
        assert!(body.message.unwrap().ends_with(b"X-Tag: two\r\n\r\nnew\r\n"));
    }
}
