//! How a category is kept in a row (`company_category`, `abc_held`): a row read back as
//! a [`Category`] (from the entities' models) or as what a run compares with
//! ([`Stored`]), stored class and lifecycle texts and stored dates (corrupt ones an
//! Internal error). How the bulk writes lay a category out is `storage::bulk::write`'s.

use chrono::NaiveDate;

use crate::domain::abc::{AbcClass, Category, Classes, Lifecycle};
use crate::error::{AppError, Result};
use crate::storage::entities::{abc_held, company_category};

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

/// A category read back from its row: `company_category`'s and `abc_held`'s keep it in
/// the same columns.
macro_rules! category_from_row {
    ($model:ty) => {
        impl TryFrom<$model> for Category {
            type Error = AppError;

            fn try_from(m: $model) -> Result<Category> {
                let (abc_class, lifecycle) =
                    stored_classes(&m.external_id, m.abc_class, &m.lifecycle)?;
                Ok(Category {
                    abc_class,
                    lifecycle,
                    name: m.name,
                    document: m.document,
                    portfolio: m.portfolio,
                    revenue: m.revenue,
                    first_purchase: date(m.first_purchase)?,
                    last_purchase: date(m.last_purchase)?,
                    company_hash: m.company_hash,
                    external_id: m.external_id,
                })
            }
        }
    };
}

category_from_row!(company_category::Model);
category_from_row!(abc_held::Model);

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
