//! A pushed batch, judged record by record: each record is either staged or rejected
//! with its index, external id, field and a reason a person can act on. The same rules
//! serve gRPC and HTTP, which both hand records over as JSON values.

use std::collections::HashMap;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use serde_json::{Map, Value};

use super::field_names::{suggest, unknown_field_message};
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

/// A field of a kept record that its table does not know: the record is staged without
/// it reaching the CRM, and the reply names it so the ERP can fix its mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// Position of the record in the batch, from 0.
    pub index: u32,
    /// The record's external id.
    pub external_id: String,
    /// The unknown field, as sent.
    pub field: String,
    /// "unknown field; did you mean …? this table accepts: …".
    pub message: String,
    /// The table's field it most likely meant, or "" when none is near.
    pub suggestion: String,
}

/// How strictly a batch is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// The tenant's zone: naive `updated_at` values are read in it.
    pub tz: Tz,
    /// The tenant's strict mode: a record with a field its table does not know is
    /// rejected, instead of kept with a [`Warning`].
    pub strict_fields: bool,
}

impl Rules {
    /// The default rules in zone `tz`: unknown fields are warned about, not rejected.
    pub fn lenient(tz: Tz) -> Self {
        Self {
            tz,
            strict_fields: false,
        }
    }
}

/// The fields of one kept record that its table does not know, in the record's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnknownFields {
    /// Position of the record in the batch, from 0.
    pub index: u32,
    /// The record's external id.
    pub external_id: String,
    /// The unknown fields' names, as sent.
    pub names: Vec<String>,
}

/// One record judged on its own: kept (with its unknown fields, when it has any), or
/// rejected.
pub type Verdict = Result<(ValidRecord, Option<UnknownFields>), Rejection>;

/// Most warnings one answer lists (with their suggestions, computed for those only): a
/// batch may carry millions of unknown fields, and its answer and logged body must stay
/// bounded. Past it, one last warning (field "") says how many more there were; the
/// request log counts them all.
pub const MAX_LISTED_WARNINGS: usize = 1000;

/// How many records each unknown field is listed for in one answer; the rest of them
/// are told as a count, in one more warning of that field.
pub const LISTED_PER_FIELD: usize = 5;

/// Most other unknown fields a strict rejection names besides the first.
const MAX_NAMED_OTHERS: usize = 5;

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
    /// Unknown fields of the kept records, in batch order (see [`warnings`]).
    pub unknown: Vec<UnknownFields>,
}

/// Judges every record of a batch of `table`. Naive `updated_at` values are read in the
/// tenant's zone `tz`. When an external id appears more than once the last one wins and
/// each earlier one is reported, so accepted + rejected always equals the batch size.
/// Unknown fields are warned about ([`Rules::lenient`]).
pub fn judge(table: &TableDef, records: &[Value], tz: Tz) -> Judged {
    judge_under(table, records, Rules::lenient(tz))
}

/// [`judge`] under the tenant's `rules`.
pub fn judge_under(table: &TableDef, records: &[Value], rules: Rules) -> Judged {
    settle(judge_each(table, records, 0, rules))
}

/// Judges each record on its own (no batch-wide rule); `first_index` is the batch index
/// of `records[0]`, so a batch can be judged in parts, in parallel, then [`settle`]d.
pub fn judge_each(
    table: &TableDef,
    records: &[Value],
    first_index: usize,
    rules: Rules,
) -> Vec<Verdict> {
    records
        .iter()
        .enumerate()
        .map(|(i, rec)| {
            judge_one(
                table,
                u32::try_from(first_index + i).unwrap_or(u32::MAX),
                rec,
                rules,
            )
        })
        .collect()
}

