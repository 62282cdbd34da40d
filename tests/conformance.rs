//! The store conformance suite: the same engine scenarios against SQLite and
//! PostgreSQL, each test on a database of its own. Time is a manual clock and work is
//! driven with `run_until_idle`, so nothing sleeps.

use std::path::Path;
use std::sync::Arc;

use anyhow::{ensure, Context as _};
use chrono::{Duration, TimeZone, Utc};
use closeout_engine::action::Outcome;
use closeout_engine::clock::{Clock, ManualClock};
use closeout_engine::definition::{self, Definition};
use closeout_engine::id::{
    Channel, DefinitionName, StartKey, StepId, Subject, WorkerId, WorkflowId,
};
use closeout_engine::saga::Command;
use closeout_engine::state::{EventKind, StepState, WorkflowState};
use closeout_engine::store::{self as port, Commit, Guard, LeaseAfter, Started, Store};
use closeout_engine::{Config, Engine, StartRequest};
use closeout_it::harness::{run_per_backend, TestFn, TestFuture};
use closeout_it::{Backend, Script, TestDb};
use closeout_store::AnyStore;
use serde_json::json;

const LINEAR: &str = r#"
name = "close"
version = 1
[defaults.retry]
max_attempts = 3
initial_delay = "1s"
multiplier = 2.0
jitter = 0.0
[[steps]]
id = "reserve"
kind = "compensatable"
action = "test.step"
compensation = "test.undo"
[[steps]]
id = "hold"
kind = "compensatable"
action = "test.step"
compensation = "test.undo"
[[steps]]
id = "check"
kind = "retriable"
action = "test.step"
[[steps]]
id = "close"
kind = "pivot"
action = "test.step"
[[steps]]
id = "notify"
kind = "retriable"
action = "test.step"
"#;

const WAITING: &str = r#"
name = "close"
version = 1
[defaults.retry]
max_attempts = 3
initial_delay = "1s"
jitter = 0.0
[[steps]]
id = "reserve"
kind = "compensatable"
action = "test.step"
compensation = "test.undo"
[[steps]]
id = "decide"
kind = "wait"
timeout = "1h"
on_timeout = "reject"
signals = { approve = "continue", reject = "reject" }
[[steps]]
id = "close"
kind = "pivot"
action = "test.step"
"#;

struct Setup {
    db: TestDb,
    any: AnyStore,
    store: Arc<dyn Store>,
    script: Script,
    clock: Arc<ManualClock>,
    engine: Engine,
}

fn parse(text: &str) -> Definition {
    definition::parse(Path::new("test.toml"), text, &|_| true, &Vec::new).expect("test definition")
}

async fn engine_on(
    store: Arc<dyn Store>,
    script: &Script,
    clock: Arc<ManualClock>,
    def: &str,
) -> anyhow::Result<Engine> {
    let mut config = Config::new(WorkerId::parse("test-worker")?);
    config.lease_ttl = std::time::Duration::from_secs(60);
    Ok(Engine::new(store, script.registry(), vec![parse(def)], clock, config).await?)
}

async fn setup(backend: Backend, def: &str) -> anyhow::Result<Setup> {
    let db = TestDb::create(backend).await;
    let any = AnyStore::connect(&db.url).await?;
    any.migrate().await?;
    let store = any.clone().into_dyn();
    let script = Script::default();
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 3, 1, 8, 0, 0).unwrap(),
    ));
    let engine = engine_on(store.clone(), &script, clock.clone(), def).await?;
    Ok(Setup {
        db,
        any,
        store,
        script,
        clock,
        engine,
    })
}

impl Setup {
    async fn start(&self, key: &str, subject: Option<&str>) -> anyhow::Result<WorkflowId> {
        let started = self.engine.start(request(key, subject)).await?;
        Ok(started.record().id)
    }

    async fn state(&self, id: WorkflowId) -> anyhow::Result<WorkflowState> {
        Ok(self.engine.get(id).await?.progress.state)
    }

    async fn kinds(&self, id: WorkflowId) -> anyhow::Result<Vec<EventKind>> {
        let history = self.engine.history(id).await?;
        let seqs: Vec<i64> = history.iter().map(|e| e.seq).collect();
        let expected: Vec<i64> = (1..=history.len() as i64).collect();
        ensure!(seqs == expected, "history has gaps: {seqs:?}");
        let record = self.engine.get(id).await?;
        ensure!(
            record.history_len == history.len() as i64,
            "history_len out of step"
        );
        Ok(history.into_iter().map(|e| e.kind).collect())
    }

    async fn advance_and_run(&self, by: Duration) -> anyhow::Result<()> {
        self.clock.advance(by);
        self.engine.run_until_idle().await?;
        Ok(())
    }

    async fn finish(self) {
        drop(self.engine);
        self.db.drop_db().await;
    }
}

fn request(key: &str, subject: Option<&str>) -> StartRequest {
    StartRequest {
        definition: DefinitionName::parse("close").unwrap(),
        key: StartKey::parse(key).unwrap(),
        subject: subject.map(|s| Subject::parse(s).unwrap()),
        channel: None,
        input: json!({ "member": "SJ0000000001" }),
    }
}

