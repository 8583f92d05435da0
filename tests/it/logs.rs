//! StreamLogs: backlog then live, cursor-exact resumption (also across a restart and
//! while a run writes), many followers, a stalled follower, cancellation, heartbeats,
//! filters and every bad request.

use std::time::{Duration, Instant};

use chrono::Utc;
use erpsync::domain::run::Level;
use erpsync::domain::tenant::TenantId;
use erpsync::domain::token::Role;
use erpsync::grpc::pb::{LogEvent, LogLevel, StreamLogsRequest, TriggerSyncRequest};
use erpsync::storage::events::NewEvent;
use tonic::{Code, Request, Streaming};

use crate::both_backends;
use crate::helpers::{authed, spawn_app_with, Backend, TestApp};

both_backends!(
    backlog_then_live_in_cursor_order,
    without_follow_the_stream_ends_after_the_backlog,
    reconnecting_by_cursor_misses_nothing_and_repeats_nothing_while_writing,
    cursor_resumes_across_a_server_restart,
    two_hundred_followers_all_receive_every_event,
    a_follower_that_never_reads_delays_no_one_and_later_catches_up,
    cancelling_a_stream_frees_its_subscription,
    filters_by_run_level_stage_table_and_since,
    a_run_can_be_tailed_live,
    bad_requests_are_rejected_naming_the_field,
);

/// Appends an event the way the worker does (through the hub, which wakes followers).
async fn write(
    app: &TestApp,
    tenant: &TenantId,
    level: Level,
    stage: &str,
    message: String,
) -> u64 {
    write_full(app, tenant, None, level, stage, None, message).await
}

async fn write_full(
    app: &TestApp,
    tenant: &TenantId,
    run_id: Option<&str>,
    level: Level,
    stage: &str,
    table: Option<&str>,
    message: String,
) -> u64 {
    app.state
        .logs
        .append(
            NewEvent::new(tenant, level, stage, message)
                .run(run_id)
                .table(table)
                .field("n", 1),
            Utc::now(),
        )
        .await
        .expect("event written")
}

async fn open(app: &TestApp, token: &str, req: StreamLogsRequest) -> Streaming<LogEvent> {
    app.history()
        .await
        .stream_logs(authed(req, token))
        .await
        .expect("stream opens")
        .into_inner()
}

fn follow(tenant: &str, after: Option<u64>) -> StreamLogsRequest {
    StreamLogsRequest {
        tenant_id: tenant.into(),
        after_cursor: after,
        follow: true,
        ..Default::default()
    }
}

/// The next event that is not a heartbeat (within 30 s).
async fn next(stream: &mut Streaming<LogEvent>) -> LogEvent {
    loop {
        let got = tokio::time::timeout(Duration::from_secs(30), stream.message())
            .await
            .expect("an event within 30 s")
            .expect("stream healthy")
            .expect("stream open");
        if !got.heartbeat {
            return got;
        }
    }
}

async fn take(stream: &mut Streaming<LogEvent>, n: usize) -> Vec<LogEvent> {
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        out.push(next(stream).await);
    }
    out
}

fn messages(events: &[LogEvent]) -> Vec<String> {
    events.iter().map(|e| e.message.clone()).collect()
}

fn numbered(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix} {i}")).collect()
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

async fn setup(app: &TestApp) -> (TenantId, String) {
    let acme = app.create_tenant("acme").await;
    let token = app.token(Role::Crm, &[&acme]).await;
    (acme, token)
}

