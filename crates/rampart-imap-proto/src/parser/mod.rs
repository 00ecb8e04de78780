//! The IMAP command parser: pure functions over bytes with hard limits.
//!
//! The driver frames a command — its lines and the literals they announce, each literal
//! checked against the limits *before* a byte of it is accepted ([`literal_announcement`]) —
//! and hands the complete command to [`parse`]. Parsing never does I/O, never allocates
//! more than the command it copies out, and bounds recursion ([`lexer::MAX_DEPTH`]), so it
//! can be fuzzed on its own (`fuzz/`).
//!
//! One function per command, grouped by what the command works on: `client` (login, ID,
//! ENABLE), `mailbox`, `message` (STORE, COPY/MOVE, UID EXPUNGE), `metadata` (RFC 5464), and
//! FETCH, SEARCH, SORT and THREAD each in a module with the items they take; `command`
//! dispatches on the name.
//!
//! Written here rather than taken from imap-codec: the 2.0 line exists only as alphas, with
//! CONDSTORE and ID marked unfinished and SPECIAL-USE only as generic flags; and the part
//! that matters most for safety — refusing a literal before it is read, with different
//! limits before and after login, and streaming APPEND bodies — sits in the framing, which
//! imap-codec leaves to its caller anyway. A parser of our own is ~1000 lines we can read,
//! fuzz and extend (CONDSTORE, LIST-EXTENDED, QUOTA) without waiting on an alpha.

mod client;
mod catenate;
mod fetch;
pub mod lexer;
mod mailbox;
mod message;
mod metadata;
mod notify;
mod partial;
mod search;
pub mod sequence;
mod sort;
mod thread;

pub use fetch::{FetchAttr, Section, SectionPart, parse_fetch_items, parse_section};
pub use mailbox::{ListArgs, Qresync, StatusItem};
pub use message::StoreOp;
pub use metadata::{Depth, entry_name};
pub use notify::{NotifyEvent, NotifyFilter, NotifyGroup};
pub use partial::PartialRange;
pub use search::SearchKey;
pub use sequence::{SeqNum, SequenceSet};
pub use sort::{SortCriterion, SortKey};
pub use thread::ThreadAlgorithm;

use lexer::Cursor;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("{0}")]
    Syntax(String),
    #[error("unknown command")]
    UnknownCommand,
    #[error("lists nested too deeply")]
    TooDeep,
    #[error("too big")]
    TooBig,
}

/// One message of an APPEND.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendMessage {
    pub flags: Vec<String>,
    /// INTERNALDATE: the instant and its zone in minutes east of UTC.
    pub date: Option<(i64, i32)>,
    pub message: Vec<u8>,
    /// Where its literal's `{` is in the command: the driver streams a large literal to a blob
    /// and leaves `{0}` there, and names the blob by this offset.
    pub literal_at: usize,
    /// CATENATE (RFC 4469): the message is made of these parts, in order, and `message` is
    /// empty.
    pub catenate: Option<Vec<CatPart>>,
    /// Sent as `UTF8 (~{n}...)`, or with such a CATENATE part (RFC 6855 §4): allowed only
    /// after ENABLE UTF8=ACCEPT.
    pub utf8: bool,
}

/// One part of a CATENATE message (RFC 4469 §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatPart {
    /// `TEXT literal`: octets given here; `literal_at` names it as for a plain APPEND.
    Text { text: Vec<u8>, literal_at: usize },
    /// `URL astring`: a message or section already on the server (RFC 5092).
    Url(String),
}

