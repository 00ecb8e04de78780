//! Delivery to accounts with an OpenPGP key: their copy is PGP/MIME, the others' and mail
//! already protected are as received, the plaintext's words stay out of a clear database.

use super::*;
use crate::prelude::*;
use crate::summary::{Summarizer, Summary, WordMatch};
use crate::{Delivered, Delivery, Folder, NewPgpKey, Target};

const ALICE_KEY: &[u8] = include_bytes!("../../../rampart-pgp/testdata/alice.pub.asc");

struct Words;

impl Summarizer for Words {
    fn summarize(&self, message: &[u8]) -> Summary {
        let text = String::from_utf8_lossy(message).to_lowercase();
        let words: Vec<&str> = text.split_whitespace().collect();
        Summary { keys: vec![], headers: vec![], fetch: vec![], words: Some(words.join(" ")), version: 1 }
    }
}

/// Delivers `body` (with a Received prefix) to the INBOX of each account; also the per-user
/// tests' delivery.
pub(super) async fn deliver(store: &SqliteStore, accounts: &[AccountId], body: &[u8]) -> Vec<Delivered> {
    let mut w = store.blob_writer().unwrap();
    w.write(body).await.unwrap();
    let targets = accounts.iter().map(|&account| Target { account, folder: Folder::Inbox }).collect();
    let blob = w.finish().await.unwrap();
    let prefix = b"Received: by mx\r\n".to_vec();
    store.deliver(Delivery { blob, prefix, internal_date: 0, targets, reference: "R".into(), trail: "[]".into(), outbound: None }).await.unwrap()
}

const PLAIN: &[u8] = b"From: a@example.net\r\nSubject: zebra\r\n\r\nthe quokka body\r\n";

#[tokio::test]
async fn keyed_accounts_get_an_encrypted_copy() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    store.set_summarizer(std::sync::Arc::new(Words));
    store.add_domain("example.org").await.unwrap();
    let alice = store.add_account("alice@example.org", "h").await.unwrap();
    let bob = store.add_account("bob@example.org", "h").await.unwrap();
    let key = rampart_pgp::UserKey::check(ALICE_KEY, "alice@example.org", now()).unwrap();
    let new = NewPgpKey { key: key.to_binary(), fingerprint: key.info().fingerprint, protect_subject: true, publish: true };
    store.pgp_key_set("Alice@example.org", new).await.unwrap();
    assert!(store.pgp_key("alice@example.org").await.unwrap().unwrap().protect_subject);
    assert_eq!(store.pgp_published("EXAMPLE.org").await.unwrap().len(), 1);

    let delivered = deliver(&store, &[alice, bob], PLAIN).await;
    assert_eq!(delivered.len(), 2);
    let read = |d: &Delivered| store.read_message(d.mailbox, d.uid);
    let of = |who: AccountId| delivered.iter().find(|d| d.account == who).unwrap();
    let bobs = read(of(bob)).await.unwrap();
    assert_eq!(bobs, [&b"Received: by mx\r\n"[..], PLAIN].concat());
    let alices = String::from_utf8(read(of(alice)).await.unwrap()).unwrap();
    assert!(alices.starts_with("Received: by mx\r\n"), "the trace prefix stays");
    assert!(alices.contains("multipart/encrypted") && alices.contains("\r\nSubject: ...\r\n"));
    assert!(!alices.contains("quokka") && !alices.contains("zebra"));
    // A clear database holds none of the plaintext's words for alice; bob's are indexed.
    let is = |w: &str| vec![WordMatch::Is(w.into())];
    assert!(store.word_candidates(alice, is("quokka")).await.unwrap().is_empty());
    assert_eq!(store.word_candidates(bob, is("quokka")).await.unwrap().len(), 1);

    // Mail already encrypted is stored as received, and so is everything after removal.
    let pgp_mime = b"From: a@example.net\r\nContent-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=b\r\n\r\n--b--\r\n";
    let d = deliver(&store, &[alice], pgp_mime).await;
    assert_eq!(store.read_message(d[0].mailbox, d[0].uid).await.unwrap(), [&b"Received: by mx\r\n"[..], pgp_mime].concat());
    assert!(store.pgp_key_remove("alice@example.org").await.unwrap());
    assert!(!store.pgp_key_remove("alice@example.org").await.unwrap());
    let d = deliver(&store, &[alice], PLAIN).await;
    assert_eq!(store.read_message(d[0].mailbox, d[0].uid).await.unwrap(), [&b"Received: by mx\r\n"[..], PLAIN].concat());
}

#[tokio::test]
async fn a_release_from_the_quarantine_is_encrypted_too() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    store.add_domain("example.org").await.unwrap();
    let alice = store.add_account("alice@example.org", "h").await.unwrap();
    let bob = store.add_account("bob@example.org", "h").await.unwrap();
    let key = rampart_pgp::UserKey::check(ALICE_KEY, "alice@example.org", now()).unwrap();
    let new = NewPgpKey { key: key.to_binary(), fingerprint: key.info().fingerprint, protect_subject: false, publish: true };
    store.pgp_key_set("alice@example.org", new).await.unwrap();
    let mut w = store.blob_writer().unwrap();
    w.write(PLAIN).await.unwrap();
    let hold = crate::quarantine::Hold {
        blob: w.finish().await.unwrap(),
        prefix: b"Received: by mx\r\n".to_vec(),
        internal_date: 7,
        accounts: vec![alice, bob],
        reference: "Q1".into(),
        sender: "a@example.net".into(),
        subject: "zebra".into(),
        reason: "spam".into(),
        score: Some(9.0),
        trail: "[]".into(),
    };
    store.hold(hold).await.unwrap();
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
