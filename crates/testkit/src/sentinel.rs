//! Redis Sentinel on loopback for tests: a primary, a replica of it and three Sentinels watching
//! them (quorum 2, a primary down after 1 s), all started here on free ports and stopped by PID.

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::redis_server::RedisServer;
use crate::wait::free_port;

pub const SERVICE: &str = "mymaster";

pub struct SentinelSetup {
    /// Started as the primary and as its replica; which is which changes with a failover.
    pub servers: Vec<RedisServer>,
    sentinels: Vec<(u16, Child)>,
    dir: tempfile::TempDir,
}

impl SentinelSetup {
    /// Starts the lot and waits until every Sentinel knows the primary and its replica.
    pub fn start() -> SentinelSetup {
        // Without a delay before the first sync (Redis waits 5 s for more replicas by default), so
        // the replica holds the primary's data from the start.
        let primary = RedisServer::start_with(&["--repl-diskless-sync-delay", "0"]);
        let replica = RedisServer::start_with(&[
            "--replicaof",
            "127.0.0.1",
            &primary.port.to_string(),
            "--repl-diskless-sync-delay",
            "0",
        ]);
        let dir = tempfile::Builder::new().prefix("switchboard-sentinel-").tempdir().expect("temp dir");
        let mut setup = SentinelSetup { servers: vec![primary, replica], sentinels: Vec::new(), dir };
        let (pp, rp) = (setup.servers[0].port, setup.servers[1].port);
        for i in 0..3 {
            let port = free_port();
            let conf = setup.dir.path().join(format!("sentinel-{i}.conf"));
            // Known replica up front: otherwise a Sentinel learns of it only at its next INFO (10 s).
            let text = format!(
                "port {port}\nbind 127.0.0.1\nprotected-mode no\ndir {dir}\nlogfile {dir}/sentinel-{i}.log\n\
                 sentinel monitor {SERVICE} 127.0.0.1 {pp} 2\n\
                 sentinel down-after-milliseconds {SERVICE} 1000\n\
                 sentinel failover-timeout {SERVICE} 5000\n\
                 sentinel known-replica {SERVICE} 127.0.0.1 {rp}\n",
                dir = setup.dir.path().display()
            );
            fs::write(&conf, text).expect("write sentinel config");
            let child = Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start redis-server --sentinel (the redis-server package)");
            setup.sentinels.push((port, child));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while !setup.sentinels.iter().all(|(port, _)| knows_both(*port, pp, rp)) || !crate::cluster::in_sync(rp) {
            assert!(Instant::now() < deadline, "the Sentinels did not see the primary and its replica within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        setup
    }

    /// `redis+sentinel://127.0.0.1:A,127.0.0.1:B,127.0.0.1:C/mymaster`.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.sentinels.iter().map(|(p, _)| format!("127.0.0.1:{p}")).collect();
        format!("redis+sentinel://{}/{SERVICE}", hosts.join(","))
    }

    /// The primary's port as the first Sentinel that answers says.
    pub fn primary_port(&self) -> Option<u16> {
        self.sentinels.iter().find_map(|(port, _)| master_port(*port))
    }

    /// A plain URL to the server on `port`.
    pub fn server_url(&self, port: u16) -> String {
        self.servers.iter().find(|s| s.port == port).map(|s| s.url.clone()).expect("one of ours")
    }

    /// Kills (SIGKILL) the current primary and waits until every Sentinel names the other server.
    pub fn kill_primary(&mut self) -> u16 {
        let old = self.primary_port().expect("a primary");
        let s = self.servers.iter_mut().find(|s| s.port == old).expect("the primary is one of ours");
        s.kill();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ports: Vec<Option<u16>> = self.sentinels.iter().map(|(p, _)| master_port(*p)).collect();
            if ports.iter().all(|p| p.is_some_and(|p| p != old)) {
                return ports[0].expect("checked");
            }
            assert!(Instant::now() < deadline, "no failover within 30 s: {ports:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Has the Sentinels fail over on purpose (`SENTINEL FAILOVER`): the old primary stays up and
    /// becomes a replica. Waits until every Sentinel names the other server and it takes writes.
    pub fn failover(&mut self) -> u16 {
        let old = self.primary_port().expect("a primary");
        let mut con = sentinel(self.sentinels[0].0).expect("a Sentinel");
        let () = redis::cmd("SENTINEL").arg("FAILOVER").arg(SERVICE).query(&mut con).expect("SENTINEL FAILOVER");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ports: Vec<Option<u16>> = self.sentinels.iter().map(|(p, _)| master_port(*p)).collect();
            if ports.iter().all(|p| p.is_some_and(|p| p != old)) && role(ports[0].expect("checked")) == "master" {
                return ports[0].expect("checked");
            }
            assert!(Instant::now() < deadline, "no failover within 30 s: {ports:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for SentinelSetup {
    fn drop(&mut self) {
        for (_, child) in &mut self.sentinels {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn sentinel(port: u16) -> Option<redis::Connection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
    client.get_connection_with_timeout(Duration::from_millis(500)).ok()
}

/// `ROLE` of the server on `port` (`master`, `slave`), or "" if it does not answer.
pub fn role(port: u16) -> String {
    crate::cluster::role_of(port)
}

fn master_port(port: u16) -> Option<u16> {
    let mut con = sentinel(port)?;
    let addr: Option<(String, String)> =
        redis::cmd("SENTINEL").arg("get-master-addr-by-name").arg(SERVICE).query(&mut con).ok()?;
    addr?.1.parse().ok()
}

/// Whether the Sentinel on `port` names `primary` as the primary and has `replica` as a replica.
fn knows_both(port: u16, primary: u16, replica: u16) -> bool {
    if master_port(port) != Some(primary) {
        return false;
    }
    let Some(mut con) = sentinel(port) else { return false };
    let replicas: redis::RedisResult<Vec<std::collections::HashMap<String, String>>> =
        redis::cmd("SENTINEL").arg("replicas").arg(SERVICE).query(&mut con);
    replicas.is_ok_and(|r| {
        r.iter().any(|m| {
            m.get("port").is_some_and(|p| *p == replica.to_string())
                && m.get("flags").is_some_and(|f| !f.contains("disconnected") && !f.contains("s_down"))
        })
    })
}
