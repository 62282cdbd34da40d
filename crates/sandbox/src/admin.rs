//! The admin API under `/_admin`: fault rules, the effects ledger, captured emails, member
//! state and reset. It has no auth: the sandbox binds loopback only and holds made-up data.
//!
//! - `POST /_admin/faults` with one rule or a list (see [`crate::FaultRule`]) → 201 with the
//!   new rule IDs; 400 on an invalid rule
//! - `GET /_admin/faults`, `DELETE /_admin/faults` (removes every rule)
//! - `GET /_admin/effects?partner=&endpoint=&member=&idempotency_key=`
//! - `GET /_admin/emails`
//! - `GET /_admin/members`, `GET /_admin/members/{skyjoyId}`
//! - `POST /_admin/reset`: members back to the seed, ledger, emails, replays and faults
//!   cleared

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use closeout_connectors::SkyjoyId;
use serde::Deserialize;
use serde_json::json;

use crate::faults::FaultRule;
use crate::world::{EffectFilter, State as AppState, World};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/faults",
            get(list_faults).post(add_faults).delete(clear_faults),
        )
        .route("/effects", get(effects))
        .route("/emails", get(emails))
        .route("/members", get(members))
        .route("/members/{id}", get(member))
        .route("/reset", post(reset))
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    Many(Vec<FaultRule>),
    One(FaultRule),
}

async fn add_faults(State(state): State<AppState>, Json(rules): Json<OneOrMany>) -> Response {
    let rules = match rules {
        OneOrMany::Many(rules) => rules,
        OneOrMany::One(rule) => vec![rule],
    };
    let mut faults = state.faults();
    let mut ids = Vec::new();
    for rule in rules {
        match faults.add(rule) {
            Ok(id) => ids.push(id),
            Err(invalid) => {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"error": invalid.to_string(), "added": ids})),
                )
                    .into_response()
            }
        }
    }
    (StatusCode::CREATED, Json(json!({ "ids": ids }))).into_response()
}

async fn list_faults(State(state): State<AppState>) -> Response {
    Json(state.faults().list()).into_response()
}

async fn clear_faults(State(state): State<AppState>) -> StatusCode {
    state.faults().clear();
    StatusCode::NO_CONTENT
}

async fn effects(State(state): State<AppState>, Query(filter): Query<EffectFilter>) -> Response {
    Json(state.world().effects(&filter)).into_response()
}

async fn emails(State(state): State<AppState>) -> Response {
    Json(state.world().emails.clone()).into_response()
}

async fn members(State(state): State<AppState>) -> Response {
    Json(state.world().members.clone()).into_response()
}

async fn member(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let found = SkyjoyId::parse(id)
        .ok()
        .and_then(|id| state.world().member(&id).cloned());
    match found {
        Some(member) => Json(member).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn reset(State(state): State<AppState>) -> StatusCode {
    crate::reset(&state);
    StatusCode::NO_CONTENT
}

/// The world as the seed describes it.
pub(crate) fn fresh_world(state: &AppState) -> World {
    World::new(state.seed.clone(), state.recorded.clone())
}
