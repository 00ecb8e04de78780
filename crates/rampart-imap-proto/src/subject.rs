//! The base subject of RFC 5256 §2.1, what SORT SUBJECT compares, and the i;ascii-casemap
//! collation (RFC 4790 §9.2) that SORT compares strings with.
//!
//! The input is the Subject already decoded (RFC 2047 encoded words to UTF-8, which
//! mail-parser does); step 1's whitespace rules and steps 2–6 are applied here. All the
//! patterns are ASCII and matched case-insensitively, so the text is cut only at ASCII
//! characters and stays valid UTF-8.

/// RFC 5256 §2.1 steps 1–7.
pub fn base_subject(subject: &str) -> String {
    base_subject_reply(subject).0
}

/// The base subject and whether the message is a reply or forward (what THREAD=REFERENCES
/// step 5 asks, RFC 5256 §2.2): whether the extraction removed a subj-refwd ("Re:", "Fwd:"),
/// a "(fwd)" trailer or a "[fwd: ...]" wrapper.
pub fn base_subject_reply(subject: &str) -> (String, bool) {
    let mut reply = false;
    // (1) Tabs and line breaks (continuations) become spaces; runs of spaces become one.
    let mut norm = String::with_capacity(subject.len());
    for ch in subject.chars() {
        let ch = if matches!(ch, '\t' | '\r' | '\n') { ' ' } else { ch };
        if ch == ' ' && norm.ends_with(' ') {
            continue;
        }
        norm.push(ch);
    }
    let mut s = norm.as_str();
    loop {
        // (2) subj-trailer = "(fwd)" / WSP, as often as they match.
        loop {
            if let Some(rest) = strip_suffix_ci(s, "(fwd)") {
                s = rest;
                reply = true;
            } else if let Some(rest) = s.strip_suffix(' ') {
                s = rest;
            } else {
                break;
            }
        }
        // (5) Repeat (3) and (4) until neither removes anything.
        loop {
            let before = s.len();
            // (3) subj-leader = (*subj-blob subj-refwd) / WSP
            loop {
                if let Some(rest) = s.strip_prefix(' ') {
                    s = rest;
                } else if let Some(rest) = leader(s) {
                    s = rest;
                    reply = true;
                } else {
                    break;
                }
            }
            // (4) A subj-blob, if what follows it is a non-empty subj-base.
            if let Some(rest) = blob(s)
                && !rest.is_empty()
            {
                s = rest;
            }
            if s.len() == before {
                break;
            }
        }
        // (6) subj-fwd-hdr "[fwd:" ... subj-fwd-trl "]": unwrap and start again at (2).
        if s.len() >= 6 && s.as_bytes()[..5].eq_ignore_ascii_case(b"[fwd:") && s.ends_with(']') {
            s = &s[5..s.len() - 1];
            reply = true;
            continue;
        }
        // (7)
        return (s.to_string(), reply);
    }
}

fn strip_prefix_ci<'a>(s: &'a str, p: &str) -> Option<&'a str> {
    let n = p.len();
    (s.len() >= n && s.as_bytes()[..n].eq_ignore_ascii_case(p.as_bytes())).then(|| &s[n..])
}

fn strip_suffix_ci<'a>(s: &'a str, p: &str) -> Option<&'a str> {
    let n = p.len();
    (s.len() >= n && s.as_bytes()[s.len() - n..].eq_ignore_ascii_case(p.as_bytes())).then(|| &s[..s.len() - n])
}

fn skip_wsp(s: &str) -> &str {
    s.trim_start_matches([' ', '\t'])
}

/// subj-blob = "[" *BLOBCHAR "]" *WSP; BLOBCHAR is any CHAR8 but "[" and "]". What follows.
fn blob(s: &str) -> Option<&str> {
    let rest = s.strip_prefix('[')?;
    let end = rest.find([']', '['])?;
    if rest.as_bytes()[end] != b']' {
        return None;
    }
    Some(skip_wsp(&rest[end + 1..]))
}

/// *subj-blob subj-refwd, where subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":".
/// What follows.
fn leader(s: &str) -> Option<&str> {
    let mut t = s;
    while let Some(rest) = blob(t) {
        t = rest;
    }
    let t = strip_prefix_ci(t, "re").or_else(|| strip_prefix_ci(t, "fwd")).or_else(|| strip_prefix_ci(t, "fw"))?;
    let t = skip_wsp(t);
    let t = blob(t).unwrap_or(t);
    t.strip_prefix(':')
}

/// i;ascii-casemap (RFC 4790 §9.2): octets compared after mapping a–z to A–Z. The key is
/// mapped once, when it is extracted, so a sort compares plain bytes.
pub fn ascii_casemap(s: &str) -> Vec<u8> {
    s.as_bytes().to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_subjects() {
        for (subject, base) in [
            ("hello", "hello"),
            ("Re: hello", "hello"),
            ("RE: re: Re:hello", "hello"),
            ("Fw: hello", "hello"),
            ("FWD: hello", "hello"),
            ("Re[2]: hello", "hello"),
            ("Re [2] : hello", "hello"),
            ("Re:   hello  ", "hello"),
            ("hello (fwd)", "hello"),
            ("hello (FWD) (fwd)  ", "hello"),
            ("[list] hello", "hello"),
            ("[list] Re: hello", "hello"),
            ("Re: [list] Re: [other] hello", "hello"),
            ("[a][b] Re: hello", "hello"),
            // A blob alone is the subject (§2.1 step 4 needs a non-empty subj-base after it).
            ("[list]", "[list]"),
            ("Re: [list]", "[list]"),
            ("[list] (fwd)", "[list]"),
            ("[fwd: hello]", "hello"),
            ("Re: [Fwd: Re: hello (fwd)]", "hello"),
            ("[fwd: [fwd: hello]]", "hello"),
            ("[fwd: ]", ""),
            ("hello\tworld\r\n  again", "hello world again"),
            ("Re:", ""),
            ("", ""),
            ("   ", ""),
            ("(fwd)", ""),
            // Not leaders: the prefix must end in a colon, the blob must be closed.
            ("Reply: hello", "Reply: hello"),
            ("Re hello", "Re hello"),
            ("Fwdx: hello", "Fwdx: hello"),
            ("[open hello", "[open hello"),
            ("hello [fwd: x]", "hello [fwd: x]"),
            ("hello(fwd)x", "hello(fwd)x"),
            ("Re: café", "café"),
            ("[liste] Ré: x", "Ré: x"),
        ] {
            assert_eq!(base_subject(subject), base, "{subject:?}");
        }
    }

    #[test]
    fn replies_and_forwards() {
        for (subject, reply) in [
            ("hello", false),
            ("Re: hello", true),
            ("[list] hello", false),
            ("[list] Re: hello", true),
            ("hello (fwd)", true),
            ("[fwd: hello]", true),
            ("Fw: hello", true),
            ("Reply: hello", false),
            ("  hello  ", false),
        ] {
            assert_eq!(base_subject_reply(subject).1, reply, "{subject:?}");
        }
    }

    #[test]
    fn casemap() {
        assert_eq!(ascii_casemap("aBc_é"), "ABC_é".as_bytes());
        // '_' sorts after the letters under i;ascii-casemap (0x5F > 'Z').
        assert!(ascii_casemap("zz") < ascii_casemap("_a"));
    }
}
