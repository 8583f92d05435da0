//! The alert feed: Admin.WatchAlerts and IntegrationHistory.WatchAlerts over alerts that
//! runs, the delete guard and the staleness check really open and resolve — backlog then
//! live, resuming after a dropped connection, tenant filters and authorization, the limit
//! per token, idle connections, shutdown, another process's events, and concurrent
//! writers — on both backends.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use erpsync::config::Config;
use erpsync::domain::alert::AlertKind;
use erpsync::domain::tenant::TenantId;
use erpsync::domain::token::Role;
use erpsync::grpc::pb::{self, admin_client::AdminClient};
use erpsync::storage::{alerts, Db};
use tonic::transport::Channel;
use tonic::{Code, Streaming};
use tonic_types::StatusExt;

use crate::helpers::seed::{companies, tombstone};
use crate::helpers::sinks::FlakySink;
use crate::helpers::tenants::{setup, Ctx};
use crate::helpers::{authed, spawn_app_full, Backend, TestApp};

/// Runs `body` on a server tuned by `tune` whose CRM sink fails while the flag it gets
/// is set (the embedded CRM otherwise), once per backend.
macro_rules! feed_tests {
    ($($name:ident => $tune:expr),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let (app, down) = super::spawn(super::Backend::Sqlite, $tune).await.unwrap();
                    super::$name(app, down).await;
                }
            )*
            use super::*;
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some((app, down)) = super::spawn(super::Backend::Postgres, $tune).await else {
                        eprintln!("{} unset: PostgreSQL variant not run", crate::helpers::PG_ENV);
                        return;
                    };
                    super::$name(app, down).await;
                }
            )*
            use super::*;
        }
    };
}

feed_tests!(
    the_feed_serves_the_backlog_then_alerts_as_runs_open_and_resolve_them => |_: &mut Config| {},
    a_watcher_that_drops_its_connection_resumes_after_its_cursor_missing_nothing => |_: &mut Config| {},
    watchers_see_only_their_tenants_and_need_the_right_token => |_: &mut Config| {},
    a_malformed_cursor_is_invalid_argument_naming_after_cursor => |_: &mut Config| {},
    a_tokens_feeds_past_its_cap_are_refused_and_slots_come_back => |c: &mut Config| {
        c.rate_limits.alert_streams_per_caller = 2;
    },
    a_quiet_feed_holds_its_connection_past_the_idle_timeout => |c: &mut Config| {
        c.conn.idle_timeout = QUIET_FEED_IDLE;
        c.request_timeout = Duration::from_millis(200);
        c.limits.body_timeout = Duration::from_millis(100);
    },
    the_feed_ends_unavailable_with_a_retry_hint_when_the_server_drains => |_: &mut Config| {},
    events_another_process_writes_arrive_by_the_periodic_read => |_: &mut Config| {},
    concurrent_writers_commit_in_cursor_order_and_a_live_follower_skips_none => |_: &mut Config| {},
);

async fn spawn(
    backend: Backend,
    tune: impl FnOnce(&mut Config),
) -> Option<(TestApp, Arc<AtomicBool>)> {
    let down = Arc::new(AtomicBool::new(false));
    let flag = down.clone();
    let app = spawn_app_full(backend, tune, move |db| {
        Arc::new(FlakySink {
            inner: erpsync::worker::sink::EmbeddedSink::new(db),
            down: flag,
        })
    })
    .await?;
    Some((app, down))
}

/// How long a test waits for an event before it fails.
const WAIT: Duration = Duration::from_secs(30);

async fn admin(app: &TestApp) -> AdminClient<Channel> {
    AdminClient::new(
        Channel::from_shared(app.url())
            .unwrap()
            .connect()
            .await
            .unwrap(),
    )
}

