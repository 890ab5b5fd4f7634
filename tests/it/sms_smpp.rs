//! The SMS channel over SMPP 3.4, end to end: a real daemon bound as transceiver to a real SMSC
//! simulator (PyPI smpp34, testkit's [`Smsc`]), a real Redis, agents on desktops. Customer texts
//! (plain, concatenated, redelivered), long replies in parts with per-part receipts rolled up,
//! a dropped link, a full window, a submit left unanswered, and STOP.

use switchboard::api::pb;
use switchboard::api::pb::agent_event::Kind as Ev;
use switchboard_engine::Engine;
use switchboard_engine::sms::{SmsState, reply_key};
use tonic::Code;

use crate::common::*;

const OUR_NUMBER: &str = "+4930901821";
/// Our number as the SMSC writes it in a deliver_sm's destination_addr.
const OUR_ADDR: &str = "4930901821";
/// Real-looking German mobile numbers: the channel takes only valid numbers, as the CRM does.
const CUSTOMER: &str = "+4915112345678";
const OTHER_CUSTOMER: &str = "+4915112345679";

struct Setup {
    redis: RedisServer,
    smsc: Smsc,
    sb: TestServer,
}

/// Redis, the SMSC, and a daemon whose one SMPP gateway is bound to it; the queue "support"
/// with agents ann and bob.
async fn start_with(tweak: impl FnOnce(&mut switchboard::channels::sms::config::SmppConfig)) -> Setup {
    let redis = RedisServer::start();
    let smsc = Smsc::start();
    let mut cfg = test_config(&redis.url);
    let mut gateway = smpp_gateway(smsc.port());
    tweak(&mut gateway);
    cfg.sms = smpp_sms_config(gateway, &[(OUR_NUMBER, "support")]);
    let sb = TestServer::start_with(cfg).await;
    let mut admin = sb.admin().await;
    admin.put_queue(pb::PutQueueRequest { queue: Some(queue("support", &[])), allow_update: true }).await.unwrap();
    for id in ["ann", "bob"] {
        admin.put_agent(pb::PutAgentRequest { agent: Some(agent(id, &[])), allow_update: true }).await.unwrap();
    }
    smsc.wait_binds(1).await;
    wait_bound(&sb, true).await;
    Setup { redis, smsc, sb }
}

/// Whether the daemon says its bind is up (`switchboard_smpp_bound` on /metrics).
async fn bound(sb: &TestServer) -> Option<bool> {
    let (_, metrics) = sb.http("/metrics").await;
    let line = metrics.lines().find(|l| l.starts_with("switchboard_smpp_bound{") && l.contains("gateway=\"smsc\""))?;
    Some(line.rsplit(' ').next()? == "1")
}

async fn wait_bound(sb: &TestServer, up: bool) {
    let what = if up { "the daemon bound to the SMSC" } else { "the daemon to see its link gone" };
    eventually(what, PATIENCE, || async move { (bound(sb).await == Some(up)).then_some(()) }).await;
}

/// The delivery a reply shows on its thread.
async fn delivery(sb: &TestServer, iid: &str, seq: u64) -> pb::Delivery {
    let thread = interaction(sb, iid).await.messages;
    let reply = thread.iter().find(|m| m.seq == seq).expect("the reply on its thread");
    reply.delivery.clone().unwrap_or_default()
}

async fn delivery_of(d: &mut Desktop, iid: &str, seq: u64, state: &str) -> pb::Delivery {
    let ev = d
        .wait_for(&format!("reply {seq} {state}"), |e| {
            matches!(e, Ev::Delivery(u) if u.interaction_id == iid && u.seq == seq
                && u.delivery.as_ref().is_some_and(|d| d.state == state))
        })
        .await;
    let Ev::Delivery(u) = ev else { unreachable!() };
    u.delivery.unwrap()
}

/// A customer's text as a deliver_sm; asserts the daemon answered it OK (it does once stored).
async fn text_in(smsc: &Smsc, from: &str, text: &str) {
    let id = smsc.mo(&Mo::ascii(from, OUR_ADDR, text)).await;
    assert_eq!(smsc.deliver_status(id).await, 0, "deliver_sm_resp for {text:?}");
}

