//! [`QueueStore`] for PostgreSQL: the same rows as SQLite (`sqlite::queue`), and leases, so
//! that several nodes share one queue and deliver each recipient once.
//!
//! - [`QueueStore::queue_due`] claims what it returns: the due recipients are selected
//!   `FOR UPDATE SKIP LOCKED` (a recipient another node is claiming at that moment is passed
//!   over, not waited for) and given `lease_owner` = this store and `lease_until` = now +
//!   the lease ([`LEASE`] by default). Another node's scan skips recipients under a lease that has not expired.
//! - A node's own leases are not in its way: its next scan returns them again (and extends
//!   them), as SQLite's scan returns everything due; the queue runner already skips the
//!   recipients it holds, so nothing changes for it.
//! - The runner renews the leases of what it holds every third of the lease
//!   ([`QueueStore::queue_renew`]), so an attempt that outlasts the lease (a slow remote
//!   server, many recipients) is not started a second time by another node.
//! - [`QueueStore::queue_update`] records the outcome and clears the lease. A node killed
//!   mid-delivery leaves its leases; once they expire another node takes the recipients.
//! - `lease_owner` is `cluster.node_id` and a random suffix per process, so an administrator
//!   reading the table sees which node holds what, and two nodes given one name by mistake
//!   still never share a lease.
//! - Times are the callers' `now` (unix seconds), like `next_attempt`: nodes keep their
//!   clocks in step (NTP), and a test can move time forward.
//! - Removing an entry whose recipients are all final locks the entry's row first, so two
//!   nodes finishing different recipients of one message at once cannot both leave it.

use std::collections::HashMap;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;

use super::{PgStore, blobs, release_blobs};
use crate::address::domain_of;
use crate::sqlite::now;
use crate::{Outbound, QueueEntry, QueueRcpt, QueueStore, RcptState, RcptUpdate, Result, StoreError};

/// How long a claimed recipient stays with its node unless the server sets another
/// (`PgStore::set_queue_lease`, `queue.lease`): longer than an attempt can take (the SMTP
/// timeouts add up to minutes), short enough that a dead node's mail waits little.
pub(crate) const LEASE: i64 = 900;

/// Queues a message; `account` is the user who submitted it (empty for none), held at once
/// when that user's sending is suspended.
pub(super) async fn insert(txn: &Transaction<'_>, id: &str, blob_id: &str, blob_size: i64, out: &Outbound, account: &str) -> Result<()> {
    let t = now();
    let size = blob_size + out.prefix.len() as i64;
    txn.execute(
        "INSERT INTO queue (id, blob_id, prefix, sender, size, smtputf8, is_dsn, created, account, held) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
         $9 <> '' AND EXISTS (SELECT 1 FROM sending_state WHERE account = $9 AND scope IS NOT NULL))",
        &[&id, &blob_id, &out.prefix, &out.sender, &size, &out.smtputf8, &out.is_dsn, &t, &account],
    )
    .await?;
    let stmt = txn
        .prepare("INSERT INTO queue_rcpts (queue_id, rcpt, domain, state, next_attempt, updated) VALUES ($1, $2, $3, 'pending', $4, $4)")
        .await?;
    for rcpt in &out.rcpts {
        txn.execute(&stmt, &[&id, rcpt, &domain_of(rcpt).to_ascii_lowercase(), &t]).await?;
    }
    Ok(())
}

const RCPT_COLUMNS: &str = "queue_id, id, rcpt, domain, state, attempts, next_attempt, last_error";

fn rcpt_from_row(r: &Row) -> (String, QueueRcpt) {
    (
        r.get(0),
        QueueRcpt {
            id: r.get(1),
            rcpt: r.get(2),
            domain: r.get(3),
            state: RcptState::parse(r.get(4)),
            attempts: r.get::<_, i64>(5) as u32,
            next_attempt: r.get(6),
            last_error: r.get(7),
        },
    )
}

/// Entries (in creation order) with the given recipients attached (in id order).
async fn entries(client: &impl GenericClient, rcpts: Vec<(String, QueueRcpt)>) -> Result<Vec<QueueEntry>> {
    let mut by_id: HashMap<String, Vec<QueueRcpt>> = HashMap::new();
    for (qid, r) in rcpts {
        by_id.entry(qid).or_default().push(r);
    }
    let ids: Vec<String> = by_id.keys().cloned().collect();
    let rows = client
        .query("SELECT id, sender, size, smtputf8, is_dsn, created, account, held FROM queue WHERE id = ANY($1)", &[&ids])
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let id: String = r.get(0);
        let mut rcpts = by_id.remove(&id).unwrap_or_default();
        rcpts.sort_by_key(|r| r.id);
        out.push(QueueEntry {
            id,
            sender: r.get(1),
            size: r.get::<_, i64>(2) as u64,
            smtputf8: r.get(3),
            is_dsn: r.get(4),
            created: r.get(5),
            account: r.get(6),
            held: r.get(7),
            rcpts,
        });
    }
    out.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
    Ok(out)
}

async fn list(store: &PgStore, id: Option<&str>) -> Result<Vec<QueueEntry>> {
    let mut conn = store.conn().await?;
    // One snapshot: an entry removed between reading its recipients and its row is neither.
    let txn = conn.build_transaction().isolation_level(tokio_postgres::IsolationLevel::RepeatableRead).start().await?;
    let rows = match id {
        Some(id) => txn.query(&format!("SELECT {RCPT_COLUMNS} FROM queue_rcpts WHERE queue_id = $1 ORDER BY id"), &[&id]).await?,
        None => txn.query(&format!("SELECT {RCPT_COLUMNS} FROM queue_rcpts ORDER BY id"), &[]).await?,
    };
    let out = entries(&txn, rows.iter().map(rcpt_from_row).collect()).await?;
    txn.commit().await?;
    Ok(out)
}

