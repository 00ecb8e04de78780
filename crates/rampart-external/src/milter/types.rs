//! What a milter session gives back: the [`Stage`] a command belongs to, its [`Step`] (go on
//! or a [`Verdict`]), the end-of-message answer [`Eom`], and the typed [`Error`].

use std::fmt;
use std::io;
use std::time::Duration;

use super::codec::{DecodeError, EncodeError, Modification, SmtpReply};

/// A step of the conversation, named in errors and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Negotiate,
    Connect,
    Helo,
    Mail,
    Rcpt,
    Data,
    Header,
    Eoh,
    Body,
    Eom,
    Abort,
    Quit,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Stage::Negotiate => "negotiate",
            Stage::Connect => "connect",
            Stage::Helo => "helo",
            Stage::Mail => "mail",
            Stage::Rcpt => "rcpt",
            Stage::Data => "data",
            Stage::Header => "header",
            Stage::Eoh => "eoh",
            Stage::Body => "body",
            Stage::Eom => "eom",
            Stage::Abort => "abort",
            Stage::Quit => "quit",
        };
        f.write_str(s)
    }
}

/// What a command got: go on, or a final answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Go on (also when the step was not sent: not offered, not wanted, or already decided).
    Continue,
    Verdict(Verdict),
}

/// A filter's final answer. Its scope depends on the stage: at connect or HELO the whole
/// connection (the session then sends nothing more but QUIT); at RCPT, reject and tempfail
/// refuse only that recipient; elsewhere the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Accept without further filtering (`a`, or `c` at end of message).
    Accept,
    /// Refuse for good (`r`, or a 5xx `y` with the filter's reply).
    Reject(Option<SmtpReply>),
    /// Refuse for now (`t`, or a 4xx `y` with the filter's reply).
    Tempfail(Option<SmtpReply>),
    /// Accept, then drop the message (record it: it is never silent in the trail).
    Discard,
    /// The filter asked to end the SMTP connection (`f`, `4`): answer 421.
    CloseConnection,
}

/// The end-of-message answer: the verdict and the modifications in the order sent. Body
/// replacement chunks arrive merged into one [`Modification::ReplaceBody`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eom {
    pub verdict: Verdict,
    pub modifications: Vec<Modification>,
}

/// Why a milter could not give an answer; the caller applies its `on_error`.
#[derive(Debug, thiserror::Error)]
#[error("milter {milter} at {stage}: {kind}")]
pub struct Error {
    pub milter: String,
    pub stage: Stage,
    pub kind: ErrorKind,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    #[error("address `{0}` is neither host:port nor a socket path")]
    BadAddress(String),
    #[error("not reachable: {0}")]
    Unreachable(io::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("connection failed: {0}")]
    Io(io::Error),
    #[error("the filter closed the connection")]
    Closed,
    #[error("malformed answer: {0}")]
    Protocol(DecodeError),
    #[error("unexpected answer: {0}")]
    Unexpected(&'static str),
    #[error("option negotiation failed: {0}")]
    Negotiation(String),
    #[error("the filter sent `{0}` without having negotiated it")]
    NotNegotiated(&'static str),
    #[error("the filter sent more than we accept: {0}")]
    TooMuch(&'static str),
    #[error("cannot send: {0}")]
    Encode(EncodeError),
    #[error("the session failed earlier")]
    Broken,
}
