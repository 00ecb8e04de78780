//! The embedded store: SQLite in WAL mode beside a directory of blob files.
//!
//! Reads run on the blocking pool with a small pool of connections. Writes are closures sent
//! to one writer thread ([`writer`]), which runs everything queued in one transaction, each
//! job inside its own savepoint so one failure does not undo its neighbours, and commits once
//! (group commit): N concurrent deliveries cost one WAL fsync and one fsync per blob
//! directory instead of N of each.

mod credentials;
mod guard;
mod imap;
mod senderauth;
mod queue;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use crate::address::{canonical, canonical_domain, domain_of};
use crate::blob::{self, BlobWriter, blob_path};
use crate::{
    Account, AccountId, Alias, DEFAULT_MAILBOXES, Delivered, Delivery, Folder, Mailbox, MailboxId,
    MessageInfo, MessageMeta, Resolution, Result, Store, StoreError,
};
use crate::notify::Notifier;
use writer::{Effects, Writer};

/// How deep alias chains are followed; deeper chains are configuration loops in practice.
const MAX_ALIAS_DEPTH: usize = 8;
/// Idle reader connections kept open.
const MAX_IDLE_READERS: usize = 8;
/// How long a statement waits for another process (a CLI command) holding the write lock.
const BUSY_TIMEOUT_MS: u64 = 10_000;

#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    db_path: PathBuf,
    blob_root: PathBuf,
    readers: Mutex<Vec<Connection>>,
    writer: Writer,
    notifier: Arc<Notifier>,
    /// Held by the server for its lifetime: one server per store.
    _lock: Option<std::fs::File>,
}

fn open_connection(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_millis(BUSY_TIMEOUT_MS))?;
    // WAL lets readers (IMAP, the CLI) run beside the writer; synchronous=FULL makes every
    // commit fsync the WAL, which is what "acknowledged means durable" needs.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl SqliteStore {
    /// Opens (creating if needed) the store under `data_dir` and brings its schema up to date.
    /// Any number of processes may do this at once: the CLI beside a running server.
    pub fn open(data_dir: &Path) -> Result<SqliteStore> {
        Self::open_inner(data_dir, None)
    }

    /// Opens the store for the one server that may use it: takes an exclusive lock on
    /// `data_dir/rampart.lock` and removes message files a crashed run left half-written (they
    /// were never acknowledged). Only the lock holder may do that, since a CLI process cannot
    /// tell a dead run's file from one the live server is writing.
    pub fn open_for_server(data_dir: &Path) -> Result<SqliteStore> {
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError::io(data_dir, e))?;
        let path = data_dir.join("rampart.lock");
        let lock = std::fs::File::options().create(true).truncate(false).write(true).open(&path).map_err(|e| StoreError::io(&path, e))?;
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a file descriptor we own and keep open.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(StoreError::Invalid(format!("another `rampart serve` is using the store in {}", data_dir.display())));
        }
        blob::clean_tmp(&data_dir.join("blobs"))?;
        Self::open_inner(data_dir, Some(lock))
    }

    fn open_inner(data_dir: &Path, lock: Option<std::fs::File>) -> Result<SqliteStore> {
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError::io(data_dir, e))?;
        let db_path = data_dir.join("rampart.db");
        let blob_root = data_dir.join("blobs");
        blob::prepare_root(&blob_root)?;
        let mut conn = open_connection(&db_path)?;
        schema::migrate(&mut conn)?;
        let notifier = Arc::new(Notifier::default());
        let writer = Writer::start(conn, blob_root.clone(), notifier.clone())?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                db_path,
                blob_root,
                readers: Mutex::new(Vec::new()),
                writer,
                notifier,
                _lock: lock,
            }),
        })
    }

    async fn read<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let pooled = inner.readers.lock().expect("reader pool lock").pop();
            let conn = match pooled {
                Some(c) => c,
                None => open_connection(&inner.db_path)?,
            };
            let result = f(&conn);
            let mut pool = inner.readers.lock().expect("reader pool lock");
            if pool.len() < MAX_IDLE_READERS {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(|_| StoreError::Closed)?
    }

    async fn write<R, F>(&self, f: F) -> Result<R>
    where
        R: Send + 'static,
        F: FnOnce(&Connection, &mut Effects) -> Result<R> + Send + 'static,
    {
        self.inner.writer.run(f).await
    }
}

