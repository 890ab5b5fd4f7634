//! Redis failing under a running daemon, with real processes: the daemon tells clients (a
//! supervisor watch ends UNAVAILABLE rather than OK), heals when Redis comes back empty (the
//! config's agents and queues loaded again, the CRM consumer group made again, readiness meaning
//! "can route"), and tells an outage from an instance's death.

use std::time::Duration;

use crate::common::*;
use switchboard::api::pb;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_watch_ends_unavailable_when_redis_goes_away() {
    let mut redis = RedisServer::start();
    let mut cfg = test_config(&redis.url);
    cfg.crm.enabled = false;
    let sb = TestServer::start_with(cfg).await;
    let mut admin = sb.admin().await;
    admin.put_queue(pb::PutQueueRequest { queue: Some(queue("sales", &[])), allow_update: true }).await.unwrap();
    let mut sup = sb.supervisor().await;
    let mut w = sup.watch(pb::WatchRequest { queues: vec![], include_agents: false }).await.unwrap().into_inner();
    // The snapshot arrives while Redis is there.
    let first = tokio::time::timeout(PATIENCE, w.message()).await.expect("a snapshot in time");
    assert!(matches!(first, Ok(Some(_))), "{first:?}");

    tokio::task::block_in_place(|| redis.kill());
    let end = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match w.message().await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the watch ends once Redis is gone");
    let status = end.expect_err("ended with an error, not as if all were well");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_back_without_its_data_gets_the_config_again_and_routing_and_delivery_resume() {
    // No persistence: a restart comes back empty, as a flushed Redis or a new empty primary would.
    let mut redis = RedisServer::start();
    let mut cfg = test_config(&redis.url);
    cfg.queues = vec![switchboard::model::QueueSpec::new("sales")];
    cfg.agents = vec![serde_json::from_value(serde_json::json!({ "id": "ann", "token": "tok-ann" })).unwrap()];
    let sb = TestServer::start_with(cfg).await;
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    let mut ixs = sb.interactions().await;
    let before = ixs.create_interaction(new_chat("sales", "visitor-1", "hello")).await.unwrap().into_inner();
    assert_eq!(ann.wait_offer().await.interaction.unwrap().id, before.id);
    assert_eq!(sb.http("/readyz").await.0, 200);

    tokio::task::block_in_place(|| redis.restart());
    assert!(redis::AsyncCommands::keys::<_, Vec<String>>(&mut redis.client().await, "*").await.unwrap().len() < 3);

    // Within a heartbeat or two the config is back: the queue takes work again and /readyz is
    // ready again (it says "not ready" only while the daemon cannot route).
    let created = eventually("a create into the config's queue", Duration::from_secs(20), || {
        let mut ixs = ixs.clone();
        async move { ixs.create_interaction(new_chat("sales", "visitor-2", "anyone?")).await.ok() }
    })
    .await
    .into_inner();
    eventually("ready again", Duration::from_secs(10), || async { (sb.http("/readyz").await.0 == 200).then_some(()) })
        .await;
    // Ann's session went with the data: her desktop is told to sign in again, and then works.
    assert_eq!(ann.wait_closed().await.as_deref(), Some("stale"));
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    assert_eq!(ann.wait_offer().await.interaction.unwrap().id, created.id);
    // The CRM's consumer group is back: the new log is delivered (and trimmed).
    let mut con = redis.client().await;
    eventually("the event log delivered", Duration::from_secs(20), || {
        let mut con = con.clone();
        async move {
            let n: u64 = redis::AsyncCommands::xlen(&mut con, "sb:{default}:events").await.ok()?;
            (n == 0).then_some(())
        }
    })
    .await;
    let groups: redis::Value =
        redis::cmd("XINFO").arg("GROUPS").arg("sb:{default}:events").query_async(&mut con).await.unwrap();
    assert!(format!("{groups:?}").contains("crm"), "{groups:?}");
    sb.stop().await;
}

/// A config whose instance heartbeats every second and is presumed dead after `grace_secs`.
fn outage_config(redis: &RedisServer, grace_secs: u64) -> switchboard::config::Config {
    let mut cfg = test_config(&redis.url);
    cfg.crm.enabled = false;
    cfg.routing.presence_grace_secs = grace_secs;
    cfg.routing.heartbeat_secs = 1;
    cfg
}

async fn presence(sb: &TestServer, id: &str) -> (i32, String, bool) {
    let agents = sb.supervisor().await.list_agent_states(pb::ListAgentStatesRequest {}).await.unwrap().into_inner();
    let a = agents.agents.into_iter().find(|a| a.agent_id == id).unwrap();
    let p = a.presence.unwrap_or_default();
    (p.state, p.reason, a.connected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_heartbeat_from_anyone_for_a_grace_period_is_an_outage_not_every_instances_death() {
    // The routing clock jumping past the grace with nobody heartbeating meanwhile is what Redis
    // sees of an outage: every lease and the pending offer come due at once.
    let redis = RedisServer::start();
    let sb = TestServer::start_with(outage_config(&redis, 30)).await;
    let mut admin = sb.admin().await;
    admin.put_queue(pb::PutQueueRequest { queue: Some(queue("sales", &[])), allow_update: true }).await.unwrap();
    admin.put_agent(pb::PutAgentRequest { agent: Some(agent("ann", &[])), allow_update: true }).await.unwrap();
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    let chat = sb.interactions().await.create_interaction(new_chat("sales", "v1", "hi")).await.unwrap().into_inner();
    assert_eq!(ann.wait_offer().await.interaction.unwrap().id, chat.id);

    let engine = switchboard_engine::Engine::connect(&redis.url, Default::default()).await.unwrap();
    engine.advance_clock(Duration::from_secs(45)).await.unwrap();
    // The offer that ran out meanwhile comes back to Ann — not missed, not excluded — and her
    // session stays: the instance was not declared dead.
    let again = ann.wait_offer().await.interaction.unwrap();
    assert_eq!(again.id, chat.id);
    assert!(again.excluded_agent_ids.is_empty(), "{again:?}");
    ann.accept(&chat.id).await.unwrap();
    let (state, reason, connected) = presence(&sb, "ann").await;
    assert_eq!((state, reason.as_str(), connected), (pb::PresenceState::Ready as i32, "", true));
    let mut con = redis.client().await;
    let log: Vec<String> = {
        let r: redis::streams::StreamRangeReply =
            redis::AsyncCommands::xrange_all(&mut con, "sb:{default}:events").await.unwrap();
        switchboard_engine::events::entries_events(&r.ids).into_iter().map(|e| e.typ).collect()
    };
    assert!(log.contains(&"outage".to_string()), "{log:?}");
    assert!(!log.contains(&"instance_lost".to_string()), "{log:?}");
    assert!(!log.contains(&"missed".to_string()), "{log:?}");

    // A real death is still a death: an instance that stops heartbeating while others go on.
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_frozen_longer_than_the_grace_leaves_desktops_signed_in() {
    let redis = RedisServer::start();
    let sb = TestServer::start_with(outage_config(&redis, 3)).await;
    let mut admin = sb.admin().await;
    admin.put_agent(pb::PutAgentRequest { agent: Some(agent("ann", &[])), allow_update: true }).await.unwrap();
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;

    // Redis stops answering (SIGSTOP, as a stalled host or a long fork would) for twice the grace.
    let pid = redis.pid().to_string();
    assert!(std::process::Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(std::process::Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());

    // Back: heartbeats and sweeps resume; nobody is declared dead, Ann is still there and ready.
    eventually("a heartbeat after the outage", Duration::from_secs(15), || async {
        let mut con = redis.client().await;
        let beat: Option<u64> = redis::AsyncCommands::get(&mut con, "sb:{default}:beat").await.ok()?;
        let now =
            switchboard_engine::Engine::connect(&redis.url, Default::default()).await.ok()?.now_ms().await.ok()?;
        beat.filter(|b| now.saturating_sub(*b) < 2_000).map(|_| ())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (state, _, connected) = presence(&sb, "ann").await;
    assert_eq!((state, connected), (pb::PresenceState::Ready as i32, true));
    // Her stream still works: a request gets its answer.
    ann.ready().await;
    sb.stop().await;
}
