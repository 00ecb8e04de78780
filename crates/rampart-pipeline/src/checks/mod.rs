//! The sender-authentication stages, on mail-auth with the DNS of [`crate::dns`]:
//! SPF (HELO and MAIL FROM) and iprev in [`envelope`], DKIM (every signature) in [`dkim`],
//! ARC in [`arc`] and DMARC in [`dmarc`]. Each returns what it found as trail entries; the
//! Authentication-Results header is written here from the same outputs, so the header and
//! the trail cannot disagree.

mod arc;
mod dkim;
mod dmarc;
mod envelope;
#[cfg(test)]
mod tests;

use std::net::IpAddr;

use mail_auth::common::headers::HeaderWriter;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::{ArcOutput, AuthenticatedMessage, AuthenticationResults, DkimOutput, DkimResult, DmarcOutput, IprevOutput, SpfOutput};

use crate::canon;
use crate::dkim::SigningKey;
use crate::dns::Dns;
use crate::report::Evaluation;
use crate::trail::{Entry, Outcome, Reason, Stage};

pub use dkim::MAX_DKIM_SIGNATURES;
pub use dmarc::parse_pct;
pub use envelope::SpfCheck;

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
    dns: Dns,
    authserv_id: String,
    /// Domains whose ARC seals we trust to vouch for forwarded mail (RFC 8617 §7.2).
    trusted_sealers: Vec<String>,
    /// Our host name: SPF's `%{r}` macro.
    hostname: String,
}

impl Checker {
    /// `dns` is a resolver (live) or a [`Dns`] (answers put in ahead, or offline for tests).
    pub fn new(dns: impl Into<Dns>, authserv_id: &str, hostname: &str, trusted_sealers: &[String]) -> Checker {
        Checker {
            dns: dns.into(),
            authserv_id: authserv_id.to_string(),
            trusted_sealers: trusted_sealers.iter().map(|d| d.trim_end_matches('.').to_ascii_lowercase()).collect(),
            hostname: hostname.to_string(),
        }
    }

    pub fn authserv_id(&self) -> &str {
        &self.authserv_id
    }

    /// The DNS the checks ask, to put answers in ahead.
    pub fn dns(&self) -> &Dns {
        &self.dns
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

        let dkim = self.dkim(&message, trimmed.as_ref(), &mut findings.entries).await;
        let arc = self.arc(trimmed.as_ref().unwrap_or(&message)).await;
        findings.entries.push(self.arc_entry(&arc));
        // DMARC (RFC 7489 §6.6).
        let spf_out = ctx.spf.map(|s| s.mail_from.clone()).unwrap_or_else(|| SpfOutput::new(String::new()));
        let spf_domain = ctx.spf.map(|s| s.domain.clone()).unwrap_or_default();
        let params = DmarcParameters::new(&message, &dkim, &spf_domain, &spf_out);
        let dmarc = self.dns.auth().verify_dmarc(self.dns.params(params)).await;
        let (dmarc_entry, published) = self.dmarc_entry(&dmarc).await;
        findings.entries.push(dmarc_entry.clone());

        let ar = self.results(&message, ctx, &dkim, &arc, &dmarc);
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

    /// The Authentication-Results header: RFC 8601 §2.2 authserv-id first, then one result
    /// per method.
    fn results<'a>(
        &'a self,
        message: &AuthenticatedMessage<'_>,
        ctx: &Context<'_>,
        dkim: &[DkimOutput<'_>],
        arc: &ArcOutput<'_>,
        dmarc: &DmarcOutput,
    ) -> AuthenticationResults<'a> {
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
        ar = ar.with_dkim_results(dkim, message.from());
        if !matches!(arc.result(), DkimResult::None) {
            ar = ar.with_arc_result(arc, ctx.ip);
        }
        if !dmarc.domain().is_empty() {
            ar = ar.with_dmarc_result(dmarc);
        }
        ar
    }
}
