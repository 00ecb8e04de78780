//! Commands on mailboxes: SELECT and EXAMINE (RFC 3501 §6.3.1–2, RFC 7162 CONDSTORE and
//! QRESYNC), CREATE (RFC 6154 USE), RENAME, LIST (RFC 5258 LIST-EXTENDED, RFC 5819
//! LIST-STATUS), LSUB, STATUS, APPEND (RFC 3502 MULTIAPPEND, RFC 4469 CATENATE in `catenate`), and the quota commands (RFC 9208). DELETE, SUBSCRIBE
//! and UNSUBSCRIBE take only a mailbox name ([`argument`]).

use super::lexer::Cursor;
use super::{AppendMessage, Kind, ParseError, SequenceSet};

/// SELECT (QRESYNC (uidvalidity modseq [known-uids [seq-match]])) (RFC 7162 §3.2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qresync {
    pub uidvalidity: u32,
    pub modseq: u64,
    pub known_uids: Option<SequenceSet>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusItem {
    Messages,
    Recent,
    UidNext,
    UidValidity,
    Unseen,
    HighestModSeq,
    Size,
    AppendLimit,
    /// RFC 9051 §6.3.11: messages flagged \Deleted.
    Deleted,
}

/// LIST with RFC 5258 LIST-EXTENDED and RFC 5819 LIST-STATUS options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListArgs {
    pub reference: String,
    pub patterns: Vec<String>,
    pub select_subscribed: bool,
    pub select_special_use: bool,
    pub recursive_match: bool,
    pub return_subscribed: bool,
    pub return_children: bool,
    pub return_special_use: bool,
    pub return_status: Option<Vec<StatusItem>>,
    /// Any selection or return option was given: the extended form (RFC 5258 §3).
    pub extended: bool,
}

/// A mailbox name.
pub(super) fn name(c: &mut Cursor<'_>) -> Result<String, ParseError> {
    let name = c.astring_utf8()?;
    // RFC 3501 §5.1: INBOX is case-insensitive.
    Ok(if name.eq_ignore_ascii_case("INBOX") { "INBOX".into() } else { name })
}

/// SP mailbox: the only argument of DELETE, SUBSCRIBE, UNSUBSCRIBE and GETQUOTAROOT.
pub(super) fn argument(c: &mut Cursor<'_>) -> Result<String, ParseError> {
    c.sp()?;
    name(c)
}

/// ("SELECT" / "EXAMINE") SP mailbox [SP "(" select-param *(SP select-param) ")"]
pub(super) fn select(c: &mut Cursor<'_>, read_only: bool) -> Result<Kind, ParseError> {
    c.sp()?;
    let mailbox = name(c)?;
    let mut condstore = false;
    let mut qresync = None;
    // RFC 4466 select parameters: CONDSTORE (RFC 7162 §3.1.8) and QRESYNC (§3.2.5).
    if c.eat(b' ') {
        c.expect(b'(')?;
        loop {
            if c.keyword("CONDSTORE") {
                condstore = true;
            } else if c.keyword("QRESYNC") {
                qresync = Some(qresync_params(c)?);
            } else {
                return Err(c.err("unknown SELECT parameter"));
            }
            if c.eat(b')') {
                break;
            }
            c.sp()?;
        }
    }
    Ok(Kind::Select { mailbox, condstore, read_only, qresync })
}

/// "(" uidvalidity SP mod-sequence-value [SP known-uids [SP seq-match-data]] ")"
fn qresync_params(c: &mut Cursor<'_>) -> Result<Qresync, ParseError> {
    c.sp()?;
    c.expect(b'(')?;
    let uidvalidity = c.nz_number()?;
    c.sp()?;
    let modseq = c.number()?;
    let mut known_uids = None;
    if c.eat(b' ') {
        known_uids = Some(SequenceSet::parse(c)?);
        if c.eat(b' ') {
            // seq-match-data helps a server without expunge history; ours has it all.
            c.expect(b'(')?;
            SequenceSet::parse(c)?;
            c.sp()?;
            SequenceSet::parse(c)?;
            c.expect(b')')?;
        }
    }
    c.expect(b')')?;
    Ok(Qresync { uidvalidity, modseq, known_uids })
}

