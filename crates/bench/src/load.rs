//! The load the phases put on: interactions created (open loop, paced or as fast as the creators
//! can) and every agent's presence changed, through the engine directly; only the desktops go
//! through gRPC.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use futures::StreamExt;

use switchboard::model::{Channel, NewInteraction, Presence};
use switchboard_engine::Engine;

use crate::rng::Rng;
use crate::shared::Shared;

/// Runs `f` over `0..n` with `width` at a time.
pub async fn each<F, Fut>(n: usize, width: usize, f: F) -> anyhow::Result<()>
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

pub async fn set_all(engine: &Engine, shared: &Shared, agents: usize, presence: &Presence) -> anyhow::Result<()> {
    each(agents, 32, |a| async move {
        shared.presence_changes.fetch_add(1, Relaxed);
        Ok(engine.set_presence(&format!("a{a}"), presence, "bench").await?)
    })
    .await
}

/// Creates interactions `first..first + n` (customer `c{i}`) in the queues given, at `rate` per
/// second (0: as fast as `concurrency` creators can).
pub async fn create_many(
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
