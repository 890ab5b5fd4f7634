//! One simulated day: the center loaded into a private Redis, the routing clock set to each
//! event's virtual time, arrivals created, offers read from the event log and accepted, work
//! completed, customers leaving when their patience runs out, the routing's own timers fired when
//! due. Events are taken one at a time in virtual-time order; nothing sleeps.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng};
use rand_distr::{Distribution as _, Exp, LogNormal};
use switchboard_engine::events::EventTail;
use switchboard_engine::{Engine, EngineError, EngineOptions};
use switchboard_model::{AgentSpec, CalendarSpec, Channel, NewInteraction, Presence, QueueSpec};

use crate::redis::PrivateRedis;
use crate::scenario::{Distribution, Scenario};

/// The center to simulate: as in the daemon's config.
#[derive(Debug, Clone, Default)]
pub struct Center {
    pub calendars: Vec<CalendarSpec>,
    pub queues: Vec<QueueSpec>,
    pub agents: Vec<AgentSpec>,
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("the private Redis: {0}")]
    Redis(#[from] std::io::Error),
    #[error("routing: {0}")]
    Engine(#[from] EngineError),
    #[error("{0}")]
    Center(String),
}

/// Virtual time starts on a Monday, 08:00 UTC (2026-01-05), so calendars have a day to apply to.
pub const START_MS: u64 = 1_767_600_000_000;

/// One contact of the day, drawn before the run so both configurations meet the same ones.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub at_ms: u64,
    pub stream: usize,
    pub handle_ms: u64,
    pub patience_ms: Option<u64>,
    /// How long the agent takes after it; None: the queue's whole `wrap_up_secs`.
    pub wrap_ms: Option<u64>,
}

/// What happened to one contact.
#[derive(Debug, Clone, Default)]
pub struct Fate {
    /// Waited this long until it was first offered (0: an agent was free when it came).
    pub offered_after_ms: Option<u64>,
    /// Waited this long until an agent accepted it.
    pub answered_after_ms: Option<u64>,
    /// Left after waiting this long.
    pub abandoned_after_ms: Option<u64>,
    pub agent: Option<String>,
}

/// The run's record: every arrival's fate, every agent's busy time, and how long it ran.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub arrivals: Vec<Arrival>,
    pub fates: Vec<Fate>,
    /// Agent → ms spent handling (accept to complete).
    pub busy_ms: HashMap<String, u64>,
    /// Agent → ms on shift (the whole run for an agent named in no shift).
    pub on_ms: HashMap<String, u64>,
    /// Virtual ms from the first arrival to the last work done.
    pub span_ms: u64,
    /// Real time the run took.
    pub wall: Duration,
    /// Routing function calls made.
    pub calls: u64,
}

/// Draws the day's arrivals: Poisson per stream, with handle times and patience; deterministic
/// for a seed.
pub fn draw_arrivals(s: &Scenario) -> Vec<Arrival> {
    let end_ms = (s.hours * 3_600_000.0) as u64;
    let mut out = Vec::new();
    for (i, a) in s.arrivals.iter().enumerate().filter(|(_, a)| !a.recorded) {
        let mut rng = StdRng::seed_from_u64(s.seed.wrapping_mul(1_000_003).wrapping_add(i as u64));
        let gap = Exp::new(a.per_hour / 3_600_000.0).expect("validated rate");
        let handle: Box<dyn Fn(&mut StdRng) -> f64> = match a.handle {
            Distribution::Exponential => {
                let e = Exp::new(1.0 / a.handle_secs).expect("validated");
                Box::new(move |r| e.sample(r))
            }
            Distribution::Lognormal => {
                let (m, sd) = (a.handle_secs, a.handle_sd_secs.expect("validated"));
                let sigma2 = (1.0 + (sd / m).powi(2)).ln();
                let l = LogNormal::new(m.ln() - sigma2 / 2.0, sigma2.sqrt()).expect("validated");
                Box::new(move |r| l.sample(r))
            }
        };
        let patience = a.patience_secs.map(|p| Exp::new(1.0 / p).expect("validated"));
        let wrap = a.wrap_up_secs.map(|w| Exp::new(1.0 / w).expect("validated"));
        let mut t = 0.0;
        loop {
            t += gap.sample(&mut rng);
            if t >= end_ms as f64 {
                break;
            }
            let handle_ms = ((handle(&mut rng) * 1000.0) as u64).max(1);
            let patience_ms = patience.map(|p| ((p.sample(&mut rng) * 1000.0) as u64).max(1));
            // Drawn only when asked for, so a scenario without it draws the same day as before.
            let wrap_ms = wrap.map(|w| (w.sample(&mut rng) * 1000.0) as u64);
            out.push(Arrival { at_ms: t as u64, stream: i, handle_ms, patience_ms, wrap_ms });
        }
    }
    out.sort_by_key(|a| (a.at_ms, a.stream));
    out
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Arrive(usize),
    Accept(String, usize),
    Reject(String, usize),
    ShiftStarts(String),
    ShiftEnds(String),
    /// Ready again after a missed offer (if still on shift).
    ReadyAgain(String),
    /// The agent ends the contact's wrap-up before the queue's time is up.
    EndWrap(String, usize),
    Complete(String, usize),
    Abandon(usize),
}

