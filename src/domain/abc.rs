//! The ABC curve (Pareto analysis) and the customer lifecycle, as pure functions over
//! revenue figures; the sync's abc and categorize stages feed them from the database.
//!
//! Amounts are exact: every invoice or order total is kept as an integer number of
//! ten-thousandths of the currency unit ([`AMOUNT_SCALE`]), and sums are integers.

use chrono::{Months, NaiveDate};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::hash::Fnv1a;
use super::record::{parse_date, ParsedDate};
use crate::error::FieldViolation;

/// Decimal places of a stored amount: totals are kept as integers of 0.0001.
pub const AMOUNT_SCALE: u32 = 4;
/// The portfolio of a company without a seller.
pub const UNASSIGNED: &str = "unassigned";

/// An ABC class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AbcClass {
    /// The few customers that make most of the revenue.
    A,
    /// The middle.
    B,
    /// The long tail.
    C,
}

impl AbcClass {
    /// "A", "B" or "C".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::B => "B",
            Self::C => "C",
        }
    }

    /// Parses "A", "B" or "C".
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "A" => Some(Self::A),
            "B" => Some(Self::B),
            "C" => Some(Self::C),
            _ => None,
        }
    }
}

/// Where a customer is in its life with the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lifecycle {
    /// Never bought.
    Prospect,
    /// First purchase within the "new" window.
    New,
    /// Last purchase within the "active" window.
    Active,
    /// Last purchase between the active and the inactive windows.
    AtRisk,
    /// Last purchase longer ago than the inactive window.
    Inactive,
}

impl Lifecycle {
    /// Every value.
    pub const ALL: [Self; 5] = [
        Self::Prospect,
        Self::New,
        Self::Active,
        Self::AtRisk,
        Self::Inactive,
    ];

    /// PROSPECT, NEW, ACTIVE, AT_RISK or INACTIVE.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Prospect => "PROSPECT",
            Self::New => "NEW",
            Self::Active => "ACTIVE",
            Self::AtRisk => "AT_RISK",
            Self::Inactive => "INACTIVE",
        }
    }

    /// Parses what [`Lifecycle::as_str`] prints.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

/// Which ERP table revenue is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Basis {
    /// Fiscal invoices (NF-e) totals; credit notes count negative.
    #[default]
    Invoice,
    /// Order totals.
    Order,
}

impl Basis {
    /// The ERP table: "invoice" or "order".
    pub fn table(self) -> &'static str {
        match self {
            Self::Invoice => "invoice",
            Self::Order => "order",
        }
    }

    /// Parses "invoice" or "order".
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "invoice" => Some(Self::Invoice),
            "order" => Some(Self::Order),
            _ => None,
        }
    }
}

/// A tenant's ABC and lifecycle settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AbcSettings {
    /// Revenue from invoices or from orders.
    pub basis: Basis,
    /// Months of revenue counted back from the run's date.
    pub window_months: u32,
    /// Cumulative revenue share (percent) below which a company is A…
    pub a_threshold: Decimal,
    /// …and below which it is B; C after.
    pub b_threshold: Decimal,
    /// A first purchase at most this many days ago makes a customer NEW.
    pub new_days: u32,
    /// A last purchase at most this many days ago makes it ACTIVE…
    pub active_days: u32,
    /// …at most this many days AT_RISK, and INACTIVE after.
    pub inactive_days: u32,
    /// Hold a classification that changes the class of more than this percentage of the
    /// classified companies.
    pub shift_guard_percent: Decimal,
    /// Whether the shift guard is on.
    pub shift_guard: bool,
}

impl Default for AbcSettings {
    fn default() -> Self {
        Self {
            basis: Basis::Invoice,
            window_months: 12,
            a_threshold: Decimal::from(80),
            b_threshold: Decimal::from(95),
            new_days: 90,
            active_days: 180,
            inactive_days: 365,
            shift_guard_percent: Decimal::from(30),
            shift_guard: true,
        }
    }
}

/// Longest accepted revenue window: 100 years.
pub const MAX_WINDOW_MONTHS: u32 = 1200;
/// Longest accepted lifecycle window: 100 years.
pub const MAX_LIFECYCLE_DAYS: u32 = 36_500;
/// Decimal places a threshold may have.
const THRESHOLD_DECIMALS: u32 = 2;

/// Requested changes of the ABC settings, as received; unset fields keep their value.
#[derive(Debug, Clone, Default)]
pub struct AbcInput {
    /// "invoice" or "order".
    pub basis: Option<String>,
    /// Months.
    pub window_months: Option<u32>,
    /// Percent.
    pub a_threshold: Option<f64>,
    /// Percent.
    pub b_threshold: Option<f64>,
    /// Days.
    pub new_days: Option<u32>,
    /// Days.
    pub active_days: Option<u32>,
    /// Days.
    pub inactive_days: Option<u32>,
    /// Percent.
    pub shift_guard_percent: Option<f64>,
    /// On or off.
    pub shift_guard: Option<bool>,
}

