//! The ABC run's bulk reads, SQL and all: a tenant's stored categories, its staged
//! companies (keyset pages merged with their categories' range; their JSON fields) and
//! the categorized ones gone from the CRM, and the revenue per company (window sums,
//! purchase spans, the ranges PostgreSQL sums in parallel). Each returns typed rows
//! (tuples, in the order their doc gives); the rules that use them are
//! `storage::abc`'s.

use sea_orm::DbBackend;

use super::read::{col, fetch_all, fetch_packed, Ph, Reader, PAGE};
use crate::domain::abc::Basis;
use crate::domain::tenant::TenantId;
use crate::error::{AppError, Result};
use crate::storage::db::Db;

/// A stored category as a run compares with it: external id, class, lifecycle,
/// fingerprint, company hash.
pub(crate) type StoredCategory = (String, Option<String>, String, i64, Option<i64>);

/// Every stored category of the tenant (`company_category`), in no order.
pub(crate) async fn stored_categories(db: &Db, tenant: &TenantId) -> Result<Vec<StoredCategory>> {
    let build = |ph: Ph<'_>| {
        format!(
            "SELECT external_id, abc_class, lifecycle, fingerprint, company_hash FROM company_category \
             WHERE tenant_id = {}",
            ph(1)
        )
    };
    fetch_all!(db, build, [tenant.as_str()], |r| {
        Ok((col(r, 0)?, col(r, 1)?, col(r, 2)?, col(r, 3)?, col(r, 4)?))
    })
}

/// A staged company (`s`) the CRM has: live, or deleted in the ERP with its deletion
/// held by the delete guard or approved and not yet applied. Until a deletion is applied
/// the company keeps its categories, and its history gains nothing from the outage.
const IN_THE_CRM: &str = "(NOT s.deleted OR EXISTS (SELECT 1 FROM pending_delete p \
     WHERE p.tenant_id = s.tenant_id AND p.table_name = 'company' \
     AND p.external_id = s.external_id AND p.state IN ('HELD', 'APPROVED')))";

/// A staged company the CRM has: external id, content hash, 1 when it is a tombstone
/// whose deletion is held (else 0).
pub(crate) type StagedCompany = (String, i64, i64);

/// A page of up to [`PAGE`] staged companies the CRM has ([`IN_THE_CRM`]), by external
/// id, after `after`.
pub(crate) async fn staged_companies(
    reader: &mut Reader,
    tenant: &TenantId,
    after: &str,
) -> Result<Vec<StagedCompany>> {
    let staged = |ph: Ph<'_>| {
        format!(
            "SELECT s.external_id AS c0, s.content_hash AS c1, \
             CASE WHEN s.deleted THEN 1 ELSE 0 END AS c2 FROM staged_record s \
             WHERE s.tenant_id = {} AND s.table_name = 'company' AND {IN_THE_CRM} \
             AND s.external_id > {} ORDER BY s.external_id LIMIT {PAGE}",
            ph(1),
            ph(2),
        )
    };
    fetch_packed!(reader, staged, 3, [tenant.as_str(), after])
}

/// A company's stored categories as the companies' read merges them: external id,
/// company hash, name, document, portfolio, class, lifecycle, fingerprint.
pub(crate) type CategoryOfCompany = (
    String,
    Option<i64>,
    String,
    String,
    String,
    Option<String>,
    String,
    i64,
);

/// The stored categories of the companies in the id range (`after`, `last`], by
/// external id.
pub(crate) async fn categories_in_range(
    reader: &mut Reader,
    tenant: &TenantId,
    after: &str,
    last: &str,
) -> Result<Vec<CategoryOfCompany>> {
    let stored = |ph: Ph<'_>| {
        format!(
            "SELECT external_id AS c0, company_hash AS c1, name AS c2, document AS c3, \
             portfolio AS c4, abc_class AS c5, lifecycle AS c6, fingerprint AS c7 \
             FROM company_category WHERE tenant_id = {} AND external_id > {} \
             AND external_id <= {} ORDER BY external_id",
            ph(1),
            ph(2),
            ph(3),
        )
    };
    fetch_packed!(reader, stored, 8, [tenant.as_str(), after, last])
}

/// A staged company's fields as the database extracts them from its JSON: external id,
/// name, document, seller id (each None when missing).
pub(crate) type CompanyFields = (String, Option<String>, Option<String>, Option<String>);

/// The select list and source of [`CompanyFields`], up to the tenant's placeholder.
fn fields_columns(db: &Db) -> String {
    let (source, [name, document, seller]) = json_fields(db);
    format!(
        "SELECT external_id AS c0, {name} AS c1, {document} AS c2, {seller} AS c3 \
         FROM {source} WHERE tenant_id = "
    )
}

