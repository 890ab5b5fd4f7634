//! Who may call this daemon: the `[auth]` config, the authenticator built from it (config keys,
//! runtime keys and agent tokens kept by the engine in Redis, JWTs) and the key the daemon
//! uses with its built-in CRM.

pub mod config;

use std::sync::Arc;
use std::time::Duration;

use switchboard_auth::{Authenticator, CredentialStore, JwtVerifier, StaticKey};
use switchboard_engine::Engine;

use crate::model::{ApiKeyRecord, CredentialKind, Principal, Role};
pub use config::AuthConfig;

/// Runtime credentials live with the routing state, so every instance sees a key the moment it
/// is created and stops accepting it (within the cache time) once it is revoked.
struct EngineCredentials(Engine);

#[async_trait::async_trait]
impl CredentialStore for EngineCredentials {
    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, String> {
        self.0.api_key(id).await.map_err(|e| e.to_string())
    }

    async fn agent_token_ok(&self, agent_id: &str, token: &str) -> Result<bool, String> {
        self.0.agent_token_ok(agent_id, token).await.map_err(|e| e.to_string())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{key}: {message}")]
pub struct AccessError {
    pub key: String,
    pub message: String,
}

pub fn authenticator(
    cfg: &AuthConfig,
    tls: &crate::tls::TlsConfig,
    engine: &Engine,
) -> Result<Arc<Authenticator>, AccessError> {
    let keys = cfg.static_keys().map_err(|(key, message)| AccessError { key, message })?;
    if !keys.iter().any(|k| k.principal.role == Role::Admin) && cfg.jwt.is_none() {
        tracing::warn!(
            message = "No admin key is configured: only agents and runtime keys can call this daemon. Set SWITCHBOARD_ADMIN_KEY or add one under [[auth.keys]].",
        );
    }
    let mut auth = Authenticator::new(keys)
        .with_store(Arc::new(EngineCredentials(engine.clone())))
        .with_cache_ttl(Duration::from_secs(cfg.cache_secs));
    if let Some(j) = &cfg.jwt {
        let verifier =
            JwtVerifier::new(j.options()).map_err(|message| AccessError { key: "auth.jwt".into(), message })?;
        auth = auth.with_jwt(verifier);
    }
    Ok(Arc::new(tls.map_client_roles(auth)))
}

/// A fresh random key for this process to reach its in-process CRM; no other process knows it.
pub fn internal_crm_key() -> (String, StaticKey) {
    let secret = switchboard_auth::key::generate("internal", Role::Crm, Vec::new(), "", 0, "").secret;
    let mut key = StaticKey::new("switchboard-daemon", Role::Crm, Vec::new(), "", &secret, false)
        .expect("a generated key is long enough");
    key.principal.credential = CredentialKind::Internal;
    (secret, key)
}

/// The principal that config bootstrap and timers act as in the audit trail.
pub fn system_principal() -> Principal {
    Principal {
        name: "switchboard".into(),
        role: Role::Admin,
        queues: Vec::new(),
        agent_id: String::new(),
        credential: CredentialKind::Internal,
    }
}
