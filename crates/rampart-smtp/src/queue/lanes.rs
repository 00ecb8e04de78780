//! Lanes: the due work of one destination domain and the connections that carry it.
//!
//! A lane holds jobs (the recipients of one message in the domain), its workers and its idle
//! connections. A worker holds one of the `concurrency` slots and delivers the lane's jobs one
//! after another over one connection (RSET between them, `outbound::Session`), so a backlog
//! costs one TCP and TLS handshake per `MESSAGES_PER_CONNECTION` messages instead of one per
//! message. When the lane runs dry the connection waits `IDLE_TIME` for the next job of the
//! domain without holding a slot. Connections are never shared between domains: each keeps
//! its domain's route and TLS policy.
//!
//! A lane runs up to `per_domain_concurrency` workers. When a connection cannot be opened
//! while other workers of the lane are delivering, the job goes back to the lane and the lane
//! runs one worker fewer (the remote may limit connections); when no other worker is left, the
//! destination is unreachable and every job waiting in the lane gets the same result (deferred
//! on the retry schedule, or bounced for a null MX) instead of each trying again.
//!
//! The decisions are plain functions on [`Lane`] and [`plan`], tested below without sockets;
//! the workers that act on them are in [`super::worker`].

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rampart_store::{QueueEntry, QueueRcpt};

use crate::outbound::Session;

/// How long an idle connection waits for the domain's next message (Postfix's
/// smtp_connection_cache_time_limit); swept by the runner's loop, so up to a second more.
pub(super) const IDLE_TIME: Duration = Duration::from_secs(2);

/// The recipients of one queued message in one domain.
pub(super) struct Job {
    pub entry: Arc<QueueEntry>,
    pub domain: String,
    pub rcpts: Vec<QueueRcpt>,
}

/// One destination domain's jobs, workers and idle connections. `S` is the connection type:
/// an `outbound::Session` in the server, a marker in the tests.
pub(super) struct Lane<S = Session> {
    pub jobs: VecDeque<Job>,
    pub workers: usize,
    /// Workers allowed at once: `most`, lowered when connections fail while other workers
    /// deliver, raised again by every connection that opens.
    pub limit: usize,
    /// `per_domain_concurrency`.
    most: usize,
    idle: Vec<(S, Instant)>,
}

impl<S> Lane<S> {
    pub fn new(most: usize) -> Lane<S> {
        Lane {
            jobs: VecDeque::new(),
            workers: 0,
            limit: most,
            most,
            idle: Vec::new(),
        }
    }

    /// Nothing waits, works or idles here: the lane can be forgotten.
    pub fn unused(&self) -> bool {
        self.jobs.is_empty() && self.workers == 0 && self.idle.is_empty()
    }

    /// More workers this lane could use now: no more than its limit allows, and no more than
    /// one per job not yet being delivered.
    pub fn wants(&self) -> usize {
        self.limit
            .saturating_sub(self.workers)
            .min(self.jobs.len().saturating_sub(self.workers))
    }

    /// A connection to the domain opened: it may take one more worker again.
    pub fn opened(&mut self) {
        self.limit = (self.limit + 1).min(self.most);
    }

    /// A worker could open no connection for `job`. With other workers delivering, the job
    /// waits for them and the lane allows one worker fewer; else the destination is down and
    /// the job and every job waiting behind it are returned, to get that worker's result.
    pub fn unreachable(&mut self, job: Job) -> Vec<Job> {
        if self.workers > 1 {
            self.jobs.push_front(job);
            self.limit = (self.workers - 1).max(1);
            return Vec::new();
        }
        self.limit = self.most;
        std::iter::once(job).chain(self.jobs.drain(..)).collect()
    }

    /// Keeps a connection that has finished its work, for the domain's next job.
    pub fn park(&mut self, session: S, now: Instant) {
        self.idle.push((session, now));
    }

    /// The most recently parked connection that has not waited `IDLE_TIME` yet, and those
    /// that have (to be closed: the server may have dropped them by now).
    pub fn unpark(&mut self, now: Instant) -> (Option<S>, Vec<S>) {
        let expired = self.expired(now);
        (self.idle.pop().map(|(s, _)| s), expired)
    }

    /// Takes out the idle connections that have waited `IDLE_TIME` or longer.
    pub fn expired(&mut self, now: Instant) -> Vec<S> {
        let (old, fresh) = std::mem::take(&mut self.idle)
            .into_iter()
            .partition(|(_, since)| now.duration_since(*since) >= IDLE_TIME);
        self.idle = fresh;
        old.into_iter().map(|(s, _)| s).collect()
    }
}

