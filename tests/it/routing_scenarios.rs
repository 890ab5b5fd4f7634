//! Routing rules, one scenario each, against a real Redis through the store (the same scripts the
//! daemon runs). Time moves only when a test advances the routing clock and fires due timers,
//! exactly what each instance's timer loop does.

use std::time::Duration;

use crate::common::RedisServer;
use switchboard::hub::{InboxId, Push};
use switchboard::model::*;
use switchboard_engine::{Caller, Engine, EngineError, EngineOptions, Returned, TransferTarget};

struct S {
    redis: RedisServer,
    engine: Engine,
}

const INSTANCE: &str = "inst-1";

impl S {
    async fn new() -> S {
        let redis = RedisServer::start();
        let engine = Engine::connect(&redis.url, EngineOptions::default()).await.unwrap();
        S { redis, engine }
    }

    async fn queue(&self, q: QueueSpec) {
        self.engine.put_queue(&q, true).await.unwrap();
    }

    /// Creates the agent and logs it in (not ready yet).
    async fn agent(&self, id: &str, skills: &[(&str, u32)]) {
        self.agent_with(id, skills, Capacity::default(), None).await;
    }

    async fn agent_with(&self, id: &str, skills: &[(&str, u32)], capacity: Capacity, blocking: Option<bool>) {
        let spec = AgentSpec {
            id: id.into(),
            name: id.to_uppercase(),
            skills: skills.iter().map(|(s, l)| (s.to_string(), *l)).collect(),
            capacity,
            cross_channel_blocking: blocking,
            token: format!("tok-{id}"),
            devices: Vec::new(),
        };
        self.engine.put_agent(&spec, true).await.unwrap();
        self.engine.login(id, Some(&format!("tok-{id}")), INSTANCE, &format!("sess-{id}")).await.unwrap();
    }

    async fn ready(&self, id: &str) {
        self.engine.set_presence(id, &Presence::Ready, "agent").await.unwrap();
    }

    async fn create(&self, channel: Channel, queue: &str, customer: &str, priority: Option<i32>) -> Interaction {
        let new = NewInteraction {
            channel: Some(channel),
            customer_address: customer.into(),
            queue: queue.into(),
            priority,
            ..Default::default()
        };
        self.engine.create_interaction(&new).await.unwrap().0
    }

    async fn chat(&self, queue: &str, customer: &str) -> Interaction {
        self.create(Channel::Chat, queue, customer, None).await
    }

    async fn ix(&self, id: &str) -> Interaction {
        self.engine.get_interaction(id, false).await.unwrap()
    }

    async fn presence(&self, id: &str) -> Presence {
        self.engine.agent_status(id).await.unwrap().presence
    }

    /// Moves the routing clock and fires everything that became due.
    async fn tick(&self, secs: u64) {
        self.engine.advance_clock(Duration::from_secs(secs)).await.unwrap();
        while self.engine.fire_timers(1000).await.unwrap().fired > 0 {}
    }

    async fn offered_to(&self, iid: &str) -> Option<String> {
        let ix = self.ix(iid).await;
        (ix.state == InteractionState::Offered).then_some(ix.agent_id)
    }
}

fn q(name: &str, reqs: &[(&str, u32)]) -> QueueSpec {
    let mut q = QueueSpec::new(name);
    q.requirements = reqs.iter().map(|(s, l)| Requirement { skill: s.to_string(), min_level: *l }).collect();
    q
}

fn chat_only(c: u32) -> Capacity {
    Capacity { voice: 0, chat: c, sms: 0, email: 0 }
}

#[tokio::test]
async fn new_interaction_goes_to_an_eligible_ready_agent_only() {
    let s = S::new().await;
    s.queue(q("billing", &[("billing", 5)])).await;
    s.agent("low", &[("billing", 4)]).await;
    s.agent("notready", &[("billing", 9)]).await;
    s.agent("good", &[("billing", 5)]).await;
    s.ready("low").await;
    s.ready("good").await;
    let ix = s.chat("billing", "c1").await;
    assert_eq!(ix.state, InteractionState::Offered);
    assert_eq!(ix.agent_id, "good");
}

/// The operations live in Redis as a functions library. A Redis that lost it (a restart without
/// persistence, FUNCTION FLUSH) gets it back on the next call, and a deployment with another key
/// root on the same Redis keeps a library of its own.
#[tokio::test]
async fn routing_functions_come_back_when_redis_loses_them() {
    let s = S::new().await;
    s.queue(q("billing", &[("billing", 5)])).await;
    s.agent("good", &[("billing", 5)]).await;
    s.ready("good").await;
    let mut con = s.redis.client().await;
    let _: () = redis::cmd("FUNCTION").arg("FLUSH").query_async(&mut con).await.unwrap();
    let ix = s.chat("billing", "c1").await;
    assert_eq!((ix.state, ix.agent_id.as_str()), (InteractionState::Offered, "good"));

    let opts = EngineOptions { key_root: "sb:{other}:".into(), ..Default::default() };
    let other = Engine::connect(&s.redis.url, opts).await.unwrap();
    let libs: Vec<redis::Value> =
        redis::cmd("FUNCTION").arg("LIST").arg("LIBRARYNAME").arg("switchboard_*").query_async(&mut con).await.unwrap();
    assert_eq!(libs.len(), 2, "one library per key root: {libs:?}");
    let new = NewInteraction {
        channel: Some(Channel::Chat),
        customer_address: "c2".into(),
        queue: "billing".into(),
        ..Default::default()
    };
    assert!(matches!(other.create_interaction(&new).await, Err(EngineError::NotFound(_))));
    let ix = s.chat("billing", "c3").await;
    assert_eq!((ix.state, ix.agent_id.as_str()), (InteractionState::Offered, "good"), "the first root still routes");
}

#[tokio::test]
async fn backlog_drains_when_an_agent_becomes_ready() {
    let s = S::new().await;
    s.queue(q("sales", &[])).await;
    s.agent_with("a", &[], chat_only(2), None).await;
    let ids: Vec<String> = futures_ids(&s, 3).await;
    for id in &ids {
        assert_eq!(s.ix(id).await.state, InteractionState::Queued);
    }
    s.ready("a").await;
    // Capacity 2: the two oldest are offered, the third waits.
    assert_eq!(s.offered_to(&ids[0]).await.as_deref(), Some("a"));
    assert_eq!(s.offered_to(&ids[1]).await.as_deref(), Some("a"));
    assert_eq!(s.ix(&ids[2]).await.state, InteractionState::Queued);
}

async fn futures_ids(s: &S, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(s.chat("sales", &format!("c{i}")).await.id);
    }
    ids
}

#[tokio::test]
async fn backlog_drains_on_completion_reject_and_end_of_wrap_up() {
    let s = S::new().await;
    let mut sales = q("sales", &[]);
    sales.wrap_up_secs = 10;
    s.queue(sales).await;
    s.agent_with("a", &[], chat_only(1), None).await;
    s.agent_with("b", &[], chat_only(1), None).await;
    s.ready("a").await;
    let ids = futures_ids(&s, 5).await;
    assert_eq!(s.offered_to(&ids[0]).await.as_deref(), Some("a"));

    // Completion (after wrap-up ended by the agent) pulls the next one.
    s.engine.accept("a", &ids[0]).await.unwrap();
    s.engine.complete("a", &ids[0], "done", "").await.unwrap();
    assert_eq!(s.ix(&ids[0]).await.state, InteractionState::WrapUp);
    assert_eq!(s.presence("a").await, Presence::WrapUp);
    assert_eq!(s.ix(&ids[1]).await.state, InteractionState::Queued, "no offer during wrap-up");
    s.engine.end_wrap_up("a", &ids[0], "", "").await.unwrap();
    assert_eq!(s.ix(&ids[0]).await.state, InteractionState::Completed);
    assert_eq!(s.presence("a").await, Presence::Ready);
    assert_eq!(s.offered_to(&ids[1]).await.as_deref(), Some("a"));

    // Reject frees the slot: the agent pulls the next waiting one, the rejected one waits.
    s.engine.reject("a", &ids[1], "busy").await.unwrap();
    assert_eq!(s.offered_to(&ids[2]).await.as_deref(), Some("a"));
    assert_eq!(s.ix(&ids[1]).await.state, InteractionState::Queued);

    // The wrap-up timer ends wrap-up with no other event.
    s.engine.accept("a", &ids[2]).await.unwrap();
    s.engine.complete("a", &ids[2], "done", "").await.unwrap();
    s.tick(9).await;
    assert_eq!(s.ix(&ids[2]).await.state, InteractionState::WrapUp);
    s.tick(2).await;
    assert_eq!(s.ix(&ids[2]).await.state, InteractionState::Completed);
    // a was excluded from ids[1] (it rejected it), so it takes ids[3].
    assert_eq!(s.offered_to(&ids[3]).await.as_deref(), Some("a"));

    // A second agent going ready takes the oldest remaining: ids[1] (kept its age).
    s.ready("b").await;
    assert_eq!(s.offered_to(&ids[1]).await.as_deref(), Some("b"));
}

