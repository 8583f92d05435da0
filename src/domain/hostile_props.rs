//! Property tests that play the fuzzer on every parser hostile input reaches: record
//! decoding and validation, dates, daily times, cron expressions, export date ranges and
//! page tokens. Each must answer (accept or refuse with a reason) for any input, never
//! panic, and keep its invariants. (cargo-fuzz needs a nightly toolchain this project's
//! machines do not have; proptest runs the same idea on stable, in CI, for thousands of
//! cases each.) Inputs a run found are kept below as regression cases.

#![cfg(test)]

use chrono::{NaiveDate, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::batch::judge;
use super::export::{ExportInput, ExportKind, ExportSpec};
use super::record::parse_date;
use super::schedule::{CronExpr, DailyTime, Schedule};
use super::tables::TABLES;

/// Cases per property: 3 000 by default (a bounded run in CI that still finds the usual
/// edge cases), `ERPSYNC_FUZZ_CASES` for a longer hunt.
pub(crate) fn cases() -> u32 {
    std::env::var("ERPSYNC_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3_000)
}

/// Any JSON value, a few levels deep, with the odd strings hostile input brings.
fn any_json() -> impl Strategy<Value = Value> {
    let text = prop_oneof![
        ".{0,40}",
        Just("\u{0}".to_owned()),
        Just("9".repeat(400)),
        Just("-0".to_owned()),
        Just("1e999".to_owned()),
        Just("29/02/2023".to_owned()),
        Just("2024-13-45T25:61:61Z".to_owned()),
        Just("11.222.333/0001-81".to_owned()),
        Just("00000000000000".to_owned()),
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        text.prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(".{0,12}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A record object with the known field names of `table` among random ones.
fn record_of(table: usize) -> impl Strategy<Value = Value> {
    let names: Vec<String> = TABLES[table]
        .required_fields
        .iter()
        .map(|f| (*f).to_owned())
        .chain(["document", "total", "issued_at", "email", "quantity"].map(String::from))
        .collect();
    (
        any_json(),
        prop::collection::vec((prop::sample::select(names), any_json()), 0..8),
        any_json(),
        any_json(),
    )
        .prop_map(|(id, fields, updated_at, deleted)| {
            let fields: Map<String, Value> = fields.into_iter().collect();
            json!({"external_id": id, "fields": fields, "updated_at": updated_at, "deleted": deleted})
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn any_batch_is_judged_record_by_record_without_panicking(
        table in 0..TABLES.len(),
        records in prop::collection::vec(prop_oneof![any_json(), record_of(0), record_of(4)], 0..12),
    ) {
        let judged = judge(&TABLES[table], &records, chrono_tz::America::Sao_Paulo);
        prop_assert_eq!(judged.valid.len() + judged.rejected.len(), records.len());
        for r in &judged.rejected {
            prop_assert!(!r.reason.is_empty());
            prop_assert!(r.external_id.chars().count() <= 201);
        }
        for v in &judged.valid {
            prop_assert!(!v.external_id.is_empty() && !v.external_id.contains('\0'));
        }
    }

    #[test]
    fn any_text_is_a_date_or_a_reason(s in ".{0,40}") {
        if let Err(reason) = parse_date(&s) {
            prop_assert!(!reason.is_empty());
        }
    }

    #[test]
    fn any_text_is_a_daily_time_or_a_reason(s in ".{0,12}") {
        if let Ok(t) = s.parse::<DailyTime>() {
            // What parses prints back as something that parses to the same time.
            prop_assert_eq!(t.to_string().parse::<DailyTime>().ok(), Some(t));
        }
    }

    #[test]
    fn any_cron_text_is_refused_or_fires_after_any_instant(
        expr in "([0-9*/,-]{1,6} ){4}[0-9*/,-]{1,6}",
        secs in 0i64..4_102_444_800,
    ) {
        if let Ok(schedule) = Schedule::cron(&expr) {
            let now = Utc.timestamp_opt(secs, 0).single().unwrap();
            let next = schedule.next_after(now, chrono_tz::America::Sao_Paulo);
            prop_assert!(next.is_none_or(|n| n > now));
        } else {
            let _ = expr.parse::<CronExpr>();
        }
    }

    #[test]
    fn any_export_range_is_checked_field_by_field(
        from in prop_oneof![".{0,12}", "20[0-9]{2}-[01][0-9]-[0-3][0-9]"],
        to in prop_oneof![".{0,12}", "20[0-9]{2}-[01][0-9]-[0-3][0-9]"],
        tables in prop::collection::vec(".{0,10}", 0..3),
        retention in 7u32..400,
    ) {
        let today = NaiveDate::from_ymd_opt(2026, 12, 3).unwrap();
        let input = ExportInput { from_date: &from, to_date: &to, tables: &tables, kind: ExportKind::Requests };
        match ExportSpec::parse(input, today, retention) {
            Ok(spec) => prop_assert!(spec.from <= spec.to && spec.to <= today),
            Err(violations) => prop_assert!(!violations.is_empty()),
        }
    }
}

/// Inputs of the security probe (issue #15) that these properties cover, kept as fixed
/// regressions: what once failed a batch or answered wrongly.
#[test]
fn found_inputs_stay_answered() {
    let table = &TABLES[0];
    for record in [
        // A NUL inside a nested field value: rejected by name (PostgreSQL refused it).
        json!({"external_id": "c1", "fields": {"name": "x", "document": "11.222.333/0001-81", "a": ["\u{0}"]}}),
        // A number too large for any integer type as the external id.
        json!({"external_id": 1e300, "fields": {}}),
    ] {
        let judged = judge(table, &[record], chrono_tz::UTC);
        assert_eq!(judged.rejected.len(), 1, "{judged:?}");
    }
}
