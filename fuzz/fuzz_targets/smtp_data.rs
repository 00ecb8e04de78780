//! The DATA/BDAT receiver: however the input is split across reads, the outcome, the kept
//! bytes and the error are the same, and nothing past the size limit is kept.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_smtp_proto::data::{Fatal, Framing, Receiver, Soft};

type Outcome = (Result<(usize, bool), Fatal>, Vec<u8>, Option<Soft>);

fn run(framing: Framing, max_size: u64, max_line: usize, chunks: &[&[u8]]) -> Outcome {
    let mut r = Receiver::new(framing, max_size, max_line);
    let mut out = Vec::new();
    let mut consumed = 0;
    for chunk in chunks {
        match r.feed(chunk, &mut out) {
            Err(e) => return (Err(e), out, r.soft_error()),
            Ok(fed) => {
                consumed += fed.consumed;
                if fed.done {
                    return (Ok((consumed, true)), out, r.soft_error());
                }
            }
        }
    }
    (Ok((consumed, false)), out, r.soft_error())
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, input)) = data.split_first() else { return };
    let framing = if ctl & 1 == 0 { Framing::Dot } else { Framing::Chunked };
    let max_size = 32 + u64::from(ctl) * 4;
    let max_line = 8 + usize::from(ctl >> 1);
    let whole = run(framing, max_size, max_line, &[input]);
    let pieces: Vec<&[u8]> = input.chunks(1 + usize::from(ctl % 7)).collect();
    let split = run(framing, max_size, max_line, &pieces);
    assert_eq!(whole, split);
    assert!(whole.1.len() as u64 <= max_size);
});