/// Admin.WatchAlerts of `tenants` (empty: all) after `cursor`, with `token`.
async fn watch_all(
    app: &TestApp,
    token: &str,
    tenants: &[&str],
    cursor: &str,
) -> Result<Streaming<pb::AlertEvent>, tonic::Status> {
    admin(app)
        .await
        .watch_alerts(authed(
            pb::WatchAlertsRequest {
                tenant_ids: tenants.iter().map(|t| (*t).to_owned()).collect(),
                after_cursor: cursor.into(),
            },
            token,
        ))
        .await
        .map(tonic::Response::into_inner)
}

/// IntegrationHistory.WatchAlerts of `tenant` after `cursor`, with `token`.
async fn watch_tenant(
    app: &TestApp,
    token: &str,
    tenant: &str,
    cursor: &str,
) -> Result<Streaming<pb::AlertEvent>, tonic::Status> {
    app.history()
        .await
        .watch_alerts(authed(
            pb::WatchTenantAlertsRequest {
                tenant_id: tenant.into(),
                after_cursor: cursor.into(),
            },
            token,
        ))
        .await
        .map(tonic::Response::into_inner)
}

/// The stream's next event (bounded wait).
async fn next(stream: &mut Streaming<pb::AlertEvent>) -> pb::AlertEvent {
    tokio::time::timeout(WAIT, stream.message())
        .await
        .expect("an event within the bound")
        .expect("the stream goes on")
        .expect("the stream does not end")
}

/// The stream's next `n` events.
async fn take(stream: &mut Streaming<pb::AlertEvent>, n: usize) -> Vec<pb::AlertEvent> {
    let mut got = Vec::with_capacity(n);
    for _ in 0..n {
        got.push(next(stream).await);
    }
    got
}

/// (tenant, event kind, alert kind) of each event.
fn shape(events: &[pb::AlertEvent]) -> Vec<(String, pb::AlertEventKind, pb::AlertKind)> {
    events
        .iter()
        .map(|e| {
            (
                e.tenant_id.clone(),
                e.kind(),
                e.alert.as_ref().unwrap().kind(),
            )
        })
        .collect()
}

fn cursor_number(e: &pb::AlertEvent) -> u64 {
    e.cursor.parse().expect("today's cursors are numbers")
}

/// Cursors strictly increase: no event twice, none out of order.
fn assert_increasing(events: &[pb::AlertEvent]) {
    for pair in events.windows(2) {
        assert!(
            cursor_number(&pair[0]) < cursor_number(&pair[1]),
            "cursors out of order: {} then {}",
            pair[0].cursor,
            pair[1].cursor
        );
    }
}

