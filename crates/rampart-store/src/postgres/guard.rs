//! [`GuardStore`] for PostgreSQL: bans, known logins and login history, server state; the
//! same behaviour as `sqlite::guard` (held to it by `crate::role_tests`). Shared by every node:
//! a ban written by one is in the next [`GuardStore::bans`] read of all.

use async_trait::async_trait;

use super::PgStore;
use crate::guard::FAILURE_BUCKET;
use crate::{Ban, GuardStore, LoginRecord, Result};

#[async_trait]
impl GuardStore for PgStore {
    async fn bans(&self) -> Result<Vec<Ban>> {
        let rows =
            self.conn().await?.query("SELECT net, until, reason, offenses, updated FROM bans ORDER BY until DESC", &[]).await?;
        Ok(rows
            .iter()
            .map(|r| Ban {
                net: r.get(0),
                until: r.get(1),
                reason: r.get(2),
                offenses: r.get::<_, i64>(3) as u32,
                updated: r.get(4),
            })
            .collect())
    }

    async fn ban_put(&self, ban: &Ban) -> Result<()> {
        self.conn()
            .await?
            .execute(
                "INSERT INTO bans (net, until, reason, offenses, updated) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (net) DO UPDATE SET until = excluded.until, reason = excluded.reason, \
                 offenses = excluded.offenses, updated = excluded.updated",
                &[&ban.net, &ban.until, &ban.reason, &i64::from(ban.offenses), &ban.updated],
            )
            .await?;
        Ok(())
    }

    async fn ban_remove(&self, net: &str) -> Result<bool> {
        Ok(self.conn().await?.execute("DELETE FROM bans WHERE net = $1", &[&net]).await? > 0)
    }

    async fn bans_prune(&self, before: i64) -> Result<()> {
        self.conn().await?.execute("DELETE FROM bans WHERE until < $1 AND updated < $1", &[&before]).await?;
        Ok(())
    }

    async fn known_login_put(&self, account: &str, net: &str, proto: &str, now: i64) -> Result<()> {
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        txn.execute(
            "INSERT INTO known_logins (account, net, last_seen, first_seen) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (account, net) DO UPDATE SET last_seen = excluded.last_seen",
            &[&account, &net, &now],
        )
        .await?;
        txn.execute(
            "INSERT INTO login_history (account, net, proto, first_seen, last_seen, logins) VALUES ($1, $2, $3, $4, $4, 1) \
             ON CONFLICT (account, net, proto) DO UPDATE SET last_seen = excluded.last_seen, \
             logins = login_history.logins + 1",
            &[&account, &net, &proto, &now],
        )
        .await?;
        txn.commit().await?;
        Ok(())
    }

    async fn login_history(&self, account: &str) -> Result<Vec<LoginRecord>> {
        let account = account.to_lowercase();
        let rows = self
            .conn()
            .await?
            .query(
                // `proto` breaks ties as SQLite's rowid order happens to: the same answer on
                // both backends for logins in the same second.
                "SELECT net, proto, first_seen, last_seen, logins FROM login_history WHERE account = $1 \
                 ORDER BY last_seen DESC, net, proto LIMIT 100",
                &[&account],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| LoginRecord {
                net: r.get(0),
                proto: r.get(1),
                first_seen: r.get(2),
                last_seen: r.get(3),
                logins: r.get::<_, i64>(4) as u64,
            })
            .collect())
    }

    async fn known_logins(&self, account: &str, since: i64) -> Result<Vec<String>> {
        let rows = self
            .conn()
            .await?
            .query("SELECT net FROM known_logins WHERE account = $1 AND last_seen >= $2 ORDER BY net", &[&account, &since])
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn login_failure_add(&self, account: &str, now: i64, since: i64) -> Result<u64> {
        // One statement: the count includes this failure and every node's committed ones.
        let row = self
            .conn()
            .await?
            .query_one(
                "WITH added AS (INSERT INTO login_failures (account, bucket, failures) VALUES ($1, $2, 1) \
                 ON CONFLICT (account, bucket) DO UPDATE SET failures = login_failures.failures + 1 RETURNING bucket, failures) \
                 SELECT (SELECT coalesce(sum(failures), 0) FROM login_failures WHERE account = $1 AND bucket >= $3 AND bucket <> $2)::bigint \
                 + (SELECT failures FROM added WHERE bucket >= $3)",
                &[&account, &(now / FAILURE_BUCKET), &(since / FAILURE_BUCKET)],
            )
            .await?;
        Ok(row.get::<_, Option<i64>>(0).unwrap_or(0) as u64)
    }

    async fn login_failures(&self, account: &str, since: i64) -> Result<u64> {
        let row = self
            .conn()
            .await?
            .query_one(
                "SELECT coalesce(sum(failures), 0)::bigint FROM login_failures WHERE account = $1 AND bucket >= $2",
                &[&account, &(since / FAILURE_BUCKET)],
            )
            .await?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    async fn login_failures_prune(&self, before: i64) -> Result<()> {
        self.conn().await?.execute("DELETE FROM login_failures WHERE bucket < $1", &[&(before / FAILURE_BUCKET)]).await?;
        Ok(())
    }

    async fn login_suspended(&self, account: &str) -> Result<bool> {
        let account = account.to_lowercase();
        let row = self
            .conn()
            .await?
            .query_opt("SELECT 1 FROM sending_state WHERE account = $1 AND scope = 'all'", &[&account])
            .await?;
        Ok(row.is_some())
    }

    async fn state(&self, key: &str) -> Result<Option<String>> {
        Ok(self.conn().await?.query_opt("SELECT value FROM state WHERE key = $1", &[&key]).await?.map(|r| r.get(0)))
    }

    async fn set_state(&self, key: &str, value: &str) -> Result<()> {
        self.conn()
            .await?
            .execute("INSERT INTO state (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = $2", &[&key, &value])
            .await?;
        Ok(())
    }

    async fn swap_state(&self, key: &str, expected: Option<&str>, value: &str) -> Result<bool> {
        let conn = self.conn().await?;
        // One statement each: the row lock of the UPDATE (or the key's uniqueness) decides
        // between nodes racing for the same swap.
        let changed = match expected {
            None => conn.execute("INSERT INTO state (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING", &[&key, &value]).await?,
            Some(old) => conn.execute("UPDATE state SET value = $2 WHERE key = $1 AND value = $3", &[&key, &value, &old]).await?,
        };
        Ok(changed == 1)
    }
}
