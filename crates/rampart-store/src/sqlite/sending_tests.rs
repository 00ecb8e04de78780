//! Quotas and containment in the SQLite store: counts and their windows, durability, the
//! scoring window of signals, suspensions holding queued mail, release and delete.

use super::*;
use crate::containment::{Signal, Suspension, SuspensionScope};
use crate::prelude::*;
use crate::quota::{BUCKET, DAY, HOUR, Submitted};
use crate::{Delivery, Outbound};

async fn store(dir: &std::path::Path) -> SqliteStore {
    let store = SqliteStore::open(dir).unwrap();
    if store.list_domains().await.unwrap().is_empty() {
        store.add_domain("example.test").await.unwrap();
        store.add_account("bob@example.test", "h").await.unwrap();
        store.add_account("alice@example.test", "h").await.unwrap();
    }
    store
}

/// bob submits a message to `remote` (and nobody local), queued as `id`.
async fn submit(store: &SqliteStore, id: &str, remote: &[&str]) {
    let mut w = store.blob_writer().unwrap();
    w.write(b"Subject: out\r\n\r\nhi\r\n").await.unwrap();
    let delivery = Delivery {
        blob: w.finish().await.unwrap(),
        prefix: vec![],
        internal_date: 0,
        targets: vec![],
        reference: id.into(),
        trail: "[]".into(),
        outbound: Some(Outbound {
            sender: "bob@example.test".into(),
            rcpts: remote.iter().map(|r| r.to_string()).collect(),
            smtputf8: false,
            is_dsn: false,
            prefix: vec![],
        }),
    };
    let submitted = Submitted {
        account: "bob@example.test".into(),
        recipients: remote.len() as u64,
        external: remote.iter().map(|r| r.to_string()).collect(),
        message_id: format!("{id}@example.test"),
        relayed: false,
    };
    store.deliver_submitted(delivery, submitted).await.unwrap();
}

fn signal(kind: &str, count: u64) -> Signal {
    Signal { account: "bob@example.test".into(), kind: kind.into(), count, detail: String::new() }
}

#[tokio::test]
async fn submitted_mail_is_counted_durably_per_user_and_domain() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = store(dir.path()).await;
        submit(&store, "A", &["x@remote.test", "y@remote.test"]).await;
        submit(&store, "B", &["x@remote.test"]).await;
        let s = store.quota_status("Bob@example.test", now()).await.unwrap();
        assert_eq!((s.user.messages_hour, s.user.messages_day, s.user.recipients_hour, s.user.recipients_day), (2, 2, 3, 3));
        assert_eq!(s.user.external_day, 2, "distinct recipients");
        assert_eq!(s.domain, s.user, "bob is the domain's only sender");
        assert!(!s.exempt);
        assert!(store.quota_seen("bob@example.test", "X@remote.test", now() - DAY).await.unwrap());
        assert!(!store.quota_seen("alice@example.test", "x@remote.test", now() - DAY).await.unwrap());
    }
    // A new process (a restart) reads the same counts.
    let store = store(dir.path()).await;
    let s = store.quota_status("bob@example.test", now()).await.unwrap();
    assert_eq!((s.user.messages_hour, s.user.external_day), (2, 2));
    assert_eq!(store.quota_usage("example.test", now()).await.unwrap().messages_day, 2);
    assert_eq!(store.quota_usage("alice@example.test", now()).await.unwrap(), crate::quota::Usage::default());
}

#[tokio::test]
async fn quota_windows_slide() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let t = 1_000 * DAY;
    let sent = |n| Submitted { account: "bob@example.test".into(), recipients: n, external: vec![format!("r{n}@remote.test")], message_id: String::new(), relayed: false };
    for (at, n) in [(t - 2 * DAY, 100), (t - 2 * HOUR, 10), (t - 30 * 60, 1)] {
        let s = sent(n);
        store.write(move |conn, _| quota::record(conn, &s, at)).await.unwrap();
    }
    let u = store.quota_usage("bob@example.test", t).await.unwrap();
    assert_eq!((u.messages_hour, u.recipients_hour, u.messages_day, u.recipients_day, u.external_day), (1, 1, 2, 11, 2));
    // Sliding in buckets: an hour and one bucket later the newest is out of the hour.
    let u = store.quota_usage("bob@example.test", t + HOUR + BUCKET).await.unwrap();
    assert_eq!(u.messages_hour, 0);
    store.quota_prune(t - DAY).await.unwrap();
    assert_eq!(store.quota_usage("bob@example.test", t).await.unwrap().messages_day, 2);
    assert_eq!(store.quota_usage("bob@example.test", t + 3 * DAY).await.unwrap(), crate::quota::Usage::default());
}

