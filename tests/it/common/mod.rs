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
    eventually("the replica has it all", std::time::Duration::from_secs(10), || {
        let mut con = con.clone();
        async move {
            let n: i64 = redis::cmd("WAIT").arg(1).arg(200).query_async(&mut con).await.ok()?;
            (n == 1).then_some(())
        }
    })
    .await;
}
