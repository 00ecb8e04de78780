use super::*;

fn kind(s: &str) -> Kind {
    parse(s.as_bytes()).unwrap_or_else(|e| panic!("{s}: {e}")).kind
}

#[test]
fn simple_commands() {
    assert_eq!(parse(b"a1 NOOP").unwrap(), Command { tag: "a1".into(), kind: Kind::Noop });
    assert_eq!(kind("x capability"), Kind::Capability);
    assert!(matches!(parse(b"a1 NOOP extra"), Err(ParseError::Syntax(_))));
    assert!(matches!(parse(b"a1 FOO"), Err(ParseError::UnknownCommand)));
    assert!(parse(b"+ NOOP").is_err());
    assert_eq!(kind("c compress deflate"), Kind::Compress("DEFLATE".into()));
    assert!(parse(b"c COMPRESS").is_err());
    assert_eq!(kind("u unauthenticate"), Kind::Unauthenticate);
    // RFC 3516 BINARY: part numbers only, with a range; APPEND takes a literal8.
    let Kind::Fetch { attrs, .. } = kind("f FETCH 1 (BINARY.PEEK[1.2]<0.10> BINARY[] BINARY.SIZE[3])") else { panic!() };
    assert_eq!(
        attrs,
        vec![
            FetchAttr::Binary { peek: true, part: vec![1, 2], partial: Some((0, 10)) },
            FetchAttr::Binary { peek: false, part: vec![], partial: None },
            FetchAttr::BinarySize(vec![3]),
        ]
    );
    assert!(parse(b"f FETCH 1 BINARY[1.TEXT]").is_err());
    assert!(matches!(kind("a APPEND INBOX ~{2}\r\n\0x"), Kind::Append { ref messages, .. } if messages[0].message == b"\0x"));
    assert!(parse(b"").is_err());
}

#[test]
fn utf8_append_and_names() {
    // RFC 6855 §4: APPEND ... UTF8 (literal8), alone and in MULTIAPPEND beside a plain one.
    let Kind::Append { messages, .. } = kind("a APPEND INBOX (\\Seen) UTF8 (~{3+}\r\nS\u{e9})") else { panic!() };
    assert!(messages[0].utf8 && messages[0].message == "S\u{e9}".as_bytes() && messages[0].flags == ["\\Seen"]);
    let Kind::Append { messages, .. } = kind("a APPEND INBOX UTF8 (~{1}\r\nx) {1}\r\ny") else { panic!() };
    assert!(messages[0].utf8 && !messages[1].utf8 && messages[1].message == b"y");
    assert!(parse(b"a APPEND INBOX UTF8 ({1}\r\nx)").is_err(), "UTF8 takes a literal8");
    assert!(parse(b"a APPEND INBOX UTF8 (~{1}\r\nx").is_err());
    // ... and as a CATENATE part, text like TEXT's.
    let Kind::Append { messages, .. } = kind("a APPEND INBOX CATENATE (UTF8 (~{2}\r\nab) URL \"/INBOX/;UID=1\")") else { panic!() };
    let parts = messages[0].catenate.as_ref().unwrap();
    assert!(messages[0].utf8 && matches!(&parts[0], CatPart::Text { text, .. } if text == b"ab") && parts.len() == 2);
    let Kind::Append { messages, .. } = kind("a APPEND INBOX CATENATE (TEXT {2}\r\nab)") else { panic!() };
    assert!(!messages[0].utf8);
    // RFC 6855 §3: UTF-8 in quoted strings and mailbox names.
    assert_eq!(kind("a SELECT \"Caf\u{e9}\""), Kind::Select { mailbox: "Caf\u{e9}".into(), condstore: false, read_only: false, qresync: None });
}

#[test]
fn login_with_literals() {
    assert_eq!(
        kind("a LOGIN {3}\r\nbob \"pa ss\""),
        Kind::Login { user: b"bob".to_vec(), password: b"pa ss".to_vec() }
    );
    assert_eq!(
        kind("a AUTHENTICATE plain AGJvYgB4"),
        Kind::Authenticate { mechanism: "PLAIN".into(), initial: Some(b"AGJvYgB4".to_vec()) }
    );
}

#[test]
fn literal_announcements() {
    assert_eq!(literal_announcement(b"a APPEND INBOX {1073741824}"), Some((1 << 30, true)));
    assert_eq!(literal_announcement(b"a LOGIN {5+}"), Some((5, false)));
    assert_eq!(literal_announcement(b"a LOGIN \"{5}\""), None);
    assert_eq!(literal_announcement(b"a LOGIN {}"), None);
    assert_eq!(literal_announcement(b"a {123456789012345678901234}"), None);
}

