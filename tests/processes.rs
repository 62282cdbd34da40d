//! Process-level tests: real `closeout serve` processes, killed with SIGKILL at random
//! moments or sharing one PostgreSQL database, against an effect recorder over HTTP.
//! What they prove: nothing is lost, histories stay gap-free, each step's effect is
//! applied once per idempotency key, and no step runs in two places at once.

use std::collections::HashSet;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};
use closeout_engine::clock::SystemClock;
use closeout_engine::id::{DefinitionName, StartKey, WorkerId, WorkflowId};
use closeout_engine::state::{EventKind, WorkflowState};
use closeout_engine::{Config, Engine, StartRequest};
use closeout_it::harness::{run_plain, TestFuture};
use closeout_it::recorder::Recorder;
use closeout_it::{closeout_bin, postgres_availability, Backend, TestDb};
use closeout_store::AnyStore;
use rand::Rng;
use serde_json::json;
use tokio::process::{Child, Command};

const STEPS: [&str; 5] = ["a", "b", "c", "d", "e"];

fn definition(steps: &[&str]) -> String {
    let mut text = String::from(
        "name = \"proc\"\nversion = 1\n[defaults]\ntimeout = \"2s\"\n[defaults.retry]\nmax_attempts = 50\ninitial_delay = \"50ms\"\nmax_delay = \"500ms\"\n",
    );
    for (i, id) in steps.iter().enumerate() {
        let kind = match i {
            0 => "kind = \"compensatable\"\ncompensation = \"diag.http\"",
            2 => "kind = \"pivot\"",
            _ => "kind = \"retriable\"",
        };
        text.push_str(&format!(
            "[[steps]]\nid = \"{id}\"\n{kind}\naction = \"diag.http\"\n"
        ));
    }
    text
}

struct World {
    db: TestDb,
    engine: Engine,
    workflows: tempfile::TempDir,
    recorder: Recorder,
}

async fn world(backend: Backend, steps: &[&str], delay_ms: (u64, u64)) -> anyhow::Result<World> {
    let db = TestDb::create(backend).await;
    let store = AnyStore::connect(&db.url).await?;
    store.migrate().await?;
    let workflows = tempfile::tempdir()?;
    std::fs::write(workflows.path().join("proc.toml"), definition(steps))?;
    let recorder = Recorder::start(delay_ms).await;
    let registry = closeout::actions::registry(
        &closeout::actions::diag::Options {
            http_url: Some(recorder.url.clone()),
        },
        None,
    );
    let defs = closeout::load_definitions(workflows.path(), &registry)?;
    let engine = Engine::new(
        store.into_dyn(),
        registry,
        defs,
        Arc::new(SystemClock),
        Config::new(WorkerId::parse("test-starter")?),
    )
    .await?;
    Ok(World {
        db,
        engine,
        workflows,
        recorder,
    })
}

impl World {
    async fn start(&self, count: usize) -> anyhow::Result<Vec<WorkflowId>> {
        let mut ids = Vec::with_capacity(count);
        for chunk in (0..count).collect::<Vec<_>>().chunks(500) {
            let requests = chunk
                .iter()
                .map(|i| StartRequest {
                    definition: DefinitionName::parse("proc").unwrap(),
                    key: StartKey::parse(format!("req-{i}")).unwrap(),
                    subject: None,
                    channel: None,
                    input: json!({ "n": i }),
                })
                .collect();
            for started in self.engine.start_many(requests).await? {
                ids.push(started?.record().id);
            }
        }
        Ok(ids)
    }

