//! Message structure for FETCH and SEARCH: ENVELOPE, BODYSTRUCTURE and body sections
//! (RFC 3501 §6.4.5, §7.4.2), from mail-parser's MIME tree.
//!
//! Sections are cut from the raw bytes by the part offsets mail-parser records, so what a
//! client fetches is byte-exact, and RFC822.SIZE equals the length of BODY[].

use mail_parser::{Address, HeaderName, HeaderValue, Message, MessageParser, MessagePart, PartType};

use crate::parser::{Section, SectionPart};
use crate::response::{nstring, string};

/// A parsed message; the parse is reused for every attribute of one FETCH.
pub struct Parsed<'a> {
    raw: &'a [u8],
    msg: Option<Message<'a>>,
}

impl<'a> Parsed<'a> {
    pub fn new(raw: &'a [u8]) -> Parsed<'a> {
        Parsed { raw, msg: MessageParser::default().parse(raw) }
    }

    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The header block, with its terminating blank line.
    pub fn header(&self) -> &[u8] {
        match &self.msg {
            Some(m) => header_of(m),
            None => header_split(self.raw).0,
        }
    }

    pub fn text(&self) -> &[u8] {
        match &self.msg {
            Some(m) => body_of(m),
            None => header_split(self.raw).1,
        }
    }

    pub fn envelope(&self, out: &mut Vec<u8>) {
        match &self.msg {
            Some(m) => envelope(m, out),
            None => out.extend_from_slice(b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"),
        }
    }

    pub fn body_structure(&self, out: &mut Vec<u8>, extended: bool) {
        match &self.msg {
            Some(m) => part_structure(m, 0, out, extended, 0),
            None => {
                let size = self.raw.len();
                let lines = memchr::memchr_iter(b'\n', self.raw).count();
                out.extend_from_slice(
                    format!("(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" {size} {lines})").as_bytes(),
                );
            }
        }
    }

    /// The bytes of a section; None when the part does not exist.
    pub fn section(&self, section: &Section) -> Option<Vec<u8>> {
        let Some(msg) = &self.msg else {
            return match (&section.part[..], &section.text) {
                ([], None) => Some(self.raw.to_vec()),
                ([], Some(SectionPart::Header)) => Some(self.header().to_vec()),
                ([], Some(SectionPart::Text)) | ([1], None) => Some(self.text().to_vec()),
                ([], Some(SectionPart::HeaderFields(f))) => Some(filter_header(self.header(), f, true)),
                ([], Some(SectionPart::HeaderFieldsNot(f))) => Some(filter_header(self.header(), f, false)),
                _ => None,
            };
        };
        if section.part.is_empty() {
            return Some(match &section.text {
                None => self.raw.to_vec(),
                Some(t) => message_section(msg, t, self.raw.len() as u32),
            });
        }
        let (owner, idx) = resolve(msg, &section.part)?;
        let part = owner.parts.get(idx)?;
        let raw = owner.raw_message.as_ref();
        match &section.text {
            None => Some(slice(raw, part.offset_body, part.offset_end).to_vec()),
            Some(SectionPart::Mime) => Some(slice(raw, part.offset_header, part.offset_body).to_vec()),
            Some(t) => match &part.body {
                PartType::Message(nested) => Some(message_section(nested, t, part.offset_end)),
                // RFC 3501 §6.4.5: HEADER/TEXT apply to message/rfc822 parts only.
                _ => Some(Vec::new()),
            },
        }
    }

    /// BINARY[part] (RFC 3516): a leaf part's body with its Content-Transfer-Encoding undone
    /// (a composite part, or the whole message for an empty `part`, as it is). None when the
    /// part does not exist; Err when its encoding is one this server cannot undo.
    pub fn binary(&self, part: &[u32]) -> Result<Option<Vec<u8>>, UnknownCte> {
        let Some((body, encoding)) = self.binary_source(part) else { return Ok(None) };
        Ok(Some(match encoding.as_deref() {
            None | Some("7bit" | "8bit" | "binary") => body.to_vec(),
            Some("base64") => mail_parser::decoders::base64::base64_decode(body).unwrap_or_default(),
            Some("quoted-printable") => mail_parser::decoders::quoted_printable::quoted_printable_decode(body).unwrap_or_default(),
            Some(_) => return Err(UnknownCte),
        }))
    }

    /// Whether [`Parsed::binary`] would refuse the part for its encoding, without decoding it.
    pub fn binary_refused(&self, part: &[u32]) -> bool {
        let encoding = self.binary_source(part).and_then(|(_, e)| e);
        !matches!(encoding.as_deref(), None | Some("7bit" | "8bit" | "binary" | "base64" | "quoted-printable"))
    }

    /// What BINARY reads of a part: its body, and the transfer encoding to undo (lower case;
    /// None for a composite part or the whole message, which go as they are).
    fn binary_source(&self, part: &[u32]) -> Option<(&[u8], Option<String>)> {
        let Some(msg) = &self.msg else {
            return match part {
                [] => Some((self.raw, None)),
                [1] => Some((self.text(), None)),
                _ => None,
            };
        };
        if part.is_empty() {
            return Some((self.raw, None));
        }
        let (owner, idx) = resolve(msg, part)?;
        let p = owner.parts.get(idx)?;
        let body = slice(owner.raw_message.as_ref(), p.offset_body, p.offset_end);
        if matches!(p.body, PartType::Multipart(_) | PartType::Message(_)) {
            return Some((body, None));
        }
        Some((body, mail_parser::MimeHeaders::content_transfer_encoding(p).map(|e| e.trim().to_ascii_lowercase())))
    }

    /// Each header field with this name, for SEARCH: the decoded value (encoded words,
    /// address display names) and the raw value after it, so a search matches either form
    /// (`HEADER Message-ID <x@y>` needs the brackets mail-parser drops).
    pub fn header_values(&self, name: &str) -> Vec<String> {
        let Some(m) = &self.msg else { return Vec::new() };
        let Some(root) = m.parts.first() else { return Vec::new() };
        root.headers
            .iter()
            .filter(|h| h.name.as_str().eq_ignore_ascii_case(name))
            .map(|h| {
                let raw = String::from_utf8_lossy(&unfold(slice(m.raw_message.as_ref(), h.offset_start, h.offset_end)))
                    .trim()
                    .to_string();
                let decoded = match &h.value {
                    HeaderValue::Text(t) => t.to_string(),
                    HeaderValue::TextList(l) => l.join(" "),
                    HeaderValue::Address(a) => address_text(a),
                    _ => String::new(),
                };
                format!("{decoded}\n{raw}")
            })
            .collect()
    }

    /// The day of the Date header in its own time zone (RFC 3501 §6.4.4 SENT*).
    pub fn sent_day(&self) -> Option<chrono::NaiveDate> {
        let d = self.msg.as_ref()?.date()?;
        chrono::NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day))
    }

