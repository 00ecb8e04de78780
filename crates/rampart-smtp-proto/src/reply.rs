//! SMTP replies: a code, an enhanced status code (RFC 3463, advertised as
//! ENHANCEDSTATUSCODES per RFC 2034) and one or more lines of text.

use std::fmt::Write;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    /// `x.y.z`; empty for replies that carry none (the greeting, EHLO, 354).
    pub status: &'static str,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn new(code: u16, status: &'static str, text: impl Into<String>) -> Reply {
        Reply { code, status, lines: vec![text.into()] }
    }

    pub fn multi(code: u16, lines: Vec<String>) -> Reply {
        Reply { code, status: "", lines }
    }

    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    pub fn is_permanent_failure(&self) -> bool {
        self.code >= 500
    }

    /// The wire form, CRLF-terminated, `-` on every line but the last.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut s = String::new();
        let last = self.lines.len().saturating_sub(1);
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == last { ' ' } else { '-' };
            if self.status.is_empty() {
                let _ = write!(s, "{}{}{}\r\n", self.code, sep, line);
            } else {
                let _ = write!(s, "{}{}{} {}\r\n", self.code, sep, self.status, line);
            }
        }
        if self.lines.is_empty() {
            let _ = write!(s, "{} {}\r\n", self.code, self.status);
        }
        out.extend_from_slice(s.as_bytes());
    }

    /// The first line, for logs.
    pub fn summary(&self) -> String {
        format!("{} {} {}", self.code, self.status, self.lines.first().map_or("", String::as_str))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form() {
        let mut out = Vec::new();
        Reply::new(250, "2.1.0", "Ok").write_to(&mut out);
        Reply::multi(250, vec!["mx.example.test".into(), "PIPELINING".into(), "SIZE 10".into()]).write_to(&mut out);
        assert_eq!(out, b"250 2.1.0 Ok\r\n250-mx.example.test\r\n250-PIPELINING\r\n250 SIZE 10\r\n");
    }
}
