//! The ingestion handler that gRPC (`ErpIngest.Push`) and HTTP (`POST /erp/v1/{table}`)
//! share: judge the batch, stage the good records, and log the request with the exact
//! response the client gets — success or not.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::Value;

use crate::domain::alert::AlertKind;
use crate::domain::batch::{self, Rejection, Rules, Warning};
use crate::domain::due::Moment;
use crate::domain::request_log::{cut_body, RequestLogEntry, Transport};
use crate::domain::run::{Level, NewEvent};
use crate::domain::tables::{self, Table, TableDef, TABLES};
use crate::domain::tenant::TenantId;
use crate::domain::text::{check, excerpt, MAX_ID_CHARS};
use crate::error::{AppError, FieldViolation, Result};
use crate::storage::due::Retry;
use crate::storage::request_log::{self, StoredBody};
use crate::storage::Db;
use crate::storage::{erp_counts, events, freshness, staging, tenants, trail};
use crate::throttle::{IngestSlot, IngestSlots, INGEST_ADMISSION_WAIT};

/// Ingestion limits, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest accepted request body (HTTP body or gRPC message), in bytes.
    pub max_body_bytes: usize,
    /// Most records in one batch.
    pub max_records: usize,
    /// Request bodies longer than this are stored cut, with the cut marked.
    pub log_body_cap: usize,
    /// How long an HTTP body may take to arrive (a body sent a byte a second is cut off).
    pub body_timeout: std::time::Duration,
    /// Most pushes in flight at once (their batches read and held in memory); 0: the
    /// database pool's share for ingestion ([`Db::ingest_share`]).
    pub max_in_flight: usize,
}

/// Default [`Limits::max_in_flight`]: the pool's share.
pub const DEFAULT_MAX_INGEST_IN_FLIGHT: usize = 0;

/// Default [`Limits::body_timeout`].
pub const DEFAULT_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Default [`Limits::max_body_bytes`].
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Default [`Limits::max_records`].
pub const DEFAULT_MAX_RECORDS: usize = 10_000;
/// Default [`Limits::log_body_cap`].
pub const DEFAULT_LOG_BODY_CAP: usize = 1024 * 1024;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_records: DEFAULT_MAX_RECORDS,
            log_body_cap: DEFAULT_LOG_BODY_CAP,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            max_in_flight: DEFAULT_MAX_INGEST_IN_FLIGHT,
        }
    }
}

/// What is known of a request before its batch is judged.
#[derive(Debug, Clone)]
pub struct RequestMeta {
    /// The tenant it reached.
    pub tenant: TenantId,
    /// gRPC or HTTP.
    pub transport: Transport,
    /// "ErpIngest/Push" or "POST /erp/v1/{table}".
    pub endpoint: String,
    /// The table named by the request.
    pub table: Option<String>,
    /// When it arrived.
    pub received_at: DateTime<Utc>,
    /// When handling began, for the duration.
    pub started: Instant,
    /// The request body, whole; it is cut when stored.
    pub request_body: RequestBody,
}

/// A request body as the request log keeps it.
#[derive(Debug, Clone)]
pub enum RequestBody {
    /// The text as received (HTTP), or a note standing in for a body not kept.
    Text(String),
    /// A gRPC push: rendered as JSON from its records when it is logged, off the
    /// request's critical path.
    Push {
        /// The request's tenant_id field.
        tenant_id: String,
        /// The request's table field.
        table: String,
    },
}

impl RequestBody {
    /// The body as JSON text; `records` are the request's records (for a push).
    pub fn render(&self, records: &[Value]) -> String {
        #[derive(Serialize)]
        struct LoggedPush<'a> {
            tenant_id: &'a str,
            table: &'a str,
            records: &'a [Value],
        }
        match self {
            Self::Text(t) => t.clone(),
            Self::Push { tenant_id, table } => serde_json::to_string(&LoggedPush {
                tenant_id,
                table,
                records,
            })
            .unwrap_or_default(),
        }
    }
}

/// Batches from this size on are judged in two halves on two threads.
const PARALLEL_FROM: usize = 64;

