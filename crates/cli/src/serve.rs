//! `closeout serve`: opens the store, applies migrations, reaches the partners (the
//! configured ones, or a built-in sandbox when none are configured), loads the
//! definitions, serves the HTTP API and runs the engine's workers until SIGTERM or
//! Ctrl-C. Shutdown is in that order reversed: the API stops accepting and finishes the
//! requests in flight, then the workers finish their steps and release their leases.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use closeout_connectors::{Connectors, ConnectorsConfig};
use closeout_engine::clock::SystemClock;
use closeout_engine::id::WorkerId;
use closeout_engine::{Config, Engine};
use closeout_sandbox::{Sandbox, SandboxConfig};
use closeout_store::AnyStore;
use tracing::{info, warn};

use crate::actions;
use crate::config::Config as ServiceConfig;

/// Where partner calls go.
#[derive(Debug, Clone)]
pub enum Partners {
    /// The endpoints and credentials in `[connectors]`.
    Configured(Box<ConnectorsConfig>),
    /// A sandbox started in this process plays every partner, so a fresh checkout works
    /// with no configuration; `listen` is a random loopback port when `None`.
    Sandbox { listen: Option<SocketAddr> },
}

#[derive(Debug, Clone)]
pub struct Options {
    pub database_url: String,
    pub workflows: PathBuf,
    pub worker_id: Option<String>,
    pub lease_ttl: Duration,
    pub max_in_flight: usize,
    pub poll_interval: Duration,
    pub diag: actions::diag::Options,
    pub partners: Partners,
    pub api: closeout_api::Config,
    pub cooldown: crate::config::Cooldown,
    pub callbacks: closeout_callbacks::Config,
    pub retention: crate::config::Retention,
    pub stuck: crate::config::Stuck,
    pub certificates: crate::config::Certificates,
}

impl From<ServiceConfig> for Options {
    fn from(config: ServiceConfig) -> Self {
        Self {
            database_url: config.database_url.0,
            workflows: config.workflows,
            worker_id: config.engine.worker_id,
            lease_ttl: config.engine.lease_ttl,
            max_in_flight: config.engine.max_in_flight,
            poll_interval: config.engine.poll_interval,
            diag: actions::diag::Options {
                http_url: config.diag_url,
            },
            partners: match config.connectors {
                Some(connectors) => Partners::Configured(Box::new(connectors)),
                None => Partners::Sandbox {
                    listen: config.sandbox.listen,
                },
            },
            api: config.api,
            cooldown: config.cooldown,
            callbacks: config.callbacks,
            retention: config.retention,
            stuck: config.stuck,
            certificates: config.certificates,
        }
    }
}

/// A worker ID unique to this process: host name, PID and a random suffix.
pub fn default_worker_id() -> WorkerId {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| {
            h.trim()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect::<String>()
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..6];
    WorkerId::parse(format!("{host}-{}-{suffix}", std::process::id()))
        .expect("built from safe characters")
}

pub async fn open_store(url: &str) -> anyhow::Result<AnyStore> {
    let store = AnyStore::connect(url)
        .await
        .with_context(|| format!("cannot open the database at {}", redact_url(url)))?;
    store.migrate().await.context("applying migrations")?;
    Ok(store)
}

/// A database URL with any password replaced, fit for logs and errors.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