#[tokio::test]
async fn overrides_and_exceptions() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    store.quota_override("Bob@example.test", "messages_per_hour", Some(5)).await.unwrap();
    store.quota_override("example.test", "messages_per_day", Some(50)).await.unwrap();
    let s = store.quota_status("bob@example.test", now()).await.unwrap();
    assert_eq!(s.user_overrides, vec![("messages_per_hour".to_string(), 5)]);
    assert_eq!(s.domain_overrides, vec![("messages_per_day".to_string(), 50)]);
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
    assert!(!store.quota_status("alice@example.test", now()).await.unwrap().exempt);
}

#[tokio::test]
async fn signals_count_within_the_window_and_after_the_last_resume() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let t = now();
    store.record_signal(signal("quota_hit", 1), t - HOUR, t - 2 * HOUR).await.unwrap();
    store.record_signal(signal("quota_hit", 1), t - HOUR, t - 10 * 60).await.unwrap();
    let e = store.record_signal(signal("remote_refused", 7), t - HOUR, t).await.unwrap();
    assert_eq!(e.signal("quota_hit"), 1, "the one two hours ago is outside the window");
    assert_eq!(e.signal("remote_refused"), 7);
    assert_eq!(e.since, t - HOUR);
    // A longer window sees both.
    assert_eq!(store.evidence("bob@example.test", t - 3 * HOUR).await.unwrap().signal("quota_hit"), 2);

    let s = Suspension { account: "bob@example.test".into(), scope: SuspensionScope::Sending, reason: "test".into(), automatic: true, since: t };
    assert!(store.suspend(s.clone()).await.unwrap().newly);
    assert!(!store.suspend(s).await.unwrap().newly);
    assert_eq!(store.evidence("bob@example.test", t - HOUR).await.unwrap().suspension.unwrap().reason, "test");
    assert_eq!(store.resume("bob@example.test", t + 1).await.unwrap(), Some(0));
    assert_eq!(store.resume("bob@example.test", t + 1).await.unwrap(), None, "not suspended any more");
    let e = store.evidence("bob@example.test", t - HOUR).await.unwrap();
    assert_eq!((e.since, e.signals.len(), e.suspension), (t + 1, 0, None), "what came before the resume is forgotten");
    store.signals_prune(t + 2).await.unwrap();
    assert_eq!(store.evidence("bob@example.test", 0).await.unwrap().signals.len(), 0);
}

#[tokio::test]
async fn suspension_holds_queued_mail_until_released_or_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    submit(&store, "Q1", &["a@remote.test"]).await;
    submit(&store, "Q2", &["b@remote.test"]).await;
    assert_eq!(store.queue_due(now() + 1, 100).await.unwrap().len(), 2);
    assert_eq!(store.queue_entry("Q1").await.unwrap().unwrap().account, "bob@example.test");

    let s = Suspension { account: "bob@example.test".into(), scope: SuspensionScope::Sending, reason: "r".into(), automatic: false, since: now() };
    assert_eq!(store.suspend(s).await.unwrap().held, 2);
    assert!(store.queue_due(now() + 1, 100).await.unwrap().is_empty(), "held mail is never due");
    assert!(store.queue_entry("Q1").await.unwrap().unwrap().held);
    // Accepted before the suspension, queued after it: held as it is queued.
    submit(&store, "Q3", &["c@remote.test"]).await;
    assert!(store.queue_entry("Q3").await.unwrap().unwrap().held);
    assert!(!store.login_suspended("bob@example.test").await.unwrap(), "only sending");

    assert_eq!(store.resume("bob@example.test", now()).await.unwrap(), Some(3), "resuming releases nothing");
    assert_eq!(store.queue_release_held(Some("Q1"), None, now()).await.unwrap(), 1);
    assert_eq!(store.queue_release_held(Some("Q1"), None, now()).await.unwrap(), 0, "not held any more");
    let due = store.queue_due(now() + 1, 100).await.unwrap();
    assert_eq!(due.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(), vec!["Q1"]);
    assert_eq!(store.queue_delete_held("bob@example.test").await.unwrap(), 2);
    assert_eq!(store.queue_list().await.unwrap().len(), 1);

    let all = Suspension { account: "bob@example.test".into(), scope: SuspensionScope::All, reason: "r".into(), automatic: false, since: now() };
    store.suspend(all).await.unwrap();
    assert!(store.login_suspended("BOB@example.test").await.unwrap());
    assert_eq!(store.suspensions().await.unwrap().len(), 1);
    assert_eq!(store.queue_release_held(None, Some("bob@example.test"), now()).await.unwrap(), 1);
    // Removing the account forgets its state.
    store.remove_account("bob@example.test").await.unwrap();
    assert!(store.suspensions().await.unwrap().is_empty());
}

