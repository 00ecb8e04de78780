//! `[auth_checks]`: sender authentication of mail arriving on the MX listener (SPF, DKIM, ARC,
//! DMARC, iprev) and what a failure leads to.

use serde::{Deserialize, Serialize};

use crate::is_hostname;
use crate::section::Problems;

/// What to do with mail whose SPF check fails when no DMARC policy covers its From domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpfFail {
    /// Record it only.
    Accept,
    /// Deliver to Junk.
    Tag,
    /// Refuse with 550 5.7.23.
    Reject,
}

/// What to do when DNS fails while DMARC is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TempErrorAction {
    Accept,
    /// Answer 451 so the sender tries again.
    Defer,
}

section! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct AuthChecks {
        /// Run the checks at all.
        pub enabled: bool = true,
        /// The name in Authentication-Results (the authserv-id, RFC 8601 §2.5). Empty means
        /// server.hostname.
        pub authserv_id: String = String::new(),
        /// Forward-confirmed reverse DNS of the client (one PTR and one A/AAAA lookup), recorded,
        /// not used to refuse mail.
        pub iprev: bool = true,
        /// A message failing DMARC of a domain that publishes p=reject is refused with "550 5.7.1"
        /// at the end of DATA. Turned off, such mail is quarantined instead.
        pub dmarc_reject: bool = true,
        /// A message failing DMARC of a domain that publishes p=quarantine goes to Junk.
        pub dmarc_quarantine: bool = true,
        /// SPF fail where no DMARC policy covers the From domain: "tag" (to Junk), "reject"
        /// (550 5.7.23) or "accept" (record only). Not "reject" by default: forwarding breaks SPF
        /// (RFC 7208 appendix D).
        pub spf_fail: SpfFail = SpfFail::Tag,
        /// DNS errors while evaluating DMARC: "accept" the message, or "defer" it with 451.
        pub dns_temperror: TempErrorAction = TempErrorAction::Accept,
        /// ARC sealers (RFC 8617) trusted to vouch for mail they forwarded: their valid chain
        /// overrides a DMARC failure (RFC 7489 §6.7 local policy). List mailing-list and
        /// forwarder domains.
        pub trusted_arc_sealers: Vec<String> = Vec::new(),
    }
}

impl AuthChecks {
    pub(crate) fn validate(&self, p: &mut Problems) {
        if !self.authserv_id.is_empty() && !is_hostname(&self.authserv_id) {
            p.add("auth_checks.authserv_id", format!("`{}` is not a host name", self.authserv_id));
        }
        for domain in &self.trusted_arc_sealers {
            if !is_hostname(domain) {
                p.add("auth_checks.trusted_arc_sealers", format!("`{domain}` is not a domain name"));
            }
        }
    }
}
