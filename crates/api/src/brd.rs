//! The BRD-compatible endpoint, seed 002 section 3.3:
//! `POST /api-user/partner/v1/user/deletion-request` with exactly the seed's body
//! (`skyjoyId, phone, comment, requestAt, requestPlatform`), HTTP 200 and SkyJoy's
//! success envelope on success, and SkyJoy's error envelope on every failure.
//!
//! The seed's callers expect eligibility to be answered synchronously, so it is checked
//! here with the SkyJoy connector before the `vietjet` workflow starts (the workflow's
//! first step checks again: the member may change between the two).
//!
//! Every failure, authentication included, is rendered as the envelope, which is why
//! this handler reads the credential and the body itself instead of using the
//! extractors the other routes use.

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, SecondsFormat, Utc};
use closeout_connectors::skyjoy::RequestPlatform;
use closeout_connectors::{ErrorCode, Personal, Phone, SkyjoyId};
use closeout_engine::id::StartKey;
use closeout_flows::ClosureInput;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::{Auth, ChannelCaller};
use crate::body::{read_body, require_json, StrictJson};
use crate::channel::{self, Flow, Submitted};
use crate::error::{Brd, BrdErrorBody, Error, Result};
use crate::AppState;

pub const PATH: &str = "/api-user/partner/v1/user/deletion-request";

pub fn is_brd_path(path: &str) -> bool {
    path == PATH
}

/// The seed's request body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeletionRequest {
    #[schema(example = "SJ0123456789")]
    pub skyjoy_id: String,
    #[schema(example = "+841234567890")]
    pub phone: String,
    #[schema(example = "user request close")]
    pub comment: String,
    #[schema(example = "2024-03-15T04:07:32.347Z")]
    pub request_at: DateTime<Utc>,
    #[schema(example = "Vietjet web")]
    pub request_platform: String,
}

/// SkyJoy's success envelope.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Success {
    #[schema(example = 200)]
    pub status_code: u16,
    #[schema(example = "Success")]
    pub message: &'static str,
    pub data: SuccessData,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SuccessData {
    /// The closure request, also visible at `GET /v1/requests/{id}`.
    pub request_id: uuid::Uuid,
}

/// Send a deletion request (BRD 3.3).
#[utoipa::path(
    post,
    path = "/api-user/partner/v1/user/deletion-request",
    tag = "brd",
    request_body = DeletionRequest,
    security(("api_key" = [])),
    responses(
        (status = 200, description = "Received; the closure runs on", body = Success),
        (status = 400, description = "EMAIL_NOT_VERIFIED, CLOSE_ACCOUNT_FAILED (status may not close), INVALID_FIELD, MALFORMED_BODY", body = BrdErrorBody),
        (status = 401, description = "UNAUTHENTICATED", body = BrdErrorBody),
        (status = 403, description = "FORBIDDEN: not the BRD channel's key", body = BrdErrorBody),
        (status = 404, description = "USER_NOT_FOUND", body = BrdErrorBody),
        (status = 409, description = "DUPLICATE_REQUEST: an open request exists", body = BrdErrorBody),
        (status = 413, description = "BODY_TOO_LARGE", body = BrdErrorBody),
        (status = 415, description = "UNSUPPORTED_MEDIA_TYPE", body = BrdErrorBody),
        (status = 429, description = "RATE_LIMITED", body = BrdErrorBody),
        (status = 500, description = "CLOSE_ACCOUNT_FAILED (SkyJoy or internal failure)", body = BrdErrorBody),
    )
)]
pub async fn deletion_request(State(state): State<AppState>, request: Request) -> Response {
    match handle(&state, request).await {
        Ok(success) => Json(success).into_response(),
        Err(error) => Brd(error).into_response(),
    }
}

