//! Saga semantics as pure functions: given a definition, the current [`Progress`] and
//! what just happened, compute the next `Progress` and the history events. No I/O, so
//! every rule is unit-tested here and the runtime only executes and commits.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::action::Outcome;
use crate::definition::{Definition, Exhausted, StepKind, WaitOutcome};
use crate::state::{EventKind, IllegalStepTransition, IllegalTransition, StepState, WorkflowState};
use crate::store::{Ending, NewEvent, Progress, Reason, StepRecord};

/// Engine-level error codes, spelled once.
pub mod codes {
    pub const STEP_TIMEOUT: &str = "STEP_TIMEOUT";
    pub const UNKNOWN_ACTION: &str = "UNKNOWN_ACTION";
    pub const WAIT_TIMED_OUT: &str = "WAIT_TIMED_OUT";
    pub const REJECTED: &str = "REJECTED";
    pub const CANCELLED: &str = "CANCELLED";
}

/// Why an input does not apply to the workflow as it stands.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("cannot {action} a workflow that is {state}: {hint}")]
    NotAllowed {
        action: &'static str,
        state: WorkflowState,
        hint: String,
    },
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
    #[error(transparent)]
    IllegalStep(#[from] IllegalStepTransition),
}

pub type Result<T> = std::result::Result<T, Error>;

/// An operator's or a channel's command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    RetryNow,
    Resume,
    Skip { output: Value },
    Cancel,
    Signal { name: String, payload: Value },
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Self::RetryNow => "retry",
            Self::Resume => "resume",
            Self::Skip { .. } => "skip",
            Self::Cancel => "cancel",
            Self::Signal { .. } => "signal",
        }
    }
}

/// Mutable view used while deciding; collects events as it goes.
struct Step<'a> {
    def: &'a Definition,
    p: Progress,
    now: DateTime<Utc>,
    events: Vec<NewEvent>,
}

impl<'a> Step<'a> {
    fn new(def: &'a Definition, p: &Progress, now: DateTime<Utc>) -> Self {
        Self {
            def,
            p: p.clone(),
            now,
            events: Vec::new(),
        }
    }

    fn finish(mut self) -> (Progress, Vec<NewEvent>) {
        self.p.current_step = self.def.steps.get(self.p.cursor).map(|s| s.id.clone());
        (self.p, self.events)
    }

    fn set_state(&mut self, to: WorkflowState) -> Result<()> {
        self.p.state.check(to)?;
        if self.p.state != to {
            self.p.state_since = self.now;
        }
        self.p.state = to;
        Ok(())
    }

    fn set_step(&mut self, index: usize, to: StepState) -> Result<()> {
        let record = &mut self.p.steps[index];
        if record.state != to {
            record.state.check(to)?;
            record.state = to;
        }
        Ok(())
    }

    fn step_id(&self, index: usize) -> &crate::id::StepId {
        &self.def.steps[index].id
    }

    fn event(&mut self, event: NewEvent) {
        self.events.push(event);
    }

    /// Moves to step `index` (or completes).
    fn advance(&mut self, index: usize) -> Result<()> {
        self.p.cursor = index;
        self.p.reason = None;
        if index >= self.def.steps.len() {
            self.p.cursor = self.def.steps.len().saturating_sub(1);
            self.set_state(WorkflowState::Completed)?;
            self.p.next_run_at = None;
            self.event(NewEvent::new(EventKind::WorkflowCompleted));
            return Ok(());
        }
        if let StepKind::Wait { timeout, .. } = &self.def.steps[index].kind {
            let until =
                self.now + chrono::Duration::from_std(*timeout).unwrap_or(chrono::Duration::MAX);
            self.set_state(WorkflowState::Waiting)?;
            self.set_step(index, StepState::Waiting)?;
            self.p.next_run_at = Some(until);
            let id = self.step_id(index).clone();
            self.event(
                NewEvent::new(EventKind::WaitStarted)
                    .step(&id)
                    .data(json!({ "until": until.to_rfc3339() })),
            );
        } else {
            self.set_state(WorkflowState::Running)?;
            self.p.next_run_at = Some(self.now);
        }
        Ok(())
    }

