//! Progress and health that tell the truth: every stage of a run counts what it goes
//! through (GetRun.current while it runs, the stage's "done" event after), a run
//! interrupted after some stages keeps them with their times and outcomes, and a PARTIAL
//! run degrades health with its reason until a run succeeds.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use erpsync::domain::abc::Category;
use erpsync::domain::crm::{CrmCompany, CrmContact, Deletion};
use erpsync::domain::tenant::TenantId;
use erpsync::grpc::pb;
use erpsync::storage::events;
use erpsync::worker::sink::{CrmCounts, CrmSink, EmbeddedSink, SinkAck, SinkCall};
use tokio::sync::Notify;

use crate::both_backends;
use crate::cli::{erpsync, ok};
use crate::helpers::{spawn_app, spawn_app_full, Backend, TestApp};
use crate::ingest::{record, valid_fields};
use crate::sync::{companies, setup, tombstone, Ctx};

both_backends!(backend:
    every_stage_counts_what_it_goes_through_and_shows_it_while_it_runs,
    a_run_interrupted_after_some_stages_keeps_them_once_it_ended,
    a_partial_run_degrades_health_with_its_reason_until_a_run_succeeds,
);

/// Bounds a wait that must end (a hang guard, not a timing assertion).
const DEADLINE: Duration = Duration::from_secs(60);
/// Records per call to the CRM in these tests.
const BATCH: usize = 5;

/// Holds the `nth` call (1-based) of one kind until opened; every other call passes.
#[derive(Debug, Clone)]
struct Hold {
    nth: usize,
    calls: Arc<AtomicUsize>,
    reached: Arc<Notify>,
    open: Arc<Notify>,
}

impl Hold {
    fn at(nth: usize) -> Self {
        Self {
            nth,
            calls: Arc::default(),
            reached: Arc::default(),
            open: Arc::default(),
        }
    }

    async fn pass(&self) {
        if self.calls.fetch_add(1, Ordering::SeqCst) + 1 == self.nth {
            self.reached.notify_one();
            self.open.notified().await;
        }
    }

    async fn wait_reached(&self) {
        tokio::time::timeout(DEADLINE, self.reached.notified())
            .await
            .expect("the run reaches the held call");
    }
}

/// The embedded CRM, receiving categories like a host does (so categorize sends them in
/// batches), with one upsert of companies and one batch of categories held.
#[derive(Debug)]
struct SteppedCrm {
    inner: EmbeddedSink,
    companies: Hold,
    categories: Hold,
}

#[tonic::async_trait]
impl CrmSink for SteppedCrm {
    async fn upsert_companies(
        &self,
        call: SinkCall,
        rows: &[CrmCompany],
    ) -> erpsync::error::Result<SinkAck> {
        self.companies.pass().await;
        self.inner.upsert_companies(call, rows).await
    }
    async fn upsert_contacts(
        &self,
        call: SinkCall,
        rows: &[CrmContact],
    ) -> erpsync::error::Result<SinkAck> {
        self.inner.upsert_contacts(call, rows).await
    }
    async fn delete_companies(
        &self,
        call: SinkCall,
        ids: &[Deletion],
    ) -> erpsync::error::Result<SinkAck> {
        self.inner.delete_companies(call, ids).await
    }
    async fn delete_contacts(
        &self,
        call: SinkCall,
        ids: &[Deletion],
    ) -> erpsync::error::Result<SinkAck> {
        self.inner.delete_contacts(call, ids).await
    }
    async fn apply_categories(
        &self,
        call: SinkCall,
        rows: Vec<Category>,
    ) -> erpsync::error::Result<SinkAck> {
        self.categories.pass().await;
        self.inner.apply_categories(call, rows).await
    }
    async fn count_records(&self, tenant: &TenantId) -> erpsync::error::Result<Option<CrmCounts>> {
        self.inner.count_records(tenant).await
    }
    fn is_embedded(&self) -> bool {
        true
    }
    fn reads_stored_categories(&self) -> bool {
        false
    }
    fn destination(&self) -> String {
        "stepped embedded CRM".into()
    }
}

