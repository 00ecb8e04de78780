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
    /// The user asked for server-side search of the mail encrypted to the key on a clear
    /// store, where it keeps the plaintext's words in clear ([`PlainSearch`]).
    pub search: bool,
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
    pub search: bool,
}

/// The options of a key ([`PgpKey`]'s fields of the same names).
#[derive(Debug, Clone, Copy, Default)]
pub struct PgpOptions {
    pub protect_subject: bool,
    pub publish: bool,
    pub search: bool,
}

impl NewPgpKey {
    /// A key (armored or binary) after `rampart_pgp::UserKey::check` accepted it for
    /// `address` now: the one check the CLI and the API both run.
    pub fn checked(bytes: &[u8], address: &str, options: PgpOptions) -> Result<NewPgpKey, rampart_pgp::KeyError> {
        let address = crate::address::canonical(address).unwrap_or_else(|_| address.to_ascii_lowercase());
        let key = rampart_pgp::UserKey::check(bytes, &address, crate::sqlite::now())?;
        let PgpOptions { protect_subject, publish, search } = options;
        Ok(NewPgpKey { key: key.to_binary(), fingerprint: key.info().fingerprint, protect_subject, publish, search })
    }
}

/// Whether, and where, the store keeps a search summary of the plaintext of mail it encrypts
/// to a user's key — the header values and words SEARCH reads (`Summarizer::summarize_encrypted`).
/// That summary is as sensitive as the mail, so it is kept only where it stays as protected as
/// the rest of the store:
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlainSearch {
    /// In the encrypted database (`[store.encryption] mode = "server"`): on whatever the key's
    /// `search` says.
    EncryptedDatabase,
    /// Sealed with each message's per-user data key (the account is in per-user mode), read
    /// only while the user is logged in: on whatever the key's `search` says.
    SealedForUser,
    /// In clear in the database (a clear SQLite store, PostgreSQL), because the key's
    /// `search` asked for it.
    ClearOptedIn,
    /// Not kept (a clear store and no opt-in): SEARCH sees the stored message's outer header
    /// fields only.
    Off,
}

impl PlainSearch {
    /// Where a clear store stands with `key`.
    pub(crate) fn clear(key: &PgpKey) -> PlainSearch {
        if key.search { PlainSearch::ClearOptedIn } else { PlainSearch::Off }
    }

    pub fn is_on(self) -> bool {
        self != PlainSearch::Off
    }

    /// How `rampart user pgp show` and the API say it.
    pub fn describe(self) -> &'static str {
        match self {
            PlainSearch::EncryptedDatabase => "on (in the encrypted database: server-key mode)",
            PlainSearch::SealedForUser => "on (sealed with the user's key: per-user mode)",
            PlainSearch::ClearOptedIn => "on (opted in: the plaintext's words are kept in clear in the database)",
            PlainSearch::Off => "off (clear store: only the outer header fields are searchable; --search opts in)",
        }
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
    /// Whether mail delivered now to `key`'s account gets a plaintext search summary, and
    /// where it is kept ([`PlainSearch`]).
    async fn pgp_plain_search(&self, key: &PgpKey) -> Result<PlainSearch>;
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
