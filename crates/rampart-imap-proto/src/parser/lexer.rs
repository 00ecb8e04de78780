//! The token layer of RFC 3501 §9 over one complete command (lines and literals already
//! framed by the driver). Every function consumes from a cursor and fails with a typed error;
//! nothing here allocates more than the input it copies out.

use super::ParseError;

/// Parenthesized lists nest at most this deep (search keys, fetch sections): enough for every
/// real client, and it bounds the recursion an attacker can cause.
pub const MAX_DEPTH: usize = 16;

pub struct Cursor<'a> {
    pub b: &'a [u8],
    pub pos: usize,
    pub depth: usize,
}

type R<T> = Result<T, ParseError>;

/// RFC 3501 §9 atom-specials plus CTL and SP; `]` is allowed in atoms except where the caller
/// says otherwise.
fn is_atom_char(c: u8) -> bool {
    c > 0x20 && c < 0x7f && !matches!(c, b'(' | b')' | b'{' | b'%' | b'*' | b'"' | b'\\')
}

impl<'a> Cursor<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Cursor { b, pos: 0, depth: 0 }
    }

    pub fn err(&self, what: &str) -> ParseError {
        ParseError::Syntax(format!("{what} at byte {}", self.pos))
    }

    pub fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    pub fn at_end(&self) -> bool {
        self.pos >= self.b.len()
    }

    pub fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    pub fn expect(&mut self, c: u8) -> R<()> {
        if self.eat(c) { Ok(()) } else { Err(self.err(&format!("expected `{}`", c as char))) }
    }

    pub fn sp(&mut self) -> R<()> {
        self.expect(b' ')
    }

    /// Case-insensitive keyword followed by a non-atom character.
    pub fn keyword(&mut self, word: &str) -> bool {
        let w = word.as_bytes();
        let end = self.pos + w.len();
        if end <= self.b.len() && self.b[self.pos..end].eq_ignore_ascii_case(w) {
            let next = self.b.get(end).copied();
            if next.is_none_or(|c| !is_atom_char(c) || c == b']' || c == b'[') {
                self.pos = end;
                return true;
            }
        }
        false
    }

    pub fn enter(&mut self) -> R<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH { Err(ParseError::TooDeep) } else { Ok(()) }
    }

    pub fn leave(&mut self) {
        self.depth -= 1;
    }

    /// An atom; `bracket` allows `]` inside (ASTRING-CHAR), which flags and tags need not.
    pub fn atom_with(&mut self, bracket: bool) -> R<&'a [u8]> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if !is_atom_char(c) || (!bracket && c == b']') {
                break;
            }
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.err("expected an atom"));
        }
        Ok(&self.b[start..self.pos])
    }

    pub fn atom(&mut self) -> R<&'a [u8]> {
        self.atom_with(false)
    }

    pub fn atom_str(&mut self) -> R<String> {
        Ok(String::from_utf8_lossy(self.atom()?).into_owned())
    }

    pub fn number(&mut self) -> R<u64> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        if self.pos == start || self.pos - start > 20 {
            return Err(self.err("expected a number"));
        }
        std::str::from_utf8(&self.b[start..self.pos])
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| self.err("number out of range"))
    }

    pub fn number32(&mut self) -> R<u32> {
        u32::try_from(self.number()?).map_err(|_| self.err("number out of range"))
    }

    pub fn nz_number(&mut self) -> R<u32> {
        let n = self.number32()?;
        if n == 0 { Err(self.err("expected a non-zero number")) } else { Ok(n) }
    }

    /// A quoted string (RFC 3501 §4.3): `\` escapes only `"` and `\`; no CR, LF or NUL.
    pub fn quoted(&mut self) -> R<Vec<u8>> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'\r') | Some(b'\n') | Some(0) => return Err(self.err("unterminated quoted string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => {
                            out.push(c);
                            self.pos += 1;
                        }
                        _ => return Err(self.err("bad escape in quoted string")),
                    }
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// A literal `{N}CRLF` or `{N+}CRLF` (RFC 7888) followed by N bytes. The driver has
    /// already checked N against the limits and read the bytes.
    pub fn literal(&mut self) -> R<&'a [u8]> {
        self.expect(b'{')?;
        let n = self.number()?;
        self.eat(b'+');
        self.expect(b'}')?;
        if !(self.eat(b'\r') && self.eat(b'\n')) {
            return Err(self.err("literal announcement must end the line"));
        }
        let n = usize::try_from(n).map_err(|_| ParseError::TooBig)?;
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len()).ok_or_else(|| self.err("literal shorter than announced"))?;
        let data = &self.b[self.pos..end];
        self.pos = end;
        Ok(data)
    }

    /// string = quoted / literal
    pub fn string(&mut self) -> R<Vec<u8>> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => Ok(self.literal()?.to_vec()),
            _ => Err(self.err("expected a string")),
        }
    }

    /// astring = 1*ASTRING-CHAR / string
    pub fn astring(&mut self) -> R<Vec<u8>> {
        match self.peek() {
            Some(b'"') | Some(b'{') => self.string(),
            _ => Ok(self.atom_with(true)?.to_vec()),
        }
    }

    pub fn astring_utf8(&mut self) -> R<String> {
        String::from_utf8(self.astring()?).map_err(|_| self.err("not UTF-8"))
    }

    pub fn nstring(&mut self) -> R<Option<Vec<u8>>> {
        if self.keyword("NIL") { Ok(None) } else { Ok(Some(self.string()?)) }
    }

    /// list-mailbox: like astring but `%` and `*` are allowed unquoted (RFC 3501 §6.3.8).
    pub fn list_mailbox(&mut self) -> R<String> {
        let bytes = match self.peek() {
            Some(b'"') | Some(b'{') => self.string()?,
            _ => {
                let start = self.pos;
                while let Some(c) = self.peek() {
                    if !(is_atom_char(c) || c == b'%' || c == b'*') {
                        break;
                    }
                    self.pos += 1;
                }
                if self.pos == start {
                    return Err(self.err("expected a mailbox pattern"));
                }
                self.b[start..self.pos].to_vec()
            }
        };
        String::from_utf8(bytes).map_err(|_| self.err("not UTF-8"))
    }

    /// A flag: `\Atom` or a keyword atom (RFC 3501 §9 flag, flag-keyword).
    pub fn flag(&mut self) -> R<String> {
        let system = self.eat(b'\\');
        if system && self.eat(b'*') {
            return Ok("\\*".into());
        }
        let atom = self.atom_str()?;
        Ok(if system { format!("\\{atom}") } else { atom })
    }

    /// `(flag *(SP flag))` or, when `bare` is allowed, flags without parentheses (STORE).
    pub fn flag_list(&mut self, bare: bool) -> R<Vec<String>> {
        let mut flags = Vec::new();
        if self.eat(b'(') {
            if self.eat(b')') {
                return Ok(flags);
            }
            loop {
                flags.push(self.flag()?);
                if self.eat(b')') {
                    return Ok(flags);
                }
                self.sp()?;
            }
        }
        if !bare {
            return Err(self.err("expected a flag list"));
        }
        loop {
            flags.push(self.flag()?);
            if self.peek() != Some(b' ') || matches!(self.b.get(self.pos + 1), Some(b'(') | None) {
                return Ok(flags);
            }
            self.sp()?;
        }
    }

    /// date = date-text / DQUOTE date-text DQUOTE; date-text = d-MMM-yyyy
    pub fn date(&mut self) -> R<chrono::NaiveDate> {
        let quoted = self.eat(b'"');
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == b'-') {
            self.pos += 1;
        }
        let text = std::str::from_utf8(&self.b[start..self.pos]).map_err(|_| self.err("bad date"))?;
        let date = parse_date(text).ok_or_else(|| self.err("bad date"))?;
        if quoted {
            self.expect(b'"')?;
        }
        Ok(date)
    }

    /// date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE
    /// date-time (RFC 3501 §9): the instant and its zone in minutes east of UTC.
    pub fn date_time(&mut self) -> R<(i64, i32)> {
        let text = self.quoted()?;
        let text = std::str::from_utf8(&text).map_err(|_| self.err("bad date-time"))?;
        chrono::DateTime::parse_from_str(text.trim_start(), "%d-%b-%Y %H:%M:%S %z")
            .map(|d| (d.timestamp(), d.offset().local_minus_utc() / 60))
            .map_err(|_| self.err("bad date-time"))
    }
}