/// A parsed command: its tag (for the reply) and what it asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub tag: String,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Capability,
    Noop,
    Logout,
    StartTls,
    Authenticate { mechanism: String, initial: Option<Vec<u8>> },
    Login { user: Vec<u8>, password: Vec<u8> },
    Select { mailbox: String, condstore: bool, read_only: bool, qresync: Option<Qresync> },
    Create { mailbox: String, special_use: Vec<String> },
    Delete(String),
    Rename { from: String, to: String },
    Subscribe(String),
    Unsubscribe(String),
    List(ListArgs),
    Lsub { reference: String, pattern: String },
    Status { mailbox: String, items: Vec<StatusItem> },
    /// One message, or several for MULTIAPPEND (RFC 3502), stored all or none.
    Append { mailbox: String, messages: Vec<AppendMessage> },
    Check,
    Close,
    Unselect,
    Expunge { uids: Option<SequenceSet> },
    Search { uid: bool, charset: Option<String>, key: SearchKey, ret: Option<Vec<String>> },
    /// RFC 5256 SORT, with RFC 5267 §3 RETURN options (ESORT).
    Sort { uid: bool, criteria: Vec<SortCriterion>, charset: String, key: SearchKey, ret: Option<Vec<String>> },
    /// RFC 5256 THREAD.
    Thread { uid: bool, algorithm: ThreadAlgorithm, charset: String, key: SearchKey },
    /// RFC 9394 PARTIAL: only these positions of the messages the FETCH would answer.
    Fetch { uid: bool, set: SequenceSet, attrs: Vec<FetchAttr>, changed_since: Option<u64>, vanished: bool, partial: Option<PartialRange> },
    Store { uid: bool, set: SequenceSet, op: StoreOp, silent: bool, flags: Vec<String>, unchanged_since: Option<u64> },
    Copy { uid: bool, set: SequenceSet, mailbox: String, moving: bool },
    Idle,
    Namespace,
    Id(Vec<(String, Option<String>)>),
    Enable(Vec<String>),
    GetQuota(String),
    GetQuotaRoot(String),
    SetQuota(String),
    /// RFC 4978: the algorithm asked for.
    Compress(String),
    /// RFC 8437: back to the not-authenticated state.
    Unauthenticate,
    /// RFC 5465: NOTIFY SET (Some groups, with STATUS) or NOTIFY NONE (None).
    Notify { status: bool, groups: Option<Vec<NotifyGroup>> },
    /// RFC 5267 §4.2: stop the updates of the searches with these tags.
    CancelUpdate(Vec<String>),
    /// RFC 5464 §4.2: entries of the server (mailbox "") or of a mailbox.
    GetMetadata { mailbox: String, entries: Vec<String>, depth: Depth, max_size: Option<u64> },
    /// RFC 5464 §4.3: set (Some) or remove (NIL) entries, all or none.
    SetMetadata { mailbox: String, entries: Vec<(String, Option<Vec<u8>>)> },
}

impl Kind {
    /// The command name for logs and the "which state allows it" table.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Capability => "CAPABILITY",
            Kind::Noop => "NOOP",
            Kind::Logout => "LOGOUT",
            Kind::StartTls => "STARTTLS",
            Kind::Authenticate { .. } => "AUTHENTICATE",
            Kind::Login { .. } => "LOGIN",
            Kind::Select { read_only: false, .. } => "SELECT",
            Kind::Select { read_only: true, .. } => "EXAMINE",
            Kind::Create { .. } => "CREATE",
            Kind::Delete(_) => "DELETE",
            Kind::Rename { .. } => "RENAME",
            Kind::Subscribe(_) => "SUBSCRIBE",
            Kind::Unsubscribe(_) => "UNSUBSCRIBE",
            Kind::List(_) => "LIST",
            Kind::Lsub { .. } => "LSUB",
            Kind::Status { .. } => "STATUS",
            Kind::Append { .. } => "APPEND",
            Kind::Check => "CHECK",
            Kind::Close => "CLOSE",
            Kind::Unselect => "UNSELECT",
            Kind::Expunge { .. } => "EXPUNGE",
            Kind::Search { .. } => "SEARCH",
            Kind::Sort { .. } => "SORT",
            Kind::Thread { .. } => "THREAD",
            Kind::Fetch { .. } => "FETCH",
            Kind::Store { .. } => "STORE",
            Kind::Copy { moving: false, .. } => "COPY",
            Kind::Copy { moving: true, .. } => "MOVE",
            Kind::Idle => "IDLE",
            Kind::Namespace => "NAMESPACE",
            Kind::Id(_) => "ID",
            Kind::Enable(_) => "ENABLE",
            Kind::GetQuota(_) => "GETQUOTA",
            Kind::GetQuotaRoot(_) => "GETQUOTAROOT",
            Kind::SetQuota(_) => "SETQUOTA",
            Kind::Compress(_) => "COMPRESS",
            Kind::Unauthenticate => "UNAUTHENTICATE",
            Kind::CancelUpdate(_) => "CANCELUPDATE",
            Kind::Notify { .. } => "NOTIFY",
            Kind::GetMetadata { .. } => "GETMETADATA",
            Kind::SetMetadata { .. } => "SETMETADATA",
        }
    }
}