    /// The decoded Subject (encoded words to UTF-8), for SORT; None without one.
    pub fn subject(&self) -> Option<&str> {
        self.msg.as_ref()?.subject()
    }

    /// The Date header as a Unix time (UTC), for SORT DATE; None when missing or invalid.
    pub fn sent_time(&self) -> Option<i64> {
        let m = self.msg.as_ref()?;
        let mut d = *m.date()?;
        // A leap second (RFC 5322 §3.3 allows :60) is the second after :59.
        let leap = u8::from(d.second == 60);
        d.second -= leap;
        if !d.is_valid() {
            return None;
        }
        // mail-parser keeps a numeric zone's hours modulo 24 and its minutes modulo 60, but
        // RFC 5322 §3.3 allows offsets up to ±99:59: take the zone from the header text.
        match m.header_raw("Date").and_then(numeric_zone) {
            Some(Ok(offset)) => Some(d.to_timestamp_local() - offset + i64::from(leap)),
            // Minutes past 59: a Date that cannot be parsed (RFC 5256 §2.2 falls back).
            Some(Err(())) => None,
            // An obsolete zone name (or none), which mail-parser applies itself.
            None => Some(d.to_timestamp() + i64::from(leap)),
        }
    }

    /// The first address of From, To or Cc as SORT sees it (RFC 5256 §3): its addr-mailbox
    /// (the mailbox field ENVELOPE gives it; a group's name for a group) and, for RFC 5957
    /// DISPLAYFROM/DISPLAYTO, its display name or, without one, its addr-spec.
    pub fn first_address(&self, field: AddressField) -> Option<FirstAddress> {
        let m = self.msg.as_ref()?;
        let addr = match field {
            AddressField::From => m.from(),
            AddressField::To => m.to(),
            AddressField::Cc => m.cc(),
        }?;
        let from_addr = |a: &mail_parser::Addr<'_>| {
            // A bare word is the mailbox, as in ENVELOPE (see `one_address`); a phrase of
            // several words is a name without a mailbox.
            let (name, address) = match (a.name.as_deref(), a.address.as_deref()) {
                (Some(n), None) if n.contains(char::is_whitespace) => (Some(n), ""),
                (Some(n), None) => (None, n),
                (n, a) => (n, a?),
            };
            let (local, _) = mailbox_host(address);
            // A display name of spaces is not empty (RFC 5322 §3.2.4 keeps them), as Dovecot.
            let name = name.filter(|n| !n.is_empty());
            Some(FirstAddress { mailbox: local.to_string(), display: name.unwrap_or(address).to_string() })
        };
        match addr {
            Address::List(list) => list.iter().find_map(from_addr),
            Address::Group(groups) => groups.iter().find_map(|g| match &g.name {
                Some(name) => Some(FirstAddress { mailbox: name.to_string(), display: name.to_string() }),
                None => g.addresses.iter().find_map(from_addr),
            }),
        }
    }

    /// The first header field called `name` of the message itself, raw and unfolded.
    fn first_raw(&self, name: &str) -> Option<String> {
        let m = self.msg.as_ref()?;
        let h = m.parts.first()?.headers.iter().find(|h| h.name.as_str().eq_ignore_ascii_case(name))?;
        Some(String::from_utf8_lossy(&unfold(slice(m.raw_message.as_ref(), h.offset_start, h.offset_end))).into_owned())
    }

    /// The first valid msg-id of the Message-ID field, without its brackets, for THREAD.
    pub fn message_id(&self) -> Option<String> {
        msg_ids(&self.first_raw("Message-ID")?).into_iter().next()
    }

    /// The message's references for THREAD=REFERENCES (RFC 5256 §2.2): the valid msg-ids of
    /// References, oldest first; when it has none, the first valid one of In-Reply-To. Only
    /// the last `max` are kept (the nearest ancestors).
    pub fn references(&self, max: usize) -> Vec<String> {
        let mut ids = self.first_raw("References").map(|v| msg_ids(&v)).unwrap_or_default();
        if ids.is_empty() {
            ids = self.first_raw("In-Reply-To").map(|v| msg_ids(&v)).unwrap_or_default();
            ids.truncate(1);
        }
        let drop = ids.len().saturating_sub(max);
        ids.drain(..drop);
        ids
    }

    /// Decoded text of every text part, for SEARCH BODY/TEXT.
    pub fn body_text(&self) -> String {
        let mut s = String::new();
        if let Some(m) = &self.msg {
            collect_text(m, &mut s, 0);
        } else {
            s.push_str(&String::from_utf8_lossy(self.text()));
        }
        s
    }
}

