//! The SMS channel through a Twilio-compatible provider: a fake provider on 127.0.0.1 signs its
//! webhooks with the published algorithm and records the REST calls; the daemon and Redis are
//! real. Conversations, delivery states, opt-out, retries and refusals of bad or forged input.

use crate::common::*;
use switchboard::api::pb;
use switchboard::api::pb::agent_event::Kind as Ev;
use switchboard::api::pb::agent_request::Kind as Rq;
use tonic::Code;

const OUR_NUMBER: &str = "+18005551212";
/// A real-looking German mobile number: the channel takes only valid numbers, as the CRM does.
const CUSTOMER: &str = "+4915112345678";

async fn start_with(
    provider: &FakeTwilio,
    tweak: impl FnOnce(&mut switchboard::config::Config),
) -> (RedisServer, TestServer) {
    let redis = RedisServer::start();
    let mut cfg = test_config(&redis.url);
    cfg.sms = twilio_sms_config(provider, &[(OUR_NUMBER, "support")]);
    tweak(&mut cfg);
    let sb = TestServer::start_with(cfg).await;
    let mut admin = sb.admin().await;
    admin.put_queue(pb::PutQueueRequest { queue: Some(queue("support", &[])), allow_update: true }).await.unwrap();
    for id in ["ann", "bob"] {
        admin.put_agent(pb::PutAgentRequest { agent: Some(agent(id, &[])), allow_update: true }).await.unwrap();
    }
    (redis, sb)
}

async fn delivery_of(d: &mut Desktop, iid: &str, seq: u64, state: &str) {
    d.wait_for(state, |e| {
        matches!(e, Ev::Delivery(u) if u.interaction_id == iid && u.seq == seq
            && u.delivery.as_ref().is_some_and(|d| d.state == state))
    })
    .await;
}

#[tokio::test]
async fn sms_a_text_reaches_an_agent_and_the_reply_is_sent_and_marked_delivered() {
    let provider = FakeTwilio::start().await;
    let (_redis, sb) = start_with(&provider, |_| {}).await;
    let mut ann = ready(&sb, "ann").await;

    let (code, body) =
        provider.text_in(sb.http_addr, "SM0001", "0049 151 1234 5678", OUR_NUMBER, "Where is my order?").await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("<Response/>"), "an empty TwiML answer: {body}");
    let offer = ann.wait_offer().await;
    let ix = offer.interaction.unwrap();
    assert_eq!(ix.channel(), pb::Channel::Sms);
    assert_eq!(ix.customer_address, CUSTOMER, "E.164, the same phone identity as voice");
    assert_eq!(ix.attributes.get("sms.number").map(String::as_str), Some(OUR_NUMBER));
    assert_eq!(ix.messages[0].body, "Where is my order?");
    ann.accept(&ix.id).await.unwrap();

    let ack = ann.reply(&ix.id, "It ships today.").await.unwrap();
    let seq = ack.message.unwrap().seq;
    let sent = provider.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].to.as_str(), sent[0].from.as_str(), sent[0].body.as_str()),
        (CUSTOMER, OUR_NUMBER, "It ships today.")
    );
    assert!(sent[0].basic_auth_ok, "REST calls carry the account sid and auth token");
    assert_eq!(sent[0].status_callback, format!("{PUBLIC_URL}/sms/tw/status"));
    delivery_of(&mut ann, &ix.id, seq, "accepted").await;

    assert_eq!(provider.status(sb.http_addr, &sent[0], "sent", "").await.0, 204);
    delivery_of(&mut ann, &ix.id, seq, "sent").await;
    assert_eq!(provider.status(sb.http_addr, &sent[0], "delivered", "").await.0, 204);
    delivery_of(&mut ann, &ix.id, seq, "delivered").await;
    // A late "sent" changes nothing: the thread keeps "delivered".
    assert_eq!(provider.status(sb.http_addr, &sent[0], "sent", "").await.0, 204);
    let thread = interaction(&sb, &ix.id).await.messages;
    let reply = thread.iter().find(|m| m.seq == seq).unwrap();
    let d = reply.delivery.as_ref().unwrap();
    assert_eq!((d.state.as_str(), d.segments), ("delivered", 1));

    // A provider that reports before it answers (the report comes before the daemon knows the
    // message's sid): the report waits for the sid and then applies.
    provider.plan([Answer::CreatedReportingFirst { daemon: sb.http_addr, status: "delivered".into() }]);
    let early = ann.reply(&ix.id, "Tracking: 42").await.unwrap().message.unwrap().seq;
    delivery_of(&mut ann, &ix.id, early, "delivered").await;

    // The customer answers: the text joins the open conversation, at the agent's desk.
    assert_eq!(provider.text_in(sb.http_addr, "SM0002", CUSTOMER, OUR_NUMBER, "Thanks!").await.0, 200);
    ann.wait_for("customer message", |e| {
        matches!(e, Ev::CustomerMessage(m) if m.interaction_id == ix.id
            && m.message.as_ref().is_some_and(|m| m.body == "Thanks!"))
    })
    .await;
    assert_eq!(waiting(&sb).await, 0, "no second interaction");
}

