//! Sending quotas and compromised-account containment, for mail authenticated users submit.
//!
//! - [`quota`]: the limits that apply to a user and whether one more message or recipient
//!   goes past one (pure);
//! - [`score`]: the containment score of what an account did in the window (pure);
//! - [`notice`]: the mail that tells the user and the administrator about a suspension;
//! - [`bounce`]: a bounce that comes back after the session, parsed to what it says failed;
//! - [`Sending`]: the service the session (MAIL, RCPT, a refused message) and the queue runner
//!   (recipients refused by remote servers) report to, and the MX for a bounce of a message
//!   we sent that comes back later. It keeps nothing in memory: counts,
//!   signals, suspensions, overrides and exceptions are in the store, so they survive a restart
//!   and the CLI changes them while the server runs. Every refusal it decides is a typed trail
//!   entry (`quota_exceeded`, `sending_suspended`) that `decide` answers.

pub mod bounce;
pub mod notice;
pub mod quota;
pub mod score;

use std::net::IpAddr;
use std::sync::Arc;

use rampart_config::{Containment, Quota};
use rampart_pipeline::{Entry, Outcome, Reason, Stage};
use rampart_store::{AccountId, Store};
use rampart_store::address::domain_of;
use rampart_store::containment::{Evidence, Signal, Suspension, SuspensionScope};
use rampart_store::quota::DAY;
use tokio::sync::Notify;
use tracing::{info, warn};

use crate::queue::{Generated, inject};
pub use quota::{Exceeded, QuotaState};
use score::{OUTBOUND_REFUSED, QUOTA_HIT, REMOTE_REFUSED, Score};

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The trail entry that refuses a suspended account's submission (554 5.7.1).
pub fn suspended_entry(s: &Suspension) -> Entry {
    let by = if s.automatic { "suspected compromise" } else { "by the administrator" };
    Entry::new(Stage::Containment, Outcome::Fail, Reason::SendingSuspended).detail(by)
}

/// The store could not be asked: the client tries again later (451 4.3.0).
fn store_unavailable(e: &rampart_store::StoreError) -> Entry {
    warn!(event = "store_error", what = "sending quota", error = %e.chain());
    Entry::new(Stage::Quota, Outcome::TempError, Reason::StoreUnavailable)
}

/// Why a recipient cannot be counted.
enum Refused {
    Over(Exceeded),
    Store(Entry),
}

pub struct Sending {
    store: Arc<dyn Store>,
    quota: Quota,
    containment: Containment,
    hostname: String,
    recipient_delimiter: String,
    queue_wakeup: Arc<Notify>,
}

impl Sending {
    pub fn new(
        store: Arc<dyn Store>,
        quota: Quota,
        containment: Containment,
        hostname: String,
        recipient_delimiter: String,
        queue_wakeup: Arc<Notify>,
    ) -> Arc<Sending> {
        Arc::new(Sending { store, quota, containment, hostname, recipient_delimiter, queue_wakeup })
    }

    fn window_start(&self, now: i64) -> i64 {
        now - self.containment.window.as_secs() as i64
    }

    /// MAIL from an authenticated user: refused while its sending is suspended, or when what
    /// it did in the window reaches the containment threshold (then suspended now), or when a
    /// message quota of the user or its domain is used up. Otherwise the quota state the
    /// transaction counts against (None for an exempt sender or quotas off).
    pub async fn at_mail(&self, account: &str, ip: IpAddr) -> Result<Option<QuotaState>, Entry> {
        let now = now();
        let (status, evidence) = self.store.sending_status(account, now, self.window_start(now)).await.map_err(|e| store_unavailable(&e))?;
        if let Some(s) = &evidence.suspension {
            return Err(suspended_entry(s));
        }
        if let Some(s) = self.evaluate(account, &evidence, Some(ip)).await {
            return Err(suspended_entry(&s));
        }
        if !self.quota.enabled || status.exempt {
            return Ok(None);
        }
        let state = QuotaState::new(&self.quota, account, &status);
        if let Some(ex) = state.check_message() {
            return Err(self.quota_hit(account, ex, ip, true).await);
        }
        Ok(Some(state))
    }

