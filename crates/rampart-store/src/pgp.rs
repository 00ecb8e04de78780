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
