//! The SMS point: the benchmark as a Twilio-compatible SMS provider, against a fresh Redis and
//! daemon of its own with `[sms]` (one gateway whose REST API is the benchmark's, our number per
//! queue), the same agents (each taking one text conversation at a time) logged in on desktop
//! streams. One phase, at each `--sms-rates` (`max`: unpaced): customers text in through the
//! signed inbound webhook, each from a number of their own; the desktops accept, reply and
//! complete (`phase.rs`, `desktop.rs`). Timed: the webhook to its 200 (stored), the first text to
//! the agent's offer, a second text to the agent's desktop, the reply to the provider's REST call.
//!
//! - `provider.rs`: the webhooks the provider sends (signed) and the REST API it serves.
//! - `texts.rs`: the conversations' numbers and moments, the histograms and counts.
//! - `figures.rs`, `table.rs`: a phase's own figures, its rows in `bench.md` and `bench.csv`.

mod desktop;
mod figures;
mod phase;
mod provider;
mod table;
mod texts;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use switchboard::model::{Capacity, Channel, Presence};
use switchboard_engine::{Engine, EngineOptions};

use crate::args::BenchArgs;
use crate::center::{Center, center};
use crate::daemon::Daemon;
use crate::load::set_all;
use crate::rng::Rng;
use crate::row::Row;
use crate::shared::Shared;
use crate::slowlog::local_redis;
use desktop::{Desks, log_in};
pub use figures::SmsFigures;
use provider::Provider;
pub use table::{SMS_CSV_HEAD, SMS_HEAD, sms_cells, sms_note, sms_row};
use texts::{MAX_CONVERSATIONS, Texts, our_number};

/// What the SMS phases run against.
struct SmsPhases<'a> {
    args: &'a BenchArgs,
    con: &'a mut redis::aio::MultiplexedConnection,
    shared: &'a Arc<Shared>,
    texts: Arc<Texts>,
    provider: Arc<Provider>,
    /// The next conversation to start: each phase starts its own.
    next: usize,
}

/// The same center taking texts only: every queue takes SMS, every agent one conversation at a
/// time. Skills, and so which agents serve which queue, stay as drawn.
fn for_texts(mut c: Center) -> Center {
    for q in &mut c.queues {
        q.channels = vec![Channel::Sms];
    }
    for a in &mut c.agents {
        a.capacity = Capacity { voice: 0, chat: 0, sms: 1, email: 0 };
    }
    c.slots = c.agents.len();
    c
}

/// The SMS point: its rows, one per rate.
pub async fn point(args: &BenchArgs) -> anyhow::Result<Vec<Row>> {
    let rates = &args.sms_rates;
    let conversations = args.interactions * rates.len();
    if conversations > MAX_CONVERSATIONS {
        anyhow::bail!(
            "--interactions × --sms-rates: {conversations} conversations, at most {MAX_CONVERSATIONS} (a customer number each)"
        );
    }
    let redis = local_redis();
    let mut con = redis::Client::open(redis.url.as_str())?.get_multiplexed_async_connection().await?;
    let c = for_texts(center(args));
    // Our number per served queue, as a contact center would have one per line of business.
    let lines: Vec<(String, String)> = c.served.iter().enumerate().map(|(i, q)| (our_number(i), q.clone())).collect();
    if lines.is_empty() {
        anyhow::bail!("no queue is served by any agent: nothing to text");
    }
    println!(
        "sms point: {} agents taking one text conversation each ({} skill sets), {} queues with a number each ({} served); {} conversations a phase",
        args.agents,
        c.combos,
        args.queues,
        lines.len(),
        args.interactions
    );
    let engine = Engine::connect(&redis.url, EngineOptions::default()).await?;
    c.put(&engine).await?;
    let shared = Arc::new(Shared::new(args.agents, 0));
    // Conversation `i` texts the same number in every run (as interaction `i` has its queue).
    let to = |i: usize| {
        let mut rng = Rng((i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        rng.next();
        lines[rng.below(lines.len() as u64) as usize].0.clone()
    };
    let texts = Arc::new(Texts::new(shared.epoch, conversations, to));
    let stop = CancellationToken::new();
    let mut provider = Provider::start(texts.clone(), stop.clone()).await?;
    let sms = provider.config(&lines);
    let daemon = Daemon::start(&redis.url, |cfg| cfg.sms = sms).await?;
    provider.connect(daemon.http).await?;
    let provider = Arc::new(provider);
    let desks = Arc::new(Desks { texts: texts.clone(), provider: provider.clone(), shared: shared.clone() });
    log_in(&daemon.endpoint, args.agents, &desks, &stop).await?;
    set_all(&engine, &shared, args.agents, &Presence::Ready).await?;

    let mut phases = SmsPhases { args, con: &mut con, shared: &shared, texts, provider, next: 0 };
    let mut rows = phases.texts(rates).await?;

    stop.cancel();
    daemon.stop().await;
    for r in &mut rows {
        r.agents = args.agents;
        r.combos = c.combos;
    }
    Ok(rows)
}

/// Waits until `done` holds, or `patience` has passed.
async fn wait_for(done: impl Fn() -> bool, patience: Duration) {
    let started = Instant::now();
    while !done() && started.elapsed() < patience {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
