//! The channel API: `POST /v1/requests` submits a closure request, idempotently by the
//! `Idempotency-Key` header; `GET /v1/requests/{id}` reports where it is. A channel sees
//! only its own requests, and never personal data in an answer.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use closeout_connectors::kybio::MemberNumber;
use closeout_connectors::skyjoy::RequestPlatform;
use closeout_connectors::{PartnerMemberId, Personal, Phone, PosId, SkyjoyId};
use closeout_engine::id::{Channel, DefinitionName, StartKey, Subject, WorkflowId};
use closeout_engine::state::WorkflowState;
use closeout_engine::store::{Started, WorkflowRecord};
use closeout_engine::{saga, StartRequest};
use closeout_flows::ClosureInput;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::ChannelCaller;
use crate::body::StrictJson;
use crate::error::{Error, ErrorBody, Result};
use crate::AppState;

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Set on an answer replayed for a repeated idempotency key.
pub const REPLAYED: &str = "idempotent-replayed";

const MAX_REASON: usize = 1000;
const MAX_PARTNER_IDS: usize = 20;
const MAX_KEY: usize = 128;

/// The three BRD flows a channel can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema, strum::Display)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum Flow {
    Vietjet,
    Skyjoy,
    Galaxypay,
}

/// A closure request. Unknown fields are refused.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    pub flow: Flow,
    /// `SJ` followed by digits.
    #[schema(example = "SJ1000000001")]
    pub skyjoy_id: String,
    /// 8 to 15 digits, optionally with a leading `+`.
    #[schema(example = "+84900000001")]
    pub phone: String,
    /// The member's reason, in their words (at most 1000 characters).
    pub reason: String,
    pub requested_at: DateTime<Utc>,
    /// `Vietjet web`, `Vietjet app`, `SkyJoy app`, `Galaxy Pay app` or `Customer care`.
    #[schema(example = "Vietjet web")]
    pub platform: String,
    /// Partner memberships to unlink at SkyJoy (at most 20).
    #[serde(default)]
    pub partner_member_ids: Vec<String>,
    #[serde(default)]
    pub kybio_member: Option<String>,
    #[serde(default)]
    pub crmx_pos_id: Option<String>,
}

impl SubmitRequest {
    /// Validates every field into the workflow input, naming the first bad field.
    pub fn into_input(self) -> Result<(Flow, ClosureInput)> {
        let skyjoy_id = SkyjoyId::parse(self.skyjoy_id)
            .map_err(|e| Error::field(e.to_string(), "skyjoy_id"))?;
        let phone = Phone::parse(self.phone).map_err(|e| Error::field(e.to_string(), "phone"))?;
        let reason = self.reason.trim().to_owned();
        if reason.is_empty() {
            return Err(Error::field("must not be blank", "reason"));
        }
        if reason.chars().count() > MAX_REASON {
            return Err(Error::field(
                format!("longer than {MAX_REASON} characters"),
                "reason",
            ));
        }
        let platform: RequestPlatform = self.platform.parse().map_err(|_| {
            Error::field(
                "must be one of `Vietjet web`, `Vietjet app`, `SkyJoy app`, `Galaxy Pay app`, `Customer care`",
                "platform",
            )
        })?;
        if self.partner_member_ids.len() > MAX_PARTNER_IDS {
            return Err(Error::field(
                format!("more than {MAX_PARTNER_IDS} entries"),
                "partner_member_ids",
            ));
        }
        let partner_member_ids = self
            .partner_member_ids
            .into_iter()
            .enumerate()
            .map(|(i, id)| {
                PartnerMemberId::parse(id)
                    .map_err(|e| Error::field(e.to_string(), format!("partner_member_ids[{i}]")))
            })
            .collect::<Result<Vec<_>>>()?;
        let kybio_member = match self.kybio_member {
            Some(number)
                if number.is_empty()
                    || number.len() > 32
                    || !number.bytes().all(|b| b.is_ascii_digit()) =>
            {
                return Err(Error::field("must be 1 to 32 digits", "kybio_member"))
            }
            other => other.map(MemberNumber),
        };
        let crmx_pos_id = self
            .crmx_pos_id
            .map(|id| PosId::parse(id).map_err(|e| Error::field(e.to_string(), "crmx_pos_id")))
            .transpose()?;
        Ok((
            self.flow,
            ClosureInput {
                skyjoy_id,
                phone,
                reason: Personal::new(reason),
                requested_at: self.requested_at,
                platform,
                partner_member_ids,
                kybio_member,
                crmx_pos_id,
            },
        ))
    }
}