/// A delivery receipt for one part; asserts the daemon answered it OK (it does once recorded).
async fn receipt(smsc: &Smsc, message_id: &str, stat: &str, err: &str, tlvs: bool) {
    let id = smsc.receipt(message_id, stat, err, tlvs).await;
    assert_eq!(smsc.deliver_status(id).await, 0, "deliver_sm_resp for the {stat} receipt");
}

/// A customer's text offered to `agent` and accepted; the interaction.
async fn conversation(smsc: &Smsc, agent: &mut Desktop, from: &str, text: &str) -> pb::Interaction {
    text_in(smsc, from, text).await;
    let ix = agent.wait_offer().await.interaction.unwrap();
    agent.accept(&ix.id).await.unwrap();
    ix
}

/// The SMSC's message ids for the parts of the text that starts with `starts`, in part order.
async fn message_ids(smsc: &Smsc, starts: &str) -> Vec<String> {
    let submits = smsc.submits().await;
    let first = submits.iter().find(|s| s.text.starts_with(starts)).expect("the text's first part");
    let parts: Vec<&Submit> = match first.udh {
        None => vec![first],
        // References repeat only after 256 long texts.
        Some((reference, total, _)) => {
            submits.iter().filter(|s| s.udh.is_some_and(|(r, t, _)| (r, t) == (reference, total))).collect()
        }
    };
    parts.iter().map(|s| s.message_id.clone().expect("accepted")).collect()
}

/// 200 GSM-7 characters that read the same in Latin-1 (how the simulator shows a submit): two
/// parts of 153 and 47.
fn long_reply(tag: &str) -> String {
    let mut s = format!("{tag}: your order 4711 left our warehouse today and reaches you tomorrow. ");
    while s.len() < 200 {
        s.push_str("Thank you for your patience, and sorry for the wait. ");
    }
    s.truncate(200);
    s
}

#[tokio::test]
async fn sms_smpp_a_text_reaches_an_agent_and_a_long_reply_is_delivered_once_every_part_is() {
    let Setup { smsc, sb, redis: _redis } = start_with(|_| {}).await;
    let mut ann = ready(&sb, "ann").await;

    text_in(&smsc, CUSTOMER, "Where is my order?").await;
    let ix = ann.wait_offer().await.interaction.unwrap();
    assert_eq!(ix.channel(), pb::Channel::Sms);
    assert_eq!(ix.customer_address, CUSTOMER, "E.164 (TON 1 gets its +), the same phone identity as voice");
    assert_eq!(ix.attributes.get("sms.number").map(String::as_str), Some(OUR_NUMBER));
    assert_eq!(ix.attributes.get("sms.gateway").map(String::as_str), Some("smsc"));
    assert_eq!(ix.messages[0].body, "Where is my order?");
    ann.accept(&ix.id).await.unwrap();

    let body = long_reply("Hi");
    let seq = ann.reply(&ix.id, &body).await.unwrap().message.unwrap().seq;
    let accepted = delivery_of(&mut ann, &ix.id, seq, "accepted").await;
    assert_eq!(accepted.segments, 2);
    let submits = smsc.submits().await;
    assert_eq!(submits.len(), 2, "one submit_sm per part");
    let reference = submits[0].udh.expect("a concatenation UDH").0;
    for (i, s) in submits.iter().enumerate() {
        assert_eq!(s.udh, Some((reference, 2, i as u8 + 1)), "part {i}: one reference for the text");
        assert_eq!((s.source.as_str(), s.source_ton, s.source_npi), (OUR_ADDR, 1, 1));
        assert_eq!((s.dest.as_str(), s.dest_ton, s.dest_npi), ("4915112345678", 1, 1));
        assert_eq!((s.esm_class, s.data_coding, s.registered_delivery), (0x40, 0, 1));
        assert_eq!(s.status, Some(0));
    }
    assert_eq!(submits.iter().map(|s| s.text.as_str()).collect::<String>(), body);
    let ids: Vec<String> = submits.iter().map(|s| s.message_id.clone().unwrap()).collect();

    // One part delivered: the reply is not (yet).
    receipt(&smsc, &ids[0], "DELIVRD", "000", true).await;
    let d = delivery(&sb, &ix.id, seq).await;
    assert_eq!((d.state.as_str(), d.segments), ("accepted", 2));
    // The other on its way: as far as the least advanced part got.
    receipt(&smsc, &ids[1], "ENROUTE", "000", true).await;
    delivery_of(&mut ann, &ix.id, seq, "sent").await;
    // Both delivered (this receipt the Appendix B text alone, no TLVs).
    receipt(&smsc, &ids[1], "DELIVRD", "000", false).await;
    let d = delivery_of(&mut ann, &ix.id, seq, "delivered").await;
    assert_eq!((d.state.as_str(), d.code.as_str(), d.segments), ("delivered", "", 2));
    let d = delivery(&sb, &ix.id, seq).await;
    assert_eq!((d.state.as_str(), d.segments), ("delivered", 2));

    // The customer answers: the text joins the open conversation, at the agent's desk.
    text_in(&smsc, CUSTOMER, "Great, thanks!").await;
    ann.wait_for("customer message", |e| {
        matches!(e, Ev::CustomerMessage(m) if m.interaction_id == ix.id
            && m.message.as_ref().is_some_and(|m| m.body == "Great, thanks!"))
    })
    .await;
    assert_eq!(waiting(&sb).await, 0, "no second interaction");
    assert_eq!(smsc.submits().await.len(), 2, "nothing sent twice");
}

