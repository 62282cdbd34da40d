//! `/healthz` (the process answers), `/readyz` (the database answers and its migrations
//! are current) and `/metrics` (Prometheus text). All three are open: probes and
//! scrapers carry no credentials, and none of them shows personal data.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use closeout_engine::state::WorkflowState;
use serde::Serialize;
use strum::IntoEnumIterator;
use utoipa::ToSchema;

use crate::error::ErrorBody;
use crate::AppState;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Liveness: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: the database answers and every migration is applied.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "UNAVAILABLE: database unreachable or migrations pending", body = ErrorBody),
    )
)]
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.inner.store.migrations_current().await {
        Ok(true) => Json(Health { status: "ok" }).into_response(),
        Ok(false) => {
            tracing::warn!(
                "not ready: database migrations are not current; run `closeout migrate`"
            );
            crate::Error::Unavailable.into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "not ready: database unreachable");
            crate::Error::Unavailable.into_response()
        }
    }
}

/// Prometheus metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
    )
)]
pub async fn metrics(State(state): State<AppState>) -> Response {
    let metrics = &state.inner.metrics;
    // Gauges from the database are refreshed at scrape time; if the database is down
    // the request counters are still served.
    match state.inner.engine.store().count_by_state().await {
        Ok(counts) => {
            for s in WorkflowState::iter() {
                let n = counts.iter().find(|(c, _)| *c == s).map_or(0, |(_, n)| *n);
                metrics.set_workflows(s.as_ref(), n);
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: counting workflows by state failed"),
    }
    match state.inner.engine.store().count_stuck().await {
        Ok(counts) => {
            for s in WorkflowState::iter().filter(|s| !s.is_terminal()) {
                let n = counts.iter().find(|(c, _)| *c == s).map_or(0, |(_, n)| *n);
                metrics.set_stuck(s.as_ref(), n);
            }
        }
        Err(e) => tracing::warn!(error = %e, "metrics: counting stuck workflows failed"),
    }
    match crate::ops::oldest_needing_operator(&state).await {
        Ok(age) => metrics.set_oldest_needs_operator(age.map_or(0.0, |a| a.as_secs_f64())),
        Err(e) => tracing::warn!(error = %e, "metrics: oldest needs_operator age failed"),
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics.render(),
    )
        .into_response()
}
