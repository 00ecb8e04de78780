//! What a filter sends (`SMFIR_*` in mfdef.h): [`Reply::decode`] checks every field before the
//! session sees it; [`Reply::encode`] writes the same bytes for the test milters and the fuzzer.
//!
//! Checks, so a modification can be applied without further thought: header names are
//! printable ASCII without a colon; header values may be folded (a line break must be followed
//! by a space or tab — a filter cannot inject a header line) and a bare LF is turned into CRLF;
//! addresses, ESMTP arguments and quarantine reasons hold no line breaks; an SMTP reply is
//! 4xx or 5xx, each line with the same code, at most [`MAX_REPLY_LINES`] lines.

use super::{Actions, Cursor, DecodeError, EncodeError, MacroStage, OptNeg, Protocol, SymList, frame, put_str};

/// libmilter's `smfi_setmlreply` allows 32 lines; so do we.
pub const MAX_REPLY_LINES: usize = 32;

/// One reply or modification from a filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `O`: the filter's version, the actions it wants, the protocol flags it chose, and the
    /// macros it asks for (its symbol lists).
    OptNeg(OptNeg),
    /// `a`: accept — no more filtering of this message (of this connection, at connect/HELO).
    Accept,
    /// `c`: go on (at end of message: accept).
    Continue,
    /// `r`: refuse (the recipient, at RCPT; the message or connection otherwise).
    Reject,
    /// `t`: refuse temporarily, with the same scope as reject.
    Tempfail,
    /// `d`: accept the message, then drop it.
    Discard,
    /// `s`: send no more body chunks (only after one; we offer SKIP).
    Skip,
    /// `p`: still working (at end of message).
    Progress,
    /// `f`: fail the connection (sendmail answers 421).
    ConnFail,
    /// `4`: the filter is shutting down (421 and close).
    Shutdown,
    /// `y`: refuse with this SMTP reply (4xx: temporarily; 5xx: for good).
    ReplyCode(SmtpReply),
    /// `l`: a symbol list on its own (libmilter sends them inside its OPTNEG answer instead).
    SetSymList(SymList),
    /// A change to the message, only at end of message.
    Modify(Modification),
}

/// The SMTP reply a filter chose (`smfi_setreply`, `smfi_setmlreply`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpReply {
    /// 400–599.
    pub code: u16,
    /// The text of each line after the code and separator, usually starting with the enhanced
    /// status code (`5.7.1 Spam message rejected`).
    pub lines: Vec<String>,
}

impl SmtpReply {
    pub fn is_temporary(&self) -> bool {
        self.code < 500
    }
}

/// A change a filter asks for at end of message, in the order it sent them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Modification {
    /// `h`: append a header (value without the space after the colon, folding as CRLF+WSP).
    AddHeader { name: String, value: Vec<u8> },
    /// `m`: change the `index`-th (1-based) header called `name`; an empty value deletes it.
    /// Sendmail adds the header when there is no such occurrence.
    ChangeHeader { index: u32, name: String, value: Vec<u8> },
    /// `i`: insert a header at position `index` (0 = before the first) among all headers.
    InsertHeader { index: u32, name: String, value: Vec<u8> },
    /// `b`: a chunk of the new body; the chunks of one end of message concatenated replace it.
    ReplaceBody(Vec<u8>),
    /// `+` (no arguments) or `2`: add a recipient, with its ESMTP arguments.
    AddRcpt { rcpt: String, args: Option<String> },
    /// `-`: remove a recipient.
    DelRcpt(String),
    /// `e`: change the envelope sender, with its ESMTP arguments.
    ChangeFrom { from: String, args: Option<String> },
    /// `q`: hold the message in the quarantine, for this reason.
    Quarantine(String),
}

