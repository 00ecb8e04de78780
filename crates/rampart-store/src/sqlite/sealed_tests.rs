//! Sealed summaries of per-user copies: made at delivery and by a conversion, read (records
//! and words) only while their user is logged in, made for older copies by a command that
//! read them, and a conversion leaves no words of the converted mail in the database.

use super::SqliteStore;
use super::pgp_tests::deliver;
use super::userkeys_tests::{PLAIN, Words, found_under};
use crate::keys::random_key;
use crate::prelude::*;
use crate::summary::{Summarizer, Stored, Want, WordMatch};
use crate::userkey::PASSWORD;

const ALL: Want = Want { keys: true, headers: true, fetch: true };

async fn first(store: &SqliteStore, mailbox: crate::MailboxId) -> Stored {
    store.stored(mailbox, 1, u32::MAX, ALL).await.unwrap().remove(0)
}

fn is(w: &str) -> Vec<WordMatch> {
    vec![WordMatch::Is(w.into())]
}

#[tokio::test]
async fn sealed_summaries_answer_only_while_unlocked() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    store.set_summarizer(std::sync::Arc::new(Words));
    store.add_domain("example.org").await.unwrap();
    let alice = store.add_account("alice@example.org", "h").await.unwrap();
    let bob = store.add_account("bob@example.org", "h").await.unwrap();
    let password = random_key();
    store.enable_user_key(alice, password.clone()).await.unwrap();
    let delivered = deliver(&store, &[alice, bob], PLAIN).await;
    let of = |who| delivered.iter().find(|d| d.account == who).unwrap().clone();
    let (a, b) = (of(alice), of(bob));

    let locked = first(&store, a.mailbox).await;
    assert_eq!((locked.summary, locked.headers), (None, None), "locked: as without a summary");
    let generation = store.summary_generation();
    let guard = store.unlock_user_key(alice, PASSWORD, password.clone()).await.unwrap().unwrap();
    assert_ne!(store.summary_generation(), generation, "copies of the summaries are made again");
    let open = first(&store, a.mailbox).await;
    let clear = first(&store, b.mailbox).await;
    let id = open.summary.unwrap();
    assert!(id < 0, "a sealed summary's number");
    assert_eq!((open.keys, open.headers, open.fetch), (clear.keys, clear.headers, clear.fetch), "the same records as a clear copy's");
    assert_eq!(store.word_candidates(alice, is("quokkamarker")).await.unwrap(), [id].into());
    assert_eq!(store.word_candidates(alice, vec![WordMatch::StartsWith("quokka".into())]).await.unwrap(), [id].into());
    assert!(store.word_candidates(alice, is("absent")).await.unwrap().is_empty());
    assert!(!store.word_candidates(bob, is("quokkamarker")).await.unwrap().contains(&id), "another account's search");

    let generation = store.summary_generation();
    drop(guard);
    assert_ne!(store.summary_generation(), generation);
    assert_eq!(first(&store, a.mailbox).await.summary, None, "forgotten with the last session");
    assert!(store.word_candidates(alice, is("quokkamarker")).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_copy_without_a_sealed_summary_gets_one_when_read_unlocked() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    store.set_summarizer(std::sync::Arc::new(Words));
    store.add_domain("example.org").await.unwrap();
    let alice = store.add_account("alice@example.org", "h").await.unwrap();
    let password = random_key();
    store.enable_user_key(alice, password.clone()).await.unwrap();
    let a = deliver(&store, &[alice], PLAIN).await.remove(0);
    // As stored before sealed summaries existed.
    store.write(|conn, _| Ok(conn.execute("DELETE FROM sealed_summaries", [])?)).await.unwrap();
    let summary = Words.summarize(PLAIN);
    store.save_summaries(a.mailbox, vec![(a.uid, summary.clone())]).await.unwrap();
    let _guard = store.unlock_user_key(alice, PASSWORD, password).await.unwrap().unwrap();
    assert_eq!(first(&store, a.mailbox).await.summary, None, "locked: nothing kept");
    store.save_summaries(a.mailbox, vec![(a.uid, summary.clone())]).await.unwrap();
    let row = first(&store, a.mailbox).await;
    assert!(row.summary.is_some_and(|id| id < 0));
    assert_eq!(row.headers, Some(summary.headers));
    assert!(!found_under(dir.path(), b"quokkamarker"));
}

#[tokio::test]
async fn a_conversion_seals_the_summaries_and_leaves_no_words_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    store.set_summarizer(std::sync::Arc::new(Words));
    store.add_domain("example.org").await.unwrap();
    let alice = store.add_account("alice@example.org", "h").await.unwrap();
    let a = deliver(&store, &[alice], PLAIN).await.remove(0);
    assert_eq!(store.word_candidates(alice, is("quokkamarker")).await.unwrap().len(), 1, "indexed in clear");
    let password = random_key();
    store.enable_user_key(alice, password.clone()).await.unwrap();
    assert_eq!(store.convert_user_messages(alice).await.unwrap(), 1);
    assert!(store.word_candidates(alice, is("quokkamarker")).await.unwrap().is_empty(), "locked");
    {
        let _guard = store.unlock_user_key(alice, PASSWORD, password).await.unwrap().unwrap();
        let row = first(&store, a.mailbox).await;
        assert_eq!(store.word_candidates(alice, is("quokkamarker")).await.unwrap(), [row.summary.unwrap()].into());
    }
    // The index's segments were merged and the freed pages zeroed: nothing of the words,
    // the subject or the body in the database, its WAL or the files once checkpointed.
    drop(store);
    let conn = rusqlite::Connection::open(dir.path().join("rampart.db")).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
    drop(conn);
    for needle in [&b"zebraquux"[..], b"quokkamarker"] {
        assert!(!found_under(dir.path(), needle), "{}", String::from_utf8_lossy(needle));
    }
}
