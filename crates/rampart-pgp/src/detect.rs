//! Mail that is already protected end to end and must be stored byte for byte: PGP/MIME
//! (RFC 3156, encrypted or signed), S/MIME (RFC 8551, enveloped, signed-data or
//! multipart/signed) and inline PGP armor. Encrypting it again would only hide it twice, and
//! a signature must reach the user over the bytes the sender signed.

use mail_parser::{MessageParser, MimeHeaders};
use memchr::memmem;

/// Why a message is left as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    /// multipart/encrypted (PGP/MIME, RFC 3156 §4).
    PgpMime,
    /// multipart/signed (PGP/MIME RFC 3156 §5 or S/MIME RFC 8551 §3.5.3).
    Signed,
    /// application/pkcs7-mime (S/MIME enveloped, authenticated or signed data, RFC 8551 §3.2).
    Smime,
    /// An inline `-----BEGIN PGP MESSAGE-----` or `-----BEGIN PGP SIGNED MESSAGE-----` block
    /// at the start of a line (RFC 4880 §6.2 armor in a text body).
    InlinePgp,
}

impl Protection {
    pub fn as_str(self) -> &'static str {
        match self {
            Protection::PgpMime => "pgp_mime",
            Protection::Signed => "signed",
            Protection::Smime => "smime",
            Protection::InlinePgp => "inline_pgp",
        }
    }
}

/// How `message` (header and body) is already protected, if it is.
pub fn protection(message: &[u8]) -> Option<Protection> {
    let parsed = MessageParser::new().parse_headers(message);
    if let Some(ct) = parsed.as_ref().and_then(|m| m.content_type()) {
        let main = ct.ctype().to_ascii_lowercase();
        let sub = ct.subtype().unwrap_or_default().to_ascii_lowercase();
        match (main.as_str(), sub.as_str()) {
            ("multipart", "encrypted") => return Some(Protection::PgpMime),
            ("multipart", "signed") => return Some(Protection::Signed),
            ("application", "pkcs7-mime" | "x-pkcs7-mime") => return Some(Protection::Smime),
            _ => {}
        }
    }
    inline_armor(message).then_some(Protection::InlinePgp)
}

/// True when a PGP message or cleartext-signed block begins at the start of a line.
fn inline_armor(message: &[u8]) -> bool {
    [&b"-----BEGIN PGP MESSAGE-----"[..], b"-----BEGIN PGP SIGNED MESSAGE-----"].iter().any(|marker| {
        memmem::find_iter(message, marker).any(|at| at == 0 || message[at - 1] == b'\n')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_type(ct: &str) -> Vec<u8> {
        format!("From: a@example.org\r\nContent-Type: {ct}\r\n\r\nbody\r\n").into_bytes()
    }

    #[test]
    fn protected_mail_is_recognised() {
        let pgp = with_type("multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=x");
        assert_eq!(protection(&pgp), Some(Protection::PgpMime));
        let signed = with_type("multipart/signed; micalg=pgp-sha256;\r\n protocol=\"application/pgp-signature\"; boundary=x");
        assert_eq!(protection(&signed), Some(Protection::Signed));
        let smime = with_type("application/pkcs7-mime; smime-type=enveloped-data; name=smime.p7m");
        assert_eq!(protection(&smime), Some(Protection::Smime));
        let old = with_type("Application/X-PKCS7-MIME; smime-type=signed-data");
        assert_eq!(protection(&old), Some(Protection::Smime));
        let inline = b"Subject: x\r\n\r\n-----BEGIN PGP MESSAGE-----\r\n\r\nhQEMA\r\n-----END PGP MESSAGE-----\r\n";
        assert_eq!(protection(inline), Some(Protection::InlinePgp));
        let clearsigned = b"Subject: x\r\n\r\nhello\r\n-----BEGIN PGP SIGNED MESSAGE-----\r\nHash: SHA256\r\n";
        assert_eq!(protection(clearsigned), Some(Protection::InlinePgp));
    }

    #[test]
    fn plain_mail_is_not() {
        assert_eq!(protection(&with_type("text/plain; charset=utf-8")), None);
        assert_eq!(protection(&with_type("multipart/mixed; boundary=x")), None);
        assert_eq!(protection(b"Subject: no type\r\n\r\nhi\r\n"), None);
        // Quoted armor in the middle of a line is not a PGP block.
        assert_eq!(protection(b"Subject: x\r\n\r\nsee > -----BEGIN PGP MESSAGE----- here\r\n"), None);
    }
}
