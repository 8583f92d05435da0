//! The staged companies the abc stage categorizes, each with its stored categories, and
//! the categorized companies no longer in the CRM: keyset reads over `staged_record`
//! and `company_category` through [`crate::storage::bulk::read`].

use std::collections::HashMap;

use sea_orm::DbBackend;

use super::rows::{stored_classes, Stored};
use crate::domain::tenant::TenantId;
use crate::error::{AppError, Result};
use crate::storage::bulk::read::{col, fetch_all, fetch_packed, last_key, Ph, Reader, PAGE};
use crate::storage::Db;

/// A live (not deleted) staged company: what categorize needs of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveCompany {
    /// External id.
    pub external_id: String,
    /// The staged version's content hash.
    pub content_hash: i64,
    /// Name.
    pub name: String,
    /// Document.
    pub document: String,
    /// Its portfolio as stored, or else its seller's external id; None without a seller.
    pub portfolio: Option<String>,
    /// Its stored categories, when it has some.
    pub stored: Option<Stored>,
}

/// A staged company (`s`) the CRM has: live, or deleted in the ERP with its deletion
/// held by the delete guard or approved and not yet applied. Until a deletion is applied
/// the company keeps its categories, and its history gains nothing from the outage.
const IN_THE_CRM: &str = "(NOT s.deleted OR EXISTS (SELECT 1 FROM pending_delete p \
     WHERE p.tenant_id = s.tenant_id AND p.table_name = 'company' \
     AND p.external_id = s.external_id AND p.state IN ('HELD', 'APPROVED')))";

/// Every staged company of the tenant the CRM has ([`IN_THE_CRM`]) with its stored
/// categories.
///
/// Page by page (by external id): the staged companies' ids and content hashes, and the
/// stored categories of the same id range, are two ordered range reads merged here (a
/// join would look every company's category up one by one, which cost as much as the
/// whole revenue scan). The JSON fields are read only for companies whose staged version
/// differs from the one their categories were made from; the others' name, document and
/// portfolio come from their categories. A tenant without stored categories (its first
/// categorization) reads every company's fields with its id ([`first_companies`]).
pub async fn live_companies(db: &Db, tenant: &TenantId) -> Result<Vec<LiveCompany>> {
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
    type StoredRow = (
        String,
        Option<i64>,
        String,
        String,
        String,
        Option<String>,
        String,
        i64,
    );
    if !has_categories(db, tenant).await? {
        return first_companies(db, tenant).await;
    }
    let mut reader = Reader::new(db).await?;
    let mut out: Vec<LiveCompany> = Vec::new();
    let mut after = String::new();
    loop {
        let page: Vec<(String, i64, i64)> =
            fetch_packed!(&mut reader, staged, 3, [tenant.as_str(), after.as_str()])?;
        let full = page.len() == PAGE;
        let last = last_key(db, page.iter().map(|r| r.0.as_str()));
        let categories: Vec<StoredRow> = fetch_packed!(
            &mut reader,
            stored,
            8,
            [tenant.as_str(), after.as_str(), last.as_str()]
        )?;
        let mut categories: HashMap<String, StoredRow> =
            categories.into_iter().map(|c| (c.0.clone(), c)).collect();
        let mut changed = Vec::new();
        out.reserve(page.len());
        for (external_id, content_hash, held) in page {
            let category = categories.remove(&external_id);
            // A company whose deletion is held keeps what it had: its categories, made
            // from the version the CRM still has (the staged tombstone has no fields).
            // One never categorized stays so until the deletion is resolved.
            let held = held != 0;
            let content_hash = match &category {
                None if held => continue,
                Some((_, Some(hash), ..)) if held => *hash,
                _ => content_hash,
            };
            let (stored, current) = match category {
                Some((_, hash, name, document, portfolio, class, lifecycle, fingerprint)) => {
                    let (abc_class, lifecycle) = stored_classes(&external_id, class, &lifecycle)?;
                    let stored = Stored {
                        abc_class,
                        lifecycle,
                        fingerprint,
                        company_hash: hash,
                    };
                    // The categories were made from this very version: its fields are theirs.
                    let current =
                        (held || hash == Some(content_hash)).then_some((name, document, portfolio));
                    (Some(stored), current)
                }
                None => (None, None),
            };
            let (name, document, portfolio) = match current {
                Some((name, document, portfolio)) => (name, document, Some(portfolio)),
                None => {
                    changed.push(out.len());
                    (String::new(), String::new(), None)
                }
            };
            out.push(LiveCompany {
                content_hash,
                name,
                document,
                // The stored portfolio, or the staged seller_id (None without one).
                portfolio: portfolio.filter(|p| !p.is_empty()),
                stored,
                external_id,
            });
        }
        fill_fields(db, &mut reader, tenant, &after, &last, &mut out, &changed).await?;
        after = last;
        if !full {
            return Ok(out);
        }
    }
}