#[test]
fn append_detection() {
    assert!(is_append(b"a APPEND INBOX {5}"));
    assert!(is_append(b"a append INBOX {5}"));
    assert!(!is_append(b"a LOGIN {5}"));
    assert!(!is_append(b"APPEND"));
}

#[test]
fn fetch_and_store() {
    let k = kind("a UID FETCH 1:* (FLAGS BODY.PEEK[1.2.HEADER.FIELDS (From To)]<0.100> BODY[] RFC822.SIZE) (CHANGEDSINCE 5)");
    let Kind::Fetch { uid, attrs, changed_since, .. } = k else { panic!() };
    assert!(uid);
    assert_eq!(changed_since, Some(5));
    assert_eq!(attrs.len(), 4);
    let FetchAttr::Section { peek, section, partial } = &attrs[1] else { panic!() };
    assert!(*peek);
    assert_eq!(section.spec(), "1.2.HEADER.FIELDS (FROM TO)");
    assert_eq!(*partial, Some((0, 100)));
    assert!(matches!(kind("a FETCH 1 ALL"), Kind::Fetch { ref attrs, .. } if attrs.len() == 4));
    assert!(parse(b"a FETCH 1 BODY[MIME]").is_err());
    let k = kind("a STORE 1,3:5 +FLAGS.SILENT (\\Seen $Foo)");
    assert!(matches!(k, Kind::Store { op: StoreOp::Add, silent: true, ref flags, .. } if flags.len() == 2));
    let k = kind("a UID STORE 1 (UNCHANGEDSINCE 7) FLAGS \\Deleted");
    assert!(matches!(k, Kind::Store { op: StoreOp::Replace, silent: false, unchanged_since: Some(7), .. }));
}

#[test]
fn search() {
    let k = kind("a SEARCH CHARSET UTF-8 OR FROM bob (SUBJECT \"hi there\" UNSEEN) NOT 1:3 SINCE 1-Jan-2020");
    let Kind::Search { charset, key: SearchKey::And(keys), .. } = k else { panic!() };
    assert_eq!(charset.as_deref(), Some("UTF-8"));
    assert_eq!(keys.len(), 3);
    let deep = format!("a SEARCH {}ALL{}", "(".repeat(100), ")".repeat(100));
    assert_eq!(parse(deep.as_bytes()), Err(ParseError::TooDeep));
    let deep = format!("a SEARCH {}ALL", "NOT ".repeat(100));
    assert_eq!(parse(deep.as_bytes()), Err(ParseError::TooDeep));
}

#[test]
fn list_extended() {
    let Kind::List(a) = kind("a LIST (SUBSCRIBED) \"\" (INBOX \"Work/*\") RETURN (CHILDREN STATUS (MESSAGES UNSEEN))") else {
        panic!()
    };
    assert!(a.select_subscribed && a.return_children && a.extended);
    assert_eq!(a.patterns, vec!["INBOX", "Work/*"]);
    assert_eq!(a.return_status, Some(vec![StatusItem::Messages, StatusItem::Unseen]));
    let Kind::List(a) = kind("a LIST \"\" %") else { panic!() };
    assert!(!a.extended);
}

