//! The tenant's run lease: replicas sharing a PostgreSQL database take it one at a time,
//! even when two of them find it free at the same moment, and a run asked for while
//! something else holds it is answered for what holds it.

use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use erpsync::domain::tenant::TenantId;
use erpsync::storage::lease;
use sqlx::{Connection, PgConnection};

use erpsync::grpc::pb::TriggerSyncRequest;
use tonic::Code;

use crate::both_backends;
use crate::helpers::tenants::setup;
use crate::helpers::{authed, Backend, ScratchDb, TestApp, PG_ENV};

both_backends!(a_run_asked_for_while_an_abc_shift_is_resolved_is_refused_by_name);

/// ResolveAbcShift holds the tenant's lease under an id of its own, which names no run:
/// TriggerSync meanwhile is FAILED_PRECONDITION saying so (it was INTERNAL, "lease names
/// unknown run"), and works once the lease is given back.
async fn a_run_asked_for_while_an_abc_shift_is_resolved_is_refused_by_name(app: TestApp) {
    let ctx = setup(app).await;
    let tenant = TenantId::parse("acme").unwrap();
    let db = &ctx.app.state.db;
    let release = uuid::Uuid::new_v4().to_string();
    lease::acquire(
        db,
        &tenant,
        "other",
        &release,
        Duration::seconds(60),
        Utc::now(),
    )
    .await
    .unwrap()
    .unwrap();
    let trigger = || {
        let mut history = ctx.history.clone();
        let request = authed(
            TriggerSyncRequest {
                tenant_id: "acme".into(),
            },
            &ctx.crm,
        );
        async move { history.trigger_sync(request).await }
    };
    let refused = trigger().await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused.message().contains("ABC shift is being resolved"),
        "{}",
        refused.message()
    );
    lease::release(db, &tenant, &release).await.unwrap();
    let started = trigger().await.unwrap().into_inner();
    assert!(!started.already_running);
}

/// Replica A inserts the tenant's first lease and has not committed yet when replica B,
/// having read no lease, tries to take it: B waits for A, then finds A's lease and is
/// refused (it used to overwrite it, and both replicas ran the tenant).
#[tokio::test]
async fn two_replicas_taking_a_free_lease_at_once_get_one_lease_between_them() {
    let Some((scratch, db, tenant)) = ScratchDb::with_tenant(Backend::Postgres).await else {
        eprintln!("{PG_ENV} unset: PostgreSQL only (SQLite has one writer)");
        return;
    };

    let mut replica_a = PgConnection::connect(&scratch.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut replica_a).await.unwrap();
    sqlx::query(
        "INSERT INTO sync_lease (tenant_id, holder, run_id, expires_at) \
         VALUES ($1, 'replica-a', 'run-a', now() + interval '1 hour')",
    )
    .bind(tenant.as_str())
    .execute(&mut replica_a)
    .await
    .unwrap();

    let replica_b = {
        let (db, tenant) = (db.clone(), tenant.clone());
        tokio::spawn(async move {
            lease::acquire(
                &db,
                &tenant,
                "replica-b",
                "run-b",
                Duration::seconds(60),
                Utc::now(),
            )
            .await
        })
    };
    // B is waiting on A's row once PostgreSQL shows a session of this database waiting
    // for a lock.
    let mut watcher = PgConnection::connect(&scratch.url).await.unwrap();
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut watcher)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        assert!(
            !replica_b.is_finished(),
            "B did not wait for A's uncommitted lease"
        );
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
    sqlx::query("COMMIT").execute(&mut replica_a).await.unwrap();

    let b = replica_b.await.unwrap().unwrap();
    assert_eq!(
        b,
        Err("run-a".to_owned()),
        "B must be refused A's live lease"
    );
    let holder: String = sqlx::query_scalar("SELECT run_id FROM sync_lease WHERE tenant_id = $1")
        .bind(tenant.as_str())
        .fetch_one(&mut watcher)
        .await
        .unwrap();
    assert_eq!(holder, "run-a");
    // A's lease is renewed as A's, and B's run has none.
    assert!(
        lease::renew(&db, &tenant, "run-a", Utc::now() + Duration::hours(2))
            .await
            .unwrap()
    );
    assert!(
        !lease::renew(&db, &tenant, "run-b", Utc::now() + Duration::hours(2))
            .await
            .unwrap()
    );
}
