//! The isolation matrix: every IntegrationHistory and ErpIngest call, and
//! `POST /erp/v1/{table}`, tried against tenant "acme" with every kind of credential that
//! must not get in — none, garbage, unknown, revoked, another tenant's, the wrong role —
//! and with acme's own token on a call naming another tenant that exists ("globex") and
//! one that does not ("ghost"). The two must be answered alike (same code, same message
//! but for the tenant id the caller sent, same details and metadata), so that a token
//! holder cannot learn which tenants exist. No refusal names a tenant other than the one
//! the caller sent, nor echoes the token; nothing reaches globex; and acme's own token of
//! the right role gets past authorization with every request body the matrix uses (so
//! that it is authorization, not the body, that decides every refusal).

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use chrono::Utc;
use erpsync::domain::tenant::TenantId;
use erpsync::domain::token::Role;
use erpsync::grpc::pb::{
    self, erp_ingest_client::ErpIngestClient, integration_history_client::IntegrationHistoryClient,
};
use erpsync::storage::{erp_counts, request_log, staging, tenants};
use serde_json::{json, Value};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use crate::helpers::seed::{record, valid_fields};
use crate::helpers::{authed, http_post, spawn_app_with, Backend, TestApp};

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_call_refuses_whoever_does_not_reach_the_tenant() {
        super::matrix(crate::helpers::Backend::Sqlite).await;
    }
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_call_refuses_whoever_does_not_reach_the_tenant() {
        super::matrix(crate::helpers::Backend::Postgres).await;
    }
}

/// Every call of the two services, and the HTTP route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    GetOverview,
    UpdateSchedule,
    UpdateSettings,
    StreamLogs,
    ExportHistory,
    ListRuns,
    GetRun,
    TriggerSync,
    ListTables,
    ListPendingDeletes,
    ResolvePendingDeletes,
    GetAbcReport,
    ListCompanies,
    ResolveAbcShift,
    GetCompanyHistory,
    GetRecordTrace,
    SetViewConfig,
    GetViewConfig,
    Push,
    ReportCounts,
    HttpPost,
}

const CALLS: [Call; 21] = [
    Call::GetOverview,
    Call::UpdateSchedule,
    Call::UpdateSettings,
    Call::StreamLogs,
    Call::ExportHistory,
    Call::ListRuns,
    Call::GetRun,
    Call::TriggerSync,
    Call::ListTables,
    Call::ListPendingDeletes,
    Call::ResolvePendingDeletes,
    Call::GetAbcReport,
    Call::ListCompanies,
    Call::ResolveAbcShift,
    Call::GetCompanyHistory,
    Call::GetRecordTrace,
    Call::SetViewConfig,
    Call::GetViewConfig,
    Call::Push,
    Call::ReportCounts,
    Call::HttpPost,
];

impl Call {
    /// Whether the call needs an erp token (else a crm token).
    fn wants_erp(self) -> bool {
        matches!(self, Call::Push | Call::ReportCounts | Call::HttpPost)
    }

    /// Whether the request names its tenant (ListTables has none; the HTTP route takes
    /// the tenant from the erp token).
    fn names_tenant(self) -> bool {
        !matches!(self, Call::ListTables | Call::HttpPost)
    }
}

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Cred {
    NoToken,
    Garbage,
    /// `esk_<12 hex>_<64 hex>` that was never issued.
    Unknown,
    /// acme's token of the right role, revoked.
    Revoked,
    /// globex's token of the right role, on acme.
    OtherTenant,
    /// acme's token of the other role, on acme.
    WrongRole,
    /// acme's token of the right role, on a call naming "globex".
    OwnNamingGlobex,
    /// acme's token of the right role, on a call naming "ghost" (no such tenant).
    OwnNamingGhost,
    /// acme's token of the right role on acme: the control, it must get through.
    Own,
}

const CREDS: [Cred; 9] = [
    Cred::NoToken,
    Cred::Garbage,
    Cred::Unknown,
    Cred::Revoked,
    Cred::OtherTenant,
    Cred::WrongRole,
    Cred::OwnNamingGlobex,
    Cred::OwnNamingGhost,
    Cred::Own,
];

