//! The only place that maps between domain values and prost types: instants, JSON and
//! records here, the rest by subject in the submodules.

mod abc;
mod admin;
mod alerts;
mod catalog;
mod runs;
mod tenant;
mod text;
mod trace;

pub use abc::*;
pub use admin::*;
pub use alerts::*;
pub use catalog::*;
pub use runs::*;
pub use tenant::*;
pub use text::*;
pub use trace::*;

use chrono::{DateTime, Duration, SecondsFormat, Utc};

use super::pb;
use crate::domain::tenant::TenantId;
use crate::error::FieldViolation;

/// The tenant ids of a request's `tenant_ids`, each that does not parse a violation of
/// `tenant_ids[i]` pushed onto `violations`.
fn tenant_ids(ids: &[String], violations: &mut Vec<FieldViolation>) -> Vec<TenantId> {
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

/// A pushed record as the JSON the ingest rules read (the same shape HTTP clients send);
/// consumes the record so its strings move instead of being copied.
pub fn record_json(r: pb::Record) -> serde_json::Value {
    let mut obj = serde_json::Map::new();
    if let Some(at) = &r.updated_at {
        // An invalid Timestamp stays visible as text, so the record is rejected naming
        // `updated_at` instead of being staged without it.
        let rendered = match instant(at) {
            Some(t) => t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            None => format!(
                "Timestamp {{ seconds: {}, nanos: {} }} (outside 0001-01-01..9999-12-31, or nanos outside 0..999999999)",
                at.seconds, at.nanos
            ),
        };
        obj.insert("updated_at".into(), rendered.into());
    }
    obj.insert("external_id".into(), r.external_id.into());
    obj.insert(
        "fields".into(),
        r.fields.map_or_else(
            || serde_json::Value::Object(Default::default()),
            struct_json,
        ),
    );
    obj.insert("deleted".into(), r.deleted.into());
    serde_json::Value::Object(obj)
}

fn struct_json(s: prost_types::Struct) -> serde_json::Value {
    serde_json::Value::Object(
        s.fields
            .into_iter()
            .map(|(k, v)| (k, value_json(v)))
            .collect(),
    )
}

fn value_json(v: prost_types::Value) -> serde_json::Value {
    use prost_types::value::Kind;
    match v.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => b.into(),
        // Struct numbers are doubles; integral ones are kept integral so ids and
        // quantities read as the ERP wrote them.
        Some(Kind::NumberValue(n)) => {
            if n.fract() == 0.0 && n.abs() < 9.007_199_254_740_992e15 {
                serde_json::Value::from(n as i64)
            } else {
                // NaN and ±Infinity have no JSON number: kept as their text, the field's
                // rule rejects them by name ("is not a number") instead of as missing.
                serde_json::Number::from_f64(n)
                    .map_or_else(|| n.to_string().into(), serde_json::Value::Number)
            }
        }
        Some(Kind::StringValue(s)) => s.into(),
        Some(Kind::ListValue(l)) => l
            .values
            .into_iter()
            .map(value_json)
            .collect::<Vec<_>>()
            .into(),
        Some(Kind::StructValue(s)) => struct_json(s),
    }
}

/// The push answer.
pub fn push_response(r: crate::ingest::PushReply) -> pb::PushResponse {
    pb::PushResponse {
        request_id: r.request_id,
        accepted: r.accepted,
        rejected: r
            .rejected
            .into_iter()
            .map(|x| pb::Rejection {
                index: x.index,
                external_id: x.external_id,
                field: x.field,
                reason: x.reason,
            })
            .collect(),
        warnings: r
            .warnings
            .into_iter()
            .map(|w| pb::Warning {
                index: w.index,
                external_id: w.external_id,
                field: w.field,
                message: w.message,
                suggestion: w.suggestion,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use prost_types::value::Kind;

    fn any_value() -> impl Strategy<Value = prost_types::Value> {
        let leaf = prop_oneof![
            Just(Kind::NullValue(0)),
            any::<bool>().prop_map(Kind::BoolValue),
            any::<f64>().prop_map(Kind::NumberValue),
            Just(Kind::NumberValue(f64::NAN)),
            Just(Kind::NumberValue(f64::INFINITY)),
            ".{0,20}".prop_map(Kind::StringValue),
        ]
        .prop_map(|k| prop_types_value(Some(k)));
        leaf.prop_recursive(2, 12, 4, |inner| {
            prop::collection::btree_map(".{0,8}", inner, 0..4).prop_map(|m| {
                prop_types_value(Some(Kind::StructValue(prost_types::Struct {
                    fields: m.into_iter().collect(),
                })))
            })
        })
    }

    fn prop_types_value(kind: Option<Kind>) -> prost_types::Value {
        prost_types::Value { kind }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(crate::domain::hostile_props::cases()))]

        /// Any pushed gRPC record (any Struct, any Timestamp) becomes JSON the ingest rules
        /// judge: never a panic, never a record staged with a timestamp it did not send.
        #[test]
        fn any_grpc_record_is_judged(
            id in ".{0,20}",
            fields in prop::collection::btree_map("(name|document|total|.{0,6})", any_value(), 0..6),
            seconds in any::<i64>(),
            nanos in any::<i32>(),
            with_time in any::<bool>(),
        ) {
            let record = pb::Record {
                external_id: id,
                fields: Some(prost_types::Struct { fields: fields.into_iter().collect() }),
                updated_at: with_time.then_some(prost_types::Timestamp { seconds, nanos }),
                deleted: false,
            };
            let valid_time = record.updated_at.as_ref().is_some_and(|t| instant(t).is_some());
            let json = record_json(record);
            let table = crate::domain::tables::Table::Company.def();
            let judged = crate::domain::batch::judge(table, &[json], chrono_tz::UTC);
            prop_assert_eq!(judged.valid.len() + judged.rejected.len(), 1);
            if with_time && !valid_time {
                prop_assert!(judged.valid.is_empty());
            }
        }
    }
}
