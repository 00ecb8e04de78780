//! The delivery combiner: this node's deliveries share transactions, as SQLite's writer
//! jobs do. A delivery sends its prepared work ([`Work`]) over a channel and awaits its
//! answer; a task takes every delivery waiting (up to [`MAX_DELIVERIES`] or [`MAX_BYTES`] of
//! bodies), stores them in ONE transaction, commits once and then answers each: `250` still
//! follows COMMIT, but one commit (one WAL flush) serves the whole batch. Without it,
//! deliveries into one busy mailbox queue on its row lock one commit at a time (the lock is
//! held through COMMIT, `mailbox`), and PostgreSQL's own group commit never applies.
//!
//! One transaction, three steps:
//! 1. each delivery's bodies, summaries and target mailboxes (`delivery::stage`), each
//!    delivery in a SAVEPOINT of its own, before any mailbox row is locked;
//! 2. the row locks of all the batch's target mailboxes, in ascending id order in one
//!    statement; a batch with submissions then takes [`QUOTA_LOCK`];
//! 3. each delivery's UIDs, rows, queue entry and quota counts (`delivery::store`), again in a
//!    SAVEPOINT each, so UIDs and MODSEQs ascend in the order of the batch.
//!
//! A delivery that fails in either step is rolled back alone (its staged bodies are deleted)
//! and gets its own error; the others commit. When the batch fails as a whole (the
//! connection, COMMIT), every delivery of it gets that error.
//!
//! Lock order rather than retrying the batch on deadlock: the writers that lock several
//! mailbox rows at once take them in ascending id order (`mailbox::take_uids`, `imap`), so
//! two nodes' batches, or a batch and a COPY, wait for each other but never deadlock, and no
//! work is thrown away and redone. Quota rows escape that order (a batch counts several
//! senders' submissions, whose rows two batches could take in opposite orders), hence the
//! advisory lock that lets one batch with submissions count at a time. A deadlock that still
//! happens, with a writer outside the order (the quarantine's release locks an encrypted
//! copy's mailbox before the others'), either ends the batch's wait for its mailbox locks,
//! and that one statement is retried in a savepoint ([`LOCK_ATTEMPTS`]), or fails the one
//! delivery whose statement PostgreSQL chose, rolled back to its savepoint: a transient
//! error, retried by the sender.

use std::sync::Arc;

use deadpool_postgres::{Pool, Transaction};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_postgres::error::SqlState;

use super::delivery::{Part, Staged, stage, store};
use super::{listen, quota};
use crate::notify::Notifier;
use crate::quota::Submitted;
use crate::sqlite::now;
use crate::{DbError, Delivered, MailboxId, Result, StoreError};

/// Most deliveries one transaction takes: bounds the wait a burst adds to the first of it and
/// the rows one batch keeps locked, and keeps the batch's subtransactions (each delivery's two
/// SAVEPOINTs write, so each takes an XID) within the 64 a backend caches
/// (`PGPROC_MAX_CACHED_SUBXIDS`): past that the transaction is "suboverflowed" and every
/// snapshot taken meanwhile, on any connection, must look subtransactions up in pg_subtrans.
const MAX_DELIVERIES: usize = 30;
/// Body bytes after which a batch takes no more deliveries (a larger body goes alone):
/// copying the chunks delays every delivery of the batch.
const MAX_BYTES: u64 = 4 << 20;
/// Batches in flight per store: while one holds its mailbox locks through COMMIT, the next
/// copies its bodies; more would only wait for the same rows.
const IN_FLIGHT: usize = 2;
/// Deliveries waiting for the combiner before senders wait to hand theirs over.
const QUEUE: usize = 1024;
/// Times a batch tries to lock its mailboxes when PostgreSQL ends the wait as a deadlock.
const LOCK_ATTEMPTS: u32 = 3;
/// Advisory lock held by a batch that counts submissions (after its mailbox locks): quota
/// rows of several senders, taken by two batches, have no common order.
const QUOTA_LOCK: i64 = 0x7261_6d70_6172_7403;

