//! [`QuarantineStore`] for PostgreSQL: the rows of `sqlite::quarantine` (a `quarantine` row
//! holding one reference on its body, a `quarantine_rcpts` row per account it waits for).
//! Holding is one transaction like a delivery; releasing inserts message rows into the
//! INBOXes (UIDs under their row locks, a NOTIFY each) and shares the body.
//! An account with an OpenPGP key gets its encrypted copy instead (`pgp_delivery`).

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;

use std::collections::HashMap;

use super::delivery::target_mailbox;
use super::pgp_delivery::Sealed;
use super::mailbox::take_uids;
use super::{PgStore, blobs, release_blobs};
use crate::quarantine::{Held, Hold, QuarantineStore};
use crate::sqlite::now;
use crate::{AccountId, Delivered, Folder, MailboxId, Result, StoreError, Target};

const HELD_COLUMNS: &str = "q.id, q.size, q.created, q.sender, q.subject, q.reason, q.score, q.trail";

async fn held_from_row(client: &impl GenericClient, r: &Row) -> Result<Held> {
    let id: String = r.get(0);
    let recipients = client
        .query(
            "SELECT a.address FROM quarantine_rcpts q JOIN accounts a ON a.id = q.account_id \
             WHERE q.quarantine_id = $1 ORDER BY a.address",
            &[&id],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(Held {
        id,
        size: r.get::<_, i64>(1) as u64,
        created: r.get(2),
        sender: r.get(3),
        subject: r.get(4),
        reason: r.get(5),
        score: r.get(6),
        trail: r.get(7),
        recipients,
    })
}

/// The accounts a held message waits for, limited to `account` when given.
async fn waiting_for(client: &impl GenericClient, id: &str, account: Option<AccountId>) -> Result<Vec<AccountId>> {
    let all: Vec<AccountId> = client
        .query("SELECT account_id FROM quarantine_rcpts WHERE quarantine_id = $1 ORDER BY account_id", &[&id])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(all.into_iter().filter(|a| account.is_none_or(|only| only == *a)).collect())
}

/// Stops holding `id` for `accounts`; the whole row (and its body reference) goes with the last.
async fn forget(txn: &Transaction<'_>, id: &str, accounts: &[AccountId]) -> Result<()> {
    txn.execute("DELETE FROM quarantine_rcpts WHERE quarantine_id = $1 AND account_id = ANY($2)", &[&id, &accounts]).await?;
    let left: i64 = txn.query_one("SELECT count(*) FROM quarantine_rcpts WHERE quarantine_id = $1", &[&id]).await?.get(0);
    if left == 0 {
        drop_held(txn, id).await?;
    }
    Ok(())
}

async fn drop_held(txn: &Transaction<'_>, id: &str) -> Result<()> {
    if let Some(r) = txn.query_opt("DELETE FROM quarantine WHERE id = $1 RETURNING blob_id", &[&id]).await? {
        release_blobs(txn, &[(r.get(0), 1)]).await?;
    }
    Ok(())
}

/// Releases `id` to its waiting accounts (only `account` when given) in `txn`.
async fn release(txn: &Transaction<'_>, id: &str, account: Option<AccountId>, mut sealed: HashMap<AccountId, Sealed>) -> Result<Vec<Delivered>> {
    // Locked: two nodes releasing it at once deliver it once.
    let row = txn
        .query_opt("SELECT blob_id, prefix, size, internal_date, trail FROM quarantine WHERE id = $1 FOR UPDATE", &[&id])
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("held message {id}")))?;
    let (blob, prefix, size, internal_date, trail): (String, Vec<u8>, i64, i64, String) =
        (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    let accounts = waiting_for(txn, id, account).await?;
    if accounts.is_empty() {
        return Err(StoreError::NotFound(format!("held message {id}")));
    }
    let mut delivered = Vec::new();
    let mut places: Vec<(AccountId, MailboxId)> = Vec::new();
    for a in &accounts {
        if let Some(mut copy) = sealed.remove(a) {
            copy.delivery.internal_date = internal_date;
            copy.delivery.trail.clone_from(&trail);
            delivered.extend(super::delivery::deliver(txn, copy.delivery, copy.summary, "").await?);
            continue;
        }
        places.push((*a, target_mailbox(txn, &Target { account: *a, folder: Folder::Inbox }).await?));
    }
    let mailboxes: Vec<MailboxId> = places.iter().map(|(_, m)| *m).collect();
    let taken = take_uids(txn, &mailboxes).await?;
    for (account, mailbox) in places {
        let t = taken.iter().find(|t| t.mailbox == mailbox).expect("a UID for every mailbox");
        txn.execute(
            "INSERT INTO messages (mailbox_id, uid, blob_id, prefix, size, internal_date, modseq, reference, trail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[&mailbox, &i64::from(t.uid), &blob, &prefix, &size, &internal_date, &t.modseq, &id, &trail],
        )
        .await?;
        txn.execute("UPDATE blobs SET refcount = refcount + 1 WHERE id = $1", &[&blob]).await?;
        delivered.push(Delivered { account, mailbox, uid: t.uid });
    }
    forget(txn, id, &accounts).await?;
    Ok(delivered)
}

