//! [`QueueStore`] for SQLite. The outbound queue: one row per message, one per recipient with its own state and schedule.
//! The queue holds one reference on the message blob; the last final recipient releases it.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::writer::Effects;
use super::{SqliteStore, now, read_body, release_blobs, stored_body};
use crate::address::domain_of;
use crate::{Outbound, QueueEntry, QueueRcpt, QueueStore, RcptState, RcptUpdate, Result, StoreError};

/// Queues a message; `account` is the user who submitted it (empty for none). It is held at
/// once when that user's sending is suspended: the suspension may have come after its MAIL.
pub fn insert(conn: &Connection, id: &str, blob_id: &str, blob_size: i64, out: &Outbound, account: &str) -> Result<()> {
    let t = now();
    let size = blob_size + out.prefix.len() as i64;
    // The prefix in its own table (see the schema): off the queue row's leaf.
    let prefix_id: i64 = conn
        .prepare_cached("INSERT INTO queue_prefixes (prefix) VALUES (?1) RETURNING id")?
        .query_row([&out.prefix], |r| r.get(0))?;
    conn.prepare_cached(
        "INSERT INTO queue (id, blob_id, prefix, prefix_id, sender, size, smtputf8, is_dsn, created, account, held) \
         VALUES (?1, ?2, x'', ?3, ?4, ?5, ?6, ?7, ?8, ?9, \
         ?9 != '' AND EXISTS (SELECT 1 FROM sending_state WHERE account = ?9 AND scope IS NOT NULL))",
    )?
    .execute(params![id, blob_id, prefix_id, out.sender, size, out.smtputf8, out.is_dsn, t, account])?;
    let mut stmt = conn.prepare_cached(
        "INSERT INTO queue_rcpts (queue_id, rcpt, domain, state, next_attempt, updated) VALUES (?1, ?2, ?3, 'pending', ?4, ?4)",
    )?;
    for rcpt in &out.rcpts {
        stmt.execute(params![id, rcpt, domain_of(rcpt).to_ascii_lowercase(), t])?;
    }
    Ok(())
}

fn rcpt_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, QueueRcpt)> {
    Ok((
        r.get(0)?,
        QueueRcpt {
            id: r.get(1)?,
            rcpt: r.get(2)?,
            domain: r.get(3)?,
            state: RcptState::parse(&r.get::<_, String>(4)?),
            attempts: r.get(5)?,
            next_attempt: r.get(6)?,
            last_error: r.get(7)?,
        },
    ))
}

/// Entries (in creation order) with the given recipients attached.
fn entries(conn: &Connection, rcpts: Vec<(String, QueueRcpt)>) -> Result<Vec<QueueEntry>> {
    let mut order: Vec<String> = Vec::new();
    let mut by_id: HashMap<String, Vec<QueueRcpt>> = HashMap::new();
    for (qid, r) in rcpts {
        if !by_id.contains_key(&qid) {
            order.push(qid.clone());
        }
        by_id.entry(qid).or_default().push(r);
    }
    let mut stmt = conn.prepare_cached("SELECT sender, size, smtputf8, is_dsn, created, account, held FROM queue WHERE id = ?1")?;
    let mut out = Vec::with_capacity(order.len());
    for id in order {
        let rcpts = by_id.remove(&id).unwrap_or_default();
        let entry = stmt.query_row([&id], |r| {
            Ok(QueueEntry {
                id: id.clone(),
                sender: r.get(0)?,
                size: r.get::<_, i64>(1)? as u64,
                smtputf8: r.get(2)?,
                is_dsn: r.get(3)?,
                created: r.get(4)?,
                account: r.get(5)?,
                held: r.get(6)?,
                rcpts,
            })
        })?;
        out.push(entry);
    }
    out.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
    Ok(out)
}

const RCPT_COLUMNS: &str = "queue_id, id, rcpt, domain, state, attempts, next_attempt, last_error";

/// Due recipients and their entries, leaving out those in `in_hand` before their rows are
/// decoded or their entries read.
fn due(conn: &Connection, now: i64, limit: usize, in_hand: &HashSet<i64>) -> Result<Vec<QueueEntry>> {
    // One read transaction: a message delivered and removed between reading its recipients
    // and its row would otherwise fail the whole scan.
    let _snapshot = conn.unchecked_transaction()?;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {RCPT_COLUMNS} FROM queue_rcpts WHERE state = 'pending' AND next_attempt <= ?1 \
         AND NOT EXISTS (SELECT 1 FROM queue WHERE queue.id = queue_rcpts.queue_id AND queue.held) \
         ORDER BY next_attempt, id LIMIT ?2"
    ))?;
    let mut rows = stmt.query(params![now, limit as i64])?;
    let mut due = Vec::new();
    while let Some(row) = rows.next()? {
        if !in_hand.contains(&row.get(1)?) {
            due.push(rcpt_from_row(row)?);
        }
    }
    entries(conn, due)
}

