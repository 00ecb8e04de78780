//! Behaviour every backend must have, role by role: each test is one generic function over the
//! role traits, run against SQLite (`sqlite_runs`) and against a real PostgreSQL
//! (`postgres_runs`, a fresh database of the process's test cluster, `postgres::testdb`).
//! A backend that passes the same function behaves the same for callers.

use crate::containment::{Signal, Suspension, SuspensionScope};
use crate::prelude::*;
use crate::quota::{BUCKET, DAY, HOUR, Submitted, Usage};
use crate::sqlite::now;
use crate::{Ban, ErrorKind, Result, StoreError};

/// Counting a submission as `deliver_submitted` does, until both backends have the message
/// path: each backend's own counting function, in its own transaction.
#[async_trait::async_trait]
trait RecordSubmitted {
    async fn submitted(&self, s: Submitted, at: i64);
}

#[async_trait::async_trait]
impl RecordSubmitted for crate::SqliteStore {
    async fn submitted(&self, s: Submitted, at: i64) {
        self.record_submitted(s, at).await.unwrap();
    }
}

#[async_trait::async_trait]
impl RecordSubmitted for crate::PgStore {
    async fn submitted(&self, s: Submitted, at: i64) {
        self.record_submitted(s, at).await.unwrap();
    }
}

/// bob's message to `rcpts` (all external), with Message-ID `id`.
fn sent(id: &str, rcpts: &[&str]) -> Submitted {
    Submitted {
        account: "bob@example.test".into(),
        recipients: rcpts.len() as u64,
        external: rcpts.iter().map(|r| r.to_string()).collect(),
        message_id: id.into(),
        relayed: false,
    }
}

fn signal(kind: &str, count: u64) -> Signal {
    Signal { account: "bob@example.test".into(), kind: kind.into(), count, detail: String::new() }
}

async fn domains_accounts_aliases(store: &(impl DirectoryStore + ?Sized)) {
    store.add_domain("Example.TEST").await.unwrap();
    assert_eq!(store.list_domains().await.unwrap(), vec!["example.test"]);
    assert!(matches!(store.add_domain("example.test").await, Err(StoreError::Exists(_))));
    assert!(store.is_local_domain("EXAMPLE.test.").await.unwrap());
    assert!(!store.is_local_domain("other.test").await.unwrap());

    let bob = store.add_account("Bob@example.test", "$argon2id$x").await.unwrap();
    assert!(matches!(store.add_account("bob@example.test", "h").await, Err(StoreError::Exists(_))));
    assert!(matches!(store.add_account("carol@elsewhere.test", "h").await, Err(StoreError::NotLocalDomain(_))));
    let account = store.account("BOB@example.test").await.unwrap().unwrap();
    assert_eq!((account.id, account.address.as_str(), account.password_hash.as_str()), (bob, "bob@example.test", "$argon2id$x"));
    assert_eq!(store.account("nobody@example.test").await.unwrap(), None);
    assert_eq!(store.account("not an address").await.unwrap(), None);

    store.add_alias("postmaster@example.test", "bob@example.test").await.unwrap();
    store.add_alias("team@example.test", "postmaster@example.test").await.unwrap();
    store.add_alias("team@example.test", "friend@remote.test").await.unwrap();
    assert!(matches!(store.add_alias("team@example.test", "friend@remote.test").await, Err(StoreError::Exists(_))));
    assert!(matches!(store.add_alias("bob@example.test", "x@example.test").await, Err(StoreError::Exists(_))));
    assert!(matches!(store.add_account("postmaster@example.test", "h").await, Err(StoreError::Exists(_))));
    assert!(matches!(store.add_alias("x@elsewhere.test", "bob@example.test").await, Err(StoreError::NotLocalDomain(_))));
    assert_eq!(store.list_aliases().await.unwrap().len(), 3);
    assert_eq!(store.aliases_of("bob@example.test").await.unwrap(), vec!["postmaster@example.test".to_string()]);

    let r = store.resolve("team@example.test").await.unwrap();
    assert_eq!(r.accounts, vec![bob]);
    assert_eq!(r.remote, vec!["friend@remote.test".to_string()]);
    assert_eq!(store.resolve("bob@example.test").await.unwrap().accounts, vec![bob]);
    assert_eq!(store.resolve("someone@remote.test").await.unwrap().remote, vec!["someone@remote.test".to_string()]);
    assert!(store.resolve("nobody@example.test").await.unwrap().is_empty());
    assert!(store.resolve("user%remote.test@example.test").await.unwrap().is_empty());

    assert!(matches!(store.remove_domain("example.test").await, Err(StoreError::InUse { accounts: 1, aliases: 3, .. })));
    assert!(matches!(store.remove_domain("nothing.test").await, Err(StoreError::NotFound(_))));
    store.remove_alias("team@example.test", None).await.unwrap();
    store.remove_alias("postmaster@example.test", Some("bob@example.test")).await.unwrap();
    assert!(matches!(store.remove_alias("postmaster@example.test", None).await, Err(StoreError::NotFound(_))));
    store.remove_account("bob@example.test").await.unwrap();
    assert!(matches!(store.remove_account("bob@example.test").await, Err(StoreError::NotFound(_))));
    assert!(store.list_accounts().await.unwrap().is_empty());
    store.remove_domain("example.test").await.unwrap();
    assert!(store.list_domains().await.unwrap().is_empty());
}

async fn alias_loops_terminate(store: &(impl DirectoryStore + ?Sized)) {
    store.add_domain("example.test").await.unwrap();
    store.add_alias("a@example.test", "b@example.test").await.unwrap();
    store.add_alias("b@example.test", "a@example.test").await.unwrap();
    assert!(store.resolve("a@example.test").await.unwrap().is_empty());
    // A chain deeper than the limit stops there instead of following it for ever.
    for i in 0..20 {
        store.add_alias(&format!("c{i}@example.test"), &format!("c{}@example.test", i + 1)).await.unwrap();
    }
    store.add_account("c20@example.test", "h").await.unwrap();
    assert!(store.resolve("c0@example.test").await.unwrap().is_empty());
    assert_eq!(store.resolve("c15@example.test").await.unwrap().accounts.len(), 1);
}

async fn secrets_and_app_passwords(store: &(impl DirectoryStore + ?Sized)) {
    store.add_domain("example.test").await.unwrap();
    let secrets = crate::Secrets { password_hash: "h1".into(), scram_sha256: Some("s1".into()), cram_secret: Some("c1".into()) };
    store.add_account_with("bob@example.test", &secrets).await.unwrap();
    store.add_app_password("bob@example.test", " phone ", "ah1").await.unwrap();
    assert!(matches!(store.add_app_password("bob@example.test", "phone", "ah2").await, Err(StoreError::Exists(_))));
    assert!(matches!(store.add_app_password("nobody@example.test", "phone", "ah2").await, Err(StoreError::NotFound(_))));
    let c = store.credentials("BOB@example.test").await.unwrap().unwrap();
    assert_eq!((c.scram_sha256.as_deref(), c.cram_secret.as_deref()), (Some("s1"), Some("c1")));
    assert_eq!(c.app_passwords.len(), 1);
    let phone = &c.app_passwords[0];
    assert_eq!((phone.name.as_str(), phone.hash.as_str(), phone.last_used), ("phone", "ah1", None));
    store.touch_app_password(phone.id).await.unwrap();
    assert!(store.list_app_passwords("bob@example.test").await.unwrap()[0].last_used.is_some());
    store.set_password("bob@example.test", "h2").await.unwrap();
    let c = store.credentials("bob@example.test").await.unwrap().unwrap();
    assert_eq!(c.account.password_hash, "h2");
    assert_eq!(c.scram_sha256, None, "a new password drops the old SCRAM keys");
    assert!(matches!(store.set_password("nobody@example.test", "h").await, Err(StoreError::NotFound(_))));
    assert_eq!(store.credentials("nobody@example.test").await.unwrap(), None);
    store.revoke_app_password("bob@example.test", "phone").await.unwrap();
    assert!(matches!(store.revoke_app_password("bob@example.test", "phone").await, Err(StoreError::NotFound(_))));
    assert!(store.list_app_passwords("bob@example.test").await.unwrap().is_empty());
    store.add_alias("b@example.test", "bob@example.test").await.unwrap();
    assert_eq!(store.aliases_of("bob@example.test").await.unwrap(), vec!["b@example.test".to_string()]);
}

