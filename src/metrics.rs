//! The operator's metrics, in Prometheus' text format at `GET /metrics` on the port gRPC
//! uses: every series erpsync records is named here, once, and recorded through the
//! `metrics` crate's macros; metrics-exporter-prometheus keeps them and writes the
//! exposition format. No label carries a tenant id, so the number of series stays bounded
//! however many tenants a server has; labels are tables, stages, statuses, triggers,
//! alert kinds and sink calls.
//!
//! The recorder is process-wide (the `metrics` crate has one global recorder): several
//! servers in one process, as in the tests, share their series.

use std::sync::OnceLock;
use std::time::Duration;

use axum::http::{header, HeaderValue};
use axum::routing::get;
use axum::Router;
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::domain::run::{RunStatus, RunTrigger};

/// Where the metrics are served.
const METRICS_PATH: &str = "/metrics";

/// Histogram buckets, in seconds: from a 5 ms call to a 10-minute run.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The process's recorder, installed on first use.
fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new();
        // The buckets are constant and valid: only an empty list is refused.
        let builder = match builder.set_buckets(BUCKETS) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "metrics buckets refused; histograms become summaries");
                PrometheusBuilder::new()
            }
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("another metrics recorder is installed: /metrics stays empty");
        }
        describe();
        handle
    })
}

/// Installs the recorder (idempotent); the server calls it at start so that series
/// recorded before the first scrape are kept.
pub fn install() {
    handle();
}

/// `GET /metrics`: the exposition text, with the database pool read by `pool` at each
/// scrape. Like health, it needs no token: no series names a tenant.
pub fn router<F>(pool: F) -> Router
where
    F: Fn() -> PoolUse + Clone + Send + Sync + 'static,
{
    Router::new().route(
        METRICS_PATH,
        get(move || async move {
            (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                )],
                render(pool()),
            )
        }),
    )
}

/// The exposition text of every series, with the database pool's `idle` and `size` read
/// now.
fn render(pool: PoolUse) -> String {
    let handle = handle();
    gauge!("erpsync_db_pool_connections", "state" => "idle").set(pool.idle as f64);
    gauge!("erpsync_db_pool_connections", "state" => "in_use")
        .set(pool.size.saturating_sub(pool.idle) as f64);
    handle.run_upkeep();
    handle.render()
}

/// The database pool's connections at a scrape.
#[derive(Debug, Clone, Copy)]
pub struct PoolUse {
    /// Open connections.
    pub size: u32,
    /// Of them, waiting for a query.
    pub idle: u32,
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "erpsync_runs_total",
        "Sync runs ended, by status and trigger."
    );
    describe_histogram!(
        "erpsync_run_duration_seconds",
        Unit::Seconds,
        "Sync runs from start to end, by status."
    );
    describe_histogram!(
        "erpsync_stage_duration_seconds",
        Unit::Seconds,
        "Stages of sync runs, by stage."
    );
    describe_counter!(
        "erpsync_runs_interrupted_total",
        "Runs left RUNNING by a stopped server and marked INTERRUPTED (lease takeovers)."
    );
    describe_counter!(
        "erpsync_records_accepted_total",
        "ERP records staged by pushes and View pages, by table."
    );
    describe_counter!(
        "erpsync_records_rejected_total",
        "ERP records rejected, with their reason in the request log, by table."
    );
    describe_counter!(
        "erpsync_request_log_bytes_total",
        Unit::Bytes,
        "Request-log rows committed, in bytes as tenants' usage counts them (body as stored)."
    );
    describe_counter!(
        "erpsync_sink_calls_total",
        "Calls to the CRM sink, by call and outcome (ok, retried, failed)."
    );
    describe_histogram!(
        "erpsync_sink_call_duration_seconds",
        Unit::Seconds,
        "Calls to the CRM sink, by call."
    );
    describe_counter!("erpsync_alerts_opened_total", "Alerts opened, by kind.");
    describe_counter!("erpsync_alerts_resolved_total", "Alerts resolved, by kind.");
    describe_gauge!(
        "erpsync_log_followers",
        "StreamLogs streams open on this server."
    );
    describe_gauge!(
        "erpsync_ingest_in_flight",
        "Pushes (gRPC and HTTP) admitted and not yet answered: batches held in memory."
    );
    describe_counter!(
        "erpsync_ingest_busy_total",
        "Pushes refused RESOURCE_EXHAUSTED / 429 because ingestion's work in flight was at its limit."
    );
    describe_counter!(
        "erpsync_db_pool_timeouts_total",
        "Calls that waited out the database pool's acquire timeout, by verdict: busy (every connection in use, the database answering) or outage."
    );
    describe_gauge!(
        "erpsync_db_pool_connections",
        "Database pool connections at the scrape, idle or in use."
    );
}

