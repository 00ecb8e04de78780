//! `rampart store migrate --to postgres`: an embedded SQLite store copied into a PostgreSQL
//! database, at the SQL level, resumable, then verified.
//!
//! - PostgreSQL's migration 1 mirrors SQLite's final schema, so the copy goes table by table
//!   ([`TABLES`], parents before children), with explicit column lists (each PostgreSQL
//!   column, read from its catalog, taken from the SQLite column of the same name; one that
//!   SQLite lacks must have a default), rows in primary-key order, in batches of one
//!   transaction each.
//! - Message bodies: each `blobs` row with its body, read through the embedded store (inline,
//!   file, compressed) and written as it was received into `blob_chunks`, 256 KiB a chunk
//!   ([`crate::codec::CHUNK`]), `codec` 0: PostgreSQL compresses large values itself (TOAST),
//!   and a range of a message is then the chunks that hold it.
//! - Resumable: `sqlite_import` in the destination holds the rows copied of each table,
//!   updated in the same transaction as each batch, so after a kill a second run skips what
//!   was committed and goes on (rows are also inserted `ON CONFLICT DO NOTHING`). A database
//!   that holds data but no such record is refused: it is not an earlier run of this copy.
//! - Verified ([`verify`]): row counts of every table, and the SHA-256 of every body as
//!   SQLite gives it against that of its chunks in PostgreSQL.
//! - Refused: a store encrypted at rest (server key or per-user keys): the PostgreSQL store
//!   has no encryption at rest yet, and copying would leave the mail readable. And a store
//!   with a running server: the copy reads the files as they are (one SQLite read
//!   transaction per table), which only a stopped server keeps consistent across tables and
//!   blob files.
//! - Identity columns continue after the highest copied id (`setval`), so new rows do not
//!   collide with copied ones.

mod copy;
mod verify;

use std::path::{Path, PathBuf};

use crate::{PgStore, Result, StoreError};

/// The tables of PostgreSQL migration 1 in an order where every referenced row is copied
/// before the rows referring to it; [`BLOBS`] (with their chunks) is copied in its place.
pub(crate) const TABLES: &[&str] = &[
    "domains",
    "accounts",
    "aliases",
    "app_passwords",
    "mailboxes",
    "uidvalidity_seq",
    "subscriptions",
    BLOBS,
    "summaries",
    "summary_headers",
    "summary_fetch",
    "messages",
    "expunged",
    "metadata",
    "queue",
    "queue_rcpts",
    "bans",
    "known_logins",
    "login_history",
    "state",
    "dkim_keys",
    "dmarc_evaluations",
    "dmarc_reports",
    "bayes_tokens",
    "bayes_totals",
    "bayes_seen",
    "greylist",
    "greylist_clients",
    "greylist_domains",
    "quarantine",
    "quarantine_rcpts",
    "quota_counts",
    "quota_rcpts",
    "quota_seen",
    "quota_overrides",
    "quota_exempt",
    "account_signals",
    "sending_state",
    "sent_rcpts",
    "totp",
    "recovery_codes",
    "web_sessions",
    "stats_hourly",
    "api_tokens",
    "certificates",
    "cert_assignments",
    "cert_version",
    "acme_accounts",
    "acme_requests",
    "mta_sts_policies",
    "tls_outcomes",
    "tls_reports",
    "pgp_keys",
];

pub(crate) const BLOBS: &str = "blobs";

/// Tables a PostgreSQL migration fills with a first row, replaced by SQLite's rows.
const PREFILLED: &[&str] = &["cert_version"];

/// What the copy is doing, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub enum MigrateProgress {
    /// Rows of `table` copied so far, of `total`.
    Table { table: &'static str, done: u64, total: u64 },
    /// Message bodies copied so far (with `bytes`), of `total`.
    Blobs { done: u64, total: u64, bytes: u64 },
    /// Message bodies whose checksums were compared, of `total`.
    Verify { done: u64, total: u64 },
}

/// One table's rows on each side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCount {
    pub table: &'static str,
    pub source: i64,
    pub destination: i64,
}

/// What the verification found.
#[derive(Debug, Clone, Default)]
pub struct MigrateReport {
    pub tables: Vec<TableCount>,
    /// Bodies compared by SHA-256.
    pub blobs_checked: u64,
    /// Bodies whose checksum differs (or that are missing), by id.
    pub blob_mismatches: Vec<String>,
}

impl MigrateReport {
    /// Every count equal and every body the same.
    pub fn ok(&self) -> bool {
        self.blob_mismatches.is_empty() && self.tables.iter().all(|t| t.source == t.destination)
    }
}

