//! How a category is kept in a row (`company_category`, `abc_held`): its columns and
//! values, a row read back as a [`Category`] or as what a run compares with ([`Stored`]), stored class and lifecycle texts and
//! stored dates (corrupt ones an Internal error).

use chrono::NaiveDate;
use sea_orm::{QueryResult, Value};

use crate::domain::abc::{AbcClass, Category, Classes, Lifecycle};
use crate::error::{AppError, Result};

/// What a run needs of a company's stored categories (read back from
/// `company_category`): its class and lifecycle (for the
/// shift guard and the history) and the fingerprint of the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// Class.
    pub abc_class: Option<AbcClass>,
    /// Lifecycle.
    pub lifecycle: Lifecycle,
    /// [`Category::fingerprint`].
    pub fingerprint: i64,
    /// [`Category::company_hash`].
    pub company_hash: Option<i64>,
}

impl From<&Category> for Stored {
    fn from(c: &Category) -> Self {
        Self {
            abc_class: c.abc_class,
            lifecycle: c.lifecycle,
            fingerprint: c.fingerprint(),
            company_hash: c.company_hash,
        }
    }
}

impl From<&Stored> for Classes {
    fn from(s: &Stored) -> Self {
        Self {
            abc_class: s.abc_class,
            lifecycle: s.lifecycle,
        }
    }
}

/// A stored civil date (`YYYY-MM-DD` text), read back.
pub(crate) fn date(s: Option<String>) -> Result<Option<NaiveDate>> {
    s.map(|s| {
        NaiveDate::parse_from_str(&s, "%Y-%m-%d")
            .map_err(|e| AppError::Internal(anyhow::anyhow!("stored date {s:?} is corrupt: {e}")))
    })
    .transpose()
}

/// The columns of a category, in the order of [`category_values`].
pub(crate) const CATEGORY_COLUMNS: &str =
    "external_id, name, document, abc_class, lifecycle, portfolio, \
    revenue, first_purchase, last_purchase, company_hash";

/// A category's values for [`CATEGORY_COLUMNS`].
pub(crate) fn category_values(c: &Category) -> [Value; 10] {
    [
        c.external_id.as_str().into(),
        c.name.as_str().into(),
        c.document.as_str().into(),
        c.abc_class.map(|x| x.as_str().to_owned()).into(),
        c.lifecycle.as_str().into(),
        c.portfolio.as_str().into(),
        c.revenue.into(),
        c.first_purchase.map(|d| d.to_string()).into(),
        c.last_purchase.map(|d| d.to_string()).into(),
        c.company_hash.into(),
    ]
}

/// A category read back from a row of [`CATEGORY_COLUMNS`].
pub(crate) fn category_from(r: &QueryResult) -> Result<Category> {
    let external_id: String = r.try_get("", "external_id")?;
    let lifecycle: String = r.try_get("", "lifecycle")?;
    let (abc_class, lifecycle) =
        stored_classes(&external_id, r.try_get("", "abc_class")?, &lifecycle)?;
    Ok(Category {
        external_id,
        name: r.try_get("", "name")?,
        document: r.try_get("", "document")?,
        abc_class,
        lifecycle,
        portfolio: r.try_get("", "portfolio")?,
        revenue: r.try_get("", "revenue")?,
        first_purchase: date(r.try_get("", "first_purchase")?)?,
        last_purchase: date(r.try_get("", "last_purchase")?)?,
        company_hash: r.try_get("", "company_hash")?,
    })
}

/// A stored class and lifecycle, read back (Internal error naming the company when the
/// stored text is none of ours).
pub(crate) fn stored_classes(
    external_id: &str,
    class: Option<String>,
    lifecycle: &str,
) -> Result<(Option<AbcClass>, Lifecycle)> {
    let corrupt = || {
        AppError::Internal(anyhow::anyhow!(
            "stored category of {external_id:?} is corrupt"
        ))
    };
    let class = match class {
        Some(c) => Some(AbcClass::parse(&c).ok_or_else(corrupt)?),
        None => None,
    };
    Ok((class, Lifecycle::parse(lifecycle).ok_or_else(corrupt)?))
}
