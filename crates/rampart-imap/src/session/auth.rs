//! LOGIN and AUTHENTICATE (RFC 3501 §6.2, RFC 4959 SASL-IR, RFC 4616 PLAIN).
//!
//! Credentials are checked behind one small trait, [`Authenticator`], so the SASL module
//! (SCRAM, CRAM-MD5...) can replace the password check without touching the session.
//! Failures are reported to a [`LoginGuard`] (counted per IP and per account for the guard
//! that bans abusers) and logged as one `event=auth_failure` line for fail2ban.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use rampart_store::{Account, Store};
use tracing::{info, warn};

use super::{Next, PendingAuth, Session, State, User};
use crate::response::{base64_decode, line};

/// Pause before answering a failed login: slows password guessing on one connection.
const FAILURE_DELAY: Duration = Duration::from_millis(500);
/// Longest SASL response line we decode; PLAIN needs two names and a password.
const MAX_SASL_RESPONSE: usize = 8 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("credential store: {0}")]
    Store(#[from] rampart_store::StoreError),
    #[error("password check did not finish")]
    Aborted,
}

/// Checks credentials. Today: a password against the account's argon2id hash.
#[async_trait]
pub trait Authenticator: Send + Sync {
    /// The account when `password` is right for `user`; None otherwise.
    async fn check_password(&self, user: &str, password: &str) -> Result<Option<Account>, AuthError>;
}

/// [`Authenticator`] on the store's password hashes.
pub struct StorePasswords {
    pub store: Arc<dyn Store>,
}

/// A hash that matches nothing, verified when the user does not exist so that a wrong user
/// name takes as long as a wrong password and does not reveal which accounts exist.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        rampart_auth::hash_password("rampart decoy password", rampart_auth::HashParams::default()).unwrap_or_default()
    })
}

#[async_trait]
impl Authenticator for StorePasswords {
    async fn check_password(&self, user: &str, password: &str) -> Result<Option<Account>, AuthError> {
        let account = self.store.account(user).await?;
        let hash = account.as_ref().map_or_else(|| decoy_hash().to_string(), |a| a.password_hash.clone());
        let password = password.to_string();
        // argon2 is deliberately slow: keep it off the async workers.
        let ok = tokio::task::spawn_blocking(move || rampart_auth::verify_password(&password, &hash))
            .await
            .map_err(|_| AuthError::Aborted)?;
        Ok(if ok { account } else { None })
    }
}

/// Where login outcomes go: the hook for the guard (auto-ban) issue.
pub trait LoginGuard: Send + Sync {
    fn failure(&self, ip: IpAddr, user: &str) -> (u32, u32);
    fn success(&self, ip: IpAddr, user: &str);
}

/// Counts failed logins per IP and per account in memory. Bounded: past [`Self::MAX_KEYS`]
/// entries the counts start over, which loses history but never memory.
#[derive(Default)]
pub struct FailureCounter {
    by_ip: Mutex<HashMap<IpAddr, u32>>,
    by_user: Mutex<HashMap<String, u32>>,
}

impl FailureCounter {
    pub const MAX_KEYS: usize = 100_000;

    fn bump<K: std::hash::Hash + Eq>(map: &Mutex<HashMap<K, u32>>, key: K) -> u32 {
        let mut m = map.lock().unwrap_or_else(|e| e.into_inner());
        if m.len() >= Self::MAX_KEYS {
            m.clear();
        }
        let n = m.entry(key).or_insert(0);
        *n = n.saturating_add(1);
        *n
    }

    pub fn failures(&self, ip: IpAddr, user: &str) -> (u32, u32) {
        let a = self.by_ip.lock().unwrap_or_else(|e| e.into_inner()).get(&ip).copied().unwrap_or(0);
        let b = self.by_user.lock().unwrap_or_else(|e| e.into_inner()).get(user).copied().unwrap_or(0);
        (a, b)
    }
}

impl LoginGuard for FailureCounter {
    fn failure(&self, ip: IpAddr, user: &str) -> (u32, u32) {
        (Self::bump(&self.by_ip, ip), Self::bump(&self.by_user, user.to_ascii_lowercase()))
    }

    fn success(&self, ip: IpAddr, user: &str) {
        self.by_ip.lock().unwrap_or_else(|e| e.into_inner()).remove(&ip);
        self.by_user.lock().unwrap_or_else(|e| e.into_inner()).remove(&user.to_ascii_lowercase());
    }
}

/// Printable form of a user name for logs: no spaces or control characters, bounded.
fn log_user(user: &str) -> String {
    user.chars().take(128).map(|c| if c.is_control() || c.is_whitespace() || c == '"' { '?' } else { c }).collect()
}

