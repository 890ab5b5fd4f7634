//! The harness checks itself: each peer starts, answers, and is stopped exactly.

use std::net::{Ipv4Addr, TcpStream};
use std::time::{Duration, Instant};

use crate::redis_server::{RedisSetup, TlsClients};
use crate::{PgServer, RedisServer, assert_eventually, eventually, init_tracing};

#[tokio::test]
async fn redis_server_accepts_set_and_get() {
    init_tracing();
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

    let refused = eventually("killed server's port to refuse connections", Duration::from_secs(5), || async {
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

#[test]
fn postgres_server_runs_sql() {
    let server = PgServer::start();
    assert!(server.url.starts_with(&format!("postgres://postgres@127.0.0.1:{}/switchboard", server.port)));

    let output = server
        .psql_command()
        .args(["-At", "-c", "create table t(x int); insert into t values (1); select count(*) from t"])
        .output()
        .expect("run psql");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "psql failed: {}\n{stdout}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(stdout.lines().last(), Some("1"), "unexpected psql output: {stdout:?}");

    assert_eq!(server.psql("insert into t values (2); select sum(x) from t"), "3\n");
    assert_eq!(server.psql("select current_database()").trim(), "switchboard");
}

#[test]
fn kill_stops_exactly_our_server_and_restart_recovers() {
    let mut victim = PgServer::start();
    let survivor = PgServer::start();
    assert_ne!(victim.port, survivor.port);
    victim.psql("create table kept(x int); insert into kept values (42)");

    victim.kill();
    victim.kill(); // idempotent
    assert_eq!(victim.pid(), None);

    let start = Instant::now();
    while TcpStream::connect((Ipv4Addr::LOCALHOST, victim.port)).is_ok() {
        assert!(start.elapsed() < Duration::from_secs(5), "killed server's port {} still accepts", victim.port);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(survivor.psql("select 1").trim(), "1", "survivor on port {} should keep answering", survivor.port);

    // Crash recovery on the same port and data dir keeps committed data.
    victim.restart();
    assert_eq!(victim.psql("select x from kept").trim(), "42");
    // A graceful restart of a running server works too.
    victim.restart();
    assert_eq!(victim.psql("select count(*) from kept").trim(), "1");
}

#[tokio::test]
async fn redis_server_with_tls_answers_over_tls_only_and_restarts() {
    let mut server = RedisServer::start_tls(TlsClients::CertificateRequired);
    assert_eq!(server.url, format!("rediss://127.0.0.1:{}/", server.port));
    let files = server.tls_files().expect("a TLS server has its PKI");
    assert!(files.ca_pem().starts_with(b"-----BEGIN CERTIFICATE-----"));

    let mut conn = server.client().await;
    let () = redis::cmd("SET").arg("k").arg("v").query_async(&mut conn).await.unwrap();
    // No plain RESP on the TLS port.
    let mut plain = TcpStream::connect((Ipv4Addr::LOCALHOST, server.port)).unwrap();
    plain.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    std::io::Write::write_all(&mut plain, b"PING\r\n").unwrap();
    let mut buf = [0u8; 16];
    let n = std::io::Read::read(&mut plain, &mut buf).unwrap_or(0);
    assert!(!buf[..n].starts_with(b"+PONG"), "plain PING answered on the TLS port");

    server.restart();
    let pong: String = redis::cmd("PING").query_async(&mut server.client().await).await.unwrap();
    assert_eq!(pong, "PONG");
}

#[tokio::test]
async fn redis_server_with_a_user_lets_only_that_user_in() {
    let server = RedisServer::start_with_user("switchboard", "p@ss word");
    assert!(server.url.starts_with("redis://switchboard:p%40ss%20word@127.0.0.1:"), "{}", server.url);
    let pong: String = redis::cmd("PING").query_async(&mut server.client().await).await.unwrap();
    assert_eq!(pong, "PONG");
    let who: String = redis::cmd("ACL").arg("WHOAMI").query_async(&mut server.client().await).await.unwrap();
    assert_eq!(who, "switchboard");

    let anonymous = redis::Client::open(format!("redis://127.0.0.1:{}/", server.port)).unwrap();
    let mut con = anonymous.get_multiplexed_async_connection().await.unwrap();
    let err = redis::cmd("PING").query_async::<String>(&mut con).await.unwrap_err();
    assert!(err.to_string().contains("NOAUTH"), "{err}");

    let legacy = RedisServer::start_setup(RedisSetup {
        user: Some(("default".into(), "hunter2".into())),
        ..RedisSetup::default()
    });
    assert!(legacy.url.starts_with("redis://:hunter2@127.0.0.1:"), "{}", legacy.url);
    let pong: String = redis::cmd("PING").query_async(&mut legacy.client().await).await.unwrap();
    assert_eq!(pong, "PONG");
}
