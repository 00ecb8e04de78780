//! Commands on messages of the selected mailbox that have no file of their own: STORE
//! (RFC 3501 §6.4.6, RFC 7162 UNCHANGEDSINCE), COPY and MOVE (RFC 6851), UID EXPUNGE
//! (RFC 4315 §2.1). FETCH, SEARCH, SORT and THREAD are in their own modules.

use super::lexer::Cursor;
use super::{Kind, ParseError, SequenceSet, mailbox};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    Add,
    Remove,
    Replace,
}

/// ["UID" SP] "STORE" SP sequence-set [SP "(" "UNCHANGEDSINCE" SP mod-sequence ")"] SP
/// ["+" / "-"] "FLAGS" [".SILENT"] SP (flag-list / flag *(SP flag))
pub(super) fn store(c: &mut Cursor<'_>, uid: bool) -> Result<Kind, ParseError> {
    c.sp()?;
    let set = SequenceSet::parse(c)?;
    c.sp()?;
    let mut unchanged_since = None;
    // RFC 7162 §3.1.3: STORE set (UNCHANGEDSINCE n) ...
    if c.eat(b'(') {
        if !c.keyword("UNCHANGEDSINCE") {
            return Err(c.err("unknown STORE modifier"));
        }
        c.sp()?;
        unchanged_since = Some(c.number()?);
        c.expect(b')')?;
        c.sp()?;
    }
    let op = if c.eat(b'+') {
        StoreOp::Add
    } else if c.eat(b'-') {
        StoreOp::Remove
    } else {
        StoreOp::Replace
    };
    let silent = if c.keyword("FLAGS.SILENT") {
        true
    } else if c.keyword("FLAGS") {
        false
    } else {
        return Err(c.err("expected FLAGS"));
    };
    c.sp()?;
    let flags = c.flag_list(true)?;
    Ok(Kind::Store { uid, set, op, silent, flags, unchanged_since })
}

/// ["UID" SP] ("COPY" / "MOVE") SP sequence-set SP mailbox
pub(super) fn copy(c: &mut Cursor<'_>, uid: bool, moving: bool) -> Result<Kind, ParseError> {
    c.sp()?;
    let set = SequenceSet::parse(c)?;
    c.sp()?;
    let mailbox = mailbox::name(c)?;
    Ok(Kind::Copy { uid, set, mailbox, moving })
}

/// "UID" SP "EXPUNGE" SP sequence-set (RFC 4315 §2.1); plain EXPUNGE takes no argument.
pub(super) fn uid_expunge(c: &mut Cursor<'_>) -> Result<Kind, ParseError> {
    c.sp()?;
    Ok(Kind::Expunge { uids: Some(SequenceSet::parse(c)?) })
}
