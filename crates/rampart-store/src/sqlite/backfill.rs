//! Background backfill of message summaries (crate::summary): messages stored without one
//! (before summaries existed, by a command without a summarizer, or whose body could not be
//! read at delivery), and summaries an older summarizer made ([`Summarizer::version`]), are
//! summarized a batch at a time beside the server's own work, so that a converted or upgraded
//! store gets SORT's and SEARCH's fast paths without a blocking migration.
//!
//! Until a message's turn comes, IMAP reads it as before (and keeps the summary it makes).
//! A plaintext search summary of a message stored encrypted to its user's OpenPGP key
//! (`summaries.plain`, `super::pgp_delivery`) is never remade: the store has only the
//! ciphertext now, and remaking it would end server-side search of that message.
//! A batch reads and summarizes its messages on a reader connection and keeps the summaries
//! in one writer job, in the rows and words documents delivery writes ([`summaries::save`],
//! [`summaries::replace`]).

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, params};

use super::{SqliteStore, read_stored, summaries};
use crate::keys::MasterKeys;
use crate::summary::{Summarizer, Summary};
use crate::{MailboxId, Result, StoreError};

/// Messages summarized per batch: one reader pass and one writer job (one commit) each.
const BATCH: usize = 64;
/// The pause between batches, so live sessions and deliveries keep the cores.
const PAUSE: Duration = Duration::from_millis(50);
/// How often a store with nothing left to summarize is looked at again (messages stored by a
/// command without a summarizer, or unreadable at delivery).
const IDLE: Duration = Duration::from_secs(600);

/// Where a pass is: first the message rows without a summary (by row id), then the stale
/// summaries (by id).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cursor {
    message: i64,
    summary: i64,
}

/// The message phase of a pass is over.
const MESSAGES_DONE: i64 = i64::MAX;

/// A batch's summaries, each with what it is for, and where the pass goes on.
type Batch = (Vec<(Item, Summary)>, Option<Cursor>);

/// One message to summarize and what its summary is for.
enum Item {
    /// A message without a summary: it (and every copy in its account) gets one.
    Missing { mailbox: MailboxId, uid: u32 },
    /// A summary made by an older summarizer, replaced in place.
    Stale { id: i64, blob: String },
}

impl SqliteStore {
    /// Summarizes the next batch of a pass at `cursor`; returns how many summaries were kept
    /// and where the pass goes on (None: it is over). Does nothing without a summarizer. A
    /// message whose text cannot be read is passed over (IMAP reads it, as before).
    pub(crate) async fn backfill_summaries(&self, cursor: Cursor) -> Result<(usize, Option<Cursor>)> {
        let Some(summarizer) = self.inner.summarizer.get().cloned() else { return Ok((0, None)) };
        let root = self.inner.blob_root.clone();
        let keys = self.inner.keys.clone();
        let (items, next) = self.read(move |conn| batch(conn, keys.get().as_deref(), &root, summarizer.as_ref(), cursor)).await?;
        let done = items.len();
        if !items.is_empty() {
            self.write(move |conn, _| {
                for (item, s) in items {
                    match item {
                        Item::Missing { mailbox, uid } => summaries::save(conn, mailbox, vec![(uid, s)])?,
                        Item::Stale { id, blob } => summaries::replace(conn, id, &blob, &s)?,
                    }
                }
                Ok(())
            })
            .await?;
            self.summaries_changed();
        }
        Ok((done, next))
    }

    /// One whole pass: every message without a summary and every stale summary, in batches
    /// with `pause` between them. Returns how many summaries were kept.
    pub async fn backfill_pass(&self, pause: Duration) -> Result<usize> {
        let mut cursor = Cursor::default();
        let mut total = 0;
        loop {
            let (n, next) = self.backfill_summaries(cursor).await?;
            total += n;
            let Some(c) = next else { return Ok(total) };
            cursor = c;
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
        }
    }

