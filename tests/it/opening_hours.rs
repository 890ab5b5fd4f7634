//! Opening hours applied to routing, on the routing clock: a closed queue offers nothing and keeps
//! what waits (HOLD), or sends it to another queue (OVERFLOW), at the instant its calendar says —
//! a holiday in the calendar's own zone, a daylight-saving day —; calls to a closed queue get the
//! CTI default destination; several instances apply a closing once; bad rules are refused.
//!
//! Each test sets the routing clock to a known instant before its instance starts (the clock is
//! Redis time plus an offset every instance reads), so calendars are plain hours on known dates.

use crate::common::*;

use std::time::Duration;

use chrono::{DateTime, Utc};
use switchboard::api::cti::pb as cti;
use switchboard::api::pb;
use switchboard_engine::{Engine, HoursWatch};
use tonic::Code;

const VOICEMAIL: &str = "sip:voicemail@pbx.test";
const SUPPORT_LINE: &str = "+49 30 1000";

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn ms(t: DateTime<Utc>) -> u64 {
    t.timestamp_millis() as u64
}

fn at(t: &prost_types::Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp(t.seconds, t.nanos as u32).unwrap()
}

/// Sets the routing clock of every instance on this Redis to `at` (forward or back).
async fn set_clock(redis_url: &str, engine: &Engine, at: DateTime<Utc>) {
    let client = redis::Client::open(redis_url).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut con).await.unwrap();
    let offset = at.timestamp_millis() - (secs * 1000 + micros / 1000);
    let _: () = redis::AsyncCommands::set(&mut con, engine.keys().clock(), offset).await.unwrap();
}

struct World {
    redis: RedisServer,
    sb: TestServer,
    engine: Engine,
}

/// Redis, the routing clock at `now`, then an instance (with the CTI hook's default destination)
/// without a CRM, so that the interaction log stays in Redis for the test to read.
async fn start_at(now: DateTime<Utc>) -> World {
    start_with_crm(now, false).await
}

async fn start_with_crm(now: DateTime<Utc>, crm: bool) -> World {
    let redis = RedisServer::start();
    let engine = Engine::connect(&redis.url, Default::default()).await.unwrap();
    set_clock(&redis.url, &engine, now).await;
    let mut cfg = config(&redis.url);
    cfg.crm.enabled = crm;
    let sb = TestServer::start_with(cfg).await;
    World { redis, sb, engine }
}

fn config(redis_url: &str) -> switchboard::config::Config {
    let mut cfg = test_config(redis_url);
    cfg.crm.enabled = false;
    // Tests move the routing clock by minutes; the instance must not look dead meanwhile.
    cfg.routing.presence_grace_secs = 3600;
    cfg.cti.default_destination = VOICEMAIL.into();
    cfg.cti.routing_points = vec![switchboard::channels::voice::config::RoutingPoint {
        name: String::new(),
        dialled: vec![SUPPORT_LINE.into()],
        queue: "support".into(),
        priority: None,
    }];
    cfg
}

fn hours(v: &[&str]) -> Vec<String> {
    v.iter().map(ToString::to_string).collect()
}

/// A calendar with the same hours every day.
fn daily(name: &str, zone: &str, day: &[&str]) -> pb::Calendar {
    let d = hours(day);
    pb::Calendar {
        name: name.into(),
        time_zone: zone.into(),
        weekly: Some(pb::WeeklyHours {
            mon: d.clone(),
            tue: d.clone(),
            wed: d.clone(),
            thu: d.clone(),
            fri: d.clone(),
            sat: d.clone(),
            sun: d,
        }),
        exceptions: vec![],
    }
}

async fn put_calendar(sb: &TestServer, c: pb::Calendar) {
    sb.admin().await.put_calendar(pb::PutCalendarRequest { calendar: Some(c), allow_update: true }).await.unwrap();
}

async fn put_queue(sb: &TestServer, q: pb::Queue) -> Result<pb::Queue, tonic::Status> {
    sb.admin()
        .await
        .put_queue(pb::PutQueueRequest { queue: Some(q), allow_update: true })
        .await
        .map(tonic::Response::into_inner)
}

