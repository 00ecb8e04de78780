//! ARC (RFC 8617): the chain a message arrived with, whether its last sealer is one we trust
//! (§7.2), and the seal we add to mail we forward.

use mail_auth::arc::ArcSealer;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::{ArcOutput, AuthenticatedMessage, AuthenticationResults, DkimResult};

use super::{Checker, Forward};
use crate::canon;
use crate::dkim::Algorithm;
use crate::trail::{Entry, Outcome, Reason, Stage};

/// The header fields the ARC-Message-Signature of a forwarded copy covers.
const SEALED_HEADERS: [&str; 11] = [
    "From", "To", "Cc", "Subject", "Date", "Message-ID", "Reply-To", "MIME-Version", "Content-Type", "DKIM-Signature",
    "Authentication-Results",
];

impl Checker {
    /// The chain `message` arrived with (RFC 8617 §5.2).
    pub(super) async fn arc<'x>(&'x self, message: &'x AuthenticatedMessage<'x>) -> ArcOutput<'x> {
        let arc = self.dns.auth().verify_arc(self.dns.params(message)).await;
        // mail-auth says "neutral" for a chain whose signature or body hash does not verify;
        // RFC 8617 knows only none, pass and fail as a chain's validation status (its `cv=`
        // and A-R values), and the trail already records a failure.
        match arc.result() {
            DkimResult::Neutral(e) => {
                let e = e.clone();
                arc.with_result(DkimResult::Fail(e))
            }
            _ => arc,
        }
    }

    pub(super) fn arc_entry(&self, arc: &ArcOutput<'_>) -> Entry {
        let sealer = arc.sets().last().map(|s| s.seal.header.d.to_ascii_lowercase()).unwrap_or_default();
        let (result, reason) = match arc.result() {
            DkimResult::Pass if self.trusted_sealers.contains(&sealer) => (Outcome::Pass, Reason::ArcValidTrustedSealer),
            DkimResult::Pass => (Outcome::Pass, Reason::ArcValid),
            DkimResult::None => (Outcome::None, Reason::ArcNoChain),
            DkimResult::TempError(_) => (Outcome::TempError, Reason::ArcDnsError),
            DkimResult::Fail(_) | DkimResult::Neutral(_) => (Outcome::Fail, Reason::ArcInvalid),
            DkimResult::PermError(_) => (Outcome::PermError, Reason::ArcInvalid),
        };
        let mut e = Entry::new(Stage::Arc, result, reason).domain(sealer);
        if !arc.sets().is_empty() {
            e = e.detail(format!("{} set(s)", arc.sets().len()));
        }
        e
    }

    /// Seals the forwarded copy: `header` (our A-R) + `fwd.prefix` + `raw`. None when the last
    /// seal it arrived with already says the chain failed (`cv=fail`), or the key does not load.
    pub(super) fn seal(&self, header: &str, fwd: Forward<'_>, raw: &[u8], ar: &AuthenticationResults<'_>, arc: &ArcOutput<'_>) -> Option<String> {
        if !arc.can_be_sealed() {
            return None;
        }
        let mut copy = Vec::with_capacity(header.len() + fwd.prefix.len() + raw.len());
        copy.extend_from_slice(header.as_bytes());
        copy.extend_from_slice(fwd.prefix);
        copy.extend_from_slice(raw);
        let parsed = AuthenticatedMessage::parse(&copy)?;
        let trimmed_len = canon::trimmed_len(&copy, parsed.body_offset());
        let trimmed = trimmed_len.and_then(|n| AuthenticatedMessage::parse(&copy[..n]));
        let view = trimmed.as_ref().unwrap_or(&parsed);
        let key = fwd.key;
        let set = match key.algorithm {
            Algorithm::Rsa => {
                let k = RsaKey::<Sha256>::from_key_der(key.der()).ok()?;
                ArcSealer::from_key(k).domain(key.domain.clone()).selector(key.selector.clone()).headers(SEALED_HEADERS).seal(view, ar, arc)
            }
            Algorithm::Ed25519 => {
                let k = Ed25519Key::from_pkcs8_der(&key.private_der).ok()?;
                ArcSealer::from_key(k).domain(key.domain.clone()).selector(key.selector.clone()).headers(SEALED_HEADERS).seal(view, ar, arc)
            }
        };
        match set {
            Ok(set) => Some(set.to_header()),
            Err(e) => {
                tracing::warn!(event = "arc_seal_failed", domain = %key.domain, error = %e);
                None
            }
        }
    }
}
