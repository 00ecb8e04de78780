//! THREAD algorithms (RFC 5256 §3, the THREAD command).

use super::ParseError;
use super::lexer::Cursor;

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

/// thread-alg = "ORDEREDSUBJECT" / "REFERENCES" / thread-alg-ext; an extension we do not
/// implement is a syntax error (BAD), as an unknown command would be.
pub fn parse_algorithm(c: &mut Cursor<'_>) -> Result<ThreadAlgorithm, ParseError> {
    match c.atom()?.to_ascii_uppercase().as_slice() {
        b"ORDEREDSUBJECT" => Ok(ThreadAlgorithm::OrderedSubject),
        b"REFERENCES" => Ok(ThreadAlgorithm::References),
        _ => Err(c.err("unknown thread algorithm")),
    }
}
