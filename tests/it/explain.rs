//! Explaining routing (`Supervisor.ExplainInteraction`, `ExplainAgent`): every offer records its
//! decision (kept with the interaction and logged with its `offered` event), and a waiting
//! interaction or an idle agent is explained from the live state — asserted field by field.

use crate::common::*;
use crate::concurrency::read_log;
use switchboard::api::pb;
use switchboard::api::pb::escalation_step::Action;

fn with_capacity(mut a: pb::Agent, chat: u32) -> pb::Agent {
    a.capacity = Some(pb::Capacity { voice: Some(0), chat: Some(chat), sms: Some(0), email: Some(0) });
    a
}

fn most_skilled(name: &str, reqs: &[(&str, u32)]) -> pb::Queue {
    pb::Queue { strategy: pb::Strategy::MostSkilled as i32, ..queue(name, reqs) }
}

async fn explain(sb: &TestServer, id: &str) -> pb::InteractionExplanation {
    let mut sup = sb.supervisor().await;
    sup.explain_interaction(pb::ExplainInteractionRequest { interaction_id: id.into() }).await.unwrap().into_inner()
}

async fn explain_agent(sb: &TestServer, id: &str) -> pb::AgentExplanation {
    let mut sup = sb.supervisor().await;
    sup.explain_agent(pb::ExplainAgentRequest { agent_id: id.into() }).await.unwrap().into_inner()
}

