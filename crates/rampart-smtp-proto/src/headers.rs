//! The header section of a message as it streams in (after dot-unstuffing): its size, how many
//! fields it has and how many of them are `Received:`, counted without holding it. The limits
//! are checked as soon as they are crossed, so a message with 100,000 header lines or a loop of
//! 60 Received fields is refused without keeping more than a line's worth of state.

/// What a header section may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderLimits {
    /// Bytes of the header section, through the empty line.
    pub max_size: u64,
    /// Header fields (a folded field counts once).
    pub max_fields: u32,
    /// `Received:` fields: more means the message is looping between servers (RFC 5321
    /// §6.3 asks servers to detect loops this way; Postfix uses 50 hops).
    pub max_received: u32,
}

/// Which limit the header section crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderViolation {
    TooLarge,
    TooManyFields,
    TooManyHops,
}

/// Counts a header section fed in pieces of any size.
#[derive(Debug, Clone)]
pub struct HeaderScan {
    limits: HeaderLimits,
    size: u64,
    fields: u32,
    received: u32,
    /// The empty line was seen: the rest is body.
    done: bool,
    /// At the start of a line.
    line_start: bool,
    /// The first bytes of the current line (enough to recognise `Received:`).
    prefix: Vec<u8>,
    /// The current line is the empty line (CR seen at its start).
    cr_at_start: bool,
    violation: Option<HeaderViolation>,
}

const RECEIVED: &[u8] = b"received:";

impl HeaderScan {
    pub fn new(limits: HeaderLimits) -> HeaderScan {
        HeaderScan {
            limits,
            size: 0,
            fields: 0,
            received: 0,
            done: false,
            line_start: true,
            prefix: Vec::with_capacity(RECEIVED.len()),
            cr_at_start: false,
            violation: None,
        }
    }

    /// The first limit crossed, if any; once set it stays.
    pub fn violation(&self) -> Option<HeaderViolation> {
        self.violation
    }

    /// The header section ended (the empty line was seen).
    pub fn done(&self) -> bool {
        self.done
    }

    pub fn received(&self) -> u32 {
        self.received
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            if self.done || self.violation.is_some() {
                return;
            }
            self.size += 1;
            if self.size > self.limits.max_size {
                self.violation = Some(HeaderViolation::TooLarge);
                return;
            }
            self.byte(b);
        }
    }

    fn byte(&mut self, b: u8) {
        if self.line_start {
            self.line_start = false;
            self.prefix.clear();
            self.cr_at_start = b == b'\r';
            match b {
                // A folded continuation belongs to the field before it.
                b' ' | b'\t' => {}
                b'\r' => {}
                b'\n' => self.done = true,
                _ => {
                    self.fields += 1;
                    if self.fields > self.limits.max_fields {
                        self.violation = Some(HeaderViolation::TooManyFields);
                        return;
                    }
                }
            }
        }
        if b == b'\n' {
            if self.cr_at_start && self.prefix.is_empty() {
                self.done = true;
            }
            self.line_start = true;
            return;
        }
        if b != b'\r' && self.prefix.len() < RECEIVED.len() {
            self.prefix.push(b.to_ascii_lowercase());
            if self.prefix == RECEIVED {
                self.received += 1;
                if self.received > self.limits.max_received {
                    self.violation = Some(HeaderViolation::TooManyHops);
                }
            }
        }
        if b != b'\r' {
            self.cr_at_start = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: HeaderLimits = HeaderLimits { max_size: 1000, max_fields: 5, max_received: 2 };

    fn scan(msg: &[u8], piece: usize) -> HeaderScan {
        let mut s = HeaderScan::new(LIMITS);
        for chunk in msg.chunks(piece) {
            s.feed(chunk);
        }
        s
    }

    #[test]
    fn counts_fields_hops_and_the_end() {
        let msg = b"Received: a\r\nReceived: b\r\n\tfolded\r\nSubject: x\r\n\r\nReceived: in the body\r\n";
        for piece in 1..msg.len() {
            let s = scan(msg, piece);
            assert!(s.done(), "{piece}");
            assert_eq!((s.received(), s.violation()), (2, None), "{piece}");
        }
    }

    #[test]
    fn limits() {
        let hops = b"Received: a\r\nRECEIVED: b\r\nreceived:c\r\nSubject: x\r\n\r\n";
        assert_eq!(scan(hops, 3).violation(), Some(HeaderViolation::TooManyHops));
        let many = b"A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\n\r\n";
        assert_eq!(scan(many, 7).violation(), Some(HeaderViolation::TooManyFields));
        let big = [b"X: ".as_slice(), &[b'a'; 2000], b"\r\n\r\n"].concat();
        assert_eq!(scan(&big, 100).violation(), Some(HeaderViolation::TooLarge));
        // A body of any size after the header section is not counted.
        let body = [b"A: 1\r\n\r\n".as_slice(), &[b'a'; 5000]].concat();
        assert_eq!(scan(&body, 64).violation(), None);
        // A message without a header section (starts with the empty line).
        assert!(scan(b"\r\nbody", 1).done());
    }
}
