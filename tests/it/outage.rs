//! A database outage, made by cutting the server under test off PostgreSQL with a proxy the
//! test owns (the shared PostgreSQL server is never stopped): calls answer UNAVAILABLE /
//! 503 with a retry hint, tokens that are simply malformed are still refused, health turns
//! NOT_SERVING and back, and nothing acknowledged before the outage is lost.
//!
//! PostgreSQL only: a SQLite file cannot be cut away like a server; how its errors are
//! sorted (SQLITE_BUSY, a read-only or corrupt file: not an outage) is tested in
//! `src/error.rs`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chrono::Utc;
use erpsync::domain::tenant::TenantId;
use erpsync::domain::token::Role;
use erpsync::error::UNAVAILABLE_RETRY_AFTER;
use erpsync::grpc::pb::{
    erp_ingest_server, integration_history_server, GetOverviewRequest, PushRequest,
};
use erpsync::storage::{request_log, staging};
use serde_json::{json, Value};
use tonic::{Code, Status};
use tonic_health::pb::{health_check_response::ServingStatus, HealthCheckRequest};
use tonic_types::StatusExt;

use crate::helpers::seed::{record, valid_fields};
use crate::helpers::{
    authed, http_post, http_post_with_head, spawn_app_with, Backend, PgProxy, TestApp, PG_ENV,
};

/// How long health may take to follow the database before the test gives up.
const HEALTH_DEADLINE: Duration = Duration::from_secs(60);

/// A token of the right shape that no row holds: only the database can tell.
const UNKNOWN_TOKEN: &str =
    "esk_0123456789ab_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A server whose every database connection goes through `proxy`.
struct Outage {
    app: TestApp,
    proxy: PgProxy,
    tenant: TenantId,
    crm: String,
    erp: String,
}

/// None (and a note) when no test PostgreSQL is configured.
async fn setup() -> Option<Outage> {
    let Some(admin) = std::env::var(PG_ENV).ok().filter(|v| !v.is_empty()) else {
        eprintln!("{PG_ENV} unset: the outage tests need PostgreSQL and were not run");
        return None;
    };
    let proxy = PgProxy::start(&admin).await;
    let app = spawn_app_with(Backend::Postgres, |cfg| {
        cfg.database_url = proxy.route(&cfg.database_url);
    })
    .await?;
    assert!(
        app.database_url().contains(&proxy.addr().to_string()),
        "the server under test goes through the proxy: {}",
        app.database_url()
    );
    let tenant = app.create_tenant("acme").await;
    let crm = app.token(Role::Crm, &[&tenant]).await;
    let erp = app.token(Role::Erp, &[&tenant]).await;
    Some(Outage {
        app,
        proxy,
        tenant,
        crm,
        erp,
    })
}

impl Outage {
    async fn overview(&self, token: &str) -> Result<(), Status> {
        let req = GetOverviewRequest {
            tenant_id: self.tenant.to_string(),
        };
        let mut client = self.app.history().await;
        client.get_overview(authed(req, token)).await.map(|_| ())
    }

    /// A gRPC push of one company; its request id when accepted.
    async fn grpc_push(&self, token: &str, id: &str) -> Result<String, Status> {
        let req = PushRequest {
            tenant_id: self.tenant.to_string(),
            table: "company".into(),
            records: vec![record(id, &valid_fields("company"))],
        };
        let mut client = self.app.ingest().await;
        let reply = client.push(authed(req, token)).await?.into_inner();
        assert_eq!(reply.accepted, 1, "{reply:?}");
        Ok(reply.request_id)
    }

    /// An HTTP push of one company: status, head and body.
    async fn http_push(&self, token: &str, id: &str) -> (u16, String, String) {
        let body = json!({"records": [{"external_id": id, "fields": valid_fields("company")}]});
        let body = serde_json::to_vec(&body).unwrap();
        http_post_with_head(self.app.port, "/erp/v1/company", Some(token), &body).await
    }

    /// The server's health as the health service answers for `service` ("": the server).
    async fn health(&self, service: &str) -> ServingStatus {
        let req = HealthCheckRequest {
            service: service.into(),
        };
        let answer = self.app.health().await.check(req).await;
        answer.expect("health answers").into_inner().status()
    }

    /// Every name health answers for: the server and each service.
    async fn health_of_all(&self) -> Vec<(&'static str, ServingStatus)> {
        let mut all = Vec::new();
        for name in [
            "",
            integration_history_server::SERVICE_NAME,
            erp_ingest_server::SERVICE_NAME,
        ] {
            all.push((name, self.health(name).await));
        }
        all
    }

