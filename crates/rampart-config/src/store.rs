//! `[store]`: which storage backend holds mail and metadata.

use serde::{Deserialize, Serialize};

use crate::Encryption;

section! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Store {
        /// "sqlite": the embedded store, no external database needed. The only backend so far;
        /// any other value is refused.
        pub backend: StoreBackend = StoreBackend::Sqlite,
        /// Encryption at rest of the stored mail (issue 16: server-key mode).
        pub encryption: Encryption = Encryption::default(),
        /// Bytes of memory for IMAP's per-mailbox columns of SORT keys and searched header
        /// values (a few hundred bytes a message: 256 MiB holds several mailboxes of 100,000
        /// messages), shared by
        /// every session on a mailbox, so SORT and header SEARCH on a large mailbox take
        /// milliseconds; the least recently used mailboxes are dropped past it. Kept in memory
        /// only (never written to disk, also with encryption at rest); 0 turns it off (every
        /// SORT and SEARCH then reads the store).
        pub imap_column_cache: u64 = 256 * 1024 * 1024,
    }
}

/// The storage backends this build has. Deserializing any other name fails with
/// `store.backend: unknown variant ..., expected `sqlite``, so a config that asks for a backend
/// that does not exist yet is refused at start instead of silently using SQLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// SQLite in WAL mode under `server.data_dir`, message bodies as files beside it.
    Sqlite,
}
