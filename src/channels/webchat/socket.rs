//! One visitor connection.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, RateLimiter};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::protocol::{self, CallbackOffer, ClientFrame, ClosedInfo, ServerFrame, TopicInfo};
use super::{TICK, Wake, WebChat, per_minute, session_ttl_secs};
use crate::channels::voice::VoiceError;
use crate::model::{Actor, Author, Channel, ClosedAction, InteractionState, NewInteraction};
use switchboard_engine::{ChatSession, ClosedAnswer, EngineError, IfRefused};

/// Server pings keep proxies from closing idle connections and find dead ones.
const PING_EVERY: u32 = 12; // ticks
const MAX_NAME_CHARS: usize = 80;
/// Longest phone number a visitor may give for a callback (spaces and dashes included).
const MAX_NUMBER_CHARS: usize = 40;
/// Who the audit trail says turned a chat into a callback.
const ACTOR: &str = "channel:webchat";
/// Typing "on" is passed on again after this long, so a long pause does not hide it forever.
const TYPING_REPEAT: Duration = Duration::from_secs(3);
/// Frames of any kind (typing and pings included) one connection may send at once, and then per
/// second, before it is closed as a flood (1008). Far beyond the message limit, which is answered
/// with `rate_limited` first: a client whose network flushes its queued messages at once is not
/// an attacker. docs/channels.md "Web chat" documents both figures.
pub(super) const FLOOD_BURST: u32 = 200;
pub(super) const FLOOD_FRAMES_PER_SEC: u32 = 20;
/// A chat with an agent re-reads its thread on this many ticks even without a wake-up (a waiting
/// one on every tick, for its place in line).
const ACTIVE_REFRESH_TICKS: u32 = 5;

/// A connection attached to a chat.
struct Attached {
    iid: String,
    conn: u64,
    /// Highest seq sent to this connection.
    last_seq: u64,
    /// Agent id announced as joined.
    joined: Option<String>,
    ended: bool,
    live: Arc<AtomicBool>,
    /// Place, estimate and whether the callback offer stood, as last sent.
    queue_shown: Option<(Option<u64>, Option<u64>, bool)>,
    typing_sent: Option<(bool, Instant)>,
}

/// Why the loop stops.
enum Stop {
    Gone,
    Shutdown,
    Flood,
}

