//! `[containment]`: noticing a taken-over account by what it does, and stopping its sending.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration;
use crate::section::Problems;

section! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Containment {
        /// Score what each authenticated account does over a sliding `window` (kept in the
        /// store) and suspend its sending when the score reaches `threshold`: new submissions get
        /// "554 5.7.1" naming the suspension, its queued mail is held (neither delivered nor
        /// bounced), IMAP keeps working, and the user and the administrator get a mail, the log
        /// an `event=account_suspended` line. Accounts on the quota exception list are never
        /// suspended. `rampart user list` shows who is suspended; `rampart user resume ADDRESS`
        /// ends it (evidence from before no longer counts); `rampart queue release` or
        /// `rampart queue delete` decide about the held mail.
        pub enabled: bool = true,
        /// The sliding window the signals below are scored over.
        #[serde(with = "duration")]
        pub window: Duration = Duration::from_secs(3600),
        /// The score at which sending is suspended.
        pub threshold: f64 = 10.0,
        /// Points for each transaction refused for a sending quota ("451 4.7.1" at MAIL, or at
        /// RCPT however many recipients it refused).
        pub quota_hit: f64 = 1.0,
        /// Points for each submitted message refused for its content: spam score, malware, a
        /// milter's refusal.
        pub outbound_refused: f64 = 4.0,
        /// Points when remote servers refused (permanently) at least `bounce_min` recipients in
        /// the window, and at least `bounce_share` of the outside recipients it sent to in it.
        pub bounces: f64 = 10.0,
        /// See `bounces`.
        pub bounce_min: u64 = 10,
        /// See `bounces` (0.5: half of them).
        pub bounce_share: f64 = 0.5,
        /// Points when the account sent to at least `many_recipients_min` different recipients
        /// outside our domains in the window.
        pub many_recipients: f64 = 5.0,
        /// See `many_recipients`.
        pub many_recipients_min: u64 = 300,
        /// Points when the account logged in from at least `login_networks_min` different
        /// networks (IPv4 /24, IPv6 /64) in the window.
        pub login_networks: f64 = 5.0,
        /// See `login_networks`.
        pub login_networks_min: u64 = 4,
        /// Points when, after a login from a network (IPv4 /24, IPv6 /64) never seen for the
        /// account (it had logged in from others before), it sent at least
        /// `new_network_burst_min` messages in the window (counted in 5-minute steps).
        pub new_network_burst: f64 = 8.0,
        /// See `new_network_burst`.
        pub new_network_burst_min: u64 = 30,
        /// Who is told about a suspension besides the user; empty for postmaster@ the account's
        /// own domain.
        pub admin_address: String = String::new(),
    }
}

impl Containment {
    pub(crate) fn validate(&self, p: &mut Problems) {
        if self.window.as_secs() < 60 {
            p.add("containment.window", "must be at least 1m");
        }
        if self.threshold.is_nan() || self.threshold <= 0.0 {
            p.add("containment.threshold", "must be above 0");
        }
        for (key, v) in [
            ("quota_hit", self.quota_hit),
            ("outbound_refused", self.outbound_refused),
            ("bounces", self.bounces),
            ("many_recipients", self.many_recipients),
            ("login_networks", self.login_networks),
            ("new_network_burst", self.new_network_burst),
        ] {
            if v.is_nan() || v < 0.0 {
                p.add(format!("containment.{key}"), "must not be negative");
            }
        }
        if self.bounce_share.is_nan() || self.bounce_share <= 0.0 || self.bounce_share > 1.0 {
            p.add("containment.bounce_share", "must be above 0 and at most 1");
        }
        if !self.admin_address.is_empty() && !self.admin_address.contains('@') {
            p.add("containment.admin_address", "must be an address");
        }
    }
}
