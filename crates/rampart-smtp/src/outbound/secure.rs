//! How a destination's published TLS policy shapes one delivery: which MX hosts may be used,
//! what TLS each must have, and the outcome of each session recorded for the TLS report
//! (RFC 8460). A host with DNSSEC-secure TLSA records, named by a secure MX RRset, goes by DANE
//! (RFC 7672), which takes precedence over MTA-STS (RFC 8461 §2); the others by the domain's
//! MTA-STS policy (§4, §5).
//! Routes with a smart host go by their own TLS setting and skip this.

use std::net::SocketAddr;

use rampart_config::OutboundTls;
use tracing::info;

use super::{HostFailure, Outbound};
use crate::client::{TlsClient, TlsOutcome};
use crate::sts::dane;
use crate::sts::dnssec::{Dane, MxSecurity, TlsaLookup};
use crate::sts::{Mode, Policy, PolicyKind, TlsPolicies, certificate_result};

/// How one MX host is to be used.
pub(crate) struct HostPlan {
    pub tls: OutboundTls,
    /// A client checking the host's TLSA records (DANE), instead of the usual trust anchors.
    pub client: Option<TlsClient>,
    /// The TLSA records in force, as reports show them; None when DANE does not apply.
    tlsa: Option<Vec<String>>,
    /// Under a `testing` policy: why the host is used though the policy does not list it.
    unlisted: Option<String>,
}

/// The policy in force for one connection attempt to a domain.
pub(crate) struct Plan<'a> {
    policies: Option<&'a TlsPolicies>,
    domain: &'a str,
    /// The domain's MTA-STS policy, unless absent or mode `none`.
    sts: Option<Policy>,
    dane: DaneScope<'a>,
}

/// Whether DANE can apply to a domain's MX hosts.
enum DaneScope<'a> {
    /// DANE is off, the resolver does not pass DNSSEC records, or the MX RRset is insecure
    /// (RFC 7672 §2.2.1).
    Off,
    /// The MX RRset is secure, or a secure denial says there is none: each host's TLSA
    /// records are looked up.
    Secure(&'a Dane),
    /// The MX RRset is bogus or did not validate: no host is used, the mail waits.
    Failed(String),
}

impl<'a> DaneScope<'a> {
    async fn of(dane: Option<&'a Dane>, domain: &str) -> DaneScope<'a> {
        let Some(d) = dane else { return DaneScope::Off };
        if !d.active().await {
            return DaneScope::Off;
        }
        match d.mx_secure(domain).await {
            // No MX: the domain's own host, whose address records `Dane::tlsa` checks (§2.2.1).
            MxSecurity::Secure | MxSecurity::SecureNoMx => DaneScope::Secure(d),
            MxSecurity::Insecure => DaneScope::Off,
            MxSecurity::Failed(why) => DaneScope::Failed(why),
        }
    }
}

impl<'a> Plan<'a> {
    /// Looks the policy up (MX delivery only) and reports a failed fetch.
    pub(crate) async fn new(out: &'a Outbound, domain: &'a str, smart_host: bool) -> Plan<'a> {
        let policies = out.policies.as_deref();
        let Some(p) = policies.filter(|_| !smart_host) else {
            return Plan { policies: None, domain, sts: None, dane: DaneScope::Off };
        };
        let applied = p.sts(domain).await;
        if let Some(f) = &applied.failure {
            p.record(domain, PolicyKind::StsUnavailable, "", "", f.result_type(), &f.to_string()).await;
        }
        let dane = DaneScope::of(p.dane.as_ref().filter(|_| p.apply), domain).await;
        Plan { policies, domain, sts: applied.policy.filter(|p| p.mode != Mode::None), dane }
    }

    fn enforced(&self) -> Option<&Policy> {
        self.sts.as_ref().filter(|p| p.mode == Mode::Enforce)
    }

