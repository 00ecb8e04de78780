//! [`DirectoryStore`] for PostgreSQL: domains, accounts, credentials, app passwords, aliases
//! and resolving an address; the same behaviour as `sqlite::directory` and
//! `sqlite::credentials` (held to it by `crate::role_tests`).
//!
//! Adding an account or an alias, and removing a domain, lock the domain's row first: the
//! checks they make (no alias of that address, no account of it, no accounts left in the
//! domain) then hold until they commit, as SQLite's single writer guarantees.

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{PgStore, is_unique_violation};
use crate::address::{canonical, canonical_domain, domain_of};
use crate::sqlite::MAX_APP_PASSWORDS;
use crate::sqlite::now;
use crate::{
    Account, AccountId, Alias, AppPassword, Credentials, DEFAULT_MAILBOXES, DirectoryStore, Resolution, Result, Secrets,
    StoreError,
};

/// How deep alias chains are followed, as in SQLite.
const MAX_ALIAS_DEPTH: usize = 8;

/// The key of the advisory lock held while an administrator may be demoted or removed.
pub(super) const ADMIN_LOCK: i64 = 0x7261_6d70_6172_7402;

fn account_from_row(r: &Row) -> Account {
    Account { id: r.get(0), address: r.get(1), password_hash: r.get(2), created: r.get(3) }
}

fn app_password_from_row(r: &Row) -> AppPassword {
    AppPassword { id: r.get(0), name: r.get(1), hash: r.get(2), created: r.get(3), last_used: r.get(4) }
}

/// The domain's id, its row locked until the transaction ends.
async fn lock_domain(txn: &Transaction<'_>, domain: &str) -> Result<Option<i64>> {
    Ok(txn.query_opt("SELECT id FROM domains WHERE name = $1 FOR UPDATE", &[&domain]).await?.map(|r| r.get(0)))
}

async fn account_id(client: &impl GenericClient, address: &str) -> Result<Option<AccountId>> {
    Ok(client.query_opt("SELECT id FROM accounts WHERE address = $1", &[&address]).await?.map(|r| r.get(0)))
}

async fn app_passwords(client: &impl GenericClient, account: AccountId) -> Result<Vec<AppPassword>> {
    let rows = client
        .query("SELECT id, name, hash, created, last_used FROM app_passwords WHERE account_id = $1 ORDER BY name", &[&account])
        .await?;
    Ok(rows.iter().map(app_password_from_row).collect())
}

/// `LastAdmin` when `address` is the only administrator who can log in (`sqlite::web`'s
/// `keep_an_admin`). Holds [`ADMIN_LOCK`] until the transaction ends, so two nodes removing
/// the last two administrators at once cannot both pass.
pub(super) async fn keep_an_admin(txn: &Transaction<'_>, address: &str) -> Result<()> {
    const ACTIVE_ADMIN: &str = "role = 'admin' AND NOT suspended \
         AND address NOT IN (SELECT account FROM sending_state WHERE scope = 'all')";
    txn.execute("SELECT pg_advisory_xact_lock($1)", &[&ADMIN_LOCK]).await?;
    let active: bool = txn
        .query_one(&format!("SELECT EXISTS (SELECT 1 FROM accounts WHERE address = $1 AND {ACTIVE_ADMIN})"), &[&address])
        .await?
        .get(0);
    if !active {
        return Ok(());
    }
    let others: i64 = txn
        .query_one(&format!("SELECT count(*) FROM accounts WHERE address <> $1 AND {ACTIVE_ADMIN}"), &[&address])
        .await?
        .get(0);
    if others == 0 {
        return Err(StoreError::LastAdmin(address.to_string()));
    }
    Ok(())
}

