//! The sender-authentication stages, on mail-auth with the resolver from `[dns]`:
//! SPF (HELO and MAIL FROM), iprev, DKIM (every signature), ARC and DMARC. Each returns what
//! it found as trail entries; the Authentication-Results header is written from the same
//! outputs, so the header and the trail cannot disagree.

use std::net::IpAddr;

use mail_auth::arc::ArcSealer;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimError};
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, AuthenticationResults, DkimOutput, DkimResult, DmarcOutput, DmarcResult, Error, IprevOutput,
    IprevResult, MessageAuthenticator, SpfOutput, SpfResult,
};

use crate::canon;
use crate::dkim::{Algorithm, SigningKey};
use crate::report::{Evaluation, Published};
use crate::trail::{Disposition, Entry, Outcome, Reason, Stage};

/// Most DKIM signatures checked per message: each costs a DNS lookup and an RSA operation,
/// and a sender who adds hundreds is attacking the verifier, not signing mail.
pub const MAX_DKIM_SIGNATURES: usize = 10;

/// What the SPF stage found at MAIL FROM, kept until the end of data for DMARC.
#[derive(Debug, Clone)]
pub struct SpfCheck {
    pub helo: Option<SpfOutput>,
    pub mail_from: SpfOutput,
    /// The MAIL FROM address; empty for `<>`.
    pub sender: String,
    /// The domain SPF checked for MAIL FROM: the sender's, or the HELO name for `<>`.
    pub domain: String,
}

impl SpfCheck {
    pub fn entries(&self) -> Vec<Entry> {
        let mut out = Vec::new();
        if let Some(h) = &self.helo {
            out.push(spf_entry(Stage::SpfHelo, h));
        }
        out.push(spf_entry(Stage::Spf, &self.mail_from));
        out
    }
}

fn spf_entry(stage: Stage, o: &SpfOutput) -> Entry {
    let (result, reason) = match o.result() {
        SpfResult::Pass => (Outcome::Pass, Reason::SpfAuthorized),
        SpfResult::Fail => (Outcome::Fail, Reason::SpfNotAuthorized),
        SpfResult::SoftFail => (Outcome::SoftFail, Reason::SpfWeaklyNotAuthorized),
        SpfResult::Neutral => (Outcome::Neutral, Reason::SpfNeutral),
        SpfResult::None => (Outcome::None, Reason::SpfNoRecord),
        SpfResult::TempError => (Outcome::TempError, Reason::SpfDnsError),
        SpfResult::PermError => (Outcome::PermError, Reason::SpfBadRecord),
    };
    Entry::new(stage, result, reason).domain(o.domain())
}

/// Everything the end-of-data checks need to know about the session.
pub struct Context<'a> {
    pub ip: IpAddr,
    pub helo: &'a str,
    pub spf: Option<&'a SpfCheck>,
    pub iprev: Option<&'a IprevOutput>,
    /// The first recipient's domain, for DMARC reports (`envelope_to`).
    pub rcpt_domain: &'a str,
}

/// A key to ARC-seal mail we forward with, and the trace headers the forwarded copy starts
/// with (the seal must cover the message as it leaves).
pub struct Forward<'a> {
    pub key: &'a SigningKey,
    pub prefix: &'a [u8],
}

/// What the end-of-data checks found.
#[derive(Debug, Default)]
pub struct Findings {
    pub entries: Vec<Entry>,
    /// The one `Authentication-Results:` header, with CRLF.
    pub header: String,
    /// The DMARC evaluation to remember for aggregate reports, when the domain asked for them.
    pub evaluation: Option<Evaluation>,
    /// ARC-Seal, ARC-Message-Signature and ARC-Authentication-Results for a forwarded copy.
    pub arc_set: Option<String>,
}

pub struct Checker {
    auth: MessageAuthenticator,
    caches: crate::cache::Caches,
    authserv_id: String,
    /// Domains whose ARC seals we trust to vouch for forwarded mail (RFC 8617 §7.2).
    trusted_sealers: Vec<String>,
    /// Our host name: SPF's `%{r}` macro.
    hostname: String,
}

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
        e = e.domain(sig.d.clone()).detail(format!("s={} a={}", sig.s, sig.a.name_str()));
    }
    e
}

