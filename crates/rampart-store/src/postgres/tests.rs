//! What only the PostgreSQL store must show: the same answers when several connections (as
//! several nodes would) act at once, migrations applied once, and the held queue (its rows
//! written by SQL, to set up exactly the states it needs). The message path with two nodes is
//! in `node_tests`; the behaviour shared with SQLite is in `crate::role_tests`.

use super::{PgStore, schema, testdb};
use crate::containment::{Suspension, SuspensionScope};
use crate::prelude::*;
use crate::quota::Submitted;
use crate::sqlite::now;
use crate::StoreError;

async fn open(url: &str) -> PgStore {
    PgStore::open(url, 8, None, &testdb::spool()).await.unwrap()
}

#[tokio::test]
async fn nodes_starting_at_once_migrate_once() {
    let url = testdb::database().await;
    let opens = (0..4).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { open(&url).await })
    });
    for o in opens {
        o.await.unwrap();
    }
    let store = open(&url).await;
    let versions: Vec<i64> = store
        .conn()
        .await
        .unwrap()
        .query("SELECT version FROM schema_migrations ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, (1..=schema::VERSION).collect::<Vec<_>>());
    // A database migrated by a newer binary is refused, not written to.
    store.conn().await.unwrap().execute("INSERT INTO schema_migrations VALUES ($1, 0)", &[&(schema::VERSION + 1)]).await.unwrap();
    assert!(matches!(PgStore::open(&url, 1, None, &testdb::spool()).await, Err(StoreError::SchemaTooNew { .. })));
}

