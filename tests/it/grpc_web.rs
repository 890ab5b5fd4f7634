//! gRPC-Web on the gRPC listener, spoken by hand over plain HTTP/1.1 as a browser would: framed
//! messages, the trailer frame in the body, base64 for `grpc-web-text`; the same auth layer and
//! policy table as native gRPC; CORS for the configured origins only, preflights answered without
//! a credential and without reaching a service.

use crate::common::*;

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use prost::Message as _;
use reqwest::header::{HeaderMap, HeaderValue};
use switchboard::api::pb;
use switchboard::api::pb::supervisor_event::Kind as Sev;

const DESK: &str = "https://desk.example.com";
const OTHER: &str = "https://evil.example.net";

async fn start() -> (RedisServer, TestServer) {
    let redis = RedisServer::start();
    let mut cfg = test_config(&redis.url);
    // As an operator would write it; the daemon compares the form browsers send.
    cfg.server.grpc_web_origins = vec!["HTTPS://Desk.Example.com:443/".into(), "http://127.0.0.1:8080".into()];
    let sb = TestServer::start_with(cfg).await;
    (redis, sb)
}

fn client() -> reqwest::Client {
    // Built without http2: every request here is HTTP/1.1, as from a browser over plain HTTP.
    switchboard_auth::https_client(None, Duration::from_secs(5)).unwrap()
}

/// One gRPC-Web message frame: flag 0 (not compressed), big-endian length, the message.
fn frame(msg: &impl prost::Message) -> Vec<u8> {
    let body = msg.encode_to_vec();
    let mut out = vec![0u8];
    out.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// What a gRPC-Web answer holds once its body is read.
#[derive(Debug)]
struct WebReply {
    http: u16,
    version: reqwest::Version,
    headers: HeaderMap,
    messages: Vec<Vec<u8>>,
    /// The trailer frame (flag 0x80), if the body has one.
    trailers: Option<BTreeMap<String, String>>,
}

impl WebReply {
    /// `grpc-status` from the trailer frame, or from the headers of a trailers-only answer
    /// (how gRPC answers a call refused before any message: both are valid gRPC-Web).
    fn status(&self) -> Option<u32> {
        let from_trailers = self.trailers.as_ref().and_then(|t| t.get("grpc-status")).map(|s| s.parse().unwrap());
        from_trailers.or_else(|| self.header("grpc-status").map(|s| s.parse().unwrap()))
    }

    fn message(&self) -> String {
        let t = self.trailers.as_ref().and_then(|t| t.get("grpc-message")).cloned();
        t.or_else(|| self.header("grpc-message").map(str::to_string)).unwrap_or_default()
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    fn decode<M: prost::Message + Default>(&self) -> Vec<M> {
        self.messages.iter().map(|m| M::decode(&m[..]).unwrap()).collect()
    }
}

/// Splits a gRPC-Web body into its message frames and its trailer frame; panics on a malformed one.
struct Frames {
    buf: Vec<u8>,
}

impl Frames {
    fn next(&mut self) -> Option<(u8, Vec<u8>)> {
        if self.buf.len() < 5 {
            return None;
        }
        let len = u32::from_be_bytes(self.buf[1..5].try_into().unwrap()) as usize;
        if self.buf.len() < 5 + len {
            return None;
        }
        let flag = self.buf[0];
        let payload = self.buf[5..5 + len].to_vec();
        self.buf.drain(..5 + len);
        Some((flag, payload))
    }
}

fn parse_trailers(block: &[u8]) -> BTreeMap<String, String> {
    String::from_utf8(block.to_vec())
        .unwrap()
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_ascii_lowercase(), v.trim().to_string())
        })
        .collect()
}

fn split_body(body: Vec<u8>) -> (Vec<Vec<u8>>, Option<BTreeMap<String, String>>) {
    let mut frames = Frames { buf: body };
    let (mut messages, mut trailers) = (Vec::new(), None);
    while let Some((flag, payload)) = frames.next() {
        assert!(trailers.is_none(), "a frame after the trailer frame");
        match flag {
            0 => messages.push(payload),
            0x80 => trailers = Some(parse_trailers(&payload)),
            f => panic!("unexpected frame flag {f:#x}"),
        }
    }
    assert!(frames.buf.is_empty(), "{} bytes left over after the last frame", frames.buf.len());
    (messages, trailers)
}

