//! A sliding-window event counter: timestamps of recent events, pruned as they age out.
//! It never keeps more than the threshold it is asked about (plus one), so a flood from one
//! client costs a bounded amount of memory.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct Window {
    events: VecDeque<Instant>,
}

impl Window {
    fn prune(&mut self, now: Instant, window: Duration) {
        while self.events.front().is_some_and(|t| now.duration_since(*t) >= window) {
            self.events.pop_front();
        }
    }

    /// Records an event; returns the events within `window`, counting at most `cap + 1`.
    pub fn hit(&mut self, now: Instant, window: Duration, cap: u32) -> usize {
        self.prune(now, window);
        self.events.push_back(now);
        while self.events.len() > cap as usize + 1 {
            self.events.pop_front();
        }
        self.events.len()
    }

    /// Nothing happened within `window`.
    pub fn is_stale(&self, now: Instant, window: Duration) -> bool {
        self.events.back().is_none_or(|t| now.duration_since(*t) >= window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_within_the_window_and_caps_memory() {
        let mut w = Window::default();
        let t0 = Instant::now();
        assert_eq!(w.hit(t0, Duration::from_secs(10), 100), 1);
        assert_eq!(w.hit(t0 + Duration::from_secs(5), Duration::from_secs(10), 100), 2);
        assert_eq!(w.hit(t0 + Duration::from_secs(12), Duration::from_secs(10), 100), 2);
        assert!(w.is_stale(t0 + Duration::from_secs(30), Duration::from_secs(10)));
        for i in 0..1000 {
            w.hit(t0 + Duration::from_millis(i), Duration::from_secs(10), 3);
        }
        assert_eq!(w.events.len(), 4);
    }
}
