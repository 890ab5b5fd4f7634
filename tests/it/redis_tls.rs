//! Redis over TLS (`rediss://`: the operator's CA, a client certificate) and Redis ACL users
//! (`user:password@` in the URL): the engine connects or fails with an error that says why, and
//! the daemon serves with `redis.ca_file` and the client certificate files.

use std::time::Duration;

use crate::common::*;
use switchboard::api::pb;
use switchboard::model::*;
use switchboard::server::{Server, ServerError};
use switchboard_engine::{ConnectFailure, Engine, EngineError, EngineOptions, RedisClientCert, RedisTls};
use switchboard_testkit::redis_server::{RedisSetup, RedisTlsFiles, TlsClients};

/// A connection that cannot succeed must end in an error, not hang: the engine's few retries
/// and its connection timeout bound it far below this.
const GIVES_UP_WITHIN: Duration = Duration::from_secs(90);

fn ca_only(files: &RedisTlsFiles) -> RedisTls {
    RedisTls { ca_pem: Some(files.ca_pem()), client_cert: None }
}

fn with_client_cert(files: &RedisTlsFiles) -> RedisTls {
    RedisTls {
        ca_pem: Some(files.ca_pem()),
        client_cert: Some(RedisClientCert {
            cert_pem: std::fs::read(&files.client_cert).unwrap(),
            key_pem: std::fs::read(&files.client_key).unwrap(),
        }),
    }
}

async fn connect(url: &str, tls: Option<RedisTls>) -> Result<Engine, EngineError> {
    let opts = EngineOptions { redis_tls: tls, ..EngineOptions::default() };
    tokio::time::timeout(GIVES_UP_WITHIN, Engine::connect(url, opts))
        .await
        .unwrap_or_else(|_| panic!("connecting to {url} neither worked nor failed within {GIVES_UP_WITHIN:?}"))
}

/// How a connection that must fail failed, and its message.
async fn refused(url: &str, tls: Option<RedisTls>) -> (ConnectFailure, String) {
    match connect(url, tls).await {
        Ok(_) => panic!("connecting to {url} should have failed"),
        Err(e) => (e.connect_failure(), e.to_string()),
    }
}

