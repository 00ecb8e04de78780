//! [`DeliveryStore`] for PostgreSQL. A delivery makes its OpenPGP copies (`pgp_delivery`) and
//! its summary before any transaction, then hands its work to the store's combiner
//! ([`super::batch`]), which runs every delivery waiting in ONE transaction and commits once,
//! as SQLite's writer does: deliveries into one busy mailbox share a commit (and its WAL
//! flush) instead of queueing one commit each behind the mailbox's row lock. The call returns
//! after COMMIT: `250` is sent only for what is durable (`synchronous_commit` on).
//!
//! A delivery is stored in two steps, each inside a SAVEPOINT of its own, so one that fails is
//! rolled back alone:
//! - [`stage`]: copies the body's chunks from the spool (`blobs`), inserts the summary and
//!   finds each target's mailbox, all before any mailbox row is locked;
//! - [`store`]: once the batch holds the row locks of all its target mailboxes (in ascending
//!   id order, `batch`), takes a UID in each (`mailbox::take_uids`), inserts the message rows,
//!   the summary's words, the queue entry and the refcount.
//!
//! The quarantine's release stores its copies with [`deliver`] (both steps in its own
//! transaction).

use async_trait::async_trait;
use deadpool_postgres::Transaction;

use super::mailbox::take_uids;
use super::{PgStore, batch, blobs, queue, summaries};
use crate::blob::BlobWriter;
use crate::quota::Submitted;
use crate::summary::Summary;
use crate::{AccountId, Delivered, Delivery, DeliveryStore, Folder, MailboxId, Result, StoreError, Target};

#[async_trait]
impl DeliveryStore for PgStore {
    fn blob_writer(&self) -> Result<BlobWriter> {
        Ok(BlobWriter::spool(&self.shared.spool))
    }

    async fn deliver(&self, delivery: Delivery) -> Result<Vec<Delivered>> {
        self.deliver_with(delivery, None).await
    }

    async fn deliver_submitted(&self, delivery: Delivery, submitted: Submitted) -> Result<Vec<Delivered>> {
        self.deliver_with(delivery, Some(submitted)).await
    }
}

impl PgStore {
    async fn deliver_with(&self, mut delivery: Delivery, submitted: Option<Submitted>) -> Result<Vec<Delivered>> {
        if delivery.targets.is_empty() && delivery.outbound.as_ref().is_none_or(|o| o.rcpts.is_empty()) {
            return Err(StoreError::NoTargets);
        }
        let sealed = self.seal_for_keys(&mut delivery).await?;
        let summary = if delivery.targets.is_empty() { None } else { self.summarize(&delivery.prefix, &delivery.blob).await };
        let account = match &submitted {
            Some(s) if !s.relayed => s.account.clone(),
            _ => String::new(),
        };
        // The message as received for the remaining targets and the queue (none when the
        // encrypted copies took every target), then each encrypted copy.
        let mut parts = Vec::with_capacity(1 + sealed.len());
        if !(delivery.targets.is_empty() && delivery.outbound.is_none() && !sealed.is_empty()) {
            parts.push(Part { delivery, summary, account });
        }
        for copy in sealed {
            parts.push(Part { delivery: copy.delivery, summary: copy.summary, account: String::new() });
        }
        self.shared.batcher.deliver(batch::Work { parts, submitted }).await
    }

    /// Queues the NOTIFY of each changed mailbox, commits, and wakes this node's watchers.
    pub(super) async fn commit(&self, txn: Transaction<'_>, changed: &[MailboxId]) -> Result<()> {
        super::listen::notify(&txn, changed).await?;
        txn.commit().await?;
        self.shared.notifier.fire(changed);
        Ok(())
    }
}

/// One body to store: the message as received or an encrypted copy; `account` is the
/// submitting user for the queue entry (empty for none).
pub(super) struct Part {
    pub delivery: Delivery,
    pub summary: Option<Summary>,
    pub account: String,
}

/// A part whose body and summary are in the transaction, waiting for its UIDs.
pub(super) struct Staged {
    delivery: Delivery,
    account: String,
    summary_id: Option<i64>,
    words: Option<String>,
    /// Each target's mailbox once (two targets may be one account's INBOX).
    places: Vec<(AccountId, MailboxId)>,
}