#[async_trait]
impl DirectoryStore for PgStore {
    async fn add_domain(&self, name: &str) -> Result<()> {
        let name = canonical_domain(name).ok_or_else(|| StoreError::InvalidDomain(name.to_string()))?;
        let conn = self.conn().await?;
        match conn.execute("INSERT INTO domains (name, created) VALUES ($1, $2)", &[&name, &now()]).await {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Exists(format!("domain {name}"))),
            Err(e) => Err(e.into()),
        }
    }

    async fn remove_domain(&self, name: &str) -> Result<()> {
        let name = canonical_domain(name).unwrap_or_else(|| name.to_string());
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let id = lock_domain(&txn, &name).await?.ok_or_else(|| StoreError::NotFound(format!("domain {name}")))?;
        let row = txn
            .query_one(
                "SELECT (SELECT count(*) FROM accounts WHERE domain_id = $1), (SELECT count(*) FROM aliases WHERE domain_id = $1)",
                &[&id],
            )
            .await?;
        let (accounts, aliases) = (row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64);
        if accounts + aliases > 0 {
            return Err(StoreError::InUse { domain: name, accounts, aliases });
        }
        txn.execute("DELETE FROM domains WHERE id = $1", &[&id]).await?;
        txn.commit().await?;
        Ok(())
    }

    async fn list_domains(&self) -> Result<Vec<String>> {
        let rows = self.conn().await?.query("SELECT name FROM domains ORDER BY name", &[]).await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn is_local_domain(&self, name: &str) -> Result<bool> {
        let Some(name) = canonical_domain(name) else { return Ok(false) };
        Ok(self.conn().await?.query_opt("SELECT 1 FROM domains WHERE name = $1", &[&name]).await?.is_some())
    }

    async fn add_account_with(&self, address: &str, secrets: &Secrets) -> Result<AccountId> {
        let address = canonical(address)?;
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let domain = domain_of(&address);
        let domain_id = lock_domain(&txn, domain).await?.ok_or_else(|| StoreError::NotLocalDomain(domain.to_string()))?;
        if txn.query_opt("SELECT 1 FROM aliases WHERE address = $1 LIMIT 1", &[&address]).await?.is_some() {
            return Err(StoreError::Exists(format!("alias {address}")));
        }
        let created = now();
        let id: AccountId = match txn
            .query_one(
                "INSERT INTO accounts (address, domain_id, password_hash, scram_sha256, cram_secret, created, password_changed) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
                &[&address, &domain_id, &secrets.password_hash, &secrets.scram_sha256, &secrets.cram_secret, &created],
            )
            .await
        {
            Ok(row) => row.get(0),
            Err(e) if is_unique_violation(&e) => return Err(StoreError::Exists(format!("account {address}"))),
            Err(e) => return Err(e.into()),
        };
        let mailbox = txn
            .prepare("INSERT INTO mailboxes (account_id, name, uidvalidity, special_use) VALUES ($1, $2, $3, $4)")
            .await?;
        let subscribe = txn.prepare("INSERT INTO subscriptions (account_id, name) VALUES ($1, $2)").await?;
        // UIDVALIDITY as SQLite gives it: the creation time, as a 32-bit number.
        let uidvalidity = i64::from(created as u32);
        for (name, special) in DEFAULT_MAILBOXES {
            txn.execute(&mailbox, &[&id, &name, &uidvalidity, &special]).await?;
            // Subscribed, so clients that show only subscribed folders show them.
            txn.execute(&subscribe, &[&id, &name]).await?;
        }
        txn.commit().await?;
        Ok(id)
    }

    async fn remove_account(&self, address: &str) -> Result<()> {
        let address = canonical(address)?;
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let id: AccountId = txn
            .query_opt("SELECT id FROM accounts WHERE address = $1 FOR UPDATE", &[&address])
            .await?
            .map(|r| r.get(0))
            .ok_or_else(|| StoreError::NotFound(format!("account {address}")))?;
        keep_an_admin(&txn, &address).await?;
        // Each of its messages drops one reference to its body; a body nobody else holds (no
        // other account's copy, queue entry or quarantine) goes with its chunks and summary.
        txn.execute(
            "WITH gone AS (DELETE FROM messages WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE account_id = $1) \
                           RETURNING blob_id), \
                  counts AS (SELECT blob_id, count(*) AS n FROM gone GROUP BY blob_id) \
             UPDATE blobs SET refcount = blobs.refcount - counts.n FROM counts WHERE blobs.id = counts.blob_id",
            &[&id],
        )
        .await?;
        txn.execute("DELETE FROM summaries WHERE blob_id IN (SELECT id FROM blobs WHERE refcount <= 0)", &[]).await?;
        txn.execute("DELETE FROM blobs WHERE refcount <= 0", &[]).await?;
        txn.execute("DELETE FROM accounts WHERE id = $1", &[&id]).await?;
        txn.commit().await?;
        Ok(())
    }

    async fn account(&self, address: &str) -> Result<Option<Account>> {
        let Ok(address) = canonical(address) else { return Ok(None) };
        let conn = self.conn().await?;
        let row =
            conn.query_opt("SELECT id, address, password_hash, created FROM accounts WHERE address = $1", &[&address]).await?;
        Ok(row.as_ref().map(account_from_row))
    }

    async fn list_accounts(&self) -> Result<Vec<Account>> {
        let conn = self.conn().await?;
        let rows = conn.query("SELECT id, address, password_hash, created FROM accounts ORDER BY address", &[]).await?;
        Ok(rows.iter().map(account_from_row).collect())
    }

    async fn set_secrets(&self, address: &str, secrets: &Secrets) -> Result<()> {
        let address = canonical(address)?;
        let n = self
            .conn()
            .await?
            .execute(
                "UPDATE accounts SET password_hash = $2, scram_sha256 = $3, cram_secret = $4, password_changed = $5 \
                 WHERE address = $1",
                &[&address, &secrets.password_hash, &secrets.scram_sha256, &secrets.cram_secret, &now()],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("account {address}")));
        }
        Ok(())
    }

    async fn password_changes(&self) -> Result<Vec<(String, Option<i64>)>> {
        let rows = self.conn().await?.query("SELECT address, password_changed FROM accounts ORDER BY address", &[]).await?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn credentials(&self, address: &str) -> Result<Option<Credentials>> {
        let Ok(address) = canonical(address) else { return Ok(None) };
        let conn = self.conn().await?;
        // A suspended account has no credentials: every mechanism fails as for an unknown user.
        let Some(row) = conn
            .query_opt(
                "SELECT id, address, password_hash, created, scram_sha256, cram_secret FROM accounts \
                 WHERE address = $1 AND NOT suspended",
                &[&address],
            )
            .await?
        else {
            return Ok(None);
        };
        let account = account_from_row(&row);
        let app_passwords = app_passwords(&conn, account.id).await?;
        Ok(Some(Credentials { account, scram_sha256: row.get(4), cram_secret: row.get(5), app_passwords }))
    }

    async fn add_app_password(&self, address: &str, name: &str, hash: &str) -> Result<()> {
        let address = canonical(address)?;
        let name = name.trim();
        if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
            return Err(StoreError::InvalidAppPasswordName);
        }
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        // The account's row, locked: two adds at once cannot both pass the count.
        let id: AccountId = txn
            .query_opt("SELECT id FROM accounts WHERE address = $1 FOR UPDATE", &[&address])
            .await?
            .map(|r| r.get(0))
            .ok_or_else(|| StoreError::NotFound(format!("account {address}")))?;
        let count = txn.query_one("SELECT count(*) FROM app_passwords WHERE account_id = $1", &[&id]).await?.get::<_, i64>(0) as u64;
        if count >= MAX_APP_PASSWORDS {
            return Err(StoreError::TooManyAppPasswords { address, count });
        }
        match txn
            .execute("INSERT INTO app_passwords (account_id, name, hash, created) VALUES ($1, $2, $3, $4)", &[&id, &name, &hash, &now()])
            .await
        {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Err(StoreError::Exists(format!("app password {name} of {address}"))),
            Err(e) => return Err(e.into()),
        }
        txn.commit().await?;
        Ok(())
    }

    async fn list_app_passwords(&self, address: &str) -> Result<Vec<AppPassword>> {
        let address = canonical(address)?;
        let conn = self.conn().await?;
        let id = account_id(&conn, &address).await?.ok_or_else(|| StoreError::NotFound(format!("account {address}")))?;
        app_passwords(&conn, id).await
    }

    async fn revoke_app_password(&self, address: &str, name: &str) -> Result<()> {
        let address = canonical(address)?;
        let n = self
            .conn()
            .await?
            .execute(
                "DELETE FROM app_passwords WHERE account_id = (SELECT id FROM accounts WHERE address = $1) AND name = $2",
                &[&address, &name],
            )
            .await?;
        if n == 0 {
            let conn = self.conn().await?;
            if account_id(&conn, &address).await?.is_none() {
                return Err(StoreError::NotFound(format!("account {address}")));
            }
            return Err(StoreError::NotFound(format!("app password {name} of {address}")));
        }
        Ok(())
    }

    async fn touch_app_password(&self, id: i64) -> Result<()> {
        self.conn().await?.execute("UPDATE app_passwords SET last_used = $2 WHERE id = $1", &[&id, &now()]).await?;
        Ok(())
    }

    async fn add_alias(&self, address: &str, target: &str) -> Result<()> {
        let address = canonical(address)?;
        let target = canonical(target)?;
        if address == target {
            return Err(StoreError::SelfAlias(address));
        }
        let mut conn = self.conn().await?;
        let txn = conn.transaction().await?;
        let domain = domain_of(&address);
        let domain_id = lock_domain(&txn, domain).await?.ok_or_else(|| StoreError::NotLocalDomain(domain.to_string()))?;
        if account_id(&txn, &address).await?.is_some() {
            return Err(StoreError::Exists(format!("account {address}")));
        }
        match txn
            .execute("INSERT INTO aliases (address, target, domain_id) VALUES ($1, $2, $3)", &[&address, &target, &domain_id])
            .await
        {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Err(StoreError::Exists(format!("alias {address} -> {target}"))),
            Err(e) => return Err(e.into()),
        }
        txn.commit().await?;
        Ok(())
    }

    async fn remove_alias(&self, address: &str, target: Option<&str>) -> Result<()> {
        let address = canonical(address)?;
        let target = target.map(canonical).transpose()?;
        let conn = self.conn().await?;
        let n = match &target {
            Some(t) => conn.execute("DELETE FROM aliases WHERE address = $1 AND target = $2", &[&address, t]).await?,
            None => conn.execute("DELETE FROM aliases WHERE address = $1", &[&address]).await?,
        };
        if n == 0 {
            return Err(StoreError::NotFound(format!("alias {address}")));
        }
        Ok(())
    }

    async fn list_aliases(&self) -> Result<Vec<Alias>> {
        let rows = self.conn().await?.query("SELECT address, target FROM aliases ORDER BY address, target", &[]).await?;
        Ok(rows.iter().map(|r| Alias { address: r.get(0), target: r.get(1) }).collect())
    }

    async fn aliases_of(&self, address: &str) -> Result<Vec<String>> {
        let Ok(address) = canonical(address) else { return Ok(Vec::new()) };
        let rows = self.conn().await?.query("SELECT address FROM aliases WHERE target = $1 ORDER BY address", &[&address]).await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn resolve(&self, address: &str) -> Result<Resolution> {
        let Ok(address) = canonical(address) else { return Ok(Resolution::default()) };
        let conn = self.conn().await?;
        let account = conn.prepare_cached("SELECT id FROM accounts WHERE address = $1").await?;
        let targets = conn.prepare_cached("SELECT target FROM aliases WHERE address = $1 ORDER BY id").await?;
        let domain = conn.prepare_cached("SELECT 1 FROM domains WHERE name = $1").await?;
        let mut resolution = Resolution::default();
        let mut seen = vec![address.clone()];
        let mut level = vec![address];
        for _ in 0..=MAX_ALIAS_DEPTH {
            let mut next = Vec::new();
            for addr in level {
                if let Some(row) = conn.query_opt(&account, &[&addr]).await? {
                    let id: AccountId = row.get(0);
                    if !resolution.accounts.contains(&id) {
                        resolution.accounts.push(id);
                    }
                    continue;
                }
                let found: Vec<String> = conn.query(&targets, &[&addr]).await?.iter().map(|r| r.get(0)).collect();
                if !found.is_empty() {
                    for t in found {
                        if !seen.contains(&t) {
                            seen.push(t.clone());
                            next.push(t);
                        }
                    }
                } else if conn.query_opt(&domain, &[&domain_of(&addr)]).await?.is_none() && !resolution.remote.contains(&addr) {
                    resolution.remote.push(addr);
                }
            }
            if next.is_empty() {
                break;
            }
            level = next;
        }
        Ok(resolution)
    }
}
