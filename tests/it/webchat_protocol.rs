//! The web chat WebSocket protocol against real servers (Redis and Switchboard started here),
//! without a browser: the conversation both ways, queue position and wait estimate, reconnects,
//! bad input, limits, origins, and chats spanning two instances.

use std::time::Duration;

use crate::common::*;
use serde_json::json;
use switchboard::api::pb;
use switchboard::api::pb::agent_event::Kind as Ev;
use switchboard::api::pb::agent_request::Kind as Rq;
use switchboard::channels::webchat::config::Topic;
use switchboard::config::Config;
use switchboard_engine::{Engine, EngineOptions};
use tokio_tungstenite::tungstenite::Message as WsMessage;

fn chat_config(redis_url: &str) -> Config {
    let mut cfg = test_config(redis_url);
    cfg.webchat.enabled = true;
    cfg.webchat.topics =
        vec![Topic { name: "billing".into(), label: "Billing question".into(), queue: "billing".into() }];
    cfg
}

async fn chat_server(cfg: Config) -> TestServer {
    let sb = TestServer::start_with(cfg).await;
    let mut admin = sb.admin().await;
    for q in ["chat", "billing"] {
        let mut queue = queue(q, &[]);
        queue.channels = vec![pb::Channel::Chat as i32];
        admin.put_queue(pb::PutQueueRequest { queue: Some(queue), allow_update: true }).await.unwrap();
    }
    sb
}

async fn put_agent(sb: &TestServer, id: &str, chat_capacity: u32) {
    let mut a = agent(id, &[]);
    a.capacity = Some(pb::Capacity { chat: Some(chat_capacity), ..Default::default() });
    sb.admin().await.put_agent(pb::PutAgentRequest { agent: Some(a), allow_update: true }).await.unwrap();
}

async fn interaction(sb: &TestServer, iid: &str) -> pb::Interaction {
    sb.interactions()
        .await
        .get_interaction(pb::GetInteractionRequest { interaction_id: iid.into(), include_messages: true })
        .await
        .unwrap()
        .into_inner()
}

