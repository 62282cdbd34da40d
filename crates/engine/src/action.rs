//! The action trait: the only way a workflow touches the outside world.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::id::{ActionName, IdempotencyKey, StepId, WorkflowId};
use crate::store::Record;

/// What an action sees. `idempotency_key` is identical across attempts, crashes and
/// takeovers of the same step, so a partner can recognise a repeat.
#[derive(Debug, Clone)]
pub struct Context {
    pub workflow_id: WorkflowId,
    pub step: StepId,
    /// 1-based attempt number of this execution.
    pub attempt: u32,
    pub idempotency_key: IdempotencyKey,
    pub input: Arc<Value>,
    /// Outputs of the steps that succeeded (or were skipped with an output) so far.
    pub outputs: BTreeMap<StepId, Value>,
    /// Whether this call undoes the step rather than performs it.
    pub compensating: bool,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Done. `note` is recorded in the history (e.g. "partner said already done").
    /// `records` are written in the same transaction as this result, or not at all.
    Done {
        output: Value,
        note: Option<String>,
        records: Vec<Record>,
    },
    /// Failed in a way another attempt may fix. `after` is a partner's Retry-After.
    Retry {
        code: String,
        message: String,
        after: Option<Duration>,
    },
    /// Failed for good; retrying cannot help.
    Fail { code: String, message: String },
}

impl Outcome {
    pub fn done(output: Value) -> Self {
        Self::Done {
            output,
            note: None,
            records: Vec::new(),
        }
    }

    /// Done, with a note for the history.
    pub fn noted(output: Value, note: impl Into<String>) -> Self {
        Self::Done {
            output,
            note: Some(note.into()),
            records: Vec::new(),
        }
    }

    /// Done, with records to persist atomically with the result.
    pub fn done_with(output: Value, records: Vec<Record>) -> Self {
        Self::Done {
            output,
            note: None,
            records,
        }
    }

    pub fn retry(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Retry {
            code: code.into(),
            message: message.into(),
            after: None,
        }
    }

    pub fn fail(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Fail {
            code: code.into(),
            message: message.into(),
        }
    }
}

#[async_trait]
pub trait Action: Send + Sync + 'static {
    async fn run(&self, ctx: Context) -> Outcome;
}

#[async_trait]
impl<F, Fut> Action for F
where
    F: Fn(Context) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Outcome> + Send + 'static,
{
    async fn run(&self, ctx: Context) -> Outcome {
        (self)(ctx).await
    }
}

/// The actions a binary offers, by name. Definitions are checked against it at load.
#[derive(Clone, Default)]
pub struct Registry {
    actions: HashMap<ActionName, Arc<dyn Action>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("actions", &self.names())
            .finish()
    }
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `action` under `name`, replacing any earlier one.
    pub fn register(&mut self, name: &str, action: impl Action) -> &mut Self {
        let name = ActionName::parse(name).expect("action names are compile-time constants");
        self.actions.insert(name, Arc::new(action));
        self
    }

    pub fn get(&self, name: &ActionName) -> Option<Arc<dyn Action>> {
        self.actions.get(name).cloned()
    }

    pub fn contains(&self, name: &ActionName) -> bool {
        self.actions.contains_key(name)
    }

    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.actions.keys().map(|n| n.to_string()).collect();
        names.sort();
        names
    }
}
