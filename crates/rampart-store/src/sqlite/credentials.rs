//! Account secrets and app passwords: the credential half of [`crate::DirectoryStore`].

use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, account_from_row, account_id, is_unique_violation, now};
use crate::address::canonical;
use crate::{AppPassword, Credentials, Result, StoreError};

/// Most app passwords one account may have: each failed login checks every one of them with
/// argon2, so the number bounds the cost of a guess.
pub const MAX_APP_PASSWORDS: u64 = 20;

fn app_password_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AppPassword> {
    Ok(AppPassword { id: r.get(0)?, name: r.get(1)?, hash: r.get(2)?, created: r.get(3)?, last_used: r.get(4)? })
}

fn app_passwords(conn: &rusqlite::Connection, account: i64) -> Result<Vec<AppPassword>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, name, hash, created, last_used FROM app_passwords WHERE account_id = ?1 ORDER BY name",
    )?;
    let rows = stmt.query_map([account], app_password_from_row)?.collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

impl SqliteStore {
    pub(super) async fn credentials_impl(&self, address: &str) -> Result<Option<Credentials>> {
        let Ok(address) = canonical(address) else { return Ok(None) };
        self.read(move |conn| {
            let row = conn
                .query_row(
                    // A suspended account has no credentials: every mechanism fails as for an unknown
                    // user (same timing), and the credential cache cannot match.
                    "SELECT id, address, password_hash, created, scram_sha256, cram_secret FROM accounts \
                     WHERE address = ?1 AND NOT suspended",
                    [&address],
                    |r| Ok((account_from_row(r)?, r.get::<_, Option<String>>(4)?, r.get::<_, Option<String>>(5)?)),
                )
                .optional()?;
            let Some((account, scram_sha256, cram_secret)) = row else { return Ok(None) };
            let app_passwords = app_passwords(conn, account.id)?;
            Ok(Some(Credentials { account, scram_sha256, cram_secret, app_passwords }))
        })
        .await
    }

    pub(super) async fn add_app_password_impl(&self, address: &str, name: &str, hash: &str) -> Result<()> {
        let address = canonical(address)?;
        let (name, hash) = (name.trim().to_string(), hash.to_string());
        if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Err(StoreError::InvalidAppPasswordName);
        }
        self.write(move |conn, _| {
            let id = account_id(conn, &address)?.ok_or_else(|| StoreError::NotFound(format!("account {address}")))?;
            let count: u64 = conn.query_row("SELECT count(*) FROM app_passwords WHERE account_id = ?1", [id], |r| r.get::<_, i64>(0))? as u64;
            if count >= MAX_APP_PASSWORDS {
                return Err(StoreError::TooManyAppPasswords { address, count });
            }
            match conn.execute(
                "INSERT INTO app_passwords (account_id, name, hash, created) VALUES (?1, ?2, ?3, ?4)",
                params![id, name, hash, now()],
            ) {
                Ok(_) => Ok(()),
                Err(e) if is_unique_violation(&e) => Err(StoreError::Exists(format!("app password {name} of {address}"))),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    pub(super) async fn list_app_passwords_impl(&self, address: &str) -> Result<Vec<AppPassword>> {
        let address = canonical(address)?;
        self.read(move |conn| {
            let id = account_id(conn, &address)?.ok_or_else(|| StoreError::NotFound(format!("account {address}")))?;
            app_passwords(conn, id)
        })
        .await
    }

    pub(super) async fn revoke_app_password_impl(&self, address: &str, name: &str) -> Result<()> {
        let address = canonical(address)?;
        let name = name.to_string();
        self.write(move |conn, _| {
            let id = account_id(conn, &address)?.ok_or_else(|| StoreError::NotFound(format!("account {address}")))?;
            let n = conn.execute("DELETE FROM app_passwords WHERE account_id = ?1 AND name = ?2", params![id, name])?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("app password {name} of {address}")));
            }
            Ok(())
        })
        .await
    }
}
