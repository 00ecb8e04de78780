//! The DNS the sender-authentication checks ask, in one place: mail-auth's resolver behind
//! the caches of [`crate::cache`] (SPF records, DKIM keys, DMARC policies, addresses, PTR
//! names), and the raw TXT questions mail-auth does not cache (DMARC `pct`, RFC 7489 §7.1
//! report authorization).
//!
//! Every question looks at answers put in ahead first ([`Dns::put_txt`] and friends), so the
//! checks run in unit tests without a name server: [`Dns::offline`] answers only what was
//! put in, and "no such record" (or, for address questions, a DNS error) for the rest.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::ResolverConfig;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::resolver::ToFqdn;
use mail_auth::common::verify::DomainKey;
use mail_auth::dmarc::Dmarc;
use mail_auth::spf::Spf;
use mail_auth::{DnsError, Error, MessageAuthenticator, ResolverCache, Txt};

use crate::cache::{Cached, Caches, records};

/// How long answers put in ahead stay: for the life of the process.
const PUT_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The resolver failed (no answer, SERVFAIL, timeout): the question may work later.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("DNS lookup of {0} failed")]
pub struct DnsFailure(pub String);

/// A raw TXT answer put in ahead.
#[derive(Debug, Clone)]
enum Raw {
    Text(String),
    Failure,
}

pub struct Dns {
    auth: MessageAuthenticator,
    caches: Caches,
    /// Raw TXT answers put in ahead. Not filled from the resolver: its raw lookups give no TTL,
    /// and hickory caches raw answers itself.
    raw: Mutex<HashMap<Box<str>, Raw>>,
    /// Raw TXT questions nobody put an answer for get "no such record" instead of going out.
    offline: bool,
}

impl From<TokioResolver> for Dns {
    fn from(resolver: TokioResolver) -> Dns {
        Dns::new(resolver)
    }
}

impl Dns {
    /// DNS through `resolver`, with the parsed-record caches.
    pub fn new(resolver: TokioResolver) -> Dns {
        Dns { auth: MessageAuthenticator(resolver), caches: Caches::default(), raw: Mutex::default(), offline: false }
    }

    /// DNS without a name server, for tests: it knows only what is put in. A TXT or PTR
    /// question nobody answered gets "no such record" (NXDOMAIN); an address or MX question
    /// goes to a resolver with no servers and fails as a DNS error.
    pub fn offline() -> Dns {
        let resolver = TokioResolver::builder_with_config(ResolverConfig::from_name_servers(Vec::new()), TokioRuntimeProvider::default())
            .build()
            .expect("a resolver without name servers needs no system configuration");
        Dns { auth: MessageAuthenticator(resolver), caches: Caches::offline(), raw: Mutex::default(), offline: true }
    }

    pub(crate) fn auth(&self) -> &MessageAuthenticator {
        &self.auth
    }

    /// mail-auth parameters with every cache attached.
    pub(crate) fn params<'x, P>(&'x self, params: P) -> Cached<'x, P> {
        self.caches.params(params)
    }

    /// The TXT record(s) of `name` as text (several records are joined, as mail-auth does);
    /// `None` when there is none or the answer is unusable.
    pub(crate) async fn txt_raw(&self, name: &str) -> Result<Option<String>, DnsFailure> {
        let key = name.to_fqdn();
        if let Some(raw) = self.raw.lock().expect("raw TXT lock").get(key.as_ref()).cloned() {
            return match raw {
                Raw::Text(text) => Ok(Some(text)),
                Raw::Failure => Err(DnsFailure(key.into_owned())),
            };
        }
        if self.offline {
            return Ok(None);
        }
        match self.auth.txt_raw_lookup(key.as_ref()).await {
            Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
            Err(Error::Dns(DnsError::Resolver(_))) => Err(DnsFailure(key.into_owned())),
            Err(_) => Ok(None),
        }
    }

    /// The A records of a DNS blocklist name (RFC 5782 §2.1), cached for their TTL: `None` when
    /// the name does not exist (not listed). Offline, a name nobody put an answer for is not
    /// listed.
    pub(crate) async fn list_lookup(&self, name: &str) -> Result<Option<Vec<std::net::Ipv4Addr>>, DnsFailure> {
        match self.auth.ipv4_lookup(name, Some(&self.caches.v4)).await {
            Ok(set) => Ok(Some(set.rrset.to_vec())),
            Err(Error::Dns(DnsError::RecordNotFound(_))) => Ok(None),
            Err(_) if self.offline => Ok(None),
            Err(_) => Err(DnsFailure(name.to_string())),
        }
    }

    /// Answers TXT questions for `name` with `record`, parsed as what mail-auth asks there: a
    /// DMARC policy under `_dmarc.`, a DKIM key under `._domainkey.`, an SPF record elsewhere.
    /// A record that does not parse is kept as the parse error, as a live lookup would be.
    pub fn put_txt(&self, name: &str, record: &str) {
        let key = name.to_fqdn().into_owned();
        let bytes = record.as_bytes();
        let parsed: Txt = if key.starts_with("_dmarc.") {
            Dmarc::parse(bytes).into()
        } else if key.contains("._domainkey.") {
            DomainKey::parse(bytes).into()
        } else {
            Spf::parse(bytes).into()
        };
        self.raw.lock().expect("raw TXT lock").insert(key.clone().into(), Raw::Text(record.to_string()));
        self.caches.txt.insert(key.into(), parsed, Instant::now() + PUT_LIFETIME);
    }

    /// Makes every TXT question for `name` fail as a DNS error (a temperror for the checks).
    pub fn put_txt_failure(&self, name: &str) {
        let key = name.to_fqdn().into_owned();
        self.raw.lock().expect("raw TXT lock").insert(key.clone().into(), Raw::Failure);
        let failure = Error::Dns(DnsError::Resolver(format!("no answer for {key}")));
        self.caches.txt.insert(key.into(), Txt::Error(failure), Instant::now() + PUT_LIFETIME);
    }

    /// Answers the PTR question for `ip` with `names` (none: no PTR record).
    pub fn put_ptr(&self, ip: IpAddr, names: &[&str]) {
        let names: Vec<Box<str>> = names.iter().map(|n| n.to_fqdn().into_owned().into()).collect();
        self.caches.ptr.insert(ip, records(names), Instant::now() + PUT_LIFETIME);
    }

    /// Answers the A and AAAA questions for `name` with the addresses of each family in `ips`.
    pub fn put_addresses(&self, name: &str, ips: &[IpAddr]) {
        let key: Box<str> = name.to_fqdn().into_owned().into();
        let until = Instant::now() + PUT_LIFETIME;
        let v4 = ips.iter().filter_map(|ip| if let IpAddr::V4(v4) = ip { Some(*v4) } else { None }).collect();
        let v6 = ips.iter().filter_map(|ip| if let IpAddr::V6(v6) = ip { Some(*v6) } else { None }).collect();
        self.caches.v4.insert(key.clone(), records(v4), until);
        self.caches.v6.insert(key, records(v6), until);
    }
}
