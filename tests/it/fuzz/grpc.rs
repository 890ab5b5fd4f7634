//! gRPC requests' fields, sent to a real daemon on Redis: interactions at and over their limits,
//! telephony events and route requests on one CTI stream, timestamps anywhere in their range,
//! and raw protobuf (byte soup, strings that are not UTF-8). The daemon runs in this process, so
//! a panic anywhere in it is seen by the panic hook, not only as a broken call.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use prost::Message as _;
use prost::bytes::{Buf, BufMut};
use switchboard::api::cti::pb as cti;
use switchboard::api::pb;
use switchboard::api::pb::agent_request::Kind as Rq;
use switchboard::model::{NewInteraction, ValidationError};
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

use super::{check, run, tricky_string};
use crate::common::*;
use crate::cti::pbx;

/// Panics anywhere in the process since the hook was set (the daemon's tasks included).
pub(super) static PANICS: AtomicU64 = AtomicU64::new(0);

fn count_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::Relaxed);
        previous(info);
    }));
}

/// Codes a request may end with. INTERNAL, UNKNOWN (a handler that panicked: the stream is
/// reset), UNAVAILABLE and DEADLINE_EXCEEDED are not among them.
fn acceptable(code: Code) -> bool {
    matches!(
        code,
        Code::Ok
            | Code::InvalidArgument
            | Code::NotFound
            | Code::FailedPrecondition
            | Code::AlreadyExists
            | Code::OutOfRange
            | Code::PermissionDenied
            | Code::ResourceExhausted
    )
}

pub(super) struct World {
    _redis: RedisServer,
    pub(super) sb: TestServer,
    pub(super) rt: tokio::runtime::Runtime,
}

/// Redis and a daemon with queue `support` (every channel), agents ann (phone 1001) and bob,
/// and a routing point for the support line.
fn world() -> World {
    world_with(|_| {})
}

