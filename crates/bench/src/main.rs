//! `switchboard-bench`: routing throughput and latency through the real path — the same Redis
//! functions, the same gRPC desktop streams, the daemon in-process — against a Redis it starts
//! itself, next to Redis's own ceiling on the same machine.
//!
//! A benchmark, not a test: it reports figures and never fails because the machine is slow. It is
//! its own binary so that its dependencies (plotting, histograms) stay out of the daemon.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use hdrhistogram::Histogram;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use pb::agent_event::Kind as Ev;
use pb::agent_request::Kind as Rq;
use switchboard::config::Config;
use switchboard::model::{AgentSpec, Capacity, Channel, NewInteraction, Presence, QueueSpec, Requirement};
use switchboard_engine::{Engine, EngineOptions};
use switchboard_proto::v1 as pb;
use switchboard_testkit::RedisServer;

// The daemon runs in-process here, so it allocates as the `switchboard` binary does.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Routing throughput and latency against a Redis of its own (`docs/benchmarks.md`).
#[derive(clap::Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    args: BenchArgs,
}

fn main() -> std::process::ExitCode {
    let cli = <Cli as clap::Parser>::parse();
    let run = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(anyhow::Error::from);
    match run.and_then(|rt| rt.block_on(run_bench(cli.args))) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

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
}

impl BenchArgs {
    /// Settings a run cannot be measured with, named by their flag; checked before anything starts.
    fn validate(&self) -> anyhow::Result<()> {
        for (flag, v) in [
            ("--agents", self.agents),
            ("--queues", self.queues),
            ("--skills", self.skills),
            ("--interactions", self.interactions),
            ("--concurrency", self.concurrency),
        ] {
            if v == 0 {
                anyhow::bail!("{flag}: must be at least 1");
            }
        }
        Ok(())
    }
}

/// A call that ran this long inside Redis (µs) is listed by phase.
const SLOW_US: u64 = 2000;

/// A redis-server of our own on a free loopback port, stopped by PID.
/// A Redis of the run's own (stopped by PID when dropped, also when the run is interrupted),
/// logging every call that ran SLOW_US or longer inside it, so a phase can tell a long call (which
/// holds up everyone behind it) from waits outside Redis.
fn local_redis() -> RedisServer {
    RedisServer::start_with(&["--slowlog-log-slower-than", &SLOW_US.to_string(), "--slowlog-max-len", "100000"])
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// State the desktops and the phases share.
struct Shared {
    epoch: Instant,
    /// `epoch` on the wall clock (µs since 1970), which Redis's decision timestamps are on.
    epoch_wall_us: u64,
    /// When interaction `i` (customer address `c{i}`) was handed to Redis, in µs since `epoch`.
    created_at: Vec<AtomicU64>,
    created_to_offer: Mutex<Histogram<u64>>,
    freed_to_offer: Mutex<Histogram<u64>>,
    measure_created: AtomicBool,
    measure_freed: AtomicBool,
    /// Each measured decision of the phase: µs from its start to where the deciding function call
    /// started running in Redis (the interaction's "offered" timestamp), and from there to the
    /// desktop.
    split: Mutex<Vec<(u64, u64)>>,
    offers: AtomicU64,
    /// µs since `epoch` of the latest offer.
    last_offer_us: AtomicU64,
    /// Desktops keep what they accept (for the completer to free later) instead of completing it.
    hold: AtomicBool,
    /// Agent, interaction, channel.
    held: Mutex<VecDeque<(usize, String, i32)>>,
    senders: Mutex<Vec<Option<mpsc::Sender<pb::AgentRequest>>>>,
    /// Per agent: when the completer last freed one of its slots, and on which channel.
    freed_at: Vec<Mutex<Option<Freed>>>,
    /// Requests sent that each run one script (one round trip), so a phase's round trips can be
    /// split by what they were for.
    creates: AtomicU64,
    presence_changes: AtomicU64,
    accepts: AtomicU64,
    completes: AtomicU64,
}

#[derive(Clone, Copy)]
struct Freed {
    at: Instant,
    /// The same moment, in µs since `epoch`.
    at_us: u64,
    channel: i32,
}

impl Shared {
    fn new(agents: usize, interactions: usize) -> Shared {
        Shared {
            epoch: Instant::now(),
            epoch_wall_us: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64),
            created_at: (0..interactions).map(|_| AtomicU64::new(0)).collect(),
            created_to_offer: Mutex::new(hist()),
            freed_to_offer: Mutex::new(hist()),
            measure_created: AtomicBool::new(false),
            measure_freed: AtomicBool::new(false),
            split: Mutex::new(Vec::new()),
            offers: AtomicU64::new(0),
            last_offer_us: AtomicU64::new(0),
            hold: AtomicBool::new(false),
            held: Mutex::new(VecDeque::new()),
            senders: Mutex::new(vec![None; agents]),
            freed_at: (0..agents).map(|_| Mutex::new(None)).collect(),
            creates: AtomicU64::new(0),
            presence_changes: AtomicU64::new(0),
            accepts: AtomicU64::new(0),
            completes: AtomicU64::new(0),
        }
    }

    fn us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    fn offers(&self) -> u64 {
        self.offers.load(Relaxed)
    }

    /// Splits a measured decision that started at `start_us` and reached the desktop at `now_us`
    /// (both since `epoch`) where the deciding function call started running in Redis. That moment
    /// is on the wall clock in whole ms, so each part is off by up to half a millisecond.
    fn record_split(&self, ix: &pb::Interaction, start_us: u64, now_us: u64) {
        let Some(offered) = ix.timestamps.get("offered") else { return };
        let decided_wall = offered.seconds as u64 * 1_000_000 + offered.nanos as u64 / 1000 + 500;
        let decided = decided_wall.saturating_sub(self.epoch_wall_us).clamp(start_us, now_us);
        self.split.lock().expect("lock").push((decided - start_us, now_us - decided));
    }
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds")
}

fn record(h: &Mutex<Histogram<u64>>, us: u64) {
    let _ = h.lock().expect("histogram lock").record(us.max(1));
}