async fn refusals_are_typed_and_keep_their_text(store: &(impl DirectoryStore + ?Sized)) {
    fn refused<T>(r: Result<T>) -> Option<(ErrorKind, String)> {
        r.err().map(|e| (e.kind(), e.to_string()))
    }
    store.add_domain("example.test").await.unwrap();
    assert_eq!(
        refused(store.add_domain("not a domain").await),
        Some((ErrorKind::Refused, "`not a domain` is not a domain name".into()))
    );
    let e = store.add_account("no-at-sign", "h").await.unwrap_err();
    assert!(matches!(e, StoreError::InvalidAddress { problem: crate::AddressProblem::NoAt, .. }), "{e:?}");
    assert_eq!(
        refused(store.add_account("carol@elsewhere.test", "h").await),
        Some((ErrorKind::Refused, "elsewhere.test is not a local domain; add it first".into()))
    );
    store.add_account("bob@example.test", "h").await.unwrap();
    assert!(matches!(store.add_alias("bob@example.test", "BOB@example.test").await, Err(StoreError::SelfAlias(_))));
    assert_eq!(
        refused(store.remove_domain("example.test").await),
        Some((ErrorKind::Refused, "domain example.test still has 1 accounts and 0 aliases; remove them first".into()))
    );
    assert!(matches!(store.add_app_password("bob@example.test", " ", "x").await, Err(StoreError::InvalidAppPasswordName)));
    for i in 0..crate::sqlite::MAX_APP_PASSWORDS {
        store.add_app_password("bob@example.test", &format!("app{i}"), "x").await.unwrap();
    }
    assert!(matches!(
        store.add_app_password("bob@example.test", "one more", "x").await,
        Err(StoreError::TooManyAppPasswords { count: crate::sqlite::MAX_APP_PASSWORDS, .. })
    ));
    assert!(matches!(store.remove_alias("x@example.test", None).await, Err(StoreError::NotFound(_))));
}

async fn password_changes_are_dated(store: &(impl DirectoryStore + ?Sized)) {
    store.add_domain("example.test").await.unwrap();
    let before = crate::sqlite::now();
    store.add_account("bob@example.test", "h1").await.unwrap();
    store.add_account("alice@example.test", "h1").await.unwrap();
    let changes = store.password_changes().await.unwrap();
    assert_eq!(changes.iter().map(|(a, _)| a.as_str()).collect::<Vec<_>>(), ["alice@example.test", "bob@example.test"]);
    assert!(changes.iter().all(|(_, at)| at.is_some_and(|t| t >= before)), "{changes:?}");
}

async fn bans_and_state(store: &(impl GuardStore + ?Sized)) {
    let ban = |net: &str, until, updated| Ban { net: net.into(), until, reason: "auth".into(), offenses: 1, updated };
    store.ban_put(&ban("192.0.2.7/32", 500, 100)).await.unwrap();
    store.ban_put(&ban("2001:db8::/64", 900, 100)).await.unwrap();
    let mut again = ban("192.0.2.7/32", 1000, 200);
    again.offenses = 2;
    store.ban_put(&again).await.unwrap();
    assert_eq!(store.bans().await.unwrap(), vec![again.clone(), ban("2001:db8::/64", 900, 100)], "one row per net, latest first");
    // Expired and not updated since `before`: forgiven; the other one stays.
    store.bans_prune(950).await.unwrap();
    assert_eq!(store.bans().await.unwrap(), vec![again]);
    assert!(store.ban_remove("192.0.2.7/32").await.unwrap());
    assert!(!store.ban_remove("192.0.2.7/32").await.unwrap());
    assert!(store.bans().await.unwrap().is_empty());

    assert_eq!(store.state("k").await.unwrap(), None);
    store.set_state("k", "1").await.unwrap();
    store.set_state("k", "2").await.unwrap();
    assert_eq!(store.state("k").await.unwrap().as_deref(), Some("2"));
    // The swap nodes agree by: only from the value expected.
    assert!(!store.swap_state("k", Some("1"), "3").await.unwrap());
    assert!(store.swap_state("k", Some("2"), "3").await.unwrap());
    assert!(!store.swap_state("k", None, "4").await.unwrap(), "present");
    assert!(store.swap_state("fresh", None, "1").await.unwrap());
    assert_eq!(store.state("k").await.unwrap().as_deref(), Some("3"));
}

async fn login_failures_are_counted_per_account_and_window(store: &(impl GuardStore + ?Sized)) {
    use crate::guard::FAILURE_BUCKET;
    let t = 1_000_000 * FAILURE_BUCKET;
    for i in 0..3 {
        assert_eq!(store.login_failure_add("bob@example.test", t + i, t).await.unwrap(), i as u64 + 1);
    }
    // Another bucket, another account.
    assert_eq!(store.login_failure_add("bob@example.test", t + FAILURE_BUCKET, t).await.unwrap(), 4);
    assert_eq!(store.login_failure_add("alice@example.test", t, t).await.unwrap(), 1);
    assert_eq!(store.login_failures("bob@example.test", t).await.unwrap(), 4);
    // The window starts after the first bucket: only the last failure is in it.
    assert_eq!(store.login_failures("bob@example.test", t + FAILURE_BUCKET).await.unwrap(), 1);
    assert_eq!(store.login_failure_add("bob@example.test", t + FAILURE_BUCKET, t + FAILURE_BUCKET).await.unwrap(), 2);
    assert_eq!(store.login_failures("carol@example.test", 0).await.unwrap(), 0);
    store.login_failures_prune(t + FAILURE_BUCKET).await.unwrap();
    assert_eq!(store.login_failures("bob@example.test", 0).await.unwrap(), 2);
    assert_eq!(store.login_failures("alice@example.test", 0).await.unwrap(), 0);
}

