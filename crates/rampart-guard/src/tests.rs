use std::net::IpAddr;
use std::sync::Arc;

use rampart_store::{SqliteStore, Store};

use super::*;

fn config(edit: impl FnOnce(&mut Config)) -> Config {
    let mut c = Config::default();
    c.guard.auth_failures_per_ip = 3;
    c.guard.auth_failures_per_net = 5;
    c.guard.auth_failures_per_account = 4;
    c.guard.max_connections_per_ip = 2;
    c.guard.max_connections_per_net = 3;
    edit(&mut c);
    c
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

async fn guard(edit: impl FnOnce(&mut Config)) -> (tempfile::TempDir, Arc<Guard>, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).unwrap());
    (dir, Guard::new(&config(edit), store.clone()), store)
}

#[tokio::test]
async fn firewall_rules() {
    let (_d, g, _) = guard(|c| {
        c.guard.deny = vec!["192.0.2.0/24".parse().unwrap()];
        c.listener.submission.allow = vec!["198.51.100.0/24".parse().unwrap()];
    })
    .await;
    assert_eq!(g.admit("smtp", ip("192.0.2.9")).err(), Some(Refusal::Firewall));
    assert_eq!(g.admit("smtp", ip("::ffff:192.0.2.9")).err(), Some(Refusal::Firewall));
    assert!(g.admit("smtp", ip("203.0.113.1")).is_ok());
    assert_eq!(g.admit("submission", ip("203.0.113.1")).err(), Some(Refusal::Firewall));
    assert!(g.admit("submission", ip("198.51.100.5")).is_ok());
}

#[tokio::test]
async fn limit_exceptions_skip_caps_and_rates_but_not_bans() {
    let (_d, g, _) = guard(|c| c.guard.smtp_messages_per_ip = 1).await;
    // The default exceptions: this host's own loopback addresses, not the rest of 127/8.
    let held: Vec<_> = (0..10).map(|_| g.admit("imap", ip("127.0.0.1")).unwrap()).collect();
    assert!(g.admit("imap", ip("::1")).is_ok());
    assert!(g.is_limit_exempt(ip("::ffff:127.0.0.1")));
    assert!(g.smtp_message(ip("127.0.0.1")) && g.smtp_message(ip("127.0.0.1")));
    let _a = g.admit("imap", ip("127.0.0.2")).unwrap();
    let _b = g.admit("imap", ip("127.0.0.2")).unwrap();
    assert_eq!(g.admit("imap", ip("127.0.0.2")).err(), Some(Refusal::ConnectionsPerIp));
    assert!(g.smtp_message(ip("127.0.0.2")) && !g.smtp_message(ip("127.0.0.2")));
    drop(held);
    // Failed logins still count and ban.
    for _ in 0..3 {
        g.auth_failure("imap", ip("127.0.0.1"), Some("bob@example.test")).await;
    }
    assert!(matches!(g.admit("imap", ip("127.0.0.1")).err(), Some(Refusal::Banned { .. })));
}

#[tokio::test]
async fn connection_caps_per_ip_and_net_release_on_drop() {
    let (_d, g, _) = guard(|_| {}).await;
    let a = g.admit("smtp", ip("203.0.113.1")).unwrap();
    let _b = g.admit("smtp", ip("203.0.113.1")).unwrap();
    assert_eq!(g.admit("smtp", ip("203.0.113.1")).err(), Some(Refusal::ConnectionsPerIp));
    let _c = g.admit("smtp", ip("203.0.113.2")).unwrap();
    assert_eq!(g.admit("smtp", ip("203.0.113.3")).err(), Some(Refusal::ConnectionsPerNet));
    assert!(g.admit("smtp", ip("203.0.114.3")).is_ok());
    drop(a);
    assert!(g.admit("smtp", ip("203.0.113.3")).is_ok());
}

