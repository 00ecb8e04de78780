//! [`DeliveryStore`] for SQLite: one delivery is one writer job that inserts the blob row,
//! one message row per target mailbox and the queue entry, then places the blob file.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::writer::Effects;
use super::pgp_delivery::Sealed;
use super::{SqliteStore, insert_blob, now, queue, summaries};
use crate::summary::Summary;
use crate::blob::BlobWriter;
use crate::quota::Submitted;
use crate::{Delivered, Delivery, DeliveryStore, Folder, MailboxId, Result, StoreError, Target};

#[async_trait]
impl DeliveryStore for SqliteStore {
    fn blob_writer(&self) -> Result<BlobWriter> {
        Ok(match self.inner.keys.get() {
            Some(keys) => BlobWriter::new(&self.inner.blob_root, Some(keys)),
            None => BlobWriter::new(&self.inner.blob_root, None).holding(self.inner.clear_writers.clone()),
        })
    }

    async fn deliver(&self, mut delivery: Delivery) -> Result<Vec<Delivered>> {
        if delivery.targets.is_empty() && delivery.outbound.as_ref().is_none_or(|o| o.rcpts.is_empty()) {
            return Err(StoreError::NoTargets);
        }
        let mut sealed = self.seal_for_keys(&mut delivery).await?;
        sealed.extend(self.seal_for_users(&mut delivery).await?);
        let summary = if delivery.targets.is_empty() { None } else { self.summarize(&delivery.prefix, &delivery.blob).await };
        self.write(move |conn, effects| deliver_all(conn, effects, delivery, summary, sealed, "")).await
    }

    async fn deliver_submitted(&self, mut delivery: Delivery, submitted: Submitted) -> Result<Vec<Delivered>> {
        if delivery.targets.is_empty() && delivery.outbound.as_ref().is_none_or(|o| o.rcpts.is_empty()) {
            return Err(StoreError::NoTargets);
        }
        let mut sealed = self.seal_for_keys(&mut delivery).await?;
        sealed.extend(self.seal_for_users(&mut delivery).await?);
        let summary = if delivery.targets.is_empty() { None } else { self.summarize(&delivery.prefix, &delivery.blob).await };
        self.write(move |conn, effects| {
            let account = if submitted.relayed { "" } else { submitted.account.as_str() };
            let delivered = deliver_all(conn, effects, delivery, summary, sealed, account)?;
            super::quota::record(conn, &submitted, now())?;
            Ok(delivered)
        })
        .await
    }
}

/// The message as received for the remaining targets and the queue (skipped when the
/// encrypted copies took every target: its blob file is removed when dropped), then each
/// encrypted copy, all in one transaction.
fn deliver_all(
    conn: &Connection,
    effects: &mut Effects,
    delivery: Delivery,
    summary: Option<Summary>,
    sealed: Vec<Sealed>,
    account: &str,
) -> Result<Vec<Delivered>> {
    let mut delivered = if delivery.targets.is_empty() && delivery.outbound.is_none() && !sealed.is_empty() {
        Vec::new()
    } else {
        deliver(conn, effects, delivery, summary, account)?
    };
    for copy in sealed {
        delivered.extend(copy.store(conn, effects)?);
    }
    Ok(delivered)
}

/// The writer job of a delivery; the message's summary is kept and each target account's
/// words indexed with its rows; `account` is the submitting user for the queue entry.
pub(super) fn deliver(
    conn: &Connection,
    effects: &mut Effects,
    delivery: Delivery,
    summary: Option<Summary>,
    account: &str,
) -> Result<Vec<Delivered>> {
    let Delivery { mut blob, prefix, internal_date, targets, reference, trail, outbound } = delivery;
    let size = (blob.size() + prefix.len() as u64) as i64;
    insert_blob(conn, effects, &blob, 0)?;
    let summary_id = match &summary {
        Some(s) if !targets.is_empty() => Some(summaries::insert(conn, blob.id(), s)?),
        _ => None,
    };
    let mut delivered: Vec<Delivered> = Vec::with_capacity(targets.len());
    for target in targets {
        let mailbox = target_mailbox(conn, &target)?;
        if delivered.iter().any(|d| d.mailbox == mailbox) {
            continue;
        }
        let (uid, modseq): (u32, i64) = conn
            .prepare_cached(
                "UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1 \
                 WHERE id = ?1 RETURNING uidnext - 1, highestmodseq",
            )?
            .query_row([mailbox], |r| Ok((r.get(0)?, r.get(1)?)))?;
        conn.prepare_cached(
            "INSERT INTO messages (mailbox_id, uid, blob_id, prefix, size, internal_date, modseq, reference, trail, summary) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?
        .execute(params![mailbox, uid, blob.id(), prefix, size, internal_date, modseq, reference, trail, summary_id])?;
        let words = summary.as_ref().and_then(|s| s.words.as_deref());
        if let (Some(id), Some(words)) = (summary_id, words)
            && !delivered.iter().any(|d| d.account == target.account)
        {
            summaries::insert_words(conn, target.account, id, words)?;
        }
        effects.mailbox_changed(mailbox);
        delivered.push(Delivered { account: target.account, mailbox, uid });
    }
    let mut refs = delivered.len() as i64;
    if let Some(out) = &outbound {
        queue::insert(conn, &reference, blob.id(), blob.size() as i64, out, account)?;
        refs += 1;
    }
    conn.prepare_cached("UPDATE blobs SET refcount = ?2 WHERE id = ?1")?.execute(params![blob.id(), refs])?;
    // Last, so that a failure above leaves the file where the savepoint rollback forgets it;
    // the directory fsync happens once for the whole batch.
    effects.place_blob(&mut blob)?;
    Ok(delivered)
}

/// The mailbox a target's folder names; INBOX when the account has no such folder.
pub(super) fn target_mailbox(conn: &Connection, target: &Target) -> Result<MailboxId> {
    let wanted = match target.folder {
        Folder::Inbox => "INBOX",
        Folder::Junk => "Junk",
    };
    let mut find = conn.prepare_cached("SELECT id FROM mailboxes WHERE account_id = ?1 AND name = ?2")?;
    if let Some(id) = find.query_row(params![target.account, wanted], |r| r.get(0)).optional()? {
        return Ok(id);
    }
    find.query_row(params![target.account, "INBOX"], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("INBOX of account {}", target.account)))
}
