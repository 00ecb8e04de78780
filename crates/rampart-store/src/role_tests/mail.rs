//! The message path on every backend: delivery, the queue, the quarantine and what IMAP does
//! to mailboxes, as generic functions run against SQLite and PostgreSQL (as `super` does for
//! the other roles). Where a backend keeps bodies differently (files or chunk rows), the
//! [`Bodies`] trait counts them.

use async_trait::async_trait;

use crate::mail::{FlagOp, MailStore};
use crate::prelude::*;
use crate::quarantine::Hold;
use crate::sqlite::now;
use crate::{AccountId, Blob, Delivery, Folder, MailboxId, Outbound, RcptState, RcptUpdate, StoreError, Target};

/// What tests count of a backend's stored bodies.
#[async_trait]
pub(crate) trait Bodies {
    /// Bodies stored outside the index rows (SQLite: files; PostgreSQL: `blobs` rows).
    async fn bodies(&self) -> usize;
    /// Whether nothing is left where bodies wait while they stream in.
    fn spool_empty(&self) -> bool;
}

#[async_trait]
impl Bodies for crate::SqliteStore {
    async fn bodies(&self) -> usize {
        std::fs::read_dir(self.blob_root())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| !p.ends_with("tmp"))
            .flat_map(|d| std::fs::read_dir(d).unwrap())
            .count()
    }
    fn spool_empty(&self) -> bool {
        std::fs::read_dir(self.blob_root().join("tmp")).unwrap().next().is_none()
    }
}

#[async_trait]
impl Bodies for crate::PgStore {
    async fn bodies(&self) -> usize {
        let n: i64 = self.conn().await.unwrap().query_one("SELECT count(*) FROM blobs", &[]).await.unwrap().get(0);
        n as usize
    }
    fn spool_empty(&self) -> bool {
        std::fs::read_dir(self.spool().join("tmp")).unwrap().next().is_none()
    }
}

async fn blob(store: &(impl DeliveryStore + ?Sized), body: &[u8]) -> Blob {
    let mut w = store.blob_writer().unwrap();
    w.write(body).await.unwrap();
    w.finish().await.unwrap()
}

fn to_inbox(blob: Blob, account: AccountId, reference: &str) -> Delivery {
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

async fn append(store: &(impl MailStore + ?Sized), mailbox: MailboxId, body: &[u8], flags: &str) -> u32 {
    let blob = blob(store, body).await;
    store.append(mailbox, blob, flags.into(), 1_700_000_000).await.unwrap().uids[0].1
}

/// bob (and with `alice`, alice) on example.test.
async fn accounts<S: DirectoryStore + ?Sized>(store: &S) -> (AccountId, AccountId) {
    store.add_domain("Example.TEST").await.unwrap();
    let bob = store.add_account("bob@example.test", "h").await.unwrap();
    let alice = store.add_account("alice@example.test", "h").await.unwrap();
    (bob, alice)
}

pub(crate) async fn deliver_assigns_increasing_uids_and_reads_back<S: MailStore + DirectoryStore + Bodies + ?Sized>(store: &S) {
    let (bob, alice) = accounts(store).await;
    let mut uids = Vec::new();
    for i in 0..3 {
        let blob = blob(store, format!("Subject: {i}\r\n\r\nhello\r\n").as_bytes()).await;
        let delivered = store
            .deliver(Delivery {
                blob,
                prefix: b"Received: test\r\n".to_vec(),
                internal_date: 1,
                targets: vec![
                    Target { account: bob, folder: Folder::Inbox },
                    Target { account: alice, folder: Folder::Junk },
                    Target { account: bob, folder: Folder::Inbox },
                ],
                reference: format!("REF{i}"),
                trail: "[]".into(),
                outbound: None,
            })
            .await
            .unwrap();
        assert_eq!(delivered.len(), 2);
        uids.push(delivered[0].uid);
        let text = store.read_message(delivered[1].mailbox, delivered[1].uid).await.unwrap();
        assert_eq!(text, format!("Received: test\r\nSubject: {i}\r\n\r\nhello\r\n").into_bytes());
    }
    assert_eq!(uids, vec![1, 2, 3]);
    let found = store.messages_by_reference("REF1").await.unwrap();
    assert_eq!(found.len(), 2);
    assert!(found.iter().any(|m| m.mailbox == "alice@example.test/Junk"));
    assert!(store.spool_empty());
    // Removing both accounts drops the last references, so the bodies go too.
    store.remove_account("bob@example.test").await.unwrap();
    store.remove_account("alice@example.test").await.unwrap();
    assert_eq!(store.bodies().await, 0);
}

pub(crate) async fn a_failed_delivery_leaves_no_file_and_does_not_hurt_the_batch<S: MailStore + DirectoryStore + Bodies + ?Sized>(
    store: &S,
) {
    let (bob, _) = accounts(store).await;
    let good = blob(store, b"a\r\n").await;
    let bad = blob(store, b"b\r\n").await;
    let (ok, fail) = tokio::join!(store.deliver(to_inbox(good, bob, "A")), store.deliver(to_inbox(bad, 999, "B")));
    assert!(ok.is_ok());
    assert!(fail.is_err());
    assert!(store.spool_empty());
}

pub(crate) async fn concurrent_deliveries_all_land<S: MailStore + DirectoryStore + Clone + 'static>(store: &S) {
    let (bob, _) = accounts(store).await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let blob = blob(&store, format!("m{i}\r\n").as_bytes()).await;
            store.deliver(to_inbox(blob, bob, &format!("R{i}"))).await.unwrap()[0].uid
        }));
    }
    let mut uids = Vec::new();
    for t in tasks {
        uids.push(t.await.unwrap());
    }
    uids.sort();
    assert_eq!(uids, (1..=50).collect::<Vec<u32>>());
}

