//! The per-user encryption role (issue 16, `rampart user encryption`): a user's key pair and
//! its wraps ([`crate::peruser`]), and the secret keys unlocked by the logins in progress.
//!
//! Wrap names: `password` (the account password's SCRAM ClientKey), `app:ID` (app password
//! ID) and `recovery` (the recovery code shown once). Every method has a default that says
//! "not supported", so a backend without per-user mode stays as it was.

use async_trait::async_trait;
use zeroize::Zeroizing;

use crate::keys::KEY_LEN;
use crate::peruser::UnlockKey;
use crate::{AccountId, Result, StoreError};

pub const PASSWORD: &str = "password";
pub const RECOVERY: &str = "recovery";

/// The wrap name of app password `id`.
pub fn app_wrap(id: i64) -> String {
    format!("app:{id}")
}

/// What `rampart user encryption status` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserKeyStatus {
    /// Unix seconds of `enable`.
    pub enabled: i64,
    /// Wrap names, sorted.
    pub wraps: Vec<String>,
    /// Whether a login of the user holds the secret key now.
    pub unlocked: bool,
    /// Messages of the account not yet converted (stored before `enable`).
    pub unconverted: u64,
}

/// Holds an account's secret key in memory while it lives; the last one dropped forgets it.
pub struct Unlocked {
    pub(crate) public: [u8; KEY_LEN],
}

impl std::fmt::Debug for Unlocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Unlocked(..)")
    }
}

impl Drop for Unlocked {
    fn drop(&mut self) {
        crate::sqlite::userkeys::release(&self.public);
    }
}

fn unsupported() -> StoreError {
    StoreError::PerUser("this store does not support per-user encryption".into())
}

#[async_trait]
pub trait UserKeyStore: Send + Sync + 'static {
    /// Whether the account is in per-user mode (a point read, made at every login).
    async fn has_user_key(&self, _account: AccountId) -> Result<bool> {
        Ok(false)
    }
    /// The account's per-user state; None when it is not in per-user mode.
    async fn user_key_status(&self, _account: AccountId) -> Result<Option<UserKeyStatus>> {
        Ok(None)
    }
    /// Turns per-user mode on: a new key pair wrapped under `password` (the account
    /// password's unlock key) and a new recovery code, which is returned (shown once).
    /// Messages stored before stay as they are until [`convert_user_messages`].
    ///
    /// [`convert_user_messages`]: UserKeyStore::convert_user_messages
    async fn enable_user_key(&self, _account: AccountId, _password: UnlockKey) -> Result<Zeroizing<String>> {
        Err(unsupported())
    }
    /// Opens wrap `wrap` with `key` and holds the secret key until the guard is dropped.
    /// Ok(None) when the account is not in per-user mode.
    async fn unlock_user_key(&self, _account: AccountId, _wrap: &str, _key: UnlockKey) -> Result<Option<Unlocked>> {
        Ok(None)
    }
    /// Adds (or replaces) wrap `wrap` under `key`, opening the secret key with `opener` (a
    /// wrap name and its key) or, without one, from a login holding it. Ok(false) when the
    /// account is not in per-user mode.
    async fn add_user_key_wrap(&self, _account: AccountId, _wrap: &str, _key: UnlockKey, _opener: Option<(String, UnlockKey)>) -> Result<bool> {
        Ok(false)
    }
    /// Removes wrap `wrap` (a revoked app password, a password an administrator reset).
    async fn remove_user_key_wrap(&self, _account: AccountId, _wrap: &str) -> Result<()> {
        Ok(())
    }
    /// Seals the account's messages stored before per-user mode was turned on to its key, a
    /// batch per commit (resumable: what is left is what a rerun converts); returns how many.
    /// Needs no secret, as delivery does not.
    async fn convert_user_messages(&self, _account: AccountId) -> Result<u64> {
        Ok(0)
    }
}