impl Staged {
    /// The mailboxes whose rows must be locked before [`store`].
    pub fn mailboxes(&self) -> impl Iterator<Item = MailboxId> + '_ {
        self.places.iter().map(|(_, m)| *m)
    }

    /// The body's id, for the cleanup of a part whose [`store`] failed.
    pub fn blob_id(&self) -> &str {
        self.delivery.blob.id()
    }
}

/// The rows of a delivery in `txn`, locking the mailboxes itself (the quarantine's release).
pub(super) async fn deliver(txn: &Transaction<'_>, delivery: Delivery, summary: Option<Summary>, account: &str) -> Result<Vec<Delivered>> {
    let staged = stage(txn, Part { delivery, summary, account: account.to_string() }).await?;
    store(txn, &staged).await
}

/// The first step: the body's chunks, its summary and the target mailboxes; no row lock.
pub(super) async fn stage(txn: &Transaction<'_>, part: Part) -> Result<Staged> {
    let Part { delivery, summary, account } = part;
    blobs::insert(txn, &delivery.blob, 0).await?;
    let (summary_id, words) = match summary {
        Some(s) if !delivery.targets.is_empty() => (Some(summaries::insert(txn, delivery.blob.id(), &s).await?), s.words),
        _ => (None, None),
    };
    let mut places: Vec<(AccountId, MailboxId)> = Vec::with_capacity(delivery.targets.len());
    for target in &delivery.targets {
        let mailbox = target_mailbox(txn, target).await?;
        if !places.iter().any(|(_, m)| *m == mailbox) {
            places.push((target.account, mailbox));
        }
    }
    Ok(Staged { delivery, account, summary_id, words, places })
}

/// The second step: UIDs (the mailbox rows are locked here if the caller has not locked
/// them yet), message rows, words, queue entry and refcount. Takes `staged` by reference so
/// that a batch can undo it and still name its body.
pub(super) async fn store(txn: &Transaction<'_>, staged: &Staged) -> Result<Vec<Delivered>> {
    let Staged { delivery, account: submitter, summary_id, words, places } = staged;
    let Delivery { blob, prefix, internal_date, reference, trail, outbound, .. } = delivery;
    let size = (blob.size() + prefix.len() as u64) as i64;
    let mailboxes: Vec<MailboxId> = staged.mailboxes().collect();
    let taken = take_uids(txn, &mailboxes).await?;
    let insert = txn
        .prepare_cached(
            "INSERT INTO messages (mailbox_id, uid, blob_id, prefix, size, internal_date, modseq, reference, trail, summary) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .await?;
    let mut delivered: Vec<Delivered> = Vec::with_capacity(places.len());
    for &(account, mailbox) in places {
        let t = taken.iter().find(|t| t.mailbox == mailbox).expect("a UID for every mailbox");
        txn.execute(&insert, &[&mailbox, &i64::from(t.uid), &blob.id(), prefix, &size, internal_date, &t.modseq, reference, trail, summary_id])
            .await?;
        if let (Some(id), Some(words)) = (summary_id, words)
            && !delivered.iter().any(|d| d.account == account)
        {
            summaries::insert_words(txn, account, *id, words).await?;
        }
        delivered.push(Delivered { account, mailbox, uid: t.uid });
    }
    let mut refs = delivered.len() as i64;
    if let Some(out) = outbound {
        queue::insert(txn, reference, blob.id(), blob.size() as i64, out, submitter).await?;
        refs += 1;
    }
    let refcount = txn.prepare_cached("UPDATE blobs SET refcount = $2 WHERE id = $1").await?;
    txn.execute(&refcount, &[&blob.id(), &refs]).await?;
    Ok(delivered)
}

/// The mailbox a target's folder names; INBOX when the account has no such folder.
pub(super) async fn target_mailbox(txn: &Transaction<'_>, target: &Target) -> Result<MailboxId> {
    let wanted = match target.folder {
        Folder::Inbox => "INBOX",
        Folder::Junk => "Junk",
    };
    let stmt = txn
        .prepare_cached("SELECT id FROM mailboxes WHERE account_id = $1 AND name IN ($2, 'INBOX') ORDER BY name = 'INBOX' LIMIT 1")
        .await?;
    let row = txn.query_opt(&stmt, &[&target.account, &wanted]).await?;
    row.map(|r| r.get(0)).ok_or_else(|| StoreError::NotFound(format!("INBOX of account {}", target.account)))
}
