//! GETMETADATA and SETMETADATA (RFC 5464): annotations of the server (mailbox "") and of the
//! user's mailboxes, kept per user. Which entries a GETMETADATA names is pure code
//! (`rampart_imap_proto::metadata`); the limits below are checked here and, for the user's
//! totals, in the store's transaction.
//!
//! Server entries under `/shared` would be seen by every user of a server with shared
//! annotations; here nothing is shared between users, so, as Dovecot does, a user may not
//! set them (`NO [CANNOT]`) and reads them as NIL.

use std::sync::atomic::{AtomicU64, Ordering};

use rampart_store::{MetadataLimits, MailboxId, StoreError};

use super::{Next, Session};
use crate::parser::Depth;
use crate::response::line;
use rampart_imap_proto::metadata;

/// The largest value one entry may hold (RFC 5464 §4.3 `[METADATA MAXSIZE n]`): annotations
/// are for short settings and comments, not for storing mail.
pub const MAX_VALUE: usize = 64 * 1024;

/// What one user may keep over all their annotations (RFC 5464 §4.3 `[METADATA TOOMANY]`):
/// enough for every client setting we know of, small enough that a user cannot grow the
/// database without bound.
pub const LIMITS: MetadataLimits = MetadataLimits { entries: 1000, bytes: 1024 * 1024 };

/// Bumped after every SETMETADATA that was stored, in any session of this process:
/// NOTIFY's metadata events (`notify.rs`) read annotations again only when it moved.
/// Annotations are set only by IMAP sessions of the running server (neither the CLI nor the
/// web interface sets them), so a counter in memory sees every change.
static GENERATION: AtomicU64 = AtomicU64::new(0);

pub(super) fn generation() -> u64 {
    GENERATION.load(Ordering::Acquire)
}

impl Session {
    /// The mailbox "" names the server (None); another name one of the user's mailboxes.
    /// Err when it does not exist (already answered).
    async fn metadata_target(&self, out: &mut Vec<u8>, tag: &str, mailbox: &str) -> Result<Result<Option<MailboxId>, ()>, StoreError> {
        let Some(user) = self.user() else { return Ok(Err(())) };
        if mailbox.is_empty() {
            return Ok(Ok(None));
        }
        match self.services.store.mailbox_state(user.id, mailbox).await? {
            Some(state) => Ok(Ok(Some(state.id))),
            None => {
                line(out, &format!("{tag} NO [NONEXISTENT] No such mailbox"));
                Ok(Err(()))
            }
        }
    }

    pub(super) async fn get_metadata(
        &mut self,
        out: &mut Vec<u8>,
        tag: &str,
        mailbox: &str,
        entries: Vec<String>,
        depth: Depth,
        max_size: Option<u64>,
    ) -> Result<Next, StoreError> {
        let Ok(target) = self.metadata_target(out, tag, mailbox).await? else { return Ok(Next::Continue) };
        let Some(user) = self.user() else { return Ok(Next::Continue) };
        let stored = self.services.store.metadata(user.id, target).await?;
        let answer = metadata::select(&stored, &entries, depth, max_size);
        metadata::write(out, &self.wire_name(mailbox), &answer.entries);
        let text = match answer.longest_omitted {
            // RFC 5464 §4.2.1: the size of the longest value MAXSIZE left out.
            Some(n) => format!("[METADATA LONGENTRIES {n}] GETMETADATA completed"),
            None => "GETMETADATA completed".into(),
        };
        self.done(out, tag, &text).await
    }

    pub(super) async fn set_metadata(&mut self, out: &mut Vec<u8>, tag: &str, mailbox: &str, entries: Vec<(String, Option<Vec<u8>>)>) -> Result<Next, StoreError> {
        let Ok(target) = self.metadata_target(out, tag, mailbox).await? else { return Ok(Next::Continue) };
        if target.is_none() && entries.iter().any(|(name, _)| name.starts_with("/shared")) {
            line(out, &format!("{tag} NO [CANNOT] Shared server annotations are the administrator's"));
            return Ok(Next::Continue);
        }
        if entries.iter().any(|(_, v)| v.as_ref().is_some_and(|v| v.len() > MAX_VALUE)) {
            line(out, &format!("{tag} NO [METADATA MAXSIZE {MAX_VALUE}] Annotation value too large"));
            return Ok(Next::Continue);
        }
        let Some(user) = self.user() else { return Ok(Next::Continue) };
        if self.services.store.set_metadata(user.id, target, entries, LIMITS).await?.is_err() {
            line(out, &format!("{tag} NO [METADATA TOOMANY] Too many annotations"));
            return Ok(Next::Continue);
        }
        GENERATION.fetch_add(1, Ordering::AcqRel);
        self.done(out, tag, "SETMETADATA completed").await
    }
}
