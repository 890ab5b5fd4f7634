//! Background work every instance runs: firing due timers and keeping its heartbeat.
//!
//! Timers live in Redis, so any instance fires them and a dead instance loses none. The sweep is
//! one function call that claims and processes every due timer atomically.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::warn;

use switchboard_engine::Engine;

/// Timers fired per function call; more are fired at once by the next one.
const BATCH: usize = 200;

pub async fn run_timers(engine: Engine, poll: Duration, cancel: CancellationToken) {
    while !cancel.is_cancelled() {
        let started = std::time::Instant::now();
        let wait = match engine.fire_timers(BATCH).await {
            Ok(sweep) => {
                metrics::counter!("switchboard_timers_fired_total").increment(sweep.fired as u64);
                metrics::histogram!("switchboard_timer_sweep_seconds").record(started.elapsed().as_secs_f64());
                if sweep.fired == BATCH {
                    Duration::ZERO
                } else {
                    // Sleep until the next timer is due, but never longer than the poll interval:
                    // other instances and the test clock may add earlier timers.
                    let until_next = sweep.next_due_ms.map(|d| Duration::from_millis(d.saturating_sub(sweep.now_ms)));
                    until_next.map_or(poll, |d| d.min(poll))
                }
            }
            Err(error) => {
                warn!(message = "Timer sweep failed.", %error);
                poll.max(Duration::from_millis(500))
            }
        };
        if wait > Duration::ZERO {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

pub async fn run_heartbeat(engine: Engine, instance: String, every: Duration, cancel: CancellationToken) {
    loop {
        if let Err(error) = engine.heartbeat(&instance, false).await {
            warn!(message = "Heartbeat failed.", %error, instance);
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