fn typing(iid: &str, on: bool) -> Rq {
    Rq::SetTyping(pb::SetTyping { interaction_id: iid.into(), typing: on })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visitor_and_agent_chat_both_ways() {
    let redis = RedisServer::start();
    let sb = chat_server(chat_config(&redis.url)).await;
    put_agent(&sb, "ann", 3).await;

    let mut v = Visitor::connect(sb.http_addr).await;
    v.send(json!({"type": "start", "name": "Vera", "email": "vera@example.com", "topic": "billing",
        "message": "My invoice is wrong"}))
        .await;
    let started = v.wait_type("started").await;
    let iid = started["interaction_id"].as_str().unwrap().to_string();
    assert_eq!(started["token"].as_str().unwrap().len(), 64);
    let first = v.wait_message("My invoice is wrong").await;
    assert_eq!(first["author"], "visitor");
    assert_eq!(first["seq"], 1);
    let q = v.wait_type("queue").await;
    assert_eq!(q["position"], 1, "{q}");

    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    let offer = ann.wait_offer().await.interaction.unwrap();
    assert_eq!(offer.id, iid);
    assert_eq!(offer.queue, "billing", "the topic picks the queue");
    assert_eq!(offer.subject, "Billing question");
    assert_eq!(offer.attributes["name"], "Vera");
    assert_eq!(offer.attributes["email"], "vera@example.com");
    assert_eq!(offer.attributes["source"], "webchat");
    assert_eq!(offer.messages[0].body, "My invoice is wrong");
    ann.accept(&iid).await.unwrap();
    let joined = v.wait_type("agent_joined").await;
    assert_eq!(joined["name"], "Agent ann", "display name only");
    assert!(joined.get("agent_id").is_none());

    // Typing, both ways.
    ann.request(typing(&iid, true)).await.unwrap();
    assert_eq!(v.wait_type("typing").await["on"], true);
    v.send(json!({"type": "typing", "on": true})).await;
    let Ev::CustomerTyping(t) = ann.wait_for("customer typing", |e| matches!(e, Ev::CustomerTyping(_))).await else {
        unreachable!()
    };
    assert!(t.typing);
    assert_eq!(t.interaction_id, iid);

    ann.reply(&iid, "Let me check that for you.").await.unwrap();
    let m = v.wait_message("Let me check that for you.").await;
    assert_eq!(m["author"], "agent");
    assert_eq!(m["name"], "Agent ann");
    assert_eq!(m["seq"], 2);

    let seq = v.say("Thanks! It is invoice 42.", "c1").await;
    assert_eq!(seq, 3);
    let Ev::CustomerMessage(cm) = ann.wait_for("customer message", |e| matches!(e, Ev::CustomerMessage(_))).await
    else {
        unreachable!()
    };
    assert_eq!(cm.message.unwrap().body, "Thanks! It is invoice 42.");
    // The visitor's own message comes back as part of the thread too (other tabs show it).
    assert_eq!(v.wait_message("Thanks! It is invoice 42.").await["author"], "visitor");

    ann.complete(&iid, "resolved").await.unwrap();
    let ended = v.wait_type("ended").await;
    assert_eq!(ended["by"], "agent");
    v.send(json!({"type": "message", "body": "hello?"})).await;
    v.wait_error("ended").await;

    let ix = interaction(&sb, &iid).await;
    let bodies: Vec<_> = ix.messages.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["My invoice is wrong", "Let me check that for you.", "Thanks! It is invoice 42."]);
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_visitors_see_their_place_and_an_estimate() {
    let redis = RedisServer::start();
    let sb = chat_server(chat_config(&redis.url)).await;
    put_agent(&sb, "ann", 1).await;

    let mut v1 = Visitor::connect(sb.http_addr).await;
    let (_, iid1) = v1.start("One", "first").await;
    let mut v2 = Visitor::connect(sb.http_addr).await;
    let (_, _iid2) = v2.start("Two", "second").await;
    let q = v2.wait_type("queue").await;
    assert_eq!(q["position"], 2, "{q}");
    assert!(q["eta_secs"].is_null(), "nothing answered yet, so no estimate: {q}");

    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    let offer = ann.wait_offer().await.interaction.unwrap();
    assert_eq!(offer.id, iid1, "first come, first served");
    ann.accept(&iid1).await.unwrap();
    v1.wait_type("agent_joined").await;
    // One chat answered in the window: the second visitor is next, with an estimate.
    let q =
        v2.wait("queue with estimate", |f| f["type"] == "queue" && f["position"] == 1 && f["eta_secs"].is_u64()).await;
    assert!(q["eta_secs"].as_u64().unwrap() > 0, "{q}");
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_visitor_resumes_without_losing_anything() {
    let redis = RedisServer::start();
    let sb = chat_server(chat_config(&redis.url)).await;
    put_agent(&sb, "ann", 3).await;
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;

    let mut v = Visitor::connect(sb.http_addr).await;
    let (token, iid) = v.start("Vera", "hello").await;
    ann.wait_offer().await;
    ann.accept(&iid).await.unwrap();
    v.wait_type("agent_joined").await;
    let seen = v.wait_message("hello").await["seq"].as_u64().unwrap();
    v.close().await;

    // The agent keeps writing while the visitor is away: stored, and delivery is not refused.
    ann.reply(&iid, "Are you still there?").await.unwrap();
    ann.reply(&iid, "I found your order.").await.unwrap();

    let mut v = Visitor::connect(sb.http_addr).await;
    v.resume(&token, seen).await;
    assert_eq!(v.wait_type("resumed").await["interaction_id"], iid.as_str());
    let a = v.wait_message("Are you still there?").await;
    let b = v.wait_message("I found your order.").await;
    assert_eq!((a["seq"].as_u64(), b["seq"].as_u64()), (Some(2), Some(3)));
    assert!(!v.pending.iter().any(|f| f["type"] == "message" && f["body"] == "hello"), "only what was missed");
    assert_eq!(v.wait_type("agent_joined").await["name"], "Agent ann");

    // A message resent after a reconnect (same client id) is stored once.
    let s1 = v.say("on my way", "m-1").await;
    let s2 = v.say("on my way", "m-1").await;
    assert_eq!(s1, s2);
    assert_eq!(interaction(&sb, &iid).await.messages.len(), 4);

    // A reload (last_seq 0) gets the whole transcript.
    let mut r = Visitor::connect(sb.http_addr).await;
    r.resume(&token, 0).await;
    for body in ["hello", "Are you still there?", "I found your order.", "on my way"] {
        r.wait_message(body).await;
    }
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_expired_sessions_are_refused() {
    let redis = RedisServer::start();
    let mut cfg = chat_config(&redis.url);
    cfg.webchat.resume_window_secs = 5;
    // The clock is moved past the resume window below; agents' presence must outlast it.
    cfg.routing.presence_grace_secs = 600;
    let sb = chat_server(cfg).await;
    let engine = Engine::connect(&redis.url, EngineOptions::default()).await.unwrap();

    let mut v = Visitor::connect(sb.http_addr).await;
    v.resume(&"ab".repeat(32), 0).await;
    v.wait_error("unknown_session").await;
    v.resume("not-a-token", 0).await;
    v.wait_error("unknown_session").await;

    // A visitor who leaves while waiting, and does not come back within the window, abandons.
    let (token, iid) = v.start("Vera", "anyone?").await;
    v.close().await;
    engine.advance_clock(Duration::from_secs(6)).await.unwrap();
    let ix = eventually("chat withdrawn", PATIENCE, || async {
        let ix = interaction(&sb, &iid).await;
        (ix.state == pb::InteractionState::Abandoned as i32).then_some(ix)
    })
    .await;
    assert_eq!(ix.end_reason, "customer_left");

    // Coming back later shows how it ended, read-only.
    let mut v = Visitor::connect(sb.http_addr).await;
    v.resume(&token, 0).await;
    v.wait_type("resumed").await;
    v.wait_message("anyone?").await;
    assert_eq!(v.wait_type("ended").await["by"], "visitor");
    v.send(json!({"type": "message", "body": "hello?"})).await;
    v.wait_error("ended").await;
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_clear_errors_and_change_nothing() {
    let redis = RedisServer::start();
    let mut cfg = chat_config(&redis.url);
    cfg.webchat.max_message_chars = 100;
    let sb = chat_server(cfg).await;
    let mut v = Visitor::connect(sb.http_addr).await;

    v.send_raw(WsMessage::Binary(vec![1, 2, 3].into())).await;
    assert!(v.wait_error("bad_frame").await["message"].as_str().unwrap().contains("text"));
    v.send_raw(WsMessage::Text("not json".into())).await;
    v.wait_error("bad_frame").await;
    v.send(json!({"type": "launch"})).await;
    assert!(v.wait_error("bad_frame").await["message"].as_str().unwrap().contains("unknown frame type"));
    v.send(json!({"type": "message"})).await;
    assert!(v.wait_error("bad_frame").await["message"].as_str().unwrap().contains("body"));
    v.send(json!({"type": "message", "body": "hi"})).await;
    v.wait_error("not_started").await;
    v.send(json!({"type": "start", "topic": "astrology", "message": "hi"})).await;
    assert!(v.wait_error("bad_topic").await["message"].as_str().unwrap().contains("astrology"));
    v.send(json!({"type": "start", "email": "not an email", "message": "hi"})).await;
    v.wait_error("bad_email").await;
    for blank in [json!({"type": "start"}), json!({"type": "start", "message": " \n "})] {
        v.send(blank).await;
        v.wait_error("bad_message").await;
    }
    v.send(json!({"type": "start", "message": "x".repeat(101)})).await;
    assert!(v.wait_error("too_large").await["message"].as_str().unwrap().contains("101"));
    v.send(json!({"type": "start", "name": "a\u{7}b", "message": "hi"})).await;
    v.wait_error("bad_message").await;
    // None of that started a chat.
    let waiting = sb.supervisor().await.list_waiting(pb::ListWaitingRequest::default()).await.unwrap().into_inner();
    assert!(waiting.interactions.is_empty());

    // The connection is still usable.
    let (_, iid) = v.start("", "hi").await;
    v.send(json!({"type": "message", "body": "é".repeat(101)})).await;
    v.wait_error("too_large").await;
    v.send(json!({"type": "message", "body": "   "})).await;
    v.wait_error("bad_message").await;
    v.send(json!({"type": "start", "message": "again"})).await;
    v.wait_error("already_started").await;
    assert_eq!(interaction(&sb, &iid).await.messages.len(), 1);

    // A frame far beyond any message closes the connection.
    v.send_raw(WsMessage::Text("x".repeat(200_000).into())).await;
    while v.recv().await.is_some() {}
    assert!(v.closed);
    sb.stop().await;
}

/// A client whose network flushes its queued messages at once is not an attacker: over the
/// message limit it gets `rate_limited` for each message that did not fit, and the connection
/// stays open and usable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_messages_is_refused_one_by_one_not_closed() {
    let redis = RedisServer::start();
    let mut cfg = chat_config(&redis.url);
    cfg.webchat.messages_per_minute = 30;
    let sb = chat_server(cfg).await;
    let mut v = Visitor::connect(sb.http_addr).await;
    let (_, iid) = v.start("", "first").await; // 1 of 30
    for i in 0..40 {
        let frame = json!({"type": "message", "body": format!("m{i}"), "client_id": format!("c{i}")});
        assert!(v.send_raw(WsMessage::Text(frame.to_string().into())).await, "connection closed at frame {i}");
    }
    let (mut sent, mut limited) = (0, 0);
    while sent + limited < 40 {
        let f = v.wait("an answer", |f| f["type"] == "sent" || f["code"] == "rate_limited").await;
        if f["type"] == "sent" { sent += 1 } else { limited += 1 }
    }
    // 29 fit in the minute's budget; a slow machine may earn one more back meanwhile (one per 2 s).
    assert!((29..=31).contains(&sent), "{sent} sent, {limited} refused");
    assert_eq!(interaction(&sb, &iid).await.messages.len(), 1 + sent, "only what was sent is stored");
    v.send(json!({"type": "ping"})).await;
    v.wait_type("pong").await;
    assert!(!v.closed);
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_per_connection_and_per_address() {
    let redis = RedisServer::start();
    let mut cfg = chat_config(&redis.url);
    cfg.webchat.messages_per_minute = 4;
    cfg.webchat.ip_messages_per_minute = 6;
    cfg.webchat.ip_connections_per_minute = 3;
    let sb = chat_server(cfg).await;

    let mut v = Visitor::connect(sb.http_addr).await;
    let (_, iid) = v.start("", "one").await; // 1
    for i in 0..3 {
        v.say(&format!("msg {i}"), &format!("c{i}")).await; // 2..4
    }
    v.send(json!({"type": "message", "body": "too fast", "client_id": "c9"})).await;
    let e = v.wait_error("rate_limited").await;
    assert!(e["message"].as_str().unwrap().contains("Please wait"), "{e}");
    assert_eq!(interaction(&sb, &iid).await.messages.len(), 4, "the refused message is not stored");

    // Another connection from the same address has its own per-connection budget but shares
    // the address's: 2 more, then refused.
    let mut w = Visitor::connect(sb.http_addr).await;
    let (_, iid2) = w.start("", "two").await;
    w.say("three", "d1").await;
    w.send(json!({"type": "message", "body": "four", "client_id": "d2"})).await;
    w.wait_error("rate_limited").await;
    assert_eq!(interaction(&sb, &iid2).await.messages.len(), 2);

    // A flood of frames of any kind (typing, pings) far beyond any burst closes the connection.
    for _ in 0..1_000 {
        if !w.send_raw(WsMessage::Text(r#"{"type":"ping"}"#.into())).await {
            break;
        }
    }
    while w.recv().await.is_some() {}
    assert_eq!(w.close_code, Some(1008));

    // Connections per address: the 4th within the minute is refused before the upgrade.
    let _third = Visitor::connect(sb.http_addr).await;
    let refused = Visitor::connect_from(sb.http_addr, Some(&format!("http://{}", sb.http_addr))).await.err().unwrap();
    assert_eq!(refused.status, 429);
    assert!(refused.body.contains("too many"), "{}", refused.body);
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_origins_may_open_chats() {
    let redis = RedisServer::start();
    let mut cfg = chat_config(&redis.url);
    cfg.webchat.allowed_origins = vec!["https://shop.example.com".into()];
    let sb = chat_server(cfg).await;

    let r = Visitor::connect_from(sb.http_addr, Some("https://evil.example.net")).await.err().unwrap();
    assert_eq!(r.status, 403);
    assert!(r.body.contains("evil.example.net"), "{}", r.body);
    let r = Visitor::connect_from(sb.http_addr, None).await.err().unwrap();
    assert_eq!(r.status, 403);
    assert!(r.body.contains("Origin"), "{}", r.body);
    assert!(Visitor::connect_from(sb.http_addr, Some("https://shop.example.com")).await.is_ok());
    assert!(Visitor::connect_from(sb.http_addr, Some("HTTPS://SHOP.example.com")).await.is_ok());
    // The server's own origin (demo page) is always allowed.
    assert!(Visitor::connect_from(sb.http_addr, Some(&format!("http://{}", sb.http_addr))).await.is_ok());

    // The widget and the demo page are served to anyone.
    let (code, js) = sb.http("/widget.js").await;
    assert_eq!(code, 200);
    assert!(js.contains("/chat/ws"));
    assert_eq!(sb.http("/widget.css").await.0, 200);
    let (code, page) = sb.http("/chat/demo").await;
    assert_eq!(code, 200);
    assert!(page.contains("/widget.js"));
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visitors_see_only_their_own_chat_and_either_side_can_end_it() {
    let redis = RedisServer::start();
    let sb = chat_server(chat_config(&redis.url)).await;
    put_agent(&sb, "ann", 3).await;
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;

    let mut a = Visitor::connect(sb.http_addr).await;
    let (_, ia) = a.start("A", "from a").await;
    let mut b = Visitor::connect(sb.http_addr).await;
    let (_, ib) = b.start("B", "from b").await;
    for _ in 0..2 {
        let o = ann.wait_offer().await.interaction.unwrap();
        ann.accept(&o.id).await.unwrap();
    }
    ann.reply(&ia, "<img src=x onerror=alert(1)> for A only").await.unwrap();
    ann.reply(&ib, "for B only").await.unwrap();
    // Text is passed as text; the widget shows it with textContent.
    a.wait_message("<img src=x onerror=alert(1)> for A only").await;
    b.wait_message("for B only").await;
    a.say("still a", "a1").await;
    b.say("still b", "b1").await;
    a.wait_message("still a").await;
    b.wait_message("still b").await;
    for (v, own) in [(&a, ["from a", "still a"]), (&b, ["from b", "still b"])] {
        for f in v.pending.iter().filter(|f| f["type"] == "message") {
            assert!(own.contains(&f["body"].as_str().unwrap()), "a visitor saw another's message: {f}");
        }
    }

    // The visitor ends an active chat: the agent is told and goes to wrap-up.
    a.send(json!({"type": "end"})).await;
    assert_eq!(a.wait_type("ended").await["by"], "visitor");
    let Ev::InteractionEnded(e) =
        ann.wait_for("ended", |e| matches!(e, Ev::InteractionEnded(x) if x.interaction_id == ia)).await
    else {
        unreachable!()
    };
    assert_eq!(e.reason, "visitor_ended");
    // The agent ends the other.
    ann.complete(&ib, "done").await.unwrap();
    assert_eq!(b.wait_type("ended").await["by"], "agent");
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visitor_and_agent_on_different_instances() {
    let redis = RedisServer::start();
    let web = chat_server(chat_config(&redis.url)).await;
    let desk = TestServer::start_with(chat_config(&redis.url)).await;
    put_agent(&web, "ann", 3).await;
    let mut ann = desk.desktop("ann", "tok-ann").await;
    ann.ready().await;

    let mut v = Visitor::connect(web.http_addr).await;
    let (token, iid) = v.start("Vera", "hello from instance one").await;
    ann.wait_offer().await;
    ann.accept(&iid).await.unwrap();
    v.wait_type("agent_joined").await;
    ann.request(typing(&iid, true)).await.unwrap();
    assert_eq!(v.wait_type("typing").await["on"], true);
    ann.reply(&iid, "hello from instance two").await.unwrap();
    v.wait_message("hello from instance two").await;
    v.send(json!({"type": "typing", "on": true})).await;
    ann.wait_for("customer typing", |e| matches!(e, Ev::CustomerTyping(t) if t.typing)).await;
    v.say("great", "g1").await;
    ann.wait_for("customer message", |e| matches!(e, Ev::CustomerMessage(_))).await;

    // The visitor's instance goes away; the visitor resumes on the other one.
    v.close().await;
    web.stop().await;
    ann.reply(&iid, "while you moved").await.unwrap();
    let mut v = Visitor::connect(desk.http_addr).await;
    v.resume(&token, 3).await;
    v.wait_message("while you moved").await;
    desk.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_holds_at_most_its_cap_of_open_connections() {
    let redis = RedisServer::start();
    let mut cfg = chat_config(&redis.url);
    cfg.webchat.ip_max_open_connections = 2;
    let sb = chat_server(cfg).await;
    let origin = format!("http://{}", sb.http_addr);
    let a = Visitor::connect(sb.http_addr).await;
    let _b = Visitor::connect(sb.http_addr).await;
    let refused = Visitor::connect_from(sb.http_addr, Some(&origin)).await.err().expect("a third open connection");
    assert_eq!(refused.status, 429, "{refused:?}");
    assert!(refused.body.contains("too many open chat connections"), "{refused:?}");
    // Closing one makes room again.
    a.close().await;
    switchboard_testkit::eventually("a place after a close", PATIENCE, || {
        let o = origin.clone();
        let addr = sb.http_addr;
        async move { Visitor::connect_from(addr, Some(&o)).await.ok() }
    })
    .await;
    let (_, metrics) = sb.http("/metrics").await;
    assert!(metrics.contains("why=\"open_connections\""), "the refusal is a metric");
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_start_gets_the_same_chat_and_the_same_token_never_a_second_one() {
    let redis = RedisServer::start();
    let sb = chat_server(chat_config(&redis.url)).await;
    let start_id = "5f2b8c0e9a1d4e7b8c3f6a2d1e0b9c8a";
    let start = |visitor: &str, start_id: &str| json!({"type": "start", "visitor": visitor, "start_id": start_id, "message": "hello"});
    let mut v = Visitor::connect(sb.http_addr).await;
    v.send(start("visitor-0001", start_id)).await;
    let first = v.wait_type("started").await;
    // The page lost the answer and starts again, on a new connection.
    let mut again = Visitor::connect(sb.http_addr).await;
    again.send(start("visitor-0001", start_id)).await;
    let second = again.wait_type("started").await;
    assert_eq!(second["interaction_id"], first["interaction_id"]);
    assert_eq!(second["token"], first["token"], "the same token, not a new one");
    // Another visitor with the same start id has a chat of its own.
    let mut other = Visitor::connect(sb.http_addr).await;
    other.send(start("visitor-0002", start_id)).await;
    let third = other.wait_type("started").await;
    assert_ne!(third["interaction_id"], first["interaction_id"]);
    assert_ne!(third["token"], first["token"]);
    // A start id short enough to guess is refused.
    let mut guess = Visitor::connect(sb.http_addr).await;
    guess.send(start("visitor-0001", "1")).await;
    let e = guess.wait_error("bad_frame").await;
    assert!(e["message"].as_str().unwrap().contains("start_id"), "{e}");
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_limits_are_shared_by_every_instance() {
    let redis = RedisServer::start();
    let mut cfg = chat_config(&redis.url);
    cfg.webchat.ip_connections_per_minute = 3;
    let one = chat_server(cfg.clone()).await;
    let two = chat_server(cfg).await;
    let _a = Visitor::connect(one.http_addr).await;
    let _b = Visitor::connect(two.http_addr).await;
    let _c = Visitor::connect(one.http_addr).await;
    // Each instance has seen fewer than three, the address three: the fourth is refused anywhere.
    let origin = format!("http://{}", two.http_addr);
    let refused = Visitor::connect_from(two.http_addr, Some(&origin)).await.err().expect("a fourth connection");
    assert_eq!(refused.status, 429, "{refused:?}");
    one.stop().await;
    two.stop().await;
}

/// A callback to a German mobile, as the test writes it and as E.164.
const MOBILE: &str = "0151 12345678";
const MOBILE_E164: &str = "+4915112345678";

/// Web chat offering callbacks to waiting visitors, dialled by the test telephony system; its
/// default queue `chat` takes calls too.
async fn callback_server(redis_url: &str, tune: impl FnOnce(&mut Config)) -> TestServer {
    let mut cfg = chat_config(redis_url);
    cfg.webchat.offer_callback = true;
    cfg.cti.callback_system = "pbx-1".into();
    cfg.crm.default_region = "DE".into();
    // Tests move the routing clock: agents must not look gone.
    cfg.routing.presence_grace_secs = 3600;
    tune(&mut cfg);
    let sb = chat_server(cfg).await;
    let mut q = queue("chat", &[]);
    q.channels = vec![pb::Channel::Chat as i32, pb::Channel::Voice as i32];
    sb.admin().await.put_queue(pb::PutQueueRequest { queue: Some(q), allow_update: true }).await.unwrap();
    sb
}

async fn waiting(sb: &TestServer) -> Vec<pb::Interaction> {
    sb.supervisor().await.list_waiting(pb::ListWaitingRequest::default()).await.unwrap().into_inner().interactions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_visitor_takes_a_callback_that_keeps_their_place() {
    let redis = RedisServer::start();
    let sb = callback_server(&redis.url, |_| {}).await;
    put_agent(&sb, "ann", 3).await;

    let mut v = Visitor::connect(sb.http_addr).await;
    assert_eq!(v.hello["callback_offer"], json!({"after_secs": 0}), "{}", v.hello);
    let (_, iid) = v.start("Vera", "Is anyone there?").await;
    let q = v.wait("queue with the offer", |f| f["type"] == "queue" && f["callback_offer"] == true).await;
    assert_eq!(q["position"], 1, "{q}");
    let chat = interaction(&sb, &iid).await;

    // A number that is none: a clear error at the field, and nothing changes.
    v.send(json!({"type": "callback", "number": "12"})).await;
    let e = v.wait_error("bad_number").await;
    assert_eq!(e["field"], "number", "{e}");
    let m = e["message"].as_str().unwrap();
    assert!(m.starts_with("number:") && m.contains("not a"), "{e}");
    v.send(json!({"type": "callback", "number": "  "})).await;
    assert_eq!(v.wait_error("bad_number").await["field"], "number");
    let still = interaction(&sb, &iid).await;
    assert_eq!(still.state, pb::InteractionState::Queued as i32);
    let w = waiting(&sb).await;
    assert_eq!(w.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), [iid.as_str()], "no callback was made");
    v.send(json!({"type": "ping"})).await;
    v.wait_type("pong").await;
    assert!(!v.pending.iter().any(|f| f["type"] == "ended"), "still waiting: {:?}", v.pending);

    // A number written nationally, in the default region.
    v.send(json!({"type": "callback", "number": MOBILE})).await;
    let done = v.wait_type("callback_scheduled").await;
    assert_eq!(done["number"], MOBILE_E164, "{done}");
    assert_eq!(done["position"], 1, "the chat's place: first in line: {done}");
    let ended = v.wait_type("ended").await;
    assert_eq!((ended["by"].as_str(), ended["reason"].as_str()), (Some("visitor"), Some("callback")), "{ended}");

    let gone = interaction(&sb, &iid).await;
    assert_eq!(gone.state, pb::InteractionState::Abandoned as i32);
    assert_eq!(gone.end_reason, "callback");
    let w = waiting(&sb).await;
    assert_eq!(w.len(), 1, "{w:?}");
    let cb = &w[0];
    assert_eq!((cb.channel, cb.queue.as_str()), (pb::Channel::Voice as i32, "chat"));
    assert_eq!(cb.callback.as_ref().expect("a callback").number, MOBILE_E164);
    assert_eq!(cb.enqueued_at, chat.enqueued_at, "the callback keeps the chat's place");
    assert_eq!(cb.attributes.get("callback.from").map(String::as_str), Some(iid.as_str()));

    // The chat is over: another callback (or message) is refused.
    v.send(json!({"type": "callback", "number": MOBILE})).await;
    v.wait_error("ended").await;

    // An agent who gets ready is offered the callback.
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    let offer = ann.wait_offer().await.interaction.unwrap();
    assert_eq!(offer.id, cb.id);
    assert_eq!(offer.callback.as_ref().expect("offered as a callback").number, MOBILE_E164);
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_is_refused_unless_offered_and_waiting() {
    let redis = RedisServer::start();
    // The offer is not made: turned off, no telephony system to dial it, or a queue that takes
    // no calls. The frame is refused and nothing is made.
    type Tune = Box<dyn FnOnce(&mut Config)>;
    let cases: Vec<(&str, Tune, bool)> = vec![
        ("offer_callback = false", Box::new(|c| c.webchat.offer_callback = false), false),
        ("no cti.callback_system", Box::new(|c| c.cti.callback_system = String::new()), false),
        ("a queue without calls", Box::new(|_| {}), true),
    ];
    for (case, tune, chat_only) in cases {
        let sb = callback_server(&redis.url, tune).await;
        if chat_only {
            let mut q = queue("chat", &[]);
            q.channels = vec![pb::Channel::Chat as i32];
            sb.admin().await.put_queue(pb::PutQueueRequest { queue: Some(q), allow_update: true }).await.unwrap();
        }
        let mut v = Visitor::connect(sb.http_addr).await;
        assert_eq!(v.hello.get("callback_offer").is_some(), chat_only, "{case}: {}", v.hello);
        let (_, iid) = v.start("Vera", case).await;
        let q = v.wait_type("queue").await;
        assert!(q.get("callback_offer").is_none(), "{case}: {q}");
        v.send(json!({"type": "callback", "number": MOBILE})).await;
        let e = v.wait_error("not_offered").await;
        assert!(e["message"].as_str().unwrap().contains("not offered"), "{case}: {e}");
        assert_eq!(interaction(&sb, &iid).await.state, pb::InteractionState::Queued as i32, "{case}");
        let w = waiting(&sb).await;
        assert!(w.iter().all(|i| i.channel == pb::Channel::Chat as i32), "{case}: no callback made: {w:?}");
        v.send(json!({"type": "end"})).await;
        v.wait_type("ended").await;
        sb.stop().await;
    }

    // Offered after a minute's wait: not before.
    let sb = callback_server(&redis.url, |c| c.webchat.offer_callback_after_secs = 60).await;
    let engine = Engine::connect(&redis.url, EngineOptions::default()).await.unwrap();
    put_agent(&sb, "ann", 3).await;
    let mut v = Visitor::connect(sb.http_addr).await;
    assert_eq!(v.hello["callback_offer"], json!({"after_secs": 60}));
    let (_, iid) = v.start("Vera", "waiting a while").await;
    let q = v.wait_type("queue").await;
    assert!(q.get("callback_offer").is_none(), "{q}");
    v.send(json!({"type": "callback", "number": MOBILE})).await;
    let e = v.wait_error("not_offered").await;
    assert!(e["message"].as_str().unwrap().contains("60 seconds"), "{e}");
    engine.advance_clock(Duration::from_secs(61)).await.unwrap();
    v.wait("the offer after a minute", |f| f["type"] == "queue" && f["callback_offer"] == true).await;

    // Once an agent has the chat there is no place in line to keep.
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    ann.wait_offer().await;
    ann.accept(&iid).await.unwrap();
    v.wait_type("agent_joined").await;
    v.send(json!({"type": "callback", "number": MOBILE})).await;
    let e = v.wait_error("not_waiting").await;
    assert!(e["message"].as_str().unwrap().contains("agent"), "{e}");
    let ix = interaction(&sb, &iid).await;
    assert_eq!(ix.state, pb::InteractionState::Active as i32, "unchanged");
    assert!(waiting(&sb).await.is_empty(), "no callback made");
    sb.stop().await;
}
