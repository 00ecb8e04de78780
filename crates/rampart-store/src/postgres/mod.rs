//! The PostgreSQL backend (issue 18): several Rampart nodes sharing one database.
//!
//! - [`PgStore`] holds a pool of connections (deadpool-postgres over tokio-postgres); every
//!   call takes one, and a call that writes more than one statement does it in one
//!   transaction, so a node that dies mid-call leaves nothing half done.
//! - The schema is versioned ([`schema`]): `schema_migrations`, applied under an advisory lock.
//! - TLS to the database follows the URL's `sslmode` (`prefer` by default, `require`,
//!   `disable`), with the workspace's rustls; the server is verified against `ca_file` when
//!   one is given, else against the system's roots.
//! - Message bodies live in the database as `bytea` chunks (`blob_chunks`, 256 KiB each),
//!   not large objects: chunks are ordinary rows, so they are dumped, replicated and deleted
//!   with their blob row (`ON DELETE CASCADE`; large objects need `lo_unlink` or `vacuumlo`
//!   and escape per-table backups), a body streams in and out a chunk at a time instead of
//!   being one value built whole in memory (a `bytea` value is read and written whole), and a
//!   partial FETCH reads only the chunks it needs. A body streams into a local spool file
//!   first and the delivery copies it in, in its own transaction ([`blobs`]).
//! - Writes that must not interleave take a row lock on what they check: an account or alias
//!   is added while holding its domain's row (`FOR UPDATE`), so a concurrent add of the same
//!   address as the other kind, or a domain removal, waits; demoting or removing an
//!   administrator holds an advisory lock so that two nodes cannot each remove "the other"
//!   last admin. UIDs and MODSEQs are allocated under the mailbox row's lock ([`mailbox`]), so
//!   concurrent APPENDs on several nodes get distinct, ascending UIDs in commit order.
//! - Deliveries of one node share transactions ([`batch`], as SQLite's writer batches them):
//!   one COMMIT, after which each gets its `250`, serves every delivery waiting, each in a
//!   SAVEPOINT of its own so that one failing is rolled back alone.
//! - Several nodes: each writing transaction NOTIFYs the mailboxes it changed and a LISTEN
//!   connection fires the watches of every node ([`listen`]); the queue is leased per
//!   recipient (`FOR UPDATE SKIP LOCKED`, expiring leases, [`queue`]).
//!
//! Implemented roles: [`crate::DirectoryStore`] (`directory`), [`crate::GuardStore`]
//! (`guard`), [`crate::QuotaStore`] (`quota`), [`crate::ContainmentStore`] (`containment`),
//! [`crate::SenderAuthStore`] (`senderauth`), [`crate::TlsPolicyStore`] (`tlspolicy`),
//! [`crate::FilterStore`] (`filter`), [`crate::PgpStore`] (`pgp`), [`crate::MetadataStore`]
//! (`metadata`), [`crate::DeliveryStore`] (`delivery`), [`crate::MessageStore`] (`messages`),
//! [`crate::MailStore`] (`imap`, with the word index in `summaries`), [`crate::QueueStore`]
//! (`queue`), [`crate::QuarantineStore`] (`quarantine`), [`crate::WebStore`] (`web`),
//! [`crate::CertificateStore`] (`certs`: one node orders each ACME certificate) and
//! [`crate::UserKeyStore`] (its defaults: per-user encryption is not supported here).
//! Users with an OpenPGP key get encrypted copies at delivery and release (`pgp_delivery`).

mod batch;
pub(crate) mod blobs;
mod certs;
mod containment;
mod delivery;
mod directory;
mod imap;
mod listen;
mod messages;
mod pgp_delivery;
mod quarantine;
mod queue;
mod summaries;
mod filter;
mod guard;
pub(crate) mod mailbox;
pub mod migrate;
mod metadata;
pub(crate) mod pgp;
pub(crate) mod quota;
mod senderauth;
mod tlspolicy;
mod web;
pub(crate) mod schema;
#[cfg(test)]
pub(crate) mod testdb;
#[cfg(test)]
mod node_tests;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::error::SqlState;

