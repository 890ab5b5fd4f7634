//! Background work every instance runs: firing due timers, opening and closing queues on their
//! calendars' hours, and keeping its heartbeat.
//!
//! Timers live in Redis, so any instance fires them and a dead instance loses none. The sweep is
//! one function call that claims and processes every due timer atomically.
//!
//! Opening hours ride on the sweep, which reads the routing clock anyway: when the clock passes
//! the next time a calendar opens or closes (and once a heartbeat, so that a queue or calendar
//! changed at runtime, on any instance, takes effect), every queue that keeps a calendar is brought
//! to the state its hours say. Every instance does it; the engine applies each change once.

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use switchboard_engine::{Engine, HoursWatch};

/// Timers fired per function call; more are fired at once by the next one.
const BATCH: usize = 200;

/// Queues' opening and closing, checked on the routing clock.
struct Hours {
    watch: HoursWatch,
    /// Routing-clock time of the next calendar change seen at the last check.
    next_change_ms: Option<u64>,
    /// When the last check ran (None: never): checked again at least this often.
    checked: Option<Instant>,
    every: Duration,
}

impl Hours {
    /// Checks if due at `now_ms`; returns how long until the next change is due.
    async fn tick(&mut self, engine: &Engine, now_ms: u64) -> Option<Duration> {
        let due = self.next_change_ms.is_some_and(|t| now_ms >= t)
            || self.checked.is_none_or(|at| at.elapsed() >= self.every);
        if due {
            match engine.check_opening_hours(&mut self.watch, now_ms).await {
                Ok(check) => {
                    for (queue, open) in &check.changed {
                        info!(message = if *open { "Queue opened." } else { "Queue closed." }, queue);
                    }
                    self.next_change_ms = check.next_change_ms;
                    self.checked = Some(Instant::now());
                }
                Err(error) => {
                    warn!(message = "Opening hours check failed.", %error);
                    // Tried again a heartbeat later, not on every sweep.
                    self.next_change_ms = None;
                    self.checked = Some(Instant::now());
                }
            }
        }
        self.next_change_ms.map(|t| Duration::from_millis(t.saturating_sub(now_ms)))
    }
}

/// `hours_every`: how often queues' hours are checked even when no calendar changes (the
/// heartbeat interval): how soon a queue or calendar changed at runtime takes effect.
pub async fn run_timers(engine: Engine, poll: Duration, hours_every: Duration, cancel: CancellationToken) {
    let mut hours = Hours { watch: HoursWatch::default(), next_change_ms: None, checked: None, every: hours_every };
    while !cancel.is_cancelled() {
        let started = std::time::Instant::now();
        let wait = match engine.fire_timers(BATCH).await {
            Ok(sweep) => {
                metrics::counter!("switchboard_timers_fired_total").increment(sweep.fired as u64);
                metrics::histogram!("switchboard_timer_sweep_seconds").record(started.elapsed().as_secs_f64());
                let until_hours = hours.tick(&engine, sweep.now_ms).await;
                if sweep.fired == BATCH {
                    Duration::ZERO
                } else {
                    // Sleep until the next timer is due, but never longer than the poll interval:
                    // other instances and the test clock may add earlier timers.
                    let until_next = sweep.next_due_ms.map(|d| Duration::from_millis(d.saturating_sub(sweep.now_ms)));
                    let wait = until_next.map_or(poll, |d| d.min(poll));
                    until_hours.map_or(wait, |d| d.min(wait))
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
