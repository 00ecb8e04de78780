//! The envelope: EHLO/HELO, STARTTLS, MAIL and RCPT. Each handler runs once
//! [`Session::allowed`] has let its command through; it checks the arguments, asks policy,
//! and moves the session to its next phase.

use rampart_config::TlsMode;
use rampart_pipeline::{Entry, Outcome, Reason, Stage};
use tracing::info;

use super::state::{Helo, Phase, Transaction};
use super::{Connection, Next, Session};
use crate::command::{Body, ForwardPath, MailParams, ReversePath};
use crate::reply::Reply;
use crate::trace;

impl Session {
    pub(super) async fn ehlo(&mut self, name: String, extended: bool) -> Next {
        if !self.conn.milters.is_empty() {
            if matches!(self.phase, Phase::Mail(..) | Phase::Chunking { .. }) {
                self.conn.milters.abort().await;
            }
            self.conn.milters.helo(self.conn.remote, &name).await;
        }
        let conn = &self.conn;
        let host = &conn.services.hostname;
        let reply = if extended {
            let mut lines = vec![format!("{host} Hello {name} [{}]", conn.remote.ip())];
            lines.push("PIPELINING".into());
            lines.push(format!("SIZE {}", conn.settings.limits.max_message_size));
            lines.push("8BITMIME".into());
            lines.push("SMTPUTF8".into());
            lines.push("ENHANCEDSTATUSCODES".into());
            lines.push("CHUNKING".into());
            if conn.settings.tls == TlsMode::Starttls && conn.tls.is_none() {
                lines.push("STARTTLS".into());
            }
            if conn.offers_auth() && conn.user.is_none() {
                let cb = conn.tls.as_ref().is_some_and(|t| t.channel_binding.is_some());
                let names: Vec<&str> = conn.services.auth.mechanisms(cb).iter().map(|m| m.name()).collect();
                lines.push(format!("AUTH {}", names.join(" ")));
            }
            Reply::multi(250, lines)
        } else {
            Reply::multi(250, vec![host.clone()])
        };
        // RFC 5321 §4.1.4: EHLO in the middle of a transaction resets it.
        self.phase = Phase::Greeted(Helo { name, extended });
        Next::Reply(reply)
    }

    pub(super) fn starttls(&mut self) -> Next {
        if self.conn.tls.is_some() {
            return self.conn.error(Reply::new(503, "5.5.1", "TLS is already active"));
        }
        if self.conn.settings.tls != TlsMode::Starttls {
            return self.conn.error(Reply::new(502, "5.5.1", "STARTTLS is not offered here"));
        }
        Next::StartTls(Reply::new(220, "2.0.0", "Ready to start TLS"))
    }

    pub(super) async fn mail(&mut self, from: ReversePath, params: MailParams) -> Next {
        let Some(helo) = self.phase.helo() else {
            return self.conn.error(Reply::new(503, "5.5.1", "Send EHLO or HELO first"));
        };
        let (helo_name, extended) = (helo.name.clone(), helo.extended);
        let limits = self.conn.limits_for(&from);
        if let Err(reply) = self.conn.mail_params(&from, &params, extended, &limits) {
            return reply;
        }
        if let Err(next) = self.conn.mail_policy(&from).await {
            return next;
        }
        let relay = self.conn.downstream_relay(&from);
        let quota = match self.conn.sending_at_mail(&from, relay).await {
            Ok(quota) => quota,
            Err(next) => return next,
        };
        let id = trace::new_id();
        let milter_entries = match self.conn.milters_mail(&from, &id).await {
            Ok(entries) => entries,
            Err(next) => return next,
        };
        // A downstream relaying out is not checked as a sender from the internet.
        let spf = if relay { None } else { self.conn.mail_from_checks(&helo_name, &from).await };
        let tx = Transaction { id, from, params, rcpts: Vec::new(), accounts: Vec::new(), remote: Vec::new(), spf, milter_entries, limits, relay, quota };
        match std::mem::replace(&mut self.phase, Phase::Connected) {
            Phase::Greeted(helo) => {
                self.phase = Phase::Mail(helo, tx);
                Next::Reply(Reply::new(250, "2.1.0", "Ok"))
            }
            other => {
                self.phase = other;
                self.conn.error(Reply::new(503, "5.5.1", "Nested MAIL command"))
            }
        }
    }

