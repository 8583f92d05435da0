//! Push-stage benchmark (per-tenant sinks): the push stage of a tenant with 100 000
//! companies and 100 000 contacts staged (every record new), delivered to a gRPC CrmSink
//! that acknowledges every call at once (in this process, on loopback) and to the
//! embedded sink, alternately in the same sitting, each round on a fresh SQLite database.
//! Target: the gRPC push ≤ 1.5 × the embedded one (the gRPC sink also records what the
//! host accepted in erpsync's own CRM tables, as the embedded sink writes them).
//!
//! Run: `cargo bench --bench sink` (add `-- --companies N --contacts M --rounds R`).
//! Prints one JSON object per sink (median of the rounds) and the ratio, and writes
//! BENCHMARKS.md.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use erpsync::domain::run::RunStatus;
use erpsync::domain::tenant::{Tenant, TenantId};
use erpsync::grpc::crm_sink_client::{GrpcSink, SinkTarget};
use erpsync::grpc::pb;
use erpsync::storage::{tenants, Db};
use erpsync::worker::sink::{CrmSink, EmbeddedSink};
use erpsync::worker::sync;
use serde_json::json;

/// A host that acknowledges every call at once.
struct Ack;

fn ack(applied: usize) -> Result<tonic::Response<pb::SinkResponse>, tonic::Status> {
    Ok(tonic::Response::new(pb::SinkResponse {
        applied: applied as u64,
        total: None,
    }))
}

#[tonic::async_trait]
impl pb::crm_sink_server::CrmSink for Ack {
    async fn upsert_companies(
        &self,
        r: tonic::Request<pb::UpsertCompaniesRequest>,
    ) -> Result<tonic::Response<pb::SinkResponse>, tonic::Status> {
        ack(r.into_inner().companies.len())
    }
    async fn delete_companies(
        &self,
        r: tonic::Request<pb::DeleteRecordsRequest>,
    ) -> Result<tonic::Response<pb::SinkResponse>, tonic::Status> {
        ack(r.into_inner().external_ids.len())
    }
    async fn upsert_contacts(
        &self,
        r: tonic::Request<pb::UpsertContactsRequest>,
    ) -> Result<tonic::Response<pb::SinkResponse>, tonic::Status> {
        ack(r.into_inner().contacts.len())
    }
    async fn delete_contacts(
        &self,
        r: tonic::Request<pb::DeleteRecordsRequest>,
    ) -> Result<tonic::Response<pb::SinkResponse>, tonic::Status> {
        ack(r.into_inner().external_ids.len())
    }
    async fn apply_categories(
        &self,
        r: tonic::Request<pb::ApplyCategoriesRequest>,
    ) -> Result<tonic::Response<pb::SinkResponse>, tonic::Status> {
        ack(r.into_inner().categories.len())
    }
    async fn count_records(
        &self,
        _r: tonic::Request<pb::CountRecordsRequest>,
    ) -> Result<tonic::Response<pb::CountRecordsResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("not counted"))
    }
}

