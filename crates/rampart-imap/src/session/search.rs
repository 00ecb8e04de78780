//! SEARCH and UID SEARCH (RFC 3501 §6.4.4), with RFC 4731 ESEARCH results and RFC 7162
//! MODSEQ. Charsets: UTF-8 and US-ASCII (its subset); others get [BADCHARSET].

use std::collections::HashMap;

use chrono::TimeZone;
use rampart_store::{MessageRecord, Stored, StoreError, Want};

use super::index::{Backfill, WordHits, word_candidates};
use crate::columns::{Chunk, Columns};
use super::view::Msg;
use super::{Next, Output, Session, State};
use crate::mime::Parsed;
use crate::parser::{PartialRange, SearchKey};
use crate::response::line;
use crate::results::{Hit, results};
use rampart_imap_proto::facts::{Facts, Keys, WORDS_BODY, WORDS_RAW};
use rampart_imap_proto::summary::{Headers, SEARCHED};

/// What a message's text is known from while it is searched.
enum Text<'a> {
    /// The message, read and parsed: every key is answered.
    Parsed(&'a Parsed<'a>),
    /// Its summary, where it has one (records that fail to read count as absent): keys it
    /// cannot answer are unknown, and the message is then read. The header values are in
    /// `headers` when read from the store, in `cached` (a chunk of the mailbox's columns and
    /// the message's place in it) when read from the column cache.
    Summary { id: Option<i64>, keys: Option<Keys<'a>>, headers: Option<Headers<'a>>, cached: Option<(&'a Chunk, usize)> },
    /// The message could not be read: no header, no text (as a message without them).
    Unreadable,
}

impl Text<'_> {
    fn facts(&self) -> Option<Facts<'_>> {
        match self {
            Text::Parsed(p) => Some(Facts::Parsed(p)),
            Text::Summary { keys, .. } => keys.map(Facts::Stored),
            Text::Unreadable => Some(Facts::Missing),
        }
    }
}

struct Ctx<'a> {
    msg: &'a Msg,
    seq: u32,
    max_seq: u32,
    max_uid: u32,
    text: Text<'a>,
    /// What the full-text index allows for each BODY/TEXT string ([`word_candidates`]).
    words: &'a WordHits,
    /// The key's strings lowercased, made once for the whole scan ([`lowered`]).
    lower: &'a HashMap<&'a str, String>,
}

impl Ctx<'_> {
    /// `s` (a string of the key) lowercased.
    fn lower<'s>(&'s self, s: &'s str) -> std::borrow::Cow<'s, str> {
        match self.lower.get(s) {
            Some(l) => std::borrow::Cow::Borrowed(l.as_str()),
            None => std::borrow::Cow::Owned(s.to_lowercase()),
        }
    }
}

/// The strings of the key's HEADER, BODY and TEXT criteria, each with its lowercase form, so
/// a scan lowercases each once rather than once per message.
fn lowered<'k>(key: &'k SearchKey, out: &mut HashMap<&'k str, String>) {
    match key {
        SearchKey::Header(_, s) | SearchKey::Body(s) | SearchKey::Text(s) => {
            out.entry(s.as_str()).or_insert_with(|| s.to_lowercase());
        }
        SearchKey::And(keys) => keys.iter().for_each(|k| lowered(k, out)),
        SearchKey::Or(a, b) => {
            lowered(a, out);
            lowered(b, out);
        }
        SearchKey::Not(a) => lowered(a, out),
        _ => {}
    }
}

fn contains_ci(hay: &str, needle: &str) -> bool {
    needle.is_empty() || hay.to_lowercase().contains(&needle.to_lowercase())
}

fn internal_day(unix: i64) -> chrono::NaiveDate {
    chrono::Utc.timestamp_opt(unix, 0).single().unwrap_or_default().date_naive()
}

/// The Date header's day; without a valid one, 1 January 1970, as Dovecot does (RFC 3501
/// leaves the case open): such a message is SENTBEFORE any date and SENTON none. None when
/// unknown (not read yet).
fn sent_day(c: &Ctx<'_>) -> Option<chrono::NaiveDate> {
    c.text.facts().map(|f| f.sent_day().unwrap_or_default())
}

/// Whether the index rules out that `needle` occurs in the message (`coverage`: what its
/// words must cover for that, [`WORDS_BODY`] or both).
fn ruled_out(c: &Ctx<'_>, needle: &str, coverage: u8) -> bool {
    let Text::Summary { id: Some(id), keys: Some(keys), .. } = &c.text else { return false };
    keys.words() & coverage == coverage
        && c.words.narrow.get(c.lower(needle).as_ref()).is_some_and(|set| set.as_ref().is_some_and(|set| !set.contains(id)))
}

