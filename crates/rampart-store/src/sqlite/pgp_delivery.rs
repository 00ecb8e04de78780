//! Delivery to accounts with an OpenPGP key (issue 16): each such account gets its own copy,
//! a PGP/MIME message encrypted to its key (`rampart_pgp::encrypt`) in a blob of its own;
//! the other targets and the queue share the message as received. Mail already encrypted or
//! signed (PGP/MIME, S/MIME, inline PGP) is delivered as it is, byte for byte.
//!
//! Search: the copy's summary is made from the encrypted message as stored, in every
//! encryption mode, so ENVELOPE and BODYSTRUCTURE describe what FETCH returns and nothing of
//! the plaintext but the outer header fields reaches the database. Indexing the plaintext's
//! words (in server-key mode, inside SQLCipher) would not help: IMAP SEARCH confirms every
//! index hit by reading the stored message, which the server cannot decrypt.

use std::sync::Arc;

use rampart_pgp::UserKey;

use super::{SqliteStore, pgp};
use crate::summary::Summary;
use crate::{AccountId, Delivery, DeliveryStore, Result};

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
        let keys = self.read(move |conn| pgp::keys_for(conn, &accounts)).await?;
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
            let (source, stored, protect) = (body.clone(), key.key, key.protect_subject);
            let encrypted = tokio::task::spawn_blocking(move || {
                let key = UserKey::parse(&stored).map_err(|e| e.to_string())?;
                rampart_pgp::encrypt(&source, &key, protect).map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
            let bytes = match encrypted {
                Ok(bytes) => bytes,
                Err(error) => {
                    tracing::warn!(event = "pgp_encrypt_failed", id = %delivery.reference, user = %key.address, error = %error);
                    continue;
                }
            };
            let summary = self.summarize_bytes(&delivery.prefix, &bytes).await;
            let mut writer = self.blob_writer()?;
            writer.write(&bytes).await?;
            let blob = writer.finish().await?;
            let targets = delivery.targets.extract_if(.., |t| t.account == key.account).collect();
            tracing::debug!(event = "pgp_encrypted", id = %delivery.reference, user = %key.address);
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

    /// The summary of `prefix` + `body`, made on the blocking pool; None without a summarizer.
    async fn summarize_bytes(&self, prefix: &[u8], body: &[u8]) -> Option<Summary> {
        let summarizer = self.inner.summarizer.get()?.clone();
        let mut message = Vec::with_capacity(prefix.len() + body.len());
        message.extend_from_slice(prefix);
        message.extend_from_slice(body);
        tokio::task::spawn_blocking(move || summarizer.summarize(&message)).await.ok()
    }
}