impl Parsed<'_> {
    /// Whether the raw message is text throughout: every part text, HTML, multipart or an
    /// attached message, none base64-encoded. Only then are the words of its raw bytes worth
    /// indexing (for SEARCH TEXT); base64 would fill the index with random words.
    pub fn raw_is_text(&self) -> bool {
        self.msg.as_ref().is_none_or(|m| text_throughout(m, 0))
    }
}

fn text_throughout(m: &Message<'_>, depth: usize) -> bool {
    m.parts.iter().all(|part| {
        part.encoding != mail_parser::Encoding::Base64
            && match &part.body {
                PartType::Text(_) | PartType::Html(_) | PartType::Multipart(_) => true,
                PartType::Message(nested) => depth < MAX_NESTING && text_throughout(nested, depth + 1),
                PartType::Binary(_) | PartType::InlineBinary(_) => false,
            }
    })
}

/// The valid msg-ids (`<left@right>`, RFC 5322 §3.6.4) in a field value, in order, without
/// their brackets and with any white space inside removed; comments and what is not in
/// brackets are skipped, and so is a bracketed id without an "@" between non-empty parts.
pub fn msg_ids(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = value.chars();
    let mut depth = 0usize;
    while let Some(ch) = chars.next() {
        match ch {
            '\\' if depth > 0 => {
                chars.next();
            }
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            '<' if depth == 0 => {
                let mut id = String::new();
                let mut closed = false;
                for ch in chars.by_ref() {
                    match ch {
                        '>' => {
                            closed = true;
                            break;
                        }
                        c if c.is_whitespace() => {}
                        c => id.push(c),
                    }
                }
                let valid = id.rsplit_once('@').is_some_and(|(l, r)| !l.is_empty() && !r.is_empty() && !l.contains('<'));
                if closed && valid {
                    out.push(id);
                }
            }
            _ => {}
        }
    }
    out
}

