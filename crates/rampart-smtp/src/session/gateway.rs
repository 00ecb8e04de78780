//! The session's side of gateway mode (`[[gateway.route]]`):
//!
//! - RCPT in a gateway domain: accepted only when the route knows the recipient
//!   ([`crate::gateway::Route::verify`]); an unknown one is refused like a local unknown user
//!   (550 5.1.1 by `decide`, counted by the guard as a probe), no answer is 451 4.4.3;
//! - MAIL from a route's downstream (`relay_from`) with a sender in the route's domains (or
//!   `<>`): the transaction relays out and gets the outbound treatment (see
//!   [`super::state::Transaction::relay`]);
//! - the copy queued to the downstream: the senders' own `X-Rampart-Trail` and
//!   `X-Spam-Status` removed, ours added after Authentication-Results and Received;
//! - the quarantine: held mail waits for a local account, and the downstream's recipients
//!   have none here, so for them a quarantine verdict is relayed tagged as junk (the
//!   downstream files it), except malware, which is refused rather than passed on.

use rampart_pipeline::{Action, Decision, Entry, Outcome, Reason, Stage, Trail};
use rampart_store::{AccountId, address};
use tracing::{info, warn};

use super::checks::Inbound;
use super::content::store_failed;
use super::state::Transaction;
use super::{Connection, Next};
use crate::command::{Mailbox, ReversePath};
use crate::gateway::{Route, Verdict};
use crate::reply::Reply;
use crate::trace;

/// Headers the downstream trusts from us only: the senders' copies are removed.
const OWN_HEADERS: [&str; 2] = [trace::TRAIL_HEADER, rampart_filter::header::NAME];

impl Connection {
    /// Whether this MAIL starts a relay out: the client is a route's downstream and the
    /// sender is the route's (or `<>`, its bounces). Other senders from it are ordinary
    /// inbound mail.
    pub(super) fn downstream_relay(&self, from: &ReversePath) -> bool {
        let Some(route) = self.downstream.and_then(|i| self.services.gateway.route(i)) else { return false };
        let sender = match from {
            ReversePath::Null => String::new(),
            ReversePath::Mailbox(m) => m.to_string(),
        };
        route.may_send_as(&sender)
    }

    /// A recipient in a gateway domain: the address to queue for the downstream, or why not.
    pub(super) async fn gateway_recipient(&self, route: &Route, m: &Mailbox, domain: &str) -> Result<(Vec<AccountId>, Vec<String>), Entry> {
        let refused = |result, reason| Entry::new(Stage::Recipients, result, reason);
        // As for local domains: quoted local parts and source routes are nobody's address.
        if m.quoted || address::canonical(&format!("{}@{domain}", m.local)).is_err() {
            return Err(refused(Outcome::Fail, Reason::UnknownUser));
        }
        let rcpt = format!("{}@{}", m.local, domain.trim_end_matches('.').to_ascii_lowercase());
        match route.verify(&rcpt, &self.services.recipient_delimiter).await {
            Verdict::Valid => Ok((Vec::new(), vec![rcpt])),
            Verdict::Unknown(why) => Err(refused(Outcome::Fail, Reason::UnknownUser).detail(why)),
            Verdict::Unavailable(why) => {
                warn!(event = "gateway_recipient_unverified", ip = %self.remote.ip(), rcpt = %rcpt, error = %why);
                Err(refused(Outcome::TempError, Reason::RecipientVerificationFailed).detail(why))
            }
        }
    }

    /// How many of the transaction's queued recipients are in gateway domains.
    pub(super) fn gateway_recipients(&self, tx: &Transaction) -> usize {
        let gateway = &self.services.gateway;
        if gateway.is_empty() {
            return 0;
        }
        tx.remote.iter().filter(|r| gateway.is_gateway_address(r)).count()
    }

    /// The trail entry of a relay out, naming the route by its first domain.
    pub(super) fn relay_entry(&self, tx: &Transaction) -> Option<Entry> {
        let route = self.downstream.filter(|_| tx.relay).and_then(|i| self.services.gateway.route(i))?;
        let name = route.domains().first().cloned().unwrap_or_default();
        Some(Entry::new(Stage::Auth, Outcome::Pass, Reason::DownstreamRelay).detail(name))
    }

    /// For a relay out: the From: domains of the message that are the route's, for DKIM
    /// signing. A downstream's mail is signed only for its own domains.
    pub(super) fn relayed_from_domains(&self, tx: &Transaction, head: &[u8]) -> Vec<String> {
        let Some(route) = self.downstream.filter(|_| tx.relay).and_then(|i| self.services.gateway.route(i)) else { return Vec::new() };
        let Some(parsed) = mail_parser::MessageParser::default().parse_headers(head) else { return Vec::new() };
        let Some(from) = parsed.from() else { return Vec::new() };
        from.iter()
            .filter_map(|a| a.address())
            .filter_map(|a| a.rsplit_once('@').map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase()))
            .filter(|d| route.has_domain(d))
            .collect()
    }

    /// What the message's decision means for a message with downstream recipients: a
    /// quarantine verdict is relayed as junk (the downstream holds the mailboxes), malware is
    /// refused. Every other action stands.
    pub(super) fn gateway_action(&self, tx: &Transaction, decision: &Decision, trail: &Trail) -> Result<Action, Next> {
        if decision.action != Action::Quarantine || self.gateway_recipients(tx) == 0 {
            return Ok(decision.action);
        }
        if decision.reason == Reason::VirusFound {
            info!(event = "message_refused", ip = %self.remote.ip(), id = %tx.id, reason = "virus_found", code = 554, trail = %trail.summary());
            let signature = trail.entries().iter().find(|e| e.reason == Reason::VirusFound).map(|e| e.detail.clone()).unwrap_or_default();
            return Err(Next::Reply(Reply::new(554, "5.7.1", format!("Message rejected: it contains malware ({signature})"))));
        }
        Ok(Action::Junk)
    }

    /// The senders' copies of the headers we write for the downstream, removed from the blob
    /// (rare, so a rewrite is acceptable). Only for messages with downstream recipients.
    pub(super) async fn strip_own_headers(&self, tx: &Transaction, inbound: &mut Inbound) -> Result<(), Next> {
        if self.gateway_recipients(tx) == 0 {
            return Ok(());
        }
        let failed = |e: rampart_store::StoreError| Next::Reply(store_failed(&tx.id, &e));
        let raw = match inbound.raw.take() {
            Some(raw) => raw,
            None => inbound.blob.contents().await.map_err(failed)?,
        };
        let Some((stripped, n)) = rampart_pipeline::headers::strip_named(&raw, &OWN_HEADERS) else {
            inbound.raw = Some(raw);
            return Ok(());
        };
        let mut writer = self.services.store.blob_writer().map_err(failed)?;
        writer.write(&stripped).await.map_err(failed)?;
        inbound.blob = writer.finish().await.map_err(failed)?;
        inbound.raw = Some(stripped);
        info!(event = "gateway_headers_removed", ip = %self.remote.ip(), id = %tx.id, count = n);
        Ok(())
    }
}

/// The verdict header of the copy relayed to a downstream.
pub(super) fn trail_header(tx: &Transaction, action: Action, decision: &Decision, trail: &Trail) -> String {
    trace::trail_header(&tx.id, action.as_str(), &decision.reason.name(), trail.score(), &trail.summary())
}