#[tokio::test]
async fn sms_forged_unsigned_and_replayed_webhooks_store_nothing() {
    let provider = FakeTwilio::start().await;
    let (_redis, sb) = start_with(&provider, |_| {}).await;
    let params = [("MessageSid", "SM0100"), ("From", CUSTOMER), ("To", OUR_NUMBER), ("Body", "hello")];
    let path = "/sms/tw/inbound";

    assert_eq!(provider.post(sb.http_addr, path, &params, None).await.0, 403, "unsigned");
    let wrong_token = twilio_signature("not-the-token", &format!("{PUBLIC_URL}{path}"), &params);
    assert_eq!(provider.post(sb.http_addr, path, &params, Some(&wrong_token)).await.0, 403, "wrong token");
    let other_url = twilio_signature(TWILIO_TOKEN, &format!("{PUBLIC_URL}/sms/tw/status"), &params);
    assert_eq!(provider.post(sb.http_addr, path, &params, Some(&other_url)).await.0, 403, "signed for another URL");
    let signed = twilio_signature(TWILIO_TOKEN, &format!("{PUBLIC_URL}{path}"), &params);
    let tampered = [("MessageSid", "SM0100"), ("From", CUSTOMER), ("To", OUR_NUMBER), ("Body", "hello!")];
    assert_eq!(provider.post(sb.http_addr, path, &tampered, Some(&signed)).await.0, 403, "a field changed");
    let mut added = params.to_vec();
    added.push(("Extra", "x"));
    assert_eq!(provider.post(sb.http_addr, path, &added, Some(&signed)).await.0, 403, "a field added");
    assert_eq!(waiting(&sb).await, 0, "nothing stored");

    // The genuine request, then the very same one again (a replay, or the provider's retry).
    assert_eq!(provider.post(sb.http_addr, path, &params, Some(&signed)).await.0, 200);
    assert_eq!(provider.post(sb.http_addr, path, &params, Some(&signed)).await.0, 200);
    assert_eq!(waiting(&sb).await, 1, "one interaction");
    let mut s = sb.supervisor().await;
    let w = s.list_waiting(pb::ListWaitingRequest { queue: "support".into(), ..Default::default() }).await.unwrap();
    let iid = w.into_inner().interactions[0].id.clone();
    assert_eq!(interaction(&sb, &iid).await.messages.len(), 1, "one message");
}

#[tokio::test]
async fn sms_bad_requests_are_refused_with_what_is_wrong() {
    let provider = FakeTwilio::start().await;
    let (_redis, sb) = start_with(&provider, |c| c.sms.max_request_bytes = 4096).await;
    let (code, body) = provider
        .post_signed(sb.http_addr, "/sms/tw/inbound", &[("MessageSid", "SM1"), ("To", OUR_NUMBER), ("Body", "x")])
        .await;
    assert_eq!((code, body.contains("From")), (400, true), "{body}");
    let big = "x".repeat(5000);
    let (code, _) = provider.text_in(sb.http_addr, "SM2", CUSTOMER, OUR_NUMBER, &big).await;
    assert_eq!(code, 413);
    assert_eq!(provider.post_signed(sb.http_addr, "/sms/nope/inbound", &[("MessageSid", "SM3")]).await.0, 404);
    // A number no queue owns (and no default queue): acknowledged (a retry cannot help), not stored.
    assert_eq!(provider.text_in(sb.http_addr, "SM4", CUSTOMER, "+18005550000", "hi").await.0, 200);
    // A sender that is not a phone number.
    assert_eq!(provider.text_in(sb.http_addr, "SM5", "not a number", OUR_NUMBER, "hi").await.0, 200);
    assert_eq!(waiting(&sb).await, 0);
}

