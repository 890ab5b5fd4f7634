//! The simulator's credentials: one queue of `c` agents with Poisson arrivals and exponential
//! handle times, agents accepting at once. Nobody leaving (M/M/c), the simulated probability of
//! waiting and mean wait match Erlang C; with exponential patience (M/M/c+M), they and the
//! abandon rate match Erlang A; each within the run's 95 % confidence interval.

use switchboard_model::{AgentSpec, Capacity, Channel, QueueSpec};

use crate::erlang::{erlang_a, erlang_c, erlang_c_asa};
use crate::figures::{BATCHES, half_width};
use crate::run::{Center, Outcome, SimError, draw_arrivals, run};
use crate::scenario::{Arrivals, Distribution, Scenario};

#[derive(Debug, Clone)]
pub struct Row {
    pub agents: u32,
    /// Offered load per agent (%).
    pub load_pct: f64,
    pub arrivals: u64,
    pub erlang_waited_pct: f64,
    pub sim_waited_pct: f64,
    pub waited_ci: f64,
    pub erlang_asa_secs: f64,
    pub sim_asa_secs: f64,
    pub asa_ci: f64,
    /// Real seconds the run took.
    pub wall_secs: f64,
}

/// Hairs the intervals are widened by for the clock's millisecond rounding.
const PCT_HAIR: f64 = 0.5;
const SECS_HAIR: f64 = 0.05;

fn within(sim: f64, theory: f64, ci: f64, hair: f64) -> bool {
    (sim - theory).abs() <= ci + hair
}

impl Row {
    /// Whether Erlang C's values lie within the simulation's 95 % intervals.
    pub fn agrees(&self) -> bool {
        within(self.sim_waited_pct, self.erlang_waited_pct, self.waited_ci, PCT_HAIR)
            && within(self.sim_asa_secs, self.erlang_asa_secs, self.asa_ci, SECS_HAIR)
    }
}

/// One M/M/c+M point against Erlang A. Every figure is over all arrivals after the warm-up but
/// ASA, which is over those answered (as in the report).
#[derive(Debug, Clone)]
pub struct RowA {
    pub agents: u32,
    /// Offered load per agent (%); above 100 only patience keeps the queue finite.
    pub load_pct: f64,
    pub patience_secs: f64,
    pub arrivals: u64,
    /// Found every agent busy: not offered the moment they came (%).
    pub erlang_waited_pct: f64,
    pub sim_waited_pct: f64,
    pub waited_ci: f64,
    /// Left before an agent accepted (%).
    pub erlang_abandon_pct: f64,
    pub sim_abandon_pct: f64,
    pub abandon_ci: f64,
    /// Mean wait of the answered, arrival to accept (seconds).
    pub erlang_asa_secs: f64,
    pub sim_asa_secs: f64,
    pub asa_ci: f64,
    pub wall_secs: f64,
}

impl RowA {
    /// Whether Erlang A's values lie within the simulation's 95 % intervals.
    pub fn agrees(&self) -> bool {
        within(self.sim_waited_pct, self.erlang_waited_pct, self.waited_ci, PCT_HAIR)
            && within(self.sim_abandon_pct, self.erlang_abandon_pct, self.abandon_ci, PCT_HAIR)
            && within(self.sim_asa_secs, self.erlang_asa_secs, self.asa_ci, SECS_HAIR)
    }
}

