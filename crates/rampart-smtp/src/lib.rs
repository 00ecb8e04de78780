//! SMTP for Rampart (RFC 5321), one module per layer:
//!
//! - [`command`] parses a command line into a typed [`command::Command`];
//! - [`data`] scans DATA/BDAT content: dot-unstuffing, the CRLF.CRLF terminator, the bare
//!   CR/LF/NUL refusal that defeats SMTP smuggling, and size/line limits while streaming;
//! - [`session`] is the state machine and policy: what each state allows, relay refusal,
//!   recipient lookup, storing the message;
//! - [`conn`] drives a session over any async stream: reading, pipelined replies, STARTTLS,
//!   timeouts;
//! - [`handle`] serves an accepted connection and [`refuse`] turns one away;
//! - [`trace`] writes Return-Path and Received headers and makes transaction ids;
//! - outbound: [`queue`] runs the durable queue, [`outbound`] makes one delivery attempt over
//!   [`client`] after [`dns`] found the MX hosts, and [`dsn`] writes bounces.

#[cfg(feature = "server")]
mod accept;
#[cfg(feature = "server")]
pub mod client;
pub mod command;
#[cfg(feature = "server")]
pub mod conn;
pub mod data;
#[cfg(feature = "server")]
pub mod dns;
#[cfg(feature = "server")]
pub mod dsn;
#[cfg(feature = "server")]
pub mod outbound;
#[cfg(feature = "server")]
pub mod queue;
pub mod reply;
#[cfg(feature = "server")]
pub mod session;
#[cfg(feature = "server")]
pub mod trace;

pub use reply::Reply;
#[cfg(feature = "server")]
pub use accept::{handle, refuse};
#[cfg(feature = "server")]
pub use session::{Role, Services, Session, Settings};