async fn start() -> (RedisServer, TestServer) {
    let redis = RedisServer::start();
    let mut cfg = test_config(&redis.url);
    // No CRM: the event log keeps every event, so the test reads the `offered` events there.
    cfg.crm.enabled = false;
    let sb = TestServer::start_with(cfg).await;
    (redis, sb)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_offer_records_who_won_who_was_passed_over_and_why() {
    let (redis, sb) = start().await;
    let mut admin = sb.admin().await;
    admin
        .put_queue(pb::PutQueueRequest { queue: Some(most_skilled("sales", &[("sales", 5)])), allow_update: false })
        .await
        .unwrap();
    for (id, level) in [("ann", 6), ("bob", 8), ("cat", 3), ("eve", 7)] {
        let a = with_capacity(agent(id, &[("sales", level)]), 1);
        admin.put_agent(pb::PutAgentRequest { agent: Some(a), allow_update: false }).await.unwrap();
    }
    let mut ann = sb.desktop("ann", "tok-ann").await;
    let mut bob = sb.desktop("bob", "tok-bob").await;
    ann.ready().await;
    bob.ready().await;
    let mut ixs = sb.interactions().await;
    let chat = ixs.create_interaction(new_chat("sales", "v1", "hello")).await.unwrap().into_inner();

    // Bob has the higher level: he wins, and Ann, ready too, ranked lower.
    assert_eq!(bob.wait_offer().await.interaction.unwrap().id, chat.id);
    let e = explain(&sb, &chat.id).await;
    assert_eq!(e.decisions.len(), 1);
    let d = &e.decisions[0];
    assert_eq!((d.via.as_str(), d.agent_id.as_str(), d.queue.as_str(), d.stage), ("queue", "bob", "sales", 0));
    assert_eq!((d.strategy.as_str(), d.skill, d.considered, d.eligible), ("most_skilled", Some(8), 2, 3));
    assert_eq!(d.passed.len(), 1);
    assert_eq!(
        (d.passed[0].agent_id.as_str(), d.passed[0].why.as_str(), d.passed[0].skill),
        ("ann", "ranked_lower", Some(6))
    );
    assert!(e.waiting.is_none());
    assert!(e.summary[0].starts_with("Offered to bob; the offer runs out in "), "{:?}", e.summary);
    assert!(e.summary[1].starts_with("Last decision: Offered to bob"), "{:?}", e.summary);
    assert!(e.summary[1].contains("in sales stage 0 (most skilled: skill 8"), "{:?}", e.summary);
    assert!(
        e.summary[1].ends_with("2 of 3 eligible could take it); passed over: ann (ranked lower)."),
        "{:?}",
        e.summary
    );

    // Eve signs in after the first offer.
    let mut eve = sb.desktop("eve", "tok-eve").await;
    eve.ready().await;
    // Bob rejects: Eve (level 7) gets it — Bob, still holding it while it was routed again, was
    // not among those who could take it.
    bob.reject(&chat.id).await.unwrap();
    assert_eq!(eve.wait_offer().await.interaction.unwrap().id, chat.id);
    let e = explain(&sb, &chat.id).await;
    assert_eq!(e.decisions.len(), 2);
    let d = &e.decisions[1];
    assert_eq!((d.agent_id.as_str(), d.skill, d.considered, d.eligible), ("eve", Some(7), 2, 3));
    assert_eq!((d.passed[0].agent_id.as_str(), d.passed[0].why.as_str()), ("ann", "ranked_lower"));
    // Eve rejects: Bob is free again and ranks first, but rejected it: Ann gets it.
    eve.reject(&chat.id).await.unwrap();
    assert_eq!(ann.wait_offer().await.interaction.unwrap().id, chat.id);
    let e = explain(&sb, &chat.id).await;
    let d = &e.decisions[2];
    assert_eq!((d.agent_id.as_str(), d.skill, d.considered, d.eligible), ("ann", Some(6), 2, 3));
    assert_eq!(d.passed.len(), 1);
    assert_eq!((d.passed[0].agent_id.as_str(), d.passed[0].why.as_str()), ("bob", "excluded"));
    assert!(e.summary[1].ends_with("passed over: bob (rejected or missed it before)."), "{:?}", e.summary);

    // Ann rejects too: it waits, with every eligible agent excluded; Cat lacks the level.
    ann.reject(&chat.id).await.unwrap();
    let e = explain(&sb, &chat.id).await;
    assert_eq!(e.decisions.len(), 3, "the last three decisions are kept");
    let w = e.waiting.expect("waiting");
    assert_eq!(w.stage, 0);
    assert_eq!(w.requirements, [("sales".to_string(), 5)].into());
    let standings: Vec<(&str, &str)> =
        w.candidates.iter().map(|c| (c.agent_id.as_str(), c.standing.as_str())).collect();
    assert_eq!(standings, vec![("ann", "excluded"), ("bob", "excluded"), ("eve", "excluded")]);
    assert_eq!(w.counts, [("excluded".to_string(), 3)].into());
    assert_eq!(w.ahead, 0);
    assert!(w.next_step.is_none());
    assert_eq!(e.summary[0], "3 agents meet stage 0 (sales ≥ 5): 0 available, 3 rejected or missed it before.");

    // Each offer's decision is in the log, with the `offered` event (what the CRM gets).
    let mut con = redis.client().await;
    let keys = switchboard_engine::keys::Keys::new("sb:{default}:");
    let offered: Vec<_> = read_log(&mut con, &keys).await.into_iter().filter(|e| e.typ == "offered").collect();
    assert_eq!(offered.len(), 3);
    assert_eq!(offered[0].details["decision"]["agent"], "bob");
    assert_eq!(offered[0].details["decision"]["passed"][0]["why"], "ranked_lower");
    assert_eq!(offered[2].details["decision"]["passed"][0]["agent"], "bob");
    assert_eq!(offered[2].details["decision"]["passed"][0]["why"], "excluded");
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_interaction_says_who_could_take_it_and_what_the_next_step_relaxes() {
    let (_redis, sb) = start().await;
    let mut admin = sb.admin().await;
    let mut q = queue("billing", &[("billing", 5)]);
    q.escalation = vec![pb::EscalationStep {
        after_secs: 600,
        action: Some(Action::LowerLevel(pb::SkillRequirement { skill: "billing".into(), min_level: 3 })),
    }];
    admin.put_queue(pb::PutQueueRequest { queue: Some(q), allow_update: false }).await.unwrap();
    for (id, skills) in
        [("ann", vec![("billing", 6)]), ("bob", vec![("billing", 7)]), ("cat", vec![("billing", 3)]), ("dan", vec![])]
    {
        let a = with_capacity(agent(id, &skills), 1);
        admin.put_agent(pb::PutAgentRequest { agent: Some(a), allow_update: false }).await.unwrap();
    }
    // Ann is busy with one chat (capacity 1); Bob is on a break; Cat is ready but below the level.
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    let mut ixs = sb.interactions().await;
    let first = ixs.create_interaction(new_chat("billing", "v1", "first")).await.unwrap().into_inner();
    assert_eq!(ann.wait_offer().await.interaction.unwrap().id, first.id);
    ann.accept(&first.id).await.unwrap();
    let mut bob = sb.desktop("bob", "tok-bob").await;
    bob.set_presence(pb::PresenceState::NotReady, "lunch").await;
    let mut cat = sb.desktop("cat", "tok-cat").await;
    cat.ready().await;
    let second = ixs.create_interaction(new_chat("billing", "v2", "second")).await.unwrap().into_inner();
    let third = ixs.create_interaction(new_chat("billing", "v3", "third")).await.unwrap().into_inner();

    let e = explain(&sb, &third.id).await;
    assert!(e.decisions.is_empty());
    let w = e.waiting.expect("waiting");
    assert_eq!((w.stage, w.ahead, w.queue_closed), (0, 1, false));
    let standings: Vec<(&str, &str)> =
        w.candidates.iter().map(|c| (c.agent_id.as_str(), c.standing.as_str())).collect();
    assert_eq!(standings, vec![("ann", "at_capacity"), ("bob", "not_ready")]);
    let step = w.next_step.expect("a next step");
    assert_eq!(
        (step.action.as_str(), step.skill.as_str(), step.min_level, step.eligible_after),
        ("lower_level", "billing", 3, Some(3))
    );
    assert_eq!(step.at.unwrap().seconds, e.interaction.as_ref().unwrap().enqueued_at.unwrap().seconds + 600);
    assert_eq!(e.summary[0], "2 agents meet stage 0 (billing ≥ 5): 0 available, 1 at capacity on chat, 1 not ready.");
    assert_eq!(e.summary[1], "1 interaction is ahead of it.");
    assert!(
        e.summary[2].starts_with("In 10 min the next step lowers billing to 3 (3 agents eligible then)."),
        "{:?}",
        e.summary
    );
    assert_eq!(e.summary[3], "Not offered to anyone yet.");
    let _ = second;

    // The agents: Cat is eligible only from stage 1, Dan at no stage, Bob is on a break.
    let c = explain_agent(&sb, "cat").await;
    let billing = c.queues.iter().find(|q| q.queue == "billing").unwrap();
    assert_eq!((billing.stage, billing.lacks.is_empty()), (Some(1), true));
    let chat = billing.channels.iter().find(|q| q.channel == pb::Channel::Chat as i32).unwrap();
    assert_eq!((chat.waiting, chat.standing.as_str()), (0, "available"));
    assert_eq!(c.summary[0], "Ready, desktop connected.");
    assert_eq!(c.summary[1], "billing: eligible from stage 1; chat: 0 waiting, can take.");
    let d = explain_agent(&sb, "dan").await;
    let billing = &d.queues.iter().find(|q| q.queue == "billing").unwrap();
    assert_eq!((billing.stage, billing.lacks.clone()), (None, vec!["billing ≥ 3 (has none)".to_string()]));
    assert_eq!(d.presence, pb::PresenceState::Offline as i32);
    assert_eq!(
        d.summary,
        vec!["Logged out: gets nothing.", "billing: not eligible at any stage — lacks billing ≥ 3 (has none)."]
    );
    let b = explain_agent(&sb, "bob").await;
    assert_eq!((b.presence, b.presence_reason.as_str()), (pb::PresenceState::NotReady as i32, "lunch"));
    let chat = b.channels.iter().find(|c| c.channel == pb::Channel::Chat as i32).unwrap();
    assert_eq!((chat.load, chat.capacity, chat.standing.as_str()), (0, 1, "not_ready"));
    let billing = b.queues.iter().find(|q| q.queue == "billing").unwrap();
    assert_eq!(billing.channels.iter().find(|q| q.channel == pb::Channel::Chat as i32).unwrap().waiting, 2);
    assert_eq!(b.summary[0], "Not ready (lunch): gets nothing.");
    let a = explain_agent(&sb, "ann").await;
    let chat = a.channels.iter().find(|c| c.channel == pb::Channel::Chat as i32).unwrap();
    assert_eq!((chat.load, chat.capacity, chat.standing.as_str()), (1, 1, "at_capacity"));
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freed_agent_pulls_the_longest_waiting_and_the_decision_names_the_one_it_beat() {
    let (_redis, sb) = start().await;
    let mut admin = sb.admin().await;
    for q in ["sales", "support"] {
        admin.put_queue(pb::PutQueueRequest { queue: Some(queue(q, &[])), allow_update: false }).await.unwrap();
    }
    let a = with_capacity(agent("ann", &[]), 1);
    admin.put_agent(pb::PutAgentRequest { agent: Some(a), allow_update: false }).await.unwrap();
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    let mut ixs = sb.interactions().await;
    let busy = ixs.create_interaction(new_chat("sales", "v0", "first")).await.unwrap().into_inner();
    assert_eq!(ann.wait_offer().await.interaction.unwrap().id, busy.id);
    ann.accept(&busy.id).await.unwrap();
    let older = ixs.create_interaction(new_chat("support", "v1", "older")).await.unwrap().into_inner();
    let newer = ixs.create_interaction(new_chat("sales", "v2", "newer")).await.unwrap().into_inner();
    ann.complete(&busy.id, "done").await.unwrap();
    assert_eq!(ann.wait_offer().await.interaction.unwrap().id, older.id);
    let e = explain(&sb, &older.id).await;
    let d = &e.decisions[0];
    assert_eq!((d.via.as_str(), d.agent_id.as_str(), d.queue.as_str(), d.stage), ("pull", "ann", "support", 0));
    assert_eq!((d.pools, d.candidates, d.priority), (2, 2, 0));
    assert_eq!(d.enqueued, e.interaction.as_ref().unwrap().enqueued_at);
    assert_eq!(d.passed.len(), 1);
    assert_eq!(
        (d.passed[0].interaction_id.as_str(), d.passed[0].why.as_str(), d.passed[0].queue.as_str()),
        (newer.id.as_str(), "waited_less", "sales")
    );
    assert!(e.summary[1].contains("(the agent became free; it was the first of 2 waiting for them"), "{:?}", e.summary);

    // Scoped supervisors and bad ids.
    let mut sup = sb.supervisor().await;
    let err =
        sup.explain_interaction(pb::ExplainInteractionRequest { interaction_id: "nope".into() }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let err =
        sup.explain_interaction(pb::ExplainInteractionRequest { interaction_id: String::new() }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("interaction_id"), "{}", err.message());
    let err = sup.explain_agent(pb::ExplainAgentRequest { agent_id: "zed".into() }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    let mut agent_client = pb::supervisor_client::SupervisorClient::new(sb.with_key("tok-ann").await);
    let err = agent_client.explain_agent(pb::ExplainAgentRequest { agent_id: "ann".into() }).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    sb.stop().await;
}
