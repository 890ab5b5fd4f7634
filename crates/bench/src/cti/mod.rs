//! The CTI point: the benchmark as a telephony system on the CTI hook (`switchboard.cti.v1`),
//! against a fresh Redis and daemon of its own, with the same agents (each with a phone, taking
//! one call at a time) logged in on desktop streams. Two phases:
//!
//! - route rate (`route_rate.rs`): RouteCall for new calls, as fast as `--concurrency` callers
//!   get answers and then at each `--cti-rates`; request → answer latency, answers per second;
//!   every call rung is answered and released at once, so agents free up and the phase is steady.
//! - held call → ring (`held.rs`): every agent on a call, calls on hold; calls are released one
//!   by one and each freed agent's ring for a held call is timed on WatchRoutes.

mod calls;
mod figures;
mod held;
mod lifecycle;
mod platform;
mod route_rate;
mod table;
mod watch;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use switchboard::access::config::KeyConfig;
use switchboard::channels::voice::config::RoutingPoint;
use switchboard::model::{Presence, Role};
use switchboard_engine::{Engine, EngineOptions};

use crate::args::BenchArgs;
use crate::center::center;
use crate::daemon::Daemon;
use crate::desktop::log_in;
use crate::load::set_all;
use crate::row::Row;
use crate::shared::Shared;
use crate::slowlog::local_redis;
use calls::Calls;
pub use figures::CtiFigures;
use platform::{Platform, SYSTEM, telephony_key};
pub use table::{CTI_HEAD, CTI_NOTE, cti_row};

/// What the CTI phases run against.
struct CtiPhases<'a> {
    args: &'a BenchArgs,
    con: &'a mut redis::aio::MultiplexedConnection,
    shared: &'a Arc<Shared>,
    platform: Arc<Platform>,
    calls: Arc<Calls>,
    /// Queues some agent serves, and the number that reaches each (its routing point).
    served: Arc<Vec<String>>,
    lines: Arc<HashMap<String, String>>,
    /// Per agent (by number), a queue they serve.
    home: Arc<Vec<String>>,
}

/// The CTI point: its rows, one per phase and rate.
pub async fn point(args: &BenchArgs) -> anyhow::Result<Vec<Row>> {
    let redis = local_redis();
    let mut con = redis::Client::open(redis.url.as_str())?.get_multiplexed_async_connection().await?;
    let c = center(args).for_calls();
    // A routing point per queue, reached by its own number, as a platform's DNIS plan would be.
    let lines: HashMap<String, String> =
        c.queues.iter().enumerate().map(|(i, q)| (q.name.clone(), format!("+1 800 555 {i:04}"))).collect();
    println!(
        "cti point: {} agents with a phone each ({} skill sets), {} voice queues ({} served); {} calls a phase",
        args.agents,
        c.combos,
        args.queues,
        c.served.len(),
        args.interactions
    );
    let engine = Engine::connect(&redis.url, EngineOptions::default()).await?;
    c.put(&engine).await?;
    let key = telephony_key();
    let daemon = Daemon::start(&redis.url, |cfg| {
        cfg.auth.keys.push(KeyConfig {
            name: SYSTEM.into(),
            role: Role::Telephony,
            queues: Vec::new(),
            agent_id: String::new(),
            key: key.clone(),
            key_sha256: String::new(),
        });
        // All the load comes from one telephony key, which the per-caller limit (500 requests/s
        // by default) would cap: the unpaced phase and the set-up of the held-call phase measure
        // what the daemon does, not what its operator allows one system.
        cfg.server.rate_per_caller = 0;
        cfg.cti.default_destination = "sip:voicemail@bench.test".into();
        cfg.cti.routing_points = lines
            .iter()
            .map(|(q, number)| RoutingPoint {
                name: String::new(),
                dialled: vec![number.clone()],
                queue: q.clone(),
                priority: None,
            })
            .collect();
    })
    .await?;
    let shared = Arc::new(Shared::new(args.agents, 0));
    let stop = CancellationToken::new();
    log_in(&daemon.endpoint, args.agents, &shared, &stop).await?;
    set_all(&engine, &shared, args.agents, &Presence::Ready).await?;
    let platform = Arc::new(Platform::connect(&daemon.endpoint, &key, args.concurrency).await?);
    let calls = Arc::new(Calls::new());
    let routes = platform.watch().await?;
    tokio::spawn(watch::watch(platform.clone(), calls.clone(), routes, stop.clone()));

    let mut phases = CtiPhases {
        args,
        con: &mut con,
        shared: &shared,
        platform,
        calls,
        served: Arc::new(c.served.clone()),
        lines: Arc::new(lines),
        home: Arc::new(c.home.clone()),
    };
    let paced: Vec<u32> = args.cti_rates.iter().copied().filter(|&r| r > 0).collect();
    let mut rows = phases.route_rate(&paced).await?;
    // Freed one by one: at each paced rate, or as fast as releases go if none is given.
    let held_rates = if paced.is_empty() { vec![0] } else { paced };
    rows.extend(phases.held(&held_rates).await?);

    stop.cancel();
    daemon.stop().await;
    for r in &mut rows {
        r.agents = args.agents;
        r.combos = c.combos;
    }
    Ok(rows)
}

impl CtiPhases<'_> {
    /// The number of the routing point that reaches `queue`.
    fn dialled(&self, queue: &str) -> String {
        self.lines.get(queue).cloned().unwrap_or_default()
    }

    /// Prints the phase's first errors, if any, so a run with errors says what they were.
    fn show_errors(&self, label: &str) {
        for e in self.calls.take_errors() {
            println!("{label}: error: {e}");
        }
    }
}

/// Waits until `done` holds, or `patience` has passed.
async fn wait_for(done: impl Fn() -> bool, patience: Duration) {
    let started = Instant::now();
    while !done() && started.elapsed() < patience {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
