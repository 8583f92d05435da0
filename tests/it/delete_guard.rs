//! The delete guard as a support engineer needs it: ListPendingDeletes filtered by state
//! and run, newest first, with who decided and when; a discard that keeps the record in
//! the CRM (later runs do not hold it again) until the ERP sends it again or someone
//! reopens it; DELETES_HELD stating the current count. On a push tenant and on a View
//! tenant (a SQLite file as the ERP's database).

use std::collections::BTreeSet;

use erpsync::domain::token::{Role, TenantScope};
use erpsync::grpc::pb::{self, ListPendingDeletesRequest, ResolvePendingDeletesRequest, ViewMode};
use erpsync::storage::crm;
use tonic::Code;

use crate::both_backends;
use crate::helpers::seed::{companies, tombstone};
use crate::helpers::tenants::{acme, issue, setup, Ctx};
use crate::helpers::views::{clientes, company_view, set_view, SqliteErp};
use crate::helpers::{authed, TestApp};

both_backends!(
    a_push_tenant_keeps_discarded_records_and_the_alert_follows_the_held_count,
    a_view_tenant_keeps_discarded_records_until_the_view_returns_them,
    pending_deletes_are_filtered_by_state_and_run_newest_first_by_page,
);

/// The label the support engineer's token carries: decisions are recorded under it.
const SUPPORT: &str = "suporte-ana";

/// A crm token of acme labelled [`SUPPORT`].
async fn support_token(app: &TestApp) -> String {
    let scope = TenantScope::Listed(vec![acme()]);
    issue(&app.state.tokens, Role::Crm, scope, SUPPORT).await
}

/// The external ids of acme's companies in the CRM.
async fn in_crm(app: &TestApp) -> BTreeSet<String> {
    crm::companies(&app.state.db, &acme(), "", 100_000)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.external_id)
        .collect()
}

/// One page of acme's company deletions in `states`, of `run` when not empty.
async fn page(
    ctx: &mut Ctx,
    states: &[&str],
    run: &str,
    page_size: u32,
    token: String,
) -> Result<pb::ListPendingDeletesResponse, tonic::Status> {
    ctx.history
        .list_pending_deletes(authed(
            ListPendingDeletesRequest {
                tenant_id: "acme".into(),
                table: "company".into(),
                page_size,
                page_token: token,
                states: states.iter().map(|s| s.to_string()).collect(),
                run_id: run.into(),
            },
            &ctx.crm,
        ))
        .await
        .map(|r| r.into_inner())
}

/// Every page of acme's company deletions in `states`, of `run` when not empty.
async fn listed(ctx: &mut Ctx, states: &[&str], run: &str) -> Vec<pb::PendingDelete> {
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let p = page(ctx, states, run, 1000, token).await.unwrap();
        all.extend(p.pending_deletes);
        if p.next_page_token.is_empty() {
            return all;
        }
        token = p.next_page_token;
    }
}

/// Resolves acme's company deletions `ids` (all when empty) with `token`.
async fn resolve(
    ctx: &mut Ctx,
    token: &str,
    ids: &[String],
    action: pb::ResolveAction,
) -> Result<u64, tonic::Status> {
    ctx.history
        .resolve_pending_deletes(authed(
            ResolvePendingDeletesRequest {
                tenant_id: "acme".into(),
                table: "company".into(),
                ids: ids.to_vec(),
                all: ids.is_empty(),
                action: action as i32,
            },
            token,
        ))
        .await
        .map(|r| r.into_inner().resolved)
}

/// The message of acme's open DELETES_HELD alert, if one is open.
async fn held_alert(ctx: &mut Ctx) -> Option<String> {
    ctx.overview()
        .await
        .open_alerts
        .into_iter()
        .find(|a| a.kind() == pb::AlertKind::DeletesHeld)
        .map(|a| a.message)
}

/// acme's company deletion of `id`, whatever its state.
async fn kept_state(ctx: &mut Ctx, id: &str) -> pb::PendingDelete {
    listed(ctx, &["ALL"], "")
        .await
        .into_iter()
        .find(|p| p.external_id == id)
        .unwrap_or_else(|| panic!("no deletion of {id}"))
}

fn held_text(n: usize) -> String {
    format!("{n} deletions held by the delete guard wait for approval")
}

fn ids(of: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    of.into_iter().collect()
}

