//! Outcome callbacks: when a workflow that a channel submitted ends, the channel hears
//! about it at the URL it registered.
//!
//! The store writes each final outcome to an outbox in the same transaction as the
//! transition that ended the workflow. A [`Deliverer`] leases due outcomes, POSTs them
//! with an HMAC-SHA256 signature, and records the result. Failures are retried with
//! exponential backoff until `max_attempts`. Delivery is at least once: a channel
//! deduplicates by the `X-Closeout-Delivery` header, which is the request ID.
//!
//! Signature (`X-Closeout-Signature: t=<unix seconds>,v1=<hex>`): HMAC-SHA256 keyed with
//! the channel's secret over `"<t>.<body>"`. The timestamp inside the signed text stops
//! replays of old deliveries; [`verify`] checks both.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use closeout_engine::clock::Clock;
use closeout_engine::id::Channel;
use closeout_engine::retry::RetryPolicy;
use closeout_engine::store::{Delivery, OutcomeNotice, Store};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tracing::{info, warn};

pub const SIGNATURE_HEADER: &str = "X-Closeout-Signature";
pub const DELIVERY_HEADER: &str = "X-Closeout-Delivery";

/// Where one channel wants its outcomes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    pub url: url::Url,
    pub secret: SecretString,
}

/// Callback settings: one endpoint per channel, and how hard to try.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub channels: HashMap<Channel, Endpoint>,
    /// Attempts before giving up on one outcome.
    #[serde(default = "defaults::max_attempts")]
    pub max_attempts: u32,
    /// Per-attempt HTTP timeout.
    #[serde(default = "defaults::timeout", with = "closeout_engine::duration")]
    pub timeout: Duration,
    /// Backoff between attempts (the same policy type the workflow steps use).
    #[serde(default = "defaults::backoff")]
    pub backoff: RetryPolicy,
}

mod defaults {
    use std::time::Duration;

    use closeout_engine::retry::RetryPolicy;

    pub fn max_attempts() -> u32 {
        12
    }
    pub fn timeout() -> Duration {
        Duration::from_secs(10)
    }
    pub fn backoff() -> RetryPolicy {
        RetryPolicy {
            max_attempts: max_attempts(),
            initial_delay: Duration::from_secs(5),
            multiplier: 2.0,
            max_delay: Duration::from_secs(3600),
            jitter: 0.2,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            channels: HashMap::new(),
            max_attempts: defaults::max_attempts(),
            timeout: defaults::timeout(),
            backoff: defaults::backoff(),
        }
    }
}

/// The body of a callback. No personal data: the channel holds the rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    pub request_id: String,
    pub state: String,
    pub reason_code: Option<String>,
    pub ended_at: DateTime<Utc>,
    pub attempt: u32,
}

type HmacSha256 = Hmac<Sha256>;

/// The signature header value for `body` sent at `at`.
pub fn sign(secret: &str, at: DateTime<Utc>, body: &[u8]) -> String {
    let t = at.timestamp();
    format!("t={t},v1={}", hex::encode(mac(secret, t, body)))
}

fn mac(secret: &str, t: i64, body: &[u8]) -> Vec<u8> {
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("malformed signature header; expected t=<unix seconds>,v1=<hex>")]
    Malformed,
    #[error("signature timestamp outside the allowed window; reject the delivery")]
    Stale,
    #[error("signature does not match; check the shared secret")]
    Mismatch,
}

