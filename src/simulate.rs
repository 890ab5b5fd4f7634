//! `switchboard simulate`: a day of arrivals through today's configuration and, side by side, a
//! proposed one (`switchboard_sim` runs the real routing functions on a private Redis), or the
//! Erlang C and Erlang A validation tables (`--validate`).

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::config::{Config, ProcessEnv};
use switchboard_sim::{Center, Scenario, draw_arrivals, figures, recorded, report, run_on_own_runtime, validation};

#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Today's config (its agents, queues and calendars); checked like `check-config` first.
    #[arg(long, short, required_unless_present = "validate")]
    pub config: Option<PathBuf>,
    /// A proposed config, run against the same day.
    #[arg(long)]
    pub proposed: Option<PathBuf>,
    /// The day: arrivals and agent behaviour (`docs/simulate.md`).
    #[arg(long, required_unless_present = "validate")]
    pub scenario: Option<PathBuf>,
    /// Overrides the scenario's seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where the report goes (report.md, report.csv, chart.svg).
    #[arg(long, default_value = "simulation")]
    pub out: PathBuf,
    /// Instead: the validation tables, Erlang C (M/M/c at 70, 85 and 95 % load) and Erlang A
    /// (M/M/c+M, mean patience 120 s, at 85, 95 and 110 %).
    #[arg(long)]
    pub validate: bool,
    /// With --validate: contacts per point.
    #[arg(long, default_value_t = 20_000)]
    pub arrivals: u64,
}

fn center(path: &Path) -> anyhow::Result<Center> {
    let cfg = Config::load(Some(path), &ProcessEnv).with_context(|| format!("{}", path.display()))?;
    Ok(Center { calendars: cfg.calendars, queues: cfg.queues, agents: cfg.agents })
}

pub async fn simulate(args: SimulateArgs) -> anyhow::Result<String> {
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    if args.validate {
        let seed = args.seed.unwrap_or(1);
        // Three points at a time: the tables' two kinds one after the other.
        let c_points = [(10, 0.70), (10, 0.85), (10, 0.95)]
            .map(|(c, load)| validation::erlang_c_point(c, load, 180.0, args.arrivals, seed));
        let c_rows = futures::future::try_join_all(c_points).await?;
        let a_points = [(10, 0.85), (10, 0.95), (10, 1.10)]
            .map(|(c, load)| validation::erlang_a_point(c, load, 180.0, 120.0, args.arrivals, seed));
        let a_rows = futures::future::try_join_all(a_points).await?;
        let md = format!(
            "# Simulated M/M/c against Erlang C\n\n{}\n# Simulated M/M/c+M against Erlang A\n\n{}",
            validation::table(&c_rows),
            validation::table_a(&a_rows)
        );
        std::fs::write(args.out.join("validation.md"), &md)?;
        return Ok(md);
    }
    let (config, scenario_path) = (args.config.expect("clap requires it"), args.scenario.expect("clap requires it"));
    let text = std::fs::read_to_string(&scenario_path).with_context(|| format!("{}", scenario_path.display()))?;
    let mut scenario = Scenario::parse(&text).with_context(|| format!("{}", scenario_path.display()))?;
    if let Some(s) = args.seed {
        scenario.seed = s;
    }
    // Both configurations are checked before anything runs.
    let mut centers = vec![("today", center(&config)?)];
    if let Some(p) = &args.proposed {
        centers.push(("proposed", center(p)?));
    }
    for (label, c) in &centers {
        for (i, a) in scenario.arrivals.iter().enumerate() {
            if !c.queues.iter().any(|q| q.name == a.queue) {
                anyhow::bail!(
                    "{}: arrivals[{i}].queue: the {label} config has no queue {:?}",
                    scenario_path.display(),
                    a.queue
                );
            }
        }
    }
    for (label, c) in &centers {
        for (i, sh) in scenario.shifts.iter().enumerate() {
            for (j, p) in sh.agents.iter().enumerate() {
                if !c.agents.iter().any(|a| switchboard_sim::scenario::matches(p, &a.id)) {
                    anyhow::bail!(
                        "{}: shifts[{i}].agents[{j}]: {p:?} names no agent of the {label} config",
                        scenario_path.display()
                    );
                }
            }
        }
    }
    let mut day = Vec::new();
    if let Some(file) = scenario.recorded.clone() {
        // Relative to the scenario, as a config's paths are to the config.
        let path = scenario_path.parent().map_or(file.clone(), |dir| dir.join(&file));
        let text = std::fs::read_to_string(&path).with_context(|| format!("recorded = {}", path.display()))?;
        let rows = recorded::parse(&text).with_context(|| format!("{}", path.display()))?;
        for (label, c) in &centers {
            if let Some(r) = rows.iter().find(|r| !c.queues.iter().any(|q| q.name == r.queue)) {
                anyhow::bail!(
                    "{}: line {}: queue: the {label} config has no queue {:?}",
                    path.display(),
                    r.line,
                    r.queue
                );
            }
        }
        day = recorded::add_to(&mut scenario, &rows).with_context(|| format!("{}", path.display()))?;
    }
    day.extend(draw_arrivals(&scenario));
    day.sort_by_key(|a| (a.at_ms, a.stream));
    // The configurations run at once, each on its own private Redis.
    let outcomes = tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            let runs: Vec<_> =
                centers.iter().map(|(_, c)| scope.spawn(|| run_on_own_runtime(c, &scenario, &day))).collect();
            runs.into_iter().map(|r| r.join().expect("a simulation thread panicked")).collect::<Result<Vec<_>, _>>()
        })
    })?;
    let mut results = Vec::new();
    for ((label, c), outcome) in centers.iter().zip(outcomes) {
        eprintln!(
            "{label}: {} contacts, {} routing events in {:.1} s",
            day.len(),
            outcome.calls,
            outcome.wall.as_secs_f64()
        );
        results.push((
            *label,
            figures(&outcome, &scenario, &c.queues),
            switchboard_sim::figures::day(&outcome, &scenario, &c.queues),
        ));
    }
    let runs: Vec<(&str, &switchboard_sim::Figures)> = results.iter().map(|(l, f, _)| (*l, f)).collect();
    let title = format!("Simulated day: {} hours, seed {}", scenario.hours, scenario.seed);
    let md = report::markdown(&title, &runs);
    std::fs::write(args.out.join("report.md"), &md)?;
    std::fs::write(args.out.join("report.csv"), report::csv(&runs))?;
    let days: Vec<(&str, &switchboard_sim::figures::Day)> = results.iter().map(|(l, _, d)| (*l, d)).collect();
    std::fs::write(args.out.join("chart.svg"), report::chart(&title, &days))?;
    Ok(md)
}
