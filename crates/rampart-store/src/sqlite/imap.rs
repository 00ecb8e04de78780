//! [`MailStore`] for SQLite: the SQL behind IMAP. Every write runs on the writer thread (group
//! commit) and marks the mailboxes it changed, so their watchers wake after the commit.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::watch;

use std::collections::HashSet;

use super::{Effects, SqliteStore, insert_blob, now, release_blobs, summaries};
use crate::summary::{Stored, Summary, Want, WordMatch};
use crate::mail::{Changes, DELIMITER, FlagOp, FlagsUpdate, MailStore, MailboxState, MessageRecord, Transfer, ViewRows};
use crate::{AccountId, Blob, MailboxId, Result, StoreError};

const STATE_COLUMNS: &str = "id, name, uidvalidity, uidnext, highestmodseq, special_use, \
     EXISTS (SELECT 1 FROM subscriptions s WHERE s.account_id = mailboxes.account_id AND s.name = mailboxes.name)";

fn state_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MailboxState> {
    Ok(MailboxState {
        id: r.get(0)?,
        name: r.get(1)?,
        uidvalidity: r.get(2)?,
        uidnext: r.get(3)?,
        highestmodseq: r.get::<_, i64>(4)? as u64,
        special_use: r.get(5)?,
        subscribed: r.get(6)?,
    })
}

fn record_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MessageRecord> {
    Ok(MessageRecord {
        uid: r.get(0)?,
        flags: r.get(1)?,
        modseq: r.get::<_, i64>(2)? as u64,
        size: r.get::<_, i64>(3)? as u64,
        internal_date: r.get(4)?,
        internal_zone: r.get(5)?,
    })
}

/// INBOX is case-insensitive (RFC 3501 §5.1); every other name is taken as given.
fn normalize(name: &str) -> String {
    let name = name.trim_end_matches(DELIMITER);
    if name.eq_ignore_ascii_case("INBOX") {
        return "INBOX".into();
    }
    match name.split_once(DELIMITER) {
        Some((first, rest)) if first.eq_ignore_ascii_case("INBOX") => format!("INBOX{DELIMITER}{rest}"),
        _ => name.to_string(),
    }
}

fn state_by_name(conn: &Connection, account: AccountId, name: &str) -> Result<Option<MailboxState>> {
    Ok(conn
        .prepare_cached(&format!("SELECT {STATE_COLUMNS} FROM mailboxes WHERE account_id = ?1 AND name = ?2"))?
        .query_row(params![account, name], state_from_row)
        .optional()?)
}

fn state_by_id(conn: &Connection, mailbox: MailboxId) -> Result<MailboxState> {
    conn.prepare_cached(&format!("SELECT {STATE_COLUMNS} FROM mailboxes WHERE id = ?1"))?
        .query_row([mailbox], state_from_row)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("mailbox {mailbox}")))
}

/// A UIDVALIDITY no earlier mailbox of the account had, so a name deleted and created again
/// never looks like the old mailbox to a client's cache (RFC 3501 §2.3.1.1).
fn next_uidvalidity(conn: &Connection, account: AccountId) -> Result<u32> {
    let (max, last): (Option<i64>, Option<i64>) = conn.query_row(
        "SELECT (SELECT max(uidvalidity) FROM mailboxes WHERE account_id = ?1), \
                (SELECT last FROM uidvalidity_seq WHERE account_id = ?1)",
        [account],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let floor = max.unwrap_or(0).max(last.unwrap_or(0)) + 1;
    let next = (now()).max(floor).min(u32::MAX as i64);
    conn.execute(
        "INSERT INTO uidvalidity_seq (account_id, last) VALUES (?1, ?2) \
         ON CONFLICT (account_id) DO UPDATE SET last = excluded.last",
        params![account, next],
    )?;
    Ok(next as u32)
}

/// Takes the next MODSEQ of a mailbox.
fn bump_modseq(conn: &Connection, mailbox: MailboxId) -> Result<u64> {
    let m: i64 = conn
        .prepare_cached("UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = ?1 RETURNING highestmodseq")?
        .query_row([mailbox], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("mailbox {mailbox}")))?;
    Ok(m as u64)
}

fn parse_flags(s: &str) -> Vec<String> {
    s.split_ascii_whitespace().map(str::to_string).collect()
}

