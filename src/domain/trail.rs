//! A record's trail: what happened to one record, event by event (received in a request
//! and accepted or rejected; held, delivered or deleted by a run), and the trace a
//! support engineer reads (GetRecordTrace, `erpsync trace`).

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::abc::{Category, CategoryChange};

/// What happened to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrailKind {
    /// A request carried it and it was staged (or was already staged as sent).
    Accepted,
    /// A request carried it and it was rejected (field and reason).
    Rejected,
    /// A run's delete guard held its deletion for a person.
    Held,
    /// A run delivered it to the CRM, which acknowledged.
    Delivered,
    /// A run deleted it from the CRM, which acknowledged.
    Deleted,
}

impl TrailKind {
    /// Every kind.
    pub const ALL: [Self; 5] = [
        Self::Accepted,
        Self::Rejected,
        Self::Held,
        Self::Delivered,
        Self::Deleted,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Held => "held",
            Self::Delivered => "delivered",
            Self::Deleted => "deleted",
        }
    }

    /// The kind stored as `s`.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The kinds a request makes.
    pub const OF_REQUEST: [Self; 2] = [Self::Accepted, Self::Rejected];
    /// The kinds a run makes.
    pub const OF_RUN: [Self; 3] = [Self::Held, Self::Delivered, Self::Deleted];
}

/// One event of a record's trail, to write.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTrail<'a> {
    /// The record's id in the ERP.
    pub external_id: &'a str,
    /// What happened.
    pub kind: TrailKind,
    /// The record's index in its request's batch (request events).
    pub position: Option<u32>,
    /// The field a rejection names.
    pub field: Option<&'a str>,
    /// A rejection's reason, or the sink's answer.
    pub detail: Option<&'a str>,
    /// The version's content hash.
    pub content_hash: Option<i64>,
    /// The delivered batch's idempotency key.
    pub idempotency_key: Option<&'a str>,
}

impl<'a> NewTrail<'a> {
    /// An event of `kind` for `external_id`, every other field empty.
    pub fn new(external_id: &'a str, kind: TrailKind) -> Self {
        Self {
            external_id,
            kind,
            position: None,
            field: None,
            detail: None,
            content_hash: None,
            idempotency_key: None,
        }
    }
}

/// Who made a batch of trail events: a request, or a run's stage.
#[derive(Debug, Clone, Copy)]
pub enum TrailSource<'a> {
    /// The request that carried the records.
    Request(&'a str),
    /// The run and its stage.
    Run {
        /// The run.
        run_id: &'a str,
        /// Its stage ("delete_guard", "push").
        stage: &'a str,
    },
}

/// One stored event of a record's trail.
#[derive(Debug, Clone, PartialEq)]
pub struct TrailEvent {
    /// Its position in the trail (pages go on below it).
    pub id: i64,
    /// When the request arrived, or when the run did it.
    pub at: DateTime<Utc>,
    /// What happened.
    pub kind: TrailKind,
    /// The request (request events).
    pub request_id: Option<String>,
    /// How the request came: "grpc", "http", "view" (request events whose request is
    /// still logged).
    pub transport: Option<String>,
    /// The record's index in the request's batch.
    pub position: Option<u32>,
    /// The record's own part of the request body, when the logged body still holds it
    /// (a body cut at the log's cap may not).
    pub record: Option<Value>,
    /// The run (run events).
    pub run_id: Option<String>,
    /// The run's stage.
    pub stage: Option<String>,
    /// The field a rejection names.
    pub field: Option<String>,
    /// A rejection's reason, or the sink's answer.
    pub detail: Option<String>,
    /// The delivered batch's idempotency key.
    pub idempotency_key: Option<String>,
    /// The version's content hash.
    pub content_hash: Option<i64>,
}

/// The record as staged now.
#[derive(Debug, Clone, PartialEq)]
pub struct StagedNow {
    /// Its normalized fields.
    pub fields: serde_json::Map<String, Value>,
    /// Its content hash.
    pub content_hash: i64,
    /// A tombstone.
    pub deleted: bool,
    /// The ERP's last change.
    pub updated_at: Option<DateTime<Utc>>,
    /// When it was staged.
    pub changed_at: DateTime<Utc>,
    /// The request that staged it.
    pub request_id: String,
    /// Whether the CRM has this version (delivered since it was staged).
    pub delivered: bool,
}

/// What the CRM holds of the record, as erpsync knows it: the embedded CRM's row, or
/// with a host sink the version the host last acknowledged (erpsync records it).
#[derive(Debug, Clone, PartialEq)]
pub struct CrmNow {
    /// The sink the tenant delivers to ("embedded", or the host's address).
    pub sink: String,
    /// The record's fields there; None when the CRM does not hold it.
    pub fields: Option<serde_json::Map<String, Value>>,
    /// When it was last written there.
    pub updated_at: Option<DateTime<Utc>>,
}

/// A record's trace: a page of its trail, newest first, with what is staged and in the
/// CRM now and, for a company, its categorization.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordTrace {
    /// The record's table.
    pub table: String,
    /// The record's id in the ERP.
    pub external_id: String,
    /// Events, newest first.
    pub events: Vec<TrailEvent>,
    /// The position of the next page ("" after the last).
    pub next_page_token: String,
    /// The staged version (None: never staged, or only rejected).
    pub staged: Option<StagedNow>,
    /// What the CRM holds (None: not a CRM table).
    pub crm: Option<CrmNow>,
    /// A company's categories now.
    pub category: Option<Category>,
    /// A company's categorization changes, oldest first.
    pub category_changes: Vec<CategoryChange>,
}

/// The record's part of a logged request body: `records[position]` of a push's or View
/// page's JSON (`body`), or of the answer's `records` (`response`, a View page's). None
/// when neither holds it (a body cut at the log's cap).
pub fn record_slice(body: &str, response: &str, position: u32) -> Option<Value> {
    let i = usize::try_from(position).ok()?;
    let from = |text: &str| -> Option<Value> {
        let v: Value = serde_json::from_str(text).ok()?;
        match &v {
            Value::Array(items) => items.get(i).cloned(),
            Value::Object(o) => o.get("records")?.as_array()?.get(i).cloned(),
            _ => None,
        }
    };
    from(body).or_else(|| from(response))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip() {
        for k in TrailKind::ALL {
            assert_eq!(TrailKind::parse(k.as_str()), Some(k));
            assert_ne!(
                TrailKind::OF_REQUEST.contains(&k),
                TrailKind::OF_RUN.contains(&k)
            );
        }
        assert_eq!(TrailKind::parse("nope"), None);
    }

    #[test]
    fn slice_of_a_push_or_a_page() {
        let push = r#"{"tenant_id":"t","table":"company","records":[{"external_id":"A"},{"external_id":"B"}]}"#;
        assert_eq!(
            record_slice(push, "", 1),
            Some(serde_json::json!({"external_id":"B"}))
        );
        assert_eq!(record_slice(push, "", 2), None);
        let http = r#"[{"external_id":"A"}]"#;
        assert_eq!(
            record_slice(http, "", 0),
            Some(serde_json::json!({"external_id":"A"}))
        );
        let page = r#"{"rows_read":1,"records":[{"external_id":"V"}]}"#;
        assert_eq!(
            record_slice("cut…", page, 0),
            Some(serde_json::json!({"external_id":"V"}))
        );
        assert_eq!(record_slice("{\"records\":[", "", 0), None);
    }
}