impl AbcInput {
    /// True when nothing is asked.
    pub fn is_empty(&self) -> bool {
        self.basis.is_none()
            && self.window_months.is_none()
            && self.a_threshold.is_none()
            && self.b_threshold.is_none()
            && self.new_days.is_none()
            && self.active_days.is_none()
            && self.inactive_days.is_none()
            && self.shift_guard_percent.is_none()
            && self.shift_guard.is_none()
    }
}

/// A percentage as sent (a double) made exact: the shortest text that reads back as the
/// same double ("80.5" for 80.5), parsed as a decimal.
fn percent(field: &'static str, v: f64, violations: &mut Vec<FieldViolation>) -> Option<Decimal> {
    let d = if v.is_finite() {
        format!("{v}").parse::<Decimal>().ok()
    } else {
        None
    };
    match d {
        Some(d) if d.scale() <= THRESHOLD_DECIMALS => Some(d),
        Some(_) => {
            violations.push(FieldViolation::new(
                field,
                format!("{v} has more than {THRESHOLD_DECIMALS} decimal places"),
            ));
            None
        }
        None => {
            violations.push(FieldViolation::new(field, format!("{v} is not a number")));
            None
        }
    }
}

impl AbcSettings {
    /// These settings with `input` applied, or every problem found (checked on the merged
    /// result: 0 < A < B < 100 and new ≤ active < inactive).
    pub fn merged(&self, input: &AbcInput) -> Result<Self, Vec<FieldViolation>> {
        let mut v = Vec::new();
        let mut s = self.clone();
        if let Some(b) = &input.basis {
            match Basis::parse(b) {
                Some(b) => s.basis = b,
                None => v.push(FieldViolation::new(
                    "abc_basis",
                    format!("{b:?} is not a basis: use invoice or order"),
                )),
            }
        }
        if let Some(m) = input.window_months {
            if m == 0 || m > MAX_WINDOW_MONTHS {
                v.push(FieldViolation::new(
                    "abc_window_months",
                    format!("must be between 1 and {MAX_WINDOW_MONTHS}"),
                ));
            } else {
                s.window_months = m;
            }
        }
        if let Some(a) = input.a_threshold {
            if let Some(d) = percent("abc_a_threshold", a, &mut v) {
                s.a_threshold = d;
            }
        }
        if let Some(b) = input.b_threshold {
            if let Some(d) = percent("abc_b_threshold", b, &mut v) {
                s.b_threshold = d;
            }
        }
        if let Some(p) = input.shift_guard_percent {
            if let Some(d) = percent("abc_shift_guard_percent", p, &mut v) {
                if d <= Decimal::ZERO || d > Decimal::ONE_HUNDRED {
                    v.push(FieldViolation::new(
                        "abc_shift_guard_percent",
                        "must be more than 0 and at most 100",
                    ));
                } else {
                    s.shift_guard_percent = d;
                }
            }
        }
        if let Some(g) = input.shift_guard {
            s.shift_guard = g;
        }
        for (field, value, target) in [
            ("lifecycle_new_days", input.new_days, &mut s.new_days),
            (
                "lifecycle_active_days",
                input.active_days,
                &mut s.active_days,
            ),
            (
                "lifecycle_inactive_days",
                input.inactive_days,
                &mut s.inactive_days,
            ),
        ] {
            if let Some(d) = value {
                if d == 0 || d > MAX_LIFECYCLE_DAYS {
                    v.push(FieldViolation::new(
                        field,
                        format!("must be between 1 and {MAX_LIFECYCLE_DAYS} days"),
                    ));
                } else {
                    *target = d;
                }
            }
        }
        if !v.is_empty() {
            return Err(v);
        }
        if !(s.a_threshold > Decimal::ZERO
            && s.a_threshold < s.b_threshold
            && s.b_threshold < Decimal::ONE_HUNDRED)
        {
            let field = if input.a_threshold.is_some() {
                "abc_a_threshold"
            } else {
                "abc_b_threshold"
            };
            v.push(FieldViolation::new(
                field,
                format!(
                    "the thresholds must satisfy 0 < A < B < 100; they would be A = {} and B = {}",
                    s.a_threshold, s.b_threshold
                ),
            ));
        }
        if !(s.new_days <= s.active_days && s.active_days < s.inactive_days) {
            v.push(FieldViolation::new(
                "lifecycle_active_days",
                format!(
                    "the lifecycle windows must satisfy new ≤ active < inactive; they would be {}, {} and {} days",
                    s.new_days, s.active_days, s.inactive_days
                ),
            ));
        }
        if v.is_empty() {
            Ok(s)
        } else {
            Err(v)
        }
    }

