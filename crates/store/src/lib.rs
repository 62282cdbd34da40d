//! Storage for the Closeout engine: SQLite (the embedded default) and PostgreSQL behind
//! the engine's [`closeout_engine::store::Store`] trait. SQL lives in this crate only.

mod codec;
pub mod postgres;
pub mod sqlite;

use std::sync::Arc;

use closeout_engine::store::{Error, Result, Store};

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// What `verify_audit` found: how much it checked, and the first broken link if any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditReport {
    pub workflows: u64,
    pub entries: u64,
    pub broken: Option<BrokenLink>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    pub workflow_id: closeout_engine::id::WorkflowId,
    pub seq: i64,
    pub problem: String,
}

/// A connected store of either kind, for callers that choose by URL.
#[derive(Debug, Clone)]
pub enum AnyStore {
    Sqlite(SqliteStore),
    Postgres(PgStore),
}

impl AnyStore {
    /// Connects by URL scheme: `sqlite:` or `postgres:`/`postgresql:`.
    pub async fn connect(url: &str) -> Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite(SqliteStore::connect(url).await?))
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Self::Postgres(PgStore::connect(url).await?))
        } else {
            Err(Error::Unavailable(
                "unsupported database URL; use sqlite://path/to/file.db or postgres://user@host/db"
                    .into(),
            ))
        }
    }

    pub async fn migrate(&self) -> Result<()> {
        match self {
            Self::Sqlite(s) => s.migrate().await,
            Self::Postgres(s) => s.migrate().await,
        }
    }

    pub async fn migrations_current(&self) -> Result<bool> {
        match self {
            Self::Sqlite(s) => s.migrations_current().await,
            Self::Postgres(s) => s.migrations_current().await,
        }
    }

    /// Closes every pooled connection; later queries fail.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(s) => s.close().await,
            Self::Postgres(s) => s.close().await,
        }
    }

    /// Recomputes every history chain; see [`AuditReport`].
    pub async fn verify_audit(&self) -> Result<AuditReport> {
        match self {
            Self::Sqlite(s) => s.verify_audit().await,
            Self::Postgres(s) => s.verify_audit().await,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    pub fn into_dyn(self) -> Arc<dyn Store> {
        match self {
            Self::Sqlite(s) => Arc::new(s),
            Self::Postgres(s) => Arc::new(s),
        }
    }
}
