//! The embedded store: SQLite in WAL mode beside a directory of blob files.
//!
//! Reads run on the blocking pool with a small pool of connections. Writes are closures sent
//! to one writer thread ([`writer`]), which runs everything queued in one transaction, each
//! job inside its own savepoint so one failure does not undo its neighbours, and commits once
//! (group commit): N concurrent deliveries cost one WAL fsync and one fsync per blob
//! directory instead of N of each.
//!
//! Each role trait is implemented in its own file: [`directory`] (with [`credentials`]),
//! [`delivery`], [`messages`], [`queue`], [`guard`], [`senderauth`], [`filter`], [`quarantine`],
//! [`quota`], [`containment`], [`tlspolicy`] and [`imap`].

pub mod backup;
mod certs;
mod containment;
pub mod convert;
mod credentials;
mod delivery;
mod directory;
pub mod encryption;
mod filter;
mod guard;
mod imap;
mod messages;
mod metadata;
mod orphans;
mod quarantine;
mod queue;
mod quota;
mod schema;
mod senderauth;
mod summaries;
mod sealed;
mod backfill;
mod tlspolicy;
mod web;
mod pgp;
mod pgp_delivery;
pub mod rotation;
mod online;
pub(crate) mod userkeys;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension, params};

use crate::blob::{self, Blob, blob_path};
use crate::codec::{self, Codec};
use crate::keys::MasterKeys;
use crate::notify::Notifier;
use crate::seal::DataKey;
use encryption::{DbKey, KeyCell};
use crate::summary::{Summarizer, Summary};
use crate::{Account, AccountId, Result, StoreError};
use writer::{Effects, Writer};
/// The same cap on the PostgreSQL store (`crate::postgres::directory`).
pub(crate) use credentials::MAX_APP_PASSWORDS;

/// Idle reader connections kept open in each pool. A connection costs its schema parse and
/// its prepared statements when opened; with fewer idle slots than the reads running at once
/// under load (ten submission sessions each checking quotas and containment beside the queue
/// workers), every surplus connection was closed and reopened per read, which measured 8% of
/// the server's CPU in the outbound benchmark.
const MAX_IDLE_READERS: usize = 32;
/// Prepared statements a connection keeps (rusqlite's default is 16, fewer than the
/// statements one submission runs, so they were parsed again each time).
const STATEMENT_CACHE: usize = 128;
/// How long a statement waits for another process (a CLI command) holding the write lock.
const BUSY_TIMEOUT_MS: u64 = 10_000;
/// Reader connections of the blocking pool map this much of the database: a SORT or SEARCH
/// over a large mailbox reads its pages where they are in the page cache, rather than
/// copying each into SQLite's own small cache through a system call (the mapping shares the
/// page cache; it is not memory of the server's own).
///
/// Point reads ([`SqliteStore::read_now`]) use connections without the mapping: a read
/// transaction that finds the WAL changed since the connection's last one drops the
/// connection's whole mapping (and its page cache) before it reads, so under constant
/// commits every point read paid a munmap of the file, the other core's TLB shoot-down and a
/// page fault per page it touched again — ~7% of the server's CPU in the outbound
/// benchmark. They read their few pages with pread instead.
const READER_MMAP: i64 = 1 << 30;

/// Which reader connections a read takes (see [`READER_MMAP`]).
#[derive(Clone, Copy)]
enum ReadKind {
    /// A read on the blocking pool, which may scan a mailbox: the database mapped.
    Scan,
    /// A point read on the calling thread: no mapping.
    Point,
}

#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    db_path: PathBuf,
    blob_root: PathBuf,
    /// Idle reader connections: those for scans (mapped) and those for point reads.
    readers: Mutex<Vec<Connection>>,
    point_readers: Mutex<Vec<Connection>>,
    writer: Writer,
    notifier: Arc<Notifier>,
    /// Makes the summary of each message stored (`set_summarizer`); without one, messages are
    /// stored without and IMAP makes theirs when it first reads them.
    summarizer: std::sync::OnceLock<Arc<dyn Summarizer>>,
    /// Raised after every commit that changed summaries of messages already stored
    /// ([`SqliteStore::summaries_changed`]): what in-memory copies of them check.
    summary_generation: std::sync::atomic::AtomicU64,
    /// Held by the server for its lifetime: one server per store.
    _lock: Option<std::fs::File>,
    /// An encrypted store's master keys (they wrap and unwrap message files' data keys) and
    /// its database key.
    keys: KeyCell,
    /// The database key (None: a clear database), and the switch lock: every read holds it
    /// shared for its statements and the files it opens, and the online conversion to an
    /// encrypted store holds it exclusive while it replaces the database file and while it
    /// commits and renames each batch of sealed message files ([`online`]), so a reader never
    /// pairs a row with a file of the other kind.
    db: std::sync::RwLock<Option<Arc<DbKey>>>,
    /// A rewrap pass of a rotation is running ([`rotation`]): one at a time.
    rewrapping: std::sync::atomic::AtomicBool,
    /// An online conversion to an encrypted store is running ([`online`]): one at a time.
    converting: std::sync::atomic::AtomicBool,
    /// Shared by every blob written while the store is clear, until it is committed; the
    /// conversion's last sweep waits for this to be the only reference.
    clear_writers: Arc<()>,
}

