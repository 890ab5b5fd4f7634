//! A phase's figures (a row of the report), worked out from the snapshots that bound it.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use hdrhistogram::Histogram;

use crate::cti::CtiFigures;
use crate::domains::DomainFigures;
use crate::sample::{Sent, Snap};
use crate::sms::SmsFigures;

/// The script whose run makes a phase's decisions.
#[derive(Clone, Copy, PartialEq)]
pub enum Decider {
    Create,
    Presence,
    Complete,
    /// The CTI hook's requests (several round trips each): not split by role.
    Cti,
    /// Texts through the SMS webhooks (several round trips each): not split by role.
    Sms,
}

#[derive(Debug, Clone)]
pub struct Row {
    pub series: String,
    pub x: u64,
    pub phase: String,
    pub agents: usize,
    pub waiting: usize,
    pub combos: usize,
    pub decisions: u64,
    pub per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub commands: f64,
    pub round_trips: f64,
    /// The round trips split by role (they add up to `round_trips`).
    pub roles: Roles,
    pub redis_cpu_us: f64,
    pub own_cpu_us: f64,
    pub mem_per_waiting: f64,
    /// Of `mem_per_waiting`, the event-log entries not yet delivered to a CRM.
    pub events_per_waiting: f64,
    pub kib_per_agent: f64,
    /// Per command: calls and Redis µs per decision.
    pub by_command: Vec<(String, f64, f64)>,
    pub split: Option<Split>,
    /// Share of the machine's CPU time stolen by the hypervisor during the phase, %.
    pub steal_pct: f64,
    /// Calls that ran 2 ms or longer inside Redis during the phase: (µs, what).
    pub slow: Vec<(u64, String)>,
    /// A CTI phase's own figures.
    pub cti: Option<CtiFigures>,
    /// An SMS phase's own figures.
    pub sms: Option<SmsFigures>,
    /// A phase of the domains point: its domains and shards.
    pub domains: Option<DomainFigures>,
}

/// Where a phase's latency went, split where the deciding function call starts running in Redis
/// (its clock reading is the interaction's "offered" timestamp): before (the request reaching the
/// daemon and waiting for Redis) and after (the function's run, the hub's read of its push when
/// another call made the decision, and the stream to the desktop). In ms.
#[derive(Debug, Clone, Copy)]
pub struct Split {
    pub before_p50: f64,
    pub before_p99: f64,
    pub after_p50: f64,
    pub after_p99: f64,
    /// Among the slowest 1 % of decisions: the mean of each part.
    pub slow_before: f64,
    pub slow_after: f64,
}

impl Split {
    pub fn of(samples: &[(u64, u64)]) -> Option<Split> {
        if samples.is_empty() {
            return None;
        }
        let q = |mut v: Vec<u64>, x: f64| {
            v.sort_unstable();
            v[((v.len() - 1) as f64 * x).round() as usize] as f64 / 1000.0
        };
        let before: Vec<u64> = samples.iter().map(|s| s.0).collect();
        let after: Vec<u64> = samples.iter().map(|s| s.1).collect();
        let mut by_total = samples.to_vec();
        by_total.sort_unstable_by_key(|s| std::cmp::Reverse(s.0 + s.1));
        let slow = &by_total[..by_total.len().div_ceil(100)];
        let mean = |f: fn(&(u64, u64)) -> u64| slow.iter().map(f).sum::<u64>() as f64 / slow.len() as f64 / 1000.0;
        Some(Split {
            before_p50: q(before.clone(), 0.5),
            before_p99: q(before, 0.99),
            after_p50: q(after.clone(), 0.5),
            after_p99: q(after, 0.99),
            slow_before: mean(|s| s.0),
            slow_after: mean(|s| s.1),
        })
    }
}

/// Round trips per decision by what they were for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Roles {
    /// The script run that made the decision, and the hub's reads that delivered the offer (none
    /// when the agent's own request made it: the offer comes back with the reply).
    pub routing: f64,
    /// The hub's share of `routing`.
    pub hub: f64,
    /// Accepting, and completing when that is not what made the decision.
    pub agent: f64,
    /// Creating interactions when that is not what made the decision (the backlog's arrivals).
    pub arrivals: f64,
    /// The rest: timers, heartbeats, presence changes that made no decision.
    pub other: f64,
}

