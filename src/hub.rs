//! Delivers routing pushes to the agent desktop streams this instance holds.
//!
//! Routing functions push to the inbox stream of the instance that holds an agent's session (any instance
//! may have made the decision). The hub reads its inbox and has the engine resolve each push, and
//! hands it to the session — if that session is still the agent's current one here. Pushes that
//! a session's own request causes come back with the request's reply instead (the engine's `caller`);
//! the hub's read position ([`Hub::delivered_through`]) is what keeps them in order with these.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use switchboard_engine::Engine;
use switchboard_engine::push::Inbox;
pub use switchboard_engine::push::{InboxId, Push};

/// A push as handed to a session, with the inbox entry it came from.
pub type Delivery = (InboxId, Push);

/// Sessions by (agent, session id). An agent may briefly have two here (a new login before the
/// old stream has ended); the login function tells the old one to close through the inbox, so a
/// login that fails its token check never disturbs the live session.
type Sessions = HashMap<(String, String), mpsc::UnboundedSender<Delivery>>;

pub struct Hub {
    instance: String,
    engine: Engine,
    sessions: Mutex<Sessions>,
    /// The last inbox entry whose push has been handed to its session.
    delivered: watch::Sender<InboxId>,
}

impl Hub {
    pub fn new(instance: String, engine: Engine) -> Arc<Hub> {
        Arc::new(Hub { instance, engine, sessions: Mutex::new(HashMap::new()), delivered: watch::Sender::default() })
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Register before the login function runs, so no push for the new session can be missed.
    pub fn register(&self, agent: &str, session: &str, tx: mpsc::UnboundedSender<Delivery>) {
        self.sessions.lock().expect("hub lock").insert((agent.to_string(), session.to_string()), tx);
        metrics::gauge!("switchboard_agent_streams").set(self.session_count() as f64);
    }

    pub fn unregister(&self, agent: &str, session: &str) {
        self.sessions.lock().expect("hub lock").remove(&(agent.to_string(), session.to_string()));
        metrics::gauge!("switchboard_agent_streams").set(self.session_count() as f64);
    }

    pub fn session_count(&self) -> usize {
        self.sessions.lock().expect("hub lock").len()
    }

    /// Tell every session to close (shutdown).
    pub fn close_all(&self, reason: &str) {
        for tx in self.sessions.lock().expect("hub lock").values() {
            let _ = tx.send((InboxId::LAST, Push::Closed { reason: reason.to_string() }));
        }
    }

    fn deliver(&self, id: InboxId, agent: &str, session: &str, push: Push) {
        let s = self.sessions.lock().expect("hub lock");
        match s.get(&(agent.to_string(), session.to_string())) {
            Some(tx) => {
                let _ = tx.send((id, push));
            }
            None => debug!(message = "Push for a session not held here.", agent, session),
        }
    }

    /// Reads this instance's inbox until cancelled.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        // Counted apart, so the benchmark can tell delivering offers from making them.
        switchboard_engine::as_reader(self.read_inbox(cancel)).await;
    }

    async fn read_inbox(self: Arc<Self>, cancel: CancellationToken) {
        let mut inbox = Inbox::new(&self.engine, &self.instance);
        while !cancel.is_cancelled() {
            let read = tokio::select! {
                _ = cancel.cancelled() => return,
                r = inbox.read(Duration::from_secs(1)) => r,
            };
            let entries = match read {
                Ok(entries) => entries,
                Err(error) => {
                    warn!(message = "Inbox read failed.", %error);
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                    }
                }
            };
            let Some(newest) = entries.last().map(|e| e.id.clone()) else { continue };
            match self.engine.resolve_pushes(&entries).await {
                Ok(pushes) => {
                    for (e, push) in entries.iter().zip(pushes) {
                        match push {
                            Ok(Some(push)) => {
                                metrics::counter!("switchboard_pushes_total", "kind" => e.kind.clone()).increment(1);
                                let id = InboxId::parse(&e.id).unwrap_or_default();
                                self.deliver(id, &e.agent, &e.session, push);
                            }
                            Ok(None) => {}
                            Err(error) => {
                                warn!(message = "Could not resolve a push.", %error, kind = %e.kind, agent = %e.agent);
                            }
                        }
                    }
                    if let Some(id) = InboxId::parse(&newest) {
                        self.delivered.send_replace(id);
                    }
                    inbox.delivered(&newest, entries.len()).await;
                }
                Err(error) => {
                    // Nothing of this batch was delivered; it is read again.
                    warn!(message = "Could not read what the pushes refer to.", %error);
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
                    }
                }
            }
        }
    }

    /// Waits (at most `within`) until every inbox push up to `after` has been handed to its
    /// session; false if it has not by then.
    pub async fn delivered_through(&self, after: InboxId, within: Duration) -> bool {
        let mut rx = self.delivered.subscribe();
        matches!(tokio::time::timeout(within, rx.wait_for(|d| *d >= after)).await, Ok(Ok(_)))
    }
}
