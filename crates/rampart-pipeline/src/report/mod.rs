//! DMARC aggregate reports (RFC 7489 §7.2 and Appendix C).
//!
//! Each DMARC evaluation of a domain that asked for reports (`rua=`) is stored as an
//! [`Evaluation`]. Once a day they are grouped per policy domain ([`by_domain`]) into the
//! RFC 7489 XML ([`aggregate`]), gzipped and mailed to the authorized `rua` addresses.
//! Reports other domains send us are parsed, and kept only when authentic and about one
//! of our domains ([`received`]).

mod aggregate;
mod received;

use std::collections::BTreeMap;

use mail_auth::{DkimOutput, DkimResult, DmarcOutput, DmarcResult, SpfOutput, SpfResult};
use serde::{Deserialize, Serialize};

use crate::checks::Context;
use crate::trail::{Disposition, Entry};

/// The policy as the domain published it (RFC 7489 Appendix C `PolicyPublishedType`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    pub domain: String,
    /// "r" or "s".
    pub adkim: String,
    pub aspf: String,
    pub p: Disposition,
    pub sp: Disposition,
    pub pct: u8,
    /// Failure reporting options (`fo`, RFC 7489 §6.3), "0" when not given.
    #[serde(default)]
    pub fo: String,
    /// `rua` addresses, `mailto:` removed.
    pub rua: Vec<String>,
}

fn disposition(p: mail_auth::dmarc::Policy) -> Disposition {
    match p {
        mail_auth::dmarc::Policy::Reject => Disposition::Reject,
        mail_auth::dmarc::Policy::Quarantine => Disposition::Quarantine,
        _ => Disposition::None,
    }
}

impl Published {
    pub fn from_record(domain: &str, r: &mail_auth::dmarc::Dmarc, pct: u8, rua: &[String]) -> Published {
        let align = |a: mail_auth::dmarc::Alignment| if a == mail_auth::dmarc::Alignment::Strict { "s" } else { "r" };
        let p = disposition(r.p);
        let sp = if r.sp == mail_auth::dmarc::Policy::Unspecified { p } else { disposition(r.sp) };
        Published {
            domain: domain.to_string(),
            adkim: align(r.adkim).into(),
            aspf: align(r.aspf).into(),
            p,
            sp,
            pct,
            fo: match r.fo {
                mail_auth::dmarc::Report::All => "0",
                mail_auth::dmarc::Report::Any => "1",
                mail_auth::dmarc::Report::Dkim => "d",
                mail_auth::dmarc::Report::Spf => "s",
                mail_auth::dmarc::Report::DkimSpf => "d:s",
            }
            .into(),
            rua: rua.iter().map(|u| u.trim_start_matches("mailto:").split('!').next().unwrap_or_default().to_string()).collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DkimAuth {
    pub domain: String,
    pub selector: String,
    /// RFC 7489 `DKIMResultType`: none, pass, fail, policy, neutral, temperror, permerror.
    pub result: String,
}

/// One message's DMARC evaluation, stored until the next report run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evaluation {
    pub source_ip: String,
    pub header_from: String,
    pub envelope_from: String,
    pub envelope_to: String,
    /// What we did: none (delivered), quarantine (Junk) or reject. Set after the decision.
    pub disposition: Disposition,
    pub dkim_aligned: bool,
    pub spf_aligned: bool,
    /// RFC 7489 `PolicyOverrideType` and a comment, when we did not apply the policy.
    #[serde(default)]
    pub overrides: Vec<(String, String)>,
    pub dkim: Vec<DkimAuth>,
    pub spf_domain: String,
    pub spf_result: String,
    pub published: Published,
}

fn dkim_result_name(r: &DkimResult) -> &'static str {
    match r {
        DkimResult::Pass => "pass",
        DkimResult::Fail(_) => "fail",
        DkimResult::Neutral(_) => "neutral",
        DkimResult::PermError(_) => "permerror",
        DkimResult::TempError(_) => "temperror",
        DkimResult::None => "none",
    }
}

fn spf_result_name(r: SpfResult) -> &'static str {
    match r {
        SpfResult::Pass => "pass",
        SpfResult::Fail => "fail",
        SpfResult::SoftFail => "softfail",
        SpfResult::Neutral => "neutral",
        SpfResult::TempError => "temperror",
        SpfResult::PermError => "permerror",
        SpfResult::None => "none",
    }
}

