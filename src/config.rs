//! The daemon's one TOML configuration file.
//!
//! Loading runs in a fixed order: parse, expand `${VAR}` inside string values, deserialize,
//! apply `SWITCHBOARD_*` environment overrides, validate. Every error names the offending key so
//! an operator can fix the file without reading code. The environment is read through [`Env`]
//! so tests never have to mutate the process environment.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::BuildHasher;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use toml::de::{DeTable, DeValue};

use crate::model::{AgentSpec, CalendarSpec, EscalationAction, QueueSpec, ValidationError};

pub const ENV_REDIS_URL: &str = "SWITCHBOARD_REDIS_URL";
pub const ENV_CRM_DATABASE: &str = "SWITCHBOARD_CRM_DATABASE";
pub const ENV_CRM_ENDPOINT: &str = "SWITCHBOARD_CRM_ENDPOINT";
pub const ENV_GRPC_LISTEN: &str = "SWITCHBOARD_GRPC_LISTEN";
pub const ENV_HTTP_LISTEN: &str = "SWITCHBOARD_HTTP_LISTEN";
pub const ENV_LOG_FORMAT: &str = "SWITCHBOARD_LOG_FORMAT";
pub const ENV_INSTANCE_ID: &str = "SWITCHBOARD_INSTANCE_ID";
pub const ENV_CRM_API_KEY: &str = "SWITCHBOARD_CRM_API_KEY";
/// Followed by the agent id, see [`agent_token_env_var`].
pub const ENV_AGENT_TOKEN_PREFIX: &str = "SWITCHBOARD_AGENT_TOKEN_";
/// Standard `tracing` filter variable; wins over `log.level`.
pub const ENV_RUST_LOG: &str = "RUST_LOG";

pub const MAX_SHUTDOWN_GRACE_SECS: u64 = 300;
const MAX_KEY_PART_LEN: usize = 64;
const REDIS_SCHEMES: [&str; 5] = ["redis://", "rediss://", "unix://", "redis+sentinel://", "redis+cluster://"];

/// Read access to environment variables.
pub trait Env {
    fn get(&self, key: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok()
    }
}

impl<S: BuildHasher> Env for HashMap<String, String, S> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).cloned()
    }
}

impl Env for BTreeMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        BTreeMap::get(self, key).cloned()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// The message is toml's own: it shows line, column and the offending key.
    #[error("cannot parse {}: {source}", origin(path.as_deref()))]
    Parse { path: Option<PathBuf>, source: toml::de::Error },
    #[error("invalid config: {key}: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    /// The dotted key of an `Invalid` error, e.g. `queues[1].escalation[0].drop_skill`.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}

fn origin(path: Option<&Path>) -> String {
    path.map_or_else(|| "config".to_string(), |p| p.display().to_string())
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.into(), message: message.into() }
}

fn prefixed(prefix: &str, e: ValidationError) -> ConfigError {
    invalid(format!("{prefix}.{}", e.field), e.message)
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    /// Who may call: keys, JWT (see `access`).
    pub auth: crate::access::AuthConfig,
    /// TLS on the listeners.
    pub tls: crate::tls::TlsConfig,
    pub redis: RedisConfig,
    pub routing: RoutingConfig,
    pub log: LogConfig,
    pub crm: CrmConfig,
    pub webchat: crate::channels::webchat::WebChatConfig,
    /// Mailboxes of the email channel (none: the channel is off).
    pub email: crate::channels::email::config::EmailConfig,
    /// The CTI hook for telephony systems: routing points, the default destination.
    pub cti: crate::channels::voice::CtiConfig,
    /// The SMS channel: our numbers, the gateways (none: the channel is off).
    pub sms: crate::channels::sms::SmsConfig,
    /// The agent desktop and supervisor wallboard pages.
    pub web: crate::api::web::WebConfig,
    /// Upserted at start; agents created through the admin API are kept.
    pub agents: Vec<AgentSpec>,
    pub queues: Vec<QueueSpec>,
    /// Opening hours queues keep (`calendar = "name"`); upserted at start, before the queues.
    pub calendars: Vec<CalendarSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    pub grpc_listen: SocketAddr,
    /// Serves /healthz, /readyz, the web chat, and /metrics unless `metrics_listen` is set.
    pub http_listen: SocketAddr,
    /// An internal listener for /metrics alone (plain HTTP), so the public one does not expose it.
    pub metrics_listen: Option<SocketAddr>,
    /// Empty: the daemon picks a random one per process. A fixed id lets a restarted instance
    /// reclaim what it owned instead of waiting for the presence grace period.
    pub instance_id: String,
    pub shutdown_grace_secs: u64,
    /// Supervisor watches this instance serves at once; more are refused (RESOURCE_EXHAUSTED).
    pub max_watchers: usize,
    /// Concurrent streams on one gRPC connection.
    pub max_streams_per_connection: u32,
    /// Requests a second per caller (key, JWT subject, agent); 0 turns the limit off.
    pub rate_per_caller: u32,
    /// Requests one caller may make in a burst above its rate.
    pub burst_per_caller: u32,
    /// Origins (`https://desk.example.com`) whose pages may call the gRPC API with gRPC-Web. A
    /// request carrying any other `Origin` is refused; empty: no browser page at all. `"*"` is
    /// not accepted (see [`ServerConfig::browser_origins`]).
    pub grpc_web_origins: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            grpc_listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 50051)),
            http_listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            metrics_listen: None,
            instance_id: String::new(),
            shutdown_grace_secs: 10,
            max_watchers: 200,
            max_streams_per_connection: 200,
            rate_per_caller: 500,
            burst_per_caller: 1000,
            grpc_web_origins: Vec::new(),
        }
    }
}

impl ServerConfig {
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }

    /// `grpc_web_origins` as browsers send them in `Origin`: lower case, no trailing slash, no
    /// default port (`https://desk.example.com:443/` is `https://desk.example.com`).
    pub fn browser_origins(&self) -> Vec<String> {
        self.grpc_web_origins.iter().filter_map(|o| browser_origin(o).ok()).collect()
    }
}

/// One origin of `server.grpc_web_origins`, normalized. `"*"` is refused: the pages that may
/// drive the API with a person's credential are named one by one, never "any site".
fn browser_origin(o: &str) -> Result<String, String> {
    if o.trim() == "*" {
        return Err("\"*\" is not accepted: list the origins of the pages that call the API".into());
    }
    let o = crate::channels::webchat::config::normalize_origin(o)?;
    if !o.is_ascii() {
        return Err(format!("{o:?}: write an international domain name in its xn-- form, as browsers send it"));
    }
    let default_port = if o.starts_with("https://") { ":443" } else { ":80" };
    Ok(o.strip_suffix(default_port).map_or(o.clone(), str::to_string))
}

// Debug is written by hand: the URL may carry a password and configs end up in logs.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://`, `rediss://` (TLS) or `unix://`; an ACL user and password go in the URL
    /// (`rediss://user:password@host:6380/0`). Behind Sentinel:
    /// `redis+sentinel://[user:password@]host:port,host:port/service[/db]` (the primary is found
    /// through the Sentinels and followed across a failover). A Redis Cluster:
    /// `redis+cluster://[user:password@]host:port,host:port` (any few nodes; the primary serving
    /// the domain's slot is found through them and followed across failovers and slot moves).
    pub url: String,
    pub key_prefix: String,
    /// Routing domain: instances sharing a domain share queues and agents. One instance serves one
    /// domain; on a Redis Cluster, each domain is one hash slot, so domains spread over shards.
    pub domain: String,
    /// For a rediss:// URL: the CA that signed Redis's certificate (default: the web's roots) ...
    pub ca_file: Option<PathBuf>,
    /// ... and the daemon's client certificate, if Redis asks for one (`tls-auth-clients`).
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:6379".into(),
            key_prefix: "sb".into(),
            domain: "default".into(),
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &self.redacted_url())
            .field("key_prefix", &self.key_prefix)
            .field("domain", &self.domain)
            .field("ca_file", &self.ca_file)
            .field("client_cert_file", &self.client_cert_file)
            .field("client_key_file", &self.client_key_file)
            .finish()
    }
}

impl RedisConfig {
    /// Prefix of every key of this routing domain, e.g. `sb:{default}:`. The braces are a Redis
    /// Cluster hash tag: all keys of a domain land in one slot, so one Lua function call may touch them all.
    pub fn key_root(&self) -> String {
        format!("{}:{{{}}}:", self.key_prefix, self.domain)
    }

