//! The IMAP4rev1 (RFC 3501) server of Rampart. The protocol code without I/O — parser,
//! responses, MIME, SORT keys, subjects, threading — is `rampart-imap-proto`, re-exported
//! here under the same names ([`parser`], [`mime`], [`response`], [`results`], [`sort`],
//! [`subject`], [`thread`]); this crate adds what needs a store, sockets and time:
//!
//! - [`session`]: the state machine (not authenticated → authenticated → selected → logout),
//!   the mailbox view and the commands, deciding nothing about sockets;
//! - [`conn`]: the driver — lines, literals and their limits, STARTTLS, IDLE, timeouts — over
//!   any async stream;
//! - [`handle`] serves an accepted connection and [`refuse`] turns one away (`accept`).

#![forbid(unsafe_code)]

mod accept;
pub mod columns;
pub mod conn;
pub mod session;

pub use accept::{handle, refuse};
pub use rampart_imap_proto::{mime, mutf7, parser, response, results, sort, subject, thread};
pub use columns::ColumnCache;
pub use session::{Learner, MessageSummarizer, Services, Session, Settings};