/// As SQLite's `every_foreign_key_leads_an_index`: deleting a parent row looks up its
/// children, which without an index on the child column is a scan of the child table.
#[tokio::test]
async fn every_foreign_key_leads_an_index() {
    let store = open(&testdb::migrated().await).await;
    let unindexed: Vec<String> = store
        .conn()
        .await
        .unwrap()
        .query(
            "SELECT c.conrelid::regclass::text || '.' || a.attname FROM pg_constraint c \
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] \
             WHERE c.contype = 'f' AND NOT EXISTS \
               (SELECT 1 FROM pg_index i WHERE i.indrelid = c.conrelid AND i.indkey[0] = c.conkey[1]) \
             ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(unindexed.is_empty(), "foreign keys without an index: {unindexed:?}");
}

#[tokio::test]
async fn an_address_becomes_an_account_or_an_alias_never_both() {
    let store = open(&testdb::migrated().await).await;
    store.add_domain("example.test").await.unwrap();
    for i in 0..10 {
        let address = format!("u{i}@example.test");
        let (a, b) = tokio::join!(store.add_account(&address, "h"), store.add_alias(&address, "x@remote.test"));
        assert!(a.is_ok() != b.is_ok(), "{address}: {a:?} {b:?}");
        assert!(matches!(a.err().or(b.err()), Some(StoreError::Exists(_))));
    }
}

#[tokio::test]
async fn the_last_admin_cannot_be_removed_even_by_two_nodes_at_once() {
    let store = open(&testdb::migrated().await).await;
    store.add_domain("example.test").await.unwrap();
    for a in ["a@example.test", "b@example.test"] {
        store.add_account(a, "h").await.unwrap();
    }
    store.conn().await.unwrap().execute("UPDATE accounts SET role = 'admin'", &[]).await.unwrap();
    let (a, b) = tokio::join!(store.remove_account("a@example.test"), store.remove_account("b@example.test"));
    assert!(a.is_ok() != b.is_ok(), "{a:?} {b:?}");
    assert!(matches!(a.err().or(b.err()), Some(StoreError::LastAdmin(_))));
}

#[tokio::test]
async fn concurrent_submissions_count_each_recipient_once() {
    let store = open(&testdb::migrated().await).await;
    let t = 1_000 * crate::quota::DAY;
    let rcpts: Vec<String> = (0..20).map(|i| format!("r{i}@remote.test")).collect();
    let tasks = (0..8).map(|n| {
        let (store, mut rcpts) = (store.clone(), rcpts.clone());
        // Each in another order: the sorted locking must keep them from deadlocking.
        rcpts.rotate_left(n * 3 % 20);
        tokio::spawn(async move {
            let s = Submitted {
                account: "bob@example.test".into(),
                recipients: rcpts.len() as u64,
                external: rcpts,
                message_id: format!("m{n}@example.test"),
                relayed: false,
            };
            store.record_submitted(s, t + n as i64).await
        })
    });
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let u = store.quota_usage("bob@example.test", t + 10).await.unwrap();
    assert_eq!((u.messages_hour, u.recipients_hour, u.external_day), (8, 160, 20));
    assert_eq!(store.quota_usage("example.test", t + 10).await.unwrap().external_day, 20);
}

/// Writes a queue entry of `account` with one pending recipient, on a blob of its own.
async fn queue_row(store: &PgStore, id: &str, account: &str) {
    let conn = store.conn().await.unwrap();
    let blob = format!("blob-{id}");
    conn.execute("INSERT INTO blobs (id, size, refcount) VALUES ($1, 2, 1)", &[&blob]).await.unwrap();
    conn.execute("INSERT INTO blob_chunks (blob_id, seq, data) VALUES ($1, 0, '\\x6869')", &[&blob]).await.unwrap();
    conn.execute(
        "INSERT INTO queue (id, blob_id, prefix, sender, size, smtputf8, is_dsn, created, account) \
         VALUES ($1, $2, '', $3, 2, false, false, $4, $3)",
        &[&id, &blob, &account, &now()],
    )
    .await
    .unwrap();
    conn.execute(
        "INSERT INTO queue_rcpts (queue_id, rcpt, domain, state, next_attempt, updated) \
         VALUES ($1, 'x@remote.test', 'remote.test', 'pending', $2, $2)",
        &[&id, &(now() + 3600)],
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn suspension_holds_queued_mail_until_released_or_deleted() {
    let store = open(&testdb::migrated().await).await;
    queue_row(&store, "Q1", "bob@example.test").await;
    queue_row(&store, "Q2", "bob@example.test").await;
    queue_row(&store, "Q3", "alice@example.test").await;
    let s = Suspension { account: "bob@example.test".into(), scope: SuspensionScope::Sending, reason: "r".into(), automatic: false, since: now() };
    assert_eq!(store.suspend(s).await.unwrap().held, 2);
    let held = |id: &'static str| {
        let store = store.clone();
        async move { store.conn().await.unwrap().query_one("SELECT held FROM queue WHERE id = $1", &[&id]).await.unwrap().get::<_, bool>(0) }
    };
    assert!(held("Q1").await && held("Q2").await && !held("Q3").await);
    assert_eq!(store.resume("bob@example.test", now()).await.unwrap(), Some(2), "resuming releases nothing");
    let t = now();
    assert_eq!(store.queue_release_held(Some("Q1"), None, t).await.unwrap(), 1);
    assert_eq!(store.queue_release_held(Some("Q1"), None, t).await.unwrap(), 0, "not held any more");
    let next: i64 = store
        .conn()
        .await
        .unwrap()
        .query_one("SELECT next_attempt FROM queue_rcpts WHERE queue_id = 'Q1'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(next, t, "released: due now");
    assert_eq!(store.queue_delete_held("bob@example.test").await.unwrap(), 1);
    let conn = store.conn().await.unwrap();
    let left: Vec<String> = conn.query("SELECT id FROM queue ORDER BY id", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(left, ["Q1", "Q3"]);
    let released: Option<i64> = conn.query_one("SELECT released FROM blobs WHERE id = 'blob-Q2'", &[]).await.unwrap().get(0);
    assert!(released.is_some(), "the deleted entry's body is released");
    super::purge_released(&conn, now() + 1).await.unwrap();
    let chunks: i64 = conn.query_one("SELECT count(*) FROM blob_chunks WHERE blob_id = 'blob-Q2'", &[]).await.unwrap().get(0);
    assert_eq!(chunks, 0, "and goes with its chunks");
}

#[tokio::test]
async fn delivery_reads_the_keys_of_its_accounts_at_once() {
    let store = open(&testdb::migrated().await).await;
    store.add_domain("example.test").await.unwrap();
    let ids: Vec<i64> = [store.add_account("a@example.test", "h").await.unwrap(), store.add_account("b@example.test", "h").await.unwrap()].into();
    let key = crate::NewPgpKey { key: vec![1], fingerprint: "F".into(), protect_subject: false, publish: false, search: false };
    store.pgp_key_set("b@example.test", key).await.unwrap();
    let keys = super::pgp::keys_for(&store.conn().await.unwrap(), &ids).await.unwrap();
    assert_eq!(keys.iter().map(|k| k.account).collect::<Vec<_>>(), [ids[1]]);
}

#[tokio::test]
async fn a_mailbox_takes_its_metadata_with_it() {
    use crate::{MetadataLimits, MetadataStore};
    let store = open(&testdb::migrated().await).await;
    store.add_domain("example.test").await.unwrap();
    let bob = store.add_account("bob@example.test", "h").await.unwrap();
    let conn = store.conn().await.unwrap();
    let inbox: i64 =
        conn.query_one("SELECT id FROM mailboxes WHERE account_id = $1 AND name = 'INBOX'", &[&bob]).await.unwrap().get(0);
    let limits = MetadataLimits { entries: 10, bytes: 1000 };
    store.set_metadata(bob, Some(inbox), vec![("/private/comment".into(), Some(b"x".to_vec()))], limits).await.unwrap().unwrap();
    // As DELETE does (the IMAP path is still to come on PostgreSQL): the trigger follows it.
    conn.execute("DELETE FROM mailboxes WHERE id = $1", &[&inbox]).await.unwrap();
    assert!(store.metadata(bob, Some(inbox)).await.unwrap().is_empty());
}

#[tokio::test]
async fn one_node_works_on_each_acme_request_and_renewal() {
    use crate::CertificateStore;
    let url = testdb::migrated().await;
    let (a, b) = (open(&url).await, open(&url).await);
    let r1 = a.request_acme(&["a.test".into()]).await.unwrap();
    let r2 = a.request_acme(&["b.test".into()]).await.unwrap();
    // Two nodes polling at once: each request goes to one of them.
    let (ga, gb) = tokio::join!(a.acme_requests_pending(), b.acme_requests_pending());
    let mut ids: Vec<i64> = ga.unwrap().into_iter().chain(gb.unwrap()).map(|(id, _)| id).collect();
    ids.sort();
    assert_eq!(ids, [r1, r2]);
    assert!(a.acme_requests_pending().await.unwrap().is_empty(), "claimed, not finished");
    // The node working on r1 died: its lease runs out and another node takes it.
    a.conn().await.unwrap().execute("UPDATE acme_requests SET claimed_until = 0 WHERE id = $1", &[&r1]).await.unwrap();
    b.finish_acme_request(r2, Err("down".into())).await.unwrap();
    assert_eq!(b.acme_requests_pending().await.unwrap(), [(r1, vec!["a.test".to_string()])]);

    // Renewal of a configured name: one holder until its lease ends; it may renew its own.
    let t = now();
    assert!(a.acme_claim("mail.test", "node-a", t, 600).await.unwrap());
    assert!(!b.acme_claim("mail.test", "node-b", t + 1, 600).await.unwrap());
    assert!(a.acme_claim("mail.test", "node-a", t + 2, 600).await.unwrap());
    assert!(b.acme_claim("other.test", "node-b", t, 600).await.unwrap());
    assert!(b.acme_claim("mail.test", "node-b", t + 700, 600).await.unwrap(), "node-a's lease ran out");
    assert!(!a.acme_claim("mail.test", "node-a", t + 701, 600).await.unwrap());
}

#[tokio::test]
async fn every_node_sees_the_certificate_version_move() {
    use crate::CertificateStore;
    let url = testdb::migrated().await;
    let (a, b) = (open(&url).await, open(&url).await);
    let before = b.certificates_version().await.unwrap();
    let cert = crate::certs::StoredCert {
        id: 0,
        names: vec!["mail.test".into()],
        issuer: "CN=ca".into(),
        not_before: 1,
        not_after: 2,
        key_type: "ecdsa-p256".into(),
        source: "acme".into(),
        chain_pem: Some("C".into()),
        key_pem: "K".into(),
        csr_pem: None,
        created: 0,
        warned: vec![],
    };
    let id = a.add_certificate(cert).await.unwrap();
    a.assign_certificate(id, crate::certs::Usage::Listener, "smtp").await.unwrap();
    assert!(b.certificates_version().await.unwrap() >= before + 2);
    assert_eq!(b.certificate(id).await.unwrap().names, ["mail.test"]);
}
