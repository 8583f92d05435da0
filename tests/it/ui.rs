//! The Dados ERP page (`/ui/`) in a real headless Chromium ([`crate::browser`]) against a
//! real erpsync holding the Northwind data (tests/data): what a person sees and does on
//! each tab, checked against the gRPC answers of the same server in the same test.
//!
//! Every test saves a screenshot of what it looked at in `<target>/ui-screenshots/`
//! and fails if the page's console reported an error (a Content-Security-Policy
//! violation, an uncaught exception, a resource that did not load). The page's behaviour that
//! does not depend on the database runs on SQLite only; the overview and the held
//! deletions also run on PostgreSQL (ERPSYNC_TEST_DATABASE_URL).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Days, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use erpsync::domain::token::Role;
use erpsync::grpc::pb::{
    self, integration_history_client::IntegrationHistoryClient, ExportHistoryRequest, ExportKind,
    GetAbcReportRequest, GetCompanyHistoryRequest, GetOverviewRequest, GetRunRequest,
    ListPendingDeletesRequest, ListRunsRequest, ListTablesRequest, Schedule, TriggerSyncRequest,
    UpdateScheduleRequest, UpdateSettingsRequest,
};
use erpsync::worker::sink::EmbeddedSink;
use serde_json::{json, Value};
use tonic::transport::Channel;

use crate::helpers::browser::Browser;
use crate::helpers::northwind::{erp_records, northwind, push_over_http, PUSH_BATCH};
use crate::helpers::workbooks::sheets;
use crate::helpers::{authed, spawn_app_full, spawn_app_with, Backend, Gate, GatedCrm, TestApp};

type History = IntegrationHistoryClient<Channel>;

const TENANT: &str = "northwind";
const SAO_PAULO: Tz = chrono_tz::America::Sao_Paulo;

/// The tests, each `async fn(TestApp)`, on SQLite; `both` ones on PostgreSQL too.
macro_rules! ui_tests {
    (sqlite: [$($only:ident),* $(,)?], both: [$($both:ident),* $(,)?]) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $only() {
                    super::$only(super::app(crate::helpers::Backend::Sqlite).await.unwrap()).await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $both() {
                    super::$both(super::app(crate::helpers::Backend::Sqlite).await.unwrap()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $both() {
                    let Some(app) = super::app(crate::helpers::Backend::Postgres).await else {
                        eprintln!("{} unset: PostgreSQL variant not run", crate::helpers::PG_ENV);
                        return;
                    };
                    super::$both(app).await;
                }
            )*
        }
    };
}

ui_tests!(
    sqlite: [
        the_schedule_form_shows_a_refused_time_next_to_its_field_and_saves_the_next_local_midnight,
        the_historico_download_is_the_workbook_export_history_gives,
        the_abc_tab_draws_the_curve_and_class_counts_of_get_abc_report,
        a_refused_token_shows_the_auth_error_and_the_token_stays_in_session_storage_only,
    ],
    both: [
        the_overview_shows_the_seeds_fields_as_get_overview_answers,
        approving_a_held_deletion_on_the_page_changes_the_list,
    ]
);

/// A server whose scheduler does not tick during a test (the page's tests trigger their
/// runs themselves); None for PostgreSQL when it is not configured.
async fn app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, quiet).await
}

fn quiet(c: &mut erpsync::config::Config) {
    c.scheduler_tick = Duration::from_secs(3600);
}

/// The name of a test's screenshots: `<short>-<backend>`.
fn shot_name(short: &str, backend: Backend) -> String {
    format!("{short}-{}", format!("{backend:?}").to_lowercase())
}

/// A browser for `short` (None: skipped) and the tenant made in the meantime by `seed`.
async fn browser_and<F: std::future::Future<Output = Seed>>(
    short: &str,
    backend: Backend,
    seed: F,
) -> Option<(Browser, Seed)> {
    let name = shot_name(short, backend);
    if crate::helpers::browser::unavailable(&name) {
        return None;
    }
    let (browser, seed) = tokio::join!(Browser::start(&name), seed);
    Some((browser.expect("the browser is here"), seed))
}

/// The tenant "northwind" with its crm and erp tokens.
struct Seed {
    app: TestApp,
    crm: String,
    erp: String,
    history: History,
}

/// The settings the overview shows, as a host would set them.
const ERP_NAME: &str = "Northwind Traders ERP";
const ERP_VERSION: &str = "2.4.1";
const BUSINESS_RULE: &str = "Os clientes do Northwind chegam como empresas e contatos; pedidos \
     e itens alimentam a Curva ABC, calculada sobre o total dos pedidos. Exclusões acima de 5% \
     da base ficam retidas até serem aprovadas.";

impl Seed {
    /// The tenant with its settings (ERP, deployment, business rule, ABC on order totals
    /// since 1996) and a schedule at 06:00 and 18:30 in São Paulo; no data yet.
    async fn tenant(app: TestApp) -> Self {
        let tenant = app.create_tenant(TENANT).await;
        let crm = app.token(Role::Crm, &[&tenant]).await;
        let erp = app.token(Role::Erp, &[&tenant]).await;
        let mut history = app.history().await;
        history
            .update_settings(authed(
                UpdateSettingsRequest {
                    tenant_id: TENANT.into(),
                    erp_name: Some(ERP_NAME.into()),
                    erp_version: Some(ERP_VERSION.into()),
                    deployment_status: pb::DeploymentStatus::InProgress as i32,
                    business_rule: Some(BUSINESS_RULE.into()),
                    integration_type: pb::IntegrationType::Api as i32,
                    abc_basis: Some("order".into()),
                    abc_window_months: Some(1200),
                    ..Default::default()
                },
                &crm,
            ))
            .await
            .unwrap();
        history
            .update_schedule(authed(
                UpdateScheduleRequest {
                    tenant_id: TENANT.into(),
                    schedule: Some(Schedule {
                        daily_times: vec!["06:00".into(), "18:30".into()],
                        cron: String::new(),
                    }),
                    timezone: Some(SAO_PAULO.name().into()),
                    max_time_without_success: Some(prost_types::Duration {
                        seconds: 24 * 3600,
                        nanos: 0,
                    }),
                    active: Some(true),
                    scheduled: Some(true),
                },
                &crm,
            ))
            .await
            .unwrap();
        Self {
            app,
            crm,
            erp,
            history,
        }
    }

    /// [`Seed::tenant`] with the whole Northwind dump pushed over HTTP (not synced).
    async fn pushed(app: TestApp) -> Self {
        let seed = Self::tenant(app).await;
        push_over_http(&seed.app, &seed.erp, &erp_records(northwind())).await;
        seed
    }