async fn login_history_is_by_address_and_goes_with_the_account<S: DirectoryStore + GuardStore + ?Sized>(store: &S) {
    store.add_domain("example.test").await.unwrap();
    store.add_account("bob@example.test", "$argon2id$x").await.unwrap();
    store.known_login_put("bob@example.test", "192.0.2.1/32", "web", 100).await.unwrap();
    store.known_login_put("bob@example.test", "192.0.2.1/32", "imap", 200).await.unwrap();
    store.known_login_put("bob@example.test", "192.0.2.1/32", "imap", 300).await.unwrap();
    store.known_login_put("bob@example.test", "198.51.100.1/32", "smtp", 50).await.unwrap();
    let history = store.login_history("Bob@example.test").await.unwrap();
    assert_eq!(
        history.iter().map(|l| (l.net.as_str(), l.proto.as_str(), l.first_seen, l.last_seen, l.logins)).collect::<Vec<_>>(),
        [("192.0.2.1/32", "imap", 200, 300, 2), ("192.0.2.1/32", "web", 100, 100, 1), ("198.51.100.1/32", "smtp", 50, 50, 1)]
    );
    let mut known = store.known_logins("bob@example.test", 100).await.unwrap();
    known.sort();
    assert_eq!(known, ["192.0.2.1/32"]);
    assert!(!store.login_suspended("bob@example.test").await.unwrap());
    store.remove_account("bob@example.test").await.unwrap();
    store.add_account("bob@example.test", "$argon2id$x").await.unwrap();
    assert!(store.login_history("bob@example.test").await.unwrap().is_empty(), "not the old account's");
    assert!(store.known_logins("bob@example.test", 0).await.unwrap().is_empty());
}

async fn submitted_mail_is_counted_per_user_and_domain<S: QuotaStore + RecordSubmitted + ?Sized>(store: &S) {
    let t = now();
    store.submitted(sent("A@example.test", &["x@remote.test", "Y@remote.test"]), t).await;
    store.submitted(sent("B@example.test", &["x@remote.test"]), t).await;
    let s = store.quota_status("Bob@example.test", t).await.unwrap();
    assert_eq!((s.user.messages_hour, s.user.messages_day, s.user.recipients_hour, s.user.recipients_day), (2, 2, 3, 3));
    assert_eq!(s.user.external_day, 2, "distinct recipients");
    assert_eq!(s.domain, s.user, "bob is the domain's only sender");
    assert!(!s.exempt);
    assert!(store.quota_seen("bob@example.test", "X@remote.test", t - DAY).await.unwrap());
    assert!(store.quota_seen("example.test", "y@remote.test", t - DAY).await.unwrap());
    assert!(!store.quota_seen("alice@example.test", "x@remote.test", t - DAY).await.unwrap());
    assert!(!store.quota_seen("bob@example.test", "x@remote.test", t).await.unwrap(), "only after `since`");
    assert_eq!(store.quota_usage("example.test", t).await.unwrap().messages_day, 2);
    assert_eq!(store.quota_usage("alice@example.test", t).await.unwrap(), Usage::default());
}

async fn quota_windows_slide<S: QuotaStore + RecordSubmitted + ?Sized>(store: &S) {
    let t = 1_000 * DAY;
    let many = |n: u64| Submitted { recipients: n, ..sent("", &[&format!("r{n}@remote.test")]) };
    for (at, n) in [(t - 2 * DAY, 100), (t - 2 * HOUR, 10), (t - 30 * 60, 1)] {
        store.submitted(many(n), at).await;
    }
    let u = store.quota_usage("bob@example.test", t).await.unwrap();
    assert_eq!((u.messages_hour, u.recipients_hour, u.messages_day, u.recipients_day, u.external_day), (1, 1, 2, 11, 2));
    // Sliding in buckets: an hour and one bucket later the newest is out of the hour.
    assert_eq!(store.quota_usage("bob@example.test", t + HOUR + BUCKET).await.unwrap().messages_hour, 0);
    store.quota_prune(t - DAY).await.unwrap();
    assert_eq!(store.quota_usage("bob@example.test", t).await.unwrap().messages_day, 2);
    assert_eq!(store.quota_usage("bob@example.test", t + 3 * DAY).await.unwrap(), Usage::default());
}

async fn distinct_recipients_are_counted_once_in_their_latest_bucket<S: QuotaStore + RecordSubmitted + ?Sized>(store: &S) {
    let t = 1_000 * DAY;
    // x three times (twice in one bucket, then 10 hours later), y once, early.
    store.submitted(sent("", &["x@remote.test", "y@remote.test"]), t - 20 * HOUR).await;
    store.submitted(sent("", &["X@remote.test"]), t - 20 * HOUR + 1).await;
    store.submitted(sent("", &["x@remote.test"]), t - 10 * HOUR).await;
    assert_eq!(store.quota_usage("bob@example.test", t).await.unwrap().external_day, 2);
    assert_eq!(store.quota_usage("example.test", t).await.unwrap().external_day, 2);
    // 13 hours on, y's day is over but x was sent to since.
    assert_eq!(store.quota_usage("bob@example.test", t + 13 * HOUR).await.unwrap().external_day, 1);
    // Pruning takes recipients and their bucket counts together.
    store.quota_prune(t - 15 * HOUR).await.unwrap();
    assert_eq!(store.quota_usage("bob@example.test", t).await.unwrap().external_day, 1);
    store.submitted(sent("", &["y@remote.test"]), t).await;
    assert_eq!(store.quota_usage("bob@example.test", t).await.unwrap().external_day, 2);
}

async fn overrides_and_exceptions<S: QuotaStore + ContainmentStore + ?Sized>(store: &S) {
    store.quota_override("Bob@example.test", "messages_per_hour", Some(5)).await.unwrap();
    store.quota_override("example.test", "messages_per_day", Some(50)).await.unwrap();
    store.quota_override("example.test", "messages_per_day", Some(60)).await.unwrap();
    let s = store.quota_status("bob@example.test", now()).await.unwrap();
    assert_eq!(s.user_overrides, vec![("messages_per_hour".to_string(), 5)]);
    assert_eq!(s.domain_overrides, vec![("messages_per_day".to_string(), 60)]);
    store.quota_override("bob@example.test", "messages_per_hour", None).await.unwrap();
    assert_eq!(store.quota_overrides().await.unwrap().len(), 1);

    assert!(store.quota_exempt("example.test", true).await.unwrap());
    assert!(!store.quota_exempt("example.test", true).await.unwrap(), "already exempt");
    assert!(store.quota_status("alice@example.test", now()).await.unwrap().exempt, "the domain covers its users");
    assert!(store.evidence("alice@example.test", 0).await.unwrap().exempt);
    let alice = Signal { account: "alice@example.test".into(), kind: "quota_hit".into(), count: 1, detail: String::new() };
    let e = store.record_signal(alice, 0, now()).await.unwrap();
    assert!(e.signals.is_empty(), "an exempt account collects no signals");
    assert_eq!(store.quota_exemptions().await.unwrap(), vec!["example.test"]);
    assert!(store.quota_exempt("example.test", false).await.unwrap());
    assert!(!store.quota_exempt("example.test", false).await.unwrap());
    assert!(!store.quota_status("alice@example.test", now()).await.unwrap().exempt);
}