    /// The revenue window of a run on `as_of` (a civil date in the tenant's zone):
    /// `window_months` months ending on `as_of`, both ends included.
    pub fn window(&self, as_of: NaiveDate) -> (NaiveDate, NaiveDate) {
        let from = as_of
            .checked_sub_months(Months::new(self.window_months))
            .and_then(|d| d.succ_opt())
            .unwrap_or(NaiveDate::MIN);
        (from, as_of)
    }

    /// The lifecycle of a customer whose first and last purchases were on these dates.
    pub fn lifecycle(
        &self,
        first: Option<NaiveDate>,
        last: Option<NaiveDate>,
        as_of: NaiveDate,
    ) -> Lifecycle {
        let (Some(first), Some(last)) = (first, last) else {
            return Lifecycle::Prospect;
        };
        let age = |d: NaiveDate| (as_of - d).num_days();
        if age(first) <= i64::from(self.new_days) {
            Lifecycle::New
        } else if age(last) <= i64::from(self.active_days) {
            Lifecycle::Active
        } else if age(last) <= i64::from(self.inactive_days) {
            Lifecycle::AtRisk
        } else {
            Lifecycle::Inactive
        }
    }
}

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
            field(&d.map_or(i32::MIN, day_number).to_le_bytes());
        }
        h.finish()
    }
}

/// What a run needs of a company's stored categories: its class and lifecycle (for the
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
}

/// The change between a company's stored category and its new one, when its class or
/// lifecycle differ.
pub fn change_of(
    old: Option<&Stored>,
    new: &Category,
    run_id: &str,
    at: chrono::DateTime<chrono::Utc>,
    on: NaiveDate,
) -> Option<CategoryChange> {
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
    })
}

/// Where a run's classification stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportState {
    /// Applied by its run.
    Applied,
    /// Held by the shift guard, waiting for ResolveAbcShift.
    Held,
    /// Held, then approved and applied.
    Approved,
    /// Held, then discarded.
    Discarded,
    /// Held, then replaced by a later run's classification.
    Superseded,
}

impl ReportState {
    /// APPLIED, HELD, APPROVED, DISCARDED or SUPERSEDED.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "APPLIED",
            Self::Held => "HELD",
            Self::Approved => "APPROVED",
            Self::Discarded => "DISCARDED",
            Self::Superseded => "SUPERSEDED",
        }
    }

    /// Parses what [`ReportState::as_str`] prints.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Applied,
            Self::Held,
            Self::Approved,
            Self::Discarded,
            Self::Superseded,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }
}

/// One class's line of a report; `class` None is the companies without revenue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassSummary {
    /// A, B, C, or None for the companies without revenue.
    pub class: Option<AbcClass>,
    /// How many companies.
    pub companies: u64,
    /// Their revenue, in ten-thousandths.
    pub revenue: i128,
    /// Percent of the total revenue, two places.
    pub share: Decimal,
}

/// A run's ABC analysis, as GetAbcReport shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct AbcReport {
    /// The run that computed it.
    pub run_id: String,
    /// When.
    pub computed_at: chrono::DateTime<chrono::Utc>,
    /// The run's civil date.
    pub as_of: NaiveDate,
    /// Invoices or orders.
    pub basis: Basis,
    /// First day of the window.
    pub window_from: NaiveDate,
    /// Last day of the window.
    pub window_to: NaiveDate,
    /// A threshold, percent.
    pub a_threshold: Decimal,
    /// B threshold, percent.
    pub b_threshold: Decimal,
    /// Per class A, B, C, then the companies without revenue.
    pub summary: Vec<ClassSummary>,
    /// (percent of companies, cumulative percent of revenue).
    pub curve: Vec<(Decimal, Decimal)>,
    /// Companies categorized.
    pub companies: u64,
    /// Companies classified before whose class changed.
    pub changed: u64,
    /// Companies classified before.
    pub base: u64,
    /// Applied, held, …
    pub state: ReportState,
}

impl Classification {
    /// The per-class lines of a report (A, B, C, then the companies without revenue).
    pub fn summary_lines(&self, unclassified_revenue: i128) -> Vec<ClassSummary> {
        let mut lines: Vec<ClassSummary> = self
            .summary
            .iter()
            .map(|(class, companies, revenue)| ClassSummary {
                class: Some(*class),
                companies: *companies,
                revenue: *revenue,
                share: share(*revenue, self.total),
            })
            .collect();
        lines.push(ClassSummary {
            class: None,
            companies: self.unclassified,
            revenue: unclassified_revenue,
            share: Decimal::ZERO,
        });
        lines
    }
}

