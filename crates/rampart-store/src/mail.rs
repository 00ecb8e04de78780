//! What an IMAP server needs from the store beyond delivery: mailbox management, per-message
//! flags with modification sequences (RFC 7162 CONDSTORE), expunge, copy and move, APPEND,
//! quota usage and change notification.
//!
//! Flags are stored as one space-separated string per message, in the case the client gave
//! for keywords and the canonical case for system flags. Every change of a mailbox takes the
//! next value of its HIGHESTMODSEQ; expunges are remembered with theirs, so "what changed
//! since MODSEQ N" is one indexed query and no session misses a change between two looks.

use async_trait::async_trait;
use tokio::sync::watch;

use crate::summary::{Stored, Summary, Want, WordMatch};
use crate::{AccountId, Blob, DeliveryStore, MailboxId, MessageStore, Result};

/// The hierarchy separator of mailbox names.
pub const DELIMITER: char = '/';

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxState {
    pub id: MailboxId,
    pub name: String,
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub highestmodseq: u64,
    pub special_use: Option<String>,
    pub subscribed: bool,
}

/// One message as a mailbox view needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    pub uid: u32,
    pub flags: String,
    pub modseq: u64,
    pub size: u64,
    pub internal_date: i64,
    /// The zone INTERNALDATE is shown in, minutes east of UTC.
    pub internal_zone: i32,
}

/// A mailbox's messages as a view opens on them, compactly: the UIDs in order, and for each
/// message the number of its flag list among the mailbox's distinct lists (a mailbox has few
/// distinct combinations, so no string is kept per message).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ViewRows {
    pub uids: Vec<u32>,
    /// Per message, an index into `lists`.
    pub flags: Vec<u32>,
    /// The distinct flag strings.
    pub lists: Vec<String>,
}

impl ViewRows {
    /// Adds a message (UIDs must come in ascending order); `index` maps a flag string to
    /// its number in `lists`.
    pub fn push(&mut self, uid: u32, flags: &str, index: &mut std::collections::HashMap<String, u32>) {
        let n = match index.get(flags) {
            Some(&n) => n,
            None => {
                let n = self.lists.len() as u32;
                self.lists.push(flags.to_string());
                index.insert(flags.to_string(), n);
                n
            }
        };
        self.uids.push(uid);
        self.flags.push(n);
    }

    pub fn from_records(records: &[MessageRecord]) -> ViewRows {
        let mut rows = ViewRows::default();
        let mut index = std::collections::HashMap::new();
        for r in records {
            rows.push(r.uid, &r.flags, &mut index);
        }
        rows
    }
}

/// What changed in a mailbox after a MODSEQ.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub highestmodseq: u64,
    pub uidnext: u32,
    /// New or changed messages, in UID order.
    pub changed: Vec<MessageRecord>,
    /// UIDs expunged after the MODSEQ, ascending.
    pub expunged: Vec<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOp {
    Add,
    Remove,
    Replace,
}

impl FlagOp {
    /// The flag list after this operation; flags compare case-insensitively (RFC 3501
    /// §2.3.2). The store applies it, and a session predicts with it what a client believes.
    pub fn apply(self, current: &[String], flags: &[String]) -> Vec<String> {
        let mut out: Vec<String> = match self {
            FlagOp::Replace => Vec::new(),
            _ => current.to_vec(),
        };
        match self {
            FlagOp::Add | FlagOp::Replace => {
                for f in flags {
                    if !out.iter().any(|o| o.eq_ignore_ascii_case(f)) {
                        out.push(f.clone());
                    }
                }
            }
            FlagOp::Remove => out.retain(|o| !flags.iter().any(|f| f.eq_ignore_ascii_case(o))),
        }
        out
    }
}

/// The outcome of a flag change (RFC 3501 §6.4.6, RFC 7162 §3.1.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlagsUpdate {
    /// Every message that exists, with its flags after the change: (uid, flags, modseq).
    pub messages: Vec<(u32, String, u64)>,
    /// Messages left alone because they changed after UNCHANGEDSINCE.
    pub modified: Vec<u32>,
}

/// The result of COPY, MOVE or APPEND (RFC 4315 UIDPLUS): the target's UIDVALIDITY and the
/// (source UID, new UID) pairs. APPEND has source UID 0.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transfer {
    pub uidvalidity: u32,
    pub uids: Vec<(u32, u32)>,
}

/// IMAP's role. It also writes blobs (APPEND), reads messages (FETCH) and keeps annotations
/// (METADATA), hence its supertraits.
#[async_trait]
pub trait MailStore: DeliveryStore + MessageStore + crate::metadata::MetadataStore {
    async fn mailbox_state(&self, account: AccountId, name: &str) -> Result<Option<MailboxState>>;
    async fn mailbox_states(&self, account: AccountId) -> Result<Vec<MailboxState>>;
    /// Creates the mailbox and any missing parents. `Exists` when it is already there,
    /// `InvalidName` for an empty name or level.
    async fn create_mailbox(&self, account: AccountId, name: &str, special_use: Option<&str>) -> Result<MailboxId>;
    /// Deletes a mailbox and its messages. INBOX (`InboxUndeletable`) and mailboxes with
    /// children (`HasChildren`) are refused.
    async fn delete_mailbox(&self, account: AccountId, name: &str) -> Result<()>;
    /// Renames a mailbox and its children. Renaming INBOX moves its messages into a new
    /// mailbox and leaves INBOX empty (RFC 3501 §6.3.5). Renaming to INBOX or into the
    /// mailbox's own hierarchy is a `Conflict`.
    async fn rename_mailbox(&self, account: AccountId, from: &str, to: &str) -> Result<()>;
    async fn set_subscribed(&self, account: AccountId, name: &str, subscribed: bool) -> Result<()>;
    /// Every subscribed name, also of mailboxes that no longer exist (RFC 3501 §6.3.6).
    async fn subscriptions(&self, account: AccountId) -> Result<Vec<String>>;

