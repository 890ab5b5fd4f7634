//! The CTI hook alone (no SIP platform): a telephony system routes calls, watches ring
//! instructions and reports what happens on the phone, against a real daemon and Redis. Agents
//! are on desktop streams; their phones are whatever the events say.

use crate::common::*;
use switchboard::api::cti::pb as cti;
use switchboard::api::pb;
use switchboard::api::pb::agent_event::Kind as Ev;
use tokio::sync::mpsc;
use tonic::Code;

pub(crate) type Cti = cti::cti_client::CtiClient<Authed>;

pub(crate) const SUPPORT_LINE: &str = "+49 30 1000";
const VOICEMAIL: &str = "sip:voicemail@pbx.test";

async fn start() -> (RedisServer, TestServer) {
    let redis = RedisServer::start();
    let mut cfg = test_config(&redis.url);
    cfg.cti.default_destination = VOICEMAIL.into();
    cfg.cti.routing_points = vec![switchboard::channels::voice::config::RoutingPoint {
        name: String::new(),
        dialled: vec![SUPPORT_LINE.into()],
        queue: "support".into(),
        priority: None,
    }];
    let sb = TestServer::start_with(cfg).await;
    let mut admin = sb.admin().await;
    for q in ["support", "sales"] {
        admin.put_queue(pb::PutQueueRequest { queue: Some(queue(q, &[])), allow_update: true }).await.unwrap();
    }
    for (id, device, skills) in [("ann", "1001", vec![]), ("bob", "sip:bob@pbx.test", vec![])] {
        let spec = pb::Agent { devices: vec![device.into()], ..agent(id, &skills) };
        admin.put_agent(pb::PutAgentRequest { agent: Some(spec), allow_update: true }).await.unwrap();
    }
    (redis, sb)
}

pub(crate) async fn pbx(sb: &TestServer) -> Cti {
    cti::cti_client::CtiClient::new(sb.with_key(TELEPHONY_KEY).await)
}

pub(crate) fn route_req(call_id: &str, caller: &str) -> cti::RouteRequest {
    cti::RouteRequest {
        call_id: call_id.into(),
        caller: caller.into(),
        dialled: SUPPORT_LINE.into(),
        attempt: 1,
        ..Default::default()
    }
}

/// A PublishEvents stream: send events, read their acks in order.
pub(crate) struct Events {
    tx: mpsc::Sender<cti::TelephonyEvent>,
    acks: tonic::Streaming<cti::EventAck>,
    n: u64,
}

impl Events {
    pub(crate) async fn open(c: &mut Cti) -> Events {
        let (tx, rx) = mpsc::channel(16);
        let acks = c.publish_events(tokio_stream::wrappers::ReceiverStream::new(rx)).await.unwrap().into_inner();
        Events { tx, acks, n: 0 }
    }

    pub(crate) async fn send(&mut self, id: &str, event: cti::telephony_event::Event) -> cti::EventAck {
        self.n += 1;
        let e = cti::TelephonyEvent { event_id: id.into(), at: None, event: Some(event) };
        self.tx.send(e).await.unwrap();
        let ack = tokio::time::timeout(PATIENCE, self.acks.message()).await.expect("ack in time").unwrap().unwrap();
        assert_eq!(ack.event_id, id);
        ack
    }

    pub(crate) async fn call(
        &mut self,
        id: &str,
        call_id: &str,
        seq: u64,
        agent: &str,
        kind: cti::call_event::Kind,
    ) -> cti::EventAck {
        let c = cti::CallEvent {
            call_id: call_id.into(),
            sequence: seq,
            agent_id: agent.into(),
            kind: Some(kind),
            ..Default::default()
        };
        self.send(id, cti::telephony_event::Event::Call(c)).await
    }
}

pub(crate) fn outcome(a: &cti::EventAck) -> cti::Outcome {
    cti::Outcome::try_from(a.outcome).unwrap()
}

fn ring_of(r: &cti::RouteResponse) -> cti::RingAgent {
    match &r.action {
        Some(cti::route_response::Action::Ring(ring)) => ring.clone(),
        other => panic!("expected a ring, got {other:?}"),
    }
}

