//! The public gRPC API end to end, against a real Redis and a real in-process Switchboard:
//! admin, interactions, agent desktop, supervisor and the operational endpoints.

use crate::common::*;

use std::time::Duration;

use switchboard::api::pb;
use switchboard::api::pb::agent_event::Kind as Ev;
use switchboard::api::pb::agent_request::Kind as Rq;
use switchboard::api::pb::supervisor_event::Kind as Sev;
use switchboard::model;
use switchboard_engine::{Engine, EngineOptions};
use tokio::sync::mpsc;
use tonic::Code;

// ------------------------------------------------------------------------------------------ helpers

async fn start() -> (RedisServer, TestServer) {
    let redis = RedisServer::start();
    let sb = TestServer::start(&redis.url).await;
    (redis, sb)
}

async fn engine(redis: &RedisServer) -> Engine {
    Engine::connect(&redis.url, EngineOptions::default()).await.expect("connect engine")
}

/// Asserts a gRPC call failed with `code` and a message naming `field`; returns the status.
#[track_caller]
fn expect_err<T: std::fmt::Debug>(
    r: Result<tonic::Response<T>, tonic::Status>,
    code: Code,
    field: &str,
) -> tonic::Status {
    match r {
        Ok(v) => panic!("expected {code:?} naming {field:?}, got Ok({:?})", v.get_ref()),
        Err(s) => {
            assert_eq!(s.code(), code, "wrong code for {field:?}: {s:?}");
            assert!(s.message().contains(field), "message {:?} does not name {field:?}", s.message());
            s
        }
    }
}

async fn put_queue(sb: &TestServer, q: pb::Queue) -> pb::Queue {
    sb.admin().await.put_queue(pb::PutQueueRequest { queue: Some(q), allow_update: false }).await.unwrap().into_inner()
}

async fn put_agent(sb: &TestServer, a: pb::Agent) -> pb::Agent {
    sb.admin().await.put_agent(pb::PutAgentRequest { agent: Some(a), allow_update: false }).await.unwrap().into_inner()
}

fn cap(voice: u32, chat: u32, sms: u32, email: u32) -> Option<pb::Capacity> {
    Some(pb::Capacity { voice: Some(voice), chat: Some(chat), sms: Some(sms), email: Some(email) })
}

async fn create(sb: &TestServer, req: pb::CreateInteractionRequest) -> pb::Interaction {
    sb.interactions().await.create_interaction(req).await.unwrap().into_inner()
}

async fn get_ix(sb: &TestServer, id: &str) -> pb::Interaction {
    sb.interactions()
        .await
        .get_interaction(pb::GetInteractionRequest { interaction_id: id.into(), include_messages: true })
        .await
        .unwrap()
        .into_inner()
}

async fn waiting(sb: &TestServer, queue: &str) -> Vec<String> {
    sb.supervisor()
        .await
        .list_waiting(pb::ListWaitingRequest { queue: queue.into(), limit: 0 })
        .await
        .unwrap()
        .into_inner()
        .interactions
        .into_iter()
        .map(|i| i.id)
        .collect()
}

fn presence_state(p: &Option<pb::Presence>) -> pb::PresenceState {
    pb::PresenceState::try_from(p.as_ref().expect("presence set").state).expect("known presence state")
}

/// Waits (real time, bounded) until the agent's desktop stream is known to be gone.
async fn wait_disconnected(st: &Engine, agent: &str) {
    eventually(&format!("{agent} disconnected"), PATIENCE, || async {
        st.agent_status(agent).await.ok().filter(|s| !s.connected).map(|_| ())
    })
    .await;
}

/// A desktop stream driven by hand: any first request, chosen request ids.
struct RawSession {
    tx: mpsc::Sender<pb::AgentRequest>,
    events: tonic::Streaming<pb::AgentEvent>,
}

impl RawSession {
    async fn open(sb: &TestServer, first: pb::AgentRequest) -> Result<RawSession, tonic::Status> {
        let mut client = pb::agent_desktop_client::AgentDesktopClient::connect(sb.endpoint()).await.unwrap();
        let (tx, rx) = mpsc::channel(16);
        tx.send(first).await.unwrap();
        let events = client.session(tokio_stream::wrappers::ReceiverStream::new(rx)).await?.into_inner();
        Ok(RawSession { tx, events })
    }

    async fn next(&mut self) -> pb::AgentEvent {
        tokio::time::timeout(PATIENCE, self.events.message())
            .await
            .expect("an event in time")
            .expect("stream ok")
            .expect("stream open")
    }

    /// False if the request stream is already gone (the server ended the call).
    async fn send(&mut self, request_id: &str, kind: Rq) -> bool {
        self.tx.send(pb::AgentRequest { request_id: request_id.into(), kind: Some(kind) }).await.is_ok()
    }

    /// Sends a request and collects every event up to its ack or error. Err(events) if the stream
    /// ended first (with what arrived before the end).
    async fn roundtrip(&mut self, request_id: &str, kind: Rq) -> Result<Vec<Ev>, Vec<Ev>> {
        let mut seen = Vec::new();
        if !self.send(request_id, kind).await {
            // The call is over; whatever the server sent before the end is still readable.
            while let Ok(Ok(Some(e))) = tokio::time::timeout(PATIENCE, self.events.message()).await {
                seen.extend(e.kind);
            }
            return Err(seen);
        }
        loop {
            let e = tokio::time::timeout(PATIENCE, self.events.message()).await.expect("an event in time");
            let Ok(Some(e)) = e else { return Err(seen) };
            let kind = e.kind.expect("event kind set");
            let done = matches!(&kind, Ev::Ack(a) if a.request_id == request_id)
                || matches!(&kind, Ev::Error(er) if er.request_id == request_id);
            seen.push(kind);
            if done {
                return Ok(seen);
            }
        }
    }
}

fn login_req(agent: &str, token: &str) -> pb::AgentRequest {
    pb::AgentRequest {
        request_id: "login".into(),
        kind: Some(Rq::Login(pb::Login { agent_id: agent.into(), token: token.into() })),
    }
}

async fn next_sup(w: &mut tonic::Streaming<pb::SupervisorEvent>) -> Sev {
    tokio::time::timeout(PATIENCE, w.message())
        .await
        .expect("a supervisor event in time")
        .expect("watch ok")
        .expect("watch open")
        .kind
        .expect("event kind set")
}

/// Reads the watch stream until `pred` matches (bounded by PATIENCE per event).
async fn wait_sup(w: &mut tonic::Streaming<pb::SupervisorEvent>, what: &str, pred: impl Fn(&Sev) -> bool) -> Sev {
    let start = std::time::Instant::now();
    loop {
        let e = next_sup(w).await;
        if pred(&e) {
            return e;
        }
        assert!(start.elapsed() < PATIENCE, "no supervisor event matching {what} within {PATIENCE:?}");
    }
}

