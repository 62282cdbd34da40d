//! The operations API: list and filter requests (oldest in their state first), read one
//! with its full history, and act on it: approve or reject a waiting request, retry now,
//! resume, skip a step (with the output the step would have produced), or cancel
//! (compensate). Bulk retry, resume and cancel take a filter and answer a dry run with
//! the count and IDs first.
//!
//! `read` credentials may list and read; actions need `write`. Every action records the
//! credential's name as the actor and requires a reason, both kept in the history.

use std::str::FromStr;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::Json;
use chrono::{DateTime, Utc};
use closeout_engine::id::{Channel, DefinitionName, StepId, Subject, WorkflowId};
use closeout_engine::saga::Command;
use closeout_engine::state::WorkflowState;
use closeout_engine::store::{Event, Filter, WorkflowRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::auth::{OpsReader, OpsWriter};
use crate::body::{StrictJson, StrictQuery};
use crate::error::{Error, ErrorBody, Result};
use crate::AppState;

const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;
const MAX_REASON: usize = 1000;

/// Filters shared by the list and the bulk actions. All given ones must match.
#[derive(Debug, Clone, Default, Deserialize, ToSchema, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Comma-separated states, e.g. `needs_operator,waiting`.
    #[param(example = "needs_operator")]
    pub state: Option<String>,
    /// `vietjet`, `skyjoy` or `galaxypay`.
    pub flow: Option<String>,
    pub channel: Option<String>,
    /// The current step, e.g. `ops_decision`.
    pub step: Option<String>,
    /// The member's SkyJoy ID.
    pub skyjoy_id: Option<String>,
    /// Only requests in their state for at least this long (`1h`, `30m`, `2d`).
    pub older_than: Option<String>,
    /// `true`: only requests the stuck-workflow sweep has flagged.
    pub stuck: Option<bool>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<u32>,
}

impl ListQuery {
    fn is_empty(&self) -> bool {
        self.state.is_none()
            && self.flow.is_none()
            && self.channel.is_none()
            && self.step.is_none()
            && self.skyjoy_id.is_none()
            && self.older_than.is_none()
            && self.stuck != Some(true)
    }