async fn handle(state: &AppState, request: Request) -> Result<Success> {
    let auth = request
        .extensions()
        .get::<Auth>()
        .cloned()
        .unwrap_or(Auth::NoneConfigured);
    let ChannelCaller(channel) = ChannelCaller::from_auth(&auth)?;
    if channel != state.inner.brd_channel {
        return Err(Error::Forbidden(
            "only the BRD channel's keys (api.brd_channel) may send deletion requests here",
        ));
    }
    require_json(&request)?;
    let bytes = read_body(request, state).await?;
    let body: DeletionRequest = StrictJson::decode(&bytes)?;
    let skyjoy_id = SkyjoyId::parse(body.skyjoy_id.clone())
        .map_err(|e| Error::field(e.to_string(), "skyjoyId"))?;
    let phone = Phone::parse(body.phone).map_err(|e| Error::field(e.to_string(), "phone"))?;
    let platform: RequestPlatform = body.request_platform.parse().map_err(|_| {
        Error::field(
            "must be one of `Vietjet web`, `Vietjet app`, `SkyJoy app`, `Galaxy Pay app`, `Customer care`",
            "requestPlatform",
        )
    })?;
    let comment = body.comment.trim().to_owned();
    if comment.chars().count() > 1000 {
        return Err(Error::field("longer than 1000 characters", "comment"));
    }
    if comment.is_empty() {
        return Err(Error::field("must not be blank", "comment"));
    }
    // Millisecond precision, as the seed writes it: the start key below must be the
    // same for the same request however its caller formats the instant.
    let request_at = body.request_at;
    let at = request_at.to_rfc3339_opts(SecondsFormat::Millis, true);
    check_eligibility(state, &skyjoy_id, &at).await?;
    let input = ClosureInput {
        skyjoy_id: skyjoy_id.clone(),
        phone,
        reason: Personal::new(comment),
        requested_at: request_at,
        platform,
        partner_member_ids: Vec::new(),
        kybio_member: None,
        crmx_pos_id: None,
    };
    // The seed has no idempotency key; a retried request is the same member and instant.
    let key =
        StartKey::parse(format!("{channel}:brd:{}:{at}", skyjoy_id.as_str())).map_err(|e| {
            tracing::error!(error = %e, "BRD start key does not validate");
            Error::Internal
        })?;
    let record = match channel::start(
        state,
        &channel,
        key,
        Flow::Vietjet,
        &input,
        Error::DuplicateRequest { existing: None },
    )
    .await
    {
        Ok(Submitted::Created(record) | Submitted::Replayed(record)) => record,
        Err(Error::Internal | Error::Unavailable) => {
            return Err(Error::CloseAccountFailed { internal: true })
        }
        Err(other) => return Err(other),
    };
    Ok(Success {
        status_code: 200,
        message: "Success",
        data: SuccessData {
            request_id: record.id.as_uuid(),
        },
    })
}

/// BRD 2.1.3 and 2.2.4: a SkyJoy member in a status that may ask, with a verified email.
async fn check_eligibility(state: &AppState, skyjoy_id: &SkyjoyId, at: &str) -> Result<()> {
    // A read; the key only lets SkyJoy tie retries of one check together.
    let key = format!("eligibility:{}:{at}", skyjoy_id.as_str());
    let profile = match state.inner.skyjoy.user_profile(skyjoy_id, &key).await {
        Ok(reply) => reply.into_data(),
        Err(e) if e.code() == ErrorCode::SkyjoyUserNotFound => return Err(Error::UserNotFound),
        Err(e) => {
            tracing::warn!(code = %e.code(), "SkyJoy eligibility check failed");
            return Err(Error::CloseAccountFailed { internal: true });
        }
    };
    let Some(profile) = profile else {
        tracing::warn!("SkyJoy answered the profile without data");
        return Err(Error::CloseAccountFailed { internal: true });
    };
    if !profile.status.may_request_closure() {
        return Err(Error::CloseAccountFailed { internal: false });
    }
    if profile.email_verified != Some(true) {
        return Err(Error::EmailNotVerified);
    }
    Ok(())
}
