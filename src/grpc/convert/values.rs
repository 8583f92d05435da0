//! The values every service's messages carry alike: instants and spans, JSON as protobuf
//! Structs, a request's tenant ids, a record's version.

use chrono::{DateTime, Duration, Utc};

use super::super::pb;
use crate::domain::tenant::TenantId;
use crate::error::FieldViolation;

/// The tenant ids of a request's `tenant_ids`, each that does not parse a violation of
/// `tenant_ids[i]` pushed onto `violations`.
pub(super) fn tenant_ids(ids: &[String], violations: &mut Vec<FieldViolation>) -> Vec<TenantId> {
    ids.iter()
        .enumerate()
        .filter_map(|(i, id)| {
            TenantId::parse(id)
                .map_err(|why| {
                    violations.push(FieldViolation::new(format!("tenant_ids[{i}]"), why))
                })
                .ok()
        })
        .collect()
}

/// A record's version as the host CRM gets it.
pub fn record_version(v: &crate::domain::crm::RecordVersion) -> Option<pb::RecordVersion> {
    Some(pb::RecordVersion {
        content_hash: v.hash_hex(),
        updated_at: v.updated_at.map(timestamp),
        request_id: v.request_id.clone(),
    })
}

/// An instant as a protobuf Timestamp.
pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

/// A protobuf Timestamp as an instant, when it is one: nanos within 0..1e9 and the
/// instant within protobuf's range (0001-01-01 to 9999-12-31).
pub fn instant(at: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    const MIN: i64 = -62_135_596_800; // 0001-01-01T00:00:00Z
    const MAX: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    let nanos = u32::try_from(at.nanos)
        .ok()
        .filter(|n| *n < 1_000_000_000)?;
    (MIN..=MAX)
        .contains(&at.seconds)
        .then(|| DateTime::from_timestamp(at.seconds, nanos))
        .flatten()
}

/// A span as a protobuf Duration (same sign on both parts, as protobuf requires).
pub fn duration(d: Duration) -> prost_types::Duration {
    let seconds = d.num_seconds();
    let nanos = (d - Duration::seconds(seconds))
        .num_nanoseconds()
        .and_then(|n| i32::try_from(n).ok())
        .unwrap_or(0);
    prost_types::Duration { seconds, nanos }
}

/// A JSON object as a protobuf Struct.
pub fn json_struct(m: &serde_json::Map<String, serde_json::Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: m.iter().map(|(k, v)| (k.clone(), json_value(v))).collect(),
    }
}

/// A JSON value as a protobuf Value.
pub fn json_value(v: &serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match v {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.iter().map(json_value).collect(),
        }),
        serde_json::Value::Object(m) => Kind::StructValue(json_struct(m)),
    };
    prost_types::Value { kind: Some(kind) }
}
