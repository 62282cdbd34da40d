//! Identifier newtypes. Each is validated once, at construction, so the rest of the
//! engine never re-checks a string.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A workflow instance. UUIDv7, so IDs sort by creation time in indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WorkflowId(Uuid);

impl WorkflowId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    pub fn from_uuid(uuid: Uuid) -> Self {
        Self(uuid)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl Default for WorkflowId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for WorkflowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for WorkflowId {
    type Err = InvalidId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| InvalidId::new("workflow id", s, "expected a UUID"))
    }
}

/// The problem with a rejected identifier. The offending value is kept out of the
/// message when it may be personal data (subjects); IDs are safe to echo.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {problem}")]
pub struct InvalidId {
    pub what: &'static str,
    pub value: String,
    pub problem: &'static str,
}

impl InvalidId {
    fn new(what: &'static str, value: &str, problem: &'static str) -> Self {
        Self {
            what,
            value: value.chars().take(80).collect(),
            problem,
        }
    }
}

fn check_token(what: &'static str, value: &str, max: usize) -> Result<(), InvalidId> {
    if value.is_empty() {
        return Err(InvalidId::new(what, value, "must not be empty"));
    }
    if value.len() > max {
        return Err(InvalidId::new(what, value, "is too long"));
    }
    if !value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
    {
        return Err(InvalidId::new(
            what,
            value,
            "may contain only ASCII letters, digits, '_', '-', '.' and ':'",
        ));
    }
    Ok(())
}

macro_rules! token_newtype {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: impl Into<String>) -> Result<Self, InvalidId> {
                let value = value.into();
                check_token($what, &value, $max)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
    };
}

token_newtype!(
    /// A step's identifier inside its definition (`remove_tokens`).
    StepId,
    "step id",
    64
);
token_newtype!(
    /// A workflow definition's name (`vietjet`).
    DefinitionName,
    "definition name",
    64
);
token_newtype!(
    /// A registered action's name (`vietjet.remove_token`).
    ActionName,
    "action name",
    128
);
token_newtype!(
    /// The caller-chosen key that makes starting a workflow idempotent.
    StartKey,
    "idempotency key",
    200
);
token_newtype!(
    /// The channel that submitted a workflow (`vietjet`, `skyjoy-app`, `galaxypay`).
    /// A channel sees only its own workflows.
    Channel,
    "channel",
    64
);
token_newtype!(
    /// The worker holding a lease (`host-1234-ab12`).
    WorkerId,
    "worker id",
    128
);

/// The member a workflow acts on. At most one open workflow per subject. A subject is
/// an opaque key chosen by the caller (the member's SkyJoy ID), never a phone or email.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subject(String);

impl Subject {
    pub fn parse(value: impl Into<String>) -> Result<Self, InvalidId> {
        let value = value.into();
        check_token("subject", &value, 128).map_err(|mut e| {
            e.value = String::from("<redacted>");
            e
        })?;
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Subject(..)")
    }
}

impl TryFrom<String> for Subject {
    type Error = InvalidId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(value)
    }
}

impl From<Subject> for String {
    fn from(value: Subject) -> String {
        value.0
    }
}

/// The idempotency key an action sends to the outside world. Derived from the workflow
/// and the step, so it is identical across attempts, crashes and takeovers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn for_step(workflow: WorkflowId, step: &StepId) -> Self {
        Self(format!("{workflow}:{step}"))
    }

    pub fn for_compensation(workflow: WorkflowId, step: &StepId) -> Self {
        Self(format!("{workflow}:{step}:compensate"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_validated() {
        assert!(StepId::parse("remove_tokens").is_ok());
        assert!(StepId::parse("").is_err());
        assert!(StepId::parse("has space").is_err());
        assert!(StepId::parse("x".repeat(65)).is_err());
        assert!(ActionName::parse("vietjet.remove_token").is_ok());
    }

    #[test]
    fn subject_errors_and_debug_never_show_the_value() {
        let err = Subject::parse("0912 345 678").unwrap_err();
        assert!(!err.to_string().contains("0912"));
        let subject = Subject::parse("SJ0123456789").unwrap();
        assert_eq!(format!("{subject:?}"), "Subject(..)");
    }

    #[test]
    fn idempotency_keys_are_stable_per_step() {
        let id = WorkflowId::new();
        let step = StepId::parse("notify").unwrap();
        assert_eq!(
            IdempotencyKey::for_step(id, &step),
            IdempotencyKey::for_step(id, &step)
        );
        assert_ne!(
            IdempotencyKey::for_step(id, &step),
            IdempotencyKey::for_compensation(id, &step)
        );
    }
}