#[tokio::test]
async fn evidence_of_logins_and_what_was_sent() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let t = now();
    store.known_login_put("bob@example.test", "192.0.2.1/32", "imap", t - 10 * DAY).await.unwrap();
    // The first login ever is not "new": there was nothing before it.
    assert_eq!(store.evidence("bob@example.test", t - HOUR).await.unwrap().new_network, None);
    // Another address in the same /24 (a new DHCP lease, another desk) is not a new network.
    store.known_login_put("bob@example.test", "192.0.2.77/32", "imap", t - 120).await.unwrap();
    assert_eq!(store.evidence("bob@example.test", t - HOUR).await.unwrap().new_network, None);
    store.known_login_put("bob@example.test", "198.51.100.7/32", "imap", t - 60).await.unwrap();
    submit(&store, "Q1", &["a@remote.test", "b@remote.test"]).await;
    submit(&store, "Q2", &["a@remote.test"]).await;
    let e = store.evidence("bob@example.test", t - HOUR).await.unwrap();
    assert_eq!(e.login_networks, vec!["192.0.2.77/32".to_string(), "198.51.100.7/32".to_string()]);
    let new = e.new_network.unwrap();
    assert_eq!((new.net.as_str(), new.messages_since), ("198.51.100.0/24", 2));
    assert_eq!((e.external_recipients, e.distinct_external), (3, 2));
    // A later login from the old network keeps its first sighting.
    store.known_login_put("bob@example.test", "192.0.2.1/32", "imap", t).await.unwrap();
    let e = store.evidence("bob@example.test", t - HOUR).await.unwrap();
    assert_eq!(e.login_networks.len(), 3);
    assert_eq!(e.new_network.unwrap().net, "198.51.100.0/24");
}

#[tokio::test]
async fn a_later_bounce_matches_only_what_the_account_sent() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    submit(&store, "Q1", &["a@remote.test", "B@remote.test"]).await;
    let bob = store.account("bob@example.test").await.unwrap().unwrap().id;
    let alice = store.account("alice@example.test").await.unwrap().unwrap().id;
    let rcpts = |list: &[&str]| list.iter().map(|r| r.to_string()).collect::<Vec<_>>();
    // About another message, or addressed to someone else than its sender: nothing.
    assert!(store.sent_bounced("Q9@example.test", rcpts(&["a@remote.test"]), vec![bob]).await.unwrap().is_empty());
    assert!(store.sent_bounced("Q1@example.test", rcpts(&["a@remote.test"]), vec![alice]).await.unwrap().is_empty());
    let found = store.sent_bounced("Q1@example.test", rcpts(&["a@remote.test", "b@remote.test", "c@remote.test"]), vec![alice, bob]);
    assert_eq!(found.await.unwrap(), vec![("bob@example.test".to_string(), 2)]);
    // The same report again counts nothing.
    assert!(store.sent_bounced("Q1@example.test", rcpts(&["a@remote.test"]), vec![bob]).await.unwrap().is_empty());
    // Pruned with the signals.
    submit(&store, "Q2", &["a@remote.test"]).await;
    store.signals_prune(now() + 1).await.unwrap();
    assert!(store.sent_bounced("Q2@example.test", rcpts(&["a@remote.test"]), vec![bob]).await.unwrap().is_empty());
}

#[tokio::test]
async fn distinct_recipients_are_counted_once_in_their_latest_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let t = 1_000 * DAY;
    let sent = |rcpts: &[&str]| Submitted {
        account: "bob@example.test".into(),
        recipients: rcpts.len() as u64,
        external: rcpts.iter().map(|r| r.to_string()).collect(),
        message_id: String::new(),
        relayed: false,
    };
    // x three times (twice in one bucket, then 10 hours later), y once, early.
    for (at, rcpts) in [(t - 20 * HOUR, vec!["x@remote.test", "y@remote.test"]), (t - 20 * HOUR + 1, vec!["X@remote.test"]), (t - 10 * HOUR, vec!["x@remote.test"])] {
        let s = sent(&rcpts);
        store.write(move |conn, _| quota::record(conn, &s, at)).await.unwrap();
    }
    assert_eq!(store.quota_usage("bob@example.test", t).await.unwrap().external_day, 2);
    assert_eq!(store.quota_usage("example.test", t).await.unwrap().external_day, 2);
    // 13 hours on, y's day is over but x was sent to since.
    assert_eq!(store.quota_usage("bob@example.test", t + 13 * HOUR).await.unwrap().external_day, 1);
    // Pruning takes recipients and their bucket counts together.
    store.quota_prune(t - 15 * HOUR).await.unwrap();
    assert_eq!(store.quota_usage("bob@example.test", t).await.unwrap().external_day, 1);
    let s = sent(&["y@remote.test"]);
    store.write(move |conn, _| quota::record(conn, &s, t)).await.unwrap();
    assert_eq!(store.quota_usage("bob@example.test", t).await.unwrap().external_day, 2);
    let rows: i64 = store.read(|conn| Ok(conn.query_row("SELECT sum(rcpts) FROM quota_seen WHERE scope = 'bob@example.test'", [], |r| r.get(0))?)).await.unwrap();
    assert_eq!(rows, 2, "one per distinct recipient");
    assert_eq!(BUCKET, 300, "the migration that fills quota_seen divides by 300");
}
