//! A populated SQLite store (through its roles) copied into the test cluster: every message
//! with its flags, UID and MODSEQ, queue entries, DKIM keys and web tokens arrive; a run
//! stopped half-way is completed by the next; what must be refused is.

use super::{MigrateError, migrate_sqlite_to_postgres};
use crate::postgres::testdb;
use crate::prelude::*;
use crate::{Delivery, FlagOp, Folder, Outbound, PgStore, SqliteStore, Target};

async fn blob(store: &SqliteStore, body: &[u8]) -> crate::Blob {
    let mut w = store.blob_writer().unwrap();
    w.write(body).await.unwrap();
    w.finish().await.unwrap()
}

fn message(i: usize, len: usize) -> Vec<u8> {
    let mut m = format!("Subject: message {i}\r\n\r\n").into_bytes();
    // Text that compresses, and a counter that keeps every body distinct.
    while m.len() < len {
        m.extend_from_slice(format!("line {} of message {i}\r\n", m.len()).as_bytes());
    }
    m
}

/// A store with two accounts, messages of every size class (inline, file, several chunks),
/// flags, an expunged message, a queue entry, DKIM keys and an API token.
async fn populated(dir: &std::path::Path) -> SqliteStore {
    let store = SqliteStore::open(dir).unwrap();
    store.add_domain("example.test").await.unwrap();
    let bob = store.add_account("bob@example.test", "h").await.unwrap();
    let alice = store.add_account("alice@example.test", "h").await.unwrap();
    for (i, len) in [100, 5_000, 70_000, 600_000, 300].into_iter().enumerate() {
        let b = blob(&store, &message(i, len)).await;
        let outbound = (i == 2).then(|| Outbound {
            sender: "bob@example.test".into(),
            rcpts: vec!["far@remote.test".into()],
            smtputf8: false,
            is_dsn: false,
            prefix: b"Received: out\r\n".to_vec(),
        });
        store
            .deliver(Delivery {
                blob: b,
                prefix: b"Received: test\r\n".to_vec(),
                internal_date: 1_700_000_000 + i as i64,
                targets: vec![Target { account: bob, folder: Folder::Inbox }, Target { account: alice, folder: Folder::Junk }],
                reference: format!("REF{i}"),
                trail: "[]".into(),
                outbound,
            })
            .await
            .unwrap();
    }
    let inbox = store.mailboxes(bob).await.unwrap().into_iter().find(|m| m.name == "INBOX").unwrap().id;
    store.store_flags(inbox, vec![1, 3], FlagOp::Add, vec!["\\Seen".into(), "$Label1".into()], None).await.unwrap();
    store.store_flags(inbox, vec![2], FlagOp::Add, vec!["\\Deleted".into()], None).await.unwrap();
    assert_eq!(store.expunge(inbox, None).await.unwrap(), [2]);
    let key = |selector: &str| crate::DkimKey {
        domain: "example.test".into(),
        selector: selector.into(),
        algorithm: "rsa".into(),
        private_key: vec![1, 0, 255],
        public_key: vec![2],
        active: false,
        created: 5,
    };
    store.add_dkim_key(key("s1")).await.unwrap();
    store.add_dkim_key(key("s2")).await.unwrap();
    store.api_token_add("ci", "hash1", &["domains".into()]).await.unwrap();
    store
}

/// Every message as (mailbox, uid, flags, size, the message's bytes), from the roles.
async fn messages(store: &(impl MailStore + DirectoryStore + ?Sized)) -> Vec<(String, u32, String, u64, Vec<u8>)> {
    let mut out = Vec::new();
    for account in store.list_accounts().await.unwrap() {
        for mailbox in store.mailboxes(account.id).await.unwrap() {
            for m in store.list_messages(mailbox.id).await.unwrap() {
                let text = store.read_message(mailbox.id, m.uid).await.unwrap();
                out.push((format!("{}/{}", account.address, mailbox.name), m.uid, format!("{:?}", m.flags), m.size, text));
            }
        }
    }
    out
}

async fn pg_rows(pg: &PgStore, sql: &str) -> Vec<String> {
    pg.conn().await.unwrap().query(sql, &[]).await.unwrap().iter().map(|r| r.get(0)).collect()
}

