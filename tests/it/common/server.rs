//! Starts real Switchboard instances in-process (on 127.0.0.1:0 listeners) and drives them through
//! their gRPC API like a desktop, a supervisor, an admin tool or a channel adapter would.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel as GrpcChannel;

use switchboard::access::config::KeyConfig;
use switchboard::api::pb;
use switchboard::api::pb::agent_event::Kind as Ev;
use switchboard::api::pb::agent_request::Kind as Rq;
use switchboard::channels::memory::MemoryChannel;
use switchboard::channels::{Channels, OutboundChannel};
use switchboard::config::Config;
use switchboard::model::Channel;
use switchboard::model::Role;
use switchboard::server::{Server, ServerError};
use switchboard_auth::Credential;
use switchboard_testkit::PATIENCE;

/// A channel whose every call carries a credential.
pub type Authed = tonic::service::interceptor::InterceptedService<GrpcChannel, Credential>;

/// The keys every test server knows, one per role the tests call with.
pub const ADMIN_KEY: &str = "test-admin-key-0123456789abcdef0123456789";
pub const SUPERVISOR_KEY: &str = "test-supervisor-key-0123456789abcdef01234";
pub const CHANNEL_KEY: &str = "test-channel-key-0123456789abcdef012345678";
/// The telephony system "pbx-1".
pub const TELEPHONY_KEY: &str = "test-telephony-key-0123456789abcdef0123456";

pub fn key(name: &str, role: Role, secret: &str) -> KeyConfig {
    KeyConfig {
        name: name.into(),
        role,
        queues: Vec::new(),
        agent_id: String::new(),
        key: secret.into(),
        key_sha256: String::new(),
    }
}

pub fn bearer(secret: &str) -> Credential {
    Credential::bearer(secret).unwrap()
}

/// A connection to `endpoint` whose calls carry `secret`.
pub async fn authed(endpoint: &str, secret: &str) -> Authed {
    let ch = tonic::transport::Endpoint::from_shared(endpoint.to_string()).unwrap().connect().await.unwrap();
    tonic::service::interceptor::InterceptedService::new(ch, bearer(secret))
}

pub struct TestServer {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub shutdown: CancellationToken,
    pub chat: Arc<MemoryChannel>,
    handle: Option<JoinHandle<Result<(), ServerError>>>,
    /// Each instance runs on its own runtime, so `kill` can drop every task it spawned at once.
    runtime: Option<tokio::runtime::Runtime>,
    /// Holds the built-in CRM's SQLite file unless the test chose a database.
    _dir: tempfile::TempDir,
}

/// A config for tests: fast timer polling, short heartbeat.
pub fn test_config(redis_url: &str) -> Config {
    let mut cfg = Config::default();
    cfg.redis.url = redis_url.to_string();
    cfg.routing.timer_poll_ms = 20;
    cfg.routing.heartbeat_secs = 1;
    cfg.server.shutdown_grace_secs = 5;
    // Chat replies go to the in-memory channel; the web chat tests turn it on.
    cfg.webchat.enabled = false;
    cfg.auth.keys = vec![
        key("test-admin", Role::Admin, ADMIN_KEY),
        key("test-supervisor", Role::Supervisor, SUPERVISOR_KEY),
        key("test-channel", Role::Channel, CHANNEL_KEY),
        key("pbx-1", Role::Telephony, TELEPHONY_KEY),
    ];
    cfg
}

impl TestServer {
    pub async fn start(redis_url: &str) -> TestServer {
        Self::start_with(test_config(redis_url)).await
    }

    pub async fn start_with(cfg: Config) -> TestServer {
        Self::start_with_adapters(cfg, Vec::new()).await
    }

    /// Like [`TestServer::start_with`], with real channel adapters taking the place of the
    /// in-memory one of their channel.
    pub async fn start_with_adapters(cfg: Config, adapters: Vec<Arc<dyn OutboundChannel>>) -> TestServer {
        let ts = Self::launch_with_adapters(cfg, adapters).await;
        // Ready once the HTTP readiness probe says Redis is reachable and the config is loaded.
        let url = format!("http://{}/readyz", ts.http_addr);
        switchboard_testkit::eventually("server ready", Duration::from_secs(15), || {
            let url = url.clone();
            async move { http_get(&url).await.ok().filter(|(code, _)| *code == 200) }
        })
        .await;
        ts
    }

