//! A run's figures per queue and per agent, from its record. Arrivals inside the warm-up are left
//! out (the center starts empty).

use std::collections::BTreeMap;

use switchboard_model::QueueSpec;

use crate::run::Outcome;
use crate::scenario::Scenario;

#[derive(Debug, Clone, PartialEq)]
pub struct QueueResult {
    pub queue: String,
    pub arrivals: u64,
    pub answered: u64,
    pub abandoned: u64,
    /// Answered within the queue's service level threshold, of those answered or abandoned (%).
    pub service_level_pct: f64,
    /// The threshold (seconds).
    pub service_level_secs: u32,
    /// Mean wait of the answered (seconds).
    pub asa_secs: f64,
    /// Share of the answered who waited for an agent at all (not offered the moment they came) (%).
    pub waited_pct: f64,
    pub abandon_pct: f64,
    pub longest_wait_secs: f64,
    /// 95 % confidence half-widths of `waited_pct` and `asa_secs`, from batch means.
    pub waited_ci: f64,
    pub asa_ci: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub queues: Vec<QueueResult>,
    /// Agent → time spent handling over the run's length (%); chats handled in parallel each
    /// count, so an agent with a chat capacity above 1 may pass 100 %.
    pub utilisation: BTreeMap<String, f64>,
    /// Mean over agents (%).
    pub occupancy_pct: f64,
}

/// Batches for the confidence intervals (consecutive arrivals; 20 is the usual choice).
const BATCHES: usize = 20;

pub fn figures(o: &Outcome, s: &Scenario, queues: &[QueueSpec]) -> Figures {
    let warm = (s.warm_up_secs * 1000.0) as u64;
    let mut by_queue: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (k, a) in o.arrivals.iter().enumerate() {
        if a.at_ms >= warm {
            by_queue.entry(s.arrivals[a.stream].queue.as_str()).or_default().push(k);
        }
    }
    let mut out = Vec::new();
    for (q, ks) in by_queue {
        let sl_secs = queues.iter().find(|x| x.name == q).map_or(20, |x| x.service_level_secs);
        let sl_ms = u64::from(sl_secs) * 1000;
        let answered_ks: Vec<usize> = ks.iter().copied().filter(|k| o.fates[*k].answered_after_ms.is_some()).collect();
        let answered: Vec<u64> = answered_ks.iter().filter_map(|k| o.fates[*k].answered_after_ms).collect();
        let offered: Vec<u64> = answered_ks.iter().map(|k| o.fates[*k].offered_after_ms.unwrap_or(0)).collect();
        let abandoned = ks.iter().filter(|k| o.fates[**k].abandoned_after_ms.is_some()).count() as u64;
        let within = answered.iter().filter(|w| **w <= sl_ms).count() as f64;
        let handled = answered.len() as f64 + abandoned as f64;
        let mean = |v: &[u64]| if v.is_empty() { 0.0 } else { v.iter().sum::<u64>() as f64 / v.len() as f64 / 1000.0 };
        let waited = |v: &[u64]| {
            if v.is_empty() { 0.0 } else { 100.0 * v.iter().filter(|w| **w > 0).count() as f64 / v.len() as f64 }
        };
        let batch = answered.len() / BATCHES;
        let (waited_ci, asa_ci) = if batch >= 2 {
            let chunks: Vec<&[u64]> = answered.chunks(batch).take(BATCHES).collect();
            let offered_chunks: Vec<&[u64]> = offered.chunks(batch).take(BATCHES).collect();
            (
                half_width(&offered_chunks.iter().map(|c| waited(c)).collect::<Vec<_>>()),
                half_width(&chunks.iter().map(|c| mean(c)).collect::<Vec<_>>()),
            )
        } else {
            (f64::NAN, f64::NAN)
        };
        out.push(QueueResult {
            queue: q.to_string(),
            arrivals: ks.len() as u64,
            answered: answered.len() as u64,
            abandoned,
            service_level_pct: if handled > 0.0 { 100.0 * within / handled } else { 100.0 },
            service_level_secs: sl_secs,
            asa_secs: mean(&answered),
            waited_pct: waited(&offered),
            abandon_pct: if ks.is_empty() { 0.0 } else { 100.0 * abandoned as f64 / ks.len() as f64 },
            longest_wait_secs: ks
                .iter()
                .filter_map(|k| o.fates[*k].answered_after_ms.or(o.fates[*k].abandoned_after_ms))
                .max()
                .unwrap_or(0) as f64
                / 1000.0,
            waited_ci,
            asa_ci,
        });
    }
    let utilisation: BTreeMap<String, f64> =
        o.busy_ms.iter().map(|(a, b)| (a.clone(), 100.0 * *b as f64 / o.span_ms as f64)).collect();
    let occupancy_pct =
        if utilisation.is_empty() { 0.0 } else { utilisation.values().sum::<f64>() / utilisation.len() as f64 };
    Figures { queues: out, utilisation, occupancy_pct }
}

/// 95 % half-width of the mean of `v` (Student's t for 19 degrees of freedom, ~2.09).
fn half_width(v: &[f64]) -> f64 {
    let n = v.len() as f64;
    if n < 2.0 {
        return f64::NAN;
    }
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    2.09 * (var / n).sqrt()
}