/// Checks a received callback: the header's MAC over `body` with `secret`, and that its
/// timestamp is within `tolerance` of `now`. For channels, and for our tests.
pub fn verify(
    secret: &str,
    header: &str,
    body: &[u8],
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => v1 = hex::decode(value).ok(),
            _ => return Err(VerifyError::Malformed),
        }
    }
    let (Some(t), Some(given)) = (t, v1) else {
        return Err(VerifyError::Malformed);
    };
    if (now.timestamp() - t).unsigned_abs() > tolerance.as_secs() {
        return Err(VerifyError::Stale);
    }
    let expected = mac(secret, t, body);
    if subtle::ConstantTimeEq::ct_eq(expected.as_slice(), given.as_slice()).into() {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

/// Delivers outcomes from the store's outbox.
#[derive(Debug, Clone)]
pub struct Deliverer {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: Arc<Config>,
    client: reqwest::Client,
}

impl Deliverer {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        config: Config,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(3))
            .timeout(config.timeout)
            .build()?;
        Ok(Self {
            store,
            clock,
            config: Arc::new(config),
            client,
        })
    }

    /// Delivers every outcome due now; returns how many were attempted.
    pub async fn deliver_due(&self) -> closeout_engine::store::Result<usize> {
        let mut attempted = 0;
        loop {
            let lease = self.config.timeout * 2;
            let due = self
                .store
                .claim_outcomes(self.clock.now(), 32, lease)
                .await?;
            if due.is_empty() {
                return Ok(attempted);
            }
            attempted += due.len();
            let results =
                futures::future::join_all(due.iter().map(|notice| self.deliver(notice))).await;
            for (notice, delivery) in due.iter().zip(results) {
                self.store
                    .finish_outcome(notice.workflow_id, delivery)
                    .await?;
            }
        }
    }

    /// Runs until `shutdown` resolves, polling the outbox every `interval`.
    pub async fn run(&self, interval: Duration, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            if let Err(e) = self.deliver_due().await {
                warn!(error = %e, "outcome delivery failed to reach the database; retrying");
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }

    async fn deliver(&self, notice: &OutcomeNotice) -> Delivery {
        let Some(endpoint) = self.config.channels.get(&notice.channel) else {
            return Delivery::GiveUp {
                error: format!("channel {} registered no callback endpoint", notice.channel),
            };
        };
        let payload = Payload {
            request_id: notice.workflow_id.to_string(),
            state: notice.state.to_string(),
            reason_code: notice.reason_code.clone(),
            ended_at: notice.at,
            attempt: notice.attempts,
        };
        let body = serde_json::to_vec(&payload).expect("a payload always serialises");
        let now = self.clock.now();
        let signature = sign(endpoint.secret.expose_secret(), now, &body);
        let sent = self
            .client
            .post(endpoint.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header(DELIVERY_HEADER, notice.workflow_id.to_string())
            .body(body)
            .send()
            .await;
        let error = match sent {
            Ok(response) if response.status().is_success() => {
                info!(request = %notice.workflow_id, channel = %notice.channel, "outcome delivered");
                return Delivery::Delivered {
                    at: self.clock.now(),
                };
            }
            Ok(response) => format!("the endpoint answered {}", response.status()),
            Err(e) if e.is_timeout() => "the endpoint did not answer in time".to_owned(),
            Err(_) => "the endpoint could not be reached".to_owned(),
        };
        if notice.attempts >= self.config.max_attempts {
            warn!(request = %notice.workflow_id, channel = %notice.channel, %error, "giving up on an outcome callback");
            return Delivery::GiveUp {
                error: format!("{error}; gave up after {} attempts", notice.attempts),
            };
        }
        let delay = self.config.backoff.delay_after(notice.attempts);
        Delivery::Retry {
            at: now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX),
            error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_a_changed_body_does_not() {
        let now = Utc::now();
        let header = sign("s3cret", now, b"{\"a\":1}");
        assert_eq!(
            verify(
                "s3cret",
                &header,
                b"{\"a\":1}",
                now,
                Duration::from_secs(300)
            ),
            Ok(())
        );
        assert_eq!(
            verify(
                "s3cret",
                &header,
                b"{\"a\":2}",
                now,
                Duration::from_secs(300)
            ),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(
                "other",
                &header,
                b"{\"a\":1}",
                now,
                Duration::from_secs(300)
            ),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn old_and_malformed_signatures_are_refused() {
        let then = Utc::now() - chrono::Duration::minutes(10);
        let header = sign("k", then, b"x");
        assert_eq!(
            verify("k", &header, b"x", Utc::now(), Duration::from_secs(300)),
            Err(VerifyError::Stale)
        );
        assert_eq!(
            verify("k", "nonsense", b"x", Utc::now(), Duration::from_secs(300)),
            Err(VerifyError::Malformed)
        );
        assert_eq!(
            verify("k", "t=1,v1=zz", b"x", Utc::now(), Duration::from_secs(300)),
            Err(VerifyError::Malformed)
        );
    }
}
