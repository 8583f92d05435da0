//! The collect stage of a View integration (their administration is
//! [`crate::view_admin`]): every configured view is checked first (the ERP database
//! reachable, each view and column present and of a fitting type), so a broken
//! configuration fails the run before anything is staged; then each view is read in
//! keyset pages, every page judged like a pushed batch, staged, and logged in the request
//! log as `view:<name>`. A full snapshot then stages the deletion of every record the view
//! no longer returns (the delete guard holds them when they are too many); an incremental
//! read records where it stopped.
use std::time::Instant;

use chrono::Utc;
use serde_json::{json, Map, Value};

use super::ctx::Ctx;
use crate::domain::batch::{self, ValidRecord};
use crate::domain::hash::Fnv1a;
use crate::domain::record::Kind;
use crate::domain::request_log::{cut_body, Transport};
use crate::domain::run::{Level, Stage};
use crate::domain::tables::{self, Table, TableDef};
use crate::domain::tenant::Tenant;
use crate::domain::view::{field_role, Backend, Category, Mode, Role, ViewConfig, ViewTable};
use crate::error::{AppError, Result};
use crate::ingest::{Answer, RequestBody, RequestMeta, Staging};
use crate::storage::request_log::StoredBody;
use crate::storage::{pending_deletes, staging, view_grants, views};
use crate::viewdb::{Column, Cursor, ErpDb, PageQuery, PageRow, PageSpec, Param};

/// Staged ids compared with a snapshot per read, and tombstones staged per request.
const DELETE_PAGE: u64 = 5_000;

/// One configured view, checked against the ERP's catalog.
pub(crate) struct Plan<'c> {
    cfg: &'c ViewTable,
    def: &'static TableDef,
    query: PageQuery,
    /// The erpsync field of each value column, in query order, with its column category.
    fields: Vec<(String, Category)>,
    /// What an incremental watermark belongs to: reading another view, key or
    /// watermark column starts over.
    fingerprint: String,
}

/// What reading one view did.
#[derive(Debug, Default)]
struct Read {
    rows: u64,
    pages: u64,
    accepted: u64,
    rejected: u64,
    deleted: u64,
    interrupted: bool,
}

