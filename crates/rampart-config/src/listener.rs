//! `[listener.NAME]`: the five mail listeners (fixed names), the two web listeners (`https`,
//! `http`) and the metrics listener, each with its addresses, TLS mode, firewall lists and
//! protocol limits.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::section::Problems;
use crate::{Cidr, duration};

const MIB: u64 = 1024 * 1024;

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

section! {
    /// The listener names are fixed: users' scripts and tests rely on them.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Listeners {
        /// Port 25: mail from the internet for local domains (the MX role). No AUTH here.
        pub smtp: SmtpListener = SmtpListener {
            pregreet_wait: Duration::from_secs(3),
            ..SmtpListener::role(&["0.0.0.0:25", "[::]:25"], TlsMode::Starttls)
        },
        /// Port 587: mail submission by authenticated users, STARTTLS (RFC 6409). The keys are
        /// those of [listener.smtp].
        pub submission: SmtpListener = SmtpListener::role(&["0.0.0.0:587", "[::]:587"], TlsMode::Starttls),
        /// Port 465: mail submission over implicit TLS (RFC 8314). The keys are those of
        /// [listener.smtp].
        pub submissions: SmtpListener = SmtpListener::role(&["0.0.0.0:465", "[::]:465"], TlsMode::Implicit),
        /// Port 143: IMAP with STARTTLS; no login before TLS.
        pub imap: ImapListener = ImapListener::role(&["0.0.0.0:143", "[::]:143"], TlsMode::Starttls),
        /// Port 993: IMAP over implicit TLS. The keys are those of [listener.imap].
        pub imaps: ImapListener = ImapListener::role(&["0.0.0.0:993", "[::]:993"], TlsMode::Implicit),
        /// Port 443: the web admin, user self-service, the JSON API (/api/v1/) and mail client
        /// autoconfiguration, over implicit TLS with the certificates of [tls] (HTTP/1.1).
        pub https: WebListener = WebListener::role(&["0.0.0.0:443", "[::]:443"]),
        /// Port 80: plain HTTP that only redirects to the https listener. The keys are those of
        /// [listener.https].
        pub http: WebListener = WebListener::role(&["0.0.0.0:80", "[::]:80"]),
        /// Prometheus metrics (GET /metrics). Keep it on loopback or behind a firewall.
        pub metrics: MetricsListener = MetricsListener::default(),
    }
}

impl Listeners {
    pub const NAMES: [&'static str; 5] = ["smtp", "submission", "submissions", "imap", "imaps"];
}

section! {
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct MetricsListener {
        /// Addresses to listen on; an empty list turns metrics off.
        pub bind: Vec<SocketAddr> = addresses(&["127.0.0.1:9125"]),
    }
}

section! {
    /// A web listener (`https`, `http`).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct WebListener {
        /// Addresses to listen on, as a list; an empty list turns the listener off.
        pub bind: Vec<SocketAddr> = Vec::new(),
        /// When not empty, only clients in these networks may connect to this listener.
        /// Reloaded by SIGHUP.
        pub allow: Vec<Cidr> = Vec::new(),
        /// Clients in these networks are turned away at connect. Reloaded by SIGHUP.
        pub deny: Vec<Cidr> = Vec::new(),
        /// Concurrent connections on this listener; past it new clients are refused.
        pub max_connections: usize = 1000,
        /// A request's header section must arrive within this time (slow loris), and an idle
        /// keep-alive connection is closed after it.
        #[serde(with = "duration")]
        pub idle_timeout: Duration = Duration::from_secs(30),
        /// Largest request body in bytes; the API's requests are small JSON documents.
        pub max_body_size: usize = 64 * 1024,
    }
}

