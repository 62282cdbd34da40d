//! The storage port. The engine speaks only this trait; `closeout-store` implements it
//! for SQLite and PostgreSQL and one conformance suite holds both to it.
//!
//! Every write is a guarded, conditional update: a commit names the fencing number it
//! expects, so a worker whose lease was taken over cannot overwrite the newer owner.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use strum::{AsRefStr, Display, EnumString};

use crate::definition::Definition;
use crate::id::{Channel, DefinitionName, StartKey, StepId, Subject, WorkerId, WorkflowId};
use crate::state::{EventKind, StepState, WorkflowState};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another open workflow already exists for this subject.
    #[error("subject already has an open workflow {existing}; wait for it to finish or act on it")]
    SubjectBusy { existing: WorkflowId },
    /// The database could not be reached or refused the statement; try again later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Stored data does not decode; a bug or a manual edit.
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

/// Which terminal state a compensation phase ends in.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Display, EnumString, AsRefStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Ending {
    Compensated,
    Rejected,
    Cancelled,
}

impl Ending {
    pub fn state(self) -> WorkflowState {
        match self {
            Self::Compensated => WorkflowState::Compensated,
            Self::Rejected => WorkflowState::Rejected,
            Self::Cancelled => WorkflowState::Cancelled,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub state: StepState,
    /// Attempts of the forward action so far.
    pub attempts: u32,
    /// Attempts of the compensation so far.
    #[serde(default)]
    pub compensation_attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
}

impl StepRecord {
    pub fn pending() -> Self {
        Self {
            state: StepState::Pending,
            attempts: 0,
            compensation_attempts: 0,
            output: None,
        }
    }
}

/// Why a workflow failed, was rejected or parked: a stable code and a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    pub code: String,
    pub message: String,
}

/// The part of a workflow that transitions change. The engine computes a new
/// `Progress` and the store writes it whole, with its events, in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub state: WorkflowState,
    /// Index of the step being run, waited on, or compensated.
    pub cursor: usize,
    /// The id of the step at `cursor`, kept beside it so lists can filter by step.
    pub current_step: Option<StepId>,
    /// Set while compensating (and while parked during compensation).
    pub ending: Option<Ending>,
    pub steps: Vec<StepRecord>,
    pub reason: Option<Reason>,
    /// When a worker should next look at it; `None` when only a person or signal can.
    pub next_run_at: Option<DateTime<Utc>>,
    pub state_since: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    pub owner: WorkerId,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowRecord {
    pub id: WorkflowId,
    pub definition: DefinitionName,
    pub definition_version: u32,
    pub definition_hash: String,
    pub start_key: StartKey,
    pub subject: Option<Subject>,
    pub channel: Option<Channel>,
    pub input: Value,
    pub progress: Progress,
    pub lease: Option<Lease>,
    pub fence: i64,
    pub history_len: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When the stuck-workflow sweep flagged it as in its current state for too long;
    /// `None` once it moves to another state.
    pub stuck_since: Option<DateTime<Utc>>,
    /// Hash (hex) of the newest history entry: the head of the tamper-evident chain.
    pub history_head: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewWorkflow {
    pub id: WorkflowId,
    pub definition: DefinitionName,
    pub definition_version: u32,
    pub definition_hash: String,
    pub start_key: StartKey,
    pub subject: Option<Subject>,
    pub channel: Option<Channel>,
    pub input: Value,
    pub progress: Progress,
    pub events: Vec<NewEvent>,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Started {
    Created(WorkflowRecord),
    /// The start key was used before: this is that workflow, unchanged.
    Existing(WorkflowRecord),
}

impl Started {
    pub fn record(&self) -> &WorkflowRecord {
        match self {
            Self::Created(r) | Self::Existing(r) => r,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    pub kind: Option<EventKind>,
    pub step: Option<StepId>,
    pub attempt: Option<u32>,
    pub error_code: Option<String>,
    pub message: Option<String>,
    pub actor: Option<String>,
    pub reason: Option<String>,
    pub data: Option<Value>,
}

impl NewEvent {
    pub fn new(kind: EventKind) -> Self {
        Self {
            kind: Some(kind),
            ..Self::default()
        }
    }
    pub fn step(mut self, step: &StepId) -> Self {
        self.step = Some(step.clone());
        self
    }
    pub fn attempt(mut self, attempt: u32) -> Self {
        self.attempt = Some(attempt);
        self
    }
    pub fn error(mut self, code: &str, message: &str) -> Self {
        self.error_code = Some(code.to_owned());
        self.message = Some(message.to_owned());
        self
    }
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }
    pub fn actor(mut self, actor: &str, reason: &str) -> Self {
        self.actor = Some(actor.to_owned());
        self.reason = Some(reason.to_owned());
        self
    }
    pub fn data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }
}

/// A history entry as stored. `seq` runs 1, 2, 3… per workflow with no gaps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub workflow_id: WorkflowId,
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub kind: EventKind,
    pub step: Option<StepId>,
    pub attempt: Option<u32>,
    pub error_code: Option<String>,
    pub message: Option<String>,
    pub actor: Option<String>,
    pub reason: Option<String>,
    pub data: Option<Value>,
}

/// Who may write: the lease holder, or anyone while no live lease exists (operators).
#[derive(Debug, Clone, PartialEq)]
pub enum Guard {
    Lease {
        owner: WorkerId,
        fence: i64,
    },
    /// Succeeds only if the fence is unchanged and no unexpired lease is held; bumps
    /// the fence so any stale worker is locked out.
    Unleased {
        fence: i64,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum LeaseAfter {
    Release,
    /// Keep working on it: extend the lease to this instant.
    Keep(DateTime<Utc>),
}

#[derive(Debug, Clone)]
pub struct Commit {
    pub id: WorkflowId,
    pub guard: Guard,
    pub progress: Progress,
    pub lease: LeaseAfter,
    pub events: Vec<NewEvent>,
    /// Written only if the guard holds, in the same transaction.
    pub records: Vec<Record>,
    pub now: DateTime<Utc>,
}

/// A record an action asks to persist in the same transaction as its step's result.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A closed account's phone may not register again in `scope` until `release_at`.
    Cooldown(CooldownEntry),
}

/// One phone cooldown, keyed by a keyed hash of the phone, never the phone itself.
#[derive(Debug, Clone, PartialEq)]
pub struct CooldownEntry {
    /// `skyjoy` or `wallet`.
    pub scope: String,
    pub phone_hash: String,
    pub key_version: u32,
    pub closed_at: DateTime<Utc>,
    pub release_at: DateTime<Utc>,
    /// The workflow that closed the account; `None` for imported closures.
    pub workflow_id: Option<WorkflowId>,
}

/// A final outcome waiting to be announced to the channel that submitted the workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct OutcomeNotice {
    pub workflow_id: WorkflowId,
    pub channel: Channel,
    pub state: WorkflowState,
    pub reason_code: Option<String>,
    pub at: DateTime<Utc>,
    /// Delivery attempts so far, this one included.
    pub attempts: u32,
}

/// How one delivery attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    Delivered {
        at: DateTime<Utc>,
    },
    /// Try again at `at`.
    Retry {
        at: DateTime<Utc>,
        error: String,
    },
    /// Stop trying; the error says why (no endpoint registered, attempts exhausted).
    GiveUp {
        error: String,
    },
}

