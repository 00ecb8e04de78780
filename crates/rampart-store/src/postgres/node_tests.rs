//! The message path with several nodes: two [`PgStore`]s opened on one database (two pools,
//! two LISTEN connections, two lease owners) act as two Rampart nodes.

use std::time::Duration;

use super::{PgStore, queue::LEASE, testdb};
use crate::mail::MailStore;
use crate::prelude::*;
use crate::sqlite::now;
use crate::summary::{Summarizer, Summary, WordMatch};
use crate::{AccountId, Blob, Delivery, Folder, Outbound, Target};

/// Two nodes on one new database, with bob's account; his INBOX.
async fn two_nodes() -> (PgStore, PgStore, AccountId, i64) {
    let url = testdb::migrated().await;
    let a = PgStore::open(&url, 8, None, &testdb::spool()).await.unwrap();
    let b = PgStore::open(&url, 8, None, &testdb::spool()).await.unwrap();
    a.add_domain("example.test").await.unwrap();
    let bob = a.add_account("bob@example.test", "h").await.unwrap();
    let inbox = b.mailbox_state(bob, "INBOX").await.unwrap().unwrap().id;
    (a, b, bob, inbox)
}

async fn blob(store: &PgStore, body: &[u8]) -> Blob {
    let mut w = store.blob_writer().unwrap();
    w.write(body).await.unwrap();
    w.finish().await.unwrap()
}

/// Runs `write(node, i)` for i in 0..n at once, alternating between the nodes; the UIDs the
/// writes got, sorted.
async fn on_both_nodes<F, Fut>(a: &PgStore, b: &PgStore, n: u32, write: F) -> Vec<u32>
where
    F: Fn(PgStore, u32) -> Fut,
    Fut: std::future::Future<Output = u32> + Send + 'static,
{
    let tasks: Vec<_> = (0..n).map(|i| tokio::spawn(write(if i % 2 == 0 { a.clone() } else { b.clone() }, i))).collect();
    let mut uids = Vec::new();
    for t in tasks {
        uids.push(t.await.unwrap());
    }
    uids.sort_unstable();
    uids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_on_two_nodes_get_distinct_ascending_uids() {
    let (a, b, _, inbox) = two_nodes().await;
    let uids = on_both_nodes(&a, &b, 20, move |node, i| async move {
        let blob = blob(&node, format!("Subject: {i}\r\n\r\nx").as_bytes()).await;
        node.append(inbox, blob, String::new(), 0).await.unwrap().uids[0].1
    })
    .await;
    assert_eq!(uids, (1..=20).collect::<Vec<u32>>());
    let (state, records) = a.snapshot(inbox).await.unwrap();
    assert_eq!(state.uidnext, 21);
    // MODSEQs ascend with UIDs: a client that has seen one change misses none before it.
    assert!(records.windows(2).all(|w| w[0].modseq < w[1].modseq), "{records:?}");
}

#[tokio::test]
async fn a_change_on_one_node_wakes_the_watchers_of_the_other() {
    let (a, b, bob, inbox) = two_nodes().await;
    let mut watch = b.watch_mailbox(inbox);
    // The other node's LISTEN connection may still be starting: a first change wakes it
    // within a second either way (connecting fires every watch).
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let blob = blob(&a, b"Subject: hi\r\n\r\nx").await;
            let target = Target { account: bob, folder: Folder::Inbox };
            let delivery = Delivery { blob, prefix: vec![], internal_date: 0, targets: vec![target], reference: "R".into(), trail: "[]".into(), outbound: None };
            a.deliver(delivery).await.unwrap();
            if tokio::time::timeout(Duration::from_secs(1), watch.changed()).await.is_ok() {
                break;
            }
        }
    })
    .await
    .expect("node B hears of node A's delivery");
    // And a flag change, once the listener is surely up.
    watch.borrow_and_update();
    a.store_flags(inbox, vec![1], crate::FlagOp::Add, vec!["\\Seen".into()], None).await.unwrap();
    tokio::time::timeout(Duration::from_secs(1), watch.changed()).await.expect("within a second").unwrap();
    assert_eq!(b.changes_since(inbox, 0).await.unwrap().changed[0].flags, "\\Seen");
}

