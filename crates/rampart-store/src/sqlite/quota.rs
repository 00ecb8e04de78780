//! [`QuotaStore`] for SQLite: counts per scope in 5-minute buckets, distinct external
//! recipients with the last time each was sent to, overrides and exceptions.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use crate::address::domain_of;
use crate::quota::{BUCKET, DAY, HOUR, QuotaOverride, QuotaStatus, Submitted, Usage, first_bucket};
use crate::{QuotaStore, Result};

/// Counts a submitted message for its user and the user's domain. Runs inside the delivery's
/// writer job: a few upserts on primary keys.
pub(super) fn record(conn: &Connection, s: &Submitted, now: i64) -> Result<()> {
    let account = s.account.to_lowercase();
    let domain = domain_of(&account).to_string();
    let bucket = now.div_euclid(BUCKET);
    let mut count = conn.prepare_cached(
        "INSERT INTO quota_counts (scope, bucket, messages, recipients, external) VALUES (?1, ?2, 1, ?3, ?4) \
         ON CONFLICT (scope, bucket) DO UPDATE SET messages = messages + 1, \
         recipients = recipients + excluded.recipients, external = external + excluded.external",
    )?;
    for scope in [&account, &domain] {
        count.execute(params![scope, bucket, s.recipients as i64, s.external.len() as i64])?;
        for rcpt in &s.external {
            seen(conn, scope, &rcpt.to_lowercase(), now)?;
        }
    }
    if !s.message_id.is_empty() {
        let mut sent = conn.prepare_cached(
            "INSERT INTO sent_rcpts (message_id, rcpt, account, at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (message_id, rcpt) DO UPDATE SET account = excluded.account, at = excluded.at",
        )?;
        for rcpt in &s.external {
            sent.execute(params![s.message_id, rcpt.to_lowercase(), account, now])?;
        }
    }
    Ok(())
}

/// Notes that `scope` sent to `rcpt` at `now`, moving the recipient in `quota_seen` from the
/// bucket it was last sent to in (if any) to `now`'s.
fn seen(conn: &Connection, scope: &str, rcpt: &str, now: i64) -> Result<()> {
    let before: Option<i64> = conn
        .prepare_cached("SELECT last_seen FROM quota_rcpts WHERE scope = ?1 AND rcpt = ?2")?
        .query_row(params![scope, rcpt], |r| r.get(0))
        .optional()?;
    conn.prepare_cached(
        "INSERT INTO quota_rcpts (scope, rcpt, last_seen) VALUES (?1, ?2, ?3) \
         ON CONFLICT (scope, rcpt) DO UPDATE SET last_seen = excluded.last_seen",
    )?
    .execute(params![scope, rcpt, now])?;
    let bucket = now.div_euclid(BUCKET);
    if before.map(|t| t.div_euclid(BUCKET)) == Some(bucket) {
        return Ok(());
    }
    if let Some(t) = before {
        // The old bucket may be pruned already while the recipient row is not (pruning is by
        // time): then there is nothing to take it from.
        conn.prepare_cached("UPDATE quota_seen SET rcpts = rcpts - 1 WHERE scope = ?1 AND bucket = ?2")?
            .execute(params![scope, t.div_euclid(BUCKET)])?;
    }
    conn.prepare_cached(
        "INSERT INTO quota_seen (scope, bucket, rcpts) VALUES (?1, ?2, 1) \
         ON CONFLICT (scope, bucket) DO UPDATE SET rcpts = rcpts + 1",
    )?
    .execute(params![scope, bucket])?;
    Ok(())
}

