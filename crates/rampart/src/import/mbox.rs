//! Splitting an mbox file into messages (pure; [`Reader`] reads one message at a time, so a
//! large file is never held whole).
//!
//! - A message starts at a line `From SENDER DATE` (the envelope line, not stored); its date
//!   (asctime, `Mon Nov 30 07:40:00 2026`) is the message's internal date.
//! - Body lines that began with `From ` were quoted by the writer as `>From `: one `>` is
//!   removed from every `>...>From ` line (mboxrd, which reads mboxo files correctly too
//!   except for a body line that really began with `>From `).
//! - The state headers mail servers keep in mbox (`Status`, `X-Status`, `X-Keywords`, `X-UID`,
//!   `X-IMAP`, `X-IMAPbase`, `Content-Length`) become flags and are removed from the message.

use std::io::BufRead;

/// One message read from an mbox.
#[derive(Debug, PartialEq)]
pub struct Message {
    /// With CRLF line ends, without the envelope line and the state headers.
    pub raw: Vec<u8>,
    pub flags: Vec<String>,
    /// Unix time from the envelope line, if it had a date.
    pub date: Option<i64>,
}

/// Reads messages from an mbox stream.
pub struct Reader<R> {
    input: R,
    /// The `From ` line that starts the next message, once read.
    pending: Option<String>,
    line: Vec<u8>,
}

impl<R: BufRead> Reader<R> {
    pub fn new(input: R) -> Self {
        Reader { input, pending: None, line: Vec::new() }
    }

    /// The next message; `None` at the end of the file.
    pub fn next_message(&mut self) -> std::io::Result<Option<Message>> {
        let envelope = match self.pending.take() {
            Some(e) => e,
            None => loop {
                // Anything before the first envelope line is not a message.
                self.line.clear();
                if self.input.read_until(b'\n', &mut self.line)? == 0 {
                    return Ok(None);
                }
                if self.line.starts_with(b"From ") {
                    break String::from_utf8_lossy(&self.line).trim_end().to_string();
                }
            },
        };
        let mut lines: Vec<Vec<u8>> = Vec::new();
        loop {
            self.line.clear();
            if self.input.read_until(b'\n', &mut self.line)? == 0 {
                break;
            }
            if self.line.starts_with(b"From ") {
                self.pending = Some(String::from_utf8_lossy(&self.line).trim_end().to_string());
                break;
            }
            lines.push(std::mem::take(&mut self.line));
        }
        // The writer separates messages with an empty line; it is not part of the message.
        if lines.last().is_some_and(|l| l == b"\n" || l == b"\r\n") {
            lines.pop();
        }
        Ok(Some(build(&envelope, lines)))
    }
}

fn build(envelope: &str, lines: Vec<Vec<u8>>) -> Message {
    let mut raw = Vec::new();
    let mut flags = Vec::new();
    let mut in_header = true;
    let mut dropping = false;
    for mut line in lines {
        while line.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
            line.pop();
        }
        if in_header {
            if line.is_empty() {
                in_header = false;
            } else if dropping && line.first().is_some_and(|&b| b == b' ' || b == b'\t') {
                continue; // a continuation of a dropped field
            } else if let Some(value) = state_header(&line) {
                dropping = true;
                flags_from_state(&value.0, &value.1, &mut flags);
                continue;
            } else {
                dropping = false;
            }
        } else if is_quoted_from(&line) {
            line.remove(0);
        }
        raw.extend_from_slice(&line);
        raw.extend_from_slice(b"\r\n");
    }
    Message { raw, flags, date: envelope_date(envelope) }
}

/// `(name, value)` of a state header mbox writers add.
fn state_header(line: &[u8]) -> Option<(String, String)> {
    let text = std::str::from_utf8(line).ok()?;
    let (name, value) = text.split_once(':')?;
    const STATE: [&str; 7] = ["status", "x-status", "x-keywords", "x-uid", "x-imap", "x-imapbase", "content-length"];
    STATE
        .iter()
        .any(|s| name.eq_ignore_ascii_case(s))
        .then(|| (name.to_ascii_lowercase(), value.trim().to_string()))
}

fn flags_from_state(name: &str, value: &str, flags: &mut Vec<String>) {
    let mut add = |f: &str| {
        if !flags.iter().any(|x| x == f) {
            flags.push(f.to_string());
        }
    };
    match name {
        "status" if value.contains('R') => add("\\Seen"),
        "x-status" => {
            for (c, f) in [('A', "\\Answered"), ('F', "\\Flagged"), ('T', "\\Draft"), ('D', "\\Deleted")] {
                if value.contains(c) {
                    add(f);
                }
            }
        }
        "x-keywords" => value.split([' ', ',']).filter(|k| !k.is_empty()).for_each(add),
        _ => {}
    }
}

/// `>From `, `>>From `: quoted by the writer.
fn is_quoted_from(line: &[u8]) -> bool {
    let quotes = line.iter().take_while(|&&b| b == b'>').count();
    quotes > 0 && line[quotes..].starts_with(b"From ")
}

/// The asctime date at the end of `From sender Mon Nov 30 07:40:00 2026` (a trailing zone
/// such as `+0100` is accepted; it is read as UTC, as most writers wrote local time anyway).
fn envelope_date(envelope: &str) -> Option<i64> {
    let words: Vec<&str> = envelope.split_whitespace().collect();
    // Find "Www Mmm d hh:mm:ss yyyy" anywhere after the sender.
    (2..words.len()).find_map(|i| {
        let w = words.get(i..i + 5)?;
        let text = format!("{} {} {} {} {}", w[0], w[1], w[2], w[3], w[4]);
        chrono::NaiveDateTime::parse_from_str(&text, "%a %b %e %H:%M:%S %Y").ok().map(|d| d.and_utc().timestamp())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(text: &str) -> Vec<Message> {
        let mut r = Reader::new(text.as_bytes());
        std::iter::from_fn(|| r.next_message().unwrap()).collect()
    }

    #[test]
    fn splits_unquotes_and_reads_state() {
        let mbox = "From a@b.c Mon Nov 30 07:40:00 2026\n\
                    Subject: one\nStatus: RO\nX-Status: AF\nX-Keywords: $Work Later\nX-UID: 4\n\n\
                    >From the start\n>>From deeper\nplain From inside\n\n\
                    From b@c.d  Tue Dec  1 08:00:00 2026\nSubject: two\nX-IMAPbase: 1 2\n \\continued\n\nbody\n";
        let m = all(mbox);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].raw, b"Subject: one\r\n\r\nFrom the start\r\n>From deeper\r\nplain From inside\r\n");
        assert_eq!(m[0].flags, ["\\Seen", "\\Answered", "\\Flagged", "$Work", "Later"]);
        assert_eq!(m[0].date, Some(1_796_024_400));
        assert_eq!(m[1].raw, b"Subject: two\r\n\r\nbody\r\n");
        assert!(m[1].flags.is_empty());
        assert_eq!(m[1].date, Some(1_796_112_000));
    }

    #[test]
    fn junk_before_the_first_envelope_and_empty_files() {
        assert!(all("").is_empty());
        assert!(all("no envelope here\n").is_empty());
        let m = all("garbage\nFrom x Mon Nov 30 07:40:00 2026\nA: b\n\nc");
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].raw, b"A: b\r\n\r\nc\r\n");
    }
}
