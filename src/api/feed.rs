//! One tail of the event log per instance, shared by every supervisor watch: a thousand watches
//! are a thousand subscribers here, not a thousand Redis connections. It runs only while someone
//! watches. The number of watches per instance is capped.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, watch};
use tokio_util::sync::CancellationToken;
use tonic::Status;

use switchboard_engine::events::EventTail;
use switchboard_engine::{Engine, LoggedEvent};

/// Batches kept for a slow watcher before it must catch up from a fresh snapshot.
const BACKLOG: usize = 1024;

#[derive(Clone)]
pub struct EventFeed {
    tx: broadcast::Sender<Arc<Vec<LoggedEvent>>>,
    slots: Arc<Semaphore>,
    max: usize,
    engine: Engine,
    cancel: CancellationToken,
    /// Whether the tail task runs (it stops when the last watch ends).
    running: Arc<std::sync::Mutex<bool>>,
    /// Whether the running tail has its place in the log: what is logged after that reaches
    /// every subscriber.
    positioned: Arc<watch::Sender<bool>>,
}

/// A watch's place: its subscription and its slot under the cap.
pub struct Subscription {
    pub events: broadcast::Receiver<Arc<Vec<LoggedEvent>>>,
    /// Whether the tail has its place in the log; it turns false when the log cannot be read
    /// (Redis down): a watch then ends UNAVAILABLE rather than going silent.
    pub positioned: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
}

impl EventFeed {
    pub fn new(engine: Engine, max_watchers: usize, cancel: CancellationToken) -> EventFeed {
        let (tx, _) = broadcast::channel(BACKLOG);
        EventFeed {
            tx,
            slots: Arc::new(Semaphore::new(max_watchers)),
            max: max_watchers,
            engine,
            cancel,
            running: Arc::default(),
            positioned: Arc::new(watch::channel(false).0),
        }
    }

    /// A subscription that gets everything logged from when this returns (a watcher may act on
    /// what it then reads, knowing nothing logged later is missed).
    pub async fn subscribe(&self) -> Result<Subscription, Status> {
        let slot = self.slots.clone().try_acquire_owned().map_err(|_| {
            metrics::counter!("switchboard_limit_refusals_total", "limit" => "watchers").increment(1);
            Status::resource_exhausted(format!(
                "too many supervisor watches on this instance (at most {}); close one or use another instance",
                self.max
            ))
        })?;
        metrics::gauge!("switchboard_supervisor_watches").set((self.max - self.slots.available_permits()) as f64);
        let events = self.tx.subscribe();
        {
            let mut running = self.running.lock().expect("feed state");
            if !*running {
                *running = true;
                self.positioned.send_replace(false);
                tokio::spawn(self.clone().run());
            }
        }
        let mut positioned = self.positioned.subscribe();
        // Redis down: the subscription still starts, and catches up once the tail is open.
        let _ = tokio::time::timeout(Duration::from_secs(5), positioned.wait_for(|p| *p)).await;
        positioned.mark_unchanged();
        Ok(Subscription { events, positioned, _slot: slot })
    }

    /// Follows the log while anyone listens (until `cancel`), reconnecting after errors.
    async fn run(self) {
        let (engine, cancel) = (self.engine.clone(), self.cancel.clone());
        let mut delay = Duration::from_millis(200);
        let mut reopened = false;
        loop {
            let mut tail = match EventTail::from_now(&engine).await {
                Ok(t) => t,
                Err(error) => {
                    tracing::warn!(message = "Event feed could not open the log; retrying.", %error);
                    self.positioned.send_replace(false);
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            delay = Duration::from_millis(200);
            self.positioned.send_replace(true);
            if reopened {
                // Events may have been missed meanwhile: an empty batch tells watchers to refresh all.
                let _ = self.tx.send(Arc::new(Vec::new()));
            }
            reopened = true;
            loop {
                let batch = tokio::select! {
                    _ = cancel.cancelled() => return,
                    r = tail.next(Duration::from_millis(500), 1000) => r,
                };
                if self.tx.receiver_count() == 0 {
                    let mut running = self.running.lock().expect("feed state");
                    // Checked again under the lock: a watch that subscribed meanwhile keeps it going.
                    if self.tx.receiver_count() == 0 {
                        *running = false;
                        self.positioned.send_replace(false);
                        return;
                    }
                }
                match batch {
                    Ok(events) if events.is_empty() => {}
                    // No subscribers is fine: nothing to tell.
                    Ok(events) => drop(self.tx.send(Arc::new(events))),
                    Err(error) => {
                        tracing::warn!(message = "Event feed read failed; reopening.", %error);
                        break;
                    }
                }
            }
        }
    }
}
