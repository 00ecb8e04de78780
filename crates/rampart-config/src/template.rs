//! The config file `rampart init` writes: every key, its default and why.
//! A unit test checks that this text parses to exactly [`crate::Config::default`].

/// The documented configuration for a server called `hostname`.
pub fn template(hostname: &str) -> String {
    TEMPLATE.replace("@HOSTNAME@", hostname)
}

const TEMPLATE: &str = r#"# Rampart configuration. Every key is shown with its default value.
# Relative paths are relative to the directory of this file.
# Check a change with:  rampart config check --config rampart.toml
# Override a key at start with:  rampart serve --set 'listener.smtp.bind=["127.0.0.1:2525"]'

[server]
# The name used in SMTP banners, EHLO replies and Received headers; publish it as your MX.
hostname = "@HOSTNAME@"
# The embedded store (SQLite metadata and message files) lives here.
data_dir = "data"
# Concurrent connections over all listeners together (each listener has its own cap too).
max_connections = 10000

[tls]
# Certificate chain and private key (PEM) served to clients that ask for no other name.
# `rampart init` wrote a self-signed certificate; replace it with one from a public CA.
# Send SIGHUP to `rampart serve` to reload certificates without dropping connections.
# Only TLS 1.2 and 1.3 with forward-secret (ECDHE) suites are offered, server order first.
cert = "tls/cert.pem"
key = "tls/key.pem"
# More certificates chosen by SNI, one table per host name ("*.example.org" matches one label):
# [[tls.sni]]
# hostname = "mail.example.org"
# cert = "tls/mail.example.org.pem"
# key = "tls/mail.example.org.key"
sni = []

# Listeners. The names are fixed. `bind` is a list of addresses; an empty list turns the
# listener off. `tls` is "starttls" (plain TCP, then STARTTLS) or "implicit" (TLS at once).

# Every listener also takes `allow` (when not empty, only these networks may connect) and
# `deny` (these may not), as lists like ["192.0.2.0/24", "2001:db8::/32", "198.51.100.7"].

# Port 25: mail from the internet for local domains (the MX role). No AUTH here.
[listener.smtp]
bind = ["0.0.0.0:25", "[::]:25"]
tls = "starttls"
allow = []
deny = []
# Hold the greeting this long and refuse clients that talk first (spam bots do; RFC 5321
# says a client waits for the greeting). A client that passed is not held again for a day.
pregreet_wait = "3s"
# A whole command line must arrive within this time (against slow-loris clients).
line_timeout = "1m"
# Concurrent connections; past it new clients get "421" and are closed.
max_connections = 1000
# Longest command line in bytes with CRLF (RFC 5321 asks for at least 512).
max_command_line = 2048
# Longest line of message data in bytes. RFC 5321 says 1000, real mail exceeds it; the cap
# only stops one endless line.
max_data_line = 65536
# Largest message in bytes (50 MiB), advertised in SIZE and enforced while streaming.
max_message_size = 52428800
# Recipients per message; more get "452 4.5.3" (RFC 5321 asks for 100).
max_recipients = 100
# Protocol errors in one session before "421" and close.
max_errors = 10
# Wait this long for the next command or data (RFC 5321 section 4.5.3.2: 5 minutes).
idle_timeout = "5m"
# No connection lasts longer than this, however busy.
session_timeout = "1h"

# Port 587: mail submission by authenticated users, STARTTLS (RFC 6409).
[listener.submission]
bind = ["0.0.0.0:587", "[::]:587"]
tls = "starttls"
allow = []
deny = []
pregreet_wait = "0s"
line_timeout = "1m"
max_connections = 1000
max_command_line = 2048
max_data_line = 65536
max_message_size = 52428800
max_recipients = 100
max_errors = 10
idle_timeout = "5m"
session_timeout = "1h"

# Port 465: mail submission over implicit TLS (RFC 8314).
[listener.submissions]
bind = ["0.0.0.0:465", "[::]:465"]
tls = "implicit"
allow = []
deny = []
pregreet_wait = "0s"
line_timeout = "1m"
max_connections = 1000
max_command_line = 2048
max_data_line = 65536
max_message_size = 52428800
max_recipients = 100
max_errors = 10
idle_timeout = "5m"
session_timeout = "1h"