/// What a case must answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Unauthenticated,
    PermissionDenied,
    /// Past authentication and authorization: OK, or whatever the handler answers for
    /// this tenant's data (NOT_FOUND for a run that does not exist, …), never 401/403.
    Reached,
}

/// The tokens of one role.
struct RoleTokens {
    acme: String,
    globex: String,
    revoked: String,
}

struct Tokens {
    crm: RoleTokens,
    erp: RoleTokens,
    unknown: String,
}

/// One case of the matrix: who, naming which tenant, expecting what; None when the
/// credential does not apply to the call.
fn case(call: Call, cred: Cred, t: &Tokens) -> Option<(Option<&str>, &'static str, Expect)> {
    let (right, wrong) = if call.wants_erp() {
        (&t.erp, &t.crm)
    } else {
        (&t.crm, &t.erp)
    };
    Some(match cred {
        Cred::NoToken => (None, "acme", Expect::Unauthenticated),
        Cred::Garbage => (Some("garbage"), "acme", Expect::Unauthenticated),
        Cred::Unknown => (Some(&t.unknown), "acme", Expect::Unauthenticated),
        Cred::Revoked => (Some(&right.revoked), "acme", Expect::Unauthenticated),
        Cred::WrongRole => (Some(&wrong.acme), "acme", Expect::PermissionDenied),
        Cred::OtherTenant => match call {
            // The catalog is the same for every tenant: any crm token reads it.
            Call::ListTables => (Some(&right.globex), "acme", Expect::Reached),
            // globex's erp token can only push into globex: there is no acme to name.
            Call::HttpPost => return None,
            _ => (Some(&right.globex), "acme", Expect::PermissionDenied),
        },
        Cred::OwnNamingGlobex if call.names_tenant() => {
            (Some(&right.acme), "globex", Expect::PermissionDenied)
        }
        Cred::OwnNamingGhost if call.names_tenant() => {
            (Some(&right.acme), "ghost", Expect::PermissionDenied)
        }
        Cred::OwnNamingGlobex | Cred::OwnNamingGhost => return None,
        Cred::Own => (Some(&right.acme), "acme", Expect::Reached),
    })
}

/// An answer, gRPC or HTTP, reduced to what a caller can compare.
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    code: Code,
    message: String,
    /// The status details (google.rpc.* binary), or the HTTP error body's `code`.
    details: Vec<u8>,
    /// The metadata keys (gRPC) or top-level JSON keys with a value (HTTP).
    keys: BTreeSet<String>,
}

impl Answer {
    fn ok() -> Self {
        Self {
            code: Code::Ok,
            message: String::new(),
            details: Vec::new(),
            keys: BTreeSet::new(),
        }
    }

    fn grpc(result: Result<(), Status>) -> Self {
        match result {
            Ok(()) => Self::ok(),
            Err(s) => Self {
                code: s.code(),
                message: s.message().to_owned(),
                details: s.details().to_vec(),
                keys: s
                    .metadata()
                    .keys()
                    .map(|k| match k {
                        tonic::metadata::KeyRef::Ascii(k) => k.as_str().to_owned(),
                        tonic::metadata::KeyRef::Binary(k) => k.as_str().to_owned(),
                    })
                    .collect(),
            },
        }
    }

