//! Everything kept of a message when it is stored, made once (at delivery, APPEND, or the
//! first SEARCH, SORT, THREAD or FETCH that reads an older message) by [`summarize`], and read
//! by those commands instead of the message:
//!
//! - keys: the facts record of SORT, THREAD and the SENT* keys ([`crate::facts::Keys`]);
//! - headers: the values of the header fields SEARCH asks most ([`SEARCHED`]), each exactly as
//!   the scan reads them ([`Parsed::header_values`]) and lowercased as its comparison does
//!   ([`Headers`]);
//! - fetch: ENVELOPE, BODY and BODYSTRUCTURE as FETCH sends them ([`Fetched`]);
//! - words: the distinct words of the decoded text (and of the raw message when it is text
//!   throughout) for the full-text index ([`crate::words`]).
//!
//! Each is computed by the very code that answers from a parse, so an answer from the summary
//! is the answer from the message.
//!
//! A message stored encrypted to its user's OpenPGP key ([`encrypted`]) is the exception:
//! keys and fetch describe the stored (encrypted) message, headers and words its plaintext,
//! and the keys record says so ([`PLAIN_SEARCH`]): SEARCH then answers from the summary alone,
//! since reading the stored message could not confirm anything.

use std::collections::HashSet;

use crate::facts::{Keys, PLAIN_SEARCH, WORDS_BODY, WORDS_RAW};
use crate::mime::Parsed;
use crate::words::{MAX_TEXT, collect};

/// The header fields whose values are kept for SEARCH (FROM, TO, CC, BCC, SUBJECT and
/// `HEADER Message-ID`); other fields are searched in the message.
pub const SEARCHED: [&str; 6] = ["from", "to", "cc", "bcc", "subject", "message-id"];

/// What is kept of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub keys: Vec<u8>,
    pub headers: Vec<u8>,
    pub fetch: Vec<u8>,
    /// Distinct words, space-separated; None when the text could not be indexed.
    pub words: Option<String>,
}

pub fn summarize(raw: &[u8]) -> Summary {
    of(&Parsed::new(raw))
}

/// The summary of a message already parsed (a SEARCH that read one without a summary).
pub fn of(p: &Parsed<'_>) -> Summary {
    let (words, coverage) = index_words(p);
    Summary { keys: Keys::encode(p, coverage), headers: encode_headers(p), fetch: encode_fetch(p), words }
}

/// The summary of `stored`, a form of `plain` the server cannot read back (PGP/MIME encrypted
/// to the user's key, with `plain`'s prefix outside): what FETCH, SORT and THREAD read
/// (keys, fetch) from `stored`, what SEARCH reads (the header values and words) from `plain`,
/// marked [`PLAIN_SEARCH`].
pub fn encrypted(plain: &[u8], stored: &[u8]) -> Summary {
    let (plain, stored) = (Parsed::new(plain), Parsed::new(stored));
    let (words, coverage) = index_words(&plain);
    Summary { keys: Keys::encode(&stored, coverage | PLAIN_SEARCH), headers: encode_headers(&plain), fetch: encode_fetch(&stored), words }
}

/// The words to index and what they cover (`WORDS_BODY`, `WORDS_RAW`).
fn index_words(p: &Parsed<'_>) -> (Option<String>, u8) {
    if p.raw().len() > MAX_TEXT {
        return (None, 0);
    }
    let body = p.body_text().to_lowercase();
    let raw = p.raw_is_text().then(|| String::from_utf8_lossy(p.raw()).to_lowercase());
    let mut set = HashSet::new();
    if !collect(&body, &mut set) {
        return (None, 0);
    }
    // Words of a raw text that fails half-way stay: more words only widen the candidates.
    let raw_ok = raw.as_deref().is_some_and(|r| collect(r, &mut set));
    let mut words: Vec<&str> = set.into_iter().collect();
    words.sort_unstable();
    (Some(words.join(" ")), WORDS_BODY | if raw_ok { WORDS_RAW } else { 0 })
}

fn put(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out.extend_from_slice(data);
}

