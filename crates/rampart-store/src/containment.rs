//! The containment role: what may show that an account was taken over, and what was done
//! about it.
//!
//! - *Signals* are events recorded per account (a quota refusal, a submitted message refused
//!   for its content, recipients refused by remote servers), each with a count; the server
//!   scores those within a sliding window.
//! - [`Evidence`] is everything the score reads, gathered in one read: the signals since the
//!   window's start, what the account sent in it (from the quota counts), the networks it
//!   logged in from (the guard's known logins), whether it is exempt or already suspended.
//! - A *suspension* stops an account's sending (or all its logins); its queued messages are
//!   held (never tried, never bounced) until released or deleted. Resuming forgets the
//!   evidence gathered before it, so the same signals do not suspend the account again.

use async_trait::async_trait;

use crate::{AccountId, Result};

/// What a suspension stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuspensionScope {
    /// Submission is refused and queued mail held; logins (IMAP) keep working.
    Sending,
    /// Every login too.
    All,
}

impl SuspensionScope {
    pub fn as_str(self) -> &'static str {
        match self {
            SuspensionScope::Sending => "sending",
            SuspensionScope::All => "all",
        }
    }

    pub(crate) fn parse(s: &str) -> SuspensionScope {
        if s == "all" { SuspensionScope::All } else { SuspensionScope::Sending }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suspension {
    /// The account's canonical address.
    pub account: String,
    pub scope: SuspensionScope,
    /// Why, in words for the administrator and the user.
    pub reason: String,
    /// Suspended by the server's own scoring, not by an administrator.
    pub automatic: bool,
    /// Unix seconds.
    pub since: i64,
}

/// The network a login counts as for containment: an IPv4 /24 or an IPv6 /64. The guard
/// records IPv4 logins by address (`192.0.2.7/32`) and IPv6 ones by /64; another address in
/// the same /24 is the same customer network, not a new one.
pub fn login_network(net: &str) -> String {
    let ip = net.split('/').next().unwrap_or(net);
    match ip.parse::<std::net::Ipv4Addr>() {
        Ok(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0/24")
        }
        Err(_) => net.to_string(),
    }
}

/// A login network ([`login_network`]) first seen within the window, after the account had
/// logged in from others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNetwork {
    /// The network as [`login_network`] names it.
    pub net: String,
    pub first_seen: i64,
    /// Messages the account submitted since then.
    pub messages_since: u64,
}

/// Everything the containment score reads for one account, over the window that ends now and
/// starts at the window's length ago or at the last resume, whichever is later.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    /// The window's start (unix seconds).
    pub since: i64,
    /// Signal kind → the sum of its counts in the window.
    pub signals: Vec<(String, u64)>,
    /// Recipients outside our domains the account submitted in the window.
    pub external_recipients: u64,
    /// Distinct recipients outside our domains it sent to in the window.
    pub distinct_external: u64,
    /// The networks (as the guard records them) it logged in from in the window.
    pub login_networks: Vec<String>,
    pub new_network: Option<NewNetwork>,
    /// The address or its domain is on the quota exception list: never suspended.
    pub exempt: bool,
    pub suspension: Option<Suspension>,
}

impl Evidence {
    /// The summed count of one signal kind.
    pub fn signal(&self, kind: &str) -> u64 {
        self.signals.iter().filter(|(k, _)| k == kind).map(|(_, n)| n).sum()
    }
}

/// A signal to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signal {
    pub account: String,
    /// A stable name (`quota_hit`, `outbound_refused`, `remote_refused`).
    pub kind: String,
    pub count: u64,
    pub detail: String,
}

/// What [`ContainmentStore::suspend`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suspended {
    /// False when the account was suspended already (its scope and reason are updated).
    pub newly: bool,
    /// Queued messages of the account held by this call.
    pub held: u64,
}

#[async_trait]
pub trait ContainmentStore: crate::QuotaStore + Send + Sync + 'static {
    /// The evidence about `account` over the window that starts at `window_start` (or at its
    /// last resume, when later).
    async fn evidence(&self, account: &str, window_start: i64) -> Result<Evidence>;
    /// What MAIL from an authenticated user reads: its quota status at `now` and the evidence
    /// since `window_start`. A backend answers both from one snapshot where it can (SQLite:
    /// one read transaction, whose start after any commit re-reads the pages it visits).
    async fn sending_status(&self, account: &str, now: i64, window_start: i64) -> Result<(crate::quota::QuotaStatus, Evidence)> {
        let (status, evidence) = tokio::join!(self.quota_status(account, now), self.evidence(account, window_start));
        Ok((status?, evidence?))
    }
    /// Records a signal at `now` and returns the evidence with it, in one writer job. An
    /// exempt account collects none: taking it off the exception list starts it afresh.
    async fn record_signal(&self, signal: Signal, window_start: i64, now: i64) -> Result<Evidence>;
    /// Suspends the account and holds its queued messages in one transaction; messages it
    /// queues later (accepted before the suspension) are held as they are queued.
    async fn suspend(&self, suspension: Suspension) -> Result<Suspended>;
    /// Ends a suspension; evidence before `now` no longer counts. `None` when the account was
    /// not suspended, else how many of its queued messages are still held.
    async fn resume(&self, account: &str, now: i64) -> Result<Option<u64>>;
    async fn suspension(&self, account: &str) -> Result<Option<Suspension>>;
    async fn suspensions(&self) -> Result<Vec<Suspension>>;
    /// Releases one held queue entry (`id`) or every held entry of `account`: its pending
    /// recipients become due now. Returns how many entries were released.
    async fn queue_release_held(&self, id: Option<&str>, account: Option<&str>, now: i64) -> Result<u64>;
    /// Deletes every held queue entry of `account` without delivering or bouncing it.
    async fn queue_delete_held(&self, account: &str) -> Result<u64>;
    /// A bounce that came back after the session about `message_id`: the failed `rcpts` that
    /// one of `accounts` (the bounce's local recipients) sent it to, by account. The matched
    /// rows are taken, so the same report delivered twice counts once.
    async fn sent_bounced(&self, message_id: &str, rcpts: Vec<String>, accounts: Vec<AccountId>) -> Result<Vec<(String, u64)>>;
    /// Forgets signals, and the recipients of sent mail, recorded before `before`.
    async fn signals_prune(&self, before: i64) -> Result<()>;
}