    fn serve(&self, worker: &str, max_in_flight: usize) -> anyhow::Result<Child> {
        Command::new(closeout_bin())
            .arg("serve")
            .args(["--database-url", &self.db.url])
            .arg("--workflows")
            .arg(self.workflows.path())
            .args([
                "--worker-id",
                worker,
                "--lease-ttl",
                "3s",
                "--poll-interval",
                "100ms",
            ])
            .args(["--max-in-flight", &max_in_flight.to_string()])
            .args(["--diag-url", &self.recorder.url])
            // Several processes run at once; each HTTP API takes a free port.
            .args(["--api-listen", "127.0.0.1:0"])
            .env("CLOSEOUT_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("spawning closeout serve")
    }

    async fn unfinished(&self) -> anyhow::Result<i64> {
        Ok(self
            .engine
            .store()
            .count_by_state()
            .await?
            .into_iter()
            .filter(|(s, _)| *s != WorkflowState::Completed)
            .map(|(_, n)| n)
            .sum())
    }

    async fn wait_all_completed(&self, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let left = self.unfinished().await?;
            if left == 0 {
                return Ok(());
            }
            ensure!(
                Instant::now() < deadline,
                "{left} workflows still unfinished after {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every history gap-free; every (workflow, step) effect applied exactly once and
    /// nothing else applied. Returns the number of takeovers seen in the histories.
    async fn verify(&self, ids: &[WorkflowId], steps: &[&str]) -> anyhow::Result<usize> {
        let mut expected = HashSet::new();
        let mut takeovers = 0;
        for id in ids {
            let record = self.engine.get(*id).await?;
            ensure!(
                record.progress.state == WorkflowState::Completed,
                "{id} is {}",
                record.progress.state
            );
            let history = self.engine.history(*id).await?;
            let seqs: Vec<i64> = history.iter().map(|e| e.seq).collect();
            ensure!(
                seqs == (1..=history.len() as i64).collect::<Vec<_>>(),
                "{id}: history has gaps: {seqs:?}"
            );
            ensure!(
                record.history_len == history.len() as i64,
                "{id}: history_len disagrees"
            );
            let succeeded = history
                .iter()
                .filter(|e| e.kind == EventKind::StepSucceeded)
                .count();
            ensure!(
                succeeded == steps.len(),
                "{id}: {succeeded} step successes recorded"
            );
            takeovers += history
                .iter()
                .filter(|e| e.kind == EventKind::LeaseTakenOver)
                .count();
            for step in steps {
                expected.insert(format!("{id}:{step}"));
            }
        }
        let applied = self.recorder.applied();
        let applied_keys: HashSet<String> = applied.keys().cloned().collect();
        ensure!(
            applied_keys == expected,
            "applied effects differ from the steps run: {} vs {}",
            applied_keys.len(),
            expected.len()
        );
        ensure!(
            applied.values().all(|n| *n == 1),
            "an effect was applied twice"
        );
        // The hash chains survived the kills, takeovers and group commits.
        let store = AnyStore::connect(&self.db.url).await?;
        let audit = store.verify_audit().await?;
        store.close().await;
        ensure!(
            audit.broken.is_none() && audit.workflows == ids.len() as u64,
            "audit chain: {audit:?}"
        );
        Ok(takeovers)
    }
}

async fn terminate(mut child: Child) -> anyhow::Result<()> {
    let pid = child.id().context("child still running")?;
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    ensure!(status.success(), "sending SIGTERM");
    let exit = tokio::time::timeout(Duration::from_secs(20), child.wait()).await??;
    ensure!(
        exit.success(),
        "closeout serve exited with {exit} after SIGTERM"
    );
    Ok(())
}

async fn crash_test(backend: Backend) -> anyhow::Result<()> {
    const WORKFLOWS: usize = 400;
    const KILLS: usize = 20;
    let w = world(backend, &STEPS, (5, 40)).await?;
    let ids = w.start(WORKFLOWS).await?;
    let mut rng = rand::rngs::StdRng::from_entropy();
    use rand::SeedableRng;
    let mut kills_with_work = 0;
    let mut run = 0;
    while kills_with_work < KILLS {
        run += 1;
        ensure!(
            run <= KILLS * 3,
            "work finished before {KILLS} kills; make the test heavier"
        );
        let child = w.serve(&format!("crash-{run}"), 4)?;
        tokio::time::sleep(Duration::from_millis(rng.gen_range(150..600))).await;
        let unfinished = w.unfinished().await?;
        let mut child = child;
        child.kill().await?; // SIGKILL
        if unfinished > 0 {
            kills_with_work += 1;
        }
        if run == 1 {
            ensure!(
                unfinished >= 200,
                "at least 200 workflows run during the first kill, saw {unfinished}"
            );
        }
    }
    if w.unfinished().await? > 0 {
        let final_run = w.serve("crash-final", 32)?;
        w.wait_all_completed(Duration::from_secs(180)).await?;
        terminate(final_run).await?;
    }
    let takeovers = w.verify(&ids, &STEPS).await?;
    eprintln!(
        "crash test on {}: {kills_with_work} SIGKILLs with work in flight, {} executions for {} effects, {takeovers} takeovers",
        backend.name(),
        w.recorder.executions(),
        WORKFLOWS * STEPS.len(),
    );
    ensure!(w.recorder.executions() as usize >= WORKFLOWS * STEPS.len());
    w.db.drop_db().await;
    Ok(())
}

async fn four_processes_share_postgres() -> anyhow::Result<()> {
    const WORKFLOWS: usize = 1000;
    let steps = ["a", "b", "c"];
    let w = world(Backend::Postgres, &steps, (1, 10)).await?;
    let ids = w.start(WORKFLOWS).await?;
    let mut children = Vec::new();
    for i in 0..4 {
        children.push(w.serve(&format!("shared-{i}"), 32)?);
    }
    // Kill one replica mid-run, once it holds leases (a fixed delay raced its start on a
    // loaded machine): those leases must expire and be taken over.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let running = w
            .engine
            .list(&closeout_engine::store::Filter {
                states: vec![WorkflowState::Running],
                limit: 10_000,
                ..Default::default()
            })
            .await?;
        let held = running.iter().any(|r| {
            r.lease
                .as_ref()
                .is_some_and(|l| l.owner.to_string() == "shared-0")
        });
        if held {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "replica shared-0 never claimed work"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut victim = children.remove(0);
    let unfinished = w.unfinished().await?;
    victim.kill().await?;
    ensure!(
        unfinished > 0,
        "work finished before the kill; make the test heavier"
    );
    w.wait_all_completed(Duration::from_secs(180)).await?;
    for child in children {
        terminate(child).await?;
    }
    let takeovers = w.verify(&ids, &steps).await?;
    ensure!(
        takeovers > 0,
        "the killed replica's leases were taken over and recorded"
    );
    let overlaps = w.recorder.overlaps();
    ensure!(
        overlaps.is_empty(),
        "steps ran twice at once: {:?}",
        &overlaps[..overlaps.len().min(5)]
    );
    let spans = w.recorder.overlapping_spans();
    ensure!(spans.is_empty(), "{} overlapping executions", spans.len());
    eprintln!(
        "4 processes: {} executions for {} effects, {takeovers} takeovers, no overlaps",
        w.recorder.executions(),
        WORKFLOWS * steps.len()
    );
    w.db.drop_db().await;
    Ok(())
}

/// The Vietjet flow in a real `serve` process, SIGKILLed while closures run: every
/// member still gets exactly one deletion notification at Vietjet.
async fn flows_crash_test(backend: Backend) -> anyhow::Result<()> {
    use closeout_connectors::{EmailAddress, Endpoint, Phone, SkyjoyId};
    use closeout_engine::saga::Command as Op;
    use closeout_sandbox::{
        default_members, members, EffectFilter, Fault, FaultRule, Sandbox, SandboxConfig,
    };

    const MEMBERS: usize = 40;
    let template = default_members()
        .into_iter()
        .find(|m| m.skyjoy_id.as_str() == members::ACTIVE_FULL)
        .context("seeded member")?;
    let members: Vec<_> = (0..MEMBERS)
        .map(|i| {
            let mut m = template.clone();
            m.skyjoy_id = SkyjoyId::parse(format!("SJ2{i:09}")).unwrap();
            m.phone = Phone::parse(format!("+8491{i:07}")).unwrap();
            m.email = EmailAddress::parse(format!("member{i}@example.test")).unwrap();
            m.wallet = None;
            m.kybio = None;
            m.crmx = None;
            m
        })
        .collect();
    let config = SandboxConfig {
        members,
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::start(config).await?;
    // Slow partner answers so the kills land while calls are in flight.
    for endpoint in [Endpoint::VietjetDeletion, Endpoint::SkyjoyClose] {
        sandbox.add_fault(FaultRule::on(endpoint, Fault::Latency { ms: 40 }))?;
    }

    let db = TestDb::create(backend).await;
    let store = AnyStore::connect(&db.url).await?;
    store.migrate().await?;
    let dir = tempfile::tempdir()?;
    let config_file = dir.path().join("closeout.toml");
    std::fs::write(&config_file, closeout::sandbox::config_toml(&sandbox))?;
    // The real flow files, with step timeouts under this test's short lease so that
    // a killed process's work is taken over within seconds.
    let workflows = dir.path().join("workflows");
    std::fs::create_dir(&workflows)?;
    for flow in ["vietjet", "skyjoy", "galaxypay"] {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("workflows/{flow}.toml"));
        let text =
            std::fs::read_to_string(source)?.replace("timeout = \"20s\"", "timeout = \"2s\"");
        std::fs::write(workflows.join(format!("{flow}.toml")), text)?;
    }
    let connectors = closeout_connectors::Connectors::new(&sandbox.connectors_config())?;
    let registry = closeout::actions::registry(
        &Default::default(),
        Some((
            connectors,
            closeout_cooldown::HashKeys::new([(
                1,
                "a test key that is long enough to use".to_owned().into(),
            )])?,
        )),
    );
    let defs = closeout::load_definitions(&workflows, &registry)?;
    let engine = Engine::new(
        store.into_dyn(),
        registry,
        defs,
        Arc::new(SystemClock),
        Config::new(WorkerId::parse("starter")?),
    )
    .await?;
    let mut ids = Vec::new();
    for i in 0..MEMBERS {
        let member = format!("SJ2{i:09}");
        let input = json!({
            "skyjoy_id": member,
            "phone": format!("+8491{i:07}"),
            "reason": "closing",
            "requested_at": chrono::Utc::now(),
            "platform": "Vietjet web",
        });
        let started = engine
            .start(StartRequest {
                definition: DefinitionName::parse("vietjet")?,
                key: StartKey::parse(format!("vj-{i}"))?,
                subject: Some(closeout_engine::id::Subject::parse(member)?),
                channel: None,
                input,
            })
            .await?;
        ids.push(started.record().id);
    }
    let serve = |name: &str| -> anyhow::Result<Child> {
        Command::new(closeout_bin())
            .arg("serve")
            .arg("--config")
            .arg(&config_file)
            .args(["--database-url", &db.url])
            .arg("--workflows")
            .arg(&workflows)
            .args([
                "--worker-id",
                name,
                "--lease-ttl",
                "3s",
                "--poll-interval",
                "100ms",
                "--max-in-flight",
                "4",
                "--api-listen",
                "127.0.0.1:0",
            ])
            .env("CLOSEOUT_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("spawning closeout serve")
    };
    let count = |state: WorkflowState| {
        let engine = engine.clone();
        async move {
            Ok::<i64, anyhow::Error>(
                engine
                    .store()
                    .count_by_state()
                    .await?
                    .into_iter()
                    .find(|(s, _)| *s == state)
                    .map_or(0, |(_, n)| n),
            )
        }
    };
    // Up to the operations decision, then approve everyone.
    let mut first = serve("flows-0")?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while count(WorkflowState::Waiting).await? < MEMBERS as i64 {
        ensure!(
            Instant::now() < deadline,
            "workflows never reached the operations decision"
        );
        if let Some(status) = first.try_wait()? {
            anyhow::bail!("closeout serve exited early with {status}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    terminate(first).await?;
    for id in &ids {
        let approve = Op::Signal {
            name: "approve".into(),
            payload: json!({}),
        };
        engine.command(*id, approve, "ops:test", "approved").await?;
    }
    let mut rng = {
        use rand::SeedableRng;
        rand::rngs::StdRng::from_entropy()
    };
    let mut kills = 0;
    for run in 1..=30 {
        let mut child = serve(&format!("flows-{run}"))?;
        tokio::time::sleep(Duration::from_millis(rng.gen_range(150..450))).await;
        let unfinished = MEMBERS as i64 - count(WorkflowState::Completed).await?;
        child.kill().await?;
        if unfinished == 0 {
            break;
        }
        kills += 1;
    }
    ensure!(
        kills >= 3,
        "only {kills} kills landed while closures ran; slow the partners down"
    );
    // A final, undisturbed run finishes what the kills left. (Started only when work
    // remains: a process signalled in its first milliseconds, before its handler is
    // installed, dies of the signal as any Unix process would.)
    if count(WorkflowState::Completed).await? < MEMBERS as i64 {
        let last = serve("flows-final")?;
        let deadline = Instant::now() + Duration::from_secs(120);
        while count(WorkflowState::Completed).await? < MEMBERS as i64 {
            ensure!(Instant::now() < deadline, "closures did not all complete");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        terminate(last).await?;
    }
    for i in 0..MEMBERS {
        let member = SkyjoyId::parse(format!("SJ2{i:09}"))?;
        let notifications = sandbox.effects(&EffectFilter {
            endpoint: Some(Endpoint::VietjetDeletion),
            member: Some(member.clone()),
            ..Default::default()
        });
        ensure!(
            notifications.len() == 1,
            "{member:?}: {} Vietjet deletion notifications",
            notifications.len()
        );
        ensure!(sandbox
            .member(&member)
            .is_some_and(|m| m.closed_at.is_some()));
    }
    for id in &ids {
        let history = engine.history(*id).await?;
        let seqs: Vec<i64> = history.iter().map(|e| e.seq).collect();
        ensure!(
            seqs == (1..=history.len() as i64).collect::<Vec<_>>(),
            "{id}: history has gaps"
        );
    }
    eprintln!("flows crash test on {}: {kills} SIGKILLs during closures, one Vietjet notification per member", backend.name());
    sandbox.stop().await;
    db.drop_db().await;
    Ok(())
}

/// `[logging] format = "json"`: every line `serve` writes is one JSON object, and a step's
/// lines carry its workflow ID and step in their spans.
async fn json_logs() -> anyhow::Result<()> {
    let w = world(Backend::Sqlite, &STEPS[..2], (0, 0)).await?;
    let ids = w.start(3).await?;
    let child = Command::new(closeout_bin())
        .arg("serve")
        .args(["--database-url", &w.db.url])
        .arg("--workflows")
        .arg(w.workflows.path())
        .args(["--diag-url", &w.recorder.url])
        .args(["--api-listen", "127.0.0.1:0"])
        .env("CLOSEOUT_LOGGING__FORMAT", "json")
        .env("CLOSEOUT_LOG", "info,closeout_engine=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("spawning closeout serve")?;
    let pid = child.id().context("child running")?;
    w.wait_all_completed(Duration::from_secs(60)).await?;
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output()).await??;
    ensure!(out.status.success(), "serve exited with {}", out.status);
    let text = String::from_utf8(out.stderr)?;
    let mut steps_seen = std::collections::BTreeSet::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let entry: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("a log line that is not JSON: {line}"))?;
        ensure!(
            entry["level"].is_string() && entry["timestamp"].is_string(),
            "{line}"
        );
        if entry["fields"]["message"] == "running step" {
            let span = &entry["span"];
            ensure!(span["name"] == "step", "{line}");
            let workflow = span["workflow_id"].as_str().context("workflow_id")?;
            ensure!(
                entry["spans"][0]["name"] == "workflow"
                    && entry["spans"][0]["workflow_id"] == workflow,
                "the step span sits in its workflow's span: {line}"
            );
            steps_seen.insert((
                workflow.to_owned(),
                span["step"].as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    let expected: std::collections::BTreeSet<_> = ids
        .iter()
        .flat_map(|id| {
            STEPS[..2]
                .iter()
                .map(move |s| (id.to_string(), (*s).to_owned()))
        })
        .collect();
    ensure!(
        steps_seen == expected,
        "every step of every workflow logged in its spans: {steps_seen:?}"
    );
    w.db.drop_db().await;
    Ok(())
}

/// A `serve` pointed at a directory without definitions stops at once and says where it
/// looked, instead of passing its probes and refusing every request.
async fn serve_without_definitions_refuses_to_start() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let out = Command::new(closeout_bin())
        .current_dir(dir.path())
        .env_remove("CLOSEOUT_CONFIG")
        .args(["--database-url", "sqlite://closeout.db", "serve"])
        .args(["--workflows", "no-such-dir", "--api-listen", "127.0.0.1:0"])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), out).await??;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success()
            && stderr.contains("no workflow definitions")
            && stderr.contains("no-such-dir"),
        "{}: {stderr}",
        out.status
    );
    Ok(())
}

/// `?sslmode=require` reaches PostgreSQL over TLS, from the store and from the binary.
async fn postgres_over_tls() -> anyhow::Result<()> {
    let db = TestDb::create(Backend::Postgres).await;
    let sep = if db.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{sep}sslmode=require", db.url);
    let store = AnyStore::connect(&url).await?;
    store.migrate().await?;
    let AnyStore::Postgres(pg) = &store else {
        anyhow::bail!("not a PostgreSQL store");
    };
    let encrypted: bool =
        sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(pg.pool())
            .await?;
    ensure!(encrypted, "the connection is not encrypted");
    store.close().await;
    let out = Command::new(closeout_bin())
        .env_remove("CLOSEOUT_CONFIG")
        .args(["--database-url", &url, "audit", "verify"])
        .output()
        .await?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    db.drop_db().await;
    Ok(())
}

fn boxed(f: impl std::future::Future<Output = anyhow::Result<()>> + Send + 'static) -> TestFuture {
    Box::pin(f)
}

fn main() {
    let pg_missing = postgres_availability().is_err();
    if let Err(reason) = postgres_availability() {
        eprintln!("processes: {reason}");
    }
    run_plain(
        "processes",
        vec![
            (
                "crash::sqlite".into(),
                false,
                Box::new(|| boxed(crash_test(Backend::Sqlite))),
            ),
            (
                "crash::postgres".into(),
                pg_missing,
                Box::new(|| boxed(crash_test(Backend::Postgres))),
            ),
            (
                "serve_without_definitions_refuses_to_start".into(),
                false,
                Box::new(|| boxed(serve_without_definitions_refuses_to_start())),
            ),
            (
                "postgres_over_tls".into(),
                pg_missing,
                Box::new(|| boxed(postgres_over_tls())),
            ),
            (
                "json_logs::sqlite".into(),
                false,
                Box::new(|| boxed(json_logs())),
            ),
            (
                "flows_crash::sqlite".into(),
                false,
                Box::new(|| boxed(flows_crash_test(Backend::Sqlite))),
            ),
            (
                "flows_crash::postgres".into(),
                pg_missing,
                Box::new(|| boxed(flows_crash_test(Backend::Postgres))),
            ),
            (
                "four_processes_share_postgres".into(),
                pg_missing,
                Box::new(|| boxed(four_processes_share_postgres())),
            ),
        ],
    )
}
