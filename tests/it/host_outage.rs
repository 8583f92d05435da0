//! The host CRM goes away: a real gRPC CrmSink server, in a runtime of its own, stopped
//! mid-run (every socket closed) and started again on the same port. The run waits for
//! it under the delivery policy, logs every retry, and the host ends with every record;
//! a run that fails anyway is retried by the scheduler (trigger RETRY), a bounded number
//! of times; a run whose server died is INTERRUPTED in its tenant's log and run again.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use erpsync::domain::run::RunTrigger;
use erpsync::grpc::pb;
use erpsync::worker::delivery::DeliveryPolicy;
use erpsync::worker::scheduler::tick;

use crate::both_backends;
use crate::helpers::runs::{held_run, table, wait_idle};
use crate::helpers::seed::{companies, tombstone};
use crate::helpers::seed::{record, valid_fields};
use crate::helpers::servers::app_with_host_sink_and;
use crate::helpers::sinks::{HostCrm, HostCrmService, Sent};
use crate::helpers::tenants::{setup, Ctx};
use crate::helpers::{authed, TestApp};

both_backends!(
    a_host_that_restarts_mid_run_is_waited_for_and_gets_every_record,
    a_failed_run_is_retried_by_the_scheduler_a_bounded_number_of_times,
    a_run_whose_server_died_is_interrupted_in_its_log_and_run_again,
    categories_are_sent_again_after_a_company_upsert,
    the_delete_guard_protects_a_host_crm,
    a_running_runs_stages_and_progress_are_shown,
    a_run_keeps_its_lease_while_it_waits_for_the_host,
    a_retry_run_resends_what_the_host_applied_with_the_same_keys_and_versions,
);