    fn filter(&self, now: DateTime<Utc>) -> Result<Filter> {
        let states = match &self.state {
            None => Vec::new(),
            Some(text) => text
                .split(',')
                .map(|s| WorkflowState::from_str(s.trim()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| {
                    Error::field(
                        "states are running, waiting, compensating, completed, compensated, rejected, cancelled, needs_operator",
                        "state",
                    )
                })?,
        };
        let parse = |field: &'static str| {
            move |e: closeout_engine::id::InvalidId| Error::field(e.problem, field)
        };
        let older_than = self
            .older_than
            .as_deref()
            .map(|text| {
                humantime::parse_duration(text)
                    .ok()
                    .and_then(|d| chrono::Duration::from_std(d).ok())
                    .ok_or_else(|| {
                        Error::field("write a duration such as 30m, 1h or 2d", "older_than")
                    })
            })
            .transpose()?;
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(Error::field(format!("must be 1 to {MAX_LIMIT}"), "limit"));
        }
        Ok(Filter {
            states,
            definition: self
                .flow
                .clone()
                .map(DefinitionName::parse)
                .transpose()
                .map_err(parse("flow"))?,
            subject: self
                .skyjoy_id
                .clone()
                .map(Subject::parse)
                .transpose()
                .map_err(parse("skyjoy_id"))?,
            channel: self
                .channel
                .clone()
                .map(Channel::parse)
                .transpose()
                .map_err(parse("channel"))?,
            step: self
                .step
                .clone()
                .map(StepId::parse)
                .transpose()
                .map_err(parse("step"))?,
            in_state_before: older_than.map(|d| now - d),
            stuck: self.stuck == Some(true),
            limit,
        })
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Reason {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StepView {
    pub id: String,
    #[schema(example = "succeeded")]
    pub state: String,
    pub attempts: u32,
    pub compensation_attempts: u32,
}

/// A request as operations see it: its member key, but no phone, email or reason text.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Summary {
    pub request_id: uuid::Uuid,
    pub flow: String,
    pub definition_version: u32,
    pub channel: Option<String>,
    pub skyjoy_id: Option<String>,
    #[schema(value_type = String, example = "needs_operator")]
    pub state: WorkflowState,
    pub current_step: Option<String>,
    pub reason: Option<Reason>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub state_since: DateTime<Utc>,
    /// Seconds in the current state.
    pub age_in_state_secs: u64,
    pub next_run_at: Option<DateTime<Utc>>,
    /// When the stuck-workflow sweep flagged it as in its state for longer than that
    /// state's threshold; absent once it moves on.
    pub stuck_since: Option<DateTime<Utc>>,
}

impl Summary {
    fn new(record: &WorkflowRecord, now: DateTime<Utc>) -> Self {
        Self {
            request_id: record.id.as_uuid(),
            flow: record.definition.to_string(),
            definition_version: record.definition_version,
            channel: record.channel.as_ref().map(|c| c.to_string()),
            skyjoy_id: record.subject.as_ref().map(|s| s.as_str().to_owned()),
            state: record.progress.state,
            current_step: record.progress.current_step.as_ref().map(|s| s.to_string()),
            reason: record.progress.reason.as_ref().map(|r| Reason {
                code: r.code.clone(),
                message: r.message.clone(),
            }),
            created_at: record.created_at,
            updated_at: record.updated_at,
            state_since: record.progress.state_since,
            age_in_state_secs: crate::age(now, record.progress.state_since).as_secs(),
            next_run_at: record.progress.next_run_at,
            stuck_since: record.stuck_since,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct List {
    pub requests: Vec<Summary>,
}

/// One history entry.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventView {
    pub seq: i64,
    pub at: DateTime<Utc>,
    #[schema(example = "step_succeeded")]
    pub kind: String,
    pub step: Option<String>,
    pub attempt: Option<u32>,
    pub error_code: Option<String>,
    pub message: Option<String>,
    pub actor: Option<String>,
    pub reason: Option<String>,
    pub data: Option<Value>,
}

impl From<Event> for EventView {
    fn from(e: Event) -> Self {
        Self {
            seq: e.seq,
            at: e.at,
            kind: e.kind.to_string(),
            step: e.step.map(|s| s.to_string()),
            attempt: e.attempt,
            error_code: e.error_code,
            message: e.message,
            actor: e.actor,
            reason: e.reason,
            data: e.data,
        }
    }
}

/// One request in full. Of the member's personal data it shows only the masked phone,
/// so an operator can match a caller's number; never an email, name or document number.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Detail {
    #[serde(flatten)]
    pub summary: Summary,
    /// The phone from the request with every digit but the country code and the last
    /// three masked; null once the personal data is purged (or the input has none).
    #[schema(example = "+84*******678")]
    pub phone_masked: Option<String>,
    pub steps: Vec<StepView>,
    pub history: Vec<EventView>,
}

/// The workflow input's `phone` (see `closeout_flows::input::ClosureInput`), masked by
/// [`mask_phone`]; `None` when the input has none, e.g. `{"purged": true}`.
fn phone_masked(input: &Value) -> Option<String> {
    input.get("phone")?.as_str().and_then(mask_phone)
}

/// `+84912345678` → `+84*******678`: a leading `+` and the country calling code stay, as
/// do the last three digits; the digits between are replaced by a mask of fixed width,
/// so not even the number's length shows. A number without `+` keeps only its last
/// three digits. Anything that is not an optional `+` and 8 to 15 digits (the shape
/// channels may submit) gives `None` rather than a partly masked value.
fn mask_phone(phone: &str) -> Option<String> {
    const SHOWN: usize = 3;
    const MASK: &str = "*******";
    let (plus, digits) = match phone.strip_prefix('+') {
        Some(digits) => ("+", digits),
        None => ("", phone),
    };
    if !(8..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let country = if plus.is_empty() {
        0
    } else {
        country_code_len(digits.as_bytes())
    };
    Some(format!(
        "{plus}{}{MASK}{}",
        &digits[..country],
        &digits[digits.len() - SHOWN..]
    ))
}

/// How many leading digits of an international number are its country calling code, by
/// the ITU E.164 assignment: one digit for zones 1 and 7, two for the codes listed
/// below, three for every other code.
fn country_code_len(digits: &[u8]) -> usize {
    let two = |seconds: &[u8]| {
        if digits.get(1).is_some_and(|d| seconds.contains(d)) {
            2
        } else {
            3
        }
    };
    match digits.first() {
        Some(b'1' | b'7') => 1,
        Some(b'2') => two(b"07"),
        Some(b'3') => two(b"0123469"),
        Some(b'4') => two(b"013456789"),
        Some(b'5') => two(b"12345678"),
        Some(b'6') => two(b"0123456"),
        Some(b'8') => two(b"1246"),
        Some(b'9') => two(b"0123458"),
        _ => 0,
    }
}

/// Body of every single-request action.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    /// Why; recorded in the history with the actor.
    pub reason: String,
}

/// Body of `skip`: the reason and the output the skipped step would have produced.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SkipBody {
    pub reason: String,
    /// Recorded as the step's output; later steps may read it.
    pub output: Value,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkBody {
    /// At least one criterion is required.
    pub filter: ListQuery,
    pub reason: String,
    /// Count and list what would be acted on, and change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BulkFailure {
    pub request_id: uuid::Uuid,
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BulkResult {
    pub dry_run: bool,
    /// How many requests matched the filter.
    pub count: usize,
    /// The matched requests (dry run) or those the action succeeded on.
    pub request_ids: Vec<uuid::Uuid>,
    pub failed: Vec<BulkFailure>,
}

fn reason(text: &str) -> Result<&str> {
    let text = text.trim();
    if text.is_empty() {
        return Err(Error::field("a reason is required", "reason"));
    }
    if text.chars().count() > MAX_REASON {
        return Err(Error::field(
            format!("longer than {MAX_REASON} characters"),
            "reason",
        ));
    }
    Ok(text)
}

fn workflow_id(text: &str) -> Result<WorkflowId> {
    text.parse().map_err(|_| Error::NotFound)
}

/// List requests, oldest in their state first.
#[utoipa::path(
    get,
    path = "/v1/ops/requests",
    tag = "operations",
    params(ListQuery),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Matching requests", body = List),
        (status = 400, description = "INVALID_FIELD", body = ErrorBody),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 403, description = "FORBIDDEN: not an operations credential", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED", body = ErrorBody),
        (status = 500, description = "INTERNAL", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<AppState>,
    _reader: OpsReader,
    StrictQuery(query): StrictQuery<ListQuery>,
) -> Result<Json<List>> {
    let now = state.engine().now();
    let records = state.engine().list(&query.filter(now)?).await?;
    Ok(Json(List {
        requests: records.iter().map(|r| Summary::new(r, now)).collect(),
    }))
}

/// One request with its steps and full history.
#[utoipa::path(
    get,
    path = "/v1/ops/requests/{id}",
    tag = "operations",
    params(("id" = uuid::Uuid, Path)),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The request", body = Detail),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 403, description = "FORBIDDEN: not an operations credential", body = ErrorBody),
        (status = 404, description = "NOT_FOUND", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED", body = ErrorBody),
        (status = 500, description = "INTERNAL", body = ErrorBody),
    )
)]
pub async fn detail(
    State(state): State<AppState>,
    _reader: OpsReader,
    Path(id): Path<String>,
) -> Result<Json<Detail>> {
    let id = workflow_id(&id)?;
    Ok(Json(detail_of(&state, id).await?))
}

async fn detail_of(state: &AppState, id: WorkflowId) -> Result<Detail> {
    let engine = state.engine();
    let record = engine.get(id).await?;
    let definition = engine.pinned(&record.definition_hash).await?;
    let steps = definition
        .steps
        .iter()
        .zip(&record.progress.steps)
        .map(|(def, step)| StepView {
            id: def.id.to_string(),
            state: step.state.to_string(),
            attempts: step.attempts,
            compensation_attempts: step.compensation_attempts,
        })
        .collect();
    let history = engine
        .history(id)
        .await?
        .into_iter()
        .map(EventView::from)
        .collect();
    Ok(Detail {
        summary: Summary::new(&record, engine.now()),
        phone_masked: phone_masked(&record.input),
        steps,
        history,
    })
}

async fn act(
    state: &AppState,
    writer: &OpsWriter,
    id: &str,
    command: Command,
    why: &str,
) -> Result<Json<Detail>> {
    let id = workflow_id(id)?;
    let why = reason(why)?;
    let actor = writer.actor();
    state
        .engine()
        .command(id, command.clone(), &actor, why)
        .await?;
    tracing::info!(request = %id, command = command.name(), %actor, "operator command applied");
    Ok(Json(detail_of(state, id).await?))
}

fn signal(name: &str, reason: &str) -> Command {
    Command::Signal {
        name: name.to_owned(),
        payload: serde_json::json!({ "reason": reason }),
    }
}

/// Defines one single-request action handler with its OpenAPI entry; `$command` turns
/// the decoded body into the engine command.
macro_rules! action {
    ($(#[$doc:meta])* $name:ident, $path:literal, $body:ty, |$b:ident| $command:expr) => {
        $(#[$doc])*
        #[utoipa::path(
            post,
            path = $path,
            tag = "operations",
            params(("id" = uuid::Uuid, Path)),
            request_body = $body,
            security(("api_key" = [])),
            responses(
                (status = 200, description = "Applied; the request as it now is", body = Detail),
                (status = 400, description = "INVALID_FIELD (reason, output)", body = ErrorBody),
                (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
                (status = 403, description = "FORBIDDEN: needs an operations credential with the write role", body = ErrorBody),
                (status = 404, description = "NOT_FOUND", body = ErrorBody),
                (status = 409, description = "NOT_ALLOWED in the request's state (with a hint), or BUSY (retryable)", body = ErrorBody),
                (status = 413, description = "BODY_TOO_LARGE", body = ErrorBody),
                (status = 415, description = "UNSUPPORTED_MEDIA_TYPE", body = ErrorBody),
                (status = 429, description = "RATE_LIMITED", body = ErrorBody),
                (status = 500, description = "INTERNAL", body = ErrorBody),
            )
        )]
        pub async fn $name(
            State(state): State<AppState>,
            writer: OpsWriter,
            Path(id): Path<String>,
            StrictJson($b): StrictJson<$body>,
        ) -> Result<Json<Detail>> {
            let why = $b.reason.clone();
            let command: Result<Command> = $command;
            act(&state, &writer, &id, command?, &why).await
        }
    };
}

action!(
    /// Approve a request waiting for the operations decision.
    approve, "/v1/ops/requests/{id}/approve", ActionBody,
    |body| Ok(signal("approve", &body.reason))
);
action!(
    /// Reject a request waiting for the operations decision; it ends `rejected`.
    reject, "/v1/ops/requests/{id}/reject", ActionBody,
    |body| Ok(signal("reject", &body.reason))
);
action!(
    /// Run the current step's next attempt now.
    retry, "/v1/ops/requests/{id}/retry", ActionBody,
    |_body| Ok(Command::RetryNow)
);
action!(
    /// Resume a request that needs an operator.
    resume, "/v1/ops/requests/{id}/resume", ActionBody,
    |_body| Ok(Command::Resume)
);
action!(
    /// Skip the current step, recording `output` as what it would have produced.
    skip, "/v1/ops/requests/{id}/skip", SkipBody,
    |body| if body.output.is_null() {
        Err(Error::field(
            "the output the skipped step would have produced is required",
            "output",
        ))
    } else {
        Ok(Command::Skip { output: body.output })
    }
);
action!(
    /// Cancel a request; completed compensatable steps are undone.
    cancel, "/v1/ops/requests/{id}/cancel", ActionBody,
    |_body| Ok(Command::Cancel)
);

/// Retry, resume or cancel every request matching a filter.
#[utoipa::path(
    post,
    path = "/v1/ops/bulk/{action}",
    tag = "operations",
    params(("action" = String, Path, description = "`retry`, `resume` or `cancel`")),
    request_body = BulkBody,
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Dry run: what would be acted on; otherwise what was", body = BulkResult),
        (status = 400, description = "INVALID_FIELD (an empty filter, a bad criterion, no reason)", body = ErrorBody),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 403, description = "FORBIDDEN: needs the write role", body = ErrorBody),
        (status = 404, description = "ROUTE_NOT_FOUND: unknown action", body = ErrorBody),
        (status = 413, description = "BODY_TOO_LARGE", body = ErrorBody),
        (status = 415, description = "UNSUPPORTED_MEDIA_TYPE", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED", body = ErrorBody),
        (status = 500, description = "INTERNAL", body = ErrorBody),
    )
)]
pub async fn bulk(
    State(state): State<AppState>,
    writer: OpsWriter,
    Path(action): Path<String>,
    StrictJson(body): StrictJson<BulkBody>,
) -> Result<Json<BulkResult>> {
    let command = match action.as_str() {
        "retry" => Command::RetryNow,
        "resume" => Command::Resume,
        "cancel" => Command::Cancel,
        _ => return Err(Error::RouteNotFound),
    };
    let why = reason(&body.reason)?;
    if body.filter.is_empty() {
        return Err(Error::field(
            "give at least one criterion (state, flow, channel, step, skyjoy_id, older_than, stuck=true); a bulk action never applies to everything",
            "filter",
        ));
    }
    let engine = state.engine();
    let records = engine.list(&body.filter.filter(engine.now())?).await?;
    let ids: Vec<WorkflowId> = records.iter().map(|r| r.id).collect();
    if body.dry_run {
        return Ok(Json(BulkResult {
            dry_run: true,
            count: ids.len(),
            request_ids: ids.iter().map(WorkflowId::as_uuid).collect(),
            failed: Vec::new(),
        }));
    }
    let actor = writer.actor();
    let mut done = Vec::new();
    let mut failed = Vec::new();
    // One at a time: each command is its own guarded commit, and a failure on one
    // request (it moved on since the list) must not stop the others.
    for id in &ids {
        match engine.command(*id, command.clone(), &actor, why).await {
            Ok(_) => done.push(id.as_uuid()),
            Err(e) => {
                let error = Error::from(e);
                failed.push(BulkFailure {
                    request_id: id.as_uuid(),
                    code: error.code().to_owned(),
                    message: error.message(),
                });
            }
        }
    }
    tracing::info!(command = command.name(), %actor, matched = ids.len(), succeeded = done.len(), "bulk operator command applied");
    Ok(Json(BulkResult {
        dry_run: false,
        count: ids.len(),
        request_ids: done,
        failed,
    }))
}

