//! Phase B, held call → ring: every agent on a call (each queue is called until RouteCall
//! answers "hold"), then `--interactions` more calls on hold, each in a queue of the agent meant
//! to free up for it; then calls are released one by one, longest first, at each rate. A released
//! agent's capacity pulls the oldest held call of their queues; its ring instruction reaches the
//! platform on WatchRoutes, and the platform answers it, so everyone stays busy. Latency runs from
//! the release leaving the platform to that ring; the release's ack is timed too.

use std::sync::Mutex;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use futures::StreamExt;

use super::figures::{ReleaseTimes, p50_p99};
use super::lifecycle::{Routed, answer, release, route};
use super::{CtiFigures, CtiPhases, wait_for};
use crate::phase::{wait_offers, wait_quiet};
use crate::row::{Decider, Row};
use crate::sample::snap;

impl CtiPhases<'_> {
    /// One row per rate (0: releases as fast as they go).
    pub async fn held(&mut self, rates: &[u32]) -> anyhow::Result<Vec<Row>> {
        let n = self.args.interactions;
        self.calls.release_after_hold.store(false, Relaxed);
        // Errors while setting a phase up count in its row: its figures mean less with them.
        let mut errors_before = self.calls.counts().errors;
        self.fill().await;
        wait_quiet(self.shared, Duration::from_millis(300), Duration::from_secs(30)).await;
        println!(
            "cti: {} agents on a call, {} calls on hold",
            self.calls.talking.lock().expect("lock").len(),
            self.calls.on_hold()
        );
        let mut rows = Vec::new();
        for &rate in rates {
            let label = if rate == 0 {
                "CTI agent freed → held call rung, max".to_string()
            } else {
                format!("CTI agent freed → held call rung at {rate}/s")
            };
            self.hold(n).await;
            self.calls.forget_rings();
            self.calls.take_releases();
            let ca = self.calls.counts();
            let a = snap(self.con, self.shared).await?;
            self.free(n, rate).await;
            let calls = self.calls.clone();
            wait_for(|| calls.releases_open() == 0, Duration::from_secs(10)).await;
            let mut counts = self.calls.counts() - ca;
            counts.errors = self.calls.counts().errors - errors_before;
            errors_before += counts.errors;
            wait_offers(self.shared, a.offers + counts.rung_after_hold + counts.rings, Duration::from_secs(10)).await;
            let t = ReleaseTimes::of(&self.calls.take_releases());
            let b = snap(self.con, self.shared).await?;
            let latency = Mutex::new(t.to_ring.clone());
            let mut row = Row::between(label.clone(), Decider::Cti, &a, &b, t.last_ring, Some(&latency));
            let secs = t.last_ring.unwrap_or(b.at).saturating_duration_since(a.at).as_secs_f64().max(1e-6);
            row.cti = Some(CtiFigures {
                requests: n as u64,
                answers_per_s: counts.rung_after_hold as f64 / secs,
                counts,
                max_ms: t.to_ring.max() as f64 / 1000.0,
                from_ack: Some(p50_p99(&t.from_ack)),
                ring_before_ack: t.ring_before_ack,
                unrung: t.unrung,
            });
            self.show_errors(&label);
            rows.push(row);
        }
        Ok(rows)
    }

    /// Calls each served queue until RouteCall answers "hold" there: then everyone who serves it
    /// is on a call (all agents but the few who serve no queue). Every ring is answered (the
    /// agent stays on the call).
    async fn fill(&self) {
        let limit = self.args.agents + 1;
        let width = self.platform.lanes();
        futures::stream::iter(self.served.iter().enumerate())
            .for_each_concurrent(width, |(lane, queue)| async move {
                let dialled = self.dialled(queue);
                for _ in 0..limit {
                    match route(&self.platform, &self.calls, lane, &dialled).await {
                        Routed::Ring { call, agent } => answer(&self.platform, &self.calls, &call, &agent, false).await,
                        Routed::Held | Routed::Other => return,
                    }
                }
            })
            .await;
    }

    /// `n` more calls on hold, the i-th in a queue of the agent the i-th release will free (the
    /// longest on a call, cycling: the freed take new calls and go to the back).
    async fn hold(&self, n: usize) {
        let order: Vec<String> = self.calls.talking.lock().expect("lock").iter().map(|(a, _)| a.clone()).collect();
        if order.is_empty() {
            return;
        }
        futures::stream::iter(0..n)
            .for_each_concurrent(self.platform.lanes(), |i| {
                let agent = &order[i % order.len()];
                let queue =
                    agent.strip_prefix('a').and_then(|x| x.parse::<usize>().ok()).and_then(|x| self.home.get(x));
                let dialled = self.dialled(queue.map_or("", String::as_str));
                async move {
                    // Someone free after all (a release found nothing to take): now they have a call.
                    if let Routed::Ring { call, agent } =
                        route(&self.platform, &self.calls, i % self.platform.lanes(), &dialled).await
                    {
                        answer(&self.platform, &self.calls, &call, &agent, false).await;
                    }
                }
            })
            .await;
    }

    /// Releases `n` calls, the longest first, at `rate` per second (0: as fast as they go),
    /// each timed from when it leaves.
    async fn free(&self, n: usize, rate: u32) {
        let start = tokio::time::Instant::now();
        let mut sent = Vec::new();
        for i in 0..n {
            if rate > 0 {
                tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / f64::from(rate))).await;
            }
            // Everyone freed so far may still be waiting for their next call's answer to land.
            let mut next = None;
            for _ in 0..5000 {
                next = self.calls.talking.lock().expect("lock").pop_front();
                if next.is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let Some((agent, call)) = next else { break };
            let (platform, calls) = (self.platform.clone(), self.calls.clone());
            sent.push(tokio::spawn(async move {
                let k = calls.release_sent(&agent);
                if let Some(at) = release(&platform, &calls, &call).await {
                    calls.release_acked(k, at);
                }
            }));
        }
        for s in sent {
            let _ = s.await;
        }
    }
}
