//! SMTP command parsing (RFC 5321 §4.1), pure and without I/O.
//!
//! Written here rather than taken from smtp-proto because the session needs things that crate
//! does differently: `<postmaster>` must stay distinct from `<>` (RFC 5321 §4.5.1), quoted local
//! parts and address literals must survive parsing so policy can refuse them, and a line is
//! handed over only after the driver has checked it ends in CRLF with no bare CR or LF inside.
//!
//! Input is one line without its CRLF. Lengths follow RFC 5321 §4.5.3.1.

use std::fmt;

use crate::reply::Reply;

/// RFC 5321 §4.5.3.1.1: 64 octets of local part.
pub const MAX_LOCAL_PART: usize = 64;
/// RFC 5321 §4.5.3.1.2: 255 octets of domain.
pub const MAX_DOMAIN: usize = 255;
/// RFC 5321 §4.5.3.1.3: 256 octets of path including the angle brackets.
pub const MAX_PATH: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Ehlo(String),
    Helo(String),
    Mail { from: ReversePath, params: MailParams },
    Rcpt { to: ForwardPath, params: RcptParams },
    Data,
    Bdat { size: u64, last: bool },
    Rset,
    Noop,
    Quit,
    Vrfy(String),
    Expn(String),
    Help,
    StartTls,
    Auth { mechanism: String, initial: Option<String> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReversePath {
    /// `<>`: bounces and other mail that must not cause a bounce.
    Null,
    Mailbox(Mailbox),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForwardPath {
    /// `<postmaster>` without a domain, which every server must accept (RFC 5321 §4.5.1).
    Postmaster,
    Mailbox(Mailbox),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// The local part with quoting removed.
    pub local: String,
    /// True when the local part was a quoted string.
    pub quoted: bool,
    pub domain: Domain,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Domain {
    Name(String),
    /// The text between the brackets of an address literal (`[192.0.2.1]`, `[IPv6:...]`).
    Literal(String),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Body {
    #[default]
    SevenBit,
    EightBitMime,
    BinaryMime,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailParams {
    /// RFC 1870 SIZE.
    pub size: Option<u64>,
    /// RFC 6152 / RFC 3030 BODY.
    pub body: Body,
    /// RFC 6531 SMTPUTF8.
    pub smtputf8: bool,
    /// RFC 4954 AUTH=: the submitter's identity as xtext; `<>` when unknown.
    pub auth: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RcptParams {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Not UTF-8, or a control character where none may be.
    BadBytes,
    Unknown(String),
    Syntax(&'static str),
    /// An address that is syntactically wrong or too long.
    Address(&'static str),
    /// A parameter this server does not know or does not accept.
    Parameter(String),
}

impl ParseError {
    /// The reply RFC 5321 §4.2.4 and RFC 3463 give for this error.
    pub fn reply(&self) -> Reply {
        match self {
            ParseError::BadBytes => Reply::new(500, "5.5.2", "Command contains invalid characters"),
            ParseError::Unknown(verb) => Reply::new(500, "5.5.2", format!("Command unrecognized: {}", printable(verb))),
            ParseError::Syntax(usage) => Reply::new(501, "5.5.4", format!("Syntax: {usage}")),
            ParseError::Address(why) => Reply::new(501, "5.1.3", format!("Bad address syntax: {why}")),
            ParseError::Parameter(p) => Reply::new(555, "5.5.4", format!("Unsupported parameter: {}", printable(p))),
        }
    }
}

/// At most 32 printable characters of client input, for echoing in replies.
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(32).collect()
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.quoted {
            f.write_str("\"")?;
            for c in self.local.chars() {
                if c == '"' || c == '\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str("\"")?;
        } else {
            f.write_str(&self.local)?;
        }
        match &self.domain {
            Domain::Name(d) => write!(f, "@{d}"),
            Domain::Literal(l) => write!(f, "@[{l}]"),
        }
    }
}

impl fmt::Display for ReversePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReversePath::Null => Ok(()),
            ReversePath::Mailbox(m) => m.fmt(f),
        }
    }
}

impl fmt::Display for ForwardPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForwardPath::Postmaster => f.write_str("postmaster"),
            ForwardPath::Mailbox(m) => m.fmt(f),
        }
    }
}

impl Mailbox {
    pub fn is_ascii(&self) -> bool {
        self.local.is_ascii()
            && match &self.domain {
                Domain::Name(d) | Domain::Literal(d) => d.is_ascii(),
            }
    }
}

impl ReversePath {
    pub fn is_ascii(&self) -> bool {
        match self {
            ReversePath::Null => true,
            ReversePath::Mailbox(m) => m.is_ascii(),
        }
    }
}

/// Parses one command line (without CRLF).
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    let line = std::str::from_utf8(line).map_err(|_| ParseError::BadBytes)?;
    if line.chars().any(|c| c.is_control() && c != '\t') {
        return Err(ParseError::BadBytes);
    }
    let (verb, rest) = match line.find(' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, ""),
    };
    let no_args = |cmd: Command, usage: &'static str| {
        if rest.trim().is_empty() { Ok(cmd) } else { Err(ParseError::Syntax(usage)) }
    };
    match verb.to_ascii_uppercase().as_str() {
        "EHLO" => Ok(Command::Ehlo(helo_arg(rest, "EHLO domain")?)),
        "HELO" => Ok(Command::Helo(helo_arg(rest, "HELO domain")?)),
        "MAIL" => parse_mail(rest),
        "RCPT" => parse_rcpt(rest),
        "DATA" => no_args(Command::Data, "DATA"),
        "BDAT" => parse_bdat(rest),
        "RSET" => no_args(Command::Rset, "RSET"),
        // NOOP and HELP may carry a string that is ignored (RFC 5321 §4.1.1.9, §4.1.1.8).
        "NOOP" => Ok(Command::Noop),
        "HELP" => Ok(Command::Help),
        "QUIT" => no_args(Command::Quit, "QUIT"),
        "VRFY" => one_arg(rest, "VRFY string").map(Command::Vrfy),
        "EXPN" => one_arg(rest, "EXPN string").map(Command::Expn),
        "STARTTLS" => no_args(Command::StartTls, "STARTTLS"),
        "AUTH" => parse_auth(rest),
        _ => Err(ParseError::Unknown(verb.to_string())),
    }
}

