//! The operator's metrics, in Prometheus' text format at `GET /metrics` on the port gRPC
//! uses: every series erpsync records is named here, once, and recorded through the
//! `metrics` crate's macros; metrics-exporter-prometheus keeps them and writes the
//! exposition format. By default no label carries a tenant id, so the number of series
//! stays bounded however many tenants a server has; labels are tables, stages, statuses,
//! triggers, alert kinds and sink calls. An operator with few tenants may add a `tenant`
//! label to the per-tenant series ([`label_tenants`], `--metrics-tenant-label`).
//!
//! The recorder is process-wide (the `metrics` crate has one global recorder): several
//! servers in one process, as in the tests, share their series and the tenant label.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics::{counter, gauge, histogram, Label};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Where the metrics are served.
const METRICS_PATH: &str = "/metrics";

/// Histogram buckets, in seconds: from a 5 ms call to a 10-minute run.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Whether per-tenant series carry a `tenant` label.
static TENANT_LABEL: AtomicBool = AtomicBool::new(false);

/// Adds (or not) a `tenant` label to the series recorded per tenant from now on: runs,
/// run durations, records accepted and rejected, request-log bytes, alerts opened and
/// resolved. Each tenant then multiplies those series: for a server with few tenants.
pub fn label_tenants(on: bool) {
    TENANT_LABEL.store(on, Ordering::Relaxed);
}

/// `labels`, with the tenant's when the operator asked for it.
fn per_tenant(tenant: &str, mut labels: Vec<Label>) -> Vec<Label> {
    if TENANT_LABEL.load(Ordering::Relaxed) {
        labels.push(Label::new("tenant", tenant.to_owned()));
    }
    labels
}

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

/// `GET /metrics`: the exposition text, with what `sample` reads at each scrape (the
/// database pool, the open alerts). Without `token` it is open like health (no series
/// names a tenant); with one, a scrape must send `authorization: Bearer <token>` and
/// anything else is 401.
pub fn router<F, Fut>(sample: F, token: Option<String>) -> Router
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Sample> + Send,
{
    Router::new().route(
        METRICS_PATH,
        get(move |headers: HeaderMap| async move {
            if let Some(token) = &token {
                if !bearer_matches(&headers, token) {
                    return unauthorized();
                }
            }
            (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                )],
                render(sample().await),
            )
                .into_response()
        }),
    )
}

/// Whether the request carries `authorization: Bearer <token>`, compared in time that
/// does not depend on where it differs.
fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|sent| {
            let sent = sent.trim().as_bytes();
            sent.len() == token.len()
                && bool::from(subtle::ConstantTimeEq::ct_eq(sent, token.as_bytes()))
        })
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))],
        "GET /metrics needs the metrics token (authorization: Bearer ...)\n",
    )
        .into_response()
}

/// The exposition text of every series, with the gauges read at this scrape.
fn render(sample: Sample) -> String {
    let handle = handle();
    let pool = sample.pool;
    gauge!("erpsync_db_pool_connections", "state" => "idle").set(pool.idle as f64);
    gauge!("erpsync_db_pool_connections", "state" => "in_use")
        .set(pool.size.saturating_sub(pool.idle) as f64);
    for (kind, n) in sample.open_alerts.into_iter().flatten() {
        gauge!("erpsync_alerts_open", "kind" => kind).set(n as f64);
    }
    handle.run_upkeep();
    handle.render()
}

