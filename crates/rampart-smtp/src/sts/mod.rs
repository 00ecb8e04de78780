//! Outbound TLS policy: MTA-STS (RFC 8461) and the TLS-RPT record of every session's outcome
//! (RFC 8460).
//!
//! - [`policy`] parses policy files and matches MX names; [`fetch`] finds them (the `_mta-sts`
//!   TXT record, the HTTPS fetch);
//! - [`TlsPolicies::sts`] gives the policy for a domain: the cached one while its record's id is
//!   unchanged and max_age has not passed (§5.1), else a fresh fetch, stored in the store; when
//!   DNS or the fetch fails a cached policy still applies until it expires;
//! - [`TlsPolicies::refresh_loop`] fetches again, in the background, policies about to expire,
//!   so a delivery rarely waits for a fetch;
//! - [`TlsPolicies::record`] keeps each outbound session's outcome for the daily TLS report;
//!   [`received`] keeps the reports other servers send us; [`post`] sends ours to https ruas;
//! - [`dane`] matches certificates against TLSA records, [`dnssec`] finds those records.
//!
//! `outbound::connect` applies the policy: under `enforce` only matching MX hosts are used,
//! each with a certificate that must validate for its name; under `testing` delivery goes on
//! as before and the failures are reported.

pub mod dane;
pub mod dnssec;
pub mod fetch;
pub mod policy;
pub mod post;
pub mod received;

use std::sync::Arc;
use std::time::Duration;

use rampart_store::{CachedStsPolicy, TlsOutcome, TlsPolicyStore};
use tracing::{info, warn};

pub use fetch::FetchError;
pub use policy::{Mode, Policy};

use crate::client::TlsClient;
use crate::dns::Resolver;
use fetch::Txt;

/// How often the background refresh looks for policies about to expire.
const REFRESH_EVERY: Duration = Duration::from_secs(3600);
/// Policies expiring within this are fetched again by the background refresh (§5.1: senders
/// should refresh before expiry, so a policy never lapses while the domain still publishes it).
const REFRESH_AHEAD: i64 = 24 * 3600;

/// Everything outbound delivery needs for MTA-STS and TLS reporting.
pub struct TlsPolicies {
    pub store: Arc<dyn TlsPolicyStore>,
    pub resolver: Resolver,
    /// Trust anchors for policy hosts (the same as for MX hosts).
    pub tls: TlsClient,
    /// Port of `mta-sts.DOMAIN` (443; tests point it elsewhere).
    pub policy_port: u16,
    pub fetch_timeout: Duration,
    /// `[mta_sts] outbound`: apply policies (else only record outcomes).
    pub apply: bool,
    /// `[tlsrpt] send_reports`: record outcomes.
    pub record: bool,
    /// DNSSEC-validated lookups for DANE (`[mta_sts] dane`); None: no DANE.
    pub dane: Option<dnssec::Dane>,
}