// ------------------------------------------------------------------------------------------ 1. admin

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_agents_crud_validation_and_token_privacy() {
    let (redis, sb) = start().await;
    let mut admin = sb.admin().await;

    let mut ann = agent("ann", &[("english", 5), ("billing", 7)]);
    ann.capacity = cap(1, 2, 3, 4);
    ann.cross_channel_blocking = Some(false);
    let created = admin
        .put_agent(pb::PutAgentRequest { agent: Some(ann.clone()), allow_update: false })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.id, "ann");
    assert_eq!(created.name, "Agent ann");
    assert_eq!(created.skills, ann.skills);
    assert_eq!(created.capacity, cap(1, 2, 3, 4));
    assert_eq!(created.cross_channel_blocking, Some(false));
    assert_eq!(created.token, "", "token must never be returned");
    put_agent(&sb, agent("bob", &[("english", 3)])).await;

    let got = admin.get_agent(pb::GetAgentRequest { agent_id: "ann".into() }).await.unwrap().into_inner();
    assert_eq!(got, created);
    let list = admin.list_agents(pb::ListAgentsRequest {}).await.unwrap().into_inner().agents;
    assert_eq!(list.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(), ["ann", "bob"]);
    assert!(list.iter().all(|a| a.token.is_empty()), "token leaked in ListAgents: {list:?}");
    let bob = list.iter().find(|a| a.id == "bob").unwrap();
    assert_eq!(bob.capacity, cap(1, 3, 3, 5), "unset capacity takes the defaults");

    // Create-only on an existing agent.
    let mut changed = ann.clone();
    changed.name = "Someone else".into();
    let s = admin.put_agent(pb::PutAgentRequest { agent: Some(changed), allow_update: false }).await.unwrap_err();
    assert_eq!(s.code(), Code::AlreadyExists, "{s:?}");

    // Bad input: INVALID_ARGUMENT naming the field, nothing changed.
    let mut bad_cases: Vec<(pb::Agent, &str)> = Vec::new();
    let mut a = ann.clone();
    a.skills.insert("french".into(), 0);
    bad_cases.push((a, "skills.french"));
    let mut a = ann.clone();
    a.skills.insert("french".into(), 11);
    bad_cases.push((a, "skills.french"));
    let mut a = ann.clone();
    a.capacity = cap(1, 26, 3, 5);
    bad_cases.push((a, "capacity.chat"));
    let mut a = ann.clone();
    a.name = "n".repeat(201);
    bad_cases.push((a, "name"));
    let mut a = ann.clone();
    a.id = String::new();
    bad_cases.push((a, "id"));
    let mut a = ann.clone();
    a.id = "ann smith".into();
    bad_cases.push((a, "id"));
    for (bad, field) in bad_cases {
        let r = admin.put_agent(pb::PutAgentRequest { agent: Some(bad), allow_update: true }).await;
        expect_err(r, Code::InvalidArgument, field);
    }
    let r = admin.put_agent(pb::PutAgentRequest { agent: None, allow_update: true }).await;
    expect_err(r, Code::InvalidArgument, "agent");
    let got = admin.get_agent(pb::GetAgentRequest { agent_id: "ann".into() }).await.unwrap().into_inner();
    assert_eq!(got, created, "a rejected update changed the agent");
    let after = admin.list_agents(pb::ListAgentsRequest {}).await.unwrap().into_inner().agents;
    assert_eq!(after, list, "a rejected put changed the agent list");

    // A valid update without a token keeps the login token.
    let mut upd = ann.clone();
    upd.name = "Ann Updated".into();
    upd.token = String::new();
    let u = admin.put_agent(pb::PutAgentRequest { agent: Some(upd), allow_update: true }).await.unwrap().into_inner();
    assert_eq!(u.name, "Ann Updated");
    assert_eq!(u.token, "");
    let (mut d, _) = Desktop::login(&sb.endpoint(), "ann", "tok-ann").await.expect("token kept across update");
    d.ready().await;
    drop(d);
    wait_disconnected(&engine(&redis).await, "ann").await;

    // Unknown ids.
    let s = admin.get_agent(pb::GetAgentRequest { agent_id: "nobody".into() }).await.unwrap_err();
    assert_eq!(s.code(), Code::NotFound, "{s:?}");
    let s = admin.delete_agent(pb::DeleteAgentRequest { agent_id: "nobody".into() }).await.unwrap_err();
    assert_eq!(s.code(), Code::NotFound, "{s:?}");
    let r = admin.get_agent(pb::GetAgentRequest { agent_id: "not valid".into() }).await;
    expect_err(r, Code::InvalidArgument, "agent_id");

    // Delete.
    admin.delete_agent(pb::DeleteAgentRequest { agent_id: "bob".into() }).await.unwrap();
    let s = admin.get_agent(pb::GetAgentRequest { agent_id: "bob".into() }).await.unwrap_err();
    assert_eq!(s.code(), Code::NotFound, "{s:?}");
    let ids: Vec<String> = admin
        .list_agents(pb::ListAgentsRequest {})
        .await
        .unwrap()
        .into_inner()
        .agents
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(ids, ["ann"]);
    sb.stop().await;
}