async fn backlog_then_live_in_cursor_order(app: TestApp) {
    let (acme, token) = setup(&app).await;
    let other = app.create_tenant("other").await;
    for i in 0..5 {
        write(&app, &acme, Level::Info, "collect", format!("old {i}")).await;
        write(&app, &other, Level::Info, "collect", format!("other {i}")).await;
    }
    let mut stream = open(&app, &token, follow("acme", None)).await;
    let backlog = take(&mut stream, 5).await;
    assert_eq!(messages(&backlog), numbered("old", 0..5));
    for i in 0..5 {
        write(&app, &acme, Level::Warn, "push", format!("new {i}")).await;
    }
    let live = take(&mut stream, 5).await;
    assert_eq!(messages(&live), numbered("new", 0..5));
    let all: Vec<LogEvent> = backlog.into_iter().chain(live).collect();
    assert_increasing(&all);
    let e = &all[5];
    assert_eq!(e.level, LogLevel::Warn as i32);
    assert_eq!(e.stage, "push");
    assert!(e.at.is_some());
    assert!(e.fields.as_ref().and_then(|f| f.fields.get("n")).is_some());
}

async fn without_follow_the_stream_ends_after_the_backlog(app: TestApp) {
    let (acme, token) = setup(&app).await;
    let mut cursors = Vec::new();
    for i in 0..1200 {
        cursors.push(write(&app, &acme, Level::Info, "collect", format!("e {i}")).await);
    }
    let mut stream = open(
        &app,
        &token,
        StreamLogsRequest {
            tenant_id: "acme".into(),
            after_cursor: Some(cursors[99]),
            ..Default::default()
        },
    )
    .await;
    let mut got = Vec::new();
    while let Some(e) = stream.message().await.expect("stream healthy") {
        got.push(e);
    }
    assert_eq!(messages(&got), numbered("e", 100..1200));
    assert_eq!(
        got.iter().map(|e| e.cursor).collect::<Vec<_>>(),
        cursors[100..]
    );
}

