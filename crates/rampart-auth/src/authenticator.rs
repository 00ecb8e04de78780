//! Checking credentials against the store, for every mechanism and for IMAP LOGIN.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use rampart_store::{AccountId, Credentials, DirectoryStore, Secrets};

use crate::cache::{CredentialCache, Matched};
use crate::sasl::{Exchange, Failure, Mechanism};
use crate::scram::ScramKeys;
use crate::work::WorkAreas;
use zeroize::Zeroizing;
use crate::{AuthError, HashParams, hash_password, verify_password_in};

/// Who authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub account: AccountId,
    /// The account's canonical address.
    pub address: String,
    /// The name of the app password used, if one was.
    pub app_password: Option<String>,
    /// What this login learnt that opens the account's per-user key, when the method gives
    /// one (password and SCRAM logins; never CRAM-MD5 or a token).
    pub unlock: Option<Unlock>,
}

/// Which wrap of a per-user key a login can open (rampart_store::peruser).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnlockWrap {
    /// The account password's (its SCRAM ClientKey).
    Password,
    /// App password `id`'s.
    App(i64),
}

/// The unlock key a login learnt. A password login keeps the password and the SCRAM salt
/// until asked: the ClientKey costs the SCRAM iterations of PBKDF2, paid only by accounts
/// in per-user mode ([`Unlock::key`]).
#[derive(Clone)]
pub struct Unlock {
    pub wrap: UnlockWrap,
    secret: UnlockSecret,
}

#[derive(Clone)]
enum UnlockSecret {
    Key(Zeroizing<[u8; 32]>),
    Password { keys: ScramKeys, password: Zeroizing<String> },
}

impl std::fmt::Debug for Unlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unlock").field("wrap", &self.wrap).finish_non_exhaustive()
    }
}

/// Identities compare by who and how; the secret is not compared.
impl PartialEq for Unlock {
    fn eq(&self, other: &Unlock) -> bool {
        self.wrap == other.wrap
    }
}
impl Eq for Unlock {}

impl Unlock {
    pub(crate) fn client_key(key: Zeroizing<[u8; 32]>) -> Unlock {
        Unlock { wrap: UnlockWrap::Password, secret: UnlockSecret::Key(key) }
    }

    fn password(creds: &Credentials, password: &str) -> Option<Unlock> {
        let keys = creds.scram_sha256.as_deref().and_then(ScramKeys::decode)?;
        Some(Unlock { wrap: UnlockWrap::Password, secret: UnlockSecret::Password { keys, password: Zeroizing::new(password.to_string()) } })
    }

    fn app(id: i64, password: &str) -> Unlock {
        Unlock { wrap: UnlockWrap::App(id), secret: UnlockSecret::Key(rampart_store::peruser::unlock_from_text(password)) }
    }

