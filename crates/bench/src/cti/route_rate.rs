//! Phase A, route rate: everyone ready and free; RouteCall for new calls (each to a queue drawn
//! from the seed, through that queue's routing point), unpaced with `--concurrency` callers and
//! then at each paced rate. Latency runs from the request leaving to its answer. Each call rung
//! is answered and released at once (one call after the other on a caller: a closed loop at
//! `max`), so the agents free up and the phase stays where it started; a call put on hold is
//! answered and released when WatchRoutes rings it.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use super::lifecycle::{Routed, answer, route};
use super::{CtiFigures, CtiPhases, wait_for};
use crate::phase::wait_offers;
use crate::rng::Rng;
use crate::row::{Decider, Row};
use crate::sample::snap;

impl CtiPhases<'_> {
    /// One row per rate: unpaced (`max`) first, then each of `paced`.
    pub async fn route_rate(&mut self, paced: &[u32]) -> anyhow::Result<Vec<Row>> {
        let n = self.args.interactions;
        self.calls.release_after_hold.store(true, Relaxed);
        let mut rows = Vec::new();
        for &rate in std::iter::once(&0).chain(paced) {
            let label = if rate == 0 {
                "CTI route call → answer, max".to_string()
            } else {
                format!("CTI route call → answer at {rate}/s")
            };
            self.calls.route_latency.lock().expect("lock").reset();
            self.calls.forget_rings();
            let ca = self.calls.counts();
            let a = snap(self.con, self.shared).await?;
            self.call_many(n, rate).await?;
            // Calls put on hold ring as agents free up; each is answered and released.
            let calls = self.calls.clone();
            wait_for(|| calls.on_hold() == 0, Duration::from_secs(30)).await;
            let counts = self.calls.counts() - ca;
            wait_offers(self.shared, a.offers + counts.rings + counts.rung_after_hold, Duration::from_secs(10)).await;
            let until = self.calls.epoch + Duration::from_micros(self.calls.last_answer_us.load(Relaxed));
            let b = snap(self.con, self.shared).await?;
            let mut row =
                Row::between(label.clone(), Decider::Cti, &a, &b, Some(until), Some(&self.calls.route_latency));
            let answers = counts.rings + counts.holds + counts.defaults;
            let secs = until.saturating_duration_since(a.at).as_secs_f64().max(1e-6);
            row.cti = Some(CtiFigures {
                requests: n as u64,
                answers_per_s: answers as f64 / secs,
                counts,
                max_ms: self.calls.route_latency.lock().expect("lock").max() as f64 / 1000.0,
                ..CtiFigures::default()
            });
            self.show_errors(&label);
            rows.push(row);
        }
        Ok(rows)
    }

    /// `n` calls, at `rate` per second (0: each caller starts its next call once the last one is
    /// released), over as many callers as `--concurrency`.
    async fn call_many(&self, n: usize, rate: u32) -> anyhow::Result<()> {
        let next = Arc::new(AtomicUsize::new(0));
        let start = tokio::time::Instant::now();
        let mut tasks = Vec::new();
        for lane in 0..self.platform.lanes() {
            let (platform, calls, next) = (self.platform.clone(), self.calls.clone(), next.clone());
            let (served, lines) = (self.served.clone(), self.lines.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Relaxed);
                    if i >= n {
                        return;
                    }
                    if rate > 0 {
                        tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / f64::from(rate))).await;
                    }
                    // The same queue for call `i` in every run, as for interactions.
                    let mut rng = Rng((i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
                    rng.next();
                    let queue = &served[rng.below(served.len() as u64) as usize];
                    let dialled = lines.get(queue).cloned().unwrap_or_default();
                    if let Routed::Ring { call, agent } = route(&platform, &calls, lane, &dialled).await {
                        answer(&platform, &calls, &call, &agent, true).await;
                    }
                }
            }));
        }
        for t in tasks {
            t.await?;
        }
        Ok(())
    }
}
