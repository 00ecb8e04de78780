//! Summaries of messages (crate::summary) in SQLite: kept once per blob, pointed to by
//! `messages.summary`, with the words of each account's messages in the FTS5 table `words`.
//!
//! The rule that keeps the index sound: whenever a message of an account points to an indexed
//! summary, that account's words document for it exists (rowid [`doc`]). Documents are made
//! where message rows get their summary (delivery, APPEND, [`save`]) and removed when the last
//! such message of the account goes ([`forget_words`]). COPY stays within an account and
//! copies the pointer, so it needs no document of its own.

use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, params};

use crate::summary::{Stored, Summary, Want, WordMatch};
use crate::{AccountId, MailboxId, Result, StoreError};

/// An account's words documents have rowids `account << ACCOUNT_SHIFT | summary id`, so one
/// account's part of the index is a rowid range.
const ACCOUNT_SHIFT: u32 = 40;

/// The rowid of `account`'s words document for summary `id`.
fn doc(account: AccountId, id: i64) -> i64 {
    (account << ACCOUNT_SHIFT) | id
}

/// Keeps the summary of a blob that has none; returns its id.
pub(super) fn insert(conn: &Connection, blob_id: &str, s: &Summary) -> Result<i64> {
    conn.prepare_cached("INSERT INTO summaries (blob_id, indexed, keys, version) VALUES (?1, ?2, ?3, ?4)")?
        .execute(params![blob_id, s.words.is_some(), s.keys, s.version])?;
    let id = conn.last_insert_rowid();
    conn.prepare_cached("INSERT INTO summary_headers (id, data) VALUES (?1, ?2)")?.execute(params![id, s.headers])?;
    conn.prepare_cached("INSERT INTO summary_fetch (id, data) VALUES (?1, ?2)")?.execute(params![id, s.fetch])?;
    Ok(id)
}

/// Indexes `words` as `account`'s document for summary `id`.
pub(super) fn insert_words(conn: &Connection, account: AccountId, id: i64, words: &str) -> Result<()> {
    conn.prepare_cached("INSERT INTO words (rowid, terms) VALUES (?1, ?2)")?.execute(params![doc(account, id), words])?;
    Ok(())
}

/// Replaces summary `id` of `blob` (made by an older summarizer) with `s`, in place: the messages keep pointing to it, and the words documents of every
/// account they belong to are made again (or removed, when the new summary has no words).
pub(super) fn replace(conn: &Connection, id: i64, blob: &str, s: &Summary) -> Result<()> {
    let changed = conn
        .prepare_cached("UPDATE summaries SET indexed = ?3, keys = ?4, version = ?5 WHERE id = ?1 AND blob_id = ?2")?
        .execute(params![id, blob, s.words.is_some(), s.keys, s.version])?;
    if changed == 0 {
        return Ok(());
    }
    conn.prepare_cached("UPDATE summary_headers SET data = ?2 WHERE id = ?1")?.execute(params![id, s.headers])?;
    conn.prepare_cached("UPDATE summary_fetch SET data = ?2 WHERE id = ?1")?.execute(params![id, s.fetch])?;
    let accounts: Vec<AccountId> = conn
        .prepare_cached(
            "SELECT DISTINCT b.account_id FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id \
             WHERE m.blob_id = ?1 AND m.summary = ?2",
        )?
        .query_map(params![blob, id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut delete = conn.prepare_cached("DELETE FROM words WHERE rowid = ?1")?;
    for account in accounts {
        delete.execute([doc(account, id)])?;
        if let Some(words) = &s.words {
            insert_words(conn, account, id, words)?;
        }
    }
    Ok(())
}

/// Removes the summary of a blob that is being deleted.
pub(super) fn delete(conn: &Connection, blob_id: &str) -> Result<()> {
    let id: Option<i64> =
        conn.prepare_cached("DELETE FROM summaries WHERE blob_id = ?1 RETURNING id")?.query_row([blob_id], |r| r.get(0)).optional()?;
    if let Some(id) = id {
        conn.prepare_cached("DELETE FROM summary_headers WHERE id = ?1")?.execute([id])?;
        conn.prepare_cached("DELETE FROM summary_fetch WHERE id = ?1")?.execute([id])?;
    }
    Ok(())
}

/// After messages of `account` with these blobs were deleted: removes the account's words
/// documents that no message of it points to any more.
pub(super) fn forget_words<'a>(conn: &Connection, account: AccountId, blobs: impl IntoIterator<Item = &'a str>) -> Result<()> {
    let mut summary = conn.prepare_cached("SELECT id FROM summaries WHERE blob_id = ?1 AND indexed")?;
    let mut still = conn.prepare_cached(
        "SELECT 1 FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id \
         WHERE m.blob_id = ?1 AND b.account_id = ?2 AND m.summary IS NOT NULL LIMIT 1",
    )?;
    let mut delete = conn.prepare_cached("DELETE FROM words WHERE rowid = ?1")?;
    for blob in blobs {
        let Some(id) = summary.query_row([blob], |r| r.get::<_, i64>(0)).optional()? else { continue };
        if still.query_row(params![blob, account], |_| Ok(())).optional()?.is_none() {
            delete.execute([doc(account, id)])?;
        }
    }
    Ok(())
}

pub(super) fn account_of(conn: &Connection, mailbox: MailboxId) -> Result<AccountId> {
    conn.prepare_cached("SELECT account_id FROM mailboxes WHERE id = ?1")?
        .query_row([mailbox], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("mailbox {mailbox}")))
}