/// A server delivering to a [`SteppedCrm`] holding `companies` and `categories`, in
/// batches of [`BATCH`], with tenant acme; None when the backend is not available.
async fn stepped(backend: Backend, companies: &Hold, categories: &Hold) -> Option<Ctx> {
    let (companies, categories) = (companies.clone(), categories.clone());
    let app: TestApp = spawn_app_full(
        backend,
        |c| c.delivery.batch = BATCH,
        move |db| {
            Arc::new(SteppedCrm {
                inner: EmbeddedSink::new(db),
                companies,
                categories,
            })
        },
    )
    .await?;
    Some(setup(app).await)
}

/// Polls GetRun (every few ms, up to [`DEADLINE`]) until `want` holds of its progress.
async fn until_current(
    ctx: &mut Ctx,
    run_id: &str,
    want: impl Fn(&pb::RunProgress) -> bool,
) -> pb::Run {
    let started = std::time::Instant::now();
    loop {
        let run = ctx.get_run(run_id).await.run.unwrap();
        if run.current.as_ref().is_some_and(&want) {
            return run;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "progress never got there: {run:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits for the end of run `run_id` (bounded), returning it.
async fn until_ended(ctx: &mut Ctx, run_id: &str) -> pb::GetRunResponse {
    let started = std::time::Instant::now();
    loop {
        let got = ctx.get_run(run_id).await;
        if got.run.as_ref().unwrap().status() != pb::RunStatus::Running {
            return got;
        }
        assert!(started.elapsed() < DEADLINE, "run {run_id} did not end");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn acme() -> TenantId {
    TenantId::parse("acme").unwrap()
}

async fn every_stage_counts_what_it_goes_through_and_shows_it_while_it_runs(backend: Backend) {
    let (companies_hold, categories_hold) = (Hold::at(2), Hold::at(2));
    let Some(mut ctx) = stepped(backend, &companies_hold, &categories_hold).await else {
        return;
    };
    // 12 companies, 3 contacts and 2 deletions of companies the CRM never had.
    ctx.push("company", companies(0..12)).await;
    ctx.push(
        "contact",
        (0..3)
            .map(|i| record(&format!("p{i:03}"), &valid_fields("contact")))
            .collect(),
    )
    .await;
    ctx.push("company", vec![tombstone(100), tombstone(101)])
        .await;
    let run_id = ctx.trigger().await;

    // Held at the second batch of companies: the first one's 5 records are done.
    companies_hold.wait_reached().await;
    let run = until_current(&mut ctx, &run_id, |c| c.stage == "push" && c.done > 0).await;
    let c = run.current.unwrap();
    assert_eq!((c.table.as_str(), c.done, c.total), ("company", 5, 17));
    let finished: Vec<&str> = run.stages.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(finished, ["collect", "validate", "delete_guard"]);
    companies_hold.open.notify_one();

    // Held at the second batch of categories: the first one's companies are done.
    categories_hold.wait_reached().await;
    let run = until_current(&mut ctx, &run_id, |c| c.stage == "categorize" && c.done > 0).await;
    let c = run.current.unwrap();
    assert_eq!((c.table.as_str(), c.done, c.total), ("company", 5, 12));
    categories_hold.open.notify_one();

    let ended = until_ended(&mut ctx, &run_id).await.run.unwrap();
    assert_eq!(ended.status(), pb::RunStatus::Success, "{ended:?}");
    assert!(ended.current.is_none());

    // How far each stage got, as its "done" event records it.
    let log = events::for_run(&ctx.app.state.db, &acme(), &run_id)
        .await
        .unwrap();
    let counted = |stage: &str| {
        let e = log
            .iter()
            .find(|e| e.stage == stage && e.message.starts_with(&format!("{stage} done in ")))
            .unwrap_or_else(|| panic!("no end of {stage}: {log:#?}"));
        let n = |k: &str| e.fields.get(k).and_then(|v| v.as_u64()).unwrap();
        (n("done"), n("total"))
    };
    assert_eq!(counted("collect"), (17, 17), "records to deliver");
    assert_eq!(counted("delete_guard"), (2, 2), "deletions judged");
    assert_eq!(counted("push"), (17, 17), "records gone through");
    assert_eq!(counted("abc"), (12, 12), "companies classified");
    assert_eq!(counted("categorize"), (12, 12), "companies categorized");
}

async fn a_run_interrupted_after_some_stages_keeps_them_once_it_ended(backend: Backend) {
    let (companies_hold, categories_hold) = (Hold::at(1), Hold::at(usize::MAX));
    let Some(mut ctx) = stepped(backend, &companies_hold, &categories_hold).await else {
        return;
    };
    ctx.push("company", companies(0..3)).await;
    let run_id = ctx.trigger().await;
    companies_hold.wait_reached().await;
    until_current(&mut ctx, &run_id, |c| c.stage == "push").await;

    // Another replica takes the run for a dead one's (its lease counted as expired).
    let worker = &ctx.app.state.worker;
    let now = chrono::Utc::now();
    let marked =
        erpsync::worker::sync::interrupt_orphans(worker, now, now + chrono::Duration::hours(1))
            .await
            .unwrap();
    assert_eq!(marked, 1);
    let stages_of = |run: &pb::Run| -> Vec<(String, String)> {
        run.stages
            .iter()
            .map(|s| (s.stage.clone(), s.outcome.clone()))
            .collect()
    };
    let interrupted = ctx.get_run(&run_id).await.run.unwrap();
    assert_eq!(interrupted.status(), pb::RunStatus::Interrupted);
    assert!(interrupted.current.is_none());
    assert_eq!(
        stages_of(&interrupted),
        [
            ("collect".to_owned(), "ok: 3 records".to_owned()),
            (
                "validate".to_owned(),
                "ok: records were validated when staged; rejections are in the request log"
                    .to_owned()
            ),
            ("delete_guard".to_owned(), "ok".to_owned()),
        ]
    );
    assert!(interrupted.stages.iter().all(|s| s.duration.is_some()));

    // The run itself goes on and ends: the end recorded first stays, stages and all.
    companies_hold.open.notify_one();
    tokio::time::timeout(DEADLINE, ctx.app.state.worker.runs().idle())
        .await
        .expect("the run ends");
    let after = ctx.get_run(&run_id).await.run.unwrap();
    assert_eq!(after.status(), pb::RunStatus::Interrupted);
    assert_eq!(stages_of(&after), stages_of(&interrupted));
}

async fn a_partial_run_degrades_health_with_its_reason_until_a_run_succeeds(backend: Backend) {
    const N: usize = 60;
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut ctx = setup(app).await;
    ctx.push("company", companies(0..N)).await;
    assert_eq!(
        ctx.run().await.run.unwrap().status(),
        pb::RunStatus::Success
    );
    let o = ctx.overview().await;
    assert_eq!(
        (o.health(), o.health_reason.as_str()),
        (pb::Health::Healthy, "")
    );

    // An ERP outage: its snapshot arrives empty, every company deleted.
    ctx.push("company", (0..N).map(tombstone).collect()).await;
    let outage = ctx.run().await.run.unwrap();
    assert_eq!(outage.status(), pb::RunStatus::Partial);
    let o = ctx.overview().await;
    assert_eq!(o.health(), pb::Health::Degraded);
    assert_eq!(
        o.health_reason,
        "the last run was PARTIAL: 60 company deletions held by the delete guard"
    );
    // `erpsync overview` says it too.
    let printed = tokio::task::spawn_blocking({
        let (url, token) = (
            format!("http://127.0.0.1:{}", ctx.app.port),
            ctx.crm.clone(),
        );
        move || {
            ok(erpsync(
                "sqlite::memory:",
                &[
                    "overview", "--tenant", "acme", "--server", &url, "--token", &token,
                ],
            ))
        }
    })
    .await
    .unwrap();
    assert!(
        printed.contains(
            "health:            DEGRADED: the last run was PARTIAL: 60 company deletions held by the delete guard\n"
        ),
        "{printed}"
    );

    // The ERP is back: the next run succeeds, and health with it.
    ctx.push("company", companies(0..N)).await;
    let back = ctx.run().await.run.unwrap();
    assert_eq!(back.status(), pb::RunStatus::Success);
    let o = ctx.overview().await;
    assert_eq!(
        (o.health(), o.health_reason.as_str()),
        (pb::Health::Healthy, "")
    );
}
