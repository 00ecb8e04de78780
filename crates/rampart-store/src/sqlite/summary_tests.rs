//! Summaries through the store's API: kept once per blob, pointed to by every copy, the
//! words indexed per account and forgotten with the account's last message.

use super::*;
use crate::prelude::*;
use crate::summary::{Summarizer, Summary, Want, WordMatch};
use crate::{Delivery, FlagOp, Folder, Target};

/// A summarizer for tests: the words are the message's lowercased whitespace-separated words.
struct Words;

impl Summarizer for Words {
    fn summarize(&self, message: &[u8]) -> Summary {
        let text = String::from_utf8_lossy(message).to_lowercase();
        let words: Vec<&str> = text.split_whitespace().collect();
        Summary { keys: b"keys".to_vec(), headers: b"headers".to_vec(), fetch: message.len().to_string().into_bytes(), words: Some(words.join(" ")), version: 1 }
    }
}

async fn deliver(store: &SqliteStore, accounts: &[AccountId], body: &[u8]) {
    let mut w = store.blob_writer().unwrap();
    w.write(body).await.unwrap();
    let targets = accounts.iter().map(|&account| Target { account, folder: Folder::Inbox }).collect();
    let blob = w.finish().await.unwrap();
    store
        .deliver(Delivery { blob, prefix: vec![], internal_date: 0, targets, reference: "R".into(), trail: "[]".into(), outbound: None })
        .await
        .unwrap();
}

fn is(w: &str) -> Vec<WordMatch> {
    vec![WordMatch::Is(w.into())]
}

const ALL: Want = Want { keys: true, headers: true, fetch: true };

#[tokio::test]
async fn summaries_are_shared_and_words_follow_each_account() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    store.set_summarizer(std::sync::Arc::new(Words));
    store.add_domain("example.test").await.unwrap();
    let bob = store.add_account("bob@example.test", "h").await.unwrap();
    let alice = store.add_account("alice@example.test", "h").await.unwrap();
    let st = &store;
    let inbox = |a| async move { st.mailboxes(a).await.unwrap()[0].id };
    let (bob_inbox, alice_inbox) = (inbox(bob).await, inbox(alice).await);
    let archive = store.create_mailbox(bob, "Kept", None).await.unwrap();
    deliver(&store, &[bob, alice], b"Hello shared World").await;
    let s = store.stored(bob_inbox, 1, 1, ALL).await.unwrap();
    let id = s[0].summary.expect("summarized at delivery");
    assert_eq!((s[0].keys.as_deref(), s[0].headers.as_deref(), s[0].fetch.as_deref()), (Some(&b"keys"[..]), Some(&b"headers"[..]), Some(&b"18"[..])));
    assert_eq!(store.stored(alice_inbox, 1, 1, Want::default()).await.unwrap()[0].summary, Some(id));
    assert_eq!(store.stored(bob_inbox, 1, 1, Want::default()).await.unwrap()[0].keys, None, "only the records asked for");
    for a in [bob, alice] {
        assert_eq!(store.word_candidates(a, is("shared")).await.unwrap(), [id].into());
    }
    assert!(store.word_candidates(bob, is("absent")).await.unwrap().is_empty());
    assert_eq!(store.word_candidates(bob, vec![WordMatch::StartsWith("wor".into()), WordMatch::OneOf(vec!["x".into(), "hello".into()])]).await.unwrap(), [id].into());
    assert!(store.word_candidates(bob, vec![WordMatch::OneOf(vec![])]).await.unwrap().is_empty());
    assert_eq!(store.words_containing("ell", 10).await.unwrap(), Some(vec!["hello".to_string()]));
    assert_eq!(store.words_containing("l", 1).await.unwrap(), None, "more than the limit");

    // A copy points to the same summary; the words stay while any of bob's copies does.
    store.copy_messages(bob_inbox, vec![1], archive).await.unwrap();
    assert_eq!(store.stored(archive, 1, 1, Want::default()).await.unwrap()[0].summary, Some(id));
    let expunge = |mailbox| async move {
        st.store_flags(mailbox, vec![1], FlagOp::Add, vec!["\\Deleted".into()], None).await.unwrap();
        st.expunge(mailbox, None).await.unwrap();
    };
    expunge(bob_inbox).await;
    assert_eq!(store.word_candidates(bob, is("shared")).await.unwrap(), [id].into());
    expunge(archive).await;
    assert!(store.word_candidates(bob, is("shared")).await.unwrap().is_empty());
    assert_eq!(store.word_candidates(alice, is("shared")).await.unwrap(), [id].into());
    store.remove_account("alice@example.test").await.unwrap();
    assert!(store.word_candidates(alice, is("shared")).await.unwrap().is_empty());
    let left: i64 = store.read(|c| Ok(c.query_row("SELECT count(*) FROM summaries", [], |r| r.get(0))?)).await.unwrap();
    assert_eq!(left, 0, "the summary goes with its blob");
}

