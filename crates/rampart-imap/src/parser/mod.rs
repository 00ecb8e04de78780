//! The IMAP command parser: pure functions over bytes with hard limits.
//!
//! The driver frames a command — its lines and the literals they announce, each literal
//! checked against the limits *before* a byte of it is accepted ([`literal_announcement`]) —
//! and hands the complete command to [`parse`]. Parsing never does I/O, never allocates
//! more than the command it copies out, and bounds recursion ([`lexer::MAX_DEPTH`]), so it
//! can be fuzzed on its own (`fuzz/`).
//!
//! Written here rather than taken from imap-codec: the 2.0 line exists only as alphas, with
//! CONDSTORE and ID marked unfinished and SPECIAL-USE only as generic flags; and the part
//! that matters most for safety — refusing a literal before it is read, with different
//! limits before and after login, and streaming APPEND bodies — sits in the framing, which
//! imap-codec leaves to its caller anyway. A parser of our own is ~1000 lines we can read,
//! fuzz and extend (CONDSTORE, LIST-EXTENDED, QUOTA) without waiting on an alpha.

pub mod lexer;
mod fetch;
mod search;
pub mod sequence;
mod sort;
mod thread;

pub use fetch::{FetchAttr, Section, SectionPart, parse_fetch_items};
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
    Append { mailbox: String, flags: Vec<String>, date: Option<i64>, message: Vec<u8> },
    Check,
    Close,
    Unselect,
    Expunge { uids: Option<SequenceSet> },
    Search { uid: bool, charset: Option<String>, key: SearchKey, ret: Option<Vec<String>> },
    /// RFC 5256 SORT, with RFC 5267 §3 RETURN options (ESORT).
    Sort { uid: bool, criteria: Vec<SortCriterion>, charset: String, key: SearchKey, ret: Option<Vec<String>> },
    /// RFC 5256 THREAD.
    Thread { uid: bool, algorithm: ThreadAlgorithm, charset: String, key: SearchKey },
    Fetch { uid: bool, set: SequenceSet, attrs: Vec<FetchAttr>, changed_since: Option<u64>, vanished: bool },
    Store { uid: bool, set: SequenceSet, op: StoreOp, silent: bool, flags: Vec<String>, unchanged_since: Option<u64> },
    Copy { uid: bool, set: SequenceSet, mailbox: String, moving: bool },
    Idle,
    Namespace,
    Id(Vec<(String, Option<String>)>),
    Enable(Vec<String>),
    GetQuota(String),
    GetQuotaRoot(String),
    SetQuota(String),
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
        }
    }
}

/// SELECT (QRESYNC (uidvalidity modseq [known-uids [seq-match]])) (RFC 7162 §3.2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qresync {
    pub uidvalidity: u32,
    pub modseq: u64,
    pub known_uids: Option<SequenceSet>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    Add,
    Remove,
    Replace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusItem {
    Messages,
    Recent,
    UidNext,
    UidValidity,
    Unseen,
    HighestModSeq,
    Size,
    AppendLimit,
}

/// LIST with RFC 5258 LIST-EXTENDED and RFC 5819 LIST-STATUS options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListArgs {
    pub reference: String,
    pub patterns: Vec<String>,
    pub select_subscribed: bool,
    pub select_special_use: bool,
    pub recursive_match: bool,
    pub return_subscribed: bool,
    pub return_children: bool,
    pub return_special_use: bool,
    pub return_status: Option<Vec<StatusItem>>,
    /// Any selection or return option was given: the extended form (RFC 5258 §3).
    pub extended: bool,
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

