//! A tenant's rows in every table, named in one list ([`TABLES`]): removed together in
//! one transaction ([`delete`], DeleteTenant) and read out page by page ([`ExportPage`],
//! ExportTenant), so no table can be in one and not the other. A table added to the
//! schema with a tenant column goes in the list; the suite compares the list with the
//! database's own catalog (`tests/it/purge.rs`).
//!
//! Rows reach their tenant through a column naming it, through one of its runs
//! (`run_id`), or, for tokens, through `api_token_tenant`.
//!
//! What keeps writes of a deleted tenant from leaving rows behind: every table but
//! `purchase_span` has a foreign key to `tenant` (or to `sync_run`), so once the tenant
//! row is gone any insert of its rows fails (`AppError::from` answers NOT_FOUND), and its
//! transaction with it; `purchase_span` is only written in the transaction that stages
//! the facts it spans, after they land. The delete locks the tenant row first
//! (PostgreSQL; SQLite has one writer at a time): a write already under way finishes
//! before it and is removed with the rest, a later one waits and then fails. A run of
//! the tenant loses its lease with the rest, and stops at its next checkpoint.

use sea_orm::sea_query::{IntoIden, SelectStatement, SimpleExpr};
use sea_orm::{
    ColumnTrait, DatabaseTransaction, EntityTrait, IdenStatic, Identity, Iterable,
    PrimaryKeyToColumn, QueryFilter, QuerySelect, QueryTrait, Value as DbValue,
};
use serde_json::{Map, Value};

use super::entities::{
    abc_held, abc_report, alert, alert_event, api_token, api_token_tenant, category_change,
    company_category, crm_company, crm_contact, erp_count, pending_delete, purchase_span,
    record_trail, request_log, run_stage, run_table, schedule_claim, staged_record, sync_event,
    sync_lease, sync_run, table_freshness, tenant, tenant_due, tenant_sink, tenant_usage,
    view_config, view_grant, view_watermark,
};
use super::request_body::decode_body;
use super::Db;
use crate::domain::run_status::RunStatus;
use crate::domain::tenant::TenantId;
use crate::error::{AppError, Result};

/// How a table's rows belong to a tenant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    /// A column names the tenant (`tenant_id`; the tenant row's own `id`).
    Tenant,
    /// Its `run_id` names one of the tenant's runs.
    Run,
    /// Tokens linked to the tenant in `api_token_tenant`. Removal takes only those that
    /// reach no other tenant; a crm token listing several loses just its link.
    Token,
}

/// Declares [`Part`] and [`TABLES`] from one list: `Variant: entity.Column by Reach`,
/// the entity module named as its table.
macro_rules! tenant_tables {
    ($($part:ident: $entity:ident . $column:ident by $reach:ident,)*) => {
        /// A table holding rows of tenants.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Part {
            $(
                #[doc = concat!("`", stringify!($entity), "`.")]
                $part,
            )*
        }

        /// Every table holding a tenant's rows, in dependency order: a table before
        /// the ones its rows refer to, the tenant row last. Rows are removed in this
        /// order and exported in the reverse one (the tenant's settings first).
        pub const TABLES: &[Part] = &[$(Part::$part),*];

        impl Part {
            /// The table's name.
            pub fn name(self) -> &'static str {
                match self {
                    $(Part::$part => stringify!($entity),)*
                }
            }

            /// How its rows reach their tenant.
            pub fn reach(self) -> Reach {
                match self {
                    $(Part::$part => Reach::$reach,)*
                }
            }

            /// The name sea-orm knows the table by (tests check it is [`Part::name`]).
            #[cfg(test)]
            fn entity_name(self) -> String {
                match self {
                    $(Part::$part => sea_orm::EntityName::table_name(&$entity::Entity).to_owned(),)*
                }
            }

            /// Removes the tenant's rows of this table in `txn`; how many.
            async fn delete(self, txn: &DatabaseTransaction, scope: &Scope<'_>) -> Result<u64> {
                match self {
                    $(Part::$part => {
                        let rows = scope.doomed($entity::Column::$column, Reach::$reach);
                        delete_rows::<$entity::Entity>(txn, rows).await
                    })*
                }
            }

            /// Up to `limit` of the tenant's rows of this table after the key `after`,
            /// in key order, as the database gives them.
            async fn page(
                self,
                db: &Db,
                tenant: &str,
                after: Option<&[Value]>,
                limit: u64,
            ) -> Result<Vec<Value>> {
                match self {
                    $(Part::$part => {
                        let rows = reached($entity::Column::$column, Reach::$reach, tenant);
                        page_rows::<$entity::Entity>(db, rows, after, limit).await
                    })*
                }
            }

            /// The names of the key columns, in key order.
            fn key(self) -> Vec<String> {
                match self {
                    $(Part::$part => key_of::<$entity::Entity>(),)*
                }
            }
        }
    };
}

