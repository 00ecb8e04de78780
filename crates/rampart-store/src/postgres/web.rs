//! [`WebStore`] for PostgreSQL: roles, TOTP, recovery codes, web sessions, API tokens, the
//! dashboard's hourly counts; the same behaviour as `sqlite::web` (held to it by
//! `crate::role_tests`).
//!
//! What must hold across nodes is checked inside the write: demoting or suspending the last
//! administrator takes the directory's admin lock (`directory::keep_an_admin`); a TOTP step is
//! used by one conditional `UPDATE` (two nodes given the same code at once: one row update
//! wins), a recovery code by one `DELETE`.

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use tokio_postgres::Row;

use super::directory::keep_an_admin;
use super::{PgStore, is_unique_violation};
use crate::address::canonical;
use crate::sqlite::now;
use crate::web::{ApiToken, Role, Totp, WebAccount, WebSession, WebStore};
use crate::{Account, AccountId, MessageInfo, Result, StoreError};

const WEB_ACCOUNT: &str = "SELECT a.id, a.address, a.password_hash, a.created, a.role, \
     EXISTS (SELECT 1 FROM totp t WHERE t.account_id = a.id AND t.confirmed), a.suspended FROM accounts a";

const TOKEN: &str = "id, name, scopes, created, last_used";

fn web_account_from_row(r: &Row) -> WebAccount {
    WebAccount {
        account: Account { id: r.get(0), address: r.get(1), password_hash: r.get(2), created: r.get(3) },
        role: Role::parse(r.get(4)).unwrap_or_default(),
        totp: r.get(5),
        suspended: r.get(6),
    }
}

fn token_from_row(r: &Row) -> ApiToken {
    let scopes: &str = r.get(2);
    ApiToken {
        id: r.get(0),
        name: r.get(1),
        scopes: scopes.split_whitespace().map(str::to_string).collect(),
        created: r.get(3),
        last_used: r.get(4),
    }
}

async fn replace_recovery(txn: &Transaction<'_>, account: AccountId, hashes: &[String]) -> Result<()> {
    txn.execute("DELETE FROM recovery_codes WHERE account_id = $1", &[&account]).await?;
    for hash in hashes {
        txn.execute(
            "INSERT INTO recovery_codes (account_id, hash) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&account, hash],
        )
        .await?;
    }
    Ok(())
}

/// Whether the account's TOTP is confirmed (None: no secret), its row locked until the
/// transaction ends.
async fn totp_confirmed(txn: &Transaction<'_>, account: AccountId) -> Result<Option<bool>> {
    Ok(txn.query_opt("SELECT confirmed FROM totp WHERE account_id = $1 FOR UPDATE", &[&account]).await?.map(|r| r.get(0)))
}