impl Reply {
    /// Reads one reply from a packet's code and data.
    pub fn decode(code: u8, data: &[u8]) -> Result<Reply, DecodeError> {
        let mut c = Cursor::new(data, reply_name(code));
        // Actions without data: sendmail ignores anything after the code, and so do we.
        let reply = match code {
            b'a' => return Ok(Reply::Accept),
            b'c' => return Ok(Reply::Continue),
            b'r' => return Ok(Reply::Reject),
            b't' => return Ok(Reply::Tempfail),
            b'd' => return Ok(Reply::Discard),
            b's' => return Ok(Reply::Skip),
            b'p' => return Ok(Reply::Progress),
            b'f' => return Ok(Reply::ConnFail),
            b'4' => return Ok(Reply::Shutdown),
            b'O' => Reply::OptNeg(decode_optneg(&mut c)?),
            b'l' => Reply::SetSymList(decode_symlist(&mut c)?),
            b'y' => Reply::ReplyCode(parse_smtp_reply(c.str()?)?),
            _ => Reply::Modify(decode_modification(code, &mut c)?),
        };
        c.end()?;
        Ok(reply)
    }

    /// Appends this reply as one packet.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let mut data = Vec::new();
        let code = match self {
            Reply::Accept => b'a',
            Reply::Continue => b'c',
            Reply::Reject => b'r',
            Reply::Tempfail => b't',
            Reply::Discard => b'd',
            Reply::Skip => b's',
            Reply::Progress => b'p',
            Reply::ConnFail => b'f',
            Reply::Shutdown => b'4',
            Reply::OptNeg(o) => {
                for n in [o.version, o.actions.0, o.protocol.0] {
                    data.extend_from_slice(&n.to_be_bytes());
                }
                for s in &o.symlists {
                    encode_symlist(s, &mut data)?;
                }
                b'O'
            }
            Reply::SetSymList(s) => {
                encode_symlist(s, &mut data)?;
                b'l'
            }
            Reply::ReplyCode(r) => {
                let sep = |i| if i + 1 == r.lines.len() { ' ' } else { '-' };
                let lines: Vec<String> = r.lines.iter().enumerate().map(|(i, l)| format!("{}{}{l}", r.code, sep(i))).collect();
                put_str(&mut data, lines.join("\r\n").as_bytes(), "reply")?;
                b'y'
            }
            Reply::Modify(m) => encode_modification(m, &mut data)?,
        };
        frame(code, &data, out)
    }
}

fn reply_name(code: u8) -> &'static str {
    match code {
        b'O' => "OPTNEG answer",
        b'l' => "symbol list",
        b'y' => "reply code",
        b'h' | b'm' | b'i' => "header change",
        b'+' | b'2' | b'-' => "recipient change",
        b'e' => "sender change",
        b'q' => "quarantine",
        _ => "reply",
    }
}

fn decode_optneg(c: &mut Cursor<'_>) -> Result<OptNeg, DecodeError> {
    let (version, actions, protocol) = (c.u32()?, Actions(c.u32()?), Protocol(c.u32()?));
    let mut symlists = Vec::new();
    while !c.is_empty() {
        symlists.push(decode_symlist(c)?);
    }
    Ok(OptNeg { version, actions, protocol, symlists })
}

fn decode_symlist(c: &mut Cursor<'_>) -> Result<SymList, DecodeError> {
    let stage = MacroStage::from_u32(c.u32()?).ok_or(DecodeError::Malformed("symbol list"))?;
    let list = c.str()?;
    if list.bytes().any(|b| !(b.is_ascii_graphic() || b == b' ')) {
        return Err(DecodeError::Malformed("symbol list"));
    }
    Ok(SymList { stage, names: list.split_ascii_whitespace().map(str::to_string).collect() })
}

fn encode_symlist(s: &SymList, data: &mut Vec<u8>) -> Result<(), EncodeError> {
    data.extend_from_slice(&(s.stage as u32).to_be_bytes());
    put_str(data, s.names.join(" ").as_bytes(), "symbol list")
}

fn decode_modification(code: u8, c: &mut Cursor<'_>) -> Result<Modification, DecodeError> {
    Ok(match code {
        b'h' => Modification::AddHeader { name: header_name(c)?, value: header_value(c)? },
        b'm' => Modification::ChangeHeader { index: c.u32()?, name: header_name(c)?, value: header_value(c)? },
        b'i' => Modification::InsertHeader { index: c.u32()?, name: header_name(c)?, value: header_value(c)? },
        b'b' => Modification::ReplaceBody(c.rest().to_vec()),
        b'+' => Modification::AddRcpt { rcpt: line(c, false)?, args: None },
        b'2' => Modification::AddRcpt { rcpt: line(c, false)?, args: optional_args(c)? },
        b'-' => Modification::DelRcpt(line(c, false)?),
        b'e' => Modification::ChangeFrom { from: line(c, true)?, args: optional_args(c)? },
        b'q' => Modification::Quarantine(line(c, false)?),
        other => return Err(DecodeError::UnknownCode(other as char)),
    })
}

