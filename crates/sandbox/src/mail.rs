//! Simulated HTTP mail API (`POST /v1/messages`, Bearer auth), capturing every accepted
//! message for tests to read.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use chrono::Utc;
use closeout_connectors::email::{HttpMessage, Sent};
use closeout_connectors::Endpoint;
use serde_json::json;

use crate::auth::bearer_is;
use crate::world::{exchange, Answer, Call, CapturedEmail, State as AppState};

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/v1/messages", post(send))
}

async fn send(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    if !bearer_is(&headers, &state.credentials.mail_token) {
        return Answer::new(
            401,
            json!({"error": {"code": "UNAUTHORIZED", "message": "invalid token"}}),
        )
        .into_response();
    }
    let Ok(message) = serde_json::from_slice::<HttpMessage>(&body) else {
        return Answer::new(422, json!({"error": {"code": "INVALID_MESSAGE", "message": "from, to, subject and text are required"}}))
            .into_response();
    };
    let owner = state
        .world()
        .find(|m| m.email == message.to)
        .map(|m| m.skyjoy_id.clone());
    let call = Call::new(Endpoint::EmailSend, &headers, owner.clone());
    exchange(&state, call, |world, call| {
        let id = format!("msg-{}", world.emails.len() + 1);
        world.emails.push(CapturedEmail {
            id: id.clone(),
            at: Utc::now(),
            idempotency_key: call.key.clone(),
            from: message.from,
            to: message.to,
            subject: message.subject,
            text: message.text,
        });
        world.record(call, owner.as_ref(), format!("sent email {id}"));
        Answer::new(202, Sent { id })
    })
    .await
}
