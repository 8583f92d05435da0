//! Retention of what grows with history (worker::retention::purge_history), driven by
//! an explicit `now`: rows older than the window go, what the page needs stays (the
//! newest runs, the last success, the report in force, the newest and held reports, each
//! company's latest category change), a tenant's override wins over the server's
//! default either way, the counters stay exact, two replicas purging at once delete each
//! row once; invalid overrides are refused over gRPC with nothing changed.

use chrono::{DateTime, Duration, Utc};
use erpsync::domain::alert::AlertKind;
use erpsync::domain::retention::Defaults;
use erpsync::domain::run::{
    RunDetail, RunStatus, RunSummary, RunTrigger, StageTiming, TableCounts,
};
use erpsync::domain::tenant::{SettingsInput, SettingsUpdate, Tenant, TenantId};
use erpsync::domain::token::Role;
use erpsync::grpc::pb::{GetOverviewRequest, UpdateSettingsRequest};
use erpsync::storage::{alerts, runs, tenants, usage, Db};
use erpsync::worker::retention::purge_history;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement, Value};
use tokio::sync::watch;
use tonic::Code;

use crate::both_backends;
use crate::helpers::{authed, spawn_app, Backend, ScratchDb};

both_backends!(backend:
    old_history_goes_and_what_the_page_needs_stays,
    a_tenants_override_wins_over_the_default_both_ways,
    two_replicas_purging_at_once_delete_each_row_once,
    a_job_told_to_stop_deletes_nothing_more,
    the_deleted_rows_are_counted_by_table_in_the_metrics,
    the_migration_counts_the_runs_and_alerts_already_stored,
    invalid_overrides_are_refused_and_change_nothing,
);

/// The instant every test's history is measured from.
fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-07T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn days_ago(days: i64) -> DateTime<Utc> {
    now() - Duration::days(days)
}

/// Raw statements on the test's own connection (`$n` placeholders, each used once and in
/// order: they become `?` on SQLite).
struct Sql {
    conn: DatabaseConnection,
}

impl Sql {
    async fn open(url: &str) -> Self {
        Self {
            conn: Database::connect(url).await.unwrap(),
        }
    }

