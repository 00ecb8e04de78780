//! SASL (RFC 4422) on the server side, shared by SMTP AUTH (RFC 4954) and IMAP AUTHENTICATE.
//!
//! The protocol layer owns the framing (base64, `*` to cancel, SASL-IR); an [`Exchange`]
//! takes decoded client responses and answers with a challenge, success or failure. SCRAM's
//! server-final message is sent as a last challenge that the client answers with an empty
//! response, which is how both SMTP and IMAP carry "additional data with success".
//!
//! DIGEST-MD5 is never offered: RFC 6331 moved it to Historic for its weak security and
//! interoperability problems.

use std::sync::Arc;

use crate::authenticator::{Authenticator, Identity};
use crate::scram::{self, Gs2Flag, ScramKeys};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// RFC 4616.
    Plain,
    /// draft-murchison-sasl-login: widely used by older clients.
    Login,
    /// RFC 2195; only when enabled in the config.
    CramMd5,
    /// RFC 7677.
    ScramSha256,
    /// RFC 7677 with `tls-exporter` channel binding (RFC 9266).
    ScramSha256Plus,
}

impl Mechanism {
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
            Mechanism::CramMd5 => "CRAM-MD5",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha256Plus => "SCRAM-SHA-256-PLUS",
        }
    }

    pub fn from_name(name: &str) -> Option<Mechanism> {
        [Mechanism::Plain, Mechanism::Login, Mechanism::CramMd5, Mechanism::ScramSha256, Mechanism::ScramSha256Plus]
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name))
    }
}

/// Why authentication failed. The protocols map every case to one reply (SMTP 535 5.7.8,
/// IMAP NO [AUTHENTICATIONFAILED]) so a client learns nothing about which part was wrong;
/// the log gets the detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The client's message did not follow the mechanism.
    Malformed(&'static str),
    /// Wrong user or password. `user` is what the client claimed, for logs and counters.
    Credentials { user: Option<String> },
    /// SCRAM channel binding missing, of another type, or not matching this connection.
    ChannelBinding { user: Option<String> },
    /// The mechanism is not offered here.
    Unavailable,
    /// The store could not be read: a temporary failure (SMTP 454 4.7.0).
    Temporary(String),
}

impl Failure {
    pub fn user(&self) -> Option<&str> {
        match self {
            Failure::Credentials { user } | Failure::ChannelBinding { user } => user.as_deref(),
            _ => None,
        }
    }

    /// A short name for logs: `reason=...`.
    pub fn reason(&self) -> &'static str {
        match self {
            Failure::Malformed(_) => "malformed",
            Failure::Credentials { .. } => "bad_credentials",
            Failure::ChannelBinding { .. } => "channel_binding",
            Failure::Unavailable => "mechanism_unavailable",
            Failure::Temporary(_) => "temporary",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this challenge (raw bytes; the protocol base64-encodes it) and wait for a response.
    Challenge(Vec<u8>),
    Success(Identity),
    Failure(Failure),
}

enum State {
    Start,
    PlainWait,
    LoginUser,
    LoginPassword { user: String },
    CramWait { challenge: String },
    ScramWait,
    ScramFinal(Box<ScramPending>),
    ScramDone(Identity),
    Finished,
}

struct ScramPending {
    user: String,
    /// None when the user does not exist: the exchange runs to the end on made-up keys so the
    /// client cannot tell unknown users from wrong passwords.
    identity: Option<Identity>,
    keys: ScramKeys,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    expected_cbind: Vec<u8>,
}

/// One authentication attempt.
pub struct Exchange {
    auth: Arc<Authenticator>,
    mechanism: Mechanism,
    /// `tls-exporter` bytes of this connection when it is TLS.
    channel_binding: Option<Vec<u8>>,
    state: State,
}

impl Exchange {
    pub(crate) fn new(auth: Arc<Authenticator>, mechanism: Mechanism, channel_binding: Option<Vec<u8>>) -> Exchange {
        Exchange { auth, mechanism, channel_binding, state: State::Start }
    }

    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Advances the exchange. The first call carries the initial response if the client sent
    /// one (SASL-IR, RFC 4959 / RFC 4954), else `None`; later calls always carry a response.
    pub async fn step(&mut self, response: Option<&[u8]>) -> Step {
        let state = std::mem::replace(&mut self.state, State::Finished);
        let step = self.advance(state, response).await;
        if !matches!(step, Step::Challenge(_)) {
            self.state = State::Finished;
        }
        step
    }