fn happy_path(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let s = setup(backend, LINEAR).await?;
        let id = s.start("k1", Some("SJ1")).await?;
        s.engine.run_until_idle().await?;
        ensure!(s.state(id).await? == WorkflowState::Completed);
        ensure!(
            s.script.trace() == ["reserve", "hold", "check", "close", "notify"],
            "{:?}",
            s.script.trace()
        );
        use EventKind::*;
        let kinds = s.kinds(id).await?;
        ensure!(
            kinds
                == [
                    WorkflowStarted,
                    StepSucceeded,
                    StepSucceeded,
                    StepSucceeded,
                    StepSucceeded,
                    StepSucceeded,
                    WorkflowCompleted
                ],
            "{kinds:?}"
        );
        let record = s.engine.get(id).await?;
        ensure!(record.lease.is_none(), "lease released at the end");
        ensure!(record.progress.next_run_at.is_none());
        ensure!(record
            .progress
            .steps
            .iter()
            .all(|st| st.state == StepState::Succeeded));
        s.finish().await;
        Ok(())
    })
}

fn retry_then_success(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let s = setup(backend, LINEAR).await?;
        s.script.then(
            "notify",
            [
                Outcome::retry("E_FLAKY", "partner 503"),
                Outcome::retry("E_FLAKY", "partner 503"),
            ],
        );
        let id = s.start("k1", None).await?;
        s.engine.run_until_idle().await?;
        let record = s.engine.get(id).await?;
        ensure!(record.progress.state == WorkflowState::Running);
        ensure!(
            record.progress.next_run_at == Some(s.clock.now() + Duration::seconds(1)),
            "first retry after 1s"
        );
        s.advance_and_run(Duration::milliseconds(999)).await?;
        ensure!(s.script.log().len() == 5, "not due before its time");
        s.advance_and_run(Duration::milliseconds(1)).await?;
        ensure!(
            s.engine.get(id).await?.progress.next_run_at
                == Some(s.clock.now() + Duration::seconds(2)),
            "backoff doubles"
        );
        s.advance_and_run(Duration::seconds(2)).await?;
        ensure!(s.state(id).await? == WorkflowState::Completed);
        let notify: Vec<_> = s
            .script
            .log()
            .into_iter()
            .filter(|e| e.step == "notify")
            .collect();
        ensure!(notify.iter().map(|e| e.attempt).collect::<Vec<_>>() == [1, 2, 3]);
        ensure!(
            notify.iter().all(|e| e.key == notify[0].key),
            "same idempotency key on every attempt"
        );
        let kinds = s.kinds(id).await?;
        ensure!(
            kinds
                .iter()
                .filter(|k| **k == EventKind::StepRetryScheduled)
                .count()
                == 2
        );
        s.finish().await;
        Ok(())
    })
}

fn exhausted_before_pivot_compensates_in_reverse(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let s = setup(backend, LINEAR).await?;
        s.script.then(
            "check",
            (0..3).map(|_| Outcome::retry("E_DOWN", "wallet system down")),
        );
        s.script
            .then_undo("hold", [Outcome::retry("E_UNDO", "busy")]);
        let id = s.start("k1", None).await?;
        s.engine.run_until_idle().await?;
        s.advance_and_run(Duration::seconds(1)).await?;
        s.advance_and_run(Duration::seconds(2)).await?;
        ensure!(
            s.state(id).await? == WorkflowState::Compensating,
            "undo of hold is retrying"
        );
        s.advance_and_run(Duration::seconds(1)).await?;
        let record = s.engine.get(id).await?;
        ensure!(
            record.progress.state == WorkflowState::Compensated,
            "{:?}",
            record.progress.state
        );
        ensure!(record.progress.reason.as_ref().map(|r| r.code.as_str()) == Some("E_DOWN"));
        let trace = s.script.trace();
        ensure!(
            trace
                == [
                    "reserve",
                    "hold",
                    "check",
                    "check",
                    "check",
                    "undo:hold",
                    "undo:hold",
                    "undo:reserve"
                ],
            "{trace:?}"
        );
        let steps: Vec<StepState> = record.progress.steps.iter().map(|st| st.state).collect();
        use StepState::*;
        ensure!(
            steps == [Compensated, Compensated, Failed, Pending, Pending],
            "{steps:?}"
        );
        let kinds = s.kinds(id).await?;
        ensure!(kinds.last() == Some(&EventKind::WorkflowCompensated));
        s.finish().await;
        Ok(())
    })
}

fn failure_after_pivot_parks_then_resume_completes(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let s = setup(backend, LINEAR).await?;
        s.script
            .then("notify", (0..3).map(|_| Outcome::retry("E_DOWN", "down")));
        let id = s.start("k1", None).await?;
        s.engine.run_until_idle().await?;
        s.advance_and_run(Duration::seconds(1)).await?;
        s.advance_and_run(Duration::seconds(2)).await?;
        let record = s.engine.get(id).await?;
        ensure!(record.progress.state == WorkflowState::NeedsOperator);
        ensure!(
            !s.script.trace().iter().any(|t| t.starts_with("undo:")),
            "no compensation after the pivot"
        );
        let cancel = s
            .engine
            .command(id, Command::Cancel, "ops:alice", "customer asked")
            .await;
        ensure!(cancel.is_err(), "cancel after the pivot is refused");
        s.engine
            .command(id, Command::Resume, "ops:alice", "partner is back")
            .await?;
        s.engine.run_until_idle().await?;
        ensure!(s.state(id).await? == WorkflowState::Completed);
        let history = s.engine.history(id).await?;
        let resumed = history
            .iter()
            .find(|e| e.kind == EventKind::Resumed)
            .context("resume recorded")?;
        ensure!(
            resumed.actor.as_deref() == Some("ops:alice")
                && resumed.reason.as_deref() == Some("partner is back")
        );
        s.kinds(id).await?;
        s.finish().await;
        Ok(())
    })
}

