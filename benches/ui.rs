//! The Dados ERP page's benchmark (issue 24): how soon after navigation the page has drawn
//! the overview of a tenant with 10 000 runs and 1 000 000 request-log rows (target
//! 500 ms, measured, not asserted), and how much the page weighs.
//!
//! The tenant is seeded straight into the database (runs with their tables and stages,
//! the request log and its usage counters, as the server would have left them), a real
//! server runs in this process, and headless Chromium (Debian's chromium and
//! chromium-driver, driven as the browser tests drive it: tests/it/helpers/browser.rs) opens
//! `/ui/#tenant=…&token=…` `--navigations` times. Each time the figure is the page's own
//! `performance.getEntriesByName("erpsync:overview-drawn")[0].startTime` (ms since the
//! navigation started); the first navigation (cold browser caches) is reported apart,
//! the median and the spread are of the others. Beside it, in the same run: GetOverview
//! over gRPC alone (the server's share), and the page's GetOverview call as the browser
//! timed it. The size: each file the page loads, raw and gzip -9 (flate2, level 9).
//!
//! SQLite always; PostgreSQL too when ERPSYNC_BENCH_DATABASE_URL names a server the
//! bench may create a database on.
//!
//! Run: `cargo bench --bench ui` (`-- --runs N --requests M --navigations K`). Prints one
//! JSON line per backend and one for the page's size, and writes its section of
//! BENCHMARKS.md.

mod common;

#[allow(dead_code)] // the bench drives the browser with part of the tests' harness
#[path = "../tests/it/helpers/browser.rs"]
mod browser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Write;
use std::str::FromStr;
use std::time::{Duration, Instant};

use chrono::Utc;
use erpsync::app;
use erpsync::config::Config;
use erpsync::domain::tenant::{Tenant, TenantId};
use erpsync::domain::token::{Grant, NewToken, Role, TenantScope};
use erpsync::grpc::pb::{
    integration_history_client::IntegrationHistoryClient, GetOverviewRequest, Schedule,
    UpdateScheduleRequest, UpdateSettingsRequest,
};
use erpsync::storage::{tenants, tokens, Db};
use serde_json::{json, Value};
use sqlx::{ConnectOptions, Connection, Executor};
use tonic::metadata::MetadataValue;

const TENANT: &str = "bench";

/// The ERP tables of every seeded run, as a Northwind-sized integration has them.
const RUN_TABLES: [&str; 6] = [
    "company",
    "contact",
    "seller",
    "order",
    "order_item",
    "supplier",
];

/// The stages of every seeded run, in order.
const STAGES: [&str; 7] = [
    "collect",
    "validate",
    "delete_guard",
    "push",
    "abc",
    "categorize",
    "finish",
];

/// How many rows one seeding statement writes.
const CHUNK: usize = 100_000;

/// What one backend measured.
struct Figures {
    backend: &'static str,
    seed_secs: f64,
    first_ms: f64,
    drawn_ms: Vec<f64>,
    in_page_overview_ms: Vec<f64>,
    grpc_overview_ms: Vec<f64>,
    db_size_bytes: u64,
}

