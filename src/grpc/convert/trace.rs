//! A record's trace (GetRecordTrace) as the wire carries it.

use super::abc::{category_change, company};
use super::values::{json_struct, json_value, timestamp};
use crate::domain::trail::{CrmNow, RecordTrace, StagedNow, TrailEvent, TrailKind};
use crate::grpc::pb;

/// 16 hex digits, as record versions show content hashes.
fn hash_hex(h: i64) -> String {
    format!("{:016x}", u64::from_ne_bytes(h.to_ne_bytes()))
}

fn kind(k: TrailKind) -> pb::TraceEventKind {
    match k {
        TrailKind::Accepted => pb::TraceEventKind::Accepted,
        TrailKind::Rejected => pb::TraceEventKind::Rejected,
        TrailKind::Held => pb::TraceEventKind::Held,
        TrailKind::Delivered => pb::TraceEventKind::Delivered,
        TrailKind::Deleted => pb::TraceEventKind::Deleted,
    }
}

fn event(e: TrailEvent) -> pb::TraceEvent {
    // A run's detail is the sink's answer, except the delete guard's (why it held).
    let (reason, sink_answer) = match e.kind {
        TrailKind::Delivered | TrailKind::Deleted => (String::new(), e.detail.unwrap_or_default()),
        _ => (e.detail.unwrap_or_default(), String::new()),
    };
    pb::TraceEvent {
        at: Some(timestamp(e.at)),
        kind: kind(e.kind) as i32,
        request_id: e.request_id.unwrap_or_default(),
        transport: e.transport.unwrap_or_default(),
        index: e.position,
        record: e.record.as_ref().map(json_value),
        run_id: e.run_id.unwrap_or_default(),
        stage: e.stage.unwrap_or_default(),
        field: e.field.unwrap_or_default(),
        reason,
        sink_answer,
        idempotency_key: e.idempotency_key.unwrap_or_default(),
        content_hash: e.content_hash.map(hash_hex).unwrap_or_default(),
    }
}

fn staged(s: StagedNow) -> pb::StagedVersion {
    pb::StagedVersion {
        fields: Some(json_struct(&s.fields)),
        content_hash: hash_hex(s.content_hash),
        deleted: s.deleted,
        updated_at: s.updated_at.map(timestamp),
        staged_at: Some(timestamp(s.changed_at)),
        request_id: s.request_id,
        delivered: s.delivered,
    }
}

fn crm(c: CrmNow) -> pb::CrmVersion {
    pb::CrmVersion {
        sink: c.sink,
        present: c.fields.is_some(),
        fields: c.fields.as_ref().map(json_struct),
        updated_at: c.updated_at.map(timestamp),
    }
}

/// A record's trace.
pub fn record_trace(t: RecordTrace) -> pb::RecordTrace {
    pb::RecordTrace {
        table: t.table,
        external_id: t.external_id,
        events: t.events.into_iter().map(event).collect(),
        next_page_token: t.next_page_token,
        staged: t.staged.map(staged),
        crm: t.crm.map(crm),
        company: t.category.map(company),
        category_changes: t
            .category_changes
            .into_iter()
            .map(category_change)
            .collect(),
    }
}