section! {
    /// An SMTP listener (`smtp`, `submission`, `submissions`); the role comes from the name.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct SmtpListener {
        /// Addresses to listen on, as a list; an empty list turns the listener off.
        pub bind: Vec<SocketAddr> = Vec::new(),
        /// "starttls" (plain TCP, then STARTTLS) or "implicit" (TLS at once).
        pub tls: TlsMode = TlsMode::Starttls,
        /// When not empty, only clients in these networks may connect to this listener, as a list
        /// like ["192.0.2.0/24", "2001:db8::/32", "198.51.100.7"]. Reloaded by SIGHUP.
        pub allow: Vec<Cidr> = Vec::new(),
        /// Clients in these networks are turned away at connect. Reloaded by SIGHUP.
        pub deny: Vec<Cidr> = Vec::new(),
        /// Hold the greeting this long and refuse clients that talk first (early talkers are spam
        /// bots; RFC 5321 §4.3.1 says a client waits for the greeting). A client that passed is
        /// not held again for a day. "0s" turns it off.
        #[serde(with = "duration")]
        pub pregreet_wait: Duration = Duration::ZERO,
        /// A whole command line must arrive within this time: stops clients that trickle bytes to
        /// hold a connection (slow loris) while never hitting `idle_timeout`.
        #[serde(with = "duration")]
        pub line_timeout: Duration = Duration::from_secs(60),
        /// Concurrent connections on this listener; past it new clients get "421" and are closed.
        pub max_connections: usize = 1000,
        /// Longest command line in bytes with CRLF. RFC 5321 §4.5.3.1.4 asks for at least 512;
        /// extensions (SMTPUTF8, DSN parameters) make longer lines legitimate.
        pub max_command_line: usize = 2048,
        /// Longest line of message data in bytes. RFC 5321 §4.5.3.1.6 says 1000, but real mail
        /// exceeds it; the cap only stops a client from sending one endless line.
        pub max_data_line: usize = 64 * 1024,
        /// Largest message in bytes (50 MiB), advertised in EHLO SIZE and enforced while the data
        /// streams.
        pub max_message_size: u64 = 50 * MIB,
        /// Recipients per message; more get "452 4.5.3" (RFC 5321 §4.5.3.1.8 asks for 100).
        pub max_recipients: usize = 100,
        /// Largest header section in bytes, counted while it streams; more gets "552 5.3.4".
        pub max_header_size: u64 = 256 * 1024,
        /// Most header fields (a folded field counts once); more gets "552 5.3.4".
        pub max_header_fields: u32 = 1000,
        /// Most Received fields: more means a mail loop, refused with "554 5.4.6" (RFC 5321 §6.3).
        pub max_received: u32 = 50,
        /// Deepest MIME nesting (multipart within multipart, attached messages); more gets
        /// "554 5.6.0": parsers that recurse are what such messages attack.
        pub max_mime_depth: u32 = 20,
        /// Most MIME parts in one message; more gets "554 5.6.0".
        pub max_mime_parts: u32 = 1000,
        /// Largest single MIME part in bytes, decoded; 0 means `max_message_size`.
        pub max_part_size: u64 = 0,
        /// Largest attachment in bytes, decoded; 0 means `max_message_size`. Refused with
        /// "552 5.3.4" naming the limit.
        pub max_attachment_size: u64 = 0,
        /// Protocol errors in one session before the server says "421" and closes.
        pub max_errors: u32 = 10,
        /// Wait this long for the next command or data (RFC 5321 §4.5.3.2 suggests 5 minutes).
        #[serde(with = "duration")]
        pub idle_timeout: Duration = Duration::from_secs(300),
        /// No connection lasts longer than this, however busy.
        #[serde(with = "duration")]
        pub session_timeout: Duration = Duration::from_secs(3600),
    }
}

