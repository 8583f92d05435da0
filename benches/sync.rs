//! Sync-run benchmark (issue #4): a full run of a tenant with 100 000 companies and
//! 1 000 000 order lines staged (every record new), on the embedded CRM, with the
//! process's peak RSS sampled during the run. Target: under 60 s on SQLite, RSS under
//! 500 MB.
//!
//! Run: `cargo bench --bench sync` (add `-- --companies N --lines M` to size it).
//! PostgreSQL is measured too when ERPSYNC_BENCH_DATABASE_URL names a server the bench
//! may create a database on. Prints one JSON object per backend and writes BENCHMARKS.md.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use erpsync::domain::run::{RunStatus, RunSummary, RunTrigger};
use erpsync::domain::tenant::{Tenant, TenantId};
use erpsync::storage::{lease, runs, tenants, Db};
use erpsync::worker::sync;
use serde_json::json;

struct Figures {
    backend: &'static str,
    companies: usize,
    lines: usize,
    run_secs: f64,
    peak_rss_mb: f64,
    status: &'static str,
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
    results.push(rt.block_on(run("sqlite", &url, companies, lines)));
    if let Ok(admin) = std::env::var("ERPSYNC_BENCH_DATABASE_URL") {
        let name = format!("erpsync_bench_sync_{}", std::process::id());
        let url = rt.block_on(common::create_pg(&admin, &name));
        results.push(rt.block_on(run("postgres", &url, companies, lines)));
        rt.block_on(common::drop_pg(&admin, &name));
    } else {
        eprintln!("ERPSYNC_BENCH_DATABASE_URL unset: PostgreSQL not measured");
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
            })
        );
    }
    write_markdown(&results);
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

    let run = RunSummary {
        id: uuid::Uuid::new_v4().to_string(),
        status: RunStatus::Running,
        trigger: RunTrigger::Manual,
        started_at: Utc::now(),
        finished_at: None,
        error: None,
    };
    lease::acquire(&db, &tenant, "bench", &run.id, sync::LEASE_TTL, Utc::now())
        .await
        .unwrap()
        .unwrap();
    runs::create(&db, &tenant, &run).await.unwrap();

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
         | backend | companies | order lines | run | peak RSS | status |\n|---|---|---|---|---|---|\n",
        Utc::now().format("%Y-%m-%d")
    );
    for f in results {
        section.push_str(&format!(
            "| {} | {} | {} | {:.1} s | {:.1} MB | {} |\n",
            f.backend, f.companies, f.lines, f.run_secs, f.peak_rss_mb, f.status
        ));
    }
    section.push_str("\nTargets: a full run under 60 s on SQLite, peak RSS under 500 MB.\n\n");
    common::write_section("## Sync run (issue #4)", &section);
}
