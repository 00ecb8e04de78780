//! [`MailStore`] for PostgreSQL: the SQL behind IMAP, as `sqlite::imap` does it, for several
//! nodes at once.
//!
//! - Every change of a mailbox takes its next MODSEQ by an `UPDATE … RETURNING` of the
//!   mailbox row, which locks the row until COMMIT: changes of one mailbox from any node are
//!   serialized, and UIDs and MODSEQs become visible in ascending order (`mailbox`'s module
//!   doc). Writes that touch two mailboxes (COPY, MOVE) lock them in ascending id order.
//! - Every writing transaction NOTIFYs the mailboxes it changed (`listen`); the watches of
//!   every node fire after COMMIT.
//! - Reads that must agree with each other (a state and its message list) run in one
//!   REPEATABLE READ transaction.
//! - `summary_generation` is None: another node may remake summaries at any time, and a count
//!   kept in this process would not see it, so IMAP keeps no copy of them.

use std::collections::HashSet;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};
use tokio::sync::watch;
use tokio_postgres::Row;

use super::mailbox::take_uids;
use super::{PgStore, blobs, release_blobs, summaries};
use crate::mail::{Changes, DELIMITER, FlagOp, FlagsUpdate, MailStore, MailboxState, MessageRecord, Transfer, ViewRows};
use crate::sqlite::now;
use crate::summary::{Stored, Summary, Want, WordMatch};
use crate::{AccountId, Blob, MailboxId, Result, StoreError};

const STATE_COLUMNS: &str = "id, name, uidvalidity, uidnext, highestmodseq, special_use, \
     EXISTS (SELECT 1 FROM subscriptions s WHERE s.account_id = mailboxes.account_id AND s.name = mailboxes.name)";
const RECORD_COLUMNS: &str = "uid, flags, modseq, size, internal_date, internal_zone";

fn state_from_row(r: &Row) -> MailboxState {
    MailboxState {
        id: r.get(0),
        name: r.get(1),
        uidvalidity: r.get::<_, i64>(2) as u32,
        uidnext: r.get::<_, i64>(3) as u32,
        highestmodseq: r.get::<_, i64>(4) as u64,
        special_use: r.get(5),
        subscribed: r.get(6),
    }
}

fn record_from_row(r: &Row) -> MessageRecord {
    MessageRecord {
        uid: r.get::<_, i64>(0) as u32,
        flags: r.get(1),
        modseq: r.get::<_, i64>(2) as u64,
        size: r.get::<_, i64>(3) as u64,
        internal_date: r.get(4),
        internal_zone: r.get(5),
    }
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

fn valid(name: &str) -> bool {
    !name.is_empty() && !name.split(DELIMITER).any(str::is_empty)
}

async fn state_by_name(client: &impl GenericClient, account: AccountId, name: &str) -> Result<Option<MailboxState>> {
    let row = client
        .query_opt(&format!("SELECT {STATE_COLUMNS} FROM mailboxes WHERE account_id = $1 AND name = $2"), &[&account, &name])
        .await?;
    Ok(row.as_ref().map(state_from_row))
}

async fn state_by_id(client: &impl GenericClient, mailbox: MailboxId) -> Result<MailboxState> {
    let row = client.query_opt(&format!("SELECT {STATE_COLUMNS} FROM mailboxes WHERE id = $1"), &[&mailbox]).await?;
    row.as_ref().map(state_from_row).ok_or_else(|| StoreError::NotFound(format!("mailbox {mailbox}")))
}

/// A UIDVALIDITY no earlier mailbox of the account had (RFC 3501 §2.3.1.1); the account's
/// `uidvalidity_seq` row is the lock that keeps two nodes from giving the same one.
async fn next_uidvalidity(txn: &Transaction<'_>, account: AccountId) -> Result<u32> {
    let max: Option<i64> = txn.query_one("SELECT max(uidvalidity) FROM mailboxes WHERE account_id = $1", &[&account]).await?.get(0);
    let floor = max.unwrap_or(0) + 1;
    let wanted = now().max(floor).min(i64::from(u32::MAX));
    let next: i64 = txn
        .query_one(
            "INSERT INTO uidvalidity_seq (account_id, last) VALUES ($1, $2) \
             ON CONFLICT (account_id) DO UPDATE SET last = least(greatest(excluded.last, uidvalidity_seq.last + 1), 4294967295) \
             RETURNING last",
            &[&account, &wanted],
        )
        .await?
        .get(0);
    Ok(next as u32)
}

/// Takes the next MODSEQ of a mailbox (locking its row until the transaction ends).
async fn bump_modseq(txn: &Transaction<'_>, mailbox: MailboxId) -> Result<u64> {
    let row = txn
        .query_opt("UPDATE mailboxes SET highestmodseq = highestmodseq + 1 WHERE id = $1 RETURNING highestmodseq", &[&mailbox])
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("mailbox {mailbox}")))?;
    Ok(row.get::<_, i64>(0) as u64)
}