async fn get_queue(sb: &TestServer, name: &str) -> Result<pb::Queue, tonic::Status> {
    sb.admin().await.get_queue(pb::GetQueueRequest { name: name.into() }).await.map(tonic::Response::into_inner)
}

async fn put_agent(sb: &TestServer, a: pb::Agent) {
    sb.admin().await.put_agent(pb::PutAgentRequest { agent: Some(a), allow_update: true }).await.unwrap();
}

fn rule(channel: pb::Channel, action: pb::ClosedAction, overflow: &str) -> pb::ClosedRule {
    pb::ClosedRule {
        channel: channel as i32,
        action: action as i32,
        overflow_queue: overflow.into(),
        message: String::new(),
    }
}

/// A queue keeping `calendar`, taking `channels`, with `closed` rules.
fn hours_queue(
    name: &str,
    skill: &str,
    calendar: &str,
    channels: &[pb::Channel],
    closed: Vec<pb::ClosedRule>,
) -> pb::Queue {
    pb::Queue {
        calendar: calendar.into(),
        channels: channels.iter().map(|c| *c as i32).collect(),
        closed,
        ..queue(name, &[(skill, 1)])
    }
}

async fn create(sb: &TestServer, r: pb::CreateInteractionRequest) -> Result<pb::Interaction, tonic::Status> {
    sb.interactions().await.create_interaction(r).await.map(tonic::Response::into_inner)
}

async fn chat(sb: &TestServer, queue: &str, who: &str) -> pb::Interaction {
    create(sb, new_chat(queue, who, "hello")).await.unwrap()
}

async fn ix(sb: &TestServer, id: &str) -> pb::Interaction {
    let r = pb::GetInteractionRequest { interaction_id: id.into(), include_messages: false };
    sb.interactions().await.get_interaction(r).await.unwrap().into_inner()
}

fn state(i: &pb::Interaction) -> pb::InteractionState {
    pb::InteractionState::try_from(i.state).unwrap()
}

async fn wait_closed(engine: &Engine, queue: &str, closed: bool) {
    eventually(&format!("queue {queue} closed = {closed}"), PATIENCE, || async move {
        (engine.queue_is_closed(queue).await.unwrap() == closed).then_some(())
    })
    .await;
}

/// One entry of the interaction log.
#[derive(Debug)]
struct Logged {
    typ: String,
    ix: String,
    queue: String,
    details: serde_json::Value,
}

