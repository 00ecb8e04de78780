//! Delivery to accounts with an OpenPGP key (issue 16): each such account gets its own copy,
//! a PGP/MIME message encrypted to its key (`rampart_pgp::encrypt`) in a blob of its own;
//! the other targets and the queue share the message as received. Mail already encrypted or
//! signed (PGP/MIME, S/MIME, inline PGP) is delivered as it is, byte for byte. A message
//! released from the quarantine gets the same treatment ([`SqliteStore::seal_held`]).
//!
//! Search: the copy's summary is made from the encrypted message as stored, in every
//! encryption mode, so ENVELOPE and BODYSTRUCTURE describe what FETCH returns and nothing of
//! the plaintext but the outer header fields reaches the database. Indexing the plaintext's
//! words (in server-key mode, inside SQLCipher) would not help: IMAP SEARCH confirms every
//! index hit by reading the stored message, which the server cannot decrypt.

use std::collections::HashMap;
use std::sync::Arc;


use super::{SqliteStore, pgp};
use crate::pgp::PgpKey;
use crate::summary::Summary;
use crate::{AccountId, Blob, Delivery, DeliveryStore, Folder, QuarantineStore, Result, Target};

/// A copy for one account with a key, ready for the writer.
pub(super) struct Sealed {
    pub delivery: Delivery,
    pub summary: Option<Summary>,
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
        let keys = self.read_now(|conn| pgp::keys_for(conn, &accounts))?;
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
            let Some((blob, summary)) = self.sealed_copy(&body, &delivery.prefix, &key, &delivery.reference).await? else { continue };
            let targets = delivery.targets.extract_if(.., |t| t.account == key.account).collect();
            sealed.push(Sealed {
                delivery: Delivery {
                    blob,
                    prefix: delivery.prefix.clone(),
                    internal_date: delivery.internal_date,
                    targets,
                    reference: delivery.reference.clone(),
                    trail: delivery.trail.clone(),
                    outbound: None,
                },
                summary,
            });
        }
        Ok(sealed)
    }

    /// The encrypted copies of held message `id` for those of its waiting accounts (only
    /// `account` when given) that have a key: released, each goes to its account instead of
    /// the held message. Empty when nobody has a key or the message is already protected.
    pub(super) async fn seal_held(&self, id: &str, account: Option<AccountId>) -> Result<HashMap<AccountId, Sealed>> {
        let held = id.to_string();
        let keys = self
            .read(move |conn| {
                let waiting = super::quarantine::waiting_for(conn, &held, account)?;
                pgp::keys_for(conn, &waiting)
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
            let Some((blob, summary)) = self.sealed_copy(&message, &[], &key, id).await? else { continue };
            let target = Target { account: key.account, folder: Folder::Inbox };
            // The date and the trail are the held row's, set when the writer reads it.
            let delivery = Delivery { blob, prefix: Vec::new(), internal_date: 0, targets: vec![target], reference: id.to_string(), trail: String::new(), outbound: None };
            sealed.insert(key.account, Sealed { delivery, summary });
        }
        Ok(sealed)
    }

    /// `message` encrypted to `key` in a blob of its own, with its summary (`prefix` is what
    /// IMAP will read before it). None, logged, when the key cannot be used: the caller
    /// stores the message as received.
    async fn sealed_copy(&self, message: &Arc<Vec<u8>>, prefix: &[u8], key: &PgpKey, reference: &str) -> Result<Option<(Blob, Option<Summary>)>> {
        let Some(bytes) = crate::pgp::encrypt_for(message, key, reference).await else { return Ok(None) };
        let summary = self.summarize_message(super::joined(prefix, &bytes)).await;
        let mut writer = self.blob_writer()?;
        writer.write(&bytes).await?;
        let blob = writer.finish().await?;
        tracing::debug!(event = "pgp_encrypted", id = %reference, user = %key.address);
        Ok(Some((blob, summary)))
    }
}
