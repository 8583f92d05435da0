//! Every call needs a valid bearer token of the right role for the right tenant.

use chrono::Utc;
use erpsync::domain::token::{
    legacy_hash, presented, Grant, NewToken, Presented, Role, TenantScope,
};
use erpsync::grpc::pb::{
    GetAbcReportRequest, GetOverviewRequest, ListTablesRequest, PushRequest, Schedule,
    UpdateScheduleRequest,
};
use erpsync::storage::tokens;
use tonic::{Code, Request};

use crate::both_backends;
use crate::helpers::{authed, TestApp};

both_backends!(
    calls_without_a_valid_token_are_unauthenticated,
    revoked_token_is_unauthenticated,
    token_of_another_tenant_is_permission_denied_and_changes_nothing,
    erp_token_cannot_read_history_and_crm_token_cannot_push,
    abc_report_before_any_run_is_not_found_and_auth_comes_first,
    malformed_tenant_id_is_invalid_argument,
    an_expired_token_is_unauthenticated_and_tokens_record_their_last_use,
    a_token_issued_before_salts_still_works_until_revoked,
);

/// The public id a token names.
fn token_id(token: &str) -> String {
    match presented(token) {
        Some(Presented::Salted { id, .. }) => id,
        other => panic!("not a salted token: {other:?}"),
    }
}

