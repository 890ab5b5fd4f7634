//! `switchboard bench`: routing throughput and latency through the real path — the same Lua
//! scripts, the same gRPC desktop streams — against a Redis it starts itself, next to Redis's
//! own ceiling on the same machine.
//!
//! A benchmark, not a test: it reports figures and never fails because the machine is slow.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::api::pb;
use crate::api::pb::agent_event::Kind as Ev;
use crate::api::pb::agent_request::Kind as Rq;
use crate::config::Config;
use crate::model::{AgentSpec, Capacity, Channel, NewInteraction, Presence, QueueSpec, Requirement};
use crate::store::{Store, StoreOptions};

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// Agents with a desktop stream each.
    #[arg(long, default_value_t = 1000)]
    pub agents: usize,
    #[arg(long, default_value_t = 20)]
    pub queues: usize,
    #[arg(long, default_value_t = 50)]
    pub skills: usize,
    /// Interactions created while agents are free (created → offered).
    #[arg(long, default_value_t = 5000)]
    pub interactions: usize,
    /// Interactions waiting before agents become ready (freed → next offer, memory per waiting).
    #[arg(long, default_value_t = 10000)]
    pub backlog: usize,
    /// Concurrent creators.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Create the "created → offered" interactions at this many per second (open loop), so its
    /// latency is measured at a load the system sustains; 0: as fast as the creators can (the
    /// throughput figure, with queueing in the latency).
    #[arg(long, default_value_t = 0)]
    pub rate: u32,
    /// In the "freed → next offer" phase, how long a desktop holds an interaction between accept
    /// and complete. 0: completes at once (a closed loop at full load, so that phase's latency is
    /// then mostly queueing).
    #[arg(long, default_value_t = 0)]
    pub handle_ms: u64,
    /// Where the report goes (markdown and CSV).
    #[arg(long, default_value = "results")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// A redis-server of our own on a free loopback port, stopped by PID.
struct LocalRedis {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl LocalRedis {
    fn start() -> anyhow::Result<LocalRedis> {
        let dir = tempfile::tempdir()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server (run scripts/setup-debian.sh)")?;
        let url = format!("redis://127.0.0.1:{port}/");
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(LocalRedis { child, url, _dir: dir });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("redis-server did not start")
    }
}

impl Drop for LocalRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

#[derive(Default)]
struct Shared {
    created_to_offer: Mutex<Option<Histogram<u64>>>,
    freed_to_offer: Mutex<Option<Histogram<u64>>>,
    offers: std::sync::atomic::AtomicU64,
    /// How long desktops hold an interaction before completing it (set per phase).
    hold_ms: std::sync::atomic::AtomicU64,
    /// "freed → next offer" is recorded only while the offers made are below this: near the end
    /// of the backlog a freed desktop may find nothing it can take, and its next offer (much
    /// later) would not measure routing.
    freed_cutoff: std::sync::atomic::AtomicU64,
}

fn record(h: &Mutex<Option<Histogram<u64>>>, us: u64) {
    let mut g = h.lock().expect("histogram lock");
    let _ = g.get_or_insert_with(hist).record(us.max(1));
}

async fn redis_info(con: &mut redis::aio::MultiplexedConnection, section: &str) -> anyhow::Result<String> {
    Ok(redis::cmd("INFO").arg(section).query_async(con).await?)
}

fn info_field(info: &str, key: &str) -> u64 {
    info.lines().find_map(|l| l.strip_prefix(&format!("{key}:"))).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// Sum of `calls=` over commandstats: commands including those run inside scripts.
fn commandstats_calls(info: &str) -> u64 {
    command_counts(info).values().sum()
}

/// Calls per command from `INFO commandstats` (`cmdstat_zadd:calls=12,...`).
fn command_counts(info: &str) -> std::collections::BTreeMap<String, u64> {
    info.lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest.split("calls=").nth(1)?.split(',').next()?.parse().ok()?;
            Some((name.to_string(), calls))
        })
        .collect()
}

