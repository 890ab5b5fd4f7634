//! Delivers routing pushes to the agent desktop streams this instance holds.
//!
//! Scripts push to the inbox stream of the instance that holds an agent's session (any instance
//! may have made the decision). The hub reads its inbox, resolves each push into domain data, and
//! hands it to the session — if that session is still the agent's current one here. Pushes that
//! a session's own request causes come back with the request's reply instead (`store::caller`);
//! the hub's read position ([`Hub::delivered_through`]) is what keeps them in order with these.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use switchboard_engine::push::{Inbox, InboxEntry};
pub use switchboard_engine::push::{InboxId, Push};
use switchboard_engine::{Engine, SessionPushes};

/// A push as handed to a session, with the inbox entry it came from.
pub type Delivery = (InboxId, Push);

/// Sessions by (agent, session id). An agent may briefly have two here (a new login before the
/// old stream has ended); the login script tells the old one to close through the inbox, so a
/// login that fails its token check never disturbs the live session.
type Sessions = HashMap<(String, String), mpsc::UnboundedSender<Delivery>>;

pub struct Hub {
    instance: String,
    store: Engine,
    sessions: Mutex<Sessions>,
    /// The last inbox entry whose push has been handed to its session.
    delivered: watch::Sender<InboxId>,
}

impl Hub {
    pub fn new(instance: String, store: Engine) -> Arc<Hub> {
        Arc::new(Hub { instance, store, sessions: Mutex::new(HashMap::new()), delivered: watch::Sender::default() })
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Register before the login script runs, so no push for the new session can be missed.
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
        let mut inbox = Inbox::new(&self.store, &self.instance);
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
            match self.store.resolve_pushes(&entries).await {
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

    /// The pushes a reply returned for `agent`'s calling `session`, resolved as the inbox's are.
    /// If they cannot be (the reads fail), they go to the inbox after all, so none is lost.
    pub async fn resolve_for_session(&self, agent: &str, session: &str, pushes: &SessionPushes) -> Vec<Push> {
        let raw: Vec<InboxEntry> = pushes
            .pushes
            .iter()
            .map(|(kind, data)| InboxEntry {
                id: String::new(),
                agent: agent.to_string(),
                session: session.to_string(),
                kind: kind.clone(),
                data: data.clone(),
            })
            .collect();
        match self.store.resolve_pushes(&raw).await {
            Ok(resolved) => raw
                .iter()
                .zip(resolved)
                .filter_map(|(r, push)| match push {
                    Ok(push) => {
                        metrics::counter!("switchboard_pushes_total", "kind" => r.kind.clone()).increment(1);
                        push
                    }
                    Err(error) => {
                        warn!(message = "Could not resolve a push.", %error, kind = %r.kind, agent = %r.agent);
                        None
                    }
                })
                .collect(),
            Err(error) => {
                warn!(message = "Could not read what a reply's pushes refer to; sending them through the inbox.", %error);
                for r in &raw {
                    if let Err(error) = self.store.push(&self.instance, &r.agent, &r.session, &r.kind, &r.data).await {
                        warn!(message = "A push for a session was lost.", %error, kind = %r.kind, agent = %r.agent);
                    }
                }
                Vec::new()
            }
        }
    }
}
