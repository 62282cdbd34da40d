//! The sandbox's state: members, the effects ledger, captured emails and stored answers for
//! idempotency replays; and [`exchange`], the one path every partner call takes through
//! faults, replay and effect.
//!
//! Idempotency: the first answer (below 500) to an effect endpoint for a given
//! `Idempotency-Key` is stored; a repeat with the same key on the same endpoint gets that
//! stored answer again, with `Idempotent-Replayed: true`, and applies nothing. The request
//! body of the repeat is not compared with the original. Calls without the header are
//! applied every time (real partners do not require it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use closeout_connectors::{
    EmailAddress, Endpoint, Partner, SkyjoyId, IDEMPOTENCY_KEY_HEADER, IDEMPOTENT_REPLAYED_HEADER,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::faults::{Faults, Injected};
use crate::model::Member;
use crate::Credentials;

/// One state change a partner made, as the effects ledger records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Effect {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub partner: Partner,
    pub endpoint: Endpoint,
    /// The member the effect was about, when the sandbox knows one.
    pub member: Option<SkyjoyId>,
    pub idempotency_key: Option<String>,
    /// What changed, in a few words (`removed 2 card tokens`).
    pub change: String,
}

/// Which effects to list; every field narrows the result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EffectFilter {
    #[serde(default)]
    pub partner: Option<Partner>,
    #[serde(default)]
    pub endpoint: Option<Endpoint>,
    #[serde(default)]
    pub member: Option<SkyjoyId>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

impl EffectFilter {
    fn matches(&self, effect: &Effect) -> bool {
        self.partner.is_none_or(|p| p == effect.partner)
            && self.endpoint.is_none_or(|e| e == effect.endpoint)
            && self
                .member
                .as_ref()
                .is_none_or(|m| effect.member.as_ref() == Some(m))
            && self
                .idempotency_key
                .as_ref()
                .is_none_or(|k| effect.idempotency_key.as_ref() == Some(k))
    }
}

/// An email the HTTP mail API accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapturedEmail {
    pub id: String,
    pub at: DateTime<Utc>,
    pub idempotency_key: Option<String>,
    pub from: EmailAddress,
    pub to: EmailAddress,
    pub subject: String,
    pub text: String,
}

/// A JSON answer as a handler produces it and the replay store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Value,
}

impl Answer {
    pub(crate) fn new(status: u16, body: impl Serialize) -> Self {
        Self {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body: serde_json::to_value(body).unwrap_or(Value::Null),
        }
    }

    pub(crate) fn ok(body: impl Serialize) -> Self {
        Self::new(200, body)
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

/// Members and records.
#[derive(Debug)]
pub(crate) struct World {
    pub(crate) members: Vec<Member>,
    pub(crate) effects: Vec<Effect>,
    pub(crate) emails: Vec<CapturedEmail>,
    replays: HashMap<(Endpoint, String), Answer>,
    /// Bumped on every recorded effect so tests can await effects instead of polling.
    recorded: Arc<watch::Sender<u64>>,
}

impl World {
    pub(crate) fn new(members: Vec<Member>, recorded: Arc<watch::Sender<u64>>) -> Self {
        Self {
            members,
            effects: Vec::new(),
            emails: Vec::new(),
            replays: HashMap::new(),
            recorded,
        }
    }

    /// An open (not closed) member by SkyJoy ID.
    pub(crate) fn open_member(&mut self, id: &SkyjoyId) -> Option<&mut Member> {
        self.members
            .iter_mut()
            .find(|m| &m.skyjoy_id == id && m.closed_at.is_none())
    }

    pub(crate) fn member(&mut self, id: &SkyjoyId) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| &m.skyjoy_id == id)
    }

