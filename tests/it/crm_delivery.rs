//! The interaction log reaching the CRM, and screen-pops coming back from it, with real
//! instances, a real Redis and a real CRM store (the built-in one on SQLite) — including a CRM
//! that is slow, down, or whose deliverer is killed mid-flight.

use redis::streams::StreamId;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::common::*;
use switchboard::api::pb;
use switchboard::crm::pb as crm_pb;
use switchboard_crm::service::CrmService;
use switchboard_crm::{CrmDb, CrmOptions};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

/// A CRM store in front of the built-in one that the test can slow down or take down.
#[derive(Clone)]
struct FlakyCrm {
    inner: CrmService,
    down: Arc<AtomicBool>,
    find_delay_ms: Arc<AtomicU64>,
    log_delay_ms: Arc<AtomicU64>,
    log_calls: Arc<AtomicU64>,
    duplicates: Arc<AtomicU64>,
    /// Refuse, as invalid, any batch holding an event of this type.
    refuse_type: Arc<std::sync::Mutex<Option<String>>>,
}

#[tonic::async_trait]
impl crm_pb::crm_store_server::CrmStore for FlakyCrm {
    async fn find_contact(&self, r: Request<crm_pb::FindContactRequest>) -> Result<Response<crm_pb::Contact>, Status> {
        tokio::time::sleep(Duration::from_millis(self.find_delay_ms.load(Ordering::SeqCst))).await;
        self.inner.find_contact(r).await
    }
    async fn upsert_contact(
        &self,
        r: Request<crm_pb::UpsertContactRequest>,
    ) -> Result<Response<crm_pb::Contact>, Status> {
        self.inner.upsert_contact(r).await
    }
    async fn get_contact_history(
        &self,
        r: Request<crm_pb::GetContactHistoryRequest>,
    ) -> Result<Response<crm_pb::GetContactHistoryResponse>, Status> {
        self.inner.get_contact_history(r).await
    }
    async fn log_events(
        &self,
        r: Request<crm_pb::LogEventsRequest>,
    ) -> Result<Response<crm_pb::LogEventsResponse>, Status> {
        self.log_calls.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(Status::unavailable("crm is down (test)"));
        }
        let refuse = self.refuse_type.lock().unwrap().clone();
        if let Some(t) = refuse
            && r.get_ref().events.iter().any(|e| e.r#type == t)
        {
            return Err(Status::invalid_argument(format!("events[0].type: {t} is not accepted here (test)")));
        }
        tokio::time::sleep(Duration::from_millis(self.log_delay_ms.load(Ordering::SeqCst))).await;
        let resp = self.inner.log_events(r).await?;
        self.duplicates.fetch_add(u64::from(resp.get_ref().duplicates), Ordering::SeqCst);
        Ok(resp)
    }
    async fn erase_contact(
        &self,
        r: Request<crm_pb::EraseContactRequest>,
    ) -> Result<Response<crm_pb::EraseContactResponse>, Status> {
        self.inner.erase_contact(r).await
    }
    async fn list_audit_events(
        &self,
        r: Request<crm_pb::ListAuditEventsRequest>,
    ) -> Result<Response<crm_pb::ListAuditEventsResponse>, Status> {
        self.inner.list_audit_events(r).await
    }
}

struct ExternalCrm {
    db: CrmDb,
    crm: FlakyCrm,
    endpoint: String,
    _stop: tokio_util::sync::DropGuard,
    _dir: tempfile::TempDir,
}

async fn external_crm() -> ExternalCrm {
    let dir = tempfile::tempdir().unwrap();
    let db = CrmDb::open(CrmOptions {
        database_url: format!("sqlite://{}/crm.db?mode=rwc", dir.path().display()),
        default_region: Some("DE".into()),
        create_unknown_contacts: true,
    })
    .await
    .unwrap();
    let crm = FlakyCrm {
        inner: CrmService { db: db.clone() },
        down: Arc::default(),
        find_delay_ms: Arc::default(),
        log_delay_ms: Arc::default(),
        log_calls: Arc::default(),
        duplicates: Arc::default(),
        refuse_type: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let stop = CancellationToken::new();
    let svc = crm.clone();
    let s = stop.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(crm_pb::crm_store_server::CrmStoreServer::new(svc))
            .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), s.cancelled_owned())
            .await
            .unwrap();
    });
    ExternalCrm { db, crm, endpoint, _stop: stop.drop_guard(), _dir: dir }
}

