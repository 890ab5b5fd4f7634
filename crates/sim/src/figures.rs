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
    /// Agent → time spent handling over their time on shift (%); chats handled in parallel each
    /// count, so an agent with a chat capacity above 1 may pass 100 %.
    pub utilisation: BTreeMap<String, f64>,
    /// Mean over agents (%).
    pub occupancy_pct: f64,
}

/// Batches for the confidence intervals (consecutive arrivals; 20 is the usual choice).
pub(crate) const BATCHES: usize = 20;

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
    // Over the time each agent was on shift (the whole run without shifts); an agent never on
    // shift has no utilisation to speak of.
    let utilisation: BTreeMap<String, f64> = o
        .busy_ms
        .iter()
        .filter_map(|(a, b)| {
            let on = o.on_ms.get(a).copied().unwrap_or(o.span_ms);
            (on > 0).then(|| (a.clone(), 100.0 * *b as f64 / on as f64))
        })
        .collect();
    let occupancy_pct =
        if utilisation.is_empty() { 0.0 } else { utilisation.values().sum::<f64>() / utilisation.len() as f64 };
    Figures { queues: out, utilisation, occupancy_pct }
}

/// 95 % half-width of the mean of `v` (Student's t for 19 degrees of freedom, ~2.09).
pub(crate) fn half_width(v: &[f64]) -> f64 {
    let n = v.len() as f64;
    if n < 2.0 {
        return f64::NAN;
    }
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    2.09 * (var / n).sqrt()
}

/// One stretch of the day: the contacts that arrived in it and how they fared.
#[derive(Debug, Clone, PartialEq)]
pub struct Interval {
    /// Virtual ms from the start of the day.
    pub start_ms: u64,
    pub arrivals: u64,
    pub answered: u64,
    pub abandoned: u64,
    /// As [`QueueResult::service_level_pct`], each contact against its own queue's threshold;
    /// None when nobody in it was answered or left.
    pub service_level_pct: Option<f64>,
    /// Mean wait of the answered (seconds); None when nobody was.
    pub asa_secs: Option<f64>,
}

/// The day in intervals of `width_ms` by arrival time, for one queue or (None) all, warm-up
/// included: it is the morning as the center lives it, from empty.
pub fn over_the_day(
    o: &Outcome,
    s: &Scenario,
    queues: &[QueueSpec],
    queue: Option<&str>,
    width_ms: u64,
) -> Vec<Interval> {
    let day_ms = (s.hours * 3_600_000.0).ceil() as u64;
    let n = day_ms.div_ceil(width_ms).max(1) as usize;
    let mut out: Vec<Interval> = (0..n)
        .map(|i| Interval {
            start_ms: i as u64 * width_ms,
            arrivals: 0,
            answered: 0,
            abandoned: 0,
            service_level_pct: None,
            asa_secs: None,
        })
        .collect();
    let (mut within, mut waited_ms) = (vec![0u64; n], vec![0u64; n]);
    for (a, f) in o.arrivals.iter().zip(&o.fates) {
        let name = s.arrivals[a.stream].queue.as_str();
        if queue.is_some_and(|q| q != name) {
            continue;
        }
        let i = ((a.at_ms / width_ms) as usize).min(n - 1);
        let sl_ms = u64::from(queues.iter().find(|x| x.name == name).map_or(20, |x| x.service_level_secs)) * 1000;
        out[i].arrivals += 1;
        if let Some(w) = f.answered_after_ms {
            out[i].answered += 1;
            waited_ms[i] += w;
            within[i] += u64::from(w <= sl_ms);
        } else if f.abandoned_after_ms.is_some() {
            out[i].abandoned += 1;
        }
    }
    for (i, x) in out.iter_mut().enumerate() {
        let handled = x.answered + x.abandoned;
        x.service_level_pct = (handled > 0).then(|| 100.0 * within[i] as f64 / handled as f64);
        x.asa_secs = (x.answered > 0).then(|| waited_ms[i] as f64 / x.answered as f64 / 1000.0);
    }
    out
}

/// The chart's intervals: half an hour.
pub const INTERVAL_MS: u64 = 1_800_000;

