//! `[guard]`: who may connect, how fast, and who gets banned. Every key here is re-read on
//! SIGHUP (the guard crate swaps its rules; counts and bans are kept).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::section::Problems;
use crate::{Cidr, duration};

const DAY: u64 = 24 * 3600;

section! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Guard {
        /// Never banned or rate limited (a webmail or proxy host, your office); `deny` still applies.
        pub allowlist: Vec<Cidr> = Vec::new(),
        /// Not held to the connection caps and rates, SMTP message and recipient rates or IMAP
        /// pacing, but still banned for failed logins: this host's own processes (local webmail,
        /// monitoring, test tools) connect often and fast, as Postfix exempts `mynetworks` from
        /// its client rate limits. Other loopback addresses (127.0.0.2, ...) are treated like anyone.
        pub limit_exceptions: Vec<Cidr> = vec![Cidr::literal("127.0.0.1/32"), Cidr::literal("::1/128")],
        /// When not empty, only these networks may connect to any listener.
        pub allow: Vec<Cidr> = Vec::new(),
        /// These networks may connect to no listener.
        pub deny: Vec<Cidr> = Vec::new(),
        /// Say "554 5.7.1" to a denied or banned SMTP client before closing; otherwise close
        /// silently. Never on implicit-TLS ports, where no clear-text byte may be sent.
        pub deny_banner: bool = true,
        /// Concurrent connections from one address.
        pub max_connections_per_ip: u32 = 20,
        /// Concurrent connections from one IPv4 /24 or IPv6 /64 (one customer's network).
        pub max_connections_per_net: u32 = 100,
        /// New connections per address per minute.
        pub connection_rate_per_ip: u32 = 60,
        /// TLS handshakes in progress at once; a handshake costs the server far more CPU than it
        /// costs the client. After a SIGHUP new handshakes count against the new cap at once.
        pub max_tls_handshakes: usize = 200,
        /// A client must finish its TLS handshake within this time.
        #[serde(with = "duration")]
        pub handshake_timeout: Duration = Duration::from_secs(10),
        /// SMTP messages accepted per address per hour; more get "451 4.7.0".
        pub smtp_messages_per_ip: u32 = 500,
        /// SMTP recipients accepted per address per hour; more get "451 4.7.0".
        pub smtp_recipients_per_ip: u32 = 2500,
        /// IMAP commands per session per second; faster clients are slowed to this pace.
        pub imap_commands_per_second: u32 = 50,
        /// Failed logins from one address within `failure_window` before it is banned.
        pub auth_failures_per_ip: u32 = 10,
        /// Failed logins from one IPv4 /24 or IPv6 /64 within `failure_window` before the network
        /// is banned.
        pub auth_failures_per_net: u32 = 30,
        /// Failed logins for one account within `failure_window` before only addresses that
        /// logged in to it before may try it, so its owner keeps access and the attackers do not.
        /// Counted in the store: nodes sharing a database add up each other's.
        pub auth_failures_per_account: u32 = 20,
        /// Refused recipients (unknown users, relay attempts) from one address within
        /// `failure_window` before it is banned.
        pub probes_per_ip: u32 = 20,
        /// Early talkers (see `pregreet_wait`) from one address within `failure_window` before it
        /// is banned.
        pub pregreet_per_ip: u32 = 3,
        /// The window the failure, probe and early-talker counts above are taken over.
        #[serde(with = "duration")]
        pub failure_window: Duration = Duration::from_secs(600),
        /// The first ban; each repeat offence doubles it, up to `max_ban_time`.
        #[serde(with = "duration")]
        pub ban_time: Duration = Duration::from_secs(3600),
        /// The longest ban a repeat offender gets.
        #[serde(with = "duration")]
        pub max_ban_time: Duration = Duration::from_secs(7 * DAY),
        /// How long an address stays "known" for an account after a successful login.
        #[serde(with = "duration")]
        pub known_login_ttl: Duration = Duration::from_secs(90 * DAY),
    }
}

impl Guard {
    pub(crate) fn validate(&self, p: &mut Problems) {
        for (key, v) in [
            ("max_connections_per_ip", self.max_connections_per_ip),
            ("max_connections_per_net", self.max_connections_per_net),
            ("connection_rate_per_ip", self.connection_rate_per_ip),
            ("smtp_messages_per_ip", self.smtp_messages_per_ip),
            ("smtp_recipients_per_ip", self.smtp_recipients_per_ip),
            ("imap_commands_per_second", self.imap_commands_per_second),
            ("auth_failures_per_ip", self.auth_failures_per_ip),
            ("auth_failures_per_net", self.auth_failures_per_net),
            ("auth_failures_per_account", self.auth_failures_per_account),
            ("probes_per_ip", self.probes_per_ip),
            ("pregreet_per_ip", self.pregreet_per_ip),
        ] {
            p.at_least_one(format!("guard.{key}"), v.into());
        }
        if self.max_connections_per_net < self.max_connections_per_ip {
            p.add("guard.max_connections_per_net", "must not be lower than guard.max_connections_per_ip");
        }
        p.at_least_one("guard.max_tls_handshakes", self.max_tls_handshakes as u64);
        for (key, d) in [
            ("handshake_timeout", self.handshake_timeout),
            ("failure_window", self.failure_window),
            ("ban_time", self.ban_time),
        ] {
            if d.is_zero() {
                p.add(format!("guard.{key}"), "must be longer than 0s");
            }
        }
        if self.max_ban_time < self.ban_time {
            p.add("guard.max_ban_time", "must not be shorter than guard.ban_time");
        }
    }
}
