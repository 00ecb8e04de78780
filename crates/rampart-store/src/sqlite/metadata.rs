//! [`MetadataStore`] for SQLite: table `metadata`, the server's entries under mailbox 0;
//! triggers drop a mailbox's or an account's entries with it.

use async_trait::async_trait;
use rusqlite::params;

use super::SqliteStore;
use crate::metadata::{MetadataLimits, MetadataStore, OverLimit};
use crate::{AccountId, MailboxId, Result};

#[async_trait]
impl MetadataStore for SqliteStore {
    async fn metadata(&self, account: AccountId, mailbox: Option<MailboxId>) -> Result<Vec<(String, Vec<u8>)>> {
        let mailbox = mailbox.unwrap_or(0);
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached("SELECT name, value FROM metadata WHERE account_id = ?1 AND mailbox_id = ?2 ORDER BY name")?;
            let rows = stmt.query_map(params![account, mailbox], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    async fn set_metadata(
        &self,
        account: AccountId,
        mailbox: Option<MailboxId>,
        changes: Vec<(String, Option<Vec<u8>>)>,
        limits: MetadataLimits,
    ) -> Result<std::result::Result<(), OverLimit>> {
        let mailbox = mailbox.unwrap_or(0);
        self.write(move |conn, _| {
            // The user's totals after the change, counted before anything is written, so a
            // refused change leaves nothing behind.
            let (mut entries, mut bytes): (i64, i64) = conn.query_row(
                "SELECT count(*), coalesce(sum(length(name) + length(value)), 0) FROM metadata WHERE account_id = ?1",
                [account],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let mut old = conn.prepare_cached("SELECT length(name) + length(value) FROM metadata WHERE account_id = ?1 AND mailbox_id = ?2 AND name = ?3")?;
            for (name, value) in &changes {
                let before: Option<i64> = old.query_row(params![account, mailbox, name], |r| r.get(0)).ok();
                if let Some(b) = before {
                    entries -= 1;
                    bytes -= b;
                }
                if let Some(v) = value {
                    entries += 1;
                    bytes += (name.len() + v.len()) as i64;
                }
            }
            if entries as u64 > limits.entries || bytes as u64 > limits.bytes {
                return Ok(Err(OverLimit));
            }
            for (name, value) in changes {
                match value {
                    Some(v) => conn.execute(
                        "INSERT OR REPLACE INTO metadata (account_id, mailbox_id, name, value) VALUES (?1, ?2, ?3, ?4)",
                        params![account, mailbox, name, v],
                    )?,
                    None => conn.execute("DELETE FROM metadata WHERE account_id = ?1 AND mailbox_id = ?2 AND name = ?3", params![account, mailbox, name])?,
                };
            }
            Ok(Ok(()))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use crate::prelude::*;
    use crate::{MetadataLimits, MetadataStore, OverLimit, SqliteStore};

    #[tokio::test]
    async fn limits_are_kept_and_entries_go_with_their_mailbox() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).unwrap();
        store.add_domain("example.test").await.unwrap();
        let bob = store.add_account("bob@example.test", "h").await.unwrap();
        let limits = MetadataLimits { entries: 3, bytes: 100 };
        let set = |mailbox, changes: Vec<(&str, Option<&[u8]>)>| {
            let changes = changes.into_iter().map(|(n, v)| (n.to_string(), v.map(<[u8]>::to_vec))).collect();
            store.set_metadata(bob, mailbox, changes, limits)
        };
        let work = store.create_mailbox(bob, "Work", None).await.unwrap();
        assert_eq!(set(None, vec![("/private/a", Some(b"1")), ("/private/b", Some(b"2"))]).await.unwrap(), Ok(()));
        assert_eq!(set(Some(work), vec![("/shared/c", Some(b"3"))]).await.unwrap(), Ok(()));
        // A fourth entry is too many; replacing one is not; removing makes room.
        assert_eq!(set(Some(work), vec![("/shared/d", Some(b"4"))]).await.unwrap(), Err(OverLimit));
        assert_eq!(set(None, vec![("/private/a", Some(b"one"))]).await.unwrap(), Ok(()));
        assert_eq!(set(None, vec![("/private/b", None), ("/private/e", Some(&[0; 60][..]))]).await.unwrap(), Ok(()));
        assert_eq!(set(None, vec![("/private/e", Some(&[0; 90][..]))]).await.unwrap(), Err(OverLimit));
        let server = store.metadata(bob, None).await.unwrap();
        assert_eq!(server.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["/private/a", "/private/e"]);
        assert_eq!(server[0].1, b"one");
        assert_eq!(store.metadata(bob, Some(work)).await.unwrap().len(), 1);
        store.delete_mailbox(bob, "Work").await.unwrap();
        assert!(store.metadata(bob, Some(work)).await.unwrap().is_empty());
    }
}
