//! The FETCH command and its attributes (RFC 3501 §6.4.5; RFC 7162 CHANGEDSINCE, VANISHED
//! and MODSEQ; RFC 3516 BINARY).

use super::lexer::Cursor;
use super::{Kind, ParseError, SequenceSet};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchAttr {
    Envelope,
    Flags,
    InternalDate,
    Rfc822,
    Rfc822Header,
    Rfc822Size,
    Rfc822Text,
    /// BODY without a section: BODYSTRUCTURE without extension data.
    Body,
    BodyStructure,
    Uid,
    ModSeq,
    Section { peek: bool, section: Section, partial: Option<(u32, u32)> },
    /// BINARY[part]<partial> (RFC 3516): the part with its transfer encoding undone.
    Binary { peek: bool, part: Vec<u32>, partial: Option<(u32, u32)> },
    /// BINARY.SIZE[part]: the size of that.
    BinarySize(Vec<u32>),
}

impl FetchAttr {
    /// Whether the attribute needs the message text.
    pub fn needs_content(&self) -> bool {
        !matches!(self, FetchAttr::Flags | FetchAttr::InternalDate | FetchAttr::Rfc822Size | FetchAttr::Uid | FetchAttr::ModSeq)
    }

    /// Whether fetching it sets \Seen (RFC 3501 §6.4.5: BODY[...] and RFC822, RFC822.TEXT).
    pub fn sets_seen(&self) -> bool {
        matches!(self, FetchAttr::Rfc822 | FetchAttr::Rfc822Text | FetchAttr::Section { peek: false, .. } | FetchAttr::Binary { peek: false, .. })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Section {
    /// Part numbers, `1.2.3`; empty for the whole message.
    pub part: Vec<u32>,
    pub text: Option<SectionPart>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SectionPart {
    Header,
    HeaderFields(Vec<String>),
    HeaderFieldsNot(Vec<String>),
    Text,
    Mime,
}

impl Section {
    /// The section as the response names it, e.g. `1.HEADER.FIELDS (FROM TO)`.
    pub fn spec(&self) -> String {
        let mut s: Vec<String> = self.part.iter().map(u32::to_string).collect();
        match &self.text {
            None => {}
            Some(SectionPart::Header) => s.push("HEADER".into()),
            Some(SectionPart::Text) => s.push("TEXT".into()),
            Some(SectionPart::Mime) => s.push("MIME".into()),
            Some(SectionPart::HeaderFields(f)) => s.push(format!("HEADER.FIELDS ({})", f.join(" "))),
            Some(SectionPart::HeaderFieldsNot(f)) => s.push(format!("HEADER.FIELDS.NOT ({})", f.join(" "))),
        }
        s.join(".")
    }
}

/// ["UID" SP] "FETCH" SP sequence-set SP (fetch-att / "(" fetch-att *(SP fetch-att) ")" /
/// macro) [SP "(" fetch-modifier *(SP fetch-modifier) ")"] (RFC 3501 §6.4.5, RFC 7162 §3.1.4,
/// §3.2.6)
pub(super) fn command(c: &mut Cursor<'_>, uid: bool) -> Result<Kind, ParseError> {
    c.sp()?;
    let set = SequenceSet::parse(c)?;
    c.sp()?;
    let attrs = parse_fetch_items(c)?;
    let mut changed_since = None;
    let mut vanished = false;
    let mut partial = None;
    // RFC 7162 §3.1.4: FETCH ... (CHANGEDSINCE n); §3.2.6: UID FETCH ... (... VANISHED);
    // RFC 9394 §4: (PARTIAL range).
    if c.eat(b' ') {
        c.expect(b'(')?;
        loop {
            if c.keyword("CHANGEDSINCE") {
                c.sp()?;
                changed_since = Some(c.number()?);
            } else if c.keyword("VANISHED") && uid {
                vanished = true;
            } else if c.keyword("PARTIAL") {
                c.sp()?;
                partial = Some(super::PartialRange::parse(c)?);
            } else {
                return Err(c.err("unknown FETCH modifier"));
            }
            if c.eat(b')') {
                break;
            }
            c.sp()?;
        }
    }
    if vanished && changed_since.is_none() {
        // RFC 7162 §3.2.6: VANISHED needs CHANGEDSINCE.
        return Err(c.err("VANISHED needs CHANGEDSINCE"));
    }
    Ok(Kind::Fetch { uid, set, attrs, changed_since, vanished, partial })
}

/// fetch-att / "(" fetch-att *(SP fetch-att) ")" / ALL / FULL / FAST
pub fn parse_fetch_items(c: &mut Cursor<'_>) -> Result<Vec<FetchAttr>, ParseError> {
    use FetchAttr as F;
    if c.keyword("ALL") {
        return Ok(vec![F::Flags, F::InternalDate, F::Rfc822Size, F::Envelope]);
    }
    if c.keyword("FAST") {
        return Ok(vec![F::Flags, F::InternalDate, F::Rfc822Size]);
    }
    if c.keyword("FULL") {
        return Ok(vec![F::Flags, F::InternalDate, F::Rfc822Size, F::Envelope, F::Body]);
    }
    if !c.eat(b'(') {
        return Ok(vec![attr(c)?]);
    }
    let mut attrs = Vec::new();
    loop {
        attrs.push(attr(c)?);
        if c.eat(b')') {
            return Ok(attrs);
        }
        c.sp()?;
    }
}

fn attr(c: &mut Cursor<'_>) -> Result<FetchAttr, ParseError> {
    use FetchAttr as F;
    // Order matters: longer names first, since keyword() needs a word boundary.
    let simple = [
        ("ENVELOPE", F::Envelope),
        ("FLAGS", F::Flags),
        ("INTERNALDATE", F::InternalDate),
        ("RFC822.HEADER", F::Rfc822Header),
        ("RFC822.SIZE", F::Rfc822Size),
        ("RFC822.TEXT", F::Rfc822Text),
        ("RFC822", F::Rfc822),
        ("BODYSTRUCTURE", F::BodyStructure),
        ("UID", F::Uid),
        ("MODSEQ", F::ModSeq),
    ];
    for (name, a) in simple {
        if c.keyword(name) {
            return Ok(a);
        }
    }
    if c.keyword("BINARY.SIZE") {
        return Ok(F::BinarySize(binary_section(c)?));
    }
    let binary_peek = if c.keyword("BINARY.PEEK") {
        Some(true)
    } else if c.keyword("BINARY") {
        Some(false)
    } else {
        None
    };
    if let Some(peek) = binary_peek {
        let part = binary_section(c)?;
        return Ok(F::Binary { peek, part, partial: partial(c)? });
    }
    let peek = if c.keyword("BODY.PEEK") {
        true
    } else if c.keyword("BODY") {
        false
    } else {
        return Err(c.err("unknown FETCH attribute"));
    };
    if c.peek() != Some(b'[') {
        if peek {
            return Err(c.err("BODY.PEEK needs a section"));
        }
        return Ok(F::Body);
    }
    c.expect(b'[')?;
    let section = section(c)?;
    c.expect(b']')?;
    Ok(F::Section { peek, section, partial: partial(c)? })
}

/// `<start.len>` after a section, if there is one.
fn partial(c: &mut Cursor<'_>) -> Result<Option<(u32, u32)>, ParseError> {
    if !c.eat(b'<') {
        return Ok(None);
    }
    let start = c.number32()?;
    c.expect(b'.')?;
    let len = c.nz_number()?;
    c.expect(b'>')?;
    Ok(Some((start, len)))
}

/// section-binary = "[" [section-part] "]" (RFC 3516 §4.2): part numbers only.
fn binary_section(c: &mut Cursor<'_>) -> Result<Vec<u32>, ParseError> {
    c.expect(b'[')?;
    let mut part = Vec::new();
    while !c.eat(b']') {
        if !part.is_empty() {
            c.expect(b'.')?;
        }
        part.push(c.nz_number()?);
        if part.len() > super::lexer::MAX_DEPTH * 4 {
            return Err(ParseError::TooDeep);
        }
    }
    Ok(part)
}

/// A section spec on its own, as an IMAP URL's `;SECTION=` carries it (RFC 5092 §5, after
/// percent-decoding): `1.2.MIME`, `HEADER.FIELDS (FROM)`, or empty for the whole message.
pub fn parse_section(text: &[u8]) -> Result<Section, ParseError> {
    let mut c = Cursor::new(text);
    let s = section(&mut c)?;
    if !c.at_end() {
        return Err(c.err("unexpected characters after the section"));
    }
    Ok(s)
}

fn section(c: &mut Cursor<'_>) -> Result<Section, ParseError> {
    let mut s = Section::default();
    if c.peek() == Some(b']') || c.at_end() {
        return Ok(s);
    }
    while c.peek().is_some_and(|b| b.is_ascii_digit()) {
        s.part.push(c.nz_number()?);
        if s.part.len() > super::lexer::MAX_DEPTH * 4 {
            return Err(ParseError::TooDeep);
        }
        if !c.eat(b'.') {
            return Ok(s);
        }
    }
    let text = if c.keyword("HEADER.FIELDS.NOT") {
        SectionPart::HeaderFieldsNot(header_list(c)?)
    } else if c.keyword("HEADER.FIELDS") {
        SectionPart::HeaderFields(header_list(c)?)
    } else if c.keyword("HEADER") {
        SectionPart::Header
    } else if c.keyword("TEXT") {
        SectionPart::Text
    } else if c.keyword("MIME") && !s.part.is_empty() {
        // RFC 3501 §6.4.5: MIME needs a part number.
        SectionPart::Mime
    } else {
        return Err(c.err("bad section"));
    };
    s.text = Some(text);
    Ok(s)
}

fn header_list(c: &mut Cursor<'_>) -> Result<Vec<String>, ParseError> {
    c.sp()?;
    c.expect(b'(')?;
    let mut fields = Vec::new();
    loop {
        let f = c.astring()?;
        fields.push(String::from_utf8_lossy(&f).to_ascii_uppercase());
        if c.eat(b')') {
            return Ok(fields);
        }
        c.sp()?;
    }
}
