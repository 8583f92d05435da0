//! The scheduler's due index (`tenant_due`): every tenant's next due instant is stored
//! and kept right when its schedule, timezone, flags or runs change; a tick reads only
//! the tenants due, and two replicas ticking at once start each due tenant exactly once.
//! Ticks take explicit instants: nothing waits on the wall clock.

use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, DurationRound, Timelike, Utc};
use erpsync::domain::run::{RunDetail, RunStatus, RunSummary, RunTrigger};
use erpsync::domain::schedule::Schedule;
use erpsync::domain::tenant::{Tenant, TenantId};
use erpsync::domain::token::Role;
use erpsync::grpc::pb;
use erpsync::storage::{due, lease, runs, stored_now, tenants, Db};
use erpsync::worker::scheduler::tick;
use erpsync::worker::RunWorker;

use crate::both_backends;
use crate::helpers::{authed, TestApp};

both_backends!(
    a_schedule_change_moves_the_due_instant,
    a_timezone_change_moves_the_due_instant,
    a_failed_run_is_due_for_its_retry_after_its_backoff,
    a_run_left_by_a_dead_replica_is_interrupted_and_retried_in_one_tick,
    a_tick_reads_only_the_due_tenants,
    two_replicas_ticking_at_once_start_each_due_tenant_exactly_once,
);

/// The instant, to the minute.
fn minute(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(Duration::minutes(1)).unwrap()
}

/// "HH:MM" of `at` in UTC.
fn hh_mm(at: DateTime<Utc>) -> String {
    format!("{:02}:{:02}", at.hour(), at.minute())
}

async fn due_at(app: &TestApp, tenant: &TenantId) -> Option<DateTime<Utc>> {
    due::get(&app.state.db, tenant).await.unwrap().unwrap().0
}

/// UpdateSchedule over gRPC, as the host calls it.
async fn update_schedule(app: &TestApp, token: &str, request: pb::UpdateScheduleRequest) {
    app.history()
        .await
        .update_schedule(authed(request, token))
        .await
        .unwrap();
}

fn daily(at: DateTime<Utc>) -> Option<pb::Schedule> {
    Some(pb::Schedule {
        daily_times: vec![hh_mm(at)],
        cron: String::new(),
    })
}

/// Waits until none of `tenants`' runs is RUNNING; returns each one's runs, newest first.
async fn settled(db: &Db, tenants: &[TenantId]) -> Vec<Vec<RunSummary>> {
    for _ in 0..800 {
        let mut all = Vec::new();
        for t in tenants {
            all.push(runs::recent(db, t, 10).await.unwrap());
        }
        if all.iter().flatten().all(|r| r.status != RunStatus::Running) {
            return all;
        }
        tokio::time::sleep(StdDuration::from_millis(25)).await;
    }
    panic!("runs did not finish in 20 s");
}

/// A tenant scheduled in UTC by `schedule`, created at `now`.
fn scheduled(id: &str, schedule: Schedule, now: DateTime<Utc>) -> Tenant {
    let mut t = Tenant::new(TenantId::parse(id).unwrap(), id.into(), now);
    t.timezone = chrono_tz::UTC;
    t.scheduled = true;
    t.schedule = schedule;
    t
}

async fn a_schedule_change_moves_the_due_instant(app: TestApp) {
    let id = app.create_tenant("acme").await;
    assert_eq!(due_at(&app, &id).await, None, "not scheduled: never due");
    let token = app.token(Role::Crm, &[&id]).await;
    let now = Utc::now();
    let (in3h, in5h) = (
        minute(now + Duration::hours(3)),
        minute(now + Duration::hours(5)),
    );
    let request = |schedule, active| pb::UpdateScheduleRequest {
        tenant_id: "acme".into(),
        schedule,
        timezone: Some("UTC".into()),
        active,
        ..Default::default()
    };
    update_schedule(&app, &token, request(daily(in3h), None)).await;
    assert_eq!(due_at(&app, &id).await, Some(in3h));
    update_schedule(&app, &token, request(daily(in5h), None)).await;
    assert_eq!(
        due_at(&app, &id).await,
        Some(in5h),
        "moved with the schedule"
    );
    update_schedule(&app, &token, request(None, Some(false))).await;
    assert_eq!(due_at(&app, &id).await, None, "switched off: never due");
    update_schedule(&app, &token, request(None, Some(true))).await;
    assert_eq!(due_at(&app, &id).await, Some(in5h));
    let unscheduled = pb::UpdateScheduleRequest {
        scheduled: Some(false),
        ..request(None, None)
    };
    update_schedule(&app, &token, unscheduled).await;
    assert_eq!(due_at(&app, &id).await, None, "not scheduled any more");
}

