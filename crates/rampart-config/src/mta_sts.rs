//! `[mta_sts]` and `[tlsrpt]`: the MTA-STS policy we publish for our domains (RFC 8461), how
//! outbound delivery applies other domains' policies and DANE (RFC 7672), and TLS reports
//! (RFC 8460), the ones we send and the ones we take in.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::section::Problems;
use crate::{duration, is_hostname};

/// RFC 8461 §3.2: max_age is at most 31557600 seconds (one year).
const MAX_AGE_LIMIT: Duration = Duration::from_secs(31_557_600);

/// The `mode` of a published MTA-STS policy (RFC 8461 §3.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StsMode {
    /// Senders drop any policy they cached (RFC 8461 §8.3: how a policy is withdrawn).
    None,
    /// Senders deliver as before and report failures (TLS-RPT).
    #[default]
    Testing,
    /// Senders refuse MX hosts that do not match the policy or lack a valid certificate.
    Enforce,
}

section! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct MtaSts {
        /// The policy served for every local domain at
        /// https://mta-sts.DOMAIN/.well-known/mta-sts.txt on `[listener.https]` (it needs a
        /// certificate for mta-sts.DOMAIN): "testing", "enforce" or "none" (withdraws a policy
        /// senders cached). `rampart dns records` prints the `_mta-sts` TXT record, whose id
        /// changes when the policy does.
        pub mode: StsMode = StsMode::Testing,
        /// How long senders may cache the policy (RFC 8461 §3.2; at most one year).
        #[serde(with = "duration")]
        pub max_age: Duration = Duration::from_secs(7 * 24 * 3600),
        /// The MX host names the policy allows (`*.example.org` matches one label); empty means
        /// server.hostname.
        pub mx: Vec<String> = Vec::new(),
        /// Outbound: fetch and apply each destination domain's MTA-STS policy, and its DANE TLSA
        /// records. Under either, an MX whose certificate does not validate is not used and the
        /// message waits rather than going out in clear. Routes with a smart host skip both.
        pub outbound: bool = true,
        /// Port of the remote policy hosts (443 in the real world; tests point it elsewhere).
        pub policy_port: u16 = 443,
        /// Longest wait for a remote policy fetch (connect, TLS and the whole body).
        #[serde(with = "duration")]
        pub fetch_timeout: Duration = Duration::from_secs(20),
        /// Outbound DANE (RFC 7672): look up each MX host's TLSA records with DNSSEC validation
        /// (in this process, from `dane_trust_anchor` or the root's keys down); a secure record
        /// set decides the certificate check instead of MTA-STS and the trust anchors, and a
        /// host whose certificate does not match, or whose TLSA answer is bogus or fails
        /// (SERVFAIL), is not used: the message waits. DANE applies only to hosts named by a
        /// secure MX RRset and with secure address records (§2.2.1, §2.2.2); unsigned domains
        /// go on as without it.
        /// On by default: before using DANE the server checks that the name servers in `[dns]`
        /// pass DNSSEC records (the trust anchor's DNSKEY set must validate). Behind a resolver
        /// that strips them DANE stays off, with one `dane_unavailable` warning, and mail goes
        /// on as without it; once the check has passed DANE stays on until restart, so DNSSEC
        /// records blocked later make mail wait rather than lose its protection.
        pub dane: bool = true,
        /// DNSSEC trust anchor for DANE TLSA lookups: a file of DNSKEY records in zone-file form.
        /// None means the root zone's (IANA) built into the resolver; tests point it at a test
        /// zone's key; for example:
        ///   dane_trust_anchor = "tls/test-zone.ds"
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub dane_trust_anchor: Option<PathBuf> = None,
    }
}

section! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct TlsRpt {
        /// Record the outcome of every outbound TLS session per policy domain and send the daily
        /// TLS report (RFC 8460, gzipped JSON) to the rua= of `_smtp._tls.DOMAIN`: by mail to
        /// mailto: ones, by HTTPS POST to https: ones (trusting what MX hosts are trusted by).
        pub send_reports: bool = true,
        /// How often reports go out (RFC 8460 §4.1: daily).
        #[serde(with = "duration")]
        pub report_interval: Duration = Duration::from_secs(24 * 3600),
        /// Sender of the reports; empty means noreply-tlsrpt@<server.hostname>.
        pub report_from: String = String::new(),
        /// Organization named in reports; empty means server.hostname.
        pub org_name: String = String::new(),
        /// A local address (with an account or alias) where other servers send TLS reports about
        /// our domains: `rampart dns records` publishes it as rua= of `_smtp._tls`, and reports
        /// arriving there are parsed and listed by `rampart tlsrpt reports`. Empty means
        /// postmaster@DOMAIN in the record and no parsing.
        pub report_address: String = String::new(),
    }
}

impl MtaSts {
    /// The policy file served for every local domain (RFC 8461 §3.2), CRLF line ends.
    pub fn policy_text(&self, hostname: &str) -> String {
        let mode = match self.mode {
            StsMode::None => "none",
            StsMode::Testing => "testing",
            StsMode::Enforce => "enforce",
        };
        let mut text = format!("version: STSv1\r\nmode: {mode}\r\n");
        let host = [hostname.to_string()];
        let mx = if self.mx.is_empty() { &host[..] } else { &self.mx[..] };
        for m in mx {
            text.push_str(&format!("mx: {}\r\n", m.trim_end_matches('.').to_ascii_lowercase()));
        }
        text.push_str(&format!("max_age: {}\r\n", self.max_age.as_secs()));
        text
    }

    /// The `id` of the `_mta-sts` TXT record (§3.1: 1 to 32 letters and digits): a digest of
    /// the policy, so it changes exactly when the policy does and senders fetch it again.
    pub fn policy_id(&self, hostname: &str) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(self.policy_text(hostname).as_bytes());
        digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
    }

    pub(crate) fn validate(&self, p: &mut Problems) {
        if self.max_age > MAX_AGE_LIMIT || self.max_age.is_zero() {
            p.add("mta_sts.max_age", "must be between 1s and one year (RFC 8461 §3.2)");
        }
        for mx in &self.mx {
            if !is_hostname(mx.strip_prefix("*.").unwrap_or(mx)) {
                p.add("mta_sts.mx", format!("`{mx}` is not a host name"));
            }
        }
        if self.policy_port == 0 {
            p.add("mta_sts.policy_port", "must be a port number");
        }
        if self.fetch_timeout.is_zero() {
            p.add("mta_sts.fetch_timeout", "must be longer than 0s");
        }
        if let Some(f) = &self.dane_trust_anchor {
            p.file_exists("mta_sts.dane_trust_anchor", f);
        }
    }

    pub(crate) fn resolve_paths(&mut self, fix: impl Fn(&mut PathBuf)) {
        if let Some(f) = &mut self.dane_trust_anchor {
            fix(f);
        }
    }
}

impl TlsRpt {
    pub(crate) fn validate(&self, p: &mut Problems) {
        if self.report_interval < Duration::from_secs(60) {
            p.add("tlsrpt.report_interval", "must be at least 1m");
        }
        for (key, addr) in [("tlsrpt.report_from", &self.report_from), ("tlsrpt.report_address", &self.report_address)] {
            if !addr.is_empty() && !addr.split_once('@').is_some_and(|(l, d)| !l.is_empty() && is_hostname(d)) {
                p.add(key, format!("`{addr}` is not an address"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_and_its_id() {
        let mut c = MtaSts::default();
        assert_eq!(c.policy_text("MX.example.test"), "version: STSv1\r\nmode: testing\r\nmx: mx.example.test\r\nmax_age: 604800\r\n");
        let id = c.policy_id("mx.example.test");
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(id, c.policy_id("mx.example.test"), "the same policy keeps its id");
        c.mode = StsMode::Enforce;
        c.mx = vec!["mx1.example.test".into(), "*.mail.example.test".into()];
        assert!(c.policy_text("mx.example.test").contains("mode: enforce\r\nmx: mx1.example.test\r\nmx: *.mail.example.test\r\n"));
        assert_ne!(id, c.policy_id("mx.example.test"), "a changed policy gets a new id");
    }
}