/// One configuration's day in intervals: all queues, then each queue by name.
#[derive(Debug, Clone, PartialEq)]
pub struct Day {
    /// The epoch ms the day's virtual time 0 stands for (the chart's clock).
    pub start_ms: u64,
    pub all: Vec<Interval>,
    pub queues: Vec<(String, Vec<Interval>)>,
}

pub fn day(o: &Outcome, s: &Scenario, queues: &[QueueSpec]) -> Day {
    let mut names: Vec<&str> = s.arrivals.iter().map(|a| a.queue.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    Day {
        start_ms: s.start_ms(),
        all: over_the_day(o, s, queues, None, INTERVAL_MS),
        queues: names.into_iter().map(|q| (q.to_string(), over_the_day(o, s, queues, Some(q), INTERVAL_MS))).collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;
    use crate::run::{Arrival, Fate};

    fn scenario(hours: f64) -> Scenario {
        Scenario::parse(&format!(
            "hours = {hours}\n[[arrivals]]\nqueue = \"a\"\nper_hour = 1\nhandle_secs = 1\n\
             [[arrivals]]\nqueue = \"b\"\nper_hour = 1\nhandle_secs = 1\n"
        ))
        .unwrap()
    }

    fn outcome(contacts: &[(u64, usize, Option<u64>, Option<u64>)]) -> Outcome {
        Outcome {
            arrivals: contacts
                .iter()
                .map(|(at, stream, _, _)| Arrival {
                    at_ms: *at,
                    stream: *stream,
                    handle_ms: 1,
                    patience_ms: None,
                    wrap_ms: None,
                })
                .collect(),
            fates: contacts
                .iter()
                .map(|(_, _, answered, abandoned)| Fate {
                    offered_after_ms: *answered,
                    answered_after_ms: *answered,
                    abandoned_after_ms: *abandoned,
                    agent: None,
                })
                .collect(),
            busy_ms: HashMap::new(),
            on_ms: HashMap::new(),
            span_ms: 1,
            wall: Duration::ZERO,
            calls: 0,
        }
    }

    #[test]
    fn the_day_in_intervals_counts_each_contact_where_it_arrived() {
        let half = 1_800_000;
        // Queue b's threshold is 60 s, a's the default 20 s.
        let mut b = QueueSpec::new("b");
        b.service_level_secs = 60;
        let queues = [QueueSpec::new("a"), b];
        let o = outcome(&[
            (0, 0, Some(10_000), None),        // a: within 20 s
            (1_000, 1, Some(30_000), None),    // b: within 60 s
            (2_000, 0, Some(30_000), None),    // a: not within
            (half + 5, 0, None, Some(40_000)), // a: left
            (half + 6, 0, None, None),         // a: still waiting at the end: counts as arrived only
        ]);
        let s = scenario(1.25);
        let all = over_the_day(&o, &s, &queues, None, half);
        // 1.25 h: three intervals, the last one half long and empty.
        assert_eq!(all.len(), 3);
        assert_eq!((all[0].arrivals, all[0].answered, all[0].abandoned), (3, 3, 0));
        assert!((all[0].service_level_pct.unwrap() - 200.0 / 3.0).abs() < 1e-9);
        assert!((all[0].asa_secs.unwrap() - 70.0 / 3.0).abs() < 1e-9);
        assert_eq!((all[1].arrivals, all[1].answered, all[1].abandoned), (2, 0, 1));
        assert_eq!((all[1].service_level_pct, all[1].asa_secs), (Some(0.0), None));
        assert_eq!((all[2].arrivals, all[2].service_level_pct, all[2].start_ms), (0, None, 2 * half));
        let only_a = over_the_day(&o, &s, &queues, Some("a"), half);
        assert_eq!((only_a[0].arrivals, only_a[0].service_level_pct), (2, Some(50.0)));
        let only_b = over_the_day(&o, &s, &queues, Some("b"), half);
        assert_eq!((only_b[0].arrivals, only_b[0].service_level_pct, only_b[1].arrivals), (1, Some(100.0), 0));
    }
}
