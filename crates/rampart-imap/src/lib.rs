//! IMAP4rev1 (RFC 3501) for Rampart.
//!
//! - [`parser`]: pure functions from bytes to typed commands, with hard limits;
//! - [`session`]: the state machine (not authenticated → authenticated → selected → logout)
//!   and the commands, each deciding nothing about sockets;
//! - [`conn`]: the driver — lines, literals and their limits, STARTTLS, IDLE, timeouts —
//!   over any async stream.

pub mod mime;
pub mod parser;
pub mod response;
