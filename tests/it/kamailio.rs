//! Voice end to end on a real SIP platform: Kamailio with the shipped configuration
//! (`deploy/kamailio/kamailio.cfg`), bridged to Switchboard over evapi; SIPp as callers and as
//! agents' phones (registering, answering, never answering); agents on desktop streams.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;
use switchboard::api::pb;
use switchboard::api::pb::agent_event::Kind as Ev;
use switchboard::channels::voice::config::RoutingPoint;
use switchboard::channels::voice::kamailio::KamailioNode;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/sipp").join(name)
}

struct Platform {
    redis: RedisServer,
    kamailio: Kamailio,
    sb: TestServer,
}

async fn platform(agents: &[&str]) -> Platform {
    let redis = RedisServer::start();
    let cfg_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kamailio/kamailio.cfg");
    let kamailio = Kamailio::start(&cfg_file, &KamailioOptions::default());
    let mut cfg = test_config(&redis.url);
    cfg.cti.routing_points = vec![RoutingPoint {
        name: String::new(),
        dialled: vec!["support".into()],
        queue: "support".into(),
        priority: None,
    }];
    cfg.cti.kamailio = vec![KamailioNode { node: "kam1".into(), evapi: kamailio.evapi(), system: "kamailio".into() }];
    let sb = TestServer::start_with(cfg).await;
    let mut admin = sb.admin().await;
    // The ring time is the offer's time: short, so a phone nobody answers does not hold a test up.
    let support = pb::Queue { offer_timeout_secs: 3, ..queue("support", &[]) };
    admin.put_queue(pb::PutQueueRequest { queue: Some(support), allow_update: true }).await.unwrap();
    for a in agents {
        admin.put_agent(pb::PutAgentRequest { agent: Some(agent(a, &[])), allow_update: true }).await.unwrap();
    }
    Platform { redis, kamailio, sb }
}

impl Platform {
    /// Registers `agent`'s phone, then plays it with `set` (agent.xml's options) on the same port.
    fn phone(&self, agent: &str, set: &[(&str, &str)]) -> Sipp {
        self.phone_for(agent, set, 1)
    }

    /// [`Platform::phone`] taking `calls` calls, one after another.
    fn phone_for(&self, agent: &str, set: &[(&str, &str)], calls: u32) -> Sipp {
        let port = free_udp_port();
        let mut reg = Sipp::start(self.kamailio.sip_port, &fixture("register.xml"), agent, port, &[]);
        let status = reg.wait(PATIENCE);
        assert!(status.success(), "{agent}'s phone registers: {status}\n{}\n{}", reg.log(), self.kamailio.log());
        Sipp::start_calls(self.kamailio.sip_port, &fixture("agent.xml"), agent, port, set, calls)
    }

    fn call(&self, scenario: &str, set: &[(&str, &str)]) -> Sipp {
        Sipp::start(self.kamailio.sip_port, &fixture(scenario), "support", free_udp_port(), set)
    }

    /// The support queue's figures (None if the call failed).
    async fn figures(&self) -> Option<pb::QueueFigures> {
        let r = pb::GetQueueFiguresRequest { queue: "support".into() };
        Some(self.sb.supervisor().await.get_queue_figures(r).await.ok()?.into_inner())
    }

    /// Waits until Switchboard knows `agent`'s phone is registered (reported over evapi).
    async fn registered(&self, agent: &str) {
        eventually(&format!("{agent}'s phone registered in Switchboard"), PATIENCE, || {
            let redis_url = self.redis.url.clone();
            let agent = agent.to_string();
            async move {
                let client = redis::Client::open(redis_url).ok()?;
                let mut con = client.get_multiplexed_async_connection().await.ok()?;
                let phone: Option<String> =
                    redis::AsyncCommands::hget(&mut con, format!("sb:{{default}}:agent:{agent}"), "phone")
                        .await
                        .ok()?;
                (phone.as_deref() == Some("registered")).then_some(())
            }
        })
        .await;
    }
}