tenant_tables! {
    RunTable: run_table.RunId by Run,
    RunStage: run_stage.RunId by Run,
    AbcHeld: abc_held.TenantId by Tenant,
    CategoryChange: category_change.TenantId by Tenant,
    CompanyCategory: company_category.TenantId by Tenant,
    AbcReport: abc_report.TenantId by Tenant,
    PendingDelete: pending_delete.TenantId by Tenant,
    TableFreshness: table_freshness.TenantId by Tenant,
    AlertEvent: alert_event.TenantId by Tenant,
    Alert: alert.TenantId by Tenant,
    SyncEvent: sync_event.TenantId by Tenant,
    RecordTrail: record_trail.TenantId by Tenant,
    RequestLog: request_log.TenantId by Tenant,
    TenantUsage: tenant_usage.TenantId by Tenant,
    PurchaseSpan: purchase_span.TenantId by Tenant,
    StagedRecord: staged_record.TenantId by Tenant,
    CrmContact: crm_contact.TenantId by Tenant,
    CrmCompany: crm_company.TenantId by Tenant,
    ErpCount: erp_count.TenantId by Tenant,
    SyncLease: sync_lease.TenantId by Tenant,
    ScheduleClaim: schedule_claim.TenantId by Tenant,
    TenantDue: tenant_due.TenantId by Tenant,
    ViewWatermark: view_watermark.TenantId by Tenant,
    TenantSink: tenant_sink.TenantId by Tenant,
    ViewConfig: view_config.TenantId by Tenant,
    ViewGrant: view_grant.TenantId by Tenant,
    ApiTokenTenant: api_token_tenant.TenantId by Tenant,
    ApiToken: api_token.Id by Token,
    SyncRun: sync_run.TenantId by Tenant,
    Tenant: tenant.Id by Tenant,
}

/// The ids of the tenant's runs.
fn runs_of(tenant: &str) -> SelectStatement {
    sync_run::Entity::find()
        .select_only()
        .column(sync_run::Column::Id)
        .filter(sync_run::Column::TenantId.eq(tenant))
        .into_query()
}

/// The ids of the tokens linked to the tenant.
fn tokens_of(tenant: &str) -> SelectStatement {
    api_token_tenant::Entity::find()
        .select_only()
        .column(api_token_tenant::Column::TokenId)
        .filter(api_token_tenant::Column::TenantId.eq(tenant))
        .into_query()
}

/// The tenant's rows of a table whose `column` reaches it by `reach`.
fn reached<C: ColumnTrait>(column: C, reach: Reach, tenant: &str) -> SimpleExpr {
    match reach {
        Reach::Tenant => column.eq(tenant),
        Reach::Run => column.in_subquery(runs_of(tenant)),
        Reach::Token => column.in_subquery(tokens_of(tenant)),
    }
}

/// What a removal takes: the tenant, and the tokens that reach it alone (read before
/// their links go).
struct Scope<'a> {
    tenant: &'a str,
    tokens: Vec<String>,
}

impl Scope<'_> {
    /// The rows removed of a table whose `column` reaches the tenant by `reach`.
    fn doomed<C: ColumnTrait>(&self, column: C, reach: Reach) -> SimpleExpr {
        match reach {
            Reach::Token => column.is_in(self.tokens.iter().map(String::as_str)),
            other => reached(column, other, self.tenant),
        }
    }
}

async fn delete_rows<E: EntityTrait>(txn: &DatabaseTransaction, rows: SimpleExpr) -> Result<u64> {
    Ok(E::delete_many().filter(rows).exec(txn).await?.rows_affected)
}

fn key_of<E: EntityTrait>() -> Vec<String> {
    E::PrimaryKey::iter()
        .map(|k| IdenStatic::as_str(&k.into_column()).to_owned())
        .collect()
}

async fn page_rows<E: EntityTrait>(
    db: &Db,
    rows: SimpleExpr,
    after: Option<&[Value]>,
    limit: u64,
) -> Result<Vec<Value>>
where
    E::Model: Sync,
{
    let mut keys: Vec<_> = E::PrimaryKey::iter()
        .map(|k| k.into_column().into_iden())
        .collect();
    let identity = match keys.len() {
        1 => Identity::Unary(keys.remove(0)),
        2 => Identity::Binary(keys.remove(0), keys.remove(0)),
        3 => Identity::Ternary(keys.remove(0), keys.remove(0), keys.remove(0)),
        _ => Identity::Many(keys),
    };
    let mut cursor = E::find().filter(rows).cursor_by(identity);
    if let Some(after) = after {
        cursor.after(value_tuple(after)?);
    }
    cursor.first(limit);
    Ok(cursor.into_json().all(db.conn()).await?)
}

