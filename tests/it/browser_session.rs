//! The browser's desktop session: `Open` logs in and streams the events, `Act` sends each request
//! with the session's id. Natively (tonic) and as a page would, over gRPC-Web.

use crate::common::*;

use std::collections::VecDeque;

use prost::Message as _;
use switchboard::api::pb;
use switchboard::api::pb::agent_event::Kind as Ev;
use switchboard::api::pb::agent_request::Kind as Rq;
use switchboard_auth::Credential;
use tokio_stream::StreamExt;
use tonic::Code;

type DesktopClient = pb::agent_desktop_client::AgentDesktopClient<Authed>;

async fn client(sb: &TestServer, cred: Credential) -> DesktopClient {
    pb::agent_desktop_client::AgentDesktopClient::new(tonic::service::interceptor::InterceptedService::new(
        sb.channel().await,
        cred,
    ))
}

/// A browser's session: the `Open` stream, and the client its `Act`s go through.
struct Browser {
    agent: String,
    session_id: String,
    client: DesktopClient,
    events: tonic::Streaming<pb::AgentEvent>,
    /// Events received while waiting for another.
    pending: VecDeque<pb::AgentEvent>,
    next_id: u64,
}

impl Browser {
    async fn open(sb: &TestServer, agent: &str, token: &str) -> Result<(Browser, pb::LoggedIn), tonic::Status> {
        Self::open_with(sb, Credential::none(), agent, token).await
    }

    /// Opens with `cred` on the call's metadata besides the login message.
    async fn open_with(
        sb: &TestServer,
        cred: Credential,
        agent: &str,
        token: &str,
    ) -> Result<(Browser, pb::LoggedIn), tonic::Status> {
        let mut client = client(sb, cred).await;
        let login = pb::Login { agent_id: agent.into(), token: token.into() };
        let mut events = client.open(login).await?.into_inner();
        let first = events.next().await.expect("stream ended")?;
        let Some(Ev::LoggedIn(li)) = first.kind else { panic!("expected logged_in, got {first:?}") };
        let agent = li.agent.as_ref().map_or_else(|| agent.to_string(), |a| a.agent_id.clone());
        let b =
            Browser { agent, session_id: li.session_id.clone(), client, events, pending: VecDeque::new(), next_id: 0 };
        Ok((b, li))
    }

    fn request(&mut self, kind: Rq) -> pb::ActRequest {
        self.next_id += 1;
        pb::ActRequest {
            agent_id: self.agent.clone(),
            session_id: self.session_id.clone(),
            request: Some(pb::AgentRequest { request_id: format!("r{}", self.next_id), kind: Some(kind) }),
        }
    }

    /// One request of this session, through its own client.
    async fn act(&mut self, kind: Rq) -> Result<pb::Ack, tonic::Status> {
        let req = self.request(kind);
        let id = req.request.as_ref().unwrap().request_id.clone();
        let ack = self.client.act(req).await?.into_inner();
        assert_eq!(ack.request_id, id, "the request id comes back");
        Ok(ack)
    }

    async fn recv(&mut self) -> Option<pb::AgentEvent> {
        match tokio::time::timeout(PATIENCE, self.events.next()).await {
            Ok(Some(Ok(e))) => Some(e),
            Ok(Some(Err(_)) | None) => None,
            Err(_) => panic!("{}: no event within {PATIENCE:?}; pending {:?}", self.agent, self.pending),
        }
    }