/// The answer to a push, the same on both transports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PushReply {
    /// The request-log entry of this request.
    pub request_id: String,
    /// Records kept.
    pub accepted: u32,
    /// Records not kept, by index.
    pub rejected: Vec<Rejection>,
    /// Fields of kept records that their table does not know, by index.
    pub warnings: Vec<Warning>,
}

/// A request that failed as a whole, after it was logged: its error, the id of its
/// request-log entry, and the JSON body logged as its answer. A request that met a
/// database outage could not be logged: it has no id.
#[derive(Debug)]
pub struct Failure {
    /// What went wrong.
    pub error: AppError,
    /// The request-log entry, for support to find it.
    pub request_id: Option<String>,
    /// `{"error":{"code":…,"message":…},"request_id":…}`, as logged.
    pub body: String,
}

/// The ingestion service: judges, stages and logs what ERPs send (pushes over gRPC and
/// HTTP, and the pages the View collect stage reads); cheap to clone.
#[derive(Clone, Debug)]
pub struct Ingestor {
    db: Db,
    limits: Limits,
    slots: IngestSlots,
}

impl Ingestor {
    /// An ingestor over `db` under `limits`.
    pub fn new(db: Db, limits: Limits) -> Self {
        let max = match limits.max_in_flight {
            0 => db.ingest_share(),
            n => n,
        };
        Self {
            slots: IngestSlots::new(max, INGEST_ADMISSION_WAIT),
            db,
            limits,
        }
    }

    /// One of ingestion's slots, taken before a push's body is read (see [`IngestSlots`]);
    /// busy (RESOURCE_EXHAUSTED / 429) when none came free within the wait.
    pub async fn admit(&self) -> Result<IngestSlot> {
        self.slots.admit().await
    }

    /// Ingestion's slots (how many, how many taken).
    pub fn slots(&self) -> &IngestSlots {
        &self.slots
    }

    /// The limits it applies.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Judges, stages and logs a batch. On success the reply has been logged exactly as
    /// returned (`.1` is its JSON); on failure the error has been logged too.
    pub async fn push(
        &self,
        meta: RequestMeta,
        records: Arc<Vec<Value>>,
    ) -> Result<(PushReply, String), Failure> {
        match self.push_inner(&meta, &records).await {
            Ok(done) => Ok(done),
            Err(err) => Err(self.log_failure(&meta, &records, err).await),
        }
    }

    async fn push_inner(
        &self,
        meta: &RequestMeta,
        records: &Arc<Vec<Value>>,
    ) -> Result<(PushReply, String)> {
        let table_id = meta.table.as_deref().unwrap_or_default();
        check("table", table_id, MAX_ID_CHARS).map_err(|v| AppError::InvalidFields(vec![v]))?;
        let table = tables::find(table_id).ok_or_else(|| unknown_table(table_id))?;
        if records.is_empty() {
            return Err(AppError::InvalidArgument(
                "empty batch: send at least one record in \"records\"".into(),
            ));
        }
        let max = self.limits.max_records;
        if records.len() > max {
            return Err(AppError::InvalidArgument(format!(
                "too many records: {} in one batch, the limit is {max}; split the batch",
                records.len()
            )));
        }
        let tenant = tenants::require(&self.db, &meta.tenant).await?;
        // The body is cut and compressed on another thread while this one judges the batch,
        // so neither waits on the other, and neither runs inside the write transaction.
        let cap = self.limits.log_body_cap;
        let (source, all) = (meta.request_body.clone(), Arc::clone(records));
        let body = tokio::task::spawn_blocking(move || {
            let (cut, truncated) = cut_body(&source.render(&all), cap);
            (StoredBody::encode(&cut), truncated)
        });
        let rules = Rules {
            tz: tenant.timezone,
            strict_fields: tenant.strict_fields,
        };
        let judged = judge(table, records, rules).await?;
        let (body, truncated) = body.await.map_err(anyhow::Error::from)?;
        let staged = self
            .stage(Staging {
                meta,
                table,
                zone: tenant.timezone,
                judged,
                batch_size: records.len(),
                body,
                truncated,
                answer: Answer::Push,
            })
            .await?;
        Ok((staged.reply, staged.response))
    }

