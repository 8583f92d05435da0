//! Scheduler benchmark (issue 25): one tick with 1 000 and with 50 000 tenants of which
//! 10 are due (their cron slot), and one with none due, on SQLite and, when
//! ERPSYNC_TEST_DATABASE_URL is set, on PostgreSQL. A tick reads only what
//! `tenant_due` says is due, so its time must not grow with the tenants that are not.
//! For reference, the time to read every tenant (what a tick did before) is measured
//! beside it.
//!
//! Run: `cargo bench --bench scheduler` (`-- --tenants N --rounds R` for one size).
//! Prints one JSON object per line; writes nothing else.

mod common;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, DurationRound, Timelike, Utc};
use erpsync::domain::run::RunStatus;
use erpsync::domain::schedule::{DailyTime, Schedule};
use erpsync::domain::tenant::{Tenant, TenantId};
use erpsync::storage::{runs, tenants, Db};
use erpsync::worker::scheduler::tick;
use sea_orm::ConnectionTrait;

/// Tenants due at each measured tick.
const DUE: usize = 10;

fn main() {
    common::unless_benchmarking();
    let sizes = match common::arg("--tenants", 0) {
        0 => vec![1_000, 50_000],
        n => vec![n],
    };
    let rounds = common::arg("--rounds", 5);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let admin = std::env::var("ERPSYNC_TEST_DATABASE_URL")
            .ok()
            .filter(|v| !v.is_empty());
        for &n in &sizes {
            let dir = tempfile::tempdir().unwrap();
            let url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("scheduler.db").display()
            );
            measure("sqlite", &url, n, rounds).await;
            if let Some(admin) = &admin {
                let name = format!("erpsync_bench_scheduler_{n}");
                let url = common::create_pg(admin, &name).await;
                measure("postgres", &url, n, rounds).await;
                common::drop_pg(admin, &name).await;
            }
        }
    });
}

fn median_ms(mut samples: Vec<StdDuration>) -> f64 {
    samples.sort();
    let ms = samples[samples.len() / 2].as_secs_f64() * 1000.0;
    (ms * 100.0).round() / 100.0
}

fn scheduled(id: &str, schedule: Schedule, now: DateTime<Utc>) -> Tenant {
    let mut t = Tenant::new(TenantId::parse(id).unwrap(), id.into(), now);
    t.timezone = chrono_tz::UTC;
    t.scheduled = true;
    t.schedule = schedule;
    t
}

async fn measure(backend: &str, url: &str, n: usize, rounds: usize) {
    let db = Db::connect(url).await.expect("database");
    db.migrate().await.expect("migrations");
    let now = Utc::now();
    // The idle tenants: scheduled twelve hours from now, copies of one template made in
    // one statement each (50 000 inserts one by one would take longer than the bench).
    let later = DailyTime::new((now + Duration::hours(12)).hour(), 0).unwrap();
    let template = scheduled("idle-0", Schedule::daily(vec![later]).unwrap(), now);
    tenants::insert(&db, &template).await.unwrap();
    let raw = sea_orm::Database::connect(url).await.unwrap();
    let columns = "name, timezone, erp_name, erp_version, integration_type, \
        deployment_status, business_rule, active, scheduled, schedule_daily, schedule_cron, \
        max_without_success_secs, delete_guard_percent, delete_guard_min_rows, abc_settings, \
        created_at, updated_at";
    let series = format!(
        "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {})",
        n - DUE - 1
    );
    raw.execute_unprepared(&format!(
        "{series} INSERT INTO tenant (id, {columns}) \
         SELECT 'idle-' || s.n, {columns} FROM s, tenant WHERE tenant.id = 'idle-0'"
    ))
    .await
    .unwrap();
    raw.execute_unprepared(&format!(
        "{series} INSERT INTO tenant_due (tenant_id, due_at, retry_at) \
         SELECT 'idle-' || s.n, d.due_at, NULL FROM s, tenant_due d WHERE d.tenant_id = 'idle-0'"
    ))
    .await
    .unwrap();
    let every_minute = Schedule::cron("* * * * *").unwrap();
    let mut due = Vec::new();
    for i in 0..DUE {
        let t = scheduled(&format!("due-{i}"), every_minute.clone(), now);
        tenants::insert(&db, &t).await.unwrap();
        due.push(t.id);
    }
    if backend == "postgres" {
        raw.execute_unprepared("ANALYZE").await.unwrap();
    }
    let worker = common::run_worker(&db, url).await;
    let first = now.duration_trunc(Duration::minutes(1)).unwrap() + Duration::seconds(61);
    let (mut busy, mut idle, mut looked, mut started) = (Vec::new(), Vec::new(), 0, 0);
    for round in 0..rounds {
        // Each round is a minute later: every due tenant has its next slot.
        let at = first + Duration::minutes(i64::try_from(round).unwrap());
        let t0 = Instant::now();
        let s = tick(&worker, at).await.unwrap();
        busy.push(t0.elapsed());
        (looked, started) = (looked + s.looked, started + s.started);
        settle(&db, &due).await;
        // Nothing is due at the same instant any more.
        let t0 = Instant::now();
        let s = tick(&worker, at).await.unwrap();
        idle.push(t0.elapsed());
        assert_eq!(s.looked, 0, "nothing is due after the look");
    }
    let mut list = Vec::new();
    for _ in 0..3 {
        let t0 = Instant::now();
        let all = tenants::list(&db).await.unwrap();
        list.push(t0.elapsed());
        assert_eq!(all.len(), n);
    }
    println!(
        "{}",
        serde_json::json!({
            "bench": "scheduler",
            "backend": backend,
            "tenants": n,
            "due_per_tick": DUE,
            "rounds": rounds,
            "looked_per_tick": looked as f64 / rounds as f64,
            "started_per_tick": started as f64 / rounds as f64,
            "tick_with_due_ms_p50": median_ms(busy),
            "tick_none_due_ms_p50": median_ms(idle),
            "read_all_tenants_ms_p50": median_ms(list),
        })
    );
}

/// Waits until the runs the tick started have ended.
async fn settle(db: &Db, due: &[TenantId]) {
    for _ in 0..2_000 {
        let mut running = false;
        for t in due {
            let newest = runs::recent(db, t, 1).await.unwrap();
            running |= newest.iter().any(|r| r.status == RunStatus::Running);
        }
        if !running {
            return;
        }
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
    panic!("the runs did not end");
}