# Port 143: IMAP with STARTTLS; no login before TLS.
[listener.imap]
bind = ["0.0.0.0:143", "[::]:143"]
tls = "starttls"
allow = []
deny = []
max_connections = 5000
# RFC 3501 section 5.4: an idle client may be logged out after at least 30 minutes.
idle_timeout = "30m"
# Longest command line in bytes, literals not counted (RFC 7162 asks for at least 8192).
max_command_line = 65536
# Largest literal accepted before login; bigger ones are refused unread, so an
# unauthenticated client cannot make the server hold memory.
max_literal_before_login = 4096
# Largest message APPEND accepts (50 MiB), advertised as APPENDLIMIT.
max_append_size = 52428800
# Largest command apart from an APPEND message: its lines and literals together (1 MiB).
max_command_size = 1048576
# Protocol errors (BAD) in one session before BYE.
max_errors = 20
# Storage quota per account in bytes, reported by GETQUOTAROOT and enforced on APPEND;
# 0 means no limit.
quota_storage = 0

# Port 993: IMAP over implicit TLS.
[listener.imaps]
bind = ["0.0.0.0:993", "[::]:993"]
tls = "implicit"
allow = []
deny = []
max_connections = 5000
idle_timeout = "30m"
max_command_line = 65536
max_literal_before_login = 4096
max_append_size = 52428800
max_command_size = 1048576
max_errors = 20
quota_storage = 0

# Prometheus metrics (GET /metrics). Keep it on loopback or behind a firewall.
[listener.metrics]
bind = ["127.0.0.1:9125"]

# The guard acts before any other layer: at connect (before TLS), then on every login,
# recipient and message. Addresses it bans are refused on every listener; bans survive
# restarts. See `rampart ban list`.
[guard]
# Never banned or rate limited (a webmail or proxy host, your office); `deny` still applies.
allowlist = []
# Not held to the connection caps and rates, SMTP message rates or IMAP pacing, but still
# banned for failed logins: this host's own processes (local webmail, monitoring) connect
# often and fast. Other loopback addresses (127.0.0.2, ...) are treated like anyone.
limit_exceptions = ["127.0.0.1/32", "::1/128"]
# When not empty, only these networks may connect at all; `deny` networks never may.
allow = []
deny = []
# Say "554 5.7.1" to a denied or banned SMTP client before closing (never on implicit TLS).
deny_banner = true
# Concurrent connections per address, and per IPv4 /24 or IPv6 /64; new connections per
# address per minute.
max_connections_per_ip = 20
max_connections_per_net = 100
connection_rate_per_ip = 60
# TLS handshakes at once, and the time a client has to finish one.
max_tls_handshakes = 200
handshake_timeout = "10s"
# SMTP messages and recipients accepted per address per hour ("451 4.7.0" past them).
smtp_messages_per_ip = 500
smtp_recipients_per_ip = 2500
# IMAP commands per session per second; faster clients are slowed down.
imap_commands_per_second = 50
# Within failure_window: failed logins per address, per /24 or /64, and per account;
# refused recipients (unknown users, relay attempts) and early talkers per address.
# Past the address or network limits the address (network) is banned for ban_time, doubled
# for each repeat offence up to max_ban_time. Past the account limit, only addresses that
# logged in to that account before may try it, so its owner is never locked out.
auth_failures_per_ip = 10
auth_failures_per_net = 30
auth_failures_per_account = 20
probes_per_ip = 20
pregreet_per_ip = 3
failure_window = "10m"
ban_time = "1h"
max_ban_time = "7days"
# How long an address stays "known" for an account after a successful login.
known_login_ttl = "90days"

[smtp]
# "user+tag@domain" is delivered to "user@domain". Empty turns sub-addressing off.
recipient_delimiter = "+"

[auth]
# CRAM-MD5 is off: it needs a password-equivalent secret stored on the server (only passwords
# set while it is on get one), and it hides nothing TLS does not already protect.
# DIGEST-MD5 is never offered (RFC 6331 made it historic).
cram_md5 = false
# Password policy for `user add` and `user passwd`: length in characters, zxcvbn score 0-4;
# passwords containing the user's name or domain, or in a list of common passwords, are refused.
password_min_length = 12
password_min_score = 3
# argon2id cost (OWASP minimum: 19 MiB, 2 passes, 1 lane). Old hashes keep their own cost.
argon2_memory_kib = 19456
argon2_iterations = 2
argon2_parallelism = 1
# PBKDF2 rounds for SCRAM-SHA-256 keys (RFC 7677 asks for at least 4096).
scram_iterations = 4096
# Failed authentications per session before it is closed, and the pause before each failure
# reply, multiplied by the number of failures so far.
max_failures = 3
failure_delay = "1s"

[submission]
# Leave the client's IP address and HELO name out of Received headers of submitted mail.
hide_client = false

