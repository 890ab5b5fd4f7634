//! The Redis servers of a layout: one standalone Redis, or a cluster of three primaries (no
//! replicas: nothing fails over here), and which domain lives on which of them.

use switchboard::config::Config;
use switchboard_testkit::{ClusterSetup, RedisServer};

use super::figures::Layout;
use crate::slowlog::local_redis;

/// A Redis process the domains' data is on: a standalone server or a cluster primary.
pub struct Shard {
    pub port: u16,
    pub pid: u32,
    /// A plain URL to it alone (for its counters).
    pub url: String,
}

/// The servers of a layout, stopped by PID when this drops.
pub struct Servers {
    pub layout: Layout,
    /// What every daemon of the layout is given as `redis.url`.
    pub url: String,
    pub shards: Vec<Shard>,
    /// The domains, each with the index of its shard.
    pub domains: Vec<(String, usize)>,
    _redis: Option<RedisServer>,
    _cluster: Option<ClusterSetup>,
}

/// `redis.domain`'s key root (`sb:{<domain>}:`), as the daemon derives it.
pub fn key_root(domain: &str) -> String {
    let mut cfg = Config::default();
    cfg.redis.domain = domain.to_string();
    cfg.redis.key_root()
}

impl Servers {
    /// Starts the layout's Redis (`count` domains; `Single` has one).
    pub fn start(layout: Layout, count: usize) -> Servers {
        match layout {
            Layout::Single | Layout::OneRedis => {
                let redis = local_redis();
                let n = if layout == Layout::Single { 1 } else { count };
                Servers {
                    layout,
                    url: redis.url.clone(),
                    shards: vec![Shard { port: redis.port, pid: redis.pid(), url: redis.url.clone() }],
                    domains: (0..n).map(|i| (format!("d{i}"), 0)).collect(),
                    _redis: Some(redis),
                    _cluster: None,
                }
            }
            Layout::Cluster => {
                // The slow log as on the other points' Redis; a node timeout long enough that a
                // busy machine never has a primary declared failing (there is no replica to take
                // over, and the cluster would stop).
                let mut args = crate::slowlog::SLOWLOG_ARGS.to_vec();
                args.extend(["--cluster-node-timeout", "30000"]);
                let cluster = ClusterSetup::start_with(0, &args);
                let shards: Vec<Shard> =
                    cluster.servers.iter().map(|s| Shard { port: s.port, pid: s.pid(), url: s.url.clone() }).collect();
                let domains = spread(count, shards.len(), |d| {
                    let port = cluster.primary_of(&key_root(d)).expect("a primary serves every slot");
                    shards.iter().position(|s| s.port == port).expect("one of the cluster's nodes")
                });
                Servers { layout, url: cluster.url(), shards, domains, _redis: None, _cluster: Some(cluster) }
            }
        }
    }
}

/// `count` domain names (`d0`, `d1`, …, some skipped) spread evenly over `shards`: a name is
/// taken when its shard (`shard_of`) has no more domains than any other.
fn spread(count: usize, shards: usize, shard_of: impl Fn(&str) -> usize) -> Vec<(String, usize)> {
    let mut on = vec![0; shards];
    let mut picked = Vec::new();
    for i in 0.. {
        if picked.len() == count {
            break;
        }
        let name = format!("d{i}");
        let s = shard_of(&name);
        if on[s] == *on.iter().min().expect("three shards") {
            on[s] += 1;
            picked.push((name, s));
        }
    }
    picked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_spread_evenly_over_the_shards() {
        // The first four names all fall on shard 0, then they go round: d0 is taken, the next
        // three wait until shards 1 and 2 have one each.
        let picked = spread(4, 3, |d| {
            let i: usize = d[1..].parse().unwrap();
            if i < 4 { 0 } else { i % 3 }
        });
        let got: Vec<(&str, usize)> = picked.iter().map(|(d, s)| (d.as_str(), *s)).collect();
        assert_eq!(got, [("d0", 0), ("d4", 1), ("d5", 2), ("d6", 0)]);
        assert_eq!(key_root("d0"), "sb:{d0}:");
    }
}
