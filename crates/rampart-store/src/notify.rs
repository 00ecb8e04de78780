//! In-process change notification: the writer thread fires a mailbox's watch after the commit
//! that changed it, so IMAP sessions (IDLE, concurrent sessions) learn about deliveries, flag
//! changes and expunges within milliseconds instead of polling.
//!
//! A watch carries only a counter; the session asks the store what changed since its last
//! known MODSEQ. Missing a wake-up is harmless (the next one covers it), so no queue can grow
//! without bound. Changes made by another process (the CLI) do not fire; sessions also poll
//! at a slow interval for those.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::watch;

use crate::MailboxId;

#[derive(Default)]
pub struct Notifier {
    watches: Mutex<HashMap<MailboxId, watch::Sender<u64>>>,
}

impl Notifier {
    /// A receiver that changes after every commit that touched `mailbox`.
    pub fn watch(&self, mailbox: MailboxId) -> watch::Receiver<u64> {
        let mut map = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        // Forget mailboxes nobody watches any more, so the map stays as small as the set of
        // selected mailboxes.
        map.retain(|_, tx| tx.receiver_count() > 0);
        map.entry(mailbox).or_insert_with(|| watch::channel(0).0).subscribe()
    }

    /// Wakes every watcher: after changes that may have been missed (a store's lost
    /// connection to other nodes' notifications).
    pub fn fire_all(&self) {
        let map = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        for tx in map.values() {
            tx.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// Wakes the watchers of each mailbox. Called after the commit is durable.
    pub fn fire(&self, mailboxes: &[MailboxId]) {
        let map = self.watches.lock().unwrap_or_else(|e| e.into_inner());
        for id in mailboxes {
            if let Some(tx) = map.get(id) {
                tx.send_modify(|n| *n = n.wrapping_add(1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fire_wakes_only_the_watchers_of_that_mailbox() {
        let n = Notifier::default();
        let mut a = n.watch(1);
        let b = n.watch(2);
        n.fire(&[1]);
        assert!(a.has_changed().unwrap());
        assert!(!b.has_changed().unwrap());
        a.changed().await.unwrap();
        drop(b);
        let _c = n.watch(3);
        assert_eq!(n.watches.lock().unwrap().len(), 2, "the unwatched mailbox 2 is forgotten");
    }
}
