//! The directory role: domains, accounts, their credentials, aliases, and resolving an address
//! to the accounts and remote addresses it stands for. Read by SMTP (RCPT), auth and the
//! guard; written by the CLI.

use async_trait::async_trait;

use crate::{AccountId, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    /// Canonical address (see [`crate::address::canonical`]).
    pub address: String,
    /// A PHC string (`$argon2id$...`).
    pub password_hash: String,
    /// Unix seconds.
    pub created: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    pub address: String,
    pub target: String,
}

/// Where mail for an address goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    /// Local accounts, deduplicated.
    pub accounts: Vec<AccountId>,
    /// Addresses outside our domains that an alias forwards to.
    pub remote: Vec<String>,
}

impl Resolution {
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty() && self.remote.is_empty()
    }
}

/// The secrets kept for an account's password, one per mechanism family.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    /// argon2id PHC string: what PLAIN, LOGIN and IMAP LOGIN check against.
    pub password_hash: String,
    /// SCRAM-SHA-256 keys (RFC 5802 §3: salt, iterations, StoredKey, ServerKey), encoded by
    /// rampart-auth. They do not reveal the password, but allow no other mechanism.
    pub scram_sha256: Option<String>,
    /// Only when CRAM-MD5 is enabled: a password-equivalent secret.
    pub cram_secret: Option<String>,
}

/// What authenticating an account needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub account: Account,
    pub scram_sha256: Option<String>,
    pub cram_secret: Option<String>,
    pub app_passwords: Vec<AppPassword>,
}

/// A password for one mail client, usable instead of the account password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPassword {
    pub id: i64,
    pub name: String,
    /// argon2id PHC string.
    pub hash: String,
    pub created: i64,
    pub last_used: Option<i64>,
}

/// The mailboxes every new account gets, with their RFC 6154 special-use attributes.
pub const DEFAULT_MAILBOXES: [(&str, Option<&str>); 6] = [
    ("INBOX", None),
    ("Sent", Some("\\Sent")),
    ("Drafts", Some("\\Drafts")),
    ("Trash", Some("\\Trash")),
    ("Junk", Some("\\Junk")),
    ("Archive", Some("\\Archive")),
];

#[async_trait]
pub trait DirectoryStore: Send + Sync + 'static {
    /// `InvalidDomain` for a name that is not a host name, `Exists` when it is already ours.
    async fn add_domain(&self, name: &str) -> Result<()>;
    /// Refuses (`InUse`) while accounts or aliases of the domain exist, so no mail is orphaned.
    async fn remove_domain(&self, name: &str) -> Result<()>;
    async fn list_domains(&self) -> Result<Vec<String>>;
    async fn is_local_domain(&self, name: &str) -> Result<bool>;

    /// Creates the account and its [`DEFAULT_MAILBOXES`]. The domain must be local
    /// (`NotLocalDomain`); an alias of the same address is `Exists`.
    async fn add_account_with(&self, address: &str, secrets: &Secrets) -> Result<AccountId>;
    /// [`DirectoryStore::add_account_with`] with only a password hash.
    async fn add_account(&self, address: &str, password_hash: &str) -> Result<AccountId> {
        self.add_account_with(address, &Secrets { password_hash: password_hash.into(), ..Secrets::default() }).await
    }
    /// Removes the account, its mailboxes and messages; `LastAdmin` when it is the only
    /// administrator who can log in.
    async fn remove_account(&self, address: &str) -> Result<()>;
    async fn account(&self, address: &str) -> Result<Option<Account>>;
    async fn list_accounts(&self) -> Result<Vec<Account>>;

    /// Replaces all password secrets at once, so no mechanism keeps an old password.
    async fn set_secrets(&self, address: &str, secrets: &Secrets) -> Result<()>;
    async fn set_password(&self, address: &str, password_hash: &str) -> Result<()> {
        self.set_secrets(address, &Secrets { password_hash: password_hash.into(), ..Secrets::default() }).await
    }
    /// Every account with the time its password was last set (unix seconds; `None` when it was
    /// set before the store recorded it), for the audit's maximum password age. Set by
    /// [`DirectoryStore::add_account_with`] and [`DirectoryStore::set_secrets`], the one path
    /// of every password change (CLI, web admin, self-service).
    async fn password_changes(&self) -> Result<Vec<(String, Option<i64>)>>;
    /// None for an unknown or invalid address, and for a suspended account.
    async fn credentials(&self, address: &str) -> Result<Option<Credentials>>;
    /// `InvalidAppPasswordName`, `TooManyAppPasswords`, or `Exists` for a name in use.
    async fn add_app_password(&self, address: &str, name: &str, hash: &str) -> Result<()>;
    async fn list_app_passwords(&self, address: &str) -> Result<Vec<AppPassword>>;
    async fn revoke_app_password(&self, address: &str, name: &str) -> Result<()>;
    /// Records that an app password was just used.
    async fn touch_app_password(&self, id: i64) -> Result<()>;

    /// `address` must be in a local domain and must not be an account (`Exists`) or its own
    /// target (`SelfAlias`).
    async fn add_alias(&self, address: &str, target: &str) -> Result<()>;
    /// Removes one target of the alias, or all of them when `target` is `None`.
    async fn remove_alias(&self, address: &str, target: Option<&str>) -> Result<()>;
    async fn list_aliases(&self) -> Result<Vec<Alias>>;
    /// Alias addresses that deliver directly to `address`.
    async fn aliases_of(&self, address: &str) -> Result<Vec<String>>;

    /// Resolves a canonical address through aliases (nested up to a fixed depth) to accounts
    /// and remote addresses. Empty when nothing local answers to it.
    async fn resolve(&self, address: &str) -> Result<Resolution>;
}