#[tokio::test]
async fn sms_stop_opts_out_replies_are_refused_and_start_opts_back_in() {
    let provider = FakeTwilio::start().await;
    let crm = AuthedCrm::start("sms-daemon-key-0123456789abcdef0123", "sms-crm-admin-key-0123456789abcdef").await;
    let (_redis, sb) = start_with(&provider, |c| {
        c.crm.endpoint = crm.endpoint.clone();
        c.crm.api_key = switchboard::config::Secret("sms-daemon-key-0123456789abcdef0123".into());
    })
    .await;
    let opted_out = || async {
        let c = crm.db.find_contact(switchboard::model::Channel::Sms, CUSTOMER).await.ok();
        c.and_then(|c| c.fields.get(&format!("sms_opt_out:{OUR_NUMBER}")).cloned())
    };
    let mut ann = ready(&sb, "ann").await;
    assert_eq!(provider.text_in(sb.http_addr, "SM0200", CUSTOMER, OUR_NUMBER, "Is the shop open?").await.0, 200);
    let iid = ann.wait_offer().await.interaction.unwrap().id;
    ann.accept(&iid).await.unwrap();

    assert_eq!(provider.text_in(sb.http_addr, "SM0201", CUSTOMER, OUR_NUMBER, "Stop. Thank you").await.0, 200);
    ann.wait_for("the STOP", |e| matches!(e, Ev::CustomerMessage(m) if m.interaction_id == iid)).await;
    // The confirmation went out, once; nothing else ended.
    assert_eventually!(async { provider.sent().iter().any(|s| s.body.contains("no more texts")) }, "opt-out confirmed");
    assert_eq!(interaction(&sb, &iid).await.state(), pb::InteractionState::Active);
    let err = ann.reply(&iid, "Yes, until 6pm").await.unwrap_err();
    assert_eq!(err.0, Code::FailedPrecondition, "{err:?}");
    assert!(err.1.contains("opted out"), "{}", err.1);
    assert_eq!(interaction(&sb, &iid).await.messages.len(), 2, "the refused reply is not stored");
    assert_eventually!(async { opted_out().await.as_deref() == Some("true") }, "the CRM contact marked");

    // "please don't stop" is not an opt-out, and neither opts back in.
    assert_eq!(provider.text_in(sb.http_addr, "SM0202", CUSTOMER, OUR_NUMBER, "please don't stop").await.0, 200);
    assert!(ann.reply(&iid, "ok").await.is_err());
    assert_eq!(provider.text_in(sb.http_addr, "SM0203", CUSTOMER, OUR_NUMBER, "START").await.0, 200);
    ann.reply(&iid, "Welcome back: until 6pm").await.unwrap();
    assert_eventually!(async { opted_out().await.is_none() }, "the CRM contact unmarked");
    assert!(provider.sent().iter().any(|s| s.body == "Welcome back: until 6pm"));
    assert_eq!(provider.sent().iter().filter(|s| s.body.contains("no more texts")).count(), 1);

    // STOP after the conversation ended: taken (not retried by the provider), no new interaction.
    ann.complete(&iid, "answered").await.unwrap();
    assert_eq!(provider.text_in(sb.http_addr, "SM0204", CUSTOMER, OUR_NUMBER, "STOP").await.0, 200);
    assert_eventually!(
        async { provider.sent().iter().filter(|s| s.body.contains("no more texts")).count() == 2 },
        "the second opt-out confirmed"
    );
    assert_eventually!(async { opted_out().await.as_deref() == Some("true") }, "the CRM contact marked again");
    assert_eq!(waiting(&sb).await, 0, "STOP starts no conversation");
}