pub(crate) async fn queue_lifecycle_releases_the_blob<S: MailStore + DirectoryStore + QueueStore + Bodies + ?Sized>(store: &S) {
    let (bob, _) = accounts(store).await;
    let b = blob(store, b"Subject: out\r\n\r\nhi\r\n").await;
    let outbound = Outbound {
        sender: "bob@example.test".into(),
        rcpts: vec!["a@remote.test".into(), "b@other.test".into()],
        smtputf8: false,
        is_dsn: false,
        prefix: b"Received: x\r\n".to_vec(),
    };
    let delivery = Delivery { prefix: b"Received: x\r\n".to_vec(), outbound: Some(outbound), ..to_inbox(b, bob, "Q1") };
    store.deliver(delivery).await.unwrap();
    let due = store.queue_due(now() + 1, 100).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].rcpts.len(), 2);
    assert_eq!(due[0].rcpts[1].domain, "other.test");
    assert_eq!(store.queue_message("Q1").await.unwrap(), b"Received: x\r\nSubject: out\r\n\r\nhi\r\n");
    let (a, b) = (due[0].rcpts[0].id, due[0].rcpts[1].id);
    store
        .queue_update(vec![
            RcptUpdate { id: a, state: RcptState::Delivered, next_attempt: 0, error: String::new() },
            RcptUpdate { id: b, state: RcptState::Pending, next_attempt: now() + 600, error: "451 later".into() },
        ])
        .await
        .unwrap();
    assert!(store.queue_due(now() + 1, 100).await.unwrap().is_empty());
    let entry = store.queue_entry("Q1").await.unwrap().unwrap();
    assert_eq!(entry.rcpts[1].attempts, 1);
    assert_eq!(entry.rcpts[1].last_error, "451 later");
    store.queue_retry("Q1").await.unwrap();
    assert_eq!(store.queue_due(now() + 1, 100).await.unwrap().len(), 1);
    store.queue_update(vec![RcptUpdate { id: b, state: RcptState::Failed, next_attempt: 0, error: "550 no".into() }]).await.unwrap();
    assert!(store.queue_list().await.unwrap().is_empty());
    // The local copy still holds the body; removing the account frees it.
    store.remove_account("bob@example.test").await.unwrap();
    assert_eq!(store.bodies().await, 0);
}

