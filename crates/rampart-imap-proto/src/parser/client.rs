//! Commands about the client and its connection rather than a mailbox: AUTHENTICATE and
//! LOGIN (RFC 3501 §6.2), ID (RFC 2971), ENABLE (RFC 5161), COMPRESS (RFC 4978).

use super::lexer::Cursor;
use super::{Kind, ParseError};

/// Fields an ID command may carry (RFC 2971 §3.3).
const MAX_ID_FIELDS: usize = 30;

/// "AUTHENTICATE" SP auth-type [SP (base64 / "=")]
pub(super) fn authenticate(c: &mut Cursor<'_>) -> Result<Kind, ParseError> {
    c.sp()?;
    let mechanism = c.atom_str()?.to_ascii_uppercase();
    // RFC 4959 SASL-IR: an initial response, `=` for an empty one.
    let initial = if c.eat(b' ') {
        let data = c.atom_with(true)?;
        Some(if data == b"=" { Vec::new() } else { data.to_vec() })
    } else {
        None
    };
    Ok(Kind::Authenticate { mechanism, initial })
}

/// "LOGIN" SP userid SP password
pub(super) fn login(c: &mut Cursor<'_>) -> Result<Kind, ParseError> {
    c.sp()?;
    let user = c.astring()?;
    c.sp()?;
    let password = c.astring()?;
    Ok(Kind::Login { user, password })
}

/// "ID" SP id-params-list
pub(super) fn id(c: &mut Cursor<'_>) -> Result<Kind, ParseError> {
    c.sp()?;
    Ok(Kind::Id(id_params(c)?))
}

/// RFC 2971: "(" field value *(SP field value) ")" / NIL. At most 30 pairs (§3.3).
fn id_params(c: &mut Cursor<'_>) -> Result<Vec<(String, Option<String>)>, ParseError> {
    let mut out = Vec::new();
    if c.keyword("NIL") {
        return Ok(out);
    }
    c.expect(b'(')?;
    if c.eat(b')') {
        return Ok(out);
    }
    loop {
        let field = String::from_utf8_lossy(&c.string()?).into_owned();
        c.sp()?;
        let value = c.nstring()?.map(|v| String::from_utf8_lossy(&v).into_owned());
        if out.len() >= MAX_ID_FIELDS {
            return Err(c.err("too many ID fields"));
        }
        out.push((field, value));
        if c.eat(b')') {
            return Ok(out);
        }
        c.sp()?;
    }
}

/// "ENABLE" 1*(SP capability)
pub(super) fn enable(c: &mut Cursor<'_>) -> Result<Kind, ParseError> {
    let mut caps = Vec::new();
    while c.eat(b' ') {
        caps.push(c.atom_str()?.to_ascii_uppercase());
    }
    if caps.is_empty() {
        return Err(c.err("ENABLE needs a capability"));
    }
    Ok(Kind::Enable(caps))
}

/// "COMPRESS" SP algorithm (RFC 4978 §3); the algorithm is an atom, upper-cased.
pub(super) fn compress(c: &mut Cursor<'_>) -> Result<Kind, ParseError> {
    c.sp()?;
    Ok(Kind::Compress(c.atom_str()?.to_ascii_uppercase()))
}