pub(super) async fn serve(chat: Arc<WebChat>, ws: WebSocket, ip: IpAddr) {
    metrics::counter!("switchboard_webchat_connections_total").increment(1);
    let frames = RateLimiter::direct(
        governor::Quota::per_second(std::num::NonZeroU32::new(FLOOD_FRAMES_PER_SEC).expect("non-zero"))
            .allow_burst(std::num::NonZeroU32::new(FLOOD_BURST).expect("non-zero")),
    );
    let mut c = Connection {
        limiter: RateLimiter::direct(per_minute(chat.cfg.messages_per_minute)),
        chat,
        ws,
        ip,
        attached: None,
    };
    let (tx, mut rx) = mpsc::channel::<Wake>(16);
    let mut topics = Vec::new();
    for t in &c.chat.cfg.topics {
        let closed = closed_info(&c.chat, &t.queue).await;
        topics.push(TopicInfo { name: t.name.clone(), label: t.label().to_string(), closed });
    }
    let hello = ServerFrame::Hello {
        topics,
        max_message_chars: c.chat.cfg.max_message_chars,
        resume_window_secs: c.chat.cfg.resume_window_secs,
        closed: closed_info(&c.chat, &c.chat.cfg.queue).await,
        callback_offer: c
            .chat
            .callback_on()
            .then(|| CallbackOffer { after_secs: c.chat.cfg.offer_callback_after_secs }),
    };
    let mut stop = if c.send(&hello).await { None } else { Some(Stop::Gone) };
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks = 0u32;
    let shutdown = c.chat.shutdown.clone();
    while stop.is_none() {
        stop = tokio::select! {
            _ = shutdown.cancelled() => Some(Stop::Shutdown),
            frame = c.ws.recv() => match frame {
                None | Some(Err(_) | Ok(WsMessage::Close(_))) => Some(Stop::Gone),
                Some(Ok(_)) if frames.check().is_err() => Some(Stop::Flood),
                Some(Ok(WsMessage::Text(t))) => c.on_text(t.as_str(), &tx).await,
                Some(Ok(WsMessage::Binary(_))) => {
                    c.reply_error("bad_frame", "Send JSON text frames, not binary ones.").await
                }
                Some(Ok(_)) => None,
            },
            Some(w) = rx.recv() => match w {
                Wake::Changed => c.refresh().await,
                Wake::AgentTyping(on) => c.send_or_stop(&ServerFrame::Typing { on }).await,
            },
            _ = tick.tick() => {
                ticks += 1;
                if ticks.is_multiple_of(PING_EVERY) && c.ws.send(WsMessage::Ping(Default::default())).await.is_err() {
                    Some(Stop::Gone)
                } else if c.attached.as_ref().is_some_and(|a| {
                    !a.ended && (a.joined.is_none() || ticks.is_multiple_of(ACTIVE_REFRESH_TICKS))
                }) {
                    c.refresh().await
                } else {
                    None
                }
            }
        };
    }
    let close = match stop {
        // 1012: the service restarts; the widget reconnects and resumes on another instance.
        Some(Stop::Shutdown) => Some(CloseFrame { code: 1012, reason: "server restarting".into() }),
        // 1008: policy violation.
        Some(Stop::Flood) => {
            metrics::counter!("switchboard_webchat_errors_total", "code" => "flood").increment(1);
            Some(CloseFrame { code: 1008, reason: "too many frames".into() })
        }
        _ => None,
    };
    if let Some(frame) = close
        && c.ws.send(WsMessage::Close(Some(frame))).await.is_ok()
    {
        // Read on until the client answers the close (briefly): dropping a socket with unread
        // data makes the kernel reset it, and the client would never see why it was closed.
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Some(Ok(m)) = c.ws.recv().await {
                if matches!(m, WsMessage::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
    if let Some(a) = c.attached.take() {
        c.chat.unregister(&a.iid, a.conn);
        if !a.ended {
            // The resume window counts from now.
            match c.chat.engine.now_ms().await {
                Ok(now) => {
                    let _ = c.chat.engine.chat_seen(std::slice::from_ref(&a.iid), now).await;
                }
                Err(error) => debug!(message = "Could not record when a visitor left.", %error),
            }
        }
        debug!(message = "Web chat connection closed.", interaction = %a.iid);
    }
}

struct Connection {
    chat: Arc<WebChat>,
    ws: WebSocket,
    ip: IpAddr,
    limiter: DefaultDirectRateLimiter,
    attached: Option<Attached>,
}

/// What the widget shows for a queue that is closed and whose rule refuses chats (the offline
/// form); None while it is open, holds or overflows chats (the chat starts as usual), or when
/// Redis cannot be asked (the start then meets the rule).
async fn closed_info(chat: &WebChat, queue: &str) -> Option<ClosedInfo> {
    let answer = match chat.engine.closed_rule(queue, Channel::Chat).await {
        Ok(a) => a?,
        Err(error) => {
            debug!(message = "Could not read a queue's hours for the web chat.", %error, %queue);
            return None;
        }
    };
    if answer.action != ClosedAction::Refuse {
        return None;
    }
    let opens = if answer.opens_at_ms.is_some() {
        ClosedAnswer { message: "{opens}".into(), ..answer.clone() }.message_text()
    } else {
        String::new()
    };
    Some(ClosedInfo { opens_at_ms: answer.opens_at_ms, opens, message: answer.message_text() })
}

fn token_hash(token: &str) -> String {
    let d = Sha256::digest(token.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// The token of a chat started with a start id.
fn start_token(visitor: &str, start_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"switchboard-webchat-start\0");
    h.update(visitor.as_bytes());
    h.update(b"\0");
    h.update(start_id.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn new_token() -> String {
    // Two v4 UUIDs: 244 random bits from the OS generator.
    format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
}

impl Connection {
    async fn send(&mut self, f: &ServerFrame) -> bool {
        self.ws.send(WsMessage::Text(f.to_json().into())).await.is_ok()
    }

    async fn send_or_stop(&mut self, f: &ServerFrame) -> Option<Stop> {
        if self.send(f).await { None } else { Some(Stop::Gone) }
    }

    async fn reply_error(&mut self, code: &'static str, message: impl Into<String>) -> Option<Stop> {
        metrics::counter!("switchboard_webchat_errors_total", "code" => code).increment(1);
        self.send_or_stop(&ServerFrame::error(code, message)).await
    }

    /// Counts one message (or start, or resume) against this connection's and this address's
    /// limits; the error says how long to wait. The address's count is shared by every instance
    /// (in Redis); if Redis cannot be asked, this instance's own count stands in.
    fn over_limit(&self) -> impl std::future::Future<Output = Option<String>> + Send + 'static {
        // The address is charged only for what the connection's own limit let through.
        let local = self.limiter.check().map_err(|e| e.wait_time_from(DefaultClock::default().now()));
        // Owned, so no borrow of the connection (and its socket) is held across the await.
        let (chat, ip) = (self.chat.clone(), self.ip);
        async move {
            let please = |wait: Duration| {
                format!(
                    "You are sending messages too quickly. Please wait {} seconds and try again.",
                    wait.as_secs() + 1
                )
            };
            if let Err(wait) = local {
                return Some(please(wait));
            }
            let limit = u64::from(chat.cfg.ip_messages_per_minute);
            match chat.engine.count_in_window("webchat_msg", &ip.to_string(), Duration::from_secs(60)).await {
                Ok((n, _)) if n <= limit => None,
                Ok((_, left)) => Some(please(left)),
                Err(error) => {
                    debug!(message = "Shared web chat limit unavailable; counting on this instance.", %error);
                    let clock = DefaultClock::default();
                    chat.ip_messages.check_key(&ip).err().map(|e| please(e.wait_time_from(clock.now())))
                }
            }
        }
    }

    async fn on_text(&mut self, text: &str, tx: &mpsc::Sender<Wake>) -> Option<Stop> {
        let frame = match protocol::parse(text) {
            Ok(f) => f,
            Err(m) => return self.reply_error("bad_frame", m).await,
        };
        match frame {
            ClientFrame::Ping => self.send_or_stop(&ServerFrame::Pong).await,
            ClientFrame::Start { start_id, visitor, name, email, topic, message } => {
                self.start(start_id, visitor, name, email, topic, message, tx).await
            }
            ClientFrame::Resume { token, last_seq } => self.resume(&token, last_seq, tx).await,
            ClientFrame::Message { body, client_id } => self.message(body, client_id).await,
            ClientFrame::Typing { on } => self.typing(on).await,
            ClientFrame::End => self.end().await,
            ClientFrame::Callback { number, not_before } => self.callback(number, not_before).await,
            ClientFrame::Offline { name, email, topic, message } => self.offline(name, email, topic, message).await,
        }
    }

    async fn field_error(&mut self, code: &'static str, field: &'static str, message: String) -> Option<Stop> {
        metrics::counter!("switchboard_webchat_errors_total", "code" => code).increment(1);
        self.send_or_stop(&ServerFrame::field_error(code, field, message)).await
    }

    /// The offline form: an email interaction in the topic's queue (it waits for the opening),
    /// answered by email to the address given.
    async fn offline(&mut self, name: String, email: String, topic: String, message: String) -> Option<Stop> {
        if self.attached.is_some() {
            return self.reply_error("already_started", "This connection already has a chat.").await;
        }
        if let Some(m) = self.over_limit().await {
            return self.reply_error("rate_limited", m).await;
        }
        let (name, email, message) = (name.trim().to_string(), email.trim().to_string(), message.trim().to_string());
        if name.is_empty() {
            return self.field_error("bad_name", "name", "Please enter your name.".into()).await;
        }
        if let Err((code, m)) = protocol::check_text("Your name", &name, MAX_NAME_CHARS) {
            return self.field_error(code, "name", m).await;
        }
        if email.is_empty() {
            return self
                .field_error("bad_email", "email", "Please enter your email address: we answer by email.".into())
                .await;
        }
        if !protocol::valid_email(&email) {
            return self
                .field_error("bad_email", "email", format!("{email:?} does not look like an email address."))
                .await;
        }
        if message.is_empty() {
            return self.field_error("bad_message", "message", "Please write your message.".into()).await;
        }
        if let Err((code, m)) = protocol::check_text("Your message", &message, self.chat.cfg.max_message_chars) {
            return self.field_error(code, "message", m).await;
        }
        let Some(queue) = self.chat.cfg.queue_for(&topic).map(String::from) else {
            return self.field_error("bad_topic", "topic", format!("Unknown topic {topic:?}.")).await;
        };
        let mut attributes = BTreeMap::from([
            ("source".to_string(), "webchat".to_string()),
            ("webchat.offline".to_string(), "true".to_string()),
            ("name".to_string(), name.clone()),
        ]);
        if !topic.is_empty() {
            attributes.insert("topic".to_string(), topic.clone());
        }
        let subject: String = format!("Web chat message from {name}");
        let new = NewInteraction {
            idempotency_key: String::new(),
            channel: Some(Channel::Email),
            customer_address: email.clone(),
            subject,
            attributes,
            queue,
            priority: None,
            body: message,
            preferred_agent_id: String::new(),
            preferred_agent_wait_secs: 0,
            ..NewInteraction::default()
        };
        let ix = match self.chat.engine.create_interaction_if_refused(&new, IfRefused::Hold).await {
            Ok((ix, _)) => ix,
            Err(EngineError::NotFound(m) | EngineError::FailedPrecondition(m) | EngineError::InvalidArgument(m)) => {
                warn!(message = "Web chat offline message not taken: the topic's queue must take email.", reason = %m, queue = %new.queue);
                return self
                    .reply_error("unavailable", "Messages cannot be left right now. Please try again later.")
                    .await;
            }
            Err(error) => return self.internal(error).await,
        };
        info!(message = "Web chat offline message taken.", interaction = %ix.id, queue = %ix.queue);
        metrics::counter!("switchboard_webchat_offline_total").increment(1);
        self.send_or_stop(&ServerFrame::OfflineReceived { email }).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn start(
        &mut self,
        start_id: String,
        visitor: String,
        name: String,
        email: String,
        topic: String,
        message: String,
        tx: &mpsc::Sender<Wake>,
    ) -> Option<Stop> {
        if self.attached.is_some() {
            return self.reply_error("already_started", "This connection already has a chat.").await;
        }
        if let Some(m) = self.over_limit().await {
            return self.reply_error("rate_limited", m).await;
        }
        let (name, email, message) = (name.trim().to_string(), email.trim().to_string(), message.trim().to_string());
        if let Err((code, m)) = protocol::check_text("Your name", &name, MAX_NAME_CHARS) {
            return self.reply_error(code, m).await;
        }
        if !email.is_empty() && !protocol::valid_email(&email) {
            return self.reply_error("bad_email", format!("{email:?} does not look like an email address.")).await;
        }
        // The agent is offered the chat with its first message: an empty one would show nothing.
        if message.is_empty() {
            return self.reply_error("bad_message", "Write your message to start the chat.").await;
        }
        if let Err((code, m)) = protocol::check_text("Your message", &message, self.chat.cfg.max_message_chars) {
            return self.reply_error(code, m).await;
        }
        let Some(queue) = self.chat.cfg.queue_for(&topic).map(String::from) else {
            return self.reply_error("bad_topic", format!("Unknown topic {topic:?}.")).await;
        };
        if !start_id.is_empty() && !protocol::valid_start_id(&start_id) {
            return self
                .reply_error("bad_frame", "start_id: 32-64 random letters, digits, '-' or '_' (at least 128 bits).")
                .await;
        }
        let visitor = if protocol::valid_client_id(&visitor) && visitor.len() >= 8 {
            visitor
        } else {
            format!("v-{}", uuid::Uuid::new_v4().simple())
        };
        // A retried start (same visitor and start id) gets the chat's one token back, never a
        // second one: the token is a function of the start id, which only the page knows.
        let token = if start_id.is_empty() { new_token() } else { start_token(&visitor, &start_id) };
        let hash = token_hash(&token);
        let label = self.chat.cfg.topics.iter().find(|t| t.name == topic).map(|t| t.label().to_string());
        let mut attributes = BTreeMap::from([("source".to_string(), "webchat".to_string())]);
        for (k, v) in [("name", &name), ("email", &email), ("topic", &topic)] {
            if !v.is_empty() {
                attributes.insert(k.to_string(), v.clone());
            }
        }
        let new = NewInteraction {
            // Keyed by the token's hash: Redis never holds the start id, from which the token follows.
            idempotency_key: if start_id.is_empty() { String::new() } else { format!("webchat|{hash}") },
            channel: Some(Channel::Chat),
            customer_address: visitor.clone(),
            subject: label.unwrap_or_else(|| "Web chat".to_string()),
            attributes,
            queue,
            priority: None,
            body: message,
            preferred_agent_id: String::new(),
            preferred_agent_wait_secs: 0,
            ..NewInteraction::default()
        };
        let engine = &self.chat.engine;
        let ix = match engine.create_interaction(&new).await {
            Ok((ix, _)) => ix,
            Err(EngineError::NotFound(m) | EngineError::FailedPrecondition(m)) => {
                warn!(message = "Web chat cannot start: check webchat.queue / topics.", reason = %m, queue = %new.queue);
                return self
                    .reply_error("unavailable", "Chat is not available right now. Please try again later.")
                    .await;
            }
            Err(EngineError::InvalidArgument(m)) => return self.reply_error("bad_request", m).await,
            Err(error) => return self.internal(error).await,
        };
        let session =
            ChatSession { interaction_id: ix.id.clone(), visitor: visitor.clone(), created_ms: ix.enqueued_ms };
        let now = match engine.now_ms().await {
            Ok(n) => n,
            Err(error) => return self.internal(error).await,
        };
        if let Err(error) = engine.create_chat_session(&hash, &session, session_ttl_secs(&self.chat.cfg)).await {
            return self.internal(error).await;
        }
        if let Err(error) = engine.chat_seen(std::slice::from_ref(&ix.id), now).await {
            return self.internal(error).await;
        }
        info!(message = "Web chat started.", interaction = %ix.id, queue = %ix.queue);
        metrics::counter!("switchboard_webchat_started_total").increment(1);
        self.attach(ix.id.clone(), hash, 0, tx);
        if let Some(stop) = self.send_or_stop(&ServerFrame::Started { token, interaction_id: ix.id, visitor }).await {
            return Some(stop);
        }
        self.refresh().await
    }

    fn attach(&mut self, iid: String, token_hash: String, last_seq: u64, tx: &mpsc::Sender<Wake>) {
        let live = Arc::new(AtomicBool::new(true));
        let conn = self.chat.register(&iid, &token_hash, tx.clone(), live.clone());
        self.attached = Some(Attached {
            iid,
            conn,
            last_seq,
            joined: None,
            ended: false,
            live,
            queue_shown: None,
            typing_sent: None,
        });
    }

    async fn resume(&mut self, token: &str, last_seq: u64, tx: &mpsc::Sender<Wake>) -> Option<Stop> {
        if self.attached.is_some() {
            return self.reply_error("already_started", "This connection already has a chat.").await;
        }
        // Guessing tokens costs the same as sending messages.
        if let Some(m) = self.over_limit().await {
            return self.reply_error("rate_limited", m).await;
        }
        const GONE: &str = "This chat has ended or expired. You can start a new one.";
        if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return self.reply_error("unknown_session", GONE).await;
        }
        let hash = token_hash(token);
        let engine = &self.chat.engine;
        let session = match engine.chat_session(&hash).await {
            Ok(Some(s)) => s,
            Ok(None) => return self.reply_error("unknown_session", GONE).await,
            Err(error) => return self.internal(error).await,
        };
        let ix = match engine.get_interaction(&session.interaction_id, false).await {
            Ok(ix) => ix,
            Err(EngineError::NotFound(_)) => return self.reply_error("unknown_session", GONE).await,
            Err(error) => return self.internal(error).await,
        };
        if !ended(ix.state) {
            let (seen, now) = match (engine.chat_last_seen(&ix.id).await, engine.now_ms().await) {
                (Ok(s), Ok(n)) => (s, n),
                (Err(error), _) | (_, Err(error)) => return self.internal(error).await,
            };
            let window = self.chat.cfg.resume_window_secs * 1000;
            if seen.is_none_or(|s| now.saturating_sub(s) > window) {
                return self
                    .reply_error(
                        "expired_session",
                        "You were away too long; this chat has ended. You can start a new one.",
                    )
                    .await;
            }
            if let Err(error) = engine.chat_seen(std::slice::from_ref(&ix.id), now).await {
                return self.internal(error).await;
            }
        }
        debug!(message = "Web chat resumed.", interaction = %ix.id, last_seq);
        metrics::counter!("switchboard_webchat_resumed_total").increment(1);
        self.attach(ix.id.clone(), hash, last_seq, tx);
        if let Some(stop) = self.send_or_stop(&ServerFrame::Resumed { interaction_id: ix.id }).await {
            return Some(stop);
        }
        self.refresh().await
    }

    async fn message(&mut self, body: String, client_id: String) -> Option<Stop> {
        let Some(a) = &self.attached else {
            return self.reply_error("not_started", "Start or resume a chat first.").await;
        };
        if a.ended {
            return self.reply_error("ended", "This chat has ended.").await;
        }
        let iid = a.iid.clone();
        if let Some(m) = self.over_limit().await {
            return self.reply_error("rate_limited", m).await;
        }
        let body = body.trim().to_string();
        if body.is_empty() {
            return self.reply_error("bad_message", "The message is empty.").await;
        }
        if let Err((code, m)) = protocol::check_text("Your message", &body, self.chat.cfg.max_message_chars) {
            return self.reply_error(code, m).await;
        }
        if !client_id.is_empty() && !protocol::valid_client_id(&client_id) {
            return self.reply_error("bad_frame", "client_id: 1-64 letters, digits, '-' or '_'.").await;
        }
        let engine = &self.chat.engine;
        let stored = if client_id.is_empty() {
            engine.append_customer_message(&iid, &body).await
        } else {
            engine
                .append_customer_message_once(&iid, &body, &format!("webchat-msg|{iid}|{client_id}"))
                .await
                .map(|(m, _)| m)
        };
        let msg = match stored {
            Ok(m) => m,
            Err(EngineError::FailedPrecondition(_)) => {
                let stop = self.refresh().await;
                return stop.or(self.reply_error("ended", "This chat has ended.").await);
            }
            Err(error) => return self.internal(error).await,
        };
        metrics::counter!("switchboard_webchat_messages_total", "author" => "visitor").increment(1);
        if let Some(a) = self.attached.as_mut() {
            a.typing_sent = None;
        }
        if let Some(stop) = self.send_or_stop(&ServerFrame::Sent { client_id, seq: msg.seq }).await {
            return Some(stop);
        }
        self.refresh().await
    }

    async fn typing(&mut self, on: bool) -> Option<Stop> {
        let a = self.attached.as_mut()?;
        if a.ended {
            return None;
        }
        // Passed on only when it changes (or, for "on", every few seconds): a page sending a
        // frame per keystroke costs the agent nothing.
        let due = match a.typing_sent {
            None => on,
            Some((was, at)) => was != on || (on && at.elapsed() >= TYPING_REPEAT),
        };
        if !due {
            return None;
        }
        a.typing_sent = Some((on, Instant::now()));
        let iid = a.iid.clone();
        if let Err(error) = self.chat.engine.customer_typing(&iid, on).await {
            debug!(message = "Typing not passed on.", %error, interaction = %iid);
        }
        None
    }

    async fn end(&mut self) -> Option<Stop> {
        let Some(a) = &self.attached else {
            return self.reply_error("not_started", "Start or resume a chat first.").await;
        };
        if a.ended {
            return None;
        }
        let iid = a.iid.clone();
        if let Err(error) = self.chat.engine.withdraw(&iid, "visitor_ended").await {
            return self.internal(error).await;
        }
        info!(message = "Web chat ended by the visitor.", interaction = %iid);
        self.refresh().await
    }

    /// A waiting visitor takes the callback offered: a call to their number keeps the chat's
    /// place in line, and the chat ends (reason `callback`). Refused, changing nothing, when the
    /// offer does not stand (off, not waited long enough, an agent already has the chat) or the
    /// number is not one.
    async fn callback(&mut self, number: String, not_before: Option<u64>) -> Option<Stop> {
        let Some(a) = &self.attached else {
            return self.reply_error("not_started", "Start or resume a chat first.").await;
        };
        if a.ended {
            return self.reply_error("ended", "This chat has ended.").await;
        }
        let iid = a.iid.clone();
        if !self.chat.callback_on() {
            return self.reply_error("not_offered", "Callbacks are not offered on this chat.").await;
        }
        if let Some(m) = self.over_limit().await {
            return self.reply_error("rate_limited", m).await;
        }
        let number = number.trim().to_string();
        if number.is_empty() {
            return self
                .field_error("bad_number", "number", "number: is required (the phone number we should call).".into())
                .await;
        }
        if number.chars().count() > MAX_NUMBER_CHARS || number.chars().any(char::is_control) {
            return self
                .field_error(
                    "bad_number",
                    "number",
                    format!("number: must be a phone number of at most {MAX_NUMBER_CHARS} characters."),
                )
                .await;
        }
        let ix = match self.chat.engine.get_interaction(&iid, false).await {
            Ok(ix) => ix,
            Err(error) => return self.internal(error).await,
        };
        if let Some((code, m)) = self.chat.callback_refusal(&ix).await {
            return self.reply_error(code, m).await;
        }
        let by = Actor { who: ACTOR.into(), from: self.ip.to_string() };
        let made = match self.chat.voice.callback_instead(&ix, &number, not_before.unwrap_or(0), by).await {
            Ok(made) => made,
            Err(VoiceError::Invalid(m)) => {
                let field = if m.starts_with("not_before") { "not_before" } else { "number" };
                let code = if field == "number" { "bad_number" } else { "bad_request" };
                return self.field_error(code, field, m).await;
            }
            Err(VoiceError::Engine(EngineError::FailedPrecondition(m))) => {
                // An agent took the chat meanwhile, or callbacks cannot be made here.
                if let Ok(fresh) = self.chat.engine.get_interaction(&iid, false).await
                    && let Some((code, why)) = self.chat.callback_refusal(&fresh).await
                {
                    return self.reply_error(code, why).await;
                }
                warn!(message = "A web chat visitor's callback was refused: check cti.callback_system and that the queue takes calls.", reason = %m, interaction = %iid, queue = %ix.queue);
                return self
                    .reply_error(
                        "unavailable",
                        "A callback cannot be arranged right now. Please keep waiting; we will be with you soon.",
                    )
                    .await;
            }
            Err(VoiceError::Engine(error)) => return self.internal(error).await,
            Err(VoiceError::NotFound(m)) => return self.internal(EngineError::NotFound(m)).await,
        };
        let number = made.interaction.callback.as_ref().map(|c| c.number.clone()).unwrap_or_default();
        info!(message = "Web chat visitor took a callback instead of waiting.", interaction = %iid, callback = %made.interaction.id, position = made.position);
        metrics::counter!("switchboard_webchat_callbacks_total").increment(1);
        // Read again now the chat has left the line (made before, it may count the chat too).
        let position = match self.chat.engine.place_in_queue(&made.interaction).await {
            Ok(p) => p,
            Err(_) => (made.position > 0).then_some(u64::from(made.position)),
        };
        if let Some(stop) = self.send_or_stop(&ServerFrame::CallbackScheduled { number, position }).await {
            return Some(stop);
        }
        // The chat has left the queue: `ended` (reason `callback`) follows.
        self.refresh().await
    }

    async fn internal(&mut self, error: EngineError) -> Option<Stop> {
        warn!(message = "Web chat request failed.", %error);
        self.reply_error("unavailable", "Something went wrong on our side. Please try again in a moment.").await
    }

    /// Sends what this connection has not shown yet: new messages, then the chat's state.
    async fn refresh(&mut self) -> Option<Stop> {
        let Some(a) = &self.attached else { return None };
        let (iid, from) = (a.iid.clone(), a.last_seq + 1);
        let engine = self.chat.engine.clone();
        let (ix, messages) = match engine.interaction_with_messages_from(&iid, from).await {
            Ok(r) => r,
            Err(error) => {
                debug!(message = "Web chat refresh failed.", %error, interaction = %iid);
                return None;
            }
        };
        for m in messages {
            let (author, name) = match m.author {
                Author::Customer => ("visitor", None),
                Author::Agent => ("agent", Some(self.chat.agent_name(&m.agent_id).await)),
                Author::System => ("system", None),
            };
            let f = ServerFrame::Message { seq: m.seq, author, name, body: m.body, at_ms: m.sent_ms };
            if !self.send(&f).await {
                return Some(Stop::Gone);
            }
            if let Some(a) = self.attached.as_mut() {
                a.last_seq = a.last_seq.max(m.seq);
            }
        }
        let a = self.attached.as_ref().expect("attached");
        let mut frames = Vec::new();
        let mut joined = a.joined.clone();
        let mut now_ended = a.ended;
        let mut queue_shown = a.queue_shown;
        match ix.state {
            InteractionState::Queued | InteractionState::Offered | InteractionState::Transferred => {
                if joined.take().is_some() {
                    frames.push(ServerFrame::AgentLeft { reason: "transferred".into() });
                    queue_shown = None;
                }
                let position = if ix.state == InteractionState::Offered {
                    Some(1)
                } else {
                    engine.waiting_position(&ix).await.ok().flatten()
                };
                let eta = match position {
                    Some(p) => self.chat.eta_secs(&ix.queue, p).await,
                    None => None,
                };
                let offer = self.chat.callback_on() && self.chat.callback_refusal(&ix).await.is_none();
                if queue_shown != Some((position, eta, offer)) {
                    frames.push(ServerFrame::Queue { position, eta_secs: eta, callback_offer: offer });
                    queue_shown = Some((position, eta, offer));
                }
            }
            InteractionState::Active => {
                if joined.as_deref() != Some(ix.agent_id.as_str()) {
                    let name = self.chat.agent_name(&ix.agent_id).await;
                    frames.push(ServerFrame::AgentJoined { name });
                    joined = Some(ix.agent_id.clone());
                }
            }
            InteractionState::WrapUp | InteractionState::Completed | InteractionState::Abandoned => {
                if !now_ended {
                    let by = match ix.end_reason.as_str() {
                        "visitor_ended" | "customer_left" | "callback" => "visitor",
                        _ if ix.state == InteractionState::Abandoned => "system",
                        _ => "agent",
                    };
                    frames.push(ServerFrame::Ended { by, reason: ix.end_reason.clone() });
                    now_ended = true;
                    if let Err(error) = engine.chat_forget(&iid).await {
                        debug!(message = "Could not stop tracking an ended chat.", %error);
                    }
                }
            }
        }
        if let Some(a) = self.attached.as_mut() {
            a.joined = joined;
            a.queue_shown = queue_shown;
            if now_ended {
                a.ended = true;
                a.live.store(false, Ordering::Relaxed);
            }
        }
        for f in frames {
            if !self.send(&f).await {
                return Some(Stop::Gone);
            }
        }
        None
    }
}

fn ended(s: InteractionState) -> bool {
    matches!(s, InteractionState::WrapUp | InteractionState::Completed | InteractionState::Abandoned)
}
