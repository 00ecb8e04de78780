//! The guard role: bans and their history, the networks each account logged in from, and
//! small server state that must survive restarts.

use async_trait::async_trait;

use crate::Result;

/// Seconds per row of failed-login counts (`login_failures`): an attack of thousands of
/// guesses a minute writes a few rows, not one per guess.
pub const FAILURE_BUCKET: i64 = 10;

/// A ban on an address or network, active while `until` is in the future.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    /// CIDR form: `192.0.2.7/32`, `192.0.2.0/24`, `2001:db8::/64`.
    pub net: String,
    /// Unix seconds; in the past for a ban kept only to count repeat offences.
    pub until: i64,
    pub reason: String,
    /// How many times this network was banned; each repeat doubles the ban.
    pub offenses: u32,
    pub updated: i64,
}

/// Logins of one account from one network over one protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRecord {
    pub net: String,
    pub proto: String,
    /// Unix seconds.
    pub first_seen: i64,
    pub last_seen: i64,
    pub logins: u64,
}

#[async_trait]
pub trait GuardStore: Send + Sync + 'static {
    /// Every ban row, active or expired.
    async fn bans(&self) -> Result<Vec<Ban>>;
    /// Inserts or replaces the ban for `ban.net`.
    async fn ban_put(&self, ban: &Ban) -> Result<()>;
    /// Forgets a ban and its history; false when there was none.
    async fn ban_remove(&self, net: &str) -> Result<bool>;
    /// Removes expired bans last updated before `before` (their offences are forgiven).
    async fn bans_prune(&self, before: i64) -> Result<()>;
    /// Records a successful login of `account` from `net` over `proto` (`smtp`, `imap`,
    /// `web`): a known network for account protection, and a line of its login history.
    async fn known_login_put(&self, account: &str, net: &str, proto: &str, now: i64) -> Result<()>;
    /// The account's login history, most recent first: one row per network and protocol.
    async fn login_history(&self, account: &str) -> Result<Vec<LoginRecord>>;
    /// Networks `account` logged in from since `since`.
    async fn known_logins(&self, account: &str, since: i64) -> Result<Vec<String>>;
    /// Counts a failed login to `account` (what the client claimed, lower case) at `now` and
    /// returns the account's failures since `since`, as every node counted them: an attack
    /// spread over several nodes protects the account as one on a single node would.
    async fn login_failure_add(&self, account: &str, now: i64, since: i64) -> Result<u64>;
    /// The failed logins to `account` since `since`, counted by every node. Counts are kept
    /// per [`FAILURE_BUCKET`] seconds, so `since` is rounded down to one.
    async fn login_failures(&self, account: &str, since: i64) -> Result<u64>;
    /// Forgets failures counted before `before`.
    async fn login_failures_prune(&self, before: i64) -> Result<()>;
    /// Whether every login of `account` is suspended (`rampart user suspend` without
    /// `--sending`).
    async fn login_suspended(&self, account: &str) -> Result<bool>;

    /// Small server state that must survive restarts (the last report run).
    async fn state(&self, key: &str) -> Result<Option<String>>;
    async fn set_state(&self, key: &str, value: &str) -> Result<()>;
    /// Sets `key` to `value` only if it is still `expected` (None: absent); whether it did.
    /// What several nodes use to agree which one does a piece of shared work.
    async fn swap_state(&self, key: &str, expected: Option<&str>, value: &str) -> Result<bool>;
}
