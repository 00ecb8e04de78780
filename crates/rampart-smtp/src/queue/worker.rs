//! Workers: each holds one of the `concurrency` slots and delivers its lane's jobs in order
//! over one connection, reusing it while it stays healthy ([`super::lanes`] decides how many
//! run and what happens when a destination cannot be reached), and has every result recorded
//! ([`super::record`]) in the background while it goes on with the next job.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::OwnedSemaphorePermit;
use tracing::warn;

use super::Runner;
use super::lanes::{Job, Lane, plan};
use crate::outbound::{self, Attempt, Lost, RcptResult, Session, all, temporary};

/// Messages sent over one connection before it is closed and another opened (Postfix's
/// smtp_connection_reuse_count_limit is unlimited; a bound spreads a long backlog over the
/// MX hosts again and limits what one connection's state can hold).
const MESSAGES_PER_CONNECTION: u32 = 100;
/// Age after which a connection takes no more messages (Postfix's
/// smtp_connection_reuse_time_limit).
const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);
/// Jobs a worker delivers before it gives its slot back, so that other lanes get a turn.
const JOBS_PER_WORKER: usize = 100;

fn quit_later(sessions: impl IntoIterator<Item = Session>) {
    for s in sessions {
        tokio::spawn(s.quit());
    }
}

impl Runner {
    /// Starts workers where lanes have jobs waiting and room for another, as far as the free
    /// slots go ([`plan`]).
    pub(super) fn fill(self: &Arc<Self>) {
        let start: Vec<(String, OwnedSemaphorePermit)> = {
            let mut st = self.state();
            let domains = plan(&mut st.lanes, self.slots.available_permits());
            // Slots are only taken here, under the state lock, so the ones just counted as
            // free are still free.
            domains
                .into_iter()
                .map(|d| {
                    (
                        d,
                        self.slots
                            .clone()
                            .try_acquire_owned()
                            .expect("counted free"),
                    )
                })
                .collect()
        };
        for (domain, permit) in start {
            tokio::spawn(self.clone().work(domain, permit));
        }
    }

    /// One worker: the lane's jobs in order over one connection (a new one when it breaks or
    /// is used up), until the lane is empty or the worker has had its share.
    async fn work(self: Arc<Self>, domain: String, _slot: OwnedSemaphorePermit) {
        let (mut session, expired) = self.lane(&domain, |l| l.unpark(Instant::now()));
        quit_later(expired);
        for _ in 0..JOBS_PER_WORKER {
            let Some(job) = self.lane(&domain, |l| l.jobs.pop_front()) else {
                break;
            };
            if let Err((job, result)) = self.deliver(&domain, &mut session, job).await {
                self.unreachable(&domain, job, result);
                break;
            }
            if session
                .as_ref()
                .is_some_and(|s| !s.reusable(MESSAGES_PER_CONNECTION, CONNECTION_LIFETIME))
            {
                quit_later(session.take());
            }
        }
        self.lane(&domain, |l| {
            l.workers -= 1;
            if let Some(s) = session {
                l.park(s, Instant::now());
            }
        });
        self.fill();
    }

    /// Runs `f` on the lane of `domain`, which exists while it has workers (`close_idle`
    /// only forgets unused lanes).
    fn lane<R>(&self, domain: &str, f: impl FnOnce(&mut Lane) -> R) -> R {
        f(self
            .state()
            .lanes
            .get_mut(domain)
            .expect("a lane lives while it has workers"))
    }

    /// Closes idle connections past their time and forgets lanes with nothing left.
    pub(super) fn close_idle(&self) {
        let now = Instant::now();
        let mut st = self.state();
        let expired: Vec<Session> = st.lanes.values_mut().flat_map(|l| l.expired(now)).collect();
        st.lanes.retain(|_, l| !l.unused());
        drop(st);
        quit_later(expired);
    }

    /// Delivers one job and has its results recorded. Err: no connection could be opened for
    /// the domain; the job is untouched and the error is the result for every recipient.
    async fn deliver(
        self: &Arc<Self>,
        domain: &str,
        session: &mut Option<Session>,
        job: Job,
    ) -> Result<(), (Job, RcptResult)> {
        let message = match self.store.queue_message(&job.entry.id).await {
            Ok(m) => m,
            Err(e) => {
                // Deleted by the administrator since the scan, or a store failure: the next
                // scan finds whatever is still due.
                warn!(event = "queue_read_failed", id = %job.entry.id, error = %e.chain());
                self.forget(&job);
                return Ok(());
            }
        };
        let addresses: Vec<String> = job.rcpts.iter().map(|r| r.rcpt.clone()).collect();
        let attempt = Attempt {
            id: &job.entry.id,
            sender: &job.entry.sender,
            rcpts: &addresses,
            message: &message,
            smtputf8: job.entry.smtputf8,
        };
        let results = match self.send(domain, session, &attempt).await {
            Ok(results) => results,
            Err(result) => return Err((job, result)),
        };
        self.spawn_record(job, results, Some(message));
        Ok(())
    }

    /// Sends over the open session or a new one. A session that breaks before the end of the
    /// message has accepted nothing, and the message gets one more try at once: over a fresh
    /// connection when a reused one broke (the server may have dropped it), else to the next
    /// host. Err only when the first connection cannot be opened.
    async fn send(
        &self,
        domain: &str,
        session: &mut Option<Session>,
        a: &Attempt<'_>,
    ) -> Result<Vec<RcptResult>, RcptResult> {
        // Some(avoid) once the first try broke early: the address to avoid, if any.
        let mut retry: Option<Option<(SocketAddr, String)>> = None;
        loop {
            if session.is_none() {
                match outbound::connect(&self.outbound, domain, a.id, retry.clone().flatten()).await
                {
                    Ok(s) => {
                        self.lane(domain, Lane::opened);
                        *session = Some(s);
                    }
                    Err(r) if retry.is_none() => return Err(r),
                    Err(r) => return Ok(all(a.rcpts.len(), r)),
                }
            }
            let s = session.as_mut().expect("opened above");
            let fresh = s.transactions == 0;
            let where_ = format!("{} [{}]", s.host, s.addr);
            match s.send(a).await {
                Ok(results) => return Ok(results),
                Err(Lost::Early(why)) if retry.is_none() => {
                    retry = Some(fresh.then(|| (s.addr, format!("{where_}: {why}"))));
                    *session = None;
                }
                Err(Lost::Early(why) | Lost::Late(why)) => {
                    *session = None;
                    return Ok(all(a.rcpts.len(), temporary(format!("{where_}: {why}"))));
                }
            }
        }
    }

    /// No connection to the domain: the lane decides whether the job waits for the other
    /// workers or the whole lane gets `result`.
    fn unreachable(self: &Arc<Self>, domain: &str, job: Job, result: RcptResult) {
        for job in self.lane(domain, |l| l.unreachable(job)) {
            let results = all(job.rcpts.len(), result.clone());
            self.spawn_record(job, results, None);
        }
    }

    /// Records in the background, so the worker goes on with the next job while the store
    /// commits (concurrent records share one commit); the recipients stay in hand until then.
    fn spawn_record(
        self: &Arc<Self>,
        job: Job,
        results: Vec<RcptResult>,
        message: Option<Vec<u8>>,
    ) {
        let runner = self.clone();
        tokio::spawn(async move {
            runner
                .record(&job.entry, &job.rcpts, results, message)
                .await;
            runner.forget(&job);
        });
    }
}
