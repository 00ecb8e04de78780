//! `[queue]`: outbound delivery — concurrency, retries, timeouts, and per-destination routes
//! (TLS policy, smart hosts).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration;
use crate::section::Problems;

section! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Queue {
        /// Deliveries in progress at once.
        pub concurrency: usize = 32,
        /// Deliveries in progress at once to one destination domain.
        pub per_domain_concurrency: usize = 4,
        /// Waits after a temporary failure; the last one repeats until the message expires and
        /// bounces.
        #[serde(with = "duration::list")]
        pub retry_schedule: Vec<Duration> = [5, 10, 30, 60, 120, 240].iter().map(|m| Duration::from_secs(m * 60)).collect(),
        /// Give up and bounce a message after this long in the queue (RFC 5321 §4.5.4.1: 4-5 days).
        #[serde(with = "duration")]
        pub expiry: Duration = Duration::from_secs(5 * 24 * 3600),
        /// backend = "postgres": how long a node keeps a recipient it took from the shared
        /// queue before another node may take it (a node that dies mid-delivery leaves it that
        /// long). Longer than one delivery attempt can last (see `command_timeout`), or a slow
        /// attempt may be made twice.
        #[serde(with = "duration")]
        pub lease: Duration = Duration::from_secs(15 * 60),
        /// Port of remote MX hosts. 25 in the real world; tests point it elsewhere.
        pub remote_port: u16 = 25,
        /// Longest wait for a TCP connection to a remote host.
        #[serde(with = "duration")]
        pub connect_timeout: Duration = Duration::from_secs(30),
        /// Longest wait for any reply (RFC 5321 §4.5.3.2 suggests 5 to 10 minutes).
        #[serde(with = "duration")]
        pub command_timeout: Duration = Duration::from_secs(300),
        /// Extra CAs (PEM) to trust when verifying remote servers, e.g. a private CA. None by
        /// default; for example:
        ///   extra_ca_file = "tls/extra-ca.pem"
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub extra_ca_file: Option<PathBuf> = None,
        /// Routes: per-destination TLS policy and smart hosts; the first route whose `domains`
        /// match wins. None by default (opportunistic TLS to every domain's MX hosts); to add
        /// some, replace `route = []` with tables like these.
        /// tls = "opportunistic" (the default: STARTTLS when offered), "require" (never in clear),
        /// "verify" (STARTTLS with a valid certificate) or "implicit" (TLS on connect, smart
        /// hosts only).
        ///   [[queue.route]]
        ///   domains = ["bank.example"]
        ///   tls = "verify"
        ///   [[queue.route]]
        ///   domains = ["*"]                  # everything else through a smart host
        ///   host = "smtp.provider.example"
        ///   port = 465
        ///   tls = "implicit"
        ///   auth_username = "me@example.org"
        ///   auth_password_file = "secrets/smarthost"
        ///   client_cert = "tls/client.pem"   # optional
        ///   client_key = "tls/client.key"
        pub route: Vec<Route> = Vec::new(),
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboundTls {
    /// STARTTLS when offered; an unverifiable certificate is logged, not fatal (RFC 7435).
    #[default]
    Opportunistic,
    /// Never send in clear: STARTTLS must be offered and succeed.
    Require,
    /// As `require`, and the certificate must verify for the host name.
    Verify,
    /// TLS from the first byte (a smart host on port 465), certificate verified.
    Implicit,
}

/// One `[[queue.route]]`: how mail for some domains leaves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Recipient domains this route is for; "*" matches every domain.
    pub domains: Vec<String>,
    /// Send through this host instead of the domains' MX hosts (a smart host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Port of `host`, or of the MX hosts; defaults to `queue.remote_port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: OutboundTls,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_username: Option<String>,
    /// Better kept in `auth_password_file`, which can be readable by the server only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_password_file: Option<PathBuf>,
    /// A client certificate and key (PEM) to present to the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
}

impl Queue {
    pub(crate) fn validate(&self, p: &mut Problems) {
        p.at_least_one("queue.concurrency", self.concurrency as u64);
        p.at_least_one("queue.per_domain_concurrency", self.per_domain_concurrency as u64);
        if self.retry_schedule.is_empty() || self.retry_schedule.iter().any(Duration::is_zero) {
            p.add("queue.retry_schedule", "needs at least one wait, each longer than 0s");
        }
        if self.remote_port == 0 {
            p.add("queue.remote_port", "must be a port number");
        }
        if self.lease < Duration::from_secs(1) {
            p.add("queue.lease", "must be at least 1s");
        }
        if let Some(ca) = &self.extra_ca_file {
            p.file_exists("queue.extra_ca_file", ca);
        }
        for (i, route) in self.route.iter().enumerate() {
            route.validate(&format!("queue.route[{i}]"), p);
        }
    }

    pub(crate) fn resolve_paths(&mut self, fix: impl Fn(&mut PathBuf)) {
        if let Some(p) = &mut self.extra_ca_file {
            fix(p);
        }
        for route in &mut self.route {
            for p in [&mut route.auth_password_file, &mut route.client_cert, &mut route.client_key].into_iter().flatten() {
                fix(p);
            }
        }
    }
}

impl Route {
    fn validate(&self, at: &str, p: &mut Problems) {
        let key = |k: &str| format!("{at}.{k}");
        if self.domains.is_empty() {
            p.add(key("domains"), "list at least one domain, or \"*\"");
        }
        if self.tls == OutboundTls::Implicit && self.host.is_none() {
            p.add(key("tls"), "\"implicit\" needs a smart host in `host`");
        }
        if self.auth_username.is_some() && self.auth_password.is_none() && self.auth_password_file.is_none() {
            p.add(key("auth_username"), "needs auth_password or auth_password_file");
        }
        if self.auth_username.is_some() && self.host.is_none() {
            p.add(key("auth_username"), "authentication is only for a smart host in `host`");
        }
        // Each problem names the key the file has, and says what it lacks.
        match (&self.client_cert, &self.client_key) {
            (Some(_), None) => p.add(key("client_cert"), "needs client_key"),
            (None, Some(_)) => p.add(key("client_key"), "needs client_cert"),
            _ => {}
        }
        for (k, file) in [
            ("auth_password_file", &self.auth_password_file),
            ("client_cert", &self.client_cert),
            ("client_key", &self.client_key),
        ] {
            if let Some(file) = file {
                p.file_exists(key(k), file);
            }
        }
    }
}
