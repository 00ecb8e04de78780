//! What SEARCH's date keys, SORT and THREAD read of a message's text: its *facts*, taken
//! either from the parsed message or from the compact record ([`Keys`]) made of those very
//! facts when the message was stored, so that SORT and THREAD never parse a message twice.
//!
//! One set of accessors ([`Facts`]) answers both ways; the record is written from the
//! accessors' answers on the parsed message ([`Keys::encode`]), so a stored fact is by
//! construction the fact a parse gives.
//!
//! Record layout (version 1; a record of another version reads as absent, and the message
//! is parsed instead): version, flags, the Date header as Unix time (8 bytes), its day
//! (4 bytes, days from 0001-01-01), the Message-ID hash (16 bytes), six length-prefixed
//! strings (SORT's SUBJECT, FROM, DISPLAYFROM, TO, DISPLAYTO and CC values) and the
//! reference hashes (a count, then 16 bytes each). Integers are little-endian.

use chrono::Datelike;

use crate::mime::{AddressField, Parsed};
use crate::subject::{ascii_casemap, base_subject_reply};
use crate::thread::{Id, MAX_REFS, id_key};

/// String keys are kept (and compared) on this many octets at most, so a message with a huge
/// Subject or From cannot make a SORT hold its size once per match.
pub const MAX_KEY: usize = 1024;

const VERSION: u8 = 1;
const REPLY: u8 = 1;
const SENT: u8 = 2;
const SENT_DAY: u8 = 4;
const MESSAGE_ID: u8 = 8;
/// The full-text index holds every word of the decoded text (SEARCH BODY).
pub const WORDS_BODY: u8 = 16;
/// The full-text index holds every word of the raw message too (SEARCH TEXT).
pub const WORDS_RAW: u8 = 32;
/// The stored message is encrypted to the user's OpenPGP key, so the server cannot read its
/// text back; the summary's searched header values and words are those of the plaintext it
/// was made from at delivery ([`crate::summary::encrypted`]), and SEARCH takes them as its
/// final answer for the message instead of confirming a hit by reading it. The other facts
/// (dates, SORT and THREAD keys) are those of the stored message, as ENVELOPE's.
pub const PLAIN_SEARCH: u8 = 64;
const FIXED: usize = 30;

/// The string keys, in record order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKey {
    Subject,
    From,
    DisplayFrom,
    To,
    DisplayTo,
    Cc,
}

const TEXT_KEYS: [TextKey; 6] = [TextKey::Subject, TextKey::From, TextKey::DisplayFrom, TextKey::To, TextKey::DisplayTo, TextKey::Cc];

/// A message's facts: from its parse, from its stored record, or none (its text could not be
/// read: every fact is then missing, as for a message without those headers).
pub enum Facts<'a> {
    Parsed(&'a Parsed<'a>),
    Stored(Keys<'a>),
    Missing,
}

fn capped(s: &str) -> Vec<u8> {
    let mut v = ascii_casemap(s);
    v.truncate(MAX_KEY);
    v
}