impl PgStore {
    /// Runs `sql` (`$1` the address, `$2` the value) on one account, after
    /// `keep_an_admin` when `guard` (the change may leave no administrator who can log in).
    async fn set_account_flag<T>(&self, address: &str, sql: &str, value: T, guard: bool) -> Result<()>
    where
        T: tokio_postgres::types::ToSql + Sync + Send,
    {
        let address = canonical(address)?;
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        if guard {
            keep_an_admin(&txn, &address).await?;
        }
        if txn.execute(sql, &[&address, &value]).await? == 0 {
            return Err(StoreError::NotFound(format!("account {address}")));
        }
        txn.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl WebStore for PgStore {
    async fn web_accounts(&self) -> Result<Vec<WebAccount>> {
        let rows = self.conn().await?.query(&format!("{WEB_ACCOUNT} ORDER BY a.address"), &[]).await?;
        Ok(rows.iter().map(web_account_from_row).collect())
    }

    async fn web_account(&self, address: &str) -> Result<Option<WebAccount>> {
        let Ok(address) = canonical(address) else { return Ok(None) };
        let row = self.conn().await?.query_opt(&format!("{WEB_ACCOUNT} WHERE a.address = $1"), &[&address]).await?;
        Ok(row.as_ref().map(web_account_from_row))
    }

    async fn set_role(&self, address: &str, role: Role) -> Result<()> {
        self.set_account_flag(address, "UPDATE accounts SET role = $2 WHERE address = $1", role.name(), role != Role::Admin).await
    }

    async fn set_suspended(&self, address: &str, suspended: bool) -> Result<()> {
        self.set_account_flag(address, "UPDATE accounts SET suspended = $2 WHERE address = $1", suspended, suspended).await
    }

    async fn totp(&self, account: AccountId) -> Result<Option<Totp>> {
        let row = self
            .conn()
            .await?
            .query_opt("SELECT secret, confirmed, last_step FROM totp WHERE account_id = $1", &[&account])
            .await?;
        Ok(row.map(|r| Totp { secret: r.get(0), confirmed: r.get(1), last_step: r.get(2) }))
    }

    async fn totp_begin(&self, account: AccountId, secret: &str) -> Result<()> {
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        if totp_confirmed(&txn, account).await? == Some(true) {
            return Err(StoreError::Exists("a confirmed TOTP secret".into()));
        }
        txn.execute(
            "INSERT INTO totp (account_id, secret, confirmed, last_step, created) VALUES ($1, $2, false, 0, $3) \
             ON CONFLICT (account_id) DO UPDATE SET secret = excluded.secret, confirmed = false, last_step = 0, \
             created = excluded.created",
            &[&account, &secret, &now()],
        )
        .await?;
        txn.commit().await?;
        Ok(())
    }

    async fn totp_confirm(&self, account: AccountId, step: i64, recovery: &[String]) -> Result<bool> {
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let n = txn
            .execute("UPDATE totp SET confirmed = true, last_step = $2 WHERE account_id = $1 AND NOT confirmed", &[&account, &step])
            .await?;
        if n == 0 {
            return Ok(false);
        }
        replace_recovery(&txn, account, recovery).await?;
        txn.commit().await?;
        Ok(true)
    }

    async fn totp_use_step(&self, account: AccountId, step: i64) -> Result<bool> {
        let n = self
            .conn()
            .await?
            .execute("UPDATE totp SET last_step = $2 WHERE account_id = $1 AND confirmed AND last_step < $2", &[&account, &step])
            .await?;
        Ok(n > 0)
    }

    async fn totp_remove(&self, account: AccountId) -> Result<bool> {
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        txn.execute("DELETE FROM recovery_codes WHERE account_id = $1", &[&account]).await?;
        let n = txn.execute("DELETE FROM totp WHERE account_id = $1", &[&account]).await?;
        txn.commit().await?;
        Ok(n > 0)
    }

    async fn recovery_code_use(&self, account: AccountId, hash: &str) -> Result<bool> {
        let conn = self.conn().await?;
        Ok(conn.execute("DELETE FROM recovery_codes WHERE account_id = $1 AND hash = $2", &[&account, &hash]).await? > 0)
    }

    async fn recovery_codes_left(&self, account: AccountId) -> Result<u64> {
        let conn = self.conn().await?;
        let n: i64 = conn.query_one("SELECT count(*) FROM recovery_codes WHERE account_id = $1", &[&account]).await?.get(0);
        Ok(n as u64)
    }

    async fn recovery_codes_replace(&self, account: AccountId, recovery: &[String]) -> Result<bool> {
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        if totp_confirmed(&txn, account).await? != Some(true) {
            return Ok(false);
        }
        replace_recovery(&txn, account, recovery).await?;
        txn.commit().await?;
        Ok(true)
    }

    async fn session_put(&self, id_hash: &str, account: AccountId, csrf: &str, now: i64) -> Result<()> {
        self.conn()
            .await?
            .execute(
                "INSERT INTO web_sessions (id_hash, account_id, csrf, created, last_seen) VALUES ($1, $2, $3, $4, $4)",
                &[&id_hash, &account, &csrf, &now],
            )
            .await?;
        Ok(())
    }

    async fn session(&self, id_hash: &str) -> Result<Option<WebSession>> {
        let row = self
            .conn()
            .await?
            .query_opt(
                "SELECT s.account_id, a.address, a.role, s.csrf, s.created, s.last_seen, \
                 EXISTS (SELECT 1 FROM totp t WHERE t.account_id = a.id AND t.confirmed) \
                 FROM web_sessions s JOIN accounts a ON a.id = s.account_id WHERE s.id_hash = $1 AND NOT a.suspended",
                &[&id_hash],
            )
            .await?;
        Ok(row.map(|r| WebSession {
            account: r.get(0),
            address: r.get(1),
            role: Role::parse(r.get(2)).unwrap_or_default(),
            csrf: r.get(3),
            created: r.get(4),
            last_seen: r.get(5),
            totp: r.get(6),
        }))
    }

    async fn session_touch(&self, id_hash: &str, now: i64) -> Result<()> {
        self.conn().await?.execute("UPDATE web_sessions SET last_seen = $2 WHERE id_hash = $1", &[&id_hash, &now]).await?;
        Ok(())
    }

    async fn session_remove(&self, id_hash: &str) -> Result<()> {
        self.conn().await?.execute("DELETE FROM web_sessions WHERE id_hash = $1", &[&id_hash]).await?;
        Ok(())
    }

    async fn sessions_remove(&self, account: AccountId, keep: Option<&str>) -> Result<u64> {
        let keep = keep.unwrap_or_default();
        let conn = self.conn().await?;
        Ok(conn.execute("DELETE FROM web_sessions WHERE account_id = $1 AND id_hash <> $2", &[&account, &keep]).await?)
    }

    async fn sessions_prune(&self, idle_before: i64, created_before: i64) -> Result<u64> {
        let conn = self.conn().await?;
        Ok(conn.execute("DELETE FROM web_sessions WHERE last_seen < $1 OR created < $2", &[&idle_before, &created_before]).await?)
    }

    async fn messages_search(&self, address: Option<&str>, since: i64, until: i64, limit: u32) -> Result<Vec<MessageInfo>> {
        let address = address.map(canonical).transpose()?;
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT a.address || '/' || b.name, m.uid, m.size, m.internal_date, m.reference, m.trail, b.id \
                 FROM messages m JOIN mailboxes b ON m.mailbox_id = b.id JOIN accounts a ON b.account_id = a.id \
                 WHERE ($1::text IS NULL OR a.address = $1) AND m.internal_date >= $2 AND m.internal_date < $3 \
                 ORDER BY m.internal_date DESC, m.id DESC LIMIT $4",
                &[&address, &since, &until, &i64::from(limit)],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| MessageInfo {
                mailbox: r.get(0),
                uid: r.get::<_, i64>(1) as u32,
                size: r.get::<_, i64>(2) as u64,
                internal_date: r.get(3),
                reference: r.get(4),
                trail: r.get(5),
                mailbox_id: r.get(6),
            })
            .collect())
    }