#[tokio::test]
async fn sms_smpp_a_reply_shows_its_worst_part_and_late_receipts_change_nothing() {
    let Setup { smsc, sb, redis: _redis } = start_with(|_| {}).await;
    let mut ann = ready(&sb, "ann").await;
    let iid = conversation(&smsc, &mut ann, CUSTOMER, "Is my parcel lost?").await.id;

    // One part delivered, the other not: undelivered, with the SMSC's error code.
    let first = long_reply("First");
    let seq = ann.reply(&iid, &first).await.unwrap().message.unwrap().seq;
    delivery_of(&mut ann, &iid, seq, "accepted").await;
    let ids = message_ids(&smsc, "First").await;
    assert_eq!(ids.len(), 2);
    receipt(&smsc, &ids[0], "DELIVRD", "000", true).await;
    receipt(&smsc, &ids[1], "UNDELIV", "011", true).await;
    let d = delivery_of(&mut ann, &iid, seq, "undelivered").await;
    assert_eq!((d.code.as_str(), d.segments), ("011", 2));
    // Late and intermediate receipts (an SMSC may send them out of order) change nothing.
    receipt(&smsc, &ids[1], "ENROUTE", "000", true).await;
    receipt(&smsc, &ids[0], "ACCEPTD", "000", false).await;
    let d = delivery(&sb, &iid, seq).await;
    assert_eq!((d.state.as_str(), d.code.as_str(), d.segments), ("undelivered", "011", 2));

    // A part rejected first: failed at once, and a delivered part after it does not hide it.
    let second = long_reply("Second");
    let seq2 = ann.reply(&iid, &second).await.unwrap().message.unwrap().seq;
    delivery_of(&mut ann, &iid, seq2, "accepted").await;
    let ids2 = message_ids(&smsc, "Second").await;
    assert_eq!(ids2.len(), 2);
    receipt(&smsc, &ids2[1], "REJECTD", "0A1", false).await;
    let d = delivery_of(&mut ann, &iid, seq2, "failed").await;
    assert_eq!(d.code, "0A1");
    receipt(&smsc, &ids2[0], "DELIVRD", "000", true).await;
    assert_eq!(delivery(&sb, &iid, seq2).await.state, "failed");

    // A part's late ENROUTE after its DELIVRD: once the other part is delivered, so is the reply.
    let third = long_reply("Third");
    let seq3 = ann.reply(&iid, &third).await.unwrap().message.unwrap().seq;
    delivery_of(&mut ann, &iid, seq3, "accepted").await;
    let ids3 = message_ids(&smsc, "Third").await;
    assert_eq!(ids3.len(), 2);
    receipt(&smsc, &ids3[0], "DELIVRD", "000", true).await;
    receipt(&smsc, &ids3[0], "ENROUTE", "000", true).await;
    receipt(&smsc, &ids3[1], "DELIVRD", "000", true).await;
    delivery_of(&mut ann, &iid, seq3, "delivered").await;
    assert_eq!(delivery(&sb, &iid, seq3).await.state, "delivered");
    // The earlier replies still show what they showed.
    assert_eq!(delivery(&sb, &iid, seq).await.state, "undelivered");
    assert_eq!(delivery(&sb, &iid, seq2).await.state, "failed");
}

