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
    /// Calls that ran 2 ms or longer in Redis since the previous snapshot: (µs, what).
    pub slow: Vec<(u64, String)>,
}

/// Script-running requests the benchmark has sent so far.
#[derive(Clone, Copy, Default)]
pub struct Sent {
    pub creates: u64,
    pub presence_changes: u64,
    pub accepts: u64,
    pub completes: u64,
}

impl Sent {
    fn add(&mut self, shared: &Shared) {
        self.creates += shared.creates.load(Relaxed);
        self.presence_changes += shared.presence_changes.load(Relaxed);
        self.accepts += shared.accepts.load(Relaxed);
        self.completes += shared.completes.load(Relaxed);
    }
}

pub async fn snap(con: &mut redis::aio::MultiplexedConnection, shared: &Shared) -> anyhow::Result<Snap> {
    snap_all(std::slice::from_mut(con), &[shared]).await
}

/// The same over several Redis servers (the shards of a cluster) and the desktops of several
/// daemons (one per routing domain): their counts added up.
pub async fn snap_all(cons: &mut [redis::aio::MultiplexedConnection], shared: &[&Shared]) -> anyhow::Result<Snap> {
    let (mut calls, mut usec, mut redis_cpu, mut slow) = (BTreeMap::new(), BTreeMap::new(), 0, Vec::new());
    for con in cons.iter_mut() {
        let stats = redis_info(con, "commandstats").await?;
        let cpu = redis_info(con, "cpu").await?;
        for (sum, field) in [(&mut calls, "calls"), (&mut usec, "usec")] {
            for (k, v) in commandstats_field(&stats, field) {
                *sum.entry(k).or_insert(0) += v;
            }
        }
        redis_cpu += redis_cpu_us(&cpu);
        slow.extend(slow_calls(con).await?);
    }
    let rt = switchboard_engine::round_trips();
    let mut sent = Sent::default();
    for s in shared {
        sent.add(s);
    }
    Ok(Snap {
        at: Instant::now(),
        offers: shared.iter().map(|s| s.offers()).sum(),
        calls,
        usec,
        redis_cpu_us: redis_cpu,
        own_cpu_us: own_cpu_us(),
        round_trips: rt.all,
        hub_round_trips: rt.readers,
        sent,
        machine_ticks: machine_ticks(),
        slow,
    })
}
