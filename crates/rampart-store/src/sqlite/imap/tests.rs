use super::*;
use crate::prelude::*;

async fn setup() -> (tempfile::TempDir, SqliteStore, AccountId) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    store.add_domain("example.test").await.unwrap();
    let bob = store.add_account("bob@example.test", "h").await.unwrap();
    (dir, store, bob)
}

async fn append(store: &SqliteStore, mailbox: MailboxId, body: &[u8], flags: &str) -> u32 {
    let mut w = store.blob_writer().unwrap();
    w.write(body).await.unwrap();
    let blob = w.finish().await.unwrap();
    store.append(mailbox, blob, flags.into(), 1_700_000_000).await.unwrap().uids[0].1
}

fn blob_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.ends_with("tmp"))
        .flat_map(|d| std::fs::read_dir(d).unwrap())
        .count()
}

#[tokio::test]
async fn mailbox_lifecycle() {
    let (_dir, store, bob) = setup().await;
    store.create_mailbox(bob, "Work/Projects/A", None).await.unwrap();
    let names: Vec<String> = store.mailbox_states(bob).await.unwrap().into_iter().map(|m| m.name).collect();
    assert!(names.contains(&"Work".to_string()) && names.contains(&"Work/Projects".to_string()));
    assert!(matches!(store.create_mailbox(bob, "Work", None).await, Err(StoreError::Exists(_))));
    assert!(matches!(store.create_mailbox(bob, "inbox", None).await, Err(StoreError::Exists(_))));
    assert!(matches!(store.create_mailbox(bob, "Work//B", None).await, Err(StoreError::InvalidName(_))));
    assert!(matches!(store.delete_mailbox(bob, "Work").await, Err(StoreError::HasChildren(_))), "has children");
    assert!(matches!(store.rename_mailbox(bob, "Work", "Work/Sub").await, Err(StoreError::Conflict { .. })));
    assert!(matches!(store.rename_mailbox(bob, "Work", "INBOX").await, Err(StoreError::Conflict { .. })));
    let old = store.mailbox_state(bob, "Work/Projects/A").await.unwrap().unwrap();
    store.rename_mailbox(bob, "Work", "Job").await.unwrap();
    let moved = store.mailbox_state(bob, "Job/Projects/A").await.unwrap().unwrap();
    assert_eq!(moved.uidvalidity, old.uidvalidity);
    store.delete_mailbox(bob, "Job/Projects/A").await.unwrap();
    store.create_mailbox(bob, "Job/Projects/A", None).await.unwrap();
    let again = store.mailbox_state(bob, "Job/Projects/A").await.unwrap().unwrap();
    assert!(again.uidvalidity > old.uidvalidity, "a recreated mailbox gets a new UIDVALIDITY");
    assert!(!store.mailbox_state(bob, "Job").await.unwrap().unwrap().subscribed, "CREATE does not subscribe");
    store.set_subscribed(bob, "Job", true).await.unwrap();
    assert!(store.mailbox_state(bob, "Job").await.unwrap().unwrap().subscribed);
    store.set_subscribed(bob, "Job", false).await.unwrap();
    assert!(!store.mailbox_state(bob, "Job").await.unwrap().unwrap().subscribed);
    assert!(matches!(store.delete_mailbox(bob, "INBOX").await, Err(StoreError::InboxUndeletable)));
}

#[tokio::test]
async fn subscriptions_are_names_that_outlive_their_mailbox() {
    let (_dir, store, bob) = setup().await;
    assert!(store.subscriptions(bob).await.unwrap().contains(&"INBOX".to_string()), "default folders are subscribed");
    store.create_mailbox(bob, "Lists/rust", None).await.unwrap();
    assert!(matches!(store.set_subscribed(bob, "Nowhere", true).await, Err(StoreError::NotFound(_))));
    store.set_subscribed(bob, "Lists/rust", true).await.unwrap();
    store.rename_mailbox(bob, "Lists", "Groups").await.unwrap();
    let subs = store.subscriptions(bob).await.unwrap();
    assert!(subs.contains(&"Groups/rust".to_string()) && !subs.contains(&"Lists/rust".to_string()), "{subs:?}");
    // RFC 3501 §6.3.6: deleting the mailbox leaves the subscription.
    store.delete_mailbox(bob, "Groups/rust").await.unwrap();
    assert!(store.subscriptions(bob).await.unwrap().contains(&"Groups/rust".to_string()));
    store.set_subscribed(bob, "Groups/rust", false).await.unwrap();
    assert!(!store.subscriptions(bob).await.unwrap().contains(&"Groups/rust".to_string()));
    assert!(matches!(store.set_subscribed(bob, "Groups/rust", false).await, Err(StoreError::NotFound(_))));
}

