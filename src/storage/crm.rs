//! The embedded CRM (`crm_company`, `crm_contact`): where the default sink delivers, so a
//! standalone install is complete. Upserts and deletes are idempotent by
//! (tenant, external_id).

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, Value};

use super::{Db, Params};
use crate::domain::abc::Money;
use crate::domain::crm::{CrmCompany, CrmContact};
use crate::domain::tenant::TenantId;
use crate::error::Result;

const ROWS_PER_STATEMENT: usize = 2_000;

/// Inserts or replaces companies.
pub async fn upsert_companies(
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
            serde_json::Value::Object(c.fields.clone())
                .to_string()
                .into(),
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

/// Inserts or replaces contacts.
pub async fn upsert_contacts(
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
            serde_json::Value::Object(c.fields.clone())
                .to_string()
                .into(),
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
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut p = Params::new(
            txn.get_database_backend(),
            chunk.len() * (columns.len() + 1),
        );
        let tuples: Vec<String> = chunk
            .iter()
            .map(|row| {
                let mut v = vec![p.push(tenant.as_str())];
                v.extend(row.iter().cloned().map(|x| p.push(x)));
                format!("({})", v.join(", "))
            })
            .collect();
        let sql = format!(
            "INSERT INTO {} (tenant_id, {}) VALUES {} ON CONFLICT (tenant_id, external_id) DO UPDATE SET {}",
            table.name(),
            columns.join(", "),
            tuples.join(", "),
            updates.join(", ")
        );
        txn.execute(p.statement(sql)).await?;
    }
    txn.commit().await
}

/// Deletes rows of `table` ("crm_company" or "crm_contact") by external id.
pub async fn delete(db: &Db, table: CrmTable, tenant: &TenantId, ids: &[String]) -> Result<u64> {
    let txn = db.begin_write().await?;
    let mut deleted = 0;
    for chunk in ids.chunks(ROWS_PER_STATEMENT) {
        let mut p = Params::new(txn.get_database_backend(), chunk.len() + 1);
        let t = p.push(tenant.as_str());
        let list: Vec<String> = chunk.iter().map(|id| p.push(id.as_str())).collect();
        let sql = format!(
            "DELETE FROM {} WHERE tenant_id = {t} AND external_id IN ({})",
            table.name(),
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
    fn name(self) -> &'static str {
        match self {
            Self::Company => "crm_company",
            Self::Contact => "crm_contact",
        }
    }
}

/// A page of the tenant's CRM companies by external id, after `after`.
pub async fn companies(
    db: &Db,
    tenant: &TenantId,
    after: &str,
    limit: u64,
) -> Result<Vec<CrmCompany>> {
    let mut p = Params::new(db.backend(), 2);
    let sql = format!(
        "SELECT external_id, fields FROM crm_company WHERE tenant_id = {} AND external_id > {} \
         ORDER BY external_id LIMIT {limit}",
        p.push(tenant.as_str()),
        p.push(after)
    );
    db.conn()
        .query_all(p.statement(sql))
        .await?
        .into_iter()
        .map(|r| {
            let id: String = r.try_get("", "external_id")?;
            let fields: String = r.try_get("", "fields")?;
            let fields = match serde_json::from_str(&fields) {
                Ok(serde_json::Value::Object(m)) => m,
                _ => Default::default(),
            };
            Ok(CrmCompany::from_staged(&id, fields))
        })
        .collect()
}

/// How many companies and contacts the tenant's CRM holds.
pub async fn counts(db: &Db, tenant: &TenantId) -> Result<(u64, u64)> {
    let mut out = [0u64; 2];
    for (i, table) in ["crm_company", "crm_contact"].iter().enumerate() {
        let mut p = Params::new(db.backend(), 1);
        let sql = format!(
            "SELECT COUNT(*) AS n FROM {table} WHERE tenant_id = {}",
            p.push(tenant.as_str())
        );
        if let Some(r) = db.conn().query_one(p.statement(sql)).await? {
            out[i] = u64::try_from(r.try_get::<i64>("", "n")?).unwrap_or(0);
        }
    }
    Ok((out[0], out[1]))
}

/// The categories an embedded CRM company carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompanyCategories {
    /// External id.
    pub external_id: String,
    /// "A", "B", "C"; None without revenue (or before the first analysis).
    pub abc_class: Option<String>,
    /// PROSPECT, NEW, …; None before the first analysis.
    pub lifecycle: Option<String>,
    /// The seller's external id or "unassigned"; None before the first analysis.
    pub portfolio: Option<String>,
    /// Revenue in the window, exact decimal; None before the first analysis.
    pub revenue: Option<String>,
}

/// Every embedded CRM company of the tenant with its categories, by external id. The
/// embedded CRM keeps no copy of the categories: they are the applied ones of
/// `company_category`, in the same database.
pub async fn company_categories(db: &Db, tenant: &TenantId) -> Result<Vec<CompanyCategories>> {
    let mut p = Params::new(db.backend(), 1);
    let sql = format!(
        "SELECT m.external_id, c.abc_class, c.lifecycle, c.portfolio, c.revenue FROM crm_company m \
         LEFT JOIN company_category c ON c.tenant_id = m.tenant_id AND c.external_id = m.external_id \
         WHERE m.tenant_id = {} ORDER BY m.external_id",
        p.push(tenant.as_str())
    );
    db.conn()
        .query_all(p.statement(sql))
        .await?
        .into_iter()
        .map(|r| {
            let revenue: Option<i64> = r.try_get("", "revenue")?;
            Ok(CompanyCategories {
                external_id: r.try_get("", "external_id")?,
                abc_class: r.try_get("", "abc_class")?,
                lifecycle: r.try_get("", "lifecycle")?,
                portfolio: r.try_get("", "portfolio")?,
                revenue: revenue.map(|r| Money::from(r).text()),
            })
        })
        .collect()
}
