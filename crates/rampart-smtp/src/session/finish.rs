//! The end of data: what happens to a finished message, as named steps in the order they run.
//!
//! 1. [`Connection::within_limits`]: the size and line limits the receiver recorded;
//! 2. [`Connection::submitted_headers`]: on submission, every From: address must be the user's;
//!    a missing Date or Message-ID is added (RFC 6409 §8);
//! 3. [`Connection::seal`]: the blob is finished and fsynced;
//! 4. [`Connection::authenticate`]: on the MX, forged Authentication-Results removed, then DKIM,
//!    ARC and DMARC over the message (SPF and iprev ran at MAIL FROM);
//! 5. [`Connection::structure`]: the MIME structure against the limits; then
//!    [`Connection::greylisting`] (MX, when on): a new triplet is deferred here;
//! 6. [`Connection::content`] (MX): the built-in rules, domain blocklists and the classifier;
//!    then [`Connection::antivirus`] (clamd, inbound and submitted mail);
//! 7. [`Connection::judge`]: the trail's last entries and the one `decide`; DMARC evaluations
//!    kept for aggregate reports; a refusal is logged with its trail and answered (a submitted
//!    message refused for its content is also a containment signal);
//! 8. [`Connection::store`]: the DKIM signature of the queued copy (submission, or a gateway's
//!    downstream relaying out; on tokio's blocking pool), then the local copies and the queue
//!    entry in one durable store (or, when the decision says so, the quarantine), submitted
//!    mail counted against its
//!    sender's quotas in the same transaction, and only then `250`. A copy for a gateway's
//!    downstream first loses the senders' verdict headers and gets ours (`session::gateway`).
//!    A stored bounce (null sender, local recipients) is matched against what they sent, for
//!    containment (`session::sending`).
//!
//! Each step returns `Err(Next)` with the reply when the message stops there.

use rampart_pipeline::report::Evaluation;
use rampart_pipeline::{Action, Decision, Disposition, Entry, Outcome, Reason, Stage, Trail};
use rampart_store::quarantine::Hold;
use rampart_store::{Blob, BlobWriter, Delivery, Folder, Outbound, Target};
use tracing::{info, warn};

use super::checks::Inbound;
use super::content::{Content, MAX_HEAD, store_failed, temp_failure};
use super::state::{Helo, Transaction};
use super::{Connection, Next, Role};
use crate::data::Soft;
use crate::reply::Reply;
use crate::trace;

type Step<T> = Result<T, Next>;

/// What a submitted message's own headers led to.
#[derive(Default)]
struct Submitted {
    /// Header fields added to the message itself (Date, Message-ID).
    added: String,
    /// Domains of the From: addresses, for DKIM signing.
    from_domains: Vec<String>,
    /// The Message-ID (the client's or the one added), without angle brackets: a bounce that
    /// comes back later is matched by it.
    message_id: String,
}

impl Connection {
    /// Stores the finished message or says why not.
    pub(super) async fn finish(&mut self, helo: &Helo, tx: Transaction, content: Content) -> Next {
        match self.finish_steps(helo, tx, content).await {
            Ok(next) | Err(next) => next,
        }
    }

    async fn finish_steps(&mut self, helo: &Helo, mut tx: Transaction, content: Content) -> Step<Next> {
        let mut trail = self.message_trail();
        trail.extend(self.relay_entry(&tx));
        self.within_limits(&tx, &content)?;
        let mut submitted = self.submitted_headers(&tx, &content.head, &mut trail).await?;
        let blob = self.seal(&tx, content.blob).await?;
        let received = self.received(helo, &tx);
        let mut inbound = self.authenticate(helo, &tx, blob, &received, &mut trail).await?;
        self.structure(&tx, &mut inbound).await?;
        self.greylisting(&tx, &mut trail).await?;
        self.content(&tx, &mut inbound, &mut trail).await?;
        trail.extend(self.antivirus(&tx, &inbound.blob, inbound.raw.as_deref()).await);
        let milter_reply = self.milters_eom(&mut tx, &mut inbound, &mut submitted.added, &mut trail).await?;
        let decision = self.judge(&tx, &mut trail, inbound.evaluation.take(), milter_reply).await?;
        self.strip_own_headers(&tx, &mut inbound).await?;
        if let (Some(raw), Some(report_address)) = (&inbound.raw, &self.services.sender_auth.report_address) {
            self.maybe_dmarc_report(&tx, raw, report_address, &mut trail).await;
        }
        if let (Some(raw), Some(a)) = (&inbound.raw, &self.services.sender_auth.tlsrpt_address)
            && crate::sts::received::for_reports(&tx.rcpts, a)
        {
            crate::sts::received::take(self.services.store.as_ref(), &tx.id, raw).await;
        }
        Ok(self.store(tx, &decision, trail, submitted, inbound, received).await)
    }

