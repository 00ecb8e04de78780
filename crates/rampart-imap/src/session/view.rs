//! A selected mailbox as one session sees it: message sequence numbers ↔ UIDs, flags, and
//! the changes other sessions made that this one has not been told about yet.
//!
//! RFC 3501 §7.4.1: an EXPUNGE may not be sent while a FETCH, STORE or SEARCH is answered,
//! nor when no command is in progress, or sequence numbers would shift under the client.
//! Messages another session expunged therefore stay in the view (flagged as gone) until a
//! command that may announce them; new messages and flag changes are told at every sync.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use rampart_store::{MailStore, MailboxId, MailboxState, MessageRecord, StoreError, ViewRows};
use tokio::sync::watch;

use super::flagsets::{FlagIds, FlagSets};
use crate::parser::SequenceSet;
use crate::response::{flag_list, line};

/// The system flags a client may set (RFC 3501 §2.3.2); \Recent is the server's.
pub const SYSTEM_FLAGS: [&str; 5] = ["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"];

/// One message with everything FETCH and SEARCH may ask about it, put together from the
/// view (UID, flags, \Recent) and, where needed, the store's record (size, dates, MODSEQ).
#[derive(Debug, Clone)]
pub struct Msg {
    pub uid: u32,
    /// The view's own list (shared, not copied).
    pub flags: Arc<[String]>,
    pub modseq: u64,
    pub size: u64,
    pub internal_date: i64,
    /// The zone INTERNALDATE is shown in, minutes east of UTC.
    pub internal_zone: i32,
    pub recent: bool,
}

impl Msg {
    pub fn has_flag(&self, flag: &str) -> bool {
        if flag.eq_ignore_ascii_case("\\Recent") {
            return self.recent;
        }
        self.flags.iter().any(|f| f.eq_ignore_ascii_case(flag))
    }

    /// FLAGS as sent (the stored flags plus \Recent for this session), written as a list.
    pub fn write_flags(&self, buf: &mut Vec<u8>) {
        buf.push(b'(');
        let recent = self.recent.then_some("\\Recent");
        for (i, f) in self.flags.iter().map(String::as_str).chain(recent).enumerate() {
            if i > 0 {
                buf.push(b' ');
            }
            buf.extend_from_slice(f.as_bytes());
        }
        buf.push(b')');
    }
}

pub fn split_flags(s: &str) -> Vec<String> {
    s.split_ascii_whitespace().map(str::to_string).collect()
}

/// A selected mailbox. Per message it holds only the UID and a flag-list number (six bytes;
/// 100,000 messages take about 600 KB); \Recent is a UID threshold, and sizes, dates and
/// MODSEQs are read from the store by the commands that need them.
pub struct View {
    pub id: MailboxId,
    pub name: String,
    pub uidvalidity: u32,
    pub read_only: bool,
    uids: Vec<u32>,
    flag_ids: FlagIds,
    flag_sets: FlagSets,
    /// UID ranges `[from, to)` that are \Recent in this session: what it claimed at SELECT and
    /// at each sync that saw new mail (another session may claim UIDs in between).
    recent: Vec<(u32, u32)>,
    /// Expunged by another session; announced at the next point that allows it (UIDs).
    gone: BTreeSet<u32>,
    /// MODSEQs this session's own changes took and already told the client, so the next
    /// sync does not report them again (cleared by every sync).
    own_modseqs: HashMap<u32, u64>,
    pub uidnext: u32,
    pub highestmodseq: u64,
    /// The MODSEQ up to which this view has seen the store's changes.
    known_modseq: u64,
    /// Keywords announced in FLAGS.
    pub keywords: BTreeSet<String>,
    /// The message count the client was last told (EXISTS minus announced EXPUNGEs).
    told: usize,
    /// QRESYNC is on: expunges go out as one `VANISHED` of UIDs (RFC 7162 §3.2.10).
    pub vanished: bool,
    /// IMAP4rev2 is on (RFC 9051): no message is \Recent, no `* n RECENT` is sent.
    pub rev2: bool,
    watch: watch::Receiver<u64>,
}

