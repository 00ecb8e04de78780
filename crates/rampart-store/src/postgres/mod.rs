//! The PostgreSQL backend (issue 18), in progress: several Rampart nodes sharing one database.
//!
//! - [`PgStore`] holds a pool of connections (deadpool-postgres over tokio-postgres); every
//!   call takes one, and a call that writes more than one statement does it in one
//!   transaction, so a node that dies mid-call leaves nothing half done.
//! - The schema is versioned ([`schema`]): `schema_migrations`, applied under an advisory lock.
//! - TLS to the database follows the URL's `sslmode` (`prefer` by default, `require`,
//!   `disable`), with the workspace's rustls; the server is verified against `ca_file` when
//!   one is given, else against the system's roots.
//! - Message bodies will live in the database as `bytea` chunks (`blob_chunks`, 256 KiB each),
//!   not large objects: chunks are ordinary rows, so they are dumped, replicated and deleted
//!   with their blob row (`ON DELETE CASCADE`; large objects need `lo_unlink` or `vacuumlo`
//!   and escape per-table backups), a body streams in and out a chunk at a time instead of
//!   being one value built whole in memory (a `bytea` value is read and written whole), and a
//!   partial FETCH reads only the chunks it needs.
//! - Writes that must not interleave take a row lock on what they check: an account or alias
//!   is added while holding its domain's row (`FOR UPDATE`), so a concurrent add of the same
//!   address as the other kind, or a domain removal, waits; demoting or removing an
//!   administrator holds an advisory lock so that two nodes cannot each remove "the other"
//!   last admin. UIDs and MODSEQs (the message path, still to come) will be allocated
//!   under the mailbox row's lock (`SELECT … FOR UPDATE` of `uidnext`/`highestmodseq`), so
//!   concurrent APPENDs on several nodes get distinct, ascending UIDs in commit order.
//!
//! Implemented roles so far: [`crate::DirectoryStore`] (`directory`), [`crate::GuardStore`]
//! (`guard`), [`crate::QuotaStore`] (`quota`, with the counting a submission's delivery will
//! do), [`crate::ContainmentStore`] (`containment`), [`crate::SenderAuthStore`] (`senderauth`),
//! [`crate::TlsPolicyStore`] (`tlspolicy`), [`crate::FilterStore`] (`filter`), [`crate::PgpStore`] (`pgp`),
//! [`crate::MetadataStore`] (`metadata`), [`crate::WebStore`] (`web`),
//! [`crate::CertificateStore`] (`certs`: one node orders each ACME certificate). [`PgStore`] is not yet a [`crate::Store`]; the server refuses
//! `backend = "postgres"` until it is.

mod certs;
mod containment;
mod directory;
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
mod tests;

use std::path::Path;
use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio_postgres::error::SqlState;

use crate::{DbError, Result, StoreError};

/// The PostgreSQL store; cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
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
    pub async fn open(url: &str, pool_size: usize, ca_file: Option<&Path>) -> Result<PgStore> {
        let config: tokio_postgres::Config = url.parse().map_err(|e| StoreError::Db(DbError::new(e, false)))?;
        let tls = tls_connector(ca_file)?;
        let manager = Manager::from_config(config, tls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .build()
            .map_err(|e| StoreError::Db(DbError::new(e, false)))?;
        let store = PgStore { pool };
        schema::migrate(&mut store.conn().await?).await?;
        Ok(store)
    }

    /// A connection from the pool.
    pub(crate) async fn conn(&self) -> Result<Object> {
        self.pool.get().await.map_err(|e| match e {
            deadpool_postgres::PoolError::Backend(e) => e.into(),
            other => StoreError::Db(DbError::new(other, true)),
        })
    }
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

/// Drops `count` references to each blob; a blob nobody holds any more (no message, queue
/// entry or quarantine) goes, with its chunks (`ON DELETE CASCADE`) and its summary.
pub(crate) async fn release_blobs(txn: &deadpool_postgres::Transaction<'_>, blobs: &[(String, i64)]) -> Result<()> {
    for (id, count) in blobs {
        let left: i64 =
            txn.query_one("UPDATE blobs SET refcount = refcount - $2 WHERE id = $1 RETURNING refcount", &[id, count]).await?.get(0);
        if left <= 0 {
            txn.execute("DELETE FROM summaries WHERE blob_id = $1", &[id]).await?;
            txn.execute("DELETE FROM blobs WHERE id = $1", &[id]).await?;
        }
    }
    Ok(())
}

pub(crate) fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// Counts a submission at `at` as delivery will, for the role tests (see `sqlite`'s twin).
#[cfg(test)]
impl PgStore {
    pub(crate) async fn record_submitted(&self, s: crate::quota::Submitted, at: i64) -> Result<()> {
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        quota::record(&txn, &s, at).await?;
        txn.commit().await?;
        Ok(())
    }
}
