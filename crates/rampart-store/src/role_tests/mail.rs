//! The message path on every backend: delivery, the queue, the quarantine and what IMAP does
//! to mailboxes, as generic functions run against SQLite and PostgreSQL (as `super` does for
//! the other roles). Where a backend keeps bodies differently (files or chunk rows), the
//! [`Backend`] trait counts them; it also gives a backend its summarizer.

use async_trait::async_trait;

use crate::mail::{FlagOp, MailStore};
use crate::prelude::*;
use crate::quarantine::Hold;
use crate::sqlite::now;
use crate::{AccountId, Blob, Delivery, Folder, MailboxId, Outbound, RcptState, RcptUpdate, StoreError, Target};

/// What tests count of a backend's stored bodies.
#[async_trait]
pub(crate) trait Backend {
    /// Backend stored outside the index rows (SQLite: files; PostgreSQL: `blobs` rows).
    async fn bodies(&self) -> usize;
    /// Whether nothing is left where bodies wait while they stream in.
    fn spool_empty(&self) -> bool;
    /// `set_summarizer` of the backend.
    fn summarize_with(&self, summarizer: std::sync::Arc<dyn crate::Summarizer>);
}

#[async_trait]
impl Backend for crate::SqliteStore {
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
    fn summarize_with(&self, summarizer: std::sync::Arc<dyn crate::Summarizer>) {
        self.set_summarizer(summarizer);
    }
}

