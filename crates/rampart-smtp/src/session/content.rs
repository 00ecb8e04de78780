//! Message content (DATA and BDAT) and what happens to a finished message: checks that need
//! the headers, trace headers, then one durable store of the local copies and the queued one.

use rampart_pipeline::{Action, Disposition, Entry, Outcome, Reason, Stage, Trail};
use rampart_store::{BlobWriter, Delivery, Folder, Outbound, Target};
use tracing::{info, warn};

use super::{Next, Role, Session, Transaction};
use crate::command::ReversePath;
use crate::data::{Fatal, Fed, Framing, Receiver, Soft};
use crate::reply::Reply;
use crate::trace;

/// Bytes of the message start kept in memory to read its header section (From, Date,
/// Message-ID). Header sections of real mail fit; longer ones are refused on submission.
const MAX_HEAD: usize = 64 * 1024;

/// A message being received.
#[derive(Debug)]
pub(super) struct Content {
    pub(super) receiver: Receiver,
    /// None once a limit was hit or a write failed: nothing more is kept.
    blob: Option<BlobWriter>,
    scratch: Vec<u8>,
    /// The first [`MAX_HEAD`] bytes.
    head: Vec<u8>,
}

fn temp_failure() -> Reply {
    Reply::new(451, "4.3.0", "Temporary storage failure, try again later")
}

