//! The scaling series: agents, waiting interactions and skill combinations each grown around the
//! other settings, a fresh point for each, then latency plotted against scale.

use crate::args::BenchArgs;
use crate::ceiling::Ceiling;
use crate::csv::csv;
use crate::plot::plot;
use crate::point::point;
use crate::report::sweep_report;

/// Writes `sweep.md` and `sweep.csv` after each point, then `sweep.svg`.
pub async fn sweep(args: &BenchArgs, ceiling: Ceiling) -> anyhow::Result<()> {
    let rate = if args.rate == 0 { 500 } else { args.rate };
    // One paced rate a point keeps a sweep's points comparable and its run time bounded.
    let base = BenchArgs { latency_rates: Vec::new(), ..args.clone() };
    let mut series: Vec<(&str, Vec<(u64, BenchArgs)>)> = Vec::new();
    let vary = |f: &dyn Fn(&mut BenchArgs, u64), xs: &[u64]| {
        xs.iter()
            .map(|&x| {
                let mut a = base.clone();
                f(&mut a, x);
                (x, a)
            })
            .collect::<Vec<_>>()
    };
    series.push(("agents", vary(&|a, x| a.agents = x as usize, &[1_000, 10_000, 50_000])));
    series.push(("waiting", vary(&|a, x| a.backlog = x as usize, &[1_000, 10_000, 100_000])));
    series.push(("skill combinations", vary(&|a, x| a.combos = x as usize, &[10, 100, 1_000])));
    let mut all = Vec::new();
    for (name, points) in series {
        for (x, a) in points {
            println!("\nsweep: {name} = {x}");
            let mut rows = point(&a, rate).await?;
            for r in &mut rows {
                r.series = name.to_string();
                r.x = x;
            }
            all.extend(rows);
            // Each point's table as it comes, so a long sweep shows progress.
            std::fs::write(args.out.join("sweep.md"), sweep_report(args, &all, ceiling, rate))?;
            std::fs::write(args.out.join("sweep.csv"), csv(&all, ceiling))?;
        }
    }
    plot(&all, &args.out.join("sweep.svg"), rate)?;
    print!("{}", sweep_report(args, &all, ceiling, rate));
    println!("\nwritten: {0}/sweep.md, {0}/sweep.csv, {0}/sweep.svg", args.out.display());
    Ok(())
}
