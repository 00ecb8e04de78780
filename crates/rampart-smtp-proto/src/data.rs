//! Message content as it streams in after DATA or BDAT, without I/O.
//!
//! DATA content ends only at CRLF `.` CRLF (RFC 5321 §4.1.1.4) and lines starting with a dot
//! are unstuffed (§4.5.2). A bare CR, a bare LF or a NUL anywhere is a hard error: servers that
//! read `\n.\n` or `\r.\r` as the end of data can be made to accept a second, smuggled message
//! that another server saw as body text (SMTP smuggling, 2023). We never guess: the session
//! refuses the message and closes the connection, since where the client thinks the data ends
//! is exactly what is in doubt.
//!
//! BDAT content (RFC 3030) is framed by its byte count; the same line rules apply, with no dot
//! handling, and a CRLF may be split across chunks.
//!
//! Size and line-length limits do not stop the scan (the end of the data must still be found),
//! they stop the output: nothing past the limit is kept in memory or written anywhere.

use memchr::memchr3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// DATA: dot-stuffed, ends at CRLF.CRLF.
    Dot,
    /// BDAT: the caller counts bytes.
    Chunked,
}

/// Errors that make the content unusable but leave the stream in sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Soft {
    TooBig,
    LineTooLong,
}

/// Errors after which nobody can tell where the client's data ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fatal {
    BareLf,
    BareCr,
    Nul,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fed {
    /// Input bytes used; for DATA the rest (after the terminator) belongs to the next command.
    pub consumed: usize,
    /// The terminating CRLF.CRLF was seen (DATA only).
    pub done: bool,
}

#[derive(Debug)]
pub struct Receiver {
    framing: Framing,
    max_size: u64,
    max_line: usize,
    /// Output bytes so far, counting those dropped after a soft error.
    size: u64,
    line_len: usize,
    at_line_start: bool,
    /// A CR was seen and its LF has not arrived yet.
    pending_cr: bool,
    /// A line started with a dot (DATA only); it is either the terminator or stuffing.
    pending_dot: bool,
    soft: Option<Soft>,
}

impl Receiver {
    pub fn new(framing: Framing, max_size: u64, max_line: usize) -> Receiver {
        Receiver {
            framing,
            max_size,
            max_line,
            size: 0,
            line_len: 0,
            at_line_start: true,
            pending_cr: false,
            pending_dot: false,
            soft: None,
        }
    }

    /// The first soft error, if any.
    pub fn soft_error(&self) -> Option<Soft> {
        self.soft
    }

    /// Content bytes received (after unstuffing), including any dropped past a limit.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// For BDAT LAST: the content must not end inside a CRLF.
    pub fn finish_chunks(&self) -> Result<(), Fatal> {
        if self.pending_cr { Err(Fatal::BareCr) } else { Ok(()) }
    }

    /// Counts `bytes` as content and keeps what fits before any limit. Where the limit falls
    /// does not depend on how the input was split into reads.
    fn emit(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        let room = self.max_size.saturating_sub(self.size) as usize;
        self.size += bytes.len() as u64;
        if self.soft.is_none() {
            out.extend_from_slice(&bytes[..bytes.len().min(room)]);
            if bytes.len() > room {
                self.soft = Some(Soft::TooBig);
            }
        }
    }

    /// Emits a run of ordinary line content, stopping at the line-length limit.
    fn emit_line(&mut self, run: &[u8], out: &mut Vec<u8>) {
        // The limit counts the CRLF.
        let room = self.max_line.saturating_sub(2).saturating_sub(self.line_len);
        self.line_len += run.len();
        if run.len() <= room {
            return self.emit(run, out);
        }
        self.emit(&run[..room], out);
        if self.soft.is_none() {
            self.soft = Some(Soft::LineTooLong);
        }
        self.emit(&run[room..], out);
    }