async fn reconnecting_by_cursor_misses_nothing_and_repeats_nothing_while_writing(app: TestApp) {
    let (acme, token) = setup(&app).await;
    const TOTAL: usize = 600;
    let writer = {
        let (state, acme) = (app.state.clone(), acme.clone());
        tokio::spawn(async move {
            for i in 0..TOTAL {
                state
                    .logs
                    .append(
                        NewEvent::new(&acme, Level::Info, "push", format!("w {i}"))
                            .table("company"),
                        Utc::now(),
                    )
                    .await
                    .unwrap();
                if i % 50 == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        })
    };
    // Reconnect after every few events, wherever the writer is.
    let mut seen: Vec<LogEvent> = Vec::new();
    let mut reconnects = 0;
    while seen.len() < TOTAL {
        let after = seen.last().map(|e| e.cursor);
        let mut stream = open(&app, &token, follow("acme", after)).await;
        let chunk = 37.min(TOTAL - seen.len());
        seen.extend(take(&mut stream, chunk).await);
        drop(stream);
        reconnects += 1;
    }
    writer.await.unwrap();
    assert!(reconnects > 10);
    assert_eq!(messages(&seen), numbered("w", 0..TOTAL));
    assert_increasing(&seen);
}

async fn cursor_resumes_across_a_server_restart(mut app: TestApp) {
    let (acme, token) = setup(&app).await;
    for i in 0..10 {
        write(&app, &acme, Level::Info, "collect", format!("before {i}")).await;
    }
    let mut stream = open(&app, &token, follow("acme", None)).await;
    let first = take(&mut stream, 10).await;
    // The server stops: the followed stream ends (it does not hold the shutdown up).
    app.restart().await;
    let end = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match stream.message().await {
                Ok(Some(e)) if e.heartbeat => continue,
                Ok(Some(e)) => panic!("unexpected event {e:?}"),
                Ok(None) | Err(_) => return,
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the stream ended with the server");
    for i in 0..10 {
        write(&app, &acme, Level::Info, "collect", format!("after {i}")).await;
    }
    let mut stream = open(&app, &token, follow("acme", Some(first[9].cursor))).await;
    let rest = take(&mut stream, 10).await;
    assert_eq!(messages(&rest), numbered("after", 0..10));
    assert!(rest[0].cursor > first[9].cursor);
}

async fn two_hundred_followers_all_receive_every_event(app: TestApp) {
    let (acme, token) = setup(&app).await;
    const FOLLOWERS: usize = 200;
    const EVENTS: usize = 50;
    // A few connections, many streams each (as a host CRM's pool would).
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(app.history().await);
    }
    let mut streams = Vec::new();
    for i in 0..FOLLOWERS {
        let mut client = clients[i % clients.len()].clone();
        let stream = client
            .stream_logs(authed(follow("acme", None), &token))
            .await
            .expect("stream opens")
            .into_inner();
        streams.push(stream);
    }
    // Every follower is subscribed once the hub counts it.
    wait_for(|| app.state.logs.viewers(&acme) == FOLLOWERS).await;
    let readers: Vec<_> = streams
        .into_iter()
        .map(|mut s| tokio::spawn(async move { messages(&take(&mut s, EVENTS).await) }))
        .collect();
    for i in 0..EVENTS {
        write(&app, &acme, Level::Info, "push", format!("e {i}")).await;
    }
    for r in readers {
        assert_eq!(r.await.unwrap(), numbered("e", 0..EVENTS));
    }
}

async fn wait_for(mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "condition not reached in 30 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn a_follower_that_never_reads_delays_no_one_and_later_catches_up(app: TestApp) {
    let (acme, token) = setup(&app).await;
    // More events than the live buffer, with bodies large enough to fill the stalled
    // stream's HTTP/2 window too.
    let events = erpsync::logs::BUFFER * 3;
    let mut stalled = open(&app, &token, follow("acme", None)).await;
    let mut reader = open(&app, &token, follow("acme", None)).await;
    wait_for(|| app.state.logs.viewers(&acme) == 2).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, Instant)>();
    let consumer = tokio::spawn(async move {
        let mut delays = Vec::new();
        let mut got = Vec::new();
        let mut written = std::collections::HashMap::new();
        while got.len() < events {
            let e = next(&mut reader).await;
            while let Ok((c, at)) = rx.try_recv() {
                written.insert(c, at);
            }
            if let Some(at) = written.get(&e.cursor) {
                delays.push(at.elapsed());
            }
            got.push(e.message);
        }
        (got, delays)
    });
    let pad = "x".repeat(2000);
    for i in 0..events {
        let cursor = write(&app, &acme, Level::Info, "push", format!("e {i} {pad}")).await;
        // The reader may have had the last event, and be gone, before its time is sent.
        let _ = tx.send((cursor, Instant::now()));
    }
    let (got, mut delays) = tokio::time::timeout(Duration::from_secs(120), consumer)
        .await
        .expect("the reading follower is not held up by the stalled one")
        .unwrap();
    assert_eq!(got.len(), events);
    for (i, m) in got.iter().enumerate() {
        assert!(m.starts_with(&format!("e {i} ")), "event {i} is {m:.20}");
    }
    delays.sort();
    if !delays.is_empty() {
        // Measured, not asserted (timings do not belong in assertions).
        eprintln!(
            "reading follower next to a stalled one: {} delays measured, median {:?}, p99 {:?}",
            delays.len(),
            delays[delays.len() / 2],
            delays[delays.len() * 99 / 100]
        );
    }
    // The stalled follower lagged behind the buffer; when it reads at last it gets
    // every event once, in order (the gap is served from the database).
    let late = take(&mut stalled, events).await;
    for (i, e) in late.iter().enumerate() {
        assert!(
            e.message.starts_with(&format!("e {i} ")),
            "event {i} is {:.20}",
            e.message
        );
    }
    assert_increasing(&late);
}

