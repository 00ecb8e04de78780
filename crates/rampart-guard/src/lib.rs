//! The guard: the first layer every connection meets, and the memory of who misbehaved.
//!
//! - [`Guard::admit`] runs at accept, before a byte is read or a TLS handshake starts, in
//!   order of cost: firewall (`deny`, then `allow`, globally and per listener), the allowlist,
//!   bans, concurrent connections per address and per /24 or /64, new connections per minute.
//!   It returns an [`Admission`] whose drop releases the connection's counts.
//! - Sessions report what clients do: failed logins ([`Guard::auth_failure`]), refused
//!   recipients ([`Guard::probe`]), early talkers ([`Guard::pregreet`]); past the thresholds
//!   the address (or its network) is banned, each repeat offence doubling the ban.
//! - An account under attack from many addresses is protected without locking its owner out:
//!   [`Guard::login_allowed`] then admits only addresses that logged in to it before. Its
//!   failures are counted in the store, so an attack spread over several nodes (PostgreSQL)
//!   or across a restart is seen whole.
//! - Bans are kept in the store, so they survive restarts and apply to every listener; the
//!   in-memory copy is refreshed every few seconds so `rampart ban` works on a running server.
//!
//! Every decision is one log line with stable key=value fields and a metrics counter.
#![forbid(unsafe_code)]

mod window;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use rampart_config::{Cidr, Config};
use rampart_store::{Ban, GuardStore};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{info, warn};

use window::Window;

/// How long a client that waited for the greeting is spared the pregreet wait.
const PREGREET_PASS_TTL: Duration = Duration::from_secs(24 * 3600);
/// Expired bans are kept this long to count repeat offences, then forgotten.
const BAN_MEMORY: Duration = Duration::from_secs(30 * 24 * 3600);

/// Why a connection was turned away at accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A `deny` rule matched, or an `allow` list exists and did not.
    Firewall,
    Banned { until: i64, reason: String },
    ConnectionsPerIp,
    ConnectionsPerNet,
    ConnectionRate,
    /// The listener's (or the server's) own connection cap is full; counted by the caller.
    ListenerConnections,
}

impl Refusal {
    /// The `reason=` of the log line and the metrics label.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Firewall => "firewall",
            Refusal::Banned { .. } => "banned",
            Refusal::ConnectionsPerIp => "connections_per_ip",
            Refusal::ConnectionsPerNet => "connections_per_net",
            Refusal::ConnectionRate => "connection_rate",
            Refusal::ListenerConnections => "listener_connections",
        }
    }

    /// Firewall and ban refusals are final; the others are "try later".
    pub fn is_permanent(&self) -> bool {
        matches!(self, Refusal::Firewall | Refusal::Banned { .. })
    }
}

/// What a reported event led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Continue,
    /// The client is now banned: end the session.
    Banned,
}

/// The rules that SIGHUP can replace.
#[derive(Debug, Clone)]
struct Rules {
    limits: rampart_config::Guard,
    per_listener: HashMap<String, (Vec<Cidr>, Vec<Cidr>)>,
    /// `limits.max_tls_handshakes` permits. A reload that changes the cap brings a new
    /// semaphore: new handshakes wait on it at once, those already running finish on the old
    /// one (they end within `handshake_timeout`). A reload that keeps the cap keeps this one, so
    /// a SIGHUP that does not touch the cap changes nothing here.
    handshakes: Arc<Semaphore>,
}

impl Rules {
    /// The rules in `config`, keeping `current`'s handshake permits when the cap is unchanged.
    fn from_config(config: &Config, current: Option<&Rules>) -> Rules {
        let cap = config.guard.max_tls_handshakes;
        let handshakes = match current {
            Some(rules) if rules.limits.max_tls_handshakes == cap => rules.handshakes.clone(),
            _ => Arc::new(Semaphore::new(cap)),
        };
        let mut per_listener = HashMap::new();
        for (name, allow, deny) in config.listener.firewall_lists() {
            per_listener.insert(name.to_string(), (allow.to_vec(), deny.to_vec()));
        }
        Rules { limits: config.guard.clone(), per_listener, handshakes }
    }
}

