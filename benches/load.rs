//! Load bench (issue #25, "truthful and fair under load"): `erpsync serve` as a child
//! process (its memory its own), 64 then 256 concurrent ingest clients — each on its own
//! HTTP/2 connection, pushing 500-record batches of new companies flat out, sleeping the
//! server's retry hint when told busy — for `--secs` each, on SQLite and, when
//! ERPSYNC_BENCH_DATABASE_URL (or ERPSYNC_TEST_DATABASE_URL) is set, on PostgreSQL. A fresh
//! server and database per phase. Reported per phase: the server's peak RSS (VmHWM),
//! accepted batches/s, busy answers, UNAVAILABLE answers (must be 0), other errors, health
//! flips to NOT_SERVING (must be 0; Health.Check every 100 ms), the StreamLogs delivery
//! delay of the run events appended during the load (p50/p99: receipt minus the event's
//! own time, one follower), and a 20-record run's duration during the load against the
//! same run on the quiet server just before (ratio in the same phase).
//!
//! Run: `cargo bench --bench load` (`-- --secs S --clients 64,256`). One JSON line per
//! phase on stdout. About 2.5 minutes with both backends at the defaults.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use erpsync::domain::tenant::{Tenant, TenantId};
use erpsync::domain::token::{Grant, NewToken, Role, TenantScope};
use erpsync::grpc::pb::{
    erp_ingest_client::ErpIngestClient, integration_history_client::IntegrationHistoryClient,
    GetRunRequest, PushRequest, Record, RunStatus, StreamLogsRequest, TriggerSyncRequest,
};
use erpsync::storage::{tenants, tokens, Db};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::Code;
use tonic_health::pb::{health_check_response::ServingStatus, HealthCheckRequest};
use tonic_types::StatusExt;

const BATCH: usize = 500;
const RUN_RECORDS: usize = 20;

#[derive(Default)]
struct Tally {
    accepted: AtomicU64,
    busy: AtomicU64,
    unavailable: AtomicU64,
    other: AtomicU64,
}

