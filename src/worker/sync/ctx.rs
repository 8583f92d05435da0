//! The state a run's stages share, and what each may ask of it: log an event, count a
//! table, record progress, renew the run's lease.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::Value;

use super::outcome::Analysis;
use super::progress::Meter;
use crate::domain::run::{Level, NewEvent, Stage, TableCounts};
use crate::domain::tables::Table;
use crate::domain::tenant::{Tenant, TenantId};
use crate::error::{AppError, Result};
use crate::storage::lease;
use crate::worker::delivery::Delivery;
use crate::worker::RunWorker;

/// Records read and delivered at a time.
pub(super) const PAGE: u64 = 1_000;

/// What a run's stages share: its tenant and id, the counts so far, what one stage
/// leaves for the next, its deliveries and its progress.
pub(super) struct Ctx<'a> {
    pub(super) worker: &'a RunWorker,
    pub(super) tenant: &'a TenantId,
    pub(super) run_id: String,
    pub(super) tables: BTreeMap<Table, TableCounts>,
    /// Per table, the deletions this run must not apply.
    pub(super) held: BTreeMap<Table, HashSet<String>>,
    /// Stopped at a checkpoint by shutdown.
    pub(super) interrupted: bool,
    /// What the abc stage computed, with the tenant's settings it used, for categorize.
    pub(super) analysis: Option<(Tenant, Analysis)>,
    /// The shift guard held this run's classification.
    pub(super) abc_held: bool,
    /// The run's batches to the sink.
    pub(super) delivery: Delivery<'a>,
    /// The stages finished so far and the one under way, as GetRun shows them.
    pub(super) meter: Arc<Meter>,
    /// Companies and contacts the push stage has been through (delivered or held).
    pub(super) pushed: AtomicU64,
    /// The push stage went through every table (the CRM is asked for its counts).
    pub(super) pushed_all: bool,
}

impl Ctx<'_> {
    pub(super) async fn event(
        &self,
        level: Level,
        stage: Stage,
        table: Option<&str>,
        message: String,
        fields: Value,
    ) {
        let e = NewEvent::new(self.tenant, level, stage.as_str(), message)
            .run(self.run_id.as_str())
            .table(table)
            .fields(fields);
        self.worker
            .logs
            .append_or_report(e, self.worker.clock.now())
            .await;
    }

    pub(super) fn counts(&mut self, table: Table) -> &mut TableCounts {
        self.tables.entry(table).or_insert_with(|| TableCounts {
            table: table.as_str().to_owned(),
            ..TableCounts::default()
        })
    }

    /// The companies and contacts (tombstones included) the push stage delivers, as
    /// collect counted them.
    pub(super) fn to_deliver(&self) -> u64 {
        Table::CRM
            .iter()
            .filter_map(|t| self.tables.get(t).map(|c| c.received))
            .sum()
    }

    /// Counts `more` records gone through by the push stage (on `table`) and records it
    /// at once (once per acknowledged batch).
    pub(super) async fn push_progress(&self, table: Table, more: u64) {
        let done = self.pushed.fetch_add(more, Ordering::SeqCst) + more;
        self.progress(Stage::Push, Some(table), done, self.to_deliver())
            .await;
    }

    /// Records at once that the run is in `stage` (on `table`), `done` of `total` records;
    /// GetRun shows it while the run lasts. A failure to record it only costs the display.
    pub(super) async fn progress(&self, stage: Stage, table: Option<Table>, done: u64, total: u64) {
        self.meter.set(stage, table, done, total);
        self.meter.flush().await;
    }

    /// Moves the count of `stage` (on `table`) to `done` of `total` (0: unknown) as often
    /// as the stage likes: memory only, written by the run's flusher (see [`progress`]).
    pub(super) fn tick(&self, stage: Stage, table: Option<Table>, done: u64, total: u64) {
        self.meter.set(stage, table, done, total);
    }

    pub(super) async fn renew(&self) -> Result<()> {
        if lease::renew(
            &self.worker.db,
            self.tenant,
            &self.run_id,
            self.worker.clock.now() + self.worker.run_lease,
        )
        .await?
        {
            Ok(())
        } else {
            Err(AppError::Internal(anyhow::anyhow!(
                "the run lost its lease"
            )))
        }
    }
}
