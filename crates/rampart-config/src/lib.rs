//! Rampart's one configuration file, typed.
//!
//! - [`Config`] is the whole file, one module per `[section]`: its struct, each key's default
//!   and documentation in one [`section!`] declaration, and its validation beside it. A file
//!   only needs the keys it changes; `rampart init` writes them all with their documentation
//!   ([`template`], rendered from those declarations).
//! - Loading ([`load`]) merges the file over the defaults as TOML values, applies `--set`
//!   overrides to the same tree, then deserializes; a bad value names its key path.
//! - [`Config::validate`] asks every section for its problems and returns them all at once,
//!   each naming its key path.
//! - SIGHUP makes `rampart serve` re-read the file for `[tls]`, `[guard]` and the listeners'
//!   `allow`/`deny` lists; every other key is read at start only.

#![forbid(unsafe_code)]

#[macro_use]
mod section;

mod acme;
mod auth;
mod auth_checks;
mod cidr;
mod cluster;
mod containment;
mod dkim;
mod dmarc;
mod dns;
mod duration;
mod filter;
mod gateway;
mod guard;
mod limits;
mod listener;
mod load;
mod log;
mod mta_sts;
mod queue;
mod quota;
mod server;
mod smtp;
mod store;
mod encryption;
mod submission;
mod template;
mod tls;
mod web;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use acme::Acme;
pub use auth::Auth;
pub use auth_checks::{AuthChecks, SpfFail, TempErrorAction};
pub use cidr::Cidr;
pub use cluster::Cluster;
pub use containment::Containment;
pub use dkim::{Dkim, OpensslRsa};
pub use dmarc::Dmarc;
pub use dns::Dns;
pub use filter::{AppliesTo, Antivirus, Dnsbl, Filter, Greylist, MILTER_STAGES, Milter, OnError, Quarantine, Spam, VirusAction};
pub use gateway::{DownstreamTls, Gateway, GatewayRoute, split_host_port};
pub use guard::Guard;
pub use limits::{LimitOverride, Limits};
pub use listener::{ImapListener, Listeners, MetricsListener, SmtpListener, TlsMode, WebListener};
pub use load::apply_override;
pub use log::Log;
pub use mta_sts::{MtaSts, StsMode, TlsRpt};
pub use queue::{OutboundTls, Queue, Route};
pub use quota::{QUOTA_KEYS, Quota};
pub use server::Server;
pub use smtp::Smtp;
pub use store::{Store, StoreBackend};
pub use encryption::{Encryption, EncryptionMode};
pub use submission::Submission;
pub use template::template;
pub use tls::{SniCert, Tls};
pub use web::Web;

use section::Problems;

/// A configuration problem. Every variant names where it is: a file, a key path or a `--set`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("--set {arg}: {message}")]
    Override { arg: String, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid { key: key.into(), message: message.into() }
    }
}