fn mailbox(c: &mut Cursor<'_>) -> Result<String, ParseError> {
    let name = c.astring_utf8()?;
    // RFC 3501 §5.1: INBOX is case-insensitive.
    Ok(if name.eq_ignore_ascii_case("INBOX") { "INBOX".into() } else { name })
}

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
        b"EXPUNGE" => Kind::Expunge { uids: None },
        b"AUTHENTICATE" => {
            c.sp()?;
            let mechanism = c.atom_str()?.to_ascii_uppercase();
            // RFC 4959 SASL-IR: an initial response, `=` for an empty one.
            let initial = if c.eat(b' ') {
                let data = c.atom_with(true)?;
                Some(if data == b"=" { Vec::new() } else { data.to_vec() })
            } else {
                None
            };
            Kind::Authenticate { mechanism, initial }
        }
        b"LOGIN" => {
            c.sp()?;
            let user = c.astring()?;
            c.sp()?;
            let password = c.astring()?;
            Kind::Login { user, password }
        }
        b"SELECT" | b"EXAMINE" => {
            c.sp()?;
            let mailbox = mailbox(c)?;
            let mut condstore = false;
            let mut qresync = None;
            // RFC 4466 select parameters: CONDSTORE (RFC 7162 §3.1.8) and QRESYNC (§3.2.5).
            if c.eat(b' ') {
                c.expect(b'(')?;
                loop {
                    if c.keyword("CONDSTORE") {
                        condstore = true;
                    } else if c.keyword("QRESYNC") {
                        qresync = Some(qresync_params(c)?);
                    } else {
                        return Err(c.err("unknown SELECT parameter"));
                    }
                    if c.eat(b')') {
                        break;
                    }
                    c.sp()?;
                }
            }
            Kind::Select { mailbox, condstore, read_only: name == b"EXAMINE", qresync }
        }
        b"CREATE" => {
            c.sp()?;
            let mailbox = mailbox(c)?;
            let mut special_use = Vec::new();
            // RFC 6154 §3: CREATE mailbox (USE (\Flag ...)).
            if c.eat(b' ') {
                c.expect(b'(')?;
                if !c.keyword("USE") {
                    return Err(c.err("unknown CREATE parameter"));
                }
                c.sp()?;
                special_use = c.flag_list(false)?;
                c.expect(b')')?;
            }
            Kind::Create { mailbox, special_use }
        }
        b"DELETE" => {
            c.sp()?;
            Kind::Delete(mailbox(c)?)
        }
        b"RENAME" => {
            c.sp()?;
            let from = mailbox(c)?;
            c.sp()?;
            let to = mailbox(c)?;
            Kind::Rename { from, to }
        }
        b"SUBSCRIBE" => {
            c.sp()?;
            Kind::Subscribe(mailbox(c)?)
        }
        b"UNSUBSCRIBE" => {
            c.sp()?;
            Kind::Unsubscribe(mailbox(c)?)
        }
        b"LIST" => Kind::List(list(c)?),
        b"LSUB" => {
            c.sp()?;
            let reference = c.astring_utf8()?;
            c.sp()?;
            let pattern = c.list_mailbox()?;
            Kind::Lsub { reference, pattern }
        }
        b"STATUS" => {
            c.sp()?;
            let mailbox = mailbox(c)?;
            c.sp()?;
            Kind::Status { mailbox, items: status_items(c)? }
        }
        b"APPEND" => {
            c.sp()?;
            let mailbox = mailbox(c)?;
            c.sp()?;
            let mut flags = Vec::new();
            if c.peek() == Some(b'(') {
                flags = c.flag_list(false)?;
                c.sp()?;
            }
            let mut date = None;
            if c.peek() == Some(b'"') {
                date = Some(c.date_time()?);
                c.sp()?;
            }
            let message = c.literal()?.to_vec();
            Kind::Append { mailbox, flags, date, message }
        }
        b"SEARCH" => search_command(c, false)?,
        b"SORT" => sort_command(c, false)?,
        b"THREAD" => thread_command(c, false)?,
        b"FETCH" => fetch_command(c, false)?,
        b"STORE" => store_command(c, false)?,
        b"COPY" | b"MOVE" => copy_command(c, false, name == b"MOVE")?,
        b"UID" => {
            c.sp()?;
            let sub = c.atom()?.to_ascii_uppercase();
            match sub.as_slice() {
                b"SEARCH" => search_command(c, true)?,
                b"SORT" => sort_command(c, true)?,
                b"THREAD" => thread_command(c, true)?,
                b"FETCH" => fetch_command(c, true)?,
                b"STORE" => store_command(c, true)?,
                b"COPY" => copy_command(c, true, false)?,
                b"MOVE" => copy_command(c, true, true)?,
                // RFC 4315 §2.1 UID EXPUNGE.
                b"EXPUNGE" => {
                    c.sp()?;
                    Kind::Expunge { uids: Some(SequenceSet::parse(c)?) }
                }
                _ => return Err(ParseError::UnknownCommand),
            }
        }
        b"ID" => {
            c.sp()?;
            Kind::Id(id_params(c)?)
        }
        b"ENABLE" => {
            let mut caps = Vec::new();
            while c.eat(b' ') {
                caps.push(c.atom_str()?.to_ascii_uppercase());
            }
            if caps.is_empty() {
                return Err(c.err("ENABLE needs a capability"));
            }
            Kind::Enable(caps)
        }
        b"GETQUOTA" => {
            c.sp()?;
            Kind::GetQuota(c.astring_utf8()?)
        }
        b"GETQUOTAROOT" => {
            c.sp()?;
            Kind::GetQuotaRoot(mailbox(c)?)
        }
        b"SETQUOTA" => {
            c.sp()?;
            let root = c.astring_utf8()?;
            // The resource list is not used: quotas are set by the administrator.
            c.sp()?;
            c.expect(b'(')?;
            while c.peek().is_some_and(|b| b != b')') {
                c.pos += 1;
            }
            c.expect(b')')?;
            Kind::SetQuota(root)
        }
        _ => return Err(ParseError::UnknownCommand),
    })
}

