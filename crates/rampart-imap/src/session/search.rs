//! SEARCH and UID SEARCH (RFC 3501 §6.4.4), with RFC 4731 ESEARCH results and RFC 7162
//! MODSEQ. Charsets: UTF-8 and US-ASCII (its subset); others get [BADCHARSET].

use chrono::TimeZone;
use rampart_store::StoreError;

use super::view::Msg;
use super::{Next, Output, Session, State};
use crate::mime::Parsed;
use crate::parser::SearchKey;
use crate::response::line;
use crate::results::{Hit, results};

struct Ctx<'a> {
    msg: &'a Msg,
    seq: u32,
    max_seq: u32,
    max_uid: u32,
    parsed: Option<&'a Parsed<'a>>,
}

fn contains_ci(hay: &str, needle: &str) -> bool {
    needle.is_empty() || hay.to_lowercase().contains(&needle.to_lowercase())
}

fn internal_day(unix: i64) -> chrono::NaiveDate {
    chrono::Utc.timestamp_opt(unix, 0).single().unwrap_or_default().date_naive()
}

/// The Date header's day; without a valid one, 1 January 1970, as Dovecot does (RFC 3501
/// leaves the case open): such a message is SENTBEFORE any date and SENTON none.
fn sent_day(c: &Ctx<'_>) -> chrono::NaiveDate {
    c.parsed.and_then(Parsed::sent_day).unwrap_or_default()
}

fn eval(k: &SearchKey, c: &Ctx<'_>) -> bool {
    use SearchKey as K;
    match k {
        K::All => true,
        K::And(keys) => keys.iter().all(|k| eval(k, c)),
        K::Or(a, b) => eval(a, c) || eval(b, c),
        K::Not(a) => !eval(a, c),
        K::Flag(f) => c.msg.has_flag(f),
        K::NoFlag(f) => !c.msg.has_flag(f),
        K::New => c.msg.recent && !c.msg.has_flag("\\Seen"),
        K::Old => !c.msg.recent,
        K::Recent => c.msg.recent,
        K::Larger(n) => c.msg.size > *n,
        K::Smaller(n) => c.msg.size < *n,
        K::Uid(set) => set.contains(c.msg.uid, c.max_uid),
        K::Seq(set) => set.contains(c.seq, c.max_seq),
        K::ModSeq(n) => c.msg.modseq >= *n,
        K::Before(d) => internal_day(c.msg.internal_date) < *d,
        K::On(d) => internal_day(c.msg.internal_date) == *d,
        K::Since(d) => internal_day(c.msg.internal_date) >= *d,
        K::SentBefore(d) => sent_day(c) < *d,
        K::SentOn(d) => sent_day(c) == *d,
        K::SentSince(d) => sent_day(c) >= *d,
        K::Header(field, text) => c.parsed.is_some_and(|p| {
            let values = p.header_values(field);
            !values.is_empty() && values.iter().any(|v| contains_ci(v, text))
        }),
        K::Body(text) => c.parsed.is_some_and(|p| contains_ci(&p.body_text(), text)),
        // TEXT is the whole message: headers, decoded text parts, and what neither covers
        // (headers of attached messages, MIME headers), from the raw bytes.
        K::Text(text) => c.parsed.is_some_and(|p| {
            contains_ci(&String::from_utf8_lossy(p.header()), text)
                || contains_ci(&p.body_text(), text)
                || contains_ci(&String::from_utf8_lossy(p.raw()), text)
        }),
    }
}

/// Whether the key reads a message's size, dates or MODSEQ, which the view does not keep.
fn reads_record(k: &SearchKey) -> bool {
    use SearchKey as K;
    match k {
        K::Larger(_) | K::Smaller(_) | K::ModSeq(_) | K::Before(_) | K::On(_) | K::Since(_) => true,
        K::And(keys) => keys.iter().any(reads_record),
        K::Or(a, b) => reads_record(a) || reads_record(b),
        K::Not(a) => reads_record(a),
        _ => false,
    }
}

