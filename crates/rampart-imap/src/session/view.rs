//! A selected mailbox as one session sees it: message sequence numbers ↔ UIDs, flags, and
//! the changes other sessions made that this one has not been told about yet.
//!
//! RFC 3501 §7.4.1: an EXPUNGE may not be sent while a FETCH, STORE or SEARCH is answered,
//! nor when no command is in progress, or sequence numbers would shift under the client.
//! Messages another session expunged therefore stay in the view (flagged as gone) until a
//! command that may announce them; new messages and flag changes are told at every sync.

use std::collections::BTreeSet;

use rampart_store::{MailStore, MailboxId, MailboxState, MessageRecord, StoreError};
use tokio::sync::watch;

use crate::parser::SequenceSet;
use crate::response::{flag_list, line};

/// The system flags a client may set (RFC 3501 §2.3.2); \Recent is the server's.
pub const SYSTEM_FLAGS: [&str; 5] = ["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"];

#[derive(Debug, Clone)]
pub struct Msg {
    pub uid: u32,
    pub flags: Vec<String>,
    pub modseq: u64,
    pub size: u64,
    pub internal_date: i64,
    pub recent: bool,
    /// Expunged by another session; announced at the next point that allows it.
    pub gone: bool,
}

impl Msg {
    fn from_record(r: MessageRecord, recent: bool) -> Msg {
        Msg {
            uid: r.uid,
            flags: split_flags(&r.flags),
            modseq: r.modseq,
            size: r.size,
            internal_date: r.internal_date,
            recent,
            gone: false,
        }
    }

    pub fn has_flag(&self, flag: &str) -> bool {
        if flag.eq_ignore_ascii_case("\\Recent") {
            return self.recent;
        }
        self.flags.iter().any(|f| f.eq_ignore_ascii_case(flag))
    }

    /// FLAGS as sent: the stored flags plus \Recent for this session.
    pub fn flags_out(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.flags.iter().map(String::as_str).collect();
        if self.recent {
            v.push("\\Recent");
        }
        v
    }
}

pub fn split_flags(s: &str) -> Vec<String> {
    s.split_ascii_whitespace().map(str::to_string).collect()
}

pub struct View {
    pub id: MailboxId,
    pub name: String,
    pub uidvalidity: u32,
    pub read_only: bool,
    pub msgs: Vec<Msg>,
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
    watch: watch::Receiver<u64>,
}

impl View {
    /// Opens a view on a snapshot. `recent_from`: UIDs from there on are \Recent here.
    pub fn open(
        state: MailboxState,
        records: Vec<MessageRecord>,
        recent_from: u32,
        read_only: bool,
        watch: watch::Receiver<u64>,
    ) -> View {
        let msgs: Vec<Msg> = records.into_iter().map(|r| {
            let recent = r.uid >= recent_from;
            Msg::from_record(r, recent)
        }).collect();
        let mut keywords = BTreeSet::new();
        for m in &msgs {
            for f in &m.flags {
                if !f.starts_with('\\') {
                    keywords.insert(f.clone());
                }
            }
        }
        let view = View {
            id: state.id,
            name: state.name,
            uidvalidity: state.uidvalidity,
            read_only,
            msgs,
            uidnext: state.uidnext,
            highestmodseq: state.highestmodseq,
            known_modseq: state.highestmodseq,
            keywords,
            told: 0,
            vanished: false,
            watch,
        };
        View { told: view.msgs.len(), ..view }
    }

    pub fn watch(&self) -> watch::Receiver<u64> {
        self.watch.clone()
    }

    pub fn exists(&self) -> usize {
        self.msgs.len()
    }

    pub fn recent(&self) -> usize {
        self.msgs.iter().filter(|m| m.recent).count()
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
        self.msgs.binary_search_by_key(&uid, |m| m.uid).ok()
    }

    /// The view's indices a sequence set names, ascending. With `uid`, the set holds UIDs and
    /// `*` is the largest UID (RFC 3501 §6.4.8); otherwise message numbers.
    pub fn resolve(&self, set: &SequenceSet, uid: bool) -> Vec<usize> {
        if self.msgs.is_empty() {
            return Vec::new();
        }
        if uid {
            let star = self.msgs.last().map_or(0, |m| m.uid);
            return (0..self.msgs.len()).filter(|&i| set.contains(self.msgs[i].uid, star)).collect();
        }
        let star = self.msgs.len() as u32;
        (0..self.msgs.len()).filter(|&i| set.contains(i as u32 + 1, star)).collect()
    }

