use super::*;

const MULTI: &[u8] = b"From: =?utf-8?q?J=C3=BCrgen?= <jurgen@example.test>\r\n\
To: bob@example.test, \"Ann\" <ann@example.test>\r\n\
Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\
Date: Fri, 27 Nov 2026 12:00:00 +0000\r\n\
Message-ID: <m1@example.test>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"XX\"\r\n\
\r\n\
preamble\r\n\
--XX\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
Hello\r\nWorld\r\n\
--XX\r\n\
Content-Type: application/octet-stream; name=\"a.bin\"\r\n\
Content-Transfer-Encoding: base64\r\n\
Content-Disposition: attachment; filename=\"a.bin\"\r\n\
\r\n\
AAEC\r\n\
--XX\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
Subject: inner\r\n\
From: x@example.test\r\n\
\r\n\
inner body\r\n\
--XX--\r\n";

fn sec(part: &[u32], text: Option<SectionPart>) -> Section {
    Section { part: part.to_vec(), text }
}

#[test]
fn sections() {
    let p = Parsed::new(MULTI);
    assert_eq!(p.section(&sec(&[1], None)).unwrap(), b"Hello\r\nWorld");
    assert_eq!(p.section(&sec(&[2], None)).unwrap(), b"AAEC");
    assert_eq!(p.section(&sec(&[2], Some(SectionPart::Mime))).unwrap().split(|&c| c == b'\n').count(), 5);
    assert_eq!(p.section(&sec(&[3], Some(SectionPart::Header))).unwrap(), b"Subject: inner\r\nFrom: x@example.test\r\n\r\n");
    assert_eq!(p.section(&sec(&[3], Some(SectionPart::Text))).unwrap(), b"inner body");
    assert_eq!(p.section(&sec(&[3, 1], None)).unwrap(), b"inner body");
    assert!(p.section(&sec(&[4], None)).is_none());
    assert!(p.section(&sec(&[], Some(SectionPart::Header))).unwrap().ends_with(b"\"XX\"\r\n\r\n"));
    assert_eq!(
        p.section(&sec(&[], Some(SectionPart::HeaderFields(vec!["SUBJECT".into(), "message-id".into()])))).unwrap(),
        b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nMessage-ID: <m1@example.test>\r\n\r\n"
    );
    assert!(p.section(&sec(&[], Some(SectionPart::Text))).unwrap().starts_with(b"preamble"));
}

#[test]
fn envelope_and_structure() {
    let p = Parsed::new(MULTI);
    let mut e = Vec::new();
    p.envelope(&mut e);
    let e = String::from_utf8(e).unwrap();
    assert!(e.starts_with("(\"Fri, 27 Nov 2026 12:00:00 +0000\" \"=?utf-8?q?Gr=C3=BC=C3=9Fe?=\" ((\"=?utf-8?b?SsO8cmdlbg==?=\" NIL \"jurgen\" \"example.test\"))"), "{e}");
    assert!(e.contains("((NIL NIL \"bob\" \"example.test\")(\"Ann\" NIL \"ann\" \"example.test\"))"), "{e}");
    assert!(e.ends_with("NIL NIL NIL \"<m1@example.test>\")"), "{e}");
    let mut s = Vec::new();
    p.body_structure(&mut s, false);
    let s = String::from_utf8(s).unwrap();
    assert!(s.starts_with("((\"text\" \"plain\" (\"charset\" \"utf-8\") NIL NIL \"7bit\" 12 1)"), "{s}");
    assert!(s.contains("(\"application\" \"octet-stream\" (\"name\" \"a.bin\") NIL NIL \"base64\" 4)"), "{s}");
    assert!(s.contains("(\"message\" \"rfc822\" NIL NIL NIL \"7bit\" 50 (NIL \"inner\""), "{s}");
    assert!(s.ends_with(" \"mixed\")"), "{s}");
    let mut x = Vec::new();
    p.body_structure(&mut x, true);
    let x = String::from_utf8(x).unwrap();
    assert!(x.contains("(\"attachment\" (\"filename\" \"a.bin\"))"), "{x}");
    assert!(x.ends_with("\"mixed\" (\"boundary\" \"XX\") NIL NIL NIL)"), "{x}");
}

#[test]
fn plain_and_broken_messages() {
    let p = Parsed::new(b"Subject: hi\r\n\r\nbody\r\n");
    assert_eq!(p.section(&sec(&[1], None)).unwrap(), b"body\r\n");
    assert_eq!(p.section(&sec(&[], Some(SectionPart::Text))).unwrap(), b"body\r\n");
    let mut s = Vec::new();
    p.body_structure(&mut s, false);
    assert_eq!(String::from_utf8(s).unwrap(), "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 6 1)");
    for raw in [&b""[..], b"\r\n", b"garbage", b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n"] {
        let p = Parsed::new(raw);
        let mut o = Vec::new();
        p.body_structure(&mut o, true);
        p.envelope(&mut o);
        let _ = p.section(&sec(&[1, 2, 3], None));
    }
}

