//! How a run delivers to the CRM sink, and how a failed run is tried again.
//!
//! Delivery is at least once: each batch carries an idempotency key derived from its
//! content (see [`crate::domain::crm::batch_key`]: the same for every attempt, and for
//! the same versions sent again in a later run), a call that fails transiently (the CRM
//! down, slow or busy) is sent again after a capped exponential backoff until the
//! batch's time budget is spent (and, when set, its attempts), and every retry is a WARN
//! event in the tenant's log with the sink's status. A run that still fails is FAILED;
//! the scheduler starts it again (trigger RETRY) after its own backoff, a bounded number
//! of times.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use serde_json::json;

use crate::domain::run::{Level, NewEvent, Stage};
use crate::domain::tables::Table;
use crate::domain::tenant::TenantId;
use crate::domain::text::human_duration;
use crate::error::{AppError, Result};
use crate::metrics::SinkOutcome;
use crate::worker::sink::{CrmSink, SinkAck, SinkCall};
use crate::worker::RunWorker;

pub use super::delivery_policy::{
    DeliveryPolicy, RunRetries, DEFAULT_RUN_RETRIES, DEFAULT_RUN_RETRY_BACKOFF,
    DEFAULT_SINK_ATTEMPTS, DEFAULT_SINK_BACKOFF, DEFAULT_SINK_BATCH, DEFAULT_SINK_BATCH_BUDGET,
    DEFAULT_SINK_CALL_TIMEOUT, DEFAULT_SINK_MAX_BACKOFF,
};

/// One run's deliveries: numbers its batches, retries them under the policy, logs every
/// retry in the tenant's log and keeps the totals the CRM reported.
pub struct Delivery<'a> {
    worker: &'a RunWorker,
    sink: Arc<dyn CrmSink>,
    tenant: &'a TenantId,
    run_id: String,
    batches: AtomicU64,
    totals: Mutex<BTreeMap<Table, (u64, chrono::DateTime<Utc>)>>,
}

impl<'a> Delivery<'a> {
    /// The deliveries of run `run_id` to `sink`.
    pub fn new(
        worker: &'a RunWorker,
        sink: Arc<dyn CrmSink>,
        tenant: &'a TenantId,
        run_id: &str,
    ) -> Self {
        Self {
            worker,
            sink,
            tenant,
            run_id: run_id.to_owned(),
            batches: AtomicU64::new(0),
            totals: Mutex::new(BTreeMap::new()),
        }
    }

    /// Where the run delivers.
    pub fn sink(&self) -> &dyn CrmSink {
        self.sink.as_ref()
    }

    /// Records per batch.
    pub fn batch_size(&self) -> usize {
        self.worker.delivery.batch
    }