fn main() {
    common::unless_benchmarking();
    let runs = common::arg("--runs", 10_000);
    let requests = common::arg("--requests", 1_000_000);
    let navigations = common::arg("--navigations", 11).max(2);
    if let Some(why) = browser::missing() {
        eprintln!("the UI bench needs a browser: {why}");
        println!("{}", json!({"bench": "ui_overview", "skipped": why}));
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let size = page_size();
    println!("{}", size);

    let mut results = Vec::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("ui.db").display());
    results.push(rt.block_on(run("sqlite", &url, runs, requests, navigations)));
    match std::env::var("ERPSYNC_BENCH_DATABASE_URL") {
        Ok(admin) => {
            let name = "erpsync_bench_ui";
            let url = rt.block_on(common::create_pg(&admin, name));
            results.push(rt.block_on(run("postgres", &url, runs, requests, navigations)));
            rt.block_on(common::drop_pg(&admin, name));
        }
        Err(_) => eprintln!("ERPSYNC_BENCH_DATABASE_URL unset: PostgreSQL not measured"),
    }
    for f in &results {
        println!("{}", line(f, runs, requests));
    }
    write_markdown(&results, &size, runs, requests, navigations);
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn line(f: &Figures, runs: usize, requests: usize) -> Value {
    let max = f.drawn_ms.iter().copied().fold(0.0, f64::max);
    let min = f.drawn_ms.iter().copied().fold(f64::INFINITY, f64::min);
    json!({
        "bench": "ui_overview",
        "backend": f.backend,
        "runs": runs,
        "request_log_rows": requests,
        "navigations": f.drawn_ms.len() + 1,
        "overview_drawn_ms_median": round(median(&f.drawn_ms)),
        "overview_drawn_ms_min": round(min),
        "overview_drawn_ms_max": round(max),
        "overview_drawn_ms_first_navigation": round(f.first_ms),
        "get_overview_in_page_ms_median": round(median(&f.in_page_overview_ms)),
        "get_overview_grpc_ms_median": round(median(&f.grpc_overview_ms)),
        "get_overview_grpc_ms_max": round(f.grpc_overview_ms.iter().copied().fold(0.0, f64::max)),
        "db_size_bytes": f.db_size_bytes,
        "target_ms": 500,
        "seed_seconds": round(f.seed_secs),
    })
}

/// Each file the page loads: raw and gzip -9 bytes.
fn page_size() -> Value {
    let ui = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ui");
    let mut files = serde_json::Map::new();
    let (mut raw, mut gz) = (0, 0);
    for (name, path) in [
        ("index.html", ui.join("index.html")),
        ("style.css", ui.join("style.css")),
        ("app.js", ui.join("dist/app.js")),
    ] {
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let z = gzip9(&bytes);
        raw += bytes.len();
        gz += z;
        files.insert(name.into(), json!({"bytes": bytes.len(), "gzip9_bytes": z}));
    }
    let descriptors = erpsync::grpc::pb::FILE_DESCRIPTOR_SET;
    json!({
        "bench": "ui_page_size",
        "files": files,
        "total_bytes": raw,
        "gzip9_total_bytes": gz,
        // Fetched by the page too (/ui/erpsync.binpb), generated from proto/ by the build.
        "descriptor_set_bytes": descriptors.len(),
        "descriptor_set_gzip9_bytes": gzip9(descriptors),
    })
}

fn gzip9(bytes: &[u8]) -> usize {
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(bytes).expect("gzip in memory");
    z.finish().expect("gzip in memory").len()
}

async fn run(
    backend: &'static str,
    url: &str,
    runs: usize,
    requests: usize,
    navigations: usize,
) -> Figures {
    let db = Db::connect(url).await.expect("database");
    db.migrate().await.expect("migrations");
    let tenant = TenantId::parse(TENANT).unwrap();
    tenants::insert(
        &db,
        &Tenant::new(tenant.clone(), "Bench".into(), Utc::now()),
    )
    .await
    .unwrap();
    let token = NewToken::generate().unwrap();
    tokens::insert(
        &db,
        &token,
        &Grant {
            token_id: token.id.clone(),
            role: Role::Crm,
            scope: TenantScope::Listed(vec![tenant.clone()]),
        },
        None,
        Utc::now(),
    )
    .await
    .unwrap();
    let t0 = Instant::now();
    seed(url, runs, requests).await;
    if backend == "sqlite" {
        db.checkpoint().await.unwrap();
    }
    let seed_secs = t0.elapsed().as_secs_f64();
    eprintln!("{backend}: seeded {runs} runs and {requests} request-log rows in {seed_secs:.1} s");

    let config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: url.to_owned(),
        // No scheduled run during the measure.
        scheduler_tick: Duration::from_secs(3600),
        ..Config::default()
    };
    let server = app::build(&config).await.expect("server");
    let port = server.port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(server.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let base = format!("http://127.0.0.1:{port}");
    let mut history = IntegrationHistoryClient::connect(base.clone())
        .await
        .expect("connects");
    let secret = token.secret.clone();
    history
        .update_settings(authed(
            UpdateSettingsRequest {
                tenant_id: TENANT.into(),
                erp_name: Some("Bench ERP".into()),
                erp_version: Some("1.0".into()),
                business_rule: Some("Benchmark tenant.".into()),
                ..Default::default()
            },
            &secret,
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
                timezone: Some("America/Sao_Paulo".into()),
                ..Default::default()
            },
            &secret,
        ))
        .await
        .unwrap();

    // The server alone: GetOverview over gRPC (one warm-up, then timed).
    let request = || {
        authed(
            GetOverviewRequest {
                tenant_id: TENANT.into(),
            },
            &secret,
        )
    };
    let first = history
        .get_overview(request())
        .await
        .expect("GetOverview")
        .into_inner();
    assert!(
        runs == 0 || !first.recent_runs.is_empty(),
        "the seeded runs are read"
    );
    let mut grpc_overview_ms = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        history.get_overview(request()).await.expect("GetOverview");
        grpc_overview_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    eprintln!(
        "{backend}: GetOverview over gRPC, median {:.1} ms",
        median(&grpc_overview_ms)
    );

    // The page, in headless Chromium.
    let browser = browser::Browser::start(&format!("bench-ui-{backend}"))
        .await
        .expect("the browser is here");
    let page = format!("{base}/ui/#tenant={TENANT}&token={}", token.secret);
    let mut drawn = Vec::new();
    let mut in_page = Vec::new();
    for i in 0..navigations {
        // A real navigation each time (a change of the fragment alone would not reload).
        browser.goto("about:blank").await;
        browser.goto(&page).await;
        let t = browser
            .until(
                "the overview to be drawn",
                "const d = performance.getEntriesByName('erpsync:overview-drawn')[0]; \
                 if (!d) return null; \
                 const o = performance.getEntriesByType('resource').find(e => e.name.endsWith('/GetOverview')); \
                 return {drawn: d.startTime, overview: o ? o.responseEnd - o.startTime : null};",
            )
            .await;
        let ms = t["drawn"].as_f64().expect("a time");
        eprintln!("{backend}: navigation {i}: overview drawn at {ms:.1} ms");
        drawn.push(ms);
        if let Some(o) = t["overview"].as_f64() {
            in_page.push(o);
        }
    }
    browser.screenshot("geral").await;
    browser.close().await;
    let _ = stop.send(());
    let _ = served.await;
    Figures {
        backend,
        seed_secs,
        first_ms: drawn[0],
        drawn_ms: drawn[1..].to_vec(),
        in_page_overview_ms: if in_page.len() > 1 {
            in_page[1..].to_vec()
        } else {
            in_page
        },
        grpc_overview_ms,
        db_size_bytes: first.db_size_bytes,
    }
}

