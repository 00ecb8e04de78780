//! `rampart audit`: the live setup checked against what a careful administrator would want,
//! each finding with its severity and the fix.
//!
//! What is checked: the published DNS of each local domain (MX, SPF strictness, the DKIM
//! record of every active key, DMARC policy and rua, MTA-STS and TLS-RPT), the PTR of the
//! server's addresses, those addresses on the configured DNS blocklists, every certificate the
//! server presents, `[tls]` files and the store's (expiry, self-signed), an open-relay attempt on the running MX listener,
//! configuration choices (CRAM-MD5, ALPN enforcement), web admins without two-factor login,
//! password hashes weaker than the policy,
//! encryption at rest, and the age of the last `rampart backup`. The exit status is non-zero
//! when a finding is high. The server runs the same checks for the web dashboard (`webdash`),
//! all but the open-relay attempt.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use anyhow::bail;
use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::{RData, RecordType};
use rampart_config::Config;
use rampart_store::{DkimKey, Store};
use serde_json::json;

pub mod certs;
pub mod checks;

#[derive(clap::Args)]
pub struct AuditArgs {
    /// Audit this domain's DNS only (default: every local domain).
    #[arg(long)]
    domain: Option<String>,
    /// Findings as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// The MX listener to try relaying through (default: the first `listener.smtp.bind`).
    #[arg(long, value_name = "HOST:PORT")]
    smtp: Option<SocketAddr>,
    /// A backup older than this many days is a finding.
    #[arg(long, default_value_t = BACKUP_MAX_AGE_DAYS)]
    backup_max_age: u64,
}

/// `--backup-max-age`'s default, and the age the server's background runs use.
pub const BACKUP_MAX_AGE_DAYS: u64 = 7;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    High,
    Medium,
    Low,
}

impl Severity {
    fn name(self) -> &'static str {
        match self {
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }
}

/// One thing to fix.
#[derive(Debug)]
pub struct Finding {
    pub severity: Severity,
    /// `dns`, `tls`, `relay`, `config`, `passwords`, `storage`, `backup`, `blocklist`.
    pub area: &'static str,
    /// The domain, host, file or listener it concerns.
    pub subject: String,
    pub problem: String,
    pub fix: String,
}

impl Finding {
    pub fn new(severity: Severity, area: &'static str, subject: impl Into<String>, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Finding { severity, area, subject: subject.into(), problem: problem.into(), fix: fix.into() }
    }
}

/// What the checks need from the running setup.
pub struct Setup {
    pub config: Config,
    pub resolver: TokioResolver,
    pub keys: Vec<DkimKey>,
    pub domains: Vec<String>,
    pub hashes: Vec<(String, String)>,
    /// Each account's last password change (unix seconds; `None`: before the store recorded it).
    pub password_changes: Vec<(String, Option<i64>)>,
    /// Administrators of the web layer without a confirmed second factor.
    pub admins_without_2fa: Vec<String>,
    /// The certificates the server presents: `[tls]` files and the store's.
    pub certs: Vec<certs::Presented>,
}

pub fn command(config_path: &Path, args: AuditArgs) -> anyhow::Result<()> {
    let (config, store, rt) = crate::cli::open(config_path)?;
    let findings = rt.block_on(async {
        let setup = setup(&*store, config, args.domain.as_deref()).await?;
        let smtp = args.smtp.or_else(|| setup.config.listener.smtp.bind.first().map(|a| loopback(*a)));
        anyhow::Ok(run(&setup, smtp, args.backup_max_age).await)
    })?;
    print(&findings, args.json);
    let high = findings.iter().filter(|f| f.severity == Severity::High).count();
    if high > 0 {
        bail!("{high} high finding(s)");
    }
    Ok(())
}