/// A run ended with `status`.
pub fn run_ended(status: RunStatus, trigger: RunTrigger, took: Option<Duration>) {
    counter!("erpsync_runs_total", "status" => status.as_str(), "trigger" => trigger.as_str())
        .increment(1);
    if let Some(took) = took {
        histogram!("erpsync_run_duration_seconds", "status" => status.as_str())
            .record(took.as_secs_f64());
    }
}

/// A stage of a run ended.
pub fn stage_ended(stage: &'static str, took: Duration) {
    histogram!("erpsync_stage_duration_seconds", "stage" => stage).record(took.as_secs_f64());
}

/// `n` runs of dead servers were marked INTERRUPTED.
pub fn runs_interrupted(n: usize) {
    counter!("erpsync_runs_interrupted_total").increment(n as u64);
}

/// A batch of `table` was judged: `accepted` staged, `rejected` refused.
pub fn records_judged(table: &'static str, accepted: u64, rejected: u64) {
    counter!("erpsync_records_accepted_total", "table" => table).increment(accepted);
    counter!("erpsync_records_rejected_total", "table" => table).increment(rejected);
}

/// A request-log row of `bytes` (as the tenant's usage counts it) was committed.
pub fn request_logged(bytes: u64) {
    counter!("erpsync_request_log_bytes_total").increment(bytes);
}

/// How a call to the CRM sink ended.
#[derive(Debug, Clone, Copy)]
pub enum SinkOutcome {
    /// Acknowledged.
    Ok,
    /// Failed transiently; tried again.
    Retried,
    /// Failed for good (refused, or retried until its budget ran out).
    Failed,
}

/// A call `call` ("UpsertCompanies", …) to the CRM sink took `took` and ended `outcome`.
pub fn sink_call(call: &'static str, outcome: SinkOutcome, took: Duration) {
    let outcome = match outcome {
        SinkOutcome::Ok => "ok",
        SinkOutcome::Retried => "retried",
        SinkOutcome::Failed => "failed",
    };
    counter!("erpsync_sink_calls_total", "call" => call, "outcome" => outcome).increment(1);
    histogram!("erpsync_sink_call_duration_seconds", "call" => call).record(took.as_secs_f64());
}

/// An alert of `kind` was opened (`true`) or resolved.
pub fn alert(kind: &'static str, opened: bool) {
    if opened {
        counter!("erpsync_alerts_opened_total", "kind" => kind).increment(1);
    } else {
        counter!("erpsync_alerts_resolved_total", "kind" => kind).increment(1);
    }
}

/// A push that holds one of ingestion's slots, counted in `erpsync_ingest_in_flight` from
/// [`counted`](Self::counted) until dropped.
#[derive(Debug)]
pub struct IngestInFlight(());

impl IngestInFlight {
    /// Counts one more push in flight.
    pub fn counted() -> Self {
        gauge!("erpsync_ingest_in_flight").increment(1.0);
        Self(())
    }
}

impl Drop for IngestInFlight {
    fn drop(&mut self) {
        gauge!("erpsync_ingest_in_flight").decrement(1.0);
    }
}

/// A push was refused for busy: ingestion's slots were all taken.
pub fn ingest_busy() {
    counter!("erpsync_ingest_busy_total").increment(1);
}

/// A call waited out the pool's acquire timeout; `busy` is the verdict (else an outage).
pub fn db_pool_timeout(busy: bool) {
    let verdict = if busy { "busy" } else { "outage" };
    counter!("erpsync_db_pool_timeouts_total", "verdict" => verdict).increment(1);
}

/// A StreamLogs stream being served, counted in `erpsync_log_followers` from
/// [`counted`](Self::counted) until dropped (however the stream ends).
#[derive(Debug)]
pub struct LogFollower(());

impl LogFollower {
    /// Counts one more follower.
    pub fn counted() -> Self {
        gauge!("erpsync_log_followers").increment(1.0);
        Self(())
    }
}

impl Drop for LogFollower {
    fn drop(&mut self) {
        gauge!("erpsync_log_followers").decrement(1.0);
    }
}