/// The JSON fields of the staged companies `ids` (any order), in one read by id.
pub(crate) async fn company_fields_by_id(
    db: &Db,
    reader: &mut Reader,
    tenant: &TenantId,
    ids: &[&str],
) -> Result<Vec<CompanyFields>> {
    let columns = fields_columns(db);
    let list = serde_json::to_string(&ids)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("ids do not encode: {e}")))?;
    let build = |ph: Ph<'_>| match db.backend() {
        DbBackend::Postgres => format!(
            "{columns}{} AND table_name = 'company' AND external_id IN \
             (SELECT jsonb_array_elements_text(CAST({} AS jsonb)))",
            ph(1),
            ph(2)
        ),
        _ => format!(
            "{columns}{} AND table_name = 'company' AND external_id IN \
             (SELECT value FROM json_each({}))",
            ph(1),
            ph(2)
        ),
    };
    fetch_packed!(reader, build, 4, [tenant.as_str(), list.as_str()])
}

/// The JSON fields of every staged company in the id range (`after`, `last`], in one
/// range read.
pub(crate) async fn company_fields_in_range(
    db: &Db,
    reader: &mut Reader,
    tenant: &TenantId,
    after: &str,
    last: &str,
) -> Result<Vec<CompanyFields>> {
    let columns = fields_columns(db);
    let build = |ph: Ph<'_>| {
        format!(
            "{columns}{} AND table_name = 'company' AND external_id > {} \
             AND external_id <= {}",
            ph(1),
            ph(2),
            ph(3)
        )
    };
    fetch_packed!(reader, build, 4, [tenant.as_str(), after, last])
}

/// Whether the tenant has stored categories at all (none before its first
/// categorization).
pub(crate) async fn has_categories(db: &Db, tenant: &TenantId) -> Result<bool> {
    let build = |ph: Ph<'_>| {
        format!(
            "SELECT 1 FROM company_category WHERE tenant_id = {} LIMIT 1",
            ph(1)
        )
    };
    let rows = fetch_all!(db, build, [tenant.as_str()], |r| col::<_, i32>(r, 0))?;
    Ok(!rows.is_empty())
}

/// Where a staged company's fields are read from, and its name, document and seller as
/// the database extracts them there. PostgreSQL parses each row's JSON once (a lateral
/// subquery that `OFFSET 0` keeps from being inlined into every `->>`, which would parse
/// it once per field); SQLite caches the parse itself.
fn json_fields(db: &Db) -> (&'static str, [String; 3]) {
    match db.backend() {
        DbBackend::Postgres => (
            "staged_record, LATERAL (SELECT fields::jsonb AS j OFFSET 0) AS parsed",
            ["name", "document", "seller_id"].map(|name| format!("j->>'{name}'")),
        ),
        _ => (
            "staged_record",
            ["name", "document", "seller_id"]
                .map(|name| format!("CAST(json_extract(fields, '$.{name}') AS TEXT)")),
        ),
    }
}

/// A live staged company with its JSON fields: external id, content hash, name,
/// document, seller id.
pub(crate) type FirstCompany = (String, i64, Option<String>, Option<String>, Option<String>);

/// A page of up to [`PAGE`] live (not deleted) staged companies with their fields, by
/// external id, after `after`.
pub(crate) async fn live_companies_with_fields(
    db: &Db,
    reader: &mut Reader,
    tenant: &TenantId,
    after: &str,
) -> Result<Vec<FirstCompany>> {
    let (source, [name, document, seller]) = json_fields(db);
    let build = |ph: Ph<'_>| {
        format!(
            "SELECT external_id AS c0, content_hash AS c1, {name} AS c2, {document} AS c3, \
             {seller} AS c4 FROM {source} \
             WHERE tenant_id = {} AND table_name = 'company' AND NOT deleted \
             AND external_id > {} ORDER BY external_id LIMIT {PAGE}",
            ph(1),
            ph(2),
        )
    };
    fetch_packed!(reader, build, 5, [tenant.as_str(), after])
}

/// How many stored categories the tenant has.
pub(crate) async fn count_categories(db: &Db, tenant: &TenantId) -> Result<i64> {
    let build = |ph: Ph<'_>| {
        format!(
            "SELECT COUNT(*) FROM company_category WHERE tenant_id = {}",
            ph(1)
        )
    };
    let total = fetch_all!(db, build, [tenant.as_str()], |r| col::<_, i64>(r, 0))?;
    Ok(total.first().copied().unwrap_or(0))
}