/// Deletes the listed messages, records them as expunged and releases their blobs.
fn remove_messages(conn: &Connection, effects: &mut Effects, mailbox: MailboxId, uids: &[u32]) -> Result<()> {
    if uids.is_empty() {
        return Ok(());
    }
    let modseq = bump_modseq(conn, mailbox)?;
    let mut blobs: Vec<(String, i64)> = Vec::new();
    let mut del = conn.prepare_cached("DELETE FROM messages WHERE mailbox_id = ?1 AND uid = ?2 RETURNING blob_id")?;
    let mut record =
        conn.prepare_cached("INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq, at) VALUES (?1, ?2, ?3, ?4)")?;
    let now = super::now();
    for &uid in uids {
        let blob: Option<String> = del.query_row(params![mailbox, uid], |r| r.get(0)).optional()?;
        let Some(blob) = blob else { continue };
        record.execute(params![mailbox, uid, modseq as i64, now])?;
        match blobs.iter_mut().find(|(b, _)| *b == blob) {
            Some((_, n)) => *n += 1,
            None => blobs.push((blob, 1)),
        }
    }
    summaries::forget_words(conn, summaries::account_of(conn, mailbox)?, blobs.iter().map(|(b, _)| b.as_str()))?;
    release_blobs(conn, effects, &blobs)?;
    effects.mailbox_changed(mailbox);
    Ok(())
}

/// Every UID below `uidnext` that no message has: what may have vanished since a MODSEQ whose
/// expunges were pruned (a superset, which RFC 7162 §3.2.10 allows).
fn missing_uids(conn: &Connection, mailbox: MailboxId, uidnext: u32) -> Result<Vec<u32>> {
    let mut present = conn.prepare_cached("SELECT uid FROM messages WHERE mailbox_id = ?1 ORDER BY uid")?;
    let mut missing = Vec::new();
    let mut next = 1u32;
    for uid in present.query_map([mailbox], |r| r.get::<_, u32>(0))? {
        let uid = uid?;
        missing.extend(next..uid);
        next = uid + 1;
    }
    missing.extend(next..uidnext);
    Ok(missing)
}

/// Forgets expunged UIDs recorded before `before` (Unix seconds), raising each mailbox's floor
/// to the highest MODSEQ forgotten. Returns how many were forgotten.
fn prune_expunged(conn: &Connection, before: i64) -> Result<usize> {
    conn.execute(
        "UPDATE mailboxes SET expunged_floor = max(expunged_floor, \
             (SELECT max(modseq) FROM expunged e WHERE e.mailbox_id = mailboxes.id AND e.at < ?1)) \
         WHERE id IN (SELECT mailbox_id FROM expunged WHERE at < ?1)",
        [before],
    )?;
    Ok(conn.execute("DELETE FROM expunged WHERE at < ?1", [before])?)
}