#[tokio::test]
async fn messages_stored_without_a_summarizer_are_summarized_later() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    store.add_domain("example.test").await.unwrap();
    let bob = store.add_account("bob@example.test", "h").await.unwrap();
    let inbox = store.mailboxes(bob).await.unwrap()[0].id;
    let archive = store.create_mailbox(bob, "Kept", None).await.unwrap();
    deliver(&store, &[bob], b"late words").await;
    store.copy_messages(inbox, vec![1], archive).await.unwrap();
    assert_eq!(store.stored(inbox, 1, 1, ALL).await.unwrap()[0].summary, None);
    assert!(store.word_candidates(bob, is("late")).await.unwrap().is_empty());
    store.save_summaries(inbox, vec![(1, Words.summarize(b"late words")), (9, Words.summarize(b"gone"))]).await.unwrap();
    let id = store.stored(inbox, 1, 1, ALL).await.unwrap()[0].summary.unwrap();
    // The copy shares the blob: it points to the same summary, and one document serves both.
    assert_eq!(store.stored(archive, 1, 1, Want::default()).await.unwrap()[0].summary, Some(id));
    assert_eq!(store.word_candidates(bob, is("words")).await.unwrap(), [id].into());
    store.save_summaries(archive, vec![(1, Words.summarize(b"late words"))]).await.unwrap();
    // APPEND with a summarizer summarizes at once.
    store.set_summarizer(std::sync::Arc::new(Words));
    let mut w = store.blob_writer().unwrap();
    w.write(b"appended text").await.unwrap();
    store.append(inbox, w.finish().await.unwrap(), String::new(), 0).await.unwrap();
    let s = store.stored(inbox, 2, 2, ALL).await.unwrap();
    assert_eq!(store.word_candidates(bob, is("appended")).await.unwrap(), [s[0].summary.unwrap()].into());
}

/// A later summarizer: other records and words ("v2" added), version 2.
struct WordsV2;

impl Summarizer for WordsV2 {
    fn summarize(&self, message: &[u8]) -> Summary {
        let s = Words.summarize(message);
        Summary { keys: b"keys2".to_vec(), words: s.words.map(|w| format!("{w} v2")), version: 2, ..s }
    }

    fn version(&self) -> u32 {
        2
    }
}