async fn signals_count_within_the_window_and_after_the_last_resume<S: ContainmentStore + GuardStore + DirectoryStore + ?Sized>(
    store: &S,
) {
    store.add_domain("example.test").await.unwrap();
    store.add_account("bob@example.test", "h").await.unwrap();
    let t = now();
    store.record_signal(signal("quota_hit", 1), t - HOUR, t - 2 * HOUR).await.unwrap();
    store.record_signal(signal("quota_hit", 1), t - HOUR, t - 10 * 60).await.unwrap();
    let e = store.record_signal(signal("remote_refused", 7), t - HOUR, t).await.unwrap();
    assert_eq!(e.signal("quota_hit"), 1, "the one two hours ago is outside the window");
    assert_eq!(e.signal("remote_refused"), 7);
    assert_eq!(e.since, t - HOUR);
    assert_eq!(store.evidence("bob@example.test", t - 3 * HOUR).await.unwrap().signal("quota_hit"), 2);

    let s = Suspension { account: "Bob@example.test".into(), scope: SuspensionScope::Sending, reason: "test".into(), automatic: true, since: t };
    assert!(store.suspend(s.clone()).await.unwrap().newly);
    assert!(!store.suspend(Suspension { since: t + 5, ..s }).await.unwrap().newly);
    let current = store.suspension("bob@example.test").await.unwrap().unwrap();
    assert_eq!((current.reason.as_str(), current.since, current.automatic), ("test", t, true), "since the first suspension");
    assert!(!store.login_suspended("bob@example.test").await.unwrap(), "only sending");
    assert_eq!(store.evidence("bob@example.test", t - HOUR).await.unwrap().suspension.unwrap().reason, "test");
    assert_eq!(store.resume("bob@example.test", t + 1).await.unwrap(), Some(0));
    assert_eq!(store.resume("bob@example.test", t + 1).await.unwrap(), None, "not suspended any more");
    let e = store.evidence("bob@example.test", t - HOUR).await.unwrap();
    assert_eq!((e.since, e.signals.len(), e.suspension), (t + 1, 0, None), "what came before the resume is forgotten");
    store.record_signal(signal("quota_hit", 1), 0, t + 2).await.unwrap();
    store.signals_prune(t + 3).await.unwrap();
    assert_eq!(store.evidence("bob@example.test", 0).await.unwrap().signals.len(), 0);

    let all = Suspension { account: "bob@example.test".into(), scope: SuspensionScope::All, reason: "r".into(), automatic: false, since: t };
    assert!(store.suspend(all).await.unwrap().newly, "resumed before: new again");
    assert!(store.login_suspended("BOB@example.test").await.unwrap());
    assert_eq!(store.suspensions().await.unwrap().iter().map(|s| (s.account.as_str(), s.scope)).collect::<Vec<_>>(), [("bob@example.test", SuspensionScope::All)]);
    // Removing the account forgets its state.
    store.remove_account("bob@example.test").await.unwrap();
    assert!(store.suspensions().await.unwrap().is_empty());
    assert_eq!(store.queue_release_held(None, Some("bob@example.test"), t).await.unwrap(), 0);
    assert_eq!(store.queue_delete_held("bob@example.test").await.unwrap(), 0);
}

async fn evidence_of_logins_and_what_was_sent<S: ContainmentStore + GuardStore + RecordSubmitted + ?Sized>(store: &S) {
    let t = now();
    store.known_login_put("bob@example.test", "192.0.2.1/32", "imap", t - 10 * DAY).await.unwrap();
    // The first login ever is not "new": there was nothing before it.
    assert_eq!(store.evidence("bob@example.test", t - HOUR).await.unwrap().new_network, None);
    // Another address in the same /24 is not a new network.
    store.known_login_put("bob@example.test", "192.0.2.77/32", "imap", t - 120).await.unwrap();
    assert_eq!(store.evidence("bob@example.test", t - HOUR).await.unwrap().new_network, None);
    store.known_login_put("bob@example.test", "198.51.100.7/32", "imap", t - 60).await.unwrap();
    store.submitted(sent("Q1@example.test", &["a@remote.test", "b@remote.test"]), t).await;
    store.submitted(sent("Q2@example.test", &["a@remote.test"]), t).await;
    let e = store.evidence("bob@example.test", t - HOUR).await.unwrap();
    assert_eq!(e.login_networks, vec!["192.0.2.77/32".to_string(), "198.51.100.7/32".to_string()]);
    let new = e.new_network.unwrap();
    assert_eq!((new.net.as_str(), new.messages_since), ("198.51.100.0/24", 2));
    assert_eq!((e.external_recipients, e.distinct_external), (3, 2));
    // A later login from the old network keeps its first sighting.
    store.known_login_put("bob@example.test", "192.0.2.1/32", "imap", t).await.unwrap();
    let e = store.evidence("bob@example.test", t - HOUR).await.unwrap();
    assert_eq!(e.login_networks.len(), 3);
    assert_eq!(e.new_network.as_ref().unwrap().net, "198.51.100.0/24");
    // What MAIL reads in one go is what the two reads give apart.
    let (status, evidence) = store.sending_status("Bob@example.test", t, t - HOUR).await.unwrap();
    assert_eq!((status.user.messages_day, status.domain.messages_day), (2, 2));
    assert_eq!((status, evidence), (store.quota_status("bob@example.test", t).await.unwrap(), e));
}

async fn a_later_bounce_matches_only_what_the_account_sent<S: ContainmentStore + DirectoryStore + RecordSubmitted + ?Sized>(
    store: &S,
) {
    store.add_domain("example.test").await.unwrap();
    let bob = store.add_account("bob@example.test", "h").await.unwrap();
    let alice = store.add_account("alice@example.test", "h").await.unwrap();
    store.submitted(sent("Q1@example.test", &["a@remote.test", "B@remote.test"]), now()).await;
    let rcpts = |list: &[&str]| list.iter().map(|r| r.to_string()).collect::<Vec<_>>();
    // About another message, or addressed to someone else than its sender: nothing.
    assert!(store.sent_bounced("Q9@example.test", rcpts(&["a@remote.test"]), vec![bob]).await.unwrap().is_empty());
    assert!(store.sent_bounced("Q1@example.test", rcpts(&["a@remote.test"]), vec![alice]).await.unwrap().is_empty());
    let found = store.sent_bounced("Q1@example.test", rcpts(&["A@remote.test", "b@remote.test", "c@remote.test"]), vec![alice, bob]);
    assert_eq!(found.await.unwrap(), vec![("bob@example.test".to_string(), 2)]);
    // The same report again counts nothing.
    assert!(store.sent_bounced("Q1@example.test", rcpts(&["a@remote.test"]), vec![bob]).await.unwrap().is_empty());
    // Pruned with the signals.
    store.submitted(sent("Q2@example.test", &["a@remote.test"]), now()).await;
    store.signals_prune(now() + 1).await.unwrap();
    assert!(store.sent_bounced("Q2@example.test", rcpts(&["a@remote.test"]), vec![bob]).await.unwrap().is_empty());
}

async fn dkim_signing_table_rotation(store: &(impl SenderAuthStore + ?Sized)) {
    let key = |selector: &str, algorithm: &str| crate::DkimKey {
        domain: "Example.test.".into(),
        selector: selector.into(),
        algorithm: algorithm.into(),
        private_key: vec![1, 0, 255],
        public_key: vec![2],
        active: false,
        created: 0,
    };
    assert!(store.add_dkim_key(key("s1", "rsa")).await.unwrap(), "the first RSA key signs at once");
    assert!(store.add_dkim_key(key("e1", "ed25519")).await.unwrap(), "so does the first Ed25519 key");
    assert!(!store.add_dkim_key(key("s2", "rsa")).await.unwrap(), "a second waits for activation");
    assert!(matches!(store.add_dkim_key(key("s2", "rsa")).await, Err(StoreError::Exists(_))));
    store.activate_dkim_key("example.test", "s2").await.unwrap();
    assert!(matches!(store.activate_dkim_key("example.test", "nope").await, Err(StoreError::NotFound(_))));
    let keys = store.dkim_keys(Some("EXAMPLE.test")).await.unwrap();
    let active: Vec<(&str, bool)> = keys.iter().map(|k| (k.selector.as_str(), k.active)).collect();
    assert_eq!(active, vec![("s1", false), ("e1", true), ("s2", true)]);
    assert_eq!((keys[0].domain.as_str(), keys[0].private_key.as_slice()), ("example.test", &[1, 0, 255][..]));
    assert!(keys[0].created > 0, "the store dates a key");
    store.remove_dkim_key("example.test", "s1").await.unwrap();
    assert!(matches!(store.remove_dkim_key("example.test", "s1").await, Err(StoreError::NotFound(_))));
    assert_eq!(store.dkim_keys(None).await.unwrap().len(), 2);
    assert!(store.dkim_keys(Some("other.test")).await.unwrap().is_empty());
}