/// One delivery's work: its bodies (the message as received and the encrypted copies) and
/// the submission to count.
pub(super) struct Work {
    pub parts: Vec<Part>,
    pub submitted: Option<Submitted>,
}

impl Work {
    fn bytes(&self) -> u64 {
        self.parts.iter().map(|p| p.delivery.blob.size()).sum()
    }
}

struct Job {
    work: Work,
    reply: oneshot::Sender<Result<Vec<Delivered>>>,
}

/// The sending end of a store's combiner; the task ends when the store's last clone drops it.
pub(super) struct Batcher {
    jobs: mpsc::Sender<Job>,
}

impl Batcher {
    pub fn start(pool: Pool, notifier: Arc<Notifier>) -> Batcher {
        let (jobs, rx) = mpsc::channel(QUEUE);
        tokio::spawn(combine(rx, pool, notifier));
        Batcher { jobs }
    }

    /// Stores `work` in the next batch; returns once that batch has committed.
    pub async fn deliver(&self, work: Work) -> Result<Vec<Delivered>> {
        let (reply, answer) = oneshot::channel();
        self.jobs.send(Job { work, reply }).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> StoreError {
    StoreError::Db(DbError::new(std::io::Error::other("the delivery combiner stopped"), true))
}

async fn combine(mut rx: mpsc::Receiver<Job>, pool: Pool, notifier: Arc<Notifier>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        // A slot first: while every batch is busy, deliveries gather in the channel and the
        // next batch takes them all.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let Some(first) = rx.recv().await else { return };
        let mut bytes = first.work.bytes();
        let mut jobs = vec![first];
        while jobs.len() < MAX_DELIVERIES && bytes < MAX_BYTES {
            let Ok(job) = rx.try_recv() else { break };
            bytes += job.work.bytes();
            jobs.push(job);
        }
        let (pool, notifier) = (pool.clone(), notifier.clone());
        tokio::spawn(async move {
            run(&pool, &notifier, jobs).await;
            drop(slot);
        });
    }
}

/// Stores a batch and answers each of its deliveries.
async fn run(pool: &Pool, notifier: &Notifier, jobs: Vec<Job>) {
    let (works, replies): (Vec<Work>, Vec<_>) = jobs.into_iter().map(|j| (j.work, j.reply)).unzip();
    match store_batch(pool, works).await {
        Ok((results, changed)) => {
            notifier.fire(&changed);
            for (reply, result) in replies.into_iter().zip(results) {
                // A sender that went away (its session ended) has its message stored anyway.
                let _ = reply.send(result);
            }
        }
        Err(e) => {
            tracing::warn!(event = "delivery_batch_failed", deliveries = replies.len(), error = %e);
            let e = Arc::new(e);
            for reply in replies {
                let _ = reply.send(Err(StoreError::CommitFailed(e.clone())));
            }
        }
    }
}

/// What became of one delivery of the batch after the first step.
enum Slot {
    Staged(Vec<Staged>, Option<Submitted>),
    Failed(StoreError),
}

/// Runs `works` in one transaction; each delivery's result in order and the changed
/// mailboxes (sorted), once committed. Err: the batch failed as a whole, nothing committed.
pub(super) async fn store_batch(pool: &Pool, works: Vec<Work>) -> Result<(Vec<Result<Vec<Delivered>>>, Vec<MailboxId>)> {
    let mut conn = super::pooled(pool).await?;
    let mut txn = conn.transaction().await?;
    // 1. Bodies, summaries, target mailboxes: no mailbox row locked yet.
    let mut slots = Vec::with_capacity(works.len());
    for Work { parts, submitted } in works {
        let sp = txn.savepoint("delivery").await?;
        match stage_all(&sp, parts).await {
            Ok(staged) => {
                sp.commit().await?;
                slots.push(Slot::Staged(staged, submitted));
            }
            Err(e) => {
                sp.rollback().await?;
                slots.push(Slot::Failed(e));
            }
        }
    }
    // 2. Every target mailbox's row, in ascending id order, in one statement (see the module
    // doc); then the quota lock if a submission is to be counted.
    let mut mailboxes: Vec<MailboxId> = Vec::new();
    let mut submissions = false;
    for slot in &slots {
        if let Slot::Staged(parts, submitted) = slot {
            mailboxes.extend(parts.iter().flat_map(Staged::mailboxes));
            submissions |= submitted.is_some();
        }
    }
    mailboxes.sort_unstable();
    mailboxes.dedup();
    if !mailboxes.is_empty() {
        lock_mailboxes(&mut txn, &mailboxes).await?;
    }
    if submissions {
        txn.execute("SELECT pg_advisory_xact_lock($1)", &[&QUOTA_LOCK]).await?;
    }
    // 3. UIDs and rows, delivery after delivery.
    let mut results = Vec::with_capacity(slots.len());
    let mut changed = Vec::new();
    for slot in slots {
        let (parts, submitted) = match slot {
            Slot::Staged(parts, submitted) => (parts, submitted),
            Slot::Failed(e) => {
                results.push(Err(e));
                continue;
            }
        };
        let sp = txn.savepoint("delivery").await?;
        match store_all(&sp, &parts, submitted.as_ref()).await {
            Ok(delivered) => {
                sp.commit().await?;
                changed.extend(delivered.iter().map(|d| d.mailbox));
                results.push(Ok(delivered));
            }
            Err(e) => {
                sp.rollback().await?;
                unstage(&txn, &parts).await?;
                results.push(Err(e));
            }
        }
    }
    changed.sort_unstable();
    changed.dedup();
    listen::notify(&txn, &changed).await?;
    txn.commit().await?;
    Ok((results, changed))
}

/// Locks the rows of `mailboxes` (sorted) in that order. A deadlock with a writer outside the
/// order costs a retry of this statement alone (the other transaction then goes on), not
/// the batch.
async fn lock_mailboxes(txn: &mut Transaction<'_>, mailboxes: &[MailboxId]) -> Result<()> {
    let mut attempts = 1;
    loop {
        let sp = txn.savepoint("lock").await?;
        let lock = sp.prepare_cached("SELECT id FROM mailboxes WHERE id = ANY($1) ORDER BY id FOR UPDATE").await?;
        match sp.query(&lock, &[&mailboxes]).await {
            Ok(_) => return Ok(sp.commit().await?),
            Err(e) if e.code() == Some(&SqlState::T_R_DEADLOCK_DETECTED) && attempts < LOCK_ATTEMPTS => {
                tracing::debug!(event = "delivery_batch_lock_retry", attempts);
                sp.rollback().await?;
                attempts += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

async fn stage_all(txn: &Transaction<'_>, parts: Vec<Part>) -> Result<Vec<Staged>> {
    let mut staged = Vec::with_capacity(parts.len());
    for part in parts {
        staged.push(stage(txn, part).await?);
    }
    Ok(staged)
}

async fn store_all(txn: &Transaction<'_>, parts: &[Staged], submitted: Option<&Submitted>) -> Result<Vec<Delivered>> {
    let mut delivered = Vec::new();
    for part in parts {
        delivered.extend(store(txn, part).await?);
    }
    if let Some(s) = submitted {
        quota::record(txn, s, now()).await?;
    }
    Ok(delivered)
}

/// Deletes the bodies (chunks) and summaries a failed delivery staged: nothing points to them.
async fn unstage(txn: &Transaction<'_>, parts: &[Staged]) -> Result<()> {
    let ids: Vec<&str> = parts.iter().map(Staged::blob_id).collect();
    txn.execute("DELETE FROM summaries WHERE blob_id = ANY($1)", &[&ids]).await?;
    txn.execute("DELETE FROM blobs WHERE id = ANY($1)", &[&ids]).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Work, store_batch};
    use crate::postgres::delivery::Part;
    use crate::postgres::{PgStore, testdb};
    use crate::prelude::*;
    use crate::{Delivery, Folder, Outbound, StoreError, Target};

    /// A store with bob's account; bob's id and his INBOX's.
    async fn store() -> (PgStore, i64, i64) {
        let store = PgStore::open(&testdb::migrated().await, 8, None, &testdb::spool()).await.unwrap();
        store.add_domain("example.test").await.unwrap();
        let bob = store.add_account("bob@example.test", "h").await.unwrap();
        let inbox = store.mailbox_state(bob, "INBOX").await.unwrap().unwrap().id;
        (store, bob, inbox)
    }

    /// A delivery of a new body to `account`'s INBOX, queued for a remote recipient too
    /// when `outbound`; its blob id.
    async fn work(store: &PgStore, account: i64, reference: &str, outbound: bool) -> (Work, String) {
        let mut w = store.blob_writer().unwrap();
        w.write(format!("Subject: {reference}\r\n\r\nx").as_bytes()).await.unwrap();
        let blob = w.finish().await.unwrap();
        let id = blob.id().to_string();
        let outbound = outbound.then(|| Outbound {
            sender: "bob@example.test".into(),
            rcpts: vec!["r@remote.test".into()],
            smtputf8: false,
            is_dsn: false,
            prefix: vec![],
        });
        let targets = vec![Target { account, folder: Folder::Inbox }];
        let delivery = Delivery { blob, prefix: vec![], internal_date: 0, targets, reference: reference.into(), trail: "[]".into(), outbound };
        (Work { parts: vec![Part { delivery, summary: None, account: String::new() }], submitted: None }, id)
    }

    async fn blob_exists(store: &PgStore, id: &str) -> bool {
        store.conn().await.unwrap().query_opt("SELECT 1 FROM blobs WHERE id = $1", &[&id]).await.unwrap().is_some()
    }

    #[tokio::test]
    async fn a_delivery_to_a_missing_account_fails_alone_in_its_batch() {
        let (store, bob, inbox) = store().await;
        let (first, _) = work(&store, bob, "A", false).await;
        let (bad, bad_blob) = work(&store, 999_999, "B", false).await;
        let (last, _) = work(&store, bob, "C", false).await;
        let (results, changed) = store_batch(&store.pool, vec![first, bad, last]).await.unwrap();
        assert_eq!(results[0].as_ref().unwrap()[0].uid, 1);
        assert!(matches!(results[1], Err(StoreError::NotFound(_))), "{:?}", results[1]);
        assert_eq!(results[2].as_ref().unwrap()[0].uid, 2);
        assert_eq!(changed, vec![inbox]);
        assert!(!blob_exists(&store, &bad_blob).await, "the failed delivery's body is rolled back");
        let uids: Vec<u32> = store.list_messages(inbox).await.unwrap().iter().map(|m| m.uid).collect();
        assert_eq!(uids, vec![1, 2]);
    }

    #[tokio::test]
    async fn a_delivery_failing_after_its_uid_is_taken_leaves_no_gap_and_no_body() {
        let (store, bob, inbox) = store().await;
        // The second queues under the first's id: its queue insert fails after its UID and
        // message row were taken.
        let (first, _) = work(&store, bob, "Q", true).await;
        let (twin, twin_blob) = work(&store, bob, "Q", true).await;
        let (last, _) = work(&store, bob, "R", false).await;
        let (results, _) = store_batch(&store.pool, vec![first, twin, last]).await.unwrap();
        assert_eq!(results[0].as_ref().unwrap()[0].uid, 1);
        assert!(results[1].is_err());
        assert_eq!(results[2].as_ref().unwrap()[0].uid, 2, "the failed delivery's UID is given back");
        assert!(!blob_exists(&store, &twin_blob).await);
        let state = store.mailbox_state(bob, "INBOX").await.unwrap().unwrap();
        assert_eq!((state.id, state.uidnext), (inbox, 3));
        let (_, records) = store.snapshot(inbox).await.unwrap();
        assert!(records.windows(2).all(|w| w[0].modseq < w[1].modseq), "{records:?}");
    }
}
