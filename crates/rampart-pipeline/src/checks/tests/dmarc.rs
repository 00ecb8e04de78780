//! DMARC: alignment, the published policy and `pct`, and what `decide` makes of each.

use super::*;
use crate::decide::{Action, Policy, decide};
use crate::trail::{Disposition, Outcome, Reason, Stage, Trail};

struct Case {
    name: &'static str,
    /// `_dmarc.dmarc.test`: None for no record, Some("") for a DNS failure.
    record: Option<&'static str>,
    /// The MAIL FROM domain; its SPF record passes the client.
    mail_from: &'static str,
    entry: (Outcome, Reason, Option<Disposition>),
    detail: &'static str,
    header: &'static str,
    action: Action,
}

const CASES: [Case; 9] = [
    Case {
        name: "aligned",
        record: Some("v=DMARC1; p=reject"),
        mail_from: "dmarc.test",
        entry: (Outcome::Pass, Reason::DmarcAligned, Some(Disposition::Reject)),
        detail: "",
        header: "dmarc=pass",
        action: Action::Accept,
    },
    Case {
        name: "aligned through a subdomain (relaxed)",
        record: Some("v=DMARC1; p=reject"),
        mail_from: "bounces.dmarc.test",
        entry: (Outcome::Pass, Reason::DmarcAligned, Some(Disposition::Reject)),
        detail: "",
        header: "dmarc=pass",
        action: Action::Accept,
    },
    Case {
        name: "not aligned, p=none",
        record: Some("v=DMARC1; p=none"),
        mail_from: "elsewhere.test",
        entry: (Outcome::Fail, Reason::DmarcNotAligned, Some(Disposition::None)),
        detail: "",
        header: "dmarc=fail",
        action: Action::Accept,
    },
    Case {
        name: "p=reject",
        record: Some("v=DMARC1; p=reject"),
        mail_from: "elsewhere.test",
        entry: (Outcome::Fail, Reason::DmarcNotAligned, Some(Disposition::Reject)),
        detail: "",
        header: "dmarc=fail",
        action: Action::Reject,
    },
    Case {
        name: "p=quarantine",
        record: Some("v=DMARC1; p=quarantine"),
        mail_from: "elsewhere.test",
        entry: (Outcome::Fail, Reason::DmarcNotAligned, Some(Disposition::Quarantine)),
        detail: "",
        header: "dmarc=fail",
        action: Action::Junk,
    },
    Case {
        name: "pct=100 samples every message",
        record: Some("v=DMARC1; p=reject; pct=100"),
        mail_from: "elsewhere.test",
        entry: (Outcome::Fail, Reason::DmarcNotAligned, Some(Disposition::Reject)),
        detail: "",
        header: "dmarc=fail",
        action: Action::Reject,
    },
    Case {
        name: "pct=0 samples none: reject becomes quarantine",
        record: Some("v=DMARC1; p=reject; pct=0"),
        mail_from: "elsewhere.test",
        entry: (Outcome::Fail, Reason::DmarcNotAligned, Some(Disposition::Quarantine)),
        detail: "pct=0: not sampled, reject lowered to quarantine",
        header: "dmarc=fail",
        action: Action::Junk,
    },
    Case {
        name: "no policy",
        record: None,
        mail_from: "elsewhere.test",
        entry: (Outcome::None, Reason::DmarcNoPolicy, None),
        detail: "",
        header: "dmarc=none",
        action: Action::Accept,
    },
    Case {
        name: "temperror",
        record: Some(""),
        mail_from: "dmarc.test",
        entry: (Outcome::TempError, Reason::DmarcDnsError, None),
        detail: "",
        header: "dmarc=temperror",
        action: Action::Accept,
    },
];

#[tokio::test]
async fn dmarc() {
    for case in CASES {
        let name = case.name;
        let c = checker();
        match case.record {
            Some("") => c.dns().put_txt_failure("_dmarc.dmarc.test"),
            Some(record) => c.dns().put_txt("_dmarc.dmarc.test", record),
            None => {}
        }
        c.dns().put_txt(case.mail_from, "v=spf1 ip4:192.0.2.1 -all");
        let spf = c.spf(client(), "client.sender.test", &format!("a@{}", case.mail_from)).await;
        let findings = check(&c, &message("ceo@dmarc.test", "dmarc"), Some(&spf)).await;
        let e = findings.entries.iter().find(|e| e.stage == Stage::Dmarc).expect("a DMARC entry");
        assert_eq!((e.result, e.reason, e.policy), case.entry, "{name}");
        assert_eq!(e.domain.as_deref(), Some("dmarc.test"), "{name}");
        assert_eq!(e.detail, case.detail, "{name}");
        let dmarc: Vec<String> = results(&findings.header).into_iter().filter(|r| r.starts_with("dmarc=")).collect();
        assert_eq!(dmarc, [case.header.to_string()], "{name}: {}", findings.header);
        let mut trail = Trail::default();
        trail.extend(spf.entries());
        trail.extend(findings.entries);
        assert_eq!(decide(&trail, &Policy::default()).action, case.action, "{name}");
    }
}

/// A DNS failure defers the message when the policy says so.
#[tokio::test]
async fn temperror_defers_when_configured() {
    let c = checker();
    c.dns().put_txt_failure("_dmarc.dmarc.test");
    let findings = check(&c, &message("ceo@dmarc.test", "t"), None).await;
    let trail = Trail(findings.entries);
    let policy = Policy { defer_on_temperror: true, ..Policy::default() };
    assert_eq!(decide(&trail, &policy).action, Action::Defer);
}

/// A domain asking for reports gets an evaluation with what the report needs.
#[tokio::test]
async fn evaluation_for_reports() {
    let c = checker();
    c.dns().put_txt("_dmarc.dmarc.test", "v=DMARC1; p=quarantine; pct=50; rua=mailto:agg@dmarc.test");
    c.dns().put_txt("elsewhere.test", "v=spf1 ip4:192.0.2.1 -all");
    let spf = c.spf(client(), "client.sender.test", "a@elsewhere.test").await;
    let findings = check(&c, &message("ceo@dmarc.test", "e"), Some(&spf)).await;
    let ev = findings.evaluation.expect("an evaluation");
    assert_eq!((ev.source_ip.as_str(), ev.header_from.as_str(), ev.envelope_to.as_str()), (CLIENT, "dmarc.test", "rampart.test"));
    assert_eq!((ev.dkim_aligned, ev.spf_aligned), (false, false));
    assert_eq!((ev.spf_domain.as_str(), ev.spf_result.as_str()), ("elsewhere.test", "pass"));
    assert_eq!((ev.published.p, ev.published.pct, ev.published.rua.as_slice()), (Disposition::Quarantine, 50, &["agg@dmarc.test".to_string()][..]));
}