fn skip_with_output(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let s = setup(backend, LINEAR).await?;
        s.script
            .then("notify", [Outcome::fail("E_GONE", "endpoint removed")]);
        let id = s.start("k1", None).await?;
        s.engine.run_until_idle().await?;
        ensure!(s.state(id).await? == WorkflowState::NeedsOperator);
        let skip = Command::Skip {
            output: json!({ "notified_by": "phone" }),
        };
        s.engine
            .command(id, skip, "ops:bob", "called the partner")
            .await?;
        let record = s.engine.get(id).await?;
        ensure!(record.progress.state == WorkflowState::Completed);
        ensure!(record.progress.steps[4].state == StepState::Skipped);
        ensure!(record.progress.steps[4].output == Some(json!({ "notified_by": "phone" })));
        let history = s.engine.history(id).await?;
        let skipped = history
            .iter()
            .find(|e| e.kind == EventKind::StepSkipped)
            .context("skip recorded")?;
        ensure!(skipped.actor.as_deref() == Some("ops:bob"));
        s.finish().await;
        Ok(())
    })
}

fn cancel_compensates(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let s = setup(backend, LINEAR).await?;
        s.script.then("check", [Outcome::retry("E_DOWN", "down")]);
        let id = s.start("k1", Some("SJ9")).await?;
        s.engine.run_until_idle().await?;
        s.engine
            .command(id, Command::Cancel, "ops:carol", "duplicate request")
            .await?;
        s.engine.run_until_idle().await?;
        let record = s.engine.get(id).await?;
        ensure!(record.progress.state == WorkflowState::Cancelled);
        ensure!(s
            .script
            .trace()
            .ends_with(&["undo:hold".to_owned(), "undo:reserve".to_owned()]));
        let again = s.start("k2", Some("SJ9")).await;
        ensure!(again.is_ok(), "the subject is free again once cancelled");
        s.finish().await;
        Ok(())
    })
}

fn wait_and_signal_across_restart(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let s = setup(backend, WAITING).await?;
        let approve = s.start("k1", None).await?;
        let reject = s.start("k2", None).await?;
        s.engine.run_until_idle().await?;
        ensure!(s.state(approve).await? == WorkflowState::Waiting);
        // A restart: a new engine on the same database carries on.
        let engine = engine_on(s.store.clone(), &s.script, s.clock.clone(), WAITING).await?;
        let signal = |name: &str| Command::Signal {
            name: name.into(),
            payload: json!({ "reason": "checked by ops" }),
        };
        engine
            .command(approve, signal("approve"), "ops:dan", "verified")
            .await?;
        engine
            .command(reject, signal("reject"), "ops:dan", "fraud")
            .await?;
        engine.run_until_idle().await?;
        ensure!(engine.get(approve).await?.progress.state == WorkflowState::Completed);
        let rejected = engine.get(reject).await?;
        ensure!(rejected.progress.state == WorkflowState::Rejected);
        ensure!(rejected.progress.reason.map(|r| r.message) == Some("checked by ops".into()));
        let unknown = engine
            .command(approve, signal("approve"), "ops:dan", "again")
            .await;
        ensure!(unknown.is_err(), "a finished workflow takes no signal");
        s.finish().await;
        Ok(())
    })
}

fn wait_timeout(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let s = setup(backend, WAITING).await?;
        let id = s.start("k1", None).await?;
        s.engine.run_until_idle().await?;
        s.advance_and_run(Duration::minutes(59)).await?;
        ensure!(s.state(id).await? == WorkflowState::Waiting);
        s.advance_and_run(Duration::minutes(1)).await?;
        let record = s.engine.get(id).await?;
        ensure!(
            record.progress.state == WorkflowState::Rejected,
            "{:?}",
            record.progress.state
        );
        ensure!(s.script.trace() == ["reserve", "undo:reserve"]);
        ensure!(s.kinds(id).await?.contains(&EventKind::WaitTimedOut));
        s.finish().await;
        Ok(())
    })
}

fn idempotent_start(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let s = setup(backend, LINEAR).await?;
        let first = s.engine.start(request("same-key", Some("SJ1"))).await?;
        let second = s.engine.start(request("same-key", Some("SJ1"))).await?;
        ensure!(matches!(first, Started::Created(_)) && matches!(second, Started::Existing(_)));
        ensure!(first.record().id == second.record().id);
        let listed = s.engine.list(&port::Filter::default()).await?;
        ensure!(listed.len() == 1);
        ensure!(
            s.kinds(first.record().id).await? == [EventKind::WorkflowStarted],
            "no second start event"
        );
        s.finish().await;
        Ok(())
    })
}

