//! Sync runs: TriggerSync, the stages, delivery to the embedded CRM, the run log,
//! ListRuns/GetRun, the lease, interrupted runs and the delete guard.

use std::time::Duration;

use chrono::Utc;
use erpsync::domain::run::{RunStatus, RunSummary, RunTrigger};
use erpsync::grpc::pb::{
    self, integration_history_client::IntegrationHistoryClient, GetOverviewRequest, GetRunRequest,
    ListRunsRequest, Record, TriggerSyncRequest,
};
use erpsync::storage::{crm, lease, runs};
use serde_json::json;
use tonic::Code;

use crate::both_backends;
use crate::helpers::runs::{held_run, table, wait_idle};
use crate::helpers::seed::{companies, record, tombstone, valid_fields};
use crate::helpers::servers::app_with_host_sink_and;
use crate::helpers::sinks::{start_host, FlakySink};
use crate::helpers::tenants::{setup, Ctx};
use crate::helpers::{authed, TestApp};

both_backends!(
    a_run_delivers_staged_companies_and_contacts_to_the_crm,
    the_next_run_delivers_only_changes_and_deletions,
    the_delete_guard_holds_a_mass_deletion,
    a_tenant_runs_once_at_a_time,
    runs_are_listed_newest_first_by_page_and_status,
    a_run_left_running_by_a_dead_process_is_interrupted,
    the_scheduler_starts_a_due_run_once_per_slot,
    a_failing_crm_fails_the_run_keeps_staging_and_the_next_run_delivers_all,
    a_tenant_without_success_in_its_window_is_stale_once,
    the_host_crm_sink_receives_exactly_the_upserts_and_deletes,
    runs_and_the_overview_reconcile_erp_counts_with_staged_and_crm,
    a_drain_that_ends_hands_the_run_over_with_the_page_in_flight_unmarked,
    delete_guard_thresholds_are_per_tenant_settings,
);

