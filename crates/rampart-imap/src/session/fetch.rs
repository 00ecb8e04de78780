//! FETCH and UID FETCH (RFC 3501 §6.4.5, §7.4.2; RFC 7162 §3.1.4 CHANGEDSINCE and MODSEQ).

use rampart_store::{FlagOp, StoreError};

use super::{FLUSH_AT, Next, Output, Session, State};
use crate::mime::Parsed;
use crate::parser::{FetchAttr, SequenceSet};
use crate::response::{flag_list, internal_date, line, literal};

impl Session {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn fetch<O: Output>(
        &mut self,
        out: &mut O,
        tag: &str,
        uid: bool,
        set: SequenceSet,
        mut attrs: Vec<FetchAttr>,
        changed_since: Option<u64>,
        vanished: bool,
    ) -> Result<Next, StoreError> {
        if vanished && !self.qresync {
            return Ok(self.error(out.buf(), tag, "VANISHED needs ENABLE QRESYNC"));
        }
        let store = self.services.store.clone();
        if changed_since.is_some() || attrs.contains(&FetchAttr::ModSeq) {
            self.enable_condstore(out.buf());
        }
        let condstore = self.condstore;
        let State::Selected(_, view) = &mut self.state else { return Ok(Next::Continue) };
        if !uid && view.out_of_range(&set) {
            return Ok(self.error(out.buf(), tag, "Invalid message sequence number"));
        }
        // RFC 3501 §6.4.8: UID FETCH always returns UID; RFC 7162 §3.1.4: CHANGEDSINCE
        // implies MODSEQ.
        if uid && !attrs.contains(&FetchAttr::Uid) {
            attrs.insert(0, FetchAttr::Uid);
        }
        if changed_since.is_some() && !attrs.contains(&FetchAttr::ModSeq) {
            attrs.push(FetchAttr::ModSeq);
        }
        if let (true, Some(since)) = (vanished, changed_since) {
            // RFC 7162 §3.2.6: UIDs in the set expunged since the client's MODSEQ.
            let changes = store.changes_since(view.id, since).await?;
            let max = view.uidnext.saturating_sub(1);
            let gone: Vec<u32> = changes.expunged.into_iter().filter(|u| set.contains(*u, max)).collect();
            if !gone.is_empty() {
                line(out.buf(), &format!("* VANISHED (EARLIER) {}", crate::parser::sequence::compact(&gone)));
            }
        }
        let mut targets = view.resolve(&set, uid);
        if let Some(since) = changed_since {
            targets.retain(|&i| view.msgs[i].modseq > since);
        }
        let needs_content = attrs.iter().any(FetchAttr::needs_content);

        // Implicit \Seen (RFC 3501 §6.4.5), set before answering so FLAGS show it.
        let mut seen_changed = Vec::new();
        if attrs.iter().any(FetchAttr::sets_seen) && !view.read_only {
            let unseen: Vec<u32> =
                targets.iter().filter(|&&i| !view.msgs[i].has_flag("\\Seen")).map(|&i| view.msgs[i].uid).collect();
            if !unseen.is_empty() {
                let update = store.store_flags(view.id, unseen, FlagOp::Add, vec!["\\Seen".into()], None).await?;
                for (u, flags, modseq) in update.messages {
                    if let Some(i) = view.set_flags(u, &flags, modseq) {
                        seen_changed.push(i);
                    }
                }
            }
        }

        let mut missing = false;
        for &i in &targets {
            let msg = view.msgs[i].clone();
            let raw = if needs_content {
                match store.read_message(view.id, msg.uid).await {
                    Ok(raw) => Some(raw),
                    Err(StoreError::NotFound(_)) => {
                        // Expunged by another session and not announced yet (RFC 2180 §4.1.3).
                        missing = true;
                        continue;
                    }
                    Err(StoreError::Io { .. }) => {
                        missing = true;
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            } else {
                None
            };
            let parsed = raw.as_deref().map(Parsed::new);
            let buf = out.buf();
            buf.extend_from_slice(format!("* {} FETCH (", i + 1).as_bytes());
            let mut first = true;
            let mut wrote_flags = false;
            for a in &attrs {
                if !first {
                    buf.push(b' ');
                }
                first = false;
                write_attr(buf, a, &msg, parsed.as_ref(), condstore, &mut wrote_flags);
            }
            if seen_changed.contains(&i) && !wrote_flags {
                buf.extend_from_slice(b" FLAGS ");
                flag_list(buf, &msg.flags_out());
            }
            if condstore && !attrs.contains(&FetchAttr::ModSeq) && (wrote_flags || seen_changed.contains(&i)) {
                buf.extend_from_slice(format!(" MODSEQ ({})", msg.modseq).as_bytes());
            }
            buf.extend_from_slice(b")\r\n");
            if out.buf().len() >= FLUSH_AT {
                out.flush().await.map_err(|e| StoreError::Invalid(format!("client write failed: {e}")))?;
            }
        }
        // RFC 3501 §7.4.1: no EXPUNGE while answering FETCH.
        self.sync(out.buf(), false).await?;
        if missing {
            line(out.buf(), &format!("{tag} NO [EXPUNGEISSUED] Some messages were expunged meanwhile"));
        } else {
            line(out.buf(), &format!("{tag} OK FETCH completed"));
        }
        Ok(Next::Continue)
    }
}

fn partial(data: &[u8], range: Option<(u32, u32)>) -> &[u8] {
    match range {
        None => data,
        Some((start, len)) => {
            let start = (start as usize).min(data.len());
            let end = start.saturating_add(len as usize).min(data.len());
            &data[start..end]
        }
    }
}

fn write_attr(buf: &mut Vec<u8>, a: &FetchAttr, msg: &super::view::Msg, parsed: Option<&Parsed<'_>>, condstore: bool, wrote_flags: &mut bool) {
    match a {
        FetchAttr::Uid => buf.extend_from_slice(format!("UID {}", msg.uid).as_bytes()),
        FetchAttr::Flags => {
            buf.extend_from_slice(b"FLAGS ");
            flag_list(buf, &msg.flags_out());
            *wrote_flags = true;
        }
        FetchAttr::InternalDate => {
            buf.extend_from_slice(b"INTERNALDATE ");
            buf.extend_from_slice(internal_date(msg.internal_date).as_bytes());
        }
        FetchAttr::Rfc822Size => buf.extend_from_slice(format!("RFC822.SIZE {}", msg.size).as_bytes()),
        FetchAttr::ModSeq => buf.extend_from_slice(format!("MODSEQ ({})", msg.modseq).as_bytes()),
        FetchAttr::Envelope => {
            buf.extend_from_slice(b"ENVELOPE ");
            if let Some(p) = parsed {
                p.envelope(buf);
            }
        }
        FetchAttr::Body | FetchAttr::BodyStructure => {
            let ext = *a == FetchAttr::BodyStructure;
            buf.extend_from_slice(if ext { b"BODYSTRUCTURE " } else { b"BODY " });
            if let Some(p) = parsed {
                p.body_structure(buf, ext);
            }
        }
        FetchAttr::Rfc822 => {
            buf.extend_from_slice(b"RFC822 ");
            literal(buf, parsed.map_or(&[][..], |p| p.raw()));
        }
        FetchAttr::Rfc822Header => {
            buf.extend_from_slice(b"RFC822.HEADER ");
            literal(buf, parsed.map_or(&[][..], |p| p.header()));
        }
        FetchAttr::Rfc822Text => {
            buf.extend_from_slice(b"RFC822.TEXT ");
            literal(buf, parsed.map_or(&[][..], |p| p.text()));
        }
        FetchAttr::Section { section, partial: range, .. } => {
            buf.extend_from_slice(format!("BODY[{}]", section.spec()).as_bytes());
            if let Some((start, _)) = range {
                buf.extend_from_slice(format!("<{start}>").as_bytes());
            }
            buf.push(b' ');
            let data = parsed.and_then(|p| p.section(section));
            // A part that does not exist is empty, as Dovecot answers (RFC 3501 leaves it open).
            let data = data.unwrap_or_default();
            literal(buf, partial(&data, *range));
        }
    }
    let _ = condstore;
}