    /// Starts an instance without waiting until it is ready: for a listener the plain-HTTP
    /// readiness probe of [`TestServer::start_with`] cannot reach (TLS), the caller waits its own way.
    pub async fn launch(cfg: Config) -> TestServer {
        Self::launch_with_adapters(cfg, Vec::new()).await
    }

    /// Like [`TestServer::start_with`] on listeners the test bound itself: for a config that
    /// must name the server's own addresses (e.g. its pages' origin).
    pub async fn start_bound(cfg: Config, grpc: tokio::net::TcpListener, http: tokio::net::TcpListener) -> TestServer {
        let ts = Self::launch_on(cfg, Vec::new(), grpc, http).await;
        let url = format!("http://{}/readyz", ts.http_addr);
        switchboard_testkit::eventually("server ready", Duration::from_secs(15), || {
            let url = url.clone();
            async move { http_get(&url).await.ok().filter(|(code, _)| *code == 200) }
        })
        .await;
        ts
    }

    async fn launch_with_adapters(cfg: Config, adapters: Vec<Arc<dyn OutboundChannel>>) -> TestServer {
        let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::launch_on(cfg, adapters, grpc, http).await
    }

    async fn launch_on(
        mut cfg: Config,
        adapters: Vec<Arc<dyn OutboundChannel>>,
        grpc: tokio::net::TcpListener,
        http: tokio::net::TcpListener,
    ) -> TestServer {
        switchboard_testkit::init_tracing();
        let dir = tempfile::tempdir().unwrap();
        if cfg.crm.database == switchboard::config::CrmConfig::default().database {
            cfg.crm.database = format!("sqlite://{}/crm.db?mode=rwc", dir.path().display());
        }
        let grpc_addr = grpc.local_addr().unwrap();
        let http_addr = http.local_addr().unwrap();
        let chat = Arc::new(MemoryChannel::new(Channel::Chat));
        let sms = Arc::new(MemoryChannel::new(Channel::Sms));
        let email = Arc::new(MemoryChannel::new(Channel::Email));
        // SMS and email replies are kept by in-memory adapters too (no test reads them yet).
        let mut channels = Channels::default().with(chat.clone()).with(sms).with(email);
        for a in adapters {
            channels = channels.with(a);
        }
        let shutdown = CancellationToken::new();
        let server = Server::new(cfg).with_channels(channels);
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let grpc = grpc.into_std().unwrap();
        let http = http.into_std().unwrap();
        let sd = shutdown.clone();
        let handle = runtime.spawn(async move {
            let grpc = tokio::net::TcpListener::from_std(grpc).unwrap();
            let http = tokio::net::TcpListener::from_std(http).unwrap();
            server.run(grpc, http, sd).await
        });
        TestServer { grpc_addr, http_addr, shutdown, chat, handle: Some(handle), runtime: Some(runtime), _dir: dir }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    pub async fn channel(&self) -> GrpcChannel {
        tonic::transport::Endpoint::from_shared(self.endpoint()).unwrap().connect().await.unwrap()
    }

    /// A channel whose calls carry `secret`.
    pub async fn with_key(&self, secret: &str) -> Authed {
        tonic::service::interceptor::InterceptedService::new(self.channel().await, bearer(secret))
    }

    pub async fn admin(&self) -> pb::admin_client::AdminClient<Authed> {
        pb::admin_client::AdminClient::new(self.with_key(ADMIN_KEY).await)
    }

    pub async fn supervisor(&self) -> pb::supervisor_client::SupervisorClient<Authed> {
        pb::supervisor_client::SupervisorClient::new(self.with_key(SUPERVISOR_KEY).await)
    }

    pub async fn interactions(&self) -> pb::interactions_client::InteractionsClient<Authed> {
        pb::interactions_client::InteractionsClient::new(self.with_key(CHANNEL_KEY).await)
    }

    pub async fn desktop(&self, agent: &str, token: &str) -> Desktop {
        let (d, _) = Desktop::login(&self.endpoint(), agent, token).await.expect("login");
        d
    }

    /// Graceful stop (as on SIGTERM).
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }

    /// Abrupt stop: every task of the instance is dropped and its connections closed, nothing
    /// is cleaned up in Redis — as if the process had been killed.
    pub fn kill(mut self) {
        self.handle.take();
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }

    pub async fn http(&self, path: &str) -> (u16, String) {
        http_get(&format!("http://{}{}", self.http_addr, path)).await.unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Minimal HTTP/1.1 GET over a TcpStream (no client dependency needed).
pub async fn http_get(url: &str) -> std::io::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").expect("http url");
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
    let mut s = tokio::net::TcpStream::connect(host).await?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf).to_string();
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((code, body))
}

/// An agent desktop holding a `Session` stream.
pub struct Desktop {
    pub agent: String,
    tx: mpsc::Sender<pb::AgentRequest>,
    events: tonic::Streaming<pb::AgentEvent>,
    /// Pushes received while waiting for something else.
    pub pending: VecDeque<pb::AgentEvent>,
    next_id: u64,
    pub closed: bool,
}

impl Desktop {
    pub async fn login(endpoint: &str, agent: &str, token: &str) -> Result<(Desktop, pb::LoggedIn), tonic::Status> {
        Self::login_with(endpoint, Credential::none(), agent, token).await
    }

    /// Logs in with `cred` on the stream's metadata (a key, JWT or Basic) besides the login message.
    pub async fn login_with(
        endpoint: &str,
        cred: Credential,
        agent: &str,
        token: &str,
    ) -> Result<(Desktop, pb::LoggedIn), tonic::Status> {
        let ch = tonic::transport::Endpoint::from_shared(endpoint.to_string()).unwrap().connect().await.unwrap();
        let mut client = pb::agent_desktop_client::AgentDesktopClient::with_interceptor(ch, cred);
        let (tx, rx) = mpsc::channel(64);
        tx.send(pb::AgentRequest {
            request_id: "login".into(),
            kind: Some(Rq::Login(pb::Login { agent_id: agent.into(), token: token.into() })),
        })
        .await
        .unwrap();
        let mut events = client.session(tokio_stream::wrappers::ReceiverStream::new(rx)).await?.into_inner();
        let first = events.next().await.expect("stream ended")?;
        let Some(Ev::LoggedIn(li)) = first.kind else { panic!("expected logged_in, got {first:?}") };
        let ack = events.next().await.expect("stream ended")?;
        assert!(matches!(ack.kind, Some(Ev::Ack(_))), "expected login ack, got {ack:?}");
        let agent = li.agent.as_ref().map_or_else(|| agent.to_string(), |a| a.agent_id.clone());
        Ok((Desktop { agent, tx, events, pending: VecDeque::new(), next_id: 0, closed: false }, li))
    }

    async fn recv(&mut self) -> Option<pb::AgentEvent> {
        match tokio::time::timeout(PATIENCE, self.events.next()).await {
            Ok(Some(Ok(e))) => Some(e),
            Ok(Some(Err(_)) | None) => {
                self.closed = true;
                None
            }
            Err(_) => panic!("{}: no event within {PATIENCE:?}; pending {:?}", self.agent, self.pending),
        }
    }

    /// Sends a request and waits for its ack (Ok) or error (Err(code, message)).
    pub async fn request(&mut self, kind: Rq) -> Result<pb::Ack, (tonic::Code, String)> {
        self.next_id += 1;
        let id = format!("r{}", self.next_id);
        self.tx.send(pb::AgentRequest { request_id: id.clone(), kind: Some(kind) }).await.expect("stream open");
        loop {
            let e = self.recv().await.unwrap_or_else(|| panic!("{}: stream closed awaiting {id}", self.agent));
            match e.kind {
                Some(Ev::Ack(a)) if a.request_id == id => return Ok(a),
                Some(Ev::Error(er)) if er.request_id == id => return Err((tonic::Code::from(er.code), er.message)),
                _ => self.pending.push_back(e),
            }
        }
    }

