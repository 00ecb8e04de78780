//! The audit's checks, one function per area; each returns its findings.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use rampart_config::Config;
use rampart_smtp::dns::Mx;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::{Finding, Setup, Severity, ptr, txt};

/// MX, SPF, DKIM, DMARC, MTA-STS and TLS-RPT of one domain.
pub async fn domain_dns(setup: &Setup, domain: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let host = setup.config.server.hostname.to_ascii_lowercase();
    let f = |s, problem: String, fix: String| Finding::new(s, "dns", domain, problem, fix);
    match rampart_smtp::dns::mx(&setup.resolver, domain).await {
        Mx::Hosts(hosts) if !hosts.iter().any(|h| h.eq_ignore_ascii_case(&host)) => out.push(f(
            Severity::Medium,
            format!("MX points to {}, not to this server ({host})", hosts.join(", ")),
            format!("publish `{domain}. MX 10 {host}.` (or ignore if another MX relays here)"),
        )),
        Mx::Hosts(_) => {}
        Mx::Null => out.push(f(Severity::High, "a null MX: the domain refuses all mail".into(), format!("publish `{domain}. MX 10 {host}.`"))),
        Mx::NoDomain => out.push(f(Severity::High, "the domain does not exist in DNS".into(), "register it or remove it: rampart domain remove".into())),
        Mx::TempFail(e) => out.push(f(Severity::Medium, format!("DNS did not answer for MX: {e}"), "check the domain's name servers".into())),
    }
    out.extend(spf(domain, &txt(&setup.resolver, domain).await));
    out.extend(dkim(setup, domain).await);
    out.extend(dmarc(domain, &txt(&setup.resolver, &format!("_dmarc.{domain}")).await));
    let sts = txt(&setup.resolver, &format!("_mta-sts.{domain}")).await;
    if !sts.iter().any(|r| r.starts_with("v=STSv1")) {
        out.push(f(Severity::Low, "no MTA-STS policy: senders may deliver without TLS if an attacker strips STARTTLS".into(), "publish _mta-sts TXT and the policy file (rampart dns records)".into()));
    }
    let rpt = txt(&setup.resolver, &format!("_smtp._tls.{domain}")).await;
    if !rpt.iter().any(|r| r.starts_with("v=TLSRPTv1")) {
        out.push(f(Severity::Low, "no TLS-RPT record: you will not hear when senders fail TLS to you".into(), "publish _smtp._tls TXT (rampart dns records)".into()));
    }
    out
}

/// The SPF record's presence and how it ends.
pub fn spf(domain: &str, records: &[String]) -> Vec<Finding> {
    let spf: Vec<&String> = records.iter().filter(|r| r.to_ascii_lowercase().starts_with("v=spf1")).collect();
    let fix = format!("publish `{domain}. TXT \"v=spf1 mx -all\"`");
    let f = |s, problem: &str| vec![Finding::new(s, "dns", domain, problem, fix.clone())];
    match spf.as_slice() {
        [] => f(Severity::High, "no SPF record: anyone may send as this domain"),
        [one] => {
            let terms: Vec<String> = one.split_whitespace().map(str::to_ascii_lowercase).collect();
            if terms.iter().any(|t| t == "+all" || t == "all") {
                f(Severity::High, "SPF ends in +all: every server on the internet passes")
            } else if terms.iter().any(|t| t == "?all") {
                f(Severity::Medium, "SPF ends in ?all: forged mail is neutral, not failed")
            } else if terms.iter().any(|t| t == "~all") {
                f(Severity::Low, "SPF ends in ~all: forged mail only soft-fails (use -all once DMARC reports are clean)")
            } else if !terms.iter().any(|t| t == "-all" || t.starts_with("redirect=")) {
                f(Severity::Medium, "SPF has no final all: unmatched senders are neutral")
            } else {
                Vec::new()
            }
        }
        _ => f(Severity::High, "more than one SPF record: receivers treat that as a permanent error"),
    }
}

/// The DMARC policy and its reporting address.
pub fn dmarc(domain: &str, records: &[String]) -> Vec<Finding> {
    let Some(record) = records.iter().find(|r| r.starts_with("v=DMARC1")) else {
        return vec![Finding::new(Severity::High, "dns", domain, "no DMARC policy: receivers do not reject mail that forges the From domain", format!("publish `_dmarc.{domain}. TXT \"v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}\"`"))];
    };
    let tags: Vec<(String, String)> = record
        .split(';')
        .filter_map(|t| t.split_once('=').map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())))
        .collect();
    let tag = |name: &str| tags.iter().find(|(k, _)| k == name).map(|(_, v)| v.to_ascii_lowercase());
    let mut out = Vec::new();
    if tag("p").as_deref() == Some("none") {
        out.push(Finding::new(Severity::Medium, "dns", domain, "DMARC p=none: forged mail is still delivered", "move to p=quarantine, then p=reject, once reports show your own mail aligned"));
    }
    if tag("rua").is_none() {
        out.push(Finding::new(Severity::Low, "dns", domain, "DMARC has no rua: you get no aggregate reports", format!("add rua=mailto:postmaster@{domain}")));
    }
    out
}

