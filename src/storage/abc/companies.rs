//! The staged companies the abc stage categorizes, each with its stored categories, and
//! the categorized companies no longer in the CRM: how keyset pages of `staged_record`
//! and `company_category` are merged, whose fields are read and what a held deletion
//! keeps. The reads themselves are [`crate::storage::bulk::abc`]'s.

use std::collections::HashMap;

use super::rows::{stored_classes, Stored};
use crate::domain::tenant::TenantId;
use crate::error::Result;
use crate::storage::bulk::abc::{self as bulk, CategoryOfCompany, CompanyFields};
use crate::storage::bulk::read::{last_key, Reader, PAGE};
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

/// Every staged company of the tenant the CRM has (live, or deleted in the ERP with its
/// deletion held by the delete guard or approved and not yet applied: until a deletion
/// is applied the company keeps its categories, and its history gains nothing from the
/// outage) with its stored categories.
///
/// Page by page (by external id): the staged companies' ids and content hashes, and the
/// stored categories of the same id range, are two ordered range reads merged here (a
/// join would look every company's category up one by one, which cost as much as the
/// whole revenue scan). The JSON fields are read only for companies whose staged version
/// differs from the one their categories were made from; the others' name, document and
/// portfolio come from their categories. A tenant without stored categories (its first
/// categorization) reads every company's fields with its id ([`first_companies`]).
pub async fn live_companies(db: &Db, tenant: &TenantId) -> Result<Vec<LiveCompany>> {
    if !bulk::has_categories(db, tenant).await? {
        return first_companies(db, tenant).await;
    }
    let mut reader = Reader::new(db).await?;
    let mut out: Vec<LiveCompany> = Vec::new();
    let mut after = String::new();
    loop {
        let page = bulk::staged_companies(&mut reader, tenant, &after).await?;
        let full = page.len() == PAGE;
        let last = last_key(db, page.iter().map(|r| r.0.as_str()));
        let categories = bulk::categories_in_range(&mut reader, tenant, &after, &last).await?;
        let mut categories: HashMap<String, CategoryOfCompany> =
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
    let rows = if changed.len() <= BY_ID {
        let ids: Vec<&str> = changed
            .iter()
            .map(|&i| out[i].external_id.as_str())
            .collect();
        bulk::company_fields_by_id(db, reader, tenant, &ids).await?
    } else {
        bulk::company_fields_in_range(db, reader, tenant, after, last).await?
    };
    let mut by_id: HashMap<String, CompanyFields> =
        rows.into_iter().map(|r| (r.0.clone(), r)).collect();
    for &i in changed {
        let c = &mut out[i];
        if let Some((_, name, document, seller)) = by_id.remove(&c.external_id) {
            (c.name, c.document, c.portfolio) = staged_fields(name, document, seller);
        }
    }
    Ok(())
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
    let mut reader = Reader::new(db).await?;
    let mut out: Vec<LiveCompany> = Vec::new();
    let mut after = String::new();
    loop {
        let page = bulk::live_companies_with_fields(db, &mut reader, tenant, &after).await?;
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
    if bulk::count_categories(db, tenant).await? as usize <= live_with_categories {
        return Ok(Vec::new());
    }
    bulk::categorized_not_in_the_crm(db, tenant).await
}