/// A few operations through the shared connection (an offer routed by the functions library)
/// and one on a dedicated connection, which must come from the same (TLS) client.
async fn route_one_chat(engine: &Engine) {
    engine.put_queue(&QueueSpec::new("sales"), false).await.unwrap();
    let ann = AgentSpec {
        id: "ann".into(),
        name: "Ann".into(),
        skills: Default::default(),
        capacity: Capacity::default(),
        cross_channel_blocking: None,
        token: "secret".into(),
        devices: Vec::new(),
    };
    engine.put_agent(&ann, false).await.unwrap();
    engine.login("ann", Some("secret"), "i1", "s1").await.unwrap();
    engine.set_presence("ann", &Presence::Ready, "agent").await.unwrap();
    let (ix, created) = engine
        .create_interaction(&NewInteraction {
            channel: Some(Channel::Chat),
            customer_address: "v1".into(),
            queue: "sales".into(),
            body: "hello".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(created);
    assert_eq!((ix.state, ix.agent_id.as_str()), (InteractionState::Offered, "ann"), "{ix:?}");
    engine.ping().await.unwrap();
    let mut dedicated = engine.dedicated_connection().await.unwrap();
    let pong: String = redis::cmd("PING").query_async(&mut dedicated).await.unwrap();
    assert_eq!(pong, "PONG");
}

#[tokio::test]
async fn engine_over_tls_with_the_operators_ca() {
    let redis = RedisServer::start_tls(TlsClients::Anyone);
    assert!(redis.url.starts_with("rediss://"), "{}", redis.url);
    let files = redis.tls_files().unwrap();
    let engine = connect(&redis.url, Some(ca_only(files))).await.unwrap();
    route_one_chat(&engine).await;
    // What the engine wrote is there for any client of the server.
    let queues: Vec<String> = redis::cmd("KEYS").arg("*queue*").query_async(&mut redis.client().await).await.unwrap();
    assert!(!queues.is_empty(), "no queue keys in the TLS server");
}

#[tokio::test]
async fn tls_without_the_ca_fails_with_a_certificate_error() {
    let redis = RedisServer::start_tls(TlsClients::Anyone);
    // No CA: the web's roots, which never signed the test CA.
    let (failed, err) = refused(&redis.url, None).await;
    assert_eq!(failed, ConnectFailure::Tls, "{err}");
    assert!(err.contains("invalid peer certificate: UnknownIssuer"), "{err}");
    // Another CA than the one that signed the server's certificate (of the same name).
    let other = tempfile::tempdir().unwrap();
    let stranger = RedisTlsFiles::generate(other.path());
    let (failed, err) = refused(&redis.url, Some(ca_only(&stranger))).await;
    assert_eq!(failed, ConnectFailure::Tls, "{err}");
    assert!(err.contains("invalid peer certificate"), "{err}");
    // A CA file that is no certificate: a settings error, known before any connection.
    let garbage = RedisTls { ca_pem: Some(b"not a certificate".to_vec()), client_cert: None };
    match connect(&redis.url, Some(garbage)).await {
        Err(e) => assert!(e.is_client_config(), "{e}"),
        Ok(_) => panic!("a CA file without a certificate was accepted"),
    }
    // TLS settings for a plain URL would be ignored: refused as a setting instead.
    let plain = RedisServer::start();
    match connect(&plain.url, Some(ca_only(redis.tls_files().unwrap()))).await {
        Err(e) => assert!(e.is_client_config() && e.to_string().contains("rediss://"), "{e}"),
        Ok(_) => panic!("TLS settings were taken for a redis:// URL"),
    }
}

#[tokio::test]
async fn a_server_that_requires_client_certificates_takes_ours() {
    let redis = RedisServer::start_tls(TlsClients::CertificateRequired);
    let files = redis.tls_files().unwrap();
    let (failed, err) = refused(&redis.url, Some(ca_only(files))).await;
    assert_eq!(failed, ConnectFailure::Tls, "{err}");
    assert!(err.contains("CertificateRequired"), "{err}");
    let engine = connect(&redis.url, Some(with_client_cert(files))).await.unwrap();
    route_one_chat(&engine).await;
}

#[tokio::test]
async fn an_acl_user_in_the_url_gets_in_and_a_wrong_password_does_not() {
    let redis = RedisServer::start_with_user("switchboard", "s3cret-pw");
    assert!(redis.url.contains("switchboard:s3cret-pw@"), "{}", redis.url);
    let engine = connect(&redis.url, None).await.unwrap();
    route_one_chat(&engine).await;
    let who: String = redis::cmd("ACL").arg("WHOAMI").query_async(&mut redis.client().await).await.unwrap();
    assert_eq!(who, "switchboard");

    let wrong = redis.url.replace("s3cret-pw", "guess");
    let (failed, err) = refused(&wrong, None).await;
    assert_eq!(failed, ConnectFailure::Login, "{err}");
    assert!(err.contains("authentication failed"), "{err}");
    assert!(!err.contains("guess"), "the password leaked: {err}");
    let anonymous = format!("redis://127.0.0.1:{}/", redis.port);
    let (failed, err) = refused(&anonymous, None).await;
    assert_eq!(failed, ConnectFailure::Login, "{err}");
    assert!(err.contains("NOAUTH"), "{err}");
}

#[tokio::test]
async fn a_user_limited_to_the_key_prefix_is_enough() {
    // The rule docs/operations.md suggests: every command, only the keys under the prefix.
    let rule = ["--user", "limited", "on", ">limited-pw", "~sb:*", "&*", "+@all"];
    let redis = RedisServer::start_setup(RedisSetup {
        user: Some(("probe".into(), "probe-pw".into())),
        extra_args: rule.iter().map(ToString::to_string).collect(),
        ..RedisSetup::default()
    });
    let url = format!("redis://limited:limited-pw@127.0.0.1:{}/", redis.port);
    let engine = connect(&url, None).await.unwrap();
    route_one_chat(&engine).await;
    let mut con = redis::Client::open(url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let err = redis::cmd("SET").arg("elsewhere").arg("x").query_async::<()>(&mut con).await.unwrap_err();
    assert!(err.to_string().contains("NoPerm"), "{err}");
}

#[tokio::test]
async fn the_daemon_serves_over_tls_with_its_ca_client_certificate_and_acl_user() {
    let redis = RedisServer::start_setup(RedisSetup {
        tls: Some(TlsClients::CertificateRequired),
        user: Some(("switchboard".into(), "daemon-pw".into())),
        ..RedisSetup::default()
    });
    assert!(redis.url.starts_with("rediss://switchboard:daemon-pw@"), "{}", redis.url);
    let files = redis.tls_files().unwrap();
    let mut cfg = test_config(&redis.url);
    cfg.redis.ca_file = Some(files.ca_cert.clone());
    cfg.redis.client_cert_file = Some(files.client_cert.clone());
    cfg.redis.client_key_file = Some(files.client_key.clone());
    cfg.validate().unwrap();
    let server = TestServer::start_with(cfg).await;

    let mut admin = server.admin().await;
    admin.put_queue(pb::PutQueueRequest { queue: Some(queue("sales", &[])), allow_update: false }).await.unwrap();
    admin.put_agent(pb::PutAgentRequest { agent: Some(agent("ann", &[])), allow_update: false }).await.unwrap();
    let mut ann = server.desktop("ann", "tok-ann").await;
    ann.ready().await;
    let created =
        server.interactions().await.create_interaction(new_chat("sales", "v1", "hello over TLS")).await.unwrap();
    let iid = created.into_inner().id;
    let offer = ann.wait_offer().await;
    assert_eq!(offer.interaction.unwrap().id, iid);
    ann.accept(&iid).await.unwrap();
    server.stop().await;
}

/// Starts the daemon on `cfg` and returns how `run` ended (it must end by itself).
async fn run_to_end(cfg: switchboard::config::Config) -> Result<(), ServerError> {
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let run = Server::new(cfg).run(grpc, http, shutdown.clone());
    let ended = tokio::time::timeout(GIVES_UP_WITHIN, run).await;
    shutdown.cancel();
    ended.expect("the daemon should stop at start, not retry")
}

#[tokio::test]
async fn the_daemon_stops_at_start_on_tls_files_it_cannot_use() {
    let redis = RedisServer::start_tls(TlsClients::Anyone);
    let dir = tempfile::tempdir().unwrap();

    let mut cfg = test_config(&redis.url);
    cfg.redis.ca_file = Some(dir.path().join("missing-ca.pem"));
    let err = run_to_end(cfg).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("redis.ca_file") && msg.contains("missing-ca.pem"), "{msg}");

    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    let mut cfg = test_config(&redis.url);
    cfg.redis.ca_file = Some(garbage);
    let err = run_to_end(cfg).await.unwrap_err();
    assert!(matches!(err, ServerError::RedisSettings { .. }), "{err}");
    assert!(err.to_string().contains("no PEM certificate"), "{err}");

    // A client key that is no key.
    let files = redis.tls_files().unwrap();
    let mut cfg = test_config(&redis.url);
    cfg.redis.ca_file = Some(files.ca_cert.clone());
    cfg.redis.client_cert_file = Some(files.client_cert.clone());
    cfg.redis.client_key_file = Some(files.client_cert.clone());
    let err = run_to_end(cfg).await.unwrap_err();
    assert!(matches!(err, ServerError::RedisSettings { .. }), "{err}");
    assert!(err.to_string().contains("private key"), "{err}");
}

#[tokio::test]
async fn the_daemon_keeps_trying_a_redis_whose_certificate_it_does_not_trust() {
    // A certificate may be fixed on the Redis side while the daemon waits: it retries (and logs
    // the failed handshake each time), not ready meanwhile, and still stops when told to.
    init_tracing();
    let redis = RedisServer::start_tls(TlsClients::Anyone);
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let readyz = format!("http://{}/readyz", http.local_addr().unwrap());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let run = tokio::spawn(Server::new(test_config(&redis.url)).run(grpc, http, shutdown.clone()));
    let code = eventually("the daemon's HTTP listener answers", PATIENCE, || async {
        http_get(&readyz).await.ok().map(|(code, _)| code)
    })
    .await;
    assert_ne!(code, 200, "ready without a trusted Redis");
    assert!(!run.is_finished(), "the daemon gave up on a certificate it may yet trust");
    shutdown.cancel();
    tokio::time::timeout(GIVES_UP_WITHIN, run).await.expect("stops when told").unwrap().unwrap();
}
