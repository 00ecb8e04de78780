//! [`MessageStore`] for PostgreSQL: mailboxes and messages as the CLI and IMAP FETCH read
//! them; a message opened for reading fetches its body's chunks one at a time (`blobs`).

use async_trait::async_trait;

use super::{PgStore, blobs};
use crate::{AccountId, Mailbox, MailboxId, MessageInfo, MessageMeta, MessageReader, MessageStore, Result, StoreError};

impl PgStore {
    /// The prefix and blob of a message; `NotFound` once expunged.
    async fn message_row(&self, client: &impl deadpool_postgres::GenericClient, mailbox: MailboxId, uid: u32) -> Result<(Vec<u8>, String)> {
        let row = client
            .query_opt("SELECT prefix, blob_id FROM messages WHERE mailbox_id = $1 AND uid = $2", &[&mailbox, &i64::from(uid)])
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("message {uid} in mailbox {mailbox}")))?;
        Ok((row.get(0), row.get(1)))
    }
}

#[async_trait]
impl MessageStore for PgStore {
    async fn mailboxes(&self, account: AccountId) -> Result<Vec<Mailbox>> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT id, name, uidvalidity, uidnext, special_use, \
                 EXISTS (SELECT 1 FROM subscriptions s WHERE s.account_id = mailboxes.account_id AND s.name = mailboxes.name) \
                 FROM mailboxes WHERE account_id = $1 ORDER BY id",
                &[&account],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| Mailbox {
                id: r.get(0),
                name: r.get(1),
                uidvalidity: r.get::<_, i64>(2) as u32,
                uidnext: r.get::<_, i64>(3) as u32,
                special_use: r.get(4),
                subscribed: r.get(5),
            })
            .collect())
    }

    async fn list_messages(&self, mailbox: MailboxId) -> Result<Vec<MessageMeta>> {
        let rows = self
            .conn()
            .await?
            .query("SELECT uid, size, internal_date, flags, reference FROM messages WHERE mailbox_id = $1 ORDER BY uid", &[&mailbox])
            .await?;
        Ok(rows
            .iter()
            .map(|r| MessageMeta {
                uid: r.get::<_, i64>(0) as u32,
                size: r.get::<_, i64>(1) as u64,
                internal_date: r.get(2),
                flags: r.get(3),
                reference: r.get(4),
            })
            .collect())
    }

    async fn read_message(&self, mailbox: MailboxId, uid: u32) -> Result<Vec<u8>> {
        let mut conn = self.conn().await?;
        // One snapshot: the message cannot lose its body between the two reads.
        let txn = conn.build_transaction().isolation_level(tokio_postgres::IsolationLevel::RepeatableRead).read_only(true).start().await?;
        let (prefix, blob) = self.message_row(&txn, mailbox, uid).await?;
        let message = blobs::read_message(&txn, prefix, &blob).await?;
        txn.commit().await?;
        Ok(message)
    }

    async fn open_message(&self, mailbox: MailboxId, uid: u32) -> Result<MessageReader> {
        let conn = self.conn().await?;
        let (prefix, blob) = self.message_row(&conn, mailbox, uid).await?;
        let chunks = blobs::Chunks::open(self.pool.clone(), &conn, &blob).await?;
        Ok(MessageReader::db(prefix, chunks))
    }

    async fn messages_by_reference(&self, reference: &str) -> Result<Vec<MessageInfo>> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT a.address || '/' || b.name, m.uid, m.size, m.internal_date, m.reference, m.trail, b.id \
                 FROM messages m JOIN mailboxes b ON m.mailbox_id = b.id JOIN accounts a ON b.account_id = a.id \
                 WHERE m.reference = $1 ORDER BY m.id",
                &[&reference],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| MessageInfo {
                mailbox: r.get(0),
                uid: r.get::<_, i64>(1) as u32,
                size: r.get::<_, i64>(2) as u64,
                internal_date: r.get(3),
                reference: r.get(4),
                trail: r.get(5),
                mailbox_id: r.get(6),
            })
            .collect())
    }
}
