//! The `closeout` command line. Parsing and wiring only; the work is in the library.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use closeout::{actions, bench, serve};

#[derive(Debug, Parser)]
#[command(
    name = "closeout",
    version,
    about = "Durable account-closure orchestrator"
)]
struct Cli {
    /// Database URL: sqlite://FILE or postgres://USER@HOST/DB.
    #[arg(
        long,
        env = "CLOSEOUT_DATABASE_URL",
        default_value = "sqlite://closeout.db",
        global = true
    )]
    database_url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply database migrations and exit.
    Migrate,
    /// Run the engine's workers until SIGTERM or Ctrl-C.
    Serve(ServeArgs),
    /// Measure engine throughput against the raw commit rate of each store.
    Bench(bench::Args),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Directory of workflow definitions (*.toml).
    #[arg(long, env = "CLOSEOUT_WORKFLOWS", default_value = "workflows")]
    workflows: PathBuf,
    /// Lease owner name; defaults to host-pid-random.
    #[arg(long, env = "CLOSEOUT_WORKER_ID")]
    worker_id: Option<String>,
    /// How long a claimed workflow stays leased without progress (e.g. 60s).
    #[arg(long, env = "CLOSEOUT_LEASE_TTL", default_value = "60s", value_parser = humantime::parse_duration)]
    lease_ttl: Duration,
    /// Workflows driven concurrently by this process.
    #[arg(long, env = "CLOSEOUT_MAX_IN_FLIGHT", default_value_t = 256)]
    max_in_flight: usize,
    /// Fallback polling interval for due work.
    #[arg(long, env = "CLOSEOUT_POLL_INTERVAL", default_value = "500ms", value_parser = humantime::parse_duration)]
    poll_interval: Duration,
    /// Effect recorder URL for the diag.http action (tests and demos).
    #[arg(long, env = "CLOSEOUT_DIAG_URL")]
    diag_url: Option<String>,
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CLOSEOUT_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Migrate => {
            serve::open_store(&cli.database_url).await?;
            eprintln!(
                "migrations applied to {}",
                serve::redact_url(&cli.database_url)
            );
        }
        Command::Serve(args) => {
            let options = serve::Options {
                database_url: cli.database_url,
                workflows: args.workflows,
                worker_id: args.worker_id,
                lease_ttl: args.lease_ttl,
                max_in_flight: args.max_in_flight,
                poll_interval: args.poll_interval,
                diag: actions::diag::Options {
                    http_url: args.diag_url,
                },
            };
            serve::run(options, shutdown_signal()).await?;
        }
        Command::Bench(args) => bench::run(args).await?,
    }
    Ok(())
}
