//! The audit on the dashboard: the findings `rampart audit` prints, computed by the binary (its
//! [`crate::Dashboard::audit`] runs the CLI's own checks) in the background — at start, every
//! `web.audit_interval`, and when an admin asks — and served from the last report, so no
//! request waits for DNS lookups or certificate reads.
//!
//! Runs are numbered. `POST /api/v1/audit` asks for a run and answers the number of the run
//! that will cover the request; `GET /api/v1/audit` shows the last report with its number, so
//! a client knows when its run is done. Requests made during a run are served by one more run
//! after it (the change that prompted them may have come after the running one read the
//! store); any number of requests share that run.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tracing::info;

use crate::Services;
use crate::error::ApiResult;
use crate::session::Admin;

/// One finding, with the fields and words of `rampart audit --json`.
#[derive(Debug, Clone, Serialize)]
pub struct AuditFinding {
    /// `high`, `medium` or `low`.
    pub severity: &'static str,
    /// `dns`, `tls`, `config`, `passwords`, `web`, `storage`, `backup`, `blocklist`.
    pub area: &'static str,
    /// The domain, host, file, account or key it concerns.
    pub subject: String,
    pub problem: String,
    pub fix: String,
}

/// How often the loop looks at `web.audit_interval` again when it has nothing to do, so a
/// SIGHUP that changes it takes effect within this time.
const RECHECK: Duration = Duration::from_secs(60);

/// The last report and the requests for the next run.
#[derive(Default)]
pub struct Audits {
    state: Mutex<AuditState>,
    wake: Notify,
}

#[derive(Default)]
struct AuditState {
    /// Runs asked for so far; a run covers every request made before it started.
    requested: u64,
    running: bool,
    report: Option<Arc<Report>>,
}

struct Report {
    /// The requests it covers (`requested` when it started).
    run: u64,
    started: i64,
    finished: i64,
    /// None: the audit could not run (the server log says why).
    findings: Option<Vec<AuditFinding>>,
}

impl Audits {
    fn state(&self) -> std::sync::MutexGuard<'_, AuditState> {
        // Nothing panics while holding the lock; a poisoned lock still holds whole values.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks for a run; returns the number of the run that will cover it.
    fn request(&self) -> u64 {
        let mut st = self.state();
        st.requested += 1;
        self.wake.notify_one();
        st.requested
    }

    /// A request not yet covered by a finished or started run.
    fn asked(&self) -> bool {
        let st = self.state();
        st.requested > st.report.as_ref().map_or(0, |r| r.run)
    }

    async fn run(&self, dashboard: &dyn crate::Dashboard) {
        let run = {
            let mut st = self.state();
            st.running = true;
            st.requested
        };
        let started = crate::now();
        let findings = dashboard.audit().await;
        // None: the binary has logged why (event=audit_failed).
        if let Some(f) = &findings {
            let count = |s: &str| f.iter().filter(|x| x.severity == s).count();
            info!(event = "audit_finished", run, high = count("high"), medium = count("medium"), low = count("low"));
        }
        let mut st = self.state();
        st.running = false;
        st.report = Some(Arc::new(Report { run, started, finished: crate::now(), findings }));
    }
}

/// The background loop: a run at start and every `web.audit_interval` (neither when it is 0),
/// and one whenever an admin asks.
pub async fn keep_running(s: Arc<Services>) {
    let mut last: Option<Instant> = None;
    loop {
        let every = s.web.get().audit_interval;
        let due = !every.is_zero() && last.is_none_or(|t| t.elapsed() >= every);
        if due || s.audits.asked() {
            last = Some(Instant::now());
            s.audits.run(s.dashboard.as_ref()).await;
            continue;
        }
        let wait = match last {
            Some(t) if !every.is_zero() => every.saturating_sub(t.elapsed()).min(RECHECK),
            _ => RECHECK,
        };
        let _ = tokio::time::timeout(wait, s.audits.wake.notified()).await;
    }
}

/// `GET /api/v1/audit`: the last report, most severe findings first.
pub async fn report(State(s): State<Arc<Services>>, Admin(c): Admin) -> ApiResult<Json<Value>> {
    c.scope("stats")?;
    let (report, running) = {
        let st = s.audits.state();
        (st.report.clone(), st.running)
    };
    let every = s.web.get().audit_interval.as_secs();
    let body = match report {
        None => json!({ "run": 0, "running": running, "started": null, "computed": null, "failed": false,
                        "findings": [], "interval": every }),
        Some(r) => json!({ "run": r.run, "running": running, "started": r.started, "computed": r.finished,
                           "failed": r.findings.is_none(), "findings": r.findings.as_deref().unwrap_or_default(),
                           "interval": every }),
    };
    Ok(Json(body))
}

/// `POST /api/v1/audit`: run the audit again now, in the background.
pub async fn rerun(State(s): State<Arc<Services>>, Admin(c): Admin) -> ApiResult<Json<Value>> {
    c.scope("stats")?;
    let run = s.audits.request();
    info!(event = "audit_requested", proto = "web", run, by = %c.who());
    Ok(Json(json!({ "run": run })))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake;

    #[async_trait::async_trait]
    impl crate::Dashboard for Fake {
        async fn certificates(&self) -> Vec<crate::CertExpiry> {
            Vec::new()
        }
        async fn quota(&self, _: &str) -> Result<crate::AccountQuota, rampart_store::StoreError> {
            unreachable!("not asked")
        }
        async fn audit(&self) -> Option<Vec<AuditFinding>> {
            Some(vec![AuditFinding { severity: "high", area: "web", subject: "a@d.test".into(), problem: "p".into(), fix: "f".into() }])
        }
    }

    #[tokio::test]
    async fn runs_are_numbered_and_cover_earlier_requests() {
        let audits = Audits::default();
        assert!(!audits.asked());
        // The run at start covers no request.
        audits.run(&Fake).await;
        assert_eq!(audits.state().report.as_ref().map(|r| r.run), Some(0));
        // Two requests before the next run: that one run covers both.
        assert_eq!((audits.request(), audits.request()), (1, 2));
        assert!(audits.asked());
        audits.run(&Fake).await;
        assert!(!audits.asked());
        let st = audits.state();
        let report = st.report.as_ref().expect("a report");
        assert_eq!(report.run, 2);
        assert!(!st.running && report.findings.as_ref().is_some_and(|f| f.len() == 1));
    }
}
