//! Sync-run benchmark (issue #4): a full run of a tenant with 100 000 companies and
//! 1 000 000 order lines staged (every record new), on the embedded CRM, with the
//! process's peak RSS sampled during the run. Target: under 60 s on SQLite, RSS under
//! 500 MB.
//!
//! Run: `cargo bench --bench sync` (add `-- --companies N --lines M` to size it).
//! PostgreSQL is measured too when ERPSYNC_BENCH_DATABASE_URL names a server the bench
//! may create a database on; `ERPSYNC_BENCH_ONLY=postgres` (or `sqlite`) measures one
//! backend alone, `ERPSYNC_BENCH_KEEP=1` keeps the PostgreSQL database (its name printed)
//! to study its plans afterwards, and `ERPSYNC_BENCH_PG_EXPLAIN_MS=N` has the server log
//! the plan (`auto_explain`, with buffers) of every statement slower than N ms. Prints one JSON object per backend, with each stage's
//! time, and writes BENCHMARKS.md (at the full size only).

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use erpsync::domain::tenant::{Tenant, TenantId};
use erpsync::storage::{tenants, Db};
use erpsync::worker::sync;
use serde_json::json;

struct Figures {
    backend: &'static str,
    companies: usize,
    lines: usize,
    run_secs: f64,
    peak_rss_mb: f64,
    status: &'static str,
    /// Each stage's wall time, in run order.
    stages: Vec<(String, u64)>,
}

fn main() {
    common::unless_benchmarking();
    let companies = common::arg("--companies", 100_000);
    let lines = common::arg("--lines", 1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut results = Vec::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("sync.db").display());
    let only = std::env::var("ERPSYNC_BENCH_ONLY").unwrap_or_default();
    if only != "postgres" {
        results.push(rt.block_on(run("sqlite", &url, companies, lines)));
    }
    match std::env::var("ERPSYNC_BENCH_DATABASE_URL") {
        Ok(admin) if only != "sqlite" => {
            let name = format!("erpsync_bench_sync_{}", std::process::id());
            let url = rt.block_on(common::create_pg(&admin, &name));
            if let Ok(ms) = std::env::var("ERPSYNC_BENCH_PG_EXPLAIN_MS") {
                rt.block_on(explain_slow(&admin, &name, &ms));
            }
            results.push(rt.block_on(run("postgres", &url, companies, lines)));
            if std::env::var("ERPSYNC_BENCH_KEEP").is_ok() {
                eprintln!("kept the PostgreSQL database {name}");
            } else {
                rt.block_on(common::drop_pg(&admin, &name));
            }
        }
        Ok(_) => {}
        Err(_) => eprintln!("ERPSYNC_BENCH_DATABASE_URL unset: PostgreSQL not measured"),
    }
    for f in &results {
        println!(
            "{}",
            json!({
                "bench": "sync_run",
                "backend": f.backend,
                "companies": f.companies,
                "order_lines": f.lines,
                "run_seconds": (f.run_secs * 100.0).round() / 100.0,
                "peak_rss_mb": (f.peak_rss_mb * 10.0).round() / 10.0,
                "status": f.status,
                "stages_ms": f.stages.iter().map(|(s, ms)| json!({s.as_str(): ms})).collect::<Vec<_>>(),
            })
        );
    }
    // A smaller or partial run studies something; it does not replace the figures.
    if companies == 100_000 && lines == 1_000_000 && only.is_empty() {
        write_markdown(&results);
    }
}

async fn run(backend: &'static str, url: &str, companies: usize, lines: usize) -> Figures {
    let db = Db::connect(url).await.expect("database");
    db.migrate().await.expect("migrations");
    let tenant = TenantId::parse("bench").unwrap();
    tenants::insert(
        &db,
        &Tenant::new(tenant.clone(), "Bench".into(), Utc::now()),
    )
    .await
    .unwrap();
    let state = common::run_worker(&db, url).await;

    // Stage the data (not measured) through the staging a push goes through (its request-log
    // entries aside).
    common::stage(&db, &tenant, "company", companies, |i| {
        json!({"name": format!("Empresa {i}"), "document": "11222333000181",
               "seller_id": format!("S{:03}", i % 150), "city": "Curitiba", "state": "PR"})
    })
    .await;
    common::stage(&db, &tenant, "order_item", lines, |i| {
        json!({"order_id": format!("O{:07}", i / 4), "product_code": format!("P{:04}", i % 5000),
               "quantity": "2", "unit_price": "19.90"})
    })
    .await;

    let run = common::leased_run(&db, &tenant).await;

    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (done, peak) = (done.clone(), peak.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(common::rss_kb(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let t0 = Instant::now();
    let detail = sync::execute(&state, &tenant, run).await;
    let run_secs = t0.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let company = detail
        .tables
        .iter()
        .find(|t| t.table == "company")
        .expect("company counts");
    assert_eq!(
        company.inserted as usize, companies,
        "every company delivered"
    );
    Figures {
        backend,
        companies,
        lines,
        run_secs,
        peak_rss_mb: peak.load(Ordering::Relaxed) as f64 / 1024.0,
        status: detail.summary.status.as_str(),
        stages: detail
            .stages
            .iter()
            .map(|s| (s.stage.clone(), s.duration_ms))
            .collect(),
    }
}

/// Has the server log the plans of database `name`'s statements slower than `ms`
/// milliseconds (`auto_explain`, loaded by each new session of that database only).
async fn explain_slow(admin: &str, name: &str, ms: &str) {
    use sqlx::Connection;
    let ms: u32 = ms
        .parse()
        .expect("ERPSYNC_BENCH_PG_EXPLAIN_MS is a number of milliseconds");
    let mut conn = sqlx::PgConnection::connect(admin)
        .await
        .expect("PostgreSQL");
    for setting in [
        "session_preload_libraries = 'auto_explain'".to_owned(),
        format!("auto_explain.log_min_duration = {ms}"),
        "auto_explain.log_analyze = on".to_owned(),
        "auto_explain.log_buffers = on".to_owned(),
        "auto_explain.log_nested_statements = on".to_owned(),
        format!("log_min_duration_statement = {ms}"),
    ] {
        sqlx::query(&format!("ALTER DATABASE \"{name}\" SET {setting}"))
            .execute(&mut conn)
            .await
            .expect("a setting of the bench's database");
    }
}

fn write_markdown(results: &[Figures]) {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mut section = format!(
        "## Sync run (issue #4)\n\n`cargo bench --bench sync` — {} on the rust-svc machine kind, {cores} cores.\n\
         A full run (collect → … → finish) of a tenant with every record new, embedded CRM;\n\
         peak RSS of the process sampled during the run.\n\n\
         | backend | companies | order lines | run | peak RSS | status | stages (ms) |\n|---|---|---|---|---|---|---|\n",
        Utc::now().format("%Y-%m-%d")
    );
    for f in results {
        section.push_str(&format!(
            "| {} | {} | {} | {:.1} s | {:.1} MB | {} | {} |\n",
            f.backend,
            f.companies,
            f.lines,
            f.run_secs,
            f.peak_rss_mb,
            f.status,
            f.stages
                .iter()
                .map(|(s, ms)| format!("{s} {ms}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    section.push_str("\nTargets: a full run under 60 s on SQLite, peak RSS under 500 MB.\n\n");
    common::write_section("## Sync run (issue #4)", &section);
}
