//! Web chat: visitors on a website chat with agents through a WebSocket on the HTTP listener.
//!
//! - `routes`: the HTTP side — `/chat/ws` (origin allow-list, per-IP connection limit), the
//!   widget's `/widget.js` and `/widget.css`, the demo page `/chat/demo`.
//! - `socket`: one task per visitor connection, speaking `protocol`.
//! - this module: the connections held here by interaction, and the background work of every
//!   instance — waking connections when their interaction changes, keeping visitors marked as
//!   present, withdrawing chats whose visitor left for longer than the resume window.
//!
//! Redis holds everything a chat needs (the interaction, its thread, the session), so a visitor
//! may resume on any instance, and an agent's reply made on one instance reaches a visitor
//! connected to another: each instance tails the event log and wakes its own connections, which
//! then read what they have not sent yet from the thread.

pub mod config;
pub mod protocol;
pub mod routes;
mod socket;

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use config::WebChatConfig;

use super::{DeliveryError, OutboundChannel};
use crate::model::{Channel, Interaction, Message};
use switchboard_engine::{ChatSignal, Engine};

/// How often connections refresh their place in line and instances mark their visitors present.
const TICK: Duration = Duration::from_secs(2);
/// How long a queue's answer rate (for wait estimates) is reused.
const RATE_CACHE: Duration = Duration::from_secs(10);

/// What wakes a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wake {
    Changed,
    AgentTyping(bool),
}

struct Conn {
    id: u64,
    token_hash: String,
    tx: mpsc::Sender<Wake>,
    /// Cleared when the chat has ended: nothing left to keep alive.
    live: Arc<AtomicBool>,
}

pub struct WebChat {
    cfg: WebChatConfig,
    engine: Engine,
    /// Connections close when this is cancelled (daemon shutdown).
    shutdown: CancellationToken,
    conns: Mutex<HashMap<String, Vec<Conn>>>,
    next_conn: AtomicU64,
    agent_names: Mutex<HashMap<String, String>>,
    answer_rates: Mutex<HashMap<String, (Instant, u64, u64)>>,
    /// Whether a queue takes calls (so callbacks), as read at that instant.
    call_queues: Mutex<HashMap<String, (Instant, bool)>>,
    ip_messages: DefaultKeyedRateLimiter<IpAddr>,
    ip_connections: DefaultKeyedRateLimiter<IpAddr>,
    /// Open connections per address on this instance.
    ip_open: Mutex<HashMap<IpAddr, u32>>,
    /// Callbacks a waiting visitor takes instead (`offer_callback`).
    pub(super) voice: Arc<crate::channels::voice::Voice>,
}

/// One open connection counted against its address; uncounted when dropped.
pub(super) struct OpenSlot {
    chat: Arc<WebChat>,
    ip: IpAddr,
}

impl Drop for OpenSlot {
    fn drop(&mut self) {
        let mut open = self.chat.ip_open.lock().expect("webchat lock");
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

fn per_minute(n: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(n.max(1)).expect("non-zero"))
}

impl WebChat {
    pub fn new(
        cfg: WebChatConfig,
        engine: Engine,
        shutdown: CancellationToken,
        voice: Arc<crate::channels::voice::Voice>,
    ) -> Arc<WebChat> {
        Arc::new(WebChat {
            ip_messages: RateLimiter::keyed(per_minute(cfg.ip_messages_per_minute)),
            ip_connections: RateLimiter::keyed(per_minute(cfg.ip_connections_per_minute)),
            cfg,
            engine,
            shutdown,
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            agent_names: Mutex::new(HashMap::new()),
            answer_rates: Mutex::new(HashMap::new()),
            call_queues: Mutex::new(HashMap::new()),
            ip_open: Mutex::new(HashMap::new()),
            voice,
        })
    }

    /// A place for one more open connection from `ip`, if it holds fewer than the cap.
    pub(super) fn open_slot(self: &Arc<Self>, ip: IpAddr) -> Option<OpenSlot> {
        let mut open = self.ip_open.lock().expect("webchat lock");
        let n = open.entry(ip).or_insert(0);
        if *n >= self.cfg.ip_max_open_connections {
            return None;
        }
        *n += 1;
        Some(OpenSlot { chat: self.clone(), ip })
    }

    pub fn config(&self) -> &WebChatConfig {
        &self.cfg
    }

    pub(super) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Visitor connections held by this instance.
    pub fn connection_count(&self) -> usize {
        self.conns.lock().expect("webchat lock").values().map(Vec::len).sum()
    }

    fn register(&self, iid: &str, token_hash: &str, tx: mpsc::Sender<Wake>, live: Arc<AtomicBool>) -> u64 {
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let conn = Conn { id, token_hash: token_hash.to_string(), tx, live };
        self.conns.lock().expect("webchat lock").entry(iid.to_string()).or_default().push(conn);
        metrics::gauge!("switchboard_webchat_connections").set(self.connection_count() as f64);
        id
    }

