//! SORT's keys (RFC 5256 §3, RFC 5957 DISPLAYFROM/DISPLAYTO): the value of each sort key for
//! one message, kept small, and the order of the matches by them, ties by sequence number.

use std::cmp::Ordering;

use crate::facts::{Facts, TextKey};
use crate::parser::{SortCriterion, SortKey};
use crate::results::Hit;

pub use crate::facts::MAX_KEY;

/// One sort key's value for one message.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Value {
    Num(i64),
    /// Already mapped by i;ascii-casemap, so plain octet order is the collation's order.
    Text(Vec<u8>),
}

/// The value of `key` for a message of `size` octets that arrived at `internal_date`
/// (RFC 5256 §3; missing headers are empty strings).
pub fn value(key: SortKey, internal_date: i64, size: u64, facts: &Facts<'_>) -> Value {
    let text = |k| Value::Text(facts.text(k).into_owned());
    match key {
        SortKey::Arrival => Value::Num(internal_date),
        SortKey::Size => Value::Num(size.min(i64::MAX as u64) as i64),
        // §2.2: the Date header in UTC; INTERNALDATE when it is missing or cannot be parsed.
        SortKey::Date => Value::Num(facts.sent_time().unwrap_or(internal_date)),
        SortKey::Subject => text(TextKey::Subject),
        SortKey::From => text(TextKey::From),
        SortKey::To => text(TextKey::To),
        SortKey::Cc => text(TextKey::Cc),
        SortKey::DisplayFrom => text(TextKey::DisplayFrom),
        SortKey::DisplayTo => text(TextKey::DisplayTo),
    }
}

/// Orders matches by the criteria; REVERSE turns one criterion only, and equal messages stay
/// in sequence order (§3).
pub fn order(criteria: &[SortCriterion], rows: &mut [(Hit, Vec<Value>)]) {
    rows.sort_by(|(x, a), (y, b)| {
        for (i, c) in criteria.iter().enumerate() {
            let o = a[i].cmp(&b[i]);
            let o = if c.reverse { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        x.seq.cmp(&y.seq)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(seq: u32) -> Hit {
        Hit { seq, uid: seq * 10, modseq: 1 }
    }

    #[test]
    fn reverse_turns_one_criterion_and_ties_stay_in_sequence_order() {
        let crit = |reverse, key| SortCriterion { reverse, key };
        let mut rows = vec![
            (hit(1), vec![Value::Text(b"B".to_vec()), Value::Num(5)]),
            (hit(2), vec![Value::Text(b"A".to_vec()), Value::Num(5)]),
            (hit(3), vec![Value::Text(b"B".to_vec()), Value::Num(7)]),
            (hit(4), vec![Value::Text(b"A".to_vec()), Value::Num(5)]),
            (hit(5), vec![Value::Text(Vec::new()), Value::Num(1)]),
        ];
        order(&[crit(false, SortKey::Subject), crit(true, SortKey::Size)], &mut rows);
        let seqs: Vec<u32> = rows.iter().map(|r| r.0.seq).collect();
        assert_eq!(seqs, [5, 2, 4, 3, 1]);
        order(&[crit(true, SortKey::Subject)], &mut rows);
        let seqs: Vec<u32> = rows.iter().map(|r| r.0.seq).collect();
        // Equal keys (2 and 4; 1 and 3) are still in ascending sequence order.
        assert_eq!(seqs, [1, 3, 2, 4, 5]);
    }
}
