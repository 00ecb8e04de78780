//! The MIME layer on arbitrary messages (whatever a client APPENDs or a sender delivers):
//! ENVELOPE, BODYSTRUCTURE and BODY (the builders FETCH answers with), body sections, SEARCH's
//! header and text reads, SORT's and THREAD's keys, the summary kept when a message is stored
//! and the records read back from it. Must never panic or loop.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_imap_proto::mime::{AddressField, Parsed, msg_ids};
use rampart_imap_proto::parser::{Section, SectionPart, SortKey};
use rampart_imap_proto::facts::{Facts, Keys};
use rampart_imap_proto::summary::{Fetched, Headers, summarize};
use rampart_imap_proto::{sort, subject, thread};

/// Part paths: the whole message, top-level parts, and parts of attached messages or nested
/// multiparts.
const PATHS: &[&[u32]] = &[&[], &[1], &[2], &[1, 1], &[2, 1], &[3, 1, 2], &[1, 2, 1, 1]];

fn text_parts() -> [Option<SectionPart>; 6] {
    let fields = vec!["FROM".to_string(), "SUBJECT".to_string(), "CONTENT-TYPE".to_string()];
    [
        None,
        Some(SectionPart::Header),
        Some(SectionPart::HeaderFields(fields.clone())),
        Some(SectionPart::HeaderFieldsNot(fields)),
        Some(SectionPart::Text),
        Some(SectionPart::Mime),
    ]
}

fuzz_target!(|data: &[u8]| {
    let p = Parsed::new(data);
    let mut out = Vec::new();
    p.envelope(&mut out);
    p.body_structure(&mut out, true);
    p.body_structure(&mut out, false);
    let _ = (p.header(), p.text());
    for path in PATHS {
        for text in text_parts() {
            let _ = p.section(&Section { part: path.to_vec(), text });
        }
    }
    // SEARCH.
    let _ = p.header_values("SUBJECT");
    let _ = p.header_values("X-UNKNOWN");
    let _ = p.body_text();
    let _ = p.sent_day();
    // SORT's keys.
    for key in [SortKey::Date, SortKey::Subject, SortKey::From, SortKey::To, SortKey::Cc, SortKey::DisplayFrom, SortKey::DisplayTo] {
        let _ = sort::value(key, 0, data.len() as u64, &Facts::Parsed(&p));
    }
    for field in [AddressField::From, AddressField::To, AddressField::Cc] {
        let _ = p.first_address(field);
    }
    let _ = subject::base_subject(&String::from_utf8_lossy(data));
    // THREAD's keys.
    let _ = thread::Msg::new(1, 1, 0, &Facts::Parsed(&p), true);
    let _ = msg_ids(&String::from_utf8_lossy(data));
    // The summary, and its records read back (as the store hands them, or damaged).
    let s = summarize(data);
    let keys = Keys::parse(&s.keys).expect("a fresh record reads");
    let _ = thread::Msg::new(1, 1, 0, &Facts::Stored(keys), true);
    assert!(Headers::parse(&s.headers).is_some() && Fetched::parse(&s.fetch).is_some());
    let _ = (Keys::parse(data), Headers::parse(data), Fetched::parse(data));
});