    fn unregister(&self, iid: &str, id: u64) {
        {
            let mut conns = self.conns.lock().expect("webchat lock");
            if let Some(v) = conns.get_mut(iid) {
                v.retain(|c| c.id != id);
                if v.is_empty() {
                    conns.remove(iid);
                }
            }
        }
        metrics::gauge!("switchboard_webchat_connections").set(self.connection_count() as f64);
    }

    fn wake(&self, iid: &str, w: Wake) {
        if let Some(v) = self.conns.lock().expect("webchat lock").get(iid) {
            for c in v {
                // A full queue already holds a wake-up; the connection re-reads everything anyway.
                let _ = c.tx.try_send(w);
            }
        }
    }

    async fn agent_name(&self, aid: &str) -> String {
        if let Some(n) = self.agent_names.lock().expect("webchat lock").get(aid) {
            return n.clone();
        }
        let name = match self.engine.get_agent(aid).await {
            Ok(a) if !a.name.trim().is_empty() => a.name,
            Ok(_) => "An agent".to_string(),
            Err(error) => {
                debug!(message = "Agent name not found.", %error, agent = aid);
                return "An agent".to_string();
            }
        };
        self.agent_names.lock().expect("webchat lock").insert(aid.to_string(), name.clone());
        name
    }

    /// Seconds until `position` is answered at the queue's recent answer rate.
    async fn eta_secs(&self, queue: &str, position: u64) -> Option<u64> {
        let cached = self.answer_rates.lock().expect("webchat lock").get(queue).copied();
        let (answered, window) = match cached {
            Some((at, a, w)) if at.elapsed() < RATE_CACHE => (a, w),
            _ => match self.engine.answered_recently(queue).await {
                Ok((a, w)) => {
                    // No answers yet is not cached: the first answer should show up at once.
                    if a > 0 {
                        self.answer_rates
                            .lock()
                            .expect("webchat lock")
                            .insert(queue.to_string(), (Instant::now(), a, w));
                    }
                    (a, w)
                }
                Err(error) => {
                    debug!(message = "Answer rate not available.", %error, queue);
                    return None;
                }
            },
        };
        if answered == 0 {
            return None;
        }
        Some((position * window).div_ceil(answered).min(86_400))
    }

    /// Whether waiting visitors are offered callbacks at all: `offer_callback` is on and a
    /// telephony system dials them (`cti.callback_system`).
    fn callback_on(&self) -> bool {
        self.cfg.offer_callback && self.voice.dials_chat_callbacks()
    }

    /// Whether `queue` takes calls, and so callbacks (re-read every few seconds). When it
    /// cannot be read the offer stands: the callback itself then meets the queue.
    async fn takes_calls(&self, queue: &str) -> bool {
        let cached = self.call_queues.lock().expect("webchat lock").get(queue).copied();
        if let Some((at, takes)) = cached
            && at.elapsed() < RATE_CACHE
        {
            return takes;
        }
        let takes = match self.engine.get_queue(queue).await {
            Ok(spec) => spec.channels.contains(&Channel::Voice),
            Err(switchboard_engine::EngineError::NotFound(_)) => false,
            Err(error) => {
                debug!(message = "Queue not readable for the callback offer.", %error, queue);
                return true;
            }
        };
        self.call_queues.lock().expect("webchat lock").insert(queue.to_string(), (Instant::now(), takes));
        takes
    }

    /// Why the visitor of `ix` is not offered a callback now (code and message for the error
    /// frame); None: the offer stands — callbacks are on, the chat waits in line (not with an
    /// agent, not handed on), its queue takes calls, and the visitor has waited
    /// `offer_callback_after_secs`.
    async fn callback_refusal(&self, ix: &Interaction) -> Option<(&'static str, String)> {
        use crate::model::InteractionState as S;
        if !self.callback_on() {
            return Some(("not_offered", "Callbacks are not offered on this chat.".into()));
        }
        match ix.state {
            S::Queued | S::Offered => {}
            S::Active => {
                return Some((
                    "not_waiting",
                    "An agent is already with you, so there is no place in line to keep. Ask them to call you.".into(),
                ));
            }
            // Handed on by an agent: the next agent has the conversation so far waiting for them.
            S::Transferred => {
                return Some((
                    "not_waiting",
                    "Your chat is being handed on to another agent; please wait for them.".into(),
                ));
            }
            S::WrapUp | S::Completed | S::Abandoned => return Some(("ended", "This chat has ended.".into())),
        }
        if !self.takes_calls(&ix.queue).await {
            return Some(("not_offered", "Callbacks are not offered on this chat.".into()));
        }
        let after_ms = u64::from(self.cfg.offer_callback_after_secs) * 1000;
        if after_ms > 0 {
            let waited = match self.engine.now_ms().await {
                Ok(now) => now.saturating_sub(ix.enqueued_ms),
                Err(error) => {
                    debug!(message = "Clock not readable for the callback offer.", %error);
                    return Some(("unavailable", "Please try again in a moment.".into()));
                }
            };
            if waited < after_ms {
                return Some((
                    "not_offered",
                    format!(
                        "A callback is offered once you have waited {} seconds.",
                        self.cfg.offer_callback_after_secs
                    ),
                ));
            }
        }
        None
    }

