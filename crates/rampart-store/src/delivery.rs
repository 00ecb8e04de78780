//! The delivery role: streaming a message into a blob and storing it durably for local
//! accounts and the outbound queue in one transaction. Used by SMTP, the queue's bounces and
//! IMAP APPEND (for the blob).

use async_trait::async_trait;

use crate::quota::Submitted;
use crate::{AccountId, Blob, BlobWriter, MailboxId, Result};

/// Which mailbox of an account a delivery lands in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Folder {
    Inbox,
    /// Mail the pipeline tagged as unwanted; falls back to INBOX if the account has no Junk.
    Junk,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub account: AccountId,
    pub folder: Folder,
}

/// A message to hand to the outbound queue for delivery elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    /// The envelope sender; empty for the null sender `<>`.
    pub sender: String,
    pub rcpts: Vec<String>,
    pub smtputf8: bool,
    /// A delivery status notification we generated: it must never cause another one.
    pub is_dsn: bool,
    /// Trace headers for the copy that leaves (no Return-Path: the final server adds it).
    pub prefix: Vec<u8>,
}

/// One message to store for one or more local accounts.
#[derive(Debug)]
pub struct Delivery {
    /// The message as received, fsynced.
    pub blob: Blob,
    /// Trace headers this server adds (Return-Path, Received, ...), read back before the blob.
    pub prefix: Vec<u8>,
    /// Unix seconds; IMAP INTERNALDATE.
    pub internal_date: i64,
    pub targets: Vec<Target>,
    /// The transaction id that the Received header and the log name.
    pub reference: String,
    /// Why the message was accepted: the pipeline's verdict trail as JSON.
    pub trail: String,
    /// Recipients elsewhere, queued in the same transaction as the local copies.
    pub outbound: Option<Outbound>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub account: AccountId,
    pub mailbox: MailboxId,
    pub uid: u32,
}

#[async_trait]
pub trait DeliveryStore: Send + Sync + 'static {
    /// Starts a blob for a message that is about to stream in.
    fn blob_writer(&self) -> Result<BlobWriter>;
    /// Stores a message durably in each target's folder. Returns once blob and index are
    /// fsynced; only then may the caller acknowledge the message. A failed commit
    /// (`CommitFailed`) stored nothing and leaves no file behind.
    async fn deliver(&self, delivery: Delivery) -> Result<Vec<Delivered>>;
    /// [`DeliveryStore::deliver`] for a message an authenticated user submitted: in the same
    /// transaction it is counted against the user's and the domain's sending quotas, and its
    /// queue entry names the user (held at once while the user's sending is suspended).
    async fn deliver_submitted(&self, delivery: Delivery, submitted: Submitted) -> Result<Vec<Delivered>>;
}
