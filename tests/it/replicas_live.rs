//! Live feeds across replicas on one PostgreSQL database: a StreamLogs follower (or an
//! alert watcher) on replica B receives what replica A appends, in cursor order, with no
//! gap and no repeat, through LISTEN/NOTIFY alone — every server here polls once an hour
//! — also when B's listen connection is cut from outside, and while both replicas append
//! at once. PostgreSQL only: SQLite has one process per file and keeps its in-process
//! wake-up (tests/it/logs.rs).

use std::time::Duration;

use chrono::Utc;
use erpsync::domain::alert::AlertKind;
use erpsync::domain::run::Level;
use erpsync::domain::tenant::TenantId;
use erpsync::domain::token::Role;
use erpsync::grpc::pb::{self, admin_client::AdminClient, LogEvent, StreamLogsRequest};
use erpsync::logs::LogHub;
use erpsync::storage::alerts;
use erpsync::storage::events::NewEvent;
use sqlx::{Connection, PgConnection};
use tonic::transport::Channel;
use tonic::Streaming;

use crate::helpers::{authed, spawn_app_with, spawn_replica, Backend, TestApp, PG_ENV};

/// Longer than any test: what arrives came by a notification (or the catch-up after a
/// listener reconnected), never by the periodic read.
const NEVER: Duration = Duration::from_secs(3600);

/// How long a test waits for what it expects.
const WAIT: Duration = Duration::from_secs(30);

/// Replicas A and B on one fresh PostgreSQL database, both polling once an hour; None
/// (the test is skipped) without a test server.
async fn replicas() -> Option<(TestApp, TestApp)> {
    let Some(a) = spawn_app_with(Backend::Postgres, |c| c.feed_poll = NEVER).await else {
        eprintln!("{PG_ENV} unset: PostgreSQL-only test not run");
        return None;
    };
    let b = spawn_replica(&a, |_| {}).await;
    Some((a, b))
}

/// Appends an event of `run` the way a run does, through `logs` (a replica's hub).
async fn append(logs: &LogHub, tenant: &TenantId, run: &str, message: String) -> u64 {
    logs.append(
        NewEvent::new(tenant, Level::Info, "push", message).run(run),
        Utc::now(),
    )
    .await
    .expect("event written")
}

async fn follow(app: &TestApp, token: &str, tenant: &str) -> Streaming<LogEvent> {
    app.history()
        .await
        .stream_logs(authed(
            StreamLogsRequest {
                tenant_id: tenant.into(),
                follow: true,
                ..Default::default()
            },
            token,
        ))
        .await
        .expect("stream opens")
        .into_inner()
}

/// The next `n` events that are not heartbeats, each within [`WAIT`] (heartbeats do not
/// extend the wait).
async fn take(stream: &mut Streaming<LogEvent>, n: usize) -> Vec<LogEvent> {
    let mut out = Vec::with_capacity(n);
    let mut deadline = tokio::time::Instant::now() + WAIT;
    while out.len() < n {
        let got = tokio::time::timeout_at(deadline, stream.message())
            .await
            .unwrap_or_else(|_| panic!("event {} of {n} did not arrive", out.len() + 1))
            .expect("stream healthy")
            .expect("stream open");
        if !got.heartbeat {
            out.push(got);
            deadline = tokio::time::Instant::now() + WAIT;
        }
    }
    out
}

/// Every event of the tenant's log, from the database (a stream without `follow`).
async fn whole_log(app: &TestApp, token: &str, tenant: &str) -> Vec<LogEvent> {
    let mut s = app
        .history()
        .await
        .stream_logs(authed(
            StreamLogsRequest {
                tenant_id: tenant.into(),
                ..Default::default()
            },
            token,
        ))
        .await
        .expect("stream opens")
        .into_inner();
    let mut out = Vec::new();
    while let Some(e) = s.message().await.expect("backlog read") {
        out.push(e);
    }
    out
}

fn cursors(events: &[LogEvent]) -> Vec<u64> {
    events.iter().map(|e| e.cursor).collect()
}