    fn succeed(&mut self, index: usize, output: Value, note: Option<String>) -> Result<()> {
        self.set_step(index, StepState::Succeeded)?;
        let record = &mut self.p.steps[index];
        let attempt = record.attempts;
        let recorded = self.def.steps[index].record_output.then(|| output.clone());
        record.output = Some(output);
        let id = self.step_id(index).clone();
        let mut event = NewEvent::new(EventKind::StepSucceeded)
            .step(&id)
            .attempt(attempt);
        if let Some(output) = recorded {
            event = event.data(output);
        }
        if let Some(note) = note {
            event = event.message(note);
        }
        self.event(event);
        self.advance(index + 1)
    }

    fn fail_step(&mut self, index: usize, code: &str, message: &str) -> Result<()> {
        self.set_step(index, StepState::Failed)?;
        let id = self.step_id(index).clone();
        let attempt = self.p.steps[index].attempts;
        self.event(
            NewEvent::new(EventKind::StepFailed)
                .step(&id)
                .attempt(attempt)
                .error(code, message),
        );
        self.p.reason = Some(Reason {
            code: code.to_owned(),
            message: message.to_owned(),
        });
        match self.def.steps[index].on_exhausted {
            Exhausted::Compensate => self.begin_compensation(Ending::Compensated),
            Exhausted::Park => self.park(),
        }
    }

    fn park(&mut self) -> Result<()> {
        self.set_state(WorkflowState::NeedsOperator)?;
        self.p.next_run_at = None;
        let mut event = NewEvent::new(EventKind::Parked);
        if let Some(r) = &self.p.reason {
            event = event.error(&r.code.clone(), &r.message.clone());
        }
        self.event(event);
        Ok(())
    }

    /// The highest succeeded compensatable step strictly below `below`.
    fn next_to_compensate(&self, below: usize) -> Option<usize> {
        (0..below).rev().find(|&i| {
            self.p.steps[i].state == StepState::Succeeded
                && matches!(self.def.steps[i].kind, StepKind::Compensatable { .. })
        })
    }

    fn begin_compensation(&mut self, ending: Ending) -> Result<()> {
        self.p.ending = Some(ending);
        self.compensate_from(self.def.steps.len())
    }

    fn compensate_from(&mut self, below: usize) -> Result<()> {
        let ending = self.p.ending.unwrap_or(Ending::Compensated);
        match self.next_to_compensate(below) {
            Some(index) => {
                self.set_state(WorkflowState::Compensating)?;
                self.p.cursor = index;
                self.set_step(index, StepState::Compensating)?;
                self.p.next_run_at = Some(self.now);
                let id = self.step_id(index).clone();
                self.event(NewEvent::new(EventKind::CompensationStarted).step(&id));
            }
            None => {
                self.set_state(ending.state())?;
                self.p.next_run_at = None;
                let kind = match ending {
                    Ending::Compensated => EventKind::WorkflowCompensated,
                    Ending::Rejected => EventKind::WorkflowRejected,
                    Ending::Cancelled => EventKind::WorkflowCancelled,
                };
                let mut event = NewEvent::new(kind);
                if let Some(r) = &self.p.reason {
                    event = event.error(&r.code.clone(), &r.message.clone());
                }
                self.event(event);
            }
        }
        Ok(())
    }

    fn resolve_wait(
        &mut self,
        index: usize,
        outcome: WaitOutcome,
        output: Value,
        code: &str,
        message: &str,
    ) -> Result<()> {
        match outcome {
            WaitOutcome::Continue => self.succeed(index, output, None),
            WaitOutcome::Reject => {
                self.set_step(index, StepState::Failed)?;
                self.p.steps[index].output = Some(output);
                self.p.reason = Some(Reason {
                    code: code.to_owned(),
                    message: message.to_owned(),
                });
                self.begin_compensation(Ending::Rejected)
            }
            WaitOutcome::Fail => self.fail_step(index, code, message),
            WaitOutcome::Escalate => {
                self.p.reason = Some(Reason {
                    code: code.to_owned(),
                    message: message.to_owned(),
                });
                self.park()
            }
        }
    }
}

fn not_allowed(action: &'static str, state: WorkflowState, hint: impl Into<String>) -> Error {
    Error::NotAllowed {
        action,
        state,
        hint: hint.into(),
    }
}

/// The progress of a freshly started workflow.
pub fn initial(def: &Definition, now: DateTime<Utc>) -> (Progress, Vec<NewEvent>) {
    let p = Progress {
        state: WorkflowState::Running,
        cursor: 0,
        current_step: None,
        ending: None,
        steps: vec![StepRecord::pending(); def.steps.len()],
        reason: None,
        next_run_at: Some(now),
        state_since: now,
    };
    let mut s = Step::new(def, &p, now);
    s.event(NewEvent::new(EventKind::WorkflowStarted).data(json!({
        "definition": def.name.as_str(),
        "version": def.version,
    })));
    s.advance(0)
        .expect("a new workflow can always enter its first step");
    s.finish()
}