impl Facts<'_> {
    /// The Date header as a Unix time (UTC); None when missing or invalid.
    pub fn sent_time(&self) -> Option<i64> {
        match self {
            Facts::Parsed(p) => p.sent_time(),
            Facts::Stored(k) => k.flag(SENT).then(|| k.i64_at(2)),
            Facts::Missing => None,
        }
    }

    /// The day of the Date header in its own time zone (RFC 3501 §6.4.4 SENT*).
    pub fn sent_day(&self) -> Option<chrono::NaiveDate> {
        match self {
            Facts::Parsed(p) => p.sent_day(),
            Facts::Stored(k) => k.flag(SENT_DAY).then(|| chrono::NaiveDate::from_num_days_from_ce_opt(k.i32_at(10))).flatten(),
            Facts::Missing => None,
        }
    }

    /// A string key as SORT compares it: mapped by i;ascii-casemap and capped (RFC 5256 §3,
    /// RFC 5957); empty when the header is missing.
    pub fn text(&self, key: TextKey) -> std::borrow::Cow<'_, [u8]> {
        let p = match self {
            Facts::Parsed(p) => p,
            Facts::Stored(k) => return std::borrow::Cow::Borrowed(k.string(key)),
            Facts::Missing => return std::borrow::Cow::Owned(capped("")),
        };
        let address = |field, display: bool| {
            let a = p.first_address(field);
            capped(&a.map(|a| if display { a.display } else { a.mailbox }).unwrap_or_default())
        };
        std::borrow::Cow::Owned(match key {
            TextKey::Subject => capped(&base_subject_reply(p.subject().unwrap_or("")).0),
            TextKey::From => address(AddressField::From, false),
            TextKey::DisplayFrom => address(AddressField::From, true),
            TextKey::To => address(AddressField::To, false),
            TextKey::DisplayTo => address(AddressField::To, true),
            TextKey::Cc => address(AddressField::Cc, false),
        })
    }

    /// Whether base subject extraction removed a reply or forward marker (RFC 5256 §2.2 step 5).
    pub fn reply(&self) -> bool {
        match self {
            Facts::Parsed(p) => base_subject_reply(p.subject().unwrap_or("")).1,
            Facts::Stored(k) => k.flag(REPLY),
            Facts::Missing => false,
        }
    }

    /// THREAD=REFERENCES' ids: the Message-ID and the references, as hashes.
    pub fn thread_ids(&self) -> (Option<Id>, Vec<Id>) {
        match self {
            Facts::Parsed(p) => (p.message_id().map(|i| id_key(&i)), p.references(MAX_REFS).iter().map(|r| id_key(r)).collect()),
            Facts::Stored(k) => {
                let id = k.flag(MESSAGE_ID).then(|| u128::from_le_bytes(k.0[14..30].try_into().expect("16 bytes")));
                (id, k.refs().collect())
            }
            Facts::Missing => (None, Vec::new()),
        }
    }
}

/// A stored record of facts, checked when it is read.
#[derive(Debug, Clone, Copy)]
pub struct Keys<'a>(&'a [u8], [usize; 7]);

impl<'a> Keys<'a> {
    /// The record of a parsed message; `words` says what the full-text index covers
    /// ([`WORDS_BODY`], [`WORDS_RAW`]) and whether the search data is a plaintext's
    /// ([`PLAIN_SEARCH`]).
    pub fn encode(p: &Parsed<'_>, words: u8) -> Vec<u8> {
        let facts = Facts::Parsed(p);
        let (sent, day) = (facts.sent_time(), facts.sent_day());
        let (id, refs) = facts.thread_ids();
        let mut flags = words & (WORDS_BODY | WORDS_RAW | PLAIN_SEARCH);
        for (set, bit) in [(facts.reply(), REPLY), (sent.is_some(), SENT), (day.is_some(), SENT_DAY), (id.is_some(), MESSAGE_ID)] {
            if set {
                flags |= bit;
            }
        }
        let mut out = vec![VERSION, flags];
        out.extend_from_slice(&sent.unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&day.map_or(0, |d| d.num_days_from_ce()).to_le_bytes());
        out.extend_from_slice(&id.unwrap_or(0).to_le_bytes());
        for key in TEXT_KEYS {
            let s = facts.text(key);
            out.extend_from_slice(&(s.len() as u16).to_le_bytes());
            out.extend_from_slice(&s);
        }
        out.extend_from_slice(&(refs.len() as u16).to_le_bytes());
        for r in refs {
            out.extend_from_slice(&r.to_le_bytes());
        }
        out
    }

