//! An encrypted store through its API: mail reads back whole and in ranges, nothing of it is
//! in any file of the data directory, the wrong or a missing key is refused, and a clear store
//! converted in place (and a key rotation) keep every message.

use std::sync::Arc;

use super::*;
use super::convert::{ConvertProgress, encrypt_store, rotate_keys};
use crate::keys::MasterKeys;
use crate::prelude::*;
use crate::{Delivery, Folder, Target};

const MARKER: &[u8] = b"Zebracorn-7731";

/// A message of about `n` bytes with the marker in its subject and all along its body.
fn message(n: usize) -> Vec<u8> {
    let mut m = b"Subject: Zebracorn-7731 report\r\n\r\n".to_vec();
    let mut i = 0u64;
    while m.len() < n {
        m.extend_from_slice(format!("line {i}: Zebracorn-7731 {}\r\n", i * 7919 % 1000).as_bytes());
        i += 1;
    }
    m
}

async fn deliver(store: &SqliteStore, account: AccountId, body: &[u8]) {
    let mut w = store.blob_writer().unwrap();
    for piece in body.chunks(70_000) {
        w.write(piece).await.unwrap();
    }
    let blob = w.finish().await.unwrap();
    let targets = vec![Target { account, folder: Folder::Inbox }];
    let delivery = Delivery { blob, prefix: b"X-Prefix: Zebracorn-7731\r\n".to_vec(), internal_date: 0, targets, reference: "R".into(), trail: "[]".into(), outbound: None };
    store.deliver(delivery).await.unwrap();
}

/// Files under `dir` (the database, its WAL, blobs) that hold the marker.
fn files_with_marker(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if std::fs::read(&p).unwrap().windows(MARKER.len()).any(|w| w == MARKER) {
                found.push(p);
            }
        }
    }
    found
}

async fn fill(store: &SqliteStore) -> (i64, Vec<Vec<u8>>) {
    store.add_domain("example.test").await.unwrap();
    let bob = store.add_account("bob@example.test", "h").await.unwrap();
    let inbox = store.mailboxes(bob).await.unwrap()[0].id;
    let bodies = vec![message(2_000), message(600_000), message(2 * codec::CHUNK)];
    for b in &bodies {
        deliver(store, bob, b).await;
    }
    (inbox, bodies)
}

async fn check_reads(store: &SqliteStore, inbox: i64, bodies: &[Vec<u8>]) {
    let prefix = b"X-Prefix: Zebracorn-7731\r\n";
    for (i, body) in bodies.iter().enumerate() {
        let whole = store.read_message(inbox, i as u32 + 1).await.unwrap();
        assert!(whole[prefix.len()..] == body[..], "message {i}");
        // A range far into the message: the reader seeks to its chunk.
        let mut r = store.open_message(inbox, i as u32 + 1).await.unwrap();
        let mut out = Vec::new();
        let at = (body.len() as u64).saturating_sub(300_000).max(prefix.len() as u64);
        r.read_at(at, 1000, &mut out).await.unwrap();
        assert!(out[..] == whole[at as usize..(at as usize + 1000).min(whole.len())], "range of message {i}");
    }
}

#[tokio::test]
async fn encrypted_store_reads_back_and_leaves_no_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(MasterKeys::generate());
    let store = SqliteStore::open_with_keys(dir.path(), Some(keys.clone())).unwrap();
    let (inbox, bodies) = fill(&store).await;
    check_reads(&store, inbox, &bodies).await;
    assert_eq!(files_with_marker(dir.path()), Vec::<std::path::PathBuf>::new());
    drop(store);
    // Missing, wrong and right keys.
    assert!(matches!(SqliteStore::open_with_keys(dir.path(), None), Err(StoreError::Encrypted(_))));
    let wrong = Arc::new(MasterKeys::generate());
    assert!(matches!(SqliteStore::open_with_keys(dir.path(), Some(wrong)), Err(StoreError::Key(_))));
    let store = SqliteStore::open_with_keys(dir.path(), Some(keys.clone())).unwrap();
    check_reads(&store, inbox, &bodies).await;
}

