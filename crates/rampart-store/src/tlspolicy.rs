//! The TLS-policy role: other domains' MTA-STS policies cached for their max_age (RFC 8461
//! §5.1), the outcome of each outbound TLS session waiting for the next TLS report (RFC 8460),
//! and the TLS reports other servers sent us.

use async_trait::async_trait;

use crate::Result;

/// A domain's MTA-STS policy as fetched, with the `id` of the `_mta-sts` record it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedStsPolicy {
    pub domain: String,
    pub id: String,
    /// The policy file's text, as served (it is parsed again on use).
    pub policy: String,
    pub fetched: i64,
    /// fetched + max_age: after this the policy no longer applies.
    pub expires: i64,
}

/// One outbound TLS session's outcome, for the policy domain's next TLS report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOutcome {
    pub policy_domain: String,
    /// RFC 8460 §4.3 policy-type: "sts", "tlsa" or "no-policy-found".
    pub policy_type: String,
    /// The policy as the report shows it (policy-string), one line each, "\n"-joined.
    pub policy_string: String,
    pub mx_host: String,
    pub receiving_ip: String,
    /// "success", or an RFC 8460 §4.3 result-type ("certificate-host-mismatch", ...).
    pub result: String,
    /// additional-information for failures.
    pub detail: String,
    pub created: i64,
}

/// A TLS report another server sent us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsReportRecord {
    pub org_name: String,
    pub report_id: String,
    /// The policy domains the report covers, comma-separated.
    pub domains: String,
    pub date_begin: i64,
    pub date_end: i64,
    pub successes: i64,
    pub failures: i64,
    /// The report's JSON as received.
    pub json: String,
    pub received: i64,
}

#[async_trait]
pub trait TlsPolicyStore: Send + Sync + 'static {
    async fn sts_policy(&self, domain: &str) -> Result<Option<CachedStsPolicy>>;
    /// Stores (or replaces) a domain's policy.
    async fn put_sts_policy(&self, policy: CachedStsPolicy) -> Result<()>;
    /// Domains whose cached policy expires before `before`: the background refresh's work.
    async fn sts_policies_expiring(&self, before: i64) -> Result<Vec<String>>;

    async fn add_tls_outcome(&self, outcome: TlsOutcome) -> Result<()>;
    /// Outcomes recorded before `until` (unix seconds).
    async fn tls_outcomes(&self, until: i64) -> Result<Vec<TlsOutcome>>;
    /// Forgets one policy domain's outcomes recorded before `until` (sent in a report, or
    /// nobody to send it to).
    async fn delete_tls_outcomes_of(&self, domain: &str, until: i64) -> Result<()>;

    /// Stores a received report; the same report (organization and id) twice is stored once.
    async fn add_tls_report(&self, report: TlsReportRecord) -> Result<bool>;
    async fn tls_reports(&self) -> Result<Vec<TlsReportRecord>>;
}