/// A domain's policy as it applies to one delivery, and a fetch failure to report.
#[derive(Debug, Default)]
pub struct Applied {
    pub policy: Option<Policy>,
    pub failure: Option<FetchError>,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl TlsPolicies {
    /// The policy for `domain` (see the module doc). Mode `none` comes back as it is: it
    /// applies no rule, and it replaces a cached policy (§5.2).
    pub async fn sts(&self, domain: &str) -> Applied {
        if !self.apply {
            return Applied::default();
        }
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let cached = self.cached(&domain).await;
        match fetch::txt_id(&self.resolver, &domain).await {
            // §5.1: without a record (or DNS), a cached policy applies until it expires.
            Txt::Absent | Txt::TempFail(_) => Applied { policy: cached.map(|(_, p)| p), failure: None },
            Txt::Id(id) if cached.as_ref().is_some_and(|(c, _)| c.id == id) => Applied { policy: cached.map(|(_, p)| p), failure: None },
            Txt::Id(id) => match self.fetch(&domain, &id).await {
                Ok(p) => Applied { policy: Some(p), failure: None },
                Err(e) => {
                    warn!(event = "mta_sts_fetch_failed", domain = %domain, reason = %e);
                    Applied { policy: cached.map(|(_, p)| p), failure: Some(e) }
                }
            },
        }
    }

    async fn cached(&self, domain: &str) -> Option<(CachedStsPolicy, Policy)> {
        let c = self.store.sts_policy(domain).await.ok().flatten().filter(|c| c.expires > now())?;
        let p = Policy::parse(&c.policy).ok()?;
        Some((c, p))
    }

    /// Fetches and stores the policy of `domain` published under record id `id`.
    async fn fetch(&self, domain: &str, id: &str) -> Result<Policy, FetchError> {
        let text = fetch::policy_text(&self.tls, &self.resolver, domain, self.policy_port, self.fetch_timeout).await?;
        let policy = Policy::parse(&text).map_err(|e| FetchError::Invalid(e.to_string()))?;
        let fetched = now();
        let cached = CachedStsPolicy { domain: domain.to_string(), id: id.to_string(), policy: text, fetched, expires: fetched + policy.max_age as i64 };
        if let Err(e) = self.store.put_sts_policy(cached).await {
            warn!(event = "mta_sts_cache_failed", domain = %domain, error = %e);
        }
        info!(event = "mta_sts_policy", domain = %domain, id = %id, mode = %policy.mode, max_age = policy.max_age);
        Ok(policy)
    }

    /// Every [`REFRESH_EVERY`], fetches again the policies expiring within [`REFRESH_AHEAD`]
    /// whose domain still publishes a record.
    pub async fn refresh_loop(self: Arc<Self>) {
        loop {
            tokio::time::sleep(REFRESH_EVERY).await;
            let domains = self.store.sts_policies_expiring(now() + REFRESH_AHEAD).await.unwrap_or_default();
            for domain in domains {
                if let Txt::Id(id) = fetch::txt_id(&self.resolver, &domain).await
                    && let Err(e) = self.fetch(&domain, &id).await
                {
                    warn!(event = "mta_sts_refresh_failed", domain = %domain, reason = %e);
                }
            }
        }
    }

    /// Keeps one session's outcome for `domain`'s next TLS report. `result` is "success" or an
    /// RFC 8460 result type.
    pub async fn record(&self, domain: &str, kind: PolicyKind<'_>, mx_host: &str, ip: &str, result: &str, detail: &str) {
        if !self.record {
            return;
        }
        let (policy_type, policy_string) = match kind {
            PolicyKind::Sts(p) => ("sts", p.report_lines().join("\n")),
            PolicyKind::StsUnavailable => ("sts", String::new()),
            PolicyKind::Tlsa(records) => ("tlsa", records.join("\n")),
            PolicyKind::None => ("no-policy-found", String::new()),
        };
        let outcome = TlsOutcome {
            policy_domain: domain.trim_end_matches('.').to_ascii_lowercase(),
            policy_type: policy_type.into(),
            policy_string,
            mx_host: mx_host.into(),
            receiving_ip: ip.into(),
            result: result.into(),
            detail: detail.chars().take(200).collect(),
            created: 0,
        };
        if let Err(e) = self.store.add_tls_outcome(outcome).await {
            warn!(event = "tlsrpt_record_failed", domain = %domain, error = %e);
        }
    }
}

/// The policy a session ran under, as a TLS report names it.
#[derive(Debug, Clone, Copy)]
pub enum PolicyKind<'a> {
    Sts(&'a Policy),
    /// The domain publishes an MTA-STS record but its policy could not be had.
    StsUnavailable,
    /// The TLSA records, in presentation form.
    Tlsa(&'a [String]),
    None,
}

/// The RFC 8460 §4.3 result type of a failed certificate check, from webpki's error.
pub fn certificate_result(error: &str) -> &'static str {
    let e = error.to_ascii_lowercase();
    if e.contains("notvalidforname") || e.contains("not valid for name") {
        "certificate-host-mismatch"
    } else if e.contains("expired") {
        "certificate-expired"
    } else if e.contains("unknownissuer") || e.contains("unknown issuer") || e.contains("badsignature") {
        "certificate-not-trusted"
    } else {
        "validation-failure"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_results() {
        assert_eq!(certificate_result("invalid peer certificate: NotValidForName"), "certificate-host-mismatch");
        assert_eq!(certificate_result("invalid peer certificate: UnknownIssuer"), "certificate-not-trusted");
        assert_eq!(certificate_result("invalid peer certificate: Expired"), "certificate-expired");
        assert_eq!(certificate_result("received fatal alert: HandshakeFailure"), "validation-failure");
    }
}