fn helo_arg(rest: &str, usage: &'static str) -> Result<String, ParseError> {
    // Only the first word counts; some clients append comments after the domain.
    let arg = rest.split_whitespace().next().ok_or(ParseError::Syntax(usage))?;
    if arg.len() > MAX_DOMAIN || !arg.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ParseError::Syntax(usage));
    }
    Ok(arg.to_string())
}

fn one_arg(rest: &str, usage: &'static str) -> Result<String, ParseError> {
    let arg = rest.trim();
    if arg.is_empty() { Err(ParseError::Syntax(usage)) } else { Ok(arg.to_string()) }
}

fn parse_auth(rest: &str) -> Result<Command, ParseError> {
    const USAGE: &str = "AUTH mechanism [initial-response]";
    let mut words = rest.split(' ').filter(|w| !w.is_empty());
    let mechanism = words.next().ok_or(ParseError::Syntax(USAGE))?.to_ascii_uppercase();
    let initial = words.next().map(str::to_string);
    if words.next().is_some() {
        return Err(ParseError::Syntax(USAGE));
    }
    Ok(Command::Auth { mechanism, initial })
}

fn parse_bdat(rest: &str) -> Result<Command, ParseError> {
    const USAGE: &str = "BDAT size [LAST]";
    let mut words = rest.split(' ').filter(|w| !w.is_empty());
    let size = words.next().ok_or(ParseError::Syntax(USAGE))?;
    if size.is_empty() || size.len() > 19 || !size.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::Syntax(USAGE));
    }
    let size = size.parse().map_err(|_| ParseError::Syntax(USAGE))?;
    let last = match words.next() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(ParseError::Syntax(USAGE)),
    };
    if words.next().is_some() {
        return Err(ParseError::Syntax(USAGE));
    }
    Ok(Command::Bdat { size, last })
}

