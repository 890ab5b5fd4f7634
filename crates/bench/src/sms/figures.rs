//! What an SMS phase reports besides the figures every phase has (`Row`).

use hdrhistogram::Histogram;

use super::texts::Counts;

/// p50, p99 and the maximum of a histogram of µs, in ms (all 0 when it is empty).
#[derive(Debug, Clone, Copy, Default)]
pub struct Lat {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub n: u64,
}

impl Lat {
    pub fn of(h: &Histogram<u64>) -> Lat {
        if h.is_empty() {
            return Lat::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Lat { p50: ms(h.value_at_quantile(0.5)), p99: ms(h.value_at_quantile(0.99)), max: ms(h.max()), n: h.len() }
    }
}

#[derive(Debug, Clone, Default)]
pub struct SmsFigures {
    /// The phase's counts: texts sent (of them joining open conversations), stored, not stored,
    /// offers, second texts on the desktop, replies at the provider, errors.
    pub counts: Counts,
    /// Webhooks answered 200 per second, from the phase's start to the last of them.
    pub stored_per_s: f64,
    /// Webhook sent → 200.
    pub stored: Lat,
    /// First text sent → offer on the desktop (the row's p50/p99/p99.9 are the same histogram's).
    pub offered: Lat,
    /// Second text sent → the message on the agent's desktop.
    pub joined: Lat,
    /// SendReply leaving the desktop → the provider receiving the REST send.
    pub to_provider: Lat,
    /// SendReply leaving the desktop → its ack.
    pub reply_acked: Lat,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared::hist;

    #[test]
    fn latencies_read_in_ms_and_an_empty_histogram_reads_zero() {
        let mut h = hist();
        for us in [1000, 2000, 3000, 50_000] {
            h.record(us).unwrap();
        }
        let l = Lat::of(&h);
        assert_eq!(l.n, 4);
        assert!((l.p50 - 2.0).abs() < 0.01 && (l.max - 50.0).abs() < 0.1, "{l:?}");
        assert_eq!(Lat::of(&hist()).max, 0.0);
    }
}
