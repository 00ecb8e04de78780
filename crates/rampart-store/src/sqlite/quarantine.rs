//! [`QuarantineStore`] for SQLite: a held message is one `quarantine` row holding one blob
//! reference, and one `quarantine_rcpts` row per account it waits for. Releasing inserts
//! message rows into those INBOXes, sharing the blob like a delivery to several accounts.

use std::collections::HashMap;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::delivery::target_mailbox;
use super::pgp_delivery::Sealed;
use super::writer::Effects;
use super::{SqliteStore, insert_blob, read_stored, release_blobs};
use crate::quarantine::{Held, Hold, QuarantineStore};
use crate::userkey::UserKeyStore;
use crate::{AccountId, Delivered, Folder, Result, StoreError, Target};

const HELD_COLUMNS: &str = "q.id, q.size, q.created, q.sender, q.subject, q.reason, q.score, q.trail";

fn held_from_row(conn: &Connection, r: &rusqlite::Row<'_>) -> Result<Held> {
    let id: String = r.get(0)?;
    let recipients = conn
        .prepare_cached(
            "SELECT a.address FROM quarantine_rcpts q JOIN accounts a ON a.id = q.account_id \
             WHERE q.quarantine_id = ?1 ORDER BY a.address",
        )?
        .query_map([&id], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(Held {
        id,
        size: r.get::<_, i64>(1)? as u64,
        created: r.get(2)?,
        sender: r.get(3)?,
        subject: r.get(4)?,
        reason: r.get(5)?,
        score: r.get(6)?,
        trail: r.get(7)?,
        recipients,
    })
}

fn held(conn: &Connection, account: Option<AccountId>) -> Result<Vec<Held>> {
    let sql = match account {
        None => format!("SELECT {HELD_COLUMNS} FROM quarantine q ORDER BY q.created DESC, q.id"),
        Some(_) => format!(
            "SELECT {HELD_COLUMNS} FROM quarantine q JOIN quarantine_rcpts r ON r.quarantine_id = q.id \
             WHERE r.account_id = ?1 ORDER BY q.created DESC, q.id"
        ),
    };
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = match account {
        None => stmt.query([])?,
        Some(a) => stmt.query([a])?,
    };
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(held_from_row(conn, r)?);
    }
    Ok(out)
}

fn hold(conn: &Connection, effects: &mut Effects, hold: Hold) -> Result<()> {
    let Hold { mut blob, prefix, internal_date, accounts, reference, sender, subject, reason, score, trail } = hold;
    if accounts.is_empty() {
        return Err(StoreError::NoTargets);
    }
    let size = (blob.size() + prefix.len() as u64) as i64;
    insert_blob(conn, effects, &blob, 1)?;
    conn.execute(
        "INSERT INTO quarantine (id, blob_id, prefix, size, created, internal_date, sender, subject, reason, score, trail) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![reference, blob.id(), prefix, size, super::now(), internal_date, sender, subject, reason, score, trail],
    )?;
    for account in accounts {
        conn.execute("INSERT OR IGNORE INTO quarantine_rcpts (quarantine_id, account_id) VALUES (?1, ?2)", params![reference, account])?;
    }
    // Last, as in a delivery: a failure above leaves the file where the rollback forgets it.
    effects.place_blob(&mut blob)?;
    Ok(())
}

