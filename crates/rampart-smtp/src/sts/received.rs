//! TLS reports other servers send us (RFC 8460 §5): mail to `[tlsrpt] report_address` holding a
//! report (gzipped or plain JSON, parsed by mail-auth) about one of our domains is kept for
//! `rampart tlsrpt reports`.

use mail_auth::report::tlsrpt::TlsReport;
use rampart_store::{Store, TlsReportRecord};
use tracing::{info, warn};

/// A report bigger than this once decompressed is not read (RFC 8460 reports are summaries;
/// this bounds what a hostile gzip can make us allocate).
const MAX_REPORT: usize = 5 * 1024 * 1024;

/// Whether `rcpts` include the report address.
pub fn for_reports(rcpts: &[String], address: &str) -> bool {
    rcpts.iter().any(|r| r.trim_matches(['<', '>']).eq_ignore_ascii_case(address))
}

/// Parses `raw` and stores the report when it covers at least one of our domains.
pub async fn take(store: &dyn Store, id: &str, raw: &[u8]) {
    let Ok(report) = TlsReport::parse_rfc5322(raw, MAX_REPORT) else { return };
    let ours = match store.list_domains().await {
        Ok(domains) => domains,
        Err(e) => {
            warn!(event = "store_error", id = %id, error = %e, what = "tls report");
            return;
        }
    };
    let Some(record) = record(&report, &ours) else {
        info!(event = "tlsrpt_report_refused", id = %id, reason = "not_our_domain");
        return;
    };
    let domains = record.domains.clone();
    match store.add_tls_report(record).await {
        Ok(_) => info!(event = "tlsrpt_report_received", id = %id, domains = %domains),
        Err(e) => warn!(event = "store_error", id = %id, error = %e, what = "tls report"),
    }
}

/// The stored form of a report whose policies name at least one domain of `ours`.
fn record(r: &TlsReport, ours: &[String]) -> Option<TlsReportRecord> {
    let mut domains: Vec<String> = r.policies.iter().map(|p| p.policy.policy_domain.trim_end_matches('.').to_ascii_lowercase()).collect();
    domains.sort();
    domains.dedup();
    if !domains.iter().any(|d| ours.iter().any(|o| o.eq_ignore_ascii_case(d))) {
        return None;
    }
    Some(TlsReportRecord {
        org_name: r.organization_name.clone().unwrap_or_default(),
        report_id: r.report_id.clone(),
        domains: domains.join(","),
        date_begin: r.date_range.start_datetime.to_timestamp(),
        date_end: r.date_range.end_datetime.to_timestamp(),
        successes: r.policies.iter().map(|p| i64::from(p.summary.total_success)).sum(),
        failures: r.policies.iter().map(|p| i64::from(p.summary.total_failure)).sum(),
        json: serde_json::to_string(r).unwrap_or_default(),
        received: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8460 Appendix B's example report.
    const RFC_EXAMPLE: &str = r#"{
     "organization-name": "Company-X",
     "date-range": {"start-datetime": "2016-04-01T00:00:00Z", "end-datetime": "2016-04-01T23:59:59Z"},
     "contact-info": "sts-reporting@company-x.example",
     "report-id": "5065427c-23d3-47ca-b6e0-946ea0e8c4be",
     "policies": [{
       "policy": {"policy-type": "sts", "policy-string": ["version: STSv1","mode: testing", "mx: *.mail.company-y.example","max_age: 86400"],
                  "policy-domain": "company-y.example", "mx-host": ["*.mail.company-y.example"]},
       "summary": {"total-successful-session-count": 5326, "total-failure-session-count": 303},
       "failure-details": [
         {"result-type": "certificate-expired", "sending-mta-ip": "2001:db8:abcd:0012::1",
          "receiving-mx-hostname": "mx1.mail.company-y.example", "failed-session-count": 100},
         {"result-type": "starttls-not-supported", "sending-mta-ip": "2001:db8:abcd:0013::1",
          "receiving-mx-hostname": "mx2.mail.company-y.example", "receiving-ip": "203.0.113.56",
          "failed-session-count": 200, "additional-information": "https://reports.company-x.example/report_info?id=5065427c-23d3#StarttlsNotSupported"},
         {"result-type": "validation-failure", "sending-mta-ip": "198.51.100.62", "receiving-ip": "203.0.113.58",
          "receiving-mx-hostname": "mx-backup.mail.company-y.example", "failed-session-count": 3, "failure-reason-code": "X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED"}]
     }]
   }"#;

    #[test]
    fn the_rfc_example_is_kept_for_its_domain_only() {
        let r = TlsReport::parse_json(RFC_EXAMPLE.as_bytes()).unwrap();
        let rec = record(&r, &["company-y.example".into()]).unwrap();
        assert_eq!((rec.org_name.as_str(), rec.domains.as_str()), ("Company-X", "company-y.example"));
        assert_eq!((rec.successes, rec.failures), (5326, 303));
        assert_eq!(rec.date_end - rec.date_begin, 86399);
        assert!(record(&r, &["other.example".into()]).is_none());
    }
}