/// One appended message: its blob (small ones inline, as deliveries do: migrations 5 and 9),
/// the next UID and MODSEQ, its summary and words, its row. Returns the UID.
fn append_row(
    conn: &Connection,
    effects: &mut Effects,
    mailbox: MailboxId,
    blob: &mut Blob,
    flags: &str,
    (internal_date, zone): (i64, i32),
    summary: Option<&Summary>,
) -> Result<u32> {
    insert_blob(conn, effects, blob, 1)?;
    let (uid, modseq): (u32, i64) = conn
        .prepare_cached(
            "UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1 \
             WHERE id = ?1 RETURNING uidnext - 1, highestmodseq",
        )?
        .query_row([mailbox], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let summary_id = match summary {
        Some(s) => {
            let id = summaries::insert(conn, blob.id(), s)?;
            if let Some(words) = &s.words {
                summaries::insert_words(conn, summaries::account_of(conn, mailbox)?, id, words)?;
            }
            Some(id)
        }
        None => None,
    };
    let reference = format!("append-{}", blob.id());
    conn.prepare_cached(
        "INSERT INTO messages (mailbox_id, uid, blob_id, prefix, size, internal_date, internal_zone, flags, modseq, reference, trail, summary) \
         VALUES (?1, ?2, ?3, x'', ?4, ?5, ?6, ?7, ?8, ?9, '[]', ?10)",
    )?
    .execute(params![mailbox, uid, blob.id(), blob.size() as i64, internal_date, zone, flags, modseq, reference, summary_id])?;
    // Last, as in deliver: a failure above leaves the file for the rollback to forget.
    effects.place_blob(blob)?;
    Ok(uid)
}

/// Copies messages to `to` with new UIDs; blobs are shared, their reference counts go up.
fn copy_rows(conn: &Connection, effects: &mut Effects, from: MailboxId, uids: &[u32], to: MailboxId) -> Result<Transfer> {
    let target = state_by_id(conn, to)?;
    let mut transfer = Transfer { uidvalidity: target.uidvalidity, uids: Vec::new() };
    if uids.is_empty() {
        return Ok(transfer);
    }
    let modseq = bump_modseq(conn, to)?;
    let mut read = conn.prepare_cached("SELECT blob_id FROM messages WHERE mailbox_id = ?1 AND uid = ?2")?;
    let mut take_uid =
        conn.prepare_cached("UPDATE mailboxes SET uidnext = uidnext + 1 WHERE id = ?1 RETURNING uidnext - 1")?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO messages (mailbox_id, uid, blob_id, prefix, size, internal_date, internal_zone, flags, modseq, reference, trail, summary) \
         SELECT ?3, ?4, blob_id, prefix, size, internal_date, internal_zone, flags, ?5, reference, trail, summary FROM messages \
         WHERE mailbox_id = ?1 AND uid = ?2",
    )?;
    let mut refs = conn.prepare_cached("UPDATE blobs SET refcount = refcount + 1 WHERE id = ?1")?;
    for &uid in uids {
        let blob: Option<String> = read.query_row(params![from, uid], |r| r.get(0)).optional()?;
        let Some(blob) = blob else { continue };
        let new: u32 = take_uid.query_row([to], |r| r.get(0))?;
        insert.execute(params![from, uid, to, new, modseq as i64])?;
        refs.execute([&blob])?;
        transfer.uids.push((uid, new));
    }
    effects.mailbox_changed(to);
    Ok(transfer)
}

#[async_trait]
impl MailStore for SqliteStore {
    async fn mailbox_state(&self, account: AccountId, name: &str) -> Result<Option<MailboxState>> {
        let name = normalize(name);
        self.read(move |conn| state_by_name(conn, account, &name)).await
    }