/// [`world`] with the config changed by `tune` first.
pub(super) fn world_with(tune: impl FnOnce(&mut switchboard::config::Config)) -> World {
    count_panics();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (redis, sb) = rt.block_on(async {
        let redis = RedisServer::start();
        let mut cfg = test_config(&redis.url);
        cfg.cti.default_destination = "sip:voicemail@pbx.test".into();
        cfg.cti.routing_points = vec![switchboard::channels::voice::config::RoutingPoint {
            name: String::new(),
            dialled: vec![crate::cti::SUPPORT_LINE.into()],
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
        (redis, sb)
    });
    World { _redis: redis, sb, rt }
}

pub(super) fn no_new_panics(before: u64) -> Result<(), TestCaseError> {
    let now = PANICS.load(Ordering::Relaxed);
    check(now == before, || format!("{} panic(s) in the daemon (see the log above)", now - before))
}

fn status_of<T>(r: &Result<T, tonic::Status>) -> (Code, String) {
    match r {
        Ok(_) => (Code::Ok, String::new()),
        Err(s) => (s.code(), s.message().to_string()),
    }
}

// ---- interactions ----------------------------------------------------------------------------

fn around(limit: usize) -> impl Strategy<Value = usize> {
    prop_oneof![3 => Just(limit), 3 => Just(limit + 1), 1 => Just(limit.saturating_sub(1)), 1 => 0..=limit * 2]
}

fn text_of(len: usize) -> impl Strategy<Value = String> {
    (0..5usize).prop_map(move |k| {
        let mut s = super::sized(["a", "é", "😀", "a", "a"][k], len);
        if k == 3 && !s.is_empty() {
            s.replace_range(0..1, "\u{1}");
        }
        if k == 4 && !s.is_empty() {
            s.replace_range(0..1, "\n");
        }
        s
    })
}

fn create_request() -> impl Strategy<Value = pb::CreateInteractionRequest> {
    let channel = prop_oneof![8 => 1..=4i32, 1 => Just(0i32), 1 => any::<i32>()];
    let address = prop_oneof![3 => Just("+4915112345678".to_string()), 1 => Just(String::new()), 2 => around(320).prop_flat_map(text_of)];
    let subject = prop_oneof![2 => Just(String::new()), 1 => around(1000).prop_flat_map(text_of)];
    // Bodies at 64 KiB are a few per cent of the cases: the valid ones stay in Redis.
    let body = prop_oneof![12 => tricky_string(20), 1 => around(65_536).prop_flat_map(text_of)];
    let queue = prop_oneof![8 => Just("support".to_string()), 1 => "[a-z]{1,8}", 1 => "[a-z]{0,3}[ /é\u{0}]", 1 => Just("q".repeat(65))];
    let attrs = prop_oneof![
        4 => proptest::collection::hash_map("[a-z._]{1,10}", "\\PC{0,10}", 0..4),
        1 => proptest::collection::hash_map(prop_oneof![Just(String::new()), Just("k".repeat(129)), "[a-z]\u{0}"], Just("v".to_string()), 1..2),
        1 => around(1024).prop_flat_map(text_of).prop_map(|v| std::iter::once(("k".to_string(), v)).collect()),
        1 => (64..=65usize).prop_map(|n| (0..n).map(|i| (format!("k{i}"), "v".to_string())).collect()),
    ];
    // Unique keys: a key used before returns that interaction, whatever else the request says.
    let key = prop_oneof![3 => Just(String::new()), 1 => (around(200), "[a-z0-9]{16}").prop_map(|(n, u)| format!("{u}{}", "k".repeat(n.saturating_sub(16))))];
    let priority = prop_oneof![3 => Just(None), 1 => Just(Some(1000)), 1 => Just(Some(1001)), 1 => Just(Some(-1)), 1 => any::<i32>().prop_map(Some)];
    let preferred = prop_oneof![4 => Just(String::new()), 1 => Just("ann".to_string()), 1 => "[a-z@.]{1,8}", 1 => Just("a".repeat(65))];
    let wait = prop_oneof![Just(0u32), Just(86_400), Just(86_401), any::<u32>()];
    ((channel, address, subject, body, queue), (attrs, key, priority, preferred, wait, any::<bool>())).prop_map(
        |(
            (channel, customer_address, subject, body, queue),
            (attributes, idempotency_key, priority, preferred_agent_id, preferred_agent_wait_secs, hold_when_closed),
        )| {
            pb::CreateInteractionRequest {
                channel,
                customer_address,
                subject,
                body,
                queue,
                attributes,
                idempotency_key,
                priority,
                preferred_agent_id,
                preferred_agent_wait_secs,
                hold_when_closed,
            }
        },
    )
}

/// What the model's validation says of a request, in the model's terms.
fn model_verdict(r: &pb::CreateInteractionRequest) -> Result<(), ValidationError> {
    let channel = match pb::Channel::try_from(r.channel) {
        Ok(pb::Channel::Voice) => switchboard::model::Channel::Voice,
        Ok(pb::Channel::Chat) => switchboard::model::Channel::Chat,
        Ok(pb::Channel::Sms) => switchboard::model::Channel::Sms,
        Ok(pb::Channel::Email) => switchboard::model::Channel::Email,
        _ => return Err(ValidationError::new("channel", "")),
    };
    NewInteraction {
        idempotency_key: r.idempotency_key.clone(),
        channel: Some(channel),
        customer_address: r.customer_address.clone(),
        subject: r.subject.clone(),
        attributes: r.attributes.clone().into_iter().collect(),
        queue: r.queue.clone(),
        priority: r.priority,
        body: r.body.clone(),
        preferred_agent_id: r.preferred_agent_id.clone(),
        preferred_agent_wait_secs: r.preferred_agent_wait_secs,
        ..Default::default()
    }
    .validate()
    .map(drop)
}

#[test]
fn fuzz_grpc_create_interaction() {
    super::with_big_stack(|| {
        // Whatever the fields, the answer is the model's verdict: refused naming the field the model
        // names, or taken (queue `support` takes every channel).
        let w = world();
        let client = RefCell::new(w.rt.block_on(w.sb.interactions()));
        run("grpc.create_interaction", create_request(), |req| {
            let before = PANICS.load(Ordering::Relaxed);
            let r = w.rt.block_on(client.borrow_mut().create_interaction(req.clone()));
            let (code, message) = status_of(&r);
            no_new_panics(before)?;
            check(acceptable(code), || format!("{code:?}: {message}"))?;
            match model_verdict(&req) {
                Err(e) => check(code == Code::InvalidArgument && message.starts_with(&format!("{}:", e.field)), || {
                    format!("the model refuses {}, the API answered {code:?}: {message}", e.field)
                }),
                Ok(()) if req.queue == "support" && req.preferred_agent_id.is_empty() => {
                    check(code == Code::Ok, || format!("valid, refused with {code:?}: {message}"))
                }
                Ok(()) => Ok(()),
            }
        });
    });
}

// ---- CTI -------------------------------------------------------------------------------------

fn cti_text() -> impl Strategy<Value = String> {
    prop_oneof![6 => "[a-z0-9-]{1,10}", 1 => Just(String::new()), 1 => tricky_string(12), 1 => around(256).prop_map(|n| "d".repeat(n))]
}

fn call_kind() -> impl Strategy<Value = Option<cti::call_event::Kind>> {
    use cti::call_event::Kind as K;
    let target = prop_oneof![
        cti_text().prop_map(cti::transferred::Target::Queue),
        prop_oneof![Just("ann".to_string()), Just("bob".to_string()), cti_text()]
            .prop_map(cti::transferred::Target::AgentId),
        cti_text().prop_map(cti::transferred::Target::External),
    ];
    prop_oneof![
        1 => Just(None),
        2 => (cti_text(), prop_oneof![Just(String::new()), Just("support".to_string()), cti_text()], proptest::option::of(any::<i32>()))
            .prop_map(|(routing_point, queue, priority)| Some(K::Offered(cti::Offered { routing_point, queue, priority }))),
        6 => prop::sample::select(vec![
            K::Ringing(cti::Ringing {}), K::Answered(cti::Answered {}), K::Held(cti::Held {}), K::Retrieved(cti::Retrieved {}),
            K::Conferenced(cti::Conferenced {}), K::RingNoAnswer(cti::RingNoAnswer {}),
        ]).prop_map(Some),
        2 => (cti_text(), any::<i32>()).prop_map(|(cause, by)| Some(K::Released(cti::Released { cause, by }))),
        1 => cti_text().prop_map(|cause| Some(K::Abandoned(cti::Abandoned { cause }))),
        1 => (any::<bool>(), proptest::option::of(target)).prop_map(|(attended, target)| Some(K::Transferred(cti::Transferred { attended, target }))),
    ]
}

fn telephony_event() -> impl Strategy<Value = cti::TelephonyEvent> {
    let call_id =
        prop_oneof![6 => prop::sample::select(vec!["c1", "c2", "c3", "c4"]).prop_map(String::from), 1 => cti_text()];
    let agent = prop_oneof![4 => prop::sample::select(vec!["ann", "bob", ""]).prop_map(String::from), 1 => cti_text()];
    let device = prop_oneof![3 => prop::sample::select(vec!["1001", "sip:bob@pbx.test", ""]).prop_map(String::from), 1 => cti_text()];
    let user_data = proptest::collection::hash_map(cti_text(), cti_text(), 0..3);
    let call =
        (call_id, 0..20u64, agent.clone(), device.clone(), call_kind(), user_data, cti_text(), cti_text(), cti_text())
            .prop_map(|(call_id, sequence, agent_id, device, kind, user_data, caller, leg_id, linked_call_id)| {
                cti::telephony_event::Event::Call(cti::CallEvent {
                    call_id,
                    sequence,
                    agent_id,
                    device,
                    kind,
                    user_data,
                    caller,
                    dialled: crate::cti::SUPPORT_LINE.into(),
                    leg_id,
                    linked_call_id,
                })
            });
    let phone = (agent, device, prop_oneof![0..=5i32, any::<i32>()]).prop_map(|(agent_id, device, state)| {
        cti::telephony_event::Event::Phone(cti::PhoneEvent { agent_id, device, state })
    });
    (
        prop_oneof![6 => "e[0-9]{1,12}", 1 => cti_text()],
        prop_oneof![4 => call.prop_map(Some), 2 => phone.prop_map(Some), 1 => Just(None)],
    )
        .prop_map(|(event_id, event)| cti::TelephonyEvent { event_id, at: None, event })
}

fn route_request() -> impl Strategy<Value = cti::RouteRequest> {
    let caller = prop_oneof![3 => "\\+49 ?1[0-9]{2} ?[0-9]{5,8}", 1 => cti_text(), 1 => "[0-9+() -]{0,40}"];
    let dialled = prop_oneof![3 => Just(crate::cti::SUPPORT_LINE.to_string()), 1 => cti_text()];
    let user_data = prop_oneof![
        4 => proptest::collection::hash_map(cti_text(), cti_text(), 0..4),
        1 => (50..=51usize).prop_map(|n| (0..n).map(|i| (format!("k{i}"), "v".to_string())).collect()),
        1 => around(1024).prop_map(|n| std::iter::once(("k".to_string(), "v".repeat(n))).collect()),
    ];
    (cti_text(), caller, dialled, cti_text(), 0..4u32, user_data).prop_map(
        |(call_id, caller, dialled, routing_point, attempt, user_data)| cti::RouteRequest {
            call_id,
            caller,
            dialled,
            routing_point,
            attempt,
            user_data,
            ..Default::default()
        },
    )
}

/// A PublishEvents stream that sends any event, even one with no call or phone in it.
struct EventStream {
    tx: tokio::sync::mpsc::Sender<cti::TelephonyEvent>,
    acks: tonic::Streaming<cti::EventAck>,
}

impl EventStream {
    async fn open(c: &mut crate::cti::Cti) -> EventStream {
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let acks = c.publish_events(tokio_stream::wrappers::ReceiverStream::new(rx)).await.unwrap().into_inner();
        EventStream { tx, acks }
    }

    async fn send(&mut self, e: cti::TelephonyEvent) -> Result<cti::EventAck, String> {
        self.tx.send(e).await.map_err(|_| "the stream is closed".to_string())?;
        match tokio::time::timeout(PATIENCE, self.acks.message()).await {
            Ok(Ok(Some(ack))) => Ok(ack),
            Ok(Ok(None)) => Err("the stream ended".into()),
            Ok(Err(s)) => Err(format!("the stream failed: {s:?}")),
            Err(_) => Err(format!("no ack within {PATIENCE:?}")),
        }
    }
}

#[test]
fn fuzz_grpc_cti() {
    super::with_big_stack(|| {
        // One telephony system's stream of events, and route requests between them, in any order
        // and shape: every event is acknowledged with its id (applied, duplicate, stale, ignored, or
        // rejected saying which field), every route request answered, nothing panics.
        let w = world();
        let (pbx_client, events) = w.rt.block_on(async {
            let mut c = pbx(&w.sb).await;
            let events = EventStream::open(&mut c).await;
            (c, events)
        });
        let state = RefCell::new((pbx_client, events));
        let strategy = prop_oneof![3 => telephony_event().prop_map(Ok), 1 => route_request().prop_map(Err)];
        run("grpc.cti", strategy, |case| {
            let before = PANICS.load(Ordering::Relaxed);
            let mut s = state.borrow_mut();
            let (c, events) = &mut *s;
            match case {
                Ok(e) => {
                    let id = e.event_id.clone();
                    let ack = w.rt.block_on(events.send(e)).map_err(TestCaseError::fail)?;
                    no_new_panics(before)?;
                    check(ack.event_id == id, || format!("the ack of {id:?} is {ack:?}"))?;
                    let outcome =
                        cti::Outcome::try_from(ack.outcome).map_err(|_| TestCaseError::fail(format!("{ack:?}")))?;
                    if outcome == cti::Outcome::Rejected {
                        let code = Code::from(ack.error_code);
                        check(acceptable(code) && code != Code::Ok, || format!("{ack:?}"))?;
                        if code == Code::InvalidArgument {
                            check(ack.error_message.contains(':'), || format!("names no field: {ack:?}"))?;
                        }
                    }
                }
                Err(route) => {
                    let r = w.rt.block_on(c.route_call(route));
                    let (code, message) = status_of(&r);
                    no_new_panics(before)?;
                    check(acceptable(code), || format!("route_call: {code:?}: {message}"))?;
                }
            }
            Ok(())
        });
    });
}

// ---- timestamps ------------------------------------------------------------------------------

fn timestamp() -> impl Strategy<Value = Option<prost_types::Timestamp>> {
    let seconds = prop_oneof![
        2 => 1_700_000_000..1_900_000_000i64,
        1 => Just(i64::MAX),
        1 => Just(i64::MIN),
        1 => Just(253_402_300_799i64),
        1 => Just(253_402_300_800i64),
        1 => Just(18_446_744_073_709_552i64),
        2 => any::<i64>(),
    ];
    let nanos = prop_oneof![3 => 0..1_000_000_000i32, 1 => any::<i32>()];
    prop_oneof![1 => Just(None), 6 => (seconds, nanos).prop_map(|(seconds, nanos)| Some(prost_types::Timestamp { seconds, nanos }))]
}

#[derive(Debug, Clone)]
enum TimeCall {
    RequestCallback(cti::CallbackRequest),
    CreateCallback(cti::NewCallback),
    ScheduleCallback(pb::ScheduleCallback),
    ListOpenings(pb::ListOpeningsRequest),
}

fn time_call() -> impl Strategy<Value = TimeCall> {
    let number = prop_oneof![3 => Just("+4915112345678".to_string()), 1 => cti_text()];
    prop_oneof![
        ("c[0-9]", number.clone(), timestamp()).prop_map(|(call_id, number, not_before)| TimeCall::RequestCallback(
            cti::CallbackRequest { call_id, number, not_before }
        )),
        ("cb[0-9]{1,3}", number.clone(), timestamp(), timestamp()).prop_map(
            |(callback_id, number, waiting_since, not_before)| {
                TimeCall::CreateCallback(cti::NewCallback {
                    callback_id,
                    number,
                    queue: "support".into(),
                    waiting_since,
                    not_before,
                    ..Default::default()
                })
            }
        ),
        (prop_oneof![Just("x".to_string()), cti_text()], number, timestamp()).prop_map(
            |(interaction_id, number, not_before)| TimeCall::ScheduleCallback(pb::ScheduleCallback {
                interaction_id,
                number,
                not_before
            })
        ),
        (0..40u32, timestamp()).prop_map(|(days, from)| TimeCall::ListOpenings(pb::ListOpeningsRequest {
            queue: "support".into(),
            days,
            from
        })),
    ]
}

#[test]
fn fuzz_grpc_timestamps() {
    super::with_big_stack(|| {
        // Times anywhere in a Timestamp's range: refused naming the field, or taken; never an
        // overflow (a panic in a debug build, a wrapped time in a release one).
        let w = world();
        let state = RefCell::new(w.rt.block_on(async {
            let ann = w.sb.desktop("ann", "tok-ann").await;
            (pbx(&w.sb).await, w.sb.supervisor().await, ann)
        }));
        run("grpc.timestamps", time_call(), |call| {
            let before = PANICS.load(Ordering::Relaxed);
            let mut s = state.borrow_mut();
            let (pbx, supervisor, ann) = &mut *s;
            let (code, message) = w.rt.block_on(async {
                match call {
                    TimeCall::RequestCallback(r) => status_of(&pbx.request_callback(r).await),
                    TimeCall::CreateCallback(r) => status_of(&pbx.create_callback(r).await),
                    TimeCall::ListOpenings(r) => status_of(&supervisor.list_openings(r).await),
                    TimeCall::ScheduleCallback(r) => match ann.request(Rq::ScheduleCallback(r)).await {
                        Ok(_) => (Code::Ok, String::new()),
                        Err((code, message)) => (code, message),
                    },
                }
            });
            no_new_panics(before)?;
            check(acceptable(code), || format!("{code:?}: {message}"))?;
            if code == Code::InvalidArgument {
                check(message.contains(':'), || format!("names no field: {message}"))?;
            }
            Ok(())
        });
    });
}

/// Found by `fuzz_grpc_timestamps`: `not_before` / `waiting_since` with seconds past what
/// milliseconds in a u64 hold overflowed in the CTI hook's callbacks and in the desktop's
/// ScheduleCallback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regression_callback_times_past_u64_milliseconds() {
    let redis = RedisServer::start();
    let sb = TestServer::start(&redis.url).await;
    let mut admin = sb.admin().await;
    admin.put_queue(pb::PutQueueRequest { queue: Some(queue("support", &[])), allow_update: true }).await.unwrap();
    admin.put_agent(pb::PutAgentRequest { agent: Some(agent("ann", &[])), allow_update: true }).await.unwrap();
    let far = Some(prost_types::Timestamp { seconds: i64::MAX, nanos: 0 });
    let mut c = pbx(&sb).await;
    let r = c
        .request_callback(cti::CallbackRequest {
            call_id: "c1".into(),
            number: "+4915112345678".into(),
            not_before: far,
        })
        .await;
    let s = r.unwrap_err();
    assert_eq!((s.code(), s.message()), (Code::InvalidArgument, "not_before: is not a valid time"));
    let new = cti::NewCallback {
        callback_id: "cb1".into(),
        number: "+4915112345678".into(),
        queue: "support".into(),
        waiting_since: far,
        ..Default::default()
    };
    let s = c.create_callback(new).await.unwrap_err();
    assert_eq!((s.code(), s.message()), (Code::InvalidArgument, "waiting_since: is not a valid time"));
    let mut ann = sb.desktop("ann", "tok-ann").await;
    let r = ann
        .request(Rq::ScheduleCallback(pb::ScheduleCallback {
            interaction_id: "x".into(),
            number: "+4915112345678".into(),
            not_before: far,
        }))
        .await;
    let (code, message) = r.unwrap_err();
    assert_eq!((code, message.as_str()), (Code::InvalidArgument, "not_before: is not a valid time"));
    // The session survived the request.
    ann.ready().await;
}

// ---- raw protobuf ----------------------------------------------------------------------------

/// Bytes in, bytes out: requests the generated clients could never build.
#[derive(Debug, Clone, Default)]
struct Raw;

struct RawEncoder;
struct RawDecoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let mut v = vec![0; src.remaining()];
        src.copy_to_slice(&mut v);
        Ok(Some(v))
    }
}

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

