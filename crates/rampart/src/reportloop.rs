//! The schedule daily aggregate reports (DMARC, TLS-RPT) share: a run is due when the interval
//! has passed since the last one recorded in the store, so a restart neither repeats nor skips
//! one; the first start counts the interval from then. Nodes sharing a store (PostgreSQL)
//! agree which one runs it: the node that swaps the run's claim in the store first ([`claim`]).

use std::sync::Arc;
use std::time::Duration;

use rampart_store::prelude::*;
use tracing::warn;

/// How often the loop looks whether a run is due.
const CHECK_EVERY: Duration = Duration::from_secs(60);

/// Calls `run` whenever `interval` has passed since the time stored under `last_run` (which
/// `run` itself moves on when it has reported), waking the queue when it queued reports.
/// A failure is logged as `failed_event` and tried again at the next check.
pub async fn every<F, Fut>(
    store: Arc<dyn Store>,
    last_run: &'static str,
    interval: Duration,
    failed_event: &'static str,
    wakeup: Arc<tokio::sync::Notify>,
    run: F,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<usize>>,
{
    let interval = interval.as_secs() as i64;
    let now = || chrono::Utc::now().timestamp();
    loop {
        let last = store.state(last_run).await.ok().flatten().and_then(|v| v.parse::<i64>().ok());
        let due = match last {
            Some(t) => now() - t >= interval,
            None => {
                // First start: count the interval from now.
                let _ = store.set_state(last_run, &now().to_string()).await;
                false
            }
        };
        if due && claim(store.as_ref(), last_run, now()).await {
            match run().await {
                Ok(n) if n > 0 => wakeup.notify_one(),
                Ok(_) => {}
                Err(e) => warn!(event = failed_event, error = %format!("{e:#}")),
            }
        }
        tokio::time::sleep(CHECK_EVERY).await;
    }
}

/// How long a claimed run belongs to the node that claimed it; a node that dies mid-run leaves
/// the run to the others after this.
const CLAIM_FOR: i64 = 15 * 60;

/// Whether this node may do the run of `last_run` that is due at `now`: it swaps the claim key
/// (`{last_run}.claim`, holding when the current claim ends) from a claim that has ended (or
/// none) to its own, which only one node can do. A run that fails stays claimed until then.
async fn claim(store: &dyn Store, last_run: &str, now: i64) -> bool {
    let key = format!("{last_run}.claim");
    let current = match store.state(&key).await {
        Ok(v) => v,
        Err(e) => {
            warn!(event = "report_claim_failed", key = %key, error = %e);
            return false;
        }
    };
    if current.as_deref().and_then(|v| v.parse::<i64>().ok()).is_some_and(|until| until > now) {
        return false;
    }
    store.swap_state(&key, current.as_deref(), &(now + CLAIM_FOR).to_string()).await.unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two nodes (two handles on one store) finding the same run due at once: one claims it;
    /// the other may only once the claim has ended (its node died mid-run).
    #[tokio::test]
    async fn one_node_claims_a_due_run() {
        let dir = tempfile::tempdir().unwrap();
        let a = rampart_store::SqliteStore::open(dir.path()).unwrap();
        let b = a.clone();
        let now = 1_000_000;
        let (x, y) = tokio::join!(claim(&a, "dmarc.last_run", now), claim(&b, "dmarc.last_run", now));
        assert!(x ^ y, "exactly one node runs it: {x} {y}");
        assert!(!claim(&b, "dmarc.last_run", now + CLAIM_FOR - 1).await);
        assert!(claim(&b, "dmarc.last_run", now + CLAIM_FOR).await);
        // Another report's run is claimed on its own.
        assert!(claim(&a, "tlsrpt.last_run", now).await);
    }
}