    /// [`Seed::pushed`], then synced by a run that succeeded.
    async fn synced(app: TestApp) -> Self {
        let mut seed = Self::pushed(app).await;
        let run = seed.sync().await;
        assert_eq!(run.status(), pb::RunStatus::Success, "{:?}", run.errors);
        seed
    }

    /// The page, signed in through the URL fragment as an embedding host would open it.
    fn page(&self) -> String {
        format!("{}/ui/#tenant={TENANT}&token={}", self.app.url(), self.crm)
    }

    async fn overview(&mut self) -> pb::Overview {
        self.history
            .get_overview(authed(
                GetOverviewRequest {
                    tenant_id: TENANT.into(),
                },
                &self.crm,
            ))
            .await
            .unwrap()
            .into_inner()
    }

    async fn get_run(&mut self, run_id: &str) -> pb::GetRunResponse {
        self.history
            .get_run(authed(
                GetRunRequest {
                    tenant_id: TENANT.into(),
                    run_id: run_id.into(),
                },
                &self.crm,
            ))
            .await
            .unwrap()
            .into_inner()
    }

    /// Waits (bounded) for the run to end and answers it.
    async fn finished(&mut self, run_id: &str) -> pb::Run {
        for _ in 0..2400 {
            let run = self.get_run(run_id).await.run.unwrap();
            if run.status() != pb::RunStatus::Running {
                return run;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("run {run_id} did not finish in 60 s");
    }

    /// Triggers a run over gRPC and waits for its end.
    async fn sync(&mut self) -> pb::Run {
        let started = self
            .history
            .trigger_sync(authed(
                TriggerSyncRequest {
                    tenant_id: TENANT.into(),
                },
                &self.crm,
            ))
            .await
            .unwrap()
            .into_inner();
        let run_id = started.run.unwrap().run_id;
        self.finished(&run_id).await
    }
}

/// Opens the page with the seed's token and waits for the overview to be drawn.
async fn open(browser: &Browser, seed: &Seed) {
    browser.goto(&seed.page()).await;
    browser
        .until(
            "the overview to be drawn",
            "return document.body.dataset.overview === 'drawn';",
        )
        .await;
}

/// Screenshots of the three tabs, the overview last (as the page opens).
async fn shoot_tabs(browser: &Browser) {
    for tab in ["historico", "abc", "geral"] {
        browser.open_tab(tab).await;
        if tab == "historico" {
            browser
                .until(
                    "the table checkboxes",
                    "return document.querySelectorAll('#tables input[name=table]').length;",
                )
                .await;
        }
        if tab == "abc" {
            browser
                .until(
                    "the ABC report (or its absence) to be shown",
                    "return document.getElementById('abc-curve') !== null \
                     || document.getElementById('abc-status').textContent.trim() !== '';",
                )
                .await;
        }
        browser.screenshot(tab).await;
    }
}

/// A timestamp as the page writes it in `tz`: "29/11/2026 00:00" (pt-BR).
fn local(ts: &prost_types::Timestamp, tz: Tz) -> String {
    let at = DateTime::<Utc>::from_timestamp(ts.seconds, 0).expect("a valid timestamp");
    at.with_timezone(&tz).format("%d/%m/%Y %H:%M").to_string()
}

/// A duration as the page writes it: "850 ms", "12s", "49m", "1h 05m", "2d 03h".
fn duration_text(d: &prost_types::Duration) -> String {
    let ms = d.seconds as f64 * 1000.0 + (f64::from(d.nanos) / 1e6).round();
    if ms < 1000.0 {
        return format!("{} ms", ms.round());
    }
    let s = (ms / 1000.0).round() as i64;
    if s < 60 {
        return format!("{s}s");
    }
    if s < 3600 {
        return format!("{}m", (s as f64 / 60.0).round());
    }
    let h = s / 3600;
    let m = ((s % 3600) as f64 / 60.0).round() as i64;
    if h < 48 {
        return if m == 60 {
            format!("{}h 00m", h + 1)
        } else {
            format!("{h}h {m:02}m")
        };
    }
    format!("{}d {:02}h", h / 24, h % 24)
}

/// "11 MB", "1,5 KB" (pt-BR decimals, powers of 1024) read back as bytes, with the
/// largest error its rounding allows.
fn size_read_back(text: &str) -> (f64, f64) {
    let (number, unit) = text.split_once(' ').expect("number and unit");
    let power = ["B", "KB", "MB", "GB", "TB"]
        .iter()
        .position(|u| *u == unit)
        .unwrap_or_else(|| panic!("a size unit: {text}"));
    let decimals = number.split_once(',').map_or(0, |(_, d)| d.len());
    let value: f64 = number.replace('.', "").replace(',', ".").parse().unwrap();
    let scale = 1024f64.powi(power as i32);
    (value * scale, 0.5 * 10f64.powi(-(decimals as i32)) * scale)
}

/// The pt-BR label the page gives an enum value.
fn label(kind: &str, value: &str) -> &'static str {
    match (kind, value) {
        ("it", "API") => "API",
        ("it", "VIEW") => "View",
        ("ds", "NOT_STARTED") => "não iniciada",
        ("ds", "IN_PROGRESS") => "em andamento",
        ("ds", "COMPLETED") => "concluída",
        ("health", "HEALTHY") => "saudável",
        ("health", "STALE") => "atrasada",
        ("health", "FAILING") => "com falha",
        ("health", "INACTIVE") => "inativa",
        ("health", "NEVER_RUN") => "nunca executada",
        ("rs", "RUNNING") => "Em andamento",
        ("rs", "SUCCESS") => "Sucesso",
        ("rs", "PARTIAL") => "Parcial",
        ("rs", "FAILED") => "Erro",
        ("rs", "INTERRUPTED") => "Interrompida",
        _ => panic!("no label for {kind}.{value}"),
    }
}

/// An integer as the page writes it in pt-BR: 2.155.
fn pt_int(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('.');
        }
        out.push(c);
    }
    out
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "Sim"
    } else {
        "Não"
    }
}

/// Every `dd[data-field]` of the overview with its `<dt>` label: field → (label, text).
async fn facts(browser: &Browser) -> BTreeMap<String, (String, String)> {
    let v = browser
        .js(
            "return [...document.querySelectorAll('dd[data-field]')].map(dd => \
             [dd.dataset.field, dd.parentElement.querySelector('dt').textContent.trim(), \
              dd.textContent.trim()]);",
            vec![],
        )
        .await;
    serde_json::from_value::<Vec<(String, String, String)>>(v)
        .unwrap()
        .into_iter()
        .map(|(f, l, t)| (f, (l, t)))
        .collect()
}