/// Fills name, document and portfolio (the seller) from the staged JSON fields of the
/// companies at `changed` in `out`, all in the id range (`after`, `last`]: by id when they
/// are few, else by one range read.
async fn fill_fields(
    db: &Db,
    reader: &mut Reader,
    tenant: &TenantId,
    after: &str,
    last: &str,
    out: &mut [LiveCompany],
    changed: &[usize],
) -> Result<()> {
    /// Up to this many changed companies in a page are read by id.
    const BY_ID: usize = 1_000;
    if changed.is_empty() {
        return Ok(());
    }
    let (source, [name, document, seller]) = json_fields(db);
    let columns = format!(
        "SELECT external_id AS c0, {name} AS c1, {document} AS c2, {seller} AS c3 \
         FROM {source} WHERE tenant_id = "
    );
    type Fields = (String, Option<String>, Option<String>, Option<String>);
    let mut rows: Vec<Fields> = Vec::new();
    if changed.len() <= BY_ID {
        let ids: Vec<&str> = changed
            .iter()
            .map(|&i| out[i].external_id.as_str())
            .collect();
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
        rows.extend(fetch_packed!(
            reader,
            build,
            4,
            [tenant.as_str(), list.as_str()]
        )?);
    } else {
        let build = |ph: Ph<'_>| {
            format!(
                "{columns}{} AND table_name = 'company' AND external_id > {} \
                 AND external_id <= {}",
                ph(1),
                ph(2),
                ph(3)
            )
        };
        rows.extend(fetch_packed!(
            reader,
            build,
            4,
            [tenant.as_str(), after, last]
        )?);
    }
    let mut by_id: HashMap<String, Fields> = rows.into_iter().map(|r| (r.0.clone(), r)).collect();
    for &i in changed {
        let c = &mut out[i];
        if let Some((_, name, document, seller)) = by_id.remove(&c.external_id) {
            (c.name, c.document, c.portfolio) = staged_fields(name, document, seller);
        }
    }
    Ok(())
}

/// Whether the tenant has stored categories at all (none before its first
/// categorization).
async fn has_categories(db: &Db, tenant: &TenantId) -> Result<bool> {
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

/// A staged company's name, document and portfolio as its categories take them: a
/// missing name or document empty, an empty seller no portfolio.
fn staged_fields(
    name: Option<String>,
    document: Option<String>,
    seller: Option<String>,
) -> (String, String, Option<String>) {
    (
        name.unwrap_or_default(),
        document.unwrap_or_default(),
        seller.filter(|p| !p.is_empty()),
    )
}

/// [`live_companies`] of a tenant without stored categories: every company's fields are
/// needed, so each page reads them with the ids (one range read, no category read).
async fn first_companies(db: &Db, tenant: &TenantId) -> Result<Vec<LiveCompany>> {
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
    type Row = (String, i64, Option<String>, Option<String>, Option<String>);
    let mut reader = Reader::new(db).await?;
    let mut out: Vec<LiveCompany> = Vec::new();
    let mut after = String::new();
    loop {
        let page: Vec<Row> =
            fetch_packed!(&mut reader, build, 5, [tenant.as_str(), after.as_str()])?;
        let full = page.len() == PAGE;
        after = last_key(db, page.iter().map(|r| r.0.as_str()));
        out.reserve(page.len());
        out.extend(
            page.into_iter()
                .map(|(external_id, content_hash, name, document, seller)| {
                    let (name, document, portfolio) = staged_fields(name, document, seller);
                    LiveCompany {
                        external_id,
                        content_hash,
                        name,
                        document,
                        portfolio,
                        stored: None,
                    }
                }),
        );
        if !full {
            return Ok(out);
        }
    }
}

/// The companies with stored categories that are no longer live (deleted from the CRM);
/// `live_with_categories` is how many live ones have categories, so the search only runs
/// when some are missing.
pub async fn categorized_but_gone(
    db: &Db,
    tenant: &TenantId,
    live_with_categories: usize,
) -> Result<Vec<String>> {
    let build = |ph: Ph<'_>| {
        format!(
            "SELECT COUNT(*) FROM company_category WHERE tenant_id = {}",
            ph(1)
        )
    };
    let total = fetch_all!(db, build, [tenant.as_str()], |r| col::<_, i64>(r, 0))?;
    if total.first().copied().unwrap_or(0) as usize <= live_with_categories {
        return Ok(Vec::new());
    }
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