    /// Waits for a push matching `pred` (looking at already buffered pushes first) and removes it.
    pub async fn wait_for(&mut self, what: &str, pred: impl Fn(&Ev) -> bool) -> Ev {
        if let Some(i) = self.pending.iter().position(|e| e.kind.as_ref().is_some_and(&pred)) {
            return self.pending.remove(i).unwrap().kind.unwrap();
        }
        loop {
            let Some(e) = self.recv().await else { panic!("{}: stream closed waiting for {what}", self.agent) };
            if e.kind.as_ref().is_some_and(&pred) {
                return e.kind.unwrap();
            }
            self.pending.push_back(e);
        }
    }

    pub async fn wait_offer(&mut self) -> pb::Offer {
        match self.wait_for("offer", |e| matches!(e, Ev::Offer(_))).await {
            Ev::Offer(o) => o,
            _ => unreachable!(),
        }
    }

    /// Waits until the stream ends; returns the SessionClosed reason if one came.
    pub async fn wait_closed(&mut self) -> Option<String> {
        let mut reason = None;
        while let Some(e) = self.recv().await {
            if let Some(Ev::SessionClosed(c)) = e.kind {
                reason = Some(c.reason);
            }
        }
        reason
    }

    pub async fn set_presence(&mut self, state: pb::PresenceState, reason: &str) -> pb::Ack {
        self.request(Rq::SetPresence(pb::SetPresence {
            presence: Some(pb::Presence { state: state as i32, reason: reason.into() }),
        }))
        .await
        .expect("set presence")
    }

    pub async fn ready(&mut self) -> pb::Ack {
        self.set_presence(pb::PresenceState::Ready, "").await
    }

    pub async fn accept(&mut self, iid: &str) -> Result<pb::Ack, (tonic::Code, String)> {
        self.request(Rq::Accept(pb::AcceptOffer { interaction_id: iid.into() })).await
    }

    pub async fn reject(&mut self, iid: &str) -> Result<pb::Ack, (tonic::Code, String)> {
        self.request(Rq::Reject(pb::RejectOffer { interaction_id: iid.into(), reason: "busy".into() })).await
    }

    pub async fn reply(&mut self, iid: &str, body: &str) -> Result<pb::Ack, (tonic::Code, String)> {
        self.request(Rq::SendReply(pb::SendReply { interaction_id: iid.into(), body: body.into() })).await
    }

    pub async fn complete(&mut self, iid: &str, disposition: &str) -> Result<pb::Ack, (tonic::Code, String)> {
        self.request(Rq::Complete(pb::CompleteInteraction {
            interaction_id: iid.into(),
            disposition: disposition.into(),
            notes: String::new(),
        }))
        .await
    }
}

/// An admin-API agent with a token equal to its id.
pub fn agent(id: &str, skills: &[(&str, u32)]) -> pb::Agent {
    pb::Agent {
        id: id.into(),
        name: format!("Agent {id}"),
        skills: skills.iter().map(|(s, l)| (s.to_string(), *l)).collect(),
        capacity: None,
        cross_channel_blocking: None,
        token: format!("tok-{id}"),
        devices: Vec::new(),
    }
}

pub fn queue(name: &str, reqs: &[(&str, u32)]) -> pb::Queue {
    pb::Queue {
        name: name.into(),
        requirements: reqs.iter().map(|(s, l)| pb::SkillRequirement { skill: s.to_string(), min_level: *l }).collect(),
        ..Default::default()
    }
}

pub fn new_chat(queue: &str, customer: &str, body: &str) -> pb::CreateInteractionRequest {
    pb::CreateInteractionRequest {
        channel: pb::Channel::Chat as i32,
        customer_address: customer.into(),
        queue: queue.into(),
        body: body.into(),
        ..Default::default()
    }
}