#[tokio::test]
async fn a_populated_store_arrives_whole_and_a_stopped_copy_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = populated(dir.path()).await;
    let expected = messages(&sqlite).await;
    assert_eq!(expected.len(), 9);
    drop(sqlite);
    let pg = PgStore::open(&testdb::migrated().await, 4, None, &std::env::temp_dir().join("rampart-test-spool")).await.unwrap();
    let seen = std::sync::Mutex::new(0u32);
    let report = migrate_sqlite_to_postgres(dir.path(), &pg, &|_| *seen.lock().unwrap() += 1).await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert!(*seen.lock().unwrap() > 10);
    assert_eq!(report.blobs_checked, 5);
    let count = |t: &str| report.tables.iter().find(|c| c.table == t).unwrap().destination;
    assert_eq!((count("messages"), count("queue"), count("dkim_keys"), count("expunged")), (9, 1, 2, 1));

    // Flags, UIDs, MODSEQs as SQLite had them; the bodies in chunks of 256 KiB.
    let rows = pg_rows(&pg, "SELECT b.name || ' ' || m.uid || ' ' || m.flags || ' ' || m.modseq FROM messages m \
        JOIN mailboxes b ON b.id = m.mailbox_id WHERE b.name = 'INBOX' ORDER BY m.uid").await;
    let want: Vec<String> = expected.iter().filter(|m| m.0 == "bob@example.test/INBOX").map(|m| m.1.to_string()).collect();
    assert_eq!(rows.iter().map(|r| r.split(' ').nth(1).unwrap().to_string()).collect::<Vec<_>>(), want);
    assert!(rows[0].contains("\\Seen") && rows[0].contains("$Label1"), "{rows:?}");
    let chunks = pg_rows(&pg, "SELECT count(*)::text FROM blob_chunks GROUP BY blob_id ORDER BY count(*) DESC LIMIT 1").await;
    assert_eq!(chunks, ["3"], "600 KB: three chunks");
    let bodies = pg_rows(&pg, "SELECT encode(m.prefix || string_agg(c.data, ''::bytea ORDER BY c.seq), 'escape') FROM messages m \
        JOIN blob_chunks c ON c.blob_id = m.blob_id JOIN mailboxes b ON b.id = m.mailbox_id \
        WHERE b.name = 'Junk' GROUP BY m.id, m.prefix ORDER BY m.uid").await;
    let junk: Vec<&Vec<u8>> = expected.iter().filter(|m| m.0.ends_with("/Junk")).map(|m| &m.4).collect();
    assert_eq!(bodies.len(), junk.len());
    assert_eq!(bodies[0].as_bytes(), junk[0].as_slice());
    assert_eq!(pg.dkim_keys(Some("example.test")).await.unwrap().len(), 2);
    assert_eq!(pg.api_token_use("hash1", 9).await.unwrap().unwrap().name, "ci");

    // A copy killed after some batches: the next run completes it, and then finds nothing to do.
    let conn = pg.conn().await.unwrap();
    conn.batch_execute(
        "DELETE FROM messages WHERE id = (SELECT max(id) FROM messages); \
         UPDATE sqlite_import SET copied = copied - 1, done = false WHERE tbl = 'messages'; \
         DELETE FROM dkim_keys; UPDATE sqlite_import SET copied = 0, done = false WHERE tbl = 'dkim_keys'",
    )
    .await
    .unwrap();
    let report = migrate_sqlite_to_postgres(dir.path(), &pg, &|_| {}).await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert!(migrate_sqlite_to_postgres(dir.path(), &pg, &|_| {}).await.unwrap().ok());
    // New rows continue after the copied ids.
    let carol = pg.add_account("carol@example.test", "h").await.unwrap();
    assert!(carol > 2);
}

#[tokio::test]
async fn a_mismatch_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    drop(populated(dir.path()).await);
    let pg = PgStore::open(&testdb::migrated().await, 2, None, &std::env::temp_dir().join("rampart-test-spool")).await.unwrap();
    assert!(migrate_sqlite_to_postgres(dir.path(), &pg, &|_| {}).await.unwrap().ok());
    pg.conn().await.unwrap().batch_execute("UPDATE blob_chunks SET data = 'x'::bytea WHERE seq = 1").await.unwrap();
    let report = migrate_sqlite_to_postgres(dir.path(), &pg, &|_| {}).await.unwrap();
    assert!(!report.ok());
    assert_eq!(report.blob_mismatches.len(), 1);
}

#[tokio::test]
async fn encrypted_sources_and_used_databases_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(populated(dir.path()).await);
    // A database with data that no copy wrote.
    let pg = PgStore::open(&testdb::migrated().await, 2, None, &std::env::temp_dir().join("rampart-test-spool")).await.unwrap();
    pg.add_domain("other.test").await.unwrap();
    let e = migrate_sqlite_to_postgres(dir.path(), &pg, &|_| {}).await.unwrap_err();
    assert!(matches!(&e, MigrateError::Refused(m) if m.contains("empty database")), "{e}");
    // A store encrypted with a server key.
    std::fs::write(dir.path().join(crate::storekey::FILE), "x").unwrap();
    let pg = PgStore::open(&testdb::migrated().await, 2, None, &std::env::temp_dir().join("rampart-test-spool")).await.unwrap();
    let e = migrate_sqlite_to_postgres(dir.path(), &pg, &|_| {}).await.unwrap_err();
    assert!(matches!(&e, MigrateError::Refused(m) if m.contains("encryption at rest")), "{e}");
}