async fn cancelling_a_stream_frees_its_subscription(app: TestApp) {
    let (acme, token) = setup(&app).await;
    let stream = open(&app, &token, follow("acme", None)).await;
    let other = open(&app, &token, follow("acme", None)).await;
    wait_for(|| app.state.logs.viewers(&acme) == 2).await;
    drop(stream);
    wait_for(|| app.state.logs.viewers(&acme) == 1).await;
    drop(other);
    wait_for(|| app.state.logs.viewers(&acme) == 0).await;
    // A new viewer after everyone left gets a fresh tail that works.
    let mut again = open(&app, &token, follow("acme", None)).await;
    wait_for(|| app.state.logs.viewers(&acme) == 1).await;
    write(&app, &acme, Level::Info, "push", "hello".into()).await;
    assert_eq!(next(&mut again).await.message, "hello");
}

async fn filters_by_run_level_stage_table_and_since(app: TestApp) {
    let (acme, token) = setup(&app).await;
    // A real run, so run_id names one.
    let run = app
        .history()
        .await
        .trigger_sync(authed(
            TriggerSyncRequest {
                tenant_id: "acme".into(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap()
        .run_id;
    let mut stream = open(
        &app,
        &token,
        StreamLogsRequest {
            tenant_id: "acme".into(),
            follow: true,
            run_id: Some(run.clone()),
            min_level: LogLevel::Warn as i32,
            stage: Some("push".into()),
            table: Some("invoice".into()),
            ..Default::default()
        },
    )
    .await;
    let before = Utc::now();
    let cases = [
        (
            Some(run.as_str()),
            Level::Warn,
            "push",
            Some("invoice"),
            true,
        ),
        (
            Some(run.as_str()),
            Level::Error,
            "push",
            Some("invoice"),
            true,
        ),
        (
            Some(run.as_str()),
            Level::Info,
            "push",
            Some("invoice"),
            false,
        ),
        (None, Level::Error, "push", Some("invoice"), false),
        (
            Some(run.as_str()),
            Level::Error,
            "collect",
            Some("invoice"),
            false,
        ),
        (
            Some(run.as_str()),
            Level::Error,
            "push",
            Some("company"),
            false,
        ),
        (Some(run.as_str()), Level::Error, "push", None, false),
    ];
    let mut expected = Vec::new();
    for (i, (run_id, level, stage, table, wanted)) in cases.into_iter().enumerate() {
        let m = format!("case {i}");
        write_full(&app, &acme, run_id, level, stage, table, m.clone()).await;
        if wanted {
            expected.push(m);
        }
    }
    write_full(
        &app,
        &acme,
        Some(&run),
        Level::Error,
        "push",
        Some("invoice"),
        "last".into(),
    )
    .await;
    expected.push("last".into());
    assert_eq!(messages(&take(&mut stream, expected.len()).await), expected);

    // The same filter on the backlog (SQL side) gives the same answer.
    let mut backlog = open(
        &app,
        &token,
        StreamLogsRequest {
            tenant_id: "acme".into(),
            run_id: Some(run.clone()),
            min_level: LogLevel::Warn as i32,
            stage: Some("push".into()),
            table: Some("invoice".into()),
            ..Default::default()
        },
    )
    .await;
    let mut got = Vec::new();
    while let Some(e) = backlog.message().await.unwrap() {
        got.push(e.message);
    }
    assert_eq!(got, expected);

    // since: only what was written at or after the instant.
    let mut since = open(
        &app,
        &token,
        StreamLogsRequest {
            tenant_id: "acme".into(),
            since: Some(prost_types::Timestamp {
                seconds: before.timestamp(),
                nanos: before.timestamp_subsec_nanos() as i32,
            }),
            ..Default::default()
        },
    )
    .await;
    let mut got = Vec::new();
    while let Some(e) = since.message().await.unwrap() {
        // The run's own events interleave with ours; only ours are checked.
        if e.message.starts_with("case") || e.message == "last" {
            got.push(e.message);
        }
    }
    let mut all: Vec<String> = numbered("case", 0..7);
    all.push("last".into());
    assert_eq!(got, all);
}

async fn a_run_can_be_tailed_live(app: TestApp) {
    let (_acme, token) = setup(&app).await;
    let mut stream = open(&app, &token, follow("acme", None)).await;
    let run = app
        .history()
        .await
        .trigger_sync(authed(
            TriggerSyncRequest {
                tenant_id: "acme".into(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap()
        .run_id;
    // The run's own events arrive live, ending with its finish.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut stages = Vec::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "the run's finish never arrived: {stages:?}"
        );
        let e = next(&mut stream).await;
        if e.run_id != run {
            continue;
        }
        stages.push(e.stage.clone());
        if e.message.starts_with("run finished") {
            break;
        }
    }
    assert!(stages.len() > 1, "{stages:?}");
}

async fn bad_requests_are_rejected_naming_the_field(app: TestApp) {
    let (_acme, token) = setup(&app).await;
    let erp = app
        .token(Role::Erp, &[&TenantId::parse("acme").unwrap()])
        .await;
    let call = |req: StreamLogsRequest, token: String| {
        let app = &app;
        async move {
            app.history()
                .await
                .stream_logs(authed(req, &token))
                .await
                .map(|_| ())
                .unwrap_err()
        }
    };
    let base = || StreamLogsRequest {
        tenant_id: "acme".into(),
        follow: true,
        ..Default::default()
    };
    for (req, field) in [
        (
            StreamLogsRequest {
                min_level: 99,
                ..base()
            },
            "min_level",
        ),
        (
            StreamLogsRequest {
                table: Some("nope".into()),
                ..base()
            },
            "table",
        ),
        (
            StreamLogsRequest {
                stage: Some(" ".into()),
                ..base()
            },
            "stage",
        ),
        (
            StreamLogsRequest {
                run_id: Some(String::new()),
                ..base()
            },
            "run_id",
        ),
    ] {
        let err = call(req, token.clone()).await;
        assert_eq!(
            err.code(),
            Code::InvalidArgument,
            "{field}: {}",
            err.message()
        );
        assert!(err.message().contains(field), "{field}: {}", err.message());
    }
    let err = call(
        StreamLogsRequest {
            run_id: Some("00000000-0000-0000-0000-000000000000".into()),
            ..base()
        },
        token.clone(),
    )
    .await;
    assert_eq!(err.code(), Code::NotFound, "{}", err.message());
    // Auth comes first: no token, an erp token, another tenant.
    let err = app
        .history()
        .await
        .stream_logs(Request::new(base()))
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = call(base(), erp).await;
    assert_eq!(err.code(), Code::PermissionDenied);
    app.create_tenant("other").await;
    let err = call(
        StreamLogsRequest {
            tenant_id: "other".into(),
            ..base()
        },
        token,
    )
    .await;
    assert_eq!(err.code(), Code::PermissionDenied);
}

mod heartbeat {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_idle_followed_stream_gets_heartbeats_carrying_its_position() {
        let app = spawn_app_with(Backend::Sqlite, |c| {
            c.log_heartbeat = Duration::from_millis(200);
        })
        .await
        .unwrap();
        let (acme, token) = setup(&app).await;
        let cursor = write(&app, &acme, Level::Info, "collect", "only".into()).await;
        let mut stream = open(&app, &token, follow("acme", None)).await;
        let first = stream.message().await.unwrap().unwrap();
        assert_eq!((first.message.as_str(), first.heartbeat), ("only", false));
        for _ in 0..2 {
            let beat = tokio::time::timeout(Duration::from_secs(30), stream.message())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            assert!(beat.heartbeat, "{beat:?}");
            assert_eq!(beat.cursor, cursor);
            assert!(beat.message.is_empty() && beat.stage.is_empty());
        }
    }
}

/// `erpsync logs`: plain lines in the tenant's local time when piped; with --follow it
/// survives a server restart and resumes after the last cursor it printed.
mod cli {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    use crate::cli::{erpsync, ok, serve_with};

    fn sync_now(db: &str, url: &str, token: &str) -> String {
        ok(erpsync(
            db,
            &[
                "sync-now", "--tenant", "acme", "--server", url, "--token", token,
            ],
        ))
    }

    fn stop(mut child: std::process::Child) {
        let pid = child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(child.wait().unwrap().success());
    }

    #[test]
    fn logs_prints_the_backlog_and_follows_across_a_server_restart() {
        let dir = tempfile::tempdir().unwrap();
        let db = format!("sqlite://{}?mode=rwc", dir.path().join("cli.db").display());
        ok(erpsync(
            &db,
            &[
                "tenant",
                "create",
                "--id",
                "acme",
                "--name",
                "ACME",
                "--timezone",
                "Asia/Kolkata",
            ],
        ));
        let issued = ok(erpsync(
            &db,
            &["token", "issue", "--role", "crm", "--tenant", "acme"],
        ));
        let token = issued.lines().last().unwrap().to_owned();
        let (server, port) = serve_with(&db, &[]);
        let url = format!("http://127.0.0.1:{port}");
        sync_now(&db, &url, &token);

        // The backlog, piped: plain text, local times (+05:30), then the end.
        let printed = ok(erpsync(
            &db,
            &[
                "logs", "--tenant", "acme", "--server", &url, "--token", &token,
            ],
        ));
        assert!(!printed.contains('\x1b'), "no colour when piped: {printed}");
        let first = printed.lines().next().expect("a line");
        assert!(
            first.contains("INFO") && first.contains("run started"),
            "{printed}"
        );
        let stamp = chrono::NaiveDateTime::parse_from_str(&first[..23], "%Y-%m-%d %H:%M:%S%.3f")
            .expect("a local date-time first");
        let utc = chrono::Utc::now().naive_utc();
        let offset = (stamp - utc).num_minutes();
        assert!(
            (325..=335).contains(&offset),
            "Kolkata is UTC+5:30: {first} vs {utc}"
        );
        assert!(printed.contains("run finished: SUCCESS"), "{printed}");
        let warn_only = ok(erpsync(
            &db,
            &[
                "logs", "--tenant", "acme", "--level", "warn", "--server", &url, "--token", &token,
            ],
        ));
        assert!(!warn_only.contains(" INFO "), "{warn_only}");

        // Follow with cursors, restart the server under it, run again.
        let mut follower = Command::new(env!("CARGO_BIN_EXE_erpsync"))
            .args([
                "logs",
                "--tenant",
                "acme",
                "--follow",
                "--cursors",
                "--server",
                &url,
            ])
            .args(["--token", &token])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let stdout = follower.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if tx.send(line.unwrap()).is_err() {
                    return;
                }
            }
        });
        let until = |marker: &str, count: usize| {
            let mut lines = Vec::new();
            let mut seen = 0;
            while seen < count {
                let line = rx
                    .recv_timeout(std::time::Duration::from_secs(60))
                    .unwrap_or_else(|_| panic!("no {marker:?} in {lines:#?}"));
                if line.contains(marker) {
                    seen += 1;
                }
                lines.push(line);
            }
            lines
        };
        let mut lines = until("run finished", 1);
        stop(server);
        let (server, _) = serve_with(&db, &["--listen", &format!("127.0.0.1:{port}")]);
        sync_now(&db, &url, &token);
        lines.extend(until("run finished", 1));
        follower.kill().unwrap();
        let _ = follower.wait();
        stop(server);

        let cursors: Vec<u64> = lines
            .iter()
            .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
            .collect();
        assert!(
            cursors.windows(2).all(|w| w[0] < w[1]),
            "no duplicate, in order: {lines:#?}"
        );
        let started = lines.iter().filter(|l| l.contains("run started")).count();
        assert_eq!(started, 2, "both runs, once each: {lines:#?}");
    }
}
