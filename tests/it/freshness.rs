//! Per-table freshness: limits set and cleared with UpdateSettings and the CLI, the
//! last-accepted instant kept by ingestion, STALE_TABLE opened by the scheduler's tick
//! exactly when a table comes due (ticks take explicit instants: nothing waits on the
//! wall clock), one per table, shown in GetOverview, the alert feed and `erpsync
//! overview`, and resolved by the table's next accepted record — on both backends.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use erpsync::grpc::pb::{self, Record, UpdateSettingsRequest};
use erpsync::storage::due;
use erpsync::worker::scheduler::tick;
use tonic::{Code, Streaming};
use tonic_types::StatusExt;

use crate::both_backends;
use crate::helpers::cli::{erpsync, ok};
use crate::helpers::seed::{record, valid_fields};
use crate::helpers::tenants::{acme, setup, Ctx};
use crate::helpers::{authed, TestApp};

both_backends!(
    a_stale_table_opens_once_names_its_last_arrival_and_its_next_record_resolves_it,
    clearing_or_loosening_a_limit_resolves_the_alert_of_its_table,
    bad_limits_and_tables_are_invalid_arguments_and_change_nothing,
    the_cli_sets_limits_and_the_overview_prints_freshness_and_the_alert,
);

/// How long a test waits for an alert event before it fails.
const WAIT: StdDuration = StdDuration::from_secs(30);

fn limit(table: &str, secs: i64) -> pb::TableFreshness {
    pb::TableFreshness {
        table: table.into(),
        max_age: Some(prost_types::Duration {
            seconds: secs,
            nanos: 0,
        }),
    }
}

async fn settings(
    ctx: &mut Ctx,
    req: UpdateSettingsRequest,
) -> Result<pb::Overview, tonic::Status> {
    ctx.history
        .update_settings(authed(
            UpdateSettingsRequest {
                tenant_id: "acme".into(),
                ..req
            },
            &ctx.crm,
        ))
        .await
        .map(tonic::Response::into_inner)
}

fn invoices(ids: std::ops::Range<usize>) -> Vec<Record> {
    ids.map(|i| record(&format!("nf{i}"), &valid_fields("invoice")))
        .collect()
}

/// Pushes `records` to `table`; (accepted, rejected).
async fn push(ctx: &Ctx, table: &str, records: Vec<Record>) -> (u32, usize) {
    let reply = ctx.push_answer(table, records).await;
    (reply.accepted, reply.rejected.len())
}

fn instant(t: &prost_types::Timestamp) -> DateTime<Utc> {
    DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap()).unwrap()
}

fn status<'a>(o: &'a pb::Overview, table: &str) -> &'a pb::TableFreshnessStatus {
    o.table_freshness
        .iter()
        .find(|f| f.table == table)
        .unwrap_or_else(|| panic!("{table} not in {:?}", o.table_freshness))
}

fn stale_alerts(o: &pb::Overview) -> Vec<&pb::Alert> {
    o.open_alerts
        .iter()
        .filter(|a| a.kind() == pb::AlertKind::StaleTable)
        .collect()
}

async fn due_at(ctx: &Ctx) -> Option<DateTime<Utc>> {
    due::get(&ctx.app.state.db, &acme())
        .await
        .unwrap()
        .unwrap()
        .0
}

/// Equal to the microsecond both backends keep.
fn same_instant(a: DateTime<Utc>, b: DateTime<Utc>) -> bool {
    (a - b).num_microseconds().unwrap().abs() < 1
}

async fn watch(ctx: &mut Ctx) -> Streaming<pb::AlertEvent> {
    ctx.history
        .watch_alerts(authed(
            pb::WatchTenantAlertsRequest {
                tenant_id: "acme".into(),
                after_cursor: String::new(),
            },
            &ctx.crm,
        ))
        .await
        .unwrap()
        .into_inner()
}

async fn next(feed: &mut Streaming<pb::AlertEvent>) -> pb::AlertEvent {
    tokio::time::timeout(WAIT, feed.message())
        .await
        .expect("an alert event in time")
        .unwrap()
        .expect("the feed stays open")
}