    async fn mailbox_states(&self, account: AccountId) -> Result<Vec<MailboxState>> {
        self.read(move |conn| {
            let mut stmt =
                conn.prepare(&format!("SELECT {STATE_COLUMNS} FROM mailboxes WHERE account_id = ?1 ORDER BY name"))?;
            let rows = stmt.query_map([account], state_from_row)?.collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    async fn create_mailbox(&self, account: AccountId, name: &str, special_use: Option<&str>) -> Result<MailboxId> {
        let name = normalize(name);
        let special = special_use.map(str::to_string);
        if name.is_empty() || name.split(DELIMITER).any(str::is_empty) {
            return Err(StoreError::InvalidName(name));
        }
        self.write(move |conn, _| {
            if state_by_name(conn, account, &name)?.is_some() {
                return Err(StoreError::Exists(format!("mailbox {name}")));
            }
            // RFC 3501 §6.3.3: create the superior hierarchy names the new name needs.
            let mut id = 0;
            let parts: Vec<&str> = name.split(DELIMITER).collect();
            for i in 1..=parts.len() {
                let path = parts[..i].join(&DELIMITER.to_string());
                if let Some(existing) = state_by_name(conn, account, &path)? {
                    id = existing.id;
                    continue;
                }
                let uidvalidity = next_uidvalidity(conn, account)?;
                let use_ = if i == parts.len() { special.as_deref() } else { None };
                conn.execute(
                    "INSERT INTO mailboxes (account_id, name, uidvalidity, special_use) VALUES (?1, ?2, ?3, ?4)",
                    params![account, path, uidvalidity, use_],
                )?;
                id = conn.last_insert_rowid();
            }
            Ok(id)
        })
        .await
    }

    async fn delete_mailbox(&self, account: AccountId, name: &str) -> Result<()> {
        let name = normalize(name);
        if name == "INBOX" {
            return Err(StoreError::InboxUndeletable);
        }
        self.write(move |conn, effects| {
            let state = state_by_name(conn, account, &name)?
                .ok_or_else(|| StoreError::NotFound(format!("mailbox {name}")))?;
            let children: i64 = conn.query_row(
                "SELECT count(*) FROM mailboxes WHERE account_id = ?1 AND substr(name, 1, ?3) = ?2",
                params![account, format!("{name}{DELIMITER}"), name.len() as i64 + 1],
                |r| r.get(0),
            )?;
            if children > 0 {
                return Err(StoreError::HasChildren(name));
            }
            let blobs: Vec<(String, i64)> = conn
                .prepare("SELECT blob_id, count(*) FROM messages WHERE mailbox_id = ?1 GROUP BY blob_id")?
                .query_map([state.id], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            conn.execute("DELETE FROM messages WHERE mailbox_id = ?1", [state.id])?;
            summaries::forget_words(conn, account, blobs.iter().map(|(b, _)| b.as_str()))?;
            release_blobs(conn, effects, &blobs)?;
            conn.execute("DELETE FROM mailboxes WHERE id = ?1", [state.id])?;
            effects.mailbox_changed(state.id);
            Ok(())
        })
        .await?;
        // Its id may be given to a new mailbox: copies of what it held must not be taken
        // for the new one's.
        self.summaries_changed();
        Ok(())
    }

    async fn rename_mailbox(&self, account: AccountId, from: &str, to: &str) -> Result<()> {
        let (from, to) = (normalize(from), normalize(to));
        if to.is_empty() || to.split(DELIMITER).any(str::is_empty) {
            return Err(StoreError::InvalidName(to));
        }
        if to == "INBOX" || to.starts_with(&format!("{from}{DELIMITER}")) {
            return Err(StoreError::Conflict { from, to });
        }
        self.write(move |conn, effects| {
            let state = state_by_name(conn, account, &from)?
                .ok_or_else(|| StoreError::NotFound(format!("mailbox {from}")))?;
            if state_by_name(conn, account, &to)?.is_some() {
                return Err(StoreError::Exists(format!("mailbox {to}")));
            }
            // Parents of the new name (RFC 3501 §6.3.5).
            let parts: Vec<&str> = to.split(DELIMITER).collect();
            for i in 1..parts.len() {
                let path = parts[..i].join(&DELIMITER.to_string());
                if state_by_name(conn, account, &path)?.is_none() {
                    let uidvalidity = next_uidvalidity(conn, account)?;
                    conn.execute(
                        "INSERT INTO mailboxes (account_id, name, uidvalidity) VALUES (?1, ?2, ?3)",
                        params![account, path, uidvalidity],
                    )?;
                }
            }
            if from == "INBOX" {
                // The messages move to a new mailbox; INBOX stays, empty.
                let uidvalidity = next_uidvalidity(conn, account)?;
                conn.execute(
                    "INSERT INTO mailboxes (account_id, name, uidvalidity) VALUES (?1, ?2, ?3)",
                    params![account, to, uidvalidity],
                )?;
                let target = conn.last_insert_rowid();
                let uids: Vec<u32> = conn
                    .prepare("SELECT uid FROM messages WHERE mailbox_id = ?1 ORDER BY uid")?
                    .query_map([state.id], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                copy_rows(conn, effects, state.id, &uids, target)?;
                remove_messages(conn, effects, state.id, &uids)?;
                return Ok(());
            }
            let prefix = format!("{from}{DELIMITER}");
            // Subscriptions follow the mailboxes (one already under the new name wins).
            for table in ["mailboxes", "OR REPLACE subscriptions"] {
                conn.execute(
                    &format!(
                        "UPDATE {table} SET name = ?3 || substr(name, ?4) \
                         WHERE account_id = ?1 AND (name = ?2 OR substr(name, 1, length(?5)) = ?5)"
                    ),
                    params![account, from, to, from.chars().count() as i64 + 1, prefix],
                )?;
            }
            effects.mailbox_changed(state.id);
            Ok(())
        })
        .await
    }

    async fn set_subscribed(&self, account: AccountId, name: &str, subscribed: bool) -> Result<()> {
        let name = normalize(name);
        self.write(move |conn, _| {
            if subscribed {
                // Subscribing checks that the mailbox exists (RFC 3501 §6.3.6 allows it);
                // the subscription then outlives the mailbox.
                if state_by_name(conn, account, &name)?.is_none() {
                    return Err(StoreError::NotFound(format!("mailbox {name}")));
                }
                conn.execute(
                    "INSERT OR IGNORE INTO subscriptions (account_id, name) VALUES (?1, ?2)",
                    params![account, name],
                )?;
            } else {
                let n = conn.execute(
                    "DELETE FROM subscriptions WHERE account_id = ?1 AND name = ?2",
                    params![account, name],
                )?;
                if n == 0 {
                    return Err(StoreError::NotFound(format!("subscription {name}")));
                }
            }
            Ok(())
        })
        .await
    }

    async fn subscriptions(&self, account: AccountId) -> Result<Vec<String>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare("SELECT name FROM subscriptions WHERE account_id = ?1 ORDER BY name")?;
            let rows = stmt.query_map([account], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    async fn view_rows(&self, mailbox: MailboxId) -> Result<(MailboxState, ViewRows)> {
        self.read(move |conn| {
            // One read transaction, so the state and the list agree.
            conn.execute_batch("BEGIN")?;
            let result = (|| {
                let state = state_by_id(conn, mailbox)?;
                let mut rows = ViewRows::default();
                let mut index = std::collections::HashMap::new();
                let mut stmt = conn.prepare_cached("SELECT uid, flags FROM messages WHERE mailbox_id = ?1 ORDER BY uid")?;
                let mut q = stmt.query([mailbox])?;
                while let Some(r) = q.next()? {
                    // Borrowed: no string is made for a flag list seen before.
                    let flags = r.get_ref(1)?.as_str().map_err(rusqlite::Error::from)?;
                    rows.push(r.get(0)?, flags, &mut index);
                }
                Ok((state, rows))
            })();
            conn.execute_batch("COMMIT")?;
            result
        })
        .await
    }

    async fn snapshot(&self, mailbox: MailboxId) -> Result<(MailboxState, Vec<MessageRecord>)> {
        self.read(move |conn| {
            // One read transaction, so the state and the list agree.
            conn.execute_batch("BEGIN")?;
            let result = (|| {
                let state = state_by_id(conn, mailbox)?;
                let rows = conn
                    .prepare_cached(
                        "SELECT uid, flags, modseq, size, internal_date, internal_zone FROM messages WHERE mailbox_id = ?1 ORDER BY uid",
                    )?
                    .query_map([mailbox], record_from_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok((state, rows))
            })();
            conn.execute_batch("COMMIT")?;
            result
        })
        .await
    }

    async fn records(&self, mailbox: MailboxId, first: u32, last: u32) -> Result<Vec<MessageRecord>> {
        self.read(move |conn| {
            let rows = conn
                .prepare_cached(
                    "SELECT uid, flags, modseq, size, internal_date, internal_zone FROM messages \
                     WHERE mailbox_id = ?1 AND uid BETWEEN ?2 AND ?3 ORDER BY uid",
                )?
                .query_map(params![mailbox, first, last], record_from_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn stored(&self, mailbox: MailboxId, first: u32, last: u32, want: Want) -> Result<Vec<Stored>> {
        self.read(move |conn| {
            let mut rows = summaries::stored(conn, mailbox, first, last, want)?;
            super::sealed::fill(conn, mailbox, first, last, want, &mut rows)?;
            Ok(rows)
        })
        .await
    }

    async fn save_summaries(&self, mailbox: MailboxId, list: Vec<(u32, Summary)>) -> Result<()> {
        if list.is_empty() {
            return Ok(());
        }
        self.write(move |conn, _| summaries::save(conn, mailbox, list)).await?;
        self.summaries_changed();
        Ok(())
    }

    fn summary_generation(&self) -> Option<u64> {
        // A user's key held or forgotten changes what `stored` gives for their mailboxes.
        Some(self.inner.summary_generation.load(std::sync::atomic::Ordering::Acquire).wrapping_add(super::userkeys::generation()))
    }

    async fn words_containing(&self, fragment: &str, limit: usize) -> Result<Option<Vec<String>>> {
        let fragment = fragment.to_string();
        self.read(move |conn| summaries::words_containing(conn, &fragment, limit)).await
    }

    async fn word_candidates(&self, account: AccountId, conditions: Vec<WordMatch>) -> Result<HashSet<i64>> {
        self.read(move |conn| {
            let mut found = summaries::word_candidates(conn, account, &conditions)?;
            found.extend(super::sealed::word_candidates(conn, account, &conditions)?);
            Ok(found)
        })
        .await
    }

    async fn changes_since(&self, mailbox: MailboxId, modseq: u64) -> Result<Changes> {
        self.read(move |conn| {
            conn.execute_batch("BEGIN")?;
            let result = (|| {
                let state = state_by_id(conn, mailbox)?;
                let mut changes =
                    Changes { highestmodseq: state.highestmodseq, uidnext: state.uidnext, ..Changes::default() };
                if state.highestmodseq <= modseq {
                    return Ok(changes);
                }
                changes.changed = conn
                    .prepare_cached(
                        "SELECT uid, flags, modseq, size, internal_date, internal_zone FROM messages \
                         WHERE mailbox_id = ?1 AND modseq > ?2 ORDER BY uid",
                    )?
                    .query_map(params![mailbox, modseq as i64], record_from_row)?
                    .collect::<rusqlite::Result<_>>()?;
                let floor: i64 =
                    conn.query_row("SELECT expunged_floor FROM mailboxes WHERE id = ?1", [mailbox], |r| r.get(0))?;
                changes.expunged = if (modseq as i64) < floor {
                    missing_uids(conn, mailbox, state.uidnext)?
                } else {
                    conn.prepare_cached("SELECT uid FROM expunged WHERE mailbox_id = ?1 AND modseq > ?2 ORDER BY uid")?
                        .query_map(params![mailbox, modseq as i64], |r| r.get(0))?
                        .collect::<rusqlite::Result<_>>()?
                };
                Ok(changes)
            })();
            conn.execute_batch("COMMIT")?;
            result
        })
        .await
    }

    async fn claim_recent(&self, mailbox: MailboxId, up_to: u32) -> Result<u32> {
        self.write(move |conn, _| {
            let old: u32 = conn
                .query_row("SELECT recent_uid FROM mailboxes WHERE id = ?1", [mailbox], |r| r.get(0))
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("mailbox {mailbox}")))?;
            if up_to > old {
                conn.execute("UPDATE mailboxes SET recent_uid = ?2 WHERE id = ?1", params![mailbox, up_to])?;
            }
            Ok(old)
        })
        .await
    }

    async fn prune_expunged(&self, before: i64) -> Result<usize> {
        self.write(move |conn, _| prune_expunged(conn, before)).await
    }

    async fn peek_recent(&self, mailbox: MailboxId) -> Result<u32> {
        self.read(move |conn| {
            conn.query_row("SELECT recent_uid FROM mailboxes WHERE id = ?1", [mailbox], |r| r.get(0))
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("mailbox {mailbox}")))
        })
        .await
    }

    async fn mailbox_counts(&self, mailbox: MailboxId) -> Result<(u32, u32, u32, u64)> {
        self.read(move |conn| {
            Ok(conn.query_row(
                "SELECT count(*), \
                 coalesce(sum(CASE WHEN (' ' || flags || ' ') LIKE '% \\Seen %' THEN 0 ELSE 1 END), 0), \
                 coalesce(sum(CASE WHEN uid >= (SELECT recent_uid FROM mailboxes WHERE id = ?1) THEN 1 ELSE 0 END), 0), \
                 coalesce(sum(size), 0) FROM messages WHERE mailbox_id = ?1",
                [mailbox],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? as u64)),
            )?)
        })
        .await
    }

    async fn store_flags(
        &self,
        mailbox: MailboxId,
        uids: Vec<u32>,
        op: FlagOp,
        flags: Vec<String>,
        unchanged_since: Option<u64>,
    ) -> Result<FlagsUpdate> {
        self.write(move |conn, effects| {
            let mut update = FlagsUpdate::default();
            let mut modseq: Option<u64> = None;
            let mut read = conn.prepare_cached("SELECT flags, modseq FROM messages WHERE mailbox_id = ?1 AND uid = ?2")?;
            let mut write =
                conn.prepare_cached("UPDATE messages SET flags = ?3, modseq = ?4 WHERE mailbox_id = ?1 AND uid = ?2")?;
            for uid in uids {
                let row: Option<(String, i64)> =
                    read.query_row(params![mailbox, uid], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
                let Some((current, current_modseq)) = row else { continue };
                // RFC 7162 §3.1.3: a message changed after UNCHANGEDSINCE is left alone.
                if unchanged_since.is_some_and(|u| current_modseq as u64 > u) {
                    update.modified.push(uid);
                    continue;
                }
                let new = op.apply(&parse_flags(&current), &flags).join(" ");
                if new == current {
                    update.messages.push((uid, current, current_modseq as u64));
                    continue;
                }
                let m = match modseq {
                    Some(m) => m,
                    None => *modseq.insert(bump_modseq(conn, mailbox)?),
                };
                write.execute(params![mailbox, uid, new, m as i64])?;
                update.messages.push((uid, new, m));
            }
            if modseq.is_some() {
                effects.mailbox_changed(mailbox);
            }
            Ok(update)
        })
        .await
    }

    async fn expunge(&self, mailbox: MailboxId, uids: Option<Vec<u32>>) -> Result<Vec<u32>> {
        self.write(move |conn, effects| {
            let mut deleted: Vec<u32> = conn
                .prepare_cached(
                    "SELECT uid FROM messages WHERE mailbox_id = ?1 AND (' ' || flags || ' ') LIKE '% \\Deleted %' \
                     ORDER BY uid",
                )?
                .query_map([mailbox], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            if let Some(only) = uids {
                deleted.retain(|u| only.binary_search(u).is_ok());
            }
            remove_messages(conn, effects, mailbox, &deleted)?;
            Ok(deleted)
        })
        .await
    }

    async fn copy_messages(&self, from: MailboxId, uids: Vec<u32>, to: MailboxId) -> Result<Transfer> {
        self.write(move |conn, effects| copy_rows(conn, effects, from, &uids, to)).await
    }

    async fn move_messages(&self, from: MailboxId, uids: Vec<u32>, to: MailboxId) -> Result<Transfer> {
        self.write(move |conn, effects| {
            let transfer = copy_rows(conn, effects, from, &uids, to)?;
            let moved: Vec<u32> = transfer.uids.iter().map(|(src, _)| *src).collect();
            remove_messages(conn, effects, from, &moved)?;
            Ok(transfer)
        })
        .await
    }

    async fn append(&self, mailbox: MailboxId, blob: Blob, flags: String, internal_date: i64) -> Result<Transfer> {
        self.append_all(mailbox, vec![(blob, flags, internal_date, 0)]).await
    }

    async fn append_all(&self, mailbox: MailboxId, messages: Vec<(Blob, String, i64, i32)>) -> Result<Transfer> {
        let mut items = Vec::with_capacity(messages.len());
        for (blob, flags, internal_date, zone) in messages {
            let (blob, summary) = self.appended(mailbox, blob).await?;
            items.push((blob, flags, (internal_date, zone), summary));
        }
        self.write(move |conn, effects| {
            let state = state_by_id(conn, mailbox)?;
            let mut uids = Vec::with_capacity(items.len());
            for (blob, flags, date, summary) in &mut items {
                uids.push((0, append_row(conn, effects, mailbox, blob, flags, *date, summary.as_ref())?));
            }
            effects.mailbox_changed(mailbox);
            Ok(Transfer { uidvalidity: state.uidvalidity, uids })
        })
        .await
    }

    async fn set_next_uid(&self, mailbox: MailboxId, uidvalidity: Option<u32>, next_uid: u32) -> Result<()> {
        self.write(move |conn, effects| {
            if let Some(v) = uidvalidity {
                let adopted = conn.execute(
                    "UPDATE mailboxes SET uidvalidity = ?2 \
                     WHERE id = ?1 AND NOT EXISTS (SELECT 1 FROM messages WHERE mailbox_id = ?1)",
                    params![mailbox, v],
                )?;
                if adopted > 0 {
                    // A name deleted and created again must still get a higher one.
                    conn.execute(
                        "INSERT INTO uidvalidity_seq (account_id, last) \
                         SELECT account_id, ?2 FROM mailboxes WHERE id = ?1 \
                         ON CONFLICT (account_id) DO UPDATE SET last = max(last, excluded.last)",
                        params![mailbox, v],
                    )?;
                }
            }
            conn.execute("UPDATE mailboxes SET uidnext = ?2 WHERE id = ?1 AND uidnext < ?2", params![mailbox, next_uid])?;
            effects.mailbox_changed(mailbox);
            Ok(())
        })
        .await?;
        // An adopted UIDVALIDITY: nothing kept under the mailbox's old one may be taken for it.
        self.summaries_changed();
        Ok(())
    }

    async fn usage(&self, account: AccountId) -> Result<(u64, u64)> {
        self.read(move |conn| {
            Ok(conn.query_row(
                "SELECT coalesce(sum(m.size), 0), count(*) FROM messages m JOIN mailboxes b ON m.mailbox_id = b.id \
                 WHERE b.account_id = ?1",
                [account],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )?)
        })
        .await
    }

    fn watch_mailbox(&self, mailbox: MailboxId) -> watch::Receiver<u64> {
        self.inner.notifier.watch(mailbox)
    }
}

