//! What a CTI phase reports besides the figures every phase has (`Row`).

use std::time::Instant;

use hdrhistogram::Histogram;

use super::calls::{Counts, Release};
use crate::shared::hist;

#[derive(Debug, Clone, Default)]
pub struct CtiFigures {
    /// Route requests sent (route-rate phases) or releases sent (held-call phases).
    pub requests: u64,
    /// RouteCall answers per second (route-rate) or held calls rung per second (held-call).
    pub answers_per_s: f64,
    pub counts: Counts,
    /// The slowest of the phase's latencies (ms).
    pub max_ms: f64,
    /// Held-call phases: from the release's ack reaching the platform to the ring, p50 / p99 ms
    /// (0 where the ring came first), and how many rings came before the ack.
    pub from_ack: Option<(f64, f64)>,
    pub ring_before_ack: u64,
    /// Held-call phases: releases no ring answered (the freed agent's queues had no call left).
    pub unrung: u64,
}

/// A held-call phase's timings, from its releases: (release sent → ring, release acked → ring
/// (0 when the ring came first), rings before their ack, releases never answered by a ring, the
/// last ring).
pub struct ReleaseTimes {
    pub to_ring: Histogram<u64>,
    pub from_ack: Histogram<u64>,
    pub ring_before_ack: u64,
    pub unrung: u64,
    pub last_ring: Option<Instant>,
}

impl ReleaseTimes {
    pub fn of(releases: &[Release]) -> ReleaseTimes {
        let mut t = ReleaseTimes { to_ring: hist(), from_ack: hist(), ring_before_ack: 0, unrung: 0, last_ring: None };
        for r in releases {
            let Some(rang) = r.rang else {
                t.unrung += 1;
                continue;
            };
            let _ = t.to_ring.record((rang.saturating_duration_since(r.sent).as_micros() as u64).max(1));
            if let Some(acked) = r.acked {
                if rang < acked {
                    t.ring_before_ack += 1;
                }
                let _ = t.from_ack.record((rang.saturating_duration_since(acked).as_micros() as u64).max(1));
            }
            t.last_ring = t.last_ring.max(Some(rang));
        }
        t
    }
}

/// p50 and p99 of a histogram of µs, in ms (0 when empty).
pub fn p50_p99(h: &Histogram<u64>) -> (f64, f64) {
    if h.is_empty() {
        return (0.0, 0.0);
    }
    (h.value_at_quantile(0.5) as f64 / 1000.0, h.value_at_quantile(0.99) as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rings_before_their_ack_count_zero_from_it_and_releases_never_rung_are_counted() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let releases = [
            Release { sent: t0, acked: Some(ms(1)), rang: Some(ms(3)) },
            // The ring before the ack (the release's own call made the offer).
            Release { sent: t0, acked: Some(ms(4)), rang: Some(ms(2)) },
            Release { sent: t0, acked: Some(ms(1)), rang: None },
        ];
        let t = ReleaseTimes::of(&releases);
        assert_eq!((t.ring_before_ack, t.unrung, t.last_ring), (1, 1, Some(ms(3))));
        assert_eq!(t.to_ring.len(), 2);
        assert_eq!(t.from_ack.min(), 1, "a ring before its ack counts as (next to) nothing");
        assert!(t.from_ack.max() >= 2000);
    }
}
