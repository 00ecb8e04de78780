//! The checks of the envelope, run at MAIL FROM: SPF of the HELO and MAIL FROM identities
//! (RFC 7208) and forward-confirmed reverse DNS of the client (iprev, RFC 8601 §3).

use std::net::IpAddr;

use mail_auth::spf::verify::SpfParameters;
use mail_auth::{IprevOutput, IprevResult, SpfOutput, SpfResult};

use super::Checker;
use crate::cache::not_found;
use crate::trail::{Entry, Outcome, Reason, Stage};

/// What the SPF stage found at MAIL FROM, kept until the end of data for DMARC.
#[derive(Debug, Clone)]
pub struct SpfCheck {
    pub helo: Option<SpfOutput>,
    pub mail_from: SpfOutput,
    /// The MAIL FROM address; empty for `<>`.
    pub sender: String,
    /// The domain SPF checked for MAIL FROM: the sender's, or the HELO name for `<>`.
    pub domain: String,
}

impl SpfCheck {
    pub fn entries(&self) -> Vec<Entry> {
        let mut out = Vec::new();
        if let Some(h) = &self.helo {
            out.push(spf_entry(Stage::SpfHelo, h));
        }
        out.push(spf_entry(Stage::Spf, &self.mail_from));
        out
    }
}

fn spf_entry(stage: Stage, o: &SpfOutput) -> Entry {
    let (result, reason) = match o.result() {
        SpfResult::Pass => (Outcome::Pass, Reason::SpfAuthorized),
        SpfResult::Fail => (Outcome::Fail, Reason::SpfNotAuthorized),
        SpfResult::SoftFail => (Outcome::SoftFail, Reason::SpfWeaklyNotAuthorized),
        SpfResult::Neutral => (Outcome::Neutral, Reason::SpfNeutral),
        SpfResult::None => (Outcome::None, Reason::SpfNoRecord),
        SpfResult::TempError => (Outcome::TempError, Reason::SpfDnsError),
        SpfResult::PermError => (Outcome::PermError, Reason::SpfBadRecord),
    };
    Entry::new(stage, result, reason).domain(o.domain())
}

impl Checker {
    /// SPF at MAIL FROM (RFC 7208 §2.3, §2.4). mail-auth enforces the RFC's limits: at most
    /// 10 DNS-querying terms per check (§4.6.4) and 2 void lookups.
    pub async fn spf(&self, ip: IpAddr, helo: &str, sender: &str) -> SpfCheck {
        let auth = self.dns.auth();
        // The HELO identity is checked only when it is a domain name (§2.3), not an address literal.
        let helo_is_name = helo.contains('.') && !helo.starts_with('[') && helo.parse::<IpAddr>().is_err();
        let helo_out = if helo_is_name {
            Some(auth.verify_spf(self.dns.params(SpfParameters::verify_ehlo(ip, helo, &self.hostname))).await)
        } else {
            None
        };
        // §2.4: for the null sender the MAIL FROM identity is postmaster@HELO.
        let mail_from = if sender.is_empty() {
            match &helo_out {
                Some(h) => h.clone(),
                None => SpfOutput::new(helo.to_string()),
            }
        } else {
            auth.verify_spf(self.dns.params(SpfParameters::verify_mail_from(ip, helo, &self.hostname, sender))).await
        };
        let domain = sender.rsplit_once('@').map_or_else(|| helo.to_ascii_lowercase(), |(_, d)| d.to_ascii_lowercase());
        SpfCheck { helo: helo_out, mail_from, sender: sender.to_string(), domain }
    }

    /// Forward-confirmed reverse DNS (RFC 8601 §3).
    pub async fn iprev(&self, ip: IpAddr) -> (IprevOutput, Entry) {
        let mut out = self.dns.auth().verify_iprev(self.dns.params(ip)).await;
        // RFC 8601 §3: no PTR data is a permerror. mail-auth reads a PTR answer without names
        // as a forward mismatch; make it what NXDOMAIN gives, for the header and the trail alike.
        if out.ptr.as_ref().is_some_and(|names| names.is_empty()) {
            out = IprevOutput { result: IprevResult::PermError(not_found()), ptr: None };
        }
        let (result, reason) = match out.result() {
            IprevResult::Pass => (Outcome::Pass, Reason::IprevConfirmed),
            IprevResult::Fail(_) => (Outcome::Fail, Reason::IprevMismatch),
            IprevResult::PermError(_) => (Outcome::PermError, Reason::IprevNoPtr),
            IprevResult::TempError(_) => (Outcome::TempError, Reason::IprevDnsError),
            IprevResult::None => (Outcome::None, Reason::IprevNoPtr),
        };
        let name = out.ptr.as_ref().and_then(|p| p.first().map(|h| h.trim_end_matches('.').to_string())).unwrap_or_default();
        let entry = Entry::new(Stage::Iprev, result, reason).domain(name).detail(ip.to_string());
        (out, entry)
    }
}