    fn stmt(&self, sql: &str, values: Vec<Value>) -> Statement {
        let backend = self.conn.get_database_backend();
        let sql = if backend == DbBackend::Sqlite {
            let mut out = String::new();
            let mut chars = sql.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '$' {
                    while chars.peek().is_some_and(char::is_ascii_digit) {
                        chars.next();
                    }
                    out.push('?');
                } else {
                    out.push(c);
                }
            }
            out
        } else {
            sql.to_owned()
        };
        Statement::from_sql_and_values(backend, sql, values)
    }

    async fn exec(&self, sql: &str, values: Vec<Value>) {
        self.conn.execute(self.stmt(sql, values)).await.unwrap();
    }

    async fn count(&self, sql: &str, values: Vec<Value>) -> i64 {
        let row = self
            .conn
            .query_one(self.stmt(
                &format!("SELECT CAST(COUNT(*) AS BIGINT) AS n FROM {sql}"),
                values,
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get("", "n").unwrap()
    }

    async fn ids(&self, sql: &str, values: Vec<Value>) -> Vec<String> {
        let mut ids: Vec<String> = self
            .conn
            .query_all(self.stmt(sql, values))
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.try_get_by_index::<String>(0).unwrap())
            .collect();
        ids.sort();
        ids
    }

    /// A finished run of `tenant` started `days` ago, through storage (so its share is
    /// counted as the server counts it), with two stages, two tables and three events.
    async fn run(&self, db: &Db, tenant: &str, id: &str, status: RunStatus, days: i64) {
        let at = days_ago(days);
        let tenant_id = TenantId::parse(tenant).unwrap();
        let mut summary = RunSummary {
            id: id.to_owned(),
            status: RunStatus::Running,
            trigger: RunTrigger::Schedule,
            started_at: at,
            finished_at: None,
            error: None,
        };
        runs::create(db, &tenant_id, &summary).await.unwrap();
        summary.status = status;
        summary.finished_at = Some(at + Duration::seconds(1));
        summary.error = (status == RunStatus::Failed).then(|| "the ERP did not answer".to_owned());
        runs::finish(
            db,
            &RunDetail {
                summary,
                tables: ["company", "contact"]
                    .map(|t| TableCounts {
                        table: t.to_owned(),
                        received: 1,
                        inserted: 1,
                        staged_count: 1,
                        ..TableCounts::default()
                    })
                    .to_vec(),
                stages: ["collect", "finish"]
                    .map(|st| StageTiming {
                        stage: st.to_owned(),
                        duration_ms: 500,
                        outcome: "ok".to_owned(),
                    })
                    .to_vec(),
                current: None,
            },
        )
        .await
        .unwrap();
        for _ in 0..3 {
            self.event(tenant, Some(id), at).await;
        }
    }

    async fn event(&self, tenant: &str, run: Option<&str>, at: DateTime<Utc>) {
        self.exec(
            "INSERT INTO sync_event (tenant_id, run_id, at, level, stage, message, fields) \
             VALUES ($1, $2, $3, 'INFO', 'collect', 'm', '{}')",
            vec![tenant.into(), run.map(str::to_owned).into(), at.into()],
        )
        .await;
    }

    async fn report(&self, tenant: &str, run: &str, state: &str, days: i64) {
        self.exec(
            "INSERT INTO abc_report (run_id, tenant_id, computed_at, as_of, basis, window_from, window_to, \
             a_threshold, b_threshold, summary, curve, companies, changed, base, state) \
             VALUES ($1, $2, $3, '2026-01-01', 'invoice', '2025-01-01', '2026-01-01', '80', '95', '{}', '[]', 1, 0, 1, $4)",
            vec![run.into(), tenant.into(), days_ago(days).into(), state.into()],
        )
        .await;
    }

    async fn change(&self, tenant: &str, company: &str, days: i64) {
        self.exec(
            "INSERT INTO category_change (tenant_id, external_id, run_id, changed_on, changed_at, abc_from, abc_to) \
             VALUES ($1, $2, 'r', '2026-01-01', $3, 'B', 'A')",
            vec![tenant.into(), company.into(), days_ago(days).into()],
        )
        .await;
    }
}

async fn add_tenant(db: &Db, id: &str, runs: Option<u32>, abc: Option<u32>) -> TenantId {
    let id = TenantId::parse(id).unwrap();
    tenants::insert(db, &Tenant::new(id.clone(), id.to_string(), now()))
        .await
        .unwrap();
    let change = SettingsUpdate::parse(SettingsInput {
        run_history_days: runs,
        abc_history_days: abc,
        ..SettingsInput::default()
    })
    .unwrap();
    tenants::update(db, &id, |t| {
        change
            .apply(t, now())
            .map_err(erpsync::error::AppError::InvalidFields)
    })
    .await
    .unwrap();
    id
}

/// The seed the tests share, for `tenant`: 9 old runs and 1 old success beyond the
/// newest 30, 3 recent runs; 5 ABC reports, 6 category changes of 3 companies; tenant
/// events without a run, old and recent.
async fn seed(db: &Db, sql: &Sql, tenant: &str) {
    // Events are appended in time order: the old one without a run comes first.
    sql.event(tenant, None, days_ago(500)).await;
    sql.run(
        db,
        tenant,
        &format!("{tenant}-old-success"),
        RunStatus::Success,
        400,
    )
    .await;
    sql.run(
        db,
        tenant,
        &format!("{tenant}-last-success"),
        RunStatus::Partial,
        300,
    )
    .await;
    for i in 0..36 {
        sql.run(
            db,
            tenant,
            &format!("{tenant}-failed-{i:02}"),
            RunStatus::Failed,
            200 - i,
        )
        .await;
    }
    for i in (1..=3).rev() {
        sql.run(
            db,
            tenant,
            &format!("{tenant}-recent-{i}"),
            RunStatus::Failed,
            i,
        )
        .await;
    }
    sql.event(tenant, None, days_ago(1)).await;
    sql.report(tenant, &format!("{tenant}-rep-a"), "APPLIED", 600)
        .await;
    sql.report(tenant, &format!("{tenant}-rep-b"), "APPROVED", 500)
        .await;
    sql.report(tenant, &format!("{tenant}-rep-e"), "SUPERSEDED", 480)
        .await;
    sql.report(tenant, &format!("{tenant}-rep-c"), "HELD", 450)
        .await;
    sql.report(tenant, &format!("{tenant}-rep-d"), "DISCARDED", 420)
        .await;
    for days in [600, 500, 450] {
        sql.change(tenant, "x", days).await;
    }
    sql.change(tenant, "y", 500).await;
    sql.change(tenant, "y", 10).await;
    sql.change(tenant, "z", 700).await;
}

