//! StreamLogs benchmark (issue #6): the delay from an event's write to its delivery at
//! each of 500 followers (target p99 ≤ 100 ms), against the same with one follower in
//! the same run (the baseline). The server runs in-process on SQLite, the followers are
//! real gRPC clients over `--connections` HTTP/2 connections; events are written the way
//! the worker writes them (`LogHub::append`), at a steady pace.
//!
//! Run: `cargo bench --bench logs` (`-- --followers N --events M --connections C`).
//! Prints one JSON object and writes its section of BENCHMARKS.md.

mod common;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use erpsync::config::Config;
use erpsync::domain::run::Level;
use erpsync::domain::tenant::{Tenant, TenantId};
use erpsync::domain::token::{Grant, NewToken, Role, TenantScope};
use erpsync::grpc::pb::{integration_history_client::IntegrationHistoryClient, StreamLogsRequest};
use erpsync::storage::events::NewEvent;
use erpsync::storage::{tenants, tokens};
use serde_json::json;
use tonic::transport::Channel;

struct Delays {
    followers: usize,
    samples: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

fn main() {
    common::unless_benchmarking();
    let followers = common::arg("--followers", 500);
    let events = common::arg("--events", 200);
    let connections = common::arg("--connections", 50);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (baseline, loaded, rss) = rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            database_url: format!("sqlite://{}?mode=rwc", dir.path().join("logs.db").display()),
            ..Config::default()
        };
        // Every follower is one of the tenant's streams: the per-tenant cap must let them all in.
        config.rate_limits.streams_per_tenant =
            config.rate_limits.streams_per_tenant.max(followers);
        let app = erpsync::app::build(&config).await.unwrap();
        let port = app.port();
        let state = app.services().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        let tenant = TenantId::parse("bench").unwrap();
        tenants::insert(
            &state.db,
            &Tenant::new(tenant.clone(), "Bench".into(), Utc::now()),
        )
        .await
        .unwrap();
        let new = NewToken::generate().unwrap();
        let grant = Grant {
            token_id: new.id.clone(),
            role: Role::Crm,
            scope: TenantScope::All,
        };
        tokens::insert(&state.db, &new, &grant, None, Utc::now())
            .await
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let mut channels = Vec::new();
        for _ in 0..connections.max(1) {
            channels.push(
                Channel::from_shared(url.clone())
                    .unwrap()
                    .connect()
                    .await
                    .unwrap(),
            );
        }
        let baseline = measure(&state, &tenant, &channels[..1], &new.secret, 1, events).await;
        eprintln!(
            "1 follower: p50 {:.2} ms, p99 {:.2} ms",
            baseline.p50_ms, baseline.p99_ms
        );
        let peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let sampler = {
            let peak = peak.clone();
            tokio::spawn(async move {
                loop {
                    peak.fetch_max(common::rss_kb(), std::sync::atomic::Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        let loaded = measure(&state, &tenant, &channels, &new.secret, followers, events).await;
        sampler.abort();
        eprintln!(
            "{followers} followers: p50 {:.2} ms, p99 {:.2} ms",
            loaded.p50_ms, loaded.p99_ms
        );
        drop(channels);
        let _ = stop.send(());
        let _ = server.await;
        let rss = peak.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1024.0;
        (baseline, loaded, rss)
    });
    println!(
        "{}",
        json!({
            "bench": "stream_logs",
            "followers": loaded.followers,
            "connections": connections,
            "events": events,
            "samples": loaded.samples,
            "p50_ms": loaded.p50_ms,
            "p99_ms": loaded.p99_ms,
            "max_ms": loaded.max_ms,
            "baseline_one_follower_p50_ms": baseline.p50_ms,
            "baseline_one_follower_p99_ms": baseline.p99_ms,
            "peak_rss_mb": (rss * 10.0).round() / 10.0,
        })
    );
    let section = format!(
        "## StreamLogs delivery delay (issue #6)\n\n\
         `cargo bench --bench logs` — {} on the rust-svc machine kind, 2 cores. The server \
         in-process on SQLite; {} followers as real gRPC clients over {connections} HTTP/2 \
         connections; {events} events written the way the worker writes them, one every 10 ms. \
         Delay = from the write's commit to the event's arrival at a follower, every \
         (event, follower) pair. Target: p99 ≤ 100 ms with 500 followers.\n\n\
         | followers | samples | p50 | p99 | max | peak RSS |\n|---|---|---|---|---|---|\n\
         | 1 (baseline, same run) | {} | {:.2} ms | {:.2} ms | {:.2} ms | |\n\
         | {} | {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.1} MB |\n\n",
        Utc::now().format("%Y-%m-%d"),
        loaded.followers,
        baseline.samples,
        baseline.p50_ms,
        baseline.p99_ms,
        baseline.max_ms,
        loaded.followers,
        loaded.samples,
        loaded.p50_ms,
        loaded.p99_ms,
        loaded.max_ms,
        rss,
    );
    common::write_section("## StreamLogs delivery delay", &section);
}

/// Opens `followers` followed streams (spread over `channels`), writes `events` events
/// and returns the write-to-delivery delays.
async fn measure(
    state: &erpsync::services::Services,
    tenant: &TenantId,
    channels: &[Channel],
    token: &str,
    followers: usize,
    events: usize,
) -> Delays {
    let written: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let start_after = erpsync::storage::events::last_cursor(&state.db, tenant)
        .await
        .unwrap();
    let mut readers = Vec::new();
    for i in 0..followers {
        let mut client = IntegrationHistoryClient::new(channels[i % channels.len()].clone());
        let mut req = tonic::Request::new(StreamLogsRequest {
            tenant_id: tenant.to_string(),
            after_cursor: Some(start_after),
            follow: true,
            ..Default::default()
        });
        req.metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        let mut stream = client.stream_logs(req).await.unwrap().into_inner();
        readers.push(tokio::spawn(async move {
            let mut arrivals = Vec::with_capacity(events);
            while arrivals.len() < events {
                let e = stream.message().await.unwrap().unwrap();
                if !e.heartbeat {
                    arrivals.push((e.cursor, Instant::now()));
                }
            }
            arrivals
        }));
    }
    while state.logs.viewers(tenant) < followers {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    for i in 0..events {
        tick.tick().await;
        let cursor = state
            .logs
            .append(
                NewEvent::new(
                    tenant,
                    Level::Info,
                    "push",
                    format!("invoice: delivered page {i} (500 records, 0 rejected)"),
                )
                .table("invoice")
                .field("page", i)
                .field("records", 500),
                Utc::now(),
            )
            .await
            .unwrap();
        written.lock().unwrap().insert(cursor, Instant::now());
    }
    let written = written.lock().unwrap().clone();
    let mut delays = Vec::with_capacity(followers * events);
    for r in readers {
        for (cursor, at) in r.await.unwrap() {
            let w = written[&cursor];
            delays.push(at.saturating_duration_since(w).as_secs_f64() * 1000.0);
        }
    }
    delays.sort_by(f64::total_cmp);
    let pick = |q: f64| delays[((delays.len() as f64 * q) as usize).min(delays.len() - 1)];
    Delays {
        followers,
        samples: delays.len(),
        p50_ms: (pick(0.5) * 100.0).round() / 100.0,
        p99_ms: (pick(0.99) * 100.0).round() / 100.0,
        max_ms: (pick(1.0) * 100.0).round() / 100.0,
    }
}
