//! GetOverview, UpdateSettings and ListTables.

use erpsync::domain::token::Role;
use erpsync::grpc::pb::{
    DeploymentStatus, GetOverviewRequest, Health, IntegrationType, ListTablesRequest,
    UpdateSettingsRequest,
};
use tonic::Code;

use crate::both_backends;
use crate::helpers::{authed, TestApp};

both_backends!(
    overview_of_a_new_tenant_says_never_run_with_no_next_run,
    overview_of_an_unknown_tenant_is_not_found,
    db_size_grows_with_what_the_tenant_stores,
    update_settings_changes_only_the_fields_sent,
    update_settings_rejects_bad_values_and_changes_nothing,
    list_tables_lists_the_twelve_erp_tables,
);

async fn overview_of_a_new_tenant_says_never_run_with_no_next_run(app: TestApp) {
    let acme = app.create_tenant("acme").await;
    let token = app.token(Role::Crm, &[&acme]).await;
    let o = app
        .history()
        .await
        .get_overview(authed(
            GetOverviewRequest {
                tenant_id: "acme".into(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(o.tenant_id, "acme");
    assert_eq!(o.health(), Health::NeverRun);
    assert_eq!(o.next_run_at, None, "never the epoch: absent");
    assert_eq!(o.next_run_local, "");
    assert_eq!(o.average_duration, None);
    assert_eq!(o.last_success_at, None);
    assert_eq!(o.timezone, "America/Sao_Paulo");
    assert!(o.active);
    assert!(!o.scheduled);
    assert_eq!(o.schedule.as_ref().unwrap().daily_times, vec!["00:00"]);
    assert_eq!(o.max_time_without_success.unwrap().seconds, 24 * 3600);
    assert_eq!(o.integration_type(), IntegrationType::Api);
    assert_eq!(o.deployment_status(), DeploymentStatus::NotStarted);
    assert!(o.db_size_bytes > 0, "the tenant row itself takes room");
    assert!(o.recent_runs.is_empty());
    assert!(o.open_alerts.is_empty());
}

async fn overview_of_an_unknown_tenant_is_not_found(app: TestApp) {
    let token = app.token(Role::Crm, &[]).await;
    let err = app
        .history()
        .await
        .get_overview(authed(
            GetOverviewRequest {
                tenant_id: "ghost".into(),
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.message(), "tenant ghost not found");
}

async fn db_size_grows_with_what_the_tenant_stores(app: TestApp) {
    let acme = app.create_tenant("acme").await;
    let other = app.create_tenant("other").await;
    let token = app.token(Role::Crm, &[]).await;
    let mut client = app.history().await;
    let size = |o: erpsync::grpc::pb::Overview| o.db_size_bytes;
    let before = size(
        client
            .get_overview(authed(
                GetOverviewRequest {
                    tenant_id: acme.to_string(),
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner(),
    );
    let rule = "regra ".repeat(1000);
    let after = size(
        client
            .update_settings(authed(
                UpdateSettingsRequest {
                    tenant_id: acme.to_string(),
                    business_rule: Some(rule.clone()),
                    ..Default::default()
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner(),
    );
    // Other columns may change length a little (a timestamp's text form), the rule dominates.
    assert!(
        after + 32 >= before + rule.len() as u64,
        "size {before} → {after} after storing {} bytes",
        rule.len()
    );
    let other_size = size(
        client
            .get_overview(authed(
                GetOverviewRequest {
                    tenant_id: other.to_string(),
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner(),
    );
    assert!(other_size < after, "another tenant's rows are not counted");
}

async fn update_settings_changes_only_the_fields_sent(app: TestApp) {
    let acme = app.create_tenant("acme").await;
    let token = app.token(Role::Crm, &[&acme]).await;
    let mut client = app.history().await;
    let o = client
        .update_settings(authed(
            UpdateSettingsRequest {
                tenant_id: "acme".into(),
                erp_name: Some("Protheus".into()),
                erp_version: Some("12.1.2310".into()),
                deployment_status: DeploymentStatus::InProgress as i32,
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(o.erp_name, "Protheus");
    assert_eq!(o.erp_version, "12.1.2310");
    assert_eq!(o.deployment_status(), DeploymentStatus::InProgress);
    assert_eq!(o.tenant_name, "Tenant acme", "untouched");
    assert_eq!(o.integration_type(), IntegrationType::Api, "untouched");
    let again = client
        .get_overview(authed(
            GetOverviewRequest {
                tenant_id: "acme".into(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.erp_name, "Protheus", "stored, not only answered");
}

async fn update_settings_rejects_bad_values_and_changes_nothing(app: TestApp) {
    let acme = app.create_tenant("acme").await;
    let token = app.token(Role::Crm, &[&acme]).await;
    let mut client = app.history().await;
    let get = GetOverviewRequest {
        tenant_id: "acme".into(),
    };
    let before = client
        .get_overview(authed(get.clone(), &token))
        .await
        .unwrap()
        .into_inner();
    let err = client
        .update_settings(authed(
            UpdateSettingsRequest {
                tenant_id: "acme".into(),
                name: Some("   ".into()),
                erp_name: Some("Protheus".into()),
                deployment_status: 42,
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let fields: Vec<String> = tonic_types::StatusExt::get_details_bad_request(&err)
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(fields, ["deployment_status", "name"]);
    let after = client
        .get_overview(authed(get, &token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(before, after, "a rejected update changes nothing");
}

async fn list_tables_lists_the_twelve_erp_tables(app: TestApp) {
    let token = app.token(Role::Crm, &[]).await;
    let tables = app
        .history()
        .await
        .list_tables(authed(ListTablesRequest::default(), &token))
        .await
        .unwrap()
        .into_inner()
        .tables;
    let ids: Vec<&str> = tables.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "company",
            "contact",
            "quote",
            "quote_item",
            "order",
            "order_item",
            "invoice",
            "invoice_item",
            "receivable",
            "supplier",
            "seller",
            "company_brand"
        ]
    );
    let company = &tables[0];
    assert_eq!(company.label, "Empresa");
    assert_eq!(company.required_fields, ["name", "document"]);
    assert_eq!(tables[4].window_days, 730);
}
