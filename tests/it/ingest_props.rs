//! Property test: random valid and invalid records never panic the server, and every
//! record of a batch is either accepted or rejected — never both, never lost.

use erpsync::domain::tables::TABLES;
use erpsync::domain::token::Role;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

use crate::helpers::seed::valid_fields;
use crate::helpers::{http_post, spawn_app, Backend};

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        prop::sample::select(vec![
            "1.234,56",
            "-5",
            "12a",
            "31/02/2025",
            "2025-02-28",
            "11.222.333/0001-81",
            "529.982.247-25",
            "00000000000000",
            "",
            "  ",
            "1e400",
            "NaN",
            "29/02/2024",
        ])
        .prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A record: a valid one of `table` with some fields replaced or dropped, or noise.
fn record(table: &'static str) -> impl Strategy<Value = Value> {
    let fields = valid_fields(table);
    let keys: Vec<String> = fields.as_object().unwrap().keys().cloned().collect();
    prop_oneof![
        3 => (
            "[a-z0-9]{1,4}",
            prop::collection::vec((prop::sample::select(keys), prop::option::of(scalar())), 0..3),
            prop::option::of(scalar()),
            prop::option::of(scalar()),
        )
            .prop_map(move |(id, edits, updated_at, deleted)| {
                let mut f = fields.clone();
                for (k, v) in edits {
                    match v {
                        Some(v) => f[&k] = v,
                        None => {
                            f.as_object_mut().unwrap().remove(&k);
                        }
                    }
                }
                let mut r = json!({"external_id": id, "fields": f});
                if let Some(u) = updated_at {
                    r["updated_at"] = u;
                }
                if let Some(d) = deleted {
                    r["deleted"] = d;
                }
                r
            }),
        1 => json_value(),
    ]
}

fn batch() -> impl Strategy<Value = (&'static str, Vec<Value>)> {
    prop::sample::select(TABLES.iter().map(|t| t.id).collect::<Vec<_>>())
        .prop_flat_map(|table| (Just(table), prop::collection::vec(record(table), 1..12)))
}

#[test]
fn random_records_never_panic_the_server_and_every_record_is_judged() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (app, token) = rt.block_on(async {
        let app = spawn_app(Backend::Sqlite).await.unwrap();
        let tenant = app.create_tenant("acme").await;
        let token = app.token(Role::Erp, &[&tenant]).await;
        (app, token)
    });
    let mut runner = TestRunner::new(Config {
        cases: 96,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&batch(), |(table, records)| {
            let body = json!({ "records": records }).to_string();
            let (status, text) = rt.block_on(http_post(
                app.port,
                &format!("/erp/v1/{table}"),
                Some(&token),
                body.as_bytes(),
            ));
            prop_assert_eq!(status, 200, "{}", text);
            let reply: Value = serde_json::from_str(&text).unwrap();
            let accepted = reply["accepted"].as_u64().unwrap() as usize;
            let rejected = reply["rejected"].as_array().unwrap();
            prop_assert_eq!(accepted + rejected.len(), records.len());
            let mut indexes: Vec<u64> = rejected
                .iter()
                .map(|r| r["index"].as_u64().unwrap())
                .collect();
            indexes.dedup();
            prop_assert_eq!(indexes.len(), rejected.len(), "one rejection per record");
            prop_assert!(indexes.iter().all(|i| (*i as usize) < records.len()));
            Ok(())
        })
        .unwrap();
    drop(app);
}
