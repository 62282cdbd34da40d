//! Rows to domain records and back, shared by both backends: the column types were
//! chosen (UUID/BLOB ids, JSON/JSONB documents, epoch-millisecond BIGINTs) so that one
//! `FromRow` decodes on SQLite and PostgreSQL alike.

use chrono::{DateTime, TimeZone, Utc};
use closeout_engine::id::{
    Channel, DefinitionName, StartKey, StepId, Subject, WorkerId, WorkflowId,
};
use closeout_engine::state::EventKind;
use closeout_engine::store::{
    Ending, Error, Event, Lease, NewEvent, Progress, Reason, Result, StepRecord, WorkflowRecord,
};
use serde_json::Value;
use sqlx::types::Json;
use uuid::Uuid;

pub const WORKFLOW_COLUMNS: &str = "id, definition_name, definition_version, definition_hash, start_key, subject, input, state, cursor, ending, steps, reason_code, reason_message, next_run_at, state_since, lease_owner, lease_expires_at, fence, history_len, created_at, updated_at, channel, current_step, history_head, stuck_at";

pub const RUNNABLE: &str = "('running', 'waiting', 'compensating')";

pub fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

pub fn time(ms: i64) -> Result<DateTime<Utc>> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| Error::Corrupt(format!("timestamp {ms} out of range")))
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Corrupt(format!("{what}: {e}"))
}

#[derive(Debug, sqlx::FromRow)]
pub struct WorkflowRow {
    pub id: Uuid,
    pub definition_name: String,
    pub definition_version: i64,
    pub definition_hash: String,
    pub start_key: String,
    pub subject: Option<String>,
    pub input: Json<Value>,
    pub state: String,
    pub cursor: i64,
    pub ending: Option<String>,
    pub steps: Json<Vec<StepRecord>>,
    pub reason_code: Option<String>,
    pub reason_message: Option<String>,
    pub next_run_at: Option<i64>,
    pub state_since: i64,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<i64>,
    pub fence: i64,
    pub history_len: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub channel: Option<String>,
    pub current_step: Option<String>,
    pub history_head: Option<String>,
    pub stuck_at: Option<i64>,
}