    fn kind(&self) -> PolicyKind<'_> {
        self.sts.as_ref().map_or(PolicyKind::None, PolicyKind::Sts)
    }

    /// How `host` is to be used, or why it must not be: DANE when it has secure TLSA records
    /// (a bogus or failed answer rules the host out), else the MTA-STS policy
    /// ([`Plan::admits`]).
    pub(crate) async fn for_host(&self, host: &str, port: u16, route: OutboundTls) -> Result<HostPlan, String> {
        let found = match &self.dane {
            DaneScope::Off => TlsaLookup::Absent,
            DaneScope::Secure(d) => d.tlsa(host, port).await,
            DaneScope::Failed(why) => TlsaLookup::Bogus(why.clone()),
        };
        match found {
            TlsaLookup::Absent => {
                let unlisted = self.admits(host).await?;
                Ok(HostPlan { tls: self.tls(route), client: None, tlsa: None, unlisted })
            }
            TlsaLookup::Bogus(why) => {
                info!(event = "dane_refused", domain = %self.domain, host = %host, reason = "dnssec-invalid");
                self.record_kind(PolicyKind::None, host, None, "dnssec-invalid", &why).await;
                Err(format!("{host}: {why}"))
            }
            // A DNS failure, not a TLS outcome: nothing to report, the host waits (RFC 7672 §2.2).
            TlsaLookup::Failed(why) => {
                info!(event = "dane_refused", domain = %self.domain, host = %host, reason = "tlsa-lookup-failed");
                Err(format!("{host}: TLSA lookup failed: {why}"))
            }
            TlsaLookup::Secure(records, expanded) => {
                let texts: Vec<String> = records.iter().map(dane::Tlsa::text).collect();
                let usable: Vec<dane::Tlsa> = records.into_iter().filter(dane::Tlsa::usable).collect();
                info!(event = "dane_tlsa", domain = %self.domain, host = %host, usable = usable.len());
                let base = self.policies.map(|p| &p.tls);
                // RFC 7672 §2.2: records but none usable still make TLS mandatory, unauthenticated.
                let (tls, client) = match base.filter(|_| !usable.is_empty()) {
                    Some(b) => (OutboundTls::Verify, Some(b.with_dane(usable, expanded))),
                    None => (OutboundTls::Require, None),
                };
                Ok(HostPlan { tls, client, tlsa: Some(texts), unlisted: None })
            }
        }
    }

    /// Whether `host` may be used (§4.1: an MX the policy lists). A host outside an `enforce`
    /// policy is skipped (and reported); under `testing` it is used, and Ok carries why its
    /// session is reported as a failure.
    async fn admits(&self, host: &str) -> Result<Option<String>, String> {
        let Some(p) = self.sts.as_ref().filter(|p| !p.allows(host)) else { return Ok(None) };
        let why = format!("{host} is not an MX host of {}'s MTA-STS policy", self.domain);
        if p.mode != Mode::Enforce {
            return Ok(Some(why));
        }
        info!(event = "mta_sts_refused", domain = %self.domain, host = %host, reason = "mx_not_in_policy");
        self.record_kind(self.kind(), host, None, "validation-failure", &why).await;
        Err(why)
    }

    /// The TLS a host must have: under an `enforce` policy, STARTTLS with a certificate valid
    /// for the MX name (§4.2), whatever the route says.
    fn tls(&self, route: OutboundTls) -> OutboundTls {
        if self.enforced().is_some() && route != OutboundTls::Implicit { OutboundTls::Verify } else { route }
    }

    /// Records a session that opened: TLS verified, TLS with a certificate that did not
    /// verify (reported under a policy, fine without one), or no TLS at all.
    pub(crate) async fn opened(&self, hp: &HostPlan, host: &str, addr: SocketAddr, tls: Option<&TlsOutcome>) {
        let (result, detail) = match (tls, &hp.unlisted) {
            (None, _) => ("starttls-not-supported", "the server offers no STARTTLS"),
            (Some(_), Some(why)) => ("validation-failure", why.as_str()),
            (Some(t), None) => match (&t.unverified, &self.sts) {
                (Some(why), Some(_)) if hp.tlsa.is_none() => (certificate_result(why), why.as_str()),
                _ => ("success", ""),
            },
        };
        self.record_kind(self.kind_for(hp), host, Some(addr), result, detail).await;
    }

    fn kind_for<'b>(&'b self, hp: &'b HostPlan) -> PolicyKind<'b> {
        hp.tlsa.as_deref().map_or_else(|| self.kind(), PolicyKind::Tlsa)
    }

    /// Records a session that failed on TLS (not one that failed to connect).
    pub(crate) async fn failed(&self, hp: &HostPlan, host: &str, addr: SocketAddr, f: &HostFailure) {
        let Some(result) = f.1 else { return };
        // A certificate DANE refused is a TLSA mismatch (RFC 8460 §4.3.2.1), not a PKIX failure.
        let result = if hp.client.is_some() && result != "starttls-not-supported" { "tlsa-invalid" } else { result };
        if hp.tlsa.is_some() {
            info!(event = "dane_refused", domain = %self.domain, host = %host, addr = %addr, reason = result);
        } else if self.enforced().is_some() {
            info!(event = "mta_sts_refused", domain = %self.domain, host = %host, addr = %addr, reason = result);
        }
        self.record_kind(self.kind_for(hp), host, Some(addr), result, &f.0).await;
    }

    async fn record_kind(&self, kind: PolicyKind<'_>, host: &str, addr: Option<SocketAddr>, result: &str, detail: &str) {
        if let Some(p) = self.policies {
            let ip = addr.map(|a| a.ip().to_string()).unwrap_or_default();
            p.record(self.domain, kind, host, &ip, result, detail).await;
        }
    }
}