#[tokio::test]
async fn sms_help_is_answered_and_a_text_after_completion_goes_back_to_the_same_agent() {
    let provider = FakeTwilio::start().await;
    let (_redis, sb) = start_with(&provider, |_| {}).await;
    assert_eq!(provider.text_in(sb.http_addr, "SM0300", CUSTOMER, OUR_NUMBER, "HELP").await.0, 200);
    assert_eventually!(async { provider.sent().iter().any(|s| s.body.starts_with("Support texts")) }, "help answered");
    assert_eq!(waiting(&sb).await, 0, "HELP alone starts no conversation");

    let mut ann = ready(&sb, "ann").await;
    assert_eq!(
        provider.text_in(sb.http_addr, "SM0301", CUSTOMER, OUR_NUMBER, "My card was charged twice").await.0,
        200
    );
    let first = ann.wait_offer().await.interaction.unwrap().id;
    ann.accept(&first).await.unwrap();
    ann.complete(&first, "resolved").await.unwrap();
    let bob = ready(&sb, "bob").await;
    ann.request(Rq::EndWrapUp(pb::EndWrapUp { interaction_id: first.clone(), ..Default::default() })).await.ok();

    assert_eq!(provider.text_in(sb.http_addr, "SM0302", CUSTOMER, OUR_NUMBER, "Still charged twice").await.0, 200);
    let follow = ann.wait_offer().await.interaction.unwrap();
    assert_ne!(follow.id, first);
    assert_eq!(follow.attributes.get("sms.previous_interaction"), Some(&first), "linked to the conversation before");
    assert!(bob.pending.iter().all(|e| !matches!(e.kind, Some(Ev::Offer(_)))), "not offered to bob first");
}