/// Every active key of the domain is published, with the same public key.
async fn dkim(setup: &Setup, domain: &str) -> Vec<Finding> {
    let active: Vec<_> = setup.keys.iter().filter(|k| k.domain == domain && k.active).collect();
    if active.is_empty() {
        return vec![Finding::new(Severity::Medium, "dns", domain, "no active DKIM key: mail from this domain is not signed", format!("rampart dkim keygen {domain}, then publish the record rampart dns records prints"))];
    }
    let mut out = Vec::new();
    for key in active {
        let name = format!("{}._domainkey.{domain}", key.selector);
        let want = base64::engine::general_purpose::STANDARD.encode(&key.public_key);
        let published: Vec<String> = txt(&setup.resolver, &name)
            .await
            .iter()
            .filter_map(|r| r.split(';').find_map(|t| t.trim().strip_prefix("p=").map(|p| p.split_whitespace().collect())))
            .collect();
        let fix = format!("publish the record `rampart dns records {domain}` prints for selector {}", key.selector);
        if published.is_empty() {
            out.push(Finding::new(Severity::High, "dns", &name, "the active DKIM key is not published: receivers fail every signature", fix));
        } else if !published.contains(&want) {
            out.push(Finding::new(Severity::High, "dns", &name, "the published DKIM key is not the active key: receivers fail every signature", fix));
        }
    }
    out
}

/// Each address of the server has a PTR naming the server.
pub async fn reverse_dns(setup: &Setup, ips: &[IpAddr]) -> Vec<Finding> {
    let host = setup.config.server.hostname.to_ascii_lowercase();
    if ips.is_empty() {
        return vec![Finding::new(Severity::Medium, "dns", &host, "the server's host name has no address", format!("publish A/AAAA records for {host}"))];
    }
    let mut out = Vec::new();
    for ip in ips {
        let names = ptr(&setup.resolver, *ip).await;
        if !names.contains(&host) {
            let said = if names.is_empty() { "no PTR".to_string() } else { format!("PTR says {}", names.join(", ")) };
            out.push(Finding::new(Severity::Medium, "dns", ip.to_string(), format!("{said}, not {host}: many receivers refuse or score such mail"), format!("ask the address's provider to set its PTR to {host}")));
        }
    }
    out
}

/// The server's addresses on the DNS blocklists the filter uses.
pub async fn blocklists(setup: &Setup, ips: &[IpAddr]) -> Vec<Finding> {
    let mut out = Vec::new();
    for list in &setup.config.filter.dnsbl {
        for ip in ips {
            let name = format!("{}.{}.", reversed(*ip), list.zone.trim_end_matches('.'));
            let Ok(Ok(found)) = tokio::time::timeout(Duration::from_secs(10), setup.resolver.lookup_ip(name.as_str())).await else { continue };
            // 127.255.255.x is a list refusing the query, not a listing (RFC 5782 practice).
            if found.iter().any(|a| matches!(a, IpAddr::V4(v) if v.octets()[0] == 127 && v.octets()[1] != 255)) {
                out.push(Finding::new(Severity::High, "blocklist", ip.to_string(), format!("listed on {}", list.zone), "find what sent spam from this address, stop it, then request delisting"));
            }
        }
    }
    out
}

fn reversed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v) => v.octets().iter().rev().map(u8::to_string).collect::<Vec<_>>().join("."),
        IpAddr::V6(v) => {
            let hex: String = v.octets().iter().map(|b| format!("{b:02x}")).collect();
            hex.chars().rev().map(String::from).collect::<Vec<_>>().join(".")
        }
    }
}

/// Tries to relay through the MX listener: a 2xx to a foreign recipient without AUTH is an
/// open relay.
pub async fn open_relay(addr: SocketAddr, hostname: &str) -> Vec<Finding> {
    let subject = format!("listener.smtp {addr}");
    match tokio::time::timeout(Duration::from_secs(60), try_relay(addr)).await {
        Ok(Ok(code)) if code.starts_with('2') => vec![Finding::new(Severity::High, "relay", subject, format!("accepted a recipient in a foreign domain without authentication ({code}): an open relay"), "check queue routes and gateway relay_from; only authenticated submission may relay")],
        Ok(Ok(_)) => Vec::new(),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => vec![Finding::new(Severity::Low, "relay", subject, "no server listening: the open-relay test was skipped", format!("start rampart serve on {hostname} and audit again, or pass --smtp HOST:PORT"))],
        Ok(Err(e)) => vec![Finding::new(Severity::Low, "relay", subject, format!("the open-relay test did not finish: {e}"), "audit again")],
        Err(_) => vec![Finding::new(Severity::Low, "relay", subject, "the open-relay test timed out", "audit again")],
    }
}