/// Reads every configured view of a VIEW tenant into staging.
pub(super) async fn collect(ctx: &mut Ctx<'_>, tenant: &Tenant) -> Result<()> {
    let Some((cfg, named_by)) =
        views::stored(&ctx.worker.db, ctx.tenant, ctx.worker.views.key()).await?
    else {
        return Err(AppError::FailedPrecondition(format!(
            "tenant {} is a VIEW integration without a View configuration: set one with \
             `erpsync tenant set-view` or SetViewConfig",
            ctx.tenant
        )));
    };
    let started = Instant::now();
    let received_at = ctx.worker.clock().now();
    // The gate again at every run: a grant revoked since the URL was stored stops it here.
    let grants = view_grants::of_tenant(&ctx.worker.db, ctx.tenant).await?;
    let mut erp = match ctx.worker.views.connect(&cfg, named_by, &grants).await {
        Ok(erp) => erp,
        Err(e) => {
            let message = format!(
                "cannot connect to the ERP database {}: {e}",
                cfg.redacted_url()
            );
            log_failure(ctx, "view:*", None, &message, received_at, started).await;
            return Err(AppError::FailedPrecondition(message));
        }
    };
    let mut plans = Vec::new();
    let mut problems = Vec::new();
    for t in &cfg.tables {
        match plan(&mut erp, &cfg, t).await {
            Ok(p) => plans.push(p),
            Err(p) => {
                let endpoint = format!("view:{}", t.view);
                log_failure(ctx, &endpoint, Some(&t.table), &p, received_at, started).await;
                problems.push(p);
            }
        }
    }
    if !problems.is_empty() {
        erp.close().await;
        return Err(AppError::FailedPrecondition(format!(
            "nothing was read: {}",
            problems.join("; ")
        )));
    }
    let mut result = Ok(());
    // Rows read from the ERP so far, every view together: the stage's count.
    let mut read_before = 0;
    for p in &plans {
        match read(ctx, &mut erp, tenant, p, read_before).await {
            Ok(r) => {
                read_before += r.rows;
                let mode = p.cfg.mode.as_str();
                ctx.event(
                    Level::Info,
                    Stage::Collect,
                    Some(p.def.id),
                    format!(
                        "view {} ({mode}): {} rows read in {} pages, {} accepted, {} rejected, {} deletions staged",
                        p.cfg.view, r.rows, r.pages, r.accepted, r.rejected, r.deleted
                    ),
                    json!({"view": p.cfg.view, "mode": mode, "rows": r.rows, "accepted": r.accepted,
                           "rejected": r.rejected, "deleted": r.deleted}),
                )
                .await;
                if r.interrupted {
                    break;
                }
            }
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    erp.close().await;
    result
}

/// Checks one view against the catalog: every problem found, in one message that names
/// the view and the columns.
pub(crate) async fn plan<'c>(
    erp: &mut ErpDb,
    cfg: &ViewConfig,
    t: &'c ViewTable,
) -> Result<Plan<'c>, String> {
    let view = &t.view;
    let def = tables::find(&t.table)
        .ok_or_else(|| format!("view {view}: unknown table {:?}", t.table))?;
    let columns = erp
        .columns(view)
        .await
        .map_err(|e| format!("view {view}: cannot read its columns: {e}"))?;
    if columns.is_empty() {
        return Err(format!(
            "view {view} (table {}) does not exist in the ERP database, or its user cannot read it",
            def.id
        ));
    }
    let backend = erp.backend();
    let mut problems = Vec::new();
    let mut find = |name: &str, role: Role, what: &str| -> Option<Column> {
        let exact = columns.iter().find(|c| c.name == name);
        // MySQL and SQLite column names are case-insensitive; PostgreSQL's are not once quoted.
        let found = exact.or_else(|| {
            (backend != Backend::Postgres)
                .then(|| columns.iter().find(|c| c.name.eq_ignore_ascii_case(name)))
                .flatten()
        });
        match found {
            None => {
                let hint = columns
                    .iter()
                    .find(|c| c.name.eq_ignore_ascii_case(name))
                    .map(|c| format!(" (did you mean {:?}?)", c.name))
                    .unwrap_or_default();
                let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
                problems.push(format!(
                    "view {view}: column {name} ({what}) is missing{hint}; the view has {}",
                    names.join(", ")
                ));
                None
            }
            Some(c) if !role.accepts(c.category) => {
                problems.push(format!(
                    "view {view}: column {name} ({what}) is of type {} ({}), which cannot hold {what}: it needs {}",
                    c.declared,
                    c.category.describe(),
                    role.wants()
                ));
                None
            }
            Some(c) => Some(c.clone()),
        }
    };
    let key = find(&t.key, Role::Key, "the key");
    let watermark = t
        .watermark
        .as_deref()
        .map(|w| find(w, Role::Watermark, "the watermark"));
    let mut values = Vec::new();
    let mut fields = Vec::new();
    for (field, column) in &t.columns {
        if let Some(c) = find(column, field_role(def.id, field), &format!("field {field}")) {
            fields.push((field.clone(), c.category));
            values.push(c);
        }
    }
    let deleted = t
        .deleted
        .as_deref()
        .map(|d| find(d, Role::Deleted, "the deleted flag"));
    let (Some(key), true) = (key, problems.is_empty()) else {
        return Err(problems.join("; "));
    };
    let deleted = deleted.flatten();
    let query = PageQuery::new(PageSpec {
        backend,
        view,
        key,
        watermark: watermark.flatten(),
        incremental: t.mode == Mode::Incremental,
        values: &values,
        deleted: deleted.as_ref(),
        limit: cfg.page_size,
    });
    Ok(Plan {
        cfg: t,
        def,
        query,
        fields,
        fingerprint: format!(
            "{}|{}|{}",
            t.view,
            t.key,
            t.watermark.as_deref().unwrap_or_default()
        ),
    })
}

