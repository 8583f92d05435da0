//! The CRM's count in a run's reconciliation: after the push erpsync asks the host
//! (CrmSink.CountRecords) and shows its answer marked with when it was read; a host that
//! answers UNIMPLEMENTED is shown by the last total it reported, else by what erpsync
//! delivered, and the run says which; the embedded sink counts its own table.

use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use erpsync::grpc::pb;
use pb::CrmCountSource as Source;

use crate::both_backends;
use crate::helpers::runs::table;
use crate::helpers::seed::companies;
use crate::helpers::seed::{record, valid_fields};
use crate::helpers::servers::app_with_host_sink_and;
use crate::helpers::sinks::start_host;
use crate::helpers::tenants::{setup, Ctx};
use crate::helpers::TestApp;

both_backends!(
    the_hosts_count_is_the_runs_crm_count_with_when_it_was_read,
    a_host_without_count_records_is_shown_by_its_total_then_by_what_was_delivered,
    the_embedded_sink_counts_its_own_table,
);

/// A table's CRM count, its source and when it was read.
fn crm(run: &pb::Run, name: &str) -> (u64, Source, DateTime<Utc>) {
    let t = table(run, name);
    let at = t
        .crm_counted_at
        .as_ref()
        .and_then(|at| DateTime::from_timestamp(at.seconds, at.nanos as u32))
        .unwrap_or_else(|| panic!("{name}: no crm_counted_at: {t:?}"));
    (t.crm_count, t.crm_count_source(), at)
}

/// The instants a run started and finished.
fn span(run: &pb::Run) -> (DateTime<Utc>, DateTime<Utc>) {
    let at = |t: &Option<prost_types::Timestamp>| {
        let t = t.as_ref().unwrap();
        DateTime::from_timestamp(t.seconds, t.nanos as u32).unwrap()
    };
    (at(&run.started_at), at(&run.finished_at))
}

async fn host_ctx(app: TestApp) -> (Ctx, std::sync::Arc<crate::helpers::sinks::HostCrm>) {
    let backend = app.backend;
    drop(app);
    let (host, port) = start_host().await;
    let app = app_with_host_sink_and(backend, format!("grpc://127.0.0.1:{port}"), |_| {}).await;
    (setup(app).await, host)
}

async fn push_both(ctx: &Ctx) {
    ctx.push("company", companies(0..3)).await;
    ctx.push(
        "contact",
        ["p1", "p2"]
            .iter()
            .map(|id| record(id, &valid_fields("contact")))
            .collect(),
    )
    .await;
}

async fn the_hosts_count_is_the_runs_crm_count_with_when_it_was_read(app: TestApp) {
    let (mut ctx, host) = host_ctx(app).await;
    // The host holds records of its own: its count is not erpsync's.
    host.host_only.store(5, Ordering::SeqCst);
    push_both(&ctx).await;
    let got = ctx.run().await;
    let run = got.run.unwrap();
    assert_eq!(run.status(), pb::RunStatus::Success, "{:?}", run.errors);
    assert_eq!(
        host.counted.load(Ordering::SeqCst),
        1,
        "asked once, after the push"
    );
    let (started, finished) = span(&run);
    let (n, source, at) = crm(&run, "company");
    assert_eq!((n, source), (3 + 5, Source::HostCount));
    assert!(started <= at && at <= finished, "{started} {at} {finished}");
    let (n, source, _) = crm(&run, "contact");
    assert_eq!((n, source), (2 + 5, Source::HostCount));
    // Tables the CRM does not hold have no CRM count.
    ctx.push("order", vec![record("o1", &valid_fields("order"))])
        .await;
    let run = ctx.run().await.run.unwrap();
    let order = table(&run, "order");
    assert_eq!(
        (order.crm_count_source(), order.crm_counted_at.is_none()),
        (Source::Unspecified, true)
    );
    // The overview shows the last finished run's.
    let o = ctx.overview().await;
    let company = o.tables.iter().find(|t| t.table == "company").unwrap();
    assert_eq!(
        (company.crm_count, company.crm_count_source()),
        (8, Source::HostCount)
    );
    assert!(company.crm_counted_at.is_some());
}

async fn a_host_without_count_records_is_shown_by_its_total_then_by_what_was_delivered(
    app: TestApp,
) {
    let (mut ctx, host) = host_ctx(app).await;
    host.no_count.store(true, Ordering::SeqCst);
    host.host_only.store(5, Ordering::SeqCst);
    push_both(&ctx).await;
    let run = ctx.run().await.run.unwrap();
    assert_eq!(run.status(), pb::RunStatus::Success, "{:?}", run.errors);
    assert_eq!(host.counted.load(Ordering::SeqCst), 0);
    let (started, finished) = span(&run);
    // The total of its last answer in the run…
    let (n, source, at) = crm(&run, "company");
    assert_eq!((n, source), (8, Source::HostTotal));
    assert!(started <= at && at <= finished, "{started} {at} {finished}");
    assert_eq!(crm(&run, "contact").0, 7);
    // …and in a run that sent the host nothing, what erpsync delivered to it.
    let run = ctx.run().await.run.unwrap();
    assert_eq!(run.status(), pb::RunStatus::Success, "{:?}", run.errors);
    let (started, finished) = span(&run);
    let (n, source, at) = crm(&run, "company");
    assert_eq!((n, source), (3, Source::Delivered));
    assert!(started <= at && at <= finished, "{started} {at} {finished}");
    assert_eq!(crm(&run, "contact").0, 2);
    let o = ctx.overview().await;
    let contact = o.tables.iter().find(|t| t.table == "contact").unwrap();
    assert_eq!(
        (contact.crm_count, contact.crm_count_source()),
        (2, Source::Delivered)
    );
}

async fn the_embedded_sink_counts_its_own_table(app: TestApp) {
    let mut ctx = setup(app).await;
    push_both(&ctx).await;
    let run = ctx.run().await.run.unwrap();
    assert_eq!(run.status(), pb::RunStatus::Success, "{:?}", run.errors);
    assert_eq!(
        (crm(&run, "company").0, crm(&run, "company").1),
        (3, Source::Embedded)
    );
    assert_eq!(
        (crm(&run, "contact").0, crm(&run, "contact").1),
        (2, Source::Embedded)
    );
}
