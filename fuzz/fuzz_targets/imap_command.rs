//! The IMAP command parser and the literal framing on arbitrary bytes: must never panic,
//! loop or allocate beyond its input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_imap::parser;

fuzz_target!(|data: &[u8]| {
    let _ = parser::parse(data);
    let _ = parser::tag_of(data);
    for line in data.split(|&b| b == b'\n') {
        let _ = parser::literal_announcement(line);
    }
    // The MIME layer sees whatever a client APPENDs.
    let p = rampart_imap::mime::Parsed::new(data);
    let mut out = Vec::new();
    p.envelope(&mut out);
    p.body_structure(&mut out, true);
    // SORT's keys.
    let _ = rampart_imap::subject::base_subject(p.subject().unwrap_or_default());
    let _ = rampart_imap::subject::base_subject(&String::from_utf8_lossy(data));
    let _ = p.first_address(rampart_imap::mime::AddressField::From);
    let _ = p.sent_time();
    // THREAD's keys.
    let _ = p.message_id();
    let _ = p.references(100);
});