fn run_id(run: &pb::GetRunResponse) -> String {
    run.run.as_ref().unwrap().run_id.clone()
}

fn status(run: &pb::GetRunResponse) -> pb::RunStatus {
    run.run.as_ref().unwrap().status()
}

async fn a_push_tenant_keeps_discarded_records_and_the_alert_follows_the_held_count(app: TestApp) {
    let mut ctx = setup(app).await;
    let support = support_token(&ctx.app).await;
    ctx.push("company", companies(0..1000)).await;
    let first = ctx.run().await;
    assert_eq!(status(&first), pb::RunStatus::Success, "{first:?}");

    // The ERP really deletes 200 companies: held, and the alert says 200.
    ctx.push("company", (0..200).map(tombstone).collect()).await;
    let detecting = ctx.run().await;
    assert_eq!(status(&detecting), pb::RunStatus::Partial);
    assert_eq!(held_alert(&mut ctx).await, Some(held_text(200)));
    let held = listed(&mut ctx, &[], "").await;
    assert_eq!(held.len(), 200);
    assert!(held.iter().all(|p| p.state == "HELD"
        && p.decided_by == "run"
        && p.decided_run_id == run_id(&detecting)));

    // 100 approved: the alert says 100 at once.
    let approved: Vec<String> = (0..100).map(|i| format!("c{i:03}")).collect();
    let discarded: Vec<String> = (100..200).map(|i| format!("c{i:03}")).collect();
    assert_eq!(
        resolve(&mut ctx, &support, &approved, pb::ResolveAction::Approve)
            .await
            .unwrap(),
        100
    );
    assert_eq!(held_alert(&mut ctx).await, Some(held_text(100)));

    // The next run applies them; the alert still states the 100 held, not 200.
    let applying = ctx.run().await;
    assert_eq!(status(&applying), pb::RunStatus::Partial);
    assert_eq!(in_crm(&ctx.app).await.len(), 900);
    assert_eq!(held_alert(&mut ctx).await, Some(held_text(100)));

    // 100 discarded: kept in the CRM, nothing held, the alert resolves.
    assert_eq!(
        resolve(&mut ctx, &support, &discarded, pb::ResolveAction::Discard)
            .await
            .unwrap(),
        100
    );
    assert_eq!(held_alert(&mut ctx).await, None);
    // The alert feed told each count as it changed: opened with 200, restated with 100
    // when they were approved, resolved when the rest were discarded.
    let mut feed = ctx
        .history
        .watch_alerts(authed(
            pb::WatchTenantAlertsRequest {
                tenant_id: "acme".into(),
                after_cursor: String::new(),
            },
            &ctx.crm,
        ))
        .await
        .unwrap()
        .into_inner();
    let mut told = Vec::new();
    while told.len() < 3 {
        let e = tokio::time::timeout(std::time::Duration::from_secs(30), feed.message())
            .await
            .expect("an alert event in time")
            .unwrap()
            .expect("the feed stays open");
        let alert = e.alert.clone().unwrap();
        if alert.kind() == pb::AlertKind::DeletesHeld {
            told.push((e.kind(), alert.message));
        }
    }
    assert_eq!(
        told,
        [
            (pb::AlertEventKind::Opened, held_text(200)),
            (pb::AlertEventKind::Restated, held_text(100)),
            (pb::AlertEventKind::Resolved, held_text(100)),
        ]
    );
    drop(feed);
    let kept = listed(&mut ctx, &["DISCARDED"], "").await;
    assert_eq!(
        ids(kept.iter().map(|p| p.external_id.clone())),
        ids(discarded.clone())
    );
    assert!(kept
        .iter()
        .all(|p| p.kept && p.decided_by == SUPPORT && p.decided_run_id.is_empty()));

    // The ERP keeps sending their deletion: later runs neither hold nor apply it.
    for _ in 0..2 {
        ctx.push("company", (100..200).map(tombstone).collect())
            .await;
        let run = ctx.run().await;
        assert_eq!(status(&run), pb::RunStatus::Success, "{run:?}");
        assert_eq!(
            crate::helpers::runs::table(run.run.as_ref().unwrap(), "company").held,
            0
        );
        assert_eq!(in_crm(&ctx.app).await.len(), 900);
        assert_eq!(held_alert(&mut ctx).await, None);
        assert!(listed(&mut ctx, &["HELD"], "").await.is_empty());
        assert_eq!(listed(&mut ctx, &["DISCARDED"], "").await.len(), 100);
    }

    // The ERP sends a kept record again, unchanged: its keep ends (the discard stays its
    // last decision; the run log says so), and a later deletion of it is a new one (one
    // deletion: under the guard, applied).
    ctx.push("company", companies(150..151)).await;
    let back = ctx.run().await;
    assert_eq!(status(&back), pb::RunStatus::Success, "{back:?}");
    assert!(back.log.iter().any(|e| e
        .message
        .starts_with("1 records kept in the CRM by a discard are no longer kept")));
    let c150 = kept_state(&mut ctx, "c150").await;
    assert_eq!(
        (c150.state.as_str(), c150.kept, c150.decided_by.as_str()),
        ("DISCARDED", false, SUPPORT)
    );
    assert!(listed(&mut ctx, &["SUPERSEDED"], "").await.is_empty());
    ctx.push("company", vec![tombstone(150)]).await;
    assert_eq!(status(&ctx.run().await), pb::RunStatus::Success);
    assert!(!in_crm(&ctx.app).await.contains("c150"));
    assert_eq!(
        listed(&mut ctx, &["APPLIED"], "").await.len(),
        100,
        "a deletion under the guard's threshold is not held, so not listed"
    );

    // Reopening reverses a discard: HELD again (the alert opens with 1), deletable.
    let c160 = vec!["c160".to_owned()];
    assert_eq!(
        resolve(&mut ctx, &support, &c160, pb::ResolveAction::Reopen)
            .await
            .unwrap(),
        1
    );
    assert_eq!(held_alert(&mut ctx).await, Some(held_text(1)));
    let reopened = listed(&mut ctx, &["HELD"], "").await;
    assert_eq!(reopened.len(), 1);
    assert_eq!(
        (reopened[0].decided_by.as_str(), reopened[0].kept),
        (SUPPORT, false)
    );
    let run = ctx.run().await;
    assert_eq!(status(&run), pb::RunStatus::Partial, "held until approved");
    assert!(in_crm(&ctx.app).await.contains("c160"));
    resolve(&mut ctx, &support, &c160, pb::ResolveAction::Approve)
        .await
        .unwrap();
    assert_eq!(held_alert(&mut ctx).await, None);
    assert_eq!(status(&ctx.run().await), pb::RunStatus::Success);
    assert!(!in_crm(&ctx.app).await.contains("c160"));
    assert_eq!(in_crm(&ctx.app).await.len(), 898);

    // Only a kept deletion can be reopened; a decision refused changes nothing.
    let err = resolve(
        &mut ctx,
        &support,
        &["c000".to_owned()],
        pb::ResolveAction::Reopen,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("is APPLIED"), "{err:?}");
    let err = resolve(
        &mut ctx,
        &support,
        &["c150".to_owned()],
        pb::ResolveAction::Reopen,
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.code(),
        Code::FailedPrecondition,
        "no longer kept: {err:?}"
    );
    let discarded = listed(&mut ctx, &["DISCARDED"], "").await;
    assert_eq!(discarded.len(), 99);
    assert_eq!(discarded.iter().filter(|p| p.kept).count(), 98);
}