impl View {
    /// Opens a view on a snapshot. `recent_from`: UIDs from there on are \Recent here.
    pub fn open(state: MailboxState, rows: ViewRows, recent_from: u32, read_only: bool, watch: watch::Receiver<u64>) -> View {
        let ViewRows { mut uids, flags, lists } = rows;
        uids.shrink_to_fit();
        let mut flag_sets = FlagSets::default();
        for l in lists {
            flag_sets.intern(&l);
        }
        let mut flag_ids = FlagIds::Narrow(Vec::with_capacity(uids.len()));
        for id in flags {
            flag_ids.push(id);
        }
        let keywords =
            flag_sets.lists.iter().flat_map(|l| l.iter()).filter(|f| !f.starts_with('\\')).cloned().collect::<BTreeSet<String>>();
        let told = uids.len();
        let recent = vec![(recent_from, state.uidnext)];
        View {
            id: state.id,
            name: state.name,
            uidvalidity: state.uidvalidity,
            read_only,
            uids,
            flag_ids,
            flag_sets,
            recent,
            gone: BTreeSet::new(),
            own_modseqs: HashMap::new(),
            uidnext: state.uidnext,
            highestmodseq: state.highestmodseq,
            known_modseq: state.highestmodseq,
            keywords,
            told,
            vanished: false,
            rev2: false,
            watch,
        }
    }

    pub fn watch(&self) -> watch::Receiver<u64> {
        self.watch.clone()
    }

    pub fn exists(&self) -> usize {
        self.uids.len()
    }

    pub fn uid(&self, i: usize) -> u32 {
        self.uids[i]
    }

    pub fn uids(&self) -> &[u32] {
        &self.uids
    }

    pub fn flags(&self, i: usize) -> &[String] {
        &self.flag_sets.lists[self.flag_ids.get(i) as usize]
    }

    fn shared_flags(&self, i: usize) -> Arc<[String]> {
        self.flag_sets.lists[self.flag_ids.get(i) as usize].clone()
    }

    pub fn is_recent(&self, i: usize) -> bool {
        if self.rev2 {
            return false;
        }
        let u = self.uids[i];
        self.recent.iter().any(|&(from, to)| u >= from && u < to)
    }

    pub fn is_gone(&self, i: usize) -> bool {
        !self.gone.is_empty() && self.gone.contains(&self.uids[i])
    }

    pub fn has_flag(&self, i: usize, flag: &str) -> bool {
        if flag.eq_ignore_ascii_case("\\Recent") {
            return self.is_recent(i);
        }
        self.flags(i).iter().any(|f| f.eq_ignore_ascii_case(flag))
    }

    /// The message at `i` with the store's record of it (size, dates, MODSEQ), or zeros for
    /// those when the caller needs none of them.
    pub fn msg(&self, i: usize, record: Option<&MessageRecord>) -> Msg {
        Msg {
            uid: self.uids[i],
            flags: self.shared_flags(i),
            modseq: record.map_or(0, |r| r.modseq),
            size: record.map_or(0, |r| r.size),
            internal_date: record.map_or(0, |r| r.internal_date),
            internal_zone: record.map_or(0, |r| r.internal_zone),
            recent: self.is_recent(i),
        }
    }

    pub fn recent(&self) -> usize {
        let below = |x: u32| self.uids.partition_point(|&u| u < x);
        self.recent.iter().map(|&(from, to)| below(to).saturating_sub(below(from))).sum()
    }

    /// `* FLAGS` and `* OK [PERMANENTFLAGS]` (RFC 3501 §6.3.1).
    pub fn write_flags(&self, out: &mut Vec<u8>) {
        let mut all: Vec<&str> = SYSTEM_FLAGS.to_vec();
        all.extend(self.keywords.iter().map(String::as_str));
        out.extend_from_slice(b"* FLAGS ");
        flag_list(out, &all);
        out.extend_from_slice(b"\r\n");
        if self.read_only {
            line(out, "* OK [PERMANENTFLAGS ()] Read-only mailbox");
        } else {
            all.push("\\*");
            out.extend_from_slice(b"* OK [PERMANENTFLAGS ");
            flag_list(out, &all);
            out.extend_from_slice(b"] Flags permitted\r\n");
        }
    }

    /// Index of a UID in the view.
    pub fn index_of_uid(&self, uid: u32) -> Option<usize> {
        self.uids.binary_search(&uid).ok()
    }

    /// The view's indices a sequence set names, ascending. With `uid`, the set holds UIDs and
    /// `*` is the largest UID (RFC 3501 §6.4.8); otherwise message numbers.
    pub fn resolve(&self, set: &SequenceSet, uid: bool) -> Vec<usize> {
        if self.uids.is_empty() {
            return Vec::new();
        }
        if uid {
            let star = self.uids.last().copied().unwrap_or(0);
            return (0..self.uids.len()).filter(|&i| set.contains(self.uids[i], star)).collect();
        }
        let star = self.uids.len() as u32;
        (0..self.uids.len()).filter(|&i| set.contains(i as u32 + 1, star)).collect()
    }