    pub(super) async fn rcpt(&mut self, to: ForwardPath) -> Next {
        let Session { conn, phase, .. } = self;
        let Phase::Mail(_, tx) = phase else {
            return conn.error(Reply::new(503, "5.5.1", "Need MAIL before RCPT"));
        };
        if let ForwardPath::Mailbox(m) = &to
            && !m.is_ascii() && !tx.params.smtputf8 {
                return conn.error(Reply::new(553, "5.6.7", "Non-ASCII address needs the SMTPUTF8 parameter"));
            }
        if tx.rcpts.len() >= tx.limits.max_recipients {
            let entry = Entry::new(Stage::Recipients, Outcome::TempError, Reason::TooManyRecipients).limit(tx.limits.max_recipients as u64);
            return Next::Reply(Connection::reply(&conn.decide(entry)));
        }
        let shown = to.to_string();
        // A client on a blocklist with `reject` never gets a recipient, so never reaches DATA.
        if let Some(listed) = conn.listings().await.iter().find(|e| rampart_pipeline::refusal(e).is_some()).cloned() {
            return conn.rcpt_refused(&shown, listed).await;
        }
        let resolved = match conn.resolve_recipient(&to, tx.relay).await {
            Ok(_) if !conn.services.guard.smtp_recipient(conn.remote.ip()) => {
                Err(Entry::new(Stage::Rate, Outcome::TempError, Reason::RecipientsPerHour))
            }
            other => other,
        };
        match resolved {
            Ok((accounts, remote)) => {
                if let Err(entry) = conn.sending_at_rcpt(tx, &remote).await {
                    return conn.rcpt_refused(&shown, entry).await;
                }
                if !conn.milters.is_empty() {
                    let (answer, tagged) = conn.milters.rcpt(&shown).await;
                    tx.milter_entries.extend(tagged);
                    if let Some(next) = answer.and_then(|a| conn.milter_refusal(a)) {
                        return next;
                    }
                }
                tx.add_recipient(shown, accounts, remote);
                Next::Reply(Reply::new(250, "2.1.5", "Ok"))
            }
            Err(entry) if entry.stage == Stage::Rate => conn.rate_limited(entry),
            Err(entry) => conn.rcpt_refused(&shown, entry).await,
        }
    }
}

impl Connection {
    /// The milters at MAIL: a refusal they gave at connect or HELO, or one for this sender.
    /// Returns the entries of milters that failed with `on_error = "accept"`.
    async fn milters_mail(&mut self, from: &ReversePath, id: &str) -> Result<Vec<Entry>, Next> {
        if self.milters.is_empty() {
            return Ok(Vec::new());
        }
        if let Some((entry, reply)) = self.milters.connection_refusal() {
            let answer = super::milters::Answer { entry, reply };
            if let Some(next) = self.milter_refusal(answer) {
                return Err(next);
            }
        }
        let from = match from {
            ReversePath::Null => String::new(),
            ReversePath::Mailbox(m) => m.to_string(),
        };
        let (answer, tagged) = self.milters.mail(&from, id).await;
        match answer.and_then(|a| self.milter_refusal(a)) {
            Some(next) => Err(next),
            None => Ok(tagged),
        }
    }

    /// MAIL's parameters against what the client negotiated and our limits.
    /// The limits for a transaction: the listener's, or those of an override for the sender
    /// (the authenticated user on submission, the envelope sender on the MX).
    fn limits_for(&self, from: &ReversePath) -> super::Limits {
        let sender = match (&self.user, from) {
            (Some(user), _) => user.address.clone(),
            (None, ReversePath::Mailbox(m)) => m.to_string().to_ascii_lowercase(),
            (None, ReversePath::Null) => return self.settings.limits,
        };
        self.settings.limits.for_sender(&self.services.limit_overrides, &sender)
    }

