//! The routing engine: all of Switchboard's Redis, the single source of truth for routing state.
//!
//! Every state transition is one call of a function of the engine's Redis Functions library
//! (atomic, replicated as effects); reads that need no atomicity (snapshots, figures) are plain
//! commands. Key formats live in [`keys`], the library's source in `lua/` (`functions.rs` assembles
//! it). No other crate of Switchboard opens a Redis connection.
//!
//! # Layout
//! - [`Engine`]: the typed operations; [`Calls`]: the same, made as a desktop session's requests
//!   (the pushes for that session come back with each reply, see `caller`).
//! - [`push`]: the instance inbox and the decoding of pushes; [`events`]: the interaction log.
//! - [`email`]: the email channel's bookkeeping; web chat sessions are in `chat`.

mod caller;
mod chat;
mod counted;
pub mod email;
pub mod events;
mod functions;
pub mod keys;
pub mod push;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use caller::{Caller, Calls, Returned, SessionPushes};
pub use chat::{ChatCursor, ChatSession, ChatSignal};
use counted::Counted;
pub use counted::{as_reader, round_trips};
use switchboard_model::routing;
use switchboard_model::{
    AgentSpec, Author, Capacity, Channel, EventKind, Interaction, InteractionState, Message, NewInteraction, Presence,
    QueueSpec,
};

/// The shared, self-reconnecting connection.
pub type SharedConnection = Counted<ConnectionManager>;
/// A connection of its own, for blocking reads.
pub type DedicatedConnection = Counted<redis::aio::MultiplexedConnection>;
pub use functions::Constants;
use functions::{Function, Functions};
pub use keys::Keys;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    Unauthenticated(String),
    /// A concurrent change invalidated what the call was computed from; computing it again
    /// succeeds (admin changes retry on their own a number of times first).
    #[error("{0}")]
    Retry(String),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("unexpected data in redis: {0}")]
    Corrupt(String),
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub key_root: String,
    pub presence_grace: Duration,
    pub figures_window: Duration,
    pub cross_channel_blocking: bool,
    /// 0: the event log is trimmed only by the CRM deliverer; otherwise capped at about this many.
    pub events_maxlen: u64,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            key_root: "sb:{default}:".into(),
            presence_grace: Duration::from_secs(30),
            figures_window: Duration::from_secs(900),
            cross_channel_blocking: true,
            events_maxlen: 1_000_000,
        }
    }
}

/// An agent's live state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentStatus {
    pub id: String,
    pub name: String,
    pub presence: Presence,
    pub presence_since_ms: u64,
    pub connected: bool,
    pub session: String,
    pub load: BTreeMap<Channel, u32>,
    pub capacity: Capacity,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueueFigures {
    pub queue: String,
    pub waiting: u32,
    pub longest_wait_ms: u64,
    pub offered: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub missed: u64,
    pub abandoned: u64,
    pub service_level_percent: Option<f64>,
    pub average_speed_of_answer_secs: f64,
    pub average_handle_time_secs: f64,
    pub window_secs: u32,
    pub agents_by_presence: BTreeMap<String, u32>,
    pub occupancy_percent: f64,
    pub at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferTarget {
    Queue(String),
    Agent { id: String, wait: Duration },
}

/// One entry of the event log (the `events` stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEvent {
    /// Stream entry id: unique within the routing domain, time-ordered.
    pub id: String,
    pub typ: String,
    pub interaction_id: String,
    pub agent_id: String,
    pub queue: String,
    pub at_ms: u64,
    /// JSON object.
    pub details: String,
}

impl LoggedEvent {
    /// None for a kind this build does not know (a newer instance wrote it): such an event is
    /// still delivered, as its wire name.
    pub fn kind(&self) -> Option<EventKind> {
        EventKind::parse(&self.typ)
    }
}

/// What one holder at a time may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease<'a> {
    /// Delivering the event log to the CRM.
    Outbox,
    /// Reading this mailbox.
    Mailbox(&'a str),
}

/// The consumer group the CRM deliverer reads the event log through.
pub const OUTBOX_GROUP: &str = "crm";

/// Result of one timer sweep.
#[derive(Debug, Clone, Copy)]
pub struct TimerSweep {
    pub fired: usize,
    pub next_due_ms: Option<u64>,
    pub now_ms: u64,
}

#[derive(Clone)]
pub struct Engine {
    con: Counted<ConnectionManager>,
    client: redis::Client,
    keys: Keys,
    functions: std::sync::Arc<Functions>,
    opts: EngineOptions,
}

/// About how many entries an instance's inbox keeps (the hub trims what it has delivered).
const INBOX_MAXLEN: u64 = 100_000;

/// Attempts for admin functions that lose an optimistic race with a concurrent admin change.
const ADMIN_RETRIES: usize = 20;

impl Engine {
    pub async fn connect(url: &str, opts: EngineOptions) -> Result<Engine> {
        let client = redis::Client::open(url)?;
        // Admin scripts on large centers can take a while; reconnection is handled by the manager.
        let cfg = ConnectionManagerConfig::new()
            .set_response_timeout(Some(Duration::from_secs(30)))
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(3);
        let con = ConnectionManager::new_with_config(client.clone(), cfg).await?;
        let consts = Constants {
            key_root: opts.key_root.clone(),
            grace_ms: opts.presence_grace.as_millis() as u64,
            figures_ttl_secs: opts.figures_window.as_secs() + 120,
            interaction_ttl_secs: 7 * 86_400,
            idempotency_ttl_secs: 86_400,
            events_maxlen: opts.events_maxlen,
            inbox_maxlen: INBOX_MAXLEN,
            max_messages: 10_000,
        };
        let engine = Engine {
            con: Counted::shared(con),
            client,
            keys: Keys::new(opts.key_root.clone()),
            functions: std::sync::Arc::new(Functions::new(&consts)),
            opts,
        };
        engine.load_library().await?;
        Ok(engine)
    }

