//! Messages this server writes itself (bounces, DMARC reports): stored for local recipients
//! and queued for the others in one transaction, like a submitted message.

use rampart_pipeline::{Entry, Outcome, Reason, Stage, Trail};
use rampart_store::{Delivery, Folder, Outbound as QueuedOutbound, Store, Target};

use super::now;

/// A message this server writes itself: a bounce, a DMARC report.
pub struct Generated<'a> {
    pub id: &'a str,
    /// The envelope sender; empty for `<>`.
    pub sender: &'a str,
    pub rcpts: &'a [String],
    pub message: &'a [u8],
    /// The trail's reason for accepting it.
    pub reason: Reason,
    /// A delivery status notification, which must never cause another.
    pub is_dsn: bool,
}

/// Where [`inject`] put a generated message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Injected {
    pub local: usize,
    pub queued: bool,
}

/// Stores a generated message for its local recipients (through aliases and sub-addresses)
/// and queues it for the others, in one transaction. An address in a local domain that
/// resolves to nobody is dropped.
pub async fn inject(
    store: &dyn Store,
    hostname: &str,
    delimiter: &str,
    g: &Generated<'_>,
) -> Result<Injected, rampart_store::StoreError> {
    use rampart_store::address;
    let mut accounts = Vec::new();
    let mut remote = Vec::new();
    for rcpt in g.rcpts {
        let Ok(canonical) = address::canonical(rcpt) else {
            remote.push(rcpt.clone());
            continue;
        };
        let mut r = store.resolve(&canonical).await?;
        if r.is_empty() {
            let (l, d) = canonical
                .rsplit_once('@')
                .expect("canonical addresses have an @");
            r = store
                .resolve(&format!("{}@{d}", address::strip_subaddress(l, delimiter)))
                .await?;
        }
        if r.is_empty()
            && !store
                .is_local_domain(address::domain_of(&canonical))
                .await?
        {
            remote.push(rcpt.clone());
        }
        accounts.extend(r.accounts);
        remote.extend(r.remote);
    }
    accounts.sort_unstable();
    accounts.dedup();
    remote.dedup();
    let done = Injected {
        local: accounts.len(),
        queued: !remote.is_empty(),
    };
    if accounts.is_empty() && remote.is_empty() {
        return Ok(done);
    }
    let mut writer = store.blob_writer()?;
    writer.write(g.message).await?;
    let blob = writer.finish().await?;
    let received = format!(
        "Received: by {hostname} (Rampart) id {};\r\n\t{}\r\n",
        g.id,
        chrono::Utc::now().to_rfc2822()
    );
    let trail = generated_trail(g.reason);
    store
        .deliver(Delivery {
            blob,
            prefix: format!("Return-Path: <{}>\r\n{received}", g.sender).into_bytes(),
            internal_date: now(),
            targets: accounts
                .iter()
                .map(|&account| Target {
                    account,
                    folder: Folder::Inbox,
                })
                .collect(),
            reference: g.id.to_string(),
            trail,
            outbound: done.queued.then(|| QueuedOutbound {
                sender: g.sender.to_string(),
                rcpts: remote,
                smtputf8: false,
                is_dsn: g.is_dsn,
                prefix: received.into_bytes(),
            }),
        })
        .await?;
    Ok(done)
}

/// The trail of a generated message: the queue stage accepted it, for `reason`.
fn generated_trail(reason: Reason) -> String {
    Trail(vec![Entry::new(Stage::Queue, Outcome::Pass, reason)]).to_json()
}

#[cfg(test)]
mod tests {
    /// The typed trail is the JSON the hand-written one was.
    #[test]
    fn generated_trail_json() {
        for (reason, name) in [
            (
                super::Reason::DeliveryStatusNotification,
                "delivery_status_notification",
            ),
            (super::Reason::DmarcReportSent, "dmarc_report_sent"),
        ] {
            let typed: serde_json::Value =
                serde_json::from_str(&super::generated_trail(reason)).unwrap();
            assert_eq!(
                typed,
                serde_json::json!([{"stage": "queue", "result": "pass", "reason": name}])
            );
        }
    }
}