/// The token the page keeps: (sessionStorage's entry, localStorage's whole content).
async fn kept_token(browser: &Browser) -> (Option<String>, String) {
    let v = browser
        .js(
            "return [sessionStorage.getItem('erpsync.auth'), JSON.stringify(localStorage)];",
            vec![],
        )
        .await;
    (
        v[0].as_str().map(str::to_owned),
        v[1].as_str().unwrap_or_default().to_owned(),
    )
}

async fn the_overview_shows_the_seeds_fields_as_get_overview_answers(app: TestApp) {
    let backend = app.backend;
    let Some((browser, mut seed)) = browser_and("overview", backend, Seed::synced(app)).await
    else {
        return;
    };
    open(&browser, &seed).await;
    let ov = seed.overview().await;
    let tz: Tz = ov.timezone.parse().unwrap();
    assert_eq!(tz, SAO_PAULO);

    // Every field of the seed's screen, with its pt-BR label and GetOverview's value.
    let facts = facts(&browser).await;
    let next = ov.next_run_at.as_ref().expect("scheduled: a next run");
    let average = ov.average_duration.as_ref().expect("a run finished");
    let last = ov.last_success_at.as_ref().expect("a run succeeded");
    let want = [
        (
            "integration_type",
            "Tipo de integração",
            label("it", "API").to_owned(),
        ),
        (
            "erp",
            "ERP / Versão do ERP",
            format!("{ERP_NAME} {ERP_VERSION}"),
        ),
        (
            "deployment_status",
            "Situação da implantação",
            label("ds", "IN_PROGRESS").to_owned(),
        ),
        ("active", "Ativo", yes_no(ov.active).to_owned()),
        ("scheduled", "Agendado", yes_no(ov.scheduled).to_owned()),
        (
            "next_run",
            "Próxima integração agendada",
            format!("{} ({})", local(next, tz), ov.timezone),
        ),
        ("average_duration", "Duração média", duration_text(average)),
        (
            "health",
            "Situação da integração",
            label(
                "health",
                ov.health().as_str_name().trim_start_matches("HEALTH_"),
            )
            .to_owned(),
        ),
        (
            "last_success",
            "Última integração com sucesso",
            local(last, tz),
        ),
        (
            "business_rule",
            "Regra de negócio da integração",
            BUSINESS_RULE.to_owned(),
        ),
    ];
    for (field, label, text) in &want {
        assert_eq!(
            facts.get(*field),
            Some(&((*label).to_owned(), text.clone())),
            "{field}: {facts:#?}"
        );
    }
    assert!(ov.active && ov.scheduled);
    assert_eq!(ov.health(), pb::Health::Healthy);
    // The next run's machine-readable time is GetOverview's local one.
    let datetime = browser
        .js(
            "return document.querySelector('dd[data-field=next_run] time').getAttribute('datetime');",
            vec![],
        )
        .await;
    assert_eq!(datetime, json!(ov.next_run_local));
    // The size as the page rounds it.
    let (size_label, size_text) = &facts["database_size"];
    assert_eq!(size_label, "Tamanho do banco de dados da integração");
    let (shown, error) = size_read_back(size_text);
    assert!(
        ov.db_size_bytes > 0 && (shown - ov.db_size_bytes as f64).abs() <= error,
        "{size_text} for {} bytes",
        ov.db_size_bytes
    );

    // No open alert, as GetOverview says.
    assert!(ov.open_alerts.is_empty(), "{:?}", ov.open_alerts);
    assert_eq!(browser.texts("#alerts li").await, Vec::<String>::new());
    assert!(!browser.visible("#alerts-box").await);

    // The schedule form holds the tenant's schedule.
    let form = browser
        .js(
            "return ['daily-times', 'timezone', 'max-without-success'].map(id => document.getElementById(id).value);",
            vec![],
        )
        .await;
    assert_eq!(form, json!(["06:00, 18:30", "America/Sao_Paulo", "24"]));

    // The reconciliation per table: what is staged and in the CRM after the run.
    for t in &ov.tables {
        let staged = browser
            .text(&format!(
                "#recon-table tr[data-table='{}'] td[data-col=staged]",
                t.table
            ))
            .await;
        assert_eq!(staged, pt_int(t.staged_count), "{}", t.table);
    }
    let crm = browser
        .text("#recon-table tr[data-table='company'] td[data-col=crm]")
        .await;
    assert_eq!(crm, "91");

    // The run log: ListRuns' runs, newest first, with their status.
    let runs = seed
        .history
        .list_runs(authed(
            ListRunsRequest {
                tenant_id: TENANT.into(),
                page_size: 20,
                ..Default::default()
            },
            &seed.crm,
        ))
        .await
        .unwrap()
        .into_inner()
        .runs;
    let shown = browser
        .js(
            "return [...document.querySelectorAll('#runs tbody tr[data-run-id]')].map(tr => \
             [tr.dataset.runId, tr.querySelector('td[data-col=status]').textContent.trim()]);",
            vec![],
        )
        .await;
    let listed: Vec<(String, String)> = runs
        .iter()
        .map(|r| {
            let status = r.status().as_str_name().trim_start_matches("RUN_STATUS_");
            (r.run_id.clone(), label("rs", status).to_owned())
        })
        .collect();
    assert_eq!(
        serde_json::from_value::<Vec<(String, String)>>(shown).unwrap(),
        listed
    );

    // Enter on the focused row (rows take the keyboard's focus) opens the run: its stages
    // and per-table counts (ERP / staged / CRM).
    let run_id = &runs[0].run_id;
    browser
        .client()
        .find(fantoccini::Locator::Css(&format!(
            "#runs tbody tr[data-run-id='{run_id}']"
        )))
        .await
        .unwrap()
        .send_keys(&fantoccini::key::Key::Enter.to_string())
        .await
        .unwrap();
    browser
        .until(
            "the run's detail",
            "return document.querySelectorAll('#run-tables tbody tr[data-table]').length;",
        )
        .await;
    let detail = seed.get_run(run_id).await;
    let run = detail.run.unwrap();
    assert_eq!(
        browser.text("#run-status").await,
        label("rs", "SUCCESS"),
        "{run:?}"
    );
    assert_eq!(
        browser.texts("#run-stages tbody tr").await.len(),
        run.stages.len()
    );
    for t in &run.tables {
        let row = format!("#run-tables tr[data-table='{}']", t.table);
        assert_eq!(
            browser.text(&format!("{row} td[data-col=staged]")).await,
            pt_int(t.staged_count)
        );
    }
    let lines = detail.log.iter().filter(|e| !e.heartbeat).count();
    assert!(lines > 0);
    browser
        .until(
            "the run's log",
            &format!("return document.querySelectorAll('#run-log li').length === {lines};"),
        )
        .await;
    // The run log's line says how the run started and how long it took, as GetRun has
    // it, and no count that contradicts it.
    let received: u64 = run.tables.iter().map(|t| t.received).sum();
    assert!(received > 3000, "{run:?}");
    let summary = browser
        .text(&format!(
            "#runs tbody tr[data-run-id='{run_id}'] td[data-col=log]"
        ))
        .await;
    let took = duration_text(run.duration.as_ref().expect("a finished run's duration"));
    assert!(
        summary.contains(&format!("manual (Sincronizar agora) · {took}")),
        "{summary:?}"
    );
    assert!(
        !summary.contains("recebidos")
            || summary.contains(&format!("{} recebidos", pt_int(received))),
        "the run log says {summary:?} of a run that received {received}"
    );
    browser.screenshot("run").await;
    browser.click("#run-close").await;

    // The token came in the fragment: gone from the address, kept in sessionStorage only.
    let url = browser.client().current_url().await.unwrap();
    assert_eq!(url.fragment(), None, "{url}");
    assert!(!url.as_str().contains(&seed.crm));
    let (session, local_storage) = kept_token(&browser).await;
    assert!(
        session.as_deref().is_some_and(|s| s.contains(&seed.crm)),
        "{session:?}"
    );
    assert!(!local_storage.contains(&seed.crm), "{local_storage}");
    // A reload signs in again from sessionStorage.
    browser.client().refresh().await.unwrap();
    browser
        .until(
            "the overview drawn again after a reload",
            "return document.body.dataset.overview === 'drawn';",
        )
        .await;

    shoot_tabs(&browser).await;
    browser.assert_console_clean().await;
    browser.close().await;
}

