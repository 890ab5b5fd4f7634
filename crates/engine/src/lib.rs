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
pub mod cluster;
mod counted;
mod decode;
pub mod email;
pub mod events;
mod functions;
pub mod keys;
mod ops;
pub mod primary;
pub mod push;
pub mod sms;

use std::time::Duration;

use redis::aio::ConnectionManagerConfig;
use switchboard_model::Actor;

pub use caller::{Caller, Calls, Returned, SessionPushes};
pub use chat::{ChatCursor, ChatSession, ChatSignal};
use counted::Counted;
pub use counted::{as_reader, round_trips};
pub use decode::interaction_from_push;
pub use functions::Constants;
use functions::{Functions, Operation};
pub use keys::Keys;
pub use ops::{
    AgentExplanation, AgentLoads, AgentStatus, CallOrder, CallOutcome, ClosedAnswer, CustomerOf, HoursCheck,
    HoursWatch, IfRefused, InteractionExplanation, Lease, LoggedEvent, OUTBOX_GROUP, QueueFigures, TimerSweep,
    TransferTarget, call_key,
};
use primary::Primary;

/// The shared, self-reconnecting connection.
pub type SharedConnection = Counted<Primary>;
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

impl EngineError {
    /// Redis cannot be reached, found out without a request of one's own (a shared tail that
    /// lost the log): the same answer to clients as a failed request.
    pub fn unreachable(what: &'static str) -> EngineError {
        EngineError::Redis(redis::RedisError::from((redis::ErrorKind::Io, what)))
    }

    /// The connection's settings cannot work as given (the URL, a scheme this build cannot
    /// speak, TLS material that does not parse): trying again will not help.
    pub fn is_client_config(&self) -> bool {
        self.connect_failure() == ConnectFailure::Settings
    }

    /// Where a failed [`Engine::connect`] failed, for the log of whoever tries again.
    pub fn connect_failure(&self) -> ConnectFailure {
        let EngineError::Redis(e) = self else { return ConnectFailure::Other };
        match e.kind() {
            redis::ErrorKind::InvalidClientConfig => ConnectFailure::Settings,
            _ if is_tls_failure(e) => ConnectFailure::Tls,
            redis::ErrorKind::AuthenticationFailed => ConnectFailure::Login,
            _ if matches!(e.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM")) => ConnectFailure::Login,
            redis::ErrorKind::Io => ConnectFailure::Network,
            _ => ConnectFailure::Other,
        }
    }
}

/// tokio-rustls hands rustls's errors over as the payload of an I/O error, which the redis
/// crate keeps behind an `Arc`.
fn is_tls_failure(e: &redis::RedisError) -> bool {
    type Shared = std::sync::Arc<dyn std::error::Error + Send + Sync>;
    std::error::Error::source(e)
        .and_then(|s| {
            s.downcast_ref::<std::io::Error>()
                .or_else(|| s.downcast_ref::<Shared>().and_then(|a| a.downcast_ref::<std::io::Error>()))
        })
        .and_then(std::io::Error::get_ref)
        .is_some_and(<dyn std::error::Error + Send + Sync>::is::<rustls::Error>)
}

/// Where a connection to Redis failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectFailure {
    /// The settings (URL, TLS material) cannot work; trying again will not help.
    Settings,
    /// The TLS handshake: a certificate one side does not accept, or TLS to a plain port.
    Tls,
    /// Redis refused the login: the user and password of the URL, or none where one is needed.
    Login,
    /// No connection: refused, timed out, a name not resolved, cut.
    Network,
    /// Anything else.
    Other,
}

impl std::fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConnectFailure::Settings => "settings",
            ConnectFailure::Tls => "TLS handshake (certificate)",
            ConnectFailure::Login => "login (user and password)",
            ConnectFailure::Network => "network",
            ConnectFailure::Other => "redis",
        })
    }
}

#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub key_root: String,
    pub presence_grace: Duration,
    pub figures_window: Duration,
    pub cross_channel_blocking: bool,
    /// 0: the event log is trimmed only by the CRM deliverer; otherwise capped at about this many.
    pub events_maxlen: u64,
    /// Whom to trust and who to be over `rediss://`; None: the web's roots, no client
    /// certificate. Only for a `rediss://` URL.
    pub redis_tls: Option<RedisTls>,
}

/// TLS to Redis (`rediss://`) beyond the defaults.
#[derive(Clone, Default)]
pub struct RedisTls {
    /// PEM CA certificates trusted instead of the web's roots (webpki-roots).
    pub ca_pem: Option<Vec<u8>>,
    /// A certificate to present, for a server that asks clients for one (`tls-auth-clients`).
    pub client_cert: Option<RedisClientCert>,
}