    /// The URL with any password replaced by `***`, safe to log.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    /// The TLS files, read (at start, so a missing one stops the daemon, naming its key); None
    /// when none is set, and then a rediss:// URL trusts the web's roots.
    pub fn tls(&self) -> Result<Option<switchboard_engine::RedisTls>, ConfigError> {
        let read = |key: &str, path: &Option<PathBuf>| {
            path.as_deref()
                .map(|p| std::fs::read(p).map_err(|e| invalid(key, format!("cannot read {}: {e}", p.display()))))
                .transpose()
        };
        if self.ca_file.is_none() && self.client_cert_file.is_none() && self.client_key_file.is_none() {
            return Ok(None);
        }
        let ca_pem = read("redis.ca_file", &self.ca_file)?;
        let client_cert = match (
            read("redis.client_cert_file", &self.client_cert_file)?,
            read("redis.client_key_file", &self.client_key_file)?,
        ) {
            (Some(cert_pem), Some(key_pem)) => Some(switchboard_engine::RedisClientCert { cert_pem, key_pem }),
            _ => None,
        };
        Ok(Some(switchboard_engine::RedisTls { ca_pem, client_cert }))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    /// How long an agent whose desktop stream is gone stays online before its offers return.
    pub presence_grace_secs: u64,
    /// Voice work blocks offers on other channels unless the agent overrides it.
    pub cross_channel_blocking: bool,
    pub timer_poll_ms: u64,
    /// Instance liveness refresh; must be shorter than the presence grace or live instances
    /// would be taken for dead ones.
    pub heartbeat_secs: u64,
    /// Sliding window of the supervisor figures.
    pub figures_window_secs: u64,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            presence_grace_secs: 30,
            cross_channel_blocking: true,
            timer_poll_ms: 100,
            heartbeat_secs: 5,
            figures_window_secs: 900,
        }
    }
}

/// A secret from the config or environment: never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

/// The CRM store: the built-in one (in-process for `serve`, standalone for `switchboard crm`) or
/// an external one reached at `endpoint`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrmConfig {
    /// false: no CRM at all — no screen-pop history, the event log is only capped, never delivered.
    pub enabled: bool,
    /// Empty: run the built-in CRM in-process. Otherwise the gRPC URL of a CRM store service
    /// (`http://crm.internal:50052`).
    pub endpoint: String,
    /// The key the daemon presents to an external CRM store (role `crm` there); usually from
    /// SWITCHBOARD_CRM_API_KEY. The built-in in-process store gets a fresh key per run instead.
    pub api_key: Secret,
    /// For an https:// endpoint: the CA that signed the store's certificate (default: the web's roots) ...
    pub ca_file: Option<PathBuf>,
    /// ... and the daemon's client certificate, if the store asks for one.
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    /// The built-in store's database: `sqlite://file.db?mode=rwc` or `postgres://...`.
    pub database: String,
    /// Where `switchboard crm` listens.
    pub listen: SocketAddr,
    /// ISO country code for phone numbers written without one ("" = numbers need a country code).
    pub default_region: String,
    pub create_unknown_contacts: bool,
    /// The screen-pop look-up's deadline; the offer goes out without history after it.
    pub screen_pop_deadline_ms: u64,
    /// How long one delivery of the event log to the CRM may take before it is abandoned and
    /// tried again (a frozen CRM must not stall delivery silently).
    pub delivery_timeout_ms: u64,
    /// Interactions shown on a screen-pop.
    pub history_limit: u32,
    /// How long a looked-up contact is reused (events for the contact invalidate it earlier).
    pub cache_ttl_secs: u64,
}

impl Default for CrmConfig {
    fn default() -> Self {
        CrmConfig {
            enabled: true,
            endpoint: String::new(),
            api_key: Secret::default(),
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            database: "sqlite://switchboard-crm.db?mode=rwc".into(),
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 50052)),
            default_region: String::new(),
            create_unknown_contacts: true,
            screen_pop_deadline_ms: 250,
            delivery_timeout_ms: 15_000,
            history_limit: 10,
            cache_ttl_secs: 30,
        }
    }
}

impl CrmConfig {
    pub fn screen_pop_deadline(&self) -> Duration {
        Duration::from_millis(self.screen_pop_deadline_ms)
    }

    pub fn delivery_timeout(&self) -> Duration {
        Duration::from_millis(self.delivery_timeout_ms)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !self.endpoint.is_empty() && !self.endpoint.starts_with("http://") && !self.endpoint.starts_with("https://")
        {
            return Err(invalid("crm.endpoint", "must be an http:// or https:// URL"));
        }
        if self.client_cert_file.is_some() != self.client_key_file.is_some() {
            return Err(invalid("crm.client_cert_file", "client_cert_file and client_key_file go together"));
        }
        if !(self.database.starts_with("sqlite:")
            || self.database.starts_with("postgres://")
            || self.database.starts_with("postgresql://"))
        {
            return Err(invalid("crm.database", "must be a sqlite: or postgres:// URL"));
        }
        if !self.default_region.is_empty() && self.default_region.parse::<phonenumber::country::Id>().is_err() {
            return Err(invalid("crm.default_region", format!("{:?} is not an ISO country code", self.default_region)));
        }
        check_range("crm.screen_pop_deadline_ms", self.screen_pop_deadline_ms, 10, 10_000, " ms")?;
        check_range("crm.delivery_timeout_ms", self.delivery_timeout_ms, 100, 600_000, " ms")?;
        check_range("crm.history_limit", u64::from(self.history_limit), 0, 100, "")?;
        check_range("crm.cache_ttl_secs", self.cache_ttl_secs, 0, 3600, " seconds")?;
        Ok(())
    }
}

impl RoutingConfig {
    pub fn presence_grace(&self) -> Duration {
        Duration::from_secs(self.presence_grace_secs)
    }
    pub fn timer_poll(&self) -> Duration {
        Duration::from_millis(self.timer_poll_ms)
    }
    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.heartbeat_secs)
    }
    pub fn figures_window(&self) -> Duration {
        Duration::from_secs(self.figures_window_secs)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Human => "human",
            LogFormat::Json => "json",
        }
    }
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "human" => Ok(LogFormat::Human),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("{s:?} is not a log format; use \"human\" or \"json\"")),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// `tracing_subscriber::EnvFilter` directive; `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: LogFormat::Human, level: "info".into() }
    }
}

impl LogConfig {
    /// The filter directive to install: `RUST_LOG` when set and non-empty, else `level`.
    pub fn filter_directive(&self, env: &dyn Env) -> String {
        non_empty(env, ENV_RUST_LOG).unwrap_or_else(|| self.level.clone())
    }
}

/// The variable whose value overrides an agent's `token`: `SWITCHBOARD_AGENT_TOKEN_` followed by
/// the id upper-cased, every character other than an ASCII letter or digit turned into `_`.
pub fn agent_token_env_var(agent_id: &str) -> String {
    let suffix: String =
        agent_id.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    format!("{ENV_AGENT_TOKEN_PREFIX}{suffix}")
}

