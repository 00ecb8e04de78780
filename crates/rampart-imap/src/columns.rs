//! What SORT, THREAD and header SEARCH read of a mailbox's summaries, kept in memory as
//! columns ([`Columns`]) shared by every session on the mailbox, so that a command over a
//! large mailbox walks a few packed arrays instead of reading one SQLite row per message.
//!
//! Per message: UID, size, INTERNALDATE, the summary's number (for the full-text index), the
//! facts record (SORT's and THREAD's keys, [`Keys`]) and, per header field SEARCH keeps
//! ([`SEARCHED`]), its lowercased values one after the other, each ended by a NUL, so that
//! `HEADER field s` is one substring search in the message's slice of that column.
//!
//! Only what never changes for a UID is kept: flags and MODSEQs stay with the session's view
//! and the store (a key with MODSEQ reads the store as before). The copy is keyed by mailbox
//! and UIDVALIDITY, built on the first command that needs it, extended by the UIDs delivered
//! since (UIDs only grow, and the store commits them in order, so the UIDs above the last one
//! kept are all new), and made again when the store reports summaries remade
//! ([`MailStore::summary_generation`]: the background backfill, a command that summarized
//! messages, a deleted mailbox or account whose id may be given again) or when more than half
//! of it is expunged. Expunged UIDs still kept are never
//! looked at: the scan walks the view's UIDs. A message without a readable summary is kept as
//! unknown, and the scan reads it as it did without the cache.
//!
//! Memory is bounded (`store.imap_column_cache`, bytes): the least recently used mailboxes
//! are dropped past it, and a mailbox bigger than the whole budget is not kept at all. The
//! copy is in memory only, never written anywhere (an encrypted store stays encrypted on
//! disk).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rampart_imap_proto::facts::Keys;
use rampart_imap_proto::summary::{Headers, SEARCHED, searched};
use rampart_store::{MailStore, MailboxId, Stored, StoreError, Want};

/// The summary number of a message without one.
const NO_SUMMARY: i64 = i64::MIN;
/// Bit of [`Chunk::present`]: the message's header record was read (else its fields are
/// unknown). The low bits say which fields of [`SEARCHED`] have values.
const KNOWN: u8 = 0x80;
/// A tail chunk smaller than this is merged with the rows that extend it, so a mailbox that
/// grows one message at a time does not end up as thousands of chunks.
const SMALL_CHUNK: usize = 4096;

/// Byte strings one after the other, with where each message's ends.
#[derive(Debug, Default, Clone)]
struct Packed {
    data: Vec<u8>,
    ends: Vec<u32>,
}

impl Packed {
    fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.data[start..self.ends[i] as usize]
    }

    /// Ends message `i`'s slice; false when the column outgrew 4 GiB (not kept then).
    fn close(&mut self) -> bool {
        match u32::try_from(self.data.len()) {
            Ok(end) => {
                self.ends.push(end);
                true
            }
            Err(_) => false,
        }
    }

    fn bytes(&self) -> usize {
        self.data.capacity() + self.ends.capacity() * 4
    }
}

/// The columns of a run of messages, ascending by UID. Never changed once made.
#[derive(Debug, Default)]
pub struct Chunk {
    uids: Vec<u32>,
    sizes: Vec<u64>,
    internal_dates: Vec<i64>,
    summaries: Vec<i64>,
    keys: Packed,
    headers: [Packed; SEARCHED.len()],
    present: Vec<u8>,
}

impl Chunk {
    /// The columns of `rows` (as [`MailStore::stored`] gives them, keys and headers read);
    /// None when a column would pass 4 GiB.
    fn of(rows: &[Stored]) -> Option<Chunk> {
        let mut c = Chunk::default();
        for r in rows {
            c.uids.push(r.uid);
            c.sizes.push(r.size);
            c.internal_dates.push(r.internal_date);
            c.summaries.push(r.summary.unwrap_or(NO_SUMMARY));
            // A record that does not read (another layout, damaged) is kept as none.
            if let Some(k) = r.keys.as_deref().filter(|k| Keys::parse(k).is_some()) {
                c.keys.data.extend_from_slice(k);
            }
            let mut present = 0;
            if let Some(h) = r.headers.as_deref().and_then(Headers::parse) {
                present |= KNOWN;
                for (i, column) in c.headers.iter_mut().enumerate() {
                    for v in h.values(i) {
                        present |= 1 << i;
                        column.data.extend_from_slice(v.as_bytes());
                        column.data.push(0);
                    }
                }
            }
            c.present.push(present);
            if !c.keys.close() || !c.headers.iter_mut().all(Packed::close) {
                return None;
            }
        }
        c.shrink();
        Some(c)
    }