    /// The trail every message of this connection starts with: the guard's finding, the client
    /// blocklists' and, on submission, who logged in.
    fn message_trail(&self) -> Trail {
        let mut trail = Trail(vec![self.connect.clone()]);
        trail.extend(self.known_listings().iter().cloned());
        if let Some(user) = &self.user {
            trail.push(Entry::new(Stage::Auth, Outcome::Pass, Reason::Authenticated).detail(user.address.clone()));
        }
        trail
    }

    /// Refuses the message for `entry`, answered by `decide`.
    fn refuse_message(&self, entry: Entry) -> Next {
        Next::Reply(Connection::reply(&self.decide(entry)))
    }

    fn within_limits(&self, tx: &Transaction, content: &Content) -> Step<()> {
        let receiver = &content.receiver;
        let (what, entry) = match (receiver.soft_error(), content.headers.violation()) {
            (None, None) => return Ok(()),
            (None, Some(v)) => {
                let entry = super::limits::header_refusal(v, &tx.limits);
                (if entry.reason == Reason::MailLoop { "mail_loop" } else { "header_limit" }, entry)
            }
            (Some(Soft::TooBig), _) => ("too_big", Entry::new(Stage::Content, Outcome::Fail, Reason::TooBig).limit(tx.limits.max_message_size)),
            (Some(Soft::LineTooLong), _) => {
                ("line_too_long", Entry::new(Stage::Content, Outcome::Fail, Reason::LineTooLong).limit(self.settings.max_data_line as u64))
            }
        };
        info!(event = "message_refused", ip = %self.remote.ip(), id = %tx.id, reason = what, size = receiver.size());
        metrics::counter!("rampart_messages_total", "listener" => self.settings.listener, "result" => "refused", "reason" => what).increment(1);
        Err(self.refuse_message(entry))
    }