/// One desktop: accepts every offer, then completes it at once or keeps it for the completer.
async fn desktop(
    channel: tonic::transport::Channel,
    idx: usize,
    shared: Arc<Shared>,
    stop: CancellationToken,
    ready: mpsc::Sender<()>,
) -> anyhow::Result<()> {
    let mut client = pb::agent_desktop_client::AgentDesktopClient::new(channel);
    let (tx, rx) = mpsc::channel(64);
    let agent = format!("a{idx}");
    tx.send(pb::AgentRequest {
        request_id: "login".into(),
        kind: Some(Rq::Login(pb::Login { agent_id: agent.clone(), token: format!("tok-{agent}") })),
    })
    .await?;
    let mut events = client.session(tokio_stream::wrappers::ReceiverStream::new(rx)).await?.into_inner();
    shared.senders.lock().expect("lock")[idx] = Some(tx.clone());
    let mut logged_in = false;
    let mut n = 0u64;
    loop {
        let ev = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            e = events.next() => match e { Some(e) => e?, None => return Ok(()) },
        };
        match ev.kind {
            Some(Ev::Ack(a)) if a.request_id == "login" && !logged_in => {
                logged_in = true;
                let _ = ready.send(()).await;
            }
            Some(Ev::Offer(o)) => {
                let now = shared.us();
                let received = Instant::now();
                let ix = o.interaction.unwrap_or_default();
                // µs since `epoch` at which this interaction was handed to Redis (0: unknown).
                let created = ix
                    .customer_address
                    .strip_prefix('c')
                    .and_then(|i| i.parse::<usize>().ok())
                    .and_then(|i| shared.created_at.get(i))
                    .map_or(0, |a| a.load(Relaxed));
                if shared.measure_created.load(Relaxed) && created > 0 {
                    record(&shared.created_to_offer, now.saturating_sub(created));
                    shared.record_split(&ix, created, now);
                }
                // An offer answers a freed slot if it is on that channel and was already waiting
                // when the slot was freed. A completion that found nothing of its channel waiting
                // (its queues' sets for it were empty) is not a routing delay; its record is
                // dropped at the next offer on that channel, which came from a new arrival.
                let freed = {
                    let mut slot = shared.freed_at[idx].lock().expect("lock");
                    slot.filter(|f| f.channel == ix.channel).and_then(|_| slot.take())
                };
                if let Some(f) = freed
                    && shared.measure_freed.load(Relaxed)
                    && created > 0
                    && created < f.at_us
                {
                    record(&shared.freed_to_offer, received.duration_since(f.at).as_micros() as u64);
                    shared.record_split(&ix, f.at_us, now);
                }
                shared.offers.fetch_add(1, Relaxed);
                shared.last_offer_us.fetch_max(now, Relaxed);
                n += 1;
                shared.accepts.fetch_add(1, Relaxed);
                tx.send(pb::AgentRequest {
                    request_id: format!("a{n}"),
                    kind: Some(Rq::Accept(pb::AcceptOffer { interaction_id: ix.id.clone() })),
                })
                .await?;
                if shared.hold.load(Relaxed) {
                    shared.held.lock().expect("lock").push_back((idx, ix.id, ix.channel));
                } else {
                    shared.completes.fetch_add(1, Relaxed);
                    tx.send(complete_request(ix.id)).await?;
                }
            }
            _ => {}
        }
    }
}

fn complete_request(iid: String) -> pb::AgentRequest {
    pb::AgentRequest {
        request_id: format!("c-{iid}"),
        kind: Some(Rq::Complete(pb::CompleteInteraction {
            interaction_id: iid,
            disposition: "bench".into(),
            notes: String::new(),
        })),
    }
}

/// Frees `n` held slots, oldest first, at `rate` per second (0: as fast as it can), each
/// completion timed from when it leaves for the agent's next offer.
async fn complete_held(shared: &Shared, n: usize, rate: u32) {
    let start = tokio::time::Instant::now();
    for i in 0..n {
        if rate > 0 {
            tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / f64::from(rate))).await;
        }
        let mut waited = 0;
        let (idx, iid, channel) = loop {
            let next = shared.held.lock().expect("lock").pop_front();
            match next {
                Some(h) => break h,
                None if waited < 5000 => {
                    waited += 1;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                None => return,
            }
        };
        let tx = shared.senders.lock().expect("lock")[idx].clone();
        if let Some(tx) = tx {
            *shared.freed_at[idx].lock().expect("lock") =
                Some(Freed { at: Instant::now(), at_us: shared.us(), channel });
            shared.completes.fetch_add(1, Relaxed);
            let _ = tx.send(complete_request(iid)).await;
        }
    }
}

/// What Redis and this process have done so far; two of them bound a phase.
struct Snap {
    at: Instant,
    offers: u64,
    calls: BTreeMap<String, u64>,
    usec: BTreeMap<String, u64>,
    redis_cpu_us: u64,
    own_cpu_us: u64,
    round_trips: u64,
    /// Round trips of the hub (the task that reads the inbox and delivers pushes to the streams).
    hub_round_trips: u64,
    sent: Sent,
    /// The machine's CPU time so far: (stolen by the hypervisor, all), in ticks.
    machine_ticks: (u64, u64),
    /// Calls that ran SLOW_US or longer in Redis since the previous snapshot: (µs, what).
    slow: Vec<(u64, String)>,
}

/// Script-running requests the benchmark has sent so far.
#[derive(Clone, Copy)]
struct Sent {
    creates: u64,
    presence_changes: u64,
    accepts: u64,
    completes: u64,
}

impl Sent {
    fn of(shared: &Shared) -> Sent {
        Sent {
            creates: shared.creates.load(Relaxed),
            presence_changes: shared.presence_changes.load(Relaxed),
            accepts: shared.accepts.load(Relaxed),
            completes: shared.completes.load(Relaxed),
        }
    }
}

/// The script whose run makes a phase's decisions.
#[derive(Clone, Copy, PartialEq)]
enum Decider {
    Create,
    Presence,
    Complete,
}

async fn snap(con: &mut redis::aio::MultiplexedConnection, shared: &Shared) -> anyhow::Result<Snap> {
    let stats = redis_info(con, "commandstats").await?;
    let cpu = redis_info(con, "cpu").await?;
    let rt = switchboard_engine::round_trips();
    let slow = slow_calls(con).await?;
    Ok(Snap {
        at: Instant::now(),
        offers: shared.offers(),
        calls: commandstats_field(&stats, "calls"),
        usec: commandstats_field(&stats, "usec"),
        redis_cpu_us: redis_cpu_us(&cpu),
        own_cpu_us: own_cpu_us(),
        round_trips: rt.all,
        hub_round_trips: rt.readers,
        sent: Sent::of(shared),
        machine_ticks: machine_ticks(),
        slow,
    })
}