pub(crate) async fn quarantine_holds_releases_and_expires<S: MailStore + DirectoryStore + QuarantineStore + ?Sized>(store: &S) {
    let (bob, alice) = accounts(store).await;
    let hold = |blob, id: &str, accounts| Hold {
        blob,
        prefix: b"Received: x\r\n".to_vec(),
        internal_date: 1_700_000_000,
        accounts,
        reference: id.into(),
        sender: "spam@remote.test".into(),
        subject: "cheap".into(),
        reason: "spam_score_quarantine".into(),
        score: Some(11.5),
        trail: "[]".into(),
    };
    let body = vec![b'x'; 300 * 1024];
    store.hold(hold(blob(store, &body).await, "Q1", vec![bob, alice])).await.unwrap();
    store.hold(hold(blob(store, b"small\r\n").await, "Q2", vec![bob])).await.unwrap();
    let all = store.held(None).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(store.held(Some(alice)).await.unwrap().iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), ["Q1"]);
    let q1 = store.held_one("Q1").await.unwrap().unwrap();
    assert_eq!((q1.recipients.len(), q1.score, q1.subject.as_str()), (2, Some(11.5), "cheap"));
    assert!(store.held_message("Q1").await.unwrap().starts_with(b"Received: x\r\nxxx"));
    // Alice releases her copy; Bob's is still held, sharing the body.
    let delivered = store.release("Q1", Some(alice)).await.unwrap();
    assert_eq!(delivered.len(), 1);
    let inbox = store.mailboxes(alice).await.unwrap()[0].id;
    assert_eq!(store.read_message(inbox, delivered[0].uid).await.unwrap().len(), body.len() + 13);
    assert_eq!(store.held_one("Q1").await.unwrap().unwrap().recipients, ["bob@example.test"]);
    assert!(matches!(store.release("Q1", Some(alice)).await, Err(StoreError::NotFound(_))));
    // Bob deletes his; the row goes, the body stays for Alice's message.
    assert!(store.delete_held("Q1", Some(bob)).await.unwrap());
    assert!(store.held_one("Q1").await.unwrap().is_none());
    assert_eq!(store.read_message(inbox, delivered[0].uid).await.unwrap().len(), body.len() + 13);
    assert_eq!(store.expire_held(now() + 10).await.unwrap(), 1);
    assert!(store.held(None).await.unwrap().is_empty());
    assert!(!store.delete_held("Q2", None).await.unwrap());
}