/// Exposed for the metrics: how long the oldest request has needed an operator.
pub async fn oldest_needing_operator(state: &AppState) -> Result<Option<Duration>> {
    let engine = state.engine();
    let records = engine
        .list(&Filter {
            states: vec![WorkflowState::NeedsOperator],
            limit: 1,
            ..Filter::default()
        })
        .await?;
    Ok(records
        .first()
        .map(|r| crate::age(engine.now(), r.progress.state_since)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_phone_shows_its_country_code_and_last_three_digits_only() {
        assert_eq!(mask_phone("+84912345678").as_deref(), Some("+84*******678"));
        assert_eq!(mask_phone("+14155550123").as_deref(), Some("+1*******123"));
        assert_eq!(
            mask_phone("+420601234567").as_deref(),
            Some("+420*******567")
        );
        assert_eq!(mask_phone("0912345678").as_deref(), Some("*******678"));
        assert_eq!(
            mask_phone("+8491234567").as_deref(),
            Some("+84*******567"),
            "the mask does not tell the length"
        );
        for phone in [
            "+84912345678",
            "0912345678",
            "+420601234567",
            "+14155550123",
        ] {
            let masked = mask_phone(phone).unwrap();
            let digits: String = masked.chars().filter(char::is_ascii_digit).collect();
            assert!(
                digits.len() <= 6,
                "at most the country code and 3 digits: {masked}"
            );
            assert!(phone.ends_with(&digits[digits.len() - 3..]));
        }
    }

    #[test]
    fn anything_but_a_phone_is_not_shown_at_all() {
        for phone in [
            "",
            "+",
            "+84 912 345 678",
            "12345",
            "+8491234567890123",
            "abcdefghij",
        ] {
            assert_eq!(mask_phone(phone), None, "{phone:?}");
        }
    }

    #[test]
    fn the_mask_comes_from_the_input_and_is_gone_after_the_purge() {
        let input = json!({"skyjoy_id": "SJ1000000001", "phone": "+84900000001"});
        assert_eq!(phone_masked(&input).as_deref(), Some("+84*******001"));
        assert_eq!(phone_masked(&json!({"purged": true})), None);
        assert_eq!(phone_masked(&json!({"phone": 84900000001_u64})), None);
        assert_eq!(phone_masked(&Value::Null), None);
    }
}
