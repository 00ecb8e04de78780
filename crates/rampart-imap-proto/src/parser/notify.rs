//! NOTIFY (RFC 5465 §3, §8): which mailboxes a client watches and which of their events it
//! wants to hear about.

use super::lexer::Cursor;
use super::{FetchAttr, Kind, ParseError, mailbox, parse_fetch_items};

/// A NOTIFY command holds at most this many event groups and mailbox names in all: the
/// session checks every watched mailbox after each change.
pub const MAX_NAMES: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyFilter {
    /// `selected` / `selected-delayed`: the selected mailbox (its usual updates).
    Selected,
    /// Mailboxes mail is delivered to: INBOX.
    Inboxes,
    /// Every mailbox of the user.
    Personal,
    Subscribed,
    /// These mailboxes and every mailbox below them.
    Subtree(Vec<String>),
    Mailboxes(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyEvent {
    /// With the FETCH attributes to send for a new message of the selected mailbox.
    MessageNew(Vec<FetchAttr>),
    MessageExpunge,
    FlagChange,
    MailboxName,
    SubscriptionChange,
    /// An annotation of a watched mailbox changed (RFC 5465 with RFC 5464 METADATA).
    MailboxMetadataChange,
    /// An annotation of the server changed (RFC 5465 with RFC 5464 METADATA).
    ServerMetadataChange,
    /// Known to RFC 5465 or its extensions but not offered here: answered NO [BADEVENT].
    Unsupported(String),
}

/// One `(filter events)` group; no events is `NONE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyGroup {
    pub filter: NotifyFilter,
    pub events: Vec<NotifyEvent>,
}

/// "NOTIFY" SP ("NONE" / "SET" [SP "STATUS"] 1*(SP "(" filter SP events ")"))
pub(super) fn command(c: &mut Cursor<'_>) -> Result<Kind, ParseError> {
    c.sp()?;
    if c.keyword("NONE") {
        return Ok(Kind::Notify { status: false, groups: None });
    }
    if !c.keyword("SET") {
        return Err(c.err("expected SET or NONE"));
    }
    let mut status = false;
    let mut groups = Vec::new();
    let mut names = 0;
    while c.eat(b' ') {
        if groups.is_empty() && !status && c.keyword("STATUS") {
            status = true;
            continue;
        }
        c.expect(b'(')?;
        let filter = filter(c)?;
        names += 1 + match &filter {
            NotifyFilter::Subtree(n) | NotifyFilter::Mailboxes(n) => n.len(),
            _ => 0,
        };
        if names > MAX_NAMES {
            return Err(ParseError::TooBig);
        }
        c.sp()?;
        let events = if c.keyword("NONE") { Vec::new() } else { events(c)? };
        c.expect(b')')?;
        groups.push(NotifyGroup { filter, events });
    }
    if groups.is_empty() {
        return Err(c.err("NOTIFY SET needs an event group"));
    }
    Ok(Kind::Notify { status, groups: Some(groups) })
}

fn filter(c: &mut Cursor<'_>) -> Result<NotifyFilter, ParseError> {
    Ok(if c.keyword("selected-delayed") || c.keyword("selected") {
        NotifyFilter::Selected
    } else if c.keyword("inboxes") {
        NotifyFilter::Inboxes
    } else if c.keyword("personal") {
        NotifyFilter::Personal
    } else if c.keyword("subscribed") {
        NotifyFilter::Subscribed
    } else if c.keyword("subtree") {
        NotifyFilter::Subtree(names(c)?)
    } else if c.keyword("mailboxes") {
        NotifyFilter::Mailboxes(names(c)?)
    } else {
        return Err(c.err("unknown NOTIFY filter"));
    })
}

/// SP (mailbox / "(" mailbox *(SP mailbox) ")")
fn names(c: &mut Cursor<'_>) -> Result<Vec<String>, ParseError> {
    c.sp()?;
    if !c.eat(b'(') {
        return Ok(vec![mailbox::name(c)?]);
    }
    let mut out = vec![mailbox::name(c)?];
    while !c.eat(b')') {
        c.sp()?;
        out.push(mailbox::name(c)?);
        if out.len() > MAX_NAMES {
            return Err(ParseError::TooBig);
        }
    }
    Ok(out)
}

/// "(" event *(SP event) ")"; MessageNew may carry "(" fetch-att ... ")".
fn events(c: &mut Cursor<'_>) -> Result<Vec<NotifyEvent>, ParseError> {
    c.expect(b'(')?;
    let mut out = Vec::new();
    loop {
        let name = c.atom_str()?;
        let event = match name.to_ascii_lowercase().as_str() {
            "messagenew" => {
                let attrs = if c.peek() == Some(b' ') && c.b.get(c.pos + 1) == Some(&b'(') {
                    c.pos += 1;
                    parse_fetch_items(c)?
                } else {
                    Vec::new()
                };
                NotifyEvent::MessageNew(attrs)
            }
            "messageexpunge" => NotifyEvent::MessageExpunge,
            "flagchange" => NotifyEvent::FlagChange,
            "mailboxname" => NotifyEvent::MailboxName,
            "subscriptionchange" => NotifyEvent::SubscriptionChange,
            "mailboxmetadatachange" => NotifyEvent::MailboxMetadataChange,
            "servermetadatachange" => NotifyEvent::ServerMetadataChange,
            _ => NotifyEvent::Unsupported(name),
        };
        out.push(event);
        if c.eat(b')') {
            return Ok(out);
        }
        c.sp()?;
    }
}
