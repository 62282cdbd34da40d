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
    /// Flag workflows in one state longer than its `[stuck] after` threshold (and clear
    /// flags that no longer apply), once, print how many are stuck by state, and exit.
    Sweep,
    /// Deletion certificates: check one, or make a signing key.
    #[command(subcommand)]
    Certificate(CertificateCommand),
    /// Operations over the HTTP API: list, show, approve, reject, retry, resume, skip,
    /// cancel, and bulk retry/resume/cancel (docs/ops-cli.md).
    Requests(closeout::requests::Args),
}

#[derive(Debug, Subcommand)]
enum CertificateCommand {
    /// Check a certificate's Ed25519 signature against the configured keys
    /// (`[certificates]`) and any given with --public-key. Exits 0 when it verifies, 1 when
    /// it does not (modified, or signed by another key), 2 when it cannot be read.
    Verify {
        /// The certificate JSON file, or `-` for stdin.
        file: PathBuf,
        /// A public key to trust, as KEY_ID=BASE64 (from GET /v1/certificates/keys);
        /// repeatable.
        #[arg(long, value_name = "KEY_ID=BASE64")]
        public_key: Vec<String>,
    },
    /// Print a new random signing key (base64) for certificates.signing_key on stdout, and
    /// its public key on stderr.
    Keygen,
    /// Print the configured signing key's ID and public key.
    PublicKey,
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

/// `closeout certificate …`.
fn certificate(
    command: CertificateCommand,
    file: Option<&std::path::Path>,
    flags: &config::Flags,
) -> anyhow::Result<()> {
    match command {
        CertificateCommand::Keygen => {
            let (keys, secret) = closeout_certificate::Keys::generate("new")?;
            let (_, public) = keys.signing_public_key().context("a generated key signs")?;
            use secrecy::ExposeSecret as _;
            println!("{}", secret.expose_secret());
            eprintln!(
                "public key: {public}\nset the line above as certificates.signing_key (a secret: \
                 CLOSEOUT_CERTIFICATES__SIGNING_KEY_FILE) and pick a certificates.key_id"
            );
        }
        CertificateCommand::PublicKey => {
            let config = config::load(file, flags)?;
            let keys = certificate_keys(&config)?;
            let (id, public) = keys.signing_public_key().context(
                "no certificates.signing_key is configured (generate one with `closeout certificate keygen`)",
            )?;
            println!("{id}={public}");
        }
        CertificateCommand::Verify {
            file: path,
            public_key,
        } => {
            let config = config::load(file, flags)?;
            let mut keys = certificate_keys(&config)?;
            for entry in &public_key {
                let (id, public) = entry.split_once('=').with_context(|| {
                    "--public-key takes KEY_ID=BASE64, e.g. as printed by `closeout certificate public-key`".to_owned()
                })?;
                keys.trust(id, public)?;
            }
            let document = if path.as_os_str() == "-" {
                let mut buffer = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut buffer)?;
                buffer
            } else {
                match std::fs::read(&path) {
                    Ok(bytes) => bytes,
                    Err(e) => {
                        eprintln!("cannot read {}: {e}", path.display());
                        std::process::exit(2);
                    }
                }
            };
            match keys.verify(&document) {
                Ok(signed) => println!(
                    "certificate valid: request {} ({}) completed {}, signed with key {}",
                    signed.certificate.request_id,
                    signed.certificate.flow,
                    signed.certificate.completed_at.to_rfc3339(),
                    signed.signature.key_id
                ),
                Err(e) => {
                    println!("certificate INVALID: {e}");
                    std::process::exit(match e {
                        closeout_certificate::VerifyError::Malformed(_) => 2,
                        _ => 1,
                    });
                }
            }
        }
    }
    Ok(())
}

fn certificate_keys(config: &config::Config) -> anyhow::Result<closeout_certificate::Keys> {
    Ok(closeout_certificate::Keys::new(
        config.certificates.signing_key.as_ref(),
        config.certificates.key_id.as_deref(),
        &config.certificates.verify_keys,
    )?)
}

/// Logs go to stderr, as text or (`[logging] format = "json"`) one JSON object per line with
/// the current spans' fields, so each line of a step carries its workflow ID.
fn init_logging(format: config::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CLOSEOUT_LOG")
        .unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        config::LogFormat::Text => builder.init(),
        config::LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The format only: a configuration that does not load is reported by the command
    // itself, with every problem listed.
    let early = config::Flags {
        database_url: cli.database_url.clone(),
        ..config::Flags::default()
    };
    init_logging(
        config::load(cli.config.as_deref(), &early)
            .map(|c| c.logging.format)
            .unwrap_or_default(),
    );
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
        Command::Sweep => {
            let (config, store) = open(cli.config.as_deref(), &flags).await?;
            let thresholds = config.stuck.thresholds()?;
            let store = store.into_dyn();
            let (report, swept) = closeout_engine::jobs::sweep_stuck(
                store.as_ref(),
                &closeout_engine::clock::SystemClock,
                &serve::default_worker_id(),
                &thresholds,
                config.stuck.sweep_batch,
                serve::JOB_LOCK,
            )
            .await?;
            print_report(report, "stuck-sweep", |_| {
                format!(
                    "flagged {} workflows as stuck, cleared {} flags",
                    swept.flagged, swept.cleared
                )
            });
            let stuck = store.count_stuck().await?;
            let total: i64 = stuck.iter().map(|(_, n)| n).sum();
            let by_state: Vec<String> = stuck.iter().map(|(s, n)| format!("{s} {n}")).collect();
            println!(
                "stuck now: {total}{}{}",
                if by_state.is_empty() { "" } else { " (" },
                if by_state.is_empty() {
                    String::new()
                } else {
                    by_state.join(", ") + ")"
                }
            );
        }
        Command::Certificate(command) => certificate(command, cli.config.as_deref(), &flags)?,
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
        Command::Requests(args) => {
            // serve's signal handlers are installed for every command, so Ctrl-C must be
            // honoured here or it would be swallowed while an answer is awaited.
            let outcome = tokio::select! {
                outcome = closeout::requests::run(args) => outcome,
                () = shutdown => {
                    eprintln!(
                        "interrupted: an action already sent may still be applied; \
                         check with `closeout requests show ID`"
                    );
                    std::process::exit(130);
                }
            };
            if let Err(e) = outcome {
                eprintln!("error: {e}");
                std::process::exit(e.exit_code());
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
