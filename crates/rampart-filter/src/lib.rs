//! Rampart's content filters without I/O: no tokio, no store, no DNS. The SMTP pipeline,
//! the store and the DNS lookups are wired around these pure parts.
//!
//! - [`message`]: one parsed view of a message (headers, decoded text and HTML parts,
//!   attachments, MIME structure), built once with bounded work;
//! - [`html`]: what an HTML part shows, links to and hides;
//! - [`urls`]: every URL and registrable domain a message names, for domain blocklists;
//! - [`rules`]: the built-in rules with named scores, as trail entries;
//! - [`bayes`]: the tokenizer and the statistical classifier (chi-square combining);
//! - [`header`]: the `X-Spam-Status` header written from a trail.
#![forbid(unsafe_code)]

pub mod bayes;
pub mod header;
pub mod html;
pub mod message;
pub mod rules;
pub mod urls;

pub use message::MessageView;
pub use urls::Urls;