async fn purge(db: &Db, defaults: Defaults) -> erpsync::storage::retention::Deleted {
    let (_stop, stopped) = watch::channel(false);
    purge_history(db, defaults, now(), &stopped).await.unwrap()
}

async fn old_history_goes_and_what_the_page_needs_stays(backend: Backend) {
    let Some(scratch) = ScratchDb::create(backend).await else {
        return;
    };
    let db = Db::connect(&scratch.url).await.unwrap();
    db.migrate().await.unwrap();
    let sql = Sql::open(&scratch.url).await;
    let acme = add_tenant(&db, "acme", None, None).await;
    seed(&db, &sql, "acme").await;
    // Alerts opened and resolved are counted as they change.
    alerts::raise(
        &db,
        &acme,
        AlertKind::Stale,
        "no success for a day",
        None,
        days_ago(2),
    )
    .await
    .unwrap();
    alerts::raise(
        &db,
        &acme,
        AlertKind::Failing,
        "the run failed",
        Some("acme-recent-1"),
        days_ago(1),
    )
    .await
    .unwrap();
    alerts::resolve(&db, &acme, AlertKind::Stale, days_ago(1))
        .await
        .unwrap();
    // A run its server left RUNNING, marked INTERRUPTED: counted as it changes too.
    let crashed = RunSummary {
        id: "acme-crashed".into(),
        status: RunStatus::Running,
        trigger: RunTrigger::Manual,
        started_at: days_ago(250),
        finished_at: None,
        error: None,
    };
    runs::create(&db, &acme, &crashed).await.unwrap();
    assert_eq!(
        runs::mark_interrupted(&db, now(), now())
            .await
            .unwrap()
            .len(),
        1
    );
    let size_before = usage::tenant_db_size(&db, &acme).await.unwrap();
    assert_eq!(
        size_before,
        usage::tenant_db_size_measured(&db, &acme).await.unwrap()
    );

    let d = purge(&db, Defaults::default()).await;

    // Runs: the newest 30 (3 recent, 27 newest failed) and the last success stay; the 9
    // oldest failed, the older success and the interrupted one go, with their stages,
    // tables and events.
    assert_eq!(d.runs, 11, "{d:?}");
    assert_eq!(d.stages, 20);
    assert_eq!(d.tables, 20);
    assert_eq!(d.events, 31, "30 of the runs and the old one without a run");
    let runs = sql.ids("SELECT id FROM sync_run", vec![]).await;
    assert_eq!(runs.len(), 31);
    assert!(runs.contains(&"acme-last-success".to_owned()));
    assert!(!runs.contains(&"acme-old-success".to_owned()));
    assert!(
        runs.contains(&"acme-failed-35".to_owned()) && runs.contains(&"acme-failed-09".to_owned())
    );
    assert!(!runs.contains(&"acme-failed-08".to_owned()));
    assert_eq!(sql.count("run_stage", vec![]).await, 62);
    assert_eq!(sql.count("run_table", vec![]).await, 62);
    assert_eq!(
        sql.count("sync_event WHERE run_id IS NOT NULL", vec![])
            .await,
        93
    );
    assert_eq!(
        sql.count("sync_event WHERE run_id IS NULL", vec![]).await,
        1
    );

    // ABC: the one in force (B), the held one (C), the newest (D) stay.
    assert_eq!(d.reports, 2);
    let reports = sql.ids("SELECT run_id FROM abc_report", vec![]).await;
    assert_eq!(reports, ["acme-rep-b", "acme-rep-c", "acme-rep-d"]);
    // Category history: each company's latest change stays, however old.
    assert_eq!(d.category_changes, 3);
    assert_eq!(
        sql.count("category_change WHERE external_id = 'x'", vec![])
            .await,
        1
    );
    assert_eq!(
        sql.count(
            "category_change WHERE external_id = 'y' AND changed_at > $1",
            vec![days_ago(11).into()]
        )
        .await,
        1
    );
    assert_eq!(
        sql.count("category_change WHERE external_id = 'y'", vec![])
            .await,
        1
    );
    assert_eq!(
        sql.count("category_change WHERE external_id = 'z'", vec![])
            .await,
        1
    );

    // Counters: the runs' share went with them, exactly (the counters equal every row
    // measured now); the size shrank.
    let size_after = usage::tenant_db_size(&db, &acme).await.unwrap();
    assert!(size_after < size_before, "{size_after} < {size_before}");
    assert_eq!(
        size_after,
        usage::tenant_db_size_measured(&db, &acme).await.unwrap()
    );

    // The overview still has its run log, last success and last run's tables.
    let o = erpsync::overview::load(&db, &acme, now(), "embedded".into())
        .await
        .unwrap();
    assert_eq!(o.recent_runs.len(), 10);
    assert_eq!(o.recent_runs[0].id, "acme-recent-1");
    assert_eq!(
        o.last_success_at,
        Some(days_ago(300) + Duration::seconds(1))
    );
    assert_eq!(o.tables.len(), 2);

    // Idempotent: a second pass finds nothing.
    assert_eq!(purge(&db, Defaults::default()).await.total(), 0);
}

