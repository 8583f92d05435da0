//! The embedded CRM's multi-row statements: a sync's upserts (`INSERT … ON CONFLICT
//! (tenant_id, external_id) DO UPDATE`) and deletes (`IN` lists), in statements of up to
//! [`ROWS_PER_STATEMENT`] rows, in one transaction per call.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, Value};

use crate::domain::crm::{guarded_table, CrmCompany, CrmContact};
use crate::domain::tables::Table;
use crate::domain::tenant::TenantId;
use crate::error::Result;
use crate::storage::bulk::Params;
use crate::storage::db::Db;

const ROWS_PER_STATEMENT: usize = 2_000;

/// Inserts or replaces companies, `now` their `updated_at`.
pub(crate) async fn upsert_companies(
    db: &Db,
    tenant: &TenantId,
    rows: &[CrmCompany],
    now: DateTime<Utc>,
) -> Result<()> {
    let values = rows.iter().map(|c| {
        vec![
            c.external_id.as_str().into(),
            c.name.as_str().into(),
            c.document.as_str().into(),
            c.seller_id.as_str().into(),
            c.city.as_str().into(),
            c.state.as_str().into(),
            c.email.as_str().into(),
            c.phone.as_str().into(),
            json_text(&c.fields).into(),
            now.into(),
        ]
    });
    let columns = [
        "external_id",
        "name",
        "document",
        "seller_id",
        "city",
        "state",
        "email",
        "phone",
        "fields",
        "updated_at",
    ];
    upsert(db, CrmTable::Company, tenant, &columns, values).await
}

/// Inserts or replaces contacts, `now` their `updated_at`.
pub(crate) async fn upsert_contacts(
    db: &Db,
    tenant: &TenantId,
    rows: &[CrmContact],
    now: DateTime<Utc>,
) -> Result<()> {
    let values = rows.iter().map(|c| {
        vec![
            c.external_id.as_str().into(),
            c.name.as_str().into(),
            c.document.as_str().into(),
            c.company_id.as_str().into(),
            c.email.as_str().into(),
            c.phone.as_str().into(),
            json_text(&c.fields).into(),
            now.into(),
        ]
    });
    let columns = [
        "external_id",
        "name",
        "document",
        "company_id",
        "email",
        "phone",
        "fields",
        "updated_at",
    ];
    upsert(db, CrmTable::Contact, tenant, &columns, values).await
}

/// A record's fields as the JSON text stored with it.
fn json_text(fields: &serde_json::Map<String, serde_json::Value>) -> String {
    serde_json::to_string(fields).unwrap_or_default()
}

/// `INSERT … ON CONFLICT (tenant_id, external_id) DO UPDATE` of rows whose values follow
/// `columns` (the first being external_id), in statements of [`ROWS_PER_STATEMENT`].
async fn upsert(
    db: &Db,
    table: CrmTable,
    tenant: &TenantId,
    columns: &[&str],
    rows: impl Iterator<Item = Vec<Value>>,
) -> Result<()> {
    let rows: Vec<Vec<Value>> = rows.collect();
    let updates: Vec<String> = columns
        .iter()
        .skip(1)
        .map(|c| format!("{c} = excluded.{c}"))
        .collect();
    let txn = db.begin_write().await?;
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Vec<Value>> = rows.by_ref().take(ROWS_PER_STATEMENT).collect();
        let mut p = Params::new(
            txn.get_database_backend(),
            chunk.len() * (columns.len() + 1),
        );
        let tuples: Vec<String> = chunk
            .into_iter()
            .map(|row| {
                let mut v = vec![p.push(tenant.as_str())];
                v.extend(row.into_iter().map(|x| p.push(x)));
                format!("({})", v.join(", "))
            })
            .collect();
        let sql = format!(
            "INSERT INTO {} (tenant_id, {}) VALUES {} ON CONFLICT (tenant_id, external_id) DO UPDATE SET {}",
            table.sql_name(),
            columns.join(", "),
            tuples.join(", "),
            updates.join(", ")
        );
        txn.execute(p.statement(sql)).await?;
    }
    txn.commit().await
}

/// Deletes rows of `table` by external id; returns how many were deleted.
pub(crate) async fn delete(
    db: &Db,
    table: CrmTable,
    tenant: &TenantId,
    ids: &[String],
) -> Result<u64> {
    let txn = db.begin_write().await?;
    let mut deleted = 0;
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let mut p = Params::new(txn.get_database_backend(), chunk.len() + 1);
        let t = p.push(tenant.as_str());
        let list: Vec<String> = chunk.iter().map(|id| p.push(id.as_str())).collect();
        let sql = format!(
            "DELETE FROM {} WHERE tenant_id = {t} AND external_id IN ({})",
            table.sql_name(),
            list.join(", ")
        );
        deleted += txn.execute(p.statement(sql)).await?.rows_affected();
    }
    txn.commit().await?;
    Ok(deleted)
}

/// The embedded CRM's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrmTable {
    /// Companies.
    Company,
    /// Contacts.
    Contact,
}

impl CrmTable {
    /// The CRM's table of `table`'s records; INVALID_ARGUMENT for a table the CRM does
    /// not receive (its deletions are not guarded).
    pub fn of(table: Table) -> Result<Self> {
        Ok(match guarded_table(table.as_str())? {
            Table::Company => Self::Company,
            _ => Self::Contact,
        })
    }

    /// The staged table whose records it receives.
    pub fn staged(self) -> Table {
        match self {
            Self::Company => Table::Company,
            Self::Contact => Table::Contact,
        }
    }

    /// The table's name in SQL.
    pub(crate) fn sql_name(self) -> &'static str {
        match self {
            Self::Company => "crm_company",
            Self::Contact => "crm_contact",
        }
    }
}
