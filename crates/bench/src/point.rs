//! One measured point: a fresh Redis and daemon, the agents logged in, then the phases.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use switchboard_engine::{Engine, EngineOptions};

use crate::args::BenchArgs;
use crate::center::center;
use crate::daemon::Daemon;
use crate::desktop::log_in;
use crate::phase::Phases;
use crate::procfs::rss_kib;
use crate::row::Row;
use crate::shared::Shared;
use crate::slowlog::local_redis;

/// One measured point: a fresh Redis and daemon, the agents logged in, then the phases.
pub async fn point(args: &BenchArgs, rate: u32) -> anyhow::Result<Vec<Row>> {
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
    c.put(&engine).await?;
    let daemon = Daemon::start(&redis.url, |_| {}).await?;

    // Two phases (created, freed) at each rate: unpaced, the first paced, the further ones.
    let phases = 2 * (2 + args.latency_rates.len());
    let shared = Arc::new(Shared::new(args.agents, phases * n + backlog_total));
    let rss_before = rss_kib();
    let stop = CancellationToken::new();
    log_in(&daemon.endpoint, args.agents, &shared, &stop).await?;
    let kib_per_agent = rss_kib().saturating_sub(rss_before) as f64 / args.agents.max(1) as f64;
    let mut phases = Phases {
        args,
        engine: &engine,
        con: &mut con,
        shared: &shared,
        served: Arc::new(c.served.clone()),
        next_ix: 0,
    };
    let (mut rows, rates) = phases.created(rate).await?;
    let backlog = phases.backlog(backlog_total).await?;
    rows.push(backlog.row);
    rows.extend(phases.freed(&rates, backlog.waiting).await?);

    stop.cancel();
    daemon.stop().await;
    for r in &mut rows {
        r.agents = args.agents;
        r.combos = c.combos;
        r.mem_per_waiting = backlog.mem_per_waiting;
        r.events_per_waiting = backlog.events_per_waiting;
        r.kib_per_agent = kib_per_agent;
    }
    Ok(rows)
}
