//! Callbacks through the CTI hook, against a real daemon, Redis and the built-in CRM store, on the
//! routing clock (no sleeping): a waiting caller asks to be called back and keeps their place
//! ahead of later callers; the agent accepts on the desktop and the platform is told to dial; an
//! attempt nobody answers is retried after the delay; an IVR's callback takes the place its
//! caller waited; the last failed attempt ends it; bad requests change nothing.

use std::time::Duration;

use crate::common::*;
use crate::cti::{Cti, Events, SUPPORT_LINE, ix, next_instruction, outcome, pbx, route_req};
use switchboard::api::cti::pb as cti;
use switchboard::api::pb;
use switchboard::api::pb::agent_event::Kind as Ev;
use switchboard_engine::Engine;
use tonic::Code;

const DAEMON_CRM_KEY: &str = "test-callback-daemon-crm-key-0123456789ab";
const CRM_ADMIN_KEY: &str = "test-callback-crm-admin-key-0123456789abcd";
const CALLER: &str = "+4915112345678";

struct World {
    redis: RedisServer,
    crm: Option<AuthedCrm>,
    sb: TestServer,
    engine: Engine,
}

/// Redis, the built-in CRM if asked, a daemon whose support line reaches queue `support`, and
/// agents ann (phone 1001) and bob.
async fn start(with_crm: bool, tune: impl FnOnce(&mut switchboard::config::Config)) -> World {
    let redis = RedisServer::start();
    let engine = Engine::connect(&redis.url, Default::default()).await.unwrap();
    let crm = if with_crm { Some(AuthedCrm::start(DAEMON_CRM_KEY, CRM_ADMIN_KEY).await) } else { None };
    let mut cfg = test_config(&redis.url);
    if let Some(crm) = &crm {
        cfg.crm.endpoint = crm.endpoint.clone();
        cfg.crm.api_key = switchboard::config::Secret(DAEMON_CRM_KEY.into());
    } else {
        cfg.crm.enabled = false;
    }
    // Tests move the routing clock by minutes: the instance and the desktops must not look dead.
    cfg.routing.presence_grace_secs = 3600;
    cfg.crm.default_region = "DE".into();
    cfg.cti.routing_points = vec![switchboard::channels::voice::config::RoutingPoint {
        name: String::new(),
        dialled: vec![SUPPORT_LINE.into()],
        queue: "support".into(),
        priority: None,
    }];
    tune(&mut cfg);
    let sb = TestServer::start_with(cfg).await;
    let mut admin = sb.admin().await;
    admin.put_queue(pb::PutQueueRequest { queue: Some(queue("support", &[])), allow_update: true }).await.unwrap();
    for (id, device) in [("ann", "1001"), ("bob", "sip:bob@pbx.test")] {
        let spec = pb::Agent { devices: vec![device.into()], ..agent(id, &[]) };
        admin.put_agent(pb::PutAgentRequest { agent: Some(spec), allow_update: true }).await.unwrap();
    }
    World { redis, crm, sb, engine }
}

/// Moves the routing clock of every instance on this Redis forward; timers come due on the next poll.
async fn advance(w: &World, by: Duration) {
    let mut con = w.redis.client().await;
    let _: i64 = redis::AsyncCommands::incr(&mut con, w.engine.keys().clock(), by.as_millis() as i64).await.unwrap();
}

async fn figures(sb: &TestServer) -> pb::QueueFigures {
    let r = pb::GetQueueFiguresRequest { queue: "support".into() };
    sb.supervisor().await.get_queue_figures(r).await.unwrap().into_inner()
}

fn hold_position(r: &cti::RouteResponse) -> u32 {
    match &r.action {
        Some(cti::route_response::Action::Hold(h)) => h.position,
        other => panic!("expected hold, got {other:?}"),
    }
}

/// The next dial instruction; rings and cancellations before it are returned too.
async fn next_dial(
    watch: &mut tonic::Streaming<cti::RouteInstruction>,
) -> (cti::RouteInstruction, cti::DialCallback, Vec<cti::RouteInstruction>) {
    let mut before = Vec::new();
    loop {
        let i = next_instruction(watch).await;
        if let Some(cti::route_instruction::Action::Dial(d)) = &i.action {
            let d = d.clone();
            return (i, d, before);
        }
        before.push(i);
    }
}