/// Whether the message's summary holds the header values and words of a plaintext whose
/// stored form the server cannot read (a message encrypted to its user's OpenPGP key,
/// [`Keys::plain_search`]): text criteria are answered from the summary, finally.
fn plain_search(c: &Ctx<'_>) -> bool {
    matches!(&c.text, Text::Summary { keys: Some(k), .. } if k.plain_search())
}

/// BODY (and the body part of TEXT) over a [`plain_search`] message: a hit of the full-text
/// index is the answer (reading the stored message could not confirm it), so a message
/// matches when its words hold every word of `needle` where the index asks for them
/// ([`WordHits::plain_hits`]). Not character for character what a scan of the plaintext
/// answers: the words need not be adjacent; a string without a word the index can look up
/// (`"--"`) matches nothing but the empty one.
fn plain_words_hit(c: &Ctx<'_>, needle: &str) -> bool {
    let Text::Summary { id: Some(id), keys: Some(keys), .. } = &c.text else { return false };
    needle.is_empty() || (keys.words() & WORDS_BODY != 0 && c.words.plain_hits(c.lower(needle).as_ref()).is_some_and(|set| set.contains(id)))
}

/// TEXT's header part over a [`plain_search`] message: whether a kept header value (of
/// [`SEARCHED`]) contains `needle`; None when that depends on values not read.
fn plain_headers_hit(c: &Ctx<'_>, needle: &str) -> Option<bool> {
    let lower = c.lower(needle);
    let field = |f: &str| match &c.text {
        Text::Summary { headers: Some(h), .. } => h.matches(f, &lower),
        Text::Summary { cached: Some((chunk, at)), .. } => chunk.header_matches(*at, f, &lower),
        _ => None,
    };
    let mut known = Some(false);
    for f in SEARCHED {
        match field(f) {
            Some(true) => return Some(true),
            Some(false) => {}
            None => known = None,
        }
    }
    known
}

/// Whether the message matches; None when that depends on text not known yet (the message
/// is then read, and asked again with [`Text::Parsed`]).
fn eval(k: &SearchKey, c: &Ctx<'_>) -> Option<bool> {
    use SearchKey as K;
    Some(match k {
        K::All => true,
        K::And(keys) => {
            let mut known = Some(true);
            for k in keys {
                match eval(k, c) {
                    Some(false) => return Some(false),
                    Some(true) => {}
                    None => known = None,
                }
            }
            return known;
        }
        K::Or(a, b) => {
            return match (eval(a, c), eval(b, c)) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            };
        }
        K::Not(a) => return eval(a, c).map(|m| !m),
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
        K::SentBefore(d) => sent_day(c)? < *d,
        K::SentOn(d) => sent_day(c)? == *d,
        K::SentSince(d) => sent_day(c)? >= *d,
        // A field the summary does not keep is not known of a plaintext-search message.
        K::Header(field, _) if plain_search(c) && !SEARCHED.iter().any(|f| f.eq_ignore_ascii_case(field)) => false,
        K::Header(field, text) => match &c.text {
            Text::Parsed(p) => {
                let values = p.header_values(field);
                !values.is_empty() && values.iter().any(|v| contains_ci(v, text))
            }
            Text::Summary { headers: Some(h), .. } => h.matches(field, &c.lower(text))?,
            Text::Summary { cached: Some((chunk, at)), .. } => chunk.header_matches(*at, field, &c.lower(text))?,
            Text::Summary { .. } => return None,
            Text::Unreadable => false,
        },
        K::Body(text) => match &c.text {
            Text::Parsed(p) => contains_ci(&p.body_text(), text),
            Text::Summary { .. } if plain_search(c) => plain_words_hit(c, text),
            Text::Summary { .. } if ruled_out(c, text, WORDS_BODY) => false,
            Text::Summary { .. } => return None,
            Text::Unreadable => false,
        },
        // TEXT is the whole message: headers, decoded text parts, and what neither covers
        // (headers of attached messages, MIME headers), from the raw bytes.
        K::Text(text) => match &c.text {
            Text::Parsed(p) => {
                contains_ci(&String::from_utf8_lossy(p.header()), text)
                    || contains_ci(&p.body_text(), text)
                    || contains_ci(&String::from_utf8_lossy(p.raw()), text)
            }
            Text::Summary { .. } if plain_search(c) => plain_words_hit(c, text) || plain_headers_hit(c, text)?,
            Text::Summary { .. } if ruled_out(c, text, WORDS_BODY | WORDS_RAW) => false,
            Text::Summary { .. } => return None,
            Text::Unreadable => false,
        },
    })
}

/// What the scan knows of one message before reading it: its record (size, dates, MODSEQ when
/// read from the store) and its summary, from the store's rows or the column cache.
struct Found<'a> {
    record: Option<MessageRecord>,
    text: Text<'a>,
    /// The message is stored without a summary: reading it makes one ([`Backfill`]).
    unsummarized: bool,
}

