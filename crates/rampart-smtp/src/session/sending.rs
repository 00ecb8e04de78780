//! The session's side of sending quotas and containment: on submission MAIL asks whether
//! the user may send at all and keeps the quota state in the transaction, RCPT counts each
//! recipient against it, a message refused for its content is reported as a signal, and the
//! stored message is counted with its delivery. A gateway downstream relaying out
//! (`relay_from`) has no account: its mail is held to the same quotas under its envelope
//! sender and the sender's domain (bounces, `<>`, under `mailer-daemon@` the route's first
//! domain), without containment. On the MX, a stored bounce for local accounts is matched
//! against what they sent. The decisions are in [`crate::sending`].

use rampart_pipeline::{Decision, Entry, Reason};
use rampart_store::quota::Submitted;
use tracing::info;

use super::state::Transaction;
use super::{Connection, Next, Role};
use crate::command::ReversePath;
use crate::sending::QuotaState;
use crate::sending::bounce::{self, Bounce};

/// Content refusals that count toward containment: what an account taken over by a spammer
/// sends gets refused for these.
const CONTENT_REFUSALS: [Reason; 3] = [Reason::SpamScoreReject, Reason::VirusFound, Reason::MilterRejected];

impl Connection {
    /// The authenticated user's address on submission, the only place quotas apply.
    fn submitting_user(&self) -> Option<&str> {
        (self.settings.role == Role::Submission).then_some(self.user.as_ref()?.address.as_str())
    }

    /// The address a downstream's relayed mail is counted under: its envelope sender, or for
    /// its bounces `mailer-daemon@` the route's first domain.
    fn relay_sender(&self, from: &ReversePath) -> Option<String> {
        match from {
            ReversePath::Mailbox(m) => Some(m.to_string().to_lowercase()),
            ReversePath::Null => {
                let route = self.downstream.and_then(|i| self.services.gateway.route(i))?;
                Some(format!("mailer-daemon@{}", route.domains().first()?))
            }
        }
    }

    /// MAIL: suspended accounts and used-up message quotas are refused here; otherwise the
    /// quota state the transaction counts against. `relay`: a downstream relaying out.
    pub(super) async fn sending_at_mail(&self, from: &ReversePath, relay: bool) -> Result<Option<QuotaState>, Next> {
        if relay && let Some(sender) = self.relay_sender(from) {
            return self.services.sending.at_relay(&sender, self.remote.ip()).await.map_err(|entry| {
                let decision = self.decide(entry);
                info!(
                    event = "relay_refused", ip = %self.remote.ip(), listener = self.settings.listener,
                    sender = %sender, reason = %decision.reason.name(), stage = "mail"
                );
                Next::Reply(Connection::reply(&decision))
            });
        }
        let Some(user) = self.submitting_user() else { return Ok(None) };
        match self.services.sending.at_mail(user, self.remote.ip()).await {
            Ok(state) => Ok(state),
            Err(entry) => {
                let decision = self.decide(entry);
                info!(
                    event = "submission_refused", ip = %self.remote.ip(), listener = self.settings.listener,
                    user = %user, reason = %decision.reason.name(), stage = "mail"
                );
                Err(Next::Reply(Connection::reply(&decision)))
            }
        }
    }

    /// RCPT: one more recipient against the recipient quotas; `remote` are the addresses
    /// outside our domains it stands for.
    pub(super) async fn sending_at_rcpt(&self, tx: &mut Transaction, remote: &[String]) -> Result<(), Entry> {
        let so_far = tx.rcpts.len();
        let Some(state) = tx.quota.as_mut() else { return Ok(()) };
        self.services.sending.at_rcpt(state, so_far, remote, self.remote.ip()).await
    }

    /// A submitted message `decide` refused: a containment signal when it was for its content.
    pub(super) async fn sending_refused(&self, decision: &Decision) {
        if let Some(user) = self.submitting_user()
            && CONTENT_REFUSALS.contains(&decision.reason)
        {
            self.services.sending.content_refused(user, decision.reason, self.remote.ip()).await;
        }
    }

    /// What a submitted (or a downstream's relayed) message counts against its sender's
    /// quotas when it is stored; `message_id` is remembered with a submitted message's
    /// external recipients.
    pub(super) fn submitted(&self, tx: &Transaction, message_id: &str) -> Option<Submitted> {
        let (account, message_id, relayed) = match self.submitting_user() {
            Some(user) => (user.to_string(), message_id.to_string(), false),
            None if tx.relay => (self.relay_sender(&tx.from)?, String::new(), true),
            None => return None,
        };
        Some(Submitted { account, recipients: tx.rcpts.len() as u64, external: tx.remote.clone(), message_id, relayed })
    }

    /// On the MX, a message with the null sender for local accounts: the bounce it is, if it
    /// is one, to be matched against what they sent once it is stored.
    pub(super) fn later_bounce(&self, tx: &Transaction, raw: Option<&[u8]>) -> Option<Bounce> {
        if self.settings.role != Role::Mx || tx.relay || !matches!(tx.from, ReversePath::Null) || tx.accounts.is_empty() {
            return None;
        }
        bounce::parse(raw?)
    }

    /// A stored bounce counts toward its recipients' containment, off the session's path.
    pub(super) fn report_bounce(&self, tx: &Transaction, bounce: Option<Bounce>) {
        let Some(bounce) = bounce else { return };
        let (sending, id, accounts) = (self.services.sending.clone(), tx.id.clone(), tx.accounts.clone());
        tokio::spawn(async move { sending.bounce_received(&id, &bounce, accounts).await });
    }
}
