//! The PGP/MIME structure, what stays outside, and a round trip through rPGP's decryption
//! with the secret key of the fixture (made by GnuPG 2.2: `testdata/`).

use pgp::composed::{Deserializable, Message, SignedSecretKey};
use pgp::types::Password;

use super::*;
use crate::detect::{Protection, protection};

const ALICE: &[u8] = include_bytes!("../testdata/alice.pub.asc");
const ALICE_SECRET: &str = include_str!("../testdata/alice.sec.asc");

const MAIL: &[u8] = b"Received: from mx.example.net by example.org\r\n\
From: Bob <bob@example.net>\r\n\
To: alice@example.org\r\n\
Subject: the marker zebra42\r\n\x20continued\r\n\
Date: Mon, 30 Nov 2026 10:00:00 +0000\r\n\
Message-ID: <m1@example.net>\r\n\
X-Mailer: secret-client 1.0\r\n\
MIME-Version: 1.0\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
body with zebra42\r\n";

fn alice() -> UserKey {
    UserKey::parse(ALICE).unwrap()
}

/// The armored block of a PGP/MIME message, decrypted.
fn decrypt(stored: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(stored).unwrap();
    let start = text.find("-----BEGIN PGP MESSAGE-----").unwrap();
    let end = text.find("-----END PGP MESSAGE-----").unwrap() + "-----END PGP MESSAGE-----".len();
    let (secret, _) = SignedSecretKey::from_string(ALICE_SECRET).unwrap();
    let (msg, _) = Message::from_string(&text[start..end]).unwrap();
    let mut plain = msg.decrypt(&Password::empty(), &secret).unwrap();
    plain.as_data_vec().unwrap()
}

fn header_of(message: &[u8]) -> String {
    let text = String::from_utf8_lossy(message);
    text.split("\r\n\r\n").next().unwrap().to_string()
}

#[test]
fn the_structure_is_rfc_3156() {
    let stored = encrypt(MAIL, &alice(), false).unwrap();
    assert_eq!(protection(&stored), Some(Protection::PgpMime));
    let text = String::from_utf8(stored.clone()).unwrap();
    let boundary = text.split("boundary=\"").nth(1).unwrap().split('"').next().unwrap();
    let parts: Vec<&str> = text.split(&format!("--{boundary}")).collect();
    // Preamble, the control part, the data part, the closing "--".
    assert_eq!(parts.len(), 4);
    assert!(parts[1].starts_with("\r\nContent-Type: application/pgp-encrypted\r\n"));
    assert!(parts[1].contains("\r\n\r\nVersion: 1\r\n"));
    assert!(parts[2].starts_with("\r\nContent-Type: application/octet-stream"));
    assert!(parts[2].contains("-----BEGIN PGP MESSAGE-----\r\n"));
    assert!(parts[2].ends_with("-----END PGP MESSAGE-----\r\n"));
    assert_eq!(parts[3], "--\r\n");
    // Only CRLF line ends (SMTP and IMAP literals want them).
    assert!(!text.replace("\r\n", "").contains('\n'));
    assert!(!text.contains("body with"), "the body is inside only");
}

#[test]
fn envelope_and_trace_stay_outside_the_rest_goes_inside() {
    let stored = encrypt(MAIL, &alice(), false).unwrap();
    let outer = header_of(&stored);
    for kept in ["Received: from mx", "From: Bob", "To: alice", "Date: Mon", "Message-ID: <m1", "Subject: the marker zebra42\r\n continued"] {
        assert!(outer.contains(kept), "{kept} outside");
    }
    assert!(!outer.contains("X-Mailer"));
    let inner = String::from_utf8(decrypt(&stored)).unwrap();
    assert!(inner.starts_with("X-Mailer: secret-client 1.0\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"));
    assert!(inner.ends_with("\r\n\r\nbody with zebra42\r\n"));
    assert!(!inner.contains("Received:"));
}

#[test]
fn a_protected_subject_is_inside_only() {
    let stored = encrypt(MAIL, &alice(), true).unwrap();
    let outer = header_of(&stored);
    assert!(outer.contains("\r\nSubject: ...\r\n"));
    assert!(!String::from_utf8_lossy(&stored).contains("zebra42"));
    let inner = String::from_utf8(decrypt(&stored)).unwrap();
    let inner_head = header_of(inner.as_bytes());
    assert!(inner_head.contains("Subject: the marker zebra42\r\n continued"));
    assert!(inner_head.contains("From: Bob <bob@example.net>"));
    assert!(inner_head.contains("Content-Type: text/plain; charset=utf-8;\r\n\thp=\"cipher\"; protected-headers=\"v1\""));
    assert!(!inner_head.contains("Received:"), "the trace stays outside");
    assert!(inner.ends_with("\r\n\r\nbody with zebra42\r\n"));
}

#[test]
fn a_message_without_content_type_gets_the_default_inside() {
    let stored = encrypt(b"From: a@example.net\r\nSubject: hi\r\n\r\nplain\r\n", &alice(), true).unwrap();
    let inner = String::from_utf8(decrypt(&stored)).unwrap();
    assert!(inner.contains("Content-Type: text/plain; charset=us-ascii;\r\n\thp=\"cipher\""));
    assert!(inner.ends_with("\r\n\r\nplain\r\n"));
}

#[test]
fn a_header_only_message_is_wrapped_too() {
    let stored = encrypt(b"From: a@example.net\r\nSubject: hi\r\n", &alice(), false).unwrap();
    assert_eq!(protection(&stored), Some(Protection::PgpMime));
    let inner = String::from_utf8(decrypt(&stored)).unwrap();
    assert!(inner.starts_with("Content-Type: text/plain"));
}

#[test]
fn a_message_cut_after_a_field_still_has_a_header_that_ends() {
    let stored = encrypt(b"Subject: hi\r\nContent-Type: text/plain", &alice(), false).unwrap();
    assert!(String::from_utf8_lossy(&stored).contains("\r\nMIME-Version: 1.0\r\n"));
    assert!(String::from_utf8(decrypt(&stored)).unwrap().starts_with("Content-Type: text/plain\r\n\r\n"));
}
