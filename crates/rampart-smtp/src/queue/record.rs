//! Recording an attempt: each recipient's result becomes its new state in the store
//! (delivered, failed, or pending with its next try on the retry schedule), and permanent
//! failures become a bounce to the sender.

use std::time::Duration;

use rampart_pipeline::Reason;
use rampart_store::{QueueEntry, QueueRcpt, RcptState, RcptUpdate};
use tracing::{info, warn};

use super::inject::{Generated, inject};
use super::{Runner, now};
use crate::dsn;
use crate::outbound::RcptResult;

/// A recipient to bounce: address, status code, diagnostic.
pub(super) type Failed = (String, String, String);

/// The store updates for one attempt's `results` (in `rcpts` order) at time `t`, and the
/// recipients that failed for good.
pub(super) fn outcomes(
    entry: &QueueEntry,
    rcpts: &[QueueRcpt],
    results: Vec<RcptResult>,
    t: i64,
    retry_schedule: &[Duration],
    expiry: Duration,
) -> (Vec<RcptUpdate>, Vec<Failed>) {
    let expired = t - entry.created >= expiry.as_secs() as i64;
    let mut updates = Vec::with_capacity(rcpts.len());
    let mut failed = Vec::new();
    for (r, result) in rcpts.iter().zip(results) {
        match result {
            RcptResult::Delivered { reply } => {
                updates.push(RcptUpdate {
                    id: r.id,
                    state: RcptState::Delivered,
                    next_attempt: 0,
                    error: reply,
                });
            }
            RcptResult::Permanent { reason, status } => {
                failed.push((r.rcpt.clone(), status, reason.clone()));
                updates.push(RcptUpdate {
                    id: r.id,
                    state: RcptState::Failed,
                    next_attempt: 0,
                    error: reason,
                });
            }
            RcptResult::Temporary { reason } if expired => {
                let why = format!(
                    "gave up after {} in the queue; last error: {reason}",
                    humanize(expiry)
                );
                failed.push((r.rcpt.clone(), "4.4.7".into(), why.clone()));
                updates.push(RcptUpdate {
                    id: r.id,
                    state: RcptState::Failed,
                    next_attempt: 0,
                    error: why,
                });
            }
            RcptResult::Temporary { reason } => {
                let wait = retry_schedule[(r.attempts as usize).min(retry_schedule.len() - 1)];
                let next = t + wait.as_secs() as i64;
                info!(event = "delivery_deferred", id = %entry.id, rcpt = %r.rcpt, retry_in = %humanize(wait), reason = %reason);
                updates.push(RcptUpdate {
                    id: r.id,
                    state: RcptState::Pending,
                    next_attempt: next,
                    error: reason,
                });
            }
        }
    }
    (updates, failed)
}

impl Runner {
    /// Writes an attempt's outcome. The bounce is stored before the failures are recorded:
    /// after a crash in between the sender may get two bounces, but never none.
    /// `message` is read from the store when a bounce needs it and the caller has not.
    pub(super) async fn record(
        &self,
        entry: &QueueEntry,
        rcpts: &[QueueRcpt],
        results: Vec<RcptResult>,
        message: Option<Vec<u8>>,
    ) {
        let o = &self.options;
        let refused = results
            .iter()
            .filter(|r| matches!(r, RcptResult::Permanent { .. }))
            .count() as u64;
        let (updates, failed) = outcomes(entry, rcpts, results, now(), &o.retry_schedule, o.expiry);
        if !failed.is_empty() {
            let message = match message {
                Some(m) => Ok(m),
                None => self.store.queue_message(&entry.id).await,
            };
            match message {
                Ok(m) => self.bounce(entry, &failed, &m).await,
                Err(e) => warn!(event = "bounce_failed", id = %entry.id, error = %e.chain()),
            }
        }
        if let Err(e) = self.store.queue_update(updates).await {
            warn!(event = "queue_update_failed", id = %entry.id, error = %e.chain());
        }
        if let Some(sending) = &o.sending {
            sending.remote_refused(&entry.account, refused).await;
        }
    }