    /// On submission: every From: address must belong to the user; Date and Message-ID are
    /// added when the client left them out. On the MX only a downstream relaying out has
    /// From: domains to sign for.
    async fn submitted_headers(&self, tx: &Transaction, head: &[u8], trail: &mut Trail) -> Step<Submitted> {
        let Some(user) = &self.user else {
            let from_domains = if tx.relay { self.relayed_from_domains(tx, header_section(head).unwrap_or(head)) } else { Vec::new() };
            return Ok(Submitted { added: String::new(), from_domains, message_id: String::new() });
        };
        let Some(head) = header_section(head) else {
            return Err(self.refuse_message(Entry::new(Stage::Content, Outcome::Fail, Reason::HeaderSectionTooLarge).limit(MAX_HEAD as u64)));
        };
        let parsed = mail_parser::MessageParser::default().parse_headers(head);
        let from: Vec<String> = parsed
            .as_ref()
            .and_then(|m| m.from())
            .map(|a| a.iter().filter_map(|addr| addr.address().map(str::to_string)).collect())
            .unwrap_or_default();
        if from.is_empty() {
            return Err(self.refuse_message(Entry::new(Stage::Sender, Outcome::Fail, Reason::NoFromAddress)));
        }
        for addr in &from {
            if let Err(entry) = self.sender_allowed(user, addr).await {
                info!(
                    event = "sender_refused", ip = %self.remote.ip(), listener = self.settings.listener,
                    user = %user.address, from = %addr, place = "header", id = %tx.id
                );
                return Err(self.refuse_message(entry));
            }
        }
        trail.push(Entry::new(Stage::Sender, Outcome::Pass, Reason::OwnedByUser));
        let mut added = String::new();
        if parsed.as_ref().is_none_or(|m| m.date().is_none()) {
            added.push_str(&format!("Date: {}\r\n", chrono::Utc::now().to_rfc2822()));
        }
        let message_id = match parsed.as_ref().and_then(|m| m.message_id()) {
            Some(id) => id.to_string(),
            None => {
                let id = format!("{}@{}", tx.id, self.services.hostname);
                added.push_str(&format!("Message-ID: <{id}>\r\n"));
                id
            }
        };
        let from_domains = from.iter().filter_map(|a| a.rsplit_once('@').map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase())).collect();
        Ok(Submitted { added, from_domains, message_id })
    }

    /// The blob finished and fsynced. No soft error got us here, so a missing writer means a
    /// write failed.
    async fn seal(&self, tx: &Transaction, writer: Option<BlobWriter>) -> Step<Blob> {
        let Some(writer) = writer else {
            warn!(event = "store_error", id = %tx.id, error = "writing the message failed");
            return Err(Next::Reply(temp_failure()));
        };
        writer.finish().await.map_err(|e| Next::Reply(store_failed(&tx.id, &e)))
    }

    /// Our Received header (RFC 5321 §4.4).
    fn received(&self, helo: &Helo, tx: &Transaction) -> String {
        trace::received(&trace::Stamp {
            id: &tx.id,
            helo: &helo.name,
            extended: helo.extended,
            remote: self.remote.ip(),
            hide_client: self.settings.role == Role::Submission && self.services.hide_client,
            authenticated: self.user.is_some(),
            hostname: &self.services.hostname,
            tls: self.tls.as_ref(),
            smtputf8: tx.params.smtputf8,
            rcpts: &tx.rcpts,
        })
    }

    /// Sender authentication over the whole message (MX role), its findings added to the trail.
    async fn authenticate(&self, helo: &Helo, tx: &Transaction, blob: Blob, received: &str, trail: &mut Trail) -> Step<Inbound> {
        trail.extend(self.session_entries(tx));
        let inbound = self.inbound_checks(helo, tx, blob, received.as_bytes()).await.map_err(Next::Reply)?;
        trail.extend(inbound.entries.iter().cloned());
        Ok(inbound)
    }

    /// The MIME structure against the transaction's limits (nesting, parts, part and
    /// attachment sizes), on the message as parsed once it is complete.
    async fn structure(&self, tx: &Transaction, inbound: &mut Inbound) -> Step<()> {
        if inbound.raw.is_none() {
            let raw = inbound.blob.contents().await.map_err(|e| Next::Reply(super::content::store_failed(&tx.id, &e)))?;
            inbound.raw = Some(raw);
        }
        let Some(entry) = inbound.raw.as_deref().and_then(|raw| super::limits::structure_refusal(raw, &tx.limits)) else { return Ok(()) };
        info!(event = "message_refused", ip = %self.remote.ip(), id = %tx.id, reason = %entry.reason.name(), limit = entry.limit.unwrap_or_default());
        metrics::counter!("rampart_messages_total", "listener" => self.settings.listener, "result" => "refused", "reason" => "mime_limit").increment(1);
        Err(self.refuse_message(entry))
    }

    /// Greylisting on the MX when it is on: a deferred triplet ends the message here (451
    /// 4.7.1 from `decide`), before the content filters spend any work on it.
    async fn greylisting(&self, tx: &Transaction, trail: &mut Trail) -> Step<()> {
        if !self.services.filters.greylist.enabled || self.settings.role != Role::Mx || tx.relay {
            return Ok(());
        }
        let entry = self.greylist(tx, trail).await;
        let deferred = entry.reason == Reason::Greylisted;
        trail.push(entry.clone());
        if deferred {
            metrics::counter!("rampart_messages_total", "listener" => self.settings.listener, "result" => "deferred", "reason" => "greylisted").increment(1);
            return Err(self.refuse_message(entry));
        }
        Ok(())
    }

    /// The content filters over the whole message (`filter.spam.enabled`; submitted mail and a
    /// gateway's downstream relaying out only with `scan_outbound`).
    async fn content(&self, tx: &Transaction, inbound: &mut Inbound, trail: &mut Trail) -> Step<()> {
        let spam = &self.services.filters.spam;
        // A downstream relaying out gets what submitted mail gets.
        let outbound = self.settings.role == Role::Submission || tx.relay;
        if !spam.enabled || (outbound && !spam.scan_outbound) {
            return Ok(());
        }
        if inbound.raw.is_none() {
            let raw = inbound.blob.contents().await.map_err(|e| Next::Reply(super::content::store_failed(&tx.id, &e)))?;
            inbound.raw = Some(raw);
        }
        if let Some(raw) = &inbound.raw {
            self.content_filters(tx, raw, trail).await;
        }
        Ok(())
    }

    /// The milters over the finished message: their verdicts go into the trail, their changes
    /// into the message (rewritten into a new blob only when headers change or the body is
    /// replaced), the added header lines and the envelope. Returns the reply a refusing milter
    /// gave, if it gave one.
    async fn milters_eom(&mut self, tx: &mut Transaction, inbound: &mut Inbound, added: &mut String, trail: &mut Trail) -> Step<Option<Reply>> {
        trail.extend(tx.milter_entries.drain(..));
        if self.milters.is_empty() {
            return Ok(None);
        }
        let failed = |e: rampart_store::StoreError| Next::Reply(super::content::store_failed(&tx.id, &e));
        let raw = match inbound.raw.take() {
            Some(raw) => raw,
            None => inbound.blob.contents().await.map_err(failed)?,
        };
        let (entries, changes, reply) = self.milters.end_of_message(&raw, tx.limits.max_message_size as usize).await;
        trail.extend(entries);
        let applied = super::milters::apply(&raw, changes);
        trail.extend(applied.entries);
        added.push_str(&applied.added);
        match applied.message {
            Some(message) => {
                let mut writer = self.services.store.blob_writer().map_err(failed)?;
                writer.write(&message).await.map_err(failed)?;
                inbound.blob = writer.finish().await.map_err(failed)?;
                inbound.raw = Some(message);
            }
            None => inbound.raw = Some(raw),
        }
        if let Some(from) = applied.from {
            let path = if from.trim_matches(['<', '>']).is_empty() { "<>".to_string() } else { format!("<{}>", from.trim_matches(['<', '>'])) };
            if let Ok(crate::command::Command::Mail { from, .. }) = crate::command::parse(format!("MAIL FROM:{path}").as_bytes()) {
                tx.from = from;
            }
        }
        self.change_recipients(tx, applied.add_rcpts, applied.del_rcpts).await;
        Ok(reply)
    }

    /// Recipients a milter added or removed: the envelope is resolved again from the new list.
    /// An added address outside our domains is queued for delivery elsewhere, as the milter
    /// (an archive copy, a redirect) intends.
    async fn change_recipients(&self, tx: &mut Transaction, add: Vec<String>, del: Vec<String>) {
        if add.is_empty() && del.is_empty() {
            return;
        }
        let norm = |s: &str| s.trim().trim_matches(['<', '>']).to_ascii_lowercase();
        let del: Vec<String> = del.iter().map(|d| norm(d)).collect();
        let mut rcpts: Vec<String> = tx.rcpts.iter().filter(|r| !del.contains(&norm(r))).cloned().collect();
        rcpts.extend(add.iter().map(|a| norm(a)));
        (tx.rcpts, tx.accounts, tx.remote) = (Vec::new(), Vec::new(), Vec::new());
        for rcpt in rcpts {
            let line = format!("RCPT TO:<{}>", norm(&rcpt));
            let Ok(crate::command::Command::Rcpt { to, .. }) = crate::command::parse(line.as_bytes()) else { continue };
            match self.resolve_recipient(&to, tx.relay).await {
                Ok((accounts, remote)) => tx.add_recipient(rcpt, accounts, remote),
                Err(e) if e.reason == Reason::RelayDenied => {
                    let address = norm(&rcpt);
                    tx.add_recipient(rcpt, Vec::new(), vec![address]);
                }
                Err(_) => {}
            }
        }
    }

    /// The trail's last entries and the one decision. A refusal ends the message here: it is not
    /// stored, so its trail goes to the log.
    async fn judge(&self, tx: &Transaction, trail: &mut Trail, evaluation: Option<Evaluation>, milter_reply: Option<Reply>) -> Step<Decision> {
        let downstream = self.gateway_recipients(tx);
        let reason = match (tx.remote.is_empty(), downstream) {
            (true, _) => Reason::LocalMailbox,
            (false, 0) => Reason::LocalAndQueued,
            _ => Reason::QueuedToDownstream,
        };
        let detail = format!("local={} remote={} downstream={downstream}", tx.accounts.len(), tx.remote.len() - downstream);
        trail.push(Entry::new(Stage::Recipients, Outcome::Pass, reason).detail(detail));
        trail.push(Entry::new(Stage::Content, Outcome::Pass, Reason::WithinLimits));
        let policy = if tx.relay { &self.services.sender_auth.outbound_policy } else { self.policy() };
        let decision = rampart_pipeline::decide(trail, policy);
        trail.push(decision.entry());
        if let Some(ev) = evaluation {
            self.record_dmarc(tx, ev, &decision).await;
        }
        let Some(refusal) = &decision.refusal else { return Ok(decision) };
        self.sending_refused(&decision).await;
        info!(
            event = "message_refused", ip = %self.remote.ip(), listener = self.settings.listener, id = %tx.id,
            from = %format!("<{}>", tx.from), reason = %decision.reason.name(), code = refusal.code,
            trail = %trail.summary()
        );
        // A milter that refused with its own words has them passed on.
        let reply = match (decision.reason, milter_reply) {
            (Reason::MilterRejected | Reason::MilterTempfailed, Some(r)) => r,
            _ => Reply::new(refusal.code, refusal.status, refusal.text.clone()),
        };
        Err(Next::Reply(reply))
    }

    /// Keeps a DMARC evaluation for the aggregate report its domain asked for (RFC 7489 §7.2),
    /// with the disposition we applied.
    async fn record_dmarc(&self, tx: &Transaction, mut ev: Evaluation, decision: &Decision) {
        ev.disposition = match decision.action {
            Action::Reject => Disposition::Reject,
            Action::Junk | Action::Quarantine => Disposition::Quarantine,
            _ => Disposition::None,
        };
        if matches!(decision.reason, Reason::DmarcRejectOverriddenByArc | Reason::DmarcQuarantineOverriddenByArc) {
            ev.overrides.push(("trusted_forwarder".into(), "valid ARC chain from a trusted sealer".into()));
        }
        if !self.services.sender_auth.record_dmarc || ev.published.rua.is_empty() {
            return;
        }
        if let Ok(json) = serde_json::to_string(&ev)
            && let Err(e) = self.services.store.add_dmarc_evaluation(&ev.published.domain, &json).await {
                warn!(event = "store_error", id = %tx.id, error = %e.chain(), what = "dmarc evaluation");
            }
    }

    /// Mail to `[dmarc] report_address` that holds an aggregate report is parsed, and kept when
    /// it passed DMARC and is about one of our domains (RFC 7489 §7.2).
    async fn maybe_dmarc_report(&self, tx: &Transaction, raw: &[u8], report_address: &str, trail: &mut Trail) {
        let to_reports = tx.rcpts.iter().any(|r| r.trim_matches(['<', '>']).eq_ignore_ascii_case(report_address));
        if !to_reports {
            return;
        }
        let Some(r) = rampart_pipeline::report::parse_received(raw) else { return };
        let domains = match self.services.store.list_domains().await {
            Ok(domains) => domains,
            Err(e) => {
                warn!(event = "store_error", id = %tx.id, error = %e, what = "dmarc report");
                return;
            }
        };
        // RFC 7489 §7.2: only an authenticated report about one of our domains is kept.
        if let Err(refused) = rampart_pipeline::report::accept_received(trail, &r, &domains) {
            info!(event = "dmarc_report_refused", ip = %self.remote.ip(), id = %tx.id, domain = %r.domain, reason = refused.as_str());
            return;
        }
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
            Err(e) => warn!(event = "store_error", id = %tx.id, error = %e.chain(), what = "dmarc report"),
        }
    }

    /// Local copies (Junk when the decision says so) and the queue entry for remote recipients
    /// in one durable store; `250` only after it.
    async fn store(&self, tx: Transaction, decision: &Decision, trail: Trail, submitted: Submitted, inbound: Inbound, received: String) -> Next {
        let action = match self.gateway_action(&tx, decision, &trail) {
            Ok(action) => action,
            Err(refused) => return refused,
        };
        let subject = inbound.raw.as_deref().map(subject_of).unwrap_or_default();
        let bounce = self.later_bounce(&tx, inbound.raw.as_deref());
        let Inbound { blob, header: auth_header, arc_set, .. } = inbound;
        let (arc_set, mut added, size) = (arc_set.unwrap_or_default(), submitted.added, blob.size());
        let spam = &self.services.filters.spam;
        if spam.enabled && spam.add_header && self.settings.role == Role::Mx && !tx.relay {
            added.push_str(&rampart_filter::header::field(&trail, spam.junk_score));
        }
        if action == Action::Discard {
            // A milter asked for it: accepted, then dropped, and said so in the log.
            info!(event = "discarded", ip = %self.remote.ip(), id = %tx.id, from = %format!("<{}>", tx.from), trail = %trail.summary());
            return Next::Reply(Reply::new(250, "2.0.0", format!("Ok: queued as {}", tx.id)));
        }
        if action == Action::Quarantine {
            let prefix = format!("{}{auth_header}{received}{added}", trace::return_path(&tx.from));
            return self.hold(tx, decision, trail, blob, prefix, subject).await;
        }
        let mut queued_prefix = format!("{arc_set}{auth_header}{received}{added}").into_bytes();
        if self.gateway_recipients(&tx) > 0 {
            queued_prefix.extend_from_slice(super::gateway::trail_header(&tx, action, decision, &trail).as_bytes());
        }
        let local_prefix = format!("{}{auth_header}{received}{added}", trace::return_path(&tx.from)).into_bytes();
        if (self.settings.role == Role::Submission || tx.relay) && !tx.remote.is_empty() {
            match self.dkim_signatures(&submitted.from_domains, &queued_prefix, inbound.raw.as_deref(), &blob, &tx.id).await {
                Ok(signatures) => queued_prefix.splice(0..0, signatures.into_bytes()).for_each(drop),
                Err(reply) => return Next::Reply(reply),
            }
        }
        let outbound = (!tx.remote.is_empty()).then(|| Outbound {
            sender: tx.sender(),
            rcpts: tx.remote.clone(),
            smtputf8: tx.params.smtputf8,
            is_dsn: false,
            prefix: queued_prefix,
        });
        let folder = if action == Action::Junk { Folder::Junk } else { Folder::Inbox };
        let delivery = Delivery {
            blob,
            prefix: local_prefix,
            internal_date: chrono::Utc::now().timestamp(),
            targets: tx.accounts.iter().map(|&account| Target { account, folder: folder.clone() }).collect(),
            reference: tx.id.clone(),
            trail: trail.to_json(),
            outbound,
        };
        // Submitted mail is counted against its sender's quotas in the same transaction.
        let stored = match self.submitted(&tx, &submitted.message_id) {
            Some(submitted) => self.services.store.deliver_submitted(delivery, submitted).await,
            None => self.services.store.deliver(delivery).await,
        };
        if let Err(e) = stored {
            return Next::Reply(store_failed(&tx.id, &e));
        }
        if !tx.remote.is_empty() {
            self.services.queue_wakeup.notify_one();
        }
        self.report_bounce(&tx, bounce);
        self.remember_good_sender(&trail).await;
        metrics::counter!("rampart_messages_total", "listener" => self.settings.listener, "result" => "accepted", "reason" => "ok").increment(1);
        info!(
            event = "accepted", ip = %self.remote.ip(), listener = self.settings.listener, id = %tx.id,
            from = %format!("<{}>", tx.from), local = tx.accounts.len(), queued = tx.remote.len(), size,
            user = self.user_name(), verdict = action.as_str(), reason = %decision.reason.name()
        );
        Next::Reply(Reply::new(250, "2.0.0", format!("Ok: queued as {}", tx.id)))
    }
}