/// "CREATE" SP mailbox [SP "(" "USE" SP "(" use-attr *(SP use-attr) ")" ")"]
pub(super) fn create(c: &mut Cursor<'_>) -> Result<Kind, ParseError> {
    c.sp()?;
    let mailbox = name(c)?;
    let mut special_use = Vec::new();
    // RFC 6154 §3: CREATE mailbox (USE (\Flag ...)).
    if c.eat(b' ') {
        c.expect(b'(')?;
        if !c.keyword("USE") {
            return Err(c.err("unknown CREATE parameter"));
        }
        c.sp()?;
        special_use = c.flag_list(false)?;
        c.expect(b')')?;
    }
    Ok(Kind::Create { mailbox, special_use })
}

/// "RENAME" SP mailbox SP mailbox
pub(super) fn rename(c: &mut Cursor<'_>) -> Result<Kind, ParseError> {
    c.sp()?;
    let from = name(c)?;
    c.sp()?;
    let to = name(c)?;
    Ok(Kind::Rename { from, to })
}

/// "LSUB" SP mailbox SP list-mailbox
pub(super) fn lsub(c: &mut Cursor<'_>) -> Result<Kind, ParseError> {
    c.sp()?;
    let reference = c.astring_utf8()?;
    c.sp()?;
    let pattern = c.list_mailbox()?;
    Ok(Kind::Lsub { reference, pattern })
}

/// "STATUS" SP mailbox SP "(" status-att *(SP status-att) ")"
pub(super) fn status(c: &mut Cursor<'_>) -> Result<Kind, ParseError> {
    c.sp()?;
    let mailbox = name(c)?;
    c.sp()?;
    Ok(Kind::Status { mailbox, items: status_items(c)? })
}

fn status_items(c: &mut Cursor<'_>) -> Result<Vec<StatusItem>, ParseError> {
    c.expect(b'(')?;
    let mut items = Vec::new();
    loop {
        let item = match c.atom()?.to_ascii_uppercase().as_slice() {
            b"MESSAGES" => StatusItem::Messages,
            b"RECENT" => StatusItem::Recent,
            b"UIDNEXT" => StatusItem::UidNext,
            b"UIDVALIDITY" => StatusItem::UidValidity,
            b"UNSEEN" => StatusItem::Unseen,
            b"HIGHESTMODSEQ" => StatusItem::HighestModSeq,
            b"SIZE" => StatusItem::Size,
            b"APPENDLIMIT" => StatusItem::AppendLimit,
            b"DELETED" => StatusItem::Deleted,
            _ => return Err(c.err("unknown STATUS item")),
        };
        items.push(item);
        if c.eat(b')') {
            return Ok(items);
        }
        c.sp()?;
    }
}

/// "APPEND" SP mailbox [SP flag-list] [SP date-time] SP literal
pub(super) fn append(c: &mut Cursor<'_>) -> Result<Kind, ParseError> {
    c.sp()?;
    let mailbox = name(c)?;
    let mut messages = Vec::new();
    // RFC 3502 MULTIAPPEND: more messages follow, each with its own flags and date.
    while c.eat(b' ') {
        messages.push(append_message(c)?);
    }
    if messages.is_empty() {
        return Err(c.err("APPEND needs a message"));
    }
    Ok(Kind::Append { mailbox, messages })
}

/// [flag-list SP] [date-time SP] (literal / "CATENATE" SP "(" cat-part *(SP cat-part) ")" /
/// "UTF8" SP "(" literal8 ")"); `utf8` when the message or a CATENATE part is in the UTF8 form.
fn append_message(c: &mut Cursor<'_>) -> Result<AppendMessage, ParseError> {
    let mut flags = Vec::new();
    if c.peek() == Some(b'(') {
        flags = c.flag_list(false)?;
        c.sp()?;
    }
    let mut date = None;
    if c.peek() == Some(b'"') {
        date = Some(c.date_time()?);
        c.sp()?;
    }
    if c.keyword("CATENATE") {
        let (parts, utf8) = super::catenate::parts(c)?;
        return Ok(AppendMessage { flags, date, message: Vec::new(), literal_at: c.pos, catenate: Some(parts), utf8 });
    }
    // RFC 6855 §4: append-data =/ "UTF8" SP "(" literal8 ")", a message with UTF-8 headers.
    if c.keyword("UTF8") {
        c.sp()?;
        c.expect(b'(')?;
        if c.peek() != Some(b'~') {
            return Err(c.err("UTF8 takes a literal8"));
        }
        let (message, literal_at) = append_literal(c)?;
        c.expect(b')')?;
        return Ok(AppendMessage { flags, date, message, literal_at, catenate: None, utf8: true });
    }
    let (message, literal_at) = append_literal(c)?;
    Ok(AppendMessage { flags, date, message, literal_at, catenate: None, utf8: false })
}

