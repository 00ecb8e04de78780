//! Forged Authentication-Results removal (RFC 8601 §5): whatever the header section, it never
//! panics, removes at least one field when it says so, keeps the body as it was, and leaves
//! nothing to remove a second time.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_pipeline::headers::strip_forged;

const OURS: &str = "mx.example.test";

/// The body: everything after the first empty line, or nothing.
fn body(message: &[u8]) -> &[u8] {
    message.windows(4).position(|w| w == b"\r\n\r\n").map_or(&[], |i| &message[i + 2..])
}

fuzz_target!(|data: &[u8]| {
    let Some((out, removed)) = strip_forged(data, OURS) else { return };
    assert!(removed > 0);
    assert!(out.len() < data.len());
    assert!(out.ends_with(body(data)), "the body changed");
    assert!(strip_forged(&out, OURS).is_none(), "a second pass found more to remove");
});