    /// The UIDs and flags of every message, compactly, and the mailbox's state at that moment:
    /// what SELECT needs.
    async fn view_rows(&self, mailbox: MailboxId) -> Result<(MailboxState, ViewRows)>;
    /// Every message of the mailbox, in UID order, and its state at that moment.
    async fn snapshot(&self, mailbox: MailboxId) -> Result<(MailboxState, Vec<MessageRecord>)>;
    /// The records of the messages with UIDs from `first` to `last`, in UID order: what a
    /// mailbox view does not keep (sizes, dates, MODSEQs) for the commands that ask for them.
    async fn records(&self, mailbox: MailboxId, first: u32, last: u32) -> Result<Vec<MessageRecord>>;
    /// The messages with UIDs from `first` to `last`, in UID order, each with its record and
    /// the records of its summary that `want` names: what SEARCH, SORT, THREAD and FETCH read
    /// instead of the messages.
    async fn stored(&self, mailbox: MailboxId, first: u32, last: u32, want: Want) -> Result<Vec<Stored>>;
    /// Keeps the summaries of messages that had none (by UID; messages gone or summarized
    /// meanwhile are skipped). Not a change of the mailbox: no MODSEQ, no notification.
    async fn save_summaries(&self, mailbox: MailboxId, summaries: Vec<(u32, Summary)>) -> Result<()>;
    /// A number raised after every commit that made, remade or removed the summaries of
    /// messages already stored (not at delivery), deleted a mailbox or an account (their ids
    /// may be given again) or changed a UIDVALIDITY; read before [`MailStore::stored`] by what
    /// keeps a copy of summaries in memory: when it moved, the copy is stale. None when the
    /// store does not count (nothing may then be kept).
    fn summary_generation(&self) -> Option<u64> {
        None
    }
    /// Indexed words containing `fragment`, at most `limit` of them; None when there are more.
    async fn words_containing(&self, fragment: &str, limit: usize) -> Result<Option<Vec<String>>>;
    /// The summaries (numbers, as [`Stored::summary`]) of `account`'s messages whose words
    /// meet every condition. Messages whose words were not indexed are never among them.
    async fn word_candidates(&self, account: AccountId, conditions: Vec<WordMatch>) -> Result<std::collections::HashSet<i64>>;
    /// Changes after `modseq`.
    async fn changes_since(&self, mailbox: MailboxId, modseq: u64) -> Result<Changes>;
    /// Takes the \Recent messages below `up_to`: returns the first UID no session had claimed
    /// before this call; the caller sees UIDs from there up to `up_to` as recent.
    async fn claim_recent(&self, mailbox: MailboxId, up_to: u32) -> Result<u32>;
    /// The first UID no session has claimed as \Recent, claiming nothing (EXAMINE reports the
    /// count SELECT would, RFC 3501 §6.3.2, without taking the flag from the next SELECT).
    async fn peek_recent(&self, mailbox: MailboxId) -> Result<u32>;
    /// Forgets the expunged UIDs recorded before `before` (Unix seconds); a client that knew
    /// an older MODSEQ then hears every missing UID as vanished. Returns how many were forgotten.
    async fn prune_expunged(&self, before: i64) -> Result<usize>;
    /// Per-mailbox counts for STATUS: (messages, unseen, recent, total size).
    async fn mailbox_counts(&self, mailbox: MailboxId) -> Result<(u32, u32, u32, u64)>;

    async fn store_flags(
        &self,
        mailbox: MailboxId,
        uids: Vec<u32>,
        op: FlagOp,
        flags: Vec<String>,
        unchanged_since: Option<u64>,
    ) -> Result<FlagsUpdate>;
    /// Removes the messages flagged \Deleted (only those in `uids` when given). Returns the
    /// expunged UIDs, ascending.
    async fn expunge(&self, mailbox: MailboxId, uids: Option<Vec<u32>>) -> Result<Vec<u32>>;
    async fn copy_messages(&self, from: MailboxId, uids: Vec<u32>, to: MailboxId) -> Result<Transfer>;
    /// Copies and expunges the source messages in one transaction (RFC 6851).
    async fn move_messages(&self, from: MailboxId, uids: Vec<u32>, to: MailboxId) -> Result<Transfer>;
    /// Stores a message durably with the given flags and internal date; returns once fsynced.
    async fn append(&self, mailbox: MailboxId, blob: Blob, flags: String, internal_date: i64) -> Result<Transfer>;
    /// Stores several messages (blob, flags, internal date and its zone in minutes east of
    /// UTC) in one transaction, all or none (MULTIAPPEND, RFC 3502); their UIDs are
    /// consecutive, in order.
    async fn append_all(&self, mailbox: MailboxId, messages: Vec<(Blob, String, i64, i32)>) -> Result<Transfer>;
    /// For an import that keeps its source's UIDs (`rampart import maildir` with a
    /// dovecot-uidlist): the next APPEND to `mailbox` gets `next_uid`, unless the mailbox's
    /// UIDNEXT is already past it (UIDs only grow); a mailbox without messages adopts
    /// `uidvalidity`, so clients that knew the source do not fetch everything again.
    async fn set_next_uid(&self, mailbox: MailboxId, uidvalidity: Option<u32>, next_uid: u32) -> Result<()>;
    /// Bytes and messages stored for the account.
    async fn usage(&self, account: AccountId) -> Result<(u64, u64)>;
    /// Changes after every commit that touches the mailbox.
    fn watch_mailbox(&self, mailbox: MailboxId) -> watch::Receiver<u64>;
}
