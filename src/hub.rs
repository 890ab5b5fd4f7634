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

use redis::streams::{StreamReadOptions, StreamReadReply};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::model::{Interaction, Message, Presence, PushKind};
use switchboard_engine::{Engine, EngineError, SessionPushes};

#[derive(Debug, Clone, PartialEq)]
pub enum Push {
    Offer(Interaction),
    Revoked { interaction_id: String, reason: String },
    Assigned(Interaction),
    CustomerMessage { interaction_id: String, message: Message },
    CustomerTyping { interaction_id: String, on: bool },
    Ended { interaction_id: String, state: String, reason: String },
    Presence { presence: Presence, cause: String },
    Closed { reason: String },
}

/// An inbox entry id ("<ms>-<seq>"), ordered as Redis orders them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct InboxId(u64, u64);

impl InboxId {
    /// Later than any entry: for what the hub sends that is not an entry (closing the sessions).
    pub const LAST: InboxId = InboxId(u64::MAX, u64::MAX);

    pub fn parse(id: &str) -> Option<InboxId> {
        let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
        Some(InboxId(ms.parse().ok()?, seq.parse().ok()?))
    }
}

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
        let key = self.store.keys().inbox(&self.instance);
        let mut last = "0".to_string();
        let mut con = None;
        let (mut untrimmed, mut trimmed_at) = (0usize, std::time::Instant::now());
        while !cancel.is_cancelled() {
            if con.is_none() {
                match self.store.dedicated_connection().await {
                    Ok(c) => con = Some(c),
                    Err(error) => {
                        warn!(message = "Inbox connection failed.", %error);
                        tokio::select! {
                            _ = cancel.cancelled() => return,
                            _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                        }
                    }
                }
            }
            let c = con.as_mut().expect("connection");
            let opts = StreamReadOptions::default().block(1000).count(500);
            let keys = [key.as_str()];
            let ids = [last.as_str()];
            let read = tokio::select! {
                _ = cancel.cancelled() => return,
                r = redis::AsyncCommands::xread_options::<_, _, Option<StreamReadReply>>(c, &keys, &ids, &opts) => r,
            };
            let reply = match read {
                Ok(r) => r,
                Err(error) => {
                    warn!(message = "Inbox read failed.", %error);
                    con = None;
                    continue;
                }
            };
            let Some(reply) = reply else { continue };
            let raw: Vec<RawPush> = reply
                .keys
                .into_iter()
                .flat_map(|sk| sk.ids)
                .map(|entry| RawPush {
                    agent: entry.get("agent").unwrap_or_default(),
                    session: entry.get("session").unwrap_or_default(),
                    kind: entry.get("kind").unwrap_or_default(),
                    data: entry.get("data").unwrap_or_default(),
                    id: entry.id,
                })
                .collect();
            let Some(newest) = raw.last().map(|r| r.id.clone()) else { continue };
            match self.resolve_batch(&raw).await {
                Ok(pushes) => {
                    for (r, push) in raw.iter().zip(pushes) {
                        match push {
                            Ok(Some(push)) => {
                                metrics::counter!("switchboard_pushes_total", "kind" => r.kind.clone()).increment(1);
                                let id = InboxId::parse(&r.id).unwrap_or_default();
                                self.deliver(id, &r.agent, &r.session, push);
                            }
                            Ok(None) => {}
                            Err(error) => {
                                warn!(message = "Could not resolve a push.", %error, kind = %r.kind, agent = %r.agent);
                            }
                        }
                    }
                    if let Some(id) = InboxId::parse(&newest) {
                        self.delivered.send_replace(id);
                    }
                    last = newest;
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
            // Entries already delivered are of no further use. Trimming after every read would
            // add a round trip to each push when they come one at a time; once a second (or
            // every thousand entries) keeps the inbox as short.
            untrimmed += raw.len();
            if untrimmed >= 1000 || trimmed_at.elapsed() >= Duration::from_secs(1) {
                let _: Result<i64, _> = redis::cmd("XTRIM").arg(&key).arg("MINID").arg(&last).query_async(c).await;
                (untrimmed, trimmed_at) = (0, std::time::Instant::now());
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
        let raw: Vec<RawPush> = pushes
            .pushes
            .iter()
            .map(|(kind, data)| RawPush {
                id: String::new(),
                agent: agent.to_string(),
                session: session.to_string(),
                kind: kind.clone(),
                data: data.clone(),
            })
            .collect();
        match self.resolve_batch(&raw).await {
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

    /// Resolves a batch of pushes with one pipelined read for everything they refer to (the
    /// interactions offered or assigned, the customer messages), in order.
    async fn resolve_batch(&self, raw: &[RawPush]) -> Result<Vec<Result<Option<Push>, EngineError>>, EngineError> {
        let parsed: Vec<Result<serde_json::Value, EngineError>> = raw
            .iter()
            .map(|r| serde_json::from_str(&r.data).map_err(|e| EngineError::Corrupt(format!("push data: {e}"))))
            .collect();
        let s = |v: &serde_json::Value, k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or_default().to_string();
        let mut ix_ids = Vec::new();
        let mut msg_refs = Vec::new();
        // Offers and assignments carry their interaction (a long thread aside): no read for those.
        let mut carried: Vec<Option<crate::model::Interaction>> = Vec::with_capacity(raw.len());
        for (r, v) in raw.iter().zip(&parsed) {
            let Ok(v) = v else {
                carried.push(None);
                continue;
            };
            let ix = match PushKind::parse(&r.kind) {
                Some(PushKind::Offer | PushKind::Assigned) => switchboard_engine::interaction_from_push(v)
                    .unwrap_or_else(|error| {
                        warn!(message = "A push carried an unreadable interaction; reading it instead.", %error);
                        None
                    }),
                _ => None,
            };
            match PushKind::parse(&r.kind) {
                Some(PushKind::Offer | PushKind::Assigned) if ix.is_none() => ix_ids.push(s(v, "ix")),
                Some(PushKind::Message) => {
                    msg_refs.push((s(v, "ix"), v.get("seq").and_then(serde_json::Value::as_u64).unwrap_or(0)));
                }
                _ => {}
            }
            carried.push(ix);
        }
        let (interactions, messages) = self.store.interactions_and_messages(&ix_ids, &msg_refs).await?;
        let mut interactions = interactions.into_iter();
        let mut messages = messages.into_iter();
        let mut shown = |carried: Option<crate::model::Interaction>| carried.or_else(|| interactions.next().flatten());
        Ok(raw
            .iter()
            .zip(parsed)
            .zip(carried)
            .map(|((r, v), carried)| {
                let v = v?;
                let Some(kind) = PushKind::parse(&r.kind) else {
                    return Err(EngineError::Corrupt(format!("unknown push kind {:?}", r.kind)));
                };
                Ok(Some(match kind {
                    PushKind::Offer => match shown(carried) {
                        // A carried interaction is the offer as it was made; if it has ended since,
                        // the push that ended it follows in the inbox. One read here may show the
                        // offer gone already, or the interaction offered again, even to someone
                        // else: only the very offer is shown.
                        Some(ix)
                            if ix.state == crate::model::InteractionState::Offered
                                && ix.agent_id == r.agent
                                && Some(ix.offer_seq) == v.get("seq").and_then(serde_json::Value::as_u64) =>
                        {
                            Push::Offer(ix)
                        }
                        _ => return Ok(None),
                    },
                    PushKind::Assigned => match shown(carried) {
                        Some(ix) => Push::Assigned(ix),
                        None => {
                            return Err(EngineError::NotFound(format!(
                                "interaction_id: no interaction {:?}",
                                s(&v, "ix")
                            )));
                        }
                    },
                    PushKind::Revoked => Push::Revoked { interaction_id: s(&v, "ix"), reason: s(&v, "reason") },
                    PushKind::Message => match messages.next() {
                        Some(Some(message)) => Push::CustomerMessage { interaction_id: s(&v, "ix"), message },
                        _ => return Err(EngineError::NotFound(format!("message of {:?}", s(&v, "ix")))),
                    },
                    PushKind::Typing => Push::CustomerTyping {
                        interaction_id: s(&v, "ix"),
                        on: v.get("on").and_then(serde_json::Value::as_bool).unwrap_or(false),
                    },
                    PushKind::Ended => {
                        Push::Ended { interaction_id: s(&v, "ix"), state: s(&v, "state"), reason: s(&v, "reason") }
                    }
                    PushKind::Presence => Push::Presence {
                        presence: Presence::from_parts(&s(&v, "state"), &s(&v, "reason"))
                            .ok_or_else(|| EngineError::Corrupt(format!("presence {:?}", s(&v, "state"))))?,
                        cause: s(&v, "cause"),
                    },
                    PushKind::Closed => Push::Closed { reason: s(&v, "reason") },
                }))
            })
            .collect())
    }
}

/// One inbox entry as read.
struct RawPush {
    id: String,
    agent: String,
    session: String,
    kind: String,
    data: String,
}

#[cfg(test)]
mod tests {
    use super::InboxId;

    #[test]
    fn inbox_ids_order_as_redis_orders_them() {
        let id = |s: &str| InboxId::parse(s).unwrap();
        assert!(id("1700000000000-0") < id("1700000000000-1"));
        assert!(id("1700000000000-9") < id("1700000000001-0"));
        assert!(id("99-0") < id("100-0"), "numerically, not as text");
        assert_eq!(id("0"), InboxId::default());
        assert!(id("5-5") < InboxId::LAST);
        assert!(InboxId::parse("x-1").is_none());
        assert!(InboxId::parse("1-").is_none());
    }
}
