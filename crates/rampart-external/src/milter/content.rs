//! A stored message (CRLF line ends) as a filter receives it: each header field as (name,
//! value), then the body. The value is what follows the colon, folding included; the session
//! drops the one leading space. As in Postfix, a line that is not a header field (no colon, a
//! bad name) ends the header section: it and what follows are the body.

/// The header fields and the body of `message`.
pub fn split(message: &[u8]) -> (Vec<(&str, &[u8])>, &[u8]) {
    let mut fields: Vec<(&str, &[u8])> = Vec::new();
    let mut rest = message;
    loop {
        if let Some(body) = rest.strip_prefix(b"\r\n") {
            return (fields, body);
        }
        let Some((name, after_colon)) = field_name(rest) else { return (fields, rest) };
        // The field runs to the CRLF not followed by a space or tab (or to the end).
        let mut end = 0;
        let value_len = loop {
            match after_colon[end..].windows(2).position(|w| w == b"\r\n") {
                Some(i) if matches!(after_colon.get(end + i + 2), Some(b' ' | b'\t')) => end += i + 2,
                Some(i) => break end + i,
                None => break after_colon.len(),
            }
        };
        fields.push((name, &after_colon[..value_len]));
        rest = after_colon.get(value_len + 2..).unwrap_or(&[]);
    }
}

/// `Name:` at the start of `line`: printable ASCII without space or colon (RFC 5322 §2.2).
fn field_name(line: &[u8]) -> Option<(&str, &[u8])> {
    let colon = line.iter().position(|&b| b == b':' || !b.is_ascii_graphic())?;
    if colon == 0 || line[colon] != b':' {
        return None;
    }
    let name = std::str::from_utf8(&line[..colon]).ok()?;
    Some((name, &line[colon + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_folding_and_body_are_split() {
        let m = b"From: a@example.org\r\nSubject: hello\r\n\tworld\r\nX-Empty:\r\n\r\nbody\r\n";
        let (fields, body) = split(m);
        assert_eq!(
            fields,
            vec![("From", &b" a@example.org"[..]), ("Subject", b" hello\r\n\tworld"), ("X-Empty", b"")]
        );
        assert_eq!(body, b"body\r\n");
    }

    #[test]
    fn a_line_that_is_no_field_starts_the_body() {
        let (fields, body) = split(b"A: 1\r\nnot a header\r\nB: 2\r\n");
        assert_eq!(fields, vec![("A", &b" 1"[..])]);
        assert_eq!(body, b"not a header\r\nB: 2\r\n");
        let (fields, body) = split(b"A: 1\r\nB: 2");
        assert_eq!(fields.len(), 2);
        assert!(body.is_empty());
        assert_eq!(split(b"").0.len(), 0);
        assert_eq!(split(b" A: 1\r\n\r\n").1, b" A: 1\r\n\r\n");
    }
}