    /// Runs backfill passes for the life of the server: batches with a pause between them,
    /// and a new pass every [`IDLE`] once one is over. A failure ends the pass (logged); the
    /// next one tries again.
    pub async fn backfill(self) {
        loop {
            match self.backfill_pass(PAUSE).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(event = "summary_backfill", summarized = n),
                Err(StoreError::Closed) => return,
                Err(e) => tracing::warn!(event = "summary_backfill_failed", error = %e.chain()),
            }
            tokio::time::sleep(IDLE).await;
        }
    }
}

impl SqliteStore {
    /// Throws every summary and the whole word index away, as a store from before summaries
    /// would be: for tests comparing what IMAP answers from summaries with what it answers
    /// from the messages. Only in test builds of callers.
    #[cfg(any(test, feature = "fault-injection"))]
    pub async fn forget_summaries(&self) -> Result<()> {
        self.write(|conn, _| {
            conn.execute_batch(
                "UPDATE messages SET summary = NULL; DELETE FROM summaries; DELETE FROM summary_headers; \
                 DELETE FROM summary_fetch; INSERT INTO words (words) VALUES ('delete-all');",
            )?;
            Ok(())
        })
        .await?;
        self.summaries_changed();
        Ok(())
    }
}

/// The reader half of a batch: the next messages without a summary or, once they are done,
/// the next stale summaries, each read and summarized.
fn batch(conn: &Connection, keys: Option<&MasterKeys>, root: &Path, summarizer: &dyn Summarizer, cursor: Cursor) -> Result<Batch> {
    let mut next = cursor;
    let mut found: Vec<(Item, Vec<u8>, String)> = Vec::new();
    if cursor.message != MESSAGES_DONE {
        let mut stmt = conn.prepare_cached(
            // Per-user copies (blobs.owner) never get a summary in the database: it would be
            // derived from their content, readable by whoever holds the database.
            "SELECT id, mailbox_id, uid, prefix, blob_id FROM messages WHERE summary IS NULL AND id > ?1 \
             AND blob_id NOT IN (SELECT id FROM blobs WHERE owner IS NOT NULL) ORDER BY id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![cursor.message, BATCH as i64], |r| {
            Ok((r.get::<_, i64>(0)?, Item::Missing { mailbox: r.get(1)?, uid: r.get(2)? }, r.get(3)?, r.get(4)?))
        })?;
        for row in rows {
            let (id, item, prefix, blob) = row?;
            next.message = id;
            found.push((item, prefix, blob));
        }
        if found.len() < BATCH {
            next.message = MESSAGES_DONE;
        }
        return Ok((summarize(conn, keys, root, summarizer, found), Some(next)));
    }
    let mut stmt = conn.prepare_cached(
        "SELECT s.id, s.blob_id, (SELECT prefix FROM messages m WHERE m.blob_id = s.blob_id LIMIT 1) \
         FROM summaries s WHERE s.version < ?1 AND NOT s.plain AND s.id > ?2 ORDER BY s.id LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![summarizer.version(), cursor.summary, BATCH as i64], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, Option<Vec<u8>>>(2)?))
    })?;
    let mut seen = 0;
    for row in rows {
        let (id, blob, prefix) = row?;
        seen += 1;
        next.summary = id;
        // A summary no message points to any more goes with its blob.
        if let Some(prefix) = prefix {
            found.push((Item::Stale { id, blob: blob.clone() }, prefix, blob));
        }
    }
    let more = (seen == BATCH).then_some(next);
    Ok((summarize(conn, keys, root, summarizer, found), more))
}

fn summarize(conn: &Connection, keys: Option<&MasterKeys>, root: &Path, summarizer: &dyn Summarizer, found: Vec<(Item, Vec<u8>, String)>) -> Vec<(Item, Summary)> {
    let mut out = Vec::with_capacity(found.len());
    for (item, prefix, blob) in found {
        match read_stored(conn, keys, root, prefix, &blob) {
            Ok(message) => out.push((item, summarizer.summarize(&message))),
            Err(e) => tracing::debug!(event = "summary_backfill_unreadable", blob = %blob, error = %e.chain()),
        }
    }
    out
}
