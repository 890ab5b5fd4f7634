//! The routing engine: all of Switchboard's Redis, the single source of truth for routing state.
//!
//! Every state transition is one call of a function of the engine's Redis Functions library
//! (atomic, replicated as effects); reads that need no atomicity (snapshots, figures) are plain
//! commands. Key formats live in [`keys`], the library's source in `lua/` (`functions.rs` assembles
//! it). No other crate of Switchboard opens a Redis connection.
//!
//! # Layout
//! - [`Engine`]: the connection and the one way to call a function (here); its typed operations,
//!   an `impl Engine` per area, and each function's arguments as a struct beside its call, are in
//!   `ops/`. [`Calls`]: the agent operations made as a desktop session's requests (the pushes for
//!   that session come back with each reply, see `caller`).
//! - [`push`]: the instance inbox and the decoding of pushes; [`events`]: the interaction log.
//! - [`email`]: the email channel's bookkeeping; web chat sessions are in `chat`.

mod caller;
mod chat;
mod counted;
mod decode;
pub mod email;
pub mod events;
mod functions;
pub mod keys;
mod ops;
pub mod push;

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use switchboard_model::Actor;

pub use caller::{Caller, Calls, Returned, SessionPushes};
pub use chat::{ChatCursor, ChatSession, ChatSignal};
use counted::Counted;
pub use counted::{as_reader, round_trips};
pub use decode::interaction_from_push;
pub use functions::Constants;
use functions::{Functions, Operation};
pub use keys::Keys;
pub use ops::{AgentStatus, Lease, LoggedEvent, OUTBOX_GROUP, QueueFigures, TimerSweep, TransferTarget};

/// The shared, self-reconnecting connection.
pub type SharedConnection = Counted<ConnectionManager>;
/// A connection of its own, for blocking reads.
pub type DedicatedConnection = Counted<redis::aio::MultiplexedConnection>;

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

#[derive(Clone)]
pub struct Engine {
    /// Who the calls made through this handle are for: every event they log names them (the
    /// audit trail). None for the daemon's own work (timers, channels).
    actor: Option<std::sync::Arc<Actor>>,
    con: Counted<ConnectionManager>,
    client: redis::Client,
    keys: Keys,
    functions: std::sync::Arc<Functions>,
    opts: EngineOptions,
}

/// About how many entries an instance's inbox keeps (the hub trims what it has delivered).
const INBOX_MAXLEN: u64 = 100_000;

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
            actor: None,
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

    /// This engine acting for `actor`: the events its calls log carry who and from where.
    pub fn acting_as(&self, actor: Actor) -> Engine {
        Engine { actor: Some(std::sync::Arc::new(actor)), ..self.clone() }
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
    /// The shared, self-reconnecting connection, for the engine's own modules.
    pub(crate) fn connection(&self) -> SharedConnection {
        self.con.clone()
    }

    async fn run<A: Operation>(&self, args: A) -> Result<Vec<String>> {
        self.run_by(None, args).await
    }

    /// One function call; with a caller, the pushes for its session come back with the reply
    /// and are kept in it (see `caller`).
    async fn run_by<A: Operation>(&self, by: Option<&Caller>, args: A) -> Result<Vec<String>> {
        let (name, function, args) = (A::NAME, A::function(&self.functions), args.into_argv());
        let mut con = self.con.clone();
        // KEYS[1] only routes the call to the domain's slot; functions build their keys from the root.
        // The calling desktop session, if any, goes first, then who the call is for (audit).
        let (caller_agent, caller_session) = by.map_or(("", ""), |c| (c.agent(), c.session()));
        let (who, from) = self.actor.as_deref().map_or(("", ""), |a| (a.who.as_str(), a.from.as_str()));
        let mut cmd = redis::cmd("FCALL");
        cmd.arg(&function.0)
            .arg(1)
            .arg(self.keys.meta())
            .arg(caller_agent)
            .arg(caller_session)
            .arg(who)
            .arg(from)
            .arg(&args);
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
                Err(function_error(reply.get(1).map_or("", String::as_str), reply.get(2).cloned().unwrap_or_default()))
            }
            _ => Err(EngineError::Corrupt(format!("unexpected script reply {reply:?}"))),
        }
    }
}

/// A function's refusal (`err(code, msg)` in lib.lua) as the error the caller sees.
fn function_error(code: &str, msg: String) -> EngineError {
    match code {
        "NOT_FOUND" => EngineError::NotFound(msg),
        "INVALID" => EngineError::InvalidArgument(msg),
        "PRECONDITION" => EngineError::FailedPrecondition(msg),
        "RETRY" => EngineError::Retry(msg),
        "EXISTS" => EngineError::AlreadyExists(msg),
        "UNAUTH" => EngineError::Unauthenticated(msg),
        other => EngineError::Corrupt(format!("script error code {other:?}: {msg}")),
    }
}

/// Redis answers an FCALL of a function it does not have with `ERR Function not found`.
fn is_function_missing(e: &redis::RedisError) -> bool {
    e.code() == Some("ERR") && e.detail().is_some_and(|d| d.starts_with("Function not found"))
}
