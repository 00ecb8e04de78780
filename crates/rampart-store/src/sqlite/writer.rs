//! The single writer thread and its group commit.
//!
//! Each job runs inside `SAVEPOINT job` so that a failing job (say, a duplicate account) is
//! rolled back alone, with the side effects it asked for. After the batch, directories that
//! jobs touched are fsynced once each, then one `COMMIT` writes the WAL and one fdatasync makes
//! it durable ([`sync_wal`]). Only after that does any caller hear back, so a caller that got
//! `Ok` knows its write is durable.
//!
//! When the commit fails, every job of the batch gets [`StoreError::CommitFailed`] and the
//! blob files the batch renamed into place are removed again (unless their row turns out to
//! be there after all); whatever a crash leaves behind is swept at the next start
//! ([`super::orphans`]).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension};
use tokio::sync::oneshot;

use super::encryption::KeyCell;
use crate::blob::{Blob, blob_path, sync_dir};
use crate::notify::Notifier;
use crate::{MailboxId, Result, StoreError};

/// Most jobs one transaction takes; bounds the latency a large burst adds to its first job.
const MAX_BATCH: usize = 512;
/// When a job was already waiting as the previous commit ended (jobs arrive faster than
/// commits end), its batch waits up to this long for more jobs before it commits. Each
/// commit costs the same fdatasync (~80 µs of CPU here, ~200 µs of waiting) and rewrites the
/// pages every job touches (the queue's last leaf, its indexes, the database header): under
/// an outbound backlog, jobs came one or two per commit, a commit per message, and gathering
/// them for 400 µs gave ~6% of the server's CPU back to the sessions, 1.5 ms another ~5%
/// (3 ms: no clearer gain, and the submissions accepted more slowly). A job that finds the
/// writer idle commits at once, so a lone client's writes, one after another, never wait.
const GATHER: Duration = Duration::from_micros(1500);
/// A batch stops gathering at this many jobs.
const GATHER_ENOUGH: usize = 16;

/// Side effects of a batch that happen outside SQLite.
pub struct Effects {
    pub blob_root: PathBuf,
    /// The store's master keys at this batch (an encrypted store's; empty for a clear one).
    pub(crate) keys: KeyCell,
    sync_dirs: BTreeSet<PathBuf>,
    delete_after: Vec<PathBuf>,
    /// Blob files renamed into place by this batch: (blob id, path).
    placed: Vec<(String, PathBuf)>,
    changed: Vec<MailboxId>,
}

/// How far the effects had grown before a job, so a job rolled back loses its own.
struct Mark {
    delete_after: usize,
    placed: usize,
    changed: usize,
}

impl Effects {
    fn new(blob_root: PathBuf, keys: KeyCell) -> Self {
        Effects { blob_root, keys, sync_dirs: BTreeSet::new(), delete_after: Vec::new(), placed: Vec::new(), changed: Vec::new() }
    }

    /// Moves a finished blob to its bucket; the directory is fsynced before the commit. Call it
    /// after the job's statements, so a statement failing leaves the file in `tmp`, where
    /// dropping the blob removes it.
    pub fn place_blob(&mut self, blob: &mut Blob) -> Result<()> {
        if let Some(dir) = blob.commit()? {
            self.sync_dirs.insert(dir);
            self.placed.push((blob.id().to_string(), blob_path(&self.blob_root, blob.id())));
        }
        Ok(())
    }

    /// The file is garbage once the commit is durable.
    pub fn delete_after_commit(&mut self, path: PathBuf) {
        self.delete_after.push(path);
    }

    /// The mailbox changed; its watchers are woken once the commit is durable.
    pub fn mailbox_changed(&mut self, mailbox: MailboxId) {
        if !self.changed.contains(&mailbox) {
            self.changed.push(mailbox);
        }
    }

    fn mark(&self) -> Mark {
        Mark { delete_after: self.delete_after.len(), placed: self.placed.len(), changed: self.changed.len() }
    }

    /// Forgets what a rolled-back job asked for, and removes the files it placed: no row of
    /// the rollback refers to them.
    fn undo_since(&mut self, mark: Mark) {
        self.delete_after.truncate(mark.delete_after);
        self.changed.truncate(mark.changed);
        for (_, path) in self.placed.drain(mark.placed..) {
            remove(&path);
        }
    }

    /// After a failed commit and its rollback: removes the files the batch placed. A file whose
    /// row exists anyway (or when the database cannot say) is kept; the start-up sweep judges
    /// it again. Returns how many were removed.
    fn remove_placed(&mut self, conn: &Connection) -> usize {
        let mut removed = 0;
        for (id, path) in self.placed.drain(..) {
            let row = conn.query_row("SELECT 1 FROM blobs WHERE id = ?1", [&id], |_| Ok(())).optional();
            if let Ok(None) = row {
                remove(&path);
                removed += 1;
            }
        }
        removed
    }
}

