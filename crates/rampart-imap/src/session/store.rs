//! Commands that change messages: STORE (RFC 3501 §6.4.6, RFC 7162 §3.1.3 UNCHANGEDSINCE),
//! COPY with COPYUID (RFC 4315), MOVE (RFC 6851) and APPEND with APPENDUID.

use rampart_store::{FlagOp, StoreError};

use super::view::SYSTEM_FLAGS;
use super::{Next, Session, State};
use crate::parser::sequence::compact;
use crate::parser::{AppendMessage, SequenceSet, StoreOp};
use crate::response::line;

/// Keywords a message may carry; more are refused, so one message cannot bloat the index.
const MAX_FLAGS: usize = 64;

/// Checks flags a client wants to set: known system flags in their canonical case, keywords
/// as atoms. \Recent is the server's (RFC 3501 §2.3.2): refused, as Dovecot does.
fn client_flags(flags: Vec<String>) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for f in flags {
        let f = if let Some(stripped) = f.strip_prefix('\\') {
            match SYSTEM_FLAGS.iter().find(|s| s[1..].eq_ignore_ascii_case(stripped)) {
                Some(s) => s.to_string(),
                None => return Err(format!("{f} is not a flag clients may set")),
            }
        } else {
            f
        };
        if !out.iter().any(|o| o.eq_ignore_ascii_case(&f)) {
            out.push(f);
        }
    }
    if out.len() > MAX_FLAGS {
        return Err(format!("at most {MAX_FLAGS} flags per message"));
    }
    Ok(out)
}

/// Equal as sets, ignoring case (RFC 3501 §2.3.2).
fn same_flags(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.iter().any(|y| y.eq_ignore_ascii_case(x)))
}

impl Session {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn store(
        &mut self,
        out: &mut Vec<u8>,
        tag: &str,
        uid: bool,
        set: SequenceSet,
        op: StoreOp,
        silent: bool,
        flags: Vec<String>,
        unchanged_since: Option<u64>,
    ) -> Result<Next, StoreError> {
        if unchanged_since.is_some() {
            self.enable_condstore(out);
        }
        let flags = match client_flags(flags) {
            Ok(f) => f,
            Err(why) => return Ok(self.error(out, tag, &why)),
        };
        let store = self.services.store.clone();
        let condstore = self.condstore;
        let State::Selected(_, view) = &mut self.state else { return Ok(Next::Continue) };
        if !uid && view.out_of_range(&set) {
            return Ok(self.error(out, tag, "Invalid message sequence number"));
        }
        if view.read_only {
            line(out, &format!("{tag} NO [READ-ONLY] Mailbox is read-only"));
            return Ok(Next::Continue);
        }
        let targets = view.resolve(&set, uid);
        let uids: Vec<u32> = targets.iter().filter(|&&i| !view.is_gone(i)).map(|&i| view.uid(i)).collect();
        let op = match op {
            StoreOp::Add => FlagOp::Add,
            StoreOp::Remove => FlagOp::Remove,
            StoreOp::Replace => FlagOp::Replace,
        };
        // What the client will believe after a .SILENT store: its own view with the change.
        let expected: Vec<(u32, Vec<String>)> = targets
            .iter()
            .map(|&i| (view.uid(i), op.apply(view.flags(i), &flags)))
            .collect();
        let update = store.store_flags(view.id, uids, op, flags, unchanged_since).await?;
        view.learn_keywords(out, update.messages.iter().map(|(_, f, _)| f.as_str()));
        for (u, f, modseq) in &update.messages {
            let Some(i) = view.set_flags(*u, f, *modseq) else { continue };
            // .SILENT still reports a message whose flags another session changed meanwhile
            // (RFC 3501 §6.4.6 only spares the client the echo of its own change).
            let as_expected = expected.iter().any(|(eu, ef)| eu == u && same_flags(ef, view.flags(i)));
            if !silent || !as_expected {
                view.write_fetch_flags(out, i, uid, condstore.then_some(*modseq));
            }
        }
        let modified: Vec<u32> = if uid {
            update.modified.clone()
        } else {
            update.modified.iter().filter_map(|u| view.index_of_uid(*u).map(|i| i as u32 + 1)).collect()
        };
        // No EXPUNGE while answering STORE (RFC 3501 §7.4.1).
        self.sync(out, false).await?;
        if modified.is_empty() {
            line(out, &format!("{tag} OK STORE completed"));
        } else {
            line(out, &format!("{tag} OK [MODIFIED {}] Conditional STORE failed for some messages", compact(&modified)));
        }
        Ok(Next::Continue)
    }

