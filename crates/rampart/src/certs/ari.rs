//! ARI (RFC 9773) in the renewal loop: for each current ACME certificate, the CA's suggested
//! renewal window, one random moment chosen inside it, and when to ask the CA again. ARI only
//! ever brings a renewal earlier than the two-thirds rule (`acme::renew_at`): when the CA has
//! no ARI or cannot be reached, nothing here says "due" and that rule stays in charge.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rampart_tls::acme::RenewalWindow;
use rand::Rng;
use tracing::{info, warn};

/// Bounds on the CA's Retry-After (RFC 9773 §4.3.2 asks clients to clamp it to a reasonable
/// range): not more than once a minute, at least once a day.
const MIN_RECHECK: Duration = Duration::from_secs(60);
const MAX_RECHECK: Duration = Duration::from_secs(24 * 3600);
/// A CA whose directory has no `renewalInfo` is asked again this much later (the directory is
/// read once per account, so sooner would only repeat the same answer).
const NO_ARI_RECHECK: Duration = Duration::from_secs(6 * 3600);
/// After a failed fetch (§4.3.3): retry with backoff from this, doubling up to [`MAX_RECHECK`].
const FIRST_BACKOFF: Duration = Duration::from_secs(60);

/// What is known of one certificate's window.
struct Entry {
    window: Option<(i64, i64)>,
    /// The moment chosen inside the window (RFC 9773 §4.2: uniformly random).
    renew_at: Option<i64>,
    next_fetch: Instant,
    failures: u32,
}

/// The windows of the certificates being kept, by certificate id.
#[derive(Default)]
pub struct Schedule(HashMap<i64, Entry>);

impl Schedule {
    /// Whether the CA should be asked about certificate `id` now.
    pub fn fetch_due(&self, id: i64) -> bool {
        self.0.get(&id).is_none_or(|e| Instant::now() >= e.next_fetch)
    }

    /// Records the CA's answer about certificate `id` at Unix time `now`.
    pub fn record(&mut self, id: i64, names: &str, answer: Result<Option<RenewalWindow>, String>, now: i64) {
        let entry = self.0.entry(id).or_insert(Entry { window: None, renew_at: None, next_fetch: Instant::now(), failures: 0 });
        match answer {
            Ok(Some(w)) => {
                entry.failures = 0;
                entry.next_fetch = Instant::now() + w.retry_after.clamp(MIN_RECHECK, MAX_RECHECK);
                if entry.window != Some((w.start, w.end)) {
                    // A new or changed window: choose again (§4.2). A window already over
                    // means renew now.
                    let at = if w.end <= now { now } else { rand::rng().random_range(w.start..w.end) };
                    entry.window = Some((w.start, w.end));
                    entry.renew_at = Some(at);
                    info!(event = "acme_ari_window", id, names = %names, start = w.start, end = w.end, renew_at = at);
                }
            }
            Ok(None) => entry.next_fetch = Instant::now() + NO_ARI_RECHECK,
            Err(error) => {
                entry.failures += 1;
                let wait = FIRST_BACKOFF.saturating_mul(1 << (entry.failures - 1).min(10)).min(MAX_RECHECK);
                entry.next_fetch = Instant::now() + wait;
                // The window already known (if any) still holds until a new answer comes.
                warn!(event = "acme_ari_failed", id, names = %names, attempt = entry.failures, retry_in = wait.as_secs(), error = %error);
            }
        }
    }

    /// Whether the window asks for certificate `id` to be renewed at Unix time `now`.
    pub fn due(&self, id: i64, now: i64) -> bool {
        self.0.get(&id).and_then(|e| e.renew_at).is_some_and(|at| now >= at)
    }

    /// Drops what is known of a certificate that has been replaced (§4.3.2: a replaced
    /// certificate is not asked about again).
    pub fn forget(&mut self, id: i64) {
        self.0.remove(&id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(start: i64, end: i64, retry: u64) -> Result<Option<RenewalWindow>, String> {
        Ok(Some(RenewalWindow { start, end, retry_after: Duration::from_secs(retry) }))
    }

    #[test]
    fn a_past_window_is_due_now() {
        let mut s = Schedule::default();
        assert!(s.fetch_due(1) && !s.due(1, 1000));
        s.record(1, "a", window(100, 200, 3600), 1000);
        assert!(s.due(1, 1000));
        // Retry-After honoured: not asked again before it.
        assert!(!s.fetch_due(1));
    }

    #[test]
    fn a_future_window_picks_a_moment_inside_it() {
        for _ in 0..50 {
            let mut s = Schedule::default();
            s.record(1, "a", window(2000, 3000, 0), 1000);
            let at = s.0[&1].renew_at.unwrap();
            assert!((2000..3000).contains(&at), "{at}");
            assert!(!s.due(1, 1999) && s.due(1, 3000));
            // Retry-After 0 is clamped up to a minute.
            assert!(!s.fetch_due(1));
        }
    }

    #[test]
    fn the_same_window_keeps_its_moment_and_a_new_one_chooses_again() {
        let mut s = Schedule::default();
        s.record(1, "a", window(2000, 1_000_000, 60), 1000);
        let at = s.0[&1].renew_at;
        s.record(1, "a", window(2000, 1_000_000, 60), 1000);
        assert_eq!(s.0[&1].renew_at, at);
        s.record(1, "a", window(10, 20, 60), 1000);
        assert_eq!(s.0[&1].renew_at, Some(1000));
    }

    #[test]
    fn failures_and_no_ari_never_make_a_renewal_due() {
        let mut s = Schedule::default();
        s.record(1, "a", Err("down".into()), 1000);
        s.record(2, "b", Ok(None), 1000);
        assert!(!s.due(1, i64::MAX) && !s.due(2, i64::MAX));
        assert!(!s.fetch_due(1) && !s.fetch_due(2));
        // A failure keeps the window already known.
        s.record(3, "c", window(10, 20, 60), 1000);
        s.record(3, "c", Err("down".into()), 1000);
        assert!(s.due(3, 1000));
        s.forget(3);
        assert!(!s.due(3, 1000) && s.fetch_due(3));
    }
}
