//! The worker runtime: claims due workflows under a lease, runs their actions, and
//! commits each result — with what comes next — before acting on it.
//!
//! Results from many workflows are committed together by one committer task (group
//! commit): a durable commit costs an fsync, so sharing it is how the engine's
//! transition rate exceeds the database's single-transaction rate.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot, Notify, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, error, info_span, warn, Instrument};

use crate::action::{Context, Outcome, Registry};
use crate::clock::Clock;
use crate::definition::Definition;
use crate::id::{Channel, DefinitionName, IdempotencyKey, StartKey, Subject, WorkerId, WorkflowId};
use crate::saga::{self, codes, Command, Work};
use crate::state::StepState;
use crate::store::{
    self, Commit, Event, Filter, Guard, LeaseAfter, NewWorkflow, Started, Store, WorkflowRecord,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown workflow definition `{0}`; the loaded definitions are listed by `closeout definitions`")]
    UnknownDefinition(String),
    #[error("workflow {0} not found")]
    NotFound(WorkflowId),
    #[error("workflow {0} is being worked on right now; try again in a few seconds")]
    Busy(WorkflowId),
    #[error(transparent)]
    Saga(#[from] saga::Error),
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Definition(#[from] crate::definition::Error),
    #[error("configuration: {0}")]
    Config(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Tuning knobs of one engine process.
#[derive(Debug, Clone)]
pub struct Config {
    pub worker_id: WorkerId,
    /// Workflows driven concurrently by this process.
    pub max_in_flight: usize,
    /// Workflows leased per claim query.
    pub claim_batch: u32,
    /// Lease length; must exceed every step timeout so a live worker never loses it.
    pub lease_ttl: Duration,
    /// Fallback polling interval when no notification arrives.
    pub poll_interval: Duration,
    /// Most transitions committed in one transaction.
    pub commit_batch: usize,
}

impl Config {
    pub fn new(worker_id: WorkerId) -> Self {
        Self {
            worker_id,
            max_in_flight: 256,
            claim_batch: 64,
            lease_ttl: Duration::from_secs(60),
            poll_interval: Duration::from_millis(500),
            commit_batch: 512,
        }
    }
}

/// How one attempt of a step's action ended, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Done,
    Retry,
    Fail,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Done => "done",
            Self::Retry => "retry",
            Self::Fail => "fail",
        }
    }
}

/// One finished attempt of a step's action or compensation. Names only, never data.
#[derive(Debug, Clone, Copy)]
pub struct StepAttempt<'a> {
    pub definition: &'a str,
    pub step: &'a str,
    pub action: &'a str,
    pub compensating: bool,
    pub outcome: AttemptOutcome,
    pub elapsed: Duration,
}

/// Hears about every step attempt (metrics). Called on the worker's task: keep it cheap.
pub trait Observer: Send + Sync + std::fmt::Debug + 'static {
    fn step_attempt(&self, attempt: &StepAttempt<'_>);
}

/// A request to start a workflow.
#[derive(Debug, Clone)]
pub struct StartRequest {
    pub definition: DefinitionName,
    pub key: StartKey,
    pub subject: Option<Subject>,
    pub channel: Option<Channel>,
    pub input: Value,
}

/// The committer hands each commit back with its result, so a worker keeps the
/// progress it committed without copying it first.
type CommitReply = oneshot::Sender<(Commit, store::Result<bool>)>;

struct Inner {
    store: Arc<dyn Store>,
    actions: Registry,
    clock: Arc<dyn Clock>,
    config: Config,
    latest: HashMap<DefinitionName, Arc<Definition>>,
    pinned: RwLock<HashMap<String, Arc<Definition>>>,
    wake: Notify,
    committer: mpsc::Sender<(Commit, CommitReply)>,
    shutting_down: AtomicBool,
    observer: std::sync::OnceLock<Arc<dyn Observer>>,
}