    /// Background work of this instance, until `cancel`.
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let tail = tokio::spawn(self.clone().tail(cancel.clone()));
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tick.tick() => {
                    if let Err(error) = self.housekeeping().await {
                        warn!(message = "Web chat housekeeping failed.", %error);
                    }
                }
            }
        }
        let _ = tail.await;
    }

    async fn housekeeping(&self) -> Result<(), switchboard_engine::EngineError> {
        let (live, hashes): (Vec<String>, Vec<String>) = {
            let conns = self.conns.lock().expect("webchat lock");
            let live = conns
                .iter()
                .filter(|(_, v)| v.iter().any(|c| c.live.load(Ordering::Relaxed)))
                .map(|(iid, _)| iid.clone())
                .collect();
            let hashes = conns.values().flatten().map(|c| c.token_hash.clone()).collect();
            (live, hashes)
        };
        let now = self.engine.now_ms().await?;
        self.engine.chat_seen(&live, now).await?;
        self.engine.touch_chat_sessions(&hashes, session_ttl_secs(&self.cfg)).await?;
        let window_ms = self.cfg.resume_window_secs * 1000;
        for iid in self.engine.claim_abandoned_chats(now.saturating_sub(window_ms), 100).await? {
            match self.engine.withdraw(&iid, "customer_left").await {
                Ok(ix) => {
                    info!(message = "Web chat visitor did not come back; chat withdrawn.", interaction = %iid, state = %ix.state.as_str());
                    metrics::counter!("switchboard_webchat_left_total").increment(1);
                }
                Err(error) => warn!(message = "Could not withdraw a left web chat.", %error, interaction = %iid),
            }
        }
        self.ip_messages.retain_recent();
        self.ip_connections.retain_recent();
        Ok(())
    }

    async fn tail(self: Arc<Self>, cancel: CancellationToken) {
        let mut state = None;
        while !cancel.is_cancelled() {
            if state.is_none() {
                let opened = async {
                    let con = self.engine.dedicated_connection().await?;
                    let cursor = self.engine.chat_cursor_now().await?;
                    Ok::<_, switchboard_engine::EngineError>((con, cursor))
                };
                match opened.await {
                    Ok(s) => state = Some(s),
                    Err(error) => {
                        warn!(message = "Web chat tail could not connect.", %error);
                        tokio::select! {
                            _ = cancel.cancelled() => return,
                            _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                        }
                    }
                }
                // Anything missed while disconnected: every connection re-reads.
                for iid in self.conns.lock().expect("webchat lock").keys() {
                    self.wake(iid, Wake::Changed);
                }
            }
            let (con, cursor) = state.as_mut().expect("tail state");
            let read = tokio::select! {
                _ = cancel.cancelled() => return,
                r = self.engine.read_chat_signals(con, cursor, 1000) => r,
            };
            match read {
                Ok(signals) => {
                    for s in signals {
                        match s {
                            ChatSignal::Changed { interaction_id } => self.wake(&interaction_id, Wake::Changed),
                            ChatSignal::AgentTyping { interaction_id, on } => {
                                self.wake(&interaction_id, Wake::AgentTyping(on));
                            }
                        }
                    }
                }
                Err(error) => {
                    warn!(message = "Web chat tail read failed.", %error);
                    state = None;
                }
            }
        }
    }
}

/// Sessions stay readable a while after the chat (a reload shows the transcript and the end).
fn session_ttl_secs(cfg: &WebChatConfig) -> u64 {
    cfg.resume_window_secs + 3600
}

/// Agent replies are stored in the thread before they reach the channel; the visitor's
/// connection (on whichever instance) is woken by the event log and reads them from there, and
/// a visitor who is away gets them on resume. So delivery only has to refuse chats whose visitor
/// is gone for good.
#[async_trait::async_trait]
impl OutboundChannel for WebChat {
    fn channel(&self) -> Channel {
        Channel::Chat
    }

    async fn deliver(&self, interaction: &Interaction, message: &Message) -> Result<(), DeliveryError> {
        if interaction.attributes.get("source").map(String::as_str) != Some("webchat") {
            return Ok(());
        }
        self.wake(&interaction.id, Wake::Changed);
        match self.engine.chat_last_seen(&interaction.id).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(DeliveryError::Permanent(format!(
                "the visitor has left the chat; message {} is kept in the transcript",
                message.seq
            ))),
            Err(e) => Err(DeliveryError::Transient(e.to_string())),
        }
    }
}
