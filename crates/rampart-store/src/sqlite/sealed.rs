//! The sealed summaries of per-user copies (`sealed_summaries`, [`crate::sealsummary`]) read
//! while their user is logged in: [`fill`] gives `MailStore::stored` their records, so IMAP's
//! SORT, THREAD, header SEARCH, FETCH ENVELOPE/BODYSTRUCTURE and its column cache use them as
//! any summary, and [`word_candidates`] answers the full-text index's question from their
//! words. A sealed summary is known to IMAP by the negative of its id (the summaries of the
//! clear tables are positive), so the two never meet.
//!
//! Each record is opened once per unlocked key and kept with it in memory
//! ([`userkeys::Opened`]); the last session of the user forgets both. Locked, the rows are as
//! if there were no summary (IMAP reads the message, which fails as locked).

use std::collections::HashSet;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params};

use super::userkeys::{self, Opened};
use crate::peruser::SecretKey;
use crate::sealsummary;
use crate::summary::{Stored, Summary, Want, WordMatch};
use crate::{AccountId, MailboxId, Result};

/// The summary of sealed record `id` (of `blob`, data key `dkey` sealed to `key`), opened now
/// or before. None when it does not open (it is then treated as missing: the message is read).
fn opened(conn: &Connection, key: &SecretKey, cache: &Opened, id: i64, blob: &str, dkey: &[u8]) -> Result<Option<Arc<Summary>>> {
    if let Some((b, s)) = cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&id)
        && b == blob
    {
        return Ok(Some(s.clone()));
    }
    let data: Option<Vec<u8>> =
        conn.prepare_cached("SELECT data FROM sealed_summaries WHERE id = ?1")?.query_row([id], |r| r.get(0)).optional()?;
    let Some(data) = data else { return Ok(None) };
    let Ok(data_key) = key.open_sealed(dkey, blob.as_bytes()) else { return Ok(None) };
    let Some(summary) = sealsummary::open(&data_key, blob, &data) else {
        tracing::warn!(event = "sealed_summary_unreadable", blob = %blob);
        return Ok(None);
    };
    let summary = Arc::new(summary);
    cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(id, (blob.to_string(), summary.clone()));
    Ok(Some(summary))
}

/// Fills the records of `rows` (a `stored` answer for `mailbox`) that have no summary from
/// their sealed summaries, when the mailbox's owner is logged in.
pub(super) fn fill(conn: &Connection, mailbox: MailboxId, first: u32, last: u32, want: Want, rows: &mut [Stored]) -> Result<()> {
    if rows.iter().all(|r| r.summary.is_some()) {
        return Ok(());
    }
    let account = super::summaries::account_of(conn, mailbox)?;
    let Some((key, cache)) = userkeys::held_for(conn, account)? else { return Ok(()) };
    let sealed: Vec<(u32, i64, String, Vec<u8>)> = conn
        .prepare_cached(
            "SELECT m.uid, s.id, s.blob_id, b.dkey FROM messages m JOIN sealed_summaries s ON s.blob_id = m.blob_id \
             JOIN blobs b ON b.id = m.blob_id WHERE m.mailbox_id = ?1 AND m.uid BETWEEN ?2 AND ?3 AND m.summary IS NULL \
             AND b.owner = ?4 AND b.dkey IS NOT NULL",
        )?
        .query_map(params![mailbox, first, last, account], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (uid, id, blob, dkey) in sealed {
        let Ok(at) = rows.binary_search_by_key(&uid, |r| r.uid) else { continue };
        let Some(s) = opened(conn, &key, &cache, id, &blob, &dkey)? else { continue };
        let row = &mut rows[at];
        row.summary = Some(-id);
        row.keys = want.keys.then(|| s.keys.clone());
        row.headers = want.headers.then(|| s.headers.clone());
        row.fetch = want.fetch.then(|| s.fetch.clone());
    }
    Ok(())
}

/// The sealed summaries (as negative ids) of `account`'s messages whose words meet
/// `conditions`, when the account's owner is logged in; empty otherwise.
pub(super) fn word_candidates(conn: &Connection, account: AccountId, conditions: &[WordMatch]) -> Result<HashSet<i64>> {
    let Some((key, cache)) = userkeys::held_for(conn, account)? else { return Ok(HashSet::new()) };
    let sealed: Vec<(i64, String, Vec<u8>)> = conn
        .prepare_cached(
            "SELECT DISTINCT s.id, s.blob_id, b.dkey FROM mailboxes x JOIN messages m ON m.mailbox_id = x.id \
             JOIN sealed_summaries s ON s.blob_id = m.blob_id JOIN blobs b ON b.id = m.blob_id \
             WHERE x.account_id = ?1 AND m.summary IS NULL AND b.owner = ?1 AND b.dkey IS NOT NULL",
        )?
        .query_map([account], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = HashSet::new();
    for (id, blob, dkey) in sealed {
        if let Some(s) = opened(conn, &key, &cache, id, &blob, &dkey)?
            && s.words.as_deref().is_some_and(|w| sealsummary::words_match(w, conditions))
        {
            out.insert(-id);
        }
    }
    Ok(out)
}

/// The writer's part of `MailStore::save_summaries` for a per-user copy stored without a
/// sealed summary (before they existed): seals `s` with its data key while its owner is
/// logged in. Nothing when locked or already there.
pub(super) fn backfill(conn: &Connection, account: AccountId, blob: &str, s: &Summary) -> Result<()> {
    let Some((key, _)) = userkeys::held_for(conn, account)? else { return Ok(()) };
    let dkey: Option<Vec<u8>> = conn
        .prepare_cached(
            "SELECT b.dkey FROM blobs b WHERE b.id = ?1 AND b.owner = ?2 AND b.dkey IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM sealed_summaries s WHERE s.blob_id = b.id)",
        )?
        .query_row(params![blob, account], |r| r.get(0))
        .optional()?;
    let Some(dkey) = dkey else { return Ok(()) };
    let Ok(data_key) = key.open_sealed(&dkey, blob.as_bytes()) else { return Ok(()) };
    conn.prepare_cached("INSERT INTO sealed_summaries (blob_id, data) VALUES (?1, ?2)")?
        .execute(params![blob, sealsummary::seal(&data_key, blob, s)])?;
    Ok(())
}
