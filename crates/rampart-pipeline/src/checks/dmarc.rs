//! DMARC (RFC 7489): the entry with the policy to apply after `pct` sampling, the published
//! record for aggregate reports, and which `rua` addresses may receive them (§7.1).

use mail_auth::{DmarcOutput, DmarcResult};

use super::Checker;
use crate::dns::DnsFailure;
use crate::report::Published;
use crate::trail::{Disposition, Entry, Outcome, Reason, Stage};

/// Labels the `pct` lookup walks up from the From domain: the organizational domain of
/// ordinary names is within a few labels, and each step is a DNS question.
const PCT_MAX_LABELS: usize = 5;

impl Checker {
    /// The DMARC entry with the policy to apply, and the published record for reports.
    pub(super) async fn dmarc_entry(&self, dmarc: &DmarcOutput) -> (Entry, Option<Published>) {
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
        let rua: Vec<String> = record.rua().iter().map(|u| u.uri().to_string()).collect();
        let published = Published::from_record(&domain, record, pct, &rua);
        let entry = Entry::new(Stage::Dmarc, result, reason).domain(domain).policy(policy).detail(detail);
        (entry, Some(published))
    }

    /// `pct` of the DMARC record for `domain` or, failing that, of its parent domains (the
    /// organizational domain's record applies to subdomains, RFC 7489 §6.6.3). 100 when absent.
    async fn pct(&self, domain: &str) -> u8 {
        let labels: Vec<&str> = domain.split('.').collect();
        for start in 0..labels.len().saturating_sub(1).min(PCT_MAX_LABELS) {
            let name = format!("_dmarc.{}.", labels[start..].join("."));
            let Ok(Some(text)) = self.dns.txt_raw(&name).await else { continue };
            if text.trim_start().starts_with("v=DMARC1") {
                return parse_pct(&text);
            }
        }
        100
    }

    /// The `rua` addresses that may receive reports about `domain`: its own (and subdomains'),
    /// and others only when they publish `<domain>._report._dmarc.<their domain>` (RFC 7489
    /// §7.1). An error on a DNS failure: try again at the next run.
    pub async fn authorized_rua(&self, domain: &str, rua: &[String]) -> Result<Vec<String>, DnsFailure> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let mut out = Vec::new();
        for addr in rua {
            let target = addr.rsplit_once('@').map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase()).unwrap_or_default();
            let internal = target == domain || target.ends_with(&format!(".{domain}"));
            // Written here rather than with mail-auth's helper, which wants the record to parse
            // as a full DMARC policy; §7.1 asks only for a record starting with "v=DMARC1".
            let authorized = internal || {
                let name = format!("{domain}._report._dmarc.{target}.");
                self.dns.txt_raw(&name).await?.is_some_and(|text| text.trim_start().starts_with("v=DMARC1"))
            };
            if authorized {
                out.push(addr.clone());
            }
        }
        Ok(out)
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
