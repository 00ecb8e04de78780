//! The DNSSEC side of DANE for SMTP (RFC 7672 §2): which answers are secure, through a
//! resolver that validates in this process (hickory, from the root's keys or a configured
//! trust anchor).
//!
//! - [`Dane::active`] first checks that the configured name servers pass DNSSEC records at all
//!   (a signed DNSKEY set at the trust anchor's name, validated): behind a resolver that strips
//!   them every answer would look bogus and all mail would wait, so DANE stays off (logged)
//!   until the probe succeeds; once it has, DANE stays on for the life of the process, so an
//!   attacker who later blocks DNSSEC records gets deferrals, not a downgrade.
//! - [`Dane::mx_secure`]: DANE applies only to MX hosts from a secure MX RRset, or to the
//!   domain itself when a secure answer says it has no MX records (§2.2.1).
//! - [`Dane::tlsa`]: a host's TLSA records, looked up only when its address records are
//!   secure (§2.2.2), at the name a secure CNAME chain leads to first, then at the host's own
//!   name (§2.2.3); a failed or bogus lookup makes the host unusable (§2.2: "defer").

use std::sync::Mutex;
use std::time::{Duration, Instant};

use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::dnssec::Proof;
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use tracing::{info, warn};

use super::dane::Tlsa;
use crate::dns::Resolver;

/// While the probe fails, how long before it is tried again (each delivery in between goes
/// without DANE rather than waiting for DNS).
const PROBE_AGAIN: Duration = Duration::from_secs(60);

/// What a host's TLSA lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsaLookup {
    /// A DNSSEC-validated record set: DANE applies. With the name it was found at when that
    /// is the end of the host's CNAME chain (a reference identifier for DANE-TA, §2.2.3).
    Secure(Vec<Tlsa>, Option<String>),
    /// No records, records without a DNSSEC proof, or insecure address records: DANE does
    /// not apply (RFC 7672 §2.2).
    Absent,
    /// Validation failed (bogus): the host must not be used (RFC 7672 §2.1.1).
    Bogus(String),
    /// The lookup failed otherwise (SERVFAIL, timeout): the host must not be used either, as
    /// the records may exist (§2.2: only a validated "no records" lets TLS be opportunistic).
    Failed(String),
}

/// Whether a domain's MX RRset is secure (RFC 7672 §2.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MxSecurity {
    Secure,
    /// A validated answer that the domain has no MX records: mail goes to the domain's own
    /// address records, and DANE applies when those are secure (§2.2.1), which
    /// [`Dane::tlsa`] checks.
    SecureNoMx,
    /// Insecure, or no MX records without a validated denial: DANE does not apply to the
    /// domain's hosts.
    Insecure,
    /// Bogus or failed to validate: the domain's mail waits (§2.2.1, as for a failed MX lookup).
    Failed(String),
}

/// The validating resolver, with the state of the probe that tells whether it can be used.
pub struct Dane {
    resolver: Resolver,
    /// Where the probe looks for a signed DNSKEY set: the trust anchor's name.
    anchor: Name,
    probe: Mutex<Probe>,
}

#[derive(Default)]
struct Probe {
    passed: bool,
    last: Option<Instant>,
    /// Whether the failure has been logged (once, not on every delivery).
    warned: bool,
}

impl Dane {
    /// `anchor_file`: the trust anchor given to the resolver (None: the root's keys).
    pub fn new(resolver: Resolver, anchor_file: Option<&std::path::Path>) -> Result<Dane, String> {
        let anchor = match anchor_file {
            Some(path) => anchor_name(path)?,
            None => Name::root(),
        };
        Ok(Dane { resolver, anchor, probe: Mutex::new(Probe::default()) })
    }

    /// Whether DANE can be applied now: the resolver passes DNSSEC records (see the module doc).
    pub async fn active(&self) -> bool {
        {
            let p = self.probe.lock().unwrap_or_else(|e| e.into_inner());
            if p.passed {
                return true;
            }
            if p.last.is_some_and(|t| t.elapsed() < PROBE_AGAIN) {
                return false;
            }
        }
        let outcome = self.probe_once().await;
        let mut p = self.probe.lock().unwrap_or_else(|e| e.into_inner());
        p.last = Some(Instant::now());
        match outcome {
            Ok(()) => {
                p.passed = true;
                info!(event = "dane_active", anchor = %self.anchor);
            }
            Err(why) if !p.warned => {
                p.warned = true;
                warn!(event = "dane_unavailable", anchor = %self.anchor, reason = %why);
            }
            Err(_) => {}
        }
        p.passed
    }

    async fn probe_once(&self) -> Result<(), String> {
        let lookup = self.resolver.lookup(self.anchor.clone(), RecordType::DNSKEY).await;
        let lookup = lookup.map_err(|e| format!("DNSKEY {}: {e}", self.anchor))?;
        if all_secure(lookup.answers(), RecordType::DNSKEY) {
            Ok(())
        } else {
            Err(format!("the DNSKEY set of {} does not validate: the name servers do not pass DNSSEC records", self.anchor))
        }
    }