/// `msg` with `authorization: Bearer <token>`.
fn authed<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    let v: MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
    req.metadata_mut().insert("authorization", v);
    req
}

/// A raw connection for the seeding statements.
enum Raw {
    Sqlite(sqlx::SqliteConnection),
    Pg(sqlx::PgConnection),
}

impl Raw {
    async fn open(url: &str) -> Self {
        if url.starts_with("sqlite:") {
            let conn = sqlx::sqlite::SqliteConnectOptions::from_str(url)
                .unwrap()
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
                .connect()
                .await
                .expect("sqlite");
            Self::Sqlite(conn)
        } else {
            let conn = sqlx::postgres::PgConnectOptions::from_str(url)
                .unwrap()
                .connect()
                .await
                .expect("postgres");
            Self::Pg(conn)
        }
    }

    fn pg(&self) -> bool {
        matches!(self, Self::Pg(_))
    }

    /// Runs `sql` in a transaction of its own.
    async fn exec(&mut self, sql: &str) {
        match self {
            Self::Sqlite(c) => {
                let mut tx = c.begin().await.unwrap();
                tx.execute(sql)
                    .await
                    .unwrap_or_else(|e| panic!("{e}\n{sql}"));
                tx.commit().await.unwrap();
            }
            Self::Pg(c) => {
                let mut tx = c.begin().await.unwrap();
                tx.execute(sql)
                    .await
                    .unwrap_or_else(|e| panic!("{e}\n{sql}"));
                tx.commit().await.unwrap();
            }
        }
    }

    /// The integers `from..to` as a row source with column `i`.
    fn seq(&self, from: usize, to: usize) -> String {
        if self.pg() {
            format!("generate_series({from}, {}) AS s(i)", to - 1)
        } else {
            format!(
                "(WITH RECURSIVE seq(i) AS (SELECT {from} UNION ALL SELECT i + 1 FROM seq \
                 WHERE i + 1 < {to}) SELECT i FROM seq)"
            )
        }
    }

    /// A timestamp column value from an SQL expression of Unix seconds, in the form the
    /// backend's driver stores one.
    fn at(&self, secs: &str) -> String {
        if self.pg() {
            format!("to_timestamp({secs})")
        } else {
            format!("strftime('%Y-%m-%dT%H:%M:%S', {secs}, 'unixepoch') || '+00:00'")
        }
    }

    /// `n` as text zero-padded to `width` digits.
    fn padded(&self, n: &str, width: usize) -> String {
        if self.pg() {
            format!("lpad(({n})::text, {width}, '0')")
        } else {
            format!("printf('%0{width}d', {n})")
        }
    }

