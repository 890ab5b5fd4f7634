//! A point's three phases, each measured between two snapshots: interactions created → offered to
//! free agents; a backlog offered as everyone goes ready; freed slots → the next waiting interaction.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use switchboard::model::Presence;
use switchboard_engine::Engine;

use crate::args::BenchArgs;
use crate::desktop::complete_held;
use crate::info::{info_field, memory_usage, redis_info};
use crate::load::{create_many, set_all};
use crate::row::{Decider, Row, Split};
use crate::sample::snap;
use crate::shared::Shared;

/// What the phases run against: the point's engine, its desktops (through `shared`) and a
/// connection of their own for Redis's counters.
pub struct Phases<'a> {
    pub args: &'a BenchArgs,
    pub engine: &'a Engine,
    pub con: &'a mut redis::aio::MultiplexedConnection,
    pub shared: &'a Arc<Shared>,
    /// Queues some agent can serve (interactions go only there).
    pub served: Arc<Vec<String>>,
    /// The next interaction to create (customer `c{i}`): each phase creates its own.
    pub next_ix: usize,
}

/// What the backlog phase measured besides its row.
pub struct Backlog {
    pub row: Row,
    /// Interactions still waiting once the agents are full.
    pub waiting: usize,
    /// Redis bytes per waiting interaction, and of those the event log's.
    pub mem_per_waiting: f64,
    pub events_per_waiting: f64,
}

impl Phases<'_> {
    /// Phase 1: agents free, interactions created → offered (then completed at once), unpaced and
    /// then at each paced rate. Returns its rows and those rates (0 for unpaced), which phase 3
    /// runs at too.
    pub async fn created(&mut self, rate: u32) -> anyhow::Result<(Vec<Row>, Vec<u32>)> {
        let (args, engine, shared, n) = (self.args, self.engine, self.shared, self.args.interactions);
        let mut rows = Vec::new();
        set_all(engine, shared, args.agents, &Presence::Ready).await?;
        shared.measure_created.store(true, Relaxed);
        let latency_rates = &args.latency_rates;
        // Unpaced first (0); the paced rates follow once the unpaced throughput is known.
        let mut rates = vec![0];
        let mut i = 0;
        while let Some(&r) = rates.get(i) {
            let paced = r > 0;
            shared.created_to_offer.lock().expect("lock").reset();
            shared.split.lock().expect("lock").clear();
            let a = snap(self.con, shared).await?;
            create_offered(engine, shared, &self.served, &mut self.next_ix, n, args.concurrency, r).await?;
            let b = snap(self.con, shared).await?;
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
        Ok((rows, rates))
    }

    /// Phase 2: a backlog of `backlog_total` waits while nobody is ready; then everyone goes ready
    /// and fills up.
    pub async fn backlog(&mut self, backlog_total: usize) -> anyhow::Result<Backlog> {
        let (args, engine, shared) = (self.args, self.engine, self.shared);
        set_all(engine, shared, args.agents, &Presence::NotReady("bench".into())).await?;
        wait_quiet(shared, Duration::from_millis(500), Duration::from_secs(60)).await;
        let events_key = engine.keys().events();
        let mem_before = info_field(&redis_info(self.con, "memory").await?, "used_memory");
        let events_before = memory_usage(self.con, &events_key).await?;
        create_many(engine, shared, self.next_ix..self.next_ix + backlog_total, &self.served, args.concurrency, 0)
            .await?;
        self.next_ix += backlog_total;
        let mem_after = info_field(&redis_info(self.con, "memory").await?, "used_memory");
        let events_after = memory_usage(self.con, &events_key).await?;
        let mem_per_waiting = mem_after.saturating_sub(mem_before) as f64 / backlog_total.max(1) as f64;
        // The event log holds each arrival's entries until the CRM has them (then it is trimmed);
        // without a CRM, as here, up to its cap. Reported apart from the interaction's own state.
        let events_per_waiting = events_after.saturating_sub(events_before) as f64 / backlog_total.max(1) as f64;
        shared.hold.store(true, Relaxed);
        let a = snap(self.con, shared).await?;
        set_all(engine, shared, args.agents, &Presence::Ready).await?;
        wait_quiet(shared, Duration::from_secs(1), Duration::from_secs(1800)).await;
        let b = snap(self.con, shared).await?;
        let last = shared.epoch + Duration::from_micros(shared.last_offer_us.load(Relaxed));
        let mut row =
            Row::between("agents ready → offers up to capacity".into(), Decider::Presence, &a, &b, Some(last), None);
        row.waiting = backlog_total;
        let waiting = backlog_total.saturating_sub((b.offers - a.offers) as usize);
        Ok(Backlog { row, waiting, mem_per_waiting, events_per_waiting })
    }

    /// Phase 3, at each of `rates`: the completer frees held slots; each freed slot pulls the next
    /// waiting interaction. New interactions keep arriving at the same pace, so the backlog stays
    /// where it is (`waiting`).
    pub async fn freed(&mut self, rates: &[u32], waiting: usize) -> anyhow::Result<Vec<Row>> {
        let (args, engine, shared, n) = (self.args, self.engine, self.shared, self.args.interactions);
        let mut rows = Vec::new();
        shared.measure_freed.store(true, Relaxed);
        for &r in rates {
            let paced = r > 0;
            shared.freed_to_offer.lock().expect("lock").reset();
            shared.split.lock().expect("lock").clear();
            let a = snap(self.con, shared).await?;
            let (_, created) = tokio::join!(
                complete_held(shared, n, r),
                create_many(engine, shared, self.next_ix..self.next_ix + n, &self.served, args.concurrency, r)
            );
            created?;
            self.next_ix += n;
            wait_offers(shared, a.offers + n as u64, Duration::from_secs(10)).await;
            wait_quiet(shared, Duration::from_millis(300), Duration::from_secs(30)).await;
            let until = shared.epoch + Duration::from_micros(shared.last_offer_us.load(Relaxed));
            let b = snap(self.con, shared).await?;
            let label =
                if paced { format!("freed → next offer at {r}/s") } else { "freed → next offer, max".into() };
            let mut row = Row::between(label, Decider::Complete, &a, &b, Some(until), Some(&shared.freed_to_offer));
            row.waiting = waiting;
            row.split = Split::of(&shared.split.lock().expect("lock"));
            rows.push(row);
        }
        Ok(rows)
    }
}

/// Creates `n` interactions (customers `c{next_ix}` on) in `queues` at `rate` per second (0: as fast
/// as `concurrency` creators can) and waits until the desktops have been offered them all.
pub async fn create_offered(
    engine: &Engine,
    shared: &Arc<Shared>,
    queues: &Arc<Vec<String>>,
    next_ix: &mut usize,
    n: usize,
    concurrency: usize,
    rate: u32,
) -> anyhow::Result<()> {
    let target = shared.offers() + n as u64;
    create_many(engine, shared, *next_ix..*next_ix + n, queues, concurrency, rate).await?;
    *next_ix += n;
    wait_offers(shared, target, Duration::from_secs(300)).await;
    Ok(())
}

pub async fn wait_offers(shared: &Shared, target: u64, patience: Duration) {
    let started = Instant::now();
    while shared.offers() < target && started.elapsed() < patience {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until offers stop coming (none for `quiet`).
pub async fn wait_quiet(shared: &Shared, quiet: Duration, patience: Duration) {
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
