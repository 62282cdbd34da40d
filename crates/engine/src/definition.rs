//! Workflow definitions: the `workflows/*.toml` files, validated at load.
//!
//! A definition is parsed from a permissive file shape ([`File`]) into a validated
//! [`Definition`] whose step kinds carry exactly the data they need, so a compensatable
//! step without a compensation cannot exist past this module.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use strum::{AsRefStr, Display, EnumString};

use crate::duration;
use crate::id::{ActionName, DefinitionName, StepId};
use crate::retry::RetryPolicy;

/// A validated workflow definition. Its serialised JSON is what the store pins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Definition {
    pub name: DefinitionName,
    pub version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub id: StepId,
    pub kind: StepKind,
    pub retry: RetryPolicy,
    /// Per-attempt timeout of the action (and of its compensation).
    #[serde(with = "duration")]
    pub timeout: Duration,
    pub on_exhausted: Exhausted,
    /// Copy the step's output into its history entry. Off by default: outputs may hold
    /// personal data, and history is append-only, so only outputs without it (a points
    /// balance, a forfeited tier) belong there.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub record_output: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepKind {
    Compensatable {
        action: ActionName,
        compensation: ActionName,
    },
    Pivot {
        action: ActionName,
    },
    Retriable {
        action: ActionName,
    },
    Wait {
        #[serde(with = "duration")]
        timeout: Duration,
        on_timeout: WaitOutcome,
        signals: BTreeMap<String, WaitOutcome>,
    },
}

impl StepKind {
    pub fn action(&self) -> Option<&ActionName> {
        match self {
            Self::Compensatable { action, .. }
            | Self::Pivot { action }
            | Self::Retriable { action } => Some(action),
            Self::Wait { .. } => None,
        }
    }

    pub fn compensation(&self) -> Option<&ActionName> {
        match self {
            Self::Compensatable { compensation, .. } => Some(compensation),
            _ => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Compensatable { .. } => "compensatable",
            Self::Pivot { .. } => "pivot",
            Self::Retriable { .. } => "retriable",
            Self::Wait { .. } => "wait",
        }
    }
}

/// What a signal or a wait timeout leads to.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Display, EnumString, AsRefStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum WaitOutcome {
    /// The wait step succeeds with the signal's payload as its output.
    Continue,
    /// Undo what was done and end `rejected`.
    Reject,
    /// Treat as a permanent failure of the step (compensate or park by position).
    Fail,
    /// Hand the workflow to an operator (`needs_operator`).
    Escalate,
}

/// What happens when a step's retries run out or it fails permanently.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Display, EnumString, AsRefStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Exhausted {
    /// Undo completed compensatable steps in reverse; only before the pivot.
    Compensate,
    /// Stop in `needs_operator` until someone resumes, skips or cancels.
    Park,
}

impl Definition {
    pub fn pivot_index(&self) -> Option<usize> {
        self.steps
            .iter()
            .position(|s| matches!(s.kind, StepKind::Pivot { .. }))
    }

    pub fn step_index(&self, id: &StepId) -> Option<usize> {
        self.steps.iter().position(|s| &s.id == id)
    }

    /// The canonical JSON that is hashed and pinned by running workflows.
    pub fn canonical_json(&self) -> String {
        serde_json::to_string(self).expect("a definition always serialises")
    }

    /// SHA-256 of the canonical JSON, hex. Whitespace and comments in the file do not
    /// change it; any change of meaning does.
    pub fn content_hash(&self) -> String {
        hex::encode(Sha256::digest(self.canonical_json().as_bytes()))
    }

    /// Every action this definition calls, for registry checks.
    pub fn actions(&self) -> impl Iterator<Item = &ActionName> {
        self.steps
            .iter()
            .flat_map(|s| s.kind.action().into_iter().chain(s.kind.compensation()))
    }
}

