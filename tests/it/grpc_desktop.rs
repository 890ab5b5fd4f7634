use crate::common::*;
use switchboard::api::pb;
use switchboard::api::pb::agent_event::Kind as Ev;

/// A "sales" queue asking English ≥ 3, and Ann, who speaks it at 5.
async fn sales_with_ann(sb: &TestServer) {
    let mut admin = sb.admin().await;
    admin
        .put_queue(pb::PutQueueRequest { queue: Some(queue("sales", &[("english", 3)])), allow_update: false })
        .await
        .unwrap();
    admin
        .put_agent(pb::PutAgentRequest { agent: Some(agent("ann", &[("english", 5)])), allow_update: false })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_flows_from_customer_to_agent_and_back() {
    let redis = RedisServer::start();
    let sb = TestServer::start(&redis.url).await;
    sales_with_ann(&sb).await;
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    let mut ixs = sb.interactions().await;
    let created =
        ixs.create_interaction(new_chat("sales", "visitor-1", "Hello, I need help")).await.unwrap().into_inner();
    let offer = ann.wait_offer().await;
    let oi = offer.interaction.unwrap();
    assert_eq!(oi.id, created.id);
    assert_eq!(oi.messages.len(), 1);
    assert_eq!(oi.messages[0].body, "Hello, I need help");
    assert!(offer.expires_at.is_some());
    assert_eq!(offer.screen_pop.unwrap().status, pb::ScreenPopStatus::Available as i32, "built-in CRM, new customer");
    let ack = ann.accept(&oi.id).await.unwrap();
    assert_eq!(ack.interaction.unwrap().state, pb::InteractionState::Active as i32);
    ann.wait_for("assigned", |e| matches!(e, Ev::Assigned(_))).await;

    ixs.append_message(pb::AppendMessageRequest {
        interaction_id: oi.id.clone(),
        body: "Are you there?".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let Ev::CustomerMessage(m) = ann.wait_for("customer message", |e| matches!(e, Ev::CustomerMessage(_))).await else {
        unreachable!()
    };
    assert_eq!(m.message.unwrap().body, "Are you there?");

    let mut delivered = sb.chat.subscribe();
    let ack = ann.reply(&oi.id, "Yes, how can I help?").await.unwrap();
    assert_eq!(ack.message.unwrap().seq, 3);
    let d = delivered.recv().await.unwrap();
    assert_eq!(d.body, "Yes, how can I help?");
    assert_eq!(d.customer_address, "visitor-1");

    let ack = ann.complete(&oi.id, "resolved").await.unwrap();
    assert_eq!(ack.interaction.unwrap().state, pb::InteractionState::Completed as i32);
    let got = ixs
        .get_interaction(pb::GetInteractionRequest { interaction_id: oi.id.clone(), include_messages: true })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.disposition, "resolved");
    assert_eq!(got.messages.len(), 3);
    sb.stop().await;
}

/// A graceful shutdown hands the offers pending on its desktops on at once, keeping their age,
/// instead of holding them for the presence grace period (a rolling upgrade would stall that
/// long per instance). The agent is not marked missed: it may resume on another instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_instance_hands_its_pending_offers_on_at_once() {
    let redis = RedisServer::start();
    let mut cfg = test_config(&redis.url);
    cfg.routing.presence_grace_secs = 600;
    let na = TestServer::start_with(cfg.clone()).await;
    let nb = TestServer::start_with(cfg).await;
    sales_with_ann(&na).await;
    na.admin()
        .await
        .put_agent(pb::PutAgentRequest { agent: Some(agent("bob", &[("english", 5)])), allow_update: false })
        .await
        .unwrap();
    let mut ann = na.desktop("ann", "tok-ann").await;
    ann.ready().await;
    let created =
        nb.interactions().await.create_interaction(new_chat("sales", "c1", "hello")).await.unwrap().into_inner();
    assert_eq!(ann.wait_offer().await.interaction.unwrap().id, created.id);
    let mut bob = nb.desktop("bob", "tok-bob").await;
    bob.ready().await;

    na.stop().await;
    assert_eq!(ann.wait_closed().await.as_deref(), Some("shutdown"));
    let offered = bob.wait_offer().await.interaction.unwrap();
    assert_eq!(offered.id, created.id);
    assert_eq!(offered.enqueued_at, created.enqueued_at, "it keeps its age");
    let agents = nb.supervisor().await.list_agent_states(pb::ListAgentStatesRequest {}).await.unwrap().into_inner();
    let ann = agents.agents.iter().find(|a| a.agent_id == "ann").unwrap();
    let presence = ann.presence.clone().unwrap();
    assert_eq!(
        (presence.state(), presence.reason.as_str(), ann.connected),
        (pb::PresenceState::Ready, "", false),
        "reconnecting, not missed"
    );
    nb.stop().await;
}

/// The daemon's own timer loop fires escalation: the offer reaches the desktop with no other call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalation_reaches_the_desktop_on_time_alone() {
    let redis = RedisServer::start();
    let mut cfg = test_config(&redis.url);
    // The clock jumps 31 s below; a longer grace keeps this instance's heartbeat from expiring.
    cfg.routing.presence_grace_secs = 600;
    let sb = TestServer::start_with(cfg).await;
    let mut admin = sb.admin().await;
    let mut q = queue("billing", &[("billing", 8)]);
    q.escalation = vec![pb::EscalationStep {
        after_secs: 30,
        action: Some(pb::escalation_step::Action::LowerLevel(pb::SkillRequirement {
            skill: "billing".into(),
            min_level: 4,
        })),
    }];
    admin.put_queue(pb::PutQueueRequest { queue: Some(q), allow_update: false }).await.unwrap();
    admin
        .put_agent(pb::PutAgentRequest { agent: Some(agent("bo", &[("billing", 5)])), allow_update: false })
        .await
        .unwrap();
    let mut bo = sb.desktop("bo", "tok-bo").await;
    bo.ready().await;
    let created = sb
        .interactions()
        .await
        .create_interaction(new_chat("billing", "c1", "refund please"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.state, pb::InteractionState::Queued as i32);
    let engine = switchboard_engine::Engine::connect(&redis.url, Default::default()).await.unwrap();
    engine.advance_clock(std::time::Duration::from_secs(31)).await.unwrap();
    let offer = bo.wait_offer().await;
    let ix = offer.interaction.unwrap();
    assert_eq!(ix.id, created.id);
    assert_eq!(ix.escalation_stage, 1);
}

/// Offers and assignments carry their interaction with a short thread; a long thread (many
/// messages, or large ones) is left out of the push and read by the instance instead. Either way
/// the desktop sees the whole thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offers_show_the_whole_thread_however_long() {
    let redis = RedisServer::start();
    let sb = TestServer::start(&redis.url).await;
    sales_with_ann(&sb).await;
    let mut ixs = sb.interactions().await;
    let mut threads = Vec::new();
    // Short (carried), many messages, one large message (both read back).
    for (customer, extra, body_len) in [("short", 2, 10), ("many", 30, 10), ("large", 1, 20_000)] {
        let id = ixs.create_interaction(new_chat("sales", customer, "first")).await.unwrap().into_inner().id;
        let mut bodies = vec!["first".to_string()];
        for i in 0..extra {
            let body = format!("{i:0>body_len$}");
            ixs.append_message(pb::AppendMessageRequest {
                interaction_id: id.clone(),
                body: body.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
            bodies.push(body);
        }
        threads.push((id, bodies));
    }
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    for _ in 0..threads.len() {
        let oi = ann.wait_offer().await.interaction.unwrap();
        let (_, bodies) = threads.iter().find(|(id, _)| *id == oi.id).expect("an offer of one of ours");
        let shown: Vec<String> = oi.messages.iter().map(|m| m.body.clone()).collect();
        assert_eq!(&shown, bodies, "offer of {}", oi.customer_address);
        ann.accept(&oi.id).await.unwrap();
        let Ev::Assigned(a) = ann.wait_for("assigned", |e| matches!(e, Ev::Assigned(_))).await else { unreachable!() };
        let assigned = a.interaction.unwrap();
        assert_eq!((assigned.id.as_str(), assigned.messages.len()), (oi.id.as_str(), bodies.len()));
        assert_eq!(assigned.state, pb::InteractionState::Active as i32);
    }
    sb.stop().await;
}

/// The offer that a completion frees the agent for reaches the desktop right after the
/// completion's ack (it comes back with the reply, not through the hub), and after every push
/// made to the desktop before the completion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_offer_follows_the_completion_and_what_came_before_it() {
    let redis = RedisServer::start();
    let sb = TestServer::start(&redis.url).await;
    let mut admin = sb.admin().await;
    admin.put_queue(pb::PutQueueRequest { queue: Some(queue("sales", &[])), allow_update: false }).await.unwrap();
    let mut a = agent("ann", &[]);
    a.capacity = Some(pb::Capacity { chat: Some(1), ..Default::default() });
    admin.put_agent(pb::PutAgentRequest { agent: Some(a), allow_update: false }).await.unwrap();
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    let mut ixs = sb.interactions().await;
    let one = ixs.create_interaction(new_chat("sales", "c1", "hi")).await.unwrap().into_inner();
    assert_eq!(ann.wait_offer().await.interaction.unwrap().id, one.id);
    ann.accept(&one.id).await.unwrap();
    ann.wait_for("assigned", |e| matches!(e, Ev::Assigned(_))).await;
    let two = ixs.create_interaction(new_chat("sales", "c2", "hello?")).await.unwrap().into_inner();
    assert_eq!(two.state, pb::InteractionState::Queued as i32, "ann is full");

    // A push to the desktop (a customer message), then at once the completion.
    ixs.append_message(pb::AppendMessageRequest {
        interaction_id: one.id.clone(),
        body: "thanks, bye".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let ack = ann.complete(&one.id, "resolved").await.unwrap();
    assert_eq!(ack.interaction.unwrap().state, pb::InteractionState::Completed as i32);
    assert!(
        !ann.pending.iter().any(|e| matches!(e.kind, Some(Ev::Offer(_)))),
        "no offer before the completion's ack: {:?}",
        ann.pending
    );
    let offer = ann.wait_offer().await;
    assert_eq!(offer.interaction.unwrap().id, two.id);
    assert!(
        ann.pending.iter().any(|e| matches!(&e.kind, Some(Ev::CustomerMessage(m)) if m.interaction_id == one.id)),
        "the customer's message came before the offer: {:?}",
        ann.pending
    );
    sb.stop().await;
}