fn parse_flags(s: &str) -> Vec<String> {
    s.split_ascii_whitespace().map(str::to_string).collect()
}

fn uids_i64(uids: &[u32]) -> Vec<i64> {
    uids.iter().map(|u| i64::from(*u)).collect()
}

/// Deletes the listed messages, records them as expunged and releases their bodies.
async fn remove_messages(txn: &Transaction<'_>, mailbox: MailboxId, uids: &[u32]) -> Result<()> {
    if uids.is_empty() {
        return Ok(());
    }
    let modseq = bump_modseq(txn, mailbox).await? as i64;
    let rows = txn
        .query("DELETE FROM messages WHERE mailbox_id = $1 AND uid = ANY($2) RETURNING uid, blob_id", &[&mailbox, &uids_i64(uids)])
        .await?;
    let at = now();
    let record = txn
        .prepare(
            "INSERT INTO expunged (mailbox_id, uid, modseq, at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (mailbox_id, uid) DO UPDATE SET modseq = excluded.modseq, at = excluded.at",
        )
        .await?;
    let mut blobs: Vec<(String, i64)> = Vec::new();
    for r in &rows {
        txn.execute(&record, &[&mailbox, &r.get::<_, i64>(0), &modseq, &at]).await?;
        let blob: String = r.get(1);
        match blobs.iter_mut().find(|(b, _)| *b == blob) {
            Some((_, n)) => *n += 1,
            None => blobs.push((blob, 1)),
        }
    }
    let names: Vec<String> = blobs.iter().map(|(b, _)| b.clone()).collect();
    summaries::forget_words(txn, summaries::account_of(txn, mailbox).await?, &names).await?;
    release_blobs(txn, &blobs).await
}

/// Copies messages to `to` with new UIDs and one new MODSEQ; bodies are shared.
async fn copy_rows(txn: &Transaction<'_>, from: MailboxId, uids: &[u32], to: MailboxId) -> Result<Transfer> {
    // Both rows in ascending id order (a MOVE also locks the source), as `take_uids` does.
    let mut both = [from, to];
    both.sort_unstable();
    for id in both {
        txn.execute("SELECT 1 FROM mailboxes WHERE id = $1 FOR UPDATE", &[&id]).await?;
    }
    let target = state_by_id(txn, to).await?;
    let mut transfer = Transfer { uidvalidity: target.uidvalidity, uids: Vec::new() };
    let mut present: Vec<i64> = txn
        .query("SELECT uid FROM messages WHERE mailbox_id = $1 AND uid = ANY($2)", &[&from, &uids_i64(uids)])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    // In the order asked (UIDPLUS pairs them), each once.
    let mut seen = HashSet::new();
    let order: Vec<i64> = uids.iter().map(|u| i64::from(*u)).filter(|u| present.contains(u) && seen.insert(*u)).collect();
    present.clear();
    if order.is_empty() {
        return Ok(transfer);
    }
    let modseq = bump_modseq(txn, to).await? as i64;
    let first: i64 = txn
        .query_one("UPDATE mailboxes SET uidnext = uidnext + $2 WHERE id = $1 RETURNING uidnext - $2", &[&to, &(order.len() as i64)])
        .await?
        .get(0);
    let insert = txn
        .prepare(
            "INSERT INTO messages (mailbox_id, uid, blob_id, prefix, size, internal_date, internal_zone, flags, modseq, reference, trail, summary) \
             SELECT $3, $4, blob_id, prefix, size, internal_date, internal_zone, flags, $5, reference, trail, summary FROM messages \
             WHERE mailbox_id = $1 AND uid = $2 RETURNING blob_id",
        )
        .await?;
    for (i, uid) in order.iter().enumerate() {
        let new = first + i as i64;
        let row = txn.query_one(&insert, &[&from, uid, &to, &new, &modseq]).await?;
        txn.execute("UPDATE blobs SET refcount = refcount + 1 WHERE id = $1", &[&row.get::<_, String>(0)]).await?;
        transfer.uids.push((*uid as u32, new as u32));
    }
    Ok(transfer)
}