    /// Loads the operations' library (idempotent: same source, same name). Also needed after a
    /// Redis restart without persistence or a `FUNCTION FLUSH`, which `run` notices.
    async fn load_library(&self) -> Result<()> {
        let mut con = self.con.clone();
        let _: String = redis::cmd("FUNCTION")
            .arg("LOAD")
            .arg("REPLACE")
            .arg(&self.functions.library)
            .query_async(&mut con)
            .await?;
        tracing::debug!(library = %self.functions.library_name, "loaded the routing functions into Redis");
        Ok(())
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// A dedicated connection for blocking reads (XREAD BLOCK would stall a shared pipeline).
    pub async fn dedicated_connection(&self) -> Result<DedicatedConnection> {
        // Blocking reads wait up to their BLOCK time; the response timeout must allow for it.
        let cfg = redis::AsyncConnectionConfig::new()
            .set_response_timeout(Some(Duration::from_secs(30)))
            .set_connection_timeout(Some(Duration::from_secs(5)));
        Ok(Counted::dedicated(self.client.get_multiplexed_async_connection_with_config(&cfg).await?))
    }

    pub async fn ping(&self) -> Result<()> {
        let mut con = self.con.clone();
        let _: String = redis::cmd("PING").query_async(&mut con).await?;
        Ok(())
    }

    async fn run(&self, name: &'static str, function: &Function, args: &[String]) -> Result<Vec<String>> {
        self.run_by(None, name, function, args).await
    }

    /// One function call; with a caller, the pushes for its session come back with the reply
    /// and are kept in it (see `caller`).
    async fn run_by(
        &self,
        by: Option<&Caller>,
        name: &'static str,
        function: &Function,
        args: &[String],
    ) -> Result<Vec<String>> {
        let mut con = self.con.clone();
        // KEYS[1] only routes the call to the domain's slot; functions build their keys from the root.
        // The calling desktop session, if any, goes first.
        let (caller_agent, caller_session) = by.map_or(("", ""), |c| (c.agent(), c.session()));
        let mut cmd = redis::cmd("FCALL");
        cmd.arg(&function.0).arg(1).arg(self.keys.meta()).arg(caller_agent).arg(caller_session).arg(args);
        let started = std::time::Instant::now();
        let mut reply: std::result::Result<Vec<String>, redis::RedisError> = cmd.query_async(&mut con).await;
        if reply.as_ref().is_err_and(is_function_missing) {
            tracing::warn!(library = %self.functions.library_name, "Redis lost the routing functions; loading them again");
            self.load_library().await?;
            reply = cmd.query_async(&mut con).await;
        }
        metrics::histogram!("switchboard_function_seconds", "function" => name).record(started.elapsed().as_secs_f64());
        let reply = match reply {
            Ok(r) => r,
            Err(e) => {
                metrics::counter!("switchboard_function_errors_total", "function" => name).increment(1);
                return Err(e.into());
            }
        };
        match reply.first().map(String::as_str) {
            Some("ok") => {
                let (values, pushes) = caller::split_reply(&reply[1..])
                    .ok_or_else(|| EngineError::Corrupt(format!("function reply without its trailer: {reply:?}")))?;
                let values = values.to_vec();
                if let Some(c) = by {
                    self.keep_returned(c, pushes).await;
                }
                Ok(values)
            }
            Some("err") => {
                let code = reply.get(1).map(String::as_str).unwrap_or("");
                let msg = reply.get(2).cloned().unwrap_or_default();
                Err(match code {
                    "NOT_FOUND" => EngineError::NotFound(msg),
                    "INVALID" => EngineError::InvalidArgument(msg),
                    "PRECONDITION" => EngineError::FailedPrecondition(msg),
                    "RETRY" => EngineError::Retry(msg),
                    "EXISTS" => EngineError::AlreadyExists(msg),
                    "UNAUTH" => EngineError::Unauthenticated(msg),
                    other => EngineError::Corrupt(format!("script error code {other:?}: {msg}")),
                })
            }
            _ => Err(EngineError::Corrupt(format!("unexpected script reply {reply:?}"))),
        }
    }

    /// A concurrent admin change invalidated the eligibility computed for this one: recompute.
    fn is_retry(r: &Result<Vec<String>>) -> bool {
        matches!(r, Err(EngineError::Retry(_)))
    }

    // ------------------------------------------------------------------ admin

    pub async fn put_agent(&self, spec: &AgentSpec, allow_update: bool) -> Result<bool> {
        spec.validate().map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
        let mut public = spec.clone();
        public.token.clear();
        let spec_json = serde_json::to_string(&public).expect("agent spec serializes");
        let block = spec.cross_channel_blocking.unwrap_or(self.opts.cross_channel_blocking);
        let mut attempt = 0;
        let r = loop {
            attempt += 1;
            let args = {
                let ver = self.meta_version("queues_ver").await?;
                let queues = self.list_queues().await?;
                let mut args = vec![
                    spec.id.clone(),
                    if allow_update { "1" } else { "0" }.to_string(),
                    ver,
                    spec.name.clone(),
                    spec.token.clone(),
                    if block { "1" } else { "0" }.to_string(),
                    spec.capacity.voice.to_string(),
                    spec.capacity.chat.to_string(),
                    spec.capacity.sms.to_string(),
                    spec.capacity.email.to_string(),
                    spec_json.clone(),
                ];
                for (pool, score) in routing::agent_pools(spec, &queues) {
                    args.push(pool);
                    args.push(score.to_string());
                }
                args
            };
            let r = self.run("put_agent", &self.functions.put_agent, &args).await;
            if !Self::is_retry(&r) || attempt >= ADMIN_RETRIES {
                break r?;
            }
        };
        Ok(r.first().is_some_and(|s| s == "1"))
    }

    async fn meta_version(&self, field: &str) -> Result<String> {
        let mut con = self.con.clone();
        let v: Option<String> = con.hget(self.keys.meta(), field).await?;
        Ok(v.unwrap_or_else(|| "0".into()))
    }

    pub async fn get_agent(&self, id: &str) -> Result<AgentSpec> {
        let mut con = self.con.clone();
        let spec: Option<String> = con.hget(self.keys.agent(id), "spec").await?;
        let spec = spec.ok_or_else(|| EngineError::NotFound(format!("agent_id: no agent {id:?}")))?;
        serde_json::from_str(&spec).map_err(|e| EngineError::Corrupt(format!("agent {id}: {e}")))
    }

    pub async fn list_agent_ids(&self) -> Result<Vec<String>> {
        let mut con = self.con.clone();
        let mut ids: Vec<String> = con.smembers(self.keys.agents()).await?;
        ids.sort();
        Ok(ids)
    }

    pub async fn list_agents(&self) -> Result<Vec<AgentSpec>> {
        let ids = self.list_agent_ids().await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut con = self.con.clone();
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.hget(self.keys.agent(id), "spec");
        }
        let specs: Vec<Option<String>> = pipe.query_async(&mut con).await?;
        specs
            .into_iter()
            .flatten()
            .map(|s| serde_json::from_str(&s).map_err(|e| EngineError::Corrupt(format!("agent spec: {e}"))))
            .collect()
    }

    pub async fn delete_agent(&self, id: &str) -> Result<()> {
        self.run("delete_agent", &self.functions.delete_agent, &[id.to_string()]).await.map(|_| ())
    }

