//! Fault injection: rules that slow down, fail, or "apply then time out" calls, per endpoint
//! or partner, set through [`crate::SandboxConfig`], the library or `POST /_admin/faults`.
//!
//! A rule with neither `endpoint` nor `partner` applies to every partner endpoint. Rules are
//! consulted before the idempotency replay, so a retry can be failed again just like a first
//! attempt. Random error rates draw from a seeded generator so a run is reproducible.

use std::time::Duration;

use closeout_connectors::{Endpoint, Partner, SkyjoyId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Where a fault applies and what it does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Endpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner: Option<Partner>,
    #[serde(flatten)]
    pub fault: Fault,
}

impl FaultRule {
    pub fn on(endpoint: Endpoint, fault: Fault) -> Self {
        Self {
            endpoint: Some(endpoint),
            partner: None,
            fault,
        }
    }

    fn matches(&self, endpoint: Endpoint) -> bool {
        self.endpoint.is_none_or(|e| e == endpoint)
            && self.partner.is_none_or(|p| p == endpoint.partner())
    }
}

/// What an injected failure answers. Without a body the partner's own error envelope with
/// the code `INJECTED_FAULT` is sent; the status defaults to 503.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Injected {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

/// The fault kinds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fault {
    /// Fail each call with probability `rate` (0.0 to 1.0).
    ErrorRate {
        rate: f64,
        #[serde(flatten)]
        answer: Injected,
    },
    /// Delay every call before it is handled.
    Latency { ms: u64 },
    /// Fail the next `count` calls, then disappear.
    FailNext {
        count: u32,
        #[serde(flatten)]
        answer: Injected,
    },
    /// Fail every call about this member.
    FailMember {
        member: SkyjoyId,
        #[serde(flatten)]
        answer: Injected,
    },
    /// Apply the effect (and record it and its answer), then hold the response for `hang_ms`
    /// so the client times out not knowing the effect happened; for the next `count` calls.
    ApplyThenTimeout {
        #[serde(default = "one")]
        count: u32,
        #[serde(default = "thirty_seconds")]
        hang_ms: u64,
    },
}

fn one() -> u32 {
    1
}

fn thirty_seconds() -> u64 {
    30_000
}

/// A fault rule with the invalid-value check the admin endpoint reports as 400.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InvalidFault {
    #[error("rate must be between 0 and 1")]
    Rate,
    #[error("status must be an HTTP status between 100 and 599")]
    Status,
}

impl Fault {
    fn validate(&self) -> Result<(), InvalidFault> {
        let answer = match self {
            Fault::ErrorRate { rate, answer } => {
                if !(0.0..=1.0).contains(rate) {
                    return Err(InvalidFault::Rate);
                }
                Some(answer)
            }
            Fault::FailNext { answer, .. } | Fault::FailMember { answer, .. } => Some(answer),
            Fault::Latency { .. } | Fault::ApplyThenTimeout { .. } => None,
        };
        match answer.and_then(|a| a.status) {
            Some(status) if !(100..=599).contains(&status) => Err(InvalidFault::Status),
            _ => Ok(()),
        }
    }
}

/// An active rule as listed by `GET /_admin/faults`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ActiveFault {
    pub id: u64,
    #[serde(flatten)]
    pub rule: FaultRule,
}

/// What the faults decided for one call.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub(crate) latency: Duration,
    pub(crate) failure: Option<Injected>,
    pub(crate) hang_after_apply: Option<Duration>,
}

/// The active rules.
#[derive(Debug)]
pub(crate) struct Faults {
    rules: Vec<ActiveFault>,
    next_id: u64,
    rng: StdRng,
}

impl Faults {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            rules: Vec::new(),
            next_id: 1,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    pub(crate) fn add(&mut self, rule: FaultRule) -> Result<u64, InvalidFault> {
        rule.fault.validate()?;
        let id = self.next_id;
        self.next_id += 1;
        self.rules.push(ActiveFault { id, rule });
        Ok(id)
    }

    pub(crate) fn clear(&mut self) {
        self.rules.clear();
    }

    pub(crate) fn list(&self) -> Vec<ActiveFault> {
        self.rules.clone()
    }