/// One APPENDed message: body, flags, (date, zone), summary.
type Appended = (Blob, String, (i64, i32), Option<Summary>);

/// A REPEATABLE READ, read-only transaction: several reads that agree.
async fn snapshot_txn(conn: &mut deadpool_postgres::Object) -> Result<Transaction<'_>> {
    Ok(conn.build_transaction().isolation_level(tokio_postgres::IsolationLevel::RepeatableRead).read_only(true).start().await?)
}

impl PgStore {

    async fn append_items(&self, mailbox: MailboxId, items: Vec<Appended>) -> Result<Transfer> {
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let account = summaries::account_of(&txn, mailbox).await?;
        // The bodies first, before the mailbox's row is locked (see `mailbox`).
        for (blob, ..) in &items {
            blobs::insert(&txn, blob, 1).await?;
        }
        let mut ids = Vec::with_capacity(items.len());
        for (blob, _, _, summary) in &items {
            let id = match summary {
                Some(s) => {
                    let id = summaries::insert(&txn, blob.id(), s).await?;
                    if let Some(words) = &s.words {
                        summaries::insert_words(&txn, account, id, words).await?;
                    }
                    Some(id)
                }
                None => None,
            };
            ids.push(id);
        }
        let state = state_by_id(&txn, mailbox).await?;
        let insert = txn
            .prepare(
                "INSERT INTO messages (mailbox_id, uid, blob_id, prefix, size, internal_date, internal_zone, flags, modseq, reference, trail, summary) \
                 VALUES ($1, $2, $3, '', $4, $5, $6, $7, $8, $9, '[]', $10)",
            )
            .await?;
        let mut uids = Vec::with_capacity(items.len());
        for ((blob, flags, (date, zone), _), summary) in items.iter().zip(ids) {
            let taken = take_uids(&txn, &[mailbox]).await?[0];
            let reference = format!("append-{}", blob.id());
            txn.execute(
                &insert,
                &[&mailbox, &i64::from(taken.uid), &blob.id(), &(blob.size() as i64), date, zone, flags, &taken.modseq, &reference, &summary],
            )
            .await?;
            uids.push((0, taken.uid));
        }
        self.commit(txn, &[mailbox]).await?;
        Ok(Transfer { uidvalidity: state.uidvalidity, uids })
    }
}

#[async_trait]
impl MailStore for PgStore {
    async fn mailbox_state(&self, account: AccountId, name: &str) -> Result<Option<MailboxState>> {
        state_by_name(&self.conn().await?, account, &normalize(name)).await
    }

    async fn mailbox_states(&self, account: AccountId) -> Result<Vec<MailboxState>> {
        let rows = self
            .conn()
            .await?
            .query(&format!("SELECT {STATE_COLUMNS} FROM mailboxes WHERE account_id = $1 ORDER BY name COLLATE \"C\""), &[&account])
            .await?;
        Ok(rows.iter().map(state_from_row).collect())
    }