    pub(crate) fn find(&mut self, predicate: impl Fn(&Member) -> bool) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| predicate(m))
    }

    pub(crate) fn record(&mut self, call: &Call, member: Option<&SkyjoyId>, change: String) {
        let effect = Effect {
            seq: self.effects.len() as u64 + 1,
            at: Utc::now(),
            partner: call.endpoint.partner(),
            endpoint: call.endpoint,
            member: member.cloned(),
            idempotency_key: call.key.clone(),
            change,
        };
        tracing::debug!(endpoint = %effect.endpoint, seq = effect.seq, "sandbox effect");
        self.effects.push(effect);
        self.recorded.send_modify(|count| *count += 1);
    }

    pub(crate) fn effects(&self, filter: &EffectFilter) -> Vec<Effect> {
        self.effects
            .iter()
            .filter(|e| filter.matches(e))
            .cloned()
            .collect()
    }
}

/// Everything the handlers share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) world: Mutex<World>,
    pub(crate) faults: Mutex<Faults>,
    pub(crate) credentials: Credentials,
    pub(crate) seed: Vec<Member>,
    pub(crate) stop: watch::Receiver<bool>,
    pub(crate) recorded: Arc<watch::Sender<u64>>,
}

pub(crate) type State = Arc<Shared>;

impl Shared {
    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        // A handler that panicked mid-update leaves the world as it was at the panic, which
        // is still a world a test can inspect, so poisoning is ignored.
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn faults(&self) -> MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sleeps, or returns early with `false` when the sandbox is stopping.
    async fn pause(&self, duration: Duration) -> bool {
        let mut stop = self.stop.clone();
        tokio::select! {
            () = tokio::time::sleep(duration) => true,
            _ = stop.wait_for(|stopping| *stopping) => false,
        }
    }
}

/// One partner call as the exchange sees it.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) endpoint: Endpoint,
    pub(crate) key: Option<String>,
    pub(crate) member: Option<SkyjoyId>,
}

impl Call {
    pub(crate) fn new(endpoint: Endpoint, headers: &HeaderMap, member: Option<SkyjoyId>) -> Self {
        Self {
            endpoint,
            key: headers
                .get(IDEMPOTENCY_KEY_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            member,
        }
    }
}

/// Runs a call through faults, replay and `apply`, in that order.
pub(crate) async fn exchange(
    state: &Shared,
    call: Call,
    apply: impl FnOnce(&mut World, &Call) -> Answer,
) -> Response {
    let plan = state.faults().plan(call.endpoint, call.member.as_ref());
    if !plan.latency.is_zero() && !state.pause(plan.latency).await {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    if let Some(injected) = plan.failure {
        return injected_answer(call.endpoint.partner(), injected).into_response();
    }
    let replay_key = call
        .key
        .clone()
        .filter(|_| call.endpoint.is_effect())
        .map(|key| (call.endpoint, key));
    let (answer, replayed) = {
        let mut world = state.world();
        match replay_key.as_ref().and_then(|k| world.replays.get(k)) {
            Some(stored) => (stored.clone(), true),
            None => {
                let answer = apply(&mut world, &call);
                if let Some(key) = replay_key {
                    if !answer.status.is_server_error() {
                        world.replays.insert(key, answer.clone());
                    }
                }
                (answer, false)
            }
        }
    };
    if let Some(hang) = plan.hang_after_apply {
        // The effect is applied and its answer stored; the client only sees a timeout.
        state.pause(hang).await;
    }
    let mut response = answer.into_response();
    if replayed {
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    response
}

/// An injected failure in the partner's own error shape.
fn injected_answer(partner: Partner, injected: Injected) -> Answer {
    let status = injected.status.unwrap_or(503);
    let body = injected.body.unwrap_or_else(|| match partner {
        Partner::Vietjet => json!({
            "status": false, "message": "injected fault", "errorCode": 5000,
            "errorKey": "INJECTED_FAULT"
        }),
        Partner::Skyjoy => json!({
            "errors": {"name": "InjectedFault", "message": "injected fault", "code": "INJECTED_FAULT"},
            "message": "injected fault", "statusCode": status
        }),
        Partner::Kybio => json!({
            "status": "error", "messages": ["injected fault"], "errorCode": 5000, "data": null
        }),
        Partner::Crmx => json!({"status": status, "message": "injected fault"}),
        Partner::Galaxypay | Partner::Email => {
            json!({"error": {"code": "INJECTED_FAULT", "message": "injected fault"}})
        }
    });
    Answer::new(status, body)
}