impl<'a> Found<'a> {
    fn row(uid: u32, row: Option<&'a Stored>) -> Found<'a> {
        Found {
            record: row.map(|r| MessageRecord { uid, flags: String::new(), modseq: r.modseq, size: r.size, internal_date: r.internal_date, internal_zone: 0 }),
            text: Text::Summary {
                id: row.and_then(|r| r.summary),
                keys: row.and_then(|r| r.keys.as_deref()).and_then(Keys::parse),
                headers: row.and_then(|r| r.headers.as_deref()).and_then(Headers::parse),
                cached: None,
            },
            unsummarized: row.is_some_and(|r| r.summary.is_none()),
        }
    }

    /// MODSEQ is left 0: the cache is not used when the key asks for it.
    fn cached(uid: u32, at: Option<(&'a Chunk, usize)>) -> Found<'a> {
        Found {
            record: at.map(|(c, i)| MessageRecord { uid, flags: String::new(), modseq: 0, size: c.size(i), internal_date: c.internal_date(i), internal_zone: 0 }),
            text: Text::Summary { id: at.and_then(|(c, i)| c.summary(i)), keys: at.and_then(|(c, i)| c.keys(i)), headers: None, cached: at },
            unsummarized: at.is_some_and(|(c, i)| c.summary(i).is_none()),
        }
    }
}

/// Which records of the summaries the key (and `facts`: SORT or THREAD keys) reads.
fn wanted(k: &SearchKey, facts: bool) -> Want {
    fn walk(k: &SearchKey, w: &mut Want) {
        use SearchKey as K;
        match k {
            K::SentBefore(_) | K::SentOn(_) | K::SentSince(_) | K::Body(_) => w.keys = true,
            // TEXT reads the header values of a plaintext-search message (`plain_headers_hit`),
            // and HEADER whether a message is one (its keys record).
            K::Text(_) => {
                w.keys = true;
                w.headers = true;
            }
            K::Header(field, _) if SEARCHED.iter().any(|f| f.eq_ignore_ascii_case(field)) => {
                w.keys = true;
                w.headers = true;
            }
            K::Header(..) => w.keys = true,
            K::And(keys) => keys.iter().for_each(|k| walk(k, w)),
            K::Or(a, b) => {
                walk(a, w);
                walk(b, w);
            }
            K::Not(a) => walk(a, w),
            _ => {}
        }
    }
    let mut w = Want { keys: facts, ..Want::default() };
    walk(k, &mut w);
    w
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
            if self.utf8 {
                // RFC 6855 §3 (erratum 4029): after ENABLE UTF8=ACCEPT strings are UTF-8, and
                // another label conflicts with that. UTF-8 (and its subset) still agree.
                self.error(buf, tag, "Strings are UTF-8 after ENABLE UTF8=ACCEPT");
                return false;
            }
            line(buf, &format!("{tag} NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset"));
            return false;
        }
        if key.uses_modseq() {
            self.enable_condstore(buf);
        }
        true
    }

    /// Runs the search over the selected mailbox and calls `f` for every match, in sequence
    /// order, with its facts (SORT's and THREAD's keys) when `facts` asks for them and the
    /// store's record (size, dates, MODSEQ) when `records` (or the key) does.
    ///
    /// Each message is answered from its summary and the full-text index where they can
    /// answer; otherwise it is read and parsed, one at a time, so memory stays at one message
    /// whatever the mailbox holds. A message read that had no summary gets one ([`Backfill`]).
    pub(super) async fn scan<F>(&self, key: &SearchKey, facts: bool, records: bool, mut f: F) -> Result<(), StoreError>
    where
        F: FnMut(Hit, &Msg, &Facts<'_>) + Send,
    {
        let store = self.services.store.clone();
        let State::Selected(user, view) = &self.state else { return Ok(()) };
        let max_seq = view.exists() as u32;
        let max_uid = view.uids().last().copied().unwrap_or(0);
        if max_seq == 0 {
            return Ok(());
        }
        let want = wanted(key, facts);
        let needed = records || facts || key.needs_content() || reads_record(key);
        // The column cache holds all but MODSEQs, which only the store has.
        let columns = match needed && !key.uses_modseq() {
            true => self.services.columns.get(store.as_ref(), view.id, view.uidvalidity, max_uid, view.exists()).await?,
            false => None,
        };
        let rows = if needed && columns.is_none() { store.stored(view.id, view.uid(0), max_uid, want).await? } else { Vec::new() };
        let mut cursor = columns.as_deref().map(Columns::cursor);
        let words = word_candidates(store.as_ref(), user.id, key).await?;
        let mut lower = HashMap::new();
        lowered(key, &mut lower);
        let mut backfill = Backfill::new(view.id);
        let mut rows = rows.iter().peekable();
        for i in 0..view.exists() {
            let uid = view.uid(i);
            let found = match cursor.as_mut() {
                Some(cursor) => Found::cached(uid, cursor.seek(uid)),
                None => {
                    while rows.next_if(|r| r.uid < uid).is_some() {}
                    Found::row(uid, rows.peek().filter(|r| r.uid == uid).copied())
                }
            };
            let mut msg = view.msg(i, found.record.as_ref());
            if let Some(m) = view.own_modseq(uid) {
                msg.modseq = msg.modseq.max(m);
            }
            let seq = i as u32 + 1;
            let hit = Hit { seq, uid, modseq: msg.modseq };
            let text = found.text;
            let ctx = Ctx { msg: &msg, seq, max_seq, max_uid, text, words: &words, lower: &lower };
            match (eval(key, &ctx), ctx.text.facts()) {
                (Some(false), _) => continue,
                (Some(true), _) if !facts => {
                    f(hit, &msg, &Facts::Missing);
                    continue;
                }
                (Some(true), Some(known)) => {
                    f(hit, &msg, &known);
                    continue;
                }
                _ => {}
            }
            let raw = match store.read_message(view.id, uid).await {
                Ok(r) => Some(r),
                Err(StoreError::NotFound(_)) | Err(StoreError::Io { .. }) => None,
                Err(e) => return Err(e),
            };
            let parsed = raw.as_deref().map(Parsed::new);
            if let Some(p) = &parsed
                && found.unsummarized
            {
                backfill.add(store.as_ref(), uid, p).await;
            }
            let text = parsed.as_ref().map_or(Text::Unreadable, Text::Parsed);
            let ctx = Ctx { msg: &msg, seq, max_seq, max_uid, text, words: &words, lower: &lower };
            if eval(key, &ctx) == Some(true) {
                f(hit, &msg, &ctx.text.facts().unwrap_or(Facts::Missing));
            }
        }
        backfill.flush(store.as_ref()).await;
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
            // RFC 5182 §2.1: a failed SEARCH ... RETURN (SAVE) leaves the saved result empty.
            self.save_result(ret.as_deref(), &[]);
            return Ok(Next::Continue);
        }
        let update = ret.as_ref().is_some_and(|r| r.iter().any(|o| o == "UPDATE"));
        if update && self.context_refused(out.buf(), tag) {
            return Ok(Next::Continue);
        }
        let mut hits: Vec<Hit> = Vec::new();
        self.scan(&key, false, key.uses_modseq(), |hit, _, _| hits.push(hit)).await?;
        self.save_result(ret.as_deref(), &hits);
        if update {
            // RFC 5267 §4.2: changes from here on are reported against this result.
            self.keep_context(tag, uid, key.clone(), None, hits.iter().map(|h| h.uid));
        }
        // RFC 9051 §6.4.4: a rev2 SEARCH without RETURN answers as RETURN (ALL), in ESEARCH.
        let ret = if self.rev2 { ret.or(Some(Vec::new())) } else { ret };
        results(out.buf(), tag, "SEARCH", uid, &hits, ret, key.uses_modseq());
        self.sync(out.buf(), false).await?;
        line(out.buf(), &format!("{tag} OK SEARCH completed"));
        Ok(Next::Continue)
    }
}

impl Session {
    /// RETURN (SAVE) (RFC 5182 §2.4): keeps the UIDs of the hits — only the first and/or last
    /// when MIN/MAX come without ALL or COUNT — for `$`. Without SAVE the saved result stays.
    pub(super) fn save_result(&mut self, ret: Option<&[String]>, hits: &[Hit]) {
        let Some(opts) = ret.filter(|o| o.iter().any(|x| x == "SAVE")) else { return };
        let has = |o: &str| opts.iter().any(|x| x == o);
        let partial = opts.iter().find_map(|o| PartialRange::from_option(o));
        let mut uids: Vec<u32> = if let Some(range) = partial.filter(|_| !has("ALL") && !has("COUNT") && !has("MIN") && !has("MAX")) {
            // RFC 9394 §3.1: SAVE with PARTIAL alone saves the partial result.
            hits[range.slice(hits.len())].iter().map(|h| h.uid).collect()
        } else if !has("ALL") && !has("COUNT") && (has("MIN") || has("MAX")) {
            let first = hits.first().filter(|_| has("MIN"));
            let last = hits.last().filter(|_| has("MAX"));
            first.into_iter().chain(last).map(|h| h.uid).collect()
        } else {
            hits.iter().map(|h| h.uid).collect()
        };
        uids.sort_unstable();
        uids.dedup();
        self.saved = uids;
    }
}
