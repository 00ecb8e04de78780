//! `[web]`: the web admin and self-service behind `[listener.https]`: sessions, two-factor
//! login, the name mail clients are told to use, and how often the dashboard's audit runs.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration;
use crate::section::Problems;

section! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Web {
        /// An admin without TOTP may only enroll it (every other admin request is refused until
        /// then). Users choose for themselves.
        pub require_2fa_for_admins: bool = true,
        /// A web session unused this long is over.
        #[serde(with = "duration")]
        pub session_idle_timeout: Duration = Duration::from_secs(30 * 60),
        /// A web session is over this long after login, used or not.
        #[serde(with = "duration")]
        pub session_max_age: Duration = Duration::from_secs(12 * 3600),
        /// Pause before answering a failed web login, so a guesser waits for each answer (the
        /// guard's failure counters and bans apply as to IMAP and SMTP logins).
        #[serde(with = "duration")]
        pub failure_delay: Duration = Duration::from_secs(1),
        /// The issuer name authenticator apps show beside the account; empty: server.hostname.
        pub totp_issuer: String = String::new(),
        /// How often the server runs `rampart audit`'s checks for the dashboard (also at
        /// start; an admin can ask for a run at any time). 0s: only when asked.
        #[serde(with = "duration")]
        pub audit_interval: Duration = Duration::from_secs(6 * 3600),
    }
}

impl Web {
    pub(crate) fn validate(&self, p: &mut Problems) {
        if self.session_idle_timeout < Duration::from_secs(60) {
            p.add("web.session_idle_timeout", "must be at least 1m");
        }
        if self.session_max_age < self.session_idle_timeout {
            p.add("web.session_max_age", "must be at least web.session_idle_timeout");
        }
        if self.failure_delay > Duration::from_secs(10) {
            p.add("web.failure_delay", "must be at most 10s");
        }
        // Each run makes dozens of DNS lookups: not a loop against the name servers.
        if !self.audit_interval.is_zero() && self.audit_interval < Duration::from_secs(600) {
            p.add("web.audit_interval", "must be 0s (only when asked) or at least 10m");
        }
    }
}