#[async_trait]
impl Backend for crate::PgStore {
    async fn bodies(&self) -> usize {
        // Released bodies stay readable a while (`postgres::RELEASED_GRACE`): not held.
        let n: i64 = self.conn().await.unwrap().query_one("SELECT count(*) FROM blobs WHERE released IS NULL", &[]).await.unwrap().get(0);
        n as usize
    }
    fn spool_empty(&self) -> bool {
        std::fs::read_dir(self.spool().join("tmp")).unwrap().next().is_none()
    }
    fn summarize_with(&self, summarizer: std::sync::Arc<dyn crate::Summarizer>) {
        self.set_summarizer(summarizer);
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

pub(crate) async fn deliver_assigns_increasing_uids_and_reads_back<S: MailStore + DirectoryStore + Backend + ?Sized>(store: &S) {
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

pub(crate) async fn a_failed_delivery_leaves_no_file_and_does_not_hurt_the_batch<S: MailStore + DirectoryStore + Backend + ?Sized>(
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

pub(crate) async fn queue_lifecycle_releases_the_blob<S: MailStore + DirectoryStore + QueueStore + Backend + ?Sized>(store: &S) {
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
    // A scan leaves out the recipients already in hand, and an entry with none left.
    let due = store.queue_due_except(now() + 1, 100, [a].into()).await.unwrap();
    assert_eq!(due.iter().map(|e| e.rcpts.iter().map(|r| r.id).collect::<Vec<_>>()).collect::<Vec<_>>(), [[b]]);
    assert_eq!((due[0].id.as_str(), due[0].sender.as_str()), ("Q1", "bob@example.test"));
    assert!(store.queue_due_except(now() + 1, 100, [a, b].into()).await.unwrap().is_empty());
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

pub(crate) async fn flags_modseq_expunge_and_notification<S: MailStore + DirectoryStore + Backend + ?Sized>(store: &S) {
    let (bob, _) = accounts(store).await;
    let inbox = store.mailbox_state(bob, "INBOX").await.unwrap().unwrap();
    let mut watch = store.watch_mailbox(inbox.id);
    // Backend above INLINE_MAX live in files in SQLite, so releasing references can be seen.
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

const ALICE_KEY: &[u8] = include_bytes!("../../../rampart-pgp/testdata/alice.pub.asc");
const PLAIN: &[u8] = b"From: a@example.net\r\nSubject: zebra\r\n\r\nthe quokka body\r\n";

/// Words are the lowercased whitespace-separated words of the message.
struct Words;

impl crate::Summarizer for Words {
    fn summarize(&self, message: &[u8]) -> crate::Summary {
        let text = String::from_utf8_lossy(message).to_lowercase();
        let words: Vec<&str> = text.split_whitespace().collect();
        crate::Summary { keys: vec![], headers: vec![], fetch: vec![], words: Some(words.join(" ")), version: 1 }
    }

    /// The plaintext's words, and `plain` as keys to tell it from the encrypted message's.
    fn summarize_encrypted(&self, plain: &[u8], _stored: &[u8]) -> crate::Summary {
        crate::Summary { keys: b"plain".to_vec(), ..self.summarize(plain) }
    }
}

/// Delivers `body` (with a Received prefix) to the INBOX of each account.
async fn deliver_to<S: DeliveryStore + ?Sized>(store: &S, accounts: &[AccountId], body: &[u8]) -> Vec<crate::Delivered> {
    let targets = accounts.iter().map(|&account| Target { account, folder: Folder::Inbox }).collect();
    let blob = blob(store, body).await;
    let prefix = b"Received: by mx\r\n".to_vec();
    store.deliver(Delivery { blob, prefix, internal_date: 0, targets, reference: "R".into(), trail: "[]".into(), outbound: None }).await.unwrap()
}

/// alice on example.org with her OpenPGP key, and bob without one.
async fn alice_with_a_key<S: DirectoryStore + PgpStore + ?Sized>(store: &S, protect_subject: bool) -> (AccountId, AccountId) {
    alice_with(store, crate::PgpOptions { protect_subject, publish: true, search: false }).await
}

async fn alice_with<S: DirectoryStore + PgpStore + ?Sized>(store: &S, options: crate::PgpOptions) -> (AccountId, AccountId) {
    store.add_domain("example.org").await.unwrap();
    let alice = store.add_account("alice@example.org", "h").await.unwrap();
    let bob = store.add_account("bob@example.org", "h").await.unwrap();
    let new = crate::NewPgpKey::checked(ALICE_KEY, "alice@example.org", options).unwrap();
    store.pgp_key_set("Alice@example.org", new).await.unwrap();
    (alice, bob)
}

pub(crate) async fn keyed_accounts_get_an_encrypted_copy<S: MailStore + DirectoryStore + PgpStore + Backend + ?Sized>(store: &S) {
    store.summarize_with(std::sync::Arc::new(Words));
    let (alice, bob) = alice_with_a_key(store, true).await;
    assert!(store.pgp_key("alice@example.org").await.unwrap().unwrap().protect_subject);
    assert_eq!(store.pgp_published("EXAMPLE.org").await.unwrap().len(), 1);

    let delivered = deliver_to(store, &[alice, bob], PLAIN).await;
    assert_eq!(delivered.len(), 2);
    let of = |who: AccountId| delivered.iter().find(|d| d.account == who).unwrap();
    let bobs = store.read_message(of(bob).mailbox, of(bob).uid).await.unwrap();
    assert_eq!(bobs, [&b"Received: by mx\r\n"[..], PLAIN].concat());
    let alices = String::from_utf8(store.read_message(of(alice).mailbox, of(alice).uid).await.unwrap()).unwrap();
    assert!(alices.starts_with("Received: by mx\r\n"), "the trace prefix stays");
    assert!(alices.contains("multipart/encrypted") && alices.contains("\r\nSubject: ...\r\n"));
    assert!(!alices.contains("quokka") && !alices.contains("zebra"));
    // The database holds none of the plaintext's words for alice; bob's are indexed.
    let is = |w: &str| vec![crate::WordMatch::Is(w.into())];
    assert!(store.word_candidates(alice, is("quokka")).await.unwrap().is_empty());
    assert_eq!(store.word_candidates(bob, is("quokka")).await.unwrap().len(), 1);

    // Mail already encrypted is stored as received, and so is everything after removal.
    let pgp_mime = b"From: a@example.net\r\nContent-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=b\r\n\r\n--b--\r\n";
    let d = deliver_to(store, &[alice], pgp_mime).await;
    assert_eq!(store.read_message(d[0].mailbox, d[0].uid).await.unwrap(), [&b"Received: by mx\r\n"[..], pgp_mime].concat());
    assert!(store.pgp_key_remove("alice@example.org").await.unwrap());
    assert!(!store.pgp_key_remove("alice@example.org").await.unwrap());
    let d = deliver_to(store, &[alice], PLAIN).await;
    assert_eq!(store.read_message(d[0].mailbox, d[0].uid).await.unwrap(), [&b"Received: by mx\r\n"[..], PLAIN].concat());
}

/// On a clear store (SQLite without encryption, PostgreSQL) the plaintext's words are kept
/// for SEARCH only when the key opted in (`crate::PlainSearch`); the copy stays encrypted.
pub(crate) async fn a_clear_store_keeps_plaintext_words_only_on_opt_in<S: MailStore + DirectoryStore + PgpStore + QuarantineStore + Backend + ?Sized>(
    store: &S,
) {
    store.summarize_with(std::sync::Arc::new(Words));
    let (alice, _) = alice_with(store, crate::PgpOptions { protect_subject: true, publish: true, search: false }).await;
    let key = store.pgp_key("alice@example.org").await.unwrap().unwrap();
    assert_eq!(store.pgp_plain_search(&key).await.unwrap(), crate::PlainSearch::Off);
    let is = |w: &str| vec![crate::WordMatch::Is(w.into())];
    deliver_to(store, &[alice], PLAIN).await;
    assert!(store.word_candidates(alice, is("quokka")).await.unwrap().is_empty(), "off by default");

    let new = crate::NewPgpKey::checked(ALICE_KEY, "alice@example.org", crate::PgpOptions { protect_subject: true, publish: true, search: true }).unwrap();
    store.pgp_key_set("alice@example.org", new).await.unwrap();
    let key = store.pgp_key("alice@example.org").await.unwrap().unwrap();
    assert!(key.search);
    assert_eq!(store.pgp_plain_search(&key).await.unwrap(), crate::PlainSearch::ClearOptedIn);
    let d = deliver_to(store, &[alice], PLAIN).await;
    assert_eq!(store.word_candidates(alice, is("quokka")).await.unwrap().len(), 1, "the opted-in copy's plaintext words");
    let text = String::from_utf8(store.read_message(d[0].mailbox, d[0].uid).await.unwrap()).unwrap();
    assert!(text.contains("multipart/encrypted") && !text.contains("quokka"), "stored encrypted all the same");
    let stored = store.stored(d[0].mailbox, d[0].uid, d[0].uid, crate::Want { keys: true, ..Default::default() }).await.unwrap();
    assert_eq!(stored[0].keys.as_deref(), Some(&b"plain"[..]), "summarize_encrypted made it");

    // A release from the quarantine gets the same summary.
    store.hold(held_plain(store, vec![alice], "Q2").await).await.unwrap();
    let released = store.release("Q2", None).await.unwrap();
    let text = String::from_utf8(store.read_message(released[0].mailbox, released[0].uid).await.unwrap()).unwrap();
    assert!(text.contains("multipart/encrypted") && !text.contains("quokka"));
    assert_eq!(store.word_candidates(alice, is("quokka")).await.unwrap().len(), 2, "the released copy's plaintext words too");
}

/// `PLAIN` held for `accounts` as spam, under `reference`.
async fn held_plain(store: &(impl DeliveryStore + ?Sized), accounts: Vec<crate::AccountId>, reference: &str) -> Hold {
    Hold {
        blob: blob(store, PLAIN).await,
        prefix: b"Received: by mx\r\n".to_vec(),
        internal_date: 7,
        accounts,
        reference: reference.into(),
        sender: "a@example.net".into(),
        subject: "zebra".into(),
        reason: "spam".into(),
        score: Some(9.0),
        trail: "[]".into(),
    }
}

pub(crate) async fn a_release_from_the_quarantine_is_encrypted_too<S: MailStore + DirectoryStore + PgpStore + QuarantineStore + ?Sized>(
    store: &S,
) {
    let (alice, bob) = alice_with_a_key(store, false).await;
    store.hold(held_plain(store, vec![alice, bob], "Q1").await).await.unwrap();
    let delivered = store.release("Q1", None).await.unwrap();
    assert_eq!(delivered.len(), 2);
    for d in &delivered {
        let text = String::from_utf8(store.read_message(d.mailbox, d.uid).await.unwrap()).unwrap();
        if d.account == alice {
            assert!(text.starts_with("Received: by mx\r\n") && text.contains("multipart/encrypted") && !text.contains("quokka"), "{text}");
        } else {
            assert!(text.ends_with("the quokka body\r\n"));
        }
    }
    let info = store.messages_by_reference("Q1").await.unwrap();
    assert_eq!(info.len(), 2, "both copies keep the held message's id");
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
            pruned_expunges_answer_with_every_missing_uid,
            keyed_accounts_get_an_encrypted_copy,
            a_clear_store_keeps_plaintext_words_only_on_opt_in,
            a_release_from_the_quarantine_is_encrypted_too);
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
