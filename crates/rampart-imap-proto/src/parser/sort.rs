//! The SORT command and its criteria (RFC 5256 §3, RFC 5957 DISPLAYFROM/DISPLAYTO, RFC 5267
//! §3 RETURN).

use super::lexer::Cursor;
use super::{Kind, ParseError, search};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// INTERNALDATE.
    Arrival,
    /// addr-mailbox of the first Cc address.
    Cc,
    /// The Date header in UTC, INTERNALDATE when it is missing or invalid (RFC 5256 §2.2).
    Date,
    /// addr-mailbox of the first From address.
    From,
    /// RFC822.SIZE.
    Size,
    /// The base subject (RFC 5256 §2.1).
    Subject,
    /// addr-mailbox of the first To address.
    To,
    /// Display name of the first From address, else its addr-spec (RFC 5957).
    DisplayFrom,
    /// Display name of the first To address, else its addr-spec (RFC 5957).
    DisplayTo,
}

impl SortKey {
    /// Whether the key is read from the message text (not only the index row).
    pub fn needs_content(self) -> bool {
        !matches!(self, SortKey::Arrival | SortKey::Size)
    }
}

/// sort-criterion = ["REVERSE" SP] sort-key
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortCriterion {
    pub reverse: bool,
    pub key: SortKey,
}

/// ["UID" SP] "SORT" [SP "RETURN" SP "(" opts ")"] SP sort-criteria SP charset
/// 1*(SP search-key) (RFC 5256 §5, RFC 5267 §3). Unlike SEARCH's, the charset is not optional.
pub(super) fn command(c: &mut Cursor<'_>, uid: bool) -> Result<Kind, ParseError> {
    c.sp()?;
    // RETURN (UPDATE) keeps the sorted result up to date (CONTEXT=SORT, RFC 5267 §4).
    let ret = search::return_opts(c)?;
    let criteria = parse_criteria(c)?;
    c.sp()?;
    let charset = c.astring_utf8()?;
    c.sp()?;
    let key = search::parse_program(c)?;
    Ok(Kind::Sort { uid, criteria, charset, key, ret })
}

/// sort-criteria = "(" sort-criterion *(SP sort-criterion) ")"
pub fn parse_criteria(c: &mut Cursor<'_>) -> Result<Vec<SortCriterion>, ParseError> {
    c.expect(b'(')?;
    let mut out = Vec::new();
    loop {
        let reverse = c.keyword("REVERSE");
        if reverse {
            c.sp()?;
        }
        let key = match c.atom()?.to_ascii_uppercase().as_slice() {
            b"ARRIVAL" => SortKey::Arrival,
            b"CC" => SortKey::Cc,
            b"DATE" => SortKey::Date,
            b"FROM" => SortKey::From,
            b"SIZE" => SortKey::Size,
            b"SUBJECT" => SortKey::Subject,
            b"TO" => SortKey::To,
            b"DISPLAYFROM" => SortKey::DisplayFrom,
            b"DISPLAYTO" => SortKey::DisplayTo,
            _ => return Err(c.err("unknown sort key")),
        };
        // A criteria list longer than the keys there are is not a sort anyone needs.
        if out.len() >= 32 {
            return Err(c.err("too many sort criteria"));
        }
        out.push(SortCriterion { reverse, key });
        if c.eat(b')') {
            return Ok(out);
        }
        c.sp()?;
    }
}