impl Config {
    /// Reads `path`, or runs on defaults when there is no file; the environment applies either way.
    pub fn load(path: Option<&Path>, env: &dyn Env) -> Result<Config, ConfigError> {
        match path {
            None => Self::parse("", None, env),
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).map_err(|source| ConfigError::Io { path: p.to_path_buf(), source })?;
                Self::parse(&text, Some(p), env)
            }
        }
    }

    pub fn from_toml_str(s: &str, env: &dyn Env) -> Result<Config, ConfigError> {
        Self::parse(s, None, env)
    }

    fn parse(s: &str, path: Option<&Path>, env: &dyn Env) -> Result<Config, ConfigError> {
        let parse_error = |mut source: toml::de::Error| {
            // Without the input the message would lose its line, column and source excerpt.
            source.set_input(Some(s));
            ConfigError::Parse { path: path.map(Path::to_path_buf), source }
        };
        let mut root = DeTable::parse(s).map_err(parse_error)?;
        // Expanding before typing lets `${VAR}` feed typed strings such as socket addresses, and
        // keeps the spans of the original text for toml's error messages.
        interpolate_table(root.get_mut(), "", env)?;
        check_escalation_keys(root.get_ref())?;
        let mut config = Config::deserialize(toml::de::Deserializer::from(root)).map_err(parse_error)?;
        config.apply_env(env)?;
        config.validate()?;
        Ok(config)
    }

    fn apply_env(&mut self, env: &dyn Env) -> Result<(), ConfigError> {
        // Empty counts as unset: env files and compose files often carry `VAR=` placeholders.
        if let Some(url) = non_empty(env, ENV_REDIS_URL) {
            check_redis_url(&url).map_err(|m| invalid("redis.url", format!("{m} (from {ENV_REDIS_URL})")))?;
            self.redis.url = url;
        }
        if let Some(v) = non_empty(env, ENV_GRPC_LISTEN) {
            self.server.grpc_listen = parse_env_addr(&v, "server.grpc_listen", ENV_GRPC_LISTEN)?;
        }
        if let Some(v) = non_empty(env, ENV_HTTP_LISTEN) {
            self.server.http_listen = parse_env_addr(&v, "server.http_listen", ENV_HTTP_LISTEN)?;
        }
        if let Some(v) = non_empty(env, ENV_INSTANCE_ID) {
            crate::model::validate_id("server.instance_id", &v)
                .map_err(|e| invalid("server.instance_id", format!("{} (from {ENV_INSTANCE_ID})", e.message)))?;
            self.server.instance_id = v;
        }
        if let Some(v) = non_empty(env, ENV_CRM_DATABASE) {
            self.crm.database = v;
        }
        if let Some(v) = non_empty(env, ENV_CRM_ENDPOINT) {
            self.crm.endpoint = v;
        }
        if let Some(v) = non_empty(env, ENV_CRM_API_KEY) {
            self.crm.api_key = Secret(v);
        }
        if let Some(v) = non_empty(env, crate::access::config::ENV_ADMIN_KEY) {
            self.auth.add_env_admin_key(v);
        }
        if let Some(v) = non_empty(env, ENV_LOG_FORMAT) {
            self.log.format = v.parse().map_err(|m| invalid("log.format", format!("{m} (from {ENV_LOG_FORMAT})")))?;
        }
        // SWITCHBOARD_EMAIL_PASSWORD_<MAILBOX> / SWITCHBOARD_EMAIL_SMTP_PASSWORD_<MAILBOX>.
        self.email.apply_env(|k| non_empty(env, k));
        // SWITCHBOARD_SMS_SECRET_<GATEWAY> / SWITCHBOARD_SMS_WEBHOOK_SECRET_<GATEWAY>.
        self.sms.apply_env(|k| non_empty(env, k));
        let mut claimed: HashMap<String, (usize, String)> = HashMap::new();
        for (i, agent) in self.agents.iter_mut().enumerate() {
            if agent.id.is_empty() {
                continue;
            }
            let var = agent_token_env_var(&agent.id);
            let Some(token) = non_empty(env, &var) else { continue };
            // Ids such as "a.b" and "a-b" share one variable; guessing which agent it was meant
            // for would hand one agent's credentials to another.
            if let Some((j, other)) = claimed.insert(var.clone(), (i, agent.id.clone())) {
                return Err(invalid(
                    format!("agents[{i}].id"),
                    format!("{:?} and {other:?} (agents[{j}]) both take their token from {var}", agent.id),
                ));
            }
            agent.token = token;
        }
        Ok(())
    }

    /// Checks the whole configuration; `load` and `from_toml_str` already call it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server.validate()?;
        self.redis.validate()?;
        self.routing.validate()?;
        self.log.validate()?;
        self.crm.validate()?;
        self.auth.validate().map_err(|(key, message)| invalid(key, message))?;
        self.tls.validate().map_err(|(key, message)| invalid(key, message))?;
        self.webchat.validate().map_err(|e| invalid(format!("webchat.{}", e.key), e.message))?;
        self.email.validate().map_err(|e| invalid(e.key, e.message))?;
        self.cti.validate().map_err(|e| invalid(format!("cti.{}", e.key), e.message))?;
        self.sms.validate().map_err(|e| invalid(format!("sms.{}", e.key), e.message))?;
        self.web.validate().map_err(|(key, message)| invalid(format!("web.{key}"), message))?;

        let mut agent_ids: HashMap<&str, usize> = HashMap::new();
        for (i, agent) in self.agents.iter().enumerate() {
            agent.validate().map_err(|e| prefixed(&format!("agents[{i}]"), e))?;
            if let Some(first) = agent_ids.insert(&agent.id, i) {
                return Err(invalid(
                    format!("agents[{i}].id"),
                    format!("duplicate agent id {:?} (first at agents[{first}])", agent.id),
                ));
            }
        }

        let mut calendar_names: HashMap<&str, usize> = HashMap::new();
        for (i, calendar) in self.calendars.iter().enumerate() {
            calendar.validate().map_err(|e| prefixed(&format!("calendars[{i}]"), e))?;
            if let Some(first) = calendar_names.insert(&calendar.name, i) {
                return Err(invalid(
                    format!("calendars[{i}].name"),
                    format!("duplicate calendar name {:?} (first at calendars[{first}])", calendar.name),
                ));
            }
        }

        let mut queue_names: HashMap<&str, usize> = HashMap::new();
        for (i, queue) in self.queues.iter().enumerate() {
            queue.validate().map_err(|e| prefixed(&format!("queues[{i}]"), e))?;
            if let Some(first) = queue_names.insert(&queue.name, i) {
                return Err(invalid(
                    format!("queues[{i}].name"),
                    format!("duplicate queue name {:?} (first at queues[{first}])", queue.name),
                ));
            }
            if let Some(calendar) = &queue.calendar
                && !calendar_names.contains_key(calendar.as_str())
            {
                return Err(invalid(
                    format!("queues[{i}].calendar"),
                    format!("calendar {calendar:?} is not defined in this config"),
                ));
            }
        }
        // Checked after all names are known so a queue may overflow to one defined below it.
        for (i, queue) in self.queues.iter().enumerate() {
            for (j, step) in queue.escalation.iter().enumerate() {
                if let EscalationAction::Overflow(target) = &step.action
                    && !queue_names.contains_key(target.as_str())
                {
                    return Err(invalid(
                        format!("queues[{i}].escalation[{j}].overflow"),
                        format!("queue {target:?} is not defined in this config"),
                    ));
                }
            }
            for (j, rule) in queue.closed.iter().enumerate() {
                let target = rule.overflow_queue.as_str();
                if !target.is_empty() && !queue_names.contains_key(target) {
                    return Err(invalid(
                        format!("queues[{i}].closed[{j}].overflow_queue"),
                        format!("queue {target:?} is not defined in this config"),
                    ));
                }
            }
        }
        Ok(())
    }
}

impl ServerConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !self.instance_id.is_empty() {
            crate::model::validate_id("server.instance_id", &self.instance_id)
                .map_err(|e| invalid(e.field, e.message))?;
        }
        if self.shutdown_grace_secs > MAX_SHUTDOWN_GRACE_SECS {
            return Err(invalid(
                "server.shutdown_grace_secs",
                format!("must be at most {MAX_SHUTDOWN_GRACE_SECS} seconds, got {}", self.shutdown_grace_secs),
            ));
        }
        check_range("server.max_watchers", self.max_watchers as u64, 1, 100_000, "")?;
        check_range("server.max_streams_per_connection", u64::from(self.max_streams_per_connection), 1, 100_000, "")?;
        check_range("server.rate_per_caller", u64::from(self.rate_per_caller), 0, 10_000_000, " per second")?;
        if self.rate_per_caller > 0 && self.burst_per_caller < 1 {
            return Err(invalid("server.burst_per_caller", "must be at least 1"));
        }
        for (i, o) in self.grpc_web_origins.iter().enumerate() {
            browser_origin(o).map_err(|m| invalid(format!("server.grpc_web_origins[{i}]"), m))?;
        }
        // Port 0 asks the OS for a free port, so equal addresses are fine there.
        if self.grpc_listen == self.http_listen && self.grpc_listen.port() != 0 {
            return Err(invalid(
                "server.http_listen",
                format!("must differ from server.grpc_listen (both are {})", self.http_listen),
            ));
        }
        Ok(())
    }
}

impl RedisConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        check_redis_url(&self.url).map_err(|m| invalid("redis.url", m))?;
        check_key_part("redis.key_prefix", &self.key_prefix)?;
        check_key_part("redis.domain", &self.domain)?;
        let files = [
            ("redis.ca_file", &self.ca_file),
            ("redis.client_cert_file", &self.client_cert_file),
            ("redis.client_key_file", &self.client_key_file),
        ];
        for (key, path) in files {
            let Some(path) = path else { continue };
            if path.as_os_str().is_empty() {
                return Err(invalid(key, "must not be empty; leave it out instead"));
            }
            // Over a plain connection the file would be ignored: better say so than look secure.
            if !self.url.starts_with("rediss://") {
                return Err(invalid(
                    key,
                    format!("applies only to a rediss:// (TLS) redis.url, not {:?}", self.redacted_url()),
                ));
            }
        }
        match (&self.client_cert_file, &self.client_key_file) {
            (Some(_), None) => Err(invalid("redis.client_key_file", "must be set with redis.client_cert_file")),
            (None, Some(_)) => Err(invalid("redis.client_cert_file", "must be set with redis.client_key_file")),
            _ => Ok(()),
        }
    }
}

