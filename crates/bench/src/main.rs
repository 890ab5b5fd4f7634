//! `switchboard-bench`: routing throughput and latency through the real path — the same Redis
//! functions, the same gRPC desktop streams, the daemon in-process — against a Redis it starts
//! itself, next to Redis's own ceiling on the same machine.
//!
//! A benchmark, not a test: it reports figures and never fails because the machine is slow. It is
//! its own binary so that its dependencies (plotting, histograms) stay out of the daemon.

mod args;
mod ceiling;
mod center;
mod csv;
mod cti;
mod daemon;
mod desktop;
mod domains;
mod info;
mod load;
mod phase;
mod plot;
mod point;
mod procfs;
mod report;
mod rng;
mod row;
mod run;
mod sample;
mod shared;
mod slowlog;
mod sms;
mod sweep;
mod table;

use args::BenchArgs;

// The daemon runs in-process here, so it allocates as the `switchboard` binary does.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Routing throughput and latency against a Redis of its own (`docs/benchmarks.md`).
#[derive(clap::Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    args: BenchArgs,
}

fn main() -> std::process::ExitCode {
    let cli = <Cli as clap::Parser>::parse();
    let run = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(anyhow::Error::from);
    match run.and_then(|rt| rt.block_on(run::run_bench(cli.args))) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
