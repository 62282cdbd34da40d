//! The cooldown expiry job. Any number of replicas may run it on a schedule, and cron
//! may run it too: a job lock lets exactly one of them work at a time, and the batched
//! releases never hold long locks, however many rows are due.

use std::time::{Duration, Instant};

use closeout_engine::clock::Clock;
use closeout_engine::id::WorkerId;
use closeout_engine::store::{Result, Store};
use tracing::info;

/// The job's name in the lock table.
pub const EXPIRE_JOB: &str = "cooldown-expire";

/// What one run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// Another replica holds the job lock; this run did nothing.
    Skipped,
    Done {
        released: u64,
        batches: u64,
        elapsed: Duration,
    },
}

/// Releases every cooldown whose release instant has passed, `batch` rows per
/// transaction, while holding the job lock (`lock_ttl` long, renewed between batches).
pub async fn expire(
    store: &dyn Store,
    clock: &dyn Clock,
    owner: &WorkerId,
    batch: u32,
    lock_ttl: Duration,
) -> Result<Report> {
    if !store
        .lock_job(EXPIRE_JOB, owner, clock.now(), lock_ttl)
        .await?
    {
        info!(
            job = EXPIRE_JOB,
            "another replica holds the job lock; skipping this run"
        );
        return Ok(Report::Skipped);
    }
    let started = Instant::now();
    let now = clock.now();
    let (mut released, mut batches) = (0, 0);
    let result = async {
        loop {
            let n = store.release_cooldowns(now, batch).await?;
            if n == 0 {
                return Ok(());
            }
            released += n;
            batches += 1;
            if batches % 10 == 0 {
                info!(job = EXPIRE_JOB, released, "cooldown expiry in progress");
            }
            // Renewal keeps a long run from being taken over; losing the lock stops it.
            if !store
                .lock_job(EXPIRE_JOB, owner, clock.now(), lock_ttl)
                .await?
            {
                info!(
                    job = EXPIRE_JOB,
                    released, "the job lock moved to another replica; stopping"
                );
                return Ok(());
            }
        }
    }
    .await;
    store.unlock_job(EXPIRE_JOB, owner).await?;
    result?;
    let elapsed = started.elapsed();
    info!(
        job = EXPIRE_JOB,
        released,
        batches,
        elapsed_ms = elapsed.as_millis() as u64,
        "cooldown expiry finished"
    );
    Ok(Report::Done {
        released,
        batches,
        elapsed,
    })
}