/// What `scope` sent in the last hour and day.
pub(super) fn usage(conn: &Connection, scope: &str, now: i64) -> Result<Usage> {
    let (hour, day) = (first_bucket(now, HOUR), first_bucket(now, DAY));
    let (messages_hour, recipients_hour, messages_day, recipients_day): (i64, i64, i64, i64) = conn
        .prepare_cached(
            "SELECT coalesce(sum(messages) FILTER (WHERE bucket >= ?2), 0), \
             coalesce(sum(recipients) FILTER (WHERE bucket >= ?2), 0), \
             coalesce(sum(messages), 0), coalesce(sum(recipients), 0) \
             FROM quota_counts WHERE scope = ?1 AND bucket >= ?3",
        )?
        .query_row(params![scope, hour, day], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
    let external_day = distinct_external(conn, scope, day)?;
    Ok(Usage {
        messages_hour: messages_hour as u64,
        messages_day: messages_day as u64,
        recipients_hour: recipients_hour as u64,
        recipients_day: recipients_day as u64,
        external_day,
    })
}

/// Distinct external recipients `scope` last sent to in bucket `first` or later: each counts
/// once, in the bucket of its latest message.
pub(super) fn distinct_external(conn: &Connection, scope: &str, first: i64) -> Result<u64> {
    let n: i64 = conn
        .prepare_cached("SELECT coalesce(sum(rcpts), 0) FROM quota_seen WHERE scope = ?1 AND bucket >= ?2")?
        .query_row(params![scope, first], |r| r.get(0))?;
    Ok(n as u64)
}

fn overrides_of(conn: &Connection, target: &str) -> Result<Vec<(String, u64)>> {
    let mut stmt = conn.prepare_cached("SELECT key, value FROM quota_overrides WHERE target = ?1 ORDER BY key")?;
    let rows = stmt.query_map([target], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Whether the address or its domain is on the exception list.
pub(super) fn exempt(conn: &Connection, address: &str) -> Result<bool> {
    let domain = domain_of(address);
    Ok(conn
        .prepare_cached("SELECT 1 FROM quota_exempt WHERE target IN (?1, ?2)")?
        .query_row(params![address, domain], |_| Ok(()))
        .optional()?
        .is_some())
}

pub(super) fn status(conn: &Connection, address: &str, now: i64) -> Result<QuotaStatus> {
    let domain = domain_of(address).to_string();
    Ok(QuotaStatus {
        user: usage(conn, address, now)?,
        domain: usage(conn, &domain, now)?,
        user_overrides: overrides_of(conn, address)?,
        domain_overrides: overrides_of(conn, &domain)?,
        exempt: exempt(conn, address)?,
    })
}

#[async_trait]
impl QuotaStore for SqliteStore {
    async fn quota_status(&self, address: &str, now: i64) -> Result<QuotaStatus> {
        let address = address.to_lowercase();
        self.read_now(|conn| status(conn, &address, now))
    }

    async fn quota_usage(&self, scope: &str, now: i64) -> Result<Usage> {
        let scope = scope.to_lowercase();
        self.read(move |conn| usage(conn, &scope, now)).await
    }

    async fn quota_seen(&self, scope: &str, rcpt: &str, since: i64) -> Result<bool> {
        let (scope, rcpt) = (scope.to_lowercase(), rcpt.to_lowercase());
        self.read_now(|conn| {
            Ok(conn
                .prepare_cached("SELECT 1 FROM quota_rcpts WHERE scope = ?1 AND rcpt = ?2 AND last_seen > ?3")?
                .query_row(params![scope, rcpt, since], |_| Ok(()))
                .optional()?
                .is_some())
        })
    }

    async fn quota_override(&self, target: &str, key: &str, value: Option<u64>) -> Result<()> {
        let (target, key) = (target.to_lowercase(), key.to_string());
        self.write(move |conn, _| {
            match value {
                Some(v) => conn.execute(
                    "INSERT INTO quota_overrides (target, key, value) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (target, key) DO UPDATE SET value = excluded.value",
                    params![target, key, v as i64],
                )?,
                None => conn.execute("DELETE FROM quota_overrides WHERE target = ?1 AND key = ?2", params![target, key])?,
            };
            Ok(())
        })
        .await
    }

    async fn quota_overrides(&self) -> Result<Vec<QuotaOverride>> {
        self.read(|conn| {
            let mut stmt = conn.prepare("SELECT target, key, value FROM quota_overrides ORDER BY target, key")?;
            let rows = stmt.query_map([], |r| Ok(QuotaOverride { target: r.get(0)?, key: r.get(1)?, value: r.get::<_, i64>(2)? as u64 }))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn quota_exempt(&self, target: &str, exempt: bool) -> Result<bool> {
        let target = target.to_lowercase();
        self.write(move |conn, _| {
            let changed = if exempt {
                conn.execute("INSERT OR IGNORE INTO quota_exempt (target, created) VALUES (?1, ?2)", params![target, super::now()])?
            } else {
                conn.execute("DELETE FROM quota_exempt WHERE target = ?1", [&target])?
            };
            Ok(changed > 0)
        })
        .await
    }

    async fn quota_exemptions(&self) -> Result<Vec<String>> {
        self.read(|conn| {
            let mut stmt = conn.prepare("SELECT target FROM quota_exempt ORDER BY target")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
        .await
    }

    async fn quota_prune(&self, before: i64) -> Result<()> {
        self.write(move |conn, _| {
            // Whole buckets, so that a recipient is pruned exactly when the bucket counting it is.
            let bucket = before.div_euclid(BUCKET);
            conn.execute("DELETE FROM quota_counts WHERE bucket < ?1", [bucket])?;
            conn.execute("DELETE FROM quota_seen WHERE bucket < ?1", [bucket])?;
            conn.execute("DELETE FROM quota_rcpts WHERE last_seen < ?1", [bucket * BUCKET])?;
            Ok(())
        })
        .await
    }
}