/// The address fields SORT orders by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressField {
    From,
    To,
    Cc,
}

/// A Content-Transfer-Encoding BINARY cannot undo (RFC 3516 §4.3: `NO [UNKNOWN-CTE]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownCte;

/// What SORT needs of the first address of a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstAddress {
    /// addr-mailbox, as in ENVELOPE.
    pub mailbox: String,
    /// The display name if there is one, else the addr-spec (RFC 5957 §3).
    pub display: String,
}

/// An address's mailbox and host as ENVELOPE splits them: an obsolete source route
/// (`@relay:user@host`) is not part of the mailbox, a missing domain is MISSING_DOMAIN.
fn mailbox_host(address: &str) -> (&str, &str) {
    let (local, host) = match address.rsplit_once('@') {
        Some((l, h)) => (l, h),
        None => (address, "MISSING_DOMAIN"),
    };
    match local.split_once(':') {
        Some((r, l)) if r.starts_with('@') => (l, host),
        _ => (local, host),
    }
}

/// Nesting of message/rfc822 parts followed in structure and text; deeper parts are cut off
/// so a crafted message cannot recurse without bound (mail-parser limits its own nesting too).
const MAX_NESTING: usize = 20;

fn collect_text(m: &Message<'_>, out: &mut String, depth: usize) {
    for part in &m.parts {
        match &part.body {
            PartType::Text(t) | PartType::Html(t) => {
                out.push_str(t);
                out.push('\n');
            }
            PartType::Message(nested) if depth < MAX_NESTING => collect_text(nested, out, depth + 1),
            _ => {}
        }
    }
}

fn slice(raw: &[u8], start: u32, end: u32) -> &[u8] {
    let end = (end as usize).min(raw.len());
    let start = (start as usize).min(end);
    &raw[start..end]
}

fn header_of<'m>(m: &'m Message<'_>) -> &'m [u8] {
    match m.parts.first() {
        Some(p) => slice(m.raw_message.as_ref(), p.offset_header, p.offset_body),
        None => &[],
    }
}

fn body_of<'m>(m: &'m Message<'_>) -> &'m [u8] {
    match m.parts.first() {
        Some(p) => slice(m.raw_message.as_ref(), p.offset_body, p.offset_end.max(m.raw_message.len() as u32)),
        None => &[],
    }
}

