//! The SEARCH command and its keys (RFC 3501 §6.4.4, RFC 4731 RETURN, RFC 7162 §3.1.5
//! MODSEQ); SORT and THREAD take the same keys.

use super::lexer::Cursor;
use super::{Kind, ParseError, SequenceSet};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchKey {
    All,
    /// All of these (a parenthesized list, or the top-level list of keys).
    And(Vec<SearchKey>),
    Or(Box<SearchKey>, Box<SearchKey>),
    Not(Box<SearchKey>),
    /// A system flag (`\Seen` ...) or keyword that must be set.
    Flag(String),
    /// A system flag or keyword that must not be set.
    NoFlag(String),
    New,
    Old,
    Recent,
    /// Header field contains the text (FROM, TO, CC, BCC, SUBJECT are HEADER shorthands).
    Header(String, String),
    Body(String),
    Text(String),
    Before(chrono::NaiveDate),
    On(chrono::NaiveDate),
    Since(chrono::NaiveDate),
    SentBefore(chrono::NaiveDate),
    SentOn(chrono::NaiveDate),
    SentSince(chrono::NaiveDate),
    Larger(u64),
    Smaller(u64),
    Uid(SequenceSet),
    Seq(SequenceSet),
    ModSeq(u64),
}

impl SearchKey {
    /// Whether evaluating the key needs the message text (not only flags and sizes).
    pub fn needs_content(&self) -> bool {
        match self {
            SearchKey::Header(..)
            | SearchKey::Body(_)
            | SearchKey::Text(_)
            | SearchKey::SentBefore(_)
            | SearchKey::SentOn(_)
            | SearchKey::SentSince(_) => true,
            SearchKey::And(keys) => keys.iter().any(SearchKey::needs_content),
            SearchKey::Or(a, b) => a.needs_content() || b.needs_content(),
            SearchKey::Not(a) => a.needs_content(),
            _ => false,
        }
    }

    /// Calls `f` with every sequence set in the key and whether it holds UIDs.
    pub fn for_each_set(&mut self, f: &mut impl FnMut(&mut SequenceSet, bool)) {
        match self {
            SearchKey::Uid(set) => f(set, true),
            SearchKey::Seq(set) => f(set, false),
            SearchKey::And(keys) => keys.iter_mut().for_each(|k| k.for_each_set(f)),
            SearchKey::Or(a, b) => {
                a.for_each_set(f);
                b.for_each_set(f);
            }
            SearchKey::Not(a) => a.for_each_set(f),
            _ => {}
        }
    }

    pub fn uses_modseq(&self) -> bool {
        match self {
            SearchKey::ModSeq(_) => true,
            SearchKey::And(keys) => keys.iter().any(SearchKey::uses_modseq),
            SearchKey::Or(a, b) => a.uses_modseq() || b.uses_modseq(),
            SearchKey::Not(a) => a.uses_modseq(),
            _ => false,
        }
    }
}

/// ["UID" SP] "SEARCH" [SP search-return-opts] [SP "CHARSET" SP charset] 1*(SP search-key)
/// (RFC 3501 §6.4.4, RFC 4731 ESEARCH).
pub(super) fn command(c: &mut Cursor<'_>, uid: bool) -> Result<Kind, ParseError> {
    c.sp()?;
    // RFC 4731 ESEARCH: SEARCH RETURN (MIN MAX COUNT ALL).
    let ret = return_opts(c)?;
    let mut charset = None;
    if c.keyword("CHARSET") {
        c.sp()?;
        charset = Some(c.astring_utf8()?);
        c.sp()?;
    }
    let key = parse_program(c)?;
    Ok(Kind::Search { uid, charset, key, ret })
}

/// search-return-opts: RETURN "(" [opt *(SP opt)] ")" SP (RFC 4731 §3, RFC 5267 §3 and §4
/// UPDATE and CONTEXT, RFC 9394 PARTIAL); SORT takes them too.
pub(super) fn return_opts(c: &mut Cursor<'_>) -> Result<Option<Vec<String>>, ParseError> {
    if !c.keyword("RETURN") {
        return Ok(None);
    }
    c.sp()?;
    c.expect(b'(')?;
    let mut opts = Vec::new();
    while !c.eat(b')') {
        c.eat(b' ');
        let mut opt = c.atom_str()?.to_ascii_uppercase();
        if opt == "PARTIAL" {
            // RFC 9394 §3.1 (RFC 5267 §4.4): PARTIAL range, kept as one word of the list.
            c.sp()?;
            let range = super::PartialRange::parse(c)?;
            if opts.iter().any(|o: &String| o.starts_with("PARTIAL")) {
                return Err(c.err("PARTIAL given twice"));
            }
            opt = format!("PARTIAL {range}");
        } else if !matches!(opt.as_str(), "MIN" | "MAX" | "ALL" | "COUNT" | "SAVE" | "UPDATE" | "CONTEXT") {
            // RFC 4466 §2.6.1: an unknown return option is an error.
            return Err(c.err("unknown RETURN option"));
        }
        if !opts.contains(&opt) {
            opts.push(opt);
        }
    }
    c.sp()?;
    Ok(Some(opts))
}

/// "CANCELUPDATE" 1*(SP tag-string) (RFC 5267 §4.3), tag-string = string
pub(super) fn cancel_update(c: &mut Cursor<'_>) -> Result<Kind, ParseError> {
    let mut tags = Vec::new();
    while c.eat(b' ') {
        tags.push(String::from_utf8(c.string()?).map_err(|_| c.err("tag is not UTF-8"))?);
    }
    if tags.is_empty() {
        return Err(c.err("CANCELUPDATE needs a tag"));
    }
    Ok(Kind::CancelUpdate(tags))
}