    /// The unlock key (a password's is computed here: call it off the async threads).
    pub fn key(&self) -> Zeroizing<[u8; 32]> {
        match &self.secret {
            UnlockSecret::Key(k) => k.clone(),
            UnlockSecret::Password { keys, password } => keys.client_key(password),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub cram_md5: bool,
    pub hash: HashParams,
    pub scram_iterations: u32,
    /// Our host name, for CRAM-MD5 challenges.
    pub hostname: String,
    /// How long a verified password is remembered ([`crate::cache`]); None: never, every
    /// login pays argon2 (`auth.credential_cache`, `auth.credential_cache_ttl`).
    pub credential_cache: Option<std::time::Duration>,
}

pub struct Authenticator {
    store: Arc<dyn DirectoryStore>,
    settings: AuthSettings,
    /// Keys the made-up SCRAM salts of unknown users, so they stay the same for one name.
    secret: [u8; 32],
    /// A hash to check against when the user does not exist, so the answer takes as long.
    dummy_hash: String,
    /// argon2 runs at most this many at once: each costs `memory_kib` of RAM and a core for
    /// tens of milliseconds, so a login flood queues instead of exhausting both.
    hashing: tokio::sync::Semaphore,
    work: Arc<WorkAreas>,
    cache: Option<CredentialCache>,
}

impl Authenticator {
    pub fn new(store: Arc<dyn DirectoryStore>, settings: AuthSettings) -> Result<Arc<Authenticator>, AuthError> {
        let dummy_hash = hash_password("not a password of anyone", settings.hash)?;
        let lanes = std::thread::available_parallelism().map_or(2, |n| n.get());
        let cache = settings.credential_cache.map(CredentialCache::new);
        Ok(Arc::new(Authenticator {
            store,
            settings,
            cache,
            secret: rand::random(),
            dummy_hash,
            hashing: tokio::sync::Semaphore::new(lanes),
            work: Arc::default(),
        }))
    }

    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    /// Mechanisms to advertise, strongest first. SCRAM-SHA-256-PLUS needs channel-binding
    /// data, so only a TLS connection offers it.
    pub fn mechanisms(&self, channel_binding: bool) -> Vec<Mechanism> {
        let mut m = Vec::new();
        if channel_binding {
            m.push(Mechanism::ScramSha256Plus);
        }
        m.extend([Mechanism::ScramSha256, Mechanism::Plain, Mechanism::Login]);
        if self.settings.cram_md5 {
            m.push(Mechanism::CramMd5);
        }
        m
    }

    /// Starts an exchange; `channel_binding` is the connection's `tls-exporter` value.
    pub fn start(self: &Arc<Self>, mechanism: Mechanism, channel_binding: Option<Vec<u8>>) -> Result<Exchange, Failure> {
        if !self.mechanisms(channel_binding.is_some()).contains(&mechanism) {
            return Err(Failure::Unavailable);
        }
        Ok(Exchange::new(self.clone(), mechanism, channel_binding))
    }

    async fn credentials(&self, user: &str) -> Result<Option<Credentials>, Failure> {
        self.store.credentials(user).await.map_err(|e| Failure::Temporary(e.chain().to_string()))
    }

    /// Checks a password (the account's or one of its app passwords). argon2 runs on the
    /// blocking pool: it is meant to be slow. A password verified a moment ago against the
    /// same stored hash is taken from the cache instead ([`crate::cache`]).
    pub async fn verify_password(&self, user: &str, password: &str) -> Result<Identity, Failure> {
        let fail = || Failure::Credentials { user: Some(user.to_string()) };
        let creds = self.credentials(user).await?;
        let matched = match &creds {
            Some(c) => match self.cached(c, password) {
                Some(m) => Some(m),
                None => self.argon2(Some(c), password, true).await?,
            },
            None => self.argon2(None, password, true).await?,
        };
        let (Some(creds), Some(matched)) = (creds, matched) else { return Err(fail()) };
        let (app, unlock) = match matched {
            Matched::Account => (None, Unlock::password(&creds, password)),
            Matched::App(id) => {
                let _ = self.store.touch_app_password(id).await;
                (creds.app_passwords.iter().find(|a| a.id == id).map(|a| a.name.clone()), Some(Unlock::app(id, password)))
            }
        };
        Ok(Identity { account: creds.account.id, address: creds.account.address, app_password: app, unlock })
    }

    /// The account's own password only, for web logins and for a web session re-entering it:
    /// app passwords are never tried and the cache never answers, so every call costs exactly
    /// one argon2 verification, against the account's hash or, for an unknown user, a dummy
    /// hash of the same cost. How long the answer takes then tells nothing about whether the
    /// account exists or how many app passwords it has. (Not measured in a test: on a shared
    /// machine the noise is larger than one verification; the single call is the guarantee.)
    pub async fn verify_account_password(&self, user: &str, password: &str) -> Result<Identity, Failure> {
        let creds = self.credentials(user).await?;
        let matched = self.argon2(creds.as_ref(), password, false).await?;
        match (creds, matched) {
            (Some(c), Some(Matched::Account)) => {
                let unlock = Unlock::password(&c, password);
                Ok(Identity { account: c.account.id, address: c.account.address, app_password: None, unlock })
            }
            _ => Err(Failure::Credentials { user: Some(user.to_string()) }),
        }
    }

    /// The secret a cached verification of this password matched, if still stored as it was.
    fn cached(&self, creds: &Credentials, password: &str) -> Option<Matched> {
        let cache = self.cache.as_ref()?;
        cache.lookup(&creds.account.address, password, |m| match m {
            Matched::Account => Some(creds.account.password_hash.as_str()),
            Matched::App(id) => creds.app_passwords.iter().find(|a| a.id == id).map(|a| a.hash.as_str()),
        })
    }

    /// Runs argon2 against the account's hash, then (with `apps`) each app password's; without
    /// credentials against a dummy hash, so an unknown user takes as long. Successes go into
    /// the cache.
    async fn argon2(&self, creds: Option<&Credentials>, password: &str, apps: bool) -> Result<Option<Matched>, Failure> {
        let _lane = self.hashing.acquire().await.map_err(|e| Failure::Temporary(e.to_string()))?;
        let mut area = self.work.take();
        let mut candidates: Vec<(Matched, String)> = match creds {
            None => vec![(Matched::Account, self.dummy_hash.clone())],
            Some(c) => std::iter::once((Matched::Account, c.account.password_hash.clone()))
                .chain(c.app_passwords.iter().filter(|_| apps).map(|a| (Matched::App(a.id), a.hash.clone())))
                .collect(),
        };
        let pw = password.to_string();
        let (found, area) = tokio::task::spawn_blocking(move || {
            let i = candidates.iter().position(|(_, h)| verify_password_in(&pw, h, &mut area));
            (i.map(|i| candidates.swap_remove(i)), area)
        })
        .await
        .map_err(|e| Failure::Temporary(e.to_string()))?;
        self.work.give_back(area);
        let (Some(creds), Some((matched, hash))) = (creds, found) else { return Ok(None) };
        if let Some(cache) = &self.cache {
            cache.insert(&creds.account.address, password, matched, &hash);
        }
        Ok(Some(matched))
    }

    pub(crate) fn cram_challenge(&self) -> String {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        format!("<{}.{now}@{}>", rand::random::<u64>(), self.settings.hostname)
    }

    /// RFC 2195: the digest is HMAC-MD5 keyed with the password over the challenge, in hex.
    pub(crate) async fn verify_cram(&self, user: &str, challenge: &str, digest: &str) -> Result<Identity, Failure> {
        let fail = || Failure::Credentials { user: Some(user.to_string()) };
        let creds = self.credentials(user).await?.ok_or_else(fail)?;
        let secret = creds.cram_secret.as_deref().and_then(|s| B64.decode(s).ok()).ok_or_else(fail)?;
        let mut mac = Hmac::<md5::Md5>::new_from_slice(&secret).expect("HMAC accepts any key length");
        mac.update(challenge.as_bytes());
        let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        if bool::from(subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), digest.to_ascii_lowercase().as_bytes())) {
            Ok(Identity { account: creds.account.id, address: creds.account.address, app_password: None, unlock: None })
        } else {
            Err(fail())
        }
    }

