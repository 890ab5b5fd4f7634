//! The routing-domains point: do domains contend? The same load per domain — `--agents` agents
//! with desktop streams, `--interactions` decisions a phase, created → offered → accepted →
//! completed, unpaced and then at each `--domain-rates` per domain — in three layouts, one after
//! the other, each with Redis and daemons of its own:
//!
//! 1. one domain on one standalone Redis (what the others are compared with);
//! 2. `--domain-count` domains on a Redis Cluster of three primaries (no replicas), named so that
//!    they spread evenly over the primaries, each with a daemon of its own (`redis.domain`), all
//!    at once;
//! 3. the same domains on one standalone Redis: the contention a cluster takes away.
//!
//! - `layout.rs`: the Redis servers of a layout and which domain lives on which.
//! - `stack.rs`: one domain's center, daemon and desktops.
//! - `phase.rs`: a phase over all of a layout's domains; each Redis process's CPU from /proc.
//! - `figures.rs`, `table.rs`: each domain's and shard's figures, their section of `bench.md`,
//!   their columns of `bench.csv` and `domains.csv`.

mod figures;
mod layout;
mod phase;
mod stack;
mod table;

use crate::args::BenchArgs;
use crate::center::center;
use crate::row::Row;
pub use figures::{DomainFigures, Layout};
use layout::Servers;
use stack::DomainStack;
pub use table::{DOMAINS_CSV_HEAD, domains_cells, domains_csv, domains_section};

/// The domains point: its rows, a phase of a layout each (all its domains together).
pub async fn point(args: &BenchArgs) -> anyhow::Result<Vec<Row>> {
    let rates: Vec<u32> = std::iter::once(0).chain(args.domain_rates.iter().copied().filter(|&r| r > 0)).collect();
    let c = center(args);
    println!(
        "domains point: {} agents a domain ({} skill sets, {} slots), {} queues ({} served); {} decisions a phase a domain; \
         1 domain on 1 Redis, then {} on a 3-shard cluster, then on 1 Redis",
        args.agents,
        c.combos,
        c.slots,
        args.queues,
        c.served.len(),
        args.interactions,
        args.domain_count
    );
    let mut rows = Vec::new();
    for layout in [Layout::Single, Layout::Cluster, Layout::OneRedis] {
        let servers = tokio::task::block_in_place(|| Servers::start(layout, args.domain_count));
        let mut stacks = Vec::new();
        for (name, shard) in &servers.domains {
            stacks
                .push(DomainStack::start(args, &servers.url, name, *shard, &c, rates.len() * args.interactions).await?);
        }
        let mut cons = Vec::new();
        for s in &servers.shards {
            cons.push(redis::Client::open(s.url.as_str())?.get_multiplexed_async_connection().await?);
        }
        let placed: Vec<String> =
            stacks.iter().map(|s| format!("{} on :{}", s.name, servers.shards[s.shard].port)).collect();
        println!("domains point: {} ({})", layout.label(stacks.len()), placed.join(", "));
        for &rate in &rates {
            let mut row = phase::phase(args, &servers, &mut stacks, &mut cons, rate).await?;
            row.combos = c.combos;
            rows.push(row);
        }
        for s in stacks {
            s.stop().await;
        }
    }
    Ok(rows)
}
