//! What the tests share: the real peers of `switchboard-testkit`, and the helpers that start and
//! drive Switchboard itself (in-process instances, desktops, web chat visitors, email config).

pub mod crm;
pub mod email;
pub mod server;
pub mod sms;
pub mod webchat;

pub use crm::AuthedCrm;
pub use server::*;
pub use sms::*;
pub use switchboard_testkit::*;
pub use webchat::*;

/// Waits until the Redis server at `url` has passed everything it acknowledged to a replica
/// (replication is asynchronous: what a deployment that needs it asks for with WAIT, or
/// min-replicas-to-write).
pub async fn replicated(url: &str) {
    let con = redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap();
    // Where the primary's replication stream is now, and a replica's acknowledged offset read
    // from the same report. (WAIT on a connection that wrote nothing is satisfied by any replica
    // connected, even one still copying the data set; and a write to wait on would be refused by
    // a cluster node for a slot it does not serve.)
    let offsets = |mut con: redis::aio::MultiplexedConnection| async move {
        let info: String = redis::cmd("INFO").arg("replication").query_async(&mut con).await.ok()?;
        let written: i64 = info.lines().find_map(|l| l.strip_prefix("master_repl_offset:")?.trim().parse().ok())?;
        let acked = info
            .lines()
            .filter(|l| l.starts_with("slave") && l.contains("state=online"))
            .filter_map(|l| l.split([',', ':']).find_map(|kv| kv.strip_prefix("offset=")?.parse::<i64>().ok()))
            .max();
        Some((written, acked))
    };
    let (written, _) = offsets(con.clone()).await.expect("INFO replication of the primary");
    // Everything written before this call; the primary may write more meanwhile.
    eventually("the replica has it all", std::time::Duration::from_secs(10), || {
        let con = con.clone();
        async move { offsets(con).await?.1.filter(|acked| *acked >= written).map(|_| ()) }
    })
    .await;
}