impl Connection {
    /// Holds the message in the quarantine for its local recipients instead of delivering it;
    /// copies for remote recipients (alias forwards) are not sent on. Held as durably as a
    /// delivery, then `250`: the sender's part is done, the recipients or an admin decide.
    async fn hold(&self, tx: Transaction, decision: &Decision, trail: Trail, blob: Blob, prefix: String, subject: String) -> Next {
        if tx.accounts.is_empty() {
            // Nobody here to release it to: refuse it as spam instead of forwarding it.
            let r = Reply::new(550, "5.7.1", format!("Message rejected as spam (score {:.1})", trail.score()));
            info!(event = "message_refused", ip = %self.remote.ip(), id = %tx.id, reason = "quarantine_without_local_recipient", code = 550);
            return Next::Reply(r);
        }
        let hold = Hold {
            blob,
            prefix: prefix.into_bytes(),
            internal_date: chrono::Utc::now().timestamp(),
            accounts: tx.accounts.clone(),
            reference: tx.id.clone(),
            sender: tx.sender(),
            subject,
            reason: decision.reason.name(),
            score: Some(trail.score()),
            trail: trail.to_json(),
        };
        if let Err(e) = self.services.store.hold(hold).await {
            return Next::Reply(super::content::store_failed(&tx.id, &e));
        }
        metrics::counter!("rampart_messages_total", "listener" => self.settings.listener, "result" => "quarantined", "reason" => "spam").increment(1);
        info!(
            event = "quarantined", ip = %self.remote.ip(), listener = self.settings.listener, id = %tx.id,
            from = %format!("<{}>", tx.from), local = tx.accounts.len(), score = trail.score(), reason = %decision.reason.name()
        );
        Next::Reply(Reply::new(250, "2.0.0", format!("Ok: queued as {}", tx.id)))
    }

