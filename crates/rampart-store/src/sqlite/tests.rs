use super::*;
use crate::prelude::*;
use crate::{Delivery, ErrorKind, Folder, Target};

async fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    store.add_domain("Example.TEST").await.unwrap();
    (dir, store)
}

async fn blob(store: &SqliteStore, body: &[u8]) -> crate::Blob {
    let mut w = store.blob_writer().unwrap();
    w.write(body).await.unwrap();
    w.finish().await.unwrap()
}

#[tokio::test]
async fn reopening_keeps_data_and_clears_unfinished_blobs() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SqliteStore::open(dir.path()).unwrap();
        store.add_domain("example.test").await.unwrap();
        let mut w = store.blob_writer().unwrap();
        w.write(&vec![b'x'; crate::blob::FLUSH_AT + 1]).await.unwrap();
        // Simulate a crash mid-message: the file stays in tmp.
        std::mem::forget(w);
    }
    assert!(std::fs::read_dir(dir.path().join("blobs/tmp")).unwrap().next().is_some());
    // A CLI process must not touch files the server may be writing.
    SqliteStore::open(dir.path()).unwrap();
    assert!(std::fs::read_dir(dir.path().join("blobs/tmp")).unwrap().next().is_some());
    let store = SqliteStore::open_for_server(dir.path()).unwrap();
    assert_eq!(store.list_domains().await.unwrap(), vec!["example.test"]);
    assert!(std::fs::read_dir(dir.path().join("blobs/tmp")).unwrap().next().is_none());
    assert!(matches!(SqliteStore::open_for_server(dir.path()), Err(StoreError::LockHeld(_))), "one server per store");
}

#[tokio::test]
async fn dmarc_evaluations_reports_and_state() {
    let (_dir, store) = store().await;
    store.add_dmarc_evaluation("example.test", "{}").await.unwrap();
    let far = now() + 10;
    assert_eq!(store.dmarc_evaluations(far).await.unwrap().len(), 1);
    store.delete_dmarc_evaluations(far).await.unwrap();
    assert!(store.dmarc_evaluations(far).await.unwrap().is_empty());
    // One domain's evaluations go, another's stay.
    store.add_dmarc_evaluation("a.test", "{}").await.unwrap();
    store.add_dmarc_evaluation("B.test", "{}").await.unwrap();
    store.delete_dmarc_evaluations_of("A.TEST", far).await.unwrap();
    let left = store.dmarc_evaluations(far).await.unwrap();
    assert_eq!(left.iter().map(|(d, _, _)| d.as_str()).collect::<Vec<_>>(), ["b.test"]);
    store.delete_dmarc_evaluations_of("b.test", now() - 10).await.unwrap();
    assert_eq!(store.dmarc_evaluations(far).await.unwrap().len(), 1, "only evaluations stored before `until` go");
    store.delete_dmarc_evaluations(far).await.unwrap();
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
    assert!(!store.add_dmarc_report(r).await.unwrap(), "the same report twice is stored once");
    assert_eq!(store.dmarc_reports().await.unwrap().len(), 1);
    assert_eq!(store.state("k").await.unwrap(), None);
    store.set_state("k", "1").await.unwrap();
    store.set_state("k", "2").await.unwrap();
    assert_eq!(store.state("k").await.unwrap().as_deref(), Some("2"));
}

#[tokio::test]
async fn small_bodies_are_inline_large_ones_are_files() {
    let (dir, store) = store().await;
    let bob = store.add_account("bob@example.test", "h").await.unwrap();
    let count_files = || {
        std::fs::read_dir(dir.path().join("blobs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| !p.ends_with("tmp"))
            .flat_map(|d| std::fs::read_dir(d).unwrap())
            .count()
    };
    let small = b"Subject: small\r\n\r\nhi\r\n".to_vec();
    let large: Vec<u8> = std::iter::repeat_n(b"0123456789abcdef\r\n".as_slice(), 10_000).flatten().copied().collect();
    for (i, body) in [&small, &large].into_iter().enumerate() {
        let b = blob(&store, body).await;
        store
            .deliver(Delivery {
                blob: b,
                prefix: vec![],
                internal_date: 0,
                targets: vec![Target { account: bob, folder: Folder::Inbox }],
                reference: format!("S{i}"),
                trail: "[]".into(),
                outbound: None,
            })
            .await
            .unwrap();
    }
    assert_eq!(count_files(), 1, "only the large body has a file");
    let inbox = store.mailboxes(bob).await.unwrap()[0].id;
    assert_eq!(store.read_message(inbox, 1).await.unwrap(), small);
    assert_eq!(store.read_message(inbox, 2).await.unwrap(), large);
    store.remove_account("bob@example.test").await.unwrap();
    assert_eq!(count_files(), 0);
}

/// Blob files in the buckets (committed or placed), not in `tmp`.
pub(super) fn placed_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir.join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.ends_with("tmp"))
        .flat_map(|d| std::fs::read_dir(d).unwrap().map(|e| e.unwrap().path()))
        .collect()
}