async fn log(w: &World) -> Vec<Logged> {
    let client = redis::Client::open(w.redis.url.as_str()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let r: redis::streams::StreamRangeReply =
        redis::AsyncCommands::xrange_all(&mut con, w.engine.keys().events()).await.unwrap();
    switchboard_engine::events::entries_events(&r.ids)
        .into_iter()
        .map(|e| Logged {
            typ: e.typ,
            ix: e.interaction_id,
            queue: e.queue,
            details: serde_json::from_str(&e.details).unwrap_or_default(),
        })
        .collect()
}

fn count(log: &[Logged], typ: &str, queue: &str) -> usize {
    log.iter().filter(|e| e.typ == typ && e.queue == queue).count()
}

async fn offered_ids(desk: &mut Desktop, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        ids.push(desk.wait_offer().await.interaction.unwrap().id);
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closing_queue_holds_what_waits_and_offers_it_in_its_order_when_it_opens() {
    // Wednesday 16:55 UTC; the desk is open 09:00-17:00 and again 17:30-20:00.
    let w = start_at(utc("2026-06-10T16:55:00Z")).await;
    put_calendar(&w.sb, daily("desk", "UTC", &["09:00-17:00", "17:30-20:00"])).await;
    let chat_hold = rule(pb::Channel::Chat, pb::ClosedAction::Hold, "");
    put_queue(&w.sb, hours_queue("desk", "desk", "desk", &[pb::Channel::Chat], vec![chat_hold])).await.unwrap();
    put_agent(&w.sb, agent("ann", &[("desk", 5)])).await;
    assert!(!w.engine.queue_is_closed("desk").await.unwrap(), "open at 16:55");

    // Two chats wait (nobody is ready); at 17:00 the queue closes.
    let first = chat(&w.sb, "desk", "v1").await;
    let second = chat(&w.sb, "desk", "v2").await;
    w.engine.advance_clock(Duration::from_secs(6 * 60)).await.unwrap();
    wait_closed(&w.engine, "desk", true).await;
    let closed = log(&w).await.into_iter().find(|e| e.typ == "queue_closed").expect("a queue_closed event");
    assert_eq!(closed.queue, "desk");
    assert_eq!(closed.details["waiting"], 2);
    assert_eq!(closed.details["opens_at"], ms(utc("2026-06-10T17:30:00Z")));

    // Closed: a ready agent gets nothing, and a new chat is held (its rule) behind the others.
    let mut ann = w.sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    let third = chat(&w.sb, "desk", "v3").await;
    for i in [&first, &second, &third] {
        let now = ix(&w.sb, &i.id).await;
        assert_eq!((state(&now), now.queue.as_str()), (pb::InteractionState::Queued, "desk"), "{now:?}");
        assert_eq!(now.enqueued_at, i.enqueued_at, "keeps its age");
    }
    let answer = w.engine.closed_rule("desk", switchboard::model::Channel::Chat).await.unwrap().unwrap();
    assert_eq!(answer.opens_at_ms, Some(ms(utc("2026-06-10T17:30:00Z"))));

    // 17:30: it opens, and the ready agent is offered what waited, oldest first.
    w.engine.advance_clock(Duration::from_secs(30 * 60)).await.unwrap();
    let offered = offered_ids(&mut ann, 3).await;
    assert_eq!(offered, [first.id.clone(), second.id.clone(), third.id.clone()]);
    assert!(!w.engine.queue_is_closed("desk").await.unwrap());
    let log = log(&w).await;
    assert_eq!((count(&log, "queue_closed", "desk"), count(&log, "queue_opened", "desk")), (1, 1));
    w.sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closing_queue_overflows_what_waits_to_the_other_site_keeping_its_age() {
    let w = start_at(utc("2026-06-10T16:55:00Z")).await;
    put_calendar(&w.sb, daily("emea", "Europe/Berlin", &["08:00-19:00"])).await;
    // APAC has no calendar: always open.
    put_queue(&w.sb, hours_queue("apac", "apac", "", &[pb::Channel::Chat], vec![])).await.unwrap();
    let to_apac = rule(pb::Channel::Chat, pb::ClosedAction::Overflow, "apac");
    put_queue(&w.sb, hours_queue("emea", "emea", "emea", &[pb::Channel::Chat], vec![to_apac])).await.unwrap();
    put_agent(&w.sb, agent("bob", &[("apac", 5)])).await;

    let first = chat(&w.sb, "emea", "v1").await;
    let second = chat(&w.sb, "emea", "v2").await;
    let mut bob = w.sb.desktop("bob", "tok-bob").await;
    bob.ready().await;
    assert_eq!(state(&ix(&w.sb, &first.id).await), pb::InteractionState::Queued, "bob does not serve emea");

    // 19:00 in Berlin (17:00 UTC, summer time): emea closes and what waits goes to apac.
    w.engine.advance_clock(Duration::from_secs(6 * 60)).await.unwrap();
    let offered = offered_ids(&mut bob, 2).await;
    assert_eq!(offered, [first.id.clone(), second.id.clone()]);
    for i in [&first, &second] {
        let now = ix(&w.sb, &i.id).await;
        assert_eq!(now.queue, "apac");
        assert_eq!(now.attributes.get("closed.from").map(String::as_str), Some("emea"));
        assert_eq!(now.enqueued_at, i.enqueued_at, "keeps its age");
    }
    let log = log(&w).await;
    let moves: Vec<&Logged> = log.iter().filter(|e| e.typ == "overflowed").collect();
    assert_eq!(moves.len(), 2, "{log:?}");
    for m in moves {
        assert_eq!(
            (m.queue.as_str(), &m.details["to_queue"], &m.details["reason"]),
            ("emea", &"apac".into(), &"closed".into())
        );
    }
    assert_eq!(count(&log, "queue_closed", "emea"), 1);

    // A new chat for emea while it is closed is created in apac, saying where it came from.
    let late = chat(&w.sb, "emea", "v3").await;
    assert_eq!(late.queue, "apac");
    assert_eq!(late.attributes.get("closed.from").map(String::as_str), Some("emea"));
    assert_eq!(bob.wait_offer().await.interaction.unwrap().id, late.id);
    w.sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holiday_closes_the_queue_for_the_local_date_of_its_time_zone() {
    // Tokyo: open round the clock but on Christmas Day, Tokyo's date. 14:55 UTC on the 25th is
    // 23:55 on the 25th in Tokyo: closed, though in UTC the day is only half over.
    let w = start_at(utc("2026-12-25T14:55:00Z")).await;
    let mut tokyo = daily("tokyo", "Asia/Tokyo", &["00:00-24:00"]);
    tokyo.exceptions = vec![pb::CalendarException {
        name: "Christmas".into(),
        from: "2026-12-25".into(),
        to: String::new(),
        hours: vec![],
    }];
    put_calendar(&w.sb, tokyo).await;
    put_queue(&w.sb, hours_queue("jp", "jp", "tokyo", &[pb::Channel::Email], vec![])).await.unwrap();
    put_agent(&w.sb, agent("kei", &[("jp", 5)])).await;
    assert!(w.engine.queue_is_closed("jp").await.unwrap(), "closed from its creation");
    let answer = w.engine.closed_rule("jp", switchboard::model::Channel::Email).await.unwrap().unwrap();
    assert_eq!(answer.action, switchboard::model::ClosedAction::Hold, "email's default");
    assert_eq!(answer.opens_at_ms, Some(ms(utc("2026-12-25T15:00:00Z"))), "Tokyo's midnight");
    let f = w.sb.supervisor().await.get_queue_figures(pb::GetQueueFiguresRequest { queue: "jp".into() }).await;
    let f = f.unwrap().into_inner();
    assert_eq!((f.open, f.next_change.as_ref().map(at)), (Some(false), Some(utc("2026-12-25T15:00:00Z"))));

    // An email is held (its channel's default), not offered to the ready agent.
    let mut kei = w.sb.desktop("kei", "tok-kei").await;
    kei.ready().await;
    let email = pb::CreateInteractionRequest {
        channel: pb::Channel::Email as i32,
        customer_address: "taro@example.jp".into(),
        subject: "Order".into(),
        queue: "jp".into(),
        body: "Where is my order?".into(),
        ..Default::default()
    };
    let held = create(&w.sb, email).await.unwrap();
    assert_eq!(state(&ix(&w.sb, &held.id).await), pb::InteractionState::Queued);

    // The 26th begins in Tokyo (15:00 UTC on the 25th): it opens, and the email is offered.
    w.engine.advance_clock(Duration::from_secs(6 * 60)).await.unwrap();
    assert_eq!(kei.wait_offer().await.interaction.unwrap().id, held.id);
    wait_closed(&w.engine, "jp", false).await;

    // The day before, it closes at Tokyo's midnight too: 15:00 UTC on the 24th. (The clock goes
    // back a day; a running instance takes that within a heartbeat.)
    set_clock(&w.redis.url, &w.engine, utc("2026-12-24T14:55:00Z")).await;
    let f = w.sb.supervisor().await.get_queue_figures(pb::GetQueueFiguresRequest { queue: "jp".into() }).await;
    assert_eq!(f.unwrap().into_inner().open, Some(true), "23:55 on the 24th in Tokyo");
    w.engine.advance_clock(Duration::from_secs(6 * 60)).await.unwrap();
    wait_closed(&w.engine, "jp", true).await;
    let closings: Vec<serde_json::Value> =
        log(&w).await.into_iter().filter(|e| e.typ == "queue_closed").map(|e| e.details["opens_at"].clone()).collect();
    assert_eq!(closings, [ms(utc("2026-12-25T15:00:00Z")); 2].map(serde_json::Value::from));
    w.sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_day_clocks_go_forward_the_queue_opens_at_the_local_hour() {
    // Sunday 2026-03-29: Berlin moves from CET (UTC+1) to CEST (UTC+2) at 01:00 UTC. Opening at
    // 09:00 local is 07:00 UTC that day — an hour earlier than the day before.
    let w = start_at(utc("2026-03-29T06:55:00Z")).await;
    put_calendar(&w.sb, daily("berlin", "Europe/Berlin", &["09:00-17:00"])).await;
    let sms_hold = rule(pb::Channel::Unspecified, pb::ClosedAction::Hold, "");
    put_queue(&w.sb, hours_queue("de", "de", "berlin", &[pb::Channel::Sms], vec![sms_hold])).await.unwrap();
    put_agent(&w.sb, agent("uwe", &[("de", 5)])).await;
    assert!(w.engine.queue_is_closed("de").await.unwrap(), "08:55 in Berlin: closed");
    let answer = w.engine.closed_rule("de", switchboard::model::Channel::Sms).await.unwrap().unwrap();
    assert_eq!(answer.opens_at_ms, Some(ms(utc("2026-03-29T07:00:00Z"))));

    let mut uwe = w.sb.desktop("uwe", "tok-uwe").await;
    uwe.ready().await;
    let text = pb::CreateInteractionRequest {
        channel: pb::Channel::Sms as i32,
        customer_address: "+4915112345678".into(),
        queue: "de".into(),
        body: "Hallo?".into(),
        ..Default::default()
    };
    let held = create(&w.sb, text).await.unwrap();
    assert_eq!(state(&ix(&w.sb, &held.id).await), pb::InteractionState::Queued);

    // 07:01 UTC is 09:01 CEST: open (an hour before 09:00 CET would have been).
    w.engine.advance_clock(Duration::from_secs(6 * 60)).await.unwrap();
    assert_eq!(uwe.wait_offer().await.interaction.unwrap().id, held.id);
    let opened = log(&w).await.into_iter().find(|e| e.typ == "queue_opened").expect("queue_opened");
    assert_eq!(opened.details["waiting"], 1);
    w.sb.stop().await;
}

fn route_req(call_id: &str) -> cti::RouteRequest {
    cti::RouteRequest {
        call_id: call_id.into(),
        caller: "+49 151 23456789".into(),
        dialled: SUPPORT_LINE.into(),
        attempt: 1,
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_to_a_closed_queue_gets_the_default_destination_and_is_recorded() {
    // With the built-in CRM: the refused call is in the caller's history.
    let w = start_with_crm(utc("2026-06-10T22:00:00Z"), true).await;
    put_calendar(&w.sb, daily("office", "UTC", &["09:00-17:00"])).await;
    // Voice has no rule: its default, refuse.
    put_queue(&w.sb, hours_queue("support", "support", "office", &[pb::Channel::Voice], vec![])).await.unwrap();
    put_agent(&w.sb, agent("ann", &[("support", 5), ("night", 5)])).await;
    let mut ann = w.sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    let mut pbx = cti::cti_client::CtiClient::new(w.sb.with_key(TELEPHONY_KEY).await);

    let r = pbx.route_call(route_req("call-1")).await.unwrap().into_inner();
    match &r.action {
        Some(cti::route_response::Action::DefaultRoute(d)) => {
            assert_eq!((d.destination.as_str(), d.reason.as_str()), (VOICEMAIL, "closed"));
        }
        other => panic!("expected the default route, got {other:?}"),
    }
    // Recorded: an interaction that ended at once, counted apart from abandoned calls.
    let call = ix(&w.sb, &r.interaction_id).await;
    assert_eq!((state(&call), call.end_reason.as_str()), (pb::InteractionState::Abandoned, "closed"));
    let again = pbx.route_call(route_req("call-1")).await.unwrap().into_inner();
    assert_eq!(again, r, "a repeated request is the same call");
    let refused = call;
    let f = w.sb.supervisor().await.get_queue_figures(pb::GetQueueFiguresRequest { queue: "support".into() }).await;
    assert_eq!(f.unwrap().into_inner().abandoned, 0);

    // With a night queue to overflow to, the call is created there and rings the free agent.
    put_queue(&w.sb, hours_queue("night", "night", "", &[pb::Channel::Voice], vec![])).await.unwrap();
    let to_night = rule(pb::Channel::Voice, pb::ClosedAction::Overflow, "night");
    put_queue(&w.sb, hours_queue("support", "support", "office", &[pb::Channel::Voice], vec![to_night])).await.unwrap();
    let r = pbx.route_call(route_req("call-2")).await.unwrap().into_inner();
    match &r.action {
        Some(cti::route_response::Action::Ring(ring)) => assert_eq!(ring.agent_id, "ann"),
        other => panic!("expected a ring, got {other:?}"),
    }
    let call = ix(&w.sb, &r.interaction_id).await;
    assert_eq!(call.queue, "night");
    assert_eq!(call.attributes.get("closed.from").map(String::as_str), Some("support"));

    // Ann's screen-pop shows the caller's refused call: ended at once, because it was closed.
    let desk = pb::agent_desktop_client::AgentDesktopClient::new(w.sb.with_key(ADMIN_KEY).await);
    let history = eventually("the refused call in the CRM", PATIENCE, || {
        let (mut desk, id) = (desk.clone(), call.id.clone());
        async move {
            let pop = desk.get_screen_pop(pb::GetScreenPopRequest { interaction_id: id }).await.ok()?.into_inner();
            (!pop.history.is_empty()).then_some(pop.history)
        }
    })
    .await;
    assert_eq!(history[0].interaction_id, refused.id);
    assert_eq!((history[0].outcome.as_str(), history[0].notes.as_str()), ("abandoned", "closed"));
    w.sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_interactions_api_refuses_a_closed_queue_unless_asked_to_hold() {
    let w = start_at(utc("2026-06-10T22:00:00Z")).await;
    put_calendar(&w.sb, daily("office", "UTC", &["09:00-17:00"])).await;
    // Chat: its default, refuse.
    put_queue(&w.sb, hours_queue("web", "web", "office", &[pb::Channel::Chat], vec![])).await.unwrap();
    let e = create(&w.sb, new_chat("web", "v1", "hi")).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert_eq!(e.message(), "queue: \"web\" is closed until 2026-06-11T09:00:00Z");
    let f = w.sb.supervisor().await.get_queue_figures(pb::GetQueueFiguresRequest { queue: "web".into() }).await;
    assert_eq!(f.unwrap().into_inner().waiting, 0, "nothing created");

    let held = create(&w.sb, pb::CreateInteractionRequest { hold_when_closed: true, ..new_chat("web", "v1", "hi") })
        .await
        .unwrap();
    assert_eq!((state(&held), held.queue.as_str()), (pb::InteractionState::Queued, "web"));
    w.sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_instances_apply_a_closing_once() {
    let w = start_at(utc("2026-06-10T16:55:00Z")).await;
    let other = TestServer::start_with(config(&w.redis.url)).await;
    put_calendar(&w.sb, daily("emea", "UTC", &["09:00-17:00"])).await;
    put_queue(&w.sb, hours_queue("apac", "apac", "", &[pb::Channel::Chat], vec![])).await.unwrap();
    let to_apac = rule(pb::Channel::Unspecified, pb::ClosedAction::Overflow, "apac");
    put_queue(&other, hours_queue("emea", "emea", "emea", &[pb::Channel::Chat], vec![to_apac])).await.unwrap();
    let mut waiting = Vec::new();
    for v in ["v1", "v2", "v3"] {
        waiting.push(chat(&w.sb, "emea", v).await.id);
    }

    // Both instances, and two more checkers racing them, see 17:00 pass.
    w.engine.advance_clock(Duration::from_secs(6 * 60)).await.unwrap();
    let now = w.engine.now_ms().await.unwrap();
    let second = Engine::connect(&w.redis.url, Default::default()).await.unwrap();
    let (mut a, mut b) = (HoursWatch::default(), HoursWatch::default());
    let (ra, rb) = tokio::join!(w.engine.check_opening_hours(&mut a, now), second.check_opening_hours(&mut b, now));
    let changed: usize = [ra.unwrap(), rb.unwrap()].iter().map(|c| c.changed.len()).sum();
    assert!(changed <= 1, "one closing, applied at most once here");
    wait_closed(&w.engine, "emea", true).await;
    eventually("all moved to apac", PATIENCE, || async {
        let mut all = true;
        for id in &waiting {
            all &= ix(&w.sb, id).await.queue == "apac";
        }
        all.then_some(())
    })
    .await;
    // Another instance's check now changes nothing.
    let opens = Some(ms(utc("2026-06-11T09:00:00Z")));
    assert!(!w.engine.set_queue_open("emea", false, opens).await.unwrap());
    let again = second.check_opening_hours(&mut HoursWatch::default(), now).await.unwrap();
    assert_eq!(again.changed, []);

    let log = log(&w).await;
    assert_eq!(count(&log, "queue_closed", "emea"), 1, "{log:?}");
    let moves: Vec<&str> = log.iter().filter(|e| e.typ == "overflowed").map(|e| e.ix.as_str()).collect();
    assert_eq!(moves, waiting.iter().map(String::as_str).collect::<Vec<_>>(), "one move each");
    other.stop().await;
    w.sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_closed_rules_are_refused_naming_the_field_and_change_nothing() {
    let w = start_at(utc("2026-06-10T12:00:00Z")).await;
    put_calendar(&w.sb, daily("office", "UTC", &["09:00-17:00"])).await;
    put_queue(&w.sb, hours_queue("email-only", "x", "", &[pb::Channel::Email], vec![])).await.unwrap();
    let good = hours_queue("sales", "sales", "office", &[pb::Channel::Voice, pb::Channel::Chat], vec![]);
    put_queue(&w.sb, good.clone()).await.unwrap();
    let stored = get_queue(&w.sb, "sales").await.unwrap();

    use pb::Channel as C;
    use pb::ClosedAction as A;
    let long = pb::ClosedRule { message: "x".repeat(1001), ..rule(C::Chat, A::Hold, "") };
    let cases: Vec<(Vec<pb::ClosedRule>, Code, &str)> = vec![
        (
            vec![rule(C::Chat, A::Overflow, "nowhere")],
            Code::NotFound,
            "queue.closed[0].overflow_queue: no queue named \"nowhere\"",
        ),
        (
            vec![rule(C::Voice, A::Hold, ""), rule(C::Chat, A::Overflow, "@self")],
            Code::InvalidArgument,
            "queue.closed[1].overflow_queue: a queue cannot overflow to itself",
        ),
        (
            vec![rule(C::Chat, A::Hold, ""), rule(C::Voice, A::Overflow, "email-only")],
            Code::InvalidArgument,
            "queue.closed[1].overflow_queue: queue \"email-only\" does not take voice interactions",
        ),
        (vec![rule(C::Chat, A::Overflow, "")], Code::InvalidArgument, "queue.closed[0].overflow_queue: is required"),
        (
            vec![rule(C::Chat, A::Hold, "email-only")],
            Code::InvalidArgument,
            "queue.closed[0].overflow_queue: only a rule with action overflow",
        ),
        (vec![rule(C::Chat, A::Unspecified, "")], Code::InvalidArgument, "queue.closed[0].action: is required"),
        (
            vec![rule(C::Chat, A::Hold, ""), rule(C::Chat, A::Refuse, "")],
            Code::InvalidArgument,
            "queue.closed[1].channel: closed[0] is the rule for chat already",
        ),
        (
            vec![rule(C::Email, A::Hold, "")],
            Code::InvalidArgument,
            "queue.closed[0].channel: the queue does not take email interactions",
        ),
        (vec![long], Code::InvalidArgument, "queue.closed[0].message: must be at most 1000 bytes"),
    ];
    for (rules, code, message) in cases {
        for name in ["sales", "fresh"] {
            let mut rules = rules.clone();
            for r in &mut rules {
                if r.overflow_queue == "@self" {
                    r.overflow_queue = name.into();
                }
            }
            let q = pb::Queue { name: name.into(), closed: rules, ..good.clone() };
            let e = put_queue(&w.sb, q).await.unwrap_err();
            assert_eq!(e.code(), code, "{e:?}");
            assert!(e.message().starts_with(message), "{:?} does not start with {message:?}", e.message());
        }
        assert_eq!(get_queue(&w.sb, "sales").await.unwrap(), stored, "unchanged");
        assert_eq!(get_queue(&w.sb, "fresh").await.unwrap_err().code(), Code::NotFound, "not created");
    }

    // A good rule is kept as given; the queue it overflows to cannot be deleted while it does.
    put_queue(&w.sb, hours_queue("night", "night", "", &[pb::Channel::Voice, pb::Channel::Chat], vec![]))
        .await
        .unwrap();
    let rules = vec![
        pb::ClosedRule { message: "Back {opens}.".into(), ..rule(C::Chat, A::Refuse, "") },
        rule(C::Unspecified, A::Overflow, "night"),
    ];
    let q = put_queue(&w.sb, pb::Queue { closed: rules.clone(), ..good.clone() }).await.unwrap();
    assert_eq!(q.closed, rules);
    let e = w.sb.admin().await.delete_queue(pb::DeleteQueueRequest { name: "night".into() }).await.unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert!(e.message().starts_with("name: queue \"sales\" overflows voice to \"night\""), "{}", e.message());
    w.sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_level_leaves_out_the_time_a_queue_was_closed() {
    // 16:59 UTC; the desk closes 17:00-17:10. A chat waits through the closing and is answered
    // 30 s after the opening: 11.5 minutes in all, 90 s of them while the desk was open.
    let w = start_at(utc("2026-06-10T16:59:00Z")).await;
    put_calendar(&w.sb, daily("desk", "UTC", &["09:00-17:00", "17:10-20:00"])).await;
    let hold = rule(pb::Channel::Chat, pb::ClosedAction::Hold, "");
    let q =
        pb::Queue { service_level_secs: 120, ..hours_queue("desk", "desk", "desk", &[pb::Channel::Chat], vec![hold]) };
    put_queue(&w.sb, q.clone()).await.unwrap();
    // The same desk, counting closed time as its operator asked.
    let hold = rule(pb::Channel::Chat, pb::ClosedAction::Hold, "");
    let strict = pb::Queue {
        name: "strict".into(),
        service_level_counts_closed_time: true,
        ..hours_queue("strict", "desk", "desk", &[pb::Channel::Chat], vec![hold])
    };
    let strict = pb::Queue { service_level_secs: 120, ..strict };
    put_queue(&w.sb, strict).await.unwrap();
    assert!(get_queue(&w.sb, "strict").await.unwrap().service_level_counts_closed_time);
    put_agent(&w.sb, agent("ann", &[("desk", 5)])).await;
    let c = chat(&w.sb, "desk", "v1").await;
    let s = chat(&w.sb, "strict", "v2").await;
    // The clock moves a minute at a time, as it would: the closing is seen as it comes.
    w.engine.advance_clock(Duration::from_secs(60)).await.unwrap();
    wait_closed(&w.engine, "desk", true).await;
    w.engine.advance_clock(Duration::from_secs(10 * 60)).await.unwrap();
    wait_closed(&w.engine, "desk", false).await;
    w.engine.advance_clock(Duration::from_secs(30)).await.unwrap();

    let mut ann = w.sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    for _ in 0..2 {
        let offered = ann.wait_offer().await.interaction.unwrap();
        assert!(offered.id == c.id || offered.id == s.id, "{offered:?}");
        ann.accept(&offered.id).await.unwrap();
    }
    let figures = |queue: &str| {
        let r = pb::GetQueueFiguresRequest { queue: queue.into() };
        let sb = &w.sb;
        async move { sb.supervisor().await.get_queue_figures(r).await.unwrap().into_inner() }
    };
    let strict = figures("strict").await;
    assert_eq!((strict.accepted, strict.service_level_percent), (1, Some(0.0)), "11.5 minutes is over 120 s");
    let f = figures("desk").await;
    assert_eq!(f.accepted, 1);
    assert_eq!(f.service_level_percent, Some(100.0), "answered within 120 s of open time");
    // The speed of answer is what the customer lived: the whole wait.
    assert!(f.average_speed_of_answer_secs >= 690.0, "ASA {}", f.average_speed_of_answer_secs);
}
