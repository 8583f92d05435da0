//! The graceful drain (SIGTERM): health NOT_SERVING for every service at once, no new run
//! (TriggerSync answers UNAVAILABLE with a retry hint), open streams ended UNAVAILABLE with
//! the same hint, other calls still served; the runs in progress finish, or, past the
//! deadline or at a second signal, are handed over — INTERRUPTED with their leases
//! released, so another replica's next scheduler tick retries them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use erpsync::domain::run::{RunStatus, RunTrigger};
use erpsync::domain::tenant::{Tenant, TenantId};
use erpsync::domain::token::{Grant, NewToken, Role, TenantScope};
use erpsync::error::{DRAINING_MESSAGE, DRAINING_RETRY_AFTER};
use erpsync::grpc::pb::{self, integration_history_client::IntegrationHistoryClient};
use erpsync::storage::{events, lease, runs, tenants, tokens, Db};
use serde_json::json;
use tokio::sync::Notify;
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use tonic_types::StatusExt;

use crate::both_backends;
use crate::helpers::{
    authed, http_post, spawn_app_full, spawn_replica, Backend, Gate, GatedCrm, ScratchDb, TestApp,
};

both_backends!(backend:
    a_drain_refuses_new_runs_ends_streams_and_lets_the_running_run_finish,
    a_drain_past_its_deadline_hands_the_run_over_to_another_replica,
    a_second_stop_ends_the_drain_at_once,
    sigterm_drains_a_real_server_and_a_second_sigterm_hands_its_run_over,
);

/// The services health reports on, beside the server ("").
const SERVICES: [&str; 4] = [
    "",
    "erpsync.v1.IntegrationHistory",
    "erpsync.v1.ErpIngest",
    "erpsync.v1.Admin",
];

/// Bounds a wait that must end (never a timing assertion: only a hang guard).
const HANG: Duration = Duration::from_secs(60);

/// A server whose runs hold at their first companies' delivery until `gate` opens, with
/// a drain of `drain`.
async fn gated_app(backend: Backend, gate: &Gate, drain: Duration) -> Option<TestApp> {
    let gate = gate.clone();
    spawn_app_full(
        backend,
        move |c| c.drain = drain,
        move |db| {
            Arc::new(GatedCrm {
                inner: erpsync::worker::sink::EmbeddedSink::new(db),
                companies: gate,
                contacts: Gate::default(),
            })
        },
    )
    .await
}

/// A tenant with three companies staged, and its CRM and ERP tokens.
struct Tenanted {
    id: TenantId,
    crm: String,
    erp: String,
}

async fn issue(db: &Db, role: Role, tenant: &TenantId) -> String {
    let new = NewToken::generate().unwrap();
    let grant = Grant {
        token_id: new.id.clone(),
        role,
        scope: TenantScope::Listed(vec![tenant.clone()]),
    };
    tokens::insert(db, &new, &grant, None, Utc::now())
        .await
        .unwrap();
    new.secret
}

/// Creates `acme` on `db` with its tokens, and pushes three companies through `port`.
async fn tenant_with_companies(db: &Db, port: u16) -> Tenanted {
    let id = TenantId::parse("acme").unwrap();
    tenants::insert(db, &Tenant::new(id.clone(), "ACME".into(), Utc::now()))
        .await
        .unwrap();
    let t = Tenanted {
        crm: issue(db, Role::Crm, &id).await,
        erp: issue(db, Role::Erp, &id).await,
        id,
    };
    push(port, &t, &["c1", "c2", "c3"]).await;
    t
}

async fn push(port: u16, t: &Tenanted, ids: &[&str]) -> u16 {
    let records: Vec<_> = ids
        .iter()
        .map(|id| {
            json!({"external_id": id, "fields": {"name": "ACME Ltda", "document": "11.222.333/0001-81", "seller_id": "s1", "city": "Curitiba", "state": "PR"}})
        })
        .collect();
    let body = json!({ "records": records }).to_string();
    let (status, answer) = http_post(port, "/erp/v1/company", Some(&t.erp), body.as_bytes()).await;
    assert_eq!(status, 200, "{answer}");
    status
}