#[tokio::test]
async fn a_clear_store_is_refused_with_a_key_then_converted_and_rotated() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_with_keys(dir.path(), None).unwrap();
    let (inbox, bodies) = fill(&store).await;
    drop(store);
    assert!(!files_with_marker(dir.path()).is_empty());
    let keys = MasterKeys::generate();
    assert!(matches!(SqliteStore::open_with_keys(dir.path(), Some(Arc::new(MasterKeys::parse(&keys.to_text()).unwrap()))), Err(StoreError::NotEncrypted(_))));
    let done = encrypt_store(dir.path(), &keys).unwrap();
    assert!(done.database);
    assert_eq!(done.files, 2, "the two messages stored as files");
    assert_eq!(files_with_marker(dir.path()), Vec::<std::path::PathBuf>::new());
    assert_eq!(encrypt_store(dir.path(), &keys).unwrap(), ConvertProgress::default(), "a rerun has nothing left");
    let keys = Arc::new(keys);
    let store = SqliteStore::open_with_keys(dir.path(), Some(keys.clone())).unwrap();
    check_reads(&store, inbox, &bodies).await;
    drop(store);
    // Rotation: the new key first, the old one kept until every wrap is redone.
    let both = keys.with_new_current();
    let rotated = rotate_keys(dir.path(), &both).unwrap();
    assert!(rotated.store_key);
    assert_eq!(rotated.files, 2);
    let only_new = Arc::new(both.current_only());
    assert!(matches!(SqliteStore::open_with_keys(dir.path(), Some(keys)), Err(StoreError::Key(_))), "the old key alone no longer opens it");
    let store = SqliteStore::open_with_keys(dir.path(), Some(only_new)).unwrap();
    check_reads(&store, inbox, &bodies).await;
}

#[tokio::test]
async fn an_interrupted_conversion_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_with_keys(dir.path(), None).unwrap();
    let (inbox, bodies) = fill(&store).await;
    drop(store);
    let keys = MasterKeys::generate();
    // As if killed after the database and one file were done, between the commit and the
    // rename of a second file, with a stray uncommitted `.sealed` of a third.
    let marker = crate::storekey::StoreKey::create(&keys, crate::storekey::State::Encrypting).0;
    marker.write(dir.path()).unwrap();
    let db_key = super::encryption::DbKey::of(&marker, &keys).unwrap();
    assert!(convert::tests_export(dir.path(), &db_key));
    let conn = open_connection(&dir.path().join("rampart.db"), Some(&db_key)).unwrap();
    let first: String = conn.query_row("SELECT id FROM blobs WHERE body IS NULL AND data IS NULL ORDER BY id", [], |r| r.get(0)).unwrap();
    drop(conn);
    let stray = format!("{}.sealed", blob_path(&dir.path().join("blobs"), &first).display());
    std::fs::write(&stray, b"half written").unwrap();
    assert!(matches!(SqliteStore::open_with_keys(dir.path(), Some(Arc::new(MasterKeys::parse(&keys.to_text()).unwrap()))), Err(StoreError::Converting(_))));
    let done = encrypt_store(dir.path(), &keys).unwrap();
    assert!(!done.database);
    assert_eq!(done.files, 2);
    assert!(!std::path::Path::new(&stray).exists());
    let store = SqliteStore::open_with_keys(dir.path(), Some(Arc::new(keys))).unwrap();
    check_reads(&store, inbox, &bodies).await;
    assert_eq!(files_with_marker(dir.path()), Vec::<std::path::PathBuf>::new());
}

#[tokio::test]
async fn the_page_hmac_is_recorded_and_followed() {
    use crate::storekey::{PageHmac, StoreKey};
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(MasterKeys::generate());
    let store = SqliteStore::open_with_keys(dir.path(), Some(keys.clone())).unwrap();
    let (inbox, bodies) = fill(&store).await;
    drop(store);
    let marker = StoreKey::read(dir.path()).unwrap().unwrap();
    assert_eq!(marker.hmac, PageHmac::Sha256, "new stores authenticate pages with HMAC-SHA256");
    // The setting takes effect: keyed as SQLCipher's default (SHA-512), the pages do not verify.
    let mut legacy = marker.clone();
    legacy.hmac = PageHmac::Sha512;
    let db = dir.path().join("rampart.db");
    assert!(open_connection(&db, Some(&encryption::DbKey::of(&legacy, &keys).unwrap())).is_err());
    // A store.key written before the line existed means SHA-512.
    let path = dir.path().join(crate::storekey::FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("hmac sha256\n", "")).unwrap();
    assert_eq!(StoreKey::read(dir.path()).unwrap().unwrap().hmac, PageHmac::Sha512);
    assert!(SqliteStore::open_with_keys(dir.path(), Some(keys.clone())).is_err(), "this database is SHA-256");
    std::fs::write(&path, text).unwrap();
    let store = SqliteStore::open_with_keys(dir.path(), Some(keys)).unwrap();
    check_reads(&store, inbox, &bodies).await;
}