/// A PEM certificate chain and its PEM private key.
#[derive(Clone)]
pub struct RedisClientCert {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

// By hand: the private key must not end up in a log.
impl std::fmt::Debug for RedisTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTls")
            .field("ca_pem", &self.ca_pem.as_ref().map(|p| format!("{} bytes", p.len())))
            .field("client_cert", &self.client_cert.as_ref().map(|_| "<cert and key>"))
            .finish()
    }
}

/// The client every connection of an engine comes from: TLS settings, if any, apply to the
/// shared connection and the dedicated ones alike.
///
/// No I/O happens here, so every error is one of the settings ([`EngineError::is_client_config`]).
fn redis_client(url: &str, tls: Option<&RedisTls>) -> Result<redis::Client> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    // An empty trust store would refuse every server, and look like a network problem.
    if let Some(ca) = tls.and_then(|t| t.ca_pem.as_deref())
        && CertificateDer::pem_slice_iter(ca).next().is_none()
    {
        return Err(EngineError::Redis(
            (redis::ErrorKind::InvalidClientConfig, "TLS settings", "the CA file holds no PEM certificate".to_string())
                .into(),
        ));
    }
    let client = match tls {
        None => redis::Client::open(url),
        Some(tls) => redis::Client::build_with_tls(
            url,
            redis::TlsCertificates {
                client_tls: tls
                    .client_cert
                    .as_ref()
                    .map(|c| redis::ClientTlsConfig { client_cert: c.cert_pem.clone(), client_key: c.key_pem.clone() }),
                root_cert: tls.ca_pem.clone(),
            },
        ),
    };
    // A PEM that does not parse comes back as an I/O error; it is a setting all the same.
    let client = client.map_err(|e| match e.kind() {
        redis::ErrorKind::InvalidClientConfig => e,
        _ => redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "TLS settings", e.to_string())),
    })?;
    if matches!(client.get_connection_info().addr(), redis::ConnectionAddr::TcpTls { .. }) {
        // rustls takes the process's provider: ring, the one crypto stack of the workspace. Set
        // here as well so that no build of the engine depends on which features others enable.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    Ok(client)
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            key_root: "sb:{default}:".into(),
            presence_grace: Duration::from_secs(30),
            figures_window: Duration::from_secs(900),
            cross_channel_blocking: true,
            events_maxlen: 1_000_000,
            redis_tls: None,
        }
    }
}

#[derive(Clone)]
pub struct Engine {
    /// Who the calls made through this handle are for: every event they log names them (the
    /// audit trail). None for the daemon's own work (timers, channels).
    actor: Option<std::sync::Arc<Actor>>,
    con: Counted<Primary>,
    /// The same connection, for the primary's client (dedicated connections follow it too).
    primary: Primary,
    keys: Keys,
    functions: std::sync::Arc<Functions>,
    opts: EngineOptions,
}

/// About how many entries an instance's inbox keeps (the hub trims what it has delivered).
const INBOX_MAXLEN: u64 = 100_000;

/// `ROLE`'s first element: "master" for a primary.
fn is_primary_role(role: &redis::Value) -> bool {
    match role {
        redis::Value::Array(v) => match v.first() {
            Some(redis::Value::BulkString(b)) => b == b"master",
            Some(redis::Value::SimpleString(s)) => s == "master",
            _ => false,
        },
        _ => false,
    }
}

impl Engine {
    pub async fn connect(url: &str, opts: EngineOptions) -> Result<Engine> {
        // Admin scripts on large centers can take a while; reconnection is handled by the manager.
        let cfg = ConnectionManagerConfig::new()
            .set_response_timeout(Some(Duration::from_secs(30)))
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(3);
        let unsupported_tls = |what: &str| {
            EngineError::Redis(
                (
                    redis::ErrorKind::InvalidClientConfig,
                    "Redis URL",
                    format!("TLS through {what} is not supported yet: use rediss:// to one server"),
                )
                    .into(),
            )
        };
        let cluster = cluster::ClusterUrl::parse(url);
        let primary = match primary::SentinelUrl::parse(url) {
            None if cluster.is_some() => match cluster.expect("checked") {
                Err(why) => {
                    return Err(EngineError::Redis((redis::ErrorKind::InvalidClientConfig, "cluster URL", why).into()));
                }
                Ok(_) if opts.redis_tls.is_some() => return Err(unsupported_tls("Redis Cluster")),
                Ok(u) => Primary::in_cluster(u, Keys::new(opts.key_root.clone()).meta(), cfg).await?,
            },
            None => Primary::direct(redis_client(url, opts.redis_tls.as_ref())?, cfg).await?,
            Some(Err(why)) => {
                return Err(EngineError::Redis((redis::ErrorKind::InvalidClientConfig, "Sentinel URL", why).into()));
            }
            Some(Ok(_)) if opts.redis_tls.is_some() => return Err(unsupported_tls("Sentinel")),
            Some(Ok(u)) => Primary::through_sentinels(&u, cfg).await?,
        };
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
            con: Counted::shared(primary.clone()),
            primary,
            keys: Keys::new(opts.key_root.clone()),
            functions: std::sync::Arc::new(Functions::new(&consts)),
            opts,
        };
        // A missing login shows as NOAUTH here rather than as Redis's refusal of the library's
        // size from a client that has not logged in.
        engine.ping().await?;
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

