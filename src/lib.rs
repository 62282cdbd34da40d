//! Support for Closeout's cross-crate integration tests (`tests/`): per-test databases
//! on SQLite and PostgreSQL, the PostgreSQL availability policy, and a scriptable
//! action that records every execution.
//!
//! PostgreSQL policy: `CLOSEOUT_TEST_PG_URL` names an admin connection (default
//! `postgres://postgres@127.0.0.1:5432/test`). When the URL was given, or `CI` is set,
//! an unreachable server fails the tests. Otherwise the PostgreSQL tests are reported
//! as ignored, with the reason, in the test summary: never a silent pass.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use closeout_engine::action::{Context, Outcome, Registry};
use closeout_engine::id::IdempotencyKey;
use serde_json::json;

pub mod harness;
pub mod recorder;
pub mod serve;

/// The `closeout` binary built by `cargo test --workspace` (or `cargo build -p closeout`).
pub fn closeout_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let bin = profile_dir.join("closeout");
    assert!(
        bin.exists(),
        "{} is missing: run the tests with `cargo test --workspace`, or `cargo build -p closeout` first",
        bin.display()
    );
    bin
}

pub const PG_URL_VAR: &str = "CLOSEOUT_TEST_PG_URL";
const PG_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// Whether the PostgreSQL tests can run here, decided once per test binary.
pub fn postgres_availability() -> Result<String, String> {
    static ANSWER: std::sync::OnceLock<Result<String, String>> = std::sync::OnceLock::new();
    ANSWER
        .get_or_init(|| {
            let given = std::env::var(PG_URL_VAR).ok();
            let url = given.clone().unwrap_or_else(|| PG_DEFAULT.to_owned());
            let reachable = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime")
                .block_on(async {
                    tokio::time::timeout(std::time::Duration::from_secs(5), sqlx::PgPool::connect(&url))
                        .await
                        .map_err(|_| "timed out".to_owned())
                        .and_then(|r| r.map_err(|e| e.to_string()))
                        .map(|_| ())
                });
            match reachable {
                Ok(()) => Ok(url),
                Err(e) if given.is_some() || std::env::var_os("CI").is_some() => {
                    panic!("PostgreSQL at {url} is unreachable ({e}); {PG_URL_VAR} or CI is set, so the PostgreSQL tests must run")
                }
                Err(e) => Err(format!(
                    "PostgreSQL tests NOT RUN: no server at {url} ({e}); set {PG_URL_VAR} to run them"
                )),
            }
        })
        .clone()
}

/// A database of its own for one test.
#[derive(Debug)]
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn create(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}", dir.path().join("closeout.db").display());
                TestDb {
                    url,
                    _dir: Some(dir),
                }
            }
            Backend::Postgres => {
                let admin = postgres_availability()
                    .expect("PostgreSQL tests are filtered out when unavailable");
                let name = format!("closeout_t_{}", uuid::Uuid::new_v4().simple());
                let pool = sqlx::PgPool::connect(&admin)
                    .await
                    .expect("admin connection");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&pool)
                    .await
                    .expect("create test database");
                pool.close().await;
                let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
                TestDb {
                    url: format!("{base}/{name}"),
                    _dir: None,
                }
            }
        }
    }

    /// Drops a PostgreSQL test database; SQLite files go with their temp dir.
    pub async fn drop_db(self) {
        if !self.url.starts_with("postgres") {
            return;
        }
        let Ok(admin) = postgres_availability() else {
            return;
        };
        let name = self.url.rsplit('/').next().unwrap_or_default().to_owned();
        if let Ok(pool) = sqlx::PgPool::connect(&admin).await {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&pool)
                .await;
            pool.close().await;
        }
    }
}

/// One recorded execution of a scripted action.
#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    pub step: String,
    pub key: IdempotencyKey,
    pub attempt: u32,
    pub compensating: bool,
}

/// Actions whose outcomes a test scripts per step, recording every execution.
/// `test.step` runs steps and `test.undo` compensates them.
#[derive(Debug, Clone, Default)]
pub struct Script {
    inner: Arc<Mutex<ScriptInner>>,
}

#[derive(Debug, Default)]
struct ScriptInner {
    outcomes: HashMap<(String, bool), VecDeque<Outcome>>,
    log: Vec<Execution>,
}

impl Script {
    /// The next executions of `step` (forward) end with these outcomes, in order;
    /// after them, it succeeds.
    pub fn then(&self, step: &str, outcomes: impl IntoIterator<Item = Outcome>) -> &Self {
        self.script(step, false, outcomes)
    }

    /// Same, for the compensation of `step`.
    pub fn then_undo(&self, step: &str, outcomes: impl IntoIterator<Item = Outcome>) -> &Self {
        self.script(step, true, outcomes)
    }

    fn script(
        &self,
        step: &str,
        compensating: bool,
        outcomes: impl IntoIterator<Item = Outcome>,
    ) -> &Self {
        self.inner
            .lock()
            .unwrap()
            .outcomes
            .entry((step.to_owned(), compensating))
            .or_default()
            .extend(outcomes);
        self
    }

    pub fn log(&self) -> Vec<Execution> {
        self.inner.lock().unwrap().log.clone()
    }

    /// Steps executed, in order, as `step` or `undo:step`.
    pub fn trace(&self) -> Vec<String> {
        self.log()
            .into_iter()
            .map(|e| {
                if e.compensating {
                    format!("undo:{}", e.step)
                } else {
                    e.step
                }
            })
            .collect()
    }

    fn run(&self, ctx: &Context) -> Outcome {
        let mut inner = self.inner.lock().unwrap();
        inner.log.push(Execution {
            step: ctx.step.to_string(),
            key: ctx.idempotency_key.clone(),
            attempt: ctx.attempt,
            compensating: ctx.compensating,
        });
        inner
            .outcomes
            .get_mut(&(ctx.step.to_string(), ctx.compensating))
            .and_then(VecDeque::pop_front)
            .unwrap_or_else(|| {
                Outcome::done(json!({ "step": ctx.step.as_str(), "attempt": ctx.attempt }))
            })
    }

    pub fn registry(&self) -> Registry {
        let mut registry = Registry::new();
        let forward = self.clone();
        registry.register("test.step", move |ctx: Context| {
            let outcome = forward.run(&ctx);
            async move { outcome }
        });
        let undo = self.clone();
        registry.register("test.undo", move |ctx: Context| {
            let outcome = undo.run(&ctx);
            async move { outcome }
        });
        registry
    }
}