/// A request of `method`, encoded, with the bytes of `marker` (a string field's value) made
/// invalid UTF-8 when `break_utf8`.
fn encoded(method: usize, marker: &str) -> Vec<u8> {
    match method {
        0 => pb::CreateInteractionRequest {
            channel: 2,
            customer_address: marker.into(),
            queue: "support".into(),
            body: "hi".into(),
            ..Default::default()
        }
        .encode_to_vec(),
        1 => pb::PutQueueRequest { queue: Some(queue(marker, &[])), allow_update: true }.encode_to_vec(),
        2 => cti::RouteRequest {
            call_id: marker.into(),
            caller: "+4915112345678".into(),
            dialled: crate::cti::SUPPORT_LINE.into(),
            ..Default::default()
        }
        .encode_to_vec(),
        _ => pb::GetInteractionRequest { interaction_id: marker.into(), include_messages: true }.encode_to_vec(),
    }
}

#[derive(Debug, Clone)]
enum RawCase {
    /// The string field's bytes replaced by these (then padded), so it is no longer UTF-8.
    BadUtf8(Vec<u8>),
    Damaged(Vec<super::Edit>),
    Soup(Vec<u8>),
}

const PATHS: [(&str, &str); 4] = [
    ("/switchboard.v1.Interactions/CreateInteraction", CHANNEL_KEY),
    ("/switchboard.v1.Admin/PutQueue", ADMIN_KEY),
    ("/switchboard.cti.v1.Cti/RouteCall", TELEPHONY_KEY),
    ("/switchboard.v1.Interactions/GetInteraction", CHANNEL_KEY),
];