async fn the_schedule_form_shows_a_refused_time_next_to_its_field_and_saves_the_next_local_midnight(
    app: TestApp,
) {
    let backend = app.backend;
    let Some((browser, mut seed)) = browser_and("schedule", backend, Seed::tenant(app)).await
    else {
        return;
    };
    open(&browser, &seed).await;
    let before = seed.overview().await;

    // The server's own refusal of "25:00", asked over gRPC: the field it names.
    let refused = seed
        .history
        .update_schedule(authed(
            UpdateScheduleRequest {
                tenant_id: TENANT.into(),
                schedule: Some(Schedule {
                    daily_times: vec!["25:00".into()],
                    cron: String::new(),
                }),
                timezone: Some(SAO_PAULO.name().into()),
                ..Default::default()
            },
            &seed.crm,
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    let violations = tonic_types::StatusExt::get_details_bad_request(&refused)
        .expect("a BadRequest")
        .field_violations;
    assert_eq!(violations.len(), 1, "{violations:?}");
    let violation = &violations[0];

    browser.fill("#daily-times", "25:00").await;
    browser.fill("#timezone", "America/Sao_Paulo").await;
    browser.click("#schedule-save").await;
    let at = format!("[data-violation-for=\"{}\"]", violation.field);
    let shown = browser.text(&at).await;
    assert!(
        shown.contains(&violation.description),
        "{shown:?} for {violation:?}"
    );
    // Next to the input it names, which points at it.
    let placed = browser
        .js(
            &format!(
                "const v = document.querySelector({sel}); const input = document.getElementById('daily-times'); \
                 return [!v.hidden, input.closest('.field').contains(v), input.getAttribute('aria-invalid'), \
                 (input.getAttribute('aria-describedby') || '').split(' ').includes(v.id)];",
                sel = json!(at)
            ),
            vec![],
        )
        .await;
    assert_eq!(placed, json!([true, true, "true", true]));
    let not_saved = browser.text("#schedule-status").await;
    assert!(!not_saved.contains("Salvo"), "{not_saved}");
    browser.screenshot("refused").await;
    // And nothing changed.
    let after = seed.overview().await;
    assert_eq!(
        (
            &after.schedule,
            &after.timezone,
            &after.next_run_at,
            &after.max_time_without_success
        ),
        (
            &before.schedule,
            &before.timezone,
            &before.next_run_at,
            &before.max_time_without_success
        )
    );

    // "00:00" in São Paulo: the next local midnight, whatever the browser's own zone.
    browser.fill("#daily-times", "00:00").await;
    let asked = Utc::now();
    browser.click("#schedule-save").await;
    browser
        .until(
            "the schedule to be saved",
            "return document.getElementById('schedule-status').textContent.trim() === 'Salvo';",
        )
        .await;
    let answered = Utc::now();
    let ov = seed.overview().await;
    assert_eq!(ov.schedule.as_ref().unwrap().daily_times, ["00:00"]);
    let next = ov.next_run_at.as_ref().unwrap();
    let next_at = DateTime::<Utc>::from_timestamp(next.seconds, 0).unwrap();
    let midnight_after = |t: DateTime<Utc>| {
        let day = t.with_timezone(&SAO_PAULO).date_naive() + Days::new(1);
        SAO_PAULO
            .from_local_datetime(&day.and_time(NaiveTime::MIN))
            .single()
            .unwrap()
            .with_timezone(&Utc)
    };
    assert!(
        [midnight_after(asked), midnight_after(answered)].contains(&next_at),
        "{next_at} is not the next midnight in São Paulo after {asked}"
    );
    assert!(ov.next_run_local.ends_with("T00:00:00-03:00"), "{ov:?}");
    let shown = browser.text("dd[data-field=next_run]").await;
    assert_eq!(
        shown,
        format!(
            "{} 00:00 (America/Sao_Paulo)",
            next_at.with_timezone(&SAO_PAULO).format("%d/%m/%Y")
        )
    );
    browser.screenshot("midnight").await;
    browser.assert_console_clean().await;
    browser.close().await;
}

/// The cursors of the log lines the page shows, in order.
async fn shown_cursors(browser: &Browser) -> Vec<u64> {
    let v = browser
        .js(
            "return [...document.querySelectorAll('#run-log li')].map(li => li.dataset.cursor);",
            vec![],
        )
        .await;
    serde_json::from_value::<Vec<String>>(v)
        .unwrap()
        .iter()
        .map(|c| c.parse().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_started_from_the_page_shows_its_log_lines_while_it_runs() {
    let (companies, contacts) = (Gate::default(), Gate::default());
    let (c1, c2) = (companies.clone(), contacts.clone());
    let app = spawn_app_full(Backend::Sqlite, quiet, move |db| {
        Arc::new(GatedCrm {
            inner: EmbeddedSink::new(db),
            companies: c1,
            contacts: c2,
        })
    })
    .await
    .unwrap();
    let Some((browser, mut seed)) =
        browser_and("live_run", Backend::Sqlite, Seed::pushed(app)).await
    else {
        return;
    };
    open(&browser, &seed).await;
    assert!(browser
        .texts("#runs tbody tr[data-run-id]")
        .await
        .is_empty());

    // "Sincronizar agora": the run starts, reaches the CRM and is held there.
    browser.click("#sync-now").await;
    companies.reached.notified().await;
    let run_id = browser
        .until(
            "the new run's row",
            "const tr = document.querySelector('#runs tbody tr[data-run-id]'); return tr && tr.dataset.runId;",
        )
        .await
        .as_str()
        .unwrap()
        .to_owned();
    // The page opened the run and follows it.
    browser
        .until(
            "the run's detail following its log",
            "return !document.getElementById('run-detail').hidden \
             && document.getElementById('run-status').dataset.status === 'RUNNING' \
             && document.getElementById('run-live').textContent.trim() !== '' \
             && document.querySelectorAll('#run-log li').length > 0;",
        )
        .await;
    let held = seed.get_run(&run_id).await;
    assert_eq!(held.run.as_ref().unwrap().status(), pb::RunStatus::Running);
    let first = shown_cursors(&browser).await;
    browser.screenshot("held").await;

    // Let the companies through: the push logs their delivery while the run is held
    // again at the contacts; the page shows that line before the run ends.
    companies.open.notify_one();
    contacts.reached.notified().await;
    let line = browser
        .until(
            "the companies' delivery line, live",
            "return [...document.querySelectorAll('#run-log li')].map(li => li.textContent) \
             .find(t => t.includes('company') && t.includes('delivered: 91 new')) || null;",
        )
        .await;
    let running = seed.get_run(&run_id).await;
    assert_eq!(
        running.run.as_ref().unwrap().status(),
        pb::RunStatus::Running,
        "the line came while the run was running: {line}"
    );
    // Every line the run has logged so far (it is held: no more come), in order, after
    // the ones shown when it was opened.
    let logged: Vec<u64> = running.log.iter().map(|e| e.cursor).collect();
    browser
        .until(
            "every line logged so far",
            &format!(
                "return JSON.stringify([...document.querySelectorAll('#run-log li')].map(li => Number(li.dataset.cursor))) === {};",
                json!(serde_json::to_string(&logged).unwrap())
            ),
        )
        .await;
    assert!(
        logged.len() > first.len() && logged.starts_with(&first),
        "{first:?} → {logged:?}"
    );
    browser.screenshot("live").await;

    // The run ends: its status, and every line of its log, as GetRun gives them.
    contacts.open.notify_one();
    let run = seed.finished(&run_id).await;
    assert_eq!(run.status(), pb::RunStatus::Success, "{:?}", run.errors);
    browser
        .until(
            "the run's end on the page",
            "return document.getElementById('run-status').dataset.status === 'SUCCESS';",
        )
        .await;
    let all: Vec<u64> = seed
        .get_run(&run_id)
        .await
        .log
        .iter()
        .map(|e| e.cursor)
        .collect();
    browser
        .until(
            "every line of the run",
            &format!(
                "return document.querySelectorAll('#run-log li').length === {};",
                all.len()
            ),
        )
        .await;
    assert_eq!(shown_cursors(&browser).await, all);
    browser.screenshot("ended").await;
    browser.assert_console_clean().await;
    browser.close().await;
}

async fn the_historico_download_is_the_workbook_export_history_gives(app: TestApp) {
    let backend = app.backend;
    let Some((browser, mut seed)) = browser_and("historico", backend, Seed::synced(app)).await
    else {
        return;
    };
    open(&browser, &seed).await;
    browser.open_tab("historico").await;

    // The 12 tables of ListTables, all ticked; the last 7 days in the tenant's zone, with
    // the limit explained before anything is sent.
    let catalog = seed
        .history
        .list_tables(authed(ListTablesRequest::default(), &seed.crm))
        .await
        .unwrap()
        .into_inner()
        .tables;
    assert_eq!(catalog.len(), 12);
    browser
        .until(
            "the table checkboxes",
            "return document.querySelectorAll('#tables input[name=table]').length === 12;",
        )
        .await;
    let boxes = browser
        .js(
            "return [...document.querySelectorAll('#tables input[name=table]')].map(b => [b.value, b.checked]);",
            vec![],
        )
        .await;
    // Every table, ticked (in the page's order: by label).
    let mut shown: Vec<(String, bool)> = serde_json::from_value(boxes).unwrap();
    shown.sort();
    let mut want: Vec<(String, bool)> = catalog.iter().map(|t| (t.id.clone(), true)).collect();
    want.sort();
    assert_eq!(shown, want);
    let today = Utc::now().with_timezone(&SAO_PAULO).date_naive();
    let from = today - Days::new(6);
    let br = |d: chrono::NaiveDate| d.format("%d/%m/%Y").to_string();
    let period = browser
        .js(
            "return [document.getElementById('period-from').value, document.getElementById('period-to').value];",
            vec![],
        )
        .await;
    assert_eq!(period, json!([br(from), br(today)]));
    assert!(browser.visible("#period-hint").await);
    let hint = browser.text("#period-hint").await;
    assert!(hint.contains('7'), "{hint}");

    // Ten days: refused on the page, before any call.
    browser
        .fill("#period-from", &br(today - Days::new(9)))
        .await;
    browser.click("#export").await;
    let error = browser.text("#period-error").await;
    assert!(!error.is_empty());
    assert!(browser.visible("#period-error").await);
    browser.screenshot("too_long").await;
    browser.fill("#period-from", &br(from)).await;

    browser.click("#export").await;
    let name = format!("erpsync-historico-{TENANT}-{from}-{today}.xlsx");
    let bytes = browser.downloaded(&name).await;
    browser
        .until(
            "the download's end in the progress line",
            "const p = document.getElementById('export-progress-bar'); \
             return !document.getElementById('export-progress').hidden && p.value === 1 && p.max === 1;",
        )
        .await;
    let progress = browser.text("#export-progress-text").await;
    assert!(progress.contains(&name), "{progress}");
    browser.screenshot("downloaded").await;

    // The workbook opens, with a row per push of each table, as ExportHistory's own.
    let page = sheets(&bytes);
    let direct = crate::helpers::workbooks::download(
        &seed.app,
        &seed.crm,
        ExportHistoryRequest {
            tenant_id: TENANT.into(),
            from_date: from.to_string(),
            to_date: today.to_string(),
            tables: vec![],
            kind: ExportKind::Requests as i32,
        },
    )
    .await
    .unwrap();
    let grpc = sheets(&direct.bytes);
    let names = |s: &[(String, Vec<Vec<calamine::Data>>)]| -> Vec<String> {
        s.iter().map(|(n, _)| n.clone()).collect()
    };
    assert_eq!(names(&page), names(&grpc));
    for (table, records) in erp_records(northwind()) {
        let rows = &page
            .iter()
            .find(|(n, _)| n == table)
            .unwrap_or_else(|| panic!("no sheet {table}: {:?}", names(&page)))
            .1;
        assert_eq!(
            rows.len() - 1,
            records.len().div_ceil(PUSH_BATCH),
            "{table}: one row per push under the header"
        );
    }
    // Every request row as the gRPC download has it (the summary says when it was made).
    for ((name, rows), (_, direct_rows)) in page.iter().zip(&grpc) {
        if name != "summary" {
            assert_eq!(rows, direct_rows, "sheet {name}");
        }
    }
    browser.assert_console_clean().await;
    browser.close().await;
}

/// The page's held deletions: (external id, state), in order.
async fn shown_deletes(browser: &Browser) -> Vec<(String, String)> {
    let v = browser
        .js(
            "return [...document.querySelectorAll('#deletes tbody tr[data-record-id]')].map(tr => [tr.dataset.recordId, tr.dataset.state]);",
            vec![],
        )
        .await;
    serde_json::from_value(v).unwrap()
}

async fn pending(seed: &mut Seed, table: &str) -> Vec<(String, String)> {
    seed.history
        .list_pending_deletes(authed(
            ListPendingDeletesRequest {
                tenant_id: TENANT.into(),
                table: table.into(),
                page_size: 100,
                page_token: String::new(),
                ..Default::default()
            },
            &seed.crm,
        ))
        .await
        .unwrap()
        .into_inner()
        .pending_deletes
        .into_iter()
        .map(|d| (d.external_id, d.state))
        .collect()
}

async fn approving_a_held_deletion_on_the_page_changes_the_list(app: TestApp) {
    let backend = app.backend;
    let Some((browser, mut seed)) = browser_and("deletes", backend, Seed::synced(app)).await else {
        return;
    };
    // The ERP deletes 10 of the 91 customers: over 5 % (and over a minimum of 5 rows),
    // so the delete guard holds them.
    seed.history
        .update_settings(authed(
            UpdateSettingsRequest {
                tenant_id: TENANT.into(),
                delete_guard_min_rows: Some(5),
                ..Default::default()
            },
            &seed.crm,
        ))
        .await
        .unwrap();
    let gone: Vec<Value> = erp_records(northwind())[0]
        .1
        .iter()
        .take(10)
        .map(|c| json!({"external_id": c["external_id"], "deleted": true}))
        .collect();
    push_over_http(&seed.app, &seed.erp, &[("company", gone)]).await;
    let run = seed.sync().await;
    assert_eq!(run.status(), pb::RunStatus::Partial, "{run:?}");

    open(&browser, &seed).await;
    // The alert at the top, as GetOverview has it.
    let ov = seed.overview().await;
    let kinds: Vec<String> = ov
        .open_alerts
        .iter()
        .map(|a| {
            a.kind()
                .as_str_name()
                .trim_start_matches("ALERT_KIND_")
                .to_owned()
        })
        .collect();
    assert!(kinds.contains(&"DELETES_HELD".to_owned()), "{kinds:?}");
    let shown_kinds = browser
        .js(
            "return [...document.querySelectorAll('#alerts li[data-alert-kind]')].map(li => li.dataset.alertKind);",
            vec![],
        )
        .await;
    assert_eq!(shown_kinds, json!(kinds));
    assert!(browser.visible("#alerts-box").await);
    browser.screenshot("alert").await;

    browser.open_tab("historico").await;
    let held = pending(&mut seed, "company").await;
    assert_eq!(held.len(), 10);
    assert!(held.iter().all(|(_, s)| s == "HELD"), "{held:?}");
    browser
        .until(
            "the held deletions",
            "return document.querySelectorAll('#deletes tbody tr[data-record-id]').length === 10;",
        )
        .await;
    assert_eq!(shown_deletes(&browser).await, held);
    browser.screenshot("held").await;

    // Approve the first one.
    let id = held[0].0.clone();
    browser
        .click(&format!("#deletes input[name=pending][value='{id}']"))
        .await;
    browser.click("#deletes-approve").await;
    browser
        .until(
            "the approved deletion's new state",
            &format!(
                "const tr = document.querySelector(\"#deletes tr[data-record-id='{id}']\"); \
                 return tr && tr.dataset.state === 'APPROVED';"
            ),
        )
        .await;
    let after = pending(&mut seed, "company").await;
    let approved: Vec<&String> = after
        .iter()
        .filter(|(_, s)| s == "APPROVED")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(approved, [&id]);
    assert_eq!(shown_deletes(&browser).await, after);
    assert_ne!(after, held);
    browser.screenshot("approved").await;

    // Contacts: none held.
    browser
        .client()
        .find(fantoccini::Locator::Css("#deletes-table"))
        .await
        .unwrap()
        .select_by_value("contact")
        .await
        .unwrap();
    browser
        .until(
            "the contacts' empty list",
            "return !document.getElementById('deletes-empty').hidden;",
        )
        .await;
    assert!(pending(&mut seed, "contact").await.is_empty());
    assert!(shown_deletes(&browser).await.is_empty());
    browser.assert_console_clean().await;
    browser.close().await;
}

async fn the_abc_tab_draws_the_curve_and_class_counts_of_get_abc_report(app: TestApp) {
    let backend = app.backend;
    let Some((browser, mut seed)) = browser_and("abc", backend, Seed::synced(app)).await else {
        return;
    };
    open(&browser, &seed).await;
    browser.open_tab("abc").await;
    browser
        .until(
            "the curve",
            "return document.getElementById('abc-curve') !== null;",
        )
        .await;
    let report = seed
        .history
        .get_abc_report(authed(
            GetAbcReportRequest {
                tenant_id: TENANT.into(),
            },
            &seed.crm,
        ))
        .await
        .unwrap()
        .into_inner();

    // The class counts, as GetAbcReport gives them (Northwind: 34 / 27 / 28, 2 without).
    let mut want = BTreeMap::new();
    for c in &report.classes {
        let class = c.abc_class().as_str_name().trim_start_matches("ABC_CLASS_");
        want.insert(class.to_owned(), c.companies.to_string());
    }
    want.insert("none".into(), report.companies_without_class.to_string());
    let counts = browser
        .js(
            "return Object.fromEntries([...document.querySelectorAll('#abc-counts [data-class]')].map(td => [td.dataset.class, td.textContent.trim()]));",
            vec![],
        )
        .await;
    assert_eq!(
        serde_json::from_value::<BTreeMap<String, String>>(counts).unwrap(),
        want
    );
    assert_eq!(
        want.values().map(String::as_str).collect::<Vec<_>>(),
        ["34", "27", "28", "2"]
    );

    // The curve is the report's: from the origin through every point, in the plot area.
    let points = browser
        .js(
            "return document.getElementById('abc-curve').getAttribute('points');",
            vec![],
        )
        .await;
    let drawn: Vec<(f64, f64)> = points
        .as_str()
        .unwrap()
        .split_whitespace()
        .map(|p| {
            let (x, y) = p.split_once(',').unwrap();
            (x.parse().unwrap(), y.parse().unwrap())
        })
        .collect();
    assert_eq!(
        drawn.len(),
        report.curve.len() + 1,
        "the origin, then each point"
    );
    let (x0, x1, y0, y1) = (52.0, 424.0, 262.0, 16.0);
    let expected = std::iter::once((0.0, 0.0)).chain(report.curve.iter().map(|p| {
        (
            p.company_share.parse().unwrap(),
            p.revenue_share.parse().unwrap(),
        )
    }));
    for ((x, y), (cs, rs)) in drawn.iter().zip(expected) {
        let (cs, rs): (f64, f64) = (cs, rs);
        assert!(
            (x - (x0 + (x1 - x0) * cs / 100.0)).abs() <= 0.051,
            "{x} for {cs}"
        );
        assert!(
            (y - (y0 - (y0 - y1) * rs / 100.0)).abs() <= 0.051,
            "{y} for {rs}"
        );
    }
    assert_eq!(
        drawn.last(),
        Some(&(x1, y1)),
        "100 % of the companies, 100 % of the revenue"
    );
    assert!(
        drawn
            .windows(2)
            .all(|w| w[1].0 >= w[0].0 && w[1].1 <= w[0].1),
        "a Pareto curve only rises"
    );
    assert!(!browser.visible("#abc-shift").await, "no shift held");
    browser.screenshot("curve").await;

    // A company found by name opens its category history and its record trace.
    browser.fill("#company-search", "Alfreds").await;
    browser.click("#company-go").await;
    browser
        .click("#company-results li[data-company-id='ALFKI'] button")
        .await;
    let history = seed
        .history
        .get_company_history(authed(
            GetCompanyHistoryRequest {
                tenant_id: TENANT.into(),
                external_id: "ALFKI".into(),
            },
            &seed.crm,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!history.changes.is_empty());
    browser
        .until(
            "the company's history",
            &format!(
                "return document.querySelectorAll('#company-history tbody tr[data-run-id]').length === {};",
                history.changes.len()
            ),
        )
        .await;
    let title = browser.text("#company-detail-title").await;
    assert_eq!(title, "Alfreds Futterkiste (ALFKI)");
    browser
        .until(
            "the record trace's answer",
            "return document.getElementById('record-trace').dataset.state === 'ok';",
        )
        .await;
    // Its events are drawn as rows, the push that carried it among them.
    browser
        .until(
            "the trace's events",
            "return document.querySelectorAll('#record-trace tr[data-kind=\"ACCEPTED\"]').length > 0;",
        )
        .await;
    assert!(!browser.text("#record-trace").await.is_empty());
    browser.screenshot("company").await;
    browser.assert_console_clean().await;
    browser.close().await;
}

async fn a_refused_token_shows_the_auth_error_and_the_token_stays_in_session_storage_only(
    app: TestApp,
) {
    let backend = app.backend;
    let Some((browser, seed)) = browser_and("auth", backend, Seed::tenant(app)).await else {
        return;
    };
    // A token erpsync never issued, in the fragment: UNAUTHENTICATED, the sign-in form
    // again, and nothing kept.
    let forged = format!("esk_000000000000_{}", "0".repeat(64));
    browser
        .goto(&format!(
            "{}/ui/#tenant={TENANT}&token={forged}",
            seed.app.url()
        ))
        .await;
    let error = browser.text("#auth-error").await;
    browser
        .until(
            "#auth-error to be shown",
            "return !document.getElementById('auth-error').hidden;",
        )
        .await;
    assert!(error.contains("UNAUTHENTICATED"), "{error}");
    assert!(browser.visible("#login").await);
    let url = browser.client().current_url().await.unwrap();
    assert_eq!(url.fragment(), None, "{url}");
    assert_eq!(kept_token(&browser).await, (None, "{}".to_owned()));
    browser.screenshot("unauthenticated").await;

    // Another tenant's token: PERMISSION_DENIED, said as clearly.
    let other = seed.app.create_tenant("other").await;
    let others = seed.app.token(Role::Crm, &[&other]).await;
    browser.fill("#login-tenant", TENANT).await;
    browser.fill("#login-token", &others).await;
    browser.click("#login-submit").await;
    browser
        .until(
            "the permission error",
            "return !document.getElementById('auth-error').hidden \
             && document.getElementById('auth-error').textContent.includes('PERMISSION_DENIED');",
        )
        .await;
    browser.screenshot("permission_denied").await;

    // The right token through the form: signed in, kept in sessionStorage only.
    browser.fill("#login-tenant", TENANT).await;
    browser.fill("#login-token", &seed.crm).await;
    browser.click("#login-submit").await;
    browser
        .until(
            "the overview",
            "return document.body.dataset.overview === 'drawn';",
        )
        .await;
    assert!(!browser.visible("#auth-error").await);
    let (session, local_storage) = kept_token(&browser).await;
    assert!(session.is_some_and(|s| s.contains(&seed.crm)));
    assert_eq!(local_storage, "{}");

    // English on request; the document's language follows.
    browser
        .client()
        .find(fantoccini::Locator::Css("#lang"))
        .await
        .unwrap()
        .select_by_value("en")
        .await
        .unwrap();
    browser
        .until(
            "the page in English",
            "return document.documentElement.lang === 'en' \
             && document.querySelector('dd[data-field=active]').parentElement.querySelector('dt').textContent.trim() === 'Active';",
        )
        .await;
    browser.screenshot("english").await;

    // Signing out forgets the token.
    browser.click("#logout").await;
    browser
        .until(
            "the sign-in form",
            "return !document.getElementById('login').hidden;",
        )
        .await;
    assert_eq!(kept_token(&browser).await.0, None);
    browser.assert_console_clean().await;
    browser.close().await;
}

/// The page of a host (a CRM) framing erpsync's page at `ui` and handing it the
/// credentials by postMessage once it says it is ready. Every message the host receives
/// is kept in `window.received`.
fn host_html(ui: &str, tenant: &str, token: &str) -> String {
    let origin = ui.split("/ui/").next().unwrap_or_default();
    format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>CRM</title></head><body>
<h1>CRM · Configurações › Integração</h1>
<iframe id="erp" title="Dados ERP" src="{ui}" width="1200" height="800"></iframe>
<script>
window.received = [];
window.addEventListener("message", (e) => {{
  window.received.push(e.data);
  if (e.origin === {origin} && e.data && e.data.type === "erpsync-ready") {{
    document.getElementById("erp").contentWindow.postMessage(
      {{ type: "erpsync-auth", tenant: {tenant}, token: {token} }}, {origin});
  }}
}});
</script></body></html>"#,
        origin = json!(origin),
        tenant = json!(tenant),
        token = json!(token),
    )
}

/// Serves `pages` (path → HTML) on `listener` until aborted: the host's own origin.
fn serve_host(
    listener: tokio::net::TcpListener,
    pages: BTreeMap<String, String>,
) -> tokio::task::JoinHandle<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pages = Arc::new(pages);
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let pages = pages.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]);
                let path = head.split_whitespace().nth(1).unwrap_or("/");
                let (status, body) = match pages.get(path) {
                    Some(html) => ("200 OK", html.clone()),
                    None => ("404 Not Found", String::new()),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body.as_bytes()).await;
            });
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_framed_only_by_the_configured_origins_and_takes_its_token_from_the_host() {
    if crate::helpers::browser::unavailable("embedding") {
        return;
    }
    // The host's origin first: one erpsync is configured with it, one keeps the default.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = format!("http://{}", listener.local_addr().unwrap());
    let allowed = spawn_app_with(Backend::Sqlite, |c| {
        quiet(c);
        c.ui_frame_ancestors = format!("'self' {host}");
    })
    .await
    .unwrap();
    let default = app(Backend::Sqlite).await.unwrap();
    let (browser, seed) = tokio::join!(Browser::start("embedding"), Seed::tenant(allowed));
    let browser = browser.unwrap();
    let other = default.create_tenant(TENANT).await;
    let other_token = default.token(Role::Crm, &[&other]).await;
    let server = serve_host(
        listener,
        BTreeMap::from([
            (
                "/default".to_owned(),
                host_html(&format!("{}/ui/", default.url()), TENANT, &other_token),
            ),
            (
                "/allowed".to_owned(),
                host_html(&format!("{}/ui/", seed.app.url()), TENANT, &seed.crm),
            ),
        ]),
    );

    // erpsync's default ('self'): the browser refuses to show the page in the frame.
    browser.goto(&format!("{host}/default")).await;
    browser
        .until(
            "the host page",
            "return document.readyState === 'complete';",
        )
        .await;
    browser.client().clone().enter_frame(0).await.unwrap();
    let framed = browser
        .until(
            "the frame's document",
            "return location.href !== 'about:blank' && document.readyState === 'complete' && location.href;",
        )
        .await;
    assert!(
        framed
            .as_str()
            .is_some_and(|u| u.starts_with("chrome-error:")),
        "the frame shows {framed}"
    );
    let login = browser
        .js("return document.getElementById('login') === null;", vec![])
        .await;
    assert_eq!(login, json!(true), "none of the page in the frame");
    browser.client().clone().enter_parent_frame().await.unwrap();
    // The browser says why, naming the directive.
    let refusal = browser
        .console_line("the frame's refusal", "frame-ancestors")
        .await;
    assert!(refusal.contains("frame-ancestors 'self'"), "{refusal}");
    let received = browser.js("return window.received;", vec![]).await;
    assert_eq!(received, json!([]), "the refused page never ran");
    browser.screenshot("refused").await;

    // Configured with the host's origin: framed, and signed in by the host's message.
    browser.goto(&format!("{host}/allowed")).await;
    browser
        .until(
            "the page's ready message",
            "return window.received.some(m => m && m.type === 'erpsync-ready');",
        )
        .await;
    browser.client().clone().enter_frame(0).await.unwrap();
    browser
        .until(
            "the overview inside the frame",
            "return document.body.dataset.overview === 'drawn';",
        )
        .await;
    let (session, local_storage) = kept_token(&browser).await;
    assert!(session.is_some_and(|s| s.contains(&seed.crm)));
    assert_eq!(local_storage, "{}");
    browser.client().clone().enter_parent_frame().await.unwrap();
    browser.screenshot("framed").await;
    browser.assert_console_clean().await;
    server.abort();
    browser.close().await;
    drop(default);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_browser_holds_the_page_to_its_content_security_policy() {
    if crate::helpers::browser::unavailable("csp") {
        return;
    }
    let app = app(Backend::Sqlite).await.unwrap();
    let browser = Browser::start("csp").await.unwrap();
    browser.goto(&format!("{}/ui/", app.url())).await;
    browser
        .until(
            "the sign-in form",
            "return !document.getElementById('login').hidden;",
        )
        .await;
    browser.assert_console_clean().await;

    // What an injected script would try: run inline code, style inline, call elsewhere.
    // The served policy refuses each, and the browser says so.
    let elsewhere = format!("http://localhost:{}/ui/erpsync.binpb", app.port);
    let tried = browser
        .client()
        .execute_async(
            "const [url, done] = arguments; \
             const s = document.createElement('script'); \
             s.textContent = 'window.__inline = true;'; \
             document.body.append(s); \
             const p = document.createElement('p'); \
             p.setAttribute('style', 'color: rgb(255, 0, 0)'); \
             document.body.append(p); \
             const red = getComputedStyle(p).color === 'rgb(255, 0, 0)'; \
             fetch(url).then(() => done([window.__inline === true, red, 'fetched']), \
                             (e) => done([window.__inline === true, red, String(e)]));",
            vec![json!(elsewhere)],
        )
        .await
        .unwrap();
    assert_eq!(tried[0], json!(false), "an inline script ran: {tried}");
    assert_eq!(tried[1], json!(false), "an inline style applied: {tried}");
    assert_ne!(
        tried[2],
        json!("fetched"),
        "another origin was reached: {tried}"
    );
    for directive in [
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
    ] {
        let said = browser
            .console_line(&format!("the refusal under {directive}"), directive)
            .await;
        assert!(said.contains("Content Security Policy"), "{said}");
    }
    browser.close().await;
}
