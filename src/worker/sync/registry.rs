//! This process's runs: shutdown asks them to stop at their next checkpoint and waits.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

/// This process's runs: shutdown asks them to stop at the next checkpoint (a stage or a
/// page boundary, everything before it delivered and marked) and waits for them.
#[derive(Debug, Clone, Default)]
pub struct Runs {
    inner: Arc<RunsInner>,
}

#[derive(Debug, Default)]
struct RunsInner {
    stopping: AtomicBool,
    active: AtomicUsize,
    idle: Notify,
}

/// Held by a running run; dropping it counts the run out.
pub(super) struct Active(Arc<RunsInner>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::SeqCst);
        self.0.idle.notify_waiters();
    }
}

impl Runs {
    /// Whether shutdown asked runs to stop.
    pub fn stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::SeqCst)
    }

    pub(super) fn enter(&self) -> Active {
        self.inner.active.fetch_add(1, Ordering::SeqCst);
        Active(self.inner.clone())
    }

    /// Asks every run to stop at its next checkpoint and waits for them, at most `limit`;
    /// returns how many were still running then.
    pub async fn stop(&self, limit: std::time::Duration) -> usize {
        self.inner.stopping.store(true, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let idle = self.inner.idle.notified();
            let active = self.inner.active.load(Ordering::SeqCst);
            if active == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.inner.active.load(Ordering::SeqCst);
            }
        }
    }
}
