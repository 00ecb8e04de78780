//! IMAP4rev1 (RFC 3501) protocol code for Rampart, without I/O: no sockets, no store, no
//! async runtime. `rampart-imap` drives it; the fuzz targets (`fuzz/`) and the stable
//! mutation test (`tests/parser_random.rs`) exercise it on their own.
//!
//! - [`parser`]: pure functions from bytes to typed commands, with hard limits, and the
//!   framing helpers the driver asks before it reads a literal. Written here rather than
//!   taken from imap-codec (2.0 exists only as alphas, with CONDSTORE and ID unfinished); see
//!   `parser`'s docs and docs/architecture.md for the reasons;
//! - [`mime`]: ENVELOPE, BODYSTRUCTURE and body sections from mail-parser's MIME tree;
//! - [`imapurl`]: IMAP URLs (RFC 5092) of one message or section, for CATENATE;
//! - [`metadata`]: which METADATA (RFC 5464) entries a GETMETADATA names, and its response;
//! - [`mutf7`]: modified UTF-7 mailbox names (RFC 3501 §5.1.3) to and from UTF-8 (IMAP4rev2);
//! - [`response`]: how strings, flags and dates go on the wire;
//! - [`results`]: the untagged answers to SEARCH and SORT (`* SEARCH`, `* SORT`, ESEARCH);
//! - [`context`]: the ADDTO/REMOVEFROM updates of a kept SORT result (CONTEXT=SORT);
//! - [`facts`]: what SEARCH's date keys, SORT and THREAD read of a message, from its parse or
//!   from the compact record kept since it was stored;
//! - [`summary`]: everything kept of a message when it is stored (that record, the header
//!   fields SEARCH asks most, ENVELOPE and BODYSTRUCTURE, the words of its text);
//! - [`words`]: the words the full-text index holds, and what a SEARCH string asks of them;
//! - [`sort`]: SORT's per-message keys and their order;
//! - [`subject`]: RFC 5256 base subjects and the i;ascii-casemap collation, for SORT;
//! - [`thread`]: RFC 5256 THREAD=ORDEREDSUBJECT and THREAD=REFERENCES over small keys.

#![forbid(unsafe_code)]

pub mod context;
pub mod facts;
pub mod imapurl;
pub mod metadata;
pub mod mutf7;
pub mod mime;
pub mod parser;
pub mod response;
pub mod results;
pub mod sort;
pub mod subject;
pub mod summary;
pub mod thread;
pub mod words;
