//! How a run's batches go to the sink (their size, retries, backoff and time limits) and
//! how a failed run is retried: the policies `serve` sets and every delivery follows.

use std::time::Duration;

/// How batches are sent to the sink (`serve --sink-*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryPolicy {
    /// Records per call.
    pub batch: usize,
    /// At most this many attempts per batch, the first included (0: as many as the
    /// budget allows).
    pub attempts: u32,
    /// Wait before the second attempt; doubled for each next one…
    pub backoff: Duration,
    /// …up to this.
    pub max_backoff: Duration,
    /// Deadline of one call.
    pub call_timeout: Duration,
    /// A batch is retried until its next attempt would start after this much time.
    pub batch_budget: Duration,
}

/// Default [`DeliveryPolicy::batch`].
pub const DEFAULT_SINK_BATCH: usize = 500;
/// Default [`DeliveryPolicy::attempts`]: no cap, the budget decides.
pub const DEFAULT_SINK_ATTEMPTS: u32 = 0;
/// Default [`DeliveryPolicy::backoff`].
pub const DEFAULT_SINK_BACKOFF: Duration = Duration::from_secs(1);
/// Default [`DeliveryPolicy::max_backoff`].
pub const DEFAULT_SINK_MAX_BACKOFF: Duration = Duration::from_secs(15);
/// Default [`DeliveryPolicy::call_timeout`].
pub const DEFAULT_SINK_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Default [`DeliveryPolicy::batch_budget`]: a CRM down for a 3-minute deploy is waited
/// for (the last wait may end up to one `max_backoff` after it is back).
pub const DEFAULT_SINK_BATCH_BUDGET: Duration = Duration::from_secs(240);

impl Default for DeliveryPolicy {
    fn default() -> Self {
        Self {
            batch: DEFAULT_SINK_BATCH,
            attempts: DEFAULT_SINK_ATTEMPTS,
            backoff: DEFAULT_SINK_BACKOFF,
            max_backoff: DEFAULT_SINK_MAX_BACKOFF,
            call_timeout: DEFAULT_SINK_CALL_TIMEOUT,
            batch_budget: DEFAULT_SINK_BATCH_BUDGET,
        }
    }
}

impl DeliveryPolicy {
    /// The wait after `failed` failed attempts (1 for the first).
    pub fn wait(&self, failed: u32) -> Duration {
        let doubled = self
            .backoff
            .saturating_mul(1u32 << failed.saturating_sub(1).min(20));
        doubled.min(self.max_backoff)
    }

    /// Whether a batch that failed transiently `failed` times, `spent` after its first
    /// attempt started, is tried again: while the attempt after the next wait starts
    /// within the budget, and the attempts' cap (if any) is not reached.
    pub fn retries(&self, failed: u32, spent: Duration) -> bool {
        let capped = self.attempts > 0 && failed >= self.attempts;
        !capped && spent.saturating_add(self.wait(failed)) <= self.batch_budget
    }
}

/// How a FAILED run is tried again by the scheduler (`serve --run-retries`,
/// `--run-retry-backoff-secs`); the rule lives in the domain, beside the due instant it
/// feeds.
pub use crate::domain::due::{RunRetries, DEFAULT_RUN_RETRIES, DEFAULT_RUN_RETRY_BACKOFF};
