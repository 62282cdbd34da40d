//! Simulated SkyJoy: the Member API paths of seed 000, the deletion request of seed 002 and
//! our close call, with Bearer auth and SkyJoy's error envelope.
//!
//! Eligibility as the BRD states it: an unknown or closed member is `USER_NOT_FOUND` (404);
//! an unverified email is `EMAIL_NOT_VERIFIED` (400); a Merged, Blocked or Suspected Fraud
//! member is `CLOSE_ACCOUNT_FAILED` (400, the seed has no closer code); a second request
//! while one is unprocessed is `DUPLICATE_REQUEST` (409). Closing forfeits tier and points,
//! unlinks partner memberships (so they can be re-linked at once) and clears the pending
//! request.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::Utc;
use closeout_connectors::skyjoy::{
    Balance, CloseRequest, ClosedAccount, DeletionRequest, Envelope, ErrorKey, LookedUpUser,
    UnlinkMember, UserProfile, UserProfileExt,
};
use closeout_connectors::{DocumentId, Endpoint, Personal, SkyjoyId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::auth::bearer_is;
use crate::model::Member;
use crate::world::{exchange, Answer, Call, State as AppState};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api-user/partner/v1/user/deletion-request",
            post(deletion_request),
        )
        .route("/api-user/partner/v1/user-profile/{id}", get(profile))
        .route(
            "/api-user/partner/v1/user-profile-ext/{id}",
            get(profile_ext),
        )
        .route("/api-user/partner/v2/user/lookup", get(lookup))
        .route("/api-point/partner/v1/user-balance/{id}", get(balance))
        .route(
            "/api-user/partner/v1/user/unlink-member",
            post(unlink_member),
        )
        .route("/api-user/partner/v1/user/close", post(close))
}

fn error(key: ErrorKey) -> Answer {
    let status = match key {
        ErrorKey::UserNotFound => 404,
        ErrorKey::CloseAccountFailed | ErrorKey::EmailNotVerified => 400,
        ErrorKey::DuplicateRequest
        | ErrorKey::AccountAlreadyClosed
        | ErrorKey::AccountNotClosable
        | ErrorKey::MemberNotLinked => 409,
        ErrorKey::Unauthorized => 401,
    };
    Answer::new(status, key.envelope(status))
}

fn ok(data: impl Serialize) -> Answer {
    Answer::ok(Envelope {
        status_code: 200,
        message: "SUCCESS".to_owned(),
        data,
    })
}

fn bad_request() -> Answer {
    Answer::new(
        400,
        json!({
            "errors": {"name": "BadRequest", "message": "Invalid request", "code": "BAD_REQUEST"},
            "message": "Invalid request", "statusCode": 400
        }),
    )
}

fn authorised(state: &AppState, headers: &HeaderMap) -> Result<(), Answer> {
    if bearer_is(headers, &state.credentials.skyjoy_token) {
        Ok(())
    } else {
        Err(error(ErrorKey::Unauthorized))
    }
}

/// The preamble of the POST calls about one member: auth, the JSON body, and the call for
/// the exchange, about the member `member_of` names.
fn accept<T: DeserializeOwned>(
    state: &AppState,
    headers: &HeaderMap,
    body: &Bytes,
    endpoint: Endpoint,
    member_of: fn(&T) -> &SkyjoyId,
) -> Result<(T, Call), Answer> {
    authorised(state, headers)?;
    let request: T = serde_json::from_slice(body).map_err(|_| bad_request())?;
    let call = Call::new(endpoint, headers, Some(member_of(&request).clone()));
    Ok((request, call))
}

fn profile_of(member: &Member) -> UserProfile {
    let (first, last) = member
        .full_name
        .rsplit_once(' ')
        .unwrap_or((member.full_name.as_str(), ""));
    UserProfile {
        skyjoy_id: member.skyjoy_id.clone(),
        status: member.status,
        phone: Some(member.phone.clone()),
        email: Some(member.email.clone()),
        email_verified: Some(member.email_verified),
        first_name: Some(Personal::new(first.to_owned())),
        last_name: Some(Personal::new(last.to_owned())),
        full_name: Some(Personal::new(member.full_name.clone())),
        date_of_birth: Some(Personal::new("01-01-1990".to_owned())),
        date_of_join: Some("17-01-2023".to_owned()),
        ekyc_status: Some("COMPLETE".to_owned()),
    }
}

async fn deletion_request(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (request, call) = match accept::<DeletionRequest>(
        &state,
        &headers,
        &body,
        Endpoint::SkyjoyDeletionRequest,
        |request| &request.skyjoy_id,
    ) {
        Ok(accepted) => accepted,
        Err(refused) => return refused.into_response(),
    };
    exchange(&state, call, |world, call| {
        let Some(member) = world.open_member(&request.skyjoy_id) else {
            return error(ErrorKey::UserNotFound);
        };
        if member.phone != request.phone {
            return error(ErrorKey::UserNotFound);
        }
        if !member.email_verified {
            return error(ErrorKey::EmailNotVerified);
        }
        if !member.status.may_request_closure() {
            return error(ErrorKey::CloseAccountFailed);
        }
        if member.deletion_requested {
            return error(ErrorKey::DuplicateRequest);
        }
        member.deletion_requested = true;
        world.record(
            call,
            Some(&request.skyjoy_id),
            format!(
                "recorded a deletion request from {}",
                request.request_platform
            ),
        );
        ok(json!(null))
    })
    .await
}

