//! The embedded store: SQLite in WAL mode beside a directory of blob files.
//!
//! Reads run on the blocking pool with a small pool of connections. Writes are closures sent
//! to one writer thread ([`writer`]), which runs everything queued in one transaction, each
//! job inside its own savepoint so one failure does not undo its neighbours, and commits once
//! (group commit): N concurrent deliveries cost one WAL fsync and one fsync per blob
//! directory instead of N of each.
//!
//! Each role trait is implemented in its own file: [`directory`] (with [`credentials`]),
//! [`delivery`], [`messages`], [`queue`], [`guard`], [`senderauth`], [`filter`], [`quarantine`]
//! and [`imap`].

pub mod backup;
mod credentials;
mod delivery;
mod directory;
mod filter;
mod guard;
mod imap;
mod messages;
mod orphans;
mod quarantine;
mod queue;
mod schema;
mod senderauth;
mod web;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

use crate::blob::{self, blob_path};
use crate::notify::Notifier;
use crate::{Account, AccountId, Result, StoreError};
use writer::{Effects, Writer};

/// Idle reader connections kept open.
const MAX_IDLE_READERS: usize = 8;
/// How long a statement waits for another process (a CLI command) holding the write lock.
const BUSY_TIMEOUT_MS: u64 = 10_000;

#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    db_path: PathBuf,
    blob_root: PathBuf,
    readers: Mutex<Vec<Connection>>,
    writer: Writer,
    notifier: Arc<Notifier>,
    /// Held by the server for its lifetime: one server per store.
    _lock: Option<std::fs::File>,
}

fn open_connection(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))?;
    // WAL lets readers (IMAP, the CLI) run beside the writer; synchronous=FULL makes every
    // commit fsync the WAL, which is what "acknowledged means durable" needs.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl SqliteStore {
    /// Opens (creating if needed) the store under `data_dir` and brings its schema up to date.
    /// Any number of processes may do this at once: the CLI beside a running server.
    pub fn open(data_dir: &Path) -> Result<SqliteStore> {
        Self::open_inner(data_dir, None)
    }

    /// Opens the store for the one server that may use it: takes an exclusive lock on
    /// `data_dir/rampart.lock` (`LockHeld` when another server has it), removes message files
    /// a crashed run left half-written (they were never acknowledged) and blob files no row
    /// refers to (a commit that failed before a crash). Only the lock holder may do that, since
    /// a CLI process cannot tell a dead run's file from one the live server is writing.
    pub fn open_for_server(data_dir: &Path) -> Result<SqliteStore> {
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError::io(data_dir, e))?;
        let path = data_dir.join("rampart.lock");
        let lock = std::fs::File::options().create(true).truncate(false).write(true).open(&path).map_err(|e| StoreError::io(&path, e))?;
        // flock(2): released by the kernel when the process ends, however it ends.
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(StoreError::LockHeld(data_dir.to_path_buf())),
            Err(std::fs::TryLockError::Error(e)) => return Err(StoreError::io(&path, e)),
        }
        let blob_root = data_dir.join("blobs");
        blob::clean_tmp(&blob_root)?;
        let store = Self::open_inner(data_dir, Some(lock))?;
        let reader = open_connection(&store.inner.db_path)?;
        orphans::sweep(&reader, &blob_root, now())?;
        Ok(store)
    }

    fn open_inner(data_dir: &Path, lock: Option<std::fs::File>) -> Result<SqliteStore> {
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError::io(data_dir, e))?;
        let db_path = data_dir.join("rampart.db");
        let blob_root = data_dir.join("blobs");
        blob::prepare_root(&blob_root)?;
        let mut conn = open_connection(&db_path)?;
        schema::migrate(&mut conn)?;
        let notifier = Arc::new(Notifier::default());
        let writer = Writer::start(conn, blob_root.clone(), notifier.clone())?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                db_path,
                blob_root,
                readers: Mutex::new(Vec::new()),
                writer,
                notifier,
                _lock: lock,
            }),
        })
    }

    /// Makes the next `n` write batches fail at their commit, as a full disk would, so callers
    /// can test what their clients hear. Only in test builds of callers: never in a server.
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn fail_commits(&self, n: u32) {
        self.inner.writer.fail_commits(n);
    }

    async fn read<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = inner.readers.lock().expect("reader pool lock").pop();
            let conn = match pooled {
                Some(c) => c,
                None => open_connection(&inner.db_path)?,
            };
            let result = f(&conn);
            let mut pool = inner.readers.lock().expect("reader pool lock");
            if pool.len() < MAX_IDLE_READERS {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }

    async fn write<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection, &mut Effects) -> Result<R> + Send + 'static,
    {
        self.inner.writer.run(f).await
    }
}

pub(crate) fn domain_id(conn: &Connection, domain: &str) -> Result<Option<i64>> {
    Ok(conn.query_row("SELECT id FROM domains WHERE name = ?1", [domain], |r| r.get(0)).optional()?)
}

pub(crate) fn account_id(conn: &Connection, address: &str) -> Result<Option<AccountId>> {
    Ok(conn.query_row("SELECT id FROM accounts WHERE address = ?1", [address], |r| r.get(0)).optional()?)
}

pub(crate) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

pub(crate) fn account_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Account> {
    Ok(Account { id: r.get(0)?, address: r.get(1)?, password_hash: r.get(2)?, created: r.get(3)? })
}

/// Drops one reference from each blob; blobs nobody references are deleted (their files
/// after the commit).
pub(crate) fn release_blobs(conn: &Connection, effects: &mut Effects, blob_ids: &[(String, i64)]) -> Result<()> {
    for (id, count) in blob_ids {
        let (left, inline): (i64, bool) = conn.query_row(
            "UPDATE blobs SET refcount = refcount - ?2 WHERE id = ?1 RETURNING refcount, data IS NOT NULL",
            params![id, count],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if left <= 0 {
            conn.execute("DELETE FROM blobs WHERE id = ?1", [id])?;
            if !inline {
                effects.delete_after_commit(blob_path(&effects.blob_root, id));
            }
        }
    }
    Ok(())
}

/// A stored message: its prefix followed by its body (from the blob row when inline, else
/// from the file).
pub(crate) fn read_stored(conn: &Connection, root: &Path, prefix: Vec<u8>, blob_id: &str) -> Result<Vec<u8>> {
    let data: Option<Vec<u8>> = conn.query_row("SELECT data FROM blobs WHERE id = ?1", [blob_id], |r| r.get(0))?;
    let body = match data {
        Some(d) => d,
        None => {
            let path = blob_path(root, blob_id);
            std::fs::read(&path).map_err(|e| StoreError::io(&path, e))?
        }
    };
    let mut message = prefix;
    message.extend_from_slice(&body);
    Ok(message)
}

#[cfg(test)]
mod tests;