/// Applies the batch-wide rule to records judged one by one, in batch order: of several
/// valid records with the same external id, the last wins and the others are reported.
/// The warnings of a record reported this way go with it.
pub fn settle(judged: Vec<Verdict>) -> Judged {
    let mut last_of: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
    for (valid, _) in judged.iter().flatten() {
        last_of.insert(valid.external_id.clone(), valid.index);
    }
    let mut out = Judged::default();
    for result in judged {
        match result {
            Ok((valid, unknown)) => match last_of.get(&valid.external_id) {
                Some(&last) if last != valid.index => out.rejected.push(Rejection {
                    index: valid.index,
                    external_id: valid.external_id,
                    field: "external_id".into(),
                    reason: format!(
                        "duplicated in this batch: record {last} has the same external_id and wins"
                    ),
                }),
                _ => {
                    out.valid.push(valid);
                    out.unknown.extend(unknown);
                }
            },
            Err(rejection) => out.rejected.push(rejection),
        }
    }
    out
}

fn judge_one(table: &TableDef, index: u32, rec: &Value, rules: Rules) -> Verdict {
    let tz = rules.tz;
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
    // A tombstone's fields are not read: they are not checked for unknown ones either.
    let names: Vec<String> = if deleted {
        Vec::new()
    } else {
        fields
            .keys()
            .filter(|name| table.field(name).is_none())
            .cloned()
            .collect()
    };
    if let (true, Some(first)) = (rules.strict_fields, names.first()) {
        let mut reason = unknown_field_message(table, suggest(table, first));
        let others = &names[1..];
        if !others.is_empty() {
            let shown: Vec<&str> = others
                .iter()
                .take(MAX_NAMED_OTHERS)
                .map(String::as_str)
                .collect();
            reason.push_str(&format!("; also unknown: {}", shown.join(", ")));
            if others.len() > MAX_NAMED_OTHERS {
                reason.push_str(&format!(" and {} more", others.len() - MAX_NAMED_OTHERS));
            }
        }
        return Err(reject(&external_id, first, reason));
    }
    let unknown = (!names.is_empty()).then(|| UnknownFields {
        index,
        external_id: external_id.clone(),
        names,
    });
    Ok((
        ValidRecord {
            index,
            external_id,
            fields,
            updated_at,
            deleted,
        },
        unknown,
    ))
}