pub(crate) async fn mailbox_lifecycle<S: MailStore + DirectoryStore + ?Sized>(store: &S) {
    let (bob, _) = accounts(store).await;
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

pub(crate) async fn subscriptions_are_names_that_outlive_their_mailbox<S: MailStore + DirectoryStore + ?Sized>(store: &S) {
    let (bob, _) = accounts(store).await;
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

pub(crate) async fn flags_modseq_expunge_and_notification<S: MailStore + DirectoryStore + Bodies + ?Sized>(store: &S) {
    let (bob, _) = accounts(store).await;
    let inbox = store.mailbox_state(bob, "INBOX").await.unwrap().unwrap();
    let mut watch = store.watch_mailbox(inbox.id);
    // Bodies above INLINE_MAX live in files in SQLite, so releasing references can be seen.
    let body = |n: u8| {
        let mut b = format!("Subject: {n}\r\n\r\n").into_bytes();
        b.resize(crate::blob::INLINE_MAX + 1024, b'x');
        b
    };
    let u1 = append(store, inbox.id, &body(1), "\\Seen").await;
    let u2 = append(store, inbox.id, &body(2), "").await;
    assert_eq!((u1, u2), (1, 2));
    assert!(watch.has_changed().unwrap());
    watch.borrow_and_update();

    let (state, rows) = store.snapshot(inbox.id).await.unwrap();
    assert_eq!(rows.len(), 2);
    let base = state.highestmodseq;
    let update = store.store_flags(inbox.id, vec![1, 2], FlagOp::Add, vec!["\\Deleted".into(), "$Work".into()], None).await.unwrap();
    assert_eq!(update.messages[0].1, "\\Seen \\Deleted $Work");
    assert!(update.messages[0].2 > base);
    let changes = store.changes_since(inbox.id, base).await.unwrap();
    assert_eq!(changes.changed.len(), 2);
    // UNCHANGEDSINCE older than the last change refuses the message.
    let refused = store.store_flags(inbox.id, vec![1], FlagOp::Remove, vec!["$work".into()], Some(base)).await.unwrap();
    assert_eq!(refused.modified, vec![1]);

    let archive = store.mailbox_state(bob, "Archive").await.unwrap().unwrap().id;
    let copied = store.copy_messages(inbox.id, vec![1, 2], archive).await.unwrap();
    assert_eq!(copied.uids, vec![(1, 1), (2, 2)]);
    assert_eq!(store.bodies().await, 2);
    let gone = store.expunge(inbox.id, Some(vec![2])).await.unwrap();
    assert_eq!(gone, vec![2]);
    let changes = store.changes_since(inbox.id, update.messages[0].2).await.unwrap();
    assert_eq!(changes.expunged, vec![2]);
    assert!(watch.has_changed().unwrap());
    assert_eq!(store.bodies().await, 2, "the copy in Archive still holds the body");
    store.delete_mailbox(bob, "Archive").await.unwrap();
    assert_eq!(store.bodies().await, 1);
    assert_eq!(store.usage(bob).await.unwrap().1, 1);
}

pub(crate) async fn move_rename_inbox_and_recent<S: MailStore + DirectoryStore + ?Sized>(store: &S) {
    let (bob, _) = accounts(store).await;
    let inbox = store.mailbox_state(bob, "INBOX").await.unwrap().unwrap();
    let trash = store.mailbox_state(bob, "Trash").await.unwrap().unwrap();
    for i in 0..3 {
        append(store, inbox.id, format!("Subject: {i}\r\n\r\n").as_bytes(), "").await;
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

pub(crate) async fn pruned_expunges_answer_with_every_missing_uid<S: MailStore + DirectoryStore + ?Sized>(store: &S) {
    let (bob, _) = accounts(store).await;
    let inbox = store.mailbox_state(bob, "INBOX").await.unwrap().unwrap();
    for n in 0..5u8 {
        append(store, inbox.id, format!("Subject: {n}\r\n\r\nx").as_bytes(), "\\Deleted").await;
    }
    let base = store.mailbox_state(bob, "INBOX").await.unwrap().unwrap().highestmodseq;
    store.expunge(inbox.id, Some(vec![2])).await.unwrap();
    let middle = store.mailbox_state(bob, "INBOX").await.unwrap().unwrap().highestmodseq;
    assert_eq!(store.prune_expunged(0).await.unwrap(), 0, "nothing is older than the epoch");
    assert_eq!(store.prune_expunged(now() + 1).await.unwrap(), 1);
    store.expunge(inbox.id, Some(vec![4])).await.unwrap();
    // A MODSEQ after the pruned expunge: the exact list, from the rows kept.
    assert_eq!(store.changes_since(inbox.id, middle).await.unwrap().expunged, vec![4]);
    // A MODSEQ before it: every UID the mailbox no longer has, below UIDNEXT.
    assert_eq!(store.changes_since(inbox.id, base).await.unwrap().expunged, vec![2, 4]);
    assert_eq!(store.changes_since(inbox.id, 0).await.unwrap().expunged, vec![2, 4]);
}

/// One `#[tokio::test]` per function above, for a backend made by `$open`.
macro_rules! mail_tests {
    ($open:expr) => {
        mail_tests!(@each $open;
            deliver_assigns_increasing_uids_and_reads_back,
            a_failed_delivery_leaves_no_file_and_does_not_hurt_the_batch,
            concurrent_deliveries_all_land,
            queue_lifecycle_releases_the_blob,
            quarantine_holds_releases_and_expires,
            mailbox_lifecycle,
            subscriptions_are_names_that_outlive_their_mailbox,
            flags_modseq_expunge_and_notification,
            move_rename_inbox_and_recent,
            pruned_expunges_answer_with_every_missing_uid);
    };
    (@each $open:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let store = $open;
                super::$name(&*store).await;
            }
        )*
    };
}

mod sqlite_runs {
    fn open() -> super::super::sqlite_runs::Open {
        super::super::sqlite_runs::open()
    }

    mail_tests!(open());
}

mod postgres_runs {
    mail_tests!(super::super::postgres_runs::open().await);
}
