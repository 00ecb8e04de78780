//! [`PgpStore`] for PostgreSQL: users' OpenPGP keys (`pgp_keys`); the same behaviour as
//! `sqlite::pgp` (held to it by `crate::role_tests`). Delivery reads them with [`keys_for`]
//! (`pgp_delivery`), as `sqlite::pgp_delivery` does.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::PgStore;
use crate::address::canonical;
use crate::pgp::{NewPgpKey, PgpKey, PgpStore, PlainSearch};
use crate::sqlite::now;
use crate::{AccountId, Result, StoreError};

const SELECT: &str = "SELECT k.account_id, a.address, k.key, k.fingerprint, k.protect_subject, k.publish, k.updated, k.search \
     FROM pgp_keys k JOIN accounts a ON a.id = k.account_id";

fn from_row(r: &Row) -> PgpKey {
    PgpKey {
        account: r.get(0),
        address: r.get(1),
        key: r.get(2),
        fingerprint: r.get(3),
        protect_subject: r.get(4),
        publish: r.get(5),
        updated: r.get(6),
        search: r.get(7),
    }
}

/// The keys of those of `accounts` that have one, in account order.
pub(crate) async fn keys_for(client: &impl GenericClient, accounts: &[AccountId]) -> Result<Vec<PgpKey>> {
    let stmt = client.prepare_cached(&format!("{SELECT} WHERE k.account_id = ANY($1) ORDER BY k.account_id")).await?;
    let rows = client.query(&stmt, &[&accounts]).await?;
    Ok(rows.iter().map(from_row).collect())
}

#[async_trait]
impl PgpStore for PgStore {
    async fn pgp_key_set(&self, address: &str, key: NewPgpKey) -> Result<()> {
        let address = canonical(address)?;
        let n = self
            .conn()
            .await?
            .execute(
                "INSERT INTO pgp_keys (account_id, key, fingerprint, protect_subject, publish, updated, search) \
                 SELECT id, $2, $3, $4, $5, $6, $7 FROM accounts WHERE address = $1 \
                 ON CONFLICT (account_id) DO UPDATE SET key = excluded.key, fingerprint = excluded.fingerprint, \
                 protect_subject = excluded.protect_subject, publish = excluded.publish, updated = excluded.updated, \
                 search = excluded.search",
                &[&address, &key.key, &key.fingerprint, &key.protect_subject, &key.publish, &now(), &key.search],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("account {address}")));
        }
        Ok(())
    }

    async fn pgp_key(&self, address: &str) -> Result<Option<PgpKey>> {
        let Ok(address) = canonical(address) else { return Ok(None) };
        let row = self.conn().await?.query_opt(&format!("{SELECT} WHERE a.address = $1"), &[&address]).await?;
        Ok(row.as_ref().map(from_row))
    }

    async fn pgp_key_remove(&self, address: &str) -> Result<bool> {
        let address = canonical(address)?;
        let n = self
            .conn()
            .await?
            .execute("DELETE FROM pgp_keys WHERE account_id = (SELECT id FROM accounts WHERE address = $1)", &[&address])
            .await?;
        Ok(n > 0)
    }

    async fn pgp_published(&self, domain: &str) -> Result<Vec<PgpKey>> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let rows = self
            .conn()
            .await?
            .query(&format!("{SELECT} WHERE k.publish AND split_part(a.address, '@', 2) = $1 ORDER BY k.account_id"), &[&domain])
            .await?;
        Ok(rows.iter().map(from_row).collect())
    }

    /// No encryption at rest on PostgreSQL: the clear-store rule, opt-in only.
    async fn pgp_plain_search(&self, key: &PgpKey) -> Result<PlainSearch> {
        Ok(PlainSearch::clear(key))
    }
}