async fn history(port: u16) -> IntegrationHistoryClient<Channel> {
    IntegrationHistoryClient::connect(format!("http://127.0.0.1:{port}"))
        .await
        .expect("connects")
}

async fn health(port: u16) -> HealthClient<Channel> {
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .expect("connects");
    HealthClient::new(channel)
}

/// A StreamLogs follower of the tenant's log.
async fn follower(port: u16, t: &Tenanted) -> Streaming<pb::LogEvent> {
    history(port)
        .await
        .stream_logs(authed(
            pb::StreamLogsRequest {
                tenant_id: t.id.as_str().into(),
                follow: true,
                ..Default::default()
            },
            &t.crm,
        ))
        .await
        .unwrap()
        .into_inner()
}

async fn trigger(port: u16, t: &Tenanted) -> Result<pb::TriggerSyncResponse, Status> {
    history(port)
        .await
        .trigger_sync(authed(
            pb::TriggerSyncRequest {
                tenant_id: t.id.as_str().into(),
            },
            &t.crm,
        ))
        .await
        .map(|r| r.into_inner())
}

/// Waits until the server's health says NOT_SERVING (its Watch, which answers the
/// current status first and then every change): the drain has started.
async fn until_not_serving(port: u16) {
    let mut watch = health(port)
        .await
        .watch(HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    tokio::time::timeout(HANG, async {
        loop {
            let got = watch.message().await.expect("health watch").expect("open");
            if got.status() == ServingStatus::NotServing {
                return;
            }
        }
    })
    .await
    .expect("health turns NOT_SERVING");
}

/// Health of the server and of every service: NOT_SERVING, all of them.
async fn assert_not_serving_everywhere(port: u16) {
    let mut client = health(port).await;
    for service in SERVICES {
        let status = client
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status();
        assert_eq!(status, ServingStatus::NotServing, "service {service:?}");
    }
}

/// UNAVAILABLE, "this replica is draining", with a RetryInfo hint.
fn assert_draining(status: &Status) {
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(status.message(), DRAINING_MESSAGE);
    let retry = status.get_details_retry_info().expect("a RetryInfo detail");
    assert_eq!(retry.retry_delay, Some(DRAINING_RETRY_AFTER));
}

/// Reads the follower until its stream ends; the status it ended with, and the last
/// cursor it had (an event's or a heartbeat's), where a client resumes on another replica.
async fn end_of(stream: &mut Streaming<pb::LogEvent>) -> (Status, u64) {
    tokio::time::timeout(HANG, async {
        let mut cursor = 0;
        loop {
            match stream.message().await {
                Ok(Some(e)) => cursor = cursor.max(e.cursor),
                Ok(None) => panic!("the stream ended without a status"),
                Err(status) => return (status, cursor),
            }
        }
    })
    .await
    .expect("the stream ends")
}

/// The tenant's only RUNNING run, once it is held at the gate.
async fn held_run(db: &Db, t: &Tenanted, gate: &Gate) -> String {
    tokio::time::timeout(HANG, gate.reached.notified())
        .await
        .expect("the run reaches the sink");
    let recent = runs::recent(db, &t.id, 1).await.unwrap();
    assert_eq!(recent[0].status, RunStatus::Running);
    recent[0].id.clone()
}

/// No live lease on the tenant: a probe takes it (and gives it back).
async fn assert_no_lease(db: &Db, tenant: &TenantId) {
    let probe = uuid::Uuid::new_v4().to_string();
    let taken = lease::acquire(
        db,
        tenant,
        "probe",
        &probe,
        chrono::Duration::seconds(60),
        Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(taken, Ok(()), "a live lease is left");
    lease::release(db, tenant, &probe).await.unwrap();
}

/// First stop with a run held at the sink: health NOT_SERVING on every service,
/// TriggerSync refused UNAVAILABLE with the hint, the follower's stream ended UNAVAILABLE
/// with the hint, pushes and unary reads still served; the gate opens, the run finishes
/// SUCCESS, the drain ends and the server stops, its lease released.
async fn a_drain_refuses_new_runs_ends_streams_and_lets_the_running_run_finish(backend: Backend) {
    let gate = Gate::default();
    // A drain longer than any test: it ends because the run does.
    let Some(mut app) = gated_app(backend, &gate, Duration::from_secs(3600)).await else {
        return;
    };
    let t = tenant_with_companies(&app.state.db, app.port).await;
    let mut follow = follower(app.port, &t).await;
    let started = trigger(app.port, &t).await.unwrap();
    let run_id = started.run.unwrap().run_id;
    assert_eq!(held_run(&app.state.db, &t, &gate).await, run_id);

    app.stopper.stop();
    until_not_serving(app.port).await;
    assert_not_serving_everywhere(app.port).await;
    assert_draining(&trigger(app.port, &t).await.unwrap_err());
    let (end, cursor) = end_of(&mut follow).await;
    assert_draining(&end);
    assert!(cursor > 0, "the follower saw the run start before it ended");
    // Ingestion and unary calls go on while the load balancer drains the replica.
    push(app.port, &t, &["c4"]).await;
    assert!(app.overview_ok("acme", &t.crm).await);
    assert!(app.state.worker.runs().draining());

    gate.open.notify_one();
    tokio::time::timeout(HANG, app.stopped())
        .await
        .expect("the server stops once its run ended");
    let run = runs::get(&app.state.db, &t.id, &run_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.summary.status, RunStatus::Success, "{run:?}");
    assert_no_lease(&app.state.db, &t.id).await;
}

/// The gate never opens and the drain is short: at its deadline the run is handed over —
/// INTERRUPTED with the hand-over's cause, its lease released at once, the end in the
/// tenant's log — and another replica's next scheduler tick retries it (on PostgreSQL a
/// replica running beside the first all along; SQLite has one server per file, so there
/// the next server).
async fn a_drain_past_its_deadline_hands_the_run_over_to_another_replica(backend: Backend) {
    let gate = Gate::default();
    let Some(mut app) = gated_app(backend, &gate, Duration::from_millis(200)).await else {
        return;
    };
    // Its scheduler never ticks by itself: the test ticks it.
    let idle_scheduler = |c: &mut erpsync::config::Config| {
        c.scheduler_tick = Duration::from_secs(3600);
    };
    let replica = match backend {
        Backend::Postgres => Some(spawn_replica(&app, idle_scheduler).await),
        Backend::Sqlite => None,
    };
    let t = tenant_with_companies(&app.state.db, app.port).await;
    let run_id = trigger(app.port, &t).await.unwrap().run.unwrap().run_id;
    assert_eq!(held_run(&app.state.db, &t, &gate).await, run_id);

    app.stopper.stop();
    tokio::time::timeout(HANG, app.stopped())
        .await
        .expect("the drain ends at its deadline");
    let db = &app.state.db;
    let run = runs::get(db, &t.id, &run_id).await.unwrap().unwrap();
    assert_eq!(run.summary.status, RunStatus::Interrupted);
    assert_eq!(run.summary.error.as_deref(), Some(runs::HANDED_OVER_CAUSE));
    // Handed over mid-push: the stages it had finished stay.
    let finished: Vec<&str> = run.stages.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(finished, ["collect", "validate", "delete_guard"], "{run:?}");
    let log = events::for_run(db, &t.id, &run_id).await.unwrap();
    let last = &log.last().unwrap().message;
    assert!(
        last.starts_with(
            "run finished: INTERRUPTED: the replica shut down; another replica retries it"
        ),
        "{last}"
    );
    assert_no_lease(db, &t.id).await;

    let replica = match replica {
        Some(r) => r,
        None => spawn_replica(&app, idle_scheduler).await,
    };
    let started = erpsync::worker::scheduler::tick(&replica.state.worker, Utc::now())
        .await
        .unwrap();
    assert_eq!(
        started.started, 1,
        "the replica's next tick retries the run"
    );
    let retry = &runs::recent(&replica.state.db, &t.id, 1).await.unwrap()[0];
    assert_eq!(retry.trigger, RunTrigger::Retry);
    assert_ne!(retry.id, run_id);
    // The retry delivers what the handed-over run could not (the replica's embedded CRM).
    tokio::time::timeout(HANG, replica.state.worker.runs().idle())
        .await
        .expect("the retry ends");
    let retry = runs::get(&replica.state.db, &t.id, &retry.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(retry.summary.status, RunStatus::Success, "{retry:?}");
}

/// A drain with an hour to go ends at the second stop: the held run is handed over.
async fn a_second_stop_ends_the_drain_at_once(backend: Backend) {
    let gate = Gate::default();
    let Some(mut app) = gated_app(backend, &gate, Duration::from_secs(3600)).await else {
        return;
    };
    let t = tenant_with_companies(&app.state.db, app.port).await;
    let run_id = trigger(app.port, &t).await.unwrap().run.unwrap().run_id;
    held_run(&app.state.db, &t, &gate).await;
    app.stopper.stop();
    until_not_serving(app.port).await;
    assert_draining(&trigger(app.port, &t).await.unwrap_err());
    app.stopper.stop();
    tokio::time::timeout(HANG, app.stopped())
        .await
        .expect("the second stop ends the drain");
    let run = runs::get(&app.state.db, &t.id, &run_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(run.summary.status, RunStatus::Interrupted);
    assert_no_lease(&app.state.db, &t.id).await;
}

/// A host CRM whose every call hangs: a run delivering to it stays RUNNING.
#[derive(Clone, Default)]
struct HangingHost {
    reached: Arc<Notify>,
    called: Arc<AtomicBool>,
}

impl HangingHost {
    async fn hang<T>(&self) -> Result<tonic::Response<T>, Status> {
        if !self.called.swap(true, Ordering::SeqCst) {
            self.reached.notify_one();
        }
        std::future::pending().await
    }
}

#[tonic::async_trait]
impl pb::crm_sink_server::CrmSink for HangingHost {
    async fn upsert_companies(
        &self,
        _: tonic::Request<pb::UpsertCompaniesRequest>,
    ) -> Result<tonic::Response<pb::SinkResponse>, Status> {
        self.hang().await
    }
    async fn delete_companies(
        &self,
        _: tonic::Request<pb::DeleteRecordsRequest>,
    ) -> Result<tonic::Response<pb::SinkResponse>, Status> {
        self.hang().await
    }
    async fn upsert_contacts(
        &self,
        _: tonic::Request<pb::UpsertContactsRequest>,
    ) -> Result<tonic::Response<pb::SinkResponse>, Status> {
        self.hang().await
    }
    async fn delete_contacts(
        &self,
        _: tonic::Request<pb::DeleteRecordsRequest>,
    ) -> Result<tonic::Response<pb::SinkResponse>, Status> {
        self.hang().await
    }
    async fn apply_categories(
        &self,
        _: tonic::Request<pb::ApplyCategoriesRequest>,
    ) -> Result<tonic::Response<pb::SinkResponse>, Status> {
        self.hang().await
    }
    async fn count_records(
        &self,
        _: tonic::Request<pb::CountRecordsRequest>,
    ) -> Result<tonic::Response<pb::CountRecordsResponse>, Status> {
        // The server's probe at start: answered, so only the run's calls hang.
        Ok(tonic::Response::new(pb::CountRecordsResponse::default()))
    }
}

async fn start_hanging_host() -> (HangingHost, u16) {
    let host = HangingHost::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(pb::crm_sink_server::CrmSinkServer::new(host.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (host, port)
}

/// `erpsync serve` on `url` delivering to the host on `sink_port`; the child, its port,
/// and its log lines as they come.
fn serve(url: &str, sink_port: u16) -> (std::process::Child, u16, Arc<Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_erpsync"))
        .args(["serve", "--log-format", "json", "--listen", "127.0.0.1:0"])
        .args(["--crm-sink", &format!("grpc://127.0.0.1:{sink_port}")])
        .args(["--drain-secs", "3600"])
        .env("DATABASE_URL", url)
        .env_remove("ERPSYNC_LISTEN")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("runs the erpsync binary");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let port = loop {
        let line = lines.next().expect("a server log line").unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
        if v["fields"]["message"] == "erpsync ready" {
            let listen = v["fields"]["listen"].as_str().unwrap().to_owned();
            break listen.rsplit(':').next().unwrap().parse().unwrap();
        }
    };
    let log = Arc::new(Mutex::new(Vec::new()));
    let kept = log.clone();
    // Read to the end so the server never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            kept.lock().unwrap().push(line);
        }
    });
    (child, port, log)
}

/// The value of the sample `series` in a scrape of `GET /metrics`.
async fn metric(port: u16, series: &str) -> Option<f64> {
    crate::helpers::scrape(port).await.1.get(series).copied()
}

fn sigterm(child: &std::process::Child) {
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("runs kill");
    assert!(sent.success());
}

/// The real binary and real signals: after the first SIGTERM health is NOT_SERVING,
/// TriggerSync and the follower's stream are UNAVAILABLE with the hint, and the run
/// (its host CRM hangs) goes on; the second SIGTERM hands it over and the process exits 0.
async fn sigterm_drains_a_real_server_and_a_second_sigterm_hands_its_run_over(backend: Backend) {
    let Some(scratch) = ScratchDb::create(backend).await else {
        return;
    };
    let (host, sink_port) = start_hanging_host().await;
    let (mut child, port, log) = serve(&scratch.url, sink_port);
    let db = Db::connect(&scratch.url).await.unwrap();
    let t = tenant_with_companies(&db, port).await;
    let mut follow = follower(port, &t).await;
    let run_id = trigger(port, &t).await.unwrap().run.unwrap().run_id;
    tokio::time::timeout(HANG, host.reached.notified())
        .await
        .expect("the run reaches the host");

    // The process's own gauge (tests in one process share the metrics recorder).
    assert_eq!(metric(port, "erpsync_draining").await, Some(0.0));
    sigterm(&child);
    until_not_serving(port).await;
    assert_eq!(metric(port, "erpsync_draining").await, Some(1.0));
    assert_not_serving_everywhere(port).await;
    assert_draining(&trigger(port, &t).await.unwrap_err());
    let (end, _) = end_of(&mut follow).await;
    assert_draining(&end);
    push(port, &t, &["c4"]).await;
    assert_eq!(
        runs::get(&db, &t.id, &run_id)
            .await
            .unwrap()
            .unwrap()
            .summary
            .status,
        RunStatus::Running,
        "the run goes on while the replica drains"
    );

    sigterm(&child);
    let pid = child.id().to_string();
    let exit = tokio::time::timeout(HANG, tokio::task::spawn_blocking(move || child.wait()))
        .await
        .unwrap_or_else(|_| {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid])
                .status();
            panic!("the server did not exit after the second SIGTERM")
        })
        .unwrap()
        .unwrap();
    assert!(exit.success(), "exits 0: {exit:?}");
    let run = runs::get(&db, &t.id, &run_id).await.unwrap().unwrap();
    assert_eq!(run.summary.status, RunStatus::Interrupted);
    assert_eq!(run.summary.error.as_deref(), Some(runs::HANDED_OVER_CAUSE));
    assert_no_lease(&db, &t.id).await;
    let messages: Vec<String> = log
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["fields"]["message"].as_str().map(str::to_owned))
        .collect();
    for phase in [
        "drain started",
        "drain ended by a second signal",
        "drain finished",
    ] {
        assert!(
            messages.iter().any(|m| m.starts_with(phase)),
            "no {phase:?} in {messages:#?}"
        );
    }
}