/// The answer to an accepted submission.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Accepted {
    pub request_id: uuid::Uuid,
    /// The request's state when it was accepted (`running`).
    #[schema(value_type = String, example = "running")]
    pub status: WorkflowState,
}

/// Where a request is. Never personal data.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RequestStatus {
    pub request_id: uuid::Uuid,
    #[schema(example = "vietjet")]
    pub flow: String,
    /// `running`, `waiting`, `compensating`, `completed`, `compensated`, `rejected`,
    /// `cancelled` or `needs_operator`.
    #[schema(value_type = String, example = "waiting")]
    pub state: WorkflowState,
    #[schema(example = "ops_decision")]
    pub current_step: Option<String>,
    /// `pending` until the request ends, then `closed`, `failed`, `rejected` or `cancelled`.
    #[schema(example = "pending")]
    pub outcome: &'static str,
    /// Why it failed, was rejected or is stuck (`USER_NOT_FOUND`, `EMAIL_NOT_VERIFIED`…).
    pub reason_code: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub state_since: DateTime<Utc>,
}

pub fn outcome(state: WorkflowState) -> &'static str {
    match state {
        WorkflowState::Completed => "closed",
        WorkflowState::Compensated => "failed",
        WorkflowState::Rejected => "rejected",
        WorkflowState::Cancelled => "cancelled",
        WorkflowState::Running
        | WorkflowState::Waiting
        | WorkflowState::Compensating
        | WorkflowState::NeedsOperator => "pending",
    }
}

impl From<&WorkflowRecord> for RequestStatus {
    fn from(record: &WorkflowRecord) -> Self {
        Self {
            request_id: record.id.as_uuid(),
            flow: record.definition.to_string(),
            state: record.progress.state,
            current_step: record.progress.current_step.as_ref().map(|s| s.to_string()),
            outcome: outcome(record.progress.state),
            reason_code: record.progress.reason.as_ref().map(|r| r.code.clone()),
            created_at: record.created_at,
            updated_at: record.updated_at,
            state_since: record.progress.state_since,
        }
    }
}

/// The start key of a channel's submission: `{channel}:{idempotency key}`, so two
/// channels using the same key never meet.
pub fn start_key(channel: &Channel, key: &str) -> Result<StartKey> {
    let problem = |p: &str| Error::InvalidHeader {
        header: "Idempotency-Key",
        problem: p.to_owned(),
    };
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(problem("must be 1 to 128 characters"));
    }
    if !key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(problem(
            "may contain only ASCII letters, digits, '-', '_' and '.' (a UUID works)",
        ));
    }
    StartKey::parse(format!("{channel}:{key}")).map_err(|e| problem(e.problem))
}

/// What starting a workflow for a channel came to.
#[derive(Debug)]
pub enum Submitted {
    Created(WorkflowRecord),
    /// The key was used before with the same flow and input.
    Replayed(WorkflowRecord),
}

/// Starts `flow` for `channel` with `input`; the shared core of both submission routes.
/// A repeated key with a different flow or input is [`Error::IdempotencyKeyReused`]
/// (`on_mismatch` lets the BRD route answer its own way).
pub async fn start(
    state: &AppState,
    channel: &Channel,
    key: StartKey,
    flow: Flow,
    input: &ClosureInput,
    on_mismatch: Error,
) -> Result<Submitted> {
    let engine = state.engine();
    let definition = DefinitionName::parse(flow.to_string()).map_err(|_| Error::Internal)?;
    if engine.definition(&definition).is_none() {
        return Err(Error::field(
            "this flow is not loaded on this server",
            "flow",
        ));
    }
    let input_json = serde_json::to_value(input).map_err(|e| {
        tracing::error!(error = %e, "closure input does not serialise");
        Error::Internal
    })?;
    let subject = Subject::parse(input.skyjoy_id.as_str())
        .map_err(|e| Error::field(e.problem, "skyjoy_id"))?;
    let started = engine
        .start(StartRequest {
            definition: definition.clone(),
            key,
            subject: Some(subject),
            channel: Some(channel.clone()),
            input: input_json.clone(),
        })
        .await;
    match started {
        Ok(Started::Created(record)) => {
            tracing::info!(request = %record.id, flow = %flow, "closure request accepted");
            Ok(Submitted::Created(record))
        }
        Ok(Started::Existing(record)) => {
            if record.definition == definition && record.input == input_json {
                Ok(Submitted::Replayed(record))
            } else {
                Err(on_mismatch)
            }
        }
        Err(closeout_engine::Error::Store(closeout_engine::store::Error::SubjectBusy {
            existing,
        })) => Err(Error::DuplicateRequest {
            existing: visible_to(state, existing, channel).await,
        }),
        Err(other) => Err(other.into()),
    }
}