pub async fn run(
    options: Options,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let store = open_store(&options.database_url).await?;
    let (connectors, sandbox) = match &options.partners {
        Partners::Configured(config) => (config.as_ref().clone(), None),
        Partners::Sandbox { listen } => {
            let sandbox = match listen {
                Some(addr) => Sandbox::start_on(SandboxConfig::default(), *addr).await,
                None => Sandbox::start(SandboxConfig::default()).await,
            }
            .context("starting the built-in partner sandbox")?;
            info!(
                "no [connectors] configured: partner calls go to the built-in sandbox at \
                 http://{}, admin API at {} (configure [connectors] to reach real partners)",
                sandbox.addr(),
                sandbox.admin_url()
            );
            (sandbox.connectors_config(), Some(sandbox))
        }
    };
    let connectors = Connectors::new(&connectors)
        .context("building the partner connectors from [connectors]")?;
    let skyjoy = connectors.skyjoy.clone();
    let hash_keys = match (options.cooldown.keys()?, &options.partners) {
        (Some(keys), _) => keys,
        (None, Partners::Sandbox { .. }) => {
            warn!(
                "no [cooldown] hash_keys configured: phone cooldowns are hashed with the built-in \
                 development key, fit for the sandbox only (see docs/configuration.md)"
            );
            development_hash_keys()
        }
        (None, Partners::Configured(_)) => anyhow::bail!(
            "[cooldown] hash_keys is required when [connectors] reach real partners: set \
             cooldown.hash_keys.1 (or CLOSEOUT_COOLDOWN__HASH_KEYS__1_FILE) to a long random secret"
        ),
    };
    let thresholds = options.stuck.thresholds()?;
    let certificate_keys = certificate_keys(&options.certificates, &options.partners)?;
    // The check API looks phones up under the same keys the closing steps record them with.
    let registry = actions::registry(&options.diag, Some((connectors, hash_keys.clone())));
    let definitions = crate::load_definitions(&options.workflows, &registry)?;
    // Without definitions every submission would be refused as "flow not loaded" while
    // the probes said ready: a wrong path must stop the process instead.
    anyhow::ensure!(
        !definitions.is_empty(),
        "no workflow definitions (*.toml) found in {}; point --workflows (or `workflows` in \
         the configuration, CLOSEOUT_WORKFLOWS) at the directory that holds vietjet.toml, \
         skyjoy.toml and galaxypay.toml",
        options.workflows.display()
    );
    let worker_id = match &options.worker_id {
        Some(id) => WorkerId::parse(id.clone())?,
        None => default_worker_id(),
    };
    let mut config = Config::new(worker_id.clone());
    config.lease_ttl = options.lease_ttl;
    config.max_in_flight = options.max_in_flight;
    config.poll_interval = options.poll_interval;
    let engine = Engine::new(
        store.clone().into_dyn(),
        registry,
        definitions,
        Arc::new(SystemClock),
        config,
    )
    .await?;
    let state = closeout_api::AppState::new(
        engine.clone(),
        store.clone(),
        skyjoy,
        hash_keys,
        &options.api,
    )
    .context("invalid [api] configuration (see docs/api.md)")?
    .with_certificates(certificate_keys);
    if !state.has_keys() {
        warn!(
            "no API keys are configured: every authenticated route answers 401 (health, \
             readiness, metrics and /openapi.json stay open). Hash a key with \
             `closeout api hash-key` and configure it under [api] (see docs/api.md)"
        );
    }
    let metrics = state.metrics().clone();
    let listener = tokio::net::TcpListener::bind(options.api.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} for the HTTP API; set [api] listen \
                 (CLOSEOUT_API__LISTEN or --api-listen), e.g. 127.0.0.1:0 for any free port",
                options.api.listen
            )
        })?;
    let api_addr = listener.local_addr()?;
    let (stop_api, api_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(closeout_api::serve(
        listener,
        closeout_api::app(state),
        async move {
            let _ = api_stopped.await;
        },
    ));
    info!(
        api = %format!("http://{api_addr}"),
        "HTTP API listening (document at /openapi.json)"
    );
    info!(
        worker = %worker_id,
        store = store.kind(),
        definitions = engine.definitions().len(),
        "closeout engine running; stop with SIGTERM or Ctrl-C"
    );
    // Background jobs: outcome callbacks and the cooldown expiry schedule.
    let (stop_jobs, jobs_stopped) = tokio::sync::watch::channel(false);
    let until_stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stopped| *stopped).await;
    };
    let deliverer = closeout_callbacks::Deliverer::new(
        store.clone().into_dyn(),
        Arc::new(SystemClock),
        options.callbacks.clone(),
    )
    .context("building the callback HTTP client")?;
    let delivering = tokio::spawn({
        let stopped = until_stopped(jobs_stopped.clone());
        async move { deliverer.run(Duration::from_secs(1), stopped).await }
    });
    let spawn_job = |name: &'static str, every: Duration, job: ScheduledJob| {
        tokio::spawn(schedule(
            name,
            every,
            until_stopped(jobs_stopped.clone()),
            metrics.clone(),
            job,
        ))
    };
    let jobs_store = store.clone().into_dyn();
    let expiring = spawn_job("cooldown_expire", options.cooldown.expire_every, {
        let (store, owner, batch) = (
            jobs_store.clone(),
            worker_id.clone(),
            options.cooldown.expire_batch,
        );
        Box::new(move || {
            let (store, owner) = (store.clone(), owner.clone());
            Box::pin(async move {
                closeout_cooldown::jobs::expire(
                    store.as_ref(),
                    &SystemClock,
                    &owner,
                    batch,
                    JOB_LOCK,
                )
                .await
            })
        })
    });
    let purging = spawn_job("personal_data_purge", options.retention.purge_every, {
        let (store, owner, retention) = (
            jobs_store.clone(),
            worker_id.clone(),
            options.retention.clone(),
        );
        Box::new(move || {
            let (store, owner, retention) = (store.clone(), owner.clone(), retention.clone());
            Box::pin(async move {
                closeout_engine::jobs::purge(
                    store.as_ref(),
                    &SystemClock,
                    &owner,
                    retention.personal_data,
                    retention.purge_batch,
                    JOB_LOCK,
                )
                .await
            })
        })
    });
    let sweeping = spawn_job("stuck_sweep", options.stuck.sweep_every, {
        let (store, owner, batch) = (
            jobs_store.clone(),
            worker_id.clone(),
            options.stuck.sweep_batch,
        );
        Box::new(move || {
            let (store, owner, thresholds) = (store.clone(), owner.clone(), thresholds.clone());
            Box::pin(async move {
                let (report, swept) = closeout_engine::jobs::sweep_stuck(
                    store.as_ref(),
                    &SystemClock,
                    &owner,
                    &thresholds,
                    batch,
                    JOB_LOCK,
                )
                .await?;
                if swept.flagged > 0 {
                    warn!(
                        flagged = swept.flagged,
                        cleared = swept.cleared,
                        "workflows flagged as stuck; list them with GET /v1/ops/requests?stuck=true"
                    );
                }
                Ok(report)
            })
        })
    });
    let (stop_workers, workers_stopped) = tokio::sync::oneshot::channel::<()>();
    let workers = engine.run(async move {
        let _ = workers_stopped.await;
    });
    tokio::pin!(workers);
    tokio::pin!(shutdown);
    let early = tokio::select! {
        result = &mut workers => Some(result),
        () = &mut shutdown => None,
    };
    // The API first, so no request is accepted that the stopping workers would not see.
    let _ = stop_api.send(());
    match server.await {
        Ok(Ok(())) => info!("HTTP API stopped; in-flight requests finished"),
        Ok(Err(e)) => warn!(error = %e, "HTTP API stopped with an error"),
        Err(e) => warn!(error = %e, "HTTP API task failed"),
    }
    match early {
        Some(result) => result?,
        None => {
            let _ = stop_workers.send(());
            workers.await?;
        }
    }
    info!("workers stopped; in-flight steps finished and leases released");
    let _ = stop_jobs.send(true);
    let _ = delivering.await;
    let _ = expiring.await;
    let _ = purging.await;
    let _ = sweeping.await;
    // Only after the workers: a step in flight at shutdown may still be calling it.
    if let Some(sandbox) = sandbox {
        sandbox.stop().await;
    }
    Ok(())
}

