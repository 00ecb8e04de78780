//! [`MessageStore`] for SQLite: mailboxes and messages as the CLI and IMAP FETCH read them.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, read_stored};
use crate::blob::blob_path;
use crate::{AccountId, Mailbox, MailboxId, MessageInfo, MessageMeta, MessageReader, MessageStore, Result, StoreError};

#[async_trait]
impl MessageStore for SqliteStore {
    async fn mailboxes(&self, account: AccountId) -> Result<Vec<Mailbox>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT id, name, uidvalidity, uidnext, special_use, \
                 EXISTS (SELECT 1 FROM subscriptions s WHERE s.account_id = mailboxes.account_id AND s.name = mailboxes.name) \
                 FROM mailboxes WHERE account_id = ?1 ORDER BY id",
            )?;
            let rows = stmt
                .query_map([account], |r| {
                    Ok(Mailbox {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        uidvalidity: r.get(2)?,
                        uidnext: r.get(3)?,
                        special_use: r.get(4)?,
                        subscribed: r.get(5)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    async fn list_messages(&self, mailbox: MailboxId) -> Result<Vec<MessageMeta>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT uid, size, internal_date, flags, reference FROM messages WHERE mailbox_id = ?1 ORDER BY uid",
            )?;
            let rows = stmt
                .query_map([mailbox], |r| {
                    Ok(MessageMeta {
                        uid: r.get(0)?,
                        size: r.get::<_, i64>(1)? as u64,
                        internal_date: r.get(2)?,
                        flags: r.get(3)?,
                        reference: r.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    async fn read_message(&self, mailbox: MailboxId, uid: u32) -> Result<Vec<u8>> {
        let root = self.inner.blob_root.clone();
        self.read(move |conn| {
            let (prefix, blob_id): (Vec<u8>, String) = conn
                .query_row(
                    "SELECT prefix, blob_id FROM messages WHERE mailbox_id = ?1 AND uid = ?2",
                    params![mailbox, uid],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("message {uid} in mailbox {mailbox}")))?;
            read_stored(conn, &root, prefix, &blob_id)
        })
        .await
    }

    async fn open_message(&self, mailbox: MailboxId, uid: u32) -> Result<MessageReader> {
        let root = self.inner.blob_root.clone();
        let (prefix, blob_id, size, data) = self
            .read(move |conn| {
                conn.query_row(
                    "SELECT m.prefix, m.blob_id, b.size, b.data FROM messages m JOIN blobs b ON b.id = m.blob_id \
                     WHERE m.mailbox_id = ?1 AND m.uid = ?2",
                    params![mailbox, uid],
                    |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, Option<Vec<u8>>>(3)?)),
                )
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("message {uid} in mailbox {mailbox}")))
            })
            .await?;
        if let Some(data) = data {
            return Ok(MessageReader::inline(prefix, data));
        }
        let path = blob_path(&root, &blob_id);
        let file = tokio::fs::File::open(&path).await.map_err(|e| StoreError::io(&path, e))?;
        Ok(MessageReader::file(prefix, path, file, size as u64))
    }

    async fn messages_by_reference(&self, reference: &str) -> Result<Vec<MessageInfo>> {
        let reference = reference.to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT a.address || '/' || b.name, m.uid, m.size, m.internal_date, m.reference, m.trail \
                 FROM messages m JOIN mailboxes b ON m.mailbox_id = b.id JOIN accounts a ON b.account_id = a.id \
                 WHERE m.reference = ?1 ORDER BY m.id",
            )?;
            let rows = stmt
                .query_map([reference], |r| {
                    Ok(MessageInfo {
                        mailbox: r.get(0)?,
                        uid: r.get(1)?,
                        size: r.get::<_, i64>(2)? as u64,
                        internal_date: r.get(3)?,
                        reference: r.get(4)?,
                        trail: r.get(5)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }
}