section! {
    /// The whole file. Each field's doc is the comment above its `[section]` in the template.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Config {
        /// The server's name, where it keeps its data, and its overall connection cap.
        pub server: Server = Server::default(),
        /// Certificates. SIGHUP to `rampart serve` reloads them without dropping connections.
        /// Only TLS 1.2 and 1.3 with forward-secret (ECDHE) suites are offered, server order first.
        pub tls: Tls = Tls::default(),
        /// Certificates ordered from an ACME CA (Let's Encrypt by default) and renewed by
        /// themselves; `rampart cert acme NAME...` orders one now.
        pub acme: Acme = Acme::default(),
        /// Listeners. The names are fixed. Each has `bind` (a list of addresses; an empty list
        /// turns the listener off), `tls` ("starttls" or "implicit"), `allow` and `deny` (lists
        /// of networks, reloaded by SIGHUP), and its protocol's limits.
        pub listener: Listeners = Listeners::default(),
        /// The guard acts before any other layer: at connect (before TLS), then on every login,
        /// recipient and message. Addresses it bans are refused on every listener; bans survive
        /// restarts. See `rampart ban list`. SIGHUP reloads every key of this section; counts
        /// and bans are kept.
        pub guard: Guard = Guard::default(),
        /// SMTP behaviour shared by every SMTP listener.
        pub smtp: Smtp = Smtp::default(),
        /// Authentication: SASL mechanisms, password policy and hashing cost, failure pacing.
        pub auth: Auth = Auth::default(),
        /// Mail submitted by authenticated users (listeners `submission` and `submissions`).
        pub submission: Submission = Submission::default(),
        /// Sending quotas of authenticated users and their domains (fair use), with exceptions.
        pub quota: Quota = Quota::default(),
        /// Compromised-account containment: suspend an account's sending when what it does
        /// looks like a stolen password.
        pub containment: Containment = Containment::default(),
        /// The outbound queue: delivery to remote servers, retries and routes.
        pub queue: Queue = Queue::default(),
        /// Where mail and metadata are stored.
        pub store: Store = Store::default(),
        /// Several nodes sharing one store (`[store] backend = "postgres"`): this node's name.
        pub cluster: Cluster = Cluster::default(),
        /// The DNS resolvers the server asks (MX lookups, SPF, DKIM, DMARC, iprev).
        pub dns: Dns = Dns::default(),
        /// Sender authentication of mail arriving on the MX listener: SPF (RFC 7208) for the HELO
        /// and MAIL FROM identities, DKIM (RFC 6376) for every signature, ARC (RFC 8617), DMARC
        /// (RFC 7489) and iprev. Every message gets exactly one Authentication-Results header
        /// (RFC 8601) with our authserv-id; incoming ones that claim it are removed. Each result
        /// is in the message's verdict trail: `rampart message why ID`.
        pub auth_checks: AuthChecks = AuthChecks::default(),
        /// DKIM signing (RSA-SHA256 and Ed25519, relaxed/relaxed; From, To, Subject and Date
        /// oversigned) of mail that authenticated users submit, when the From domain has keys in
        /// the signing table:
        ///   rampart dkim keygen example.org --selector s2026 --algorithm rsa   (prints the TXT record)
        /// A second key of an algorithm waits until `rampart dkim activate DOMAIN SELECTOR`
        /// (rotation: publish the new record first; keep the old one published until mail signed
        /// with it is read).
        pub dkim: Dkim = Dkim::default(),
        /// DMARC aggregate reports (RFC 7489 §7.2) to domains that ask for them with rua=. Every
        /// evaluation is kept until the next run; reports to addresses outside the domain are
        /// sent only when that domain authorizes it (RFC 7489 §7.1).
        pub dmarc: Dmarc = Dmarc::default(),
        /// Exceptions to the listeners' message limits for particular senders.
        pub limits: Limits = Limits::default(),
        /// Content filters: DNS blocklists, the spam scorer and its classifier, greylisting,
        /// the quarantine, antivirus and milters. Their findings are trail entries with scores;
        /// the summed score decides Junk, quarantine or refusal.
        pub filter: Filter = Filter::default(),
        /// Gateway mode: filter mail for domains whose mailboxes are on another server, relay
        /// it there, and relay that server's mail out.
        pub gateway: Gateway = Gateway::default(),
        /// The web admin, user self-service and JSON API (`/api/v1/`) on `[listener.https]`.
        /// SIGHUP reloads every key of this section; sessions are kept.
        pub web: Web = Web::default(),
        /// Logging.
        pub log: Log = Log::default(),
        /// MTA-STS (RFC 8461): the policy published for our domains, and outbound delivery under
        /// other domains' policies and DANE (RFC 7672).
        pub mta_sts: MtaSts = MtaSts::default(),
        /// TLS reporting (RFC 8460): reports about our outbound TLS sessions, and reports received.
        pub tlsrpt: TlsRpt = TlsRpt::default(),
    }
}

impl Config {
    /// The SMTP listeners by their fixed names.
    pub fn smtp_listeners(&self) -> [(&'static str, &SmtpListener); 3] {
        self.listener.smtp_listeners()
    }

    /// The IMAP listeners by their fixed names.
    pub fn imap_listeners(&self) -> [(&'static str, &ImapListener); 2] {
        self.listener.imap_listeners()
    }

    /// The web listeners by their fixed names.
    pub fn web_listeners(&self) -> [(&'static str, &WebListener); 2] {
        self.listener.web_listeners()
    }

    /// Every problem in the configuration, each naming its key. Empty means valid.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut problems = Problems::default();
        self.server.validate(&mut problems);
        self.tls.validate(&mut problems);
        self.acme.validate(&mut problems);
        self.listener.validate(&mut problems);
        self.guard.validate(&mut problems);
        self.smtp.validate(&mut problems);
        self.auth.validate(&mut problems);
        self.web.validate(&mut problems);
        self.submission.validate(&mut problems);
        self.quota.validate(&mut problems);
        self.store.encryption.validate(&mut problems);
        self.store.validate(&mut problems);
        self.cluster.validate(&mut problems);
        self.containment.validate(&mut problems);
        self.queue.validate(&mut problems);
        self.auth_checks.validate(&mut problems);
        self.dmarc.validate(&mut problems);
        self.filter.validate(&mut problems);
        self.limits.validate(&mut problems);
        self.gateway.validate(&mut problems);
        self.mta_sts.validate(&mut problems);
        self.tlsrpt.validate(&mut problems);
        problems.into_vec()
    }
}

/// A DNS host name: labels of letters, digits and hyphens (RFC 1123), at most 253 bytes.
pub fn is_hostname(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// A duration as the config writes it (`1h`, `90days`), for messages that name a setting.
pub fn duration_text(d: std::time::Duration) -> String {
    duration::format(d)
}

/// A key as TOML writes it: bare when it can be, quoted otherwise (`"bob@example.org"`).
fn quoted_key(key: &str) -> String {
    let bare = !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare { key.to_string() } else { toml::Value::String(key.to_string()).to_string() }
}

#[cfg(test)]
mod tests;