/// Runs one queue of `c` agents at `load` (0..) of their capacity: `arrivals` contacts of mean
/// handle time `handle_secs` and, if given, mean patience `patience_secs`; agents accept at once,
/// so a wait ends when the offer is made.
async fn one_queue(
    c: u32,
    load: f64,
    handle_secs: f64,
    patience_secs: Option<f64>,
    arrivals: u64,
    seed: u64,
) -> Result<(Outcome, Scenario, QueueSpec), SimError> {
    let a = load * f64::from(c);
    let per_hour = a / handle_secs * 3600.0;
    let hours = arrivals as f64 / per_hour;
    let scenario = Scenario {
        seed,
        hours,
        accept_delay_secs: 0.0,
        warm_up_secs: hours * 3600.0 * 0.05,
        arrivals: vec![Arrivals {
            queue: "q".into(),
            channel: Channel::Voice,
            per_hour,
            priority: 0,
            handle_secs,
            handle: Distribution::Exponential,
            handle_sd_secs: None,
            patience_secs,
            wrap_up_secs: None,
            recorded: false,
        }],
        reject_percent: 0.0,
        miss_percent: 0.0,
        ready_after_miss_secs: 0.0,
        shifts: Vec::new(),
        recorded: None,
        recorded_start_ms: None,
    };
    let mut queue = QueueSpec::new("q");
    queue.channels = vec![Channel::Voice];
    let agents = (0..c)
        .map(|i| AgentSpec {
            id: format!("a{i:03}"),
            name: String::new(),
            skills: Default::default(),
            capacity: Capacity { voice: 1, chat: 0, sms: 0, email: 0 },
            cross_channel_blocking: None,
            token: String::new(),
            devices: Vec::new(),
        })
        .collect();
    let center = Center { calendars: Vec::new(), queues: vec![queue.clone()], agents };
    let day = draw_arrivals(&scenario);
    let outcome = run(&center, &scenario, &day).await?;
    Ok((outcome, scenario, queue))
}

/// One M/M/c point: `c` agents at `load` (0..1) of their capacity, `arrivals` contacts of mean
/// handle time `handle_secs`.
pub async fn erlang_c_point(c: u32, load: f64, handle_secs: f64, arrivals: u64, seed: u64) -> Result<Row, SimError> {
    let (outcome, scenario, queue) = one_queue(c, load, handle_secs, None, arrivals, seed).await?;
    let a = load * f64::from(c);
    let f = crate::figures(&outcome, &scenario, &[queue]);
    let q = &f.queues[0];
    Ok(Row {
        agents: c,
        load_pct: load * 100.0,
        arrivals: q.arrivals,
        erlang_waited_pct: 100.0 * erlang_c(c, a),
        sim_waited_pct: q.waited_pct,
        waited_ci: q.waited_ci,
        erlang_asa_secs: erlang_c_asa(c, a, handle_secs),
        sim_asa_secs: q.asa_secs,
        asa_ci: q.asa_ci,
        wall_secs: outcome.wall.as_secs_f64(),
    })
}

/// One M/M/c+M point: as [`erlang_c_point`], customers leaving after an exponential patience of
/// mean `patience_secs`.
pub async fn erlang_a_point(
    c: u32,
    load: f64,
    handle_secs: f64,
    patience_secs: f64,
    arrivals: u64,
    seed: u64,
) -> Result<RowA, SimError> {
    let (outcome, scenario, _) = one_queue(c, load, handle_secs, Some(patience_secs), arrivals, seed).await?;
    let theory = erlang_a(c, load * f64::from(c), handle_secs, patience_secs);
    let m = measure(&outcome, &scenario);
    Ok(RowA {
        agents: c,
        load_pct: load * 100.0,
        patience_secs,
        arrivals: m.arrivals,
        erlang_waited_pct: 100.0 * theory.wait_prob,
        sim_waited_pct: m.waited.0,
        waited_ci: m.waited.1,
        erlang_abandon_pct: 100.0 * theory.abandon_prob,
        sim_abandon_pct: m.abandoned.0,
        abandon_ci: m.abandoned.1,
        erlang_asa_secs: theory.asa_secs,
        sim_asa_secs: m.asa.0,
        asa_ci: m.asa.1,
        wall_secs: outcome.wall.as_secs_f64(),
    })
}

