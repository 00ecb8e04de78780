//! The single writer thread and its group commit.
//!
//! Each job runs inside `SAVEPOINT job` so that a failing job (say, a duplicate account) is
//! rolled back alone. After the batch, directories that jobs touched are fsynced once each,
//! then one `COMMIT` fsyncs the WAL. Only after that does any caller hear back, so a caller
//! that got `Ok` knows its write is durable.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, mpsc};

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::blob::sync_dir;
use crate::notify::Notifier;
use crate::{MailboxId, Result, StoreError};

/// Most jobs one transaction takes; bounds the latency a large burst adds to its first job.
const MAX_BATCH: usize = 512;

/// Side effects of a batch that happen outside SQLite.
pub struct Effects {
    pub blob_root: PathBuf,
    sync_dirs: BTreeSet<PathBuf>,
    delete_after: Vec<PathBuf>,
    changed: Vec<MailboxId>,
}

impl Effects {
    /// The directory holds a new entry that must be durable before the commit.
    pub fn sync_dir(&mut self, dir: PathBuf) {
        self.sync_dirs.insert(dir);
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
}

trait Job: Send {
    /// Runs the job's statements; false when it failed and must be rolled back.
    fn run(&mut self, conn: &Connection, effects: &mut Effects) -> bool;
    /// Tells the caller the outcome; `commit` is the result of the batch's commit.
    fn complete(self: Box<Self>, commit: std::result::Result<(), String>);
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

    fn complete(self: Box<Self>, commit: std::result::Result<(), String>) {
        let outcome = match (commit, self.result) {
            (Ok(()), Some(result)) => result,
            (Err(e), Some(Err(own))) => Err(StoreError::Invalid(format!("{own}; then the commit failed: {e}"))),
            (Err(e), _) => Err(StoreError::Invalid(format!("commit failed: {e}"))),
            (Ok(()), None) => Err(StoreError::Invalid("the job did not run".into())),
        };
        let _ = self.reply.send(outcome);
    }
}

pub struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
}

impl Writer {
    pub fn start(conn: Connection, blob_root: PathBuf, notifier: Arc<Notifier>) -> Result<Writer> {
        let (tx, rx) = mpsc::channel::<Box<dyn Job>>();
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer_loop(conn, rx, blob_root, notifier))
            .map_err(|e| StoreError::io("store-writer thread", e))?;
        Ok(Writer { jobs: tx })
    }

    pub async fn run<R, F>(&self, work: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection, &mut Effects) -> Result<R> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Pending { work: Some(work), result: None, reply });
        self.jobs.send(job).map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

fn writer_loop(conn: Connection, jobs: mpsc::Receiver<Box<dyn Job>>, blob_root: PathBuf, notifier: Arc<Notifier>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut effects = Effects {
            blob_root: blob_root.clone(),
            sync_dirs: BTreeSet::new(),
            delete_after: Vec::new(),
            changed: Vec::new(),
        };
        let outcome = run_batch(&conn, &mut batch, &mut effects);
        if let Err(e) = &outcome {
            tracing::error!(event = "store_commit_failed", error = %e, jobs = batch.len());
            let _ = conn.execute_batch("ROLLBACK");
        } else {
            notifier.fire(&effects.changed);
            for path in &effects.delete_after {
                if let Err(e) = std::fs::remove_file(path) {
                    tracing::warn!(event = "blob_remove_failed", path = %path.display(), error = %e);
                }
            }
        }
        for job in batch {
            job.complete(outcome.clone());
        }
    }
}

fn run_batch(conn: &Connection, batch: &mut [Box<dyn Job>], effects: &mut Effects) -> std::result::Result<(), String> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(|e| e.to_string())?;
    for job in batch.iter_mut() {
        conn.execute_batch("SAVEPOINT job").map_err(|e| e.to_string())?;
        let sql = if job.run(conn, effects) { "RELEASE job" } else { "ROLLBACK TO job; RELEASE job" };
        conn.execute_batch(sql).map_err(|e| e.to_string())?;
    }
    for dir in &effects.sync_dirs {
        sync_dir(dir).map_err(|e| e.to_string())?;
    }
    conn.execute_batch("COMMIT").map_err(|e| e.to_string())
}