    /// Stages a judged batch and logs it as one request, in one transaction: stage, then
    /// the answer (the judge's rejections with the versions staging found stale), then
    /// the request-log entry with that answer, then commit. Pushes and the pages of a
    /// View read both come through here.
    pub async fn stage(&self, s: Staging<'_>) -> Result<Staged> {
        let meta = s.meta;
        let request_id = uuid::Uuid::new_v4().to_string();
        let txn = self.db.begin_write().await?;
        let outcome = staging::stage(
            &txn,
            staging::StageBatch {
                tenant: &meta.tenant,
                table: s.table.id,
                records: s.judged.valid,
                request_id: &request_id,
                received_at: meta.received_at,
                zone: s.zone,
            },
        )
        .await?;
        let mut rejected = s.judged.rejected;
        rejected.extend(outcome.stale);
        rejected.sort_by_key(|r| r.index);
        // A record staging found stale was not kept: no warning about its fields.
        let mut unknown = s.judged.unknown;
        unknown.retain(|u| {
            rejected
                .binary_search_by_key(&u.index, |r| r.index)
                .is_err()
        });
        let (warnings, unknown_count) = batch::warnings(s.table, &unknown);
        trail::received(
            &txn,
            &meta.tenant,
            s.table.id,
            &request_id,
            meta.received_at,
            &outcome.accepted,
            &rejected,
        )
        .await?;
        let reply = PushReply {
            request_id: request_id.clone(),
            accepted: u32::try_from(s.batch_size - rejected.len()).unwrap_or(u32::MAX),
            rejected,
            warnings,
        };
        let response = match s.answer {
            Answer::Push => serde_json::to_string(&reply).unwrap_or_default(),
            Answer::ViewPage { records } => {
                cut_body(
                    &serde_json::json!({
                        "rows_read": s.batch_size,
                        "accepted": reply.accepted,
                        "rejected": reply.rejected,
                        "records": records,
                    })
                    .to_string(),
                    self.limits.log_body_cap,
                )
                .0
            }
        };
        let mut e = entry(meta, &request_id, "OK", 200, &reply, response.clone(), None);
        e.request_truncated = s.truncated;
        e.warnings = unknown_count;
        let logged = request_log::insert(&txn, &e, &s.body).await?;
        if reply.accepted > 0 {
            freshness::arrived_in(&txn, &meta.tenant, s.table.table, meta.received_at).await?;
        }
        txn.commit().await?;
        if reply.accepted > 0 {
            self.fresh_again(&meta.tenant, s.table.table, meta.received_at)
                .await;
        }
        crate::metrics::request_logged(meta.tenant.as_str(), logged);
        crate::metrics::records_judged(
            meta.tenant.as_str(),
            s.table.id,
            u64::from(reply.accepted),
            reply.rejected.len() as u64,
        );
        Ok(Staged { reply, response })
    }

    /// After records of `table` were accepted at `at`: resolves the table's STALE_TABLE
    /// alert if it has one open, logs that, and has the scheduler watch the table's next
    /// limit (its due instant). A failure is only reported: the records are staged, and
    /// the table's next accepted batch tries again.
    async fn fresh_again(&self, tenant: &TenantId, table: Table, at: DateTime<Utc>) {
        let resolved = async {
            if !freshness::resolve_on_arrival(&self.db, tenant, table, at).await? {
                return Ok(false);
            }
            tenants::refresh_due(&self.db, tenant, Retry::Keep, Moment::Changed(at), None).await?;
            let message = format!("alert STALE_TABLE resolved: {table} records arrived");
            let e = NewEvent::new(tenant, Level::Info, "alert", message)
                .table(table.as_str())
                .field("alert", AlertKind::StaleTable.as_str())
                .field("table", table.as_str());
            events::append(&self.db, e, at).await.map(|_| true)
        };
        match resolved.await {
            Ok(true) => {
                tracing::info!(tenant = %tenant, table = %table, "alert STALE_TABLE resolved")
            }
            Ok(false) => {}
            Err(e) => {
                tracing::error!(tenant = %tenant, table = %table, error = ?anyhow::Error::from(e), "cannot resolve the table's STALE_TABLE alert");
            }
        }
    }

