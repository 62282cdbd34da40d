//! Scheduled jobs over the store: any number of replicas (and cron) may start one, a job
//! lock lets exactly one work at a time, and the work proceeds in bounded batches so no
//! lock is held long, renewing the job lock between batches.

use std::future::Future;
use std::time::{Duration, Instant};

use tracing::info;

use crate::clock::Clock;
use crate::id::WorkerId;
use crate::store::{Result, Store};

/// What one run of a job did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// Another replica holds the job lock; this run did nothing.
    Skipped,
    Done {
        /// Rows the job acted on.
        rows: u64,
        batches: u64,
        elapsed: Duration,
    },
}

impl Report {
    pub fn rows(&self) -> u64 {
        match self {
            Self::Skipped => 0,
            Self::Done { rows, .. } => *rows,
        }
    }
}

/// Runs `batch` until it reports 0 rows, under `job`'s lock.
pub async fn run_batched<F, Fut>(
    store: &dyn Store,
    clock: &dyn Clock,
    job: &str,
    owner: &WorkerId,
    lock_ttl: Duration,
    mut batch: F,
) -> Result<Report>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<u64>>,
{
    if !store.lock_job(job, owner, clock.now(), lock_ttl).await? {
        info!(job, "another replica holds the job lock; skipping this run");
        return Ok(Report::Skipped);
    }
    let started = Instant::now();
    let (mut rows, mut batches) = (0, 0);
    let result = async {
        loop {
            let n = batch().await?;
            if n == 0 {
                return Ok(());
            }
            rows += n;
            batches += 1;
            if batches % 10 == 0 {
                info!(job, rows, "job in progress");
            }
            // Renewal keeps a long run from being taken over; losing the lock stops it.
            if !store.lock_job(job, owner, clock.now(), lock_ttl).await? {
                info!(job, rows, "the job lock moved to another replica; stopping");
                return Ok(());
            }
        }
    }
    .await;
    store.unlock_job(job, owner).await?;
    result?;
    let elapsed = started.elapsed();
    info!(
        job,
        rows,
        batches,
        elapsed_ms = elapsed.as_millis() as u64,
        "job finished"
    );
    Ok(Report::Done {
        rows,
        batches,
        elapsed,
    })
}

/// The personal-data purge's name in the lock table.
pub const PURGE_JOB: &str = "personal-data-purge";

/// Erases the personal data (input, step outputs) of workflows that ended more than
/// `retention` ago, `batch` workflows per transaction.
pub async fn purge(
    store: &dyn Store,
    clock: &dyn Clock,
    owner: &WorkerId,
    retention: Duration,
    batch: u32,
    lock_ttl: Duration,
) -> Result<Report> {
    let now = clock.now();
    let cutoff = now - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    run_batched(store, clock, PURGE_JOB, owner, lock_ttl, || {
        store.purge_finished(cutoff, now, batch)
    })
    .await
}
