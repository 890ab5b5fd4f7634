//! The SMS channel through a real Kannel 1.4.5 (bearerbox + smsbox, fakesmsc as the phone
//! network): a phone's text reaches an agent, the agent's reply reaches the phone and Kannel's
//! DLRs mark it delivered; calls with a wrong webhook password store nothing; Kannel stopped or
//! crashed mid-conversation loses nothing and sends nothing twice.
//!
//! Kannel must know the daemon's address before the daemon starts (its get-url), and the daemon
//! Kannel's (its sendsms URL), so Kannel calls the daemon through a small TCP relay bound first —
//! as it would through a proxy in front of the daemon, whose address is the daemon's public_url.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use switchboard::api::pb;
use switchboard::api::pb::agent_event::Kind as Ev;
use switchboard::channels::sms::config::{GatewayConfig, KannelConfig, NumberConfig, SmsConfig};
use switchboard::config::Secret;

use crate::common::*;

const OUR_NUMBER: &str = "+4930901820";
const CUSTOMER: &str = "+4915112345678";
const HOOK_USER: &str = "kannel";
const HOOK_PASSWORD: &str = "kannel-webhook-secret";
/// A deferred reply is retried with a growing backoff (8 s, 16 s, 32 s ... after the in-line
/// attempts): enough for one or two of them.
const RETRY_PATIENCE: Duration = Duration::from_secs(90);

/// Forwards TCP connections to the daemon once its address is known.
struct Relay {
    addr: SocketAddr,
    target: Arc<Mutex<Option<SocketAddr>>>,
}

impl Relay {
    fn start() -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let target: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let t = target.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Some(to) = *t.lock().unwrap() else { continue };
                let Ok(server) = TcpStream::connect(to) else { continue };
                for (mut from, mut to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)]
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        Relay { addr, target }
    }

    fn to(&self, daemon: SocketAddr) {
        *self.target.lock().unwrap() = Some(daemon);
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Kannel's get-url for our inbound webhook, with the credentials Kannel sends as Basic auth.
fn mo_url(relay: &Relay, password: &str) -> String {
    format!(
        "http://{HOOK_USER}:{password}@{}/sms/kannel/inbound?from=%p&to=%P&text=%b&id=%I&smsc=%i&coding=%c&charset=%C&time=%t",
        relay.addr
    )
}

fn kannel_config(kannel: &Kannel, relay: &Relay, opts: &KannelOptions) -> SmsConfig {
    SmsConfig {
        gateways: vec![GatewayConfig::Kannel(KannelConfig {
            name: "kannel".into(),
            sendsms_url: kannel.sendsms_url(),
            username: opts.sendsms_user.clone(),
            password: Secret(opts.sendsms_password.clone()),
            webhook_user: HOOK_USER.into(),
            webhook_password: Secret(HOOK_PASSWORD.into()),
            public_url: relay.url(),
            dlr_mask: 31,
            smsc: String::new(),
            timeout_secs: 5,
        })],
        numbers: vec![NumberConfig {
            number: OUR_NUMBER.into(),
            queue: "support".into(),
            gateway: "kannel".into(),
            priority: None,
        }],
        ..SmsConfig::default()
    }
}

struct Setup {
    kannel: Kannel,
    relay: Relay,
    sb: TestServer,
    _redis: RedisServer,
}

/// Kannel whose get-url carries `password`, the daemon, and a support queue with ann and bob.
async fn start(password: &str, tweak: impl FnOnce(&mut KannelOptions)) -> Setup {
    let redis = RedisServer::start();
    let relay = Relay::start();
    let mut opts = KannelOptions { mo_url: mo_url(&relay, password), ..KannelOptions::default() };
    tweak(&mut opts);
    let kannel = blocking(|| Kannel::start(opts.clone()));
    let mut cfg = test_config(&redis.url);
    cfg.sms = kannel_config(&kannel, &relay, &opts);
    let sb = TestServer::start_with(cfg).await;
    relay.to(sb.http_addr);
    let mut admin = sb.admin().await;
    admin.put_queue(pb::PutQueueRequest { queue: Some(queue("support", &[])), allow_update: true }).await.unwrap();
    for id in ["ann", "bob"] {
        admin.put_agent(pb::PutAgentRequest { agent: Some(agent(id, &[])), allow_update: true }).await.unwrap();
    }
    Setup { kannel, relay, sb, _redis: redis }
}

/// Kannel's calls block (processes, its admin page): off the async workers.
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    tokio::task::block_in_place(f)
}

async fn delivered(d: &mut Desktop, iid: &str, seq: u64) {
    d.wait_for("delivered", |e| {
        matches!(e, Ev::Delivery(u) if u.interaction_id == iid && u.seq == seq
            && u.delivery.as_ref().is_some_and(|d| d.state == "delivered"))
    })
    .await;
}