/// The proto says of `Agent.capacity`: "Unset fields take the defaults (voice 1, chat 3, sms 3,
/// email 5)" — and a config file's `capacity = { chat = 1 }` does exactly that. Setting only the chat
/// capacity over the API must not silently switch the agent off voice, SMS and email.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_partial_capacity_takes_defaults_for_unset_fields() {
    let (_redis, sb) = start().await;
    let mut a = agent("ann", &[]);
    a.capacity = Some(pb::Capacity { chat: Some(1), ..Default::default() });
    let stored = put_agent(&sb, a).await;
    assert_eq!(stored.capacity, cap(1, 1, 3, 5), "unset capacity fields must take the defaults");
    let got = sb.admin().await.get_agent(pb::GetAgentRequest { agent_id: "ann".into() }).await.unwrap().into_inner();
    assert_eq!(got.capacity, cap(1, 1, 3, 5));
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_queues_crud_and_validation() {
    let (_redis, sb) = start().await;
    let mut admin = sb.admin().await;

    put_queue(&sb, queue("general", &[])).await;
    let mut sales = queue("sales", &[("english", 3), ("billing", 5)]);
    sales.channels = vec![pb::Channel::Chat as i32, pb::Channel::Email as i32];
    sales.priority = 5;
    sales.strategy = pb::Strategy::MostSkilled as i32;
    sales.offer_timeout_secs = 30;
    sales.escalation = vec![
        pb::EscalationStep { after_secs: 60, action: Some(pb::escalation_step::Action::DropSkill("billing".into())) },
        pb::EscalationStep {
            after_secs: 120,
            action: Some(pb::escalation_step::Action::OverflowQueue("general".into())),
        },
    ];
    let created = put_queue(&sb, sales.clone()).await;
    assert_eq!(created.name, "sales");
    assert_eq!(created.channels, sales.channels);
    assert_eq!(created.requirements, sales.requirements);
    assert_eq!(created.priority, 5);
    assert_eq!(created.strategy, pb::Strategy::MostSkilled as i32);
    assert_eq!(created.offer_timeout_secs, 30);
    assert_eq!(created.service_level_secs, 20, "0 takes the default");
    assert_eq!(created.escalation, sales.escalation);
    let got = admin.get_queue(pb::GetQueueRequest { name: "sales".into() }).await.unwrap().into_inner();
    assert_eq!(got, created);
    let list = admin.list_queues(pb::ListQueuesRequest {}).await.unwrap().into_inner().queues;
    assert_eq!(list.iter().map(|q| q.name.as_str()).collect::<Vec<_>>(), ["general", "sales"]);
    // An unset channel list means every channel.
    let general = list.iter().find(|q| q.name == "general").unwrap();
    assert_eq!(general.channels.len(), 4, "{general:?}");

    let s = admin.put_queue(pb::PutQueueRequest { queue: Some(sales.clone()), allow_update: false }).await.unwrap_err();
    assert_eq!(s.code(), Code::AlreadyExists, "{s:?}");

    let mut cases: Vec<(pb::Queue, Code, &str)> = Vec::new();
    let mut q = sales.clone();
    q.requirements.push(pb::SkillRequirement { skill: "english".into(), min_level: 4 });
    cases.push((q, Code::InvalidArgument, "requirements[2].skill"));
    let mut q = sales.clone();
    q.requirements[0].min_level = 0;
    cases.push((q, Code::InvalidArgument, "requirements[0].min_level"));
    let mut q = sales.clone();
    q.requirements[1].min_level = 11;
    cases.push((q, Code::InvalidArgument, "requirements[1].min_level"));
    let mut q = sales.clone();
    q.escalation = vec![pb::EscalationStep {
        after_secs: 30,
        action: Some(pb::escalation_step::Action::DropSkill("french".into())),
    }];
    cases.push((q, Code::InvalidArgument, "escalation[0].drop_skill"));
    let mut q = sales.clone();
    q.channels = vec![pb::Channel::Chat as i32, 9];
    cases.push((q, Code::InvalidArgument, "channels[1]"));
    let mut q = sales.clone();
    q.name = String::new();
    cases.push((q, Code::InvalidArgument, "name"));
    let mut q = sales.clone();
    q.name = "sales team".into();
    cases.push((q, Code::InvalidArgument, "name"));
    let mut q = sales.clone();
    q.escalation = vec![pb::EscalationStep {
        after_secs: 30,
        action: Some(pb::escalation_step::Action::OverflowQueue("nowhere".into())),
    }];
    cases.push((q, Code::NotFound, "nowhere"));
    for (bad, code, field) in cases {
        let r = admin.put_queue(pb::PutQueueRequest { queue: Some(bad), allow_update: true }).await;
        expect_err(r, code, field);
    }
    let got = admin.get_queue(pb::GetQueueRequest { name: "sales".into() }).await.unwrap().into_inner();
    assert_eq!(got, created, "a rejected update changed the queue");
    assert_eq!(admin.list_queues(pb::ListQueuesRequest {}).await.unwrap().into_inner().queues, list);

    // A queue another queue overflows to cannot be deleted.
    let s = admin.delete_queue(pb::DeleteQueueRequest { name: "general".into() }).await.unwrap_err();
    assert_eq!(s.code(), Code::FailedPrecondition, "{s:?}");

    // A queue with waiting interactions cannot be deleted; nothing is lost.
    let ix = create(&sb, new_chat("sales", "visitor-1", "hello")).await;
    assert_eq!(ix.state, pb::InteractionState::Queued as i32);
    let s = admin.delete_queue(pb::DeleteQueueRequest { name: "sales".into() }).await.unwrap_err();
    assert_eq!(s.code(), Code::FailedPrecondition, "{s:?}");
    assert_eq!(admin.get_queue(pb::GetQueueRequest { name: "sales".into() }).await.unwrap().into_inner(), created);
    assert_eq!(waiting(&sb, "sales").await, [ix.id.as_str()]);

    // Once empty it can go.
    let mut sup = sb.supervisor().await;
    sup.withdraw_interaction(pb::SupervisorWithdrawRequest { interaction_id: ix.id.clone(), reason: String::new() })
        .await
        .unwrap();
    admin.delete_queue(pb::DeleteQueueRequest { name: "sales".into() }).await.unwrap();
    let s = admin.get_queue(pb::GetQueueRequest { name: "sales".into() }).await.unwrap_err();
    assert_eq!(s.code(), Code::NotFound, "{s:?}");
    let s = admin.delete_queue(pb::DeleteQueueRequest { name: "sales".into() }).await.unwrap_err();
    assert_eq!(s.code(), Code::NotFound, "{s:?}");
    admin.delete_queue(pb::DeleteQueueRequest { name: "general".into() }).await.unwrap();
    assert!(admin.list_queues(pb::ListQueuesRequest {}).await.unwrap().into_inner().queues.is_empty());
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_cannot_delete_agent_holding_work() {
    let (_redis, sb) = start().await;
    let mut admin = sb.admin().await;
    put_queue(&sb, queue("sales", &[])).await;
    put_agent(&sb, agent("ann", &[])).await;
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    let ix = create(&sb, new_chat("sales", "visitor-1", "hi")).await;
    let offer = ann.wait_offer().await;
    assert_eq!(offer.interaction.unwrap().id, ix.id);

    // An offer is work too.
    let s = admin.delete_agent(pb::DeleteAgentRequest { agent_id: "ann".into() }).await.unwrap_err();
    assert_eq!(s.code(), Code::FailedPrecondition, "{s:?}");
    ann.accept(&ix.id).await.unwrap();
    let s = admin.delete_agent(pb::DeleteAgentRequest { agent_id: "ann".into() }).await.unwrap_err();
    assert_eq!(s.code(), Code::FailedPrecondition, "{s:?}");
    assert_eq!(admin.get_agent(pb::GetAgentRequest { agent_id: "ann".into() }).await.unwrap().into_inner().id, "ann");
    assert_eq!(get_ix(&sb, &ix.id).await.state, pb::InteractionState::Active as i32);

    ann.complete(&ix.id, "done").await.unwrap();
    admin.delete_agent(pb::DeleteAgentRequest { agent_id: "ann".into() }).await.unwrap();
    let s = admin.get_agent(pb::GetAgentRequest { agent_id: "ann".into() }).await.unwrap_err();
    assert_eq!(s.code(), Code::NotFound, "{s:?}");
    sb.stop().await;
}

// ------------------------------------------------------------------------------------------ 2. interactions

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_interaction_is_idempotent_and_validates() {
    let (_redis, sb) = start().await;
    put_queue(&sb, queue("sales", &[])).await;
    let mut email_only = queue("mail", &[]);
    email_only.channels = vec![pb::Channel::Email as i32];
    put_queue(&sb, email_only).await;
    let mut ixs = sb.interactions().await;

    let mut req = new_chat("sales", "visitor-1", "hello");
    req.idempotency_key = "chat-session-42".into();
    let first = ixs.create_interaction(req.clone()).await.unwrap().into_inner();
    let again = ixs.create_interaction(req.clone()).await.unwrap().into_inner();
    assert_eq!(first.id, again.id, "same key, same interaction");
    assert_eq!(waiting(&sb, "").await, [first.id.as_str()], "exactly one interaction exists");
    assert_eq!(get_ix(&sb, &first.id).await.messages.len(), 1, "the retry must not add a message");

    // Concurrent retries (separate connections) still make one interaction.
    let mut retries = Vec::new();
    for _ in 0..5 {
        let mut c = sb.interactions().await;
        let mut r = new_chat("sales", "visitor-9", "hello");
        r.idempotency_key = "widget-retry-7".into();
        retries.push(tokio::spawn(async move { c.create_interaction(r).await.map(|r| r.into_inner().id) }));
    }
    let mut ids = Vec::new();
    for h in retries {
        ids.push(h.await.unwrap().unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "concurrent retries made several interactions: {ids:?}");
    assert_eq!(waiting(&sb, "").await, [first.id.clone(), ids[0].clone()]);
    let mut sup = sb.supervisor().await;
    let limited = sup.list_waiting(pb::ListWaitingRequest { queue: "sales".into(), limit: 1 }).await.unwrap();
    assert_eq!(limited.into_inner().interactions.iter().map(|i| i.id.clone()).collect::<Vec<_>>(), [first.id.as_str()]);
    sup.withdraw_interaction(pb::SupervisorWithdrawRequest { interaction_id: ids[0].clone(), reason: String::new() })
        .await
        .unwrap();

    let base = || new_chat("sales", "visitor-2", "hello");
    let mut cases: Vec<(pb::CreateInteractionRequest, Code, &str)> = Vec::new();
    let mut r = base();
    r.channel = pb::Channel::Unspecified as i32;
    cases.push((r, Code::InvalidArgument, "channel"));
    let mut r = base();
    r.channel = 42;
    cases.push((r, Code::InvalidArgument, "channel"));
    let mut r = base();
    r.queue = "nowhere".into();
    cases.push((r, Code::NotFound, "queue"));
    let mut r = base();
    r.queue = "mail".into();
    cases.push((r, Code::InvalidArgument, "channel"));
    let mut r = base();
    r.body = "x".repeat(64 * 1024 + 1);
    cases.push((r, Code::InvalidArgument, "body"));
    let mut r = base();
    r.priority = Some(1001);
    cases.push((r, Code::InvalidArgument, "priority"));
    let mut r = base();
    r.channel = pb::Channel::Voice as i32;
    r.customer_address = "+15550100".into();
    r.body = "voice has no body".into();
    cases.push((r, Code::InvalidArgument, "body"));
    for (i, (r, code, field)) in cases.into_iter().enumerate() {
        let mut r = r;
        r.idempotency_key = format!("bad-{i}");
        expect_err(ixs.create_interaction(r).await, code, field);
    }
    assert_eq!(waiting(&sb, "").await, [first.id.as_str()], "rejected creates must create nothing");

    // A body of exactly 64 KiB is fine.
    let mut r = base();
    r.body = "x".repeat(64 * 1024);
    let big = ixs.create_interaction(r).await.unwrap().into_inner();
    assert_eq!(get_ix(&sb, &big.id).await.messages[0].body.len(), 64 * 1024);
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_message_errors() {
    let (_redis, sb) = start().await;
    put_queue(&sb, queue("sales", &[])).await;
    put_agent(&sb, agent("ann", &[])).await;
    let mut ixs = sb.interactions().await;

    let s = ixs
        .append_message(pb::AppendMessageRequest {
            interaction_id: "no-such-interaction".into(),
            body: "hi".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::NotFound, "{s:?}");

    let voice = create(
        &sb,
        pb::CreateInteractionRequest {
            channel: pb::Channel::Voice as i32,
            customer_address: "+15550100".into(),
            queue: "sales".into(),
            ..Default::default()
        },
    )
    .await;
    let r = ixs
        .append_message(pb::AppendMessageRequest {
            interaction_id: voice.id.clone(),
            body: "hi".into(),
            ..Default::default()
        })
        .await;
    expect_err(r, Code::InvalidArgument, "voice");
    assert!(get_ix(&sb, &voice.id).await.messages.is_empty());

    let chat = create(&sb, new_chat("sales", "visitor-1", "first")).await;
    let m = ixs
        .append_message(pb::AppendMessageRequest {
            interaction_id: chat.id.clone(),
            body: "second".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(m.seq, 2);
    assert_eq!(m.author, pb::Author::Customer as i32);
    // With an idempotency key, a retried append returns the first message.
    for _ in 0..2 {
        let m = ixs
            .append_message(pb::AppendMessageRequest {
                interaction_id: chat.id.clone(),
                body: "third".into(),
                idempotency_key: "retry-me".into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(m.seq, 3);
    }
    assert_eq!(get_ix(&sb, &chat.id).await.messages.len(), 3);

    // Take the chat and complete it (voice waits: cross-channel blocking is irrelevant while it is not offered).
    sb.supervisor()
        .await
        .withdraw_interaction(pb::SupervisorWithdrawRequest { interaction_id: voice.id.clone(), reason: String::new() })
        .await
        .unwrap();
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    let offer = ann.wait_offer().await;
    assert_eq!(offer.interaction.as_ref().unwrap().id, chat.id);
    ann.accept(&chat.id).await.unwrap();
    ann.complete(&chat.id, "done").await.unwrap();
    let r = ixs
        .append_message(pb::AppendMessageRequest {
            interaction_id: chat.id.clone(),
            body: "late".into(),
            ..Default::default()
        })
        .await;
    let s = r.unwrap_err();
    assert_eq!(s.code(), Code::FailedPrecondition, "{s:?}");
    assert_eq!(get_ix(&sb, &chat.id).await.messages.len(), 3, "a rejected message must not be stored");
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdraw_offered_and_active_interactions() {
    let (redis, sb) = start().await;
    put_queue(&sb, queue("sales", &[])).await;
    let mut a = agent("ann", &[]);
    a.capacity = cap(1, 1, 1, 1);
    put_agent(&sb, a).await;
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    let mut ixs = sb.interactions().await;

    let first = create(&sb, new_chat("sales", "visitor-1", "one")).await;
    let offer = ann.wait_offer().await;
    assert_eq!(offer.interaction.unwrap().id, first.id);
    // Ann is at capacity: the second one waits.
    let second = create(&sb, new_chat("sales", "visitor-2", "two")).await;
    assert_eq!(second.state, pb::InteractionState::Queued as i32);

    let w = ixs
        .withdraw_interaction(pb::WithdrawInteractionRequest {
            interaction_id: first.id.clone(),
            reason: "customer_left".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(w.state, pb::InteractionState::Abandoned as i32);
    assert_eq!(w.end_reason, "customer_left");
    let Ev::OfferRevoked(rv) = ann.wait_for("offer revoked", |e| matches!(e, Ev::OfferRevoked(_))).await else {
        unreachable!()
    };
    assert_eq!(rv.interaction_id, first.id);
    assert_eq!(rv.reason, "abandoned");
    // The freed slot pulls the waiting interaction.
    let offer = ann.wait_offer().await;
    assert_eq!(offer.interaction.unwrap().id, second.id);

    // Withdrawing an active chat ends it on the desktop.
    ann.accept(&second.id).await.unwrap();
    ixs.withdraw_interaction(pb::WithdrawInteractionRequest {
        interaction_id: second.id.clone(),
        reason: "customer_left".into(),
    })
    .await
    .unwrap();
    let Ev::InteractionEnded(end) = ann.wait_for("ended", |e| matches!(e, Ev::InteractionEnded(_))).await else {
        unreachable!()
    };
    assert_eq!(end.interaction_id, second.id);
    assert_eq!(end.reason, "customer_left");
    assert_eq!(end.state, pb::InteractionState::Completed as i32, "queue has no wrap-up: {end:?}");
    let got = get_ix(&sb, &second.id).await;
    assert_eq!(got.state, pb::InteractionState::Completed as i32);
    assert_eq!(got.end_reason, "customer_left");
    let st = engine(&redis).await.agent_status("ann").await.unwrap();
    assert_eq!(st.load.get(&model::Channel::Chat).copied().unwrap_or(0), 0, "slot freed: {st:?}");

    let s = ixs
        .withdraw_interaction(pb::WithdrawInteractionRequest {
            interaction_id: "unknown-ix".into(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::NotFound, "{s:?}");
    sb.stop().await;
}

// ------------------------------------------------------------------------------------------ 3. desktop

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn desktop_login_errors() {
    let (_redis, sb) = start().await;
    put_agent(&sb, agent("ann", &[])).await;

    let s = Desktop::login(&sb.endpoint(), "ann", "wrong-token").await.err().expect("wrong token must fail");
    assert_eq!(s.code(), Code::Unauthenticated, "{s:?}");
    let s = Desktop::login(&sb.endpoint(), "nobody", "tok-nobody").await.err().expect("unknown agent must fail");
    assert_eq!(s.code(), Code::Unauthenticated, "{s:?}");
    let s = Desktop::login(&sb.endpoint(), "ann", "").await.err().expect("empty token must fail");
    assert_eq!(s.code(), Code::Unauthenticated, "{s:?}");

    let first = pb::AgentRequest {
        request_id: "p1".into(),
        kind: Some(Rq::SetPresence(pb::SetPresence {
            presence: Some(pb::Presence { state: pb::PresenceState::Ready as i32, reason: String::new() }),
        })),
    };
    let s = RawSession::open(&sb, first).await.err().expect("a first request other than login must fail");
    assert!(
        matches!(s.code(), Code::Unauthenticated | Code::InvalidArgument | Code::FailedPrecondition),
        "unexpected code {s:?}"
    );
    assert!(s.message().contains("login"), "{s:?}");

    // None of that logged ann in.
    let ann = sb
        .supervisor()
        .await
        .list_agent_states(pb::ListAgentStatesRequest {})
        .await
        .unwrap()
        .into_inner()
        .agents
        .into_iter()
        .find(|a| a.agent_id == "ann")
        .unwrap();
    assert!(!ann.connected);
    assert_eq!(presence_state(&ann.presence), pb::PresenceState::Offline);
    sb.stop().await;
}

/// A login that fails (wrong token) must not touch the agent's live session: no SessionClosed, the
/// stream keeps working and keeps getting work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_login_does_not_disturb_the_live_session() {
    let (redis, sb) = start().await;
    let st = engine(&redis).await;
    put_queue(&sb, queue("sales", &[])).await;
    put_agent(&sb, agent("ann", &[])).await;
    let mut ann = RawSession::open(&sb, login_req("ann", "tok-ann")).await.unwrap();
    assert!(matches!(ann.next().await.kind, Some(Ev::LoggedIn(_))));
    assert!(matches!(ann.next().await.kind, Some(Ev::Ack(_))));
    let ready = || {
        Rq::SetPresence(pb::SetPresence {
            presence: Some(pb::Presence { state: pb::PresenceState::Ready as i32, reason: String::new() }),
        })
    };
    ann.roundtrip("ready-1", ready()).await.expect("ready");

    let s = Desktop::login(&sb.endpoint(), "ann", "stolen-guess").await.err().expect("wrong token must fail");
    assert_eq!(s.code(), Code::Unauthenticated, "{s:?}");

    let events = ann.roundtrip("ready-2", ready()).await;
    let events = events.unwrap_or_else(|seen| {
        panic!("a failed login attempt closed the live desktop session of ann; events before the end: {seen:?}")
    });
    assert!(
        !events.iter().any(|e| matches!(e, Ev::SessionClosed(_))),
        "a failed login attempt must not close the live session: {events:?}"
    );
    let status = st.agent_status("ann").await.unwrap();
    assert!(status.connected, "ann must still be connected: {status:?}");

    // And it still gets work.
    let ix = create(&sb, new_chat("sales", "visitor-1", "hello")).await;
    assert_eq!(ix.state, pb::InteractionState::Offered as i32, "ann is ready and connected: {ix:?}");
    let offer = loop {
        match ann.next().await.kind {
            Some(Ev::Offer(o)) => break o,
            Some(Ev::SessionClosed(c)) => panic!("session closed ({}) instead of an offer", c.reason),
            _ => continue,
        }
    };
    assert_eq!(offer.interaction.unwrap().id, ix.id);
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_login_replaces_the_first_session() {
    let (_redis, sb) = start().await;
    put_queue(&sb, queue("sales", &[])).await;
    put_agent(&sb, agent("ann", &[])).await;
    let mut old = sb.desktop("ann", "tok-ann").await;
    old.ready().await;

    let (mut new, li) = Desktop::login(&sb.endpoint(), "ann", "tok-ann").await.unwrap();
    assert!(li.agent.as_ref().unwrap().connected);
    assert_eq!(old.wait_closed().await.as_deref(), Some("replaced"));
    assert!(old.closed);

    // The new session is the live one: it gets work and its requests are answered.
    let ix = create(&sb, new_chat("sales", "visitor-1", "hello")).await;
    let offer = new.wait_offer().await;
    assert_eq!(offer.interaction.unwrap().id, ix.id);
    let ack = new.accept(&ix.id).await.unwrap();
    assert_eq!(ack.interaction.unwrap().state, pb::InteractionState::Active as i32);
    let st = sb
        .supervisor()
        .await
        .list_agent_states(pb::ListAgentStatesRequest {})
        .await
        .unwrap()
        .into_inner()
        .agents
        .into_iter()
        .find(|a| a.agent_id == "ann")
        .unwrap();
    assert!(st.connected, "the old session's end must not disconnect the new one: {st:?}");
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_resumes_pending_offer_and_active_interaction() {
    let (redis, sb) = start().await;
    let st = engine(&redis).await;
    put_queue(&sb, queue("sales", &[])).await;
    put_agent(&sb, agent("ann", &[])).await;
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    let ix = create(&sb, new_chat("sales", "visitor-1", "hello")).await;
    ann.wait_offer().await;
    drop(ann);
    wait_disconnected(&st, "ann").await;

    let (mut ann, li) = Desktop::login(&sb.endpoint(), "ann", "tok-ann").await.unwrap();
    let agent_state = li.agent.as_ref().unwrap();
    assert!(agent_state.connected);
    assert_eq!(li.offers.len(), 1, "{li:?}");
    let offered = li.offers[0].interaction.as_ref().unwrap();
    assert_eq!(offered.id, ix.id);
    assert_eq!(offered.state, pb::InteractionState::Offered as i32);
    assert_eq!(offered.messages.len(), 1);
    assert!(li.offers[0].expires_at.is_some());
    assert!(li.interactions.is_empty(), "{li:?}");

    ann.accept(&ix.id).await.unwrap();
    drop(ann);
    wait_disconnected(&st, "ann").await;
    let (_ann, li) = Desktop::login(&sb.endpoint(), "ann", "tok-ann").await.unwrap();
    assert!(li.offers.is_empty(), "{li:?}");
    assert_eq!(li.interactions.len(), 1, "{li:?}");
    assert_eq!(li.interactions[0].id, ix.id);
    assert_eq!(li.interactions[0].state, pb::InteractionState::Active as i32);
    assert_eq!(li.interactions[0].agent_id, "ann");
    assert_eq!(li.interactions[0].messages.len(), 1);
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_on_foreign_interactions_fail_with_request_id() {
    let (_redis, sb) = start().await;
    put_queue(&sb, queue("sales", &[])).await;
    put_agent(&sb, agent("ann", &[])).await;
    put_agent(&sb, agent("bob", &[])).await;
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    let ix = create(&sb, new_chat("sales", "visitor-1", "hello")).await;
    assert_eq!(ann.wait_offer().await.interaction.unwrap().id, ix.id);

    let mut bob = RawSession::open(&sb, login_req("bob", "tok-bob")).await.unwrap();
    assert!(matches!(bob.next().await.kind, Some(Ev::LoggedIn(_))));
    let Some(Ev::Ack(a)) = bob.next().await.kind else { panic!("expected login ack") };
    assert_eq!(a.request_id, "login");

    let foreign: Vec<(&str, Rq)> = vec![
        ("bob-accept-1", Rq::Accept(pb::AcceptOffer { interaction_id: ix.id.clone() })),
        ("bob-reject-2", Rq::Reject(pb::RejectOffer { interaction_id: ix.id.clone(), reason: "no".into() })),
        ("bob-reply-3", Rq::SendReply(pb::SendReply { interaction_id: ix.id.clone(), body: "hi".into() })),
        (
            "bob-complete-4",
            Rq::Complete(pb::CompleteInteraction { interaction_id: ix.id.clone(), ..Default::default() }),
        ),
        (
            "bob-transfer-5",
            Rq::Transfer(pb::TransferInteraction {
                interaction_id: ix.id.clone(),
                target: Some(pb::transfer_interaction::Target::Queue("sales".into())),
                ..Default::default()
            }),
        ),
    ];
    for (rid, kind) in foreign {
        assert!(bob.send(rid, kind).await);
        let err = loop {
            match bob.next().await.kind {
                Some(Ev::Error(e)) => break e,
                Some(Ev::Ack(a)) => panic!("{rid}: unexpected ack {a:?}"),
                _ => continue,
            }
        };
        assert_eq!(err.request_id, rid, "request_id must be echoed");
        assert_eq!(err.code, Code::FailedPrecondition as i32, "{rid}: {err:?}");
        assert!(!err.message.is_empty());
    }
    assert!(bob.send("bob-accept-unknown", Rq::Accept(pb::AcceptOffer { interaction_id: "no-such-ix".into() })).await);
    let err = loop {
        if let Some(Ev::Error(e)) = bob.next().await.kind {
            break e;
        }
    };
    assert_eq!(err.request_id, "bob-accept-unknown");
    assert_eq!(err.code, Code::NotFound as i32, "{err:?}");

    // Still ann's offer, untouched.
    let got = get_ix(&sb, &ix.id).await;
    assert_eq!(got.state, pb::InteractionState::Offered as i32);
    assert_eq!(got.agent_id, "ann");
    let ack = ann.accept(&ix.id).await.unwrap();
    assert_eq!(ack.interaction.unwrap().state, pb::InteractionState::Active as i32);
    drop(bob.tx);
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_presence_wrap_up_is_rejected() {
    let (redis, sb) = start().await;
    put_agent(&sb, agent("ann", &[])).await;
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    let r = ann
        .request(Rq::SetPresence(pb::SetPresence {
            presence: Some(pb::Presence { state: pb::PresenceState::WrapUp as i32, reason: String::new() }),
        }))
        .await;
    let (code, msg) = r.unwrap_err();
    assert_eq!(code, Code::InvalidArgument, "{msg}");
    assert!(msg.contains("presence"), "{msg}");
    let (code, _) = ann.request(Rq::SetPresence(pb::SetPresence { presence: None })).await.unwrap_err();
    assert_eq!(code, Code::InvalidArgument);
    let st = engine(&redis).await.agent_status("ann").await.unwrap();
    assert_eq!(st.presence, model::Presence::Ready, "a rejected request must not change presence");
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_delivery_failure_is_reported_and_message_kept() {
    let (_redis, sb) = start().await;
    put_queue(&sb, queue("sales", &[])).await;
    put_agent(&sb, agent("ann", &[])).await;
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    let ix = create(&sb, new_chat("sales", "visitor-1", "hello")).await;
    ann.wait_offer().await;
    ann.accept(&ix.id).await.unwrap();

    sb.chat.fail_with(Some("boom"));
    let (code, msg) = ann.reply(&ix.id, "sorry for the wait").await.unwrap_err();
    assert_eq!(code, Code::Unavailable, "{msg}");
    assert!(msg.contains("boom"), "{msg}");
    let got = get_ix(&sb, &ix.id).await;
    assert_eq!(got.messages.len(), 2, "{got:?}");
    let m = &got.messages[1];
    assert_eq!(m.seq, 2);
    assert_eq!(m.body, "sorry for the wait");
    assert_eq!(m.author, pb::Author::Agent as i32);
    assert_eq!(m.agent_id, "ann");
    assert!(sb.chat.delivered().is_empty());

    sb.chat.fail_with(None);
    let ack = ann.reply(&ix.id, "back again").await.unwrap();
    assert_eq!(ack.message.unwrap().seq, 3);
    assert_eq!(sb.chat.delivered().len(), 1);
    sb.stop().await;
}

// ------------------------------------------------------------------------------------------ 4. supervisor

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_snapshot_then_updates() {
    let (_redis, sb) = start().await;
    put_queue(&sb, queue("sales", &[])).await;
    put_queue(&sb, queue("support", &[])).await;
    put_agent(&sb, agent("ann", &[])).await;
    let mut sup = sb.supervisor().await;
    let mut w = sup.watch(pb::WatchRequest { queues: vec![], include_agents: true }).await.unwrap().into_inner();

    let s = sup.watch(pb::WatchRequest { queues: vec!["nowhere".into()], include_agents: false }).await.err();
    assert_eq!(s.map(|s| s.code()), Some(Code::NotFound), "watching an unknown queue");
    let mut seen_queues = std::collections::BTreeMap::new();
    let mut seen_agent = None;
    while seen_queues.len() < 2 || seen_agent.is_none() {
        match next_sup(&mut w).await {
            Sev::Queue(f) => {
                seen_queues.insert(f.queue.clone(), f);
            }
            Sev::Agent(a) => seen_agent = Some(a),
        }
    }
    assert_eq!(seen_queues.keys().map(String::as_str).collect::<Vec<_>>(), ["sales", "support"]);
    let sales = &seen_queues["sales"];
    assert_eq!((sales.waiting, sales.offered, sales.accepted), (0, 0, 0));
    assert!(sales.at.is_some());
    let a = seen_agent.unwrap();
    assert_eq!(a.agent_id, "ann");
    assert!(!a.connected);
    assert_eq!(presence_state(&a.presence), pb::PresenceState::Offline);

    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    wait_sup(&mut w, "ann connected and ready", |e| {
        matches!(e, Sev::Agent(a) if a.agent_id == "ann" && a.connected
            && presence_state(&a.presence) == pb::PresenceState::Ready)
    })
    .await;

    let ix = create(&sb, new_chat("sales", "visitor-1", "hello")).await;
    ann.wait_offer().await;
    ann.accept(&ix.id).await.unwrap();
    // Figures are pushed at most once a second per queue and agents as they change: collect both.
    let (mut figures, mut loaded) = (None, None);
    while figures.is_none() || loaded.is_none() {
        match next_sup(&mut w).await {
            Sev::Queue(f) if f.queue == "sales" && f.accepted == 1 => figures = Some(f),
            Sev::Agent(a) if a.agent_id == "ann" && a.load.get("chat") == Some(&1) => loaded = Some(a),
            _ => {}
        }
    }
    let (f, a) = (figures.unwrap(), loaded.unwrap());
    assert_eq!(f.offered, 1);
    assert_eq!(f.accepted, 1);
    assert_eq!(f.waiting, 0);
    assert_eq!(f.service_level_percent, Some(100.0));
    assert_eq!(a.capacity.get("chat"), Some(&3));
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_presence_reaches_the_desktop() {
    let (_redis, sb) = start().await;
    put_agent(&sb, agent("ann", &[])).await;
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    let mut sup = sb.supervisor().await;
    let st = sup
        .force_presence(pb::ForcePresenceRequest {
            agent_id: "ann".into(),
            presence: Some(pb::Presence { state: pb::PresenceState::NotReady as i32, reason: "coaching".into() }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(presence_state(&st.presence), pb::PresenceState::NotReady);
    assert_eq!(st.presence.as_ref().unwrap().reason, "coaching");
    let Ev::PresenceChanged(pc) =
        ann.wait_for("supervisor presence", |e| matches!(e, Ev::PresenceChanged(p) if p.cause == "supervisor")).await
    else {
        unreachable!()
    };
    assert_eq!(presence_state(&pc.presence), pb::PresenceState::NotReady);
    assert_eq!(pc.presence.unwrap().reason, "coaching");

    let r = sup
        .force_presence(pb::ForcePresenceRequest {
            agent_id: "ann".into(),
            presence: Some(pb::Presence { state: pb::PresenceState::WrapUp as i32, reason: String::new() }),
        })
        .await;
    expect_err(r, Code::InvalidArgument, "presence");
    let s = sup
        .force_presence(pb::ForcePresenceRequest {
            agent_id: "nobody".into(),
            presence: Some(pb::Presence { state: pb::PresenceState::Ready as i32, reason: String::new() }),
        })
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::NotFound, "{s:?}");

    // Without a desktop an agent cannot be made ready (nothing could reach it), and a logged-out
    // one cannot be made not ready; both say why and change nothing. Offline always works.
    put_agent(&sb, agent("cid", &[])).await;
    let force = |state: pb::PresenceState| pb::ForcePresenceRequest {
        agent_id: "cid".into(),
        presence: Some(pb::Presence { state: state as i32, reason: String::new() }),
    };
    let s = sup.force_presence(force(pb::PresenceState::Ready)).await.unwrap_err();
    assert_eq!(s.code(), Code::FailedPrecondition, "{s:?}");
    assert!(s.message().contains("no desktop"), "{s:?}");
    let s = sup.force_presence(force(pb::PresenceState::NotReady)).await.unwrap_err();
    assert_eq!(s.code(), Code::FailedPrecondition, "{s:?}");
    let st = sup.force_presence(force(pb::PresenceState::Offline)).await.unwrap().into_inner();
    assert_eq!((presence_state(&st.presence), st.connected), (pb::PresenceState::Offline, false));

    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_agent_closes_session_and_requeues_offer() {
    let (redis, sb) = start().await;
    put_queue(&sb, queue("sales", &[])).await;
    put_agent(&sb, agent("ann", &[])).await;
    put_agent(&sb, agent("bob", &[])).await;
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    let ix = create(&sb, new_chat("sales", "visitor-1", "hello")).await;
    assert_eq!(ann.wait_offer().await.interaction.unwrap().id, ix.id);
    let mut bob = sb.desktop("bob", "tok-bob").await;
    bob.ready().await;

    let st = sb
        .supervisor()
        .await
        .logout_agent(pb::LogoutAgentRequest { agent_id: "ann".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(presence_state(&st.presence), pb::PresenceState::Offline);

    let Ev::SessionClosed(c) = ann.wait_for("session closed", |e| matches!(e, Ev::SessionClosed(_))).await else {
        unreachable!()
    };
    assert_eq!(c.reason, "logged_out");
    assert!(
        ann.pending.iter().any(|e| matches!(&e.kind, Some(Ev::OfferRevoked(r)) if r.interaction_id == ix.id)),
        "the pending offer should be revoked before the close: {:?}",
        ann.pending
    );
    ann.wait_closed().await;
    assert!(ann.closed, "the stream must end after SessionClosed");

    let offer = bob.wait_offer().await;
    assert_eq!(offer.interaction.unwrap().id, ix.id);
    let got = get_ix(&sb, &ix.id).await;
    assert_eq!(got.state, pb::InteractionState::Offered as i32);
    assert_eq!(got.agent_id, "bob");
    let ann_st = engine(&redis).await.agent_status("ann").await.unwrap();
    assert_eq!(ann_st.presence, model::Presence::Offline);
    assert_eq!(ann_st.load.get(&model::Channel::Chat).copied().unwrap_or(0), 0);
    bob.accept(&ix.id).await.unwrap();

    let s = sb.supervisor().await.logout_agent(pb::LogoutAgentRequest { agent_id: "nobody".into() }).await.unwrap_err();
    assert_eq!(s.code(), Code::NotFound, "{s:?}");
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_and_reprioritize_waiting_interactions() {
    let (redis, sb) = start().await;
    let st = engine(&redis).await;
    put_queue(&sb, queue("q1", &[])).await;
    put_queue(&sb, queue("q2", &[])).await;
    let mut mail = queue("mail", &[]);
    mail.channels = vec![pb::Channel::Email as i32];
    put_queue(&sb, mail).await;
    let mut sup = sb.supervisor().await;

    // Distinct ages, oldest first.
    let a = create(&sb, new_chat("q1", "visitor-a", "a")).await;
    st.advance_clock(Duration::from_secs(1)).await.unwrap();
    let b = create(&sb, new_chat("q1", "visitor-b", "b")).await;
    st.advance_clock(Duration::from_secs(1)).await.unwrap();
    let c = create(&sb, new_chat("q1", "visitor-c", "c")).await;
    assert_eq!(waiting(&sb, "q1").await, [a.id.clone(), b.id.clone(), c.id.clone()]);

    let r = sup
        .reprioritize_interaction(pb::ReprioritizeInteractionRequest { interaction_id: c.id.clone(), priority: 10 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.priority, 10);
    assert_eq!(r.enqueued_at, c.enqueued_at, "reprioritizing keeps the age");
    assert_eq!(waiting(&sb, "q1").await, [c.id.clone(), a.id.clone(), b.id.clone()]);
    sup.reprioritize_interaction(pb::ReprioritizeInteractionRequest { interaction_id: b.id.clone(), priority: 10 })
        .await
        .unwrap();
    assert_eq!(waiting(&sb, "q1").await, [b.id.clone(), c.id.clone(), a.id.clone()], "same priority: oldest first");

    let r = sup
        .reprioritize_interaction(pb::ReprioritizeInteractionRequest { interaction_id: a.id.clone(), priority: 1001 })
        .await;
    expect_err(r, Code::InvalidArgument, "priority");

    let moved = sup
        .move_interaction(pb::MoveInteractionRequest {
            interaction_id: a.id.clone(),
            queue: "q2".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(moved.queue, "q2");
    assert_eq!(moved.state, pb::InteractionState::Queued as i32);
    assert_eq!(moved.enqueued_at, a.enqueued_at, "a move keeps enqueued_at");
    assert_eq!(get_ix(&sb, &a.id).await.enqueued_at, a.enqueued_at);
    assert_eq!(waiting(&sb, "q2").await, [a.id.as_str()]);
    assert_eq!(waiting(&sb, "q1").await, [b.id.clone(), c.id.clone()]);
    assert_eq!(waiting(&sb, "").await, [b.id.clone(), c.id.clone(), a.id.clone()]);

    let r = sup
        .move_interaction(pb::MoveInteractionRequest {
            interaction_id: b.id.clone(),
            queue: "nowhere".into(),
            ..Default::default()
        })
        .await;
    expect_err(r, Code::NotFound, "queue");
    let r = sup
        .move_interaction(pb::MoveInteractionRequest {
            interaction_id: b.id.clone(),
            queue: "mail".into(),
            ..Default::default()
        })
        .await;
    expect_err(r, Code::InvalidArgument, "queue");
    let s = sup
        .move_interaction(pb::MoveInteractionRequest {
            interaction_id: "no-such-ix".into(),
            queue: "q2".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::NotFound, "{s:?}");
    assert_eq!(waiting(&sb, "q1").await, [b.id.clone(), c.id.clone()], "failed moves change nothing");
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_withdraw_abandons() {
    let (_redis, sb) = start().await;
    put_queue(&sb, queue("sales", &[])).await;
    let ix = create(&sb, new_chat("sales", "visitor-1", "hello")).await;
    let mut sup = sb.supervisor().await;
    let w = sup
        .withdraw_interaction(pb::SupervisorWithdrawRequest { interaction_id: ix.id.clone(), reason: String::new() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(w.state, pb::InteractionState::Abandoned as i32);
    assert_eq!(w.end_reason, "supervisor");
    assert!(waiting(&sb, "sales").await.is_empty());
    assert_eq!(get_ix(&sb, &ix.id).await.state, pb::InteractionState::Abandoned as i32);
    let f = sup.get_queue_figures(pb::GetQueueFiguresRequest { queue: "sales".into() }).await.unwrap().into_inner();
    assert_eq!(f.abandoned, 1);
    assert_eq!(f.waiting, 0);
    assert_eq!(f.service_level_percent, Some(0.0));
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_figures_after_one_quick_accept() {
    let (_redis, sb) = start().await;
    put_queue(&sb, queue("sales", &[])).await;
    put_agent(&sb, agent("ann", &[])).await;
    let mut sup = sb.supervisor().await;
    let f = sup.get_queue_figures(pb::GetQueueFiguresRequest { queue: "sales".into() }).await.unwrap().into_inner();
    assert_eq!(f.service_level_percent, None, "nothing answered or abandoned yet");

    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    let ix = create(&sb, new_chat("sales", "visitor-1", "hello")).await;
    ann.wait_offer().await;
    ann.accept(&ix.id).await.unwrap();
    let f = sup.get_queue_figures(pb::GetQueueFiguresRequest { queue: "sales".into() }).await.unwrap().into_inner();
    assert_eq!(f.queue, "sales");
    assert_eq!((f.offered, f.accepted, f.waiting), (1, 1, 0));
    assert_eq!(f.service_level_percent, Some(100.0));
    assert!(f.average_speed_of_answer_secs < 20.0, "{f:?}");
    assert_eq!(f.agents_by_presence.get("ready"), Some(&1), "{f:?}");
    assert!(f.occupancy_percent > 0.0, "{f:?}");

    let s = sup.get_queue_figures(pb::GetQueueFiguresRequest { queue: "nowhere".into() }).await.unwrap_err();
    assert_eq!(s.code(), Code::NotFound, "{s:?}");
    sb.stop().await;
}

// ------------------------------------------------------------------------------------------ 5. ops

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_health_and_reflection() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let (_redis, sb) = start().await;
    let channel = tonic::transport::Endpoint::from_shared(sb.endpoint()).unwrap().connect().await.unwrap();
    let mut health = HealthClient::new(channel.clone());
    for service in ["", "switchboard.v1.AgentDesktop", "switchboard.v1.Supervisor", "switchboard.v1.Admin"] {
        let r = health
            .check(tonic_health::pb::HealthCheckRequest { service: service.into() })
            .await
            .unwrap_or_else(|s| panic!("health check {service:?}: {s:?}"))
            .into_inner();
        assert_eq!(r.status, ServingStatus::Serving as i32, "service {service:?}");
    }
    let s = health.check(tonic_health::pb::HealthCheckRequest { service: "no.such.Service".into() }).await.unwrap_err();
    assert_eq!(s.code(), Code::NotFound, "{s:?}");

    let req = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    // Reflection answers any authenticated caller, not anonymous ones.
    let mut anon = ServerReflectionClient::new(channel);
    let s = anon.server_reflection_info(tokio_stream::iter(vec![req.clone()])).await.unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated, "{s:?}");
    let mut refl = ServerReflectionClient::new(sb.with_key(CHANNEL_KEY).await);
    let mut resp = refl.server_reflection_info(tokio_stream::iter(vec![req])).await.unwrap().into_inner();
    let msg = resp.message().await.unwrap().expect("a reflection response");
    let Some(MessageResponse::ListServicesResponse(list)) = msg.message_response else {
        panic!("unexpected reflection response {msg:?}")
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    // Exactly what this port serves: the CRM store's service is served elsewhere, so it is not
    // listed here.
    assert_eq!(
        names,
        [
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "switchboard.cti.v1.Cti",
            "switchboard.v1.Admin",
            "switchboard.v1.AgentDesktop",
            "switchboard.v1.Interactions",
            "switchboard.v1.Supervisor",
        ]
    );

    // v1alpha too: grpcio-reflection, older grpcurl, Postman and evans ask only that.
    {
        use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient as AlphaClient;
        use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest as AlphaRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse as AlphaResponse;
        let req = tonic_reflection::pb::v1alpha::ServerReflectionRequest {
            host: String::new(),
            message_request: Some(AlphaRequest::ListServices(String::new())),
        };
        let mut alpha = AlphaClient::new(sb.with_key(CHANNEL_KEY).await);
        let mut resp = alpha.server_reflection_info(tokio_stream::iter(vec![req])).await.unwrap().into_inner();
        let msg = resp.message().await.unwrap().expect("a v1alpha reflection response");
        let Some(AlphaResponse::ListServicesResponse(list)) = msg.message_response else {
            panic!("unexpected v1alpha reflection response {msg:?}")
        };
        let alpha_names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        for name in ["switchboard.v1.AgentDesktop", "switchboard.cti.v1.Cti", "grpc.health.v1.Health"] {
            assert!(alpha_names.iter().any(|n| n == name), "{name} not listed over v1alpha: {alpha_names:?}");
        }
    }
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_probes_and_metrics() {
    let (_redis, sb) = start().await;
    let (code, _) = sb.http("/healthz").await;
    assert_eq!(code, 200);
    let (code, body) = sb.http("/readyz").await;
    assert_eq!(code, 200, "{body}");

    put_agent(&sb, agent("ann", &[])).await;
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    let _ = ann.accept("no-such-ix").await;
    let (code, body) = sb.http("/metrics").await;
    assert_eq!(code, 200);
    assert!(body.contains("switchboard_agent_requests_total"), "metrics: {body}");
    assert!(body.lines().any(|l| l.starts_with("switchboard_agent_requests_total") && l.contains("set_presence")));
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_closes_desktop_sessions() {
    let (redis, sb) = start().await;
    put_agent(&sb, agent("ann", &[])).await;
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    let stopping = tokio::spawn(sb.stop());
    assert_eq!(ann.wait_closed().await.as_deref(), Some("shutdown"));
    tokio::time::timeout(PATIENCE, stopping).await.expect("stop finishes").expect("stop does not panic");
    let st = engine(&redis).await.agent_status("ann").await.unwrap();
    assert!(!st.connected, "the session must be recorded as ended: {st:?}");
    assert_ne!(st.presence, model::Presence::Offline, "offline only after the grace period, not at once");
}