fn main() {
    common::unless_benchmarking();
    let secs = common::arg("--secs", 20) as u64;
    let clients: Vec<usize> = std::env::args()
        .skip_while(|a| a != "--clients")
        .nth(1)
        .map(|s| s.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_else(|| vec![64, 256]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let pg_admin = std::env::var("ERPSYNC_BENCH_DATABASE_URL")
        .or_else(|_| std::env::var("ERPSYNC_TEST_DATABASE_URL"))
        .ok()
        .filter(|u| !u.is_empty());
    if pg_admin.is_none() {
        eprintln!("ERPSYNC_BENCH_DATABASE_URL unset: PostgreSQL not measured");
    }
    for &n in &clients {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("load.db").display());
        let line = rt.block_on(phase("sqlite", &url, n, Duration::from_secs(secs)));
        println!("{line}");
        if let Some(admin) = &pg_admin {
            let name = format!("erpsync_bench_load_{}_{n}", std::process::id());
            let url = rt.block_on(common::create_pg(admin, &name));
            let line = rt.block_on(phase("postgres", &url, n, Duration::from_secs(secs)));
            println!("{line}");
            rt.block_on(common::drop_pg(admin, &name));
        }
    }
}

/// Tokens of the phase: an erp token for both tenants, a crm token for all.
struct Tokens {
    erp: MetadataValue<tonic::metadata::Ascii>,
    crm: MetadataValue<tonic::metadata::Ascii>,
}

async fn setup(url: &str) -> Tokens {
    let db = Db::connect(url).await.expect("database");
    db.migrate().await.expect("migrations");
    let load = TenantId::parse("load").unwrap();
    let runner = TenantId::parse("runner").unwrap();
    for t in [&load, &runner] {
        tenants::insert(&db, &Tenant::new(t.clone(), t.to_string(), Utc::now()))
            .await
            .expect("tenant");
    }
    let mut made = Vec::new();
    for (role, scope) in [
        (Role::Erp, TenantScope::Listed(vec![load, runner])),
        (Role::Crm, TenantScope::All),
    ] {
        let token = NewToken::generate().unwrap();
        let grant = Grant {
            token_id: token.id.clone(),
            role,
            scope,
        };
        tokens::insert(&db, &token, &grant, None, Utc::now())
            .await
            .expect("token");
        made.push(format!("Bearer {}", token.secret).parse().unwrap());
    }
    let crm = made.pop().unwrap();
    let erp = made.pop().unwrap();
    Tokens { erp, crm }
}

async fn phase(backend: &'static str, url: &str, clients: usize, secs: Duration) -> String {
    let tokens = setup(url).await;
    let (mut child, port) = serve(url);
    let pid = child.id();
    let endpoint = format!("http://127.0.0.1:{port}");
    let channel = || async {
        Channel::from_shared(endpoint.clone())
            .unwrap()
            .initial_stream_window_size(Some(4 << 20))
            .initial_connection_window_size(Some(8 << 20))
            .connect()
            .await
            .expect("connect")
    };

    // The follower: every event of tenant runner, its delay from the event's own time.
    let delays: Arc<Mutex<Vec<f64>>> = Arc::default();
    let recording = Arc::new(AtomicBool::new(false));
    let follower = {
        let mut history = IntegrationHistoryClient::new(channel().await);
        let (delays, recording, crm) = (delays.clone(), recording.clone(), tokens.crm.clone());
        tokio::spawn(async move {
            let mut req = tonic::Request::new(StreamLogsRequest {
                tenant_id: "runner".into(),
                follow: true,
                ..Default::default()
            });
            req.metadata_mut().insert("authorization", crm);
            let mut stream = history
                .stream_logs(req)
                .await
                .expect("follows")
                .into_inner();
            while let Ok(Some(event)) = stream.message().await {
                let (Some(at), false) = (event.at, event.heartbeat) else {
                    continue;
                };
                let sent = at.seconds as f64 + f64::from(at.nanos) / 1e9;
                let now = Utc::now();
                let now = now.timestamp() as f64 + f64::from(now.timestamp_subsec_nanos()) / 1e9;
                if recording.load(Ordering::Relaxed) {
                    delays.lock().unwrap().push((now - sent) * 1000.0);
                }
            }
        })
    };

    let mut runner = Runner {
        ingest: ErpIngestClient::new(channel().await),
        history: IntegrationHistoryClient::new(channel().await),
        tokens: Tokens {
            erp: tokens.erp.clone(),
            crm: tokens.crm.clone(),
        },
        round: 0,
    };
    // Quiet: the same run, three times, nothing else going on.
    let mut quiet = Vec::new();
    for _ in 0..3 {
        quiet.push(runner.run().await);
    }

    // Health, every 100 ms, on a connection of its own.
    let stop = Arc::new(AtomicBool::new(false));
    let flips = Arc::new(AtomicU64::new(0));
    let health = {
        let mut client = tonic_health::pb::health_client::HealthClient::new(channel().await);
        let (stop, flips) = (stop.clone(), flips.clone());
        tokio::spawn(async move {
            let mut serving = true;
            while !stop.load(Ordering::Relaxed) {
                let answer = client
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await;
                let now =
                    matches!(answer, Ok(ref r) if r.get_ref().status() == ServingStatus::Serving);
                if serving && !now {
                    flips.fetch_add(1, Ordering::Relaxed);
                }
                serving = now;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    // The load.
    let tally = Arc::new(Tally::default());
    let mut pushers = Vec::new();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/erpsync.v1.ErpIngest/Push");
    for c in 0..clients {
        let mut client =
            tonic::client::Grpc::new(channel().await).max_encoding_message_size(64 << 20);
        let (stop, tally, erp, path) = (
            stop.clone(),
            tally.clone(),
            tokens.erp.clone(),
            path.clone(),
        );
        pushers.push(tokio::spawn(async move {
            let mut k = 0usize;
            while !stop.load(Ordering::Relaxed) {
                // Encoded at once and the records dropped: a client waiting for its answer
                // holds its bytes only (256 clients' decoded batches would be the bench's
                // own memory problem).
                let encoded: bytes::Bytes = prost::Message::encode_to_vec(&PushRequest {
                    tenant_id: "load".into(),
                    table: "company".into(),
                    records: (0..BATCH)
                        .map(|i| company(&format!("L{c:03}-{k:06}-{i:03}"), k))
                        .collect(),
                })
                .into();
                let mut req = tonic::Request::new(encoded);
                req.metadata_mut().insert("authorization", erp.clone());
                if client.ready().await.is_err() {
                    tally.other.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                match client.unary(req, path.clone(), common::PreEncoded).await {
                    Ok(_) => {
                        tally.accepted.fetch_add(1, Ordering::Relaxed);
                        k += 1;
                    }
                    Err(s) if s.code() == Code::ResourceExhausted => {
                        tally.busy.fetch_add(1, Ordering::Relaxed);
                        let wait = s
                            .get_details_retry_info()
                            .and_then(|r| r.retry_delay)
                            .unwrap_or(Duration::from_secs(1));
                        tokio::time::sleep(wait).await;
                    }
                    Err(s) if s.code() == Code::Unavailable => {
                        tally.unavailable.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    Err(s) => {
                        if tally.other.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("push: {s:?}");
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        }));
    }
    let started = Instant::now();
    // Let the load build up, then run the same run again and again while it lasts.
    tokio::time::sleep(Duration::from_secs(2).min(secs / 4)).await;
    recording.store(true, Ordering::Relaxed);
    let mut loaded = Vec::new();
    while started.elapsed() < secs {
        loaded.push(runner.run().await);
    }
    recording.store(false, Ordering::Relaxed);
    let accepted_at_end = tally.accepted.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for p in pushers {
        let _ = p.await;
    }
    let _ = health.await;
    follower.abort();
    let peak_kb = rss_kb(pid, "VmHWM:");
    let _ = child.kill();
    let _ = child.wait();

    let mut delays = std::mem::take(&mut *delays.lock().unwrap());
    let q = |v: &mut Vec<f64>, p: f64| {
        if v.is_empty() {
            return f64::NAN;
        }
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * p).round() as usize]
    };
    let quiet_ms = q(&mut quiet, 0.5);
    let loaded_ms = q(&mut loaded, 0.5);
    let round = |x: f64| (x * 10.0).round() / 10.0;
    serde_json::json!({
        "bench": "load",
        "backend": backend,
        "clients": clients,
        "batch": BATCH,
        "secs": round(elapsed),
        "server_peak_rss_mb": round(peak_kb as f64 / 1024.0),
        "accepted_batches_per_s": round(accepted_at_end as f64 / elapsed),
        "busy_answers": tally.busy.load(Ordering::Relaxed),
        "unavailable_answers": tally.unavailable.load(Ordering::Relaxed),
        "other_errors": tally.other.load(Ordering::Relaxed),
        "health_flips": flips.load(Ordering::Relaxed),
        "log_events": delays.len(),
        "log_delivery_p50_ms": round(q(&mut delays, 0.5)),
        "log_delivery_p99_ms": round(q(&mut delays, 0.99)),
        "run_records": RUN_RECORDS,
        "runs_during_load": loaded.len(),
        "run_quiet_ms": round(quiet_ms),
        "run_loaded_ms": round(loaded_ms),
        "run_loaded_max_ms": round(loaded.iter().copied().fold(0.0, f64::max)),
        "run_ratio": (loaded_ms / quiet_ms * 100.0).round() / 100.0,
    })
    .to_string()
}

/// The small tenant's runs: 20 changed companies pushed, then a run, timed to its end.
struct Runner {
    ingest: ErpIngestClient<Channel>,
    history: IntegrationHistoryClient<Channel>,
    tokens: Tokens,
    round: usize,
}

impl Runner {
    /// One run of 20 changed records; its duration as the server measured it, in ms.
    async fn run(&mut self) -> f64 {
        self.round += 1;
        let records: Vec<Record> = (0..RUN_RECORDS)
            .map(|i| company(&format!("R{i:03}"), self.round))
            .collect();
        // Pushed like any ERP's batch: told busy, it waits the hint and tries again.
        loop {
            let mut req = tonic::Request::new(PushRequest {
                tenant_id: "runner".into(),
                table: "company".into(),
                records: records.clone(),
            });
            req.metadata_mut()
                .insert("authorization", self.tokens.erp.clone());
            match self.ingest.push(req).await {
                Ok(_) => break,
                Err(s) if s.code() == Code::ResourceExhausted => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(s) => panic!("the run's push: {s:?}"),
            }
        }
        let mut req = tonic::Request::new(TriggerSyncRequest {
            tenant_id: "runner".into(),
        });
        req.metadata_mut()
            .insert("authorization", self.tokens.crm.clone());
        let run = self
            .history
            .trigger_sync(req)
            .await
            .expect("run starts")
            .into_inner()
            .run
            .expect("a run");
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let mut req = tonic::Request::new(GetRunRequest {
                tenant_id: "runner".into(),
                run_id: run.run_id.clone(),
            });
            req.metadata_mut()
                .insert("authorization", self.tokens.crm.clone());
            let Ok(got) = self.history.get_run(req).await else {
                continue;
            };
            let Some(run) = got.into_inner().run else {
                continue;
            };
            if run.status() == RunStatus::Running {
                continue;
            }
            assert_eq!(run.status(), RunStatus::Success, "{run:?}");
            let took = run.duration.unwrap_or_default();
            return took.seconds as f64 * 1000.0 + f64::from(took.nanos) / 1e6;
        }
    }
}

/// A company with ~8 fields; `round` changes its name, so each round is an update.
fn company(id: &str, round: usize) -> Record {
    use prost_types::value::Kind;
    let fields = [
        ("name", format!("Empresa {id} rodada {round} Comércio Ltda")),
        ("document", "11.222.333/0001-81".to_owned()),
        ("seller_id", "S001".to_owned()),
        ("city", "Curitiba".to_owned()),
        ("state", "PR".to_owned()),
        ("email", format!("compras@{id}.com.br")),
        ("segment", "varejo".to_owned()),
        ("notes", "cliente desde 2019; pagamento 30/60/90".to_owned()),
    ];
    Record {
        external_id: id.to_owned(),
        fields: Some(prost_types::Struct {
            fields: fields
                .into_iter()
                .map(|(k, v)| {
                    (
                        k.to_owned(),
                        prost_types::Value {
                            kind: Some(Kind::StringValue(v)),
                        },
                    )
                })
                .collect(),
        }),
        updated_at: None,
        deleted: false,
    }
}

fn serve(url: &str) -> (Child, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_erpsync"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        // One token pushes for every client: its rate limit is lifted; every client has a
        // connection of its own, all from 127.0.0.1.
        .args(["--pushes-per-sec", "0"])
        .args(["--max-connections", "2048"])
        .args(["--max-connections-per-address", "1024"])
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn,erpsync::app=info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("starts erpsync serve");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let port = common::ready_port(&mut lines);
    // Keep draining; count the server's warnings and errors without flooding the terminal.
    std::thread::spawn(move || {
        let mut shown = 0;
        for line in lines.map_while(Result::ok) {
            let loud = line.contains("\"level\":\"ERROR\"") || line.contains("\"level\":\"WARN\"");
            if loud && shown < 5 {
                eprintln!("server: {line}");
                shown += 1;
            }
        }
    });
    (child, port)
}

fn rss_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