async fn dmarc_evaluations_and_reports(store: &(impl SenderAuthStore + ?Sized)) {
    store.add_dmarc_evaluation("example.test", "{}").await.unwrap();
    let far = now() + 10;
    assert_eq!(store.dmarc_evaluations(far).await.unwrap().len(), 1);
    store.delete_dmarc_evaluations(far).await.unwrap();
    assert!(store.dmarc_evaluations(far).await.unwrap().is_empty());
    // One domain's evaluations go, another's stay.
    store.add_dmarc_evaluation("a.test", "{}").await.unwrap();
    store.add_dmarc_evaluation("B.test", "{\"x\":1}").await.unwrap();
    store.delete_dmarc_evaluations_of("A.TEST", far).await.unwrap();
    let left = store.dmarc_evaluations(far).await.unwrap();
    assert_eq!(left.iter().map(|(d, e, _)| (d.as_str(), e.as_str())).collect::<Vec<_>>(), [("b.test", "{\"x\":1}")]);
    store.delete_dmarc_evaluations_of("b.test", now() - 10).await.unwrap();
    assert_eq!(store.dmarc_evaluations(far).await.unwrap().len(), 1, "only evaluations stored before `until` go");
    assert!(store.dmarc_evaluations(now() - 10).await.unwrap().is_empty());
    let r = crate::DmarcReport {
        org_name: "Big".into(),
        report_id: "7".into(),
        domain: "example.test".into(),
        date_begin: 1,
        date_end: 2,
        messages: 3,
        passed: 2,
        records: "[]".into(),
        received: 0,
    };
    assert!(store.add_dmarc_report(r.clone()).await.unwrap());
    assert!(!store.add_dmarc_report(r.clone()).await.unwrap(), "the same report twice is stored once");
    assert!(store.add_dmarc_report(crate::DmarcReport { report_id: "8".into(), date_begin: 0, ..r.clone() }).await.unwrap());
    let reports = store.dmarc_reports().await.unwrap();
    assert_eq!(reports.iter().map(|r| r.report_id.as_str()).collect::<Vec<_>>(), ["8", "7"], "by date_begin");
    assert!(reports[1].received > 0, "the store dates what it received");
    assert_eq!(crate::DmarcReport { received: 0, ..reports[1].clone() }, r);
}

async fn sts_policies_tls_outcomes_and_reports(store: &(impl TlsPolicyStore + ?Sized)) {
    use crate::{CachedStsPolicy, TlsOutcome, TlsReportRecord};
    assert_eq!(store.sts_policy("a.test").await.unwrap(), None);
    let p = CachedStsPolicy { domain: "A.test".into(), id: "1".into(), policy: "version: STSv1".into(), fetched: 10, expires: 100 };
    store.put_sts_policy(p.clone()).await.unwrap();
    store.put_sts_policy(CachedStsPolicy { id: "2".into(), ..p.clone() }).await.unwrap();
    store.put_sts_policy(CachedStsPolicy { domain: "c.test".into(), expires: 50, ..p.clone() }).await.unwrap();
    let got = store.sts_policy("a.TEST").await.unwrap().unwrap();
    assert_eq!(got, CachedStsPolicy { domain: "a.test".into(), id: "2".into(), ..p });
    assert_eq!(store.sts_policies_expiring(101).await.unwrap(), ["c.test", "a.test"], "soonest first");
    assert_eq!(store.sts_policies_expiring(100).await.unwrap(), ["c.test"]);

    let o = TlsOutcome {
        policy_domain: "A.test".into(),
        policy_type: "sts".into(),
        policy_string: "version: STSv1".into(),
        mx_host: "mx.a.test".into(),
        receiving_ip: "192.0.2.1".into(),
        result: "success".into(),
        detail: String::new(),
        created: 0,
    };
    store.add_tls_outcome(TlsOutcome { policy_domain: "b.test".into(), ..o.clone() }).await.unwrap();
    store.add_tls_outcome(o.clone()).await.unwrap();
    let far = now() + 10;
    let all = store.tls_outcomes(far).await.unwrap();
    assert_eq!(all.iter().map(|o| o.policy_domain.as_str()).collect::<Vec<_>>(), ["a.test", "b.test"], "by policy domain");
    assert!(all[0].created > 0, "the store dates an outcome");
    assert!(store.tls_outcomes(now() - 10).await.unwrap().is_empty());
    store.delete_tls_outcomes_of("A.test", far).await.unwrap();
    let left = store.tls_outcomes(far).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].policy_domain, "b.test");

    let r = TlsReportRecord {
        org_name: "Org".into(),
        report_id: "r1".into(),
        domains: "a.test".into(),
        date_begin: 1,
        date_end: 2,
        successes: 3,
        failures: 1,
        json: "{}".into(),
        received: 0,
    };
    assert!(store.add_tls_report(r.clone()).await.unwrap());
    assert!(!store.add_tls_report(r.clone()).await.unwrap(), "the same report twice is stored once");
    let reports = store.tls_reports().await.unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(TlsReportRecord { received: 0, ..reports[0].clone() }, r);
}

async fn classifier_counts_learn_once_and_move_between_classes<S: FilterStore + DirectoryStore + ?Sized>(store: &S) {
    use crate::filter::{ClassCounts, Lesson, Scope};
    store.add_domain("example.test").await.unwrap();
    let bob = store.add_account("bob@example.test", "h").await.unwrap();
    let lesson = |message: &str, tokens: Vec<u64>, spam| Lesson { scopes: vec![Scope::Account(bob), Scope::Global], message: message.into(), tokens, spam };
    assert_eq!(store.learn(lesson("m1", vec![1, 2, u64::MAX], true)).await.unwrap(), 2);
    assert_eq!(store.learn(lesson("m1", vec![1, 2, u64::MAX], true)).await.unwrap(), 0, "learnt twice");
    assert_eq!(store.learn(lesson("m2", vec![2, 3], false)).await.unwrap(), 2);
    let stats = store.token_stats(Scope::Account(bob), vec![1, 2, 3, 4, u64::MAX]).await.unwrap();
    assert_eq!(stats.messages, ClassCounts { spam: 1, ham: 1 });
    assert_eq!(stats.tokens[&2], ClassCounts { spam: 1, ham: 1 });
    assert_eq!(stats.tokens[&u64::MAX], ClassCounts { spam: 1, ham: 0 });
    assert!(!stats.tokens.contains_key(&4));
    // Moved out of Junk: the spam lesson is taken back, the ham one counted.
    assert_eq!(store.learn(lesson("m1", vec![1, 2, u64::MAX], false)).await.unwrap(), 2);
    let stats = store.token_stats(Scope::Global, vec![1, 2]).await.unwrap();
    assert_eq!(stats.messages, ClassCounts { spam: 0, ham: 2 });
    assert_eq!(stats.tokens[&1], ClassCounts { spam: 0, ham: 1 });
    assert_eq!(store.token_stats(Scope::Global, vec![u64::MAX]).await.unwrap().tokens[&u64::MAX], ClassCounts { spam: 0, ham: 1 });
    // Many tokens in one question.
    let many: Vec<u64> = (100..1600).collect();
    store.learn(lesson("m3", many.clone(), true)).await.unwrap();
    assert_eq!(store.token_stats(Scope::Global, many).await.unwrap().tokens.len(), 1500);
    // An account's counts go with the account.
    store.remove_account("bob@example.test").await.unwrap();
    assert_eq!(store.learnt(Scope::Account(bob)).await.unwrap(), ClassCounts::default());
    assert_eq!(store.learnt(Scope::Global).await.unwrap(), ClassCounts { spam: 1, ham: 2 });
}