/// The writer job of `MailStore::save_summaries`.
pub(super) fn save(conn: &Connection, mailbox: MailboxId, summaries: Vec<(u32, Summary)>) -> Result<()> {
    let account = account_of(conn, mailbox)?;
    let mut row = conn.prepare_cached("SELECT m.blob_id, m.summary, b.owner FROM messages m JOIN blobs b ON b.id = m.blob_id WHERE m.mailbox_id = ?1 AND m.uid = ?2")?;
    let mut existing = conn.prepare_cached("SELECT id FROM summaries WHERE blob_id = ?1")?;
    let mut has_doc = conn.prepare_cached(
        "SELECT 1 FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id \
         WHERE m.blob_id = ?1 AND b.account_id = ?2 AND m.summary IS NOT NULL LIMIT 1",
    )?;
    let mut point = conn.prepare_cached(
        "UPDATE messages SET summary = ?3 WHERE blob_id = ?1 AND mailbox_id IN (SELECT id FROM mailboxes WHERE account_id = ?2)",
    )?;
    for (uid, s) in summaries {
        type Row = (String, Option<i64>, Option<AccountId>);
        let found: Option<Row> = row.query_row(params![mailbox, uid], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).optional()?;
        let (blob, owner) = match found {
            Some((blob, None, owner)) => (blob, owner),
            _ => continue,
        };
        // A per-user copy (blobs.owner): its summary in the clear tables would put what is
        // derived from its content in the database; it is sealed with its data key instead.
        if let Some(owner) = owner {
            super::sealed::backfill(conn, owner, &blob, &s)?;
            continue;
        }
        let id = match existing.query_row([&blob], |r| r.get(0)).optional()? {
            Some(id) => id,
            None => insert(conn, &blob, &s)?,
        };
        if let Some(words) = &s.words
            && has_doc.query_row(params![blob, account], |_| Ok(())).optional()?.is_none()
        {
            insert_words(conn, account, id, words)?;
        }
        // Every message of the account with this blob: they share the document.
        point.execute(params![blob, account, id])?;
    }
    Ok(())
}

/// `MailStore::stored`: one read over the covering index, joined with the records asked for.
pub(super) fn stored(conn: &Connection, mailbox: MailboxId, first: u32, last: u32, want: Want) -> Result<Vec<Stored>> {
    let column = |on: bool, table: &str| if on { format!("{table}.{}", if table == "k" { "keys" } else { "data" }) } else { "NULL".into() };
    let join = |on: bool, table: &str, alias: &str| if on { format!(" LEFT JOIN {table} {alias} ON {alias}.id = m.summary") } else { String::new() };
    let sql = format!(
        "SELECT m.uid, m.modseq, m.size, m.internal_date, m.summary, {}, {}, {} FROM messages m{}{}{} \
         WHERE m.mailbox_id = ?1 AND m.uid BETWEEN ?2 AND ?3 ORDER BY m.uid",
        column(want.keys, "k"),
        column(want.headers, "h"),
        column(want.fetch, "f"),
        join(want.keys, "summaries", "k"),
        join(want.headers, "summary_headers", "h"),
        join(want.fetch, "summary_fetch", "f"),
    );
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(params![mailbox, first, last], |r| {
            Ok(Stored {
                uid: r.get(0)?,
                modseq: r.get::<_, i64>(1)? as u64,
                size: r.get::<_, i64>(2)? as u64,
                internal_date: r.get(3)?,
                summary: r.get(4)?,
                keys: r.get(5)?,
                headers: r.get(6)?,
                fetch: r.get(7)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// `MailStore::words_containing`: a walk over the index's vocabulary.
pub(super) fn words_containing(conn: &Connection, fragment: &str, limit: usize) -> Result<Option<Vec<String>>> {
    let words: Vec<String> = conn
        .prepare_cached("SELECT term FROM words_vocab WHERE instr(term, ?1) > 0 LIMIT ?2")?
        .query_map(params![fragment, limit as i64 + 1], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok((words.len() <= limit).then_some(words))
}

/// A word as an FTS5 string (the index's words are letters and digits; quotes are doubled
/// all the same).
fn quoted(w: &str) -> String {
    format!("\"{}\"", w.replace('"', "\"\""))
}

/// `MailStore::word_candidates`.
pub(super) fn word_candidates(conn: &Connection, account: AccountId, conditions: &[WordMatch]) -> Result<HashSet<i64>> {
    let mut query = Vec::with_capacity(conditions.len());
    for c in conditions {
        query.push(match c {
            WordMatch::Is(w) => quoted(w),
            WordMatch::StartsWith(w) => format!("{} *", quoted(w)),
            WordMatch::OneOf(ws) | WordMatch::EndsWith { known: ws, .. } | WordMatch::Contains { known: ws, .. } if ws.is_empty() => {
                return Ok(HashSet::new());
            }
            WordMatch::OneOf(ws) | WordMatch::EndsWith { known: ws, .. } | WordMatch::Contains { known: ws, .. } => {
                format!("({})", ws.iter().map(|w| quoted(w)).collect::<Vec<_>>().join(" OR "))
            }
        });
    }
    if query.is_empty() {
        return Ok(HashSet::new());
    }
    let low = doc(account, 0);
    let high = doc(account + 1, 0) - 1;
    let ids = conn
        .prepare_cached("SELECT rowid FROM words WHERE words MATCH ?1 AND rowid BETWEEN ?2 AND ?3")?
        .query_map(params![query.join(" AND "), low, high], |r| r.get::<_, i64>(0))?
        .map(|r| r.map(|rowid| rowid - low))
        .collect::<rusqlite::Result<_>>()?;
    Ok(ids)
}
