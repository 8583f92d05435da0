//! `purchase_span`: each company's first and last purchase (a positive total) per revenue
//! table (invoice, order), kept by staging in the transaction that stages the facts, so an
//! ABC run reads 1 row per company instead of taking MIN/MAX over every invoice.
//!
//! New purchases only ever widen a span (one upsert per company of the batch). A fact that
//! is replaced or deleted may have been its company's first or last purchase: those
//! companies' spans are recomputed from their staged facts (one range of the revenue
//! index each). On PostgreSQL the span writes of one (tenant, table) are serialized by a
//! transaction-scoped advisory lock, taken after the staged rows are written, so a
//! recompute always sees every committed fact and no concurrent widening is lost.
//!
//! This file keeps those rules; the statements (lock, multi-row widening upsert,
//! recompute) are in `bulk::spans`.

use std::collections::{BTreeMap, BTreeSet};

use sea_orm::DatabaseTransaction;

use super::bulk;
use super::days::day_number;
use crate::domain::abc::RevenueFact;
use crate::domain::tenant::TenantId;
use crate::error::Result;

/// The span changes a staged batch makes.
#[derive(Debug, Default)]
pub struct SpanChanges {
    /// Companies with new purchases: the earliest and latest day among them.
    grow: BTreeMap<String, (i32, i32)>,
    /// Companies that lost a purchase (replaced or deleted): recomputed from the facts.
    recompute: BTreeSet<String>,
}

fn day(f: &RevenueFact) -> i32 {
    day_number(f.issued_on)
}

impl SpanChanges {
    /// A new record's fact (the insert landed: nothing was there). Widens its company's span.
    pub fn inserted(&mut self, fact: Option<&RevenueFact>) {
        if let Some(n) = fact.filter(|f| f.amount > 0) {
            let d = day(n);
            self.grow
                .entry(n.company_ref.clone())
                .and_modify(|(first, last)| {
                    *first = (*first).min(d);
                    *last = (*last).max(d);
                })
                .or_insert((d, d));
        }
    }

    /// A fact written over `old` (None: nothing was read), which may not land if a newer
    /// version won meanwhile: both companies' spans are recomputed from what is staged.
    pub fn replaced(&mut self, old: Option<&RevenueFact>, new: Option<&RevenueFact>) {
        if let (Some(o), Some(n)) = (old, new) {
            // A corrected total on the same purchase day: the span stays.
            if o.amount > 0
                && n.amount > 0
                && o.company_ref == n.company_ref
                && o.issued_on == n.issued_on
            {
                return;
            }
        }
        for f in [old, new].into_iter().flatten() {
            if f.amount > 0 {
                self.recompute.insert(f.company_ref.clone());
            }
        }
    }

    /// Whether the batch changes no span.
    pub fn is_empty(&self) -> bool {
        self.grow.is_empty() && self.recompute.is_empty()
    }

    /// Writes the changes in `txn` (after the batch's facts are staged in it).
    pub async fn apply(
        mut self,
        txn: &DatabaseTransaction,
        tenant: &TenantId,
        table: &str,
    ) -> Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        bulk::backend::hold_until_commit(
            txn,
            &format!("purchase_span/{}/{table}", tenant.as_str()),
        )
        .await?;
        // A recomputed span already includes this batch's purchases.
        for c in &self.recompute {
            self.grow.remove(c);
        }
        let grow: Vec<(String, (i32, i32))> = self.grow.into_iter().collect();
        bulk::spans::widen(txn, tenant, table, &grow).await?;
        let recompute: Vec<String> = self.recompute.into_iter().collect();
        bulk::spans::recompute(txn, tenant, table, &recompute).await?;
        Ok(())
    }
}