#[tokio::test]
async fn reject_keeps_age_excludes_agent_and_agent_stays_ready() {
    let s = S::new().await;
    s.queue(q("sales", &[])).await;
    s.agent_with("a", &[], chat_only(1), None).await;
    s.agent_with("b", &[], chat_only(1), None).await;
    s.ready("a").await;
    s.ready("b").await;
    let first = s.chat("sales", "c1").await;
    let to = first.agent_id.clone();
    let other = if to == "a" { "b" } else { "a" };
    s.engine.reject(&to, &first.id, "no").await.unwrap();
    let ix = s.ix(&first.id).await;
    assert_eq!(ix.state, InteractionState::Offered);
    assert_eq!(ix.agent_id, other, "goes to the other agent");
    assert_eq!(ix.enqueued_ms, first.enqueued_ms, "keeps its age");
    assert_eq!(s.presence(&to).await, Presence::Ready);
    s.engine.reject(other, &first.id, "no").await.unwrap();
    assert_eq!(s.ix(&first.id).await.state, InteractionState::Queued, "both excluded: it waits");
    // A newer interaction goes to a free agent, never the excluded old one.
    let second = s.chat("sales", "c2").await;
    assert_eq!(second.state, InteractionState::Offered);
    assert_eq!(s.ix(&first.id).await.state, InteractionState::Queued);
    // A third agent takes the old one first.
    s.agent_with("c", &[], chat_only(1), None).await;
    s.ready("c").await;
    assert_eq!(s.offered_to(&first.id).await.as_deref(), Some("c"));
    let f = s.engine.queue_figures("sales").await.unwrap();
    assert_eq!(f.rejected, 2);
    assert_eq!(f.offered, 4);
}

#[tokio::test]
async fn offer_timeout_returns_it_with_its_age_and_the_agent_goes_missed() {
    let s = S::new().await;
    s.queue(q("sales", &[])).await;
    s.agent_with("a", &[], chat_only(1), None).await;
    s.agent_with("b", &[], chat_only(1), None).await;
    s.ready("a").await;
    let ix = s.chat("sales", "c1").await;
    assert_eq!(ix.agent_id, "a");
    s.ready("b").await;
    s.tick(19).await;
    assert_eq!(s.offered_to(&ix.id).await.as_deref(), Some("a"), "not expired before 20 s");
    s.tick(2).await;
    assert_eq!(s.presence("a").await, Presence::NotReady("missed".into()));
    let now = s.ix(&ix.id).await;
    assert_eq!(now.agent_id, "b");
    assert_eq!(now.enqueued_ms, ix.enqueued_ms);
    // b misses too; a comes back and must not be offered it again.
    s.tick(21).await;
    assert_eq!(s.ix(&ix.id).await.state, InteractionState::Queued);
    s.ready("a").await;
    assert_eq!(s.ix(&ix.id).await.state, InteractionState::Queued, "excluded agent is not offered it again");
    assert_eq!(s.engine.queue_figures("sales").await.unwrap().missed, 2);
}

#[tokio::test]
async fn highest_priority_then_longest_waiting_across_queues() {
    let s = S::new().await;
    s.queue(q("q1", &[])).await;
    s.queue(q("q2", &[])).await;
    s.agent_with("a", &[], chat_only(1), None).await;
    let step = Duration::from_millis(5);
    let old_low = s.create(Channel::Chat, "q1", "c1", Some(1)).await;
    s.engine.advance_clock(step).await.unwrap();
    let older_high = s.create(Channel::Chat, "q2", "c2", Some(5)).await;
    s.engine.advance_clock(step).await.unwrap();
    let newer_high = s.create(Channel::Chat, "q1", "c3", Some(5)).await;
    s.ready("a").await;
    assert_eq!(s.offered_to(&older_high.id).await.as_deref(), Some("a"), "priority first, then age");
    s.engine.reject("a", &older_high.id, "").await.unwrap();
    assert_eq!(s.offered_to(&newer_high.id).await.as_deref(), Some("a"));
    s.engine.reject("a", &newer_high.id, "").await.unwrap();
    assert_eq!(s.offered_to(&old_low.id).await.as_deref(), Some("a"));
}

#[tokio::test]
async fn escalation_relaxes_and_overflows_with_no_other_event() {
    let s = S::new().await;
    s.queue(q("general", &[])).await;
    let mut billing = q("billing", &[("billing", 8)]);
    billing.escalation = vec![
        EscalationStep {
            after_secs: 30,
            action: EscalationAction::LowerLevel(Requirement { skill: "billing".into(), min_level: 5 }),
        },
        EscalationStep { after_secs: 60, action: EscalationAction::Overflow("general".into()) },
    ];
    s.queue(billing).await;
    s.agent("mid", &[("billing", 5)]).await;
    s.ready("mid").await;
    let ix = s.chat("billing", "c1").await;
    let ix2 = s.chat("billing", "c2").await;
    assert_eq!(ix.state, InteractionState::Queued);
    s.tick(29).await;
    assert_eq!(s.ix(&ix.id).await.state, InteractionState::Queued);
    s.tick(2).await;
    let now = s.ix(&ix.id).await;
    assert_eq!(now.stage, 1);
    assert_eq!(now.agent_id, "mid", "relaxed requirement met: offered on the timer alone");
    // The second (chat capacity 3) also escalated and was offered.
    assert_eq!(s.offered_to(&ix2.id).await.as_deref(), Some("mid"));
    // With nobody eligible in billing at any stage, the next one overflows to general after 60 s.
    s.agent("generalist", &[]).await;
    s.engine.set_presence("mid", &Presence::NotReady("break".into()), "agent").await.unwrap();
    s.ready("generalist").await;
    let ix4 = s.create(Channel::Chat, "billing", "c4", None).await;
    assert_eq!(ix4.state, InteractionState::Queued);
    s.tick(61).await;
    let now = s.ix(&ix4.id).await;
    assert_eq!(now.queue, "general");
    assert_eq!(now.agent_id, "generalist");
    assert_eq!(now.enqueued_ms, ix4.enqueued_ms, "overflow keeps the age");
}

