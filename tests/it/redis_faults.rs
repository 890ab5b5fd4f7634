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
