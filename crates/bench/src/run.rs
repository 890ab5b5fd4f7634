//! A run: the ceilings, then one point (the headline run), the CTI point, the SMS point and the
//! domains point (each as the flags say), or the sweep, and its report written.

use crate::args::BenchArgs;
use crate::ceiling::Ceiling;
use crate::csv::csv;
use crate::cti;
use crate::domains::{self, domains_csv};
use crate::point::point;
use crate::report::report;
use crate::row::Row;
use crate::sms;
use crate::sweep::sweep;

pub async fn run_bench(args: BenchArgs) -> anyhow::Result<()> {
    args.validate()?;
    // Interrupted, the run is dropped where it stands, and with it the Redis servers it started
    // (each stopped by PID as it drops); exiting on the signal itself would leave them running.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = measure(args) => r,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted (SIGINT); the Redis servers it started are stopped"),
        _ = term.recv() => anyhow::bail!("terminated (SIGTERM); the Redis servers it started are stopped"),
    }
}

async fn measure(args: BenchArgs) -> anyhow::Result<()> {
    let ceiling = Ceiling::measure().await?;
    std::fs::create_dir_all(&args.out)?;
    if !args.sweep {
        let write = |rows: &[Row]| -> anyhow::Result<String> {
            let md = report(&args, rows, ceiling);
            std::fs::write(args.out.join("bench.md"), &md)?;
            std::fs::write(args.out.join("bench.csv"), csv(rows, ceiling))?;
            Ok(md)
        };
        let mut rows = Vec::new();
        if args.routing_point() {
            rows = point(&args, args.rate).await?;
            // Written now too, so a point that fails later leaves the earlier points' report.
            write(&rows)?;
        }
        if args.cti_point() {
            rows.extend(cti::point(&args).await?);
            write(&rows)?;
        }
        if args.sms_point() {
            rows.extend(sms::point(&args).await?);
            write(&rows)?;
        }
        if args.domains_point() {
            rows.extend(domains::point(&args).await?);
        }
        print!("{}", write(&rows)?);
        println!("\nwritten: {0}/bench.md, {0}/bench.csv", args.out.display());
        if let Some(csv) = domains_csv(&rows) {
            std::fs::write(args.out.join("domains.csv"), csv)?;
            println!("written: {}/domains.csv", args.out.display());
        }
        return Ok(());
    }
    sweep(&args, ceiling).await
}
