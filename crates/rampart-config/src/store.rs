//! `[store]`: which storage backend holds mail and metadata.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::Encryption;
use crate::section::Problems;

section! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Store {
        /// "sqlite": the embedded store, no external database needed. "postgres": a PostgreSQL
        /// database shared by several nodes (`url`, `pool_size`, `ca_file`; each node named by
        /// `[cluster] node_id`); copy an embedded store into it with `rampart store migrate --to
        /// postgres --url URL`, or start a node on it with `rampart init --store-url URL`.
        /// Encryption at rest, backups and per-user encryption need "sqlite" (for now).
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
        /// backend = "postgres": the database, as a URL (`postgres://rampart@db.example.org/rampart`)
        /// or `key=value` words (`host=... dbname=... user=...`). `sslmode=require` in it makes
        /// TLS mandatory; the default (`prefer`) uses TLS when the server offers it.
        pub url: String = String::new(),
        /// backend = "postgres": connections each node keeps open at most.
        pub pool_size: u32 = 16,
        /// backend = "postgres": the CA certificates (PEM) the database's TLS certificate must
        /// chain to. Empty: the system's trusted roots. Relative to the config file's directory.
        pub ca_file: PathBuf = PathBuf::new(),
    }
}

impl Store {
    pub(crate) fn validate(&self, p: &mut Problems) {
        if self.backend != StoreBackend::Postgres {
            return;
        }
        if self.encryption.mode != crate::EncryptionMode::Off {
            p.add(
                "store.encryption.mode",
                "encryption at rest is not available with backend = \"postgres\" (yet): set it to \"off\"".to_string(),
            );
        }
        if self.url.is_empty() {
            p.add("store.url", "backend = \"postgres\" needs the database's URL".to_string());
        }
        p.at_least_one("store.pool_size", u64::from(self.pool_size));
        if !self.ca_file.as_os_str().is_empty() {
            p.file_exists("store.ca_file", &self.ca_file);
        }
    }

    pub(crate) fn resolve_paths(&mut self, fix: impl Fn(&mut PathBuf)) {
        if !self.ca_file.as_os_str().is_empty() {
            fix(&mut self.ca_file);
        }
    }
}

/// The storage backends this build knows. Deserializing any other name fails with
/// `store.backend: unknown variant ..., expected `sqlite` or `postgres``, so a config that asks
/// for a backend that does not exist is refused at start instead of silently using SQLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// SQLite in WAL mode under `server.data_dir`, message bodies as files beside it.
    Sqlite,
    /// PostgreSQL at `store.url`, shared by several nodes (issue 18).
    Postgres,
}