async fn a_view_tenant_keeps_discarded_records_until_the_view_returns_them(app: TestApp) {
    let mut erp = SqliteErp::new(&clientes(1000)).await;
    let mut ctx = setup(app).await;
    let support = support_token(&ctx.app).await;
    ctx.app.grant_view_source("acme", &erp.url).await;
    set_view(
        &mut ctx,
        Some(&erp.url),
        vec![company_view("v_clientes", ViewMode::Full)],
        500,
    )
    .await
    .unwrap();
    assert_eq!(status(&ctx.run().await), pb::RunStatus::Success);
    assert_eq!(in_crm(&ctx.app).await.len(), 1000);

    // The ERP really deletes 200 companies.
    erp.exec("DELETE FROM clientes WHERE id <= 200").await;
    assert_eq!(status(&ctx.run().await), pb::RunStatus::Partial);
    assert_eq!(held_alert(&mut ctx).await, Some(held_text(200)));
    let approved: Vec<String> = (1..=100).map(|i| i.to_string()).collect();
    let discarded: Vec<String> = (101..=200).map(|i| i.to_string()).collect();
    resolve(&mut ctx, &support, &approved, pb::ResolveAction::Approve)
        .await
        .unwrap();
    assert_eq!(held_alert(&mut ctx).await, Some(held_text(100)));
    resolve(&mut ctx, &support, &discarded, pb::ResolveAction::Discard)
        .await
        .unwrap();
    assert_eq!(held_alert(&mut ctx).await, None);

    // The next runs apply the approved ones and do not hold the discarded ones again,
    // though the view still lacks them.
    for _ in 0..2 {
        let run = ctx.run().await;
        assert_eq!(status(&run), pb::RunStatus::Success, "{run:?}");
        let crm_now = in_crm(&ctx.app).await;
        assert_eq!(crm_now.len(), 900);
        assert!(crm_now.contains("150") && !crm_now.contains("50"));
        assert_eq!(held_alert(&mut ctx).await, None);
        assert!(listed(&mut ctx, &["HELD"], "").await.is_empty());
        let kept = listed(&mut ctx, &["DISCARDED"], "").await;
        assert_eq!(kept.len(), 100);
        assert!(kept.iter().all(|p| p.kept));
    }

    // The view returns a kept record (unchanged): its keep ends; when it goes again, its
    // deletion is a new one (under the guard: applied).
    erp.exec(&format!(
        "INSERT INTO clientes (id, razao, cnpj, cidade, fundada_em, alterado_em) VALUES \
         (150, 'Cliente 150 Ltda', '{}', 'Curitiba', '2001-02-03', '2026-01-01 10:00:00')",
        crate::helpers::seed::cnpj(150)
    ))
    .await;
    let back = ctx.run().await;
    assert_eq!(status(&back), pb::RunStatus::Success, "{back:?}");
    let r150 = kept_state(&mut ctx, "150").await;
    assert_eq!((r150.state.as_str(), r150.kept), ("DISCARDED", false));
    assert_eq!(
        listed(&mut ctx, &["DISCARDED"], "")
            .await
            .iter()
            .filter(|p| p.kept)
            .count(),
        99
    );
    erp.exec("DELETE FROM clientes WHERE id = 150").await;
    assert_eq!(status(&ctx.run().await), pb::RunStatus::Success);
    assert!(!in_crm(&ctx.app).await.contains("150"));

    // Reopened, a kept record's deletion is held again, then applied once approved.
    let r160 = vec!["160".to_owned()];
    resolve(&mut ctx, &support, &r160, pb::ResolveAction::Reopen)
        .await
        .unwrap();
    assert_eq!(held_alert(&mut ctx).await, Some(held_text(1)));
    assert_eq!(status(&ctx.run().await), pb::RunStatus::Partial);
    assert!(in_crm(&ctx.app).await.contains("160"));
    resolve(&mut ctx, &support, &r160, pb::ResolveAction::Approve)
        .await
        .unwrap();
    assert_eq!(status(&ctx.run().await), pb::RunStatus::Success);
    let crm_now = in_crm(&ctx.app).await;
    assert!(!crm_now.contains("160"));
    assert_eq!(crm_now.len(), 898);
    assert_eq!(held_alert(&mut ctx).await, None);
}