/// [`run`] on a thread of its own with a single-threaded runtime: a simulation is one chain of
/// round trips, and keeping the connection's driver on the same thread as the loop spares every
/// step two thread wake-ups. Runs of several configurations each call this from their own thread.
pub fn run_on_own_runtime(center: &Center, scenario: &Scenario, arrivals: &[Arrival]) -> Result<Outcome, SimError> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(run(center, scenario, arrivals))
}

/// The not-ready reason of an agent between shifts.
const OFF_SHIFT: &str = "off shift";

/// Loads `center` into a fresh Redis and plays `arrivals` through it.
pub async fn run(center: &Center, scenario: &Scenario, arrivals: &[Arrival]) -> Result<Outcome, SimError> {
    let started = std::time::Instant::now();
    let start = scenario.start_ms();
    let redis = PrivateRedis::start()?;
    let opts = EngineOptions {
        key_root: "sim:{sim}:".into(),
        // One process plays every desktop and never misses a heartbeat in virtual time.
        presence_grace: Duration::from_secs(400 * 86_400),
        events_maxlen: 0,
        ..EngineOptions::default()
    };
    let engine = Engine::connect(&redis.url, opts).await?;
    engine.set_clock(start).await?;
    load(&engine, center).await?;
    engine.instance_started("sim").await?;
    // Agents on a shift wait for it signed in but not ready; the others work the whole run.
    let on_shift = |id: &str| scenario.shifts.iter().any(|sh| sh.covers(id));
    for a in &center.agents {
        engine.login(&a.id, None, "sim", &format!("s-{}", a.id)).await?;
        let p = if on_shift(&a.id) { Presence::NotReady(OFF_SHIFT.into()) } else { Presence::Ready };
        engine.set_presence(&a.id, &p, "sim").await?;
    }
    let mut tail = EventTail::from_now(&engine).await?;
    let accept_ms = (scenario.accept_delay_secs * 1000.0) as u64;
    let ready_after_miss_ms = (scenario.ready_after_miss_secs * 1000.0) as u64;
    let mut heap: BinaryHeap<Reverse<(u64, u64, Ev)>> = BinaryHeap::new();
    let mut seq = 0u64;
    let mut push = |heap: &mut BinaryHeap<_>, at: u64, ev: Ev| {
        seq += 1;
        heap.push(Reverse((at, seq, ev)));
    };
    for (k, a) in arrivals.iter().enumerate() {
        push(&mut heap, a.at_ms, Ev::Arrive(k));
    }
    for sh in &scenario.shifts {
        for a in center.agents.iter().filter(|a| sh.covers(&a.id)) {
            push(&mut heap, (sh.from_hour * 3_600_000.0) as u64, Ev::ShiftStarts(a.id.clone()));
            push(&mut heap, (sh.to_hour * 3_600_000.0) as u64, Ev::ShiftEnds(a.id.clone()));
        }
    }
    // Shifts an agent is on now (they may overlap), and since when they have been on; agents
    // without shifts are on from the start.
    let mut shifts_on: HashMap<String, (u32, u64)> =
        center.agents.iter().filter(|a| !on_shift(&a.id)).map(|a| (a.id.clone(), (1, 0))).collect();
    let mut on_ms: HashMap<String, u64> = center.agents.iter().map(|a| (a.id.clone(), 0)).collect();
    // Contacts created and not yet completed or gone.
    let mut open = 0u64;
    let horizon_ms = (scenario.hours * 3_600_000.0) as u64 + 86_400_000;
    // Figures run from the first arrival.
    let t0 = arrivals.first().map_or(0, |a| a.at_ms);
    let mut behaviour = StdRng::seed_from_u64(scenario.seed ^ 0xbe4a_710e);
    let mut fates = vec![Fate::default(); arrivals.len()];
    let mut ids: Vec<String> = vec![String::new(); arrivals.len()];
    let mut by_id: HashMap<String, usize> = HashMap::new();
    let mut busy_ms: HashMap<String, u64> = center.agents.iter().map(|a| (a.id.clone(), 0)).collect();
    let mut timer_due = engine.next_timer_due().await?.map(|t| t.saturating_sub(start));
    let (mut now, mut calls, mut clock) = (0u64, 0u64, None);
    loop {
        let next_ev = heap.peek().map(|Reverse((t, _, _))| *t);
        // Timers matter while something is still to happen: an event to come, or a contact not
        // done with (one waiting behind an agent's wrap-up is offered when its timer fires).
        let timer = timer_due.filter(|t| next_ev.map_or(open > 0, |e| *t <= e));
        let Some(at) = timer.or(next_ev) else { break };
        // Agents who keep missing offers (or contacts nobody can take) could go on for ever: the
        // work left when arrivals stop gets a day, and what is still open then stays unanswered.
        if at > horizon_ms {
            break;
        }
        now = now.max(at);
        if clock != Some(now) {
            engine.set_clock(start + now).await?;
            clock = Some(now);
        }
        calls += 1;
        if timer.is_some() {
            engine.fire_timers(1000).await?;
        } else {
            let Some(Reverse((_, _, ev))) = heap.pop() else { break };
            match ev {
                Ev::Arrive(k) => {
                    let a = &arrivals[k];
                    let st = &scenario.arrivals[a.stream];
                    let new = NewInteraction {
                        idempotency_key: format!("sim-{k}"),
                        channel: Some(st.channel),
                        customer_address: address(st.channel, k),
                        queue: st.queue.clone(),
                        priority: Some(st.priority),
                        // Voice carries no messages; the others open with the customer's first.
                        body: if st.channel == Channel::Voice { String::new() } else { "simulated".into() },
                        ..NewInteraction::default()
                    };
                    let (ix, _) = engine.create_interaction(&new).await?;
                    open += 1;
                    by_id.insert(ix.id.clone(), k);
                    ids[k] = ix.id;
                    if let Some(p) = a.patience_ms {
                        push(&mut heap, now + p, Ev::Abandon(k));
                    }
                }
                Ev::Accept(agent, k) => {
                    if fates[k].abandoned_after_ms.is_none() && engine.accept(&agent, &ids[k]).await.is_ok() {
                        fates[k].answered_after_ms = Some(now - arrivals[k].at_ms);
                        fates[k].agent = Some(agent.clone());
                        push(&mut heap, now + arrivals[k].handle_ms, Ev::Complete(agent, k));
                    }
                }
                Ev::Complete(agent, k) => {
                    engine.complete(&agent, &ids[k], "done", "").await?;
                    open -= 1;
                    *busy_ms.entry(agent.clone()).or_insert(0) += arrivals[k].handle_ms;
                    if let Some(w) = arrivals[k].wrap_ms {
                        push(&mut heap, now + w, Ev::EndWrap(agent, k));
                    }
                }
                Ev::EndWrap(agent, k) => {
                    // Refused when there is no wrap-up to end: the queue has none, or its time
                    // ran out first (the queue's wrap_up_secs is the most an agent takes).
                    let _ = engine.end_wrap_up(&agent, &ids[k], "done", "").await;
                }
                Ev::Reject(agent, k) => {
                    // The customer may have left meanwhile.
                    if fates[k].abandoned_after_ms.is_none() {
                        let _ = engine.reject(&agent, &ids[k], "declined").await;
                    }
                }
                Ev::ShiftStarts(agent) => {
                    let on = shifts_on.entry(agent.clone()).or_insert((0, now));
                    on.0 += 1;
                    if on.0 == 1 {
                        on.1 = now;
                        engine.set_presence(&agent, &Presence::Ready, "sim").await?;
                    }
                }
                Ev::ShiftEnds(agent) => {
                    if let Some(on) = shifts_on.get_mut(&agent) {
                        on.0 -= 1;
                        if on.0 == 0 {
                            *on_ms.entry(agent.clone()).or_insert(0) += now.saturating_sub(on.1.max(t0));
                            shifts_on.remove(&agent);
                            engine.set_presence(&agent, &Presence::NotReady(OFF_SHIFT.into()), "sim").await?;
                        }
                    }
                }
                Ev::ReadyAgain(agent) => {
                    if shifts_on.contains_key(&agent) {
                        engine.set_presence(&agent, &Presence::Ready, "sim").await?;
                    }
                }
                Ev::Abandon(k) => {
                    if fates[k].answered_after_ms.is_none() {
                        engine.withdraw(&ids[k], "customer_left").await?;
                        open -= 1;
                        fates[k].abandoned_after_ms = Some(now - arrivals[k].at_ms);
                    }
                }
            }
        }
        // The next step is most likely the earliest of what is known now; the read below stops
        // the clock there too, and a wrong guess (a new timer or offer due sooner) costs the one
        // round trip of setting it again.
        let guess = match (heap.peek().map(|Reverse((t, _, _))| *t), timer_due) {
            (Some(e), Some(t)) => Some(e.min(t).max(now)),
            (e, t) => e.or(t).map(|x| x.max(now)),
        };
        let stop_at = guess.filter(|g| clock != Some(*g));
        // Offers made by that call (or by timers): the agent accepts after the delay.
        let (logged, due) = tail.poll_with_next_timer(&engine, 10_000, stop_at.map(|g| start + g)).await?;
        if stop_at.is_some() {
            clock = stop_at;
        }
        for e in logged {
            match e.typ.as_str() {
                "offered" => {
                    let Some(&k) = by_id.get(&e.interaction_id) else { continue };
                    fates[k].offered_after_ms.get_or_insert(now - arrivals[k].at_ms);
                    let draw = behaviour.random::<f64>() * 100.0;
                    if draw < scenario.reject_percent {
                        push(&mut heap, now + accept_ms, Ev::Reject(e.agent_id, k));
                    } else if draw >= scenario.reject_percent + scenario.miss_percent {
                        push(&mut heap, now + accept_ms, Ev::Accept(e.agent_id, k));
                    }
                    // Otherwise nobody answers: the queue's offer timeout fires as a routing timer.
                }
                "missed" if shifts_on.contains_key(&e.agent_id) => {
                    push(&mut heap, now + ready_after_miss_ms, Ev::ReadyAgain(e.agent_id));
                }
                _ => {}
            }
        }
        timer_due = due.map(|t| t.saturating_sub(start));
    }
    let span_ms = now.saturating_sub(t0).max(1);
    for (agent, (_, since)) in shifts_on {
        *on_ms.entry(agent).or_insert(0) += now.saturating_sub(since.max(t0));
    }
    drop(redis);
    Ok(Outcome { arrivals: arrivals.to_vec(), fates, busy_ms, on_ms, span_ms, wall: started.elapsed(), calls })
}

/// A customer address the channel accepts.
fn address(ch: Channel, k: usize) -> String {
    match ch {
        Channel::Email => format!("customer{k}@example.com"),
        _ => format!("+4915{:09}", k % 1_000_000_000),
    }
}

/// Calendars, queues (an overflow target may come later: retried until none is left) and agents.
async fn load(engine: &Engine, c: &Center) -> Result<(), SimError> {
    for cal in &c.calendars {
        engine.put_calendar(cal, true).await?;
    }
    let mut pending: Vec<&QueueSpec> = c.queues.iter().collect();
    while !pending.is_empty() {
        let mut next = Vec::new();
        for q in &pending {
            match engine.put_queue(q, true).await {
                Ok(_) => {}
                Err(EngineError::NotFound(_)) => next.push(*q),
                Err(e) => return Err(e.into()),
            }
        }
        if next.len() == pending.len() {
            return Err(SimError::Center(format!("queue {:?}: its overflow queue does not exist", next[0].name)));
        }
        pending = next;
    }
    for a in &c.agents {
        engine.put_agent(a, true).await?;
    }
    Ok(())
}