impl Kind {
    /// Every mailbox name (and LIST reference and pattern) the command carries, for a session
    /// that turns IMAP4rev2's UTF-8 names into the stored form (RFC 9051 §5.1).
    pub fn mailbox_names_mut(&mut self) -> Vec<&mut String> {
        match self {
            Kind::Select { mailbox, .. }
            | Kind::Create { mailbox, .. }
            | Kind::Delete(mailbox)
            | Kind::Subscribe(mailbox)
            | Kind::Unsubscribe(mailbox)
            | Kind::Status { mailbox, .. }
            | Kind::Append { mailbox, .. }
            | Kind::Copy { mailbox, .. }
            | Kind::GetQuotaRoot(mailbox)
            | Kind::GetMetadata { mailbox, .. }
            | Kind::SetMetadata { mailbox, .. } => vec![mailbox],
            Kind::Rename { from, to } => vec![from, to],
            Kind::Lsub { reference, pattern } => vec![reference, pattern],
            Kind::List(a) => std::iter::once(&mut a.reference).chain(a.patterns.iter_mut()).collect(),
            Kind::Notify { groups: Some(groups), .. } => groups
                .iter_mut()
                .flat_map(|g| match &mut g.filter {
                    NotifyFilter::Subtree(n) | NotifyFilter::Mailboxes(n) => n.iter_mut().collect(),
                    _ => Vec::new(),
                })
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// The tag of a command line, for replies to commands that cannot be parsed. A tag is
/// 1*<any ASTRING-CHAR except "+"> (RFC 3501 §9).
pub fn tag_of(line: &[u8]) -> Option<&str> {
    let end = line.iter().position(|&c| c == b' ' || c == b'\r' || c == b'\n').unwrap_or(line.len());
    let tag = &line[..end];
    let ok = !tag.is_empty()
        && tag.iter().all(|&c| c > 0x20 && c < 0x7f && !matches!(c, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b'+'));
    if ok { std::str::from_utf8(tag).ok() } else { None }
}

/// A literal announced at the end of a line (`{N}` or `{N+}` before CRLF): its size and
/// whether it is synchronizing. `line` is without its CRLF.
pub fn literal_announcement(line: &[u8]) -> Option<(u64, bool)> {
    let rest = line.strip_suffix(b"}")?;
    let open = memchr::memrchr(b'{', rest)?;
    let inner = &rest[open + 1..];
    let (digits, sync) = match inner.strip_suffix(b"+") {
        Some(d) => (d, false),
        None => (inner, true),
    };
    if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = std::str::from_utf8(digits).ok()?.parse::<u64>().ok()?;
    Some((n, sync))
}

/// Whether the command being framed is an APPEND, whose literal may be as large as
/// APPENDLIMIT (and streams to a blob) where any other command's is held to the command limit.
pub fn is_append(cmd: &[u8]) -> bool {
    let mut words = cmd.splitn(3, |&c| c == b' ');
    words.next();
    words.next().is_some_and(|w| w.eq_ignore_ascii_case(b"APPEND"))
}

/// Parses one complete command (lines joined with their CRLFs, literals inline), without the
/// final CRLF.
pub fn parse(input: &[u8]) -> Result<Command, ParseError> {
    let mut c = Cursor::new(input);
    let tag = tag_of(input).ok_or_else(|| ParseError::Syntax("missing or invalid tag".into()))?.to_string();
    c.pos = tag.len();
    c.sp()?;
    let name = c.atom()?.to_ascii_uppercase();
    let kind = command(&mut c, &name)?;
    if !c.at_end() {
        return Err(c.err("unexpected characters after the command"));
    }
    Ok(Command { tag, kind })
}

/// The command named `name`, its arguments parsed by the command's own function.
fn command(c: &mut Cursor<'_>, name: &[u8]) -> Result<Kind, ParseError> {
    Ok(match name {
        b"CAPABILITY" => Kind::Capability,
        b"NOOP" => Kind::Noop,
        b"LOGOUT" => Kind::Logout,
        b"STARTTLS" => Kind::StartTls,
        b"CHECK" => Kind::Check,
        b"CLOSE" => Kind::Close,
        b"UNSELECT" => Kind::Unselect,
        b"IDLE" => Kind::Idle,
        b"NAMESPACE" => Kind::Namespace,
        b"UNAUTHENTICATE" => Kind::Unauthenticate,
        b"EXPUNGE" => Kind::Expunge { uids: None },
        b"AUTHENTICATE" => client::authenticate(c)?,
        b"LOGIN" => client::login(c)?,
        b"ID" => client::id(c)?,
        b"ENABLE" => client::enable(c)?,
        b"COMPRESS" => client::compress(c)?,
        b"SELECT" => mailbox::select(c, false)?,
        b"EXAMINE" => mailbox::select(c, true)?,
        b"CREATE" => mailbox::create(c)?,
        b"DELETE" => Kind::Delete(mailbox::argument(c)?),
        b"RENAME" => mailbox::rename(c)?,
        b"SUBSCRIBE" => Kind::Subscribe(mailbox::argument(c)?),
        b"UNSUBSCRIBE" => Kind::Unsubscribe(mailbox::argument(c)?),
        b"LIST" => Kind::List(mailbox::list(c)?),
        b"LSUB" => mailbox::lsub(c)?,
        b"STATUS" => mailbox::status(c)?,
        b"APPEND" => mailbox::append(c)?,
        b"GETQUOTA" => mailbox::get_quota(c)?,
        b"GETQUOTAROOT" => Kind::GetQuotaRoot(mailbox::argument(c)?),
        b"SETQUOTA" => mailbox::set_quota(c)?,
        b"SEARCH" => search::command(c, false)?,
        b"SORT" => sort::command(c, false)?,
        b"THREAD" => thread::command(c, false)?,
        b"FETCH" => fetch::command(c, false)?,
        b"STORE" => message::store(c, false)?,
        b"COPY" => message::copy(c, false, false)?,
        b"MOVE" => message::copy(c, false, true)?,
        b"CANCELUPDATE" => search::cancel_update(c)?,
        b"NOTIFY" => notify::command(c)?,
        b"GETMETADATA" => metadata::get(c)?,
        b"SETMETADATA" => metadata::set(c)?,
        b"UID" => uid(c)?,
        _ => return Err(ParseError::UnknownCommand),
    })
}

/// "UID" SP (COPY / MOVE / FETCH / SEARCH / SORT / THREAD / STORE / EXPUNGE): the same
/// commands with UIDs for sequence numbers (RFC 3501 §6.4.8, RFC 4315 §2.1, RFC 6851 §3.2).
fn uid(c: &mut Cursor<'_>) -> Result<Kind, ParseError> {
    c.sp()?;
    let sub = c.atom()?.to_ascii_uppercase();
    Ok(match sub.as_slice() {
        b"SEARCH" => search::command(c, true)?,
        b"SORT" => sort::command(c, true)?,
        b"THREAD" => thread::command(c, true)?,
        b"FETCH" => fetch::command(c, true)?,
        b"STORE" => message::store(c, true)?,
        b"COPY" => message::copy(c, true, false)?,
        b"MOVE" => message::copy(c, true, true)?,
        b"EXPUNGE" => message::uid_expunge(c)?,
        _ => return Err(ParseError::UnknownCommand),
    })
}

#[cfg(test)]
mod tests;