/// The warnings an answer lists for the unknown fields of its kept records, and how many
/// unknown fields there were in all (the request log's count). Each unknown field is
/// listed for its first [`LISTED_PER_FIELD`] records, in batch order; past them one more
/// warning of that field (at the first record not listed) says how many more records
/// carry it — an ERP that renamed a field sends it in every record, and its answer (and
/// logged body) would otherwise grow with the batch. At most [`MAX_LISTED_WARNINGS`] are
/// listed, then one (field "") says how many unknown fields were left out.
pub fn warnings(table: &TableDef, unknown: &[UnknownFields]) -> (Vec<Warning>, u32) {
    /// A warning to list: a field of one record, or of `more` records from that one on.
    struct Entry<'a> {
        index: u32,
        external_id: &'a str,
        field: &'a str,
        more: usize,
    }
    let total: usize = unknown.iter().map(|u| u.names.len()).sum();
    let mut entries: Vec<Entry<'_>> = Vec::new();
    // Per field: how many of its records were listed, and its "more" entry's position.
    let mut seen: HashMap<&str, (usize, Option<usize>)> = HashMap::new();
    let mut summaries: Vec<Entry<'_>> = Vec::new();
    for u in unknown {
        for name in &u.names {
            let (listed, summary) = seen.entry(name.as_str()).or_default();
            if *listed < LISTED_PER_FIELD {
                *listed += 1;
                entries.push(Entry {
                    index: u.index,
                    external_id: &u.external_id,
                    field: name,
                    more: 0,
                });
            } else if let Some(at) = summary {
                summaries[*at].more += 1;
            } else {
                *summary = Some(summaries.len());
                summaries.push(Entry {
                    index: u.index,
                    external_id: &u.external_id,
                    field: name,
                    more: 1,
                });
            }
        }
    }
    entries.append(&mut summaries);
    let left_out: usize = entries
        .iter()
        .skip(MAX_LISTED_WARNINGS)
        .map(|e| e.more.max(1))
        .sum();
    let cut = entries
        .get(MAX_LISTED_WARNINGS)
        .map(|e| (e.index, e.external_id));
    entries.truncate(MAX_LISTED_WARNINGS);
    let mut listed: Vec<Warning> = entries
        .into_iter()
        .map(|e| {
            let suggestion = suggest(table, e.field);
            let message = unknown_field_message(table, suggestion);
            Warning {
                index: e.index,
                external_id: e.external_id.to_owned(),
                field: e.field.to_owned(),
                message: if e.more == 0 {
                    message
                } else {
                    message.replacen(
                        "unknown field; ",
                        &format!(
                            "unknown field, in {} more records of this batch from this one on \
                             (each field is listed for its first {LISTED_PER_FIELD} records); ",
                            e.more
                        ),
                        1,
                    )
                },
                suggestion: suggestion.unwrap_or_default().to_owned(),
            }
        })
        .collect();
    if let Some((index, external_id)) = cut {
        listed.push(Warning {
            index,
            external_id: external_id.to_owned(),
            field: String::new(),
            message: format!(
                "{left_out} more unknown fields from this record on are not listed (an answer \
                 lists at most {MAX_LISTED_WARNINGS} warnings): fix the field names above, then \
                 send again"
            ),
            suggestion: String::new(),
        });
    }
    (listed, u32::try_from(total).unwrap_or(u32::MAX))
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

    #[test]
    fn instants_use_the_given_zone_only_when_none_was_sent() {
        // São Paulo has kept UTC-03:00 all year since 2019.
        let at = |s: &str| parse_instant(s, chrono_tz::America::Sao_Paulo).map(|i| i.to_rfc3339());
        assert_eq!(at("2024-03-05"), Ok("2024-03-05T03:00:00+00:00".to_owned()));
        assert_eq!(
            at("05/03/2024 22:00"),
            Ok("2024-03-06T01:00:00+00:00".to_owned())
        );
        assert_eq!(
            at("2024-03-05T10:00:00Z"),
            Ok("2024-03-05T10:00:00+00:00".to_owned())
        );
        assert_eq!(
            at("2024-03-05T10:00:00+01:00"),
            Ok("2024-03-05T09:00:00+00:00".to_owned())
        );
        assert!(at("31/02/2024").is_err());
    }

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

    #[test]
    fn unknown_fields_are_warned_about_or_reject_their_record_when_strict() {
        let table = Table::Company.def();
        let records = [
            json!({"external_id": "c1", "fields": {"name": "A", "document": "11.222.333/0001-81",
                   "cnpj": "x", "erp_flag": 1}}),
            company(json!("c2"), "clean"),
            json!({"external_id": "c3", "deleted": true, "fields": {"cnpj": "x"}}),
        ];
        let lenient = judge(table, &records, chrono_tz::UTC);
        assert_eq!(lenient.valid.len(), 3);
        let (listed, total) = warnings(table, &lenient.unknown);
        assert_eq!(total, 2);
        let named: Vec<(u32, &str, &str)> = listed
            .iter()
            .map(|w| (w.index, w.field.as_str(), w.suggestion.as_str()))
            .collect();
        assert_eq!(named, [(0, "cnpj", "document"), (0, "erp_flag", "")]);
        assert!(listed[0].message.starts_with(
            "unknown field; did you mean \"document\"? this table accepts: name, document"
        ));
        // The unknown field is staged as sent (never delivered to the CRM).
        assert!(lenient.valid[0].fields.contains_key("cnpj"));

        let strict = judge_under(
            table,
            &records,
            Rules {
                tz: chrono_tz::UTC,
                strict_fields: true,
            },
        );
        assert_eq!(strict.valid.len(), 2);
        assert!(strict.unknown.is_empty());
        let r = &strict.rejected[0];
        assert_eq!((r.index, r.field.as_str()), (0, "cnpj"));
        assert!(
            r.reason.starts_with("unknown field; did you mean"),
            "{}",
            r.reason
        );
        assert!(
            r.reason.ends_with("phone; also unknown: erp_flag"),
            "{}",
            r.reason
        );
    }

    #[test]
    fn an_unknown_field_in_every_record_is_listed_for_the_first_records_then_counted() {
        let table = Table::Company.def();
        let records: Vec<Value> = (0..20)
            .map(|i| {
                json!({"external_id": format!("c{i}"), "fields": {"name": "A",
                       "document": "11.222.333/0001-81", "cnpj": "x", "segment": "varejo"}})
            })
            .collect();
        let judged = judge(table, &records, chrono_tz::UTC);
        let (listed, total) = warnings(table, &judged.unknown);
        assert_eq!(total, 40, "every one is counted");
        let shape: Vec<(u32, &str)> = listed.iter().map(|w| (w.index, w.field.as_str())).collect();
        let mut expected: Vec<(u32, &str)> =
            (0..5).flat_map(|i| [(i, "cnpj"), (i, "segment")]).collect();
        expected.extend([(5, "cnpj"), (5, "segment")]);
        assert_eq!(shape, expected);
        let more = &listed[10];
        assert_eq!(
            (more.external_id.as_str(), more.suggestion.as_str()),
            ("c5", "document")
        );
        assert!(
            more.message.starts_with(
                "unknown field, in 15 more records of this batch from this one on (each field \
                 is listed for its first 5 records); did you mean \"document\"? this table accepts: name"
            ),
            "{}",
            more.message
        );
    }

    #[test]
    fn a_flood_of_unknown_fields_lists_a_bounded_number_of_warnings() {
        let table = Table::Seller.def();
        let many: Map<String, Value> = (0..3000)
            .map(|i| (format!("f{i}"), json!(1)))
            .chain([("name".to_owned(), json!("A"))])
            .collect();
        let records = [
            json!({"external_id": "a", "fields": many}),
            json!({"external_id": "b", "fields": many}),
        ];
        let judged = judge(table, &records, chrono_tz::UTC);
        let (listed, total) = warnings(table, &judged.unknown);
        assert_eq!(total, 6000);
        assert_eq!(listed.len(), MAX_LISTED_WARNINGS + 1);
        let last = &listed[MAX_LISTED_WARNINGS];
        assert_eq!((last.field.as_str(), last.index), ("", 0));
        assert!(
            last.message.starts_with("5000 more unknown fields"),
            "{}",
            last.message
        );

        let strict = judge_under(
            table,
            &records[..1],
            Rules {
                tz: chrono_tz::UTC,
                strict_fields: true,
            },
        );
        let reason = &strict.rejected[0].reason;
        assert!(reason.ends_with("and 2994 more"), "{reason}");
        assert!(reason.len() < 300, "{reason}");
    }

    #[test]
    fn a_duplicate_takes_its_warnings_with_it() {
        let table = Table::Seller.def();
        let records = [
            json!({"external_id": "s", "fields": {"name": "A", "nome": "A"}}),
            json!({"external_id": "s", "fields": {"name": "B"}}),
        ];
        let judged = judge(table, &records, chrono_tz::UTC);
        assert_eq!(judged.valid.len(), 1);
        assert!(judged.unknown.is_empty(), "{:?}", judged.unknown);
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
            let rules = Rules::lenient(chrono_tz::UTC);
            let mut parts = judge_each(table, &records[..split], 0, rules);
            parts.extend(judge_each(table, &records[split..], split, rules));
            let whole = judge(table, &records, chrono_tz::UTC);
            prop_assert_eq!(settle(parts), whole.clone());
            prop_assert_eq!(whole.valid.len() + whole.rejected.len(), records.len());
        }
    }
}
