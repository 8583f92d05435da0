//! The request log's daily partitions (PostgreSQL) and retention over them: whole old days
//! dropped, the window kept, the tenants' usage counters exact; partitions made ahead by
//! two servers at once; rows of a day without a partition kept in the default one. On
//! SQLite the same retention runs as batched deletes and must give the same answers.

use chrono::{DateTime, Days, Duration, NaiveDate, TimeZone, Utc};
use erpsync::domain::request_log::{RequestLogEntry, Transport};
use erpsync::domain::tenant::TenantId;
use erpsync::storage::{log_partitions, request_log, Db};
use erpsync::tenants::Tenants;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};

use crate::helpers::tenants::new_tenant;
use crate::helpers::{Backend, ScratchDb};

crate::both_backends!(backend:
    retention_drops_whole_old_days_keeps_the_window_and_the_usage_exact,
    partitions_made_ahead_by_two_servers_at_once_are_made_once,
    a_row_of_a_day_without_partition_is_kept_and_moves_into_its_day_when_made,
    every_partition_is_indexed_by_id_and_by_tenant_and_time,
);

/// A logged request of `tenant` received at `at`, its body `size` bytes long.
fn entry(tenant: &TenantId, at: DateTime<Utc>, size: usize) -> RequestLogEntry {
    RequestLogEntry {
        id: uuid::Uuid::new_v4().to_string(),
        tenant: tenant.clone(),
        received_at: at,
        endpoint: "POST /erp/v1/company".into(),
        table: Some("company".into()),
        transport: Transport::Http,
        status: "OK".into(),
        http_status: 200,
        duration_ms: 7,
        accepted: 1,
        rejected: 0,
        warnings: 0,
        error: None,
        request_body: "x".repeat(size),
        request_truncated: false,
        response_body: r#"{"accepted":1,"rejected":[]}"#.into(),
    }
}

async fn raw(url: &str) -> DatabaseConnection {
    sea_orm::Database::connect(url).await.unwrap()
}