fn messages(events: &[LogEvent]) -> Vec<String> {
    events.iter().map(|e| e.message.clone()).collect()
}

fn numbered(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("event {i}")).collect()
}

fn assert_increasing(events: &[LogEvent]) {
    for w in events.windows(2) {
        assert!(
            w[0].cursor < w[1].cursor,
            "cursors {} then {}",
            w[0].cursor,
            w[1].cursor
        );
    }
}

/// The pid of the backend named `application_name` other than `not`, once there is one.
async fn backend_pid(admin: &mut PgConnection, application_name: &str, not: i32) -> i32 {
    tokio::time::timeout(WAIT, async {
        loop {
            let pid: Option<i32> = sqlx::query_scalar(
                "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND pid <> $2",
            )
            .bind(application_name)
            .bind(not)
            .fetch_optional(&mut *admin)
            .await
            .expect("pg_stat_activity read");
            if let Some(pid) = pid {
                return pid;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no connection named {application_name:?}"))
}

/// B's LISTEN connection, by the name it gives itself.
fn listener_of(app: &TestApp) -> String {
    erpsync::app::listener_name(app.state.worker.instance())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_on_replica_b_receives_a_run_on_replica_a_live_also_when_its_listen_connection_drops(
) {
    let Some((a, b)) = replicas().await else {
        return;
    };
    let acme = a.create_tenant("acme").await;
    let token = a.token(Role::Crm, &[&acme]).await;
    let mut admin = PgConnection::connect(a.database_url()).await.unwrap();
    let listener = listener_of(&b);
    let pid = backend_pid(&mut admin, &listener, 0).await;
    let mut follower = follow(&b, &token, "acme").await;

    for i in 0..40 {
        append(&a.state.logs, &acme, "run-1", format!("event {i}")).await;
    }
    let mut got = take(&mut follower, 40).await;
    assert_eq!(messages(&got), numbered(0..40));

    // B's listen connection is cut from outside while A goes on writing: B listens again
    // and catches up by cursor.
    let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!(terminated, "B's listener was running");
    for i in 40..80 {
        append(&a.state.logs, &acme, "run-1", format!("event {i}")).await;
    }
    let again = backend_pid(&mut admin, &listener, pid).await;
    assert_ne!(again, pid);
    got.extend(take(&mut follower, 40).await);
    assert_eq!(messages(&got), numbered(0..80));

    // Live again on the new connection; nothing was repeated in between.
    for i in 80..90 {
        append(&a.state.logs, &acme, "run-1", format!("event {i}")).await;
    }
    got.extend(take(&mut follower, 10).await);
    assert_eq!(messages(&got), numbered(0..90));
    assert_increasing(&got);
    assert_eq!(cursors(&got), cursors(&whole_log(&a, &token, "acme").await));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_on_two_replicas_reach_followers_on_both_complete_and_in_cursor_order() {
    const WRITERS: usize = 8;
    const EACH: usize = 25;
    let Some((a, b)) = replicas().await else {
        return;
    };
    let acme = a.create_tenant("acme").await;
    let token = a.token(Role::Crm, &[&acme]).await;
    let mut on_a = follow(&a, &token, "acme").await;
    let mut on_b = follow(&b, &token, "acme").await;
    // Writers on both replicas append to one tenant's log at once, interleaved.
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let logs = [&a, &b][w % 2].state.logs.clone();
            let acme = acme.clone();
            tokio::spawn(async move {
                for i in 0..EACH {
                    append(&logs, &acme, &format!("run-{w}"), format!("w{w} {i}")).await;
                }
            })
        })
        .collect();
    for w in writers {
        w.await.expect("writer");
    }
    let total = WRITERS * EACH;
    let log = whole_log(&a, &token, "acme").await;
    assert_eq!(log.len(), total);
    for (name, follower) in [("A", &mut on_a), ("B", &mut on_b)] {
        let got = take(follower, total).await;
        assert_increasing(&got);
        // Every event the log holds, each once, in the log's order.
        assert_eq!(cursors(&got), cursors(&log), "follower on {name}");
        // Each writer's events in the order it wrote them.
        for w in 0..WRITERS {
            let mine: Vec<String> = messages(&got)
                .into_iter()
                .filter(|m| m.starts_with(&format!("w{w} ")))
                .collect();
            let written: Vec<String> = (0..EACH).map(|i| format!("w{w} {i}")).collect();
            assert_eq!(mine, written, "follower on {name}, writer {w}");
        }
    }
}

/// Two appends of one tenant at once: the one holding the tenant's append lock took its
/// cursor first and has not committed; the other waits for it instead of committing a
/// later cursor first (which a follower would read, then pass the earlier one by).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_waits_for_the_tenants_uncommitted_earlier_one_so_no_follower_passes_it_by() {
    let Some((a, b)) = replicas().await else {
        return;
    };
    let acme = a.create_tenant("acme").await;
    let token = a.token(Role::Crm, &[&acme]).await;
    let mut follower = follow(&b, &token, "acme").await;
    append(&a.state.logs, &acme, "run-1", "first".into()).await;
    assert_eq!(messages(&take(&mut follower, 1).await), ["first"]);

    // An append in flight elsewhere: the tenant's lock taken (the key events::append
    // uses), its cursor taken, not committed.
    let mut early = PgConnection::connect(a.database_url()).await.unwrap();
    sqlx::query("BEGIN").execute(&mut early).await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('sync_event:acme', 0))")
        .execute(&mut early)
        .await
        .unwrap();
    let early_cursor: i64 = sqlx::query_scalar(
        "INSERT INTO sync_event (tenant_id, run_id, at, level, stage, message, fields) \
         VALUES ('acme', 'run-1', now(), 'INFO', 'push', 'early', '{}') RETURNING cursor",
    )
    .fetch_one(&mut early)
    .await
    .unwrap();

    let late = {
        let logs = a.state.logs.clone();
        let acme = acme.clone();
        tokio::spawn(async move { append(&logs, &acme, "run-1", "late".into()).await })
    };
    // The late append is seen waiting for the lock (had it not waited, it would have
    // committed first, and the follower would have read it before "early" existed).
    let mut watcher = PgConnection::connect(a.database_url()).await.unwrap();
    tokio::time::timeout(WAIT, async {
        loop {
            assert!(
                !late.is_finished(),
                "the late append committed while an earlier cursor was uncommitted"
            );
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            )
            .fetch_one(&mut watcher)
            .await
            .unwrap();
            if waiting > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the late append waits for the lock");
    sqlx::query("COMMIT").execute(&mut early).await.unwrap();
    let late_cursor = late.await.unwrap();
    assert!(late_cursor > u64::try_from(early_cursor).unwrap());

    let got = take(&mut follower, 2).await;
    assert_eq!(messages(&got), ["early", "late"]);
    assert_eq!(got[0].cursor, u64::try_from(early_cursor).unwrap());
    assert_eq!(got[1].cursor, late_cursor);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_raised_on_replica_a_reaches_a_watcher_on_replica_b_without_polling() {
    let Some((a, b)) = replicas().await else {
        return;
    };
    let acme = a.create_tenant("acme").await;
    let token = a.token(Role::Admin, &[]).await;
    let mut admin = AdminClient::new(
        Channel::from_shared(b.url())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    );
    let mut feed = admin
        .watch_alerts(authed(pb::WatchAlertsRequest::default(), &token))
        .await
        .expect("feed opens")
        .into_inner();
    assert!(alerts::raise(
        &a.state.db,
        &acme,
        AlertKind::Stale,
        "raised on A",
        None,
        Utc::now()
    )
    .await
    .unwrap());
    let e = tokio::time::timeout(WAIT, feed.message())
        .await
        .expect("the alert arrives")
        .expect("feed healthy")
        .expect("feed open");
    assert_eq!(e.kind(), pb::AlertEventKind::Opened);
    assert_eq!(e.alert.unwrap().message, "raised on A");
}
