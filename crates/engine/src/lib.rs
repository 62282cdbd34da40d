//! The Closeout engine: workflow definitions, state machines, saga decisions, retry and
//! the worker runtime. It knows no SQL and no HTTP: storage is the [`store::Store`]
//! trait and the outside world is the [`action::Action`] trait.

pub mod action;
pub mod clock;
pub mod definition;
pub mod duration;
pub mod id;
pub mod jobs;
pub mod retry;
pub mod runtime;
pub mod saga;
pub mod state;
pub mod store;

pub use runtime::{
    AttemptOutcome, Config, Engine, Error, Observer, Result, StartRequest, StepAttempt,
};
