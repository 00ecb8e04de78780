//! Sequence sets (RFC 3501 §9 sequence-set): ranges of message numbers or UIDs, `*` for the
//! largest in use, `$` for the result the last SEARCH saved (RFC 5182).

use super::ParseError;
use super::lexer::Cursor;

/// Ranges a set may hold. A real client's set after compression stays far below this; it caps
/// the memory a crafted `1,2,3,...` set can make the server hold.
pub const MAX_RANGES: usize = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqNum {
    Value(u32),
    /// `*`: the largest number in use.
    Star,
    /// `$`: the saved search result (RFC 5182); the session replaces it with numbers before the
    /// set is used ([`SequenceSet::substitute_saved`]), and left in place it names nothing.
    Saved,
}

impl SeqNum {
    fn resolve(self, star: u32) -> u32 {
        match self {
            SeqNum::Value(v) => v,
            SeqNum::Star => star,
            SeqNum::Saved => 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SequenceSet(pub Vec<(SeqNum, SeqNum)>);

impl SequenceSet {
    pub fn parse(c: &mut Cursor<'_>) -> Result<SequenceSet, ParseError> {
        let mut ranges = Vec::new();
        loop {
            let (a, b) = if c.eat(b'$') {
                (SeqNum::Saved, SeqNum::Saved)
            } else {
                let a = seq_num(c)?;
                (a, if c.eat(b':') { seq_num(c)? } else { a })
            };
            if ranges.len() >= MAX_RANGES {
                return Err(ParseError::TooBig);
            }
            ranges.push((a, b));
            if !c.eat(b',') {
                return Ok(SequenceSet(ranges));
            }
        }
    }

    /// Whether `n` is in the set, with `star` standing for `*` (RFC 3501 §9: `a:b` is the
    /// same range as `b:a`).
    pub fn contains(&self, n: u32, star: u32) -> bool {
        self.0.iter().any(|&(a, b)| {
            let (a, b) = (a.resolve(star), b.resolve(star));
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            lo <= n && n <= hi
        })
    }

    /// The members among `sorted` (ascending) values; `*` is the largest value given, or
    /// `star` when the list is empty.
    pub fn filter(&self, sorted: &[u32], star: u32) -> Vec<u32> {
        let star = sorted.last().copied().unwrap_or(star);
        sorted.iter().copied().filter(|&n| self.contains(n, star)).collect()
    }

    /// Whether the set refers to the saved search result (`$`).
    pub fn uses_saved(&self) -> bool {
        self.0.iter().any(|&(a, _)| a == SeqNum::Saved)
    }

    /// Replaces `$` with `values` (ascending), as ranges of consecutive numbers.
    pub fn substitute_saved(&mut self, values: &[u32]) {
        if !self.uses_saved() {
            return;
        }
        self.0.retain(|&(a, _)| a != SeqNum::Saved);
        self.0.extend(runs(values).map(|(start, end)| (SeqNum::Value(start), SeqNum::Value(end))));
    }

    /// Whether the set names only values, without `*`.
    pub fn has_star(&self) -> bool {
        self.0.iter().any(|&(a, b)| a == SeqNum::Star || b == SeqNum::Star)
    }
}

fn seq_num(c: &mut Cursor<'_>) -> Result<SeqNum, ParseError> {
    if c.eat(b'*') { Ok(SeqNum::Star) } else { Ok(SeqNum::Value(c.nz_number()?)) }
}

/// The runs of consecutive numbers in a sorted list, as (first, last).
fn runs(values: &[u32]) -> impl Iterator<Item = (u32, u32)> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let start = *values.get(i)?;
        let mut end = start;
        while i + 1 < values.len() && values[i + 1] == end.wrapping_add(1) {
            i += 1;
            end = values[i];
        }
        i += 1;
        Some((start, end))
    })
}

/// Writes a sorted list of numbers as a compact set, e.g. `1:3,7` (RFC 4315 uid-set).
pub fn compact(values: &[u32]) -> String {
    runs(values)
        .map(|(start, end)| if start == end { start.to_string() } else { format!("{start}:{end}") })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets() {
        let s = SequenceSet::parse(&mut Cursor::new(b"1:3,7,9:*")).unwrap();
        assert_eq!(s.filter(&[1, 2, 4, 7, 8, 10], 0), vec![1, 2, 7, 10]);
        let s = SequenceSet::parse(&mut Cursor::new(b"*:4")).unwrap();
        assert!(s.contains(5, 9) && !s.contains(3, 9));
        assert!(SequenceSet::parse(&mut Cursor::new(b"0")).is_err());
        assert_eq!(compact(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
    }

    #[test]
    fn saved_result_is_substituted() {
        let mut s = SequenceSet::parse(&mut Cursor::new(b"$")).unwrap();
        assert!(s.uses_saved() && !s.contains(1, 9), "an unsubstituted $ names nothing");
        s.substitute_saved(&[2, 3, 4, 9]);
        assert_eq!(s.filter(&[1, 2, 3, 4, 5, 9], 0), vec![2, 3, 4, 9]);
        assert_eq!(s.0.len(), 2, "consecutive numbers become one range");
        let mut s = SequenceSet::parse(&mut Cursor::new(b"1,$")).unwrap();
        s.substitute_saved(&[]);
        assert_eq!(s.filter(&[1, 2], 0), vec![1]);
    }
}