    async fn wait_for(&mut self, what: &str, pred: impl Fn(&Ev) -> bool) -> Ev {
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

    async fn wait_offer(&mut self) -> pb::Offer {
        let Ev::Offer(o) = self.wait_for("offer", |e| matches!(e, Ev::Offer(_))).await else { unreachable!() };
        o
    }

    /// Waits until the stream ends; returns the SessionClosed reason if one came.
    async fn wait_closed(&mut self) -> Option<String> {
        let mut reason = None;
        while let Some(e) = self.recv().await {
            if let Some(Ev::SessionClosed(c)) = e.kind {
                reason = Some(c.reason);
            }
        }
        reason
    }
}

fn ready() -> Rq {
    Rq::SetPresence(pb::SetPresence {
        presence: Some(pb::Presence { state: pb::PresenceState::Ready as i32, reason: String::new() }),
    })
}

fn accept(iid: &str) -> Rq {
    Rq::Accept(pb::AcceptOffer { interaction_id: iid.into() })
}

/// A "sales" queue anyone serves, and agents with tokens `tok-<id>`.
async fn sales_with(sb: &TestServer, agents: &[&str]) {
    let mut admin = sb.admin().await;
    admin.put_queue(pb::PutQueueRequest { queue: Some(queue("sales", &[])), allow_update: false }).await.unwrap();
    for id in agents {
        admin.put_agent(pb::PutAgentRequest { agent: Some(agent(id, &[])), allow_update: false }).await.unwrap();
    }
}

async fn agent_state(sb: &TestServer, id: &str) -> pb::AgentState {
    let all = sb.supervisor().await.list_agent_states(pb::ListAgentStatesRequest {}).await.unwrap().into_inner();
    all.agents.into_iter().find(|a| a.agent_id == id).expect("the agent")
}

fn presence(st: &pb::AgentState) -> pb::PresenceState {
    st.presence.as_ref().unwrap().state()
}

fn state_of(ack: &pb::Ack) -> pb::InteractionState {
    ack.interaction.as_ref().unwrap().state()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_session_works_a_chat_from_offer_to_completion() {
    let redis = RedisServer::start();
    let sb = TestServer::start(&redis.url).await;
    sales_with(&sb, &["ann"]).await;
    let (mut ann, li) = Browser::open(&sb, "ann", "tok-ann").await.unwrap();
    assert!(!li.session_id.is_empty());
    let st = li.agent.as_ref().unwrap();
    assert_eq!((st.agent_id.as_str(), st.connected), ("ann", true));
    assert!(li.offers.is_empty() && li.interactions.is_empty(), "{li:?}");

    let ack = ann.act(ready()).await.unwrap();
    assert_eq!(presence(ack.agent.as_ref().unwrap()), pb::PresenceState::Ready);
    // Pushes the request caused reach the stream through the inbox.
    ann.wait_for(
        "ready",
        |e| matches!(e, Ev::PresenceChanged(p) if p.presence.as_ref().unwrap().state() == pb::PresenceState::Ready),
    )
    .await;

    let mut ixs = sb.interactions().await;
    let created = ixs.create_interaction(new_chat("sales", "visitor-1", "Hello?")).await.unwrap().into_inner();
    let offer = ann.wait_offer().await;
    assert_eq!(offer.interaction.unwrap().id, created.id);
    assert!(offer.screen_pop.is_some());

    let ack = ann.act(accept(&created.id)).await.unwrap();
    assert_eq!(state_of(&ack), pb::InteractionState::Active);
    let Ev::Assigned(a) = ann.wait_for("assigned", |e| matches!(e, Ev::Assigned(_))).await else { unreachable!() };
    assert_eq!(a.interaction.unwrap().id, created.id);

    ixs.append_message(pb::AppendMessageRequest {
        interaction_id: created.id.clone(),
        body: "Are you there?".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    ann.wait_for("customer message", |e| matches!(e, Ev::CustomerMessage(_))).await;

    let mut delivered = sb.chat.subscribe();
    let reply = Rq::SendReply(pb::SendReply { interaction_id: created.id.clone(), body: "Yes!".into() });
    let ack = ann.act(reply).await.unwrap();
    let msg = ack.message.unwrap();
    assert_eq!((msg.seq, msg.body.as_str()), (3, "Yes!"));
    assert_eq!(delivered.recv().await.unwrap().body, "Yes!");

    let complete = Rq::Complete(pb::CompleteInteraction {
        interaction_id: created.id.clone(),
        disposition: "resolved".into(),
        notes: String::new(),
    });
    let ack = ann.act(complete).await.unwrap();
    assert_eq!(state_of(&ack), pb::InteractionState::Completed);
    sb.stop().await;
}

/// `Act` may reach another instance than the one holding the stream: what it causes still reaches
/// the stream, through that instance's inbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_sent_to_another_instance_reach_the_stream() {
    let redis = RedisServer::start();
    let na = TestServer::start(&redis.url).await;
    let nb = TestServer::start(&redis.url).await;
    sales_with(&na, &["ann"]).await;
    let (mut ann, _) = Browser::open(&na, "ann", "tok-ann").await.unwrap();
    let mut elsewhere = client(&nb, Credential::none()).await;

    let req = ann.request(ready());
    elsewhere.act(req).await.unwrap();
    ann.wait_for("ready", |e| matches!(e, Ev::PresenceChanged(_))).await;
    let created = nb.interactions().await.create_interaction(new_chat("sales", "c1", "hi")).await.unwrap().into_inner();
    assert_eq!(ann.wait_offer().await.interaction.unwrap().id, created.id);
    let req = ann.request(accept(&created.id));
    let ack = elsewhere.act(req).await.unwrap().into_inner();
    assert_eq!(state_of(&ack), pb::InteractionState::Active);
    let Ev::Assigned(a) = ann.wait_for("assigned", |e| matches!(e, Ev::Assigned(_))).await else { unreachable!() };
    assert_eq!(a.interaction.unwrap().id, created.id);
    na.stop().await;
    nb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_opens_no_session() {
    let redis = RedisServer::start();
    let sb = TestServer::start(&redis.url).await;
    sales_with(&sb, &["ann"]).await;
    let e = Browser::open(&sb, "ann", "tok-bob").await.err().expect("refused");
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    let e = Browser::open(&sb, "nobody", "tok-nobody").await.err().expect("refused");
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    // Nothing at all to sign in with: as any RPC called without a credential.
    let e = Browser::open(&sb, "", "").await.err().expect("refused");
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    assert!(!agent_state(&sb, "ann").await.connected);
    sb.stop().await;
}

/// The session's `LoggedIn` names the session for `Session` too, and the ids differ per login.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_login_names_its_session() {
    let redis = RedisServer::start();
    let sb = TestServer::start(&redis.url).await;
    sales_with(&sb, &["ann"]).await;
    let (_desktop, li) = Desktop::login(&sb.endpoint(), "ann", "tok-ann").await.unwrap();
    let (_browser, li2) = Browser::open(&sb, "ann", "tok-ann").await.unwrap();
    assert!(!li.session_id.is_empty() && li.session_id.len() <= 64, "{li:?}");
    assert_ne!(li.session_id, li2.session_id);
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_session_id_is_refused_and_changes_nothing() {
    let redis = RedisServer::start();
    let sb = TestServer::start(&redis.url).await;
    sales_with(&sb, &["ann", "bob"]).await;
    let (mut ann, _) = Browser::open(&sb, "ann", "tok-ann").await.unwrap();
    let right = ann.session_id.clone();

    ann.session_id = "5f0b6a4e-3c1d-4b8e-9a7f-2d6c8e1f0a3b".into();
    let e = ann.act(ready()).await.expect_err("refused");
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    assert!(e.message().contains("sign in again"), "{e:?}");
    // Another agent's id with this session, and an agent with no session: the same answer.
    ann.session_id = right.clone();
    ann.agent = "bob".into();
    assert_eq!(ann.act(ready()).await.expect_err("refused").code(), Code::Unauthenticated);
    ann.agent = "nobody".into();
    assert_eq!(ann.act(ready()).await.expect_err("refused").code(), Code::Unauthenticated);
    ann.agent = "ann".into();
    for id in ["ann", "bob"] {
        assert_ne!(presence(&agent_state(&sb, id).await), pb::PresenceState::Ready, "{id}");
    }
    // The right one still works.
    ann.act(ready()).await.unwrap();
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn act_refuses_what_the_stream_refuses_and_malformed_requests() {
    let redis = RedisServer::start();
    let sb = TestServer::start(&redis.url).await;
    sales_with(&sb, &["ann"]).await;
    let (mut ann, _) = Browser::open(&sb, "ann", "tok-ann").await.unwrap();
    let login = Rq::Login(pb::Login { agent_id: "ann".into(), token: "tok-ann".into() });
    let e = ann.act(login).await.expect_err("refused");
    assert_eq!((e.code(), e.message()), (Code::FailedPrecondition, "login: already logged in"));

    let mut base = ann.request(ready());
    base.request = None;
    let e = ann.client.act(base.clone()).await.expect_err("refused");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    assert!(e.message().starts_with("request"), "{e:?}");
    let no_kind = pb::ActRequest { request: Some(pb::AgentRequest::default()), ..base.clone() };
    let e = ann.client.act(no_kind).await.expect_err("refused");
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    for (field, req) in [
        ("agent_id", pb::ActRequest { agent_id: "not an id".into(), ..base.clone() }),
        ("session_id", pb::ActRequest { session_id: "x".repeat(65), ..base.clone() }),
    ] {
        let e = ann.client.act(req).await.expect_err("refused");
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        assert!(e.message().starts_with(field), "{e:?}");
    }
    // No session id and no credential: nothing to authenticate with.
    let e = ann.client.act(pb::ActRequest { session_id: String::new(), ..base }).await.expect_err("refused");
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    // A request the handler refuses comes back as the stream's RequestError would carry it.
    let e = ann.act(accept("")).await.expect_err("refused");
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "interaction_id: is required"));
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_sign_in_replaces_the_session_and_its_id() {
    let redis = RedisServer::start();
    let sb = TestServer::start(&redis.url).await;
    sales_with(&sb, &["ann"]).await;
    let (mut first, _) = Browser::open(&sb, "ann", "tok-ann").await.unwrap();
    let (mut second, _) = Browser::open(&sb, "ann", "tok-ann").await.unwrap();
    assert_eq!(first.wait_closed().await.as_deref(), Some("replaced"));
    let e = first.act(ready()).await.expect_err("the old id is refused");
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    assert!(e.message().contains("replaced"), "{e:?}");
    second.act(ready()).await.unwrap();

    // A native desktop's login replaces it the same way.
    let _desktop = sb.desktop("ann", "tok-ann").await;
    assert_eq!(second.wait_closed().await.as_deref(), Some("replaced"));
    assert_eq!(second.act(ready()).await.expect_err("refused").code(), Code::Unauthenticated);
    sb.stop().await;
}

/// The page closing (the stream dropped) ends the session, with no request to notice it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_stream_ends_the_session() {
    let redis = RedisServer::start();
    let sb = TestServer::start(&redis.url).await;
    sales_with(&sb, &["ann"]).await;
    let (mut ann, _) = Browser::open(&sb, "ann", "tok-ann").await.unwrap();
    ann.act(ready()).await.unwrap();
    let (client, request) = (ann.client.clone(), ann.request(ready()));
    drop(ann);
    eventually("the session ended", PATIENCE, || async { (!agent_state(&sb, "ann").await.connected).then_some(()) })
        .await;
    let e = client.clone().act(request).await.expect_err("refused");
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_in_the_metadata_must_be_the_agents_own() {
    let redis = RedisServer::start();
    let sb = TestServer::start(&redis.url).await;
    sales_with(&sb, &["ann", "bob"]).await;
    // Ann's credential in the metadata signs her in without a token in the login.
    let ann_cred = Credential::agent("ann", "tok-ann").unwrap();
    let (mut ann, li) = Browser::open_with(&sb, ann_cred.clone(), "", "").await.unwrap();
    assert_eq!(li.agent.unwrap().agent_id, "ann");
    ann.act(ready()).await.unwrap();

    let bob_cred = Credential::agent("bob", "tok-bob").unwrap();
    let e = Browser::open_with(&sb, bob_cred.clone(), "ann", "").await.err().expect("refused");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    // Bob's credential with Ann's session: refused, though the session id is right.
    let mut as_bob = client(&sb, bob_cred).await;
    let e = as_bob.act(ann.request(ready())).await.expect_err("refused");
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    // Her own credential still needs her session's id.
    let mut as_ann = client(&sb, ann_cred).await;
    as_ann.act(ann.request(ready())).await.unwrap();
    let mut wrong = ann.request(ready());
    wrong.session_id = "5f0b6a4e-3c1d-4b8e-9a7f-2d6c8e1f0a3b".into();
    assert_eq!(as_ann.act(wrong).await.expect_err("refused").code(), Code::Unauthenticated);
    sb.stop().await;
}

/// Accepting an offer that was taken back fails as it does on the stream: same code, same message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_a_revoked_offer_fails_as_on_the_stream() {
    let redis = RedisServer::start();
    let sb = TestServer::start(&redis.url).await;
    sales_with(&sb, &["ann"]).await;
    let (mut ann, _) = Browser::open(&sb, "ann", "tok-ann").await.unwrap();
    ann.act(ready()).await.unwrap();
    let mut ixs = sb.interactions().await;
    let created = ixs.create_interaction(new_chat("sales", "c1", "hi")).await.unwrap().into_inner();
    assert_eq!(ann.wait_offer().await.interaction.unwrap().id, created.id);
    ixs.withdraw_interaction(pb::WithdrawInteractionRequest {
        interaction_id: created.id.clone(),
        reason: "gave up".into(),
    })
    .await
    .unwrap();
    ann.wait_for("revoked", |e| matches!(e, Ev::OfferRevoked(r) if r.interaction_id == created.id)).await;
    let by_act = ann.act(accept(&created.id)).await.expect_err("refused");

    let mut desktop = sb.desktop("ann", "tok-ann").await;
    let (code, message) = desktop.accept(&created.id).await.expect_err("refused");
    assert_eq!((by_act.code(), by_act.message()), (code, message.as_str()));
    assert_ne!(code, Code::Unauthenticated);
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_session_ids_count_as_failed_logins() {
    let redis = RedisServer::start();
    let sb = TestServer::start(&redis.url).await;
    sales_with(&sb, &["ann"]).await;
    let (mut ann, _) = Browser::open(&sb, "ann", "tok-ann").await.unwrap();
    let right = ann.session_id.clone();
    ann.session_id = "guess".into();
    let mut codes = Vec::new();
    for _ in 0..12 {
        codes.push(ann.act(ready()).await.expect_err("a wrong id is refused").code());
    }
    assert!(codes[..10].iter().all(|c| *c == Code::Unauthenticated), "{codes:?}");
    assert_eq!(codes.last(), Some(&Code::ResourceExhausted), "{codes:?}");
    // The agent's logins back off as after wrong tokens...
    let e = Browser::open(&sb, "ann", "tok-ann").await.err().expect("backing off");
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    // ... but the session it holds keeps working: guesses cannot lock it out.
    ann.session_id = right;
    ann.act(ready()).await.unwrap();
    let (_, metrics) = sb.http("/metrics").await;
    assert!(metrics.lines().any(|l| l.starts_with("switchboard_login_failures_total{reason=\"session\"}")));
    sb.stop().await;
}

// ---- gRPC-Web, as a page sends it ----

const DESK: &str = "https://desk.example.com";

/// One gRPC-Web message frame: flag 0, big-endian length, the message.
fn web_frame(msg: &impl prost::Message) -> Vec<u8> {
    let body = msg.encode_to_vec();
    let mut out = vec![0u8];
    out.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// The next whole frame at the front of `buf` (flag, payload), taken off it.
fn take_frame(buf: &mut Vec<u8>) -> Option<(u8, Vec<u8>)> {
    let len = u32::from_be_bytes(buf.get(1..5)?.try_into().unwrap()) as usize;
    let payload = buf.get(5..5 + len)?.to_vec();
    let flag = buf[0];
    buf.drain(..5 + len);
    Some((flag, payload))
}

fn web_post(sb: &TestServer, rpc: &str, msg: &impl prost::Message) -> reqwest::RequestBuilder {
    switchboard_auth::https_client(None, std::time::Duration::from_secs(30))
        .unwrap()
        .post(format!("http://{}/switchboard.v1.AgentDesktop/{rpc}", sb.grpc_addr))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header("origin", DESK)
        .body(web_frame(msg))
}

/// A unary gRPC-Web call: its messages and its `grpc-status` (trailer frame or headers).
async fn web_unary(sb: &TestServer, rpc: &str, msg: &impl prost::Message) -> (Vec<Vec<u8>>, String) {
    let res = web_post(sb, rpc, msg).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200, "{res:?}");
    let header_status = res.headers().get("grpc-status").map(|v| v.to_str().unwrap().to_string());
    let mut body = res.bytes().await.unwrap().to_vec();
    let (mut messages, mut status) = (Vec::new(), header_status);
    while let Some((flag, payload)) = take_frame(&mut body) {
        if flag == 0x80 {
            let trailers = String::from_utf8(payload).unwrap();
            let line = trailers.lines().find(|l| l.to_ascii_lowercase().starts_with("grpc-status:")).unwrap();
            status = Some(line.split_once(':').unwrap().1.trim().to_string());
        } else {
            messages.push(payload);
        }
    }
    (messages, status.expect("a grpc-status"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_opens_and_acts_over_grpc_web() {
    let redis = RedisServer::start();
    let mut cfg = test_config(&redis.url);
    cfg.server.grpc_web_origins = vec![DESK.into()];
    let sb = TestServer::start_with(cfg).await;
    sales_with(&sb, &["ann"]).await;

    let login = pb::Login { agent_id: "ann".into(), token: "tok-ann".into() };
    let mut stream = web_post(&sb, "Open", &login).send().await.unwrap();
    assert_eq!(stream.status().as_u16(), 200);
    assert_eq!(stream.headers()["access-control-allow-origin"], DESK);
    let mut buf = Vec::new();
    let mut next_event = async || loop {
        if let Some((flag, payload)) = take_frame(&mut buf) {
            assert_eq!(flag, 0, "the stream ended: {:?}", String::from_utf8_lossy(&payload));
            return pb::AgentEvent::decode(&payload[..]).unwrap().kind.unwrap();
        }
        let chunk = tokio::time::timeout(PATIENCE, stream.chunk()).await.expect("an event in time").unwrap();
        buf.extend_from_slice(&chunk.expect("the stream is still open"));
    };
    let Ev::LoggedIn(li) = next_event().await else { panic!("LoggedIn first") };
    assert!(!li.session_id.is_empty());

    let act = |kind: Rq| pb::ActRequest {
        agent_id: "ann".into(),
        session_id: li.session_id.clone(),
        request: Some(pb::AgentRequest { request_id: "r1".into(), kind: Some(kind) }),
    };
    let (messages, status) = web_unary(&sb, "Act", &act(ready())).await;
    assert_eq!(status, "0");
    let ack = pb::Ack::decode(&messages[0][..]).unwrap();
    assert_eq!(ack.request_id, "r1");
    assert_eq!(presence(ack.agent.as_ref().unwrap()), pb::PresenceState::Ready);
    // The offer arrives on the page's stream.
    let created = sb.interactions().await.create_interaction(new_chat("sales", "c1", "hi")).await.unwrap().into_inner();
    loop {
        if let Ev::Offer(o) = next_event().await {
            assert_eq!(o.interaction.unwrap().id, created.id);
            break;
        }
    }
    let (_, status) = web_unary(&sb, "Act", &act(accept(&created.id))).await;
    assert_eq!(status, "0");
    loop {
        if let Ev::Assigned(a) = next_event().await {
            assert_eq!(a.interaction.unwrap().id, created.id);
            break;
        }
    }
    // A wrong session id: UNAUTHENTICATED, as natively.
    let mut wrong = act(ready());
    wrong.session_id = "5f0b6a4e-3c1d-4b8e-9a7f-2d6c8e1f0a3b".into();
    let (messages, status) = web_unary(&sb, "Act", &wrong).await;
    assert_eq!((messages.len(), status.as_str()), (0, "16"));
    sb.stop().await;
}