    /// Marks this domain's data as loaded from the config (after the bootstrap). A Redis that
    /// answers without the mark lost its data: restarted without persistence, flushed, or a new
    /// empty primary.
    pub async fn mark_loaded(&self) -> Result<()> {
        let mut con = self.con.clone();
        let _: () = redis::AsyncCommands::hset(&mut con, self.keys.meta(), "loaded", self.now_ms().await?).await?;
        Ok(())
    }

    /// Whether the config's data is in Redis ([`Engine::mark_loaded`]). Asked of a server that is
    /// no longer the primary — a primary demoted by a failover, still taking reads until the
    /// look-up moves on — it is an error, not `false`: such a server empties itself while it
    /// copies the new primary's data, and its empty answer is no sign that data was lost.
    pub async fn is_loaded(&self) -> Result<bool> {
        let mut con = self.con.clone();
        let (role, loaded): (redis::Value, bool) =
            redis::pipe().cmd("ROLE").hexists(self.keys.meta(), "loaded").query_async(&mut con).await?;
        if !is_primary_role(&role) {
            return Err(EngineError::Redis(
                (redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly), "the server is a replica now").into(),
            ));
        }
        Ok(loaded)
    }

    /// Whether this domain can route now: Redis answers, the config's data is there and the
    /// routing functions are loaded (loaded again here if Redis lost them). `Err`: why not.
    pub async fn readiness(&self) -> std::result::Result<(), String> {
        let mut con = self.con.clone();
        let (role, loaded, libs): (redis::Value, bool, redis::Value) = redis::pipe()
            .cmd("ROLE")
            .hexists(self.keys.meta(), "loaded")
            .cmd("FUNCTION")
            .arg("LIST")
            .arg("LIBRARYNAME")
            .arg(&self.functions.library_name)
            .query_async(&mut con)
            .await
            .map_err(|e| format!("redis: {e}"))?;
        if !is_primary_role(&role) {
            return Err("redis: the server is a replica now (a failover; looking up the new primary)".into());
        }
        if !loaded {
            return Err(
                "redis: the config's agents and queues are not loaded (Redis lost its data; loading them again)".into(),
            );
        }
        let has_library = matches!(&libs, redis::Value::Array(v) if !v.is_empty());
        if !has_library {
            self.load_library().await.map_err(|e| format!("redis: the routing functions are missing: {e}"))?;
        }
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
        Ok(Counted::dedicated(self.primary.client().await?.get_multiplexed_async_connection_with_config(&cfg).await?))
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

/// Writes each field of `key` that is not set yet, renews its TTL, and reads the whole hash back,
/// in one round trip: how the channels open a record that a retry must find as it was.
pub(crate) async fn hash_open(
    con: &SharedConnection,
    key: &str,
    fields: &[(&str, String)],
    ttl_secs: u64,
) -> Result<std::collections::HashMap<String, String>> {
    let mut con = con.clone();
    let mut p = redis::pipe();
    for (f, v) in fields {
        p.hset_nx(key, *f, v).ignore();
    }
    p.expire(key, ttl_secs as i64).ignore().hgetall(key);
    let (h,): (std::collections::HashMap<String, String>,) = p.query_async(&mut con).await?;
    Ok(h)
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
        "CLOSED" => closed_error(&msg),
        other => EngineError::Corrupt(format!("script error code {other:?}: {msg}")),
    }
}

/// A closed queue refused a contact (`create` with `IfRefused::Fail`): `{queue, opens}` as JSON.
fn closed_error(msg: &str) -> EngineError {
    #[derive(serde::Deserialize)]
    struct Closed {
        queue: String,
        opens: Option<i64>,
    }
    let Ok(c) = serde_json::from_str::<Closed>(msg) else {
        return EngineError::Corrupt(format!("closed queue reply {msg:?}"));
    };
    let until = c.opens.and_then(chrono::DateTime::from_timestamp_millis).map_or_else(
        || "with no opening in sight".to_string(),
        |t| format!("until {}", t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    );
    EngineError::FailedPrecondition(format!("queue: {:?} is closed {until}", c.queue))
}

/// Redis answers an FCALL of a function it does not have with `ERR Function not found`.
fn is_function_missing(e: &redis::RedisError) -> bool {
    e.code() == Some("ERR") && e.detail().is_some_and(|d| d.starts_with("Function not found"))
}