/// Reads a length-prefixed piece at `at`; advances `at`.
fn take<'a>(data: &'a [u8], at: &mut usize) -> Option<&'a [u8]> {
    let len = u32::from_le_bytes(data.get(*at..*at + 4)?.try_into().ok()?) as usize;
    let piece = data.get(*at + 4..*at + 4 + len)?;
    *at += 4 + len;
    Some(piece)
}

fn encode_headers(p: &Parsed<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    for field in SEARCHED {
        let values = p.header_values(field);
        out.extend_from_slice(&(values.len() as u32).to_le_bytes());
        for v in values {
            put(&mut out, v.to_lowercase().as_bytes());
        }
    }
    out
}

/// The kept header values: for each field of [`SEARCHED`], its values lowercased. Reading
/// checks the whole record once and keeps only where each field starts, so a SEARCH over a
/// large mailbox allocates nothing per message.
#[derive(Debug, Clone, Copy)]
pub struct Headers<'a> {
    data: &'a [u8],
    /// Where each field's count is.
    starts: [usize; SEARCHED.len()],
}

/// The values of one field of a record [`Headers::parse`] checked.
fn values(data: &[u8], start: usize) -> impl Iterator<Item = &str> {
    let n = data.get(start..start + 4).map_or(0, |c| u32::from_le_bytes(c.try_into().expect("4 bytes")));
    let mut at = start + 4;
    (0..n).map_while(move |_| take(data, &mut at).and_then(|v| std::str::from_utf8(v).ok()))
}

impl<'a> Headers<'a> {
    /// None when damaged.
    pub fn parse(data: &'a [u8]) -> Option<Headers<'a>> {
        let mut at = 0;
        let mut starts = [0; SEARCHED.len()];
        for start in &mut starts {
            *start = at;
            let n = u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?) as usize;
            at += 4;
            for _ in 0..n {
                std::str::from_utf8(take(data, &mut at)?).ok()?;
            }
        }
        (at == data.len()).then_some(Headers { data, starts })
    }

    /// The values of field `i` of [`SEARCHED`] (lowercased).
    pub fn values(&self, i: usize) -> impl Iterator<Item = &'a str> {
        values(self.data, self.starts[i])
    }

    /// SEARCH `HEADER field s` as the scan answers it (the field present, and one of its values
    /// containing `s` case-insensitively; `needle_lc` is `s` lowercased); None when the field
    /// is not kept.
    pub fn matches(&self, field: &str, needle_lc: &str) -> Option<bool> {
        let i = searched(field)?;
        let mut values = values(self.data, self.starts[i]).peekable();
        Some(values.peek().is_some() && (needle_lc.is_empty() || values.any(|v| v.contains(needle_lc))))
    }
}

/// Where `field` is in [`SEARCHED`] (any case); None when its values are not kept.
pub fn searched(field: &str) -> Option<usize> {
    SEARCHED.iter().position(|f| f.eq_ignore_ascii_case(field))
}

fn encode_fetch(p: &Parsed<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut piece = Vec::new();
    p.envelope(&mut piece);
    put(&mut out, &piece);
    for extended in [false, true] {
        piece.clear();
        p.body_structure(&mut piece, extended);
        put(&mut out, &piece);
    }
    out
}

/// ENVELOPE, BODY and BODYSTRUCTURE as FETCH sends them.
#[derive(Debug, Clone, Copy)]
pub struct Fetched<'a> {
    pub envelope: &'a [u8],
    pub body: &'a [u8],
    pub body_structure: &'a [u8],
}

