//! FETCH and UID FETCH (RFC 3501 §6.4.5, §7.4.2; RFC 7162 §3.1.4 CHANGEDSINCE and MODSEQ).

use std::collections::HashMap;
use std::io::Write;

use rampart_store::{FlagOp, MailStore, MessageRecord, StoreError, Want};

use super::view::{Msg, View};
use super::{FLUSH_AT, Next, Output, Session, State, stream};
use crate::mime::Parsed;
use crate::parser::{FetchAttr, PartialRange, SequenceSet};
use crate::response::{internal_date, line, literal};
use rampart_imap_proto::summary::Fetched;

impl Session {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn fetch<O: Output>(
        &mut self,
        out: &mut O,
        tag: &str,
        uid: bool,
        set: SequenceSet,
        mut attrs: Vec<FetchAttr>,
        (changed_since, partial): (Option<u64>, Option<PartialRange>),
        vanished: bool,
    ) -> Result<Next, StoreError> {
        if vanished && !self.qresync {
            return Ok(self.error(out.buf(), tag, "VANISHED needs ENABLE QRESYNC"));
        }
        let store = self.services.store.clone();
        if changed_since.is_some() || attrs.contains(&FetchAttr::ModSeq) {
            self.enable_condstore(out.buf());
        }
        let condstore = self.condstore;
        let State::Selected(_, view) = &mut self.state else { return Ok(Next::Continue) };
        if !uid && view.out_of_range(&set) {
            return Ok(self.error(out.buf(), tag, "Invalid message sequence number"));
        }
        implied_attrs(&mut attrs, uid, changed_since);
        if let (true, Some(since)) = (vanished, changed_since) {
            vanished_earlier(store.as_ref(), view, &set, since, out.buf()).await?;
        }
        let mut targets = view.resolve(&set, uid);
        let mut records = if changed_since.is_some() || condstore || attrs.iter().any(needs_record) {
            load_records(store.as_ref(), view, &targets).await?
        } else {
            HashMap::new()
        };
        if let Some(since) = changed_since {
            targets.retain(|&i| records.get(&view.uid(i)).is_some_and(|r| r.modseq > since));
        }
        if let Some(range) = partial {
            // RFC 9394 §4: those positions of what the FETCH would answer, in UID order.
            let keep = range.slice(targets.len());
            targets = targets[keep].to_vec();
        }
        // Implicit \Seen (RFC 3501 §6.4.5), set before answering so FLAGS show it.
        let seen_changed = if attrs.iter().any(FetchAttr::sets_seen) && !view.read_only {
            set_seen(store.as_ref(), view, &targets).await?
        } else {
            Vec::new()
        };
        // Setting \Seen gave those messages a new MODSEQ.
        for &i in &seen_changed {
            let u = view.uid(i);
            if let (Some(r), Some(m)) = (records.get_mut(&u), view.own_modseq(u)) {
                r.modseq = m;
            }
        }
        let answering = Answering { view, records: &records, attrs: &attrs, seen_changed: &seen_changed, condstore };
        let (missing, unknown_cte) = match answer(store.as_ref(), &answering, &targets, out).await? {
            Answered::All { missing, unknown_cte } => (missing, unknown_cte),
            Answered::ClientGone(e) => {
                // Nothing is wrong with the store: the client went away mid-answer.
                tracing::debug!(event = "client_write_failed", ip = %self.remote.ip(), error = %e);
                return Ok(Next::Close);
            }
        };
        // RFC 3501 §7.4.1: no EXPUNGE while answering FETCH.
        self.sync(out.buf(), false).await?;
        if unknown_cte {
            // RFC 3516 §4.3.
            line(out.buf(), &format!("{tag} NO [UNKNOWN-CTE] Cannot decode a part's Content-Transfer-Encoding"));
        } else if missing {
            line(out.buf(), &format!("{tag} NO [EXPUNGEISSUED] Some messages were expunged meanwhile"));
        } else {
            line(out.buf(), &format!("{tag} OK FETCH completed"));
        }
        Ok(Next::Continue)
    }
}

