//! [`MessageStore`] for SQLite: mailboxes and messages as the CLI and IMAP FETCH read them.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, read_stored, stored_body};
use crate::blob::blob_path;
use crate::codec;
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
        let keys = self.inner.keys.clone();
        self.read(move |conn| {
            let (prefix, blob_id): (Vec<u8>, String) = conn
                .query_row(
                    "SELECT prefix, blob_id FROM messages WHERE mailbox_id = ?1 AND uid = ?2",
                    params![mailbox, uid],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("message {uid} in mailbox {mailbox}")))?;
            read_stored(conn, keys.get().as_deref(), &root, prefix, &blob_id)
        })
        .await
    }

    async fn open_message(&self, mailbox: MailboxId, uid: u32) -> Result<MessageReader> {
        let root = self.inner.blob_root.clone();
        let keys = self.inner.keys.clone();
        let at = root.clone();
        let (prefix, blob_id, body) = self
            .read(move |conn| {
                let (prefix, blob_id): (Vec<u8>, String) = conn
                    .query_row(
                        "SELECT prefix, blob_id FROM messages WHERE mailbox_id = ?1 AND uid = ?2",
                        params![mailbox, uid],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?
                    .ok_or_else(|| StoreError::NotFound(format!("message {uid} in mailbox {mailbox}")))?;
                let body = stored_body(conn, keys.get().as_deref(), &at, &blob_id)?;
                Ok((prefix, blob_id, body))
            })
            .await?;
        let path = blob_path(&root, &blob_id);
        if let Some(stored) = body.inline {
            let data = codec::decode(&body.codec, stored, body.size).map_err(|e| StoreError::io(&path, e))?;
            return Ok(MessageReader::inline(prefix, data));
        }
        let file = match body.file {
            Some(f) => tokio::fs::File::from_std(f),
            None => tokio::fs::File::open(&path).await.map_err(|e| StoreError::io(&path, e))?,
        };
        MessageReader::file(prefix, path, file, body.size, body.codec)
    }

    async fn messages_by_reference(&self, reference: &str) -> Result<Vec<MessageInfo>> {
        let reference = reference.to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT a.address || '/' || b.name, m.uid, m.size, m.internal_date, m.reference, m.trail, b.id \
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
                        mailbox_id: r.get(6)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }
}