impl<'a> Fetched<'a> {
    /// None when damaged.
    pub fn parse(data: &'a [u8]) -> Option<Fetched<'a>> {
        let mut at = 0;
        let envelope = take(data, &mut at)?;
        let body = take(data, &mut at)?;
        let body_structure = take(data, &mut at)?;
        (at == data.len()).then_some(Fetched { envelope, body, body_structure })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::Keys;

    const MSG: &[u8] = b"From: =?utf-8?q?J=C3=96RG?= <jorg@x.test>\r\nTo: a@x.test\r\nTo: B@X.test\r\n\
        Subject: Hello There\r\nMessage-ID: <Id@x.test>\r\nContent-Type: text/plain; charset=utf-8\r\n\
        Content-Transfer-Encoding: quoted-printable\r\n\r\nGr=C3=BC=C3=9Fe, world-wide\r\n";

    #[test]
    fn header_values_answer_as_the_scan_does() {
        let p = Parsed::new(MSG);
        let s = summarize(MSG);
        let h = Headers::parse(&s.headers).unwrap();
        for (field, needle) in [("FROM", "jörg"), ("from", "JORG@"), ("To", "b@x"), ("cc", ""), ("subject", ""), ("Message-ID", "<id@")] {
            let scan = {
                let values = p.header_values(field);
                !values.is_empty() && values.iter().any(|v| needle.is_empty() || v.to_lowercase().contains(&needle.to_lowercase()))
            };
            assert_eq!(h.matches(field, &needle.to_lowercase()), Some(scan), "{field} {needle}");
        }
        assert_eq!(h.matches("X-Other", "x"), None);
        assert!(Headers::parse(&s.headers[..s.headers.len() - 1]).is_none());
    }

    #[test]
    fn fetch_data_and_words() {
        let p = Parsed::new(MSG);
        let s = summarize(MSG);
        let f = Fetched::parse(&s.fetch).unwrap();
        let (mut env, mut body, mut bs) = (Vec::new(), Vec::new(), Vec::new());
        p.envelope(&mut env);
        p.body_structure(&mut body, false);
        p.body_structure(&mut bs, true);
        assert_eq!((f.envelope, f.body, f.body_structure), (&env[..], &body[..], &bs[..]));
        let words = s.words.unwrap();
        // Decoded text and raw text alike: QP's "gr" and "c3" as well as "grüße".
        for w in ["grüße", "world", "wide", "gr", "c3", "subject", "hello"] {
            assert!(words.split(' ').any(|x| x == w), "{w} in {words}");
        }
        assert_eq!(Keys::parse(&s.keys).unwrap().words(), WORDS_BODY | WORDS_RAW);
    }

    #[test]
    fn encrypted_summary_searches_the_plaintext_and_describes_the_stored_message() {
        let stored = b"From: jorg@x.test\r\nSubject: ...\r\nContent-Type: multipart/encrypted; boundary=e\r\n\r\n\
            --e\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n--e\r\n\
            Content-Type: application/octet-stream\r\n\r\n-----BEGIN PGP MESSAGE-----\r\nwcBMA\r\n--e--\r\n";
        let s = encrypted(MSG, stored);
        let mine = summarize(stored);
        assert_eq!((&s.fetch, Fetched::parse(&s.fetch).is_some()), (&mine.fetch, true), "FETCH describes what is stored");
        let keys = Keys::parse(&s.keys).unwrap();
        assert!(keys.plain_search());
        assert_eq!(keys.words(), WORDS_BODY | WORDS_RAW);
        assert_eq!(crate::facts::Facts::Stored(keys).text(crate::facts::TextKey::Subject).as_ref(), b"...", "SORT as ENVELOPE");
        let h = Headers::parse(&s.headers).unwrap();
        assert_eq!(h.matches("subject", "hello there"), Some(true), "SEARCH the plaintext's fields");
        let words = s.words.unwrap();
        assert!(words.split(' ').any(|w| w == "grüße") && !words.split(' ').any(|w| w == "pgp"), "{words}");
        assert!(!Keys::parse(&summarize(MSG).keys).unwrap().plain_search());
    }

    #[test]
    fn base64_parts_keep_raw_words_out() {
        let msg = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n\
            --b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nSGVsbG8gd29ybGQ=\r\n--b--\r\n";
        let s = summarize(msg);
        assert_eq!(s.words.as_deref(), Some("hello"));
        assert_eq!(Keys::parse(&s.keys).unwrap().words(), WORDS_BODY);
    }
}