/// A key read back from a row, as the cursor compares it.
fn value_tuple(key: &[Value]) -> Result<sea_orm::sea_query::ValueTuple> {
    use sea_orm::sea_query::ValueTuple;
    let mut values: Vec<DbValue> = key
        .iter()
        .map(|v| match v {
            Value::String(s) => Ok(DbValue::from(s.clone())),
            Value::Number(n) => n
                .as_i64()
                .map(DbValue::from)
                .ok_or_else(|| anyhow::anyhow!("a key is not an integer: {n}")),
            other => Err(anyhow::anyhow!(
                "a key is neither text nor an integer: {other}"
            )),
        })
        .collect::<Result<_, _>>()?;
    Ok(match values.len() {
        1 => ValueTuple::One(values.remove(0)),
        2 => ValueTuple::Two(values.remove(0), values.remove(0)),
        3 => ValueTuple::Three(values.remove(0), values.remove(0), values.remove(0)),
        _ => ValueTuple::Many(values),
    })
}

/// What [`delete`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// Rows removed, every table together (the tenant row included).
    pub rows: u64,
    /// The run that was RUNNING and was cut short (with `force`).
    pub cut_short: Option<String>,
}

/// Removes the tenant and every row of it, in one transaction; None when there is no
/// such tenant. FAILED_PRECONDITION, naming the run, while a run of the tenant is
/// RUNNING, unless `force`.
pub async fn delete(db: &Db, id: &TenantId, force: bool) -> Result<Option<Removed>> {
    // A PostgreSQL deadlock with a write of the tenant under way (it holds rows this
    // removes, then waits for the tenant row) aborts one side: this one tries again.
    let mut attempt = 0;
    loop {
        match delete_once(db, id, force).await {
            Err(e) if attempt < 3 && e.is_deadlock() => attempt += 1,
            other => return other,
        }
    }
}

async fn delete_once(db: &Db, id: &TenantId, force: bool) -> Result<Option<Removed>> {
    let txn = db.begin_write().await?;
    // The tenant row, locked (PostgreSQL): writes of the tenant wait for this to end.
    let found = tenant::Entity::find_by_id(id.as_str())
        .lock_exclusive()
        .one(&*txn)
        .await?;
    if found.is_none() {
        return Ok(None);
    }
    let running = sync_run::Entity::find()
        .filter(sync_run::Column::TenantId.eq(id.as_str()))
        .filter(sync_run::Column::Status.eq(RunStatus::Running.as_str()))
        .one(&*txn)
        .await?
        .map(|r| r.id);
    if let (Some(run), false) = (&running, force) {
        return Err(AppError::FailedPrecondition(format!(
            "run {run} of tenant {id} is RUNNING: wait for it to end, or delete with force (the run is cut short)"
        )));
    }
    let scope = Scope {
        tenant: id.as_str(),
        tokens: tokens_alone(&txn, id).await?,
    };
    let mut rows = 0;
    for part in TABLES {
        rows += part.delete(&txn, &scope).await?;
    }
    txn.commit().await?;
    Ok(Some(Removed {
        rows,
        cut_short: running,
    }))
}

/// The tokens linked to the tenant and to no other (an all-tenant token has no links).
async fn tokens_alone(txn: &DatabaseTransaction, id: &TenantId) -> Result<Vec<String>> {
    let linked: Vec<String> = api_token_tenant::Entity::find()
        .select_only()
        .column(api_token_tenant::Column::TokenId)
        .filter(api_token_tenant::Column::TenantId.eq(id.as_str()))
        .into_tuple()
        .all(txn)
        .await?;
    let shared: Vec<String> = api_token_tenant::Entity::find()
        .select_only()
        .column(api_token_tenant::Column::TokenId)
        .filter(api_token_tenant::Column::TokenId.is_in(linked.iter().map(String::as_str)))
        .filter(api_token_tenant::Column::TenantId.ne(id.as_str()))
        .into_tuple()
        .all(txn)
        .await?;
    Ok(linked.into_iter().filter(|t| !shared.contains(t)).collect())
}

/// A page of one table's rows of a tenant, as export lines, and where the next starts.
#[derive(Debug)]
pub struct ExportPage {
    /// `{"table": …, "row": {…}}` per row, secrets left out, bodies decoded.
    pub lines: Vec<Value>,
    /// The key of the last row, for the next page; None when this table is done.
    pub next: Option<Vec<Value>>,
}

/// The tables in export order: the tenant first, then what refers to it.
pub fn export_order() -> impl Iterator<Item = Part> {
    TABLES.iter().rev().copied()
}