fn concurrent_starts_one_subject(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let s = setup(backend, LINEAR).await?;
        let starts = (0..50).map(|i| {
            let engine = s.engine.clone();
            tokio::spawn(async move {
                engine
                    .start(request(&format!("key-{i}"), Some("SJ-SAME")))
                    .await
            })
        });
        let results = futures::future::join_all(starts).await;
        let mut created = Vec::new();
        let mut busy = Vec::new();
        for result in results {
            match result? {
                Ok(Started::Created(r)) => created.push(r.id),
                Ok(Started::Existing(_)) => anyhow::bail!("distinct keys never match"),
                Err(closeout_engine::Error::Store(port::Error::SubjectBusy { existing })) => {
                    busy.push(existing)
                }
                Err(e) => anyhow::bail!("unexpected error: {e}"),
            }
        }
        ensure!(
            created.len() == 1,
            "exactly one open workflow, got {}",
            created.len()
        );
        ensure!(
            busy.len() == 49 && busy.iter().all(|b| *b == created[0]),
            "the others name the open one"
        );
        let open = s
            .engine
            .list(&port::Filter {
                subject: Some(Subject::parse("SJ-SAME")?),
                ..Default::default()
            })
            .await?;
        ensure!(open.len() == 1);
        s.finish().await;
        Ok(())
    })
}

fn definition_change_mid_run(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let s = setup(backend, LINEAR).await?;
        s.script.then("hold", [Outcome::retry("E", "later")]);
        let old = s.start("old", None).await?;
        s.engine.run_until_idle().await?;
        let changed = LINEAR.replace("version = 1", "version = 2").replace(
            "[[steps]]\nid = \"notify\"\nkind = \"retriable\"\naction = \"test.step\"\n",
            "",
        );
        ensure!(parse(&changed).steps.len() == 4);
        let engine = engine_on(s.store.clone(), &s.script, s.clock.clone(), &changed).await?;
        let new = engine.start(request("new", None)).await?.record().id;
        s.clock.advance(Duration::seconds(5));
        engine.run_until_idle().await?;
        let old_record = engine.get(old).await?;
        ensure!(old_record.progress.state == WorkflowState::Completed);
        ensure!(
            old_record.definition_version == 1 && old_record.progress.steps.len() == 5,
            "still on version 1"
        );
        let new_record = engine.get(new).await?;
        ensure!(new_record.definition_version == 2 && new_record.progress.steps.len() == 4);
        let notifies = s.script.log().iter().filter(|e| e.step == "notify").count();
        ensure!(notifies == 1, "only the old workflow has a notify step");
        s.finish().await;
        Ok(())
    })
}

fn stale_lease_holder_cannot_commit(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let s = setup(backend, LINEAR).await?;
        let id = s.start("k1", None).await?;
        let a = WorkerId::parse("worker-a")?;
        let b = WorkerId::parse("worker-b")?;
        let ttl = std::time::Duration::from_secs(5);
        let claimed_a = s.store.claim(&a, s.clock.now(), 10, ttl).await?;
        ensure!(claimed_a.len() == 1);
        ensure!(
            s.store.claim(&b, s.clock.now(), 10, ttl).await?.is_empty(),
            "a live lease is not claimable"
        );
        s.clock.advance(Duration::seconds(6));
        let claimed_b = s.store.claim(&b, s.clock.now(), 10, ttl).await?;
        ensure!(claimed_b.len() == 1 && claimed_b[0].fence == claimed_a[0].fence + 1);
        let commit = |record: &port::WorkflowRecord, owner: &WorkerId| Commit {
            id,
            guard: Guard::Lease {
                owner: owner.clone(),
                fence: record.fence,
            },
            progress: record.progress.clone(),
            lease: LeaseAfter::Release,
            events: vec![],
            records: vec![],
            now: s.clock.now(),
        };
        ensure!(
            s.store.commit(&[commit(&claimed_a[0], &a)]).await? == [false],
            "the stale worker is fenced off"
        );
        ensure!(s.store.commit(&[commit(&claimed_b[0], &b)]).await? == [true]);
        let history = s.engine.history(id).await?;
        let takeover = history
            .iter()
            .find(|e| e.kind == EventKind::LeaseTakenOver)
            .context("takeover recorded")?;
        ensure!(
            takeover
                .data
                .as_ref()
                .and_then(|d| d["previous_owner"].as_str())
                == Some("worker-a")
        );
        s.kinds(id).await?;
        s.finish().await;
        Ok(())
    })
}

fn history_is_append_only(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let s = setup(backend, LINEAR).await?;
        s.start("k1", None).await?;
        let (update, delete) = match &s.any {
            AnyStore::Sqlite(db) => (
                sqlx::query("UPDATE history SET message = 'x'")
                    .execute(db.pool())
                    .await
                    .err(),
                sqlx::query("DELETE FROM history")
                    .execute(db.pool())
                    .await
                    .err(),
            ),
            AnyStore::Postgres(db) => (
                sqlx::query("UPDATE history SET message = 'x'")
                    .execute(db.pool())
                    .await
                    .err(),
                sqlx::query("DELETE FROM history")
                    .execute(db.pool())
                    .await
                    .err(),
            ),
        };
        for err in [update, delete] {
            let err = err.context("the database must refuse changes to history")?;
            ensure!(err.to_string().contains("append-only"), "{err}");
        }
        ensure!(s.any.migrations_current().await?);
        s.finish().await;
        Ok(())
    })
}