impl RoutingConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        check_range("routing.presence_grace_secs", self.presence_grace_secs, 1, 3600, " seconds")?;
        check_range("routing.timer_poll_ms", self.timer_poll_ms, 10, 5000, " ms")?;
        if self.heartbeat_secs < 1 || self.heartbeat_secs >= self.presence_grace_secs {
            return Err(invalid(
                "routing.heartbeat_secs",
                format!(
                    "must be at least 1 and less than routing.presence_grace_secs ({}), got {}",
                    self.presence_grace_secs, self.heartbeat_secs
                ),
            ));
        }
        check_range("routing.figures_window_secs", self.figures_window_secs, 60, 86_400, " seconds")
    }
}

impl LogConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.level.trim().is_empty() {
            return Err(invalid("log.level", "must not be empty; use e.g. \"info\""));
        }
        tracing_subscriber::EnvFilter::builder()
            .parse(&self.level)
            .map_err(|e| invalid("log.level", format!("{:?} is not a valid filter directive: {e}", self.level)))?;
        Ok(())
    }
}

fn non_empty(env: &dyn Env, key: &str) -> Option<String> {
    env.get(key).filter(|v| !v.is_empty())
}

fn parse_env_addr(v: &str, key: &str, var: &str) -> Result<SocketAddr, ConfigError> {
    v.parse().map_err(|_| invalid(key, format!("{var}={v:?} is not an IP:port socket address")))
}

fn check_range(key: &str, v: u64, min: u64, max: u64, unit: &str) -> Result<(), ConfigError> {
    if !(min..=max).contains(&v) {
        return Err(invalid(key, format!("must be {min}..={max}{unit}, got {v}")));
    }
    Ok(())
}

fn check_redis_url(url: &str) -> Result<(), String> {
    match REDIS_SCHEMES.iter().find_map(|s| url.strip_prefix(s)) {
        None => Err(format!(
            "{:?} must start with redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://",
            redact_url(url)
        )),
        Some("") => Err(format!("{:?} names no host or socket path", redact_url(url))),
        Some(_) => {
            let ((Some(Err(why)), _) | (_, Some(Err(why)))) = (
                switchboard_engine::primary::SentinelUrl::parse(url),
                switchboard_engine::cluster::ClusterUrl::parse(url),
            ) else {
                return Ok(());
            };
            Err(format!("{:?} {why}", redact_url(url)))
        }
    }
}

fn check_key_part(key: &str, v: &str) -> Result<(), ConfigError> {
    if v.is_empty() {
        return Err(invalid(key, "must not be empty"));
    }
    if v.len() > MAX_KEY_PART_LEN {
        return Err(invalid(key, format!("must be at most {MAX_KEY_PART_LEN} bytes, got {}", v.len())));
    }
    // ':' separates key segments and braces delimit the cluster hash tag; either inside a part
    // would make two domains' keys collide or split a domain across slots.
    if let Some(c) = v.chars().find(|c| matches!(c, '{' | '}' | ':') || c.is_whitespace() || c.is_control()) {
        return Err(invalid(
            key,
            format!("{v:?} must not contain {c:?} ('{{', '}}', ':' and whitespace are reserved)"),
        ));
    }
    Ok(())
}

fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => Cow::Owned(format!("{user}:***@{host}")),
            // A lone userinfo part may be a password as well; better hide a user name than leak it.
            None => Cow::Owned(format!("***@{host}")),
        },
        None => Cow::Borrowed(authority),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("pass") || k.eq_ignore_ascii_case("password") => {
                        format!("{k}=***")
                    }
                    _ => kv.to_string(),
                })
                .collect();
            Cow::Owned(format!("{path}?{}", query.join("&")))
        }
        None => Cow::Borrowed(tail),
    };
    format!("{scheme}://{authority}{tail}")
}

/// `model::EscalationStep` flattens its action, and serde cannot deny unknown fields next to a
/// flatten: a misspelt key or a second action in a step would be dropped without a word.
fn check_escalation_keys(root: &DeTable<'_>) -> Result<(), ConfigError> {
    const ACTIONS: [&str; 3] = ["drop_skill", "lower_level", "overflow"];
    let Some(DeValue::Array(queues)) = root.get("queues").map(toml::Spanned::get_ref) else { return Ok(()) };
    for (i, queue) in queues.iter().enumerate() {
        let Some(DeValue::Array(steps)) =
            queue.get_ref().as_table().and_then(|q| q.get("escalation")).map(toml::Spanned::get_ref)
        else {
            continue;
        };
        for (j, step) in steps.iter().enumerate() {
            let Some(step) = step.get_ref().as_table() else { continue };
            let key = format!("queues[{i}].escalation[{j}]");
            let names: Vec<&str> = step.keys().map(|k| k.get_ref().as_ref()).collect();
            if let Some(k) = names.iter().find(|k| **k != "after_secs" && !ACTIONS.contains(k)) {
                return Err(invalid(
                    format!("{key}.{k}"),
                    "unknown key; a step has after_secs and one of drop_skill, lower_level, overflow",
                ));
            }
            if names.iter().filter(|k| ACTIONS.contains(k)).count() > 1 {
                return Err(invalid(key, "takes exactly one of drop_skill, lower_level, overflow"));
            }
        }
    }
    Ok(())
}

fn interpolate_table(table: &mut DeTable<'_>, prefix: &str, env: &dyn Env) -> Result<(), ConfigError> {
    for (k, v) in table.iter_mut() {
        let key = if prefix.is_empty() { k.get_ref().to_string() } else { format!("{prefix}.{}", k.get_ref()) };
        interpolate_value(v.get_mut(), &key, env)?;
    }
    Ok(())
}

fn interpolate_value(value: &mut DeValue<'_>, key: &str, env: &dyn Env) -> Result<(), ConfigError> {
    match value {
        DeValue::String(s) if s.contains('$') => *s = Cow::Owned(expand(s, key, env)?),
        DeValue::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                interpolate_value(item.get_mut(), &format!("{key}[{i}]"), env)?;
            }
        }
        DeValue::Table(t) => interpolate_table(t, key, env)?,
        _ => {}
    }
    Ok(())
}

/// Expands `${NAME}` and `${NAME:-default}` (default when unset or empty); `$${` is a literal
/// `${`, any other `$` stays as it is. Expanded text is not expanded again, so a value taken from
/// the environment can never pull in another variable.
fn expand(s: &str, key: &str, env: &dyn Env) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix("${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| invalid(key, "unterminated \"${\" (write \"$${\" for a literal \"${\")"))?;
            let (name, default) = match body[..end].split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (&body[..end], None),
            };
            if !is_env_name(name) {
                return Err(invalid(key, format!("${{{name}}}: {name:?} is not an environment variable name")));
            }
            match (env.get(name), default) {
                (Some(v), Some(d)) if v.is_empty() => out.push_str(d),
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => return Err(invalid(key, format!("environment variable {name} is not set"))),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Capacity, Channel, EscalationStep, Requirement, Strategy};

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn no_env() -> HashMap<String, String> {
        HashMap::new()
    }

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::from_toml_str(s, &no_env())
    }

    const MAILBOX: &str = r#"
