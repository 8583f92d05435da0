//! Admin: tenant and token provisioning for the host's backend, with an admin token only;
//! and the `tenant`/`token` commands' `--server` form.

use std::collections::BTreeSet;

use chrono::Utc;
use erpsync::domain::token::{Grant, NewToken, Role, TenantScope};
use erpsync::grpc::pb::{
    self, admin_client::AdminClient, CreateTenantRequest, GetOverviewRequest, GetTenantRequest,
    IssueTokenRequest, ListTenantsRequest, ListTokensRequest, PushRequest, RevokeTokenRequest,
    UpdateScheduleRequest, UpdateSettingsRequest, UpdateTenantRequest,
};
use erpsync::storage::tokens;
use tonic::transport::Channel;
use tonic::Code;

use crate::both_backends;
use crate::helpers::cli::remote;
use crate::helpers::{authed, http_post, TestApp};

both_backends!(
    tenants_are_created_read_updated_and_listed,
    list_tenants_pages_through_every_tenant_once,
    tokens_are_issued_listed_and_revoked,
    list_tokens_pages_newest_first_with_no_duplicate,
    every_call_needs_a_live_admin_token,
    an_admin_token_reaches_only_admin,
    invalid_requests_name_the_field_and_change_nothing,
    the_cli_provisions_through_admin_with_server,
);

async fn admin(app: &TestApp) -> AdminClient<Channel> {
    AdminClient::connect(app.url()).await.unwrap()
}