/// Runs a read about one open member.
async fn read(
    state: AppState,
    headers: HeaderMap,
    endpoint: Endpoint,
    id: String,
    view: impl FnOnce(&Member) -> Answer,
) -> Response {
    if let Err(denied) = authorised(&state, &headers) {
        return denied.into_response();
    }
    let Ok(id) = SkyjoyId::parse(id) else {
        return error(ErrorKey::UserNotFound).into_response();
    };
    let call = Call::new(endpoint, &headers, Some(id.clone()));
    exchange(&state, call, |world, _| match world.open_member(&id) {
        Some(member) => view(member),
        None => error(ErrorKey::UserNotFound),
    })
    .await
}

async fn profile(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    read(state, headers, Endpoint::SkyjoyUserProfile, id, |member| {
        ok(profile_of(member))
    })
    .await
}

async fn profile_ext(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    read(
        state,
        headers,
        Endpoint::SkyjoyUserProfileExt,
        id,
        |member| {
            ok(UserProfileExt {
                skyjoy_id: member.skyjoy_id.clone(),
                enrolling_sponsor: Some("SkyJoy".to_owned()),
                passport_number: None,
                national_id: member
                    .document_id
                    .as_ref()
                    .map(|d| Personal::new(d.as_str().to_owned())),
                tier_class: member.tier.clone(),
            })
        },
    )
    .await
}

async fn balance(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    read(state, headers, Endpoint::SkyjoyBalance, id, |member| {
        ok(Balance {
            skyjoy_id: member.skyjoy_id.clone(),
            total_point: member.points,
        })
    })
    .await
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LookupQuery {
    skyjoy_id: Option<String>,
    document_id: Option<String>,
}

async fn lookup(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<LookupQuery>,
) -> Response {
    if let Err(denied) = authorised(&state, &headers) {
        return denied.into_response();
    }
    enum By {
        Id(SkyjoyId),
        Document(DocumentId),
    }
    let by = match (query.skyjoy_id, query.document_id) {
        (Some(id), _) => SkyjoyId::parse(id).map(By::Id).ok(),
        (None, Some(doc)) => DocumentId::parse(doc).map(By::Document).ok(),
        (None, None) => return bad_request().into_response(),
    };
    let member_id = match &by {
        Some(By::Id(id)) => Some(id.clone()),
        _ => None,
    };
    let call = Call::new(Endpoint::SkyjoyLookup, &headers, member_id);
    exchange(&state, call, |world, _| {
        let found = by.and_then(|by| {
            world.find(|m| {
                m.closed_at.is_none()
                    && match &by {
                        By::Id(id) => &m.skyjoy_id == id,
                        By::Document(doc) => m.document_id.as_ref() == Some(doc),
                    }
            })
        });
        match found {
            Some(member) => {
                let profile = profile_of(member);
                ok(LookedUpUser {
                    skyjoy_id: profile.skyjoy_id,
                    phone: profile.phone,
                    email: profile.email,
                    full_name: profile.full_name,
                    date_of_birth: profile.date_of_birth,
                    date_of_join: profile.date_of_join,
                    ekyc_status: profile.ekyc_status,
                })
            }
            None => error(ErrorKey::UserNotFound),
        }
    })
    .await
}

async fn unlink_member(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (request, call) = match accept::<UnlinkMember>(
        &state,
        &headers,
        &body,
        Endpoint::SkyjoyUnlinkMember,
        |request| &request.skyjoy_id,
    ) {
        Ok(accepted) => accepted,
        Err(refused) => return refused.into_response(),
    };
    exchange(&state, call, |world, call| {
        let Some(member) = world.open_member(&request.skyjoy_id) else {
            return error(ErrorKey::UserNotFound);
        };
        let before = member.partner_member_ids.len();
        member
            .partner_member_ids
            .retain(|id| id != &request.partner_member_id);
        if member.partner_member_ids.len() == before {
            return error(ErrorKey::MemberNotLinked);
        }
        world.record(
            call,
            Some(&request.skyjoy_id),
            format!(
                "unlinked partner member {}",
                request.partner_member_id.as_str()
            ),
        );
        ok(true)
    })
    .await
}

async fn close(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (request, call) =
        match accept::<CloseRequest>(&state, &headers, &body, Endpoint::SkyjoyClose, |request| {
            &request.skyjoy_id
        }) {
            Ok(accepted) => accepted,
            Err(refused) => return refused.into_response(),
        };
    exchange(&state, call, |world, call| {
        let Some(member) = world.member(&request.skyjoy_id) else {
            return error(ErrorKey::UserNotFound);
        };
        if member.closed_at.is_some() {
            return error(ErrorKey::AccountAlreadyClosed);
        }
        if !member.status.may_request_closure() {
            return error(ErrorKey::AccountNotClosable);
        }
        let closed = ClosedAccount {
            skyjoy_id: member.skyjoy_id.clone(),
            closed_at: Utc::now(),
            forfeited_tier: member.tier.take(),
            forfeited_points: std::mem::take(&mut member.points),
        };
        member.closed_at = Some(closed.closed_at);
        member.deletion_requested = false;
        member.partner_member_ids.clear();
        world.record(
            call,
            Some(&request.skyjoy_id),
            format!(
                "closed the account, forfeiting {} points",
                closed.forfeited_points
            ),
        );
        ok(closed)
    })
    .await
}
