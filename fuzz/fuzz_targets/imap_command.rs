//! The IMAP command parser, the literal framing and the grammars commands carry inside
//! strings (IMAP URLs of CATENATE, sections) on arbitrary bytes: must never panic, loop or
//! allocate beyond its input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_imap_proto::{imapurl, parser};

fuzz_target!(|data: &[u8]| {
    let _ = parser::parse(data);
    let _ = parser::tag_of(data);
    let _ = parser::is_append(data);
    let _ = parser::parse_section(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = imapurl::ImapUrl::parse(text);
    }
    for line in data.split(|&b| b == b'\n') {
        let _ = parser::literal_announcement(line);
    }
});