    fn boolean(&self, b: bool) -> &'static str {
        match (self.pg(), b) {
            (true, true) => "TRUE",
            (true, false) => "FALSE",
            (false, true) => "1",
            (false, false) => "0",
        }
    }
}

/// The tenant's history: `runs` finished runs one hour apart up to a few minutes ago (a
/// failure every 50th, a partial run every 17th, the newest a success), each with its 6
/// tables and 7 stages; `requests` requests of the last 7 days in the request log, and
/// the usage counters that go with them.
async fn seed(url: &str, runs: usize, requests: usize) {
    let mut raw = Raw::open(url).await;
    let now = Utc::now().timestamp();
    // Run i starts at first + i hours; the newest (runs - 1) 10 minutes ago.
    let first = now - 600 - 3600 * i64::try_from(runs.max(1) - 1).unwrap();
    // Run ids as the server writes them (36 characters), numbered by i.
    let id = format!("'00000000-0000-4000-8000-' || {}", raw.padded("i", 12));
    let mut start = 0;
    while start < runs {
        let end = (start + CHUNK / 10).min(runs);
        let seq = raw.seq(start, end);
        let started = raw.at(&format!("{first} + i * 3600"));
        let finished = raw.at(&format!("{first} + i * 3600 + 40 + i % 30"));
        let status = format!(
            "CASE WHEN i = {last} THEN 'SUCCESS' WHEN i % 50 = 0 THEN 'FAILED' \
             WHEN i % 17 = 0 THEN 'PARTIAL' ELSE 'SUCCESS' END",
            last = runs - 1
        );
        raw.exec(&format!(
            "INSERT INTO sync_run (id, tenant_id, status, \"trigger\", started_at, finished_at, \
             duration_ms, error, progress) \
             SELECT {id}, '{TENANT}', {status}, CASE WHEN i % 24 = 0 THEN 'MANUAL' ELSE 'SCHEDULE' END, \
             {started}, {finished}, (40 + i % 30) * 1000, \
             CASE WHEN i % 50 = 0 AND i <> {last} THEN 'CRM sink unavailable: connection refused' END, NULL \
             FROM {seq}",
            id = id,
            last = runs - 1,
        ))
        .await;
        for (n, table) in RUN_TABLES.iter().enumerate() {
            let crm = if n < 2 {
                (
                    "91".to_owned(),
                    raw.at(&format!("{first} + i * 3600 + 35")),
                    "'EMBEDDED'",
                )
            } else {
                ("NULL".to_owned(), "NULL".to_owned(), "NULL")
            };
            raw.exec(&format!(
                "INSERT INTO run_table (run_id, table_name, received, inserted, updated, deleted, \
                 held, rejected, erp_count, staged_count, crm_count, crm_counted_at, crm_count_source) \
                 SELECT {id}, '{table}', 100 + i % 50, i % 7, 100 + i % 50 - i % 7, 0, 0, i % 3, \
                 NULL, 2000 + {n} * 100, {crm_count}, {crm_at}, {source} FROM {seq}",
                id = id,
                crm_count = crm.0,
                crm_at = crm.1,
                source = crm.2,
            ))
            .await;
        }
        for (position, stage) in STAGES.iter().enumerate() {
            raw.exec(&format!(
                "INSERT INTO run_stage (run_id, position, stage, duration_ms, outcome) \
                 SELECT {id}, {position}, '{stage}', 100 + i % 900, 'ok' FROM {seq}",
                id = id,
            ))
            .await;
        }
        start = end;
    }

    // The request log: the last 7 days, evenly spread; each row's size counted in the
    // tenant's usage as ingestion counts it.
    const SIZE: usize = 500;
    let span_start = (now - 7 * 86_400 + 60) * 1000;
    let step_ms = (7 * 86_400 - 120) as f64 * 1000.0 / requests.max(1) as f64;
    let tables = ["company", "contact", "order", "invoice"];
    let table = format!(
        "CASE i % 4 WHEN 0 THEN '{}' WHEN 1 THEN '{}' WHEN 2 THEN '{}' ELSE '{}' END",
        tables[0], tables[1], tables[2], tables[3]
    );
    let body = if raw.pg() {
        "convert_to('{\"records\":[{\"external_id\":\"E' || lpad(i::text, 8, '0') || \
         '\",\"fields\":{\"name\":\"Empresa ' || lpad(i::text, 8, '0') || \
         ' Comércio de Alimentos Ltda\",\"document\":\"11222333000181\",\"city\":\"São Paulo\",\
         \"state\":\"SP\"}}]}', 'UTF8')"
            .to_owned()
    } else {
        "CAST(printf('{\"records\":[{\"external_id\":\"E%08d\",\"fields\":{\"name\":\"Empresa %08d \
         Comércio de Alimentos Ltda\",\"document\":\"11222333000181\",\"city\":\"São Paulo\",\
         \"state\":\"SP\"}}]}', i, i) AS BLOB)"
            .to_owned()
    };
    let response = format!(
        "'{{\"request_id\":\"req-' || {} || '\",\"accepted\":1,\"rejected\":[]}}'",
        raw.padded("i", 8)
    );
    let mut start = 0;
    while start < requests {
        let end = (start + CHUNK).min(requests);
        let received = raw.at(&format!(
            "({span_start} + CAST(i * {step_ms} AS BIGINT)) / 1000"
        ));
        raw.exec(&format!(
            "INSERT INTO request_log (id, tenant_id, received_at, endpoint, table_name, transport, \
             status, http_status, duration_ms, accepted, rejected, error, request_body, \
             request_body_lz4, request_truncated, response_body, size_bytes) \
             SELECT 'req-' || {id}, '{TENANT}', {received}, 'POST /erp/v1/' || {table}, {table}, \
             'http', CASE WHEN i % 50 = 0 THEN 'INVALID_ARGUMENT' ELSE 'OK' END, \
             CASE WHEN i % 50 = 0 THEN 400 ELSE 200 END, i % 250, \
             CASE WHEN i % 50 = 0 THEN 0 ELSE 1 END, CASE WHEN i % 50 = 0 THEN 1 ELSE 0 END, \
             CASE WHEN i % 50 = 0 THEN 'record 0: document is not a valid CNPJ' END, \
             {body}, {no}, {no}, {response}, {SIZE} FROM {seq}",
            id = raw.padded("i", 8),
            no = raw.boolean(false),
            seq = raw.seq(start, end),
        ))
        .await;
        start = end;
    }
    raw.exec(&format!(
        "INSERT INTO tenant_usage (tenant_id, staged_rows, staged_bytes, request_log_rows, \
         request_log_bytes) VALUES ('{TENANT}', 0, 0, {requests}, {})",
        requests * SIZE
    ))
    .await;
    if raw.pg() {
        raw.exec("ANALYZE").await;
    }
}

