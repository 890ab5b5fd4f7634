//! The gateway against a real SMSC (PyPI smpp34, through testkit's [`Smsc`]) and a real Redis
//! (parts of concatenated texts), with a recording [`Receiver`] standing in for the channel.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use switchboard_engine::{Engine, EngineError, EngineOptions};
use switchboard_model::DeliveryState;
use switchboard_testkit::{Mo, PATIENCE, RedisServer, Smsc, assert_eventually, eventually, init_tracing};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::SmppGateway;
use crate::channels::sms::config::SmppConfig;
use crate::channels::sms::gateway::{
    Gateway, InboundSms, OutSms, ReceiveError, Received, Receiver, SendError, StatusReport,
};
use crate::config::Secret;

/// Records what the gateway hands in; can fail or hold back its answers.
#[derive(Default)]
struct Recorder {
    texts: Mutex<Vec<InboundSms>>,
    reports: Mutex<Vec<StatusReport>>,
    /// Calls to fail before answering Ok again.
    fail: AtomicUsize,
    /// When set, receive waits for a permit first.
    gate: Option<Semaphore>,
    calls: AtomicUsize,
}

impl Recorder {
    fn gated() -> Recorder {
        Recorder { gate: Some(Semaphore::new(0)), ..Recorder::default() }
    }

    fn texts(&self) -> Vec<InboundSms> {
        self.texts.lock().unwrap().clone()
    }

    fn reports(&self) -> Vec<StatusReport> {
        self.reports.lock().unwrap().clone()
    }

    fn failing(&self) -> Result<(), ReceiveError> {
        let failed = self.fail.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
        if failed { Err(ReceiveError(EngineError::Retry("test: storage down".into()))) } else { Ok(()) }
    }
}

#[async_trait::async_trait]
impl Receiver for Recorder {
    async fn receive(&self, sms: InboundSms) -> Result<Received, ReceiveError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Some(gate) = &self.gate {
            gate.acquire().await.expect("gate").forget();
        }
        self.failing()?;
        self.texts.lock().unwrap().push(sms);
        Ok(Received::Created("i-1".into()))
    }

    async fn status(&self, report: StatusReport) -> Result<(), ReceiveError> {
        self.failing()?;
        self.reports.lock().unwrap().push(report);
        Ok(())
    }
}

struct Harness {
    smsc: Smsc,
    gw: Arc<SmppGateway>,
    rx: Arc<Recorder>,
    cancel: CancellationToken,
    run: JoinHandle<()>,
    _redis: RedisServer,
}

fn config(port: u16) -> SmppConfig {
    SmppConfig {
        name: "smsc1".into(),
        host: "127.0.0.1".into(),
        port,
        system_id: "switchboard".into(),
        password: Secret("secret".into()),
        system_type: String::new(),
        window: 10,
        enquire_link_secs: 30,
        response_timeout_secs: 5,
        max_backoff_secs: 2,
        source_ton: 1,
        source_npi: 1,
    }
}

impl Harness {
    async fn start() -> Harness {
        Harness::start_with(|_| {}, Recorder::default()).await
    }

    async fn start_with(tweak: impl FnOnce(&mut SmppConfig), rx: Recorder) -> Harness {
        init_tracing();
        let redis = RedisServer::start();
        let smsc = Smsc::start();
        let engine = Engine::connect(&redis.url, EngineOptions::default()).await.expect("engine");
        let mut cfg = config(smsc.port());
        tweak(&mut cfg);
        let gw = SmppGateway::new(cfg, engine);
        let rx = Arc::new(rx);
        let cancel = CancellationToken::new();
        let run = tokio::spawn(gw.clone().run(rx.clone(), "node-1".into(), cancel.clone()));
        let h = Harness { smsc, gw, rx, cancel, run, _redis: redis };
        h.smsc.wait_binds(1).await;
        h.wait_bound().await;
        h
    }