/// A gRPC-Web call as a browser's fetch would make it (`credential`: the `authorization` value).
async fn call(
    sb: &TestServer,
    path: &str,
    msg: &impl prost::Message,
    credential: Option<&str>,
    origin: Option<&str>,
) -> WebReply {
    let mut req = client()
        .post(format!("http://{}{path}", sb.grpc_addr))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("x-user-agent", "grpc-web-javascript/0.1")
        .body(frame(msg));
    if let Some(c) = credential {
        req = req.header("authorization", c);
    }
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    let res = req.send().await.unwrap();
    let (http, version, headers) = (res.status().as_u16(), res.version(), res.headers().clone());
    let (messages, trailers) = split_body(res.bytes().await.unwrap().to_vec());
    WebReply { http, version, headers, messages, trailers }
}

fn bearer_header(key: &str) -> String {
    format!("Bearer {key}")
}

/// The auth failures the daemon has counted (every reason).
async fn auth_failures(sb: &TestServer) -> u64 {
    let (code, text) = sb.http("/metrics").await;
    assert_eq!(code, 200);
    text.lines()
        .filter(|l| l.starts_with("switchboard_auth_failures_total"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64)
        .sum()
}

#[tokio::test]
async fn unary_calls_pass_the_same_auth_layer_and_policy() {
    let (_redis, sb) = start().await;
    sb.admin()
        .await
        .put_queue(pb::PutQueueRequest { queue: Some(queue("sales", &[])), allow_update: true })
        .await
        .unwrap();

    // The admin key: the queue comes back in a data frame, then the trailer frame with status 0.
    let r = call(
        &sb,
        "/switchboard.v1.Admin/ListQueues",
        &pb::ListQueuesRequest::default(),
        Some(&bearer_header(ADMIN_KEY)),
        None,
    )
    .await;
    assert_eq!(r.http, 200, "{r:?}");
    assert_eq!(r.version, reqwest::Version::HTTP_11);
    assert_eq!(r.header("content-type"), Some("application/grpc-web+proto"));
    assert_eq!(r.status(), Some(0), "{r:?}");
    assert!(r.trailers.is_some(), "a completed call ends with the trailer frame: {r:?}");
    let listed = r.decode::<pb::ListQueuesResponse>();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].queues.iter().map(|q| q.name.as_str()).collect::<Vec<_>>(), ["sales"]);

    // No credential: UNAUTHENTICATED, and nothing but the status.
    let r = call(&sb, "/switchboard.v1.Admin/ListQueues", &pb::ListQueuesRequest::default(), None, None).await;
    assert_eq!((r.http, r.status()), (200, Some(16)), "{r:?}");
    assert!(r.messages.is_empty(), "{r:?}");
    // Refused before any message: a trailers-only answer, as over native gRPC — the status in the
    // headers (CORS exposes them to the page), an empty body.
    assert_eq!((r.header("grpc-status"), r.trailers.as_ref()), (Some("16"), None), "{r:?}");
    // ... and a gRPC-Web one: the auth layer answered inside the translation, not around it.
    assert_eq!(r.header("content-type"), Some("application/grpc-web+proto"));
    // A wrong key: the same.
    let wrong = bearer_header("test-admin-key-0123456789abcdef0123456780");
    let r = call(&sb, "/switchboard.v1.Admin/ListQueues", &pb::ListQueuesRequest::default(), Some(&wrong), None).await;
    assert_eq!(r.status(), Some(16), "{r:?}");
    assert!(r.messages.is_empty(), "{r:?}");
    // A role the table does not list for the RPC: PERMISSION_DENIED before any handler.
    let r = call(
        &sb,
        "/switchboard.v1.Admin/ListQueues",
        &pb::ListQueuesRequest::default(),
        Some(&bearer_header(SUPERVISOR_KEY)),
        None,
    )
    .await;
    assert_eq!(r.status(), Some(7), "{r:?}");
    assert!(r.messages.is_empty(), "{r:?}");
    // An agent's own credential (HTTP Basic) on a supervisor RPC: refused the same way.
    sb.admin()
        .await
        .put_agent(pb::PutAgentRequest { agent: Some(agent("ann", &[])), allow_update: true })
        .await
        .unwrap();
    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("ann:tok-ann"));
    let r = call(
        &sb,
        "/switchboard.v1.Supervisor/ListWaiting",
        &pb::ListWaitingRequest { queue: "sales".into(), ..Default::default() },
        Some(&basic),
        None,
    )
    .await;
    assert_eq!(r.status(), Some(7), "{r:?}");

    // The supervisor's own RPC, with an interaction waiting.
    sb.interactions().await.create_interaction(new_chat("sales", "web:1", "hello")).await.unwrap();
    let r = call(
        &sb,
        "/switchboard.v1.Supervisor/ListWaiting",
        &pb::ListWaitingRequest { queue: "sales".into(), ..Default::default() },
        Some(&bearer_header(SUPERVISOR_KEY)),
        None,
    )
    .await;
    assert_eq!(r.status(), Some(0), "{r:?}");
    assert_eq!(r.decode::<pb::ListWaitingResponse>()[0].interactions.len(), 1);

    // A handler's error (not the auth layer's) reaches the page with its code and message.
    let r = call(
        &sb,
        "/switchboard.v1.Admin/GetQueue",
        &pb::GetQueueRequest { name: "nope".into() },
        Some(&bearer_header(ADMIN_KEY)),
        None,
    )
    .await;
    assert_eq!(r.status(), Some(5), "{r:?}");
    assert!(r.message().contains("nope"), "{r:?}");
    // An RPC no service has, with a valid credential.
    let r = call(
        &sb,
        "/switchboard.v1.Admin/NoSuchCall",
        &pb::ListQueuesRequest::default(),
        Some(&bearer_header(ADMIN_KEY)),
        None,
    )
    .await;
    assert_eq!(r.status(), Some(12), "{r:?}");
}