fn to_inbox(blob: crate::Blob, account: AccountId, reference: &str) -> Delivery {
    Delivery {
        blob,
        prefix: vec![],
        internal_date: 0,
        targets: vec![Target { account, folder: Folder::Inbox }],
        reference: reference.into(),
        trail: "[]".into(),
        outbound: None,
    }
}

#[tokio::test]
async fn a_failed_commit_leaves_no_blob_file() {
    let (dir, store) = store().await;
    let bob = store.add_account("bob@example.test", "h").await.unwrap();
    let large = vec![b'x'; crate::blob::INLINE_MAX + 1];

    // A commit that fails as on a full disk: the file was renamed into its bucket already.
    store.fail_commits(1);
    let e = store.deliver(to_inbox(blob(&store, &large).await, bob, "F1")).await.unwrap_err();
    assert!(matches!(e, StoreError::CommitFailed(_)), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.chain().to_string().contains("injected commit failure"), "{}", e.chain());
    assert_eq!(placed_files(dir.path()), Vec::<std::path::PathBuf>::new());

    // A COMMIT that SQLite itself refuses: a deferred foreign key the job broke.
    let d = to_inbox(blob(&store, &large).await, bob, "F2");
    let e = store
        .write(move |conn, effects| {
            let delivered = delivery::deliver(conn, effects, d, None, "")?;
            conn.execute_batch(
                "PRAGMA defer_foreign_keys = ON; \
                 INSERT INTO messages (mailbox_id, uid, blob_id, prefix, size, internal_date, modseq, reference, trail) \
                 VALUES (999999, 1, 'none', x'', 0, 0, 1, 'F2', '[]')",
            )?;
            Ok(delivered)
        })
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::CommitFailed(_)), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::Internal, "a constraint does not go away by trying again");
    assert_eq!(placed_files(dir.path()), Vec::<std::path::PathBuf>::new());
    assert!(std::fs::read_dir(dir.path().join("blobs/tmp")).unwrap().next().is_none());

    // The writer goes on as before.
    let ok = store.deliver(to_inbox(blob(&store, &large).await, bob, "F3")).await.unwrap();
    assert_eq!(ok[0].uid, 1, "the failed deliveries took no UID");
    assert_eq!(placed_files(dir.path()).len(), 1);
}

#[tokio::test]
async fn the_server_sweeps_orphaned_blob_files_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let large = vec![b'x'; crate::blob::INLINE_MAX + 1];
    {
        let store = SqliteStore::open(dir.path()).unwrap();
        store.add_domain("example.test").await.unwrap();
        let bob = store.add_account("bob@example.test", "h").await.unwrap();
        store.deliver(to_inbox(blob(&store, &large).await, bob, "K")).await.unwrap();
    }
    let kept = placed_files(dir.path());
    assert_eq!(kept.len(), 1);
    // A file a crash left between rename and commit, and one a CLI delivery is committing now.
    let orphan = |secs: i64, n: u64| {
        let id = format!("{:012x}{n:016x}", secs * 1000);
        let path = crate::blob::blob_path(&dir.path().join("blobs"), &id);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"never acknowledged").unwrap();
        path
    };
    let old = orphan(now() - 2 * 3600, 1);
    let recent = orphan(now(), 2);

    // Only the lock holder sweeps.
    SqliteStore::open(dir.path()).unwrap();
    assert!(old.exists());
    let store = SqliteStore::open_for_server(dir.path()).unwrap();
    assert!(!old.exists(), "an old file no row names is removed");
    assert!(recent.exists(), "a recent one may be a delivery about to commit");
    assert!(kept[0].exists());
    let bob = store.account("bob@example.test").await.unwrap().unwrap().id;
    let inbox = store.mailboxes(bob).await.unwrap()[0].id;
    assert_eq!(store.read_message(inbox, 1).await.unwrap(), large);
}