fn parse_date(text: &str) -> Option<chrono::NaiveDate> {
    let mut parts = text.split('-');
    let day: u32 = parts.next()?.parse().ok()?;
    let month = parts.next()?;
    let year: i32 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || month.len() != 3 {
        return None;
    }
    const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
    let m = MONTHS.iter().position(|x| x.eq_ignore_ascii_case(month))? as u32 + 1;
    chrono::NaiveDate::from_ymd_opt(year, m, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings() {
        let mut c = Cursor::new(b"\"a\\\"b\" {3}\r\nxyz atom]x");
        assert_eq!(c.astring().unwrap(), b"a\"b");
        c.sp().unwrap();
        assert_eq!(c.astring().unwrap(), b"xyz");
        c.sp().unwrap();
        assert_eq!(c.astring().unwrap(), b"atom]x");
        assert!(Cursor::new(b"{5}\r\nab").literal().is_err());
        assert!(Cursor::new(b"\"ab").quoted().is_err());
        assert!(Cursor::new(b"{99999999999999999999999}\r\n").literal().is_err());
    }

    #[test]
    fn dates() {
        assert_eq!(Cursor::new(b"1-Feb-2020").date().unwrap(), chrono::NaiveDate::from_ymd_opt(2020, 2, 1).unwrap());
        assert!(Cursor::new(b"31-Feb-2020").date().is_err());
        let t = Cursor::new(b"\" 7-Nov-2026 10:00:00 +0100\"").date_time().unwrap();
        assert_eq!(t, (1794042000, 60));
    }

    #[test]
    fn flags() {
        let mut c = Cursor::new(b"(\\Seen $Junk \\*)");
        assert_eq!(c.flag_list(false).unwrap(), vec!["\\Seen", "$Junk", "\\*"]);
        let mut c = Cursor::new(b"\\Seen \\Deleted");
        assert_eq!(c.flag_list(true).unwrap(), vec!["\\Seen", "\\Deleted"]);
    }
}