    async fn stats_add(&self, counts: &[(i64, String, u64)]) -> Result<()> {
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let stmt = txn
            .prepare(
                "INSERT INTO stats_hourly (hour, name, count) VALUES ($1, $2, $3) \
                 ON CONFLICT (hour, name) DO UPDATE SET count = stats_hourly.count + excluded.count",
            )
            .await?;
        for (hour, name, count) in counts {
            txn.execute(&stmt, &[hour, name, &(*count as i64)]).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    async fn stats_since(&self, hour: i64) -> Result<Vec<(i64, String, u64)>> {
        let conn = self.conn().await?;
        let rows = conn.query("SELECT hour, name, count FROM stats_hourly WHERE hour >= $1 ORDER BY hour, name", &[&hour]).await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get::<_, i64>(2) as u64)).collect())
    }

    async fn stats_prune(&self, hour: i64) -> Result<()> {
        self.conn().await?.execute("DELETE FROM stats_hourly WHERE hour < $1", &[&hour]).await?;
        Ok(())
    }

    async fn api_token_add(&self, name: &str, hash: &str, scopes: &[String]) -> Result<()> {
        let name = name.trim();
        if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Err(StoreError::InvalidName(name.to_string()));
        }
        let conn = self.conn().await?;
        match conn
            .execute(
                "INSERT INTO api_tokens (name, hash, scopes, created) VALUES ($1, $2, $3, $4)",
                &[&name, &hash, &scopes.join(" "), &now()],
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Exists(format!("API token {name}"))),
            Err(e) => Err(e.into()),
        }
    }

    async fn api_tokens(&self) -> Result<Vec<ApiToken>> {
        let rows = self.conn().await?.query(&format!("SELECT {TOKEN} FROM api_tokens ORDER BY name"), &[]).await?;
        Ok(rows.iter().map(token_from_row).collect())
    }

    async fn api_token_revoke(&self, name: &str) -> Result<()> {
        match self.conn().await?.execute("DELETE FROM api_tokens WHERE name = $1", &[&name]).await? {
            0 => Err(StoreError::NotFound(format!("API token {name}"))),
            _ => Ok(()),
        }
    }

    async fn api_token_use(&self, hash: &str, now: i64) -> Result<Option<ApiToken>> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt(&format!("UPDATE api_tokens SET last_used = $2 WHERE hash = $1 RETURNING {TOKEN}"), &[&hash, &now])
            .await?;
        Ok(row.as_ref().map(token_from_row))
    }
}

