//! Compressed bodies through the store's API: what callers read is the message as received,
//! whichever way it is stored, and blobs stored before compression stay readable.

use super::*;
use crate::prelude::*;
use crate::{Delivery, FlagOp, Folder, Target};

async fn store_with_bob() -> (tempfile::TempDir, SqliteStore, AccountId, i64) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path()).unwrap();
    store.add_domain("example.test").await.unwrap();
    let bob = store.add_account("bob@example.test", "h").await.unwrap();
    let inbox = store.mailboxes(bob).await.unwrap()[0].id;
    (dir, store, bob, inbox)
}

/// A message of `n` bytes that compresses like text and differs along its length.
fn message(n: usize) -> Vec<u8> {
    let mut m = b"Subject: big\r\n\r\n".to_vec();
    let mut i = 0u64;
    while m.len() < n {
        m.extend_from_slice(format!("line {i} of the message, {}\r\n", i * 7919 % 1000).as_bytes());
        i += 1;
    }
    m.truncate(n);
    m
}

async fn deliver(store: &SqliteStore, bob: AccountId, body: &[u8], prefix: &[u8]) {
    let mut w = store.blob_writer().unwrap();
    for piece in body.chunks(70_000) {
        w.write(piece).await.unwrap();
    }
    let blob = w.finish().await.unwrap();
    assert_eq!(blob.contents().await.unwrap(), body, "read back before the commit");
    let mut streamed = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut blob.reader().await.unwrap(), &mut streamed).await.unwrap();
    assert_eq!(streamed, body);
    store
        .deliver(Delivery {
            blob,
            prefix: prefix.to_vec(),
            internal_date: 0,
            targets: vec![Target { account: bob, folder: Folder::Inbox }],
            reference: "R".into(),
            trail: "[]".into(),
            outbound: None,
        })
        .await
        .unwrap();
}

/// Reads the message through `open_message` in pieces of `step` bytes from `start`.
async fn read_range(store: &SqliteStore, inbox: i64, uid: u32, start: u64, len: u64, step: usize) -> Vec<u8> {
    let mut r = store.open_message(inbox, uid).await.unwrap();
    let mut out = Vec::new();
    let mut pos = start;
    while pos < start + len {
        let n = r.read_at(pos, step.min((start + len - pos) as usize), &mut out).await.unwrap();
        if n == 0 {
            break;
        }
        pos += n as u64;
    }
    out
}

#[tokio::test]
async fn compressed_bodies_read_back_whole_and_in_ranges() {
    let (dir, store, bob, inbox) = store_with_bob().await;
    let small = message(5_000);
    let large = message(3 * crate::codec::CHUNK + 4321);
    let prefix = b"Received: by us\r\n";
    deliver(&store, bob, &small, prefix).await;
    deliver(&store, bob, &large, prefix).await;
    let files: Vec<_> = super::tests::placed_files(dir.path());
    assert_eq!(files.len(), 1);
    let on_disk = std::fs::metadata(&files[0]).unwrap().len();
    assert!(on_disk * 3 < large.len() as u64, "{on_disk} bytes on disk for {}", large.len());
    let whole = |b: &[u8]| [&prefix[..], b].concat();
    assert_eq!(store.read_message(inbox, 1).await.unwrap(), whole(&small));
    assert_eq!(store.read_message(inbox, 2).await.unwrap(), whole(&large));
    let full = whole(&large);
    let chunk = crate::codec::CHUNK as u64;
    for (start, len, step) in [(0, full.len() as u64, 64 * 1024), (chunk - 5, 10, 3), (2 * chunk + 100, chunk, 70_000), (10, 5, 5)] {
        let got = read_range(&store, inbox, 2, start, len, step).await;
        assert_eq!(got, full[start as usize..(start + len).min(full.len() as u64) as usize], "{start}+{len}");
    }
    assert_eq!(read_range(&store, inbox, 1, 3, 50, 7).await, whole(&small)[3..53]);
}

#[tokio::test]
async fn bodies_stored_before_compression_stay_readable() {
    let (dir, store, bob, inbox) = store_with_bob().await;
    // What an older version wrote: a small body in `blobs.data`, a large one as a plain file.
    let small = message(3_000);
    let large = message(crate::codec::CHUNK + 999);
    let root = dir.path().join("blobs");
    let large_id = "0000000000010000000000000001";
    let path = crate::blob::blob_path(&root, large_id);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &large).unwrap();
    store
        .write(move |conn, _| {
            conn.execute("INSERT INTO blobs (id, size, refcount, data) VALUES ('0000000000010000000000000000', ?1, 1, ?2)", params![small.len() as i64, small])?;
            conn.execute("INSERT INTO blobs (id, size, refcount) VALUES (?1, ?2, 1)", params![large_id, large.len() as i64])?;
            for (uid, id) in [(1, "0000000000010000000000000000"), (2, large_id)] {
                conn.execute(
                    "INSERT INTO messages (mailbox_id, uid, blob_id, prefix, size, internal_date, modseq, reference, trail) \
                     VALUES (?1, ?2, ?3, x'', 0, 0, 1, 'old', '[]')",
                    params![inbox, uid, id],
                )?;
            }
            conn.execute("UPDATE mailboxes SET uidnext = 3 WHERE id = ?1", [inbox])?;
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(store.read_message(inbox, 1).await.unwrap(), message(3_000));
    assert_eq!(store.read_message(inbox, 2).await.unwrap(), message(crate::codec::CHUNK + 999));
    assert_eq!(read_range(&store, inbox, 2, 100, 300_000, 64 * 1024).await, message(crate::codec::CHUNK + 999)[100..]);
    assert_eq!(read_range(&store, inbox, 1, 0, 10, 64).await, message(3_000)[..10]);
    // Expunging them removes the old file as it does a compressed one.
    store.store_flags(inbox, vec![1, 2], FlagOp::Add, vec!["\\Deleted".into()], None).await.unwrap();
    store.expunge(inbox, None).await.unwrap();
    assert!(!path.exists());
    let _ = bob;
}
