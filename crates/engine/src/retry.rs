//! Retry policy and delay computation.
//!
//! The `backoff` crate computes the exponential delay with jitter. It is used for that
//! arithmetic only (RUSTSEC-2025-0012: unmaintained): retry state — the attempt count
//! and the next attempt time — lives in the database, never in a sleeping future.

use std::time::Duration;

use backoff::backoff::Backoff;
use serde::{Deserialize, Serialize};

use crate::duration;

/// How a step retries. Attempts count from 1; `max_attempts` includes the first try.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    #[serde(default = "defaults::max_attempts")]
    pub max_attempts: u32,
    #[serde(default = "defaults::initial_delay", with = "duration")]
    pub initial_delay: Duration,
    #[serde(default = "defaults::multiplier")]
    pub multiplier: f64,
    #[serde(default = "defaults::max_delay", with = "duration")]
    pub max_delay: Duration,
    /// Randomisation factor in [0, 1]: a delay `d` becomes uniform in `d·(1±jitter)`.
    #[serde(default = "defaults::jitter")]
    pub jitter: f64,
}

mod defaults {
    use std::time::Duration;
    pub fn max_attempts() -> u32 {
        5
    }
    pub fn initial_delay() -> Duration {
        Duration::from_secs(1)
    }
    pub fn multiplier() -> f64 {
        2.0
    }
    pub fn max_delay() -> Duration {
        Duration::from_secs(300)
    }
    pub fn jitter() -> f64 {
        0.2
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: defaults::max_attempts(),
            initial_delay: defaults::initial_delay(),
            multiplier: defaults::multiplier(),
            max_delay: defaults::max_delay(),
            jitter: defaults::jitter(),
        }
    }
}

impl RetryPolicy {
    /// The problem with this policy, if any, phrased for a definition author.
    pub fn problem(&self) -> Option<String> {
        if self.max_attempts == 0 {
            return Some("retry.max_attempts is 0; a step needs at least 1 attempt".into());
        }
        if !(self.multiplier >= 1.0 && self.multiplier.is_finite()) {
            return Some(format!(
                "retry.multiplier is {}; use a finite number of at least 1.0",
                self.multiplier
            ));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Some(format!(
                "retry.jitter is {}; use a value in [0, 1]",
                self.jitter
            ));
        }
        if self.max_delay < self.initial_delay {
            return Some("retry.max_delay is shorter than retry.initial_delay".into());
        }
        None
    }

    /// Whether another attempt is allowed after `attempts_made` attempts.
    pub fn allows_another(&self, attempts_made: u32) -> bool {
        attempts_made < self.max_attempts
    }

    /// Delay before the attempt that follows attempt number `attempts_made` (1-based).
    pub fn delay_after(&self, attempts_made: u32) -> Duration {
        let exponent = attempts_made.saturating_sub(1).min(64) as i32;
        let base = self.initial_delay.as_secs_f64() * self.multiplier.powi(exponent);
        let current = Duration::from_secs_f64(base.min(self.max_delay.as_secs_f64()));
        let mut policy = backoff::ExponentialBackoff {
            current_interval: current,
            initial_interval: self.initial_delay,
            randomization_factor: self.jitter,
            multiplier: self.multiplier,
            max_interval: self.max_delay,
            max_elapsed_time: None,
            ..backoff::ExponentialBackoff::default()
        };
        policy
            .next_backoff()
            .unwrap_or(current)
            .min(self.max_delay.mul_f64(1.0 + self.jitter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(jitter: f64) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 6,
            initial_delay: Duration::from_millis(100),
            multiplier: 2.0,
            max_delay: Duration::from_millis(1000),
            jitter,
        }
    }

    #[test]
    fn delays_grow_exponentially_and_cap() {
        let p = policy(0.0);
        let delays: Vec<_> = (1..=6).map(|n| p.delay_after(n).as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1000, 1000]);
    }

    #[test]
    fn jitter_stays_within_its_band() {
        let p = policy(0.5);
        for _ in 0..200 {
            let d = p.delay_after(2).as_millis();
            assert!((100..=300).contains(&d), "{d}ms outside 200ms ± 50%");
        }
    }

    #[test]
    fn attempts_are_counted_against_the_maximum() {
        let p = policy(0.0);
        assert!(p.allows_another(5));
        assert!(!p.allows_another(6));
    }

    #[test]
    fn bad_policies_are_explained() {
        let mut p = policy(0.0);
        p.max_attempts = 0;
        assert!(p.problem().unwrap().contains("max_attempts"));
        let mut p = policy(0.0);
        p.jitter = 1.5;
        assert!(p.problem().unwrap().contains("jitter"));
    }
}