/// Erlang A's figures from a run, each as (value, 95 % half-width from batch means over
/// consecutive arrivals).
struct Measured {
    arrivals: u64,
    waited: (f64, f64),
    abandoned: (f64, f64),
    asa: (f64, f64),
}

fn measure(o: &Outcome, s: &Scenario) -> Measured {
    let warm = (s.warm_up_secs * 1000.0) as u64;
    let fates: Vec<_> = o.arrivals.iter().zip(&o.fates).filter(|(a, _)| a.at_ms >= warm).map(|(_, f)| f).collect();
    let pct = |n: usize, of: usize| if of == 0 { f64::NAN } else { 100.0 * n as f64 / of as f64 };
    // A contact waited unless it was offered the moment it came; one that left before any
    // offer waited too.
    let waited = |fs: &[&crate::run::Fate]| pct(fs.iter().filter(|f| f.offered_after_ms != Some(0)).count(), fs.len());
    let abandoned =
        |fs: &[&crate::run::Fate]| pct(fs.iter().filter(|f| f.abandoned_after_ms.is_some()).count(), fs.len());
    let asa = |fs: &[&crate::run::Fate]| {
        let w: Vec<u64> = fs.iter().filter_map(|f| f.answered_after_ms).collect();
        if w.is_empty() { f64::NAN } else { w.iter().sum::<u64>() as f64 / w.len() as f64 / 1000.0 }
    };
    let batch = (fates.len() / BATCHES).max(1);
    let chunks: Vec<&[&crate::run::Fate]> = fates.chunks(batch).take(BATCHES).collect();
    let ci = |f: &dyn Fn(&[&crate::run::Fate]) -> f64| {
        if fates.len() < 2 * BATCHES { f64::NAN } else { half_width(&chunks.iter().map(|c| f(c)).collect::<Vec<_>>()) }
    };
    Measured {
        arrivals: fates.len() as u64,
        waited: (waited(&fates), ci(&waited)),
        abandoned: (abandoned(&fates), ci(&abandoned)),
        asa: (asa(&fates), ci(&asa)),
    }
}

/// The Erlang C table, Markdown.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| agents | load | arrivals | P(wait) Erlang C | P(wait) simulated (95 % CI) | ASA Erlang C | ASA simulated (95 % CI) | within CI |\n|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {:.0} % | {} | {:.1} % | {:.1} % ± {:.1} | {:.1} s | {:.1} s ± {:.1} | {} |\n",
            r.agents,
            r.load_pct,
            r.arrivals,
            r.erlang_waited_pct,
            r.sim_waited_pct,
            r.waited_ci,
            r.erlang_asa_secs,
            r.sim_asa_secs,
            r.asa_ci,
            if r.agrees() { "yes" } else { "no" }
        ));
    }
    out
}