    async fn advance(&mut self, state: State, response: Option<&[u8]>) -> Step {
        let text = |r: Option<&[u8]>| r.and_then(|r| std::str::from_utf8(r).ok()).map(str::to_string);
        match (state, response) {
            (State::Start, None) => match self.mechanism {
                Mechanism::Plain => self.wait(State::PlainWait, Vec::new()),
                Mechanism::Login => self.wait(State::LoginUser, b"Username:".to_vec()),
                Mechanism::CramMd5 => {
                    let challenge = self.auth.cram_challenge();
                    self.wait(State::CramWait { challenge: challenge.clone() }, challenge.into_bytes())
                }
                Mechanism::ScramSha256 | Mechanism::ScramSha256Plus => self.wait(State::ScramWait, Vec::new()),
            },
            (State::Start, Some(initial)) => match self.mechanism {
                Mechanism::Plain => self.plain(initial).await,
                Mechanism::Login => match text(Some(initial)) {
                    Some(user) => self.wait(State::LoginPassword { user }, b"Password:".to_vec()),
                    None => Step::Failure(Failure::Malformed("user name is not UTF-8")),
                },
                // RFC 2195: the server speaks first; an initial response is a protocol error.
                Mechanism::CramMd5 => Step::Failure(Failure::Malformed("CRAM-MD5 takes no initial response")),
                Mechanism::ScramSha256 | Mechanism::ScramSha256Plus => self.scram_first(initial).await,
            },
            (State::PlainWait, Some(r)) => self.plain(r).await,
            (State::LoginUser, Some(r)) => match text(Some(r)) {
                Some(user) => self.wait(State::LoginPassword { user }, b"Password:".to_vec()),
                None => Step::Failure(Failure::Malformed("user name is not UTF-8")),
            },
            (State::LoginPassword { user }, Some(r)) => match text(Some(r)) {
                Some(password) => self.finish(self.auth.verify_password(&user, &password).await),
                None => Step::Failure(Failure::Credentials { user: Some(user) }),
            },
            (State::CramWait { challenge }, Some(r)) => {
                let Some(text) = text(Some(r)) else { return Step::Failure(Failure::Malformed("not UTF-8")) };
                let Some((user, digest)) = text.rsplit_once(' ') else {
                    return Step::Failure(Failure::Malformed("CRAM-MD5 response is `user digest`"));
                };
                self.finish(self.auth.verify_cram(user, &challenge, digest).await)
            }
            (State::ScramWait, Some(r)) => self.scram_first(r).await,
            (State::ScramFinal(pending), Some(r)) => self.scram_final(*pending, r),
            // RFC 5802 §3: after the server-final message the client has nothing more to say.
            (State::ScramDone(identity), Some([])) => Step::Success(identity),
            (State::ScramDone(_), Some(_)) => Step::Failure(Failure::Malformed("unexpected data after SCRAM")),
            (_, None) => Step::Failure(Failure::Malformed("a response is needed")),
            (State::Finished, Some(_)) => Step::Failure(Failure::Malformed("the exchange is over")),
        }
    }

    fn wait(&mut self, next: State, challenge: Vec<u8>) -> Step {
        self.state = next;
        Step::Challenge(challenge)
    }

    fn finish(&self, result: Result<Identity, Failure>) -> Step {
        match result {
            Ok(id) => Step::Success(id),
            Err(f) => Step::Failure(f),
        }
    }

