//! What a phase of the domains point reports besides the figures every phase has (`Row`): each
//! domain's own throughput and latency, and each Redis process's CPU.

/// Where the domains' data lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One domain on one standalone Redis: what the others are compared with.
    Single,
    /// The domains on a Redis Cluster of three primaries, spread evenly over them.
    Cluster,
    /// The same domains on one standalone Redis: all of them on one Redis's one thread.
    OneRedis,
}

impl Layout {
    pub fn label(self, domains: usize) -> String {
        let s = if domains == 1 { "" } else { "s" };
        match self {
            Layout::Single => "1 domain on 1 Redis".into(),
            Layout::Cluster => format!("{domains} domain{s} on a 3-shard cluster"),
            Layout::OneRedis => format!("{domains} domain{s} on 1 Redis"),
        }
    }

    /// Its name in `bench.csv` and `domains.csv`.
    pub fn key(self) -> &'static str {
        match self {
            Layout::Single => "single",
            Layout::Cluster => "cluster",
            Layout::OneRedis => "one_redis",
        }
    }
}

#[derive(Debug, Clone)]
pub struct DomainFigures {
    pub layout: Layout,
    /// Decisions per second each domain was paced at; 0: unpaced.
    pub rate: u32,
    pub domains: Vec<DomainLine>,
    pub shards: Vec<ShardLine>,
    /// The benchmark's process (every domain's daemon, the desktops, the creators): % of one core.
    pub process_cpu_pct: f64,
    /// The whole machine: % of all its cores busy (stolen time included), and how many it has.
    pub machine_busy_pct: f64,
    pub cores: usize,
}

/// One domain's share of the phase.
#[derive(Debug, Clone)]
pub struct DomainLine {
    pub name: String,
    /// The port of the Redis (the cluster primary) holding the domain's slot.
    pub shard: u16,
    pub decisions: u64,
    pub per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
}

/// One Redis process during the phase.
#[derive(Debug, Clone)]
pub struct ShardLine {
    pub port: u16,
    /// The domains whose slots it serves.
    pub domains: Vec<String>,
    /// Its CPU (/proc/<pid>/stat, all threads) over the phase, % of one core.
    pub cpu_pct: f64,
    /// Its CPU per decision of its domains, µs.
    pub cpu_us_per_decision: f64,
}

impl DomainFigures {
    /// This run's part of the machine (its Redis processes and its own), % of all the cores: the
    /// rest of `machine_busy_pct` went to other processes.
    pub fn own_part_pct(&self) -> f64 {
        let redis: f64 = self.shards.iter().map(|s| s.cpu_pct).sum();
        (redis + self.process_cpu_pct) / self.cores.max(1) as f64
    }

    /// Each shard's share of all the Redis CPU of the phase, %.
    pub fn shard_shares(&self) -> Vec<f64> {
        let all: f64 = self.shards.iter().map(|s| s.cpu_pct).sum();
        self.shards.iter().map(|s| 100.0 * s.cpu_pct / all.max(1e-9)).collect()
    }
}
