//! The quota role: what authenticated users and their domains sent, counted durably so a
//! restart does not reset it, and the overrides and exceptions an administrator sets while
//! the server runs.
//!
//! A *scope* is either a canonical address (a user) or a domain name (all of its users
//! together); addresses contain `@`, domains do not, so one column holds both. Messages and
//! recipients are counted in [`BUCKET`]-second buckets, so "the last hour" and "the last
//! day" slide in 5-minute steps; distinct recipients outside our domains are remembered with
//! the last time each was sent to. A submitted message is counted in the same writer job that
//! stores it ([`crate::DeliveryStore::deliver_submitted`]): one transaction, no extra fsync.

use async_trait::async_trait;

use crate::Result;

/// The length of one counting step, in seconds.
pub const BUCKET: i64 = 300;
pub const HOUR: i64 = 3600;
pub const DAY: i64 = 24 * HOUR;

/// The first bucket of the window of `len` seconds that ends at `now`.
pub fn first_bucket(now: i64, len: i64) -> i64 {
    now.div_euclid(BUCKET) - len / BUCKET + 1
}

/// What one scope sent within the windows the quotas are taken over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub messages_hour: u64,
    pub messages_day: u64,
    pub recipients_hour: u64,
    pub recipients_day: u64,
    /// Distinct recipients outside our domains within the last day.
    pub external_day: u64,
}

/// A sender's quota state, as MAIL needs it: one read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuotaStatus {
    pub user: Usage,
    pub domain: Usage,
    /// `(key, value)` set with `rampart quota set` for the address, and for its domain.
    pub user_overrides: Vec<(String, u64)>,
    pub domain_overrides: Vec<(String, u64)>,
    /// The address or its domain is on the exception list.
    pub exempt: bool,
}

/// A message an authenticated user submitted, counted when it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    /// The user's canonical address; its domain is counted too.
    pub account: String,
    /// Every accepted recipient, local or not.
    pub recipients: u64,
    /// Recipients outside our domains, lowercase.
    pub external: Vec<String>,
    /// The message's Message-ID without angle brackets (empty: none), remembered with each
    /// external recipient so a later bounce can be matched to it
    /// ([`crate::ContainmentStore::sent_bounced`]).
    pub message_id: String,
    /// A gateway downstream's relayed mail, counted under its envelope sender (`account`) and
    /// the sender's domain: no account of ours, so its queue entry names none.
    pub relayed: bool,
}

/// An override or exception as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaOverride {
    /// An address or a domain.
    pub target: String,
    pub key: String,
    pub value: u64,
}

#[async_trait]
pub trait QuotaStore: Send + Sync + 'static {
    /// The usage of `address` and of its domain at `now`, their overrides, and whether either
    /// is exempt.
    async fn quota_status(&self, address: &str, now: i64) -> Result<QuotaStatus>;
    /// The usage of one scope (an address or a domain) at `now`.
    async fn quota_usage(&self, scope: &str, now: i64) -> Result<Usage>;
    /// Whether `scope` sent to the external recipient `rcpt` since `since` (already counted
    /// among its distinct recipients).
    async fn quota_seen(&self, scope: &str, rcpt: &str, since: i64) -> Result<bool>;
    /// Sets (or with `None` removes) an override of `key` for an address or a domain.
    async fn quota_override(&self, target: &str, key: &str, value: Option<u64>) -> Result<()>;
    /// Every override, by target and key.
    async fn quota_overrides(&self) -> Result<Vec<QuotaOverride>>;
    /// Puts an address or a domain on the exception list (or takes it off); false when
    /// nothing changed.
    async fn quota_exempt(&self, target: &str, exempt: bool) -> Result<bool>;
    async fn quota_exemptions(&self) -> Result<Vec<String>>;
    /// Forgets counts and recipients older than `before` (unix seconds).
    async fn quota_prune(&self, before: i64) -> Result<()>;
}
