//! The message-reading role: an account's mailboxes and messages as the CLI and IMAP FETCH
//! read them, and finding a message by its transaction reference.

use async_trait::async_trait;

use crate::{AccountId, MailboxId, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub id: MailboxId,
    pub name: String,
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub special_use: Option<String>,
    pub subscribed: bool,
}

/// Summary of one stored message, as the index knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageInfo {
    pub mailbox: String,
    pub uid: u32,
    pub size: u64,
    pub internal_date: i64,
    pub reference: String,
    pub trail: String,
}

/// One message in a mailbox listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    pub uid: u32,
    pub size: u64,
    pub internal_date: i64,
    pub flags: String,
    pub reference: String,
}

#[async_trait]
pub trait MessageStore: Send + Sync + 'static {
    async fn mailboxes(&self, account: AccountId) -> Result<Vec<Mailbox>>;
    /// The messages of a mailbox in UID order.
    async fn list_messages(&self, mailbox: MailboxId) -> Result<Vec<MessageMeta>>;
    /// The full message as stored: prefix followed by the blob. `NotFound` once expunged.
    async fn read_message(&self, mailbox: MailboxId, uid: u32) -> Result<Vec<u8>>;
    /// Messages stored under a transaction reference, in every account.
    async fn messages_by_reference(&self, reference: &str) -> Result<Vec<MessageInfo>>;
}
