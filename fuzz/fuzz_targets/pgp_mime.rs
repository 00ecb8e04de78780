//! Delivery to an OpenPGP user (rampart-pgp): whatever the message, recognising protected mail
//! never panics, and a message that is not protected (and has only CRLF line ends, as
//! everything SMTP accepts) is always wrapped as a PGP/MIME message
//! that is then recognised as protected, whose outer header holds only the fields the wrapper
//! keeps outside (plus its own MIME-Version and Content-Type).
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use rampart_pgp::mime::{OUTER, TRACE};
use rampart_pgp::{Protection, UserKey, encrypt, protection};

static KEY: LazyLock<UserKey> = LazyLock::new(|| UserKey::parse(include_bytes!("../../crates/rampart-pgp/testdata/alice.pub.asc")).expect("the test key reads"));

/// A CR not before LF or an LF not after CR: the SMTP receiver refuses such a message before
/// it reaches delivery (smuggling defence), so the wrapper never sees one.
fn bare_cr_or_lf(data: &[u8]) -> bool {
    data.iter().enumerate().any(|(i, &b)| match b {
        b'\r' => data.get(i + 1) != Some(&b'\n'),
        b'\n' => i == 0 || data[i - 1] != b'\r',
        _ => false,
    })
}

fuzz_target!(|data: &[u8]| {
    if bare_cr_or_lf(data) || protection(data).is_some() {
        return;
    }
    let protect = data.first().is_some_and(|b| b & 1 == 1);
    let out = encrypt(data, &KEY, protect).expect("a usable key always encrypts");
    assert_eq!(protection(&out), Some(Protection::PgpMime));
    let head_end = out.windows(4).position(|w| w == b"\r\n\r\n").expect("a header section");
    // Lines end in CRLF: SMTP refuses a bare CR or LF before delivery, so only CRLF ends one.
    let head = &out[..head_end];
    let lines = head.windows(2).enumerate().filter(|(_, w)| *w == b"\r\n").map(|(i, _)| i + 2);
    let starts = std::iter::once(0).chain(lines);
    for start in starts {
        let line = &head[start..];
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') || line.is_empty() {
            continue;
        }
        let name = line.split(|&b| b == b':').next().unwrap_or_default();
        let name = String::from_utf8_lossy(name).to_ascii_lowercase();
        assert!(
            OUTER.contains(&name.as_str()) || TRACE.contains(&name.as_str()) || name == "mime-version" || name == "content-type",
            "{name} outside"
        );
    }
});
