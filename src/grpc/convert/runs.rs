//! Runs, their logs, pending deletions and the export's chunks.

use chrono::Duration;

use super::super::pb;
use super::values::{duration, json_struct, timestamp};
use crate::domain::export::ExportKind;
use crate::domain::run::{
    CrmCountSource, Level, LogEvent, RunDetail, RunStatus, RunSummary, RunTrigger, TableCounts,
};

/// A run with its counts and timings.
pub fn run_detail(d: RunDetail) -> pb::Run {
    let mut r = run(d.summary);
    r.tables = d.tables.into_iter().map(run_table).collect();
    r.stages = d
        .stages
        .into_iter()
        .map(|s| pb::RunStage {
            stage: s.stage,
            duration: Some(duration(Duration::milliseconds(
                i64::try_from(s.duration_ms).unwrap_or(i64::MAX),
            ))),
            outcome: s.outcome,
        })
        .collect();
    r.current = d.current.map(|c| pb::RunProgress {
        stage: c.stage,
        table: c.table.unwrap_or_default(),
        done: c.done,
        total: c.total,
    });
    r
}

pub(super) fn run_table(t: TableCounts) -> pb::RunTable {
    pb::RunTable {
        table: t.table,
        received: t.received,
        inserted: t.inserted,
        updated: t.updated,
        deleted: t.deleted,
        held: t.held,
        rejected: t.rejected,
        erp_count: t.erp_count,
        staged_count: t.staged_count,
        crm_count: t.crm_count.unwrap_or_default(),
        crm_counted_at: t.crm_counted_at.map(timestamp),
        crm_count_source: crm_count_source(t.crm_count_source) as i32,
    }
}

fn crm_count_source(s: Option<CrmCountSource>) -> pb::CrmCountSource {
    match s {
        None => pb::CrmCountSource::Unspecified,
        Some(CrmCountSource::HostCount) => pb::CrmCountSource::HostCount,
        Some(CrmCountSource::HostTotal) => pb::CrmCountSource::HostTotal,
        Some(CrmCountSource::Delivered) => pb::CrmCountSource::Delivered,
        Some(CrmCountSource::Embedded) => pb::CrmCountSource::Embedded,
    }
}

/// A log event.
pub fn log_event(e: LogEvent) -> pb::LogEvent {
    pb::LogEvent {
        cursor: e.cursor,
        at: Some(timestamp(e.at)),
        level: match e.level {
            Level::Debug => pb::LogLevel::Debug,
            Level::Info => pb::LogLevel::Info,
            Level::Warn => pb::LogLevel::Warn,
            Level::Error => pb::LogLevel::Error,
        } as i32,
        run_id: e.run_id.unwrap_or_default(),
        stage: e.stage,
        table: e.table,
        message: e.message,
        fields: Some(json_struct(&e.fields)),
        heartbeat: false,
    }
}

/// The domain status of a request filter: Some(None) when unspecified, None when unknown.
pub fn run_status_from(v: i32) -> Option<Option<RunStatus>> {
    Some(match pb::RunStatus::try_from(v).ok()? {
        pb::RunStatus::Unspecified => None,
        pb::RunStatus::Running => Some(RunStatus::Running),
        pb::RunStatus::Success => Some(RunStatus::Success),
        pb::RunStatus::Partial => Some(RunStatus::Partial),
        pb::RunStatus::Failed => Some(RunStatus::Failed),
        pb::RunStatus::Interrupted => Some(RunStatus::Interrupted),
    })
}

/// A run as listed.
pub fn run(r: RunSummary) -> pb::Run {
    pb::Run {
        duration: r.duration().map(duration),
        run_id: r.id,
        status: match r.status {
            RunStatus::Running => pb::RunStatus::Running,
            RunStatus::Success => pb::RunStatus::Success,
            RunStatus::Partial => pb::RunStatus::Partial,
            RunStatus::Failed => pb::RunStatus::Failed,
            RunStatus::Interrupted => pb::RunStatus::Interrupted,
        } as i32,
        trigger: match r.trigger {
            RunTrigger::Schedule => pb::RunTrigger::Schedule,
            RunTrigger::Manual => pb::RunTrigger::Manual,
            RunTrigger::Retry => pb::RunTrigger::Retry,
        } as i32,
        started_at: Some(timestamp(r.started_at)),
        finished_at: r.finished_at.map(timestamp),
        tables: Vec::new(),
        stages: Vec::new(),
        errors: r.error.into_iter().collect(),
        current: None,
    }
}

/// A held deletion.
pub fn pending_delete(p: crate::domain::crm::PendingDelete) -> pb::PendingDelete {
    pb::PendingDelete {
        table: p.table.as_str().to_owned(),
        external_id: p.external_id,
        name: p.name,
        document: p.document,
        detected_run_id: p.detected_run_id,
        detected_at: Some(timestamp(p.detected_at)),
        state: p.state.as_str().to_owned(),
        state_changed_at: Some(timestamp(p.state_changed_at)),
        decided_by: p.decided_by,
        decided_run_id: p.decided_run_id,
        kept: p.kept,
    }
}

/// The export kind asked for (UNSPECIFIED means REQUESTS); None for an unknown value.
pub fn export_kind_from(v: i32) -> Option<ExportKind> {
    match pb::ExportKind::try_from(v).ok()? {
        pb::ExportKind::Unspecified | pb::ExportKind::Requests => Some(ExportKind::Requests),
        pb::ExportKind::ExcessiveDeletes => Some(ExportKind::ExcessiveDeletes),
        pb::ExportKind::Runs => Some(ExportKind::Runs),
    }
}

/// A piece of an exported file.
pub fn export_chunk(c: crate::export::Chunk) -> pb::ExportChunk {
    pb::ExportChunk {
        filename: c.filename.unwrap_or_default(),
        content_type: c.content_type.unwrap_or_default().to_owned(),
        data: c.data,
    }
}
