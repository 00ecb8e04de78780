//! Per-user encryption in the SQLite store: delivery while locked, reading while unlocked,
//! wraps added and removed, and nothing of the content in the database or the files.

use super::SqliteStore;
use super::pgp_tests::deliver;
use crate::keys::random_key;
use crate::peruser::unlock_from_text;
use crate::prelude::*;
use crate::summary::{Summarizer, Summary, WordMatch};
use crate::userkey::{PASSWORD, RECOVERY};
use crate::{AccountId, StoreError};

pub(super) struct Words;
impl Summarizer for Words {
    fn summarize(&self, message: &[u8]) -> Summary {
        let text = String::from_utf8_lossy(message).to_lowercase();
        Summary { keys: vec![], headers: text.clone().into_bytes(), fetch: vec![], words: Some(text), version: 1 }
    }
}

pub(super) const PLAIN: &[u8] = b"From: a@example.net\r\nSubject: zebraquux\r\n\r\nthe quokkamarker body\r\n";

/// Whether any file under `dir` contains `needle`.
pub(super) fn found_under(dir: &std::path::Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().flatten().any(|e| {
        let p = e.path();
        if p.is_dir() { found_under(&p, needle) } else { std::fs::read(&p).unwrap_or_default().windows(needle.len()).any(|w| w == needle) }
    })
}

#[tokio::test]
async fn locked_delivery_unlocked_reading_and_wraps() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    store.set_summarizer(std::sync::Arc::new(Words));
    store.add_domain("example.org").await.unwrap();
    let alice = store.add_account("alice@example.org", "h").await.unwrap();
    let bob = store.add_account("bob@example.org", "h").await.unwrap();
    let password = random_key();
    let code = store.enable_user_key(alice, password.clone()).await.unwrap();
    assert!(store.enable_user_key(alice, password.clone()).await.is_err(), "once");
    let status = store.user_key_status(alice).await.unwrap().unwrap();
    assert_eq!(status.wraps, vec![PASSWORD.to_string(), RECOVERY.to_string()]);
    assert!(!status.unlocked);
    assert!(store.user_key_status(bob).await.unwrap().is_none());

    let delivered = deliver(&store, &[alice, bob], PLAIN).await;
    let of = |who: AccountId| delivered.iter().find(|d| d.account == who).unwrap().clone();
    let (a, b) = (of(alice), of(bob));
    assert!(matches!(store.read_message(a.mailbox, a.uid).await, Err(StoreError::Locked(_))), "locked while logged out");
    assert_eq!(store.read_message(b.mailbox, b.uid).await.unwrap(), [&b"Received: by mx\r\n"[..], PLAIN].concat());
    assert!(store.word_candidates(alice, vec![WordMatch::Is("quokkamarker".into())]).await.unwrap().is_empty());
    // Bob's copy is in the clear database; alice's only sealed.
    std::fs::remove_dir_all(dir.path().join("blobs/tmp")).ok();
    let bytes_of_alice = found_under(dir.path(), b"zebraquux");
    assert!(bytes_of_alice, "bob's clear copy is there (sanity check of the search)");

    // A wrong secret does not unlock; the password does, for as long as a guard lives.
    assert!(store.unlock_user_key(alice, PASSWORD, random_key()).await.is_err());
    assert!(store.unlock_user_key(bob, PASSWORD, random_key()).await.unwrap().is_none());
    let guard = store.unlock_user_key(alice, PASSWORD, password.clone()).await.unwrap().unwrap();
    assert_eq!(store.read_message(a.mailbox, a.uid).await.unwrap(), [&b"Received: by mx\r\n"[..], PLAIN].concat());
    assert!(store.user_key_status(alice).await.unwrap().unwrap().unlocked);
    // An app password's wrap, made from the unlocked key; removing it takes it away.
    let app = unlock_from_text("abcd-efgh-ijkl-mnop");
    assert!(store.add_user_key_wrap(alice, "app:1", app.clone(), None).await.unwrap());
    drop(guard);
    assert!(matches!(store.read_message(a.mailbox, a.uid).await, Err(StoreError::Locked(_))), "locked after the last session");
    let guard = store.unlock_user_key(alice, "app:1", app.clone()).await.unwrap().unwrap();
    assert!(store.read_message(a.mailbox, a.uid).await.is_ok());
    drop(guard);
    store.remove_user_key_wrap(alice, "app:1").await.unwrap();
    assert!(store.unlock_user_key(alice, "app:1", app).await.is_err());
    // A password change rewraps (opened with the old password), an admin reset drops the
    // wrap, and the recovery code gives it back.
    let new = random_key();
    assert!(store.add_user_key_wrap(alice, PASSWORD, new.clone(), Some((PASSWORD.into(), password.clone()))).await.unwrap());
    assert!(store.unlock_user_key(alice, PASSWORD, password).await.is_err());
    store.remove_user_key_wrap(alice, PASSWORD).await.unwrap();
    assert!(store.unlock_user_key(alice, PASSWORD, new.clone()).await.is_err());
    let recovery = (RECOVERY.to_string(), unlock_from_text(&code));
    assert!(store.add_user_key_wrap(alice, PASSWORD, new.clone(), Some(recovery)).await.unwrap());
    let _guard = store.unlock_user_key(alice, PASSWORD, new).await.unwrap().unwrap();
    assert!(store.read_message(a.mailbox, a.uid).await.is_ok());
}

#[tokio::test]
async fn nothing_of_a_per_user_message_reaches_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    store.set_summarizer(std::sync::Arc::new(Words));
    store.add_domain("example.org").await.unwrap();
    let alice = store.add_account("alice@example.org", "h").await.unwrap();
    store.enable_user_key(alice, random_key()).await.unwrap();
    deliver(&store, &[alice], PLAIN).await;
    // Its summary and words are kept, sealed: the search below covers them.
    let sealed: i64 = store.read_now(|conn| Ok(conn.query_row("SELECT count(*) FROM sealed_summaries", [], |r| r.get(0))?)).unwrap();
    assert_eq!(sealed, 1);
    for needle in [&b"zebraquux"[..], b"quokkamarker"] {
        assert!(!found_under(dir.path(), needle), "{}", String::from_utf8_lossy(needle));
    }
}