/// What the worker should execute for a claimed workflow.
#[derive(Debug, Clone, PartialEq)]
pub enum Work {
    /// Run the forward action of step `index`.
    Forward { index: usize },
    /// Run the compensation of step `index`.
    Compensate { index: usize },
    /// A wait step's timeout has passed.
    WaitTimeout { index: usize },
    /// Nothing is due (claimed early or already handled).
    Nothing,
}

pub fn work(def: &Definition, p: &Progress, now: DateTime<Utc>) -> Work {
    let due = p.next_run_at.is_some_and(|t| t <= now);
    if !due || p.cursor >= def.steps.len() {
        return Work::Nothing;
    }
    match p.state {
        WorkflowState::Running => Work::Forward { index: p.cursor },
        WorkflowState::Compensating => Work::Compensate { index: p.cursor },
        WorkflowState::Waiting => Work::WaitTimeout { index: p.cursor },
        _ => Work::Nothing,
    }
}

/// Records the outcome of one forward attempt of the step at the cursor.
pub fn on_forward(
    def: &Definition,
    p: &Progress,
    now: DateTime<Utc>,
    outcome: Outcome,
) -> Result<(Progress, Vec<NewEvent>)> {
    let mut s = Step::new(def, p, now);
    let index = p.cursor;
    s.p.steps[index].attempts += 1;
    let attempt = s.p.steps[index].attempts;
    match outcome {
        Outcome::Done { output, note, .. } => s.succeed(index, output, note)?,
        Outcome::Retry {
            code,
            message,
            after,
        } => {
            let policy = &def.steps[index].retry;
            if policy.allows_another(attempt) {
                let delay = policy.delay_after(attempt).max(after.unwrap_or_default());
                let at = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
                s.set_step(index, StepState::Retrying)?;
                s.set_state(WorkflowState::Running)?;
                s.p.next_run_at = Some(at);
                let id = s.step_id(index).clone();
                s.event(
                    NewEvent::new(EventKind::StepRetryScheduled)
                        .step(&id)
                        .attempt(attempt)
                        .error(&code, &message)
                        .data(json!({ "next_attempt_at": at.to_rfc3339() })),
                );
            } else {
                s.fail_step(
                    index,
                    &code,
                    &format!("{message} (after {attempt} attempts)"),
                )?;
            }
        }
        Outcome::Fail { code, message } => s.fail_step(index, &code, &message)?,
    }
    Ok(s.finish())
}

/// Records the outcome of one compensation attempt of the step at the cursor.
pub fn on_compensation(
    def: &Definition,
    p: &Progress,
    now: DateTime<Utc>,
    outcome: Outcome,
) -> Result<(Progress, Vec<NewEvent>)> {
    let mut s = Step::new(def, p, now);
    let index = p.cursor;
    s.p.steps[index].compensation_attempts += 1;
    let attempt = s.p.steps[index].compensation_attempts;
    let id = s.step_id(index).clone();
    let park = |s: &mut Step, code: &str, message: &str| -> Result<()> {
        s.event(
            NewEvent::new(EventKind::CompensationFailed)
                .step(&id)
                .attempt(attempt)
                .error(code, message),
        );
        s.p.reason = Some(Reason {
            code: code.to_owned(),
            message: format!("compensation of `{id}` failed: {message}"),
        });
        s.park()
    };
    match outcome {
        Outcome::Done { note, .. } => {
            s.set_step(index, StepState::Compensated)?;
            let mut event = NewEvent::new(EventKind::CompensationSucceeded)
                .step(&id)
                .attempt(attempt);
            if let Some(note) = note {
                event = event.message(note);
            }
            s.event(event);
            s.compensate_from(index)?;
        }
        Outcome::Retry {
            code,
            message,
            after,
        } => {
            let policy = &def.steps[index].retry;
            if policy.allows_another(attempt) {
                let delay = policy.delay_after(attempt).max(after.unwrap_or_default());
                let at = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
                s.set_state(WorkflowState::Compensating)?;
                s.p.next_run_at = Some(at);
                s.event(
                    NewEvent::new(EventKind::CompensationRetryScheduled)
                        .step(&id)
                        .attempt(attempt)
                        .error(&code, &message)
                        .data(json!({ "next_attempt_at": at.to_rfc3339() })),
                );
            } else {
                park(
                    &mut s,
                    &code,
                    &format!("{message} (after {attempt} attempts)"),
                )?;
            }
        }
        Outcome::Fail { code, message } => park(&mut s, &code, &message)?,
    }
    Ok(s.finish())
}

