//! One routing domain of a layout: its contact center written to Redis under its key root, a
//! daemon of its own (in-process, `redis.domain` set), its agents logged in on desktop streams
//! and ready.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use switchboard::model::Presence;
use switchboard_engine::{Engine, EngineOptions};

use super::layout::key_root;
use crate::args::BenchArgs;
use crate::center::Center;
use crate::daemon::Daemon;
use crate::desktop::log_in;
use crate::load::set_all;
use crate::phase::create_offered;
use crate::shared::Shared;

pub struct DomainStack {
    pub name: String,
    /// Its shard, an index into the layout's.
    pub shard: usize,
    /// The creators' engine: the domain's store, as the `CreateInteraction` handler has it.
    engine: Engine,
    daemon: Daemon,
    pub shared: Arc<Shared>,
    served: Arc<Vec<String>>,
    next_ix: usize,
    stop: CancellationToken,
}

impl DomainStack {
    /// The domain `name` on the Redis at `url` (a cluster's URL: its daemon and engine find the
    /// domain's primary), with the center `c`, room for `interactions` created in all.
    pub async fn start(
        args: &BenchArgs,
        url: &str,
        name: &str,
        shard: usize,
        c: &Center,
        interactions: usize,
    ) -> anyhow::Result<DomainStack> {
        let engine =
            Engine::connect(url, EngineOptions { key_root: key_root(name), ..EngineOptions::default() }).await?;
        c.put(&engine).await?;
        let daemon = Daemon::start(url, |cfg| cfg.redis.domain = name.to_string()).await?;
        let shared = Arc::new(Shared::new(args.agents, interactions));
        let stop = CancellationToken::new();
        log_in(&daemon.endpoint, args.agents, &shared, &stop).await?;
        set_all(&engine, &shared, args.agents, &Presence::Ready).await?;
        shared.measure_created.store(true, Relaxed);
        let served = Arc::new(c.served.clone());
        Ok(DomainStack { name: name.to_string(), shard, engine, daemon, shared, served, next_ix: 0, stop })
    }

    /// Its part of a phase: `n` interactions created at `rate` (0: unpaced), each offered,
    /// accepted and completed. Returns when its last offer reached a desktop.
    pub async fn run(&mut self, n: usize, concurrency: usize, rate: u32) -> anyhow::Result<Instant> {
        let shared = &self.shared;
        shared.created_to_offer.lock().expect("lock").reset();
        shared.split.lock().expect("lock").clear();
        create_offered(&self.engine, shared, &self.served, &mut self.next_ix, n, concurrency, rate).await?;
        Ok(shared.epoch + Duration::from_micros(shared.last_offer_us.load(Relaxed)))
    }

    pub async fn stop(self) {
        self.stop.cancel();
        self.daemon.stop().await;
    }
}
