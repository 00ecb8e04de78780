//! The THREAD command and its algorithms (RFC 5256 §3).

use super::lexer::Cursor;
use super::{Kind, ParseError, search};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThreadAlgorithm {
    OrderedSubject,
    References,
}

impl ThreadAlgorithm {
    pub fn name(self) -> &'static str {
        match self {
            ThreadAlgorithm::OrderedSubject => "ORDEREDSUBJECT",
            ThreadAlgorithm::References => "REFERENCES",
        }
    }
}

/// ["UID" SP] "THREAD" SP thread-alg SP search-charset 1*(SP search-key) (RFC 5256 §5).
pub(super) fn command(c: &mut Cursor<'_>, uid: bool) -> Result<Kind, ParseError> {
    c.sp()?;
    let algorithm = parse_algorithm(c)?;
    c.sp()?;
    let charset = c.astring_utf8()?;
    c.sp()?;
    let key = search::parse_program(c)?;
    Ok(Kind::Thread { uid, algorithm, charset, key })
}

/// thread-alg = "ORDEREDSUBJECT" / "REFERENCES" / thread-alg-ext; an extension we do not
/// implement is a syntax error (BAD), as an unknown command would be.
pub fn parse_algorithm(c: &mut Cursor<'_>) -> Result<ThreadAlgorithm, ParseError> {
    match c.atom()?.to_ascii_uppercase().as_slice() {
        b"ORDEREDSUBJECT" => Ok(ThreadAlgorithm::OrderedSubject),
        b"REFERENCES" => Ok(ThreadAlgorithm::References),
        _ => Err(c.err("unknown thread algorithm")),
    }
}
