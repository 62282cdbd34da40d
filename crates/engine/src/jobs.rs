//! Scheduled jobs over the store: any number of replicas (and cron) may start one, a job
//! lock lets exactly one work at a time, and the work proceeds in bounded batches so no
//! lock is held long, renewing the job lock between batches.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tracing::info;

use crate::clock::Clock;
use crate::id::WorkerId;
use crate::state::WorkflowState;
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

/// The stuck-workflow sweep's name in the lock table.
pub const SWEEP_JOB: &str = "stuck-sweep";

/// What one sweep did, beside its [`Report`] (whose rows count both).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    /// Workflows newly flagged as stuck.
    pub flagged: u64,
    /// Flags cleared because their workflow no longer crosses its threshold.
    pub cleared: u64,
}

/// Flags workflows that have been in one state longer than that state's threshold, and
/// clears flags the thresholds no longer justify, `batch` workflows per transaction.
/// A state without a threshold is never flagged. Workflows that change state lose their
/// flag in the engine's own commit, so the sweep only has to catch threshold changes.
pub async fn sweep_stuck(
    store: &dyn Store,
    clock: &dyn Clock,
    owner: &WorkerId,
    thresholds: &[(WorkflowState, Duration)],
    batch: u32,
    lock_ttl: Duration,
) -> Result<(Report, Swept)> {
    let now = clock.now();
    let cutoffs = cutoffs(now, thresholds);
    // Atomics rather than a Cell: the batch futures must be Send to run on a runtime.
    let (flagged, cleared) = (AtomicU64::new(0), AtomicU64::new(0));
    let report = run_batched(store, clock, SWEEP_JOB, owner, lock_ttl, || async {
        if flagged.load(Ordering::Relaxed) == 0 {
            let n = store.unflag_stuck(&cutoffs, batch).await?;
            if n > 0 {
                cleared.fetch_add(n, Ordering::Relaxed);
                return Ok(n);
            }
        }
        let n = store.flag_stuck(&cutoffs, now, batch).await?;
        flagged.fetch_add(n, Ordering::Relaxed);
        Ok(n)
    })
    .await?;
    let swept = Swept {
        flagged: flagged.into_inner(),
        cleared: cleared.into_inner(),
    };
    Ok((report, swept))
}

/// The instant each state's threshold points back to from `now`: a workflow in that state
/// since then or earlier is stuck. Terminal states are never stuck.
fn cutoffs(
    now: chrono::DateTime<chrono::Utc>,
    thresholds: &[(WorkflowState, Duration)],
) -> Vec<(WorkflowState, chrono::DateTime<chrono::Utc>)> {
    thresholds
        .iter()
        .filter(|(state, _)| !state.is_terminal())
        .map(|(state, after)| {
            let after = chrono::Duration::from_std(*after).unwrap_or(chrono::Duration::MAX);
            // A threshold too long to subtract reaches back past any workflow: never flag.
            let cutoff = now
                .checked_sub_signed(after)
                .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
            (*state, cutoff)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn cutoffs_point_back_by_each_threshold_and_skip_terminal_states() {
        let now = chrono::Utc
            .with_ymd_and_hms(2026, 11, 23, 12, 0, 0)
            .unwrap();
        let got = cutoffs(
            now,
            &[
                (WorkflowState::Running, Duration::from_secs(3600)),
                (WorkflowState::Completed, Duration::from_secs(60)),
                (WorkflowState::Waiting, Duration::from_secs(80 * 3600)),
            ],
        );
        assert_eq!(
            got,
            [
                (WorkflowState::Running, now - chrono::Duration::hours(1)),
                (WorkflowState::Waiting, now - chrono::Duration::hours(80)),
            ]
        );
    }

    #[test]
    fn an_enormous_threshold_never_flags() {
        let now = chrono::Utc::now();
        let got = cutoffs(now, &[(WorkflowState::Running, Duration::MAX)]);
        assert_eq!(
            got,
            [(
                WorkflowState::Running,
                chrono::DateTime::<chrono::Utc>::MIN_UTC
            )]
        );
    }
}