section! {
    /// An IMAP listener (`imap`, `imaps`).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct ImapListener {
        /// Addresses to listen on, as a list; an empty list turns the listener off.
        pub bind: Vec<SocketAddr> = Vec::new(),
        /// "starttls" (plain TCP, then STARTTLS; no login before TLS) or "implicit" (TLS at once).
        pub tls: TlsMode = TlsMode::Starttls,
        /// When not empty, only clients in these networks may connect to this listener.
        /// Reloaded by SIGHUP.
        pub allow: Vec<Cidr> = Vec::new(),
        /// Clients in these networks are turned away at connect. Reloaded by SIGHUP.
        pub deny: Vec<Cidr> = Vec::new(),
        /// Concurrent connections on this listener; past it new clients are refused.
        pub max_connections: usize = 5000,
        /// An idle client is logged out after this; RFC 3501 §5.4 asks for at least 30 minutes.
        #[serde(with = "duration")]
        pub idle_timeout: Duration = Duration::from_secs(30 * 60),
        /// Longest command line in bytes, literals not counted. RFC 7162 §4 asks servers to accept
        /// at least 8192; long UID sets need more.
        pub max_command_line: usize = 64 * 1024,
        /// Largest literal accepted before login; bigger ones are refused unread, so an
        /// unauthenticated client cannot make the server hold memory. LOGIN and AUTHENTICATE
        /// need a few hundred bytes.
        pub max_literal_before_login: u64 = 4096,
        /// Largest message APPEND accepts (50 MiB), advertised as APPENDLIMIT (RFC 7889).
        pub max_append_size: u64 = 50 * MIB,
        /// Largest command apart from an APPEND message: its lines and literals together (1 MiB).
        pub max_command_size: u64 = MIB,
        /// Protocol errors (BAD) in one session before the server says BYE.
        pub max_errors: u32 = 20,
        /// Storage quota per account in bytes, reported by GETQUOTAROOT (RFC 9208) and enforced
        /// on APPEND; 0 means no limit.
        pub quota_storage: u64 = 0,
        /// Offer COMPRESS=DEFLATE (RFC 4978) after login: a third to a tenth of the bytes for
        /// phones on slow links, for about 300 KiB of compressor state per connection that uses
        /// it. Compression under TLS can leak through reply sizes when an attacker both injects
        /// text into the stream (by mailing the user) and watches it (CRIME-style); the secret
        /// would have to share a 32 KiB window with that text, and credentials are sent before
        /// compression starts. Set false to refuse it.
        pub compress: bool = true,
    }
}

fn addresses(list: &[&str]) -> Vec<SocketAddr> {
    list.iter().map(|a| a.parse().expect("literal address")).collect()
}

impl WebListener {
    /// The shared defaults with a role's addresses.
    fn role(bind: &[&str]) -> Self {
        WebListener { bind: addresses(bind), ..WebListener::default() }
    }

    fn validate(&self, name: &str, p: &mut Problems) {
        let key = |k: &str| format!("listener.{name}.{k}");
        p.at_least_one(key("max_connections"), self.max_connections as u64);
        if self.idle_timeout < Duration::from_secs(1) {
            p.add(key("idle_timeout"), "must be at least 1s");
        }
        if self.max_body_size < 1024 {
            p.add(key("max_body_size"), "must be at least 1024 bytes");
        }
    }
}

impl SmtpListener {
    /// The shared defaults with a role's addresses and TLS mode.
    fn role(bind: &[&str], tls: TlsMode) -> Self {
        SmtpListener { bind: addresses(bind), tls, ..SmtpListener::default() }
    }

    fn validate(&self, name: &str, p: &mut Problems) {
        let key = |k: &str| format!("listener.{name}.{k}");
        p.at_least_one(key("max_connections"), self.max_connections as u64);
        if self.max_command_line < 512 {
            p.add(key("max_command_line"), "must be at least 512 (RFC 5321 §4.5.3.1.4)");
        }
        if self.max_data_line < 1000 {
            p.add(key("max_data_line"), "must be at least 1000 (RFC 5321 §4.5.3.1.6)");
        }
        if self.max_message_size < 64 * 1024 {
            p.add(key("max_message_size"), "must be at least 65536 bytes");
        }
        if self.max_recipients == 0 {
            p.add(key("max_recipients"), "must be at least 1 (RFC 5321 asks for 100)");
        }
        if self.max_header_size < 1024 {
            p.add(key("max_header_size"), "must be at least 1024 bytes");
        }
        p.at_least_one(key("max_header_fields"), self.max_header_fields.into());
        p.at_least_one(key("max_received"), self.max_received.into());
        p.at_least_one(key("max_mime_depth"), self.max_mime_depth.into());
        p.at_least_one(key("max_mime_parts"), self.max_mime_parts.into());
        p.at_least_one(key("max_errors"), self.max_errors.into());
        if self.idle_timeout.is_zero() {
            p.add(key("idle_timeout"), "must be longer than 0s");
        }
        if self.session_timeout < self.idle_timeout {
            p.add(key("session_timeout"), "must not be shorter than idle_timeout");
        }
        if self.line_timeout.is_zero() {
            p.add(key("line_timeout"), "must be longer than 0s");
        }
        if self.pregreet_wait >= self.idle_timeout {
            p.add(key("pregreet_wait"), "must be shorter than idle_timeout");
        }
    }
}

