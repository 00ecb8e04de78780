//! Delivery to accounts with an OpenPGP key on PostgreSQL, as `sqlite::pgp_delivery` does it:
//! each such account gets its own copy, a PGP/MIME message encrypted to its key, in a body of
//! its own; the other targets and the queue share the message as received; mail already
//! protected is delivered as it is. The copies are made before the delivery's transaction
//! (encryption is slow, and no row is locked meanwhile) and stored in it.
//!
//! Search (`crate::pgp::PlainSearch`): PostgreSQL has no encryption at rest, so a copy's
//! summary is made from its plaintext (`Summarizer::summarize_encrypted`: the header values
//! and words IMAP SEARCH answers from, finally) only when the key opted in
//! (`pgp_keys.search`); otherwise from the encrypted message, whose outer header fields are
//! then all SEARCH sees.

use std::collections::HashMap;
use std::sync::Arc;


use super::{PgStore, pgp};
use crate::pgp::PgpKey;
use crate::summary::Summary;
use crate::{AccountId, Blob, Delivery, DeliveryStore, Folder, QuarantineStore, Result, Target};

/// A copy for one account with a key, ready for the transaction.
pub(super) struct Sealed {
    pub delivery: Delivery,
    pub summary: Option<Summary>,
}

impl PgStore {
    /// Takes the targets of accounts with a key out of `delivery` and returns their encrypted
    /// copies. A copy that cannot be made is logged and its targets stay in `delivery`.
    pub(super) async fn seal_for_keys(&self, delivery: &mut Delivery) -> Result<Vec<Sealed>> {
        let mut accounts: Vec<AccountId> = delivery.targets.iter().map(|t| t.account).collect();
        accounts.sort_unstable();
        accounts.dedup();
        if accounts.is_empty() {
            return Ok(Vec::new());
        }
        let keys = pgp::keys_for(&self.conn().await?, &accounts).await?;
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
            let copy = Delivery {
                blob,
                prefix: delivery.prefix.clone(),
                internal_date: delivery.internal_date,
                targets,
                reference: delivery.reference.clone(),
                trail: delivery.trail.clone(),
                outbound: None,
            };
            sealed.push(Sealed { delivery: copy, summary });
        }
        Ok(sealed)
    }

    /// The encrypted copies of held message `id` for those of its waiting accounts (only
    /// `account` when given) that have a key.
    pub(super) async fn seal_held(&self, id: &str, account: Option<AccountId>) -> Result<HashMap<AccountId, Sealed>> {
        let conn = self.conn().await?;
        let waiting: Vec<AccountId> = conn
            .query("SELECT account_id FROM quarantine_rcpts WHERE quarantine_id = $1 ORDER BY account_id", &[&id])
            .await?
            .iter()
            .map(|r| r.get(0))
            .filter(|a| account.is_none_or(|only| only == *a))
            .collect();
        let keys = pgp::keys_for(&conn, &waiting).await?;
        drop(conn);
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        // The held prefix (our trace fields) goes inside the body: `encrypt` keeps it outside.
        let message = Arc::new(self.held_message(id).await?);
        if rampart_pgp::protection(&message).is_some() {
            return Ok(HashMap::new());
        }
        let mut sealed = HashMap::new();
        for key in keys {
            let Some((blob, summary)) = self.sealed_copy(&message, &[], &key, id).await? else { continue };
            let target = Target { account: key.account, folder: Folder::Inbox };
            // The date and the trail are the held row's, set in the release's transaction.
            let delivery = Delivery { blob, prefix: Vec::new(), internal_date: 0, targets: vec![target], reference: id.to_string(), trail: String::new(), outbound: None };
            sealed.insert(key.account, Sealed { delivery, summary });
        }
        Ok(sealed)
    }

    /// `message` encrypted to `key` in a body of its own, with its summary; None, logged,
    /// when the key cannot be used.
    async fn sealed_copy(&self, message: &Arc<Vec<u8>>, prefix: &[u8], key: &PgpKey, reference: &str) -> Result<Option<(Blob, Option<Summary>)>> {
        let Some(bytes) = crate::pgp::encrypt_for(message, key, reference).await else { return Ok(None) };
        let summary = match self.shared.summarizer.get() {
            Some(s) => {
                let (s, whole) = (s.clone(), crate::sqlite::joined(prefix, &bytes));
                let plain = crate::pgp::PlainSearch::clear(key).is_on().then(|| crate::sqlite::joined(prefix, message));
                tokio::task::spawn_blocking(move || match plain {
                    Some(plain) => s.summarize_encrypted(&plain, &whole),
                    None => s.summarize(&whole),
                })
                .await
                .ok()
            }
            None => None,
        };
        let mut writer = self.blob_writer()?;
        writer.write(&bytes).await?;
        let blob = writer.finish().await?;
        tracing::debug!(event = "pgp_encrypted", id = %reference, user = %key.address);
        Ok(Some((blob, summary)))
    }
}
