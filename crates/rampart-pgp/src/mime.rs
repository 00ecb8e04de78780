//! Delivered mail wrapped as PGP/MIME (RFC 3156 §4) encrypted to a user's key.
//!
//! The outer header keeps what IMAP's ENVELOPE, threading and the delivery trace need
//! ([`OUTER`], [`TRACE`]); every other field (Content-*, X-Mailer, List-*...) goes inside
//! with the body. With `protect_subject` (RFC 9788 header protection, the "protected headers"
//! of draft-autocrypt), the inner part carries a copy of every non-trace field, Subject
//! included, its Content-Type marked `hp="cipher"` (and the older `protected-headers="v1"`),
//! and the outer Subject becomes `...` (RFC 9788 §4.3's obscured value).

use pgp::composed::{ArmorOptions, MessageBuilder};
use pgp::crypto::sym::SymmetricKeyAlgorithm;
use rand::Rng;
use rand::distributions::Alphanumeric;

use crate::key::UserKey;

/// Header fields kept outside: what ENVELOPE (RFC 9051 §7.5.2), threading and replies need.
pub const OUTER: &[&str] = &["date", "from", "sender", "reply-to", "to", "cc", "bcc", "message-id", "in-reply-to", "references", "subject"];

/// The delivery trace, kept outside and never copied inside: it was added by the servers on
/// the way, not written by the sender.
pub const TRACE: &[&str] = &[
    "return-path",
    "received",
    "authentication-results",
    "arc-seal",
    "arc-message-signature",
    "arc-authentication-results",
    "x-spam-status",
];

/// RFC 9788 §4.3: the value an obscured Subject is replaced with.
const OBSCURED_SUBJECT: &str = "...";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncryptError {
    #[error("the key has no encryption subkey that is not revoked")]
    NoSubkey,
    #[error("OpenPGP encryption failed: {0}")]
    Pgp(String),
}

/// `message` (header and body, as received) as a PGP/MIME message encrypted to `key`.
pub fn encrypt(message: &[u8], key: &UserKey, protect_subject: bool) -> Result<Vec<u8>, EncryptError> {
    let (fields, body) = split(message);
    let mut outer = Vec::new();
    let mut inner = Vec::new();
    let mut inner_has_type = false;
    for field in &fields {
        let name = field.name.to_ascii_lowercase();
        let is_outer = OUTER.contains(&name.as_str());
        let is_trace = TRACE.contains(&name.as_str());
        if is_outer || is_trace {
            if name == "subject" && protect_subject {
                outer.extend_from_slice(format!("Subject: {OBSCURED_SUBJECT}\r\n").as_bytes());
            } else {
                push_field(&mut outer, field.raw);
            }
        }
        if is_trace || (is_outer && !protect_subject) {
            continue;
        }
        if name == "content-type" {
            inner_has_type = true;
            inner.extend_from_slice(&content_type(field.raw, protect_subject));
        } else {
            push_field(&mut inner, field.raw);
        }
    }
    if !inner_has_type {
        // RFC 2045 §5.2's default, stated so the protected-headers mark has a place.
        inner.extend_from_slice(&content_type(b"Content-Type: text/plain; charset=us-ascii\r\n", protect_subject));
    }
    inner.extend_from_slice(b"\r\n");
    inner.extend_from_slice(body);

    let armored = seal(inner, key)?;
    let boundary = boundary();
    outer.extend_from_slice(b"MIME-Version: 1.0\r\n");
    outer.extend_from_slice(
        format!("Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\";\r\n\tboundary=\"{boundary}\"\r\n\r\n").as_bytes(),
    );
    outer.extend_from_slice(b"This is an OpenPGP/MIME encrypted message (RFC 3156).\r\n");
    // RFC 3156 §4: the control part, then the encrypted data as application/octet-stream.
    outer.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Type: application/pgp-encrypted\r\nContent-Description: PGP/MIME version identification\r\n\r\nVersion: 1\r\n\r\n\
             --{boundary}\r\nContent-Type: application/octet-stream; name=\"encrypted.asc\"\r\nContent-Description: OpenPGP encrypted message\r\n\
             Content-Disposition: inline; filename=\"encrypted.asc\"\r\n\r\n"
        )
        .as_bytes(),
    );
    outer.extend_from_slice(&armored);
    outer.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Ok(outer)
}

