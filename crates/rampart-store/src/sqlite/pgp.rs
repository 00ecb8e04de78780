//! [`PgpStore`] for SQLite: the `pgp_keys` table.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use super::{SqliteStore, now};
use crate::address::canonical;
use crate::pgp::{NewPgpKey, PgpKey, PgpStore, PlainSearch};
use crate::{AccountId, Result, StoreError};

const SELECT: &str = "SELECT k.account_id, a.address, k.key, k.fingerprint, k.protect_subject, k.publish, k.updated, k.search \
     FROM pgp_keys k JOIN accounts a ON a.id = k.account_id";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<PgpKey> {
    Ok(PgpKey {
        account: r.get(0)?,
        address: r.get(1)?,
        key: r.get(2)?,
        fingerprint: r.get(3)?,
        protect_subject: r.get(4)?,
        publish: r.get(5)?,
        updated: r.get(6)?,
        search: r.get(7)?,
    })
}

/// The keys of those of `accounts` that have one (delivery asks once per message).
pub(super) fn keys_for(conn: &Connection, accounts: &[AccountId]) -> Result<Vec<PgpKey>> {
    let mut stmt = conn.prepare_cached(&format!("{SELECT} WHERE k.account_id = ?1"))?;
    let mut out = Vec::new();
    for &account in accounts {
        if let Some(k) = stmt.query_row([account], from_row).optional()? {
            out.push(k);
        }
    }
    Ok(out)
}

#[async_trait]
impl PgpStore for SqliteStore {
    async fn pgp_key_set(&self, address: &str, key: NewPgpKey) -> Result<()> {
        let address = canonical(address)?;
        self.write(move |conn, _| {
            let account: AccountId = conn
                .query_row("SELECT id FROM accounts WHERE address = ?1", [&address], |r| r.get(0))
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("account {address}")))?;
            conn.execute(
                "INSERT INTO pgp_keys (account_id, key, fingerprint, protect_subject, publish, updated, search) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT (account_id) DO UPDATE SET key = ?2, fingerprint = ?3, protect_subject = ?4, publish = ?5, updated = ?6, search = ?7",
                params![account, key.key, key.fingerprint, key.protect_subject, key.publish, now(), key.search],
            )?;
            Ok(())
        })
        .await
    }

    async fn pgp_key(&self, address: &str) -> Result<Option<PgpKey>> {
        let Ok(address) = canonical(address) else { return Ok(None) };
        self.read(move |conn| Ok(conn.prepare_cached(&format!("{SELECT} WHERE a.address = ?1"))?.query_row([address], from_row).optional()?))
            .await
    }

    async fn pgp_key_remove(&self, address: &str) -> Result<bool> {
        let address = canonical(address)?;
        self.write(move |conn, _| {
            let n = conn.execute("DELETE FROM pgp_keys WHERE account_id = (SELECT id FROM accounts WHERE address = ?1)", [address])?;
            Ok(n > 0)
        })
        .await
    }

    async fn pgp_published(&self, domain: &str) -> Result<Vec<PgpKey>> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!("{SELECT} WHERE k.publish AND substr(a.address, instr(a.address, '@') + 1) = ?1"))?;
            let rows = stmt.query_map([domain], from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    async fn pgp_plain_search(&self, key: &PgpKey) -> Result<PlainSearch> {
        let (account, encrypted) = (key.account, self.database_encrypted());
        let per_user = self.read(move |conn| Ok(super::userkeys::public_of(conn, account)?.is_some())).await?;
        Ok(super::pgp_delivery::plain_search(encrypted, per_user, key))
    }
}
