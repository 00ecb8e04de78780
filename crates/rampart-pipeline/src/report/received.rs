//! Aggregate reports other domains send us (RFC 7489 §7.2): parsing the mail, and the rule
//! for keeping one.

use crate::trail::{Outcome, Stage, Trail};

/// A summary of an aggregate report someone sent us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedReport {
    pub org_name: String,
    pub report_id: String,
    pub domain: String,
    pub begin: i64,
    pub end: i64,
    /// Messages covered, and how many of them passed DMARC (DKIM or SPF aligned).
    pub messages: i64,
    pub passed: i64,
    /// The report's records as JSON, for later inspection.
    pub records: String,
}

/// Most bytes of a received report mail mail-auth decompresses (a gzip bomb stops here).
pub const MAX_REPORT_SIZE: usize = 10 * 1024 * 1024;

/// Parses an aggregate report mail (gzip, zip or plain XML attachment); None when it is not one.
pub fn parse_received(message: &[u8]) -> Option<ReceivedReport> {
    let r = mail_auth::report::Report::parse_rfc5322(message, MAX_REPORT_SIZE).ok()?;
    let mut messages = 0i64;
    let mut passed = 0i64;
    let mut records = Vec::new();
    for rec in r.records() {
        let n = rec.count() as i64;
        messages += n;
        if rec.dmarc_dkim_result() == mail_auth::report::DmarcResult::Pass || rec.dmarc_spf_result() == mail_auth::report::DmarcResult::Pass {
            passed += n;
        }
        records.push(serde_json::json!({
            "source_ip": rec.source_ip().map(|i| i.to_string()),
            "count": rec.count(),
            "header_from": rec.header_from(),
            "dkim": format!("{:?}", rec.dmarc_dkim_result()).to_lowercase(),
            "spf": format!("{:?}", rec.dmarc_spf_result()).to_lowercase(),
        }));
    }
    Some(ReceivedReport {
        org_name: r.org_name().to_string(),
        report_id: r.report_id().to_string(),
        domain: r.domain().to_string(),
        begin: r.date_range_begin() as i64,
        end: r.date_range_end() as i64,
        messages,
        passed,
        records: serde_json::Value::Array(records).to_string(),
    })
}

/// Why a received aggregate report is not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The mail carrying it did not pass DMARC: anyone could have written it.
    SenderNotAuthenticated,
    /// It reports on a domain that is not ours.
    NotOurDomain,
}

impl Refused {
    /// The name in log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::SenderNotAuthenticated => "sender_not_dmarc_pass",
            Refused::NotOurDomain => "not_our_domain",
        }
    }
}

/// Whether to keep `report`, which arrived in a message whose checks left `trail`: only when
/// that message passed DMARC, so its From domain vouches for it, and the report is about one
/// of `local_domains` or a subdomain of one (RFC 7489 §7.2: reports go to the domain owner
/// who asked for them; a report about someone else's domain, or from a sender we cannot
/// authenticate, would let anyone fill the report list).
pub fn accept_received(trail: &Trail, report: &ReceivedReport, local_domains: &[String]) -> Result<(), Refused> {
    if !trail.find(Stage::Dmarc).is_some_and(|e| e.result == Outcome::Pass) {
        return Err(Refused::SenderNotAuthenticated);
    }
    let domain = report.domain.trim_end_matches('.').to_ascii_lowercase();
    let ours = local_domains.iter().map(|d| d.trim_end_matches('.').to_ascii_lowercase()).any(|local| {
        domain == local || domain.strip_suffix(&local).is_some_and(|sub| sub.ends_with('.'))
    });
    if !ours {
        return Err(Refused::NotOurDomain);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trail::{Entry, Reason};

    fn report(domain: &str) -> ReceivedReport {
        ReceivedReport {
            org_name: "Reporter".into(),
            report_id: "1".into(),
            domain: domain.into(),
            begin: 0,
            end: 1,
            messages: 1,
            passed: 1,
            records: "[]".into(),
        }
    }

    fn trail(dmarc: Option<Outcome>) -> Trail {
        let mut t = Trail::default();
        t.push(Entry::new(Stage::Spf, Outcome::Pass, Reason::SpfAuthorized));
        if let Some(result) = dmarc {
            t.push(Entry::new(Stage::Dmarc, result, Reason::DmarcAligned).domain("reporter.test"));
        }
        t
    }

    /// (case, the message's DMARC result, the report's domain, the answer)
    type Case = (&'static str, Option<Outcome>, &'static str, Result<(), Refused>);

    #[test]
    fn kept_only_when_authentic_and_about_our_domain() {
        let ours = ["example.test".to_string(), "Other.TEST.".to_string()];
        let cases: [Case; 10] = [
            ("authentic, ours", Some(Outcome::Pass), "example.test", Ok(())),
            ("case and trailing dot", Some(Outcome::Pass), "OTHER.test.", Ok(())),
            ("a subdomain of ours", Some(Outcome::Pass), "mail.example.test", Ok(())),
            ("not ours", Some(Outcome::Pass), "bank.test", Err(Refused::NotOurDomain)),
            ("only the suffix matches", Some(Outcome::Pass), "badexample.test", Err(Refused::NotOurDomain)),
            ("a parent of ours", Some(Outcome::Pass), "test", Err(Refused::NotOurDomain)),
            ("DMARC failed", Some(Outcome::Fail), "example.test", Err(Refused::SenderNotAuthenticated)),
            ("no DMARC policy", Some(Outcome::None), "example.test", Err(Refused::SenderNotAuthenticated)),
            ("DMARC temperror", Some(Outcome::TempError), "example.test", Err(Refused::SenderNotAuthenticated)),
            ("checks off", None, "example.test", Err(Refused::SenderNotAuthenticated)),
        ];
        for (name, dmarc, domain, expected) in cases {
            assert_eq!(accept_received(&trail(dmarc), &report(domain), &ours), expected, "{name}");
        }
    }
}