/// Redis's slow log since the last call (then emptied).
async fn slow_calls(con: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<Vec<(u64, String)>> {
    let entries: Vec<redis::Value> = redis::cmd("SLOWLOG").arg("GET").arg(-1).query_async(con).await?;
    let _: () = redis::cmd("SLOWLOG").arg("RESET").query_async(con).await?;
    Ok(slow_entries(entries))
}

/// Each `SLOWLOG GET` entry (`[id, unix time, µs, argv, client address, client name]`) as its µs
/// and what it was: the operation for one of our FCALLs, else the command.
fn slow_entries(entries: Vec<redis::Value>) -> Vec<(u64, String)> {
    let text = |v: &redis::Value| redis::from_redis_value::<String>(v.clone()).unwrap_or_default();
    let mut out = Vec::new();
    for e in entries {
        let redis::Value::Array(f) = e else { continue };
        let (Some(us), Some(redis::Value::Array(argv))) = (f.get(2), f.get(3)) else { continue };
        let us: u64 = redis::from_redis_value(us.clone()).unwrap_or(0);
        let cmd = argv.first().map(text).unwrap_or_default().to_lowercase();
        let what = match (cmd.as_str(), argv.get(1)) {
            // `sb_<digest>_<operation>`
            ("fcall", Some(name)) => text(name).splitn(3, '_').nth(2).unwrap_or_default().to_string(),
            _ => cmd,
        };
        out.push((us, what));
    }
    out
}

#[derive(Debug, Clone)]
struct Row {
    series: String,
    x: u64,
    phase: String,
    agents: usize,
    waiting: usize,
    combos: usize,
    decisions: u64,
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    commands: f64,
    round_trips: f64,
    /// The round trips split by role (they add up to `round_trips`).
    roles: Roles,
    redis_cpu_us: f64,
    own_cpu_us: f64,
    mem_per_waiting: f64,
    /// Of `mem_per_waiting`, the event-log entries not yet delivered to a CRM.
    events_per_waiting: f64,
    kib_per_agent: f64,
    /// Per command: calls and Redis µs per decision.
    by_command: Vec<(String, f64, f64)>,
    split: Option<Split>,
    /// Share of the machine's CPU time stolen by the hypervisor during the phase, %.
    steal_pct: f64,
    /// Calls that ran SLOW_US or longer inside Redis during the phase: (µs, what).
    slow: Vec<(u64, String)>,
}

/// Where a phase's latency went, split where the deciding function call starts running in Redis
/// (its clock reading is the interaction's "offered" timestamp): before (the request reaching the
/// daemon and waiting for Redis) and after (the function's run, the hub's read of its push when
/// another call made the decision, and the stream to the desktop). In ms.
#[derive(Debug, Clone, Copy)]
struct Split {
    before_p50: f64,
    before_p99: f64,
    after_p50: f64,
    after_p99: f64,
    /// Among the slowest 1 % of decisions: the mean of each part.
    slow_before: f64,
    slow_after: f64,
}

impl Split {
    fn of(samples: &[(u64, u64)]) -> Option<Split> {
        if samples.is_empty() {
            return None;
        }
        let q = |mut v: Vec<u64>, x: f64| {
            v.sort_unstable();
            v[((v.len() - 1) as f64 * x).round() as usize] as f64 / 1000.0
        };
        let before: Vec<u64> = samples.iter().map(|s| s.0).collect();
        let after: Vec<u64> = samples.iter().map(|s| s.1).collect();
        let mut by_total = samples.to_vec();
        by_total.sort_unstable_by_key(|s| std::cmp::Reverse(s.0 + s.1));
        let slow = &by_total[..by_total.len().div_ceil(100)];
        let mean = |f: fn(&(u64, u64)) -> u64| slow.iter().map(f).sum::<u64>() as f64 / slow.len() as f64 / 1000.0;
        Some(Split {
            before_p50: q(before.clone(), 0.5),
            before_p99: q(before, 0.99),
            after_p50: q(after.clone(), 0.5),
            after_p99: q(after, 0.99),
            slow_before: mean(|s| s.0),
            slow_after: mean(|s| s.1),
        })
    }
}

/// Round trips per decision by what they were for.
#[derive(Debug, Clone, Copy, Default)]
struct Roles {
    /// The script run that made the decision, and the hub's reads that delivered the offer (none
    /// when the agent's own request made it: the offer comes back with the reply).
    routing: f64,
    /// The hub's share of `routing`.
    hub: f64,
    /// Accepting, and completing when that is not what made the decision.
    agent: f64,
    /// Creating interactions when that is not what made the decision (the backlog's arrivals).
    arrivals: f64,
    /// The rest: timers, heartbeats, presence changes that made no decision.
    other: f64,
}

fn sub(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>, k: &str) -> u64 {
    after.get(k).copied().unwrap_or(0).saturating_sub(before.get(k).copied().unwrap_or(0))
}

impl Row {
    /// `until`: when the phase's last decision was made (defaults to `b.at`).
    fn between(
        phase: String,
        decider: Decider,
        a: &Snap,
        b: &Snap,
        until: Option<Instant>,
        latency: Option<&Mutex<Histogram<u64>>>,
    ) -> Row {
        let d = b.offers.saturating_sub(a.offers);
        let per = |x: u64| x as f64 / d.max(1) as f64;
        let (p50_ms, p99_ms, p999_ms) = latency.map(|h| quantiles(&h.lock().expect("lock"))).unwrap_or((0.0, 0.0, 0.0));
        let mut by_command: Vec<(String, f64, f64)> = b
            .calls
            .keys()
            .map(|k| (k.clone(), per(sub(&b.calls, &a.calls, k)), per(sub(&b.usec, &a.usec, k))))
            .filter(|(k, n, _)| *n >= 0.05 && k != "info")
            .collect();
        by_command.sort_by(|x, y| y.1.total_cmp(&x.1));
        let commands: u64 = b.calls.keys().filter(|k| *k != "info").map(|k| sub(&b.calls, &a.calls, k)).sum();
        let elapsed = until.unwrap_or(b.at).saturating_duration_since(a.at).as_secs_f64().max(1e-6);
        let sent = |f: fn(&Sent) -> u64| f(&b.sent).saturating_sub(f(&a.sent));
        let (creates, presence, accepts, completes) =
            (sent(|s| s.creates), sent(|s| s.presence_changes), sent(|s| s.accepts), sent(|s| s.completes));
        let deciding = match decider {
            Decider::Create => creates,
            Decider::Presence => presence,
            Decider::Complete => completes,
        };
        let all = b.round_trips.saturating_sub(a.round_trips);
        let hub = b.hub_round_trips.saturating_sub(a.hub_round_trips);
        let agent = accepts + if decider == Decider::Complete { 0 } else { completes };
        let arrivals = if decider == Decider::Create { 0 } else { creates };
        // Each of those requests is one script run, one round trip. A request sent just before
        // the phase's end may run after it: the rest is then off by the few still in flight.
        let roles = Roles {
            routing: per(deciding + hub),
            hub: per(hub),
            agent: per(agent),
            arrivals: per(arrivals),
            other: per(all.saturating_sub(deciding + hub + agent + arrivals)),
        };
        Row {
            series: String::new(),
            x: 0,
            phase,
            agents: 0,
            waiting: 0,
            combos: 0,
            decisions: d,
            per_sec: d as f64 / elapsed,
            p50_ms,
            p99_ms,
            p999_ms,
            commands: per(commands),
            round_trips: per(all),
            roles,
            redis_cpu_us: per(b.redis_cpu_us - a.redis_cpu_us),
            own_cpu_us: per(b.own_cpu_us - a.own_cpu_us),
            mem_per_waiting: 0.0,
            events_per_waiting: 0.0,
            kib_per_agent: 0.0,
            by_command,
            split: None,
            slow: b.slow.clone(),
            steal_pct: {
                let (steal, all) = (
                    b.machine_ticks.0.saturating_sub(a.machine_ticks.0),
                    b.machine_ticks.1.saturating_sub(a.machine_ticks.1),
                );
                100.0 * steal as f64 / all.max(1) as f64
            },
        }
    }
}

fn quantiles(h: &Histogram<u64>) -> (f64, f64, f64) {
    if h.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let q = |x| h.value_at_quantile(x) as f64 / 1000.0;
    (q(0.5), q(0.99), q(0.999))
}

/// Runs `f` over `0..n` with `width` at a time.
async fn each<F, Fut>(n: usize, width: usize, f: F) -> anyhow::Result<()>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut s = futures::stream::iter((0..n).map(f)).buffer_unordered(width);
    while let Some(r) = s.next().await {
        r?;
    }
    Ok(())
}

async fn set_all(engine: &Engine, shared: &Shared, agents: usize, presence: &Presence) -> anyhow::Result<()> {
    each(agents, 32, |a| async move {
        shared.presence_changes.fetch_add(1, Relaxed);
        Ok(engine.set_presence(&format!("a{a}"), presence, "bench").await?)
    })
    .await
}