pub(crate) async fn next_instruction(watch: &mut tonic::Streaming<cti::RouteInstruction>) -> cti::RouteInstruction {
    tokio::time::timeout(PATIENCE, watch.message()).await.expect("an instruction in time").unwrap().unwrap()
}

/// The next ring instruction, skipping cancellations.
async fn next_ring(watch: &mut tonic::Streaming<cti::RouteInstruction>) -> (String, cti::RingAgent) {
    loop {
        let i = next_instruction(watch).await;
        if let Some(cti::route_instruction::Action::Ring(r)) = i.action {
            return (i.call_id, r);
        }
    }
}

pub(crate) async fn ix(sb: &TestServer, id: &str) -> pb::Interaction {
    let r = pb::GetInteractionRequest { interaction_id: id.into(), include_messages: false };
    sb.interactions().await.get_interaction(r).await.unwrap().into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_rings_the_free_agent_and_follows_the_phone_to_the_end() {
    let (_redis, sb) = start().await;
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    let mut c = pbx(&sb).await;

    let r = c.route_call(route_req("call-1", "+49 151 2345678")).await.unwrap().into_inner();
    let ring = ring_of(&r);
    assert_eq!((ring.agent_id.as_str(), ring.device.as_str()), ("ann", "1001"));
    assert!(ring.ring_until.is_some());
    // The desktop shows the call while the phone rings.
    let offer = ann.wait_offer().await;
    let offered = offer.interaction.unwrap();
    assert_eq!(offered.id, r.interaction_id);
    assert_eq!(offered.channel, pb::Channel::Voice as i32);
    assert_eq!(offered.customer_address, "+49 151 2345678");
    assert_eq!(offered.attributes.get("cti.call_id").map(String::as_str), Some("call-1"));
    // The phone answers, not the desktop.
    let (code, message) = ann.accept(&offered.id).await.unwrap_err();
    assert_eq!(code, Code::FailedPrecondition, "{message}");
    assert!(message.contains("answer it on your phone"), "{message}");
    // Asking again is the same call, ringing the same agent.
    let again = c.route_call(cti::RouteRequest { attempt: 2, ..route_req("call-1", "+49 151 2345678") }).await.unwrap();
    assert_eq!(ring_of(&again.into_inner()).route_id, ring.route_id);

    let used = cti::RouteReport {
        call_id: "call-1".into(),
        route_id: ring.route_id.clone(),
        result: Some(cti::route_report::Result::Used(cti::Used {})),
    };
    assert_eq!(c.report_route(used).await.unwrap().into_inner().outcome, cti::Outcome::Applied as i32);
    ann.wait_for("ringing", |e| matches!(e, Ev::CallState(s) if s.state == "ringing")).await;

    let mut ev = Events::open(&mut c).await;
    use cti::call_event::Kind;
    let a = ev.call("e-answer", "call-1", 2, "ann", Kind::Answered(cti::Answered {})).await;
    assert_eq!((outcome(&a), a.interaction_id.as_str()), (cti::Outcome::Applied, r.interaction_id.as_str()));
    ann.wait_for("assigned", |e| matches!(e, Ev::Assigned(_))).await;
    ann.wait_for("talking", |e| matches!(e, Ev::CallState(s) if s.state == "talking")).await;
    assert_eq!(ix(&sb, &r.interaction_id).await.state, pb::InteractionState::Active as i32);

    // Twice the same event, and an old one arriving late: acknowledged, nothing changes.
    let dup = ev.call("e-answer", "call-1", 2, "ann", Kind::Answered(cti::Answered {})).await;
    assert_eq!(outcome(&dup), cti::Outcome::Duplicate);
    let late = ev.call("e-ring-late", "call-1", 1, "ann", Kind::Ringing(cti::Ringing {})).await;
    assert_eq!(outcome(&late), cti::Outcome::Stale);

    assert_eq!(outcome(&ev.call("e-hold", "call-1", 3, "", Kind::Held(cti::Held {})).await), cti::Outcome::Applied);
    ann.wait_for("held", |e| matches!(e, Ev::CallState(s) if s.state == "held")).await;
    let back = ev.call("e-back", "call-1", 4, "", Kind::Retrieved(cti::Retrieved {})).await;
    assert_eq!(outcome(&back), cti::Outcome::Applied);
    let released = cti::Released { cause: "normal_clearing".into(), by: cti::Party::Caller as i32 };
    assert_eq!(outcome(&ev.call("e-bye", "call-1", 5, "", Kind::Released(released)).await), cti::Outcome::Applied);
    let ended = ann.wait_for("ended", |e| matches!(e, Ev::InteractionEnded(_))).await;
    let Ev::InteractionEnded(ended) = ended else { unreachable!() };
    assert_eq!(ended.interaction_id, r.interaction_id);
    let state = ix(&sb, &r.interaction_id).await.state;
    assert!(
        state == pb::InteractionState::WrapUp as i32 || state == pb::InteractionState::Completed as i32,
        "after the call: after-call work or completed, got {state}"
    );
    // Over: a new request for the call goes to the default destination.
    let over = c.route_call(route_req("call-1", "+49 151 2345678")).await.unwrap().into_inner();
    match over.action {
        Some(cti::route_response::Action::DefaultRoute(d)) => {
            assert_eq!((d.destination.as_str(), d.reason.as_str()), (VOICEMAIL, "ended"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_call_rings_whoever_frees_up_and_a_failed_ring_goes_to_the_next_agent() {
    let (_redis, sb) = start().await;
    let mut c = pbx(&sb).await;
    let mut watch = c.watch_routes(cti::WatchRoutesRequest {}).await.unwrap().into_inner();
    let mut ann = sb.desktop("ann", "tok-ann").await;
    let mut bob = sb.desktop("bob", "tok-bob").await;

    // Nobody ready: the caller waits in the queue.
    let r = c.route_call(route_req("call-2", "+49 151 999")).await.unwrap().into_inner();
    match &r.action {
        Some(cti::route_response::Action::Hold(h)) => assert_eq!((h.queue.as_str(), h.position), ("support", 1)),
        other => panic!("expected hold, got {other:?}"),
    }
    // Ann frees up: the platform is told to ring her.
    ann.ready().await;
    let (call, ring) = next_ring(&mut watch).await;
    assert_eq!((call.as_str(), ring.agent_id.as_str(), ring.device.as_str()), ("call-2", "ann", "1001"));
    ann.wait_offer().await;

    // Her phone is busy: the call goes back (first in line still), never to her again.
    let busy = cti::RouteReport {
        call_id: "call-2".into(),
        route_id: ring.route_id.clone(),
        result: Some(cti::route_report::Result::Failed(cti::Failed {
            cause: cti::RingFailure::Busy as i32,
            detail: "486 Busy Here".into(),
        })),
    };
    assert_eq!(c.report_route(busy.clone()).await.unwrap().into_inner().outcome, cti::Outcome::Applied as i32);
    // The same report again is about a ring that is over.
    assert_eq!(c.report_route(busy).await.unwrap().into_inner().outcome, cti::Outcome::Ignored as i32);
    let waiting = ix(&sb, &r.interaction_id).await;
    assert_eq!(waiting.state, pb::InteractionState::Queued as i32);
    assert!(waiting.excluded_agent_ids.contains(&"ann".to_string()), "{waiting:?}");

    // Bob frees up and gets it; his phone rings out: he goes not ready, the call waits again.
    bob.ready().await;
    let (_, ring) = next_ring(&mut watch).await;
    assert_eq!(ring.agent_id, "bob");
    let mut ev = Events::open(&mut c).await;
    use cti::call_event::Kind;
    let rang_out = ev.call("e2-rna", "call-2", 7, "bob", Kind::RingNoAnswer(cti::RingNoAnswer {})).await;
    assert_eq!(outcome(&rang_out), cti::Outcome::Applied);
    bob.wait_for(
        "not ready after a missed call",
        |e| matches!(e, Ev::PresenceChanged(p) if p.presence.as_ref().is_some_and(|p| p.reason == "missed")),
    )
    .await;
    // The caller hangs up while waiting: abandoned, and counted.
    let gone =
        ev.call("e2-gone", "call-2", 8, "", Kind::Abandoned(cti::Abandoned { cause: "caller_hung_up".into() })).await;
    assert_eq!(outcome(&gone), cti::Outcome::Applied);
    assert_eq!(ix(&sb, &r.interaction_id).await.state, pb::InteractionState::Abandoned as i32);
    let figures = sb
        .supervisor()
        .await
        .get_queue_figures(pb::GetQueueFiguresRequest { queue: "support".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(figures.abandoned, 1, "{figures:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phones_gate_voice_and_a_call_blocks_other_channels_until_after_call_work() {
    let (_redis, sb) = start().await;
    let mut c = pbx(&sb).await;
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    let mut ev = Events::open(&mut c).await;
    let phone = |device: &str, state: cti::PhoneState| {
        cti::telephony_event::Event::Phone(cti::PhoneEvent {
            agent_id: String::new(),
            device: device.into(),
            state: state as i32,
        })
    };
    // Ann's phone (by its device name) is unregistered: calls wait instead of ringing nowhere.
    assert_eq!(outcome(&ev.send("p1", phone("1001", cti::PhoneState::Unregistered)).await), cti::Outcome::Applied);
    let r = c.route_call(route_req("call-3", "+49 151 333")).await.unwrap().into_inner();
    assert!(matches!(r.action, Some(cti::route_response::Action::Hold(_))), "{r:?}");
    // Registered again: the waiting call rings her.
    let mut watch = c.watch_routes(cti::WatchRoutesRequest {}).await.unwrap().into_inner();
    assert_eq!(outcome(&ev.send("p2", phone("1001", cti::PhoneState::Registered)).await), cti::Outcome::Applied);
    let (_, ring) = next_ring(&mut watch).await;
    assert_eq!(ring.agent_id, "ann");
    ann.wait_offer().await;
    use cti::call_event::Kind;
    let a = ev.call("e3-answer", "call-3", 1, "", Kind::Answered(cti::Answered {})).await;
    assert_eq!(outcome(&a), cti::Outcome::Applied, "{a:?}");

    // On the call, Ann gets no chat; the chat waits.
    let mut ixs = sb.interactions().await;
    let chat = ixs.create_interaction(new_chat("support", "visitor-1", "hi")).await.unwrap().into_inner();
    let released = cti::Released { cause: "normal_clearing".into(), by: cti::Party::Agent as i32 };
    assert_eq!(ix(&sb, &chat.id).await.state, pb::InteractionState::Queued as i32);
    assert_eq!(outcome(&ev.call("e3-bye", "call-3", 2, "", Kind::Released(released)).await), cti::Outcome::Applied);
    // After the call (and its after-call work, if the queue has any) the chat is hers.
    let offer = ann.wait_offer().await;
    assert_eq!(offer.interaction.unwrap().id, chat.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blind_transfer_on_the_phone_routes_the_call_to_the_other_queue() {
    let (_redis, sb) = start().await;
    let mut admin = sb.admin().await;
    let bob_sales = pb::Agent { devices: vec!["sip:bob@pbx.test".into()], ..agent("bob", &[("sales", 1)]) };
    admin.put_agent(pb::PutAgentRequest { agent: Some(bob_sales), allow_update: true }).await.unwrap();
    admin
        .put_queue(pb::PutQueueRequest { queue: Some(queue("sales", &[("sales", 1)])), allow_update: true })
        .await
        .unwrap();
    let mut c = pbx(&sb).await;
    let mut watch = c.watch_routes(cti::WatchRoutesRequest {}).await.unwrap().into_inner();
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    let r = c.route_call(route_req("call-4", "+49 151 444")).await.unwrap().into_inner();
    assert_eq!(ring_of(&r).agent_id, "ann");
    let mut ev = Events::open(&mut c).await;
    use cti::call_event::Kind;
    assert_eq!(
        outcome(&ev.call("e4-1", "call-4", 1, "ann", Kind::Answered(cti::Answered {})).await),
        cti::Outcome::Applied
    );
    let mut bob = sb.desktop("bob", "tok-bob").await;
    bob.ready().await;
    let to_sales = cti::Transferred { attended: false, target: Some(cti::transferred::Target::Queue("sales".into())) };
    let t = ev.call("e4-2", "call-4", 2, "ann", Kind::Transferred(to_sales)).await;
    assert_eq!(outcome(&t), cti::Outcome::Applied, "{t:?}");
    let (call, ring) = next_ring(&mut watch).await;
    // The first ring instruction may be Ann's own (the call's first offer); Bob's follows.
    let (call, ring) = if ring.agent_id == "ann" { next_ring(&mut watch).await } else { (call, ring) };
    assert_eq!((call.as_str(), ring.agent_id.as_str()), ("call-4", "bob"));
    let offer = bob.wait_offer().await.interaction.unwrap();
    assert_eq!((offer.id.as_str(), offer.queue.as_str()), (r.interaction_id.as_str(), "sales"));
    assert_eq!(
        outcome(&ev.call("e4-3", "call-4", 3, "bob", Kind::Answered(cti::Answered {})).await),
        cti::Outcome::Applied
    );
    let now = ix(&sb, &r.interaction_id).await;
    assert_eq!((now.agent_id.as_str(), now.state), ("bob", pb::InteractionState::Active as i32));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_bad_input_and_unknown_calls_get_clear_answers_and_change_nothing() {
    let (_redis, sb) = start().await;
    // No key, a wrong key, another role.
    let anon = cti::cti_client::CtiClient::new(sb.with_key("").await).route_call(route_req("x", "1")).await;
    assert_eq!(anon.unwrap_err().code(), Code::Unauthenticated);
    let wrong = cti::cti_client::CtiClient::new(sb.with_key("not-a-key-0123456789abcdef0123456789").await)
        .route_call(route_req("x", "1"))
        .await;
    assert_eq!(wrong.unwrap_err().code(), Code::Unauthenticated);
    let channel = cti::cti_client::CtiClient::new(sb.with_key(CHANNEL_KEY).await).route_call(route_req("x", "1")).await;
    assert_eq!(channel.unwrap_err().code(), Code::PermissionDenied);

    let mut c = pbx(&sb).await;
    let e = c.route_call(route_req("", "1")).await.unwrap_err();
    assert_eq!((e.code(), e.message()), (Code::InvalidArgument, "call_id: is required"));
    let e = c.route_call(cti::RouteRequest { queue: "nope".into(), ..route_req("c-q", "1") }).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{}", e.message());
    assert!(e.message().contains("queue"), "{}", e.message());
    // A number no routing point takes goes to the default destination.
    let r = c
        .route_call(cti::RouteRequest { dialled: "+1 555 0000".into(), ..route_req("c-none", "1") })
        .await
        .unwrap()
        .into_inner();
    match r.action {
        Some(cti::route_response::Action::DefaultRoute(d)) => {
            assert_eq!((d.destination.as_str(), d.reason.as_str()), (VOICEMAIL, "no_queue"));
        }
        other => panic!("{other:?}"),
    }
    let bad_report = cti::RouteReport { call_id: "c-none".into(), route_id: "x".into(), result: None };
    assert_eq!(c.report_route(bad_report).await.unwrap_err().code(), Code::InvalidArgument);

    let mut ev = Events::open(&mut c).await;
    use cti::call_event::Kind;
    let unknown = ev.call("u1", "no-such-call", 1, "ann", Kind::Answered(cti::Answered {})).await;
    assert_eq!((outcome(&unknown), unknown.error_code), (cti::Outcome::Rejected, Code::NotFound as i32));
    assert!(unknown.error_message.contains("call_id"), "{unknown:?}");
    let no_id = ev.call("", "no-such-call", 1, "ann", Kind::Answered(cti::Answered {})).await;
    assert_eq!((outcome(&no_id), no_id.error_code), (cti::Outcome::Rejected, Code::InvalidArgument as i32));
    let empty = ev
        .send("u2", cti::telephony_event::Event::Call(cti::CallEvent { call_id: "c".into(), ..Default::default() }))
        .await;
    assert_eq!((outcome(&empty), empty.error_message.as_str()), (cti::Outcome::Rejected, "call.kind: is required"));
    let stranger_phone = cti::telephony_event::Event::Phone(cti::PhoneEvent {
        agent_id: String::new(),
        device: "9999".into(),
        state: cti::PhoneState::Registered as i32,
    });
    let p = ev.send("u3", stranger_phone).await;
    assert_eq!((outcome(&p), p.error_code), (cti::Outcome::Rejected, Code::NotFound as i32));

    // A call waits (nobody is ready); "answered" by an agent it is not ringing at is refused, and
    // the corrected event with the same id is then applied.
    let r = c.route_call(route_req("c-wait", "+49 151 555")).await.unwrap().into_inner();
    let wrong_agent = ev.call("w1", "c-wait", 1, "bob", Kind::Answered(cti::Answered {})).await;
    assert_eq!(
        (outcome(&wrong_agent), wrong_agent.error_code),
        (cti::Outcome::Rejected, Code::FailedPrecondition as i32)
    );
    assert_eq!(ix(&sb, &r.interaction_id).await.state, pb::InteractionState::Queued as i32);
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    ann.wait_offer().await;
    let right = ev.call("w1", "c-wait", 1, "ann", Kind::Answered(cti::Answered {})).await;
    assert_eq!(outcome(&right), cti::Outcome::Applied, "{right:?}");

    // Calls are per telephony system: another system's call ids are not this one's.
    let mut admin = sb.admin().await;
    let key = admin
        .create_api_key(pb::CreateApiKeyRequest {
            name: "pbx-2".into(),
            role: "telephony".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .secret;
    let mut other = cti::cti_client::CtiClient::new(sb.with_key(&key).await);
    let mut other_ev = Events::open(&mut other).await;
    let theirs = other_ev.call("o1", "c-wait", 2, "", Kind::Held(cti::Held {})).await;
    assert_eq!((outcome(&theirs), theirs.error_code), (cti::Outcome::Rejected, Code::NotFound as i32));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeat_caller_rings_the_agent_they_talked_to_last() {
    let (_redis, sb) = start().await;
    let mut c = pbx(&sb).await;
    let mut ann = sb.desktop("ann", "tok-ann").await;
    let mut bob = sb.desktop("bob", "tok-bob").await;
    ann.ready().await;
    bob.ready().await;
    let first = c.route_call(route_req("call-5", "+49 151 23456789")).await.unwrap().into_inner();
    let talked_to = ring_of(&first).agent_id;
    let mut ev = Events::open(&mut c).await;
    use cti::call_event::Kind;
    assert_eq!(
        outcome(&ev.call("e5-1", "call-5", 1, "", Kind::Answered(cti::Answered {})).await),
        cti::Outcome::Applied
    );
    let bye = cti::Released { cause: "normal_clearing".into(), by: cti::Party::Caller as i32 };
    assert_eq!(outcome(&ev.call("e5-2", "call-5", 2, "", Kind::Released(bye)).await), cti::Outcome::Applied);
    let desk = if talked_to == "ann" { &mut ann } else { &mut bob };
    desk.wait_for("ended", |e| matches!(e, Ev::InteractionEnded(_))).await;
    let id = first.interaction_id.clone();
    // After-call work over: the agent is free again, but the other one has been idle longer.
    if ix(&sb, &id).await.state == pb::InteractionState::WrapUp as i32 {
        desk.request(pb::agent_request::Kind::EndWrapUp(pb::EndWrapUp {
            interaction_id: id.clone(),
            ..Default::default()
        }))
        .await
        .unwrap();
    }
    // The same caller, written the national way, rings the same agent.
    let again = c
        .route_call(cti::RouteRequest { caller: "+49 (151) 2345-6789".into(), ..route_req("call-6", "") })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ring_of(&again).agent_id, talked_to, "{again:?}");
    // The agent sees the first call in the caller's history, with how it went.
    let desk = pb::agent_desktop_client::AgentDesktopClient::new(sb.with_key(ADMIN_KEY).await);
    let history = eventually("the first call in the CRM", PATIENCE, || {
        let (mut desk, id) = (desk.clone(), again.interaction_id.clone());
        async move {
            let pop = desk.get_screen_pop(pb::GetScreenPopRequest { interaction_id: id }).await.ok()?.into_inner();
            // The summary comes with the call's `released` event, which may reach the CRM later.
            pop.history.first().is_some_and(|h| !h.summary.is_empty()).then_some(pop.history)
        }
    })
    .await;
    assert_eq!(history[0].interaction_id, first.interaction_id);
    assert!(history[0].summary.starts_with("Call: talked 0:0"), "{:?}", history[0]);
    assert!(history[0].summary.contains("the caller hung up (normal_clearing)"), "{:?}", history[0]);
}
