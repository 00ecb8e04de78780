//! DMARC aggregate reports (RFC 7489 §7.2 and Appendix C).
//!
//! Each DMARC evaluation of a domain that asked for reports (`rua=`) is stored as an
//! [`Evaluation`]. Once a day they are grouped per policy domain into the RFC 7489 XML
//! ([`aggregate_xml`]), gzipped and mailed to the authorized `rua` addresses. The XML is
//! written here rather than by mail-auth, whose 0.13 writer emits the DMARCbis format
//! (namespace, `np`, `testing`, no `pct`) that the RFC 7489 schema refuses.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::io::Write as _;

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

/// XML character escaping for text nodes.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

/// Who sends the reports (RFC 7489 §7.2.1.1 `report_metadata`).
pub struct Reporter<'a> {
    pub org_name: &'a str,
    pub email: &'a str,
    pub report_id: &'a str,
    pub begin: i64,
    pub end: i64,
}

/// The aggregate report for one policy domain, in the RFC 7489 Appendix C format. Identical
/// rows are counted together.
pub fn aggregate_xml(reporter: &Reporter<'_>, evaluations: &[Evaluation]) -> String {
    let Some(first) = evaluations.first() else { return String::new() };
    let p = &first.published;
    let mut x = String::new();
    let _ = writeln!(x, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>");
    // RFC 7489 Appendix C declares `feedback` in the namespace http://dmarc.org/dmarc-xml/0.1,
    // but reporters send it unqualified and report parsers (mail-auth's among them) expect
    // that; the elements inside are unqualified either way.
    let _ = writeln!(x, "<feedback>");
    let _ = writeln!(x, "  <version>1.0</version>");
    let _ = writeln!(x, "  <report_metadata>");
    let _ = writeln!(x, "    <org_name>{}</org_name>", esc(reporter.org_name));
    let _ = writeln!(x, "    <email>{}</email>", esc(reporter.email));
    let _ = writeln!(x, "    <report_id>{}</report_id>", esc(reporter.report_id));
    let _ = writeln!(x, "    <date_range>\n      <begin>{}</begin>\n      <end>{}</end>\n    </date_range>", reporter.begin, reporter.end);
    let _ = writeln!(x, "  </report_metadata>");
    let _ = writeln!(x, "  <policy_published>");
    let _ = writeln!(x, "    <domain>{}</domain>", esc(&p.domain));
    let _ = writeln!(x, "    <adkim>{}</adkim>\n    <aspf>{}</aspf>", p.adkim, p.aspf);
    let _ = writeln!(x, "    <p>{}</p>\n    <sp>{}</sp>\n    <pct>{}</pct>\n    <fo>{}</fo>", p.p.as_str(), p.sp.as_str(), p.pct, esc(&p.fo));
    let _ = writeln!(x, "  </policy_published>");
    // Group identical rows: the key is the serialized evaluation (without nothing varying).
    let mut rows: BTreeMap<String, (u32, &Evaluation)> = BTreeMap::new();
    for e in evaluations {
        let key = serde_json::to_string(e).unwrap_or_default();
        rows.entry(key).or_insert((0, e)).0 += 1;
    }
    for (count, e) in rows.values() {
        let pass = |b: bool| if b { "pass" } else { "fail" };
        let _ = writeln!(x, "  <record>\n    <row>");
        let _ = writeln!(x, "      <source_ip>{}</source_ip>\n      <count>{count}</count>", esc(&e.source_ip));
        let _ = writeln!(x, "      <policy_evaluated>");
        let _ = writeln!(x, "        <disposition>{}</disposition>", e.disposition.as_str());
        let _ = writeln!(x, "        <dkim>{}</dkim>\n        <spf>{}</spf>", pass(e.dkim_aligned), pass(e.spf_aligned));
        for (kind, comment) in &e.overrides {
            let _ = writeln!(x, "        <reason>\n          <type>{}</type>\n          <comment>{}</comment>\n        </reason>", esc(kind), esc(comment));
        }
        let _ = writeln!(x, "      </policy_evaluated>\n    </row>");
        let _ = writeln!(x, "    <identifiers>");
        if !e.envelope_to.is_empty() {
            let _ = writeln!(x, "      <envelope_to>{}</envelope_to>", esc(&e.envelope_to));
        }
        let _ = writeln!(x, "      <header_from>{}</header_from>", esc(&e.header_from));
        let _ = writeln!(x, "    </identifiers>\n    <auth_results>");
        for d in &e.dkim {
            let _ = writeln!(
                x,
                "      <dkim>\n        <domain>{}</domain>\n        <selector>{}</selector>\n        <result>{}</result>\n      </dkim>",
                esc(&d.domain),
                esc(&d.selector),
                d.result
            );
        }
        // RFC 7489 `SPFResultType` has no "none" for missing SPF domains; an empty domain
        // means SPF was not evaluated (no MAIL FROM check), reported as the HELO domain.
        let spf_result = match e.spf_result.as_str() {
            r @ ("none" | "neutral" | "pass" | "fail" | "softfail" | "temperror" | "permerror") => r,
            _ => "none",
        };
        let _ = writeln!(x, "      <spf>\n        <domain>{}</domain>\n        <scope>mfrom</scope>\n        <result>{spf_result}</result>\n      </spf>", esc(&e.spf_domain));
        let _ = writeln!(x, "    </auth_results>\n  </record>");
    }
    let _ = writeln!(x, "</feedback>");
    x
}

/// gzip (RFC 7489 §7.2.1.1: reports are gzip-compressed).
pub fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data)?;
    e.finish()
}

