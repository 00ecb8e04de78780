//! IMAP4rev1 (RFC 3501) for Rampart.
//!
//! - [`parser`]: pure functions from bytes to typed commands, with hard limits. Written here
//!   rather than taken from imap-codec (2.0 exists only as alphas, with CONDSTORE and ID
//!   unfinished); see `parser`'s docs and docs/architecture.md for the reasons;
//! - [`mime`]: ENVELOPE, BODYSTRUCTURE and body sections from mail-parser's MIME tree;
//! - [`response`]: how strings, flags and dates go on the wire;
//! - [`subject`]: RFC 5256 base subjects and the i;ascii-casemap collation, for SORT;
//! - [`thread`]: RFC 5256 THREAD=ORDEREDSUBJECT and THREAD=REFERENCES over small keys;
//! - `session`: the state machine (not authenticated → authenticated → selected → logout),
//!   the mailbox view and the commands, deciding nothing about sockets;
//! - `conn`: the driver — lines, literals and their limits, STARTTLS, IDLE, timeouts — over
//!   any async stream.
//!
//! The `server` feature (default) holds `session` and `conn`; without it the crate is only the
//! parser and the MIME layer, which is what the fuzz target (`fuzz/`) builds.

pub mod mime;
pub mod parser;
pub mod response;
pub mod subject;
pub mod thread;

#[cfg(feature = "server")]
pub mod conn;
#[cfg(feature = "server")]
mod serve;
#[cfg(feature = "server")]
pub mod session;

#[cfg(feature = "server")]
pub use serve::{handle, refuse};
#[cfg(feature = "server")]
pub use session::{Services, Session, Settings};
