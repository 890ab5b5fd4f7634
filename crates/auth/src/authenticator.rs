//! Turns the credential on a request into a [`Principal`]: config keys, runtime API keys
//! (looked up in the [`CredentialStore`]), agent id + token (HTTP Basic), and JWTs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use http::HeaderMap;
use switchboard_model::access::{
    ApiKeyRecord, CredentialKind, Principal, Role, constant_time_eq, secret_hash, validate_key_spec,
};

use crate::jwt::JwtVerifier;

/// Shortest secret accepted in the config: anything shorter is a password, not a key.
pub const MIN_STATIC_KEY_LEN: usize = 32;

/// Where runtime credentials live (the routing engine's Redis, for the daemon).
#[async_trait::async_trait]
pub trait CredentialStore: Send + Sync {
    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, String>;
    /// Whether `token` is the agent's current desktop token.
    async fn agent_token_ok(&self, agent_id: &str, token: &str) -> Result<bool, String>;
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("no credential: send `authorization: Bearer <key>`")]
    Missing,
    /// Never says which part was wrong.
    #[error("invalid credential")]
    Invalid,
    #[error("credential check unavailable")]
    Unavailable,
}

/// A key from the config file or environment.
#[derive(Debug, Clone)]
pub struct StaticKey {
    pub principal: Principal,
    /// [`secret_hash`] of the key.
    pub hash: String,
}

impl StaticKey {
    /// From the secret itself (config or environment) or, with `hashed`, from its SHA-256.
    pub fn new(
        name: &str,
        role: Role,
        queues: Vec<String>,
        agent_id: &str,
        secret: &str,
        hashed: bool,
    ) -> Result<StaticKey, String> {
        validate_key_spec(name, role, &queues, agent_id).map_err(|e| e.to_string())?;
        let hash = if hashed {
            let h = secret.to_ascii_lowercase();
            if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err("key_sha256: must be 64 hex digits".into());
            }
            h
        } else {
            if secret.len() < MIN_STATIC_KEY_LEN {
                return Err(format!(
                    "key: must be at least {MIN_STATIC_KEY_LEN} characters (generate one with `switchboard ctl keys generate`)"
                ));
            }
            secret_hash(secret)
        };
        let principal = Principal {
            name: name.to_string(),
            role,
            queues,
            agent_id: agent_id.to_string(),
            credential: CredentialKind::ConfigKey,
        };
        Ok(StaticKey { principal, hash })
    }
}

pub struct Authenticator {
    static_keys: Vec<StaticKey>,
    store: Option<Arc<dyn CredentialStore>>,
    jwt: Option<JwtVerifier>,
    /// Checked runtime credentials by the hash of the header that carried them, so a busy
    /// client does not cost a Redis read per call. Revocation reaches every instance within
    /// `cache_ttl`.
    cache: Mutex<HashMap<String, (Principal, Instant)>>,
    cache_ttl: Duration,
    /// Client certificate subject common names (verified by TLS against the client CA) and who they stand for.
    cert_roles: HashMap<String, Principal>,
}

const CACHE_MAX: usize = 10_000;

impl Authenticator {
    pub fn new(static_keys: Vec<StaticKey>) -> Authenticator {
        Authenticator {
            static_keys,
            store: None,
            jwt: None,
            cache: Mutex::default(),
            cache_ttl: Duration::from_secs(2),
            cert_roles: HashMap::new(),
        }
    }

    /// A client certificate with this subject common name stands for `role` (when the request
    /// carries no other credential).
    pub fn with_client_cert(mut self, common_name: &str, role: Role, queues: Vec<String>) -> Self {
        let p = Principal {
            name: common_name.to_string(),
            role,
            queues,
            agent_id: String::new(),
            credential: CredentialKind::Certificate,
        };
        self.cert_roles.insert(common_name.to_string(), p);
        self
    }

