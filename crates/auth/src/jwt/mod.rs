//! JWTs from the operator's identity provider, so agents and supervisors can use SSO: the
//! signature is checked against the provider's keys (a JWKS file re-read when it changes, or a
//! JWKS URL fetched at start and refreshed, see [`remote`]), then issuer, audience and expiry;
//! role, queue scope and agent id come from configurable claims.

mod file;
mod https;
mod keys;
mod remote;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Header, Validation};
use serde_json::Value;
use switchboard_model::access::{CredentialKind, Principal, Role};

use crate::authenticator::AuthError;
pub use https::{HttpClientError, check_url, error_chain, https_client, https_client_builder};
pub use keys::JwksError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtOptions {
    pub issuer: String,
    pub audience: String,
    /// Where the identity provider's signing keys come from.
    pub jwks: JwksSource,
    /// Claim holding the role name (a string, or an array whose first known role counts).
    pub role_claim: String,
    /// Claim holding a supervisor's queues (an array of names); absent means every queue.
    pub queues_claim: String,
    /// Claim holding an agent's id.
    pub agent_claim: String,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// A JWK set on disk, re-read when its modification time changes.
    File(PathBuf),
    /// A JWK set published by the identity provider over HTTPS.
    Url(JwksUrl),
}

/// How a JWKS URL is fetched. [`JwksUrl::new`] gives the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksUrl {
    /// `https://…`, or `http://` to a loopback address only.
    pub url: String,
    /// PEM CA(s) trusted for the URL's certificate instead of the web's roots (a private IdP).
    pub ca_file: Option<PathBuf>,
    /// How often the keys are fetched again while nothing asks for it.
    pub refresh: Duration,
    /// A token whose `kid` is unknown fetches the keys at once (a rotation is seen without
    /// waiting for `refresh`), but at most once in this time: tokens with made-up key ids must
    /// not turn into a flood of requests to the identity provider.
    pub unknown_kid_cooldown: Duration,
    /// The whole request, connecting to reading the body.
    pub timeout: Duration,
    /// A larger response is refused (a JWK set is a few kilobytes).
    pub max_bytes: usize,
}

impl JwksUrl {
    pub const DEFAULT_REFRESH: Duration = Duration::from_secs(300);
    pub const DEFAULT_UNKNOWN_KID_COOLDOWN: Duration = Duration::from_secs(30);
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
    pub const DEFAULT_MAX_BYTES: usize = 1 << 20;

    pub fn new(url: impl Into<String>) -> JwksUrl {
        JwksUrl {
            url: url.into(),
            ca_file: None,
            refresh: Self::DEFAULT_REFRESH,
            unknown_kid_cooldown: Self::DEFAULT_UNKNOWN_KID_COOLDOWN,
            timeout: Self::DEFAULT_TIMEOUT,
            max_bytes: Self::DEFAULT_MAX_BYTES,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("issuer and audience are required")]
    IssuerAndAudience,
    #[error("jwks_file: {0}")]
    File(JwksError),
    #[error("jwks_url: {0}")]
    Url(HttpClientError),
    #[error("jwks_ca_file: {0}")]
    CaFile(HttpClientError),
    #[error("jwks_url: keys are refreshed in the background, which needs a Tokio runtime")]
    NoRuntime,
}

pub struct JwtVerifier {
    opts: JwtOptions,
    keys: Keys,
}

enum Keys {
    File(file::FileKeys),
    Url(remote::RemoteKeys),
}

impl JwtVerifier {
    /// Like [`JwtVerifier::start`], with the error as text (what the daemon's config errors carry).
    pub fn new(opts: JwtOptions) -> Result<JwtVerifier, String> {
        Self::start(opts).map_err(|e| e.to_string())
    }