    /// Whether `domain`'s MX RRset is secure.
    pub async fn mx_secure(&self, domain: &str) -> MxSecurity {
        let fqdn = format!("{}.", domain.trim_end_matches('.'));
        match self.resolver.mx_lookup(fqdn.as_str()).await {
            Ok(l) if all_secure(l.answers(), RecordType::MX) => MxSecurity::Secure,
            Ok(_) => MxSecurity::Insecure,
            Err(e) => match classify(&e) {
                Negative::Absent(Proof::Secure) => MxSecurity::SecureNoMx,
                Negative::Absent(_) => MxSecurity::Insecure,
                Negative::Bogus(why) | Negative::Failed(why) => MxSecurity::Failed(format!("MX of {domain}: {why}")),
            },
        }
    }

    /// `_PORT._tcp.HOST` TLSA (RFC 7672 §2.2.3), when HOST's address records are secure. When
    /// they were reached through a CNAME chain, every link must be secure too, and the chain's
    /// end is tried first, then HOST itself (§2.2.3).
    pub async fn tlsa(&self, host: &str, port: u16) -> TlsaLookup {
        let fqdn = format!("{}.", host.trim_end_matches('.'));
        let expanded = match self.resolver.lookup_ip(fqdn.as_str()).await {
            Ok(ips) => {
                let answers = ips.as_lookup().answers();
                let chain = answers.iter().filter(|r| is_address(r) || r.record_type() == RecordType::CNAME);
                if !chain.clone().all(|r| r.proof == Proof::Secure) || !answers.iter().any(is_address) {
                    return TlsaLookup::Absent;
                }
                expanded_name(answers, &fqdn)
            }
            Err(e) => match classify(&e) {
                Negative::Bogus(why) => return TlsaLookup::Bogus(format!("address of {host}: {why}")),
                // The plain resolver's lookup reports the host's missing address.
                Negative::Absent(_) | Negative::Failed(_) => return TlsaLookup::Absent,
            },
        };
        if let Some(target) = expanded {
            match self.tlsa_at(&target, port).await {
                TlsaLookup::Absent => {}
                TlsaLookup::Secure(records, _) => return TlsaLookup::Secure(records, Some(target.trim_end_matches('.').to_string())),
                failed => return failed,
            }
        }
        self.tlsa_at(&fqdn, port).await
    }

    /// The validated TLSA records at `_PORT._tcp.FQDN`.
    async fn tlsa_at(&self, fqdn: &str, port: u16) -> TlsaLookup {
        let name = format!("_{port}._tcp.{fqdn}");
        match self.resolver.tlsa_lookup(name.as_str()).await {
            Ok(l) => {
                // Only the records owned by the name asked: a CNAME at the TLSA name is followed
                // by the resolver, and its records count when the whole answer is secure.
                let secure: Vec<Tlsa> = l.answers().iter().filter(|r| r.proof == Proof::Secure).filter_map(tlsa).collect();
                if secure.is_empty() { TlsaLookup::Absent } else { TlsaLookup::Secure(secure, None) }
            }
            Err(e) => match classify(&e) {
                Negative::Absent(_) => TlsaLookup::Absent,
                Negative::Bogus(why) => TlsaLookup::Bogus(format!("{name}: {why}")),
                Negative::Failed(why) => TlsaLookup::Failed(format!("{name}: {why}")),
            },
        }
    }
}

/// Where the CNAME chain starting at `fqdn` in `answers` ends, if it leads elsewhere.
fn expanded_name(answers: &[Record], fqdn: &str) -> Option<String> {
    /// More links than any sane chain has; a loop stops here too.
    const MAX_LINKS: usize = 8;
    let mut current = fqdn.to_ascii_lowercase();
    for _ in 0..MAX_LINKS {
        let next = answers.iter().find_map(|r| match &r.data {
            RData::CNAME(c) if r.name.to_ascii().eq_ignore_ascii_case(&current) => Some(c.0.to_ascii().to_ascii_lowercase()),
            _ => None,
        });
        match next {
            Some(n) => current = n,
            None => break,
        }
    }
    (!current.eq_ignore_ascii_case(fqdn)).then_some(current)
}

fn is_address(r: &Record) -> bool {
    matches!(r.data, RData::A(_) | RData::AAAA(_))
}

fn tlsa(r: &Record) -> Option<Tlsa> {
    match &r.data {
        RData::TLSA(t) => Some(Tlsa { usage: t.cert_usage.into(), selector: t.selector.into(), matching: t.matching.into(), data: t.cert_data.clone() }),
        _ => None,
    }
}

/// Whether every record of `kind` in an answer is secure (and there is one).
fn all_secure(answers: &[Record], kind: RecordType) -> bool {
    let of_kind: Vec<&Record> = answers.iter().filter(|r| r.record_type() == kind).collect();
    !of_kind.is_empty() && of_kind.iter().all(|r| r.proof == Proof::Secure)
}