/// The commands that make up a phase's Redis work, per decision, biggest first.
fn breakdown(
    before: &std::collections::BTreeMap<String, u64>,
    after: &std::collections::BTreeMap<String, u64>,
    decisions: u64,
) -> Vec<(String, f64)> {
    let mut v: Vec<(String, f64)> = after
        .iter()
        .map(|(k, n)| (k.clone(), n.saturating_sub(*before.get(k).unwrap_or(&0)) as f64 / decisions.max(1) as f64))
        .filter(|(_, n)| *n >= 0.05)
        .collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v
}

/// Redis's own ceiling: ops/s for a plain round trip and for an EVALSHA of comparable work.
async fn ceiling(url: &str, clients: usize, dur: Duration) -> anyhow::Result<(f64, f64)> {
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

/// One desktop: accept and complete every offer at once, recording latencies.
async fn desktop(
    channel: tonic::transport::Channel,
    agent: String,
    shared: Arc<Shared>,
    stop: CancellationToken,
    ready: mpsc::Sender<()>,
) -> anyhow::Result<()> {
    let mut client = pb::agent_desktop_client::AgentDesktopClient::new(channel);
    let (tx, rx) = mpsc::channel(16);
    let token = format!("tok-{agent}");
    tx.send(pb::AgentRequest {
        request_id: "login".into(),
        kind: Some(Rq::Login(pb::Login { agent_id: agent.clone(), token })),
    })
    .await?;
    let mut events = client.session(tokio_stream::wrappers::ReceiverStream::new(rx)).await?.into_inner();
    let mut logged_in = false;
    let agent_salt = agent.bytes().fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b))) as f64 / 1e3;
    // Set when a completion leaves (possibly from a delayed task), taken by the next offer.
    let freed_at: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
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
                let received = Instant::now();
                let ix = o.interaction.unwrap_or_default();
                if let Some(at) = ix.enqueued_at {
                    let enq = (at.seconds as u64) * 1000 + (at.nanos as u64) / 1_000_000;
                    record(&shared.created_to_offer, now_ms().saturating_sub(enq) * 1000);
                }
                let counting = offers(&shared) < shared.freed_cutoff.load(std::sync::atomic::Ordering::Relaxed);
                if let Some(f) = freed_at.lock().expect("lock").take()
                    && counting
                {
                    record(&shared.freed_to_offer, received.duration_since(f).as_micros() as u64);
                }
                shared.offers.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                n += 1;
                tx.send(pb::AgentRequest {
                    request_id: format!("a{n}"),
                    kind: Some(Rq::Accept(pb::AcceptOffer { interaction_id: ix.id.clone() })),
                })
                .await?;
                n += 1;
                let complete = pb::AgentRequest {
                    request_id: format!("c{n}"),
                    kind: Some(Rq::Complete(pb::CompleteInteraction {
                        interaction_id: ix.id,
                        disposition: "bench".into(),
                        notes: String::new(),
                    })),
                };
                let (tx, freed_at) = (tx.clone(), freed_at.clone());
                // Spread 0.5–1.5× around the mean, so desktops do not all complete in one burst.
                let spread = 0.5 + ((n as f64) * 0.618_033_988_75 + agent_salt).fract();
                let hold =
                    Duration::from_millis(shared.hold_ms.load(std::sync::atomic::Ordering::Relaxed)).mul_f64(spread);
                let send = async move {
                    if !hold.is_zero() {
                        tokio::time::sleep(hold).await;
                    }
                    // Freed from the moment the completion leaves: the next offer may overtake its ack.
                    *freed_at.lock().expect("lock") = Some(Instant::now());
                    tx.send(complete).await
                };
                if hold.is_zero() {
                    send.await?;
                } else {
                    tokio::spawn(send);
                }
            }
            _ => {}
        }
    }
}

struct Row {
    phase: String,
    agents: usize,
    waiting: usize,
    decisions: u64,
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    commands: f64,
    by_command: Vec<(String, f64)>,
}