/// Up to `limit` rows of `part` of the tenant after the key `after` (None: from the
/// first), as export lines.
pub async fn export_page(
    db: &Db,
    id: &TenantId,
    part: Part,
    after: Option<&[Value]>,
    limit: u64,
) -> Result<ExportPage> {
    let rows = part.page(db, id.as_str(), after, limit).await?;
    let full = rows.len() as u64 == limit;
    let key = part.key();
    let next = match rows.last() {
        Some(last) if full => Some(key.iter().map(|k| last[k.as_str()].clone()).collect()),
        _ => None,
    };
    let lines = rows
        .into_iter()
        .map(|row| {
            let mut row = match row {
                Value::Object(m) => m,
                _ => Map::new(),
            };
            shape(part, &mut row)?;
            Ok(serde_json::json!({"table": part.name(), "row": row}))
        })
        .collect::<Result<_>>()?;
    Ok(ExportPage { lines, next })
}

/// Columns never exported, in any table: token hashes and salts, sealed secrets.
const SECRET_COLUMNS: &[&str] = &["token_hash", "token_salt", "secret", "sealed_secret"];

/// Whether a column holds a secret: one of [`SECRET_COLUMNS`], or named `…_secret`.
fn is_secret(column: &str) -> bool {
    SECRET_COLUMNS.contains(&column) || column.ends_with("_secret")
}

/// A row as exported: secrets left out, the View configuration without its (sealed)
/// URL, request-log bodies decoded (JSON as JSON, anything else as text).
fn shape(part: Part, row: &mut Map<String, Value>) -> Result<()> {
    row.retain(|column, _| !is_secret(column));
    match part {
        Part::ViewConfig => {
            if let Some(Value::String(text)) = row.get("config") {
                let mut cfg: Value = serde_json::from_str(text).map_err(|e| {
                    AppError::Internal(anyhow::anyhow!("a stored View configuration: {e}"))
                })?;
                if let Some(cfg) = cfg.as_object_mut() {
                    cfg.remove("url");
                }
                row.insert("config".into(), cfg);
            }
        }
        Part::RequestLog => {
            let compressed = row
                .remove("request_body_lz4")
                .is_some_and(|v| v.as_bool().unwrap_or(v.as_i64() == Some(1)));
            if let Some(body) = row.remove("request_body") {
                let text = decode_body(&stored_bytes(&body), compressed)?;
                row.insert("request_body".into(), json_or_text(text));
            }
            if let Some(Value::String(text)) = row.remove("response_body") {
                row.insert("response_body".into(), json_or_text(text));
            }
        }
        _ => {}
    }
    Ok(())
}

/// The bytes of a stored body as read: a list of bytes (a BLOB or bytea), or text.
fn stored_bytes(body: &Value) -> Vec<u8> {
    match body {
        Value::Array(bytes) => bytes
            .iter()
            .filter_map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
            .collect(),
        Value::String(s) => s.as_bytes().to_vec(),
        _ => Vec::new(),
    }
}

/// `text` as the JSON it holds, or as a string when it is not JSON.
fn json_or_text(text: String) -> Value {
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_is_named_as_its_entity() {
        for part in TABLES {
            assert_eq!(part.name(), part.entity_name());
        }
    }

    #[test]
    fn the_tenant_row_goes_last_and_is_exported_first() {
        assert_eq!(TABLES.last(), Some(&Part::Tenant));
        assert_eq!(export_order().next(), Some(Part::Tenant));
    }

    #[test]
    fn rows_that_refer_to_runs_or_tokens_go_before_them() {
        let at = |p: Part| TABLES.iter().position(|t| *t == p).unwrap();
        for part in TABLES {
            match part.reach() {
                Reach::Run => assert!(at(*part) < at(Part::SyncRun), "{part:?}"),
                Reach::Token => assert!(at(Part::ApiTokenTenant) < at(*part)),
                Reach::Tenant => {}
            }
        }
        assert!(at(Part::SyncLease) < at(Part::SyncRun));
    }

    #[test]
    fn secrets_are_left_out_and_bodies_decoded() {
        let mut token = Map::new();
        token.insert("id".into(), "tok_1".into());
        token.insert("token_hash".into(), "h".into());
        token.insert("token_salt".into(), "s".into());
        shape(Part::ApiToken, &mut token).unwrap();
        assert_eq!(token.keys().collect::<Vec<_>>(), ["id"]);

        let mut log = Map::new();
        log.insert(
            "request_body".into(),
            Value::Array(b"{\"a\":1}".iter().map(|b| Value::from(*b)).collect()),
        );
        log.insert("request_body_lz4".into(), Value::Bool(false));
        log.insert("response_body".into(), "not json".into());
        shape(Part::RequestLog, &mut log).unwrap();
        assert_eq!(log["request_body"], serde_json::json!({"a": 1}));
        assert_eq!(log["response_body"], "not json");
        assert!(!log.contains_key("request_body_lz4"));
    }
}
