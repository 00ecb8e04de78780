//! The queue runner: picks due recipients from the durable queue, delivers them grouped by
//! message and domain within the concurrency limits, reschedules temporary failures on the
//! retry schedule, and bounces permanent failures and expired messages to the sender.
//!
//! The queue lives in the store, so a restart (or kill -9) loses nothing: recipients that were
//! being delivered are still `pending` and are tried again. A recipient may then receive a
//! message twice, which SMTP accepts in exchange for never losing one (RFC 5321 §6.1).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rampart_pipeline::{Entry, Outcome, Reason, Stage, Trail};
use rampart_store::{Delivery, Folder, Outbound as QueuedOutbound, QueueEntry, QueueRcpt, RcptState, RcptUpdate, Store, Target};
use tokio::sync::{Notify, Semaphore};
use tracing::{info, warn};

use crate::dsn;
use crate::outbound::{self, Attempt, Outbound, RcptResult};

/// Due recipients fetched per scan.
const SCAN_LIMIT: usize = 1000;
/// How often the queue is scanned when nothing wakes it; this bounds how late a retry can be.
/// The scan is one indexed query.
const SCAN_INTERVAL: Duration = Duration::from_secs(1);

/// How the runner schedules deliveries (from `[queue]`).
pub struct RunnerOptions {
    pub concurrency: usize,
    pub per_domain_concurrency: usize,
    pub retry_schedule: Vec<Duration>,
    pub expiry: Duration,
    pub recipient_delimiter: String,
    /// Told about recipients remote servers refused for good (containment signals).
    pub sending: Option<Arc<crate::sending::Sending>>,
}

pub struct Runner {
    store: Arc<dyn Store>,
    outbound: Arc<Outbound>,
    options: RunnerOptions,
    wakeup: Arc<Notify>,
    slots: Arc<Semaphore>,
    in_flight: Mutex<HashSet<i64>>,
    per_domain: Mutex<HashMap<String, usize>>,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Runner {
    pub fn new(store: Arc<dyn Store>, outbound: Arc<Outbound>, options: RunnerOptions, wakeup: Arc<Notify>) -> Arc<Runner> {
        let slots = Arc::new(Semaphore::new(options.concurrency));
        Arc::new(Runner {
            store,
            outbound,
            options,
            wakeup,
            slots,
            in_flight: Mutex::new(HashSet::new()),
            per_domain: Mutex::new(HashMap::new()),
        })
    }

    pub async fn run(self: Arc<Self>) {
        loop {
            if let Err(e) = self.clone().dispatch().await {
                warn!(event = "queue_scan_failed", error = %e.chain());
            }
            tokio::select! {
                _ = self.wakeup.notified() => {}
                _ = tokio::time::sleep(SCAN_INTERVAL) => {}
            }
        }
    }

    /// Starts an attempt for every due (message, domain) group that the limits allow.
    async fn dispatch(self: Arc<Self>) -> Result<(), rampart_store::StoreError> {
        for entry in self.store.queue_due(now(), SCAN_LIMIT).await? {
            let mut groups: Vec<(String, Vec<QueueRcpt>)> = Vec::new();
            for r in &entry.rcpts {
                if self.in_flight.lock().expect("queue lock").contains(&r.id) {
                    continue;
                }
                match groups.iter_mut().find(|(d, _)| *d == r.domain) {
                    Some((_, v)) => v.push(r.clone()),
                    None => groups.push((r.domain.clone(), vec![r.clone()])),
                }
            }
            for (domain, rcpts) in groups {
                {
                    let mut per = self.per_domain.lock().expect("queue lock");
                    let n = per.entry(domain.clone()).or_default();
                    if *n >= self.options.per_domain_concurrency {
                        continue;
                    }
                    *n += 1;
                }
                let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                    *self.per_domain.lock().expect("queue lock").entry(domain).or_default() -= 1;
                    return Ok(());
                };
                self.in_flight.lock().expect("queue lock").extend(rcpts.iter().map(|r| r.id));
                let runner = self.clone();
                let entry = QueueEntry { rcpts: Vec::new(), ..entry.clone() };
                tokio::spawn(async move {
                    runner.attempt(&entry, &domain, &rcpts).await;
                    let mut in_flight = runner.in_flight.lock().expect("queue lock");
                    for r in &rcpts {
                        in_flight.remove(&r.id);
                    }
                    drop(in_flight);
                    *runner.per_domain.lock().expect("queue lock").entry(domain).or_default() -= 1;
                    drop(permit);
                    // A finished attempt may free a slot that due work is waiting for.
                    runner.wakeup.notify_one();
                });
            }
        }
        Ok(())
    }