/// A host CRM server in a runtime (and thread) of its own: stopping it drops the runtime,
/// which closes the listener and every connection at once, as a killed process would.
struct HostServer {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HostServer {
    fn start(host: Arc<HostCrm>, port: u16) -> (Self, u16) {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (bound_tx, bound_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
                    .await
                    .unwrap();
                bound_tx
                    .send(listener.local_addr().unwrap().port())
                    .unwrap();
                let serve = tonic::transport::Server::builder()
                    .add_service(pb::crm_sink_server::CrmSinkServer::new(HostCrmService(
                        host,
                    )))
                    .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
                tokio::select! {
                    _ = serve => {}
                    _ = stopped => {}
                }
            });
            // Dropping the runtime drops every connection task: the sockets close.
            rt.shutdown_background();
        });
        let port = bound_rx.recv().unwrap();
        (
            Self {
                stop: Some(stop),
                thread: Some(thread),
            },
            port,
        )
    }

    fn kill(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

impl Drop for HostServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A delivery policy that waits out an outage of a few seconds, scaled down from the
/// default's minute and a half.
fn patient() -> DeliveryPolicy {
    DeliveryPolicy {
        batch: 2,
        // Only the budget ends the retries.
        attempts: 0,
        backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(300),
        call_timeout: Duration::from_secs(2),
        batch_budget: Duration::from_secs(30),
    }
}

async fn host_app(app: TestApp, policy: DeliveryPolicy) -> (Ctx, Arc<HostCrm>, HostServer, u16) {
    host_app_with(app, |c| c.delivery = policy).await
}

async fn host_app_with(
    app: TestApp,
    tune: impl FnOnce(&mut erpsync::config::Config),
) -> (Ctx, Arc<HostCrm>, HostServer, u16) {
    let backend = app.backend;
    drop(app);
    let host = Arc::new(HostCrm::default());
    let (server, port) = HostServer::start(host.clone(), 0);
    let app = app_with_host_sink_and(backend, format!("grpc://127.0.0.1:{port}"), tune).await;
    (setup(app).await, host, server, port)
}

/// How long the host stays down: by default until the run has retried twice (see
/// [`RETRIES_WHILE_DOWN`]); `ERPSYNC_HOST_OUTAGE_MS=60000` shows the default delivery
/// policy waiting out a restart of a minute (the run takes that long), with
/// `--nocapture` printing the tenant's log of the run.
fn outage() -> (Option<Duration>, DeliveryPolicy) {
    let ms: Option<u64> = std::env::var("ERPSYNC_HOST_OUTAGE_MS")
        .ok()
        .and_then(|v| v.parse().ok());
    let policy = if ms.is_some_and(|ms| ms >= 10_000) {
        DeliveryPolicy {
            batch: 2,
            ..DeliveryPolicy::default()
        }
    } else {
        patient()
    };
    (ms.map(Duration::from_millis), policy)
}

/// The run lease of [`a_run_keeps_its_lease_while_it_waits_for_the_host`]'s server.
const LEASE: chrono::Duration = chrono::Duration::seconds(2);

/// How many retries of a call the run logs while the host is down, by default.
const RETRIES_WHILE_DOWN: usize = 2;

/// Waits until the run `run_id` has logged `n` retries of a call (WARN "…; attempt …").
async fn logged_retries(ctx: &mut Ctx, run_id: &str, n: usize) {
    for _ in 0..2_000 {
        let got = ctx.get_run(run_id).await;
        let retries = got
            .log
            .iter()
            .filter(|e| e.level() == pb::LogLevel::Warn && e.message.contains("; attempt "))
            .count();
        if retries >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("run {run_id} did not log {n} retries in 20 s");
}

async fn a_host_that_restarts_mid_run_is_waited_for_and_gets_every_record(app: TestApp) {
    let (down_for, policy) = outage();
    let (mut ctx, host, mut server, port) = host_app(app, policy).await;
    // The host holds 5 companies of its own: its count is not erpsync's.
    host.host_only.store(5, Ordering::SeqCst);
    host.delay_ms.store(100, Ordering::SeqCst);
    ctx.push("company", companies(0..20)).await;
    let run_id = ctx.trigger().await;
    host.wait_for_a_call().await;
    // The host restarts: down for a while, then up again on the same port.
    server.kill();
    match down_for {
        Some(down_for) => tokio::time::sleep(down_for).await,
        None => logged_retries(&mut ctx, &run_id, RETRIES_WHILE_DOWN).await,
    }
    let (_server, again) = HostServer::start(host.clone(), port);
    assert_eq!(again, port);

    let mut got = ctx.get_run(&run_id).await;
    for _ in 0..12_000 {
        if got.run.as_ref().unwrap().status() != pb::RunStatus::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        got = ctx.get_run(&run_id).await;
    }
    let run = got.run.as_ref().unwrap();
    assert_eq!(run.status(), pb::RunStatus::Success, "{:#?}", got.log);
    // The tenant's log of the run, for whoever runs this with --nocapture.
    for e in &got.log {
        eprintln!("{:?} {} {}", e.level(), e.stage, e.message);
    }
    let held = host.held.lock().unwrap()["company"].clone();
    assert_eq!(held.len(), 20, "every company reached the host");
    let retries: Vec<&pb::LogEvent> = got
        .log
        .iter()
        .filter(|e| e.level() == pb::LogLevel::Warn && e.message.contains("; attempt "))
        .collect();
    assert!(
        !retries.is_empty(),
        "retries are in the tenant's log: {:#?}",
        got.log
    );
    assert!(
        retries
            .iter()
            .all(|e| e.message.starts_with("UpsertCompanies of batch ")
                && e.message.contains(" (key ")
                && e.message.contains(" answered ")
                && e.table.as_deref() == Some("company")),
        "{retries:#?}"
    );
    // Every batch has a key of its own, the same on every attempt: a key that arrived
    // twice carried the same records.
    let calls = host.calls.lock().unwrap().clone();
    let keys = host.keys.lock().unwrap().clone();
    let mut by_key: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for (key, (_, _, ids)) in keys.iter().zip(&calls) {
        let first = by_key.entry(key.clone()).or_insert_with(|| ids.clone());
        assert_eq!(first, ids, "a repeated key carries its batch again");
    }
    assert_eq!(by_key.len(), 10, "20 companies in batches of 2");
    // The reconciliation shows the host's own count.
    assert_eq!(table(run, "company").crm_count, 25);
}

async fn a_failed_run_is_retried_by_the_scheduler_a_bounded_number_of_times(app: TestApp) {
    let policy = DeliveryPolicy {
        attempts: 2,
        batch_budget: Duration::from_secs(5),
        ..patient()
    };
    let (mut ctx, host, _server, _) = host_app(app, policy).await;
    host.failing.store(true, Ordering::SeqCst);
    ctx.push("company", companies(0..4)).await;
    let failed = ctx.run().await.run.unwrap();
    assert_eq!(failed.status(), pb::RunStatus::Failed);
    let company = table(&failed, "company");
    assert_eq!(
        (company.received, company.staged_count, company.inserted),
        (4, 4, 0),
        "a failed run says what is staged and what it delivered"
    );
    let state = ctx.app.state.clone();
    let ended = Utc::now();
    let at = |secs: i64| ended + chrono::Duration::seconds(secs);
    assert_eq!(
        tick(&state.worker, at(30)).await.unwrap().started,
        0,
        "not before its backoff"
    );
    // Three retries, 1, 2 and 4 minutes after each failure (the defaults), then none.
    assert_eq!(tick(&state.worker, at(61)).await.unwrap().started, 1);
    wait_idle(&mut ctx).await;
    assert_eq!(tick(&state.worker, at(61 + 121)).await.unwrap().started, 1);
    wait_idle(&mut ctx).await;
    assert_eq!(
        tick(&state.worker, at(61 + 121 + 241))
            .await
            .unwrap()
            .started,
        1
    );
    let runs = wait_idle(&mut ctx).await;
    assert_eq!(
        tick(&state.worker, at(86_400)).await.unwrap().started,
        0,
        "retries are bounded"
    );
    let triggers: Vec<(pb::RunTrigger, pb::RunStatus)> =
        runs.iter().map(|r| (r.trigger(), r.status())).collect();
    assert_eq!(
        triggers,
        [
            (pb::RunTrigger::Retry, pb::RunStatus::Failed),
            (pb::RunTrigger::Retry, pb::RunStatus::Failed),
            (pb::RunTrigger::Retry, pb::RunStatus::Failed),
            (pb::RunTrigger::Manual, pb::RunStatus::Failed),
        ]
    );

    // The host is back and someone runs again: that run resets the count; when it fails,
    // a retry follows, and succeeds.
    let failed = ctx.run().await.run.unwrap();
    assert_eq!(failed.status(), pb::RunStatus::Failed);
    host.failing.store(false, Ordering::SeqCst);
    assert_eq!(
        tick(&state.worker, Utc::now() + chrono::Duration::seconds(61))
            .await
            .unwrap()
            .started,
        1
    );
    let runs = wait_idle(&mut ctx).await;
    assert_eq!(
        (runs[0].trigger(), runs[0].status()),
        (pb::RunTrigger::Retry, pb::RunStatus::Success)
    );
    assert_eq!(host.held.lock().unwrap()["company"].len(), 4);
    assert_eq!(
        tick(&state.worker, Utc::now() + chrono::Duration::days(1))
            .await
            .unwrap()
            .started,
        0,
        "nothing to retry after a success"
    );
}

async fn a_run_whose_server_died_is_interrupted_in_its_log_and_run_again(app: TestApp) {
    let mut ctx = setup(app).await;
    ctx.push("company", companies(0..3)).await;
    // A server died mid-run a minute and a half ago: its lease expired.
    let ago = Utc::now() - chrono::Duration::seconds(90);
    let dead = held_run(&ctx, RunTrigger::Schedule, "dead", ago, ago).await;
    assert_eq!(
        tick(&ctx.app.state.worker, Utc::now())
            .await
            .unwrap()
            .started,
        1
    );
    let runs = wait_idle(&mut ctx).await;
    assert_eq!(
        (runs[0].trigger(), runs[0].status()),
        (pb::RunTrigger::Retry, pb::RunStatus::Success)
    );
    let redone = ctx.get_run(&runs[0].run_id).await.run.unwrap();
    assert_eq!(table(&redone, "company").inserted, 3, "the work is redone");
    let got = ctx.get_run(&dead.id).await;
    let run = got.run.unwrap();
    assert_eq!(run.status(), pb::RunStatus::Interrupted);
    assert!(
        run.errors[0].contains("the server running it stopped"),
        "{:?}",
        run.errors
    );
    assert!(
        got.log.iter().any(|e| e.level() == pb::LogLevel::Error
            && e.message
                .starts_with("run finished: INTERRUPTED: the server running it stopped")),
        "{:#?}",
        got.log
    );
}

/// A host whose upsert overwrites a company's categories gets them back in the same run:
/// every company upserted again is in that run's ApplyCategories, changed or not.
async fn categories_are_sent_again_after_a_company_upsert(app: TestApp) {
    let (mut ctx, host, _server, _) = host_app(app, patient()).await;
    ctx.push("company", companies(0..3)).await;
    let sent = |host: &HostCrm| -> Vec<String> {
        std::mem::take(&mut *host.categories.lock().unwrap())
            .into_iter()
            .map(|c| c.external_id)
            .collect()
    };
    assert_eq!(
        ctx.run().await.run.unwrap().status(),
        pb::RunStatus::Success
    );
    assert_eq!(sent(&host), ["c000", "c001", "c002"]);
    // Only c001's city changes: its categories do not, and come again all the same.
    let mut fields = crate::helpers::seed::valid_fields("company");
    fields["city"] = "Londrina".into();
    ctx.push(
        "company",
        vec![crate::helpers::seed::record("c001", &fields)],
    )
    .await;
    assert_eq!(
        ctx.run().await.run.unwrap().status(),
        pb::RunStatus::Success
    );
    assert_eq!(sent(&host), ["c001"]);
    assert_eq!(
        ctx.run().await.run.unwrap().status(),
        pb::RunStatus::Success
    );
    assert!(
        sent(&host).is_empty(),
        "nothing upserted, nothing changed, nothing sent"
    );
}

/// The delete guard weighs deletions against what the host CRM was delivered: an emptied
/// snapshot is held, nothing is deleted at the host, and the held deletions show the
/// names the host has.
async fn the_delete_guard_protects_a_host_crm(app: TestApp) {
    let (mut ctx, host, _server, _) = host_app(app, patient()).await;
    ctx.push("company", companies(0..60)).await;
    assert_eq!(
        ctx.run().await.run.unwrap().status(),
        pb::RunStatus::Success
    );
    ctx.push("company", (0..60).map(tombstone).collect()).await;
    let run = ctx.run().await.run.unwrap();
    assert_eq!(run.status(), pb::RunStatus::Partial);
    assert_eq!(table(&run, "company").held, 60);
    assert!(
        !host
            .calls
            .lock()
            .unwrap()
            .iter()
            .any(|c| c.0 == "DeleteCompanies"),
        "nothing deleted at the host"
    );
    assert_eq!(host.held.lock().unwrap()["company"].len(), 60);
    let pending = ctx
        .history
        .list_pending_deletes(authed(
            pb::ListPendingDeletesRequest {
                tenant_id: "acme".into(),
                table: "company".into(),
                page_size: 100,
                page_token: String::new(),
                ..Default::default()
            },
            &ctx.crm,
        ))
        .await
        .unwrap()
        .into_inner()
        .pending_deletes;
    assert_eq!(pending.len(), 60);
    assert!(pending
        .iter()
        .all(|p| p.name == "ACME Ltda" && p.state == "HELD"));
}

/// While a run delivers to a slow host, GetRun shows the stages it finished and the one
/// under way with its records done of the total; once it ends, every stage and no
/// progress.
async fn a_running_runs_stages_and_progress_are_shown(app: TestApp) {
    let (mut ctx, host, _server, _) = host_app(app, patient()).await;
    host.delay_ms.store(150, Ordering::SeqCst);
    ctx.push("company", companies(0..10)).await;
    let run_id = ctx.trigger().await;
    let mut seen = Vec::new();
    let done = loop {
        let got = ctx.get_run(&run_id).await;
        let run = got.run.unwrap();
        if run.status() != pb::RunStatus::Running {
            break run;
        }
        if let Some(c) = run.current.clone() {
            let finished: Vec<String> = run.stages.iter().map(|s| s.stage.clone()).collect();
            seen.push((finished, c));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(done.status(), pb::RunStatus::Success);
    assert!(done.current.is_none());
    assert_eq!(done.stages.len(), 7);
    let mid_push: Vec<&(Vec<String>, pb::RunProgress)> = seen
        .iter()
        .filter(|(_, c)| c.stage == "push" && c.done > 0 && c.done < c.total)
        .collect();
    assert!(!mid_push.is_empty(), "{seen:#?}");
    for (finished, c) in mid_push {
        assert_eq!(finished, &["collect", "validate", "delete_guard"]);
        assert_eq!((c.table.as_str(), c.total), ("company", 10));
        assert_eq!(c.done % 2, 0, "a batch of 2 at a time: {c:?}");
    }
}

/// A run that waits for the host longer than its lease lasts keeps the lease (renewed in
/// the background): the scheduler does not take it for a dead server's run.
async fn a_run_keeps_its_lease_while_it_waits_for_the_host(app: TestApp) {
    use erpsync::clock::{Clock, ManualClock};
    use erpsync::grpc::crm_sink_client::{GrpcSink, SinkTarget};
    use erpsync::storage::lease;
    use erpsync::worker::sink::EmbeddedSink;
    let backend = app.backend;
    drop(app);
    // The server's clock is the test's: lease lifetimes pass when the test says so.
    let clock = Arc::new(ManualClock::at_system_now());
    let host = Arc::new(HostCrm::default());
    let (mut server, port) = HostServer::start(host.clone(), 0);
    let target = SinkTarget::new(&format!("grpc://127.0.0.1:{port}"), &Default::default()).unwrap();
    let policy = patient();
    let app = crate::helpers::spawn_app_at(
        backend,
        |c| {
            c.delivery = policy;
            c.run_lease = LEASE;
            // Only this test's own ticks look for dead runs.
            c.scheduler_tick = Duration::from_secs(3600);
        },
        move |db| {
            Arc::new(GrpcSink::new(
                target,
                policy.call_timeout,
                EmbeddedSink::new(db),
            ))
        },
        clock.clone().into(),
    )
    .await
    .unwrap();
    let mut ctx = setup(app).await;
    ctx.push("company", companies(0..4)).await;
    server.kill();
    let run_id = ctx.trigger().await;
    let acme = erpsync::domain::tenant::TenantId::parse("acme").unwrap();
    // Three lease lifetimes later by the clock, the run, still waiting for the host, has
    // renewed its lease past the new now (it renews every quarter of a lifetime).
    let later = clock.advance(LEASE * 3);
    let mut renewed = false;
    for _ in 0..1_000 {
        let expiry = lease::expiry(&ctx.app.state.db, &acme, &run_id)
            .await
            .unwrap();
        if expiry.is_some_and(|at| at > later) {
            renewed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(renewed, "the waiting run never renewed its lease");
    assert_eq!(
        tick(&ctx.app.state.worker, clock.now())
            .await
            .unwrap()
            .started,
        0
    );
    let got = ctx.get_run(&run_id).await;
    assert_eq!(
        got.run.unwrap().status(),
        pb::RunStatus::Running,
        "{:#?}",
        got.log
    );
    let (_server, _) = HostServer::start(host.clone(), port);
    let runs = wait_idle(&mut ctx).await;
    assert_eq!(runs.len(), 1, "one run, never interrupted nor retried");
    assert_eq!(runs[0].status(), pb::RunStatus::Success);
    assert_eq!(host.held.lock().unwrap()["company"].len(), 4);
}

/// The host goes down mid-push for longer than the run's budget: the run fails, and its
/// RETRY run sends the batches the host had applied with the keys and versions they had
/// then. Every CrmSink method carries a content-derived key and a version per record
/// (the host refuses a call without them); a version names the push that last changed
/// the record and the ERP's updated_at.
async fn a_retry_run_resends_what_the_host_applied_with_the_same_keys_and_versions(app: TestApp) {
    let policy = DeliveryPolicy {
        batch_budget: Duration::from_millis(300),
        ..patient()
    };
    let (mut ctx, host, _server, _) = host_app(app, policy).await;
    let take = |host: &HostCrm| std::mem::take(&mut *host.sent.lock().unwrap());
    let first = ctx.push("company", companies(0..6)).await;
    let contacts = |ids: &[&str]| -> Vec<_> {
        ids.iter()
            .map(|id| record(id, &valid_fields("contact")))
            .collect()
    };
    let first_contacts = ctx.push("contact", contacts(&["p1", "p2"])).await;
    assert_eq!(
        ctx.run().await.run.unwrap().status(),
        pb::RunStatus::Success
    );
    let run1 = take(&host);
    let methods = |sent: &[Sent]| -> std::collections::BTreeSet<String> {
        sent.iter().map(|s| s.method.clone()).collect()
    };
    assert_eq!(
        methods(&run1),
        ["ApplyCategories", "UpsertCompanies", "UpsertContacts"]
            .map(String::from)
            .into()
    );
    let version_of = |sent: &[Sent], method: &str, id: &str| -> pb::RecordVersion {
        sent.iter()
            .filter(|s| s.method == method)
            .flat_map(|s| &s.records)
            .find(|(i, _)| i == id)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{method} {id} not sent: {sent:#?}"))
    };
    for id in ["c000", "c005"] {
        let v = version_of(&run1, "UpsertCompanies", id);
        assert_eq!(
            (v.request_id.as_str(), v.updated_at),
            (first.as_str(), None)
        );
    }
    assert_eq!(
        version_of(&run1, "UpsertContacts", "p2").request_id,
        first_contacts
    );

    // New versions: c000..c004 move to another city (c000 with the ERP's time), c005
    // and p2 are deleted, p3 is new.
    let mut moved = valid_fields("company");
    moved["city"] = "Londrina".into();
    let stamp = prost_types::Timestamp {
        seconds: 1_780_000_000,
        nanos: 0,
    };
    let mut updates: Vec<_> = (0..5)
        .map(|i| record(&format!("c{i:03}"), &moved))
        .collect();
    updates[0].updated_at = Some(stamp);
    let update = ctx.push("company", updates).await;
    let delete = ctx.push("company", vec![tombstone(5)]).await;
    let mut p2 = record("p2", &valid_fields("contact"));
    (p2.fields, p2.deleted) = (None, true);
    let mut changes = contacts(&["p3"]);
    changes.push(p2);
    let contact_push = ctx.push("contact", changes).await;

    // The host applies two batches (c000-c001, c002-c003), then is down for longer than
    // the run's budget.
    *host.answers_left.lock().unwrap() = Some(2);
    let failed = ctx.run().await.run.unwrap();
    assert_eq!(
        failed.status(),
        pb::RunStatus::Failed,
        "{:?}",
        failed.errors
    );
    let run2 = take(&host);
    let applied: Vec<Vec<&str>> = run2
        .iter()
        .map(|s| s.records.iter().map(|(id, _)| id.as_str()).collect())
        .collect();
    assert_eq!(applied, [["c000", "c001"], ["c002", "c003"]]);

    // The host is back; the scheduler's RETRY run delivers the rest.
    *host.answers_left.lock().unwrap() = None;
    host.failing.store(false, Ordering::SeqCst);
    let due = Utc::now() + chrono::Duration::seconds(61);
    assert_eq!(tick(&ctx.app.state.worker, due).await.unwrap().started, 1);
    let runs = wait_idle(&mut ctx).await;
    assert_eq!(
        (runs[0].trigger(), runs[0].status()),
        (pb::RunTrigger::Retry, pb::RunStatus::Success)
    );
    let run3 = take(&host);
    assert_eq!(
        methods(&run3),
        [
            "ApplyCategories",
            "DeleteCompanies",
            "DeleteContacts",
            "UpsertCompanies",
            "UpsertContacts"
        ]
        .map(String::from)
        .into()
    );
    // What the host applied in the failed run comes again, if at all, as it came then:
    // same key, same records, same versions.
    for applied in &run2 {
        for (id, v) in &applied.records {
            for again in run3.iter().filter(|s| s.method == applied.method) {
                if again.records.iter().any(|(i, _)| i == id) {
                    assert_eq!(again, applied, "{id} came again in another batch");
                }
            }
            assert_eq!(v, &version_of(&run3, &applied.method, id));
        }
    }
    // Each version names the push that last changed the record, and the ERP's time.
    for i in 0..5 {
        let v = version_of(&run3, "UpsertCompanies", &format!("c{i:03}"));
        assert_eq!(v.request_id, update);
        assert_eq!(v.updated_at, (i == 0).then_some(stamp));
        assert_ne!(
            v.content_hash,
            version_of(&run1, "UpsertCompanies", &format!("c{i:03}")).content_hash
        );
    }
    assert_eq!(
        version_of(&run3, "DeleteCompanies", "c005").request_id,
        delete
    );
    assert_eq!(
        version_of(&run3, "DeleteContacts", "p2").request_id,
        contact_push
    );
    assert_eq!(
        version_of(&run3, "UpsertContacts", "p3").request_id,
        contact_push
    );
    // Categories sent again after a company's upsert are a new version of them.
    for i in 0..5 {
        let id = format!("c{i:03}");
        let (before, now) = (
            version_of(&run1, "ApplyCategories", &id),
            version_of(&run3, "ApplyCategories", &id),
        );
        assert_ne!(before.content_hash, now.content_hash, "{id}");
        assert_eq!((now.request_id.as_str(), now.updated_at), ("", None));
    }
    // A key is its content: in every run, one key, one batch; another batch, another key.
    let mut by_key: std::collections::BTreeMap<&str, &Sent> = Default::default();
    for s in run1.iter().chain(&run2).chain(&run3) {
        let first = by_key.entry(s.key.as_str()).or_insert(s);
        assert_eq!(*first, s, "one key, two batches");
    }
    let batches: std::collections::BTreeSet<String> = run1
        .iter()
        .chain(&run2)
        .chain(&run3)
        .map(|s| format!("{}{:?}", s.method, s.records))
        .collect();
    assert_eq!(by_key.len(), batches.len(), "two batches, one key");
}
