//! How far a run got, as GetRun shows it from any replica: the stages it finished (with
//! their times and outcomes) and the one under way with its records done of its total.
//!
//! A stage moves its count as often as it likes ([`Meter::set`]: memory only); the
//! database is written at most every [`FLUSH_EVERY`] by a background flusher
//! ([`Meter::flush_every`]), and at once when a stage starts or ends (or when the push
//! stage's batch was acknowledged: [`Meter::flush`]). Writes are serialized and each
//! writes the newest state, so an older one never overwrites a newer one.

use std::sync::Mutex;
use std::time::Duration;

use crate::domain::run::{Stage, StageProgress, StageTiming};
use crate::domain::tables::Table;
use crate::storage::{runs, Db};

/// How often, at most, the background flusher writes a moved count.
pub(super) const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// What the run shows of its progress.
#[derive(Debug, Default)]
struct State {
    /// The stages finished so far, in run order.
    finished: Vec<StageTiming>,
    /// The stage under way.
    current: Option<StageProgress>,
    /// Moves at every change.
    version: u64,
}

/// One run's progress, in memory, written to its row.
pub(super) struct Meter {
    db: Db,
    run_id: String,
    state: Mutex<State>,
    /// The version last written; held while writing, so writes never cross.
    written: tokio::sync::Mutex<u64>,
}

impl Meter {
    /// The progress of run `run_id`, nothing done yet.
    pub(super) fn new(db: Db, run_id: String) -> Self {
        Self {
            db,
            run_id,
            state: Mutex::new(State::default()),
            written: tokio::sync::Mutex::new(0),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        // A poisoned lock only means a panic elsewhere: the state is still whole.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut state)
    }

    /// The run is in `stage` (on `table`), `done` of `total` records (total 0: unknown).
    /// Memory only: the flusher writes it.
    pub(super) fn set(&self, stage: Stage, table: Option<Table>, done: u64, total: u64) {
        self.with(|s| {
            let current = StageProgress {
                stage: stage.as_str().to_owned(),
                table: table.map(|t| t.as_str().to_owned()),
                done,
                total,
            };
            if s.current.as_ref() != Some(&current) {
                s.current = Some(current);
                s.version += 1;
            }
        });
    }

    /// The stage under way, and how far it got.
    pub(super) fn current(&self) -> Option<StageProgress> {
        self.with(|s| s.current.clone())
    }

    /// Records that a stage ended (after the ones before it).
    pub(super) fn finished(&self, timing: StageTiming) {
        self.with(|s| {
            s.finished.push(timing);
            s.version += 1;
        });
    }

    /// The stages finished so far, in run order.
    pub(super) fn stages(&self) -> Vec<StageTiming> {
        self.with(|s| s.finished.clone())
    }

    /// How many stages finished.
    pub(super) fn finished_count(&self) -> usize {
        self.with(|s| s.finished.len())
    }

    /// Writes the newest state unless it was written already. A failure to write it only
    /// costs the display (logged).
    pub(super) async fn flush(&self) {
        let mut written = self.written.lock().await;
        let Some((version, stages, current)) = self.with(|s| {
            (s.version != *written).then(|| (s.version, s.finished.clone(), s.current.clone()))
        }) else {
            return;
        };
        let Some(current) = current else {
            return;
        };
        match runs::report_progress(&self.db, &self.run_id, &stages, &current).await {
            Ok(()) => *written = version,
            Err(e) => {
                tracing::warn!(error = ?anyhow::Error::from(e), run = %self.run_id, "cannot record a run's progress");
            }
        }
    }

    /// Writes what moved every [`FLUSH_EVERY`], until aborted (with the run).
    pub(super) async fn flush_every(&self, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.flush().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_count_set_moves_the_version_once_and_stages_keep_their_order() {
        let db = Db::connect("sqlite::memory:").await.unwrap();
        db.migrate().await.unwrap();
        let meter = Meter::new(db, "r1".into());
        meter.set(Stage::Collect, None, 0, 0);
        meter.set(Stage::Collect, None, 0, 0);
        assert_eq!(meter.with(|s| s.version), 1);
        meter.set(Stage::Collect, Some(Table::Company), 10, 0);
        meter.finished(StageTiming {
            stage: "collect".into(),
            duration_ms: 3,
            outcome: "ok".into(),
        });
        assert_eq!(meter.with(|s| s.version), 3);
        assert_eq!(meter.finished_count(), 1);
        assert_eq!(meter.current().unwrap().done, 10);
        // No run row: the write changes nothing and fails nothing.
        meter.flush().await;
        assert_eq!(*meter.written.lock().await, 3);
        meter.flush().await;
    }
}