#[tokio::test]
async fn sms_replies_are_retried_while_the_provider_is_unavailable_and_sent_once() {
    let provider = FakeTwilio::start().await;
    let (redis, sb) = start_with(&provider, |_| {}).await;
    let mut ann = ready(&sb, "ann").await;
    assert_eq!(provider.text_in(sb.http_addr, "SM0400", CUSTOMER, OUR_NUMBER, "hi").await.0, 200);
    let iid = ann.wait_offer().await.interaction.unwrap().id;
    ann.accept(&iid).await.unwrap();

    // Two refusals of the moment, then accepted: sent in-line, once.
    provider.plan([
        Answer::Status(503, "{}".into()),
        Answer::Status(429, r#"{"code":20429,"message":"Too Many Requests"}"#.into()),
    ]);
    let seq = ann.reply(&iid, "first").await.unwrap().message.unwrap().seq;
    assert_eq!(provider.sent().iter().filter(|s| s.body == "first").count(), 1);
    delivery_of(&mut ann, &iid, seq, "accepted").await;

    // Refused for good: the agent is told, the reply shows failed with the provider's code.
    provider
        .plan([Answer::Status(400, r#"{"code":21610,"message":"Attempt to send to unsubscribed recipient"}"#.into())]);
    let err = ann.reply(&iid, "second").await.unwrap_err();
    assert!(err.1.contains("21610"), "{err:?}");
    let thread = interaction(&sb, &iid).await.messages;
    let d = thread.last().unwrap().delivery.clone().unwrap();
    assert_eq!((d.state.as_str(), d.code.as_str()), ("failed", "21610"));

    // Unavailable for longer than the in-line attempts: deferred, then sent by the background retry.
    provider.plan((0..8).map(|_| Answer::Status(503, "{}".into())));
    let err = ann.reply(&iid, "third").await.unwrap_err();
    assert!(err.1.contains("retried"), "{err:?}");
    // The background retries back off on the routing clock; move it instead of waiting.
    let engine = switchboard_engine::Engine::connect(&redis.url, Default::default()).await.unwrap();
    assert_eventually!(
        async {
            engine.advance_clock(std::time::Duration::from_secs(30)).await.unwrap();
            provider.sent().iter().any(|s| s.body == "third")
        },
        "retried and sent"
    );
    assert_eq!(provider.sent().iter().filter(|s| s.body == "third").count(), 1);
}

#[tokio::test]
async fn sms_a_reply_over_the_segment_limit_is_refused_before_it_is_stored() {
    let provider = FakeTwilio::start().await;
    let (_redis, sb) = start_with(&provider, |c| c.sms.max_segments = 2).await;
    let mut ann = ready(&sb, "ann").await;
    assert_eq!(provider.text_in(sb.http_addr, "SM0500", CUSTOMER, OUR_NUMBER, "hi").await.0, 200);
    let iid = ann.wait_offer().await.interaction.unwrap().id;
    ann.accept(&iid).await.unwrap();
    // 307 GSM-7 characters = 3 segments of 153; 306 = 2.
    let err = ann.reply(&iid, &"a".repeat(307)).await.unwrap_err();
    assert_eq!(err.0, Code::InvalidArgument);
    assert!(err.1.contains("3 SMS segments"), "{}", err.1);
    assert_eq!(interaction(&sb, &iid).await.messages.len(), 1);
    ann.reply(&iid, &"a".repeat(306)).await.unwrap();
    // One non-GSM character makes it UCS-2: 70 per single segment, 67 per part.
    let err = ann.reply(&iid, &format!("{}ü€✓", "b".repeat(140))).await.unwrap_err();
    assert!(err.1.contains("ucs2"), "{}", err.1);
    assert_eq!(provider.sent().len(), 1);
}

#[tokio::test]
async fn sms_a_waiting_texter_who_replies_call_is_called_back_keeping_their_place() {
    const PROMPT: &str = "You are in line. Reply CALL to be called back instead.";
    let provider = FakeTwilio::start().await;
    let (_redis, sb) = start_with(&provider, |cfg| {
        cfg.sms.callback_keyword = "CALL".into();
        cfg.sms.callback_prompt = PROMPT.into();
        cfg.cti.callback_system = "pbx-1".into();
    })
    .await;

    // A new conversation waits: the offer goes out once.
    assert_eq!(provider.text_in(sb.http_addr, "SM0301", CUSTOMER, OUR_NUMBER, "Is anyone there?").await.0, 200);
    assert_eventually!(async { provider.sent().iter().any(|s| s.to == CUSTOMER && s.body == PROMPT) }, "the offer");
    let mut s = sb.supervisor().await;
    let list = |s: &mut pb::supervisor_client::SupervisorClient<Authed>| {
        let mut s = s.clone();
        async move {
            s.list_waiting(pb::ListWaitingRequest { queue: "support".into(), ..Default::default() })
                .await
                .unwrap()
                .into_inner()
                .interactions
        }
    };
    let text = list(&mut s).await.remove(0);
    assert_eq!(text.channel(), pb::Channel::Sms);

    // "Call!" alone is the keyword: the texter is called back instead, at the text's place.
    assert_eq!(provider.text_in(sb.http_addr, "SM0302", CUSTOMER, OUR_NUMBER, "Call!").await.0, 200);
    let confirm = format!("We will call you back on {CUSTOMER}. You keep your place in line.");
    assert_eventually!(async { provider.sent().iter().any(|s| s.body == confirm) }, "the confirmation");
    let waiting = list(&mut s).await;
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    let cb = &waiting[0];
    assert_eq!(cb.channel(), pb::Channel::Voice);
    assert_eq!(cb.callback.as_ref().map(|c| c.number.as_str()), Some(CUSTOMER));
    assert_eq!(cb.enqueued_at, text.enqueued_at, "the text's place");
    let ended = interaction(&sb, &text.id).await;
    assert_eq!((ended.state(), ended.end_reason.as_str()), (pb::InteractionState::Abandoned, "callback"));
    let f = s.get_queue_figures(pb::GetQueueFiguresRequest { queue: "support".into() }).await.unwrap().into_inner();
    assert_eq!((f.abandoned, f.callbacks_requested), (0, 1), "taking a callback is not abandoning: {f:?}");
    // The provider retrying the keyword changes nothing and says nothing again.
    let sent = provider.sent().len();
    assert_eq!(provider.text_in(sb.http_addr, "SM0302", CUSTOMER, OUR_NUMBER, "Call!").await.0, 200);
    assert_eq!(list(&mut s).await.len(), 1);
    assert_eq!(provider.sent().len(), sent);

    // Once an agent has a conversation, the word is a message for them.
    let other = "+4915112345679";
    let mut ann = ready(&sb, "ann").await;
    assert_eq!(ann.wait_offer().await.interaction.unwrap().id, cb.id, "the callback first");
    let mut bob = ready(&sb, "bob").await;
    assert_eq!(provider.text_in(sb.http_addr, "SM0303", other, OUR_NUMBER, "Hello").await.0, 200);
    let o = bob.wait_offer().await.interaction.unwrap();
    bob.accept(&o.id).await.unwrap();
    assert_eq!(provider.text_in(sb.http_addr, "SM0304", other, OUR_NUMBER, "call").await.0, 200);
    assert_eventually!(async { interaction(&sb, &o.id).await.messages.len() == 2 }, "the word in the thread");
    assert!(interaction(&sb, &o.id).await.callback.is_none());
    assert_eq!(ann.request(Rq::Accept(pb::AcceptOffer { interaction_id: cb.id.clone() })).await.map(|_| ()), Ok(()));
}