/// What the checks read, gathered from the store and a fresh resolver (no answers cached from
/// an earlier run: a record just fixed is seen fixed). `domain`: that one instead of every
/// local domain. The CLI and the server's background runs (`webdash`) both start here.
pub async fn setup(store: &dyn Store, config: Config, domain: Option<&str>) -> anyhow::Result<Setup> {
    let resolver = rampart_smtp::dns::public_resolver(&config.dns.nameservers).map_err(|e| anyhow::anyhow!("dns.nameservers: {e}"))?;
    let domains = match domain {
        Some(d) => vec![d.trim_end_matches('.').to_ascii_lowercase()],
        None => store.list_domains().await?,
    };
    let keys = store.dkim_keys(None).await?;
    let hashes = store.list_accounts().await?.into_iter().map(|a| (a.address, a.password_hash)).collect();
    let admins_without_2fa = store
        .web_accounts()
        .await?
        .into_iter()
        .filter(|a| a.role == rampart_store::Role::Admin && !a.totp)
        .map(|a| a.account.address)
        .collect();
    let password_changes = store.password_changes().await?;
    let certs = certs::presented(&config, store).await?;
    Ok(Setup { config, resolver, keys, domains, hashes, password_changes, admins_without_2fa, certs })
}

/// Every check, most severe findings first.
pub async fn run(setup: &Setup, smtp: Option<SocketAddr>, backup_max_age: u64) -> Vec<Finding> {
    let mut out = Vec::new();
    for domain in &setup.domains {
        out.extend(checks::domain_dns(setup, domain).await);
    }
    let ips = host_addresses(&setup.resolver, &setup.config.server.hostname).await;
    out.extend(checks::reverse_dns(setup, &ips).await);
    out.extend(checks::blocklists(setup, &ips).await);
    out.extend(certs::certificates(&setup.certs));
    if let Some(addr) = smtp {
        out.extend(checks::open_relay(addr, &setup.config.server.hostname).await);
    }
    out.extend(checks::configuration(&setup.config));
    out.extend(checks::password_hashes(setup));
    out.extend(checks::password_age(&setup.config.auth, &setup.password_changes, chrono::Utc::now().timestamp()));
    out.extend(checks::admins_without_2fa(setup));
    out.extend(checks::backup_age(&setup.config.server.data_dir, backup_max_age));
    out.sort_by_key(|f| f.severity);
    out
}

impl Finding {
    /// The finding as `--json` prints it and the web API serves it: one shape for both.
    pub fn to_web(&self) -> rampart_web::AuditFinding {
        rampart_web::AuditFinding {
            severity: self.severity.name(),
            area: self.area,
            subject: self.subject.clone(),
            problem: self.problem.clone(),
            fix: self.fix.clone(),
        }
    }
}

fn print(findings: &[Finding], as_json: bool) {
    if as_json {
        let list: Vec<_> = findings.iter().map(Finding::to_web).collect();
        println!("{}", serde_json::to_string_pretty(&json!({ "findings": list })).unwrap_or_default());
        return;
    }
    if findings.is_empty() {
        println!("no findings");
    }
    for f in findings {
        println!("{:<6} {:<9} {}: {}\n       fix: {}", f.severity.name().to_uppercase(), f.area, f.subject, f.problem, f.fix);
    }
}

/// A wildcard bind address is tried on loopback.
fn loopback(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => SocketAddr::new(IpAddr::from([127, 0, 0, 1]), addr.port()),
        ip if ip.is_unspecified() => SocketAddr::new(IpAddr::from(std::net::Ipv6Addr::LOCALHOST), addr.port()),
        _ => addr,
    }
}

async fn host_addresses(resolver: &TokioResolver, host: &str) -> Vec<IpAddr> {
    rampart_smtp::dns::addresses(resolver, host).await.unwrap_or_default()
}

/// The TXT records at `name` as strings (each record's pieces joined); empty when there are
/// none or DNS failed.
pub async fn txt(resolver: &TokioResolver, name: &str) -> Vec<String> {
    let fqdn = format!("{}.", name.trim_end_matches('.'));
    let Ok(lookup) = tokio::time::timeout(Duration::from_secs(10), resolver.lookup(fqdn.as_str(), RecordType::TXT)).await else {
        return Vec::new();
    };
    let Ok(lookup) = lookup else { return Vec::new() };
    lookup
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(t) => Some(crate::dnscheck::txt_text(t)),
            _ => None,
        })
        .collect()
}

/// The PTR names of `ip`, without the trailing dot.
pub async fn ptr(resolver: &TokioResolver, ip: IpAddr) -> Vec<String> {
    let Ok(Ok(lookup)) = tokio::time::timeout(Duration::from_secs(10), resolver.reverse_lookup(ip)).await else {
        return Vec::new();
    };
    lookup
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            RData::PTR(p) => Some(p.0.to_ascii().trim_end_matches('.').to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}