impl Evaluation {
    pub(crate) fn new(
        dmarc: &DmarcOutput,
        dkim: &[DkimOutput<'_>],
        ctx: &Context<'_>,
        spf_domain: &str,
        spf: &SpfOutput,
        published: Published,
        entry: &Entry,
    ) -> Evaluation {
        let mut overrides = Vec::new();
        if !entry.detail.is_empty() {
            overrides.push(("sampled_out".to_string(), entry.detail.clone()));
        }
        Evaluation {
            source_ip: ctx.ip.to_string(),
            header_from: dmarc.domain().to_string(),
            envelope_from: spf_domain.to_string(),
            envelope_to: ctx.rcpt_domain.to_string(),
            disposition: Disposition::None,
            dkim_aligned: *dmarc.dkim_result() == DmarcResult::Pass,
            spf_aligned: *dmarc.spf_result() == DmarcResult::Pass,
            overrides,
            dkim: dkim
                .iter()
                .filter_map(|o| {
                    o.signature().map(|s| DkimAuth { domain: s.d.clone(), selector: s.s.clone(), result: dkim_result_name(o.result()).into() })
                })
                .collect(),
            spf_domain: spf.domain().to_string(),
            spf_result: spf_result_name(spf.result()).into(),
            published,
        }
    }
}

pub use aggregate::{Reporter, aggregate_xml, gzip, report_message};
pub use received::{MAX_REPORT_SIZE, ReceivedReport, Refused, accept_received, parse_received};

/// One domain's stored evaluations at a report run.
#[derive(Debug, Default)]
pub struct Batch {
    /// The evaluations that still parse.
    pub evaluations: Vec<Evaluation>,
    /// When the earliest was stored (unix seconds): the report covers it.
    pub first: i64,
}

/// Stored evaluations (domain, JSON, time stored) grouped by the domain they were stored
/// under, which is what the store forgets them by. Rows that no longer parse are left out of
/// the evaluations but keep their domain in the map, so they are forgotten with it.
pub fn by_domain(rows: impl IntoIterator<Item = (String, String, i64)>) -> BTreeMap<String, Batch> {
    let mut map: BTreeMap<String, Batch> = BTreeMap::new();
    for (domain, json, created) in rows {
        let batch = map.entry(domain).or_insert(Batch { evaluations: Vec::new(), first: created });
        batch.first = batch.first.min(created);
        if let Ok(e) = serde_json::from_str(&json) {
            batch.evaluations.push(e);
        }
    }
    map
}

#[cfg(test)]
pub(crate) fn evaluation(domain: &str, ip: &str, dkim: bool) -> Evaluation {
    Evaluation {
        source_ip: ip.into(),
        header_from: domain.into(),
        envelope_from: domain.into(),
        envelope_to: "rampart.test".into(),
        disposition: if dkim { Disposition::None } else { Disposition::Reject },
        dkim_aligned: dkim,
        spf_aligned: false,
        overrides: vec![],
        dkim: vec![DkimAuth { domain: domain.into(), selector: "s1".into(), result: if dkim { "pass" } else { "fail" }.into() }],
        spf_domain: domain.into(),
        spf_result: "softfail".into(),
        published: Published {
            domain: domain.into(),
            adkim: "r".into(),
            aspf: "r".into(),
            p: Disposition::Reject,
            sp: Disposition::Reject,
            pct: 100,
            fo: "0".into(),
            rua: vec![format!("dmarc@{domain}")],
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouped_by_stored_domain_with_the_earliest_time() {
        let json = |d: &str| serde_json::to_string(&evaluation(d, "192.0.2.1", true)).unwrap();
        let rows = vec![
            ("a.test".to_string(), json("a.test"), 20),
            ("b.test".to_string(), json("b.test"), 5),
            ("a.test".to_string(), json("a.test"), 10),
            ("c.test".to_string(), "{not json".to_string(), 7),
        ];
        let map = by_domain(rows);
        assert_eq!(map.keys().collect::<Vec<_>>(), ["a.test", "b.test", "c.test"]);
        assert_eq!((map["a.test"].evaluations.len(), map["a.test"].first), (2, 10));
        assert_eq!((map["c.test"].evaluations.len(), map["c.test"].first), (0, 7), "kept to be forgotten");
    }
}