/// "(" uidvalidity SP mod-sequence-value [SP known-uids [SP seq-match-data]] ")"
fn qresync_params(c: &mut Cursor<'_>) -> Result<Qresync, ParseError> {
    c.sp()?;
    c.expect(b'(')?;
    let uidvalidity = c.nz_number()?;
    c.sp()?;
    let modseq = c.number()?;
    let mut known_uids = None;
    if c.eat(b' ') {
        known_uids = Some(SequenceSet::parse(c)?);
        if c.eat(b' ') {
            // seq-match-data helps a server without expunge history; ours has it all.
            c.expect(b'(')?;
            SequenceSet::parse(c)?;
            c.sp()?;
            SequenceSet::parse(c)?;
            c.expect(b')')?;
        }
    }
    c.expect(b')')?;
    Ok(Qresync { uidvalidity, modseq, known_uids })
}

fn status_items(c: &mut Cursor<'_>) -> Result<Vec<StatusItem>, ParseError> {
    c.expect(b'(')?;
    let mut items = Vec::new();
    loop {
        let item = match c.atom()?.to_ascii_uppercase().as_slice() {
            b"MESSAGES" => StatusItem::Messages,
            b"RECENT" => StatusItem::Recent,
            b"UIDNEXT" => StatusItem::UidNext,
            b"UIDVALIDITY" => StatusItem::UidValidity,
            b"UNSEEN" => StatusItem::Unseen,
            b"HIGHESTMODSEQ" => StatusItem::HighestModSeq,
            b"SIZE" => StatusItem::Size,
            b"APPENDLIMIT" => StatusItem::AppendLimit,
            _ => return Err(c.err("unknown STATUS item")),
        };
        items.push(item);
        if c.eat(b')') {
            return Ok(items);
        }
        c.sp()?;
    }
}

