//! `[gateway]`: Rampart as a filtering gateway in front of another mail server (the
//! downstream: Exchange, Dovecot, Axigen, another Rampart). Mail for a route's domains passes
//! the whole inbound pipeline and is relayed to the downstream through the durable queue; the
//! downstream's own outbound mail may relay out through us.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::section::Problems;
use crate::{Cidr, duration, is_hostname};

section! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Gateway {
        /// Routes: domains whose mailboxes live on another server (the downstream). None by
        /// default. Mail for them passes every inbound check (guard, DNSBL, SPF/DKIM/DMARC/ARC,
        /// greylisting, spam scorer, antivirus, milters), then is queued to `downstream` with
        /// our Authentication-Results, Received and X-Rampart-Trail headers. Recipients are
        /// accepted only when they are known: from `valid_recipients` (`*@domain` for all),
        /// `recipients_file` (one address per line, re-read when it changes) and/or
        /// `callout = true` (a RCPT probe to the downstream with the null sender; answers are
        /// cached; a downstream that does not answer means 451 4.4.3, never "accept"). Clients
        /// in `relay_from` (the downstream's addresses) may relay mail out through the MX
        /// listener when MAIL FROM is in the route's domains (or `<>`): it is DKIM-signed when
        /// the From domain has keys (`rampart dkim keygen DOMAIN`), scanned as submitted mail
        /// is (`scan_outbound` of filter.spam and filter.antivirus), and queued for MX
        /// delivery. For example:
        ///   [[gateway.route]]
        ///   domains = ["corp.example"]
        ///   downstream = "10.0.0.5:25"
        ///   tls = "require"                   # or "opportunistic"
        ///   callout = true
        ///   callout_cache_positive = "1day"   # how long a "yes" is remembered
        ///   callout_cache_negative = "1h"     # ... and a "no"
        ///   callout_timeout = "20s"
        ///   valid_recipients = ["postmaster@corp.example"]
        ///   recipients_file = "gateway/corp-recipients.txt"
        ///   relay_from = ["10.0.0.5"]
        ///   client_cert = "tls/gateway.pem"   # optional, with client_key
        ///   client_key = "tls/gateway.key"
        ///   auth_username = "gateway"         # optional, with auth_password_file
        ///   auth_password_file = "secrets/downstream"
        pub route: Vec<GatewayRoute> = Vec::new(),
    }
}

/// How the gateway talks to a downstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DownstreamTls {
    /// STARTTLS must be offered and succeed (the certificate is not checked: downstreams
    /// usually have internal ones); never in clear.
    #[default]
    Require,
    /// STARTTLS when offered.
    Opportunistic,
}

/// One `[[gateway.route]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayRoute {
    /// The domains whose mail goes to `downstream`; not local domains of this server.
    pub domains: Vec<String>,
    /// The downstream server: "host:port" ("[2001:db8::5]:25" for an IPv6 address).
    pub downstream: String,
    #[serde(default)]
    pub tls: DownstreamTls,
    /// A client certificate and key (PEM) to present to the downstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<PathBuf>,
    /// AUTH PLAIN to the downstream (inside TLS) when relaying; the password from a file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_password_file: Option<PathBuf>,
    /// Known recipients: addresses, or `*@domain` for every address of a domain.
    #[serde(default)]
    pub valid_recipients: Vec<String>,
    /// A file of known recipients, one per line (`#` comments, `*@domain` allowed); re-read
    /// when it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipients_file: Option<PathBuf>,
    /// Ask the downstream about recipients the list and file do not name.
    #[serde(default)]
    pub callout: bool,
    /// How long a recipient the downstream accepted is remembered.
    #[serde(default = "day", with = "duration")]
    pub callout_cache_positive: Duration,
    /// How long a recipient the downstream refused is remembered.
    #[serde(default = "hour", with = "duration")]
    pub callout_cache_negative: Duration,
    /// Longest a callout may take (connect, TLS, MAIL, RCPT); past it the client gets 451.
    #[serde(default = "callout_timeout", with = "duration")]
    pub callout_timeout: Duration,
    /// The downstream's addresses (networks), allowed to relay mail out through us.
    #[serde(default)]
    pub relay_from: Vec<Cidr>,
}