/// search-key *(SP search-key)
pub fn parse_program(c: &mut Cursor<'_>) -> Result<SearchKey, ParseError> {
    let mut keys = vec![key(c)?];
    while c.eat(b' ') {
        keys.push(key(c)?);
    }
    Ok(if keys.len() == 1 { keys.remove(0) } else { SearchKey::And(keys) })
}

fn text(c: &mut Cursor<'_>) -> Result<String, ParseError> {
    c.sp()?;
    Ok(String::from_utf8_lossy(&c.astring()?).into_owned())
}

fn date(c: &mut Cursor<'_>) -> Result<chrono::NaiveDate, ParseError> {
    c.sp()?;
    c.date()
}

/// One search-key: a parenthesized list, a sequence set, or a named key.
fn key(c: &mut Cursor<'_>) -> Result<SearchKey, ParseError> {
    if c.eat(b'(') {
        return list(c);
    }
    if matches!(c.peek(), Some(b'0'..=b'9') | Some(b'*')) {
        return Ok(SearchKey::Seq(SequenceSet::parse(c)?));
    }
    let word = c.atom()?.to_ascii_uppercase();
    if let Some(k) = bare(&word) {
        return Ok(k);
    }
    match word.as_slice() {
        b"NOT" => not(c),
        b"OR" => or(c),
        b"MODSEQ" => modseq(c),
        _ => with_argument(c, &word),
    }
}

/// "(" search-key *(SP search-key) ")", after its "(": all of them.
fn list(c: &mut Cursor<'_>) -> Result<SearchKey, ParseError> {
    c.enter()?;
    let mut keys = vec![key(c)?];
    while c.eat(b' ') {
        keys.push(key(c)?);
    }
    c.expect(b')')?;
    c.leave();
    Ok(SearchKey::And(keys))
}

/// The keys without an argument: ALL, the system flag keys, NEW, OLD, RECENT.
fn bare(word: &[u8]) -> Option<SearchKey> {
    use SearchKey as K;
    let flag = |f: &str| Some(K::Flag(f.into()));
    let noflag = |f: &str| Some(K::NoFlag(f.into()));
    match word {
        b"ALL" => Some(K::All),
        b"ANSWERED" => flag("\\Answered"),
        b"DELETED" => flag("\\Deleted"),
        b"DRAFT" => flag("\\Draft"),
        b"FLAGGED" => flag("\\Flagged"),
        b"SEEN" => flag("\\Seen"),
        b"UNANSWERED" => noflag("\\Answered"),
        b"UNDELETED" => noflag("\\Deleted"),
        b"UNDRAFT" => noflag("\\Draft"),
        b"UNFLAGGED" => noflag("\\Flagged"),
        b"UNSEEN" => noflag("\\Seen"),
        b"NEW" => Some(K::New),
        b"OLD" => Some(K::Old),
        b"RECENT" => Some(K::Recent),
        _ => None,
    }
}

/// The keys with arguments: a keyword, header text, body text, a date, a size or a UID set.
fn with_argument(c: &mut Cursor<'_>, word: &[u8]) -> Result<SearchKey, ParseError> {
    use SearchKey as K;
    match word {
        b"KEYWORD" => {
            c.sp()?;
            Ok(K::Flag(c.atom_str()?))
        }
        b"UNKEYWORD" => {
            c.sp()?;
            Ok(K::NoFlag(c.atom_str()?))
        }
        b"BCC" | b"CC" | b"FROM" | b"SUBJECT" | b"TO" => {
            let field = String::from_utf8_lossy(word).into_owned();
            Ok(K::Header(field, text(c)?))
        }
        b"HEADER" => {
            let field = text(c)?;
            Ok(K::Header(field, text(c)?))
        }
        b"BODY" => Ok(K::Body(text(c)?)),
        b"TEXT" => Ok(K::Text(text(c)?)),
        b"BEFORE" => Ok(K::Before(date(c)?)),
        b"ON" => Ok(K::On(date(c)?)),
        b"SINCE" => Ok(K::Since(date(c)?)),
        b"SENTBEFORE" => Ok(K::SentBefore(date(c)?)),
        b"SENTON" => Ok(K::SentOn(date(c)?)),
        b"SENTSINCE" => Ok(K::SentSince(date(c)?)),
        b"LARGER" => {
            c.sp()?;
            Ok(K::Larger(c.number()?))
        }
        b"SMALLER" => {
            c.sp()?;
            Ok(K::Smaller(c.number()?))
        }
        b"UID" => {
            c.sp()?;
            Ok(K::Uid(SequenceSet::parse(c)?))
        }
        _ => Err(c.err("unknown search key")),
    }
}

/// "NOT" SP search-key
fn not(c: &mut Cursor<'_>) -> Result<SearchKey, ParseError> {
    c.sp()?;
    c.enter()?;
    let k = key(c)?;
    c.leave();
    Ok(SearchKey::Not(Box::new(k)))
}

/// "OR" SP search-key SP search-key
fn or(c: &mut Cursor<'_>) -> Result<SearchKey, ParseError> {
    c.enter()?;
    c.sp()?;
    let a = key(c)?;
    c.sp()?;
    let b = key(c)?;
    c.leave();
    Ok(SearchKey::Or(Box::new(a), Box::new(b)))
}

/// "MODSEQ" SP [entry-name SP entry-type-req SP] mod-sequence-valzer (RFC 7162 §3.1.5); the
/// entry name and type are read and ignored.
fn modseq(c: &mut Cursor<'_>) -> Result<SearchKey, ParseError> {
    c.sp()?;
    if c.peek() == Some(b'"') {
        c.quoted()?;
        c.sp()?;
        c.atom()?;
        c.sp()?;
    }
    Ok(SearchKey::ModSeq(c.number()?))
}