#[tokio::test]
async fn sms_smpp_a_concatenated_text_arrives_as_one_message_once_and_redeliveries_add_nothing() {
    let Setup { smsc, sb, redis: _redis } = start_with(|_| {}).await;
    // Not ready yet: what the parts make waits in the queue, where it can be counted.
    let mut ann = sb.desktop("ann", "tok-ann").await;

    let words = ["Hello, I ordered a blue jacket ", "last week and it has not ", "arrived yet. Order 4711."];
    let parts = concatenated_mo(CUSTOMER, OUR_ADDR, 0x2A, &words);
    for i in [2, 0, 1] {
        let id = smsc.mo(&parts[i]).await;
        // One at a time, as an SMSC with a window of one: each part answered once kept.
        assert_eq!(smsc.deliver_status(id).await, 0, "part {}", i + 1);
        let want = if i == 1 { 1 } else { 0 };
        assert_eq!(waiting(&sb).await, want, "an interaction only once the last part is in");
    }
    ann.ready().await;
    let ix = ann.wait_offer().await.interaction.unwrap();
    assert_eq!(ix.messages.len(), 1);
    assert_eq!(ix.messages[0].body, words.concat(), "joined in part order");
    ann.accept(&ix.id).await.unwrap();

    // The SMSC delivers it all again (it never saw our answers, say): nothing new.
    for (i, part) in parts.iter().enumerate() {
        let id = smsc.mo(part).await;
        assert_eq!(smsc.deliver_status(id).await, 0, "redelivered part {}", i + 1);
    }
    // A plain text, then the same again.
    text_in(&smsc, CUSTOMER, "It was the blue one, size M.").await;
    ann.wait_for("the second text", |e| {
        matches!(e, Ev::CustomerMessage(m) if m.interaction_id == ix.id
            && m.message.as_ref().is_some_and(|m| m.body.starts_with("It was the blue one")))
    })
    .await;
    text_in(&smsc, CUSTOMER, "It was the blue one, size M.").await;

    let bodies: Vec<String> = interaction(&sb, &ix.id).await.messages.into_iter().map(|m| m.body).collect();
    assert_eq!(bodies, vec![words.concat(), "It was the blue one, size M.".to_string()]);
    assert_eq!(waiting(&sb).await, 0, "no second interaction");
    assert!(
        ann.pending.iter().all(|e| !matches!(&e.kind, Some(Ev::CustomerMessage(_)))),
        "no duplicate pushed to the agent: {:?}",
        ann.pending
    );
}

