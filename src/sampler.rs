//! Metrics sampled on a tick rather than counted where things happen: whether this instance is
//! ready (Redis answers, as `/readyz` says), the engine's round trips to Redis, and each queue's
//! figures over the rolling window — the numbers a supervisor's wallboard shows — as gauges.
//!
//! Every instance samples and exports the same queue figures. They are read from Redis, which
//! all instances share, so any instance's are the truth; Prometheus tells them apart by its
//! `instance` target label and dashboards and alerts take `max by (queue)`. Sampling on one
//! lease holder only would save those reads, but the exporter cannot unregister a gauge: the
//! previous holder would go on exporting its last figures after a hand-over, and the figures
//! would stop for a lease's lifetime whenever the holder died. The cost is about four round
//! trips per queue per tick on each instance; the tick is the heartbeat's (5 s by default).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::RwLock;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use switchboard_engine::{AgentLoads, Engine, EngineError, QueueFigures};

/// The interactions a queue's window counts, as the `event` label of
/// `switchboard_queue_window_interactions`.
const EVENTS: [&str; 5] = ["offered", "accepted", "rejected", "missed", "abandoned"];
/// Agents' presence states, as the `presence` label of `switchboard_queue_agents`: each is set
/// every tick, so a state nobody is in reads 0 rather than its last count.
const PRESENCE: [&str; 4] = ["offline", "ready", "not_ready", "wrap_up"];

/// Samples every `every` until `shutdown`; not ready until the engine is connected, and not
/// ready again once the instance is stopping.
pub async fn run(engine: Arc<RwLock<Option<Engine>>>, every: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut exported = BTreeSet::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let rt = switchboard_engine::round_trips();
        metrics::counter!("switchboard_redis_round_trips_total").absolute(rt.all);
        metrics::counter!("switchboard_redis_reader_round_trips_total").absolute(rt.readers);
        let engine = engine.read().await.clone();
        let ready = match &engine {
            Some(e) => tokio::time::timeout(Duration::from_secs(2), e.ping()).await.is_ok_and(|r| r.is_ok()),
            None => false,
        };
        metrics::gauge!("switchboard_ready").set(if ready { 1.0 } else { 0.0 });
        if let (true, Some(engine)) = (ready, engine)
            && let Err(error) = sample_queues(&engine, &mut exported).await
        {
            debug!(message = "Sampling the queue figures failed.", %error);
        }
    }
    metrics::gauge!("switchboard_ready").set(0.0);
}

/// Sets every queue's gauges; those of a queue deleted since the last tick read NaN (the
/// exporter keeps a gauge once set), which Prometheus' `max` and comparisons pass over.
async fn sample_queues(engine: &Engine, exported: &mut BTreeSet<String>) -> Result<(), EngineError> {
    let mut seen = BTreeSet::new();
    // Each agent read once per tick, however many queues it serves.
    let mut loads = AgentLoads::default();
    for queue in engine.list_queue_names().await? {
        match engine.queue_figures_with(&queue, &mut loads).await {
            Ok(f) => set(&queue, Some(&f)),
            Err(EngineError::NotFound(_)) => continue,
            Err(e) => return Err(e),
        }
        seen.insert(queue);
    }
    for gone in exported.difference(&seen) {
        set(gone, None);
    }
    *exported = seen;
    Ok(())
}

fn set(queue: &str, f: Option<&QueueFigures>) {
    let q = queue.to_string();
    let or_nan = |v: Option<f64>| v.unwrap_or(f64::NAN);
    let g = |name: &'static str, v: Option<f64>| metrics::gauge!(name, "queue" => q.clone()).set(or_nan(v));
    g("switchboard_queue_waiting", f.map(|f| f64::from(f.waiting)));
    g("switchboard_queue_longest_wait_seconds", f.map(|f| f.longest_wait_ms as f64 / 1000.0));
    // No answered or abandoned interaction in the window: no service level (NaN), not 0 or 100 %.
    g("switchboard_queue_service_level_ratio", f.and_then(|f| f.service_level_percent).map(|p| p / 100.0));
    g("switchboard_queue_average_speed_of_answer_seconds", f.map(|f| f.average_speed_of_answer_secs));
    g("switchboard_queue_average_handle_seconds", f.map(|f| f.average_handle_time_secs));
    g("switchboard_queue_occupancy_ratio", f.map(|f| f.occupancy_percent / 100.0));
    let counts = f.map(|f| [f.offered, f.accepted, f.rejected, f.missed, f.abandoned]);
    for (i, event) in EVENTS.into_iter().enumerate() {
        metrics::gauge!("switchboard_queue_window_interactions", "queue" => q.clone(), "event" => event)
            .set(or_nan(counts.map(|c| c[i] as f64)));
    }
    let mut states: BTreeSet<&str> = PRESENCE.into();
    states.extend(f.iter().flat_map(|f| f.agents_by_presence.keys().map(String::as_str)));
    for presence in states {
        let n = f.map(|f| f.agents_by_presence.get(presence).copied().unwrap_or(0));
        metrics::gauge!("switchboard_queue_agents", "queue" => q.clone(), "presence" => presence.to_string())
            .set(or_nan(n.map(f64::from)));
    }
}