    pub async fn put_queue(&self, spec: &QueueSpec, allow_update: bool) -> Result<bool> {
        spec.validate().map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
        let spec_json = serde_json::to_string(spec).expect("queue spec serializes");
        let steps = serde_json::to_string(&spec.compiled_steps()).expect("steps serialize");
        let stages = spec.stage_requirements().len();
        let overflow: Vec<String> = spec.compiled_steps().into_iter().filter_map(|s| s.overflow).collect();
        let channels: Vec<&str> = spec.channels.iter().map(|c| c.as_str()).collect();
        let mut attempt = 0;
        let r = loop {
            attempt += 1;
            let args = {
                let ver = self.meta_version("agents_ver").await?;
                let agents = self.list_agents().await?;
                let mut args = vec![
                    spec.name.clone(),
                    if allow_update { "1" } else { "0" }.to_string(),
                    ver,
                    spec.strategy.as_str().to_string(),
                    channels.join(","),
                    spec.priority.to_string(),
                    (u64::from(spec.offer_timeout_secs) * 1000).to_string(),
                    (u64::from(spec.wrap_up_secs) * 1000).to_string(),
                    (u64::from(spec.service_level_secs) * 1000).to_string(),
                    stages.to_string(),
                    steps.clone(),
                    spec_json.clone(),
                    overflow.join(","),
                ];
                for (aid, stage, score) in routing::queue_members(spec, &agents) {
                    args.push(aid);
                    args.push(stage.to_string());
                    args.push(score.to_string());
                }
                args
            };
            let r = self.run("put_queue", &self.functions.put_queue, &args).await;
            if !Self::is_retry(&r) || attempt >= ADMIN_RETRIES {
                break r?;
            }
        };
        Ok(r.first().is_some_and(|s| s == "1"))
    }

    pub async fn get_queue(&self, name: &str) -> Result<QueueSpec> {
        let mut con = self.con.clone();
        let spec: Option<String> = con.hget(self.keys.queue(name), "spec").await?;
        let spec = spec.ok_or_else(|| EngineError::NotFound(format!("queue: no queue named {name:?}")))?;
        serde_json::from_str(&spec).map_err(|e| EngineError::Corrupt(format!("queue {name}: {e}")))
    }

    pub async fn list_queue_names(&self) -> Result<Vec<String>> {
        let mut con = self.con.clone();
        let mut names: Vec<String> = con.smembers(self.keys.queues()).await?;
        names.sort();
        Ok(names)
    }

    pub async fn list_queues(&self) -> Result<Vec<QueueSpec>> {
        let names = self.list_queue_names().await?;
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut con = self.con.clone();
        let mut pipe = redis::pipe();
        for n in &names {
            pipe.hget(self.keys.queue(n), "spec");
        }
        let specs: Vec<Option<String>> = pipe.query_async(&mut con).await?;
        specs
            .into_iter()
            .flatten()
            .map(|s| serde_json::from_str(&s).map_err(|e| EngineError::Corrupt(format!("queue spec: {e}"))))
            .collect()
    }

    pub async fn delete_queue(&self, name: &str) -> Result<()> {
        self.run("delete_queue", &self.functions.delete_queue, &[name.to_string()]).await.map(|_| ())
    }

    // ------------------------------------------------------------------ interactions

    /// Returns the interaction and whether this call created it (false: idempotent replay).
    pub async fn create_interaction(&self, new: &NewInteraction) -> Result<(Interaction, bool)> {
        let channel = new.validate().map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
        let id = uuid::Uuid::now_v7().to_string();
        let attrs = serde_json::to_string(&new.attributes).expect("attributes serialize");
        let args = vec![
            id,
            new.idempotency_key.clone(),
            channel.as_str().to_string(),
            new.customer_address.clone(),
            new.subject.clone(),
            attrs,
            new.queue.clone(),
            new.priority.map(|p| p.to_string()).unwrap_or_default(),
            new.body.clone(),
            new.preferred_agent_id.clone(),
            (u64::from(new.preferred_agent_wait_secs) * 1000).to_string(),
        ];
        let r = self.run("create", &self.functions.create, &args).await?;
        let created = r.get(1).is_some_and(|s| s == "1");
        let id = r.first().ok_or_else(|| EngineError::Corrupt(format!("create reply {r:?}")))?;
        Ok((interaction_from_reply(id, r.get(2..).unwrap_or_default(), false)?, created))
    }

    pub async fn append_customer_message(&self, iid: &str, body: &str) -> Result<Message> {
        Ok(self.message_in(iid, body, "", Author::Customer).await?.0)
    }

    /// Appends a customer message once per `key`: a retry with the same key returns the first
    /// message and `false`.
    pub async fn append_customer_message_once(&self, iid: &str, body: &str, key: &str) -> Result<(Message, bool)> {
        self.message_in(iid, body, key, Author::Customer).await
    }

    /// A note from a channel about the conversation (a bounce, a delivery failure), shown to the
    /// agent as a system message; once per `key` like [`Engine::append_customer_message_once`].
    pub async fn append_system_message_once(&self, iid: &str, body: &str, key: &str) -> Result<(Message, bool)> {
        self.message_in(iid, body, key, Author::System).await
    }

    async fn message_in(&self, iid: &str, body: &str, key: &str, author: Author) -> Result<(Message, bool)> {
        validate_body(body)?;
        let who = if author == Author::System { "system" } else { "customer" };
        let r = self.run("message_in", &self.functions.message_in, &[iid, body, key, who].map(String::from)).await?;
        let seq = parse_u64(r.first())?;
        if r.get(2).is_some_and(|s| s == "1") {
            // Appended now: the script's reply says all there is to know about it.
            let sent_ms = parse_u64(r.get(1))?;
            let m = Message { seq, author, agent_id: String::new(), body: body.to_string(), sent_ms };
            return Ok((m, true));
        }
        // A replay: the first message, as stored.
        Ok((self.message(iid, seq).await?, false))
    }

    pub async fn withdraw(&self, iid: &str, reason: &str) -> Result<Interaction> {
        switchboard_model::validate_len("reason", reason, 200)
            .map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
        let reason = if reason.is_empty() { "customer_left" } else { reason };
        self.run("withdraw", &self.functions.withdraw, &[iid.to_string(), reason.to_string()]).await?;
        self.get_interaction(iid, false).await
    }

    pub async fn get_interaction(&self, iid: &str, with_messages: bool) -> Result<Interaction> {
        self.interactions(&[iid.to_string()], with_messages)
            .await?
            .pop()
            .flatten()
            .ok_or_else(|| EngineError::NotFound(format!("interaction_id: no interaction {iid:?}")))
    }