    /// The user's SCRAM keys, or made-up ones (and no identity) when there are none, so that
    /// the exchange looks the same either way until its final step.
    pub(crate) async fn scram_keys(&self, user: &str) -> Result<(Option<Identity>, ScramKeys), Failure> {
        let creds = self.credentials(user).await?;
        if let Some(c) = creds
            && let Some(keys) = c.scram_sha256.as_deref().and_then(ScramKeys::decode) {
                let id = Identity { account: c.account.id, address: c.account.address, app_password: None, unlock: None };
                return Ok((Some(id), keys));
            }
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&self.secret).expect("HMAC accepts any key length");
        mac.update(user.to_lowercase().as_bytes());
        let salt = mac.finalize().into_bytes()[..16].to_vec();
        let keys = ScramKeys {
            iterations: self.settings.scram_iterations,
            salt,
            stored_key: rand::random(),
            server_key: rand::random(),
        };
        Ok((None, keys))
    }

    /// Every secret to store for a new password: the argon2id hash, SCRAM keys, and the
    /// CRAM-MD5 secret only when that mechanism is enabled.
    pub fn secrets(&self, password: &str) -> Result<Secrets, AuthError> {
        secrets_for(password, &self.settings)
    }
}

/// [`Authenticator::secrets`] without a store, for the command line.
pub fn secrets_for(password: &str, settings: &AuthSettings) -> Result<Secrets, AuthError> {
    Ok(Secrets {
        password_hash: hash_password(password, settings.hash)?,
        scram_sha256: Some(ScramKeys::generate(password, settings.scram_iterations).encode()),
        cram_secret: settings.cram_md5.then(|| B64.encode(password.as_bytes())),
    })
}

/// A fresh app password: 16 lowercase letters in four groups (about 75 bits), easy to type
/// on a phone and shown to the user once.
pub fn new_app_password() -> String {
    let letters: Vec<char> = (0..16).map(|_| (b'a' + rand::random_range(0..26u8)) as char).collect();
    letters.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-")
}
