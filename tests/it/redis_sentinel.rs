//! Redis behind Sentinel (a primary, a replica, three Sentinels on loopback): the daemon finds the
//! primary through a `redis+sentinel://` URL and follows a failover by itself — work acknowledged
//! before it is still there after, routing and desktops go on, `/readyz` is ready again.

use std::time::Duration;

use crate::common::*;
use switchboard::api::pb;

/// Sentinel, a daemon following it, a queue and Ann signed in and ready.
async fn sales_with_ann() -> (SentinelSetup, TestServer, Desktop) {
    let setup = tokio::task::block_in_place(SentinelSetup::start);
    let mut cfg = test_config(&setup.url());
    cfg.crm.enabled = false;
    let sb = TestServer::start_with(cfg).await;
    let mut admin = sb.admin().await;
    admin.put_queue(pb::PutQueueRequest { queue: Some(queue("sales", &[])), allow_update: true }).await.unwrap();
    admin.put_agent(pb::PutAgentRequest { agent: Some(agent("ann", &[])), allow_update: true }).await.unwrap();
    let mut ann = sb.desktop("ann", "tok-ann").await;
    ann.ready().await;
    (setup, sb, ann)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_follows_a_sentinel_failover_and_nothing_acknowledged_is_lost() {
    let (mut setup, sb, mut ann) = sales_with_ann().await;
    let mut ixs = sb.interactions().await;
    let first = ixs.create_interaction(new_chat("sales", "v1", "before")).await.unwrap().into_inner();
    assert_eq!(ann.wait_offer().await.interaction.unwrap().id, first.id);
    ann.accept(&first.id).await.unwrap();
    // What was acknowledged has reached the replica.
    let old = setup.primary_port().unwrap();
    replicated(&setup.server_url(old)).await;

    let new = tokio::task::block_in_place(|| setup.kill_primary());
    assert_ne!(new, old);

    // The daemon follows: a create goes through again (the first tries meet the dead primary).
    let second = eventually("a create on the new primary", Duration::from_secs(30), || {
        let mut ixs = ixs.clone();
        async move { ixs.create_interaction(new_chat("sales", "v2", "after")).await.ok() }
    })
    .await
    .into_inner();
    // The accepted chat is still Ann's; she completes it and the new one is offered to her.
    let before = ixs
        .get_interaction(pb::GetInteractionRequest { interaction_id: first.id.clone(), include_messages: false })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((before.state, before.agent_id.as_str()), (pb::InteractionState::Active as i32, "ann"));
    ann.complete(&first.id, "done").await.unwrap();
    assert_eq!(ann.wait_offer().await.interaction.unwrap().id, second.id);
    eventually("ready again", Duration::from_secs(15), || async { (sb.http("/readyz").await.0 == 200).then_some(()) })
        .await;
    sb.stop().await;
}

/// A failover on purpose leaves the old primary up as a replica: requests there get `READONLY`
/// (not a dropped connection), which is what tells the daemon to ask the Sentinels again. While
/// it copies the new primary's data it answers reads empty: that must not be taken for lost data
/// (which would reload the config and send every desktop to sign in again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_follows_a_primary_demoted_to_a_replica_that_stays_up() {
    let (mut setup, sb, mut ann) = sales_with_ann().await;
    let ixs = sb.interactions().await;
    let old = setup.primary_port().unwrap();
    // A failover on purpose does not wait for the replica: what it lacks then is lost (as
    // documented); this test is about following, so the replica first has it all.
    replicated(&setup.server_url(old)).await;
    let new = tokio::task::block_in_place(|| setup.failover());
    // The old primary is still up (the Sentinels make it a replica some seconds later).
    assert!(tokio::task::block_in_place(|| !switchboard_testkit::sentinel::role(old).is_empty()));
    // Within a second (the instances ask the Sentinels every second) creates land on the new
    // primary; until then they may still reach the old one, which takes writes until the
    // Sentinels reconfigure it (docs/operations.md: min-replicas-to-write closes that window).
    let con = redis::Client::open(setup.server_url(new)).unwrap().get_multiplexed_async_connection().await.unwrap();
    let mut n = 0;
    let ix = eventually("a create that lands on the new primary", Duration::from_secs(30), || {
        n += 1;
        let (mut ixs, mut con) = (ixs.clone(), con.clone());
        let customer = format!("v{n}");
        async move {
            let ix = ixs.create_interaction(new_chat("sales", &customer, "after")).await.ok()?.into_inner();
            let there: i64 =
                redis::cmd("EXISTS").arg(format!("sb:{{default}}:ix:{}", ix.id)).query_async(&mut con).await.ok()?;
            (there == 1).then_some(ix)
        }
    })
    .await;
    // Routing goes on there: Ann, whose desktop stream followed too, is offered it.
    // (Offers of creates that reached the old primary may come first: their state is gone.)
    while ann.wait_offer().await.interaction.unwrap().id != ix.id {}
    sb.stop().await;
}

/// The old primary, killed, comes back empty at its old address right after the failover (a
/// supervisor restarting it, without persistence): the daemon writes nothing there — what it
/// acknowledges is on the new primary — and its desktops are not taken for stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_primary_restarted_empty_after_a_failover_gets_no_writes() {
    let (mut setup, sb, mut ann) = sales_with_ann().await;
    let old = setup.primary_port().unwrap();
    replicated(&setup.server_url(old)).await;
    let new = tokio::task::block_in_place(|| {
        let new = setup.kill_primary();
        setup.servers.iter_mut().find(|s| s.port == old).expect("ours").restart();
        new
    });
    let ixs = sb.interactions().await;
    let mut created = Vec::new();
    for i in 0..20 {
        let ix = eventually("a create", Duration::from_secs(30), || {
            let mut ixs = ixs.clone();
            async move { ixs.create_interaction(new_chat("sales", &format!("v{i}"), "hi")).await.ok() }
        })
        .await
        .into_inner();
        created.push(ix.id);
    }
    let mut on_new =
        redis::Client::open(setup.server_url(new)).unwrap().get_multiplexed_async_connection().await.unwrap();
    let mut on_old =
        redis::Client::open(setup.server_url(old)).unwrap().get_multiplexed_async_connection().await.unwrap();
    for id in &created {
        let key = format!("sb:{{default}}:ix:{id}");
        let (n, o): (i64, i64) = (
            redis::cmd("EXISTS").arg(&key).query_async(&mut on_new).await.unwrap(),
            redis::cmd("EXISTS").arg(&key).query_async(&mut on_old).await.unwrap(),
        );
        assert_eq!((n, o), (1, 0), "{id}: on the new primary, not on the old one");
    }
    // Ann is still signed in (nobody took the empty server for Redis having lost its data).
    assert_eq!(ann.wait_offer().await.interaction.unwrap().id, created[0]);
    sb.stop().await;
}