/// LIST [SP "(" select-opts ")"] SP reference SP (pattern / "(" patterns ")")
/// [SP RETURN "(" return-opts ")"] (RFC 5258 §3, RFC 6154 §5, RFC 5819).
fn list(c: &mut Cursor<'_>) -> Result<ListArgs, ParseError> {
    let mut a = ListArgs::default();
    c.sp()?;
    if c.eat(b'(') {
        a.extended = true;
        while !c.eat(b')') {
            c.eat(b' ');
            if c.keyword("SUBSCRIBED") {
                a.select_subscribed = true;
            } else if c.keyword("SPECIAL-USE") {
                a.select_special_use = true;
            } else if c.keyword("RECURSIVEMATCH") {
                a.recursive_match = true;
            } else if c.keyword("REMOTE") {
            } else {
                return Err(c.err("unknown LIST selection option"));
            }
        }
        c.sp()?;
    }
    a.reference = c.astring_utf8()?;
    c.sp()?;
    if c.eat(b'(') {
        a.extended = true;
        loop {
            a.patterns.push(c.list_mailbox()?);
            if c.eat(b')') {
                break;
            }
            c.sp()?;
        }
    } else {
        a.patterns.push(c.list_mailbox()?);
    }
    if c.eat(b' ') {
        if !c.keyword("RETURN") {
            return Err(c.err("expected RETURN"));
        }
        a.extended = true;
        c.sp()?;
        c.expect(b'(')?;
        while !c.eat(b')') {
            c.eat(b' ');
            if c.keyword("SUBSCRIBED") {
                a.return_subscribed = true;
            } else if c.keyword("CHILDREN") {
                a.return_children = true;
            } else if c.keyword("SPECIAL-USE") {
                a.return_special_use = true;
            } else if c.keyword("STATUS") {
                c.sp()?;
                a.return_status = Some(status_items(c)?);
            } else {
                return Err(c.err("unknown LIST return option"));
            }
        }
    }
    if a.recursive_match && !a.select_subscribed {
        // RFC 5258 §3: RECURSIVEMATCH alone is an error.
        return Err(c.err("RECURSIVEMATCH needs another selection option"));
    }
    Ok(a)
}

/// search-return-opts: RETURN "(" [opt *(SP opt)] ")" SP (RFC 4731 §3, RFC 5267 §3).
fn return_opts(c: &mut Cursor<'_>) -> Result<Option<Vec<String>>, ParseError> {
    if !c.keyword("RETURN") {
        return Ok(None);
    }
    c.sp()?;
    c.expect(b'(')?;
    let mut opts = Vec::new();
    while !c.eat(b')') {
        c.eat(b' ');
        let opt = c.atom_str()?.to_ascii_uppercase();
        // RFC 4466 §2.6.1: an unknown return option (SAVE, PARTIAL: not offered) is an error.
        if !matches!(opt.as_str(), "MIN" | "MAX" | "ALL" | "COUNT") {
            return Err(c.err("unknown RETURN option"));
        }
        if !opts.contains(&opt) {
            opts.push(opt);
        }
    }
    c.sp()?;
    Ok(Some(opts))
}

fn search_command(c: &mut Cursor<'_>, uid: bool) -> Result<Kind, ParseError> {
    c.sp()?;
    // RFC 4731 ESEARCH: SEARCH RETURN (MIN MAX COUNT ALL).
    let ret = return_opts(c)?;
    let mut charset = None;
    if c.keyword("CHARSET") {
        c.sp()?;
        charset = Some(c.astring_utf8()?);
        c.sp()?;
    }
    let key = search::parse_program(c)?;
    Ok(Kind::Search { uid, charset, key, ret })
}

/// ["UID" SP] "SORT" [SP "RETURN" SP "(" opts ")"] SP sort-criteria SP charset 1*(SP search-key)
/// (RFC 5256 §5, RFC 5267 §3). Unlike SEARCH's, the charset is not optional.
fn sort_command(c: &mut Cursor<'_>, uid: bool) -> Result<Kind, ParseError> {
    c.sp()?;
    let ret = return_opts(c)?;
    let criteria = sort::parse_criteria(c)?;
    c.sp()?;
    let charset = c.astring_utf8()?;
    c.sp()?;
    let key = search::parse_program(c)?;
    Ok(Kind::Sort { uid, criteria, charset, key, ret })
}