fn remove(path: &std::path::Path) {
    if let Err(e) = std::fs::remove_file(path) {
        tracing::warn!(event = "blob_remove_failed", path = %path.display(), error = %e);
    }
}

trait Job: Send {
    /// Runs the job's statements; false when it failed and must be rolled back.
    fn run(&mut self, conn: &Connection, effects: &mut Effects) -> bool;
    /// Tells the caller the outcome; `commit` is the result of the batch's commit.
    fn complete(self: Box<Self>, commit: &std::result::Result<(), Arc<StoreError>>);
}

struct Pending<F, R> {
    work: Option<F>,
    result: Option<Result<R>>,
    reply: oneshot::Sender<Result<R>>,
}

impl<F, R> Job for Pending<F, R>
where
    F: FnOnce(&Connection, &mut Effects) -> Result<R> + Send,
    R: Send,
{
    fn run(&mut self, conn: &Connection, effects: &mut Effects) -> bool {
        let work = self.work.take().expect("a job runs once");
        let result = work(conn, effects);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn complete(self: Box<Self>, commit: &std::result::Result<(), Arc<StoreError>>) {
        let outcome = match (commit, self.result) {
            (Ok(()), Some(result)) => result,
            // Its own failure was rolled back alone before the commit: that is its answer.
            (Err(_), Some(Err(own))) => Err(own),
            (Err(e), _) => Err(StoreError::CommitFailed(e.clone())),
            // Cannot happen: a batch commits only after every job in it ran.
            (Ok(()), None) => Err(StoreError::Closed),
        };
        let _ = self.reply.send(outcome);
    }
}

/// Work that needs the writer's connection itself, outside any transaction: replacing it by
/// one to another database file (the online conversion to an encrypted store). It runs alone,
/// after the batch before it has committed.
pub(crate) type Exclusive = Box<dyn FnOnce(&mut Connection) -> Result<()> + Send>;

enum Msg {
    Job(Box<dyn Job>),
    Exclusive(Exclusive, oneshot::Sender<Result<()>>),
}

pub struct Writer {
    /// None only while dropping: closing it ends the thread's loop.
    jobs: Option<mpsc::Sender<Msg>>,
    /// Joined on drop: the thread closes its connection, and a process must not exit while
    /// it does (SQLCipher frees its global state in an exit handler; a connection closing
    /// beside it crashed the CLI about once in a hundred runs).
    thread: Option<std::thread::JoinHandle<()>>,
    #[cfg(any(test, feature = "fault-injection"))]
    fail_commits: FailCommits,
}

/// Commits to fail on purpose, for tests of callers (`SqliteStore::fail_commits`). Without the
/// `fault-injection` feature it holds nothing and never fails anything.
#[derive(Clone, Default)]
struct FailCommits(#[cfg(any(test, feature = "fault-injection"))] Arc<std::sync::atomic::AtomicU32>);

impl FailCommits {
    /// Whether this commit is to fail; counts it.
    fn take(&self) -> bool {
        #[cfg(any(test, feature = "fault-injection"))]
        {
            use std::sync::atomic::Ordering::SeqCst;
            self.0.fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1)).is_ok()
        }
        #[cfg(not(any(test, feature = "fault-injection")))]
        false
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take()
            // The last handle to the store may be dropped by a job on the writer thread itself.
            && thread.thread().id() != std::thread::current().id()
        {
            let _ = thread.join();
        }
    }
}

impl Writer {
    pub fn start(conn: Connection, blob_root: PathBuf, notifier: Arc<Notifier>, keys: KeyCell) -> Result<Writer> {
        // SQLite's own commit (synchronous=FULL) syncs the WAL with fsync(2), which on this
        // file system also writes the inode (its times change with every commit) and waits for
        // that second write: about a quarter of the commit's wait in the outbound benchmark. With
        // NORMAL the commit only writes the WAL, and `sync_wal` fdatasyncs it before anyone
        // hears of the commit. (Checkpoints still fsync the WAL before copying it back and the
        // database after, as NORMAL does in WAL mode.)
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let (tx, rx) = mpsc::channel::<Msg>();
        let thread = WriterThread { conn, blob_root, keys, notifier, fail_commits: FailCommits::default() };
        #[cfg(any(test, feature = "fault-injection"))]
        let fail_commits = thread.fail_commits.clone();
        let handle = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || thread.run(rx))
            .map_err(|e| StoreError::io("store-writer thread", e))?;
        Ok(Writer {
            jobs: Some(tx),
            thread: Some(handle),
            #[cfg(any(test, feature = "fault-injection"))]
            fail_commits,
        })
    }

    pub async fn run<R, F>(&self, work: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection, &mut Effects) -> Result<R> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Pending { work: Some(work), result: None, reply });
        self.jobs.as_ref().ok_or(StoreError::Closed)?.send(Msg::Job(job)).map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `work` on the writer thread between batches and waits for it, blocking the
    /// calling thread (never a runtime thread: the caller holds the store's switch lock).
    pub(crate) fn exclusive_blocking(&self, work: Exclusive) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.jobs.as_ref().ok_or(StoreError::Closed)?.send(Msg::Exclusive(work, reply)).map_err(|_| StoreError::Closed)?;
        answer.blocking_recv().map_err(|_| StoreError::Closed)?
    }

    /// Makes the next `n` batches fail at their commit, as a full disk would.
    #[cfg(any(test, feature = "fault-injection"))]
    pub fn fail_commits(&self, n: u32) {
        self.fail_commits.0.store(n, std::sync::atomic::Ordering::SeqCst);
    }
}

