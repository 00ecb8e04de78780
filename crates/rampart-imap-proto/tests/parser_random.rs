//! A stable-toolchain stand-in for the cargo-fuzz target (fuzz/): seeded random mutations of
//! valid commands through the parser, the literal framing and the MIME layer. Deterministic,
//! so a failure reproduces; it must never panic.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rampart_imap_proto::{mime, parser};

const SEEDS: &[&[u8]] = &[
    b"a LOGIN bob \"pa ss\"",
    b"a UID FETCH 1:* (FLAGS BODY.PEEK[1.2.HEADER.FIELDS (From To)]<0.100>) (CHANGEDSINCE 5)",
    b"a SEARCH CHARSET UTF-8 OR FROM bob (SUBJECT \"x\" UNSEEN) NOT 1:3 SINCE 1-Jan-2020",
    b"a LIST (SUBSCRIBED) \"\" (INBOX \"W/*\") RETURN (CHILDREN STATUS (MESSAGES))",
    b"a APPEND INBOX (\\Seen) \"01-Jan-2020 10:00:00 +0000\" {5}\r\nhello",
    b"a STORE 1,3:5 +FLAGS.SILENT (\\Seen $Foo)",
    b"a SELECT INBOX (CONDSTORE)",
    b"a UID SORT RETURN (MIN ALL) (REVERSE DATE SUBJECT DISPLAYFROM) UTF-8 UNSEEN FROM bob",
    b"a UID THREAD REFERENCES UTF-8 OR SUBJECT x (NOT 2:4)",
    b"Message-ID: <a@b>\r\nReferences: <b@c> (x <y@z>)\r\n <c@d>\r\nIn-Reply-To: <d@e>\r\nSubject: Re: x\r\n\r\nb",
    b"From: \"N\" <a@b>, c@d\r\nTo: g: x@y;\r\nSubject: Re: [l] Fwd: [fwd: =?utf-8?q?caf=C3=A9?= (fwd)]\r\n\r\nb",
    b"a ID (\"name\" \"x\" \"v\" NIL)",
    b"a APPEND Drafts CATENATE (URL \"/Drafts;UIDVALIDITY=3/;UID=2/;SECTION=1.MIME\" TEXT {2}\r\nhi URL /INBOX/;UID=1)",
    b"a GETMETADATA (MAXSIZE 1024 DEPTH infinity) \"\" (/private/comment /shared/x)",
    b"a SETMETADATA INBOX (/private/a \"x\" /shared/b NIL /private/c ~{3}\r\na\0b)",
    b"a NOTIFY SET STATUS (selected (MessageNew (UID FLAGS) MessageExpunge)) (subtree (INBOX Work) (FlagChange)) (personal NONE)",
    b"a UID SEARCH RETURN (UPDATE PARTIAL -1:-5 COUNT) UNSEEN",
    b"imap://joe;AUTH=*@mail.example:143/a%20b/;UID=3/;SECTION=HEADER.FIELDS%20(FROM)/;PARTIAL=10.5",
    b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: message/rfc822\r\n\r\nSubject: a\r\n\r\nb\r\n--x--\r\n",
];

const TOKENS: &[&[u8]] = &[b"(", b")", b"[", b"]", b"{", b"}", b"\"", b"\\", b" ", b"*", b"%", b"{4294967296}\r\n", b"{3+}\r\n", b"\r\n", b"NIL", b"0", b":", b",", b"<", b">", b".", b"HEADER.FIELDS", b"NOT ", b"OR "];

fn mutate(rng: &mut StdRng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..rng.random_range(1..8) {
        let pos = if v.is_empty() { 0 } else { rng.random_range(0..=v.len()) };
        match rng.random_range(0..5) {
            0 if !v.is_empty() => {
                let end = (pos + rng.random_range(1..8)).min(v.len());
                v.drain(pos.min(v.len())..end);
            }
            1 => v.insert(pos, rng.random()),
            2 => {
                let t = TOKENS[rng.random_range(0..TOKENS.len())];
                v.splice(pos..pos, t.iter().copied());
            }
            3 if !v.is_empty() => {
                let i = rng.random_range(0..v.len());
                v[i] ^= 1 << rng.random_range(0..8);
            }
            _ => {
                let n = rng.random_range(1..40);
                v.splice(pos..pos, std::iter::repeat_n(b'(', n));
            }
        }
    }
    v
}

#[test]
fn random_mutations_never_panic() {
    let mut rng = StdRng::seed_from_u64(0x1A4D);
    for _ in 0..20_000 {
        let seed = SEEDS[rng.random_range(0..SEEDS.len())];
        let input = mutate(&mut rng, seed);
        let _ = parser::parse(&input);
        let _ = parser::tag_of(&input);
        let _ = parser::parse_section(&input);
        let _ = rampart_imap_proto::imapurl::ImapUrl::parse(&String::from_utf8_lossy(&input));
        for line in input.split(|&b| b == b'\n') {
            let _ = parser::literal_announcement(line);
        }
        let p = mime::Parsed::new(&input);
        let mut out = Vec::new();
        p.envelope(&mut out);
        p.body_structure(&mut out, true);
        // SORT's keys: base subject, first addresses, Date.
        let _ = rampart_imap_proto::subject::base_subject(p.subject().unwrap_or_default());
        let _ = rampart_imap_proto::subject::base_subject(&String::from_utf8_lossy(&input));
        for field in [mime::AddressField::From, mime::AddressField::To, mime::AddressField::Cc] {
            let _ = p.first_address(field);
        }
        let _ = p.sent_time();
        // THREAD's keys.
        let _ = p.message_id();
        let _ = p.references(100);
        let _ = mime::msg_ids(&String::from_utf8_lossy(&input));
        for part in [vec![1], vec![1, 1], vec![2, 1, 3]] {
            let _ = p.section(&parser::Section { part, text: Some(parser::SectionPart::Text) });
        }
    }
}

/// THREAD=REFERENCES over random small mailboxes whose messages refer to each other (loops,
/// self-references, duplicates, missing parents): every message appears exactly once in the
/// answer and the parentheses balance.
#[test]
fn random_threads_hold_every_message_once() {
    use rampart_imap_proto::thread::{Msg, id_key, ordered_subject, references};
    let mut rng = StdRng::seed_from_u64(5256);
    for _ in 0..2_000 {
        let n = rng.random_range(0..12u32);
        let msgs: Vec<Msg> = (1..=n)
            .map(|seq| Msg {
                seq,
                uid: seq,
                date: rng.random_range(0..4),
                subject: [b"", b"A".as_slice(), b"B"][rng.random_range(0..3)].to_vec(),
                reply: rng.random_bool(0.5),
                id: rng.random_bool(0.9).then(|| id_key(&rng.random_range(0..8).to_string())),
                refs: (0..rng.random_range(0..4)).map(|_| id_key(&rng.random_range(0..10).to_string())).collect(),
            })
            .collect();
        for threads in [references(&msgs), ordered_subject(&msgs)] {
            let mut s = String::new();
            threads.write(&msgs, false, &mut s);
            let mut depth = 0i32;
            for ch in s.chars() {
                depth += match ch {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                assert!(depth >= 0, "{s}");
            }
            assert_eq!(depth, 0, "{s}");
            assert!(!s.contains("()") && !s.contains("( ") && !s.contains(" )"), "{s}");
            let mut numbers: Vec<u32> = s.split(|c: char| !c.is_ascii_digit()).filter(|w| !w.is_empty()).map(|w| w.parse().unwrap()).collect();
            numbers.sort();
            assert_eq!(numbers, (1..=n).collect::<Vec<_>>(), "{s}");
        }
    }
}
