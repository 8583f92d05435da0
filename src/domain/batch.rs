//! A pushed batch, judged record by record: each record is either staged or rejected
//! with its index, external id, field and a reason a person can act on. The same rules
//! serve gRPC and HTTP, which both hand records over as JSON values.

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::{Map, Value};

use super::record::{self, json_type, ParsedDate};
use super::tables::TableDef;
use super::text::{has_nul, NUL_REASON};

/// Longest accepted external id, in characters.
pub const MAX_EXTERNAL_ID: usize = 200;

/// One record the batch could not keep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// Position in the batch, from 0.
    pub index: u32,
    /// The record's external id as sent ("" when it had none).
    pub external_id: String,
    /// The field at fault, or "" for the record as a whole.
    pub field: String,
    /// What is wrong and what to send instead.
    pub reason: String,
}

/// A record that passed validation, ready to stage.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidRecord {
    /// Position in the batch, from 0.
    pub index: u32,
    /// The record's id in the ERP.
    pub external_id: String,
    /// Normalized fields (empty for a deletion).
    pub fields: Map<String, Value>,
    /// When the ERP last changed it, if it said.
    pub updated_at: Option<DateTime<Utc>>,
    /// A tombstone: delete it from the CRM at the next sync.
    pub deleted: bool,
}

/// The verdict on a batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Judged {
    /// Records to stage, at most one per external id.
    pub valid: Vec<ValidRecord>,
    /// Records rejected, in batch order.
    pub rejected: Vec<Rejection>,
}

/// Judges every record of a batch of `table`. Naive `updated_at` values are read in the
/// tenant's zone `tz`. When an external id appears more than once the last one wins and
/// each earlier one is reported, so accepted + rejected always equals the batch size.
pub fn judge(table: &TableDef, records: &[Value], tz: Tz) -> Judged {
    settle(judge_each(table, records, 0, tz))
}

/// Judges each record on its own (no batch-wide rule); `first_index` is the batch index
/// of `records[0]`, so a batch can be judged in parts, in parallel, then [`settle`]d.
pub fn judge_each(
    table: &TableDef,
    records: &[Value],
    first_index: usize,
    tz: Tz,
) -> Vec<Result<ValidRecord, Rejection>> {
    records
        .iter()
        .enumerate()
        .map(|(i, rec)| {
            judge_one(
                table,
                u32::try_from(first_index + i).unwrap_or(u32::MAX),
                rec,
                tz,
            )
        })
        .collect()
}

/// Applies the batch-wide rule to records judged one by one, in batch order: of several
/// valid records with the same external id, the last wins and the others are reported.
pub fn settle(judged: Vec<Result<ValidRecord, Rejection>>) -> Judged {
    let mut last_of: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    for valid in judged.iter().flatten() {
        last_of.insert(valid.external_id.clone(), valid.index);
    }
    let mut out = Judged::default();
    for result in judged {
        match result {
            Ok(valid) => match last_of.get(&valid.external_id) {
                Some(&last) if last != valid.index => out.rejected.push(Rejection {
                    index: valid.index,
                    external_id: valid.external_id,
                    field: "external_id".into(),
                    reason: format!(
                        "duplicated in this batch: record {last} has the same external_id and wins"
                    ),
                }),
                _ => out.valid.push(valid),
            },
            Err(rejection) => out.rejected.push(rejection),
        }
    }
    out
}

fn judge_one(table: &TableDef, index: u32, rec: &Value, tz: Tz) -> Result<ValidRecord, Rejection> {
    let reject = |external_id: &str, field: &str, reason: String| Rejection {
        index,
        external_id: external_id.to_owned(),
        field: field.to_owned(),
        reason,
    };
    let Some(obj) = rec.as_object() else {
        return Err(reject(
            "",
            "",
            format!("expected a record object, got {}", json_type(rec)),
        ));
    };
    let external_id = match obj.get("external_id") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_owned(),
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
        None | Some(Value::Null) => {
            return Err(reject(
                "",
                "external_id",
                "required field is missing".into(),
            ))
        }
        Some(Value::String(_)) => {
            return Err(reject("", "external_id", "must not be empty".into()))
        }
        Some(other) => {
            return Err(reject(
                "",
                "external_id",
                format!("expected a text, got {}", json_type(other)),
            ))
        }
    };
    if external_id.chars().count() > MAX_EXTERNAL_ID {
        // The rejection names the record by the start of its id, not all of it.
        let head: String = external_id.chars().take(MAX_EXTERNAL_ID).collect();
        return Err(reject(
            &format!("{head}…"),
            "external_id",
            format!(
                "must be at most {MAX_EXTERNAL_ID} characters, got {}",
                external_id.chars().count()
            ),
        ));
    }
    if has_nul(&external_id) {
        return Err(reject("", "external_id", NUL_REASON.into()));
    }
    let deleted = match obj.get("deleted") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(reject(
                &external_id,
                "deleted",
                format!("expected true or false, got {}", json_type(other)),
            ))
        }
    };
    let updated_at = match obj.get("updated_at") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            parse_instant(s, tz).map_err(|reason| reject(&external_id, "updated_at", reason))?,
        ),
        Some(other) => {
            return Err(reject(
                &external_id,
                "updated_at",
                format!("expected a date-time text, got {}", json_type(other)),
            ))
        }
    };
    let empty = Map::new();
    let fields = match obj.get("fields") {
        Some(Value::Object(m)) => m,
        None | Some(Value::Null) if deleted => &empty,
        None | Some(Value::Null) => {
            return Err(reject(
                &external_id,
                "fields",
                "required field is missing".into(),
            ))
        }
        Some(other) => {
            return Err(reject(
                &external_id,
                "fields",
                format!("expected an object of fields, got {}", json_type(other)),
            ))
        }
    };
    if let Some(field) = fields.iter().find_map(|(k, v)| nul_in(k, v)) {
        return Err(reject(&external_id, &field, NUL_REASON.into()));
    }
    // A tombstone only needs its id: the ERP may not have the fields any more.
    let fields = if deleted {
        fields.clone()
    } else {
        record::validate(table, fields).map_err(|errors| {
            let mut errors = errors.into_iter();
            let first = errors.next().unwrap_or(record::FieldError {
                field: String::new(),
                reason: "invalid record".into(),
            });
            // One rejection per record keeps accepted + rejected equal to the batch size;
            // the other problems are named so the ERP can fix them all at once.
            let others: Vec<String> = errors
                .map(|e| format!("{}: {}", e.field, e.reason))
                .collect();
            let reason = if others.is_empty() {
                first.reason
            } else {
                format!("{}; also {}", first.reason, others.join("; "))
            };
            reject(&external_id, &first.field, reason)
        })?
    };
    Ok(ValidRecord {
        index,
        external_id,
        fields,
        updated_at,
        deleted,
    })
}