/// Why a store is not copied.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub(crate) type Progress<'a> = &'a (dyn Fn(MigrateProgress) + Send + Sync);

/// Copies the embedded store in `data_dir` into `pg` (migrated to the current schema by its
/// `open`), resuming an earlier run that stopped, then verifies the copy.
pub async fn migrate_sqlite_to_postgres(
    data_dir: &Path,
    pg: &PgStore,
    progress: Progress<'_>,
) -> std::result::Result<MigrateReport, MigrateError> {
    let db = check_source(data_dir)?;
    // The source's schema brought up to date (the destination mirrors the final one).
    drop(crate::SqliteStore::open_with_keys(data_dir, None)?);
    refuse_encrypted_rows(&db)?;
    prepare_destination(pg).await?;
    let root = data_dir.join("blobs");
    for &table in TABLES {
        if table == BLOBS {
            copy::blobs(pg, &db, &root, progress).await?;
        } else {
            copy::table(pg, &db, table, PREFILLED.contains(&table), progress).await?;
        }
    }
    copy::reset_identities(pg).await?;
    copy::words_unknown(pg).await?;
    Ok(verify::verify(pg, &db, &root, progress).await?)
}

/// The database file, after the checks that need nothing opened: no running server, no
/// server-key encryption.
fn check_source(data_dir: &Path) -> std::result::Result<PathBuf, MigrateError> {
    let db = data_dir.join("rampart.db");
    if !db.exists() {
        return Err(MigrateError::Refused(format!("no embedded store in {} (no rampart.db)", data_dir.display())));
    }
    if let Some(pid) = crate::running_server(data_dir)? {
        return Err(MigrateError::Refused(format!(
            "`rampart serve` (pid {pid}) is using the store in {}: stop it first, the copy needs the store unchanged",
            data_dir.display()
        )));
    }
    if data_dir.join(crate::storekey::FILE).exists() {
        return Err(MigrateError::Refused(
            "the store is encrypted at rest with a server key ([store.encryption] mode = \"server\"); the PostgreSQL store has no encryption at rest yet, so it is not copied".into(),
        ));
    }
    Ok(db)
}

/// Per-user encryption leaves sealed bodies and user keys: refused like the server key.
fn refuse_encrypted_rows(db: &Path) -> std::result::Result<(), MigrateError> {
    let conn = crate::sqlite::open_connection(db, None)?;
    let sealed: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM blobs WHERE dkey IS NOT NULL OR owner IS NOT NULL) OR EXISTS (SELECT 1 FROM user_keys)",
            [],
            |r| r.get(0),
        )
        .map_err(StoreError::from)?;
    if sealed {
        return Err(MigrateError::Refused(
            "the store holds mail encrypted at rest (per-user keys or sealed message files); the PostgreSQL store has no encryption at rest yet, so it is not copied".into(),
        ));
    }
    Ok(())
}

/// Creates the progress table; refuses a database with data that no earlier run of this
/// copy wrote.
async fn prepare_destination(pg: &PgStore) -> std::result::Result<(), MigrateError> {
    let conn = pg.conn().await?;
    conn.batch_execute(
        "CREATE TABLE IF NOT EXISTS sqlite_import (tbl text PRIMARY KEY, copied bigint NOT NULL DEFAULT 0, done boolean NOT NULL DEFAULT false)",
    )
    .await
    .map_err(StoreError::from)?;
    let resumed: bool = conn.query_one("SELECT EXISTS (SELECT 1 FROM sqlite_import)", &[]).await.map_err(StoreError::from)?.get(0);
    let used: bool = conn
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM domains) OR EXISTS (SELECT 1 FROM accounts) OR EXISTS (SELECT 1 FROM blobs) \
             OR EXISTS (SELECT 1 FROM queue)",
            &[],
        )
        .await
        .map_err(StoreError::from)?
        .get(0);
    if used && !resumed {
        return Err(MigrateError::Refused(
            "the PostgreSQL database already holds mail data that no `rampart store migrate` wrote: give an empty database".into(),
        ));
    }
    Ok(())
}

/// Rows of `table` copied by earlier runs, and whether it is complete.
async fn copied(pg: &PgStore, table: &str) -> Result<(u64, bool)> {
    let row = pg.conn().await?.query_opt("SELECT copied, done FROM sqlite_import WHERE tbl = $1", &[&table]).await?;
    Ok(row.map_or((0, false), |r| (r.get::<_, i64>(0) as u64, r.get(1))))
}

#[cfg(test)]
mod tests;
