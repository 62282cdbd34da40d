//! Closeout's HTTP API (axum): the channel API (`/v1/requests`), the BRD-compatible
//! `POST /api-user/partner/v1/user/deletion-request`, the operations API (`/v1/ops/…`),
//! the registration systems' phone cooldown check (`POST /v1/cooldown/check`),
//! and `/healthz`, `/readyz`, `/metrics` and `/openapi.json`; plus the operations
//! console's static page at `/ops` ([`console`]).
//!
//! A thin layer: handlers parse, authorise, call the [`Engine`] and map errors through
//! the one [`error::Error`] table. Architecture invariant: no SQL here, and no partner
//! wire format (eligibility goes through `closeout-connectors`).
//!
//! [`app`] builds the router from an [`AppState`] and nothing else, so tests serve it on
//! `127.0.0.1:0` exactly as `closeout serve` does.

pub mod auth;
pub mod body;
pub mod brd;
pub mod certificates;
pub mod channel;
pub mod config;
pub mod console;
pub mod cooldown;
pub mod error;
pub mod health;
pub mod openapi;
pub mod ops;
pub mod telemetry;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::HeaderName;
use axum::routing::{get, post};
use axum::Router;
use closeout_connectors::skyjoy;
use closeout_engine::id::Channel;
use closeout_engine::Engine;
use closeout_store::AnyStore;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

pub use config::Config;
pub use error::Error;

/// The header carrying the request ID on every response (and accepted on requests).
pub const REQUEST_ID: &str = "x-request-id";

/// Everything the handlers share; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    engine: Engine,
    store: AnyStore,
    skyjoy: skyjoy::Client,
    keys: auth::Keys,
    /// Every phone-hash key version, so the check finds entries made under any of them.
    hash_keys: closeout_cooldown::HashKeys,
    limiter: auth::Limiter,
    metrics: telemetry::Metrics,
    body_limit: usize,
    brd_channel: Channel,
    certificates: closeout_certificate::Keys,
}

/// Why an [`AppState`] cannot be built from the configuration.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Keys(#[from] auth::ConfigError),
    #[error("`api.brd_channel`: {0}")]
    BrdChannel(String),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

impl AppState {
    /// `store` is the engine's own store, used for readiness (migrations) and metrics;
    /// `skyjoy` answers the BRD endpoint's synchronous eligibility check; `hash_keys` are
    /// the same phone-hash keys the closing steps record cooldowns under.
    pub fn new(
        engine: Engine,
        store: AnyStore,
        skyjoy: skyjoy::Client,
        hash_keys: closeout_cooldown::HashKeys,
        config: &Config,
    ) -> Result<Self, StateError> {
        let metrics = telemetry::Metrics::new()?;
        // Step metrics come from the engine's workers in this process.
        engine.observe(Arc::new(metrics.clone()));
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                store,
                skyjoy,
                keys: auth::Keys::from_config(config)?,
                hash_keys,
                limiter: auth::Limiter::new(&config.rate_limit)?,
                metrics,
                body_limit: config.body_limit,
                brd_channel: Channel::parse(config.brd_channel.clone())
                    .map_err(|e| StateError::BrdChannel(e.to_string()))?,
                certificates: closeout_certificate::Keys::new(None, None, &Default::default())
                    .expect("no keys are valid keys"),
            }),
        })
    }

    /// Signs deletion certificates with `keys`; without, the certificate routes answer
    /// 503 `CERTIFICATES_NOT_CONFIGURED`. Call before the state is shared.
    pub fn with_certificates(mut self, keys: closeout_certificate::Keys) -> Self {
        Arc::get_mut(&mut self.inner)
            .expect("with_certificates is called before the state is cloned")
            .certificates = keys;
        self
    }

    pub fn certificate_keys(&self) -> &closeout_certificate::Keys {
        &self.inner.certificates
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The process's metrics, for what runs beside the API (scheduled jobs).
    pub fn metrics(&self) -> &telemetry::Metrics {
        &self.inner.metrics
    }

    /// Whether any credential is configured; without one every authenticated route
    /// answers 401.
    pub fn has_keys(&self) -> bool {
        !self.inner.keys.is_empty()
    }
}

/// The whole API as one router.
pub fn app(state: AppState) -> Router {
    let body_limit = state.inner.body_limit;
    let routes = Router::new()
        .route("/v1/requests", post(channel::submit))
        .route("/v1/requests/{id}", get(channel::status))
        .route(
            "/v1/requests/{id}/certificate",
            get(certificates::for_channel),
        )
        .route(
            "/v1/ops/requests/{id}/certificate",
            get(certificates::for_ops),
        )
        .route("/v1/certificates/keys", get(certificates::public_keys))
        .route(brd::PATH, post(brd::deletion_request))
        .route("/v1/ops/requests", get(ops::list))
        .route("/v1/ops/requests/{id}", get(ops::detail))
        .route("/v1/ops/requests/{id}/approve", post(ops::approve))
        .route("/v1/ops/requests/{id}/reject", post(ops::reject))
        .route("/v1/ops/requests/{id}/retry", post(ops::retry))
        .route("/v1/ops/requests/{id}/resume", post(ops::resume))
        .route("/v1/ops/requests/{id}/skip", post(ops::skip))
        .route("/v1/ops/requests/{id}/cancel", post(ops::cancel))
        .route("/v1/ops/bulk/{action}", post(ops::bulk))
        .route("/v1/cooldown/check", post(cooldown::check))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(openapi::document))
        // The operations console's page and files: no credential, no data (its script
        // calls /v1/ops with the operator's key).
        .merge(console::routes())
        .fallback(|| async { Error::RouteNotFound })
        // Inner to outer: authentication sees the matched route; metrics count every
        // answer, refusals included.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            telemetry::count,
        ))
        // Handlers read bodies with their own limit (so the 413 has our body); this
        // keeps axum's extractors to the same limit.
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state);
    let request_id = HeaderName::from_static(REQUEST_ID);
    routes
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        // Every log line of a request is inside this span, so it carries the request
        // ID. Only the method and the route template are recorded: paths and queries
        // may hold member IDs, and bodies are never logged.
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                let id = request
                    .headers()
                    .get(REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-");
                let route = request
                    .extensions()
                    .get::<MatchedPath>()
                    .map(MatchedPath::as_str)
                    .unwrap_or("unmatched");
                tracing::info_span!("request", request_id = %id, method = %request.method(), route)
            }),
        )
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting and
/// finishes the requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// How long ago `since` was, never negative.
fn age(now: chrono::DateTime<chrono::Utc>, since: chrono::DateTime<chrono::Utc>) -> Duration {
    (now - since).to_std().unwrap_or_default()
}