    async fn create_mailbox(&self, account: AccountId, name: &str, special_use: Option<&str>) -> Result<MailboxId> {
        let name = normalize(name);
        if !valid(&name) {
            return Err(StoreError::InvalidName(name));
        }
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        if state_by_name(&txn, account, &name).await?.is_some() {
            return Err(StoreError::Exists(format!("mailbox {name}")));
        }
        // RFC 3501 §6.3.3: create the superior hierarchy names the new name needs.
        let parts: Vec<&str> = name.split(DELIMITER).collect();
        let mut id = 0;
        for i in 1..=parts.len() {
            let path = parts[..i].join(&DELIMITER.to_string());
            if let Some(existing) = state_by_name(&txn, account, &path).await? {
                id = existing.id;
                continue;
            }
            let uidvalidity = i64::from(next_uidvalidity(&txn, account).await?);
            let use_ = if i == parts.len() { special_use } else { None };
            // Another node may create the same name meanwhile: then it exists.
            let row = txn
                .query_opt(
                    "INSERT INTO mailboxes (account_id, name, uidvalidity, special_use) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (account_id, name) DO NOTHING RETURNING id",
                    &[&account, &path, &uidvalidity, &use_],
                )
                .await?
                .ok_or_else(|| StoreError::Exists(format!("mailbox {path}")))?;
            id = row.get(0);
        }
        txn.commit().await?;
        Ok(id)
    }

    async fn delete_mailbox(&self, account: AccountId, name: &str) -> Result<()> {
        let name = normalize(name);
        if name == "INBOX" {
            return Err(StoreError::InboxUndeletable);
        }
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let state = state_by_name(&txn, account, &name).await?.ok_or_else(|| StoreError::NotFound(format!("mailbox {name}")))?;
        txn.execute("SELECT 1 FROM mailboxes WHERE id = $1 FOR UPDATE", &[&state.id]).await?;
        let children: i64 = txn
            .query_one(
                "SELECT count(*) FROM mailboxes WHERE account_id = $1 AND left(name, $3) = $2",
                &[&account, &format!("{name}{DELIMITER}"), &(name.chars().count() as i32 + 1)],
            )
            .await?
            .get(0);
        if children > 0 {
            return Err(StoreError::HasChildren(name));
        }
        let blobs: Vec<(String, i64)> = txn
            .query("SELECT blob_id, count(*) FROM messages WHERE mailbox_id = $1 GROUP BY blob_id", &[&state.id])
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        txn.execute("DELETE FROM messages WHERE mailbox_id = $1", &[&state.id]).await?;
        let names: Vec<String> = blobs.iter().map(|(b, _)| b.clone()).collect();
        summaries::forget_words(&txn, account, &names).await?;
        release_blobs(&txn, &blobs).await?;
        txn.execute("DELETE FROM mailboxes WHERE id = $1", &[&state.id]).await?;
        self.commit(txn, &[state.id]).await
    }