async fn pending_deletes_are_filtered_by_state_and_run_newest_first_by_page(app: TestApp) {
    let mut ctx = setup(app).await;
    let support = support_token(&ctx.app).await;
    ctx.push("company", companies(0..1000)).await;
    ctx.run().await;
    ctx.push("company", (0..120).map(tombstone).collect()).await;
    let first = run_id(&ctx.run().await);
    // c000..c039 approved (then applied), c040..c079 discarded, the rest stays held.
    let approve: Vec<String> = (0..40).map(|i| format!("c{i:03}")).collect();
    let discard: Vec<String> = (40..80).map(|i| format!("c{i:03}")).collect();
    resolve(&mut ctx, &support, &approve, pb::ResolveAction::Approve)
        .await
        .unwrap();
    let second = run_id(&ctx.run().await);
    resolve(&mut ctx, &support, &discard, pb::ResolveAction::Discard)
        .await
        .unwrap();

    // The default lists the waiting ones; each state alone; ALL every one.
    assert_eq!(listed(&mut ctx, &[], "").await.len(), 40);
    for (state, n) in [
        ("HELD", 40),
        ("APPROVED", 0),
        ("APPLIED", 40),
        ("DISCARDED", 40),
        ("SUPERSEDED", 0),
    ] {
        let got = listed(&mut ctx, &[state], "").await;
        assert_eq!(got.len(), n, "{state}");
        assert!(got.iter().all(|p| p.state == state), "{state}");
    }
    assert_eq!(listed(&mut ctx, &["all"], "").await.len(), 120);
    assert_eq!(listed(&mut ctx, &["HELD", "discarded"], "").await.len(), 80);

    // By run: the first detected all 120; the second applied 40.
    assert_eq!(listed(&mut ctx, &["ALL"], &first).await.len(), 120);
    let applied = listed(&mut ctx, &["ALL"], &second).await;
    assert_eq!(applied.len(), 40);
    assert!(applied
        .iter()
        .all(|p| p.state == "APPLIED" && p.decided_by == "run" && p.decided_run_id == second));

    // Newest first (by when each entered its state), page after page, each once.
    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let p = page(&mut ctx, &["ALL"], "", 25, token).await.unwrap();
        assert!(p.pending_deletes.len() <= 25);
        pages.extend(p.pending_deletes);
        if p.next_page_token.is_empty() {
            break;
        }
        token = p.next_page_token;
    }
    assert_eq!(pages.len(), 120);
    assert_eq!(ids(pages.iter().map(|p| p.external_id.clone())).len(), 120);
    let at = |p: &pb::PendingDelete| {
        let t = p.state_changed_at.as_ref().unwrap();
        (t.seconds, t.nanos)
    };
    assert!(
        pages.windows(2).all(|w| at(&w[0]) >= at(&w[1])),
        "newest first"
    );
    assert_eq!(
        pages[0].state, "DISCARDED",
        "the latest decision comes first"
    );
    assert_eq!(
        pages[119].state, "HELD",
        "the oldest: still held since detection"
    );

    // Bad filters name their field and change nothing.
    let err = page(&mut ctx, &["HELD", "GONE"], "", 10, String::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("states"), "{err:?}");
    let err = page(&mut ctx, &[], "no-such-run", 10, String::new())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains("run_id"), "{err:?}");
    let err = resolve(&mut ctx, &support, &[], pb::ResolveAction::Unspecified)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("action"), "{err:?}");
    assert_eq!(listed(&mut ctx, &["ALL"], "").await.len(), 120);

    // The same from the CLI, for a person: a line each, who decided, a final newline.
    let (url, db, token) = (
        ctx.app.url(),
        ctx.app.database_url().to_owned(),
        ctx.crm.clone(),
    );
    let cli = |args: Vec<String>| {
        let (url, db, token) = (url.clone(), db.clone(), token.clone());
        tokio::task::spawn_blocking(move || {
            let mut all = args;
            all.extend(["--server".into(), url, "--token".into(), token]);
            let all: Vec<&str> = all.iter().map(String::as_str).collect();
            crate::helpers::cli::erpsync(&db, &all)
        })
    };
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let out = cli(args(&[
        "deletes",
        "list",
        "--tenant",
        "acme",
        "--state",
        "discarded",
    ]))
    .await
    .unwrap();
    let printed = crate::helpers::cli::ok(out);
    assert!(printed.ends_with('\n'), "{printed:?}");
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 40, "{printed}");
    assert!(lines.iter().all(|l| l.starts_with("DISCARDED ")
        && l.contains(&format!("by {SUPPORT}"))
        && l.ends_with("kept in the CRM")));
    let out = cli(args(&[
        "deletes", "list", "--tenant", "acme", "--run", &second, "--state", "all",
    ]))
    .await
    .unwrap();
    let printed = crate::helpers::cli::ok(out);
    assert_eq!(printed.lines().count(), 40, "{printed}");
    assert!(
        printed.contains(&format!("by run (run {second})")),
        "{printed}"
    );
    let out = cli(args(&[
        "deletes", "resolve", "--tenant", "acme", "--action", "reopen", "--id", "c040",
    ]))
    .await
    .unwrap();
    assert_eq!(crate::helpers::cli::ok(out), "1 deletions resolved\n");
    assert_eq!(held_alert(&mut ctx).await, Some(held_text(41)));
    let out = cli(args(&[
        "deletes", "list", "--tenant", "acme", "--state", "gone",
    ]))
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("states"),
        "{out:?}"
    );
}