impl ImapListener {
    /// The shared defaults with a role's addresses and TLS mode.
    fn role(bind: &[&str], tls: TlsMode) -> Self {
        ImapListener { bind: addresses(bind), tls, ..ImapListener::default() }
    }

    fn validate(&self, name: &str, p: &mut Problems) {
        let key = |k: &str| format!("listener.{name}.{k}");
        p.at_least_one(key("max_connections"), self.max_connections as u64);
        if self.idle_timeout < Duration::from_secs(60) {
            p.add(key("idle_timeout"), "must be at least 1m");
        }
        if self.max_command_line < 8192 {
            p.add(key("max_command_line"), "must be at least 8192 (RFC 7162 §4)");
        }
        if !(512..=64 * 1024).contains(&self.max_literal_before_login) {
            p.add(key("max_literal_before_login"), "must be between 512 and 65536 bytes");
        }
        if self.max_append_size < 64 * 1024 {
            p.add(key("max_append_size"), "must be at least 65536 bytes");
        }
        if self.max_command_size < self.max_command_line as u64 {
            p.add(key("max_command_size"), "must not be smaller than max_command_line");
        }
        p.at_least_one(key("max_errors"), self.max_errors.into());
    }
}

impl Listeners {
    /// The SMTP listeners by their fixed names.
    pub fn smtp_listeners(&self) -> [(&'static str, &SmtpListener); 3] {
        [("smtp", &self.smtp), ("submission", &self.submission), ("submissions", &self.submissions)]
    }

    /// The IMAP listeners by their fixed names.
    pub fn imap_listeners(&self) -> [(&'static str, &ImapListener); 2] {
        [("imap", &self.imap), ("imaps", &self.imaps)]
    }

    /// The web listeners by their fixed names.
    pub fn web_listeners(&self) -> [(&'static str, &WebListener); 2] {
        [("https", &self.https), ("http", &self.http)]
    }

    /// Every listener's own `allow` and `deny` lists, by name (the guard's per-listener rules).
    pub fn firewall_lists(&self) -> Vec<(&'static str, &[Cidr], &[Cidr])> {
        let mut lists: Vec<(&'static str, &[Cidr], &[Cidr])> = Vec::new();
        for (name, l) in self.smtp_listeners() {
            lists.push((name, &l.allow, &l.deny));
        }
        for (name, l) in self.imap_listeners() {
            lists.push((name, &l.allow, &l.deny));
        }
        for (name, l) in self.web_listeners() {
            lists.push((name, &l.allow, &l.deny));
        }
        lists
    }

    pub(crate) fn validate(&self, p: &mut Problems) {
        let mut binds = Binds::default();
        for (name, l) in self.smtp_listeners() {
            binds.check(name, &l.bind, p);
            l.validate(name, p);
        }
        binds.check("metrics", &self.metrics.bind, p);
        for (name, l) in self.imap_listeners() {
            binds.check(name, &l.bind, p);
            l.validate(name, p);
        }
        for (name, l) in self.web_listeners() {
            binds.check(name, &l.bind, p);
            l.validate(name, p);
        }
    }
}

/// The addresses bound so far, to catch two listeners on one address.
#[derive(Default)]
struct Binds(Vec<(SocketAddr, &'static str)>);

impl Binds {
    fn check(&mut self, name: &'static str, bind: &[SocketAddr], p: &mut Problems) {
        for addr in bind {
            // Port 0 asks the kernel for a free port, so any number of listeners may use it.
            if addr.port() != 0
                && let Some((_, other)) = self.0.iter().find(|(a, _)| a == addr)
            {
                p.add(format!("listener.{name}.bind"), format!("{addr} is also bound by listener.{other}"));
            }
            self.0.push((*addr, name));
        }
    }
}