#[async_trait]
impl QuarantineStore for PgStore {
    async fn hold(&self, hold: Hold) -> Result<()> {
        let Hold { blob, prefix, internal_date, accounts, reference, sender, subject, reason, score, trail } = hold;
        if accounts.is_empty() {
            return Err(StoreError::NoTargets);
        }
        let size = (blob.size() + prefix.len() as u64) as i64;
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        blobs::insert(&txn, &blob, 1).await?;
        txn.execute(
            "INSERT INTO quarantine (id, blob_id, prefix, size, created, internal_date, sender, subject, reason, score, trail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            &[&reference, &blob.id(), &prefix, &size, &now(), &internal_date, &sender, &subject, &reason, &score, &trail],
        )
        .await?;
        for account in accounts {
            txn.execute(
                "INSERT INTO quarantine_rcpts (quarantine_id, account_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&reference, &account],
            )
            .await?;
        }
        txn.commit().await?;
        Ok(())
    }

    async fn held(&self, account: Option<AccountId>) -> Result<Vec<Held>> {
        let conn = self.conn().await?;
        let rows = match account {
            None => conn.query(&format!("SELECT {HELD_COLUMNS} FROM quarantine q ORDER BY q.created DESC, q.id"), &[]).await?,
            Some(a) => {
                conn.query(
                    &format!(
                        "SELECT {HELD_COLUMNS} FROM quarantine q JOIN quarantine_rcpts r ON r.quarantine_id = q.id \
                         WHERE r.account_id = $1 ORDER BY q.created DESC, q.id"
                    ),
                    &[&a],
                )
                .await?
            }
        };
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            out.push(held_from_row(&conn, r).await?);
        }
        Ok(out)
    }

    async fn held_one(&self, id: &str) -> Result<Option<Held>> {
        let conn = self.conn().await?;
        match conn.query_opt(&format!("SELECT {HELD_COLUMNS} FROM quarantine q WHERE q.id = $1"), &[&id]).await? {
            Some(r) => Ok(Some(held_from_row(&conn, &r).await?)),
            None => Ok(None),
        }
    }

    async fn held_message(&self, id: &str) -> Result<Vec<u8>> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt("SELECT prefix, blob_id FROM quarantine WHERE id = $1", &[&id])
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("held message {id}")))?;
        blobs::read_message(&conn, row.get(0), row.get(1)).await
    }

    async fn release(&self, id: &str, account: Option<AccountId>) -> Result<Vec<Delivered>> {
        let sealed = self.seal_held(id, account).await?;
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let delivered = release(&txn, id, account, sealed).await?;
        let changed: Vec<MailboxId> = delivered.iter().map(|d| d.mailbox).collect();
        self.commit(txn, &changed).await?;
        Ok(delivered)
    }

    async fn delete_held(&self, id: &str, account: Option<AccountId>) -> Result<bool> {
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let accounts = waiting_for(&txn, id, account).await?;
        if accounts.is_empty() {
            return Ok(false);
        }
        forget(&txn, id, &accounts).await?;
        txn.commit().await?;
        Ok(true)
    }

    async fn expire_held(&self, before: i64) -> Result<u64> {
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let ids: Vec<String> =
            txn.query("SELECT id FROM quarantine WHERE created < $1", &[&before]).await?.iter().map(|r| r.get(0)).collect();
        for id in &ids {
            // Every account at once, and a row whose accounts were all removed too.
            drop_held(&txn, id).await?;
        }
        txn.commit().await?;
        Ok(ids.len() as u64)
    }
}
