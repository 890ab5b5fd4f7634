//! The `authorization` value of every gRPC call (`switchboard_auth::Authenticator`): static keys
//! (Bearer), agents' desktop tokens (Basic), and JWTs checked against a JWK set — any value, JWTs
//! with any claims, and valid JWTs with one byte changed.

use std::sync::Arc;

use base64::Engine as _;
use proptest::prelude::*;
use serde_json::{Value, json};
use switchboard_auth::{
    ApiKeyRecord, Authenticator, CredentialKind, CredentialStore, JwksSource, JwtOptions, JwtVerifier, Role, StaticKey,
};

use super::{apply, check, edits, run, tricky_string};

const KEY: &str = "fuzz-static-admin-key-0123456789abcdef012345";
const SECRET: &[u8] = b"a-test-signing-secret-of-32-bytes!!";
const ISSUER: &str = "https://idp.example";
const AUDIENCE: &str = "switchboard";

struct Agents;

#[async_trait::async_trait]
impl CredentialStore for Agents {
    async fn api_key(&self, _id: &str) -> Result<Option<ApiKeyRecord>, String> {
        Ok(None)
    }
    async fn agent_token_ok(&self, agent_id: &str, token: &str) -> Result<bool, String> {
        Ok(agent_id == "ann" && token == "tok-ann")
    }
}

fn authenticator(dir: &std::path::Path) -> Authenticator {
    let k = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(SECRET);
    let jwks = json!({"keys": [{"kty": "oct", "kid": "k1", "alg": "HS256", "k": k}]});
    let path = dir.join("jwks.json");
    std::fs::write(&path, jwks.to_string()).unwrap();
    let jwt = JwtVerifier::new(JwtOptions {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        jwks: JwksSource::File(path),
        role_claim: "switchboard_role".into(),
        queues_claim: "switchboard_queues".into(),
        agent_claim: "switchboard_agent".into(),
        leeway_secs: 0,
    })
    .unwrap();
    let key = StaticKey::new("fuzz-admin", Role::Admin, Vec::new(), "", KEY, false).unwrap();
    Authenticator::new(vec![key]).with_store(Arc::new(Agents)).with_jwt(jwt)
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn sign(claims: &Value, kid: Option<&str>, alg: jsonwebtoken::Algorithm) -> Option<String> {
    let mut h = jsonwebtoken::Header::new(alg);
    h.kid = kid.map(String::from);
    jsonwebtoken::encode(&h, claims, &jsonwebtoken::EncodingKey::from_secret(SECRET)).ok()
}

fn claim_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        prop::sample::select(vec!["admin", "supervisor", "agent", "telephony", "channel", "Admin", "root", ""])
            .prop_map(|s| json!(s)),
        "[a-z@.]{0,10}".prop_map(|s| json!(s)),
        tricky_string(8).prop_map(|s| json!(s)),
        any::<i64>().prop_map(|n| json!(n)),
        Just(Value::Null),
        any::<bool>().prop_map(|b| json!(b)),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| proptest::collection::vec(inner, 0..3).prop_map(Value::Array))
}

/// Claims near valid ones: each claim right, wrong, of the wrong type, or missing.
fn claims() -> impl Strategy<Value = Value> {
    let exp = prop_oneof![3 => Just(json!(now() + 600)), 1 => Just(json!(now() - 600)), 1 => claim_value(), 1 => Just(Value::Null)];
    let iss = prop_oneof![3 => Just(json!(ISSUER)), 1 => claim_value()];
    let aud = prop_oneof![3 => Just(json!(AUDIENCE)), 1 => Just(json!([AUDIENCE, "x"])), 1 => claim_value()];
    let role = prop_oneof![3 => prop::sample::select(vec!["admin", "supervisor", "agent"]).prop_map(|s| json!(s)), 2 => claim_value()];
    let other = || prop_oneof![2 => Just(Value::Null), 1 => claim_value(), 1 => Just(json!(["sales", "support"])), 1 => Just(json!("ann"))];
    (
        exp,
        iss,
        aud,
        prop_oneof![3 => Just(json!("lead@example")), 1 => claim_value()],
        role,
        other(),
        other(),
        prop_oneof![2 => Just(Value::Null), 1 => claim_value()],
    )
        .prop_map(|(exp, iss, aud, sub, role, queues, agent, nbf)| {
            let mut c = serde_json::Map::new();
            for (k, v) in [
                ("exp", exp),
                ("iss", iss),
                ("aud", aud),
                ("sub", sub),
                ("switchboard_role", role),
                ("switchboard_queues", queues),
                ("switchboard_agent", agent),
                ("nbf", nbf),
            ] {
                if !v.is_null() {
                    c.insert(k.into(), v);
                }
            }
            Value::Object(c)
        })
}