    /// Logs a request that failed as a whole, and hands the failure back for answering.
    /// `records` are the request's records, when it got as far as having them. A request
    /// that failed because the database does not answer is not logged: the log is in that
    /// database, and trying would only keep the caller waiting another timeout.
    pub async fn log_failure(
        &self,
        meta: &RequestMeta,
        records: &[Value],
        err: AppError,
    ) -> Failure {
        // Busy likewise: logging would take the connection there is none of.
        if let AppError::Unavailable(_) | AppError::Busy(_) = err {
            return Failure {
                body: error_json(&err, None),
                error: err,
                request_id: None,
            };
        }
        let request_id = uuid::Uuid::new_v4().to_string();
        let body = error_json(&err, Some(&request_id));
        let outcome = (
            err.code_name(),
            err.http_status(),
            Some(err.public_message()),
        );
        if self
            .log_alone(meta, records, &request_id, outcome, body.clone())
            .await
        {
            Failure {
                error: err,
                request_id: Some(request_id),
                body,
            }
        } else {
            // No entry, no id: the caller is never given an id support cannot find.
            Failure {
                body: error_json(&err, None),
                error: err,
                request_id: None,
            }
        }
    }

    /// Checks and stores the ERP's row counts of its tables.
    pub async fn report_counts(
        &self,
        tenant: &TenantId,
        counts: std::collections::HashMap<String, u64>,
    ) -> Result<()> {
        let counts: Vec<(String, u64)> = counts.into_iter().collect();
        let bad_keys: Vec<FieldViolation> = counts
            .iter()
            .filter_map(|(t, _)| check("counts", t, MAX_ID_CHARS).err())
            .collect();
        if !bad_keys.is_empty() {
            return Err(AppError::InvalidFields(bad_keys));
        }
        if counts.is_empty() {
            return Err(AppError::InvalidArgument(
                "counts is empty: send {\"table id\": rows on the ERP side}".into(),
            ));
        }
        if let Some((unknown, _)) = counts.iter().find(|(t, _)| tables::find(t).is_none()) {
            return Err(unknown_table(unknown));
        }
        let too_large: Vec<FieldViolation> = counts
            .iter()
            .filter(|(_, n)| *n > tables::MAX_ROW_COUNT)
            .map(|(t, _)| {
                FieldViolation::new(
                    format!("counts[{t}]"),
                    format!("must be at most {}", tables::MAX_ROW_COUNT),
                )
            })
            .collect();
        if !too_large.is_empty() {
            return Err(AppError::InvalidFields(too_large));
        }
        tenants::require(&self.db, tenant).await?;
        erp_counts::report(&self.db, tenant, &counts, Utc::now()).await?;
        tracing::info!(tenant = %tenant, tables = counts.len(), "ERP counts reported");
        Ok(())
    }

    /// Logs a request other than a push (ReportCounts) that succeeded with `response_body`.
    pub async fn log_answered(&self, meta: &RequestMeta, response_body: String) {
        let request_id = uuid::Uuid::new_v4().to_string();
        self.log_alone(meta, &[], &request_id, ("OK", 200, None), response_body)
            .await;
    }

    /// Writes the log entry of a request that staged nothing, in a transaction of its own:
    /// `outcome` is its status, HTTP status and error message. A failure to log is only
    /// reported (the caller has its answer either way); returns whether the entry exists.
    async fn log_alone(
        &self,
        meta: &RequestMeta,
        records: &[Value],
        request_id: &str,
        (status, http_status, error): (&str, u16, Option<String>),
        response_body: String,
    ) -> bool {
        let reply = PushReply {
            request_id: request_id.to_owned(),
            accepted: 0,
            rejected: Vec::new(),
            warnings: Vec::new(),
        };
        let mut e = entry(
            meta,
            request_id,
            status,
            http_status,
            &reply,
            response_body,
            error,
        );
        (e.request_body, e.request_truncated) =
            cut_body(&meta.request_body.render(records), self.limits.log_body_cap);
        match request_log::insert_alone(&self.db, &e).await {
            Ok(()) => true,
            Err(log_err) => {
                tracing::error!(error = ?anyhow::Error::from(log_err), tenant = %meta.tenant, "cannot log a request");
                false
            }
        }
    }
}

