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
mod values;

pub use abc::*;
pub use admin::*;
pub use alerts::*;
pub use catalog::*;
pub use runs::*;
pub use tenant::*;
pub use text::*;
pub use trace::*;
pub use values::*;

use chrono::SecondsFormat;

use super::pb;

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
