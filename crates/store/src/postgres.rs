//! PostgreSQL backend: several processes share one database. Work is claimed with
//! `FOR UPDATE SKIP LOCKED`, so concurrent claimers never block on or double-take a
//! row, and new work is announced with `NOTIFY closeout_work`.

use std::time::Duration;

use sqlx::postgres::{PgListener, PgPoolOptions};
use sqlx::{Executor, PgPool};

type Db = sqlx::Postgres;
type Backend = PgStore;

/// The migrations in `migrations/postgres`, embedded at build time.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

include!("common.rs");

/// The NOTIFY channel that announces due work to other processes.
pub const CHANNEL: &str = "closeout_work";

#[derive(Debug, Clone)]
pub struct PgStore {
    write: PgPool,
    read: PgPool,
}

impl PgStore {
    pub async fn connect(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(|conn, _| {
                Box::pin(async move {
                    // Durability is not negotiable for an accepted request.
                    conn.execute("SET synchronous_commit = on").await?;
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(db_error)?;
        Ok(Self {
            write: pool.clone(),
            read: pool,
        })
    }

    /// Concurrent deliverers skip each other's rows instead of waiting on them.
    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";
    /// Batched deletes pick rows by their physical id (a TID scan); rows another run
    /// holds are skipped, and a row another run deleted meanwhile is simply gone.
    const ROW_ID: &'static str = "ctid";
    const ROW_IN: (&'static str, &'static str) = ("ctid = ANY(ARRAY(", "))");

    async fn begin_write(&self) -> Result<Tx<'static>> {
        self.write.begin().await.map_err(db_error)
    }

    async fn notify(tx: &mut Tx<'_>) -> Result<()> {
        // Delivered at commit, and only if the transaction commits.
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(CHANNEL)
            .execute(&mut **tx)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    async fn listen(&self) -> Result<Option<tokio::sync::mpsc::Receiver<()>>> {
        let mut listener = PgListener::connect_with(&self.read)
            .await
            .map_err(db_error)?;
        listener.listen(CHANNEL).await.map_err(db_error)?;
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let pool = self.read.clone();
        tokio::spawn(async move {
            loop {
                match listener.recv().await {
                    Ok(_) => {
                        // A full channel already holds a wake-up; one is enough.
                        if let Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) =
                            tx.try_send(())
                        {
                            return;
                        }
                    }
                    Err(_) if pool.is_closed() || tx.is_closed() => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "LISTEN connection lost; reconnecting, polling meanwhile");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Ok(Some(rx))
    }

    async fn claim_due(
        &self,
        owner: &WorkerId,
        now: chrono::DateTime<chrono::Utc>,
        limit: u32,
        ttl: Duration,
    ) -> Result<Vec<WorkflowRecord>> {
        let now_ms = codec::millis(now);
        let mut tx = self.begin_write().await?;
        let sql = format!(
            "SELECT id, lease_owner FROM workflows WHERE next_run_at IS NOT NULL AND next_run_at <= $1 AND state IN {RUNNABLE} AND (lease_owner IS NULL OR lease_expires_at < $1) ORDER BY next_run_at LIMIT $2 FOR UPDATE SKIP LOCKED"
        );
        let ids: Vec<(uuid::Uuid, Option<String>)> = sqlx::query_as(&sql)
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