use crate::notify::Notifier;
use crate::summary::{Summarizer, Summary};
use crate::{DbError, Result, StoreError};

/// The PostgreSQL store; cheap to clone (the pool and the rest are shared).
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    shared: Arc<Shared>,
}

/// What the clones of one store share besides the pool.
struct Shared {
    /// Where message bodies are spooled while they stream in ([`blobs`]).
    spool: PathBuf,
    /// The watches of mailboxes, fired by this node's commits and by other nodes' through
    /// the LISTEN connection ([`listen`]).
    notifier: Arc<Notifier>,
    /// Makes the summary of each message stored (`set_summarizer`).
    summarizer: OnceLock<Arc<dyn Summarizer>>,
    /// This store's name as the holder of queue leases ([`queue`]): `cluster.node_id` once
    /// the server sets it, and a random suffix unique per open store.
    node: std::sync::RwLock<String>,
    suffix: String,
    /// Seconds a queue lease lasts ([`queue::LEASE`] unless set).
    lease: std::sync::atomic::AtomicI64,
    /// Ends the LISTEN task when the last clone goes.
    _listener: listen::Guard,
    /// Runs this node's deliveries in shared transactions ([`batch`]); its task ends when the
    /// last clone goes.
    batcher: batch::Batcher,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("pool", &self.pool.status()).finish()
    }
}

impl PgStore {
    /// Connects to `url` (a `postgres://` URL or a `key=value` string) with at most
    /// `pool_size` connections and brings the schema up to date. `ca_file`: PEM certificates
    /// that the database's TLS certificate must chain to.
    /// `spool`: a local directory where message bodies wait while they stream in, before
    /// the delivery copies them into the database (its `tmp` is made if missing).
    pub async fn open(url: &str, pool_size: usize, ca_file: Option<&Path>, spool: &Path) -> Result<PgStore> {
        let config: tokio_postgres::Config = url.parse().map_err(|e| StoreError::Db(DbError::new(e, false)))?;
        let tls = tls_connector(ca_file)?;
        let manager = Manager::from_config(config.clone(), tls.clone(), ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .build()
            .map_err(|e| StoreError::Db(DbError::new(e, false)))?;
        blobs::prepare_spool(spool)?;
        let notifier = Arc::new(Notifier::default());
        let listener = listen::start(config, tls, notifier.clone());
        let batcher = batch::Batcher::start(pool.clone(), notifier.clone());
        let suffix = format!("{:08x}", rand::random::<u32>());
        let shared = Shared {
            spool: spool.to_path_buf(),
            notifier,
            summarizer: OnceLock::new(),
            node: std::sync::RwLock::new(suffix.clone()),
            suffix,
            lease: queue::LEASE.into(),
            _listener: listener,
            batcher,
        };
        let store = PgStore { pool, shared: Arc::new(shared) };
        schema::migrate(&mut store.conn().await?).await?;
        Ok(store)
    }

    /// Gives the store the summarizer of the messages it stores from now on (the server sets
    /// IMAP's); without one, messages are stored without a summary and IMAP makes it later.
    pub fn set_summarizer(&self, summarizer: Arc<dyn Summarizer>) {
        let _ = self.shared.summarizer.set(summarizer);
    }

    /// Names this node's queue leases after `node_id` (`cluster.node_id`).
    pub fn set_node_id(&self, node_id: &str) {
        *self.shared.node.write().expect("node lock") = format!("{node_id}/{}", self.shared.suffix);
    }

    /// What this store writes as `lease_owner`.
    pub(crate) fn lease_owner(&self) -> String {
        self.shared.node.read().expect("node lock").clone()
    }

    /// How long a node holds a queue recipient it took before another node may take it.
    pub fn set_queue_lease(&self, lease: std::time::Duration) {
        self.shared.lease.store(lease.as_secs().max(1) as i64, std::sync::atomic::Ordering::Relaxed);
    }

    /// The summary of a message about to be stored (prefix and body), made on the blocking
    /// pool; None without a summarizer or when the body cannot be read back.
    pub(crate) async fn summarize(&self, prefix: &[u8], blob: &crate::Blob) -> Option<Summary> {
        let summarizer = self.shared.summarizer.get()?.clone();
        let body = blob.contents().await.ok()?;
        let message = crate::sqlite::joined(prefix, &body);
        tokio::task::spawn_blocking(move || summarizer.summarize(&message)).await.ok()
    }

    /// A connection from the pool.
    pub(crate) async fn conn(&self) -> Result<Object> {
        pooled(&self.pool).await
    }
}

/// A connection from `pool`; a pool that cannot give one (timeout, closed) is a transient
/// error, as a database that refuses one is.
pub(super) async fn pooled(pool: &Pool) -> Result<Object> {
    pool.get().await.map_err(|e| match e {
        deadpool_postgres::PoolError::Backend(e) => e.into(),
        other => StoreError::Db(DbError::new(other, true)),
    })
}

fn tls_connector(ca_file: Option<&Path>) -> Result<tokio_postgres_rustls::MakeRustlsConnect> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| StoreError::io(path, std::io::Error::other(e.to_string())))?;
            if certs.is_empty() {
                return Err(StoreError::io(path, std::io::Error::other("no PEM certificate in the file")));
            }
            roots.add_parsable_certificates(certs);
        }
        None => {
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Db(DbError::new(e, false)))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        // Lost connections, serialization failures and deadlocks, too many connections, a
        // server shutting down: the same request may succeed on a retry.
        let transient = e.is_closed()
            || match e.code() {
                // No SQLSTATE: an I/O error is the connection's; anything else (a type
                // conversion) is a bug.
                None => std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>()),
                Some(code) => {
                    let c = code.code();
                    c.starts_with("08") || c.starts_with("53") || c.starts_with("57P") || c.starts_with("40")
                }
            };
        StoreError::Db(DbError::new(e, transient))
    }
}