fn encode_modification(m: &Modification, data: &mut Vec<u8>) -> Result<u8, EncodeError> {
    let header = |data: &mut Vec<u8>, index: Option<u32>, name: &str, value: &[u8]| {
        if let Some(i) = index {
            data.extend_from_slice(&i.to_be_bytes());
        }
        put_str(data, name.as_bytes(), "header name")?;
        put_str(data, value, "header value")
    };
    let with_args = |data: &mut Vec<u8>, first: &str, args: &Option<String>| {
        put_str(data, first.as_bytes(), "address")?;
        args.as_ref().map_or(Ok(()), |a| put_str(data, a.as_bytes(), "arguments"))
    };
    Ok(match m {
        Modification::AddHeader { name, value } => header(data, None, name, value).map(|_| b'h')?,
        Modification::ChangeHeader { index, name, value } => header(data, Some(*index), name, value).map(|_| b'm')?,
        Modification::InsertHeader { index, name, value } => header(data, Some(*index), name, value).map(|_| b'i')?,
        Modification::ReplaceBody(chunk) => {
            data.extend_from_slice(chunk);
            b'b'
        }
        Modification::AddRcpt { rcpt, args } => with_args(data, rcpt, args).map(|_| if args.is_some() { b'2' } else { b'+' })?,
        Modification::DelRcpt(rcpt) => put_str(data, rcpt.as_bytes(), "address").map(|_| b'-')?,
        Modification::ChangeFrom { from, args } => with_args(data, from, args).map(|_| b'e')?,
        Modification::Quarantine(reason) => put_str(data, reason.as_bytes(), "reason").map(|_| b'q')?,
    })
}

/// RFC 5322 §2.2: printable ASCII except the colon.
fn header_name(c: &mut Cursor<'_>) -> Result<String, DecodeError> {
    let name = c.str()?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
        return Err(DecodeError::Malformed("header name"));
    }
    Ok(name.to_string())
}

/// A header value as we store it: line breaks are CRLF and each is followed by a space or tab
/// (RFC 5322 §2.2.3 folding), so the value cannot start a new header line. A bare LF (as many
/// milters fold) becomes CRLF; a bare CR, or a break that ends the value, is refused.
fn header_value(c: &mut Cursor<'_>) -> Result<Vec<u8>, DecodeError> {
    let raw = c.bytes()?;
    let bad = DecodeError::Malformed("header value");
    let mut out = Vec::with_capacity(raw.len() + 8);
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        let newline = match b {
            b'\r' if raw.get(i + 1) == Some(&b'\n') => 2,
            b'\r' => return Err(bad),
            b'\n' => 1,
            _ => 0,
        };
        if newline == 0 {
            out.push(b);
            i += 1;
            continue;
        }
        i += newline;
        if !matches!(raw.get(i), Some(b' ' | b'\t')) {
            return Err(bad);
        }
        out.extend_from_slice(b"\r\n");
    }
    Ok(out)
}

/// An address, ESMTP arguments or a reason: one line of text. `may_be_empty` for the null
/// sender `<>` written as nothing.
fn line(c: &mut Cursor<'_>, may_be_empty: bool) -> Result<String, DecodeError> {
    let s = c.str()?;
    if (s.is_empty() && !may_be_empty) || s.chars().any(char::is_control) {
        return Err(DecodeError::Malformed("address or text"));
    }
    Ok(s.to_string())
}

fn optional_args(c: &mut Cursor<'_>) -> Result<Option<String>, DecodeError> {
    if c.is_empty() {
        return Ok(None);
    }
    let args = line(c, true)?;
    Ok((!args.is_empty()).then_some(args))
}