/// A cheap handle to the engine; clone it freely.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("worker_id", &self.inner.config.worker_id)
            .field("definitions", &self.inner.latest.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Engine {
    /// Pins `definitions` in the store and spawns the committer task.
    pub async fn new(
        store: Arc<dyn Store>,
        actions: Registry,
        definitions: Vec<Definition>,
        clock: Arc<dyn Clock>,
        config: Config,
    ) -> Result<Self> {
        let mut latest = HashMap::new();
        let mut pinned = HashMap::new();
        for def in definitions {
            // A wait's timeout is how long it waits, not how long an action may run.
            for step in def.steps.iter().filter(|s| s.kind.action().is_some()) {
                if step.timeout >= config.lease_ttl {
                    return Err(Error::Config(format!(
                        "step `{}` of `{}` has a timeout of {:?}, not shorter than the lease of {:?}; raise the lease TTL or lower the timeout",
                        step.id, def.name, step.timeout, config.lease_ttl
                    )));
                }
            }
            for action in def.actions() {
                if !actions.contains(action) {
                    return Err(Error::Config(format!(
                        "definition `{}` uses action `{action}`, which this binary does not register",
                        def.name
                    )));
                }
            }
            store.put_definition(&def).await?;
            let def = Arc::new(def);
            pinned.insert(def.content_hash(), def.clone());
            latest.insert(def.name.clone(), def);
        }
        let (tx, rx) = mpsc::channel(config.commit_batch.max(1) * 4);
        tokio::spawn(committer(store.clone(), rx, config.commit_batch.max(1)));
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                actions,
                clock,
                config,
                latest,
                pinned: RwLock::new(pinned),
                wake: Notify::new(),
                committer: tx,
                shutting_down: AtomicBool::new(false),
                observer: std::sync::OnceLock::new(),
            }),
        })
    }

    /// Reports every step attempt to `observer` from now on. One observer per engine;
    /// `false` if one was already set.
    pub fn observe(&self, observer: Arc<dyn Observer>) -> bool {
        self.inner.observer.set(observer).is_ok()
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    pub fn definitions(&self) -> Vec<Arc<Definition>> {
        let mut defs: Vec<_> = self.inner.latest.values().cloned().collect();
        defs.sort_by(|a, b| a.name.cmp(&b.name));
        defs
    }

    pub fn definition(&self, name: &DefinitionName) -> Option<Arc<Definition>> {
        self.inner.latest.get(name).cloned()
    }

    /// Starts one workflow; idempotent by `key`.
    pub async fn start(&self, request: StartRequest) -> Result<Started> {
        let mut results = self.start_many(vec![request]).await?;
        Ok(results.pop().expect("one result per request")?)
    }

    /// Starts many workflows in one transaction. Each entry succeeds or fails alone.
    pub async fn start_many(
        &self,
        requests: Vec<StartRequest>,
    ) -> Result<Vec<store::Result<Started>>> {
        let now = self.inner.clock.now();
        let mut new = Vec::with_capacity(requests.len());
        for request in requests {
            let def = self
                .inner
                .latest
                .get(&request.definition)
                .ok_or_else(|| Error::UnknownDefinition(request.definition.to_string()))?;
            let (progress, events) = saga::initial(def, now);
            new.push(NewWorkflow {
                id: WorkflowId::new(),
                definition: def.name.clone(),
                definition_version: def.version,
                definition_hash: def.content_hash(),
                start_key: request.key,
                subject: request.subject,
                channel: request.channel,
                input: request.input,
                progress,
                events,
                now,
            });
        }
        let results = self.inner.store.start(new).await?;
        self.inner.wake.notify_one();
        Ok(results)
    }

    pub async fn get(&self, id: WorkflowId) -> Result<WorkflowRecord> {
        self.inner.store.get(id).await?.ok_or(Error::NotFound(id))
    }

    pub async fn history(&self, id: WorkflowId) -> Result<Vec<Event>> {
        Ok(self.inner.store.history(id).await?)
    }

    pub async fn list(&self, filter: &Filter) -> Result<Vec<WorkflowRecord>> {
        Ok(self.inner.store.list(filter).await?)
    }

    /// The pinned definition a workflow runs on.
    pub async fn pinned(&self, hash: &str) -> Result<Arc<Definition>> {
        self.inner.pinned(hash).await
    }

    /// Applies an operator's or channel's command, recorded with `actor` and `reason`.
    pub async fn command(
        &self,
        id: WorkflowId,
        command: Command,
        actor: &str,
        reason: &str,
    ) -> Result<WorkflowRecord> {
        for attempt in 0..6u32 {
            let record = self.get(id).await?;
            let now = self.inner.clock.now();
            if record.lease.as_ref().is_some_and(|l| l.expires_at > now) {
                tokio::time::sleep(Duration::from_millis(25 << attempt)).await;
                continue;
            }
            let def = self.inner.pinned(&record.definition_hash).await?;
            let (progress, events) =
                saga::on_command(&def, &record.progress, now, command.clone(), actor, reason)?;
            let commit = Commit {
                id,
                guard: Guard::Unleased {
                    fence: record.fence,
                },
                progress,
                lease: LeaseAfter::Release,
                events,
                records: Vec::new(),
                now,
            };
            if self
                .inner
                .store
                .commit(std::slice::from_ref(&commit))
                .await?[0]
            {
                self.inner.wake.notify_one();
                return self.get(id).await;
            }
        }
        Err(Error::Busy(id))
    }

    /// Drives due work until none is left at the clock's current time. For tests and
    /// one-shot tools: no sleeping, no polling.
    pub async fn run_until_idle(&self) -> Result<usize> {
        let inner = &self.inner;
        let mut total = 0;
        loop {
            let claimed = inner
                .store
                .claim(
                    &inner.config.worker_id,
                    inner.clock.now(),
                    inner.config.claim_batch,
                    inner.config.lease_ttl,
                )
                .await?;
            if claimed.is_empty() {
                return Ok(total);
            }
            total += claimed.len();
            futures::future::join_all(claimed.into_iter().map(|r| inner.clone().drive(r))).await;
        }
    }

    /// Runs workers until `shutdown` resolves, then lets in-flight workflows finish
    /// their current step and release their leases.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let inner = &self.inner;
        let config = &inner.config;
        let permits = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
        let mut listener = inner.store.subscribe().await?;
        let mut tasks = JoinSet::new();
        let claim_threshold = (config.claim_batch as usize)
            .min(config.max_in_flight.div_ceil(4))
            .max(1);
        let mut failures = 0u32;
        tokio::pin!(shutdown);
        loop {
            while tasks.try_join_next().is_some() {}
            let available = permits.available_permits();
            let mut full = false;
            if available >= claim_threshold || tasks.is_empty() {
                let limit = available.min(config.claim_batch as usize) as u32;
                match inner
                    .store
                    .claim(
                        &config.worker_id,
                        inner.clock.now(),
                        limit,
                        config.lease_ttl,
                    )
                    .await
                {
                    Ok(claimed) => {
                        failures = 0;
                        full = claimed.len() as u32 == limit && limit > 0;
                        for record in claimed {
                            let permit = permits
                                .clone()
                                .acquire_owned()
                                .await
                                .expect("semaphore never closes");
                            let inner = inner.clone();
                            tasks.spawn(async move {
                                inner.drive(record).await;
                                drop(permit);
                            });
                        }
                    }
                    Err(e) => {
                        failures += 1;
                        warn!(error = %e, "claiming work failed; backing off");
                        tokio::time::sleep(Duration::from_millis(
                            100 * u64::from(failures.min(50)),
                        ))
                        .await;
                    }
                }
            }
            if full && permits.available_permits() > 0 {
                continue;
            }
            let idle_for = if tasks.is_empty() {
                match inner.store.next_due().await {
                    Ok(Some(due)) => (due - inner.clock.now())
                        .to_std()
                        .unwrap_or_default()
                        .min(config.poll_interval),
                    _ => config.poll_interval,
                }
            } else {
                config.poll_interval
            };
            tokio::select! {
                _ = &mut shutdown => break,
                _ = inner.wake.notified() => {}
                Some(_) = recv(&mut listener) => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = tokio::time::sleep(idle_for) => {}
            }
        }
        inner.shutting_down.store(true, Ordering::SeqCst);
        while tasks.join_next().await.is_some() {}
        Ok(())
    }
}