fn new_work_wakes_an_idle_worker(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let s = setup(backend, LINEAR).await?;
        // Polling once an hour: only a notification can wake this worker in time.
        let mut config = Config::new(WorkerId::parse("idle-worker")?);
        config.poll_interval = std::time::Duration::from_secs(3600);
        let worker = Engine::new(
            s.store.clone(),
            s.script.registry(),
            vec![parse(LINEAR)],
            s.clock.clone(),
            config,
        )
        .await?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = {
            let worker = worker.clone();
            tokio::spawn(async move {
                worker
                    .run(async {
                        let _ = stopped.await;
                    })
                    .await
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        // On PostgreSQL the start comes from another connection pool, as from another
        // process, so only LISTEN/NOTIFY can carry it; SQLite has the in-process wake-up.
        let id = match backend {
            Backend::Postgres => {
                let other = AnyStore::connect(&s.db.url).await?.into_dyn();
                let starter = engine_on(other, &s.script, s.clock.clone(), LINEAR).await?;
                starter.start(request("wake", None)).await?.record().id
            }
            Backend::Sqlite => worker.start(request("wake", None)).await?.record().id,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while s.state(id).await? != WorkflowState::Completed {
            ensure!(
                std::time::Instant::now() < deadline,
                "the idle worker was never woken"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let _ = stop.send(());
        running.await??;
        s.finish().await;
        Ok(())
    })
}

fn list_filters_by_channel_step_and_age(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let s = setup(backend, LINEAR).await?;
        // The first workflow to reach `notify` parks there; the others complete.
        s.script
            .then("notify", [Outcome::fail("E", "partner gone")]);
        let mut ids = Vec::new();
        for (key, channel) in [("a1", "vietjet"), ("a2", "vietjet"), ("b1", "galaxypay")] {
            let mut req = request(key, None);
            req.channel = Some(Channel::parse(channel)?);
            ids.push(s.engine.start(req).await?.record().id);
            s.engine.run_until_idle().await?;
            s.clock.advance(Duration::seconds(10));
        }
        let list = |filter: port::Filter| {
            let engine = s.engine.clone();
            async move {
                let found = engine.list(&filter).await?;
                Ok::<_, anyhow::Error>(found.into_iter().map(|r| r.id).collect::<Vec<_>>())
            }
        };
        let vietjet = list(port::Filter {
            channel: Some(Channel::parse("vietjet")?),
            ..Default::default()
        })
        .await?;
        ensure!(vietjet == ids[..2], "{vietjet:?}");
        let parked = s.engine.get(ids[0]).await?;
        ensure!(parked.channel == Some(Channel::parse("vietjet")?));
        ensure!(parked.progress.current_step == Some(StepId::parse("notify")?));
        let stuck_at_notify = list(port::Filter {
            states: vec![WorkflowState::NeedsOperator],
            step: Some(StepId::parse("notify")?),
            ..Default::default()
        })
        .await?;
        ensure!(stuck_at_notify == [ids[0]], "{stuck_at_notify:?}");
        let at_reserve = list(port::Filter {
            step: Some(StepId::parse("reserve")?),
            ..Default::default()
        })
        .await?;
        ensure!(at_reserve.is_empty(), "{at_reserve:?}");
        // Completed more than 15 seconds ago: only a2 (b1 completed 10 seconds ago).
        let old = list(port::Filter {
            states: vec![WorkflowState::Completed],
            in_state_before: Some(s.clock.now() - Duration::seconds(15)),
            ..Default::default()
        })
        .await?;
        ensure!(old == [ids[1]], "{old:?}");
        s.finish().await;
        Ok(())
    })
}

fn cooldown(hash: &str, closed: chrono::DateTime<Utc>) -> port::CooldownEntry {
    port::CooldownEntry {
        scope: "skyjoy".into(),
        phone_hash: hash.into(),
        key_version: 1,
        closed_at: closed,
        release_at: closed + Duration::days(183),
        workflow_id: None,
    }
}

fn cooldown_is_written_with_the_closing_step(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let s = setup(backend, LINEAR).await?;
        let closed = s.clock.now();
        let entry = cooldown("h-closed", closed);
        s.script.then(
            "close",
            [Outcome::done_with(
                json!({ "closed": true }),
                vec![port::Record::Cooldown(entry.clone())],
            )],
        );
        let hashes = [(1, "h-closed".to_owned())];
        let id = s.start("k1", None).await?;
        s.engine.run_until_idle().await?;
        ensure!(s.state(id).await? == WorkflowState::Completed);
        let until = s
            .store
            .cooldown_until("skyjoy", &hashes, s.clock.now())
            .await?;
        ensure!(until == Some(entry.release_at), "{until:?}");
        ensure!(
            s.store
                .cooldown_until("wallet", &hashes, s.clock.now())
                .await?
                .is_none(),
            "scopes are separate"
        );
        // Six months pass on the injected clock: the phone is free again.
        s.clock.set(entry.release_at);
        ensure!(s
            .store
            .cooldown_until("skyjoy", &hashes, s.clock.now())
            .await?
            .is_none());
        ensure!(s.store.release_cooldowns(s.clock.now(), 100).await? == 1);
        ensure!(
            s.store.release_cooldowns(s.clock.now(), 100).await? == 0,
            "released once"
        );
        // A commit whose guard fails writes none of its records.
        let other = s.start("k2", None).await?;
        let record = s.engine.get(other).await?;
        let stale = Commit {
            id: other,
            guard: Guard::Lease {
                owner: WorkerId::parse("nobody")?,
                fence: record.fence,
            },
            progress: record.progress.clone(),
            lease: LeaseAfter::Release,
            events: vec![],
            records: vec![port::Record::Cooldown(cooldown("h-fenced", s.clock.now()))],
            now: s.clock.now(),
        };
        ensure!(s.store.commit(&[stale]).await? == [false]);
        let fenced = [(1, "h-fenced".to_owned())];
        ensure!(s
            .store
            .cooldown_until("skyjoy", &fenced, s.clock.now())
            .await?
            .is_none());
        s.finish().await;
        Ok(())
    })
}