impl Session {
    /// NOTIFY's `selected` MessageNew with attributes (RFC 5465 §5.1): an untagged FETCH, UID
    /// first, of every message that joined the view after UID `after`, answered as a FETCH of
    /// them would be except that nothing sets \Seen (the client did not ask to read them).
    pub(super) async fn fetch_new(&mut self, out: &mut Vec<u8>, after: u32, attrs: &[FetchAttr]) -> Result<(), StoreError> {
        let store = self.services.store.clone();
        let condstore = self.condstore;
        let State::Selected(_, view) = &self.state else { return Ok(()) };
        let first = view.uids().partition_point(|&u| u <= after);
        let targets: Vec<usize> = (first..view.exists()).filter(|&i| !view.is_gone(i)).collect();
        if targets.is_empty() {
            return Ok(());
        }
        let mut attrs = attrs.to_vec();
        implied_attrs(&mut attrs, true, None);
        let records = if condstore || attrs.iter().any(needs_record) { load_records(store.as_ref(), view, &targets).await? } else { HashMap::new() };
        let answering = Answering { view, records: &records, attrs: &attrs, seen_changed: &[], condstore };
        // Held in the reply like the EXISTS before it; a message gone meanwhile is left out.
        answer(store.as_ref(), &answering, &targets, &mut Held(out)).await?;
        Ok(())
    }
}

/// An [`Output`] that only collects: for answers written where the caller holds a buffer.
struct Held<'a>(&'a mut Vec<u8>);

impl Output for Held<'_> {
    fn buf(&mut self) -> &mut Vec<u8> {
        self.0
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The attributes a FETCH returns without being asked: RFC 3501 §6.4.8, UID FETCH always
/// returns UID; RFC 7162 §3.1.4, CHANGEDSINCE implies MODSEQ.
fn implied_attrs(attrs: &mut Vec<FetchAttr>, uid: bool, changed_since: Option<u64>) {
    if uid && !attrs.contains(&FetchAttr::Uid) {
        attrs.insert(0, FetchAttr::Uid);
    }
    if changed_since.is_some() && !attrs.contains(&FetchAttr::ModSeq) {
        attrs.push(FetchAttr::ModSeq);
    }
}

/// RFC 7162 §3.2.6: `* VANISHED (EARLIER)` with the UIDs in the set expunged since the
/// client's MODSEQ.
async fn vanished_earlier(store: &dyn MailStore, view: &View, set: &SequenceSet, since: u64, out: &mut Vec<u8>) -> Result<(), StoreError> {
    let changes = store.changes_since(view.id, since).await?;
    let max = view.uidnext.saturating_sub(1);
    let gone: Vec<u32> = changes.expunged.into_iter().filter(|u| set.contains(*u, max)).collect();
    if !gone.is_empty() {
        line(out, &format!("* VANISHED (EARLIER) {}", crate::parser::sequence::compact(&gone)));
    }
    Ok(())
}

/// Sets \Seen on the targets that lack it; returns the view indexes whose flags changed.
async fn set_seen(store: &dyn MailStore, view: &mut View, targets: &[usize]) -> Result<Vec<usize>, StoreError> {
    let mut seen_changed = Vec::new();
    let unseen: Vec<u32> = targets.iter().filter(|&&i| !view.has_flag(i, "\\Seen")).map(|&i| view.uid(i)).collect();
    if !unseen.is_empty() {
        let update = store.store_flags(view.id, unseen, FlagOp::Add, vec!["\\Seen".into()], None).await?;
        for (u, flags, modseq) in update.messages {
            if let Some(i) = view.set_flags(u, &flags, modseq) {
                seen_changed.push(i);
            }
        }
    }
    Ok(seen_changed)
}

/// How answering a FETCH ended.
enum Answered {
    /// Every target was answered; `missing` when a message's text was gone, `unknown_cte` when
    /// a BINARY part had a transfer encoding that cannot be undone.
    All { missing: bool, unknown_cte: bool },
    /// Writing to the client failed.
    ClientGone(std::io::Error),
}

/// What every message of one FETCH is answered from.
struct Answering<'a> {
    view: &'a View,
    /// Sizes, dates and MODSEQs by UID, when an attribute needs them.
    records: &'a HashMap<u32, MessageRecord>,
    attrs: &'a [FetchAttr],
    seen_changed: &'a [usize],
    condstore: bool,
}

