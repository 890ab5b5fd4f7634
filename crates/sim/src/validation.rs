//! The simulator's credential: for one queue of `c` agents with Poisson arrivals and exponential
//! handle times and nobody leaving (M/M/c), the simulated probability of waiting and mean wait
//! match Erlang C within the run's confidence interval.

use switchboard_model::{AgentSpec, Capacity, Channel, QueueSpec};

use crate::erlang::{erlang_c, erlang_c_asa};
use crate::run::{Center, SimError, draw_arrivals, run};
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

impl Row {
    /// Whether Erlang C's values lie within the simulation's 95 % intervals (widened by a
    /// hair for the clock's millisecond rounding).
    pub fn agrees(&self) -> bool {
        (self.sim_waited_pct - self.erlang_waited_pct).abs() <= self.waited_ci + 0.5
            && (self.sim_asa_secs - self.erlang_asa_secs).abs() <= self.asa_ci + 0.05
    }
}

/// One M/M/c point: `c` agents at `load` (0..1) of their capacity, `arrivals` contacts of mean
/// handle time `handle_secs`.
pub async fn erlang_c_point(c: u32, load: f64, handle_secs: f64, arrivals: u64, seed: u64) -> Result<Row, SimError> {
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
            patience_secs: None,
        }],
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

/// The table, Markdown.
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The short version (the long table: `switchboard simulate --validate`).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_simulated_queue_matches_erlang_c() {
        let r = erlang_c_point(5, 0.7, 60.0, 3000, 7).await.unwrap();
        eprintln!("{}", table(std::slice::from_ref(&r)));
        assert!(r.arrivals > 2500, "{r:?}");
        assert!(r.agrees(), "{}", table(std::slice::from_ref(&r)));
    }
}
