//! The session's side of sender authentication: SPF and iprev at MAIL FROM, DKIM / ARC /
//! DMARC at the end of data (MX role), DKIM signing of submitted mail. The checks themselves
//! and the decision live in rampart-pipeline; this file feeds them the session's facts.

use std::sync::Arc;

use rampart_pipeline::dkim::{Algorithm, KeyCache, SigningKey};
use rampart_pipeline::report::Evaluation;
use rampart_pipeline::{Checker, Context, Entry, Forward, Outcome, Policy, Reason, SpfCheck, Stage};
use rampart_store::{Blob, DkimKey};
use tracing::{info, warn};

use super::content::store_failed;
use super::state::{Helo, Transaction};
use super::{Connection, Role};
use crate::command::ReversePath;
use crate::reply::Reply;

/// Largest message signed on the runtime's thread (see `dkim_signatures`): 128 KiB hash in
/// about 0.1 ms here.
const SIGN_INLINE_MAX: usize = 128 * 1024;

/// Sender-authentication settings and the checker, from `[auth_checks]`, `[dkim]`, `[dmarc]`.
#[derive(Default)]
pub struct SenderAuth {
    /// None turns the inbound checks off.
    pub checker: Option<Arc<Checker>>,
    pub policy: Policy,
    /// The policy for submitted mail (`outbound`, its own reject score).
    pub outbound_policy: Policy,
    /// DKIM-sign submitted mail whose From domain has keys.
    pub sign: bool,
    /// ARC-seal mail that aliases forward elsewhere.
    pub arc_seal: bool,
    /// Look up iprev for each client.
    pub iprev: bool,
    /// Keep DMARC evaluations for aggregate reports.
    pub record_dmarc: bool,
    /// Canonical local address whose mail is parsed as DMARC reports.
    pub report_address: Option<String>,
    /// Signing keys parsed once, for every session.
    pub signing_keys: Arc<KeyCache>,
    /// Canonical local address whose mail is parsed as TLS reports (`[tlsrpt] report_address`).
    pub tlsrpt_address: Option<String>,
}

/// What the end-of-data checks produced.
pub(super) struct Inbound {
    /// The message, rewritten if forged A-R headers were removed.
    pub blob: Blob,
    /// The message as checked; None when the checks are off.
    pub raw: Option<Vec<u8>>,
    pub entries: Vec<Entry>,
    pub header: String,
    pub arc_set: Option<String>,
    pub evaluation: Option<Evaluation>,
}

pub(super) fn signing_key(k: &DkimKey) -> Option<SigningKey> {
    Some(SigningKey {
        domain: k.domain.clone(),
        selector: k.selector.clone(),
        algorithm: Algorithm::parse(&k.algorithm)?,
        private_der: k.private_key.clone(),
    })
}

impl Connection {
    fn checker(&self) -> Option<&Arc<Checker>> {
        if self.settings.role != Role::Mx {
            return None;
        }
        self.services.sender_auth.checker.as_ref()
    }

    /// SPF for HELO and MAIL FROM, and iprev once per connection (MX role only).
    pub(super) async fn mail_from_checks(&mut self, helo: &str, from: &ReversePath) -> Option<SpfCheck> {
        let checker = self.checker()?.clone();
        let ip = self.remote.ip();
        if self.iprev.is_none() && self.services.sender_auth.iprev {
            self.iprev = Some(checker.iprev(ip).await);
        }
        let sender = match from {
            ReversePath::Null => String::new(),
            ReversePath::Mailbox(m) => m.to_string(),
        };
        Some(checker.spf(ip, helo, &sender).await)
    }