impl Session {
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
            temp_failure()
        })?;
        Ok(Content {
            receiver: Receiver::new(framing, self.settings.max_message_size, self.settings.max_data_line),
            blob: Some(blob),
            scratch: Vec::new(),
            head: Vec::new(),
        })
    }

    pub(super) fn data_start(&mut self) -> Next {
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
        metrics::counter!("rampart_messages_total", "listener" => self.settings.listener, "result" => "refused", "reason" => what).increment(1);
        Next::Close(reply)
    }

    /// The DATA terminator arrived: store the message or say why not.
    pub async fn data_end(&mut self) -> Next {
        let tx = self.tx.take().expect("data_end() follows data()");
        self.finish(tx).await
    }

    pub(super) async fn bdat_start(&mut self, size: u64, last: bool) -> Next {
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
                metrics::counter!("rampart_messages_total", "listener" => self.settings.listener, "result" => "refused", "reason" => "too_big").increment(1);
                return Next::Reply(Reply::new(
                    552,
                    "5.3.4",
                    format!("Message size exceeds the limit of {} bytes", self.settings.max_message_size),
                ));
            }
            Some(Soft::LineTooLong) => {
                info!(event = "message_refused", ip = %self.remote.ip(), id = %tx.id, reason = "line_too_long");
                metrics::counter!("rampart_messages_total", "listener" => self.settings.listener, "result" => "refused", "reason" => "line_too_long").increment(1);
                return Next::Reply(Reply::new(
                    554,
                    "5.6.0",
                    format!("Message has a line longer than {} bytes", self.settings.max_data_line),
                ));
            }
            None => {}
        }
        let head = header_section(&content.head);
        let mut added = String::new();
        let mut trail = Trail::default();
        trail.push(Entry::new(Stage::Connect, Outcome::Pass, Reason::NoFilterConfigured));
        let mut from_domains: Vec<String> = Vec::new();
        if let Some(user) = self.user.clone() {
            trail.push(Entry::new(Stage::Auth, Outcome::Pass, Reason::Authenticated).detail(user.address.clone()));
            let Some(head) = head else {
                return Next::Reply(Reply::new(552, "5.3.4", "Header section too large"));
            };
            let parsed = mail_parser::MessageParser::default().parse_headers(head);
            let from: Vec<String> = parsed
                .as_ref()
                .and_then(|m| m.from())
                .map(|a| a.iter().filter_map(|addr| addr.address().map(str::to_string)).collect())
                .unwrap_or_default();
            if from.is_empty() {
                return Next::Reply(Reply::new(550, "5.6.0", "The message has no From address (RFC 5322 §3.6)"));
            }
            for addr in &from {
                if let Err(reply) = self.sender_allowed(&user, addr).await {
                    info!(
                        event = "sender_refused", ip = %self.remote.ip(), listener = self.settings.listener,
                        user = %user.address, from = %addr, place = "header", id = %tx.id
                    );
                    return Next::Reply(reply);
                }
            }
            from_domains = from.iter().filter_map(|a| a.rsplit_once('@').map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase())).collect();
            trail.push(Entry::new(Stage::Sender, Outcome::Pass, Reason::OwnedByUser));
            // RFC 6409 §8: a submission server may add the Date and Message-ID a client left out.
            if parsed.as_ref().is_none_or(|m| m.date().is_none()) {
                added.push_str(&format!("Date: {}\r\n", chrono::Utc::now().to_rfc2822()));
            }
            if parsed.as_ref().is_none_or(|m| m.message_id().is_none()) {
                added.push_str(&format!("Message-ID: <{}@{}>\r\n", tx.id, self.services.hostname));
            }
        }
        // No soft error, so a missing writer means a write failed.
        let Some(writer) = content.blob else {
            warn!(event = "store_error", id = %tx.id, error = "writing the message failed");
            return Next::Reply(temp_failure());
        };
        let blob = match writer.finish().await {
            Ok(blob) => blob,
            Err(e) => {
                warn!(event = "store_error", id = %tx.id, error = %e);
                return Next::Reply(temp_failure());
            }
        };
        let submission = self.settings.role == Role::Submission;
        let received = trace::received(&trace::Stamp {
            id: &tx.id,
            helo: self.helo.as_ref().map_or("unknown", |h| h.name.as_str()),
            extended: self.helo.as_ref().is_some_and(|h| h.extended),
            remote: self.remote.ip(),
            hide_client: submission && self.services.hide_client,
            authenticated: self.user.is_some(),
            hostname: &self.services.hostname,
            tls: self.tls.as_ref(),
            smtputf8: tx.params.smtputf8,
            rcpts: &tx.rcpts,
        });

        // Sender authentication (MX role): SPF from MAIL FROM, then DKIM, ARC, DMARC over the
        // whole message, then the one decision.
        trail.extend(self.session_entries(&tx));
        let inbound = match self.inbound_checks(&tx, blob, received.as_bytes()).await {
            Err(reply) => return Next::Reply(reply),
            Ok(inbound) => inbound,
        };
        trail.extend(inbound.entries);
        let (blob, auth_header, arc_set, evaluation, raw) =
            (inbound.blob, inbound.header, inbound.arc_set.unwrap_or_default(), inbound.evaluation, inbound.raw);
        let size = blob.size();
        trail.push(Entry::new(
            Stage::Recipients,
            Outcome::Pass,
            if tx.remote.is_empty() { Reason::LocalMailbox } else { Reason::LocalAndQueued },
        ).detail(format!("local={} remote={}", tx.accounts.len(), tx.remote.len())));
        trail.push(Entry::new(Stage::Content, Outcome::Pass, Reason::WithinLimits));
        let decision = rampart_pipeline::decide(&trail, &self.services.sender_auth.policy);
        trail.push(decision.entry());
        if let Some(mut ev) = evaluation {
            ev.disposition = match decision.action {
                Action::Reject => Disposition::Reject,
                Action::Junk => Disposition::Quarantine,
                _ => Disposition::None,
            };
            if matches!(decision.reason, Reason::DmarcRejectOverriddenByArc | Reason::DmarcQuarantineOverriddenByArc) {
                ev.overrides.push(("trusted_forwarder".into(), "valid ARC chain from a trusted sealer".into()));
            }
            if self.services.sender_auth.record_dmarc && !ev.published.rua.is_empty() {
                if let Ok(json) = serde_json::to_string(&ev) {
                    if let Err(e) = self.services.store.add_dmarc_evaluation(&ev.published.domain, &json).await {
                        warn!(event = "store_error", id = %tx.id, error = %e, what = "dmarc evaluation");
                    }
                }
            }
        }
        if let Some(refusal) = &decision.refusal {
            // Refused mail is not stored: its trail goes to the log.
            info!(
                event = "message_refused", ip = %self.remote.ip(), listener = self.settings.listener, id = %tx.id,
                from = %format!("<{}>", tx.from), reason = %decision.reason.name(), code = refusal.code,
                trail = %trail.summary()
            );
            return Next::Reply(Reply::new(refusal.code, refusal.status, refusal.text.clone()));
        }
        let folder = if decision.action == Action::Junk { Folder::Junk } else { Folder::Inbox };
        if let (Some(raw), Some(report_address)) = (&raw, &self.services.sender_auth.report_address) {
            self.maybe_dmarc_report(&tx, raw, report_address, &mut trail).await;
        }

        let mut queued_prefix = format!("{arc_set}{auth_header}{received}{added}").into_bytes();
        let local_prefix = format!("{}{auth_header}{received}{added}", trace::return_path(&tx.from)).into_bytes();
        if submission && !tx.remote.is_empty() {
            match self.dkim_signatures(&from_domains, &queued_prefix, &blob, &tx.id).await {
                Ok(signatures) => queued_prefix.splice(0..0, signatures.into_bytes()).for_each(drop),
                Err(reply) => return Next::Reply(reply),
            }
        }
        let outbound = (!tx.remote.is_empty()).then(|| Outbound {
            sender: match &tx.from {
                ReversePath::Null => String::new(),
                ReversePath::Mailbox(m) => m.to_string(),
            },
            rcpts: tx.remote.clone(),
            smtputf8: tx.params.smtputf8,
            is_dsn: false,
            prefix: queued_prefix,
        });
        let queued = outbound.is_some();
        let delivery = Delivery {
            blob,
            prefix: local_prefix,
            internal_date: chrono::Utc::now().timestamp(),
            targets: tx.accounts.iter().map(|&account| Target { account, folder: folder.clone() }).collect(),
            reference: tx.id.clone(),
            trail: trail.to_json(),
            outbound,
        };
        match self.services.store.deliver(delivery).await {
            Ok(_) => {
                if queued {
                    self.services.queue_wakeup.notify_one();
                }
                metrics::counter!("rampart_messages_total", "listener" => self.settings.listener, "result" => "accepted", "reason" => "ok").increment(1);
                info!(
                    event = "accepted", ip = %self.remote.ip(), listener = self.settings.listener, id = %tx.id,
                    from = %format!("<{}>", tx.from), local = tx.accounts.len(), queued = tx.remote.len(), size,
                    user = self.user.as_ref().map_or("-", |u| u.address.as_str()),
                    verdict = decision.action.as_str(), reason = %decision.reason.name()
                );
                Next::Reply(Reply::new(250, "2.0.0", format!("Ok: queued as {}", tx.id)))
            }
            Err(e) => {
                warn!(event = "store_error", id = %tx.id, error = %e);
                Next::Reply(temp_failure())
            }
        }
    }

    /// Mail to `[dmarc] report_address` that holds an aggregate report is parsed and stored.
    async fn maybe_dmarc_report(&self, tx: &Transaction, raw: &[u8], report_address: &str, trail: &mut Trail) {
        let to_reports = tx.rcpts.iter().any(|r| r.trim_matches(['<', '>']).eq_ignore_ascii_case(report_address));
        if !to_reports {
            return;
        }
        let Some(r) = rampart_pipeline::report::parse_received(raw) else { return };
        let stored = rampart_store::DmarcReport {
            org_name: r.org_name,
            report_id: r.report_id,
            domain: r.domain.clone(),
            date_begin: r.begin,
            date_end: r.end,
            messages: r.messages,
            passed: r.passed,
            records: r.records,
            received: 0,
        };
        match self.services.store.add_dmarc_report(stored).await {
            Ok(_) => {
                info!(event = "dmarc_report_received", id = %tx.id, domain = %r.domain, messages = r.messages);
                trail.push(Entry::new(Stage::Content, Outcome::Pass, Reason::DmarcReportReceived).domain(r.domain));
            }
            Err(e) => warn!(event = "store_error", id = %tx.id, error = %e, what = "dmarc report"),
        }
    }
}

/// The header section (through the empty line), or None when it does not fit in the head.
fn header_section(head: &[u8]) -> Option<&[u8]> {
    if head.starts_with(b"\r\n") {
        return Some(&head[..2]);
    }
    match memchr::memmem::find(head, b"\r\n\r\n") {
        Some(i) => Some(&head[..i + 4]),
        None if head.len() < MAX_HEAD => Some(head),
        None => None,
    }
}

/// Runs content through the receiver and appends what it keeps to the blob.
async fn feed(content: &mut Content, input: &[u8]) -> Result<Fed, Fatal> {
    content.scratch.clear();
    let fed = content.receiver.feed(input, &mut content.scratch)?;
    if content.receiver.soft_error().is_some() {
        // Past a limit: drop the partial blob now rather than holding it to the end.
        content.blob = None;
        return Ok(fed);
    }
    if content.head.len() < MAX_HEAD {
        let take = content.scratch.len().min(MAX_HEAD - content.head.len());
        content.head.extend_from_slice(&content.scratch[..take]);
    }
    if let Some(blob) = content.blob.as_mut() {
        if !content.scratch.is_empty() && blob.write(&content.scratch).await.is_err() {
            content.blob = None;
        }
    }
    Ok(fed)
}