async fn recv(listener: &mut Option<mpsc::Receiver<()>>) -> Option<()> {
    match listener {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn committer(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<(Commit, CommitReply)>,
    max_batch: usize,
) {
    let mut commits = Vec::with_capacity(max_batch);
    let mut replies = Vec::with_capacity(max_batch);
    while let Some((first, reply)) = rx.recv().await {
        commits.push(first);
        replies.push(reply);
        while commits.len() < max_batch {
            match rx.try_recv() {
                Ok((next, reply)) => {
                    commits.push(next);
                    replies.push(reply);
                }
                Err(_) => break,
            }
        }
        let results: Vec<store::Result<bool>> = match store.commit(&commits).await {
            Ok(applied) => applied.into_iter().map(Ok).collect(),
            Err(e) => {
                let message = e.to_string();
                (0..commits.len())
                    .map(|_| Err(store::Error::Unavailable(message.clone())))
                    .collect()
            }
        };
        for ((commit, reply), result) in commits.drain(..).zip(replies.drain(..)).zip(results) {
            let _ = reply.send((commit, result));
        }
    }
}

impl Inner {
    async fn pinned(&self, hash: &str) -> Result<Arc<Definition>> {
        if let Some(def) = self.pinned.read().expect("definition cache").get(hash) {
            return Ok(def.clone());
        }
        let def =
            self.store.get_definition(hash).await?.ok_or_else(|| {
                store::Error::Corrupt(format!("pinned definition {hash} is missing"))
            })?;
        let def = Arc::new(def);
        self.pinned
            .write()
            .expect("definition cache")
            .insert(hash.to_owned(), def.clone());
        Ok(def)
    }

    /// Group-commits `commit`; answers with the progress it carried and whether its
    /// guard held.
    async fn commit(&self, commit: Commit) -> store::Result<(store::Progress, bool)> {
        let stopped = || store::Error::Unavailable("the committer has stopped".into());
        let (tx, rx) = oneshot::channel();
        if self.committer.send((commit, tx)).await.is_err() {
            return Err(stopped());
        }
        let (commit, result) = rx.await.map_err(|_| stopped())?;
        result.map(|applied| (commit.progress, applied))
    }

    /// Runs a claimed workflow step by step for as long as its next step is due now.
    async fn drive(self: Arc<Self>, mut record: WorkflowRecord) {
        // Every log line of a drive, the action's own included, carries the workflow ID.
        let span =
            info_span!("workflow", workflow_id = %record.id, definition = %record.definition);
        async move {
            let owner = self.config.worker_id.clone();
            let def = match self.pinned(&record.definition_hash).await {
                Ok(def) => def,
                Err(e) => {
                    error!(error = %e, "cannot load the pinned definition; leaving the lease to expire");
                    return;
                }
            };
            // Shared by every step of this drive instead of copied into each action.
            let input = Arc::new(std::mem::take(&mut record.input));
            loop {
                let now = self.clock.now();
                let mut records = Vec::new();
                let decided = match saga::work(&def, &record.progress, now) {
                    Work::Nothing => Ok((record.progress.clone(), Vec::new())),
                    Work::Forward { index } => {
                        let mut outcome = self.execute(&def, &record, &input, index, false).await;
                        if let Outcome::Done { records: r, .. } = &mut outcome {
                            records = std::mem::take(r);
                        }
                        saga::on_forward(&def, &record.progress, self.clock.now(), outcome)
                    }
                    Work::Compensate { index } => {
                        let outcome = self.execute(&def, &record, &input, index, true).await;
                        saga::on_compensation(&def, &record.progress, self.clock.now(), outcome)
                    }
                    Work::WaitTimeout { .. } => saga::on_wait_timeout(&def, &record.progress, now),
                };
                let (progress, events) = match decided {
                    Ok(next) => next,
                    Err(e) => {
                        error!(error = %e, "the saga refused its own transition; this is a bug");
                        return;
                    }
                };
                let now = self.clock.now();
                let keep = !self.shutting_down.load(Ordering::Relaxed)
                    && progress.state.is_runnable()
                    && progress.next_run_at.is_some_and(|t| t <= now)
                    && !events.is_empty();
                let lease = if keep {
                    LeaseAfter::Keep(now + chrono::Duration::from_std(self.config.lease_ttl).unwrap_or_default())
                } else {
                    LeaseAfter::Release
                };
                let commit = Commit {
                    id: record.id,
                    guard: Guard::Lease {
                        owner: owner.clone(),
                        fence: record.fence,
                    },
                    progress,
                    lease,
                    events,
                    records,
                    now,
                };
                match self.commit(commit).await {
                    Ok((progress, true)) => record.progress = progress,
                    Ok((_, false)) => {
                        warn!("lease lost to another worker; dropping this result");
                        return;
                    }
                    Err(e) => {
                        warn!(error = %e, "commit failed; the lease will expire and the step will run again");
                        return;
                    }
                }
                if !keep {
                    return;
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn execute(
        &self,
        def: &Definition,
        record: &WorkflowRecord,
        input: &Arc<Value>,
        index: usize,
        compensating: bool,
    ) -> Outcome {
        let step = &def.steps[index];
        let name = if compensating {
            step.kind.compensation()
        } else {
            step.kind.action()
        };
        let Some(action) = name.and_then(|n| self.actions.get(n)) else {
            return Outcome::fail(
                codes::UNKNOWN_ACTION,
                format!("step `{}` needs an action this binary does not register; deploy a binary that has it, then resume", step.id),
            );
        };
        let step_record = &record.progress.steps[index];
        let attempt = if compensating {
            step_record.compensation_attempts
        } else {
            step_record.attempts
        } + 1;
        let key = if compensating {
            IdempotencyKey::for_compensation(record.id, &step.id)
        } else {
            IdempotencyKey::for_step(record.id, &step.id)
        };
        let outputs: BTreeMap<_, _> = def
            .steps
            .iter()
            .zip(&record.progress.steps)
            .filter(|(_, r)| {
                matches!(
                    r.state,
                    StepState::Succeeded | StepState::Skipped | StepState::Compensating
                )
            })
            .filter_map(|(s, r)| r.output.clone().map(|o| (s.id.clone(), o)))
            .collect();
        let ctx = Context {
            workflow_id: record.id,
            step: step.id.clone(),
            attempt,
            idempotency_key: key,
            input: input.clone(),
            outputs,
            compensating,
        };
        // Nested in the workflow span; the IDs are repeated so a line stands on its own
        // once exported (JSON logs list the spans, but collectors often keep the leaf).
        let span = info_span!(
            "step",
            workflow_id = %record.id,
            step = %step.id,
            attempt,
            compensating
        );
        debug!(parent: &span, "running step");
        let started = std::time::Instant::now();
        let run = AssertUnwindSafe(action.run(ctx)).catch_unwind();
        let outcome = match tokio::time::timeout(step.timeout, run.instrument(span.clone())).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Outcome::retry(
                "ACTION_PANICKED",
                "the action panicked; see the service log",
            ),
            Err(_) => Outcome::retry(
                codes::STEP_TIMEOUT,
                format!(
                    "no answer within {}; the outcome is unknown, so the step is retried with the same idempotency key",
                    humantime::format_duration(step.timeout)
                ),
            ),
        };
        if let (Some(observer), Some(action)) = (self.observer.get(), name) {
            observer.step_attempt(&StepAttempt {
                definition: def.name.as_str(),
                step: step.id.as_str(),
                action: action.as_str(),
                compensating,
                outcome: match &outcome {
                    Outcome::Done { .. } => AttemptOutcome::Done,
                    Outcome::Retry { .. } => AttemptOutcome::Retry,
                    Outcome::Fail { .. } => AttemptOutcome::Fail,
                },
                elapsed: started.elapsed(),
            });
        }
        outcome
    }
}
