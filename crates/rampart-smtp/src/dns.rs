//! DNS for outbound delivery: the resolver built from `[dns]`, and MX resolution per
//! RFC 5321 §5.1 and RFC 7505.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::proto::dnssec::TrustAnchors;
use hickory_resolver::{ResolverBuilder, TokioResolver};
use hickory_resolver::config::{NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;

pub type Resolver = TokioResolver;

/// A resolver for the configured name servers (`IP:PORT`), or the system's when none are set.
pub fn resolver(nameservers: &[SocketAddr]) -> Result<Resolver, String> {
    build(nameservers, true)
}

/// As [`resolver`], but never answering from /etc/hosts: what the rest of the internet sees
/// (`rampart audit` checks the published records, not this machine's local names).
pub fn public_resolver(nameservers: &[SocketAddr]) -> Result<Resolver, String> {
    build(nameservers, false)
}

/// As [`resolver`], validating DNSSEC (for DANE's lookups): each answer carries its proof.
/// `trust_anchor` is a file of DNSKEY records; None means the root zone's built-in keys.
/// (hickory's `ResolverOpts::trust_anchor` path is not read by its builder: the keys are loaded
/// here and handed over with `with_trust_anchor`.)
pub fn validating_resolver(nameservers: &[SocketAddr], trust_anchor: Option<&std::path::Path>) -> Result<Resolver, String> {
    let mut builder = builder(nameservers, true)?;
    builder.options_mut().validate = true;
    if let Some(path) = trust_anchor {
        let anchors = TrustAnchors::from_file(path).map_err(|e| format!("reading the trust anchor {}: {e}", path.display()))?;
        builder = builder.with_trust_anchor(std::sync::Arc::new(anchors));
    }
    builder.build().map_err(|e| format!("building the resolver: {e}"))
}

fn build(nameservers: &[SocketAddr], hosts_file: bool) -> Result<Resolver, String> {
    builder(nameservers, hosts_file)?.build().map_err(|e| format!("building the resolver: {e}"))
}

fn builder(nameservers: &[SocketAddr], hosts_file: bool) -> Result<ResolverBuilder<TokioRuntimeProvider>, String> {
    let mut builder = if nameservers.is_empty() {
        TokioResolver::builder_tokio().map_err(|e| format!("reading the system resolver configuration: {e}"))?
    } else {
        let servers = nameservers
            .iter()
            .map(|addr| {
                let mut ns = NameServerConfig::udp_and_tcp(addr.ip());
                for c in &mut ns.connections {
                    c.port = addr.port();
                }
                ns
            })
            .collect();
        TokioResolver::builder_with_config(ResolverConfig::from_name_servers(servers), TokioRuntimeProvider::default())
    };
    let opts = builder.options_mut();
    opts.timeout = Duration::from_secs(5);
    opts.attempts = 2;
    if !hosts_file {
        opts.use_hosts_file = hickory_resolver::config::ResolveHosts::Never;
    }
    Ok(builder)
}

/// Where mail for a domain goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mx {
    /// Host names in the order to try them.
    Hosts(Vec<String>),
    /// RFC 7505 null MX: the domain accepts no mail.
    Null,
    /// The domain does not exist.
    NoDomain,
    /// DNS did not answer; try later.
    TempFail(String),
}

pub async fn mx(resolver: &Resolver, domain: &str) -> Mx {
    let fqdn = format!("{}.", domain.trim_end_matches('.'));
    match resolver.mx_lookup(fqdn.as_str()).await {
        Ok(lookup) => {
            let mut hosts: Vec<(u16, String)> = lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii().trim_end_matches('.').to_string())),
                    _ => None,
                })
                .collect();
            // RFC 7505 §3: a single MX with an empty exchange (".") means "no mail here".
            if hosts.len() == 1 && hosts[0].1.is_empty() {
                return Mx::Null;
            }
            hosts.retain(|(_, h)| !h.is_empty());
            if hosts.is_empty() {
                return Mx::Hosts(vec![domain.to_string()]);
            }
            // Equal preferences keep DNS order, which resolvers already rotate.
            hosts.sort_by_key(|(pref, _)| *pref);
            Mx::Hosts(hosts.into_iter().map(|(_, h)| h).collect())
        }
        Err(e) if e.is_nx_domain() => Mx::NoDomain,
        // RFC 5321 §5.1: no MX records means the domain itself is the one host (implicit MX).
        Err(e) if e.is_no_records_found() => Mx::Hosts(vec![domain.to_string()]),
        Err(e) => Mx::TempFail(e.to_string()),
    }
}

/// The addresses of a host, IPv6 and IPv4 as the resolver returns them.
pub async fn addresses(resolver: &Resolver, host: &str) -> Result<Vec<IpAddr>, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let fqdn = format!("{}.", host.trim_end_matches('.'));
    match resolver.lookup_ip(fqdn.as_str()).await {
        Ok(ips) => Ok(ips.iter().collect()),
        Err(e) => Err(format!("no address for {host}: {e}")),
    }
}
