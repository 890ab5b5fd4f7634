//! The trust boundary against a running daemon: every RPC of every service with every role, no
//! credential, a wrong one, an expired JWT and a revoked key; the checks that depend on data
//! (an agent's own interactions, a supervisor's queues); and the attacks found from outside.

use crate::common::*;

use std::collections::BTreeSet;
use std::str::FromStr;
use std::time::SystemTime;

use base64::Engine as _;
use prost::Message as _;
use switchboard::api::pb;
use switchboard::model::Role;
use switchboard_auth::Credential;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;

const JWT_SECRET: &[u8] = b"security-test-signing-secret-32b!!";
const ISSUER: &str = "https://idp.test";
const AUDIENCE: &str = "switchboard-test";

/// A daemon that knows the test keys, trusts a JWKS file, and reuses no checked credential (so a
/// revocation is seen at once).
async fn start() -> (RedisServer, TestServer, tempfile::TempDir) {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    let k = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(JWT_SECRET);
    std::fs::write(
        &jwks,
        serde_json::json!({"keys": [{"kty": "oct", "kid": "t1", "alg": "HS256", "k": k}]}).to_string(),
    )
    .unwrap();
    let mut cfg = test_config(&redis.url);
    cfg.auth.cache_secs = 0;
    // The table test makes hundreds of failed calls from one address on purpose.
    cfg.auth.failures_before_backoff = 100_000;
    cfg.auth.stream_recheck_secs = 1;
    cfg.auth.jwt = Some(switchboard::access::config::JwtConfig {
        issuer: ISSUER.into(),
        audience: AUDIENCE.into(),
        jwks_file: Some(jwks),
        jwks_url: None,
        jwks_ca_file: None,
        jwks_refresh_secs: None,
        role_claim: "switchboard_role".into(),
        queues_claim: "switchboard_queues".into(),
        agent_claim: "switchboard_agent".into(),
        leeway_secs: 0,
    });
    let sb = TestServer::start_with(cfg).await;
    (redis, sb, dir)
}

/// Agent ann, with desktop token `tok-ann`.
async fn put_ann(admin: &mut pb::admin_client::AdminClient<Authed>) {
    let spec = pb::Agent { token: "tok-ann".into(), ..agent("ann", &[]) };
    admin.put_agent(pb::PutAgentRequest { agent: Some(spec), allow_update: true }).await.unwrap();
}

fn jwt(sub: &str, role: &str, exp_offset_secs: i64) -> String {
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
    let claims = serde_json::json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": sub, "exp": now + exp_offset_secs, "switchboard_role": role,
    });
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    h.kid = Some("t1".into());
    jsonwebtoken::encode(&h, &claims, &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET)).unwrap()
}

/// Every RPC of the daemon's services (the routing API and the CTI hook), from their descriptor sets: the
/// table must cover them all.
fn all_rpcs() -> Vec<(String, bool, bool)> {
    let mut out = Vec::new();
    let sets = [switchboard::api::FILE_DESCRIPTOR_SET, switchboard::api::cti::pb::FILE_DESCRIPTOR_SET];
    let files = sets.into_iter().flat_map(|s| prost_types::FileDescriptorSet::decode(s).unwrap().file);
    for file in files {
        let package = file.package().to_string();
        for service in file.service {
            let name = service.name().to_string();
            for m in service.method {
                out.push((format!("/{package}.{name}/{}", m.name()), m.client_streaming(), m.server_streaming()));
            }
        }
    }
    out
}