/// The report mail (RFC 7489 §7.2.1.1): the subject and file name the RFC gives, the gzip
/// as a base64 attachment.
pub fn report_message(reporter: &Reporter<'_>, submitter: &str, domain: &str, to: &[String], gz: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(gz);
    let boundary = format!("=_rampart_{}", reporter.report_id);
    let filename = format!("{submitter}!{domain}!{}!{}.xml.gz", reporter.begin, reporter.end);
    let mut m = String::new();
    let _ = write!(
        m,
        "From: {from}\r\nTo: {to}\r\nSubject: Report Domain: {domain} Submitter: {submitter} Report-ID: <{id}>\r\n\
         Date: {date}\r\nMessage-ID: <{id}@{submitter}>\r\nAuto-Submitted: auto-generated\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"{boundary}\"\r\n\r\n\
         --{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         This is a DMARC aggregate report for {domain} from {submitter}.\r\n\r\n\
         --{boundary}\r\nContent-Type: application/gzip\r\nContent-Transfer-Encoding: base64\r\n\
         Content-Disposition: attachment; filename=\"{filename}\"\r\n\r\n",
        from = reporter.email,
        to = to.iter().map(|a| format!("<{a}>")).collect::<Vec<_>>().join(", "),
        id = reporter.report_id,
        date = chrono::Utc::now().to_rfc2822(),
    );
    for line in b64.as_bytes().chunks(76) {
        m.push_str(&String::from_utf8_lossy(line));
        m.push_str("\r\n");
    }
    let _ = write!(m, "\r\n--{boundary}--\r\n");
    m.into_bytes()
}

/// The evaluations of one report domain, grouped.
pub fn by_domain(evaluations: Vec<Evaluation>) -> BTreeMap<String, Vec<Evaluation>> {
    let mut map: BTreeMap<String, Vec<Evaluation>> = BTreeMap::new();
    for e in evaluations {
        map.entry(e.published.domain.clone()).or_default().push(e);
    }
    map
}

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
        let pe = rec.action_disposition();
        let _ = pe;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(ip: &str, dkim: bool) -> Evaluation {
        Evaluation {
            source_ip: ip.into(),
            header_from: "example.test".into(),
            envelope_from: "example.test".into(),
            envelope_to: "rampart.test".into(),
            disposition: if dkim { Disposition::None } else { Disposition::Reject },
            dkim_aligned: dkim,
            spf_aligned: false,
            overrides: vec![],
            dkim: vec![DkimAuth { domain: "example.test".into(), selector: "s1".into(), result: if dkim { "pass" } else { "fail" }.into() }],
            spf_domain: "example.test".into(),
            spf_result: "softfail".into(),
            published: Published {
                domain: "example.test".into(),
                adkim: "r".into(),
                aspf: "r".into(),
                p: Disposition::Reject,
                sp: Disposition::Reject,
                pct: 100,
                fo: "0".into(),
                rua: vec!["dmarc@example.test".into()],
            },
        }
    }

    #[test]
    fn rows_are_counted_and_xml_escaped() {
        let reporter = Reporter { org_name: "R&D", email: "dmarc@mx.test", report_id: "1", begin: 10, end: 20 };
        let xml = aggregate_xml(&reporter, &[eval("192.0.2.1", true), eval("192.0.2.1", true), eval("192.0.2.2", false)]);
        assert!(xml.contains("<org_name>R&amp;D</org_name>"));
        assert!(xml.contains("<count>2</count>"));
        assert!(xml.contains("<disposition>reject</disposition>"));
        assert!(xml.contains("<pct>100</pct>"));
        assert_eq!(xml.matches("<record>").count(), 2);
        let gz = gzip(xml.as_bytes()).unwrap();
        let msg = report_message(&reporter, "mx.test", "example.test", &["dmarc@example.test".into()], &gz);
        // mail-auth parses what we send: the same parser reads reports others send us.
        let parsed = parse_received(&msg).expect("our report parses");
        assert_eq!((parsed.domain.as_str(), parsed.messages, parsed.passed), ("example.test", 3, 2));
        assert_eq!(parsed.org_name, "R&D");
    }
}