/// The reply code to `RCPT TO` a foreign address, or of the first refused step before it.
async fn try_relay(addr: SocketAddr) -> std::io::Result<String> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    async fn reply(lines: &mut tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>) -> std::io::Result<String> {
        loop {
            let line = lines.next_line().await?.ok_or_else(|| std::io::Error::other("connection closed"))?;
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(line.chars().take(3).collect());
            }
        }
    }
    let mut code = reply(&mut lines).await?;
    for cmd in ["EHLO audit.relay-test.invalid", "MAIL FROM:<audit@relay-test.invalid>", "RCPT TO:<audit@relay-test.invalid>"] {
        if !code.starts_with('2') {
            break;
        }
        write.write_all(format!("{cmd}\r\n").as_bytes()).await?;
        code = reply(&mut lines).await?;
    }
    let _ = write.write_all(b"QUIT\r\n").await;
    Ok(code)
}

/// Choices in the configuration that weaken it.
pub fn configuration(config: &Config) -> Vec<Finding> {
    let mut out = Vec::new();
    if config.auth.cram_md5 {
        out.push(Finding::new(Severity::Medium, "config", "auth.cram_md5", "CRAM-MD5 is on: the server keeps a password-equivalent secret for it", "set auth.cram_md5 = false; clients use PLAIN or SCRAM over TLS"));
    }
    if !config.tls.enforce_alpn {
        out.push(Finding::new(Severity::Low, "config", "tls.enforce_alpn", "ALPN is not enforced: cross-protocol attacks (ALPACA) are not refused", "set tls.enforce_alpn = true"));
    }
    if config.store.encryption.mode == rampart_config::EncryptionMode::Off {
        out.push(Finding::new(Severity::Low, "storage", config.server.data_dir.display().to_string(), "stored mail is not encrypted at rest", "rampart keys generate, set [store.encryption] mode = \"server\", stop the server and run rampart store encrypt"));
    }
    out
}

/// Password hashes that are not argon2id, or cheaper than the configured cost.
pub fn password_hashes(setup: &Setup) -> Vec<Finding> {
    let a = &setup.config.auth;
    let mut not_argon2id = Vec::new();
    let mut weaker = Vec::new();
    for (address, hash) in &setup.hashes {
        match rampart_auth::argon2id_cost(hash) {
            None => not_argon2id.push(address.as_str()),
            Some(c)
                if c.memory_kib < a.argon2_memory_kib
                    || c.iterations < a.argon2_iterations
                    || c.parallelism < a.argon2_parallelism =>
            {
                weaker.push(address.as_str())
            }
            Some(_) => {}
        }
    }
    let mut out = Vec::new();
    if !not_argon2id.is_empty() {
        out.push(Finding::new(Severity::Medium, "passwords", list(&not_argon2id), "password hashes that are not argon2id", "have these users set a new password (rampart user passwd)"));
    }
    if !weaker.is_empty() {
        out.push(Finding::new(Severity::Low, "passwords", list(&weaker), "argon2id hashes cheaper than the [auth] cost now configured", "they take the new cost when the users next change their passwords"));
    }
    out
}

/// Up to five addresses, and how many more.
fn list(v: &[&str]) -> String {
    let shown: Vec<&str> = v.iter().take(5).copied().collect();
    format!("{}{}", shown.join(", "), if v.len() > 5 { format!(" and {} more", v.len() - 5) } else { String::new() })
}

/// Passwords older than `[auth] password_max_age_days` (off at 0), and those whose age is
/// unknown (set before the store recorded it), at `now` (unix seconds).
pub fn password_age(auth: &rampart_config::Auth, changes: &[(String, Option<i64>)], now: i64) -> Vec<Finding> {
    let max_days = i64::from(auth.password_max_age_days);
    if max_days == 0 {
        return Vec::new();
    }
    let old: Vec<&str> = changes.iter().filter(|(_, at)| at.is_some_and(|t| (now - t) / 86_400 > max_days)).map(|(a, _)| a.as_str()).collect();
    let unknown: Vec<&str> = changes.iter().filter(|(_, at)| at.is_none()).map(|(a, _)| a.as_str()).collect();
    let fix = "have these users set a new password (rampart user passwd, or the web self-service)";
    let mut out = Vec::new();
    if !old.is_empty() {
        out.push(Finding::new(Severity::Medium, "passwords", list(&old), format!("passwords older than {max_days} days (auth.password_max_age_days)"), fix));
    }
    if !unknown.is_empty() {
        out.push(Finding::new(Severity::Low, "passwords", list(&unknown), "passwords of unknown age (set before Rampart recorded the date)", fix));
    }
    out
}

