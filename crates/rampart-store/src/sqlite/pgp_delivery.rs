//! Delivery to accounts with an OpenPGP key (issue 16): each such account gets its own copy,
//! a PGP/MIME message encrypted to its key (`rampart_pgp::encrypt`) in a blob of its own;
//! the other targets and the queue share the message as received. Mail already encrypted or
//! signed (PGP/MIME, S/MIME, inline PGP) is delivered as it is, byte for byte. A message
//! released from the quarantine gets the same treatment ([`SqliteStore::seal_held`]).
//!
//! Search (`crate::pgp::PlainSearch`): before encrypting, the store may make the copy's
//! summary with `Summarizer::summarize_encrypted` — ENVELOPE, BODYSTRUCTURE and the SORT
//! keys of the encrypted message as stored (what FETCH returns), the header values and words
//! SEARCH reads of the plaintext — and IMAP SEARCH then answers text criteria over the
//! message from that summary alone, a hit being final (it cannot confirm one by reading the
//! message, which the server cannot decrypt). That summary is as sensitive as the mail, so it
//! is kept only where it is as protected as the rest of the store: in server-key mode (the
//! SQLCipher database), and for an account in per-user mode, whose copy is then a per-user
//! copy too (the encrypted message sealed to the user's key, its summary sealed with it,
//! `sealed_summaries`, readable while the user is logged in). On a clear store it is kept
//! only when the key opted in (`pgp_keys.search`); otherwise the summary is the encrypted
//! message's, and SEARCH sees its outer header fields only.

use std::collections::HashMap;
use std::sync::Arc;


use super::{SqliteStore, pgp, userkeys};
use crate::keys::KEY_LEN;
use crate::pgp::{PgpKey, PlainSearch};
use crate::summary::Summary;
use super::writer::Effects;
use crate::{AccountId, Blob, Delivered, Delivery, DeliveryStore, Folder, QuarantineStore, Result, Target};

/// A copy for one account with a key (or a per-user copy, `super::userkeys`), ready for the
/// writer.
pub(super) struct Sealed {
    pub delivery: Delivery,
    pub summary: Option<Summary>,
    /// `summary` is a plaintext search summary in the database's tables: the background
    /// backfill leaves it alone (`summaries.plain`), since it could only remake it from the
    /// stored ciphertext and SEARCH would lose the plaintext for good.
    pub plain: bool,
}

impl Sealed {
    /// The writer's part: the copy's rows, as any delivery's.
    pub(super) fn store(self, conn: &rusqlite::Connection, effects: &mut Effects) -> Result<Vec<Delivered>> {
        let blob = self.delivery.blob.id().to_string();
        let delivered = super::delivery::deliver(conn, effects, self.delivery, self.summary, "")?;
        if self.plain {
            conn.prepare_cached("UPDATE summaries SET plain = 1 WHERE blob_id = ?1")?.execute([blob])?;
        }
        Ok(delivered)
    }
}

impl SqliteStore {
    /// Takes the targets of accounts with a key out of `delivery` and returns their
    /// encrypted copies. A copy that cannot be made (a key rPGP no longer reads) is logged and
    /// its targets stay in `delivery`: the mail is stored as received rather than lost.
    pub(super) async fn seal_for_keys(&self, delivery: &mut Delivery) -> Result<Vec<Sealed>> {
        let mut accounts: Vec<AccountId> = delivery.targets.iter().map(|t| t.account).collect();
        accounts.sort_unstable();
        accounts.dedup();
        if accounts.is_empty() {
            return Ok(Vec::new());
        }
        // On every delivery: a point lookup per account, on this thread (see `read_now`).
        let keys = self.read_now(|conn| self.keys_for(conn, &accounts))?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let body = Arc::new(delivery.blob.contents().await?);
        if let Some(kind) = rampart_pgp::protection(&body) {
            tracing::debug!(event = "pgp_untouched", id = %delivery.reference, protection = kind.as_str());
            return Ok(Vec::new());
        }
        let mut sealed = Vec::with_capacity(keys.len());
        for key in keys {
            let Some(copy) = self.sealed_copy(&body, &delivery.prefix, &key, &delivery.reference).await? else { continue };
            let targets = delivery.targets.extract_if(.., |t| t.account == key.key.account).collect();
            sealed.push(Sealed {
                delivery: Delivery {
                    blob: copy.blob,
                    prefix: copy.prefix,
                    internal_date: delivery.internal_date,
                    targets,
                    reference: delivery.reference.clone(),
                    trail: delivery.trail.clone(),
                    outbound: None,
                },
                summary: copy.summary,
                plain: copy.plain,
            });
        }
        Ok(sealed)
    }

