//! Modified UTF-7 (RFC 3501 §5.1.3), the form mailbox names take on the wire in IMAP4rev1 and
//! in the store; an IMAP4rev2 client (RFC 9051 §5.1) speaks UTF-8 instead, so the session
//! turns its names into this form going in and back coming out. The base64 is the `base64`
//! crate's IMAP alphabet; only the `&...-` framing is written here.

use base64::Engine;
use base64::alphabet::IMAP_MUTF7;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

const B64: GeneralPurpose =
    GeneralPurpose::new(&IMAP_MUTF7, GeneralPurposeConfig::new().with_encode_padding(false).with_decode_padding_mode(DecodePaddingMode::RequireNone));

/// A UTF-8 name in modified UTF-7: printable ASCII stands for itself, `&` is `&-`, and every
/// run of other characters is `&` + base64 of its UTF-16BE + `-`.
pub fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut run: Vec<u16> = Vec::new();
    let flush = |run: &mut Vec<u16>, out: &mut String| {
        if run.is_empty() {
            return;
        }
        let bytes: Vec<u8> = run.iter().flat_map(|u| u.to_be_bytes()).collect();
        out.push('&');
        out.push_str(&B64.encode(bytes));
        out.push('-');
        run.clear();
    };
    for ch in name.chars() {
        if (' '..='~').contains(&ch) {
            flush(&mut run, &mut out);
            if ch == '&' {
                out.push_str("&-");
            } else {
                out.push(ch);
            }
        } else {
            let mut units = [0; 2];
            run.extend_from_slice(ch.encode_utf16(&mut units));
        }
    }
    flush(&mut run, &mut out);
    out
}

/// The UTF-8 form of a modified UTF-7 name, or None when it is not valid modified UTF-7 (a
/// name stored by a rev1 client that sent raw 8-bit, say), which then goes out as it is.
pub fn decode(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let end = after.find('-')?;
        if end == 0 {
            out.push('&');
        } else {
            let bytes = B64.decode(&after[..end]).ok()?;
            if bytes.len() % 2 != 0 {
                return None;
            }
            let units: Vec<u16> = bytes.chunks(2).map(|c| u16::from_be_bytes([c[0], c[1]])).collect();
            let text = String::from_utf16(&units).ok()?;
            // RFC 3501 §5.1.3: printable ASCII is never encoded; a run of it is not canonical.
            if text.chars().any(|c| (' '..='~').contains(&c)) {
                return None;
            }
            out.push_str(&text);
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rfc_examples() {
        // RFC 3501 §5.1.3's example, and names clients create.
        assert_eq!(encode("~peter/mail/台北/日本語"), "~peter/mail/&U,BTFw-/&ZeVnLIqe-");
        assert_eq!(encode("Entwürfe"), "Entw&APw-rfe");
        assert_eq!(encode("Q&A"), "Q&-A");
        assert_eq!(encode("😀"), "&2D3eAA-");
        for name in ["INBOX", "Entwürfe", "Q&A", "~peter/mail/台北/日本語", "😀 x", "a\u{7f}b", ""] {
            assert_eq!(decode(&encode(name)).as_deref(), Some(name));
        }
        assert_eq!(decode("&U,BTFw-&ZeVnLIqe-").as_deref(), Some("台北日本語"));
        for bad in ["&", "&U,BTFw", "&AGE-", "&A-", "&2D0-"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }
}