/// Strips `keyword:` (case-insensitive), tolerating spaces after the colon as most MTAs do.
fn after_keyword<'a>(rest: &'a str, keyword: &str, usage: &'static str) -> Result<&'a str, ParseError> {
    // Byte-wise: the client may put non-ASCII where the keyword belongs.
    let n = keyword.len();
    match rest.as_bytes().get(..n) {
        Some(head) if head.eq_ignore_ascii_case(keyword.as_bytes()) => Ok(rest[n..].trim_start_matches(' ')),
        _ => Err(ParseError::Syntax(usage)),
    }
}

fn parse_mail(rest: &str) -> Result<Command, ParseError> {
    const USAGE: &str = "MAIL FROM:<address> [parameters]";
    let rest = after_keyword(rest, "FROM:", USAGE)?;
    let (path, params) = split_path(rest, USAGE)?;
    let from = if path.is_empty() { ReversePath::Null } else { ReversePath::Mailbox(parse_mailbox(path)?) };
    let mut out = MailParams::default();
    let mut seen: Vec<String> = Vec::new();
    for (key, value) in esmtp_params(params)? {
        if seen.contains(&key) {
            return Err(ParseError::Syntax("each parameter at most once"));
        }
        seen.push(key.clone());
        match (key.as_str(), value) {
            ("SIZE", Some(v)) if !v.is_empty() && v.len() <= 19 && v.bytes().all(|b| b.is_ascii_digit()) => {
                out.size = Some(v.parse().map_err(|_| ParseError::Syntax("SIZE=number"))?);
            }
            ("SIZE", _) => return Err(ParseError::Syntax("SIZE=number")),
            ("BODY", Some(v)) => {
                out.body = match v.to_ascii_uppercase().as_str() {
                    "7BIT" => Body::SevenBit,
                    "8BITMIME" => Body::EightBitMime,
                    "BINARYMIME" => Body::BinaryMime,
                    _ => return Err(ParseError::Parameter(format!("BODY={v}"))),
                };
            }
            ("SMTPUTF8", None) => out.smtputf8 = true,
            ("AUTH", Some(v)) => out.auth = Some(v.to_string()),
            _ => return Err(ParseError::Parameter(key)),
        }
    }
    Ok(Command::Mail { from, params: out })
}

fn parse_rcpt(rest: &str) -> Result<Command, ParseError> {
    const USAGE: &str = "RCPT TO:<address> [parameters]";
    let rest = after_keyword(rest, "TO:", USAGE)?;
    let (path, params) = split_path(rest, USAGE)?;
    let to = if path.eq_ignore_ascii_case("postmaster") {
        ForwardPath::Postmaster
    } else if path.is_empty() {
        return Err(ParseError::Address("an empty recipient"));
    } else {
        ForwardPath::Mailbox(parse_mailbox(path)?)
    };
    if let Some((key, _)) = esmtp_params(params)?.into_iter().next() {
        return Err(ParseError::Parameter(key));
    }
    Ok(Command::Rcpt { to, params: RcptParams {} })
}

/// Splits `<path> params` into the text between the brackets (source route removed) and the
/// parameter text. Quoted strings may contain `>`.
fn split_path<'a>(s: &'a str, usage: &'static str) -> Result<(&'a str, &'a str), ParseError> {
    let inner = s.strip_prefix('<').ok_or(ParseError::Syntax(usage))?;
    let mut in_quote = false;
    let mut escaped = false;
    let mut end = None;
    for (i, c) in inner.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quote => escaped = true,
            '"' => in_quote = !in_quote,
            '>' if !in_quote => {
                end = Some(i);
                break;
            }
            _ => {}
        }
    }
    let end = end.ok_or(ParseError::Syntax(usage))?;
    if end + 2 > MAX_PATH {
        return Err(ParseError::Address("path longer than 256 octets"));
    }
    let path = &inner[..end];
    let params = &inner[end + 1..];
    if !params.is_empty() && !params.starts_with(' ') {
        return Err(ParseError::Syntax(usage));
    }
    // RFC 5321 §4.1.2 and Appendix C: a source route `@a,@b:` must be accepted and ignored.
    let path = match path.strip_prefix('@') {
        Some(route) => {
            let (hops, mailbox) = route.split_once(':').ok_or(ParseError::Address("a source route without `:`"))?;
            for hop in hops.split(',') {
                let hop = hop.strip_prefix('@').unwrap_or(hop);
                if !is_domain(hop) {
                    return Err(ParseError::Address("a bad source route"));
                }
            }
            mailbox
        }
        None => path,
    };
    Ok((path, params))
}

