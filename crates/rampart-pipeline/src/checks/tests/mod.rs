//! Table-driven tests of every check against offline DNS (`Dns::offline`): each case puts the
//! records it needs, runs the check, and looks at the trail entry and the
//! Authentication-Results header it produced.

mod arc;
mod dkim;
mod dmarc;
mod envelope;

use std::net::IpAddr;

use mail_auth::common::crypto::Ed25519Key;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done, Signature};

use super::{Checker, Context, Findings, SpfCheck};
use crate::dkim::{Algorithm, NewKey, SigningKey, generate, txt_record};
use crate::dns::Dns;

/// The client's address in every case.
const CLIENT: &str = "192.0.2.1";
const AUTHSERV_ID: &str = "mx.rampart.test";

fn client() -> IpAddr {
    CLIENT.parse().unwrap()
}

/// A checker on offline DNS that trusts ARC seals of `trusted.test`.
fn checker() -> Checker {
    Checker::new(Dns::offline(), AUTHSERV_ID, AUTHSERV_ID, &["trusted.test".to_string()])
}

fn message(from: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: <{from}>\r\nTo: <bob@rampart.test>\r\nSubject: {subject}\r\nDate: Fri, 27 Nov 2026 12:00:00 +0000\r\n\
         Message-ID: <{subject}@sender>\r\n\r\nHello.\r\n"
    )
    .into_bytes()
}

/// The end-of-data checks of `raw` with the session's SPF result, if any.
async fn check(c: &Checker, raw: &[u8], spf: Option<&SpfCheck>) -> Findings {
    let ctx = Context { ip: client(), helo: "client.sender.test", spf, iprev: None, rcpt_domain: "rampart.test" };
    c.message(raw, &ctx, None).await
}

/// `method=result` of each result in an Authentication-Results header, in order.
fn results(header: &str) -> Vec<String> {
    let value = header.strip_prefix("Authentication-Results: ").expect("an A-R header");
    assert!(value.starts_with(AUTHSERV_ID), "{header}");
    value.trim_end().split(";\r\n\t").skip(1).map(|r| r.split(' ').next().unwrap_or_default().to_string()).collect()
}

/// A new Ed25519 key for `selector._domainkey.domain`, published in `dns`.
fn published_key(dns: &Dns, domain: &str, selector: &str) -> NewKey {
    let key = generate(Algorithm::Ed25519).unwrap();
    dns.put_txt(&format!("{selector}._domainkey.{domain}"), &txt_record(Algorithm::Ed25519, &key.public));
    key
}

fn signing_key(key: &NewKey, domain: &str, selector: &str) -> SigningKey {
    SigningKey { domain: domain.into(), selector: selector.into(), algorithm: Algorithm::Ed25519, private_der: key.private_der.clone() }
}

/// A relaxed/relaxed Ed25519 signer for `domain`, for signatures `crate::dkim::sign` does not
/// make (`l=`, `x=`).
fn signer(key: &NewKey, domain: &str, selector: &str) -> DkimSigner<Ed25519Key, Done> {
    DkimSigner::from_key(Ed25519Key::from_pkcs8_der(&key.private_der).unwrap())
        .domain(domain)
        .selector(selector)
        .headers(["From", "To", "Subject", "Date"])
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed)
}

/// `raw` with `signature` in front.
fn signed(signature: &Signature, raw: &[u8]) -> Vec<u8> {
    let mut out = signature.to_header().into_bytes();
    out.extend_from_slice(raw);
    out
}
