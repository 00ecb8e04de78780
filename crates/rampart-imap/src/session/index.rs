//! What SEARCH, SORT and THREAD read instead of messages: the summaries the store keeps
//! (made by [`MessageSummarizer`] when a message is stored, or here by the first command that
//! had to read an older one, [`Backfill`]) and the full-text index of their words
//! ([`word_candidates`]).

use std::collections::{HashMap, HashSet};

use rampart_store::{AccountId, MailStore, MailboxId, StoreError, WordMatch};

use crate::mime::Parsed;
use crate::parser::SearchKey;
use rampart_imap_proto::summary;
use rampart_imap_proto::words::{Term, terms};

/// The summarizer the server gives the store: IMAP's own summary of each message stored.
pub struct MessageSummarizer;

/// The version of [`summary::summarize`]'s output. Raise it with any change to what a summary
/// holds (its records' layout or the values computed into them): the store then makes every
/// older summary again in the background. Until it has, an older record of another layout
/// reads as absent (the message is read instead); a change of values alone should therefore
/// come with a new layout version too (`facts::Keys`), if old answers must not be given
/// meanwhile.
///
/// 2: ENVELOPE of a bare-word address (`From: d`) as `(NIL NIL "d" "MISSING_DOMAIN")` and its
/// SORT key by the local part (stop 23); summaries made before that gave NIL.
pub const SUMMARY_VERSION: u32 = 2;

impl rampart_store::Summarizer for MessageSummarizer {
    fn summarize(&self, message: &[u8]) -> rampart_store::Summary {
        to_store(summary::summarize(message))
    }

    fn summarize_encrypted(&self, plain: &[u8], stored: &[u8]) -> rampart_store::Summary {
        to_store(summary::encrypted(plain, stored))
    }

    fn version(&self) -> u32 {
        SUMMARY_VERSION
    }
}

fn to_store(s: summary::Summary) -> rampart_store::Summary {
    rampart_store::Summary { keys: s.keys, headers: s.headers, fetch: s.fetch, words: s.words, version: SUMMARY_VERSION }
}

/// A word fragment found inside more indexed words than this is not looked up: the condition
/// is dropped (the messages are then checked by reading them).
const MAX_EXPANSION: usize = 500;

/// What the full-text index answers for each BODY or TEXT string of a key (lowercased as the
/// scan compares), per account ([`word_candidates`]).
#[derive(Debug, Default)]
pub(super) struct WordHits {
    /// The summaries of the account's messages whose indexed words allow a match; None for a
    /// string the index cannot narrow. A message whose summary is indexed and not among these
    /// does not match; one among them is read to confirm.
    pub narrow: HashMap<String, Option<HashSet<i64>>>,
    /// For a message stored encrypted with a plaintext search summary, where a hit is final
    /// (`search::plain_words_hit`), strings that `narrow` answers loosely: a term the index
    /// could not expand (a fragment inside or at the end of a word, with no vocabulary to
    /// look it up in — PostgreSQL has none — or in too many words) is taken as a word's
    /// beginning rather than dropped, and a string without any term matches nothing.
    pub plain: HashMap<String, HashSet<i64>>,
}

impl WordHits {
    /// The summaries whose words hold `needle` (lowercased) for a final answer; None when the
    /// key has no such string.
    pub(super) fn plain_hits(&self, needle: &str) -> Option<&HashSet<i64>> {
        self.plain.get(needle).or_else(|| self.narrow.get(needle).and_then(Option::as_ref))
    }
}

/// For each BODY or TEXT string of the key, what the index of `account`'s messages answers.
pub(super) async fn word_candidates(store: &dyn MailStore, account: AccountId, key: &SearchKey) -> Result<WordHits, StoreError> {
    let mut needles = Vec::new();
    text_needles(key, &mut needles);
    let mut out = WordHits::default();
    for needle in needles {
        if out.narrow.contains_key(&needle) {
            continue;
        }
        let mut conditions = Vec::new();
        // Whether a term was dropped, and the conditions with each such term as a prefix.
        let (mut loose, mut firm) = (false, Vec::new());
        for term in terms(&needle) {
            let condition = match term {
                Term::Exact(w) => WordMatch::Is(w),
                Term::Prefix(w) => WordMatch::StartsWith(w),
                Term::Suffix(w) => match store.words_containing(&w, MAX_EXPANSION).await? {
                    Some(found) => WordMatch::EndsWith { known: found.into_iter().filter(|f| f.ends_with(&w)).collect(), suffix: w },
                    None => {
                        loose = true;
                        firm.push(WordMatch::StartsWith(w));
                        continue;
                    }
                },
                Term::Infix(w) => match store.words_containing(&w, MAX_EXPANSION).await? {
                    Some(known) => WordMatch::Contains { fragment: w, known },
                    None => {
                        loose = true;
                        firm.push(WordMatch::StartsWith(w));
                        continue;
                    }
                },
            };
            firm.push(condition.clone());
            conditions.push(condition);
        }
        if conditions.is_empty() {
            out.plain.insert(needle.clone(), HashSet::new());
        }
        if loose && !firm.is_empty() {
            out.plain.insert(needle.clone(), store.word_candidates(account, firm).await?);
        }
        let set = if conditions.is_empty() { None } else { Some(store.word_candidates(account, conditions).await?) };
        out.narrow.insert(needle, set);
    }
    Ok(out)
}

/// The strings of the key's BODY and TEXT criteria, lowercased.
fn text_needles(key: &SearchKey, out: &mut Vec<String>) {
    match key {
        SearchKey::Body(s) | SearchKey::Text(s) => out.push(s.to_lowercase()),
        SearchKey::And(keys) => keys.iter().for_each(|k| text_needles(k, out)),
        SearchKey::Or(a, b) => {
            text_needles(a, out);
            text_needles(b, out);
        }
        SearchKey::Not(a) => text_needles(a, out),
        _ => {}
    }
}

/// Summaries made by a command that read messages stored without one; kept in batches, so
/// the next command reads the summaries instead.
pub(super) struct Backfill {
    mailbox: MailboxId,
    pending: Vec<(u32, rampart_store::Summary)>,
}

/// Summaries kept per write.
const BATCH: usize = 256;

impl Backfill {
    pub(super) fn new(mailbox: MailboxId) -> Backfill {
        Backfill { mailbox, pending: Vec::new() }
    }

    /// Adds the summary of message `uid`, read and parsed by the command.
    pub(super) async fn add(&mut self, store: &dyn MailStore, uid: u32, parsed: &Parsed<'_>) {
        self.pending.push((uid, to_store(summary::of(parsed))));
        if self.pending.len() >= BATCH {
            self.flush(store).await;
        }
    }

    /// Keeps what is pending. A failure costs only the saving: the messages are read again
    /// next time, so it is logged and the command goes on.
    pub(super) async fn flush(&mut self, store: &dyn MailStore) {
        let batch = std::mem::take(&mut self.pending);
        if batch.is_empty() {
            return;
        }
        if let Err(e) = store.save_summaries(self.mailbox, batch).await {
            tracing::warn!(event = "summary_save_failed", mailbox = self.mailbox, error = %e);
        }
    }
}