impl Inner {
    /// Runs `f` with an idle reader connection (a new one when none is idle) and keeps the
    /// connection for the next read.
    fn with_reader<R>(&self, kind: ReadKind, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        let db = self.db.read().expect("switch lock");
        let readers = match kind {
            ReadKind::Scan => &self.readers,
            ReadKind::Point => &self.point_readers,
        };
        let pooled = readers.lock().expect("reader pool lock").pop();
        let conn = match pooled {
            Some(c) => c,
            None => {
                let c = open_connection(&self.db_path, db.as_deref())?;
                if let ReadKind::Scan = kind {
                    c.pragma_update(None, "mmap_size", READER_MMAP)?;
                }
                c
            }
        };
        let result = match kind {
            ReadKind::Scan => f(&conn),
            // A point read's statements share one read transaction: each statement on its own
            // was a read transaction of its own — a lock on the WAL index, and, after any
            // commit, the connection's page cache dropped and its pages read again — and the
            // quota status alone is seven statements. One snapshot is also the truer answer.
            ReadKind::Point => {
                conn.prepare_cached("BEGIN")?.execute([])?;
                let result = f(&conn);
                // Ends a read-only transaction; nothing to fail but the connection itself,
                // which is then not kept (below).
                let _ = conn.prepare_cached("COMMIT").and_then(|mut s| s.execute([]));
                result
            }
        };
        // Back in the pool before the switch lock goes: a conversion empties the pool while
        // it holds the lock, and a connection to the replaced file must not come back after.
        let mut pool = readers.lock().expect("reader pool lock");
        if pool.len() < MAX_IDLE_READERS && conn.is_autocommit() {
            pool.push(conn);
        }
        drop(pool);
        drop(db);
        result
    }
}