    /// MAIL from a gateway downstream relaying out (`relay_from`): the quotas of its envelope
    /// `sender` and the sender's domain, as for a user but without containment (there is no
    /// account to suspend). None for an exempt sender or domain, or quotas off.
    pub async fn at_relay(&self, sender: &str, ip: IpAddr) -> Result<Option<QuotaState>, Entry> {
        if !self.quota.enabled {
            return Ok(None);
        }
        let status = self.store.quota_status(sender, now()).await.map_err(|e| store_unavailable(&e))?;
        if status.exempt {
            return Ok(None);
        }
        let state = QuotaState { relay: true, ..QuotaState::new(&self.quota, sender, &status) };
        if let Some(ex) = state.check_message() {
            return Err(self.quota_hit(sender, ex, ip, false).await);
        }
        Ok(Some(state))
    }

    /// RCPT: one more recipient (`remote` are the addresses outside our domains it stands for)
    /// after `so_far` accepted ones. A new external recipient is looked up only when a
    /// distinct-recipient quota is close; within one transaction every external recipient not
    /// looked up counts as new.
    pub async fn at_rcpt(&self, state: &mut QuotaState, so_far: usize, remote: &[String], ip: IpAddr) -> Result<(), Entry> {
        match self.rcpt_quotas(state, so_far, remote).await {
            Ok(()) => Ok(()),
            Err(Refused::Store(entry)) => Err(entry),
            Err(Refused::Over(ex)) => {
                let first = !state.hit && !state.relay;
                state.hit = true;
                Err(self.quota_hit(&state.account, ex, ip, first).await)
            }
        }
    }

    /// The quota one more recipient would exceed, if any.
    async fn rcpt_quotas(&self, state: &mut QuotaState, so_far: usize, remote: &[String]) -> Result<(), Refused> {
        if let Some(ex) = state.check_recipient(so_far) {
            return Err(Refused::Over(ex));
        }
        for rcpt in remote {
            let rcpt = rcpt.to_lowercase();
            if state.new_external.contains(&rcpt) {
                continue;
            }
            if let Some((domain, ex)) = state.check_external() {
                let scope = if domain { domain_of(&state.account).to_string() } else { state.account.clone() };
                match self.store.quota_seen(&scope, &rcpt, now() - DAY).await {
                    Ok(true) => continue,
                    Ok(false) => return Err(Refused::Over(ex)),
                    Err(e) => return Err(Refused::Store(store_unavailable(&e))),
                }
            }
            state.new_external.push(rcpt);
        }
        Ok(())
    }

    /// A quota refusal: logged, counted, and (`signal`: the transaction's first) a containment
    /// signal; the entry that answers it (the suspension's, when this refusal was one too many).
    async fn quota_hit(&self, account: &str, ex: Exceeded, ip: IpAddr, signal: bool) -> Entry {
        info!(event = "quota_exceeded", ip = %ip, user = %account, quota = %ex.name, limit = ex.limit);
        metrics::counter!("rampart_quota_exceeded_total", "quota" => ex.name.clone()).increment(1);
        if signal && let Some(s) = self.signal(account, QUOTA_HIT, 1, &ex.name, Some(ip)).await {
            return suspended_entry(&s);
        }
        Entry::new(Stage::Quota, Outcome::TempError, Reason::QuotaExceeded).detail(ex.name).limit(ex.limit)
    }

    /// A submitted message `decide` refused for its content (spam score, malware, a milter).
    pub async fn content_refused(&self, account: &str, reason: Reason, ip: IpAddr) {
        self.signal(account, OUTBOUND_REFUSED, 1, &reason.name(), Some(ip)).await;
    }

    /// The queue runner: remote servers refused `count` recipients of the account's mail for good.
    pub async fn remote_refused(&self, account: &str, count: u64) {
        if !account.is_empty() && count > 0 {
            self.signal(account, REMOTE_REFUSED, count, "", None).await;
        }
    }

    /// A bounce of a message we sent that came back after the session, delivered to the local
    /// `accounts`: the failed recipients that match what one of them sent with that Message-ID
    /// count as recipients refused by remote servers. A forged bounce matches nothing.
    pub async fn bounce_received(&self, id: &str, bounce: &bounce::Bounce, accounts: Vec<AccountId>) {
        let found = match self.store.sent_bounced(&bounce.message_id, bounce.failed.clone(), accounts).await {
            Ok(found) => found,
            Err(e) => return warn!(event = "store_error", what = "bounce matching", error = %e.chain()),
        };
        if found.is_empty() {
            info!(event = "bounce_unmatched", id, message_id = %bounce.message_id, rcpts = bounce.failed.len());
        }
        for (account, count) in found {
            info!(event = "bounce_matched", id, user = %account, message_id = %bounce.message_id, rcpts = count);
            self.signal(&account, REMOTE_REFUSED, count, "bounce", None).await;
        }
    }

