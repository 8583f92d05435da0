//! What the CRM gets for one company after a run (its class, lifecycle and portfolio), what
//! a run keeps of it, and the history of its changes.

use chrono::{DateTime, NaiveDate, Utc};

use super::classify::{AbcClass, Standing};
use super::settings::Lifecycle;
use crate::domain::hash::Fnv1a;

/// The portfolio of a company without a seller.
pub const UNASSIGNED: &str = "unassigned";

/// What the CRM gets for one company after a run: its ABC class, lifecycle and portfolio
/// (with what they were computed from).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Category {
    /// The company's external id.
    pub external_id: String,
    /// Its name, as staged.
    pub name: String,
    /// Its document (CNPJ), as staged.
    pub document: String,
    /// None without revenue in the window.
    pub abc_class: Option<AbcClass>,
    /// Where it is in its life with the tenant.
    pub lifecycle: Lifecycle,
    /// The seller's external id, or [`UNASSIGNED`].
    pub portfolio: String,
    /// Revenue in the window, in ten-thousandths.
    pub revenue: i64,
    /// First purchase ever (up to the run's date).
    pub first_purchase: Option<NaiveDate>,
    /// Last purchase (up to the run's date).
    pub last_purchase: Option<NaiveDate>,
    /// The staged company's content hash its name, document and portfolio were read
    /// from (not part of what the CRM gets).
    pub company_hash: Option<i64>,
}

impl Category {
    /// The version the CRM gets these categories as: the fingerprint and the company
    /// version they follow (categories sent again after a company's upsert are another
    /// version); no ERP time, no request.
    pub fn version(&self) -> crate::domain::crm::RecordVersion {
        let mut h = Fnv1a::default();
        h.feed(&self.fingerprint().to_le_bytes());
        h.feed(&self.company_hash.map_or([0xff; 9], |c| {
            let mut b = [0; 9];
            b[1..].copy_from_slice(&c.to_le_bytes());
            b
        }));
        crate::domain::crm::RecordVersion {
            content_hash: h.finish(),
            updated_at: None,
            request_id: String::new(),
        }
    }

    /// FNV-1a over every field: equal fingerprints mean nothing to send to the CRM.
    pub fn fingerprint(&self) -> i64 {
        let mut h = Fnv1a::default();
        // Each field ends with 0xff (never in UTF-8), so fields cannot run into each other.
        let mut field = |bytes: &[u8]| {
            h.feed(bytes);
            h.feed(&[0xff]);
        };
        field(self.external_id.as_bytes());
        field(self.name.as_bytes());
        field(self.document.as_bytes());
        field(self.abc_class.map_or("", AbcClass::as_str).as_bytes());
        field(self.lifecycle.as_str().as_bytes());
        field(self.portfolio.as_bytes());
        field(&self.revenue.to_le_bytes());
        for d in [self.first_purchase, self.last_purchase] {
            field(&d.map_or(i32::MIN, fingerprint_day).to_le_bytes());
        }
        h.finish()
    }
}

/// A date as the fingerprint feeds it: days since 1970-01-01 as an i32 (saturating).
/// Fingerprints are stored with the categories, so this never changes: another encoding
/// would make every company look changed and be sent to the CRM again.
fn fingerprint_day(d: NaiveDate) -> i32 {
    i32::try_from((d - NaiveDate::default()).num_days()).unwrap_or(i32::MAX)
}

/// A company's class and lifecycle before a run's new categories: what a change of
/// them ([`change_of`]) starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classes {
    /// Class.
    pub abc_class: Option<AbcClass>,
    /// Lifecycle.
    pub lifecycle: Lifecycle,
}

/// A change of a company's class or lifecycle (its categorization history).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CategoryChange {
    /// The company's external id.
    pub external_id: String,
    /// The run whose classification made the change.
    pub run_id: String,
    /// The civil date of the change in the tenant's zone.
    pub changed_on: NaiveDate,
    /// When it was applied.
    pub changed_at: chrono::DateTime<chrono::Utc>,
    /// Class before (None: none or not categorized yet).
    pub abc_from: Option<AbcClass>,
    /// Class after.
    pub abc_to: Option<AbcClass>,
    /// Lifecycle before (None: not categorized yet).
    pub lifecycle_from: Option<Lifecycle>,
    /// Lifecycle after.
    pub lifecycle_to: Option<Lifecycle>,
    /// The company's revenue in the window the change was computed from, in
    /// ten-thousandths (None: not kept, as for changes written before it was).
    pub revenue: Option<i64>,
    /// Its rank and the cumulative share before it, which its class was cut at (None
    /// without revenue, or not kept).
    pub standing: Option<Standing>,
}

/// The change between a company's classes before (None: never categorized) and its new
/// category, when its class or lifecycle differ; `standing` is where the classification
/// ranked it.
pub fn change_of(
    old: Option<impl Into<Classes>>,
    new: &Category,
    standing: Option<Standing>,
    run_id: &str,
    at: chrono::DateTime<chrono::Utc>,
    on: NaiveDate,
) -> Option<CategoryChange> {
    let old: Option<Classes> = old.map(Into::into);
    let (abc_from, lifecycle_from) = match old {
        Some(o) => (o.abc_class, Some(o.lifecycle)),
        None => (None, None),
    };
    if old.is_some() && abc_from == new.abc_class && lifecycle_from == Some(new.lifecycle) {
        return None;
    }
    Some(CategoryChange {
        external_id: new.external_id.clone(),
        run_id: run_id.to_owned(),
        changed_on: on,
        changed_at: at,
        abc_from,
        abc_to: new.abc_class,
        lifecycle_from,
        lifecycle_to: Some(new.lifecycle),
        revenue: Some(new.revenue),
        standing,
    })
}

/// Which categorized companies a listing shows.
#[derive(Debug, Clone, Default)]
pub struct CompanyFilter {
    /// Only this class; `Some(None)` for the companies without one.
    pub class: Option<Option<AbcClass>>,
    /// Only this lifecycle.
    pub lifecycle: Option<Lifecycle>,
    /// Only this portfolio.
    pub portfolio: Option<String>,
}

/// Which run applies categories, and when (the history's run, instant and civil date).
#[derive(Debug, Clone, Copy)]
pub struct Stamp<'a> {
    /// The run whose classification it is.
    pub run_id: &'a str,
    /// When it is applied.
    pub at: DateTime<Utc>,
    /// That instant's civil date in the tenant's zone.
    pub on: NaiveDate,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_days_count_from_1970_as_they_always_did() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(fingerprint_day(d("1970-01-01")), 0);
        assert_eq!(fingerprint_day(d("2026-11-28")), 20_785);
        assert_eq!(fingerprint_day(d("1900-01-01")), -25_567);
    }
}
