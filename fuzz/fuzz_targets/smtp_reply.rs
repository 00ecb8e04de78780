//! The outbound client's reply reader on whatever a remote server sends: it must never panic,
//! must give the same replies however the bytes are split across reads, and must keep its caps.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_smtp_proto::response::{MAX_REPLY_LINES, Response, ResponseError, ResponseReader};

fn run(pieces: &[&[u8]]) -> (Vec<Response>, Option<ResponseError>) {
    let mut r = ResponseReader::default();
    let mut out = Vec::new();
    for piece in pieces {
        r.push(piece);
        loop {
            match r.next_reply() {
                Ok(Some(resp)) => out.push(resp),
                Ok(None) => break,
                Err(e) => return (out, Some(e)),
            }
        }
    }
    (out, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, input)) = data.split_first() else { return };
    let whole = run(&[input]);
    let pieces: Vec<&[u8]> = input.chunks(1 + usize::from(ctl % 13)).collect();
    let split = run(&pieces);
    // A line too long is seen earlier when split: compare only what was read before any error.
    if whole.1.is_none() && split.1.is_none() {
        assert_eq!(whole.0, split.0);
    }
    for r in whole.0.iter().chain(split.0.iter()) {
        assert!((200..600).contains(&r.code));
        assert!(!r.lines.is_empty() && r.lines.len() <= MAX_REPLY_LINES);
    }
});