async fn greylisting_defers_new_triplets_then_remembers(store: &(impl FilterStore + ?Sized)) {
    use crate::filter::{GreylistQuery, Greylisting};
    let q = |net: &str, triplet: &str, now: i64, domain: Option<&str>| GreylistQuery {
        net: net.into(),
        triplets: vec![triplet.into()],
        authenticated_domain: domain.map(str::to_string),
        now,
        delay: 300,
        retry_window: 3600,
        expire: 86400,
        good_history: 2,
    };
    assert_eq!(store.greylist(q("192.0.2.0/24", "t1", 1000, None)).await.unwrap(), Greylisting::Deferred { retry_after: 1300 });
    assert_eq!(store.greylist(q("192.0.2.0/24", "t1", 1100, None)).await.unwrap(), Greylisting::Deferred { retry_after: 1300 });
    assert_eq!(store.greylist(q("192.0.2.0/24", "t1", 1300, None)).await.unwrap(), Greylisting::Passed);
    // The client retried once: it is known now, whatever it sends.
    assert_eq!(store.greylist(q("192.0.2.0/24", "t2", 1400, None)).await.unwrap(), Greylisting::KnownClient);
    // A triplet not retried within the window starts over.
    assert!(matches!(store.greylist(q("198.51.100.0/24", "t3", 1000, None)).await.unwrap(), Greylisting::Deferred { .. }));
    assert_eq!(store.greylist(q("198.51.100.0/24", "t3", 9000, None)).await.unwrap(), Greylisting::Deferred { retry_after: 9300 });
    // A domain with a good history skips it.
    store.greylist_good("good.test", 1000).await.unwrap();
    assert!(matches!(store.greylist(q("203.0.113.0/24", "t4", 1500, Some("good.test"))).await.unwrap(), Greylisting::Deferred { .. }), "one is not a history");
    store.greylist_good("good.test", 1001).await.unwrap();
    assert_eq!(store.greylist(q("203.0.113.0/24", "t4", 1500, Some("good.test"))).await.unwrap(), Greylisting::GoodDomain);
    assert!(matches!(store.greylist(q("203.0.113.0/24", "t5", 1500, Some("new.test"))).await.unwrap(), Greylisting::Deferred { .. }));
    store.greylist_prune(200_000, 3600, 86400).await.unwrap();
    assert!(matches!(store.greylist(q("192.0.2.0/24", "t1", 200_000, None)).await.unwrap(), Greylisting::Deferred { .. }));
    assert!(matches!(store.greylist(q("203.0.113.0/24", "t6", 200_000, Some("good.test"))).await.unwrap(), Greylisting::Deferred { .. }), "the history was pruned");
}

async fn pgp_keys_are_set_replaced_published_and_removed<S: PgpStore + DirectoryStore + ?Sized>(store: &S) {
    use crate::NewPgpKey;
    store.add_domain("example.test").await.unwrap();
    store.add_domain("other.test").await.unwrap();
    let bob = store.add_account("bob@example.test", "h").await.unwrap();
    store.add_account("alice@example.test", "h").await.unwrap();
    store.add_account("carol@other.test", "h").await.unwrap();
    let key = |fpr: &str, publish| NewPgpKey { key: vec![0x99, 0, 1], fingerprint: fpr.into(), protect_subject: false, publish, search: false };
    assert!(matches!(store.pgp_key_set("nobody@example.test", key("F0", true)).await, Err(StoreError::NotFound(_))));
    assert_eq!(store.pgp_key("bob@example.test").await.unwrap(), None);
    store.pgp_key_set("Bob@example.test", key("F1", true)).await.unwrap();
    store.pgp_key_set("bob@example.test", NewPgpKey { protect_subject: true, search: true, ..key("F2", true) }).await.unwrap();
    store.pgp_key_set("alice@example.test", key("F3", false)).await.unwrap();
    store.pgp_key_set("carol@other.test", key("F4", true)).await.unwrap();
    let k = store.pgp_key("bob@example.test").await.unwrap().unwrap();
    assert_eq!((k.account, k.address.as_str(), k.fingerprint.as_str(), k.protect_subject, k.publish), (bob, "bob@example.test", "F2", true, true));
    assert!(k.search, "the search opt-in is kept");
    assert!(!store.pgp_key("alice@example.test").await.unwrap().unwrap().search);
    assert_eq!(k.key, [0x99, 0, 1]);
    assert!(k.updated > 0);
    let published = store.pgp_published("Example.test.").await.unwrap();
    assert_eq!(published.iter().map(|k| k.fingerprint.as_str()).collect::<Vec<_>>(), ["F2"], "alice's is not published, carol is elsewhere");
    assert!(store.pgp_key_remove("bob@example.test").await.unwrap());
    assert!(!store.pgp_key_remove("bob@example.test").await.unwrap());
    assert!(store.pgp_published("example.test").await.unwrap().is_empty());
    // The key goes with its account.
    store.remove_account("carol@other.test").await.unwrap();
    store.add_account("carol@other.test", "h").await.unwrap();
    assert_eq!(store.pgp_key("carol@other.test").await.unwrap(), None);
}

async fn metadata_limits_are_kept<S: crate::MetadataStore + DirectoryStore + ?Sized>(store: &S) {
    use crate::{MetadataLimits, OverLimit};
    store.add_domain("example.test").await.unwrap();
    let bob = store.add_account("bob@example.test", "h").await.unwrap();
    let alice = store.add_account("alice@example.test", "h").await.unwrap();
    let limits = MetadataLimits { entries: 3, bytes: 100 };
    let set = |account, mailbox, changes: Vec<(&str, Option<&[u8]>)>| {
        let changes = changes.into_iter().map(|(n, v)| (n.to_string(), v.map(<[u8]>::to_vec))).collect();
        store.set_metadata(account, mailbox, changes, limits)
    };
    // A mailbox id: the store does not check it (IMAP resolved the name).
    let work = Some(42);
    assert_eq!(set(bob, None, vec![("/private/a", Some(b"1")), ("/private/b", Some(b"2"))]).await.unwrap(), Ok(()));
    assert_eq!(set(bob, work, vec![("/shared/c", Some(b"3"))]).await.unwrap(), Ok(()));
    // A fourth entry is too many (and nothing of the change is kept); replacing one is not;
    // removing makes room.
    assert_eq!(set(bob, work, vec![("/shared/x", None), ("/shared/d", Some(b"4"))]).await.unwrap(), Err(OverLimit));
    assert_eq!(set(bob, None, vec![("/private/a", Some(b"one"))]).await.unwrap(), Ok(()));
    assert_eq!(set(bob, None, vec![("/private/b", None), ("/private/e", Some(&[0; 60][..]))]).await.unwrap(), Ok(()));
    assert_eq!(set(bob, None, vec![("/private/e", Some(&[0; 90][..]))]).await.unwrap(), Err(OverLimit));
    // Another user's entries count for that user only.
    assert_eq!(set(alice, None, vec![("/private/a", Some(b"x")), ("/private/b", Some(b"y"))]).await.unwrap(), Ok(()));
    let server = store.metadata(bob, None).await.unwrap();
    assert_eq!(server.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["/private/a", "/private/e"]);
    assert_eq!(server[0].1, b"one");
    assert_eq!(store.metadata(bob, work).await.unwrap(), vec![("/shared/c".to_string(), b"3".to_vec())]);
    // An account's entries go with it.
    store.remove_account("bob@example.test").await.unwrap();
    assert!(store.metadata(bob, None).await.unwrap().is_empty());
    assert!(store.metadata(bob, work).await.unwrap().is_empty());
    assert_eq!(store.metadata(alice, None).await.unwrap().len(), 2);
}