/// A stored amount (ten-thousandths) as a decimal with at least two places: "1234.50".
pub fn amount_text(v: i128) -> String {
    match Decimal::try_from_i128_with_scale(v, AMOUNT_SCALE) {
        Ok(d) => {
            let mut d = d.normalize();
            if d.scale() < 2 {
                d.rescale(2);
            }
            d.to_string()
        }
        // Beyond 28 digits: print the integer part and the four places by hand.
        Err(_) => {
            let sign = if v < 0 { "-" } else { "" };
            let a = v.unsigned_abs();
            format!("{sign}{}.{:04}", a / 10_000, a % 10_000)
        }
    }
}

/// A total as an exact amount in ten-thousandths (rounded half away from zero past the
/// fourth place); None when it does not fit.
pub fn scaled_amount(d: Decimal) -> Option<i64> {
    let r = d.round_dp_with_strategy(
        AMOUNT_SCALE,
        rust_decimal::RoundingStrategy::MidpointAwayFromZero,
    );
    let mantissa = r.mantissa();
    let factor = 10i128.pow(AMOUNT_SCALE - r.scale());
    i64::try_from(mantissa.checked_mul(factor)?).ok()
}

/// A civil date as stored in the revenue columns: days since 1970-01-01.
pub fn day_number(d: NaiveDate) -> i32 {
    i32::try_from((d - NaiveDate::default()).num_days()).unwrap_or(i32::MAX)
}

/// The civil date of a stored day number.
pub fn from_day_number(n: i64) -> Option<NaiveDate> {
    NaiveDate::default().checked_add_signed(chrono::Duration::try_days(n)?)
}

/// The revenue columns of a staged invoice or order, kept beside its fields so a run
/// sums revenue in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevenueFact {
    /// The company's external id.
    pub company_ref: String,
    /// The civil date of issue in the tenant's zone.
    pub issued_on: NaiveDate,
    /// The total in ten-thousandths.
    pub amount: i64,
}

/// The revenue columns of a validated (normalized) record of `table`; None for other
/// tables, tombstones and records without a company, a date or a total.
pub fn revenue_fact(table: &str, fields: &Map<String, Value>, zone: Tz) -> Option<RevenueFact> {
    if table != Basis::Invoice.table() && table != Basis::Order.table() {
        return None;
    }
    let company_ref = fields.get("company_id")?.as_str()?.to_owned();
    let issued_on = match parse_date(fields.get("issued_at")?.as_str()?).ok()? {
        ParsedDate::Date(d) => d,
        ParsedDate::Naive(dt) => dt.date(),
        ParsedDate::Instant(i) => i.with_timezone(&zone).date_naive(),
    };
    let total: Decimal = fields.get("total")?.as_str()?.parse().ok()?;
    Some(RevenueFact {
        company_ref,
        issued_on,
        amount: scaled_amount(total)?,
    })
}

/// `part` as a percentage of `whole`, exact to two places (0 when `whole` is 0).
pub fn share(part: i128, whole: i128) -> Decimal {
    if whole == 0 {
        return Decimal::ZERO;
    }
    // Both fit a Decimal mantissa (< 7.9e28) for any realistic revenue; past that the
    // share is computed on the amounts divided down, which keeps two exact places.
    let (mut p, mut w) = (part, whole);
    while p.unsigned_abs() > 10u128.pow(26) || w.unsigned_abs() > 10u128.pow(26) {
        p /= 10;
        w /= 10;
    }
    let (p, w) = (
        Decimal::from_i128_with_scale(p, 0),
        Decimal::from_i128_with_scale(w, 0),
    );
    if w.is_zero() {
        return Decimal::ZERO;
    }
    (p * Decimal::ONE_HUNDRED / w)
        .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
}

/// One company's revenue in the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompanyRevenue<'a> {
    /// The company's external id.
    pub external_id: &'a str,
    /// Revenue in ten-thousandths; zero or negative means no revenue.
    pub revenue: i128,
}

/// The outcome of classifying a set of companies.
#[derive(Debug, Clone, PartialEq)]
pub struct Classification {
    /// Class of each company, in the order of the input (None without revenue).
    pub classes: Vec<Option<AbcClass>>,
    /// Per class A, B, C: companies and revenue.
    pub summary: [(AbcClass, u64, i128); 3],
    /// Companies without revenue in the window.
    pub unclassified: u64,
    /// The sum of the positive revenues (100 % of the curve).
    pub total: i128,
    /// The Pareto curve: (percent of companies, cumulative percent of revenue).
    pub curve: Vec<(Decimal, Decimal)>,
}

/// Points on the curve: one per company up to this many companies, else one per
/// percent of companies plus the class boundaries.
const CURVE_POINTS: usize = 100;

