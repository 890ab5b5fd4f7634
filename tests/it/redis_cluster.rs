//! Routing domains on a Redis Cluster (three primaries with a replica each, on loopback): each
//! domain lives in one hash slot, so three domains land on three shards; instances of one domain
//! share its queues and agents, domains share nothing, and when the primary of one domain's shard
//! dies the daemons of that domain follow its replica while the other domains route on; a domain
//! whose slot moves to another shard follows it too.

use std::time::Duration;

use crate::common::*;
use switchboard::api::pb;

/// Three domain names whose slots are served by three different primaries.
fn domains_on_three_shards(setup: &ClusterSetup) -> Vec<(String, u16)> {
    let mut picked: Vec<(String, u16)> = Vec::new();
    for i in 0.. {
        let domain = format!("site{i}");
        let primary = setup.primary_of(&format!("sb:{{{domain}}}:meta")).expect("a primary");
        if !picked.iter().any(|(_, p)| *p == primary) {
            picked.push((domain, primary));
        }
        if picked.len() == 3 {
            return picked;
        }
    }
    unreachable!()
}

async fn start_domain(setup: &ClusterSetup, domain: &str) -> TestServer {
    let mut cfg = test_config(&setup.url());
    cfg.redis.domain = domain.to_string();
    TestServer::start_with(cfg).await
}

async fn get(sb: &TestServer, id: &str) -> Result<pb::Interaction, tonic::Status> {
    let mut ixs = sb.interactions().await;
    ixs.get_interaction(pb::GetInteractionRequest { interaction_id: id.to_string(), include_messages: false })
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domains_spread_over_a_cluster_route_apart_and_follow_their_shards_failover() {
    let mut setup = tokio::task::block_in_place(ClusterSetup::start);
    let domains = domains_on_three_shards(&setup);
    // Domain 0 has two instances (an instance group); the others one each.
    let mut servers = Vec::new();
    for (d, _) in &domains {
        servers.push(start_domain(&setup, d).await);
    }
    let second = start_domain(&setup, &domains[0].0).await;

    // The same queue and agent names in every domain: they are separate centers.
    let mut desktops = Vec::new();
    for sb in &servers {
        let mut admin = sb.admin().await;
        admin.put_queue(pb::PutQueueRequest { queue: Some(queue("sales", &[])), allow_update: true }).await.unwrap();
        admin.put_agent(pb::PutAgentRequest { agent: Some(agent("ann", &[])), allow_update: true }).await.unwrap();
    }
    // Ann of domain 0 signs in at its second instance; the others at their only one.
    for (i, sb) in servers.iter().enumerate() {
        let mut ann = if i == 0 { second.desktop("ann", "tok-ann").await } else { sb.desktop("ann", "tok-ann").await };
        ann.ready().await;
        desktops.push(ann);
    }
    let mut first = Vec::new();
    for (i, sb) in servers.iter().enumerate() {
        let mut ixs = sb.interactions().await;
        let ix = ixs.create_interaction(new_chat("sales", &format!("v{i}"), "hello")).await.unwrap().into_inner();
        assert_eq!(desktops[i].wait_offer().await.interaction.unwrap().id, ix.id, "domain {i}");
        desktops[i].accept(&ix.id).await.unwrap();
        first.push(ix.id);
    }
    // Each domain's data is on its own shard, and one domain does not see another's work.
    for (i, (d, primary)) in domains.iter().enumerate() {
        let mut con =
            redis::Client::open(setup.server_url(*primary)).unwrap().get_multiplexed_async_connection().await.unwrap();
        let n: i64 =
            redis::cmd("EXISTS").arg(format!("sb:{{{d}}}:ix:{}", first[i])).query_async(&mut con).await.unwrap();
        assert_eq!(n, 1, "domain {d}'s interaction on its shard's primary");
        let other = &servers[(i + 1) % 3];
        assert_eq!(get(other, &first[i]).await.unwrap_err().code(), tonic::Code::NotFound);
    }

    // What domain 0 acknowledged has reached its replica before its primary dies.
    let (d0, p0) = (domains[0].0.clone(), domains[0].1);
    replicated(&setup.server_url(p0)).await;
    let (old, new) = tokio::task::block_in_place(|| setup.kill_primary_of(&format!("sb:{{{d0}}}:meta")));
    assert_ne!(old, new);

    // The other domains never noticed: they route on their shards at once.
    let mut offered = vec![String::new()];
    for i in 1..3 {
        let mut ixs = servers[i].interactions().await;
        let ix = ixs.create_interaction(new_chat("sales", &format!("w{i}"), "still here")).await.unwrap().into_inner();
        desktops[i].complete(&first[i], "done").await.unwrap();
        assert_eq!(desktops[i].wait_offer().await.interaction.unwrap().id, ix.id, "domain {i} after the failover");
        offered.push(ix.id);
    }
    // Domain 0's instances follow the new primary: a create through the first instance goes
    // through, its accepted chat is still Ann's, and Ann — on the second instance — gets the next.
    let ixs = servers[0].interactions().await;
    let after = eventually("a create on the new primary", Duration::from_secs(30), || {
        let mut ixs = ixs.clone();
        async move { ixs.create_interaction(new_chat("sales", "v-after", "after")).await.ok() }
    })
    .await
    .into_inner();
    let before = get(&servers[0], &first[0]).await.unwrap();
    assert_eq!((before.state, before.agent_id.as_str()), (pb::InteractionState::Active as i32, "ann"));
    desktops[0].complete(&first[0], "done").await.unwrap();
    assert_eq!(desktops[0].wait_offer().await.interaction.unwrap().id, after.id);

    // Domain 1's slot moves to domain 2's shard: its instance follows the MOVED replies, the
    // offer pending there is still Ann's to accept, and new work routes.
    let d1_key = format!("sb:{{{}}}:meta", domains[1].0);
    tokio::task::block_in_place(|| setup.move_slot_of(&d1_key, domains[2].1));
    let ixs1 = servers[1].interactions().await;
    let moved = eventually("a create after the slot moved", Duration::from_secs(30), || {
        let mut ixs = ixs1.clone();
        async move { ixs.create_interaction(new_chat("sales", "v1-moved", "moved")).await.ok() }
    })
    .await
    .into_inner();
    let pending = offered[1].clone();
    desktops[1].accept(&pending).await.unwrap();
    desktops[1].complete(&pending, "done").await.unwrap();
    assert_eq!(desktops[1].wait_offer().await.interaction.unwrap().id, moved.id);
    let mut con =
        redis::Client::open(setup.server_url(domains[2].1)).unwrap().get_multiplexed_async_connection().await.unwrap();
    let n: i64 = redis::cmd("EXISTS")
        .arg(format!("sb:{{{}}}:ix:{}", domains[1].0, moved.id))
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(n, 1, "domain 1's new work is on its new shard");
    assert_eq!(get(&servers[1], &first[1]).await.unwrap().state, pb::InteractionState::Completed as i32);
    for sb in servers.iter().chain([&second]) {
        eventually("ready again", Duration::from_secs(15), || async {
            (sb.http("/readyz").await.0 == 200).then_some(())
        })
        .await;
    }
    second.stop().await;
    for sb in servers {
        sb.stop().await;
    }
}