/// `existing` if it belongs to `channel`; another channel's request is not named.
async fn visible_to(
    state: &AppState,
    existing: WorkflowId,
    channel: &Channel,
) -> Option<WorkflowId> {
    match state.engine().get(existing).await {
        Ok(record) if record.channel.as_ref() == Some(channel) => Some(existing),
        _ => None,
    }
}

/// The state a workflow of this definition starts in (the original answer's `status`).
async fn initial_state(state: &AppState, record: &WorkflowRecord) -> Result<WorkflowState> {
    let definition = state.engine().pinned(&record.definition_hash).await?;
    Ok(saga::initial(&definition, record.created_at).0.state)
}

/// Submit a closure request.
#[utoipa::path(
    post,
    path = "/v1/requests",
    tag = "channel",
    request_body = SubmitRequest,
    params(("Idempotency-Key" = String, Header, description = "1 to 128 of [A-Za-z0-9-_.]; the same key and body replay the original answer")),
    security(("api_key" = [])),
    responses(
        (status = 202, description = "Accepted and committed", body = Accepted),
        (status = 400, description = "INVALID_FIELD, INVALID_HEADER or MALFORMED_BODY", body = ErrorBody),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 403, description = "FORBIDDEN: not a channel key", body = ErrorBody),
        (status = 409, description = "DUPLICATE_REQUEST: the member has an open request", body = ErrorBody),
        (status = 413, description = "BODY_TOO_LARGE", body = ErrorBody),
        (status = 415, description = "UNSUPPORTED_MEDIA_TYPE", body = ErrorBody),
        (status = 422, description = "IDEMPOTENCY_KEY_REUSED with a different body", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED", body = ErrorBody),
        (status = 500, description = "INTERNAL", body = ErrorBody),
        (status = 503, description = "UNAVAILABLE", body = ErrorBody),
    )
)]
pub async fn submit(
    State(state): State<AppState>,
    ChannelCaller(channel): ChannelCaller,
    headers: HeaderMap,
    StrictJson(body): StrictJson<SubmitRequest>,
) -> Result<Response> {
    let key = headers
        .get(IDEMPOTENCY_KEY)
        .ok_or(Error::InvalidHeader {
            header: "Idempotency-Key",
            problem: "required: a unique key per request, reused only to retry it".into(),
        })?
        .to_str()
        .map_err(|_| Error::InvalidHeader {
            header: "Idempotency-Key",
            problem: "must be ASCII".into(),
        })?;
    let key = start_key(&channel, key)?;
    let (flow, input) = body.into_input()?;
    let (record, replayed) = match start(
        &state,
        &channel,
        key,
        flow,
        &input,
        Error::IdempotencyKeyReused,
    )
    .await?
    {
        Submitted::Created(record) => (record, false),
        Submitted::Replayed(record) => (record, true),
    };
    let status = if replayed {
        initial_state(&state, &record).await?
    } else {
        record.progress.state
    };
    let mut response = (
        StatusCode::ACCEPTED,
        Json(Accepted {
            request_id: record.id.as_uuid(),
            status,
        }),
    )
        .into_response();
    if replayed {
        response
            .headers_mut()
            .insert(REPLAYED, HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// Where a request is.
#[utoipa::path(
    get,
    path = "/v1/requests/{id}",
    tag = "channel",
    params(("id" = uuid::Uuid, Path, description = "The request_id from the submission")),
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The request", body = RequestStatus),
        (status = 401, description = "UNAUTHENTICATED", body = ErrorBody),
        (status = 403, description = "FORBIDDEN: not a channel key", body = ErrorBody),
        (status = 404, description = "NOT_FOUND: unknown, or another channel's", body = ErrorBody),
        (status = 429, description = "RATE_LIMITED", body = ErrorBody),
        (status = 500, description = "INTERNAL", body = ErrorBody),
    )
)]
pub async fn status(
    State(state): State<AppState>,
    ChannelCaller(channel): ChannelCaller,
    Path(id): Path<String>,
) -> Result<Json<RequestStatus>> {
    let id: WorkflowId = id.parse().map_err(|_| Error::NotFound)?;
    let record = state.engine().get(id).await?;
    if record.channel.as_ref() != Some(&channel) {
        return Err(Error::NotFound);
    }
    Ok(Json(RequestStatus::from(&record)))
}