async fn setup_sales(sb: &TestServer, agents: &[&str]) {
    let mut admin = sb.admin().await;
    admin.put_queue(pb::PutQueueRequest { queue: Some(queue("sales", &[])), allow_update: true }).await.unwrap();
    for a in agents {
        admin.put_agent(pb::PutAgentRequest { agent: Some(agent(a, &[])), allow_update: true }).await.unwrap();
    }
}

/// One full chat: offered, accepted, a reply, completed with `disposition`.
async fn handle_one(sb: &TestServer, desk: &mut Desktop, customer: &str, body: &str, disposition: &str) -> String {
    let mut ixs = sb.interactions().await;
    let created = ixs.create_interaction(new_chat("sales", customer, body)).await.unwrap().into_inner();
    let offer = desk.wait_offer().await;
    let id = offer.interaction.unwrap().id;
    assert_eq!(id, created.id);
    desk.accept(&id).await.unwrap();
    desk.reply(&id, "Happy to help").await.unwrap();
    desk.complete(&id, disposition).await.unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offer_shows_the_callers_history_from_the_builtin_crm() {
    let redis = RedisServer::start();
    let sb = TestServer::start(&redis.url).await;
    setup_sales(&sb, &["ann"]).await;
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    let first = handle_one(&sb, &mut ann, "visitor-42", "My invoice is wrong", "refund issued").await;

    // Once the CRM has acknowledged everything (the log is trimmed as it is), the next offer for
    // the same customer shows the first interaction.
    eventually("log delivered", Duration::from_secs(15), || async { (log_len(&redis).await == 0).then_some(()) }).await;
    let mut desk = pb::agent_desktop_client::AgentDesktopClient::new(sb.with_key(ADMIN_KEY).await);
    let pop =
        desk.get_screen_pop(pb::GetScreenPopRequest { interaction_id: first.clone() }).await.unwrap().into_inner();
    assert_eq!(pop.status, pb::ScreenPopStatus::Available as i32);
    assert!(pop.history.is_empty(), "an interaction is not its own history: {:?}", pop.history);
    let contact = pop.contact.clone().expect("contact created on first contact");
    assert!(contact.identities.iter().any(|i| i.address == "visitor-42"));

    let mut ixs = sb.interactions().await;
    ixs.create_interaction(new_chat("sales", "visitor-42", "Me again")).await.unwrap();
    let offer = ann.wait_offer().await;
    let sp = offer.screen_pop.unwrap();
    assert_eq!(sp.status, pb::ScreenPopStatus::Available as i32);
    assert_eq!(sp.contact.unwrap().id, contact.id);
    assert_eq!(sp.history.len(), 1, "{:?}", sp.history);
    let h = &sp.history[0];
    assert_eq!(h.interaction_id, first);
    assert_eq!(h.disposition, "refund issued");
    assert_eq!(h.agent_id, "ann");
    assert_eq!(h.queue, "sales");
    assert_eq!(h.summary, "My invoice is wrong");
    assert!(h.ended_at.is_some());
    drop(desk.get_screen_pop(pb::GetScreenPopRequest { interaction_id: "nope".into() }).await.unwrap_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_crm_does_not_hold_the_offer_back() {
    let redis = RedisServer::start();
    let crm = external_crm().await;
    let mut cfg = test_config(&redis.url);
    cfg.crm.endpoint = crm.endpoint.clone();
    cfg.crm.screen_pop_deadline_ms = 250;
    let sb = TestServer::start_with(cfg).await;
    setup_sales(&sb, &["ann"]).await;
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    // Far beyond the deadline: if the offer waited for the look-up, it would say AVAILABLE.
    crm.crm.find_delay_ms.store(5_000, Ordering::SeqCst);
    let mut ixs = sb.interactions().await;
    let created = ixs.create_interaction(new_chat("sales", "visitor-7", "hi")).await.unwrap().into_inner();
    let offer = ann.wait_offer().await;
    assert_eq!(offer.interaction.unwrap().id, created.id);
    assert_eq!(offer.screen_pop.unwrap().status, pb::ScreenPopStatus::Unavailable as i32);
    // The agent asks again once the CRM is back to speed.
    crm.crm.find_delay_ms.store(0, Ordering::SeqCst);
    let mut desk = pb::agent_desktop_client::AgentDesktopClient::new(sb.with_key(ADMIN_KEY).await);
    let pop = desk.get_screen_pop(pb::GetScreenPopRequest { interaction_id: created.id }).await.unwrap().into_inner();
    assert_eq!(pop.status, pb::ScreenPopStatus::Available as i32);
}

/// Every event in the Redis log right now: (event id, interaction, type), in log order.
async fn log_snapshot(redis: &RedisServer) -> Vec<(String, String, String)> {
    let mut con = redis.client().await;
    let r: redis::streams::StreamRangeReply =
        redis::AsyncCommands::xrange_all(&mut con, "sb:{default}:events").await.unwrap();
    switchboard_engine::events::entries_events(&r.ids).into_iter().map(|e| (e.id, e.interaction_id, e.typ)).collect()
}

async fn log_len(redis: &RedisServer) -> u64 {
    let mut con = redis.client().await;
    redis::AsyncCommands::xlen(&mut con, "sb:{default}:events").await.unwrap()
}

/// The CRM holds exactly the events of `expected`, and each interaction's in log order.
async fn assert_crm_has_exactly(db: &CrmDb, expected: &[(String, String, String)]) {
    let total = db.count_events().await.unwrap();
    assert_eq!(total as usize, expected.len(), "events stored once each");
    let mut by_ix: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for (id, ix, _) in expected {
        if !ix.is_empty() {
            by_ix.entry(ix).or_default().push(format!("sb:{{default}}:{id}"));
        }
    }
    for (ix, ids) in by_ix {
        let got: Vec<String> = db.event_types(ix).await.unwrap().into_iter().map(|(id, _)| id).collect();
        assert_eq!(got, ids, "events of {ix} in order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crm_down_with_traffic_then_every_event_arrives_once_in_order() {
    let redis = RedisServer::start();
    let crm = external_crm().await;
    crm.crm.down.store(true, Ordering::SeqCst);
    let mut cfg = test_config(&redis.url);
    cfg.crm.endpoint = crm.endpoint.clone();
    let sb = TestServer::start_with(cfg).await;
    setup_sales(&sb, &["ann"]).await;
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    for i in 0..12 {
        handle_one(&sb, &mut ann, &format!("+49 151 1234567{}", i % 3), &format!("question {i}"), "done").await;
    }
    let mut ixs = sb.interactions().await;
    let gone = ixs.create_interaction(new_chat("sales", "visitor-x", "bye")).await.unwrap().into_inner();
    ixs.withdraw_interaction(pb::WithdrawInteractionRequest { interaction_id: gone.id, reason: String::new() })
        .await
        .unwrap();
    // The deliverer keeps trying; nothing is trimmed while the CRM has not acknowledged.
    eventually("delivery attempts", Duration::from_secs(15), || async {
        (crm.crm.log_calls.load(Ordering::SeqCst) >= 2).then_some(())
    })
    .await;
    let expected = log_snapshot(&redis).await;
    assert!(expected.len() > 12 * 6, "{} events", expected.len());
    assert_eq!(crm.db.count_events().await.unwrap(), 0);

    crm.crm.down.store(false, Ordering::SeqCst);
    eventually("log delivered and trimmed", Duration::from_secs(60), || async {
        (log_len(&redis).await == 0).then_some(())
    })
    .await;
    assert_crm_has_exactly(&crm.db, &expected).await;
    // Phone numbers written one way found one contact per number.
    let c = crm.db.find_contact(switchboard::model::Channel::Chat, "+49 151 12345670").await.unwrap();
    let (history, _) = crm.db.history(&c.id, 100, None).await.unwrap();
    assert_eq!(history.len(), 4);
    assert!(history.iter().all(|h| h.outcome == "completed" && h.disposition == "done"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliverer_killed_mid_delivery_loses_nothing_doubles_nothing() {
    let redis = RedisServer::start();
    let crm = external_crm().await;
    // Slow deliveries, so the kill lands while one is in flight.
    crm.crm.log_delay_ms.store(300, Ordering::SeqCst);
    let config = |instance: &str| {
        let mut cfg = test_config(&redis.url);
        cfg.crm.endpoint = crm.endpoint.clone();
        cfg.server.instance_id = instance.into();
        cfg
    };
    let a = TestServer::start_with(config("a")).await;
    setup_sales(&a, &["ann"]).await;
    // a holds the delivery lease before b exists.
    eventually("a delivers", Duration::from_secs(15), || async {
        (crm.crm.log_calls.load(Ordering::SeqCst) >= 1).then_some(())
    })
    .await;
    let b = TestServer::start_with(config("b")).await;
    let mut ann = b.desktop("ann", "tok-ann").await;
    ann.ready().await;
    for i in 0..6 {
        handle_one(&b, &mut ann, &format!("visitor-{i}"), "hello", "ok").await;
    }
    // Kill a while a delivery is in flight. If a has already caught up (a fast machine, or a slow
    // one that let it), nothing is in flight: one more interaction gives it something to deliver.
    let mut next = 6;
    let expected_so_far = loop {
        let snapshot = log_snapshot(&redis).await;
        let calls = crm.crm.log_calls.load(Ordering::SeqCst);
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while crm.crm.log_calls.load(Ordering::SeqCst) == calls && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if crm.crm.log_calls.load(Ordering::SeqCst) > calls {
            break snapshot;
        }
        assert!(next < 20, "a never started another delivery");
        handle_one(&b, &mut ann, &format!("visitor-{next}"), "hello", "ok").await;
        next += 1;
    };
    a.kill();
    // More traffic while nobody delivers; b takes over once a's lease lapses.
    for i in next..next + 4 {
        handle_one(&b, &mut ann, &format!("visitor-{i}"), "hello", "ok").await;
    }
    let mut expected = expected_so_far;
    for e in log_snapshot(&redis).await {
        if !expected.iter().any(|x| x.0 == e.0) {
            expected.push(e);
        }
    }
    eventually("b delivered everything", Duration::from_secs(60), || async {
        (log_len(&redis).await == 0 && crm.db.count_events().await.unwrap() as usize >= expected.len()).then_some(())
    })
    .await;
    // Events emitted before the first snapshot but already trimmed are not in `expected`; they
    // were delivered by a and are stored too. Everything expected is there exactly once, in order.
    let total = crm.db.count_events().await.unwrap() as usize;
    assert!(total >= expected.len());
    let mut by_ix: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for (id, ix, _) in &expected {
        if !ix.is_empty() {
            by_ix.entry(ix).or_default().push(format!("sb:{{default}}:{id}"));
        }
    }
    for (ix, ids) in by_ix {
        let got: Vec<String> = crm.db.event_types(ix).await.unwrap().into_iter().map(|(id, _)| id).collect();
        let got_expected: Vec<&String> = got.iter().filter(|g| ids.contains(g)).collect();
        assert_eq!(got_expected.len(), ids.len(), "{ix}: every event stored once");
        assert_eq!(got_expected, ids.iter().collect::<Vec<_>>(), "{ix}: in order");
    }
    b.stop().await;
}

/// One chat handled (from customer `customer`) while the CRM refuses, as invalid, every batch
/// holding an event of `kind`; once the log is delivered: the CRM, the interaction, and what was
/// parked in `events_dead`.
async fn handled_while_the_crm_refuses(kind: &str, customer: &str) -> (ExternalCrm, String, Vec<StreamId>) {
    let redis = RedisServer::start();
    let crm = external_crm().await;
    *crm.crm.refuse_type.lock().unwrap() = Some(kind.into());
    let mut cfg = test_config(&redis.url);
    cfg.crm.endpoint = crm.endpoint.clone();
    let sb = TestServer::start_with(cfg).await;
    setup_sales(&sb, &["ann"]).await;
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    let id = handle_one(&sb, &mut ann, customer, "hello", "ok").await;
    eventually("log delivered", Duration::from_secs(30), || async { (log_len(&redis).await == 0).then_some(()) }).await;
    let mut con = redis.client().await;
    let dead: redis::streams::StreamRangeReply =
        redis::AsyncCommands::xrange_all(&mut con, "sb:{default}:events_dead").await.unwrap();
    (crm, id, dead.ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_the_crm_refuses_is_parked_and_the_rest_flows() {
    let (crm, id, dead) = handled_while_the_crm_refuses("message_out", "visitor-9").await;
    let types: Vec<String> = crm.db.event_types(&id).await.unwrap().into_iter().map(|(_, t)| t).collect();
    assert!(types.contains(&"created".to_string()) && types.contains(&"completed".to_string()), "{types:?}");
    assert!(!types.contains(&"message_out".to_string()), "{types:?}");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].get::<String>("type").as_deref(), Some("message_out"));
    assert!(dead[0].get::<String>("reason").unwrap().contains("not accepted"));
}

/// A routing call's events are one entry of the log (a create offered at once: created, its first
/// message, queued, offered). One the CRM refuses in the middle of an entry is parked under its own
/// id, the entry's other events still arrive, and the entry is acknowledged once its last one is
/// delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_refused_in_the_middle_of_a_calls_entry_is_parked_alone() {
    let (crm, id, dead) = handled_while_the_crm_refuses("queued", "visitor-7").await;
    let got: Vec<(String, String)> = crm.db.event_types(&id).await.unwrap();
    let types: Vec<&str> = got.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(types[..3], ["created", "message_in", "offered"], "{got:?}");
    assert!(types.contains(&"completed"), "{got:?}");
    // The create's entry: created, its first message, queued (refused), offered.
    let created = &got[0].0;
    assert_eq!((&got[1].0, &got[2].0), (&format!("{created}.1"), &format!("{created}.3")), "{got:?}");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].get::<String>("type").as_deref(), Some("queued"));
    let parked = dead[0].get::<String>("id").unwrap();
    assert_eq!(format!("sb:{{default}}:{parked}"), format!("{created}.2"));
}

/// The daemon's key at the audited CRM (role `crm`: it logs, it may not read the trail).
const DAEMON_CRM_KEY: &str = "test-daemon-crm-key-0123456789abcdef01234";
/// The auditor's key there (role `admin`).
const AUDITOR_KEY: &str = "test-auditor-key-0123456789abcdef01234567";

async fn audited_crm() -> AuthedCrm {
    AuthedCrm::start(DAEMON_CRM_KEY, AUDITOR_KEY).await
}

/// The whole audit trail, page by page.
async fn audit_trail(endpoint: &str) -> Vec<crm_pb::Event> {
    let ch = tonic::transport::Endpoint::from_shared(endpoint.to_string()).unwrap().connect().await.unwrap();
    let mut crm = crm_pb::crm_store_client::CrmStoreClient::with_interceptor(ch, bearer(AUDITOR_KEY));
    let mut events = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = crm
            .list_audit_events(crm_pb::ListAuditEventsRequest { page_token, ..Default::default() })
            .await
            .expect("the auditor reads the trail")
            .into_inner();
        if page.events.is_empty() {
            return events;
        }
        events.extend(page.events);
        page_token = page.next_page_token;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_supervisor_and_desktop_actions_reach_the_crm_audit_trail() {
    let redis = RedisServer::start();
    let crm = audited_crm().await;
    let mut cfg = test_config(&redis.url);
    cfg.crm.endpoint = crm.endpoint.clone();
    cfg.crm.api_key = switchboard::config::Secret(DAEMON_CRM_KEY.into());
    let sb = TestServer::start_with(cfg).await;

    let mut admin = sb.admin().await;
    for q in ["sales", "support"] {
        admin.put_queue(pb::PutQueueRequest { queue: Some(queue(q, &[])), allow_update: false }).await.unwrap();
    }
    admin.put_agent(pb::PutAgentRequest { agent: Some(agent("ann", &[])), allow_update: false }).await.unwrap();
    // Logged in but not ready: the chat waits, so a supervisor can move it.
    let _ann = sb.desktop("ann", "tok-ann").await;
    let mut ixs = sb.interactions().await;
    let chat = ixs.create_interaction(new_chat("sales", "visitor-audit", "hello")).await.unwrap().into_inner();
    sb.supervisor()
        .await
        .move_interaction(pb::MoveInteractionRequest {
            interaction_id: chat.id.clone(),
            queue: "support".into(),
            clear_exclusions: false,
        })
        .await
        .unwrap();

    let trail = eventually("the actions in the CRM's audit trail", Duration::from_secs(30), || async {
        let trail = audit_trail(&crm.endpoint).await;
        let has = |t: &str| trail.iter().any(|e| e.r#type == t);
        (has("agent_created") && has("login") && has("moved")).then_some(trail)
    })
    .await;
    let one = |t: &str, key: &str| -> &crm_pb::Event {
        let found: Vec<&crm_pb::Event> =
            trail.iter().filter(|e| e.r#type == t && (e.agent_id == key || e.queue == key)).collect();
        assert_eq!(found.len(), 1, "one {t} of {key} in {trail:#?}");
        found[0]
    };
    let who = |e: &crm_pb::Event| (e.actor.clone(), e.actor_address.clone());
    let admin_at = ("admin:test-admin".to_string(), "127.0.0.1".to_string());
    for q in ["sales", "support"] {
        assert_eq!(who(one("queue_created", q)), admin_at);
    }
    let created = one("agent_created", "ann");
    assert_eq!(who(created), admin_at);
    let details: serde_json::Value = serde_json::from_str(&created.details_json).unwrap();
    assert_eq!(details["token_changed"], serde_json::json!(true), "{details}");
    assert!(details["after"].as_str().is_some_and(|a| a.contains("\"ann\"")), "{details}");
    assert!(!created.details_json.contains("tok-ann"), "the token is not in the trail: {}", created.details_json);

    let moved = one("moved", "support");
    assert_eq!(who(moved), ("supervisor:test-supervisor".to_string(), "127.0.0.1".to_string()));
    assert_eq!(moved.interaction_id, chat.id);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&moved.details_json).unwrap()["from_queue"], "sales");

    let login = one("login", "ann");
    assert!(login.at.is_some(), "{login:?}");
    // What the routing did on its own (queued, the customer's message) is not the trail's.
    for e in &trail {
        assert!(
            !e.actor.is_empty()
                || ["login", "logout", "disconnected", "instance_lost", "instance_restarted"]
                    .contains(&e.r#type.as_str()),
            "not an audit event: {e:?}"
        );
        assert!(!e.details_json.contains("hello"), "a message body in the trail: {e:?}");
    }
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_crm_is_given_up_on_after_the_deadline_and_gets_everything_once_when_it_answers() {
    let redis = RedisServer::start();
    let crm = external_crm().await;
    // Frozen: every call hangs (as a CRM stopped with SIGSTOP would), until the test thaws it.
    crm.crm.log_delay_ms.store(3_600_000, Ordering::SeqCst);
    let mut cfg = test_config(&redis.url);
    cfg.crm.endpoint = crm.endpoint.clone();
    cfg.crm.delivery_timeout_ms = 300;
    let sb = TestServer::start_with(cfg).await;
    setup_sales(&sb, &["ann"]).await;
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    for i in 0..3 {
        handle_one(&sb, &mut ann, &format!("visitor-{i}"), "hello", "done").await;
    }
    // The deliverer does not wait on the frozen call: it gives up and tries again, and again.
    eventually("delivery given up on and retried", Duration::from_secs(20), || async {
        (crm.crm.log_calls.load(Ordering::SeqCst) >= 3).then_some(())
    })
    .await;
    let expected = log_snapshot(&redis).await;
    assert!(!expected.is_empty());
    assert_eq!(crm.db.count_events().await.unwrap(), 0, "nothing stored while frozen");

    crm.crm.log_delay_ms.store(0, Ordering::SeqCst);
    eventually("log delivered and trimmed", Duration::from_secs(60), || async {
        (log_len(&redis).await == 0).then_some(())
    })
    .await;
    assert_crm_has_exactly(&crm.db, &expected).await;
}
