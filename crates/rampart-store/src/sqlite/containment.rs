//! [`ContainmentStore`] for SQLite: signals, the evidence the score reads, suspensions and
//! the held part of the queue.

use std::collections::BTreeMap;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::writer::Effects;
use super::{SqliteStore, queue, quota};
use crate::containment::{Evidence, NewNetwork, Signal, Suspended, Suspension, SuspensionScope, login_network};
use crate::quota::BUCKET;
use crate::quota::QuotaStatus;
use crate::{AccountId, ContainmentStore, Result};

/// The account's suspension, if any, and when it was last resumed.
fn state(conn: &Connection, account: &str) -> Result<(Option<Suspension>, i64)> {
    let row: Option<(Option<String>, String, bool, i64, i64)> = conn
        .prepare_cached("SELECT scope, reason, automatic, since, resumed FROM sending_state WHERE account = ?1")?
        .query_row([account], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .optional()?;
    let Some((scope, reason, automatic, since, resumed)) = row else { return Ok((None, 0)) };
    let suspension = scope.map(|s| Suspension { account: account.to_string(), scope: SuspensionScope::parse(&s), reason, automatic, since });
    Ok((suspension, resumed))
}

/// The first network ([`login_network`]: an IPv4 /24, an IPv6 /64) the account logged in from
/// within the window, when it had logged in from another one before, and what it sent since.
/// Grouped here rather than in SQL: an account has a handful of known logins.
fn new_network(conn: &Connection, account: &str, since: i64) -> Result<Option<NewNetwork>> {
    let rows = conn
        .prepare_cached("SELECT net, first_seen FROM known_logins WHERE account = ?1")?
        .query_map([account], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    // Each network's first sighting: the earliest of its addresses.
    let mut first: BTreeMap<String, i64> = BTreeMap::new();
    for (net, seen) in rows {
        let e = first.entry(login_network(&net)).or_insert(seen);
        *e = (*e).min(seen);
    }
    let oldest = first.values().copied().min();
    let found = first
        .into_iter()
        .filter(|&(_, seen)| seen >= since && oldest.is_some_and(|o| o < seen))
        .min_by_key(|&(_, seen)| seen);
    let Some((net, first_seen)) = found else { return Ok(None) };
    let messages_since: i64 = conn
        .prepare_cached("SELECT coalesce(sum(messages), 0) FROM quota_counts WHERE scope = ?1 AND bucket >= ?2")?
        .query_row(params![account, first_seen.div_euclid(BUCKET)], |r| r.get(0))?;
    Ok(Some(NewNetwork { net, first_seen, messages_since: messages_since as u64 }))
}

fn evidence(conn: &Connection, account: &str, window_start: i64) -> Result<Evidence> {
    let (suspension, resumed) = state(conn, account)?;
    let since = window_start.max(resumed);
    let signals = conn
        .prepare_cached("SELECT kind, sum(count) FROM account_signals WHERE account = ?1 AND at >= ?2 GROUP BY kind ORDER BY kind")?
        .query_map(params![account, since], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let external: i64 = conn
        .prepare_cached("SELECT coalesce(sum(external), 0) FROM quota_counts WHERE scope = ?1 AND bucket >= ?2")?
        .query_row(params![account, since.div_euclid(BUCKET)], |r| r.get(0))?;
    let login_networks = conn
        .prepare_cached("SELECT net FROM known_logins WHERE account = ?1 AND last_seen >= ?2 ORDER BY net")?
        .query_map(params![account, since], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(Evidence {
        since,
        signals,
        external_recipients: external as u64,
        distinct_external: quota::distinct_external(conn, account, since.div_euclid(BUCKET))?,
        login_networks,
        new_network: new_network(conn, account, since)?,
        exempt: quota::exempt(conn, account)?,
        suspension,
    })
}

fn suspend(conn: &Connection, s: &Suspension) -> Result<Suspended> {
    let account = s.account.to_lowercase();
    let (current, _) = state(conn, &account)?;
    conn.execute(
        "INSERT INTO sending_state (account, scope, reason, automatic, since) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (account) DO UPDATE SET scope = excluded.scope, reason = excluded.reason, \
         automatic = excluded.automatic, \
         since = CASE WHEN sending_state.scope IS NULL THEN excluded.since ELSE sending_state.since END",
        params![account, s.scope.as_str(), s.reason, s.automatic, s.since],
    )?;
    let held = conn.execute("UPDATE queue SET held = 1 WHERE account = ?1 AND account != '' AND NOT held", [&account])?;
    Ok(Suspended { newly: current.is_none(), held: held as u64 })
}

/// Ids of held queue entries: one by id, or all of an account's.
fn held_ids(conn: &Connection, id: Option<&str>, account: Option<&str>) -> Result<Vec<String>> {
    let (sql, key) = match (id, account) {
        (Some(id), _) => ("SELECT id FROM queue WHERE id = ?1 AND held", id.to_string()),
        (None, Some(a)) => ("SELECT id FROM queue WHERE account = ?1 AND account != '' AND held ORDER BY created", a.to_lowercase()),
        (None, None) => return Ok(Vec::new()),
    };
    let ids = conn.prepare_cached(sql)?.query_map([key], |r| r.get(0))?.collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(ids)
}

fn release(conn: &Connection, ids: &[String], now: i64) -> Result<u64> {
    for id in ids {
        conn.execute("UPDATE queue SET held = 0 WHERE id = ?1", [id])?;
        conn.execute("UPDATE queue_rcpts SET next_attempt = ?2 WHERE queue_id = ?1 AND state = 'pending'", params![id, now])?;
    }
    Ok(ids.len() as u64)
}

fn delete_held(conn: &Connection, effects: &mut Effects, account: &str) -> Result<u64> {
    let ids = held_ids(conn, None, Some(account))?;
    for id in &ids {
        queue::delete(conn, effects, id)?;
    }
    Ok(ids.len() as u64)
}

#[async_trait]
impl ContainmentStore for SqliteStore {
    async fn evidence(&self, account: &str, window_start: i64) -> Result<Evidence> {
        let account = account.to_lowercase();
        self.read_now(|conn| evidence(conn, &account, window_start))
    }

    async fn sending_status(&self, account: &str, now: i64, window_start: i64) -> Result<(QuotaStatus, Evidence)> {
        let account = account.to_lowercase();
        self.read_now(|conn| Ok((quota::status(conn, &account, now)?, evidence(conn, &account, window_start)?)))
    }

    async fn record_signal(&self, signal: Signal, window_start: i64, now: i64) -> Result<Evidence> {
        self.write(move |conn, _| {
            let account = signal.account.to_lowercase();
            if !quota::exempt(conn, &account)? {
                conn.prepare_cached("INSERT INTO account_signals (account, kind, count, detail, at) VALUES (?1, ?2, ?3, ?4, ?5)")?
                    .execute(params![account, signal.kind, signal.count as i64, signal.detail, now])?;
            }
            evidence(conn, &account, window_start)
        })
        .await
    }

    async fn suspend(&self, suspension: Suspension) -> Result<Suspended> {
        self.write(move |conn, _| suspend(conn, &suspension)).await
    }

    async fn resume(&self, account: &str, now: i64) -> Result<Option<u64>> {
        let account = account.to_lowercase();
        self.write(move |conn, _| {
            let n = conn.execute(
                "UPDATE sending_state SET scope = NULL, resumed = ?2 WHERE account = ?1 AND scope IS NOT NULL",
                params![account, now],
            )?;
            if n == 0 {
                return Ok(None);
            }
            // Its signals are forgotten outright: one recorded in the second of the resume
            // would otherwise still count.
            conn.execute("DELETE FROM account_signals WHERE account = ?1", [&account])?;
            let held: i64 = conn.query_row("SELECT count(*) FROM queue WHERE account = ?1 AND account != '' AND held", [&account], |r| r.get(0))?;
            Ok(Some(held as u64))
        })
        .await
    }

    async fn suspension(&self, account: &str) -> Result<Option<Suspension>> {
        let account = account.to_lowercase();
        self.read(move |conn| Ok(state(conn, &account)?.0)).await
    }

    async fn suspensions(&self) -> Result<Vec<Suspension>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(
                "SELECT account, scope, reason, automatic, since FROM sending_state WHERE scope IS NOT NULL ORDER BY account",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(Suspension {
                    account: r.get(0)?,
                    scope: SuspensionScope::parse(&r.get::<_, String>(1)?),
                    reason: r.get(2)?,
                    automatic: r.get(3)?,
                    since: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn queue_release_held(&self, id: Option<&str>, account: Option<&str>, now: i64) -> Result<u64> {
        let (id, account) = (id.map(str::to_string), account.map(str::to_string));
        self.write(move |conn, _| {
            let ids = held_ids(conn, id.as_deref(), account.as_deref())?;
            release(conn, &ids, now)
        })
        .await
    }

    async fn queue_delete_held(&self, account: &str) -> Result<u64> {
        let account = account.to_string();
        self.write(move |conn, effects| delete_held(conn, effects, &account)).await
    }

    async fn sent_bounced(&self, message_id: &str, rcpts: Vec<String>, accounts: Vec<AccountId>) -> Result<Vec<(String, u64)>> {
        let message_id = message_id.to_string();
        self.write(move |conn, _| {
            let mut found = Vec::new();
            for id in accounts {
                let Some(account) = conn
                    .prepare_cached("SELECT address FROM accounts WHERE id = ?1")?
                    .query_row([id], |r| r.get::<_, String>(0))
                    .optional()?
                else {
                    continue;
                };
                let mut taken = 0;
                for rcpt in &rcpts {
                    taken += conn
                        .prepare_cached("DELETE FROM sent_rcpts WHERE message_id = ?1 AND rcpt = ?2 AND account = ?3")?
                        .execute(params![message_id, rcpt.to_lowercase(), account])? as u64;
                }
                if taken > 0 {
                    found.push((account, taken));
                }
            }
            Ok(found)
        })
        .await
    }

    async fn signals_prune(&self, before: i64) -> Result<()> {
        self.write(move |conn, _| {
            conn.execute("DELETE FROM account_signals WHERE at < ?1", [before])?;
            conn.execute("DELETE FROM sent_rcpts WHERE at < ?1", [before])?;
            Ok(())
        })
        .await
    }
}
