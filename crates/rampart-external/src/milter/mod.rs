//! The milter client: Sendmail's mail filter protocol, version 6, from the MTA's side.
//!
//! - [`codec`]: the wire format as pure functions (framing, commands, replies), with hard
//!   limits, unit-tested and fuzzed (`fuzz/`'s `milter_reply`).
//! - [`session`]: [`MilterSession`], one conversation with one filter over TCP or a Unix
//!   socket: negotiation, the SMTP events in order, timeouts, and the end-of-message verdict
//!   with its modifications.
//! - [`types`]: what a session returns — steps, verdicts, the end-of-message answer, errors;
//!   [`eom`]: the checks and caps on a filter's modifications.
//! - [`macros`]: the macro values (`j`, `i`, `{auth_authen}`, ...) sent before commands.
//! - [`content`]: splitting a stored message into the header fields and body a filter gets.
//!
//! Why written here: the Rust milter crates `milter` and `indymilter` (GPL-3.0) implement the
//! filter side; `miltr-client` 0.1.3 (MIT) is the only MTA side and calls itself a barebones
//! client to experiment with — any answer but "continue" before end of message is an error,
//! `quit_nc` is `todo!()`, and it cannot decode change-sender, add-recipient with parameters,
//! progress or symbol lists.

pub mod codec;
pub mod content;
pub mod eom;
pub mod macros;
pub mod session;
pub mod types;

pub use codec::{Modification, Peer, SmtpReply};
pub use macros::Macros;
pub use session::MilterSession;
pub use types::{Eom, Error, ErrorKind, Stage, Step, Verdict};
