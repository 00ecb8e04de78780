//! The milter reply decoder on whatever a filter sends: it must never panic, must give the same
//! packets however the bytes are split across reads, must keep its packet limit, and every reply
//! it accepts must encode back to bytes that decode to the same reply.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_external::milter::codec::{DecodeError, Framer, MAX_PACKET, Reply};

type Run = (Vec<Result<Reply, DecodeError>>, Option<DecodeError>);

fn run(pieces: &[&[u8]]) -> Run {
    let mut framer = Framer::default();
    let mut out = Vec::new();
    for piece in pieces {
        framer.push(piece);
        loop {
            match framer.next_packet() {
                Ok(Some((code, data))) => {
                    assert!(data.len() < MAX_PACKET);
                    out.push(Reply::decode(code, &data));
                }
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
    assert_eq!(whole, run(&pieces));
    for reply in whole.0.iter().flatten() {
        let mut wire = Vec::new();
        reply.encode(&mut wire).expect("a decoded reply encodes");
        let mut framer = Framer::default();
        framer.push(&wire);
        let (code, data) = framer.next_packet().unwrap().expect("one whole packet");
        assert_eq!(Reply::decode(code, &data).as_ref(), Ok(reply));
    }
});