/// Attributes read from the store's record of a message rather than the view.
fn needs_record(a: &FetchAttr) -> bool {
    matches!(a, FetchAttr::Rfc822Size | FetchAttr::InternalDate | FetchAttr::ModSeq)
}

/// The records of the targets (ascending view indexes), by UID.
async fn load_records(store: &dyn MailStore, view: &View, targets: &[usize]) -> Result<HashMap<u32, MessageRecord>, StoreError> {
    let (Some(&first), Some(&last)) = (targets.first(), targets.last()) else { return Ok(HashMap::new()) };
    let rows = store.records(view.id, view.uid(first), view.uid(last)).await?;
    Ok(rows.into_iter().map(|r| (r.uid, r)).collect())
}

/// Attributes answered from the summary kept with a message, when it has one.
fn from_summary(a: &FetchAttr) -> bool {
    matches!(a, FetchAttr::Envelope | FetchAttr::Body | FetchAttr::BodyStructure)
}

/// Summaries' FETCH records are read for this many targets at a time, so a FETCH 1:* holds
/// the records of one batch, not of the mailbox.
const SUMMARY_BATCH: usize = 512;

/// The FETCH records of the summaries of `targets` (ascending view indexes), by UID.
async fn load_fetched(store: &dyn MailStore, view: &View, targets: &[usize]) -> Result<HashMap<u32, Vec<u8>>, StoreError> {
    let (Some(&first), Some(&last)) = (targets.first(), targets.last()) else { return Ok(HashMap::new()) };
    let rows = store.stored(view.id, view.uid(first), view.uid(last), Want { fetch: true, ..Want::default() }).await?;
    Ok(rows.into_iter().filter_map(|r| Some((r.uid, r.fetch?))).collect())
}