async fn a_tenants_override_wins_over_the_default_both_ways(backend: Backend) {
    let Some(scratch) = ScratchDb::create(backend).await else {
        return;
    };
    let db = Db::connect(&scratch.url).await.unwrap();
    db.migrate().await.unwrap();
    let sql = Sql::open(&scratch.url).await;
    // Keeps longer than the default: nothing of its goes.
    add_tenant(&db, "long", Some(3650), Some(3650)).await;
    seed(&db, &sql, "long").await;
    // Keeps shorter: its 40 runs of the last 40 days would all stay under the default.
    add_tenant(&db, "short", Some(7), Some(7)).await;
    for i in 0..40 {
        sql.run(
            &db,
            "short",
            &format!("short-{i:02}"),
            RunStatus::Success,
            40 - i,
        )
        .await;
    }
    sql.report("short", "short-rep-old", "APPLIED", 30).await;
    sql.report("short", "short-rep-new", "APPLIED", 20).await;

    let d = purge(&db, Defaults::default()).await;

    assert_eq!(
        sql.count("sync_run WHERE tenant_id = 'long'", vec![]).await,
        41
    );
    assert_eq!(
        sql.count("abc_report WHERE tenant_id = 'long'", vec![])
            .await,
        5
    );
    assert_eq!(
        sql.count("category_change WHERE tenant_id = 'long'", vec![])
            .await,
        6
    );
    // The newest 30 of "short" stay (started 1 to 30 days ago; the success among them).
    assert_eq!(d.runs, 10, "{d:?}");
    assert_eq!(
        sql.count("sync_run WHERE tenant_id = 'short'", vec![])
            .await,
        30
    );
    assert_eq!(d.reports, 1);
    assert_eq!(
        sql.ids(
            "SELECT run_id FROM abc_report WHERE tenant_id = 'short'",
            vec![]
        )
        .await,
        ["short-rep-new"]
    );

    // Back to the default (0): "long" now loses what the default window drops.
    tenants::update(&db, &TenantId::parse("long").unwrap(), |t| {
        SettingsUpdate::parse(SettingsInput {
            run_history_days: Some(0),
            abc_history_days: Some(0),
            ..SettingsInput::default()
        })
        .map_err(erpsync::error::AppError::InvalidFields)?
        .apply(t, now())
        .map_err(erpsync::error::AppError::InvalidFields)
    })
    .await
    .unwrap();
    let d = purge(&db, Defaults::default()).await;
    assert_eq!((d.runs, d.reports, d.category_changes), (10, 2, 3), "{d:?}");
}

