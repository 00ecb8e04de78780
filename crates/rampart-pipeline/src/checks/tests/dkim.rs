//! DKIM: one case per result, on messages signed with keys generated here.

use super::*;
use crate::checks::MAX_DKIM_SIGNATURES;
use crate::trail::{Outcome, Reason, Stage};

/// Builds the signed message of a case: (DNS for it, the message).
type Build = fn(&Dns) -> Vec<u8>;

fn valid(dns: &Dns) -> Vec<u8> {
    let key = published_key(dns, "signed.test", "s1");
    let raw = message("a@signed.test", "valid");
    let header = crate::dkim::sign(&raw, &[signing_key(&key, "signed.test", "s1")]).unwrap();
    [header.as_bytes(), &raw].concat()
}

fn valid_rsa(dns: &Dns) -> Vec<u8> {
    let key = generate(Algorithm::Rsa).unwrap();
    dns.put_txt("rsa._domainkey.signed.test", &txt_record(Algorithm::Rsa, &key.public));
    let raw = message("a@signed.test", "rsa");
    let k = SigningKey { domain: "signed.test".into(), selector: "rsa".into(), algorithm: Algorithm::Rsa, private_der: key.private_der };
    let header = crate::dkim::sign(&raw, &[k]).unwrap();
    [header.as_bytes(), &raw].concat()
}

fn body_changed(dns: &Dns) -> Vec<u8> {
    let mut m = valid(dns);
    m.extend_from_slice(b"An appended line.\r\n");
    m
}

fn header_changed(dns: &Dns) -> Vec<u8> {
    let m = String::from_utf8(valid(dns)).unwrap();
    m.replace("Subject: valid", "Subject: changed").into_bytes()
}

fn no_key(_: &Dns) -> Vec<u8> {
    // Signed with a key that was never published.
    let raw = message("a@signed.test", "no key");
    let key = generate(Algorithm::Ed25519).unwrap();
    signed(&signer(&key, "signed.test", "s1").sign(&raw).unwrap(), &raw)
}

fn key_lookup_fails(dns: &Dns) -> Vec<u8> {
    let m = valid(dns);
    dns.put_txt_failure("s1._domainkey.signed.test");
    m
}

fn partial_body(dns: &Dns) -> Vec<u8> {
    let key = published_key(dns, "signed.test", "s1");
    let raw = message("a@signed.test", "l");
    let sig = signer(&key, "signed.test", "s1").body_length(true).sign(&raw).unwrap();
    assert!(sig.l > 0);
    let mut m = signed(&sig, &raw);
    m.extend_from_slice(b"Unsigned text appended later.\r\n");
    m
}

fn expired(dns: &Dns) -> Vec<u8> {
    let key = published_key(dns, "signed.test", "s1");
    let raw = message("a@signed.test", "x");
    let mut sig = signer(&key, "signed.test", "s1").expiration(60).sign(&raw).unwrap();
    // Signed in 1970 for a minute: expired long ago (RFC 6376 §3.5 `x=`). Expiry is checked
    // before the signature, so the now-wrong b= does not matter.
    (sig.t, sig.x) = (1000, 1060);
    signed(&sig, &raw)
}

fn too_many(dns: &Dns) -> Vec<u8> {
    let key = published_key(dns, "signed.test", "s1");
    let raw = message("a@signed.test", "many");
    let sig = signer(&key, "signed.test", "s1").sign(&raw).unwrap().to_header();
    [sig.repeat(MAX_DKIM_SIGNATURES + 1).as_bytes(), &raw].concat()
}

fn unsigned(_: &Dns) -> Vec<u8> {
    message("a@signed.test", "unsigned")
}

#[tokio::test]
async fn dkim() {
    let cases: [(&str, Build, Outcome, Reason, &str); 10] = [
        ("valid", valid, Outcome::Pass, Reason::DkimValid, "dkim=pass"),
        ("valid rsa", valid_rsa, Outcome::Pass, Reason::DkimValid, "dkim=pass"),
        ("body hash mismatch", body_changed, Outcome::Fail, Reason::DkimBodyHashMismatch, "dkim=fail"),
        ("bad signature", header_changed, Outcome::Fail, Reason::DkimBadSignature, "dkim=fail"),
        ("no key", no_key, Outcome::PermError, Reason::DkimNoKey, "dkim=permerror"),
        ("key lookup fails", key_lookup_fails, Outcome::TempError, Reason::DkimDnsError, "dkim=temperror"),
        ("l=", partial_body, Outcome::Neutral, Reason::DkimPartialBody, "dkim=neutral"),
        ("expired", expired, Outcome::Neutral, Reason::DkimExpired, "dkim=neutral"),
        ("too many signatures", too_many, Outcome::PermError, Reason::DkimMalformed, ""),
        ("unsigned", unsigned, Outcome::None, Reason::DkimUnsigned, ""),
    ];
    for (name, build, outcome, reason, header) in cases {
        let c = checker();
        let raw = build(c.dns());
        let findings = check(&c, &raw, None).await;
        let dkim: Vec<_> = findings.entries.iter().filter(|e| e.stage == Stage::Dkim).collect();
        assert_eq!(dkim.len(), 1, "{name}: {dkim:?}");
        assert_eq!((dkim[0].result, dkim[0].reason), (outcome, reason), "{name}: {}", dkim[0].detail);
        let dkim_results: Vec<String> = results(&findings.header).into_iter().filter(|r| r.starts_with("dkim=")).collect();
        let expected: Vec<String> = [header].iter().filter(|h| !h.is_empty()).map(|h| h.to_string()).collect();
        assert_eq!(dkim_results, expected, "{name}: {}", findings.header);
    }
}

/// Each signature gets its own entry; the detail names selector and algorithm.
#[tokio::test]
async fn every_signature_is_checked() {
    let c = checker();
    let good = published_key(c.dns(), "signed.test", "s1");
    let raw = message("a@signed.test", "two");
    let first = signer(&good, "signed.test", "s1").sign(&raw).unwrap();
    let second = signer(&generate(Algorithm::Ed25519).unwrap(), "other.test", "s2").sign(&raw).unwrap();
    let m = [first.to_header().as_bytes(), second.to_header().as_bytes(), &raw].concat();
    let findings = check(&c, &m, None).await;
    let dkim: Vec<_> = findings.entries.iter().filter(|e| e.stage == Stage::Dkim).map(|e| (e.result, e.domain.clone().unwrap(), e.detail.clone())).collect();
    assert_eq!(
        dkim,
        [
            (Outcome::Pass, "signed.test".to_string(), "s=s1 a=ed25519-sha256".to_string()),
            (Outcome::PermError, "other.test".to_string(), "s=s2 a=ed25519-sha256".to_string())
        ]
    );
}