async fn an_expired_token_is_unauthenticated_and_tokens_record_their_last_use(app: TestApp) {
    let acme = app.create_tenant("acme").await;
    let now = Utc::now();
    let issue = |expires_at| {
        let app = &app;
        let acme = acme.clone();
        async move {
            let new = NewToken::generate().unwrap();
            let grant = Grant {
                token_id: new.id.clone(),
                role: Role::Crm,
                scope: TenantScope::Listed(vec![acme]),
            };
            tokens::insert(&app.state.db, &new, &grant, expires_at, now)
                .await
                .unwrap();
            new
        }
    };
    let expired = issue(Some(now - chrono::Duration::seconds(1))).await;
    let later = issue(Some(now + chrono::Duration::days(1))).await;
    let mut client = app.history().await;
    let err = client
        .get_overview(authed(overview_req("acme"), &expired.secret))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(err.message(), "invalid or revoked token");
    client
        .get_overview(authed(overview_req("acme"), &later.secret))
        .await
        .unwrap();
    // The last use is written in the background: it shows up shortly.
    let mut used = None;
    for _ in 0..100 {
        let list = tokens::list(&app.state.db).await.unwrap();
        let info = list.iter().find(|t| t.grant.token_id == later.id).unwrap();
        if info.last_used_at.is_some() {
            used = info.last_used_at;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(used.is_some_and(|u| u >= now - chrono::Duration::seconds(5)));
    let list = tokens::list(&app.state.db).await.unwrap();
    let info = list
        .iter()
        .find(|t| t.grant.token_id == expired.id)
        .unwrap();
    assert!(
        info.last_used_at.is_none(),
        "a refused token is not marked used"
    );
}

/// A token stored the way erpsync stored them before salts (SHA-256 of the secret, no
/// salt) keeps working until revoked; revoking it by the secret works too.
async fn a_token_issued_before_salts_still_works_until_revoked(app: TestApp) {
    use sea_orm::{ConnectionTrait, Statement};
    let acme = app.create_tenant("acme").await;
    let secret = format!("esk_{}", "5a".repeat(32));
    let conn = sea_orm::Database::connect(app.database_url())
        .await
        .unwrap();
    let b = conn.get_database_backend();
    let t = match app.backend {
        crate::helpers::Backend::Sqlite => "0",
        crate::helpers::Backend::Postgres => "false",
    };
    for sql in [
        format!(
            "INSERT INTO api_token (id, token_hash, role, all_tenants, created_at) VALUES \
             ('tok_legacy00001', '{}', 'crm', {t}, '2026-11-28 12:00:00+00:00')",
            legacy_hash(&secret)
        ),
        format!(
            "INSERT INTO api_token_tenant (token_id, tenant_id) VALUES ('tok_legacy00001', '{acme}')"
        ),
    ] {
        conn.execute(Statement::from_string(b, sql)).await.unwrap();
    }
    let mut client = app.history().await;
    client
        .get_overview(authed(overview_req("acme"), &secret))
        .await
        .unwrap();
    assert!(
        tokens::revoke(&app.state.db, &legacy_hash(&secret), Utc::now())
            .await
            .unwrap()
    );
    let err = client
        .get_overview(authed(overview_req("acme"), &secret))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
}

fn overview_req(tenant: &str) -> GetOverviewRequest {
    GetOverviewRequest {
        tenant_id: tenant.into(),
    }
}

async fn calls_without_a_valid_token_are_unauthenticated(app: TestApp) {
    app.create_tenant("acme").await;
    let mut client = app.history().await;
    let err = client
        .get_overview(Request::new(overview_req("acme")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(
        err.message().contains("missing authorization"),
        "{}",
        err.message()
    );

    let mut req = Request::new(overview_req("acme"));
    req.metadata_mut()
        .insert("authorization", "Basic dXNlcjpwdw==".parse().unwrap());
    let err = client.get_overview(req).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("Bearer"), "{}", err.message());

    let err = client
        .get_overview(authed(overview_req("acme"), "esk_not-a-real-token"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(err.message(), "invalid or revoked token");

    let err = client
        .list_tables(Request::new(ListTablesRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::Unauthenticated,
        "even the catalog needs a token"
    );
}

async fn revoked_token_is_unauthenticated(app: TestApp) {
    let acme = app.create_tenant("acme").await;
    let token = app.token(Role::Crm, &[&acme]).await;
    let mut client = app.history().await;
    client
        .get_overview(authed(overview_req("acme"), &token))
        .await
        .unwrap();
    assert!(tokens::revoke(&app.state.db, &token_id(&token), Utc::now())
        .await
        .unwrap());
    let err = client
        .get_overview(authed(overview_req("acme"), &token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(err.message(), "invalid or revoked token");
    assert!(
        !tokens::revoke(&app.state.db, &token_id(&token), Utc::now())
            .await
            .unwrap(),
        "revoking twice reports nothing revoked"
    );
}

async fn token_of_another_tenant_is_permission_denied_and_changes_nothing(app: TestApp) {
    let acme = app.create_tenant("acme").await;
    let globex = app.create_tenant("globex").await;
    let acme_token = app.token(Role::Crm, &[&acme]).await;
    let globex_token = app.token(Role::Crm, &[&globex]).await;
    let mut client = app.history().await;
    let before = client
        .get_overview(authed(overview_req("globex"), &globex_token))
        .await
        .unwrap()
        .into_inner();

    let err = client
        .get_overview(authed(overview_req("globex"), &acme_token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("tenant globex"), "{}", err.message());

    let err = client
        .update_schedule(authed(
            UpdateScheduleRequest {
                tenant_id: "globex".into(),
                schedule: Some(Schedule {
                    daily_times: vec!["03:00".into()],
                    cron: String::new(),
                }),
                active: Some(false),
                ..Default::default()
            },
            &acme_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // A tenant the token does not cover is denied whether or not it exists: no probing.
    let err = client
        .get_overview(authed(overview_req("ghost"), &acme_token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    let after = client
        .get_overview(authed(overview_req("globex"), &globex_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(before, after);
}

async fn erp_token_cannot_read_history_and_crm_token_cannot_push(app: TestApp) {
    let acme = app.create_tenant("acme").await;
    let erp = app.token(Role::Erp, &[&acme]).await;
    let crm = app.token(Role::Crm, &[&acme]).await;
    let err = app
        .history()
        .await
        .get_overview(authed(overview_req("acme"), &erp))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message()
            .contains("IntegrationHistory needs a token of role crm"),
        "{}",
        err.message()
    );

    let push = PushRequest {
        tenant_id: "acme".into(),
        table: "company".into(),
        records: vec![],
    };
    let err = app
        .ingest()
        .await
        .push(authed(push, &crm))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(
        err.message()
            .contains("ErpIngest needs a token of role erp"),
        "{}",
        err.message()
    );
}

async fn abc_report_before_any_run_is_not_found_and_auth_comes_first(app: TestApp) {
    let acme = app.create_tenant("acme").await;
    let crm = app.token(Role::Crm, &[&acme]).await;
    let erp = app.token(Role::Erp, &[&acme]).await;
    let abc = GetAbcReportRequest {
        tenant_id: "acme".into(),
    };
    let err = app
        .history()
        .await
        .get_abc_report(authed(abc.clone(), &crm))
        .await
        .unwrap_err();
    // Implemented now: a tenant that never ran has no analysis yet.
    assert_eq!(err.code(), Code::NotFound);
    assert!(
        err.message().contains("no ABC analysis yet"),
        "{}",
        err.message()
    );

    // Auth still comes first.
    let err = app
        .history()
        .await
        .get_abc_report(Request::new(abc))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let _ = erp;
}

async fn malformed_tenant_id_is_invalid_argument(app: TestApp) {
    let crm = app.token(Role::Crm, &[]).await;
    let mut client = app.history().await;
    let err = client
        .get_overview(authed(overview_req(""), &crm))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(err.message(), "tenant_id is required");
    let err = client
        .get_overview(authed(overview_req("Acme Corp"), &crm))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("\"Acme Corp\""), "{}", err.message());
}