/// Filters for the operations list. All set fields must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub states: Vec<WorkflowState>,
    pub definition: Option<DefinitionName>,
    pub subject: Option<Subject>,
    pub channel: Option<Channel>,
    /// Only workflows whose current step is this one.
    pub step: Option<StepId>,
    /// Only workflows whose current state began before this instant.
    pub in_state_before: Option<DateTime<Utc>>,
    /// Only workflows the stuck-workflow sweep has flagged.
    pub stuck: bool,
    pub limit: u32,
}

/// How long a workflow may stay in a state before the sweep flags it: one threshold
/// per non-terminal state, as instants (`now - threshold`) the state must have begun
/// before.
pub type StuckCutoffs = [(WorkflowState, DateTime<Utc>)];

#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Pins a definition's content by hash. Idempotent.
    async fn put_definition(&self, definition: &Definition) -> Result<()>;
    async fn get_definition(&self, hash: &str) -> Result<Option<Definition>>;

    /// Starts workflows in one transaction. Each item independently is created,
    /// found by its start key, or refused because its subject is busy.
    async fn start(&self, new: Vec<NewWorkflow>) -> Result<Vec<Result<Started>>>;

    async fn get(&self, id: WorkflowId) -> Result<Option<WorkflowRecord>>;
    async fn history(&self, id: WorkflowId) -> Result<Vec<Event>>;
    /// Oldest in their current state first.
    async fn list(&self, filter: &Filter) -> Result<Vec<WorkflowRecord>>;
    async fn count_by_state(&self) -> Result<Vec<(WorkflowState, i64)>>;

    /// Leases up to `limit` due workflows to `owner` until `now + ttl`, bumping each
    /// fence. Taking over an expired lease appends a `lease_taken_over` event.
    async fn claim(
        &self,
        owner: &WorkerId,
        now: DateTime<Utc>,
        limit: u32,
        ttl: Duration,
    ) -> Result<Vec<WorkflowRecord>>;

    /// Applies commits in one transaction. Each element of the answer says whether that
    /// commit's guard held (`false`: fenced off, nothing written for it).
    async fn commit(&self, batch: &[Commit]) -> Result<Vec<bool>>;

    /// Leases up to `limit` outcomes due for delivery until `now + lease`, counting an
    /// attempt on each. Outcomes are written by `commit` when a workflow with a channel
    /// ends, in the same transaction.
    async fn claim_outcomes(
        &self,
        now: DateTime<Utc>,
        limit: u32,
        lease: Duration,
    ) -> Result<Vec<OutcomeNotice>>;

    /// Records how a delivery attempt ended.
    async fn finish_outcome(&self, workflow_id: WorkflowId, delivery: Delivery) -> Result<()>;

    /// The latest release instant among the cooldowns in `scope` that match any of
    /// `hashes` (key version, hex) and are still in force at `now`.
    async fn cooldown_until(
        &self,
        scope: &str,
        hashes: &[(u32, String)],
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>>;

    /// Inserts cooldowns (the go-live import); an existing entry for the same phone
    /// keeps the later release. Returns how many rows were inserted or extended.
    async fn insert_cooldowns(&self, entries: &[CooldownEntry]) -> Result<u64>;

    /// Releases (deletes) up to `batch` cooldowns whose release instant is at or before `now`,
    /// each exactly once even when runs overlap. Returns how many it released.
    async fn release_cooldowns(&self, now: DateTime<Utc>, batch: u32) -> Result<u64>;

    /// Erases the personal data of up to `batch` workflows that ended before
    /// `ended_before` and are not yet purged: the input becomes `{"purged": true}` and
    /// every step output is dropped. IDs, states, outcomes, the history and cooldown hashes
    /// stay. Returns how many it purged.
    async fn purge_finished(
        &self,
        ended_before: DateTime<Utc>,
        now: DateTime<Utc>,
        batch: u32,
    ) -> Result<u64>;

    /// Flags up to `batch` unflagged workflows whose state is in `cutoffs` and began at
    /// or before that state's cutoff, recording `now`. Returns how many it flagged.
    async fn flag_stuck(
        &self,
        cutoffs: &StuckCutoffs,
        now: DateTime<Utc>,
        batch: u32,
    ) -> Result<u64>;

    /// Clears the flag of up to `batch` flagged workflows that no longer match
    /// `cutoffs` (their threshold was raised, or their state has none). A workflow that
    /// changes state loses its flag in that commit. Returns how many it cleared.
    async fn unflag_stuck(&self, cutoffs: &StuckCutoffs, batch: u32) -> Result<u64>;

    /// Flagged workflows by state.
    async fn count_stuck(&self) -> Result<Vec<(WorkflowState, i64)>>;

    /// Takes or renews the lock of `job` for `owner` until `now + ttl`. `false` when
    /// another owner holds an unexpired lock.
    async fn lock_job(
        &self,
        job: &str,
        owner: &WorkerId,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<bool>;

    /// Releases `job`'s lock if `owner` holds it.
    async fn unlock_job(&self, job: &str, owner: &WorkerId) -> Result<()>;

    /// The earliest `next_run_at` among runnable workflows.
    async fn next_due(&self) -> Result<Option<DateTime<Utc>>>;

    /// A stream of "new work may be due" pings from other processes, where the
    /// database can deliver them (PostgreSQL LISTEN/NOTIFY). `None`: poll only.
    async fn subscribe(&self) -> Result<Option<tokio::sync::mpsc::Receiver<()>>>;
}