/// `end`: where the message ends in its raw bytes (the end of the enclosing message/rfc822
/// part, or of the whole message).
fn message_section(m: &Message<'_>, t: &SectionPart, end: u32) -> Vec<u8> {
    match t {
        SectionPart::Header | SectionPart::Mime => header_of(m).to_vec(),
        // Everything after the header, to the end of this message: a multipart root part
        // ends at its closing boundary, but the epilogue is text of the message too.
        SectionPart::Text => match m.parts.first() {
            Some(p) => slice(m.raw_message.as_ref(), p.offset_body, p.offset_end.max(end)).to_vec(),
            None => Vec::new(),
        },
        SectionPart::HeaderFields(f) => filter_header(header_of(m), f, true),
        SectionPart::HeaderFieldsNot(f) => filter_header(header_of(m), f, false),
    }
}

/// Splits a message without a parse at the first blank line.
fn header_split(raw: &[u8]) -> (&[u8], &[u8]) {
    let mut pos = 0;
    while pos < raw.len() {
        let end = memchr::memchr(b'\n', &raw[pos..]).map_or(raw.len(), |i| pos + i + 1);
        let line = &raw[pos..end];
        if line == b"\r\n" || line == b"\n" {
            return (&raw[..end], &raw[end..]);
        }
        pos = end;
    }
    (raw, &[])
}

