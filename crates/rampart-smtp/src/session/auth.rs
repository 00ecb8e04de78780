//! SMTP AUTH (RFC 4954) around a SASL exchange from rampart-auth.
//!
//! While an exchange runs (the `Auth` phase), every line the client sends is a SASL response,
//! not a command; [`Session::command`] routes it here. `*` cancels. Failures are answered after
//! a pause that grows with each failure in the session, and past `auth.max_failures` the
//! session ends, so a password guesser gets few tries per connection and slowly.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use rampart_auth::{Exchange, Failure, Mechanism, Step};
use tracing::{info, warn};

use super::state::Phase;
use super::{Connection, Next, Session};
use crate::reply::Reply;

impl Session {
    /// AUTH, once [`Session::allowed`] has checked role, TLS, EHLO and that nobody is logged in.
    pub(super) async fn auth(&mut self, mechanism: String, initial: Option<String>) -> Next {
        let cb = self.conn.tls.as_ref().and_then(|t| t.channel_binding.clone());
        let Some(mut exchange) = Mechanism::from_name(&mechanism).and_then(|m| self.conn.services.auth.start(m, cb).ok()) else {
            return self.conn.error(Reply::new(504, "5.5.4", "Unrecognized authentication type"));
        };
        // RFC 4954 §4: "=" is an empty initial response.
        let initial = match initial.as_deref() {
            None => None,
            Some("=") => Some(Vec::new()),
            Some(b64) => match B64.decode(b64) {
                Ok(bytes) => Some(bytes),
                Err(_) => return self.conn.error(Reply::new(501, "5.5.2", "Invalid base64 in initial response")),
            },
        };
        let (next, done) = self.conn.auth_step(&mut exchange, initial).await;
        if !done {
            self.phase = match std::mem::replace(&mut self.phase, Phase::Connected) {
                Phase::Greeted(helo) => Phase::Auth(helo, exchange),
                other => other,
            };
        }
        next
    }
}

impl Connection {
    /// A line sent while an exchange is running; `true` when the exchange is over.
    pub(super) async fn auth_response(&mut self, exchange: &mut Exchange, line: &[u8]) -> (Next, bool) {
        if line == b"*" {
            return (self.error(Reply::new(501, "5.0.0", "Authentication cancelled")), true);
        }
        match B64.decode(line) {
            Ok(bytes) => self.auth_step(exchange, Some(bytes)).await,
            Err(_) => (self.error(Reply::new(501, "5.5.2", "Invalid base64 in response")), true),
        }
    }

    /// One step of the exchange; `true` when it is over (success or failure).
    async fn auth_step(&mut self, exchange: &mut Exchange, response: Option<Vec<u8>>) -> (Next, bool) {
        let mechanism = exchange.mechanism();
        match exchange.step(response.as_deref()).await {
            Step::Challenge(c) => (Next::Reply(Reply::new(334, "", B64.encode(c))), false),
            Step::Success(identity) => {
                let guard = self.services.guard.clone();
                if !guard.login_allowed(self.remote.ip(), &identity.address).await {
                    // The account is under attack and this address never logged in to it.
                    return (Next::Reply(Reply::new(454, "4.7.0", "Temporary authentication failure")), true);
                }
                if guard.login_suspended(&identity.address).await {
                    // RFC 5248: X.7.13, "user account disabled", after a successful authentication.
                    info!(event = "auth_refused", proto = "smtp", ip = %self.remote.ip(), user = %identity.address, reason = "account_suspended");
                    return (Next::Reply(Reply::new(525, "5.7.13", "Account suspended, contact your administrator")), true);
                }
                guard.auth_success("smtp", self.remote.ip(), &identity.address).await;
                info!(
                    event = "auth_success", proto = "smtp", ip = %self.remote.ip(), listener = self.settings.listener,
                    user = %identity.address, mechanism = mechanism.name(),
                    app_password = identity.app_password.as_deref().unwrap_or("-")
                );
                self.milters.set_macro("auth_authen", identity.address.clone());
                self.user = Some(identity);
                (Next::Reply(Reply::new(235, "2.7.0", "Authentication successful")), true)
            }
            Step::Failure(failure) => (self.auth_failed(mechanism, failure).await, true),
        }
    }

    async fn auth_failed(&mut self, mechanism: Mechanism, failure: Failure) -> Next {
        warn!(
            event = "auth_failure", proto = "smtp", ip = %self.remote.ip(), listener = self.settings.listener,
            user = failure.user().unwrap_or("-"), mechanism = mechanism.name(), reason = failure.reason()
        );
        if let Failure::Temporary(_) = failure {
            return Next::Reply(Reply::new(454, "4.7.0", "Temporary authentication failure"));
        }
        self.auth_failures += 1;
        let verdict = self.services.guard.auth_failure("smtp", self.remote.ip(), failure.user()).await;
        if verdict == rampart_guard::Verdict::Banned {
            return Next::Close(Reply::new(421, "4.7.0", "Too many authentication failures, closing connection"));
        }
        let limits = self.services.auth_limits;
        tokio::time::sleep(limits.failure_delay * self.auth_failures).await;
        if self.auth_failures >= limits.max_failures {
            return Next::Close(Reply::new(421, "4.7.0", "Too many authentication failures, closing connection"));
        }
        Next::Reply(Reply::new(535, "5.7.8", "Authentication credentials invalid"))
    }
}
