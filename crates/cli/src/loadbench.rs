//! Two more benchmarks, each on fresh databases of the chosen stores:
//! - `closeout bench-expiry`: imports N due cooldowns, then times the expiry job
//!   releasing them (rows/s; target at least 100,000 rows/s);
//! - `closeout bench-http`: a real `serve` (API, workers, sandbox) in this process and
//!   an open-loop load at a fixed rate of either channel submissions (`--target submit`,
//!   timed from request to `202`; target: p99 under 25 ms at 500 submissions/s, no
//!   errors) or registrars' cooldown checks (`--target check`, against `--preload`
//!   cooldowns stored first, half the checks hitting one; target: p99 under 5 ms at
//!   1,000 checks/s, no errors).
//!
//! The load is open-loop: requests leave on schedule whether or not earlier ones have
//! answered, so a slow server shows as latency instead of silently lowering the rate.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use closeout_engine::clock::SystemClock;
use closeout_engine::id::WorkerId;
use closeout_engine::store::CooldownEntry;
use closeout_store::AnyStore;
use serde_json::json;

use crate::bench::{on_fresh_databases, StoreChoice};

#[derive(Debug, clap::Args)]
pub struct ExpiryArgs {
    #[arg(long, value_enum, default_value = "both")]
    store: StoreChoice,
    /// Cooldowns imported, all past their release, then expired.
    #[arg(long, default_value_t = 1_000_000)]
    rows: usize,
    /// Rows released per transaction.
    #[arg(long, default_value_t = 10_000)]
    batch: u32,
    #[arg(
        long,
        env = "CLOSEOUT_BENCH_PG_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    pg_url: String,
}

pub async fn expiry(args: ExpiryArgs) -> anyhow::Result<()> {
    println!(
        "closeout bench-expiry: {} due cooldowns, batches of {}",
        args.rows, args.batch
    );
    let results = on_fresh_databases(args.store, &args.pg_url, |name, url| {
        let (rows, batch) = (args.rows, args.batch);
        async move {
            let store = AnyStore::connect(&url).await?;
            store.migrate().await?;
            let store = store.into_dyn();
            let closed_at = Utc::now() - chrono::Duration::days(400);
            let started = Instant::now();
            let chunk = 50_000;
            for first in (0..rows).step_by(chunk) {
                let entries: Vec<CooldownEntry> = (first..(first + chunk).min(rows))
                    .map(|i| CooldownEntry {
                        scope: "skyjoy".into(),
                        phone_hash: format!("{i:064x}"),
                        key_version: 1,
                        closed_at,
                        release_at: closeout_cooldown::release_at(closed_at),
                        workflow_id: None,
                    })
                    .collect();
                store.insert_cooldowns(&entries).await?;
                println!("  [{name}] imported {}/{rows}", (first + chunk).min(rows));
            }
            let import_per_s = rows as f64 / started.elapsed().as_secs_f64();
            let owner = WorkerId::parse(format!("bench-{name}"))?;
            let report = closeout_cooldown::jobs::expire(
                store.as_ref(),
                &SystemClock,
                &owner,
                batch,
                Duration::from_secs(600),
            )
            .await?;
            let closeout_cooldown::jobs::Report::Done { rows: released, elapsed, .. } = report else {
                anyhow::bail!("the job lock was held by someone else");
            };
            anyhow::ensure!(released as usize == rows, "released {released} of {rows}");
            let per_s = released as f64 / elapsed.as_secs_f64();
            println!("[{name}] import {import_per_s:.0} rows/s; expiry released {released} in {:.2} s: {per_s:.0} rows/s", elapsed.as_secs_f64());
            Ok((name, import_per_s, per_s))
        }
    })
    .await?;
    println!();
    println!(
        "{:<9} {:>14} {:>14}",
        "store", "import rows/s", "expiry rows/s"
    );
    for (name, import, expiry) in results {
        println!("{name:<9} {import:>14.0} {expiry:>14.0}");
    }
    println!("target: expiry at least 100000 rows/s");
    Ok(())
}

/// What `bench-http` loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// `POST /v1/requests` with a channel key.
    Submit,
    /// `POST /v1/cooldown/check` with a registrar key.
    Check,
}