/// The inner entity encrypted (SEIPD v1 with AES-256: what every OpenPGP implementation in
/// use, GnuPG 2.2 included, reads) and armored with CRLF line ends.
fn seal(entity: Vec<u8>, key: &UserKey) -> Result<Vec<u8>, EncryptError> {
    let subkey = key.encryption_subkey(None).ok_or(EncryptError::NoSubkey)?;
    let mut rng = rand::thread_rng();
    let mut builder = MessageBuilder::from_bytes("", entity).seipd_v1(&mut rng, SymmetricKeyAlgorithm::AES256);
    builder.encrypt_to_key(&mut rng, subkey).map_err(|e| EncryptError::Pgp(e.to_string()))?;
    let armored = builder.to_armored_string(&mut rng, ArmorOptions::default()).map_err(|e| EncryptError::Pgp(e.to_string()))?;
    let mut out = Vec::with_capacity(armored.len() + armored.len() / 64);
    for line in armored.lines() {
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // The closing CRLF belongs to the boundary line that follows.
    out.truncate(out.len().saturating_sub(2));
    Ok(out)
}

/// Appends a field, ending it with CRLF if the message ended without one.
fn push_field(out: &mut Vec<u8>, raw: &[u8]) {
    out.extend_from_slice(raw);
    if !raw.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
}

/// A Content-Type field, marked as carrying protected headers when `protect`.
fn content_type(raw: &[u8], protect: bool) -> Vec<u8> {
    if !protect {
        let mut out = Vec::with_capacity(raw.len() + 2);
        push_field(&mut out, raw);
        return out;
    }
    let trimmed = raw.strip_suffix(b"\r\n").unwrap_or(raw);
    let mut out = trimmed.to_vec();
    out.extend_from_slice(b";\r\n\thp=\"cipher\"; protected-headers=\"v1\"\r\n");
    out
}

fn boundary() -> String {
    let tail: String = rand::thread_rng().sample_iter(&Alphanumeric).take(24).map(char::from).collect();
    format!("=_rampart_pgp_{tail}")
}

/// One header field: its name and its raw bytes, continuation lines and CRLF included.
struct Field<'a> {
    name: &'a str,
    raw: &'a [u8],
}

/// The header fields and the body (after the empty line). A line that is not a field
/// (no colon) is dropped from the header, as a parser reading it would ignore it.
fn split(message: &[u8]) -> (Vec<Field<'_>>, &[u8]) {
    let mut fields = Vec::new();
    let mut at = 0;
    while at < message.len() {
        let line_end = memchr::memmem::find(&message[at..], b"\r\n").map_or(message.len(), |i| at + i + 2);
        let line = &message[at..line_end];
        if line == b"\r\n" {
            return (fields, &message[line_end..]);
        }
        // Continuation lines (RFC 5322 §2.2.3) extend the field before.
        let mut end = line_end;
        while end < message.len() && matches!(message[end], b' ' | b'\t') {
            end = memchr::memmem::find(&message[end..], b"\r\n").map_or(message.len(), |i| end + i + 2);
        }
        if let Some(colon) = memchr::memchr(b':', line)
            && let Ok(name) = std::str::from_utf8(&line[..colon])
            && !name.is_empty()
            && !name.contains([' ', '\t'])
        {
            fields.push(Field { name, raw: &message[at..end] });
        }
        at = end;
    }
    (fields, &[])
}

#[cfg(test)]
#[path = "mime_tests.rs"]
mod tests;