fn overlapping_expiry_runs_release_each_entry_once(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let s = setup(backend, LINEAR).await?;
        let long_ago = s.clock.now() - Duration::days(400);
        let entries: Vec<_> = (0..3000)
            .map(|i| cooldown(&format!("h{i}"), long_ago))
            .collect();
        ensure!(s.store.insert_cooldowns(&entries).await? == 3000);
        ensure!(
            s.store.insert_cooldowns(&entries).await? == 0,
            "a second import changes nothing"
        );
        let run = |store: Arc<dyn Store>, now| async move {
            let mut total = 0;
            loop {
                let n = store.release_cooldowns(now, 250).await?;
                if n == 0 {
                    return Ok::<u64, anyhow::Error>(total);
                }
                total += n;
            }
        };
        let (a, b) = tokio::join!(
            run(s.store.clone(), s.clock.now()),
            run(s.store.clone(), s.clock.now())
        );
        let (a, b) = (a?, b?);
        ensure!(a + b == 3000, "each entry released exactly once: {a} + {b}");
        s.finish().await;
        Ok(())
    })
}

fn one_replica_holds_a_job_lock(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let s = setup(backend, LINEAR).await?;
        let (a, b) = (WorkerId::parse("replica-a")?, WorkerId::parse("replica-b")?);
        let ttl = std::time::Duration::from_secs(30);
        let now = s.clock.now();
        ensure!(s.store.lock_job("cooldown-expire", &a, now, ttl).await?);
        ensure!(
            !s.store.lock_job("cooldown-expire", &b, now, ttl).await?,
            "held by a"
        );
        ensure!(
            s.store.lock_job("cooldown-expire", &a, now, ttl).await?,
            "the holder renews"
        );
        ensure!(
            s.store.lock_job("purge", &b, now, ttl).await?,
            "jobs lock separately"
        );
        s.store.unlock_job("cooldown-expire", &b).await?;
        ensure!(
            !s.store.lock_job("cooldown-expire", &b, now, ttl).await?,
            "only the holder unlocks"
        );
        let later = now + Duration::seconds(31);
        ensure!(
            s.store.lock_job("cooldown-expire", &b, later, ttl).await?,
            "an expired lock is taken over"
        );
        s.store.unlock_job("cooldown-expire", &b).await?;
        ensure!(s.store.lock_job("cooldown-expire", &a, later, ttl).await?);
        s.finish().await;
        Ok(())
    })
}

fn expiry_job_runs_on_one_replica(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let s = setup(backend, LINEAR).await?;
        let long_ago = s.clock.now() - Duration::days(400);
        let entries: Vec<_> = (0..5000)
            .map(|i| cooldown(&format!("e{i}"), long_ago))
            .collect();
        s.store.insert_cooldowns(&entries).await?;
        let not_yet = cooldown("future", s.clock.now());
        s.store.insert_cooldowns(&[not_yet]).await?;
        let ttl = std::time::Duration::from_secs(30);
        let (a, b) = (WorkerId::parse("replica-a")?, WorkerId::parse("replica-b")?);
        let (ra, rb) = tokio::join!(
            closeout_cooldown::jobs::expire(s.store.as_ref(), s.clock.as_ref(), &a, 700, ttl),
            closeout_cooldown::jobs::expire(s.store.as_ref(), s.clock.as_ref(), &b, 700, ttl),
        );
        let released = |r: &closeout_cooldown::jobs::Report| match r {
            closeout_cooldown::jobs::Report::Done { rows, .. } => *rows,
            closeout_cooldown::jobs::Report::Skipped => 0,
        };
        let (ra, rb) = (ra?, rb?);
        ensure!(released(&ra) + released(&rb) == 5000, "{ra:?} {rb:?}");
        ensure!(
            released(&ra) == 0 || released(&rb) == 0,
            "exactly one replica did the work: {ra:?} {rb:?}"
        );
        let again =
            closeout_cooldown::jobs::expire(s.store.as_ref(), s.clock.as_ref(), &a, 700, ttl)
                .await?;
        ensure!(released(&again) == 0, "idempotent: nothing left to release");
        let future = [(1, "future".to_owned())];
        ensure!(
            s.store
                .cooldown_until("skyjoy", &future, s.clock.now())
                .await?
                .is_some(),
            "not yet due stays"
        );
        s.finish().await;
        Ok(())
    })
}