    /// Whether a message-number set names numbers beyond the mailbox (RFC 3501 §9
    /// seq-number: BAD). A range with `*` is never out of range: `5:*` with three messages is
    /// `3:5`, and `1:*` in an empty mailbox names nothing, which clients rely on.
    pub fn out_of_range(&self, set: &SequenceSet) -> bool {
        use crate::parser::SeqNum::Value;
        let max = self.msgs.len() as u32;
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

    /// Records flags this session changed so a later sync does not report them again.
    pub fn set_flags(&mut self, uid: u32, flags: &str, modseq: u64) -> Option<usize> {
        let i = self.index_of_uid(uid)?;
        self.msgs[i].flags = split_flags(flags);
        self.msgs[i].modseq = modseq;
        if flags.split_ascii_whitespace().any(|f| f.eq_ignore_ascii_case("\\Recent")) {
            self.msgs[i].flags.retain(|f| !f.eq_ignore_ascii_case("\\Recent"));
        }
        Some(i)
    }

    /// Writes `* n FETCH (FLAGS ...)` for the message at `i`.
    pub fn write_fetch_flags(&self, out: &mut Vec<u8>, i: usize, with_uid: bool, condstore: bool) {
        let m = &self.msgs[i];
        out.extend_from_slice(format!("* {} FETCH (", i + 1).as_bytes());
        if with_uid {
            out.extend_from_slice(format!("UID {} ", m.uid).as_bytes());
        }
        out.extend_from_slice(b"FLAGS ");
        flag_list(out, &m.flags_out());
        if condstore {
            out.extend_from_slice(format!(" MODSEQ ({})", m.modseq).as_bytes());
        }
        out.extend_from_slice(b")\r\n");
    }

    /// Expunges that this session did itself: removed and announced now.
    pub fn remove_expunged(&mut self, out: &mut Vec<u8>, uids: &[u32]) {
        for &uid in uids {
            if let Some(i) = self.index_of_uid(uid) {
                self.msgs[i].gone = true;
            }
        }
        self.announce_gone(out);
    }

    fn announce_gone(&mut self, out: &mut Vec<u8>) {
        if self.vanished {
            let uids: Vec<u32> = self.msgs.iter().filter(|m| m.gone).map(|m| m.uid).collect();
            if !uids.is_empty() {
                line(out, &format!("* VANISHED {}", crate::parser::sequence::compact(&uids)));
                self.told = self.told.saturating_sub(uids.len());
            }
            self.msgs.retain(|m| !m.gone);
            return;
        }
        // Highest first, so each number is still right when the client reads it.
        for i in (0..self.msgs.len()).rev() {
            if self.msgs[i].gone {
                line(out, &format!("* {} EXPUNGE", i + 1));
                self.told = self.told.saturating_sub(1);
            }
        }
        self.msgs.retain(|m| !m.gone);
    }

    /// EXISTS and RECENT when the count differs from what the client was told.
    fn announce_count(&mut self, out: &mut Vec<u8>) {
        if self.msgs.len() != self.told {
            line(out, &format!("* {} EXISTS", self.msgs.len()));
            line(out, &format!("* {} RECENT", self.recent()));
            self.told = self.msgs.len();
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
                if let Some(i) = self.index_of_uid(*uid) {
                    self.msgs[i].gone = true;
                }
            }
            let last = self.msgs.last().map_or(0, |m| m.uid);
            let mut new = Vec::new();
            // New keywords are announced in FLAGS before any FETCH shows them.
            self.learn_keywords(out, changes.changed.iter().map(|r| r.flags.as_str()));
            for r in changes.changed {
                if r.uid > last {
                    new.push(r);
                    continue;
                }
                let Some(i) = self.index_of_uid(r.uid) else { continue };
                let flags = split_flags(&r.flags);
                let changed = flags != self.msgs[i].flags || (condstore && r.modseq != self.msgs[i].modseq);
                self.msgs[i].modseq = r.modseq;
                if changed && !self.msgs[i].gone {
                    self.msgs[i].flags = flags;
                    self.write_fetch_flags(out, i, true, condstore);
                }
            }
            if !new.is_empty() {
                // \Recent goes to the first session that sees a message (RFC 3501 §2.3.2).
                let up_to = new.last().map_or(0, |r| r.uid.saturating_add(1));
                let recent_from = if self.read_only { u32::MAX } else { store.claim_recent(self.id, up_to).await? };
                for r in new {
                    let recent = r.uid >= recent_from;
                    self.msgs.push(Msg::from_record(r, recent));
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
        } else if expunge_ok && self.msgs.iter().any(|m| m.gone) {
            self.announce_gone(out);
        }
        Ok(())
    }
}
