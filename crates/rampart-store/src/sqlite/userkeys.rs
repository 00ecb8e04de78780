//! [`UserKeyStore`] for SQLite, delivery of per-user copies, and the secret keys held while
//! their users are logged in.
//!
//! Delivery to an account in per-user mode writes a copy of its own: prefix and body in one
//! sealed file whose data key is sealed to the account's public key (`blobs.owner` names the
//! account, `blobs.dkey` holds the sealed key), never kept inline in the database (which may
//! be clear), with no clear summary and no words in the shared index — nothing derived from
//! the content reaches the database in clear. Its summary and words are sealed with its data
//! key (`sealed_summaries`, [`super::sealed`]) and read while the user is logged in.
//!
//! The unlocked secret keys live in one process-wide table keyed by public key, each with a
//! count of the [`Unlocked`] guards holding it (one per logged-in session); the last guard
//! dropped forgets (and zeroizes) the key.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use zeroize::Zeroizing;

use super::pgp_delivery::Sealed;
use super::{SqliteStore, now};
use crate::blob::BlobWriter;
use crate::keys::KEY_LEN;
use crate::peruser::{self, SecretKey, UnlockKey};
use crate::userkey::{PASSWORD, RECOVERY, UserKeyStatus, UserKeyStore};
use crate::summary::Summary;
use crate::{AccountId, Blob, Delivery, MailboxId, Result, StoreError, Unlocked};

/// A secret key held by logins: the key, how many guards hold it, and the sealed summaries
/// opened with it ([`super::sealed`]), which go with the key.
struct HeldKey {
    key: Arc<SecretKey>,
    guards: usize,
    opened: Opened,
}

/// Sealed summaries opened while their user is logged in: by `sealed_summaries.id`, with the
/// blob id they belong to (an id freed by a deletion may be given again).
pub(crate) type Opened = Arc<Mutex<HashMap<i64, (String, Arc<Summary>)>>>;

type Held = HashMap<[u8; KEY_LEN], HeldKey>;

static UNLOCKED: LazyLock<Mutex<Held>> = LazyLock::new(Mutex::default);

/// Moves whenever a user's key becomes held or is forgotten: in-memory copies of summaries
/// (IMAP's column cache) check it with the store's own generation, so what was read while a
/// user was logged out is read again once the sealed summaries open, and what they opened is
/// not served after the last session ends.
static GENERATION: AtomicU64 = AtomicU64::new(0);

pub(crate) fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

fn table() -> std::sync::MutexGuard<'static, Held> {
    UNLOCKED.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn hold(key: SecretKey) -> Unlocked {
    let public = key.public();
    let mut table = table();
    match table.get_mut(&public) {
        Some(e) => e.guards += 1,
        None => {
            table.insert(public, HeldKey { key: Arc::new(key), guards: 1, opened: Opened::default() });
            GENERATION.fetch_add(1, Ordering::AcqRel);
        }
    }
    Unlocked { public }
}

fn held(public: &[u8; KEY_LEN]) -> Option<Arc<SecretKey>> {
    table().get(public).map(|e| e.key.clone())
}

/// `account`'s secret key and its opened summaries, when a login holds it.
pub(crate) fn held_for(conn: &Connection, account: AccountId) -> Result<Option<(Arc<SecretKey>, Opened)>> {
    let Some(public) = public_of(conn, account)? else { return Ok(None) };
    Ok(table().get(&public).map(|e| (e.key.clone(), e.opened.clone())))
}