#[derive(Debug, Clone)]
enum Case {
    /// A header value of any shape.
    Value(String),
    /// A JWT signed with the right key over these claims (kid, algorithm as given).
    Jwt(Value, Option<String>, bool),
    /// A valid JWT with edits: never valid again unless the edits changed nothing.
    Damaged(Vec<super::Edit>),
}

#[test]
fn fuzz_auth_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let auth = authenticator(dir.path());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let value = prop_oneof![
        2 => tricky_string(40),
        2 => (prop::sample::select(vec!["Bearer ", "bearer  ", "Basic ", "BASIC ", "Token ", ""]), tricky_string(60)).prop_map(|(s, c)| format!("{s}{c}")),
        2 => (tricky_string(12), tricky_string(12)).prop_map(|(a, t)| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{a}:{t}")))),
        1 => Just(format!("Bearer {KEY}x")),
        1 => Just(format!("Bearer {}", &KEY[1..])),
        1 => "Bearer sbk_[a-z0-9_]{0,40}",
        1 => "Bearer [A-Za-z0-9_-]{0,20}\\.[A-Za-z0-9_-]{0,20}\\.[A-Za-z0-9_-]{0,20}",
    ];
    let strategy = prop_oneof![
        3 => value.prop_map(Case::Value),
        3 => (claims(), prop_oneof![3 => Just(Some("k1".to_string())), 1 => Just(None), 1 => "[a-z0-9]{0,4}".prop_map(Some)], any::<bool>()).prop_map(|(c, k, hs512)| Case::Jwt(c, k, hs512)),
        2 => edits(3).prop_map(Case::Damaged),
    ];
    let good = sign(
        &json!({"exp": now() + 3600, "iss": ISSUER, "aud": AUDIENCE, "sub": "lead@example", "switchboard_role": "admin"}),
        Some("k1"),
        jsonwebtoken::Algorithm::HS256,
    )
    .unwrap();
    run("auth.credentials", strategy, |case| {
        let (header, claims) = match &case {
            Case::Value(v) => (v.clone(), None),
            Case::Jwt(c, kid, hs512) => {
                let alg = if *hs512 { jsonwebtoken::Algorithm::HS512 } else { jsonwebtoken::Algorithm::HS256 };
                let Some(t) = sign(c, kid.as_deref(), alg) else { return Ok(()) };
                (format!("Bearer {t}"), Some((c.clone(), kid.clone(), *hs512)))
            }
            Case::Damaged(e) => {
                let t = String::from_utf8_lossy(&apply(good.clone().into_bytes(), e)).into_owned();
                (format!("Bearer {t}"), None)
            }
        };
        let r = rt.block_on(auth.authenticate_value(&header));
        let Ok(p) = r else { return Ok(()) };
        // Whatever passed is one of the three credentials, exactly.
        let cred = header.split_once(' ').map(|(_, c)| c.trim()).unwrap_or_default();
        match p.credential {
            CredentialKind::ConfigKey => {
                check(cred == KEY && p.role == Role::Admin, || format!("{header:?} passed as the key"))?;
            }
            CredentialKind::AgentToken => {
                let raw = base64::engine::general_purpose::STANDARD.decode(cred).unwrap_or_default();
                check(raw == b"ann:tok-ann" && p.agent_id == "ann", || format!("{header:?} passed as ann"))?;
            }
            CredentialKind::Jwt => {
                if let Case::Damaged(_) = case {
                    check(cred == good, || format!("a changed token passed: {cred:?}"))?;
                }
                if let Some((c, kid, hs512)) = claims {
                    // A token of the key's algorithm and id (or none), for us, not expired, naming a role.
                    check(!hs512 && kid.as_deref().is_none_or(|k| k == "k1"), || "another algorithm or key".into())?;
                    check(c["iss"] == ISSUER, || format!("issuer {:?}", c["iss"]))?;
                    check(
                        c["aud"] == AUDIENCE || c["aud"].as_array().is_some_and(|a| a.contains(&json!(AUDIENCE))),
                        || "audience".into(),
                    )?;
                    check(c["exp"].as_f64().is_some_and(|e| e > (now() - 5) as f64), || format!("exp {:?}", c["exp"]))?;
                    check(c["sub"].is_string(), || "sub".into())?;
                    if p.role == Role::Agent {
                        check(switchboard::model::validate_id("agent_id", &p.agent_id).is_ok(), || format!("{p:?}"))?;
                    }
                }
            }
            other => return Err(TestCaseError::fail(format!("{header:?} passed as {other:?}"))),
        }
        Ok(())
    });
}
