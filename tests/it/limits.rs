//! Connection and request limits: a cap on open connections, silent connections closed,
//! a body trickled in cut off, failed authentications and pushes rate-limited with a
//! retry hint — on both backends.

use std::time::Duration;

use erpsync::config::Config;
use erpsync::domain::token::Role;
use erpsync::grpc::pb::{self, GetOverviewRequest};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tonic::Code;
use tonic_types::StatusExt;

use crate::helpers::seed::valid_fields;
use crate::helpers::{authed, closed_within, http_post, Backend, TestApp};

crate::both_backends!(
    tuned:
    connections_past_the_cap_are_closed_at_once_and_slots_come_back => |c: &mut Config| {
        c.conn.max_connections = 3;
    },
    a_silent_connection_is_closed => |c: &mut Config| {
        c.conn.idle_timeout = Duration::from_secs(2);
        c.request_timeout = Duration::from_secs(1);
        c.limits.body_timeout = Duration::from_millis(500);
    },
    a_body_trickled_in_is_cut_off_with_408_and_logged => |c: &mut Config| {
        c.limits.body_timeout = Duration::from_millis(200);
    },
    failed_authentications_are_limited_per_address_with_a_retry_hint => |c: &mut Config| {
        c.rate_limits.failed_auth_per_sec = 5;
    },
    pushes_are_limited_per_token_with_a_retry_hint => |c: &mut Config| {
        c.rate_limits.pushes_per_sec = 1;
    },
    a_tenants_log_streams_past_its_cap_are_refused_and_slots_come_back => |c: &mut Config| {
        c.rate_limits.streams_per_tenant = 2;
    },
);

