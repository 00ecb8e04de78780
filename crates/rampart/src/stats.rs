//! The dashboard's history: a tracing layer counts the server's own security and mail events
//! per hour (the same log lines fail2ban reads), and `flush` adds the counts to the store every
//! few seconds, where a week of them is kept. No Prometheus is needed to see them.
//!
//! Series names: `received` (MX), `submitted`, `refused` and `refused:REASON`, `quarantined`,
//! `delivered`, `deferred`, `failed` (outbound), `bounced`, `login:PROTO`,
//! `login_failed:PROTO`, `ban`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// How often counts go to the store; the dashboard lags at most this much.
const FLUSH_EVERY: Duration = Duration::from_secs(5);
/// How long hourly counts are kept.
const KEEP_HOURS: i64 = 7 * 24;
/// Distinct refusal reasons counted per hour; more are summed as `refused:other`.
const MAX_REASONS: usize = 64;

type Counts = HashMap<(i64, String), u64>;

fn pending() -> &'static Mutex<Counts> {
    static PENDING: OnceLock<Mutex<Counts>> = OnceLock::new();
    PENDING.get_or_init(Mutex::default)
}

/// The fields a counted event may carry.
#[derive(Default)]
struct Fields {
    event: String,
    reason: String,
    listener: String,
    result: String,
    proto: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field.name(), value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.set(field.name(), format!("{value:?}"));
    }
}

impl Fields {
    fn set(&mut self, name: &str, value: String) {
        match name {
            "event" => self.event = value,
            "reason" => self.reason = value,
            "listener" => self.listener = value,
            "result" => self.result = value,
            "proto" => self.proto = value,
            _ => {}
        }
    }

    /// The series this event adds one to.
    fn series(&self) -> Vec<String> {
        let reason = if self.reason.is_empty() { "unknown" } else { self.reason.as_str() };
        match self.event.as_str() {
            "accepted" if self.listener == "smtp" => vec!["received".into()],
            "accepted" => vec!["submitted".into()],
            "message_refused" | "rcpt_refused" => vec!["refused".into(), format!("refused:{reason}")],
            "quarantined" => vec!["quarantined".into()],
            "delivery" if matches!(self.result.as_str(), "delivered" | "deferred" | "failed") => vec![self.result.clone()],
            "bounce" => vec!["bounced".into()],
            "auth_success" => vec![format!("login:{}", self.proto)],
            "auth_failure" => vec![format!("login_failed:{}", self.proto)],
            "ban" => vec!["ban".into()],
            _ => vec![],
        }
    }
}

/// Counts the events above; everything else passes untouched.
pub struct StatsLayer;

impl<S: Subscriber> Layer<S> for StatsLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut f = Fields::default();
        event.record(&mut f);
        let series = f.series();
        if series.is_empty() {
            return;
        }
        let hour = chrono::Utc::now().timestamp() / 3600;
        let mut counts = pending().lock().expect("stats lock");
        let reasons = counts.keys().filter(|(h, n)| *h == hour && n.starts_with("refused:")).count();
        for mut name in series {
            if name.starts_with("refused:") && reasons >= MAX_REASONS && !counts.contains_key(&(hour, name.clone())) {
                name = "refused:other".into();
            }
            *counts.entry((hour, name)).or_default() += 1;
        }
    }
}

/// Adds the pending counts to the store every few seconds, and forgets what is older than a
/// week once an hour. Counts that fail to store are kept for the next try.
pub async fn flush(store: Arc<dyn rampart_store::Store>) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    let mut last_prune = 0;
    loop {
        tick.tick().await;
        let batch: Vec<(i64, String, u64)> =
            std::mem::take(&mut *pending().lock().expect("stats lock")).into_iter().map(|((h, n), c)| (h, n, c)).collect();
        if !batch.is_empty()
            && let Err(e) = store.stats_add(&batch).await
        {
            tracing::warn!(event = "store_error", what = "dashboard counts", error = %e.chain());
            let mut counts = pending().lock().expect("stats lock");
            for (h, n, c) in batch {
                *counts.entry((h, n)).or_default() += c;
            }
        }
        let hour = chrono::Utc::now().timestamp() / 3600;
        if hour != last_prune {
            last_prune = hour;
            let _ = store.stats_prune(hour - KEEP_HOURS).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(event: &str, reason: &str, listener: &str) -> Fields {
        Fields { event: event.into(), reason: reason.into(), listener: listener.into(), ..Fields::default() }
    }

    #[test]
    fn events_map_to_series() {
        assert_eq!(f("accepted", "", "smtp").series(), ["received"]);
        assert_eq!(f("accepted", "", "submissions").series(), ["submitted"]);
        assert_eq!(f("rcpt_refused", "relay_denied", "smtp").series(), ["refused", "refused:relay_denied"]);
        assert_eq!(Fields { event: "auth_failure".into(), proto: "web".into(), ..Fields::default() }.series(), ["login_failed:web"]);
        assert_eq!(Fields { event: "delivery".into(), result: "deferred".into(), ..Fields::default() }.series(), ["deferred"]);
        assert!(f("connect", "", "smtp").series().is_empty());
    }
}