/// Web administrators who log in with a password alone: one phished password is the whole
/// server.
pub fn admins_without_2fa(setup: &Setup) -> Vec<Finding> {
    setup
        .admins_without_2fa
        .iter()
        .map(|a| {
            Finding::new(Severity::High, "web", a, "an administrator without two-factor login", format!("enroll TOTP at the next login (web.require_2fa_for_admins), or rampart user totp enroll {a}"))
        })
        .collect()
}

/// The file `rampart backup` leaves in the data directory.
pub const BACKUP_STAMP: &str = "last-backup";

pub fn backup_age(data_dir: &Path, max_days: u64) -> Vec<Finding> {
    let subject = data_dir.display().to_string();
    let fix = "run rampart backup DIR, daily from a timer, and copy DIR off the machine";
    let stamp = std::fs::read_to_string(data_dir.join(BACKUP_STAMP)).ok().and_then(|t| t.split_whitespace().next()?.parse::<i64>().ok());
    match stamp {
        None => vec![Finding::new(Severity::Medium, "backup", subject, "no backup has been recorded", fix)],
        Some(at) => {
            let days = (chrono::Utc::now().timestamp() - at) / 86_400;
            if days > max_days as i64 {
                vec![Finding::new(Severity::Medium, "backup", subject, format!("the last backup is {days} days old"), fix)]
            } else {
                Vec::new()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(f: Vec<Finding>) -> Vec<(Severity, String)> {
        f.into_iter().map(|f| (f.severity, f.problem)).collect()
    }

    #[test]
    fn spf_endings() {
        let one = |r: &str| problems(spf("d.test", &[r.to_string()]));
        assert_eq!(one("v=spf1 mx +all")[0].0, Severity::High);
        assert_eq!(one("v=spf1 mx all")[0].0, Severity::High);
        assert_eq!(one("v=spf1 mx ?all")[0].0, Severity::Medium);
        assert_eq!(one("v=spf1 mx ~all")[0].0, Severity::Low);
        assert!(one("v=spf1 mx -all").is_empty());
        assert!(one("v=spf1 redirect=_spf.d.test").is_empty());
        assert_eq!(problems(spf("d.test", &[]))[0].0, Severity::High);
        assert_eq!(problems(spf("d.test", &["v=spf1 -all".into(), "v=spf1 mx -all".into()]))[0].0, Severity::High);
        assert!(problems(spf("d.test", &["google-site-verification=x".into(), "v=spf1 -all".into()])).is_empty());
    }

    #[test]
    fn dmarc_policies() {
        assert_eq!(problems(dmarc("d.test", &[]))[0].0, Severity::High);
        let none = problems(dmarc("d.test", &["v=DMARC1; p=none".into()]));
        assert_eq!(none.iter().map(|p| p.0).collect::<Vec<_>>(), [Severity::Medium, Severity::Low]);
        assert!(problems(dmarc("d.test", &["v=DMARC1; p=reject; rua=mailto:a@d.test".into()])).is_empty());
    }

    #[test]
    fn password_ages() {
        let day = 86_400;
        let now = 100 * day;
        let changes = vec![("old@d.test".to_string(), Some(now - 91 * day)), ("new@d.test".to_string(), Some(now - 5 * day)), ("unknown@d.test".to_string(), None)];
        let mut auth = rampart_config::Auth::default();
        assert!(password_age(&auth, &changes, now).is_empty(), "off by default");
        auth.password_max_age_days = 90;
        let found = password_age(&auth, &changes, now);
        assert_eq!(found.len(), 2);
        assert_eq!((found[0].severity, found[0].subject.as_str()), (Severity::Medium, "old@d.test"));
        assert_eq!((found[1].severity, found[1].subject.as_str()), (Severity::Low, "unknown@d.test"));
    }

    #[test]
    fn reversed_names() {
        assert_eq!(reversed("192.0.2.1".parse().unwrap()), "1.2.0.192");
        assert!(reversed("2001:db8::1".parse().unwrap()).starts_with("1.0.0.0.0.0.0.0"));
        assert!(reversed("2001:db8::1".parse().unwrap()).ends_with("8.b.d.0.1.0.0.2"));
    }
}
