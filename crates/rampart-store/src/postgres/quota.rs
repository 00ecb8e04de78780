//! [`QuotaStore`] for PostgreSQL: counts per scope in 5-minute buckets, distinct external
//! recipients with the last time each was sent to, overrides and exceptions; the same
//! behaviour as `sqlite::quota` (held to it by `crate::role_tests`). Every node counts into the
//! same rows, so a quota holds across nodes.
//!
//! [`record`] runs inside the transaction of a submission's delivery, as SQLite's does inside
//! the writer job. Its upserts are safe under concurrency:
//! a recipient row is claimed with `INSERT … ON CONFLICT DO NOTHING` (a concurrent insert of
//! the same row waits for the other transaction, then sees it) or locked with `FOR UPDATE`
//! before its bucket moves, so two nodes sending to one recipient at once count it once; the
//! recipients are taken in sorted order so that two such transactions cannot deadlock. A
//! delivery batch counts several senders' submissions, whose rows two batches could take in
//! opposite orders: it holds an advisory lock meanwhile (`batch`).

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Transaction};

use super::PgStore;
use crate::address::domain_of;
use crate::quota::{BUCKET, DAY, HOUR, QuotaOverride, QuotaStatus, Submitted, Usage, first_bucket};
use crate::{QuotaStore, Result};

/// Counts a submitted message for its user and the user's domain, and remembers its external
/// recipients by Message-ID (`sent_rcpts`, for containment's bounce matching).
pub(crate) async fn record(txn: &Transaction<'_>, s: &Submitted, now: i64) -> Result<()> {
    let account = s.account.to_lowercase();
    let domain = domain_of(&account).to_string();
    let bucket = now.div_euclid(BUCKET);
    // Sorted: concurrent submissions lock recipient rows in one order (see the module doc).
    let mut external: Vec<String> = s.external.iter().map(|r| r.to_lowercase()).collect();
    external.sort();
    let count = txn
        .prepare(
            "INSERT INTO quota_counts (scope, bucket, messages, recipients, external) VALUES ($1, $2, 1, $3, $4) \
             ON CONFLICT (scope, bucket) DO UPDATE SET messages = quota_counts.messages + 1, \
             recipients = quota_counts.recipients + excluded.recipients, external = quota_counts.external + excluded.external",
        )
        .await?;
    for scope in [&account, &domain] {
        txn.execute(&count, &[scope, &bucket, &(s.recipients as i64), &(s.external.len() as i64)]).await?;
        for rcpt in &external {
            seen(txn, scope, rcpt, now).await?;
        }
    }
    if !s.message_id.is_empty() {
        let sent = txn
            .prepare(
                "INSERT INTO sent_rcpts (message_id, rcpt, account, at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (message_id, rcpt) DO UPDATE SET account = excluded.account, at = excluded.at",
            )
            .await?;
        for rcpt in &external {
            txn.execute(&sent, &[&s.message_id, rcpt, &account, &now]).await?;
        }
    }
    Ok(())
}

/// Notes that `scope` sent to `rcpt` at `now`, moving the recipient in `quota_seen` from the
/// bucket it was last sent to in (if any) to `now`'s.
async fn seen(txn: &Transaction<'_>, scope: &str, rcpt: &str, now: i64) -> Result<()> {
    let inserted = txn
        .execute(
            "INSERT INTO quota_rcpts (scope, rcpt, last_seen) VALUES ($1, $2, $3) ON CONFLICT (scope, rcpt) DO NOTHING",
            &[&scope, &rcpt, &now],
        )
        .await?;
    let before: Option<i64> = if inserted == 1 {
        None
    } else {
        let row = txn
            .query_one("SELECT last_seen FROM quota_rcpts WHERE scope = $1 AND rcpt = $2 FOR UPDATE", &[&scope, &rcpt])
            .await?;
        txn.execute("UPDATE quota_rcpts SET last_seen = $3 WHERE scope = $1 AND rcpt = $2", &[&scope, &rcpt, &now]).await?;
        Some(row.get(0))
    };
    let bucket = now.div_euclid(BUCKET);
    if before.map(|t| t.div_euclid(BUCKET)) == Some(bucket) {
        return Ok(());
    }
    if let Some(t) = before {
        // The old bucket may be pruned already while the recipient row is not.
        txn.execute("UPDATE quota_seen SET rcpts = rcpts - 1 WHERE scope = $1 AND bucket = $2", &[&scope, &t.div_euclid(BUCKET)])
            .await?;
    }
    txn.execute(
        "INSERT INTO quota_seen (scope, bucket, rcpts) VALUES ($1, $2, 1) \
         ON CONFLICT (scope, bucket) DO UPDATE SET rcpts = quota_seen.rcpts + 1",
        &[&scope, &bucket],
    )
    .await?;
    Ok(())
}