    fn http(status: u16, body: &str) -> Self {
        if status == 200 {
            return Self::ok();
        }
        let code = match status {
            401 => Code::Unauthenticated,
            403 => Code::PermissionDenied,
            _ => Code::Unknown,
        };
        let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
        Self {
            code,
            message: v["error"]["message"]
                .as_str()
                .map_or_else(|| format!("HTTP {status}: {body}"), str::to_owned),
            details: v["error"]["code"]
                .as_str()
                .unwrap_or_default()
                .as_bytes()
                .to_vec(),
            keys: v
                .as_object()
                .map(|o| {
                    o.iter()
                        .filter(|(_, v)| !v.is_null())
                        .map(|(k, _)| k.clone())
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The message with the tenant id the caller sent replaced by a placeholder.
    fn shape(&self, named: &str) -> String {
        self.message.replace(named, "<tenant>")
    }
}

struct Ctx {
    app: TestApp,
    history: IntegrationHistoryClient<Channel>,
    ingest: ErpIngestClient<Channel>,
}

fn req<T>(msg: T, token: Option<&str>) -> Request<T> {
    match token {
        Some(t) => authed(msg, t),
        None => Request::new(msg),
    }
}

/// The first message of a server stream: its error comes on the call or there.
async fn first<T>(
    opened: Result<tonic::Response<tonic::Streaming<T>>, Status>,
) -> Result<(), Status> {
    opened?.into_inner().message().await.map(|_| ())
}

/// Yesterday in UTC: a day every tenant zone has reached, inside the retention.
fn yesterday() -> String {
    (Utc::now().date_naive() - chrono::Days::new(1))
        .format("%Y-%m-%d")
        .to_string()
}

impl Ctx {
    /// Makes `call` naming `tenant` with `token`; every body is valid, so only the
    /// credentials can refuse it.
    async fn call(&self, call: Call, tenant: &str, token: Option<&str>) -> Answer {
        let mut h = self.history.clone();
        let mut i = self.ingest.clone();
        let t = tenant.to_owned();
        let result = match call {
            Call::GetOverview => h
                .get_overview(req(pb::GetOverviewRequest { tenant_id: t }, token))
                .await
                .map(|_| ()),
            Call::UpdateSchedule => h
                .update_schedule(req(
                    pb::UpdateScheduleRequest {
                        tenant_id: t,
                        schedule: Some(pb::Schedule {
                            daily_times: vec!["03:00".into()],
                            cron: String::new(),
                        }),
                        timezone: Some("America/Sao_Paulo".into()),
                        active: Some(false),
                        ..Default::default()
                    },
                    token,
                ))
                .await
                .map(|_| ()),
            Call::UpdateSettings => h
                .update_settings(req(
                    pb::UpdateSettingsRequest {
                        tenant_id: t,
                        erp_name: Some("Protheus".into()),
                        business_rule: Some("set by the isolation matrix".into()),
                        ..Default::default()
                    },
                    token,
                ))
                .await
                .map(|_| ()),
            Call::StreamLogs => {
                first(
                    h.stream_logs(req(
                        pb::StreamLogsRequest {
                            tenant_id: t,
                            follow: false,
                            ..Default::default()
                        },
                        token,
                    ))
                    .await,
                )
                .await
            }
            Call::ExportHistory => {
                first(
                    h.export_history(req(
                        pb::ExportHistoryRequest {
                            tenant_id: t,
                            from_date: yesterday(),
                            to_date: yesterday(),
                            ..Default::default()
                        },
                        token,
                    ))
                    .await,
                )
                .await
            }
            Call::ListRuns => h
                .list_runs(req(
                    pb::ListRunsRequest {
                        tenant_id: t,
                        ..Default::default()
                    },
                    token,
                ))
                .await
                .map(|_| ()),
            Call::GetRun => h
                .get_run(req(
                    pb::GetRunRequest {
                        tenant_id: t,
                        run_id: "run_isolation".into(),
                    },
                    token,
                ))
                .await
                .map(|_| ()),
            Call::TriggerSync => h
                .trigger_sync(req(pb::TriggerSyncRequest { tenant_id: t }, token))
                .await
                .map(|_| ()),
            Call::ListTables => h
                .list_tables(req(pb::ListTablesRequest::default(), token))
                .await
                .map(|_| ()),
            Call::ListPendingDeletes => h
                .list_pending_deletes(req(
                    pb::ListPendingDeletesRequest {
                        tenant_id: t,
                        table: "company".into(),
                        ..Default::default()
                    },
                    token,
                ))
                .await
                .map(|_| ()),
            Call::ResolvePendingDeletes => h
                .resolve_pending_deletes(req(
                    pb::ResolvePendingDeletesRequest {
                        tenant_id: t,
                        table: "company".into(),
                        all: true,
                        action: pb::ResolveAction::Discard as i32,
                        ..Default::default()
                    },
                    token,
                ))
                .await
                .map(|_| ()),
            Call::GetAbcReport => h
                .get_abc_report(req(pb::GetAbcReportRequest { tenant_id: t }, token))
                .await
                .map(|_| ()),
            Call::ListCompanies => h
                .list_companies(req(
                    pb::ListCompaniesRequest {
                        tenant_id: t,
                        ..Default::default()
                    },
                    token,
                ))
                .await
                .map(|_| ()),
            Call::ResolveAbcShift => h
                .resolve_abc_shift(req(
                    pb::ResolveAbcShiftRequest {
                        tenant_id: t,
                        run_id: "run_isolation".into(),
                        action: pb::ResolveAction::Approve as i32,
                    },
                    token,
                ))
                .await
                .map(|_| ()),
            Call::GetCompanyHistory => h
                .get_company_history(req(
                    pb::GetCompanyHistoryRequest {
                        tenant_id: t,
                        external_id: "C1".into(),
                    },
                    token,
                ))
                .await
                .map(|_| ()),
            Call::GetRecordTrace => h
                .get_record_trace(req(
                    pb::GetRecordTraceRequest {
                        tenant_id: t,
                        table: "company".into(),
                        external_id: "C1".into(),
                        ..Default::default()
                    },
                    token,
                ))
                .await
                .map(|_| ()),
            Call::SetViewConfig => h
                .set_view_config(req(
                    pb::SetViewConfigRequest {
                        tenant_id: t,
                        clear: true,
                        ..Default::default()
                    },
                    token,
                ))
                .await
                .map(|_| ()),
            Call::GetViewConfig => h
                .get_view_config(req(pb::GetViewConfigRequest { tenant_id: t }, token))
                .await
                .map(|_| ()),
            Call::Push => i
                .push(req(
                    pb::PushRequest {
                        tenant_id: t,
                        table: "company".into(),
                        records: vec![record("iso-grpc", &valid_fields("company"))],
                    },
                    token,
                ))
                .await
                .map(|_| ()),
            Call::ReportCounts => i
                .report_counts(req(
                    pb::ReportCountsRequest {
                        tenant_id: t,
                        counts: HashMap::from([("company".to_owned(), 7)]),
                    },
                    token,
                ))
                .await
                .map(|_| ()),
            Call::HttpPost => {
                let body = serde_json::to_vec(&json!({"records": [
                    {"external_id": "iso-http", "fields": valid_fields("company")}
                ]}))
                .unwrap();
                let (status, text) =
                    http_post(self.app.port, "/erp/v1/company", token, &body).await;
                return Answer::http(status, &text);
            }
        };
        Answer::grpc(result)
    }
}

/// `esk_<12 hex>_<64 hex>` → `tok_<12 hex>`.
fn public_id(token: &str) -> String {
    let id = token
        .strip_prefix("esk_")
        .and_then(|rest| rest.split('_').next())
        .filter(|id| id.len() == 12)
        .unwrap_or_else(|| panic!("not a salted token: {token}"));
    format!("tok_{id}")
}

async fn revoked(app: &TestApp, role: Role, tenant: &TenantId) -> String {
    let token = app.token(role, &[tenant]).await;
    assert!(
        app.state
            .tokens
            .revoke_id(&public_id(&token))
            .await
            .unwrap(),
        "the token is revoked"
    );
    token
}

fn hex(n: usize) -> String {
    let mut s = String::new();
    while s.len() < n {
        s.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    s.truncate(n);
    s
}

/// What globex holds that anyone could have changed.
async fn globex_state(ctx: &Ctx, token: &str) -> pb::Overview {
    let mut o = ctx
        .history
        .clone()
        .get_overview(authed(
            pb::GetOverviewRequest {
                tenant_id: "globex".into(),
            },
            token,
        ))
        .await
        .expect("globex reads its own overview")
        .into_inner();
    // The database size is shared bookkeeping, not globex's settings.
    o.db_size_bytes = 0;
    o
}

async fn matrix(backend: Backend) {
    let Some(app) = spawn_app_with(backend, |c| c.rate_limits.failed_auth_per_sec = 0).await else {
        eprintln!(
            "{} unset: PostgreSQL variant not run",
            crate::helpers::PG_ENV
        );
        return;
    };
    let acme = app.create_tenant("acme").await;
    let globex = app.create_tenant("globex").await;
    let tokens = Tokens {
        crm: RoleTokens {
            acme: app.token(Role::Crm, &[&acme]).await,
            globex: app.token(Role::Crm, &[&globex]).await,
            revoked: revoked(&app, Role::Crm, &acme).await,
        },
        erp: RoleTokens {
            acme: app.token(Role::Erp, &[&acme]).await,
            globex: app.token(Role::Erp, &[&globex]).await,
            revoked: revoked(&app, Role::Erp, &acme).await,
        },
        unknown: format!("esk_{}_{}", hex(12), hex(64)),
    };
    let ctx = Ctx {
        history: app.history().await,
        ingest: app.ingest().await,
        app,
    };
    let globex_before = globex_state(&ctx, &tokens.crm.globex).await;

    let mut failures: Vec<String> = Vec::new();
    let mut cases = 0;
    for call in CALLS {
        let mut answers: HashMap<Cred, (Answer, &'static str)> = HashMap::new();
        for cred in CREDS {
            let Some((token, tenant, expect)) = case(call, cred, &tokens) else {
                continue;
            };
            cases += 1;
            let answer =
                match tokio::time::timeout(Duration::from_secs(20), ctx.call(call, tenant, token))
                    .await
                {
                    Ok(a) => a,
                    Err(_) => {
                        failures.push(format!("{call:?} / {cred:?}: no answer within 20 s"));
                        continue;
                    }
                };
            let what = format!(
                "{call:?} / {cred:?} naming {tenant:?}: {:?} {:?}",
                answer.code, answer.message
            );
            let code_ok = match expect {
                Expect::Unauthenticated => answer.code == Code::Unauthenticated,
                Expect::PermissionDenied => answer.code == Code::PermissionDenied,
                Expect::Reached => {
                    !matches!(answer.code, Code::Unauthenticated | Code::PermissionDenied)
                }
            };
            if !code_ok {
                failures.push(format!("{what}; expected {expect:?}"));
            }
            if expect == Expect::Reached {
                answers.insert(cred, (answer, tenant));
                continue;
            }
            // Every refusal: the documented message, no other tenant named (the tenant id
            // the caller sent may be echoed), no part of the token echoed, nothing logged.
            let message_ok = match cred {
                Cred::NoToken => answer.message.contains("missing authorization"),
                Cred::Garbage | Cred::Unknown | Cred::Revoked => {
                    answer.message == "invalid or revoked token"
                }
                Cred::WrongRole => answer.message.contains(if call.wants_erp() {
                    "needs a token of role erp"
                } else {
                    "needs a token of role crm"
                }),
                _ => true,
            };
            if !message_ok {
                failures.push(format!("{what}; not the documented message"));
            }
            let shape = answer.shape(tenant);
            for other in ["acme", "globex", "ghost"] {
                if shape.contains(other) {
                    failures.push(format!(
                        "{what}; names tenant {other:?}, which the caller did not send"
                    ));
                }
            }
            if let Some(token) = token {
                let secret = token.rsplit('_').next().unwrap_or(token);
                if answer.message.contains(token) || answer.message.contains(secret) {
                    failures.push(format!("{what}; echoes the token"));
                }
            }
            if answer.keys.contains("x-request-id") || answer.keys.contains("request_id") {
                failures.push(format!(
                    "{what}; carries a request id ({:?}): a refused call is not logged",
                    answer.keys
                ));
            }
            if call == Call::HttpPost {
                let name = match answer.code {
                    Code::Unauthenticated => "UNAUTHENTICATED",
                    _ => "PERMISSION_DENIED",
                };
                if answer.details != name.as_bytes() {
                    failures.push(format!(
                        "{what}; JSON error code {:?}, expected {name}",
                        String::from_utf8_lossy(&answer.details)
                    ));
                }
            }
            answers.insert(cred, (answer, tenant));
        }

        // An unknown token and a revoked one are told apart by nothing.
        let same = |a: Cred, b: Cred| match (answers.get(&a), answers.get(&b)) {
            (Some((x, _)), Some((y, _))) => x == y,
            _ => true,
        };
        if !same(Cred::Unknown, Cred::Revoked) || !same(Cred::Unknown, Cred::Garbage) {
            failures.push(format!(
                "{call:?}: garbage, unknown and revoked tokens are answered differently: {:?} / {:?} / {:?}",
                answers.get(&Cred::Garbage),
                answers.get(&Cred::Unknown),
                answers.get(&Cred::Revoked)
            ));
        }
        // A tenant that does not exist and one the token does not reach: the same answer
        // but for the id the caller sent, so existence cannot be probed.
        if let (Some((globex, g)), Some((ghost, h))) = (
            answers.get(&Cred::OwnNamingGlobex),
            answers.get(&Cred::OwnNamingGhost),
        ) {
            let differs = globex.code != ghost.code
                || globex.shape(g) != ghost.shape(h)
                || globex.details != ghost.details
                || globex.keys != ghost.keys;
            if differs {
                failures.push(format!(
                    "{call:?} with acme's token: \"globex\" (exists) → {:?} {:?} {:?}, \
                     \"ghost\" (does not exist) → {:?} {:?} {:?}: tenant existence leaks",
                    globex.code, globex.message, globex.keys, ghost.code, ghost.message, ghost.keys
                ));
            }
        }
    }

    // Nothing acme's token, nor a refused caller, did reached globex or made ghost.
    let globex_after = globex_state(&ctx, &tokens.crm.globex).await;
    if globex_before != globex_after {
        failures.push(format!(
            "globex changed:\n before {globex_before:?}\n after  {globex_after:?}"
        ));
    }
    let db = &ctx.app.state.db;
    let staged = staging::list(db, &globex, "company").await.unwrap();
    if !staged.is_empty() {
        failures.push(format!("records staged in globex: {staged:?}"));
    }
    let logged = request_log::list(
        db,
        &globex,
        Utc::now() - chrono::Duration::days(1),
        Utc::now() + chrono::Duration::days(1),
        10,
    )
    .await
    .unwrap();
    if !logged.is_empty() {
        failures.push(format!(
            "requests logged in globex's history: {:?}",
            logged.iter().map(|e| &e.endpoint).collect::<Vec<_>>()
        ));
    }
    let counts = erp_counts::all(db, &globex).await.unwrap();
    if !counts.is_empty() {
        failures.push(format!("ERP counts reported for globex: {counts:?}"));
    }
    let runs = ctx
        .history
        .clone()
        .list_runs(authed(
            pb::ListRunsRequest {
                tenant_id: "globex".into(),
                ..Default::default()
            },
            &tokens.crm.globex,
        ))
        .await
        .unwrap()
        .into_inner()
        .runs;
    if !runs.is_empty() {
        failures.push(format!("runs started in globex: {runs:?}"));
    }
    let ghost = TenantId::parse("ghost").unwrap();
    if tenants::get(db, &ghost).await.unwrap().is_some() {
        failures.push("tenant ghost came into existence".into());
    }
    // The control pushes did land in acme, by both transports.
    let acme_staged: BTreeSet<String> = staging::list(db, &acme, "company")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.external_id)
        .collect();
    if acme_staged != BTreeSet::from(["iso-grpc".to_owned(), "iso-http".to_owned()]) {
        failures.push(format!("acme's own pushes staged {acme_staged:?}"));
    }

    assert_eq!(cases, 184, "the matrix size");
    assert!(
        failures.is_empty(),
        "{:?}: {} of {cases} cases or checks failed:\n{}",
        backend,
        failures.len(),
        failures.join("\n")
    );
}