    pub(super) async fn copy(
        &mut self,
        out: &mut Vec<u8>,
        tag: &str,
        uid: bool,
        set: SequenceSet,
        target: &str,
        moving: bool,
    ) -> Result<Next, StoreError> {
        let store = self.services.store.clone();
        let Some(user) = self.user().cloned() else { return Ok(Next::Continue) };
        let State::Selected(_, view) = &self.state else { return Ok(Next::Continue) };
        if !uid && view.out_of_range(&set) {
            return Ok(self.error(out, tag, "Invalid message sequence number"));
        }
        if moving && view.read_only {
            line(out, &format!("{tag} NO [READ-ONLY] Mailbox is read-only"));
            return Ok(Next::Continue);
        }
        let Some(dest) = store.mailbox_state(user.id, target).await? else {
            // RFC 3501 §6.4.7: TRYCREATE tells the client it may CREATE and retry.
            line(out, &format!("{tag} NO [TRYCREATE] No such mailbox"));
            return Ok(Next::Continue);
        };
        let uids: Vec<u32> = view.resolve(&set, uid).into_iter().map(|i| view.uid(i)).collect();
        let (source, name) = (view.id, if moving { "MOVE" } else { "COPY" });
        let transfer = if moving {
            store.move_messages(source, uids, dest.id).await?
        } else {
            store.copy_messages(source, uids, dest.id).await?
        };
        if let Some(learner) = &self.services.learner {
            let from = store.mailbox_state(user.id, &view.name).await?.and_then(|m| m.special_use);
            if let Some(spam) = super::lesson(from.as_deref(), dest.special_use.as_deref()) {
                learner.learn(user.id, transfer.uids.iter().map(|p| (dest.id, p.1)).collect(), spam);
            }
        }
        let code = if transfer.uids.is_empty() {
            String::new()
        } else {
            let src: Vec<u32> = transfer.uids.iter().map(|p| p.0).collect();
            let dst: Vec<u32> = transfer.uids.iter().map(|p| p.1).collect();
            format!("[COPYUID {} {} {}] ", transfer.uidvalidity, compact(&src), compact(&dst))
        };
        if moving {
            // RFC 6851 §4.3: COPYUID comes untagged before the EXPUNGEs.
            if !code.is_empty() {
                line(out, &format!("* OK {code}Moved"));
            }
            let moved: Vec<u32> = transfer.uids.iter().map(|p| p.0).collect();
            let condstore = self.condstore;
            if let State::Selected(_, view) = &mut self.state {
                view.remove_expunged(out, &moved);
                view.sync(store.as_ref(), out, true, condstore).await?;
            }
            self.update_contexts(out).await?;
            line(out, &format!("{tag} OK MOVE completed"));
            return Ok(Next::Continue);
        }
        self.sync(out, true).await?;
        line(out, &format!("{tag} OK {code}{name} completed"));
        Ok(Next::Continue)
    }