fn audit_chain_detects_tampering(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let s = setup(backend, LINEAR).await?;
        s.script.then("notify", [Outcome::fail("E", "gone")]);
        let id = s.start("k1", None).await?;
        s.engine.run_until_idle().await?;
        s.engine
            .command(id, Command::Resume, "ops:eve", "retry it")
            .await?;
        s.engine.run_until_idle().await?;
        // A takeover entry too: claim, let the lease expire, claim again.
        s.start("k2", None).await?;
        let ttl = std::time::Duration::from_secs(5);
        s.store
            .claim(&WorkerId::parse("w1")?, s.clock.now(), 10, ttl)
            .await?;
        s.clock.advance(Duration::seconds(6));
        s.store
            .claim(&WorkerId::parse("w2")?, s.clock.now(), 10, ttl)
            .await?;
        let intact = s.any.verify_audit().await?;
        ensure!(intact.broken.is_none(), "{intact:?}");
        ensure!(intact.workflows == 2 && intact.entries > 10, "{intact:?}");
        // Someone with database access goes around the append-only triggers.
        let (bypass, tamper, cut) = match backend {
            Backend::Sqlite => (
                vec!["DROP TRIGGER history_no_update", "DROP TRIGGER history_no_delete"],
                "UPDATE history SET message = 'nothing happened' WHERE seq = 3",
                "DELETE FROM history WHERE seq = (SELECT MAX(seq) FROM history)",
            ),
            Backend::Postgres => (
                vec!["ALTER TABLE history DISABLE TRIGGER history_no_update"],
                "UPDATE history SET message = 'nothing happened' WHERE seq = 3",
                "DELETE FROM history WHERE (workflow_id, seq) IN (SELECT workflow_id, MAX(seq) FROM history GROUP BY workflow_id)",
            ),
        };
        let run = |sql: &'static str| {
            let any = s.any.clone();
            async move {
                match &any {
                    AnyStore::Sqlite(db) => sqlx::query(sql).execute(db.pool()).await.map(|_| ()),
                    AnyStore::Postgres(db) => sqlx::query(sql).execute(db.pool()).await.map(|_| ()),
                }
            }
        };
        for sql in bypass {
            run(sql).await?;
        }
        run(tamper).await?;
        let report = s.any.verify_audit().await?;
        let broken = report.broken.context("a changed entry is detected")?;
        ensure!(
            broken.seq == 3 && broken.problem.contains("changed"),
            "{broken:?}"
        );
        run("UPDATE history SET message = NULL WHERE seq = 3").await?;
        // Entry 3 had no message: putting that back restores the chain exactly.
        let restored = s.any.verify_audit().await?;
        ensure!(restored.broken.is_none(), "{restored:?}");
        run(cut).await?;
        let report = s.any.verify_audit().await?;
        let broken = report.broken.context("a removed last entry is detected")?;
        ensure!(broken.problem.contains("removed"), "{broken:?}");
        s.finish().await;
        Ok(())
    })
}

fn purge_erases_personal_data_after_retention(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let s = setup(backend, LINEAR).await?;
        let done = s.start("done", None).await?;
        s.engine.run_until_idle().await?;
        s.clock.advance(Duration::days(10));
        let recent = s.start("recent", None).await?;
        s.engine.run_until_idle().await?;
        s.script.then("check", [Outcome::retry("E", "later")]);
        let open = s.start("open", None).await?;
        s.engine.run_until_idle().await?;
        ensure!(s.state(open).await? == WorkflowState::Running);
        s.clock.advance(Duration::days(25));
        let owner = WorkerId::parse("purger")?;
        let retention = std::time::Duration::from_secs(30 * 86_400);
        let ttl = std::time::Duration::from_secs(60);
        let purge = || {
            closeout_engine::jobs::purge(
                s.store.as_ref(),
                s.clock.as_ref(),
                &owner,
                retention,
                100,
                ttl,
            )
        };
        ensure!(
            purge().await?.rows() == 1,
            "only the workflow finished over 30 days ago"
        );
        let record = s.engine.get(done).await?;
        ensure!(
            record.input == json!({ "purged": true }),
            "{}",
            record.input
        );
        ensure!(
            record.progress.steps.iter().all(|st| st.output.is_none()),
            "outputs erased"
        );
        ensure!(
            record.progress.state == WorkflowState::Completed,
            "outcome kept"
        );
        ensure!(s.engine.get(recent).await?.input != json!({ "purged": true }));
        ensure!(
            s.engine.get(open).await?.input != json!({ "purged": true }),
            "open workflows keep their data"
        );
        ensure!(purge().await?.rows() == 0, "idempotent");
        let audit = s.any.verify_audit().await?;
        ensure!(
            audit.broken.is_none(),
            "the purge leaves the audit chain verifiable: {audit:?}"
        );
        ensure!(
            s.engine.history(done).await?.len() == 7,
            "history untouched"
        );
        s.finish().await;
        Ok(())
    })
}