#[tokio::test]
async fn sms_smpp_a_dropped_link_is_bound_again_and_a_reply_sent_meanwhile_goes_out_once() {
    let Setup { redis, smsc, sb } = start_with(|c| c.max_backoff_secs = 1).await;
    let mut ann = ready(&sb, "ann").await;
    let iid = conversation(&smsc, &mut ann, CUSTOMER, "Can I change my address?").await.id;
    let seq = ann.reply(&iid, "Yes: which one?").await.unwrap().message.unwrap().seq;
    delivery_of(&mut ann, &iid, seq, "accepted").await;

    smsc.drop_link().await;
    wait_bound(&sb, false).await;
    let body = "Done: it goes to Hauptstrasse 5 now.";
    let seq = match ann.reply(&iid, body).await {
        // Sent by the in-line retries once the link was back.
        Ok(ack) => ack.message.unwrap().seq,
        // Left to the background retries.
        Err((code, message)) => {
            assert_eq!(code, Code::Unavailable, "{message}");
            assert!(message.contains("retried"), "{message}");
            interaction(&sb, &iid).await.messages.last().unwrap().seq
        }
    };
    // Deferred, it is due on the routing clock within seconds (the sweep runs every 2 s), so
    // this waits rather than moving the clock: the desktop's session runs on that clock too.
    assert_eventually!(
        async { smsc.submits().await.iter().any(|s| s.text == body) },
        "the reply sent after the link came back"
    );
    smsc.wait_binds(2).await;
    delivery_of(&mut ann, &iid, seq, "accepted").await;
    assert_eq!(smsc.submits().await.iter().filter(|s| s.text == body).count(), 1, "sent once");
    let engine = Engine::connect(&redis.url, Default::default()).await.unwrap();
    let record = SmsState::new(&engine).out(&reply_key(&iid, seq)).await.unwrap().expect("the reply's record");
    assert_eq!(record.state, "accepted");
    assert!(record.attempts >= 2, "tried while the link was down, then again: {record:?}");

    // The receipt comes on the new bind; the conversation goes on there.
    let id = smsc.submits().await.into_iter().find(|s| s.text == body).unwrap().message_id.unwrap();
    receipt(&smsc, &id, "DELIVRD", "000", true).await;
    delivery_of(&mut ann, &iid, seq, "delivered").await;
    text_in(&smsc, CUSTOMER, "Perfect, thank you").await;
    ann.wait_for("the text after the reconnect", |e| {
        matches!(e, Ev::CustomerMessage(m) if m.interaction_id == iid
            && m.message.as_ref().is_some_and(|m| m.body == "Perfect, thank you"))
    })
    .await;
    assert_eq!(waiting(&sb).await, 0);
}

#[tokio::test]
async fn sms_smpp_a_full_window_holds_replies_back_without_losing_them() {
    let Setup { redis, smsc, sb } = start_with(|c| c.window = 1).await;
    let mut ann = ready(&sb, "ann").await;
    let a = conversation(&smsc, &mut ann, CUSTOMER, "Do you ship to Austria?").await.id;
    ann.set_presence(pb::PresenceState::NotReady, "break").await;
    let mut bob = ready(&sb, "bob").await;
    let b = conversation(&smsc, &mut bob, OTHER_CUSTOMER, "Do you ship to Poland?").await.id;
    let state = SmsState::new(&Engine::connect(&redis.url, Default::default()).await.unwrap());

    // ann's reply takes the one slot and is held there; bob's waits for the slot.
    smsc.hold_submits(1).await;
    let (ra, rb, ()) = tokio::join!(
        ann.reply(&a, "Yes, to Austria in 3 days."),
        async {
            smsc.wait_count("submit", 1).await;
            bob.reply(&b, "Yes, to Poland in 4 days.").await
        },
        async {
            let bobs = eventually("bob's reply stored", PATIENCE, || async {
                let thread = interaction(&sb, &b).await.messages;
                thread.iter().find(|m| m.author() == pb::Author::Agent).map(|m| reply_key(&b, m.seq))
            })
            .await;
            eventually("bob's reply waiting to be sent", PATIENCE, || async {
                let r = state.out(&bobs).await.unwrap();
                r.is_some_and(|r| r.state == "sending").then_some(())
            })
            .await;
            assert_eq!(smsc.submits().await.len(), 1, "a second submit went out with the window full");
            smsc.release().await;
        }
    );
    ra.expect("ann's reply accepted once released");
    rb.expect("bob's reply accepted once the slot was free");
    let texts: Vec<String> = smsc.submits().await.into_iter().map(|s| s.text).collect();
    assert_eq!(texts, vec!["Yes, to Austria in 3 days.", "Yes, to Poland in 4 days."], "each once, in turn");
}