#[tokio::test]
async fn stale_presence_takes_agent_offline_and_returns_its_offers() {
    let s = S::new().await;
    let mut sales = q("sales", &[]);
    // Longer than the presence grace, so the offer is returned by staleness, not by its timeout.
    sales.offer_timeout_secs = 120;
    s.queue(sales).await;
    s.agent_with("a", &[], chat_only(1), None).await;
    s.ready("a").await;
    let ix = s.chat("sales", "c1").await;
    assert_eq!(ix.agent_id, "a");
    s.engine.disconnect("a", "sess-a", false).await.unwrap();
    // Never offer to a ghost: a disconnected agent gets no new work even within the grace period.
    s.agent_with("b", &[], chat_only(1), None).await;
    s.engine.set_presence("b", &Presence::NotReady("x".into()), "agent").await.unwrap();
    let ix2 = s.chat("sales", "c2").await;
    assert_eq!(ix2.state, InteractionState::Queued);
    s.tick(29).await;
    assert_eq!(s.presence("a").await, Presence::Ready);
    s.ready("b").await;
    assert_eq!(s.offered_to(&ix2.id).await.as_deref(), Some("b"));
    s.tick(2).await;
    assert_eq!(s.presence("a").await, Presence::Offline);
    let back = s.ix(&ix.id).await;
    assert_eq!(back.state, InteractionState::Queued, "its pending offer went back to the queue");
    assert_eq!(back.enqueued_ms, ix.enqueued_ms);
    // Reconnecting in time cancels the grace timer.
    s.engine.login("b", Some("tok-b"), INSTANCE, "sess-b2").await.unwrap();
    s.engine.disconnect("b", "sess-b", false).await.unwrap(); // stale session: ignored
    s.tick(40).await;
    assert_eq!(s.presence("b").await, Presence::Ready);
}

/// A desktop stream ended by its instance stopping: its pending offers go back now (keeping
/// their age, excluding nobody) and on to a free agent; what it accepted stays its own, and the
/// agent keeps its presence through the grace period, not connected.
#[tokio::test]
async fn a_session_ended_by_a_stopping_instance_returns_its_offers_at_once() {
    let s = S::new().await;
    let mut sales = q("sales", &[]);
    sales.offer_timeout_secs = 120;
    s.queue(sales).await;
    // Room for more: the offer must not come straight back to the disconnected agent.
    s.agent_with("a", &[], chat_only(3), None).await;
    s.ready("a").await;
    let held = s.chat("sales", "c1").await;
    s.engine.accept("a", &held.id).await.unwrap();
    let pending = s.chat("sales", "c2").await;
    assert_eq!(pending.agent_id, "a");
    s.agent_with("b", &[], chat_only(1), None).await;
    s.ready("b").await;
    s.engine.disconnect("a", "sess-a", true).await.unwrap();
    let moved = s.ix(&pending.id).await;
    assert_eq!((moved.state, moved.agent_id.as_str()), (InteractionState::Offered, "b"));
    assert_eq!(moved.enqueued_ms, pending.enqueued_ms);
    assert_eq!(s.ix(&held.id).await.agent_id, "a", "accepted work stays");
    let a = s.engine.agent_status("a").await.unwrap();
    assert_eq!((a.presence, a.connected), (Presence::Ready, false));
    let mut ixs = [moved];
    s.engine.with_exclusions(&mut ixs).await.unwrap();
    assert!(ixs[0].excluded_agents.is_empty(), "nobody excluded");
}

#[tokio::test]
async fn a_dead_instance_takes_its_agents_offline() {
    let s = S::new().await;
    s.queue(q("sales", &[])).await;
    s.agent_with("a", &[], chat_only(1), None).await;
    s.engine.heartbeat(INSTANCE, false).await.unwrap();
    s.ready("a").await;
    let ix = s.chat("sales", "c1").await;
    assert_eq!(ix.agent_id, "a");
    // Another instance goes on heartbeating: this one alone is gone (with nobody heartbeating it
    // would be an outage, not a death: tests/it/redis_faults.rs).
    s.tick(15).await;
    s.engine.heartbeat("survivor", false).await.unwrap();
    s.tick(16).await;
    assert_eq!(s.presence("a").await, Presence::Offline);
    assert_eq!(s.ix(&ix.id).await.state, InteractionState::Queued);
    assert!(!s.engine.agent_status("a").await.unwrap().connected);
}

#[tokio::test]
async fn voice_blocks_other_channels_unless_configured() {
    let s = S::new().await;
    s.queue(QueueSpec::new("all")).await;
    s.agent("blocked", &[]).await;
    s.ready("blocked").await;
    let call = s.create(Channel::Voice, "all", "+4915112345678", None).await;
    assert_eq!(call.agent_id, "blocked");
    let chat = s.chat("all", "v1").await;
    assert_eq!(chat.state, InteractionState::Queued, "an offered call blocks chat");
    s.engine.accept("blocked", &call.id).await.unwrap();
    assert_eq!(s.ix(&chat.id).await.state, InteractionState::Queued, "an active call blocks chat");
    s.engine.complete("blocked", &call.id, "", "").await.unwrap();
    assert_eq!(s.offered_to(&chat.id).await.as_deref(), Some("blocked"), "freed by the end of the call");

    s.agent_with("multi", &[], Capacity::default(), Some(false)).await;
    s.ready("multi").await;
    s.engine.set_presence("blocked", &Presence::NotReady("x".into()), "agent").await.unwrap();
    let call = s.create(Channel::Voice, "all", "+4915112345679", None).await;
    assert_eq!(call.agent_id, "multi");
    let chat = s.chat("all", "v2").await;
    assert_eq!(chat.agent_id, "multi", "blocking disabled for this agent");
}

#[tokio::test]
async fn capacity_per_channel_is_never_exceeded() {
    let s = S::new().await;
    s.queue(QueueSpec::new("all")).await;
    s.agent_with("a", &[], Capacity { voice: 0, chat: 3, sms: 1, email: 0 }, None).await;
    s.ready("a").await;
    let mut chats = Vec::new();
    for i in 0..5 {
        chats.push(s.chat("all", &format!("c{i}")).await);
    }
    let offered = chats.iter().filter(|c| c.state == InteractionState::Offered).count();
    assert_eq!(offered, 3);
    let sms = s.create(Channel::Sms, "all", "+49151", None).await;
    assert_eq!(sms.state, InteractionState::Offered, "sms has its own capacity");
    let sms2 = s.create(Channel::Sms, "all", "+49152", None).await;
    assert_eq!(sms2.state, InteractionState::Queued);
    let email = s.create(Channel::Email, "all", "x@example.com", None).await;
    assert_eq!(email.state, InteractionState::Queued, "capacity 0 means no email");
    let st = s.engine.agent_status("a").await.unwrap();
    assert_eq!(st.load[&Channel::Chat], 3);
    assert_eq!(st.load[&Channel::Sms], 1);
    // Raising capacity at runtime pulls waiting work at once.
    let mut spec = s.engine.get_agent("a").await.unwrap();
    spec.capacity.chat = 4;
    s.engine.put_agent(&spec, true).await.unwrap();
    assert_eq!(s.engine.agent_status("a").await.unwrap().load[&Channel::Chat], 4);
}

/// The availability sets are what routing trusts: an agent is in a pool's chat set exactly when it
/// can take a chat now. A call may find an agent unable, put it in (going ready, wrap-up ending)
/// and fill it up again (the pull that follows); a refresh skips taking out an agent it knows is
/// in none of the sets, so each such path is checked here.
async fn assert_sets_hold_who_can_take(s: &S, pool: &str, agents: &[&str], after: &str) {
    let mut con = s.redis.client().await;
    for id in agents {
        let st = s.engine.agent_status(id).await.unwrap();
        let load = st.load.get(&Channel::Chat).copied().unwrap_or(0);
        let can = st.presence == Presence::Ready && st.connected && load < st.capacity.chat;
        let score: Option<f64> =
            redis::AsyncCommands::zscore(&mut con, s.engine.keys().avail(pool, "chat"), id).await.unwrap();
        assert_eq!(score.is_some(), can, "after {after}: {id} in {pool}'s chat set: {st:?}");
    }
}

