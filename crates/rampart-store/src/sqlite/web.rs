//! [`WebStore`] for SQLite: roles, TOTP, recovery codes, web sessions, API tokens.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, account_from_row, is_unique_violation, now};
use crate::address::canonical;
use crate::web::{ApiToken, Role, Totp, WebAccount, WebSession, WebStore};
use crate::{AccountId, MessageInfo, Result, StoreError};

const WEB_ACCOUNT: &str = "SELECT a.id, a.address, a.password_hash, a.created, a.role, \
     EXISTS (SELECT 1 FROM totp t WHERE t.account_id = a.id AND t.confirmed), a.suspended FROM accounts a";

fn web_account_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<WebAccount> {
    let role: String = r.get(4)?;
    Ok(WebAccount {
        account: account_from_row(r)?,
        role: Role::parse(&role).unwrap_or_default(),
        totp: r.get(5)?,
        suspended: r.get(6)?,
    })
}

fn token_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ApiToken> {
    let scopes: String = r.get(2)?;
    Ok(ApiToken {
        id: r.get(0)?,
        name: r.get(1)?,
        scopes: scopes.split_whitespace().map(str::to_string).collect(),
        created: r.get(3)?,
        last_used: r.get(4)?,
    })
}

fn session(conn: &Connection, id_hash: &str) -> Result<Option<WebSession>> {
    Ok(conn
        .query_row(
            "SELECT s.account_id, a.address, a.role, s.csrf, s.created, s.last_seen, \
             EXISTS (SELECT 1 FROM totp t WHERE t.account_id = a.id AND t.confirmed) \
             FROM web_sessions s JOIN accounts a ON a.id = s.account_id WHERE s.id_hash = ?1 AND NOT a.suspended",
            [id_hash],
            |r| {
                let role: String = r.get(2)?;
                Ok(WebSession {
                    account: r.get(0)?,
                    address: r.get(1)?,
                    role: Role::parse(&role).unwrap_or_default(),
                    csrf: r.get(3)?,
                    created: r.get(4)?,
                    last_seen: r.get(5)?,
                    totp: r.get(6)?,
                })
            },
        )
        .optional()?)
}

/// An administrator who can log in: not suspended, from the web or by containment.
const ACTIVE_ADMIN: &str = "role = 'admin' AND NOT suspended \
     AND address NOT IN (SELECT account FROM sending_state WHERE scope = 'all')";

/// `LastAdmin` when `address` is the only administrator who can log in: demoting, suspending
/// or removing it would lock every administrator out of the web. Checked inside the write, so
/// two administrators demoting each other at once cannot both succeed.
pub(super) fn keep_an_admin(conn: &Connection, address: &str) -> Result<()> {
    let active: bool =
        conn.query_row(&format!("SELECT EXISTS (SELECT 1 FROM accounts WHERE address = ?1 AND {ACTIVE_ADMIN})"), [address], |r| r.get(0))?;
    if !active {
        return Ok(());
    }
    let others: i64 =
        conn.query_row(&format!("SELECT count(*) FROM accounts WHERE address != ?1 AND {ACTIVE_ADMIN}"), [address], |r| r.get(0))?;
    if others == 0 {
        return Err(StoreError::LastAdmin(address.to_string()));
    }
    Ok(())
}

fn replace_recovery(conn: &Connection, account: AccountId, hashes: &[String]) -> Result<()> {
    conn.execute("DELETE FROM recovery_codes WHERE account_id = ?1", [account])?;
    for hash in hashes {
        conn.execute("INSERT OR IGNORE INTO recovery_codes (account_id, hash) VALUES (?1, ?2)", params![account, hash])?;
    }
    Ok(())
}

