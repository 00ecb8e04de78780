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

/// The secrets kept for an account's password, one per mechanism family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    /// argon2id PHC string: what PLAIN, LOGIN and IMAP LOGIN check against.
    pub password_hash: String,
    /// SCRAM-SHA-256 keys (RFC 5802 §3: salt, iterations, StoredKey, ServerKey), encoded by
    /// rampart-auth. They do not reveal the password, but allow no other mechanism.
    pub scram_sha256: Option<String>,
    /// Only when CRAM-MD5 is enabled: a password-equivalent secret.
    pub cram_secret: Option<String>,
}

/// What authenticating an account needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub account: Account,
    pub scram_sha256: Option<String>,
    pub cram_secret: Option<String>,
    pub app_passwords: Vec<AppPassword>,
}

/// A password for one mail client, usable instead of the account password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPassword {
    pub id: i64,
    pub name: String,
    /// argon2id PHC string.
    pub hash: String,
    pub created: i64,
    pub last_used: Option<i64>,
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

    fn parse(s: &str) -> RcptState {
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

/// A DKIM key in the signing table.
#[derive(Clone, PartialEq, Eq)]
pub struct DkimKey {
    pub domain: String,
    pub selector: String,
    /// "rsa" or "ed25519".
    pub algorithm: String,
    /// PKCS#1 DER (RSA) or PKCS#8 DER (Ed25519).
    pub private_key: Vec<u8>,
    /// What the DNS record's `p=` carries.
    pub public_key: Vec<u8>,
    /// Mail is signed with the active key of each algorithm; inactive keys stay published.
    pub active: bool,
    pub created: i64,
}

impl std::fmt::Debug for DkimKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DkimKey({}._domainkey.{} {} active={})", self.selector, self.domain, self.algorithm, self.active)
    }
}

/// A DMARC aggregate report another domain sent us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DmarcReport {
    pub org_name: String,
    pub report_id: String,
    pub domain: String,
    pub date_begin: i64,
    pub date_end: i64,
    pub messages: i64,
    pub passed: i64,
    pub records: String,
    pub received: i64,
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
    async fn add_account_with(&self, address: &str, secrets: &Secrets) -> Result<AccountId>;
    /// [`Store::add_account_with`] with only a password hash.
    async fn add_account(&self, address: &str, password_hash: &str) -> Result<AccountId> {
        self.add_account_with(address, &Secrets { password_hash: password_hash.into(), ..Secrets::default() }).await
    }
    /// Removes the account, its mailboxes and messages.
    async fn remove_account(&self, address: &str) -> Result<()>;
    /// Replaces all password secrets at once, so no mechanism keeps an old password.
    async fn set_secrets(&self, address: &str, secrets: &Secrets) -> Result<()>;
    async fn set_password(&self, address: &str, password_hash: &str) -> Result<()> {
        self.set_secrets(address, &Secrets { password_hash: password_hash.into(), ..Secrets::default() }).await
    }
    async fn credentials(&self, address: &str) -> Result<Option<Credentials>>;
    async fn add_app_password(&self, address: &str, name: &str, hash: &str) -> Result<()>;
    async fn list_app_passwords(&self, address: &str) -> Result<Vec<AppPassword>>;
    async fn revoke_app_password(&self, address: &str, name: &str) -> Result<()>;
    /// Records that an app password was just used.
    async fn touch_app_password(&self, id: i64) -> Result<()>;
    /// Alias addresses that deliver directly to `address`.
    async fn aliases_of(&self, address: &str) -> Result<Vec<String>>;
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

    /// Queue entries with recipients due at `now`, each listing only those recipients.
    async fn queue_due(&self, now: i64, limit: usize) -> Result<Vec<QueueEntry>>;
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

    /// Adds a key to the signing table. It becomes active when its domain has no active key of
    /// the same algorithm; otherwise it waits for [`Store::activate_dkim_key`] (rotation:
    /// publish the new record first). Returns whether it is active.
    async fn add_dkim_key(&self, key: DkimKey) -> Result<bool>;
    /// Keys of one domain, or of all domains, by domain and creation.
    async fn dkim_keys(&self, domain: Option<&str>) -> Result<Vec<DkimKey>>;
    /// Signs with this key from now on; the domain's other key of its algorithm stops signing
    /// but stays in the table (and in `dns records`) so mail already signed still verifies.
    async fn activate_dkim_key(&self, domain: &str, selector: &str) -> Result<()>;
    async fn remove_dkim_key(&self, domain: &str, selector: &str) -> Result<()>;

    /// Remembers a DMARC evaluation (JSON) for the next aggregate report about `domain`.
    async fn add_dmarc_evaluation(&self, domain: &str, evaluation: &str) -> Result<()>;
    /// Evaluations stored before `until` (unix seconds): (domain, JSON, time).
    async fn dmarc_evaluations(&self, until: i64) -> Result<Vec<(String, String, i64)>>;
    async fn delete_dmarc_evaluations(&self, until: i64) -> Result<()>;
    /// Forgets the evaluations of one domain stored before `until`: those a report run sent
    /// (or had nobody to send to); other domains' wait for the next run.
    async fn delete_dmarc_evaluations_of(&self, domain: &str, until: i64) -> Result<()>;
    /// Stores a received report; one already stored (same organization and id) is ignored.
    async fn add_dmarc_report(&self, report: DmarcReport) -> Result<bool>;
    async fn dmarc_reports(&self) -> Result<Vec<DmarcReport>>;

    /// Small server state that must survive restarts (the last report run).
    async fn state(&self, key: &str) -> Result<Option<String>>;
    async fn set_state(&self, key: &str, value: &str) -> Result<()>;
    /// Every ban row, active or expired.
    async fn bans(&self) -> Result<Vec<Ban>>;
    /// Inserts or replaces the ban for `ban.net`.
    async fn ban_put(&self, ban: &Ban) -> Result<()>;
    /// Forgets a ban and its history; false when there was none.
    async fn ban_remove(&self, net: &str) -> Result<bool>;
    /// Removes expired bans last updated before `before` (their offences are forgiven).
    async fn bans_prune(&self, before: i64) -> Result<()>;
    /// Records a successful login of `account` from `net`.
    async fn known_login_put(&self, account: &str, net: &str, now: i64) -> Result<()>;
    /// Networks `account` logged in from since `since`.
    async fn known_logins(&self, account: &str, since: i64) -> Result<Vec<String>>;
}