async fn a_tenants_log_streams_past_its_cap_are_refused_and_slots_come_back(app: TestApp) {
    let tenant = app.create_tenant("acme").await;
    let crm = app.token(Role::Crm, &[&tenant]).await;
    let follow = || {
        authed(
            pb::StreamLogsRequest {
                tenant_id: "acme".into(),
                follow: true,
                ..Default::default()
            },
            &crm,
        )
    };
    let mut history = app.history().await;
    let first = history.stream_logs(follow()).await.unwrap();
    let _second = history.stream_logs(follow()).await.unwrap();
    let err = history.stream_logs(follow()).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("log streams"), "{err:?}");
    // Another tenant is not held back by acme's streams.
    let globex = app.create_tenant("globex").await;
    let other = app.token(Role::Crm, &[&globex]).await;
    let mut req = follow();
    req.get_mut().tenant_id = "globex".into();
    req.metadata_mut()
        .insert("authorization", format!("Bearer {other}").parse().unwrap());
    history.stream_logs(req).await.unwrap();
    // A viewer that leaves gives its slot back.
    drop(first);
    let mut opened = false;
    for _ in 0..100 {
        if history.stream_logs(follow()).await.is_ok() {
            opened = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(opened, "the slot of a closed stream never came back");
}

async fn connections_past_the_cap_are_closed_at_once_and_slots_come_back(app: TestApp) {
    let tenant = app.create_tenant("acme").await;
    let crm = app.token(Role::Crm, &[&tenant]).await;
    let addr = ("127.0.0.1", app.port);
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        // Answered: the server has accepted it (and counts it) before the fourth comes.
        s.write_all(b"GET /no-such-page HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut answer))
            .await
            .expect("an answer")
            .unwrap();
        assert!(answer[..n].starts_with(b"HTTP/1.1 "), "{:?}", &answer[..n]);
        held.push(s);
    }
    let mut extra = TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_within(&mut extra, Duration::from_secs(5)).await,
        "a fourth connection stayed open"
    );
    // The held ones are still open.
    let mut first = held.remove(0);
    assert!(!closed_within(&mut first, Duration::from_millis(300)).await);
    drop(first);
    drop(held);
    // Their slots come back: a real call goes through.
    let mut ok = false;
    for _ in 0..250 {
        if app.overview_ok("acme", &crm).await {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ok, "no call went through after the slots were freed");
}

async fn a_silent_connection_is_closed(app: TestApp) {
    let mut silent = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    assert!(
        closed_within(&mut silent, Duration::from_secs(30)).await,
        "a connection that sent nothing stayed open"
    );
}

async fn a_body_trickled_in_is_cut_off_with_408_and_logged(app: TestApp) {
    let tenant = app.create_tenant("acme").await;
    let erp = app.token(Role::Erp, &[&tenant]).await;
    let mut s = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    let head = format!(
        "POST /erp/v1/company HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {erp}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = async {
        // One more byte now and then, far slower than the deadline allows.
        loop {
            let mut buf = [0u8; 4096];
            tokio::select! {
                n = s.read(&mut buf) => match n {
                    Ok(0) | Err(_) => break,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                },
                () = tokio::time::sleep(Duration::from_millis(40)) => {
                    let _ = s.write_all(b" ").await;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("the server answers a trickled body");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"DEADLINE_EXCEEDED\""), "{text}");
    let acme = erpsync::domain::tenant::TenantId::parse("acme").unwrap();
    let now = chrono::Utc::now();
    let logged = erpsync::storage::request_log::list(
        &app.state.db,
        &acme,
        now - chrono::Duration::hours(1),
        now + chrono::Duration::hours(1),
        100,
    )
    .await
    .unwrap();
    assert!(
        logged.iter().any(|e| e.status == "DEADLINE_EXCEEDED"),
        "{logged:#?}"
    );
}

async fn failed_authentications_are_limited_per_address_with_a_retry_hint(app: TestApp) {
    let tenant = app.create_tenant("acme").await;
    let erp = app.token(Role::Erp, &[&tenant]).await;
    let crm = app.token(Role::Crm, &[&tenant]).await;
    let body = serde_json::to_vec(&json!({"records": []})).unwrap();
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..40 {
        let (status, text) =
            http_post(app.port, "/erp/v1/company", Some("not-a-token"), &body).await;
        if status == 429 {
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["error"]["code"], "RESOURCE_EXHAUSTED", "{text}");
            retry_after = Some(text);
        }
        statuses.push(status);
    }
    assert_eq!(statuses[0], 401);
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    assert!(retry_after.unwrap().contains("retry in"));
    // gRPC from the same address: RESOURCE_EXHAUSTED with RetryInfo.
    let err = app
        .history()
        .await
        .get_overview(authed(
            GetOverviewRequest {
                tenant_id: "acme".into(),
            },
            "not-a-token",
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    let wait = err
        .get_details_retry_info()
        .and_then(|r| r.retry_delay)
        .expect("a retry hint");
    // A throttled address is refused whatever it sends, a correct token too…
    let err = app
        .history()
        .await
        .get_overview(authed(
            GetOverviewRequest {
                tenant_id: "acme".into(),
            },
            &crm,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("from this address"), "{err:?}");
    let ok = serde_json::to_vec(
        &json!({"records": [{"external_id": "c1", "fields": valid_fields("company")}]}),
    )
    .unwrap();
    let (status, text) = http_post(app.port, "/erp/v1/company", Some(&erp), &ok).await;
    assert_eq!(status, 429, "{text}");
    // …before any token is looked up: with the token table gone, a lookup would fail
    // (INTERNAL / 500), yet the answer is still the throttle's.
    rename_table(&app, "api_token", "api_token_away").await;
    for token in [erp.as_str(), "esk_000000000000_00", "not-a-token"] {
        let (status, text) = http_post(app.port, "/erp/v1/company", Some(token), &ok).await;
        assert_eq!(status, 429, "{token}: {text}");
    }
    rename_table(&app, "api_token_away", "api_token").await;
    // Once the hinted wait is over, the correct token is let through again.
    tokio::time::sleep(wait).await;
    assert!(app.overview_ok("acme", &crm).await);
    let (status, text) = http_post(app.port, "/erp/v1/company", Some(&erp), &ok).await;
    assert_eq!(status, 200, "{text}");
}

/// Renames a table of the test's database behind the server's back.
async fn rename_table(app: &TestApp, from: &str, to: &str) {
    use sqlx::Connection;
    let sql = format!("ALTER TABLE {from} RENAME TO {to}");
    match app.backend {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(app.database_url())
                .await
                .unwrap();
            sqlx::query(&sql).execute(&mut c).await.unwrap();
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(app.database_url())
                .await
                .unwrap();
            sqlx::query(&sql).execute(&mut c).await.unwrap();
        }
    }
}

async fn pushes_are_limited_per_token_with_a_retry_hint(app: TestApp) {
    let tenant = app.create_tenant("acme").await;
    let erp = app.token(Role::Erp, &[&tenant]).await;
    let other = app.token(Role::Erp, &[&tenant]).await;
    let body = serde_json::to_vec(
        &json!({"records": [{"external_id": "c1", "fields": valid_fields("company")}]}),
    )
    .unwrap();
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            http_post(app.port, "/erp/v1/company", Some(&erp), &body)
                .await
                .0,
        );
    }
    assert_eq!(&statuses[..2], [200, 200], "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
    // Another token of the same tenant has its own budget.
    assert_eq!(
        http_post(app.port, "/erp/v1/company", Some(&other), &body)
            .await
            .0,
        200
    );
    // gRPC Push counts on the same budget.
    let err = app
        .ingest()
        .await
        .push(authed(
            pb::PushRequest {
                tenant_id: "acme".into(),
                table: "company".into(),
                records: vec![],
            },
            &erp,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.get_details_retry_info().is_some());
}
