//! THREAD and UID THREAD (RFC 5256, the THREAD part): ORDEREDSUBJECT and REFERENCES.
//!
//! The search is SEARCH's own ([`Session::scan`]); for every match only small keys are kept
//! (sent date, base subject capped as SORT's, Message-ID and references as 128-bit hashes, at
//! most [`crate::thread::MAX_REFS`] references, [`Msg::new`]), and the threads are built
//! from them by [`crate::thread`].

use rampart_store::StoreError;

use super::{Next, Output, Session};
use crate::parser::{SearchKey, ThreadAlgorithm};
use crate::response::line;
use crate::thread::{Msg, ordered_subject, references};

impl Session {
    pub(super) async fn thread<O: Output>(
        &mut self,
        out: &mut O,
        tag: &str,
        uid: bool,
        algorithm: ThreadAlgorithm,
        charset: String,
        key: SearchKey,
    ) -> Result<Next, StoreError> {
        if !self.search_prologue(out.buf(), tag, Some(&charset), &key) {
            return Ok(Next::Continue);
        }
        let with_ids = algorithm == ThreadAlgorithm::References;
        let mut msgs: Vec<Msg> = Vec::new();
        self.scan(&key, true, true, |hit, msg, facts| msgs.push(Msg::new(hit.seq, hit.uid, msg.internal_date, facts, with_ids))).await?;
        let threads = match algorithm {
            ThreadAlgorithm::OrderedSubject => ordered_subject(&msgs),
            ThreadAlgorithm::References => references(&msgs),
        };
        let mut s = String::from("* THREAD");
        if !msgs.is_empty() {
            s.push(' ');
            threads.write(&msgs, uid, &mut s);
        }
        line(out.buf(), &s);
        self.sync(out.buf(), false).await?;
        line(out.buf(), &format!("{tag} OK THREAD completed"));
        Ok(Next::Continue)
    }
}
