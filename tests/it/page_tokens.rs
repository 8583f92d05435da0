//! Page tokens are signed with the database's page key: forged ones (the old unkeyed
//! format, any position) are refused, a token pages only its own listing of its own
//! tenant, and a real one still pages after the server restarts on the same database.

use erpsync::domain::page_token::NOT_ISSUED;
use erpsync::domain::token::Role;
use erpsync::grpc::pb::{self, PushRequest, Record};
use sha2::{Digest, Sha256};
use tonic::Code;

use crate::both_backends;
use crate::helpers::seed::{record, valid_fields};
use crate::helpers::{authed, TestApp};

both_backends!(
    forged_page_tokens_are_refused_on_every_listing,
    a_page_token_pages_only_its_own_listing_and_tenant_and_survives_a_restart,
);

/// A token of the format before keys, which anyone could compute: the position in hex
/// and 6 bytes of SHA-256 of the listing's tag and that hex.
fn unkeyed(tag: &str, position: &str) -> String {
    let payload: String = position.bytes().map(|b| format!("{b:02x}")).collect();
    let mut h = Sha256::new();
    h.update(tag.as_bytes());
    h.update([0]);
    h.update(payload.as_bytes());
    let sum: String = h.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{payload}.{sum}")
}

/// The three listings of `tenant`, each with `token` and pages of 2.
async fn list_all(
    app: &TestApp,
    crm: &str,
    tenant: &str,
    token: &str,
) -> [Result<String, tonic::Status>; 3] {
    let mut history = app.history().await;
    let companies = history
        .list_companies(authed(
            pb::ListCompaniesRequest {
                tenant_id: tenant.into(),
                page_size: 2,
                page_token: token.into(),
                ..Default::default()
            },
            crm,
        ))
        .await
        .map(|r| {
            let r = r.into_inner();
            let ids: Vec<String> = r.companies.into_iter().map(|c| c.external_id).collect();
            format!("{ids:?} next={}", r.next_page_token)
        });
    let deletes = history
        .list_pending_deletes(authed(
            pb::ListPendingDeletesRequest {
                tenant_id: tenant.into(),
                page_size: 2,
                page_token: token.into(),
                ..Default::default()
            },
            crm,
        ))
        .await
        .map(|r| format!("{:?}", r.into_inner().next_page_token));
    let runs = history
        .list_runs(authed(
            pb::ListRunsRequest {
                tenant_id: tenant.into(),
                page_size: 2,
                page_token: token.into(),
                ..Default::default()
            },
            crm,
        ))
        .await
        .map(|r| format!("{:?}", r.into_inner().next_page_token));
    [companies, deletes, runs]
}

fn assert_refused(answer: &Result<String, tonic::Status>, what: &str) {
    let err = answer.as_ref().expect_err(what);
    assert_eq!(err.code(), Code::InvalidArgument, "{what}: {err:?}");
    assert!(
        err.message().contains("page_token") && err.message().contains(NOT_ISSUED),
        "{what}: {err:?}"
    );
}

async fn forged_page_tokens_are_refused_on_every_listing(app: TestApp) {
    let acme = app.create_tenant("acme").await;
    let crm = app.token(Role::Crm, &[&acme]).await;
    for position in ["", "c0", "zzzz", "1700000000000000:run", "0:"] {
        for tag in ["companies", "pending_deletes", "runs"] {
            let forged = unkeyed(tag, position);
            for (answer, listing) in list_all(&app, &crm, "acme", &forged).await.iter().zip([
                "ListCompanies",
                "ListPendingDeletes",
                "ListRuns",
            ]) {
                assert_refused(answer, &format!("{listing} with {tag} {position:?}"));
            }
        }
    }
}

/// Pushes companies c0…c{n-1} to `tenant` and runs a sync to its end, so ListCompanies
/// has them.
async fn seed(app: &TestApp, tenant: &str, crm: &str, n: usize) {
    let id = erpsync::domain::tenant::TenantId::parse(tenant).unwrap();
    let erp = app.token(Role::Erp, &[&id]).await;
    let records: Vec<Record> = (0..n)
        .map(|i| record(&format!("c{i}"), &valid_fields("company")))
        .collect();
    app.ingest()
        .await
        .push(authed(
            PushRequest {
                tenant_id: tenant.into(),
                table: "company".into(),
                records,
            },
            &erp,
        ))
        .await
        .unwrap();
    let mut history = app.history().await;
    let run = history
        .trigger_sync(authed(
            pb::TriggerSyncRequest {
                tenant_id: tenant.into(),
            },
            crm,
        ))
        .await
        .unwrap()
        .into_inner()
        .run
        .unwrap();
    loop {
        let got = history
            .get_run(authed(
                pb::GetRunRequest {
                    tenant_id: tenant.into(),
                    run_id: run.run_id.clone(),
                },
                crm,
            ))
            .await
            .unwrap()
            .into_inner();
        if got.run.unwrap().status() != pb::RunStatus::Running {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn a_page_token_pages_only_its_own_listing_and_tenant_and_survives_a_restart(
    mut app: TestApp,
) {
    let acme = app.create_tenant("acme").await;
    let globex = app.create_tenant("globex").await;
    let crm = app.token(Role::Crm, &[&acme, &globex]).await;
    seed(&app, "acme", &crm, 3).await;
    seed(&app, "globex", &crm, 3).await;
    let [first, ..] = list_all(&app, &crm, "acme", "").await;
    let first = first.unwrap();
    assert!(first.starts_with(r#"["c0", "c1"] next="#), "{first}");
    let token = first.split_once("next=").unwrap().1.to_owned();
    assert!(!token.is_empty());

    // It pages its own listing…
    let [second, deletes, runs] = list_all(&app, &crm, "acme", &token).await;
    assert_eq!(second.unwrap(), r#"["c2"] next="#);
    // …and no other listing, nor the same listing of another tenant.
    assert_refused(&deletes, "a ListCompanies token on ListPendingDeletes");
    assert_refused(&runs, "a ListCompanies token on ListRuns");
    let [other_tenant, ..] = list_all(&app, &crm, "globex", &token).await;
    assert_refused(&other_tenant, "acme's token on globex's ListCompanies");
    // A token with its position changed is refused.
    let (_, tag) = token.rsplit_once('.').unwrap();
    let moved = format!("{}.{tag}", "6330"); // "c0"
    let [moved, ..] = list_all(&app, &crm, "acme", &moved).await;
    assert_refused(&moved, "a token with another position");

    // The key lives in the database: after a restart the token still pages.
    app.restart().await;
    let [again, ..] = list_all(&app, &crm, "acme", &token).await;
    assert_eq!(again.unwrap(), r#"["c2"] next="#);
}
