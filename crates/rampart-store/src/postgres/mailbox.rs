//! UIDs and MODSEQs on PostgreSQL, taken by delivery, APPEND and the quarantine's release
//! (COPY/MOVE and flag changes lock the same rows, `imap`).
//!
//! A UID and a MODSEQ are taken by one `UPDATE mailboxes … RETURNING` in the transaction that
//! stores the message. The UPDATE locks the mailbox's row until COMMIT, so transactions storing
//! into one mailbox — on any node — take their numbers one after the other, and each commits
//! before the next gets its number. That is what IMAP needs and a sequence would not give:
//! - UIDs become visible in ascending order: a client that has seen UID 7 never later sees
//!   UID 6 appear (a sequence hands out 6 and 7 to two transactions that may commit 7 first);
//! - MODSEQs ascend with them, so "changed since MODSEQ n" (CONDSTORE/QRESYNC) misses nothing;
//! - a transaction that rolls back gives its UID back: no gaps from failed deliveries.
//!
//! The cost is that transactions storing into one mailbox serialize on its row for their
//! length; a delivery writes the body's chunks first and takes the lock last, so a
//! transaction holds it only while it writes index rows and commits, and a node's deliveries
//! share transactions (`batch`), so one commit serves many. Several mailboxes are locked in
//! ascending id order ([`take_uids`]; a delivery batch locks all of its mailboxes so in one
//! statement first), so two such transactions cannot deadlock.

use deadpool_postgres::Transaction;

use crate::{DbError, MailboxId, Result, StoreError};

/// A UID and the MODSEQ of the change that stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Taken {
    pub mailbox: MailboxId,
    pub uid: u32,
    pub modseq: i64,
}

/// Takes the next UID and MODSEQ of each mailbox (duplicates once), in ascending mailbox id
/// order; the rows stay locked until the transaction ends. `NotFound` for a mailbox that is
/// gone.
pub(crate) async fn take_uids(txn: &Transaction<'_>, mailboxes: &[MailboxId]) -> Result<Vec<Taken>> {
    let mut ids = mailboxes.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let stmt = txn
        .prepare_cached(
            "UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1 \
             WHERE id = $1 RETURNING uidnext - 1, highestmodseq",
        )
        .await?;
    let mut taken = Vec::with_capacity(ids.len());
    for mailbox in ids {
        let row = txn.query_opt(&stmt, &[&mailbox]).await?.ok_or_else(|| StoreError::NotFound(format!("mailbox {mailbox}")))?;
        let uid: i64 = row.get(0);
        // Past 2^32 - 1 (RFC 3501's limit) is a broken invariant, as a bad column type is.
        let uid = u32::try_from(uid)
            .map_err(|_| StoreError::Db(DbError::new(std::io::Error::other(format!("mailbox {mailbox}: UID {uid} past 2^32")), false)))?;
        taken.push(Taken { mailbox, uid, modseq: row.get(1) });
    }
    Ok(taken)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::take_uids;
    use crate::postgres::{PgStore, testdb};
    use crate::prelude::*;

    /// A store with bob's account; his INBOX and Sent mailbox ids.
    async fn store() -> (PgStore, i64, i64) {
        let store = PgStore::open(&testdb::migrated().await, 24, None, &testdb::spool()).await.unwrap();
        store.add_domain("example.test").await.unwrap();
        let bob = store.add_account("bob@example.test", "h").await.unwrap();
        let conn = store.conn().await.unwrap();
        let id = |name: &'static str| {
            let conn = &conn;
            async move {
                conn.query_one("SELECT id FROM mailboxes WHERE account_id = $1 AND name = $2", &[&bob, &name]).await.unwrap().get(0)
            }
        };
        let (inbox, sent) = (id("INBOX").await, id("Sent").await);
        conn.execute("INSERT INTO blobs (id, size, refcount) VALUES ('b', 0, 0)", &[]).await.unwrap();
        (store, inbox, sent)
    }

    /// One delivery: takes UIDs in `mailboxes` and stores a message row in each, in one
    /// transaction; returns the UIDs it got in `mailboxes[0]`.
    async fn deliver(store: &PgStore, mailboxes: &[i64]) -> u32 {
        let mut conn = store.conn().await.unwrap();
        let txn = conn.transaction().await.unwrap();
        let taken = take_uids(&txn, mailboxes).await.unwrap();
        for t in &taken {
            txn.execute(
                "INSERT INTO messages (mailbox_id, uid, blob_id, prefix, size, internal_date, modseq, reference, trail) \
                 VALUES ($1, $2, 'b', '', 0, 0, $3, 'r', '[]')",
                &[&t.mailbox, &i64::from(t.uid), &t.modseq],
            )
            .await
            .unwrap();
        }
        txn.commit().await.unwrap();
        taken.iter().find(|t| t.mailbox == mailboxes[0]).unwrap().uid
    }

    #[tokio::test]
    async fn concurrent_deliveries_get_distinct_ascending_uids_and_modseqs() {
        let (store, inbox, sent) = store().await;
        // Half of them into INBOX then Sent, half the other way round: no deadlock.
        let tasks = (0..16).map(|i| {
            let store = store.clone();
            let order = if i % 2 == 0 { vec![inbox, sent] } else { vec![sent, inbox] };
            tokio::spawn(async move { deliver(&store, &order).await })
        });
        let mut uids = Vec::new();
        for t in tasks {
            uids.push(t.await.unwrap());
        }
        uids.sort_unstable();
        assert_eq!(uids.len(), 16);
        let conn = store.conn().await.unwrap();
        for mailbox in [inbox, sent] {
            let rows = conn
                .query("SELECT uid, modseq FROM messages WHERE mailbox_id = $1 ORDER BY uid", &[&mailbox])
                .await
                .unwrap();
            let got: Vec<(i64, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
            // UIDs 1..=16 without gaps; MODSEQs ascend with them (the first change is 2).
            assert_eq!(got, (1..=16).map(|u| (u, u + 1)).collect::<Vec<_>>(), "mailbox {mailbox}");
            let next: (i64, i64) = conn
                .query_one("SELECT uidnext, highestmodseq FROM mailboxes WHERE id = $1", &[&mailbox])
                .await
                .map(|r| (r.get(0), r.get(1)))
                .unwrap();
            assert_eq!(next, (17, 17));
        }
    }

    #[tokio::test]
    async fn a_uid_is_taken_only_after_the_previous_commits_and_a_rollback_gives_it_back() {
        let (store, inbox, _) = store().await;
        let mut conn = store.conn().await.unwrap();
        let first = conn.transaction().await.unwrap();
        assert_eq!(take_uids(&first, &[inbox]).await.unwrap()[0].uid, 1);
        // Another node's delivery waits for the mailbox row...
        let other = tokio::spawn({
            let store = store.clone();
            async move { deliver(&store, &[inbox]).await }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!other.is_finished(), "it must not take a UID while UID 1 is uncommitted");
        // ...and gets UID 1 when the first transaction rolls back: no gap.
        first.rollback().await.unwrap();
        assert_eq!(other.await.unwrap(), 1);
        assert_eq!(deliver(&store, &[inbox]).await, 2);
    }

    #[tokio::test]
    async fn a_mailbox_that_is_gone_is_not_found() {
        let (store, _, _) = store().await;
        let mut conn = store.conn().await.unwrap();
        let txn = conn.transaction().await.unwrap();
        assert!(matches!(take_uids(&txn, &[999_999]).await, Err(crate::StoreError::NotFound(_))));
    }
}