#[test]
fn fuzz_grpc_raw_protobuf() {
    super::with_big_stack(|| {
        // A string field that is not UTF-8 is INVALID_ARGUMENT (the strict codec); byte soup and
        // damaged messages are refused or taken, never an internal error or a panic.
        let w = world();
        let clients = RefCell::new(w.rt.block_on(async {
            let mut v = Vec::new();
            for (_, key) in PATHS {
                v.push(tonic::client::Grpc::new(w.sb.with_key(key).await));
            }
            v
        }));
        let bad_utf8 = prop::sample::select(vec![
            vec![0xFFu8],
            vec![0xC3],
            vec![0xED, 0xA0, 0x80],
            vec![0xF4, 0x90, 0x80, 0x80],
            vec![0xC0, 0xAF],
            vec![b'a', 0x80],
        ]);
        let strategy = (
            0..4usize,
            prop_oneof![
                2 => bad_utf8.prop_map(RawCase::BadUtf8),
                1 => super::edits(6).prop_map(RawCase::Damaged),
                1 => proptest::collection::vec(any::<u8>(), 0..60).prop_map(RawCase::Soup),
            ],
        );
        run("grpc.raw_protobuf", strategy, |(method, how)| {
            let marker = "MARKERMARKER";
            let clean = encoded(method, marker);
            let (bytes, must_refuse) = match &how {
                RawCase::BadUtf8(bad) => {
                    let at = clean.windows(marker.len()).position(|w| w == marker.as_bytes()).unwrap();
                    let mut b = clean.clone();
                    // Same length, so the field's length prefix still holds.
                    let mut replacement = bad.clone();
                    replacement.resize(marker.len(), b'x');
                    b.splice(at..at + marker.len(), replacement);
                    (b, true)
                }
                RawCase::Damaged(edits) => (super::apply(clean, edits), false),
                RawCase::Soup(b) => (b.clone(), false),
            };
            let before = PANICS.load(Ordering::Relaxed);
            let path = http::uri::PathAndQuery::from_static(PATHS[method].0);
            let mut clients = clients.borrow_mut();
            let g = &mut clients[method];
            let r = w.rt.block_on(async {
                g.ready().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
                g.unary(tonic::Request::new(bytes.clone()), path, Raw).await
            });
            let (code, message) = status_of(&r);
            no_new_panics(before)?;
            check(acceptable(code), || format!("{code:?}: {message}"))?;
            if must_refuse {
                check(code == Code::InvalidArgument && message.contains("not valid protobuf"), || {
                    format!("{code:?}: {message}")
                })?;
            }
            Ok(())
        });
    });
}
