//! Prometheus metrics, with the `prometheus` crate (the Prometheus project's Rust client,
//! widely used; a private registry keeps tests independent of each other).
//!
//! Labels carry only route templates, methods, status codes and states: never a member
//! ID, a path with an ID in it, or anything else that identifies a person.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{Encoder, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::AppState;

#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    workflows: IntGaugeVec,
    oldest_needs_operator: prometheus::Gauge,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "closeout_http_requests_total",
                "HTTP requests by route template, method and status",
            ),
            &["route", "method", "status"],
        )?;
        let workflows = IntGaugeVec::new(
            Opts::new(
                "closeout_workflows",
                "Workflows by state, counted at scrape time",
            ),
            &["state"],
        )?;
        let oldest_needs_operator = prometheus::Gauge::new(
            "closeout_needs_operator_oldest_age_seconds",
            "How long the oldest workflow has been waiting for an operator (0 when none)",
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(workflows.clone()))?;
        registry.register(Box::new(oldest_needs_operator.clone()))?;
        Ok(Self {
            registry,
            requests,
            workflows,
            oldest_needs_operator,
        })
    }

    pub fn set_workflows(&self, state: &str, count: i64) {
        self.workflows.with_label_values(&[state]).set(count);
    }

    pub fn set_oldest_needs_operator(&self, seconds: f64) {
        self.oldest_needs_operator.set(seconds);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(error = %e, "encoding metrics");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

/// Counts every answer by route template, method and status.
pub async fn count(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    state
        .inner
        .metrics
        .requests
        .with_label_values(&[&route, &method, response.status().as_str()])
        .inc();
    response
}
