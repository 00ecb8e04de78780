//! Summaries of messages (`crate::summary`) in PostgreSQL: kept once per blob and pointed to
//! by `messages.summary`, as in SQLite (`sqlite::summaries`), with the words of each account's
//! messages in `words`: one row per (account, summary) holding a `tsvector` of the words,
//! made with `array_to_tsvector` (the words as they are: no parser, no stemming, no stop
//! words, so the index finds exactly what the summarizer listed) under a GIN index.
//!
//! - [`word_candidates`] turns the conditions into a `tsquery` (`'w'`, `'w':*` for a prefix,
//!   `('a' | 'b')` for one of several) and answers with the summaries that match.
//! - A message with more words than one `tsvector` holds ([`MAX_INDEXED`]) gets a row without
//!   terms, which every query answers with: IMAP reads that message instead.
//! - `words_containing` (a word fragment inside indexed words) would need a walk over the
//!   vocabulary; PostgreSQL keeps none per index, so the store answers None ("more than the
//!   limit"): IMAP then drops that condition and reads the messages, which is correct and
//!   only slower for SEARCH by a fragment in the middle or at the end of a word.
//! - The rule of `sqlite::summaries` holds: whenever a message of an account points to an
//!   indexed summary, that account's row exists; it is removed when the last such message of
//!   the account goes ([`forget_words`]), and with the summary or the account (foreign keys).

use std::collections::HashSet;

use deadpool_postgres::{GenericClient, Transaction};

use crate::summary::{Stored, Summary, Want, WordMatch};
use crate::{AccountId, MailboxId, Result, StoreError};

/// Keeps the summary of a blob that has none; returns its id.
pub(super) async fn insert(txn: &Transaction<'_>, blob_id: &str, s: &Summary) -> Result<i64> {
    let summary = txn.prepare_cached("INSERT INTO summaries (blob_id, indexed, keys, version) VALUES ($1, $2, $3, $4) RETURNING id").await?;
    let id: i64 = txn.query_one(&summary, &[&blob_id, &s.words.is_some(), &s.keys, &(s.version as i32)]).await?.get(0);
    let headers = txn.prepare_cached("INSERT INTO summary_headers (id, data) VALUES ($1, $2)").await?;
    txn.execute(&headers, &[&id, &s.headers]).await?;
    let fetch = txn.prepare_cached("INSERT INTO summary_fetch (id, data) VALUES ($1, $2)").await?;
    txn.execute(&fetch, &[&id, &s.fetch]).await?;
    Ok(id)
}

/// Words (bytes, with their separators) beyond which a message's row gets no `tsvector`: a
/// `tsvector` holds at most 1 MB, and the summarizer may list up to 50,000 words of up to 64
/// bytes. With this bound the lexemes and their 4-byte entries stay well below it.
const MAX_INDEXED: usize = 512 * 1024;

/// Indexes `words` (space-separated) as `account`'s row for summary `id`; a row without
/// terms when there are too many (the message is then always a candidate, and read).
pub(super) async fn insert_words(txn: &Transaction<'_>, account: AccountId, id: i64, words: &str) -> Result<()> {
    let words = (words.len() <= MAX_INDEXED).then_some(words);
    txn.execute(
        "INSERT INTO words (account_id, summary_id, terms) \
         VALUES ($1, $2, array_to_tsvector(array_remove(string_to_array($3, ' '), ''))) ON CONFLICT DO NOTHING",
        &[&account, &id, &words],
    )
    .await?;
    Ok(())
}

/// After messages of `account` with these blobs were deleted: removes the account's words
/// rows that no message of it points to any more.
pub(super) async fn forget_words(txn: &Transaction<'_>, account: AccountId, blobs: &[String]) -> Result<()> {
    if blobs.is_empty() {
        return Ok(());
    }
    txn.execute(
        "DELETE FROM words w WHERE w.account_id = $1 \
         AND w.summary_id IN (SELECT id FROM summaries WHERE blob_id = ANY($2)) \
         AND NOT EXISTS (SELECT 1 FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id \
                         WHERE b.account_id = $1 AND m.summary = w.summary_id)",
        &[&account, &blobs],
    )
    .await?;
    Ok(())
}

pub(super) async fn account_of(client: &impl GenericClient, mailbox: MailboxId) -> Result<AccountId> {
    client
        .query_opt("SELECT account_id FROM mailboxes WHERE id = $1", &[&mailbox])
        .await?
        .map(|r| r.get(0))
        .ok_or_else(|| StoreError::NotFound(format!("mailbox {mailbox}")))
}