/// The external ids of the tenant's stored categories whose company the CRM no longer
/// has (no staged company [`IN_THE_CRM`]).
pub(crate) async fn categorized_not_in_the_crm(db: &Db, tenant: &TenantId) -> Result<Vec<String>> {
    let build = |ph: Ph<'_>| {
        format!(
            "SELECT c.external_id FROM company_category c WHERE c.tenant_id = {} AND NOT EXISTS \
             (SELECT 1 FROM staged_record s WHERE s.tenant_id = c.tenant_id AND s.table_name = 'company' \
             AND s.external_id = c.external_id AND {IN_THE_CRM})",
            ph(1)
        )
    };
    fetch_all!(db, build, [tenant.as_str()], |r| col::<_, String>(r, 0))
}

/// How many companies of `basis` have a purchase span.
pub(crate) async fn count_spans(
    reader: &mut Reader,
    tenant: &TenantId,
    basis: Basis,
) -> Result<i64> {
    let build = |ph: Ph<'_>| {
        format!(
            "SELECT COUNT(*) AS c0 FROM purchase_span WHERE tenant_id = {} AND table_name = {}",
            ph(1),
            ph(2)
        )
    };
    let count: Vec<(i64,)> =
        fetch_packed!(reader, build, 1, [tenant.as_str(), basis.table().as_str()])?;
    Ok(count.first().map_or(0, |c| c.0))
}

/// The company ids of every `step`-th purchase span of `basis` (in id order, counted
/// from 1) up to the `up_to`-th, in one pass of the span table's key.
pub(crate) async fn every_nth_span(
    reader: &mut Reader,
    tenant: &TenantId,
    basis: Basis,
    step: i64,
    up_to: i64,
) -> Result<Vec<String>> {
    let build = |ph: Ph<'_>| {
        format!(
            "SELECT c0 FROM (SELECT company_ref AS c0, row_number() OVER (ORDER BY company_ref) AS r \
             FROM purchase_span WHERE tenant_id = {} AND table_name = {}) AS k \
             WHERE r % {step} = 0 AND r <= {} ORDER BY c0",
            ph(1),
            ph(2),
            up_to
        )
    };
    let bounds: Vec<(String,)> =
        fetch_packed!(reader, build, 1, [tenant.as_str(), basis.table().as_str()])?;
    Ok(bounds.into_iter().map(|b| b.0).collect())
}

/// A company's purchase span: company id, first and last purchase days (days since
/// 1970-01-01).
pub(crate) type Span = (String, i32, i32);

/// A page of up to [`PAGE`] companies' purchase spans of `basis` (`purchase_span`), by
/// company id, after `after`.
pub(crate) async fn spans(
    reader: &mut Reader,
    tenant: &TenantId,
    basis: Basis,
    after: &str,
) -> Result<Vec<Span>> {
    let build = |ph: Ph<'_>| {
        format!(
            "SELECT company_ref AS c0, first_on AS c1, last_on AS c2 FROM purchase_span \
             WHERE tenant_id = {} AND table_name = {} AND company_ref > {} \
             ORDER BY company_ref LIMIT {PAGE}",
            ph(1),
            ph(2),
            ph(3)
        )
    };
    fetch_packed!(
        reader,
        build,
        3,
        [tenant.as_str(), basis.table().as_str(), after]
    )
}

/// The revenue (company id, sum in ten-thousandths) of each company in (lo, hi] (None:
/// open) from the staged rows of `basis` issued in days [from, to]. A sum beyond the
/// 64-bit range is the database's error.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn window_sums(
    reader: &mut Reader,
    tenant: &TenantId,
    basis: Basis,
    from: i32,
    to: i32,
    lo: Option<&str>,
    hi: Option<&str>,
) -> Result<Vec<(String, i64)>> {
    let build = |ph: Ph<'_>| {
        let mut sql = format!(
            "SELECT company_ref AS c0, CAST(SUM(amount) AS BIGINT) AS c1 FROM staged_record \
             WHERE tenant_id = {} AND table_name = {} AND amount IS NOT NULL \
             AND issued_on BETWEEN {} AND {}",
            ph(1),
            ph(2),
            ph(3),
            ph(4)
        );
        let mut n = 4;
        if lo.is_some() {
            n += 1;
            sql += &format!(" AND company_ref > {}", ph(n));
        }
        if hi.is_some() {
            n += 1;
            sql += &format!(" AND company_ref <= {}", ph(n));
        }
        sql + " GROUP BY company_ref"
    };
    match (lo, hi) {
        (Some(lo), Some(hi)) => fetch_packed!(
            reader,
            build,
            2,
            [tenant.as_str(), basis.table().as_str(), from, to, lo, hi]
        ),
        (Some(b), None) | (None, Some(b)) => {
            fetch_packed!(
                reader,
                build,
                2,
                [tenant.as_str(), basis.table().as_str(), from, to, b]
            )
        }
        (None, None) => {
            fetch_packed!(
                reader,
                build,
                2,
                [tenant.as_str(), basis.table().as_str(), from, to]
            )
        }
    }
}
