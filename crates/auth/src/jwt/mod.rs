//! JWTs from the operator's identity provider, so agents and supervisors can use SSO: the
//! signature is checked against a JWKS file (re-read when it changes, so keys can rotate), then
//! issuer, audience and expiry; role, queue scope and agent id come from configurable claims.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde_json::Value;
use switchboard_model::access::{CredentialKind, Principal, Role};

use crate::authenticator::AuthError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtOptions {
    pub issuer: String,
    pub audience: String,
    pub jwks_file: PathBuf,
    /// Claim holding the role name (a string, or an array whose first known role counts).
    pub role_claim: String,
    /// Claim holding a supervisor's queues (an array of names); absent means every queue.
    pub queues_claim: String,
    /// Claim holding an agent's id.
    pub agent_claim: String,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway_secs: u64,
}

pub struct JwtVerifier {
    opts: JwtOptions,
    keys: Mutex<Loaded>,
}

struct Loaded {
    set: JwkSet,
    modified: Option<SystemTime>,
    checked: Instant,
}

/// How often the JWKS file's modification time is looked at.
const RECHECK: Duration = Duration::from_secs(5);

impl JwtVerifier {
    pub fn new(opts: JwtOptions) -> Result<JwtVerifier, String> {
        if opts.issuer.is_empty() || opts.audience.is_empty() {
            return Err("jwt: issuer and audience are required".into());
        }
        let (set, modified) = read_jwks(&opts.jwks_file)?;
        Ok(JwtVerifier { opts, keys: Mutex::new(Loaded { set, modified, checked: Instant::now() }) })
    }

    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Invalid)?;
        let key = {
            let mut loaded = self.keys.lock().expect("jwks");
            self.reload_if_changed(&mut loaded);
            let jwk = match &header.kid {
                Some(kid) => loaded.set.find(kid),
                None if loaded.set.keys.len() == 1 => loaded.set.keys.first(),
                None => None,
            }
            .ok_or(AuthError::Invalid)?;
            // The key decides the algorithm, never the token alone (no alg confusion).
            if let Some(alg) = jwk.common.key_algorithm
                && alg.to_string() != format!("{:?}", header.alg)
            {
                return Err(AuthError::Invalid);
            }
            DecodingKey::from_jwk(jwk).map_err(|_| AuthError::Invalid)?
        };
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

    fn reload_if_changed(&self, loaded: &mut Loaded) {
        if loaded.checked.elapsed() < RECHECK {
            return;
        }
        loaded.checked = Instant::now();
        let modified = std::fs::metadata(&self.opts.jwks_file).and_then(|m| m.modified()).ok();
        if modified == loaded.modified {
            return;
        }
        match read_jwks(&self.opts.jwks_file) {
            Ok((set, modified)) => {
                tracing::info!(message = "Reloaded the JWKS file.", keys = set.keys.len());
                loaded.set = set;
                loaded.modified = modified;
            }
            // Keep verifying with the keys we have; a half-written file is not a reason to lock everyone out.
            Err(error) => {
                tracing::warn!(message = "Could not reload the JWKS file; keeping the previous keys.", %error);
            }
        }
    }
}

fn read_jwks(path: &std::path::Path) -> Result<(JwkSet, Option<SystemTime>), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("jwt.jwks_file {}: {e}", path.display()))?;
    let set: JwkSet =
        serde_json::from_str(&text).map_err(|e| format!("jwt.jwks_file {}: not a JWK set: {e}", path.display()))?;
    if set.keys.is_empty() {
        return Err(format!("jwt.jwks_file {}: holds no keys", path.display()));
    }
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    Ok((set, modified))
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
    use jsonwebtoken::{EncodingKey, Header};

    const SECRET: &[u8] = b"a-test-signing-secret-of-32-bytes!!";

    fn verifier(dir: &std::path::Path) -> JwtVerifier {
        let k = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(SECRET);
        let jwks = serde_json::json!({"keys": [{"kty": "oct", "kid": "k1", "alg": "HS256", "k": k}]});
        let path = dir.join("jwks.json");
        std::fs::write(&path, jwks.to_string()).unwrap();
        JwtVerifier::new(JwtOptions {
            issuer: "https://idp.example".into(),
            audience: "switchboard".into(),
            jwks_file: path,
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
