//! [`GuardStore`] for SQLite: bans, known logins and server state.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use crate::guard::FAILURE_BUCKET;
use crate::{Ban, GuardStore, LoginRecord, Result};

fn bans(conn: &Connection) -> Result<Vec<Ban>> {
    let mut stmt = conn.prepare("SELECT net, until, reason, offenses, updated FROM bans ORDER BY until DESC")?;
    let rows = stmt
        .query_map([], |r| Ok(Ban { net: r.get(0)?, until: r.get(1)?, reason: r.get(2)?, offenses: r.get(3)?, updated: r.get(4)? }))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

fn ban_put(conn: &Connection, ban: &Ban) -> Result<()> {
    conn.execute(
        "INSERT INTO bans (net, until, reason, offenses, updated) VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (net) DO UPDATE SET until = excluded.until, reason = excluded.reason, \
         offenses = excluded.offenses, updated = excluded.updated",
        params![ban.net, ban.until, ban.reason, ban.offenses, ban.updated],
    )?;
    Ok(())
}

fn login_failures(conn: &Connection, account: &str, since: i64) -> Result<u64> {
    let n: i64 = conn.query_row(
        "SELECT coalesce(sum(failures), 0) FROM login_failures WHERE account = ?1 AND bucket >= ?2",
        params![account, since / FAILURE_BUCKET],
        |r| r.get(0),
    )?;
    Ok(n as u64)
}

#[async_trait]
impl GuardStore for SqliteStore {
    async fn bans(&self) -> Result<Vec<Ban>> {
        self.read(bans).await
    }

    async fn ban_put(&self, ban: &Ban) -> Result<()> {
        let ban = ban.clone();
        self.write(move |conn, _| ban_put(conn, &ban)).await
    }

    async fn ban_remove(&self, net: &str) -> Result<bool> {
        let net = net.to_string();
        self.write(move |conn, _| Ok(conn.execute("DELETE FROM bans WHERE net = ?1", [net])? > 0)).await
    }

    async fn bans_prune(&self, before: i64) -> Result<()> {
        self.write(move |conn, _| {
            conn.execute("DELETE FROM bans WHERE until < ?1 AND updated < ?1", [before])?;
            Ok(())
        })
        .await
    }

    async fn known_login_put(&self, account: &str, net: &str, proto: &str, now: i64) -> Result<()> {
        let (account, net, proto) = (account.to_string(), net.to_string(), proto.to_string());
        self.write(move |conn, _| {
            conn.execute(
                "INSERT INTO known_logins (account, net, last_seen, first_seen) VALUES (?1, ?2, ?3, ?3) \
                 ON CONFLICT (account, net) DO UPDATE SET last_seen = excluded.last_seen",
                params![account, net, now],
            )?;
            conn.execute(
                "INSERT INTO login_history (account, net, proto, first_seen, last_seen, logins) VALUES (?1, ?2, ?3, ?4, ?4, 1) \
                 ON CONFLICT (account, net, proto) DO UPDATE SET last_seen = excluded.last_seen, logins = logins + 1",
                params![account, net, proto, now],
            )?;
            Ok(())
        })
        .await
    }

    async fn login_history(&self, account: &str) -> Result<Vec<LoginRecord>> {
        let account = account.to_lowercase();
        self.read(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT net, proto, first_seen, last_seen, logins FROM login_history WHERE account = ?1 \
                 ORDER BY last_seen DESC LIMIT 100",
            )?;
            let rows = stmt
                .query_map([account], |r| {
                    Ok(LoginRecord { net: r.get(0)?, proto: r.get(1)?, first_seen: r.get(2)?, last_seen: r.get(3)?, logins: r.get::<_, i64>(4)? as u64 })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    async fn known_logins(&self, account: &str, since: i64) -> Result<Vec<String>> {
        let account = account.to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare("SELECT net FROM known_logins WHERE account = ?1 AND last_seen >= ?2")?;
            let rows = stmt.query_map(params![account, since], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    async fn login_failure_add(&self, account: &str, now: i64, since: i64) -> Result<u64> {
        let account = account.to_string();
        self.write(move |conn, _| {
            conn.execute(
                "INSERT INTO login_failures (account, bucket, failures) VALUES (?1, ?2, 1) \
                 ON CONFLICT (account, bucket) DO UPDATE SET failures = failures + 1",
                params![account, now / FAILURE_BUCKET],
            )?;
            login_failures(conn, &account, since)
        })
        .await
    }

    async fn login_failures(&self, account: &str, since: i64) -> Result<u64> {
        let account = account.to_string();
        self.read(move |conn| login_failures(conn, &account, since)).await
    }

    async fn login_failures_prune(&self, before: i64) -> Result<()> {
        self.write(move |conn, _| {
            conn.execute("DELETE FROM login_failures WHERE bucket < ?1", [before / FAILURE_BUCKET])?;
            Ok(())
        })
        .await
    }

    async fn login_suspended(&self, account: &str) -> Result<bool> {
        let account = account.to_lowercase();
        self.read(move |conn| {
            Ok(conn
                .query_row("SELECT 1 FROM sending_state WHERE account = ?1 AND scope = 'all'", [account], |_| Ok(()))
                .optional()?
                .is_some())
        })
        .await
    }

    async fn state(&self, key: &str) -> Result<Option<String>> {
        let key = key.to_string();
        self.read(move |conn| Ok(conn.query_row("SELECT value FROM state WHERE key = ?1", [key], |r| r.get(0)).optional()?)).await
    }

    async fn set_state(&self, key: &str, value: &str) -> Result<()> {
        let (key, value) = (key.to_string(), value.to_string());
        self.write(move |conn, _| {
            conn.execute("INSERT INTO state (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2", params![key, value])?;
            Ok(())
        })
        .await
    }

    async fn swap_state(&self, key: &str, expected: Option<&str>, value: &str) -> Result<bool> {
        let (key, expected, value) = (key.to_string(), expected.map(str::to_string), value.to_string());
        self.write(move |conn, _| {
            let changed = match expected {
                None => conn.execute("INSERT INTO state (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO NOTHING", params![key, value])?,
                Some(old) => conn.execute("UPDATE state SET value = ?2 WHERE key = ?1 AND value = ?3", params![key, value, old])?,
            };
            Ok(changed == 1)
        })
        .await
    }
}