#[derive(Debug, clap::Args)]
pub struct HttpArgs {
    #[arg(long, value_enum, default_value = "both")]
    store: StoreChoice,
    #[arg(long, value_enum, default_value = "submit")]
    target: Target,
    /// Cooldowns stored before a `check` run (through `Store::insert_cooldowns`).
    #[arg(long, default_value_t = 100_000)]
    preload: usize,
    /// Requests per second.
    #[arg(long, default_value_t = 500)]
    rate: u32,
    /// Seconds of load.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Directory of the workflow definitions the serve loads.
    #[arg(long, default_value = "workflows")]
    workflows: std::path::PathBuf,
    #[arg(
        long,
        env = "CLOSEOUT_BENCH_PG_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    pg_url: String,
}

const BENCH_KEY: &str = "bench-channel-key-not-a-secret";
const BENCH_REGISTRAR_KEY: &str = "bench-registrar-key-not-a-secret";
/// The phone-hash key both the serve and the preload use, so preloaded entries match.
const BENCH_HASH_KEY: &str = "bench-phone-hash-key-not-a-secret-0123456789";

/// The `i`th preloaded phone (a valid Vietnamese mobile number), and one never stored.
fn stored_phone(i: usize) -> String {
    format!("+8491{:07}", i % 10_000_000)
}

fn unknown_phone(i: usize) -> String {
    format!("+8498{:07}", i % 10_000_000)
}

pub async fn http(args: HttpArgs) -> anyhow::Result<()> {
    let what = match args.target {
        Target::Submit => "submissions".to_owned(),
        Target::Check => format!("cooldown checks (over {} stored cooldowns)", args.preload),
    };
    println!(
        "closeout bench-http: {} {what}/s for {} s against a real serve (API, workers, sandbox)",
        args.rate, args.seconds
    );
    let results = on_fresh_databases(args.store, &args.pg_url, |name, url| {
        let load = Load {
            target: args.target,
            preload: args.preload,
            rate: args.rate,
            seconds: args.seconds,
            workflows: args.workflows.clone(),
        };
        async move { http_on(name, url, load).await }
    })
    .await?;
    println!();
    println!(
        "{:<9} {:>10} {:>12} {:>8} {:>9} {:>9} {:>9}",
        "store", "sent", "achieved/s", "errors", "p50 ms", "p99 ms", "max ms"
    );
    for r in results {
        println!(
            "{:<9} {:>10} {:>12.0} {:>8} {:>9.1} {:>9.1} {:>9.1}",
            r.store, r.sent, r.achieved, r.errors, r.p50, r.p99, r.max
        );
    }
    match args.target {
        Target::Submit => println!("target: p99 under 25 ms at 500 submissions/s with no errors"),
        Target::Check => println!("target: p99 under 5 ms at 1000 checks/s with no errors"),
    }
    Ok(())
}

#[derive(Debug)]
struct HttpFigures {
    store: &'static str,
    sent: usize,
    achieved: f64,
    errors: usize,
    p50: f64,
    p99: f64,
    max: f64,
}

/// One store's HTTP load, as the command line set it.
#[derive(Debug, Clone)]
struct Load {
    target: Target,
    preload: usize,
    rate: u32,
    seconds: u64,
    workflows: std::path::PathBuf,
}