/// A message/rfc822 part whose message is multipart: its TEXT runs to the end of the
/// enclosed message, epilogue included (RFC 3501 §6.4.5: TEXT is the body after the header).
#[test]
fn nested_multipart_text_keeps_epilogue() {
    let raw: &[u8] = b"From: outer@example.test\r\nMIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\n\
Subject: inner\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
before\r\n--b\r\n\r\nfirst\r\n--b--\r\nafter the parts\r\n";
    let p = Parsed::new(raw);
    let inner_text: &[u8] = b"before\r\n--b\r\n\r\nfirst\r\n--b--\r\nafter the parts\r\n";
    assert_eq!(p.section(&sec(&[1], Some(SectionPart::Text))).unwrap(), inner_text);
    assert_eq!(p.section(&sec(&[], Some(SectionPart::Text))).unwrap(), &raw[77..]);
    assert!(p.section(&sec(&[1], None)).unwrap().ends_with(b"after the parts\r\n"));
}

/// An obsolete source route goes into the address's second field, not into the mailbox name.
#[test]
fn envelope_source_route() {
    let p = Parsed::new(b"From: <@relay.example:kim@example.test>\r\nSubject: r\r\n\r\nx\r\n");
    let mut e = Vec::new();
    p.envelope(&mut e);
    let e = String::from_utf8(e).unwrap();
    assert!(e.contains("((NIL \"@relay.example\" \"kim\" \"example.test\"))"), "{e}");
    assert!(!e.contains("relay.example:"), "{e}");
}

#[test]
fn message_ids_and_references() {
    assert_eq!(msg_ids("<a@b> (c <x@y>) junk <c @ d>\r\n <no-at> <e@f"), ["a@b", "c@d"]);
    assert_eq!(msg_ids("<@b> <a@> <a@b@c>"), ["a@b@c"]);
    let m = b"Message-ID: bare@id <m@x>\r\nReferences: <r1@x>\r\n <r2@x> <r3@x>\r\nIn-Reply-To: <i@x>\r\n\r\n";
    let p = Parsed::new(m);
    assert_eq!(p.message_id().as_deref(), Some("m@x"));
    assert_eq!(p.references(100), ["r1@x", "r2@x", "r3@x"]);
    assert_eq!(p.references(2), ["r2@x", "r3@x"]);
    // References without a valid id: the first valid id of In-Reply-To.
    let p = Parsed::new(b"References: <broken>\r\nIn-Reply-To: <i1@x> <i2@x>\r\n\r\n");
    assert_eq!(p.references(100), ["i1@x"]);
    assert_eq!(p.message_id(), None);
    assert!(Parsed::new(b"Subject: x\r\n\r\n").references(100).is_empty());
}

#[test]
fn sent_time_takes_zones_of_a_day_or_more() {
    let at = |date: &str| Parsed::new(format!("Date: {date}\r\nSubject: x\r\n\r\nbody\r\n").into_bytes().leak()).sent_time();
    let utc = at("Mon, 2 Mar 2009 10:00:00 +0000");
    assert_eq!(utc, Some(1_235_988_000));
    // RFC 5322 §3.3 allows offsets up to ±99:59; a whole day ahead is 24 hours earlier in UTC.
    assert_eq!(at("Mon, 2 Mar 2009 10:00:00 +2400"), utc.map(|t| t - 86_400));
    assert_eq!(at("Mon, 2 Mar 2009 10:00:00 -3030"), utc.map(|t| t + 30 * 3600 + 30 * 60));
    assert_eq!(at("Mon, 2 Mar 2009 10:00:00 +0130 (CET)"), utc.map(|t| t - 5400));
    // Obsolete zone names still count, and out-of-range minutes leave no sent date.
    assert_eq!(at("Mon, 2 Mar 2009 10:00:00 EST"), utc.map(|t| t + 5 * 3600));
    assert_eq!(at("Mon, 2 Mar 2009 10:00:00 +0075"), None);
    // The zone is the word after the time; later words are not zones.
    assert_eq!(at("Mon, 2 Mar 2009 10:00:00 +0000 +0500"), utc);
    assert_eq!(at("Mon, 2 Mar 2009 10:00 +2400"), utc.map(|t| t - 86_400));
    // A leap second is one past :59.
    assert_eq!(at("Mon, 2 Mar 2009 09:59:60 +0000"), utc);
    assert_eq!(at("Mon, 2 Mar 2009 10:59:60 +0100"), utc);
}


#[test]
fn bare_word_is_a_mailbox_without_domain() {
    let p = Parsed::new(b"From: d\r\nTo: \"N\" <e>\r\nCc: a b\r\n\r\nx");
    let mut out = Vec::new();
    p.envelope(&mut out);
    let env = String::from_utf8(out).unwrap();
    assert!(env.contains(r#"((NIL NIL "d" "MISSING_DOMAIN"))"#), "{env}");
    assert!(env.contains(r#"(("N" NIL "e" "MISSING_DOMAIN"))"#), "{env}");
    assert!(env.contains(r#"(("a b" NIL "MISSING_MAILBOX" "MISSING_DOMAIN"))"#), "{env}");
}