/// One guard of `public` dropped.
pub(crate) fn release(public: &[u8; KEY_LEN]) {
    let mut table = table();
    if let Some(entry) = table.get_mut(public) {
        entry.guards -= 1;
        if entry.guards == 0 {
            table.remove(public);
            GENERATION.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// What a wrap's associated data is: the account and the wrap's name.
fn wrap_name(account: AccountId, wrap: &str) -> Vec<u8> {
    format!("{account} {wrap}").into_bytes()
}

pub(super) fn public_of(conn: &Connection, account: AccountId) -> Result<Option<[u8; KEY_LEN]>> {
    let public: Option<Vec<u8>> =
        conn.prepare_cached("SELECT public FROM user_keys WHERE account_id = ?1")?.query_row([account], |r| r.get(0)).optional()?;
    Ok(public.and_then(|p| p.try_into().ok()))
}

/// Messages converted per commit.
const CONVERT_BATCH: i64 = 16;

/// A message to convert: message id, mailbox, prefix, blob id.
type Unconverted = (i64, MailboxId, Vec<u8>, String);

/// The next messages of `account` after message id `after` whose blob is not sealed to it.
fn unconverted(conn: &Connection, account: AccountId, after: i64) -> Result<Vec<Unconverted>> {
    Ok(conn
        .prepare_cached(
            "SELECT m.id, m.mailbox_id, m.prefix, m.blob_id FROM messages m JOIN mailboxes x ON x.id = m.mailbox_id \
             JOIN blobs b ON b.id = m.blob_id WHERE x.account_id = ?1 AND b.owner IS NULL AND m.id > ?2 ORDER BY m.id LIMIT ?3",
        )?
        .query_map(params![account, after, CONVERT_BATCH], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?)
}

/// Points each message at its sealed copy (prefix inside the copy, no summary, no words) and
/// drops its reference to the old blob; a message deleted meanwhile keeps nothing of its copy.
/// Returns how many were converted.
fn replace_blobs(conn: &Connection, effects: &mut super::writer::Effects, account: AccountId, copies: Vec<(i64, MailboxId, String, Blob)>) -> Result<u64> {
    // What the conversion deletes (summary rows, small bodies kept in rows) is overwritten
    // with zeros rather than left in free pages; only for this job's statements.
    conn.pragma_update(None, "secure_delete", true)?;
    let result = replace_each(conn, effects, account, copies);
    conn.pragma_update(None, "secure_delete", false)?;
    result
}

fn replace_each(conn: &Connection, effects: &mut super::writer::Effects, account: AccountId, copies: Vec<(i64, MailboxId, String, Blob)>) -> Result<u64> {
    let mut done = 0;
    for (id, mailbox, old, mut blob) in copies {
        super::insert_blob(conn, effects, &blob, 1)?;
        let moved = conn
            .prepare_cached("UPDATE messages SET blob_id = ?1, prefix = x'', summary = NULL WHERE id = ?2 AND blob_id = ?3")?
            .execute(params![blob.id(), id, old])?;
        if moved == 0 {
            conn.prepare_cached("DELETE FROM blobs WHERE id = ?1")?.execute([blob.id()])?;
            continue;
        }
        effects.place_blob(&mut blob)?;
        // The words first: they are found through the old blob's summary, which the release
        // deletes with the blob's last reference.
        super::summaries::forget_words(conn, account, [old.as_str()])?;
        super::release_blobs(conn, effects, &[(old.clone(), 1)])?;
        effects.mailbox_changed(mailbox);
        done += 1;
    }
    Ok(done)
}

/// After a conversion: merges the full-text index's segments, so the words of the converted
/// messages (deleted documents stay in a contentless index's segments as tombstones until a
/// merge) leave the database; with `secure_delete` the freed pages are zeroed. It rewrites
/// the whole index (every account's), once per conversion that changed something.
fn purge_words(conn: &Connection) -> Result<()> {
    conn.pragma_update(None, "secure_delete", true)?;
    let result = conn.execute("INSERT INTO words (words) VALUES ('optimize')", []).map(drop).map_err(Into::into);
    conn.pragma_update(None, "secure_delete", false)?;
    result
}

/// The data key of blob `blob_id`, a per-user copy of `owner`'s: Locked unless a login of
/// the owner holds the secret key.
pub(crate) fn open_data_key(conn: &Connection, owner: AccountId, sealed: &[u8], blob_id: &str) -> Result<Zeroizing<[u8; KEY_LEN]>> {
    let public = public_of(conn, owner)?.ok_or(StoreError::Locked(owner))?;
    let key = held(&public).ok_or(StoreError::Locked(owner))?;
    key.open_sealed(sealed, blob_id.as_bytes()).map_err(|_| StoreError::PerUser(format!("the data key of blob {blob_id} does not open")))
}

fn unwrap(conn: &Connection, account: AccountId, wrap: &str, key: &UnlockKey) -> Result<Option<SecretKey>> {
    let wrapped: Option<Vec<u8>> = conn
        .prepare_cached("SELECT wrapped FROM user_key_wraps WHERE account_id = ?1 AND name = ?2")?
        .query_row(params![account, wrap], |r| r.get(0))
        .optional()?;
    let Some(wrapped) = wrapped else { return Ok(None) };
    SecretKey::unwrap(&wrapped, key, &wrap_name(account, wrap)).map(Some).map_err(|_| StoreError::PerUser(format!("the {wrap} wrap does not open with this secret")))
}

fn put_wrap(conn: &Connection, account: AccountId, wrap: &str, key: &SecretKey, unlock: &UnlockKey) -> Result<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO user_key_wraps (account_id, name, wrapped) VALUES (?1, ?2, ?3)")?
        .execute(params![account, wrap, key.wrap(unlock, &wrap_name(account, wrap))])?;
    Ok(())
}

#[async_trait]
impl UserKeyStore for SqliteStore {
    async fn has_user_key(&self, account: AccountId) -> Result<bool> {
        self.read_now(|conn| Ok(public_of(conn, account)?.is_some()))
    }

    async fn user_key_status(&self, account: AccountId) -> Result<Option<UserKeyStatus>> {
        self.read(move |conn| {
            let Some(enabled): Option<i64> =
                conn.query_row("SELECT enabled FROM user_keys WHERE account_id = ?1", [account], |r| r.get(0)).optional()?
            else {
                return Ok(None);
            };
            let wraps = conn
                .prepare("SELECT name FROM user_key_wraps WHERE account_id = ?1 ORDER BY name")?
                .query_map([account], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let unconverted: i64 = conn.query_row(
                "SELECT count(*) FROM messages m JOIN mailboxes x ON x.id = m.mailbox_id JOIN blobs b ON b.id = m.blob_id \
                 WHERE x.account_id = ?1 AND b.owner IS NULL",
                [account],
                |r| r.get(0),
            )?;
            let unlocked = public_of(conn, account)?.is_some_and(|p| held(&p).is_some());
            Ok(Some(UserKeyStatus { enabled, wraps, unlocked, unconverted: unconverted as u64 }))
        })
        .await
    }

    async fn enable_user_key(&self, account: AccountId, password: UnlockKey) -> Result<Zeroizing<String>> {
        let code = peruser::recovery_code();
        let recovery = peruser::unlock_from_text(&code);
        self.write(move |conn, _| {
            if public_of(conn, account)?.is_some() {
                return Err(StoreError::PerUser("per-user encryption is already on for this account".into()));
            }
            let key = SecretKey::generate();
            conn.prepare_cached("INSERT INTO user_keys (account_id, public, enabled) VALUES (?1, ?2, ?3)")?
                .execute(params![account, key.public().to_vec(), now()])?;
            put_wrap(conn, account, PASSWORD, &key, &password)?;
            put_wrap(conn, account, RECOVERY, &key, &recovery)?;
            Ok(())
        })
        .await?;
        Ok(code)
    }

    async fn convert_user_messages(&self, account: AccountId) -> Result<u64> {
        let Some(public) = self.read_now(|conn| public_of(conn, account))? else { return Ok(0) };
        let (mut after, mut done) = (0i64, 0u64);
        loop {
            let batch = self.read(move |conn| unconverted(conn, account, after)).await?;
            let Some(last) = batch.last().map(|m| m.0) else {
                if done > 0 {
                    self.write(|conn, _| purge_words(conn)).await?;
                }
                return Ok(done);
            };
            after = last;
            let mut copies = Vec::with_capacity(batch.len());
            // One message in memory at a time (up to the size limit each).
            for (id, mailbox, prefix, old) in batch {
                let (root, keys, blob) = (self.inner.blob_root.clone(), self.inner.keys.clone(), old.clone());
                let message = match self.read(move |conn| super::read_stored(conn, keys.get().as_deref(), &root, prefix, &blob)).await {
                    Ok(m) => m,
                    // Expunged since it was listed (or unreadable): `status` still counts what is
                    // left, and a later run tries again.
                    Err(e) => {
                        tracing::warn!(event = "user_encryption_convert_skipped", account, message = id, error = %e.chain());
                        continue;
                    }
                };
                copies.push((id, mailbox, old, self.sealed_for(account, public, &message).await?));
            }
            done += self.write(move |conn, effects| replace_blobs(conn, effects, account, copies)).await?;
            self.summaries_changed();
        }
    }

    async fn unlock_user_key(&self, account: AccountId, wrap: &str, key: UnlockKey) -> Result<Option<Unlocked>> {
        let wrap = wrap.to_string();
        self.read(move |conn| {
            if public_of(conn, account)?.is_none() {
                return Ok(None);
            }
            let secret = unwrap(conn, account, &wrap, &key)?.ok_or_else(|| StoreError::PerUser(format!("the account has no {wrap} wrap: its mail needs the recovery code")))?;
            Ok(Some(hold(secret)))
        })
        .await
    }

    async fn add_user_key_wrap(&self, account: AccountId, wrap: &str, key: UnlockKey, opener: Option<(String, UnlockKey)>) -> Result<bool> {
        let wrap = wrap.to_string();
        self.write(move |conn, _| {
            let Some(public) = public_of(conn, account)? else { return Ok(false) };
            let secret = match &opener {
                Some((name, unlock)) => Arc::new(unwrap(conn, account, name, unlock)?.ok_or_else(|| StoreError::PerUser(format!("no {name} wrap")))?),
                None => held(&public).ok_or(StoreError::Locked(account))?,
            };
            put_wrap(conn, account, &wrap, &secret, &key)?;
            Ok(true)
        })
        .await
    }

    async fn remove_user_key_wrap(&self, account: AccountId, wrap: &str) -> Result<()> {
        let wrap = wrap.to_string();
        self.write(move |conn, _| {
            conn.prepare_cached("DELETE FROM user_key_wraps WHERE account_id = ?1 AND name = ?2")?.execute(params![account, wrap])?;
            Ok(())
        })
        .await
    }
}

impl SqliteStore {
    /// `message` in a file of its own sealed to `account`'s public key.
    /// Its summary (and words) are kept with it, sealed with its data key
    /// ([`crate::sealsummary`]): made here from the plaintext, which needs no secret.
    async fn sealed_for(&self, account: AccountId, public: [u8; KEY_LEN], message: &[u8]) -> Result<Blob> {
        let summary = self.summarize_message(message.to_vec()).await;
        self.sealed_with(account, public, message, summary).await
    }

    /// `message` in a file of its own sealed to `account`'s public key, with `summary` sealed
    /// beside it (an OpenPGP copy's is made from its plaintext, `super::pgp_delivery`).
    pub(super) async fn sealed_with(&self, account: AccountId, public: [u8; KEY_LEN], message: &[u8], summary: Option<Summary>) -> Result<Blob> {
        let mut writer = BlobWriter::for_user(&self.inner.blob_root, account, public);
        writer.write(message).await?;
        let mut blob = writer.finish().await?;
        if let Some(summary) = summary {
            blob.seal_summary(&summary);
        }
        Ok(blob)
    }

    /// The account and public key of `mailbox`'s owner when that account is in per-user mode.
    fn user_key_of_mailbox(&self, mailbox: MailboxId) -> Result<Option<(AccountId, [u8; KEY_LEN])>> {
        self.read_now(|conn| {
            let account: Option<AccountId> =
                conn.prepare_cached("SELECT account_id FROM mailboxes WHERE id = ?1")?.query_row([mailbox], |r| r.get(0)).optional()?;
            let Some(account) = account else { return Ok(None) };
            Ok(public_of(conn, account)?.map(|public| (account, public)))
        })
    }

    /// A message appended to a mailbox (IMAP APPEND and CATENATE — a client's Sent and Drafts
    /// copies —, imports): for an account in per-user mode, replaced by a copy sealed to its
    /// key, with no summary (see the module doc); otherwise as it is, with its summary.
    pub(super) async fn appended(&self, mailbox: MailboxId, blob: Blob) -> Result<(Blob, Option<Summary>)> {
        match self.user_key_of_mailbox(mailbox)? {
            Some((account, public)) => {
                let message = blob.contents().await?;
                drop(blob);
                Ok((self.sealed_for(account, public, &message).await?, None))
            }
            None => {
                let summary = self.summarize(&[], &blob).await;
                Ok((blob, summary))
            }
        }
    }

    /// Takes the targets of accounts in per-user mode out of `delivery` and returns their
    /// copies, each sealed to its account's public key (no secret needed: delivery works
    /// while the user is logged out).
    pub(super) async fn seal_for_users(&self, delivery: &mut Delivery) -> Result<Vec<Sealed>> {
        let mut accounts: Vec<AccountId> = delivery.targets.iter().map(|t| t.account).collect();
        accounts.sort_unstable();
        accounts.dedup();
        if accounts.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<(AccountId, [u8; KEY_LEN])> = self.read_now(|conn| {
            let mut out = Vec::new();
            for account in &accounts {
                if let Some(public) = public_of(conn, *account)? {
                    out.push((*account, public));
                }
            }
            Ok(out)
        })?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let message = super::joined(&delivery.prefix, &delivery.blob.contents().await?);
        let mut sealed = Vec::with_capacity(keys.len());
        for (account, public) in keys {
            let blob = self.sealed_for(account, public, &message).await?;
            let targets = delivery.targets.extract_if(.., |t| t.account == account).collect();
            let copy = Delivery {
                blob,
                // The trace fields go inside the sealed file, like the rest of the message.
                prefix: Vec::new(),
                internal_date: delivery.internal_date,
                targets,
                reference: delivery.reference.clone(),
                trail: delivery.trail.clone(),
                outbound: None,
            };
            sealed.push(Sealed { delivery: copy, summary: None, plain: false });
        }
        Ok(sealed)
    }
}
