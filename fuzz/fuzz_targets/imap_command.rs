//! The IMAP command parser and the literal framing on arbitrary bytes: must never panic,
//! loop or allocate beyond its input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_imap_proto::parser;

fuzz_target!(|data: &[u8]| {
    let _ = parser::parse(data);
    let _ = parser::tag_of(data);
    let _ = parser::is_append(data);
    for line in data.split(|&b| b == b'\n') {
        let _ = parser::literal_announcement(line);
    }
});