/// One `* n FETCH (...)` per target, reading each message's text only when an attribute
/// needs it, and flushing whenever the answer passes [`FLUSH_AT`]. ENVELOPE, BODY and
/// BODYSTRUCTURE come from the message's summary when nothing else needs its text. When the
/// only text asked for is the whole message (or a range of it), it is streamed from the
/// store instead of read and parsed ([`super::stream`]).
async fn answer<O: Output>(store: &dyn MailStore, a: &Answering<'_>, targets: &[usize], out: &mut O) -> Result<Answered, StoreError> {
    let (view, attrs, condstore) = (a.view, a.attrs, a.condstore);
    let needs_content = attrs.iter().any(FetchAttr::needs_content);
    let streamed = needs_content && stream::streamable(attrs);
    let summarized = needs_content && attrs.iter().all(|a| !a.needs_content() || from_summary(a));
    let mut fetched = HashMap::new();
    let mut missing = false;
    let mut unknown_cte = false;
    for (k, &i) in targets.iter().enumerate() {
        if summarized && k % SUMMARY_BATCH == 0 {
            fetched = load_fetched(store, view, &targets[k..(k + SUMMARY_BATCH).min(targets.len())]).await?;
        }
        let record = a.records.get(&view.uid(i));
        if record.is_none() && attrs.iter().any(needs_record) {
            // Expunged by another session and not announced yet (RFC 2180 §4.1.3).
            missing = true;
            continue;
        }
        let mut msg = view.msg(i, record);
        if record.is_none() {
            // Gone meanwhile: its last MODSEQ is at most the view's.
            msg.modseq = view.highestmodseq;
        }
        let seen = a.seen_changed.contains(&i);
        if streamed {
            let mut reader = match store.open_message(view.id, msg.uid).await {
                Ok(r) => r,
                Err(StoreError::NotFound(_) | StoreError::Io { .. }) => {
                    missing = true;
                    continue;
                }
                Err(e) => return Err(e),
            };
            if let Err(e) = stream::write_message(out, &mut reader, i, &msg, attrs, seen, condstore).await {
                return Ok(Answered::ClientGone(e));
            }
            continue;
        }
        let stored = fetched.get(&msg.uid).and_then(|d| Fetched::parse(d));
        let raw = if needs_content && stored.is_none() {
            match store.read_message(view.id, msg.uid).await {
                Ok(raw) => Some(raw),
                // Expunged by another session and not announced yet (RFC 2180 §4.1.3).
                Err(StoreError::NotFound(_) | StoreError::Io { .. }) => {
                    missing = true;
                    continue;
                }
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        let parsed = raw.as_deref().map(Parsed::new);
        if let Some(p) = &parsed {
            unknown_cte |= attrs.iter().any(|a| matches!(a, FetchAttr::Binary { part, .. } | FetchAttr::BinarySize(part) if p.binary_refused(part)));
        }
        write_message(out.buf(), i, &msg, attrs, (parsed.as_ref(), stored.as_ref()), seen, condstore);
        if out.buf().len() >= FLUSH_AT
            && let Err(e) = out.flush().await
        {
            return Ok(Answered::ClientGone(e));
        }
    }
    Ok(Answered::All { missing, unknown_cte })
}

/// `* n FETCH (...)` for the message at view index `i`. FLAGS (and with CONDSTORE, MODSEQ)
/// go along unasked when this FETCH set \Seen on it. The text is the parsed message, or the
/// summary's FETCH records when only they are asked for.
fn write_message(buf: &mut Vec<u8>, i: usize, msg: &Msg, attrs: &[FetchAttr], text: Text<'_>, seen_changed: bool, condstore: bool) {
    // Written in place: a FETCH 1:* writes this for every message.
    let _ = write!(buf, "* {} FETCH (", i + 1);
    let mut first = true;
    let mut wrote_flags = false;
    for a in attrs {
        if !first {
            buf.push(b' ');
        }
        first = false;
        write_attr(buf, a, msg, text, condstore, &mut wrote_flags);
    }
    finish_message(buf, msg, attrs, seen_changed, condstore, wrote_flags);
}

/// The end of `* n FETCH (...)`: FLAGS and MODSEQ that go along unasked, and the parenthesis.
pub(super) fn finish_message(buf: &mut Vec<u8>, msg: &Msg, attrs: &[FetchAttr], seen_changed: bool, condstore: bool, wrote_flags: bool) {
    if seen_changed && !wrote_flags {
        buf.extend_from_slice(b" FLAGS ");
        msg.write_flags(buf);
    }
    if condstore && !attrs.contains(&FetchAttr::ModSeq) && (wrote_flags || seen_changed) {
        buf.extend_from_slice(format!(" MODSEQ ({})", msg.modseq).as_bytes());
    }
    buf.extend_from_slice(b")\r\n");
}

/// Part numbers as a section names them, `1.2`.
fn dotted(part: &[u32]) -> String {
    part.iter().map(u32::to_string).collect::<Vec<_>>().join(".")
}

/// A literal, or a literal8 (`~{n}`, RFC 3516 §4.2) when the octets include NUL or, as
/// Dovecot does, any 8-bit octet.
fn literal8(buf: &mut Vec<u8>, data: &[u8]) {
    if data.iter().any(|&b| b == 0 || b >= 0x80) {
        buf.push(b'~');
    }
    literal(buf, data);
}

fn partial(data: &[u8], range: Option<(u32, u32)>) -> &[u8] {
    match range {
        None => data,
        Some((start, len)) => {
            let start = (start as usize).min(data.len());
            let end = start.saturating_add(len as usize).min(data.len());
            &data[start..end]
        }
    }
}

/// What a message's text attributes are answered from: its parse, or its summary's records.
pub(super) type Text<'a> = (Option<&'a Parsed<'a>>, Option<&'a Fetched<'a>>);

pub(super) fn write_attr(buf: &mut Vec<u8>, a: &FetchAttr, msg: &Msg, (parsed, stored): Text<'_>, condstore: bool, wrote_flags: &mut bool) {
    match a {
        FetchAttr::Uid => {
            let _ = write!(buf, "UID {}", msg.uid);
        }
        FetchAttr::Flags => {
            buf.extend_from_slice(b"FLAGS ");
            msg.write_flags(buf);
            *wrote_flags = true;
        }
        FetchAttr::InternalDate => {
            buf.extend_from_slice(b"INTERNALDATE ");
            buf.extend_from_slice(internal_date(msg.internal_date, msg.internal_zone).as_bytes());
        }
        FetchAttr::Rfc822Size => buf.extend_from_slice(format!("RFC822.SIZE {}", msg.size).as_bytes()),
        FetchAttr::ModSeq => buf.extend_from_slice(format!("MODSEQ ({})", msg.modseq).as_bytes()),
        FetchAttr::Envelope => {
            buf.extend_from_slice(b"ENVELOPE ");
            match (parsed, stored) {
                (Some(p), _) => p.envelope(buf),
                (None, Some(s)) => buf.extend_from_slice(s.envelope),
                (None, None) => {}
            }
        }
        FetchAttr::Body | FetchAttr::BodyStructure => {
            let ext = *a == FetchAttr::BodyStructure;
            buf.extend_from_slice(if ext { b"BODYSTRUCTURE " } else { b"BODY " });
            match (parsed, stored) {
                (Some(p), _) => p.body_structure(buf, ext),
                (None, Some(s)) => buf.extend_from_slice(if ext { s.body_structure } else { s.body }),
                (None, None) => {}
            }
        }
        FetchAttr::Rfc822 => {
            buf.extend_from_slice(b"RFC822 ");
            literal(buf, parsed.map_or(&[][..], |p| p.raw()));
        }
        FetchAttr::Rfc822Header => {
            buf.extend_from_slice(b"RFC822.HEADER ");
            literal(buf, parsed.map_or(&[][..], |p| p.header()));
        }
        FetchAttr::Rfc822Text => {
            buf.extend_from_slice(b"RFC822.TEXT ");
            literal(buf, parsed.map_or(&[][..], |p| p.text()));
        }
        FetchAttr::Section { section, partial: range, .. } => {
            buf.extend_from_slice(format!("BODY[{}]", section.spec()).as_bytes());
            if let Some((start, _)) = range {
                buf.extend_from_slice(format!("<{start}>").as_bytes());
            }
            buf.push(b' ');
            let data = parsed.and_then(|p| p.section(section));
            // A part that does not exist is empty, as Dovecot answers (RFC 3501 leaves it open).
            let data = data.unwrap_or_default();
            literal(buf, partial(&data, *range));
        }
        FetchAttr::Binary { part, partial: range, .. } => {
            buf.extend_from_slice(format!("BINARY[{}]", dotted(part)).as_bytes());
            if let Some((start, _)) = range {
                buf.extend_from_slice(format!("<{start}>").as_bytes());
            }
            buf.push(b' ');
            match parsed.map(|p| p.binary(part)) {
                // An encoding that cannot be undone: NIL here, and the fetch answers
                // NO [UNKNOWN-CTE] (see `unknown_cte`).
                Some(Err(_)) => buf.extend_from_slice(b"NIL"),
                // RFC 3516 §4.2: literal8 when the octets include NUL.
                Some(Ok(data)) => literal8(buf, partial(&data.unwrap_or_default(), *range)),
                None => literal(buf, b""),
            }
        }
        FetchAttr::BinarySize(part) => {
            let size = parsed.and_then(|p| p.binary(part).ok().flatten()).map_or(0, |d| d.len());
            buf.extend_from_slice(format!("BINARY.SIZE[{}] {size}", dotted(part)).as_bytes());
        }
    }
    let _ = condstore;
}