    fn shrink(&mut self) {
        self.uids.shrink_to_fit();
        self.sizes.shrink_to_fit();
        self.internal_dates.shrink_to_fit();
        self.summaries.shrink_to_fit();
        self.present.shrink_to_fit();
        for p in std::iter::once(&mut self.keys).chain(self.headers.iter_mut()) {
            p.data.shrink_to_fit();
            p.ends.shrink_to_fit();
        }
    }

    fn bytes(&self) -> usize {
        self.uids.capacity() * 4
            + self.sizes.capacity() * 8
            + self.internal_dates.capacity() * 8
            + self.summaries.capacity() * 8
            + self.present.capacity()
            + self.keys.bytes()
            + self.headers.iter().map(Packed::bytes).sum::<usize>()
    }

    fn len(&self) -> usize {
        self.uids.len()
    }

    pub fn size(&self, i: usize) -> u64 {
        self.sizes[i]
    }

    pub fn internal_date(&self, i: usize) -> i64 {
        self.internal_dates[i]
    }

    /// The number of the message's summary; None when it has none.
    pub fn summary(&self, i: usize) -> Option<i64> {
        Some(self.summaries[i]).filter(|&s| s != NO_SUMMARY)
    }

    /// The message's facts record; None when it has no readable one.
    pub fn keys(&self, i: usize) -> Option<Keys<'_>> {
        Keys::parse(self.keys.get(i))
    }

    /// SEARCH `HEADER field s` for message `i` as [`Headers::matches`] answers it (`needle_lc`
    /// is `s` lowercased); None when the field is not kept or the message's record is unknown.
    pub fn header_matches(&self, i: usize, field: &str, needle_lc: &str) -> Option<bool> {
        let f = searched(field)?;
        let present = self.present[i];
        // A needle with a NUL could span two values: left to the record (never in practice:
        // IMAP strings hold no NUL).
        if present & KNOWN == 0 || needle_lc.as_bytes().contains(&0) {
            return None;
        }
        if present & (1 << f) == 0 {
            return Some(false);
        }
        Some(needle_lc.is_empty() || memchr::memmem::find(self.headers[f].get(i), needle_lc.as_bytes()).is_some())
    }
}

/// A mailbox's columns: chunks in UID order, as they were when the store's summaries were at
/// `generation`.
#[derive(Debug)]
pub struct Columns {
    generation: u64,
    chunks: Vec<Arc<Chunk>>,
}

impl Columns {
    fn last_uid(&self) -> u32 {
        self.chunks.iter().rev().find_map(|c| c.uids.last().copied()).unwrap_or(0)
    }

    fn len(&self) -> usize {
        self.chunks.iter().map(|c| c.len()).sum()
    }

    fn bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.bytes()).sum()
    }

    /// A walk over the messages in ascending UID order.
    pub fn cursor(&self) -> Cursor<'_> {
        Cursor { columns: self, chunk: 0, at: 0 }
    }

    /// These columns and the rows above their last UID: the tail chunk merged with them when
    /// it is small. None when a column would pass 4 GiB.
    fn extended(&self, rows: &[Stored], generation: u64) -> Option<Columns> {
        let mut chunks = self.chunks.clone();
        if rows.is_empty() {
            return Some(Columns { generation, chunks });
        }
        let tail = chunks.pop_if(|c| c.len() < SMALL_CHUNK);
        let chunk = match tail {
            Some(t) => t.merged(rows)?,
            None => Chunk::of(rows)?,
        };
        chunks.push(Arc::new(chunk));
        Some(Columns { generation, chunks })
    }
}

impl Chunk {
    /// This chunk followed by `rows`.
    fn merged(&self, rows: &[Stored]) -> Option<Chunk> {
        let new = Chunk::of(rows)?;
        let mut c = Chunk {
            uids: [&self.uids[..], &new.uids].concat(),
            sizes: [&self.sizes[..], &new.sizes].concat(),
            internal_dates: [&self.internal_dates[..], &new.internal_dates].concat(),
            summaries: [&self.summaries[..], &new.summaries].concat(),
            keys: self.keys.clone(),
            headers: self.headers.clone(),
            present: [&self.present[..], &new.present].concat(),
        };
        for (to, from) in std::iter::once(&mut c.keys).chain(c.headers.iter_mut()).zip(std::iter::once(&new.keys).chain(new.headers.iter())) {
            let base = to.data.len();
            to.data.extend_from_slice(&from.data);
            for &end in &from.ends {
                to.ends.push(u32::try_from(base + end as usize).ok()?);
            }
        }
        Some(c)
    }
}