/// A definition file's problem, naming the file, the step and what to fix.
#[derive(Debug, thiserror::Error)]
pub struct Error {
    pub file: PathBuf,
    pub step: Option<String>,
    pub problem: Problem,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(step) = &self.step {
            write!(f, ": step `{step}`")?;
        }
        write!(f, ": {}", self.problem)
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Problem {
    #[error("cannot read the file: {0}")]
    Read(String),
    #[error("{0}")]
    Syntax(String),
    #[error("unknown action `{action}`; registered actions are: {known}")]
    UnknownAction { action: String, known: String },
    #[error("duplicate step id; step ids must be unique within a definition")]
    DuplicateStep,
    #[error("kind = \"compensatable\" needs `compensation = \"<action>\"` naming the undo action")]
    MissingCompensation,
    #[error("`compensation` is only allowed on compensatable steps (this one is {0})")]
    UnexpectedCompensation(&'static str),
    #[error("second pivot; a definition has at most one point of no return (the first is `{0}`)")]
    SecondPivot(String),
    #[error("compensatable step after the pivot `{0}`; after the pivot a workflow only moves forward, so mark it retriable")]
    CompensatableAfterPivot(String),
    #[error("on_exhausted = \"compensate\" after the pivot `{0}`; use \"park\"")]
    CompensateAfterPivot(String),
    #[error("{0}")]
    BadRetry(String),
    #[error("wait step without `timeout`; every wait needs a timeout and an `on_timeout`")]
    WaitWithoutTimeout,
    #[error(
        "wait step without `signals`; list the signals it accepts, e.g. approve = \"continue\""
    )]
    WaitWithoutSignals,
    #[error("`{0}` is only allowed on wait steps")]
    WaitFieldOnActionStep(&'static str),
    #[error("{0} step needs `action = \"<action>\"`")]
    MissingAction(&'static str),
    #[error("wait steps take no `action`; they end on a signal or their timeout")]
    ActionOnWait,
    #[error("timeout must be longer than zero")]
    ZeroTimeout,
    #[error("a definition needs at least one step")]
    NoSteps,
    #[error("definition `{0}` is defined twice (also in {1})")]
    DuplicateDefinition(String, String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: DefinitionName,
    version: u32,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    defaults: FileDefaults,
    #[serde(default)]
    steps: Vec<FileStep>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDefaults {
    #[serde(default)]
    retry: Option<RetryPolicy>,
    #[serde(default, with = "duration::option")]
    timeout: Option<Duration>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum FileKind {
    Compensatable,
    Pivot,
    Retriable,
    Wait,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileStep {
    id: StepId,
    kind: FileKind,
    #[serde(default)]
    action: Option<ActionName>,
    #[serde(default)]
    compensation: Option<ActionName>,
    #[serde(default)]
    retry: Option<RetryPolicy>,
    #[serde(default, with = "duration::option")]
    timeout: Option<Duration>,
    #[serde(default)]
    on_exhausted: Option<Exhausted>,
    #[serde(default)]
    on_timeout: Option<WaitOutcome>,
    #[serde(default)]
    signals: Option<BTreeMap<String, WaitOutcome>>,
    #[serde(default)]
    record_output: bool,
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Parses and validates one definition. `known_action` says whether an action name is
/// registered in this binary.
pub fn parse(
    file: &Path,
    text: &str,
    known_action: &dyn Fn(&ActionName) -> bool,
    known_list: &dyn Fn() -> Vec<String>,
) -> Result<Definition, Error> {
    let err = |step: Option<&str>, problem| Error {
        file: file.to_path_buf(),
        step: step.map(str::to_owned),
        problem,
    };
    let raw: File = toml::from_str(text)
        .map_err(|e| err(None, Problem::Syntax(e.to_string().trim().to_owned())))?;
    if raw.steps.is_empty() {
        return Err(err(None, Problem::NoSteps));
    }
    let default_retry = raw.defaults.retry.clone().unwrap_or_default();
    let default_timeout = raw.defaults.timeout.unwrap_or(DEFAULT_TIMEOUT);
    if let Some(problem) = default_retry.problem() {
        return Err(err(None, Problem::BadRetry(format!("defaults: {problem}"))));
    }

    let mut seen = HashSet::new();
    let mut pivot: Option<String> = None;
    let mut steps = Vec::with_capacity(raw.steps.len());
    for s in raw.steps {
        let name = s.id.to_string();
        let at = |problem| err(Some(&name), problem);
        if !seen.insert(s.id.clone()) {
            return Err(at(Problem::DuplicateStep));
        }
        let retry = s.retry.unwrap_or_else(|| default_retry.clone());
        if let Some(problem) = retry.problem() {
            return Err(at(Problem::BadRetry(problem)));
        }
        let timeout = s.timeout.unwrap_or(default_timeout);
        if timeout.is_zero() {
            return Err(at(Problem::ZeroTimeout));
        }
        let check_action = |action: &ActionName| {
            if known_action(action) {
                Ok(())
            } else {
                Err(at(Problem::UnknownAction {
                    action: action.to_string(),
                    known: known_list().join(", "),
                }))
            }
        };
        let kind_name = match s.kind {
            FileKind::Compensatable => "compensatable",
            FileKind::Pivot => "pivot",
            FileKind::Retriable => "retriable",
            FileKind::Wait => "wait",
        };
        if !matches!(s.kind, FileKind::Wait) {
            if s.on_timeout.is_some() {
                return Err(at(Problem::WaitFieldOnActionStep("on_timeout")));
            }
            if s.signals.is_some() {
                return Err(at(Problem::WaitFieldOnActionStep("signals")));
            }
        }
        if !matches!(s.kind, FileKind::Compensatable) && s.compensation.is_some() {
            return Err(at(Problem::UnexpectedCompensation(kind_name)));
        }
        let kind = match s.kind {
            FileKind::Wait => {
                if s.action.is_some() {
                    return Err(at(Problem::ActionOnWait));
                }
                let (Some(wait), Some(on_timeout)) = (s.timeout, s.on_timeout) else {
                    return Err(at(Problem::WaitWithoutTimeout));
                };
                if wait.is_zero() {
                    return Err(at(Problem::ZeroTimeout));
                }
                let signals = s.signals.unwrap_or_default();
                if signals.is_empty() {
                    return Err(at(Problem::WaitWithoutSignals));
                }
                StepKind::Wait {
                    timeout: wait,
                    on_timeout,
                    signals,
                }
            }
            other => {
                let action = s
                    .action
                    .ok_or_else(|| at(Problem::MissingAction(kind_name)))?;
                check_action(&action)?;
                match other {
                    FileKind::Compensatable => {
                        if let Some(p) = &pivot {
                            return Err(at(Problem::CompensatableAfterPivot(p.clone())));
                        }
                        let compensation = s
                            .compensation
                            .ok_or_else(|| at(Problem::MissingCompensation))?;
                        check_action(&compensation)?;
                        StepKind::Compensatable {
                            action,
                            compensation,
                        }
                    }
                    FileKind::Pivot => {
                        if let Some(p) = &pivot {
                            return Err(at(Problem::SecondPivot(p.clone())));
                        }
                        StepKind::Pivot { action }
                    }
                    _ => StepKind::Retriable { action },
                }
            }
        };
        let is_pivot = matches!(kind, StepKind::Pivot { .. });
        let at_or_after_pivot = pivot.is_some() || is_pivot;
        let on_exhausted = match s.on_exhausted {
            Some(Exhausted::Compensate) if at_or_after_pivot => {
                return Err(at(Problem::CompensateAfterPivot(
                    pivot.clone().unwrap_or_else(|| name.clone()),
                )))
            }
            Some(choice) => choice,
            None if at_or_after_pivot => Exhausted::Park,
            None => Exhausted::Compensate,
        };
        if is_pivot {
            pivot = Some(name.clone());
        }
        steps.push(Step {
            id: s.id,
            kind,
            retry,
            timeout,
            on_exhausted,
            record_output: s.record_output,
        });
    }
    Ok(Definition {
        name: raw.name,
        version: raw.version,
        description: raw.description,
        steps,
    })
}

/// Loads every `*.toml` in a directory. Files are read in name order so errors are
/// reported deterministically.
pub fn load_dir(
    dir: &Path,
    known_action: &dyn Fn(&ActionName) -> bool,
    known_list: &dyn Fn() -> Vec<String>,
) -> Result<Vec<Definition>, Error> {
    let read_err = |e: std::io::Error| Error {
        file: dir.to_path_buf(),
        step: None,
        problem: Problem::Read(e.to_string()),
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(read_err)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    paths.sort();
    let mut defs: Vec<(PathBuf, Definition)> = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).map_err(|e| Error {
            file: path.clone(),
            step: None,
            problem: Problem::Read(e.to_string()),
        })?;
        let def = parse(&path, &text, known_action, known_list)?;
        if let Some((other, _)) = defs.iter().find(|(_, d)| d.name == def.name) {
            return Err(Error {
                file: path.clone(),
                step: None,
                problem: Problem::DuplicateDefinition(
                    def.name.to_string(),
                    other.display().to_string(),
                ),
            });
        }
        defs.push((path, def));
    }
    Ok(defs.into_iter().map(|(_, d)| d).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(a: &ActionName) -> bool {
        ["a", "b", "undo_a", "undo_b"].contains(&a.as_str())
    }
    fn list() -> Vec<String> {
        vec!["a".into(), "b".into(), "undo_a".into(), "undo_b".into()]
    }
    fn load(text: &str) -> Result<Definition, Error> {
        parse(Path::new("workflows/t.toml"), text, &known, &list)
    }
    fn problem(text: &str) -> (Option<String>, Problem, String) {
        let e = load(text).unwrap_err();
        let shown = e.to_string();
        (e.step, e.problem, shown)
    }

    const GOOD: &str = r#"
        name = "t"
        version = 3
        [defaults]
        timeout = "5s"
        [[steps]]
        id = "one"
        kind = "compensatable"
        action = "a"
        compensation = "undo_a"
        [[steps]]
        id = "decide"
        kind = "wait"
        timeout = "72h"
        on_timeout = "escalate"
        signals = { approve = "continue", reject = "reject" }
        [[steps]]
        id = "close"
        kind = "pivot"
        action = "b"
        [steps.retry]
        max_attempts = 3
        initial_delay = "100ms"
        [[steps]]
        id = "notify"
        kind = "retriable"
        action = "a"
    "#;

    #[test]
    fn a_good_definition_loads_with_defaults_applied() {
        let d = load(GOOD).unwrap();
        assert_eq!(d.version, 3);
        assert_eq!(d.pivot_index(), Some(2));
        assert_eq!(d.steps[0].timeout, Duration::from_secs(5));
        assert_eq!(d.steps[0].on_exhausted, Exhausted::Compensate);
        assert_eq!(d.steps[2].on_exhausted, Exhausted::Park);
        assert_eq!(d.steps[3].on_exhausted, Exhausted::Park);
        assert_eq!(d.steps[2].retry.max_attempts, 3);
        assert_eq!(d.steps[3].retry, RetryPolicy::default());
        let round: Definition = serde_json::from_str(&d.canonical_json()).unwrap();
        assert_eq!(round, d);
        assert_eq!(round.content_hash(), d.content_hash());
    }

    #[test]
    fn hash_changes_with_meaning_not_formatting() {
        let a = load(GOOD).unwrap();
        let b = load(&format!("# a comment\n{GOOD}")).unwrap();
        assert_eq!(a.content_hash(), b.content_hash());
        let c = load(&GOOD.replace("max_attempts = 3", "max_attempts = 4")).unwrap();
        assert_ne!(a.content_hash(), c.content_hash());
    }

    #[test]
    fn unknown_action_is_named_with_the_file_and_step() {
        let (step, p, shown) = problem(
            r#"name = "t"
            version = 1
            [[steps]]
            id = "x"
            kind = "retriable"
            action = "nope""#,
        );
        assert_eq!(step.as_deref(), Some("x"));
        assert!(matches!(p, Problem::UnknownAction { .. }));
        assert!(
            shown.starts_with("workflows/t.toml: step `x`: unknown action `nope`"),
            "{shown}"
        );
    }

    #[test]
    fn duplicate_step_id() {
        let (step, p, _) = problem(
            r#"name = "t"
            version = 1
            [[steps]]
            id = "x"
            kind = "retriable"
            action = "a"
            [[steps]]
            id = "x"
            kind = "retriable"
            action = "b""#,
        );
        assert_eq!(step.as_deref(), Some("x"));
        assert_eq!(p, Problem::DuplicateStep);
    }

    #[test]
    fn compensatable_without_compensation() {
        let (_, p, _) = problem(
            r#"name = "t"
            version = 1
            [[steps]]
            id = "x"
            kind = "compensatable"
            action = "a""#,
        );
        assert_eq!(p, Problem::MissingCompensation);
    }

    #[test]
    fn two_pivots() {
        let (step, p, _) = problem(
            r#"name = "t"
            version = 1
            [[steps]]
            id = "p1"
            kind = "pivot"
            action = "a"
            [[steps]]
            id = "p2"
            kind = "pivot"
            action = "b""#,
        );
        assert_eq!(step.as_deref(), Some("p2"));
        assert_eq!(p, Problem::SecondPivot("p1".into()));
    }

    #[test]
    fn compensatable_after_pivot() {
        let (step, p, _) = problem(
            r#"name = "t"
            version = 1
            [[steps]]
            id = "p"
            kind = "pivot"
            action = "a"
            [[steps]]
            id = "c"
            kind = "compensatable"
            action = "b"
            compensation = "undo_b""#,
        );
        assert_eq!(step.as_deref(), Some("c"));
        assert_eq!(p, Problem::CompensatableAfterPivot("p".into()));
    }

    #[test]
    fn zero_attempts() {
        let (step, p, shown) = problem(
            r#"name = "t"
            version = 1
            [[steps]]
            id = "x"
            kind = "retriable"
            action = "a"
            retry = { max_attempts = 0 }"#,
        );
        assert_eq!(step.as_deref(), Some("x"));
        assert!(matches!(p, Problem::BadRetry(_)));
        assert!(shown.contains("max_attempts is 0"), "{shown}");
    }

    #[test]
    fn wait_without_timeout() {
        let (step, p, _) = problem(
            r#"name = "t"
            version = 1
            [[steps]]
            id = "w"
            kind = "wait"
            signals = { approve = "continue" }"#,
        );
        assert_eq!(step.as_deref(), Some("w"));
        assert_eq!(p, Problem::WaitWithoutTimeout);
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let (_, p, shown) = problem(
            r#"name = "t"
            version = 1
            [[steps]]
            id = "x"
            kind = "retriable"
            action = "a"
            retries = 3"#,
        );
        assert!(matches!(p, Problem::Syntax(_)));
        assert!(shown.contains("unknown field `retries`"), "{shown}");
        let (_, _, shown) = problem("name = \"t\"\nversion = 1\ncolour = \"red\"\n");
        assert!(shown.contains("unknown field `colour`"), "{shown}");
    }

    #[test]
    fn compensate_after_pivot_is_refused() {
        let (_, p, _) = problem(
            r#"name = "t"
            version = 1
            [[steps]]
            id = "p"
            kind = "pivot"
            action = "a"
            on_exhausted = "compensate""#,
        );
        assert_eq!(p, Problem::CompensateAfterPivot("p".into()));
    }

    #[test]
    fn compensation_on_a_retriable_step_is_refused() {
        let (_, p, _) = problem(
            r#"name = "t"
            version = 1
            [[steps]]
            id = "x"
            kind = "retriable"
            action = "a"
            compensation = "undo_a""#,
        );
        assert_eq!(p, Problem::UnexpectedCompensation("retriable"));
    }

    #[test]
    fn empty_definitions_and_bad_durations() {
        assert_eq!(problem("name = \"t\"\nversion = 1\n").1, Problem::NoSteps);
        let (_, _, shown) = problem(
            r#"name = "t"
            version = 1
            [[steps]]
            id = "x"
            kind = "retriable"
            action = "a"
            timeout = "soon""#,
        );
        assert!(shown.contains("invalid duration"), "{shown}");
    }

    #[test]
    fn load_dir_refuses_duplicate_names() {
        let dir = tempfile::tempdir().unwrap();
        let body = "name = \"t\"\nversion = 1\n[[steps]]\nid = \"x\"\nkind = \"retriable\"\naction = \"a\"\n";
        std::fs::write(dir.path().join("a.toml"), body).unwrap();
        std::fs::write(dir.path().join("b.toml"), body).unwrap();
        let e = load_dir(dir.path(), &known, &list).unwrap_err();
        assert!(matches!(e.problem, Problem::DuplicateDefinition(..)));
        std::fs::remove_file(dir.path().join("b.toml")).unwrap();
        assert_eq!(load_dir(dir.path(), &known, &list).unwrap().len(), 1);
    }
}
