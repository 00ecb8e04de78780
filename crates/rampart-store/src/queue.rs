//! The queue role: messages waiting for delivery elsewhere, one state and schedule per
//! recipient. Entries are created by [`crate::DeliveryStore::deliver`] (with the local
//! copies, in one transaction); the queue runner and the CLI read and update them here.

use std::collections::HashSet;

use async_trait::async_trait;

use crate::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RcptState {
    Pending,
    Delivered,
    Failed,
}

impl RcptState {
    pub fn as_str(self) -> &'static str {
        match self {
            RcptState::Pending => "pending",
            RcptState::Delivered => "delivered",
            RcptState::Failed => "failed",
        }
    }

    pub(crate) fn parse(s: &str) -> RcptState {
        match s {
            "delivered" => RcptState::Delivered,
            "failed" => RcptState::Failed,
            _ => RcptState::Pending,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRcpt {
    pub id: i64,
    pub rcpt: String,
    pub domain: String,
    pub state: RcptState,
    pub attempts: u32,
    /// Unix seconds.
    pub next_attempt: i64,
    pub last_error: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    pub id: String,
    pub sender: String,
    pub size: u64,
    pub smtputf8: bool,
    pub is_dsn: bool,
    pub created: i64,
    /// The user who submitted it (canonical address); empty for mail the server generated or
    /// forwarded.
    pub account: String,
    /// Held while that user's sending is suspended: never tried, never bounced, until
    /// released or deleted.
    pub held: bool,
    pub rcpts: Vec<QueueRcpt>,
}

/// The outcome of a delivery attempt for one queued recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcptUpdate {
    pub id: i64,
    pub state: RcptState,
    /// When to try again (only for `Pending`).
    pub next_attempt: i64,
    pub error: String,
}

#[async_trait]
pub trait QueueStore: Send + Sync + 'static {
    /// Queue entries with recipients due at `now`, each listing only those recipients. Held
    /// entries are never due.
    async fn queue_due(&self, now: i64, limit: usize) -> Result<Vec<QueueEntry>>;
    /// [`queue_due`](Self::queue_due) without the recipients in `in_hand` (being delivered by
    /// this node already), which a scan under a backlog reads again each time; `limit` counts
    /// them too. A store may skip them before building their entries (SQLite: one scan read
    /// the whole backlog's rows and entries again, ~3% of the server's CPU under an outbound
    /// backlog); this default filters what `queue_due` returns, with its side effects
    /// (PostgreSQL renews the leases of what it returns).
    async fn queue_due_except(&self, now: i64, limit: usize, in_hand: HashSet<i64>) -> Result<Vec<QueueEntry>> {
        let mut due = self.queue_due(now, limit).await?;
        for entry in &mut due {
            entry.rcpts.retain(|r| !in_hand.contains(&r.id));
        }
        due.retain(|e| !e.rcpts.is_empty());
        Ok(due)
    }
    /// Every queue entry with all its recipients.
    async fn queue_list(&self) -> Result<Vec<QueueEntry>>;
    async fn queue_entry(&self, id: &str) -> Result<Option<QueueEntry>>;
    /// The queued message as it will be sent: prefix followed by the blob.
    async fn queue_message(&self, id: &str) -> Result<Vec<u8>>;
    /// Records attempt outcomes; an entry whose recipients are all final is removed.
    async fn queue_update(&self, updates: Vec<RcptUpdate>) -> Result<()>;
    /// Makes every pending recipient of the entry due now.
    async fn queue_retry(&self, id: &str) -> Result<()>;
    async fn queue_delete(&self, id: &str) -> Result<()>;
    /// How often the queue runner must renew the leases of the recipients it is delivering
    /// ([`QueueStore::queue_renew`]); None for a store without leases (SQLite: one node).
    fn queue_lease_renewal(&self) -> Option<std::time::Duration> {
        None
    }
    /// Extends this node's leases on recipients `ids` (those in delivery here) from `now`, so
    /// an attempt longer than the lease is not taken up by another node meanwhile.
    async fn queue_renew(&self, _ids: Vec<i64>, _now: i64) -> Result<()> {
        Ok(())
    }
}
