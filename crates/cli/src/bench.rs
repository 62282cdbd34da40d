//! `closeout bench`: engine throughput against the database's own commit rate.
//!
//! Each store is measured on a fresh database with the production durability settings
//! (SQLite WAL + `synchronous=FULL`, PostgreSQL `synchronous_commit=on`):
//! 1. raw: sequential single-row transactions (insert one row + update one row);
//! 2. throughput: N workflows of 8 no-op steps started, then driven to completion;
//! 3. latency: workflows arriving at a steady rate of about half the measured
//!    throughput, each timed from start to completion.
//!
//! Ratios are computed within one run, so a noisy machine moves both sides together.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use closeout_engine::clock::SystemClock;
use closeout_engine::definition;
use closeout_engine::id::{DefinitionName, StartKey, WorkerId};
use closeout_engine::state::WorkflowState;
use closeout_engine::store::Filter;
use closeout_engine::{Config, Engine, StartRequest};
use closeout_store::AnyStore;
use serde_json::json;

use crate::actions;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreChoice {
    Sqlite,
    Postgres,
    Both,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which store(s) to measure.
    #[arg(long, value_enum, default_value = "both")]
    store: StoreChoice,
    /// Workflows in the throughput phase (all in flight at once).
    #[arg(long, default_value_t = 10_000)]
    workflows: usize,
    /// Workflows driven concurrently by the engine.
    #[arg(long, default_value_t = 512)]
    concurrency: usize,
    /// Sequential transactions in the raw commit measurement.
    #[arg(long, default_value_t = 2_000)]
    raw_transactions: usize,
    /// Seconds of steady arrivals in the latency phase.
    #[arg(long, default_value_t = 5)]
    latency_seconds: u64,
    /// Workflows per second arriving in the latency phase [default: half the measured
    /// throughput]. Fix it to compare latency between builds at the same load.
    #[arg(long)]
    arrival_rate: Option<f64>,
    /// PostgreSQL admin URL; a throwaway database is created under it and dropped.
    #[arg(
        long,
        env = "CLOSEOUT_BENCH_PG_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    pg_url: String,
}

const STEPS: usize = 8;

/// Runs `measure` on a fresh database of each chosen store, in turn: SQLite in a temp
/// dir, PostgreSQL as a throwaway database created under `pg_url` and dropped after.
pub async fn on_fresh_databases<T, F, Fut>(
    choice: StoreChoice,
    pg_url: &str,
    mut measure: F,
) -> anyhow::Result<Vec<T>>
where
    F: FnMut(&'static str, String) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut all = Vec::new();
    if matches!(choice, StoreChoice::Sqlite | StoreChoice::Both) {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("bench.db").display());
        all.push(measure("sqlite", url).await?);
    }
    if matches!(choice, StoreChoice::Postgres | StoreChoice::Both) {
        let admin = sqlx::PgPool::connect(pg_url).await.with_context(|| {
            format!(
                "cannot reach PostgreSQL at {}; pass --pg-url or --store sqlite",
                crate::serve::redact_url(pg_url)
            )
        })?;
        let name = format!("closeout_bench_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await?;
        let base = pg_url.rsplit_once('/').map(|(b, _)| b).unwrap_or(pg_url);
        let result = measure("postgres", format!("{base}/{name}")).await;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&admin)
            .await?;
        all.push(result?);
    }
    Ok(all)
}

fn bench_definition() -> definition::Definition {
    let mut text = String::from("name = \"bench\"\nversion = 1\n");
    for i in 0..STEPS {
        text.push_str(&format!(
            "[[steps]]\nid = \"s{i}\"\nkind = \"retriable\"\naction = \"diag.noop\"\n"
        ));
    }
    definition::parse(Path::new("<bench>"), &text, &|_| true, &Vec::new)
        .expect("the bench definition is valid")
}