/// The fields an INVALID_ARGUMENT names.
fn fields(status: &tonic::Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    tonic_types::StatusExt::get_details_bad_request(status)
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

fn create(id: &str) -> CreateTenantRequest {
    CreateTenantRequest {
        tenant_id: id.into(),
        name: format!("Tenant {id}"),
        ..Default::default()
    }
}

/// A token stored directly, expiring at `expires_at` (in the past: expired).
async fn stored_token(
    app: &TestApp,
    role: Role,
    expires_at: Option<chrono::DateTime<Utc>>,
) -> NewToken {
    let new = NewToken::generate().unwrap();
    let grant = Grant {
        token_id: new.id.clone(),
        role,
        scope: TenantScope::All,
    };
    tokens::insert(&app.state.db, &new, &grant, expires_at, Utc::now())
        .await
        .unwrap();
    new
}

/// Every tenant ListTenants answers, page after page of `page_size`, with `filter`.
async fn all_tenants(
    client: &mut AdminClient<Channel>,
    token: &str,
    filter: ListTenantsRequest,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut page_token = String::new();
    loop {
        let req = ListTenantsRequest {
            page_token,
            ..filter.clone()
        };
        let page = client
            .list_tenants(authed(req, token))
            .await
            .unwrap()
            .into_inner();
        out.extend(page.tenants.into_iter().map(|t| t.tenant_id));
        if page.next_page_token.is_empty() {
            return out;
        }
        page_token = page.next_page_token;
    }
}

async fn tenants_are_created_read_updated_and_listed(app: TestApp) {
    let root = app.token(Role::Admin, &[]).await;
    let mut client = admin(&app).await;

    let t = client
        .create_tenant(authed(create("acme"), &root))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(t.tenant_id, "acme");
    assert_eq!(t.timezone, "America/Sao_Paulo");
    assert_eq!(t.integration_type(), pb::IntegrationType::Api);
    assert_eq!(t.deployment_status(), pb::DeploymentStatus::NotStarted);
    assert!(t.active && !t.scheduled);
    assert_eq!(t.schedule.as_ref().unwrap().daily_times, ["00:00"]);
    assert_eq!(t.max_time_without_success.unwrap().seconds, 86_400);
    assert_eq!(t.health(), pb::Health::NeverRun);
    assert_eq!(t.crm_sink, "embedded");
    assert!(t.created_at.is_some() && t.updated_at.is_some());

    let view = CreateTenantRequest {
        timezone: "America/Manaus".into(),
        erp_name: "Protheus".into(),
        integration_type: pb::IntegrationType::View as i32,
        deployment_status: pb::DeploymentStatus::InProgress as i32,
        business_rule: "only branch 01".into(),
        ..create("globex")
    };
    let g = client
        .create_tenant(authed(view, &root))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (g.timezone.as_str(), g.erp_name.as_str()),
        ("America/Manaus", "Protheus")
    );
    assert_eq!(g.integration_type(), pb::IntegrationType::View);
    assert_eq!(g.business_rule, "only branch 01");

    let dup = client
        .create_tenant(authed(create("acme"), &root))
        .await
        .unwrap_err();
    assert_eq!(dup.code(), Code::AlreadyExists);

    let got = client
        .get_tenant(authed(
            GetTenantRequest {
                tenant_id: "acme".into(),
            },
            &root,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got, t);

    let update = UpdateTenantRequest {
        tenant_id: "acme".into(),
        settings: Some(UpdateSettingsRequest {
            tenant_id: "ignored".into(),
            name: Some("ACME S.A.".into()),
            delete_guard_percent: Some(10.0),
            ..Default::default()
        }),
        schedule: Some(UpdateScheduleRequest {
            tenant_id: "ignored".into(),
            schedule: Some(pb::Schedule {
                daily_times: vec!["06:30".into()],
                cron: String::new(),
            }),
            timezone: Some("UTC".into()),
            active: Some(false),
            ..Default::default()
        }),
    };
    let u = client
        .update_tenant(authed(update, &root))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(u.name, "ACME S.A.");
    assert_eq!(u.delete_guard_percent, 10.0);
    assert_eq!(u.schedule.clone().unwrap().daily_times, ["06:30"]);
    assert_eq!(u.timezone, "UTC");
    assert!(u.scheduled, "saving a schedule schedules");
    assert!(!u.active);
    assert_eq!(u.health(), pb::Health::Inactive);

    // The page sees what Admin wrote.
    let crm = app
        .token(
            Role::Crm,
            &[&erpsync::domain::tenant::TenantId::parse("acme").unwrap()],
        )
        .await;
    let o = app
        .history()
        .await
        .get_overview(authed(
            GetOverviewRequest {
                tenant_id: "acme".into(),
            },
            &crm,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(o.tenant_name, "ACME S.A.");
    assert_eq!(o.health(), pb::Health::Inactive);

    for (id, code) in [("ghost", Code::NotFound)] {
        let err = client
            .get_tenant(authed(
                GetTenantRequest {
                    tenant_id: id.into(),
                },
                &root,
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), code);
        let err = client
            .update_tenant(authed(
                UpdateTenantRequest {
                    tenant_id: id.into(),
                    settings: Some(UpdateSettingsRequest {
                        name: Some("X".into()),
                        ..Default::default()
                    }),
                    schedule: None,
                },
                &root,
            ))
            .await
            .unwrap_err();
        assert_eq!(err.code(), code);
    }

    let everyone = all_tenants(&mut client, &root, ListTenantsRequest::default()).await;
    assert_eq!(everyone, ["acme", "globex"]);
    let views = ListTenantsRequest {
        integration_type: pb::IntegrationType::View as i32,
        ..Default::default()
    };
    assert_eq!(all_tenants(&mut client, &root, views).await, ["globex"]);
    let inactive = ListTenantsRequest {
        health: pb::Health::Inactive as i32,
        ..Default::default()
    };
    assert_eq!(all_tenants(&mut client, &root, inactive).await, ["acme"]);
    let never = ListTenantsRequest {
        health: pb::Health::NeverRun as i32,
        integration_type: pb::IntegrationType::Api as i32,
        ..Default::default()
    };
    assert!(all_tenants(&mut client, &root, never).await.is_empty());
}

async fn list_tenants_pages_through_every_tenant_once(app: TestApp) {
    let root = app.token(Role::Admin, &[]).await;
    let mut client = admin(&app).await;
    let ids: Vec<String> = (0..11).map(|i| format!("t{i:02}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let mut req = create(id);
        if i % 3 == 0 {
            req.integration_type = pb::IntegrationType::View as i32;
        }
        client.create_tenant(authed(req, &root)).await.unwrap();
    }
    // Every third one switched off: a health the listing derives, not stores.
    for id in ids.iter().step_by(3) {
        let off = UpdateTenantRequest {
            tenant_id: id.clone(),
            settings: None,
            schedule: Some(UpdateScheduleRequest {
                active: Some(false),
                ..Default::default()
            }),
        };
        client.update_tenant(authed(off, &root)).await.unwrap();
    }
    for page_size in [1, 3, 4, 11, 0] {
        let filter = ListTenantsRequest {
            page_size,
            ..Default::default()
        };
        let walked = all_tenants(&mut client, &root, filter).await;
        assert_eq!(
            walked, ids,
            "page size {page_size}: every tenant once, by id"
        );
    }
    let inactive: Vec<String> = ids.iter().step_by(3).cloned().collect();
    let never_run: Vec<String> = ids
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 != 0)
        .map(|(_, id)| id.clone())
        .collect();
    for page_size in [1, 2, 5] {
        let filter = ListTenantsRequest {
            page_size,
            health: pb::Health::Inactive as i32,
            ..Default::default()
        };
        assert_eq!(all_tenants(&mut client, &root, filter).await, inactive);
        let filter = ListTenantsRequest {
            page_size,
            health: pb::Health::NeverRun as i32,
            ..Default::default()
        };
        assert_eq!(all_tenants(&mut client, &root, filter).await, never_run);
        let filter = ListTenantsRequest {
            page_size,
            integration_type: pb::IntegrationType::View as i32,
            ..Default::default()
        };
        assert_eq!(all_tenants(&mut client, &root, filter).await, inactive);
    }
    // A token of another listing, or made up, is refused naming page_token.
    let first = client
        .list_tokens(authed(
            ListTokensRequest {
                page_size: 1,
                ..Default::default()
            },
            &root,
        ))
        .await
        .unwrap()
        .into_inner();
    for bad in [first.next_page_token.as_str(), "74303.00"] {
        let err = client
            .list_tenants(authed(
                ListTenantsRequest {
                    page_token: bad.into(),
                    ..Default::default()
                },
                &root,
            ))
            .await
            .unwrap_err();
        assert_eq!(fields(&err), ["page_token"], "{bad:?}");
    }
}

async fn tokens_are_issued_listed_and_revoked(app: TestApp) {
    let root = app.token(Role::Admin, &[]).await;
    let mut client = admin(&app).await;
    for id in ["acme", "globex"] {
        client
            .create_tenant(authed(create(id), &root))
            .await
            .unwrap();
    }
    let issue = |role: pb::TokenRole, tenants: &[&str], label: &str| IssueTokenRequest {
        role: role as i32,
        tenant_ids: tenants.iter().map(|t| (*t).to_owned()).collect(),
        label: label.into(),
        ..Default::default()
    };

    let crm = client
        .issue_token(authed(
            issue(pb::TokenRole::Crm, &["acme"], "CRM web"),
            &root,
        ))
        .await
        .unwrap()
        .into_inner();
    let crm_token = crm.token.clone().unwrap();
    assert!(crm.secret.starts_with("esk_"));
    assert!(crm_token.token_id.starts_with("tok_"));
    assert_eq!(crm_token.role(), pb::TokenRole::Crm);
    assert_eq!(crm_token.tenant_ids, ["acme"]);
    assert!(!crm_token.all_tenants);
    assert_eq!(crm_token.label, "CRM web");
    assert!(crm_token.expires_at.is_none() && crm_token.revoked_at.is_none());

    let erp_req = IssueTokenRequest {
        expires_in_days: Some(30),
        ..issue(pb::TokenRole::Erp, &["acme"], "")
    };
    let erp = client
        .issue_token(authed(erp_req, &root))
        .await
        .unwrap()
        .into_inner();
    let erp_token = erp.token.clone().unwrap();
    let expires = erp_token.expires_at.unwrap().seconds - erp_token.created_at.unwrap().seconds;
    assert_eq!(expires, 30 * 86_400);
    let all = client
        .issue_token(authed(
            IssueTokenRequest {
                all_tenants: true,
                ..issue(pb::TokenRole::Crm, &[], "")
            },
            &root,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(all.token.as_ref().unwrap().all_tenants);
    let globex_crm = client
        .issue_token(authed(issue(pb::TokenRole::Crm, &["globex"], ""), &root))
        .await
        .unwrap()
        .into_inner();
    let second_admin = client
        .issue_token(authed(issue(pb::TokenRole::Admin, &[], "backend"), &root))
        .await
        .unwrap()
        .into_inner();
    assert!(second_admin.token.as_ref().unwrap().all_tenants);

    // Each works on the service of its role.
    assert!(app.overview_ok("acme", &crm.secret).await);
    assert!(!app.overview_ok("globex", &crm.secret).await);
    assert!(app.overview_ok("globex", &all.secret).await);
    let body = serde_json::json!({"records": [{"external_id": "C1", "fields": {"name": "ACME", "document": "11.222.333/0001-81"}}]});
    let (status, answer) = http_post(
        app.port,
        "/erp/v1/company",
        Some(&erp.secret),
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    client
        .get_tenant(authed(
            GetTenantRequest {
                tenant_id: "acme".into(),
            },
            &second_admin.secret,
        ))
        .await
        .unwrap();

    // Listed, never with a secret or a hash.
    let list = |tenant: &str, include_inactive: bool| ListTokensRequest {
        tenant_id: tenant.into(),
        include_inactive,
        ..Default::default()
    };
    let listed = client
        .list_tokens(authed(list("", false), &root))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.tokens.len(), 6, "five issued and the root one");
    let shown = format!("{listed:?}");
    for secret in [
        &root,
        &crm.secret,
        &erp.secret,
        &all.secret,
        &second_admin.secret,
    ] {
        let key = secret.rsplit('_').next().unwrap();
        assert!(!shown.contains(key), "a secret is listed: {shown}");
    }
    assert!(!shown.contains("esk_"));
    let acme_ids: BTreeSet<String> = client
        .list_tokens(authed(list("acme", false), &root))
        .await
        .unwrap()
        .into_inner()
        .tokens
        .into_iter()
        .map(|t| t.token_id)
        .collect();
    let id = |r: &pb::IssueTokenResponse| r.token.as_ref().unwrap().token_id.clone();
    assert!(acme_ids.contains(&id(&crm)) && acme_ids.contains(&id(&erp)));
    assert!(
        acme_ids.contains(&id(&all)) && acme_ids.contains(&id(&second_admin)),
        "tokens of every tenant reach acme too"
    );
    assert!(!acme_ids.contains(&id(&globex_crm)));
    let unknown = client
        .list_tokens(authed(list("ghost", false), &root))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    // Revoked by id: once.
    let revoke = |token_id: String| RevokeTokenRequest { token_id };
    let first = client
        .revoke_token(authed(revoke(id(&crm)), &root))
        .await
        .unwrap()
        .into_inner();
    assert!(first.revoked);
    let again = client
        .revoke_token(authed(revoke(id(&crm)), &root))
        .await
        .unwrap()
        .into_inner();
    assert!(!again.revoked);
    let unknown = client
        .revoke_token(authed(revoke("tok_000000000000".into()), &root))
        .await
        .unwrap()
        .into_inner();
    assert!(!unknown.revoked);
    assert!(!app.overview_ok("acme", &crm.secret).await);
    let active: Vec<String> = client
        .list_tokens(authed(list("acme", false), &root))
        .await
        .unwrap()
        .into_inner()
        .tokens
        .into_iter()
        .map(|t| t.token_id)
        .collect();
    assert!(!active.contains(&id(&crm)));
    let everything = client
        .list_tokens(authed(list("acme", true), &root))
        .await
        .unwrap()
        .into_inner()
        .tokens;
    let revoked = everything
        .iter()
        .find(|t| t.token_id == id(&crm))
        .expect("revoked tokens with include_inactive");
    assert!(revoked.revoked_at.is_some());
    assert_eq!(revoked.label, "CRM web");
}

async fn list_tokens_pages_newest_first_with_no_duplicate(app: TestApp) {
    let root = app.token(Role::Admin, &[]).await;
    let mut client = admin(&app).await;
    let mut issued = vec![client
        .list_tokens(authed(ListTokensRequest::default(), &root))
        .await
        .unwrap()
        .into_inner()
        .tokens[0]
        .token_id
        .clone()];
    for i in 0..8 {
        let t = client
            .issue_token(authed(
                IssueTokenRequest {
                    role: pb::TokenRole::Admin as i32,
                    label: format!("n{i}"),
                    ..Default::default()
                },
                &root,
            ))
            .await
            .unwrap()
            .into_inner();
        issued.push(t.token.unwrap().token_id);
    }
    issued.reverse();
    for page_size in [1, 2, 3, 9, 10] {
        let mut walked = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = client
                .list_tokens(authed(
                    ListTokensRequest {
                        page_size,
                        page_token,
                        ..Default::default()
                    },
                    &root,
                ))
                .await
                .unwrap()
                .into_inner();
            walked.extend(page.tokens.into_iter().map(|t| t.token_id));
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        assert_eq!(
            walked, issued,
            "page size {page_size}: newest first, each once"
        );
    }
}

async fn every_call_needs_a_live_admin_token(app: TestApp) {
    let acme = app.create_tenant("acme").await;
    let crm = app.token(Role::Crm, &[&acme]).await;
    let erp = app.token(Role::Erp, &[&acme]).await;
    let revoked = stored_token(&app, Role::Admin, None).await;
    tokens::revoke(&app.state.db, &revoked.id, Utc::now())
        .await
        .unwrap();
    let expired = stored_token(
        &app,
        Role::Admin,
        Some(Utc::now() - chrono::Duration::seconds(1)),
    )
    .await;
    let mut client = admin(&app).await;
    let cases = [
        (crm.as_str(), Code::PermissionDenied),
        (erp.as_str(), Code::PermissionDenied),
        (revoked.secret.as_str(), Code::Unauthenticated),
        (expired.secret.as_str(), Code::Unauthenticated),
    ];
    for (token, code) in cases {
        let get = || GetTenantRequest {
            tenant_id: "acme".into(),
        };
        let answers = [
            client
                .create_tenant(authed(create("newco"), token))
                .await
                .map(drop),
            client
                .update_tenant(authed(
                    UpdateTenantRequest {
                        tenant_id: "acme".into(),
                        settings: Some(UpdateSettingsRequest {
                            name: Some("Changed".into()),
                            ..Default::default()
                        }),
                        schedule: None,
                    },
                    token,
                ))
                .await
                .map(drop),
            client.get_tenant(authed(get(), token)).await.map(drop),
            client
                .list_tenants(authed(ListTenantsRequest::default(), token))
                .await
                .map(drop),
            client
                .issue_token(authed(
                    IssueTokenRequest {
                        role: pb::TokenRole::Admin as i32,
                        ..Default::default()
                    },
                    token,
                ))
                .await
                .map(drop),
            client
                .list_tokens(authed(ListTokensRequest::default(), token))
                .await
                .map(drop),
            client
                .revoke_token(authed(
                    RevokeTokenRequest {
                        token_id: revoked.id.clone(),
                    },
                    token,
                ))
                .await
                .map(drop),
        ];
        for (i, answer) in answers.into_iter().enumerate() {
            assert_eq!(answer.unwrap_err().code(), code, "call {i} with {code:?}");
        }
    }
    // Nothing was changed by the refused calls.
    let root = app.token(Role::Admin, &[]).await;
    let names = all_tenants(&mut client, &root, ListTenantsRequest::default()).await;
    assert_eq!(names, ["acme"]);
    let t = client
        .get_tenant(authed(
            GetTenantRequest {
                tenant_id: "acme".into(),
            },
            &root,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(t.name, "Tenant acme");
    let listed = client
        .list_tokens(authed(ListTokensRequest::default(), &root))
        .await
        .unwrap()
        .into_inner()
        .tokens;
    assert_eq!(listed.len(), 3, "crm, erp and root: nothing issued");
}

async fn an_admin_token_reaches_only_admin(app: TestApp) {
    app.create_tenant("acme").await;
    let root = app.token(Role::Admin, &[]).await;
    let err = app
        .history()
        .await
        .get_overview(authed(
            GetOverviewRequest {
                tenant_id: "acme".into(),
            },
            &root,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let push = PushRequest {
        tenant_id: "acme".into(),
        table: "company".into(),
        records: vec![pb::Record {
            external_id: "C1".into(),
            ..Default::default()
        }],
    };
    let err = app
        .ingest()
        .await
        .push(authed(push, &root))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    let body = serde_json::json!({"records": [{"external_id": "C1", "fields": {"name": "ACME"}}]});
    let (status, answer) = http_post(
        app.port,
        "/erp/v1/company",
        Some(&root),
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 403, "{answer}");
}

async fn invalid_requests_name_the_field_and_change_nothing(app: TestApp) {
    let root = app.token(Role::Admin, &[]).await;
    let mut client = admin(&app).await;
    client
        .create_tenant(authed(create("acme"), &root))
        .await
        .unwrap();
    let get = GetTenantRequest {
        tenant_id: "acme".into(),
    };
    let before = client
        .get_tenant(authed(get.clone(), &root))
        .await
        .unwrap()
        .into_inner();

    let creates: Vec<(CreateTenantRequest, &[&str])> = vec![
        (create("Bad Id"), &["tenant_id"]),
        (
            CreateTenantRequest {
                name: "  ".into(),
                ..create("blank")
            },
            &["name"],
        ),
        (
            CreateTenantRequest {
                timezone: "Mars/Base".into(),
                ..create("mars")
            },
            &["timezone"],
        ),
        (
            CreateTenantRequest {
                timezone: "x".repeat(201),
                ..create("long")
            },
            &["timezone"],
        ),
        (
            CreateTenantRequest {
                name: "a\0b".into(),
                erp_version: "v".repeat(201),
                ..create("nul")
            },
            &["name", "erp_version"],
        ),
        (
            CreateTenantRequest {
                integration_type: 99,
                deployment_status: 42,
                ..create("enums")
            },
            &["integration_type", "deployment_status"],
        ),
    ];
    for (req, expected) in creates {
        let err = client
            .create_tenant(authed(req.clone(), &root))
            .await
            .unwrap_err();
        assert_eq!(fields(&err), expected, "{req:?}");
    }

    let updates: Vec<(UpdateTenantRequest, &[&str])> = vec![
        (
            UpdateTenantRequest {
                tenant_id: "acme".into(),
                settings: Some(UpdateSettingsRequest {
                    name: Some("Changed".into()),
                    delete_guard_percent: Some(0.0),
                    ..Default::default()
                }),
                schedule: Some(UpdateScheduleRequest {
                    schedule: Some(pb::Schedule {
                        daily_times: vec!["25:00".into()],
                        cron: String::new(),
                    }),
                    ..Default::default()
                }),
            },
            &[
                "settings.delete_guard_percent",
                "schedule.schedule.daily_times[0]",
            ],
        ),
        (
            UpdateTenantRequest {
                tenant_id: "acme".into(),
                settings: None,
                schedule: Some(UpdateScheduleRequest {
                    timezone: Some("a\0b".into()),
                    ..Default::default()
                }),
            },
            &["schedule.timezone"],
        ),
        (
            // Checked against the stored settings: A must stay below B (95).
            UpdateTenantRequest {
                tenant_id: "acme".into(),
                settings: Some(UpdateSettingsRequest {
                    name: Some("Changed".into()),
                    abc_a_threshold: Some(96.0),
                    ..Default::default()
                }),
                schedule: Some(UpdateScheduleRequest {
                    active: Some(false),
                    ..Default::default()
                }),
            },
            &["settings.abc_a_threshold"],
        ),
        (
            UpdateTenantRequest {
                tenant_id: "ACME".into(),
                settings: None,
                schedule: None,
            },
            &["tenant_id"],
        ),
    ];
    for (req, expected) in updates {
        let err = client
            .update_tenant(authed(req.clone(), &root))
            .await
            .unwrap_err();
        let got = fields(&err);
        assert!(
            got.len() == expected.len() && got.iter().zip(expected).all(|(g, e)| g.starts_with(e)),
            "{req:?}: {got:?} vs {expected:?}"
        );
    }
    let err = client
        .get_tenant(authed(
            GetTenantRequest {
                tenant_id: "a\0".into(),
            },
            &root,
        ))
        .await
        .unwrap_err();
    assert_eq!(fields(&err), ["tenant_id"]);
    let lists: Vec<(ListTenantsRequest, &[&str])> = vec![
        (
            ListTenantsRequest {
                page_size: 1001,
                health: 77,
                integration_type: 9,
                ..Default::default()
            },
            &["page_size", "integration_type", "health"],
        ),
        (
            ListTenantsRequest {
                page_token: "p".repeat(201),
                ..Default::default()
            },
            &["page_token"],
        ),
    ];
    for (req, expected) in lists {
        let err = client.list_tenants(authed(req, &root)).await.unwrap_err();
        assert_eq!(fields(&err), expected);
    }

    let issue = |role: pb::TokenRole, tenants: &[&str]| IssueTokenRequest {
        role: role as i32,
        tenant_ids: tenants.iter().map(|t| (*t).to_owned()).collect(),
        ..Default::default()
    };
    let issues: Vec<(IssueTokenRequest, &[&str])> = vec![
        (issue(pb::TokenRole::Unspecified, &["acme"]), &["role"]),
        (issue(pb::TokenRole::Erp, &[]), &["tenant_ids"]),
        (
            issue(pb::TokenRole::Erp, &["acme", "acme2"]),
            &["tenant_ids"],
        ),
        (
            IssueTokenRequest {
                all_tenants: true,
                ..issue(pb::TokenRole::Erp, &[])
            },
            &["all_tenants"],
        ),
        (issue(pb::TokenRole::Crm, &[]), &["tenant_ids"]),
        (issue(pb::TokenRole::Admin, &["acme"]), &["tenant_ids"]),
        (
            issue(pb::TokenRole::Crm, &["Not Valid"]),
            &["tenant_ids[0]"],
        ),
        (
            IssueTokenRequest {
                expires_in_days: Some(0),
                label: "l".repeat(201),
                ..issue(pb::TokenRole::Crm, &["acme"])
            },
            &["expires_in_days", "label"],
        ),
        (
            IssueTokenRequest {
                expires_in_days: Some(3651),
                label: "a\0".into(),
                ..issue(pb::TokenRole::Crm, &["acme"])
            },
            &["expires_in_days", "label"],
        ),
    ];
    for (req, expected) in issues {
        let err = client
            .issue_token(authed(req.clone(), &root))
            .await
            .unwrap_err();
        assert_eq!(fields(&err), expected, "{req:?}");
    }
    let ghost = client
        .issue_token(authed(issue(pb::TokenRole::Crm, &["acme", "ghost"]), &root))
        .await
        .unwrap_err();
    assert_eq!(ghost.code(), Code::NotFound);

    let token_lists: Vec<(ListTokensRequest, &[&str])> = vec![
        (
            ListTokensRequest {
                tenant_id: "No".into(),
                page_size: 1001,
                ..Default::default()
            },
            &["tenant_id", "page_size"],
        ),
        (
            ListTokensRequest {
                page_token: "garbage".into(),
                ..Default::default()
            },
            &["page_token"],
        ),
    ];
    for (req, expected) in token_lists {
        let err = client.list_tokens(authed(req, &root)).await.unwrap_err();
        assert_eq!(fields(&err), expected);
    }
    for bad in [
        "",
        "tok_",
        "esk_0123456789ab",
        "tok_0123456789AB",
        &"t".repeat(300),
        "tok_\0",
    ] {
        let err = client
            .revoke_token(authed(
                RevokeTokenRequest {
                    token_id: bad.to_owned(),
                },
                &root,
            ))
            .await
            .unwrap_err();
        assert_eq!(fields(&err), ["token_id"], "{bad:?}");
    }

    // Nothing stored changed.
    let after = client
        .get_tenant(authed(get, &root))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after, before);
    let names = all_tenants(&mut client, &root, ListTenantsRequest::default()).await;
    assert_eq!(names, ["acme"]);
    let listed = client
        .list_tokens(authed(
            ListTokensRequest {
                include_inactive: true,
                ..Default::default()
            },
            &root,
        ))
        .await
        .unwrap()
        .into_inner()
        .tokens;
    assert_eq!(listed.len(), 1, "only the root token");
}

async fn local(app: &TestApp, args: &[&str]) -> String {
    let (db, args): (String, Vec<String>) = (
        app.database_url().to_owned(),
        args.iter().map(|a| (*a).to_owned()).collect(),
    );
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        crate::helpers::cli::ok(crate::helpers::cli::erpsync(&db, &args))
    })
    .await
    .unwrap()
}

async fn the_cli_provisions_through_admin_with_server(app: TestApp) {
    let root = app.token(Role::Admin, &[]).await;
    let url = app.url();
    let with = |args: &[&str]| -> Vec<String> {
        args.iter()
            .map(|a| (*a).to_owned())
            .chain([
                "--server".into(),
                url.clone(),
                "--token".into(),
                root.clone(),
            ])
            .collect()
    };

    let created = crate::helpers::cli::ok(
        remote(with(&[
            "tenant",
            "create",
            "--id",
            "acme",
            "--name",
            "ACME Ltda",
            "--erp-name",
            "Protheus",
        ]))
        .await,
    );
    assert!(
        created.contains("id: acme") && created.contains("erp: Protheus"),
        "{created}"
    );
    // The same print as the database form's.
    assert_eq!(created, local(&app, &["tenant", "show", "acme"]).await);
    let shown = crate::helpers::cli::ok(remote(with(&["tenant", "show", "acme"])).await);
    assert_eq!(shown, created);

    let updated = crate::helpers::cli::ok(
        remote(with(&[
            "tenant",
            "update",
            "--id",
            "acme",
            "--name",
            "ACME S.A.",
        ]))
        .await,
    );
    assert!(updated.contains("name: ACME S.A."), "{updated}");
    let listed = crate::helpers::cli::ok(remote(with(&["tenant", "list"])).await);
    assert_eq!(listed, local(&app, &["tenant", "list"]).await);
    assert!(listed.starts_with("acme\tACME S.A."), "{listed}");

    let refused = remote(with(&[
        "tenant", "create", "--id", "acme", "--name", "Again",
    ]))
    .await;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("tenant acme already exists"));
    let bad = remote(with(&[
        "tenant",
        "create",
        "--id",
        "x",
        "--name",
        "X",
        "--timezone",
        "Mars/Base",
    ]))
    .await;
    assert!(String::from_utf8_lossy(&bad.stderr).contains("timezone"));

    let issued = crate::helpers::cli::ok(
        remote(with(&[
            "token", "issue", "--role", "crm", "--tenant", "acme", "--label", "CRM web",
        ]))
        .await,
    );
    let secret = issued.lines().last().unwrap().to_owned();
    assert!(
        secret.starts_with("esk_"),
        "the token alone on the last line: {issued}"
    );
    assert!(issued.contains("label: CRM web"), "{issued}");
    let token_id = issued
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("token_id: ")
        .to_owned();
    assert!(app.overview_ok("acme", &secret).await);

    let tokens = crate::helpers::cli::ok(remote(with(&["token", "list"])).await);
    assert!(
        tokens.contains(&token_id) && tokens.contains("label CRM web") && !tokens.contains(&secret),
        "{tokens}"
    );
    // As the database form lists them (a last use is written in the background: left out).
    let without_use = |text: &str| -> Vec<String> {
        text.lines()
            .map(|l| {
                l.split('\t')
                    .filter(|c| !c.starts_with("last used") && *c != "never used")
                    .collect::<Vec<_>>()
                    .join("\t")
            })
            .collect()
    };
    assert_eq!(
        without_use(&tokens),
        without_use(&local(&app, &["token", "list"]).await)
    );

    // Without an admin token the server refuses, and says so.
    let crm_cli: Vec<String> = ["tenant", "list", "--server", &url, "--token", &secret]
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
    let denied = remote(crm_cli).await;
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("PermissionDenied"));

    crate::helpers::cli::ok(remote(with(&["token", "revoke", &token_id])).await);
    assert!(!app.overview_ok("acme", &secret).await);
    let again = remote(with(&["token", "revoke", &token_id])).await;
    assert!(!again.status.success());
}