    /// Records a signal and suspends the account when its score now reaches the threshold;
    /// returns the suspension this signal caused.
    async fn signal(&self, account: &str, kind: &str, count: u64, detail: &str, ip: Option<IpAddr>) -> Option<Suspension> {
        if !self.containment.enabled {
            return None;
        }
        metrics::counter!("rampart_containment_signals_total", "signal" => kind.to_string()).increment(count);
        let now = now();
        let signal = Signal { account: account.to_string(), kind: kind.to_string(), count, detail: detail.to_string() };
        match self.store.record_signal(signal, self.window_start(now), now).await {
            Ok(evidence) => self.evaluate(account, &evidence, ip).await,
            Err(e) => {
                warn!(event = "store_error", what = "containment signal", error = %e.chain());
                None
            }
        }
    }

    /// Suspends the account when the evidence reaches the threshold; never an exempt one.
    async fn evaluate(&self, account: &str, evidence: &Evidence, ip: Option<IpAddr>) -> Option<Suspension> {
        if !self.containment.enabled || evidence.exempt || evidence.suspension.is_some() {
            return None;
        }
        let score = score::score(evidence, &self.containment);
        if !score.reaches(&self.containment) {
            return None;
        }
        self.suspend_automatically(account, &score, ip).await
    }

    async fn suspend_automatically(&self, account: &str, score: &Score, ip: Option<IpAddr>) -> Option<Suspension> {
        let since = now();
        let window = rampart_config::duration_text(self.containment.window);
        let reason = format!("suspected compromise: score {:.1} within {window} ({})", score.total, score.summary());
        let s = Suspension { account: account.to_string(), scope: SuspensionScope::Sending, reason, automatic: true, since };
        let done = match self.store.suspend(s.clone()).await {
            Ok(done) => done,
            Err(e) => {
                warn!(event = "store_error", what = "suspension", user = %account, error = %e.chain());
                return None;
            }
        };
        if done.newly {
            let ip = ip.map_or_else(|| "-".to_string(), |ip| ip.to_string());
            warn!(
                event = "account_suspended", ip = %ip, user = %account, scope = "sending", automatic = true,
                score = %format!("{:.1}", score.total), signals = %score.summary(), held = done.held
            );
            metrics::counter!("rampart_accounts_suspended_total", "trigger" => "automatic").increment(1);
            self.notify(account, score, since, done.held).await;
        }
        Some(s)
    }

    /// Mails the user and the administrator about a suspension.
    async fn notify(&self, account: &str, score: &Score, since: i64, held: u64) {
        let admin = match self.containment.admin_address.as_str() {
            "" => format!("postmaster@{}", domain_of(account)),
            a => a.to_string(),
        };
        let id = crate::trace::new_id();
        let why = score.explain();
        let n = notice::Notice { hostname: &self.hostname, id: &id, account, admin: &admin, since, why: &why, held };
        let message = notice::build(&n);
        let rcpts = [account.to_string(), admin.clone()];
        let g = Generated { id: &id, sender: "", rcpts: &rcpts, message: &message, reason: Reason::SuspensionNotice, is_dsn: false };
        match inject(self.store.as_ref(), &self.hostname, &self.recipient_delimiter, &g).await {
            Ok(done) => {
                if done.queued {
                    self.queue_wakeup.notify_one();
                }
                info!(event = "suspension_notice", id = %id, user = %account, admin = %admin, local = done.local, queued = done.queued);
            }
            Err(e) => warn!(event = "store_error", what = "suspension notice", user = %account, error = %e.chain()),
        }
    }

    /// Hourly: counts older than a day and signals older than the window (at least a day) go.
    pub async fn upkeep(self: Arc<Self>) {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            tick.tick().await;
            let now = now();
            if let Err(e) = self.store.quota_prune(now - DAY).await {
                warn!(event = "store_error", what = "quota pruning", error = %e.chain());
            }
            let keep = (self.containment.window.as_secs() as i64).max(DAY);
            if let Err(e) = self.store.signals_prune(now - keep).await {
                warn!(event = "store_error", what = "signal pruning", error = %e.chain());
            }
        }
    }
}