#[async_trait]
impl WebStore for SqliteStore {
    async fn web_accounts(&self) -> Result<Vec<WebAccount>> {
        self.read(|conn| {
            let mut stmt = conn.prepare(&format!("{WEB_ACCOUNT} ORDER BY a.address"))?;
            let rows = stmt.query_map([], web_account_from_row)?.collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    async fn web_account(&self, address: &str) -> Result<Option<WebAccount>> {
        let Ok(address) = canonical(address) else { return Ok(None) };
        self.read(move |conn| {
            Ok(conn.query_row(&format!("{WEB_ACCOUNT} WHERE a.address = ?1"), [&address], web_account_from_row).optional()?)
        })
        .await
    }

    async fn set_role(&self, address: &str, role: Role) -> Result<()> {
        let address = canonical(address)?;
        self.write(move |conn, _| {
            if role != Role::Admin {
                keep_an_admin(conn, &address)?;
            }
            match conn.execute("UPDATE accounts SET role = ?2 WHERE address = ?1", params![address, role.name()])? {
                0 => Err(StoreError::NotFound(format!("account {address}"))),
                _ => Ok(()),
            }
        })
        .await
    }

    async fn set_suspended(&self, address: &str, suspended: bool) -> Result<()> {
        let address = canonical(address)?;
        self.write(move |conn, _| {
            if suspended {
                keep_an_admin(conn, &address)?;
            }
            match conn.execute("UPDATE accounts SET suspended = ?2 WHERE address = ?1", params![address, suspended])? {
                0 => Err(StoreError::NotFound(format!("account {address}"))),
                _ => Ok(()),
            }
        })
        .await
    }

    async fn totp(&self, account: AccountId) -> Result<Option<Totp>> {
        self.read(move |conn| {
            Ok(conn
                .query_row("SELECT secret, confirmed, last_step FROM totp WHERE account_id = ?1", [account], |r| {
                    Ok(Totp { secret: r.get(0)?, confirmed: r.get(1)?, last_step: r.get(2)? })
                })
                .optional()?)
        })
        .await
    }

    async fn totp_begin(&self, account: AccountId, secret: &str) -> Result<()> {
        let secret = secret.to_string();
        self.write(move |conn, _| {
            let confirmed: Option<bool> =
                conn.query_row("SELECT confirmed FROM totp WHERE account_id = ?1", [account], |r| r.get(0)).optional()?;
            if confirmed == Some(true) {
                return Err(StoreError::Exists("a confirmed TOTP secret".into()));
            }
            conn.execute(
                "INSERT OR REPLACE INTO totp (account_id, secret, confirmed, last_step, created) VALUES (?1, ?2, 0, 0, ?3)",
                params![account, secret, now()],
            )?;
            Ok(())
        })
        .await
    }

    async fn totp_confirm(&self, account: AccountId, step: i64, recovery: &[String]) -> Result<bool> {
        let recovery = recovery.to_vec();
        self.write(move |conn, _| {
            let n = conn.execute(
                "UPDATE totp SET confirmed = 1, last_step = ?2 WHERE account_id = ?1 AND NOT confirmed",
                params![account, step],
            )?;
            if n == 0 {
                return Ok(false);
            }
            replace_recovery(conn, account, &recovery)?;
            Ok(true)
        })
        .await
    }

    async fn totp_use_step(&self, account: AccountId, step: i64) -> Result<bool> {
        self.write(move |conn, _| {
            Ok(conn.execute(
                "UPDATE totp SET last_step = ?2 WHERE account_id = ?1 AND confirmed AND last_step < ?2",
                params![account, step],
            )? > 0)
        })
        .await
    }

    async fn totp_remove(&self, account: AccountId) -> Result<bool> {
        self.write(move |conn, _| {
            conn.execute("DELETE FROM recovery_codes WHERE account_id = ?1", [account])?;
            Ok(conn.execute("DELETE FROM totp WHERE account_id = ?1", [account])? > 0)
        })
        .await
    }

    async fn recovery_code_use(&self, account: AccountId, hash: &str) -> Result<bool> {
        let hash = hash.to_string();
        self.write(move |conn, _| {
            Ok(conn.execute("DELETE FROM recovery_codes WHERE account_id = ?1 AND hash = ?2", params![account, hash])? > 0)
        })
        .await
    }

    async fn recovery_codes_left(&self, account: AccountId) -> Result<u64> {
        self.read(move |conn| {
            Ok(conn.query_row("SELECT count(*) FROM recovery_codes WHERE account_id = ?1", [account], |r| r.get::<_, i64>(0))?
                as u64)
        })
        .await
    }

    async fn recovery_codes_replace(&self, account: AccountId, recovery: &[String]) -> Result<bool> {
        let recovery = recovery.to_vec();
        self.write(move |conn, _| {
            let confirmed: Option<bool> =
                conn.query_row("SELECT confirmed FROM totp WHERE account_id = ?1", [account], |r| r.get(0)).optional()?;
            if confirmed != Some(true) {
                return Ok(false);
            }
            replace_recovery(conn, account, &recovery)?;
            Ok(true)
        })
        .await
    }

    async fn session_put(&self, id_hash: &str, account: AccountId, csrf: &str, now: i64) -> Result<()> {
        let (id_hash, csrf) = (id_hash.to_string(), csrf.to_string());
        self.write(move |conn, _| {
            conn.execute(
                "INSERT INTO web_sessions (id_hash, account_id, csrf, created, last_seen) VALUES (?1, ?2, ?3, ?4, ?4)",
                params![id_hash, account, csrf, now],
            )?;
            Ok(())
        })
        .await
    }

    async fn session(&self, id_hash: &str) -> Result<Option<WebSession>> {
        let id_hash = id_hash.to_string();
        self.read(move |conn| session(conn, &id_hash)).await
    }

    async fn session_touch(&self, id_hash: &str, now: i64) -> Result<()> {
        let id_hash = id_hash.to_string();
        self.write(move |conn, _| {
            conn.execute("UPDATE web_sessions SET last_seen = ?2 WHERE id_hash = ?1", params![id_hash, now])?;
            Ok(())
        })
        .await
    }

    async fn session_remove(&self, id_hash: &str) -> Result<()> {
        let id_hash = id_hash.to_string();
        self.write(move |conn, _| {
            conn.execute("DELETE FROM web_sessions WHERE id_hash = ?1", [id_hash])?;
            Ok(())
        })
        .await
    }

    async fn sessions_remove(&self, account: AccountId, keep: Option<&str>) -> Result<u64> {
        let keep = keep.unwrap_or_default().to_string();
        self.write(move |conn, _| {
            Ok(conn.execute("DELETE FROM web_sessions WHERE account_id = ?1 AND id_hash != ?2", params![account, keep])? as u64)
        })
        .await
    }

    async fn sessions_prune(&self, idle_before: i64, created_before: i64) -> Result<u64> {
        self.write(move |conn, _| {
            Ok(conn.execute(
                "DELETE FROM web_sessions WHERE last_seen < ?1 OR created < ?2",
                params![idle_before, created_before],
            )? as u64)
        })
        .await
    }

    async fn messages_search(&self, address: Option<&str>, since: i64, until: i64, limit: u32) -> Result<Vec<MessageInfo>> {
        let address = match address {
            Some(a) => Some(canonical(a)?),
            None => None,
        };
        self.read(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT a.address || '/' || b.name, m.uid, m.size, m.internal_date, m.reference, m.trail, b.id \
                 FROM messages m JOIN mailboxes b ON m.mailbox_id = b.id JOIN accounts a ON b.account_id = a.id \
                 WHERE (?1 IS NULL OR a.address = ?1) AND m.internal_date >= ?2 AND m.internal_date < ?3 \
                 ORDER BY m.internal_date DESC, m.id DESC LIMIT ?4",
            )?;
            let rows = stmt
                .query_map(params![address, since, until, limit], |r| {
                    Ok(MessageInfo {
                        mailbox: r.get(0)?,
                        uid: r.get(1)?,
                        size: r.get::<_, i64>(2)? as u64,
                        internal_date: r.get(3)?,
                        reference: r.get(4)?,
                        trail: r.get(5)?,
                        mailbox_id: r.get(6)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    async fn stats_add(&self, counts: &[(i64, String, u64)]) -> Result<()> {
        let counts = counts.to_vec();
        self.write(move |conn, _| {
            let mut stmt = conn.prepare_cached(
                "INSERT INTO stats_hourly (hour, name, count) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (hour, name) DO UPDATE SET count = count + excluded.count",
            )?;
            for (hour, name, count) in &counts {
                stmt.execute(params![hour, name, *count as i64])?;
            }
            Ok(())
        })
        .await
    }

    async fn stats_since(&self, hour: i64) -> Result<Vec<(i64, String, u64)>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare("SELECT hour, name, count FROM stats_hourly WHERE hour >= ?1 ORDER BY hour, name")?;
            let rows = stmt
                .query_map([hour], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64)))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    async fn stats_prune(&self, hour: i64) -> Result<()> {
        self.write(move |conn, _| {
            conn.execute("DELETE FROM stats_hourly WHERE hour < ?1", [hour])?;
            Ok(())
        })
        .await
    }

    async fn api_token_add(&self, name: &str, hash: &str, scopes: &[String]) -> Result<()> {
        let (name, hash, scopes) = (name.trim().to_string(), hash.to_string(), scopes.join(" "));
        if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Err(StoreError::InvalidName(name));
        }
        self.write(move |conn, _| {
            match conn.execute(
                "INSERT INTO api_tokens (name, hash, scopes, created) VALUES (?1, ?2, ?3, ?4)",
                params![name, hash, scopes, now()],
            ) {
                Ok(_) => Ok(()),
                Err(e) if is_unique_violation(&e) => Err(StoreError::Exists(format!("API token {name}"))),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    async fn api_tokens(&self) -> Result<Vec<ApiToken>> {
        self.read(|conn| {
            let mut stmt = conn.prepare("SELECT id, name, scopes, created, last_used FROM api_tokens ORDER BY name")?;
            let rows = stmt.query_map([], token_from_row)?.collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    async fn api_token_revoke(&self, name: &str) -> Result<()> {
        let name = name.to_string();
        self.write(move |conn, _| match conn.execute("DELETE FROM api_tokens WHERE name = ?1", [&name])? {
            0 => Err(StoreError::NotFound(format!("API token {name}"))),
            _ => Ok(()),
        })
        .await
    }

    async fn api_token_use(&self, hash: &str, now: i64) -> Result<Option<ApiToken>> {
        let hash = hash.to_string();
        self.write(move |conn, _| {
            Ok(conn
                .query_row(
                    "UPDATE api_tokens SET last_used = ?2 WHERE hash = ?1 RETURNING id, name, scopes, created, last_used",
                    params![hash, now],
                    token_from_row,
                )
                .optional()?)
        })
        .await
    }
}