    /// An accepted message from an authenticated domain adds to that domain's history, which
    /// greylisting trusts after `filter.greylist.good_history` of them.
    async fn remember_good_sender(&self, trail: &Trail) {
        if !self.services.filters.greylist.enabled || self.settings.role != Role::Mx {
            return;
        }
        if let Some(domain) = super::filters::authenticated_domain(trail)
            && let Err(e) = self.services.store.greylist_good(&domain, chrono::Utc::now().timestamp()).await {
                warn!(event = "store_error", what = "greylist history", error = %e.chain());
            }
    }
}

/// The message's Subject, decoded, for listings (the quarantine).
fn subject_of(raw: &[u8]) -> String {
    let head = header_section(&raw[..raw.len().min(MAX_HEAD)]).unwrap_or_default();
    mail_parser::MessageParser::default().parse_headers(head).and_then(|m| m.subject().map(str::to_string)).unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use super::header_section;

    #[test]
    fn header_sections() {
        assert_eq!(header_section(b"\r\nbody"), Some(&b"\r\n"[..]));
        assert_eq!(header_section(b"A: b\r\n\r\nbody"), Some(&b"A: b\r\n\r\n"[..]));
        assert_eq!(header_section(b"A: b\r\n"), Some(&b"A: b\r\n"[..]));
        assert_eq!(header_section(&vec![b'a'; super::MAX_HEAD]), None);
    }
}
