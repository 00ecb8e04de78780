//! How a destination's published TLS policy shapes one delivery (RFC 8461 §4, §5): which MX
//! hosts may be used, what TLS each must have, and the outcome of each session recorded for the
//! TLS report (RFC 8460). Routes with a smart host go by their own TLS setting and skip this.

use std::net::SocketAddr;

use rampart_config::OutboundTls;
use tracing::info;

use super::{HostFailure, Outbound};
use crate::client::TlsOutcome;
use crate::sts::{Mode, Policy, PolicyKind, TlsPolicies, certificate_result};

/// The policy in force for one connection attempt to a domain.
pub(crate) struct Plan<'a> {
    policies: Option<&'a TlsPolicies>,
    domain: &'a str,
    /// The domain's MTA-STS policy, unless absent or mode `none`.
    sts: Option<Policy>,
}

impl<'a> Plan<'a> {
    /// Looks the policy up (MX delivery only) and reports a failed fetch.
    pub(crate) async fn new(out: &'a Outbound, domain: &'a str, smart_host: bool) -> Plan<'a> {
        let policies = out.policies.as_deref();
        let Some(p) = policies.filter(|_| !smart_host) else {
            return Plan { policies: None, domain, sts: None };
        };
        let applied = p.sts(domain).await;
        if let Some(f) = &applied.failure {
            p.record(domain, PolicyKind::StsUnavailable, "", "", f.result_type(), &f.to_string()).await;
        }
        Plan { policies, domain, sts: applied.policy.filter(|p| p.mode != Mode::None) }
    }

    fn enforced(&self) -> Option<&Policy> {
        self.sts.as_ref().filter(|p| p.mode == Mode::Enforce)
    }

    fn kind(&self) -> PolicyKind<'_> {
        self.sts.as_ref().map_or(PolicyKind::None, PolicyKind::Sts)
    }

    /// Whether `host` may be used (§4.1: an MX the policy lists). A host outside an `enforce`
    /// policy is skipped; under `testing` it is used and reported.
    pub(crate) async fn admits(&self, host: &str) -> Result<(), String> {
        let Some(p) = self.sts.as_ref().filter(|p| !p.allows(host)) else { return Ok(()) };
        let why = format!("{host} is not an MX host of {}'s MTA-STS policy", self.domain);
        self.record(host, None, "validation-failure", &why).await;
        if p.mode == Mode::Enforce {
            info!(event = "mta_sts_refused", domain = %self.domain, host = %host, reason = "mx_not_in_policy");
            return Err(why);
        }
        Ok(())
    }

    /// The TLS a host must have: under an `enforce` policy, STARTTLS with a certificate valid
    /// for the MX name (§4.2), whatever the route says.
    pub(crate) fn tls(&self, route: OutboundTls) -> OutboundTls {
        if self.enforced().is_some() && route != OutboundTls::Implicit { OutboundTls::Verify } else { route }
    }

    /// Records a session that opened: TLS verified, TLS with a certificate that did not
    /// verify (reported under a policy, fine without one), or no TLS at all.
    pub(crate) async fn opened(&self, host: &str, addr: SocketAddr, tls: Option<&TlsOutcome>) {
        let (result, detail) = match tls {
            None => ("starttls-not-supported", "the server offers no STARTTLS"),
            Some(t) => match (&t.unverified, &self.sts) {
                (Some(why), Some(_)) => (certificate_result(why), why.as_str()),
                _ => ("success", ""),
            },
        };
        self.record(host, Some(addr), result, detail).await;
    }

    /// Records a session that failed on TLS (not one that failed to connect).
    pub(crate) async fn failed(&self, host: &str, addr: SocketAddr, f: &HostFailure) {
        if let Some(result) = f.1 {
            if self.enforced().is_some() {
                info!(event = "mta_sts_refused", domain = %self.domain, host = %host, addr = %addr, reason = result);
            }
            self.record(host, Some(addr), result, &f.0).await;
        }
    }

    async fn record(&self, host: &str, addr: Option<SocketAddr>, result: &str, detail: &str) {
        if let Some(p) = self.policies {
            let ip = addr.map(|a| a.ip().to_string()).unwrap_or_default();
            p.record(self.domain, self.kind(), host, &ip, result, detail).await;
        }
    }
}