    async fn wait_bound(&self) {
        let gw = self.gw.clone();
        eventually("the gateway bound", PATIENCE, || {
            let gw = gw.clone();
            async move { gw.bound().then_some(()) }
        })
        .await;
    }

    fn gateway(&self) -> Arc<SmppGateway> {
        self.gw.clone()
    }
}

fn out(body: &str) -> OutSms {
    OutSms { key: "i-1|1".into(), from: "+4930123456".into(), to: "+491511234567".into(), body: body.into() }
}

fn spawn_send(gw: &Arc<SmppGateway>, body: &str) -> JoinHandle<Result<Vec<String>, SendError>> {
    let gw = gw.clone();
    let sms = out(body);
    tokio::spawn(async move { gw.send(&sms).await.map(|a| a.provider_ids) })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binds_and_sends_a_short_text() {
    let h = Harness::start().await;
    let ids = h.gw.send(&out("Hello from support")).await.expect("accepted").provider_ids;
    let submits = h.smsc.submits().await;
    assert_eq!(submits.len(), 1);
    let s = &submits[0];
    assert_eq!(ids, vec![s.message_id.clone().unwrap()]);
    assert_eq!((s.source.as_str(), s.source_ton, s.source_npi), ("4930123456", 1, 1));
    assert_eq!((s.dest.as_str(), s.dest_ton, s.dest_npi), ("491511234567", 1, 1));
    assert_eq!((s.data_coding, s.esm_class, s.registered_delivery, s.udh), (0, 0, 1, None));
    assert_eq!(s.text, "Hello from support");
    assert_eq!(h.gw.name(), "smsc1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_text_goes_in_parts_with_one_reference() {
    let h = Harness::start().await;
    let body: String = (0..60).map(|i| format!("word{i:02} ")).collect::<String>() + "end.";
    assert!(body.len() > 320 && body.len() <= 459, "three parts");
    let ids = h.gw.send(&out(&body)).await.expect("accepted").provider_ids;
    let submits = h.smsc.submits().await;
    assert_eq!(submits.len(), 3);
    let reference = submits[0].udh.expect("UDH").0;
    for (i, s) in submits.iter().enumerate() {
        assert_eq!(s.udh, Some((reference, 3, i as u8 + 1)), "part {i}");
        assert_eq!((s.esm_class, s.data_coding), (0x40, 0));
    }
    let sent: Vec<String> = submits.iter().map(|s| s.message_id.clone().unwrap()).collect();
    assert_eq!(ids, sent, "provider ids in part order");
    let joined: Vec<u8> = submits.iter().flat_map(|s| s.payload.clone()).collect();
    assert_eq!(switchboard_model::sms::decode(0, &joined).unwrap(), body);
    // The next long text takes the next reference.
    h.gw.send(&out(&body)).await.expect("accepted");
    assert_eq!(h.smsc.submits().await[3].udh.unwrap().0, reference.wrapping_add(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ucs2_text_goes_as_ucs2() {
    let h = Harness::start().await;
    let body = "Grüße aus Kyjiw: Привіт 👋";
    h.gw.send(&out(body)).await.expect("accepted");
    let s = &h.smsc.submits().await[0];
    assert_eq!(s.data_coding, 8);
    assert_eq!(s.text, body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_are_permanent_throttling_transient_and_part_way_uncertain() {
    let h = Harness::start().await;
    h.smsc.reject_next(0x0B).await;
    match h.gw.send(&out("to nowhere")).await {
        Err(SendError::Permanent { code, reason }) => {
            assert_eq!(code, "0x0000000B");
            assert!(reason.contains("ESME_RINVDSTADR"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    h.smsc.reject_next(0x58).await;
    assert!(matches!(h.gw.send(&out("slow down")).await, Err(SendError::Transient(_))));
    // The second of three parts refused: the first is out there.
    h.smsc.reject_after(1, 0x45).await;
    let long = "y".repeat(400);
    match h.gw.send(&out(&long)).await {
        Err(SendError::Uncertain(why)) => assert!(why.contains("1 of 3 parts accepted"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_bound_is_transient() {
    let redis = RedisServer::start();
    let engine = Engine::connect(&redis.url, EngineOptions::default()).await.unwrap();
    let gw = SmppGateway::new(config(1), engine);
    match gw.send(&out("hi")).await {
        Err(SendError::Transient(why)) => assert!(why.contains("not bound"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_text_is_handed_in_and_answered_once_stored() {
    let h = Harness::start().await;
    let id = h.smsc.mo(&Mo::ascii("+491511234567", "4930123456", "Where is my order?")).await;
    assert_eq!(h.smsc.deliver_status(id).await, 0);
    let texts = h.rx.texts();
    assert_eq!(texts.len(), 1);
    let t = &texts[0];
    assert_eq!((t.gateway.as_str(), t.from.as_str(), t.to.as_str()), ("smsc1", "+491511234567", "4930123456"));
    assert_eq!(t.body, "Where is my order?");
    assert!(t.provider_id.starts_with("smpp-"));
    // The SMSC delivering it again (it never saw our answer) gives the same id to dedupe by.
    let again = h.smsc.mo(&Mo::ascii("+491511234567", "4930123456", "Where is my order?")).await;
    assert_eq!(h.smsc.deliver_status(again).await, 0);
    let texts = h.rx.texts();
    assert_eq!(texts[1].provider_id, texts[0].provider_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concatenated_text_is_joined_once_in_order_whatever_order_its_parts_come_in() {
    let h = Harness::start().await;
    let body = format!("{} — Grüße, Ärger und Übermut! ", "Das ist eine lange Nachricht".repeat(4));
    let (encoding, parts) = switchboard_model::sms::split(&body);
    assert_eq!(parts.len(), 3, "three UCS-2 parts");
    let total = parts.len() as u8;
    let mut statuses = Vec::new();
    for i in [2usize, 0, 1] {
        let mut short_message = switchboard_model::sms::concat_udh(200, total, i as u8 + 1).to_vec();
        short_message.extend_from_slice(&parts[i]);
        let mo = Mo {
            esm_class: 0x40,
            data_coding: encoding.data_coding(),
            short_message,
            ..Mo::ascii("491511234567", "4930123456", "")
        };
        let id = h.smsc.mo(&mo).await;
        // One at a time, as an SMSC with a window of one would.
        statuses.push(h.smsc.deliver_status(id).await);
        if statuses.len() < 3 {
            assert!(h.rx.texts().is_empty(), "nothing handed in before the last part");
        }
    }
    assert_eq!(statuses, vec![0, 0, 0]);
    let texts = h.rx.texts();
    assert_eq!(texts.len(), 1);
    assert_eq!(texts[0].body, body);
    assert_eq!(texts[0].from, "+491511234567");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_become_status_reports() {
    let h = Harness::start().await;
    let ids = h.gw.send(&out("Your parcel is on its way")).await.unwrap().provider_ids;
    let id = h.smsc.receipt(&ids[0], "DELIVRD", "000", true).await;
    assert_eq!(h.smsc.deliver_status(id).await, 0);
    // The text alone (no TLVs), with an error code.
    let id = h.smsc.receipt(&ids[0], "UNDELIV", "011", false).await;
    assert_eq!(h.smsc.deliver_status(id).await, 0);
    // UNKNOWN: answered, nothing to record.
    let id = h.smsc.receipt(&ids[0], "UNKNOWN", "000", true).await;
    assert_eq!(h.smsc.deliver_status(id).await, 0);
    let reports = h.rx.reports();
    assert_eq!(reports.len(), 2, "{reports:?}");
    assert_eq!(
        (reports[0].gateway.as_str(), reports[0].provider_id.as_str(), reports[0].state, reports[0].code.as_str()),
        ("smsc1", ids[0].as_str(), DeliveryState::Delivered, "")
    );
    assert_eq!((reports[1].state, reports[1].code.as_str()), (DeliveryState::Undelivered, "011"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deliver_sm_is_answered_only_after_the_receiver_stored_it() {
    let h = Harness::start_with(|_| {}, Recorder::gated()).await;
    let id = h.smsc.mo(&Mo::ascii("491511234567", "4930123456", "hold on")).await;
    let rx = h.rx.clone();
    assert_eventually!(async { rx.calls.load(Ordering::SeqCst) == 1 }, "the receiver was called");
    // The receiver has not returned: the SMSC must not have its answer yet.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!h.smsc.events().iter().any(|e| e["ev"] == "deliver_resp" && e["id"] == id), "answered before stored");
    h.rx.gate.as_ref().unwrap().add_permits(1);
    assert_eq!(h.smsc.deliver_status(id).await, 0);

    // Storing fails: the SMSC is told to try again later.
    h.rx.fail.store(1, Ordering::SeqCst);
    h.rx.gate.as_ref().unwrap().add_permits(1);
    let id = h.smsc.mo(&Mo::ascii("491511234567", "4930123456", "lost?")).await;
    assert_eq!(h.smsc.deliver_status(id).await, 0x64);

    // Binary data is no text: refused for good, the receiver never called.
    let calls = h.rx.calls.load(Ordering::SeqCst);
    let binary =
        Mo { data_coding: 0x04, short_message: vec![0xDE, 0xAD], ..Mo::ascii("491511234567", "4930123456", "") };
    let id = h.smsc.mo(&binary).await;
    assert_eq!(h.smsc.deliver_status(id).await, 0x65);
    assert_eq!(h.rx.calls.load(Ordering::SeqCst), calls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_link_is_bound_again_and_sends_go_on() {
    let h = Harness::start().await;
    h.gw.send(&out("before")).await.expect("accepted");
    h.smsc.drop_link().await;
    h.smsc.wait_binds(2).await;
    h.wait_bound().await;
    h.gw.send(&out("after")).await.expect("accepted after the reconnect");
    // A submit out on the link when it drops may or may not have been taken.
    h.smsc.hold_submits(1).await;
    let held = spawn_send(&h.gateway(), "in flight");
    h.smsc.wait_count("submit", 3).await;
    h.smsc.drop_link().await;
    assert!(matches!(held.await.unwrap(), Err(SendError::Uncertain(_))));
    let texts: Vec<String> = h.smsc.submits().await.into_iter().map(|s| s.text).collect();
    assert_eq!(texts, vec!["before", "after", "in flight"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_beyond_the_window_wait_for_a_slot() {
    let h = Harness::start_with(|c| c.window = 2, Recorder::default()).await;
    h.smsc.hold_submits(2).await;
    let a = spawn_send(&h.gateway(), "first");
    let b = spawn_send(&h.gateway(), "second");
    h.smsc.wait_count("submit", 2).await;
    let c = spawn_send(&h.gateway(), "third");
    // Give the third every chance to go out wrongly.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.smsc.submits().await.len(), 2, "a third request went out with the window full");
    assert!(!c.is_finished());
    h.smsc.release().await;
    for t in [a, b, c] {
        assert_eq!(t.await.unwrap().expect("accepted").len(), 1);
    }
    assert_eq!(h.smsc.submits().await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_submits_are_uncertain_and_those_that_never_got_a_slot_transient() {
    let h = Harness::start_with(
        |c| {
            c.window = 1;
            c.response_timeout_secs = 1;
        },
        Recorder::default(),
    )
    .await;
    h.smsc.hold_submits(10).await;
    let a = spawn_send(&h.gateway(), "a");
    h.smsc.wait_count("submit", 1).await;
    let b = spawn_send(&h.gateway(), "b");
    let c = spawn_send(&h.gateway(), "c");
    assert!(matches!(a.await.unwrap(), Err(SendError::Uncertain(_))), "sent, never answered");
    // When a gives its slot up, one of b and c takes it (and is held in turn); the other's wait
    // for a slot runs out first.
    let (b, c) = (b.await.unwrap(), c.await.unwrap());
    let kinds = [&b, &c].map(|r| match r {
        Err(SendError::Uncertain(_)) => "uncertain",
        Err(SendError::Transient(_)) => "transient",
        _ => "other",
    });
    assert!(kinds == ["uncertain", "transient"] || kinds == ["transient", "uncertain"], "{b:?} {c:?}");
    assert_eq!(h.smsc.submits().await.len(), 2, "the transient one never left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enquire_link_both_ways_and_unknown_commands_nacked() {
    let h = Harness::start_with(|c| c.enquire_link_secs = 1, Recorder::default()).await;
    // Ours, when idle; answered by the SMSC, so the bind stays.
    h.smsc.wait_count("enquire_link", 2).await;
    assert_eq!(h.smsc.binds(), 1);
    // The SMSC's.
    h.smsc.enquire_link().await;
    let status =
        h.smsc.wait_for("enquire_link_resp", |e| (e["ev"] == "enquire_link_resp").then(|| e["status"].clone())).await;
    assert_eq!(status, 0);
    h.smsc.unknown_command().await;
    let status = h.smsc.wait_for("generic_nack", |e| (e["ev"] == "generic_nack").then(|| e["status"].clone())).await;
    assert_eq!(status, 3, "ESME_RINVCMDID");
    assert_eq!(h.smsc.binds(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_smsc_is_found_dead_by_enquire_link_and_bound_again() {
    let h = Harness::start_with(
        |c| {
            c.enquire_link_secs = 1;
            c.response_timeout_secs = 1;
        },
        Recorder::default(),
    )
    .await;
    h.smsc.mute().await;
    h.smsc.wait_binds(2).await;
    h.wait_bound().await;
    h.gw.send(&out("still here")).await.expect("accepted on the new bind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unbind_from_the_smsc_is_answered_and_bound_again() {
    let h = Harness::start().await;
    h.smsc.unbind().await;
    let status = h.smsc.wait_for("unbind_resp", |e| (e["ev"] == "unbind_resp").then(|| e["status"].clone())).await;
    assert_eq!(status, 0);
    h.smsc.wait_binds(2).await;
    h.wait_bound().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_unbinds_and_returns() {
    let h = Harness::start().await;
    h.cancel.cancel();
    tokio::time::timeout(PATIENCE, h.run).await.expect("run returned").unwrap();
    h.smsc.wait_count("unbound", 1).await;
    assert!(!h.gw.bound());
    assert!(matches!(h.gw.send(&out("late")).await, Err(SendError::Transient(_))));
}

/// smpp34 accepts any password, so a refusing SMSC is a few lines here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_bind_is_retried_with_backoff() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let attempts = Arc::new(AtomicUsize::new(0));
    let seen = attempts.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let frame = super::pdu::read_frame(&mut s).await.unwrap().unwrap();
            let h = super::pdu::Header::parse(&frame).unwrap();
            assert_eq!(h.command_id, super::pdu::BIND_TRANSCEIVER);
            seen.fetch_add(1, Ordering::SeqCst);
            // ESME_RINVPASWD, no body.
            let mut resp = vec![0, 0, 0, 16, 0x80, 0, 0, 9, 0, 0, 0, 0x0E];
            resp.extend_from_slice(&h.sequence.to_be_bytes());
            s.write_all(&resp).await.unwrap();
            let _ = s.read(&mut [0u8; 16]).await;
        }
    });
    let redis = RedisServer::start();
    let engine = Engine::connect(&redis.url, EngineOptions::default()).await.unwrap();
    let gw = SmppGateway::new(config(port), engine);
    let cancel = CancellationToken::new();
    let run = tokio::spawn(gw.clone().run(Arc::new(Recorder::default()), "node-1".into(), cancel.clone()));
    assert_eventually!(async { attempts.load(Ordering::SeqCst) >= 2 }, "a second bind attempt");
    assert!(!gw.bound());
    cancel.cancel();
    tokio::time::timeout(PATIENCE, run).await.expect("run returned").unwrap();
}