/// RFC 5321 `Mailbox = Local-part "@" ( Domain / address-literal )`.
fn parse_mailbox(s: &str) -> Result<Mailbox, ParseError> {
    let (local, quoted, rest) = if let Some(body) = s.strip_prefix('"') {
        let mut local = String::new();
        let mut chars = body.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    end = Some(i);
                    break;
                }
                '\\' => match chars.next() {
                    Some((_, e)) if (' '..='~').contains(&e) => local.push(e),
                    _ => return Err(ParseError::Address("a bad quoted pair")),
                },
                c if c == ' ' || c.is_ascii_graphic() || !c.is_ascii() => local.push(c),
                _ => return Err(ParseError::Address("a bad character in a quoted local part")),
            }
        }
        let end = end.ok_or(ParseError::Address("an unterminated quoted local part"))?;
        (local, true, &body[end + 1..])
    } else {
        let at = s.rfind('@').ok_or(ParseError::Address("no @"))?;
        let local = &s[..at];
        if !is_dot_string(local) {
            return Err(ParseError::Address("a bad local part"));
        }
        (local.to_string(), false, &s[at..])
    };
    if local.len() > MAX_LOCAL_PART {
        return Err(ParseError::Address("local part longer than 64 octets"));
    }
    let domain = rest.strip_prefix('@').ok_or(ParseError::Address("no @"))?;
    let domain = if let Some(lit) = domain.strip_prefix('[') {
        let lit = lit.strip_suffix(']').ok_or(ParseError::Address("an unterminated address literal"))?;
        if lit.is_empty() || !lit.chars().all(|c| c.is_ascii_graphic() && c != '[' && c != ']' && c != '\\') {
            return Err(ParseError::Address("a bad address literal"));
        }
        Domain::Literal(lit.to_string())
    } else {
        if !is_domain(domain) {
            return Err(ParseError::Address("a bad domain"));
        }
        Domain::Name(domain.to_string())
    };
    Ok(Mailbox { local, quoted, domain })
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

fn is_dot_string(s: &str) -> bool {
    !s.is_empty() && s.split('.').all(|atom| !atom.is_empty() && atom.chars().all(is_atext))
}

/// RFC 5321 `Domain`, with U-labels allowed for SMTPUTF8 (RFC 6531) and a root dot tolerated.
fn is_domain(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= MAX_DOMAIN
        && s.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || !c.is_ascii())
        })
}

