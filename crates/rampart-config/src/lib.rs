//! Rampart's one configuration file, typed.
//!
//! - [`Config`] is the whole file. Every key has a default ([`Config::default`]); a file only
//!   needs the keys it changes, and `rampart init` writes them all with their documentation
//!   ([`template`]).
//! - Loading merges the file over the defaults as TOML *values* first and deserializes second,
//!   so role-specific defaults (the `submissions` listener is implicit TLS, `submission` is
//!   STARTTLS) survive a table that sets only `bind`. `--set key.path=VALUE` overrides are
//!   applied to the same value tree ([`apply_override`]).
//! - [`Config::validate`] returns every problem at once, each naming its key path.

mod cidr;
mod duration;
mod template;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use cidr::Cidr;
pub use template::template;

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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: Server,
    pub tls: Tls,
    pub listener: Listeners,
    pub guard: Guard,
    pub smtp: Smtp,
    pub auth: Auth,
    pub submission: Submission,
    pub queue: Queue,
    pub store: Store,
    pub dns: Dns,
    pub auth_checks: AuthChecks,
    pub dkim: Dkim,
    pub dmarc: Dmarc,
    pub log: Log,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// The name this server gives in banners, EHLO and Received headers; the MX target.
    pub hostname: String,
    /// Where the store lives. Relative paths are relative to the config file's directory.
    pub data_dir: PathBuf,
    /// Concurrent connections over all listeners together; each listener has its own cap too.
    pub max_connections: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tls {
    /// PEM certificate chain served when no `sni` entry matches.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, SEC1 or PKCS#1) for `cert`.
    pub key: PathBuf,
    /// More certificates, chosen by the name the client asks for (SNI).
    pub sni: Vec<SniCert>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SniCert {
    pub hostname: String,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain TCP; the client upgrades with STARTTLS (SMTP: RFC 3207, IMAP: RFC 3501 §6.2.1).
    Starttls,
    /// TLS from the first byte (RFC 8314).
    Implicit,
}

impl std::fmt::Display for TlsMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TlsMode::Starttls => "starttls",
            TlsMode::Implicit => "implicit",
        })
    }
}

/// The listener names are fixed: users' scripts and tests rely on them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listeners {
    pub smtp: SmtpListener,
    pub submission: SmtpListener,
    pub submissions: SmtpListener,
    pub imap: ImapListener,
    pub imaps: ImapListener,
    /// Prometheus metrics over HTTP (`GET /metrics`); loopback by default.
    pub metrics: MetricsListener,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsListener {
    pub bind: Vec<SocketAddr>,
}