#[test]
fn append_and_mailboxes() {
    let k = kind("a APPEND inbox (\\Seen) \"01-Jan-2020 10:00:00 +0000\" {5}\r\nhello");
    let hello = AppendMessage { flags: vec!["\\Seen".into()], date: Some((1577872800, 0)), message: b"hello".to_vec(), literal_at: 52, catenate: None, utf8: false };
    assert_eq!(k, Kind::Append { mailbox: "INBOX".into(), messages: vec![hello.clone()] });
    // RFC 3502 MULTIAPPEND: each message with its own optional flags and date.
    let k = kind("a APPEND inbox (\\Seen) \"01-Jan-2020 10:00:00 +0000\" {5}\r\nhello {2+}\r\nhi (\\Flagged) {0}\r\n");
    let Kind::Append { messages, .. } = k else { panic!() };
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[0], hello);
    assert_eq!((messages[1].message.as_slice(), messages[1].literal_at), (&b"hi"[..], 63));
    assert_eq!((messages[2].flags.as_slice(), messages[2].message.len()), (&["\\Flagged".to_string()][..], 0));
    assert!(parse(b"a APPEND inbox").is_err());
    // RFC 4469 CATENATE, alone and inside MULTIAPPEND.
    let k = kind("a APPEND Drafts (\\Seen) CATENATE (URL \"/Drafts;UIDVALIDITY=3/;UID=2/;section=HEADER\" TEXT {4}\r\n\r\nhi URL /INBOX/;UID=1) {1}\r\nx");
    let Kind::Append { messages, .. } = k else { panic!() };
    assert_eq!(messages.len(), 2);
    let parts = messages[0].catenate.as_ref().unwrap();
    assert_eq!(parts[0], CatPart::Url("/Drafts;UIDVALIDITY=3/;UID=2/;section=HEADER".into()));
    assert_eq!(parts[1], CatPart::Text { text: b"\r\nhi".to_vec(), literal_at: 90 });
    assert_eq!(parts[2], CatPart::Url("/INBOX/;UID=1".into()));
    assert_eq!((messages[1].message.as_slice(), messages[1].catenate.is_none()), (&b"x"[..], true));
    assert!(parse(b"a APPEND inbox CATENATE ()").is_err());
    assert!(parse(b"a APPEND inbox CATENATE (FOO x)").is_err());
    assert!(parse(b"a APPEND inbox CATENATE (TEXT x)").is_err());
    let many = format!("a APPEND inbox CATENATE ({})", vec!["URL x"; 101].join(" "));
    assert_eq!(parse(many.as_bytes()), Err(ParseError::TooBig));
    assert!(parse(b"a APPEND inbox {2}\r\nhi ").is_err());
    assert!(matches!(kind("a CREATE Foo (USE (\\Archive))"), Kind::Create { ref special_use, .. } if special_use == &["\\Archive"]));
    assert!(matches!(kind("a ID (\"name\" \"x\" \"v\" NIL)"), Kind::Id(ref p) if p.len() == 2));
    assert!(matches!(kind("a SELECT INBOX (CONDSTORE)"), Kind::Select { condstore: true, .. }));
}

#[test]
fn sort() {
    let k = kind("a SORT (REVERSE DATE subject REVERSE displayfrom) UTF-8 UNSEEN FROM bob");
    let Kind::Sort { uid, criteria, charset, key: SearchKey::And(keys), ret } = k else { panic!() };
    assert!(!uid);
    assert_eq!(charset, "UTF-8");
    assert_eq!(ret, None);
    assert_eq!(
        criteria,
        vec![
            SortCriterion { reverse: true, key: SortKey::Date },
            SortCriterion { reverse: false, key: SortKey::Subject },
            SortCriterion { reverse: true, key: SortKey::DisplayFrom },
        ]
    );
    assert_eq!(keys, vec![SearchKey::NoFlag("\\Seen".into()), SearchKey::Header("FROM".into(), "bob".into())]);
    let k = kind("a UID SORT (ARRIVAL CC FROM SIZE TO DISPLAYTO) \"US-ASCII\" ALL");
    let Kind::Sort { uid: true, criteria, charset, key: SearchKey::All, ret: None } = k else { panic!() };
    assert_eq!(criteria.len(), 6);
    assert_eq!(charset, "US-ASCII");
    // RFC 5267 §3: SORT RETURN (...) before the criteria.
    let k = kind("a UID SORT RETURN (MIN max COUNT ALL) (SUBJECT) UTF-8 1:*");
    assert!(matches!(k, Kind::Sort { uid: true, ret: Some(ref r), .. } if r == &["MIN", "MAX", "COUNT", "ALL"]));
    assert!(matches!(kind("a SORT RETURN () (SIZE) UTF-8 ALL"), Kind::Sort { ret: Some(ref r), .. } if r.is_empty()));
    // RFC 4466 §2.6.1: unknown return options are refused; a repeated one counts once.
    // SAVE is known (RFC 5182 SEARCHRES), for SORT too.
    assert!(matches!(kind("a SORT RETURN (SAVE) (SIZE) UTF-8 ALL"), Kind::Sort { ret: Some(ref r), .. } if r == &["SAVE"]));
    assert!(parse(b"a SEARCH RETURN (SAVE) UID $").is_ok());
    // PARTIAL is known since RFC 9394 support (partial_return_option_and_fetch_modifier).
    assert!(parse(b"a SEARCH RETURN (RELEVANCY) ALL").is_err());
    assert!(matches!(kind("a SEARCH RETURN (MIN min) ALL"), Kind::Search { ret: Some(ref r), .. } if r == &["MIN"]));
    // The charset is mandatory; so are the parentheses, a key after REVERSE and a search key.
    for bad in [
        "a SORT (DATE) ALL",
        "a SORT DATE UTF-8 ALL",
        "a SORT () UTF-8 ALL",
        "a SORT (REVERSE) UTF-8 ALL",
        "a SORT (DATE BOGUS) UTF-8 ALL",
        "a SORT (DATE) UTF-8",
        "a SORT (DATE)UTF-8 ALL",
        "a SORT (DATE) UTF-8 ALL extra(",
        "a UID SORT",
    ] {
        assert!(parse(bad.as_bytes()).is_err(), "{bad}");
    }
    assert_eq!(kind("a SORT (SIZE) UTF-8 ALL").name(), "SORT");
}