[[email.mailboxes]]
name = "support"
address = "support@example.com"
queue = "support"
[email.mailboxes.imap]
host = "imap.example.com"
security = "tls"
username = "support@example.com"
[email.mailboxes.smtp]
host = "smtp.example.com"
security = "starttls"
username = "support@example.com"
"#;

    #[test]
    fn email_mailboxes_take_passwords_from_the_environment() {
        let c = Config::from_toml_str(MAILBOX, &env(&[("SWITCHBOARD_EMAIL_PASSWORD_SUPPORT", "pw")])).unwrap();
        assert_eq!(c.email.mailboxes[0].imap.password, "pw");
        assert_eq!(c.email.mailboxes[0].smtp.password, "pw");
        let e = env(&[("SWITCHBOARD_EMAIL_PASSWORD_SUPPORT", "pw"), ("SWITCHBOARD_EMAIL_SMTP_PASSWORD_SUPPORT", "s")]);
        assert_eq!(Config::from_toml_str(MAILBOX, &e).unwrap().email.mailboxes[0].smtp.password, "s");
    }

    #[test]
    fn email_and_webchat_errors_name_their_key() {
        let err = parse(MAILBOX).unwrap_err();
        assert!(err.key().unwrap().starts_with("email.mailboxes[0].imap.password"), "{err}");
        let err = parse("[webchat]\nallowed_origins = [\"example.com\"]").unwrap_err();
        assert_eq!(err.key(), Some("webchat.allowed_origins[0]"), "{err}");
        let err = parse("[webchat]\nunknown = 1").unwrap_err();
        assert!(err.to_string().contains("unknown"), "{err}");
    }

    #[test]
    fn grpc_web_origins_are_checked_and_normalized() {
        let c = parse(
            "[server]\ngrpc_web_origins = [\"HTTPS://Desk.Example.com:443/\", \"http://127.0.0.1:8080\", \"http://a.test:80\"]",
        )
        .unwrap();
        assert_eq!(c.server.browser_origins(), ["https://desk.example.com", "http://127.0.0.1:8080", "http://a.test"]);
        assert!(parse("").unwrap().server.browser_origins().is_empty());
        for bad in ["*", "desk.example.com", "https://desk.example.com/agent", "ftp://a.test", "", "https://bücher.de"]
        {
            let err = parse(&format!("[server]\ngrpc_web_origins = [\"https://ok.test\", {bad:?}]")).unwrap_err();
            assert_eq!(err.key(), Some("server.grpc_web_origins[1]"), "{bad:?}: {err}");
        }
        let err = parse("[server]\ngrpc_web_origins = [\"*\"]").unwrap_err();
        assert!(err.to_string().contains("list the origins"), "{err}");
    }

    #[track_caller]
    fn invalid_key(s: &str, e: &dyn Env) -> String {
        match Config::from_toml_str(s, e) {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("expected an Invalid error for {s:?}, got {other:?}"),
        }
    }

    #[track_caller]
    fn parse_message(s: &str) -> String {
        match parse(s) {
            Err(e @ ConfigError::Parse { .. }) => e.to_string(),
            other => panic!("expected a Parse error for {s:?}, got {other:?}"),
        }
    }

    const FULL: &str = r#"
        [server]
        grpc_listen = "0.0.0.0:6000"
        http_listen = "[::1]:6001"
        instance_id = "node-1"
        shutdown_grace_secs = 20

        [redis]
        url = "rediss://user:secret@redis.example:6380/2"
        key_prefix = "switch"
        domain = "eu"

        [routing]
        presence_grace_secs = 45
        cross_channel_blocking = false
        timer_poll_ms = 50
        heartbeat_secs = 10
        figures_window_secs = 3600

        [log]
        format = "json"
        level = "info,switchboard=debug"

        [[agents]]
        id = "alice"
        name = "Alice A."
        skills = { english = 9, billing = 7 }
        token = "t-alice"

        [[agents]]
        id = "bob"
        capacity = { chat = 5, email = 10 }
        cross_channel_blocking = true

        [[queues]]
        name = "sales"
        channels = ["voice", "chat"]
        requirements = [{ skill = "english", min_level = 5 }, { skill = "billing", min_level = 8 }]
        priority = 10
        strategy = "most_skilled"
        offer_timeout_secs = 30
        wrap_up_secs = 15
        service_level_secs = 25
        escalation = [
            { after_secs = 30, lower_level = { skill = "billing", min_level = 4 } },
            { after_secs = 60, drop_skill = "billing" },
            { after_secs = 120, overflow = "general" },
        ]

        [[queues]]
        name = "general"
        strategy = "least_occupied"
    "#;

    #[test]
    fn empty_input_gives_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.server.grpc_listen, "127.0.0.1:50051".parse().unwrap());
        assert_eq!(c.server.http_listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.server.instance_id, "");
        assert_eq!(c.server.shutdown_grace(), Duration::from_secs(10));
        assert_eq!(c.redis.url, "redis://127.0.0.1:6379");
        assert_eq!(c.redis.key_root(), "sb:{default}:");
        assert_eq!(c.routing.presence_grace(), Duration::from_secs(30));
        assert!(c.routing.cross_channel_blocking);
        assert_eq!(c.routing.timer_poll(), Duration::from_millis(100));
        assert_eq!(c.routing.heartbeat(), Duration::from_secs(5));
        assert_eq!(c.routing.figures_window(), Duration::from_secs(900));
        assert_eq!(c.log.format, LogFormat::Human);
        assert_eq!(c.log.level, "info");
        assert!(c.agents.is_empty() && c.queues.is_empty());
        // The defaults must pass their own validation.
        Config::default().validate().unwrap();
        assert_eq!(parse("# only a comment\n[server]\n[routing]\n").unwrap(), Config::default());
    }

    #[test]
    fn load_without_file_applies_env() {
        let e = env(&[(ENV_LOG_FORMAT, "json")]);
        let c = Config::load(None, &e).unwrap();
        assert_eq!(c.log.format, LogFormat::Json);
    }

    #[test]
    fn full_example_parses() {
        let c = parse(FULL).unwrap();
        assert_eq!(c.server.grpc_listen, "0.0.0.0:6000".parse().unwrap());
        assert_eq!(c.server.http_listen, "[::1]:6001".parse().unwrap());
        assert_eq!(c.server.instance_id, "node-1");
        assert_eq!(c.server.shutdown_grace_secs, 20);
        assert_eq!(c.redis.key_root(), "switch:{eu}:");
        assert_eq!(c.redis.url, "rediss://user:secret@redis.example:6380/2");
        assert_eq!(
            c.routing,
            RoutingConfig {
                presence_grace_secs: 45,
                cross_channel_blocking: false,
                timer_poll_ms: 50,
                heartbeat_secs: 10,
                figures_window_secs: 3600,
            }
        );
        assert_eq!(c.log, LogConfig { format: LogFormat::Json, level: "info,switchboard=debug".into() });

        assert_eq!(c.agents.len(), 2);
        let alice = &c.agents[0];
        assert_eq!(alice.name, "Alice A.");
        assert_eq!(alice.skills["english"], 9);
        assert_eq!(alice.token, "t-alice");
        assert_eq!(alice.capacity, Capacity::default());
        assert_eq!(alice.cross_channel_blocking, None);
        let bob = &c.agents[1];
        assert_eq!(bob.capacity, Capacity { voice: 1, chat: 5, sms: 3, email: 10 });
        assert_eq!(bob.cross_channel_blocking, Some(true));

        let sales = &c.queues[0];
        assert_eq!(sales.channels, vec![Channel::Voice, Channel::Chat]);
        assert_eq!(sales.requirements[1], Requirement { skill: "billing".into(), min_level: 8 });
        assert_eq!(sales.strategy, Strategy::MostSkilled);
        assert_eq!((sales.priority, sales.offer_timeout_secs, sales.wrap_up_secs), (10, 30, 15));
        assert_eq!(sales.service_level_secs, 25);
        assert_eq!(
            sales.escalation,
            vec![
                EscalationStep {
                    after_secs: 30,
                    action: EscalationAction::LowerLevel(Requirement { skill: "billing".into(), min_level: 4 }),
                },
                EscalationStep { after_secs: 60, action: EscalationAction::DropSkill("billing".into()) },
                EscalationStep { after_secs: 120, action: EscalationAction::Overflow("general".into()) },
            ]
        );
        let general = &c.queues[1];
        assert_eq!(general.strategy, Strategy::LeastOccupied);
        assert_eq!(general.channels, Channel::ALL.to_vec());
        assert_eq!(general.offer_timeout_secs, 20);
    }

    #[test]
    fn deploy_example_parses() {
        let c = parse(include_str!("../deploy/switchboard.toml")).unwrap();
        assert_eq!(c.agents.len(), 3);
        assert_eq!(c.queues.len(), 3);
        assert_eq!(c.calendars.len(), 1);
        assert!(c.queues.iter().any(|q| q.calendar.as_deref() == Some("office-hours")), "a queue keeps the calendar");
        assert!(c.agents.iter().any(|a| a.capacity != Capacity::default()), "one agent overrides capacity");
        let actions: Vec<&EscalationAction> = c.queues.iter().flat_map(|q| &q.escalation).map(|s| &s.action).collect();
        assert!(actions.iter().any(|a| matches!(a, EscalationAction::LowerLevel(_))));
        assert!(actions.iter().any(|a| matches!(a, EscalationAction::DropSkill(_))));
        assert!(actions.iter().any(|a| matches!(a, EscalationAction::Overflow(_))));
        let strategies: Vec<Strategy> = c.queues.iter().map(|q| q.strategy).collect();
        for s in [Strategy::LongestIdle, Strategy::MostSkilled, Strategy::LeastOccupied] {
            assert!(strategies.contains(&s), "{s:?}");
        }
        // Tokens come from the environment in the example, never from the file.
        assert!(c.agents.iter().all(|a| a.token.is_empty()));
        let e = env(&[("SWITCHBOARD_AGENT_TOKEN_ALICE", "from-env")]);
        let c = Config::from_toml_str(include_str!("../deploy/switchboard.toml"), &e).unwrap();
        assert_eq!(c.agents.iter().find(|a| a.id == "alice").unwrap().token, "from-env");
    }

    #[test]
    fn env_overrides_apply() {
        let base = "[redis]\nurl = \"redis://file:1\"\n[[agents]]\nid = \"alice\"\ntoken = \"from-file\"\n";
        type Check = Box<dyn Fn(&Config) -> bool>;
        let cases: Vec<(&str, &str, Check)> = vec![
            (ENV_REDIS_URL, "redis://:pw@10.0.0.1:7000/1", Box::new(|c| c.redis.url == "redis://:pw@10.0.0.1:7000/1")),
            (ENV_REDIS_URL, "unix:///run/redis.sock", Box::new(|c| c.redis.url == "unix:///run/redis.sock")),
            (ENV_GRPC_LISTEN, "0.0.0.0:7001", Box::new(|c| c.server.grpc_listen.port() == 7001)),
            (ENV_HTTP_LISTEN, "[::]:7002", Box::new(|c| c.server.http_listen == "[::]:7002".parse().unwrap())),
            (ENV_LOG_FORMAT, "json", Box::new(|c| c.log.format == LogFormat::Json)),
            (ENV_LOG_FORMAT, "human", Box::new(|c| c.log.format == LogFormat::Human)),
            (ENV_INSTANCE_ID, "node-2", Box::new(|c| c.server.instance_id == "node-2")),
            ("SWITCHBOARD_AGENT_TOKEN_ALICE", "from-env", Box::new(|c| c.agents[0].token == "from-env")),
        ];
        for (var, value, check) in cases {
            let c = Config::from_toml_str(base, &env(&[(var, value)])).unwrap();
            assert!(check(&c), "{var}={value}");
        }
        // Without overrides the file wins.
        let c = parse(base).unwrap();
        assert_eq!(c.redis.url, "redis://file:1");
        assert_eq!(c.agents[0].token, "from-file");
    }

    #[test]
    fn empty_env_values_count_as_unset() {
        let e = env(&[
            (ENV_REDIS_URL, ""),
            (ENV_GRPC_LISTEN, ""),
            (ENV_HTTP_LISTEN, ""),
            (ENV_LOG_FORMAT, ""),
            ("SWITCHBOARD_AGENT_TOKEN_ALICE", ""),
        ]);
        let c = Config::from_toml_str("[[agents]]\nid = \"alice\"\ntoken = \"keep\"\n", &e).unwrap();
        assert_eq!(c.server, ServerConfig::default());
        assert_eq!(c.redis, RedisConfig::default());
        assert_eq!(c.log, LogConfig::default());
        assert_eq!(c.agents[0].token, "keep");
    }

    #[test]
    fn bad_env_overrides_name_key_and_variable() {
        let cases = [
            (ENV_REDIS_URL, "http://x", "redis.url"),
            (ENV_GRPC_LISTEN, "localhost:50051", "server.grpc_listen"),
            (ENV_HTTP_LISTEN, "8080", "server.http_listen"),
            (ENV_LOG_FORMAT, "yaml", "log.format"),
            (ENV_INSTANCE_ID, "node 2", "server.instance_id"),
        ];
        for (var, value, key) in cases {
            let err = Config::from_toml_str("", &env(&[(var, value)])).unwrap_err();
            assert_eq!(err.key(), Some(key), "{err}");
            assert!(err.to_string().contains(var), "{err}");
        }
        // The redis URL may hold a password: the error must not repeat it.
        let err = Config::from_toml_str("", &env(&[(ENV_REDIS_URL, "http://u:hunter2@x")])).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn agent_token_variable_names() {
        assert_eq!(agent_token_env_var("alice"), "SWITCHBOARD_AGENT_TOKEN_ALICE");
        assert_eq!(agent_token_env_var("bob.smith-2@eu"), "SWITCHBOARD_AGENT_TOKEN_BOB_SMITH_2_EU");
        let toml = "[[agents]]\nid = \"bob.smith-2\"\n[[agents]]\nid = \"carol\"\ntoken = \"c\"\n";
        let c = Config::from_toml_str(toml, &env(&[("SWITCHBOARD_AGENT_TOKEN_BOB_SMITH_2", "b")])).unwrap();
        assert_eq!(c.agents[0].token, "b");
        assert_eq!(c.agents[1].token, "c");
    }

    #[test]
    fn agents_sharing_a_token_variable_are_rejected_when_it_is_set() {
        let toml = "[[agents]]\nid = \"a.b\"\n[[agents]]\nid = \"a-b\"\n";
        parse(toml).unwrap();
        let err = Config::from_toml_str(toml, &env(&[("SWITCHBOARD_AGENT_TOKEN_A_B", "t")])).unwrap_err();
        assert_eq!(err.key(), Some("agents[1].id"), "{err}");
        assert!(err.to_string().contains("SWITCHBOARD_AGENT_TOKEN_A_B"), "{err}");
    }

    const CALENDARS: &str = r#"
        [[calendars]]
        name = "emea"
        time_zone = "Europe/Berlin"
        weekly = { mon = ["08:00-12:00", "13:00-18:00"], tue = ["08:00-18:00"], sat = [] }
        exceptions = [
            { name = "Christmas", from = "2026-12-24", to = "2026-12-26" },
            { name = "short day", from = "2026-12-31", hours = ["08:00-12:00"] },
        ]

        [[queues]]
        name = "sales"
        calendar = "emea"
    "#;

    #[test]
    fn calendars_are_read_and_queues_name_them() {
        let c = parse(CALENDARS).unwrap();
        let emea = &c.calendars[0];
        assert_eq!((emea.name.as_str(), emea.time_zone.as_str()), ("emea", "Europe/Berlin"));
        assert_eq!(emea.weekly.mon, ["08:00-12:00", "13:00-18:00"]);
        assert!(emea.weekly.sat.is_empty() && emea.weekly.sun.is_empty());
        assert_eq!((emea.exceptions[0].to.as_str(), emea.exceptions[1].to.as_str()), ("2026-12-26", ""));
        assert_eq!(emea.exceptions[1].hours, ["08:00-12:00"]);
        assert_eq!(c.queues[0].calendar.as_deref(), Some("emea"));
        assert_eq!(parse("[[queues]]\nname = \"q\"").unwrap().queues[0].calendar, None);
    }

    #[test]
    fn bad_calendars_name_their_key() {
        let e = no_env();
        let cases = [
            (CALENDARS.replace("\"13:00-18:00\"", "\"13:00-1800\""), "calendars[0].weekly.mon[1]"),
            (CALENDARS.replace("\"13:00-18:00\"", "\"11:00-14:00\""), "calendars[0].weekly.mon[1]"),
            (CALENDARS.replace("Europe/Berlin", "CET+1"), "calendars[0].time_zone"),
            (CALENDARS.replace("from = \"2026-12-31\", ", ""), "calendars[0].exceptions[1].from"),
            (CALENDARS.replace("to = \"2026-12-26\"", "to = \"2026-12-20\""), "calendars[0].exceptions[0].to"),
            (CALENDARS.replace("name = \"emea\"", "name = \"emea west\""), "calendars[0].name"),
            (CALENDARS.replace("calendar = \"emea\"", "calendar = \"apac\""), "queues[0].calendar"),
            (format!("{CALENDARS}\n[[calendars]]\nname = \"emea\"\ntime_zone = \"UTC\"\n"), "calendars[1].name"),
        ];
        for (toml, key) in cases {
            assert_eq!(invalid_key(&toml, &e), key, "{toml}");
        }
        let msg = parse_message(&CALENDARS.replace("tue =", "tues ="));
        assert!(msg.contains("unknown field `tues`") && msg.contains("line "), "{msg}");
    }

    const CLOSED: &str = r#"
        [[queues]]
        name = "night"

        [[queues]]
        name = "sales"
        closed = [
            { channel = "voice", action = "overflow", overflow_queue = "night" },
            { action = "hold", message = "Back at {opens}." },
        ]
    "#;

    #[test]
    fn closed_rules_are_read_and_name_their_key() {
        use crate::model::{Channel, ClosedAction};
        let c = parse(CLOSED).unwrap();
        let sales = &c.queues[1];
        assert_eq!(sales.closed_rule(Channel::Voice).0.overflow_queue, "night");
        let (email, index) = sales.closed_rule(Channel::Email);
        assert_eq!((email.action, email.message.as_str(), index), (ClosedAction::Hold, "Back at {opens}.", Some(1)));
        let e = no_env();
        let cases = [
            (
                CLOSED.replace("overflow_queue = \"night\"", "overflow_queue = \"day\""),
                "queues[1].closed[0].overflow_queue",
            ),
            (
                CLOSED.replace("overflow_queue = \"night\"", "overflow_queue = \"sales\""),
                "queues[1].closed[0].overflow_queue",
            ),
            (
                CLOSED.replace("{ action = \"hold\"", "{ channel = \"voice\", action = \"hold\""),
                "queues[1].closed[1].channel",
            ),
        ];
        for (toml, key) in cases {
            assert_eq!(invalid_key(&toml, &e), key, "{toml}");
        }
        let msg = parse_message(&CLOSED.replace("\"hold\"", "\"wait\""));
        assert!(msg.contains("unknown variant `wait`") && msg.contains("line "), "{msg}");
    }

    #[test]
    fn unknown_keys_are_named_with_their_line() {
        let cases = [
            ("[serverr]\n", "serverr"),
            ("[server]\ngrpc_listn = \"127.0.0.1:1\"\n", "grpc_listn"),
            ("[redis]\nurl = \"redis://x\"\npassword = \"p\"\n", "password"),
            ("[routing]\npresence_grace = 3\n", "presence_grace"),
            ("[log]\nlevels = \"info\"\n", "levels"),
            ("[[agents]]\nid = \"a\"\nskils = {}\n", "skils"),
            ("[[agents]]\nid = \"a\"\ncapacity = { phone = 1 }\n", "phone"),
            ("[[queues]]\nname = \"q\"\nstrategie = \"most_skilled\"\n", "strategie"),
        ];
        for (toml, key) in cases {
            let msg = parse_message(toml);
            assert!(msg.contains(&format!("unknown field `{key}`")), "{msg}");
            assert!(msg.contains("line "), "{msg}");
        }
        let msg = parse_message("\n\n[server]\nbogus = 1\n");
        assert!(msg.contains("line 4"), "{msg}");
    }

    #[test]
    fn wrongly_typed_values_are_parse_errors() {
        let cases = [
            ("[server]\ngrpc_listen = \"localhost:50051\"\n", "grpc_listen"),
            ("[server]\nshutdown_grace_secs = -1\n", "shutdown_grace_secs"),
            ("[routing]\ncross_channel_blocking = \"yes\"\n", "cross_channel_blocking"),
            ("[log]\nformat = \"yaml\"\n", "format"),
            ("[[queues]]\nname = \"q\"\nstrategy = \"random\"\n", "strategy"),
            ("[[queues]]\nname = \"q\"\nchannels = [\"fax\"]\n", "channels"),
            ("[[agents]]\nname = \"no id\"\n", "id"),
        ];
        for (toml, key) in cases {
            let msg = parse_message(toml);
            assert!(msg.contains(key), "{key}: {msg}");
            assert!(msg.contains("line "), "{msg}");
        }
        let msg = parse_message("[server\n");
        assert!(msg.contains("line 1"), "{msg}");
    }

    #[test]
    fn invalid_values_name_their_key() {
        let cases = [
            ("[server]\nshutdown_grace_secs = 301", "server.shutdown_grace_secs"),
            ("[server]\ninstance_id = \"a b\"", "server.instance_id"),
            ("[server]\ngrpc_listen = \"127.0.0.1:9000\"\nhttp_listen = \"127.0.0.1:9000\"", "server.http_listen"),
            ("[redis]\nurl = \"http://127.0.0.1:6379\"", "redis.url"),
            ("[redis]\nurl = \"redis://\"", "redis.url"),
            ("[redis]\nurl = \"redis+cluster://h:7000/3\"", "redis.url"),
            ("[redis]\nurl = \"redis+sentinel://h:26379\"", "redis.url"),
            ("[redis]\nkey_prefix = \"\"", "redis.key_prefix"),
            ("[redis]\nkey_prefix = \"a:b\"", "redis.key_prefix"),
            ("[redis]\ndomain = \"\"", "redis.domain"),
            ("[redis]\ndomain = \"{x}\"", "redis.domain"),
            ("[redis]\ndomain = \"a b\"", "redis.domain"),
            ("[routing]\npresence_grace_secs = 0", "routing.presence_grace_secs"),
            ("[routing]\npresence_grace_secs = 3601", "routing.presence_grace_secs"),
            ("[routing]\ntimer_poll_ms = 9", "routing.timer_poll_ms"),
            ("[routing]\ntimer_poll_ms = 5001", "routing.timer_poll_ms"),
            ("[routing]\nheartbeat_secs = 0", "routing.heartbeat_secs"),
            ("[routing]\nheartbeat_secs = 30", "routing.heartbeat_secs"),
            ("[routing]\npresence_grace_secs = 4\nheartbeat_secs = 5", "routing.heartbeat_secs"),
            ("[routing]\nfigures_window_secs = 59", "routing.figures_window_secs"),
            ("[routing]\nfigures_window_secs = 86401", "routing.figures_window_secs"),
            ("[log]\nlevel = \"\"", "log.level"),
            ("[log]\nlevel = \"switchboard=loud\"", "log.level"),
            ("[[agents]]\nid = \"a b\"", "agents[0].id"),
            ("[[agents]]\nid = \"a\"\n[[agents]]\nid = \"b\"\nskills = { english = 11 }", "agents[1].skills.english"),
            ("[[agents]]\nid = \"a\"\ncapacity = { chat = 26 }", "agents[0].capacity.chat"),
            ("[[queues]]\nname = \"q\"\nchannels = []", "queues[0].channels"),
            ("[[queues]]\nname = \"q\"\noffer_timeout_secs = 0", "queues[0].offer_timeout_secs"),
            ("[[queues]]\nname = \"q\"\npriority = 1001", "queues[0].priority"),
        ];
        for (toml, key) in cases {
            assert_eq!(invalid_key(toml, &no_env()), key, "{toml}");
        }
        // The boundaries themselves are accepted.
        parse("[server]\nshutdown_grace_secs = 300\n[routing]\npresence_grace_secs = 3600\ntimer_poll_ms = 10\n")
            .unwrap();
        parse(
            "[routing]\npresence_grace_secs = 2\nheartbeat_secs = 1\nfigures_window_secs = 86400\ntimer_poll_ms = 5000",
        )
        .unwrap();
        parse("[routing]\nfigures_window_secs = 60\n[server]\ngrpc_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"")
            .unwrap();
    }

    #[test]
    fn model_errors_are_prefixed_with_their_entry() {
        let toml = r#"
            [[queues]]
            name = "general"
            [[queues]]
            name = "sales"
            requirements = [{ skill = "english", min_level = 5 }]
            escalation = [{ after_secs = 30, drop_skill = "x" }]
        "#;
        let err = parse(toml).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"invalid config: queues[1].escalation[0].drop_skill: skill "x" is not required at that point"#
        );
        assert_eq!(err.key(), Some("queues[1].escalation[0].drop_skill"));
    }

    #[test]
    fn escalation_steps_reject_unknown_keys_and_double_actions() {
        let step =
            |body: &str| format!("[[queues]]\nname = \"q\"\n[[queues]]\nname = \"r\"\nescalation = [{{ {body} }}]\n");
        let cases = [
            ("after_secs = 5, overflow = \"q\", bogus = 1", "queues[1].escalation[0].bogus"),
            ("after_secs = 5, overflow = \"q\", drop_skill = \"x\"", "queues[1].escalation[0]"),
        ];
        for (body, key) in cases {
            let err = parse(&step(body)).unwrap_err();
            assert_eq!(err.key(), Some(key), "{err}");
        }
        parse(&step("after_secs = 5, overflow = \"q\"")).unwrap();
        // A step with no action at all is left to toml's own error.
        assert!(matches!(parse(&step("after_secs = 5")), Err(ConfigError::Parse { .. })));
    }

    #[test]
    fn duplicates_are_rejected() {
        let agents = "[[agents]]\nid = \"alice\"\n[[agents]]\nid = \"bob\"\n[[agents]]\nid = \"alice\"\n";
        let err = parse(agents).unwrap_err();
        assert_eq!(err.key(), Some("agents[2].id"));
        assert!(err.to_string().contains("agents[0]"), "{err}");
        let queues = "[[queues]]\nname = \"sales\"\n[[queues]]\nname = \"sales\"\n";
        let err = parse(queues).unwrap_err();
        assert_eq!(err.key(), Some("queues[1].name"));
    }

    #[test]
    fn overflow_targets_must_be_defined_here() {
        let toml = |target: &str| {
            format!(
                "[[queues]]\nname = \"sales\"\nescalation = [{{ after_secs = 60, overflow = \"{target}\" }}]\n\
                 [[queues]]\nname = \"general\"\n"
            )
        };
        // Defined further down is fine.
        parse(&toml("general")).unwrap();
        let err = parse(&toml("nowhere")).unwrap_err();
        assert_eq!(err.key(), Some("queues[0].escalation[0].overflow"));
        assert!(err.to_string().contains("\"nowhere\""), "{err}");
    }

    #[test]
    fn interpolation_expands_string_values() {
        let e = env(&[("REDIS_HOST", "10.1.1.1"), ("PORT", "7000"), ("TOKEN", "s3cr$t"), ("EMPTY", "")]);
        let toml = r#"
            [server]
            grpc_listen = "127.0.0.1:${PORT}"
            instance_id = "${MISSING:-node-a}"
            [redis]
            url = "redis://${REDIS_HOST}:6379"
            domain = "${EMPTY:-fallback}"
            [[agents]]
            id = "alice"
            name = "costs $5, not $${NOT_EXPANDED}"
            token = "${TOKEN}"
        "#;
        let c = Config::from_toml_str(toml, &e).unwrap();
        assert_eq!(c.server.grpc_listen.port(), 7000);
        assert_eq!(c.server.instance_id, "node-a");
        assert_eq!(c.redis.url, "redis://10.1.1.1:6379");
        assert_eq!(c.redis.domain, "fallback");
        assert_eq!(c.agents[0].name, "costs $5, not ${NOT_EXPANDED}");
        // A `$` inside an expanded value is not expanded again.
        assert_eq!(c.agents[0].token, "s3cr$t");
    }

    #[test]
    fn interpolation_errors_name_the_key() {
        let cases = [
            ("[redis]\nurl = \"${NOPE}\"", "redis.url", "NOPE"),
            ("[[agents]]\nid = \"a\"\n[[agents]]\nid = \"b\"\ntoken = \"${TOKEN_B}\"", "agents[1].token", "TOKEN_B"),
            ("[[queues]]\nname = \"q\"\nchannels = [\"chat\", \"${CH}\"]", "queues[0].channels[1]", "CH"),
            ("[redis]\nurl = \"redis://${HOST\"", "redis.url", "unterminated"),
            ("[redis]\nurl = \"redis://${1X}\"", "redis.url", "1X"),
        ];
        for (toml, key, needle) in cases {
            let err = parse(toml).unwrap_err();
            assert_eq!(err.key(), Some(key), "{err}");
            assert!(err.to_string().contains(needle), "{err}");
        }
    }

    #[test]
    fn interpolated_values_are_still_checked() {
        let e = env(&[("LISTEN", "nowhere"), ("GRACE", "3601")]);
        let msg = match Config::from_toml_str("[server]\ngrpc_listen = \"${LISTEN}\"", &e) {
            Err(err @ ConfigError::Parse { .. }) => err.to_string(),
            other => panic!("{other:?}"),
        };
        assert!(msg.contains("grpc_listen") && msg.contains("line 2"), "{msg}");
        // Strings do not turn into numbers: a TOML integer key cannot take `${VAR}`.
        assert!(Config::from_toml_str("[routing]\npresence_grace_secs = \"${GRACE}\"", &e).is_err());
    }

    #[test]
    fn load_reads_files_and_names_them_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.toml");
        std::fs::write(&good, "[redis]\ndomain = \"eu\"\n").unwrap();
        let c = Config::load(Some(&good), &no_env()).unwrap();
        assert_eq!(c.redis.key_root(), "sb:{eu}:");

        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "[redis]\ndomian = \"eu\"\n").unwrap();
        let err = Config::load(Some(&bad), &no_env()).unwrap_err();
        assert!(matches!(err, ConfigError::Parse { path: Some(_), .. }));
        let msg = err.to_string();
        assert!(msg.contains("bad.toml") && msg.contains("domian") && msg.contains("line 2"), "{msg}");

        let missing = dir.path().join("missing.toml");
        let err = Config::load(Some(&missing), &no_env()).unwrap_err();
        assert!(matches!(&err, ConfigError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound));
        assert!(err.to_string().contains("missing.toml"), "{err}");
    }

    #[test]
    fn redis_passwords_stay_out_of_debug_and_errors() {
        let cases = [
            ("redis://:hunter2@host:6379/0", "redis://:***@host:6379/0"),
            ("rediss://user:hunter2@host", "rediss://user:***@host"),
            ("redis://hunter2@host", "redis://***@host"),
            ("unix:///run/redis.sock?db=1&pass=hunter2", "unix:///run/redis.sock?db=1&pass=***"),
            ("redis://host:6379", "redis://host:6379"),
        ];
        for (url, redacted) in cases {
            let r = RedisConfig { url: url.into(), ..RedisConfig::default() };
            assert_eq!(r.redacted_url(), redacted);
            assert!(!format!("{r:?}").contains("hunter2"));
        }
        let c = parse("[redis]\nurl = \"rediss://u:hunter2@h\"\n").unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        let err = parse("[redis]\nurl = \"tcp://u:hunter2@h\"\n").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn redis_tls_files_go_with_rediss_and_are_read_at_start() {
        let tls = "url = \"rediss://app:pw@redis.internal:6380\"\n";
        let cases = [
            (format!("[redis]\n{tls}client_cert_file = \"c.pem\""), "redis.client_key_file", "must be set with"),
            (format!("[redis]\n{tls}client_key_file = \"k.pem\""), "redis.client_cert_file", "must be set with"),
            (format!("[redis]\n{tls}ca_file = \"\""), "redis.ca_file", "must not be empty"),
            ("[redis]\nurl = \"redis://app:pw@h\"\nca_file = \"ca.pem\"".into(), "redis.ca_file", "rediss://"),
            (
                "[redis]\nclient_cert_file = \"c\"\nclient_key_file = \"k\"".into(),
                "redis.client_cert_file",
                "rediss://",
            ),
            ("[redis]\nurl = \"unix:///run/r.sock\"\nca_file = \"ca.pem\"".into(), "redis.ca_file", "not \"unix://"),
        ];
        for (toml, key, words) in cases {
            let err = parse(&toml).unwrap_err();
            assert_eq!(err.key(), Some(key), "{toml}: {err}");
            assert!(err.to_string().contains(words), "{toml}: {err}");
            assert!(!err.to_string().contains("pw@"), "the password leaked: {err}");
        }

        // A rediss:// URL alone is fine (the web's roots), and reads nothing.
        let c = parse(&format!("[redis]\n{tls}")).unwrap();
        assert!(c.redis.tls().unwrap().is_none());

        let dir = tempfile::tempdir().unwrap();
        let (ca, cert, key) = (dir.path().join("ca.pem"), dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&ca, "CA").unwrap();
        std::fs::write(&cert, "CERT").unwrap();
        std::fs::write(&key, "KEY").unwrap();
        let toml = format!(
            "[redis]\n{tls}ca_file = {ca:?}\nclient_cert_file = {cert:?}\nclient_key_file = {key:?}\n",
            ca = ca.display().to_string(),
            cert = cert.display().to_string(),
            key = key.display().to_string()
        );
        let c = parse(&toml).unwrap();
        let read = c.redis.tls().unwrap().expect("files set");
        assert_eq!(read.ca_pem.as_deref(), Some(&b"CA"[..]));
        assert!(!format!("{read:?}").contains("KEY"), "the key must stay out of logs");
        let client = read.client_cert.expect("a client certificate");
        assert_eq!((client.cert_pem.as_slice(), client.key_pem.as_slice()), (&b"CERT"[..], &b"KEY"[..]));

        std::fs::remove_file(&key).unwrap();
        let err = c.redis.tls().unwrap_err();
        assert_eq!(err.key(), Some("redis.client_key_file"), "{err}");
        assert!(err.to_string().contains("cannot read") && err.to_string().contains("k.pem"), "{err}");
    }

    #[test]
    fn log_format_and_filter_directive() {
        assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert_eq!("human".parse::<LogFormat>(), Ok(LogFormat::Human));
        assert!("JSON".parse::<LogFormat>().is_err());
        assert_eq!(LogFormat::Json.to_string(), "json");
        let log = LogConfig { level: "warn".into(), ..LogConfig::default() };
        assert_eq!(log.filter_directive(&no_env()), "warn");
        assert_eq!(log.filter_directive(&env(&[(ENV_RUST_LOG, "")])), "warn");
        assert_eq!(log.filter_directive(&env(&[(ENV_RUST_LOG, "debug")])), "debug");
    }
}
