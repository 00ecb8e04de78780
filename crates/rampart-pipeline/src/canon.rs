//! A workaround for a defect in mail-auth 0.13.3 (fixed upstream in 0.15, which needs a newer
//! Rust): with *relaxed* body canonicalization, a body that ends in lines holding only
//! whitespace (`"Hi\r\n \r\n"`) gets a wrong body hash.
//!
//! RFC 6376 §3.4.4 (relaxed body): trailing whitespace on each line is removed, then empty
//! lines at the end of the body are ignored. So whitespace-only lines at the end of a body
//! never reach the hash, and cutting them off before mail-auth sees the body gives the same
//! relaxed hash the RFC asks for. Callers verify relaxed-body signatures on the trimmed copy
//! and sign a trimmed copy while sending the original bytes.

/// The length of `message` without the whitespace-only lines at the end of its body, or
/// `None` when there are none (the common case: nothing to copy). `body_offset` is where the
/// body starts.
pub fn trimmed_len(message: &[u8], body_offset: usize) -> Option<usize> {
    let body = message.get(body_offset..)?;
    // Walk back over complete lines that hold only SP / HTAB. The CRLF of the last line with
    // content stays: it belongs to that line.
    let mut end = body.len();
    let mut cut = None;
    while let Some(line_end) = end.checked_sub(2).filter(|&i| &body[i..end] == b"\r\n") {
        let line_start = memchr::memmem::rfind(&body[..line_end], b"\r\n").map_or(0, |i| i + 2);
        let line = &body[line_start..line_end];
        if line.is_empty() || !line.iter().all(|&b| b == b' ' || b == b'\t') {
            break;
        }
        cut = Some(line_start);
        end = line_start;
        if line_start == 0 {
            break;
        }
    }
    cut.map(|c| body_offset + c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use mail_auth::common::crypto::{Ed25519Key, Sha256};
    use mail_auth::dkim::{Canonicalization, DkimSigner};
    use sha2::Digest;

    #[test]
    fn trims_only_whitespace_lines_at_the_end() {
        assert_eq!(trimmed_len(b"A: b\r\n\r\nHi\r\n \r\n", 8), Some(12));
        assert_eq!(trimmed_len(b"A: b\r\n\r\nHi\r\n \t\r\n  \r\n", 8), Some(12));
        assert_eq!(trimmed_len(b"A: b\r\n\r\nHi\r\n", 8), None);
        assert_eq!(trimmed_len(b"A: b\r\n\r\nHi\r\n\r\n", 8), None, "empty lines are handled by the crate");
        assert_eq!(trimmed_len(b"A: b\r\n\r\nHi \r\n", 8), None);
        assert_eq!(trimmed_len(b"A: b\r\n\r\n \r\n", 8), Some(8));
    }

    /// The test vector: the relaxed body hash of `"Hi\r\n \r\n"` is the SHA-256 of `"Hi\r\n"`
    /// (RFC 6376 §3.4.4). Signing the trimmed copy gives it; signing the original with
    /// mail-auth 0.13.3 directly does not (when that starts to pass, the crate was fixed).
    #[test]
    fn relaxed_body_hash_vector() {
        let message = b"From: a@example.test\r\nSubject: x\r\n\r\nHi\r\n \r\n";
        let expected = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(b"Hi\r\n"));
        let pkcs8 = Ed25519Key::generate_pkcs8().unwrap();
        let sign = |m: &[u8]| {
            let key = Ed25519Key::from_pkcs8_der(&pkcs8).unwrap();
            let sig = DkimSigner::from_key(key)
                .domain("example.test")
                .selector("s")
                .headers(["From"])
                .body_canonicalization(Canonicalization::Relaxed)
                .sign(m)
                .unwrap();
            base64::engine::general_purpose::STANDARD.encode(&sig.bh)
        };
        let offset = memchr::memmem::find(message, b"\r\n\r\n").unwrap() + 4;
        let trimmed = &message[..trimmed_len(message, offset).unwrap()];
        assert_eq!(sign(trimmed), expected);
        let _ = Sha256; // the hash the signer above uses
        assert_ne!(sign(message), expected, "mail-auth now hashes this body right: the workaround can go");
    }
}
