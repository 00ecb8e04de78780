//! Rampart's storage.
//!
//! - [`Store`] is what the rest of the server sees: domains, accounts, aliases, mailboxes and
//!   the message index. [`SqliteStore`] is the embedded default (SQLite in WAL mode).
//! - Message bodies are blob files ([`blob`]): written while the message streams in, fsynced,
//!   then referenced by index rows in one transaction. A message counts as stored only once
//!   both are durable; callers acknowledge it (SMTP `250`) after [`Store::deliver`] returns.
//! - All writes go through one writer thread that commits whatever is queued in one
//!   transaction (group commit), so concurrent deliveries share fsyncs.
//! - [`mail`] is what IMAP needs on top ([`MailStore`]): mailbox management, flags with
//!   MODSEQ, expunge, copy/move, append, and change notification ([`notify`]).
//! - [`address`] holds the canonical form of mail addresses that every layer agrees on.

pub mod address;
pub mod blob;
pub mod mail;
pub mod notify;
mod sqlite;

use std::path::PathBuf;

use async_trait::async_trait;

pub use blob::{Blob, BlobWriter};
pub use mail::{Changes, FlagOp, FlagsUpdate, MailStore, MailboxState, MessageRecord, Transfer};
pub use sqlite::SqliteStore;

pub type AccountId = i64;
pub type MailboxId = i64;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0} already exists")]
    Exists(String),
    #[error("{0} does not exist")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the database schema is version {found}, newer than this binary knows ({known})")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("the store's writer has stopped")]
    Closed,
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io { path: path.into(), source }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    /// Canonical address (see [`address::canonical`]).
    pub address: String,
    /// A PHC string (`$argon2id$...`).
    pub password_hash: String,
    /// Unix seconds.
    pub created: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    pub address: String,
    pub target: String,
}

/// Where mail for an address goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    /// Local accounts, deduplicated.
    pub accounts: Vec<AccountId>,
    /// Addresses outside our domains that an alias forwards to.
    pub remote: Vec<String>,
}

impl Resolution {
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty() && self.remote.is_empty()
    }
}

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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    pub account: AccountId,
    pub mailbox: MailboxId,
    pub uid: u32,
}

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

/// The mailboxes every new account gets, with their RFC 6154 special-use attributes.
pub const DEFAULT_MAILBOXES: [(&str, Option<&str>); 6] = [
    ("INBOX", None),
    ("Sent", Some("\\Sent")),
    ("Drafts", Some("\\Drafts")),
    ("Trash", Some("\\Trash")),
    ("Junk", Some("\\Junk")),
    ("Archive", Some("\\Archive")),
];

#[async_trait]
pub trait Store: Send + Sync + 'static {
    async fn add_domain(&self, name: &str) -> Result<()>;
    /// Refuses while accounts or aliases of the domain exist, so no mail is orphaned.
    async fn remove_domain(&self, name: &str) -> Result<()>;
    async fn list_domains(&self) -> Result<Vec<String>>;
    async fn is_local_domain(&self, name: &str) -> Result<bool>;

    /// Creates the account and its default mailboxes. The domain must be local.
    async fn add_account(&self, address: &str, password_hash: &str) -> Result<AccountId>;
    /// Removes the account, its mailboxes and messages.
    async fn remove_account(&self, address: &str) -> Result<()>;
    async fn set_password(&self, address: &str, password_hash: &str) -> Result<()>;
    async fn account(&self, address: &str) -> Result<Option<Account>>;
    async fn list_accounts(&self) -> Result<Vec<Account>>;

    /// `address` must be in a local domain and must not be an account.
    async fn add_alias(&self, address: &str, target: &str) -> Result<()>;
    /// Removes one target of the alias, or all of them when `target` is `None`.
    async fn remove_alias(&self, address: &str, target: Option<&str>) -> Result<()>;
    async fn list_aliases(&self) -> Result<Vec<Alias>>;

    /// Resolves a canonical address through aliases (nested up to a fixed depth) to accounts
    /// and remote addresses. Empty when nothing local answers to it.
    async fn resolve(&self, address: &str) -> Result<Resolution>;

    /// Starts a blob for a message that is about to stream in.
    fn blob_writer(&self) -> Result<BlobWriter>;
    /// Stores a message durably in each target's folder. Returns once blob and index are
    /// fsynced; only then may the caller acknowledge the message.
    async fn deliver(&self, delivery: Delivery) -> Result<Vec<Delivered>>;

    async fn mailboxes(&self, account: AccountId) -> Result<Vec<Mailbox>>;
    /// The messages of a mailbox in UID order.
    async fn list_messages(&self, mailbox: MailboxId) -> Result<Vec<MessageMeta>>;
    /// The full message as stored: prefix followed by the blob.
    async fn read_message(&self, mailbox: MailboxId, uid: u32) -> Result<Vec<u8>>;
    /// Messages stored under a transaction reference, in every account.
    async fn messages_by_reference(&self, reference: &str) -> Result<Vec<MessageInfo>>;
}