/// `keys rotate` beside a running server: the server adopts the new keys, a message whose
/// blob was written under the old key and committed after that is stored rewrapped, the pass
/// rewraps the rest, and the store then opens with the new key alone.
#[tokio::test]
async fn a_running_store_adopts_new_keys_and_rewraps_every_data_key() {
    let dir = tempfile::tempdir().unwrap();
    let old = Arc::new(MasterKeys::generate());
    let store = SqliteStore::open_with_keys(dir.path(), Some(old.clone())).unwrap();
    let (inbox, mut bodies) = fill(&store).await;
    // Being received while the server reloads: written under the old key, committed after.
    let late = message(400_000);
    let mut w = store.blob_writer().unwrap();
    w.write(&late).await.unwrap();
    let blob = w.finish().await.unwrap();

    let both = Arc::new(old.with_new_current());
    assert!(!store.has_master_keys(&both));
    assert!(matches!(store.adopt_master_keys(Arc::new(MasterKeys::generate())), Err(StoreError::Key(_))), "keys that do not open it");
    store.adopt_master_keys(both.clone()).unwrap();
    assert!(store.has_master_keys(&both));
    let marker = crate::storekey::StoreKey::read(dir.path()).unwrap().unwrap();
    assert_eq!(marker.wrapped_by(), Some(both.current().id), "store.key rewrapped at once");
    assert_eq!(store.stale_wraps().unwrap(), 2, "the two files stored before");

    let bob = store.account("bob@example.test").await.unwrap().unwrap().id;
    let targets = vec![Target { account: bob, folder: Folder::Inbox }];
    let delivery = Delivery { blob, prefix: b"X-Prefix: Zebracorn-7731\r\n".to_vec(), internal_date: 0, targets, reference: "R".into(), trail: "[]".into(), outbound: None };
    store.deliver(delivery).await.unwrap();
    bodies.push(late);
    assert_eq!(store.stale_wraps().unwrap(), 2, "the late one was rewrapped at its commit");
    assert_eq!(store.rewrap_data_keys().await.unwrap(), 2);
    assert_eq!(store.stale_wraps().unwrap(), 0);
    assert_eq!(store.rewrap_data_keys().await.unwrap(), 0, "nothing left for a second pass");
    check_reads(&store, inbox, &bodies).await;
    drop(store);

    assert!(matches!(SqliteStore::open_with_keys(dir.path(), Some(old)), Err(StoreError::Key(_))), "the old key alone no longer opens it");
    let store = SqliteStore::open_with_keys(dir.path(), Some(Arc::new(both.current_only()))).unwrap();
    check_reads(&store, inbox, &bodies).await;
}

/// The server's pid is in its lock file for as long as it holds the lock, and only then.
#[test]
fn the_running_server_is_found_by_its_lock() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(super::rotation::running_server(dir.path()).unwrap(), None, "no lock file");
    let store = SqliteStore::open_for_server(dir.path()).unwrap();
    assert_eq!(super::rotation::running_server(dir.path()).unwrap(), Some(std::process::id()));
    drop(store);
    assert_eq!(super::rotation::running_server(dir.path()).unwrap(), None, "the lock is free again");
}

/// `store encrypt` beside a running server: with `store.key` in state `encrypting`, the open
/// store switches to an encrypted database and seals its files while mail keeps arriving;
/// nothing of the mail is left in clear, and the store then opens with the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_store_converts_itself_while_mail_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_with_keys(dir.path(), None).unwrap();
    let (inbox, mut bodies) = fill(&store).await;
    let bob = store.account("bob@example.test").await.unwrap().unwrap().id;
    // Begun before the switch, committed after it: stored clear, sealed by the sweep.
    let late = message(300_000);
    let mut w = store.blob_writer().unwrap();
    w.write(&late).await.unwrap();
    let early_blob = w.finish().await.unwrap();

    let keys = Arc::new(MasterKeys::generate());
    crate::storekey::StoreKey::create(&keys, crate::storekey::State::Encrypting).0.write(dir.path()).unwrap();
    assert!(store.conversion_requested());
    let arriving = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut more = Vec::new();
            for i in 0..8 {
                let body = message(if i % 2 == 0 { 3_000 } else { 200_000 });
                deliver(&store, bob, &body).await;
                more.push(body);
            }
            more
        })
    };
    let converting = {
        let (store, keys) = (store.clone(), keys.clone());
        tokio::spawn(async move { store.encrypt_online(keys).await.unwrap().unwrap() })
    };
    bodies.extend(arriving.await.unwrap());
    // The conversion cannot end while that clear blob is uncommitted.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!converting.is_finished() && store.conversion_requested());
    let targets = vec![Target { account: bob, folder: Folder::Inbox }];
    let delivery = Delivery { blob: early_blob, prefix: b"X-Prefix: Zebracorn-7731\r\n".to_vec(), internal_date: 0, targets, reference: "R".into(), trail: "[]".into(), outbound: None };
    store.deliver(delivery).await.unwrap();
    bodies.push(late);
    let sealed = converting.await.unwrap();
    assert!(sealed >= 3, "the two files stored before and the late one: {sealed}");
    assert!(store.is_encrypted() && !store.conversion_requested());
    check_reads(&store, inbox, &bodies).await;
    drop(store);
    assert_eq!(files_with_marker(dir.path()), Vec::<std::path::PathBuf>::new());
    assert!(matches!(SqliteStore::open_with_keys(dir.path(), None), Err(StoreError::Encrypted(_))));
    let store = SqliteStore::open_with_keys(dir.path(), Some(keys)).unwrap();
    check_reads(&store, inbox, &bodies).await;
}