#[derive(Default)]
struct State {
    conns_ip: HashMap<IpAddr, u32>,
    conns_net: HashMap<IpNet, u32>,
    new_conns: HashMap<IpAddr, Window>,
    auth_ip: HashMap<IpAddr, Window>,
    auth_net: HashMap<IpNet, Window>,
    probes: HashMap<IpAddr, Window>,
    pregreets: HashMap<IpAddr, Window>,
    messages: HashMap<IpAddr, Window>,
    recipients: HashMap<IpAddr, Window>,
    pregreet_passed: HashMap<IpAddr, Instant>,
    /// Active bans by network (a single address is a /32 or /128).
    bans: HashMap<IpNet, Ban>,
    /// Networks known per account, loaded from the store when first needed.
    known: HashMap<String, Vec<IpNet>>,
}

pub struct Guard {
    rules: RwLock<Arc<Rules>>,
    store: Arc<dyn GuardStore>,
    state: Mutex<State>,
}

fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}

/// IPv4 clients on dual-stack sockets appear as `::ffff:a.b.c.d`.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The address as a one-host network.
fn host_net(ip: IpAddr) -> IpNet {
    IpNet::from(ip)
}

/// The network one customer usually has: an IPv4 /24 or an IPv6 /64.
pub fn wide_net(ip: IpAddr) -> IpNet {
    let len = if ip.is_ipv4() { 24 } else { 64 };
    IpNet::new(ip, len).expect("24 and 64 are valid prefix lengths").trunc()
}

/// Where a login comes from, as remembered for its account: the address for IPv4, the /64
/// for IPv6 (privacy addresses change within it).
fn login_net(ip: IpAddr) -> IpNet {
    if ip.is_ipv4() { host_net(ip) } else { wide_net(ip) }
}

fn matches(list: &[Cidr], ip: &IpAddr) -> bool {
    list.iter().any(|c| c.contains(ip))
}

/// Held for the life of an admitted connection.
pub struct Admission {
    guard: Arc<Guard>,
    ip: IpAddr,
    counted: bool,
    basis: Basis,
}

/// On what grounds a connection was let in: recorded as the first entry of every message's
/// verdict trail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// Checked against the bans and within every cap and rate.
    Admitted,
    /// On `guard.allowlist`: no bans, caps or rates apply.
    Allowlisted,
    /// On `guard.limit_exceptions`: not banned, and spared the caps and rates.
    LimitException,
}

impl Admission {
    pub fn basis(&self) -> Basis {
        self.basis
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if !self.counted {
            return;
        }
        let mut s = self.guard.state.lock().expect("guard lock");
        if let Some(n) = s.conns_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                s.conns_ip.remove(&self.ip);
            }
        }
        let net = wide_net(self.ip);
        if let Some(n) = s.conns_net.get_mut(&net) {
            *n -= 1;
            if *n == 0 {
                s.conns_net.remove(&net);
            }
        }
    }
}

impl Guard {
    pub fn new(config: &Config, store: Arc<dyn GuardStore>) -> Arc<Guard> {
        Arc::new(Guard {
            rules: RwLock::new(Arc::new(Rules::from_config(config, None))),
            store,
            state: Mutex::new(State::default()),
        })
    }

    fn rules(&self) -> Arc<Rules> {
        self.rules.read().expect("rules lock").clone()
    }

    /// The firewall rules in force (as last loaded or reloaded by SIGHUP): (scope, kind,
    /// network), the global lists first (`deny`, `allow`, `allowlist`, `limit_exceptions`), then
    /// each listener's `deny` and `allow` by name.
    pub fn firewall_rules(&self) -> Vec<(String, &'static str, String)> {
        let rules = self.rules();
        let l = &rules.limits;
        let mut out = Vec::new();
        for (kind, list) in [("deny", &l.deny), ("allow", &l.allow), ("allowlist", &l.allowlist), ("limit_exceptions", &l.limit_exceptions)] {
            out.extend(list.iter().map(|c| ("global".to_string(), kind, c.to_string())));
        }
        let mut names: Vec<&String> = rules.per_listener.keys().collect();
        names.sort();
        for name in names {
            let (allow, deny) = &rules.per_listener[name];
            out.extend(deny.iter().map(|c| (name.clone(), "deny", c.to_string())));
            out.extend(allow.iter().map(|c| (name.clone(), "allow", c.to_string())));
        }
        out
    }

