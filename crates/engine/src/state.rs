//! Workflow and step state machines. The allowed transitions are listed here and
//! nowhere else; every persisted change goes through [`WorkflowState::check`].

use serde::{Deserialize, Serialize};
use strum::{AsRefStr, Display, EnumIter, EnumString, IntoStaticStr};

/// Where a workflow is. The strings are the persisted and API spelling.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    Display,
    EnumString,
    AsRefStr,
    IntoStaticStr,
    EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum WorkflowState {
    /// A forward step is due or retrying.
    Running,
    /// Parked on a `wait` step until a signal or its timeout.
    Waiting,
    /// Undoing completed compensatable steps in reverse order.
    Compensating,
    /// Every step done.
    Completed,
    /// Failed before the pivot and fully undone.
    Compensated,
    /// Refused by a decision (e.g. operations rejected) and undone.
    Rejected,
    /// Stopped by an operator and undone.
    Cancelled,
    /// Stuck: retries exhausted after the pivot, or a compensation failed. A human acts.
    NeedsOperator,
}

/// A forbidden state change. Reaching this is a bug or a lost race, never user input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("illegal workflow transition from {from} to {to}")]
pub struct IllegalTransition {
    pub from: WorkflowState,
    pub to: WorkflowState,
}

impl WorkflowState {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Compensated | Self::Rejected | Self::Cancelled
        )
    }

    /// Whether a worker may pick the workflow up when it is due.
    pub fn is_runnable(self) -> bool {
        matches!(self, Self::Running | Self::Waiting | Self::Compensating)
    }

    /// The transition table. Self-transitions mark progress within a state (the next
    /// step, the next compensation).
    pub fn can_become(self, to: WorkflowState) -> bool {
        use WorkflowState::*;
        match self {
            Running => matches!(
                to,
                Running
                    | Waiting
                    | Compensating
                    | Completed
                    | Compensated
                    | Cancelled
                    | NeedsOperator
            ),
            Waiting => matches!(
                to,
                Running
                    | Waiting
                    | Compensating
                    | Completed
                    | Compensated
                    | Rejected
                    | Cancelled
                    | NeedsOperator
            ),
            Compensating => matches!(
                to,
                Compensating | Compensated | Rejected | Cancelled | NeedsOperator
            ),
            NeedsOperator => matches!(
                to,
                Running | Waiting | Compensating | Completed | Compensated | Rejected | Cancelled
            ),
            Completed | Compensated | Rejected | Cancelled => false,
        }
    }

    pub fn check(self, to: WorkflowState) -> Result<(), IllegalTransition> {
        if self.can_become(to) {
            Ok(())
        } else {
            Err(IllegalTransition { from: self, to })
        }
    }
}

/// Where one step of a workflow is.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    Display,
    EnumString,
    AsRefStr,
    IntoStaticStr,
    EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum StepState {
    Pending,
    /// At least one attempt failed; the next one is scheduled.
    Retrying,
    Waiting,
    Succeeded,
    Skipped,
    /// Retries exhausted or a permanent error; the workflow is compensating or parked.
    Failed,
    Compensating,
    Compensated,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("illegal step transition from {from} to {to}")]
pub struct IllegalStepTransition {
    pub from: StepState,
    pub to: StepState,
}

impl StepState {
    pub fn can_become(self, to: StepState) -> bool {
        use StepState::*;
        match self {
            Pending => matches!(to, Retrying | Waiting | Succeeded | Skipped | Failed),
            Retrying => matches!(to, Retrying | Succeeded | Skipped | Failed),
            Waiting => matches!(to, Succeeded | Skipped | Failed),
            // A failed step can be retried by an operator (resume) or skipped.
            Failed => matches!(to, Retrying | Succeeded | Skipped | Waiting),
            Succeeded => matches!(to, Compensating | Compensated),
            Compensating => matches!(to, Compensating | Compensated),
            Skipped | Compensated => false,
        }
    }

    pub fn check(self, to: StepState) -> Result<(), IllegalStepTransition> {
        if self.can_become(to) {
            Ok(())
        } else {
            Err(IllegalStepTransition { from: self, to })
        }
    }
}

/// What a history entry records. Persisted by name.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    Display,
    EnumString,
    AsRefStr,
    IntoStaticStr,
    EnumIter,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum EventKind {
    WorkflowStarted,
    LeaseTakenOver,
    StepSucceeded,
    StepRetryScheduled,
    StepFailed,
    WaitStarted,
    SignalReceived,
    WaitTimedOut,
    CompensationStarted,
    CompensationSucceeded,
    CompensationRetryScheduled,
    CompensationFailed,
    Parked,
    Resumed,
    RetryRequested,
    StepSkipped,
    CancelRequested,
    WorkflowCompleted,
    WorkflowCompensated,
    WorkflowRejected,
    WorkflowCancelled,
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::IntoEnumIterator;

    #[test]
    fn terminal_states_go_nowhere() {
        for from in WorkflowState::iter().filter(|s| s.is_terminal()) {
            for to in WorkflowState::iter() {
                assert!(from.check(to).is_err(), "{from} -> {to} must be illegal");
            }
        }
    }

    #[test]
    fn compensation_never_goes_forward_again() {
        let err = WorkflowState::Compensating
            .check(WorkflowState::Running)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "illegal workflow transition from compensating to running"
        );
        assert!(WorkflowState::Compensating
            .check(WorkflowState::Completed)
            .is_err());
        assert!(WorkflowState::Compensating
            .check(WorkflowState::Waiting)
            .is_err());
    }

    #[test]
    fn parked_workflows_resume() {
        assert!(WorkflowState::NeedsOperator
            .check(WorkflowState::Running)
            .is_ok());
        assert!(WorkflowState::NeedsOperator
            .check(WorkflowState::Compensating)
            .is_ok());
        assert!(WorkflowState::NeedsOperator
            .check(WorkflowState::NeedsOperator)
            .is_err());
    }

    #[test]
    fn step_states_are_one_way_after_success() {
        assert!(StepState::Succeeded.check(StepState::Pending).is_err());
        assert!(StepState::Succeeded.check(StepState::Retrying).is_err());
        assert!(StepState::Compensated.check(StepState::Succeeded).is_err());
        assert!(StepState::Skipped.check(StepState::Compensating).is_err());
        assert!(StepState::Pending.check(StepState::Succeeded).is_ok());
    }

    #[test]
    fn names_round_trip_through_strum_and_serde() {
        for state in WorkflowState::iter() {
            let text: &'static str = state.into();
            assert_eq!(text.parse::<WorkflowState>().unwrap(), state);
            assert_eq!(
                serde_json::to_string(&state).unwrap(),
                format!("\"{text}\"")
            );
        }
        assert_eq!(WorkflowState::NeedsOperator.as_ref(), "needs_operator");
    }
}