/// Classifies companies by revenue: sorted by revenue descending (ties by external id),
/// a company is A while the cumulative share *before* it is below `a` percent, B below
/// `b`, else C — so the company that crosses a boundary takes the class it starts in.
/// Companies with no positive revenue get no class. The input order does not matter.
pub fn classify(companies: &[CompanyRevenue<'_>], a: Decimal, b: Decimal) -> Classification {
    // Positions, not copies: 200 000 companies are ranked without cloning their ids.
    let mut ranked: Vec<usize> = (0..companies.len())
        .filter(|&i| companies[i].revenue > 0)
        .collect();
    ranked.sort_unstable_by(|&x, &y| {
        let (x, y) = (&companies[x], &companies[y]);
        y.revenue
            .cmp(&x.revenue)
            .then_with(|| x.external_id.cmp(y.external_id))
    });
    let total: i128 = ranked.iter().map(|&i| companies[i].revenue).sum();
    // cum * 100 < a * total, with a's two decimal places made integer.
    let scale = |t: Decimal| -> i128 {
        let mut t = t;
        t.rescale(THRESHOLD_DECIMALS);
        t.mantissa()
    };
    let (a_s, b_s) = (scale(a), scale(b));
    let hundred_s: i128 = 100 * 10i128.pow(THRESHOLD_DECIMALS);
    let below = |cum: i128, t: i128| -> bool {
        // cum / total < t / hundred_s  ⇔  cum * hundred_s < t * total (all non-negative).
        match (cum.checked_mul(hundred_s), t.checked_mul(total)) {
            (Some(l), Some(r)) => l < r,
            // Astronomic totals: compare in floating point (never reached with i64 rows).
            _ => (cum as f64) / (total as f64) < (t as f64) / (hundred_s as f64),
        }
    };
    let mut classes = vec![None; companies.len()];
    let mut summary = [
        (AbcClass::A, 0u64, 0i128),
        (AbcClass::B, 0, 0),
        (AbcClass::C, 0, 0),
    ];
    let n = ranked.len();
    let mut curve = vec![(Decimal::ZERO, Decimal::ZERO)];
    let mut cum: i128 = 0;
    let mut prev_class = None;
    for (i, &at) in ranked.iter().enumerate() {
        let c = &companies[at];
        let class = if below(cum, a_s) {
            AbcClass::A
        } else if below(cum, b_s) {
            AbcClass::B
        } else {
            AbcClass::C
        };
        // The curve keeps the boundary where a class ends.
        if prev_class.is_some_and(|p| p != class) && n > CURVE_POINTS {
            curve.push((share(i as i128, n as i128), share(cum, total)));
        }
        prev_class = Some(class);
        cum += c.revenue;
        let slot = &mut summary[class as usize];
        slot.1 += 1;
        slot.2 += c.revenue;
        classes[at] = Some(class);
        let k = i + 1;
        // Past CURVE_POINTS companies, a point where the percent of companies reaches
        // the next whole number (the last company always does).
        let on_percent = n <= CURVE_POINTS || k * CURVE_POINTS / n != i * CURVE_POINTS / n;
        if on_percent {
            curve.push((share(k as i128, n as i128), share(cum, total)));
        }
    }
    curve.dedup_by(|x, y| x.0 == y.0);
    Classification {
        classes,
        summary,
        unclassified: (companies.len() - n) as u64,
        total,
        curve,
    }
}

/// How many of the companies classified before changed class (gaining or losing one
/// included), out of how many were classified before or now: each pair is a company's
/// (stored class, new class), for the companies that have stored categories.
pub fn shift(pairs: impl IntoIterator<Item = (Option<AbcClass>, Option<AbcClass>)>) -> (u64, u64) {
    let (mut changed, mut base) = (0, 0);
    for (old, new) in pairs {
        if old.is_none() && new.is_none() {
            continue;
        }
        base += 1;
        changed += u64::from(old != new);
    }
    (changed, base)
}

/// Whether `changed` of `base` is more than `percent`.
pub fn shift_exceeds(changed: u64, base: u64, percent: Decimal) -> bool {
    base > 0 && Decimal::from(changed) * Decimal::ONE_HUNDRED > percent * Decimal::from(base)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn rev<'a>(list: &[(&'a str, i64)]) -> Vec<CompanyRevenue<'a>> {
        list.iter()
            .map(|(id, r)| CompanyRevenue {
                external_id: id,
                revenue: i128::from(*r) * 10_000,
            })
            .collect()
    }

    fn classes_of(list: &[(&str, i64)]) -> Vec<(String, Option<AbcClass>)> {
        let c = classify(&rev(list), Decimal::from(80), Decimal::from(95));
        list.iter()
            .zip(&c.classes)
            .map(|((id, _), class)| ((*id).to_owned(), *class))
            .collect()
    }

    fn expect(list: &[(&str, i64)], want: &[Option<AbcClass>]) {
        let got: Vec<Option<AbcClass>> = classes_of(list).into_iter().map(|x| x.1).collect();
        assert_eq!(got, want, "classes of {list:?}");
    }

    use AbcClass::{A, B, C};

    #[test]
    fn a_company_ending_exactly_on_80_percent_is_a_and_the_next_starts_b() {
        // Cumulative before each: 0, 50, 80, 95.
        expect(
            &[("1", 50), ("2", 30), ("3", 15), ("4", 5)],
            &[Some(A), Some(A), Some(B), Some(C)],
        );
    }

    #[test]
    fn the_company_crossing_a_boundary_takes_the_class_it_starts_in() {
        // 70 starts at 0 (A); 20 starts at 70 % (A, crosses 80); 6 starts at 90 % (B,
        // crosses 95); 4 starts at 96 % (C).
        expect(
            &[("a", 70), ("b", 20), ("c", 6), ("d", 4)],
            &[Some(A), Some(A), Some(B), Some(C)],
        );
    }

    #[test]
    fn ties_are_ordered_by_external_id() {
        // Five equal companies: cumulative before 0, 20, 40, 60, 80 → A A A A B; the
        // one ranked last by id is the B.
        let c = classes_of(&[("e", 10), ("c", 10), ("a", 10), ("d", 10), ("b", 10)]);
        let b: Vec<_> = c.iter().filter(|x| x.1 == Some(B)).collect();
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].0, "e");
        assert!(c.iter().all(|x| x.1.is_some()));
    }

    #[test]
    fn all_revenue_in_one_company_makes_it_the_only_class() {
        expect(
            &[("big", 1000), ("z1", 0), ("z2", 0)],
            &[Some(A), None, None],
        );
    }

    #[test]
    fn all_equal_twenty_companies() {
        // Each is 5 %: before-shares 0..95 step 5; A for < 80 (16 companies), B for 80,
        // 85, 90 (3), C for 95 (1).
        let list: Vec<(String, i64)> = (0..20).map(|i| (format!("{i:02}"), 7)).collect();
        let refs: Vec<(&str, i64)> = list.iter().map(|(s, r)| (s.as_str(), *r)).collect();
        let c = classify(&rev(&refs), Decimal::from(80), Decimal::from(95));
        assert_eq!(c.summary[0].1, 16);
        assert_eq!(c.summary[1].1, 3);
        assert_eq!(c.summary[2].1, 1);
        assert_eq!(c.classes[19], Some(C));
    }

    #[test]
    fn zero_and_negative_revenue_get_no_class_and_do_not_count_in_the_total() {
        let list = [("a", 85), ("b", 15), ("zero", 0), ("credit", -30)];
        expect(&list, &[Some(A), Some(B), None, None]);
        let c = classify(&rev(&list), Decimal::from(80), Decimal::from(95));
        assert_eq!(c.total, 100 * 10_000);
        assert_eq!(c.unclassified, 2);
    }

    #[test]
    fn a_single_company_is_a() {
        expect(&[("only", 1)], &[Some(A)]);
        let c = classify(&rev(&[("only", 1)]), Decimal::from(80), Decimal::from(95));
        assert_eq!(
            c.curve,
            vec![
                (Decimal::ZERO, Decimal::ZERO),
                (Decimal::ONE_HUNDRED, Decimal::ONE_HUNDRED)
            ]
        );
    }

    #[test]
    fn thresholds_with_decimals_are_exact() {
        let c = classify(
            &rev(&[("1", 805), ("2", 195)]),
            Decimal::new(805, 1),
            Decimal::from(95),
        );
        // "2" starts at exactly 80.5 %: not below A.
        assert_eq!(c.classes[1], Some(B));
    }

    #[test]
    fn no_companies_no_classes() {
        let c = classify(&[], Decimal::from(80), Decimal::from(95));
        assert!(c.classes.is_empty());
        let c = classify(&rev(&[("z", 0)]), Decimal::from(80), Decimal::from(95));
        assert_eq!(c.classes, vec![None]);
        assert_eq!(c.total, 0);
        assert_eq!(c.curve, vec![(Decimal::ZERO, Decimal::ZERO)]);
    }

    #[test]
    fn a_large_curve_has_a_point_per_percent_and_the_boundaries() {
        let ids: Vec<String> = (0..1000).map(|i| format!("{i:04}")).collect();
        let list: Vec<CompanyRevenue> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| CompanyRevenue {
                external_id: id,
                revenue: 1000 - i as i128,
            })
            .collect();
        let c = classify(&list, Decimal::from(80), Decimal::from(95));
        assert!(
            c.curve.len() >= 101 && c.curve.len() <= 103,
            "{}",
            c.curve.len()
        );
        assert_eq!(c.curve.last().unwrap().0, Decimal::ONE_HUNDRED);
        assert_eq!(c.curve.last().unwrap().1, Decimal::ONE_HUNDRED);
        assert!(c
            .curve
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
    }

    #[test]
    fn amounts_are_scaled_exactly_and_rounded_half_away_from_zero() {
        assert_eq!(scaled_amount("1234.56".parse().unwrap()), Some(12_345_600));
        assert_eq!(scaled_amount("-0.00005".parse().unwrap()), Some(-1));
        assert_eq!(scaled_amount("0.00004".parse().unwrap()), Some(0));
        assert_eq!(
            scaled_amount("1e20".parse::<Decimal>().ok().unwrap_or(Decimal::MAX)),
            None
        );
        assert_eq!(amount_text(12_345_600), "1234.56");
        assert_eq!(amount_text(10_000), "1.00");
        assert_eq!(amount_text(-5), "-0.0005");
        assert_eq!(amount_text(0), "0.00");
    }

    #[test]
    fn revenue_facts_come_from_invoices_and_orders_in_the_tenant_zone() {
        let f = |v: serde_json::Value| v.as_object().unwrap().clone();
        let sp = chrono_tz::America::Sao_Paulo;
        let fact = revenue_fact(
            "invoice",
            &f(serde_json::json!({"company_id": "c1", "issued_at": "2026-01-15T01:00:00Z", "total": "-10.5"})),
            sp,
        )
        .unwrap();
        // 01:00 UTC is 22:00 of the day before in São Paulo.
        assert_eq!(fact.issued_on.to_string(), "2026-01-14");
        assert_eq!(fact.amount, -105_000);
        assert_eq!(fact.company_ref, "c1");
        let naive = revenue_fact(
            "order",
            &f(serde_json::json!({"company_id": "c1", "issued_at": "2026-01-15T23:00:00", "total": "1"})),
            sp,
        )
        .unwrap();
        assert_eq!(naive.issued_on.to_string(), "2026-01-15");
        assert!(revenue_fact(
            "quote",
            &f(serde_json::json!({"company_id": "c1", "issued_at": "2026-01-15", "total": "1"})),
            sp
        )
        .is_none());
        assert!(revenue_fact("invoice", &Map::new(), sp).is_none());
    }

    #[test]
    fn day_numbers_count_from_1970() {
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(day_number(d("1970-01-01")), 0);
        assert_eq!(day_number(d("2026-11-28")), 20_785);
        assert_eq!(day_number(d("1900-01-01")), -25_567);
        for s in ["1900-01-01", "1996-07-04", "2026-11-28", "2100-12-31"] {
            assert_eq!(from_day_number(i64::from(day_number(d(s)))), Some(d(s)));
        }
    }

    #[test]
    fn the_window_is_the_months_up_to_the_run_date_inclusive() {
        let s = AbcSettings::default();
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(
            s.window(d("2026-11-28")),
            (d("2025-11-29"), d("2026-11-28"))
        );
        // Month ends clamp: 12 months before 2024-02-29 is 2023-02-28.
        assert_eq!(s.window(d("2024-02-29")).0, d("2023-03-01"));
    }

    #[test]
    fn lifecycle_windows() {
        let s = AbcSettings::default();
        let d = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let today = d("2026-11-28");
        let days = |n: i64| Some(today - chrono::Duration::days(n));
        assert_eq!(s.lifecycle(None, None, today), Lifecycle::Prospect);
        assert_eq!(s.lifecycle(days(90), days(90), today), Lifecycle::New);
        assert_eq!(s.lifecycle(days(91), days(10), today), Lifecycle::Active);
        assert_eq!(s.lifecycle(days(400), days(180), today), Lifecycle::Active);
        assert_eq!(s.lifecycle(days(400), days(181), today), Lifecycle::AtRisk);
        assert_eq!(s.lifecycle(days(400), days(365), today), Lifecycle::AtRisk);
        assert_eq!(
            s.lifecycle(days(400), days(366), today),
            Lifecycle::Inactive
        );
    }

    #[test]
    fn settings_are_validated_on_the_merged_result() {
        let s = AbcSettings::default();
        let ok = s
            .merged(&AbcInput {
                a_threshold: Some(70.5),
                basis: Some("order".into()),
                ..AbcInput::default()
            })
            .unwrap();
        assert_eq!(ok.a_threshold, Decimal::new(705, 1));
        assert_eq!(ok.basis, Basis::Order);
        for bad in [
            AbcInput {
                a_threshold: Some(96.0),
                ..AbcInput::default()
            },
            AbcInput {
                b_threshold: Some(100.0),
                ..AbcInput::default()
            },
            AbcInput {
                a_threshold: Some(0.0),
                ..AbcInput::default()
            },
            AbcInput {
                a_threshold: Some(80.123),
                ..AbcInput::default()
            },
            AbcInput {
                a_threshold: Some(f64::NAN),
                ..AbcInput::default()
            },
            AbcInput {
                basis: Some("quote".into()),
                ..AbcInput::default()
            },
            AbcInput {
                window_months: Some(0),
                ..AbcInput::default()
            },
            AbcInput {
                new_days: Some(200),
                ..AbcInput::default()
            },
            AbcInput {
                inactive_days: Some(180),
                ..AbcInput::default()
            },
            AbcInput {
                shift_guard_percent: Some(0.0),
                ..AbcInput::default()
            },
        ] {
            assert!(s.merged(&bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_shift_guard_counts_companies_classified_before() {
        // 1 stays A, 2 goes B→C, 3 stays without a class, 4 loses its class.
        let pairs = [
            (Some(A), Some(A)),
            (Some(B), Some(C)),
            (None, None),
            (Some(C), None),
        ];
        assert_eq!(shift(pairs), (2, 3));
        assert!(shift_exceeds(2, 3, Decimal::from(30)));
        assert!(!shift_exceeds(3, 10, Decimal::from(30)));
        assert!(shift_exceeds(4, 10, Decimal::from(30)));
        assert!(!shift_exceeds(0, 0, Decimal::from(30)));
    }

    fn companies() -> impl Strategy<Value = Vec<(String, i128)>> {
        prop::collection::vec((0u32..500, -1_000i64..1_000_000), 0..120).prop_map(|v| {
            let mut seen = std::collections::HashSet::new();
            v.into_iter()
                .filter(|(id, _)| seen.insert(*id))
                .map(|(id, r)| (format!("c{id}"), i128::from(r)))
                .collect()
        })
    }

    fn borrowed(v: &[(String, i128)]) -> Vec<CompanyRevenue<'_>> {
        v.iter()
            .map(|(id, r)| CompanyRevenue {
                external_id: id,
                revenue: *r,
            })
            .collect()
    }

    fn by_id(list: &[CompanyRevenue<'_>], c: &Classification) -> HashMap<String, Option<AbcClass>> {
        list.iter()
            .zip(&c.classes)
            .map(|(x, k)| (x.external_id.to_owned(), *k))
            .collect()
    }

    proptest! {
        #[test]
        fn more_revenue_never_gets_a_worse_class(owned in companies(), a in 1u32..98) {
            let list = borrowed(&owned);
            let b = a + 1 + (98 - a) / 2;
            let c = classify(&list, Decimal::from(a), Decimal::from(b));
            for (i, x) in list.iter().enumerate() {
                prop_assert_eq!(c.classes[i].is_some(), x.revenue > 0);
                for (j, y) in list.iter().enumerate() {
                    if x.revenue > y.revenue && y.revenue > 0 {
                        prop_assert!(c.classes[i] <= c.classes[j]);
                    }
                }
            }
        }

        #[test]
        fn revenue_shares_sum_to_100_percent(owned in companies()) {
            let list = borrowed(&owned);
            let c = classify(&list, Decimal::from(80), Decimal::from(95));
            let sum: i128 = c.summary.iter().map(|s| s.2).sum();
            prop_assert_eq!(sum, c.total);
            let count: u64 = c.summary.iter().map(|s| s.1).sum();
            prop_assert_eq!(count + c.unclassified, list.len() as u64);
            if c.total > 0 {
                prop_assert_eq!(c.curve.last().copied(), Some((Decimal::ONE_HUNDRED, Decimal::ONE_HUNDRED)));
                let shares: Decimal = c.summary.iter().map(|s| share(s.2, c.total)).sum();
                // Each share is rounded to 0.01: the sum is 100 within rounding.
                prop_assert!((shares - Decimal::ONE_HUNDRED).abs() <= Decimal::new(2, 2));
            }
        }

        #[test]
        fn the_result_does_not_depend_on_input_order(owned in companies(), seed in any::<u64>()) {
            let list = borrowed(&owned);
            let c1 = classify(&list, Decimal::from(80), Decimal::from(95));
            let mut shuffled = list.clone();
            // A deterministic shuffle from the seed.
            let mut s = seed | 1;
            for i in (1..shuffled.len()).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                shuffled.swap(i, (s % (i as u64 + 1)) as usize);
            }
            let c2 = classify(&shuffled, Decimal::from(80), Decimal::from(95));
            prop_assert_eq!(by_id(&list, &c1), by_id(&shuffled, &c2));
            prop_assert_eq!((c1.summary, c1.total, c1.unclassified), (c2.summary, c2.total, c2.unclassified));
            prop_assert_eq!(c1.curve, c2.curve);
        }
    }
}