fn sub(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>, k: &str) -> u64 {
    after.get(k).copied().unwrap_or(0).saturating_sub(before.get(k).copied().unwrap_or(0))
}

impl Row {
    /// `until`: when the phase's last decision was made (defaults to `b.at`).
    pub fn between(
        phase: String,
        decider: Decider,
        a: &Snap,
        b: &Snap,
        until: Option<Instant>,
        latency: Option<&Mutex<Histogram<u64>>>,
    ) -> Row {
        let d = b.offers.saturating_sub(a.offers);
        let per = |x: u64| x as f64 / d.max(1) as f64;
        let (p50_ms, p99_ms, p999_ms) = latency.map(|h| quantiles(&h.lock().expect("lock"))).unwrap_or((0.0, 0.0, 0.0));
        let mut by_command: Vec<(String, f64, f64)> = b
            .calls
            .keys()
            .map(|k| (k.clone(), per(sub(&b.calls, &a.calls, k)), per(sub(&b.usec, &a.usec, k))))
            .filter(|(k, n, _)| *n >= 0.05 && k != "info")
            .collect();
        by_command.sort_by(|x, y| y.1.total_cmp(&x.1));
        let commands: u64 = b.calls.keys().filter(|k| *k != "info").map(|k| sub(&b.calls, &a.calls, k)).sum();
        let elapsed = until.unwrap_or(b.at).saturating_duration_since(a.at).as_secs_f64().max(1e-6);
        let sent = |f: fn(&Sent) -> u64| f(&b.sent).saturating_sub(f(&a.sent));
        let (creates, presence, accepts, completes) =
            (sent(|s| s.creates), sent(|s| s.presence_changes), sent(|s| s.accepts), sent(|s| s.completes));
        let deciding = match decider {
            Decider::Create => creates,
            Decider::Presence => presence,
            Decider::Complete => completes,
            Decider::Cti | Decider::Sms => 0,
        };
        let all = b.round_trips.saturating_sub(a.round_trips);
        let hub = b.hub_round_trips.saturating_sub(a.hub_round_trips);
        let agent = accepts + if decider == Decider::Complete { 0 } else { completes };
        let arrivals = if decider == Decider::Create { 0 } else { creates };
        // Each of those requests is one script run, one round trip. A request sent just before
        // the phase's end may run after it: the rest is then off by the few still in flight.
        let roles = Roles {
            routing: per(deciding + hub),
            hub: per(hub),
            agent: per(agent),
            arrivals: per(arrivals),
            other: per(all.saturating_sub(deciding + hub + agent + arrivals)),
        };
        Row {
            series: String::new(),
            x: 0,
            phase,
            agents: 0,
            waiting: 0,
            combos: 0,
            decisions: d,
            per_sec: d as f64 / elapsed,
            p50_ms,
            p99_ms,
            p999_ms,
            commands: per(commands),
            round_trips: per(all),
            roles,
            redis_cpu_us: per(b.redis_cpu_us - a.redis_cpu_us),
            own_cpu_us: per(b.own_cpu_us - a.own_cpu_us),
            mem_per_waiting: 0.0,
            events_per_waiting: 0.0,
            kib_per_agent: 0.0,
            by_command,
            split: None,
            slow: b.slow.clone(),
            cti: None,
            sms: None,
            domains: None,
            steal_pct: {
                let (steal, all) = (
                    b.machine_ticks.0.saturating_sub(a.machine_ticks.0),
                    b.machine_ticks.1.saturating_sub(a.machine_ticks.1),
                );
                100.0 * steal as f64 / all.max(1) as f64
            },
        }
    }
}

fn quantiles(h: &Histogram<u64>) -> (f64, f64, f64) {
    if h.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let q = |x| h.value_at_quantile(x) as f64 / 1000.0;
    (q(0.5), q(0.99), q(0.999))
}
