//! The web role: account roles, TOTP second factors and recovery codes, web sessions and API
//! tokens. Read and written by the web listener and the CLI; secrets that a client presents
//! (session IDs, recovery codes, API tokens) are stored only as hashes the caller computes.

use async_trait::async_trait;

use crate::{Account, AccountId, MessageInfo, Result};

/// What an account may do on the web: admins manage everything, users their own account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    Admin,
    #[default]
    User,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "user" => Some(Role::User),
            _ => None,
        }
    }
}

/// An account's TOTP secret. Unconfirmed while enrollment waits for the first code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totp {
    /// The shared secret, base32 as in the `otpauth://` URI.
    pub secret: String,
    pub confirmed: bool,
    /// The last time step a code was accepted for: each code works once (RFC 6238 §5.2).
    pub last_step: i64,
}

/// An account as the web lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebAccount {
    pub account: Account,
    pub role: Role,
    /// A confirmed TOTP secret exists.
    pub totp: bool,
    /// No login of any kind (IMAP, SMTP, web); mail is still accepted.
    pub suspended: bool,
}

/// A logged-in web session, looked up by the hash of its cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    pub account: AccountId,
    pub address: String,
    pub role: Role,
    pub totp: bool,
    /// The token state-changing requests must carry (the `X-CSRF-Token` header).
    pub csrf: String,
    /// Unix seconds.
    pub created: i64,
    pub last_seen: i64,
}

/// A token for automation (`Authorization: Bearer`), acting as an admin within its scopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    pub scopes: Vec<String>,
    pub created: i64,
    pub last_used: Option<i64>,
}

#[async_trait]
pub trait WebStore: Send + Sync + 'static {
    /// Every account with its role and 2FA state, by address.
    async fn web_accounts(&self) -> Result<Vec<WebAccount>>;
    async fn web_account(&self, address: &str) -> Result<Option<WebAccount>>;
    /// `NotFound` for an unknown account; `LastAdmin` when demoting the only administrator who
    /// can log in.
    async fn set_role(&self, address: &str, role: Role) -> Result<()>;
    /// Suspends (no logins, no web sessions) or restores an account; `NotFound` for an unknown one,
    /// `LastAdmin` when suspending the only administrator who can log in.
    async fn set_suspended(&self, address: &str, suspended: bool) -> Result<()>;

    async fn totp(&self, account: AccountId) -> Result<Option<Totp>>;
    /// Starts an enrollment (unconfirmed), replacing an unconfirmed one; `Exists` when a
    /// confirmed secret is there (disable it first).
    async fn totp_begin(&self, account: AccountId, secret: &str) -> Result<()>;
    /// Confirms the pending secret at `step` and stores the recovery codes' hashes in place of
    /// any old ones. False when nothing was pending.
    async fn totp_confirm(&self, account: AccountId, step: i64, recovery: &[String]) -> Result<bool>;
    /// Records that a code of `step` was used; false when that step (or a later one) was
    /// used already, so a code works once.
    async fn totp_use_step(&self, account: AccountId, step: i64) -> Result<bool>;
    /// Removes the secret and the recovery codes; false when there was none.
    async fn totp_remove(&self, account: AccountId) -> Result<bool>;
    /// Uses up a recovery code by its hash; false when it is not one (any more).
    async fn recovery_code_use(&self, account: AccountId, hash: &str) -> Result<bool>;
    async fn recovery_codes_left(&self, account: AccountId) -> Result<u64>;
    /// Replaces the recovery codes of a confirmed TOTP; false when there is none.
    async fn recovery_codes_replace(&self, account: AccountId, recovery: &[String]) -> Result<bool>;

    async fn session_put(&self, id_hash: &str, account: AccountId, csrf: &str, now: i64) -> Result<()>;
    async fn session(&self, id_hash: &str) -> Result<Option<WebSession>>;
    async fn session_touch(&self, id_hash: &str, now: i64) -> Result<()>;
    async fn session_remove(&self, id_hash: &str) -> Result<()>;
    /// Ends every session of the account but `keep` (a session ID hash); returns how many.
    async fn sessions_remove(&self, account: AccountId, keep: Option<&str>) -> Result<u64>;
    /// Deletes sessions idle since `idle_before` or created before `created_before`.
    async fn sessions_prune(&self, idle_before: i64, created_before: i64) -> Result<u64>;

    /// Stored messages, newest first: only `address`'s (an account) when given, received in
    /// `since..until` (unix seconds), at most `limit`.
    async fn messages_search(&self, address: Option<&str>, since: i64, until: i64, limit: u32) -> Result<Vec<MessageInfo>>;

    /// Adds to the hourly counts of the dashboard: (hour since the epoch, series, count).
    async fn stats_add(&self, counts: &[(i64, String, u64)]) -> Result<()>;
    /// Hourly counts from `hour` on, by hour.
    async fn stats_since(&self, hour: i64) -> Result<Vec<(i64, String, u64)>>;
    /// Forgets counts of hours before `hour`.
    async fn stats_prune(&self, hour: i64) -> Result<()>;

    /// `Exists` for a name in use.
    async fn api_token_add(&self, name: &str, hash: &str, scopes: &[String]) -> Result<()>;
    async fn api_tokens(&self) -> Result<Vec<ApiToken>>;
    /// `NotFound` for an unknown name.
    async fn api_token_revoke(&self, name: &str) -> Result<()>;
    /// The token with this hash, marked as used now.
    async fn api_token_use(&self, hash: &str, now: i64) -> Result<Option<ApiToken>>;
}