/// One integer column of the first row of `sql`.
async fn int(conn: &DatabaseConnection, sql: &str) -> i64 {
    let row = conn
        .query_one(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

/// The tenant's usage counters (rows, bytes) and what its stored rows really add up to.
async fn usage(conn: &DatabaseConnection, tenant: &str) -> ((i64, i64), (i64, i64)) {
    let counted = (
        int(
            conn,
            &format!("SELECT request_log_rows FROM tenant_usage WHERE tenant_id = '{tenant}'"),
        )
        .await,
        int(
            conn,
            &format!("SELECT request_log_bytes FROM tenant_usage WHERE tenant_id = '{tenant}'"),
        )
        .await,
    );
    let stored = (
        int(
            conn,
            &format!("SELECT count(*) FROM request_log WHERE tenant_id = '{tenant}'"),
        )
        .await,
        int(
            conn,
            &format!(
                "SELECT CAST(coalesce(sum(size_bytes), 0) AS BIGINT) FROM request_log \
                 WHERE tenant_id = '{tenant}'"
            ),
        )
        .await,
    );
    (counted, stored)
}

/// The partition holding request `id` (PostgreSQL).
async fn partition_of(conn: &DatabaseConnection, id: &str) -> String {
    let row = conn
        .query_one(Statement::from_string(
            conn.get_database_backend(),
            format!("SELECT CAST(tableoid::regclass AS TEXT) FROM request_log WHERE id = '{id}'"),
        ))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("request {id} is stored"));
    row.try_get_by_index::<String>(0).unwrap()
}

/// Every request of `tenant` from year 1900 to 2200.
async fn logged(db: &Db, tenant: &TenantId) -> Vec<RequestLogEntry> {
    request_log::list(
        db,
        tenant,
        Utc.with_ymd_and_hms(1900, 1, 1, 0, 0, 0).unwrap(),
        Utc.with_ymd_and_hms(2200, 1, 1, 0, 0, 0).unwrap(),
        10_000,
    )
    .await
    .unwrap()
}

fn ids(entries: &[RequestLogEntry]) -> std::collections::BTreeSet<String> {
    entries.iter().map(|e| e.id.clone()).collect()
}

async fn retention_drops_whole_old_days_keeps_the_window_and_the_usage_exact(backend: Backend) {
    let (scratch, db, acme) = ScratchDb::with_tenant(backend).await.unwrap();
    let beta = Tenants::new(db.clone(), None, erpsync::clock::system())
        .create(new_tenant("beta", "Beta"))
        .await
        .unwrap()
        .id;
    let conn = raw(&scratch.url).await;
    let now = Utc::now();
    let cutoff = now - Duration::days(30);
    // Whole days before the window, the two sides of the cutoff, days inside it, and the
    // far past and future (days without a partition: the default one).
    let instants = [
        now - Duration::days(45),
        now - Duration::days(40),
        now - Duration::days(31),
        cutoff - Duration::minutes(1),
        cutoff + Duration::minutes(1),
        now - Duration::days(29),
        now - Duration::days(1),
        now,
        Utc.with_ymd_and_hms(2001, 3, 4, 5, 6, 7).unwrap(),
        Utc.with_ymd_and_hms(2100, 3, 4, 5, 6, 7).unwrap(),
    ];
    for at in &instants[..8] {
        log_partitions::ensure_day(&db, at.date_naive())
            .await
            .unwrap();
    }
    let mut kept = Vec::new();
    let mut gone = Vec::new();
    for (i, at) in instants.iter().enumerate() {
        for (k, tenant) in [&acme, &beta, &acme].into_iter().enumerate() {
            let e = entry(tenant, *at, 100 + 37 * i + 11 * k);
            request_log::insert_alone(&db, &e).await.unwrap();
            if *at < cutoff {
                gone.push(e.id);
            } else {
                kept.push(e.id);
            }
        }
    }
    if matches!(backend, Backend::Postgres) {
        let far_past = &gone[gone.len() - 3];
        assert_eq!(partition_of(&conn, far_past).await, "request_log_default");
        assert_eq!(
            partition_of(&conn, kept.last().unwrap()).await,
            "request_log_default"
        );
        assert_eq!(
            partition_of(&conn, &kept[0]).await,
            log_partitions::partition_name((cutoff + Duration::minutes(1)).date_naive())
        );
    }

    let (_tx, rx) = tokio::sync::watch::channel(false);
    let removed = erpsync::worker::retention::purge_at(&db, now, 30, &rx)
        .await
        .unwrap();
    assert_eq!(removed, gone.len() as u64);

    let left: std::collections::BTreeSet<String> = ids(&logged(&db, &acme).await)
        .union(&ids(&logged(&db, &beta).await))
        .cloned()
        .collect();
    assert_eq!(left, kept.iter().cloned().collect());
    for tenant in ["acme", "beta"] {
        let (counted, stored) = usage(&conn, tenant).await;
        assert_eq!(counted, stored, "{tenant}'s counters match its rows");
    }
    let (acme_rows, _) = usage(&conn, "acme").await.1;
    assert_eq!(acme_rows, 2 * kept.len() as i64 / 3);

    if matches!(backend, Backend::Postgres) {
        let days = log_partitions::days(&db).await.unwrap();
        for old in [45, 40, 31] {
            let day = (now - Duration::days(old)).date_naive();
            assert!(!days.contains(&day), "day {day} dropped: {days:?}");
        }
        assert!(
            days.contains(&cutoff.date_naive()),
            "the cutoff's day stays"
        );
        assert!(days.contains(&now.date_naive()));
        let leftovers = int(
            &conn,
            "SELECT count(*) FROM pg_class WHERE relkind = 'r' AND NOT relispartition \
             AND relname LIKE 'request\\_log\\_p%'",
        )
        .await;
        assert_eq!(leftovers, 0, "no detached day table is left behind");
    }

    // Nothing more to remove: a second pass changes nothing.
    let again = erpsync::worker::retention::purge_at(&db, now, 30, &rx)
        .await
        .unwrap();
    assert_eq!(again, 0);
    let (counted, stored) = usage(&conn, "acme").await;
    assert_eq!(counted, stored);
}

async fn partitions_made_ahead_by_two_servers_at_once_are_made_once(backend: Backend) {
    let (scratch, a, _) = ScratchDb::with_tenant(backend).await.unwrap();
    let b = Db::connect(&scratch.url).await.unwrap();
    // Days no partition covers yet: the migration made today and the three after it.
    let start = Utc::now()
        .date_naive()
        .checked_add_days(Days::new(20))
        .unwrap();
    let mut made = 0;
    for _ in 0..2 {
        let (x, y) = tokio::join!(
            log_partitions::ensure_ahead(&a, start),
            log_partitions::ensure_ahead(&b, start)
        );
        made += x.unwrap() + y.unwrap();
    }
    let days = log_partitions::days(&a).await.unwrap();
    if matches!(backend, Backend::Sqlite) {
        assert_eq!(made, 0);
        assert!(days.is_empty(), "SQLite has no partitions");
        return;
    }
    let wanted: Vec<NaiveDate> = (0..=log_partitions::AHEAD_DAYS)
        .map(|n| start.checked_add_days(Days::new(n)).unwrap())
        .collect();
    assert_eq!(
        made,
        wanted.len() as u32,
        "each day made by exactly one call"
    );
    for day in &wanted {
        assert!(days.contains(day), "{day} made: {days:?}");
    }
    // A day made by the other server is no error for a lone call either.
    assert!(!log_partitions::ensure_day(&a, start).await.unwrap());
}

async fn a_row_of_a_day_without_partition_is_kept_and_moves_into_its_day_when_made(
    backend: Backend,
) {
    let (scratch, db, acme) = ScratchDb::with_tenant(backend).await.unwrap();
    let conn = raw(&scratch.url).await;
    // To the microsecond, as both backends store it.
    let future = erpsync::clock::system().now() + Duration::days(400);
    let past = Utc.with_ymd_and_hms(1999, 12, 31, 23, 59, 59).unwrap();
    let (late, early) = (entry(&acme, future, 300), entry(&acme, past, 200));
    request_log::insert_alone(&db, &late).await.unwrap();
    request_log::insert_alone(&db, &early).await.unwrap();
    assert_eq!(
        ids(&logged(&db, &acme).await),
        ids(&[late.clone(), early.clone()])
    );
    let before = usage(&conn, "acme").await;
    assert_eq!(before.0, before.1);
    if matches!(backend, Backend::Postgres) {
        assert_eq!(partition_of(&conn, &late.id).await, "request_log_default");
        assert_eq!(partition_of(&conn, &early.id).await, "request_log_default");
    }

    let made = log_partitions::ensure_day(&db, future.date_naive())
        .await
        .unwrap();
    assert_eq!(made, matches!(backend, Backend::Postgres));
    if matches!(backend, Backend::Postgres) {
        assert_eq!(
            partition_of(&conn, &late.id).await,
            log_partitions::partition_name(future.date_naive()),
            "moved out of the default partition"
        );
    }
    let after = logged(&db, &acme).await;
    assert_eq!(ids(&after), ids(&[late.clone(), early]));
    let moved = after.iter().find(|e| e.id == late.id).unwrap();
    assert_eq!(moved.request_body, late.request_body);
    assert_eq!(moved.received_at, late.received_at);
    assert_eq!(
        usage(&conn, "acme").await,
        before,
        "moved, not counted twice"
    );
}

async fn every_partition_is_indexed_by_id_and_by_tenant_and_time(backend: Backend) {
    if matches!(backend, Backend::Sqlite) {
        return;
    }
    let (scratch, db, _) = ScratchDb::with_tenant(backend).await.unwrap();
    let conn = raw(&scratch.url).await;
    let later = Utc::now()
        .date_naive()
        .checked_add_days(Days::new(9))
        .unwrap();
    log_partitions::ensure_day(&db, later).await.unwrap();
    // Per partition: an index whose first column is id, one on (tenant_id, received_at).
    let unindexed = |lead: &str| {
        format!(
            "SELECT count(*) FROM pg_inherits i WHERE i.inhparent = CAST('request_log' AS regclass) \
             AND NOT EXISTS (SELECT 1 FROM pg_index x WHERE x.indrelid = i.inhrelid \
             AND pg_get_indexdef(x.indexrelid) LIKE '%({lead}%')"
        )
    };
    let partitions = int(
        &conn,
        "SELECT count(*) FROM pg_inherits WHERE inhparent = CAST('request_log' AS regclass)",
    )
    .await;
    assert!(
        partitions >= 6,
        "today, 3 ahead, day 9 and the default: {partitions}"
    );
    assert_eq!(int(&conn, &unindexed("id,")).await, 0);
    assert_eq!(int(&conn, &unindexed("tenant_id, received_at)")).await, 0);
}
