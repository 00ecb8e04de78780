//! LOGIN and AUTHENTICATE (RFC 3501 §6.2, RFC 4959 SASL-IR) on rampart-auth's SASL module:
//! PLAIN, LOGIN, SCRAM-SHA-256, SCRAM-SHA-256-PLUS with `tls-exporter` channel binding, and
//! CRAM-MD5 when enabled. Every credential check ends in `Session::check_done`, which reports
//! the outcome to the guard (failures counted per address, network and account; bans; an
//! account under attack accepts only addresses that logged in to it before) and logs one
//! `event=auth_failure` / `auth_success` line for fail2ban.

use rampart_auth::{Failure, Identity, Mechanism, Step, UnlockWrap};
use tracing::{info, warn};

use super::{Next, PendingAuth, Session, State, User};
use crate::response::{base64_decode, base64_encode, line};

/// Longest SASL response line we decode; SCRAM and PLAIN need well under this.
const MAX_SASL_RESPONSE: usize = 8 * 1024;

/// Printable form of a user name for logs: no spaces or control characters, bounded.
fn log_user(user: &str) -> String {
    user.chars().take(128).map(|c| if c.is_control() || c.is_whitespace() || c == '"' { '?' } else { c }).collect()
}

impl Session {
    /// Before TLS on a STARTTLS port, credentials are refused (RFC 3501 §6.2.3 LOGINDISABLED).
    pub(crate) fn plaintext_refused(&self) -> bool {
        !self.tls && self.settings.tls == rampart_config::TlsMode::Starttls
    }

    /// The mechanisms to advertise as AUTH=... (none before TLS).
    pub(crate) fn mechanisms(&self) -> Vec<Mechanism> {
        if self.plaintext_refused() {
            return Vec::new();
        }
        self.services.auth.mechanisms(self.channel_binding.is_some())
    }

    pub(super) async fn login(&mut self, out: &mut Vec<u8>, tag: &str, user: Vec<u8>, password: Vec<u8>) -> Next {
        if self.plaintext_refused() {
            line(out, &format!("{tag} NO [PRIVACYREQUIRED] LOGIN is disabled before STARTTLS"));
            return Next::Continue;
        }
        let user = String::from_utf8_lossy(&user).into_owned();
        let password = String::from_utf8_lossy(&password).into_owned();
        let outcome = self.services.auth.verify_password(&user, &password).await;
        self.check_done(out, tag, "LOGIN", outcome).await
    }

    pub(super) async fn authenticate(&mut self, out: &mut Vec<u8>, tag: &str, mechanism: String, initial: Option<Vec<u8>>) -> Next {
        if self.plaintext_refused() {
            line(out, &format!("{tag} NO [PRIVACYREQUIRED] Authentication is disabled before STARTTLS"));
            return Next::Continue;
        }
        let cb = self.channel_binding.clone();
        let Some(exchange) = Mechanism::from_name(&mechanism).and_then(|m| self.services.auth.start(m, cb).ok()) else {
            line(out, &format!("{tag} NO [CANNOT] Unsupported authentication mechanism"));
            return Next::Continue;
        };
        // RFC 4959: the initial response is base64, "=" for an empty one (the parser maps
        // "=" to empty already).
        let initial = match initial {
            None => None,
            Some(b64) if b64.is_empty() => Some(Vec::new()),
            Some(b64) => match base64_decode(&b64) {
                Some(bytes) => Some(bytes),
                None => return self.error(out, tag, "Invalid base64 in initial response"),
            },
        };
        self.pending_auth = Some(PendingAuth { tag: tag.to_string(), exchange });
        self.auth_step(out, initial).await
    }

    /// The client's answer to a SASL continuation.
    pub async fn auth_line(&mut self, out: &mut Vec<u8>, input: &[u8]) -> Next {
        let Some(pending) = &self.pending_auth else { return Next::Continue };
        let tag = pending.tag.clone();
        if input == b"*" {
            // RFC 3501 §6.2.2: the client cancelled.
            self.pending_auth = None;
            line(out, &format!("{tag} BAD Authentication cancelled"));
            return Next::Continue;
        }
        if input.len() > MAX_SASL_RESPONSE {
            self.pending_auth = None;
            return self.error(out, &tag, "[TOOBIG] SASL response too long");
        }
        match base64_decode(input) {
            Some(bytes) => self.auth_step(out, Some(bytes)).await,
            None => {
                self.pending_auth = None;
                self.error(out, &tag, "Invalid base64 in SASL response")
            }
        }
    }

    async fn auth_step(&mut self, out: &mut Vec<u8>, response: Option<Vec<u8>>) -> Next {
        let Some(pending) = self.pending_auth.as_mut() else { return Next::Continue };
        let mechanism = pending.exchange.mechanism();
        match pending.exchange.step(response.as_deref()).await {
            Step::Challenge(c) => {
                line(out, &format!("+ {}", base64_encode(&c)));
                Next::AuthContinue
            }
            Step::Success(identity) => {
                let tag = self.pending_auth.take().map(|p| p.tag).unwrap_or_default();
                self.check_done(out, &tag, mechanism.name(), Ok(identity)).await
            }
            Step::Failure(failure) => {
                let tag = self.pending_auth.take().map(|p| p.tag).unwrap_or_default();
                self.check_done(out, &tag, mechanism.name(), Err(failure)).await
            }
        }
    }

