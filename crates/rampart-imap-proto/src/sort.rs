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

/// The order of the matches `hits` by the criteria, as their indexes: `values` holds each
/// match's values one criterion after the other (`criteria.len()` per match, in the order of
/// `hits`), so a SORT over a large mailbox allocates nothing per match. REVERSE turns one
/// criterion only, and equal matches are in sequence order (§3).
pub fn order(criteria: &[SortCriterion], hits: &[Hit], values: &[Value]) -> Vec<usize> {
    if let [c] = criteria
        && let Some(nums) = values.iter().map(|v| if let Value::Num(n) = v { Some(*n) } else { None }).collect::<Option<Vec<i64>>>()
    {
        return order_numbers(c.reverse, hits, &nums);
    }
    if let [c] = criteria
        && let Some(texts) = values.iter().map(|v| if let Value::Text(t) = v { Some(t.as_slice()) } else { None }).collect::<Option<Vec<&[u8]>>>()
    {
        return order_texts(c.reverse, hits, &texts);
    }
    let k = criteria.len();
    let mut order: Vec<usize> = (0..hits.len()).collect();
    order.sort_unstable_by(|&x, &y| {
        for (i, c) in criteria.iter().enumerate() {
            let o = values[x * k + i].cmp(&values[y * k + i]);
            let o = if c.reverse { o.reverse() } else { o };
            if o != Ordering::Equal {
                return o;
            }
        }
        hits[x].seq.cmp(&hits[y].seq)
    });
    order
}

/// [`order`] by one number (DATE, ARRIVAL, SIZE): compact (value, sequence number, index)
/// triples sorted in place, where the general order compares values through their indexes
/// (a SORT of 100,000 messages spent most of its time there).
fn order_numbers(reverse: bool, hits: &[Hit], nums: &[i64]) -> Vec<usize> {
    let mut keyed: Vec<(i64, u32, u32)> = nums.iter().zip(hits).enumerate().map(|(i, (&n, h))| (n, h.seq, i as u32)).collect();
    if reverse {
        keyed.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    } else {
        // Sequence numbers are unique: the index never decides.
        keyed.sort_unstable();
    }
    keyed.into_iter().map(|(_, _, i)| i as usize).collect()
}

/// The first 8 octets of a string as a number, zero-padded: where two prefixes differ they
/// order as the strings do, so most comparisons of a sort are of numbers, not strings.
fn prefix(t: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = t.len().min(8);
    b[..n].copy_from_slice(&t[..n]);
    u64::from_be_bytes(b)
}

/// [`order`] by one string (SUBJECT, FROM, ...): (prefix, sequence number, index) triples,
/// the strings compared only where the prefixes are equal (memcmp through the index was most
/// of a SORT (SUBJECT) of 100,000 messages).
fn order_texts(reverse: bool, hits: &[Hit], texts: &[&[u8]]) -> Vec<usize> {
    let mut keyed: Vec<(u64, u32, u32)> = texts.iter().zip(hits).enumerate().map(|(i, (t, h))| (prefix(t), h.seq, i as u32)).collect();
    keyed.sort_unstable_by(|a, b| {
        let o = a.0.cmp(&b.0).then_with(|| texts[a.2 as usize].cmp(texts[b.2 as usize]));
        (if reverse { o.reverse() } else { o }).then(a.1.cmp(&b.1))
    });
    keyed.into_iter().map(|(_, _, i)| i as usize).collect()
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
        // Sequence numbers 1 to 5, listed out of order: ties must still go by them.
        let hits = [hit(3), hit(2), hit(1), hit(4), hit(5)];
        let text = |s: &[u8]| Value::Text(s.to_vec());
        let values = [
            text(b"B"), Value::Num(7),
            text(b"A"), Value::Num(5),
            text(b"B"), Value::Num(5),
            text(b"A"), Value::Num(5),
            text(b""), Value::Num(1),
        ];
        let seqs = |o: Vec<usize>| o.into_iter().map(|i| hits[i].seq).collect::<Vec<u32>>();
        assert_eq!(seqs(order(&[crit(false, SortKey::Subject), crit(true, SortKey::Size)], &hits, &values)), [5, 2, 4, 3, 1]);
        let subjects: Vec<Value> = values.iter().step_by(2).cloned().collect();
        // Equal keys (2 and 4; 1 and 3) are in ascending sequence order.
        assert_eq!(seqs(order(&[crit(true, SortKey::Subject)], &hits, &subjects)), [1, 3, 2, 4, 5]);
    }

    #[test]
    fn one_string_orders_as_the_general_comparison_does() {
        let hits: Vec<Hit> = (0..600u32).map(|i| hit((i * 7919) % 600 + 1)).collect();
        // Equal prefixes, prefixes of each other, NULs, high octets, the empty string.
        let words: [&[u8]; 9] = [b"", b"A", b"A\0", b"ABCDEFGH", b"ABCDEFGHI", b"ABCDEFGH\0", b"ABCDEFGHZ", b"\xffX", b"B"];
        let values: Vec<Value> = (0..600usize).map(|i| Value::Text(words[(i * 31) % words.len()].to_vec())).collect();
        for reverse in [false, true] {
            let mut expected: Vec<usize> = (0..hits.len()).collect();
            expected.sort_by(|&x, &y| {
                let o = values[x].cmp(&values[y]);
                (if reverse { o.reverse() } else { o }).then(hits[x].seq.cmp(&hits[y].seq))
            });
            assert_eq!(order(&[SortCriterion { reverse, key: SortKey::Subject }], &hits, &values), expected);
        }
    }

    #[test]
    fn one_number_orders_as_the_general_comparison_does() {
        let hits: Vec<Hit> = (0..500u32).map(|i| hit((i * 7919) % 500 + 1)).collect();
        let values: Vec<Value> = (0..500i64).map(|i| Value::Num((i * 31) % 17 - 8)).collect();
        for reverse in [false, true] {
            let mut expected: Vec<usize> = (0..hits.len()).collect();
            expected.sort_by(|&x, &y| {
                let o = values[x].cmp(&values[y]);
                (if reverse { o.reverse() } else { o }).then(hits[x].seq.cmp(&hits[y].seq))
            });
            assert_eq!(order(&[SortCriterion { reverse, key: SortKey::Date }], &hits, &values), expected);
        }
    }
}