async fn a_stale_table_opens_once_names_its_last_arrival_and_its_next_record_resolves_it(
    app: TestApp,
) {
    let mut ctx = setup(app).await;
    let worker = ctx.app.state.worker.clone();
    let set = settings(
        &mut ctx,
        UpdateSettingsRequest {
            table_freshness: vec![limit("invoice", 3600), limit("company", 7 * 86_400)],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(set.table_freshness.len(), 2, "{:?}", set.table_freshness);
    let invoice = status(&set, "invoice");
    assert_eq!(invoice.max_age.as_ref().unwrap().seconds, 3600);
    assert!(invoice.last_accepted_at.is_none() && !invoice.stale);
    assert_eq!(
        status(&set, "company").max_age.as_ref().unwrap().seconds,
        604_800
    );

    let mut feed = watch(&mut ctx).await;
    assert_eq!(push(&ctx, "invoice", invoices(0..3)).await, (3, 0));
    assert_eq!(
        push(&ctx, "company", crate::helpers::seed::companies(0..2)).await,
        (2, 0)
    );
    let o = ctx.overview().await;
    let invoice = status(&o, "invoice");
    let arrived = instant(invoice.last_accepted_at.as_ref().unwrap());
    let stale_at = instant(invoice.stale_at.as_ref().unwrap());
    assert_eq!(stale_at - arrived, Duration::hours(1));
    assert!(!invoice.stale);
    assert!(stale_alerts(&o).is_empty());
    // An unscheduled tenant is still due when its first table comes due (counted from
    // the limit's setting until this arrival; a look then finds nothing stale and moves
    // it on to the arrival's instant).
    let first = due_at(&ctx).await.unwrap();
    assert!(
        first <= stale_at && first > stale_at - Duration::seconds(1),
        "{first}"
    );

    // Not read a second before; opened by the tick at the instant.
    let early = tick(&worker, stale_at - Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(early.looked, 0, "not due yet");
    let on_time = tick(&worker, stale_at).await.unwrap();
    assert_eq!((on_time.looked, on_time.started), (1, 0));
    let o = ctx.overview().await;
    let open = stale_alerts(&o);
    assert_eq!(open.len(), 1, "{:?}", o.open_alerts);
    let alert = open[0].clone();
    assert!(alert.message.contains("invoice"), "{}", alert.message);
    assert!(
        alert.message.contains(&arrived.to_rfc3339()),
        "names the last arrival {arrived}: {}",
        alert.message
    );
    assert_eq!(instant(alert.opened_at.as_ref().unwrap()), stale_at);
    assert!(status(&o, "invoice").stale);
    assert!(!status(&o, "company").stale, "other tables unaffected");
    let opened = next(&mut feed).await;
    assert_eq!(opened.kind(), pb::AlertEventKind::Opened);
    assert_eq!(opened.alert.as_ref().unwrap(), &alert);

    // Once per table: a later tick opens no second invoice alert; the company table,
    // 7 days, is next due.
    let company_stale = instant(status(&o, "company").stale_at.as_ref().unwrap());
    assert!(same_instant(due_at(&ctx).await.unwrap(), company_stale));
    tick(&worker, stale_at + Duration::hours(1)).await.unwrap();
    assert_eq!(stale_alerts(&ctx.overview().await).len(), 1);

    // Past 7 days the company table opens its own alert.
    tick(&worker, company_stale).await.unwrap();
    let o = ctx.overview().await;
    let open = stale_alerts(&o);
    assert_eq!(open.len(), 2, "{:?}", o.open_alerts);
    assert!(open.iter().any(|a| a.message.contains("company")));
    let company_alert = next(&mut feed).await;
    assert!(company_alert.alert.unwrap().message.contains("company"));

    // A push whose records are all rejected does not resolve it; nor does another table.
    let bad = record("nf-bad", &serde_json::json!({"company_id": "c1"}));
    assert_eq!(push(&ctx, "invoice", vec![bad]).await, (0, 1));
    let o = ctx.overview().await;
    assert_eq!(stale_alerts(&o).len(), 2);
    assert_eq!(
        instant(status(&o, "invoice").last_accepted_at.as_ref().unwrap()),
        arrived,
        "a rejected record is no arrival"
    );

    // The next accepted invoice resolves the invoice alert, and only it.
    assert_eq!(push(&ctx, "invoice", invoices(3..4)).await, (1, 0));
    let o = ctx.overview().await;
    let open = stale_alerts(&o);
    assert_eq!(open.len(), 1, "{:?}", o.open_alerts);
    assert!(open[0].message.contains("company"), "{}", open[0].message);
    let invoice = status(&o, "invoice");
    assert!(!invoice.stale);
    let again = instant(invoice.last_accepted_at.as_ref().unwrap());
    assert!(again > arrived);
    let resolved = next(&mut feed).await;
    assert_eq!(resolved.kind(), pb::AlertEventKind::Resolved);
    let same = resolved.alert.unwrap();
    assert_eq!(same.alert_id, alert.alert_id, "the same alert resolves");
    assert!(same.resolved_at.is_some());
    // Watched again: due when invoices stop for another hour.
    assert!(same_instant(
        due_at(&ctx).await.unwrap(),
        again + Duration::hours(1)
    ));
}

async fn clearing_or_loosening_a_limit_resolves_the_alert_of_its_table(app: TestApp) {
    let mut ctx = setup(app).await;
    let worker = ctx.app.state.worker.clone();
    settings(
        &mut ctx,
        UpdateSettingsRequest {
            table_freshness: vec![limit("invoice", 3600), limit("order", 3600)],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    push(&ctx, "invoice", invoices(0..1)).await;
    push(&ctx, "order", vec![record("o1", &valid_fields("order"))]).await;
    // A successful run: the integration is healthy until a table goes stale.
    ctx.run().await;
    assert_eq!(ctx.overview().await.health(), pb::Health::Healthy);
    let later = Utc::now() + Duration::hours(2);
    tick(&worker, later).await.unwrap();
    let o = ctx.overview().await;
    assert_eq!(stale_alerts(&o).len(), 2);
    // Runs succeed, yet data stopped arriving: degraded, saying which table.
    assert_eq!(o.health(), pb::Health::Degraded);
    assert!(
        o.health_reason.contains("records accepted since"),
        "{}",
        o.health_reason
    );

    // Cleared: its alert resolves, the table stays listed with its last arrival.
    let o = settings(
        &mut ctx,
        UpdateSettingsRequest {
            clear_table_freshness: vec!["invoice".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let open = stale_alerts(&o);
    assert_eq!(open.len(), 1, "{:?}", o.open_alerts);
    assert!(open[0].message.contains("order"));
    let invoice = status(&o, "invoice");
    assert!(invoice.max_age.is_none() && invoice.stale_at.is_none() && !invoice.stale);
    assert!(invoice.last_accepted_at.is_some());
    // Loosened past now: the order alert resolves too; tightened back, a tick reopens it.
    let o = settings(
        &mut ctx,
        UpdateSettingsRequest {
            table_freshness: vec![limit("order", 86_400)],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(stale_alerts(&o).is_empty(), "{:?}", o.open_alerts);
    assert_eq!(o.health(), pb::Health::Healthy, "{}", o.health_reason);
    settings(
        &mut ctx,
        UpdateSettingsRequest {
            table_freshness: vec![limit("order", 3600)],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    tick(&worker, later).await.unwrap();
    let open = stale_alerts(&ctx.overview().await)
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(open.len(), 1);
    assert!(open[0].message.contains("order"));
}

async fn bad_limits_and_tables_are_invalid_arguments_and_change_nothing(app: TestApp) {
    let mut ctx = setup(app).await;
    settings(
        &mut ctx,
        UpdateSettingsRequest {
            table_freshness: vec![limit("company", 86_400)],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let before = ctx.overview().await;
    let cases: Vec<(UpdateSettingsRequest, &str, &str)> = vec![
        (
            UpdateSettingsRequest {
                table_freshness: vec![limit("invoice", 0)],
                ..Default::default()
            },
            "table_freshness[0].max_age",
            "invoice",
        ),
        (
            UpdateSettingsRequest {
                table_freshness: vec![limit("company", 3600), limit("invoice", -60)],
                ..Default::default()
            },
            "table_freshness[1].max_age",
            "invoice",
        ),
        (
            UpdateSettingsRequest {
                table_freshness: vec![limit("invoice", 10_i64.pow(16))],
                ..Default::default()
            },
            "table_freshness[0].max_age",
            "invoice",
        ),
        (
            UpdateSettingsRequest {
                table_freshness: vec![pb::TableFreshness {
                    table: "invoice".into(),
                    max_age: None,
                }],
                ..Default::default()
            },
            "table_freshness[0].max_age",
            "invoice",
        ),
        (
            UpdateSettingsRequest {
                table_freshness: vec![limit("notas_fiscais", 3600)],
                ..Default::default()
            },
            "table_freshness[0].table",
            "notas_fiscais",
        ),
        (
            UpdateSettingsRequest {
                clear_table_freshness: vec!["nf\0".into()],
                ..Default::default()
            },
            "clear_table_freshness[0]",
            "",
        ),
        (
            UpdateSettingsRequest {
                table_freshness: vec![limit("invoice", 3600)],
                clear_table_freshness: vec!["invoice".into()],
                ..Default::default()
            },
            "clear_table_freshness[0]",
            "invoice",
        ),
    ];
    for (bad, field, table) in cases {
        let err = settings(
            &mut ctx,
            UpdateSettingsRequest {
                // A valid change in the same request is not applied either.
                erp_name: Some("Protheus".into()),
                ..bad
            },
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{field}: {err:?}");
        let violations = err
            .get_details_bad_request()
            .expect("BadRequest")
            .field_violations;
        let v = violations
            .iter()
            .find(|v| v.field == field)
            .unwrap_or_else(|| panic!("{field} not named: {violations:?}"));
        assert!(v.description.contains(table), "{field}: {}", v.description);
        assert!(err.message().contains(field), "{}", err.message());
    }
    let after = ctx.overview().await;
    assert_eq!(after.erp_name, before.erp_name, "nothing changed");
    assert_eq!(after.table_freshness, before.table_freshness);
}

async fn the_cli_sets_limits_and_the_overview_prints_freshness_and_the_alert(app: TestApp) {
    let mut ctx = setup(app).await;
    let db = ctx.app.database_url().to_owned();
    let cli = |args: Vec<String>| {
        let db = db.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            erpsync(&db, &args)
        })
    };
    let words = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
    let updated = ok(cli(words(
        "tenant update --id acme --table-freshness invoice=1h --table-freshness company=7d",
    ))
    .await
    .unwrap());
    assert!(
        updated.contains("table_freshness: invoice 1 h, company 7 d"),
        "{updated}"
    );
    let refused = cli(words(
        "tenant update --id acme --table-freshness invoice=0s",
    ))
    .await
    .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("table_freshness[0].max_age") && stderr.contains("invoice"),
        "{stderr}"
    );
    let unknown = cli(words("tenant update --id acme --clear-table-freshness nfe"))
        .await
        .unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("\"nfe\""));

    // Through a running server's Admin service alike.
    let admin = ctx
        .app
        .token(erpsync::domain::token::Role::Admin, &[])
        .await;
    let through = ok(crate::helpers::cli::remote(vec![
        "tenant".into(),
        "update".into(),
        "--id".into(),
        "acme".into(),
        "--table-freshness".into(),
        "order=2h".into(),
        "--clear-table-freshness".into(),
        "order_item".into(),
        "--server".into(),
        ctx.app.url(),
        "--token".into(),
        admin,
    ])
    .await);
    assert!(
        through.contains("table_freshness: order 2 h, order_item none"),
        "{through}"
    );
    let o = ctx.overview().await;
    assert_eq!(status(&o, "order").max_age.as_ref().unwrap().seconds, 7200);

    push(&ctx, "invoice", invoices(0..1)).await;
    tick(&ctx.app.state.worker, Utc::now() + Duration::hours(2))
        .await
        .unwrap();
    let printed = ok(cli(vec![
        "overview".into(),
        "--tenant".into(),
        "acme".into(),
        "--server".into(),
        ctx.app.url(),
        "--token".into(),
        ctx.crm.clone(),
    ])
    .await
    .unwrap());
    // Two hours on: invoices (1 h) and orders (2 h, none arrived) are stale; companies
    // (7 days) are not.
    assert!(printed.contains("open alerts:       2"), "{printed}");
    assert!(
        printed.contains("  STALE_TABLE: no new invoice records accepted since "),
        "{printed}"
    );
    assert!(
        printed.contains("  STALE_TABLE: no order record accepted since its limit was set"),
        "{printed}"
    );
    assert!(printed.contains("table freshness:"), "{printed}");
    let invoice_line = printed
        .lines()
        .find(|l| l.trim_start().starts_with("invoice "))
        .unwrap_or_else(|| panic!("no invoice line: {printed}"));
    assert!(invoice_line.contains("limit 1 h"), "{invoice_line}");
    assert!(invoice_line.ends_with("STALE"), "{invoice_line}");
    let company_line = printed
        .lines()
        .find(|l| l.trim_start().starts_with("company "))
        .unwrap_or_else(|| panic!("no company line: {printed}"));
    assert!(
        company_line.contains("last accepted never"),
        "{company_line}"
    );
    assert!(printed.ends_with('\n'));
}
