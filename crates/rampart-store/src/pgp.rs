//! The OpenPGP role: users' public keys (issue 16). Delivery reads them itself
//! (`sqlite::pgp_delivery`); the CLI, the admin API and the Web Key Directory use this trait.

use async_trait::async_trait;

use crate::{AccountId, Result};

/// One account's key and its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgpKey {
    pub account: AccountId,
    pub address: String,
    /// The key in binary OpenPGP form, as `rampart_pgp::UserKey::to_binary` made it.
    pub key: Vec<u8>,
    pub fingerprint: String,
    /// Subject (and the other header fields) inside the encrypted part, `...` outside.
    pub protect_subject: bool,
    /// Served by the Web Key Directory.
    pub publish: bool,
    /// Unix seconds of the last `set`.
    pub updated: i64,
}

/// What `set` stores; the key was checked by the caller (`rampart_pgp::UserKey::check`).
#[derive(Debug, Clone)]
pub struct NewPgpKey {
    pub key: Vec<u8>,
    pub fingerprint: String,
    pub protect_subject: bool,
    pub publish: bool,
}

impl NewPgpKey {
    /// A key (armored or binary) after `rampart_pgp::UserKey::check` accepted it for
    /// `address` now: the one check the CLI and the API both run.
    pub fn checked(bytes: &[u8], address: &str, protect_subject: bool, publish: bool) -> Result<NewPgpKey, rampart_pgp::KeyError> {
        let address = crate::address::canonical(address).unwrap_or_else(|_| address.to_ascii_lowercase());
        let key = rampart_pgp::UserKey::check(bytes, &address, crate::sqlite::now())?;
        Ok(NewPgpKey { key: key.to_binary(), fingerprint: key.info().fingerprint, protect_subject, publish })
    }
}

impl PgpKey {
    /// What the stored key is (fingerprint, algorithms, dates, user IDs); None if rPGP can no
    /// longer read it.
    pub fn describe(&self) -> Option<rampart_pgp::KeyInfo> {
        rampart_pgp::UserKey::parse(&self.key).ok().map(|k| k.info())
    }
}

#[async_trait]
pub trait PgpStore: Send + Sync + 'static {
    /// Sets (or replaces) the key of the account `address`.
    async fn pgp_key_set(&self, address: &str, key: NewPgpKey) -> Result<()>;
    /// The key of the account `address`, if it has one.
    async fn pgp_key(&self, address: &str) -> Result<Option<PgpKey>>;
    /// Removes it; false when there was none. Mail stored before stays encrypted.
    async fn pgp_key_remove(&self, address: &str) -> Result<bool>;
    /// The keys of `domain`'s accounts that are published (the Web Key Directory).
    async fn pgp_published(&self, domain: &str) -> Result<Vec<PgpKey>>;
}

/// `message` encrypted to `key` (PGP/MIME, RFC 3156) on the blocking pool, for either backend's
/// delivery; None, logged as `pgp_encrypt_failed`, when the key cannot be used (the caller then
/// stores the message as received).
pub(crate) async fn encrypt_for(message: &std::sync::Arc<Vec<u8>>, key: &PgpKey, reference: &str) -> Option<Vec<u8>> {
    let (source, stored, protect) = (message.clone(), key.key.clone(), key.protect_subject);
    let encrypted = tokio::task::spawn_blocking(move || {
        let key = rampart_pgp::UserKey::parse(&stored).map_err(|e| e.to_string())?;
        rampart_pgp::encrypt(&source, &key, protect).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r);
    match encrypted {
        Ok(bytes) => Some(bytes),
        Err(error) => {
            tracing::warn!(event = "pgp_encrypt_failed", id = %reference, user = %key.address, error = %error);
            None
        }
    }
}