impl crate::UserKeyStore for PgStore {}

/// How long a body nobody holds stays readable before [`purge_released`] deletes it: far
/// longer than any FETCH of it takes.
pub(crate) const RELEASED_GRACE: i64 = 3600;

/// Drops `count` references to each blob. A blob nobody holds any more (no message, queue
/// entry or quarantine) loses its summary (and with it the summary's words, `ON DELETE
/// CASCADE`) at once and is marked `released`: its chunks stay for [`RELEASED_GRACE`], because a
/// session on this or another node may be reading it chunk by chunk (SQLite's open file does
/// the same for a reader there).
pub(crate) async fn release_blobs(txn: &deadpool_postgres::Transaction<'_>, blobs: &[(String, i64)]) -> Result<()> {
    for (id, count) in blobs {
        let left: i64 =
            txn.query_one("UPDATE blobs SET refcount = refcount - $2 WHERE id = $1 RETURNING refcount", &[id, count]).await?.get(0);
        if left <= 0 {
            txn.execute("DELETE FROM summaries WHERE blob_id = $1", &[id]).await?;
            txn.execute("UPDATE blobs SET released = $2 WHERE id = $1", &[id, &crate::sqlite::now()]).await?;
        }
    }
    Ok(())
}

/// Deletes the bodies released before `before`, with their chunks; returns how many.
pub(crate) async fn purge_released(client: &impl deadpool_postgres::GenericClient, before: i64) -> Result<u64> {
    Ok(client.execute("DELETE FROM blobs WHERE released < $1 AND refcount <= 0", &[&before]).await?)
}

pub(crate) fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// Counts a submission at `at` as delivery will, for the role tests (see `sqlite`'s twin).
#[cfg(test)]
impl PgStore {
    /// The spool directory, for tests that look into it.
    pub(crate) fn spool(&self) -> &Path {
        &self.shared.spool
    }

    pub(crate) async fn record_submitted(&self, s: crate::quota::Submitted, at: i64) -> Result<()> {
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        quota::record(&txn, &s, at).await?;
        txn.commit().await?;
        Ok(())
    }
}
