//! The `closeout` command line. Parsing and wiring only; the work is in the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use closeout::{bench, config, loadbench, sandbox, serve};

#[derive(Debug, Parser)]
#[command(
    name = "closeout",
    version,
    about = "Durable account-closure orchestrator",
    after_help = "Configuration: defaults < --config FILE < CLOSEOUT_* environment < flags; \
                  every key is listed in docs/configuration.md"
)]
struct Cli {
    /// TOML configuration file.
    #[arg(long, env = "CLOSEOUT_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Database URL: sqlite://FILE or postgres://USER@HOST/DB [env: CLOSEOUT_DATABASE_URL]
    /// [default: sqlite://closeout.db]
    #[arg(long, global = true)]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Apply database migrations and exit.
    Migrate,
    /// Run the engine's workers until SIGTERM or Ctrl-C.
    Serve(ServeArgs),
    /// Run the partner sandbox alone until SIGTERM or Ctrl-C.
    Sandbox(SandboxArgs),
    /// Measure engine throughput against the raw commit rate of each store.
    Bench(bench::Args),
    /// Measure the cooldown expiry job on N due entries of each store.
    BenchExpiry(loadbench::ExpiryArgs),
    /// Measure channel submissions over HTTP against a real serve, open-loop.
    BenchHttp(loadbench::HttpArgs),
    /// HTTP API helpers.
    #[command(subcommand)]
    Api(ApiCommand),
    /// The phone cooldown registry.
    #[command(subcommand)]
    Cooldown(CooldownCommand),
    /// The tamper-evident history.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Erase the personal data of requests that ended more than `[retention]
    /// personal_data` ago, once, and exit: for cron, a CronJob or a systemd timer.
    Purge,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Recompute every workflow's history hash chain; report the first broken link and
    /// exit with status 1 if there is one.
    Verify,
}

#[derive(Debug, Subcommand)]
enum CooldownCommand {
    /// Release every cooldown whose six months have passed, once, and exit: for cron, a
    /// Kubernetes CronJob or a systemd timer. Safe beside `serve`'s own schedule.
    Expire,
    /// Load closures made before go-live from a CSV file (header row `phone,scope,closed_at`;
    /// closed_at RFC 3339 or YYYY-MM-DD, midnight Vietnam time). Bad rows are reported by
    /// line and skipped; the rest are imported. Running it again changes nothing. Exits 2
    /// when any row was rejected.
    Import {
        /// The CSV file.
        file: PathBuf,
        /// Validate and count, write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ApiCommand {
    /// Read a key from stdin and print its SHA-256 hash, the form `[api]` key_hashes take.
    HashKey,
}

// The flags carry no clap defaults and read no environment: both come from the
// configuration layers below them, so that a flag left out leaves the key to the file
// and the environment.
#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Directory of workflow definitions (*.toml) [env: CLOSEOUT_WORKFLOWS] [default: workflows]
    #[arg(long)]
    workflows: Option<PathBuf>,
    /// Lease owner name [env: CLOSEOUT_WORKER_ID] [default: host-pid-random]
    #[arg(long)]
    worker_id: Option<String>,
    /// How long a claimed workflow stays leased without progress [env: CLOSEOUT_LEASE_TTL]
    /// [default: 60s]
    #[arg(long, value_parser = humantime::parse_duration)]
    lease_ttl: Option<Duration>,
    /// Workflows driven concurrently by this process [env: CLOSEOUT_MAX_IN_FLIGHT]
    /// [default: 256]
    #[arg(long)]
    max_in_flight: Option<usize>,
    /// Fallback polling interval for due work [env: CLOSEOUT_POLL_INTERVAL] [default: 500ms]
    #[arg(long, value_parser = humantime::parse_duration)]
    poll_interval: Option<Duration>,
    /// Effect recorder URL for the diag.http action (tests and demos) [env: CLOSEOUT_DIAG_URL]
    #[arg(long)]
    diag_url: Option<String>,
    /// Address of the HTTP API [env: CLOSEOUT_API__LISTEN] [default: 127.0.0.1:8080]
    #[arg(long)]
    api_listen: Option<SocketAddr>,
}

#[derive(Debug, clap::Args)]
struct SandboxArgs {
    /// Address to listen on [env: CLOSEOUT_SANDBOX__LISTEN] [default: 127.0.0.1:8700]
    #[arg(long)]
    listen: Option<SocketAddr>,
}

/// Resolves on SIGTERM or Ctrl-C. The handlers are installed when this is called, not
/// when the future is first polled, so a signal sent while the store opens or the sandbox
/// starts is not lost (the default action would kill the process mid-startup).
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = interrupt.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

/// The layered configuration and its store, migrated: what every one-shot command needs.
async fn open(
    file: Option<&std::path::Path>,
    flags: &config::Flags,
) -> anyhow::Result<(config::Config, closeout_store::AnyStore)> {
    let config = config::load(file, flags)?;
    let store = serve::open_store(&config.database_url.0).await?;
    Ok((config, store))
}

