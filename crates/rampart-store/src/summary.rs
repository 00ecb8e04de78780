//! What the store keeps of a message's text besides the text: a summary made once when the
//! message is stored, so that IMAP's SORT, THREAD, SEARCH and FETCH ENVELOPE/BODYSTRUCTURE
//! need not read and parse the message again.
//!
//! The store does not interpret a summary: the server gives it a [`Summarizer`]
//! (`SqliteStore::set_summarizer`), which IMAP implements, and the store keeps what that
//! returns — three opaque records and the words of a full-text index — once per blob (so a
//! COPY costs nothing), beside the message rows that point to it. Messages stored without a
//! summarizer (by a CLI command, or before summaries existed) have none; IMAP makes theirs the
//! first time it reads them ([`crate::MailStore::save_summaries`]).
//!
//! The words are indexed per account: a search reads only its own account's part of the
//! index, whoever else received the same message.

/// What is kept of one message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Sort and thread keys, dates (small: read for every message by SORT).
    pub keys: Vec<u8>,
    /// Header fields for SEARCH.
    pub headers: Vec<u8>,
    /// ENVELOPE and BODYSTRUCTURE for FETCH.
    pub fetch: Vec<u8>,
    /// The distinct words of the text, space-separated, each a run of letters and digits
    /// (what the index is searched for); None when the text was not indexed.
    pub words: Option<String>,
    /// The version of the summarizer that made it ([`Summarizer::version`]).
    pub version: u32,
}

/// Makes the summary of a message (prefix and body, as IMAP sees it).
pub trait Summarizer: Send + Sync + 'static {
    fn summarize(&self, message: &[u8]) -> Summary;

    /// The summary of `stored`, a form of `plain` that the server cannot read back (encrypted
    /// to the user's OpenPGP key): what describes the message (for FETCH, SORT, THREAD) is
    /// `stored`'s, what SEARCH reads (header values, words) is `plain`'s, marked so that
    /// SEARCH takes it as final. The store asks for it only where such a summary may be kept
    /// (`crate::pgp::PgpKey::search`). By default, `stored`'s own summary.
    fn summarize_encrypted(&self, plain: &[u8], stored: &[u8]) -> Summary {
        let _ = plain;
        self.summarize(stored)
    }

    /// The version of the summaries it makes, raised whenever what they hold changes: the
    /// store makes those of older versions again in the background (`SqliteStore::backfill`).
    /// Summaries kept before versions existed are version 1.
    fn version(&self) -> u32 {
        1
    }
}

/// Which records of the summaries [`crate::MailStore::stored`] reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Want {
    pub keys: bool,
    pub headers: bool,
    pub fetch: bool,
}

/// One message with the records of its summary that were asked for. `summary` is None for a
/// message that has none yet (its records are then None too).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    pub uid: u32,
    pub modseq: u64,
    pub size: u64,
    pub internal_date: i64,
    /// The summary's number: what the full-text index answers with.
    pub summary: Option<i64>,
    pub keys: Option<Vec<u8>>,
    pub headers: Option<Vec<u8>>,
    pub fetch: Option<Vec<u8>>,
}

/// One condition on the words of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WordMatch {
    /// One of its words is this.
    Is(String),
    /// One of its words starts with this.
    StartsWith(String),
    /// One of its words is one of these.
    OneOf(Vec<String>),
    /// One of its words ends with `suffix`; `known` are the shared index's words that do (its
    /// vocabulary, which holds no word of a sealed per-user summary: those are matched by
    /// `suffix` itself).
    EndsWith { suffix: String, known: Vec<String> },
    /// One of its words contains `fragment`; `known` as for [`WordMatch::EndsWith`].
    Contains { fragment: String, known: Vec<String> },
}