#[tokio::test]
async fn availability_sets_hold_exactly_the_agents_who_can_take_work() {
    let s = S::new().await;
    let mut sales = q("sales", &[]);
    sales.wrap_up_secs = 30;
    s.queue(sales).await;
    s.agent_with("a", &[], chat_only(2), None).await;
    s.agent_with("b", &[], chat_only(1), None).await;
    let both = ["a", "b"];
    assert_sets_hold_who_can_take(&s, "sales#0", &both, "login").await;
    s.ready("b").await;
    assert_sets_hold_who_can_take(&s, "sales#0", &both, "b ready").await;

    // b is filled by a create; the rest wait.
    let ids = futures_ids(&s, 6).await;
    assert_eq!(s.offered_to(&ids[0]).await.as_deref(), Some("b"));
    assert_sets_hold_who_can_take(&s, "sales#0", &both, "b filled by a create").await;

    // a goes ready with more waiting than it takes: the one call puts it in the set and fills it.
    s.ready("a").await;
    assert_eq!(s.offered_to(&ids[1]).await.as_deref(), Some("a"));
    assert_eq!(s.offered_to(&ids[2]).await.as_deref(), Some("a"));
    assert_sets_hold_who_can_take(&s, "sales#0", &both, "a ready, filled").await;

    // Completion into wrap-up (the slot stays taken), then wrap-up ends: the same call makes b
    // ready, frees it, and fills it again from the backlog.
    s.engine.accept("b", &ids[0]).await.unwrap();
    s.engine.complete("b", &ids[0], "done", "").await.unwrap();
    assert_eq!(s.presence("b").await, Presence::WrapUp);
    assert_sets_hold_who_can_take(&s, "sales#0", &both, "wrap-up").await;
    s.engine.end_wrap_up("b", &ids[0], "", "").await.unwrap();
    assert_eq!(s.offered_to(&ids[3]).await.as_deref(), Some("b"));
    assert_sets_hold_who_can_take(&s, "sales#0", &both, "wrap-up ended, refilled").await;

    // Rejects free a's slots and refill them (a never takes back what it rejected).
    s.engine.reject("a", &ids[1], "busy").await.unwrap();
    s.engine.reject("a", &ids[2], "busy").await.unwrap();
    assert_eq!(s.offered_to(&ids[4]).await.as_deref(), Some("a"));
    assert_eq!(s.offered_to(&ids[5]).await.as_deref(), Some("a"));
    assert_sets_hold_who_can_take(&s, "sales#0", &both, "rejects, refilled").await;
    s.engine.set_presence("a", &Presence::NotReady("break".into()), "agent").await.unwrap();
    assert_sets_hold_who_can_take(&s, "sales#0", &both, "not ready").await;
    s.ready("a").await;
    assert_sets_hold_who_can_take(&s, "sales#0", &both, "ready again, still full").await;

    // A completion with nothing left it may take (what waits, a rejected): back in the set.
    s.engine.accept("a", &ids[4]).await.unwrap();
    s.engine.complete("a", &ids[4], "done", "").await.unwrap();
    s.engine.end_wrap_up("a", &ids[4], "", "").await.unwrap();
    assert_eq!(s.ix(&ids[1]).await.state, InteractionState::Queued, "a rejected it");
    assert_sets_hold_who_can_take(&s, "sales#0", &both, "completion, nothing to pull").await;
}

/// A queue's figures: each transition counted once (one counter write per routing call), and the
/// counters earlier versions kept in a hash per minute added in while they last.
#[tokio::test]
async fn figures_count_each_transition_once_and_add_up_earlier_versions_counters() {
    let s = S::new().await;
    s.queue(q("sales", &[])).await;
    s.agent_with("a", &[], chat_only(2), None).await;
    s.ready("a").await;
    let (one, two) = (s.chat("sales", "c1").await, s.chat("sales", "c2").await);
    s.engine.advance_clock(Duration::from_secs(4)).await.unwrap();
    s.engine.accept("a", &one.id).await.unwrap();
    s.engine.reject("a", &two.id, "busy").await.unwrap();
    s.engine.advance_clock(Duration::from_secs(10)).await.unwrap();
    s.engine.complete("a", &one.id, "done", "").await.unwrap();
    let f = s.engine.queue_figures("sales").await.unwrap();
    assert_eq!((f.offered, f.accepted, f.rejected, f.missed, f.abandoned), (2, 1, 1, 0, 0));
    assert_eq!(f.service_level_percent, Some(100.0));
    assert!((f.average_speed_of_answer_secs - 4.0).abs() < 0.01, "{f:?}");
    assert!((f.average_handle_time_secs - 10.0).abs() < 0.01, "{f:?}");

    // An instance of an earlier version counted into a hash for this minute.
    let minute = s.engine.now_ms().await.unwrap() / 60_000;
    let mut con = s.redis.client().await;
    let _: () = redis::AsyncCommands::hset_multiple(
        &mut con,
        s.engine.keys().fig("sales", minute),
        &[("offered", 3), ("accepted", 1), ("asa_ms", 8000), ("in_sl", 0)],
    )
    .await
    .unwrap();
    let f = s.engine.queue_figures("sales").await.unwrap();
    assert_eq!((f.offered, f.accepted, f.rejected), (5, 2, 1));
    assert!((f.average_speed_of_answer_secs - 6.0).abs() < 0.01, "{f:?}");
    assert_eq!(f.service_level_percent, Some(50.0));
    assert_eq!(s.engine.answered_recently("sales").await.unwrap().0, 2);
}

#[tokio::test]
async fn strategies_pick_the_right_agent() {
    let s = S::new().await;
    let mut skilled = q("skilled", &[("x", 1)]);
    skilled.strategy = Strategy::MostSkilled;
    s.queue(skilled).await;
    let mut occ = q("occupied", &[("x", 1)]);
    occ.strategy = Strategy::LeastOccupied;
    s.queue(occ).await;
    s.queue(q("idle", &[("x", 1)])).await;
    // Ready order: first becomes idle first.
    s.agent("first", &[("x", 3)]).await;
    s.agent("expert", &[("x", 9)]).await;
    s.ready("first").await;
    s.engine.advance_clock(Duration::from_millis(10)).await.unwrap();
    s.ready("expert").await;
    let i = s.chat("idle", "c1").await;
    assert_eq!(i.agent_id, "first", "longest idle");
    let m = s.chat("skilled", "c2").await;
    assert_eq!(m.agent_id, "expert", "most skilled");
    // first holds 1 chat, expert 1 chat; give expert a second one, then least occupied picks first.
    let m2 = s.chat("skilled", "c3").await;
    assert_eq!(m2.agent_id, "expert");
    let o = s.chat("occupied", "c4").await;
    assert_eq!(o.agent_id, "first", "least occupied");
}

/// An offer rewrites only the offered channel's routing entries, unless the queue scores agents
/// by their total occupancy: then every channel's entry must move with it.
#[tokio::test]
async fn an_offer_on_one_channel_updates_the_others_where_it_matters() {
    let s = S::new().await;
    let mut occ = q("occupied", &[("x", 1)]);
    occ.strategy = Strategy::LeastOccupied;
    s.queue(occ).await;
    s.queue(q("idle", &[("y", 1)])).await;
    let cap = Capacity { voice: 0, chat: 2, sms: 0, email: 2 };
    s.agent_with("a", &[("x", 1)], cap, None).await;
    s.agent_with("b", &[("x", 1)], cap, None).await;
    s.ready("a").await;
    s.engine.advance_clock(Duration::from_millis(10)).await.unwrap();
    s.ready("b").await;
    let chat = s.chat("occupied", "c1").await;
    assert_eq!(chat.agent_id, "a", "equally free: longest idle");
    let email = s.create(Channel::Email, "occupied", "e1@example.com", None).await;
    assert_eq!(email.agent_id, "b", "a's chat counts against its email entry too");

    s.agent_with("c", &[("y", 1)], Capacity { voice: 0, chat: 1, sms: 0, email: 1 }, None).await;
    s.ready("c").await;
    assert_eq!(s.chat("idle", "c2").await.agent_id, "c");
    assert_eq!(s.chat("idle", "c3").await.state, InteractionState::Queued, "chat is full");
    let email = s.create(Channel::Email, "idle", "e2@example.com", None).await;
    assert_eq!(email.agent_id, "c", "a full chat leaves the email slot as it was");
}