    /// Scans `input`, appending kept content to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<Fed, Fatal> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            if self.pending_cr {
                if b != b'\n' {
                    return Err(Fatal::BareCr);
                }
                self.pending_cr = false;
                i += 1;
                if self.pending_dot {
                    // CRLF . CRLF: the terminator. The CRLF before the dot was already emitted.
                    return Ok(Fed { consumed: i, done: true });
                }
                self.emit(b"\r\n", out);
                self.at_line_start = true;
                self.line_len = 0;
                continue;
            }
            if self.at_line_start && self.framing == Framing::Dot && !self.pending_dot && b == b'.' {
                self.pending_dot = true;
                self.at_line_start = false;
                i += 1;
                continue;
            }
            match b {
                b'\r' => {
                    self.pending_cr = true;
                    i += 1;
                    continue;
                }
                b'\n' => return Err(Fatal::BareLf),
                0 => return Err(Fatal::Nul),
                _ => {}
            }
            // A dot followed by anything but CRLF was stuffing: it is dropped (§4.5.2).
            self.pending_dot = false;
            self.at_line_start = false;
            let run_end = memchr3(b'\r', b'\n', 0, &input[i..]).map_or(input.len(), |p| i + p);
            self.emit_line(&input[i..run_end], out);
            i = run_end;
        }
        Ok(Fed { consumed: input.len(), done: false })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(framing: Framing, chunks: &[&[u8]]) -> (Vec<u8>, Result<Fed, Fatal>, Option<Soft>) {
        let mut r = Receiver::new(framing, 1000, 100);
        let mut out = Vec::new();
        let mut last = Ok(Fed { consumed: 0, done: false });
        for c in chunks {
            last = r.feed(c, &mut out);
            if !matches!(last, Ok(Fed { done: false, .. })) {
                break;
            }
        }
        (out, last, r.soft_error())
    }

    #[test]
    fn ends_at_crlf_dot_crlf_and_leaves_the_rest() {
        let input = b"Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n";
        let (out, fed, _) = run(Framing::Dot, &[input]);
        assert_eq!(out, b"Subject: x\r\n\r\nbody\r\n");
        assert_eq!(fed, Ok(Fed { consumed: input.len() - 6, done: true }));
    }

    #[test]
    fn unstuffs_leading_dots() {
        let (out, fed, _) = run(Framing::Dot, &[b"..hidden\r\n.x\r\n...\r\n.\r\n"]);
        assert_eq!(out, b".hidden\r\nx\r\n..\r\n");
        assert!(fed.unwrap().done);
    }

    #[test]
    fn empty_message() {
        let (out, fed, _) = run(Framing::Dot, &[b".\r\n"]);
        assert!(out.is_empty());
        assert!(fed.unwrap().done);
    }

    #[test]
    fn terminator_split_across_reads() {
        let (out, fed, _) = run(Framing::Dot, &[b"a\r", b"\n", b".", b"\r", b"\n"]);
        assert_eq!(out, b"a\r\n");
        assert!(fed.unwrap().done);
    }

    #[test]
    fn smuggling_variants_are_fatal() {
        let cases: [(&[u8], Fatal); 6] = [
            (b"a\r\n\n.\nMAIL FROM:<x@y>\r\n", Fatal::BareLf),
            (b"a\r\n\n.\r\nMAIL FROM:<x@y>\r\n", Fatal::BareLf),
            (b"a\r\r.\r", Fatal::BareCr),
            (b"a\r\n.\rMAIL", Fatal::BareCr),
            (b"a\r.\r\n", Fatal::BareCr),
            (b"a\r\n\x00.\r\n", Fatal::Nul),
        ];
        for (input, fatal) in cases {
            let (_, fed, _) = run(Framing::Dot, &[input]);
            assert_eq!(fed, Err(fatal), "{input:?}");
        }
        assert_eq!(run(Framing::Dot, &[b"a\nb\r\n"]).1, Err(Fatal::BareLf));
    }

    #[test]
    fn limits_are_soft_and_keep_nothing_past_them() {
        let mut r = Receiver::new(Framing::Dot, 10, 1000);
        let mut out = Vec::new();
        let fed = r.feed(b"0123456789abcdef\r\n.\r\n", &mut out).unwrap();
        assert!(fed.done);
        assert_eq!(r.soft_error(), Some(Soft::TooBig));
        assert_eq!(out, b"0123456789");

        let mut r = Receiver::new(Framing::Dot, 10_000, 8);
        let mut out = Vec::new();
        assert!(r.feed(b"short\r\nmuch too long\r\n.\r\n", &mut out).unwrap().done);
        assert_eq!(r.soft_error(), Some(Soft::LineTooLong));
        // What is kept stops exactly at the limit, however the input was split.
        assert_eq!(out, b"short\r\nmuch t");
    }

    #[test]
    fn chunked_has_no_dot_handling_and_crlf_may_split() {
        let mut r = Receiver::new(Framing::Chunked, 1000, 100);
        let mut out = Vec::new();
        assert_eq!(r.feed(b".a\r", &mut out).unwrap().consumed, 3);
        assert!(r.finish_chunks().is_err());
        r.feed(b"\n.\r\n", &mut out).unwrap();
        assert!(r.finish_chunks().is_ok());
        assert_eq!(out, b".a\r\n.\r\n");
        assert_eq!(r.feed(b"x\ny", &mut out), Err(Fatal::BareLf));
    }
}
