//! The schedule daily aggregate reports (DMARC, TLS-RPT) share: a run is due when the interval
//! has passed since the last one recorded in the store, so a restart neither repeats nor skips
//! one; the first start counts the interval from then.

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
        if due {
            match run().await {
                Ok(n) if n > 0 => wakeup.notify_one(),
                Ok(_) => {}
                Err(e) => warn!(event = failed_event, error = %format!("{e:#}")),
            }
        }
        tokio::time::sleep(CHECK_EVERY).await;
    }
}
