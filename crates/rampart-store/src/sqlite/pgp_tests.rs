//! The delivery the per-user tests use. The OpenPGP delivery tests themselves run on both
//! backends (`crate::role_tests::mail`).

use super::*;
use crate::prelude::*;
use crate::{Delivered, Delivery, Folder, Target};

/// Delivers `body` (with a Received prefix) to the INBOX of each account.
pub(super) async fn deliver(store: &SqliteStore, accounts: &[AccountId], body: &[u8]) -> Vec<Delivered> {
    let mut w = store.blob_writer().unwrap();
    w.write(body).await.unwrap();
    let targets = accounts.iter().map(|&account| Target { account, folder: Folder::Inbox }).collect();
    let blob = w.finish().await.unwrap();
    let prefix = b"Received: by mx\r\n".to_vec();
    store.deliver(Delivery { blob, prefix, internal_date: 0, targets, reference: "R".into(), trail: "[]".into(), outbound: None }).await.unwrap()
}
