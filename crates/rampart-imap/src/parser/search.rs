//! SEARCH keys (RFC 3501 §6.4.4, RFC 7162 §3.1.5 MODSEQ).

use super::lexer::Cursor;
use super::{ParseError, SequenceSet};

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

fn key(c: &mut Cursor<'_>) -> Result<SearchKey, ParseError> {
    use SearchKey as K;
    if c.eat(b'(') {
        c.enter()?;
        let mut keys = vec![key(c)?];
        while c.eat(b' ') {
            keys.push(key(c)?);
        }
        c.expect(b')')?;
        c.leave();
        return Ok(K::And(keys));
    }
    if matches!(c.peek(), Some(b'0'..=b'9') | Some(b'*')) {
        return Ok(K::Seq(SequenceSet::parse(c)?));
    }
    let word = c.atom()?.to_ascii_uppercase();
    let flag = |f: &str| Ok(K::Flag(f.into()));
    let noflag = |f: &str| Ok(K::NoFlag(f.into()));
    let date = |c: &mut Cursor<'_>| -> Result<chrono::NaiveDate, ParseError> {
        c.sp()?;
        c.date()
    };
    match word.as_slice() {
        b"ALL" => Ok(K::All),
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
        b"NEW" => Ok(K::New),
        b"OLD" => Ok(K::Old),
        b"RECENT" => Ok(K::Recent),
        b"KEYWORD" => {
            c.sp()?;
            Ok(K::Flag(c.atom_str()?))
        }
        b"UNKEYWORD" => {
            c.sp()?;
            Ok(K::NoFlag(c.atom_str()?))
        }
        b"BCC" | b"CC" | b"FROM" | b"SUBJECT" | b"TO" => {
            let field = String::from_utf8_lossy(&word).into_owned();
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
        b"NOT" => {
            c.sp()?;
            c.enter()?;
            let k = key(c)?;
            c.leave();
            Ok(K::Not(Box::new(k)))
        }
        b"OR" => {
            c.enter()?;
            c.sp()?;
            let a = key(c)?;
            c.sp()?;
            let b = key(c)?;
            c.leave();
            Ok(K::Or(Box::new(a), Box::new(b)))
        }
        b"MODSEQ" => {
            c.sp()?;
            // RFC 7162 §3.1.5: [entry-name SP entry-type-req SP] mod-sequence-valzer
            if c.peek() == Some(b'"') {
                c.quoted()?;
                c.sp()?;
                c.atom()?;
                c.sp()?;
            }
            Ok(K::ModSeq(c.number()?))
        }
        _ => Err(c.err("unknown search key")),
    }
}
