//! `GET /metrics`: after pushes and a run, the series an operator watches move by what
//! happened. The recorder is process-wide (tests running beside this one add to the same
//! counters), so every check is on what a scrape after the work adds to one before it.

use std::collections::BTreeMap;

use erpsync::grpc::pb;

use crate::both_backends;
use crate::helpers::seed::companies;
use crate::helpers::seed::{record, valid_fields};
use crate::helpers::tenants::setup;
use crate::helpers::{authed, get_metrics, scrape, scrape_with, TestApp};

both_backends!(a_run_and_its_pushes_move_the_operators_series);

/// What `series` grew by from `before` to `after` (absent counts as 0).
fn grew(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>, series: &str) -> f64 {
    after.get(series).copied().unwrap_or(0.0) - before.get(series).copied().unwrap_or(0.0)
}

async fn a_run_and_its_pushes_move_the_operators_series(app: TestApp) {
    let mut ctx = setup(app).await;
    let (_, before) = scrape(ctx.app.port).await;

    ctx.push("company", companies(0..5)).await;
    let mut bad = valid_fields("company");
    bad.as_object_mut().unwrap().remove("document");
    let reply = ctx
        .app
        .ingest()
        .await
        .push(authed(
            pb::PushRequest {
                tenant_id: "acme".into(),
                table: "company".into(),
                records: vec![record("ok", &valid_fields("company")), record("bad", &bad)],
            },
            &ctx.erp,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.rejected.len(), 1);
    let run = ctx.run().await.run.unwrap();
    assert_eq!(run.status(), pb::RunStatus::Success, "{run:?}");

    let (text, after) = scrape(ctx.app.port).await;
    for (series, at_least) in [
        (r#"erpsync_records_accepted_total{table="company"}"#, 6.0),
        (r#"erpsync_records_rejected_total{table="company"}"#, 1.0),
        (
            r#"erpsync_runs_total{status="SUCCESS",trigger="MANUAL"}"#,
            1.0,
        ),
        (
            r#"erpsync_run_duration_seconds_count{status="SUCCESS"}"#,
            1.0,
        ),
        (r#"erpsync_stage_duration_seconds_count{stage="push"}"#, 1.0),
        (
            r#"erpsync_sink_calls_total{call="UpsertCompanies",outcome="ok"}"#,
            1.0,
        ),
        ("erpsync_request_log_bytes_total", 100.0),
    ] {
        let by = grew(&before, &after, series);
        assert!(
            by >= at_least,
            "{series} grew by {by}, expected ≥ {at_least}:\n{text}"
        );
    }
    // The pool is read at the scrape; no series names a tenant.
    assert!(
        after.contains_key(r#"erpsync_db_pool_connections{state="idle"}"#),
        "{text}"
    );
    assert!(
        !text.contains("acme"),
        "a tenant id in the metrics:\n{text}"
    );
    assert!(
        text.contains("# TYPE erpsync_run_duration_seconds histogram"),
        "{text}"
    );
    // Open alerts are counted at the scrape, every kind named (0 when none is open).
    for kind in [
        "STALE",
        "FAILING",
        "DELETES_HELD",
        "ABC_SHIFT_HELD",
        "STALE_TABLE",
    ] {
        let series = format!(r#"erpsync_alerts_open{{kind="{kind}"}}"#);
        assert!(after.contains_key(&series), "{series} missing:\n{text}");
    }
}

/// With `--metrics-token`, a scrape without the token or with another is 401 (and says
/// what it needs); with it, the metrics.
mod with_token {
    use super::*;

    const TOKEN: &str = "scrape-me-0123456789";

    crate::both_backends!(tuned:
        the_metrics_token_is_required_when_set => |c| c.metrics_token = Some(TOKEN.into()),
    );

    async fn the_metrics_token_is_required_when_set(app: TestApp) {
        for wrong in [
            None,
            Some("Bearer scrape-me-012345678"),
            Some("Basic c2NyYXBl"),
        ] {
            let (head, body) = get_metrics(app.port, wrong).await;
            assert!(head.starts_with("HTTP/1.1 401"), "{wrong:?}: {head}");
            assert!(
                head.to_ascii_lowercase()
                    .contains("www-authenticate: bearer"),
                "{head}"
            );
            assert!(body.contains("metrics token"), "{body}");
            assert!(!body.contains("erpsync_"), "{body}");
        }
        let (text, samples) = scrape_with(app.port, Some(&format!("Bearer {TOKEN}"))).await;
        assert!(
            samples.contains_key(r#"erpsync_db_pool_connections{state="idle"}"#),
            "{text}"
        );
    }
}

/// `erpsync serve --metrics-tenant-label` (its own process: the label is process-wide):
/// the per-tenant series name the tenant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tenant_label_is_there_when_the_operator_asks() {
    use crate::helpers::cli::{erpsync, issue_token, ok, serve_with};
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("m.db").display());
    ok(erpsync(
        &db,
        &["tenant", "create", "--id", "acme", "--name", "ACME"],
    ));
    let erp = issue_token(&db, &["--role", "erp", "--tenant", "acme"]);
    let (mut server, port) = serve_with(&db, &["--metrics-tenant-label"]);
    let body = serde_json::json!({"records": [
        {"external_id": "c1", "fields": valid_fields("company")},
    ]})
    .to_string();
    let (status, answer) =
        crate::helpers::http_post(port, "/erp/v1/company", Some(&erp), body.as_bytes()).await;
    assert_eq!(status, 200, "{answer}");
    let (text, samples) = scrape(port).await;
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(
        samples.get(r#"erpsync_records_accepted_total{table="company",tenant="acme"}"#),
        Some(&1.0),
        "{text}"
    );
}