/// The stuck flag at the store: set only past a state's cutoff, kept by a commit that
/// stays in the same state (a retry), cleared by one that changes state, and cleared by
/// `unflag_stuck` when the cutoffs no longer cover it.
fn stuck_flags_follow_the_state(backend: Backend) -> TestFuture {
    Box::pin(async move {
        let s = setup(backend, LINEAR).await?;
        let retries = std::iter::repeat_with(|| Outcome::retry("E_DOWN", "partner down"));
        s.script.then("check", retries.take(2).collect::<Vec<_>>());
        let id = s.start("k1", None).await?;
        s.engine.run_until_idle().await?;
        ensure!(s.state(id).await? == WorkflowState::Running);
        let since = s.engine.get(id).await?.progress.state_since;
        let cutoffs = |at: chrono::DateTime<Utc>| vec![(WorkflowState::Running, at)];

        // Not before the cutoff; other states' cutoffs do not match.
        let flagged = s
            .store
            .flag_stuck(&cutoffs(since - Duration::seconds(1)), s.clock.now(), 10)
            .await?;
        ensure!(flagged == 0, "flagged {flagged} before the cutoff");
        let other = [(WorkflowState::Waiting, since + Duration::hours(1))];
        ensure!(s.store.flag_stuck(&other, s.clock.now(), 10).await? == 0);
        ensure!(
            s.store
                .flag_stuck(&cutoffs(since), s.clock.now(), 10)
                .await?
                == 1
        );
        ensure!(
            s.store
                .flag_stuck(&cutoffs(since), s.clock.now(), 10)
                .await?
                == 0
        );
        let flagged_at = s.clock.now();
        ensure!(s.engine.get(id).await?.stuck_since == Some(flagged_at));
        ensure!(s.store.count_stuck().await? == [(WorkflowState::Running, 1)]);

        // A retry commits in the same state: the flag stays.
        s.advance_and_run(Duration::seconds(1)).await?;
        let record = s.engine.get(id).await?;
        ensure!(
            record.progress.state == WorkflowState::Running
                && record.progress.steps[2].attempts == 2,
            "{:?}",
            record.progress
        );
        ensure!(
            record.stuck_since == Some(flagged_at),
            "kept through a retry"
        );
        let listed = s
            .engine
            .list(&port::Filter {
                stuck: true,
                limit: 10,
                ..port::Filter::default()
            })
            .await?;
        ensure!(listed.len() == 1 && listed[0].id == id);

        // Cutoffs that no longer cover it clear the flag; covering ones keep it.
        ensure!(s.store.unflag_stuck(&cutoffs(since), 10).await? == 0);
        ensure!(
            s.store
                .unflag_stuck(&cutoffs(since - Duration::seconds(1)), 10)
                .await?
                == 1
        );
        ensure!(s.engine.get(id).await?.stuck_since.is_none());

        // Flag again, then finish: completing changes state and clears it.
        ensure!(
            s.store
                .flag_stuck(&cutoffs(since), s.clock.now(), 10)
                .await?
                == 1
        );
        s.advance_and_run(Duration::seconds(2)).await?;
        let record = s.engine.get(id).await?;
        ensure!(record.progress.state == WorkflowState::Completed);
        ensure!(
            record.stuck_since.is_none(),
            "cleared when the state changed"
        );
        ensure!(s.store.count_stuck().await?.is_empty());
        s.finish().await;
        Ok(())
    })
}

fn main() {
    let tests: &[(&str, TestFn)] = &[
        ("happy_path", happy_path),
        ("retry_then_success", retry_then_success),
        (
            "exhausted_before_pivot_compensates_in_reverse",
            exhausted_before_pivot_compensates_in_reverse,
        ),
        (
            "failure_after_pivot_parks_then_resume_completes",
            failure_after_pivot_parks_then_resume_completes,
        ),
        ("skip_with_output", skip_with_output),
        ("cancel_compensates", cancel_compensates),
        (
            "wait_and_signal_across_restart",
            wait_and_signal_across_restart,
        ),
        ("wait_timeout", wait_timeout),
        ("idempotent_start", idempotent_start),
        (
            "concurrent_starts_one_subject",
            concurrent_starts_one_subject,
        ),
        ("definition_change_mid_run", definition_change_mid_run),
        (
            "stale_lease_holder_cannot_commit",
            stale_lease_holder_cannot_commit,
        ),
        ("history_is_append_only", history_is_append_only),
        (
            "new_work_wakes_an_idle_worker",
            new_work_wakes_an_idle_worker,
        ),
        (
            "list_filters_by_channel_step_and_age",
            list_filters_by_channel_step_and_age,
        ),
        (
            "cooldown_is_written_with_the_closing_step",
            cooldown_is_written_with_the_closing_step,
        ),
        (
            "overlapping_expiry_runs_release_each_entry_once",
            overlapping_expiry_runs_release_each_entry_once,
        ),
        ("one_replica_holds_a_job_lock", one_replica_holds_a_job_lock),
        (
            "expiry_job_runs_on_one_replica",
            expiry_job_runs_on_one_replica,
        ),
        (
            "audit_chain_detects_tampering",
            audit_chain_detects_tampering,
        ),
        (
            "purge_erases_personal_data_after_retention",
            purge_erases_personal_data_after_retention,
        ),
        ("stuck_flags_follow_the_state", stuck_flags_follow_the_state),
    ];
    run_per_backend("conformance", tests)
}