    /// Takes new firewall rules and limits, the TLS handshake cap included (SIGHUP). Counts
    /// and bans are kept.
    pub fn reload(&self, config: &Config) {
        let mut rules = self.rules.write().expect("rules lock");
        *rules = Arc::new(Rules::from_config(config, Some(&rules)));
    }

    pub fn limits(&self) -> rampart_config::Guard {
        self.rules().limits.clone()
    }

    pub fn is_allowlisted(&self, ip: IpAddr) -> bool {
        matches(&self.rules().limits.allowlist, &canonical_ip(ip))
    }

    /// Not held to connection caps, rates and pacing (allowlisted or `limit_exceptions`).
    pub fn is_limit_exempt(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        let rules = self.rules();
        matches(&rules.limits.allowlist, &ip) || matches(&rules.limits.limit_exceptions, &ip)
    }

    /// Loads active bans from the store, replacing the in-memory set, so bans added or lifted
    /// with `rampart ban` take effect on a running server. Also forgets old expired bans.
    pub async fn refresh(&self) {
        let now = now_unix();
        match self.store.bans().await {
            Ok(rows) => {
                let active: HashMap<IpNet, Ban> = rows
                    .into_iter()
                    .filter(|b| b.until > now)
                    .filter_map(|b| b.net.parse::<IpNet>().ok().map(|n| (n, b)))
                    .collect();
                self.state.lock().expect("guard lock").bans = active;
            }
            Err(e) => warn!(event = "guard_refresh_failed", error = %e.chain()),
        }
        let _ = self.store.bans_prune(now - BAN_MEMORY.as_secs() as i64).await;
    }

    /// Drops counters nobody needs any more, so an address-spraying client cannot grow memory.
    pub fn sweep(&self) {
        let window = self.rules().limits.failure_window.max(Duration::from_secs(3600));
        let now = Instant::now();
        let mut s = self.state.lock().expect("guard lock");
        s.new_conns.retain(|_, w| !w.is_stale(now, Duration::from_secs(60)));
        s.auth_ip.retain(|_, w| !w.is_stale(now, window));
        s.auth_net.retain(|_, w| !w.is_stale(now, window));
        s.probes.retain(|_, w| !w.is_stale(now, window));
        s.pregreets.retain(|_, w| !w.is_stale(now, window));
        s.messages.retain(|_, w| !w.is_stale(now, Duration::from_secs(3600)));
        s.recipients.retain(|_, w| !w.is_stale(now, Duration::from_secs(3600)));
        s.pregreet_passed.retain(|_, t| now.duration_since(*t) < PREGREET_PASS_TTL);
        let unix = now_unix();
        s.bans.retain(|_, b| b.until > unix);
        s.known.clear();
    }

