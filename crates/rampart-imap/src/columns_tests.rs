//! The column cache against the store it copies: built, extended by new UIDs, made again when
//! summaries change or most of the mailbox is expunged, bounded, and answering as the records
//! it was made from.

use std::sync::Arc;

use rampart_store::prelude::*;
use rampart_store::{Delivery, Folder, SqliteStore, Target};

use super::*;

struct Mbox {
    _dir: tempfile::TempDir,
    store: SqliteStore,
    mailbox: MailboxId,
    uidvalidity: u32,
}

async fn mailbox() -> Mbox {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    store.set_summarizer(Arc::new(crate::MessageSummarizer));
    store.add_domain("example.test").await.unwrap();
    store.add_account("bob@example.test", "x").await.unwrap();
    let account = store.account("bob@example.test").await.unwrap().unwrap().id;
    let state = store.mailbox_state(account, "INBOX").await.unwrap().unwrap();
    Mbox { _dir: dir, store, mailbox: state.id, uidvalidity: state.uidvalidity }
}

/// A small deterministic generator, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn pick(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

const NAMES: &[&str] = &["Alice <alice@a.test>", "bob@b.test", "\"Zoë\" <zoe@c.test>", "d", "Émile <e@x.test>, f@y.test"];
const SUBJECTS: &[&str] = &["Budget", "Re: plan", "GRÜSSE", "[list] hello", ""];

fn message(rng: &mut Rng) -> String {
    let mut m = String::new();
    for field in ["From", "To", "Cc", "Bcc"] {
        for _ in 0..rng.pick(3) {
            m.push_str(&format!("{field}: {}\r\n", NAMES[rng.pick(NAMES.len())]));
        }
    }
    if rng.pick(4) > 0 {
        m.push_str(&format!("Subject: {}\r\n", SUBJECTS[rng.pick(SUBJECTS.len())]));
    }
    m.push_str(&format!("Date: {} Nov 2026 10:00:00 +0000\r\nMessage-ID: <m{}@x>\r\n\r\nbody\r\n", 1 + rng.pick(28), rng.pick(9)));
    m
}

async fn deliver(b: &Mbox, n: usize, rng: &mut Rng) {
    let account = b.store.account("bob@example.test").await.unwrap().unwrap().id;
    for _ in 0..n {
        let mut w = b.store.blob_writer().unwrap();
        w.write(message(rng).as_bytes()).await.unwrap();
        b.store
            .deliver(Delivery {
                blob: w.finish().await.unwrap(),
                prefix: Vec::new(),
                internal_date: 1_790_000_000 + rng.pick(1000) as i64,
                targets: vec![Target { account, folder: Folder::Inbox }],
                reference: "R".into(),
                trail: "[]".into(),
                outbound: None,
            })
            .await
            .unwrap();
    }
}

async fn expunge(b: &Mbox, uids: &[u32]) {
    b.store.store_flags(b.mailbox, uids.to_vec(), rampart_store::FlagOp::Add, vec!["\\Deleted".into()], None).await.unwrap();
    assert_eq!(b.store.expunge(b.mailbox, Some(uids.to_vec())).await.unwrap(), uids);
}

async fn uids(b: &Mbox) -> Vec<u32> {
    b.store.view_rows(b.mailbox).await.unwrap().1.uids
}

/// Every message of the store as the columns give it: the same record, summary, facts and
/// header answers as the rows they were made from.
async fn same_as_store(b: &Mbox, columns: &Columns, rng: &mut Rng) {
    let want = Want { keys: true, headers: true, fetch: false };
    let rows = b.store.stored(b.mailbox, 1, u32::MAX, want).await.unwrap();
    let mut cursor = columns.cursor();
    let needles = ["", "a", "alice", "zoë", "@", "re:", "grüsse", "<m1", "nothing", ".test>"];
    for r in &rows {
        let (chunk, i) = cursor.seek(r.uid).expect("every stored UID is kept");
        assert_eq!((chunk.size(i), chunk.internal_date(i), chunk.summary(i)), (r.size, r.internal_date, r.summary));
        assert_eq!(chunk.keys(i).map(|k| k.words()), r.keys.as_deref().and_then(Keys::parse).map(|k| k.words()));
        let headers = r.headers.as_deref().and_then(Headers::parse);
        for field in ["FROM", "to", "Cc", "bcc", "Subject", "message-id", "X-Other"] {
            let needle = needles[rng.pick(needles.len())];
            let expected = headers.and_then(|h| h.matches(field, needle));
            assert_eq!(chunk.header_matches(i, field, needle), expected, "uid {} {field} {needle:?}", r.uid);
        }
    }
}

#[tokio::test]
async fn built_then_extended_by_new_uids() {
    let b = mailbox().await;
    let mut rng = Rng(7);
    deliver(&b, 40, &mut rng).await;
    let cache = ColumnCache::new(1 << 20);
    let last = *uids(&b).await.last().unwrap();
    let first = cache.get(&b.store, b.mailbox, b.uidvalidity, last, 40).await.unwrap().unwrap();
    same_as_store(&b, &first, &mut rng).await;
    // Asked again: the same columns, not a copy.
    let again = cache.get(&b.store, b.mailbox, b.uidvalidity, last, 40).await.unwrap().unwrap();
    assert!(Arc::ptr_eq(&first, &again));
    for round in 0..3 {
        deliver(&b, 5, &mut rng).await;
        let last = *uids(&b).await.last().unwrap();
        let grown = cache.get(&b.store, b.mailbox, b.uidvalidity, last, 45 + round * 5).await.unwrap().unwrap();
        assert_eq!(grown.generation, first.generation, "extended, not made again");
        assert_eq!(grown.len(), 45 + round * 5);
        // The small tail is merged with what extends it.
        assert_eq!(grown.chunks.len(), 1);
        same_as_store(&b, &grown, &mut rng).await;
    }
    // A view of another UIDVALIDITY does not see these columns.
    assert_eq!(cache.get(&b.store, b.mailbox, b.uidvalidity + 1, 0, 0).await.unwrap().unwrap().len(), 0);
}

