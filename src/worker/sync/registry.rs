//! This process's runs: a drain stops new ones, shutdown asks the running ones to stop at
//! their next checkpoint and waits, and a drain that ends with runs still going aborts
//! them so they can be handed over to another replica.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Notify;
use tokio::task::AbortHandle;

use crate::domain::tenant::TenantId;

/// This process's runs: shutdown asks them to stop at the next checkpoint (a stage or a
/// page boundary, everything before it delivered and marked) and waits for them.
#[derive(Debug, Clone, Default)]
pub struct Runs {
    inner: Arc<RunsInner>,
}

#[derive(Debug, Default)]
struct RunsInner {
    stopping: AtomicBool,
    draining: AtomicBool,
    active: AtomicUsize,
    idle: Notify,
    /// The running runs' tasks by run id, with their tenant, for [`Runs::abort`].
    tasks: Mutex<HashMap<String, (TenantId, AbortHandle)>>,
}

impl RunsInner {
    fn tasks(&self) -> std::sync::MutexGuard<'_, HashMap<String, (TenantId, AbortHandle)>> {
        // The map stays consistent whatever panicked while holding it.
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Held by a running run's task; dropping it (the run ended, or its task was aborted)
/// counts the run out.
struct Active {
    inner: Arc<RunsInner>,
    run_id: String,
}

impl Drop for Active {
    fn drop(&mut self) {
        self.inner.tasks().remove(&self.run_id);
        self.inner.active.fetch_sub(1, Ordering::SeqCst);
        self.inner.idle.notify_waiters();
    }
}

impl Runs {
    /// Whether shutdown asked runs to stop.
    pub fn stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::SeqCst)
    }

    /// Whether this replica drains: it starts no run (they are answered UNAVAILABLE, for
    /// another replica to start them).
    pub fn draining(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }

    /// Starts the drain: no run starts from now on.
    pub fn drain(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
    }

    /// How many runs this process is running.
    pub fn active(&self) -> usize {
        self.inner.active.load(Ordering::SeqCst)
    }

    /// Runs `run` (the run `run_id` of `tenant`) in a task of its own, counted until it
    /// ends or is aborted.
    pub(super) fn spawn(
        &self,
        tenant: TenantId,
        run_id: String,
        run: impl Future<Output = ()> + Send + 'static,
    ) {
        self.inner.active.fetch_add(1, Ordering::SeqCst);
        let active = Active {
            inner: self.inner.clone(),
            run_id: run_id.clone(),
        };
        // Under the lock: a task that ends at once removes its entry only after it is in.
        let mut tasks = self.inner.tasks();
        let task = tokio::spawn(async move {
            run.await;
            drop(active);
        });
        tasks.insert(run_id, (tenant, task.abort_handle()));
    }

    /// Completes when no run is left (at once when none is running).
    pub async fn idle(&self) {
        loop {
            let idle = self.inner.idle.notified();
            if self.active() == 0 {
                return;
            }
            idle.await;
        }
    }

    /// Asks every run to stop at its next checkpoint and waits for them, at most `limit`;
    /// returns how many were still running then.
    pub async fn stop(&self, limit: std::time::Duration) -> usize {
        self.inner.stopping.store(true, Ordering::SeqCst);
        match tokio::time::timeout(limit, self.idle()).await {
            Ok(()) => 0,
            Err(_) => self.active(),
        }
    }

    /// Aborts every run still going, wherever it is (a sink call that never answers
    /// included), waits at most `limit` for their tasks to let go, and returns the runs
    /// aborted: they are RUNNING in the database still, with their leases, for the
    /// caller to hand over.
    pub async fn abort(&self, limit: std::time::Duration) -> Vec<(TenantId, String)> {
        self.inner.stopping.store(true, Ordering::SeqCst);
        // Collected first and aborted outside the lock, which a task's end takes.
        let running: Vec<(TenantId, String, AbortHandle)> = self
            .inner
            .tasks()
            .iter()
            .map(|(run_id, (tenant, task))| (tenant.clone(), run_id.clone(), task.clone()))
            .collect();
        let aborted = running
            .into_iter()
            .map(|(tenant, run_id, task)| {
                task.abort();
                (tenant, run_id)
            })
            .collect();
        if tokio::time::timeout(limit, self.idle()).await.is_err() {
            tracing::warn!(
                runs = self.active(),
                "aborted runs have not let go yet; handing them over all the same"
            );
        }
        aborted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run stuck where no checkpoint comes (a sink call that never answers) is aborted,
    /// named for the hand-over, and counted out; a run that ended is not named.
    #[tokio::test]
    async fn abort_ends_stuck_runs_and_names_them_for_the_hand_over() {
        let runs = Runs::default();
        let tenant = TenantId::parse("acme").unwrap();
        runs.spawn(tenant.clone(), "done".into(), async {});
        runs.idle().await;
        runs.spawn(tenant.clone(), "stuck".into(), std::future::pending());
        assert_eq!(runs.active(), 1);
        assert!(!runs.draining());
        runs.drain();
        assert!(runs.draining());
        let aborted = runs.abort(std::time::Duration::from_secs(60)).await;
        assert_eq!(aborted, vec![(tenant, "stuck".to_owned())]);
        assert_eq!(runs.active(), 0);
        assert!(runs.stopping());
    }
}
