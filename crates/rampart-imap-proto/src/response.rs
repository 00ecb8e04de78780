//! Writing response data (RFC 3501 §7, §9): strings as quoted or literal, NIL, flag lists,
//! dates. One place decides how a string goes on the wire, so no response can carry a bare
//! CR, LF or quote that would desynchronize a client.

use chrono::TimeZone;

/// Strings longer than this go as literals even when quoting would work; quoted strings are
/// meant for short tokens.
const MAX_QUOTED: usize = 1024;

/// A string: quoted when it is short printable ASCII-or-UTF-8 without CR/LF, else a literal.
pub fn string(out: &mut Vec<u8>, s: &[u8]) {
    let quotable = s.len() <= MAX_QUOTED && s.iter().all(|&c| c != b'\r' && c != b'\n' && c != 0) && std::str::from_utf8(s).is_ok() && s.is_ascii();
    if quotable {
        out.push(b'"');
        for &c in s {
            if c == b'"' || c == b'\\' {
                out.push(b'\\');
            }
            out.push(c);
        }
        out.push(b'"');
    } else {
        literal(out, s);
    }
}

pub fn literal(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", s.len()).as_bytes());
    out.extend_from_slice(s);
}

pub fn nstring(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        Some(s) => string(out, s),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// A mailbox name: an atom-safe name as is (clients show it either way), else a string.
pub fn mailbox(out: &mut Vec<u8>, name: &str) {
    let atom_safe = !name.is_empty()
        && name.bytes().all(|c| c > 0x20 && c < 0x7f && !matches!(c, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\' | b']'));
    if atom_safe && !name.eq_ignore_ascii_case("NIL") {
        out.extend_from_slice(name.as_bytes());
    } else {
        string(out, name.as_bytes());
    }
}

pub fn flag_list<S: AsRef<str>>(out: &mut Vec<u8>, flags: &[S]) {
    out.push(b'(');
    for (i, f) in flags.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(f.as_ref().as_bytes());
    }
    out.push(b')');
}

/// date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE
pub fn internal_date(unix: i64, zone_minutes: i32) -> String {
    let zone = chrono::FixedOffset::east_opt(zone_minutes * 60).unwrap_or(chrono::FixedOffset::east_opt(0).expect("UTC"));
    let t = zone.timestamp_opt(unix, 0).single().unwrap_or_default();
    t.format("\"%d-%b-%Y %H:%M:%S %z\"").to_string()
}

/// A tagged or untagged status line.
pub fn line(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Base64 (RFC 4648, padded) for SASL exchanges and encoded words.
pub fn base64_encode(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Strict: padding required, no whitespace, no trailing bits (what SASL asks of a client).
pub fn base64_decode(text: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_quote_or_literal() {
        let mut o = Vec::new();
        string(&mut o, b"a\"b");
        o.push(b' ');
        string(&mut o, b"line\r\nbreak");
        o.push(b' ');
        string(&mut o, "é".as_bytes());
        assert_eq!(o, b"\"a\\\"b\" {11}\r\nline\r\nbreak {2}\r\n\xc3\xa9".to_vec());
    }

    #[test]
    fn base64_roundtrip() {
        for s in [&b""[..], b"a", b"ab", b"abc", b"\0bob\0secret"] {
            assert_eq!(base64_decode(base64_encode(s).as_bytes()).unwrap(), s);
        }
        assert!(base64_decode(b"a=bc").is_none());
        assert!(base64_decode(b"abc").is_none());
        assert_eq!(internal_date(0, 0), "\"01-Jan-1970 00:00:00 +0000\"");
        assert_eq!(internal_date(1794042000, -330), "\"07-Nov-2026 03:30:00 -0530\"");
    }
}
