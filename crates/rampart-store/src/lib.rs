//! Rampart's storage.
//!
//! - What the rest of the server sees is a set of role traits, one per kind of caller; each
//!   backend implements all of them, and [`Store`] bundles them (`Arc<dyn Store>`):
//!   - [`DirectoryStore`]: domains, accounts, credentials, aliases, resolving an address;
//!   - [`DeliveryStore`]: blob writers and durable delivery (local copies + queue);
//!   - [`MessageStore`]: reading mailboxes and messages;
//!   - [`QueueStore`]: the outbound queue;
//!   - [`GuardStore`]: bans, known logins, small server state;
//!   - [`SenderAuthStore`]: DKIM keys, DMARC evaluations and reports;
//!   - [`FilterStore`]: the classifier's token counts and greylisting's memory;
//!   - [`QuarantineStore`]: messages held instead of delivered;
//!   - [`QuotaStore`]: what users and domains sent (sending quotas), overrides, exceptions;
//!   - [`ContainmentStore`]: signals of a taken-over account, suspensions, held queued mail;
//!   - [`CertificateStore`]: certificates and their keys, where each is used, ACME accounts;
//!   - [`WebStore`]: account roles, TOTP and recovery codes, web sessions, API tokens;
//!   - [`TlsPolicyStore`]: cached MTA-STS policies, outbound TLS outcomes, TLS reports;
//!   - [`PgpStore`] ([`pgp`]): users' OpenPGP keys; delivery encrypts their mail to them;
//!   - [`UserKeyStore`] ([`userkey`]): per-user encryption keys, unlocked by logins;
//!   - [`MailStore`] ([`mail`]): what IMAP needs on top — mailbox management, flags with
//!     MODSEQ, expunge, copy/move, append, change notification ([`notify`]), and METADATA
//!     annotations ([`metadata`]).
//!
//!   `use rampart_store::prelude::*` brings them all into scope.
//! - [`SqliteStore`] is the embedded backend (SQLite in WAL mode); SQL lives only there.
//! - Message bodies are blob files ([`blob`]): written while the message streams in, fsynced,
//!   then referenced by index rows in one transaction. A message counts as stored only once
//!   both are durable; callers acknowledge it (SMTP `250`) after
//!   [`DeliveryStore::deliver`] returns.
//! - All writes go through one writer thread that commits whatever is queued in one
//!   transaction (group commit), so concurrent deliveries share fsyncs.
//! - Errors are typed ([`StoreError`]); [`ErrorKind`] says which of them a client may hear.
//! - Bodies are compressed at rest (zstd, `codec`); what callers read is the message as
//!   received.
//! - Encryption at rest (`[store.encryption] mode = "server"`): the database is SQLCipher,
//!   message files are sealed per chunk with per-message data keys wrapped by the master key
//!   ([`keys`], [`storekey`], `seal`, `sqlite::encryption`); `rampart store encrypt` and
//!   `rampart keys rotate` are [`encrypt_store`] and [`rotate_keys`].
//! - A [`Summary`] of each message (sort keys, searched headers, ENVELOPE/BODYSTRUCTURE,
//!   the words of a full-text index) is kept per blob, made by the [`Summarizer`] the server
//!   provides ([`summary`]).
//! - [`address`] holds the canonical form of mail addresses that every layer agrees on.

#![forbid(unsafe_code)]

pub mod address;
pub mod blob;
pub mod certs;
mod codec;
pub mod containment;
mod delivery;
mod directory;
mod error;
pub mod filter;
mod guard;
pub mod keys;
pub mod mail;
mod messages;
pub mod metadata;
pub mod notify;
mod sealsummary;
pub mod peruser;
pub mod pgp;
mod queue;
pub mod quarantine;
pub mod quota;
mod seal;
mod senderauth;
mod sqlite;
/// The PostgreSQL backend, in progress (issue 18): not yet every role.
mod postgres;
#[cfg(test)]
mod role_tests;
pub mod storekey;
pub mod summary;
pub mod userkey;
mod tlspolicy;
pub mod web;

pub use blob::{Blob, BlobWriter};
pub use certs::CertificateStore;
pub use containment::ContainmentStore;
pub use delivery::{Delivered, Delivery, DeliveryStore, Folder, Outbound, Target};
pub use directory::{Account, Alias, AppPassword, Credentials, DEFAULT_MAILBOXES, DirectoryStore, Resolution, Secrets};
pub use error::{AddressProblem, Chain, DbError, ErrorKind, StoreError};
pub use filter::FilterStore;
pub use guard::{Ban, GuardStore, LoginRecord};
pub use mail::{Changes, FlagOp, FlagsUpdate, MailStore, MailboxState, MessageRecord, Transfer, ViewRows};
pub use metadata::{MetadataLimits, MetadataStore, OverLimit};
pub use messages::{Mailbox, MessageInfo, MessageMeta, MessageReader, MessageStore};
pub use pgp::{NewPgpKey, PgpKey, PgpOptions, PgpStore, PlainSearch};
pub use userkey::{UserKeyStatus, UserKeyStore, Unlocked};
pub use quarantine::QuarantineStore;
pub use quota::QuotaStore;
pub use queue::{QueueEntry, QueueRcpt, QueueStore, RcptState, RcptUpdate};
pub use senderauth::{DkimKey, DmarcReport, SenderAuthStore};
pub use sqlite::SqliteStore;
pub use postgres::PgStore;
/// `rampart store migrate --to postgres`.
pub use postgres::migrate::{MigrateError, MigrateProgress, MigrateReport, TableCount, migrate_sqlite_to_postgres};
pub use sqlite::encryption::set_master_keys;
pub use sqlite::convert::{ConvertProgress, encrypt_store, rotate_keys};
pub use sqlite::rotation::running_server;
/// Online backup of the embedded store (`rampart backup`).
pub use sqlite::backup;
pub use summary::{Stored, Summarizer, Summary, Want, WordMatch};
pub use tlspolicy::{CachedStsPolicy, TlsOutcome, TlsPolicyStore, TlsReportRecord};
pub use web::{ApiToken, Role, Totp, WebAccount, WebSession, WebStore};

pub type AccountId = i64;
pub type MailboxId = i64;

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Every role: what a backend implements, and what the server holds as `Arc<dyn Store>`.
pub trait Store:
    DirectoryStore
    + DeliveryStore
    + MessageStore
    + QueueStore
    + GuardStore
    + SenderAuthStore
    + MailStore
    + FilterStore
    + QuarantineStore
    + QuotaStore
    + ContainmentStore
    + WebStore
    + CertificateStore
    + TlsPolicyStore
    + PgpStore
    + UserKeyStore
{
}

impl<T> Store for T where
    T: DirectoryStore
        + DeliveryStore
        + MessageStore
        + QueueStore
        + GuardStore
        + SenderAuthStore
        + MailStore
        + FilterStore
        + QuarantineStore
        + QuotaStore
        + ContainmentStore
        + WebStore
        + CertificateStore
        + TlsPolicyStore
    + PgpStore
    + UserKeyStore
{
}

/// The role traits, so that their methods can be called on any store.
pub mod prelude {
    pub use crate::{
        ContainmentStore, DeliveryStore, DirectoryStore, FilterStore, GuardStore, MailStore, MessageStore, QuarantineStore,
        QueueStore, QuotaStore, SenderAuthStore, Store, WebStore, CertificateStore, PgpStore,
        TlsPolicyStore, UserKeyStore,
    };
}