fn write_markdown(
    results: &[Figures],
    size: &Value,
    runs: usize,
    requests: usize,
    navigations: usize,
) {
    let mut rows = String::new();
    for f in results {
        let max = f.drawn_ms.iter().copied().fold(0.0, f64::max);
        let min = f.drawn_ms.iter().copied().fold(f64::INFINITY, f64::min);
        rows.push_str(&format!(
            "| {} | {:.0} ms | {:.0}–{:.0} ms | {:.0} ms | {:.1} ms | {:.1} ms |\n",
            f.backend,
            median(&f.drawn_ms),
            min,
            max,
            f.first_ms,
            median(&f.in_page_overview_ms),
            median(&f.grpc_overview_ms),
        ));
    }
    let files = size["files"].as_object().cloned().unwrap_or_default();
    let file_rows: String = files
        .iter()
        .map(|(name, v)| format!("| {name} | {} | {} |\n", v["bytes"], v["gzip9_bytes"]))
        .collect();
    let section = format!(
        "## Dados ERP page: overview drawn after navigation (issue 24)\n\n\
         `cargo bench --bench ui` — {} on this machine kind, 2 cores; the server in-process, \
         headless Chromium beside it. A tenant with {runs} runs (6 tables and 7 stages each) \
         and {requests} request-log rows; the page opened {navigations} times at \
         `/ui/#tenant=…&token=…`. Figure: the page's `erpsync:overview-drawn` mark (ms since \
         navigation start); the first navigation (cold caches) apart, the median and range \
         of the others. Target: 500 ms (measured, not asserted).\n\n\
         | backend | overview drawn (median) | range | first navigation | GetOverview in the page | GetOverview over gRPC alone |\n\
         |---|---|---|---|---|---|\n{rows}\n\
         The page's files (what `/ui/` loads besides the descriptor set):\n\n\
         | file | bytes | gzip -9 |\n|---|---|---|\n{file_rows}\
         | total | {} | {} |\n| erpsync.binpb (descriptor set) | {} | {} |\n\n",
        Utc::now().format("%Y-%m-%d"),
        size["total_bytes"],
        size["gzip9_total_bytes"],
        size["descriptor_set_bytes"],
        size["descriptor_set_gzip9_bytes"],
    );
    common::write_section("## Dados ERP page", &section);
}