#[tokio::test]
async fn transfer_to_queue_keeps_age_and_boosts_priority() {
    let s = S::new().await;
    s.queue(q("tier1", &[])).await;
    s.queue(q("tier2", &[("expert", 5)])).await;
    s.agent_with("t1", &[], chat_only(1), None).await;
    s.agent_with("t2", &[("expert", 7)], chat_only(1), None).await;
    s.ready("t1").await;
    let ix = s.chat("tier1", "c1").await;
    assert_eq!(ix.agent_id, "t1");
    s.engine.accept("t1", &ix.id).await.unwrap();
    let after = s.engine.transfer("t1", &ix.id, &TransferTarget::Queue("tier2".into()), 10).await.unwrap();
    assert_eq!(after.queue, "tier2");
    assert_eq!(after.priority, 10);
    assert_eq!(after.enqueued_ms, ix.enqueued_ms);
    assert_eq!(after.state, InteractionState::Queued);
    assert_eq!(s.engine.agent_status("t1").await.unwrap().load[&Channel::Chat], 0);
    s.ready("t2").await;
    assert_eq!(s.offered_to(&ix.id).await.as_deref(), Some("t2"));
    // Unknown target: clear error, nothing changes.
    s.engine.accept("t2", &ix.id).await.unwrap();
    let err = s.engine.transfer("t2", &ix.id, &TransferTarget::Queue("nope".into()), 0).await.unwrap_err();
    assert!(matches!(err, EngineError::NotFound(_)), "{err}");
    assert_eq!(s.ix(&ix.id).await.state, InteractionState::Active);
}

#[tokio::test]
async fn transfer_to_agent_waits_then_returns_to_the_queue() {
    let s = S::new().await;
    s.queue(q("sales", &[])).await;
    s.agent_with("a", &[], chat_only(1), None).await;
    s.agent_with("b", &[], chat_only(1), None).await;
    s.agent_with("c", &[], chat_only(1), None).await;
    s.ready("a").await;
    let ix = s.chat("sales", "c1").await;
    s.engine.accept("a", &ix.id).await.unwrap();
    s.ready("c").await;
    let busy = s.chat("sales", "c2").await;
    assert_eq!(busy.agent_id, "c");
    // b is not ready yet: the interaction waits for b, even though nobody else is free.
    let t = TransferTarget::Agent { id: "b".into(), wait: Duration::from_secs(30) };
    s.engine.transfer("a", &ix.id, &t, 0).await.unwrap();
    assert_eq!(s.ix(&ix.id).await.state, InteractionState::Queued);
    s.ready("b").await;
    assert_eq!(s.offered_to(&ix.id).await.as_deref(), Some("b"), "the named agent takes it");
    s.engine.accept("b", &ix.id).await.unwrap();
    // Back to a: a does not answer in time → original queue, where c (now free) takes it.
    let t = TransferTarget::Agent { id: "a".into(), wait: Duration::from_secs(30) };
    s.engine.set_presence("a", &Presence::NotReady("x".into()), "agent").await.unwrap();
    s.engine.transfer("b", &ix.id, &t, 0).await.unwrap();
    s.engine.accept("c", &busy.id).await.unwrap();
    s.engine.complete("c", &busy.id, "", "").await.unwrap();
    assert_eq!(s.ix(&ix.id).await.state, InteractionState::Queued, "still waiting for a");
    s.tick(31).await;
    assert_eq!(s.offered_to(&ix.id).await.as_deref(), Some("c"));
}

/// The agent who transferred an interaction away is tried last, not never: with nobody else
/// free it gets it back rather than leave it waiting while it sits ready.
#[tokio::test]
async fn the_transferring_agent_is_tried_last_not_never() {
    let s = S::new().await;
    s.queue(q("sales", &[])).await;
    s.queue(q("billing", &[])).await;
    s.agent_with("a", &[], chat_only(1), None).await;
    s.agent_with("b", &[], chat_only(1), None).await;
    s.ready("a").await;
    let ix = s.chat("sales", "c1").await;
    s.engine.accept("a", &ix.id).await.unwrap();
    // To b, logged in but not ready: after the wait it is back in the queue, and a (ready, free,
    // qualified, the only one) gets it.
    let t = TransferTarget::Agent { id: "b".into(), wait: Duration::from_secs(2) };
    let after = s.engine.transfer("a", &ix.id, &t, 0).await.unwrap();
    assert_eq!((after.state, after.transferred_by.as_str()), (InteractionState::Queued, "a"));
    assert_eq!(s.offered_to(&ix.id).await, None, "it waits for b first");
    s.tick(3).await;
    assert_eq!(s.offered_to(&ix.id).await.as_deref(), Some("a"));
    // A queue transfer to a queue a also serves, with nobody else free: back to a at once.
    s.engine.accept("a", &ix.id).await.unwrap();
    s.engine.transfer("a", &ix.id, &TransferTarget::Queue("billing".into()), 0).await.unwrap();
    assert_eq!(s.offered_to(&ix.id).await.as_deref(), Some("a"));
    // A reject still excludes for good, and a supervisor sees it.
    s.engine.reject("a", &ix.id, "").await.unwrap();
    let waiting = s.engine.list_waiting(Some("billing"), 10).await.unwrap();
    assert_eq!(waiting[0].excluded_agents, ["a"]);
    assert_eq!(waiting[0].transferred_by, "a");
}

/// Tried last means after every other free agent, even one the strategy ranks lower.
#[tokio::test]
async fn the_transferring_agent_comes_after_a_lower_ranked_free_agent() {
    let s = S::new().await;
    s.queue(q("sales", &[])).await;
    let mut vip = q("vip", &[("vip", 1)]);
    vip.strategy = Strategy::MostSkilled;
    s.queue(vip).await;
    s.agent_with("a", &[("vip", 9)], chat_only(2), None).await;
    s.agent_with("b", &[("vip", 5)], chat_only(1), None).await;
    s.ready("a").await;
    let ix = s.chat("sales", "c1").await;
    s.engine.accept("a", &ix.id).await.unwrap();
    s.ready("b").await;
    // a is free for another chat and the most skilled for vip, but it just passed this one on.
    s.engine.transfer("a", &ix.id, &TransferTarget::Queue("vip".into()), 0).await.unwrap();
    assert_eq!(s.offered_to(&ix.id).await.as_deref(), Some("b"));
    // b rejects: now a is the only one left, and gets it.
    s.engine.reject("b", &ix.id, "").await.unwrap();
    assert_eq!(s.offered_to(&ix.id).await.as_deref(), Some("a"));
}

/// Everyone eligible rejected it: it waits (never back to them), shows whom it excludes, and a
/// supervisor can clear that; a failed clear changes nothing.
#[tokio::test]
async fn exclusions_are_shown_and_a_supervisor_can_clear_them() {
    let s = S::new().await;
    s.queue(q("sales", &[])).await;
    s.agent_with("a", &[], chat_only(1), None).await;
    s.ready("a").await;
    let ix = s.chat("sales", "c1").await;
    s.engine.reject("a", &ix.id, "not mine").await.unwrap();
    assert_eq!(s.presence("a").await, Presence::Ready, "a reject keeps the agent ready");
    s.tick(60).await;
    assert_eq!(s.offered_to(&ix.id).await, None, "never back to who rejected it");
    let waiting = s.engine.list_waiting(Some("sales"), 10).await.unwrap();
    assert_eq!(waiting[0].excluded_agents, ["a"]);

    let err = s.engine.move_interaction(&ix.id, "nowhere", true).await.unwrap_err();
    assert!(matches!(err, EngineError::NotFound(_)), "{err}");
    assert_eq!(s.engine.list_waiting(Some("sales"), 10).await.unwrap()[0].excluded_agents, ["a"], "unchanged");

    let cleared = s.engine.move_interaction(&ix.id, "", true).await.unwrap();
    assert_eq!((cleared.state, cleared.agent_id.as_str()), (InteractionState::Offered, "a"));
    assert!(cleared.excluded_agents.is_empty());
    assert_eq!(cleared.queue, "sales");
    assert!(matches!(s.engine.move_interaction(&ix.id, "", false).await, Err(EngineError::InvalidArgument(_))));
}