    /// Reads a record; None when it is of another version or damaged.
    pub fn parse(data: &'a [u8]) -> Option<Keys<'a>> {
        if data.len() < FIXED || data[0] != VERSION {
            return None;
        }
        let mut ends = [0usize; 7];
        let mut at = FIXED;
        for end in ends.iter_mut().take(6) {
            let len = u16::from_le_bytes(data.get(at..at + 2)?.try_into().ok()?) as usize;
            at += 2 + len;
            *end = at;
        }
        let refs = u16::from_le_bytes(data.get(at..at + 2)?.try_into().ok()?) as usize;
        ends[6] = at + 2;
        (data.len() == ends[6] + 16 * refs).then_some(Keys(data, ends))
    }

    /// What the full-text index covers of this message ([`WORDS_BODY`], [`WORDS_RAW`]).
    pub fn words(&self) -> u8 {
        self.0[1] & (WORDS_BODY | WORDS_RAW)
    }

    /// The summary's header values and words are of the plaintext of a message stored
    /// encrypted ([`PLAIN_SEARCH`]): SEARCH answers from them alone.
    pub fn plain_search(&self) -> bool {
        self.flag(PLAIN_SEARCH)
    }

    fn flag(&self, bit: u8) -> bool {
        self.0[1] & bit != 0
    }

    fn i64_at(&self, at: usize) -> i64 {
        i64::from_le_bytes(self.0[at..at + 8].try_into().expect("8 bytes"))
    }

    fn i32_at(&self, at: usize) -> i32 {
        i32::from_le_bytes(self.0[at..at + 4].try_into().expect("4 bytes"))
    }

    fn string(&self, key: TextKey) -> &'a [u8] {
        let i = TEXT_KEYS.iter().position(|k| *k == key).expect("every key has a slot");
        let start = if i == 0 { FIXED } else { self.1[i - 1] } + 2;
        &self.0[start..self.1[i]]
    }

    fn refs(&self) -> impl Iterator<Item = Id> + 'a {
        self.0[self.1[6]..].chunks_exact(16).map(|c| u128::from_le_bytes(c.try_into().expect("16 bytes")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"From: \"Zed\" <z@x.test>\r\nTo: a@x.test, b@x.test\r\nCc: undisclosed:;\r\n\
        Subject: Re: [fwd: The  Plan]\r\nDate: Tue, 3 Mar 2026 23:30:00 -0700\r\n\
        Message-ID: <m1@x.test>\r\nReferences: <r1@x.test> <r2@x.test>\r\n\r\nbody\r\n";

    /// Every fact of a record equals the fact of the parse it was made from.
    fn same_facts(raw: &[u8]) {
        let p = Parsed::new(raw);
        let record = Keys::encode(&p, WORDS_BODY);
        let stored = Facts::Stored(Keys::parse(&record).expect("a fresh record reads"));
        let parsed = Facts::Parsed(&p);
        assert_eq!(stored.sent_time(), parsed.sent_time());
        assert_eq!(stored.sent_day(), parsed.sent_day());
        assert_eq!(stored.reply(), parsed.reply());
        assert_eq!(stored.thread_ids(), parsed.thread_ids());
        for key in TEXT_KEYS {
            assert_eq!(stored.text(key), parsed.text(key), "{key:?}");
        }
        assert_eq!(Keys::parse(&record).unwrap().words(), WORDS_BODY);
    }

    #[test]
    fn records_give_the_facts_of_the_parse() {
        same_facts(MSG);
        same_facts(b"no header at all");
        same_facts(b"Subject: x\r\nDate: not a date\r\n\r\n");
        let long = format!("Subject: {}\r\nFrom: {}@x\r\n\r\n", "s".repeat(3000), "l".repeat(2000));
        same_facts(long.as_bytes());
        let p = Parsed::new(MSG);
        let k = Keys::encode(&p, 0);
        assert_eq!(Facts::Stored(Keys::parse(&k).unwrap()).text(TextKey::Subject).as_ref(), b"THE PLAN");
        assert_eq!(Facts::Stored(Keys::parse(&k).unwrap()).text(TextKey::DisplayFrom).as_ref(), b"ZED");
    }

    #[test]
    fn damaged_or_foreign_records_read_as_absent() {
        let k = Keys::encode(&Parsed::new(MSG), 0);
        assert!(Keys::parse(&k[..k.len() - 1]).is_none());
        assert!(Keys::parse(&[k.as_slice(), b"x"].concat()).is_none());
        let mut other = k.clone();
        other[0] = 2;
        assert!(Keys::parse(&other).is_none());
        assert!(Keys::parse(b"").is_none());
    }
}