fn day() -> Duration {
    Duration::from_secs(24 * 3600)
}

fn hour() -> Duration {
    Duration::from_secs(3600)
}

fn callout_timeout() -> Duration {
    Duration::from_secs(20)
}

/// `host:port` split, with an IPv6 address in brackets; None when it is not that shape.
pub fn split_host_port(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let host = match host.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']')?.parse::<std::net::Ipv6Addr>().ok()?.to_string(),
        None if host.contains(':') => return None,
        None => host.to_string(),
    };
    let port: u16 = port.parse().ok().filter(|p| *p != 0)?;
    let valid = host.parse::<std::net::IpAddr>().is_ok() || is_hostname(&host);
    valid.then_some((host, port))
}

impl Gateway {
    pub(crate) fn validate(&self, p: &mut Problems) {
        let mut seen: Vec<String> = Vec::new();
        for (i, route) in self.route.iter().enumerate() {
            let at = format!("gateway.route[{i}]");
            route.validate(&at, p);
            for d in &route.domains {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                if seen.contains(&d) {
                    p.add(format!("{at}.domains"), format!("{d} is already in an earlier route"));
                }
                seen.push(d);
            }
        }
    }

    pub(crate) fn resolve_paths(&mut self, fix: impl Fn(&mut PathBuf)) {
        for r in &mut self.route {
            for p in [&mut r.client_cert, &mut r.client_key, &mut r.auth_password_file, &mut r.recipients_file].into_iter().flatten() {
                fix(p);
            }
        }
    }
}

impl GatewayRoute {
    /// Whether `domain` (any case, trailing dot or not) is one of the route's.
    pub fn has_domain(&self, domain: &str) -> bool {
        let domain = domain.trim_end_matches('.');
        self.domains.iter().any(|d| d.trim_end_matches('.').eq_ignore_ascii_case(domain))
    }

    fn validate(&self, at: &str, p: &mut Problems) {
        let key = |k: &str| format!("{at}.{k}");
        if self.domains.is_empty() {
            p.add(key("domains"), "list at least one domain");
        }
        for d in &self.domains {
            if !is_hostname(d) {
                p.add(key("domains"), format!("`{d}` is not a domain name (no wildcards here)"));
            }
        }
        if split_host_port(&self.downstream).is_none() {
            p.add(key("downstream"), format!("`{}` is not \"host:port\"", self.downstream));
        }
        if self.valid_recipients.is_empty() && self.recipients_file.is_none() && !self.callout {
            p.add(
                key("valid_recipients"),
                "say how recipients are known: valid_recipients, recipients_file or callout = true (accepting every address means bouncing later)",
            );
        }
        for r in &self.valid_recipients {
            if let Err(why) = self.check_pattern(r) {
                p.add(key("valid_recipients"), why);
            }
        }
        p.at_least_one(key("callout_timeout"), self.callout_timeout.as_secs());
        for net in &self.relay_from {
            if net.0.prefix_len() == 0 {
                p.add(key("relay_from"), format!("{net} would let everyone relay; list the downstream's addresses"));
            }
        }
        match (&self.client_cert, &self.client_key) {
            (Some(_), None) => p.add(key("client_cert"), "needs client_key"),
            (None, Some(_)) => p.add(key("client_key"), "needs client_cert"),
            _ => {}
        }
        match (&self.auth_username, &self.auth_password_file) {
            (Some(_), None) => p.add(key("auth_username"), "needs auth_password_file"),
            (None, Some(_)) => p.add(key("auth_password_file"), "needs auth_username"),
            _ => {}
        }
        for (k, file) in [
            ("client_cert", &self.client_cert),
            ("client_key", &self.client_key),
            ("auth_password_file", &self.auth_password_file),
            ("recipients_file", &self.recipients_file),
        ] {
            if let Some(file) = file {
                p.file_exists(key(k), file);
            }
        }
    }