/// Sticky routing waits for the preferred agent even while it is offline: it may log in within
/// the wait. An unknown agent means no wait.
#[tokio::test]
async fn sticky_routing_waits_for_an_offline_agent_too() {
    let s = S::new().await;
    s.queue(q("sms", &[])).await;
    let sms = Capacity { voice: 0, chat: 0, sms: 1, email: 0 };
    s.agent_with("a", &[], sms, None).await;
    s.agent_with("b", &[], sms, None).await;
    s.engine.set_presence("b", &Presence::Offline, "agent").await.unwrap();
    s.ready("a").await;
    let new = NewInteraction {
        channel: Some(Channel::Sms),
        customer_address: "+4915112345678".into(),
        queue: "sms".into(),
        preferred_agent_id: "b".into(),
        preferred_agent_wait_secs: 20,
        ..Default::default()
    };
    let (ix, _) = s.engine.create_interaction(&new).await.unwrap();
    assert_eq!(ix.state, InteractionState::Queued, "a is free, but b may come back within the wait");
    s.tick(5).await;
    s.ready("b").await;
    assert_eq!(s.offered_to(&ix.id).await.as_deref(), Some("b"));

    let unknown = NewInteraction { customer_address: "+4915100000000".into(), preferred_agent_id: "zed".into(), ..new };
    let (ix2, _) = s.engine.create_interaction(&unknown).await.unwrap();
    assert_eq!(ix2.agent_id, "a", "no agent of that name: no wait");
}

/// An instance starting under the id of one that crashed: the sessions that one held are gone
/// (nobody will heartbeat or disconnect them), so their agents go offline and their offers on.
#[tokio::test]
async fn a_restarted_instance_releases_the_sessions_of_its_previous_run() {
    let s = S::new().await;
    s.queue(q("sales", &[])).await;
    s.agent_with("a", &[], chat_only(1), None).await;
    s.ready("a").await;
    let ix = s.chat("sales", "c1").await;
    assert_eq!(ix.agent_id, "a");
    // b is on another instance.
    s.agent_with("b", &[], chat_only(1), None).await;
    s.engine.login("b", Some("tok-b"), "other", "sess-b2").await.unwrap();
    s.ready("b").await;
    assert_eq!(s.engine.instance_started("other-new").await.unwrap(), 0, "a new id releases nothing");
    assert_eq!(s.engine.instance_started(INSTANCE).await.unwrap(), 1);
    let a = s.engine.agent_status("a").await.unwrap();
    assert_eq!((a.presence, a.connected), (Presence::Offline, false));
    assert_eq!(s.offered_to(&ix.id).await.as_deref(), Some("b"), "its offer went on at once");
    let b = s.engine.agent_status("b").await.unwrap();
    assert!(b.connected, "another instance's session is untouched");
    // A second start finds nothing left.
    assert_eq!(s.engine.instance_started(INSTANCE).await.unwrap(), 0);
}

#[tokio::test]
async fn sticky_agent_gets_the_follow_up_when_available_else_the_queue() {
    let s = S::new().await;
    let mut sms = q("sms", &[]);
    sms.offer_timeout_secs = 120;
    s.queue(sms).await;
    s.agent_with("a", &[], Capacity { voice: 0, chat: 0, sms: 1, email: 0 }, None).await;
    s.agent_with("b", &[], Capacity { voice: 0, chat: 0, sms: 1, email: 0 }, None).await;
    s.ready("a").await;
    s.engine.advance_clock(Duration::from_millis(5)).await.unwrap();
    s.ready("b").await;
    let new = NewInteraction {
        channel: Some(Channel::Sms),
        customer_address: "+4915112345678".into(),
        queue: "sms".into(),
        preferred_agent_id: "b".into(),
        preferred_agent_wait_secs: 20,
        ..Default::default()
    };
    let (ix, _) = s.engine.create_interaction(&new).await.unwrap();
    assert_eq!(ix.agent_id, "b", "sticky beats longest idle");
    // b busy: the next follow-up waits for b, then falls back to the queue.
    let (ix2, _) = s
        .engine
        .create_interaction(&NewInteraction { customer_address: "+4915100000000".into(), ..new })
        .await
        .unwrap();
    assert_eq!(ix2.state, InteractionState::Queued);
    s.tick(21).await;
    assert_eq!(s.offered_to(&ix2.id).await.as_deref(), Some("a"));
}

#[tokio::test]
async fn abandon_while_queued_or_offered() {
    let s = S::new().await;
    s.queue(q("sales", &[])).await;
    s.agent_with("a", &[], chat_only(1), None).await;
    let queued = s.chat("sales", "c1").await;
    let gone = s.engine.withdraw(&queued.id, "customer_left").await.unwrap();
    assert_eq!(gone.state, InteractionState::Abandoned);
    assert!(s.engine.list_waiting(Some("sales"), 10).await.unwrap().is_empty());
    s.ready("a").await;
    let offered = s.chat("sales", "c2").await;
    let next = s.chat("sales", "c3").await;
    assert_eq!(offered.agent_id, "a");
    s.engine.withdraw(&offered.id, "").await.unwrap();
    assert_eq!(s.ix(&offered.id).await.state, InteractionState::Abandoned);
    assert_eq!(s.offered_to(&next.id).await.as_deref(), Some("a"), "the freed slot pulls the next");
    assert_eq!(s.engine.queue_figures("sales").await.unwrap().abandoned, 2);
    // Withdrawing again changes nothing.
    s.engine.withdraw(&offered.id, "").await.unwrap();
    assert_eq!(s.engine.queue_figures("sales").await.unwrap().abandoned, 2);
}

#[tokio::test]
async fn supervisor_move_and_reprioritize() {
    let s = S::new().await;
    s.queue(q("a", &[])).await;
    s.queue(q("b", &[])).await;
    let one = s.create(Channel::Chat, "a", "c1", Some(1)).await;
    let two = s.create(Channel::Chat, "a", "c2", Some(1)).await;
    let waiting = s.engine.list_waiting(Some("a"), 10).await.unwrap();
    assert_eq!(waiting.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(), [one.id.as_str(), two.id.as_str()]);
    s.engine.reprioritize(&two.id, 9).await.unwrap();
    let waiting = s.engine.list_waiting(Some("a"), 10).await.unwrap();
    assert_eq!(waiting[0].id, two.id);
    let moved = s.engine.move_interaction(&one.id, "b", false).await.unwrap();
    assert_eq!(moved.queue, "b");
    assert_eq!(moved.enqueued_ms, one.enqueued_ms);
    assert_eq!(s.engine.list_waiting(Some("b"), 10).await.unwrap().len(), 1);
    let err = s.engine.move_interaction(&one.id, "missing", false).await.unwrap_err();
    assert!(matches!(err, EngineError::NotFound(_)));
    assert_eq!(s.ix(&one.id).await.queue, "b");
}