async fn web_roles_totp_sessions_tokens<S: WebStore + DirectoryStore + ?Sized>(store: &S) {
    use crate::web::Role;
    store.add_domain("Example.TEST").await.unwrap();
    let bob = store.add_account("bob@example.test", "$argon2id$x").await.unwrap();
    assert_eq!(store.web_account("bob@example.test").await.unwrap().unwrap().role, Role::User);
    store.set_role("Bob@example.test", Role::Admin).await.unwrap();
    assert!(matches!(store.set_role("nobody@example.test", Role::Admin).await, Err(StoreError::NotFound(_))));

    // The last administrator who can log in stays one: not demoted, suspended or removed.
    assert!(matches!(store.set_role("bob@example.test", Role::User).await, Err(StoreError::LastAdmin(_))));
    assert!(matches!(store.set_suspended("bob@example.test", true).await, Err(StoreError::LastAdmin(_))));
    assert!(matches!(store.remove_account("bob@example.test").await, Err(StoreError::LastAdmin(_))));
    store.add_account("carol@example.test", "$argon2id$x").await.unwrap();
    store.set_role("carol@example.test", Role::Admin).await.unwrap();
    store.set_suspended("carol@example.test", true).await.unwrap();
    assert!(matches!(store.set_role("bob@example.test", Role::User).await, Err(StoreError::LastAdmin(_))), "carol cannot log in");
    store.set_suspended("carol@example.test", false).await.unwrap();

    // Suspension: no credentials, no sessions, until restored.
    store.session_put("s0", bob, "csrf", 1).await.unwrap();
    store.set_suspended("bob@example.test", true).await.unwrap();
    assert!(store.credentials("bob@example.test").await.unwrap().is_none());
    assert!(store.session("s0").await.unwrap().is_none());
    assert!(store.web_account("bob@example.test").await.unwrap().unwrap().suspended);
    store.set_suspended("bob@example.test", false).await.unwrap();
    assert!(store.credentials("bob@example.test").await.unwrap().is_some());
    store.session_remove("s0").await.unwrap();

    // TOTP: pending until confirmed; each step once and never an older one.
    store.totp_begin(bob, "SECRET").await.unwrap();
    assert!(!store.web_accounts().await.unwrap()[0].totp);
    assert!(!store.totp_use_step(bob, 5).await.unwrap(), "unconfirmed");
    assert!(store.totp_confirm(bob, 10, &["h1".into(), "h2".into()]).await.unwrap());
    assert!(matches!(store.totp_begin(bob, "OTHER").await, Err(StoreError::Exists(_))));
    assert!(store.web_account("bob@example.test").await.unwrap().unwrap().totp);
    assert!(!store.totp_use_step(bob, 10).await.unwrap());
    assert!(store.totp_use_step(bob, 11).await.unwrap());
    assert!(!store.totp_use_step(bob, 9).await.unwrap());
    assert!(store.recovery_code_use(bob, "h1").await.unwrap());
    assert!(!store.recovery_code_use(bob, "h1").await.unwrap());
    assert_eq!(store.recovery_codes_left(bob).await.unwrap(), 1);
    assert!(store.totp_remove(bob).await.unwrap());
    assert_eq!(store.recovery_codes_left(bob).await.unwrap(), 0);

    // Sessions: removal of all but one, pruning by idle and absolute age.
    for (id, t) in [("a", 100), ("b", 200), ("c", 300)] {
        store.session_put(id, bob, "csrf", t).await.unwrap();
    }
    let s = store.session("b").await.unwrap().unwrap();
    assert_eq!((s.address.as_str(), s.role, s.created), ("bob@example.test", Role::Admin, 200));
    assert_eq!(store.sessions_prune(150, 0).await.unwrap(), 1);
    store.session_touch("b", 1000).await.unwrap();
    assert_eq!(store.sessions_remove(bob, Some("c")).await.unwrap(), 1);
    assert!(store.session("c").await.unwrap().is_some());
    store.remove_account("bob@example.test").await.unwrap();
    assert!(store.session("c").await.unwrap().is_none(), "sessions go with the account");

    // API tokens by hash.
    store.api_token_add("ci", "hash1", &["domains".into()]).await.unwrap();
    assert!(matches!(store.api_token_add("ci", "hash2", &[]).await, Err(StoreError::Exists(_))));
    let t = store.api_token_use("hash1", 42).await.unwrap().unwrap();
    assert_eq!((t.name.as_str(), t.scopes.clone(), t.last_used), ("ci", vec!["domains".to_string()], Some(42)));
    assert!(store.api_token_use("nope", 42).await.unwrap().is_none());
    store.api_token_revoke("ci").await.unwrap();
    assert!(store.api_tokens().await.unwrap().is_empty());
    assert!(matches!(store.api_token_revoke("ci").await, Err(StoreError::NotFound(_))));

    // The dashboard's hourly counts add up, and old hours go.
    store.stats_add(&[(10, "received".into(), 2), (11, "received".into(), 1)]).await.unwrap();
    store.stats_add(&[(10, "received".into(), 3), (10, "rejected".into(), 1)]).await.unwrap();
    assert_eq!(store.stats_since(10).await.unwrap(), [(10, "received".into(), 5), (10, "rejected".into(), 1), (11, "received".into(), 1)]);
    store.stats_prune(11).await.unwrap();
    assert_eq!(store.stats_since(0).await.unwrap(), [(11, "received".to_string(), 1)]);
    assert!(store.messages_search(None, 0, i64::MAX, 10).await.unwrap().is_empty());
}

/// A certificate (or a CSR, without `chain`) for the certificate tests.
fn stored_cert(names: &[&str], key_type: &str, chain: Option<&str>) -> crate::certs::StoredCert {
    crate::certs::StoredCert {
        id: 0,
        names: names.iter().map(|s| s.to_string()).collect(),
        issuer: "CN=test".into(),
        not_before: 1,
        not_after: 2,
        key_type: key_type.into(),
        source: "imported".into(),
        chain_pem: chain.map(str::to_string),
        key_pem: "KEY".into(),
        csr_pem: None,
        created: 0,
        warned: vec![],
    }
}