trait AlgorithmName {
    fn name_str(&self) -> &'static str;
}

impl AlgorithmName for mail_auth::common::crypto::Algorithm {
    fn name_str(&self) -> &'static str {
        match self {
            mail_auth::common::crypto::Algorithm::RsaSha256 => "rsa-sha256",
            mail_auth::common::crypto::Algorithm::RsaSha1 => "rsa-sha1",
            mail_auth::common::crypto::Algorithm::Ed25519Sha256 => "ed25519-sha256",
        }
    }
}

/// RFC 6376 §8.2 and the rule: a signature with `l=` covers only part of the body, so
/// whatever was appended is unsigned. It never counts as a pass.
fn without_partial_bodies<'x>(outputs: Vec<DkimOutput<'x>>, signatures: &[&'x mail_auth::dkim::Signature]) -> Vec<DkimOutput<'x>> {
    // DkimOutput lends its signature only for its own lifetime; the message's signature with
    // the same address lives as long as the message.
    let owned = |sig: &mail_auth::dkim::Signature| signatures.iter().copied().find(|s| std::ptr::eq(*s, sig));
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
    pub fn new(resolver: hickory_resolver::TokioResolver, authserv_id: &str, hostname: &str, trusted_sealers: &[String]) -> Checker {
        Checker {
            auth: MessageAuthenticator(resolver),
            caches: crate::cache::Caches::default(),
            authserv_id: authserv_id.to_string(),
            trusted_sealers: trusted_sealers.iter().map(|d| d.trim_end_matches('.').to_ascii_lowercase()).collect(),
            hostname: hostname.to_string(),
        }
    }

    pub fn authserv_id(&self) -> &str {
        &self.authserv_id
    }

    /// The `rua` addresses that may receive reports about `domain`: its own (and subdomains'),
    /// and others only when they publish `<domain>._report._dmarc.<their domain>` (RFC 7489
    /// §7.1). None on a DNS failure: try again at the next run.
    pub async fn authorized_rua(&self, domain: &str, rua: &[String]) -> Option<Vec<String>> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let mut out = Vec::new();
        for addr in rua {
            let target = addr.rsplit_once('@').map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase()).unwrap_or_default();
            let internal = target == domain || target.ends_with(&format!(".{domain}"));
            // Written here rather than with mail-auth's helper, which wants the record to parse
            // as a full DMARC policy; §7.1 asks only for a record starting with "v=DMARC1".
            let authorized = internal || {
                let name = format!("{domain}._report._dmarc.{target}.");
                match self.auth.txt_raw_lookup(name.as_str()).await {
                    Ok(raw) => String::from_utf8_lossy(&raw).trim_start().starts_with("v=DMARC1"),
                    Err(mail_auth::Error::Dns(mail_auth::DnsError::RecordNotFound(_))) => false,
                    Err(mail_auth::Error::Dns(mail_auth::DnsError::Resolver(_))) => return None,
                    Err(_) => false,
                }
            };
            if authorized {
                out.push(addr.clone());
            }
        }
        Some(out)
    }

    /// SPF at MAIL FROM (RFC 7208 §2.3, §2.4). mail-auth enforces the RFC's limits: at most
    /// 10 DNS-querying terms per check (§4.6.4) and 2 void lookups.
    pub async fn spf(&self, ip: IpAddr, helo: &str, sender: &str) -> SpfCheck {
        // The HELO identity is checked only when it is a domain name (§2.3), not an address literal.
        let helo_is_name = helo.contains('.') && !helo.starts_with('[') && helo.parse::<IpAddr>().is_err();
        let helo_out = if helo_is_name {
            Some(self.auth.verify_spf(self.caches.params(SpfParameters::verify_ehlo(ip, helo, &self.hostname))).await)
        } else {
            None
        };
        // §2.4: for the null sender the MAIL FROM identity is postmaster@HELO.
        let mail_from = if sender.is_empty() {
            match &helo_out {
                Some(h) => h.clone(),
                None => SpfOutput::new(helo.to_string()),
            }
        } else {
            self.auth.verify_spf(self.caches.params(SpfParameters::verify_mail_from(ip, helo, &self.hostname, sender))).await
        };
        let domain = sender.rsplit_once('@').map_or_else(|| helo.to_ascii_lowercase(), |(_, d)| d.to_ascii_lowercase());
        SpfCheck { helo: helo_out, mail_from, sender: sender.to_string(), domain }
    }

    /// Forward-confirmed reverse DNS (RFC 8601 §3).
    pub async fn iprev(&self, ip: IpAddr) -> (IprevOutput, Entry) {
        let out = self.auth.verify_iprev(self.caches.params(ip)).await;
        let (result, reason) = match out.result() {
            IprevResult::Pass => (Outcome::Pass, Reason::IprevConfirmed),
            IprevResult::Fail(_) => (Outcome::Fail, Reason::IprevMismatch),
            IprevResult::PermError(_) => (Outcome::PermError, Reason::IprevNoPtr),
            IprevResult::TempError(_) => (Outcome::TempError, Reason::IprevDnsError),
            IprevResult::None => (Outcome::None, Reason::IprevNoPtr),
        };
        let name = out.ptr.as_ref().and_then(|p| p.first().map(|h| h.trim_end_matches('.').to_string())).unwrap_or_default();
        let entry = Entry::new(Stage::Iprev, result, reason).domain(name).detail(ip.to_string());
        (out, entry)
    }

    /// DKIM, ARC and DMARC over the complete message (RFC 6376, RFC 8617, RFC 7489), the
    /// Authentication-Results header (RFC 8601), and the ARC set for a forwarded copy.
    pub async fn message(&self, raw: &[u8], ctx: &Context<'_>, forward: Option<Forward<'_>>) -> Findings {
        let mut findings = Findings::default();
        let Some(message) = AuthenticatedMessage::parse(raw) else {
            findings.entries.push(Entry::new(Stage::Dkim, Outcome::PermError, Reason::DkimMalformed).detail("unparsable header section"));
            findings.header = format!("Authentication-Results: {}; none\r\n", self.authserv_id);
            return findings;
        };
        // See `canon`: relaxed-body hashes are computed over a copy without trailing
        // whitespace-only lines.
        let trimmed_bytes = canon::trimmed_len(raw, message.body_offset()).map(|n| &raw[..n]);
        let trimmed = trimmed_bytes.and_then(AuthenticatedMessage::parse);
        let relaxed_view = trimmed.as_ref().unwrap_or(&message);

        // DKIM: every signature, up to the cap.
        let mut dkim: Vec<DkimOutput<'_>> = if message.dkim_headers.len() > MAX_DKIM_SIGNATURES {
            findings.entries.push(
                Entry::new(Stage::Dkim, Outcome::PermError, Reason::DkimMalformed)
                    .detail(format!("{} signatures, more than {MAX_DKIM_SIGNATURES}", message.dkim_headers.len())),
            );
            Vec::new()
        } else {
            self.auth.verify_dkim(self.caches.params(&message)).await
        };
        if let Some(t) = &trimmed {
            let fixed = self.auth.verify_dkim(self.caches.params(t)).await;
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
        let signatures: Vec<&mail_auth::dkim::Signature> =
            message.dkim_headers.iter().chain(trimmed.iter().flat_map(|t| t.dkim_headers.iter())).map(|h| &h.header).collect();
        let dkim = without_partial_bodies(dkim, &signatures);
        if dkim.is_empty() && message.dkim_headers.len() <= MAX_DKIM_SIGNATURES {
            findings.entries.push(Entry::new(Stage::Dkim, Outcome::None, Reason::DkimUnsigned));
        }
        findings.entries.extend(dkim.iter().map(dkim_entry));

        // ARC (RFC 8617 §5.2).
        let arc = self.auth.verify_arc(self.caches.params(relaxed_view)).await;
        findings.entries.push(self.arc_entry(&arc));

        // DMARC (RFC 7489 §6.6).
        let spf_out = ctx.spf.map(|s| s.mail_from.clone()).unwrap_or_else(|| SpfOutput::new(String::new()));
        let spf_domain = ctx.spf.map(|s| s.domain.clone()).unwrap_or_default();
        let dmarc = self.auth.verify_dmarc(self.caches.params(DmarcParameters::new(&message, &dkim, &spf_domain, &spf_out))).await;
        let (dmarc_entry, published) = self.dmarc_entry(&dmarc).await;
        findings.entries.push(dmarc_entry.clone());

        // The header: RFC 8601 §2.2 authserv-id first, then one result per method.
        let from = message.from().to_string();
        let mut ar = AuthenticationResults::new(&self.authserv_id);
        if let Some(iprev) = ctx.iprev {
            ar = ar.with_iprev_result(iprev, ctx.ip);
        }
        if let Some(spf) = ctx.spf {
            if let (Some(h), false) = (&spf.helo, spf.sender.is_empty()) {
                ar = ar.with_spf_ehlo_result(h, ctx.ip, ctx.helo);
            }
            ar = ar.with_spf_mailfrom_result(&spf.mail_from, ctx.ip, &spf.sender, ctx.helo);
        }
        ar = ar.with_dkim_results(&dkim, &from);
        if !matches!(arc.result(), DkimResult::None) {
            ar = ar.with_arc_result(&arc, ctx.ip);
        }
        if !dmarc.domain().is_empty() {
            ar = ar.with_dmarc_result(&dmarc);
        }
        findings.header = ar.to_header();

        if let Some(published) = published {
            findings.evaluation = Some(Evaluation::new(&dmarc, &dkim, ctx, &spf_domain, &spf_out, published, &dmarc_entry));
        }

        if let Some(fwd) = forward {
            findings.arc_set = self.seal(&findings.header, fwd, raw, &ar, &arc);
            if findings.arc_set.is_none() {
                tracing::info!(event = "arc_seal_skipped", reason = "chain_failed_or_key_error");
            }
        }
        findings
    }

    fn arc_entry(&self, arc: &mail_auth::ArcOutput<'_>) -> Entry {
        let sealer = arc.sets().last().map(|s| s.seal.header.d.to_ascii_lowercase()).unwrap_or_default();
        let (result, reason) = match arc.result() {
            DkimResult::Pass if self.trusted_sealers.iter().any(|t| *t == sealer) => (Outcome::Pass, Reason::ArcValidTrustedSealer),
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

    /// The DMARC entry with the policy to apply, and the published record for reports.
    async fn dmarc_entry(&self, dmarc: &DmarcOutput) -> (Entry, Option<Published>) {
        let domain = dmarc.domain().to_string();
        let Some(record) = dmarc.dmarc_record() else {
            let entry = match dmarc.dkim_result() {
                DmarcResult::TempError(_) => Entry::new(Stage::Dmarc, Outcome::TempError, Reason::DmarcDnsError),
                DmarcResult::PermError(_) => Entry::new(Stage::Dmarc, Outcome::PermError, Reason::DmarcBadRecord),
                _ => Entry::new(Stage::Dmarc, Outcome::None, Reason::DmarcNoPolicy),
            };
            return (entry.domain(domain), None);
        };
        let mut policy = match dmarc.policy() {
            mail_auth::dmarc::Policy::Reject => Disposition::Reject,
            mail_auth::dmarc::Policy::Quarantine => Disposition::Quarantine,
            _ => Disposition::None,
        };
        // mail-auth 0.13 follows DMARCbis, which dropped `pct`; RFC 7489 §6.6.4 still has it:
        // a message not in the sample gets the next less strict policy.
        let pct = self.pct(&domain).await;
        let mut detail = String::new();
        let (result, reason) = match dmarc.result() {
            DmarcResult::Pass => (Outcome::Pass, Reason::DmarcAligned),
            DmarcResult::Fail(_) => (Outcome::Fail, Reason::DmarcNotAligned),
            DmarcResult::TempError(_) => (Outcome::TempError, Reason::DmarcDnsError),
            DmarcResult::PermError(_) => (Outcome::PermError, Reason::DmarcBadRecord),
            DmarcResult::None => (Outcome::None, Reason::DmarcNoPolicy),
        };
        if result == Outcome::Fail && pct < 100 && rand::random_range(0..100u8) >= pct {
            let lowered = match policy {
                Disposition::Reject => Disposition::Quarantine,
                _ => Disposition::None,
            };
            detail = format!("pct={pct}: not sampled, {} lowered to {}", policy.as_str(), lowered.as_str());
            policy = lowered;
        }
        let published = Published::from_record(&domain, record, pct, &dmarc.rua_uris());
        let entry = Entry::new(Stage::Dmarc, result, reason).domain(domain).policy(policy).detail(detail);
        (entry, Some(published))
    }

    /// `pct` of the DMARC record for `domain` or, failing that, of its parent domains (the
    /// organizational domain's record applies to subdomains, RFC 7489 §6.6.3). 100 when absent.
    async fn pct(&self, domain: &str) -> u8 {
        let labels: Vec<&str> = domain.split('.').collect();
        for start in 0..labels.len().saturating_sub(1).min(5) {
            let name = format!("_dmarc.{}.", labels[start..].join("."));
            let Ok(raw) = self.auth.txt_raw_lookup(name.as_str()).await else { continue };
            let text = String::from_utf8_lossy(&raw).to_string();
            if !text.trim_start().starts_with("v=DMARC1") {
                continue;
            }
            return parse_pct(&text);
        }
        100
    }

    /// Seals the forwarded copy: `header` (our A-R) + `fwd.prefix` + `raw`.
    fn seal(&self, header: &str, fwd: Forward<'_>, raw: &[u8], ar: &AuthenticationResults<'_>, arc: &mail_auth::ArcOutput<'_>) -> Option<String> {
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
        let headers = ["From", "To", "Cc", "Subject", "Date", "Message-ID", "Reply-To", "MIME-Version", "Content-Type", "DKIM-Signature", "Authentication-Results"];
        let key = fwd.key;
        let set = match key.algorithm {
            Algorithm::Rsa => {
                let k = RsaKey::<Sha256>::from_key_der(key.der()).ok()?;
                ArcSealer::from_key(k).domain(key.domain.clone()).selector(key.selector.clone()).headers(headers).seal(view, ar, arc)
            }
            Algorithm::Ed25519 => {
                let k = Ed25519Key::from_pkcs8_der(&key.private_der).ok()?;
                ArcSealer::from_key(k).domain(key.domain.clone()).selector(key.selector.clone()).headers(headers).seal(view, ar, arc)
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

trait RuaUris {
    fn rua_uris(&self) -> Vec<String>;
}

impl RuaUris for DmarcOutput {
    fn rua_uris(&self) -> Vec<String> {
        self.dmarc_record().map(|r| r.rua().iter().map(|u| u.uri().to_string()).collect()).unwrap_or_default()
    }
}

/// `pct=N` from a DMARC record's text; 100 when missing or invalid (RFC 7489 §6.3).
pub fn parse_pct(record: &str) -> u8 {
    record
        .split(';')
        .filter_map(|tag| tag.split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("pct"))
        .and_then(|(_, v)| v.trim().parse::<u8>().ok())
        .filter(|p| *p <= 100)
        .unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pct_tag() {
        assert_eq!(parse_pct("v=DMARC1; p=reject; pct=20"), 20);
        assert_eq!(parse_pct("v=DMARC1; p=reject"), 100);
        assert_eq!(parse_pct("v=DMARC1; p=reject; pct=250"), 100);
        assert_eq!(parse_pct("v=DMARC1;p=quarantine;PCT= 0 ;rua=mailto:x@y"), 0);
    }
}