/// The Erlang A table, Markdown, with what each column counts.
pub fn table_a(rows: &[RowA]) -> String {
    let mut out = String::from(
        "| agents | load | patience | arrivals | P(wait) Erlang A | P(wait) simulated (95 % CI) | abandoned Erlang A | abandoned simulated (95 % CI) | ASA Erlang A | ASA simulated (95 % CI) | within CI |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {:.0} % | {:.0} s | {} | {:.1} % | {:.1} % ± {:.1} | {:.1} % | {:.1} % ± {:.1} | {:.1} s | {:.1} s ± {:.1} | {} |\n",
            r.agents,
            r.load_pct,
            r.patience_secs,
            r.arrivals,
            r.erlang_waited_pct,
            r.sim_waited_pct,
            r.waited_ci,
            r.erlang_abandon_pct,
            r.sim_abandon_pct,
            r.abandon_ci,
            r.erlang_asa_secs,
            r.sim_asa_secs,
            r.asa_ci,
            if r.agrees() { "yes" } else { "no" }
        ));
    }
    out.push_str(
        "\nP(wait): arrivals that found every agent busy (not offered the moment they came), those who \
         left before an offer included; abandoned: arrivals who left before an agent accepted; ASA: \
         mean wait of the answered, arrival to accept (agents accept at once). All over arrivals after \
         the warm-up; patience is exponential with the mean shown; intervals from 20 batch means of \
         consecutive arrivals.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use std::cmp::Reverse;
    use std::collections::{BinaryHeap, VecDeque};

    use super::*;
    use crate::run::Arrival;

    /// The short version (the long table: `switchboard simulate --validate`).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_simulated_queue_matches_erlang_c() {
        let r = erlang_c_point(5, 0.7, 60.0, 3000, 7).await.unwrap();
        eprintln!("{}", table(std::slice::from_ref(&r)));
        assert!(r.arrivals > 2500, "{r:?}");
        assert!(r.agrees(), "{}", table(std::slice::from_ref(&r)));
    }

    /// Overloaded on purpose: without patience the queue would grow for ever.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_simulated_queue_with_patience_matches_erlang_a() {
        let r = erlang_a_point(5, 1.1, 60.0, 60.0, 3000, 7).await.unwrap();
        eprintln!("{}", table_a(std::slice::from_ref(&r)));
        assert!(r.arrivals > 2500 && r.sim_abandon_pct > 5.0, "{r:?}");
        assert!(r.agrees(), "{}", table_a(std::slice::from_ref(&r)));
    }

    /// The textbook queue itself, first come first served with `c` agents, played on the same
    /// draws: (waited until offered, left after).
    fn textbook(c: u32, day: &[Arrival]) -> Vec<(Option<u64>, Option<u64>)> {
        let mut fates = vec![(None, None); day.len()];
        // (at, kind: 0 arrive, 1 agent free, 2 patience out, contact)
        let mut events: BinaryHeap<Reverse<(u64, u8, usize)>> =
            day.iter().enumerate().map(|(k, a)| Reverse((a.at_ms, 0, k))).collect();
        let (mut free, mut line) = (c, VecDeque::new());
        while let Some(Reverse((t, kind, k))) = events.pop() {
            match kind {
                0 => {
                    if let Some(p) = day[k].patience_ms {
                        events.push(Reverse((t + p, 2, k)));
                    }
                    if free > 0 {
                        free -= 1;
                        fates[k].0 = Some(0);
                        events.push(Reverse((t + day[k].handle_ms, 1, k)));
                    } else {
                        line.push_back(k);
                    }
                }
                1 => match line.iter().position(|j: &usize| fates[*j].1.is_none()) {
                    Some(i) => {
                        let j = line.drain(..=i).next_back().expect("found");
                        fates[j].0 = Some(t - day[j].at_ms);
                        events.push(Reverse((t + day[j].handle_ms, 1, j)));
                    }
                    None => {
                        line.clear();
                        free += 1;
                    }
                },
                _ => {
                    if fates[k].0.is_none() {
                        fates[k].1 = Some(t - day[k].at_ms);
                    }
                }
            }
        }
        fates
    }

    /// Stronger than any interval: on the same draws, the routing functions give every contact
    /// exactly the fate the textbook queue gives it, so the tables' differences are the draws'.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_routing_plays_the_textbook_queue_contact_for_contact() {
        let (o, _, _) = one_queue(10, 1.1, 180.0, Some(120.0), 1500, 3).await.unwrap();
        let want = textbook(10, &o.arrivals);
        let got: Vec<_> = o.fates.iter().map(|f| (f.answered_after_ms, f.abandoned_after_ms)).collect();
        assert!(want.iter().filter(|f| f.1.is_some()).count() > 100, "overloaded: many leave");
        let first = (0..got.len()).find(|k| got[*k] != want[*k]);
        assert_eq!(first, None, "{:?}", first.map(|k| (got[k], want[k])));
        assert!(o.fates.iter().all(|f| f.offered_after_ms == f.answered_after_ms || f.answered_after_ms.is_none()));
    }
}
