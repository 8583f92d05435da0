//! The ABC analysis: reports, categorized companies and their history.

use super::super::pb;
use super::values::{record_version, timestamp};
use crate::domain::abc::{AbcClass, AbcReport, Category, CategoryChange, Lifecycle, Money};

/// A company's categories as the CRM sink receives them.
pub fn company_category(c: Category) -> pb::CompanyCategory {
    pb::CompanyCategory {
        version: record_version(&c.version()),
        external_id: c.external_id,
        abc_class: c
            .abc_class
            .map(|x| x.as_str().to_owned())
            .unwrap_or_default(),
        lifecycle: c.lifecycle.as_str().to_owned(),
        portfolio: c.portfolio,
        revenue: Money::from(c.revenue).text(),
    }
}

fn abc_class(c: Option<AbcClass>) -> pb::AbcClass {
    match c {
        Some(AbcClass::A) => pb::AbcClass::A,
        Some(AbcClass::B) => pb::AbcClass::B,
        Some(AbcClass::C) => pb::AbcClass::C,
        None => pb::AbcClass::Unspecified,
    }
}

/// A class filter: None for unspecified, Err for a value this server does not know.
pub fn abc_class_from(v: i32) -> Result<Option<AbcClass>, ()> {
    match pb::AbcClass::try_from(v) {
        Ok(pb::AbcClass::Unspecified) => Ok(None),
        Ok(pb::AbcClass::A) => Ok(Some(AbcClass::A)),
        Ok(pb::AbcClass::B) => Ok(Some(AbcClass::B)),
        Ok(pb::AbcClass::C) => Ok(Some(AbcClass::C)),
        Err(_) => Err(()),
    }
}

fn lifecycle(l: Option<Lifecycle>) -> pb::Lifecycle {
    match l {
        Some(Lifecycle::Prospect) => pb::Lifecycle::Prospect,
        Some(Lifecycle::New) => pb::Lifecycle::New,
        Some(Lifecycle::Active) => pb::Lifecycle::Active,
        Some(Lifecycle::AtRisk) => pb::Lifecycle::AtRisk,
        Some(Lifecycle::Inactive) => pb::Lifecycle::Inactive,
        None => pb::Lifecycle::Unspecified,
    }
}

/// A lifecycle filter: None for unspecified, Err for an unknown value.
pub fn lifecycle_from(v: i32) -> Result<Option<Lifecycle>, ()> {
    match pb::Lifecycle::try_from(v) {
        Ok(pb::Lifecycle::Unspecified) => Ok(None),
        Ok(pb::Lifecycle::Prospect) => Ok(Some(Lifecycle::Prospect)),
        Ok(pb::Lifecycle::New) => Ok(Some(Lifecycle::New)),
        Ok(pb::Lifecycle::Active) => Ok(Some(Lifecycle::Active)),
        Ok(pb::Lifecycle::AtRisk) => Ok(Some(Lifecycle::AtRisk)),
        Ok(pb::Lifecycle::Inactive) => Ok(Some(Lifecycle::Inactive)),
        Err(_) => Err(()),
    }
}

/// A categorized company as ListCompanies shows it.
pub fn company(c: Category) -> pb::Company {
    pb::Company {
        external_id: c.external_id,
        name: c.name,
        document: c.document,
        abc_class: abc_class(c.abc_class) as i32,
        lifecycle: lifecycle(Some(c.lifecycle)) as i32,
        portfolio: c.portfolio,
        revenue: Money::from(c.revenue).text(),
        first_purchase: c.first_purchase.map(|d| d.to_string()).unwrap_or_default(),
        last_purchase: c.last_purchase.map(|d| d.to_string()).unwrap_or_default(),
    }
}

/// One change of a company's categorization history.
pub fn category_change(h: CategoryChange) -> pb::CategoryChange {
    pb::CategoryChange {
        run_id: h.run_id,
        date: h.changed_on.to_string(),
        changed_at: Some(timestamp(h.changed_at)),
        abc_from: abc_class(h.abc_from) as i32,
        abc_to: abc_class(h.abc_to) as i32,
        lifecycle_from: lifecycle(h.lifecycle_from) as i32,
        lifecycle_to: lifecycle(h.lifecycle_to) as i32,
        revenue: h.revenue.map(|r| Money::from(r).text()).unwrap_or_default(),
        rank: h.standing.map(|s| s.rank),
        cumulative_share_before: h
            .standing
            .map(|s| format!("{:.2}", s.share_before))
            .unwrap_or_default(),
    }
}

/// The ABC report, with the run whose classification is held (if any).
pub fn abc_report(tenant: &str, r: AbcReport, held_run_id: Option<String>) -> pb::AbcReport {
    let without = r
        .summary
        .iter()
        .find(|s| s.class.is_none())
        .map_or(0, |s| s.companies);
    pb::AbcReport {
        tenant_id: tenant.to_owned(),
        basis: r.basis.table().as_str().to_owned(),
        window_from: r.window_from.to_string(),
        window_to: r.window_to.to_string(),
        a_threshold: r.a_threshold.to_string(),
        b_threshold: r.b_threshold.to_string(),
        classes: r
            .summary
            .into_iter()
            .filter(|s| s.class.is_some())
            .map(|s| pb::AbcClassSummary {
                abc_class: abc_class(s.class) as i32,
                companies: s.companies,
                revenue: s.revenue.text(),
                revenue_share: format!("{:.2}", s.share),
            })
            .collect(),
        curve: r
            .curve
            .into_iter()
            .map(|(c, v)| pb::ParetoPoint {
                company_share: format!("{c:.2}"),
                revenue_share: format!("{v:.2}"),
            })
            .collect(),
        computed_at: Some(timestamp(r.computed_at)),
        run_id: r.run_id,
        state: r.state.as_str().to_owned(),
        companies: r.companies,
        companies_changed: r.changed,
        companies_compared: r.base,
        held_run_id: held_run_id.unwrap_or_default(),
        companies_without_class: without,
    }
}