    /// APPEND of one message, or several (MULTIAPPEND, RFC 3502), each given whole or made by
    /// CATENATE (RFC 4469): all are stored in one transaction or none is.
    pub(super) async fn append(&mut self, out: &mut Vec<u8>, tag: &str, target: &str, messages: Vec<AppendMessage>) -> Result<Next, StoreError> {
        let mut staged = std::mem::take(&mut self.staged_append);
        let mut parts = Vec::with_capacity(messages.len());
        for m in messages {
            if m.utf8 && !self.utf8 {
                // RFC 6855 §4: the UTF8 form belongs to clients that enabled UTF8=ACCEPT.
                return Ok(self.error(out, tag, "UTF8 APPEND needs ENABLE UTF8=ACCEPT"));
            }
            let flags = match client_flags(m.flags) {
                Ok(f) => f,
                Err(why) => return Ok(self.error(out, tag, &why)),
            };
            if let Some(cat) = m.catenate {
                let writer = match self.catenate(cat, &mut staged).await? {
                    Ok(w) => w,
                    Err(refused) => return Ok(self.refuse_catenate(out, tag, refused)),
                };
                let size = writer.size();
                parts.push((Ok(writer), size, flags.join(" "), m.date));
                continue;
            }
            let source = match staged.iter().position(|(at, _)| *at == m.literal_at) {
                Some(i) => match staged.swap_remove(i).1 {
                    Ok(w) => Ok(w),
                    Err(e) => {
                        // Writing the streamed literal to its blob file failed: a disk
                        // problem, which may be gone when the client tries again.
                        tracing::warn!(event = "store_error", proto = "imap", ip = %self.remote.ip(), error = %e);
                        line(out, &format!("{tag} NO [UNAVAILABLE] The message could not be stored, try again later"));
                        return Ok(Next::Continue);
                    }
                },
                None => Err(m.message),
            };
            let size = source.as_ref().map_or_else(|inline| inline.len() as u64, |w| w.size());
            if size > self.settings.max_append_size {
                line(out, &format!("{tag} NO [TOOBIG] Message larger than APPENDLIMIT"));
                return Ok(Next::Continue);
            }
            parts.push((source, size, flags.join(" "), m.date));
        }
        let store = self.services.store.clone();
        let Some(user) = self.user().cloned() else { return Ok(Next::Continue) };
        let Some(dest) = store.mailbox_state(user.id, target).await? else {
            line(out, &format!("{tag} NO [TRYCREATE] No such mailbox"));
            return Ok(Next::Continue);
        };
        if self.settings.quota_storage > 0 {
            let (used, _) = store.usage(user.id).await?;
            if used + parts.iter().map(|p| p.1).sum::<u64>() > self.settings.quota_storage {
                line(out, &format!("{tag} NO [OVERQUOTA] Mailbox storage quota exceeded"));
                return Ok(Next::Continue);
            }
        }
        let now = (chrono::Utc::now().timestamp(), 0);
        let mut blobs = Vec::with_capacity(parts.len());
        for (source, _, flags, date) in parts {
            let writer = match source {
                Ok(w) => w,
                Err(inline) => {
                    let mut w = store.blob_writer()?;
                    w.write(&inline).await?;
                    w
                }
            };
            let (date, zone) = date.unwrap_or(now);
            blobs.push((writer.finish().await?, flags, date, zone));
        }
        // Durable (blobs and index fsynced) before the OK, like an SMTP 250.
        let transfer = store.append_all(dest.id, blobs).await?;
        let new_uids: Vec<u32> = transfer.uids.iter().map(|p| p.1).collect();
        if let (Some(learner), Some(true)) = (&self.services.learner, super::lesson(None, dest.special_use.as_deref())) {
            learner.learn(user.id, new_uids.iter().map(|&uid| (dest.id, uid)).collect(), true);
        }
        self.sync(out, true).await?;
        line(out, &format!("{tag} OK [APPENDUID {} {}] APPEND completed", transfer.uidvalidity, compact(&new_uids)));
        Ok(Next::Continue)
    }
}

impl Session {
    /// The tagged NO for a CATENATE message that cannot be made (RFC 4469 §5).
    fn refuse_catenate(&self, out: &mut Vec<u8>, tag: &str, refused: super::catenate::Refused) -> Next {
        use super::catenate::Refused;
        match refused {
            Refused::BadUrl(url) => {
                // url-resp-text (RFC 4469 §6): no CR, LF, NUL or "]" inside the code.
                let url: String = url.chars().filter(|c| c.is_ascii() && !c.is_ascii_control() && *c != ']').collect();
                line(out, &format!("{tag} NO [BADURL {url}] CATENATE URL names no message of yours"));
            }
            Refused::TooBig => line(out, &format!("{tag} NO [TOOBIG] Message larger than APPENDLIMIT")),
            Refused::Unavailable(e) => {
                tracing::warn!(event = "store_error", proto = "imap", ip = %self.remote.ip(), error = %e);
                line(out, &format!("{tag} NO [UNAVAILABLE] The message could not be stored, try again later"));
            }
        }
        Next::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_checked() {
        assert_eq!(client_flags(vec!["\\seen".into(), "$Junk".into(), "$junk".into()]).unwrap(), vec!["\\Seen", "$Junk"]);
        assert!(client_flags(vec!["\\Recent".into()]).is_err());
        assert!(client_flags(vec!["\\Bogus".into()]).is_err());
        assert!(client_flags((0..100).map(|i| format!("k{i}")).collect()).is_err());
    }
}
