//! The cooldown expiry job: releases every cooldown whose six months have passed. Any
//! number of replicas may run it on a schedule, and cron may run it too; the engine's
//! job runner lets exactly one work at a time, in bounded batches.

use std::time::Duration;

use closeout_engine::clock::Clock;
use closeout_engine::id::WorkerId;
use closeout_engine::jobs::run_batched;
use closeout_engine::store::{Result, Store};

/// The job's name in the lock table.
pub const EXPIRE_JOB: &str = "cooldown-expire";

/// Releases every cooldown whose release instant has passed, `batch` rows per
/// transaction, while holding the job lock (`lock_ttl` long, renewed between batches).
pub async fn expire(
    store: &dyn Store,
    clock: &dyn Clock,
    owner: &WorkerId,
    batch: u32,
    lock_ttl: Duration,
) -> Result<Report> {
    let now = clock.now();
    run_batched(store, clock, EXPIRE_JOB, owner, lock_ttl, || {
        store.release_cooldowns(now, batch)
    })
    .await
}
pub use closeout_engine::jobs::Report;
