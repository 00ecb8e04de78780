//! SMTP as pure functions over bytes (RFC 5321), with no sockets, no runtime and no store, so
//! each piece is unit-tested and fuzzed on its own:
//!
//! - [`command`] parses a command line into a typed [`command::Command`];
//! - [`data`] scans DATA/BDAT content: dot-unstuffing, the CRLF.CRLF terminator, the bare
//!   CR/LF/NUL refusal that defeats SMTP smuggling, and size/line limits while streaming;
//! - [`headers`] counts a header section as it streams: size, fields, Received hops;
//! - [`reply`] is what a server sends: code, enhanced status, lines;
//! - [`response`] reads what a server sends, for the client side of outbound delivery, with
//!   caps on line length and line count.
#![forbid(unsafe_code)]

pub mod command;
pub mod data;
pub mod headers;
pub mod reply;
pub mod response;

pub use reply::Reply;
pub use response::{Response, ResponseError, ResponseReader};