    /// DKIM, ARC and DMARC over the finished message; `forward_prefix` is what the copy
    /// queued for remote alias targets starts with (for its ARC seal).
    pub(super) async fn inbound_checks(&self, helo: &Helo, tx: &Transaction, blob: Blob, forward_prefix: &[u8]) -> Result<Inbound, Reply> {
        // A downstream relaying out is ours, not a sender from the internet.
        let Some(checker) = self.checker().filter(|_| !tx.relay).cloned() else {
            return Ok(Inbound { blob, raw: None, entries: Vec::new(), header: String::new(), arc_set: None, evaluation: None });
        };
        let store = &self.services.store;
        let mut raw = blob.contents().await.map_err(|e| store_failed(&tx.id, &e))?;
        let mut blob = blob;
        let mut entries = Vec::new();
        if let Some((stripped, n)) = rampart_pipeline::headers::strip_forged(&raw, checker.authserv_id()) {
            // Rare, so rewriting the stored body is acceptable; the original never reaches a mailbox.
            let mut writer = store.blob_writer().map_err(|e| store_failed(&tx.id, &e))?;
            writer.write(&stripped).await.map_err(|e| store_failed(&tx.id, &e))?;
            blob = writer.finish().await.map_err(|e| store_failed(&tx.id, &e))?;
            raw = stripped;
            info!(event = "forged_auth_results_removed", ip = %self.remote.ip(), id = %tx.id, count = n);
            entries.push(Entry::new(Stage::Content, Outcome::Pass, Reason::ForgedAuthResultsRemoved).detail(format!("{n} removed")));
        }
        let sealing_key = if !tx.remote.is_empty() && self.services.sender_auth.arc_seal { self.arc_key(tx).await } else { None };
        let rcpt_domain = tx.rcpts.first().and_then(|r| r.rsplit_once('@')).map(|(_, d)| d.trim_end_matches('>').to_ascii_lowercase()).unwrap_or_default();
        let ctx = Context {
            ip: self.remote.ip(),
            helo: &helo.name,
            spf: tx.spf.as_ref(),
            iprev: self.iprev.as_ref().map(|(o, _)| o),
            rcpt_domain: &rcpt_domain,
        };
        let forward = sealing_key.as_ref().map(|key| Forward { key, prefix: forward_prefix });
        let findings = checker.message(&raw, &ctx, forward).await;
        entries.extend(findings.entries);
        Ok(Inbound { blob, raw: Some(raw), entries, header: findings.header, arc_set: findings.arc_set, evaluation: findings.evaluation })
    }

    /// The active key of the first recipient domain that has one (RSA first: more ARC
    /// verifiers know it than Ed25519).
    async fn arc_key(&self, tx: &Transaction) -> Option<SigningKey> {
        for rcpt in &tx.rcpts {
            let Some((_, domain)) = rcpt.rsplit_once('@') else { continue };
            let domain = domain.trim_end_matches('>').to_ascii_lowercase();
            let Ok(keys) = self.services.store.dkim_keys(Some(&domain)).await else { continue };
            let mut active: Vec<&DkimKey> = keys.iter().filter(|k| k.active).collect();
            active.sort_by_key(|k| k.algorithm != "rsa");
            if let Some(k) = active.first().and_then(|k| signing_key(k)) {
                return Some(k);
            }
        }
        None
    }

    /// Entries the session itself knows: SPF from MAIL FROM, iprev.
    pub(super) fn session_entries(&self, tx: &Transaction) -> Vec<Entry> {
        let mut out = Vec::new();
        if let Some((_, e)) = &self.iprev {
            out.push(e.clone());
        }
        if let Some(spf) = &tx.spf {
            out.extend(spf.entries());
        }
        out
    }

    /// `DKIM-Signature` headers for a submitted message (prefix + body as it will leave) when
    /// the From domain has active keys; empty otherwise. Other domains are never signed.
    pub(super) async fn dkim_signatures(&self, from_domains: &[String], prefix: &[u8], raw: Option<&[u8]>, blob: &Blob, id: &str) -> Result<String, Reply> {
        if !self.services.sender_auth.sign {
            return Ok(String::new());
        }
        let Some(domain) = from_domains.first() else { return Ok(String::new()) };
        let keys = self.services.store.dkim_keys(Some(domain)).await.map_err(|e| store_failed(id, &e))?;
        let keys: Vec<SigningKey> = keys.iter().filter(|k| k.active).filter_map(signing_key).collect();
        if keys.is_empty() {
            return Ok(String::new());
        }
        // The checks read the message already (`raw`, the blob's bytes); read it again only
        // when they were off.
        let read;
        let body = match raw {
            Some(raw) => raw,
            None => {
                read = blob.contents().await.map_err(|e| store_failed(id, &e))?;
                &read
            }
        };
        let mut message = Vec::with_capacity(prefix.len() + body.len());
        message.extend_from_slice(prefix);
        message.extend_from_slice(body);
        let (cache, n) = (self.services.sender_auth.signing_keys.clone(), keys.len());
        // A small message is signed on this thread: its cost is the RSA signature (~0.4 ms),
        // and handing it to the blocking pool added two thread wake-ups per message without
        // adding a core. Hashing grows with the message, so a large one goes to the blocking
        // pool rather than hold up the other sessions on this worker for tens of ms.
        let signed = if message.len() <= SIGN_INLINE_MAX {
            cache.sign(&message, &keys)
        } else {
            tokio::task::spawn_blocking(move || cache.sign(&message, &keys))
                .await
                .unwrap_or_else(|e| Err(rampart_pipeline::dkim::DkimKeyError::Sign { domain: domain.clone(), reason: e.to_string() }))
        };
        match signed {
            Ok(headers) => {
                info!(event = "dkim_signed", id, domain = %domain, keys = n);
                Ok(headers)
            }
            Err(e) => {
                // A broken key must not turn into unsigned mail that fails DMARC everywhere.
                warn!(event = "dkim_sign_failed", id, domain = %domain, error = %e);
                Err(Reply::new(451, "4.7.0", "Could not sign the message, try again later"))
            }
        }
    }
}
