//! The message pipeline's sender-authentication stages and the verdict they lead to.
//!
//! - [`trail`]: the typed verdict trail (stage, result, named reason) stored with every message;
//! - [`checks`]: SPF, iprev, DKIM, ARC and DMARC on mail-auth, and the Authentication-Results
//!   header written from the same results;
//! - [`dns`]: the DNS those checks ask, with answers that can be put in ahead (offline in tests);
//! - [`decide`]: the one pure function from trail + policy to accept / Junk / defer / reject;
//! - [`headers`]: removing forged Authentication-Results headers that claim our authserv-id;
//! - [`dkim`]: signing keys, key generation, DKIM signing of submitted mail;
//! - [`report`]: DMARC aggregate reports, sent and received;
//! - [`canon`]: the relaxed-body-hash workaround for mail-auth 0.13.3.

#![forbid(unsafe_code)]

mod cache;
pub mod canon;
pub mod checks;
pub mod decide;
pub mod dkim;
pub mod dns;
pub mod headers;
pub mod lists;
pub mod report;
pub mod trail;

pub use checks::{Checker, Context, Findings, Forward, SpfCheck};
pub use decide::{Action, Decision, Policy, Refusal, SpfFailAction, decide, refusal};
pub use dns::{Dns, DnsFailure};
pub use trail::{Disposition, Entry, Outcome, Reason, Stage, Trail};