/// Where a walk over [`Columns`] is.
pub struct Cursor<'a> {
    columns: &'a Columns,
    chunk: usize,
    at: usize,
}

impl<'a> Cursor<'a> {
    /// The message with this UID; UIDs asked must ascend.
    pub fn seek(&mut self, uid: u32) -> Option<(&'a Chunk, usize)> {
        let chunks = &self.columns.chunks;
        while let Some(c) = chunks.get(self.chunk) {
            if c.uids.last().is_none_or(|&last| last < uid) {
                self.chunk += 1;
                self.at = 0;
                continue;
            }
            // Views ask for nearly every UID in turn: the next one is most often the one.
            if c.uids[self.at] < uid {
                self.at += 1;
                if c.uids[self.at] < uid {
                    self.at += c.uids[self.at..].partition_point(|&u| u < uid);
                }
            }
            return (c.uids.get(self.at) == Some(&uid)).then_some((c.as_ref(), self.at));
        }
        None
    }
}

/// Columns of recently used mailboxes, within a memory budget; shared by every session.
pub struct ColumnCache {
    budget: usize,
    /// Expunged messages kept beyond the live ones before the columns are made again.
    slack: usize,
    slots: Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    map: HashMap<(MailboxId, u32), Slot>,
    bytes: usize,
    clock: u64,
}

struct Slot {
    columns: Arc<Columns>,
    bytes: usize,
    used: u64,
}

impl ColumnCache {
    /// A cache holding at most `budget` bytes of columns; 0 turns it off.
    pub fn new(budget: usize) -> ColumnCache {
        ColumnCache { budget, slack: SMALL_CHUNK, slots: Mutex::new(Slots::default()) }
    }

    /// The columns of mailbox `mailbox` (UIDVALIDITY `uidvalidity`) with every message up to
    /// UID `last`, made or extended as needed; `live` is how many messages the asking view
    /// holds. None when the cache is off or the store keeps no summary generation: the caller
    /// then reads the store itself.
    pub async fn get(
        &self,
        store: &dyn MailStore,
        mailbox: MailboxId,
        uidvalidity: u32,
        last: u32,
        live: usize,
    ) -> Result<Option<Arc<Columns>>, StoreError> {
        if self.budget == 0 {
            return Ok(None);
        }
        // Read before the rows: a change committed after it is seen at the next command.
        let Some(generation) = store.summary_generation() else { return Ok(None) };
        let key = (mailbox, uidvalidity);
        let kept = self.lookup(key, generation, live);
        if let Some(c) = kept.as_ref().filter(|c| c.last_uid() >= last) {
            return Ok(Some(c.clone()));
        }
        let want = Want { keys: true, headers: true, fetch: false };
        let first = kept.as_ref().map_or(1, |c| c.last_uid().saturating_add(1));
        let rows = store.stored(mailbox, first, last, want).await?;
        let made = match &kept {
            Some(c) => c.extended(&rows, generation),
            None => Chunk::of(&rows).map(|c| Columns { generation, chunks: vec![Arc::new(c)] }),
        };
        let Some(made) = made.map(Arc::new) else { return Ok(None) };
        self.keep(key, made.clone());
        Ok(Some(made))
    }

    /// The kept columns of `key`, if still of `generation` and not mostly expunged.
    fn lookup(&self, key: (MailboxId, u32), generation: u64, live: usize) -> Option<Arc<Columns>> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.clock += 1;
        let clock = slots.clock;
        let slot = slots.map.get_mut(&key)?;
        if slot.columns.generation != generation || slot.columns.len() > 2 * live + self.slack {
            return None;
        }
        slot.used = clock;
        Some(slot.columns.clone())
    }

    /// Keeps `columns` for `key`, dropping the least recently used mailboxes past the budget.
    fn keep(&self, key: (MailboxId, u32), columns: Arc<Columns>) {
        let bytes = columns.bytes();
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = slots.map.remove(&key) {
            slots.bytes -= old.bytes;
        }
        if bytes > self.budget {
            return;
        }
        while slots.bytes + bytes > self.budget {
            let Some(oldest) = slots.map.iter().min_by_key(|(_, s)| s.used).map(|(k, _)| *k) else { break };
            if let Some(old) = slots.map.remove(&oldest) {
                slots.bytes -= old.bytes;
            }
        }
        slots.clock += 1;
        let used = slots.clock;
        slots.bytes += bytes;
        slots.map.insert(key, Slot { columns, bytes, used });
    }

    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        self.slots.lock().unwrap_or_else(|e| e.into_inner()).bytes
    }
}

#[cfg(test)]
#[path = "columns_tests.rs"]
mod tests;