#[tokio::test]
async fn sms_smpp_a_submit_unanswered_past_the_timeout_is_not_retried_and_the_agent_is_told() {
    let Setup { redis, smsc, sb } = start_with(|c| c.response_timeout_secs = 1).await;
    let mut ann = ready(&sb, "ann").await;
    let iid = conversation(&smsc, &mut ann, CUSTOMER, "Did you get my photo?").await.id;

    smsc.hold_submits(1).await;
    let body = "Yes, we got it, thank you.";
    let (code, message) = ann.reply(&iid, body).await.unwrap_err();
    assert_eq!(code, Code::Unavailable, "{message}");
    assert!(message.contains("may not have been sent"), "{message}");
    let thread = interaction(&sb, &iid).await.messages;
    let reply = thread.iter().find(|m| m.body == body).expect("the reply stays on the thread");
    let note = thread.iter().find(|m| m.author() == pb::Author::System).expect("a note on the thread");
    assert!(note.body.starts_with("[delivery unknown]"), "{}", note.body);
    assert!(note.body.contains(&format!("Reply {}", reply.seq)), "{}", note.body);

    let engine = Engine::connect(&redis.url, Default::default()).await.unwrap();
    let state = SmsState::new(&engine);
    let record = state.out(&reply_key(&iid, reply.seq)).await.unwrap().expect("the reply's record");
    assert_eq!((record.state.as_str(), record.attempts), ("uncertain", 1), "{record:?}");
    assert!(state.due_retries(u64::MAX, 10).await.unwrap().is_empty(), "nothing scheduled to send it again");
    // The SMSC took it after all; the daemon never sends it again (the retry sweep takes only
    // what is scheduled, and an attempt refuses a record that is not pending).
    smsc.release().await;
    smsc.wait_count("released", 1).await;
    let next = ann.reply(&iid, "Anything else?").await.unwrap().message.unwrap().seq;
    delivery_of(&mut ann, &iid, next, "accepted").await;
    let texts: Vec<String> = smsc.submits().await.into_iter().map(|s| s.text).collect();
    assert_eq!(texts, vec![body, "Anything else?"]);
    let record = state.out(&reply_key(&iid, reply.seq)).await.unwrap().unwrap();
    assert_eq!((record.state.as_str(), record.attempts), ("uncertain", 1));
}

#[tokio::test]
async fn sms_smpp_stop_opts_out_and_a_reply_is_then_refused() {
    let Setup { smsc, sb, redis: _redis } = start_with(|_| {}).await;
    let mut ann = ready(&sb, "ann").await;
    let iid = conversation(&smsc, &mut ann, CUSTOMER, "Is the shop open on Sunday?").await.id;

    text_in(&smsc, CUSTOMER, "Stop. Thank you").await;
    ann.wait_for("the STOP", |e| {
        matches!(e, Ev::CustomerMessage(m) if m.interaction_id == iid
            && m.message.as_ref().is_some_and(|m| m.body == "Stop. Thank you"))
    })
    .await;
    // The confirmation went out, once, to the customer from our number; nothing else ended.
    assert_eventually!(
        async { smsc.submits().await.iter().any(|s| s.text.contains("no more texts")) },
        "opt-out confirmed"
    );
    let confirmations: Vec<Submit> =
        smsc.submits().await.into_iter().filter(|s| s.text.contains("no more texts")).collect();
    assert_eq!(confirmations.len(), 1);
    assert_eq!((confirmations[0].source.as_str(), confirmations[0].dest.as_str()), (OUR_ADDR, "4915112345678"));
    assert_eq!(interaction(&sb, &iid).await.state(), pb::InteractionState::Active);

    let (code, message) = ann.reply(&iid, "Yes, 10 to 4").await.unwrap_err();
    assert_eq!(code, Code::FailedPrecondition, "{message}");
    assert!(message.contains("opted out"), "{message}");
    assert_eq!(interaction(&sb, &iid).await.messages.len(), 2, "the refused reply is not stored");
    assert_eq!(smsc.submits().await.len(), 1, "only the confirmation went out");

    // START opts back in.
    text_in(&smsc, CUSTOMER, "START").await;
    let seq = ann.reply(&iid, "Welcome back: 10 to 4 on Sundays").await.unwrap().message.unwrap().seq;
    delivery_of(&mut ann, &iid, seq, "accepted").await;
    assert!(smsc.submits().await.iter().any(|s| s.text == "Welcome back: 10 to 4 on Sundays"));
}
