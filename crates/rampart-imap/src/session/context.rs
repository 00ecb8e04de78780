//! Search contexts (RFC 5267 §4, CONTEXT=SEARCH and CONTEXT=SORT): a `SEARCH` or `SORT`
//! `RETURN (UPDATE ...)` keeps its search, and whenever the selected mailbox changes the
//! session tells the client what joined or left the result until CANCELUPDATE or the mailbox
//! is closed. A SEARCH context hears `* ESEARCH (TAG "t") [UID] ADDTO (0 set)` /
//! `REMOVEFROM (0 set)`, position 0 as SEARCH has no order to place them in (as Dovecot sends
//! them); a SORT context hears the positions in its sorted list (`ADDTO (3 17 5 20:21)`,
//! `rampart_imap_proto::context`).
//!
//! The result is re-evaluated by running the search again, only after a sync that saw the
//! mailbox change, so a context costs one search per change. Messages expunged from a
//! sequence-number context are not named again: the EXPUNGE that announced them removed
//! them (their numbers are gone, and the client's sorted list lost them with it); a UID
//! context hears their UIDs in REMOVEFROM.

use std::collections::BTreeSet;

use rampart_store::StoreError;

use super::{Next, Session, State};
use crate::parser::sequence::compact;
use crate::parser::{SearchKey, SortCriterion};
use crate::response::line;
use rampart_imap_proto::context::{added_pairs, removed_pairs, sort_update};

/// A session keeps at most this many contexts: each one is searched again after every
/// change of the mailbox (RFC 5267 §4.2 lets a server refuse more with NOUPDATE).
pub const MAX_CONTEXTS: usize = 8;

/// One SEARCH whose result is kept up to date.
pub(crate) struct SearchContext {
    tag: String,
    uid: bool,
    key: SearchKey,
    /// The UIDs in the result the client knows.
    matches: BTreeSet<u32>,
    /// A SORT context's criteria and the UIDs of its result in their order.
    sort: Option<(Vec<SortCriterion>, Vec<u32>)>,
}

impl Session {
    /// Whether another context may be kept; the tagged NO [NOUPDATE] is answered when not.
    pub(super) fn context_refused(&self, out: &mut Vec<u8>, tag: &str) -> bool {
        if self.contexts.len() < MAX_CONTEXTS {
            return false;
        }
        line(out, &format!("{tag} NO [NOUPDATE \"{tag}\"] Too many searches kept up to date"));
        true
    }

    /// Keeps a SEARCH (or, with `criteria`, a SORT) ... RETURN (UPDATE) whose result is
    /// `uids` (in sort order for a SORT).
    pub(super) fn keep_context(&mut self, tag: &str, uid: bool, key: SearchKey, criteria: Option<Vec<SortCriterion>>, uids: impl IntoIterator<Item = u32>) {
        self.contexts.retain(|c| c.tag != tag);
        let order: Vec<u32> = uids.into_iter().collect();
        let sort = criteria.map(|c| (c, order.clone()));
        self.contexts.push(SearchContext { tag: tag.to_string(), uid, key, matches: order.into_iter().collect(), sort });
        self.contexts_seen = self.mailbox_signature();
    }

    /// What tells that the selected mailbox changed since the contexts were last evaluated.
    fn mailbox_signature(&self) -> (u64, usize) {
        match &self.state {
            State::Selected(_, view) => (view.highestmodseq, view.exists()),
            _ => (0, 0),
        }
    }

    /// After a sync: ADDTO and REMOVEFROM for every context whose result changed.
    pub(super) async fn update_contexts(&mut self, out: &mut Vec<u8>) -> Result<(), StoreError> {
        if self.contexts.is_empty() || self.mailbox_signature() == self.contexts_seen {
            return Ok(());
        }
        self.contexts_seen = self.mailbox_signature();
        let mut contexts = std::mem::take(&mut self.contexts);
        for ctx in &mut contexts {
            if ctx.sort.is_some() {
                self.update_sort_context(out, ctx).await?;
                continue;
            }
            let mut now = BTreeSet::new();
            self.scan(&ctx.key, false, false, |hit, _, _| {
                now.insert(hit.uid);
            })
            .await?;
            let State::Selected(_, view) = &self.state else { break };
            // A sequence-number context names what is still in the mailbox by its number.
            let number = |uid: u32| if ctx.uid { Some(uid) } else { view.index_of_uid(uid).map(|i| i as u32 + 1) };
            let removed: Vec<u32> = ctx.matches.difference(&now).filter_map(|&u| number(u)).collect();
            let added: Vec<u32> = now.difference(&ctx.matches).filter_map(|&u| number(u)).collect();
            let uid = if ctx.uid { " UID" } else { "" };
            if !removed.is_empty() {
                line(out, &format!("* ESEARCH (TAG \"{}\"){uid} REMOVEFROM (0 {})", ctx.tag, compact(&removed)));
            }
            if !added.is_empty() {
                line(out, &format!("* ESEARCH (TAG \"{}\"){uid} ADDTO (0 {})", ctx.tag, compact(&added)));
            }
            ctx.matches = now;
        }
        self.contexts = contexts;
        Ok(())
    }

    /// A SORT context's update (RFC 5267 §4.3.2-4): removals at their positions in the list the
    /// client has, then additions at their positions in the new one.
    async fn update_sort_context(&self, out: &mut Vec<u8>, ctx: &mut SearchContext) -> Result<(), StoreError> {
        let Some((criteria, order)) = &mut ctx.sort else { return Ok(()) };
        let now: Vec<u32> = self.sorted(criteria, &ctx.key).await?.iter().map(|h| h.uid).collect();
        let State::Selected(_, view) = &self.state else { return Ok(()) };
        let number = |uid: u32| if ctx.uid { Some(uid) } else { view.index_of_uid(uid).map(|i| i as u32 + 1) };
        // A sequence-number context's client dropped the expunged messages with the EXPUNGE.
        let known: Vec<u32> = order.iter().copied().filter(|&u| number(u).is_some()).collect();
        let update = sort_update(&known, &now);
        let numbered = |pairs: &[(u32, u32)]| -> Vec<(u32, u32)> { pairs.iter().filter_map(|&(p, u)| Some((p, number(u)?))).collect() };
        let uid = if ctx.uid { " UID" } else { "" };
        if !update.removed.is_empty() {
            line(out, &format!("* ESEARCH (TAG \"{}\"){uid} REMOVEFROM ({})", ctx.tag, removed_pairs(&numbered(&update.removed))));
        }
        if !update.added.is_empty() {
            line(out, &format!("* ESEARCH (TAG \"{}\"){uid} ADDTO ({})", ctx.tag, added_pairs(&numbered(&update.added))));
        }
        ctx.matches = now.iter().copied().collect();
        *order = now;
        Ok(())
    }

    /// CANCELUPDATE (RFC 5267 §4.3): every tag named must have a context.
    pub(super) async fn cancel_update(&mut self, out: &mut Vec<u8>, tag: &str, tags: Vec<String>) -> Result<Next, StoreError> {
        if tags.iter().any(|t| !self.contexts.iter().any(|c| &c.tag == t)) {
            line(out, &format!("{tag} NO Unknown search tag"));
            return Ok(Next::Continue);
        }
        self.contexts.retain(|c| !tags.contains(&c.tag));
        self.done(out, tag, "CANCELUPDATE completed").await
    }
}
