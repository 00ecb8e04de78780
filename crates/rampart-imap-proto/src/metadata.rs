//! METADATA (RFC 5464) answers: which stored entries a GETMETADATA names, and the
//! `* METADATA` response that carries them. Pure: the session reads the entries from the
//! store and writes what this returns.

use crate::parser::Depth;
use crate::response;

/// What GETMETADATA answers: the entries in order (None: asked for, no value), and with
/// MAXSIZE, the size of the longest value left out (RFC 5464 §4.2.1 `LONGENTRIES`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Answer<'a> {
    pub entries: Vec<(&'a str, Option<&'a [u8]>)>,
    pub longest_omitted: Option<usize>,
}

/// The entries of `stored` (sorted by name, names lowercased) that `asked` names at `depth`,
/// in the order asked, each asked entry before its descendants. An asked entry without a
/// value is answered NIL at depth 0 and left out otherwise, as Dovecot does.
pub fn select<'a>(stored: &'a [(String, Vec<u8>)], asked: &'a [String], depth: Depth, max_size: Option<u64>) -> Answer<'a> {
    let mut answer = Answer::default();
    let take = |answer: &mut Answer<'a>, name: &'a str, value: &'a [u8]| {
        if max_size.is_some_and(|m| value.len() as u64 > m) {
            answer.longest_omitted = answer.longest_omitted.max(Some(value.len()));
        } else {
            answer.entries.push((name, Some(value)));
        }
    };
    for entry in asked {
        let at = stored.partition_point(|(n, _)| n.as_str() < entry.as_str());
        match stored.get(at) {
            Some((n, v)) if n == entry => take(&mut answer, n, v),
            _ if depth == Depth::Zero => answer.entries.push((entry, None)),
            _ => {}
        }
        if depth == Depth::Zero {
            continue;
        }
        // Descendants sort right after `entry/`, contiguously.
        let prefix = format!("{entry}/");
        let from = stored.partition_point(|(n, _)| n.as_str() < prefix.as_str());
        for (n, v) in stored[from..].iter().take_while(|(n, _)| n.starts_with(&prefix)) {
            if depth == Depth::One && n[prefix.len()..].contains('/') {
                continue;
            }
            take(&mut answer, n, v);
        }
    }
    answer
}

/// `* METADATA mailbox (entry value ...)` (RFC 5464 §4.4.1); values as literals, literal8 when
/// they hold NUL. Nothing when there is nothing to say.
pub fn write(out: &mut Vec<u8>, mailbox: &str, entries: &[(&str, Option<&[u8]>)]) {
    if entries.is_empty() {
        return;
    }
    out.extend_from_slice(b"* METADATA ");
    response::mailbox(out, mailbox);
    out.extend_from_slice(b" (");
    for (i, (name, value)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        response::mailbox(out, name);
        out.push(b' ');
        match value {
            None => out.extend_from_slice(b"NIL"),
            Some(v) => {
                if v.contains(&0) {
                    out.push(b'~');
                }
                response::literal(out, v);
            }
        }
    }
    out.extend_from_slice(b")\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored() -> Vec<(String, Vec<u8>)> {
        ["/private/a", "/private/a/b", "/private/a/b/c", "/private/ab", "/shared/x"]
            .iter()
            .enumerate()
            .map(|(i, n)| (n.to_string(), vec![b'v'; i + 1]))
            .collect()
    }

    fn names(a: &Answer<'_>) -> Vec<String> {
        a.entries.iter().map(|(n, v)| format!("{n}{}", if v.is_none() { "=NIL" } else { "" })).collect()
    }

    #[test]
    fn depth_and_maxsize_choose_entries_like_dovecot() {
        let s = stored();
        let asked = |e: &[&str]| e.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let a = asked(&["/private/a", "/private/none"]);
        assert_eq!(names(&select(&s, &a, Depth::Zero, None)), ["/private/a", "/private/none=NIL"]);
        assert_eq!(names(&select(&s, &a, Depth::One, None)), ["/private/a", "/private/a/b"]);
        assert_eq!(names(&select(&s, &a, Depth::Infinity, None)), ["/private/a", "/private/a/b", "/private/a/b/c"]);
        let p = asked(&["/private", "/shared"]);
        let all = select(&s, &p, Depth::Infinity, Some(2));
        assert_eq!(names(&all), ["/private/a", "/private/a/b"]);
        assert_eq!(all.longest_omitted, Some(5));
        assert_eq!(select(&s, &p, Depth::Zero, Some(0)).longest_omitted, None);
    }

    #[test]
    fn response_quotes_names_and_sends_values_as_literals() {
        let mut out = Vec::new();
        write(&mut out, "", &[("/private/a", Some(b"x")), ("/private/n", None), ("/private/z", Some(b"a\0b"))]);
        assert_eq!(out, b"* METADATA \"\" (/private/a {1}\r\nx /private/n NIL /private/z ~{3}\r\na\0b)\r\n");
        let mut none = Vec::new();
        write(&mut none, "INBOX", &[]);
        assert!(none.is_empty());
    }
}
