//! [`DeliveryStore`] for PostgreSQL: one delivery is one transaction that copies the body's
//! chunks from the spool (`blobs`), then takes a UID in each target mailbox under its row lock
//! (`mailbox::take_uids`, last, so the lock is held only for the index rows and COMMIT),
//! inserts the message rows, the summary and its words, the queue entry, and queues a NOTIFY
//! of each mailbox. It returns after COMMIT: `250` is sent only for what is durable
//! (`synchronous_commit` on). Concurrent deliveries are concurrent transactions, whose
//! commits PostgreSQL flushes together (its own group commit of the WAL).
//! Accounts with an OpenPGP key get their encrypted copy in the same transaction
//! (`pgp_delivery`).

use async_trait::async_trait;
use deadpool_postgres::Transaction;

use super::mailbox::take_uids;
use super::{PgStore, blobs, listen, queue, quota, summaries};
use crate::blob::BlobWriter;
use crate::quota::Submitted;
use crate::sqlite::now;
use crate::summary::Summary;
use crate::{Delivered, Delivery, DeliveryStore, Folder, MailboxId, Result, StoreError, Target};

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
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let account = match &submitted {
            Some(s) if !s.relayed => s.account.as_str(),
            _ => "",
        };
        // The message as received for the remaining targets and the queue (none when the
        // encrypted copies took every target), then each encrypted copy.
        let mut delivered = if delivery.targets.is_empty() && delivery.outbound.is_none() && !sealed.is_empty() {
            Vec::new()
        } else {
            deliver(&txn, delivery, summary, account).await?
        };
        for copy in sealed {
            delivered.extend(deliver(&txn, copy.delivery, copy.summary, "").await?);
        }
        if let Some(s) = &submitted {
            quota::record(&txn, s, now()).await?;
        }
        let changed: Vec<MailboxId> = delivered.iter().map(|d| d.mailbox).collect();
        self.commit(txn, &changed).await?;
        Ok(delivered)
    }

    /// Queues the NOTIFY of each changed mailbox, commits, and wakes this node's watchers.
    pub(super) async fn commit(&self, txn: Transaction<'_>, changed: &[MailboxId]) -> Result<()> {
        listen::notify(&txn, changed).await?;
        txn.commit().await?;
        self.shared.notifier.fire(changed);
        Ok(())
    }
}

/// The rows of a delivery in `txn`; `account` is the submitting user for the queue entry.
pub(super) async fn deliver(txn: &Transaction<'_>, delivery: Delivery, summary: Option<Summary>, account: &str) -> Result<Vec<Delivered>> {
    let Delivery { blob, prefix, internal_date, targets, reference, trail, outbound } = delivery;
    let size = (blob.size() + prefix.len() as u64) as i64;
    blobs::insert(txn, &blob, 0).await?;
    let summary_id = match &summary {
        Some(s) if !targets.is_empty() => Some(summaries::insert(txn, blob.id(), s).await?),
        _ => None,
    };
    // Each target's mailbox once (two targets may be one account's INBOX).
    let mut places: Vec<(crate::AccountId, MailboxId)> = Vec::with_capacity(targets.len());
    for target in &targets {
        let mailbox = target_mailbox(txn, target).await?;
        if !places.iter().any(|(_, m)| *m == mailbox) {
            places.push((target.account, mailbox));
        }
    }
    let mailboxes: Vec<MailboxId> = places.iter().map(|(_, m)| *m).collect();
    let taken = take_uids(txn, &mailboxes).await?;
    let insert = txn
        .prepare(
            "INSERT INTO messages (mailbox_id, uid, blob_id, prefix, size, internal_date, modseq, reference, trail, summary) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .await?;
    let mut delivered: Vec<Delivered> = Vec::with_capacity(places.len());
    for (account, mailbox) in places {
        let t = taken.iter().find(|t| t.mailbox == mailbox).expect("a UID for every mailbox");
        txn.execute(&insert, &[&mailbox, &i64::from(t.uid), &blob.id(), &prefix, &size, &internal_date, &t.modseq, &reference, &trail, &summary_id])
            .await?;
        let words = summary.as_ref().and_then(|s| s.words.as_deref());
        if let (Some(id), Some(words)) = (summary_id, words)
            && !delivered.iter().any(|d| d.account == account)
        {
            summaries::insert_words(txn, account, id, words).await?;
        }
        delivered.push(Delivered { account, mailbox, uid: t.uid });
    }
    let mut refs = delivered.len() as i64;
    if let Some(out) = &outbound {
        queue::insert(txn, &reference, blob.id(), blob.size() as i64, out, account).await?;
        refs += 1;
    }
    txn.execute("UPDATE blobs SET refcount = $2 WHERE id = $1", &[&blob.id(), &refs]).await?;
    Ok(delivered)
}

/// The mailbox a target's folder names; INBOX when the account has no such folder.
pub(super) async fn target_mailbox(txn: &Transaction<'_>, target: &Target) -> Result<MailboxId> {
    let wanted = match target.folder {
        Folder::Inbox => "INBOX",
        Folder::Junk => "Junk",
    };
    let row = txn
        .query_opt(
            "SELECT id FROM mailboxes WHERE account_id = $1 AND name IN ($2, 'INBOX') ORDER BY name = 'INBOX' LIMIT 1",
            &[&target.account, &wanted],
        )
        .await?;
    row.map(|r| r.get(0)).ok_or_else(|| StoreError::NotFound(format!("INBOX of account {}", target.account)))
}