fn main() {
    common::unless_benchmarking();
    let companies = common::arg("--companies", 100_000);
    let contacts = common::arg("--contacts", 100_000);
    let rounds = common::arg("--rounds", 3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let host = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // TCP_NODELAY on every connection, as tonic's `serve`, gRPC C++/Python and Go
        // servers set it (`serve_with_incoming` leaves the sockets as they come).
        let incoming = tokio_stream::StreamExt::map(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            |conn| conn.and_then(|c| c.set_nodelay(true).map(|()| c)),
        );
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(pb::crm_sink_server::CrmSinkServer::new(Ack))
                .serve_with_incoming(incoming),
        );
        format!("grpc://127.0.0.1:{port}")
    });
    let (mut embedded, mut grpc) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let e = rt.block_on(push(None, companies, contacts));
        let g = rt.block_on(push(Some(&host), companies, contacts));
        eprintln!("round {round}: embedded {e:.2} s, gRPC {g:.2} s");
        embedded.push(e);
        grpc.push(g);
    }
    let (e, g) = (median(&mut embedded), median(&mut grpc));
    let ratio = g / e;
    for (sink, secs) in [("embedded", e), ("grpc", g)] {
        println!(
            "{}",
            json!({"bench": "sink_push", "sink": sink, "companies": companies,
                   "contacts": contacts, "rounds": rounds,
                   "push_seconds": (secs * 100.0).round() / 100.0})
        );
    }
    println!(
        "{}",
        json!({"bench": "sink_push", "ratio_grpc_to_embedded": (ratio * 1000.0).round() / 1000.0,
               "target": 1.5, "met": ratio <= 1.5})
    );
    write_markdown(companies, contacts, rounds, e, g, ratio);
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The push stage's seconds of a run delivering to the host at `host` (the embedded
/// sink without one), on a fresh SQLite database with everything staged.
async fn push(host: Option<&str>, companies: usize, contacts: usize) -> f64 {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("sink.db").display());
    let db = Db::connect(&url).await.expect("database");
    db.migrate().await.expect("migrations");
    let tenant = TenantId::parse("bench").unwrap();
    tenants::insert(
        &db,
        &Tenant::new(tenant.clone(), "Bench".into(), Utc::now()),
    )
    .await
    .unwrap();
    let mut parts = common::run_worker_parts(&db, &url).await;
    if let Some(host) = host {
        let target = SinkTarget::new(host, &Default::default()).expect("sink target");
        let sink: Arc<dyn CrmSink> = Arc::new(GrpcSink::new(
            target,
            Duration::from_secs(30),
            EmbeddedSink::new(db.clone()),
        ));
        parts.sinks = erpsync::worker::tenant_sink::Sinks::new(
            db.clone(),
            sink,
            None,
            None,
            erpsync::clock::system(),
        );
    }
    let state = erpsync::worker::RunWorker::new(parts);
    common::stage(&db, &tenant, "company", companies, |i| {
        json!({"name": format!("Empresa {i}"), "document": "11222333000181",
               "seller_id": format!("S{:03}", i % 150), "city": "Curitiba", "state": "PR"})
    })
    .await;
    common::stage(&db, &tenant, "contact", contacts, |i| {
        json!({"name": format!("Contato {i}"), "company_id": format!("company-{:08}", i),
               "email": format!("c{i}@example.com")})
    })
    .await;
    let run = common::leased_run(&db, &tenant).await;
    let t0 = Instant::now();
    let detail = sync::execute(&state, &tenant, run).await;
    let run_secs = t0.elapsed().as_secs_f64();
    assert_eq!(
        detail.summary.status,
        RunStatus::Success,
        "{:?}",
        detail.summary.error
    );
    for (table, n) in [("company", companies), ("contact", contacts)] {
        let t = detail.tables.iter().find(|t| t.table == table).unwrap();
        assert_eq!(t.inserted as usize, n, "every {table} delivered");
    }
    let push = detail
        .stages
        .iter()
        .find(|s| s.stage == "push")
        .expect("push stage");
    eprintln!(
        "  {}: run {run_secs:.2} s, push {} ms",
        host.unwrap_or("embedded"),
        push.duration_ms
    );
    push.duration_ms as f64 / 1000.0
}

fn write_markdown(companies: usize, contacts: usize, rounds: usize, e: f64, g: f64, ratio: f64) {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_default();
    let section = format!(
        "## Push to a gRPC sink (per-tenant sinks)\n\n`cargo bench --bench sink` — {} on the rust-svc machine kind, {cores} cores ({cpu}).\n\
         The push stage of a run with {companies} companies and {contacts} contacts staged (all new), SQLite,\n\
         batches of 500: to a gRPC CrmSink in the same process on loopback that acknowledges every call at once\n\
         (erpsync also records what it accepted in its own CRM tables), and to the embedded sink; alternately,\n\
         a fresh database each, median of {rounds} rounds.\n\n\
         | sink | push stage |\n|---|---|\n| embedded | {e:.2} s |\n| gRPC | {g:.2} s |\n\n\
         Ratio gRPC / embedded: {ratio:.2} × (target ≤ 1.5 ×: {}).\n\n",
        Utc::now().format("%Y-%m-%d"),
        if ratio <= 1.5 { "met" } else { "not met" }
    );
    common::write_section("## Push to a gRPC sink (per-tenant sinks)", &section);
}
