//! The words of the full-text index, and what a SEARCH string asks of them.
//!
//! SEARCH BODY and TEXT match a substring, case-insensitively: `s` matches when
//! `lower(text)` contains `lower(s)` (Rust's `to_lowercase` on both, as the scan does). The
//! index only narrows the messages to check; the scan's own test decides. For that it must
//! never leave out a message that matches, which these rules guarantee:
//!
//! - A word is a maximal run of alphanumeric characters of the lowercased text
//!   ([`words`]); the index holds each message's distinct words.
//! - If `lower(s)` occurs in `lower(text)`, every word of `lower(s)` occurs inside a word of
//!   `lower(text)`: as that very word when it has a non-word character of `lower(s)` on
//!   both sides ([`Term::Exact`]), as a word's beginning when only on its left (the last word
//!   of `s`, [`Term::Prefix`]), as its end when only on its right (the first,
//!   [`Term::Suffix`]), anywhere inside it when `s` is that one word ([`Term::Infix`]).
//! - A message whose words could not all be indexed (one longer than [`MAX_WORD`], more than
//!   [`MAX_WORDS`] of them, a text over [`MAX_TEXT`]) is marked so, and is always checked.
//! - A term that the index cannot answer (longer than [`MAX_WORD`]) is dropped: dropping a
//!   condition only widens the candidates.

use std::collections::HashSet;

/// Longer words are not indexed (their message is then always checked).
pub const MAX_WORD: usize = 64;
/// Messages with more distinct words than this are not indexed.
pub const MAX_WORDS: usize = 50_000;
/// Texts longer than this (in bytes) are not indexed: the index would cost as much as the scan
/// it saves, and the words of a huge message would be held in memory at once.
pub const MAX_TEXT: usize = 8 * 1024 * 1024;

/// The words of an already lowercased text, with their byte offsets.
pub fn words(lc: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut rest = lc.char_indices().peekable();
    std::iter::from_fn(move || {
        while rest.next_if(|(_, c)| !c.is_alphanumeric()).is_some() {}
        let (start, _) = *rest.peek()?;
        let mut end = start;
        while let Some((i, c)) = rest.next_if(|(_, c)| c.is_alphanumeric()) {
            end = i + c.len_utf8();
        }
        Some((start, &lc[start..end]))
    })
}

/// Adds the distinct words of `lc` (lowercased) to `into`; false when one of them is too long
/// to be indexed or there are too many.
pub fn collect<'a>(lc: &'a str, into: &mut HashSet<&'a str>) -> bool {
    for (_, w) in words(lc) {
        if w.chars().count() > MAX_WORD {
            return false;
        }
        into.insert(w);
        if into.len() > MAX_WORDS {
            return false;
        }
    }
    true
}

/// What one word of a SEARCH string asks of the words of a matching message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// Some word is exactly this.
    Exact(String),
    /// Some word starts with this.
    Prefix(String),
    /// Some word ends with this.
    Suffix(String),
    /// Some word contains this.
    Infix(String),
}

/// The terms of a SEARCH string; empty when it has no word the index can answer (then every
/// message is a candidate).
pub fn terms(needle: &str) -> Vec<Term> {
    let lc = needle.to_lowercase();
    let mut out = Vec::new();
    for (start, w) in words(&lc) {
        if w.chars().count() > MAX_WORD {
            continue;
        }
        let (left, right) = (start > 0, start + w.len() < lc.len());
        let w = w.to_string();
        out.push(match (left, right) {
            (true, true) => Term::Exact(w),
            (true, false) => Term::Prefix(w),
            (false, true) => Term::Suffix(w),
            (false, false) => Term::Infix(w),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_runs_of_letters_and_digits() {
        let w: Vec<&str> = words("héllo, wörld 42x — ok.").map(|(_, w)| w).collect();
        assert_eq!(w, ["héllo", "wörld", "42x", "ok"]);
        assert_eq!(words("").count(), 0);
        assert_eq!(words("  --  ").count(), 0);
    }

    #[test]
    fn terms_say_where_each_word_may_sit() {
        assert_eq!(terms("Quixotically"), [Term::Infix("quixotically".into())]);
        assert_eq!(
            terms("a Rare word"),
            [Term::Suffix("a".into()), Term::Exact("rare".into()), Term::Prefix("word".into())]
        );
        assert_eq!(terms(" x"), [Term::Prefix("x".into())]);
        assert!(terms("--").is_empty());
        assert!(terms(&"y".repeat(MAX_WORD + 1)).is_empty());
    }

    #[test]
    fn collect_refuses_what_cannot_be_indexed() {
        let mut set = HashSet::new();
        assert!(collect("a b a c", &mut set));
        assert_eq!(set.len(), 3);
        let long = "z".repeat(MAX_WORD + 1);
        assert!(!collect(&long, &mut HashSet::new()));
    }
}