impl Row {
    fn measured(
        phase: String,
        agents: usize,
        waiting: usize,
        decisions: u64,
        started: Instant,
        commands: u64,
        latency: &Mutex<Option<Histogram<u64>>>,
    ) -> Row {
        let (p50_ms, p99_ms, p999_ms) = quantiles(&latency.lock().expect("histogram lock"));
        Row {
            phase,
            agents,
            waiting,
            decisions,
            per_sec: decisions as f64 / started.elapsed().as_secs_f64(),
            p50_ms,
            p99_ms,
            p999_ms,
            commands: commands as f64 / decisions.max(1) as f64,
            by_command: Vec::new(),
        }
    }
}

fn offers(shared: &Shared) -> u64 {
    shared.offers.load(std::sync::atomic::Ordering::Relaxed)
}

async fn set_all(store: &Store, agents: usize, presence: &Presence) -> anyhow::Result<()> {
    for a in 0..agents {
        store.set_presence(&format!("a{a}"), presence, "bench").await?;
    }
    Ok(())
}

/// Commands Redis has processed so far, those run inside scripts included.
async fn redis_commands(con: &mut redis::aio::MultiplexedConnection) -> anyhow::Result<u64> {
    let processed = info_field(&redis_info(con, "stats").await?, "total_commands_processed");
    Ok(processed.max(commandstats_calls(&redis_info(con, "commandstats").await?)))
}