struct WriterThread {
    conn: Connection,
    blob_root: PathBuf,
    keys: KeyCell,
    notifier: Arc<Notifier>,
    fail_commits: FailCommits,
}

impl WriterThread {
    fn run(mut self, jobs: mpsc::Receiver<Msg>) {
        let mut next = None;
        loop {
            // Busy: a job was waiting when the last batch ended.
            let (first, busy) = match next.take().or_else(|| jobs.try_recv().ok()) {
                Some(msg) => (Some(msg), true),
                None => (jobs.recv().ok(), false),
            };
            let first = match first {
                Some(Msg::Job(job)) => job,
                Some(Msg::Exclusive(work, reply)) => {
                    let done = work(&mut self.conn);
                    // A new connection comes with synchronous=FULL; NORMAL again, since the
                    // commits are fsynced here (left at FULL they would only be synced twice).
                    let _ = self.conn.pragma_update(None, "synchronous", "NORMAL");
                    let _ = reply.send(done);
                    continue;
                }
                None => return,
            };
            let gather_until = busy.then(|| Instant::now() + GATHER);
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                let received = match gather_until {
                    Some(until) if batch.len() < GATHER_ENOUGH => {
                        jobs.recv_timeout(until.saturating_duration_since(Instant::now())).ok()
                    }
                    _ => jobs.try_recv().ok(),
                };
                match received {
                    Some(Msg::Job(job)) => batch.push(job),
                    // After this batch has committed.
                    Some(exclusive) => {
                        next = Some(exclusive);
                        break;
                    }
                    None => break,
                }
            }
            let outcome = self.commit_batch(&mut batch);
            for job in batch {
                job.complete(&outcome);
            }
        }
    }

    /// Runs and commits one batch, then carries out its effects (or undoes them).
    fn commit_batch(&self, batch: &mut [Box<dyn Job>]) -> std::result::Result<(), Arc<StoreError>> {
        let mut effects = Effects::new(self.blob_root.clone(), self.keys.clone());
        match self.run_batch(batch, &mut effects) {
            Ok(()) => {
                self.notifier.fire(&effects.changed);
                for path in &effects.delete_after {
                    remove(path);
                }
                Ok(())
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                let removed = effects.remove_placed(&self.conn);
                tracing::error!(event = "store_commit_failed", error = %e.chain(), jobs = batch.len(), blobs_removed = removed);
                Err(Arc::new(e))
            }
        }
    }

    fn run_batch(&self, batch: &mut [Box<dyn Job>], effects: &mut Effects) -> Result<()> {
        let conn = &self.conn;
        // Cached statements: parsing these per job and batch showed in profiles.
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        for job in batch.iter_mut() {
            conn.prepare_cached("SAVEPOINT job")?.execute([])?;
            let mark = effects.mark();
            if job.run(conn, effects) {
                conn.prepare_cached("RELEASE job")?.execute([])?;
            } else {
                conn.execute_batch("ROLLBACK TO job; RELEASE job")?;
                effects.undo_since(mark);
            }
        }
        for dir in &effects.sync_dirs {
            sync_dir(dir)?;
        }
        if self.fail_commits.take() {
            return Err(StoreError::io("COMMIT", std::io::Error::other("injected commit failure")));
        }
        conn.prepare_cached("COMMIT")?.execute([])?;
        let synced = sync_wal(conn);
        if synced.is_err() {
            // Committed, but whether it is on disk is unknown: the callers hear of a failure
            // (a client tries again; a duplicate is better than a loss), and the files the
            // batch released are left to the start-up sweep.
            effects.delete_after.clear();
        }
        synced
    }
}

/// fdatasyncs the WAL of `conn`'s database (named afresh each time: the online conversion to
/// an encrypted store replaces the connection by one to another file), opened by name:
/// whatever file holds the log now holds every frame committed before (SQLite only starts the
/// log over after a checkpoint that fsynced the database, and removes it only when its last
/// connection, this one, closes).
fn sync_wal(conn: &Connection) -> Result<()> {
    let wal = format!("{}-wal", conn.path().unwrap_or_default());
    std::fs::File::open(&wal).and_then(|f| f.sync_data()).map_err(|e| StoreError::io(&wal, e))
}