    async fn rename_mailbox(&self, account: AccountId, from: &str, to: &str) -> Result<()> {
        let (from, to) = (normalize(from), normalize(to));
        if !valid(&to) {
            return Err(StoreError::InvalidName(to));
        }
        if to == "INBOX" || to.starts_with(&format!("{from}{DELIMITER}")) {
            return Err(StoreError::Conflict { from, to });
        }
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let state = state_by_name(&txn, account, &from).await?.ok_or_else(|| StoreError::NotFound(format!("mailbox {from}")))?;
        if state_by_name(&txn, account, &to).await?.is_some() {
            return Err(StoreError::Exists(format!("mailbox {to}")));
        }
        // Parents of the new name (RFC 3501 §6.3.5).
        let parts: Vec<&str> = to.split(DELIMITER).collect();
        for i in 1..parts.len() {
            let path = parts[..i].join(&DELIMITER.to_string());
            if state_by_name(&txn, account, &path).await?.is_none() {
                let uidvalidity = i64::from(next_uidvalidity(&txn, account).await?);
                txn.execute("INSERT INTO mailboxes (account_id, name, uidvalidity) VALUES ($1, $2, $3)", &[&account, &path, &uidvalidity])
                    .await?;
            }
        }
        if from == "INBOX" {
            // The messages move to a new mailbox; INBOX stays, empty.
            let uidvalidity = i64::from(next_uidvalidity(&txn, account).await?);
            let target: MailboxId = txn
                .query_one("INSERT INTO mailboxes (account_id, name, uidvalidity) VALUES ($1, $2, $3) RETURNING id", &[&account, &to, &uidvalidity])
                .await?
                .get(0);
            let uids: Vec<u32> = txn
                .query("SELECT uid FROM messages WHERE mailbox_id = $1 ORDER BY uid", &[&state.id])
                .await?
                .iter()
                .map(|r| r.get::<_, i64>(0) as u32)
                .collect();
            copy_rows(&txn, state.id, &uids, target).await?;
            remove_messages(&txn, state.id, &uids).await?;
            return self.commit(txn, &[state.id, target]).await;
        }
        let prefix = format!("{from}{DELIMITER}");
        let cut = from.chars().count() as i32 + 1;
        txn.execute(
            "UPDATE mailboxes SET name = $3 || substr(name, $4) WHERE account_id = $1 AND (name = $2 OR left(name, length($5)) = $5)",
            &[&account, &from, &to, &cut, &prefix],
        )
        .await?;
        // Subscriptions follow the mailboxes; one already under the new name wins.
        txn.execute(
            "DELETE FROM subscriptions s WHERE account_id = $1 AND (name = $2 OR left(name, length($5)) = $5) \
             AND EXISTS (SELECT 1 FROM subscriptions t WHERE t.account_id = $1 AND t.name = $3 || substr(s.name, $4))",
            &[&account, &from, &to, &cut, &prefix],
        )
        .await?;
        txn.execute(
            "UPDATE subscriptions SET name = $3 || substr(name, $4) WHERE account_id = $1 AND (name = $2 OR left(name, length($5)) = $5)",
            &[&account, &from, &to, &cut, &prefix],
        )
        .await?;
        self.commit(txn, &[state.id]).await
    }