async fn certificates_assignments_and_acme_requests(store: &(impl CertificateStore + ?Sized)) {
    use crate::certs::Usage;
    let v0 = store.certificates_version().await.unwrap();
    let ec = store.add_certificate(stored_cert(&["mail.example.org"], "ecdsa-p256", Some("C"))).await.unwrap();
    let rsa = store.add_certificate(stored_cert(&["mail.example.org"], "rsa-2048", Some("C"))).await.unwrap();
    let csr = store.add_certificate(stored_cert(&["new.example.org"], "ecdsa-p256", None)).await.unwrap();
    assert!(store.certificates_version().await.unwrap() > v0);
    // Both key types side by side for one host; a listener has one certificate.
    store.assign_certificate(ec, Usage::Host, "Mail.Example.org").await.unwrap();
    store.assign_certificate(rsa, Usage::Host, "mail.example.org").await.unwrap();
    store.assign_certificate(ec, Usage::Listener, "smtp").await.unwrap();
    store.assign_certificate(rsa, Usage::Listener, "smtp").await.unwrap();
    let a = store.assignments().await.unwrap();
    assert_eq!(a.iter().filter(|a| a.usage == Usage::Host && a.target == "mail.example.org").count(), 2);
    assert_eq!(a.iter().filter(|a| a.usage == Usage::Listener).map(|a| a.cert_id).collect::<Vec<_>>(), [rsa]);
    // A request waiting for its certificate cannot be used.
    assert!(store.assign_certificate(csr, Usage::Host, "new.example.org").await.is_err());
    store.complete_certificate(csr, "CHAIN", "CN=ca", 10, 20).await.unwrap();
    let done = store.certificate(csr).await.unwrap();
    assert_eq!((done.chain_pem.as_deref(), done.not_after), (Some("CHAIN"), 20));
    // A renewal takes over the old certificate's uses.
    store.replace_certificate(rsa, csr).await.unwrap();
    let a = store.assignments().await.unwrap();
    assert!(a.iter().all(|a| a.cert_id != rsa), "{a:?}");
    store.mark_cert_warned(ec, 21).await.unwrap();
    store.mark_cert_warned(ec, 7).await.unwrap();
    assert_eq!(store.certificate(ec).await.unwrap().warned, [21, 7]);
    store.delete_certificate(ec).await.unwrap();
    assert!(store.assignments().await.unwrap().iter().all(|a| a.cert_id != ec));
    assert!(matches!(store.certificate(ec).await, Err(StoreError::NotFound(_))));
    store.set_acme_account("https://ca/dir", "{}").await.unwrap();
    assert_eq!(store.acme_account("https://ca/dir").await.unwrap().as_deref(), Some("{}"));
    let req = store.request_acme(&["a.test".into(), "b.test".into()]).await.unwrap();
    assert_eq!(store.acme_requests_pending().await.unwrap(), [(req, vec!["a.test".to_string(), "b.test".to_string()])]);
    assert_eq!(store.acme_request(req).await.unwrap(), None);
    store.finish_acme_request(req, Err("down".into())).await.unwrap();
    assert_eq!(store.acme_request(req).await.unwrap(), Some(Err("down".to_string())));
    assert!(store.acme_requests_pending().await.unwrap().is_empty());
}

/// One `#[tokio::test]` per shared function, for a backend made by `$open`.
macro_rules! role_tests {
    ($open:expr) => {
        #[tokio::test]
        async fn domains_accounts_aliases() {
            super::domains_accounts_aliases(&*$open).await;
        }
        #[tokio::test]
        async fn alias_loops_terminate() {
            super::alias_loops_terminate(&*$open).await;
        }
        #[tokio::test]
        async fn secrets_and_app_passwords() {
            super::secrets_and_app_passwords(&*$open).await;
        }
        #[tokio::test]
        async fn refusals_are_typed_and_keep_their_text() {
            super::refusals_are_typed_and_keep_their_text(&*$open).await;
        }
        #[tokio::test]
        async fn password_changes_are_dated() {
            super::password_changes_are_dated(&*$open).await;
        }
        #[tokio::test]
        async fn bans_and_state() {
            super::bans_and_state(&*$open).await;
        }
        #[tokio::test]
        async fn login_failures_are_counted_per_account_and_window() {
            super::login_failures_are_counted_per_account_and_window(&*$open).await;
        }
        #[tokio::test]
        async fn login_history_is_by_address_and_goes_with_the_account() {
            super::login_history_is_by_address_and_goes_with_the_account(&*$open).await;
        }
        #[tokio::test]
        async fn dkim_signing_table_rotation() {
            super::dkim_signing_table_rotation(&*$open).await;
        }
        #[tokio::test]
        async fn dmarc_evaluations_and_reports() {
            super::dmarc_evaluations_and_reports(&*$open).await;
        }
        #[tokio::test]
        async fn sts_policies_tls_outcomes_and_reports() {
            super::sts_policies_tls_outcomes_and_reports(&*$open).await;
        }
        #[tokio::test]
        async fn classifier_counts_learn_once_and_move_between_classes() {
            super::classifier_counts_learn_once_and_move_between_classes(&*$open).await;
        }
        #[tokio::test]
        async fn greylisting_defers_new_triplets_then_remembers() {
            super::greylisting_defers_new_triplets_then_remembers(&*$open).await;
        }
        #[tokio::test]
        async fn pgp_keys_are_set_replaced_published_and_removed() {
            super::pgp_keys_are_set_replaced_published_and_removed(&*$open).await;
        }
        #[tokio::test]
        async fn metadata_limits_are_kept() {
            super::metadata_limits_are_kept(&*$open).await;
        }
        #[tokio::test]
        async fn submitted_mail_is_counted_per_user_and_domain() {
            super::submitted_mail_is_counted_per_user_and_domain(&*$open).await;
        }
        #[tokio::test]
        async fn quota_windows_slide() {
            super::quota_windows_slide(&*$open).await;
        }
        #[tokio::test]
        async fn distinct_recipients_are_counted_once_in_their_latest_bucket() {
            super::distinct_recipients_are_counted_once_in_their_latest_bucket(&*$open).await;
        }
        #[tokio::test]
        async fn overrides_and_exceptions() {
            super::overrides_and_exceptions(&*$open).await;
        }
        #[tokio::test]
        async fn signals_count_within_the_window_and_after_the_last_resume() {
            super::signals_count_within_the_window_and_after_the_last_resume(&*$open).await;
        }
        #[tokio::test]
        async fn evidence_of_logins_and_what_was_sent() {
            super::evidence_of_logins_and_what_was_sent(&*$open).await;
        }
        #[tokio::test]
        async fn a_later_bounce_matches_only_what_the_account_sent() {
            super::a_later_bounce_matches_only_what_the_account_sent(&*$open).await;
        }
        #[tokio::test]
        async fn web_roles_totp_sessions_tokens() {
            super::web_roles_totp_sessions_tokens(&*$open).await;
        }
        #[tokio::test]
        async fn certificates_assignments_and_acme_requests() {
            super::certificates_assignments_and_acme_requests(&*$open).await;
        }
    };
}

mod mail;

mod sqlite_runs {
    /// The store and its directory, dropped together at the end of the test.
    pub(super) struct Open(crate::SqliteStore, #[allow(dead_code)] tempfile::TempDir);

    impl std::ops::Deref for Open {
        type Target = crate::SqliteStore;
        fn deref(&self) -> &crate::SqliteStore {
            &self.0
        }
    }

    pub(super) fn open() -> Open {
        let dir = tempfile::tempdir().unwrap();
        Open(crate::SqliteStore::open(dir.path()).unwrap(), dir)
    }

    role_tests!(open());
}

mod postgres_runs {
    /// In an `Arc`, to be dereferenced like `sqlite_runs`' store.
    pub(super) async fn open() -> std::sync::Arc<crate::PgStore> {
        let spool = crate::postgres::testdb::spool();
        std::sync::Arc::new(crate::PgStore::open(&crate::postgres::testdb::migrated().await, 4, None, &spool).await.unwrap())
    }

    role_tests!(open().await);
}
