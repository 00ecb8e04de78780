//! Gateway mode's wiring: each `[[gateway.route]]` with its recipient sources and, when
//! `callout = true`, a callout to its downstream (the same TLS policy and client certificate
//! the queue uses to deliver there). Delivery itself is a queue route (`crate::queue`).

use std::sync::Arc;

use anyhow::{Context, anyhow};
use rampart_config::{Config, DownstreamTls, OutboundTls};
use rampart_smtp::gateway::{Callout, Gateway, Route, callout};
use rampart_store::Store;
use tracing::warn;

pub fn gateway(config: &Config) -> anyhow::Result<Gateway> {
    if config.gateway.route.is_empty() {
        return Ok(Gateway::default());
    }
    let resolver = Arc::new(rampart_smtp::dns::resolver(&config.dns.nameservers).map_err(|e| anyhow!("dns.nameservers: {e}"))?);
    let tls = crate::queue::tls_client(config)?;
    let mut routes = Vec::new();
    for (i, g) in config.gateway.route.iter().enumerate() {
        let at = format!("gateway.route[{i}]");
        let callout = if g.callout {
            let (host, port) = rampart_config::split_host_port(&g.downstream).with_context(|| format!("{at}.downstream: not host:port"))?;
            let route_tls = crate::queue::with_client_cert(&at, &tls, g.client_cert.as_ref(), g.client_key.as_ref())?;
            Some(Callout::new(callout::Settings {
                hostname: config.server.hostname.clone(),
                host,
                port,
                policy: match g.tls {
                    DownstreamTls::Require => OutboundTls::Require,
                    DownstreamTls::Opportunistic => OutboundTls::Opportunistic,
                },
                tls: route_tls.unwrap_or_else(|| tls.clone()),
                resolver: resolver.clone(),
                timeout: g.callout_timeout,
                cache_positive: g.callout_cache_positive,
                cache_negative: g.callout_cache_negative,
            }))
        } else {
            None
        };
        routes.push(Route::new(g, callout));
    }
    Ok(Gateway::new(routes))
}

/// A gateway domain that is also a local domain is served locally (local domains win at
/// RCPT): said once at start, as it is almost certainly a mistake.
pub async fn warn_local_domains(config: &Config, store: &dyn Store) {
    for (i, g) in config.gateway.route.iter().enumerate() {
        for domain in &g.domains {
            if store.is_local_domain(domain).await.unwrap_or(false) {
                warn!(event = "gateway_domain_is_local", domain = %domain, route = i, effect = "delivered to local mailboxes, not the downstream");
            }
        }
    }
}

/// Whether `domain` is a gateway domain (DKIM keys may be made for it: its mail leaves here).
pub fn is_gateway_domain(config: &Config, domain: &str) -> bool {
    config.gateway.route.iter().any(|r| r.has_domain(domain))
}