/// Reads one view whole (full) or from its watermark (incremental), counting its rows
/// after the `read_before` of the views read before it in the run's progress.
async fn read(
    ctx: &mut Ctx<'_>,
    erp: &mut ErpDb,
    tenant: &Tenant,
    p: &Plan<'_>,
    read_before: u64,
) -> Result<Read> {
    let db = &ctx.worker.db;
    let table = p.def.id;
    let view = &p.cfg.view;
    let incremental = p.cfg.mode == Mode::Incremental;
    let mut cursor = if incremental {
        views::watermark(db, ctx.tenant, table, &p.fingerprint).await?
    } else {
        None
    };
    let mut out = Read::default();
    // A full snapshot remembers the ids it read (as 64-bit hashes: 8 bytes each) to find
    // the staged records it no longer has.
    let mut seen: Vec<i64> = Vec::new();
    let endpoint = format!("view:{view}");
    if let Err(e) = erp.begin().await {
        let message = format!("view {view}: cannot start reading: {e}");
        log_failure(
            ctx,
            &endpoint,
            Some(table),
            &message,
            ctx.worker.clock().now(),
            Instant::now(),
        )
        .await;
        return Err(AppError::FailedPrecondition(message));
    }
    loop {
        if ctx.worker.runs.stopping() {
            out.interrupted = true;
            break;
        }
        let started = Instant::now();
        let received_at = ctx.worker.clock().now();
        let (sql, params) = p.query.sql(cursor.as_ref());
        let rows = match erp.rows(&sql, &params).await {
            Ok(rows) => rows,
            Err(e) => {
                let message = format!("view {view}: reading a page failed: {e}");
                log_failure(ctx, &endpoint, Some(table), &message, received_at, started).await;
                return Err(AppError::FailedPrecondition(message));
            }
        };
        let full_page = rows.len() >= p.query.limit() as usize;
        // A read that finds nothing new is logged too, except the empty page after a
        // full one.
        if rows.is_empty() && out.pages > 0 {
            break;
        }
        let rows: Vec<PageRow> = rows.into_iter().map(|r| p.query.split(r)).collect();
        if !incremental {
            seen.extend(rows.iter().filter_map(|r| r.key.as_deref()).map(id_hash));
        }
        let records: Vec<Value> = rows.iter().map(|r| record(p, r)).collect();
        let judged = batch::judge(p.def, &records, tenant.timezone);
        let params: Vec<Value> = params.iter().map(param_json).collect();
        let request = json!({"query": sql, "params": params}).to_string();
        let accepted = stage_page(
            ctx,
            tenant,
            p.def,
            &endpoint,
            &request,
            judged,
            &records,
            received_at,
            started,
        )
        .await?;
        out.rows += records.len() as u64;
        out.pages += 1;
        ctx.tick(
            Stage::Collect,
            Table::parse(table),
            read_before + out.rows,
            0,
        );
        out.accepted += accepted.0;
        out.rejected += accepted.1;
        let last = rows.last().and_then(|r| {
            r.key_param.clone().map(|key| Cursor {
                watermark: r.watermark.as_ref().map(|w| w.0.clone()),
                key,
            })
        });
        if let Some(last) = last {
            if incremental {
                views::save_watermark(
                    db,
                    ctx.tenant,
                    table,
                    &p.fingerprint,
                    &last,
                    ctx.worker.clock().now(),
                )
                .await?;
            }
            cursor = Some(last);
        }
        if !full_page {
            break;
        }
    }
    // The read transaction only read; ending it cannot lose anything.
    let _ = erp.end().await;
    if !incremental && !out.interrupted {
        if out.rows == 0 {
            let live = staging::count_live(db, ctx.tenant, table).await?;
            if live > 0 {
                ctx.event(
                    Level::Warn,
                    Stage::Collect,
                    Some(table),
                    format!(
                        "view {view} returned no rows while {live} records are staged: an ERP \
                         outage? their deletions go through the delete guard"
                    ),
                    json!({"view": view, "staged": live}),
                )
                .await;
            }
        }
        out.deleted = snapshot_deletions(ctx, tenant, p, seen).await?;
    }
    Ok(out)
}

fn param_json(p: &Param) -> Value {
    match p {
        Param::Text(s) => Value::String(s.clone()),
        Param::Int(i) => json!(i),
        Param::Real(f) => json!(f),
    }
}

fn id_hash(id: &str) -> i64 {
    let mut h = Fnv1a::default();
    h.feed(id.trim().as_bytes());
    h.finish()
}

/// A row as a pushed record: `{"external_id", "fields", "updated_at"?, "deleted"?}`.
fn record(p: &Plan<'_>, row: &PageRow) -> Value {
    let mut fields = Map::new();
    for ((field, category), value) in p.fields.iter().zip(&row.values) {
        let Some(v) = value else { continue };
        let v = match (field_role(p.def.id, field), category) {
            // Numeric ERPs keep documents in number columns, losing their leading zeros.
            (Role::Field(Kind::Cnpj), Category::Integer | Category::Number) => pad(v, 14),
            (Role::Field(Kind::Cpf), Category::Integer | Category::Number) => pad(v, 11),
            _ => v.clone(),
        };
        fields.insert(field.clone(), Value::String(v));
    }
    let mut rec = Map::new();
    rec.insert(
        "external_id".into(),
        row.key.clone().map_or(Value::Null, Value::String),
    );
    rec.insert("fields".into(), Value::Object(fields));
    if let Some((_, value)) = &row.watermark {
        rec.insert("updated_at".into(), Value::String(value.clone()));
    }
    if p.query.has_deleted {
        let deleted = row
            .deleted
            .as_deref()
            .is_some_and(crate::domain::view::truthy);
        rec.insert("deleted".into(), Value::Bool(deleted));
    }
    Value::Object(rec)
}

fn pad(v: &str, width: usize) -> String {
    let digits = v.trim();
    if digits.bytes().all(|b| b.is_ascii_digit()) && digits.len() < width {
        format!("{digits:0>width$}")
    } else {
        digits.to_owned()
    }
}

