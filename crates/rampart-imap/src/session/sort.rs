//! SORT and UID SORT (RFC 5256 §3, the SORT part), RFC 5957 DISPLAYFROM/DISPLAYTO, and
//! RFC 5267 §3 ESORT (SORT RETURN (...) answered with ESEARCH); RETURN (UPDATE) keeps the
//! result up to date (CONTEXT=SORT, `context.rs`).
//!
//! The search is SEARCH's own ([`Session::scan`]); for every match the sort keys are taken
//! from the facts stored with the message (or from the message, parsed, when it has none),
//! kept as small values ([`crate::sort`]) in one list for all matches, and the matches are
//! sorted by them, ties by sequence number (§3).

use rampart_store::StoreError;

use super::{Next, Output, Session, State};
use crate::parser::{SearchKey, SortCriterion};
use crate::response::line;
use crate::results::{Hit, results};
use crate::sort::{Value, order, value};

impl Session {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn sort<O: Output>(
        &mut self,
        out: &mut O,
        tag: &str,
        uid: bool,
        criteria: Vec<SortCriterion>,
        charset: String,
        key: SearchKey,
        ret: Option<Vec<String>>,
    ) -> Result<Next, StoreError> {
        if !self.search_prologue(out.buf(), tag, Some(&charset), &key) {
            self.save_result(ret.as_deref(), &[]);
            return Ok(Next::Continue);
        }
        let update = ret.as_ref().is_some_and(|r| r.iter().any(|o| o == "UPDATE"));
        if update && self.context_refused(out.buf(), tag) {
            return Ok(Next::Continue);
        }
        let hits = self.sorted(&criteria, &key).await?;
        self.save_result(ret.as_deref(), &hits);
        if update {
            // RFC 5267 §4.2 (CONTEXT=SORT): changes are reported against this sorted result.
            let uids = hits.iter().map(|h| h.uid);
            self.keep_context(tag, uid, key.clone(), Some(criteria), uids);
        }
        results(out.buf(), tag, "SORT", uid, &hits, ret, key.uses_modseq());
        self.sync(out.buf(), false).await?;
        line(out.buf(), &format!("{tag} OK SORT completed"));
        Ok(Next::Continue)
    }

    /// The matches of `key` in the order of `criteria`.
    pub(super) async fn sorted(&self, criteria: &[SortCriterion], key: &SearchKey) -> Result<Vec<Hit>, StoreError> {
        let content = criteria.iter().any(|c| c.key.needs_content());
        // Sized for every message matching: growing lists of 100,000 values cost more than
        // the scan.
        let most = if let State::Selected(_, view) = &self.state { view.exists() } else { 0 };
        let mut matched: Vec<Hit> = Vec::with_capacity(most);
        let mut values: Vec<Value> = Vec::with_capacity(most * criteria.len());
        self.scan(key, content, true, |hit, msg, facts| {
            matched.push(hit);
            values.extend(criteria.iter().map(|c| value(c.key, msg.internal_date, msg.size, facts)));
        })
        .await?;
        Ok(order(criteria, &matched, &values).into_iter().map(|i| matched[i]).collect())
    }
}