#[tokio::test]
async fn idempotent_create_and_bad_input_change_nothing() {
    let s = S::new().await;
    s.queue(q("sales", &[])).await;
    let new = NewInteraction {
        idempotency_key: "webhook-123".into(),
        channel: Some(Channel::Chat),
        customer_address: "v".into(),
        queue: "sales".into(),
        ..Default::default()
    };
    let (a, created_a) = s.engine.create_interaction(&new).await.unwrap();
    let (b, created_b) = s.engine.create_interaction(&new).await.unwrap();
    assert!(created_a && !created_b);
    assert_eq!(a.id, b.id);
    assert_eq!(s.engine.list_waiting(None, 10).await.unwrap().len(), 1);

    let bad = [
        NewInteraction { queue: "nope".into(), idempotency_key: String::new(), ..new.clone() },
        NewInteraction { channel: None, idempotency_key: String::new(), ..new.clone() },
        NewInteraction { body: "x".repeat(MAX_BODY_LEN + 1), idempotency_key: String::new(), ..new.clone() },
        NewInteraction { priority: Some(-1), idempotency_key: String::new(), ..new.clone() },
    ];
    for n in bad {
        assert!(s.engine.create_interaction(&n).await.is_err());
    }
    let mut voice_only = q("voice", &[]);
    voice_only.channels = vec![Channel::Voice];
    s.queue(voice_only).await;
    let e = s
        .engine
        .create_interaction(&NewInteraction { queue: "voice".into(), idempotency_key: String::new(), ..new.clone() })
        .await
        .unwrap_err();
    assert!(matches!(e, EngineError::InvalidArgument(ref m) if m.starts_with("channel:")), "{e}");
    assert_eq!(s.engine.list_waiting(None, 10).await.unwrap().len(), 1, "nothing was created");

    // Invalid admin input is refused before anything is written.
    let mut bad_q = q("sales", &[("x", 11)]);
    bad_q.priority = 3;
    assert!(matches!(s.engine.put_queue(&bad_q, true).await, Err(EngineError::InvalidArgument(_))));
    assert_eq!(s.engine.get_queue("sales").await.unwrap().priority, 0);
    let mut overflow = q("o", &[]);
    overflow.escalation = vec![EscalationStep { after_secs: 5, action: EscalationAction::Overflow("ghost".into()) }];
    assert!(matches!(s.engine.put_queue(&overflow, true).await, Err(EngineError::NotFound(_))));
    assert!(matches!(s.engine.get_queue("o").await, Err(EngineError::NotFound(_))));

    // Acting on someone else's offer: refused, state unchanged.
    s.agent("a", &[]).await;
    s.agent("b", &[]).await;
    s.ready("a").await;
    let ix = s.ix(&a.id).await;
    assert_eq!(ix.agent_id, "a");
    assert!(matches!(s.engine.accept("b", &ix.id).await, Err(EngineError::FailedPrecondition(_))));
    assert!(matches!(s.engine.accept("a", "no-such").await, Err(EngineError::NotFound(_))));
    assert_eq!(s.ix(&ix.id).await.state, InteractionState::Offered);
    assert!(matches!(s.engine.login("a", Some("wrong"), INSTANCE, "x").await, Err(EngineError::Unauthenticated(_))));
    assert_eq!(s.engine.agent_status("a").await.unwrap().session, "sess-a");
}

#[tokio::test]
async fn admin_changes_reroute_waiting_work() {
    let s = S::new().await;
    s.queue(q("fr", &[("french", 5)])).await;
    s.agent("a", &[("french", 2)]).await;
    s.ready("a").await;
    let ix = s.chat("fr", "c1").await;
    assert_eq!(ix.state, InteractionState::Queued);
    // Training pays off: the agent's new level makes it eligible and it takes the waiting chat.
    let mut spec = s.engine.get_agent("a").await.unwrap();
    spec.skills.insert("french".into(), 6);
    s.engine.put_agent(&spec, true).await.unwrap();
    assert_eq!(s.offered_to(&ix.id).await.as_deref(), Some("a"));
    // And lowering the queue's requirement lets a weaker agent take the next one.
    s.agent("b", &[("french", 3)]).await;
    s.ready("b").await;
    let ix2 = s.chat("fr", "c2").await;
    assert_eq!(ix2.agent_id, "a", "b not eligible yet; a has chat capacity left");
    s.engine.set_presence("a", &Presence::NotReady("x".into()), "agent").await.unwrap();
    let ix3 = s.chat("fr", "c3").await;
    assert_eq!(ix3.state, InteractionState::Queued);
    s.engine.put_queue(&q("fr", &[("french", 3)]), true).await.unwrap();
    assert_eq!(s.offered_to(&ix3.id).await.as_deref(), Some("b"));
}

/// Whom the instance inbox has `assigned` pushes for: the session each of agent "a"'s is tagged with.
async fn assigned_pushes(s: &S) -> Vec<String> {
    inbox_entries(s, "a").await.into_iter().filter(|e| e.1 == "assigned").map(|e| e.2).collect()
}

/// A call made through `caller`: its result, and the pushes its reply returned for the session.
async fn by_session<T>(
    caller: &Caller,
    f: impl std::future::Future<Output = Result<T, EngineError>>,
) -> (Result<T, EngineError>, Vec<Returned>) {
    let r = f.await;
    (r, caller.take_returned())
}

fn kinds(returned: &[Returned]) -> Vec<&'static str> {
    returned
        .iter()
        .flat_map(|b| &b.pushes)
        .map(|p| match p {
            Push::Offer(_) => "offer",
            Push::Assigned(_) => "assigned",
            Push::Presence { .. } => "presence",
            Push::Revoked { .. } => "revoked",
            _ => "other",
        })
        .collect()
}

/// The assignment is one more push: to the accepting session with the accept's reply, to any
/// other session (or with no session behind the accept) through the inbox.
#[tokio::test]
async fn the_assignment_reaches_the_session_like_any_push() {
    let s = S::new().await;
    s.queue(q("sales", &[])).await;
    s.agent_with("a", &[], chat_only(3), None).await;
    s.ready("a").await;
    let (one, two, three) = (s.chat("sales", "c1").await, s.chat("sales", "c2").await, s.chat("sales", "c3").await);

    // Accepted from the agent's own desktop session: the assignment comes back with the reply,
    // carrying the interaction, and nothing goes to the inbox.
    let caller = Caller::new("a", "sess-a", INSTANCE);
    let (ix, returned) = by_session(&caller, s.engine.calls(&caller).accept(&one.id)).await;
    assert_eq!(ix.unwrap().state, InteractionState::Active);
    assert_eq!(kinds(&returned), ["assigned"]);
    assert!(
        matches!(&returned[0].pushes[0], Push::Assigned(ix) if ix.id == one.id && ix.state == InteractionState::Active)
    );
    assert!(assigned_pushes(&s).await.is_empty());

    // Accepted by a session a new login has replaced meanwhile: the current session is told.
    s.engine.login("a", Some("tok-a"), INSTANCE, "sess-a2").await.unwrap();
    let (r, returned) = by_session(&caller, s.engine.calls(&caller).accept(&two.id)).await;
    r.unwrap();
    assert!(returned.is_empty());
    assert_eq!(assigned_pushes(&s).await, ["sess-a2"]);

    // Accepted with no session behind it: pushed too.
    s.engine.accept("a", &three.id).await.unwrap();
    assert_eq!(assigned_pushes(&s).await, ["sess-a2", "sess-a2"]);
}

/// The inbox's entries for `agent`: (id, kind, session).
async fn inbox_entries(s: &S, agent: &str) -> Vec<(String, String, String)> {
    let mut con = s.redis.client().await;
    let r: redis::streams::StreamRangeReply =
        redis::AsyncCommands::xrange_all(&mut con, s.engine.keys().inbox(INSTANCE)).await.unwrap();
    r.ids
        .iter()
        .filter(|e| e.get::<String>("agent").as_deref() == Some(agent))
        .map(|e| (e.id.clone(), e.get("kind").unwrap_or_default(), e.get("session").unwrap_or_default()))
        .collect()
}