/// What `scope` sent in the last hour and day.
pub(super) async fn usage(client: &impl GenericClient, scope: &str, now: i64) -> Result<Usage> {
    let (hour, day) = (first_bucket(now, HOUR), first_bucket(now, DAY));
    let row = client
        .query_one(
            "SELECT coalesce(sum(messages) FILTER (WHERE bucket >= $2), 0)::bigint, \
             coalesce(sum(recipients) FILTER (WHERE bucket >= $2), 0)::bigint, \
             coalesce(sum(messages), 0)::bigint, coalesce(sum(recipients), 0)::bigint \
             FROM quota_counts WHERE scope = $1 AND bucket >= $3",
            &[&scope, &hour, &day],
        )
        .await?;
    Ok(Usage {
        messages_hour: row.get::<_, i64>(0) as u64,
        recipients_hour: row.get::<_, i64>(1) as u64,
        messages_day: row.get::<_, i64>(2) as u64,
        recipients_day: row.get::<_, i64>(3) as u64,
        external_day: distinct_external(client, scope, day).await?,
    })
}

/// Distinct external recipients `scope` last sent to in bucket `first` or later.
pub(super) async fn distinct_external(client: &impl GenericClient, scope: &str, first: i64) -> Result<u64> {
    let row = client
        .query_one("SELECT coalesce(sum(rcpts), 0)::bigint FROM quota_seen WHERE scope = $1 AND bucket >= $2", &[&scope, &first])
        .await?;
    Ok(row.get::<_, i64>(0) as u64)
}

async fn overrides_of(client: &impl GenericClient, target: &str) -> Result<Vec<(String, u64)>> {
    let rows = client.query("SELECT key, value FROM quota_overrides WHERE target = $1 ORDER BY key", &[&target]).await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get::<_, i64>(1) as u64)).collect())
}

/// Whether the address or its domain is on the exception list.
pub(super) async fn exempt(client: &impl GenericClient, address: &str) -> Result<bool> {
    let row = client.query_opt("SELECT 1 FROM quota_exempt WHERE target IN ($1, $2)", &[&address, &domain_of(address)]).await?;
    Ok(row.is_some())
}

#[async_trait]
impl QuotaStore for PgStore {
    async fn quota_status(&self, address: &str, now: i64) -> Result<QuotaStatus> {
        let address = address.to_lowercase();
        let domain = domain_of(&address).to_string();
        let conn = self.conn().await?;
        Ok(QuotaStatus {
            user: usage(&conn, &address, now).await?,
            domain: usage(&conn, &domain, now).await?,
            user_overrides: overrides_of(&conn, &address).await?,
            domain_overrides: overrides_of(&conn, &domain).await?,
            exempt: exempt(&conn, &address).await?,
        })
    }

    async fn quota_usage(&self, scope: &str, now: i64) -> Result<Usage> {
        usage(&self.conn().await?, &scope.to_lowercase(), now).await
    }

    async fn quota_seen(&self, scope: &str, rcpt: &str, since: i64) -> Result<bool> {
        let (scope, rcpt) = (scope.to_lowercase(), rcpt.to_lowercase());
        let row = self
            .conn()
            .await?
            .query_opt("SELECT 1 FROM quota_rcpts WHERE scope = $1 AND rcpt = $2 AND last_seen > $3", &[&scope, &rcpt, &since])
            .await?;
        Ok(row.is_some())
    }

    async fn quota_override(&self, target: &str, key: &str, value: Option<u64>) -> Result<()> {
        let target = target.to_lowercase();
        let conn = self.conn().await?;
        match value {
            Some(v) => {
                conn.execute(
                    "INSERT INTO quota_overrides (target, key, value) VALUES ($1, $2, $3) \
                     ON CONFLICT (target, key) DO UPDATE SET value = excluded.value",
                    &[&target, &key, &(v as i64)],
                )
                .await?
            }
            None => conn.execute("DELETE FROM quota_overrides WHERE target = $1 AND key = $2", &[&target, &key]).await?,
        };
        Ok(())
    }

    async fn quota_overrides(&self) -> Result<Vec<QuotaOverride>> {
        let rows = self.conn().await?.query("SELECT target, key, value FROM quota_overrides ORDER BY target, key", &[]).await?;
        Ok(rows.iter().map(|r| QuotaOverride { target: r.get(0), key: r.get(1), value: r.get::<_, i64>(2) as u64 }).collect())
    }

    async fn quota_exempt(&self, target: &str, exempt: bool) -> Result<bool> {
        let target = target.to_lowercase();
        let conn = self.conn().await?;
        let changed = if exempt {
            conn.execute(
                "INSERT INTO quota_exempt (target, created) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&target, &crate::sqlite::now()],
            )
            .await?
        } else {
            conn.execute("DELETE FROM quota_exempt WHERE target = $1", &[&target]).await?
        };
        Ok(changed > 0)
    }

    async fn quota_exemptions(&self) -> Result<Vec<String>> {
        let rows = self.conn().await?.query("SELECT target FROM quota_exempt ORDER BY target", &[]).await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn quota_prune(&self, before: i64) -> Result<()> {
        // Whole buckets, so that a recipient is pruned exactly when the bucket counting it is.
        let bucket = before.div_euclid(BUCKET);
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        txn.execute("DELETE FROM quota_counts WHERE bucket < $1", &[&bucket]).await?;
        txn.execute("DELETE FROM quota_seen WHERE bucket < $1", &[&bucket]).await?;
        txn.execute("DELETE FROM quota_rcpts WHERE last_seen < $1", &[&(bucket * BUCKET)]).await?;
        txn.commit().await?;
        Ok(())
    }
}
