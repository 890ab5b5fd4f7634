//! Snapshots of what Redis and this process have done so far; a phase's figures are the difference
//! between two.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use crate::info::{commandstats_field, redis_cpu_us, redis_info};
use crate::procfs::{machine_ticks, own_cpu_us};
use crate::shared::Shared;
use crate::slowlog::slow_calls;

/// What Redis and this process have done so far; two of them bound a phase.
pub struct Snap {
    pub at: Instant,
    pub offers: u64,
    pub calls: BTreeMap<String, u64>,
    pub usec: BTreeMap<String, u64>,
    pub redis_cpu_us: u64,
    pub own_cpu_us: u64,
    pub round_trips: u64,
    /// Round trips of the hub (the task that reads the inbox and delivers pushes to the streams).
    pub hub_round_trips: u64,
    pub sent: Sent,
    /// The machine's CPU time so far: (stolen by the hypervisor, all), in ticks.
    pub machine_ticks: (u64, u64),
    /// Calls that ran SLOW_US or longer in Redis since the previous snapshot: (µs, what).
    pub slow: Vec<(u64, String)>,
}

/// Script-running requests the benchmark has sent so far.
#[derive(Clone, Copy)]
pub struct Sent {
    pub creates: u64,
    pub presence_changes: u64,
    pub accepts: u64,
    pub completes: u64,
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

pub async fn snap(con: &mut redis::aio::MultiplexedConnection, shared: &Shared) -> anyhow::Result<Snap> {
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
