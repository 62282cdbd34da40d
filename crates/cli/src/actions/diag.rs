//! Diagnostic actions. `diag.noop` does nothing (benchmarks measure the engine alone);
//! `diag.http` posts to an effect recorder with the step's idempotency key, the way a
//! partner connector does, so process tests can count executions and effects.

use std::time::Duration;

use closeout_engine::action::{Context, Outcome, Registry};
use serde_json::json;

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Base URL of the effect recorder for `diag.http`.
    pub http_url: Option<String>,
}

pub fn register(registry: &mut Registry, options: &Options) {
    registry.register("diag.noop", |ctx: Context| async move {
        Outcome::done(json!({ "attempt": ctx.attempt }))
    });
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("an HTTP client with static settings always builds");
    let url = options.http_url.clone();
    registry.register("diag.http", move |ctx: Context| {
        let client = client.clone();
        let url = url.clone();
        async move {
            let Some(url) = url else {
                return Outcome::fail(
                    "DIAG_URL_UNSET",
                    "diag.http needs --diag-url (CLOSEOUT_DIAG_URL)",
                );
            };
            let body = json!({
                "workflow": ctx.workflow_id,
                "step": ctx.step.as_str(),
                "attempt": ctx.attempt,
                "compensating": ctx.compensating,
            });
            let sent = client
                .post(format!("{url}/effect"))
                .header("Idempotency-Key", ctx.idempotency_key.as_str())
                .json(&body)
                .send()
                .await;
            match sent {
                Ok(response) if response.status().is_success() => {
                    Outcome::done(json!({ "recorded": true }))
                }
                Ok(response) if response.status().is_server_error() => Outcome::retry(
                    "DIAG_HTTP_5XX",
                    format!("recorder answered {}", response.status()),
                ),
                Ok(response) => Outcome::fail(
                    "DIAG_HTTP_4XX",
                    format!("recorder answered {}", response.status()),
                ),
                Err(e) => Outcome::retry(
                    "DIAG_HTTP_UNREACHABLE",
                    format!("recorder unreachable: {e}"),
                ),
            }
        }
    });
}