#[test]
fn thread() {
    let k = kind("a THREAD REFERENCES UTF-8 UNSEEN FROM bob");
    let Kind::Thread { uid: false, algorithm: ThreadAlgorithm::References, charset, key: SearchKey::And(keys) } = k else { panic!() };
    assert_eq!(charset, "UTF-8");
    assert_eq!(keys, vec![SearchKey::NoFlag("\\Seen".into()), SearchKey::Header("FROM".into(), "bob".into())]);
    let k = kind("a uid thread orderedsubject \"us-ascii\" ALL");
    assert!(matches!(k, Kind::Thread { uid: true, algorithm: ThreadAlgorithm::OrderedSubject, ref charset, key: SearchKey::All } if charset == "us-ascii"));
    // The charset is mandatory, so is a search key; unknown algorithms are refused.
    for bad in [
        "a THREAD REFERENCES ALL",
        "a THREAD REFERENCES UTF-8",
        "a THREAD (REFERENCES) UTF-8 ALL",
        "a THREAD REFS UTF-8 ALL",
        "a THREAD",
        "a THREAD REFERENCES UTF-8 ALL extra(",
        "a UID THREAD",
        "a THREAD RETURN (ALL) REFERENCES UTF-8 ALL",
    ] {
        assert!(parse(bad.as_bytes()).is_err(), "{bad}");
    }
    assert_eq!(kind("a THREAD REFERENCES UTF-8 ALL").name(), "THREAD");
}

#[test]
fn metadata_commands() {
    // RFC 5464 §4.2–4.3.
    let k = kind("a GETMETADATA (MAXSIZE 1024 DEPTH infinity) \"\" (/Private/Comment /shared/x)");
    assert_eq!(
        k,
        Kind::GetMetadata { mailbox: "".into(), entries: vec!["/private/comment".into(), "/shared/x".into()], depth: Depth::Infinity, max_size: Some(1024) }
    );
    assert!(matches!(kind("a GETMETADATA inbox /private"), Kind::GetMetadata { ref mailbox, depth: Depth::Zero, max_size: None, .. } if mailbox == "INBOX"));
    assert!(matches!(kind("a GETMETADATA (DEPTH 1) INBOX ()"), Kind::GetMetadata { ref entries, depth: Depth::One, .. } if entries.is_empty()));
    let k = kind("a SETMETADATA INBOX (/private/a \"x\" /shared/b NIL /private/c ~{3}\r\na\0b /private/d {2}\r\nhi)");
    let Kind::SetMetadata { entries, .. } = k else { panic!() };
    assert_eq!(entries[0], ("/private/a".into(), Some(b"x".to_vec())));
    assert_eq!(entries[1], ("/shared/b".into(), None));
    assert_eq!(entries[2].1.as_deref(), Some(&b"a\0b"[..]));
    assert_eq!(entries[3].1.as_deref(), Some(&b"hi"[..]));
    assert!(matches!(kind("a SETMETADATA INBOX ()"), Kind::SetMetadata { ref entries, .. } if entries.is_empty()));
    for bad in [
        "a GETMETADATA INBOX foo",
        "a GETMETADATA (DEPTH 2) INBOX /private",
        "a GETMETADATA (FOO 1) INBOX /private",
        "a GETMETADATA INBOX /private/",
        "a SETMETADATA INBOX (/private/a* \"x\")",
        "a SETMETADATA INBOX (/private/%a \"x\")",
        "a SETMETADATA INBOX (/private//a \"x\")",
        "a SETMETADATA INBOX (/other/a \"x\")",
        "a SETMETADATA INBOX (/private/a)",
        "a SETMETADATA INBOX /private/a \"x\"",
    ] {
        assert!(parse(bad.as_bytes()).is_err(), "{bad}");
    }
    assert_eq!(entry_name(b"/shared"), Ok("/shared".into()));
    assert!(entry_name(b"/private/a\x01").is_err());
}