#[tokio::test]
async fn remade_when_summaries_change_or_most_is_expunged() {
    let b = mailbox().await;
    let mut rng = Rng(11);
    deliver(&b, 30, &mut rng).await;
    let cache = ColumnCache::new(1 << 20);
    let last = *uids(&b).await.last().unwrap();
    let built = cache.get(&b.store, b.mailbox, b.uidvalidity, last, 30).await.unwrap().unwrap();
    assert!(built.cursor().seek(1).unwrap().0.summary(0).is_some());
    b.store.forget_summaries().await.unwrap();
    let forgotten = cache.get(&b.store, b.mailbox, b.uidvalidity, last, 30).await.unwrap().unwrap();
    assert_ne!(forgotten.generation, built.generation);
    let (chunk, i) = forgotten.cursor().seek(1).unwrap();
    assert_eq!((chunk.summary(i), chunk.keys(i).is_some(), chunk.header_matches(i, "from", "")), (None, false, None), "unknown now");
    assert_eq!(b.store.backfill_pass(std::time::Duration::ZERO).await.unwrap(), 30);
    let backfilled = cache.get(&b.store, b.mailbox, b.uidvalidity, last, 30).await.unwrap().unwrap();
    same_as_store(&b, &backfilled, &mut rng).await;

    // Expunged UIDs stay kept (the views skip them) until they are most of the columns.
    let mut cache = cache;
    cache.slack = 4;
    let all = uids(&b).await;
    expunge(&b, &all[..5]).await;
    let kept = cache.get(&b.store, b.mailbox, b.uidvalidity, last, 25).await.unwrap().unwrap();
    assert!(Arc::ptr_eq(&kept, &backfilled));
    expunge(&b, &all[5..20]).await;
    deliver(&b, 3, &mut rng).await;
    let last = *uids(&b).await.last().unwrap();
    let grown = cache.get(&b.store, b.mailbox, b.uidvalidity, last, 13).await.unwrap().unwrap();
    assert_eq!(grown.len(), 33, "extended: 30 kept, 17 live");
    expunge(&b, &all[20..29]).await;
    let trimmed = cache.get(&b.store, b.mailbox, b.uidvalidity, last, 4).await.unwrap().unwrap();
    assert_eq!(trimmed.len(), 4, "made again from what is left");
    assert_eq!(trimmed.cursor().seek(all[29]).map(|(c, i)| c.uids[i]), Some(all[29]));
    same_as_store(&b, &trimmed, &mut rng).await;
}

#[tokio::test]
async fn memory_stays_within_the_budget() {
    let b = mailbox().await;
    let mut rng = Rng(3);
    deliver(&b, 50, &mut rng).await;
    let last = *uids(&b).await.last().unwrap();
    let one = ColumnCache::new(1 << 20).get(&b.store, b.mailbox, b.uidvalidity, last, 50).await.unwrap().unwrap().bytes();
    // Room for two mailboxes' columns: a third drops the least recently used.
    let cache = ColumnCache::new(2 * one + one / 2);
    for v in [1, 2, 1, 3] {
        cache.get(&b.store, b.mailbox, v, last, 50).await.unwrap().unwrap();
    }
    assert!(cache.bytes() <= 2 * one + one / 2);
    let mut kept: Vec<u32> = cache.slots.lock().unwrap().map.keys().map(|k| k.1).collect();
    kept.sort();
    assert_eq!(kept, [1, 3], "2 was the least recently used");
    // Bigger than the whole budget: answered, not kept. Off: not answered.
    let small = ColumnCache::new(one / 2);
    assert!(small.get(&b.store, b.mailbox, 1, last, 50).await.unwrap().is_some());
    assert_eq!(small.bytes(), 0);
    assert!(ColumnCache::new(0).get(&b.store, b.mailbox, 1, last, 50).await.unwrap().is_none());
}

/// A deleted mailbox's id may be given to a new one (of any account): nothing kept of it is
/// taken for the new one's.
#[tokio::test]
async fn a_deleted_mailbox_is_never_taken_for_a_new_one() {
    let b = mailbox().await;
    let account = b.store.account("bob@example.test").await.unwrap().unwrap().id;
    let cache = ColumnCache::new(1 << 20);
    let id = b.store.create_mailbox(account, "Old", None).await.unwrap();
    let old = b.store.mailbox_state(account, "Old").await.unwrap().unwrap();
    let built = cache.get(&b.store, id, old.uidvalidity, 0, 0).await.unwrap().unwrap();
    b.store.delete_mailbox(account, "Old").await.unwrap();
    let after = cache.get(&b.store, id, old.uidvalidity, 0, 0).await.unwrap().unwrap();
    assert!(!Arc::ptr_eq(&built, &after));
    assert_ne!(built.generation, after.generation);
}