    fn mail_params(&mut self, from: &ReversePath, params: &MailParams, extended: bool, limits: &super::Limits) -> Result<(), Next> {
        let uses_extensions = params.size.is_some() || params.body != Body::SevenBit || params.smtputf8 || params.auth.is_some();
        if uses_extensions && !extended {
            return Err(self.error(Reply::new(555, "5.5.4", "Parameters need EHLO")));
        }
        if params.body == Body::BinaryMime {
            return Err(self.error(Reply::new(555, "5.5.4", "BODY=BINARYMIME is not supported")));
        }
        // RFC 4954 §5: AUTH= is only meaningful where AUTH is offered; a submission server
        // records who submitted the message itself, so the value is accepted and ignored.
        if params.auth.is_some() && !self.offers_auth() {
            return Err(self.error(Reply::new(555, "5.5.4", "AUTH= parameter is not supported on this port")));
        }
        if let Some(size) = params.size
            && size > limits.max_message_size {
                let entry = Entry::new(Stage::Content, Outcome::Fail, Reason::TooBig).limit(limits.max_message_size);
                return Err(Next::Reply(Connection::reply(&self.decide(entry))));
            }
        if !from.is_ascii() && !params.smtputf8 {
            return Err(self.error(Reply::new(553, "5.6.7", "Non-ASCII address needs the SMTPUTF8 parameter")));
        }
        Ok(())
    }

    /// The client's message rate, and on submission whether the user owns the sender address.
    async fn mail_policy(&mut self, from: &ReversePath) -> Result<(), Next> {
        if !self.services.guard.smtp_message(self.remote.ip()) {
            return Err(self.rate_limited(Entry::new(Stage::Rate, Outcome::TempError, Reason::MessagesPerHour)));
        }
        if let (Some(user), ReversePath::Mailbox(m)) = (&self.user, from)
            && let Err(entry) = self.sender_allowed(user, &m.to_string()).await {
                info!(
                    event = "sender_refused", ip = %self.remote.ip(), listener = self.settings.listener,
                    user = %user.address, from = %m, place = "envelope"
                );
                return Err(Next::Reply(Connection::reply(&self.decide(entry))));
            }
        Ok(())
    }

    /// A rate refusal: logged with the limit's name, answered by `decide`.
    fn rate_limited(&self, entry: Entry) -> Next {
        let limit = entry.reason.name();
        info!(event = "rate_limited", ip = %self.remote.ip(), listener = self.settings.listener, limit = %limit);
        metrics::counter!("rampart_messages_total", "listener" => self.settings.listener, "result" => "refused", "reason" => limit).increment(1);
        Next::Reply(Connection::reply(&self.decide(entry)))
    }

    /// A refused recipient: logged, answered by `decide`, and reported to the guard when it
    /// looks like address guessing or relay probing (an authenticated user's typo is neither).
    async fn rcpt_refused(&mut self, shown: &str, entry: Entry) -> Next {
        let decision = self.decide(entry);
        let reply = Connection::reply(&decision);
        let reason = decision.reason.name();
        info!(
            event = "rcpt_refused", ip = %self.remote.ip(), listener = self.settings.listener,
            rcpt = %shown, reason = %reason, code = reply.code, user = self.user_name()
        );
        if self.user.is_none() && matches!(decision.reason, Reason::UnknownUser | Reason::RelayDenied) {
            return self.probe(reply).await;
        }
        Next::Reply(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_deduplicate() {
        let mut tx = Transaction {
            id: "x".into(),
            from: ReversePath::Null,
            params: MailParams::default(),
            rcpts: Vec::new(),
            accounts: Vec::new(),
            remote: Vec::new(),
            spf: None,
            milter_entries: Vec::new(),
            limits: crate::session::Limits::from_config(&rampart_config::Config::default().listener.smtp),
            relay: false,
            quota: None,
        };
        tx.add_recipient("<a@x.test>".into(), vec![1, 2], vec![]);
        tx.add_recipient("<b@x.test>".into(), vec![2], vec!["r@else.test".into()]);
        tx.add_recipient("<c@x.test>".into(), vec![], vec!["r@else.test".into()]);
        assert_eq!(tx.sender(), "");
        assert_eq!((tx.accounts, tx.remote, tx.rcpts.len()), (vec![1, 2], vec!["r@else.test".to_string()], 3));
    }
}