/// Stages a judged page and logs it as one request; returns (accepted, rejected).
#[allow(clippy::too_many_arguments)]
async fn stage_page(
    ctx: &Ctx<'_>,
    tenant: &Tenant,
    table: &'static TableDef,
    endpoint: &str,
    request: &str,
    judged: batch::Judged,
    records: &[Value],
    received_at: chrono::DateTime<Utc>,
    started: Instant,
) -> Result<(u64, u64)> {
    let ingestor = &ctx.worker.ingestor;
    let (request, truncated) = cut_body(request, ingestor.limits().log_body_cap);
    let meta = view_request(ctx, endpoint, Some(table.id), received_at, started);
    let staged = ingestor
        .stage(Staging {
            meta: &meta,
            table,
            zone: tenant.timezone,
            judged,
            batch_size: records.len(),
            body: StoredBody::encode(&request),
            truncated,
            answer: Answer::ViewPage { records },
        })
        .await?;
    let rejected = staged.reply.rejected.len() as u64;
    Ok((records.len() as u64 - rejected, rejected))
}

/// A View read as the request log names it.
fn view_request(
    ctx: &Ctx<'_>,
    endpoint: &str,
    table: Option<&str>,
    received_at: chrono::DateTime<Utc>,
    started: Instant,
) -> RequestMeta {
    RequestMeta {
        tenant: ctx.tenant.clone(),
        transport: Transport::View,
        endpoint: endpoint.to_owned(),
        table: table.map(str::to_owned),
        received_at,
        started,
        request_body: RequestBody::Text(String::new()),
    }
}

/// Stages the deletion of every live staged record a full snapshot did not return, but
/// for the records a discard keeps in the CRM: their deletion is not staged again. (A
/// kept record the view returns again is staged as a change, which ends its keep: see
/// `pending_deletes::supersede`.)
async fn snapshot_deletions(
    ctx: &Ctx<'_>,
    tenant: &Tenant,
    p: &Plan<'_>,
    mut seen: Vec<i64>,
) -> Result<u64> {
    seen.sort_unstable();
    seen.dedup();
    let table = p.def.id;
    let endpoint = format!("view:{}", p.cfg.view);
    let kept = pending_deletes::kept_ids(&ctx.worker.db, ctx.tenant, p.def.table).await?;
    let mut after = String::new();
    let mut missing = Vec::new();
    let mut total = 0;
    loop {
        let ids =
            staging::live_ids_after(&ctx.worker.db, ctx.tenant, table, &after, DELETE_PAGE).await?;
        let Some(last) = ids.last() else { break };
        after = last.clone();
        missing.extend(
            ids.into_iter()
                .filter(|id| seen.binary_search(&id_hash(id)).is_err() && !kept.contains(id)),
        );
        if missing.len() as u64 >= DELETE_PAGE {
            total += stage_deletions(ctx, tenant, p.def, &endpoint, std::mem::take(&mut missing))
                .await?;
        }
    }
    if !missing.is_empty() {
        total += stage_deletions(ctx, tenant, p.def, &endpoint, missing).await?;
    }
    Ok(total)
}

async fn stage_deletions(
    ctx: &Ctx<'_>,
    tenant: &Tenant,
    table: &'static TableDef,
    endpoint: &str,
    ids: Vec<String>,
) -> Result<u64> {
    let started = Instant::now();
    let n = ids.len() as u64;
    let records: Vec<Value> = ids
        .iter()
        .map(|id| json!({"external_id": id, "deleted": true}))
        .collect();
    let valid = ids
        .into_iter()
        .enumerate()
        .map(|(i, external_id)| ValidRecord {
            index: u32::try_from(i).unwrap_or(u32::MAX),
            external_id,
            fields: Map::new(),
            updated_at: None,
            deleted: true,
        })
        .collect();
    let request =
        json!({"snapshot": "records staged earlier that the view no longer returns", "count": n})
            .to_string();
    stage_page(
        ctx,
        tenant,
        table,
        endpoint,
        &request,
        batch::Judged {
            valid,
            ..batch::Judged::default()
        },
        &records,
        ctx.worker.clock().now(),
        started,
    )
    .await?;
    Ok(n)
}

/// Logs a view read that failed, as a failed request.
async fn log_failure(
    ctx: &Ctx<'_>,
    endpoint: &str,
    table: Option<&str>,
    message: &str,
    received_at: chrono::DateTime<Utc>,
    started: Instant,
) {
    let meta = view_request(ctx, endpoint, table, received_at, started);
    let error = AppError::FailedPrecondition(message.to_owned());
    ctx.worker.ingestor.log_failure(&meta, &[], error).await;
}