fn quantiles(h: &Option<Histogram<u64>>) -> (f64, f64, f64) {
    match h {
        Some(h) => (
            h.value_at_quantile(0.5) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0,
            h.value_at_quantile(0.999) as f64 / 1000.0,
        ),
        None => (0.0, 0.0, 0.0),
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let redis = LocalRedis::start()?;
    let mut con = redis::Client::open(redis.url.as_str())?.get_multiplexed_async_connection().await?;
    println!("ceiling: measuring Redis on this machine (50 clients, 3 s each) ...");
    let (ping_ops, eval_ops) = ceiling(&redis.url, 50, Duration::from_secs(3)).await?;
    let _: () = redis::cmd("FLUSHALL").query_async(&mut con).await?;

    // The daemon, in-process, without a CRM: this measures routing.
    let mut cfg = Config::default();
    cfg.redis.url = redis.url.clone();
    cfg.crm.enabled = false;
    let store = Store::connect(&redis.url, StoreOptions::default()).await?;
    let mut rng = Rng(args.seed | 1);
    let skills: Vec<String> = (0..args.skills).map(|i| format!("s{i}")).collect();
    println!("setup: {} queues, {} agents, {} skills ...", args.queues, args.agents, args.skills);
    for q in 0..args.queues {
        let mut spec = QueueSpec::new(format!("q{q}"));
        spec.channels = vec![Channel::Chat, Channel::Email, Channel::Sms];
        spec.requirements =
            vec![Requirement { skill: skills[q % skills.len()].clone(), min_level: 1 + rng.below(3) as u32 }];
        store.put_queue(&spec, true).await?;
    }
    for a in 0..args.agents {
        // Every queue's skill is held by several agents; 1–5 skills each.
        let mut own = std::collections::BTreeMap::new();
        own.insert(skills[a % args.queues.min(skills.len())].clone(), 3 + rng.below(8) as u32);
        for _ in 0..rng.below(5) {
            own.insert(skills[rng.below(skills.len() as u64) as usize].clone(), 1 + rng.below(10) as u32);
        }
        let spec = AgentSpec {
            id: format!("a{a}"),
            name: format!("Agent {a}"),
            skills: own,
            capacity: Capacity {
                voice: 0,
                chat: 1 + rng.below(3) as u32,
                sms: 1 + rng.below(3) as u32,
                email: 1 + rng.below(5) as u32,
            },
            cross_channel_blocking: None,
            token: format!("tok-a{a}"),
        };
        store.put_agent(&spec, true).await?;
    }

    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", grpc.local_addr()?);
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(crate::server::Server::new(cfg).run(grpc, http, shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let rss_before = rss_kib();
    let shared = Arc::new(Shared::default());
    let stop = CancellationToken::new();
    let (ready_tx, mut ready_rx) = mpsc::channel(args.agents.max(1));
    let mut channels = Vec::new();
    // Many streams per HTTP/2 connection, but not all on one.
    for _ in 0..args.agents.div_ceil(100) {
        channels.push(tonic::transport::Endpoint::from_shared(endpoint.clone())?.connect().await?);
    }
    for a in 0..args.agents {
        let ch = channels[a / 100].clone();
        tokio::spawn(desktop(ch, format!("a{a}"), shared.clone(), stop.clone(), ready_tx.clone()));
    }
    for _ in 0..args.agents {
        ready_rx.recv().await.context("a desktop failed to log in")?;
    }
    let rss_after = rss_kib();
    let mut rows = Vec::new();

    // Phase 1: agents free, interactions created → offered.
    set_all(&store, args.agents, &Presence::Ready).await?;
    let stats_before = command_counts(&redis_info(&mut con, "commandstats").await?);
    let (cmds, before, started) = (redis_commands(&mut con).await?, offers(&shared), Instant::now());
    create_many(&store, args.interactions, args.queues, args.concurrency, args.seed, args.rate).await?;
    wait_offers(&shared, before + args.interactions as u64, Duration::from_secs(120)).await;
    rows.push(Row::measured(
        if args.rate > 0 { format!("created → offered at {}/s", args.rate) } else { "created → offered".into() },
        args.agents,
        0,
        offers(&shared) - before,
        started,
        redis_commands(&mut con).await? - cmds,
        &shared.created_to_offer,
    ));
    let stats_after = command_counts(&redis_info(&mut con, "commandstats").await?);
    if let Some(r) = rows.last_mut() {
        r.by_command = breakdown(&stats_before, &stats_after, r.decisions);
    }

    // Phase 2: a backlog waits while nobody is ready; then everyone goes ready and drains it.
    set_all(&store, args.agents, &Presence::NotReady("bench".into())).await?;
    let mem_before = info_field(&redis_info(&mut con, "memory").await?, "used_memory");
    create_many(&store, args.backlog, args.queues, args.concurrency, args.seed + 1, 0).await?;
    let mem_after = info_field(&redis_info(&mut con, "memory").await?, "used_memory");
    *shared.freed_to_offer.lock().expect("lock") = None;
    shared.hold_ms.store(args.handle_ms, std::sync::atomic::Ordering::Relaxed);
    let cutoff = offers(&shared) + (args.backlog as u64) * 4 / 5;
    shared.freed_cutoff.store(cutoff, std::sync::atomic::Ordering::Relaxed);
    let stats_before = command_counts(&redis_info(&mut con, "commandstats").await?);
    let (cmds, before, started) = (redis_commands(&mut con).await?, offers(&shared), Instant::now());
    set_all(&store, args.agents, &Presence::Ready).await?;
    wait_offers(&shared, before + args.backlog as u64, Duration::from_secs(300)).await;
    rows.push(Row::measured(
        "freed → next offer".into(),
        args.agents,
        args.backlog,
        offers(&shared) - before,
        started,
        redis_commands(&mut con).await? - cmds,
        &shared.freed_to_offer,
    ));
    let stats_after = command_counts(&redis_info(&mut con, "commandstats").await?);
    if let Some(r) = rows.last_mut() {
        r.by_command = breakdown(&stats_before, &stats_after, r.decisions);
    }

    stop.cancel();
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;

    let mem_per_waiting = mem_after.saturating_sub(mem_before) as f64 / args.backlog.max(1) as f64;
    let kib_per_agent = rss_after.saturating_sub(rss_before) as f64 / args.agents.max(1) as f64;
    report(&args, &rows, ping_ops, eval_ops, mem_per_waiting, kib_per_agent)
}

/// `rate` > 0: interaction i is created no earlier than i / rate seconds after the start.
async fn create_many(
    store: &Store,
    n: usize,
    queues: usize,
    concurrency: usize,
    seed: u64,
    rate: u32,
) -> anyhow::Result<()> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for w in 0..concurrency.max(1) {
        let store = store.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng((seed + w as u64) * 2 + 1);
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(());
                }
                if rate > 0 {
                    tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / f64::from(rate))).await;
                }
                let channel = [Channel::Chat, Channel::Email, Channel::Sms][rng.below(3) as usize];
                let new = NewInteraction {
                    channel: Some(channel),
                    customer_address: format!("customer-{i}"),
                    queue: format!("q{}", rng.below(queues as u64)),
                    ..Default::default()
                };
                store.create_interaction(&new).await?;
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
    while shared.offers.load(std::sync::atomic::Ordering::Relaxed) < target && started.elapsed() < patience {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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

fn report(
    args: &BenchArgs,
    rows: &[Row],
    ping_ops: f64,
    eval_ops: f64,
    mem_per_waiting: f64,
    kib_per_agent: f64,
) -> anyhow::Result<()> {
    let mut md = String::new();
    md.push_str(&format!(
        "Redis ceiling on this machine: {ping_ops:.0} round trips/s (PING, 50 clients), {eval_ops:.0} EVALSHA/s (6-command script).\n\n"
    ));
    md.push_str("| phase | agents | waiting | decisions | decisions/s | % of EVALSHA ceiling | p50 ms | p99 ms | p99.9 ms | Redis commands/decision |\n");
    md.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
    let mut csv =
        String::from("phase,agents,waiting,decisions,decisions_per_s,ceiling_ratio,p50_ms,p99_ms,p999_ms,commands\n");
    for r in rows {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {:.0} | {:.0} % | {:.2} | {:.2} | {:.2} | {:.1} |\n",
            r.phase,
            r.agents,
            r.waiting,
            r.decisions,
            r.per_sec,
            100.0 * r.per_sec / eval_ops.max(1.0),
            r.p50_ms,
            r.p99_ms,
            r.p999_ms,
            r.commands
        ));
        csv.push_str(&format!(
            "{},{},{},{},{:.1},{:.4},{:.3},{:.3},{:.3},{:.2}\n",
            r.phase,
            r.agents,
            r.waiting,
            r.decisions,
            r.per_sec,
            r.per_sec / eval_ops.max(1.0),
            r.p50_ms,
            r.p99_ms,
            r.p999_ms,
            r.commands
        ));
    }
    md.push_str(&format!(
        "\nRedis memory per waiting interaction (no message bodies): {mem_per_waiting:.0} bytes. \
         Process memory per connected agent stream (server and benchmark client in one process): {kib_per_agent:.1} KiB.\n"
    ));
    md.push_str("\nRedis commands per decision, by command (those inside scripts included):\n\n");
    for r in rows {
        let parts: Vec<String> = r.by_command.iter().map(|(c, n)| format!("{c} {n:.1}")).collect();
        md.push_str(&format!("- {}: {}\n", r.phase, parts.join(", ")));
    }
    md.push_str(&format!(
        "\nSettings: {} agents, {} queues, {} skills, {} interactions, backlog {}, {} creators, seed {}, \
         rate {} (0: unpaced), handle {} ms. \
         Redis commands per decision count everything Redis processed during the phase (creators, the daemon's \
         scripts and reads, timers), divided by the offers made; latencies are measured on the desktop stream.\n",
        args.agents,
        args.queues,
        args.skills,
        args.interactions,
        args.backlog,
        args.concurrency,
        args.seed,
        args.rate,
        args.handle_ms
    ));
    print!("{md}");
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(args.out.join("bench.md"), &md)?;
    std::fs::write(args.out.join("bench.csv"), &csv)?;
    println!("\nwritten: {}/bench.md, {}/bench.csv", args.out.display(), args.out.display());
    Ok(())
}
