//! APPEND's CATENATE data (RFC 4469 §5): a message made of literal text and URLs of
//! messages or sections already on the server. The URLs are parsed by the session
//! ([`crate::imapurl`]), which answers `NO [BADURL url]` for one it cannot use.

use super::lexer::Cursor;
use super::{CatPart, ParseError, mailbox};

/// A CATENATE message has at most this many parts: RFC 4469 sets no limit, and each URL
/// part costs the server a message read.
pub const MAX_PARTS: usize = 100;

/// SP "(" cat-part *(SP cat-part) ")", after the CATENATE keyword; cat-part = "TEXT" SP
/// literal / "URL" SP astring (literal8 allowed with BINARY, RFC 3516 §4.4) / "UTF8" SP "("
/// literal8 ")" (RFC 6855 §4, text with UTF-8 headers). Also says whether a UTF8 part came.
pub(super) fn parts(c: &mut Cursor<'_>) -> Result<(Vec<CatPart>, bool), ParseError> {
    c.sp()?;
    c.expect(b'(')?;
    let mut parts = Vec::new();
    let mut utf8 = false;
    loop {
        if parts.len() == MAX_PARTS {
            return Err(ParseError::TooBig);
        }
        let part = if c.keyword("TEXT") {
            c.sp()?;
            let (text, literal_at) = mailbox::append_literal(c)?;
            CatPart::Text { text, literal_at }
        } else if c.keyword("UTF8") {
            c.sp()?;
            c.expect(b'(')?;
            if c.peek() != Some(b'~') {
                return Err(c.err("UTF8 takes a literal8"));
            }
            let (text, literal_at) = mailbox::append_literal(c)?;
            c.expect(b')')?;
            utf8 = true;
            CatPart::Text { text, literal_at }
        } else if c.keyword("URL") {
            c.sp()?;
            let url = c.astring()?;
            CatPart::Url(String::from_utf8(url).map_err(|_| c.err("URL is not UTF-8"))?)
        } else {
            return Err(c.err("expected TEXT, UTF8 or URL"));
        };
        parts.push(part);
        if c.eat(b')') {
            return Ok((parts, utf8));
        }
        c.sp()?;
    }
}