    /// The number of `table`'s records the CRM said it holds after its last call, if it
    /// did, and when it said it.
    pub fn crm_total(&self, table: Table) -> Option<(u64, chrono::DateTime<Utc>)> {
        self.totals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&table)
            .copied()
    }

    /// Sends one batch with `send` (given the call's identity), retrying transient
    /// failures; `what` names the call in the log ("UpsertCompanies"), `key` is the
    /// batch's idempotency key (see [`crate::domain::crm::batch_key`]). None when
    /// shutdown stopped the retries (the batch is not delivered).
    pub async fn send<F, Fut>(
        &self,
        stage: Stage,
        table: Table,
        what: &'static str,
        key: String,
        send: F,
    ) -> Result<Option<SinkAck>>
    where
        F: Fn(SinkCall) -> Fut,
        Fut: Future<Output = Result<SinkAck>>,
    {
        let sequence = self.batches.fetch_add(1, Ordering::SeqCst) + 1;
        let call = SinkCall {
            tenant: self.tenant.clone(),
            run_id: self.run_id.clone(),
            idempotency_key: key.clone(),
        };
        let batch = format!("batch {sequence} (key {key})");
        let policy = self.worker.delivery;
        let started = tokio::time::Instant::now();
        let mut failed = 0;
        loop {
            let call_started = tokio::time::Instant::now();
            let outcome = match tokio::time::timeout(policy.call_timeout, send(call.clone())).await
            {
                Ok(outcome) => outcome,
                Err(_) => Err(AppError::Sink {
                    status: format!(
                        "no answer within {}",
                        human_duration(chrono_duration(policy.call_timeout))
                    ),
                    transient: true,
                }),
            };
            let took = call_started.elapsed();
            let (status, transient) = match outcome {
                Ok(ack) => {
                    crate::metrics::sink_call(what, SinkOutcome::Ok, took);
                    if let Some(total) = ack.total {
                        self.totals
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .insert(table, (total, self.worker.clock().now()));
                    }
                    return Ok(Some(ack));
                }
                Err(AppError::Sink { status, transient }) => (status, transient),
                Err(other) => {
                    crate::metrics::sink_call(what, SinkOutcome::Failed, took);
                    return Err(other);
                }
            };
            failed += 1;
            let wait = policy.wait(failed);
            let spent = started.elapsed();
            if !transient || !policy.retries(failed, spent) {
                crate::metrics::sink_call(what, SinkOutcome::Failed, took);
                let why = if transient {
                    format!(
                        "gave up after {failed} attempt(s) in {}",
                        human_duration(chrono_duration(spent))
                    )
                } else {
                    "not retried: the CRM refused it".to_owned()
                };
                return Err(AppError::Sink {
                    status: format!("{what} of {batch} failed: {status} ({why})"),
                    transient,
                });
            }
            crate::metrics::sink_call(what, SinkOutcome::Retried, took);
            let of = if policy.attempts > 0 {
                format!(" of {}", policy.attempts)
            } else {
                String::new()
            };
            self.event(
                stage,
                table,
                format!(
                    "{what} of {batch} failed: {status}; attempt {}{of} in {} (retried for up to {} in all)",
                    failed + 1,
                    human_duration(chrono_duration(wait)),
                    human_duration(chrono_duration(policy.batch_budget))
                ),
                json!({"sink_status": status, "attempt": failed, "idempotency_key": key}),
            )
            .await;
            tokio::time::sleep(wait).await;
            if self.worker.runs.stopping() {
                return Ok(None);
            }
        }
    }

    async fn event(&self, stage: Stage, table: Table, message: String, fields: serde_json::Value) {
        let e = NewEvent::new(self.tenant, Level::Warn, stage.as_str(), message)
            .run(self.run_id.as_str())
            .table(table.as_str())
            .fields(fields);
        self.worker
            .logs
            .append_or_report(e, self.worker.clock().now())
            .await;
    }
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How long a sink that fails every call is waited for under `p`, each call failing
    /// at once: the start of the last attempt.
    fn window(p: &DeliveryPolicy) -> (u32, Duration) {
        let (mut failed, mut spent) = (0, Duration::ZERO);
        loop {
            failed += 1;
            if !p.retries(failed, spent) {
                return (failed, spent);
            }
            spent += p.wait(failed);
        }
    }

    #[test]
    fn the_default_policy_waits_out_a_three_minute_deploy() {
        let p = DeliveryPolicy::default();
        let waits: Vec<u64> = (1..8).map(|n| p.wait(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 15, 15, 15]);
        let (attempts, last) = window(&p);
        // The last attempt starts after a 3-minute outage, within the budget.
        assert!(last >= Duration::from_secs(180), "{last:?}");
        assert!(last <= p.batch_budget, "{last:?}");
        assert!(attempts > 10, "the budget decides, not a count: {attempts}");
    }

    #[test]
    fn the_attempts_cap_ends_retries_before_the_budget_when_set() {
        let p = DeliveryPolicy {
            attempts: 3,
            ..DeliveryPolicy::default()
        };
        assert_eq!(window(&p), (3, Duration::from_secs(3)));
        let p = DeliveryPolicy {
            batch_budget: Duration::from_secs(10),
            ..DeliveryPolicy::default()
        };
        // 1 + 2 + 4 = 7 s spent; the next wait (8 s) would start past the budget.
        assert_eq!(window(&p), (4, Duration::from_secs(7)));
    }

    #[test]
    fn run_retries_back_off_and_end() {
        let r = RunRetries::default();
        let next: Vec<Option<u64>> = (0..4).map(|n| r.next(n).map(|d| d.as_secs())).collect();
        assert_eq!(next, [Some(60), Some(120), Some(240), None]);
        assert_eq!(RunRetries { max: 0, ..r }.next(0), None);
    }
}
