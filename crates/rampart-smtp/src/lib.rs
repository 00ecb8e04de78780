//! SMTP for Rampart (RFC 5321): the server and the outbound side, driving the pure protocol
//! code of [`rampart_smtp_proto`] (command parser, DATA/BDAT receiver, replies, the client's
//! reply reader — re-exported here as [`command`], [`data`], [`reply`]). One module per layer:
//!
//! - [`session`] is the state machine and policy: what each state allows, relay refusal,
//!   recipient lookup, storing the message;
//! - [`conn`] drives a session over any async stream: reading, pipelined replies, STARTTLS,
//!   timeouts;
//! - [`handle`] serves an accepted connection and [`refuse`] turns one away;
//! - [`trace`] writes Return-Path and Received headers and makes transaction ids;
//! - [`gateway`] knows the recipients of gateway domains and the downstreams that may relay;
//! - [`sending`] holds authenticated users to their sending quotas and suspends the sending
//!   of an account that looks taken over;
//! - outbound: [`queue`] runs the durable queue, [`outbound`] opens sessions to remote hosts
//!   over [`client`] (after [`dns`] found the MX hosts) and delivers messages over them, one
//!   session carrying many, and [`dsn`] writes bounces; [`sts`] applies MTA-STS policies
//!   and records each session's TLS outcome for TLS reports.
#![forbid(unsafe_code)]

pub mod accept;
pub mod client;
pub mod conn;
pub mod dns;
pub mod dsn;
#[cfg(test)]
mod fake_mx;
pub mod gateway;
pub mod outbound;
pub mod queue;
pub mod sending;
pub mod session;
pub mod sts;
pub mod trace;

pub use rampart_smtp_proto::{Reply, command, data, headers, reply};
pub use accept::{handle, refuse};
pub use session::{Role, Services, Session, Settings};
