//! The aggregate report we send about one policy domain: the RFC 7489 Appendix C XML,
//! gzipped, in a mail with the subject and file name of §7.2.1.1. The XML is written here
//! rather than by mail-auth, whose 0.13 writer emits the DMARCbis format (namespace, `np`,
//! `testing`, no `pct`) that the RFC 7489 schema refuses.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::io::Write as _;

use super::Evaluation;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{evaluation, parse_received};

    #[test]
    fn rows_are_counted_and_xml_escaped() {
        let reporter = Reporter { org_name: "R&D", email: "dmarc@mx.test", report_id: "1", begin: 10, end: 20 };
        let e = |ip, dkim| evaluation("example.test", ip, dkim);
        let xml = aggregate_xml(&reporter, &[e("192.0.2.1", true), e("192.0.2.1", true), e("192.0.2.2", false)]);
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