/// What a scrape reads beside the recorded series.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The database pool's connections.
    pub pool: PoolUse,
    /// Open alerts of every tenant by kind, every kind named (0 when none is open); None
    /// when the database could not be read (the gauges then keep their last values).
    pub open_alerts: Option<Vec<(&'static str, u64)>>,
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
        "Runs marked INTERRUPTED: left RUNNING by a dead server (lease takeovers), or handed over by a draining one."
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
    describe_counter!(
        "erpsync_retention_deleted_rows_total",
        "Rows the retention job deleted as older than their window, by table."
    );
    describe_counter!("erpsync_alerts_opened_total", "Alerts opened, by kind.");
    describe_counter!("erpsync_alerts_resolved_total", "Alerts resolved, by kind.");
    describe_gauge!(
        "erpsync_alerts_open",
        "Alerts open at the scrape, of every tenant, by kind."
    );
    describe_gauge!(
        "erpsync_log_followers",
        "StreamLogs streams open on this server."
    );
    describe_counter!(
        "erpsync_log_listener_reconnects_total",
        "Times the PostgreSQL LISTEN connection that hears other replicas' appends was \
         lost and listening again (followers poll while it is down)."
    );
    describe_gauge!(
        "erpsync_log_listener_up",
        "1 while the PostgreSQL LISTEN connection hears other replicas' appends, else 0 \
         (always 0 on SQLite)."
    );
    describe_gauge!(
        "erpsync_draining",
        "1 while this server drains (SIGTERM received: health NOT_SERVING, no new runs), else 0."
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

/// A run of `tenant` ended with `status`.
pub fn run_ended(
    tenant: &str,
    status: &'static str,
    trigger: &'static str,
    took: Option<Duration>,
) {
    let status = Label::new("status", status);
    let trigger = Label::new("trigger", trigger);
    counter!(
        "erpsync_runs_total",
        per_tenant(tenant, vec![status.clone(), trigger])
    )
    .increment(1);
    if let Some(took) = took {
        histogram!(
            "erpsync_run_duration_seconds",
            per_tenant(tenant, vec![status])
        )
        .record(took.as_secs_f64());
    }
}

/// A stage of a run ended.
pub fn stage_ended(stage: &'static str, took: Duration) {
    histogram!("erpsync_stage_duration_seconds", "stage" => stage).record(took.as_secs_f64());
}

/// `n` runs of dead servers were marked INTERRUPTED, or handed over by a drain.
pub fn runs_interrupted(n: usize) {
    counter!("erpsync_runs_interrupted_total").increment(n as u64);
}

/// The server drains (`true`) or serves.
pub fn draining(on: bool) {
    gauge!("erpsync_draining").set(if on { 1.0 } else { 0.0 });
}

/// A batch of `tenant`'s `table` was judged: `accepted` staged, `rejected` refused.
pub fn records_judged(tenant: &str, table: &'static str, accepted: u64, rejected: u64) {
    let labels = per_tenant(tenant, vec![Label::new("table", table)]);
    counter!("erpsync_records_accepted_total", labels.clone()).increment(accepted);
    counter!("erpsync_records_rejected_total", labels).increment(rejected);
}

/// A request-log row of `tenant` of `bytes` (as the tenant's usage counts it) was
/// committed.
pub fn request_logged(tenant: &str, bytes: u64) {
    counter!(
        "erpsync_request_log_bytes_total",
        per_tenant(tenant, vec![])
    )
    .increment(bytes);
}

/// The retention job deleted `n` rows of `table`.
pub fn retention_deleted(table: &'static str, n: u64) {
    // Incremented by 0 too: every table's series exists after the job's first pass.
    counter!("erpsync_retention_deleted_rows_total", "table" => table).increment(n);
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

/// An alert of `tenant` of `kind` was opened (`true`) or resolved.
pub fn alert(tenant: &str, kind: &'static str, opened: bool) {
    let labels = per_tenant(tenant, vec![Label::new("kind", kind)]);
    if opened {
        counter!("erpsync_alerts_opened_total", labels).increment(1);
    } else {
        counter!("erpsync_alerts_resolved_total", labels).increment(1);
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

/// The LISTEN connection was lost and is listening again.
pub fn log_listener_reconnected() {
    counter!("erpsync_log_listener_reconnects_total").increment(1);
}

/// The LISTEN connection is up (listening) or down.
pub fn log_listener_up(up: bool) {
    gauge!("erpsync_log_listener_up").set(if up { 1.0 } else { 0.0 });
}

#[cfg(test)]
mod tests {
    /// Every series this file records is in the README's Metrics table, which operators
    /// read to write their dashboards.
    #[test]
    fn the_readme_lists_every_series() {
        let readme = include_str!("../README.md");
        let table = readme
            .split("## Metrics")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("the README has a Metrics section");
        let source = include_str!("metrics.rs");
        let names: std::collections::BTreeSet<&str> = source
            .split('"')
            .filter(|s| s.len() > "erpsync_".len() && s.starts_with("erpsync_"))
            .filter(|s| s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
            .collect();
        assert!(names.len() > 15, "{names:?}");
        for name in names {
            assert!(
                table.contains(&format!("`{name}`")),
                "README's Metrics section does not list {name}"
            );
        }
    }
}