impl Session {
    /// Before TLS on a STARTTLS port, credentials are refused (RFC 3501 §6.2.3 LOGINDISABLED).
    fn plaintext_refused(&self) -> bool {
        !self.tls && self.settings.tls == rampart_config::TlsMode::Starttls
    }

    pub(super) async fn login(&mut self, out: &mut Vec<u8>, tag: &str, user: Vec<u8>, password: Vec<u8>) -> Next {
        if self.plaintext_refused() {
            line(out, &format!("{tag} NO [PRIVACYREQUIRED] LOGIN is disabled before STARTTLS"));
            return Next::Continue;
        }
        let user = String::from_utf8_lossy(&user).into_owned();
        let password = String::from_utf8_lossy(&password).into_owned();
        self.check(out, tag, &user, &password, "LOGIN").await
    }

    pub(super) async fn authenticate(&mut self, out: &mut Vec<u8>, tag: &str, mechanism: String, initial: Option<Vec<u8>>) -> Next {
        if self.plaintext_refused() {
            line(out, &format!("{tag} NO [PRIVACYREQUIRED] Authentication is disabled before STARTTLS"));
            return Next::Continue;
        }
        if mechanism != "PLAIN" {
            line(out, &format!("{tag} NO [CANNOT] Unsupported mechanism; use PLAIN"));
            return Next::Continue;
        }
        match initial {
            Some(data) => self.plain(out, tag, &data).await,
            None => {
                self.pending_auth = Some(PendingAuth { tag: tag.to_string(), mechanism });
                // RFC 4616: PLAIN sends no challenge, the continuation is empty.
                line(out, "+ ");
                Next::AuthContinue
            }
        }
    }

    /// The client's answer to a SASL continuation.
    pub async fn auth_line(&mut self, out: &mut Vec<u8>, input: &[u8]) -> Next {
        let Some(pending) = self.pending_auth.take() else { return Next::Continue };
        if input == b"*" {
            // RFC 3501 §6.2.2: the client cancelled.
            line(out, &format!("{} BAD Authentication cancelled", pending.tag));
            return Next::Continue;
        }
        let _ = pending.mechanism;
        self.plain(out, &pending.tag, input).await
    }

    async fn plain(&mut self, out: &mut Vec<u8>, tag: &str, b64: &[u8]) -> Next {
        if b64.len() > MAX_SASL_RESPONSE {
            return self.error(out, tag, "[TOOBIG] SASL response too long");
        }
        let Some(decoded) = base64_decode(b64) else {
            return self.error(out, tag, "Invalid base64 in SASL response");
        };
        // RFC 4616 §2: [authzid] NUL authcid NUL passwd
        let mut parts = decoded.split(|&b| b == 0);
        let (Some(authz), Some(authc), Some(pass), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return self.error(out, tag, "Malformed PLAIN response");
        };
        let authc = String::from_utf8_lossy(authc).into_owned();
        let pass = String::from_utf8_lossy(pass).into_owned();
        if !authz.is_empty() && !authz.eq_ignore_ascii_case(authc.as_bytes()) {
            line(out, &format!("{tag} NO [AUTHORIZATIONFAILED] Acting as another user is not allowed"));
            return Next::Continue;
        }
        self.check(out, tag, &authc, &pass, "PLAIN").await
    }

    async fn check(&mut self, out: &mut Vec<u8>, tag: &str, user: &str, password: &str, mechanism: &str) -> Next {
        let ip = self.remote.ip();
        let listener = self.settings.listener;
        match self.services.auth.check_password(user, password).await {
            Ok(Some(account)) => {
                self.services.guard.success(ip, &account.address);
                info!(event = "auth_success", proto = "imap", ip = %ip, listener, user = %account.address, mechanism);
                self.state = State::Authenticated(User { id: account.id, address: account.address });
                line(out, &format!("{tag} OK [CAPABILITY {}] Logged in", self.capabilities()));
                Next::Continue
            }
            Ok(None) => {
                let (by_ip, by_user) = self.services.guard.failure(ip, user);
                self.auth_failures += 1;
                warn!(
                    event = "auth_failure", proto = "imap", ip = %ip, listener, user = %log_user(user), mechanism,
                    failures_ip = by_ip, failures_user = by_user
                );
                tokio::time::sleep(FAILURE_DELAY).await;
                line(out, &format!("{tag} NO [AUTHENTICATIONFAILED] Invalid credentials"));
                if self.auth_failures >= self.settings.max_auth_failures {
                    line(out, "* BYE Too many failed logins");
                    return Next::Close;
                }
                Next::Continue
            }
            Err(e) => {
                warn!(event = "auth_error", proto = "imap", ip = %ip, error = %e);
                line(out, &format!("{tag} NO [UNAVAILABLE] Authentication is unavailable, try again later"));
                Next::Continue
            }
        }
    }
}