#[tokio::test]
async fn flags_modseq_expunge_and_notification() {
    let (dir, store, bob) = setup().await;
    let inbox = store.mailbox_state(bob, "INBOX").await.unwrap().unwrap();
    let mut watch = store.watch_mailbox(inbox.id);
    // Bodies above INLINE_MAX live in files, so releasing references can be seen on disk.
    let body = |n: u8| {
        let mut b = format!("Subject: {n}\r\n\r\n").into_bytes();
        b.resize(crate::blob::INLINE_MAX + 1024, b'x');
        b
    };
    let u1 = append(&store, inbox.id, &body(1), "\\Seen").await;
    let u2 = append(&store, inbox.id, &body(2), "").await;
    assert_eq!((u1, u2), (1, 2));
    assert!(watch.has_changed().unwrap());
    watch.borrow_and_update();

    let (state, rows) = store.snapshot(inbox.id).await.unwrap();
    assert_eq!(rows.len(), 2);
    let base = state.highestmodseq;
    let update = store
        .store_flags(inbox.id, vec![1, 2], FlagOp::Add, vec!["\\Deleted".into(), "$Work".into()], None)
        .await
        .unwrap();
    assert_eq!(update.messages[0].1, "\\Seen \\Deleted $Work");
    assert!(update.messages[0].2 > base);
    let changes = store.changes_since(inbox.id, base).await.unwrap();
    assert_eq!(changes.changed.len(), 2);
    // UNCHANGEDSINCE older than the last change refuses the message.
    let refused = store.store_flags(inbox.id, vec![1], FlagOp::Remove, vec!["$work".into()], Some(base)).await.unwrap();
    assert_eq!(refused.modified, vec![1]);

    let copied = store.copy_messages(inbox.id, vec![1, 2], store.mailbox_state(bob, "Archive").await.unwrap().unwrap().id).await.unwrap();
    assert_eq!(copied.uids, vec![(1, 1), (2, 2)]);
    assert_eq!(blob_files(dir.path()), 2);
    let gone = store.expunge(inbox.id, Some(vec![2])).await.unwrap();
    assert_eq!(gone, vec![2]);
    let changes = store.changes_since(inbox.id, update.messages[0].2).await.unwrap();
    assert_eq!(changes.expunged, vec![2]);
    assert!(watch.has_changed().unwrap());
    assert_eq!(blob_files(dir.path()), 2, "the copy in Archive still holds the blob");
    store.delete_mailbox(bob, "Archive").await.unwrap();
    assert_eq!(blob_files(dir.path()), 1);
    assert_eq!(store.usage(bob).await.unwrap().1, 1);
}

#[tokio::test]
async fn move_rename_inbox_and_recent() {
    let (_dir, store, bob) = setup().await;
    let inbox = store.mailbox_state(bob, "INBOX").await.unwrap().unwrap();
    let trash = store.mailbox_state(bob, "Trash").await.unwrap().unwrap();
    for i in 0..3 {
        append(&store, inbox.id, format!("Subject: {i}\r\n\r\n").as_bytes(), "").await;
    }
    assert_eq!(store.claim_recent(inbox.id, 3).await.unwrap(), 1);
    assert_eq!(store.claim_recent(inbox.id, 4).await.unwrap(), 3, "only UID 3 is left for a second session");
    assert_eq!(store.claim_recent(inbox.id, 4).await.unwrap(), 4, "a third session sees none as recent");
    let moved = store.move_messages(inbox.id, vec![2, 3], trash.id).await.unwrap();
    assert_eq!(moved.uids, vec![(2, 1), (3, 2)]);
    assert_eq!(store.mailbox_counts(inbox.id).await.unwrap().0, 1);
    store.rename_mailbox(bob, "INBOX", "Old").await.unwrap();
    let old = store.mailbox_state(bob, "Old").await.unwrap().unwrap();
    assert_eq!(store.mailbox_counts(old.id).await.unwrap().0, 1);
    assert_eq!(store.mailbox_counts(inbox.id).await.unwrap().0, 0);
    assert_eq!(store.read_message(old.id, 1).await.unwrap(), b"Subject: 0\r\n\r\n");
}

#[tokio::test]
async fn pruned_expunges_answer_with_every_missing_uid() {
    let (_dir, store, bob) = setup().await;
    let inbox = store.mailbox_state(bob, "INBOX").await.unwrap().unwrap();
    for n in 0..5u8 {
        append(&store, inbox.id, format!("Subject: {n}\r\n\r\nx").as_bytes(), "\\Deleted").await;
    }
    let base = store.mailbox_state(bob, "INBOX").await.unwrap().unwrap().highestmodseq;
    store.expunge(inbox.id, Some(vec![2])).await.unwrap();
    let middle = store.mailbox_state(bob, "INBOX").await.unwrap().unwrap().highestmodseq;
    assert_eq!(store.prune_expunged(0).await.unwrap(), 0, "nothing is older than the epoch");
    assert_eq!(store.prune_expunged(super::super::now() + 1).await.unwrap(), 1);
    store.expunge(inbox.id, Some(vec![4])).await.unwrap();
    // A MODSEQ after the pruned expunge: the exact list, from the rows kept.
    assert_eq!(store.changes_since(inbox.id, middle).await.unwrap().expunged, vec![4]);
    // A MODSEQ before it: every UID the mailbox no longer has, below UIDNEXT.
    assert_eq!(store.changes_since(inbox.id, base).await.unwrap().expunged, vec![2, 4]);
    assert_eq!(store.changes_since(inbox.id, 0).await.unwrap().expunged, vec![2, 4]);
}