/// The header fields named (or, with `keep == false`, not named) in `fields`, followed by the
/// blank line (RFC 3501 §6.4.5 HEADER.FIELDS).
pub fn filter_header(header: &[u8], fields: &[String], keep: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut take = false;
    while pos < header.len() {
        let end = memchr::memchr(b'\n', &header[pos..]).map_or(header.len(), |i| pos + i + 1);
        let line = &header[pos..end];
        pos = end;
        if line == b"\r\n" || line == b"\n" {
            break;
        }
        if !matches!(line.first(), Some(b' ') | Some(b'\t')) {
            let name = line.split(|&c| c == b':').next().unwrap_or_default();
            let name = String::from_utf8_lossy(name);
            let listed = fields.iter().any(|f| f.eq_ignore_ascii_case(name.trim()));
            take = listed == keep && line.contains(&b':');
        }
        if take {
            out.extend_from_slice(line);
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Finds the part a section number names: (the message that holds it, its index).
fn resolve<'m, 'x>(msg: &'m Message<'x>, path: &[u32]) -> Option<(&'m Message<'x>, usize)> {
    let mut owner = msg;
    let mut node: Option<usize> = None;
    for &n in path {
        let n = n as usize;
        // Inside a message/rfc822 part, numbering continues in the enclosed message.
        if let Some(i) = node
            && let PartType::Message(nested) = &owner.parts.get(i)?.body {
                owner = nested;
                node = None;
            }
        let at_root = node.is_none();
        let container = node.unwrap_or(0);
        node = match &owner.parts.get(container)?.body {
            PartType::Multipart(ids) => Some(*ids.get(n.checked_sub(1)?)? as usize),
            // RFC 3501 §6.4.5: a non-multipart message has one part, 1, the body itself (and
            // that body has none); a non-multipart part inside a multipart is its own part 1,
            // as Dovecot answers (`1.1` of a text part is the part).
            _ if n == 1 && (at_root || container != 0) => Some(container),
            _ => return None,
        };
    }
    node.map(|i| (owner, i))
}

fn header_raw<'m>(m: &'m Message<'_>, part: &MessagePart<'_>, name: HeaderName<'_>) -> Option<&'m [u8]> {
    let h = part.headers.iter().find(|h| h.name == name)?;
    Some(trim(slice(m.raw_message.as_ref(), h.offset_start, h.offset_end)))
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !c.is_ascii_whitespace()).map_or(start, |e| e + 1);
    &b[start..end]
}

/// Unfolds a raw header value (RFC 5322 §2.2.3).
fn unfold(b: &[u8]) -> Vec<u8> {
    b.iter().copied().filter(|&c| c != b'\r' && c != b'\n').collect()
}

fn raw_field(out: &mut Vec<u8>, m: &Message<'_>, name: HeaderName<'_>) {
    let root = &m.parts[0];
    nstring(out, header_raw(m, root, name).map(unfold).as_deref());
}

/// ENVELOPE (RFC 3501 §7.4.2): date, subject, from, sender, reply-to, to, cc, bcc,
/// in-reply-to, message-id. Sender and reply-to default to from.
fn envelope(m: &Message<'_>, out: &mut Vec<u8>) {
    if m.parts.is_empty() {
        out.extend_from_slice(b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)");
        return;
    }
    out.push(b'(');
    raw_field(out, m, HeaderName::Date);
    out.push(b' ');
    raw_field(out, m, HeaderName::Subject);
    let from = m.from();
    for (i, addr) in [from, m.sender().or(from), m.reply_to().or(from), m.to(), m.cc(), m.bcc()].into_iter().enumerate() {
        let _ = i;
        out.push(b' ');
        address_list(out, addr);
    }
    out.push(b' ');
    raw_field(out, m, HeaderName::InReplyTo);
    out.push(b' ');
    raw_field(out, m, HeaderName::MessageId);
    out.push(b')');
}

/// A display name: ASCII as is, anything else as an RFC 2047 encoded word, which is what
/// the name was on the wire before mail-parser decoded it.
fn encode_word(s: &str) -> Vec<u8> {
    if s.is_ascii() {
        return s.as_bytes().to_vec();
    }
    format!("=?utf-8?b?{}?=", crate::response::base64_encode(s.as_bytes())).into_bytes()
}

fn address_list(out: &mut Vec<u8>, addr: Option<&Address<'_>>) {
    let Some(addr) = addr else {
        out.extend_from_slice(b"NIL");
        return;
    };
    let mut items = Vec::new();
    match addr {
        Address::List(list) => {
            for a in list {
                one_address(&mut items, a.name.as_deref(), a.address.as_deref());
            }
        }
        Address::Group(groups) => {
            for g in groups {
                // RFC 3501 §7.4.2 group syntax: (NIL NIL "name" NIL) ... (NIL NIL NIL NIL).
                if let Some(name) = &g.name {
                    items.extend_from_slice(b"(NIL NIL ");
                    string(&mut items, &encode_word(name));
                    items.extend_from_slice(b" NIL)");
                }
                for a in &g.addresses {
                    one_address(&mut items, a.name.as_deref(), a.address.as_deref());
                }
                if g.name.is_some() {
                    items.extend_from_slice(b"(NIL NIL NIL NIL)");
                }
            }
        }
    }
    if items.is_empty() {
        out.extend_from_slice(b"NIL");
    } else {
        out.push(b'(');
        out.extend_from_slice(&items);
        out.push(b')');
    }
}

fn one_address(out: &mut Vec<u8>, name: Option<&str>, address: Option<&str>) {
    // mail-parser reads a bare word (`From: d`) as a display name without an address; RFC 3501
    // and Dovecot see the mailbox `d` with its domain missing, and in a phrase of several words
    // (`To: a b`) a name whose mailbox and domain are both missing.
    let (name, address) = match (name, address) {
        (Some(n), None) if n.contains(char::is_whitespace) => (Some(n), Some("MISSING_MAILBOX")),
        (Some(n), None) => (None, Some(n)),
        other => other,
    };
    let Some(address) = address else { return };
    let (local, host) = match address.rsplit_once('@') {
        Some((l, h)) => (l, h),
        None => (address, "MISSING_DOMAIN"),
    };
    // An obsolete source route (`<@relay:user@host>`, RFC 5322 §4.4) is the address's
    // at-domain-list, the second field (RFC 3501 §7.4.2), not part of the mailbox name.
    let (route, local) = match local.split_once(':') {
        Some((r, l)) if r.starts_with('@') => (Some(r), l),
        _ => (None, local),
    };
    out.push(b'(');
    nstring(out, name.map(encode_word).as_deref());
    out.push(b' ');
    nstring(out, route.map(str::as_bytes));
    out.push(b' ');
    string(out, local.as_bytes());
    out.push(b' ');
    string(out, host.as_bytes());
    out.push(b')');
}

fn address_text(a: &Address<'_>) -> String {
    let one = |x: &mail_parser::Addr<'_>| match (&x.name, &x.address) {
        (Some(n), Some(a)) => format!("{n} <{a}>"),
        (None, Some(a)) => a.to_string(),
        (Some(n), None) => n.to_string(),
        (None, None) => String::new(),
    };
    match a {
        Address::List(list) => list.iter().map(one).collect::<Vec<_>>().join(", "),
        // Group names are searchable too (`CC undisclosed-recipients`).
        Address::Group(groups) => groups
            .iter()
            .map(|g| format!("{}: {};", g.name.as_deref().unwrap_or(""), g.addresses.iter().map(one).collect::<Vec<_>>().join(", ")))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// Type names, parameter names and encodings in lower case, as Dovecot and most servers
/// write them (RFC 3501 compares them case-insensitively).
fn lower_quoted(out: &mut Vec<u8>, s: &str) {
    string(out, s.to_ascii_lowercase().as_bytes());
}

/// BODYSTRUCTURE of one part (RFC 3501 §7.4.2); `extended` adds the extension data that
/// BODYSTRUCTURE has and BODY lacks.
fn part_structure(m: &Message<'_>, idx: usize, out: &mut Vec<u8>, extended: bool, depth: usize) {
    let Some(part) = m.parts.get(idx) else { return };
    let raw = m.raw_message.as_ref();
    let ct = part.headers.iter().find(|h| h.name == HeaderName::ContentType).and_then(|h| h.value.as_content_type());
    if let PartType::Multipart(children) = &part.body {
        out.push(b'(');
        for &child in children {
            if depth < MAX_NESTING {
                part_structure(m, child as usize, out, extended, depth + 1);
            }
        }
        out.push(b' ');
        lower_quoted(out, ct.and_then(|c| c.subtype()).unwrap_or("mixed"));
        if extended {
            out.push(b' ');
            params(out, ct.and_then(|c| c.attributes()));
            out.push(b' ');
            disposition(out, m, part);
            out.push(b' ');
            language_location(out, m, part);
        }
        out.push(b')');
        return;
    }
    let (ctype, subtype) = match ct {
        Some(c) => (c.ctype().to_string(), c.subtype().unwrap_or("").to_string()),
        None if matches!(part.body, PartType::Message(_)) => ("message".into(), "rfc822".into()),
        None => ("text".into(), "plain".into()),
    };
    let subtype = if subtype.is_empty() { if ctype.eq_ignore_ascii_case("text") { "plain".into() } else { "octet-stream".into() } } else { subtype };
    out.push(b'(');
    lower_quoted(out, &ctype);
    out.push(b' ');
    lower_quoted(out, &subtype);
    out.push(b' ');
    match ct.and_then(|c| c.attributes()) {
        Some(a) if !a.is_empty() => params(out, Some(a)),
        _ if ctype.eq_ignore_ascii_case("text") => out.extend_from_slice(b"(\"charset\" \"us-ascii\")"),
        _ => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    nstring(out, header_raw(m, part, HeaderName::ContentId).map(unfold).as_deref());
    out.push(b' ');
    nstring(out, header_raw(m, part, HeaderName::ContentDescription).map(unfold).as_deref());
    out.push(b' ');
    let encoding = header_raw(m, part, HeaderName::ContentTransferEncoding)
        .map(|e| String::from_utf8_lossy(e).to_ascii_lowercase())
        .unwrap_or_else(|| "7bit".into());
    string(out, encoding.as_bytes());
    let body = slice(raw, part.offset_body, part.offset_end);
    out.extend_from_slice(format!(" {}", body.len()).as_bytes());
    let lines = memchr::memchr_iter(b'\n', body).count();
    if let PartType::Message(nested) = &part.body {
        if ctype.eq_ignore_ascii_case("message") && subtype.eq_ignore_ascii_case("rfc822") {
            out.push(b' ');
            envelope(nested, out);
            out.push(b' ');
            if depth < MAX_NESTING {
                part_structure(nested, 0, out, extended, depth + 1);
            } else {
                out.extend_from_slice(b"(\"text\" \"plain\" NIL NIL NIL \"7bit\" 0 0)");
            }
            out.extend_from_slice(format!(" {lines}").as_bytes());
        }
    } else if ctype.eq_ignore_ascii_case("text") {
        out.extend_from_slice(format!(" {lines}").as_bytes());
    }
    if extended {
        // body-ext-1part: md5 disposition language location
        out.extend_from_slice(b" ");
        nstring(out, header_raw(m, part, HeaderName::ContentMd5).map(unfold).as_deref());
        out.push(b' ');
        disposition(out, m, part);
        out.push(b' ');
        language_location(out, m, part);
    }
    out.push(b')');
}

fn params(out: &mut Vec<u8>, attrs: Option<&[mail_parser::Attribute<'_>]>) {
    match attrs {
        Some(a) if !a.is_empty() => {
            out.push(b'(');
            for (i, attr) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                lower_quoted(out, &attr.name);
                out.push(b' ');
                string(out, &encode_word(&attr.value));
            }
            out.push(b')');
        }
        _ => out.extend_from_slice(b"NIL"),
    }
}

fn disposition(out: &mut Vec<u8>, _m: &Message<'_>, part: &MessagePart<'_>) {
    let d = part.headers.iter().find(|h| h.name == HeaderName::ContentDisposition).and_then(|h| h.value.as_content_type());
    match d {
        Some(d) => {
            out.push(b'(');
            lower_quoted(out, d.ctype());
            out.push(b' ');
            params(out, d.attributes());
            out.push(b')');
        }
        None => out.extend_from_slice(b"NIL"),
    }
}

fn language_location(out: &mut Vec<u8>, m: &Message<'_>, part: &MessagePart<'_>) {
    // body-fld-lang: a list of language tags (RFC 3501 §9, RFC 3282).
    match header_raw(m, part, HeaderName::ContentLanguage) {
        Some(raw) => {
            let text = String::from_utf8_lossy(&unfold(raw)).into_owned();
            let tags: Vec<&str> = text.split(',').map(str::trim).filter(|t| !t.is_empty()).collect();
            if tags.is_empty() {
                out.extend_from_slice(b"NIL");
            } else {
                out.push(b'(');
                for (i, t) in tags.iter().enumerate() {
                    if i > 0 {
                        out.push(b' ');
                    }
                    string(out, t.as_bytes());
                }
                out.push(b')');
            }
        }
        None => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    nstring(out, header_raw(m, part, HeaderName::ContentLocation).map(unfold).as_deref());
}

/// The offset in seconds east of UTC of a Date header's `+hhmm`/`-hhmm` zone, the word after
/// the time of day (RFC 5322 §3.3): None without one, Err when its minutes are out of range.
fn numeric_zone(date: &str) -> Option<Result<i64, ()>> {
    let mut words = date.split_whitespace().skip_while(|w| !w.contains(':'));
    let zone = words.nth(1)?;
    if !(zone.len() == 5 && (zone.starts_with('+') || zone.starts_with('-')) && zone[1..].bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let (hours, minutes) = (i64::from(digits(&zone[1..3])), i64::from(digits(&zone[3..])));
    if minutes > 59 {
        return Some(Err(()));
    }
    let offset = hours * 3600 + minutes * 60;
    Some(Ok(if zone.starts_with('-') { -offset } else { offset }))
}

/// Two ASCII digits as a number.
fn digits(two: &str) -> u8 {
    two.bytes().fold(0, |n, b| n * 10 + (b - b'0'))
}

#[cfg(test)]
mod tests;
