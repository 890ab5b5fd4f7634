//! The command line: what a run measures, and where its report goes.

use std::path::PathBuf;

/// The defaults are the headline run: 10,000 agents, 200 skills, 100 queues, 100,000 waiting.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Agents with a desktop stream each.
    #[arg(long, default_value_t = 10_000)]
    pub agents: usize,
    #[arg(long, default_value_t = 100)]
    pub queues: usize,
    #[arg(long, default_value_t = 200)]
    pub skills: usize,
    /// Distinct skill sets among the agents; 0: each agent draws its own (1–5 skills).
    #[arg(long, default_value_t = 0)]
    pub combos: usize,
    /// Routing decisions measured in each phase.
    #[arg(long, default_value_t = 5000)]
    pub interactions: usize,
    /// Interactions still waiting when "freed → next offer" is measured (the benchmark creates
    /// this many more than the agents' slots can hold).
    #[arg(long, default_value_t = 100_000)]
    pub backlog: usize,
    /// Concurrent creators.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// The paced phases run at this many decisions per second (open loop), so their latency is
    /// measured at a load the system sustains. 0: half the throughput the unpaced phase reached
    /// (a sweep uses 500, so its points compare).
    #[arg(long, default_value_t = 0)]
    pub rate: u32,
    /// Further paced rates (decisions/s) for the latency phases: latency against load; `0`: none.
    /// A sweep runs only `--rate`.
    #[arg(long, value_delimiter = ',', default_value = "100,250")]
    pub latency_rates: Vec<u32>,
    /// Run the scaling series (agents 1k → 10k → 50k, backlog 1k → 100k, skill combinations
    /// 10 → 1,000) around the other settings, and plot latency against scale.
    #[arg(long)]
    pub sweep: bool,
    /// Where the report goes (markdown, CSV and, for a sweep, SVG).
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// The CTI point (`switchboard.cti.v1`, a Redis and daemon of its own, the same agents with a
    /// phone each): after the routing point (`on`), not at all, or alone. A sweep leaves it out.
    #[arg(long, value_enum, default_value_t = PointMode::On)]
    pub cti: PointMode,
    /// Paced RouteCall rates (calls/s) of the CTI point, after its unpaced phase; the held-call
    /// phase frees agents at each (with none, as fast as it can).
    #[arg(long, value_delimiter = ',', default_value = "100")]
    pub cti_rates: Vec<u32>,
    /// The SMS point (a Twilio-compatible gateway's signed webhooks in, its REST API out; a Redis
    /// and daemon of its own, the same agents taking one text conversation each): after the other
    /// points (`on`), not at all, or alone. A sweep leaves it out.
    #[arg(long, value_enum, default_value_t = PointMode::Off)]
    pub sms: PointMode,
    /// The SMS point's rates, in the order run: first texts per second, or `max` (unpaced, as
    /// fast as `--concurrency` senders get answers).
    #[arg(long, value_delimiter = ',', default_value = "50,200,max", value_parser = sms_rate)]
    pub sms_rates: Vec<u32>,
    /// The routing-domains point: one domain on one Redis, then `--domain-count` domains on a
    /// 3-shard Redis Cluster (a daemon each), then the same domains on one Redis; `--agents` and
    /// `--interactions` per domain. After the other points (`on`), not at all, or alone. A sweep
    /// leaves it out.
    #[arg(long, value_enum, default_value_t = PointMode::Off)]
    pub domains: PointMode,
    /// Routing domains run at once in the domains point (spread evenly over the cluster's three
    /// shards).
    #[arg(long, default_value_t = 3)]
    pub domain_count: usize,
    /// Paced rates of the domains point, per domain (decisions/s), after its unpaced phase; `0`: none.
    #[arg(long, value_delimiter = ',', default_value = "100")]
    pub domain_rates: Vec<u32>,
}

/// Whether a point runs: `on` (with the others), `off`, or `only` (the points marked `only`, and
/// no other).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PointMode {
    On,
    Off,
    Only,
}

/// A rate of the SMS point: texts per second, or `max` (0).
fn sms_rate(s: &str) -> Result<u32, String> {
    match s.trim() {
        "max" => Ok(0),
        n => n.parse().map_err(|_| format!("{n:?}: a number of texts per second, or max")),
    }
}

impl BenchArgs {
    fn any_only(&self) -> bool {
        [self.cti, self.sms, self.domains].contains(&PointMode::Only)
    }

    /// Whether the run has the routing point (no point is marked `only`).
    pub fn routing_point(&self) -> bool {
        !self.any_only()
    }

    pub fn cti_point(&self) -> bool {
        self.runs(self.cti)
    }

    pub fn sms_point(&self) -> bool {
        self.runs(self.sms)
    }

    pub fn domains_point(&self) -> bool {
        self.runs(self.domains)
    }

    /// Whether a point other than the routing point runs, marked `mode` (a sweep runs none).
    fn runs(&self, mode: PointMode) -> bool {
        !self.sweep && mode == if self.any_only() { PointMode::Only } else { PointMode::On }
    }

    /// Settings a run cannot be measured with, named by their flag; checked before anything starts.
    pub fn validate(&self) -> anyhow::Result<()> {
        for (flag, v) in [
            ("--agents", self.agents),
            ("--queues", self.queues),
            ("--skills", self.skills),
            ("--interactions", self.interactions),
            ("--concurrency", self.concurrency),
            ("--domain-count", self.domain_count),
        ] {
            if v == 0 {
                anyhow::bail!("{flag}: must be at least 1");
            }
        }
        Ok(())
    }
}
