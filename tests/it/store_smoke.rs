use crate::common::RedisServer;
use switchboard::model::*;
use switchboard_engine::{Engine, EngineOptions};

#[tokio::test]
async fn offer_accept_complete() {
    let redis = RedisServer::start();
    let engine = Engine::connect(&redis.url, EngineOptions::default()).await.unwrap();
    let mut q = QueueSpec::new("sales");
    q.requirements = vec![Requirement { skill: "english".into(), min_level: 3 }];
    engine.put_queue(&q, false).await.unwrap();
    let a = AgentSpec {
        id: "ann".into(),
        name: "Ann".into(),
        skills: [("english".to_string(), 5)].into(),
        capacity: Capacity::default(),
        cross_channel_blocking: None,
        token: "secret".into(),
        devices: Vec::new(),
    };
    engine.put_agent(&a, false).await.unwrap();
    engine.login("ann", Some("secret"), "i1", "s1").await.unwrap();
    engine.set_presence("ann", &Presence::Ready, "agent").await.unwrap();
    let (ix, created) = engine
        .create_interaction(&NewInteraction {
            channel: Some(Channel::Chat),
            customer_address: "v1".into(),
            queue: "sales".into(),
            body: "hello".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(created);
    assert_eq!(ix.state, InteractionState::Offered, "{ix:?}");
    assert_eq!(ix.agent_id, "ann");
    let ix = engine.accept("ann", &ix.id).await.unwrap();
    assert_eq!(ix.state, InteractionState::Active);
    assert_eq!(ix.messages.len(), 1);
    let m = engine.reply("ann", &ix.id, "hi there").await.unwrap();
    assert_eq!(m.seq, 2);
    let ix = engine.complete("ann", &ix.id, "sold", "notes").await.unwrap();
    assert_eq!(ix.state, InteractionState::Completed);
    let st = engine.agent_status("ann").await.unwrap();
    assert_eq!(st.load[&Channel::Chat], 0);
    let f = engine.queue_figures("sales").await.unwrap();
    assert_eq!(f.offered, 1);
    assert_eq!(f.accepted, 1);
    let sweep = engine.fire_timers(100).await.unwrap();
    assert_eq!(sweep.fired, 0);
}

/// A token an older version kept in clear is hashed at start, and still logs the agent in.
#[tokio::test]
async fn tokens_kept_in_clear_are_hashed() {
    let redis = RedisServer::start();
    let engine = Engine::connect(&redis.url, EngineOptions::default()).await.unwrap();
    assert_eq!(engine.hash_clear_tokens().await.unwrap(), 0, "nothing to do without agents");
    for id in ["ann", "bob"] {
        let a = AgentSpec {
            id: id.into(),
            name: id.into(),
            skills: Default::default(),
            capacity: Capacity::default(),
            cross_channel_blocking: None,
            token: String::new(),
            devices: Vec::new(),
        };
        engine.put_agent(&a, false).await.unwrap();
    }
    let key = engine.keys().agent("ann");
    let mut con = redis::Client::open(redis.url.as_str()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::AsyncCommands::hset(&mut con, &key, "token", "old-clear").await.unwrap();
    assert_eq!(engine.hash_clear_tokens().await.unwrap(), 1);
    let clear: Option<String> = redis::AsyncCommands::hget(&mut con, &key, "token").await.unwrap();
    assert_eq!(clear, None);
    assert!(engine.agent_token_ok("ann", "old-clear").await.unwrap());
    engine.login("ann", Some("old-clear"), "i1", "s1").await.unwrap();
    assert!(engine.login("bob", Some("old-clear"), "i1", "s2").await.is_err());
}