    /// Runs [`Guard::refresh`] every two seconds and [`Guard::sweep`] every minute.
    pub async fn maintain(self: Arc<Self>) {
        let mut tick = 0u64;
        loop {
            self.refresh().await;
            if tick.is_multiple_of(30) {
                self.sweep();
                let window = self.rules().limits.failure_window.as_secs() as i64;
                if let Err(e) = self.store.login_failures_prune(now_unix() - window).await {
                    warn!(event = "guard_store_failed", error = %e.chain());
                }
            }
            tick += 1;
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    fn active_ban(s: &State, ip: IpAddr) -> Option<&Ban> {
        let unix = now_unix();
        [host_net(ip), wide_net(ip)].iter().find_map(|n| s.bans.get(n)).filter(|b| b.until > unix)
    }

    /// Decides whether a new connection may proceed. Call before reading from it.
    pub fn admit(self: &Arc<Self>, listener: &str, ip: IpAddr) -> Result<Admission, Refusal> {
        let ip = canonical_ip(ip);
        let rules = self.rules();
        let l = &rules.limits;
        let (listener_allow, listener_deny) =
            rules.per_listener.get(listener).map(|(a, d)| (a.as_slice(), d.as_slice())).unwrap_or((&[], &[]));
        if matches(&l.deny, &ip) || matches(listener_deny, &ip) {
            return Err(self.refused(listener, ip, Refusal::Firewall));
        }
        if (!l.allow.is_empty() && !matches(&l.allow, &ip)) || (!listener_allow.is_empty() && !matches(listener_allow, &ip)) {
            return Err(self.refused(listener, ip, Refusal::Firewall));
        }
        metrics::counter!("rampart_connections_total", "listener" => listener.to_string()).increment(1);
        if matches(&l.allowlist, &ip) {
            return Ok(Admission { guard: self.clone(), ip, counted: false, basis: Basis::Allowlisted });
        }
        let mut s = self.state.lock().expect("guard lock");
        if let Some(ban) = Self::active_ban(&s, ip) {
            let refusal = Refusal::Banned { until: ban.until, reason: ban.reason.clone() };
            drop(s);
            return Err(self.refused(listener, ip, refusal));
        }
        if matches(&l.limit_exceptions, &ip) {
            return Ok(Admission { guard: self.clone(), ip, counted: false, basis: Basis::LimitException });
        }
        let net = wide_net(ip);
        let refusal = if s.conns_ip.get(&ip).copied().unwrap_or(0) >= l.max_connections_per_ip {
            Some(Refusal::ConnectionsPerIp)
        } else if s.conns_net.get(&net).copied().unwrap_or(0) >= l.max_connections_per_net {
            Some(Refusal::ConnectionsPerNet)
        } else if s.new_conns.entry(ip).or_default().hit(Instant::now(), Duration::from_secs(60), l.connection_rate_per_ip)
            > l.connection_rate_per_ip as usize
        {
            Some(Refusal::ConnectionRate)
        } else {
            None
        };
        if let Some(r) = refusal {
            drop(s);
            return Err(self.refused(listener, ip, r));
        }
        *s.conns_ip.entry(ip).or_default() += 1;
        *s.conns_net.entry(net).or_default() += 1;
        Ok(Admission { guard: self.clone(), ip, counted: true, basis: Basis::Admitted })
    }

    fn refused(&self, listener: &str, ip: IpAddr, r: Refusal) -> Refusal {
        metrics::counter!("rampart_connections_refused_total", "listener" => listener.to_string(), "reason" => r.reason())
            .increment(1);
        match &r {
            Refusal::Firewall => info!(event = "firewall_denied", ip = %ip, listener),
            Refusal::Banned { until, reason } => {
                info!(event = "banned_refused", ip = %ip, listener, until = %fmt_time(*until), reason = %reason)
            }
            other => info!(event = "rate_limited", ip = %ip, listener, limit = other.reason()),
        }
        r
    }

    /// A permit to run a TLS handshake, waited for at most the handshake timeout.
    pub async fn handshake_permit(&self) -> Option<OwnedSemaphorePermit> {
        let rules = self.rules();
        let permit = rules.handshakes.clone().acquire_owned();
        tokio::time::timeout(rules.limits.handshake_timeout, permit).await.ok()?.ok()
    }

    pub fn handshake_timeout(&self) -> Duration {
        self.rules().limits.handshake_timeout
    }

    /// Bans `net` for the base ban time doubled per earlier offence.
    async fn ban(&self, net: IpNet, reason: &str) {
        let l = self.rules().limits.clone();
        let key = net.to_string();
        let previous = self.store.bans().await.ok().and_then(|rows| rows.into_iter().find(|b| b.net == key)).map_or(0, |b| b.offenses);
        let offenses = previous + 1;
        let factor = 1u32.checked_shl(offenses.saturating_sub(1).min(30)).unwrap_or(u32::MAX);
        let duration = l.ban_time.saturating_mul(factor).min(l.max_ban_time);
        let now = now_unix();
        let ban = Ban { net: key.clone(), until: now + duration.as_secs() as i64, reason: reason.to_string(), offenses, updated: now };
        if let Err(e) = self.store.ban_put(&ban).await {
            warn!(event = "ban_store_failed", net = %key, error = %e.chain());
        }
        warn!(event = "ban", ip = %key, until = %fmt_time(ban.until), reason, offenses, seconds = duration.as_secs());
        metrics::counter!("rampart_bans_total", "reason" => reason.to_string()).increment(1);
        let mut s = self.state.lock().expect("guard lock");
        s.bans.insert(net, ban);
    }

    /// Counts an event in `pick(state)[ip]` and bans the address past `threshold`.
    async fn count_and_maybe_ban(
        &self,
        ip: IpAddr,
        reason: &str,
        threshold: u32,
        pick: fn(&mut State) -> &mut HashMap<IpAddr, Window>,
    ) -> Verdict {
        let ip = canonical_ip(ip);
        if self.is_allowlisted(ip) {
            return Verdict::Continue;
        }
        let window = self.rules().limits.failure_window;
        let n = pick(&mut self.state.lock().expect("guard lock")).entry(ip).or_default().hit(Instant::now(), window, threshold);
        if n >= threshold as usize {
            self.ban(host_net(ip), reason).await;
            pick(&mut self.state.lock().expect("guard lock")).remove(&ip);
            return Verdict::Banned;
        }
        Verdict::Continue
    }

    /// A failed login from `ip` for `user` (what the client claimed).
    pub async fn auth_failure(&self, proto: &str, ip: IpAddr, user: Option<&str>) -> Verdict {
        metrics::counter!("rampart_auth_total", "proto" => proto.to_string(), "result" => "failure").increment(1);
        let ip = canonical_ip(ip);
        if self.is_allowlisted(ip) {
            return Verdict::Continue;
        }
        let l = self.rules().limits.clone();
        let now = Instant::now();
        let net = wide_net(ip);
        if let Some(user) = user {
            let unix = now_unix();
            let since = unix - l.failure_window.as_secs() as i64;
            if let Err(e) = self.store.login_failure_add(&user.to_lowercase(), unix, since).await {
                warn!(event = "guard_store_failed", error = %e.chain());
            }
        }
        let net_count = self.state.lock().expect("guard lock").auth_net.entry(net).or_default().hit(now, l.failure_window, l.auth_failures_per_net);
        if net_count >= l.auth_failures_per_net as usize {
            self.ban(net, "auth_failures_net").await;
            self.state.lock().expect("guard lock").auth_net.remove(&net);
            return Verdict::Banned;
        }
        self.count_and_maybe_ban(ip, "auth_failures", l.auth_failures_per_ip, |s| &mut s.auth_ip).await
    }

    /// A successful login: remembered so the account's owner keeps access during an attack.
    pub async fn auth_success(&self, proto: &str, ip: IpAddr, user: &str) {
        metrics::counter!("rampart_auth_total", "proto" => proto.to_string(), "result" => "success").increment(1);
        let net = login_net(canonical_ip(ip));
        let user = user.to_lowercase();
        {
            let mut s = self.state.lock().expect("guard lock");
            if let Some(known) = s.known.get_mut(&user)
                && !known.contains(&net)
            {
                known.push(net);
            }
        }
        if let Err(e) = self.store.known_login_put(&user, &net.to_string(), proto, now_unix()).await {
            warn!(event = "guard_store_failed", error = %e.chain());
        }
    }

    /// False when `user` is under attack (too many failures from anywhere) and `ip` never
    /// logged in to it: the correct password from an unknown address is then not enough.
    pub async fn login_allowed(&self, ip: IpAddr, user: &str) -> bool {
        let ip = canonical_ip(ip);
        if self.is_allowlisted(ip) {
            return true;
        }
        let l = self.rules().limits.clone();
        let user = user.to_lowercase();
        let since = now_unix() - l.failure_window.as_secs() as i64;
        let attacked = match self.store.login_failures(&user, since).await {
            Ok(n) => n >= u64::from(l.auth_failures_per_account),
            // As below: a store error does not lock everyone out of their mail.
            Err(e) => {
                warn!(event = "guard_store_failed", error = %e.chain());
                false
            }
        };
        if !attacked {
            return true;
        }
        let cached = self.state.lock().expect("guard lock").known.get(&user).cloned();
        let known = match cached {
            Some(k) => k,
            None => {
                let since = now_unix() - l.known_login_ttl.as_secs() as i64;
                let nets: Vec<IpNet> = match self.store.known_logins(&user, since).await {
                    Ok(rows) => rows.iter().filter_map(|n| n.parse().ok()).collect(),
                    // Unknown is safer than locking everyone out of their mail on a store error.
                    Err(_) => return true,
                };
                self.state.lock().expect("guard lock").known.insert(user.clone(), nets.clone());
                nets
            }
        };
        let allowed = known.iter().any(|n| n.contains(&ip));
        if !allowed {
            info!(event = "account_protected", ip = %ip, user = %user);
        }
        allowed
    }

    /// Whether an administrator suspended every login of `user` (`rampart user suspend`
    /// without `--sending`). Read from the store at each login, so the CLI's change applies at
    /// once; a store error lets the login through, as `login_allowed` does.
    pub async fn login_suspended(&self, user: &str) -> bool {
        match self.store.login_suspended(&user.to_lowercase()).await {
            Ok(suspended) => suspended,
            Err(e) => {
                warn!(event = "guard_store_failed", error = %e.chain());
                false
            }
        }
    }

    /// A recipient refused as unknown or as a relay attempt.
    pub async fn probe(&self, ip: IpAddr) -> Verdict {
        let threshold = self.rules().limits.probes_per_ip;
        self.count_and_maybe_ban(ip, "recipient_probing", threshold, |s| &mut s.probes).await
    }

    /// Whether a client from `ip` still has to pass the pregreet test.
    pub fn pregreet_needed(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        if self.is_allowlisted(ip) {
            return false;
        }
        let s = self.state.lock().expect("guard lock");
        s.pregreet_passed.get(&ip).is_none_or(|t| t.elapsed() >= PREGREET_PASS_TTL)
    }

    pub fn pregreet_passed(&self, ip: IpAddr) {
        self.state.lock().expect("guard lock").pregreet_passed.insert(canonical_ip(ip), Instant::now());
    }

    /// A client talked before the greeting.
    pub async fn pregreet(&self, ip: IpAddr) -> Verdict {
        let threshold = self.rules().limits.pregreet_per_ip;
        self.count_and_maybe_ban(ip, "pregreet", threshold, |s| &mut s.pregreets).await
    }

    /// Counts an SMTP transaction from `ip`; false when the hourly limit is reached.
    pub fn smtp_message(&self, ip: IpAddr) -> bool {
        let limit = self.rules().limits.smtp_messages_per_ip;
        self.hourly(ip, limit, |s| &mut s.messages)
    }

    /// Counts an accepted SMTP recipient from `ip`; false when the hourly limit is reached.
    pub fn smtp_recipient(&self, ip: IpAddr) -> bool {
        let limit = self.rules().limits.smtp_recipients_per_ip;
        self.hourly(ip, limit, |s| &mut s.recipients)
    }

    fn hourly(&self, ip: IpAddr, limit: u32, pick: fn(&mut State) -> &mut HashMap<IpAddr, Window>) -> bool {
        let ip = canonical_ip(ip);
        if self.is_limit_exempt(ip) {
            return true;
        }
        let n = pick(&mut self.state.lock().expect("guard lock"))
            .entry(ip)
            .or_default()
            .hit(Instant::now(), Duration::from_secs(3600), limit + 1);
        n <= limit as usize
    }

    pub fn imap_commands_per_second(&self) -> u32 {
        self.rules().limits.imap_commands_per_second
    }
}

/// Unix seconds as RFC 3339 UTC, for log lines.
pub fn fmt_time(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).map_or_else(|| t.to_string(), |d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
}

/// Parses an address or network for `rampart ban`: a bare address bans that host.
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    s.parse::<Cidr>().map(|c| c.0)
}

/// An administrator's ban (`rampart ban add`, `POST /api/v1/bans`): stored as one more offence
/// of `net`; a running server applies it at its next refresh (within 2 s).
pub async fn ban_manually(store: &dyn GuardStore, net: IpNet, duration: Duration, reason: &str) -> Result<Ban, rampart_store::StoreError> {
    let key = net.to_string();
    let now = now_unix();
    let previous = store.bans().await?.into_iter().find(|b| b.net == key).map_or(0, |b| b.offenses);
    let ban = Ban { net: key, until: now + duration.as_secs() as i64, reason: reason.to_string(), offenses: previous + 1, updated: now };
    store.ban_put(&ban).await?;
    Ok(ban)
}

#[cfg(test)]
mod tests;