    /// Sends a DSN for `failed` to the message's sender, unless it is itself a DSN or has the
    /// null sender: bounces must never cause bounces (RFC 5321 §4.5.5).
    async fn bounce(&self, entry: &QueueEntry, failed: &[Failed], message: &[u8]) {
        if entry.is_dsn || entry.sender.is_empty() {
            info!(event = "bounce_suppressed", id = %entry.id, reason = "null_sender");
            return;
        }
        let list: Vec<dsn::Failed<'_>> = failed
            .iter()
            .map(|(rcpt, status, why)| dsn::Failed {
                rcpt,
                status,
                diagnostic: why,
            })
            .collect();
        let report = dsn::build(&dsn::Report {
            hostname: &self.outbound.hostname,
            id: &entry.id,
            to: &entry.sender,
            arrival: entry.created,
            failed: &list,
            original: message,
        });
        let id = crate::trace::new_id();
        match self.store_bounce(&id, &entry.sender, report).await {
            Ok(()) => {
                info!(event = "bounce", id = %entry.id, dsn_id = %id, to = %entry.sender, rcpts = failed.len())
            }
            Err(e) => warn!(event = "bounce_failed", id = %entry.id, error = %e.chain()),
        }
    }

    async fn store_bounce(
        &self,
        id: &str,
        to: &str,
        report: Vec<u8>,
    ) -> Result<(), rampart_store::StoreError> {
        let rcpts = [to.to_string()];
        let generated = Generated {
            id,
            sender: "",
            rcpts: &rcpts,
            message: &report,
            reason: Reason::DeliveryStatusNotification,
            is_dsn: true,
        };
        let done = inject(
            self.store.as_ref(),
            &self.outbound.hostname,
            &self.options.recipient_delimiter,
            &generated,
        )
        .await?;
        if done.local == 0 && !done.queued {
            return Err(rampart_store::StoreError::NotFound(format!(
                "local sender {to}"
            )));
        }
        if done.queued {
            self.wakeup.notify_one();
        }
        Ok(())
    }
}

fn humanize(d: Duration) -> String {
    humantime_like(d.as_secs())
}

/// `90` → `1m30s`; enough for log lines without another dependency.
fn humantime_like(mut s: u64) -> String {
    let mut out = String::new();
    for (unit, len) in [("d", 86400), ("h", 3600), ("m", 60)] {
        if s >= len {
            out.push_str(&format!("{}{unit}", s / len));
            s %= len;
        }
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_for_logs() {
        assert_eq!(humantime_like(0), "0s");
        assert_eq!(humantime_like(90), "1m30s");
        assert_eq!(humantime_like(5 * 86400), "5d");
    }

    fn rcpt(id: i64, attempts: u32) -> QueueRcpt {
        QueueRcpt {
            id,
            rcpt: format!("r{id}@example.test"),
            domain: "example.test".into(),
            state: RcptState::Pending,
            attempts,
            next_attempt: 0,
            last_error: String::new(),
        }
    }

    #[test]
    fn results_become_states_and_bounces() {
        let entry = QueueEntry {
            id: "Q".into(),
            sender: "s@x.test".into(),
            size: 1,
            smtputf8: false,
            is_dsn: false,
            created: 1000,
            account: String::new(),
            held: false,
            rcpts: vec![],
        };
        let rcpts = [rcpt(1, 0), rcpt(2, 5), rcpt(3, 0)];
        let schedule = [Duration::from_secs(60), Duration::from_secs(600)];
        let results = vec![
            RcptResult::Delivered {
                reply: "250 ok".into(),
            },
            RcptResult::Temporary {
                reason: "451 later".into(),
            },
            RcptResult::Permanent {
                reason: "550 no".into(),
                status: "5.1.1".into(),
            },
        ];
        let (updates, failed) = outcomes(
            &entry,
            &rcpts,
            results.clone(),
            2000,
            &schedule,
            Duration::from_secs(3600),
        );
        assert_eq!(
            updates.iter().map(|u| u.state).collect::<Vec<_>>(),
            [RcptState::Delivered, RcptState::Pending, RcptState::Failed]
        );
        // The schedule's last wait repeats.
        assert_eq!(updates[1].next_attempt, 2600);
        assert_eq!(
            failed,
            [(
                "r3@example.test".to_string(),
                "5.1.1".to_string(),
                "550 no".to_string()
            )]
        );
        // Past the expiry a temporary failure is final and bounces with 4.4.7.
        let (updates, failed) = outcomes(
            &entry,
            &rcpts,
            results,
            1000 + 3600,
            &schedule,
            Duration::from_secs(3600),
        );
        assert_eq!(updates[1].state, RcptState::Failed);
        assert_eq!(failed[0].1, "4.4.7");
        assert!(
            failed[0]
                .2
                .starts_with("gave up after 1h in the queue; last error: 451 later"),
            "{}",
            failed[0].2
        );
    }
}
