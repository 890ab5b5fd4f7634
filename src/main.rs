use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use switchboard::config::{Config, ProcessEnv};

// With 10,000 agent streams glibc's malloc spent nearly as much CPU as the daemon's own code
// (most of its calls from parsing Redis replies: a small allocation per value);
// jemalloc cuts the daemon's CPU per routing decision by a third (`docs/benchmarks.md`).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Omni-channel contact-center routing daemon.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the routing daemon.
    Serve {
        /// TOML config file; without one, defaults apply (Redis on 127.0.0.1:6379).
        #[arg(long, short, env = "SWITCHBOARD_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Run the built-in CRM store on its own (gRPC `switchboard.crm.v1.CrmStore`), or read its
    /// log (`crm export`).
    #[command(args_conflicts_with_subcommands = true)]
    Crm {
        #[command(subcommand)]
        cmd: Option<CrmCommand>,
        #[arg(long, short, env = "SWITCHBOARD_CONFIG")]
        config: Option<PathBuf>,
        /// Overrides crm.database (`sqlite://file.db?mode=rwc` or `postgres://...`).
        #[arg(long)]
        database: Option<String>,
        /// Overrides crm.listen.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Admin, supervisor and channel calls against a running daemon.
    Ctl {
        #[arg(long, default_value = "http://127.0.0.1:50051", env = "SWITCHBOARD_SERVER")]
        server: String,
        /// API key (or JWT) to call with.
        #[arg(long, env = "SWITCHBOARD_API_KEY", hide_env_values = true)]
        key: Option<String>,
        /// File holding the key; default ~/.config/switchboard/admin.key (written by scripts/run.sh).
        #[arg(long, env = "SWITCHBOARD_API_KEY_FILE")]
        key_file: Option<PathBuf>,
        /// table: for people; json: the API's JSON mapping (`watch`: one object per line).
        #[arg(long, value_enum, default_value_t, global = true)]
        output: switchboard_cli::Output,
        #[command(subcommand)]
        cmd: switchboard_cli::Ctl,
    },
    /// An interactive agent desktop in the terminal.
    Desktop {
        #[arg(long, default_value = "http://127.0.0.1:50051", env = "SWITCHBOARD_SERVER")]
        server: String,
        #[arg(long)]
        agent: String,
        #[arg(long, env = "SWITCHBOARD_AGENT_TOKEN", hide_env_values = true)]
        token: String,
    },
    /// What-if: a day of arrivals through today's config and a proposed one, side by side (the
    /// real routing functions, on a private Redis, on a virtual clock).
    Simulate(switchboard::simulate::SimulateArgs),
    /// Validate a config file and exit.
    CheckConfig {
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum CrmCommand {
    Export(switchboard::crm_export::ExportArgs),
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // One line, no backtrace: what an operator reads is the problem, not the stack.
            eprintln!("error: {}", one_line(&error));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, leaving out a cause whose text the message before it
/// already shows (errors that print their source would otherwise say it twice).
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::CheckConfig { config } => {
            Config::load(Some(&config), &ProcessEnv)?;
            println!("{}: ok", config.display());
            Ok(())
        }
        Command::Crm { cmd: Some(CrmCommand::Export(args)), .. } => {
            runtime()?.block_on(switchboard::crm_export::export(args))
        }
        Command::Crm { cmd: None, config, database, listen } => {
            let mut cfg = Config::load(config.as_deref(), &ProcessEnv)?;
            if let Some(d) = database {
                cfg.crm.database = d;
            }
            if let Some(l) = listen {
                cfg.crm.listen = l;
            }
            cfg.validate()?;
            switchboard::telemetry::init_logging(cfg.log.format, &cfg.log.filter_directive(&ProcessEnv));
            runtime()?.block_on(crm(cfg))
        }
        Command::Simulate(args) => {
            let md = runtime()?.block_on(switchboard::simulate::simulate(args))?;
            print!("{md}");
            Ok(())
        }
        Command::Ctl { server, key, key_file, output, cmd } => {
            let key = switchboard_cli::resolve_key(key, key_file)?;
            runtime()?.block_on(switchboard_cli::ctl(&server, key, output, cmd))
        }
        Command::Desktop { server, agent, token } => {
            runtime()?.block_on(switchboard_cli::desktop(&server, &agent, &token))
        }
        Command::Serve { config } => {
            let cfg = Config::load(config.as_deref(), &ProcessEnv)?;
            switchboard::telemetry::init_logging(cfg.log.format, &cfg.log.filter_directive(&ProcessEnv));
            runtime()?.block_on(serve(cfg))
        }
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()
}

async fn serve(cfg: Config) -> anyhow::Result<()> {
    let grpc = tokio::net::TcpListener::bind(cfg.server.grpc_listen)
        .await
        .with_context(|| format!("binding gRPC listener {}", cfg.server.grpc_listen))?;
    let http = tokio::net::TcpListener::bind(cfg.server.http_listen)
        .await
        .with_context(|| format!("binding HTTP listener {}", cfg.server.http_listen))?;
    let shutdown = CancellationToken::new();
    tokio::spawn(on_signal(shutdown.clone()));
    switchboard::server::Server::new(cfg).run(grpc, http, shutdown).await?;
    Ok(())
}

async fn crm(cfg: Config) -> anyhow::Result<()> {
    let db = switchboard_crm::CrmDb::open(switchboard::server::crm_options(&cfg)).await?;
    let listener = tokio::net::TcpListener::bind(cfg.crm.listen)
        .await
        .with_context(|| format!("binding CRM listener {}", cfg.crm.listen))?;
    tracing::info!(message = "Built-in CRM serving.", listen = %cfg.crm.listen);
    let shutdown = CancellationToken::new();
    tokio::spawn(on_signal(shutdown.clone()));
    let keys = cfg.auth.static_keys().map_err(|(key, message)| anyhow::anyhow!("invalid config: {key}: {message}"))?;
    if keys.is_empty() {
        tracing::warn!(
            message = "No keys configured: every call but health will be refused. Add [[auth.keys]] (role crm for the daemon, admin for erasure) or set SWITCHBOARD_ADMIN_KEY."
        );
    }
    let auth = std::sync::Arc::new(cfg.tls.map_client_roles(switchboard_auth::Authenticator::new(keys)));
    let tls = cfg.tls.server(&[b"h2"])?;
    if let Some(t) = &tls {
        t.clone().spawn_reloader(cfg.tls.reload_every(), shutdown.clone());
    }
    switchboard::tls::warn_if_plain("crm", cfg.crm.listen, tls.is_some());
    switchboard_crm::serve(db, listener, tls, auth, shutdown).await?;
    Ok(())
}

async fn on_signal(shutdown: CancellationToken) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!(message = "Shutdown signal received.");
    shutdown.cancel();
}