pub(crate) fn open_connection(path: &Path, key: Option<&DbKey>) -> Result<Connection> {
    let conn = Connection::open(path)?;
    encryption::apply_key(&conn, key)?;
    conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Query planner stability: without it SQLite marks a statement for re-preparing whenever
    // a parameter is rebound if the value might change the plan (ORDER BY and range terms,
    // LEFT JOINs, partial indexes), so cached statements were parsed again on every use —
    // 8% of the server's CPU in the outbound benchmark. Plans here never depend on bound
    // values; a query meant for the partial index `queue_account` repeats its condition
    // (`account != ''`), which the planner can then see without the value.
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
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
    /// An encrypted store opens with the keys set by [`encryption::set_master_keys`].
    pub fn open(data_dir: &Path) -> Result<SqliteStore> {
        Self::open_inner(data_dir, None, encryption::process_keys(), false)
    }

    /// [`open`](Self::open) with these master keys (None: the store must be clear).
    pub fn open_with_keys(data_dir: &Path, keys: Option<Arc<MasterKeys>>) -> Result<SqliteStore> {
        Self::open_inner(data_dir, None, keys, false)
    }

    /// Opens the store for the one server that may use it: takes an exclusive lock on
    /// `data_dir/rampart.lock` (`LockHeld` when another server has it), removes message files
    /// a crashed run left half-written (they were never acknowledged) and blob files no row
    /// refers to (a commit that failed before a crash). Only the lock holder may do that, since
    /// a CLI process cannot tell a dead run's file from one the live server is writing.
    pub fn open_for_server(data_dir: &Path) -> Result<SqliteStore> {
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError::io(data_dir, e))?;
        let path = data_dir.join("rampart.lock");
        let mut lock = std::fs::File::options().create(true).truncate(false).write(true).open(&path).map_err(|e| StoreError::io(&path, e))?;
        // flock(2): released by the kernel when the process ends, however it ends.
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(StoreError::LockHeld(data_dir.to_path_buf())),
            Err(std::fs::TryLockError::Error(e)) => return Err(StoreError::io(&path, e)),
        }
        // Its pid, for the commands that signal the server (`keys rotate` beside it).
        rotation::record_server(&mut lock).map_err(|e| StoreError::io(&path, e))?;
        let blob_root = data_dir.join("blobs");
        blob::clean_tmp(&blob_root)?;
        let keys = encryption::process_keys();
        // A conversion begun beside a running server that did not finish: its first steps
        // before the store opens, the rest by the server (`SqliteStore::encrypt_online`).
        let converting = online::prepare_resume(data_dir, keys.as_deref())?;
        let store = Self::open_inner(data_dir, Some(lock), keys, converting)?;
        let reader = open_connection(&store.inner.db_path, store.db_key().as_deref())?;
        orphans::sweep(&reader, &blob_root, now())?;
        Ok(store)
    }

    fn open_inner(data_dir: &Path, lock: Option<std::fs::File>, keys: Option<Arc<MasterKeys>>, converting: bool) -> Result<SqliteStore> {
        let db_key = encryption::resolve(data_dir, keys.as_deref(), converting)?;
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError::io(data_dir, e))?;
        let db_path = data_dir.join("rampart.db");
        let blob_root = data_dir.join("blobs");
        blob::prepare_root(&blob_root)?;
        let mut conn = open_connection(&db_path, db_key.as_ref())?;
        schema::migrate(&mut conn)?;
        let notifier = Arc::new(Notifier::default());
        let keys = KeyCell::new(if db_key.is_some() { keys } else { None });
        let writer = Writer::start(conn, blob_root.clone(), notifier.clone(), keys.clone())?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                db_path,
                blob_root,
                readers: Mutex::new(Vec::new()),
                point_readers: Mutex::new(Vec::new()),
                writer,
                notifier,
                summarizer: std::sync::OnceLock::new(),
                summary_generation: std::sync::atomic::AtomicU64::new(0),
                _lock: lock,
                keys,
                db: std::sync::RwLock::new(db_key.map(Arc::new)),
                rewrapping: std::sync::atomic::AtomicBool::new(false),
                converting: std::sync::atomic::AtomicBool::new(false),
                clear_writers: Arc::new(()),
            }),
        })
    }

    /// Called after a commit that made, remade or removed summaries of messages already stored
    /// (not for a new message's own: its UID is new to every copy), deleted a mailbox or an
    /// account, or changed a UIDVALIDITY ([`crate::MailStore::summary_generation`]).
    pub(crate) fn summaries_changed(&self) {
        self.inner.summary_generation.fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// Gives the store the summarizer of the messages it stores from now on (the server sets
    /// IMAP's at start); a second call is ignored.
    pub fn set_summarizer(&self, summarizer: Arc<dyn Summarizer>) {
        let _ = self.inner.summarizer.set(summarizer);
    }

    /// The summary of a message about to be stored: its prefix and body, made on the blocking
    /// pool. None without a summarizer, or when the body cannot be read back (the message is
    /// then stored without one, and summarized when IMAP first reads it).
    async fn summarize(&self, prefix: &[u8], blob: &Blob) -> Option<Summary> {
        // Without a summarizer the body is not read at all.
        self.inner.summarizer.get()?;
        let body = match blob.contents().await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(event = "summary_failed", blob = %blob.id(), error = %e.chain());
                return None;
            }
        };
        let message = joined(prefix, &body);
        drop(body); // one copy of a large message while it is summarized, not two
        self.summarize_message(message).await
    }

    /// The summary of a whole message (prefix and body), made on the blocking pool; None
    /// without a summarizer.
    async fn summarize_message(&self, message: Vec<u8>) -> Option<Summary> {
        let summarizer = self.inner.summarizer.get()?.clone();
        tokio::task::spawn_blocking(move || summarizer.summarize(&message)).await.ok()
    }

    /// The summary of `stored`, the form of `plain` encrypted to a user's OpenPGP key, with
    /// `plain`'s header values and words for SEARCH (`Summarizer::summarize_encrypted`);
    /// made on the blocking pool, None without a summarizer.
    async fn summarize_encrypted(&self, plain: Vec<u8>, stored: Vec<u8>) -> Option<Summary> {
        let summarizer = self.inner.summarizer.get()?.clone();
        tokio::task::spawn_blocking(move || summarizer.summarize_encrypted(&plain, &stored)).await.ok()
    }

    /// Whether the database is SQLCipher (`[store.encryption] mode = "server"`).
    fn database_encrypted(&self) -> bool {
        self.inner.db.read().expect("switch lock").is_some()
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
        tokio::task::spawn_blocking(move || inner.with_reader(ReadKind::Scan, f)).await.map_err(|_| StoreError::Closed)?
    }

    /// A read run on the calling thread, for the point lookups on the path of every message
    /// (a domain, the DKIM keys, quota and containment counts: tens of microseconds with
    /// cached statements on a warm database). Handing such a read to the blocking pool and
    /// back cost more than the read: two thread wake-ups, which in a virtual machine are
    /// inter-processor interrupts (the outbound benchmark measured ~9 hand-offs and 16
    /// wake-ups per message). Never for scans or anything that grows with a mailbox: those
    /// would stall every session on the runtime thread.
    fn read_now<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        self.inner.with_reader(ReadKind::Point, f)
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
    Ok(conn.prepare_cached("SELECT id FROM domains WHERE name = ?1")?.query_row([domain], |r| r.get(0)).optional()?)
}

