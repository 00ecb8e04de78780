//! [`DirectoryStore`] for SQLite: domains, accounts, aliases and resolving an address. The
//! credential half (secrets, app passwords) is in [`super::credentials`].

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, account_from_row, account_id, domain_id, is_unique_violation, now, release_blobs};
use crate::address::{canonical, canonical_domain, domain_of};
use crate::{
    Account, AccountId, Alias, AppPassword, Credentials, DEFAULT_MAILBOXES, DirectoryStore, Resolution, Result, Secrets,
    StoreError,
};

/// How deep alias chains are followed; deeper chains are configuration loops in practice.
const MAX_ALIAS_DEPTH: usize = 8;

#[async_trait]
impl DirectoryStore for SqliteStore {
    async fn add_domain(&self, name: &str) -> Result<()> {
        let name = canonical_domain(name).ok_or_else(|| StoreError::InvalidDomain(name.to_string()))?;
        self.write(move |conn, _| {
            match conn.execute("INSERT INTO domains (name, created) VALUES (?1, ?2)", params![name, now()]) {
                Ok(_) => Ok(()),
                Err(e) if is_unique_violation(&e) => Err(StoreError::Exists(format!("domain {name}"))),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    async fn remove_domain(&self, name: &str) -> Result<()> {
        let name = canonical_domain(name).unwrap_or_else(|| name.to_string());
        self.write(move |conn, _| {
            let id = domain_id(conn, &name)?.ok_or_else(|| StoreError::NotFound(format!("domain {name}")))?;
            let accounts: u64 =
                conn.query_row("SELECT count(*) FROM accounts WHERE domain_id = ?1", [id], |r| r.get::<_, i64>(0))? as u64;
            let aliases: u64 =
                conn.query_row("SELECT count(*) FROM aliases WHERE domain_id = ?1", [id], |r| r.get::<_, i64>(0))? as u64;
            if accounts + aliases > 0 {
                return Err(StoreError::InUse { domain: name, accounts, aliases });
            }
            conn.execute("DELETE FROM domains WHERE id = ?1", [id])?;
            Ok(())
        })
        .await
    }

    async fn list_domains(&self) -> Result<Vec<String>> {
        self.read(|conn| {
            let mut stmt = conn.prepare("SELECT name FROM domains ORDER BY name")?;
            let rows = stmt.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    async fn is_local_domain(&self, name: &str) -> Result<bool> {
        let Some(name) = canonical_domain(name) else { return Ok(false) };
        self.read_now(|conn| Ok(domain_id(conn, &name)?.is_some()))
    }

    async fn add_account_with(&self, address: &str, secrets: &Secrets) -> Result<AccountId> {
        let address = canonical(address)?;
        let secrets = secrets.clone();
        self.write(move |conn, _| {
            let domain = domain_of(&address);
            let domain_id = domain_id(conn, domain)?.ok_or_else(|| StoreError::NotLocalDomain(domain.to_string()))?;
            let alias: Option<i64> =
                conn.query_row("SELECT id FROM aliases WHERE address = ?1", [&address], |r| r.get(0)).optional()?;
            if alias.is_some() {
                return Err(StoreError::Exists(format!("alias {address}")));
            }
            let created = now();
            match conn.execute(
                "INSERT INTO accounts (address, domain_id, password_hash, scram_sha256, cram_secret, created, password_changed) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                params![address, domain_id, secrets.password_hash, secrets.scram_sha256, secrets.cram_secret, created],
            ) {
                Ok(_) => {}
                Err(e) if is_unique_violation(&e) => return Err(StoreError::Exists(format!("account {address}"))),
                Err(e) => return Err(e.into()),
            }
            let id = conn.last_insert_rowid();
            let mut stmt = conn.prepare(
                "INSERT INTO mailboxes (account_id, name, uidvalidity, special_use) VALUES (?1, ?2, ?3, ?4)",
            )?;
            let mut subscribe = conn.prepare("INSERT INTO subscriptions (account_id, name) VALUES (?1, ?2)")?;
            for (name, special) in DEFAULT_MAILBOXES {
                stmt.execute(params![id, name, created as u32, special])?;
                // The folders every account starts with are subscribed, so clients that
                // show only subscribed folders show them.
                subscribe.execute(params![id, name])?;
            }
            Ok(id)
        })
        .await
    }

    async fn remove_account(&self, address: &str) -> Result<()> {
        let address = canonical(address)?;
        self.write(move |conn, effects| {
            let id = account_id(conn, &address)?.ok_or_else(|| StoreError::NotFound(format!("account {address}")))?;
            super::web::keep_an_admin(conn, &address)?;
            let blobs: Vec<(String, i64)> = conn
                .prepare(
                    "SELECT m.blob_id, count(*) FROM messages m JOIN mailboxes b ON m.mailbox_id = b.id \
                     WHERE b.account_id = ?1 GROUP BY m.blob_id",
                )?
                .query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            conn.execute(
                "DELETE FROM messages WHERE mailbox_id IN (SELECT id FROM mailboxes WHERE account_id = ?1)",
                [id],
            )?;
            // The account's words documents go too: its id may be given to a new account.
            super::summaries::forget_words(conn, id, blobs.iter().map(|(b, _)| b.as_str()))?;
            release_blobs(conn, effects, &blobs)?;
            conn.execute("DELETE FROM accounts WHERE id = ?1", [id])?;
            Ok(())
        })
        .await?;
        // Its mailboxes' ids may be given to another account's.
        self.summaries_changed();
        Ok(())
    }

    async fn account(&self, address: &str) -> Result<Option<Account>> {
        let Ok(address) = canonical(address) else { return Ok(None) };
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT id, address, password_hash, created FROM accounts WHERE address = ?1",
                    [address],
                    account_from_row,
                )
                .optional()?)
        })
        .await
    }

    async fn list_accounts(&self) -> Result<Vec<Account>> {
        self.read(|conn| {
            let mut stmt =
                conn.prepare("SELECT id, address, password_hash, created FROM accounts ORDER BY address")?;
            let rows = stmt.query_map([], account_from_row)?.collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    async fn set_secrets(&self, address: &str, secrets: &Secrets) -> Result<()> {
        let address = canonical(address)?;
        let secrets = secrets.clone();
        self.write(move |conn, _| {
            let n = conn.execute(
                "UPDATE accounts SET password_hash = ?2, scram_sha256 = ?3, cram_secret = ?4, password_changed = ?5 \
                 WHERE address = ?1",
                params![address, secrets.password_hash, secrets.scram_sha256, secrets.cram_secret, now()],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("account {address}")));
            }
            Ok(())
        })
        .await
    }

    async fn password_changes(&self) -> Result<Vec<(String, Option<i64>)>> {
        self.read(|conn| {
            let mut stmt = conn.prepare("SELECT address, password_changed FROM accounts ORDER BY address")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    async fn credentials(&self, address: &str) -> Result<Option<Credentials>> {
        self.credentials_impl(address).await
    }

    async fn add_app_password(&self, address: &str, name: &str, hash: &str) -> Result<()> {
        self.add_app_password_impl(address, name, hash).await
    }

    async fn list_app_passwords(&self, address: &str) -> Result<Vec<AppPassword>> {
        self.list_app_passwords_impl(address).await
    }

    async fn revoke_app_password(&self, address: &str, name: &str) -> Result<()> {
        self.revoke_app_password_impl(address, name).await
    }

    async fn touch_app_password(&self, id: i64) -> Result<()> {
        self.write(move |conn, _| {
            conn.execute("UPDATE app_passwords SET last_used = ?2 WHERE id = ?1", params![id, now()])?;
            Ok(())
        })
        .await
    }

    async fn add_alias(&self, address: &str, target: &str) -> Result<()> {
        let address = canonical(address)?;
        let target = canonical(target)?;
        if address == target {
            return Err(StoreError::SelfAlias(address));
        }
        self.write(move |conn, _| {
            let domain = domain_of(&address);
            let domain_id = domain_id(conn, domain)?.ok_or_else(|| StoreError::NotLocalDomain(domain.to_string()))?;
            if account_id(conn, &address)?.is_some() {
                return Err(StoreError::Exists(format!("account {address}")));
            }
            match conn.execute(
                "INSERT INTO aliases (address, target, domain_id) VALUES (?1, ?2, ?3)",
                params![address, target, domain_id],
            ) {
                Ok(_) => Ok(()),
                Err(e) if is_unique_violation(&e) => Err(StoreError::Exists(format!("alias {address} -> {target}"))),
                Err(e) => Err(e.into()),
            }
        })
        .await
    }

    async fn remove_alias(&self, address: &str, target: Option<&str>) -> Result<()> {
        let address = canonical(address)?;
        let target = target.map(canonical).transpose()?;
        self.write(move |conn, _| {
            let n = match &target {
                Some(t) => conn.execute("DELETE FROM aliases WHERE address = ?1 AND target = ?2", params![address, t])?,
                None => conn.execute("DELETE FROM aliases WHERE address = ?1", [&address])?,
            };
            if n == 0 {
                return Err(StoreError::NotFound(format!("alias {address}")));
            }
            Ok(())
        })
        .await
    }

    async fn list_aliases(&self) -> Result<Vec<Alias>> {
        self.read(|conn| {
            let mut stmt = conn.prepare("SELECT address, target FROM aliases ORDER BY address, target")?;
            let rows = stmt
                .query_map([], |r| Ok(Alias { address: r.get(0)?, target: r.get(1)? }))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    async fn aliases_of(&self, address: &str) -> Result<Vec<String>> {
        let Ok(address) = canonical(address) else { return Ok(Vec::new()) };
        self.read(move |conn| {
            let mut stmt = conn.prepare("SELECT address FROM aliases WHERE target = ?1 ORDER BY address")?;
            let rows = stmt.query_map([address], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    async fn resolve(&self, address: &str) -> Result<Resolution> {
        let Ok(address) = canonical(address) else { return Ok(Resolution::default()) };
        self.read(move |conn| {
            let mut resolution = Resolution::default();
            let mut seen = vec![address.clone()];
            let mut level = vec![address];
            for _ in 0..=MAX_ALIAS_DEPTH {
                let mut next = Vec::new();
                for addr in level {
                    if let Some(id) = account_id(conn, &addr)? {
                        if !resolution.accounts.contains(&id) {
                            resolution.accounts.push(id);
                        }
                        continue;
                    }
                    let targets: Vec<String> = conn
                        .prepare_cached("SELECT target FROM aliases WHERE address = ?1")?
                        .query_map([&addr], |r| r.get(0))?
                        .collect::<rusqlite::Result<_>>()?;
                    if !targets.is_empty() {
                        for t in targets {
                            if !seen.contains(&t) {
                                seen.push(t.clone());
                                next.push(t);
                            }
                        }
                    } else if domain_id(conn, domain_of(&addr))?.is_none() && !resolution.remote.contains(&addr) {
                        resolution.remote.push(addr);
                    }
                }
                if next.is_empty() {
                    break;
                }
                level = next;
            }
            Ok(resolution)
        })
        .await
    }
}
