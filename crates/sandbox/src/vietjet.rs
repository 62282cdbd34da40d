//! Simulated Vietjet: `POST /api/partner/v1/deletion` and `/remove-token` with HTTP Basic
//! auth and the seed's error body.
//!
//! The SkyJoy user may call both; the GPAY user only `remove-token`. The seed gives only
//! `USER_NOT_EXIST`'s numeric `errorCode` (1501); the sandbox uses 1401 for
//! `INVALID_TOKEN_USER` and 1400 for `MISSING_REQUIRE_FIELD`, numbers of its own.
//! `remove-token` answers 200 whether or not tokens were left.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use closeout_connectors::vietjet::{ErrorBody, ErrorKey, MemberRef};
use closeout_connectors::Endpoint;
use serde_json::json;

use crate::auth::{basic, constant_time_eq};
use crate::world::{exchange, Answer, Call, State as AppState};
use crate::Basic;

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/partner/v1/deletion", post(deletion))
        .route("/api/partner/v1/remove-token", post(remove_token))
}

pub(crate) fn error(key: ErrorKey) -> Answer {
    let (status, code) = match key {
        ErrorKey::UserNotExist => (404, 1501),
        ErrorKey::InvalidTokenUser => (401, 1401),
        ErrorKey::MissingRequireField => (400, 1400),
    };
    Answer::new(
        status,
        ErrorBody {
            status: false,
            message: key.message().to_owned(),
            error_code: Some(code),
            error_key: key.to_string(),
        },
    )
}

async fn deletion(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    handle(state, headers, body, Endpoint::VietjetDeletion).await
}

async fn remove_token(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    handle(state, headers, body, Endpoint::VietjetRemoveToken).await
}

async fn handle(state: AppState, headers: HeaderMap, body: Bytes, endpoint: Endpoint) -> Response {
    let credentials = &state.credentials;
    let matches = |user: &str, pass: &str, expected: &Basic| {
        constant_time_eq(user.as_bytes(), expected.username.as_bytes())
            & constant_time_eq(pass.as_bytes(), expected.password.as_bytes())
    };
    let allowed = basic(&headers).is_some_and(|(user, pass)| {
        matches(&user, &pass, &credentials.vietjet_skyjoy)
            || (endpoint == Endpoint::VietjetRemoveToken
                && matches(&user, &pass, &credentials.vietjet_gpay))
    });
    if !allowed {
        return error(ErrorKey::InvalidTokenUser).into_response();
    }
    let Ok(member) = serde_json::from_slice::<MemberRef>(&body) else {
        return error(ErrorKey::MissingRequireField).into_response();
    };
    let call = Call::new(endpoint, &headers, Some(member.skyjoy_id.clone()));
    exchange(&state, call, |world, call| {
        let Some(found) = world.find(|m| {
            m.skyjoy_id == member.skyjoy_id
                && m.phone == member.phone
                && m.vietjet.as_ref().is_some_and(|v| !v.deleted)
        }) else {
            return error(ErrorKey::UserNotExist);
        };
        let Some(account) = found.vietjet.as_mut() else {
            return error(ErrorKey::UserNotExist);
        };
        let removed = std::mem::take(&mut account.card_tokens).len();
        let change = if endpoint == Endpoint::VietjetDeletion {
            account.deleted = true;
            Some(format!(
                "deleted the Vietjet user and {removed} card tokens"
            ))
        } else {
            (removed > 0).then(|| format!("removed {removed} card tokens"))
        };
        if let Some(change) = change {
            world.record(call, Some(&member.skyjoy_id), change);
        }
        Answer::ok(json!({"status": true, "message": "success"}))
    })
    .await
}