/// Creates interactions `first..first + n` (customer `c{i}`) in the queues given, at `rate` per
/// second (0: as fast as `concurrency` creators can).
async fn create_many(
    engine: &Engine,
    shared: &Arc<Shared>,
    range: std::ops::Range<usize>,
    queues: &Arc<Vec<String>>,
    concurrency: usize,
    rate: u32,
) -> anyhow::Result<()> {
    let next = Arc::new(AtomicUsize::new(range.start));
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (engine, shared, next, queues, end) =
            (engine.clone(), shared.clone(), next.clone(), queues.clone(), range.end);
        let first = range.start;
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Relaxed);
                if i >= end {
                    return Ok::<_, anyhow::Error>(());
                }
                if rate > 0 {
                    tokio::time::sleep_until(start + Duration::from_secs_f64((i - first) as f64 / f64::from(rate)))
                        .await;
                }
                let mut rng = Rng((i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
                rng.next();
                let new = NewInteraction {
                    channel: Some([Channel::Chat, Channel::Email, Channel::Sms][rng.below(3) as usize]),
                    customer_address: format!("c{i}"),
                    queue: queues[rng.below(queues.len() as u64) as usize].clone(),
                    ..Default::default()
                };
                shared.created_at[i].store(shared.us(), Relaxed);
                shared.creates.fetch_add(1, Relaxed);
                engine.create_interaction(&new).await?;
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

async fn wait_offers(shared: &Shared, target: u64, patience: Duration) {
    let started = Instant::now();
    while shared.offers() < target && started.elapsed() < patience {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until offers stop coming (none for `quiet`).
async fn wait_quiet(shared: &Shared, quiet: Duration, patience: Duration) {
    let started = Instant::now();
    let mut last = (shared.offers(), Instant::now());
    while started.elapsed() < patience {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = shared.offers();
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() >= quiet {
            return;
        }
    }
}

/// The contact center a point runs against.
struct Center {
    queues: Vec<QueueSpec>,
    agents: Vec<AgentSpec>,
    /// Queues some agent can serve (interactions go only there).
    served: Vec<String>,
    /// Sum of the agents' channel capacities.
    slots: usize,
    combos: usize,
}

fn skill_set(rng: &mut Rng, skills: &[String], queue_skill: &str) -> BTreeMap<String, u32> {
    // 1–5 skills, one of them a queue's at a level that queue accepts.
    let mut own = BTreeMap::new();
    own.insert(queue_skill.to_string(), 3 + rng.below(8) as u32);
    for _ in 0..rng.below(5) {
        own.insert(skills[rng.below(skills.len() as u64) as usize].clone(), 1 + rng.below(10) as u32);
    }
    own
}

fn center(args: &BenchArgs) -> Center {
    let mut rng = Rng(args.seed | 1);
    let skills: Vec<String> = (0..args.skills.max(1)).map(|i| format!("s{i}")).collect();
    let queues: Vec<QueueSpec> = (0..args.queues.max(1))
        .map(|q| {
            let mut spec = QueueSpec::new(format!("q{q}"));
            spec.channels = vec![Channel::Chat, Channel::Email, Channel::Sms];
            spec.requirements =
                vec![Requirement { skill: skills[q % skills.len()].clone(), min_level: 1 + rng.below(3) as u32 }];
            spec
        })
        .collect();
    let queue_skill = |i: usize| skills[(i % queues.len()) % skills.len()].clone();
    let combos: Vec<BTreeMap<String, u32>> =
        (0..args.combos).map(|c| skill_set(&mut rng, &skills, &queue_skill(c))).collect();
    let mut slots = 0;
    let agents: Vec<AgentSpec> = (0..args.agents)
        .map(|a| {
            let own = if combos.is_empty() {
                skill_set(&mut rng, &skills, &queue_skill(a))
            } else {
                combos[a % combos.len()].clone()
            };
            // Mixed capacities: every agent chats, some also take SMS and email.
            let capacity = Capacity {
                voice: 0,
                chat: 1 + rng.below(2) as u32,
                sms: rng.below(2) as u32,
                email: rng.below(3) as u32,
            };
            slots += (capacity.chat + capacity.sms + capacity.email) as usize;
            AgentSpec {
                id: format!("a{a}"),
                name: format!("Agent {a}"),
                skills: own,
                capacity,
                cross_channel_blocking: None,
                token: format!("tok-a{a}"),
            }
        })
        .collect();
    let served = queues
        .iter()
        .filter(|q| {
            let r = &q.requirements[0];
            agents.iter().any(|a| a.skills.get(&r.skill).is_some_and(|l| *l >= r.min_level))
        })
        .map(|q| q.name.clone())
        .collect();
    let combos = agents.iter().map(|a| &a.skills).collect::<std::collections::BTreeSet<_>>().len();
    Center { queues, agents, served, slots, combos }
}

/// One measured point: a fresh Redis and daemon, the agents logged in, then the phases.
async fn point(args: &BenchArgs, rate: u32) -> anyhow::Result<Vec<Row>> {
    let redis = local_redis();
    let mut con = redis::Client::open(redis.url.as_str())?.get_multiplexed_async_connection().await?;
    let c = center(args);
    let n = args.interactions;
    let backlog_total = args.backlog + c.slots;
    println!(
        "point: {} agents ({} skill sets, {} slots), {} queues ({} served), {} waiting; {} decisions a phase",
        args.agents,
        c.combos,
        c.slots,
        args.queues,
        c.served.len(),
        args.backlog,
        n
    );
    let engine = Engine::connect(&redis.url, EngineOptions::default()).await?;
    for q in &c.queues {
        engine.put_queue(q, true).await?;
    }
    let agents = &c.agents;
    each(agents.len(), 32, |a| {
        let engine = &engine;
        async move {
            engine.put_agent(&agents[a], true).await?;
            Ok(())
        }
    })
    .await?;

    // The daemon, in-process, without a CRM: this measures routing.
    let mut cfg = Config::default();
    cfg.redis.url = redis.url.clone();
    cfg.crm.enabled = false;
    cfg.webchat.enabled = false;
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", grpc.local_addr()?);
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(switchboard::server::Server::new(cfg).run(grpc, http, shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Two phases (created, freed) at each rate: unpaced, the first paced, the further ones.
    let phases = 2 * (2 + args.latency_rates.len());
    let shared = Arc::new(Shared::new(args.agents, phases * n + backlog_total));
    let rss_before = rss_kib();
    let stop = CancellationToken::new();
    let (ready_tx, mut ready_rx) = mpsc::channel(args.agents.max(1));
    // Many streams per HTTP/2 connection, but not all on one.
    let mut channels = Vec::new();
    for _ in 0..args.agents.div_ceil(100) {
        channels.push(tonic::transport::Endpoint::from_shared(endpoint.clone())?.connect().await?);
    }
    for a in 0..args.agents {
        tokio::spawn(desktop(channels[a / 100].clone(), a, shared.clone(), stop.clone(), ready_tx.clone()));
    }
    for _ in 0..args.agents {
        ready_rx.recv().await.context("a desktop failed to log in")?;
    }
    let kib_per_agent = rss_kib().saturating_sub(rss_before) as f64 / args.agents.max(1) as f64;
    let served = Arc::new(c.served.clone());
    let mut rows = Vec::new();
    let mut next_ix = 0;

    // Phase 1: agents free, interactions created → offered (then completed at once).
    set_all(&engine, &shared, args.agents, &Presence::Ready).await?;
    shared.measure_created.store(true, Relaxed);
    let latency_rates = &args.latency_rates;
    // Unpaced first (0); the paced rates follow once the unpaced throughput is known.
    let mut rates = vec![0];
    let mut i = 0;
    while let Some(&r) = rates.get(i) {
        let paced = r > 0;
        shared.created_to_offer.lock().expect("lock").reset();
        shared.split.lock().expect("lock").clear();
        let a = snap(&mut con, &shared).await?;
        create_many(&engine, &shared, next_ix..next_ix + n, &served, args.concurrency, r).await?;
        next_ix += n;
        wait_offers(&shared, a.offers + n as u64, Duration::from_secs(300)).await;
        let b = snap(&mut con, &shared).await?;
        let label = if paced { format!("created → offered at {r}/s") } else { "created → offered, max".into() };
        let mut row = Row::between(label, Decider::Create, &a, &b, None, Some(&shared.created_to_offer));
        row.split = Split::of(&shared.split.lock().expect("lock"));
        rows.push(row);
        if i == 0 {
            let half = ((rows.last().map(|r: &Row| r.per_sec).unwrap_or(200.0) / 2.0) as u32).max(1);
            let first = if rate == 0 { half } else { rate };
            rates.push(first);
            rates.extend(latency_rates.iter().copied().filter(|&x| x > 0 && x != first));
        }
        i += 1;
    }
    shared.measure_created.store(false, Relaxed);

    // Phase 2: a backlog waits while nobody is ready; then everyone goes ready and fills up.
    set_all(&engine, &shared, args.agents, &Presence::NotReady("bench".into())).await?;
    wait_quiet(&shared, Duration::from_millis(500), Duration::from_secs(60)).await;
    let events_key = engine.keys().events();
    let mem_before = info_field(&redis_info(&mut con, "memory").await?, "used_memory");
    let events_before = memory_usage(&mut con, &events_key).await?;
    create_many(&engine, &shared, next_ix..next_ix + backlog_total, &served, args.concurrency, 0).await?;
    next_ix += backlog_total;
    let mem_after = info_field(&redis_info(&mut con, "memory").await?, "used_memory");
    let events_after = memory_usage(&mut con, &events_key).await?;
    let mem_per_waiting = mem_after.saturating_sub(mem_before) as f64 / backlog_total.max(1) as f64;
    // The event log holds each arrival's entries until the CRM has them (then it is trimmed);
    // without a CRM, as here, up to its cap. Reported apart from the interaction's own state.
    let events_per_waiting = events_after.saturating_sub(events_before) as f64 / backlog_total.max(1) as f64;
    shared.hold.store(true, Relaxed);
    let a = snap(&mut con, &shared).await?;
    set_all(&engine, &shared, args.agents, &Presence::Ready).await?;
    wait_quiet(&shared, Duration::from_secs(1), Duration::from_secs(1800)).await;
    let b = snap(&mut con, &shared).await?;
    let last = shared.epoch + Duration::from_micros(shared.last_offer_us.load(Relaxed));
    rows.push(Row::between("agents ready → offers up to capacity".into(), Decider::Presence, &a, &b, Some(last), None));
    rows.last_mut().expect("row").waiting = backlog_total;
    let waiting = backlog_total.saturating_sub((b.offers - a.offers) as usize);

    // Phase 3: the completer frees held slots; each freed slot pulls the next waiting interaction.
    // New interactions keep arriving at the same pace, so the backlog stays where it is.
    shared.measure_freed.store(true, Relaxed);
    for &r in &rates {
        let paced = r > 0;
        shared.freed_to_offer.lock().expect("lock").reset();
        shared.split.lock().expect("lock").clear();
        let a = snap(&mut con, &shared).await?;
        let (_, created) = tokio::join!(
            complete_held(&shared, n, r),
            create_many(&engine, &shared, next_ix..next_ix + n, &served, args.concurrency, r)
        );
        created?;
        next_ix += n;
        wait_offers(&shared, a.offers + n as u64, Duration::from_secs(10)).await;
        wait_quiet(&shared, Duration::from_millis(300), Duration::from_secs(30)).await;
        let until = shared.epoch + Duration::from_micros(shared.last_offer_us.load(Relaxed));
        let b = snap(&mut con, &shared).await?;
        let label = if paced { format!("freed → next offer at {r}/s") } else { "freed → next offer, max".into() };
        let mut row = Row::between(label, Decider::Complete, &a, &b, Some(until), Some(&shared.freed_to_offer));
        row.waiting = waiting;
        row.split = Split::of(&shared.split.lock().expect("lock"));
        rows.push(row);
    }

    stop.cancel();
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(20), server).await;
    for r in &mut rows {
        r.agents = args.agents;
        r.combos = c.combos;
        r.mem_per_waiting = mem_per_waiting;
        r.events_per_waiting = events_per_waiting;
        r.kib_per_agent = kib_per_agent;
    }
    Ok(rows)
}

/// Bytes a key takes, counted exactly (`SAMPLES 0`); 0 if it does not exist.
async fn memory_usage(con: &mut redis::aio::MultiplexedConnection, key: &str) -> anyhow::Result<u64> {
    let n: Option<u64> = redis::cmd("MEMORY").arg("USAGE").arg(key).arg("SAMPLES").arg(0).query_async(con).await?;
    Ok(n.unwrap_or(0))
}

async fn redis_info(con: &mut redis::aio::MultiplexedConnection, section: &str) -> anyhow::Result<String> {
    Ok(redis::cmd("INFO").arg(section).query_async(con).await?)
}

fn info_field(info: &str, key: &str) -> u64 {
    info.lines().find_map(|l| l.strip_prefix(&format!("{key}:"))).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// One numeric field per command from `INFO commandstats` (`calls`, `usec`).
fn commandstats_field(info: &str, field: &str) -> std::collections::BTreeMap<String, u64> {
    let tag = format!("{field}=");
    info.lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let v = rest.split(',').find_map(|kv| kv.strip_prefix(tag.as_str()))?.parse().ok()?;
            Some((name.to_string(), v))
        })
        .collect()
}

/// Redis's CPU time so far (main thread and I/O), in microseconds.
fn redis_cpu_us(info: &str) -> u64 {
    let f = |k: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}:")))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    ((f("used_cpu_user") + f("used_cpu_sys")) * 1e6) as u64
}

/// This process's CPU time so far (daemon and benchmark desktops), in microseconds.
fn own_cpu_us() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0 };
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<u64> = rest.split_whitespace().skip(11).take(2).filter_map(|v| v.parse().ok()).collect();
    // Clock ticks are 100 Hz on Linux.
    f.iter().sum::<u64>() * 10_000
}

/// The machine's CPU time so far, from /proc/stat: (stolen, all) in clock ticks. On a shared
/// virtual machine, time stolen by the hypervisor shows up as latency the code did not cause.
fn machine_ticks() -> (u64, u64) {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else { return (0, 0) };
    let Some(cpu) = stat.lines().next().and_then(|l| l.strip_prefix("cpu ")) else { return (0, 0) };
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let f: Vec<u64> = cpu.split_whitespace().take(8).filter_map(|v| v.parse().ok()).collect();
    (f.get(7).copied().unwrap_or(0), f.iter().sum())
}

/// What this machine allows before any routing: Redis's own ceiling and a no-op gRPC call's.
#[derive(Debug, Clone, Copy)]
struct Ceiling {
    /// Plain round trips (PING) per second.
    ping: f64,
    /// EVALSHA of a 6-command script per second.
    evalsha: f64,
    /// No-op unary gRPC calls per second.
    grpc_calls: f64,
    /// This process's CPU (client and server side) per no-op gRPC call, µs.
    grpc_cpu_us: f64,
}

/// Redis's own ceiling: ops/s for a plain round trip and for an EVALSHA of comparable work.
async fn redis_ceiling(url: &str, clients: usize, dur: Duration) -> anyhow::Result<(f64, f64)> {
    let client = redis::Client::open(url)?;
    let script = redis::Script::new(
        "local k = KEYS[1]
         redis.call('ZADD', k .. ':z', ARGV[1], ARGV[1])
         local r = redis.call('ZRANGEBYSCORE', k .. ':z', '-inf', '+inf', 'LIMIT', 0, 1)
         redis.call('ZREM', k .. ':z', r[1])
         redis.call('HINCRBY', k .. ':h', 'n', 1)
         redis.call('XADD', k .. ':s', 'MAXLEN', '~', 1000, '*', 'f', ARGV[1])
         redis.call('HSET', k .. ':h2', 'last', ARGV[1])
         return 1",
    );
    let mut out = [0.0; 2];
    for (i, o) in out.iter_mut().enumerate() {
        let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..clients {
            let mut con = client.get_multiplexed_async_connection().await?;
            let count = count.clone();
            let script = script.clone();
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while started.elapsed() < dur {
                    let ok = if i == 0 {
                        redis::cmd("PING").query_async::<String>(&mut con).await.is_ok()
                    } else {
                        script.key(format!("bench:{c}")).arg(n).invoke_async::<i64>(&mut con).await.is_ok()
                    };
                    if ok {
                        n += 1;
                    }
                }
                count.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            }));
        }
        for t in tasks {
            t.await?;
        }
        *o = count.load(std::sync::atomic::Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    }
    Ok((out[0], out[1]))
}