    /// A `valid_recipients` entry: `local@domain` or `*@domain`, in one of the route's domains.
    fn check_pattern(&self, pattern: &str) -> Result<(), String> {
        let Some((local, domain)) = pattern.rsplit_once('@') else {
            return Err(format!("`{pattern}` is not an address or *@domain"));
        };
        if local.is_empty() || (local.contains('*') && local != "*") {
            return Err(format!("`{pattern}`: the local part is an address's or a lone *"));
        }
        if !self.has_domain(domain) {
            return Err(format!("`{pattern}` is not in this route's domains"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::Config;

    fn problems(sets: &[&str]) -> Vec<String> {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        let c = Config::from_toml("", &sets, Path::new("/etc/rampart")).unwrap();
        c.validate().iter().map(|e| e.to_string()).filter(|e| e.starts_with("gateway")).collect()
    }

    #[test]
    fn host_and_port() {
        use super::split_host_port as s;
        assert_eq!(s("10.0.0.5:25"), Some(("10.0.0.5".into(), 25)));
        assert_eq!(s("mail.corp.example:2525"), Some(("mail.corp.example".into(), 2525)));
        assert_eq!(s("[2001:db8::5]:25"), Some(("2001:db8::5".into(), 25)));
        for bad in ["10.0.0.5", "2001:db8::5:25", "host:0", "host:x", ":25", "bad host:25", "[nope]:25"] {
            assert_eq!(s(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_key_is_checked_by_path() {
        assert!(problems(&[]).is_empty());
        let ok = r#"gateway.route=[{domains = ["corp.test"], downstream = "127.0.0.1:25", callout = true,
            valid_recipients = ["*@corp.test", "a@CORP.test"], relay_from = ["10.0.0.0/24"]}]"#;
        assert!(problems(&[ok]).is_empty(), "{:?}", problems(&[ok]));
        let bad = problems(&[r#"gateway.route=[
            {domains = [], downstream = "nowhere", relay_from = ["0.0.0.0/0"], callout_timeout = "0s",
             client_cert = "/no/cert.pem", auth_username = "gw"},
            {domains = ["*.corp.test"], downstream = "h:25", valid_recipients = ["x@else.test", "a*b@corp.test", "plain"],
             client_key = "k.pem", auth_password_file = "pw", recipients_file = "/no/file"},
            {domains = ["dup.test"], downstream = "h:25", callout = true},
            {domains = ["DUP.test"], downstream = "h:25", callout = true}]"#]);
        for key in [
            "gateway.route[0].domains: list",
            "gateway.route[0].downstream",
            "gateway.route[0].valid_recipients: say how",
            "gateway.route[0].relay_from",
            "gateway.route[0].callout_timeout",
            "gateway.route[0].client_cert: needs client_key",
            "gateway.route[0].client_cert: file",
            "gateway.route[0].auth_username",
            "gateway.route[1].domains: `*.corp.test`",
            "gateway.route[1].valid_recipients: `x@else.test`",
            "gateway.route[1].valid_recipients: `a*b@corp.test`",
            "gateway.route[1].valid_recipients: `plain`",
            "gateway.route[1].client_key: needs client_cert",
            "gateway.route[1].auth_password_file: needs",
            "gateway.route[1].recipients_file: file",
            "gateway.route[3].domains: dup.test is already",
        ] {
            assert!(bad.iter().any(|e| e.starts_with(key)), "{key} not in {bad:#?}");
        }
        let c = Config::from_toml("", &[r#"gateway.route=[{domains = ["c.test"], downstream = "h:25", callout = true, recipients_file = "r.txt"}]"#.into()], Path::new("/etc/rampart")).unwrap();
        let r = &c.gateway.route[0];
        assert_eq!((r.tls, r.callout_cache_positive.as_secs(), r.callout_cache_negative.as_secs()), (super::DownstreamTls::Require, 86400, 3600));
        assert_eq!(r.recipients_file.as_deref(), Some(Path::new("/etc/rampart/r.txt")));
    }
}