/// One call of `path` with an empty request; only the status matters.
async fn call(ch: InterceptedService<tonic::transport::Channel, Credential>, rpc: &(String, bool, bool)) -> Code {
    let (path, client_streaming, server_streaming) = rpc;
    let mut g = tonic::client::Grpc::new(ch);
    g.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_str(path).unwrap();
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let r = match (client_streaming, server_streaming) {
        (false, false) => g.unary(tonic::Request::new(()), path, codec).await.map(|_| ()),
        (false, true) => g.server_streaming(tonic::Request::new(()), path, codec).await.map(|_| ()),
        // An empty request stream: an authorized desktop gets as far as "stream ended before login".
        (true, _) => g.streaming(tonic::Request::new(tokio_stream::empty::<()>()), path, codec).await.map(|_| ()),
    };
    match r {
        Ok(()) => Code::Ok,
        Err(s) => s.code(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_allows_exactly_the_roles_in_its_table_and_no_one_else() {
    let (_redis, sb, _dir) = start().await;
    let mut admin = sb.admin().await;
    admin.put_queue(pb::PutQueueRequest { queue: Some(queue("sales", &[])), allow_update: true }).await.unwrap();
    put_ann(&mut admin).await;
    let mut keys: Vec<(Role, String)> = vec![
        (Role::Admin, ADMIN_KEY.into()),
        (Role::Supervisor, SUPERVISOR_KEY.into()),
        (Role::Channel, CHANNEL_KEY.into()),
    ];
    for (role, agent_id) in [(Role::Telephony, ""), (Role::Crm, ""), (Role::Agent, "ann")] {
        let r = pb::CreateApiKeyRequest {
            name: format!("t-{role}"),
            role: role.to_string(),
            agent_id: agent_id.into(),
            ..Default::default()
        };
        keys.push((role, admin.create_api_key(r).await.unwrap().into_inner().secret));
    }
    let revoked = admin
        .create_api_key(pb::CreateApiKeyRequest { name: "gone".into(), role: "admin".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    admin.revoke_api_key(pb::RevokeApiKeyRequest { id: revoked.key.unwrap().id }).await.unwrap();

    let policy = switchboard::api::policy::policy(true);
    let rpcs = all_rpcs();
    let paths: BTreeSet<&str> = rpcs.iter().map(|r| r.0.as_str()).collect();
    let listed: BTreeSet<&str> = policy.paths().map(|(p, _)| p).collect();
    assert_eq!(paths, listed, "the table lists exactly the daemon's RPCs");

    let refused: Vec<(&str, Credential)> = vec![
        ("no credential", Credential::none()),
        ("a wrong key", bearer("not-a-key-anyone-made-0123456789abcdef")),
        ("a wrong runtime key", bearer("sbk_000000000000_000000000000000000000000000000000000000000000000")),
        ("a revoked key", bearer(&revoked.secret)),
        ("an expired JWT", bearer(&jwt("lead@test", "admin", -60))),
        ("an agent's wrong token", Credential::agent("ann", "nope").unwrap()),
    ];
    let jwt_supervisor = jwt("lead@test", "supervisor", 300);
    let mut checked = 0;
    for rpc in &rpcs {
        let path = rpc.0.as_str();
        for (what, cred) in &refused {
            let code = call(InterceptedService::new(sb.channel().await, cred.clone()), rpc).await;
            // The desktop stream may carry its credential in the login message instead.
            let want = if path.ends_with("AgentDesktop/Session") && *what == "no credential" {
                Code::InvalidArgument
            } else {
                Code::Unauthenticated
            };
            assert_eq!(code, want, "{path} with {what}");
        }
        let mut with_roles: Vec<(Role, Credential)> = keys.iter().map(|(r, k)| (*r, bearer(k))).collect();
        with_roles.push((Role::Supervisor, bearer(&jwt_supervisor)));
        with_roles.push((Role::Agent, Credential::agent("ann", "tok-ann").unwrap()));
        for (role, cred) in with_roles {
            let code = call(InterceptedService::new(sb.channel().await, cred), rpc).await;
            if policy.allows(path, role) {
                assert!(
                    !matches!(code, Code::Unauthenticated | Code::PermissionDenied),
                    "{path} must be allowed for {role}, got {code:?}"
                );
            } else {
                assert_eq!(code, Code::PermissionDenied, "{path} must be refused to {role}");
            }
            checked += 1;
        }
    }
    assert!(checked >= rpcs.len() * 8);

    // Health stays anonymous for probes.
    let mut health = tonic_health::pb::health_client::HealthClient::new(sb.channel().await);
    health.check(tonic_health::pb::HealthCheckRequest::default()).await.expect("anonymous health check");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_client_can_no_longer_take_over_an_agent_or_read_conversations() {
    let (redis, sb, _dir) = start().await;
    let mut admin = sb.admin().await;
    admin.put_queue(pb::PutQueueRequest { queue: Some(queue("support", &[])), allow_update: true }).await.unwrap();
    put_ann(&mut admin).await;
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    let ix = sb.interactions().await.create_interaction(new_chat("support", "c1", "my card number")).await.unwrap();
    let ix = ix.into_inner();
    ann.wait_offer().await;

    let anon = || async { InterceptedService::new(sb.channel().await, Credential::none()) };
    // PutAgent resetting Ann's token.
    let mut a = pb::admin_client::AdminClient::new(anon().await);
    let r = a
        .put_agent(pb::PutAgentRequest {
            agent: Some(pb::Agent { token: "attacker".into(), ..agent("ann", &[]) }),
            allow_update: true,
        })
        .await;
    assert_eq!(r.unwrap_err().code(), Code::Unauthenticated);
    assert!(Desktop::login(&sb.endpoint(), "ann", "attacker").await.is_err(), "the token was not reset");
    // Reading the conversation, ending sessions and interactions.
    let mut i = pb::interactions_client::InteractionsClient::new(anon().await);
    let r =
        i.get_interaction(pb::GetInteractionRequest { interaction_id: ix.id.clone(), include_messages: true }).await;
    assert_eq!(r.unwrap_err().code(), Code::Unauthenticated);
    let r =
        i.withdraw_interaction(pb::WithdrawInteractionRequest { interaction_id: ix.id.clone(), ..Default::default() });
    assert_eq!(r.await.unwrap_err().code(), Code::Unauthenticated);
    let mut d = pb::agent_desktop_client::AgentDesktopClient::new(anon().await);
    let r = d.get_screen_pop(pb::GetScreenPopRequest { interaction_id: ix.id.clone() }).await;
    assert_eq!(r.unwrap_err().code(), Code::Unauthenticated);
    let mut s = pb::supervisor_client::SupervisorClient::new(anon().await);
    let r = s.logout_agent(pb::LogoutAgentRequest { agent_id: "ann".into() }).await;
    assert_eq!(r.unwrap_err().code(), Code::Unauthenticated);
    // Ann's session and offer are untouched.
    ann.accept(&ix.id).await.expect("Ann still holds her offer");

    // No agent token in Redis: only its salted hash.
    let mut con = redis::Client::open(redis.url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut con).await.unwrap();
    for k in keys {
        let dump: Vec<u8> = redis::cmd("DUMP").arg(&k).query_async(&mut con).await.unwrap_or_default();
        assert!(!String::from_utf8_lossy(&dump).contains("tok-ann"), "the agent token is stored in clear in {k}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_see_only_their_own_work_and_supervisors_only_their_queues() {
    let (_redis, sb, _dir) = start().await;
    let mut admin = sb.admin().await;
    for q in ["sales", "support"] {
        let skill = format!("{q}_skill");
        admin
            .put_queue(pb::PutQueueRequest { queue: Some(queue(q, &[(skill.as_str(), 1)])), allow_update: true })
            .await
            .unwrap();
    }
    for (a, skill) in [("ann", "sales_skill"), ("bob", "support_skill")] {
        let spec = pb::Agent { token: format!("tok-{a}"), ..agent(a, &[(skill, 5)]) };
        admin.put_agent(pb::PutAgentRequest { agent: Some(spec), allow_update: true }).await.unwrap();
    }
    let lead = admin
        .create_api_key(pb::CreateApiKeyRequest {
            name: "sales-lead".into(),
            role: "supervisor".into(),
            queues: vec!["sales".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .secret;
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    let sales = sb.interactions().await.create_interaction(new_chat("sales", "c1", "hi")).await.unwrap().into_inner();
    let support =
        sb.interactions().await.create_interaction(new_chat("support", "c2", "hi")).await.unwrap().into_inner();
    ann.wait_offer().await;

    // Bob's credentials cannot read Ann's offer.
    let bob = InterceptedService::new(sb.channel().await, Credential::agent("bob", "tok-bob").unwrap());
    let r = pb::agent_desktop_client::AgentDesktopClient::new(bob)
        .get_screen_pop(pb::GetScreenPopRequest { interaction_id: sales.id.clone() })
        .await;
    assert_eq!(r.unwrap_err().code(), Code::PermissionDenied);
    let ann_cred = InterceptedService::new(sb.channel().await, Credential::agent("ann", "tok-ann").unwrap());
    pb::agent_desktop_client::AgentDesktopClient::new(ann_cred)
        .get_screen_pop(pb::GetScreenPopRequest { interaction_id: sales.id.clone() })
        .await
        .expect("Ann reads her own offer's screen-pop");

    let mut sup = pb::supervisor_client::SupervisorClient::new(sb.with_key(&lead).await);
    let waiting = sup.list_waiting(pb::ListWaitingRequest::default()).await.unwrap().into_inner().interactions;
    assert!(waiting.iter().all(|i| i.queue == "sales"), "only sales is shown: {waiting:?}");
    assert!(waiting.iter().all(|i| i.id != support.id));
    let r = sup.list_waiting(pb::ListWaitingRequest { queue: "support".into(), limit: 0 }).await;
    assert_eq!(r.unwrap_err().code(), Code::PermissionDenied);
    let r = sup.get_queue_figures(pb::GetQueueFiguresRequest { queue: "support".into() }).await;
    assert_eq!(r.unwrap_err().code(), Code::PermissionDenied);
    sup.get_queue_figures(pb::GetQueueFiguresRequest { queue: "sales".into() }).await.expect("own queue");
    let r = sup
        .move_interaction(pb::MoveInteractionRequest {
            interaction_id: support.id.clone(),
            queue: "sales".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(r.unwrap_err().code(), Code::PermissionDenied, "moving another queue's interaction");
    let r = sup
        .withdraw_interaction(pb::SupervisorWithdrawRequest {
            interaction_id: support.id.clone(),
            ..Default::default()
        })
        .await;
    assert_eq!(r.unwrap_err().code(), Code::PermissionDenied);
    let states = sup.list_agent_states(pb::ListAgentStatesRequest {}).await.unwrap().into_inner().agents;
    assert_eq!(states.iter().map(|a| a.agent_id.as_str()).collect::<Vec<_>>(), vec!["ann"]);
    let r = sup.logout_agent(pb::LogoutAgentRequest { agent_id: "bob".into() }).await;
    assert_eq!(r.unwrap_err().code(), Code::PermissionDenied, "Bob serves no sales queue");
    // Nothing changed by the refusals.
    let support_now = sb
        .interactions()
        .await
        .get_interaction(pb::GetInteractionRequest { interaction_id: support.id.clone(), include_messages: false })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((support_now.queue.as_str(), support_now.state()), ("support", pb::InteractionState::Queued));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_wrong_logins_are_slowed_down_and_counted() {
    let redis = RedisServer::start();
    let sb = TestServer::start(&redis.url).await;
    let mut admin = sb.admin().await;
    put_ann(&mut admin).await;
    let mut codes = Vec::new();
    for _ in 0..12 {
        let e = Desktop::login(&sb.endpoint(), "ann", "guess").await.err().expect("a wrong token is refused");
        codes.push(e.code());
    }
    assert!(codes[..10].iter().all(|c| *c == Code::Unauthenticated), "{codes:?}");
    assert_eq!(codes.last(), Some(&Code::ResourceExhausted), "{codes:?}");
    // Even the right token waits out the backoff, then works.
    let e = Desktop::login(&sb.endpoint(), "ann", "tok-ann").await.err().expect("still backing off");
    assert_eq!(e.code(), Code::ResourceExhausted);
    let (_, metrics) = sb.http("/metrics").await;
    assert!(metrics.contains("switchboard_login_failures_total"), "failures are a metric");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_signs_in_with_a_jwt_or_a_key_instead_of_its_token() {
    let (_redis, sb, _dir) = start().await;
    let mut admin = sb.admin().await;
    put_ann(&mut admin).await;
    // The JWT's subject is the agent (no agent claim given).
    let token = jwt("ann", "agent", 300);
    let (_, logged_in) = Desktop::login_with(&sb.endpoint(), bearer(&token), "", "").await.expect("SSO login");
    assert_eq!(logged_in.agent.unwrap().agent_id, "ann");
    // A credential for Ann does not log in Bob.
    let e = Desktop::login_with(&sb.endpoint(), bearer(&token), "bob", "").await.err().unwrap();
    assert_eq!(e.code(), Code::PermissionDenied);
    // A supervisor's JWT is no desktop login.
    let e =
        Desktop::login_with(&sb.endpoint(), bearer(&jwt("lead", "supervisor", 300)), "ann", "").await.err().unwrap();
    assert_eq!(e.code(), Code::PermissionDenied);
}

/// The wire shape of `GetInteractionRequest` with its string field as raw bytes, to send what no
/// well-behaved client would.
#[derive(Clone, PartialEq, prost::Message)]
struct RawGetInteraction {
    #[prost(bytes = "vec", tag = "1")]
    interaction_id: Vec<u8>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_is_not_valid_protobuf_is_invalid_argument_with_a_plain_text() {
    let (_redis, sb, _dir) = start().await;
    let mut g = tonic::client::Grpc::new(sb.with_key(ADMIN_KEY).await);
    g.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static("/switchboard.v1.Interactions/GetInteraction");
    let codec = tonic_prost::ProstCodec::<RawGetInteraction, ()>::default();
    let req = tonic::Request::new(RawGetInteraction { interaction_id: vec![b'a', 0xff, 0xfe] });
    let s = g.unary(req, path, codec).await.unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
    assert!(!s.message().contains("DecodeError"), "no decoder internals: {:?}", s.message());
}

/// Reads a stream until it ends; returns how it ended (None: it just closed).
async fn end_of<T: std::fmt::Debug>(mut s: tonic::Streaming<T>) -> Option<Code> {
    loop {
        match tokio::time::timeout(PATIENCE, s.message()).await.expect("the stream ends in time") {
            Ok(Some(_)) => {}
            Ok(None) => return None,
            Err(status) => return Some(status.code()),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_end_when_their_key_is_revoked_or_their_jwt_expires() {
    let (_redis, sb, _dir) = start().await;
    let mut admin = sb.admin().await;
    admin.put_queue(pb::PutQueueRequest { queue: Some(queue("sales", &[])), allow_update: true }).await.unwrap();
    let key = |name: &str, role: &str| {
        let r = pb::CreateApiKeyRequest { name: name.into(), role: role.into(), ..Default::default() };
        let mut admin = admin.clone();
        async move { admin.create_api_key(r).await.unwrap().into_inner() }
    };
    let lead = key("lead", "supervisor").await;
    let pbx = key("pbx-9", "telephony").await;
    let watch = pb::supervisor_client::SupervisorClient::new(sb.with_key(&lead.secret).await)
        .watch(pb::WatchRequest { queues: vec![], include_agents: false })
        .await
        .unwrap()
        .into_inner();
    let routes = switchboard::api::cti::pb::cti_client::CtiClient::new(sb.with_key(&pbx.secret).await)
        .watch_routes(switchboard::api::cti::pb::WatchRoutesRequest {})
        .await
        .unwrap()
        .into_inner();
    let short = jwt("lead@test", "supervisor", 2);
    let by_jwt = pb::supervisor_client::SupervisorClient::new(sb.with_key(&short).await)
        .watch(pb::WatchRequest { queues: vec![], include_agents: false })
        .await
        .unwrap()
        .into_inner();
    // A static key's stream stays: config keys change only with a restart.
    let mut by_config = pb::supervisor_client::SupervisorClient::new(sb.with_key(SUPERVISOR_KEY).await)
        .watch(pb::WatchRequest { queues: vec![], include_agents: false })
        .await
        .unwrap()
        .into_inner();

    for k in [&lead, &pbx] {
        let id = k.key.clone().unwrap().id;
        admin.revoke_api_key(pb::RevokeApiKeyRequest { id }).await.unwrap();
    }
    assert_eq!(end_of(watch).await, Some(Code::Unauthenticated), "the revoked supervisor's watch");
    assert_eq!(end_of(routes).await, Some(Code::Unauthenticated), "the revoked telephony key's route watch");
    assert_eq!(end_of(by_jwt).await, Some(Code::Unauthenticated), "the expired JWT's watch");
    // Still open: a queue change reaches it.
    admin.put_queue(pb::PutQueueRequest { queue: Some(queue("support", &[])), allow_update: true }).await.unwrap();
    let next = tokio::time::timeout(PATIENCE, by_config.message()).await.expect("in time");
    assert!(matches!(next, Ok(Some(_))), "the config key's watch is still open: {next:?}");
}