impl WorkflowRow {
    pub fn decode(self) -> Result<WorkflowRecord> {
        let lease = match (self.lease_owner, self.lease_expires_at) {
            (Some(owner), Some(expires)) => Some(Lease {
                owner: WorkerId::parse(owner).map_err(|e| corrupt("lease owner", e))?,
                expires_at: time(expires)?,
            }),
            _ => None,
        };
        Ok(WorkflowRecord {
            id: WorkflowId::from_uuid(self.id),
            definition: DefinitionName::parse(self.definition_name)
                .map_err(|e| corrupt("definition", e))?,
            definition_version: u32::try_from(self.definition_version)
                .map_err(|e| corrupt("version", e))?,
            definition_hash: self.definition_hash,
            start_key: StartKey::parse(self.start_key).map_err(|e| corrupt("start key", e))?,
            subject: self
                .subject
                .map(Subject::parse)
                .transpose()
                .map_err(|e| corrupt("subject", e))?,
            channel: self
                .channel
                .map(Channel::parse)
                .transpose()
                .map_err(|e| corrupt("channel", e))?,
            input: self.input.0,
            progress: Progress {
                state: self.state.parse().map_err(|e| corrupt("state", e))?,
                cursor: usize::try_from(self.cursor).map_err(|e| corrupt("cursor", e))?,
                current_step: self
                    .current_step
                    .map(StepId::parse)
                    .transpose()
                    .map_err(|e| corrupt("current step", e))?,
                ending: self
                    .ending
                    .map(|e| e.parse::<Ending>())
                    .transpose()
                    .map_err(|e| corrupt("ending", e))?,
                steps: self.steps.0,
                reason: match (self.reason_code, self.reason_message) {
                    (Some(code), message) => Some(Reason {
                        code,
                        message: message.unwrap_or_default(),
                    }),
                    _ => None,
                },
                next_run_at: self.next_run_at.map(time).transpose()?,
                state_since: time(self.state_since)?,
            },
            lease,
            fence: self.fence,
            history_len: self.history_len,
            created_at: time(self.created_at)?,
            updated_at: time(self.updated_at)?,
            stuck_since: self.stuck_at.map(time).transpose()?,
            history_head: self.history_head,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub struct EventRow {
    pub workflow_id: Uuid,
    pub seq: i64,
    pub at: i64,
    pub kind: String,
    pub step: Option<String>,
    pub attempt: Option<i64>,
    pub error_code: Option<String>,
    pub message: Option<String>,
    pub actor: Option<String>,
    pub reason: Option<String>,
    pub data: Option<Json<Value>>,
    /// The chain hash (`None` only for entries written before migration 0005).
    pub hash: Option<String>,
}

impl EventRow {
    pub fn decode(self) -> Result<Event> {
        Ok(Event {
            workflow_id: WorkflowId::from_uuid(self.workflow_id),
            seq: self.seq,
            at: time(self.at)?,
            kind: self
                .kind
                .parse::<EventKind>()
                .map_err(|e| corrupt("event kind", e))?,
            step: self
                .step
                .map(StepId::parse)
                .transpose()
                .map_err(|e| corrupt("step", e))?,
            attempt: self.attempt.map(|a| a as u32),
            error_code: self.error_code,
            message: self.message,
            actor: self.actor,
            reason: self.reason,
            data: self.data.map(|d| d.0),
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub struct OutcomeRow {
    pub workflow_id: Uuid,
    pub channel: String,
    pub state: String,
    pub reason_code: Option<String>,
    pub at: i64,
    pub attempts: i64,
}

impl OutcomeRow {
    pub fn decode(self) -> Result<closeout_engine::store::OutcomeNotice> {
        Ok(closeout_engine::store::OutcomeNotice {
            workflow_id: WorkflowId::from_uuid(self.workflow_id),
            channel: Channel::parse(self.channel).map_err(|e| corrupt("channel", e))?,
            state: self.state.parse().map_err(|e| corrupt("state", e))?,
            reason_code: self.reason_code,
            at: time(self.at)?,
            attempts: u32::try_from(self.attempts).map_err(|e| corrupt("attempts", e))?,
        })
    }
}

/// Column values of a progress update, in the order both backends bind them.
pub struct ProgressColumns {
    pub state: &'static str,
    pub cursor: i64,
    pub current_step: Option<String>,
    pub ending: Option<&'static str>,
    pub steps: Json<Vec<StepRecord>>,
    pub reason_code: Option<String>,
    pub reason_message: Option<String>,
    pub next_run_at: Option<i64>,
    pub state_since: i64,
    /// Whether the subject stays reserved (the workflow is still open).
    pub open: bool,
}

pub fn progress_columns(p: &Progress) -> ProgressColumns {
    ProgressColumns {
        state: p.state.into(),
        cursor: p.cursor as i64,
        current_step: p.current_step.as_ref().map(|s| s.to_string()),
        ending: p.ending.map(|e| match e {
            Ending::Compensated => "compensated",
            Ending::Rejected => "rejected",
            Ending::Cancelled => "cancelled",
        }),
        steps: Json(p.steps.clone()),
        reason_code: p.reason.as_ref().map(|r| r.code.clone()),
        reason_message: p.reason.as_ref().map(|r| r.message.clone()),
        next_run_at: if p.state.is_runnable() {
            p.next_run_at.map(millis)
        } else {
            None
        },
        state_since: millis(p.state_since),
        open: !p.state.is_terminal(),
    }
}

/// A history row ready to insert.
pub struct EventColumns {
    pub workflow_id: Uuid,
    pub seq: i64,
    pub at: i64,
    pub kind: &'static str,
    pub step: Option<String>,
    pub attempt: Option<i64>,
    pub error_code: Option<String>,
    pub message: Option<String>,
    pub actor: Option<String>,
    pub reason: Option<String>,
    pub data: Option<Json<Value>>,
    pub hash: String,
}

/// The chain hash of one history entry: SHA-256 over the previous entry's hash and the
/// entry's fields, unit-separated. Written on insert and recomputed by `verify_audit`.
#[allow(clippy::too_many_arguments)]
pub fn chain_hash(
    previous: &str,
    workflow_id: Uuid,
    seq: i64,
    at: i64,
    kind: &str,
    step: Option<&str>,
    attempt: Option<i64>,
    error_code: Option<&str>,
    message: Option<&str>,
    actor: Option<&str>,
    reason: Option<&str>,
    data: Option<&Value>,
) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    let opt = |v: Option<&str>| v.map(|s| format!("+{s}")).unwrap_or_else(|| "-".into());
    let fields = [
        previous.to_owned(),
        workflow_id.to_string(),
        seq.to_string(),
        at.to_string(),
        kind.to_owned(),
        opt(step),
        attempt.map(|a| a.to_string()).unwrap_or_else(|| "-".into()),
        opt(error_code),
        opt(message),
        opt(actor),
        opt(reason),
        data.map(|d| d.to_string()).unwrap_or_else(|| "-".into()),
    ];
    hasher.update(fields.join("\u{1f}").as_bytes());
    hex::encode(hasher.finalize())
}

/// Numbers `events` after `history_len_before` and chains them after `head`; returns the
/// rows and the new head.
pub fn event_columns(
    id: WorkflowId,
    history_len_before: i64,
    head: &str,
    at: DateTime<Utc>,
    events: &[NewEvent],
) -> (Vec<EventColumns>, String) {
    let mut previous = head.to_owned();
    let mut rows = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        let seq = history_len_before + 1 + i as i64;
        let kind = e.kind.map(<&'static str>::from).unwrap_or("unknown");
        let step = e.step.as_ref().map(|s| s.to_string());
        let attempt = e.attempt.map(i64::from);
        let hash = chain_hash(
            &previous,
            id.as_uuid(),
            seq,
            millis(at),
            kind,
            step.as_deref(),
            attempt,
            e.error_code.as_deref(),
            e.message.as_deref(),
            e.actor.as_deref(),
            e.reason.as_deref(),
            e.data.as_ref(),
        );
        previous = hash.clone();
        rows.push(EventColumns {
            workflow_id: id.as_uuid(),
            seq,
            at: millis(at),
            kind,
            step,
            attempt,
            error_code: e.error_code.clone(),
            message: e.message.clone(),
            actor: e.actor.clone(),
            reason: e.reason.clone(),
            data: e.data.clone().map(Json),
            hash,
        });
    }
    (rows, previous)
}

pub fn takeover_event(previous_owner: &str) -> NewEvent {
    NewEvent::new(EventKind::LeaseTakenOver)
        .message(format!("lease of {previous_owner} expired; taken over"))
        .data(serde_json::json!({ "previous_owner": previous_owner }))
}
