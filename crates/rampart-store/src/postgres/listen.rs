//! Changes committed by any node reach this node's IMAP sessions: every writing transaction
//! issues `NOTIFY rampart_mailbox, 'ID'` for each mailbox it changed (PostgreSQL delivers it
//! at COMMIT, never for a rollback), and one connection per store, outside the pool, LISTENs
//! and fires the mailbox's watch ([`crate::notify::Notifier`]). The node that committed also
//! fires its watches itself right after COMMIT, so its own sessions do not wait for the round
//! trip.
//!
//! A watch carries no data, so a lost or doubled notification costs nothing but a look: when
//! the LISTEN connection is lost, every watch fires once it is back (changes may have been
//! missed meanwhile), and it reconnects every second until it is.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Transaction;
use tokio_postgres::AsyncMessage;

use crate::notify::Notifier;
use crate::{MailboxId, Result};

/// The NOTIFY channel of mailbox changes.
const CHANNEL: &str = "rampart_mailbox";
/// Pause before connecting again after the LISTEN connection failed.
const RECONNECT: Duration = Duration::from_secs(1);

/// Ends the LISTEN task when dropped (with the store's last clone).
pub(super) struct Guard(tokio::task::AbortHandle);

impl Drop for Guard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Queues a notification of each mailbox's change, sent by PostgreSQL at COMMIT.
pub(super) async fn notify(txn: &Transaction<'_>, mailboxes: &[MailboxId]) -> Result<()> {
    if mailboxes.is_empty() {
        return Ok(());
    }
    let stmt = txn.prepare_cached("SELECT pg_notify($1, $2)").await?;
    for mailbox in mailboxes {
        txn.execute(&stmt, &[&CHANNEL, &mailbox.to_string()]).await?;
    }
    Ok(())
}

pub(super) fn start(config: tokio_postgres::Config, tls: tokio_postgres_rustls::MakeRustlsConnect, notifier: Arc<Notifier>) -> Guard {
    let task = tokio::spawn(async move {
        loop {
            if let Err(e) = listen(&config, tls.clone(), &notifier).await {
                tracing::warn!(event = "store_listen_failed", error = %e);
            }
            tokio::time::sleep(RECONNECT).await;
        }
    });
    Guard(task.abort_handle())
}

/// One LISTEN connection, until it fails.
async fn listen(
    config: &tokio_postgres::Config,
    tls: tokio_postgres_rustls::MakeRustlsConnect,
    notifier: &Notifier,
) -> std::result::Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(tls).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // The connection must be polled for any query on it to finish: a task drives it and
    // hands the notifications over; it ends (and drops `tx`) when the connection does.
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if tx.send(n).is_err() {
                        return Ok(());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            }
        }
    });
    let _stop_driver = Guard(driver.abort_handle());
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
    // Whatever changed while there was no LISTEN connection.
    notifier.fire_all();
    while let Some(n) = rx.recv().await {
        if let Ok(mailbox) = n.payload().parse::<MailboxId>() {
            notifier.fire(&[mailbox]);
        }
    }
    match driver.await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}