async fn a_timezone_change_moves_the_due_instant(app: TestApp) {
    let id = app.create_tenant("acme").await;
    let token = app.token(Role::Crm, &[&id]).await;
    let in3h = minute(Utc::now() + Duration::hours(3));
    let request = |timezone: &str| pb::UpdateScheduleRequest {
        tenant_id: "acme".into(),
        schedule: daily(in3h),
        timezone: Some(timezone.into()),
        ..Default::default()
    };
    update_schedule(&app, &token, request("UTC")).await;
    assert_eq!(due_at(&app, &id).await, Some(in3h));
    // The same local time three hours behind UTC (no DST in Brazil since 2019).
    update_schedule(&app, &token, request("America/Sao_Paulo")).await;
    assert_eq!(due_at(&app, &id).await, Some(in3h + Duration::hours(3)));
    // Nine hours ahead: today's passed six hours ago, tomorrow's is next.
    update_schedule(&app, &token, request("Asia/Tokyo")).await;
    assert_eq!(due_at(&app, &id).await, Some(in3h + Duration::hours(15)));
}

async fn a_failed_run_is_due_for_its_retry_after_its_backoff(app: TestApp) {
    let id = app.create_tenant("acme").await;
    let (db, worker) = (&app.state.db, &app.state.worker);
    let started = stored_now();
    let ended = started + Duration::seconds(2);
    let run = RunSummary {
        id: uuid::Uuid::new_v4().to_string(),
        status: RunStatus::Running,
        trigger: RunTrigger::Manual,
        started_at: started,
        finished_at: None,
        error: None,
    };
    runs::start(db, &id, "elsewhere", &run, worker.run_lease(), started)
        .await
        .unwrap()
        .unwrap();
    let failed = RunDetail {
        summary: RunSummary {
            status: RunStatus::Failed,
            finished_at: Some(ended),
            error: Some("the CRM is down".into()),
            ..run.clone()
        },
        tables: vec![],
        stages: vec![],
        current: None,
    };
    runs::finish(db, &failed).await.unwrap();
    lease::release(db, &id, &run.id).await.unwrap();
    // What the run's own end does (sync::execute).
    erpsync::worker::due::after_run(worker, &id, ended)
        .await
        .unwrap();
    let backoff = Duration::from_std(worker.retries().backoff).unwrap();
    let retry = ended + backoff;
    assert_eq!(
        due_at(&app, &id).await,
        Some(retry),
        "due after the backoff"
    );
    let early = tick(worker, retry - Duration::seconds(1)).await.unwrap();
    assert_eq!((early.looked, early.started), (0, 0), "not read before");
    let on_time = tick(worker, retry).await.unwrap();
    assert_eq!((on_time.looked, on_time.started), (1, 1));
    let runs = settled(db, std::slice::from_ref(&id)).await.remove(0);
    assert_eq!(
        (runs[0].trigger, runs[0].status),
        (RunTrigger::Retry, RunStatus::Success)
    );
    assert_eq!(due_at(&app, &id).await, None, "retried well: nothing due");
    assert_eq!(tick(worker, retry).await.unwrap().looked, 0);
}

