//! Prometheus metrics, with the `prometheus` crate (the Prometheus project's Rust client,
//! widely used; a private registry keeps tests independent of each other).
//!
//! Labels carry only route templates, methods, status codes and states: never a member
//! ID, a path with an ID in it, or anything else that identifies a person.

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::AppState;

#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    workflows: IntGaugeVec,
    oldest_needs_operator: prometheus::Gauge,
    step_attempts: IntCounterVec,
    step_seconds: HistogramVec,
    stuck: IntGaugeVec,
    job_runs: IntCounterVec,
    job_last_success: prometheus::GaugeVec,
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
        let step_attempts = IntCounterVec::new(
            Opts::new(
                "closeout_step_attempts_total",
                "Step attempts by definition, step, partner and outcome (done, retry, fail)",
            ),
            &["definition", "step", "partner", "outcome"],
        )?;
        let step_seconds = HistogramVec::new(
            HistogramOpts::new(
                "closeout_step_duration_seconds",
                "How long one attempt of a step's action took",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["definition", "step", "partner"],
        )?;
        let stuck = IntGaugeVec::new(
            Opts::new(
                "closeout_stuck_workflows",
                "Workflows the stuck-workflow sweep has flagged, by state, counted at scrape time",
            ),
            &["state"],
        )?;
        let job_runs = IntCounterVec::new(
            Opts::new(
                "closeout_job_runs_total",
                "Scheduled job runs in this process by job and result (done, skipped: another replica held the lock, failed)",
            ),
            // Not `job`: Prometheus adds its own `job` label to every scraped series.
            &["name", "result"],
        )?;
        let job_last_success = prometheus::GaugeVec::new(
            Opts::new(
                "closeout_job_last_success_timestamp_seconds",
                "Unix time of the job's last run that finished in this process (done or skipped)",
            ),
            &["name"],
        )?;
        registry.register(Box::new(stuck.clone()))?;
        registry.register(Box::new(job_runs.clone()))?;
        registry.register(Box::new(job_last_success.clone()))?;
        registry.register(Box::new(step_attempts.clone()))?;
        registry.register(Box::new(step_seconds.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(workflows.clone()))?;
        registry.register(Box::new(oldest_needs_operator.clone()))?;
        Ok(Self {
            registry,
            requests,
            workflows,
            oldest_needs_operator,
            step_attempts,
            step_seconds,
            stuck,
            job_runs,
            job_last_success,
        })
    }

    pub fn set_stuck(&self, state: &str, count: i64) {
        self.stuck.with_label_values(&[state]).set(count);
    }

    /// Counts one run of a scheduled job; `result` is `done`, `skipped` or `failed`.
    /// Both `done` and `skipped` mean the job is healthy (a skip means another replica
    /// holds its lock), so both move the last-success time.
    pub fn job_ran(&self, job: &str, result: &str, at: chrono::DateTime<chrono::Utc>) {
        self.job_runs.with_label_values(&[job, result]).inc();
        if result != "failed" {
            self.job_last_success
                .with_label_values(&[job])
                .set(at.timestamp_millis() as f64 / 1000.0);
        }
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

/// Step attempts from the engine. The partner is the action's prefix
/// (`vietjet.remove_token` → `vietjet`); a compensation is labelled `<step>:undo`.
impl closeout_engine::Observer for Metrics {
    fn step_attempt(&self, attempt: &closeout_engine::StepAttempt<'_>) {
        let partner = attempt.action.split('.').next().unwrap_or(attempt.action);
        let step = if attempt.compensating {
            format!("{}:undo", attempt.step)
        } else {
            attempt.step.to_owned()
        };
        self.step_attempts
            .with_label_values(&[attempt.definition, &step, partner, attempt.outcome.as_str()])
            .inc();
        self.step_seconds
            .with_label_values(&[attempt.definition, &step, partner])
            .observe(attempt.elapsed.as_secs_f64());
    }
}