async fn two_replicas_purging_at_once_delete_each_row_once(backend: Backend) {
    let Some(scratch) = ScratchDb::create(backend).await else {
        return;
    };
    let db = Db::connect(&scratch.url).await.unwrap();
    db.migrate().await.unwrap();
    let sql = Sql::open(&scratch.url).await;
    for t in ["t1", "t2", "t3"] {
        add_tenant(&db, t, None, None).await;
        seed(&db, &sql, t).await;
    }
    // A second replica has its own pool on PostgreSQL; on SQLite replicas are one process.
    let other = match backend {
        Backend::Postgres => Db::connect(&scratch.url).await.unwrap(),
        _ => db.clone(),
    };
    let (a, b) = tokio::join!(
        purge(&db, Defaults::default()),
        purge(&other, Defaults::default())
    );
    let mut both = a;
    both.add(b);
    assert_eq!(
        (
            both.runs,
            both.stages,
            both.tables,
            both.events,
            both.reports,
            both.category_changes
        ),
        (30, 60, 60, 93, 6, 9),
        "each row counted once: {a:?} + {b:?}"
    );
    assert_eq!(sql.count("sync_run", vec![]).await, 93);
    for t in ["t1", "t2", "t3"] {
        let t = TenantId::parse(t).unwrap();
        assert_eq!(
            usage::tenant_db_size(&db, &t).await.unwrap(),
            usage::tenant_db_size_measured(&db, &t).await.unwrap(),
            "no run taken off twice"
        );
    }
}

async fn a_job_told_to_stop_deletes_nothing_more(backend: Backend) {
    let Some(scratch) = ScratchDb::create(backend).await else {
        return;
    };
    let db = Db::connect(&scratch.url).await.unwrap();
    db.migrate().await.unwrap();
    let sql = Sql::open(&scratch.url).await;
    add_tenant(&db, "acme", None, None).await;
    seed(&db, &sql, "acme").await;
    let (stop, stopped) = watch::channel(false);
    stop.send_replace(true);
    let d = purge_history(&db, Defaults::default(), now(), &stopped)
        .await
        .unwrap();
    assert_eq!(d.total(), 0, "stopped before its first batch: {d:?}");
    assert_eq!(sql.count("sync_run", vec![]).await, 41);
}

async fn the_migration_counts_the_runs_and_alerts_already_stored(backend: Backend) {
    use migration::MigratorTrait;
    let Some(scratch) = ScratchDb::create(backend).await else {
        return;
    };
    let sql = Sql::open(&scratch.url).await;
    let before_mine = migration::Migrator::migrations()
        .iter()
        .position(|m| m.name() == "m20261207_000020_retention")
        .unwrap();
    migration::up(&sql.conn, Some(u32::try_from(before_mine).unwrap()))
        .await
        .unwrap();
    sql.exec(
        "INSERT INTO tenant (id, name, timezone, erp_name, erp_version, integration_type, deployment_status, \
         business_rule, active, scheduled, schedule_daily, max_without_success_secs, delete_guard_percent, \
         delete_guard_min_rows, abc_settings, created_at, updated_at) \
         VALUES ('acme', 'Acme', 'America/Sao_Paulo', '', '', 'API', 'NOT_STARTED', '', true, false, '00:00', \
         86400, 5, 50, '{}', $1, $2)",
        vec![now().into(), now().into()],
    )
    .await;
    for i in 0..3 {
        sql.exec(
            "INSERT INTO sync_run (id, tenant_id, status, \"trigger\", started_at, finished_at, duration_ms, error) \
             VALUES ($1, 'acme', 'FAILED', 'MANUAL', $2, $3, 5, 'the ERP did not answer')",
            vec![format!("run-{i}").into(), days_ago(i).into(), days_ago(i).into()],
        )
        .await;
    }
    sql.exec(
        "INSERT INTO alert (id, tenant_id, kind, message, run_id, opened_at) \
         VALUES ('a1', 'acme', 'FAILING', 'the run failed', 'run-0', $1)",
        vec![now().into()],
    )
    .await;
    let db = Db::connect(&scratch.url).await.unwrap();
    db.migrate().await.unwrap();
    let acme = TenantId::parse("acme").unwrap();
    let counted = usage::tenant_db_size(&db, &acme).await.unwrap();
    assert_eq!(
        counted,
        usage::tenant_db_size_measured(&db, &acme).await.unwrap()
    );
    assert!(counted > 300, "the runs and the alert are in it: {counted}");
}