pub(crate) fn account_id(conn: &Connection, address: &str) -> Result<Option<AccountId>> {
    Ok(conn.prepare_cached("SELECT id FROM accounts WHERE address = ?1")?.query_row([address], |r| r.get(0)).optional()?)
}

pub(crate) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

pub(crate) fn account_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Account> {
    Ok(Account { id: r.get(0)?, address: r.get(1)?, password_hash: r.get(2)?, created: r.get(3)? })
}

/// Inserts the row of a finished blob with `refcount` references; a small (inline) body goes
/// into `blob_bodies`, compressed as the blob holds it.
/// A data key that an older master key wrapped (the blob was written before a running server
/// took the keys of a rotation) is rewrapped under the current one here, on the writer
/// thread: so once a server has the new keys, every commit stores current wraps, and the
/// rotation's one pass over the rows older than that leaves none behind.
pub(crate) fn insert_blob(conn: &Connection, effects: &Effects, blob: &Blob, refcount: i64) -> Result<()> {
    let rewrapped = match (&blob.wrapped_key, effects.keys.get()) {
        (Some(wrapped), Some(keys)) if blob.owner.is_none() => keys.rewrap(wrapped, blob.id().as_bytes())?,
        _ => None,
    };
    let body = match &blob.inline {
        Some(data) => {
            conn.prepare_cached("INSERT INTO blob_bodies (data) VALUES (?1)")?.execute([data])?;
            Some(conn.last_insert_rowid())
        }
        None => None,
    };
    conn.prepare_cached("INSERT INTO blobs (id, size, refcount, codec, body, dkey, owner) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?.execute(
        params![blob.id(), blob.size() as i64, refcount, blob.codec.code(), body, rewrapped.as_ref().or(blob.wrapped_key.as_ref()), blob.owner],
    )?;
    if let Some(sealed) = &blob.sealed_summary {
        conn.prepare_cached("INSERT INTO sealed_summaries (blob_id, data) VALUES (?1, ?2)")?.execute(params![blob.id(), sealed])?;
    }
    Ok(())
}