#[derive(Debug)]
struct Figures {
    store: &'static str,
    raw_per_s: f64,
    start_per_s: f64,
    workflows_per_s: f64,
    transitions_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    latency_rate: f64,
    peak_rss_mb: f64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    println!(
        "closeout bench: {} workflows x {STEPS} no-op steps, concurrency {}, {} raw transactions; {} cores",
        args.workflows,
        args.concurrency,
        args.raw_transactions,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    let all = on_fresh_databases(args.store, &args.pg_url, |name, url| {
        let args = &args;
        async move { measure(name, &url, args).await }
    })
    .await?;
    println!();
    println!(
        "{:<9} {:>12} {:>12} {:>13} {:>14} {:>7} {:>9} {:>9} {:>10}",
        "store",
        "raw tx/s",
        "starts/s",
        "workflows/s",
        "transitions/s",
        "ratio",
        "p50 ms",
        "p99 ms",
        "peak MB"
    );
    for f in &all {
        println!(
            "{:<9} {:>12.0} {:>12.0} {:>13.0} {:>14.0} {:>7.2} {:>9.1} {:>9.1} {:>10.1}",
            f.store,
            f.raw_per_s,
            f.start_per_s,
            f.workflows_per_s,
            f.transitions_per_s,
            f.transitions_per_s / f.raw_per_s,
            f.p50_ms,
            f.p99_ms,
            f.peak_rss_mb
        );
    }
    println!("ratio = engine step transitions/s / raw single-row commits/s on the same database (target >= 1)");
    println!("latency: workflows arriving at the rate shown per store, start to completion");
    for f in &all {
        println!("  {}: arrivals at {:.0}/s", f.store, f.latency_rate);
    }
    Ok(())
}

async fn raw_commit_rate(store: &AnyStore, count: usize) -> anyhow::Result<f64> {
    macro_rules! raw {
        ($pool:expr, $insert:literal, $update:literal) => {{
            let pool = $pool;
            sqlx::query("CREATE TABLE bench_raw_log (id BIGINT PRIMARY KEY, at BIGINT NOT NULL)")
                .execute(pool)
                .await?;
            sqlx::query(
                "CREATE TABLE bench_raw_counter (id BIGINT PRIMARY KEY, n BIGINT NOT NULL)",
            )
            .execute(pool)
            .await?;
            sqlx::query("INSERT INTO bench_raw_counter VALUES (1, 0)")
                .execute(pool)
                .await?;
            let started = Instant::now();
            for i in 0..count as i64 {
                let mut tx = pool.begin().await?;
                sqlx::query($insert)
                    .bind(i)
                    .bind(i)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query($update).execute(&mut *tx).await?;
                tx.commit().await?;
            }
            count as f64 / started.elapsed().as_secs_f64()
        }};
    }
    Ok(match store {
        AnyStore::Sqlite(s) => raw!(
            s.pool(),
            "INSERT INTO bench_raw_log VALUES (?, ?)",
            "UPDATE bench_raw_counter SET n = n + 1 WHERE id = 1"
        ),
        AnyStore::Postgres(s) => raw!(
            s.pool(),
            "INSERT INTO bench_raw_log VALUES ($1, $2)",
            "UPDATE bench_raw_counter SET n = n + 1 WHERE id = 1"
        ),
    })
}

fn request(prefix: &str, i: usize) -> StartRequest {
    StartRequest {
        definition: DefinitionName::parse("bench").expect("static"),
        key: StartKey::parse(format!("{prefix}-{i}")).expect("safe characters"),
        subject: None,
        channel: None,
        input: json!({ "n": i }),
    }
}

async fn completed(engine: &Engine) -> anyhow::Result<i64> {
    Ok(engine
        .store()
        .count_by_state()
        .await?
        .into_iter()
        .find(|(s, _)| *s == WorkflowState::Completed)
        .map(|(_, n)| n)
        .unwrap_or(0))
}

async fn wait_for(engine: &Engine, target: i64, label: &str) -> anyhow::Result<()> {
    let mut last_report = Instant::now();
    loop {
        let done = completed(engine).await?;
        if done >= target {
            return Ok(());
        }
        if last_report.elapsed() > Duration::from_secs(3) {
            println!("  {label}: {done}/{target} completed");
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn measure(name: &'static str, url: &str, args: &Args) -> anyhow::Result<Figures> {
    println!("[{name}] preparing a fresh database");
    let store = AnyStore::connect(url).await?;
    store.migrate().await?;
    let raw_per_s = raw_commit_rate(&store, args.raw_transactions).await?;
    println!("[{name}] raw single-row commits: {raw_per_s:.0}/s");

    crate::reset_peak_rss();
    let rss_before = crate::peak_rss_bytes().unwrap_or(0);
    let mut config = Config::new(WorkerId::parse(format!("bench-{name}"))?);
    config.max_in_flight = args.concurrency;
    config.claim_batch = 256;
    config.commit_batch = 1024;
    config.poll_interval = Duration::from_millis(50);
    let registry = actions::registry(&actions::diag::Options::default(), None);
    let engine = Engine::new(
        store.clone().into_dyn(),
        registry,
        vec![bench_definition()],
        Arc::new(SystemClock),
        config,
    )
    .await?;

    let started = Instant::now();
    for chunk in (0..args.workflows).collect::<Vec<_>>().chunks(1000) {
        engine
            .start_many(chunk.iter().map(|i| request("t", *i)).collect())
            .await?;
    }
    let start_per_s = args.workflows as f64 / started.elapsed().as_secs_f64();
    println!(
        "[{name}] started {} workflows ({start_per_s:.0}/s); running",
        args.workflows
    );

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = {
        let engine = engine.clone();
        tokio::spawn(async move {
            engine
                .run(async {
                    let _ = stopped.await;
                })
                .await
        })
    };
    let run_started = Instant::now();
    wait_for(&engine, args.workflows as i64, name).await?;
    let elapsed = run_started.elapsed().as_secs_f64();
    let peak_rss_mb = crate::peak_rss_bytes().unwrap_or(rss_before) as f64 / 1_048_576.0;
    let workflows_per_s = args.workflows as f64 / elapsed;
    let transitions_per_s = (args.workflows * STEPS) as f64 / elapsed;
    println!("[{name}] throughput: {workflows_per_s:.0} workflows/s, {transitions_per_s:.0} step transitions/s, peak RSS {peak_rss_mb:.1} MB");

    // Latency under a steady load: about half the measured throughput unless given.
    let rate = args.arrival_rate.unwrap_or(workflows_per_s / 2.0).max(1.0);
    let total = ((rate * args.latency_seconds as f64) as usize).max(1);
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut ids = Vec::with_capacity(total);
    for i in 0..total {
        ticker.tick().await;
        ids.push(engine.start(request("l", i)).await?.record().id);
    }
    wait_for(&engine, (args.workflows + total) as i64, name).await?;
    let _ = stop.send(());
    runner.await??;
    let mut latencies = Vec::with_capacity(ids.len());
    for id in ids {
        let record = engine.get(id).await?;
        latencies.push(
            (record.updated_at - record.created_at)
                .num_microseconds()
                .unwrap_or(0) as f64
                / 1000.0,
        );
    }
    latencies.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    let (p50_ms, p99_ms) = (pct(0.50), pct(0.99));
    println!("[{name}] latency at {rate:.0} arrivals/s: p50 {p50_ms:.1} ms, p99 {p99_ms:.1} ms");
    let open = engine
        .list(&Filter {
            states: vec![WorkflowState::Running],
            limit: 1,
            ..Default::default()
        })
        .await?;
    anyhow::ensure!(open.is_empty(), "every benchmark workflow must complete");
    drop(engine);
    store.close().await;
    Ok(Figures {
        store: name,
        raw_per_s,
        start_per_s,
        workflows_per_s,
        transitions_per_s,
        p50_ms,
        p99_ms,
        latency_rate: rate,
        peak_rss_mb,
    })
}