/// Gives `tenant` a daily schedule and a one-hour staleness window (so the staleness
/// check looks at it), with `crm`.
async fn stale_after_an_hour(app: &TestApp, crm: &str, tenant: &str) {
    app.history()
        .await
        .update_schedule(authed(
            pb::UpdateScheduleRequest {
                tenant_id: tenant.into(),
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
            crm,
        ))
        .await
        .unwrap();
}

/// The scheduler's tick two hours from now: STALE for every scheduled tenant without a
/// success since (no run is due then, nor may one be running).
async fn tick_two_hours_later(app: &TestApp) {
    let mut later = Utc::now() + chrono::Duration::hours(2);
    // Keep clear of the 03:00 slot, so the tick starts no run.
    let local = later.with_timezone(&chrono_tz::America::Sao_Paulo);
    if chrono::Timelike::hour(&local) == 3 && chrono::Timelike::minute(&local) < 2 {
        later += chrono::Duration::minutes(3);
    }
    erpsync::worker::scheduler::tick(&app.state.worker, later)
        .await
        .unwrap();
}

/// Ctx for acme (see `sync::setup`) plus an admin token.
async fn with_admin(app: TestApp) -> (Ctx, String) {
    let ctx = setup(app).await;
    let admin = ctx.app.token(Role::Admin, &[]).await;
    (ctx, admin)
}

async fn the_feed_serves_the_backlog_then_alerts_as_runs_open_and_resolve_them(
    app: TestApp,
    down: Arc<AtomicBool>,
) {
    let (mut ctx, admin_token) = with_admin(app).await;
    // A run whose sink is down fails: FAILING opens before anyone watches.
    down.store(true, Ordering::SeqCst);
    ctx.push("company", companies(0..3)).await;
    let failed = ctx.run().await.run.unwrap();
    assert_eq!(failed.status(), pb::RunStatus::Failed);

    let mut all = watch_all(&ctx.app, &admin_token, &[], "").await.unwrap();
    let mut acme = watch_tenant(&ctx.app, &ctx.crm, "acme", "").await.unwrap();
    let opened = next(&mut all).await;
    assert_eq!(
        next(&mut acme).await,
        opened,
        "both services tell the same event"
    );
    assert_eq!(opened.tenant_id, "acme");
    assert_eq!(opened.kind(), pb::AlertEventKind::Opened);
    let alert = opened.alert.clone().unwrap();
    assert_eq!(alert.kind(), pb::AlertKind::Failing);
    assert_eq!(alert.run_id, failed.run_id);
    assert!(
        alert.message.contains("CRM unavailable"),
        "{}",
        alert.message
    );
    assert!(alert.resolved_at.is_none());
    assert_eq!(opened.at, alert.opened_at);

    // Live: the sink is back, the next run succeeds and resolves FAILING.
    down.store(false, Ordering::SeqCst);
    assert_eq!(
        ctx.run().await.run.unwrap().status(),
        pb::RunStatus::Success
    );
    let resolved = next(&mut all).await;
    assert_eq!(next(&mut acme).await, resolved);
    assert_eq!(resolved.kind(), pb::AlertEventKind::Resolved);
    let same = resolved.alert.clone().unwrap();
    assert_eq!(same.alert_id, alert.alert_id, "the same alert resolves");
    assert_eq!(same.kind(), pb::AlertKind::Failing);
    assert_eq!(same.opened_at, alert.opened_at);
    assert!(same.resolved_at.is_some());
    assert_eq!(resolved.at, same.resolved_at);
    assert!(cursor_number(&resolved) > cursor_number(&opened));

    // Live: STALE from the staleness check, resolved by the next success.
    stale_after_an_hour(&ctx.app, &ctx.crm, "acme").await;
    tick_two_hours_later(&ctx.app).await;
    assert_eq!(
        ctx.run().await.run.unwrap().status(),
        pb::RunStatus::Success
    );
    // Live: DELETES_HELD from the delete guard, resolved when the held deletions are
    // discarded.
    ctx.push("company", companies(3..200)).await;
    ctx.run().await;
    ctx.push("company", (3..123).map(tombstone).collect()).await;
    assert_eq!(
        ctx.run().await.run.unwrap().status(),
        pb::RunStatus::Partial
    );
    ctx.history
        .resolve_pending_deletes(authed(
            pb::ResolvePendingDeletesRequest {
                tenant_id: "acme".into(),
                table: "company".into(),
                ids: vec![],
                all: true,
                action: pb::ResolveAction::Discard.into(),
            },
            &ctx.crm,
        ))
        .await
        .unwrap();
    let later = take(&mut all, 4).await;
    assert_eq!(take(&mut acme, 4).await, later);
    let acme_id = || "acme".to_owned();
    assert_eq!(
        shape(&later),
        [
            (acme_id(), pb::AlertEventKind::Opened, pb::AlertKind::Stale),
            (
                acme_id(),
                pb::AlertEventKind::Resolved,
                pb::AlertKind::Stale
            ),
            (
                acme_id(),
                pb::AlertEventKind::Opened,
                pb::AlertKind::DeletesHeld
            ),
            (
                acme_id(),
                pb::AlertEventKind::Resolved,
                pb::AlertKind::DeletesHeld
            ),
        ]
    );
    assert!(later[0]
        .alert
        .as_ref()
        .unwrap()
        .message
        .contains("limit 1 h"));
    assert!(later[2]
        .alert
        .as_ref()
        .unwrap()
        .message
        .contains("120 deletions held"));
    let mut every = vec![opened, resolved];
    every.extend(later);
    assert_increasing(&every);

    // The whole feed again from the start: the same six events, in the same order.
    let mut again = watch_all(&ctx.app, &admin_token, &[], "").await.unwrap();
    assert_eq!(take(&mut again, 6).await, every);
    // After the last cursor: nothing until the next event.
    let last = every.last().unwrap().cursor.clone();
    let mut after = watch_tenant(&ctx.app, &ctx.crm, "acme", &last)
        .await
        .unwrap();
    tick_two_hours_later(&ctx.app).await;
    let next_one = next(&mut after).await;
    assert_eq!(
        next_one.alert.as_ref().unwrap().kind(),
        pb::AlertKind::Stale
    );
    assert!(cursor_number(&next_one) > cursor_number(every.last().unwrap()));
}

async fn a_watcher_that_drops_its_connection_resumes_after_its_cursor_missing_nothing(
    app: TestApp,
    _down: Arc<AtomicBool>,
) {
    const ROUNDS: usize = 6;
    let (mut ctx, admin_token) = with_admin(app).await;
    stale_after_an_hour(&ctx.app, &ctx.crm, "acme").await;
    let url = ctx.app.url();
    let mut first = watch_all(&ctx.app, &admin_token, &[], "").await.unwrap();
    // Rounds of real alerts: STALE from the staleness check, resolved by a run; each
    // round reported once both of its events are written.
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let writer = tokio::spawn(async move {
        for round in 0..ROUNDS {
            tick_two_hours_later(&ctx.app).await;
            assert_eq!(
                ctx.run().await.run.unwrap().status(),
                pb::RunStatus::Success
            );
            done_tx.send(round).unwrap();
        }
        ctx
    });
    let mut received = take(&mut first, 3).await;
    // The connection goes mid-stream: the stream and its channel are dropped.
    drop(first);
    // Events go on being written while nobody watches: two more rounds at least.
    let mut rounds_done = 0;
    while rounds_done < 4 {
        done_rx.recv().await.expect("the writer goes on");
        rounds_done += 1;
    }
    let last = received.last().unwrap().cursor.clone();
    let channel = Channel::from_shared(url).unwrap().connect().await.unwrap();
    let mut resumed = AdminClient::new(channel)
        .watch_alerts(authed(
            pb::WatchAlertsRequest {
                tenant_ids: vec![],
                after_cursor: last,
            },
            &admin_token,
        ))
        .await
        .unwrap()
        .into_inner();
    received.extend(take(&mut resumed, 2 * ROUNDS - 3).await);
    let ctx = writer.await.unwrap();
    assert_increasing(&received);
    let mut expected = Vec::new();
    for _ in 0..ROUNDS {
        expected.push((
            "acme".to_owned(),
            pb::AlertEventKind::Opened,
            pb::AlertKind::Stale,
        ));
        expected.push((
            "acme".to_owned(),
            pb::AlertEventKind::Resolved,
            pb::AlertKind::Stale,
        ));
    }
    assert_eq!(shape(&received), expected);
    // Exactly the feed as a new watcher reads it from the start.
    let mut whole = watch_all(&ctx.app, &admin_token, &[], "").await.unwrap();
    assert_eq!(take(&mut whole, 2 * ROUNDS).await, received);
}

async fn watchers_see_only_their_tenants_and_need_the_right_token(
    app: TestApp,
    _down: Arc<AtomicBool>,
) {
    let acme = app.create_tenant("acme").await;
    let globex = app.create_tenant("globex").await;
    let acme_crm = app.token(Role::Crm, &[&acme]).await;
    let globex_crm = app.token(Role::Crm, &[&globex]).await;
    let erp = app.token(Role::Erp, &[&acme]).await;
    let admin_token = app.token(Role::Admin, &[]).await;
    stale_after_an_hour(&app, &acme_crm, "acme").await;
    stale_after_an_hour(&app, &globex_crm, "globex").await;
    // STALE opens for both; then acme's resolves, then globex's (the last event).
    tick_two_hours_later(&app).await;
    for (tenant, crm) in [("acme", &acme_crm), ("globex", &globex_crm)] {
        let mut history = app.history().await;
        let started = history
            .trigger_sync(authed(
                pb::TriggerSyncRequest {
                    tenant_id: tenant.into(),
                },
                crm,
            ))
            .await
            .unwrap()
            .into_inner();
        wait_for_run(&app, crm, tenant, &started.run.unwrap().run_id).await;
    }

    let mut everyone = watch_all(&app, &admin_token, &[], "").await.unwrap();
    let all = take(&mut everyone, 4).await;
    let tenants: Vec<&str> = all.iter().map(|e| e.tenant_id.as_str()).collect();
    assert_eq!(
        {
            let mut t = tenants.clone();
            t.sort_unstable();
            t
        },
        ["acme", "acme", "globex", "globex"]
    );
    // Listed tenants only (a repeat changes nothing): globex's two, though acme's came
    // between them.
    let mut listed = watch_all(&app, &admin_token, &["globex", "globex"], "")
        .await
        .unwrap();
    let only: Vec<_> = take(&mut listed, 2).await;
    assert!(only.iter().all(|e| e.tenant_id == "globex"), "{only:?}");
    let expected: Vec<_> = all
        .iter()
        .filter(|e| e.tenant_id == "globex")
        .cloned()
        .collect();
    assert_eq!(only, expected);
    // A crm token sees exactly its tenant's.
    let mut mine = watch_tenant(&app, &acme_crm, "acme", "").await.unwrap();
    let expected: Vec<_> = all
        .iter()
        .filter(|e| e.tenant_id == "acme")
        .cloned()
        .collect();
    assert_eq!(take(&mut mine, 2).await, expected);

    // Another tenant's feed: PERMISSION_DENIED for the crm token.
    let err = watch_tenant(&app, &acme_crm, "globex", "")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    // Admin.WatchAlerts needs an admin token; IntegrationHistory a crm one.
    for token in [&acme_crm, &erp] {
        let err = watch_all(&app, token, &[], "").await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    }
    for token in [&admin_token, &erp] {
        let err = watch_tenant(&app, token, "acme", "").await.unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    }
    // An unknown tenant in the filter is NOT_FOUND; one that is not an id, INVALID_ARGUMENT
    // naming it.
    let err = watch_all(&app, &admin_token, &["acme", "nope"], "")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(err.message().contains("nope"), "{err:?}");
    let err = watch_all(&app, &admin_token, &["acme", "Not An Id"], "")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    let bad = err.get_details_bad_request().expect("BadRequest details");
    assert_eq!(bad.field_violations[0].field, "tenant_ids[1]");
}

/// Waits (bounded) until the run `run_id` of `tenant` is no longer RUNNING.
async fn wait_for_run(app: &TestApp, crm: &str, tenant: &str, run_id: &str) {
    let mut history = app.history().await;
    for _ in 0..2400 {
        let run = history
            .get_run(authed(
                pb::GetRunRequest {
                    tenant_id: tenant.into(),
                    run_id: run_id.into(),
                },
                crm,
            ))
            .await
            .unwrap()
            .into_inner()
            .run
            .unwrap();
        if run.status() != pb::RunStatus::Running {
            assert_eq!(run.status(), pb::RunStatus::Success);
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("run {run_id} did not finish in 60 s");
}

async fn a_malformed_cursor_is_invalid_argument_naming_after_cursor(
    app: TestApp,
    _down: Arc<AtomicBool>,
) {
    let (ctx, admin_token) = with_admin(app).await;
    for bad in ["abc", "-1", "1.5", " 7", "99999999999999999999"] {
        let err = watch_all(&ctx.app, &admin_token, &[], bad)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}: {err:?}");
        let details = err.get_details_bad_request().expect("BadRequest details");
        assert_eq!(details.field_violations[0].field, "after_cursor", "{bad}");
        let err = watch_tenant(&ctx.app, &ctx.crm, "acme", bad)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}: {err:?}");
        let details = err.get_details_bad_request().expect("BadRequest details");
        assert_eq!(details.field_violations[0].field, "after_cursor", "{bad}");
    }
    // Over the id length bound, IntegrationHistory's text check names it too.
    let long = "1".repeat(500);
    let err = watch_tenant(&ctx.app, &ctx.crm, "acme", &long)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let details = err.get_details_bad_request().expect("BadRequest details");
    assert_eq!(details.field_violations[0].field, "after_cursor");
}

async fn a_tokens_feeds_past_its_cap_are_refused_and_slots_come_back(
    app: TestApp,
    _down: Arc<AtomicBool>,
) {
    let (ctx, admin_token) = with_admin(app).await;
    let first = watch_all(&ctx.app, &admin_token, &[], "").await.unwrap();
    // Both services count against the token.
    let _second = watch_all(&ctx.app, &admin_token, &["acme"], "")
        .await
        .unwrap();
    let err = watch_all(&ctx.app, &admin_token, &[], "")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("alert streams"), "{err:?}");
    let _crm_first = watch_tenant(&ctx.app, &ctx.crm, "acme", "").await.unwrap();
    let _crm_second = watch_tenant(&ctx.app, &ctx.crm, "acme", "").await.unwrap();
    let err = watch_tenant(&ctx.app, &ctx.crm, "acme", "")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    // Another token is not held back.
    let other = ctx.app.token(Role::Admin, &[]).await;
    let _other = watch_all(&ctx.app, &other, &[], "").await.unwrap();
    // A watcher that leaves gives its slot back.
    drop(first);
    let mut opened = false;
    for _ in 0..100 {
        if watch_all(&ctx.app, &admin_token, &[], "").await.is_ok() {
            opened = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(opened, "the slot of a closed feed never came back");
}

/// The idle timeout of [`a_quiet_feed_holds_its_connection_past_the_idle_timeout`]'s server.
const QUIET_FEED_IDLE: Duration = Duration::from_millis(300);

async fn a_quiet_feed_holds_its_connection_past_the_idle_timeout(
    app: TestApp,
    _down: Arc<AtomicBool>,
) {
    let (ctx, admin_token) = with_admin(app).await;
    stale_after_an_hour(&ctx.app, &ctx.crm, "acme").await;
    // The client pings, so the connection is never silent: only the open call can keep
    // it past the idle timeout.
    let channel = Channel::from_shared(ctx.app.url())
        .unwrap()
        .http2_keep_alive_interval(QUIET_FEED_IDLE / 6)
        .keep_alive_while_idle(true)
        .connect()
        .await
        .unwrap();
    let mut feed = AdminClient::new(channel)
        .watch_alerts(authed(pb::WatchAlertsRequest::default(), &admin_token))
        .await
        .unwrap()
        .into_inner();
    // Nothing happens until a connection opened after the feed's, silent once answered, is
    // closed for its idle timeout: the feed's connection is past its idle timeout too.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut control = tokio::net::TcpStream::connect(("127.0.0.1", ctx.app.port))
        .await
        .unwrap();
    control
        .write_all(b"GET /erp/v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = vec![0u8; 64 * 1024];
        while matches!(control.read(&mut buf).await, Ok(n) if n > 0) {}
    })
    .await;
    assert!(closed.is_ok(), "the idle control connection stayed open");
    tick_two_hours_later(&ctx.app).await;
    let e = next(&mut feed).await;
    assert_eq!(e.alert.unwrap().kind(), pb::AlertKind::Stale);
}

/// The server drains: the feed ends UNAVAILABLE with a retry hint, for the client to
/// resume after its cursor on another replica.
async fn the_feed_ends_unavailable_with_a_retry_hint_when_the_server_drains(
    mut app: TestApp,
    _down: Arc<AtomicBool>,
) {
    let admin_token = app.token(Role::Admin, &[]).await;
    let mut feed = watch_all(&app, &admin_token, &[], "").await.unwrap();
    app.stop();
    let end = tokio::time::timeout(WAIT, feed.message())
        .await
        .expect("the stream ends when the server drains");
    let status = end.expect_err("ended by the drain");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(status.message(), erpsync::error::DRAINING_MESSAGE);
    let retry = status.get_details_retry_info().expect("RetryInfo");
    assert_eq!(
        retry.retry_delay,
        Some(erpsync::error::DRAINING_RETRY_AFTER)
    );
}

async fn events_another_process_writes_arrive_by_the_periodic_read(
    app: TestApp,
    _down: Arc<AtomicBool>,
) {
    let (ctx, admin_token) = with_admin(app).await;
    let mut feed = watch_all(&ctx.app, &admin_token, &[], "").await.unwrap();
    // Another process (a replica) on the same database: its own handle, whose appends
    // wake nobody here.
    let replica = Db::connect(ctx.app.database_url()).await.unwrap();
    let acme = TenantId::parse("acme").unwrap();
    assert!(alerts::raise(
        &replica,
        &acme,
        AlertKind::Stale,
        "from a replica",
        None,
        Utc::now()
    )
    .await
    .unwrap());
    let e = next(&mut feed).await;
    assert_eq!(e.kind(), pb::AlertEventKind::Opened);
    assert_eq!(e.alert.unwrap().message, "from a replica");
}

async fn concurrent_writers_commit_in_cursor_order_and_a_live_follower_skips_none(
    app: TestApp,
    _down: Arc<AtomicBool>,
) {
    const WRITERS: usize = 8;
    const ROUNDS: usize = 15;
    let admin_token = app.token(Role::Admin, &[]).await;
    let mut ids = Vec::new();
    for i in 0..WRITERS {
        ids.push(app.create_tenant(&format!("t{i}")).await);
    }
    let mut live = watch_all(&app, &admin_token, &[], "").await.unwrap();
    // Each writer raises and resolves alerts of its tenant as fast as it can, all at once
    // (on PostgreSQL, half of them a replica's, on a connection pool of its own).
    // (SQLite has one server per file: there, every writer is this process's.)
    let replica = Db::connect(app.database_url()).await.unwrap();
    let mut writers = Vec::new();
    for (i, tenant) in ids.into_iter().enumerate() {
        let db = if i % 2 == 1 && matches!(app.backend, Backend::Postgres) {
            replica.clone()
        } else {
            app.state.db.clone()
        };
        writers.push(tokio::spawn(async move {
            for round in 0..ROUNDS {
                let kind = [AlertKind::Stale, AlertKind::Failing][round % 2];
                assert!(
                    alerts::raise(&db, &tenant, kind, "raised", None, Utc::now())
                        .await
                        .unwrap()
                );
                assert!(alerts::resolve(&db, &tenant, kind, Utc::now())
                    .await
                    .unwrap());
            }
        }));
    }
    let total = WRITERS * ROUNDS * 2;
    for w in writers {
        w.await.unwrap();
    }
    let mut whole = watch_all(&app, &admin_token, &[], "").await.unwrap();
    let feed = take(&mut whole, total).await;
    assert_increasing(&feed);
    // The live follower saw exactly the feed as it stands: nothing skipped (a cursor
    // that committed after a higher one was read), nothing twice.
    let mut followed = Vec::new();
    while followed.len() < total {
        match tokio::time::timeout(WAIT, live.message()).await {
            Ok(Ok(Some(e))) => followed.push(e),
            other => panic!(
                "the live follower stopped at {} of {total} events ({other:?}); skipped: {:?}",
                followed.len(),
                feed.iter()
                    .filter(|e| !followed.contains(*e))
                    .map(|e| &e.cursor)
                    .collect::<Vec<_>>()
            ),
        }
    }
    assert_eq!(followed, feed);
    // Per tenant, opened and resolved alternate.
    for i in 0..WRITERS {
        let t = format!("t{i}");
        let kinds: Vec<_> = followed
            .iter()
            .filter(|e| e.tenant_id == t)
            .map(pb::AlertEvent::kind)
            .collect();
        assert_eq!(kinds.len(), ROUNDS * 2);
        assert!(kinds
            .chunks(2)
            .all(|c| c == [pb::AlertEventKind::Opened, pb::AlertEventKind::Resolved]));
    }
}
