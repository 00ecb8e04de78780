//! GETMETADATA and SETMETADATA (RFC 5464 §4.2–4.3) and the entry names they take.

use super::lexer::Cursor;
use super::{Kind, ParseError, mailbox};

/// How far below each asked entry GETMETADATA looks (RFC 5464 §4.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// The entry only.
    Zero,
    /// The entry and its immediate children.
    One,
    /// The entry and everything below it.
    Infinity,
}

/// An entry name, checked and lowercased (entry names are case-insensitive, RFC 5464 §3.2;
/// Dovecot answers them lowercased too): `/private` or `/shared`, then `/`-separated
/// non-empty levels, no `*` or `%` (reserved for patterns), no control characters.
pub fn entry_name(raw: &[u8]) -> Result<String, &'static str> {
    let name = std::str::from_utf8(raw).map_err(|_| "entry name is not UTF-8")?.to_lowercase();
    if !name.starts_with('/') {
        return Err("entry name must begin with /");
    }
    if name.ends_with('/') {
        return Err("entry name must not end with /");
    }
    if name.contains("//") {
        return Err("entry name must not contain //");
    }
    if name.contains(['*', '%']) || name.chars().any(char::is_control) {
        return Err("entry name must not contain *, % or control characters");
    }
    let top = name.split('/').nth(1).unwrap_or_default();
    if top != "private" && top != "shared" {
        return Err("entry name must begin with /private or /shared");
    }
    Ok(name)
}

fn entry(c: &mut Cursor<'_>) -> Result<String, ParseError> {
    let raw = c.astring()?;
    entry_name(&raw).map_err(|why| c.err(why))
}

/// "GETMETADATA" [SP "(" option *(SP option) ")"] SP mailbox SP (entry / "(" [entry *(SP
/// entry)] ")"); option = "MAXSIZE" SP number / "DEPTH" SP ("0" / "1" / "infinity")
pub(super) fn get(c: &mut Cursor<'_>) -> Result<Kind, ParseError> {
    c.sp()?;
    let (mut depth, mut max_size) = (Depth::Zero, None);
    if c.eat(b'(') {
        loop {
            if c.keyword("MAXSIZE") {
                c.sp()?;
                max_size = Some(c.number()?);
            } else if c.keyword("DEPTH") {
                c.sp()?;
                depth = if c.keyword("infinity") {
                    Depth::Infinity
                } else {
                    match c.number()? {
                        0 => Depth::Zero,
                        1 => Depth::One,
                        _ => return Err(c.err("DEPTH is 0, 1 or infinity")),
                    }
                };
            } else {
                return Err(c.err("unknown GETMETADATA option"));
            }
            if c.eat(b')') {
                break;
            }
            c.sp()?;
        }
        c.sp()?;
    }
    let mailbox = mailbox::name(c)?;
    c.sp()?;
    let mut entries = Vec::new();
    if c.eat(b'(') {
        while !c.eat(b')') {
            if !entries.is_empty() {
                c.sp()?;
            }
            entries.push(entry(c)?);
        }
    } else {
        entries.push(entry(c)?);
    }
    Ok(Kind::GetMetadata { mailbox, entries, depth, max_size })
}

/// "SETMETADATA" SP mailbox SP "(" [entry SP value *(SP entry SP value)] ")"; value =
/// nstring / literal8
pub(super) fn set(c: &mut Cursor<'_>) -> Result<Kind, ParseError> {
    c.sp()?;
    let mailbox = mailbox::name(c)?;
    c.sp()?;
    c.expect(b'(')?;
    let mut entries = Vec::new();
    while !c.eat(b')') {
        if !entries.is_empty() {
            c.sp()?;
        }
        let name = entry(c)?;
        c.sp()?;
        // RFC 5464 §5: a value may be a literal8, NUL octets and all.
        let value = if c.peek() == Some(b'~') {
            c.pos += 1;
            Some(c.literal()?.to_vec())
        } else {
            c.nstring()?
        };
        entries.push((name, value));
    }
    Ok(Kind::SetMetadata { mailbox, entries })
}