fn route_failed(call_id: &str, route_id: &str, cause: cti::RingFailure) -> cti::RouteReport {
    cti::RouteReport {
        call_id: call_id.into(),
        route_id: route_id.into(),
        result: Some(cti::route_report::Result::Failed(cti::Failed { cause: cause as i32, detail: "480".into() })),
    }
}

async fn ended(desk: &mut Desktop, iid: &str) -> pb::InteractionEnded {
    let id = iid.to_string();
    match desk.wait_for("ended", move |e| matches!(e, Ev::InteractionEnded(x) if x.interaction_id == id)).await {
        Ev::InteractionEnded(x) => x,
        _ => unreachable!(),
    }
}

fn callback(ix: &pb::Interaction) -> &pb::Callback {
    ix.callback.as_ref().unwrap_or_else(|| panic!("not a callback: {ix:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_who_asks_for_a_callback_keeps_their_place_is_dialled_retried_and_logged() {
    let w = start(true, |_| {}).await;
    let mut c = pbx(&w.sb).await;
    let mut watch = c.watch_routes(cti::WatchRoutesRequest {}).await.unwrap().into_inner();
    let mut ev = Events::open(&mut c).await;
    use cti::call_event::Kind;

    // Nobody is free: two callers wait, in the order they called.
    let first = c.route_call(route_req("call-1", "0151 12345678")).await.unwrap().into_inner();
    assert_eq!(hold_position(&first), 1);
    let second = c.route_call(route_req("call-2", "+4915198765432")).await.unwrap().into_inner();
    assert_eq!(hold_position(&second), 2);
    let enqueued_at = ix(&w.sb, &first.interaction_id).await.enqueued_at;

    // The first presses "call me back": same interaction, same place, the caller's own number.
    let req = cti::CallbackRequest { call_id: "call-1".into(), number: String::new(), not_before: None };
    let cb = c.request_callback(req.clone()).await.unwrap().into_inner();
    assert_eq!(
        (cb.interaction_id.as_str(), cb.position, cb.number.as_str(), cb.created),
        (first.interaction_id.as_str(), 1, CALLER, true)
    );
    // Asked again (a retry): the same callback, nothing changes.
    let again = c.request_callback(req).await.unwrap().into_inner();
    assert_eq!((again.interaction_id.as_str(), again.created), (cb.interaction_id.as_str(), false));
    // The platform hangs the call up: that abandons nothing now.
    let bye = cti::Released { cause: "normal_clearing".into(), by: cti::Party::Caller as i32 };
    let a = ev.call("c1-bye", "call-1", 2, "", Kind::Released(bye)).await;
    assert_eq!(outcome(&a), cti::Outcome::Ignored);
    let waiting = ix(&w.sb, &cb.interaction_id).await;
    assert_eq!(waiting.state, pb::InteractionState::Queued as i32);
    assert_eq!(waiting.enqueued_at, enqueued_at, "it keeps its place");
    assert_eq!((callback(&waiting).attempts, callback(&waiting).max_attempts), (0, 3));
    // A new RouteCall for the old call says it became a callback.
    let e = c.route_call(route_req("call-1", "0151 12345678")).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}");
    assert!(e.message().contains("called back"), "{}", e.message());

    // Ann frees up: the callback comes first (it kept its place ahead of the later caller), on
    // her desktop — her phone does not ring for it.
    let mut ann = w.sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    let offer = ann.wait_offer().await.interaction.unwrap();
    assert_eq!(offer.id, cb.interaction_id);
    assert_eq!(callback(&offer).number, CALLER);
    ann.accept(&offer.id).await.unwrap();
    ann.wait_for("dialing", |e| matches!(e, Ev::CallState(s) if s.state == "dialing")).await;
    // The platform is told to dial the customer from Ann's phone, under a call id of ours.
    let (i, dial, before) = next_dial(&mut watch).await;
    assert!(before.iter().all(|i| i.interaction_id != cb.interaction_id), "no ring for a callback: {before:?}");
    assert_eq!(i.interaction_id, cb.interaction_id);
    assert_eq!(i.call_id, format!("{}.cb1", cb.interaction_id));
    assert_eq!(
        (dial.agent_id.as_str(), dial.device.as_str(), dial.number.as_str(), dial.attempt, dial.max_attempts),
        ("ann", "1001", CALLER, 1, 3)
    );
    assert_eq!(dial.dialled, SUPPORT_LINE);
    // Nobody answers: the attempt fails, Ann is free again, the callback waits for its retry.
    let nobody = route_failed(&i.call_id, &dial.route_id, cti::RingFailure::NoAnswer);
    assert_eq!(c.report_route(nobody).await.unwrap().into_inner().outcome, cti::Outcome::Applied as i32);
    assert_eq!(ended(&mut ann, &cb.interaction_id).await.reason, "callback_retry");
    let retry = ix(&w.sb, &cb.interaction_id).await;
    assert_eq!(retry.state, pb::InteractionState::Queued as i32);
    assert_eq!(callback(&retry).attempts, 1);
    assert!(callback(&retry).not_before.is_some(), "{retry:?}");
    // Meanwhile the second caller is not held back by it: it rings Ann; that caller hangs up.
    let ringing = ann.wait_offer().await.interaction.unwrap();
    assert_eq!(ringing.id, second.interaction_id);
    let gone = Kind::Abandoned(cti::Abandoned { cause: "caller_hung_up".into() });
    assert_eq!(outcome(&ev.call("c2-gone", "call-2", 1, "", gone).await), cti::Outcome::Applied);

    // Five minutes on (cti.callback_retry_secs): offered again, and dialled again.
    advance(&w, Duration::from_secs(301)).await;
    let offer = ann.wait_offer().await.interaction.unwrap();
    assert_eq!((offer.id.as_str(), callback(&offer).attempts), (cb.interaction_id.as_str(), 1));
    ann.accept(&offer.id).await.unwrap();
    let (i, dial, _) = next_dial(&mut watch).await;
    assert_eq!((i.call_id.clone(), dial.attempt), (format!("{}.cb2", cb.interaction_id), 2));
    // This time the customer picks up; the call then runs like any call, under our call id.
    let call = i.call_id.clone();
    assert_eq!(outcome(&ev.call("d2-ring", &call, 1, "", Kind::Ringing(cti::Ringing {})).await), cti::Outcome::Applied);
    let answered = ev.call("d2-answer", &call, 2, "ann", Kind::Answered(cti::Answered {})).await;
    assert_eq!(
        (outcome(&answered), answered.interaction_id.as_str()),
        (cti::Outcome::Applied, cb.interaction_id.as_str())
    );
    ann.wait_for("talking", |e| matches!(e, Ev::CallState(s) if s.state == "talking")).await;
    assert!(callback(&ix(&w.sb, &cb.interaction_id).await).connected_at.is_some());
    // The first attempt's call ending late changes nothing.
    let late = cti::Released { cause: "no_answer".into(), by: cti::Party::Unspecified as i32 };
    let late = ev.call("d1-late", &format!("{}.cb1", cb.interaction_id), 3, "", Kind::Released(late)).await;
    assert_eq!(outcome(&late), cti::Outcome::Ignored);
    assert_eq!(outcome(&ev.call("d2-hold", &call, 3, "", Kind::Held(cti::Held {})).await), cti::Outcome::Applied);
    let bye = cti::Released { cause: "normal_clearing".into(), by: cti::Party::Caller as i32 };
    assert_eq!(outcome(&ev.call("d2-bye", &call, 4, "", Kind::Released(bye)).await), cti::Outcome::Applied);
    ended(&mut ann, &cb.interaction_id).await;
    // After-call work, if the queue has any, ends with the agent's disposition.
    if ix(&w.sb, &cb.interaction_id).await.state == pb::InteractionState::WrapUp as i32 {
        ann.complete(&cb.interaction_id, "resolved").await.unwrap();
    }

    let f = figures(&w.sb).await;
    assert_eq!((f.callbacks_requested, f.callbacks_connected, f.callbacks_failed), (1, 1, 0), "{f:?}");
    assert_eq!(f.accepted, 1, "the callback's two accepts count once: {f:?}");

    // The CRM holds every step, in order.
    let crm = w.crm.as_ref().unwrap();
    let types = eventually("the callback's events in the CRM", PATIENCE, || async {
        let t: Vec<String> = crm.db.event_types(&cb.interaction_id).await.ok()?.into_iter().map(|(_, t)| t).collect();
        t.contains(&"completed".to_string()).then_some(t)
    })
    .await;
    let steps: Vec<&str> = types
        .iter()
        .map(String::as_str)
        .filter(|t| {
            matches!(
                *t,
                "callback_requested"
                    | "dialing"
                    | "callback_attempt_failed"
                    | "callback_connected"
                    | "released"
                    | "completed"
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            "callback_requested",
            "dialing",
            "callback_attempt_failed",
            "dialing",
            "callback_connected",
            "released",
            "completed"
        ],
        "{types:?}"
    );
    w.sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ivr_callback_takes_its_callers_place_and_its_last_failed_attempt_ends_it() {
    let w = start(false, |cfg| {
        cfg.cti.callback_attempts = 2;
        cfg.cti.callback_retry_secs = 60;
        cfg.cti.callback_dial_timeout_secs = 30;
    })
    .await;
    let mut c = pbx(&w.sb).await;
    let mut watch = c.watch_routes(cti::WatchRoutesRequest {}).await.unwrap().into_inner();
    let mut ev = Events::open(&mut c).await;
    use cti::call_event::Kind;

    // A caller rings in now; an IVR then reports a caller who had waited two minutes elsewhere
    // and wants a callback, but not before in ten minutes.
    let live = c.route_call(route_req("call-9", "+4915111111111")).await.unwrap().into_inner();
    let now = w.engine.now_ms().await.unwrap();
    let ts = |ms: u64| prost_types::Timestamp { seconds: (ms / 1000) as i64, nanos: 0 };
    let new = cti::NewCallback {
        callback_id: "ivr-7".into(),
        number: "0151 98765432".into(),
        dialled: SUPPORT_LINE.into(),
        waiting_since: Some(ts(now - 120_000)),
        not_before: Some(ts(now + 600_000)),
        user_data: [("account".to_string(), "A-17".to_string())].into(),
        ..Default::default()
    };
    let cb = c.create_callback(new.clone()).await.unwrap().into_inner();
    assert_eq!((cb.position, cb.number.as_str(), cb.created), (1, "+4915198765432", true));
    assert_eq!(c.create_callback(new).await.unwrap().into_inner(), pb_same(&cb));
    let made = ix(&w.sb, &cb.interaction_id).await;
    assert_eq!((made.queue.as_str(), made.channel), ("support", pb::Channel::Voice as i32));
    assert_eq!(made.attributes.get("account").map(String::as_str), Some("A-17"));

    // Its window is not open yet: Ann gets the live call instead; that caller hangs up.
    let mut ann = w.sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    assert_eq!(ann.wait_offer().await.interaction.unwrap().id, live.interaction_id);
    let gone = Kind::Abandoned(cti::Abandoned { cause: "caller_hung_up".into() });
    assert_eq!(outcome(&ev.call("l-gone", "call-9", 1, "", gone).await), cti::Outcome::Applied);
    assert_eq!(ix(&w.sb, &cb.interaction_id).await.state, pb::InteractionState::Queued as i32);

    // Ten minutes on, it is offered; accepted, dialled; the line is busy (released unanswered).
    advance(&w, Duration::from_secs(601)).await;
    let offer = ann.wait_offer().await.interaction.unwrap();
    assert_eq!(offer.id, cb.interaction_id);
    ann.accept(&offer.id).await.unwrap();
    let (i, dial, _) = next_dial(&mut watch).await;
    assert_eq!((dial.number.as_str(), dial.attempt, dial.max_attempts), ("+4915198765432", 1, 2));
    let busy = cti::Released { cause: "busy".into(), by: cti::Party::Unspecified as i32 };
    assert_eq!(outcome(&ev.call("d1-busy", &i.call_id, 1, "", Kind::Released(busy)).await), cti::Outcome::Applied);
    assert_eq!(ended(&mut ann, &cb.interaction_id).await.reason, "callback_retry");

    // A minute on, the last attempt; the platform never reports on it: it fails after the dial
    // timeout, and the callback ends as failed.
    advance(&w, Duration::from_secs(61)).await;
    assert_eq!(ann.wait_offer().await.interaction.unwrap().id, cb.interaction_id);
    ann.accept(&cb.interaction_id).await.unwrap();
    let (_, dial, _) = next_dial(&mut watch).await;
    assert_eq!(dial.attempt, 2);
    advance(&w, Duration::from_secs(31)).await;
    let end = ended(&mut ann, &cb.interaction_id).await;
    assert_eq!((end.reason.as_str(), end.state), ("callback_failed", pb::InteractionState::Completed as i32));
    let over = ix(&w.sb, &cb.interaction_id).await;
    assert_eq!(
        (over.disposition.as_str(), over.end_reason.as_str(), callback(&over).attempts),
        ("callback_failed", "callback_dial_timeout", 2)
    );
    let f = figures(&w.sb).await;
    assert_eq!((f.callbacks_requested, f.callbacks_connected, f.callbacks_failed), (1, 0, 1), "{f:?}");
    // Ann is free for the next caller.
    let next = c.route_call(route_req("call-10", "+4915122222222")).await.unwrap().into_inner();
    match next.action {
        Some(cti::route_response::Action::Ring(r)) => assert_eq!(r.agent_id, "ann"),
        other => panic!("expected Ann to ring, got {other:?}"),
    }
    w.sb.stop().await;
}

/// The same response with `created` false: what a repeated request gets.
fn pb_same(r: &cti::CallbackResponse) -> cti::CallbackResponse {
    cti::CallbackResponse { created: false, ..r.clone() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ringing_call_turned_callback_stops_ringing_and_bad_requests_change_nothing() {
    let w = start(false, |_| {}).await;
    let mut c = pbx(&w.sb).await;
    let mut watch = c.watch_routes(cti::WatchRoutesRequest {}).await.unwrap().into_inner();
    let mut ann = w.sb.desktop("ann", "tok-ann").await;
    ann.ready().await;

    // A call rings Ann; the caller asks for a callback meanwhile: the ring is cancelled and the
    // callback is offered on her desktop in its place.
    let r = c.route_call(route_req("call-1", CALLER)).await.unwrap().into_inner();
    let first = ann.wait_offer().await.interaction.unwrap();
    assert_eq!(first.id, r.interaction_id);
    let req = |n: &str| cti::CallbackRequest { call_id: "call-1".into(), number: n.into(), not_before: None };
    let cb = c.request_callback(req("+49 151 2345 6789")).await.unwrap().into_inner();
    assert_eq!(cb.number, "+4915123456789");
    let cancel = loop {
        let i = next_instruction(&mut watch).await;
        if let Some(cti::route_instruction::Action::Cancel(x)) = i.action {
            break (i.call_id, x);
        }
    };
    assert_eq!(
        (cancel.0.as_str(), cancel.1.agent_id.as_str(), cancel.1.reason.as_str()),
        ("call-1", "ann", "callback")
    );
    let offer = ann.wait_offer().await.interaction.unwrap();
    assert_eq!((offer.id.as_str(), callback(&offer).number.as_str()), (r.interaction_id.as_str(), "+4915123456789"));

    // Bad requests: clear errors naming the field, and nothing changes.
    let code = |e: tonic::Status| (e.code(), e.message().to_string());
    let cases: Vec<(cti::CallbackRequest, Code, &str)> = vec![
        (cti::CallbackRequest { call_id: String::new(), ..req("") }, Code::InvalidArgument, "call_id"),
        (cti::CallbackRequest { call_id: "nope".into(), ..req("") }, Code::NotFound, "call_id"),
        (req("12"), Code::InvalidArgument, "number"),
        (req("call me maybe"), Code::InvalidArgument, "number"),
    ];
    for (bad, want, field) in cases {
        let (got, message) = code(c.request_callback(bad.clone()).await.unwrap_err());
        assert_eq!(got, want, "{bad:?}: {message}");
        assert!(message.starts_with(field), "{bad:?}: {message}");
    }
    let now = w.engine.now_ms().await.unwrap();
    let far = prost_types::Timestamp { seconds: (now / 1000 + 8 * 86_400) as i64, nanos: 0 };
    let another = c.route_call(route_req("call-2", "+4915133333333")).await.unwrap().into_inner();
    let (got, message) = code(
        c.request_callback(cti::CallbackRequest {
            call_id: "call-2".into(),
            number: String::new(),
            not_before: Some(far),
        })
        .await
        .unwrap_err(),
    );
    assert_eq!((got, message.as_str()), (Code::InvalidArgument, "not_before: is more than 7 days ahead"));
    assert!(ix(&w.sb, &another.interaction_id).await.callback.is_none(), "a refused request changed nothing");
    // A withheld number has nothing to call back.
    c.route_call(route_req("call-3", "")).await.unwrap();
    let (got, message) =
        code(c.request_callback(cti::CallbackRequest { call_id: "call-3".into(), ..req("") }).await.unwrap_err());
    assert_eq!(got, Code::InvalidArgument, "{message}");
    assert!(message.contains("withheld"), "{message}");
    // A call already answered is not one to call back.
    ann.accept(&offer.id).await.unwrap();
    let mut bob = w.sb.desktop("bob", "tok-bob").await;
    bob.ready().await;
    let ringing_bob = bob.wait_offer().await.interaction.unwrap();
    let mut ev = Events::open(&mut c).await;
    let call = c_of(&ringing_bob);
    let a = ev.call("b-answer", &call, 1, "bob", cti::call_event::Kind::Answered(cti::Answered {})).await;
    assert_eq!(outcome(&a), cti::Outcome::Applied, "{a:?}");
    let (got, message) =
        code(c.request_callback(cti::CallbackRequest { call_id: call.clone(), ..req("") }).await.unwrap_err());
    assert_eq!(got, Code::FailedPrecondition, "{message}");
    assert!(message.contains("only a waiting call"), "{message}");

    let ivr = |f: fn(&mut cti::NewCallback)| {
        let mut n = cti::NewCallback {
            callback_id: "ivr-1".into(),
            number: CALLER.into(),
            queue: "support".into(),
            ..Default::default()
        };
        f(&mut n);
        n
    };
    let future = prost_types::Timestamp { seconds: (now / 1000 + 3600) as i64, nanos: 0 };
    let long_ago = prost_types::Timestamp { seconds: (now / 1000 - 2 * 86_400) as i64, nanos: 0 };
    let cases: Vec<(cti::NewCallback, Code, &str)> = vec![
        (ivr(|n| n.callback_id.clear()), Code::InvalidArgument, "callback_id"),
        (ivr(|n| n.number.clear()), Code::InvalidArgument, "number"),
        (ivr(|n| n.queue.clear()), Code::InvalidArgument, "queue"),
        (ivr(|n| n.queue = "nope".into()), Code::NotFound, "queue"),
        (ivr(|n| n.number = "+1".into()), Code::InvalidArgument, "number"),
        (cti::NewCallback { waiting_since: Some(future), ..ivr(|_| {}) }, Code::InvalidArgument, "waiting_since"),
        (cti::NewCallback { waiting_since: Some(long_ago), ..ivr(|_| {}) }, Code::InvalidArgument, "waiting_since"),
    ];
    for (bad, want, field) in cases {
        let (got, message) = code(c.create_callback(bad.clone()).await.unwrap_err());
        assert_eq!(got, want, "{bad:?}: {message}");
        assert!(message.starts_with(field), "{bad:?}: {message}");
    }
    // Only the telephony role may ask.
    let mut stranger: Cti = cti::cti_client::CtiClient::new(w.sb.with_key(CHANNEL_KEY).await);
    let e = stranger.create_callback(ivr(|_| {})).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let f = figures(&w.sb).await;
    assert_eq!(f.callbacks_requested, 1, "only the one good request counted: {f:?}");
    w.sb.stop().await;
}

fn c_of(ix: &pb::Interaction) -> String {
    ix.attributes.get("cti.call_id").cloned().expect("a call's interaction names its call")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_schedules_a_callback_for_a_chat_customer_keeping_the_chats_place() {
    use pb::agent_request::Kind as Rq;
    let w = start(false, |cfg| cfg.cti.callback_system = "pbx-1".into()).await;
    let mut admin = w.sb.admin().await;
    let mut q = queue("support", &[]);
    q.channels = vec![pb::Channel::Chat as i32, pb::Channel::Voice as i32];
    admin.put_queue(pb::PutQueueRequest { queue: Some(q), allow_update: true }).await.unwrap();
    let mut chat_only = queue("web", &[]);
    chat_only.channels = vec![pb::Channel::Chat as i32];
    admin.put_queue(pb::PutQueueRequest { queue: Some(chat_only), allow_update: true }).await.unwrap();
    let mut c = pbx(&w.sb).await;
    let mut watch = c.watch_routes(cti::WatchRoutesRequest {}).await.unwrap().into_inner();
    let mut ixs = w.sb.interactions().await;
    let chat = ixs.create_interaction(new_chat("support", "visitor-1", "Can you call me?")).await.unwrap().into_inner();
    let web = ixs.create_interaction(new_chat("web", "visitor-2", "Me too")).await.unwrap().into_inner();
    let mut ann = w.sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    let mut taken = Vec::new();
    for _ in 0..2 {
        let o = ann.wait_offer().await.interaction.unwrap();
        ann.accept(&o.id).await.unwrap();
        taken.push(o.id);
    }
    taken.sort();
    let mut both = vec![chat.id.clone(), web.id.clone()];
    both.sort();
    assert_eq!(taken, both);
    let schedule = |iid: &str, number: &str| {
        Rq::ScheduleCallback(pb::ScheduleCallback {
            interaction_id: iid.into(),
            number: number.into(),
            not_before: None,
        })
    };
    // A chat customer has no phone number of their own: the agent must give one.
    let (code, message) = ann.request(schedule(&chat.id, "")).await.unwrap_err();
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(message.starts_with("number:"), "{message}");
    // A queue that takes no calls cannot call back.
    let (code, message) = ann.request(schedule(&web.id, CALLER)).await.unwrap_err();
    assert_eq!(code, Code::FailedPrecondition, "{message}");
    assert!(message.contains("takes no calls"), "{message}");
    // Someone else's interaction is not the agent's to call back.
    let mut bob = w.sb.desktop("bob", "tok-bob").await;
    let (code, _) = bob.request(schedule(&chat.id, CALLER)).await.unwrap_err();
    assert_eq!(code, Code::FailedPrecondition);

    let ack = ann.request(schedule(&chat.id, "0151 12345678")).await.unwrap();
    let cb = ack.interaction.unwrap();
    assert_eq!((cb.channel, cb.queue.as_str()), (pb::Channel::Voice as i32, "support"));
    assert_eq!(callback(&cb).number, CALLER);
    assert_eq!(cb.enqueued_at, chat.enqueued_at, "the chat's place");
    assert_eq!(cb.attributes.get("callback.from").map(String::as_str), Some(chat.id.as_str()));
    // Once per conversation.
    let again = ann.request(schedule(&chat.id, "0151 12345678")).await.unwrap().interaction.unwrap();
    assert_eq!(again.id, cb.id);

    // Ann completes the chats; the callback is hers next, dialled through pbx-1.
    ann.complete(&chat.id, "callback").await.unwrap();
    ann.complete(&web.id, "done").await.unwrap();
    let offer = ann.wait_offer().await.interaction.unwrap();
    assert_eq!(offer.id, cb.id);
    ann.accept(&cb.id).await.unwrap();
    let (i, dial, _) = next_dial(&mut watch).await;
    assert_eq!(
        (i.interaction_id.as_str(), dial.number.as_str(), dial.agent_id.as_str()),
        (cb.id.as_str(), CALLER, "ann")
    );
    w.sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_system_to_dial_them_agents_cannot_schedule_callbacks() {
    use pb::agent_request::Kind as Rq;
    let w = start(false, |_| {}).await;
    let mut admin = w.sb.admin().await;
    let mut q = queue("support", &[]);
    q.channels = vec![pb::Channel::Sms as i32, pb::Channel::Voice as i32];
    admin.put_queue(pb::PutQueueRequest { queue: Some(q), allow_update: true }).await.unwrap();
    let text = pb::CreateInteractionRequest {
        channel: pb::Channel::Sms as i32,
        customer_address: CALLER.into(),
        queue: "support".into(),
        body: "call me".into(),
        ..Default::default()
    };
    let sms = w.sb.interactions().await.create_interaction(text).await.unwrap().into_inner();
    let mut ann = w.sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    ann.wait_offer().await;
    ann.accept(&sms.id).await.unwrap();
    let req = Rq::ScheduleCallback(pb::ScheduleCallback {
        interaction_id: sms.id.clone(),
        number: String::new(),
        not_before: None,
    });
    let (code, message) = ann.request(req).await.unwrap_err();
    assert_eq!(code, Code::FailedPrecondition, "{message}");
    assert!(message.contains("cti.callback_system"), "{message}");
    assert_eq!(figures(&w.sb).await.callbacks_requested, 0);
    w.sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connected_callback_counts_its_service_level_at_pickup_and_then_is_a_call_like_any_other() {
    let w = start(false, |_| {}).await;
    let mut c = pbx(&w.sb).await;
    let mut watch = c.watch_routes(cti::WatchRoutesRequest {}).await.unwrap().into_inner();
    let mut ev = Events::open(&mut c).await;
    use cti::call_event::Kind;
    let r = c.route_call(route_req("call-1", CALLER)).await.unwrap().into_inner();
    let req = cti::CallbackRequest { call_id: "call-1".into(), number: String::new(), not_before: None };
    c.request_callback(req).await.unwrap();
    let mut ann = w.sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    assert_eq!(ann.wait_offer().await.interaction.unwrap().id, r.interaction_id);
    ann.accept(&r.interaction_id).await.unwrap();
    let (i, _, _) = next_dial(&mut watch).await;
    // Accepted, but the customer is not on the line yet: not within the service level so far
    // (cti.callback_service_level = "connected").
    let f = figures(&w.sb).await;
    assert_eq!((f.accepted, f.service_level_percent), (1, Some(0.0)), "{f:?}");
    let a = ev.call("d-answer", &i.call_id, 1, "", Kind::Answered(cti::Answered {})).await;
    assert_eq!(outcome(&a), cti::Outcome::Applied);
    let f = figures(&w.sb).await;
    assert_eq!((f.callbacks_connected, f.service_level_percent), (1, Some(100.0)), "{f:?}");

    // Ann transfers the call on her phone to the queue: Bob's phone rings for our call id, and
    // his phone answers it (not his desktop), as for any call.
    let mut bob = w.sb.desktop("bob", "tok-bob").await;
    bob.ready().await;
    let to_queue =
        cti::Transferred { attended: false, target: Some(cti::transferred::Target::Queue("support".into())) };
    let t = ev.call("d-xfer", &i.call_id, 2, "ann", Kind::Transferred(to_queue)).await;
    assert_eq!(outcome(&t), cti::Outcome::Applied, "{t:?}");
    let ring = loop {
        let next = next_instruction(&mut watch).await;
        if let Some(cti::route_instruction::Action::Ring(ring)) = next.action {
            assert_eq!(next.call_id, i.call_id, "the ring names the live call");
            break ring;
        }
    };
    assert_eq!(ring.agent_id, "bob");
    let offer = bob.wait_offer().await.interaction.unwrap();
    let (code, message) = bob.accept(&offer.id).await.unwrap_err();
    assert_eq!(code, Code::FailedPrecondition, "{message}");
    let a = ev.call("d-bob", &i.call_id, 3, "bob", Kind::Answered(cti::Answered {})).await;
    assert_eq!(outcome(&a), cti::Outcome::Applied, "{a:?}");
    let now = ix(&w.sb, &r.interaction_id).await;
    assert_eq!((now.state, now.agent_id.as_str()), (pb::InteractionState::Active as i32, "bob"));
    let f = figures(&w.sb).await;
    assert_eq!((f.accepted, f.callbacks_connected), (1, 1), "a transfer is not a new answer: {f:?}");
    w.sb.stop().await;
}
