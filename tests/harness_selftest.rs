//! Sanity checks for the shared test harness itself.

mod common;

use std::net::{Ipv4Addr, TcpStream};
use std::time::Duration;

use common::RedisServer;

#[tokio::test]
async fn redis_server_accepts_set_and_get() {
    common::init_tracing();
    let server = RedisServer::start();
    let mut conn = server.client().await;

    let () = redis::cmd("SET").arg("harness:key").arg("hello").query_async(&mut conn).await.unwrap();
    let value: String = redis::cmd("GET").arg("harness:key").query_async(&mut conn).await.unwrap();
    assert_eq!(value, "hello");
}

#[tokio::test]
async fn kill_stops_exactly_our_server() {
    let mut victim = RedisServer::start();
    let survivor = RedisServer::start();
    assert_ne!(victim.port, survivor.port);

    victim.kill();
    victim.kill(); // idempotent

    let refused = common::eventually("killed server's port to refuse connections", Duration::from_secs(5), || async {
        TcpStream::connect((Ipv4Addr::LOCALHOST, victim.port)).is_err().then_some(())
    });
    refused.await;

    let mut conn = survivor.client().await;
    let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    assert_eq!(pong, "PONG");
    assert_eventually!(
        async { redis::cmd("DBSIZE").query_async::<i64>(&mut survivor.client().await).await.is_ok() },
        "survivor on port {} should keep answering",
        survivor.port
    );
}