/// An agent's own request that frees it (or makes it ready) gets the next offer back with its
/// reply, tagged with the inbox entry it follows; nothing for that session goes to the inbox.
/// Anyone else's call, or a session a new login has replaced, pushes through the inbox.
#[tokio::test]
async fn the_next_offer_for_the_requesting_session_comes_with_the_reply() {
    let s = S::new().await;
    s.queue(q("sales", &[])).await;
    s.agent_with("a", &[], chat_only(1), None).await;

    // Going ready from the desktop pulls the waiting chat: the offer comes with the reply.
    let one = s.chat("sales", "c1").await;
    let before = inbox_entries(&s, "a").await;
    let caller = Caller::new("a", "sess-a", INSTANCE);
    let (r, returned) = by_session(&caller, s.engine.calls(&caller).set_presence(&Presence::Ready, "agent")).await;
    r.unwrap();
    assert_eq!(kinds(&returned), ["presence", "offer"]);
    let inbox_id = |e: Option<&(String, String, String)>| InboxId::parse(e.map_or("0-0", |e| e.0.as_str())).unwrap();
    assert_eq!(returned[0].after, inbox_id(before.last()));
    assert_eq!(inbox_entries(&s, "a").await, before, "nothing for the requesting session went to the inbox");
    assert!(matches!(&returned[0].pushes[1], Push::Offer(ix) if ix.id == one.id));
    assert_eq!(s.offered_to(&one.id).await.as_deref(), Some("a"));

    // A chat created by someone else while the agent is busy waits; an earlier push (the
    // accept's, made with no session) is in the inbox, and the completion's offer follows it.
    s.engine.accept("a", &one.id).await.unwrap();
    let two = s.chat("sales", "c2").await;
    assert_eq!(s.ix(&two.id).await.state, InteractionState::Queued);
    let before = inbox_entries(&s, "a").await;
    assert_eq!(before.last().map(|e| e.1.as_str()), Some("assigned"));
    let (r, returned) = by_session(&caller, s.engine.calls(&caller).complete(&one.id, "done", "")).await;
    assert_eq!(r.unwrap().state, InteractionState::Completed);
    assert_eq!(kinds(&returned), ["offer"]);
    assert_eq!(returned[0].after, inbox_id(before.last()));
    assert_eq!(inbox_entries(&s, "a").await, before);
    assert_eq!(s.offered_to(&two.id).await.as_deref(), Some("a"));

    // A failed request returns nothing and pushes nothing.
    let (r, returned) = by_session(&caller, s.engine.calls(&caller).complete(&one.id, "done", "")).await;
    assert!(matches!(r, Err(EngineError::FailedPrecondition(_))), "{r:?}");
    assert!(returned.is_empty());

    // The same request from a session a new login has replaced: the current one is pushed to.
    s.engine.accept("a", &two.id).await.unwrap();
    let three = s.chat("sales", "c3").await;
    s.engine.login("a", Some("tok-a"), INSTANCE, "sess-a2").await.unwrap();
    let (r, returned) = by_session(&caller, s.engine.calls(&caller).complete(&two.id, "done", "")).await;
    r.unwrap();
    assert!(returned.is_empty());
    let last = inbox_entries(&s, "a").await.pop().unwrap();
    assert_eq!((last.1.as_str(), last.2.as_str()), ("offer", "sess-a2"));
    assert_eq!(s.offered_to(&three.id).await.as_deref(), Some("a"));
}

/// The hub says when it has handed over every inbox push up to an id, which is when a session
/// may show the pushes a reply returned after it.
#[tokio::test]
async fn the_hub_tells_when_it_has_delivered_up_to_an_inbox_id() {
    let s = S::new().await;
    s.queue(q("sales", &[])).await;
    s.agent_with("a", &[], chat_only(1), None).await;
    let hub = switchboard::hub::Hub::new(INSTANCE.into(), s.engine.clone());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    hub.register("a", "sess-a", tx);

    // Someone else's call pushes to the session; then the agent's own request returns its offer.
    let one = s.chat("sales", "c1").await;
    s.engine.set_presence("a", &Presence::NotReady("lunch".into()), "supervisor").await.unwrap();
    let caller = Caller::new("a", "sess-a", INSTANCE);
    let (r, returned) = by_session(&caller, s.engine.calls(&caller).set_presence(&Presence::Ready, "agent")).await;
    r.unwrap();
    let after = returned[0].after;
    assert!(after > InboxId::default());

    // Not read yet: not delivered.
    assert!(!hub.delivered_through(after, Duration::from_millis(100)).await);
    let cancel = tokio_util::sync::CancellationToken::new();
    let reader = tokio::spawn(hub.clone().run(cancel.clone()));
    assert!(hub.delivered_through(after, Duration::from_secs(15)).await);
    let mut handed = Vec::new();
    while let Ok(d) = rx.try_recv() {
        handed.push(d);
    }
    let (id, push) = handed.pop().expect("the earlier pushes were handed over");
    assert_eq!(id, after);
    assert!(matches!(&push, Push::Presence { presence: Presence::NotReady(r), .. } if r == "lunch"), "{push:?}");

    // The returned pushes resolved as the inbox's would: the very offer, carrying its interaction.
    let shown = &returned[0].pushes;
    assert!(
        matches!(&shown[..], [Push::Presence { presence: Presence::Ready, .. }, Push::Offer(ix)] if ix.id == one.id)
    );
    cancel.cancel();
    reader.await.unwrap();
}

/// A queue's interactions that have not ended, waiting or not, keep it from being deleted and its
/// channels from being dropped. Each sits in exactly one of the queue's two indexes (waiting, or
/// live and not waiting) however it moves: offered, rejected back, accepted, moved, ended.
#[tokio::test]
async fn live_interactions_waiting_or_not_hold_their_queue() {
    let s = S::new().await;
    s.queue(q("sales", &[])).await;
    s.queue(q("support", &[])).await;
    s.agent_with("ann", &[], chat_only(1), None).await;
    let mut con = s.redis.client().await;
    let k = s.engine.keys().clone();
    let mut indexes = async |queue: &str| -> (Vec<String>, Vec<String>) {
        let mut waiting: Vec<String> = redis::AsyncCommands::zrange(&mut con, k.qwait(queue), 0, -1).await.unwrap();
        let mut live: Vec<String> = redis::AsyncCommands::smembers(&mut con, k.qlive(queue)).await.unwrap();
        waiting.sort();
        live.sort();
        (waiting, live)
    };
    let held_by = |r: Result<(), EngineError>, n: usize| match r {
        Err(EngineError::FailedPrecondition(m)) => assert!(m.contains(&format!("{n} interaction(s)")), "{m}"),
        other => panic!("expected {n} live interaction(s) to hold the queue, got {other:?}"),
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };

    let a = s.chat("sales", "c1").await;
    let b = s.chat("sales", "c2").await;
    assert_eq!(indexes("sales").await, (sorted(vec![a.id.clone(), b.id.clone()]), vec![]));
    held_by(s.engine.delete_queue("sales").await, 2);

    s.ready("ann").await;
    assert_eq!(s.offered_to(&a.id).await.as_deref(), Some("ann"));
    assert_eq!(indexes("sales").await, (vec![b.id.clone()], vec![a.id.clone()]));
    held_by(s.engine.delete_queue("sales").await, 2);

    // Rejected: back to waiting (and ann, excluded from it, is offered the other one).
    s.engine.reject("ann", &a.id, "busy").await.unwrap();
    assert_eq!(s.offered_to(&b.id).await.as_deref(), Some("ann"));
    assert_eq!(indexes("sales").await, (vec![a.id.clone()], vec![b.id.clone()]));

    s.engine.accept("ann", &b.id).await.unwrap();
    s.engine.move_interaction(&a.id, "support", false).await.unwrap();
    assert_eq!(indexes("sales").await, (vec![], vec![b.id.clone()]));
    assert_eq!(indexes("support").await, (vec![a.id.clone()], vec![]));
    held_by(s.engine.delete_queue("sales").await, 1);
    let mut email_only = q("sales", &[]);
    email_only.channels = vec![Channel::Email];
    match s.engine.put_queue(&email_only, true).await {
        Err(EngineError::FailedPrecondition(m)) => assert!(m.contains("chat interactions"), "{m}"),
        other => panic!("dropping a channel with a live interaction: {other:?}"),
    }

    // Completed: sales is empty and can go. The one in support still waits: ann rejected it.
    s.engine.complete("ann", &b.id, "done", "").await.unwrap();
    assert_eq!(indexes("sales").await, (vec![], vec![]));
    s.engine.delete_queue("sales").await.unwrap();
    assert_eq!(indexes("support").await, (vec![a.id.clone()], vec![]));
    held_by(s.engine.delete_queue("support").await, 1);
    s.engine.withdraw(&a.id, "gone").await.unwrap();
    assert_eq!(indexes("support").await, (vec![], vec![]));
    s.engine.delete_queue("support").await.unwrap();
}