/// SEARCH and SORT take UTF-8 and its subset US-ASCII (RFC 3501 §6.4.4, RFC 5256 §3).
fn charset_supported(charset: &str) -> bool {
    charset.eq_ignore_ascii_case("UTF-8") || charset.eq_ignore_ascii_case("US-ASCII")
}

impl Session {
    /// What SEARCH, SORT and THREAD check before scanning: the charset (else `NO
    /// [BADCHARSET]` and false), and a MODSEQ criterion turning CONDSTORE on (RFC 7162 §3.1).
    pub(super) fn search_prologue(&mut self, buf: &mut Vec<u8>, tag: &str, charset: Option<&str>, key: &SearchKey) -> bool {
        if charset.is_some_and(|cs| !charset_supported(cs)) {
            line(buf, &format!("{tag} NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset"));
            return false;
        }
        if key.uses_modseq() {
            self.enable_condstore(buf);
        }
        true
    }

    /// Runs the search over the selected mailbox and calls `f` for every match, in sequence
    /// order, with the parsed message when `content` (or the key) asks for it and the store's
    /// record (size, dates, MODSEQ) when `records` (or the key) does. One message is read and
    /// parsed at a time, so memory stays at one message whatever the mailbox holds.
    pub(super) async fn scan<F>(&self, key: &SearchKey, content: bool, records: bool, mut f: F) -> Result<(), StoreError>
    where
        F: FnMut(Hit, &Msg, Option<&Parsed<'_>>) + Send,
    {
        let store = self.services.store.clone();
        let State::Selected(_, view) = &self.state else { return Ok(()) };
        let needs_content = content || key.needs_content();
        let max_seq = view.exists() as u32;
        let max_uid = view.uids().last().copied().unwrap_or(0);
        let rows = if (records || needs_content || reads_record(key)) && max_seq > 0 {
            store.records(view.id, view.uid(0), max_uid).await?
        } else {
            Vec::new()
        };
        let mut rows = rows.iter().peekable();
        for i in 0..view.exists() {
            let uid = view.uid(i);
            while rows.next_if(|r| r.uid < uid).is_some() {}
            let mut msg = view.msg(i, rows.peek().filter(|r| r.uid == uid).copied());
            if let Some(m) = view.own_modseq(uid) {
                msg.modseq = msg.modseq.max(m);
            }
            let raw = if needs_content {
                match store.read_message(view.id, uid).await {
                    Ok(r) => Some(r),
                    Err(StoreError::NotFound(_)) | Err(StoreError::Io { .. }) => None,
                    Err(e) => return Err(e),
                }
            } else {
                None
            };
            let parsed = raw.as_deref().map(Parsed::new);
            let seq = i as u32 + 1;
            let ctx = Ctx { msg: &msg, seq, max_seq, max_uid, parsed: parsed.as_ref() };
            if eval(key, &ctx) {
                f(Hit { seq, uid, modseq: msg.modseq }, &msg, parsed.as_ref());
            }
        }
        Ok(())
    }

    pub(super) async fn search<O: Output>(
        &mut self,
        out: &mut O,
        tag: &str,
        uid: bool,
        charset: Option<String>,
        key: SearchKey,
        ret: Option<Vec<String>>,
    ) -> Result<Next, StoreError> {
        if !self.search_prologue(out.buf(), tag, charset.as_deref(), &key) {
            return Ok(Next::Continue);
        }
        let mut hits: Vec<Hit> = Vec::new();
        self.scan(&key, false, key.uses_modseq(), |hit, _, _| hits.push(hit)).await?;
        results(out.buf(), tag, "SEARCH", uid, &hits, ret, key.uses_modseq());
        self.sync(out.buf(), false).await?;
        line(out.buf(), &format!("{tag} OK SEARCH completed"));
        Ok(Next::Continue)
    }
}
