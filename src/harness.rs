//! A small layer over `libtest-mimic` so one async test body runs once per backend,
//! with PostgreSQL trials ignored (reason shown) only when the policy allows it.

use std::future::Future;
use std::pin::Pin;

use libtest_mimic::{Arguments, Failed, Trial};

use crate::{postgres_availability, Backend};

pub type TestFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send>>;
pub type TestFn = fn(Backend) -> TestFuture;

/// A plain test: its name, whether it is ignored, and its body.
pub type PlainTest = (String, bool, Box<dyn FnOnce() -> TestFuture + Send>);

/// Runs every `(name, test)` on SQLite and on PostgreSQL and exits with the summary.
pub fn run_per_backend(suite: &str, tests: &[(&'static str, TestFn)]) -> ! {
    let args = Arguments::from_args();
    let pg = postgres_availability();
    if let Err(reason) = &pg {
        eprintln!("{suite}: {reason}");
    }
    let mut trials = Vec::new();
    for backend in [Backend::Sqlite, Backend::Postgres] {
        for (name, test) in tests {
            let test = *test;
            let trial = Trial::test(format!("{suite}::{}::{name}", backend.name()), move || {
                run_one(test, backend)
            });
            let trial = match (&pg, backend) {
                (Err(_), Backend::Postgres) => trial.with_ignored_flag(true),
                _ => trial,
            };
            trials.push(trial);
        }
    }
    libtest_mimic::run(&args, trials).exit()
}

/// Runs plain async tests (no backend parameter).
pub fn run_plain(suite: &str, tests: Vec<PlainTest>) -> ! {
    let args = Arguments::from_args();
    let trials = tests
        .into_iter()
        .map(|(name, ignored, test)| {
            Trial::test(format!("{suite}::{name}"), move || block_on(test()))
                .with_ignored_flag(ignored)
        })
        .collect();
    libtest_mimic::run(&args, trials).exit()
}

fn run_one(test: TestFn, backend: Backend) -> Result<(), Failed> {
    block_on(test(backend))
}

fn block_on(future: TestFuture) -> Result<(), Failed> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failed::from(e.to_string()))?;
    runtime
        .block_on(future)
        .map_err(|e| Failed::from(format!("{e:#}")))
}