    async fn set_subscribed(&self, account: AccountId, name: &str, subscribed: bool) -> Result<()> {
        let name = normalize(name);
        let conn = self.conn().await?;
        if subscribed {
            // Subscribing checks that the mailbox exists; the subscription then outlives it.
            if state_by_name(&conn, account, &name).await?.is_none() {
                return Err(StoreError::NotFound(format!("mailbox {name}")));
            }
            conn.execute("INSERT INTO subscriptions (account_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING", &[&account, &name]).await?;
        } else {
            let n = conn.execute("DELETE FROM subscriptions WHERE account_id = $1 AND name = $2", &[&account, &name]).await?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("subscription {name}")));
            }
        }
        Ok(())
    }

    async fn subscriptions(&self, account: AccountId) -> Result<Vec<String>> {
        let rows = self
            .conn()
            .await?
            .query("SELECT name FROM subscriptions WHERE account_id = $1 ORDER BY name COLLATE \"C\"", &[&account])
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn view_rows(&self, mailbox: MailboxId) -> Result<(MailboxState, ViewRows)> {
        let mut conn = self.conn().await?;
        let txn = &snapshot_txn(&mut conn).await?;
        let out: Result<_> = async {
            let state = state_by_id(txn, mailbox).await?;
            let mut rows = ViewRows::default();
            let mut index = std::collections::HashMap::new();
            for r in txn.query("SELECT uid, flags FROM messages WHERE mailbox_id = $1 ORDER BY uid", &[&mailbox]).await? {
                rows.push(r.get::<_, i64>(0) as u32, r.get::<_, &str>(1), &mut index);
            }
            Ok((state, rows))
        }
        .await;
        out
    }

    async fn snapshot(&self, mailbox: MailboxId) -> Result<(MailboxState, Vec<MessageRecord>)> {
        let mut conn = self.conn().await?;
        let txn = &snapshot_txn(&mut conn).await?;
        let out: Result<_> = async {
            let state = state_by_id(txn, mailbox).await?;
            let rows = txn.query(&format!("SELECT {RECORD_COLUMNS} FROM messages WHERE mailbox_id = $1 ORDER BY uid"), &[&mailbox]).await?;
            Ok((state, rows.iter().map(record_from_row).collect()))
        }
        .await;
        out
    }

    async fn records(&self, mailbox: MailboxId, first: u32, last: u32) -> Result<Vec<MessageRecord>> {
        let rows = self
            .conn()
            .await?
            .query(
                &format!("SELECT {RECORD_COLUMNS} FROM messages WHERE mailbox_id = $1 AND uid BETWEEN $2 AND $3 ORDER BY uid"),
                &[&mailbox, &i64::from(first), &i64::from(last)],
            )
            .await?;
        Ok(rows.iter().map(record_from_row).collect())
    }

    async fn stored(&self, mailbox: MailboxId, first: u32, last: u32, want: Want) -> Result<Vec<Stored>> {
        summaries::stored(&self.conn().await?, mailbox, first, last, want).await
    }

    async fn save_summaries(&self, mailbox: MailboxId, list: Vec<(u32, Summary)>) -> Result<()> {
        if list.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        summaries::save(&txn, mailbox, list).await?;
        txn.commit().await?;
        Ok(())
    }

    async fn words_containing(&self, _fragment: &str, _limit: usize) -> Result<Option<Vec<String>>> {
        // No vocabulary to walk: "more than the limit" (see `summaries`).
        Ok(None)
    }

    async fn word_candidates(&self, account: AccountId, conditions: Vec<WordMatch>) -> Result<HashSet<i64>> {
        summaries::word_candidates(&self.conn().await?, account, &conditions).await
    }

    async fn changes_since(&self, mailbox: MailboxId, modseq: u64) -> Result<Changes> {
        let mut conn = self.conn().await?;
        let txn = &snapshot_txn(&mut conn).await?;
        let out: Result<_> = async {
            let state = state_by_id(txn, mailbox).await?;
            let mut changes = Changes { highestmodseq: state.highestmodseq, uidnext: state.uidnext, ..Changes::default() };
            if state.highestmodseq <= modseq {
                return Ok(changes);
            }
            let m = modseq as i64;
            changes.changed = txn
                .query(&format!("SELECT {RECORD_COLUMNS} FROM messages WHERE mailbox_id = $1 AND modseq > $2 ORDER BY uid"), &[&mailbox, &m])
                .await?
                .iter()
                .map(record_from_row)
                .collect();
            let floor: i64 = txn.query_one("SELECT expunged_floor FROM mailboxes WHERE id = $1", &[&mailbox]).await?.get(0);
            changes.expunged = if m < floor {
                // Pruned: every UID below UIDNEXT that no message has (RFC 7162 §3.2.10 allows a superset).
                txn.query(
                    "SELECT u::bigint FROM generate_series(1, $2::bigint - 1) u \
                     WHERE NOT EXISTS (SELECT 1 FROM messages WHERE mailbox_id = $1 AND uid = u) ORDER BY u",
                    &[&mailbox, &i64::from(state.uidnext)],
                )
                .await?
            } else {
                txn.query("SELECT uid FROM expunged WHERE mailbox_id = $1 AND modseq > $2 ORDER BY uid", &[&mailbox, &m]).await?
            }
            .iter()
            .map(|r| r.get::<_, i64>(0) as u32)
            .collect();
            Ok(changes)
        }
        .await;
        out
    }

    async fn claim_recent(&self, mailbox: MailboxId, up_to: u32) -> Result<u32> {
        // The old value under the row lock: two sessions (on any nodes) never both claim a UID.
        let row = self
            .conn()
            .await?
            .query_opt(
                "UPDATE mailboxes m SET recent_uid = greatest(m.recent_uid, $2) FROM (SELECT recent_uid FROM mailboxes WHERE id = $1 FOR UPDATE) old \
                 WHERE m.id = $1 RETURNING old.recent_uid",
                &[&mailbox, &i64::from(up_to)],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("mailbox {mailbox}")))?;
        Ok(row.get::<_, i64>(0) as u32)
    }

    async fn peek_recent(&self, mailbox: MailboxId) -> Result<u32> {
        let row = self
            .conn()
            .await?
            .query_opt("SELECT recent_uid FROM mailboxes WHERE id = $1", &[&mailbox])
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("mailbox {mailbox}")))?;
        Ok(row.get::<_, i64>(0) as u32)
    }

    async fn prune_expunged(&self, before: i64) -> Result<usize> {
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        txn.execute(
            "UPDATE mailboxes SET expunged_floor = greatest(expunged_floor, \
                 (SELECT max(modseq) FROM expunged e WHERE e.mailbox_id = mailboxes.id AND e.at < $1)) \
             WHERE id IN (SELECT mailbox_id FROM expunged WHERE at < $1)",
            &[&before],
        )
        .await?;
        let n = txn.execute("DELETE FROM expunged WHERE at < $1", &[&before]).await?;
        txn.commit().await?;
        // The same hourly upkeep deletes the bodies their messages' expunges released.
        super::purge_released(&conn, crate::sqlite::now() - super::RELEASED_GRACE).await?;
        Ok(n as usize)
    }

    async fn mailbox_counts(&self, mailbox: MailboxId) -> Result<(u32, u32, u32, u64)> {
        let r = self
            .conn()
            .await?
            .query_one(
                "SELECT count(*), \
                 coalesce(sum(CASE WHEN position(' \\Seen ' in ' ' || flags || ' ') > 0 THEN 0 ELSE 1 END), 0)::bigint, \
                 coalesce(sum(CASE WHEN uid >= (SELECT recent_uid FROM mailboxes WHERE id = $1) THEN 1 ELSE 0 END), 0)::bigint, \
                 coalesce(sum(size), 0)::bigint FROM messages WHERE mailbox_id = $1",
                &[&mailbox],
            )
            .await?;
        Ok((r.get::<_, i64>(0) as u32, r.get::<_, i64>(1) as u32, r.get::<_, i64>(2) as u32, r.get::<_, i64>(3) as u64))
    }

    async fn store_flags(
        &self,
        mailbox: MailboxId,
        uids: Vec<u32>,
        op: FlagOp,
        flags: Vec<String>,
        unchanged_since: Option<u64>,
    ) -> Result<FlagsUpdate> {
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        // The mailbox's row first: flag changes of one mailbox are serialized on every node,
        // so each reads the flags the previous one wrote.
        txn.execute("SELECT 1 FROM mailboxes WHERE id = $1 FOR UPDATE", &[&mailbox]).await?;
        let read = txn.prepare("SELECT flags, modseq FROM messages WHERE mailbox_id = $1 AND uid = $2").await?;
        let write = txn.prepare("UPDATE messages SET flags = $3, modseq = $4 WHERE mailbox_id = $1 AND uid = $2").await?;
        let mut update = FlagsUpdate::default();
        let mut modseq: Option<u64> = None;
        for uid in uids {
            let Some(row) = txn.query_opt(&read, &[&mailbox, &i64::from(uid)]).await? else { continue };
            let (current, current_modseq): (String, i64) = (row.get(0), row.get(1));
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
                None => *modseq.insert(bump_modseq(&txn, mailbox).await?),
            };
            txn.execute(&write, &[&mailbox, &i64::from(uid), &new, &(m as i64)]).await?;
            update.messages.push((uid, new, m));
        }
        match modseq {
            Some(_) => self.commit(txn, &[mailbox]).await?,
            None => txn.commit().await?,
        }
        Ok(update)
    }

    async fn expunge(&self, mailbox: MailboxId, uids: Option<Vec<u32>>) -> Result<Vec<u32>> {
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        txn.execute("SELECT 1 FROM mailboxes WHERE id = $1 FOR UPDATE", &[&mailbox]).await?;
        let mut deleted: Vec<u32> = txn
            .query(
                "SELECT uid FROM messages WHERE mailbox_id = $1 AND position(' \\Deleted ' in ' ' || flags || ' ') > 0 ORDER BY uid",
                &[&mailbox],
            )
            .await?
            .iter()
            .map(|r| r.get::<_, i64>(0) as u32)
            .collect();
        if let Some(only) = uids {
            deleted.retain(|u| only.binary_search(u).is_ok());
        }
        if deleted.is_empty() {
            txn.commit().await?;
            return Ok(deleted);
        }
        remove_messages(&txn, mailbox, &deleted).await?;
        self.commit(txn, &[mailbox]).await?;
        Ok(deleted)
    }

    async fn copy_messages(&self, from: MailboxId, uids: Vec<u32>, to: MailboxId) -> Result<Transfer> {
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let transfer = copy_rows(&txn, from, &uids, to).await?;
        self.commit(txn, &[to]).await?;
        Ok(transfer)
    }

    async fn move_messages(&self, from: MailboxId, uids: Vec<u32>, to: MailboxId) -> Result<Transfer> {
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let transfer = copy_rows(&txn, from, &uids, to).await?;
        let moved: Vec<u32> = transfer.uids.iter().map(|(src, _)| *src).collect();
        remove_messages(&txn, from, &moved).await?;
        self.commit(txn, &[from, to]).await?;
        Ok(transfer)
    }

    async fn append(&self, mailbox: MailboxId, blob: Blob, flags: String, internal_date: i64) -> Result<Transfer> {
        self.append_all(mailbox, vec![(blob, flags, internal_date, 0)]).await
    }

    async fn append_all(&self, mailbox: MailboxId, messages: Vec<(Blob, String, i64, i32)>) -> Result<Transfer> {
        let mut items = Vec::with_capacity(messages.len());
        for (blob, flags, internal_date, zone) in messages {
            let summary = self.summarize(&[], &blob).await;
            items.push((blob, flags, (internal_date, zone), summary));
        }
        self.append_items(mailbox, items).await
    }

    async fn set_next_uid(&self, mailbox: MailboxId, uidvalidity: Option<u32>, next_uid: u32) -> Result<()> {
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        txn.execute("SELECT 1 FROM mailboxes WHERE id = $1 FOR UPDATE", &[&mailbox]).await?;
        if let Some(v) = uidvalidity {
            let v = i64::from(v);
            let adopted = txn
                .execute(
                    "UPDATE mailboxes SET uidvalidity = $2 WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM messages WHERE mailbox_id = $1)",
                    &[&mailbox, &v],
                )
                .await?;
            if adopted > 0 {
                // A name deleted and created again must still get a higher one.
                txn.execute(
                    "INSERT INTO uidvalidity_seq (account_id, last) SELECT account_id, $2 FROM mailboxes WHERE id = $1 \
                     ON CONFLICT (account_id) DO UPDATE SET last = greatest(uidvalidity_seq.last, excluded.last)",
                    &[&mailbox, &v],
                )
                .await?;
            }
        }
        txn.execute("UPDATE mailboxes SET uidnext = $2 WHERE id = $1 AND uidnext < $2", &[&mailbox, &i64::from(next_uid)]).await?;
        self.commit(txn, &[mailbox]).await
    }

    async fn usage(&self, account: AccountId) -> Result<(u64, u64)> {
        let r = self
            .conn()
            .await?
            .query_one(
                "SELECT coalesce(sum(m.size), 0)::bigint, count(*) FROM messages m JOIN mailboxes b ON m.mailbox_id = b.id \
                 WHERE b.account_id = $1",
                &[&account],
            )
            .await?;
        Ok((r.get::<_, i64>(0) as u64, r.get::<_, i64>(1) as u64))
    }

    fn watch_mailbox(&self, mailbox: MailboxId) -> watch::Receiver<u64> {
        self.shared.notifier.watch(mailbox)
    }
}