    /// The encrypted copies of held message `id` for those of its waiting accounts (only
    /// `account` when given) that have a key: released, each goes to its account instead of
    /// the held message. Empty when nobody has a key or the message is already protected.
    pub(super) async fn seal_held(&self, id: &str, account: Option<AccountId>) -> Result<HashMap<AccountId, Sealed>> {
        let held = id.to_string();
        let this = self.clone();
        let keys = self
            .read(move |conn| {
                let waiting = super::quarantine::waiting_for(conn, &held, account)?;
                this.keys_for(conn, &waiting)
            })
            .await?;
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        // The held prefix (our trace fields) goes inside the blob: `encrypt` keeps it outside.
        let message = Arc::new(self.held_message(id).await?);
        if rampart_pgp::protection(&message).is_some() {
            return Ok(HashMap::new());
        }
        let mut sealed = HashMap::new();
        for key in keys {
            let Some(copy) = self.sealed_copy(&message, &[], &key, id).await? else { continue };
            let target = Target { account: key.key.account, folder: Folder::Inbox };
            // The date and the trail are the held row's, set when the writer reads it.
            let delivery =
                Delivery { blob: copy.blob, prefix: copy.prefix, internal_date: 0, targets: vec![target], reference: id.to_string(), trail: String::new(), outbound: None };
            sealed.insert(key.key.account, Sealed { delivery, summary: copy.summary, plain: copy.plain });
        }
        Ok(sealed)
    }

    /// The keys of those of `accounts` that have one, each with where its plaintext search
    /// summary may be kept.
    fn keys_for(&self, conn: &rusqlite::Connection, accounts: &[AccountId]) -> Result<Vec<Keyed>> {
        let encrypted = self.database_encrypted();
        pgp::keys_for(conn, accounts)?
            .into_iter()
            .map(|key| {
                let user = userkeys::public_of(conn, key.account)?;
                let search = plain_search(encrypted, user.is_some(), &key);
                Ok(Keyed { key, user, search })
            })
            .collect()
    }

    /// `message` encrypted to `key` in a blob of its own, with its summary (`prefix` is what
    /// IMAP will read before it): for an account in per-user mode, a per-user copy (prefix
    /// inside, summary sealed in the blob). None, logged, when the key cannot be used: the
    /// caller stores the message as received.
    async fn sealed_copy(&self, message: &Arc<Vec<u8>>, prefix: &[u8], keyed: &Keyed, reference: &str) -> Result<Option<Copy>> {
        let key = &keyed.key;
        let Some(bytes) = crate::pgp::encrypt_for(message, key, reference).await else { return Ok(None) };
        let stored = super::joined(prefix, &bytes);
        let summary = match keyed.search.is_on() {
            true => self.summarize_encrypted(super::joined(prefix, message), stored.clone()).await,
            false => self.summarize_message(stored.clone()).await,
        };
        tracing::debug!(event = "pgp_encrypted", id = %reference, user = %key.address, search = keyed.search.is_on());
        if let Some(public) = keyed.user {
            let blob = self.sealed_with(key.account, public, &stored, summary).await?;
            return Ok(Some(Copy { blob, prefix: Vec::new(), summary: None, plain: false }));
        }
        drop(stored);
        let mut writer = self.blob_writer()?;
        writer.write(&bytes).await?;
        let blob = writer.finish().await?;
        let plain = keyed.search.is_on() && summary.is_some();
        Ok(Some(Copy { blob, prefix: prefix.to_vec(), summary, plain }))
    }
}

/// A key, the public key of its account when that is in per-user mode, and where the
/// plaintext search summary of its mail goes.
pub(super) struct Keyed {
    key: PgpKey,
    user: Option<[u8; KEY_LEN]>,
    search: PlainSearch,
}

/// One encrypted copy: its blob, the prefix IMAP reads before it, its summary for the
/// database's tables (None for a per-user copy, whose summary is sealed in the blob) and
/// whether that is a plaintext search summary ([`Sealed::plain`]).
struct Copy {
    blob: Blob,
    prefix: Vec<u8>,
    summary: Option<Summary>,
    plain: bool,
}

/// The rule of [`PlainSearch`] on SQLite: per-user mode, then an encrypted database, then
/// the key's opt-in.
pub(super) fn plain_search(encrypted_db: bool, per_user: bool, key: &PgpKey) -> PlainSearch {
    if per_user {
        PlainSearch::SealedForUser
    } else if encrypted_db {
        PlainSearch::EncryptedDatabase
    } else {
        PlainSearch::clear(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_search_only_where_the_store_protects_it() {
        let key = |search| PgpKey { account: 1, address: "a@x.test".into(), key: vec![], fingerprint: String::new(), protect_subject: false, publish: true, search, updated: 0 };
        for search in [false, true] {
            assert_eq!(plain_search(false, true, &key(search)), PlainSearch::SealedForUser);
            assert_eq!(plain_search(true, true, &key(search)), PlainSearch::SealedForUser);
            assert_eq!(plain_search(true, false, &key(search)), PlainSearch::EncryptedDatabase);
        }
        assert_eq!(plain_search(false, false, &key(false)), PlainSearch::Off);
        assert_eq!(plain_search(false, false, &key(true)), PlainSearch::ClearOptedIn);
    }
}
