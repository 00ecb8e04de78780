//! Forged Authentication-Results headers. RFC 8601 §5: a border MTA MUST remove (or rename)
//! A-R headers that claim its own authserv-id before adding its own, or a sender could write
//! "dkim=pass" under our name and mail clients would believe it.

/// The header section's length (through the blank line), or the whole input when there is no body.
fn header_end(message: &[u8]) -> usize {
    if message.starts_with(b"\r\n") {
        return 0;
    }
    memchr::memmem::find(message, b"\r\n\r\n").map_or(message.len(), |i| i + 2)
}

/// The authserv-id of an A-R header value: the first token, up to `;` or whitespace, with
/// RFC 5322 comments left out (RFC 8601 §2.2).
fn authserv_id(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    let mut depth = 0usize;
    let mut id = String::new();
    for c in text.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth > 0 => {}
            ';' => break,
            c if c.is_whitespace() => {
                if !id.is_empty() {
                    break;
                }
            }
            c => id.push(c),
        }
    }
    id.trim_matches('"').to_ascii_lowercase()
}

/// `message` without the A-R headers that claim `ours` (compared without case), or None
/// when there are none: rewriting is rare, so the common case copies nothing.
pub fn strip_forged(message: &[u8], ours: &str) -> Option<(Vec<u8>, usize)> {
    let ours = ours.to_ascii_lowercase();
    strip(message, |name, value| name.eq_ignore_ascii_case(b"Authentication-Results") && authserv_id(value) == ours)
}

/// `message` without the header fields named one of `names` (without case), or None when it
/// has none: a gateway removes the senders' copies of the headers it writes itself, which its
/// downstream trusts (`X-Rampart-Trail`, `X-Spam-Status`).
pub fn strip_named(message: &[u8], names: &[&str]) -> Option<(Vec<u8>, usize)> {
    strip(message, |name, _| names.iter().any(|n| name.eq_ignore_ascii_case(n.as_bytes())))
}

/// `message` without the header fields `remove(name, value)` picks; None when it picks none.
fn strip(message: &[u8], remove: impl Fn(&[u8], &[u8]) -> bool) -> Option<(Vec<u8>, usize)> {
    let end = header_end(message);
    let head = &message[..end];
    // Split into fields: a field starts at a line that does not begin with WSP.
    let mut fields: Vec<(usize, usize)> = Vec::new();
    let mut pos = 0;
    while pos < head.len() {
        let line_end = memchr::memmem::find(&head[pos..], b"\r\n").map_or(head.len(), |i| pos + i + 2);
        let continuation = matches!(head[pos], b' ' | b'\t');
        match fields.last_mut() {
            Some(f) if continuation => f.1 = line_end,
            _ => fields.push((pos, line_end)),
        }
        pos = line_end;
    }
    let mut removed = 0;
    let mut out = Vec::with_capacity(message.len());
    for (start, stop) in fields {
        let field = &head[start..stop];
        let picked = field.iter().position(|&b| b == b':').is_some_and(|colon| remove(field[..colon].trim_ascii(), &field[colon + 1..]));
        if picked {
            removed += 1;
        } else {
            out.extend_from_slice(field);
        }
    }
    if removed == 0 {
        return None;
    }
    out.extend_from_slice(&message[end..]);
    Some((out, removed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_only_ours() {
        let m = b"Authentication-Results: MX.example.test;\r\n\tdkim=pass header.d=bank.test\r\n\
Authentication-Results: other.test; spf=pass\r\n\
Authentication-Results: (comment) mx.example.test; dmarc=pass\r\n\
Subject: x\r\n\r\nAuthentication-Results: mx.example.test; body line\r\n";
        let (out, n) = strip_forged(m, "mx.example.test").unwrap();
        assert_eq!(n, 2);
        assert_eq!(
            out,
            b"Authentication-Results: other.test; spf=pass\r\nSubject: x\r\n\r\nAuthentication-Results: mx.example.test; body line\r\n"
        );
        assert!(strip_forged(b"Subject: x\r\n\r\nbody\r\n", "mx.example.test").is_none());
        assert!(strip_forged(b"Authentication-Results: mx.example.test.evil; x\r\n\r\n", "mx.example.test").is_none());
    }

    #[test]
    fn removes_named_fields_folded_or_not() {
        let m = b"X-Spam-Status: No,\r\n\tscore=-5\r\nSubject: x\r\nx-rampart-trail: accept\r\n\r\nX-Spam-Status: body\r\n";
        let (out, n) = strip_named(m, &["X-Rampart-Trail", "X-Spam-Status"]).unwrap();
        assert_eq!((out.as_slice(), n), (&b"Subject: x\r\n\r\nX-Spam-Status: body\r\n"[..], 2));
        assert!(strip_named(b"Subject: x\r\n\r\n", &["X-Spam-Status"]).is_none());
        assert!(strip_named(b"X-Spam-Statusx: y\r\n\r\n", &["X-Spam-Status"]).is_none());
    }

    #[test]
    fn authserv_ids() {
        assert_eq!(authserv_id(b" mx.example.test; none"), "mx.example.test");
        assert_eq!(authserv_id(b" mx.example.test 1; spf=pass"), "mx.example.test");
        assert_eq!(authserv_id(b"\r\n\t(x) mx.example.test;"), "mx.example.test");
    }
}