    /// RFC 4616: `[authzid] NUL authcid NUL passwd`.
    async fn plain(&mut self, response: &[u8]) -> Step {
        let mut parts = response.split(|&b| b == 0);
        let (Some(authzid), Some(authcid), Some(password), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Step::Failure(Failure::Malformed("PLAIN response is authzid NUL authcid NUL password"));
        };
        let (Ok(authzid), Ok(authcid), Ok(password)) =
            (std::str::from_utf8(authzid), std::str::from_utf8(authcid), std::str::from_utf8(password))
        else {
            return Step::Failure(Failure::Malformed("PLAIN fields must be UTF-8"));
        };
        // Acting for another user (proxy authorization) is not supported.
        if !authzid.is_empty() && !authzid.eq_ignore_ascii_case(authcid) {
            return Step::Failure(Failure::Credentials { user: Some(authcid.to_string()) });
        }
        self.finish(self.auth.verify_password(authcid, password).await)
    }

    async fn scram_first(&mut self, response: &[u8]) -> Step {
        let Some(first) = std::str::from_utf8(response).ok().and_then(scram::parse_client_first) else {
            return Step::Failure(Failure::Malformed("not a SCRAM client-first-message"));
        };
        let user = Some(first.username.clone());
        let plus = self.mechanism == Mechanism::ScramSha256Plus;
        // RFC 5802 §6: which gs2 flags are acceptable depends on what the server offered.
        let cbind_data: &[u8] = match (&first.flag, plus, &self.channel_binding) {
            (Gs2Flag::Used(kind), true, Some(data)) if kind == scram::CHANNEL_BINDING_TYPE => data,
            (Gs2Flag::None, false, _) => &[],
            // "y" means the client thinks we cannot bind; if we could, someone stripped PLUS
            // from our mechanism list on the way.
            (Gs2Flag::SupportedNotUsed, false, None) => &[],
            _ => return Step::Failure(Failure::ChannelBinding { user }),
        };
        if first.authzid.as_ref().is_some_and(|a| !a.eq_ignore_ascii_case(&first.username)) {
            return Step::Failure(Failure::Credentials { user });
        }
        let (identity, keys) = match self.auth.scram_keys(&first.username).await {
            Ok(found) => found,
            Err(f) => return Step::Failure(f),
        };
        let (server_first, nonce) = scram::server_first(&first.nonce, &keys);
        let mut expected_cbind = first.gs2_header.clone().into_bytes();
        expected_cbind.extend_from_slice(cbind_data);
        let challenge = server_first.clone().into_bytes();
        let pending = ScramPending {
            user: first.username,
            identity,
            keys,
            client_first_bare: first.bare,
            server_first,
            nonce,
            expected_cbind,
        };
        self.wait(State::ScramFinal(Box::new(pending)), challenge)
    }

    fn scram_final(&mut self, p: ScramPending, response: &[u8]) -> Step {
        let Ok(text) = std::str::from_utf8(response) else {
            return Step::Failure(Failure::Malformed("not UTF-8"));
        };
        let user = Some(p.user.clone());
        match scram::verify_client_final(text, &p.client_first_bare, &p.server_first, &p.nonce, &p.expected_cbind, &p.keys) {
            Ok((server_final, client_key)) => match p.identity {
                Some(mut identity) => {
                    identity.unlock = Some(crate::authenticator::Unlock::client_key(client_key));
                    self.wait(State::ScramDone(identity), server_final.into_bytes())
                }
                None => Step::Failure(Failure::Credentials { user }),
            },
            Err(scram::FinalError::ChannelBinding) => Step::Failure(Failure::ChannelBinding { user }),
            Err(scram::FinalError::Malformed) => Step::Failure(Failure::Malformed("not a SCRAM client-final-message")),
            Err(scram::FinalError::Proof) => Step::Failure(Failure::Credentials { user }),
        }
    }
}
