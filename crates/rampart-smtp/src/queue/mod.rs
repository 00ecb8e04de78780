//! The queue runner: finds due recipients in the durable queue, hands them to one lane per
//! destination domain ([`lanes`]), where workers ([`worker`]) deliver them over connections
//! kept open for the domain's next messages, and records every result ([`record`]):
//! delivered, rescheduled on the retry schedule, or bounced to the sender. Messages the server
//! writes itself (bounces, reports) enter the queue through [`inject`].
//!
//! The queue lives in the store, so a restart (or kill -9) loses nothing: recipients that were
//! being delivered are still `pending` and are tried again. A recipient may then receive a
//! message twice, which SMTP accepts in exchange for never losing one (RFC 5321 §6.1). A
//! recipient leaves the queue only once the remote server's replies said 250 to its RCPT and
//! to the message's end of data.

mod inject;
mod lanes;
mod record;
mod worker;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rampart_store::{QueueEntry, Store};
use tokio::sync::{Notify, Semaphore};
use tracing::warn;

use crate::outbound::Outbound;
pub use inject::{Generated, Injected, inject};
use lanes::{Job, Lane};

/// New due recipients fetched per scan, beyond those already in hand.
const SCAN_LIMIT: usize = 1000;
/// Recipients in hand (waiting in a lane, being delivered or recorded) above which the queue
/// is not scanned for more until some are done.
const ACTIVE_LIMIT: usize = 10_000;
/// How often the queue is scanned when nothing wakes it; this bounds how late a retry can be.
const SCAN_INTERVAL: Duration = Duration::from_secs(1);
/// The least time between two scans. A scan re-reads the due recipients already in hand, so
/// under load scans are also spaced by a multiple of their own duration: scanning then stays
/// a small share of the work however many messages wait.
const MIN_SCAN_GAP: Duration = Duration::from_millis(10);
const SCAN_GAP_FACTOR: u32 = 8;

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
    /// One permit per connection in use (`concurrency`).
    slots: Arc<Semaphore>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Recipients in hand: in a lane, being delivered, or being recorded.
    known: HashSet<i64>,
    /// Recipients recorded while scan number `.1` or a later one ran: those scans may have
    /// read them as still due, so they are ignored until a scan starts after the record.
    finished: HashMap<i64, u64>,
    /// Scans started so far.
    epoch: u64,
    lanes: HashMap<String, Lane>,
    /// When the leases of `known` were last renewed (stores shared by several nodes).
    renewed: Option<Instant>,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Runner {
    pub fn new(
        store: Arc<dyn Store>,
        outbound: Arc<Outbound>,
        options: RunnerOptions,
        wakeup: Arc<Notify>,
    ) -> Arc<Runner> {
        let slots = Arc::new(Semaphore::new(options.concurrency));
        Arc::new(Runner {
            store,
            outbound,
            options,
            wakeup,
            slots,
            state: Mutex::new(State::default()),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("queue state lock")
    }

    pub async fn run(self: Arc<Self>) {
        loop {
            let started = Instant::now();
            if let Err(e) = self.scan().await {
                warn!(event = "queue_scan_failed", error = %e.chain());
            }
            let gap = (started.elapsed() * SCAN_GAP_FACTOR).max(MIN_SCAN_GAP);
            self.close_idle();
            tokio::select! {
                _ = self.wakeup.notified() => {}
                _ = tokio::time::sleep(SCAN_INTERVAL) => {}
            }
            if let Some(rest) = gap.checked_sub(started.elapsed()) {
                tokio::time::sleep(rest).await;
            }
        }
    }

    /// Reads the due recipients and puts those not in hand yet into their domains' lanes, one
    /// job per (message, domain), then starts workers where the limits allow.
    async fn scan(self: &Arc<Self>) -> Result<(), rampart_store::StoreError> {
        let (epoch, in_hand) = {
            let mut st = self.state();
            let epoch = st.begin_scan();
            (epoch, (st.known.len() < ACTIVE_LIMIT).then(|| st.known.clone()))
        };
        self.renew_leases().await;
        let Some(in_hand) = in_hand else { return Ok(()) };
        let due = self.store.queue_due_except(now(), in_hand.len() + SCAN_LIMIT, in_hand).await?;
        {
            let mut st = self.state();
            for entry in due {
                st.take(entry, epoch, self.options.per_domain_concurrency);
            }
        }
        self.fill();
        Ok(())
    }

    /// On a store shared by several nodes: keeps the leases of the recipients in hand, every
    /// [`QueueStore::queue_lease_renewal`], so an attempt longer than the lease is not made a
    /// second time by another node. A failed renewal is logged and tried at the next scan.
    async fn renew_leases(&self) {
        let Some(every) = self.store.queue_lease_renewal() else { return };
        let ids: Vec<i64> = {
            let mut st = self.state();
            if st.renewed.is_some_and(|t| t.elapsed() < every) {
                return;
            }
            st.renewed = Some(Instant::now());
            st.known.iter().copied().collect()
        };
        if let Err(e) = self.store.queue_renew(ids, now()).await {
            self.state().renewed = None;
            warn!(event = "queue_lease_renew_failed", error = %e.chain());
        }
    }

    /// A job's recipients are recorded: they leave the hand, and scans that may have read
    /// them before the record are told to skip them.
    fn forget(&self, job: &Job) {
        self.state().forget(job);
    }
}

impl State {
    /// Counts a new scan; returns its number.
    fn begin_scan(&mut self) -> u64 {
        self.epoch += 1;
        let epoch = self.epoch;
        // Recorded before this scan started: the store already has their new state.
        self.finished.retain(|_, e| *e >= epoch);
        epoch
    }

    fn forget(&mut self, job: &Job) {
        for r in &job.rcpts {
            self.known.remove(&r.id);
            self.finished.insert(r.id, self.epoch);
        }
    }

    /// Puts the recipients of `entry`, read by scan number `epoch`, into their domains'
    /// lanes: one job per domain, leaving out recipients already in hand and those recorded
    /// since that scan began.
    fn take(&mut self, mut entry: QueueEntry, epoch: u64, per_domain: usize) {
        let rcpts = std::mem::take(&mut entry.rcpts);
        let entry = Arc::new(entry);
        let mut jobs: Vec<Job> = Vec::new();
        for r in rcpts {
            let recorded_since = self.finished.get(&r.id).is_some_and(|e| *e >= epoch);
            if recorded_since || !self.known.insert(r.id) {
                continue;
            }
            match jobs.iter_mut().find(|j| j.domain == r.domain) {
                Some(j) => j.rcpts.push(r),
                None => jobs.push(Job {
                    entry: entry.clone(),
                    domain: r.domain.clone(),
                    rcpts: vec![r],
                }),
            }
        }
        for job in jobs {
            self.lanes
                .entry(job.domain.clone())
                .or_insert_with(|| Lane::new(per_domain))
                .jobs
                .push_back(job);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_store::{QueueRcpt, RcptState};

    fn entry(id: &str, rcpts: &[(i64, &str)]) -> QueueEntry {
        let rcpts = rcpts
            .iter()
            .map(|&(id, domain)| QueueRcpt {
                id,
                rcpt: format!("r{id}@{domain}"),
                domain: domain.into(),
                state: RcptState::Pending,
                attempts: 0,
                next_attempt: 0,
                last_error: String::new(),
            })
            .collect();
        QueueEntry {
            id: id.into(),
            sender: "s@local.test".into(),
            size: 1,
            smtputf8: false,
            is_dsn: false,
            created: 0,
            account: String::new(),
            held: false,
            rcpts,
        }
    }

    fn jobs(st: &State, domain: &str) -> Vec<(String, Vec<i64>)> {
        st.lanes[domain]
            .jobs
            .iter()
            .map(|j| (j.entry.id.clone(), j.rcpts.iter().map(|r| r.id).collect()))
            .collect()
    }

    #[test]
    fn a_message_becomes_one_job_per_domain() {
        let mut st = State::default();
        let epoch = st.begin_scan();
        st.take(
            entry("A", &[(1, "a.test"), (2, "b.test"), (3, "a.test")]),
            epoch,
            4,
        );
        st.take(entry("B", &[(4, "a.test")]), epoch, 4);
        assert_eq!(
            jobs(&st, "a.test"),
            [("A".to_string(), vec![1, 3]), ("B".to_string(), vec![4])]
        );
        assert_eq!(jobs(&st, "b.test"), [("A".to_string(), vec![2])]);
        assert_eq!(st.known.len(), 4);
    }

    #[test]
    fn recipients_in_hand_or_just_recorded_are_not_taken_twice() {
        let mut st = State::default();
        let first = st.begin_scan();
        st.take(entry("A", &[(1, "a.test"), (2, "a.test")]), first, 4);
        // The next scan reads them again while they are still in hand.
        let second = st.begin_scan();
        st.take(entry("A", &[(1, "a.test"), (2, "a.test")]), second, 4);
        assert_eq!(st.lanes["a.test"].jobs.len(), 1);
        // Recorded while a third scan runs: that scan may have read them as still due.
        let third = st.begin_scan();
        let job = st
            .lanes
            .get_mut("a.test")
            .unwrap()
            .jobs
            .pop_front()
            .unwrap();
        st.forget(&job);
        st.take(entry("A", &[(1, "a.test"), (2, "a.test")]), third, 4);
        assert!(st.lanes["a.test"].jobs.is_empty());
        // A scan that starts after the record reads the store's new state, so what it finds
        // due (a retry, say) is taken again.
        let fourth = st.begin_scan();
        assert!(st.finished.is_empty());
        st.take(entry("A", &[(2, "a.test")]), fourth, 4);
        assert_eq!(jobs(&st, "a.test"), [("A".to_string(), vec![2])]);
    }
}

#[cfg(test)]
mod runner_tests;
