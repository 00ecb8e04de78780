//! SPF for both identities and iprev.

use super::*;
use crate::trail::{Outcome, Reason, Stage};

/// What DNS holds for a name in a case.
#[derive(Clone, Copy)]
enum Txt {
    Record(&'static str),
    Missing,
    Failure,
}

fn put(dns: &Dns, name: &str, txt: Txt) {
    match txt {
        Txt::Record(r) => dns.put_txt(name, r),
        Txt::Missing => {}
        Txt::Failure => dns.put_txt_failure(name),
    }
}

/// One SPF result: the record, the entry, the header's `spf=` result.
const SPF_CASES: [(&str, Txt, Outcome, Reason, &str); 7] = [
    ("pass", Txt::Record("v=spf1 ip4:192.0.2.0/24 -all"), Outcome::Pass, Reason::SpfAuthorized, "spf=pass"),
    ("fail", Txt::Record("v=spf1 ip4:198.51.100.1 -all"), Outcome::Fail, Reason::SpfNotAuthorized, "spf=fail"),
    ("softfail", Txt::Record("v=spf1 ip4:198.51.100.1 ~all"), Outcome::SoftFail, Reason::SpfWeaklyNotAuthorized, "spf=softfail"),
    ("neutral", Txt::Record("v=spf1 ?all"), Outcome::Neutral, Reason::SpfNeutral, "spf=neutral"),
    ("none", Txt::Missing, Outcome::None, Reason::SpfNoRecord, "spf=none"),
    ("temperror", Txt::Failure, Outcome::TempError, Reason::SpfDnsError, "spf=temperror"),
    ("permerror", Txt::Record("v=spf1 ip4:not-an-address -all"), Outcome::PermError, Reason::SpfBadRecord, "spf=permerror"),
];

#[tokio::test]
async fn spf_of_mail_from() {
    for (name, txt, outcome, reason, header) in SPF_CASES {
        let c = checker();
        // The HELO name passes in every case: only MAIL FROM's result varies.
        c.dns().put_txt("client.sender.test", "v=spf1 +all");
        put(c.dns(), "sender.test", txt);
        let spf = c.spf(client(), "client.sender.test", "a@sender.test").await;
        let entries = spf.entries();
        assert_eq!(entries.len(), 2, "{name}");
        assert_eq!((entries[0].stage, entries[0].result), (Stage::SpfHelo, Outcome::Pass), "{name}");
        let e = &entries[1];
        assert_eq!((e.stage, e.result, e.reason), (Stage::Spf, outcome, reason), "{name}");
        assert_eq!(e.domain.as_deref(), Some("sender.test"), "{name}");
        assert_eq!(spf.domain, "sender.test");
        let findings = check(&c, &message("a@sender.test", name), Some(&spf)).await;
        assert_eq!(results(&findings.header)[..2], ["spf=pass".to_string(), header.to_string()], "{name}: {}", findings.header);
        assert!(findings.header.contains("smtp.helo=client.sender.test"), "{name}");
        assert!(findings.header.contains("smtp.mailfrom=a@sender.test"), "{name}");
    }
}

#[tokio::test]
async fn spf_of_helo() {
    for (name, txt, outcome, reason, header) in SPF_CASES {
        let c = checker();
        put(c.dns(), "client.sender.test", txt);
        c.dns().put_txt("sender.test", "v=spf1 ip4:192.0.2.1 -all");
        let spf = c.spf(client(), "client.sender.test", "a@sender.test").await;
        let e = &spf.entries()[0];
        assert_eq!((e.stage, e.result, e.reason), (Stage::SpfHelo, outcome, reason), "{name}");
        assert_eq!(e.domain.as_deref(), Some("client.sender.test"), "{name}");
        assert_eq!(spf.entries()[1].result, Outcome::Pass, "{name}");
        let findings = check(&c, &message("a@sender.test", name), Some(&spf)).await;
        assert_eq!(results(&findings.header)[..2], [header.to_string(), "spf=pass".to_string()], "{name}: {}", findings.header);
    }
}

/// RFC 7208 §2.4: for `<>` the MAIL FROM identity is the HELO name, and an address literal
/// is not checked at all (§2.3).
#[tokio::test]
async fn null_sender_and_address_literal() {
    let c = checker();
    c.dns().put_txt("client.sender.test", "v=spf1 ip4:192.0.2.1 -all");
    let spf = c.spf(client(), "client.sender.test", "").await;
    assert_eq!(spf.domain, "client.sender.test");
    assert_eq!(spf.entries().iter().map(|e| (e.stage, e.result)).collect::<Vec<_>>(), [(Stage::SpfHelo, Outcome::Pass), (Stage::Spf, Outcome::Pass)]);
    let findings = check(&c, &message("a@sender.test", "null"), Some(&spf)).await;
    // The HELO result is the MAIL FROM result here: written once.
    assert_eq!(results(&findings.header)[..1], ["spf=pass".to_string()]);
    assert!(findings.header.contains("smtp.mailfrom=<>"), "{}", findings.header);

    let spf = c.spf(client(), "[192.0.2.1]", "").await;
    assert!(spf.helo.is_none());
    assert_eq!(spf.entries().len(), 1);
}

#[tokio::test]
async fn iprev() {
    let other: IpAddr = "198.51.100.7".parse().unwrap();
    let cases: [(&str, Option<IpAddr>, Outcome, Reason, &str); 3] = [
        ("confirmed", Some(client()), Outcome::Pass, Reason::IprevConfirmed, "iprev=pass"),
        ("mismatch", Some(other), Outcome::Fail, Reason::IprevMismatch, "iprev=fail"),
        ("no PTR", None, Outcome::PermError, Reason::IprevNoPtr, "iprev=permerror"),
    ];
    for (name, forward, outcome, reason, header) in cases {
        let c = checker();
        if let Some(ip) = forward {
            c.dns().put_ptr(client(), &["mail.sender.test"]);
            c.dns().put_addresses("mail.sender.test", &[ip]);
        }
        let (out, e) = c.iprev(client()).await;
        assert_eq!((e.stage, e.result, e.reason), (Stage::Iprev, outcome, reason), "{name}");
        assert_eq!(e.domain.as_deref(), forward.map(|_| "mail.sender.test"), "{name}");
        assert_eq!(e.detail, CLIENT);
        let ctx = Context { ip: client(), helo: "client.sender.test", spf: None, iprev: Some(&out), rcpt_domain: "" };
        let findings = c.message(&message("a@sender.test", name), &ctx, None).await;
        assert_eq!(results(&findings.header)[0], header, "{name}: {}", findings.header);
    }
}