/// A fixed key for the sandbox default only: `serve` refuses it with real partners.
fn development_hash_keys() -> closeout_cooldown::HashKeys {
    closeout_cooldown::HashKeys::new([(
        1,
        "closeout-development-only-phone-hash-key".to_owned().into(),
    )])
    .expect("the development key is long enough")
}

/// How long a scheduled job's lock lasts without renewal.
pub const JOB_LOCK: Duration = Duration::from_secs(300);

/// One run of a scheduled job.
type ScheduledJob = Box<
    dyn Fn() -> futures::future::BoxFuture<
            'static,
            closeout_engine::store::Result<closeout_engine::jobs::Report>,
        > + Send
        + Sync,
>;

/// Runs `job` every `every` until `shutdown`, counting each run's result in the metrics
/// under `name`. Every replica runs the schedules; the job lock lets one of them work at
/// a time.
async fn schedule(
    name: &'static str,
    every: Duration,
    shutdown: impl std::future::Future<Output = ()>,
    metrics: closeout_api::telemetry::Metrics,
    job: ScheduledJob,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(every) => {}
        }
        let result = match job().await {
            Ok(closeout_engine::jobs::Report::Skipped) => "skipped",
            Ok(closeout_engine::jobs::Report::Done { .. }) => "done",
            Err(e) => {
                warn!(job = name, error = %e, "scheduled job failed; it runs again at the next interval");
                "failed"
            }
        };
        metrics.job_ran(name, result, chrono::Utc::now());
    }
}

/// The certificate keys from `[certificates]`. Without a signing key, the sandbox gets a
/// fresh development key (certificates then verify only while this process runs, with
/// the public key from /v1/certificates/keys); with real partners the certificate
/// routes answer 503 until one is configured.
fn certificate_keys(
    config: &crate::config::Certificates,
    partners: &Partners,
) -> anyhow::Result<closeout_certificate::Keys> {
    let keys = closeout_certificate::Keys::new(
        config.signing_key.as_ref(),
        config.key_id.as_deref(),
        &config.verify_keys,
    )
    .context("invalid [certificates] configuration (see docs/certificates.md)")?;
    if keys.can_sign() {
        return Ok(keys);
    }
    match partners {
        Partners::Sandbox { .. } => {
            warn!(
                "no [certificates] signing_key configured: deletion certificates are signed \
                 with a development key generated for this run (see docs/certificates.md)"
            );
            Ok(closeout_certificate::Keys::generate("development")?.0)
        }
        Partners::Configured(_) => {
            warn!(
                "no [certificates] signing_key configured: deletion certificates cannot be \
                 issued until one is (generate it with `closeout certificate keygen`)"
            );
            Ok(keys)
        }
    }
}