/// The accounts a held message waits for, limited to `account` when given.
pub(super) fn waiting_for(conn: &Connection, id: &str, account: Option<AccountId>) -> Result<Vec<AccountId>> {
    let all = conn
        .prepare_cached("SELECT account_id FROM quarantine_rcpts WHERE quarantine_id = ?1 ORDER BY account_id")?
        .query_map([id], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<AccountId>>>()?;
    Ok(all.into_iter().filter(|a| account.is_none_or(|only| only == *a)).collect())
}

/// Stops holding `id` for `accounts`; the whole row (and its blob reference) goes with the last.
fn forget(conn: &Connection, effects: &mut Effects, id: &str, accounts: &[AccountId]) -> Result<()> {
    for a in accounts {
        conn.execute("DELETE FROM quarantine_rcpts WHERE quarantine_id = ?1 AND account_id = ?2", params![id, a])?;
    }
    let left: i64 = conn.query_row("SELECT COUNT(*) FROM quarantine_rcpts WHERE quarantine_id = ?1", [id], |r| r.get(0))?;
    if left == 0 {
        let blob: String = conn.query_row("DELETE FROM quarantine WHERE id = ?1 RETURNING blob_id", [id], |r| r.get(0))?;
        release_blobs(conn, effects, &[(blob, 1)])?;
    }
    Ok(())
}

/// Releases `id` to its waiting accounts (only `account` when given); an account with an
/// OpenPGP key gets its encrypted copy from `sealed` instead of the held message.
fn release(conn: &Connection, effects: &mut Effects, id: &str, account: Option<AccountId>, mut sealed: HashMap<AccountId, Sealed>) -> Result<Vec<Delivered>> {
    let row: Option<(String, Vec<u8>, i64, i64, String)> = conn
        .query_row("SELECT blob_id, prefix, size, internal_date, trail FROM quarantine WHERE id = ?1", [id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .optional()?;
    let Some((blob, prefix, size, internal_date, trail)) = row else { return Err(StoreError::NotFound(format!("held message {id}"))) };
    let accounts = waiting_for(conn, id, account)?;
    if accounts.is_empty() {
        return Err(StoreError::NotFound(format!("held message {id}")));
    }
    let mut delivered = Vec::new();
    for account in &accounts {
        if let Some(mut copy) = sealed.remove(account) {
            copy.delivery.internal_date = internal_date;
            copy.delivery.trail.clone_from(&trail);
            delivered.extend(copy.store(conn, effects)?);
            continue;
        }
        let mailbox = target_mailbox(conn, &Target { account: *account, folder: Folder::Inbox })?;
        let (uid, modseq): (u32, i64) = conn
            .prepare_cached(
                "UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1 \
                 WHERE id = ?1 RETURNING uidnext - 1, highestmodseq",
            )?
            .query_row([mailbox], |r| Ok((r.get(0)?, r.get(1)?)))?;
        conn.prepare_cached(
            "INSERT INTO messages (mailbox_id, uid, blob_id, prefix, size, internal_date, modseq, reference, trail) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?
        .execute(params![mailbox, uid, blob, prefix, size, internal_date, modseq, id, trail])?;
        conn.execute("UPDATE blobs SET refcount = refcount + 1 WHERE id = ?1", [&blob])?;
        effects.mailbox_changed(mailbox);
        delivered.push(Delivered { account: *account, mailbox, uid });
    }
    forget(conn, effects, id, &accounts)?;
    Ok(delivered)
}

#[async_trait]
impl QuarantineStore for SqliteStore {
    async fn hold(&self, h: Hold) -> Result<()> {
        self.write(move |conn, effects| hold(conn, effects, h)).await
    }

    async fn held(&self, account: Option<AccountId>) -> Result<Vec<Held>> {
        self.read(move |conn| held(conn, account)).await
    }

    async fn held_one(&self, id: &str) -> Result<Option<Held>> {
        let id = id.to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare(&format!("SELECT {HELD_COLUMNS} FROM quarantine q WHERE q.id = ?1"))?;
            let mut rows = stmt.query([&id])?;
            match rows.next()? {
                Some(r) => Ok(Some(held_from_row(conn, r)?)),
                None => Ok(None),
            }
        })
        .await
    }

    async fn held_message(&self, id: &str) -> Result<Vec<u8>> {
        let (id, root, keys) = (id.to_string(), self.inner.blob_root.clone(), self.inner.keys.clone());
        self.read(move |conn| {
            let row: Option<(Vec<u8>, String)> =
                conn.query_row("SELECT prefix, blob_id FROM quarantine WHERE id = ?1", [&id], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
            let (prefix, blob) = row.ok_or_else(|| StoreError::NotFound(format!("held message {id}")))?;
            read_stored(conn, keys.get().as_deref(), &root, prefix, &blob)
        })
        .await
    }

    async fn release(&self, id: &str, account: Option<AccountId>) -> Result<Vec<Delivered>> {
        let sealed = self.seal_held(id, account).await?;
        let id = id.to_string();
        let delivered = self.write(move |conn, effects| release(conn, effects, &id, account, sealed)).await?;
        // An account in per-user mode got a reference to the held message, stored as the
        // quarantine keeps it: sealed for the user right away, like any mail of the account.
        let mut accounts: Vec<AccountId> = delivered.iter().map(|d| d.account).collect();
        accounts.sort_unstable();
        accounts.dedup();
        for account in accounts {
            self.convert_user_messages(account).await?;
        }
        Ok(delivered)
    }

    async fn delete_held(&self, id: &str, account: Option<AccountId>) -> Result<bool> {
        let id = id.to_string();
        self.write(move |conn, effects| {
            let accounts = waiting_for(conn, &id, account)?;
            if accounts.is_empty() {
                return Ok(false);
            }
            forget(conn, effects, &id, &accounts)?;
            Ok(true)
        })
        .await
    }

    async fn expire_held(&self, before: i64) -> Result<u64> {
        self.write(move |conn, effects| {
            let ids = conn
                .prepare("SELECT id FROM quarantine WHERE created < ?1")?
                .query_map([before], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            for id in &ids {
                let accounts = waiting_for(conn, id, None)?;
                if accounts.is_empty() {
                    // Its accounts were removed: the row alone holds the blob.
                    let blob: String = conn.query_row("DELETE FROM quarantine WHERE id = ?1 RETURNING blob_id", [id], |r| r.get(0))?;
                    release_blobs(conn, effects, &[(blob, 1)])?;
                } else {
                    forget(conn, effects, id, &accounts)?;
                }
            }
            Ok(ids.len() as u64)
        })
        .await
    }
}