    /// Decides the call's fate and consumes counted rules.
    pub(crate) fn plan(&mut self, endpoint: Endpoint, member: Option<&SkyjoyId>) -> Plan {
        let mut plan = Plan::default();
        for active in &mut self.rules {
            if !active.rule.matches(endpoint) {
                continue;
            }
            match &mut active.rule.fault {
                Fault::Latency { ms } => plan.latency += Duration::from_millis(*ms),
                Fault::ErrorRate { rate, answer } => {
                    if plan.failure.is_none() && self.rng.gen_bool(*rate) {
                        plan.failure = Some(answer.clone());
                    }
                }
                Fault::FailNext { count, answer } => {
                    if plan.failure.is_none() && *count > 0 {
                        *count -= 1;
                        plan.failure = Some(answer.clone());
                    }
                }
                Fault::FailMember {
                    member: target,
                    answer,
                } => {
                    if plan.failure.is_none() && member == Some(target) {
                        plan.failure = Some(answer.clone());
                    }
                }
                Fault::ApplyThenTimeout { .. } => {}
            }
        }
        // Only a call that will be applied can hang after applying.
        if plan.failure.is_none() {
            for active in &mut self.rules {
                if !active.rule.matches(endpoint) {
                    continue;
                }
                if let Fault::ApplyThenTimeout { count, hang_ms } = &mut active.rule.fault {
                    if *count > 0 {
                        *count -= 1;
                        plan.hang_after_apply = Some(Duration::from_millis(*hang_ms));
                        break;
                    }
                }
            }
        }
        self.rules.retain(|active| match active.rule.fault {
            Fault::FailNext { count, .. } | Fault::ApplyThenTimeout { count, .. } => count > 0,
            _ => true,
        });
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_from_the_admin_json_shape() {
        let rule: FaultRule = serde_json::from_value(serde_json::json!({
            "endpoint": "vietjet.remove_token", "kind": "fail_next", "count": 2, "status": 500
        }))
        .unwrap();
        assert_eq!(
            rule,
            FaultRule::on(
                Endpoint::VietjetRemoveToken,
                Fault::FailNext {
                    count: 2,
                    answer: Injected {
                        status: Some(500),
                        body: None
                    }
                }
            )
        );
    }

    #[test]
    fn fail_next_is_consumed_and_scoped_to_its_endpoint() {
        let mut faults = Faults::new(7);
        faults
            .add(FaultRule::on(
                Endpoint::SkyjoyClose,
                Fault::FailNext {
                    count: 2,
                    answer: Injected::default(),
                },
            ))
            .unwrap();
        assert!(faults.plan(Endpoint::SkyjoyBalance, None).failure.is_none());
        assert!(faults.plan(Endpoint::SkyjoyClose, None).failure.is_some());
        assert!(faults.plan(Endpoint::SkyjoyClose, None).failure.is_some());
        assert!(faults.plan(Endpoint::SkyjoyClose, None).failure.is_none());
        assert!(faults.list().is_empty());
    }

    #[test]
    fn error_rate_is_reproducible_and_bounded() {
        let rule = FaultRule {
            endpoint: None,
            partner: Some(Partner::Crmx),
            fault: Fault::ErrorRate {
                rate: 0.5,
                answer: Injected::default(),
            },
        };
        let run = |seed| {
            let mut faults = Faults::new(seed);
            faults.add(rule.clone()).unwrap();
            (0..200)
                .map(|_| {
                    faults
                        .plan(Endpoint::CrmxGetCustomer, None)
                        .failure
                        .is_some()
                })
                .collect::<Vec<_>>()
        };
        let first = run(42);
        assert_eq!(first, run(42));
        let failures = first.iter().filter(|f| **f).count();
        assert!((60..140).contains(&failures), "{failures}");
        let mut faults = Faults::new(1);
        let invalid = FaultRule {
            fault: Fault::ErrorRate {
                rate: 1.5,
                answer: Injected::default(),
            },
            ..rule
        };
        assert_eq!(faults.add(invalid), Err(InvalidFault::Rate));
    }
}