/// The value of `series` in the server's `GET /metrics` (0 when absent).
async fn metric(port: u16, series: &str) -> f64 {
    crate::helpers::scrape(port)
        .await
        .1
        .get(series)
        .copied()
        .unwrap_or(0.0)
}

async fn the_deleted_rows_are_counted_by_table_in_the_metrics(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let acme = app.create_tenant("acme").await;
    let sql = Sql::open(app.database_url()).await;
    let db = &app.state.db;
    sql.run(db, acme.as_str(), "old", RunStatus::Success, 200)
        .await;
    for i in 1..=30 {
        sql.run(
            db,
            acme.as_str(),
            &format!("new-{i:02}"),
            RunStatus::Success,
            31 - i,
        )
        .await;
    }
    purge(db, Defaults::default()).await;
    assert_eq!(sql.count("sync_run WHERE id = 'old'", vec![]).await, 0);
    // The server's own pass at start may have deleted it first: either way it is counted.
    for (table, at_least) in [
        ("sync_run", 1.0),
        ("run_stage", 2.0),
        ("run_table", 2.0),
        ("sync_event", 3.0),
    ] {
        let series = format!("erpsync_retention_deleted_rows_total{{table=\"{table}\"}}");
        let n = metric(app.port, &series).await;
        assert!(n >= at_least, "{series} = {n}");
    }
}

async fn invalid_overrides_are_refused_and_change_nothing(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let acme = app.create_tenant("acme").await;
    let token = app.token(Role::Crm, &[&acme]).await;
    let mut client = app.history().await;
    let update = |r: UpdateSettingsRequest| authed(r, &token);
    for (field, days, bounds) in [
        ("run_history_days", 6, "from 7 to 3650 days, got 6"),
        ("abc_history_days", 3651, "from 7 to 3650 days, got 3651"),
    ] {
        let mut req = UpdateSettingsRequest {
            tenant_id: "acme".into(),
            name: Some("Renamed".into()),
            ..Default::default()
        };
        if field == "run_history_days" {
            req.run_history_days = Some(days);
        } else {
            req.abc_history_days = Some(days);
        }
        let err = client.update_settings(update(req)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(
            err.message().contains(field) && err.message().contains(bounds),
            "{}",
            err.message()
        );
    }
    let o = client
        .get_overview(authed(
            GetOverviewRequest {
                tenant_id: "acme".into(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(o.tenant_name, "Tenant acme", "nothing stored changed");
    assert_eq!((o.run_history_days, o.abc_history_days), (None, None));

    let o = client
        .update_settings(update(UpdateSettingsRequest {
            tenant_id: "acme".into(),
            run_history_days: Some(30),
            abc_history_days: Some(730),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (o.run_history_days, o.abc_history_days),
        (Some(30), Some(730))
    );
    let o = client
        .update_settings(update(UpdateSettingsRequest {
            tenant_id: "acme".into(),
            run_history_days: Some(0),
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (o.run_history_days, o.abc_history_days),
        (None, Some(730)),
        "0 goes back to the server's default, the other stays"
    );
}
