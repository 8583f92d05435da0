//! A tenant's runs: waiting until none is running, one table's figures of a run, and a
//! RUNNING run another replica (or a dead process) holds the lease of.

use std::time::Duration;

use chrono::Utc;
use erpsync::domain::run::{RunStatus, RunSummary, RunTrigger};
use erpsync::grpc::pb::{self, ListRunsRequest};
use erpsync::storage::{lease, runs};

use super::tenants::{authed, Ctx};

/// A RUNNING run of acme started at `started_at`, whose lease `holder` took at `leased_at`
/// for 60 s: another replica's run, or a dead process's.
pub(crate) async fn held_run(
    ctx: &Ctx,
    trigger: RunTrigger,
    holder: &str,
    started_at: chrono::DateTime<Utc>,
    leased_at: chrono::DateTime<Utc>,
) -> RunSummary {
    let tenant = erpsync::domain::tenant::TenantId::parse("acme").unwrap();
    let run = RunSummary {
        id: uuid::Uuid::new_v4().to_string(),
        status: RunStatus::Running,
        trigger,
        started_at,
        finished_at: None,
        error: None,
    };
    runs::create(&ctx.app.state.db, &tenant, &run)
        .await
        .unwrap();
    lease::acquire(
        &ctx.app.state.db,
        &tenant,
        holder,
        &run.id,
        chrono::Duration::seconds(60),
        leased_at,
    )
    .await
    .unwrap()
    .unwrap();
    run
}

/// The figures of table `name` in `run`.
pub(crate) fn table<'a>(run: &'a pb::Run, name: &str) -> &'a pb::RunTable {
    run.tables
        .iter()
        .find(|t| t.table == name)
        .unwrap_or_else(|| panic!("no {name} in {:?}", run.tables))
}

/// Waits (10 s at most) until no run of acme is RUNNING; acme's runs, newest first.
pub(crate) async fn wait_idle(ctx: &mut Ctx) -> Vec<pb::Run> {
    for _ in 0..400 {
        let runs = ctx
            .history
            .list_runs(authed(
                ListRunsRequest {
                    tenant_id: "acme".into(),
                    page_size: 50,
                    ..Default::default()
                },
                &ctx.crm,
            ))
            .await
            .unwrap()
            .into_inner()
            .runs;
        if runs.iter().all(|r| r.status() != pb::RunStatus::Running) {
            return runs;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("runs did not finish in 10 s");
}