/// A wait step's timeout passed.
pub fn on_wait_timeout(
    def: &Definition,
    p: &Progress,
    now: DateTime<Utc>,
) -> Result<(Progress, Vec<NewEvent>)> {
    let index = p.cursor;
    let StepKind::Wait {
        on_timeout,
        timeout,
        ..
    } = &def.steps[index].kind
    else {
        return Err(not_allowed(
            "time out",
            p.state,
            "the current step is not a wait",
        ));
    };
    let mut s = Step::new(def, p, now);
    let id = s.step_id(index).clone();
    s.event(NewEvent::new(EventKind::WaitTimedOut).step(&id));
    let message = format!(
        "no decision within {}",
        humantime::format_duration(*timeout)
    );
    s.resolve_wait(
        index,
        *on_timeout,
        json!({ "timed_out": true }),
        codes::WAIT_TIMED_OUT,
        &message,
    )?;
    Ok(s.finish())
}

/// Applies an operator's or channel's command. `actor` and `reason` go in the history.
pub fn on_command(
    def: &Definition,
    p: &Progress,
    now: DateTime<Utc>,
    command: Command,
    actor: &str,
    reason: &str,
) -> Result<(Progress, Vec<NewEvent>)> {
    let mut s = Step::new(def, p, now);
    let index = p.cursor;
    let state = p.state;
    let name = command.name();
    let id = def.steps.get(index).map(|st| st.id.clone());
    let who = |kind: EventKind| {
        let mut e = NewEvent::new(kind).actor(actor, reason);
        if let Some(id) = &id {
            e = e.step(id);
        }
        e
    };
    match command {
        Command::RetryNow => {
            let scheduled_later = p.next_run_at.is_some_and(|t| t > now);
            if !matches!(state, WorkflowState::Running | WorkflowState::Compensating)
                || !scheduled_later
            {
                return Err(not_allowed(name, state, "only a workflow waiting for its next attempt can be retried now; use resume for needs_operator"));
            }
            s.p.next_run_at = Some(now);
            s.event(who(EventKind::RetryRequested));
        }
        Command::Resume => {
            if state != WorkflowState::NeedsOperator {
                return Err(not_allowed(
                    name,
                    state,
                    "only needs_operator workflows are resumed",
                ));
            }
            s.event(who(EventKind::Resumed));
            s.p.reason = None;
            if s.p.ending.is_some() {
                s.set_state(WorkflowState::Compensating)?;
                s.p.steps[index].compensation_attempts = 0;
                s.p.next_run_at = Some(now);
            } else if matches!(def.steps[index].kind, StepKind::Wait { .. })
                && p.steps[index].state == StepState::Waiting
            {
                // An escalated wait starts a fresh wait period.
                s.p.steps[index].state = StepState::Pending;
                s.advance(index)?;
            } else {
                s.set_state(WorkflowState::Running)?;
                s.set_step(index, StepState::Retrying)?;
                s.p.steps[index].attempts = 0;
                s.p.next_run_at = Some(now);
            }
        }
        Command::Skip { output } => {
            if state.is_terminal() {
                return Err(not_allowed(name, state, "the workflow has ended"));
            }
            s.event(who(EventKind::StepSkipped).data(output.clone()));
            if s.p.ending.is_some() {
                // The operator undid this step by hand; carry on compensating.
                s.set_step(index, StepState::Compensated)?;
                s.p.reason = None;
                s.set_state(WorkflowState::Compensating)?;
                s.compensate_from(index)?;
            } else {
                s.set_step(index, StepState::Skipped)?;
                s.p.steps[index].output = Some(output);
                s.advance(index + 1)?;
            }
        }
        Command::Cancel => {
            if state.is_terminal() || state == WorkflowState::Compensating || s.p.ending.is_some() {
                return Err(not_allowed(
                    name,
                    state,
                    "the workflow has ended or is already being undone",
                ));
            }
            if let Some(pivot) = def.pivot_index() {
                if matches!(
                    p.steps[pivot].state,
                    StepState::Succeeded | StepState::Skipped
                ) {
                    return Err(not_allowed(
                        name,
                        state,
                        format!("the pivot `{}` is done and the workflow only moves forward; resume or skip instead", def.steps[pivot].id),
                    ));
                }
            }
            s.event(who(EventKind::CancelRequested));
            s.p.reason = Some(Reason {
                code: codes::CANCELLED.to_owned(),
                message: format!("cancelled by {actor}: {reason}"),
            });
            if matches!(
                p.steps[index].state,
                StepState::Retrying | StepState::Waiting
            ) {
                s.set_step(index, StepState::Failed)?;
            }
            s.begin_compensation(Ending::Cancelled)?;
        }
        Command::Signal {
            name: signal,
            payload,
        } => {
            let StepKind::Wait { signals, .. } = &def.steps[index].kind else {
                return Err(not_allowed(
                    name,
                    state,
                    "the current step does not wait for a signal",
                ));
            };
            let waiting = p.steps[index].state == StepState::Waiting
                && matches!(state, WorkflowState::Waiting | WorkflowState::NeedsOperator)
                && s.p.ending.is_none();
            if !waiting {
                return Err(not_allowed(
                    name,
                    state,
                    "the workflow is not waiting for a signal",
                ));
            }
            let Some(outcome) = signals.get(&signal).copied() else {
                let accepted: Vec<&str> = signals.keys().map(String::as_str).collect();
                return Err(not_allowed(
                    name,
                    state,
                    format!(
                        "unknown signal `{signal}`; this step accepts: {}",
                        accepted.join(", ")
                    ),
                ));
            };
            s.event(
                who(EventKind::SignalReceived)
                    .data(json!({ "signal": signal, "payload": payload })),
            );
            let message = payload
                .get("reason")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("signal `{signal}` from {actor}"));
            s.resolve_wait(index, outcome, payload, codes::REJECTED, &message)?;
        }
    }
    Ok(s.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definition::parse;
    use crate::id::ActionName;
    use std::path::Path;

    fn def() -> Definition {
        parse(
            Path::new("t.toml"),
            r#"
            name = "t"
            version = 1
            [defaults.retry]
            max_attempts = 2
            initial_delay = "1s"
            jitter = 0.0
            [[steps]]
            id = "a"
            kind = "compensatable"
            action = "x"
            compensation = "y"
            [[steps]]
            id = "b"
            kind = "compensatable"
            action = "x"
            compensation = "y"
            [[steps]]
            id = "decide"
            kind = "wait"
            timeout = "1h"
            on_timeout = "escalate"
            signals = { approve = "continue", reject = "reject" }
            [[steps]]
            id = "pivot"
            kind = "pivot"
            action = "x"
            [[steps]]
            id = "after"
            kind = "retriable"
            action = "x"
            "#,
            &|_: &ActionName| true,
            &Vec::new,
        )
        .unwrap()
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .into()
    }

    fn ok() -> Outcome {
        Outcome::done(json!({"ok": true}))
    }

    fn kinds(events: &[NewEvent]) -> Vec<EventKind> {
        events.iter().filter_map(|e| e.kind).collect()
    }

    #[test]
    fn happy_path_runs_forward_through_wait_to_completion() {
        let d = def();
        let (p, ev) = initial(&d, now());
        assert_eq!(kinds(&ev), [EventKind::WorkflowStarted]);
        let (p, _) = on_forward(&d, &p, now(), ok()).unwrap();
        let (p, ev) = on_forward(&d, &p, now(), ok()).unwrap();
        assert_eq!(p.state, WorkflowState::Waiting);
        assert_eq!(
            kinds(&ev),
            [EventKind::StepSucceeded, EventKind::WaitStarted]
        );
        let cmd = Command::Signal {
            name: "approve".into(),
            payload: json!({}),
        };
        let (p, _) = on_command(&d, &p, now(), cmd, "ops", "checked").unwrap();
        assert_eq!(p.state, WorkflowState::Running);
        let (p, _) = on_forward(&d, &p, now(), ok()).unwrap();
        let (p, ev) = on_forward(&d, &p, now(), ok()).unwrap();
        assert_eq!(p.state, WorkflowState::Completed);
        assert_eq!(
            kinds(&ev),
            [EventKind::StepSucceeded, EventKind::WorkflowCompleted]
        );
        assert_eq!(p.next_run_at, None);
    }

    #[test]
    fn retries_are_scheduled_then_exhaustion_compensates_in_reverse() {
        let d = def();
        let (p, _) = initial(&d, now());
        let (p, _) = on_forward(&d, &p, now(), ok()).unwrap();
        let (p, ev) = on_forward(&d, &p, now(), Outcome::retry("E", "flaky")).unwrap();
        assert_eq!(kinds(&ev), [EventKind::StepRetryScheduled]);
        assert_eq!(p.next_run_at, Some(now() + chrono::Duration::seconds(1)));
        let (p, ev) = on_forward(&d, &p, now(), Outcome::retry("E", "flaky")).unwrap();
        assert_eq!(
            kinds(&ev),
            [EventKind::StepFailed, EventKind::CompensationStarted]
        );
        assert_eq!(p.state, WorkflowState::Compensating);
        assert_eq!(p.cursor, 0, "step b failed, so only a is undone");
        let (p, ev) = on_compensation(&d, &p, now(), ok()).unwrap();
        assert_eq!(
            kinds(&ev),
            [
                EventKind::CompensationSucceeded,
                EventKind::WorkflowCompensated
            ]
        );
        assert_eq!(p.state, WorkflowState::Compensated);
        assert_eq!(p.reason.as_ref().unwrap().code, "E");
    }

    #[test]
    fn failure_after_the_pivot_parks_and_resume_retries() {
        let d = def();
        let (mut p, _) = initial(&d, now());
        for _ in 0..2 {
            p = on_forward(&d, &p, now(), ok()).unwrap().0;
        }
        p = on_command(
            &d,
            &p,
            now(),
            Command::Signal {
                name: "approve".into(),
                payload: json!({}),
            },
            "ops",
            "ok",
        )
        .unwrap()
        .0;
        p = on_forward(&d, &p, now(), ok()).unwrap().0;
        let (p, ev) = on_forward(&d, &p, now(), Outcome::fail("P", "partner said no")).unwrap();
        assert_eq!(kinds(&ev), [EventKind::StepFailed, EventKind::Parked]);
        assert_eq!(p.state, WorkflowState::NeedsOperator);
        let err = on_command(&d, &p, now(), Command::Cancel, "ops", "x").unwrap_err();
        assert!(err.to_string().contains("only moves forward"), "{err}");
        let (p, _) = on_command(&d, &p, now(), Command::Resume, "ops", "partner fixed").unwrap();
        assert_eq!(p.state, WorkflowState::Running);
        assert_eq!(p.steps[4].attempts, 0);
        let (p, _) = on_forward(&d, &p, now(), ok()).unwrap();
        assert_eq!(p.state, WorkflowState::Completed);
    }

    #[test]
    fn reject_signal_undoes_and_ends_rejected() {
        let d = def();
        let (mut p, _) = initial(&d, now());
        for _ in 0..2 {
            p = on_forward(&d, &p, now(), ok()).unwrap().0;
        }
        let cmd = Command::Signal {
            name: "reject".into(),
            payload: json!({"reason": "fraud check"}),
        };
        let (p, _) = on_command(&d, &p, now(), cmd, "ops", "no").unwrap();
        assert_eq!(p.state, WorkflowState::Compensating);
        assert_eq!(p.cursor, 1);
        let (p, _) = on_compensation(&d, &p, now(), ok()).unwrap();
        let (p, _) = on_compensation(&d, &p, now(), ok()).unwrap();
        assert_eq!(p.state, WorkflowState::Rejected);
        assert_eq!(p.reason.unwrap().message, "fraud check");
    }

    #[test]
    fn wait_timeout_escalates_and_a_late_signal_still_counts() {
        let d = def();
        let (mut p, _) = initial(&d, now());
        for _ in 0..2 {
            p = on_forward(&d, &p, now(), ok()).unwrap().0;
        }
        let later = now() + chrono::Duration::hours(2);
        assert_eq!(work(&d, &p, later), Work::WaitTimeout { index: 2 });
        let (p, _) = on_wait_timeout(&d, &p, later).unwrap();
        assert_eq!(p.state, WorkflowState::NeedsOperator);
        let cmd = Command::Signal {
            name: "approve".into(),
            payload: json!({}),
        };
        let (p, _) = on_command(&d, &p, later, cmd, "ops", "late").unwrap();
        assert_eq!(p.state, WorkflowState::Running);
    }

    #[test]
    fn unknown_signals_and_wrong_states_are_explained() {
        let d = def();
        let (p, _) = initial(&d, now());
        let err = on_command(
            &d,
            &p,
            now(),
            Command::Signal {
                name: "approve".into(),
                payload: json!({}),
            },
            "o",
            "r",
        )
        .unwrap_err();
        assert!(matches!(err, Error::NotAllowed { .. }));
        let err = on_command(&d, &p, now(), Command::Resume, "o", "r").unwrap_err();
        assert!(err.to_string().contains("only needs_operator"), "{err}");
        let (mut p, _) = initial(&d, now());
        for _ in 0..2 {
            p = on_forward(&d, &p, now(), ok()).unwrap().0;
        }
        let err = on_command(
            &d,
            &p,
            now(),
            Command::Signal {
                name: "maybe".into(),
                payload: json!({}),
            },
            "o",
            "r",
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("accepts: approve, reject"),
            "{err}"
        );
    }

    #[test]
    fn skip_records_the_output_and_moves_on() {
        let d = def();
        let (p, _) = initial(&d, now());
        let (p, ev) = on_command(
            &d,
            &p,
            now(),
            Command::Skip {
                output: json!({"manual": 1}),
            },
            "ops",
            "done by hand",
        )
        .unwrap();
        assert_eq!(kinds(&ev), [EventKind::StepSkipped]);
        assert_eq!(ev[0].actor.as_deref(), Some("ops"));
        assert_eq!(p.steps[0].state, StepState::Skipped);
        assert_eq!(p.steps[0].output, Some(json!({"manual": 1})));
        assert_eq!(p.cursor, 1);
    }

    #[test]
    fn cancel_before_the_pivot_compensates_and_ends_cancelled() {
        let d = def();
        let (p, _) = initial(&d, now());
        let (p, _) = on_forward(&d, &p, now(), ok()).unwrap();
        let (p, _) = on_forward(&d, &p, now(), Outcome::retry("E", "x")).unwrap();
        let (p, ev) = on_command(
            &d,
            &p,
            now(),
            Command::Cancel,
            "ops",
            "customer changed mind",
        )
        .unwrap();
        assert_eq!(
            kinds(&ev),
            [EventKind::CancelRequested, EventKind::CompensationStarted]
        );
        let (p, _) = on_compensation(&d, &p, now(), ok()).unwrap();
        assert_eq!(p.state, WorkflowState::Cancelled);
    }

    #[test]
    fn failed_compensation_parks_and_resume_continues_it() {
        let d = def();
        let (p, _) = initial(&d, now());
        let (p, _) = on_forward(&d, &p, now(), ok()).unwrap();
        let (p, _) = on_forward(&d, &p, now(), Outcome::fail("E", "x")).unwrap();
        let (p, ev) = on_compensation(&d, &p, now(), Outcome::fail("C", "undo refused")).unwrap();
        assert_eq!(
            kinds(&ev),
            [EventKind::CompensationFailed, EventKind::Parked]
        );
        assert_eq!(p.state, WorkflowState::NeedsOperator);
        let (p, _) = on_command(&d, &p, now(), Command::Resume, "ops", "fixed").unwrap();
        assert_eq!(p.state, WorkflowState::Compensating);
        let (p, _) = on_compensation(&d, &p, now(), ok()).unwrap();
        assert_eq!(p.state, WorkflowState::Compensated);
    }

    #[test]
    fn outputs_reach_the_history_only_when_the_step_asks() {
        let mut d = def();
        let (p, _) = initial(&d, now());
        let (_, ev) = on_forward(&d, &p, now(), ok()).unwrap();
        assert_eq!(ev[0].data, None);
        d.steps[0].record_output = true;
        let (_, ev) = on_forward(&d, &p, now(), ok()).unwrap();
        assert_eq!(ev[0].data, Some(json!({"ok": true})));
    }

    #[test]
    fn retry_now_only_applies_to_scheduled_retries() {
        let d = def();
        let (p, _) = initial(&d, now());
        assert!(on_command(&d, &p, now(), Command::RetryNow, "o", "r").is_err());
        let (p, _) = on_forward(&d, &p, now(), Outcome::retry("E", "x")).unwrap();
        let (p, _) = on_command(&d, &p, now(), Command::RetryNow, "o", "r").unwrap();
        assert_eq!(p.next_run_at, Some(now()));
    }
}