/// RFC 5321 `esmtp-param *(SP esmtp-param)`, keywords uppercased.
fn esmtp_params(s: &str) -> Result<Vec<(String, Option<&str>)>, ParseError> {
    let mut out = Vec::new();
    for word in s.split(' ').filter(|w| !w.is_empty()) {
        let (key, value) = match word.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (word, None),
        };
        let key_ok = key.starts_with(|c: char| c.is_ascii_alphanumeric())
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        let value_ok = value.is_none_or(|v| !v.is_empty() && v.chars().all(|c| (c.is_ascii_graphic() && c != '=') || !c.is_ascii()));
        if !key_ok || !value_ok {
            return Err(ParseError::Syntax("parameters are KEYWORD[=value]"));
        }
        out.push((key.to_ascii_uppercase(), value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mailbox(local: &str, domain: &str) -> Mailbox {
        Mailbox { local: local.into(), quoted: false, domain: Domain::Name(domain.into()) }
    }

    #[test]
    fn verbs_are_case_insensitive() {
        assert_eq!(parse(b"ehlo client.example").unwrap(), Command::Ehlo("client.example".into()));
        assert_eq!(parse(b"QuIt").unwrap(), Command::Quit);
        assert_eq!(parse(b"NOOP whatever").unwrap(), Command::Noop);
        assert_eq!(parse(b"BDAT 100 last").unwrap(), Command::Bdat { size: 100, last: true });
        assert!(matches!(parse(b"FOO bar"), Err(ParseError::Unknown(_))));
        assert!(matches!(parse(b"DATA now"), Err(ParseError::Syntax(_))));
        assert!(matches!(parse(b"EHLO"), Err(ParseError::Syntax(_))));
    }

    #[test]
    fn mail_from() {
        assert_eq!(
            parse(b"MAIL FROM:<a@b.example> SIZE=1000 BODY=8BITMIME").unwrap(),
            Command::Mail {
                from: ReversePath::Mailbox(mailbox("a", "b.example")),
                params: MailParams { size: Some(1000), body: Body::EightBitMime, ..Default::default() },
            }
        );
        assert_eq!(
            parse(b"mail from: <>").unwrap(),
            Command::Mail { from: ReversePath::Null, params: MailParams::default() }
        );
        assert!(matches!(parse(b"MAIL FROM:<a@b> RET=FULL"), Err(ParseError::Parameter(_))));
        assert!(matches!(parse(b"MAIL FROM:<a@b> SIZE=x"), Err(ParseError::Syntax(_))));
        assert!(matches!(parse(b"MAIL FROM:<a@b> SIZE=1 SIZE=2"), Err(ParseError::Syntax(_))));
        assert!(matches!(parse(b"MAIL FROM:a@b"), Err(ParseError::Syntax(_))));
        assert!(matches!(parse(b"MAIL TO:<a@b>"), Err(ParseError::Syntax(_))));
        assert!(matches!(parse(b"MAIL FROM:<a@b>x"), Err(ParseError::Syntax(_))));
    }

    #[test]
    fn rcpt_shapes() {
        assert_eq!(parse(b"RCPT TO:<Postmaster>").unwrap(), Command::Rcpt { to: ForwardPath::Postmaster, params: RcptParams {} });
        let Command::Rcpt { to: ForwardPath::Mailbox(m), .. } = parse(b"RCPT TO:<@relay.example,@b.example:bob@example.test>").unwrap() else {
            panic!()
        };
        assert_eq!(m, mailbox("bob", "example.test"));
        let Command::Rcpt { to: ForwardPath::Mailbox(m), .. } = parse(br#"RCPT TO:<"user@remote"@example.test>"#).unwrap() else {
            panic!()
        };
        assert!(m.quoted);
        assert_eq!(m.local, "user@remote");
        assert_eq!(m.to_string(), r#""user@remote"@example.test"#);
        let Command::Rcpt { to: ForwardPath::Mailbox(m), .. } = parse(b"RCPT TO:<user@[192.0.2.1]>").unwrap() else { panic!() };
        assert_eq!(m.domain, Domain::Literal("192.0.2.1".into()));
        assert!(matches!(parse(b"RCPT TO:<>"), Err(ParseError::Address(_))));
        assert!(matches!(parse(b"RCPT TO:<bob>"), Err(ParseError::Address(_))));
        assert!(matches!(parse(b"RCPT TO:<bob@>"), Err(ParseError::Address(_))));
        assert!(matches!(parse(b"RCPT TO:<a..b@example.test>"), Err(ParseError::Address(_))));
        assert!(matches!(parse(b"RCPT TO:<a@b> NOTIFY=NEVER"), Err(ParseError::Parameter(_))));
        let long = format!("RCPT TO:<{}@example.test>", "a".repeat(65));
        assert!(matches!(parse(long.as_bytes()), Err(ParseError::Address(_))));
    }

    #[test]
    fn utf8_addresses_parse() {
        let Command::Rcpt { to: ForwardPath::Mailbox(m), .. } = parse("RCPT TO:<jösé@exämple.test>".as_bytes()).unwrap() else {
            panic!()
        };
        assert!(!m.is_ascii());
    }

    #[test]
    fn non_ascii_where_the_keyword_belongs() {
        // Found by the fuzzer: slicing inside a UTF-8 character panicked.
        assert!(matches!(parse("RCPT \"x\u{5c6}\"@2TO:<a@b>".as_bytes()), Err(ParseError::Syntax(_))));
        assert!(matches!(parse("MAIL FRÖM:<a@b>".as_bytes()), Err(ParseError::Syntax(_))));
    }

    #[test]
    fn control_characters_and_bad_utf8_are_refused() {
        assert_eq!(parse(b"NOOP \x00"), Err(ParseError::BadBytes));
        assert_eq!(parse(b"NOOP \xff"), Err(ParseError::BadBytes));
    }
}