async fn wait_sipp(s: &mut Sipp, within: Duration) -> std::process::ExitStatus {
    s.finished(within).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_rings_the_ready_agent_whose_phone_answers_and_hangs_up() {
    let p = platform(&["ann"]).await;
    let _phone = p.phone("ann", &[("reply", "200"), ("answer_ms", "300"), ("hold_ms", "1000")]);
    p.registered("ann").await;
    let mut ann = p.sb.desktop("ann", "tok-ann").await;
    ann.ready().await;

    let mut caller = p.call("caller.xml", &[("hangup", "agent"), ("from", "4930123456")]);
    // The desktop shows the call while the phone rings, then the phone answers and hangs up.
    let offer = ann.wait_offer().await.interaction.unwrap();
    assert_eq!((offer.channel, offer.customer_address.as_str()), (pb::Channel::Voice as i32, "4930123456"));
    ann.wait_for("answered", |e| matches!(e, Ev::Assigned(_))).await;
    ann.wait_for("hung up", |e| matches!(e, Ev::InteractionEnded(x) if x.interaction_id == offer.id)).await;
    let status = wait_sipp(&mut caller, PATIENCE).await;
    assert!(status.success(), "the caller's scenario: {status}\n{}\n{}", caller.log(), p.kamailio.log());
    let ix =
        p.sb.interactions()
            .await
            .get_interaction(pb::GetInteractionRequest { interaction_id: offer.id.clone(), include_messages: false })
            .await
            .unwrap()
            .into_inner();
    assert!(
        [pb::InteractionState::WrapUp as i32, pb::InteractionState::Completed as i32].contains(&ix.state),
        "{ix:?}"
    );
    assert_eq!(ix.agent_id, "ann");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_that_does_not_answer_sends_the_call_to_the_next_agent() {
    let p = platform(&["ann", "bob"]).await;
    let _silent = p.phone("ann", &[("reply", "none")]);
    let _bobs = p.phone("bob", &[("reply", "200"), ("answer_ms", "300"), ("hold_ms", "800")]);
    p.registered("ann").await;
    p.registered("bob").await;
    let mut ann = p.sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    // Bob is ready later, so Ann (idle longer) is rung first.
    let mut bob = p.sb.desktop("bob", "tok-bob").await;
    bob.ready().await;

    let mut caller = p.call("caller.xml", &[("hangup", "agent")]);
    let first = ann.wait_offer().await.interaction.unwrap();
    // Ann's phone rings out: she goes not ready ("missed"), and Bob's phone rings and answers.
    ann.wait_for(
        "not ready after the missed call",
        |e| matches!(e, Ev::PresenceChanged(p) if p.presence.as_ref().is_some_and(|p| p.reason == "missed")),
    )
    .await;
    let second = bob.wait_offer().await.interaction.unwrap();
    assert_eq!(second.id, first.id, "the same call");
    bob.wait_for("answered", |e| matches!(e, Ev::Assigned(_))).await;
    bob.wait_for("hung up", |e| matches!(e, Ev::InteractionEnded(_))).await;
    let status = wait_sipp(&mut caller, PATIENCE).await;
    assert!(status.success(), "the caller's scenario: {status}\n{}", caller.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_caller_rings_the_agent_who_frees_up_and_one_who_gives_up_is_abandoned() {
    let p = platform(&["ann"]).await;
    let _phone = p.phone("ann", &[("reply", "200"), ("answer_ms", "200"), ("hold_ms", "800")]);
    p.registered("ann").await;
    let mut ann = p.sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    // Nobody takes calls for now.
    ann.set_presence(pb::PresenceState::NotReady, "meeting").await;

    // A caller who gives up after a moment: abandoned, and counted.
    let mut quitter = p.call("caller-cancel.xml", &[("cancel_ms", "1500")]);
    let status = wait_sipp(&mut quitter, PATIENCE).await;
    assert!(status.success(), "the quitter's scenario: {status}\n{}", quitter.log());
    let figures =
        eventually("the abandoned call counted", PATIENCE, || async { p.figures().await.filter(|f| f.abandoned == 1) })
            .await;
    assert_eq!(figures.waiting, 0, "{figures:?}");

    // A caller who waits: Ann becomes ready and the call rings her at once.
    let mut caller = p.call("caller.xml", &[("hangup", "agent")]);
    eventually("the call waiting", PATIENCE, || async { (p.figures().await?.waiting == 1).then_some(()) }).await;
    ann.ready().await;
    let offer = ann.wait_offer().await.interaction.unwrap();
    assert_eq!(offer.channel, pb::Channel::Voice as i32);
    ann.wait_for("answered", |e| matches!(e, Ev::Assigned(_))).await;
    let status = wait_sipp(&mut caller, PATIENCE).await;
    assert!(status.success(), "the waiting caller's scenario: {status}\n{}\n{}", caller.log(), p.kamailio.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backlog_drains_as_the_agent_hangs_up() {
    let p = platform(&["ann"]).await;
    let _phone = p.phone_for("ann", &[("reply", "200"), ("answer_ms", "200"), ("hold_ms", "1500")], 2);
    p.registered("ann").await;
    let mut ann = p.sb.desktop("ann", "tok-ann").await;
    ann.ready().await;

    let mut first = p.call("caller.xml", &[("hangup", "agent"), ("from", "111")]);
    let one = ann.wait_offer().await.interaction.unwrap();
    ann.wait_for("the first call answered", |e| matches!(e, Ev::Assigned(_))).await;
    // Ann is on the phone: the second caller waits.
    let mut second = p.call("caller.xml", &[("hangup", "agent"), ("from", "222")]);
    eventually("the second call waiting", PATIENCE, || async { (p.figures().await?.waiting == 1).then_some(()) }).await;
    // The first call ends; the waiting one rings Ann at once.
    ann.wait_for("the first call over", |e| matches!(e, Ev::InteractionEnded(x) if x.interaction_id == one.id)).await;
    let two = ann.wait_offer().await.interaction.unwrap();
    assert_eq!(two.customer_address, "222");
    ann.wait_for("the second call answered", |e| matches!(e, Ev::Assigned(_))).await;
    for (who, c) in [("first", &mut first), ("second", &mut second)] {
        let status = wait_sipp(c, PATIENCE).await;
        assert!(status.success(), "the {who} caller: {status}\n{}", c.log());
    }
}