/// Concurrent clients in each ceiling measurement.
const CEILING_CLIENTS: usize = 50;

/// Concurrent callers per HTTP/2 connection in the gRPC ceiling: several connections, each
/// multiplexing many calls, as the benchmark's desktops share theirs.
const GRPC_CALLERS_PER_CHANNEL: usize = 10;

/// What a no-op unary gRPC call costs on this machine with the daemon's tonic setup (the health
/// service's `Check`): calls per second, and this process's CPU per call (client and server, as
/// the benchmark's figures for the daemon and its desktops). Creating, accepting and completing
/// an interaction through the API are three such requests and an offer is a stream message, so
/// this bounds decisions per second from the daemon's side whatever Redis does.
async fn grpc_ceiling(clients: usize, dur: Duration) -> anyhow::Result<(f64, f64)> {
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let (_health, service) = tonic_health::server::health_reporter();
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let stop = CancellationToken::new();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(20)))
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, stop.clone().cancelled_owned()),
    );
    let mut channels = Vec::new();
    for _ in 0..clients.div_ceil(GRPC_CALLERS_PER_CHANNEL) {
        let channel = tonic::transport::Endpoint::from_shared(endpoint.clone())?.connect().await?;
        // The first call on a connection pays for its set-up; that is not what is measured.
        HealthClient::new(channel.clone()).check(HealthCheckRequest::default()).await?;
        channels.push(channel);
    }
    let cpu_before = own_cpu_us();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let mut client = HealthClient::new(channels[c / GRPC_CALLERS_PER_CHANNEL].clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while started.elapsed() < dur {
                client.check(HealthCheckRequest::default()).await?;
                n += 1;
            }
            Ok::<_, anyhow::Error>(n)
        }));
    }
    let mut calls = 0;
    for t in tasks {
        calls += t.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = own_cpu_us().saturating_sub(cpu_before);
    stop.cancel();
    server.await??;
    Ok((calls as f64 / elapsed, cpu as f64 / calls.max(1) as f64))
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().trim_end_matches(" kB").trim().to_string()))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn run_bench(args: BenchArgs) -> anyhow::Result<()> {
    args.validate()?;
    // Interrupted, the run is dropped where it stands, and with it the Redis servers it started
    // (each stopped by PID as it drops); exiting on the signal itself would leave them running.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = measure(args) => r,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted (SIGINT); the Redis servers it started are stopped"),
        _ = term.recv() => anyhow::bail!("terminated (SIGTERM); the Redis servers it started are stopped"),
    }
}