    /// Reads the JWKS file, or starts fetching the JWKS URL in the background. An identity
    /// provider that cannot be reached does not stop the start: JWTs are refused until its keys
    /// arrive, and everything else works meanwhile. A malformed URL or an unusable CA file does.
    pub fn start(opts: JwtOptions) -> Result<JwtVerifier, JwtError> {
        if opts.issuer.is_empty() || opts.audience.is_empty() {
            return Err(JwtError::IssuerAndAudience);
        }
        let keys = match &opts.jwks {
            JwksSource::File(path) => Keys::File(file::FileKeys::open(path.clone()).map_err(JwtError::File)?),
            JwksSource::Url(u) => Keys::Url(remote::RemoteKeys::start(u)?),
        };
        Ok(JwtVerifier { opts, keys })
    }

    /// Fetches (or re-reads) the keys now and says how many are usable. A failure keeps the
    /// keys already held. With a URL, a fetch already under way finishes first: never two at once.
    pub async fn refresh_keys(&self) -> Result<usize, JwksError> {
        match &self.keys {
            Keys::File(f) => f.reload(),
            Keys::Url(r) => r.refresh_now().await,
        }
    }

    /// The ids of the keys held now (for health output and tests; key ids are not secret).
    pub fn key_ids(&self) -> Vec<String> {
        let set = match &self.keys {
            Keys::File(f) => f.current(),
            Keys::Url(r) => r.current(),
        };
        set.keys.iter().filter_map(|k| k.common.key_id.clone()).collect()
    }

    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Invalid)?;
        let key = match &self.keys {
            Keys::File(f) => pick(&f.current(), &header)?,
            Keys::Url(r) => {
                let seen = r.fetches();
                match pick(&r.current(), &header)? {
                    Some(key) => Some(key),
                    // Perhaps the provider rotated its keys since we last fetched them.
                    None if r.refresh_for_unknown_kid(seen).await => pick(&r.current(), &header)?,
                    None => None,
                }
            }
        };
        let key = key.ok_or_else(|| {
            metrics::counter!("switchboard_auth_jwt_rejected_total", "reason" => "unknown_key").increment(1);
            AuthError::Invalid
        })?;
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[&self.opts.issuer]);
        v.set_audience(&[&self.opts.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.leeway = self.opts.leeway_secs;
        v.validate_nbf = true;
        let data = jsonwebtoken::decode::<Value>(token, &key, &v).map_err(|e| {
            metrics::counter!("switchboard_auth_jwt_rejected_total", "reason" => jwt_reason(&e)).increment(1);
            AuthError::Invalid
        })?;
        self.principal(&data.claims)
    }

    fn principal(&self, claims: &Value) -> Result<Principal, AuthError> {
        let sub = claims.get("sub").and_then(Value::as_str).ok_or(AuthError::Invalid)?;
        let role = match claims.get(&self.opts.role_claim) {
            Some(Value::String(s)) => s.parse::<Role>().ok(),
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).find_map(|s| s.parse::<Role>().ok()),
            _ => None,
        }
        .ok_or(AuthError::Invalid)?;
        let queues: Vec<String> = match claims.get(&self.opts.queues_claim) {
            Some(Value::Array(a)) if role == Role::Supervisor => {
                a.iter().filter_map(Value::as_str).map(str::to_string).collect()
            }
            _ => Vec::new(),
        };
        let agent_id = if role == Role::Agent {
            let id = claims.get(&self.opts.agent_claim).and_then(Value::as_str).unwrap_or(sub);
            switchboard_model::validate_id("agent_id", id).map_err(|_| AuthError::Invalid)?;
            id.to_string()
        } else {
            String::new()
        };
        if queues.iter().any(|q| switchboard_model::validate_id("queue", q).is_err()) {
            return Err(AuthError::Invalid);
        }
        Ok(Principal { name: sub.to_string(), role, queues, agent_id, credential: CredentialKind::Jwt })
    }
}

/// The key a token names: `Ok(None)` when the set has no such key, an error when the key exists
/// but does not fit the token.
fn pick(set: &Arc<JwkSet>, header: &Header) -> Result<Option<DecodingKey>, AuthError> {
    let jwk = match &header.kid {
        Some(kid) => set.find(kid),
        None if set.keys.len() == 1 => set.keys.first(),
        None => None,
    };
    let Some(jwk) = jwk else { return Ok(None) };
    // The key decides the algorithm, never the token alone (no alg confusion).
    if let Some(alg) = jwk.common.key_algorithm
        && alg.to_string() != format!("{:?}", header.alg)
    {
        return Err(AuthError::Invalid);
    }
    DecodingKey::from_jwk(jwk).map(Some).map_err(|_| AuthError::Invalid)
}

