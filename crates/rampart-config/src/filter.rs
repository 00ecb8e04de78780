//! `[filter]`: the content layer after sender authentication — DNS blocklists for client
//! addresses and for the domains a message names, the built-in spam scorer and its classifier,
//! greylisting, the quarantine, antivirus (clamd) and milters. Every finding is a trail entry;
//! the one `decide` weighs them (`rampart message why ID` shows them).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::section::Problems;
use crate::{Cidr, duration, is_hostname};

const DAY: u64 = 24 * 3600;

section! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Filter {
        /// DNS blocklists of client addresses (RFC 5782), asked once per connection (IPv4
        /// reversed, IPv6 as nibbles) and cached for the answers' TTL. None by default: most
        /// public lists need registration for commercial use. A listing adds `score`, or the
        /// score `codes` gives its answer; with `reject = true` a listed client is refused at
        /// RCPT with 554 5.7.1 naming the list (as Postfix's postscreen does). Answers in
        /// 127.255.255.0/24 mean the list refuses our queries, never "listed". For example:
        ///   [[filter.dnsbl]]
        ///   zone = "zen.spamhaus.org"
        ///   reject = true
        ///   [[filter.dnsbl]]
        ///   zone = "bl.example.net"
        ///   score = 3.0
        ///   codes = { "127.0.0.2" = 4.0, "127.0.0.4" = 1.5 }
        pub dnsbl: Vec<Dnsbl> = Vec::new(),
        /// Domain blocklists (URIBL / Spamhaus DBL style), asked as DOMAIN.ZONE for the
        /// registrable domain of every URL in the message's text and HTML, and of the From,
        /// Reply-To and envelope sender. None by default; entries as for dnsbl (zone, score,
        /// codes), for example:
        ///   [[filter.domainbl]]
        ///   zone = "dbl.example.net"
        ///   score = 5.0
        pub domainbl: Vec<Dnsbl> = Vec::new(),
        /// Most domain lookups per message (each domain against each list counts one); past it
        /// the rest are skipped and the trail says so.
        pub max_domain_lookups: usize = 50,
        /// The built-in spam scorer: rules with named scores and a classifier that learns from
        /// what users move into and out of Junk.
        pub spam: Spam = Spam::default(),
        /// Greylisting: a first message from an unknown (client network, sender, recipient)
        /// triplet is deferred with 451 4.7.1 until `delay` has passed; real servers retry,
        /// most spam software does not.
        pub greylist: Greylist = Greylist::default(),
        /// Held messages: stored as durably as delivered mail, listed by
        /// `rampart quarantine list`, released or deleted by an admin or their recipient.
        pub quarantine: Quarantine = Quarantine::default(),
        /// Antivirus: every message streamed to clamd (INSTREAM) before it is accepted.
        pub antivirus: Antivirus = Antivirus::default(),
        /// Milters (the Sendmail milter protocol, version 6): third-party filters such as
        /// Rspamd's proxy, DKIM or DLP tools, asked at the stages they negotiate. None by
        /// default; for example:
        ///   [[filter.milter]]
        ///   name = "rspamd"
        ///   address = "127.0.0.1:11332"     # or a Unix socket path
        ///   on_error = "tempfail"            # "accept" or "reject"
        ///   applies_to = "mx"                # "submission" or "both"
        pub milter: Vec<Milter> = Vec::new(),
    }
}

/// One DNS blocklist (`[[filter.dnsbl]]` or `[[filter.domainbl]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dnsbl {
    /// The list's DNS zone, e.g. `zen.spamhaus.org`.
    pub zone: String,
    /// Added to the spam score when listed (and the answer is not in `codes`).
    #[serde(default = "default_list_score")]
    pub score: f64,
    /// Scores for particular answers, e.g. { "127.0.0.2" = 4.0 }.
    #[serde(default)]
    pub codes: BTreeMap<String, f64>,
    /// Refuse a listed client instead of scoring it (client lists only).
    #[serde(default)]
    pub reject: bool,
}

fn default_list_score() -> f64 {
    3.0
}

section! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Spam {
        /// Score mail with the built-in rules and classifier. The trail of every message shows
        /// the rules that fired and their scores.
        pub enabled: bool = true,
        /// At this score or more, mail goes to the recipients' Junk folder.
        pub junk_score: f64 = 5.0,
        /// At this score or more, mail is held in the quarantine.
        pub quarantine_score: f64 = 10.0,
        /// At this score or more, mail is refused at the end of data with 550 5.7.1. The GTUBE
        /// test string always scores above it.
        pub reject_score: f64 = 15.0,
        /// Add an X-Spam-Status header with the score and the rules that fired.
        pub add_header: bool = true,
        /// Use the statistical classifier (per user, and globally).
        pub classifier: bool = true,
        /// The classifier scores only after learning this many spam and this many ham messages
        /// (it says so in the trail until then).
        pub min_learned: u32 = 200,
        /// Train the classifier when users move mail into Junk (spam) or out of it (ham) over IMAP.
        pub learn_from_imap: bool = true,
        /// Score mail that authenticated users submit too (rules and domain blocklists; a
        /// stolen password is the commonest source of spam from a server), and refuse it at
        /// `outbound_reject_score` with 554 5.7.1.
        pub scan_outbound: bool = true,
        /// The outbound threshold: lower than the inbound one, since our own users have no
        /// reason to send anything that looks like spam.
        pub outbound_reject_score: f64 = 10.0,
    }
}

section! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Greylist {
        /// Off by default: it delays first mail from every new correspondent by `delay`.
        pub enabled: bool = false,
        /// How long a new triplet is deferred before a retry is accepted.
        #[serde(with = "duration")]
        pub delay: Duration = Duration::from_secs(5 * 60),
        /// A triplet not retried within this long is forgotten (the sender must start over).
        #[serde(with = "duration")]
        pub retry_window: Duration = Duration::from_secs(2 * DAY),
        /// Clients and triplets that passed are remembered this long after their last message.
        #[serde(with = "duration")]
        pub expire: Duration = Duration::from_secs(35 * DAY),
        /// Never greylisted (networks of partners, large providers that retry from other addresses).
        pub allowlist: Vec<Cidr> = Vec::new(),
        /// A sender domain with this many messages that passed SPF or DKIM (aligned) and were
        /// accepted is not greylisted any more.
        pub good_history: u32 = 3,
    }
}

section! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Quarantine {
        /// Held messages are deleted after this long.
        #[serde(with = "duration")]
        pub retention: Duration = Duration::from_secs(30 * DAY),
        /// Send each user with held mail a daily list of it (sender, subject, date).
        pub digest: bool = false,
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VirusAction {
    /// Refuse with 554 5.7.1 naming the signature.
    #[default]
    Reject,
    /// Hold in the quarantine.
    Quarantine,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Defer with 451 4.7.1: nothing is accepted unchecked.
    #[default]
    Tempfail,
    /// Accept, tagged in the trail.
    Accept,
    /// Refuse with 554 5.7.1 (milters only).
    Reject,
}

section! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Antivirus {
        /// clamd's address: "127.0.0.1:3310" or a Unix socket path. Empty turns scanning off.
        pub clamd: String = String::new(),
        /// What to do with a message clamd finds a virus in: "reject" or "quarantine".
        pub action: VirusAction = VirusAction::Reject,
        /// When clamd cannot be asked: "tempfail" (451, the secure default) or "accept".
        pub on_error: OnError = OnError::Tempfail,
        /// Longest wait for clamd's answer.
        #[serde(with = "duration")]
        pub timeout: Duration = Duration::from_secs(30),
        /// Larger messages are not scanned (tagged in the trail). Keep it at or below clamd's
        /// StreamMaxLength, or clamd refuses the stream.
        pub max_size: u64 = 25 * 1024 * 1024,
        /// Scan mail that authenticated users submit, too.
        pub scan_outbound: bool = true,
    }
}

/// Where a milter runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AppliesTo {
    #[default]
    Mx,
    Submission,
    Both,
}

/// One `[[filter.milter]]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Milter {
    /// Named in the trail and the logs.
    pub name: String,
    /// "host:port" or a Unix socket path.
    pub address: String,
    /// The stages we offer it: connect, helo, mail, rcpt, header, body, eom (the milter may
    /// ask for fewer when options are negotiated).
    #[serde(default = "all_stages")]
    pub stages: Vec<String>,
    /// When the milter cannot be reached or does not answer in time.
    #[serde(default)]
    pub on_error: OnError,
    #[serde(default)]
    pub applies_to: AppliesTo,
    #[serde(default = "milter_connect_timeout", with = "duration")]
    pub connect_timeout: Duration,
    /// Longest wait for the answer to any one command.
    #[serde(default = "milter_command_timeout", with = "duration")]
    pub command_timeout: Duration,
    /// Longest wait for the end-of-message answer (where most milters do their work).
    #[serde(default = "milter_eom_timeout", with = "duration")]
    pub eom_timeout: Duration,
}

pub const MILTER_STAGES: [&str; 7] = ["connect", "helo", "mail", "rcpt", "header", "body", "eom"];

