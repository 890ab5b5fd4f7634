//! One phase of a layout: every domain's creators at once, each domain's interactions offered,
//! accepted and completed on its own desktops; measured between two snapshots of all the layout's
//! Redis servers and desktops, with each Redis process's CPU read from /proc.

use std::sync::Mutex;
use std::time::Instant;

use super::figures::{DomainFigures, DomainLine, ShardLine};
use super::layout::Servers;
use super::stack::DomainStack;
use crate::args::BenchArgs;
use crate::procfs::{idle_ticks, own_cpu_us, pid_cpu_us};
use crate::row::{Decider, Row, Split};
use crate::sample::snap_all;
use crate::shared::{Shared, hist};

/// What /proc says at a phase's bounds: each shard's CPU, this process's, the machine's idle time.
struct Cpu {
    at: Instant,
    shards: Vec<u64>,
    own: u64,
    idle: (u64, u64),
}

impl Cpu {
    fn now(servers: &Servers) -> Cpu {
        Cpu {
            at: Instant::now(),
            shards: servers.shards.iter().map(|s| pid_cpu_us(s.pid)).collect(),
            own: own_cpu_us(),
            idle: idle_ticks(),
        }
    }
}

/// The phase at `rate` per domain (0: unpaced): its row, all domains together, with each domain's
/// and each shard's figures.
pub async fn phase(
    args: &BenchArgs,
    servers: &Servers,
    stacks: &mut [DomainStack],
    cons: &mut [redis::aio::MultiplexedConnection],
    rate: u32,
) -> anyhow::Result<Row> {
    let all: Vec<std::sync::Arc<Shared>> = stacks.iter().map(|s| s.shared.clone()).collect();
    let shared: Vec<&Shared> = all.iter().map(|s| &**s).collect();
    let a = snap_all(cons, &shared).await?;
    let cpu_a = Cpu::now(servers);
    let offers_a: Vec<u64> = shared.iter().map(|s| s.offers()).collect();
    let ends =
        futures::future::try_join_all(stacks.iter_mut().map(|s| s.run(args.interactions, args.concurrency, rate)))
            .await?;
    let cpu_b = Cpu::now(servers);
    let b = snap_all(cons, &shared).await?;
    let until = ends.iter().max().copied().unwrap_or(b.at);

    let mut merged = hist();
    let mut split = Vec::new();
    let mut domains = Vec::new();
    for (i, s) in stacks.iter().enumerate() {
        let h = s.shared.created_to_offer.lock().expect("lock");
        merged.add(&*h)?;
        split.extend(s.shared.split.lock().expect("lock").iter().copied());
        let decisions = s.shared.offers() - offers_a[i];
        let q = |x: f64| if h.is_empty() { 0.0 } else { h.value_at_quantile(x) as f64 / 1000.0 };
        domains.push(DomainLine {
            name: s.name.clone(),
            shard: servers.shards[s.shard].port,
            decisions,
            per_sec: decisions as f64 / ends[i].saturating_duration_since(a.at).as_secs_f64().max(1e-6),
            p50_ms: q(0.5),
            p99_ms: q(0.99),
            p999_ms: q(0.999),
        });
    }
    let secs = cpu_b.at.duration_since(cpu_a.at).as_secs_f64().max(1e-6);
    let mut shards: Vec<ShardLine> = servers
        .shards
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let cpu = cpu_b.shards[i].saturating_sub(cpu_a.shards[i]) as f64;
            let on: Vec<&DomainLine> =
                stacks.iter().zip(&domains).filter(|(st, _)| st.shard == i).map(|(_, d)| d).collect();
            let decisions: u64 = on.iter().map(|d| d.decisions).sum();
            ShardLine {
                port: s.port,
                domains: on.iter().map(|d| d.name.clone()).collect(),
                cpu_pct: 100.0 * cpu / 1e6 / secs,
                cpu_us_per_decision: cpu / decisions.max(1) as f64,
            }
        })
        .collect();
    // In the domains' order; a shard with none of them last.
    shards.sort_by_key(|s| {
        s.domains.first().and_then(|d| domains.iter().position(|l| &l.name == d)).unwrap_or(usize::MAX)
    });
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let (idle, ticks) = (cpu_b.idle.0.saturating_sub(cpu_a.idle.0), cpu_b.idle.1.saturating_sub(cpu_a.idle.1));

    let label = if rate == 0 {
        "created → offered, max".to_string()
    } else {
        format!("created → offered at {rate}/s a domain")
    };
    let label = format!("{}: {label}", servers.layout.label(stacks.len()));
    let mut row = Row::between(label, Decider::Create, &a, &b, Some(until), Some(&Mutex::new(merged)));
    row.split = Split::of(&split);
    row.agents = args.agents * stacks.len();
    row.domains = Some(DomainFigures {
        layout: servers.layout,
        rate,
        domains,
        shards,
        process_cpu_pct: 100.0 * cpu_b.own.saturating_sub(cpu_a.own) as f64 / 1e6 / secs,
        machine_busy_pct: 100.0 * (1.0 - idle as f64 / ticks.max(1) as f64),
        cores,
    });
    Ok(row)
}
