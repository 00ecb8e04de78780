//! ARC: a message forwarded by one checker (which seals it) and received by another.

use super::*;
use crate::checks::Forward;
use crate::trail::{Entry, Outcome, Reason, Stage};

/// `raw` as a forwarder at `sealer` sends it on: its ARC set and A-R header first.
async fn forwarded(sealer: &str, key: &NewKey, raw: &[u8]) -> Vec<u8> {
    let forwarder = Checker::new(Dns::offline(), sealer, sealer, &[]);
    let key = signing_key(key, sealer, "arc");
    let prefix = format!("Received: by {sealer}; Fri, 27 Nov 2026 12:00:01 +0000\r\n");
    let ctx = Context { ip: client(), helo: "client.sender.test", spf: None, iprev: None, rcpt_domain: "" };
    let findings = forwarder.message(raw, &ctx, Some(Forward { key: &key, prefix: prefix.as_bytes() })).await;
    let set = findings.arc_set.expect("a message without a chain can be sealed");
    [set.as_bytes(), findings.header.as_bytes(), prefix.as_bytes(), raw].concat()
}

fn arc_entry(findings: &Findings) -> &Entry {
    findings.entries.iter().find(|e| e.stage == Stage::Arc).expect("an ARC entry")
}

/// (case, sealer, body appended after sealing, entry, the header's arc= result)
type Case = (&'static str, Option<&'static str>, bool, Outcome, Reason, Option<&'static str>);

#[tokio::test]
async fn arc() {
    let cases: [Case; 4] = [
        ("none", None, false, Outcome::None, Reason::ArcNoChain, None),
        ("valid", Some("forwarder.test"), false, Outcome::Pass, Reason::ArcValid, Some("arc=pass")),
        ("invalid", Some("forwarder.test"), true, Outcome::Fail, Reason::ArcInvalid, Some("arc=fail")),
        ("trusted sealer", Some("trusted.test"), false, Outcome::Pass, Reason::ArcValidTrustedSealer, Some("arc=pass")),
    ];
    for (name, sealer, tamper, outcome, reason, header) in cases {
        let c = checker();
        let original = message("a@sender.test", "forwarded");
        let mut raw = match sealer {
            Some(sealer) => forwarded(sealer, &published_key(c.dns(), sealer, "arc"), &original).await,
            None => original,
        };
        if tamper {
            raw.extend_from_slice(b"Added after the seal.\r\n");
        }
        let findings = check(&c, &raw, None).await;
        let e = arc_entry(&findings);
        assert_eq!((e.result, e.reason), (outcome, reason), "{name}: {e:?}");
        assert_eq!(e.domain.as_deref(), sealer, "{name}");
        let arc: Vec<String> = results(&findings.header).into_iter().filter(|r| r.starts_with("arc=")).collect();
        assert_eq!(arc, header.map(str::to_string).into_iter().collect::<Vec<_>>(), "{name}: {}", findings.header);
    }
}

/// A broken chain is sealed once more with `cv=fail` (RFC 8617 §5.1.1), and a chain that says
/// it failed is not sealed again.
#[tokio::test]
async fn a_failed_chain_is_sealed_as_failed_once() {
    let dns = Dns::offline();
    let key = published_key(&dns, "forwarder.test", "arc");
    let mut raw = forwarded("forwarder.test", &key, &message("a@sender.test", "twice")).await;
    raw.extend_from_slice(b"Added after the seal.\r\n");
    let hop = Checker::new(dns, "hop.test", "hop.test", &[]);
    let seal_key = signing_key(&key, "forwarder.test", "arc");
    let ctx = Context { ip: client(), helo: "client.sender.test", spf: None, iprev: None, rcpt_domain: "" };
    let second = hop.message(&raw, &ctx, Some(Forward { key: &seal_key, prefix: b"" })).await;
    assert_eq!(arc_entry(&second).reason, Reason::ArcInvalid);
    let set = second.arc_set.expect("the first hop to see the failure seals it");
    assert!(set.contains("cv=fail"), "{set}");
    let raw = [set.as_bytes(), second.header.as_bytes(), &raw].concat();
    let third = hop.message(&raw, &ctx, Some(Forward { key: &seal_key, prefix: b"" })).await;
    assert!(third.arc_set.is_none());
}