#[tokio::test]
async fn grpc_web_text_is_base64_both_ways() {
    let (_redis, sb) = start().await;
    sb.admin()
        .await
        .put_queue(pb::PutQueueRequest { queue: Some(queue("sales", &[])), allow_update: true })
        .await
        .unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    let res = client()
        .post(format!("http://{}/switchboard.v1.Admin/GetQueue", sb.grpc_addr))
        .header("content-type", "application/grpc-web-text")
        .header("accept", "application/grpc-web-text")
        .header("x-grpc-web", "1")
        .header("authorization", bearer_header(ADMIN_KEY))
        .header("origin", DESK)
        .body(b64.encode(frame(&pb::GetQueueRequest { name: "sales".into() })))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("application/grpc-web-text"), "{res:?}");
    assert_eq!(res.headers()["access-control-allow-origin"], DESK);
    let text = res.text().await.unwrap();
    // The message and the trailer frame may each be encoded on its own, padding in between.
    let mut body = Vec::new();
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let data = rest.find('=').unwrap_or(rest.len());
        let end = data + rest[data..].find(|c| c != '=').unwrap_or(rest.len() - data);
        body.extend(b64.decode(&rest[..end]).unwrap());
        rest = &rest[end..];
    }
    let (messages, trailers) = split_body(body);
    assert_eq!(trailers.unwrap()["grpc-status"], "0");
    assert_eq!(pb::Queue::decode(&messages[0][..]).unwrap().name, "sales");
}