    /// Whether a message-number set names numbers beyond the mailbox (RFC 3501 §9
    /// seq-number: BAD). A range with `*` is never out of range: `5:*` with three messages is
    /// `3:5`, and `1:*` in an empty mailbox names nothing, which clients rely on.
    pub fn out_of_range(&self, set: &SequenceSet) -> bool {
        use crate::parser::SeqNum::Value;
        let max = self.uids.len() as u32;
        set.0.iter().any(|&(a, b)| matches!((a, b), (Value(x), Value(y)) if x > max || y > max))
    }

    /// Adds keywords not seen before to the mailbox's FLAGS and announces the new list
    /// (RFC 3501 §7.2.6), so a client never meets a keyword it was not told about.
    pub fn learn_keywords<'a>(&mut self, out: &mut Vec<u8>, flag_lists: impl Iterator<Item = &'a str>) {
        let mut grew = false;
        for list in flag_lists {
            for f in list.split_ascii_whitespace() {
                if !f.starts_with('\\') && !self.keywords.contains(f) {
                    self.keywords.insert(f.to_string());
                    grew = true;
                }
            }
        }
        if grew {
            self.write_flags(out);
        }
    }

    /// Records flags this session changed (and the MODSEQ it told the client), so a later
    /// sync does not report them again.
    pub fn set_flags(&mut self, uid: u32, flags: &str, modseq: u64) -> Option<usize> {
        let i = self.index_of_uid(uid)?;
        // \Recent is never stored as a flag.
        let kept: Vec<&str> = flags.split_ascii_whitespace().filter(|f| !f.eq_ignore_ascii_case("\\Recent")).collect();
        let id = self.flag_sets.intern(&kept.join(" "));
        self.flag_ids.set(i, id);
        self.own_modseqs.insert(uid, modseq);
        Some(i)
    }

    /// The MODSEQ this session's own change gave a message since the last sync.
    pub fn own_modseq(&self, uid: u32) -> Option<u64> {
        self.own_modseqs.get(&uid).copied()
    }

    /// Writes `* n FETCH (FLAGS ...)` for the message at `i`, with its MODSEQ when given
    /// (CONDSTORE).
    pub fn write_fetch_flags(&self, out: &mut Vec<u8>, i: usize, with_uid: bool, modseq: Option<u64>) {
        out.extend_from_slice(format!("* {} FETCH (", i + 1).as_bytes());
        if with_uid {
            out.extend_from_slice(format!("UID {} ", self.uids[i]).as_bytes());
        }
        out.extend_from_slice(b"FLAGS ");
        let mut flags: Vec<&str> = self.flags(i).iter().map(String::as_str).collect();
        if self.is_recent(i) {
            flags.push("\\Recent");
        }
        flag_list(out, &flags);
        if let Some(m) = modseq {
            out.extend_from_slice(format!(" MODSEQ ({m})").as_bytes());
        }
        out.extend_from_slice(b")\r\n");
    }

    /// Expunges that this session did itself: removed and announced now.
    pub fn remove_expunged(&mut self, out: &mut Vec<u8>, uids: &[u32]) {
        for &uid in uids {
            if self.index_of_uid(uid).is_some() {
                self.gone.insert(uid);
            }
        }
        self.announce_gone(out);
    }

    fn announce_gone(&mut self, out: &mut Vec<u8>) {
        if self.gone.is_empty() {
            return;
        }
        if self.vanished {
            let uids: Vec<u32> = self.gone.iter().copied().collect();
            line(out, &format!("* VANISHED {}", crate::parser::sequence::compact(&uids)));
            self.told = self.told.saturating_sub(uids.len());
        } else {
            // Highest first, so each number is still right when the client reads it.
            for i in (0..self.uids.len()).rev() {
                if self.gone.contains(&self.uids[i]) {
                    line(out, &format!("* {} EXPUNGE", i + 1));
                    self.told = self.told.saturating_sub(1);
                }
            }
        }
        let keep: Vec<bool> = self.uids.iter().map(|u| !self.gone.contains(u)).collect();
        self.flag_ids.retain_by(&keep);
        let gone = std::mem::take(&mut self.gone);
        self.uids.retain(|u| !gone.contains(u));
    }

    /// EXISTS and RECENT when the count differs from what the client was told.
    fn announce_count(&mut self, out: &mut Vec<u8>) {
        if self.uids.len() != self.told {
            line(out, &format!("* {} EXISTS", self.uids.len()));
            if !self.rev2 {
                line(out, &format!("* {} RECENT", self.recent()));
            }
            self.told = self.uids.len();
        }
    }

    /// Learns what changed in the store and tells the client what it may hear now.
    pub async fn sync(
        &mut self,
        store: &dyn MailStore,
        out: &mut Vec<u8>,
        expunge_ok: bool,
        condstore: bool,
    ) -> Result<(), StoreError> {
        // Mark the watch seen before reading, so a change that lands during the read wakes
        // IDLE again rather than being lost.
        self.watch.borrow_and_update();
        let changes = store.changes_since(self.id, self.known_modseq).await?;
        if changes.highestmodseq > self.known_modseq {
            for uid in &changes.expunged {
                if self.index_of_uid(*uid).is_some() {
                    self.gone.insert(*uid);
                }
            }
            let last = self.uids.last().copied().unwrap_or(0);
            let mut new = Vec::new();
            // New keywords are announced in FLAGS before any FETCH shows them.
            self.learn_keywords(out, changes.changed.iter().map(|r| r.flags.as_str()));
            let own = std::mem::take(&mut self.own_modseqs);
            for r in changes.changed {
                if r.uid > last {
                    new.push(r);
                    continue;
                }
                let Some(i) = self.index_of_uid(r.uid) else { continue };
                let id = self.flag_sets.intern(&r.flags);
                // With CONDSTORE a new MODSEQ is news too, unless this session's own change
                // took it and already said so.
                let told_modseq = own.get(&r.uid) == Some(&r.modseq);
                let changed = id != self.flag_ids.get(i) || (condstore && !told_modseq);
                if changed && !self.is_gone(i) {
                    self.flag_ids.set(i, id);
                    self.write_fetch_flags(out, i, true, condstore.then_some(r.modseq));
                }
            }
            if let Some(up_to) = new.last().map(|r| r.uid.saturating_add(1)) {
                // \Recent goes to the first session that sees a message (RFC 3501 §2.3.2).
                if !self.read_only {
                    let from = store.claim_recent(self.id, up_to).await?;
                    self.recent.push((from, up_to));
                }
                for r in new {
                    self.uids.push(r.uid);
                    let id = self.flag_sets.intern(&r.flags);
                    self.flag_ids.push(id);
                }
            }
            self.known_modseq = changes.highestmodseq;
            self.highestmodseq = changes.highestmodseq;
            self.uidnext = changes.uidnext;
            if expunge_ok {
                self.announce_gone(out);
            }
            // After the expunges, so the count matches what the client holds.
            self.announce_count(out);
        } else if expunge_ok && !self.gone.is_empty() {
            self.announce_gone(out);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(n: u32, recent_from: u32) -> View {
        let state = MailboxState {
            id: 1,
            name: "INBOX".into(),
            uidvalidity: 1,
            uidnext: n + 1,
            highestmodseq: 7,
            special_use: None,
            subscribed: true,
        };
        let flags = ["", "\\Seen", "\\Seen \\Flagged", "$Label1 \\Seen"];
        let records = (1..=n)
            .map(|uid| MessageRecord { uid, flags: flags[uid as usize % 4].into(), modseq: 1, size: 5000, internal_date: 0, internal_zone: 0 })
            .collect();
        let records: Vec<MessageRecord> = records;
        View::open(state, ViewRows::from_records(&records), recent_from, false, watch::channel(0).1)
    }

    #[test]
    fn a_large_mailbox_costs_six_bytes_a_message() {
        let started = std::time::Instant::now();
        let v = view(100_000, 99_990);
        let took = started.elapsed();
        let bytes = match &v.flag_ids {
            FlagIds::Narrow(f) => f.capacity() * 2,
            FlagIds::Wide(f) => f.capacity() * 4,
        } + v.uids.capacity() * 4;
        println!("100,000 messages: {bytes} bytes of view, opened in {took:?}");
        assert!(bytes <= 600_000, "{bytes}");
        assert_eq!(v.flag_sets.lists.len(), 4);
        assert_eq!(v.keywords.iter().collect::<Vec<_>>(), ["$Label1"]);
        assert_eq!(v.recent(), 11);
        assert!(v.is_recent(99_999) && !v.is_recent(99_988));
        // Index 3 is UID 4, without flags.
        assert!(v.has_flag(1, "\\seen") && !v.has_flag(3, "\\Seen") && v.has_flag(99_999, "\\Recent"));
    }

    #[test]
    fn flag_numbers_widen_past_65536_lists() {
        let mut v = view(3, u32::MAX);
        for k in 0..70_000u32 {
            v.set_flags(2, &format!("k{k}"), 9);
        }
        assert!(matches!(v.flag_ids, FlagIds::Wide(_)));
        // UID 2 is index 1.
        assert_eq!(v.flags(1), ["k69999"]);
        assert_eq!(v.flags(2), ["$Label1", "\\Seen"]);
        assert_eq!(v.own_modseq(2), Some(9));
        assert_eq!(v.recent(), 0);
    }
}