#[test]
fn rev2_status_deleted_and_mailbox_names() {
    // RFC 9051 §6.3.11: STATUS DELETED.
    assert!(matches!(kind("a STATUS INBOX (MESSAGES DELETED)"), Kind::Status { ref items, .. } if items == &[StatusItem::Messages, StatusItem::Deleted]));
    // Every name a command carries, so a rev2 session can turn UTF-8 into the stored form.
    let mut k = kind("a RENAME \"Entwürfe\" Drafts");
    assert_eq!(k.mailbox_names_mut().into_iter().map(|n| n.clone()).collect::<Vec<_>>(), ["Entwürfe", "Drafts"]);
    let mut k2 = kind("a LIST \"\" (INBOX \"W/*\")");
    assert_eq!(k2.mailbox_names_mut().len(), 3);
    assert!(kind("a NOOP").mailbox_names_mut().is_empty());
}

#[test]
fn partial_return_option_and_fetch_modifier() {
    // RFC 9394 §3.1 / RFC 5267 §4.4, and §4's FETCH modifier.
    let Kind::Search { ret, .. } = kind("a UID SEARCH RETURN (COUNT PARTIAL -1:-50 SAVE) ALL") else { panic!() };
    assert_eq!(ret.unwrap(), ["COUNT", "PARTIAL -1:-50", "SAVE"]);
    let Kind::Sort { ret, .. } = kind("a SORT RETURN (PARTIAL 10:1) (DATE) UTF-8 ALL") else { panic!() };
    assert_eq!(ret.unwrap(), ["PARTIAL 1:10"]);
    let Kind::Fetch { partial, .. } = kind("a UID FETCH 1:* (FLAGS) (PARTIAL -1:-30)") else { panic!() };
    assert_eq!(partial, Some(PartialRange { first: 1, last: 30, from_end: true }));
    for bad in ["a SEARCH RETURN (PARTIAL) ALL", "a SEARCH RETURN (PARTIAL 0:5) ALL", "a SEARCH RETURN (PARTIAL 1:5 PARTIAL 6:7) ALL", "a FETCH 1 FLAGS (PARTIAL 1:-2)"] {
        assert!(parse(bad.as_bytes()).is_err(), "{bad}");
    }
}

#[test]
fn search_contexts() {
    // RFC 5267 §4: UPDATE and CONTEXT on SEARCH, CANCELUPDATE with quoted tags.
    let Kind::Search { ret, .. } = kind("a SEARCH RETURN (UPDATE CONTEXT COUNT) UNSEEN") else { panic!() };
    assert_eq!(ret.unwrap(), ["UPDATE", "CONTEXT", "COUNT"]);
    assert_eq!(kind("a CANCELUPDATE \"u1\" \"u 2\""), Kind::CancelUpdate(vec!["u1".into(), "u 2".into()]));
    assert!(parse(b"a CANCELUPDATE").is_err());
    // CONTEXT=SORT: UPDATE on SORT too.
    let Kind::Sort { ret, .. } = kind("a SORT RETURN (UPDATE COUNT) (DATE) UTF-8 ALL") else { panic!() };
    assert_eq!(ret.unwrap(), ["UPDATE", "COUNT"]);
}

#[test]
fn notify_command() {
    // RFC 5465 §3.
    let Kind::Notify { status, groups } =
        kind("a NOTIFY SET STATUS (selected (MessageNew (UID FLAGS) MessageExpunge)) (subtree (INBOX Work) (MessageNew MessageExpunge FlagChange)) (personal NONE)")
    else {
        panic!()
    };
    let groups = groups.unwrap();
    assert!(status);
    assert_eq!(groups[0].filter, NotifyFilter::Selected);
    assert_eq!(groups[0].events, vec![NotifyEvent::MessageNew(vec![FetchAttr::Uid, FetchAttr::Flags]), NotifyEvent::MessageExpunge]);
    assert_eq!(groups[1].filter, NotifyFilter::Subtree(vec!["INBOX".into(), "Work".into()]));
    assert!(groups[2].events.is_empty());
    assert_eq!(kind("a NOTIFY NONE"), Kind::Notify { status: false, groups: None });
    let Kind::Notify { groups, .. } = kind("a NOTIFY SET (mailboxes Work (AnnotationChange))") else { panic!() };
    assert_eq!(groups.unwrap()[0].events, vec![NotifyEvent::Unsupported("AnnotationChange".into())]);
    let Kind::Notify { groups, .. } = kind("a NOTIFY SET (inboxes (MailboxMetadataChange ServerMetadataChange))") else { panic!() };
    assert_eq!(groups.unwrap()[0].events, vec![NotifyEvent::MailboxMetadataChange, NotifyEvent::ServerMetadataChange]);
    for bad in ["a NOTIFY", "a NOTIFY SET", "a NOTIFY SET STATUS", "a NOTIFY SET (nowhere (MessageNew))", "a NOTIFY SET (personal ())"] {
        assert!(parse(bad.as_bytes()).is_err(), "{bad}");
    }
}
