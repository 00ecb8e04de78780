//! SELECT and EXAMINE (RFC 3501 §6.3.1-2, RFC 7162 §3.1.8), CLOSE, UNSELECT (RFC 3691),
//! EXPUNGE and UID EXPUNGE (RFC 4315 §2.1).

use rampart_store::StoreError;

use super::view::View;
use super::{Next, Session, State};
use crate::parser::sequence::compact;
use crate::parser::{Qresync, SequenceSet};
use crate::response::line;

impl Session {
    pub(super) async fn select(
        &mut self,
        out: &mut Vec<u8>,
        tag: &str,
        name: &str,
        condstore: bool,
        read_only: bool,
        qresync: Option<Qresync>,
    ) -> Result<Next, StoreError> {
        if qresync.is_some() && !self.qresync {
            // RFC 7162 §3.2.5: QRESYNC parameters need ENABLE QRESYNC first.
            return Ok(self.error(out, tag, "Enable QRESYNC first"));
        }
        // RFC 3501 §6.3.1: a failed SELECT leaves no mailbox selected, so deselect first.
        if matches!(self.state, State::Selected(..)) {
            self.deselect();
            if self.qresync || self.rev2 {
                // RFC 7162 §3.2.11: the previous mailbox is closed; later responses belong to
                // the new one.
                line(out, "* OK [CLOSED] Previous mailbox closed");
            }
        }
        if condstore {
            self.condstore = true;
        }
        // RFC 5182 §2.1: the saved result belongs to the mailbox it came from.
        self.saved.clear();
        let store = self.services.store.clone();
        let Some(user) = self.user().cloned() else { return Ok(Next::Continue) };
        let Some(state) = store.mailbox_state(user.id, name).await? else {
            line(out, &format!("{tag} NO [NONEXISTENT] No such mailbox"));
            return Ok(Next::Continue);
        };
        let watch = store.watch_mailbox(state.id);
        let (state, rows) = store.view_rows(state.id).await?;
        // Claim exactly the messages of the snapshot, so no message is recent in two sessions;
        // EXAMINE shows what is recent without claiming it.
        let recent_from = if read_only { store.peek_recent(state.id).await? } else { store.claim_recent(state.id, state.uidnext).await? };
        let mut view = View::open(state, rows, recent_from, read_only, watch);
        view.vanished = self.qresync;
        view.rev2 = self.rev2;
        view.write_flags(out);
        line(out, &format!("* {} EXISTS", view.exists()));
        // RFC 9051 §6.3.2 (Appendix E): rev2 has neither RECENT nor the UNSEEN code, and
        // names the mailbox in a LIST response (as the client would read it, UTF-8).
        if self.rev2 {
            let mut o = format!("* LIST () \"{}\" ", rampart_store::mail::DELIMITER).into_bytes();
            crate::response::mailbox(&mut o, &self.wire_name(&view.name));
            o.extend_from_slice(b"\r\n");
            out.extend_from_slice(&o);
        } else {
            line(out, &format!("* {} RECENT", view.recent()));
            if let Some(i) = (0..view.exists()).find(|&i| !view.has_flag(i, "\\Seen")) {
                line(out, &format!("* OK [UNSEEN {}] First unseen", i + 1));
            }
        }
        line(out, &format!("* OK [UIDVALIDITY {}] UIDs valid", view.uidvalidity));
        line(out, &format!("* OK [UIDNEXT {}] Predicted next UID", view.uidnext));
        line(out, &format!("* OK [HIGHESTMODSEQ {}] Highest", view.highestmodseq));
        if let Some(q) = qresync.filter(|q| q.uidvalidity == view.uidvalidity) {
            // RFC 7162 §3.2.5.1: what vanished and what changed since the client's MODSEQ.
            let changes = store.changes_since(view.id, q.modseq).await?;
            let max = view.uidnext.saturating_sub(1);
            let gone: Vec<u32> = changes
                .expunged
                .iter()
                .copied()
                .filter(|u| q.known_uids.as_ref().is_none_or(|k| k.contains(*u, max)))
                .collect();
            if !gone.is_empty() {
                line(out, &format!("* VANISHED (EARLIER) {}", compact(&gone)));
            }
            for r in &changes.changed {
                if let Some(i) = view.index_of_uid(r.uid) {
                    view.write_fetch_flags(out, i, true, Some(r.modseq));
                }
            }
        }
        let code = if read_only { "READ-ONLY" } else { "READ-WRITE" };
        let verb = if read_only { "EXAMINE" } else { "SELECT" };
        self.log_command(verb);
        self.state = State::Selected(user, Box::new(view));
        line(out, &format!("{tag} OK [{code}] {verb} completed"));
        Ok(Next::Continue)
    }

    /// CLOSE (expunges silently when writable, RFC 3501 §6.4.2) or UNSELECT (does not).
    pub(super) async fn close(&mut self, out: &mut Vec<u8>, tag: &str, expunge: bool) -> Result<Next, StoreError> {
        if let State::Selected(_, view) = &self.state
            && expunge && !view.read_only {
                self.services.store.expunge(view.id, None).await?;
            }
        self.deselect();
        self.saved.clear();
        line(out, &format!("{tag} OK {} completed", if expunge { "CLOSE" } else { "UNSELECT" }));
        Ok(Next::Continue)
    }

    pub(super) async fn expunge(&mut self, out: &mut Vec<u8>, tag: &str, uids: Option<SequenceSet>) -> Result<Next, StoreError> {
        let store = self.services.store.clone();
        let condstore = self.condstore;
        let State::Selected(_, view) = &mut self.state else { return Ok(Next::Continue) };
        if view.read_only {
            line(out, &format!("{tag} NO [READ-ONLY] Mailbox is read-only"));
            return Ok(Next::Continue);
        }
        let only = uids.map(|set| {
            set.filter(view.uids(), view.uidnext.saturating_sub(1))
        });
        // Bring the view up to date first, so the numbers in the EXPUNGE responses are the
        // client's (other sessions may have added or removed messages).
        view.sync(store.as_ref(), out, true, condstore).await?;
        let gone = store.expunge(view.id, only).await?;
        view.remove_expunged(out, &gone);
        view.sync(store.as_ref(), out, true, condstore).await?;
        let code = if condstore { format!("[HIGHESTMODSEQ {}] ", view.highestmodseq) } else { String::new() };
        self.update_contexts(out).await?;
        line(out, &format!("{tag} OK {code}EXPUNGE completed"));
        Ok(Next::Continue)
    }
}