async fn measure(args: BenchArgs) -> anyhow::Result<()> {
    let ceiling = {
        let redis = local_redis();
        println!("ceiling: measuring Redis on this machine ({CEILING_CLIENTS} clients, 3 s each) ...");
        let (ping, evalsha) = redis_ceiling(&redis.url, CEILING_CLIENTS, Duration::from_secs(3)).await?;
        println!("ceiling: measuring a no-op gRPC call on this machine ({CEILING_CLIENTS} clients, 3 s) ...");
        let (grpc_calls, grpc_cpu_us) = grpc_ceiling(CEILING_CLIENTS, Duration::from_secs(3)).await?;
        Ceiling { ping, evalsha, grpc_calls, grpc_cpu_us }
    };
    std::fs::create_dir_all(&args.out)?;
    if !args.sweep {
        let rows = point(&args, args.rate).await?;
        let md = report(&args, &rows, ceiling);
        print!("{md}");
        std::fs::write(args.out.join("bench.md"), &md)?;
        std::fs::write(args.out.join("bench.csv"), csv(&rows, ceiling))?;
        println!("\nwritten: {0}/bench.md, {0}/bench.csv", args.out.display());
        return Ok(());
    }
    let rate = if args.rate == 0 { 500 } else { args.rate };
    // One paced rate a point keeps a sweep's points comparable and its run time bounded.
    let base = BenchArgs { latency_rates: Vec::new(), ..args.clone() };
    let mut series: Vec<(&str, Vec<(u64, BenchArgs)>)> = Vec::new();
    let vary = |f: &dyn Fn(&mut BenchArgs, u64), xs: &[u64]| {
        xs.iter()
            .map(|&x| {
                let mut a = base.clone();
                f(&mut a, x);
                (x, a)
            })
            .collect::<Vec<_>>()
    };
    series.push(("agents", vary(&|a, x| a.agents = x as usize, &[1_000, 10_000, 50_000])));
    series.push(("waiting", vary(&|a, x| a.backlog = x as usize, &[1_000, 10_000, 100_000])));
    series.push(("skill combinations", vary(&|a, x| a.combos = x as usize, &[10, 100, 1_000])));
    let mut all = Vec::new();
    for (name, points) in series {
        for (x, a) in points {
            println!("\nsweep: {name} = {x}");
            let mut rows = point(&a, rate).await?;
            for r in &mut rows {
                r.series = name.to_string();
                r.x = x;
            }
            all.extend(rows);
            // Each point's table as it comes, so a long sweep shows progress.
            std::fs::write(args.out.join("sweep.md"), sweep_report(&args, &all, ceiling, rate))?;
            std::fs::write(args.out.join("sweep.csv"), csv(&all, ceiling))?;
        }
    }
    plot(&all, &args.out.join("sweep.svg"), rate)?;
    print!("{}", sweep_report(&args, &all, ceiling, rate));
    println!("\nwritten: {0}/sweep.md, {0}/sweep.csv, {0}/sweep.svg", args.out.display());
    Ok(())
}

fn ceiling_line(ceiling: Ceiling) -> String {
    format!(
        "Redis ceiling on this machine, measured in the same run: {:.0} round trips/s (PING, {} clients), \
         {:.0} EVALSHA/s (a 6-command script). gRPC: {:.0} no-op unary calls/s, {:.0} µs CPU per call \
         (health `Check`, {} clients over {} connections, the daemon's tonic setup; client and server CPU, \
         as in \"daemon+desktops CPU\"). A decision through the API takes three requests (create, accept, \
         complete) and a stream message.\n\n",
        ceiling.ping,
        CEILING_CLIENTS,
        ceiling.evalsha,
        ceiling.grpc_calls,
        ceiling.grpc_cpu_us,
        CEILING_CLIENTS,
        CEILING_CLIENTS.div_ceil(GRPC_CALLERS_PER_CHANNEL)
    )
}

const TABLE_HEAD: &str = "| phase | agents | skill sets | waiting | decisions | decisions/s | % of EVALSHA ceiling | p50 ms | p99 ms | p99.9 ms | Redis round trips/decision | Redis commands/decision | Redis CPU µs/decision | daemon+desktops CPU µs/decision |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";

fn table_row(r: &Row, ceiling: Ceiling) -> String {
    let lat = |v: f64| if r.p50_ms == 0.0 { "–".to_string() } else { format!("{v:.2}") };
    format!(
        "| {} | {} | {} | {} | {} | {:.0} | {:.0} % | {} | {} | {} | {:.2} | {:.1} | {:.0} | {:.0} |\n",
        r.phase,
        r.agents,
        r.combos,
        r.waiting,
        r.decisions,
        r.per_sec,
        100.0 * r.per_sec / ceiling.evalsha.max(1.0),
        lat(r.p50_ms),
        lat(r.p99_ms),
        lat(r.p999_ms),
        r.round_trips,
        r.commands,
        r.redis_cpu_us,
        r.own_cpu_us
    )
}