async fn a_run_left_by_a_dead_replica_is_interrupted_and_retried_in_one_tick(app: TestApp) {
    let id = app.create_tenant("acme").await;
    let (db, worker) = (&app.state.db, &app.state.worker);
    // A replica started it two lease lifetimes ago and died without renewing it.
    let ago = stored_now() - worker.run_lease() * 2;
    let run = RunSummary {
        id: uuid::Uuid::new_v4().to_string(),
        status: RunStatus::Running,
        trigger: RunTrigger::Schedule,
        started_at: ago,
        finished_at: None,
        error: None,
    };
    runs::start(db, &id, "dead-replica", &run, worker.run_lease(), ago)
        .await
        .unwrap()
        .unwrap();
    let now = Utc::now();
    let live = tick(worker, ago + worker.run_lease() - Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(live.interrupted, 0, "its lease is live");
    let s = tick(worker, now).await.unwrap();
    assert_eq!((s.interrupted, s.looked, s.started), (1, 1, 1));
    let runs = settled(db, std::slice::from_ref(&id)).await.remove(0);
    assert_eq!(
        (runs[0].trigger, runs[0].status),
        (RunTrigger::Retry, RunStatus::Success)
    );
    assert_eq!(
        (runs[1].id.as_str(), runs[1].status),
        (run.id.as_str(), RunStatus::Interrupted)
    );
}

async fn a_tick_reads_only_the_due_tenants(app: TestApp) {
    let (db, worker) = (&app.state.db, &app.state.worker);
    let now = Utc::now();
    let later = Schedule::daily(vec![erpsync::domain::schedule::DailyTime::new(
        (now + Duration::hours(12)).hour(),
        0,
    )
    .unwrap()])
    .unwrap();
    // 2 000 tenants with nothing due: half scheduled in twelve hours, half not scheduled.
    for i in 0..2_000 {
        let mut t = scheduled(&format!("idle-{i:04}"), later.clone(), now);
        t.scheduled = i % 2 == 0;
        tenants::insert(db, &t).await.unwrap();
    }
    let every_minute = Schedule::cron("* * * * *").unwrap();
    let mut due_ones = Vec::new();
    for i in 0..3 {
        let t = scheduled(&format!("due-{i}"), every_minute.clone(), now);
        tenants::insert(db, &t).await.unwrap();
        due_ones.push(t.id);
    }
    let at = minute(now) + Duration::seconds(61);
    let s = tick(worker, at).await.unwrap();
    assert_eq!((s.looked, s.started), (3, 3), "only the due ones were read");
    for runs in settled(db, &due_ones).await {
        assert_eq!(runs.len(), 1);
    }
    let again = tick(worker, at).await.unwrap();
    assert_eq!(
        (again.looked, again.started),
        (0, 0),
        "nothing due any more"
    );
}

/// A second replica on the same database: its own pool, instance id and runs.
async fn replica(app: &TestApp) -> RunWorker {
    let db = Db::connect(app.database_url()).await.unwrap();
    let views = erpsync::viewdb::ViewAccess::new(
        crate::helpers::test_view_sources(),
        None,
        app.database_url(),
        db.instance_id().await.unwrap(),
    )
    .unwrap();
    RunWorker::new(erpsync::worker::Parts::with_defaults(
        db.clone(),
        std::sync::Arc::new(erpsync::worker::sink::EmbeddedSink::new(db)),
        views,
        erpsync::ingest::Limits::default(),
    ))
}

async fn two_replicas_ticking_at_once_start_each_due_tenant_exactly_once(app: TestApp) {
    let (db, a) = (&app.state.db, &app.state.worker);
    let b = replica(&app).await;
    let now = Utc::now();
    let every_minute = Schedule::cron("* * * * *").unwrap();
    let mut ids = Vec::new();
    for i in 0..20 {
        let t = scheduled(&format!("t{i:02}"), every_minute.clone(), now);
        tenants::insert(db, &t).await.unwrap();
        ids.push(t.id);
    }
    let at = minute(now) + Duration::seconds(61);
    let (sa, sb) = tokio::join!(tick(a, at), tick(&b, at));
    let (sa, sb) = (sa.unwrap(), sb.unwrap());
    assert_eq!(
        sa.looked + sb.looked,
        20,
        "each due tenant read by one replica"
    );
    assert_eq!(sa.started + sb.started, 20);
    for (id, runs) in ids.iter().zip(settled(db, &ids).await) {
        assert_eq!(runs.len(), 1, "{id}: {runs:?}");
        assert_eq!(runs[0].trigger, RunTrigger::Schedule);
        assert_eq!(runs[0].status, RunStatus::Success);
    }
    let (sa, sb) = tokio::join!(tick(a, at), tick(&b, at));
    assert_eq!(sa.unwrap().started + sb.unwrap().started, 0);
}