    /// Polls the server's health until it reads `want`; how long that took.
    async fn health_becomes(&self, want: ServingStatus) -> Duration {
        let started = Instant::now();
        loop {
            let now = self.health("").await;
            if now == want {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < HEALTH_DEADLINE,
                "health still {now:?}, not {want:?}, after {HEALTH_DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// The gRPC answer to a call that met the outage: UNAVAILABLE from the server itself
/// (its message and RetryInfo, which a client-side transport failure would not carry).
fn assert_outage(call: &str, answer: Result<impl std::fmt::Debug, Status>) {
    let status = answer.expect_err(call);
    assert_eq!(status.code(), Code::Unavailable, "{call}: {status:?}");
    assert!(
        status.message().contains("database is unreachable"),
        "{call}: {status:?}"
    );
    let retry = status.get_details_retry_info();
    assert_eq!(
        retry.and_then(|r| r.retry_delay),
        Some(UNAVAILABLE_RETRY_AFTER),
        "{call}: {status:?}"
    );
}

/// The HTTP answer to a push that met the outage: 503, `Retry-After`, the JSON error shape,
/// and no request id (nothing could be logged).
fn assert_http_outage(call: &str, (status, head, body): (u16, String, String)) {
    assert_eq!(status, 503, "{call}: {head}\n{body}");
    let retry_after = head
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
        })
        .map(|(_, v)| v.trim().to_owned());
    assert_eq!(
        retry_after,
        Some(UNAVAILABLE_RETRY_AFTER.as_secs().to_string()),
        "{call}: {head}"
    );
    let v: Value = serde_json::from_str(&body).expect("a JSON error");
    assert_eq!(v["error"]["code"], "UNAVAILABLE", "{call}: {body}");
    let message = v["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("database is unreachable"),
        "{call}: {body}"
    );
    assert!(v.get("request_id").is_none(), "{call}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_during_an_outage_answer_unavailable_and_nothing_acknowledged_is_lost() {
    let Some(mut o) = setup().await else { return };
    // Acknowledged before the outage: one push over each transport.
    let (status, _, body) = o.http_push(&o.erp, "before-http").await;
    assert_eq!(status, 200, "{body}");
    let http_id = serde_json::from_str::<Value>(&body).unwrap()["request_id"]
        .as_str()
        .expect("a request id")
        .to_owned();
    let grpc_id = o.grpc_push(&o.erp, "before-grpc").await.expect("pushed");
    o.overview(&o.crm)
        .await
        .expect("overview before the outage");

    o.proxy.sever().await;
    let severed = Instant::now();
    let first = o.overview(&o.crm).await;
    eprintln!(
        "sever → first UNAVAILABLE (GetOverview): {:?}",
        severed.elapsed()
    );
    assert_outage("GetOverview", first);

    // Every database-backed call, at once: each is bounded by the database timeout.
    let (grpc_push, http_push, unknown_grpc, unknown_http) = tokio::join!(
        o.grpc_push(&o.erp, "during-grpc"),
        o.http_push(&o.erp, "during-http"),
        o.overview(UNKNOWN_TOKEN),
        o.http_push(UNKNOWN_TOKEN, "during-unknown"),
    );
    eprintln!(
        "four more calls answered {:?} after the sever",
        severed.elapsed()
    );
    assert_outage("ErpIngest/Push", grpc_push);
    assert_http_outage("POST /erp/v1/company", http_push);
    // A well-formed token cannot be checked without the database: not UNAUTHENTICATED.
    assert_outage("GetOverview with an unknown token", unknown_grpc);
    assert_http_outage("POST with an unknown token", unknown_http);

    // What can be decided without the database still is.
    let garbage = o.overview("not-a-token").await.expect_err("refused");
    assert_eq!(garbage.code(), Code::Unauthenticated, "{garbage:?}");
    let body = serde_json::to_vec(&json!({"records": []})).unwrap();
    let (status, text) = http_post(o.app.port, "/erp/v1/company", Some("esk_nope"), &body).await;
    assert_eq!(status, 401, "{text}");
    let (status, text) = http_post(o.app.port, "/erp/v1/company", None, &body).await;
    assert_eq!(status, 401, "{text}");

    o.proxy.restore().await;
    o.overview(&o.crm).await.expect("overview after the outage");
    let (status, _, body) = o.http_push(&o.erp, "after-http").await;
    assert_eq!(status, 200, "{body}");
    let after_id = serde_json::from_str::<Value>(&body).unwrap()["request_id"]
        .as_str()
        .expect("a request id")
        .to_owned();

    // Everything acknowledged is there; nothing refused left a trace.
    let db = &o.app.state.db;
    let staged: BTreeSet<String> = staging::list(db, &o.tenant, "company")
        .await
        .expect("staging reads")
        .into_iter()
        .map(|r| r.external_id)
        .collect();
    let want: BTreeSet<String> = ["before-http", "before-grpc", "after-http"]
        .map(String::from)
        .into();
    assert_eq!(staged, want);
    let now = Utc::now();
    let logged: BTreeSet<String> = request_log::list(
        db,
        &o.tenant,
        now - chrono::Duration::hours(1),
        now + chrono::Duration::hours(1),
        100,
    )
    .await
    .expect("request log reads")
    .into_iter()
    .map(|e| e.id)
    .collect();
    assert_eq!(logged, [http_id, grpc_id, after_id].into());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_not_serving_while_the_database_is_away_and_serving_when_it_is_back() {
    let Some(mut o) = setup().await else { return };
    for (name, status) in o.health_of_all().await {
        assert_eq!(status, ServingStatus::Serving, "{name:?}");
    }

    o.proxy.sever().await;
    let took = o.health_becomes(ServingStatus::NotServing).await;
    eprintln!("sever → health NOT_SERVING: {took:?}");
    for (name, status) in o.health_of_all().await {
        assert_eq!(status, ServingStatus::NotServing, "{name:?}");
    }
    // Health itself needs no database and no token: it answers throughout.
    assert_outage("GetOverview", o.overview(&o.crm).await);

    o.proxy.restore().await;
    let took = o.health_becomes(ServingStatus::Serving).await;
    eprintln!("restore → health SERVING: {took:?}");
    for (name, status) in o.health_of_all().await {
        assert_eq!(status, ServingStatus::Serving, "{name:?}");
    }
    o.overview(&o.crm).await.expect("overview after the outage");
    o.grpc_push(&o.erp, "after")
        .await
        .expect("push after the outage");
}