/// Hands out up to `free` slots as new workers, one per lane in turn, lanes with the fewest
/// workers first: no domain waits behind a busy one. Counts the workers in their lanes and
/// returns the domains to start them for.
pub(super) fn plan<S>(lanes: &mut HashMap<String, Lane<S>>, mut free: usize) -> Vec<String> {
    let mut candidates: Vec<(&String, &mut Lane<S>)> =
        lanes.iter_mut().filter(|(_, l)| l.wants() > 0).collect();
    candidates.sort_by_key(|(_, l)| l.workers);
    let mut start = Vec::new();
    while free > 0 && !candidates.is_empty() {
        for (domain, lane) in candidates.iter_mut() {
            if free == 0 {
                break;
            }
            if lane.wants() > 0 {
                lane.workers += 1;
                free -= 1;
                start.push(domain.to_string());
            }
        }
        candidates.retain(|(_, l)| l.wants() > 0);
    }
    start
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_store::RcptState;

    fn job(id: i64, domain: &str) -> Job {
        let entry = QueueEntry {
            id: format!("Q{id}"),
            sender: "s@local.test".into(),
            size: 1,
            smtputf8: false,
            is_dsn: false,
            created: 0,
            account: String::new(),
            held: false,
            rcpts: vec![],
        };
        let rcpt = QueueRcpt {
            id,
            rcpt: format!("r{id}@{domain}"),
            domain: domain.into(),
            state: RcptState::Pending,
            attempts: 0,
            next_attempt: 0,
            last_error: String::new(),
        };
        Job {
            entry: Arc::new(entry),
            domain: domain.into(),
            rcpts: vec![rcpt],
        }
    }

    fn lane(most: usize, jobs: i64) -> Lane<u32> {
        let mut l = Lane::new(most);
        for n in 0..jobs {
            l.jobs.push_back(job(n, "a.test"));
        }
        l
    }

    #[test]
    fn a_lane_wants_a_worker_per_waiting_job_up_to_its_limit() {
        assert_eq!(lane(4, 0).wants(), 0);
        assert_eq!(lane(4, 2).wants(), 2);
        assert_eq!(lane(4, 100).wants(), 4);
        let mut l = lane(4, 100);
        l.workers = 3;
        assert_eq!(l.wants(), 1);
        l.limit = 2;
        assert_eq!(l.wants(), 0, "a lowered limit below the workers running");
    }

    #[test]
    fn slots_go_round_the_lanes_fewest_workers_first() {
        let mut lanes = HashMap::new();
        lanes.insert("busy.test".to_string(), lane(4, 100));
        lanes.insert("quiet.test".to_string(), lane(4, 1));
        lanes.insert("new.test".to_string(), lane(4, 100));
        lanes.get_mut("busy.test").unwrap().workers = 3;
        let start = plan(&mut lanes, 4);
        // new.test and quiet.test come before busy.test; quiet.test has one job, one worker.
        assert_eq!(start.len(), 4);
        assert_eq!(start.iter().filter(|d| *d == "quiet.test").count(), 1);
        assert_eq!(start.iter().filter(|d| *d == "busy.test").count(), 1);
        assert_eq!(start.iter().filter(|d| *d == "new.test").count(), 2);
        assert_eq!(lanes["new.test"].workers, 2);
        assert_eq!(lanes["busy.test"].workers, 4);
        // Every lane at its limit: the free slots stay free.
        assert_eq!(plan(&mut lanes, 10), vec!["new.test", "new.test"]);
        assert!(plan(&mut lanes, 10).is_empty());
    }

    #[test]
    fn no_slot_no_worker() {
        let mut lanes = HashMap::new();
        lanes.insert("a.test".to_string(), lane(4, 10));
        assert!(plan(&mut lanes, 0).is_empty());
        assert_eq!(lanes["a.test"].workers, 0);
    }

    #[test]
    fn a_failed_connection_beside_others_lowers_the_limit_and_keeps_the_job() {
        let mut l = lane(4, 5);
        l.workers = 3;
        let given_up = l.unreachable(job(99, "a.test"));
        assert!(given_up.is_empty());
        assert_eq!(
            l.jobs.front().unwrap().rcpts[0].id,
            99,
            "the job is next in line"
        );
        assert_eq!(l.limit, 2);
        // Each connection that opens raises the limit again, up to per_domain_concurrency.
        l.opened();
        l.opened();
        l.opened();
        assert_eq!(l.limit, 4);
    }

    #[test]
    fn the_last_worker_failing_gives_up_the_whole_lane() {
        let mut l = lane(4, 3);
        l.workers = 1;
        l.limit = 1;
        let given_up = l.unreachable(job(99, "a.test"));
        assert_eq!(
            given_up.iter().map(|j| j.rcpts[0].id).collect::<Vec<_>>(),
            [99, 0, 1, 2]
        );
        assert!(l.jobs.is_empty());
        assert_eq!(l.limit, 4, "the next attempt starts afresh");
    }

    #[test]
    fn idle_connections_are_reused_while_fresh_and_swept_after() {
        let t0 = Instant::now();
        let mut l: Lane<u32> = Lane::new(4);
        l.park(1, t0);
        l.park(2, t0 + Duration::from_secs(1));
        assert!(!l.unused());
        // The most recent first.
        assert_eq!(
            l.unpark(t0 + Duration::from_millis(1500)),
            (Some(2), vec![])
        );
        // Too old to trust: handed back to be closed, not to be used.
        assert_eq!(l.unpark(t0 + IDLE_TIME), (None, vec![1]));
        assert!(l.unused());
        l.park(3, t0);
        l.park(4, t0 + Duration::from_secs(1));
        assert_eq!(l.expired(t0 + IDLE_TIME), vec![3]);
        assert_eq!(l.expired(t0 + IDLE_TIME), Vec::<u32>::new());
        assert_eq!(l.expired(t0 + IDLE_TIME * 2), vec![4]);
    }
}