/// `MailStore::save_summaries`: each message without a summary gets one (its blob's, when
/// another copy made it already), and every message of the account with that blob points to it.
pub(super) async fn save(txn: &Transaction<'_>, mailbox: MailboxId, summaries: Vec<(u32, Summary)>) -> Result<()> {
    let account = account_of(txn, mailbox).await?;
    let row = txn.prepare("SELECT blob_id, summary FROM messages WHERE mailbox_id = $1 AND uid = $2").await?;
    let existing = txn.prepare("SELECT id FROM summaries WHERE blob_id = $1").await?;
    let point = txn
        .prepare("UPDATE messages SET summary = $3 WHERE blob_id = $1 AND mailbox_id IN (SELECT id FROM mailboxes WHERE account_id = $2)")
        .await?;
    for (uid, s) in summaries {
        let Some(found) = txn.query_opt(&row, &[&mailbox, &i64::from(uid)]).await? else { continue };
        if found.get::<_, Option<i64>>(1).is_some() {
            continue;
        }
        let blob: String = found.get(0);
        let id = match txn.query_opt(&existing, &[&blob]).await? {
            Some(r) => r.get(0),
            None => insert(txn, &blob, &s).await?,
        };
        if let Some(words) = &s.words {
            insert_words(txn, account, id, words).await?;
        }
        txn.execute(&point, &[&blob, &account, &id]).await?;
    }
    Ok(())
}

/// `MailStore::stored`: the message rows joined with the records asked for.
pub(super) async fn stored(client: &impl GenericClient, mailbox: MailboxId, first: u32, last: u32, want: Want) -> Result<Vec<Stored>> {
    let column = |on: bool, alias: &str, name: &str| if on { format!("{alias}.{name}") } else { "NULL::bytea".into() };
    let join = |on: bool, table: &str, alias: &str| if on { format!(" LEFT JOIN {table} {alias} ON {alias}.id = m.summary") } else { String::new() };
    let sql = format!(
        "SELECT m.uid, m.modseq, m.size, m.internal_date, m.summary, {}, {}, {} FROM messages m{}{}{} \
         WHERE m.mailbox_id = $1 AND m.uid BETWEEN $2 AND $3 ORDER BY m.uid",
        column(want.keys, "k", "keys"),
        column(want.headers, "h", "data"),
        column(want.fetch, "f", "data"),
        join(want.keys, "summaries", "k"),
        join(want.headers, "summary_headers", "h"),
        join(want.fetch, "summary_fetch", "f"),
    );
    let rows = client.query(&sql, &[&mailbox, &i64::from(first), &i64::from(last)]).await?;
    Ok(rows
        .iter()
        .map(|r| Stored {
            uid: r.get::<_, i64>(0) as u32,
            modseq: r.get::<_, i64>(1) as u64,
            size: r.get::<_, i64>(2) as u64,
            internal_date: r.get(3),
            summary: r.get(4),
            keys: r.get(5),
            headers: r.get(6),
            fetch: r.get(7),
        })
        .collect())
}

/// A word as a `tsquery` lexeme (the index's words are letters and digits; quotes and
/// backslashes are escaped all the same).
fn lexeme(w: &str) -> String {
    format!("'{}'", w.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The `tsquery` of the conditions; None when one of them can match nothing.
fn query(conditions: &[WordMatch]) -> Option<String> {
    let mut parts = Vec::with_capacity(conditions.len());
    for c in conditions {
        parts.push(match c {
            WordMatch::Is(w) => lexeme(w),
            WordMatch::StartsWith(w) => format!("{}:*", lexeme(w)),
            // The fragment's own text matters only to sealed per-user summaries, which this
            // backend does not keep: the words of the vocabulary that hold it are the answer.
            WordMatch::OneOf(ws) | WordMatch::EndsWith { known: ws, .. } | WordMatch::Contains { known: ws, .. }
                if ws.is_empty() =>
            {
                return None;
            }
            WordMatch::OneOf(ws) | WordMatch::EndsWith { known: ws, .. } | WordMatch::Contains { known: ws, .. } => {
                format!("({})", ws.iter().map(|w| lexeme(w)).collect::<Vec<_>>().join(" | "))
            }
        });
    }
    Some(parts.join(" & "))
}

/// `MailStore::word_candidates`.
pub(super) async fn word_candidates(client: &impl GenericClient, account: AccountId, conditions: &[WordMatch]) -> Result<HashSet<i64>> {
    if conditions.is_empty() {
        return Ok(HashSet::new());
    }
    let Some(q) = query(conditions) else { return Ok(HashSet::new()) };
    let rows = client
        .query("SELECT summary_id FROM words WHERE account_id = $1 AND (terms IS NULL OR terms @@ $2::text::tsquery)", &[&account, &q])
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_become_a_tsquery() {
        let q = query(&[WordMatch::Is("hello".into()), WordMatch::StartsWith("wor".into()), WordMatch::OneOf(vec!["a".into(), "b'c".into()])]);
        assert_eq!(q.as_deref(), Some(r"'hello' & 'wor':* & ('a' | 'b\'c')"));
        assert_eq!(query(&[WordMatch::OneOf(vec![])]), None);
    }
}
