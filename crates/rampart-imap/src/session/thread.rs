//! THREAD and UID THREAD (RFC 5256, the THREAD part): ORDEREDSUBJECT and REFERENCES.
//!
//! The search is SEARCH's own ([`Session::scan`]); for every match only small keys are kept
//! (sent date, base subject capped as SORT's, Message-ID and references as 128-bit hashes, at
//! most [`MAX_REFS`] references), and the threads are built from them by [`crate::thread`].

use rampart_store::StoreError;

use super::{Next, Output, Session};
use crate::mime::Parsed;
use crate::parser::{SearchKey, ThreadAlgorithm};
use crate::response::line;
use crate::subject::{ascii_casemap, base_subject_reply};
use crate::thread::{Msg, id_key, ordered_subject, references};

/// Base subjects are compared on this many octets at most (as SORT's string keys).
const MAX_SUBJECT: usize = 1024;
/// The nearest ancestors a message's References may name; older ones are dropped.
const MAX_REFS: usize = 100;

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
        self.scan(&key, true, |hit, msg, parsed| {
            let (base, reply) = base_subject_reply(parsed.and_then(Parsed::subject).unwrap_or(""));
            let mut subject = ascii_casemap(&base);
            subject.truncate(MAX_SUBJECT);
            let (id, refs) = match parsed {
                Some(p) if with_ids => {
                    (p.message_id().map(|i| id_key(&i)), p.references(MAX_REFS).iter().map(|r| id_key(r)).collect())
                }
                _ => (None, Vec::new()),
            };
            msgs.push(Msg {
                seq: hit.seq,
                uid: hit.uid,
                // RFC 5256 §2.2: the Date header in UTC; INTERNALDATE without a valid one.
                date: parsed.and_then(Parsed::sent_time).unwrap_or(msg.internal_date),
                subject,
                reply,
                id,
                refs,
            });
        })
        .await?;
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
