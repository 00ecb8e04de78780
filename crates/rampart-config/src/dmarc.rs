//! `[dmarc]`: DMARC aggregate reports (RFC 7489 §7.2), the ones we send and the ones we take in.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::section::Problems;
use crate::{duration, is_hostname};

section! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Dmarc {
        /// Remember DMARC evaluations and send aggregate reports to domains that ask for them
        /// with rua=.
        pub send_reports: bool = true,
        /// How often reports go out (RFC 7489 §7.2.1.1: at least daily is expected).
        #[serde(with = "duration")]
        pub report_interval: Duration = Duration::from_secs(24 * 3600),
        /// Sender of the reports (From, and the report's contact); empty means
        /// noreply-dmarc@<server.hostname>.
        pub report_from: String = String::new(),
        /// Organization named in reports; empty means server.hostname.
        pub org_name: String = String::new(),
        /// A local address (with an account or alias) where other domains send their reports to
        /// us (publish it as rua= in your DMARC record); they are parsed and listed by
        /// `rampart dmarc reports`. Empty turns this off.
        pub report_address: String = String::new(),
    }
}

impl Dmarc {
    pub(crate) fn validate(&self, p: &mut Problems) {
        if self.report_interval < Duration::from_secs(60) {
            p.add("dmarc.report_interval", "must be at least 1m");
        }
        for (key, addr) in [("dmarc.report_from", &self.report_from), ("dmarc.report_address", &self.report_address)] {
            if !addr.is_empty() && !addr.split_once('@').is_some_and(|(l, d)| !l.is_empty() && is_hostname(d)) {
                p.add(key, format!("`{addr}` is not an address"));
            }
        }
    }
}
