//! SQLite backend: the embedded default. WAL with `synchronous=FULL`, so an accepted
//! request survives a power cut; one writer connection, since SQLite admits one writer
//! at a time anyway, and group commit from the engine amortises each fsync.

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

type Db = sqlx::Sqlite;
type Backend = SqliteStore;

/// The migrations in `migrations/sqlite`, embedded at build time.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

include!("common.rs");

#[derive(Debug, Clone)]
pub struct SqliteStore {
    write: SqlitePool,
    read: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path` or `sqlite:path`).
    pub async fn connect(url: &str) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| Error::Unavailable(format!("bad SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(db_error)?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await
            .map_err(db_error)?;
        Ok(Self { write, read })
    }

    /// SQLite has one writer at a time, so claims need no row locking.
    const SKIP_LOCKED: &'static str = "";
    /// Batched deletes pick rows by their physical id, the cheapest match there is.
    const ROW_ID: &'static str = "rowid";
    const ROW_IN: (&'static str, &'static str) = ("rowid IN (", ")");

    async fn begin_write(&self) -> Result<Tx<'static>> {
        // IMMEDIATE takes the write lock up front: a deferred transaction that reads
        // and then writes can fail with SQLITE_BUSY when another process wrote between.
        self.write
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(db_error)
    }

    async fn notify(_tx: &mut Tx<'_>) -> Result<()> {
        Ok(())
    }

    async fn listen(&self) -> Result<Option<tokio::sync::mpsc::Receiver<()>>> {
        Ok(None)
    }

    async fn claim_due(
        &self,
        owner: &WorkerId,
        now: chrono::DateTime<chrono::Utc>,
        limit: u32,
        ttl: Duration,
    ) -> Result<Vec<WorkflowRecord>> {
        let due_sql = format!(
            "SELECT id, lease_owner FROM workflows WHERE next_run_at IS NOT NULL AND next_run_at <= ? AND state IN {RUNNABLE} AND (lease_owner IS NULL OR lease_expires_at < ?) ORDER BY next_run_at LIMIT ?"
        );
        let now_ms = codec::millis(now);
        // A read first, so idle polling never takes the write lock.
        let any: Option<(uuid::Uuid, Option<String>)> = sqlx::query_as(&due_sql)
            .bind(now_ms)
            .bind(now_ms)
            .bind(1i64)
            .fetch_optional(&self.read)
            .await
            .map_err(db_error)?;
        if any.is_none() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write().await?;
        let ids: Vec<(uuid::Uuid, Option<String>)> = sqlx::query_as(&due_sql)
            .bind(now_ms)
            .bind(now_ms)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await
            .map_err(db_error)?;
        let records = lease_rows(&mut tx, &ids, owner, now, ttl).await?;
        tx.commit().await.map_err(db_error)?;
        Ok(records)
    }
}