#[tokio::test]
async fn server_streaming_over_http1() {
    let (_redis, sb) = start().await;
    sb.admin()
        .await
        .put_queue(pb::PutQueueRequest { queue: Some(queue("sales", &[])), allow_update: true })
        .await
        .unwrap();
    let mut res = client()
        .post(format!("http://{}/switchboard.v1.Supervisor/Watch", sb.grpc_addr))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("authorization", bearer_header(SUPERVISOR_KEY))
        .header("origin", DESK)
        .body(frame(&pb::WatchRequest { queues: vec!["sales".into()], include_agents: false }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(res.version(), reqwest::Version::HTTP_11);
    assert_eq!(res.headers()["access-control-allow-origin"], DESK);
    let mut frames = Frames { buf: Vec::new() };
    let mut next_figures = async || loop {
        if let Some((flag, payload)) = frames.next() {
            assert_eq!(flag, 0, "the stream ended: {:?}", parse_trailers(&payload));
            match pb::SupervisorEvent::decode(&payload[..]).unwrap().kind {
                Some(Sev::Queue(q)) => return q,
                other => panic!("unexpected {other:?}"),
            }
        }
        let chunk = tokio::time::timeout(PATIENCE, res.chunk()).await.expect("a frame in time").unwrap();
        frames.buf.extend_from_slice(&chunk.expect("the stream is still open"));
    };
    // The figures at once, then live: the stream's frames arrive as they are made, not at its end.
    let first = next_figures().await;
    assert_eq!((first.queue.as_str(), first.waiting), ("sales", 0));
    sb.interactions().await.create_interaction(new_chat("sales", "web:1", "hello")).await.unwrap();
    loop {
        if next_figures().await.waiting == 1 {
            break;
        }
    }
}

#[tokio::test]
async fn cors_for_the_configured_origins_only() {
    let (_redis, sb) = start().await;
    let url = format!("http://{}/switchboard.v1.Supervisor/ListWaiting", sb.grpc_addr);
    let preflight = async |origin: &str, path_url: &str| {
        client()
            .request(reqwest::Method::OPTIONS, path_url)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "authorization,content-type,x-grpc-web,x-user-agent,grpc-timeout")
            .send()
            .await
            .unwrap()
    };
    let failures = auth_failures(&sb).await;

    // A listed origin (the config's `HTTPS://Desk.Example.com:443/` is what the browser sends):
    // answered with no credential, here, not by a service.
    for origin in [DESK, "http://127.0.0.1:8080"] {
        let res = preflight(origin, &url).await;
        assert!(matches!(res.status().as_u16(), 200 | 204), "{res:?}");
        let h = res.headers();
        assert_eq!(h["access-control-allow-origin"], origin);
        assert!(h["access-control-allow-methods"].to_str().unwrap().contains("POST"), "{h:?}");
        let allowed = h["access-control-allow-headers"].to_str().unwrap().to_ascii_lowercase();
        for name in ["authorization", "content-type", "x-grpc-web", "x-user-agent", "grpc-timeout"] {
            assert!(allowed.contains(name), "{name} not in {allowed:?}");
        }
        assert!(h.get("access-control-max-age").is_some(), "{h:?}");
        assert!(h.get("access-control-allow-credentials").is_none(), "{h:?}");
        assert!(h.get("grpc-status").is_none(), "a preflight reached the gRPC side: {h:?}");
    }
    // Even for a path no service has: the preflight never gets that far.
    let res = preflight(DESK, &format!("http://{}/no.such.Service/Call", sb.grpc_addr)).await;
    assert!(matches!(res.status().as_u16(), 200 | 204), "{res:?}");
    assert!(res.headers().get("grpc-status").is_none(), "{res:?}");
    assert_eq!(auth_failures(&sb).await, failures, "a preflight went through the auth layer");

    // Any other origin: refused, and no CORS header says otherwise.
    for origin in [OTHER, "https://desk.example.com.evil.net", "http://desk.example.com", "null"] {
        let res = preflight(origin, &url).await;
        assert_eq!(res.status().as_u16(), 403, "{origin}: {res:?}");
        assert!(res.headers().get("access-control-allow-origin").is_none(), "{origin}: {res:?}");
    }

    // The call itself: from the listed origin it carries the CORS headers the page needs to read
    // the status of a trailers-only answer.
    let msg = pb::ListWaitingRequest { queue: "sales".into(), ..Default::default() };
    let r = call(&sb, "/switchboard.v1.Supervisor/ListWaiting", &msg, None, Some(DESK)).await;
    assert_eq!(r.status(), Some(16), "{r:?}");
    assert_eq!(r.header("access-control-allow-origin"), Some(DESK));
    let exposed = r.header("access-control-expose-headers").unwrap().to_ascii_lowercase();
    for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        assert!(exposed.contains(name), "{name} not in {exposed:?}");
    }
    // From another origin, even with a valid credential: refused before anything, no CORS header.
    let before = auth_failures(&sb).await;
    let r =
        call(&sb, "/switchboard.v1.Supervisor/ListWaiting", &msg, Some(&bearer_header(SUPERVISOR_KEY)), Some(OTHER))
            .await;
    assert_eq!(r.http, 403, "{r:?}");
    assert!(r.messages.is_empty() && r.trailers.is_none(), "{r:?}");
    assert!(r.headers.keys().all(|k| !k.as_str().starts_with("access-control-")), "{r:?}");
    // Two Origin headers, the first listed: refused as well.
    let mut origins = HeaderMap::new();
    origins.append("origin", HeaderValue::from_static(DESK));
    origins.append("origin", HeaderValue::from_static(OTHER));
    let res = client()
        .post(&url)
        .header("content-type", "application/grpc-web+proto")
        .header("authorization", bearer_header(SUPERVISOR_KEY))
        .headers(origins)
        .body(frame(&msg))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    assert_eq!(auth_failures(&sb).await, before);
}