#[tokio::test]
async fn the_backfill_summarizes_old_messages_and_remakes_stale_summaries() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    store.add_domain("example.test").await.unwrap();
    let bob = store.add_account("bob@example.test", "h").await.unwrap();
    let alice = store.add_account("alice@example.test", "h").await.unwrap();
    let (bob_inbox, alice_inbox) = (store.mailboxes(bob).await.unwrap()[0].id, store.mailboxes(alice).await.unwrap()[0].id);
    let archive = store.create_mailbox(bob, "Kept", None).await.unwrap();
    // Stored before there was a summarizer: one message to both, one to bob, and a copy.
    deliver(&store, &[bob, alice], b"shared old text").await;
    deliver(&store, &[bob], b"only bob").await;
    store.copy_messages(bob_inbox, vec![2], archive).await.unwrap();
    assert_eq!(store.backfill_pass(std::time::Duration::ZERO).await.unwrap(), 0, "nothing without a summarizer");
    store.set_summarizer(std::sync::Arc::new(Words));
    // One summary per message row (a copy shares its original's, made on the original's turn).
    let made = store.backfill_pass(std::time::Duration::ZERO).await.unwrap();
    assert!((2..=4).contains(&made), "{made}");
    assert_eq!(store.backfill_pass(std::time::Duration::ZERO).await.unwrap(), 0, "a second pass finds nothing");
    let bob_rows = store.stored(bob_inbox, 1, 2, ALL).await.unwrap();
    let (shared, only) = (bob_rows[0].summary.unwrap(), bob_rows[1].summary.unwrap());
    assert_eq!(bob_rows[0].fetch.as_deref(), Some(&b"15"[..]));
    assert_eq!(store.stored(alice_inbox, 1, 1, ALL).await.unwrap()[0].summary, Some(shared));
    assert_eq!(store.stored(archive, 1, 1, ALL).await.unwrap()[0].summary, Some(only));
    assert_eq!(store.word_candidates(bob, is("old")).await.unwrap(), [shared].into());
    assert_eq!(store.word_candidates(alice, is("old")).await.unwrap(), [shared].into());
    assert_eq!(store.word_candidates(bob, is("bob")).await.unwrap(), [only].into());
    assert!(store.word_candidates(alice, is("bob")).await.unwrap().is_empty());
    drop(store);

    // A newer summarizer: every summary is made again, in place, words and all.
    let store = SqliteStore::open(dir.path()).unwrap();
    store.set_summarizer(std::sync::Arc::new(WordsV2));
    assert_eq!(store.backfill_pass(std::time::Duration::ZERO).await.unwrap(), 2);
    assert_eq!(store.backfill_pass(std::time::Duration::ZERO).await.unwrap(), 0);
    let rows = store.stored(bob_inbox, 1, 2, ALL).await.unwrap();
    assert_eq!((rows[0].summary, rows[1].summary), (Some(shared), Some(only)));
    assert_eq!(rows[0].keys.as_deref(), Some(&b"keys2"[..]));
    for a in [bob, alice] {
        assert!(store.word_candidates(a, is("v2")).await.unwrap().contains(&shared));
        assert_eq!(store.word_candidates(a, is("old")).await.unwrap(), [shared].into());
    }
    assert!(store.word_candidates(alice, is("bob")).await.unwrap().is_empty(), "alice's words stay hers");
    assert_eq!(store.word_candidates(bob, is("v2")).await.unwrap(), [shared, only].into());
}

/// Words of the plaintext for a copy encrypted to a user's OpenPGP key.
struct PlainWords;

impl Summarizer for PlainWords {
    fn summarize(&self, message: &[u8]) -> Summary {
        Words.summarize(message)
    }

    fn summarize_encrypted(&self, plain: &[u8], _stored: &[u8]) -> Summary {
        Summary { keys: b"plain".to_vec(), ..Words.summarize(plain) }
    }
}

/// A plaintext search summary (an opted-in OpenPGP copy on this clear store) is not remade
/// by a newer summarizer's backfill: that could only summarize the ciphertext, and the
/// plaintext's words would be gone for good. The summaries of other messages are.
#[tokio::test]
async fn the_backfill_keeps_plaintext_search_summaries() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    store.set_summarizer(std::sync::Arc::new(PlainWords));
    store.add_domain("example.org").await.unwrap();
    let alice = store.add_account("alice@example.org", "h").await.unwrap();
    let bob = store.add_account("bob@example.org", "h").await.unwrap();
    let key = include_bytes!("../../../rampart-pgp/testdata/alice.pub.asc");
    let options = crate::PgpOptions { protect_subject: false, publish: false, search: true };
    store.pgp_key_set("alice@example.org", crate::NewPgpKey::checked(key, "alice@example.org", options).unwrap()).await.unwrap();
    deliver(&store, &[alice, bob], b"Subject: hi\r\n\r\nthe quokka text\r\n").await;
    let (alice_inbox, bob_inbox) = (store.mailboxes(alice).await.unwrap()[0].id, store.mailboxes(bob).await.unwrap()[0].id);
    let plain = store.stored(alice_inbox, 1, 1, ALL).await.unwrap()[0].clone();
    assert_eq!(plain.keys.as_deref(), Some(&b"plain"[..]));
    assert_eq!(store.word_candidates(alice, is("quokka")).await.unwrap(), [plain.summary.unwrap()].into());
    drop(store);

    let store = SqliteStore::open(dir.path()).unwrap();
    store.set_summarizer(std::sync::Arc::new(WordsV2));
    assert_eq!(store.backfill_pass(std::time::Duration::ZERO).await.unwrap(), 1, "bob's, not alice's");
    assert_eq!(store.stored(alice_inbox, 1, 1, ALL).await.unwrap()[0], plain);
    assert_eq!(store.word_candidates(alice, is("quokka")).await.unwrap(), [plain.summary.unwrap()].into());
    assert_eq!(store.stored(bob_inbox, 1, 1, ALL).await.unwrap()[0].keys.as_deref(), Some(&b"keys2"[..]));
}