async fn http_on(name: &'static str, url: String, load: Load) -> anyhow::Result<HttpFigures> {
    let Load {
        target,
        preload,
        rate,
        seconds,
        workflows,
    } = load;
    let listen = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
        probe.local_addr()?
    };
    let mut api = closeout_api::Config {
        listen,
        ..Default::default()
    };
    api.channels.insert(
        "vietjet".into(),
        closeout_api::config::ChannelKeys {
            key_hashes: vec![closeout_api::auth::hash_key(BENCH_KEY)],
        },
    );
    api.registrars.insert(
        "bench".into(),
        closeout_api::config::RegistrarKeys {
            key_hashes: vec![closeout_api::auth::hash_key(BENCH_REGISTRAR_KEY)],
        },
    );
    api.rate_limit.per_second = rate * 4;
    api.rate_limit.burst = rate * 4;
    let options_url = url.clone();
    let options = crate::serve::Options {
        database_url: url,
        workflows,
        worker_id: Some(format!("bench-http-{name}")),
        lease_ttl: Duration::from_secs(60),
        max_in_flight: 256,
        poll_interval: Duration::from_millis(500),
        diag: Default::default(),
        partners: crate::serve::Partners::Sandbox { listen: None },
        api,
        // Explicit keys, not serve's development default, so the preload below hashes
        // exactly as the serve's check does.
        cooldown: crate::config::Cooldown {
            hash_keys: [("1".to_owned(), BENCH_HASH_KEY.to_owned().into())].into(),
            ..Default::default()
        },
        callbacks: Default::default(),
        retention: Default::default(),
        stuck: Default::default(),
        certificates: Default::default(),
    };
    let hash_keys = options
        .cooldown
        .keys()?
        .context("the bench configures a hash key")?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::serve::run(options, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let base = format!("http://{listen}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .map(|r| r.status().is_success())
        .ok()
        != Some(true)
    {
        if server.is_finished() {
            // Its own error says why (no definitions when not run from the repository
            // root, a port in use…), which "not ready" would hide.
            return Err(match server.await {
                Ok(Err(e)) => e.context("serve stopped before it was ready"),
                Ok(Ok(())) => anyhow::anyhow!("serve stopped before it was ready"),
                Err(e) => anyhow::Error::from(e).context("serve panicked"),
            });
        }
        anyhow::ensure!(Instant::now() < deadline, "serve did not become ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if target == Target::Check {
        let store = AnyStore::connect(&options_url).await?.into_dyn();
        let closed_at = Utc::now() - chrono::Duration::days(30);
        let started = Instant::now();
        for first in (0..preload).step_by(10_000) {
            let entries: Vec<CooldownEntry> = (first..(first + 10_000).min(preload))
                .map(|i| {
                    let phone = closeout_cooldown::E164::parse(&stored_phone(i))
                        .expect("a valid Vietnamese mobile number");
                    let hash = hash_keys.current(&phone);
                    CooldownEntry {
                        scope: "skyjoy".into(),
                        phone_hash: hash.hex,
                        key_version: hash.key_version,
                        closed_at,
                        release_at: closeout_cooldown::release_at(closed_at),
                        workflow_id: None,
                    }
                })
                .collect();
            store.insert_cooldowns(&entries).await?;
        }
        println!(
            "[{name}] preloaded {preload} cooldowns in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    println!("[{name}] serve ready at {base}; loading");
    let total = rate as usize * seconds as usize;
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let run = uuid::Uuid::new_v4().simple().to_string();
    let started = Instant::now();
    let mut inflight = tokio::task::JoinSet::new();
    for i in 0..total {
        ticker.tick().await;
        let client = client.clone();
        if target == Target::Check {
            let endpoint = format!("{base}/v1/cooldown/check");
            // Half the checks find a stored cooldown, half find none.
            let phone = if i % 2 == 0 && preload > 0 {
                stored_phone(i / 2 % preload)
            } else {
                unknown_phone(i)
            };
            let expect_allowed = phone.starts_with("+8498");
            inflight.spawn(async move {
                let sent = Instant::now();
                let answer = client
                    .post(endpoint)
                    .bearer_auth(BENCH_REGISTRAR_KEY)
                    .json(&json!({ "phone": phone, "scope": "skyjoy" }))
                    .send()
                    .await;
                let ok = match answer {
                    Ok(r) if r.status() == reqwest::StatusCode::OK => r
                        .json::<serde_json::Value>()
                        .await
                        .is_ok_and(|body| body["allowed"] == expect_allowed),
                    _ => false,
                };
                (sent.elapsed(), ok)
            });
            continue;
        }
        let endpoint = format!("{base}/v1/requests");
        let key = format!("{}-{i}", &run[..8]);
        inflight.spawn(async move {
            let body = json!({
                "flow": "vietjet",
                "skyjoy_id": format!("SJ7{i:09}"),
                "phone": format!("+8492{i:07}"),
                "reason": "benchmark",
                "requested_at": Utc::now(),
                "platform": "Vietjet web",
            });
            let sent = Instant::now();
            let answer = client
                .post(endpoint)
                .bearer_auth(BENCH_KEY)
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
                .await;
            let ok = matches!(&answer, Ok(r) if r.status() == reqwest::StatusCode::ACCEPTED);
            (sent.elapsed(), ok)
        });
    }
    let mut latencies = Vec::with_capacity(total);
    let mut errors = 0;
    while let Some(done) = inflight.join_next().await {
        let (latency, ok) = done.context("a request task failed")?;
        latencies.push(latency.as_secs_f64() * 1000.0);
        errors += usize::from(!ok);
    }
    let achieved = total as f64 / started.elapsed().as_secs_f64();
    let _ = stop.send(());
    server.await??;
    latencies.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    let figures = HttpFigures {
        store: name,
        sent: total,
        achieved,
        errors,
        p50: pct(0.5),
        p99: pct(0.99),
        max: *latencies.last().unwrap_or(&0.0),
    };
    println!("[{name}] {figures:?}");
    Ok(figures)
}