    /// The principal a verified client certificate stands for, if it is mapped.
    pub fn certificate(&self, cert: &rustls::pki_types::CertificateDer<'_>) -> Option<Principal> {
        if self.cert_roles.is_empty() {
            return None;
        }
        self.cert_roles.get(&crate::tls::common_name(cert)?).cloned()
    }

    pub fn with_store(mut self, store: Arc<dyn CredentialStore>) -> Self {
        self.store = Some(store);
        self
    }

    pub fn with_jwt(mut self, jwt: JwtVerifier) -> Self {
        self.jwt = Some(jwt);
        self
    }

    pub fn with_cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// Forgets checked credentials at once (after a revocation on this instance).
    pub fn forget_cached(&self) {
        self.cache.lock().expect("auth cache").clear();
    }

    /// The caller behind `authorization`, or `None` when the request carries no credential.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Option<Principal>, AuthError> {
        let Some(value) = headers.get(http::header::AUTHORIZATION) else { return Ok(None) };
        let value = value.to_str().map_err(|_| AuthError::Invalid)?.trim();
        if value.is_empty() {
            return Ok(None);
        }
        self.authenticate_value(value).await.map(Some)
    }

    pub async fn authenticate_value(&self, value: &str) -> Result<Principal, AuthError> {
        let (scheme, cred) = value.split_once(' ').ok_or(AuthError::Invalid)?;
        let cred = cred.trim();
        if cred.is_empty() || cred.len() > 8192 {
            return Err(AuthError::Invalid);
        }
        if scheme.eq_ignore_ascii_case("bearer") {
            if let Some(p) = self.static_key(cred) {
                return Ok(p);
            }
            if crate::key::runtime_key_id(cred).is_some() || (self.jwt.is_some() && cred.split('.').count() == 3) {
                return self.cached(cred, || self.runtime(cred)).await;
            }
            Err(AuthError::Invalid)
        } else if scheme.eq_ignore_ascii_case("basic") {
            self.cached(value, || self.agent(cred)).await
        } else {
            Err(AuthError::Invalid)
        }
    }

    fn static_key(&self, cred: &str) -> Option<Principal> {
        let hash = secret_hash(cred);
        // Every key is compared, whichever matches, so timing says nothing about which.
        let mut found = None;
        for k in &self.static_keys {
            if constant_time_eq(&k.hash, &hash) && found.is_none() {
                found = Some(k.principal.clone());
            }
        }
        found
    }

    async fn cached<F, Fut>(&self, cred: &str, check: F) -> Result<Principal, AuthError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Principal, AuthError>>,
    {
        let key = secret_hash(cred);
        if let Some((p, at)) = self.cache.lock().expect("auth cache").get(&key)
            && at.elapsed() < self.cache_ttl
        {
            return Ok(p.clone());
        }
        let p = check().await?;
        let mut cache = self.cache.lock().expect("auth cache");
        if cache.len() >= CACHE_MAX {
            let ttl = self.cache_ttl;
            cache.retain(|_, (_, at)| at.elapsed() < ttl);
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(key, (p.clone(), Instant::now()));
        Ok(p)
    }

    async fn runtime(&self, cred: &str) -> Result<Principal, AuthError> {
        if let Some(id) = crate::key::runtime_key_id(cred) {
            let store = self.store.as_ref().ok_or(AuthError::Invalid)?;
            let record = store.api_key(id).await.map_err(|e| {
                tracing::warn!(message = "Could not look up an API key.", error = %e);
                AuthError::Unavailable
            })?;
            let record = record.ok_or(AuthError::Invalid)?;
            if !constant_time_eq(&record.hash, &secret_hash(cred)) {
                return Err(AuthError::Invalid);
            }
            return Ok(record.principal());
        }
        match &self.jwt {
            Some(jwt) => jwt.verify(cred).await,
            None => Err(AuthError::Invalid),
        }
    }

    async fn agent(&self, cred: &str) -> Result<Principal, AuthError> {
        let raw = base64::engine::general_purpose::STANDARD.decode(cred).map_err(|_| AuthError::Invalid)?;
        let raw = String::from_utf8(raw).map_err(|_| AuthError::Invalid)?;
        let (agent, token) = raw.split_once(':').ok_or(AuthError::Invalid)?;
        if switchboard_model::validate_id("agent_id", agent).is_err() || token.is_empty() || token.len() > 256 {
            return Err(AuthError::Invalid);
        }
        let store = self.store.as_ref().ok_or(AuthError::Invalid)?;
        let ok = store.agent_token_ok(agent, token).await.map_err(|e| {
            tracing::warn!(message = "Could not check an agent token.", error = %e);
            AuthError::Unavailable
        })?;
        if !ok {
            return Err(AuthError::Invalid);
        }
        Ok(Principal {
            name: agent.to_string(),
            role: Role::Agent,
            queues: Vec::new(),
            agent_id: agent.to_string(),
            credential: CredentialKind::AgentToken,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Store(Mutex<Vec<ApiKeyRecord>>);

    #[async_trait::async_trait]
    impl CredentialStore for Store {
        async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, String> {
            Ok(self.0.lock().unwrap().iter().find(|r| r.id == id).cloned())
        }
        async fn agent_token_ok(&self, agent_id: &str, token: &str) -> Result<bool, String> {
            Ok(agent_id == "ann" && token == "ann-token")
        }
    }

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::AUTHORIZATION, v.parse().unwrap());
        h
    }

    #[tokio::test]
    async fn each_kind_of_credential_stands_for_its_principal() {
        let admin_secret = "x".repeat(40);
        let k = crate::key::generate("lead", Role::Supervisor, vec!["sales".into()], "", 0, "t");
        let store = Arc::new(Store(Mutex::new(vec![k.record.clone()])));
        let auth =
            Authenticator::new(vec![StaticKey::new("ops", Role::Admin, vec![], "", &admin_secret, false).unwrap()])
                .with_store(store.clone())
                .with_cache_ttl(Duration::ZERO);

        let p = auth.authenticate(&headers(&format!("Bearer {admin_secret}"))).await.unwrap().unwrap();
        assert_eq!((p.role, p.name.as_str()), (Role::Admin, "ops"));
        let p = auth.authenticate(&headers(&format!("bearer {}", k.secret))).await.unwrap().unwrap();
        assert_eq!((p.role, p.queues.clone()), (Role::Supervisor, vec!["sales".to_string()]));
        let basic = base64::engine::general_purpose::STANDARD.encode("ann:ann-token");
        let p = auth.authenticate(&headers(&format!("Basic {basic}"))).await.unwrap().unwrap();
        assert_eq!((p.role, p.agent_id.as_str()), (Role::Agent, "ann"));

        assert_eq!(auth.authenticate(&HeaderMap::new()).await, Ok(None));
        for wrong in [
            format!("Bearer {}", "y".repeat(40)),
            // The right id with the last secret digit changed.
            format!("Bearer {}{}", &k.secret[..k.secret.len() - 1], if k.secret.ends_with('0') { '1' } else { '0' }),
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("ann:nope")),
            "Basic !!!".to_string(),
            format!("Token {admin_secret}"),
            "Bearer".to_string(),
        ] {
            assert_eq!(auth.authenticate(&headers(&wrong)).await, Err(AuthError::Invalid), "{wrong}");
        }

        // Revoked: gone from the store, refused on the next check.
        store.0.lock().unwrap().clear();
        let r = auth.authenticate(&headers(&format!("Bearer {}", k.secret))).await;
        assert_eq!(r, Err(AuthError::Invalid));
    }

    #[test]
    fn config_keys_must_be_long_or_given_as_a_hash() {
        let e = StaticKey::new("ops", Role::Admin, vec![], "", "short", false).unwrap_err();
        assert!(e.contains("at least 32"), "{e}");
        let e = StaticKey::new("ops", Role::Admin, vec![], "", "abc", true).unwrap_err();
        assert!(e.contains("64 hex"), "{e}");
        assert!(StaticKey::new("ops", Role::Admin, vec![], "", &secret_hash("k"), true).is_ok());
    }
}
