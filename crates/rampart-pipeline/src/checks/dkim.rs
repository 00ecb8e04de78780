//! DKIM verification (RFC 6376): every signature up to a cap, the relaxed-body workaround of
//! [`crate::canon`], and the rule that a partial-body (`l=`) signature never passes.

use mail_auth::dkim::{Canonicalization, DkimError, Signature};
use mail_auth::{AuthenticatedMessage, DkimOutput, DkimResult, Error};

use super::Checker;
use crate::trail::{Entry, Outcome, Reason, Stage};

/// Most DKIM signatures checked per message: each costs a DNS lookup and an RSA operation,
/// and a sender who adds hundreds is attacking the verifier, not signing mail.
pub const MAX_DKIM_SIGNATURES: usize = 10;

fn dkim_entry(o: &DkimOutput<'_>) -> Entry {
    let (result, reason) = match o.result() {
        DkimResult::Pass => (Outcome::Pass, Reason::DkimValid),
        DkimResult::Fail(Error::Dkim(DkimError::FailedBodyHashMatch)) => (Outcome::Fail, Reason::DkimBodyHashMismatch),
        DkimResult::Neutral(Error::Dkim(DkimError::SignatureLength)) => (Outcome::Neutral, Reason::DkimPartialBody),
        DkimResult::Neutral(Error::Dkim(DkimError::SignatureExpired)) => (Outcome::Neutral, Reason::DkimExpired),
        DkimResult::Neutral(_) => (Outcome::Neutral, Reason::DkimMalformed),
        DkimResult::Fail(_) => (Outcome::Fail, Reason::DkimBadSignature),
        DkimResult::PermError(Error::Dns(_)) => (Outcome::PermError, Reason::DkimNoKey),
        DkimResult::PermError(_) => (Outcome::PermError, Reason::DkimMalformed),
        DkimResult::TempError(_) => (Outcome::TempError, Reason::DkimDnsError),
        DkimResult::None => (Outcome::None, Reason::DkimUnsigned),
    };
    let mut e = Entry::new(Stage::Dkim, result, reason);
    if let Some(sig) = o.signature() {
        e = e.domain(sig.d.clone()).detail(format!("s={} a={}", sig.s, algorithm_name(sig.a)));
    }
    e
}

fn algorithm_name(a: mail_auth::common::crypto::Algorithm) -> &'static str {
    match a {
        mail_auth::common::crypto::Algorithm::RsaSha256 => "rsa-sha256",
        mail_auth::common::crypto::Algorithm::RsaSha1 => "rsa-sha1",
        mail_auth::common::crypto::Algorithm::Ed25519Sha256 => "ed25519-sha256",
    }
}

/// RFC 6376 §8.2 and the rule: a signature with `l=` covers only part of the body, so
/// whatever was appended is unsigned. It never counts as a pass.
fn without_partial_bodies<'x>(outputs: Vec<DkimOutput<'x>>, signatures: &[&'x Signature]) -> Vec<DkimOutput<'x>> {
    // DkimOutput lends its signature only for its own lifetime; the message's signature with
    // the same address lives as long as the message.
    let owned = |sig: &Signature| signatures.iter().copied().find(|s| std::ptr::eq(*s, sig));
    outputs
        .into_iter()
        .map(|o| {
            let Some(sig) = o.signature().and_then(owned) else { return o };
            match o.result() {
                DkimResult::Pass if sig.l > 0 => DkimOutput::neutral(Error::Dkim(DkimError::SignatureLength)).with_signature(sig),
                // mail-auth reports a body hash mismatch as "neutral"; RFC 6376 §6.1.3 makes it a
                // verification failure, which RFC 8601 §2.7.1 calls "fail".
                DkimResult::Neutral(Error::Dkim(DkimError::FailedBodyHashMatch)) => {
                    DkimOutput::fail(Error::Dkim(DkimError::FailedBodyHashMatch)).with_signature(sig)
                }
                _ => o,
            }
        })
        .collect()
}

impl Checker {
    /// Every DKIM signature of `message` up to the cap, their trail entries pushed to `entries`.
    /// `trimmed` is the message without trailing whitespace-only body lines (see `canon`), whose
    /// outputs replace those of relaxed-body signatures.
    pub(super) async fn dkim<'x>(
        &'x self,
        message: &'x AuthenticatedMessage<'x>,
        trimmed: Option<&'x AuthenticatedMessage<'x>>,
        entries: &mut Vec<Entry>,
    ) -> Vec<DkimOutput<'x>> {
        let auth = self.dns.auth();
        let count = message.dkim_headers.len();
        if count > MAX_DKIM_SIGNATURES {
            entries.push(
                Entry::new(Stage::Dkim, Outcome::PermError, Reason::DkimMalformed)
                    .detail(format!("{count} signatures, more than {MAX_DKIM_SIGNATURES}")),
            );
            return Vec::new();
        }
        let mut dkim = auth.verify_dkim(self.dns.params(message)).await;
        if let Some(t) = trimmed {
            let fixed = auth.verify_dkim(self.dns.params(t)).await;
            if fixed.len() == dkim.len() {
                dkim = dkim
                    .into_iter()
                    .zip(fixed)
                    .map(|(orig, fix)| match orig.signature() {
                        Some(sig) if sig.cb == Canonicalization::Relaxed => fix,
                        _ => orig,
                    })
                    .collect();
            }
        }
        let signatures: Vec<&Signature> = message.dkim_headers.iter().chain(trimmed.iter().flat_map(|t| t.dkim_headers.iter())).map(|h| &h.header).collect();
        let dkim = without_partial_bodies(dkim, &signatures);
        if dkim.is_empty() {
            entries.push(Entry::new(Stage::Dkim, Outcome::None, Reason::DkimUnsigned));
        }
        entries.extend(dkim.iter().map(dkim_entry));
        dkim
    }
}