fn all_stages() -> Vec<String> {
    MILTER_STAGES.iter().map(|s| s.to_string()).collect()
}

fn milter_connect_timeout() -> Duration {
    Duration::from_secs(10)
}

fn milter_command_timeout() -> Duration {
    Duration::from_secs(30)
}

fn milter_eom_timeout() -> Duration {
    Duration::from_secs(120)
}

impl Filter {
    pub(crate) fn validate(&self, p: &mut Problems) {
        for (i, l) in self.dnsbl.iter().enumerate() {
            l.validate(&format!("filter.dnsbl[{i}]"), p);
        }
        for (i, l) in self.domainbl.iter().enumerate() {
            l.validate(&format!("filter.domainbl[{i}]"), p);
            if l.reject {
                p.add(format!("filter.domainbl[{i}].reject"), "domain lists only score; use a high score instead");
            }
        }
        let s = &self.spam;
        if !(s.junk_score <= s.quarantine_score && s.quarantine_score <= s.reject_score) {
            p.add("filter.spam", "junk_score <= quarantine_score <= reject_score must hold");
        }
        if self.greylist.enabled && self.greylist.retry_window <= self.greylist.delay {
            p.add("filter.greylist.retry_window", "must be longer than filter.greylist.delay");
        }
        p.at_least_one("filter.quarantine.retention", self.quarantine.retention.as_secs());
        p.at_least_one("filter.antivirus.timeout", self.antivirus.timeout.as_secs());
        let mut names = Vec::new();
        for (i, m) in self.milter.iter().enumerate() {
            let key = format!("filter.milter[{i}]");
            if m.name.is_empty() || names.contains(&&m.name) {
                p.add(format!("{key}.name"), "must be set and unique");
            }
            names.push(&m.name);
            if m.address.is_empty() {
                p.add(format!("{key}.address"), "must be host:port or a socket path");
            }
            for stage in &m.stages {
                if !MILTER_STAGES.contains(&stage.as_str()) {
                    p.add(format!("{key}.stages"), format!("unknown stage `{stage}` (one of {})", MILTER_STAGES.join(", ")));
                }
            }
        }
    }
}

impl Dnsbl {
    fn validate(&self, key: &str, p: &mut Problems) {
        if !is_hostname(&self.zone) {
            p.add(format!("{key}.zone"), format!("`{}` is not a DNS zone", self.zone));
        }
        for code in self.codes.keys() {
            if code.parse::<std::net::Ipv4Addr>().is_err() {
                p.add(format!("{key}.codes"), format!("`{code}` is not an IPv4 answer such as 127.0.0.2"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::Config;

    fn problems(sets: &[&str]) -> Vec<String> {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        let c = Config::from_toml("", &sets, Path::new("/etc/rampart")).unwrap();
        c.validate().iter().map(|e| e.to_string()).filter(|e| e.starts_with("filter")).collect()
    }

    #[test]
    fn lists_and_milters_are_checked_by_key() {
        assert!(problems(&[]).is_empty());
        let ok = r#"filter.dnsbl=[{zone = "zen.example", reject = true}, {zone = "bl.example", codes = {"127.0.0.2" = 4.0}}]"#;
        assert!(problems(&[ok]).is_empty(), "{:?}", problems(&[ok]));
        let bad = problems(&[r#"filter.dnsbl=[{zone = "not a zone", codes = {"x" = 1.0}}]"#]);
        assert!(bad.iter().any(|e| e.starts_with("filter.dnsbl[0].zone")), "{bad:?}");
        assert!(bad.iter().any(|e| e.starts_with("filter.dnsbl[0].codes")), "{bad:?}");
        let bad = problems(&[r#"filter.milter=[{name = "a", address = "127.0.0.1:1", stages = ["eoh"]}, {name = "a", address = ""}]"#]);
        assert!(bad.iter().any(|e| e.starts_with("filter.milter[0].stages")), "{bad:?}");
        assert!(bad.iter().any(|e| e.starts_with("filter.milter[1].name")), "{bad:?}");
        assert!(bad.iter().any(|e| e.starts_with("filter.milter[1].address")), "{bad:?}");
        let bad = problems(&["filter.spam.junk_score=20.0"]);
        assert!(bad.iter().any(|e| e.starts_with("filter.spam")), "{bad:?}");
        let c = Config::from_toml("", &[r#"filter.milter=[{name = "r", address = "/run/m.sock"}]"#.into()], Path::new("/")).unwrap();
        assert_eq!(c.filter.milter[0].stages.len(), 7);
        assert_eq!(c.filter.milter[0].on_error, crate::OnError::Tempfail);
    }
}
