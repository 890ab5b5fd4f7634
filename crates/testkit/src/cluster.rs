//! A Redis Cluster on loopback for tests: three primaries, each with a replica (a node down after
//! 2 s, then its replica takes over), started here on free ports and stopped by PID. The benchmark
//! starts one without replicas ([`ClusterSetup::start_with`]).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::redis_server::RedisServer;
use crate::wait::free_port;

pub struct ClusterSetup {
    /// The nodes, started as three primaries then their replicas (none, or three); which is which
    /// changes with a failover.
    pub servers: Vec<RedisServer>,
}

const NODE_TIMEOUT_MS: &str = "2000";

impl ClusterSetup {
    /// Starts the nodes, joins them (`redis-cli --cluster create`) and waits until every node
    /// says the cluster is ok and every range has its replica.
    pub fn start() -> ClusterSetup {
        ClusterSetup::start_with(1, &[])
    }

    /// Three primaries with `replicas` replicas each (0: none, so no failover, and three
    /// processes instead of six), every node started with `extra_args` too.
    pub fn start_with(replicas: usize, extra_args: &[&str]) -> ClusterSetup {
        let servers: Vec<RedisServer> = (0..3 * (1 + replicas))
            .map(|_| {
                // The bus port is set rather than left at port + 10000, which may be past 65535.
                let bus = free_port().to_string();
                let mut args = vec![
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    NODE_TIMEOUT_MS,
                    "--cluster-port",
                    &bus,
                    // Replicas sync at once rather than after Redis's default 5 s wait.
                    "--repl-diskless-sync-delay",
                    "0",
                    // A shard failing over does not stop the others (as docs/operations.md advises).
                    "--cluster-require-full-coverage",
                    "no",
                ];
                args.extend_from_slice(extra_args);
                RedisServer::start_with(&args)
            })
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(servers.iter().map(|s| format!("127.0.0.1:{}", s.port)))
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create (the redis-tools package)");
        assert!(out.status.success(), "redis-cli --cluster create failed: {}", String::from_utf8_lossy(&out.stdout));
        let setup = ClusterSetup { servers };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !setup.servers.iter().all(|s| {
            node_ok(s.port)
                && slot_ranges(s.port).is_some_and(|r| r.len() == 3 && r.iter().all(|r| r.2.len() == 1 + replicas))
                && (role_of(s.port) != "slave" || in_sync(s.port))
        }) {
            assert!(Instant::now() < deadline, "the cluster did not settle within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        setup
    }

    /// `redis+cluster://` naming two of the nodes (any will do; the rest are learnt from them).
    pub fn url(&self) -> String {
        format!("redis+cluster://127.0.0.1:{},127.0.0.1:{}", self.servers[0].port, self.servers[1].port)
    }

    /// The port of the primary serving `key`'s slot, as the first live node says.
    pub fn primary_of(&self, key: &str) -> Option<u16> {
        self.live_ports().into_iter().find_map(|p| owner(p, key))
    }

    /// The hash slot of `key`.
    pub fn slot_of(&self, key: &str) -> u16 {
        let mut con = connect(self.live_ports()[0]).expect("a live node");
        redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).query(&mut con).expect("CLUSTER KEYSLOT")
    }

    /// Kills (SIGKILL) the primary serving `key`'s slot and waits until the live nodes agree on
    /// its replica as the new primary and the cluster is ok again. Returns (old, new) ports.
    pub fn kill_primary_of(&mut self, key: &str) -> (u16, u16) {
        let old = self.primary_of(key).expect("a primary");
        self.servers.iter_mut().find(|s| s.port == old).expect("one of ours").kill();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let live: Vec<u16> = self.live_ports();
            let owners: Vec<Option<u16>> = live.iter().map(|p| owner(*p, key)).collect();
            if owners.iter().all(|o| o.is_some_and(|o| o != old)) && live.iter().all(|p| node_ok(*p)) {
                return (old, owners[0].expect("checked"));
            }
            assert!(Instant::now() < deadline, "no failover within 30 s: {owners:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Moves `key`'s slot, keys and all, from the primary serving it to the primary on `to`, the
    /// way `redis-cli --cluster reshard` moves a slot.
    pub fn move_slot_of(&self, key: &str, to: u16) {
        let from = self.primary_of(key).expect("a primary");
        assert_ne!(from, to, "the slot is served by {to} already");
        let slot = self.slot_of(key);
        let (mut src, mut dst) = (connect(from).expect("source node"), connect(to).expect("target node"));
        let id =
            |con: &mut redis::Connection| -> String { redis::cmd("CLUSTER").arg("MYID").query(con).expect("MYID") };
        let (src_id, dst_id) = (id(&mut src), id(&mut dst));
        let setslot = |con: &mut redis::Connection, how: &str, node: &str| {
            let () = redis::cmd("CLUSTER").arg("SETSLOT").arg(slot).arg(how).arg(node).query(con).expect("SETSLOT");
        };
        setslot(&mut dst, "IMPORTING", &src_id);
        setslot(&mut src, "MIGRATING", &dst_id);
        loop {
            let keys: Vec<String> =
                redis::cmd("CLUSTER").arg("GETKEYSINSLOT").arg(slot).arg(100).query(&mut src).expect("GETKEYSINSLOT");
            if keys.is_empty() {
                break;
            }
            let () = redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(to)
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS")
                .arg(&keys)
                .query(&mut src)
                .expect("MIGRATE");
        }
        setslot(&mut dst, "NODE", &dst_id);
        setslot(&mut src, "NODE", &dst_id);
        for p in self.live_ports().into_iter().filter(|p| ![from, to].contains(p)) {
            // Replicas refuse SETSLOT; the primaries learn it from the epoch anyway.
            if let Some(mut con) = connect(p) {
                let _: redis::RedisResult<()> =
                    redis::cmd("CLUSTER").arg("SETSLOT").arg(slot).arg("NODE").arg(&dst_id).query(&mut con);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.live_ports().iter().all(|p| owner(*p, key) == Some(to)) {
            assert!(Instant::now() < deadline, "the nodes did not agree on the slot's move within 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A plain URL to the node on `port`.
    pub fn server_url(&self, port: u16) -> String {
        self.servers.iter().find(|s| s.port == port).map(|s| s.url.clone()).expect("one of ours")
    }

    fn live_ports(&self) -> Vec<u16> {
        self.servers.iter().map(|s| s.port).filter(|p| connect(*p).is_some()).collect()
    }
}

fn connect(port: u16) -> Option<redis::Connection> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
    client.get_connection_with_timeout(Duration::from_millis(500)).ok()
}

/// `ROLE` of the server on `port` (`master`, `slave`), or "" if it does not answer.
pub(crate) fn role_of(port: u16) -> String {
    let Some(mut con) = connect(port) else { return String::new() };
    let role: redis::RedisResult<Vec<redis::Value>> = redis::cmd("ROLE").query(&mut con);
    match role.ok().and_then(|r| r.into_iter().next()) {
        Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(&b).into_owned(),
        _ => String::new(),
    }
}

/// Whether the replica on `port` has finished its first sync and follows its primary.
pub(crate) fn in_sync(port: u16) -> bool {
    let Some(mut con) = connect(port) else { return false };
    let info: redis::RedisResult<String> = redis::cmd("INFO").arg("replication").query(&mut con);
    info.is_ok_and(|i| i.contains("master_link_status:up") && !i.contains("master_sync_in_progress:1"))
}

fn node_ok(port: u16) -> bool {
    let Some(mut con) = connect(port) else { return false };
    let info: redis::RedisResult<String> = redis::cmd("CLUSTER").arg("INFO").query(&mut con);
    info.is_ok_and(|i| i.contains("cluster_state:ok"))
}

/// `CLUSTER SLOTS` as (start, end, node ports with the primary first).
fn slot_ranges(port: u16) -> Option<Vec<(u16, u16, Vec<u16>)>> {
    let mut con = connect(port)?;
    let v: redis::Value = redis::cmd("CLUSTER").arg("SLOTS").query(&mut con).ok()?;
    let redis::Value::Array(entries) = v else { return None };
    entries
        .into_iter()
        .map(|e| {
            let redis::Value::Array(parts) = e else { return None };
            let int = |v: &redis::Value| match v {
                redis::Value::Int(i) => u16::try_from(*i).ok(),
                _ => None,
            };
            let nodes = parts[2..]
                .iter()
                .map(|n| match n {
                    redis::Value::Array(n) => int(n.get(1)?),
                    _ => None,
                })
                .collect::<Option<Vec<u16>>>()?;
            Some((int(parts.first()?)?, int(parts.get(1)?)?, nodes))
        })
        .collect()
}

/// The primary serving `key`'s slot as the node on `port` says.
fn owner(port: u16, key: &str) -> Option<u16> {
    let mut con = connect(port)?;
    let slot: u16 = redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).query(&mut con).ok()?;
    slot_ranges(port)?.into_iter().find(|r| (r.0..=r.1).contains(&slot)).and_then(|r| r.2.first().copied())
}