fn list(conn: &Connection, id: Option<&str>) -> Result<Vec<QueueEntry>> {
    let _snapshot = conn.unchecked_transaction()?;
    let rows = match id {
        Some(id) => conn
            .prepare_cached(&format!("SELECT {RCPT_COLUMNS} FROM queue_rcpts WHERE queue_id = ?1 ORDER BY id"))?
            .query_map([id], rcpt_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?,
        None => conn
            .prepare_cached(&format!("SELECT {RCPT_COLUMNS} FROM queue_rcpts ORDER BY id"))?
            .query_map([], rcpt_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?,
    };
    entries(conn, rows)
}

fn update(conn: &Connection, effects: &mut Effects, updates: &[RcptUpdate]) -> Result<()> {
    let t = now();
    let mut touched: Vec<String> = Vec::new();
    // Cached statements: the queue runner records every delivery, and parsing the SQL each
    // time was a visible share of the writer thread's work under an outbound backlog.
    let mut set = conn.prepare_cached(
        "UPDATE queue_rcpts SET state = ?2, next_attempt = ?3, last_error = ?4, attempts = attempts + 1, updated = ?5 \
         WHERE id = ?1 RETURNING queue_id",
    )?;
    for u in updates {
        let qid: String = set.query_row(params![u.id, u.state.as_str(), u.next_attempt, u.error, t], |r| r.get(0))?;
        if !touched.contains(&qid) {
            touched.push(qid);
        }
    }
    let mut count = conn.prepare_cached("SELECT count(*) FROM queue_rcpts WHERE queue_id = ?1 AND state = 'pending'")?;
    for qid in touched {
        let pending: i64 = count.query_row([&qid], |r| r.get(0))?;
        if pending == 0 {
            delete(conn, effects, &qid)?;
        }
    }
    Ok(())
}

pub(super) fn delete(conn: &Connection, effects: &mut Effects, id: &str) -> Result<()> {
    let blob: String = conn
        .prepare_cached("SELECT blob_id FROM queue WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("queue entry {id}")))?;
    conn.prepare_cached("DELETE FROM queue WHERE id = ?1")?.execute([id])?;
    release_blobs(conn, effects, &[(blob, 1)])
}

#[async_trait]
impl QueueStore for SqliteStore {
    async fn queue_due(&self, now: i64, limit: usize) -> Result<Vec<QueueEntry>> {
        self.read(move |conn| due(conn, now, limit, &HashSet::new())).await
    }

    async fn queue_due_except(&self, now: i64, limit: usize, in_hand: HashSet<i64>) -> Result<Vec<QueueEntry>> {
        self.read(move |conn| due(conn, now, limit, &in_hand)).await
    }

    async fn queue_list(&self) -> Result<Vec<QueueEntry>> {
        self.read(|conn| list(conn, None)).await
    }

    async fn queue_entry(&self, id: &str) -> Result<Option<QueueEntry>> {
        let id = id.to_string();
        self.read(move |conn| Ok(list(conn, Some(&id))?.pop())).await
    }

    async fn queue_message(&self, id: &str) -> Result<Vec<u8>> {
        // The rows are point reads, done on this thread; a body kept in its own file (over
        // 128 KiB, up to the size limit) is read on the blocking pool.
        let (prefix, blob_id, body) = self.read_now(|conn| {
            let (prefix, blob_id): (Vec<u8>, String) = conn
                .prepare_cached(
                    "SELECT coalesce(p.prefix, q.prefix), q.blob_id FROM queue q \
                     LEFT JOIN queue_prefixes p ON p.id = q.prefix_id WHERE q.id = ?1",
                )?
                .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("queue entry {id}")))?;
            let body = stored_body(conn, self.inner.keys.get().as_deref(), &self.inner.blob_root, &blob_id)?;
            Ok((prefix, blob_id, body))
        })?;
        let root = self.inner.blob_root.clone();
        if body.inline.is_some() {
            return read_body(&root, prefix, &blob_id, body);
        }
        tokio::task::spawn_blocking(move || read_body(&root, prefix, &blob_id, body)).await.map_err(|_| StoreError::Closed)?
    }

    async fn queue_update(&self, updates: Vec<RcptUpdate>) -> Result<()> {
        self.write(move |conn, effects| update(conn, effects, &updates)).await
    }

    async fn queue_retry(&self, id: &str) -> Result<()> {
        let id = id.to_string();
        self.write(move |conn, _| {
            let n = conn.execute(
                "UPDATE queue_rcpts SET next_attempt = ?2 WHERE queue_id = ?1 AND state = 'pending'",
                params![id, now()],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("pending recipients in queue entry {id}")));
            }
            Ok(())
        })
        .await
    }

    async fn queue_delete(&self, id: &str) -> Result<()> {
        let id = id.to_string();
        self.write(move |conn, effects| delete(conn, effects, &id)).await
    }
}