impl Listeners {
    pub const NAMES: [&'static str; 5] = ["smtp", "submission", "submissions", "imap", "imaps"];
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpListener {
    /// Addresses to listen on; an empty list turns the listener off.
    pub bind: Vec<SocketAddr>,
    pub tls: TlsMode,
    /// When not empty, only clients in these networks may connect to this listener.
    pub allow: Vec<Cidr>,
    /// Clients in these networks are turned away at connect.
    pub deny: Vec<Cidr>,
    /// Hold the greeting this long and refuse clients that talk first (early talkers are
    /// spam bots; RFC 5321 §4.3.1 says a client waits for the greeting). Passing clients are
    /// remembered for a day, so they wait only once. 0s turns it off.
    #[serde(with = "duration")]
    pub pregreet_wait: Duration,
    /// A command line must arrive whole within this time; stops clients that trickle bytes
    /// to hold a connection (slow loris) while never hitting `idle_timeout`.
    #[serde(with = "duration")]
    pub line_timeout: Duration,
    /// Concurrent connections on this listener; past it new clients get `421` and are closed.
    pub max_connections: usize,
    /// Longest command line in bytes with CRLF. RFC 5321 §4.5.3.1.4 asks for at least 512;
    /// extensions (SMTPUTF8, DSN parameters) make longer lines legitimate.
    pub max_command_line: usize,
    /// Longest line of message data in bytes. RFC 5321 §4.5.3.1.6 says 1000, but real mail
    /// exceeds it; the cap only stops a client from sending one endless line.
    pub max_data_line: usize,
    /// Largest message in bytes, advertised in EHLO SIZE and enforced while the data streams.
    pub max_message_size: u64,
    /// Recipients per message; more get `452 4.5.3` (RFC 5321 §4.5.3.1.8 asks for 100).
    pub max_recipients: usize,
    /// Protocol errors per session before the server says `421` and closes.
    pub max_errors: u32,
    /// Time to wait for the next command or data (RFC 5321 §4.5.3.2 suggests 5 minutes).
    #[serde(with = "duration")]
    pub idle_timeout: Duration,
    /// Longest time a single connection may last, however active.
    #[serde(with = "duration")]
    pub session_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImapListener {
    pub bind: Vec<SocketAddr>,
    pub tls: TlsMode,
    /// When not empty, only clients in these networks may connect to this listener.
    pub allow: Vec<Cidr>,
    /// Clients in these networks are turned away at connect.
    pub deny: Vec<Cidr>,
    pub max_connections: usize,
    /// An idle client is logged out after this; RFC 3501 §5.4 asks for at least 30 minutes.
    #[serde(with = "duration")]
    pub idle_timeout: Duration,
    /// Longest command line in bytes (without literals). RFC 7162 §4 asks clients to keep
    /// lines under 8192 and servers to accept at least that; long UID sets need more.
    pub max_command_line: usize,
    /// Largest literal accepted before login. LOGIN and AUTHENTICATE need a few hundred bytes;
    /// anything bigger before login is refused unread, so no one can make an unauthenticated
    /// connection hold memory.
    pub max_literal_before_login: u64,
    /// Largest message APPEND accepts (advertised as APPENDLIMIT, RFC 7889).
    pub max_append_size: u64,
    /// Largest command apart from an APPEND message: all its lines and literals together.
    pub max_command_size: u64,
    /// Protocol errors (BAD) in one session before the server says BYE.
    pub max_errors: u32,
    /// Storage quota per account in bytes, reported by GETQUOTAROOT (RFC 9208) and enforced
    /// on APPEND; 0 means no limit.
    pub quota_storage: u64,
}

/// The guard: who may connect, how fast, and who gets banned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guard {
    /// Never banned, never rate limited (a webmail or proxy host, your office). Still subject
    /// to `deny`.
    pub allowlist: Vec<Cidr>,
    /// Exempt from the connection caps and rates, the SMTP message and recipient rates and
    /// IMAP pacing, but not from bans or failed-login counting: this host's own processes
    /// (a local webmail, monitoring, test tools) open many connections fast. As Postfix exempts
    /// `mynetworks` from its client rate limits.
    pub limit_exceptions: Vec<Cidr>,
    /// When not empty, only these networks may connect to any listener.
    pub allow: Vec<Cidr>,
    /// These networks may connect to no listener.
    pub deny: Vec<Cidr>,
    /// Tell a denied or banned SMTP client why (`554 5.7.1`) before closing; otherwise close
    /// silently. Never on implicit-TLS ports, where no clear-text byte may be sent.
    pub deny_banner: bool,
    /// Concurrent connections from one address.
    pub max_connections_per_ip: u32,
    /// Concurrent connections from one IPv4 /24 or IPv6 /64 (one customer's network).
    pub max_connections_per_net: u32,
    /// New connections per address per minute.
    pub connection_rate_per_ip: u32,
    /// TLS handshakes in progress at once; a handshake costs far more CPU than it costs the client.
    pub max_tls_handshakes: usize,
    /// A client must finish its TLS handshake within this time.
    #[serde(with = "duration")]
    pub handshake_timeout: Duration,
    /// SMTP messages accepted per address per hour; more get `451 4.7.0`.
    pub smtp_messages_per_ip: u32,
    /// SMTP recipients accepted per address per hour; more get `451 4.7.0`.
    pub smtp_recipients_per_ip: u32,
    /// IMAP commands per session per second; faster clients are slowed to this pace.
    pub imap_commands_per_second: u32,
    /// Failed logins from one address within `failure_window` before it is banned.
    pub auth_failures_per_ip: u32,
    /// Failed logins from one /24 or /64 within `failure_window` before the network is banned.
    pub auth_failures_per_net: u32,
    /// Failed logins for one account within `failure_window` before only addresses that have
    /// logged in to it before may try it (the owner keeps access, the attackers do not).
    pub auth_failures_per_account: u32,
    /// Refused recipients (unknown users, relay attempts) from one address within
    /// `failure_window` before it is banned.
    pub probes_per_ip: u32,
    /// Early talkers (see `pregreet_wait`) from one address within `failure_window` before it
    /// is banned.
    pub pregreet_per_ip: u32,
    #[serde(with = "duration")]
    pub failure_window: Duration,
    /// First ban; each repeat offence doubles it up to `max_ban_time`.
    #[serde(with = "duration")]
    pub ban_time: Duration,
    #[serde(with = "duration")]
    pub max_ban_time: Duration,
    /// How long an address stays known for an account after a successful login.
    #[serde(with = "duration")]
    pub known_login_ttl: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smtp {
    /// `user+tag@domain` is delivered to `user@domain`; empty turns sub-addressing off.
    pub recipient_delimiter: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// Offer CRAM-MD5. Off by default: it needs a password-equivalent secret kept on the
    /// server, and only passwords set while it is on get one.
    pub cram_md5: bool,
    /// Shortest password `user add` and `user passwd` accept, in characters.
    pub password_min_length: usize,
    /// Lowest zxcvbn strength score (0-4) a new password needs.
    pub password_min_score: u8,
    /// argon2id memory cost in KiB (OWASP: 19456).
    pub argon2_memory_kib: u32,
    /// argon2id passes (OWASP: 2).
    pub argon2_iterations: u32,
    /// argon2id lanes (OWASP: 1).
    pub argon2_parallelism: u32,
    /// PBKDF2 rounds for SCRAM-SHA-256 keys; RFC 7677 asks for at least 4096.
    pub scram_iterations: u32,
    /// Failed authentications in one session before it is closed.
    pub max_failures: u32,
    /// Pause before answering a failed authentication, multiplied by the session's failures.
    #[serde(with = "duration")]
    pub failure_delay: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Submission {
    /// Leave the client's IP address and HELO name out of the Received header of submitted
    /// mail, so recipients do not learn where the sender was.
    pub hide_client: bool,
    /// Users who may send as addresses they do not own: user = ["addr", "*@domain", "*"].
    pub allowed_senders: std::collections::BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Queue {
    /// Deliveries in progress at once.
    pub concurrency: usize,
    /// Deliveries in progress at once to one destination domain.
    pub per_domain_concurrency: usize,
    /// Waits between attempts after a temporary failure; the last repeats until `expiry`.
    #[serde(with = "duration::list")]
    pub retry_schedule: Vec<Duration>,
    /// Give up and bounce a message after this long in the queue (RFC 5321 §4.5.4.1: 4-5 days).
    #[serde(with = "duration")]
    pub expiry: Duration,
    /// TCP port of remote MX hosts. 25 in the real world; tests point it elsewhere.
    pub remote_port: u16,
    #[serde(with = "duration")]
    pub connect_timeout: Duration,
    /// Longest wait for any reply (RFC 5321 §4.5.3.2 suggests 5 to 10 minutes).
    #[serde(with = "duration")]
    pub command_timeout: Duration,
    /// PEM file of extra CAs to trust when checking remote certificates (private CAs, tests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_ca_file: Option<PathBuf>,
    /// Per-destination policy and smart hosts; the first route whose domains match wins.
    pub route: Vec<Route>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboundTls {
    /// STARTTLS when offered; an unverifiable certificate is logged, not fatal (RFC 7435).
    Opportunistic,
    /// Never send in clear: STARTTLS must be offered and succeed.
    Require,
    /// As `require`, and the certificate must verify for the host name.
    Verify,
    /// TLS from the first byte (a smart host on port 465), certificate verified.
    Implicit,
}

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
    #[serde(default = "default_outbound_tls")]
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

fn default_outbound_tls() -> OutboundTls {
    OutboundTls::Opportunistic
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Store {
    pub backend: StoreBackend,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// SQLite in WAL mode under `server.data_dir`, message bodies as files beside it.
    Sqlite,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dns {
    /// Resolvers as `IP:PORT`; empty means the system resolver (/etc/resolv.conf).
    pub nameservers: Vec<SocketAddr>,
}

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

/// Sender authentication of mail arriving on the MX listener (SPF, DKIM, ARC, DMARC, iprev).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthChecks {
    pub enabled: bool,
    /// The authserv-id in Authentication-Results (RFC 8601 §2.5); empty means server.hostname.
    pub authserv_id: String,
    /// Forward-confirmed reverse DNS of the client (one PTR and one A/AAAA lookup).
    pub iprev: bool,
    /// DMARC p=reject failures get `550 5.7.1` at the end of DATA.
    pub dmarc_reject: bool,
    /// DMARC p=quarantine failures go to Junk.
    pub dmarc_quarantine: bool,
    pub spf_fail: SpfFail,
    pub dns_temperror: TempErrorAction,
    /// ARC sealers whose valid chains may override a DMARC failure (mailing lists, forwarders).
    pub trusted_arc_sealers: Vec<String>,
}

/// DKIM signing of submitted mail and ARC sealing of forwarded mail; keys are in the store
/// (`rampart dkim keygen`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dkim {
    pub sign: bool,
    pub arc_seal: bool,
}

/// DMARC aggregate reports (RFC 7489 §7.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dmarc {
    /// Remember evaluations and send aggregate reports to domains that ask for them (rua=).
    pub send_reports: bool,
    /// How often reports go out (RFC 7489 §7.2.1.1: at least daily is expected).
    #[serde(with = "duration")]
    pub report_interval: Duration,
    /// Report sender (From, and the report's contact); empty means noreply-dmarc@server.hostname.
    pub report_from: String,
    /// The organization named in reports; empty means server.hostname.
    pub org_name: String,
    /// A local address that receives other domains' reports: mail to it is parsed and listed by
    /// `rampart dmarc reports`. Empty turns this off.
    pub report_address: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    /// `error`, `warn`, `info`, `debug` or `trace`, or a tracing filter such as
    /// `info,rampart_smtp=debug`. The RUST_LOG environment variable wins when set.
    pub level: String,
    /// Also append log lines to this file (for fail2ban and log tools); empty for stderr only.
    pub file: String,
}

const MIB: u64 = 1024 * 1024;

impl SmtpListener {
    fn with(bind: &[&str], tls: TlsMode) -> Self {
        SmtpListener {
            bind: bind.iter().map(|a| a.parse().expect("literal address")).collect(),
            tls,
            allow: Vec::new(),
            deny: Vec::new(),
            pregreet_wait: Duration::ZERO,
            line_timeout: Duration::from_secs(60),
            max_connections: 1000,
            max_command_line: 2048,
            max_data_line: 64 * 1024,
            max_message_size: 50 * MIB,
            max_recipients: 100,
            max_errors: 10,
            idle_timeout: Duration::from_secs(300),
            session_timeout: Duration::from_secs(3600),
        }
    }
}

impl ImapListener {
    fn with(bind: &[&str], tls: TlsMode) -> Self {
        ImapListener {
            bind: bind.iter().map(|a| a.parse().expect("literal address")).collect(),
            tls,
            allow: Vec::new(),
            deny: Vec::new(),
            max_connections: 5000,
            idle_timeout: Duration::from_secs(30 * 60),
            max_command_line: 64 * 1024,
            max_literal_before_login: 4096,
            max_append_size: 50 * MIB,
            max_command_size: MIB,
            max_errors: 20,
            quota_storage: 0,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: Server { hostname: "localhost".into(), data_dir: "data".into(), max_connections: 10_000 },
            tls: Tls { cert: "tls/cert.pem".into(), key: "tls/key.pem".into(), sni: vec![] },
            listener: Listeners {
                smtp: SmtpListener { pregreet_wait: Duration::from_secs(3), ..SmtpListener::with(&["0.0.0.0:25", "[::]:25"], TlsMode::Starttls) },
                submission: SmtpListener::with(&["0.0.0.0:587", "[::]:587"], TlsMode::Starttls),
                submissions: SmtpListener::with(&["0.0.0.0:465", "[::]:465"], TlsMode::Implicit),
                imap: ImapListener::with(&["0.0.0.0:143", "[::]:143"], TlsMode::Starttls),
                imaps: ImapListener::with(&["0.0.0.0:993", "[::]:993"], TlsMode::Implicit),
                metrics: MetricsListener { bind: vec!["127.0.0.1:9125".parse().expect("literal address")] },
            },
            guard: Guard {
                allowlist: Vec::new(),
                limit_exceptions: vec!["127.0.0.1/32".parse().expect("literal"), "::1/128".parse().expect("literal")],
                allow: Vec::new(),
                deny: Vec::new(),
                deny_banner: true,
                max_connections_per_ip: 20,
                max_connections_per_net: 100,
                connection_rate_per_ip: 60,
                max_tls_handshakes: 200,
                handshake_timeout: Duration::from_secs(10),
                smtp_messages_per_ip: 500,
                smtp_recipients_per_ip: 2500,
                imap_commands_per_second: 50,
                auth_failures_per_ip: 10,
                auth_failures_per_net: 30,
                auth_failures_per_account: 20,
                probes_per_ip: 20,
                pregreet_per_ip: 3,
                failure_window: Duration::from_secs(600),
                ban_time: Duration::from_secs(3600),
                max_ban_time: Duration::from_secs(7 * 24 * 3600),
                known_login_ttl: Duration::from_secs(90 * 24 * 3600),
            },
            smtp: Smtp { recipient_delimiter: "+".into() },
            auth: Auth {
                cram_md5: false,
                password_min_length: 12,
                password_min_score: 3,
                argon2_memory_kib: 19456,
                argon2_iterations: 2,
                argon2_parallelism: 1,
                scram_iterations: 4096,
                max_failures: 3,
                failure_delay: Duration::from_secs(1),
            },
            submission: Submission { hide_client: false, allowed_senders: Default::default() },
            queue: Queue {
                concurrency: 32,
                per_domain_concurrency: 4,
                retry_schedule: [5, 10, 30, 60, 120, 240].iter().map(|m| Duration::from_secs(m * 60)).collect(),
                expiry: Duration::from_secs(5 * 24 * 3600),
                remote_port: 25,
                connect_timeout: Duration::from_secs(30),
                command_timeout: Duration::from_secs(300),
                extra_ca_file: None,
                route: Vec::new(),
            },
            store: Store { backend: StoreBackend::Sqlite },
            dns: Dns { nameservers: vec![] },
            auth_checks: AuthChecks {
                enabled: true,
                authserv_id: String::new(),
                iprev: true,
                dmarc_reject: true,
                dmarc_quarantine: true,
                spf_fail: SpfFail::Tag,
                dns_temperror: TempErrorAction::Accept,
                trusted_arc_sealers: Vec::new(),
            },
            dkim: Dkim { sign: true, arc_seal: true },
            dmarc: Dmarc {
                send_reports: true,
                report_interval: Duration::from_secs(24 * 3600),
                report_from: String::new(),
                org_name: String::new(),
                report_address: String::new(),
            },
            log: Log { level: "info".into(), file: String::new() },

        }
    }
}

/// Applies one `--set KEY=VALUE` to a TOML tree. VALUE is a TOML value (`25`, `"x"`,
/// `["127.0.0.1:25"]`); a bare word that is not TOML is taken as a string, so
/// `--set server.hostname=mx.example.org` works without shell-quoted quotes.
pub fn apply_override(root: &mut toml::Table, arg: &str) -> Result<(), ConfigError> {
    let err = |message: &str| ConfigError::Override { arg: arg.into(), message: message.into() };
    let (key, raw) = arg.split_once('=').ok_or_else(|| err("expected KEY=VALUE"))?;
    let key = key.trim();
    let value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut t) => t.remove("v").expect("the table was parsed from `v = ...`"),
        Err(_) if !raw.trim_start().starts_with(['[', '{', '"', '\'']) => {
            toml::Value::String(raw.trim().to_string())
        }
        Err(e) => return Err(err(&format!("value is not TOML: {}", e.message()))),
    };
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(err("empty key segment"));
    }
    let (last, parents) = parts.split_last().expect("split always yields one part");
    let mut table = root;
    for part in parents {
        let entry = table
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = entry.as_table_mut().ok_or_else(|| err(&format!("`{part}` is not a table")))?;
    }
    table.insert(last.to_string(), value);
    Ok(())
}

/// Deep-merges `over` into `base`: tables merge key by key, anything else replaces.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

impl Config {
    /// Reads `path`, applies `overrides`, and resolves relative paths against the file's
    /// directory. Does not validate: call [`Config::validate`].
    pub fn load(path: &Path, overrides: &[String]) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.into(), source })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::from_toml(&text, overrides, &base)
            .map_err(|e| match e {
                ConfigError::Syntax { message, .. } => {
                    ConfigError::Syntax { path: path.into(), message }
                }
                other => other,
            })
    }

    /// Parses a config text. `base` is the directory relative paths are resolved against.
    pub fn from_toml(text: &str, overrides: &[String], base: &Path) -> Result<Config, ConfigError> {
        let file: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: PathBuf::new(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        let mut tree = match toml::Value::try_from(Config::default()) {
            Ok(toml::Value::Table(t)) => t,
            _ => unreachable!("Config serializes to a table"),
        };
        merge(&mut tree, file);
        for arg in overrides {
            apply_override(&mut tree, arg)?;
        }
        let mut config: Config = serde_path_to_error::deserialize(toml::Value::Table(tree))
            .map_err(|e| {
                let key = e.path().to_string();
                // toml appends "in `table`" on a second line; the key path already says where.
                let message = e.into_inner().to_string();
                let message = message.lines().next().unwrap_or_default().to_string();
                ConfigError::invalid(if key == "." { String::new() } else { key }, message)
            })?;
        config.resolve_paths(base);
        Ok(config)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.server.data_dir);
        fix(&mut self.tls.cert);
        fix(&mut self.tls.key);
        if let Some(p) = &mut self.queue.extra_ca_file {
            fix(p);
        }
        for route in &mut self.queue.route {
            for p in [&mut route.auth_password_file, &mut route.client_cert, &mut route.client_key].into_iter().flatten() {
                fix(p);
            }
        }
        for sni in &mut self.tls.sni {
            fix(&mut sni.cert);
            fix(&mut sni.key);
        }
    }

    /// The SMTP listeners by their fixed names.
    pub fn smtp_listeners(&self) -> [(&'static str, &SmtpListener); 3] {
        let l = &self.listener;
        [("smtp", &l.smtp), ("submission", &l.submission), ("submissions", &l.submissions)]
    }

    /// The IMAP listeners by their fixed names.
    pub fn imap_listeners(&self) -> [(&'static str, &ImapListener); 2] {
        [("imap", &self.listener.imap), ("imaps", &self.listener.imaps)]
    }

    /// Every problem in the configuration, each naming its key. Empty means valid.
    pub fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let mut bad = |key: &str, message: String| errors.push(ConfigError::invalid(key, message));

        if self.server.max_connections == 0 {
            bad("server.max_connections", "must be at least 1".into());
        }
        if !is_hostname(&self.server.hostname) {
            bad("server.hostname", format!("`{}` is not a host name", self.server.hostname));
        }
        for (key, file) in [("tls.cert", &self.tls.cert), ("tls.key", &self.tls.key)] {
            if !file.is_file() {
                bad(key, format!("file {} does not exist", file.display()));
            }
        }
        for (i, sni) in self.tls.sni.iter().enumerate() {
            if !is_hostname(sni.hostname.trim_start_matches("*.")) {
                bad(&format!("tls.sni[{i}].hostname"), format!("`{}` is not a host name", sni.hostname));
            }
            for (k, file) in [("cert", &sni.cert), ("key", &sni.key)] {
                if !file.is_file() {
                    bad(&format!("tls.sni[{i}].{k}"), format!("file {} does not exist", file.display()));
                }
            }
        }

        let mut seen: Vec<(SocketAddr, &str)> = Vec::new();
        let mut check_bind = |name: &'static str, bind: &[SocketAddr], bad: &mut dyn FnMut(&str, String)| {
            for addr in bind {
                if addr.port() != 0 {
                    if let Some((_, other)) = seen.iter().find(|(a, _)| a == addr) {
                        bad(&format!("listener.{name}.bind"), format!("{addr} is also bound by listener.{other}"));
                    }
                }
                seen.push((*addr, name));
            }
        };
        for (name, l) in self.smtp_listeners() {
            check_bind(name, &l.bind, &mut bad);
            let key = |k: &str| format!("listener.{name}.{k}");
            if l.max_connections == 0 {
                bad(&key("max_connections"), "must be at least 1".into());
            }
            if l.max_command_line < 512 {
                bad(&key("max_command_line"), "must be at least 512 (RFC 5321 §4.5.3.1.4)".into());
            }
            if l.max_data_line < 1000 {
                bad(&key("max_data_line"), "must be at least 1000 (RFC 5321 §4.5.3.1.6)".into());
            }
            if l.max_message_size < 64 * 1024 {
                bad(&key("max_message_size"), "must be at least 65536 bytes".into());
            }
            if l.max_recipients == 0 {
                bad(&key("max_recipients"), "must be at least 1 (RFC 5321 asks for 100)".into());
            }
            if l.max_errors == 0 {
                bad(&key("max_errors"), "must be at least 1".into());
            }
            if l.idle_timeout.is_zero() {
                bad(&key("idle_timeout"), "must be longer than 0s".into());
            }
            if l.session_timeout < l.idle_timeout {
                bad(&key("session_timeout"), "must not be shorter than idle_timeout".into());
            }
            if l.line_timeout.is_zero() {
                bad(&key("line_timeout"), "must be longer than 0s".into());
            }
            if l.pregreet_wait >= l.idle_timeout {
                bad(&key("pregreet_wait"), "must be shorter than idle_timeout".into());
            }
        }
        check_bind("metrics", &self.listener.metrics.bind, &mut bad);
        let g = &self.guard;
        for (key, v) in [
            ("max_connections_per_ip", g.max_connections_per_ip),
            ("max_connections_per_net", g.max_connections_per_net),
            ("connection_rate_per_ip", g.connection_rate_per_ip),
            ("smtp_messages_per_ip", g.smtp_messages_per_ip),
            ("smtp_recipients_per_ip", g.smtp_recipients_per_ip),
            ("imap_commands_per_second", g.imap_commands_per_second),
            ("auth_failures_per_ip", g.auth_failures_per_ip),
            ("auth_failures_per_net", g.auth_failures_per_net),
            ("auth_failures_per_account", g.auth_failures_per_account),
            ("probes_per_ip", g.probes_per_ip),
            ("pregreet_per_ip", g.pregreet_per_ip),
        ] {
            if v == 0 {
                bad(&format!("guard.{key}"), "must be at least 1".into());
            }
        }
        if g.max_connections_per_net < g.max_connections_per_ip {
            bad("guard.max_connections_per_net", "must not be lower than guard.max_connections_per_ip".into());
        }
        if g.max_tls_handshakes == 0 {
            bad("guard.max_tls_handshakes", "must be at least 1".into());
        }
        if g.handshake_timeout.is_zero() || g.failure_window.is_zero() || g.ban_time.is_zero() {
            bad("guard.handshake_timeout", "guard.handshake_timeout, failure_window and ban_time must be longer than 0s".into());
        }
        if g.max_ban_time < g.ban_time {
            bad("guard.max_ban_time", "must not be shorter than guard.ban_time".into());
        }
        for (name, l) in self.imap_listeners() {
            check_bind(name, &l.bind, &mut bad);
            if l.max_connections == 0 {
                bad(&format!("listener.{name}.max_connections"), "must be at least 1".into());
            }
            let key = |k: &str| format!("listener.{name}.{k}");
            if l.idle_timeout < Duration::from_secs(60) {
                bad(&key("idle_timeout"), "must be at least 1m".into());
            }
            if l.max_command_line < 8192 {
                bad(&key("max_command_line"), "must be at least 8192 (RFC 7162 §4)".into());
            }
            if l.max_literal_before_login < 512 || l.max_literal_before_login > 64 * 1024 {
                bad(&key("max_literal_before_login"), "must be between 512 and 65536 bytes".into());
            }
            if l.max_append_size < 64 * 1024 {
                bad(&key("max_append_size"), "must be at least 65536 bytes".into());
            }
            if l.max_command_size < l.max_command_line as u64 {
                bad(&key("max_command_size"), "must not be smaller than max_command_line".into());
            }
            if l.max_errors == 0 {
                bad(&key("max_errors"), "must be at least 1".into());
            }
        }
        let a = &self.auth;
        if a.password_min_length < 8 {
            bad("auth.password_min_length", "must be at least 8".into());
        }
        if a.password_min_score > 4 {
            bad("auth.password_min_score", "is a zxcvbn score from 0 to 4".into());
        }
        if a.argon2_memory_kib < 8 * a.argon2_parallelism.max(1) || a.argon2_iterations == 0 || a.argon2_parallelism == 0 {
            bad("auth.argon2_memory_kib", "argon2 needs memory >= 8 KiB per lane, iterations >= 1 and parallelism >= 1".into());
        }
        if a.scram_iterations < 4096 {
            bad("auth.scram_iterations", "must be at least 4096 (RFC 7677)".into());
        }
        if a.max_failures == 0 {
            bad("auth.max_failures", "must be at least 1".into());
        }
        for (user, patterns) in &self.submission.allowed_senders {
            if !user.contains('@') {
                bad(&format!("submission.allowed_senders.{user}"), "the key must be a user's address".into());
            }
            for p in patterns {
                if !(p == "*" || p.contains('@')) {
                    bad(&format!("submission.allowed_senders.{user}"), format!("`{p}` is not an address, *@domain or *"));
                }
            }
        }
        let q = &self.queue;
        if q.concurrency == 0 || q.per_domain_concurrency == 0 {
            bad("queue.concurrency", "queue.concurrency and queue.per_domain_concurrency must be at least 1".into());
        }
        if q.retry_schedule.is_empty() || q.retry_schedule.iter().any(Duration::is_zero) {
            bad("queue.retry_schedule", "needs at least one wait, each longer than 0s".into());
        }
        if q.remote_port == 0 {
            bad("queue.remote_port", "must be a port number".into());
        }
        if let Some(ca) = &q.extra_ca_file {
            if !ca.is_file() {
                bad("queue.extra_ca_file", format!("file {} does not exist", ca.display()));
            }
        }
        for (i, r) in q.route.iter().enumerate() {
            let key = |k: &str| format!("queue.route[{i}].{k}");
            if r.domains.is_empty() {
                bad(&key("domains"), "list at least one domain, or \"*\"".into());
            }
            if r.tls == OutboundTls::Implicit && r.host.is_none() {
                bad(&key("tls"), "\"implicit\" needs a smart host in `host`".into());
            }
            if r.auth_username.is_some() && r.auth_password.is_none() && r.auth_password_file.is_none() {
                bad(&key("auth_password"), "auth_username needs auth_password or auth_password_file".into());
            }
            if r.auth_username.is_some() && r.host.is_none() {
                bad(&key("auth_username"), "authentication is only for a smart host in `host`".into());
            }
            if r.client_cert.is_some() != r.client_key.is_some() {
                bad(&key("client_cert"), "client_cert and client_key go together".into());
            }
            for (k, p) in [("auth_password_file", &r.auth_password_file), ("client_cert", &r.client_cert), ("client_key", &r.client_key)] {
                if let Some(p) = p {
                    if !p.is_file() {
                        bad(&key(k), format!("file {} does not exist", p.display()));
                    }
                }
            }
        }
        let ac = &self.auth_checks;
        if !ac.authserv_id.is_empty() && !is_hostname(&ac.authserv_id) {
            bad("auth_checks.authserv_id", format!("`{}` is not a host name", ac.authserv_id));
        }
        for d in &ac.trusted_arc_sealers {
            if !is_hostname(d) {
                bad("auth_checks.trusted_arc_sealers", format!("`{d}` is not a domain name"));
            }
        }
        let dm = &self.dmarc;
        if dm.report_interval < Duration::from_secs(60) {
            bad("dmarc.report_interval", "must be at least 1m".into());
        }
        for (key, addr) in [("dmarc.report_from", &dm.report_from), ("dmarc.report_address", &dm.report_address)] {
            if !addr.is_empty() && !addr.split_once('@').is_some_and(|(l, d)| !l.is_empty() && is_hostname(d)) {
                bad(key, format!("`{addr}` is not an address"));
            }
        }
        if self.smtp.recipient_delimiter.chars().count() > 1 {
            bad("smtp.recipient_delimiter", "must be one character or empty".into());
        }
        errors
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

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, sets: &[&str]) -> Result<Config, ConfigError> {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        Config::from_toml(text, &sets, Path::new("/etc/rampart"))
    }

    #[test]
    fn empty_file_is_the_defaults_with_resolved_paths() {
        let c = load("", &[]).unwrap();
        assert_eq!(c.server.data_dir, PathBuf::from("/etc/rampart/data"));
        assert_eq!(c.listener.submissions.tls, TlsMode::Implicit);
        assert_eq!(c.listener.submission.tls, TlsMode::Starttls);
    }

    #[test]
    fn a_partial_listener_table_keeps_its_role_defaults() {
        let c = load("[listener.submissions]\nbind = [\"127.0.0.1:4650\"]\n", &[]).unwrap();
        assert_eq!(c.listener.submissions.tls, TlsMode::Implicit);
        assert_eq!(c.listener.submissions.bind, vec!["127.0.0.1:4650".parse().unwrap()]);
        assert_eq!(c.listener.submissions.max_recipients, 100);
    }

    #[test]
    fn set_overrides_by_dotted_path() {
        let c = load(
            "",
            &[
                r#"listener.smtp.bind=["127.0.0.1:2525"]"#,
                "listener.smtp.max_recipients=5",
                "server.hostname=mx.example.org",
                r#"listener.smtp.idle_timeout="10s""#,
            ],
        )
        .unwrap();
        assert_eq!(c.listener.smtp.bind, vec!["127.0.0.1:2525".parse().unwrap()]);
        assert_eq!(c.listener.smtp.max_recipients, 5);
        assert_eq!(c.server.hostname, "mx.example.org");
        assert_eq!(c.listener.smtp.idle_timeout, Duration::from_secs(10));
    }

    #[test]
    fn unknown_keys_and_bad_values_name_their_path() {
        let e = load("[listener.smtp]\nbnd = []\n", &[]).unwrap_err().to_string();
        assert!(e.starts_with("listener.smtp"), "{e}");
        assert!(e.contains("bnd"), "{e}");
        let e = load("[listener.imap]\ntls = \"maybe\"\n", &[]).unwrap_err().to_string();
        assert!(e.starts_with("listener.imap.tls"), "{e}");
        let e = load("", &["listener.smtp.max_errors=\"lots\""]).unwrap_err().to_string();
        assert!(e.starts_with("listener.smtp.max_errors"), "{e}");
        let e = load("", &["listener.smtp.bind=[\"nowhere\"]"]).unwrap_err().to_string();
        assert!(e.starts_with("listener.smtp.bind"), "{e}");
    }

    #[test]
    fn override_syntax_errors() {
        assert!(load("", &["novalue"]).is_err());
        assert!(load("", &["a..b=1"]).is_err());
        assert!(load("", &["server.hostname.x=1"]).is_err());
        assert!(load("", &["listener.smtp.bind=[\"unterminated"]).is_err());
    }

    #[test]
    fn validation_names_keys() {
        let mut c = load("", &[]).unwrap();
        c.server.hostname = "not a host".into();
        c.listener.smtp.max_command_line = 100;
        c.listener.submission.bind = c.listener.smtp.bind.clone();
        c.listener.imaps.max_literal_before_login = 1 << 30;
        let errors: Vec<String> = c.validate().iter().map(|e| e.to_string()).collect();
        assert!(errors.iter().any(|e| e.starts_with("server.hostname:")), "{errors:?}");
        assert!(errors.iter().any(|e| e.starts_with("tls.cert:")), "{errors:?}");
        assert!(errors.iter().any(|e| e.starts_with("listener.smtp.max_command_line:")), "{errors:?}");
        assert!(errors.iter().any(|e| e.starts_with("listener.submission.bind:")), "{errors:?}");
        assert!(errors.iter().any(|e| e.starts_with("listener.imaps.max_literal_before_login:")), "{errors:?}");
        let mut c = load("", &[r#"auth_checks.trusted_arc_sealers=["not a domain"]"#, "dmarc.report_address=nobody"]).unwrap();
        c.dmarc.report_interval = Duration::from_secs(1);
        let errors: Vec<String> = c.validate().iter().map(|e| e.to_string()).collect();
        for key in ["auth_checks.trusted_arc_sealers:", "dmarc.report_address:", "dmarc.report_interval:"] {
            assert!(errors.iter().any(|e| e.starts_with(key)), "{key} in {errors:?}");
        }
        let e = load("", &["auth_checks.spf_fail=maybe"]).unwrap_err().to_string();
        assert!(e.starts_with("auth_checks.spf_fail"), "{e}");
    }

    #[test]
    fn template_is_the_defaults() {
        let text = template("mx.example.test");
        let c = load(&text, &[]).unwrap();
        let mut expected = Config::default();
        expected.server.hostname = "mx.example.test".into();
        expected.resolve_paths(Path::new("/etc/rampart"));
        assert_eq!(c, expected);
    }

    #[test]
    fn hostnames() {
        assert!(is_hostname("mx.example.test"));
        assert!(is_hostname("localhost"));
        assert!(!is_hostname("-bad.example"));
        assert!(!is_hostname("a b"));
        assert!(!is_hostname(""));
    }
}
