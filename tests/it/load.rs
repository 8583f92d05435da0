//! Truthful under load: ingestion's work in flight is bounded (a push past the limit is
//! answered busy, RESOURCE_EXHAUSTED / 429 with a retry hint, and leaves no trace), a full
//! pool is busy and never turns health NOT_SERVING, a database that is really away still
//! is UNAVAILABLE / NOT_SERVING, and runs and log followers keep going while ingestion
//! holds its whole share. Pushes hold their slots here by sending their bodies slowly
//! (a slot is taken before the body is read), which works alike on both backends.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use erpsync::domain::tenant::TenantId;
use erpsync::domain::token::Role;
use erpsync::error::BUSY_RETRY_AFTER;
use erpsync::grpc::pb::{self, GetRunRequest, PushRequest, StreamLogsRequest, TriggerSyncRequest};
use erpsync::storage::{staging, HeldConnection};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::{Code, Status};
use tonic_health::pb::{health_check_response::ServingStatus, HealthCheckRequest};
use tonic_types::StatusExt;

use crate::both_backends;
use crate::helpers::seed::{record, valid_fields};
use crate::helpers::{
    authed, http_post_with_head, spawn_app_with, Backend, PgProxy, TestApp, PG_ENV,
};

both_backends!(tuned:
    a_push_past_the_in_flight_limit_is_busy_leaves_no_trace_and_the_next_is_accepted
        => |c| c.limits.max_in_flight = 2,
    a_full_pool_answers_busy_and_health_stays_serving
        => |c| c.database_timeout = Duration::from_secs(1),
    a_run_and_a_log_follower_go_on_while_ingestion_holds_its_share
        => |c| c.limits.max_in_flight = 2,
);

/// How long a condition the test waits for may take before it gives up.
const PATIENCE: Duration = Duration::from_secs(60);

struct Ctx {
    app: TestApp,
    tenant: TenantId,
    erp: String,
    crm: String,
}

async fn setup(app: TestApp) -> Ctx {
    let tenant = app.create_tenant("acme").await;
    let erp = app.token(Role::Erp, &[&tenant]).await;
    let crm = app.token(Role::Crm, &[&tenant]).await;
    Ctx {
        app,
        tenant,
        erp,
        crm,
    }
}

/// The JSON body of an HTTP push of companies `ids`.
fn companies(ids: &[&str]) -> Vec<u8> {
    let records: Vec<Value> = ids
        .iter()
        .map(|id| json!({"external_id": id, "fields": valid_fields("company")}))
        .collect();
    serde_json::to_vec(&json!({ "records": records })).unwrap()
}

impl Ctx {
    /// A gRPC push of one company.
    async fn grpc_push(&self, id: &str) -> Result<pb::PushResponse, Status> {
        let req = PushRequest {
            tenant_id: self.tenant.to_string(),
            table: "company".into(),
            records: vec![record(id, &valid_fields("company"))],
        };
        let mut client = self.app.ingest().await;
        Ok(client.push(authed(req, &self.erp)).await?.into_inner())
    }

    /// An HTTP push of one company: status, head and body.
    async fn http_push(&self, id: &str) -> (u16, String, String) {
        http_post_with_head(
            self.app.port,
            "/erp/v1/company",
            Some(&self.erp),
            &companies(&[id]),
        )
        .await
    }

    /// The companies staged for acme.
    async fn staged(&self) -> BTreeSet<String> {
        staging::list(&self.app.state.db, &self.tenant, "company")
            .await
            .expect("staging reads")
            .into_iter()
            .map(|r| r.external_id)
            .collect()
    }