/// Queues `n` messages for remote recipients (through node `a`).
async fn queue(a: &PgStore, n: usize) {
    for i in 0..n {
        let out = Outbound { sender: "bob@example.test".into(), rcpts: vec![format!("r{i}@remote.test")], smtputf8: false, is_dsn: false, prefix: vec![] };
        let blob = blob(a, b"Subject: out\r\n\r\nx").await;
        a.deliver(Delivery { blob, prefix: vec![], internal_date: 0, targets: vec![], reference: format!("Q{i}"), trail: "[]".into(), outbound: Some(out) })
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_scanning_the_queue_at_once_never_take_the_same_recipient() {
    let (a, b, _, _) = two_nodes().await;
    queue(&a, 40).await;
    let t = now() + 1;
    let ids = |entries: Vec<crate::QueueEntry>| -> std::collections::BTreeSet<i64> { entries.iter().flat_map(|e| e.rcpts.iter().map(|r| r.id)).collect() };
    // At once, each asking for more than half: SKIP LOCKED hands each row to one of them.
    let (x, y) = tokio::join!(a.queue_due(t, 25), b.queue_due(t, 25));
    let (x, y) = (ids(x.unwrap()), ids(y.unwrap()));
    assert!(x.is_disjoint(&y), "taken by both nodes: {:?}", x.intersection(&y).collect::<Vec<_>>());
    assert_eq!(x.len() + y.len(), 40, "between them they took every recipient");
    // Later scans: each node sees its own leases again (as SQLite's scan does), never the other's.
    let (x2, y2) = tokio::join!(a.queue_due(t, 100), b.queue_due(t, 100));
    assert_eq!((ids(x2.unwrap()), ids(y2.unwrap())), (x, y));
}

#[tokio::test]
async fn a_dead_nodes_lease_expires_and_the_other_node_delivers() {
    let (a, b, _, _) = two_nodes().await;
    queue(&a, 1).await;
    let t = now() + 1;
    let taken = a.queue_due(t, 10).await.unwrap();
    assert_eq!(taken.len(), 1);
    // Node A dies holding the lease: B sees nothing until it expires...
    drop(a);
    assert!(b.queue_due(t + LEASE - 1, 10).await.unwrap().is_empty());
    let retaken = b.queue_due(t + LEASE, 10).await.unwrap();
    assert_eq!(retaken.len(), 1);
    let rcpt = retaken[0].rcpts[0].id;
    assert_eq!(rcpt, taken[0].rcpts[0].id);
    // ...and once B records the outcome the lease is gone with the entry.
    let update = crate::RcptUpdate { id: rcpt, state: crate::RcptState::Delivered, next_attempt: 0, error: String::new() };
    b.queue_update(vec![update]).await.unwrap();
    assert!(b.queue_list().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_renewed_lease_outlasts_a_long_attempt_and_names_its_node() {
    let (a, b, _, _) = two_nodes().await;
    a.set_node_id("node-a");
    queue(&a, 1).await;
    let t = now() + 1;
    let rcpt = a.queue_due(t, 10).await.unwrap()[0].rcpts[0].id;
    assert!(a.queue_lease_renewal().unwrap() <= Duration::from_secs(LEASE as u64 / 3));
    // Still delivering near the end of the lease: A renews it, so B does not start a second
    // attempt when the first lease would have run out.
    a.queue_renew(vec![rcpt], t + LEASE - 10).await.unwrap();
    assert!(b.queue_due(t + LEASE, 10).await.unwrap().is_empty());
    let owner: String = a.conn().await.unwrap().query_one("SELECT lease_owner FROM queue_rcpts WHERE id = $1", &[&rcpt]).await.unwrap().get(0);
    assert!(owner.starts_with("node-a/"), "{owner}");
    // B's renewal of a lease it does not hold changes nothing.
    b.queue_renew(vec![rcpt], t + 2 * LEASE).await.unwrap();
    assert_eq!(b.queue_due(t + 2 * LEASE - 10, 10).await.unwrap().len(), 1, "A's renewed lease ran out");
}

#[tokio::test]
async fn a_deferred_recipient_loses_its_lease() {
    let (a, b, _, _) = two_nodes().await;
    queue(&a, 1).await;
    let t = now() + 1;
    let rcpt = a.queue_due(t, 10).await.unwrap()[0].rcpts[0].id;
    let update = crate::RcptUpdate { id: rcpt, state: crate::RcptState::Pending, next_attempt: t + 10, error: "451".into() };
    a.queue_update(vec![update]).await.unwrap();
    // Due again before A's lease would have expired: the other node may take it.
    assert_eq!(b.queue_due(t + 10, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_20_mib_message_streams_in_and_reads_back_by_ranges() {
    let (a, b, _, inbox) = two_nodes().await;
    let size = 20 << 20;
    let piece: Vec<u8> = (0..64 * 1024).map(|i| b"abcdefghijklmnopqrstuvwxyz0123456789\r\n"[i % 38] ^ (i / 38 % 7) as u8).collect();
    let mut w = a.blob_writer().unwrap();
    let mut written = 0;
    while written < size {
        w.write(&piece).await.unwrap();
        written += piece.len();
    }
    let blob = w.finish().await.unwrap();
    assert!(blob.inline.is_none(), "spooled, not kept in memory");
    let uid = a.append(inbox, blob, String::new(), 0).await.unwrap().uids[0].1;
    let chunks: i64 = a.conn().await.unwrap().query_one("SELECT count(*) FROM blob_chunks", &[]).await.unwrap().get(0);
    assert_eq!(chunks, (size / crate::codec::CHUNK) as i64);
    assert!(a.spool().join("tmp").read_dir().unwrap().next().is_none(), "the spool file went after the commit");
    // Ranges from another node, across a chunk boundary and at the end.
    let mut reader = b.open_message(inbox, uid).await.unwrap();
    assert_eq!(reader.size(), size as u64);
    for (pos, len) in [(0usize, 100usize), (crate::codec::CHUNK - 10, 20), (size - 5, 100), (7 << 20, 70_000)] {
        let mut out = Vec::new();
        let mut at = pos;
        while out.len() < len {
            let n = reader.read_at(at as u64, len - out.len(), &mut out).await.unwrap();
            if n == 0 {
                break;
            }
            at += n;
        }
        let expected: Vec<u8> = (pos..(pos + len).min(size)).map(|i| piece[i % piece.len()]).collect();
        assert_eq!(out, expected, "range {pos}+{len}");
    }
    assert_eq!(b.read_message(inbox, uid).await.unwrap().len(), size);
}

#[tokio::test]
async fn a_fetch_reads_to_the_end_of_a_message_the_other_node_expunges() {
    let (a, b, _, inbox) = two_nodes().await;
    let size = 3 * crate::codec::CHUNK + 10;
    let body: Vec<u8> = (0..size).map(|i| b"0123456789abcdef\r\n"[i % 18]).collect();
    let uid = a.append(inbox, blob(&a, &body).await, String::new(), 0).await.unwrap().uids[0].1;
    let mut reader = b.open_message(inbox, uid).await.unwrap();
    let mut out = Vec::new();
    reader.read_at(0, 100, &mut out).await.unwrap();
    a.store_flags(inbox, vec![uid], crate::FlagOp::Add, vec!["\\Deleted".into()], None).await.unwrap();
    a.expunge(inbox, None).await.unwrap();
    // The rest of the body, chunk after chunk, after the expunge committed.
    while out.len() < size {
        let at = out.len() as u64;
        assert!(reader.read_at(at, size - out.len(), &mut out).await.unwrap() > 0);
    }
    assert_eq!(out, body);
    // The hourly upkeep deletes it only after the grace.
    let blobs = |s: PgStore| async move { s.conn().await.unwrap().query_one("SELECT count(*) FROM blobs", &[]).await.unwrap().get::<_, i64>(0) };
    assert_eq!(super::purge_released(&a.conn().await.unwrap(), now() - super::RELEASED_GRACE).await.unwrap(), 0);
    assert_eq!(blobs(a.clone()).await, 1);
    assert_eq!(super::purge_released(&a.conn().await.unwrap(), now() + 1).await.unwrap(), 1);
    assert_eq!(blobs(a.clone()).await, 0);
}

/// Words are the lowercased whitespace-separated words of the message.
struct Words;

impl Summarizer for Words {
    fn summarize(&self, message: &[u8]) -> Summary {
        let text = String::from_utf8_lossy(message).to_lowercase();
        let words: Vec<&str> = text.split_whitespace().collect();
        Summary { keys: b"k".to_vec(), headers: b"h".to_vec(), fetch: b"f".to_vec(), words: Some(words.join(" ")), version: 1 }
    }
}

#[tokio::test]
async fn the_word_index_answers_per_account_and_forgets_expunged_messages() {
    let (a, _, bob, inbox) = two_nodes().await;
    a.set_summarizer(std::sync::Arc::new(Words));
    let alice = a.add_account("alice@example.test", "h").await.unwrap();
    let targets = vec![Target { account: bob, folder: Folder::Inbox }, Target { account: alice, folder: Folder::Inbox }];
    let shared = blob(&a, b"Hello shared World").await;
    a.deliver(Delivery { blob: shared, prefix: vec![], internal_date: 0, targets, reference: "R".into(), trail: "[]".into(), outbound: None }).await.unwrap();
    let id = a.stored(inbox, 1, 1, crate::Want::default()).await.unwrap()[0].summary.expect("summarized at delivery");
    let is = |w: &str| vec![WordMatch::Is(w.into())];
    for account in [bob, alice] {
        assert_eq!(a.word_candidates(account, is("shared")).await.unwrap(), [id].into());
    }
    assert!(a.word_candidates(bob, is("absent")).await.unwrap().is_empty());
    let both = vec![WordMatch::StartsWith("wor".into()), WordMatch::OneOf(vec!["x".into(), "hello".into()])];
    assert_eq!(a.word_candidates(bob, both).await.unwrap(), [id].into());
    assert_eq!(a.words_containing("ell", 10).await.unwrap(), None, "no vocabulary: IMAP reads the messages");
    a.store_flags(inbox, vec![1], crate::FlagOp::Add, vec!["\\Deleted".into()], None).await.unwrap();
    a.expunge(inbox, None).await.unwrap();
    assert!(a.word_candidates(bob, is("shared")).await.unwrap().is_empty());
    assert_eq!(a.word_candidates(alice, is("shared")).await.unwrap(), [id].into());
    // More words than a tsvector holds: stored all the same, and always a candidate.
    let many: String = (0..60_000).map(|i| format!("w{i:059} ")).collect();
    let big = blob(&a, many.as_bytes()).await;
    let target = Target { account: bob, folder: Folder::Inbox };
    a.deliver(Delivery { blob: big, prefix: vec![], internal_date: 0, targets: vec![target], reference: "M".into(), trail: "[]".into(), outbound: None }).await.unwrap();
    assert_eq!(a.word_candidates(bob, is("absent")).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_on_two_nodes_get_distinct_ascending_uids() {
    let (a, b, bob, inbox) = two_nodes().await;
    // Enough at once that each node batches several into one transaction.
    let uids = on_both_nodes(&a, &b, 40, move |node, i| async move {
        let blob = blob(&node, format!("Subject: {i}\r\n\r\nx").as_bytes()).await;
        let target = Target { account: bob, folder: Folder::Inbox };
        let delivery = Delivery { blob, prefix: vec![], internal_date: 0, targets: vec![target], reference: format!("R{i}"), trail: "[]".into(), outbound: None };
        node.deliver(delivery).await.unwrap()[0].uid
    })
    .await;
    assert_eq!(uids, (1..=40).collect::<Vec<u32>>());
    let (state, records) = b.snapshot(inbox).await.unwrap();
    assert_eq!(state.uidnext, 41);
    assert_eq!(records.len(), 40);
    assert!(records.windows(2).all(|w| w[0].uid < w[1].uid && w[0].modseq < w[1].modseq), "{records:?}");
}
