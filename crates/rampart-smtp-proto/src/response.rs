//! The client's reply reader (RFC 5321 §4.2): bytes from a server in, complete replies out.
//! A hostile or broken server decides what arrives, so a line and a reply are capped and a
//! line that is not a reply is an error, never a guess.

use memchr::memchr;

/// Longest reply line accepted (RFC 5321 §4.5.3.1.5 says 512; some servers send more).
pub const MAX_REPLY_LINE: usize = 4096;
/// Most lines in one multi-line reply.
pub const MAX_REPLY_LINES: usize = 100;

/// A server reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub code: u16,
    pub lines: Vec<String>,
}

impl Response {
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// The reply on one line, for logs and DSNs.
    pub fn text(&self) -> String {
        format!("{} {}", self.code, self.lines.join(" "))
    }

    /// The RFC 3463 status code the reply carries, if any.
    pub fn enhanced(&self) -> Option<String> {
        let first = self.lines.first()?.split(' ').next()?;
        let parts: Vec<&str> = first.split('.').collect();
        let ok = parts.len() == 3
            && matches!(parts[0], "2" | "4" | "5")
            && parts[1..].iter().all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()));
        ok.then(|| first.to_string())
    }
}

/// Why the server's bytes are not a reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    #[error("reply line too long")]
    LineTooLong,
    #[error("reply has too many lines")]
    TooManyLines,
    /// The first 80 characters of a line that does not start with a reply code.
    #[error("not a reply: {0}")]
    NotAReply(String),
}

/// Collects a server's bytes and hands out whole replies. Bytes past a reply stay buffered
/// for the next one (a pipelining server answers several commands in one packet).
#[derive(Debug, Default)]
pub struct ResponseReader {
    buf: Vec<u8>,
    /// Lines of the reply being read.
    lines: Vec<String>,
}

impl ResponseReader {
    /// Adds bytes read from the server.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Forgets everything buffered: after STARTTLS nothing sent in clear may be read as the
    /// server's answer inside TLS.
    pub fn clear(&mut self) {
        self.buf.clear();
        self.lines.clear();
    }

    /// The next complete reply, `Ok(None)` when more bytes are needed.
    pub fn next_reply(&mut self) -> Result<Option<Response>, ResponseError> {
        loop {
            let Some(pos) = memchr(b'\n', &self.buf) else {
                if self.buf.len() > MAX_REPLY_LINE {
                    return Err(ResponseError::LineTooLong);
                }
                return Ok(None);
            };
            if pos > MAX_REPLY_LINE {
                return Err(ResponseError::LineTooLong);
            }
            let raw: Vec<u8> = self.buf.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&raw).trim_end_matches(['\r', '\n']).to_string();
            let code = line.get(..3).and_then(|c| c.parse::<u16>().ok()).filter(|c| (200..600).contains(c));
            let Some(code) = code else {
                return Err(ResponseError::NotAReply(line.chars().take(80).collect()));
            };
            let sep = line.as_bytes().get(3).copied().unwrap_or(b' ');
            self.lines.push(line.get(4..).unwrap_or("").to_string());
            if sep != b'-' {
                return Ok(Some(Response { code, lines: std::mem::take(&mut self.lines) }));
            }
            if self.lines.len() >= MAX_REPLY_LINES {
                return Err(ResponseError::TooManyLines);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enhanced_codes() {
        let r = |line: &str| Response { code: 250, lines: vec![line.into()] };
        assert_eq!(r("2.1.5 Ok").enhanced().as_deref(), Some("2.1.5"));
        assert_eq!(r("Ok").enhanced(), None);
        assert_eq!(r("2.1 Ok").enhanced(), None);
        assert_eq!(r("7.1.1 x").enhanced(), None);
    }

    #[test]
    fn replies_split_anywhere() {
        let wire = b"250-mx.example\r\n250-PIPELINING\r\n250 SIZE 10\r\n354 go\r\n";
        for cut in 0..wire.len() {
            let mut r = ResponseReader::default();
            r.push(&wire[..cut]);
            let mut got = Vec::new();
            while let Some(x) = r.next_reply().unwrap() {
                got.push(x);
            }
            r.push(&wire[cut..]);
            while let Some(x) = r.next_reply().unwrap() {
                got.push(x);
            }
            assert_eq!(got.len(), 2, "cut at {cut}");
            assert_eq!(got[0].lines, ["mx.example", "PIPELINING", "SIZE 10"]);
            assert_eq!((got[1].code, got[1].text()), (354, "354 go".to_string()));
        }
    }

    #[test]
    fn limits_and_garbage() {
        let mut r = ResponseReader::default();
        r.push(&vec![b'2'; MAX_REPLY_LINE + 1]);
        assert_eq!(r.next_reply(), Err(ResponseError::LineTooLong));
        let mut r = ResponseReader::default();
        r.push("250-x\r\n".repeat(MAX_REPLY_LINES).as_bytes());
        assert_eq!(r.next_reply(), Err(ResponseError::TooManyLines));
        let mut r = ResponseReader::default();
        r.push(b"HTTP/1.1 400 Bad Request\r\n");
        assert!(matches!(r.next_reply(), Err(ResponseError::NotAReply(_))));
        let mut r = ResponseReader::default();
        r.push(b"199 too low\r\n");
        assert!(matches!(r.next_reply(), Err(ResponseError::NotAReply(_))));
    }
}