    async fn attempt(&self, entry: &QueueEntry, domain: &str, rcpts: &[QueueRcpt]) {
        let message = match self.store.queue_message(&entry.id).await {
            Ok(m) => m,
            Err(e) => {
                warn!(event = "queue_read_failed", id = %entry.id, error = %e.chain());
                return;
            }
        };
        let addresses: Vec<String> = rcpts.iter().map(|r| r.rcpt.clone()).collect();
        let results = outbound::deliver(
            &self.outbound,
            &Attempt {
                id: &entry.id,
                sender: &entry.sender,
                domain,
                rcpts: &addresses,
                message: &message,
                smtputf8: entry.smtputf8,
            },
        )
        .await;
        let t = now();
        let expired = t - entry.created >= self.options.expiry.as_secs() as i64;
        let mut updates = Vec::new();
        let mut failed: Vec<(String, String, String)> = Vec::new();
        let mut refused = 0;
        for (r, result) in rcpts.iter().zip(results) {
            match result {
                RcptResult::Delivered { reply } => {
                    updates.push(RcptUpdate { id: r.id, state: RcptState::Delivered, next_attempt: 0, error: reply });
                }
                RcptResult::Permanent { reason, status } => {
                    refused += 1;
                    failed.push((r.rcpt.clone(), status, reason.clone()));
                    updates.push(RcptUpdate { id: r.id, state: RcptState::Failed, next_attempt: 0, error: reason });
                }
                RcptResult::Temporary { reason } if expired => {
                    let why = format!("gave up after {} in the queue; last error: {reason}", humanize(self.options.expiry));
                    failed.push((r.rcpt.clone(), "4.4.7".into(), why.clone()));
                    updates.push(RcptUpdate { id: r.id, state: RcptState::Failed, next_attempt: 0, error: why });
                }
                RcptResult::Temporary { reason } => {
                    let schedule = &self.options.retry_schedule;
                    let wait = schedule[(r.attempts as usize).min(schedule.len() - 1)];
                    let next = t + wait.as_secs() as i64;
                    info!(event = "delivery_deferred", id = %entry.id, rcpt = %r.rcpt, retry_in = %humanize(wait), reason = %reason);
                    updates.push(RcptUpdate { id: r.id, state: RcptState::Pending, next_attempt: next, error: reason });
                }
            }
        }
        // The bounce is stored before the failures are recorded: after a crash in between the
        // sender may get two bounces, but never none.
        if !failed.is_empty() {
            self.bounce(entry, &failed, &message).await;
        }
        if let Err(e) = self.store.queue_update(updates).await {
            warn!(event = "queue_update_failed", id = %entry.id, error = %e.chain());
        }
        if let Some(sending) = &self.options.sending {
            sending.remote_refused(&entry.account, refused).await;
        }
    }

    /// Sends a DSN for `failed` to the message's sender, unless it is itself a DSN or has the
    /// null sender: bounces must never cause bounces (RFC 5321 §4.5.5).
    async fn bounce(&self, entry: &QueueEntry, failed: &[(String, String, String)], message: &[u8]) {
        if entry.is_dsn || entry.sender.is_empty() {
            info!(event = "bounce_suppressed", id = %entry.id, reason = "null_sender");
            return;
        }
        let list: Vec<dsn::Failed<'_>> =
            failed.iter().map(|(rcpt, status, why)| dsn::Failed { rcpt, status, diagnostic: why }).collect();
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
            Ok(()) => info!(event = "bounce", id = %entry.id, dsn_id = %id, to = %entry.sender, rcpts = failed.len()),
            Err(e) => warn!(event = "bounce_failed", id = %entry.id, error = %e.chain()),
        }
    }

    async fn store_bounce(&self, id: &str, to: &str, report: Vec<u8>) -> Result<(), rampart_store::StoreError> {
        let rcpts = [to.to_string()];
        let generated = Generated { id, sender: "", rcpts: &rcpts, message: &report, reason: Reason::DeliveryStatusNotification, is_dsn: true };
        let done = inject(self.store.as_ref(), &self.outbound.hostname, &self.options.recipient_delimiter, &generated).await?;
        if done.local == 0 && !done.queued {
            return Err(rampart_store::StoreError::NotFound(format!("local sender {to}")));
        }
        if done.queued {
            self.wakeup.notify_one();
        }
        Ok(())
    }
}

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
pub async fn inject(store: &dyn Store, hostname: &str, delimiter: &str, g: &Generated<'_>) -> Result<Injected, rampart_store::StoreError> {
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
            let (l, d) = canonical.rsplit_once('@').expect("canonical addresses have an @");
            r = store.resolve(&format!("{}@{d}", address::strip_subaddress(l, delimiter))).await?;
        }
        if r.is_empty() && !store.is_local_domain(address::domain_of(&canonical)).await? {
            remote.push(rcpt.clone());
        }
        accounts.extend(r.accounts);
        remote.extend(r.remote);
    }
    accounts.sort_unstable();
    accounts.dedup();
    remote.dedup();
    let done = Injected { local: accounts.len(), queued: !remote.is_empty() };
    if accounts.is_empty() && remote.is_empty() {
        return Ok(done);
    }
    let mut writer = store.blob_writer()?;
    writer.write(g.message).await?;
    let blob = writer.finish().await?;
    let received = format!("Received: by {hostname} (Rampart) id {};\r\n\t{}\r\n", g.id, chrono::Utc::now().to_rfc2822());
    let trail = generated_trail(g.reason);
    store
        .deliver(Delivery {
            blob,
            prefix: format!("Return-Path: <{}>\r\n{received}", g.sender).into_bytes(),
            internal_date: now(),
            targets: accounts.iter().map(|&account| Target { account, folder: Folder::Inbox }).collect(),
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
    #[test]
    fn durations_for_logs() {
        assert_eq!(super::humantime_like(0), "0s");
        assert_eq!(super::humantime_like(90), "1m30s");
        assert_eq!(super::humantime_like(5 * 86400), "5d");
    }

    /// The typed trail is the JSON the hand-written one was.
    #[test]
    fn generated_trail_json() {
        for (reason, name) in [
            (super::Reason::DeliveryStatusNotification, "delivery_status_notification"),
            (super::Reason::DmarcReportSent, "dmarc_report_sent"),
        ] {
            let typed: serde_json::Value = serde_json::from_str(&super::generated_trail(reason)).unwrap();
            assert_eq!(typed, serde_json::json!([{"stage": "queue", "result": "pass", "reason": name}]));
        }
    }
}