/// `550 5.7.1 text`, or several lines `550-...\r\n550 ...` with one code, 4xx or 5xx.
fn parse_smtp_reply(text: &str) -> Result<SmtpReply, DecodeError> {
    let bad = DecodeError::Malformed("reply code");
    let mut code = None;
    let mut lines = Vec::new();
    let count = text.split("\r\n").count();
    if count > MAX_REPLY_LINES {
        return Err(bad);
    }
    for (i, l) in text.split("\r\n").enumerate() {
        let (digits, rest) = l.split_at_checked(3).ok_or(bad.clone())?;
        let n: u16 = digits.parse().map_err(|_| bad.clone())?;
        if !(400..600).contains(&n) || !digits.bytes().all(|b| b.is_ascii_digit()) || code.is_some_and(|c| c != n) {
            return Err(bad);
        }
        code = Some(n);
        let last = i + 1 == count;
        let text = match rest.as_bytes().first() {
            None => "",
            Some(b' ') if last => &rest[1..],
            Some(b'-') if !last => &rest[1..],
            _ => return Err(bad),
        };
        if text.chars().any(|ch| ch.is_control() && ch != '\t') {
            return Err(bad);
        }
        lines.push(text.to_string());
    }
    Ok(SmtpReply { code: code.ok_or(bad)?, lines })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_wire(wire: &[u8]) -> Result<Reply, DecodeError> {
        let mut f = super::super::Framer::default();
        f.push(wire);
        let (code, data) = f.next_packet()?.expect("whole packet");
        Reply::decode(code, &data)
    }

    fn round_trip(r: Reply) {
        let mut wire = Vec::new();
        r.encode(&mut wire).unwrap();
        assert_eq!(decode_wire(&wire), Ok(r));
    }

    fn m(m: Modification) -> Reply {
        Reply::Modify(m)
    }

    #[test]
    fn every_reply_round_trips() {
        for r in [Reply::Accept, Reply::Continue, Reply::Reject, Reply::Tempfail, Reply::Discard, Reply::Skip,
            Reply::Progress, Reply::ConnFail, Reply::Shutdown]
        {
            round_trip(r);
        }
        round_trip(Reply::OptNeg(OptNeg { version: 6, actions: Actions::ALL, protocol: Protocol(0x1fffff), symlists: vec![] }));
        round_trip(Reply::OptNeg(OptNeg {
            version: 6,
            actions: Actions::ADD_HEADERS,
            protocol: Protocol::NO_HELO,
            symlists: vec![
                SymList { stage: MacroStage::Mail, names: vec!["{auth_authen}".into(), "i".into()] },
                SymList { stage: MacroStage::Eoh, names: vec![] },
            ],
        }));
        round_trip(Reply::SetSymList(SymList { stage: MacroStage::Connect, names: vec!["j".into()] }));
        round_trip(Reply::ReplyCode(SmtpReply { code: 550, lines: vec!["5.7.1 Spam".into()] }));
        round_trip(Reply::ReplyCode(SmtpReply { code: 451, lines: vec!["4.7.1 a".into(), "4.7.1 b".into()] }));
        round_trip(m(Modification::AddHeader { name: "X-Spam".into(), value: b"yes\r\n\tscore=9".to_vec() }));
        round_trip(m(Modification::ChangeHeader { index: 1, name: "Subject".into(), value: b"[SPAM] hi".to_vec() }));
        round_trip(m(Modification::ChangeHeader { index: 2, name: "X-Old".into(), value: vec![] }));
        round_trip(m(Modification::InsertHeader { index: 0, name: "X-First".into(), value: b"1".to_vec() }));
        round_trip(m(Modification::ReplaceBody(b"new body\r\n".to_vec())));
        round_trip(m(Modification::ReplaceBody(vec![])));
        round_trip(m(Modification::AddRcpt { rcpt: "<c@example.org>".into(), args: None }));
        round_trip(m(Modification::AddRcpt { rcpt: "<c@example.org>".into(), args: Some("NOTIFY=NEVER".into()) }));
        round_trip(m(Modification::DelRcpt("<b@example.org>".into())));
        round_trip(m(Modification::ChangeFrom { from: "<bounce@example.org>".into(), args: None }));
        round_trip(m(Modification::ChangeFrom { from: "<>".into(), args: Some("SIZE=10".into()) }));
        round_trip(m(Modification::Quarantine("virus found".into())));
    }

    /// A packet as libmilter writes it: the length, then code and data.
    fn pkt(body: &[u8]) -> Vec<u8> {
        let mut w = (body.len() as u32).to_be_bytes().to_vec();
        w.extend_from_slice(body);
        w
    }

    #[test]
    fn libmilter_bytes_decode() {
        assert_eq!(decode_wire(&pkt(b"c")), Ok(Reply::Continue));
        assert_eq!(
            decode_wire(&pkt(b"hX-Test\0a\n\tb\0")),
            Ok(m(Modification::AddHeader { name: "X-Test".into(), value: b"a\r\n\tb".to_vec() }))
        );
        assert_eq!(
            decode_wire(&pkt(b"2<x@y>\0NOTIFY=NEVER\0")),
            Ok(m(Modification::AddRcpt { rcpt: "<x@y>".into(), args: Some("NOTIFY=NEVER".into()) }))
        );
        assert_eq!(decode_wire(&pkt(b"2<x@y>\0")), Ok(m(Modification::AddRcpt { rcpt: "<x@y>".into(), args: None })));
        let y = decode_wire(&pkt(b"y554 5.7.1 Go away now\0")).unwrap();
        assert_eq!(y, Reply::ReplyCode(SmtpReply { code: 554, lines: vec!["5.7.1 Go away now".into()] }));
        // libmilter's OPTNEG answer with a symbol list for MAIL.
        let wire = pkt(b"O\0\0\0\x06\0\0\0\x01\0\0\0\x02\0\0\0\x02{mail_addr} i\0");
        let Ok(Reply::OptNeg(o)) = decode_wire(&wire) else { panic!("{:?}", decode_wire(&wire)) };
        assert_eq!((o.version, o.actions, o.protocol), (6, Actions::ADD_HEADERS, Protocol::NO_HELO));
        assert_eq!(o.symlists, vec![SymList { stage: MacroStage::Mail, names: vec!["{mail_addr}".into(), "i".into()] }]);
    }

    #[test]
    fn malformed_replies_are_refused() {
        let cases: &[(u8, &[u8])] = &[
            (b'h', b"X-Test\0"),                    // no value
            (b'h', b"X Test\0v\0"),                 // space in name
            (b'h', b"X:T\0v\0"),                    // colon in name
            (b'h', b"\0v\0"),                       // empty name
            (b'h', b"X\0a\r\nBcc: x\0"),            // injected header line
            (b'h', b"X\0a\nBcc: x\0"),              // same with LF
            (b'h', b"X\0a\rb\0"),                   // bare CR
            (b'h', b"X\0a\r\n\0"),                  // break at the end
            (b'h', b"X\0v\0extra"),                 // trailing bytes
            (b'm', b"\0\0\0X\0v\0"),                // index cut short
            (b'i', b"\0\0"),                        // index cut short
            (b'+', b"\0"),                          // empty address
            (b'+', b"<a\r\n>\0"),                   // line break in address
            (b'-', b"<a>"),                         // no terminator
            (b'e', b"<a>\0x\ny\0"),                 // line break in arguments
            (b'q', b"\0"),                          // empty reason
            (b'y', b"250 ok\0"),                    // not a refusal
            (b'y', b"55 x\0"),                      // short code
            (b'y', b"550-a\r\n551 b\0"),            // two codes
            (b'y', b"550 a\r\n550 b\0"),            // continuation marker missing
            (b'y', b"550x\0"),                      // bad separator
            (b'y', b"+50 x\0"),                     // sign is not a digit
            (b'y', b"550 a\x07\0"),                 // control character
            (b'O', b"\0\0\0\x06\0\0"),              // cut short
            (b'O', b"\0\0\0\x06\0\0\0\0\0\0\0\0\0\0\0\x09x\0"), // unknown macro stage
            (b'l', b"\0\0\0\x01a\x01b\0"),          // control character in the list
        ];
        for (code, data) in cases {
            assert!(Reply::decode(*code, data).is_err(), "{:?} {:?}", *code as char, String::from_utf8_lossy(data));
        }
        assert_eq!(Reply::decode(b'Z', b""), Err(DecodeError::UnknownCode('Z')));
        let many = vec!["550-x"; 32].join("\r\n") + "\r\n550 y";
        assert!(parse_smtp_reply(&many).is_err());
    }
}