async fn a_run_delivers_staged_companies_and_contacts_to_the_crm(app: TestApp) {
    let mut ctx = setup(app).await;
    ctx.push(
        "company",
        (1..=3)
            .map(|i| record(&format!("c{i}"), &valid_fields("company")))
            .collect(),
    )
    .await;
    ctx.push(
        "contact",
        (1..=2)
            .map(|i| record(&format!("p{i}"), &valid_fields("contact")))
            .collect(),
    )
    .await;
    ctx.push("order", vec![record("o1", &valid_fields("order"))])
        .await;

    let got = ctx.run().await;
    let run = got.run.unwrap();
    assert_eq!(run.status(), pb::RunStatus::Success, "{:?}", run.errors);
    assert_eq!(run.trigger(), pb::RunTrigger::Manual);
    let company = table(&run, "company");
    assert_eq!(
        (
            company.received,
            company.inserted,
            company.updated,
            company.deleted
        ),
        (3, 3, 0, 0)
    );
    assert_eq!(table(&run, "contact").inserted, 2);
    assert_eq!(table(&run, "order").received, 1);
    let stages: Vec<&str> = run.stages.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(
        stages,
        [
            "collect",
            "validate",
            "delete_guard",
            "push",
            "abc",
            "categorize",
            "finish"
        ]
    );
    assert!(run.finished_at.is_some() && run.duration.is_some());
    assert_eq!(ctx.crm_companies().await, ["c1", "c2", "c3"]);

    // The detailed log: ordered by cursor, from the start to the end of the run.
    let cursors: Vec<u64> = got.log.iter().map(|e| e.cursor).collect();
    assert!(cursors.windows(2).all(|w| w[0] < w[1]), "{cursors:?}");
    assert_eq!(got.log.first().unwrap().message, "run started (manual)");
    assert_eq!(got.log.last().unwrap().message, "run finished: SUCCESS");
    assert!(got
        .log
        .iter()
        .any(|e| e.table.as_deref() == Some("company") && e.message.contains("3 new")));
    for stage in [
        "collect",
        "validate",
        "delete_guard",
        "push",
        "abc",
        "categorize",
        "finish",
    ] {
        assert!(
            got.log
                .iter()
                .any(|e| e.stage == stage && e.message.starts_with(&format!("{stage} done in "))),
            "every stage logs: {stage}"
        );
    }

    // The overview tells the truth about it.
    let o = ctx
        .history
        .get_overview(authed(
            GetOverviewRequest {
                tenant_id: "acme".into(),
            },
            &ctx.crm,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(o.health(), pb::Health::Healthy);
    assert_eq!(o.recent_runs.len(), 1);
    assert_eq!(o.recent_runs[0].run_id, run.run_id);
    assert!(o.last_success_at.is_some() && o.average_duration.is_some());

    // Nothing new: the next run delivers nothing and changes nothing.
    let again = ctx.run().await.run.unwrap();
    assert_eq!(again.status(), pb::RunStatus::Success);
    assert!(
        again.tables.iter().all(|t| t.received == 0),
        "{:?}",
        again.tables
    );
    assert_eq!(ctx.crm_companies().await, ["c1", "c2", "c3"]);
}

async fn the_next_run_delivers_only_changes_and_deletions(app: TestApp) {
    let mut ctx = setup(app).await;
    ctx.push(
        "company",
        (1..=3)
            .map(|i| record(&format!("c{i}"), &valid_fields("company")))
            .collect(),
    )
    .await;
    ctx.run().await;
    let mut renamed = valid_fields("company");
    renamed["name"] = json!("Renamed");
    let tombstone = Record {
        external_id: "c3".into(),
        fields: None,
        updated_at: None,
        deleted: true,
    };
    ctx.push("company", vec![record("c1", &renamed), tombstone])
        .await;
    let run = ctx.run().await.run.unwrap();
    let company = table(&run, "company");
    assert_eq!(
        (
            company.received,
            company.inserted,
            company.updated,
            company.deleted
        ),
        (2, 0, 1, 1)
    );
    assert_eq!(ctx.crm_companies().await, ["c1", "c2"]);
    let tenant = erpsync::domain::tenant::TenantId::parse("acme").unwrap();
    let c1 = crm::companies(&ctx.app.state.db, &tenant, "", 1)
        .await
        .unwrap();
    assert_eq!(c1[0].name, "Renamed");
}

async fn the_delete_guard_holds_a_mass_deletion(app: TestApp) {
    let mut ctx = setup(app).await;
    ctx.push("company", companies(0..200)).await;
    ctx.run().await;
    // A small drop (3 of 200) is applied.
    ctx.push("company", (0..3).map(tombstone).collect()).await;
    let run = ctx.run().await.run.unwrap();
    assert_eq!(run.status(), pb::RunStatus::Success);
    assert_eq!(table(&run, "company").deleted, 3);
    assert_eq!(ctx.crm_companies().await.len(), 197);

    // A snapshot that drops 60 % at once: held, run PARTIAL, alert open, nothing deleted.
    ctx.push("company", (3..123).map(tombstone).collect()).await;
    let got = ctx.run().await;
    let run = got.run.unwrap();
    assert_eq!(run.status(), pb::RunStatus::Partial);
    let company = table(&run, "company");
    assert_eq!((company.held, company.deleted), (120, 0));
    assert_eq!(ctx.crm_companies().await.len(), 197, "nothing deleted");
    assert!(got
        .log
        .iter()
        .any(|e| e.level() == pb::LogLevel::Warn && e.message.starts_with("120 deletions held")));
    let overview = ctx
        .history
        .get_overview(authed(
            GetOverviewRequest {
                tenant_id: "acme".into(),
            },
            &ctx.crm,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(overview
        .open_alerts
        .iter()
        .any(|a| a.kind() == pb::AlertKind::DeletesHeld));

    // Listed with what the CRM has, page by page.
    let list = |token: String| pb::ListPendingDeletesRequest {
        tenant_id: "acme".into(),
        table: "company".into(),
        page_size: 100,
        page_token: token,
        ..Default::default()
    };
    let first = ctx
        .history
        .list_pending_deletes(authed(list(String::new()), &ctx.crm))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.pending_deletes.len(), 100);
    assert_eq!(first.pending_deletes[0].external_id, "c003");
    assert_eq!(first.pending_deletes[0].name, "ACME Ltda");
    assert_eq!(first.pending_deletes[0].document, "11222333000181");
    assert_eq!(first.pending_deletes[0].detected_run_id, run.run_id);
    let second = ctx
        .history
        .list_pending_deletes(authed(list(first.next_page_token), &ctx.crm))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.pending_deletes.len(), 20);

    // Held ones stay held by the next run until someone decides.
    let run = ctx.run().await.run.unwrap();
    assert_eq!(run.status(), pb::RunStatus::Partial);
    assert_eq!(ctx.crm_companies().await.len(), 197);

    // Approve ten: the next run applies them; the rest stay held.
    let resolve =
        |ids: Vec<String>, all: bool, action: pb::ResolveAction| pb::ResolvePendingDeletesRequest {
            tenant_id: "acme".into(),
            table: "company".into(),
            ids,
            all,
            action: action as i32,
        };
    let ten: Vec<String> = (3..13).map(|i| format!("c{i:03}")).collect();
    let r = ctx
        .history
        .resolve_pending_deletes(authed(
            resolve(ten, false, pb::ResolveAction::Approve),
            &ctx.crm,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.resolved, 10);
    let run = ctx.run().await.run.unwrap();
    let company = table(&run, "company");
    assert_eq!((company.deleted, company.held), (10, 110));
    assert_eq!(ctx.crm_companies().await.len(), 187);
    let listed = ctx
        .history
        .list_pending_deletes(authed(list(String::new()), &ctx.crm))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed.pending_deletes.len(),
        100,
        "applied ones are no longer pending"
    );
    assert!(listed.pending_deletes.iter().all(|p| p.state == "HELD"));

    // Discard the rest: the records are restored in staging, nothing more is deleted.
    let r = ctx
        .history
        .resolve_pending_deletes(authed(
            resolve(vec![], true, pb::ResolveAction::Discard),
            &ctx.crm,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.resolved, 110);
    assert!(
        !ctx.overview()
            .await
            .open_alerts
            .iter()
            .any(|a| a.kind() == pb::AlertKind::DeletesHeld),
        "nothing is held any more: the alert closed with the last decision"
    );
    let tenant = erpsync::domain::tenant::TenantId::parse("acme").unwrap();
    let staged = erpsync::storage::staging::list(&ctx.app.state.db, &tenant, "company")
        .await
        .unwrap();
    let c050 = staged.iter().find(|r| r.external_id == "c050").unwrap();
    assert!(!c050.deleted, "restored");
    assert_eq!(c050.fields["name"], "ACME Ltda");
    let run = ctx.run().await.run.unwrap();
    assert_eq!(run.status(), pb::RunStatus::Success);
    assert!(
        run.tables.iter().all(|t| t.received == 0 && t.deleted == 0),
        "nothing left to deliver: {:?}",
        run.tables
    );
    assert_eq!(ctx.crm_companies().await.len(), 187);
    let overview = ctx
        .history
        .get_overview(authed(
            GetOverviewRequest {
                tenant_id: "acme".into(),
            },
            &ctx.crm,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(
        overview.open_alerts.is_empty(),
        "{:?}",
        overview.open_alerts
    );

    // Bad requests.
    let err = ctx
        .history
        .resolve_pending_deletes(authed(
            resolve(vec!["c999".into()], false, pb::ResolveAction::Approve),
            &ctx.crm,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = ctx
        .history
        .resolve_pending_deletes(authed(
            resolve(vec![], true, pb::ResolveAction::Unspecified),
            &ctx.crm,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let mut bad = list(String::new());
    bad.table = "order".into();
    let err = ctx
        .history
        .list_pending_deletes(authed(bad, &ctx.crm))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
}

async fn a_tenant_runs_once_at_a_time(app: TestApp) {
    let mut ctx = setup(app).await;
    let tenant = erpsync::domain::tenant::TenantId::parse("acme").unwrap();
    // Another replica holds the lease for its run.
    let running = held_run(
        &ctx,
        RunTrigger::Schedule,
        "other-replica",
        Utc::now(),
        Utc::now(),
    )
    .await;
    let answer = ctx
        .history
        .trigger_sync(authed(
            TriggerSyncRequest {
                tenant_id: "acme".into(),
            },
            &ctx.crm,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(answer.already_running);
    assert_eq!(answer.run.unwrap().run_id, running.id);
    // Its lease gone, the tenant runs again, and the orphan is marked INTERRUPTED.
    lease::release(&ctx.app.state.db, &tenant, &running.id)
        .await
        .unwrap();
    let run = ctx.run().await.run.unwrap();
    assert_eq!(run.status(), pb::RunStatus::Success);
    let orphan = runs::get(&ctx.app.state.db, &tenant, &running.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(orphan.summary.status, RunStatus::Interrupted);

    // A run that recorded its end but has not yet released its lease does not block.
    let ended = held_run(
        &ctx,
        RunTrigger::Manual,
        "other-replica",
        Utc::now(),
        Utc::now(),
    )
    .await;
    let detail = erpsync::domain::run::RunDetail {
        summary: RunSummary {
            status: RunStatus::Success,
            finished_at: Some(Utc::now()),
            ..ended
        },
        tables: vec![],
        stages: vec![],
        current: None,
    };
    runs::finish(&ctx.app.state.db, &detail).await.unwrap();
    let run = ctx.run().await.run.unwrap();
    assert_eq!(run.status(), pb::RunStatus::Success);
}

async fn runs_are_listed_newest_first_by_page_and_status(app: TestApp) {
    let mut ctx = setup(app).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(ctx.run().await.run.unwrap().run_id);
    }
    ids.reverse();
    let list = |page_token: String, status: i32| ListRunsRequest {
        tenant_id: "acme".into(),
        page_size: 2,
        page_token,
        status,
    };
    let first = ctx
        .history
        .list_runs(authed(list(String::new(), 0), &ctx.crm))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        first
            .runs
            .iter()
            .map(|r| r.run_id.clone())
            .collect::<Vec<_>>(),
        ids[..2]
    );
    assert!(!first.next_page_token.is_empty());
    let second = ctx
        .history
        .list_runs(authed(list(first.next_page_token, 0), &ctx.crm))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        second
            .runs
            .iter()
            .map(|r| r.run_id.clone())
            .collect::<Vec<_>>(),
        ids[2..]
    );
    assert_eq!(second.next_page_token, "");
    let failed = ctx
        .history
        .list_runs(authed(
            list(String::new(), pb::RunStatus::Failed as i32),
            &ctx.crm,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(failed.runs.is_empty());
    let err = ctx
        .history
        .list_runs(authed(list("garbage".into(), 0), &ctx.crm))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = ctx
        .history
        .get_run(authed(
            GetRunRequest {
                tenant_id: "acme".into(),
                run_id: "nope".into(),
            },
            &ctx.crm,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
}

async fn a_run_left_running_by_a_dead_process_is_interrupted(app: TestApp) {
    let mut ctx = setup(app).await;
    let tenant = erpsync::domain::tenant::TenantId::parse("acme").unwrap();
    ctx.push("company", vec![record("c1", &valid_fields("company"))])
        .await;
    // A process died mid-run: its run is RUNNING and its lease has expired.
    let dead = held_run(
        &ctx,
        RunTrigger::Schedule,
        "dead",
        Utc::now() - chrono::Duration::minutes(5),
        Utc::now() - chrono::Duration::minutes(5),
    )
    .await;
    let run = ctx.run().await.run.unwrap();
    assert_eq!(run.status(), pb::RunStatus::Success);
    assert_eq!(table(&run, "company").inserted, 1, "the work is redone");
    let dead = runs::get(&ctx.app.state.db, &tenant, &dead.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(dead.summary.status, RunStatus::Interrupted);
}

async fn the_scheduler_starts_a_due_run_once_per_slot(app: TestApp) {
    use erpsync::worker::scheduler::tick;
    let mut ctx = setup(app).await;
    ctx.app.create_tenant("idle").await;
    ctx.push("company", vec![record("c1", &valid_fields("company"))])
        .await;
    ctx.history
        .update_schedule(authed(
            pb::UpdateScheduleRequest {
                tenant_id: "acme".into(),
                schedule: Some(pb::Schedule {
                    daily_times: vec![],
                    cron: "* * * * *".into(),
                }),
                ..Default::default()
            },
            &ctx.crm,
        ))
        .await
        .unwrap();
    // One second past the start of the next minute: the cron's slot is due (the tenant's
    // due instant, stored when the schedule changed, is at most that minute).
    let now = chrono::DurationRound::duration_trunc(Utc::now(), chrono::Duration::minutes(1))
        .unwrap()
        + chrono::Duration::seconds(61);
    assert_eq!(
        tick(&ctx.app.state.worker, now).await.unwrap().started,
        1,
        "acme is due; idle is not scheduled"
    );
    // Ended before the next tick: a tick up to a minute ahead of the clock would take
    // the run's lease for expired.
    wait_idle(&mut ctx).await;
    assert_eq!(
        tick(&ctx.app.state.worker, now).await.unwrap().started,
        0,
        "a slot starts one run"
    );
    let runs = wait_idle(&mut ctx).await;
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].trigger(), pb::RunTrigger::Schedule);
    assert_eq!(runs[0].status(), pb::RunStatus::Success);
    assert_eq!(ctx.crm_companies().await, ["c1"]);
    // The next minute is the next slot.
    assert_eq!(
        tick(&ctx.app.state.worker, now + chrono::Duration::seconds(60))
            .await
            .unwrap()
            .started,
        1
    );
    assert_eq!(wait_idle(&mut ctx).await.len(), 2);
    // Switched off: no runs.
    ctx.history
        .update_schedule(authed(
            pb::UpdateScheduleRequest {
                tenant_id: "acme".into(),
                active: Some(false),
                ..Default::default()
            },
            &ctx.crm,
        ))
        .await
        .unwrap();
    assert_eq!(
        tick(&ctx.app.state.worker, now + chrono::Duration::seconds(120))
            .await
            .unwrap()
            .started,
        0
    );
}

async fn a_failing_crm_fails_the_run_keeps_staging_and_the_next_run_delivers_all(app: TestApp) {
    let backend = app.backend;
    drop(app);
    let down = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = down.clone();
    let app = crate::helpers::spawn_app_full(
        backend,
        |_| {},
        move |db| {
            std::sync::Arc::new(FlakySink {
                inner: erpsync::worker::sink::EmbeddedSink::new(db),
                down: flag,
            })
        },
    )
    .await
    .unwrap();
    let mut ctx = setup(app).await;
    ctx.push(
        "company",
        (1..=3)
            .map(|i| record(&format!("c{i}"), &valid_fields("company")))
            .collect(),
    )
    .await;
    let got = ctx.run().await;
    let run = got.run.unwrap();
    assert_eq!(run.status(), pb::RunStatus::Failed);
    assert!(
        run.errors[0].contains("CRM unavailable: connection refused"),
        "{:?}",
        run.errors
    );
    assert!(got
        .log
        .iter()
        .any(|e| e.level() == pb::LogLevel::Error
            && e.message.contains("push failed: CRM unavailable")));
    assert!(ctx.crm_companies().await.is_empty());
    let overview = |ctx: &mut Ctx| {
        let req = authed(
            GetOverviewRequest {
                tenant_id: "acme".into(),
            },
            &ctx.crm,
        );
        let mut h = ctx.history.clone();
        async move { h.get_overview(req).await.unwrap().into_inner() }
    };
    let o = overview(&mut ctx).await;
    assert_eq!(o.health(), pb::Health::Failing);
    assert_eq!(o.open_alerts.len(), 1);
    assert_eq!(o.open_alerts[0].kind(), pb::AlertKind::Failing);

    down.store(false, std::sync::atomic::Ordering::SeqCst);
    let run = ctx.run().await.run.unwrap();
    assert_eq!(run.status(), pb::RunStatus::Success);
    assert_eq!(
        table(&run, "company").inserted,
        3,
        "everything the failed run left is delivered"
    );
    assert_eq!(ctx.crm_companies().await, ["c1", "c2", "c3"]);
    let o = overview(&mut ctx).await;
    assert_eq!(o.health(), pb::Health::Healthy);
    assert!(o.open_alerts.is_empty(), "FAILING resolved by the success");
}

async fn a_tenant_without_success_in_its_window_is_stale_once(app: TestApp) {
    use erpsync::worker::scheduler::tick;
    let mut ctx = setup(app).await;
    ctx.history
        .update_schedule(authed(
            pb::UpdateScheduleRequest {
                tenant_id: "acme".into(),
                schedule: Some(pb::Schedule {
                    daily_times: vec!["03:00".into()],
                    cron: String::new(),
                }),
                max_time_without_success: Some(prost_types::Duration {
                    seconds: 3600,
                    nanos: 0,
                }),
                ..Default::default()
            },
            &ctx.crm,
        ))
        .await
        .unwrap();
    let mut later = Utc::now() + chrono::Duration::hours(2);
    // Keep clear of the 03:00 slot, so no run resolves the alert under the test's feet.
    let local = later.with_timezone(&chrono_tz::America::Sao_Paulo);
    if chrono::Timelike::hour(&local) == 3 && chrono::Timelike::minute(&local) == 0 {
        later += chrono::Duration::minutes(2);
    }
    // No slot due at `later` unless it is 03:00 in São Paulo; the staleness check runs anyway.
    tick(&ctx.app.state.worker, later).await.unwrap();
    tick(&ctx.app.state.worker, later).await.unwrap();
    let tenant = erpsync::domain::tenant::TenantId::parse("acme").unwrap();
    let open = erpsync::storage::alerts::open(&ctx.app.state.db, &tenant)
        .await
        .unwrap();
    let stale: Vec<_> = open
        .iter()
        .filter(|a| a.kind == erpsync::domain::alert::AlertKind::Stale)
        .collect();
    assert_eq!(stale.len(), 1, "raised once: {open:?}");
    assert!(
        stale[0].message.contains("limit 1 h"),
        "{}",
        stale[0].message
    );
    wait_idle(&mut ctx).await;
    let run = ctx.run().await.run.unwrap();
    assert_eq!(run.status(), pb::RunStatus::Success);
    let open = erpsync::storage::alerts::open(&ctx.app.state.db, &tenant)
        .await
        .unwrap();
    assert!(open.is_empty(), "resolved by the next success: {open:?}");
}

/// A server delivering to the host CrmSink at `url` in batches of 2, trying each batch
/// twice 10 ms apart.
async fn app_with_host_sink(backend: crate::helpers::Backend, url: String) -> TestApp {
    app_with_host_sink_and(backend, url, |_| {}).await
}

async fn the_host_crm_sink_receives_exactly_the_upserts_and_deletes(app: TestApp) {
    let backend = app.backend;
    drop(app);
    let (host, port) = start_host().await;
    let mut ctx =
        setup(app_with_host_sink(backend, format!("grpc://127.0.0.1:{port}")).await).await;
    let calls = || std::mem::take(&mut *host.calls.lock().unwrap());

    ctx.push(
        "company",
        (1..=3)
            .map(|i| record(&format!("c{i}"), &valid_fields("company")))
            .collect(),
    )
    .await;
    ctx.push("contact", vec![record("p1", &valid_fields("contact"))])
        .await;
    let run = ctx.run().await.run.unwrap();
    assert_eq!(run.status(), pb::RunStatus::Success, "{:?}", run.errors);
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        calls(),
        vec![
            ("UpsertCompanies".into(), "acme".into(), ids(&["c1", "c2"])),
            ("UpsertCompanies".into(), "acme".into(), ids(&["c3"])),
            ("UpsertContacts".into(), "acme".into(), ids(&["p1"])),
        ],
        "batches of 2, nothing else"
    );

    ctx.push(
        "company",
        vec![Record {
            external_id: "c2".into(),
            fields: None,
            updated_at: None,
            deleted: true,
        }],
    )
    .await;
    ctx.run().await;
    assert_eq!(
        calls(),
        vec![("DeleteCompanies".into(), "acme".into(), ids(&["c2"]))]
    );

    // The host answers errors: the run fails with a clear line; staging keeps c4 waiting.
    host.failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    ctx.push("company", vec![record("c4", &valid_fields("company"))])
        .await;
    let got = ctx.run().await;
    let run = got.run.unwrap();
    assert_eq!(run.status(), pb::RunStatus::Failed);
    assert!(
        run.errors[0].contains("UpsertCompanies of batch ")
            && run.errors[0]
                .contains("answered Unavailable: \"maintenance\" (gave up after 2 attempt(s) in"),
        "{:?}",
        run.errors
    );
    assert!(
        got.log.iter().any(|e| e.level() == pb::LogLevel::Warn
            && e.message
                .contains("answered Unavailable: \"maintenance\"; attempt 2 of 2 in 0 s")),
        "every retry is in the tenant's log: {:#?}",
        got.log
    );
    assert!(got
        .log
        .iter()
        .any(|e| e.level() == pb::LogLevel::Error && e.message.contains("maintenance")));
    let tenant = erpsync::domain::tenant::TenantId::parse("acme").unwrap();
    assert_eq!(
        erpsync::storage::staging::count_pending(&ctx.app.state.db, &tenant, "company", false)
            .await
            .unwrap(),
        1
    );

    // Back up: the next run delivers everything, once.
    host.failing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let run = ctx.run().await.run.unwrap();
    assert_eq!(run.status(), pb::RunStatus::Success);
    assert_eq!(
        calls(),
        vec![("UpsertCompanies".into(), "acme".into(), ids(&["c4"]))]
    );

    // A host that is not there at all: FAILED, with the reason.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut ctx =
        setup(app_with_host_sink(backend, format!("grpc://127.0.0.1:{dead_port}")).await).await;
    ctx.push("company", vec![record("c1", &valid_fields("company"))])
        .await;
    let run = ctx.run().await.run.unwrap();
    assert_eq!(run.status(), pb::RunStatus::Failed);
    assert!(run.errors[0].contains("Unavailable"), "{:?}", run.errors);
}

async fn runs_and_the_overview_reconcile_erp_counts_with_staged_and_crm(app: TestApp) {
    let mut ctx = setup(app).await;
    let report = |counts: &[(&str, u64)]| pb::ReportCountsRequest {
        tenant_id: "acme".into(),
        counts: counts.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect(),
    };
    let mut ingest = ctx.app.ingest().await;
    ingest
        .report_counts(authed(report(&[("company", 5), ("contact", 2)]), &ctx.erp))
        .await
        .unwrap();
    let err = ingest
        .report_counts(authed(report(&[]), &ctx.erp))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = ingest
        .report_counts(authed(report(&[("companies", 1)]), &ctx.erp))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(
        err.message().contains("valid tables are company"),
        "{}",
        err.message()
    );
    let err = ingest
        .report_counts(authed(report(&[("company", 1)]), &ctx.crm))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    ctx.push(
        "company",
        (1..=3)
            .map(|i| record(&format!("c{i}"), &valid_fields("company")))
            .collect(),
    )
    .await;
    ctx.push(
        "contact",
        (1..=2)
            .map(|i| record(&format!("p{i}"), &valid_fields("contact")))
            .collect(),
    )
    .await;
    let got = ctx.run().await;
    let run = got.run.unwrap();
    let company = table(&run, "company");
    assert_eq!(
        (company.erp_count, company.staged_count, company.crm_count),
        (Some(5), 3, 3)
    );
    let contact = table(&run, "contact");
    assert_eq!(
        (contact.erp_count, contact.staged_count, contact.crm_count),
        (Some(2), 2, 2)
    );
    assert!(got
        .log
        .iter()
        .any(|e| e.level() == pb::LogLevel::Warn && e.message.contains("2 missing")));
    let o = ctx
        .history
        .get_overview(authed(
            GetOverviewRequest {
                tenant_id: "acme".into(),
            },
            &ctx.crm,
        ))
        .await
        .unwrap()
        .into_inner();
    let company = o.tables.iter().find(|t| t.table == "company").unwrap();
    assert_eq!(
        (company.erp_count, company.staged_count, company.crm_count),
        (Some(5), 3, 3)
    );
}

/// kill -9 during a run (a slow host CRM), start again: the run is INTERRUPTED, the next
/// run completes, and the host ends up with every record (at most the page in flight is
/// sent twice, which its idempotent upserts absorb).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_mid_way_is_interrupted_and_the_next_run_delivers_everything() {
    use crate::helpers::cli::{erpsync, issue_token, ok, serve_with};
    let dir = tempfile::tempdir().unwrap();
    let db = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("crash.db").display()
    );
    ok(erpsync(
        &db,
        &["tenant", "create", "--id", "acme", "--name", "ACME"],
    ));
    let crm = issue_token(&db, &["--role", "crm", "--tenant", "acme"]);
    let erp = issue_token(&db, &["--role", "erp", "--tenant", "acme"]);
    let (host, host_port) = start_host().await;
    host.delay_ms
        .store(300, std::sync::atomic::Ordering::SeqCst);
    let sink = format!("grpc://127.0.0.1:{host_port}");

    let (mut first, port) = serve_with(&db, &["--crm-sink", &sink]);
    let records: Vec<serde_json::Value> = (0..1500)
        .map(|i| json!({"external_id": format!("c{i:04}"), "fields": valid_fields("company")}))
        .collect();
    let body = json!({ "records": records }).to_string();
    let (status, _) =
        crate::helpers::http_post(port, "/erp/v1/company", Some(&erp), body.as_bytes()).await;
    assert_eq!(status, 200);
    let mut history = IntegrationHistoryClient::connect(format!("http://127.0.0.1:{port}"))
        .await
        .unwrap();
    let started = history
        .trigger_sync(authed(
            TriggerSyncRequest {
                tenant_id: "acme".into(),
            },
            &crm,
        ))
        .await
        .unwrap()
        .into_inner();
    let killed_run = started.run.unwrap().run_id;
    // Mid-run: the host has had a call, the run is far from done.
    host.wait_for_a_call().await;
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();

    host.delay_ms.store(0, std::sync::atomic::Ordering::SeqCst);
    let (mut second, port) = serve_with(&db, &["--crm-sink", &sink]);
    let mut history = IntegrationHistoryClient::connect(format!("http://127.0.0.1:{port}"))
        .await
        .unwrap();
    let get = |run_id: String| {
        authed(
            GetRunRequest {
                tenant_id: "acme".into(),
                run_id,
            },
            &crm,
        )
    };
    let killed = history
        .get_run(get(killed_run.clone()))
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    assert_eq!(killed.status(), pb::RunStatus::Interrupted);
    // Killed mid-push: the stages it had finished stay, with their outcomes.
    let finished: Vec<(&str, &str)> = killed
        .stages
        .iter()
        .map(|s| (s.stage.as_str(), s.outcome.as_str()))
        .collect();
    assert_eq!(
        finished[..],
        [
            ("collect", "ok: 1500 records"),
            (
                "validate",
                "ok: records were validated when staged; rejections are in the request log"
            ),
            ("delete_guard", "ok"),
        ],
        "{killed:?}"
    );

    let next = history
        .trigger_sync(authed(
            TriggerSyncRequest {
                tenant_id: "acme".into(),
            },
            &crm,
        ))
        .await
        .unwrap()
        .into_inner();
    // The dead run's lease is gone: this trigger starts a run, unless the scheduler's
    // first tick already started the dead run's retry, which is then the one followed.
    let next_run = next.run.unwrap();
    assert!(
        !next.already_running || next_run.trigger() == pb::RunTrigger::Retry,
        "{next_run:?}"
    );
    let run_id = next_run.run_id;
    let mut done = None;
    for _ in 0..400 {
        let run = history
            .get_run(get(run_id.clone()))
            .await
            .unwrap()
            .into_inner()
            .run
            .unwrap();
        if run.status() != pb::RunStatus::Running {
            done = Some(run);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let done = done.expect("the next run finishes");
    assert_eq!(done.status(), pb::RunStatus::Success, "{:?}", done.errors);

    let mut times: std::collections::BTreeMap<String, usize> = Default::default();
    for (_, _, ids) in host.calls.lock().unwrap().iter() {
        for id in ids {
            *times.entry(id.clone()).or_default() += 1;
        }
    }
    assert_eq!(times.len(), 1500, "every record reached the host");
    assert!(
        times.values().all(|n| *n <= 2),
        "only the page in flight is sent again"
    );
    second.kill().unwrap();
    second.wait().unwrap();
}

/// `erpsync sync-now` follows a run to its end; not on a terminal, its progress is plain
/// lines on stderr (stage, table, records done of the total), its log on stdout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_now_shows_the_runs_progress() {
    use crate::helpers::cli::{erpsync, issue_token, ok, serve_with};
    let dir = tempfile::tempdir().unwrap();
    let db = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("progress.db").display()
    );
    ok(erpsync(
        &db,
        &["tenant", "create", "--id", "acme", "--name", "ACME"],
    ));
    let issue = |role: &str| issue_token(&db, &["--role", role, "--tenant", "acme"]);
    let (crm, erp) = (issue("crm"), issue("erp"));
    let (host, host_port) = start_host().await;
    host.delay_ms
        .store(400, std::sync::atomic::Ordering::SeqCst);
    let sink = format!("grpc://127.0.0.1:{host_port}");
    let (mut server, port) = serve_with(&db, &["--crm-sink", &sink, "--sink-batch", "2"]);
    let records: Vec<serde_json::Value> = (0..6)
        .map(|i| json!({"external_id": format!("c{i}"), "fields": valid_fields("company")}))
        .collect();
    let body = json!({ "records": records }).to_string();
    let (status, _) =
        crate::helpers::http_post(port, "/erp/v1/company", Some(&erp), body.as_bytes()).await;
    assert_eq!(status, 200);
    let url = format!("http://127.0.0.1:{port}");
    let out = tokio::task::spawn_blocking(move || {
        erpsync(
            &db,
            &[
                "sync-now", "--tenant", "acme", "--server", &url, "--token", &crm,
            ],
        )
    })
    .await
    .unwrap();
    let progress = String::from_utf8_lossy(&out.stderr).into_owned();
    let log = ok(out);
    assert!(log.contains("status: SUCCESS"), "{log}");
    assert!(
        !log.contains("progress:"),
        "the log stays on stdout alone: {log}"
    );
    let pushing: Vec<&str> = progress
        .lines()
        .filter(|l| l.starts_with("progress: push [company] "))
        .collect();
    assert!(!pushing.is_empty(), "{progress}");
    assert!(pushing.iter().all(|l| l.ends_with("/6")), "{pushing:?}");
    server.kill().unwrap();
    server.wait().unwrap();
}

/// A shutdown whose drain ends at once (`--drain-secs 0`) with a run mid-page: the run
/// is handed over INTERRUPTED, and the page in flight stays unmarked for the next run.
async fn a_drain_that_ends_hands_the_run_over_with_the_page_in_flight_unmarked(app: TestApp) {
    let backend = app.backend;
    drop(app);
    let (host, host_port) = start_host().await;
    host.delay_ms
        .store(150, std::sync::atomic::Ordering::SeqCst);
    let mut ctx = setup(
        app_with_host_sink_and(backend, format!("grpc://127.0.0.1:{host_port}"), |c| {
            c.drain = Duration::ZERO;
        })
        .await,
    )
    .await;
    // 3 000 companies: 3 pages of 1 000, each 500 calls of 2 records (the test policy).
    ctx.push(
        "company",
        (0..3000)
            .map(|i| record(&format!("c{i:04}"), &valid_fields("company")))
            .collect(),
    )
    .await;
    let started = ctx
        .history
        .trigger_sync(authed(
            TriggerSyncRequest {
                tenant_id: "acme".into(),
            },
            &ctx.crm,
        ))
        .await
        .unwrap()
        .into_inner();
    let run_id = started.run.unwrap().run_id;
    for _ in 0..200 {
        if !host.calls.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ctx.app.stop();
    let tenant = erpsync::domain::tenant::TenantId::parse("acme").unwrap();
    let mut run = None;
    for _ in 0..400 {
        let r = runs::get(&ctx.app.state.db, &tenant, &run_id)
            .await
            .unwrap()
            .unwrap();
        if r.summary.status != RunStatus::Running {
            run = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let run = run.expect("the run stops within the shutdown grace period");
    assert_eq!(run.summary.status, RunStatus::Interrupted);
    let pending =
        erpsync::storage::staging::count_pending(&ctx.app.state.db, &tenant, "company", false)
            .await
            .unwrap();
    assert_eq!(
        pending, 3000,
        "the page in flight is not marked: the next run sends it again"
    );
    let log = erpsync::storage::events::for_run(&ctx.app.state.db, &tenant, &run_id)
        .await
        .unwrap();
    assert_eq!(
        run.summary.error.as_deref(),
        Some(erpsync::storage::runs::HANDED_OVER_CAUSE)
    );
    let last = &log.last().unwrap().message;
    assert!(
        last.starts_with("run finished: INTERRUPTED: the replica shut down"),
        "{last}"
    );
}

async fn delete_guard_thresholds_are_per_tenant_settings(app: TestApp) {
    let mut ctx = setup(app).await;
    let settings = |percent: Option<f64>, rows: Option<u64>| pb::UpdateSettingsRequest {
        tenant_id: "acme".into(),
        delete_guard_percent: percent,
        delete_guard_min_rows: rows,
        ..Default::default()
    };
    let o = ctx
        .history
        .update_settings(authed(settings(Some(50.0), Some(10)), &ctx.crm))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (o.delete_guard_percent, o.delete_guard_min_rows),
        (50.0, 10)
    );
    for bad in [
        settings(Some(0.0), None),
        settings(Some(101.0), None),
        settings(None, Some(0)),
    ] {
        let err = ctx
            .history
            .update_settings(authed(bad, &ctx.crm))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
    }
    ctx.push("company", companies(0..100)).await;
    ctx.run().await;
    // 40 % is within this tenant's 50 %: applied.
    ctx.push("company", (0..40).map(tombstone).collect()).await;
    let run = ctx.run().await.run.unwrap();
    assert_eq!(
        (run.status(), table(&run, "company").deleted),
        (pb::RunStatus::Success, 40)
    );
    // 40 of the 60 left is 67 %: held.
    ctx.push("company", (40..80).map(tombstone).collect()).await;
    let run = ctx.run().await.run.unwrap();
    assert_eq!(
        (run.status(), table(&run, "company").held),
        (pb::RunStatus::Partial, 40)
    );
}

/// The real scheduler loop (ticking every 200 ms here) fires a run at the tenant's next
/// cron slot, in its zone, with nothing but the clock to trigger it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_scheduler_fires_a_run_at_its_slot() {
    use erpsync::clock::{Clock, ManualClock};
    // The test's clock: it moves only when told to.
    let clock = std::sync::Arc::new(ManualClock::at_system_now());
    let app = crate::helpers::spawn_app_clocked(
        crate::helpers::Backend::Sqlite,
        |c| c.scheduler_tick = Duration::from_millis(20),
        clock.clone(),
    )
    .await
    .unwrap();
    let mut ctx = setup(app).await;
    ctx.push("company", vec![record("c1", &valid_fields("company"))])
        .await;
    // Every minute: the slot is at most a minute ahead (the current one if it is less
    // than 30 s old, which the scheduler still catches).
    ctx.history
        .update_schedule(authed(
            pb::UpdateScheduleRequest {
                tenant_id: "acme".into(),
                schedule: Some(pb::Schedule {
                    daily_times: vec![],
                    cron: "* * * * *".into(),
                }),
                timezone: Some("Asia/Kolkata".into()),
                ..Default::default()
            },
            &ctx.crm,
        ))
        .await
        .unwrap();
    // One second past the start of the next minute: its slot is due, and the scheduler's
    // next tick (every 20 ms, in the background) starts it.
    let next_minute =
        chrono::DurationRound::duration_trunc(clock.now(), chrono::Duration::minutes(1)).unwrap()
            + chrono::Duration::seconds(61);
    clock.set(next_minute);
    let mut fired = None;
    for _ in 0..400 {
        let runs = ctx
            .history
            .list_runs(authed(
                ListRunsRequest {
                    tenant_id: "acme".into(),
                    page_size: 10,
                    ..Default::default()
                },
                &ctx.crm,
            ))
            .await
            .unwrap()
            .into_inner()
            .runs;
        if let Some(r) = runs
            .into_iter()
            .find(|r| r.status() == pb::RunStatus::Success)
        {
            fired = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let run = fired.expect("a scheduled run within 10 s of its slot");
    assert_eq!(run.trigger(), pb::RunTrigger::Schedule);
    assert_eq!(ctx.crm_companies().await, ["c1"]);
}