#[tokio::test]
async fn without_configured_origins_no_page_gets_in_but_native_clients_do() {
    let redis = RedisServer::start();
    let sb = TestServer::start(&redis.url).await;
    let url = format!("http://{}/switchboard.v1.Admin/ListQueues", sb.grpc_addr);
    let res = client()
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", DESK)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    assert!(res.headers().get("access-control-allow-origin").is_none());
    let r = call(
        &sb,
        "/switchboard.v1.Admin/ListQueues",
        &pb::ListQueuesRequest::default(),
        Some(&bearer_header(ADMIN_KEY)),
        Some(DESK),
    )
    .await;
    assert_eq!(r.http, 403, "{r:?}");
    // gRPC-Web without an Origin (a proxy, a script) and native gRPC are served as ever.
    let r = call(
        &sb,
        "/switchboard.v1.Admin/ListQueues",
        &pb::ListQueuesRequest::default(),
        Some(&bearer_header(ADMIN_KEY)),
        None,
    )
    .await;
    assert_eq!(r.status(), Some(0), "{r:?}");
    sb.admin().await.list_queues(pb::ListQueuesRequest::default()).await.unwrap();
    // Plain HTTP/1.1 that is not gRPC-Web gets nothing from the gRPC listener.
    let res = client()
        .post(&url)
        .header("content-type", "application/grpc")
        .body(frame(&pb::ListQueuesRequest::default()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    assert!(res.headers().get("grpc-status").is_none());
}

/// A CA and a server certificate for `localhost` signed by it, written to `dir`:
/// (`[tls]` serving the certificate, the CA's file).
fn tls_files(dir: &std::path::Path) -> (switchboard::tls::TlsConfig, std::path::PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().unwrap();
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let issuer = Issuer::new(ca, ca_key);
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf.is_ca = IsCa::ExplicitNoCa;
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &issuer).unwrap();
    let put = |name: &str, pem: String| {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path
    };
    let tls = switchboard::tls::TlsConfig {
        cert_file: Some(put("cert.pem", cert.pem())),
        key_file: Some(put("key.pem", key.serialize_pem())),
        ..Default::default()
    };
    (tls, put("ca.pem", ca_pem))
}

#[tokio::test]
async fn over_tls_a_client_speaking_only_http1_is_served() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let (tls, ca_file) = tls_files(dir.path());
    let mut cfg = test_config(&redis.url);
    cfg.tls = tls;
    cfg.server.grpc_web_origins = vec![DESK.into()];
    let sb = TestServer::launch(cfg).await;
    // This client offers only http/1.1 in ALPN (as a proxy to its upstream may): the gRPC
    // listener, h2 first, accepts it too.
    let client = switchboard_auth::https_client(Some(&ca_file), Duration::from_secs(5)).unwrap();
    let url = format!("https://localhost:{}/switchboard.v1.Admin/ListQueues", sb.grpc_addr.port());
    let res = eventually("a gRPC-Web answer over TLS", PATIENCE, || {
        let req = client
            .post(&url)
            .header("content-type", "application/grpc-web+proto")
            .header("x-grpc-web", "1")
            .header("authorization", bearer_header(ADMIN_KEY))
            .header("origin", DESK)
            .body(frame(&pb::ListQueuesRequest::default()));
        async move { req.send().await.ok().filter(|r| r.headers().get("grpc-status").is_none()) }
    })
    .await;
    assert_eq!(res.version(), reqwest::Version::HTTP_11);
    assert_eq!(res.headers()["access-control-allow-origin"], DESK);
    let (messages, trailers) = split_body(res.bytes().await.unwrap().to_vec());
    assert_eq!(trailers.unwrap()["grpc-status"], "0");
    assert_eq!(messages.len(), 1);
    // Native gRPC over the same TLS listener still negotiates h2.
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(std::fs::read(&ca_file).unwrap()))
        .domain_name("localhost");
    let ch = tonic::transport::Endpoint::from_shared(format!("https://{}", sb.grpc_addr))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut admin = pb::admin_client::AdminClient::with_interceptor(ch, bearer(ADMIN_KEY));
    admin.list_queues(pb::ListQueuesRequest {}).await.unwrap();
}