#[tokio::test]
async fn brute_force_bans_with_doubling_and_allowlist_wins() {
    let (_d, g, store) = guard(|c| {
        c.guard.allowlist = vec!["198.51.100.1".parse().unwrap()];
        c.guard.auth_failures_per_net = 100;
    })
    .await;
    let attacker = ip("203.0.113.66");
    assert_eq!(g.auth_failure("smtp", attacker, Some("bob@example.test")).await, Verdict::Continue);
    assert_eq!(g.auth_failure("smtp", attacker, Some("bob@example.test")).await, Verdict::Continue);
    assert_eq!(g.auth_failure("imap", attacker, Some("bob@example.test")).await, Verdict::Banned);
    assert!(matches!(g.admit("imap", attacker), Err(Refusal::Banned { .. })));
    let first = store.bans().await.unwrap().into_iter().find(|b| b.net == "203.0.113.66/32").unwrap();
    assert_eq!(first.offenses, 1);
    // Lift it by hand, offend again: the second ban is twice as long.
    store.ban_put(&Ban { until: 0, ..first.clone() }).await.unwrap();
    g.refresh().await;
    assert!(g.admit("imap", attacker).is_ok());
    for _ in 0..3 {
        g.auth_failure("smtp", attacker, None).await;
    }
    let second = store.bans().await.unwrap().into_iter().find(|b| b.net == "203.0.113.66/32").unwrap();
    assert_eq!(second.offenses, 2);
    assert!(second.until - second.updated >= 2 * (first.until - first.updated) - 1);
    for _ in 0..10 {
        assert_eq!(g.auth_failure("smtp", ip("198.51.100.1"), None).await, Verdict::Continue);
    }
    assert!(g.admit("smtp", ip("198.51.100.1")).is_ok());
}

#[tokio::test]
async fn a_network_is_banned_when_its_addresses_share_the_work() {
    let (_d, g, _) = guard(|_| {}).await;
    let mut verdicts = Vec::new();
    for i in 1..=5 {
        verdicts.push(g.auth_failure("smtp", ip(&format!("203.0.113.{i}")), None).await);
    }
    assert_eq!(verdicts.last(), Some(&Verdict::Banned));
    assert!(matches!(g.admit("smtp", ip("203.0.113.200")), Err(Refusal::Banned { .. })));
    assert!(g.admit("smtp", ip("203.0.114.1")).is_ok());
}

#[tokio::test]
async fn the_owner_keeps_access_to_an_attacked_account() {
    let (_d, g, _) = guard(|c| c.guard.auth_failures_per_net = 100).await;
    let owner = ip("198.51.100.20");
    g.auth_success("imap", owner, "bob@example.test").await;
    assert!(g.login_allowed(ip("203.0.113.1"), "bob@example.test").await);
    // Four attackers, one failure each: no address is banned, but the account is attacked.
    for i in 1..=4 {
        g.auth_failure("smtp", ip(&format!("192.0.2.{i}")), Some("BOB@example.test")).await;
    }
    assert!(g.login_allowed(owner, "bob@example.test").await);
    assert!(!g.login_allowed(ip("203.0.113.1"), "bob@example.test").await);
    assert!(g.login_allowed(ip("203.0.113.1"), "alice@example.test").await);
    // Counted in the store: another guard on it (a restarted server, another node) sees the
    // attack too.
    let other = Guard::new(&config(|c| c.guard.auth_failures_per_net = 100), g.store.clone());
    assert!(!other.login_allowed(ip("203.0.113.1"), "bob@example.test").await);
}

#[tokio::test]
async fn hourly_message_limits() {
    let (_d, g, _) = guard(|c| c.guard.smtp_messages_per_ip = 2).await;
    let c = ip("203.0.113.9");
    assert!(g.smtp_message(c) && g.smtp_message(c));
    assert!(!g.smtp_message(c));
    assert!(g.smtp_message(ip("203.0.113.10")));
}

#[tokio::test]
async fn reload_applies_a_new_tls_handshake_cap_to_new_handshakes() {
    let cap = |n: usize| {
        move |c: &mut Config| {
            c.guard.max_tls_handshakes = n;
            c.guard.handshake_timeout = Duration::from_millis(50);
        }
    };
    let (_d, g, _) = guard(cap(1)).await;
    let first = g.handshake_permit().await.expect("one handshake may run");
    assert!(g.handshake_permit().await.is_none(), "the cap is 1");
    // Raised: new handshakes may run at once, without a restart.
    g.reload(&config(cap(3)));
    let more: Vec<_> = handshakes(&g, 3).await;
    assert_eq!(more.iter().filter(|p| p.is_some()).count(), 3);
    assert!(g.handshake_permit().await.is_none(), "the cap is 3");
    // A reload that keeps the cap keeps the count of handshakes running.
    g.reload(&config(cap(3)));
    assert!(g.handshake_permit().await.is_none(), "still 3 running");
    // Lowered: new handshakes count against the new cap at once.
    drop(more);
    drop(first);
    g.reload(&config(cap(1)));
    let _one = g.handshake_permit().await.expect("one handshake may run");
    assert!(g.handshake_permit().await.is_none(), "the cap is 1 again");
}

/// `n` handshake permits asked for one after another.
async fn handshakes(g: &Guard, n: usize) -> Vec<Option<tokio::sync::OwnedSemaphorePermit>> {
    let mut permits = Vec::new();
    for _ in 0..n {
        permits.push(g.handshake_permit().await);
    }
    permits
}