    /// Several interactions in one round trip (None where one no longer exists), in `ids` order.
    pub async fn interactions(&self, ids: &[String], with_messages: bool) -> Result<Vec<Option<Interaction>>> {
        if with_messages {
            return Ok(self.interactions_and_messages(ids, &[]).await?.0);
        }
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut con = self.con.clone();
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hgetall(self.keys.ix(id));
        }
        let hashes: Vec<HashMap<String, String>> = pipe.query_async(&mut con).await?;
        ids.iter()
            .zip(&hashes)
            .map(|(id, h)| if h.is_empty() { Ok(None) } else { interaction_from_hash(id, h).map(Some) })
            .collect()
    }

    /// Interactions (with their threads) and single messages `(interaction, seq)`, all in one
    /// round trip; None where one does not exist.
    pub async fn interactions_and_messages(
        &self,
        ids: &[String],
        messages: &[(String, u64)],
    ) -> Result<(Vec<Option<Interaction>>, Vec<Option<Message>>)> {
        if ids.is_empty() && messages.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let mut con = self.con.clone();
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hgetall(self.keys.ix(id));
            pipe.lrange(self.keys.ix_msgs(id), 0, -1);
        }
        for (id, seq) in messages {
            pipe.lindex(self.keys.ix_msgs(id), *seq as isize - 1);
        }
        let replies: Vec<redis::Value> = pipe.query_async(&mut con).await?;
        let decode = |e: redis::ParsingError| EngineError::Corrupt(e.to_string());
        let (ix_replies, msg_replies) = replies.split_at(ids.len() * 2);
        let interactions = ix_replies
            .chunks(2)
            .zip(ids)
            .map(|(r, id)| {
                let h: HashMap<String, String> = redis::from_redis_value(r[0].clone()).map_err(decode)?;
                if h.is_empty() {
                    return Ok(None);
                }
                let mut ix = interaction_from_hash(id, &h)?;
                let raw: Vec<String> = redis::from_redis_value(r[1].clone()).map_err(decode)?;
                ix.messages = raw.iter().map(|m| parse_message(m)).collect::<Result<_>>()?;
                Ok(Some(ix))
            })
            .collect::<Result<Vec<_>>>()?;
        let messages = msg_replies
            .iter()
            .map(|v| {
                let raw: Option<String> = redis::from_redis_value(v.clone()).map_err(decode)?;
                raw.map(|r| parse_message(&r)).transpose()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((interactions, messages))
    }

    pub async fn messages(&self, iid: &str) -> Result<Vec<Message>> {
        let mut con = self.con.clone();
        let raw: Vec<String> = con.lrange(self.keys.ix_msgs(iid), 0, -1).await?;
        raw.iter().map(|s| parse_message(s)).collect()
    }

    pub async fn message(&self, iid: &str, seq: u64) -> Result<Message> {
        let mut con = self.con.clone();
        let raw: Option<String> = con.lindex(self.keys.ix_msgs(iid), seq as isize - 1).await?;
        let raw = raw.ok_or_else(|| EngineError::NotFound(format!("message {seq} of {iid}")))?;
        parse_message(&raw)
    }

    // ------------------------------------------------------------------ agents

    pub async fn login(&self, aid: &str, token: &str, instance: &str, session: &str) -> Result<()> {
        let args = [aid, token, instance, session].map(String::from);
        self.run("login", &self.functions.login, &args).await.map(|_| ())
    }

    /// Puts a push into an instance's inbox, as the routing functions do (a push a reply returned
    /// for a session that could not be shown from there).
    pub async fn push(&self, instance: &str, aid: &str, session: &str, kind: &str, data: &str) -> Result<()> {
        let mut con = self.con.clone();
        let _: String = redis::cmd("XADD")
            .arg(self.keys.inbox(instance))
            .arg("MAXLEN")
            .arg("~")
            .arg(INBOX_MAXLEN)
            .arg("*")
            .arg(&[("agent", aid), ("session", session), ("kind", kind), ("data", data)])
            .query_async(&mut con)
            .await?;
        Ok(())
    }

    /// The desktop stream ended: the agent goes offline after the grace period unless it
    /// reconnects. `release_offers` (this instance is shutting down): its pending offers go back to
    /// the queue now instead of waiting out the grace period.
    pub async fn disconnect(&self, aid: &str, session: &str, release_offers: bool) -> Result<()> {
        let args = [aid, session, if release_offers { "release" } else { "" }].map(String::from);
        self.run("disconnect", &self.functions.disconnect, &args).await.map(|_| ())
    }

    pub async fn set_presence(&self, aid: &str, presence: &Presence, cause: &str) -> Result<()> {
        self.set_presence_by(None, aid, presence, cause).await
    }

    pub(crate) async fn set_presence_by(
        &self,
        by: Option<&Caller>,
        aid: &str,
        presence: &Presence,
        cause: &str,
    ) -> Result<()> {
        switchboard_model::validate_len("presence.reason", presence.reason(), 100)
            .map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
        let args = [aid, presence.state_str(), presence.reason(), cause, ""].map(String::from);
        self.run_by(by, "presence", &self.functions.presence, &args).await.map(|_| ())
    }

    /// Supervisor logout: offline now (pending offers go back), and the desktop stream is closed.
    pub async fn logout(&self, aid: &str) -> Result<()> {
        let args = [aid, "offline", "", "supervisor", "1"].map(String::from);
        self.run("presence", &self.functions.presence, &args).await.map(|_| ())
    }

    /// Accepts an offer; the agent's session is told with an `assigned` push (made through
    /// [`Engine::calls`], it comes back with the reply like any other).
    pub async fn accept(&self, aid: &str, iid: &str) -> Result<Interaction> {
        self.accept_by(None, aid, iid).await
    }

    pub(crate) async fn accept_by(&self, by: Option<&Caller>, aid: &str, iid: &str) -> Result<Interaction> {
        let r = self.run_by(by, "accept", &self.functions.accept, &[aid.to_string(), iid.to_string()]).await?;
        interaction_from_reply(iid, &r, true)
    }

    pub async fn reject(&self, aid: &str, iid: &str, reason: &str) -> Result<()> {
        self.reject_by(None, aid, iid, reason).await
    }

    pub(crate) async fn reject_by(&self, by: Option<&Caller>, aid: &str, iid: &str, reason: &str) -> Result<()> {
        switchboard_model::validate_len("reason", reason, 200)
            .map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
        let args = [aid, iid, reason].map(String::from);
        self.run_by(by, "reject", &self.functions.reject, &args).await.map(|_| ())
    }

    pub async fn reply(&self, aid: &str, iid: &str, body: &str) -> Result<Message> {
        self.reply_by(None, aid, iid, body).await
    }

    pub(crate) async fn reply_by(&self, by: Option<&Caller>, aid: &str, iid: &str, body: &str) -> Result<Message> {
        validate_body(body)?;
        let args = [aid, iid, body].map(String::from);
        let r = self.run_by(by, "reply", &self.functions.reply, &args).await?;
        self.message(iid, parse_u64(r.first())?).await
    }

    pub async fn complete(&self, aid: &str, iid: &str, disposition: &str, notes: &str) -> Result<Interaction> {
        self.complete_by(None, aid, iid, disposition, notes).await
    }

    pub(crate) async fn complete_by(
        &self,
        by: Option<&Caller>,
        aid: &str,
        iid: &str,
        disposition: &str,
        notes: &str,
    ) -> Result<Interaction> {
        validate_disposition(disposition, notes)?;
        let args = [aid, iid, disposition, notes].map(String::from);
        let r = self.run_by(by, "complete", &self.functions.complete, &args).await?;
        interaction_from_reply(iid, &r, false)
    }

    pub async fn end_wrap_up(&self, aid: &str, iid: &str, disposition: &str, notes: &str) -> Result<Interaction> {
        self.end_wrap_up_by(None, aid, iid, disposition, notes).await
    }

    pub(crate) async fn end_wrap_up_by(
        &self,
        by: Option<&Caller>,
        aid: &str,
        iid: &str,
        disposition: &str,
        notes: &str,
    ) -> Result<Interaction> {
        validate_disposition(disposition, notes)?;
        let args = [aid, iid, disposition, notes].map(String::from);
        self.run_by(by, "end_wrap", &self.functions.end_wrap, &args).await?;
        self.get_interaction(iid, false).await
    }

    pub async fn transfer(
        &self,
        aid: &str,
        iid: &str,
        target: &TransferTarget,
        priority_boost: i32,
    ) -> Result<Interaction> {
        self.transfer_by(None, aid, iid, target, priority_boost).await
    }

    pub(crate) async fn transfer_by(
        &self,
        by: Option<&Caller>,
        aid: &str,
        iid: &str,
        target: &TransferTarget,
        priority_boost: i32,
    ) -> Result<Interaction> {
        if !(-switchboard_model::MAX_PRIORITY..=switchboard_model::MAX_PRIORITY).contains(&priority_boost) {
            return Err(EngineError::InvalidArgument(format!(
                "priority_boost: must be within ±{}, got {priority_boost}",
                switchboard_model::MAX_PRIORITY
            )));
        }
        let (kind, to, wait_ms) = match target {
            TransferTarget::Queue(q) => {
                switchboard_model::validate_id("queue", q).map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
                ("queue", q.clone(), 0)
            }
            TransferTarget::Agent { id, wait } => {
                switchboard_model::validate_id("agent_id", id)
                    .map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
                ("agent", id.clone(), wait.as_millis() as u64)
            }
        };
        let args = vec![
            aid.to_string(),
            iid.to_string(),
            kind.to_string(),
            to,
            priority_boost.to_string(),
            wait_ms.to_string(),
        ];
        self.run_by(by, "transfer", &self.functions.transfer, &args).await?;
        self.get_interaction(iid, false).await
    }

    pub async fn agent_status(&self, aid: &str) -> Result<AgentStatus> {
        let mut con = self.con.clone();
        let h: HashMap<String, String> = con.hgetall(self.keys.agent(aid)).await?;
        if h.is_empty() {
            return Err(EngineError::NotFound(format!("agent_id: no agent {aid:?}")));
        }
        agent_status_from_hash(aid, &h)
    }

    pub async fn list_agent_statuses(&self) -> Result<Vec<AgentStatus>> {
        let ids = self.list_agent_ids().await?;
        self.agent_statuses(&ids).await
    }

    pub async fn agent_statuses(&self, ids: &[String]) -> Result<Vec<AgentStatus>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut con = self.con.clone();
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hgetall(self.keys.agent(id));
        }
        let hs: Vec<HashMap<String, String>> = pipe.query_async(&mut con).await?;
        ids.iter().zip(hs).filter(|(_, h)| !h.is_empty()).map(|(id, h)| agent_status_from_hash(id, &h)).collect()
    }

    /// Offers and interactions the agent holds, oldest first.
    pub async fn agent_work(&self, aid: &str) -> Result<Vec<Interaction>> {
        let mut con = self.con.clone();
        let ids: Vec<String> = con.smembers(self.keys.agent_work(aid)).await?;
        let mut out: Vec<Interaction> =
            self.interactions(&ids, true).await?.into_iter().flatten().filter(|ix| ix.agent_id == aid).collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    // ------------------------------------------------------------------ supervisor

    /// Supervisor move of a waiting interaction to `queue`, keeping its age. `clear_exclusions`:
    /// the agents who rejected or missed it may be offered it again; an empty `queue` then keeps
    /// it where it is (and at its escalation stage).
    pub async fn move_interaction(&self, iid: &str, queue: &str, clear_exclusions: bool) -> Result<Interaction> {
        if !(queue.is_empty() && clear_exclusions) {
            switchboard_model::validate_id("queue", queue).map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
        }
        let args = [iid, queue, if clear_exclusions { "1" } else { "" }].map(String::from);
        self.run("move_ix", &self.functions.move_ix, &args).await?;
        let mut ix = self.get_interaction(iid, false).await?;
        self.with_exclusions(std::slice::from_mut(&mut ix)).await?;
        Ok(ix)
    }

    pub async fn reprioritize(&self, iid: &str, priority: i32) -> Result<Interaction> {
        switchboard_model::validate_priority("priority", priority)
            .map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
        self.run("reprioritize", &self.functions.reprioritize, &[iid.to_string(), priority.to_string()]).await?;
        self.get_interaction(iid, false).await
    }

    /// Fills in the agents each interaction excludes (one round trip for all), for supervisors:
    /// routing reads them where it needs them.
    pub async fn with_exclusions(&self, ixs: &mut [Interaction]) -> Result<()> {
        if ixs.is_empty() {
            return Ok(());
        }
        let mut con = self.con.clone();
        let mut pipe = redis::pipe();
        for ix in ixs.iter() {
            pipe.smembers(self.keys.ix_excl(&ix.id));
        }
        let sets: Vec<Vec<String>> = pipe.query_async(&mut con).await?;
        for (ix, mut agents) in ixs.iter_mut().zip(sets) {
            agents.sort();
            ix.excluded_agents = agents;
        }
        Ok(())
    }

    /// Waiting interactions, best first (highest priority, then longest waiting), with the
    /// agents each excludes.
    pub async fn list_waiting(&self, queue: Option<&str>, limit: usize) -> Result<Vec<Interaction>> {
        let queues = match queue {
            Some(q) => {
                self.get_queue(q).await?;
                vec![q.to_string()]
            }
            None => self.list_queue_names().await?,
        };
        let mut con = self.con.clone();
        let mut out = Vec::new();
        for q in queues {
            let ids: Vec<String> = con.zrange(self.keys.qwait(&q), 0, -1).await?;
            out.extend(self.interactions(&ids, false).await?.into_iter().flatten());
        }
        out.sort_by(|a, b| {
            routing::wait_score(a.priority, a.enqueued_ms).total_cmp(&routing::wait_score(b.priority, b.enqueued_ms))
        });
        out.truncate(limit);
        self.with_exclusions(&mut out).await?;
        Ok(out)
    }

    pub async fn queue_figures(&self, queue: &str) -> Result<QueueFigures> {
        let spec = self.get_queue(queue).await?;
        let now = self.now_ms().await?;
        let window = self.opts.figures_window.as_secs().max(60);
        let minutes = window / 60;
        let this_minute = now / 60_000;
        let mut con = self.con.clone();
        let mut pipe = redis::pipe();
        pipe.zcard(self.keys.qwait(queue));
        pipe.zrange_withscores(self.keys.qwait(queue), 0, 0);
        for m in 0..minutes {
            pipe.hgetall(self.keys.fig(queue, this_minute - m));
        }
        let stages = spec.stage_requirements().len();
        let pools: Vec<String> = (0..stages).map(|s| self.keys.pool_agents(&keys::pool(queue, s))).collect();
        pipe.sunion(pools);
        let (head, rest): (Vec<redis::Value>, Vec<redis::Value>) = {
            let all: Vec<redis::Value> = pipe.query_async(&mut con).await?;
            let mut it = all.into_iter();
            let head: Vec<redis::Value> = it.by_ref().take(2).collect();
            (head, it.collect())
        };
        let waiting: u32 = redis::from_redis_value(head[0].clone()).map_err(|e| EngineError::Corrupt(e.to_string()))?;
        let oldest: Vec<(String, f64)> =
            redis::from_redis_value(head[1].clone()).map_err(|e| EngineError::Corrupt(e.to_string()))?;
        let mut sums: HashMap<String, u64> = HashMap::new();
        for v in &rest[..minutes as usize] {
            let h: HashMap<String, u64> =
                redis::from_redis_value(v.clone()).map_err(|e| EngineError::Corrupt(e.to_string()))?;
            for (k, n) in h {
                *sums.entry(k).or_default() += n;
            }
        }
        let members: Vec<String> =
            redis::from_redis_value(rest[minutes as usize].clone()).map_err(|e| EngineError::Corrupt(e.to_string()))?;
        let agents = self.agent_statuses(&members).await?;
        let get = |k: &str| sums.get(k).copied().unwrap_or(0);
        let (accepted, abandoned) = (get("accepted"), get("abandoned"));
        let mut by_presence = BTreeMap::new();
        let (mut load, mut cap) = (0u64, 0u64);
        for a in &agents {
            *by_presence.entry(a.presence.state_str().to_string()).or_insert(0) += 1;
            if a.presence != Presence::Offline {
                for c in Channel::ALL {
                    load += u64::from(*a.load.get(&c).unwrap_or(&0));
                    cap += u64::from(a.capacity.get(c));
                }
            }
        }
        Ok(QueueFigures {
            queue: queue.to_string(),
            waiting,
            longest_wait_ms: oldest.first().map(|(_, s)| now.saturating_sub(*s as u64)).unwrap_or(0),
            offered: get("offered"),
            accepted,
            rejected: get("rejected"),
            missed: get("missed"),
            abandoned,
            service_level_percent: (accepted + abandoned > 0)
                .then(|| 100.0 * get("in_sl") as f64 / (accepted + abandoned) as f64),
            average_speed_of_answer_secs: if accepted > 0 {
                get("asa_ms") as f64 / accepted as f64 / 1000.0
            } else {
                0.0
            },
            average_handle_time_secs: if get("handled") > 0 {
                get("handle_ms") as f64 / get("handled") as f64 / 1000.0
            } else {
                0.0
            },
            window_secs: window as u32,
            agents_by_presence: by_presence,
            occupancy_percent: if cap > 0 { 100.0 * load as f64 / cap as f64 } else { 0.0 },
            at_ms: now,
        })
    }

    // ------------------------------------------------------------------ timers, instances, clock

    pub async fn fire_timers(&self, max: usize) -> Result<TimerSweep> {
        let r = self.run("timers", &self.functions.timers, &[max.to_string()]).await?;
        Ok(TimerSweep {
            fired: parse_u64(r.first())? as usize,
            next_due_ms: r.get(1).and_then(|s| s.parse::<f64>().ok()).map(|f| f as u64),
            now_ms: parse_u64(r.get(2))?,
        })
    }

    /// Creates the deliverer's consumer group (from the start of the log, so nothing emitted
    /// before the first deliverer ran is missed).
    pub async fn outbox_init(&self) -> Result<()> {
        let mut con = self.con.clone();
        let r: redis::RedisResult<String> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(self.keys.events())
            .arg(OUTBOX_GROUP)
            .arg("0")
            .arg("MKSTREAM")
            .query_async(&mut con)
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The next events to deliver, oldest first: first any delivered-but-unacknowledged ones
    /// (this consumer's, and those of a previous deliverer that died), then new ones, waiting up
    /// to `block` for them.
    pub async fn outbox_read(
        &self,
        con: &mut DedicatedConnection,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<LoggedEvent>> {
        let events = self.keys.events();
        // Claim whatever other consumers left pending; only the lease holder reads, so they are dead.
        let _: redis::Value = redis::cmd("XAUTOCLAIM")
            .arg(&events)
            .arg(OUTBOX_GROUP)
            .arg(consumer)
            .arg(0)
            .arg("0-0")
            .arg("COUNT")
            .arg(count)
            .arg("JUSTID")
            .query_async(con)
            .await?;
        let pending = self.outbox_group_read(con, consumer, count, None, "0").await?;
        if !pending.is_empty() {
            return Ok(pending);
        }
        self.outbox_group_read(con, consumer, count, Some(block), ">").await
    }

    async fn outbox_group_read(
        &self,
        con: &mut DedicatedConnection,
        consumer: &str,
        count: usize,
        block: Option<Duration>,
        from: &str,
    ) -> Result<Vec<LoggedEvent>> {
        let mut opts = redis::streams::StreamReadOptions::default().group(OUTBOX_GROUP, consumer).count(count);
        if let Some(b) = block {
            opts = opts.block(b.as_millis() as usize);
        }
        let keys = [self.keys.events()];
        let reply: Option<redis::streams::StreamReadReply> = con.xread_options(&keys, &[from], &opts).await?;
        Ok(events::logged_events(reply))
    }

    /// Acknowledges delivered events and trims the log up to the last of them.
    pub async fn outbox_ack(&self, ids: &[String]) -> Result<()> {
        let Some(last) = ids.last() else { return Ok(()) };
        let mut con = self.con.clone();
        let events = self.keys.events();
        let mut ack = redis::cmd("XACK");
        ack.arg(&events).arg(OUTBOX_GROUP).arg(ids);
        // MINID keeps entries >= the id given: the successor of the last delivered one.
        let (ms, seq) = last.split_once('-').unwrap_or((last, "0"));
        let next = format!("{ms}-{}", seq.parse::<u64>().unwrap_or(0) + 1);
        let _: (i64, i64) = redis::pipe()
            .add_command(ack)
            .cmd("XTRIM")
            .arg(&events)
            .arg("MINID")
            .arg(next)
            .query_async(&mut con)
            .await?;
        Ok(())
    }

    /// Current version of a customer's CRM data (0 if never bumped).
    pub async fn customer_version(&self, channel: Channel, address: &str) -> Result<u64> {
        let mut con = self.con.clone();
        let v: Option<u64> = con.get(self.keys.popv(&format!("{channel}|{address}"))).await?;
        Ok(v.unwrap_or(0))
    }

    /// Marks customers whose CRM data changed (new events acknowledged by the CRM).
    pub async fn bump_customer_versions(&self, customers: &[(Channel, String)]) -> Result<()> {
        if customers.is_empty() {
            return Ok(());
        }
        let mut con = self.con.clone();
        let mut pipe = redis::pipe();
        for (c, a) in customers {
            let k = self.keys.popv(&format!("{c}|{a}"));
            pipe.incr(&k, 1).ignore().expire(&k, 86_400).ignore();
        }
        let _: () = pipe.query_async(&mut con).await?;
        Ok(())
    }

    /// Parks an event the CRM refused as invalid, then acknowledges it, so the log moves on and
    /// an operator can still see (and replay) it.
    pub async fn outbox_dead_letter(&self, e: &LoggedEvent, reason: &str) -> Result<()> {
        let mut con = self.con.clone();
        let _: String = redis::cmd("XADD")
            .arg(self.keys.events_dead())
            .arg("*")
            .arg(&[
                ("id", e.id.as_str()),
                ("type", e.typ.as_str()),
                ("ix", e.interaction_id.as_str()),
                ("agent", e.agent_id.as_str()),
                ("queue", e.queue.as_str()),
                ("at", &e.at_ms.to_string()),
                ("details", e.details.as_str()),
                ("reason", reason),
            ])
            .query_async(&mut con)
            .await?;
        self.outbox_ack(std::slice::from_ref(&e.id)).await
    }

    /// Events not yet delivered (the log is trimmed as they are).
    pub async fn outbox_backlog(&self) -> Result<u64> {
        let mut con = self.con.clone();
        Ok(con.xlen(self.keys.events()).await?)
    }

    /// Takes or renews the event-log delivery lease; true while this instance holds it.
    pub async fn outbox_lease(&self, instance: &str, ttl: Duration) -> Result<bool> {
        self.lease(Lease::Outbox, instance, Some(ttl.as_millis() as u64)).await
    }

    /// Takes or renews `lease` for `holder` for `ttl_ms` (true while it holds it), or, with no
    /// ttl, releases it if `holder` holds it.
    pub async fn lease(&self, lease: Lease<'_>, holder: &str, ttl_ms: Option<u64>) -> Result<bool> {
        let (which, name) = match lease {
            Lease::Outbox => ("outbox", ""),
            Lease::Mailbox(m) => ("mailbox", m),
        };
        let ttl = ttl_ms.map(|t| t.to_string()).unwrap_or_default();
        let r = self.run("lease", &self.functions.lease, &[which, name, holder, &ttl].map(String::from)).await?;
        Ok(r.first().is_some_and(|s| s == "1"))
    }

    pub async fn heartbeat(&self, instance: &str, stopping: bool) -> Result<()> {
        let args = [instance.to_string(), if stopping { "stop" } else { "" }.to_string()];
        self.run("heartbeat", &self.functions.heartbeat, &args).await.map(|_| ())
    }

    /// An instance starting under `instance`: every desktop session an earlier run of that id
    /// held is released (its agent offline, its offers back to the queue), since a crashed run
    /// leaves them marked connected and this run's heartbeats would keep them so. Returns how
    /// many sessions were released. Call before serving any desktop.
    pub async fn instance_started(&self, instance: &str) -> Result<u64> {
        let args = [instance.to_string(), "start".to_string()];
        let r = self.run("heartbeat", &self.functions.heartbeat, &args).await?;
        parse_u64(r.get(1))
    }

    /// Redis time plus the test clock offset, in ms — the clock every script uses.
    pub async fn now_ms(&self) -> Result<u64> {
        let mut con = self.con.clone();
        let (t, off): ((u64, u64), Option<i64>) =
            redis::pipe().cmd("TIME").get(self.keys.clock()).query_async(&mut con).await?;
        Ok((t.0 * 1000 + t.1 / 1000).saturating_add_signed(off.unwrap_or(0)))
    }

    /// Moves the routing clock forward for every instance of this domain. Tests use it to make
    /// timers due without waiting; production never calls it.
    pub async fn advance_clock(&self, by: Duration) -> Result<()> {
        let mut con = self.con.clone();
        let _: i64 = con.incr(self.keys.clock(), by.as_millis() as i64).await?;
        Ok(())
    }

    /// The shared, self-reconnecting connection, for the engine's own modules.
    pub(crate) fn connection(&self) -> SharedConnection {
        self.con.clone()
    }
}

fn validate_body(body: &str) -> Result<()> {
    if body.is_empty() {
        return Err(EngineError::InvalidArgument("body: is required".into()));
    }
    switchboard_model::validate_len("body", body, switchboard_model::MAX_BODY_LEN)
        .map_err(|e| EngineError::InvalidArgument(e.to_string()))
}

fn validate_disposition(disposition: &str, notes: &str) -> Result<()> {
    switchboard_model::validate_len("disposition", disposition, 100)
        .and_then(|_| switchboard_model::validate_len("notes", notes, 10_000))
        .map_err(|e| EngineError::InvalidArgument(e.to_string()))
}

fn parse_u64(v: Option<&String>) -> Result<u64> {
    v.and_then(|s| s.parse().ok()).ok_or_else(|| EngineError::Corrupt(format!("expected a number, got {v:?}")))
}

fn num(h: &HashMap<String, String>, k: &str) -> u64 {
    h.get(k).and_then(|v| v.parse::<f64>().ok()).map(|f| f as u64).unwrap_or(0)
}

/// The interaction a push carries (`carry_ix` in lib.lua), or `None` if it does not carry all of
/// it (a thread too long to carry, or a push written without it), so the caller reads it.
pub fn interaction_from_push(v: &serde_json::Value) -> Result<Option<Interaction>> {
    let (Some(h), Some(1)) = (v.get("h").and_then(|h| h.as_array()), v.get("t").and_then(serde_json::Value::as_u64))
    else {
        return Ok(None);
    };
    let text = |x: &serde_json::Value| {
        x.as_str().map(str::to_string).ok_or_else(|| EngineError::Corrupt(format!("push: not a string: {x}")))
    };
    if h.len() % 2 != 0 {
        return Err(EngineError::Corrupt(format!("push: odd hash of {} entries", h.len())));
    }
    let id = v.get("ix").and_then(|x| x.as_str()).ok_or_else(|| EngineError::Corrupt("push: no ix".into()))?;
    let map = h.chunks(2).map(|kv| Ok((text(&kv[0])?, text(&kv[1])?))).collect::<Result<HashMap<_, _>>>()?;
    let mut ix = interaction_from_hash(id, &map)?;
    // An empty thread arrives as `{}`: Lua's cjson cannot tell an empty array from an empty object.
    if let Some(serde_json::Value::Array(msgs)) = v.get("m") {
        ix.messages = msgs.iter().map(|m| parse_message(&text(m)?)).collect::<Result<_>>()?;
    }
    Ok(Some(ix))
}

/// An interaction from a script's `ok_ix` reply (after 'ok' and any extra values): the number of
/// hash entries, the hash as field/value pairs, then the thread if asked for.
fn interaction_from_reply(id: &str, r: &[String], with_messages: bool) -> Result<Interaction> {
    let n: usize =
        r.first().and_then(|n| n.parse().ok()).ok_or_else(|| EngineError::Corrupt(format!("reply {r:?}")))?;
    let pairs = r.get(1..1 + n).ok_or_else(|| EngineError::Corrupt(format!("reply of {} entries", r.len())))?;
    if pairs.is_empty() {
        return Err(EngineError::NotFound("interaction_id: the interaction no longer exists".into()));
    }
    let h: HashMap<String, String> = pairs.chunks(2).map(|kv| (kv[0].clone(), kv[1].clone())).collect();
    let mut ix = interaction_from_hash(id, &h)?;
    if with_messages {
        ix.messages = r[1 + n..].iter().map(|m| parse_message(m)).collect::<Result<_>>()?;
    }
    Ok(ix)
}

/// The hash does not hold the id: its key does.
fn interaction_from_hash(id: &str, h: &HashMap<String, String>) -> Result<Interaction> {
    let s = |k: &str| h.get(k).cloned().unwrap_or_default();
    let channel = Channel::parse(&s("ch")).ok_or_else(|| EngineError::Corrupt(format!("channel {:?}", s("ch"))))?;
    let state =
        InteractionState::parse(&s("state")).ok_or_else(|| EngineError::Corrupt(format!("state {:?}", s("state"))))?;
    let mut timestamps = BTreeMap::new();
    for st in InteractionState::ALL {
        let v = num(h, &format!("t_{}", st.as_str()));
        if v > 0 {
            timestamps.insert(st.as_str().to_string(), v);
        }
    }
    let attributes: BTreeMap<String, String> = serde_json::from_str(h.get("attrs").map_or("{}", |v| v.as_str()))
        .map_err(|e| EngineError::Corrupt(format!("attributes: {e}")))?;
    Ok(Interaction {
        id: id.to_string(),
        channel,
        customer_address: s("cust"),
        subject: s("subj"),
        attributes,
        queue: s("queue"),
        priority: num(h, "pri") as i32,
        state,
        agent_id: s("agent"),
        enqueued_ms: num(h, "enq"),
        timestamps,
        stage: num(h, "stage") as u32,
        disposition: s("disp"),
        notes: s("notes"),
        end_reason: s("end_reason"),
        messages: Vec::new(),
        offer_expires_ms: (state == InteractionState::Offered).then(|| num(h, "oexp")),
        offer_seq: num(h, "oseq"),
        transferred_by: s("xfrom"),
        excluded_agents: Vec::new(),
    })
}

fn parse_message(raw: &str) -> Result<Message> {
    #[derive(serde::Deserialize)]
    struct Raw {
        seq: u64,
        author: String,
        #[serde(default)]
        agent: String,
        body: String,
        at: f64,
    }
    let r: Raw = serde_json::from_str(raw).map_err(|e| EngineError::Corrupt(format!("message: {e}")))?;
    Ok(Message {
        seq: r.seq,
        author: Author::parse(&r.author).ok_or_else(|| EngineError::Corrupt(format!("author {:?}", r.author)))?,
        agent_id: r.agent,
        body: r.body,
        sent_ms: r.at as u64,
    })
}

fn agent_status_from_hash(id: &str, h: &HashMap<String, String>) -> Result<AgentStatus> {
    let s = |k: &str| h.get(k).cloned().unwrap_or_default();
    let presence = Presence::from_parts(&s("presence"), &s("reason"))
        .ok_or_else(|| EngineError::Corrupt(format!("presence {:?}", s("presence"))))?;
    let mut load = BTreeMap::new();
    for c in Channel::ALL {
        load.insert(c, num(h, &format!("load_{c}")) as u32);
    }
    let cap = |c: &str| num(h, &format!("cap_{c}")) as u32;
    Ok(AgentStatus {
        id: id.to_string(),
        name: s("name"),
        presence,
        presence_since_ms: num(h, "since"),
        connected: s("connected") == "1",
        session: s("session"),
        load,
        capacity: Capacity { voice: cap("voice"), chat: cap("chat"), sms: cap("sms"), email: cap("email") },
    })
}

/// Redis answers an FCALL of a function it does not have with `ERR Function not found`.
fn is_function_missing(e: &redis::RedisError) -> bool {
    e.code() == Some("ERR") && e.detail().is_some_and(|d| d.starts_with("Function not found"))
}
