//! Simulated KYBIO: `queryByNumber` from seed 003 and our `updateBaseInfo` disable call.
//!
//! Every request must carry the configured `appId`, a numeric `Time-stamp` and a
//! `Data-signature` equal to the upper-case hex MD5 of the app key followed by the body;
//! otherwise KYBIO answers HTTP 401 with `status: "error"` and `errorCode` 1001. An unknown
//! member number is `status: "success"` with `data: null`; an unknown `customerUid` on
//! update is `status: "error"`, `errorCode` 2001.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use closeout_connectors::kybio::{signature, QueryByNumber, UpdateBaseInfo};
use closeout_connectors::Endpoint;
use serde_json::json;

use crate::auth::constant_time_eq;
use crate::model::Member;
use crate::world::{exchange, Answer, Call, State as AppState};

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/openapi/v1/customerOpenApi/queryByNumber", post(query))
        .route("/openapi/v1/customerOpenApi/updateBaseInfo", post(update))
}

fn failure(status: u16, code: i64, message: &str) -> Answer {
    Answer::new(
        status,
        json!({"status": "error", "messages": [message], "errorCode": code, "data": null}),
    )
}

fn success(data: serde_json::Value) -> Answer {
    Answer::ok(json!({"status": "success", "messages": [], "errorCode": null, "data": data}))
}

fn signed(state: &AppState, headers: &HeaderMap, body: &[u8]) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let timestamp_ok = header("Time-stamp").is_some_and(|t| t.parse::<u64>().is_ok());
    let expected = signature(&state.credentials.kybio_app_key, body);
    let signature_ok = header("Data-signature")
        .is_some_and(|s| constant_time_eq(s.as_bytes(), expected.as_bytes()));
    timestamp_ok && signature_ok
}

async fn query(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if !signed(&state, &headers, &body) {
        return failure(401, 1001, "invalid signature").into_response();
    }
    let Ok(request) = serde_json::from_slice::<QueryByNumber>(&body) else {
        return failure(400, 1002, "invalid request body").into_response();
    };
    if request.app_id != state.credentials.kybio_app_id {
        return failure(401, 1003, "unknown appId").into_response();
    }
    let is_member = |m: &Member| {
        m.kybio
            .as_ref()
            .is_some_and(|k| k.number == request.customer_num)
    };
    let owner = state.world().find(is_member).map(|m| m.skyjoy_id.clone());
    let call = Call::new(Endpoint::KybioQueryByNumber, &headers, owner);
    exchange(&state, call, |world, _| {
        let found = world.find(is_member).and_then(|m| {
            m.kybio
                .as_ref()
                .map(|k| (k.clone(), m.phone.clone(), m.full_name.clone()))
        });
        match found {
            Some((record, phone, name)) => success(json!({
                "customerUid": record.customer_uid,
                "categoryName": "Gold Card",
                "number": record.number,
                "name": name,
                "point": 0,
                "discount": 100,
                "balance": 0,
                "phone": phone.as_str(),
                "enable": record.enable,
            })),
            None => success(serde_json::Value::Null),
        }
    })
    .await
}

async fn update(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if !signed(&state, &headers, &body) {
        return failure(401, 1001, "invalid signature").into_response();
    }
    let Ok(request) = serde_json::from_slice::<UpdateBaseInfo>(&body) else {
        return failure(400, 1002, "invalid request body").into_response();
    };
    if request.app_id != state.credentials.kybio_app_id {
        return failure(401, 1003, "unknown appId").into_response();
    }
    let uid = request.customer_info.customer_uid;
    let is_member = |m: &Member| m.kybio.as_ref().is_some_and(|k| k.customer_uid == uid);
    let owner = state.world().find(is_member).map(|m| m.skyjoy_id.clone());
    let call = Call::new(Endpoint::KybioDisable, &headers, owner.clone());
    exchange(&state, call, |world, call| {
        let Some(record) = world.find(is_member).and_then(|m| m.kybio.as_mut()) else {
            return failure(200, 2001, "member not found");
        };
        let wanted = request.customer_info.enable;
        if record.enable != wanted {
            record.enable = wanted;
            world.record(
                call,
                owner.as_ref(),
                format!("set enable to {}", i8::from(wanted)),
            );
        }
        success(serde_json::Value::Null)
    })
    .await
}