/// The path of the first text under field `key` (the key itself, or a text nested in
/// its value) that holds a NUL character.
fn nul_in(key: &str, value: &Value) -> Option<String> {
    if has_nul(key) {
        return Some(key.replace('\0', "\\u0000"));
    }
    match value {
        Value::String(s) if has_nul(s) => Some(key.to_owned()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_in(&format!("{key}[{i}]"), v)),
        Value::Object(map) => map
            .iter()
            .find_map(|(k, v)| nul_in(&format!("{key}.{k}"), v)),
        _ => None,
    }
}

/// Parses an `updated_at` in any accepted date form; naive ones are in `tz`.
pub fn parse_instant(s: &str, tz: Tz) -> Result<DateTime<Utc>, String> {
    let naive = match record::parse_date(s)? {
        ParsedDate::Instant(at) => return Ok(at),
        ParsedDate::Naive(dt) => dt,
        ParsedDate::Date(d) => d.and_hms_opt(0, 0, 0).unwrap_or_default(),
    };
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| format!("{s:?} does not exist in {} (a DST gap)", tz.name()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::tables::Table;
    use proptest::prelude::*;
    use serde_json::json;

    fn company(id: Value, name: &str) -> Value {
        json!({"external_id": id, "fields": {"name": name, "document": "11.222.333/0001-81"}})
    }

    #[test]
    fn a_nul_character_rejects_its_record_alone_naming_the_field() {
        let table = Table::Company.def();
        let records = [
            company(json!("good"), "Good Ltda"),
            company(json!("c\u{0}1"), "Bad id"),
            company(json!("c2"), "Bad\u{0}name"),
            json!({"external_id": "c3", "fields": {"name": "X", "document": "11.222.333/0001-81",
                   "extra": {"list": ["ok", "b\u{0}d"]}}}),
            json!({"external_id": "c4", "fields": {"name": "X", "document": "11.222.333/0001-81",
                   "k\u{0}ey": "v"}}),
        ];
        let judged = judge(table, &records, chrono_tz::UTC);
        assert_eq!(judged.valid.len(), 1);
        let named: Vec<(&str, &str)> = judged
            .rejected
            .iter()
            .map(|r| (r.external_id.as_str(), r.field.as_str()))
            .collect();
        assert_eq!(
            named,
            [
                ("", "external_id"),
                ("c2", "name"),
                ("c3", "extra.list[1]"),
                ("c4", "k\\u0000ey")
            ]
        );
        assert!(judged.rejected.iter().all(|r| r.reason == NUL_REASON));
    }

    #[test]
    fn an_over_long_external_id_is_named_by_its_start_only() {
        let table = Table::Company.def();
        let judged = judge(
            table,
            &[company(json!("x".repeat(1_000_000)), "n")],
            chrono_tz::UTC,
        );
        let r = &judged.rejected[0];
        assert_eq!(r.external_id.chars().count(), MAX_EXTERNAL_ID + 1);
        assert!(r.reason.contains("got 1000000"), "{}", r.reason);
    }

    #[test]
    fn duplicates_are_found_on_the_normalized_external_id() {
        let table = Table::Company.def();
        let records = [
            company(json!(" c1 "), "first"),
            company(json!("c1"), "second"),
            company(json!(7), "number"),
            company(json!("7"), "text"),
        ];
        let judged = judge(table, &records, chrono_tz::UTC);
        let kept: Vec<(&str, u32)> = judged
            .valid
            .iter()
            .map(|v| (v.external_id.as_str(), v.index))
            .collect();
        assert_eq!(kept, [("c1", 1), ("7", 3)]);
        let reported: Vec<u32> = judged.rejected.iter().map(|r| r.index).collect();
        assert_eq!(reported, [0, 2]);
    }

    proptest! {
        #[test]
        fn judging_in_parts_then_settling_equals_judging_whole(
            ids in prop::collection::vec(prop::sample::select(vec!["a", "b", "c", "d", ""]), 1..40),
            split in 0usize..40,
        ) {
            let table = Table::Company.def();
            let records: Vec<Value> = ids.iter().enumerate()
                .map(|(i, id)| company(json!(id), &format!("n{i}")))
                .collect();
            let split = split.min(records.len());
            let mut parts = judge_each(table, &records[..split], 0, chrono_tz::UTC);
            parts.extend(judge_each(table, &records[split..], split, chrono_tz::UTC));
            let whole = judge(table, &records, chrono_tz::UTC);
            prop_assert_eq!(settle(parts), whole.clone());
            prop_assert_eq!(whole.valid.len() + whole.rejected.len(), records.len());
        }
    }
}