    /// Waits until ingestion has `n` pushes in flight.
    async fn in_flight(&self, n: usize) {
        let started = Instant::now();
        while self.app.state.ingestor.slots().in_flight() != n {
            assert!(started.elapsed() < PATIENCE, "never {n} pushes in flight");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn health(&self) -> ServingStatus {
        let req = HealthCheckRequest {
            service: String::new(),
        };
        let answer = self.app.health().await.check(req).await;
        answer.expect("health answers").into_inner().status()
    }
}

/// An HTTP push whose body is sent in two parts: it holds one of ingestion's slots from
/// its first part until [`SlowPush::finish`].
struct SlowPush {
    stream: tokio::net::TcpStream,
    rest: Vec<u8>,
}

impl SlowPush {
    async fn start(ctx: &Ctx, id: &str) -> Self {
        let body = companies(&[id]);
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", ctx.app.port))
            .await
            .unwrap();
        let head = format!(
            "POST /erp/v1/company HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\nAuthorization: Bearer {}\r\n\r\n",
            body.len(),
            ctx.erp
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&body[..1]).await.unwrap();
        Self {
            stream,
            rest: body[1..].to_vec(),
        }
    }

    /// Sends the rest of the body; the answer's status.
    async fn finish(mut self) -> u16 {
        self.stream.write_all(&self.rest).await.unwrap();
        let mut raw = Vec::new();
        self.stream.read_to_end(&mut raw).await.unwrap();
        let text = String::from_utf8_lossy(&raw);
        text.split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
}

/// A busy answer over gRPC: RESOURCE_EXHAUSTED, saying busy, with the retry hint.
fn assert_busy(call: &str, answer: Result<impl std::fmt::Debug, Status>) {
    let status = answer.expect_err(call);
    assert_eq!(status.code(), Code::ResourceExhausted, "{call}: {status:?}");
    let hint = format!("retry after {} ms", BUSY_RETRY_AFTER.as_millis());
    assert!(
        status.message().contains("the server is busy") && status.message().contains(&hint),
        "{call}: {status:?}"
    );
    let retry = status.get_details_retry_info().and_then(|r| r.retry_delay);
    assert_eq!(retry, Some(BUSY_RETRY_AFTER), "{call}: {status:?}");
}

/// A busy answer over HTTP: 429, `Retry-After`, the JSON error shape, no request id.
fn assert_http_busy(call: &str, (status, head, body): (u16, String, String)) {
    assert_eq!(status, 429, "{call}: {head}\n{body}");
    let retry_after = head.lines().find_map(|l| {
        l.split_once(':')
            .filter(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
            .map(|(_, v)| v.trim().to_owned())
    });
    assert_eq!(
        retry_after,
        Some(BUSY_RETRY_AFTER.as_secs().to_string()),
        "{call}: {head}"
    );
    let v: Value = serde_json::from_str(&body).expect("a JSON error");
    assert_eq!(v["error"]["code"], "RESOURCE_EXHAUSTED", "{call}: {body}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("the server is busy"), "{call}: {body}");
    assert!(v.get("request_id").is_none(), "{call}: {body}");
}

async fn a_push_past_the_in_flight_limit_is_busy_leaves_no_trace_and_the_next_is_accepted(
    app: TestApp,
) {
    let ctx = setup(app).await;
    assert_eq!(ctx.app.state.ingestor.slots().max(), 2);
    let first = SlowPush::start(&ctx, "held-1").await;
    let second = SlowPush::start(&ctx, "held-2").await;
    ctx.in_flight(2).await;

    assert_busy(
        "a third push over gRPC",
        ctx.grpc_push("refused-grpc").await,
    );
    assert_http_busy(
        "a third push over HTTP",
        ctx.http_push("refused-http").await,
    );
    // Refused before anything was read: no request-log entry, nothing staged.
    let now = chrono::Utc::now();
    let logged = erpsync::storage::request_log::list(
        &ctx.app.state.db,
        &ctx.tenant,
        now - chrono::Duration::hours(1),
        now + chrono::Duration::hours(1),
        100,
    )
    .await
    .expect("request log reads");
    assert!(logged.is_empty(), "nothing logged yet: {logged:?}");

    assert_eq!(first.finish().await, 200);
    assert_eq!(second.finish().await, 200);
    ctx.in_flight(0).await;
    let reply = ctx.grpc_push("after").await.expect("capacity is back");
    assert_eq!(reply.accepted, 1, "{reply:?}");
    let want: BTreeSet<String> = ["held-1", "held-2", "after"].map(String::from).into();
    assert_eq!(ctx.staged().await, want);
}

/// Takes every connection of the server's pool.
async fn fill_the_pool(app: &TestApp) -> Vec<HeldConnection> {
    let db = &app.state.db;
    let mut held = Vec::new();
    for _ in 0..db.max_connections() {
        held.push(db.hold_connection().await.expect("a connection"));
    }
    held
}

async fn a_full_pool_answers_busy_and_health_stays_serving(app: TestApp) {
    let ctx = setup(app).await;
    ctx.grpc_push("before").await.expect("pushed");
    let held = fill_the_pool(&ctx.app).await;

    assert_busy(
        "a push while the pool is full",
        ctx.grpc_push("refused-grpc").await,
    );
    assert_http_busy(
        "an HTTP push while the pool is full",
        ctx.http_push("refused-http").await,
    );
    // The probe has its own connection: the database answers it, and health says so.
    ctx.app
        .state
        .db
        .ping(Duration::from_secs(5))
        .await
        .expect("the probe is not queued behind the pool");
    assert_eq!(ctx.health().await, ServingStatus::Serving);

    drop(held);
    ctx.grpc_push("after")
        .await
        .expect("pushed once the pool frees");
    assert_eq!(ctx.health().await, ServingStatus::Serving);
    let want: BTreeSet<String> = ["before", "after"].map(String::from).into();
    assert_eq!(ctx.staged().await, want);
}

async fn a_run_and_a_log_follower_go_on_while_ingestion_holds_its_share(app: TestApp) {
    let ctx = setup(app).await;
    let records = (0..20)
        .map(|i| record(&format!("c{i}"), &valid_fields("company")))
        .collect();
    let req = PushRequest {
        tenant_id: ctx.tenant.to_string(),
        table: "company".into(),
        records,
    };
    let mut ingest = ctx.app.ingest().await;
    let reply = ingest
        .push(authed(req, &ctx.erp))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.accepted, 20, "{reply:?}");

    // Ingestion at its limits: every slot taken by a push, and as many connections held
    // as ingestion may hold (its share of the pool), as pushes mid-write would.
    let slow = vec![
        SlowPush::start(&ctx, "slow-1").await,
        SlowPush::start(&ctx, "slow-2").await,
    ];
    ctx.in_flight(2).await;
    let db = &ctx.app.state.db;
    let mut held = Vec::new();
    for _ in 0..db.ingest_share() {
        held.push(db.hold_connection().await.expect("a connection"));
    }
    assert_busy("a push past the limit", ctx.grpc_push("refused").await);

    let mut history = ctx.app.history().await;
    let mut follower = history
        .stream_logs(authed(
            StreamLogsRequest {
                tenant_id: ctx.tenant.to_string(),
                follow: true,
                ..Default::default()
            },
            &ctx.crm,
        ))
        .await
        .expect("the follower opens")
        .into_inner();
    let started = history
        .trigger_sync(authed(
            TriggerSyncRequest {
                tenant_id: ctx.tenant.to_string(),
            },
            &ctx.crm,
        ))
        .await
        .expect("the run starts")
        .into_inner();
    let run_id = started.run.expect("a run").run_id;

    // The follower sees the run's events as they are appended.
    let seen = tokio::time::timeout(PATIENCE, async {
        loop {
            let event = follower
                .message()
                .await
                .expect("the stream is healthy")
                .expect("the stream is open");
            if event.run_id == run_id {
                return event;
            }
        }
    })
    .await
    .expect("an event of the run reaches the follower");
    assert!(!seen.message.is_empty(), "{seen:?}");

    let since = Instant::now();
    let run = loop {
        let got = history
            .get_run(authed(
                GetRunRequest {
                    tenant_id: ctx.tenant.to_string(),
                    run_id: run_id.clone(),
                },
                &ctx.crm,
            ))
            .await
            .expect("GetRun answers")
            .into_inner()
            .run
            .expect("the run");
        if got.status() != pb::RunStatus::Running {
            break got;
        }
        assert!(since.elapsed() < PATIENCE, "the run never ended");
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(run.status(), pb::RunStatus::Success, "{run:?}");

    drop(held);
    for push in slow {
        assert_eq!(push.finish().await, 200);
    }
}

/// PostgreSQL cut away while the pool is full: the probe fails, so the pool's timeouts are
/// an outage (UNAVAILABLE) and health turns NOT_SERVING.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pool_of_a_database_that_went_away_is_an_outage() {
    let Some(admin) = std::env::var(PG_ENV).ok().filter(|v| !v.is_empty()) else {
        eprintln!("{PG_ENV} unset: PostgreSQL only, not run");
        return;
    };
    let mut proxy = PgProxy::start(&admin).await;
    let app = spawn_app_with(Backend::Postgres, |cfg| {
        cfg.database_url = proxy.route(&cfg.database_url);
        cfg.database_timeout = Duration::from_secs(1);
    })
    .await
    .expect("PostgreSQL is configured");
    let ctx = setup(app).await;
    ctx.grpc_push("before").await.expect("pushed");
    let held = fill_the_pool(&ctx.app).await;

    proxy.sever().await;
    let started = Instant::now();
    while ctx.health().await != ServingStatus::NotServing {
        assert!(
            started.elapsed() < PATIENCE,
            "health never turned NOT_SERVING"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let status = ctx
        .grpc_push("during")
        .await
        .expect_err("the database is away");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        status.message().contains("database is unreachable"),
        "{status:?}"
    );
    let (code, head, body) = ctx.http_push("during-http").await;
    assert_eq!(code, 503, "{head}\n{body}");

    drop(held);
    proxy.restore().await;
    let started = Instant::now();
    while ctx.health().await != ServingStatus::Serving {
        assert!(started.elapsed() < PATIENCE, "health never came back");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    ctx.grpc_push("after")
        .await
        .expect("pushed after the outage");
}
