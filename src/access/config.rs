//! `[auth]`: the keys listed in the config or environment, JWT, and how long checked runtime
//! credentials are reused.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use switchboard_auth::{JwksSource, JwksUrl, JwtOptions, StaticKey};

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
    /// How often an open stream (a watch, a desktop session, a telephony event stream) checks its
    /// credential again: one revoked or expired ends within this plus `cache_secs`.
    pub stream_recheck_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            keys: Vec::new(),
            jwt: None,
            cache_secs: 2,
            reflection: true,
            failures_before_backoff: 10,
            stream_recheck_secs: 5,
        }
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
    /// The identity provider's signing keys (a JWK set) in a file, re-read when it changes ...
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// ... or at a URL (https://, or http:// to a loopback address): fetched at start, every
    /// `jwks_refresh_secs`, and at once (at most every 30 s) for a token whose key id is new.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// PEM CA(s) for the URL's certificate (a private identity provider); default: the web's roots.
    #[serde(default)]
    pub jwks_ca_file: Option<PathBuf>,
    /// Default 300.
    #[serde(default)]
    pub jwks_refresh_secs: Option<u64>,
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
            j.validate_jwks()?;
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
    fn validate_jwks(&self) -> Result<(), KeyError> {
        let url = match (&self.jwks_file, &self.jwks_url) {
            (Some(_), None) => None,
            (None, Some(url)) => Some(url),
            _ => return Err(("auth.jwt".into(), "give exactly one of jwks_file and jwks_url".into())),
        };
        if let Some(url) = url {
            switchboard_auth::jwt::check_url(url).map_err(|e| ("auth.jwt.jwks_url".into(), e.to_string()))?;
        }
        for (set, key) in [
            (self.jwks_ca_file.is_some(), "auth.jwt.jwks_ca_file"),
            (self.jwks_refresh_secs.is_some(), "auth.jwt.jwks_refresh_secs"),
        ] {
            if set && url.is_none() {
                return Err((key.into(), "applies only with jwks_url".into()));
            }
        }
        // Below 10 s the provider is polled for nothing: a new key id is fetched at once anyway.
        if let Some(secs) = self.jwks_refresh_secs
            && !(10..=86_400).contains(&secs)
        {
            return Err(("auth.jwt.jwks_refresh_secs".into(), format!("must be 10 to 86400 seconds, got {secs}")));
        }
        Ok(())
    }

    /// The verifier's options; [`AuthConfig::validate`] has made sure exactly one source is given.
    pub fn options(&self) -> JwtOptions {
        let jwks = match &self.jwks_url {
            Some(url) => JwksSource::Url(JwksUrl {
                ca_file: self.jwks_ca_file.clone(),
                refresh: self.jwks_refresh_secs.map_or(JwksUrl::DEFAULT_REFRESH, Duration::from_secs),
                ..JwksUrl::new(url.as_str())
            }),
            None => JwksSource::File(self.jwks_file.clone().unwrap_or_default()),
        };
        JwtOptions {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            jwks,
            role_claim: self.role_claim.clone(),
            queues_claim: self.queues_claim.clone(),
            agent_claim: self.agent_claim.clone(),
            leeway_secs: self.leeway_secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(extra: &str) -> Result<AuthConfig, KeyError> {
        let text = format!("[jwt]\nissuer = \"https://login.example.com/\"\naudience = \"switchboard\"\n{extra}");
        let cfg: AuthConfig = toml::from_str(&text).unwrap();
        cfg.validate().map(|()| cfg)
    }

    #[test]
    fn jwt_keys_come_from_exactly_one_of_a_file_and_a_url() {
        let cfg = jwt("jwks_file = \"/etc/switchboard/jwks.json\"").unwrap();
        assert_eq!(cfg.jwt.unwrap().options().jwks, JwksSource::File("/etc/switchboard/jwks.json".into()));

        let cfg = jwt("jwks_url = \"https://idp.example.com/.well-known/jwks.json\"\njwks_ca_file = \"/etc/ca.pem\"")
            .unwrap();
        let JwksSource::Url(u) = cfg.jwt.unwrap().options().jwks else { panic!("a URL") };
        assert_eq!(u.url, "https://idp.example.com/.well-known/jwks.json");
        assert_eq!((u.ca_file, u.refresh), (Some("/etc/ca.pem".into()), Duration::from_secs(300)));
        let cfg = jwt("jwks_url = \"http://127.0.0.1:8080/jwks\"\njwks_refresh_secs = 60").unwrap();
        let JwksSource::Url(u) = cfg.jwt.unwrap().options().jwks else { panic!("a URL") };
        assert_eq!(u.refresh, Duration::from_secs(60));

        let both = "jwks_file = \"/j.json\"\njwks_url = \"https://idp.example.com/jwks\"";
        for (extra, key, says) in [
            ("", "auth.jwt", "exactly one of jwks_file and jwks_url"),
            (both, "auth.jwt", "exactly one of jwks_file and jwks_url"),
            ("jwks_url = \"http://idp.example.com/jwks\"", "auth.jwt.jwks_url", "use https://"),
            ("jwks_url = \"idp.example.com/jwks\"", "auth.jwt.jwks_url", "idp.example.com/jwks"),
            ("jwks_file = \"/j.json\"\njwks_ca_file = \"/ca.pem\"", "auth.jwt.jwks_ca_file", "only with jwks_url"),
            ("jwks_file = \"/j.json\"\njwks_refresh_secs = 60", "auth.jwt.jwks_refresh_secs", "only with jwks_url"),
            (
                "jwks_url = \"https://idp.example.com/jwks\"\njwks_refresh_secs = 1",
                "auth.jwt.jwks_refresh_secs",
                "10 to 86400",
            ),
        ] {
            let (k, message) = jwt(extra).unwrap_err();
            assert_eq!(k, key, "{extra}");
            assert!(message.contains(says), "{extra}: {message}");
        }
    }
}