/// A message's literal and where its `{` is. RFC 3516 §4.4: a literal8 (`~{N}`) may carry
/// any octet, NUL included.
pub(super) fn append_literal(c: &mut Cursor<'_>) -> Result<(Vec<u8>, usize), ParseError> {
    c.eat(b'~');
    let literal_at = c.pos;
    Ok((c.literal()?.to_vec(), literal_at))
}

/// "GETQUOTA" SP quota-root
pub(super) fn get_quota(c: &mut Cursor<'_>) -> Result<Kind, ParseError> {
    c.sp()?;
    Ok(Kind::GetQuota(c.astring_utf8()?))
}

/// "SETQUOTA" SP quota-root SP "(" [setquota-resource *(SP setquota-resource)] ")"
pub(super) fn set_quota(c: &mut Cursor<'_>) -> Result<Kind, ParseError> {
    c.sp()?;
    let root = c.astring_utf8()?;
    // The resource list is not used: quotas are set by the administrator.
    c.sp()?;
    c.expect(b'(')?;
    while c.peek().is_some_and(|b| b != b')') {
        c.pos += 1;
    }
    c.expect(b')')?;
    Ok(Kind::SetQuota(root))
}

/// LIST [SP "(" select-opts ")"] SP reference SP (pattern / "(" patterns ")")
/// [SP RETURN "(" return-opts ")"] (RFC 5258 §3, RFC 6154 §5, RFC 5819).
pub(super) fn list(c: &mut Cursor<'_>) -> Result<ListArgs, ParseError> {
    let mut a = ListArgs::default();
    c.sp()?;
    if c.eat(b'(') {
        a.extended = true;
        list_selection(c, &mut a)?;
        c.sp()?;
    }
    a.reference = c.astring_utf8()?;
    c.sp()?;
    if c.eat(b'(') {
        a.extended = true;
        loop {
            a.patterns.push(c.list_mailbox()?);
            if c.eat(b')') {
                break;
            }
            c.sp()?;
        }
    } else {
        a.patterns.push(c.list_mailbox()?);
    }
    if c.eat(b' ') {
        if !c.keyword("RETURN") {
            return Err(c.err("expected RETURN"));
        }
        a.extended = true;
        c.sp()?;
        c.expect(b'(')?;
        list_return(c, &mut a)?;
    }
    if a.recursive_match && !a.select_subscribed {
        // RFC 5258 §3: RECURSIVEMATCH alone is an error.
        return Err(c.err("RECURSIVEMATCH needs another selection option"));
    }
    Ok(a)
}

/// The selection options after LIST's "(", through its ")".
fn list_selection(c: &mut Cursor<'_>, a: &mut ListArgs) -> Result<(), ParseError> {
    while !c.eat(b')') {
        c.eat(b' ');
        if c.keyword("SUBSCRIBED") {
            a.select_subscribed = true;
        } else if c.keyword("SPECIAL-USE") {
            a.select_special_use = true;
        } else if c.keyword("RECURSIVEMATCH") {
            a.recursive_match = true;
        } else if c.keyword("REMOTE") {
        } else {
            return Err(c.err("unknown LIST selection option"));
        }
    }
    Ok(())
}

/// The return options after LIST's "RETURN (", through its ")".
fn list_return(c: &mut Cursor<'_>, a: &mut ListArgs) -> Result<(), ParseError> {
    while !c.eat(b')') {
        c.eat(b' ');
        if c.keyword("SUBSCRIBED") {
            a.return_subscribed = true;
        } else if c.keyword("CHILDREN") {
            a.return_children = true;
        } else if c.keyword("SPECIAL-USE") {
            a.return_special_use = true;
        } else if c.keyword("STATUS") {
            c.sp()?;
            a.return_status = Some(status_items(c)?);
        } else {
            return Err(c.err("unknown LIST return option"));
        }
    }
    Ok(())
}