/// Deletes an entry and drops its reference to the body.
pub(super) async fn delete(txn: &Transaction<'_>, id: &str) -> Result<()> {
    let blob: String = txn
        .query_opt("DELETE FROM queue WHERE id = $1 RETURNING blob_id", &[&id])
        .await?
        .map(|r| r.get(0))
        .ok_or_else(|| StoreError::NotFound(format!("queue entry {id}")))?;
    release_blobs(txn, &[(blob, 1)]).await
}

#[async_trait]
impl QueueStore for PgStore {
    async fn queue_due(&self, now: i64, limit: usize) -> Result<Vec<QueueEntry>> {
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let rows = txn
            .query(
                &format!(
                    "WITH due AS ( \
                         SELECT r.id FROM queue_rcpts r JOIN queue q ON q.id = r.queue_id \
                         WHERE r.state = 'pending' AND r.next_attempt <= $1 AND NOT q.held \
                         AND (r.lease_until IS NULL OR r.lease_until <= $1 OR r.lease_owner = $3) \
                         ORDER BY r.next_attempt, r.id LIMIT $2 FOR UPDATE OF r SKIP LOCKED) \
                     UPDATE queue_rcpts SET lease_owner = $3, lease_until = $1 + $4 FROM due WHERE queue_rcpts.id = due.id \
                     RETURNING {}",
                    RCPT_COLUMNS.split(", ").map(|c| format!("queue_rcpts.{c}")).collect::<Vec<_>>().join(", ")
                ),
                &[&now, &(limit as i64), &self.lease_owner(), &self.shared.lease.load(std::sync::atomic::Ordering::Relaxed)],
            )
            .await?;
        let out = entries(&txn, rows.iter().map(rcpt_from_row).collect()).await?;
        txn.commit().await?;
        Ok(out)
    }

    async fn queue_list(&self) -> Result<Vec<QueueEntry>> {
        list(self, None).await
    }

    async fn queue_entry(&self, id: &str) -> Result<Option<QueueEntry>> {
        Ok(list(self, Some(id)).await?.pop())
    }

    async fn queue_message(&self, id: &str) -> Result<Vec<u8>> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt("SELECT prefix, blob_id FROM queue WHERE id = $1", &[&id])
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("queue entry {id}")))?;
        blobs::read_message(&conn, row.get(0), row.get(1)).await
    }

    fn queue_lease_renewal(&self) -> Option<std::time::Duration> {
        let lease = self.shared.lease.load(std::sync::atomic::Ordering::Relaxed);
        Some(std::time::Duration::from_secs((lease / 3).max(1) as u64))
    }

    async fn queue_renew(&self, ids: Vec<i64>, now: i64) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let lease = self.shared.lease.load(std::sync::atomic::Ordering::Relaxed);
        // Only leases still this node's: one taken over after this node stalled stays taken.
        self.conn()
            .await?
            .execute(
                "UPDATE queue_rcpts SET lease_until = $2::bigint + $3::bigint WHERE id = ANY($1) AND lease_owner = $4 AND state = 'pending'",
                &[&ids, &now, &lease, &self.lease_owner()],
            )
            .await?;
        Ok(())
    }

    async fn queue_update(&self, updates: Vec<RcptUpdate>) -> Result<()> {
        let t = now();
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let set = txn
            .prepare(
                "UPDATE queue_rcpts SET state = $2, next_attempt = $3, last_error = $4, attempts = attempts + 1, updated = $5, \
                 lease_owner = NULL, lease_until = NULL WHERE id = $1 RETURNING queue_id",
            )
            .await?;
        let mut touched: Vec<String> = Vec::new();
        for u in &updates {
            let Some(row) = txn.query_opt(&set, &[&u.id, &u.state.as_str(), &u.next_attempt, &u.error, &t]).await? else {
                return Err(StoreError::NotFound(format!("queue recipient {}", u.id)));
            };
            let qid: String = row.get(0);
            if !touched.contains(&qid) {
                touched.push(qid);
            }
        }
        touched.sort();
        for qid in touched {
            // The entry's row first: another node finishing its other recipients waits here.
            txn.execute("SELECT 1 FROM queue WHERE id = $1 FOR UPDATE", &[&qid]).await?;
            let pending: i64 =
                txn.query_one("SELECT count(*) FROM queue_rcpts WHERE queue_id = $1 AND state = 'pending'", &[&qid]).await?.get(0);
            if pending == 0 {
                delete(&txn, &qid).await?;
            }
        }
        txn.commit().await?;
        Ok(())
    }

    async fn queue_retry(&self, id: &str) -> Result<()> {
        let n = self
            .conn()
            .await?
            .execute("UPDATE queue_rcpts SET next_attempt = $2 WHERE queue_id = $1 AND state = 'pending'", &[&id, &now()])
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("pending recipients in queue entry {id}")));
        }
        Ok(())
    }

    async fn queue_delete(&self, id: &str) -> Result<()> {
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        delete(&txn, id).await?;
        txn.commit().await?;
        Ok(())
    }
}
