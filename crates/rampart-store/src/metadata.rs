//! METADATA (RFC 5464) annotations: per user, on the server (no mailbox) or on one of the
//! user's mailboxes, each an entry name (lowercased, `/private/...` or `/shared/...`) and a
//! value. What IMAP may ask and set is decided by `rampart-imap`; the store keeps the
//! per-user limits atomic with the change.

use async_trait::async_trait;

use crate::{AccountId, MailboxId, Result};

/// How much one user may keep, counted over the server's and all mailboxes' entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataLimits {
    pub entries: u64,
    /// Names and values together.
    pub bytes: u64,
}

/// A change that would take the user over a [`MetadataLimits`]: nothing of it is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverLimit;

#[async_trait]
pub trait MetadataStore: Send + Sync {
    /// Every entry of the server (`mailbox` None) or of one mailbox, by name.
    async fn metadata(&self, account: AccountId, mailbox: Option<MailboxId>) -> Result<Vec<(String, Vec<u8>)>>;
    /// Sets (Some) or removes (None) entries in one transaction, or none of them when the
    /// user would pass `limits`.
    async fn set_metadata(
        &self,
        account: AccountId,
        mailbox: Option<MailboxId>,
        changes: Vec<(String, Option<Vec<u8>>)>,
        limits: MetadataLimits,
    ) -> Result<std::result::Result<(), OverLimit>>;
}
