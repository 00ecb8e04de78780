//! Partial ranges (RFC 9394, extending RFC 5267 §4.4): which positions of a result list a
//! SEARCH/SORT `RETURN (PARTIAL ...)` or a FETCH `(PARTIAL ...)` modifier asks for, counted
//! from the start (`1:100`) or from the end (`-1:-100`, the last hundred).

use std::fmt;
use std::ops::Range;

use super::ParseError;
use super::lexer::Cursor;

/// Positions `first..=last` (1-based, `first <= last`), from the end when `from_end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartialRange {
    pub first: u32,
    pub last: u32,
    pub from_end: bool,
}

impl PartialRange {
    /// partial-range = nz-number ":" nz-number / "-" nz-number ":" "-" nz-number; either
    /// end may come first.
    pub fn parse(c: &mut Cursor<'_>) -> Result<PartialRange, ParseError> {
        let from_end = c.eat(b'-');
        let a = c.nz_number()?;
        c.expect(b':')?;
        if from_end {
            c.expect(b'-')?;
        }
        let b = c.nz_number()?;
        Ok(PartialRange { first: a.min(b), last: a.max(b), from_end })
    }

    /// The indexes of a list of `len` results the range covers (empty when it covers none).
    pub fn slice(&self, len: usize) -> Range<usize> {
        let (first, last) = (self.first as usize, self.last as usize);
        if self.from_end {
            // -1 is the last result: positions -last..=-first are indexes len-last..len-first.
            len.saturating_sub(last)..len.saturating_sub(first - 1)
        } else {
            (first - 1).min(len)..last.min(len)
        }
    }

    /// The option as a RETURN list keeps it, and back (the list holds options as words).
    pub fn from_option(opt: &str) -> Option<PartialRange> {
        let range = opt.strip_prefix("PARTIAL ")?;
        let mut c = Cursor::new(range.as_bytes());
        let r = PartialRange::parse(&mut c).ok()?;
        c.at_end().then_some(r)
    }
}

impl fmt::Display for PartialRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.from_end { "-" } else { "" };
        write!(f, "{sign}{}:{sign}{}", self.first, self.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(s: &str) -> Result<PartialRange, ParseError> {
        PartialRange::parse(&mut Cursor::new(s.as_bytes()))
    }

    #[test]
    fn ranges_from_either_end() {
        let r = range("100:1").unwrap();
        assert_eq!((r.first, r.last, r.from_end, r.to_string()), (1, 100, false, "1:100".into()));
        assert_eq!(r.slice(10), 0..10);
        assert_eq!(range("3:4").unwrap().slice(10), 2..4);
        assert_eq!(range("30:40").unwrap().slice(10), 10..10);
        let last = range("-1:-3").unwrap();
        assert_eq!((last.to_string(), last.slice(10)), ("-1:-3".into(), 7..10));
        assert_eq!(range("-2:-2").unwrap().slice(10), 8..9);
        assert_eq!(range("-5:-20").unwrap().slice(3), 0..0);
        assert_eq!(range("-2:-20").unwrap().slice(3), 0..2);
        for bad in ["0:1", "1:-1", "-1:1", "1", "-0:-1", "1:4294967296"] {
            assert!(range(bad).is_err(), "{bad}");
        }
        assert_eq!(PartialRange::from_option("PARTIAL -1:-3"), Some(last));
        assert_eq!(PartialRange::from_option("ALL"), None);
    }
}