/// A judged batch on its way to staging, from a push or a page of a View read.
pub struct Staging<'a> {
    /// The request it came in.
    pub meta: &'a RequestMeta,
    /// Its table.
    pub table: &'static TableDef,
    /// The tenant's zone (an invoice's civil date of issue is taken in it).
    pub zone: Tz,
    /// The judge's verdict on its records.
    pub judged: batch::Judged,
    /// How many records the request carried.
    pub batch_size: usize,
    /// The request body as the log keeps it.
    pub body: StoredBody,
    /// Whether that body was cut.
    pub truncated: bool,
    /// Which answer the request gets (and the log keeps).
    pub answer: Answer<'a>,
}

/// The answer a staged request gets.
pub enum Answer<'a> {
    /// A push's: the [`PushReply`].
    Push,
    /// A View page's: rows read, accepted, rejections and the records as read.
    ViewPage {
        /// The page's records.
        records: &'a [Value],
    },
}

/// What a staged request was answered, as the log keeps it.
#[derive(Debug)]
pub struct Staged {
    /// Accepted and rejected records, with the request's log id.
    pub reply: PushReply,
    /// The answer's JSON text.
    pub response: String,
}

/// Judges a batch; a large one in two halves at once (the other half on a blocking thread).
async fn judge(
    table: &'static TableDef,
    records: &Arc<Vec<Value>>,
    rules: Rules,
) -> Result<batch::Judged> {
    if records.len() < PARALLEL_FROM {
        return Ok(batch::judge_under(table, records, rules));
    }
    let half = records.len() / 2;
    let all = Arc::clone(records);
    let second =
        tokio::task::spawn_blocking(move || batch::judge_each(table, &all[half..], half, rules));
    let mut judged = batch::judge_each(table, &records[..half], 0, rules);
    judged.extend(second.await.map_err(anyhow::Error::from)?);
    Ok(batch::settle(judged))
}

/// The error for a table id that is not in the catalog, listing the valid ones.
pub fn unknown_table(id: &str) -> AppError {
    let valid: Vec<&str> = TABLES.iter().map(|t| t.id).collect();
    AppError::NotFound(format!(
        "unknown table {}: valid tables are {}",
        excerpt(id),
        valid.join(", ")
    ))
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: String,
}

/// The JSON body of an error answer: `{"error":{"code":"NOT_FOUND","message":"…"}}`,
/// with the request-log id when the request was logged.
pub fn error_json(err: &AppError, request_id: Option<&str>) -> String {
    serde_json::to_string(&ErrorBody {
        error: ErrorDetail {
            code: err.code_name(),
            message: err.public_message(),
        },
        request_id,
    })
    .unwrap_or_default()
}

/// The log entry of an answered request; its body fields are filled by the caller
/// (the success path stores a pre-encoded body, the failure path the cut text).
fn entry(
    meta: &RequestMeta,
    request_id: &str,
    status: &str,
    http_status: u16,
    reply: &PushReply,
    response_body: String,
    error: Option<String>,
) -> RequestLogEntry {
    RequestLogEntry {
        id: request_id.to_owned(),
        tenant: meta.tenant.clone(),
        received_at: meta.received_at,
        endpoint: meta.endpoint.clone(),
        table: meta.table.clone(),
        transport: meta.transport,
        status: status.to_owned(),
        http_status,
        duration_ms: u64::try_from(meta.started.elapsed().as_millis()).unwrap_or(u64::MAX),
        accepted: reply.accepted,
        rejected: u32::try_from(reply.rejected.len()).unwrap_or(u32::MAX),
        // The staging path sets the count of every unknown field (the reply lists a part).
        warnings: 0,
        error,
        request_body: String::new(),
        request_truncated: false,
        response_body,
    }
}