fn domain_id(conn: &Connection, domain: &str) -> Result<Option<i64>> {
    Ok(conn.query_row("SELECT id FROM domains WHERE name = ?1", [domain], |r| r.get(0)).optional()?)
}

pub(crate) fn account_id(conn: &Connection, address: &str) -> Result<Option<AccountId>> {
    Ok(conn.query_row("SELECT id FROM accounts WHERE address = ?1", [address], |r| r.get(0)).optional()?)
}

pub(crate) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

pub(crate) fn account_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Account> {
    Ok(Account { id: r.get(0)?, address: r.get(1)?, password_hash: r.get(2)?, created: r.get(3)? })
}

/// Drops one reference from each blob; blobs nobody references are deleted (their files
/// after the commit).
pub(crate) fn release_blobs(conn: &Connection, effects: &mut Effects, blob_ids: &[(String, i64)]) -> Result<()> {
    for (id, count) in blob_ids {
        let (left, inline): (i64, bool) = conn.query_row(
            "UPDATE blobs SET refcount = refcount - ?2 WHERE id = ?1 RETURNING refcount, data IS NOT NULL",
            params![id, count],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if left <= 0 {
            conn.execute("DELETE FROM blobs WHERE id = ?1", [id])?;
            if !inline {
                effects.delete_after_commit(blob_path(&effects.blob_root, id));
            }
        }
    }
    Ok(())
}

/// A stored body: from its row when inline, else from its file.
pub(crate) fn read_blob(conn: &Connection, root: &Path, id: &str) -> Result<Vec<u8>> {
    let data: Option<Vec<u8>> = conn.query_row("SELECT data FROM blobs WHERE id = ?1", [id], |r| r.get(0))?;
    match data {
        Some(d) => Ok(d),
        None => {
            let path = blob_path(root, id);
            std::fs::read(&path).map_err(|e| StoreError::io(&path, e))
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn add_domain(&self, name: &str) -> Result<()> {
        let name = canonical_domain(name)
            .ok_or_else(|| StoreError::Invalid(format!("`{name}` is not a domain name")))?;
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
            let accounts: i64 =
                conn.query_row("SELECT count(*) FROM accounts WHERE domain_id = ?1", [id], |r| r.get(0))?;
            let aliases: i64 =
                conn.query_row("SELECT count(*) FROM aliases WHERE domain_id = ?1", [id], |r| r.get(0))?;
            if accounts + aliases > 0 {
                return Err(StoreError::Invalid(format!(
                    "domain {name} still has {accounts} accounts and {aliases} aliases; remove them first"
                )));
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
        self.read(move |conn| Ok(domain_id(conn, &name)?.is_some())).await
    }

    async fn add_account_with(&self, address: &str, secrets: &crate::Secrets) -> Result<AccountId> {
        let address = canonical(address)?;
        let secrets = secrets.clone();
        self.write(move |conn, _| {
            let domain = domain_of(&address);
            let domain_id = domain_id(conn, domain)?
                .ok_or_else(|| StoreError::Invalid(format!("{domain} is not a local domain; add it first")))?;
            let alias: Option<i64> =
                conn.query_row("SELECT id FROM aliases WHERE address = ?1", [&address], |r| r.get(0)).optional()?;
            if alias.is_some() {
                return Err(StoreError::Exists(format!("alias {address}")));
            }
            let created = now();
            match conn.execute(
                "INSERT INTO accounts (address, domain_id, password_hash, scram_sha256, cram_secret, created) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
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
            release_blobs(conn, effects, &blobs)?;
            conn.execute("DELETE FROM accounts WHERE id = ?1", [id])?;
            Ok(())
        })
        .await
    }

    async fn set_secrets(&self, address: &str, secrets: &crate::Secrets) -> Result<()> {
        let address = canonical(address)?;
        let secrets = secrets.clone();
        self.write(move |conn, _| {
            let n = conn.execute(
                "UPDATE accounts SET password_hash = ?2, scram_sha256 = ?3, cram_secret = ?4 WHERE address = ?1",
                params![address, secrets.password_hash, secrets.scram_sha256, secrets.cram_secret],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("account {address}")));
            }
            Ok(())
        })
        .await
    }

    async fn credentials(&self, address: &str) -> Result<Option<crate::Credentials>> {
        self.credentials_impl(address).await
    }

    async fn add_app_password(&self, address: &str, name: &str, hash: &str) -> Result<()> {
        self.add_app_password_impl(address, name, hash).await
    }

    async fn list_app_passwords(&self, address: &str) -> Result<Vec<crate::AppPassword>> {
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

    async fn aliases_of(&self, address: &str) -> Result<Vec<String>> {
        let Ok(address) = canonical(address) else { return Ok(Vec::new()) };
        self.read(move |conn| {
            let mut stmt = conn.prepare("SELECT address FROM aliases WHERE target = ?1 ORDER BY address")?;
            let rows = stmt.query_map([address], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
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

    async fn add_alias(&self, address: &str, target: &str) -> Result<()> {
        let address = canonical(address)?;
        let target = canonical(target)?;
        if address == target {
            return Err(StoreError::Invalid(format!("{address} cannot be an alias of itself")));
        }
        self.write(move |conn, _| {
            let domain = domain_of(&address);
            let domain_id = domain_id(conn, domain)?
                .ok_or_else(|| StoreError::Invalid(format!("{domain} is not a local domain; add it first")))?;
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

    fn blob_writer(&self) -> Result<BlobWriter> {
        Ok(BlobWriter::new(&self.inner.blob_root))
    }

    async fn deliver(&self, delivery: Delivery) -> Result<Vec<Delivered>> {
        if delivery.targets.is_empty() && delivery.outbound.as_ref().is_none_or(|o| o.rcpts.is_empty()) {
            return Err(StoreError::Invalid("a delivery needs at least one target".into()));
        }
        self.write(move |conn, effects| {
            let Delivery { mut blob, prefix, internal_date, targets, reference, trail, outbound } = delivery;
            let size = (blob.size() + prefix.len() as u64) as i64;
            conn.execute(
                "INSERT INTO blobs (id, size, refcount, data) VALUES (?1, ?2, 0, ?3)",
                params![blob.id(), blob.size() as i64, blob.inline.as_deref()],
            )?;
            let mut delivered: Vec<Delivered> = Vec::with_capacity(targets.len());
            for target in targets {
                let wanted = match target.folder {
                    Folder::Inbox => "INBOX",
                    Folder::Junk => "Junk",
                };
                let mut find = conn.prepare_cached("SELECT id FROM mailboxes WHERE account_id = ?1 AND name = ?2")?;
                let mailbox: MailboxId = match find.query_row(params![target.account, wanted], |r| r.get(0)).optional()? {
                    Some(id) => id,
                    None => find
                        .query_row(params![target.account, "INBOX"], |r| r.get(0))
                        .optional()?
                        .ok_or_else(|| StoreError::NotFound(format!("INBOX of account {}", target.account)))?,
                };
                if delivered.iter().any(|d| d.mailbox == mailbox) {
                    continue;
                }
                let (uid, modseq): (u32, i64) = conn.prepare_cached(
                    "UPDATE mailboxes SET uidnext = uidnext + 1, highestmodseq = highestmodseq + 1 \
                     WHERE id = ?1 RETURNING uidnext - 1, highestmodseq",
                )?
                .query_row([mailbox], |r| Ok((r.get(0)?, r.get(1)?)))?;
                conn.prepare_cached(
                    "INSERT INTO messages (mailbox_id, uid, blob_id, prefix, size, internal_date, modseq, reference, trail) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )?
                .execute(params![mailbox, uid, blob.id(), prefix, size, internal_date, modseq, reference, trail])?;
                effects.mailbox_changed(mailbox);
                delivered.push(Delivered { account: target.account, mailbox, uid });
            }
            let mut refs = delivered.len() as i64;
            if let Some(out) = &outbound {
                queue::insert(conn, &reference, blob.id(), blob.size() as i64, out)?;
                refs += 1;
            }
            conn.execute("UPDATE blobs SET refcount = ?2 WHERE id = ?1", params![blob.id(), refs])?;
            // Last, so that a failure above leaves the file where the savepoint rollback
            // forgets it; the directory fsync happens once for the whole batch.
            if let Some(dir) = blob.commit()? {
                effects.sync_dir(dir);
            }
            Ok(delivered)
        })
        .await
    }

    async fn mailboxes(&self, account: AccountId) -> Result<Vec<Mailbox>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT id, name, uidvalidity, uidnext, special_use, \
                 EXISTS (SELECT 1 FROM subscriptions s WHERE s.account_id = mailboxes.account_id AND s.name = mailboxes.name) \
                 FROM mailboxes WHERE account_id = ?1 ORDER BY id",
            )?;
            let rows = stmt
                .query_map([account], |r| {
                    Ok(Mailbox {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        uidvalidity: r.get(2)?,
                        uidnext: r.get(3)?,
                        special_use: r.get(4)?,
                        subscribed: r.get(5)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    async fn list_messages(&self, mailbox: MailboxId) -> Result<Vec<MessageMeta>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT uid, size, internal_date, flags, reference FROM messages WHERE mailbox_id = ?1 ORDER BY uid",
            )?;
            let rows = stmt
                .query_map([mailbox], |r| {
                    Ok(MessageMeta {
                        uid: r.get(0)?,
                        size: r.get::<_, i64>(1)? as u64,
                        internal_date: r.get(2)?,
                        flags: r.get(3)?,
                        reference: r.get(4)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    async fn read_message(&self, mailbox: MailboxId, uid: u32) -> Result<Vec<u8>> {
        let root = self.inner.blob_root.clone();
        self.read(move |conn| {
            let (prefix, blob_id): (Vec<u8>, String) = conn
                .query_row(
                    "SELECT prefix, blob_id FROM messages WHERE mailbox_id = ?1 AND uid = ?2",
                    params![mailbox, uid],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("message {uid} in mailbox {mailbox}")))?;
            let body = read_blob(conn, &root, &blob_id)?;
            let mut message = prefix;
            message.extend_from_slice(&body);
            Ok(message)
        })
        .await
    }

    async fn queue_due(&self, now: i64, limit: usize) -> Result<Vec<crate::QueueEntry>> {
        self.read(move |conn| queue::due(conn, now, limit)).await
    }

    async fn queue_list(&self) -> Result<Vec<crate::QueueEntry>> {
        self.read(|conn| queue::list(conn, None)).await
    }

    async fn queue_entry(&self, id: &str) -> Result<Option<crate::QueueEntry>> {
        let id = id.to_string();
        self.read(move |conn| Ok(queue::list(conn, Some(&id))?.pop())).await
    }

    async fn queue_message(&self, id: &str) -> Result<Vec<u8>> {
        let id = id.to_string();
        let root = self.inner.blob_root.clone();
        self.read(move |conn| {
            let (prefix, blob_id): (Vec<u8>, String) = conn
                .query_row("SELECT prefix, blob_id FROM queue WHERE id = ?1", [&id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?
                .ok_or_else(|| StoreError::NotFound(format!("queue entry {id}")))?;
            let body = read_blob(conn, &root, &blob_id)?;
            let mut message = prefix;
            message.extend_from_slice(&body);
            Ok(message)
        })
        .await
    }

    async fn queue_update(&self, updates: Vec<crate::RcptUpdate>) -> Result<()> {
        self.write(move |conn, effects| queue::update(conn, effects, &updates)).await
    }

    async fn queue_retry(&self, id: &str) -> Result<()> {
        let id = id.to_string();
        self.write(move |conn, _| {
            let n = conn.execute(
                "UPDATE queue_rcpts SET next_attempt = ?2 WHERE queue_id = ?1 AND state = 'pending'",
                params![id, now()],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("pending recipients in queue entry {id}")));
            }
            Ok(())
        })
        .await
    }

    async fn queue_delete(&self, id: &str) -> Result<()> {
        let id = id.to_string();
        self.write(move |conn, effects| queue::delete(conn, effects, &id)).await
    }

    async fn bans(&self) -> Result<Vec<crate::Ban>> {
        self.read(guard::bans).await
    }

    async fn ban_put(&self, ban: &crate::Ban) -> Result<()> {
        let ban = ban.clone();
        self.write(move |conn, _| guard::ban_put(conn, &ban)).await
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

    async fn known_login_put(&self, account: &str, net: &str, now: i64) -> Result<()> {
        let (account, net) = (account.to_string(), net.to_string());
        self.write(move |conn, _| {
            conn.execute(
                "INSERT INTO known_logins (account, net, last_seen) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (account, net) DO UPDATE SET last_seen = excluded.last_seen",
                params![account, net, now],
            )?;
            Ok(())
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

    async fn add_dkim_key(&self, key: crate::DkimKey) -> Result<bool> {
        self.write(move |conn, _| senderauth::add_dkim_key(conn, &key)).await
    }

    async fn dkim_keys(&self, domain: Option<&str>) -> Result<Vec<crate::DkimKey>> {
        let domain = domain.map(|d| d.trim_end_matches('.').to_ascii_lowercase());
        self.read(move |conn| senderauth::dkim_keys(conn, domain.as_deref())).await
    }

    async fn activate_dkim_key(&self, domain: &str, selector: &str) -> Result<()> {
        let (domain, selector) = (domain.to_ascii_lowercase(), selector.to_string());
        self.write(move |conn, _| senderauth::activate_dkim_key(conn, &domain, &selector)).await
    }

    async fn remove_dkim_key(&self, domain: &str, selector: &str) -> Result<()> {
        let (domain, selector) = (domain.to_ascii_lowercase(), selector.to_string());
        self.write(move |conn, _| {
            let n = conn.execute("DELETE FROM dkim_keys WHERE domain = ?1 AND selector = ?2", params![domain, selector])?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("DKIM key {selector}._domainkey.{domain}")));
            }
            Ok(())
        })
        .await
    }

    async fn add_dmarc_evaluation(&self, domain: &str, evaluation: &str) -> Result<()> {
        let (domain, evaluation) = (domain.to_ascii_lowercase(), evaluation.to_string());
        self.write(move |conn, _| {
            conn.execute(
                "INSERT INTO dmarc_evaluations (domain, evaluation, created) VALUES (?1, ?2, ?3)",
                params![domain, evaluation, now()],
            )?;
            Ok(())
        })
        .await
    }

    async fn dmarc_evaluations(&self, until: i64) -> Result<Vec<(String, String, i64)>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare("SELECT domain, evaluation, created FROM dmarc_evaluations WHERE created < ?1 ORDER BY id")?;
            let rows = stmt.query_map([until], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }

    async fn delete_dmarc_evaluations(&self, until: i64) -> Result<()> {
        self.write(move |conn, _| {
            conn.execute("DELETE FROM dmarc_evaluations WHERE created < ?1", [until])?;
            Ok(())
        })
        .await
    }

    async fn delete_dmarc_evaluations_of(&self, domain: &str, until: i64) -> Result<()> {
        let domain = domain.to_ascii_lowercase();
        self.write(move |conn, _| {
            conn.execute("DELETE FROM dmarc_evaluations WHERE domain = ?1 AND created < ?2", params![domain, until])?;
            Ok(())
        })
        .await
    }

    async fn add_dmarc_report(&self, report: crate::DmarcReport) -> Result<bool> {
        self.write(move |conn, _| senderauth::add_dmarc_report(conn, &report)).await
    }

    async fn dmarc_reports(&self) -> Result<Vec<crate::DmarcReport>> {
        self.read(senderauth::dmarc_reports).await
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

    async fn messages_by_reference(&self, reference: &str) -> Result<Vec<MessageInfo>> {
        let reference = reference.to_string();
        self.read(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT a.address || '/' || b.name, m.uid, m.size, m.internal_date, m.reference, m.trail \
                 FROM messages m JOIN mailboxes b ON m.mailbox_id = b.id JOIN accounts a ON b.account_id = a.id \
                 WHERE m.reference = ?1 ORDER BY m.id",
            )?;
            let rows = stmt
                .query_map([reference], |r| {
                    Ok(MessageInfo {
                        mailbox: r.get(0)?,
                        uid: r.get(1)?,
                        size: r.get::<_, i64>(2)? as u64,
                        internal_date: r.get(3)?,
                        reference: r.get(4)?,
                        trail: r.get(5)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            Ok(rows)
        })
        .await
    }
}

#[cfg(test)]
mod tests;