const ROLES_HEAD: &str = "| phase | routing round trips/decision | of which the hub's | agent actions | arrivals | other | total |\n|---|---|---|---|---|---|---|\n";

fn roles_row(label: &str, r: &Row) -> String {
    let o = &r.roles;
    format!(
        "| {label} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
        o.routing, o.hub, o.agent, o.arrivals, o.other, r.round_trips
    )
}

const ROLES_NOTE: &str = "\nRedis round trips per decision, by role. Routing: the script run that makes the phase's \
decisions (create; a presence change to ready; complete for \"freed → next offer\") and the hub's round trips \
delivering the offer (its inbox reads, the one pipelined read of what a batch of pushes refers to, the occasional \
inbox trim). An offer made by the agent's own request (going ready, a completion) comes back with its reply: the \
hub has no part in it. Agent actions: accept, and complete where it is not the deciding script. Arrivals: creates that are \
not the deciding script (new interactions keeping the backlog). Other: the rest (timers, heartbeats). Each \
request counted is one script run; the few still in flight at a phase's end may move between phases.\n\n";

const SPLIT_NOTE: &str = "\nWhere the latency goes, split where the function call that decides starts running in \
Redis (its clock reading is the interaction's \"offered\" timestamp). Before: from the phase's start (the create \
handed to Redis; the completion leaving the desktop) to then: the request on its way to the daemon and Redis, and \
its wait there. After: the function's run, the hub's read of its push (for an offer made by a create; one made by \
the agent's own completion comes back with the reply) and the agent's stream, to the offer on the desktop. The timestamp is in whole milliseconds, so each part is off by up to half of one. The last two columns are the means of \
each part over the slowest 1 % of the phase's decisions. Stolen: the share of the machine's CPU time the \
hypervisor gave to other guests during the phase (/proc/stat); on a shared virtual machine it shows as latency \
the code did not cause.\n\n";

const SPLIT_HEAD: &str = "| phase | before the deciding call runs p50 ms | p99 ms | from its run to the desktop p50 ms | p99 ms | slowest 1 %: before, mean ms | after, mean ms | CPU stolen % |\n|---|---|---|---|---|---|---|---|\n";

fn split_row(label: &str, r: &Row) -> String {
    match r.split {
        Some(s) => format!(
            "| {label} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} |\n",
            s.before_p50, s.before_p99, s.after_p50, s.after_p99, s.slow_before, s.slow_after, r.steal_pct
        ),
        None => String::new(),
    }
}

const SLOW_NOTE: &str = "\nCalls that ran 2 ms or more inside Redis during the phase (its slow log): how many, the \
longest, and which. Redis runs one call at a time, so every request arriving meanwhile waits for it; latency \
with none here was spent outside Redis (the network, the daemon, the desktop, the hypervisor).\n\n";

const SLOW_HEAD: &str = "| phase | calls ≥ 2 ms | longest ms | which (count, longest ms) |\n|---|---|---|---|\n";

fn slow_row(label: &str, r: &Row) -> String {
    format!("| {label} | {} |\n", slow_cells(&r.slow))
}

/// How many, the longest (ms), and by what: count and longest, the most frequent first.
fn slow_cells(slow: &[(u64, String)]) -> String {
    let mut by: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    for (us, what) in slow {
        let e = by.entry(what.as_str()).or_default();
        e.0 += 1;
        e.1 = e.1.max(*us);
    }
    let mut by: Vec<_> = by.into_iter().collect();
    by.sort_by_key(|y| std::cmp::Reverse(y.1));
    let which: Vec<String> = by.iter().map(|(w, (n, us))| format!("{w} {n} ({:.1})", *us as f64 / 1000.0)).collect();
    let longest = slow.iter().map(|s| s.0).max().unwrap_or(0) as f64 / 1000.0;
    format!("{} | {longest:.1} | {}", slow.len(), which.join(", "))
}

fn report(args: &BenchArgs, rows: &[Row], ceiling: Ceiling) -> String {
    let mut md = ceiling_line(ceiling);
    md.push_str(TABLE_HEAD);
    for r in rows {
        md.push_str(&table_row(r, ceiling));
    }
    md.push_str(ROLES_NOTE);
    md.push_str(ROLES_HEAD);
    for r in rows {
        md.push_str(&roles_row(&r.phase, r));
    }
    md.push_str(SPLIT_NOTE);
    md.push_str(SPLIT_HEAD);
    for r in rows {
        md.push_str(&split_row(&r.phase, r));
    }
    md.push_str(SLOW_NOTE);
    md.push_str(SLOW_HEAD);
    for r in rows {
        md.push_str(&slow_row(&r.phase, r));
    }
    if let Some(r) = rows.first() {
        md.push_str(&format!(
            "\nRedis memory per waiting interaction (no message bodies): {:.0} bytes: {:.0} of the interaction's own \
             state (its hash, waiting-set and queue-index entries) and {:.0} of event-log entries not yet delivered \
             (trimmed once the CRM has them; this run has no CRM). \
             Process memory per connected agent stream (daemon and benchmark desktop in one process): {:.1} KiB.\n",
            r.mem_per_waiting,
            r.mem_per_waiting - r.events_per_waiting,
            r.events_per_waiting,
            r.kib_per_agent
        ));
    }
    md.push_str("\nRedis commands per decision, by command (those inside scripts included): calls, and Redis µs.\n\n");
    for r in rows {
        let parts: Vec<String> = r.by_command.iter().map(|(c, n, us)| format!("{c} {n:.1} ({us:.0} µs)")).collect();
        md.push_str(&format!("- {}: {}\n", r.phase, parts.join(", ")));
    }
    md.push_str(&settings(args));
    md
}

fn settings(args: &BenchArgs) -> String {
    format!(
        "\nSettings: {} agents, {} queues, {} skills, skill sets {} (0: each agent its own), {} decisions a phase, \
         {} waiting, {} creators, seed {}. A decision is an offer delivered on an agent's desktop stream. \
         \"max\" phases run open loop as fast as they can (throughput; their latency includes queueing); paced phases \
         run at the rate shown (latency). \"freed → next offer\": from a completion leaving the desktop to the \
         offer on that channel of an interaction already waiting then (a completion that found nothing of its channel \
         waiting in its queues is not counted). Per-decision figures count all the phase's work (creating, offering, accepting, \
         completing) divided by its offers; Redis commands include those run inside scripts, round trips are counted \
         as they leave the process (a pipeline is one).\n",
        args.agents,
        args.queues,
        args.skills,
        args.combos,
        args.interactions,
        args.backlog,
        args.concurrency,
        args.seed
    )
}