/// Prints a one-shot job's report; `done` words the rows it changed.
fn print_report(
    report: closeout_engine::jobs::Report,
    lock: &str,
    done: impl FnOnce(u64) -> String,
) {
    match report {
        closeout_engine::jobs::Report::Skipped => {
            println!("skipped: another replica holds the {lock} lock")
        }
        closeout_engine::jobs::Report::Done {
            rows,
            batches,
            elapsed,
        } => println!(
            "{} in {batches} batches ({} ms)",
            done(rows),
            elapsed.as_millis()
        ),
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
    let shutdown = shutdown_signal()?;
    let mut flags = config::Flags {
        database_url: cli.database_url.clone(),
        ..config::Flags::default()
    };
    match cli.command {
        Command::Migrate => {
            let (config, _) = open(cli.config.as_deref(), &flags).await?;
            eprintln!(
                "migrations applied to {}",
                serve::redact_url(&config.database_url.0)
            );
        }
        Command::Serve(args) => {
            flags.workflows = args.workflows;
            flags.worker_id = args.worker_id;
            flags.lease_ttl = args.lease_ttl;
            flags.max_in_flight = args.max_in_flight;
            flags.poll_interval = args.poll_interval;
            flags.diag_url = args.diag_url;
            flags.api_listen = args.api_listen;
            let config = config::load(cli.config.as_deref(), &flags)?;
            serve::run(config.into(), shutdown).await?;
        }
        Command::Sandbox(args) => {
            flags.sandbox_listen = args.listen;
            let config = config::load(cli.config.as_deref(), &flags)?;
            let listen = config.sandbox.listen.unwrap_or(sandbox::DEFAULT_LISTEN);
            sandbox::run(listen, shutdown).await?;
        }
        Command::Bench(args) => bench::run(args).await?,
        Command::BenchExpiry(args) => loadbench::expiry(args).await?,
        Command::BenchHttp(args) => loadbench::http(args).await?,
        Command::Purge => {
            let (config, store) = open(cli.config.as_deref(), &flags).await?;
            let report = closeout_engine::jobs::purge(
                store.into_dyn().as_ref(),
                &closeout_engine::clock::SystemClock,
                &serve::default_worker_id(),
                config.retention.personal_data,
                config.retention.purge_batch,
                serve::JOB_LOCK,
            )
            .await?;
            print_report(report, "personal-data-purge", |rows| {
                format!("purged the personal data of {rows} finished requests")
            });
        }
        Command::Audit(AuditCommand::Verify) => {
            let (_, store) = open(cli.config.as_deref(), &flags).await?;
            let report = store.verify_audit().await?;
            match report.broken {
                None => println!(
                    "audit chain intact: {} workflows, {} history entries",
                    report.workflows, report.entries
                ),
                Some(link) => {
                    println!(
                        "audit chain BROKEN at workflow {} entry {}: {}",
                        link.workflow_id, link.seq, link.problem
                    );
                    std::process::exit(1);
                }
            }
        }
        Command::Cooldown(CooldownCommand::Expire) => {
            let (config, store) = open(cli.config.as_deref(), &flags).await?;
            let report = closeout_cooldown::jobs::expire(
                store.into_dyn().as_ref(),
                &closeout_engine::clock::SystemClock,
                &serve::default_worker_id(),
                config.cooldown.expire_batch,
                serve::JOB_LOCK,
            )
            .await?;
            print_report(report, "cooldown-expire", |rows| {
                format!("released {rows} cooldowns")
            });
        }
        Command::Cooldown(CooldownCommand::Import { file, dry_run }) => {
            let config = config::load(cli.config.as_deref(), &flags)?;
            // No development key here: entries hashed under a key serve does not use
            // would never match.
            let keys = config.cooldown.keys()?.ok_or_else(|| {
                anyhow::anyhow!(
                    "[cooldown] hash_keys is required to import: set cooldown.hash_keys.1 \
                     (or CLOSEOUT_COOLDOWN__HASH_KEYS__1_FILE) to the key serve uses"
                )
            })?;
            let input = std::fs::File::open(&file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            let store = serve::open_store(&config.database_url.0).await?;
            let summary = closeout::import::import(
                store.into_dyn().as_ref(),
                &keys,
                std::io::BufReader::new(input),
                dry_run,
                chrono::Utc::now(),
            )
            .await?;
            print!("{}", summary.render(dry_run));
            if !summary.rejected.is_empty() {
                std::process::exit(2);
            }
        }
        Command::Api(ApiCommand::HashKey) => {
            // From stdin, not an argument, so the key stays out of shell history and
            // the process list.
            let mut key = String::new();
            std::io::stdin().read_line(&mut key)?;
            let key = key.trim_end_matches(['\r', '\n']);
            anyhow::ensure!(
                key.len() >= 16,
                "a key must be at least 16 characters; generate one with e.g. `openssl rand -hex 32`"
            );
            println!("{}", closeout_api::auth::hash_key(key));
        }
    }
    Ok(())
}
