//! The quarantine role: messages the pipeline held instead of delivering. Holding is as
//! durable as delivery (the caller acknowledges with `250` only after [`QuarantineStore::hold`]
//! returns); a held message keeps one reference on its blob until it is released into its
//! recipients' INBOX, deleted, or expires.

use async_trait::async_trait;

use crate::{AccountId, Blob, Delivered, Result};

/// A message to hold.
#[derive(Debug)]
pub struct Hold {
    pub blob: Blob,
    /// Trace headers, as a delivery's prefix.
    pub prefix: Vec<u8>,
    /// Unix seconds: the INTERNALDATE it gets when released.
    pub internal_date: i64,
    /// The local accounts it was for.
    pub accounts: Vec<AccountId>,
    /// The transaction id: also the held message's id.
    pub reference: String,
    pub sender: String,
    pub subject: String,
    /// The decision's reason (e.g. `spam_score_quarantine`, `virus_found`).
    pub reason: String,
    pub score: Option<f64>,
    /// The verdict trail as JSON.
    pub trail: String,
}

/// A held message as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    pub id: String,
    pub size: u64,
    /// Unix seconds.
    pub created: i64,
    pub sender: String,
    pub subject: String,
    pub reason: String,
    pub score: Option<f64>,
    pub trail: String,
    /// Canonical addresses of the recipients it still waits for.
    pub recipients: Vec<String>,
}

#[async_trait]
pub trait QuarantineStore: Send + Sync + 'static {
    /// Holds a message durably; returns once blob and rows are fsynced.
    async fn hold(&self, hold: Hold) -> Result<()>;
    /// Held messages, newest first; only those waiting for `account` when given.
    async fn held(&self, account: Option<AccountId>) -> Result<Vec<Held>>;
    async fn held_one(&self, id: &str) -> Result<Option<Held>>;
    /// The held message as it would be delivered: prefix followed by the blob.
    async fn held_message(&self, id: &str) -> Result<Vec<u8>>;
    /// Delivers a held message to the INBOX of its recipients (or only `account`'s) and
    /// forgets it for them. `NotFound` when it is not held (for that account).
    async fn release(&self, id: &str, account: Option<AccountId>) -> Result<Vec<Delivered>>;
    /// Deletes a held message (for everyone, or only for `account`); false when not held.
    async fn delete_held(&self, id: &str, account: Option<AccountId>) -> Result<bool>;
    /// Deletes what was held before `before` (unix seconds); returns how many.
    async fn expire_held(&self, before: i64) -> Result<u64>;
}