/// Drops one reference from each blob; blobs nobody references are deleted (their files
/// after the commit).
pub(crate) fn release_blobs(conn: &Connection, effects: &mut Effects, blob_ids: &[(String, i64)]) -> Result<()> {
    for (id, count) in blob_ids {
        let (left, inline, body): (i64, bool, Option<i64>) = conn
            .prepare_cached("UPDATE blobs SET refcount = refcount - ?2 WHERE id = ?1 RETURNING refcount, data IS NOT NULL, body")?
            .query_row(params![id, count], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        if left <= 0 {
            conn.prepare_cached("DELETE FROM blobs WHERE id = ?1")?.execute([id])?;
            summaries::delete(conn, id)?;
            conn.prepare_cached("DELETE FROM sealed_summaries WHERE blob_id = ?1")?.execute([id])?;
            if let Some(body) = body {
                conn.prepare_cached("DELETE FROM blob_bodies WHERE id = ?1")?.execute([body])?;
            } else if !inline {
                effects.delete_after_commit(blob_path(&effects.blob_root, id));
            }
        }
    }
    Ok(())
}

/// Where a blob's body is: in the database (old rows in `blobs.data`, newer ones in
/// `blob_bodies`) or in its file, and how it is encoded.
pub(crate) struct StoredBody {
    pub size: u64,
    pub codec: Codec,
    /// The stored bytes of a small body; None when it is a file.
    pub inline: Option<Vec<u8>>,
    /// The file of a body that is not inline, opened with the row read (under the store's
    /// switch lock: the file that goes with the row, even while an online conversion replaces
    /// files by their sealed copies).
    pub file: Option<std::fs::File>,
}

/// size, codec, inline body, data key (wrapped or sealed), owner of a per-user copy.
type BlobRow = (i64, i64, Option<Vec<u8>>, Option<Vec<u8>>, Option<AccountId>);

/// `keys`: the store's master keys, which unwrap the data key of a sealed file; `root`: where
/// the files are.
pub(crate) fn stored_body(conn: &Connection, keys: Option<&MasterKeys>, root: &Path, blob_id: &str) -> Result<StoredBody> {
    let (size, codec, inline, dkey, owner): BlobRow = conn
        .prepare_cached(
            "SELECT b.size, b.codec, coalesce(b.data, d.data), b.dkey, b.owner FROM blobs b LEFT JOIN blob_bodies d ON d.id = b.body \
             WHERE b.id = ?1",
        )?
        .query_row([blob_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?;
    let key = match (dkey, keys, owner) {
        // A per-user copy opens only with its owner's key, held while the owner is logged in.
        (Some(sealed), _, Some(owner)) => Some(Arc::new(DataKey::from_bytes(userkeys::open_data_key(conn, owner, &sealed, blob_id)?))),
        (Some(wrapped), Some(keys), None) => Some(Arc::new(DataKey::from_bytes(keys.unwrap(&wrapped, blob_id.as_bytes())?))),
        _ => None,
    };
    let codec = Codec::from_code(codec, key).map_err(|e| StoreError::io(blob_id, e))?;
    let file = match inline {
        Some(_) => None,
        None => {
            let path = blob_path(root, blob_id);
            Some(std::fs::File::open(&path).map_err(|e| StoreError::io(&path, e))?)
        }
    };
    Ok(StoredBody { size: size as u64, codec, inline, file })
}

/// `prefix` followed by `body`, in one buffer.
pub(crate) fn joined(prefix: &[u8], body: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(prefix.len() + body.len());
    message.extend_from_slice(prefix);
    message.extend_from_slice(body);
    message
}

/// A stored message: its prefix followed by its body (from the database when small, else
/// from the file), decompressed.
pub(crate) fn read_stored(conn: &Connection, keys: Option<&MasterKeys>, root: &Path, prefix: Vec<u8>, blob_id: &str) -> Result<Vec<u8>> {
    read_body(root, prefix, blob_id, stored_body(conn, keys, root, blob_id)?)
}

/// [`read_stored`] after the body's row was read: `prefix` followed by the body, from `body`
/// itself when it is kept in the database, else from its file.
pub(crate) fn read_body(root: &Path, prefix: Vec<u8>, blob_id: &str, body: StoredBody) -> Result<Vec<u8>> {
    let StoredBody { size, codec, inline, file } = body;
    let path = blob_path(root, blob_id);
    let stored = match (inline, file) {
        (Some(d), _) => d,
        (None, Some(mut f)) => {
            let mut d = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut d).map_err(|e| StoreError::io(&path, e))?;
            d
        }
        (None, None) => std::fs::read(&path).map_err(|e| StoreError::io(&path, e))?,
    };
    let body = codec::decode(&codec, stored, size).map_err(|e| StoreError::io(&path, e))?;
    let mut message = prefix;
    message.extend_from_slice(&body);
    Ok(message)
}

#[cfg(test)]
mod codec_tests;
#[cfg(test)]
mod encryption_tests;
#[cfg(test)]
mod summary_tests;
#[cfg(test)]
mod sending_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod statement_tests;
#[cfg(test)]
mod pgp_tests;
#[cfg(test)]
mod userkeys_tests;
#[cfg(test)]
mod sealed_tests;

/// Counts a submission at `at` as `deliver_submitted` does, for the role tests that hold
/// SQLite and PostgreSQL to the same quota and containment behaviour (`crate::role_tests`).
#[cfg(test)]
impl SqliteStore {
    pub(crate) fn blob_root(&self) -> &Path {
        &self.inner.blob_root
    }

    pub(crate) async fn record_submitted(&self, s: crate::quota::Submitted, at: i64) -> Result<()> {
        self.write(move |conn, _| quota::record(conn, &s, at)).await
    }
}
