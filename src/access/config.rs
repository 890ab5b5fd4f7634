//! `[auth]`: the keys listed in the config or environment, JWT, and how long checked runtime
//! credentials are reused.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;
use switchboard_auth::{JwtOptions, StaticKey};

use crate::model::Role;

/// An admin key from the environment, so scripted deployments and test clients can start a
/// daemon with a credential they know (`scripts/run.sh` uses it).
pub const ENV_ADMIN_KEY: &str = "SWITCHBOARD_ADMIN_KEY";
/// The name the key from [`ENV_ADMIN_KEY`] has in logs and the audit trail.
pub const ENV_ADMIN_KEY_NAME: &str = "env-admin";

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Keys known from the config (secrets usually `${VAR}` from the environment).
    pub keys: Vec<KeyConfig>,
    pub jwt: Option<JwtConfig>,
    /// How long a checked runtime key or agent credential is reused before it is looked up
    /// again: a revoked key stops working on every instance within this time.
    pub cache_secs: u64,
    /// Serve gRPC reflection (to any authenticated caller).
    pub reflection: bool,
    /// Failed authentications one address (or logins one agent) may make a minute before each
    /// further attempt is slowed down (2 s, doubling up to 5 min).
    pub failures_before_backoff: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig { keys: Vec::new(), jwt: None, cache_secs: 2, reflection: true, failures_before_backoff: 10 }
    }
}

// Debug by hand: the key itself must never reach a log.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    pub name: String,
    pub role: Role,
    #[serde(default)]
    pub queues: Vec<String>,
    #[serde(default)]
    pub agent_id: String,
    /// The key itself (at least 32 characters) ...
    #[serde(default)]
    pub key: String,
    /// ... or its SHA-256 in hex, so the config file holds no usable secret.
    #[serde(default)]
    pub key_sha256: String,
}

impl fmt::Debug for KeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyConfig")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("queues", &self.queues)
            .field("agent_id", &self.agent_id)
            .field("key", &if self.key.is_empty() { "" } else { "***" })
            .field("key_sha256", &self.key_sha256)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    pub issuer: String,
    pub audience: String,
    /// The identity provider's signing keys (a JWK set); re-read when the file changes.
    pub jwks_file: PathBuf,
    #[serde(default = "default_role_claim")]
    pub role_claim: String,
    #[serde(default = "default_queues_claim")]
    pub queues_claim: String,
    #[serde(default = "default_agent_claim")]
    pub agent_claim: String,
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
}

fn default_role_claim() -> String {
    "switchboard_role".into()
}
fn default_queues_claim() -> String {
    "switchboard_queues".into()
}
fn default_agent_claim() -> String {
    "switchboard_agent".into()
}
fn default_leeway() -> u64 {
    30
}

/// A config error: the dotted key and what is wrong with it.
pub type KeyError = (String, String);

impl AuthConfig {
    /// The keys as the authenticator takes them, each error naming its `auth.keys[i]` entry.
    pub fn static_keys(&self) -> Result<Vec<StaticKey>, KeyError> {
        let mut out: Vec<StaticKey> = Vec::with_capacity(self.keys.len());
        for (i, k) in self.keys.iter().enumerate() {
            let at = format!("auth.keys[{i}]");
            let key = match (k.key.is_empty(), k.key_sha256.is_empty()) {
                (false, true) => StaticKey::new(&k.name, k.role, k.queues.clone(), &k.agent_id, &k.key, false),
                (true, false) => StaticKey::new(&k.name, k.role, k.queues.clone(), &k.agent_id, &k.key_sha256, true),
                _ => Err("give exactly one of key and key_sha256".to_string()),
            }
            .map_err(|m| (at.clone(), m))?;
            if let Some(j) = out.iter().position(|o| o.principal.name == key.principal.name) {
                return Err((format!("{at}.name"), format!("{:?} is already the name of auth.keys[{j}]", k.name)));
            }
            if out.iter().any(|o| o.hash == key.hash) {
                return Err((format!("{at}.key"), "the same key is listed twice".into()));
            }
            out.push(key);
        }
        Ok(out)
    }

    pub fn validate(&self) -> Result<(), KeyError> {
        self.static_keys()?;
        if self.cache_secs > 60 {
            return Err(("auth.cache_secs".into(), format!("must be at most 60 seconds, got {}", self.cache_secs)));
        }
        if let Some(j) = &self.jwt {
            if j.issuer.is_empty() {
                return Err(("auth.jwt.issuer".into(), "is required".into()));
            }
            if j.audience.is_empty() {
                return Err(("auth.jwt.audience".into(), "is required".into()));
            }
            if j.leeway_secs > 300 {
                return Err(("auth.jwt.leeway_secs".into(), "must be at most 300 seconds".into()));
            }
        }
        Ok(())
    }

    /// Adds the admin key from the environment.
    pub fn add_env_admin_key(&mut self, key: String) {
        self.keys.retain(|k| k.name != ENV_ADMIN_KEY_NAME);
        self.keys.push(KeyConfig {
            name: ENV_ADMIN_KEY_NAME.into(),
            role: Role::Admin,
            queues: Vec::new(),
            agent_id: String::new(),
            key,
            key_sha256: String::new(),
        });
    }
}

impl JwtConfig {
    pub fn options(&self) -> JwtOptions {
        JwtOptions {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            jwks_file: self.jwks_file.clone(),
            role_claim: self.role_claim.clone(),
            queues_claim: self.queues_claim.clone(),
            agent_claim: self.agent_claim.clone(),
            leeway_secs: self.leeway_secs,
        }
    }
}
