//! Backoff for failed authentication: after a few failures from one address (or for one agent)
//! each further attempt waits longer, so guessing tokens is slow and shows up in logs and metrics.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Throttle {
    state: Mutex<HashMap<String, Entry>>,
    /// Failures allowed within `window` before backoff starts.
    free: u32,
    window: Duration,
    /// The first block; each further failure doubles it, up to `max_block`.
    base_block: Duration,
    max_block: Duration,
}

struct Entry {
    failures: u32,
    first: Instant,
    blocked_until: Option<Instant>,
}

const MAX_TRACKED: usize = 100_000;

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new(10, Duration::from_secs(60), Duration::from_secs(2), Duration::from_secs(300))
    }
}

impl Throttle {
    pub fn new(free: u32, window: Duration, base_block: Duration, max_block: Duration) -> Throttle {
        Throttle { state: Mutex::default(), free, window, base_block, max_block }
    }

    /// `free` failures a minute before backoff starts.
    pub fn with_free(free: u32) -> Throttle {
        Throttle { free, ..Throttle::default() }
    }

    /// How long `key` must still wait, if it is blocked.
    pub fn blocked(&self, key: &str) -> Option<Duration> {
        let state = self.state.lock().expect("throttle");
        let until = state.get(key)?.blocked_until?;
        until.checked_duration_since(Instant::now())
    }

    /// Records a failure; returns the block it starts, if any.
    pub fn failure(&self, key: &str) -> Option<Duration> {
        let now = Instant::now();
        let mut state = self.state.lock().expect("throttle");
        if state.len() >= MAX_TRACKED {
            let window = self.window;
            state.retain(|_, e| now.duration_since(e.first) < window || e.blocked_until.is_some_and(|u| u > now));
        }
        let e = state.entry(key.to_string()).or_insert(Entry { failures: 0, first: now, blocked_until: None });
        if now.duration_since(e.first) >= self.window && e.blocked_until.is_none_or(|u| u <= now) {
            *e = Entry { failures: 0, first: now, blocked_until: None };
        }
        e.failures += 1;
        if e.failures <= self.free {
            return None;
        }
        let doublings = (e.failures - self.free - 1).min(16);
        let block = (self.base_block * (1u32 << doublings)).min(self.max_block);
        e.blocked_until = Some(now + block);
        e.first = now;
        Some(block)
    }

    /// A success ends the backoff of `key` (used for an agent's own id, never for an address).
    pub fn success(&self, key: &str) {
        self.state.lock().expect("throttle").remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_after_the_free_failures_and_doubles() {
        let t = Throttle::new(3, Duration::from_secs(60), Duration::from_secs(1), Duration::from_secs(300));
        for _ in 0..3 {
            assert_eq!(t.failure("1.2.3.4"), None);
        }
        assert!(t.blocked("1.2.3.4").is_none());
        assert_eq!(t.failure("1.2.3.4"), Some(Duration::from_secs(1)));
        assert!(t.blocked("1.2.3.4").is_some());
        assert_eq!(t.failure("1.2.3.4"), Some(Duration::from_secs(2)));
        assert_eq!(t.failure("1.2.3.4"), Some(Duration::from_secs(4)));
        assert!(t.blocked("5.6.7.8").is_none());
        t.success("1.2.3.4");
        assert!(t.blocked("1.2.3.4").is_none());
    }
}