/// What a failed lookup means for DANE.
enum Negative {
    /// No such records (NXDOMAIN, NODATA): proven (Secure), in an insecure zone, or without a
    /// proof at all (Indeterminate).
    Absent(Proof),
    Bogus(String),
    Failed(String),
}

fn classify(e: &NetError) -> Negative {
    match e {
        NetError::Dns(DnsError::DnssecBogus) => Negative::Bogus("DNSSEC validation failed".into()),
        NetError::Dns(DnsError::Nsec { proof: Proof::Bogus, .. }) => Negative::Bogus("bogus denial of existence".into()),
        NetError::Dns(DnsError::Nsec { proof: p @ (Proof::Secure | Proof::Insecure), .. }) => Negative::Absent(*p),
        NetError::Dns(DnsError::NoRecordsFound(none)) => Negative::Absent(denial_proof(none)),
        _ if e.is_no_records_found() => Negative::Absent(Proof::Indeterminate),
        other => Negative::Failed(other.to_string()),
    }
}

/// How well an empty answer is proven: the validator turns a denial it could not prove into
/// an `Nsec` error, so an empty answer whose SOA or NSEC records validated is a secure denial.
fn denial_proof(none: &hickory_resolver::net::NoRecords) -> Proof {
    let soa_secure = none.soa.as_ref().is_some_and(|soa| soa.proof == Proof::Secure);
    let nsec_secure = none.authorities.as_deref().unwrap_or_default().iter().any(|r| {
        matches!(r.record_type(), RecordType::NSEC | RecordType::NSEC3) && r.proof == Proof::Secure
    });
    if soa_secure || nsec_secure { Proof::Secure } else { Proof::Indeterminate }
}

/// The owner name of the first DNSKEY record in a trust anchor file.
fn anchor_name(path: &std::path::Path) -> Result<Name, String> {
    use hickory_resolver::proto::serialize::txt::trust_anchor::{Entry, Parser};
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading the trust anchor {}: {e}", path.display()))?;
    let entries = Parser::new(text).parse().map_err(|e| format!("the trust anchor {}: {e}", path.display()))?;
    entries
        .into_iter()
        .find_map(|e| match e {
            Entry::DNSKEY(r) => Some(r.name().clone()),
            _ => None,
        })
        .ok_or_else(|| format!("the trust anchor {} holds no DNSKEY record", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_looks_at_the_trust_anchors_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("anchor.key");
        // As ldns-keygen writes it, with its trailing comment.
        let key = "dane.test.\tIN\tDNSKEY\t257 3 13 3rubb8Xdow3w6NoaLby4UzybeJE9tK3kA2kSGILKfzDYKpTCiwWopR5ArVjcDR9R9Mvp7uBNEKCi7S+E1fi2vQ== ;{id = 59099 (ksk), size = 256b}\n";
        std::fs::write(&path, key).unwrap();
        assert_eq!(anchor_name(&path).unwrap().to_ascii(), "dane.test.");
        std::fs::write(&path, "; nothing\n").unwrap();
        assert!(anchor_name(&path).unwrap_err().contains("no DNSKEY"));
        // The resolver takes the same file.
        std::fs::write(&path, key).unwrap();
        assert!(crate::dns::validating_resolver(&["127.0.0.1:53".parse().unwrap()], Some(&path)).is_ok());
    }

    #[test]
    fn the_cname_chain_is_followed_to_its_end() {
        use hickory_resolver::proto::rr::rdata::{A, CNAME};
        let name = |n: &str| Name::from_ascii(n).unwrap();
        let cname = |from: &str, to: &str| Record::from_rdata(name(from), 300, RData::CNAME(CNAME(name(to))));
        let a = |n: &str| Record::from_rdata(name(n), 300, RData::A(A::new(127, 0, 0, 1)));
        let chain = [cname("mx.d.test.", "b.d.test."), cname("B.d.test.", "c.d.test."), a("c.d.test.")];
        assert_eq!(expanded_name(&chain, "MX.d.test."), Some("c.d.test.".into()));
        assert_eq!(expanded_name(&[a("mx.d.test.")], "mx.d.test."), None);
        // A loop (which a resolver would not hand over) ends after MAX_LINKS, wherever it is.
        let looped = [cname("x.d.test.", "y.d.test."), cname("y.d.test.", "x.d.test.")];
        let _ = expanded_name(&looped, "x.d.test.");
    }

    #[test]
    fn only_a_negative_answer_is_absent() {
        let servfail = NetError::Dns(DnsError::ResponseCode(hickory_resolver::proto::op::ResponseCode::ServFail));
        assert!(matches!(classify(&servfail), Negative::Failed(_)));
        assert!(matches!(classify(&NetError::Dns(DnsError::DnssecBogus)), Negative::Bogus(_)));
        assert!(matches!(classify(&NetError::from("timed out".to_string())), Negative::Failed(_)));
    }
}