# Users who may send as addresses they do not own (as MAIL FROM and in From:).
# Patterns: an address, "*@domain" or "*".
[submission.allowed_senders]
# "newsletter@example.org" = ["news@example.org", "*@lists.example.org"]

[queue]
# Deliveries at once, and at once to one destination domain.
concurrency = 32
per_domain_concurrency = 4
# Waits after a temporary failure; the last one repeats until the message expires and bounces.
retry_schedule = ["5m", "10m", "30m", "1h", "2h", "4h"]
expiry = "5days"
# Port of remote MX hosts.
remote_port = 25
connect_timeout = "30s"
command_timeout = "5m"
# Extra CAs (PEM) to trust when verifying remote servers, e.g. a private CA:
# extra_ca_file = "tls/extra-ca.pem"
# Routes: per-destination TLS policy and smart hosts. The first route that matches wins.
# tls = "opportunistic" (default: STARTTLS when offered), "require" (never in clear),
# "verify" (STARTTLS with a valid certificate) or "implicit" (TLS on connect, smart hosts only).
# [[queue.route]]
# domains = ["bank.example"]
# tls = "verify"
# [[queue.route]]
# domains = ["*"]                  # everything else through a smart host
# host = "smtp.provider.example"
# port = 465
# tls = "implicit"
# auth_username = "me@example.org"
# auth_password_file = "secrets/smarthost"
# client_cert = "tls/client.pem"   # optional
# client_key = "tls/client.key"

[store]
# "sqlite": the embedded store, no external database needed.
backend = "sqlite"

[dns]
# Resolvers as "IP:PORT". Empty means the system resolver (/etc/resolv.conf).
nameservers = []

# Sender authentication of mail arriving on the MX listener: SPF (RFC 7208) for the HELO and
# MAIL FROM identities, DKIM (RFC 6376) for every signature, ARC (RFC 8617), DMARC (RFC 7489)
# and iprev. Every message gets exactly one Authentication-Results header (RFC 8601) with our
# authserv-id; incoming ones that claim it are removed. Each result is in the message's verdict
# trail: `rampart message why ID`.
[auth_checks]
enabled = true
# The name in Authentication-Results. Empty means server.hostname.
authserv_id = ""
# Forward-confirmed reverse DNS of the client, recorded (not used to refuse mail).
iprev = true
# A message failing DMARC of a domain that publishes p=reject is refused with "550 5.7.1" at
# the end of DATA; p=quarantine sends it to Junk. Turning dmarc_reject off quarantines instead.
dmarc_reject = true
dmarc_quarantine = true
# SPF fail where no DMARC policy covers the From domain: "tag" (to Junk), "reject" (550 5.7.23)
# or "accept" (record only). Not "reject" by default: forwarding breaks SPF (RFC 7208 App. D).
spf_fail = "tag"
# DNS errors while evaluating DMARC: "accept" the message, or "defer" it with 451.
dns_temperror = "accept"
# ARC sealers (RFC 8617) trusted to vouch for mail they forwarded: their valid chain overrides
# a DMARC failure (RFC 7489 section 6.7 local policy). List mailing-list and forwarder domains.
trusted_arc_sealers = []

# DKIM signing (RSA-SHA256 and Ed25519, relaxed/relaxed; From, To, Subject and Date oversigned)
# of mail that authenticated users submit, when the From domain has keys in the signing table:
#   rampart dkim keygen example.org --selector s2026 --algorithm rsa   (prints the TXT record)
# A second key of an algorithm waits until `rampart dkim activate DOMAIN SELECTOR` (rotation:
# publish the new record first; keep the old one published until mail signed with it is read).
# Mail that local aliases forward to other servers is ARC-sealed with the alias domain's key.
[dkim]
sign = true
arc_seal = true

# DMARC aggregate reports (RFC 7489 section 7.2) to domains that ask for them with rua=. Every
# evaluation is kept until the next run; reports to addresses outside the domain are sent only
# when that domain authorizes it (RFC 7489 section 7.1).
[dmarc]
send_reports = true
report_interval = "1day"
# Sender of the reports; empty means noreply-dmarc@<server.hostname>.
report_from = ""
# Organization named in reports; empty means server.hostname.
org_name = ""
# A local address (with an account or alias) where other domains send their reports to us
# (publish it as rua= in your DMARC record); they are parsed and listed by
# `rampart dmarc reports`. Empty turns this off.
report_address = ""

[log]
# error, warn, info, debug, trace, or a filter like "info,rampart_smtp=debug".
# The RUST_LOG environment variable wins when it is set.
level = "info"
# Also append log lines to this file, e.g. for fail2ban (contrib/fail2ban/); "" for stderr only.
file = ""
"#;
