//! Quotas and containment in the SQLite store: counts and their windows, durability, the
//! scoring window of signals, suspensions holding queued mail, release and delete.

use super::*;
use crate::containment::{Suspension, SuspensionScope};
use crate::prelude::*;
use crate::quota::{DAY, Submitted};
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
    submit_with_prefix(store, id, remote, vec![]).await
}

async fn submit_with_prefix(store: &SqliteStore, id: &str, remote: &[&str], prefix: Vec<u8>) {
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
            prefix,
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

/// A signed message's prefix (~1 KiB of trace and DKIM-Signature fields) lives on a shared
/// leaf of its own table: on the queue row it spilled onto an overflow page per message.
/// It is read back with its message, and goes when the entry does; a row queued before the
/// prefixes had their table keeps its prefix in place.
#[tokio::test]
async fn a_queued_prefix_takes_no_page_of_its_own_and_goes_with_its_entry() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let prefix = |i: usize| format!("DKIM-Signature: {}\r\n", i.to_string().repeat(1200 / i.to_string().len())).into_bytes();
    for i in 1..=20 {
        submit_with_prefix(&store, &format!("P{i}"), &["x@remote.test"], prefix(i)).await;
    }
    let count = |sql: &'static str| store.read_now(move |c| Ok(c.query_row(sql, [], |r| r.get::<_, i64>(0))?)).unwrap();
    assert_eq!(count("SELECT count(*) FROM dbstat WHERE name IN ('queue', 'queue_prefixes') AND pagetype = 'overflow'"), 0);
    assert_eq!(store.queue_message("P7").await.unwrap(), [prefix(7), b"Subject: out\r\n\r\nhi\r\n".to_vec()].concat());
    store.queue_delete("P7").await.unwrap();
    assert_eq!(count("SELECT count(*) FROM queue_prefixes"), 19);
    // As queued by an older version.
    store
        .write(|conn, _| {
            conn.execute("DELETE FROM queue_prefixes WHERE id = (SELECT prefix_id FROM queue WHERE id = 'P8')", [])?;
            conn.execute("UPDATE queue SET prefix = x'4f6c643a20310d0a', prefix_id = NULL WHERE id = 'P8'", [])?;
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(store.queue_message("P8").await.unwrap(), b"Old: 1\r\nSubject: out\r\n\r\nhi\r\n");
    for i in 1..=20 {
        if i != 7 {
            store.queue_delete(&format!("P{i}")).await.unwrap();
        }
    }
    assert_eq!(count("SELECT count(*) FROM queue_prefixes"), 0);
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



