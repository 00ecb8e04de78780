//! Clients for the external filters Rampart hands messages to, ready for the SMTP pipeline:
//!
//! - [`clamd`]: ClamAV's daemon over INSTREAM — `[filter.antivirus]`; a message is streamed in
//!   chunks from the caller's buffer or reader, never copied to a file.
//! - [`milter`]: the Sendmail milter protocol (version 6), MTA side — `[[filter.milter]]`; a
//!   sans-I/O codec (fuzzed) and an async session per SMTP connection.
//! - [`net`]: the addresses both take (`host:port` or a Unix socket path).
//!
//! Neither decides what happens to a message: they return typed outcomes (clean / virus /
//! skipped; continue / verdict / modifications) and typed errors, and the pipeline turns them
//! into trail entries and applies `action` and `on_error` from the config.
#![forbid(unsafe_code)]

pub mod clamd;
pub mod milter;
pub mod net;

pub use clamd::{Clamd, Scan};
pub use milter::MilterSession;
pub use net::Address;