    /// The one place that acts on a credential check: state change, guard, log, reply.
    async fn check_done(&mut self, out: &mut Vec<u8>, tag: &str, mechanism: &str, outcome: Result<Identity, Failure>) -> Next {
        let ip = self.remote.ip();
        let listener = self.settings.listener;
        match outcome {
            Ok(identity) => {
                let guard = self.services.guard.clone();
                if !guard.login_allowed(ip, &identity.address).await {
                    // The account is under attack and this address never logged in to it.
                    line(out, &format!("{tag} NO [UNAVAILABLE] Authentication is unavailable, try again later"));
                    return Next::Continue;
                }
                if guard.login_suspended(&identity.address).await {
                    info!(event = "auth_refused", proto = "imap", ip = %ip, listener, user = %identity.address, reason = "account_suspended");
                    // RFC 5530 §3: CONTACTADMIN.
                    line(out, &format!("{tag} NO [CONTACTADMIN] Account suspended, contact your administrator"));
                    return Next::Continue;
                }
                let unlocked = match self.unlock(&identity).await {
                    Ok(u) => u,
                    Err(reason) => {
                        info!(event = "auth_refused", proto = "imap", ip = %ip, listener, user = %identity.address, reason);
                        let text = if reason == "user_key_no_method" {
                            "This account's mail is encrypted for its user: log in with the password or an app password"
                        } else {
                            "This account's mail is encrypted and locked: it needs the recovery code (rampart user encryption recover)"
                        };
                        line(out, &format!("{tag} NO [UNAVAILABLE] {text}"));
                        return Next::Continue;
                    }
                };
                self.unlocked = unlocked;
                guard.auth_success("imap", ip, &identity.address).await;
                info!(
                    event = "auth_success", proto = "imap", ip = %ip, listener, user = %identity.address, mechanism,
                    app_password = identity.app_password.as_deref().unwrap_or("-")
                );
                self.state = State::Authenticated(User { id: identity.account, address: identity.address });
                line(out, &format!("{tag} OK [CAPABILITY {}] Logged in", self.capabilities()));
                Next::Continue
            }
            Err(Failure::Temporary(e)) => {
                warn!(event = "auth_error", proto = "imap", ip = %ip, listener, error = %e);
                line(out, &format!("{tag} NO [UNAVAILABLE] Authentication is unavailable, try again later"));
                Next::Continue
            }
            Err(failure) => {
                let user = failure.user().unwrap_or("-").to_string();
                self.auth_failures += 1;
                warn!(
                    event = "auth_failure", proto = "imap", ip = %ip, listener, user = %log_user(&user), mechanism,
                    reason = failure.reason()
                );
                let verdict = self.services.guard.auth_failure("imap", ip, failure.user()).await;
                if verdict == rampart_guard::Verdict::Banned {
                    line(out, &format!("{tag} NO [AUTHENTICATIONFAILED] Authentication failed"));
                    line(out, "* BYE Too many failed logins");
                    return Next::Close;
                }
                // The pause grows with each failure in the session: a guesser gets few,
                // slow tries per connection.
                tokio::time::sleep(self.services.failure_delay * self.auth_failures).await;
                line(out, &format!("{tag} NO [AUTHENTICATIONFAILED] Authentication failed"));
                if self.auth_failures >= self.services.max_auth_failures {
                    line(out, "* BYE Too many failed logins");
                    return Next::Close;
                }
                Next::Continue
            }
        }
    }

    /// Unlocks the account's per-user key for this session. Ok(None) for an account not in
    /// per-user mode. A login that cannot unlock (CRAM-MD5: it carries no unlock key) or
    /// whose wrap is gone (an administrator reset the password) is refused: a session that
    /// could not read its own mail would only confuse the client. Err is the log reason.
    async fn unlock(&self, identity: &Identity) -> Result<Option<rampart_store::Unlocked>, &'static str> {
        let Some(keys) = &self.services.user_keys else { return Ok(None) };
        match keys.has_user_key(identity.account).await {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(_) => return Err("user_key_unavailable"),
        }
        let Some(unlock) = identity.unlock.clone() else { return Err("user_key_no_method") };
        let wrap = match unlock.wrap {
            UnlockWrap::Password => rampart_store::userkey::PASSWORD.to_string(),
            UnlockWrap::App(id) => rampart_store::userkey::app_wrap(id),
        };
        // A password's unlock key costs the SCRAM iterations of PBKDF2: off the async threads.
        let key = tokio::task::spawn_blocking(move || unlock.key()).await.map_err(|_| "user_key_unavailable")?;
        match keys.unlock_user_key(identity.account, &wrap, key).await {
            Ok(u) => Ok(u),
            Err(_) => Err("user_key_locked"),
        }
    }
}