fn jwt_reason(e: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::ExpiredSignature => "expired",
        K::ImmatureSignature => "not_yet_valid",
        K::InvalidIssuer => "issuer",
        K::InvalidAudience => "audience",
        K::InvalidSignature => "signature",
        K::MissingRequiredClaim(_) => "claims",
        _ => "malformed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use jsonwebtoken::EncodingKey;
    use std::time::SystemTime;

    const SECRET: &[u8] = b"a-test-signing-secret-of-32-bytes!!";

    fn verifier(dir: &std::path::Path) -> JwtVerifier {
        let k = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(SECRET);
        let jwks = serde_json::json!({"keys": [{"kty": "oct", "kid": "k1", "alg": "HS256", "k": k}]});
        let path = dir.join("jwks.json");
        std::fs::write(&path, jwks.to_string()).unwrap();
        JwtVerifier::new(JwtOptions {
            issuer: "https://idp.example".into(),
            audience: "switchboard".into(),
            jwks: JwksSource::File(path),
            role_claim: "switchboard_role".into(),
            queues_claim: "switchboard_queues".into(),
            agent_claim: "switchboard_agent".into(),
            leeway_secs: 0,
        })
        .unwrap()
    }

    fn token(claims: Value) -> String {
        let mut h = Header::new(jsonwebtoken::Algorithm::HS256);
        h.kid = Some("k1".into());
        jsonwebtoken::encode(&h, &claims, &EncodingKey::from_secret(SECRET)).unwrap()
    }

    fn now() -> u64 {
        SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()
    }

    #[tokio::test]
    async fn a_valid_token_gives_its_role_scope_and_agent() {
        let dir = std::env::temp_dir().join(format!("sb-jwt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let v = verifier(&dir);
        let base = serde_json::json!({"iss": "https://idp.example", "aud": "switchboard", "exp": now() + 60});
        let mut c = base.clone();
        c["sub"] = "lead@example".into();
        c["switchboard_role"] = "supervisor".into();
        c["switchboard_queues"] = serde_json::json!(["sales"]);
        let p = v.verify(&token(c)).await.unwrap();
        assert_eq!((p.role, p.queues, p.credential), (Role::Supervisor, vec!["sales".into()], CredentialKind::Jwt));

        let mut c = base.clone();
        c["sub"] = "ann@example".into();
        c["switchboard_role"] = serde_json::json!(["employee", "agent"]);
        c["switchboard_agent"] = "ann".into();
        assert_eq!(v.verify(&token(c)).await.unwrap().agent_id, "ann");

        let mut expired = base.clone();
        expired["sub"] = "x".into();
        expired["switchboard_role"] = "admin".into();
        expired["exp"] = (now() - 120).into();
        assert_eq!(v.verify(&token(expired.clone())).await, Err(AuthError::Invalid));
        let mut wrong_aud = expired.clone();
        wrong_aud["exp"] = (now() + 60).into();
        wrong_aud["aud"] = "another-app".into();
        assert_eq!(v.verify(&token(wrong_aud)).await, Err(AuthError::Invalid));
        let mut no_role = base.clone();
        no_role["sub"] = "x".into();
        assert_eq!(v.verify(&token(no_role)).await, Err(AuthError::Invalid));
        // Signed with another secret.
        let mut ok = base.clone();
        ok["sub"] = "x".into();
        ok["switchboard_role"] = "admin".into();
        let mut h = Header::new(jsonwebtoken::Algorithm::HS256);
        h.kid = Some("k1".into());
        let forged =
            jsonwebtoken::encode(&h, &ok, &EncodingKey::from_secret(b"another-secret-another-secret-xx")).unwrap();
        assert_eq!(v.verify(&forged).await, Err(AuthError::Invalid));
        std::fs::remove_dir_all(&dir).ok();
    }
}