/// ["UID" SP] "THREAD" SP thread-alg SP search-charset 1*(SP search-key) (RFC 5256 §5).
fn thread_command(c: &mut Cursor<'_>, uid: bool) -> Result<Kind, ParseError> {
    c.sp()?;
    let algorithm = thread::parse_algorithm(c)?;
    c.sp()?;
    let charset = c.astring_utf8()?;
    c.sp()?;
    let key = search::parse_program(c)?;
    Ok(Kind::Thread { uid, algorithm, charset, key })
}

fn fetch_command(c: &mut Cursor<'_>, uid: bool) -> Result<Kind, ParseError> {
    c.sp()?;
    let set = SequenceSet::parse(c)?;
    c.sp()?;
    let attrs = parse_fetch_items(c)?;
    let mut changed_since = None;
    let mut vanished = false;
    // RFC 7162 §3.1.4: FETCH ... (CHANGEDSINCE n); §3.2.6: UID FETCH ... (... VANISHED)
    if c.eat(b' ') {
        c.expect(b'(')?;
        loop {
            if c.keyword("CHANGEDSINCE") {
                c.sp()?;
                changed_since = Some(c.number()?);
            } else if c.keyword("VANISHED") && uid {
                vanished = true;
            } else {
                return Err(c.err("unknown FETCH modifier"));
            }
            if c.eat(b')') {
                break;
            }
            c.sp()?;
        }
    }
    if vanished && changed_since.is_none() {
        // RFC 7162 §3.2.6: VANISHED needs CHANGEDSINCE.
        return Err(c.err("VANISHED needs CHANGEDSINCE"));
    }
    Ok(Kind::Fetch { uid, set, attrs, changed_since, vanished })
}

fn store_command(c: &mut Cursor<'_>, uid: bool) -> Result<Kind, ParseError> {
    c.sp()?;
    let set = SequenceSet::parse(c)?;
    c.sp()?;
    let mut unchanged_since = None;
    // RFC 7162 §3.1.3: STORE set (UNCHANGEDSINCE n) ...
    if c.eat(b'(') {
        if !c.keyword("UNCHANGEDSINCE") {
            return Err(c.err("unknown STORE modifier"));
        }
        c.sp()?;
        unchanged_since = Some(c.number()?);
        c.expect(b')')?;
        c.sp()?;
    }
    let op = if c.eat(b'+') {
        StoreOp::Add
    } else if c.eat(b'-') {
        StoreOp::Remove
    } else {
        StoreOp::Replace
    };
    let silent = if c.keyword("FLAGS.SILENT") {
        true
    } else if c.keyword("FLAGS") {
        false
    } else {
        return Err(c.err("expected FLAGS"));
    };
    c.sp()?;
    let flags = c.flag_list(true)?;
    Ok(Kind::Store { uid, set, op, silent, flags, unchanged_since })
}

fn copy_command(c: &mut Cursor<'_>, uid: bool, moving: bool) -> Result<Kind, ParseError> {
    c.sp()?;
    let set = SequenceSet::parse(c)?;
    c.sp()?;
    let mailbox = mailbox(c)?;
    Ok(Kind::Copy { uid, set, mailbox, moving })
}

/// RFC 2971: "(" field value *(SP field value) ")" / NIL. At most 30 pairs (§3.3).
fn id_params(c: &mut Cursor<'_>) -> Result<Vec<(String, Option<String>)>, ParseError> {
    let mut out = Vec::new();
    if c.keyword("NIL") {
        return Ok(out);
    }
    c.expect(b'(')?;
    if c.eat(b')') {
        return Ok(out);
    }
    loop {
        let field = String::from_utf8_lossy(&c.string()?).into_owned();
        c.sp()?;
        let value = c.nstring()?.map(|v| String::from_utf8_lossy(&v).into_owned());
        if out.len() >= 30 {
            return Err(c.err("too many ID fields"));
        }
        out.push((field, value));
        if c.eat(b')') {
            return Ok(out);
        }
        c.sp()?;
    }
}

#[cfg(test)]
mod tests;