async fn customer_says(d: &mut Desktop, iid: &str, body: &str) {
    d.wait_for(body, |e| {
        matches!(e, Ev::CustomerMessage(m) if m.interaction_id == iid
            && m.message.as_ref().is_some_and(|m| m.body == body))
    })
    .await;
}

/// Waits (real time) until the phone got `text`, then a moment more, and counts it.
async fn phone_gets(kannel: &Kannel, text: &str, patience: Duration) -> usize {
    let count = || kannel.phone_received().iter().filter(|m| m.text == text && m.to == CUSTOMER).count();
    let started = Instant::now();
    while count() == 0 {
        assert!(started.elapsed() < patience, "{text:?} never reached the phone: {:?}", kannel.phone_received());
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    // Kannel's queue would resend a duplicate within its resend period (1 s): give it 3.
    tokio::time::sleep(Duration::from_secs(3)).await;
    count()
}

fn bodies(ix: &pb::Interaction, body: &str) -> usize {
    ix.messages.iter().filter(|m| m.body == body).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_kannel_a_text_reaches_an_agent_the_reply_reaches_the_phone_and_is_marked_delivered() {
    let s = start(HOOK_PASSWORD, |_| {}).await;
    let mut ann = ready(&s.sb, "ann").await;

    // A UCS-2 text from the phone (smsbox recodes it to UTF-8), two spaces kept.
    blocking(|| s.kannel.phone_sends(CUSTOMER, OUR_NUMBER, "Grüße!  Wo bleibt meine Bestellung?"));
    let ix = ann.wait_offer().await.interaction.unwrap();
    assert_eq!(ix.channel(), pb::Channel::Sms);
    assert_eq!(ix.customer_address, CUSTOMER);
    assert_eq!(ix.messages[0].body, "Grüße!  Wo bleibt meine Bestellung?");
    ann.accept(&ix.id).await.unwrap();

    // A GSM-7 reply and a UCS-2 one: each reaches the phone as written, once, and is delivered.
    for text in ["Sie wird heute verschickt [Nr. 42] - 5 EUR.", "Спасибо! Доставка завтра 😀"] {
        let seq = ann.reply(&ix.id, text).await.unwrap().message.unwrap().seq;
        assert_eq!(phone_gets(&s.kannel, text, PATIENCE).await, 1, "{text}");
        let mt = s.kannel.phone_received().into_iter().find(|m| m.text == text).unwrap();
        assert_eq!(mt.from, OUR_NUMBER);
        delivered(&mut ann, &ix.id, seq).await;
        let thread = interaction(&s.sb, &ix.id).await;
        let d = thread.messages.iter().find(|m| m.seq == seq).unwrap().delivery.clone().unwrap();
        assert_eq!((d.state.as_str(), d.segments), ("delivered", 1), "a late DLR 8 does not undo delivered");
    }

    // A long reply goes as concatenated parts and arrives whole.
    let long = format!("{}Ende.", "Ihre Sendung ist unterwegs. ".repeat(8));
    let seq = ann.reply(&ix.id, &long).await.unwrap().message.unwrap().seq;
    assert_eq!(phone_gets(&s.kannel, &long, PATIENCE).await, 1);
    delivered(&mut ann, &ix.id, seq).await;

    // The customer answers: it joins the open conversation.
    blocking(|| s.kannel.phone_sends(CUSTOMER, OUR_NUMBER, "Danke"));
    customer_says(&mut ann, &ix.id, "Danke").await;
    assert_eq!(waiting(&s.sb).await, 0, "no second interaction");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_kannel_post_url_without_mo_recode_brings_texts_intact() {
    // The text as the body (UTF-16BE for a UCS-2 text, smsbox not recoding it), the numbers in
    // X-Kannel-From / -To, the id in the URL (Kannel sends no id header).
    let s = start(HOOK_PASSWORD, |o| {
        o.post = true;
        o.mo_recode = false;
        o.mo_url = o.mo_url.split_once('?').map(|(u, _)| format!("{u}?id=%I")).unwrap();
    })
    .await;
    let mut ann = ready(&s.sb, "ann").await;
    blocking(|| s.kannel.phone_sends(CUSTOMER, OUR_NUMBER, "Привет! Посылка 📦 где?"));
    let ix = ann.wait_offer().await.interaction.unwrap();
    assert_eq!(ix.messages[0].body, "Привет! Посылка 📦 где?");
    assert_eq!(ix.customer_address, CUSTOMER);
    ann.accept(&ix.id).await.unwrap();
    blocking(|| s.kannel.phone_sends(CUSTOMER, OUR_NUMBER, "plain  ASCII, two spaces"));
    customer_says(&mut ann, &ix.id, "plain  ASCII, two spaces").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_kannel_a_wrong_webhook_password_is_refused_with_nothing_stored() {
    let s = start("not-the-password", |o| o.http_request_retry = 2).await;
    blocking(|| s.kannel.phone_sends(CUSTOMER, OUR_NUMBER, "hello?"));
    // smsbox calls, is refused, retries twice, gives up.
    let started = Instant::now();
    while s.kannel.log("smsbox.log").matches("401 Unauthorized>").count() < 3 {
        assert!(started.elapsed() < PATIENCE, "smsbox was not refused 3 times:\n{}", s.kannel.log("smsbox.log"));
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(waiting(&s.sb).await, 0, "nothing stored");

    // The same calls by hand: 401 asking for Basic, with or without (wrong) credentials.
    let http = switchboard_auth::https_client(None, Duration::from_secs(5)).unwrap();
    let inbound = format!(
        "{}/sms/kannel/inbound?from=%2B4915112345678&to=%2B4930901820&text=hi&id=by-hand-1&coding=0&charset=UTF-8",
        s.relay.url()
    );
    for auth in [None, Some("wrong"), Some("")] {
        let mut req = http.get(&inbound);
        if let Some(pw) = auth {
            req = req.basic_auth(HOOK_USER, Some(pw));
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status().as_u16(), 401, "{auth:?}");
        assert_eq!(res.headers()["www-authenticate"], "Basic realm=\"switchboard-sms\"");
    }
    let dlr = format!("{}/sms/kannel/status?key=x%7C1&type=1", s.relay.url());
    assert_eq!(http.get(&dlr).basic_auth(HOOK_USER, Some("wrong")).send().await.unwrap().status().as_u16(), 401);
    assert_eq!(waiting(&s.sb).await, 0, "nothing stored");

    // With the right credentials the very same call is taken (and a malformed one named).
    let res = http.get(&inbound).basic_auth(HOOK_USER, Some(HOOK_PASSWORD)).send().await.unwrap();
    assert_eq!((res.status().as_u16(), res.text().await.unwrap()), (200, String::new()));
    assert_eq!(waiting(&s.sb).await, 1);
    let bad = format!("{}/sms/kannel/inbound?from=1&to=2&text=x&coding=9&id=y", s.relay.url());
    let res = http.get(&bad).basic_auth(HOOK_USER, Some(HOOK_PASSWORD)).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 400);
    assert!(res.text().await.unwrap().contains("coding"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_kannel_restarted_mid_conversation_loses_nothing_and_sends_nothing_twice() {
    let mut s = start(HOOK_PASSWORD, |_| {}).await;
    let mut ann = ready(&s.sb, "ann").await;
    blocking(|| s.kannel.phone_sends(CUSTOMER, OUR_NUMBER, "Is my parcel lost?"));
    let iid = ann.wait_offer().await.interaction.unwrap().id;
    ann.accept(&iid).await.unwrap();

    // Kannel stopped: the reply cannot be handed over (deferred, retried); the phone's text
    // waits for the network.
    blocking(|| s.kannel.stop());
    let err = ann.reply(&iid, "Reply while Kannel is stopped").await.unwrap_err();
    assert!(err.1.contains("retried"), "{err:?}");
    blocking(|| s.kannel.phone_sends(CUSTOMER, OUR_NUMBER, "Text while Kannel is stopped"));
    blocking(|| s.kannel.start_again());
    customer_says(&mut ann, &iid, "Text while Kannel is stopped").await;
    assert_eq!(phone_gets(&s.kannel, "Reply while Kannel is stopped", RETRY_PATIENCE).await, 1);

    // bearerbox crashes: until smsbox has restarted itself (~10 s) sendsms refuses connections
    // and the phone's text waits in bearerbox's store.
    blocking(|| s.kannel.crash_bearerbox());
    blocking(|| s.kannel.phone_sends(CUSTOMER, OUR_NUMBER, "Text while bearerbox is down"));
    let err = ann.reply(&iid, "Reply while bearerbox is down").await.unwrap_err();
    assert!(err.1.contains("retried"), "{err:?}");
    blocking(|| s.kannel.wait_ready());
    customer_says(&mut ann, &iid, "Text while bearerbox is down").await;
    assert_eq!(phone_gets(&s.kannel, "Reply while bearerbox is down", RETRY_PATIENCE).await, 1);

    // Each once on the thread, both replies delivered in the end.
    let thread = interaction(&s.sb, &iid).await;
    for body in [
        "Text while Kannel is stopped",
        "Reply while Kannel is stopped",
        "Text while bearerbox is down",
        "Reply while bearerbox is down",
    ] {
        assert_eq!(bodies(&thread, body), 1, "{body}");
    }
    let sb = &s.sb;
    eventually("both replies delivered", PATIENCE, || {
        let iid = iid.clone();
        async move {
            let thread = interaction(sb, &iid).await;
            let replies: Vec<&pb::Message> =
                thread.messages.iter().filter(|m| m.body.starts_with("Reply while")).collect();
            replies.iter().all(|m| m.delivery.as_ref().is_some_and(|d| d.state == "delivered")).then_some(())
        }
    })
    .await;
    assert_eq!(waiting(&s.sb).await, 0, "no second interaction");
}