fn csv(rows: &[Row], ceiling: Ceiling) -> String {
    let mut csv = String::from(
        "series,x,phase,agents,skill_sets,waiting,decisions,decisions_per_s,ceiling_ratio,p50_ms,p99_ms,p999_ms,\
         round_trips_per_decision,commands_per_decision,redis_cpu_us_per_decision,process_cpu_us_per_decision,\
         redis_bytes_per_waiting,redis_event_log_bytes_per_waiting,kib_per_agent_stream,routing_round_trips_per_decision,hub_round_trips_per_decision,\
         agent_round_trips_per_decision,arrival_round_trips_per_decision,other_round_trips_per_decision,\
         grpc_noop_calls_per_s,grpc_cpu_us_per_call,before_decision_p50_ms,before_decision_p99_ms,\
         after_decision_p50_ms,after_decision_p99_ms,cpu_stolen_pct\n",
    );
    for r in rows {
        csv.push_str(&format!(
            // Phase names hold commas ("created → offered, max").
            "{},{},\"{}\",{},{},{},{},{:.1},{:.4},{:.3},{:.3},{:.3},{:.3},{:.2},{:.1},{:.1},{:.0},{:.0},{:.1},{:.3},{:.3},{:.3},{:.3},{:.3},{:.0},{:.1},{},{:.1}\n",
            r.series,
            r.x,
            r.phase,
            r.agents,
            r.combos,
            r.waiting,
            r.decisions,
            r.per_sec,
            r.per_sec / ceiling.evalsha.max(1.0),
            r.p50_ms,
            r.p99_ms,
            r.p999_ms,
            r.round_trips,
            r.commands,
            r.redis_cpu_us,
            r.own_cpu_us,
            r.mem_per_waiting,
            r.events_per_waiting,
            r.kib_per_agent,
            r.roles.routing,
            r.roles.hub,
            r.roles.agent,
            r.roles.arrivals,
            r.roles.other,
            ceiling.grpc_calls,
            ceiling.grpc_cpu_us,
            r.split.map_or(",,,".to_string(), |s| format!(
                "{:.3},{:.3},{:.3},{:.3}",
                s.before_p50, s.before_p99, s.after_p50, s.after_p99
            )),
            r.steal_pct
        ));
    }
    csv
}

fn sweep_report(args: &BenchArgs, rows: &[Row], ceiling: Ceiling, rate: u32) -> String {
    let mut md = ceiling_line(ceiling);
    md.push_str(&format!(
        "Paced phases at {rate}/s. Latency against scale: `sweep.svg`. Each point is a fresh Redis and daemon.\n"
    ));
    let mut series: Vec<&str> = Vec::new();
    for r in rows {
        if !series.contains(&r.series.as_str()) {
            series.push(&r.series);
        }
    }
    for s in series {
        md.push_str(&format!("\n### As {s} grow\n\n"));
        md.push_str(TABLE_HEAD);
        for r in rows.iter().filter(|r| r.series == s) {
            md.push_str(&table_row(r, ceiling));
        }
        // The per-phase tables again, with a column for the series' scale.
        for (title, head, row) in [
            ("Redis round trips per decision, by role", ROLES_HEAD, roles_row as fn(&str, &Row) -> String),
            ("Where the latency goes", SPLIT_HEAD, split_row),
            ("Calls that ran 2 ms or more inside Redis", SLOW_HEAD, slow_row),
        ] {
            md.push_str(&format!("\n{title} (see below).\n\n"));
            md.push_str(&head.replacen("| phase |", &format!("| {s} | phase |"), 1).replacen("|---|", "|---|---|", 1));
            for r in rows.iter().filter(|r| r.series == s) {
                md.push_str(&row(&format!("{} | {}", r.x, r.phase), r));
            }
        }
        md.push('\n');
        for r in rows.iter().filter(|r| r.series == s && r.phase.starts_with("created → offered, max")) {
            md.push_str(&format!(
                "- {s} = {}: {:.0} bytes of Redis per waiting interaction ({:.0} of state, {:.0} of undelivered \
                 event log), {:.1} KiB per agent stream\n",
                r.x,
                r.mem_per_waiting,
                r.mem_per_waiting - r.events_per_waiting,
                r.events_per_waiting,
                r.kib_per_agent
            ));
        }
    }
    md.push_str(ROLES_NOTE.trim_end());
    md.push_str(SPLIT_NOTE.trim_end());
    md.push_str(SLOW_NOTE.trim_end());
    md.push_str(
        "\n\nKiB per agent stream is the growth of this process's memory while a point's desktops log in. All points \
         run in one process, so after the first (1,000 agents) a point reuses memory freed by earlier ones and reads \
         low; the headline run measures it in a fresh process.\n",
    );
    md.push_str(&settings(args));
    md
}

/// p50 and p99 of the paced phases against each series' scale, one panel per series.
fn plot(rows: &[Row], path: &std::path::Path, rate: u32) -> anyhow::Result<()> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (1500, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(&format!("Routing latency against scale (paced at {rate}/s)"), ("sans-serif", 22))?;
    let series = ["agents", "waiting", "skill combinations"];
    let panels = root.split_evenly((1, series.len()));
    let lines: [(&str, &str, bool, RGBColor); 4] = [
        ("created → offered p99", "created → offered at", true, RGBColor(200, 60, 40)),
        ("created → offered p50", "created → offered at", false, RGBColor(240, 150, 120)),
        ("freed → next offer p99", "freed → next offer at", true, RGBColor(40, 90, 200)),
        ("freed → next offer p50", "freed → next offer at", false, RGBColor(120, 160, 240)),
    ];
    for (panel, name) in panels.iter().zip(series) {
        let pts: Vec<&Row> = rows.iter().filter(|r| r.series == name).collect();
        if pts.is_empty() {
            continue;
        }
        let xmin = pts.iter().map(|r| r.x).min().unwrap_or(1).max(1) as f64;
        let xmax = pts.iter().map(|r| r.x).max().unwrap_or(10).max(2) as f64;
        let ymax = pts.iter().filter(|r| r.phase.contains(" at ")).map(|r| r.p99_ms).fold(1.0_f64, f64::max) * 1.2;
        let mut chart = ChartBuilder::on(panel)
            .margin(18)
            .caption(format!("as {name} grow"), ("sans-serif", 18))
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d((xmin * 0.8..xmax * 1.25).log_scale(), 0.0..ymax)?;
        chart.configure_mesh().x_desc(name).y_desc("latency, ms").draw()?;
        for (label, phase, p99, color) in lines {
            let data: Vec<(f64, f64)> = pts
                .iter()
                .filter(|r| r.phase.starts_with(phase))
                .map(|r| (r.x as f64, if p99 { r.p99_ms } else { r.p50_ms }))
                .collect();
            chart
                .draw_series(LineSeries::new(data.clone(), color.stroke_width(2)))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2)));
            chart.draw_series(data.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_calls_are_counted_by_what_most_frequent_first() {
        let slow = [(2500, "complete"), (12_400, "accept"), (3100, "complete"), (2000, "hset")]
            .map(|(us, w)| (us, w.to_string()));
        assert_eq!(slow_cells(&slow), "4 | 12.4 | complete 2 (3.1), accept 1 (12.4), hset 1 (2.0)");
        assert_eq!(slow_cells(&[]), "0 | 0.0 | ");
    }

    #[test]
    fn slow_log_entries_are_named_by_operation_or_command() {
        use redis::Value::{Array, BulkString, Int};
        let entry = |us: i64, argv: &[&str]| {
            Array(vec![
                Int(7),
                Int(1_790_000_000),
                Int(us),
                Array(argv.iter().map(|a| BulkString(a.as_bytes().to_vec())).collect()),
                BulkString(b"127.0.0.1:40000".to_vec()),
                BulkString(Vec::new()),
            ])
        };
        let got = slow_entries(vec![
            entry(2500, &["FCALL", "sb_3f2a9c_complete", "4", "k1"]),
            entry(14_100, &["SISMEMBER", "sb:q:x", "i"]),
            entry(2100, &["hgetall", "sb:ix:1"]),
            // Not an entry: skipped.
            Int(3),
        ]);
        assert_eq!(
            got,
            [(2500, "complete".to_string()), (14_100, "sismember".to_string()), (2100, "hgetall".to_string())]
        );
    }
}
