//! [`MetadataStore`] for PostgreSQL: table `metadata`, the server's entries under mailbox 0;
//! triggers drop a mailbox's or an account's entries with it. The same behaviour as
//! `sqlite::metadata` (held to it by `crate::role_tests`). A change holds the account's row
//! while it counts the user's totals, so two sessions (on two nodes) cannot together pass the
//! limits that each alone keeps.

use async_trait::async_trait;

use super::PgStore;
use crate::metadata::{MetadataLimits, MetadataStore, OverLimit};
use crate::{AccountId, MailboxId, Result};

#[async_trait]
impl MetadataStore for PgStore {
    async fn metadata(&self, account: AccountId, mailbox: Option<MailboxId>) -> Result<Vec<(String, Vec<u8>)>> {
        let mailbox = mailbox.unwrap_or(0);
        let rows = self
            .conn()
            .await?
            .query("SELECT name, value FROM metadata WHERE account_id = $1 AND mailbox_id = $2 ORDER BY name", &[&account, &mailbox])
            .await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn set_metadata(
        &self,
        account: AccountId,
        mailbox: Option<MailboxId>,
        changes: Vec<(String, Option<Vec<u8>>)>,
        limits: MetadataLimits,
    ) -> Result<std::result::Result<(), OverLimit>> {
        let mailbox = mailbox.unwrap_or(0);
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        txn.execute("SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE", &[&account]).await?;
        // The user's totals after the change, counted before anything is written, so a refused
        // change leaves nothing behind.
        let row = txn
            .query_one(
                "SELECT count(*), coalesce(sum(length(name) + length(value)), 0)::bigint FROM metadata WHERE account_id = $1",
                &[&account],
            )
            .await?;
        let (mut entries, mut bytes): (i64, i64) = (row.get(0), row.get(1));
        let old = txn
            .prepare("SELECT length(name) + length(value) FROM metadata WHERE account_id = $1 AND mailbox_id = $2 AND name = $3")
            .await?;
        for (name, value) in &changes {
            if let Some(r) = txn.query_opt(&old, &[&account, &mailbox, name]).await? {
                entries -= 1;
                bytes -= i64::from(r.get::<_, i32>(0));
            }
            if let Some(v) = value {
                entries += 1;
                bytes += (name.len() + v.len()) as i64;
            }
        }
        if entries as u64 > limits.entries || bytes as u64 > limits.bytes {
            return Ok(Err(OverLimit));
        }
        for (name, value) in &changes {
            match value {
                Some(v) => {
                    txn.execute(
                        "INSERT INTO metadata (account_id, mailbox_id, name, value) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (account_id, mailbox_id, name) DO UPDATE SET value = excluded.value",
                        &[&account, &mailbox, name, v],
                    )
                    .await?
                }
                None => {
                    txn.execute("DELETE FROM metadata WHERE account_id = $1 AND mailbox_id = $2 AND name = $3", &[&account, &mailbox, name])
                        .await?
                }
            };
        }
        txn.commit().await?;
        Ok(Ok(()))
    }
}
