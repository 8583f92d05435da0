//! Ingestion benchmark (issue #3): records/s through the real server (gRPC, batches of 500,
//! 2 concurrent clients, ~10 fields a record, request log on; requests encoded up front)
//! against the ceiling of the
//! same rows written straight into the same database with one prepared multi-row insert
//! per batch, no server — measured in the same run. Also the server's peak RSS.
//!
//! Run: `cargo bench --bench ingest` (add `-- --records N --rounds R` to size it). PostgreSQL is
//! measured too when ERPSYNC_BENCH_DATABASE_URL (or ERPSYNC_TEST_DATABASE_URL) names a
//! server the bench may create a database on. Prints one JSON object per backend and
//! writes the figures to BENCHMARKS.md.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use erpsync::domain::tenant::{Tenant, TenantId};
use erpsync::domain::token::{Grant, NewToken, Role, TenantScope};
use erpsync::grpc::pb::{PushRequest, PushResponse, Record};
use erpsync::storage::{tenants, tokens, Db};
use sqlx::{ConnectOptions, Connection};
use tonic::metadata::MetadataValue;

const BATCH: usize = 500;
const CLIENTS: usize = 2;

struct Figures {
    backend: &'static str,
    records: usize,
    server_rps: f64,
    ceiling_rps: f64,
    ratio: f64,
    peak_rss_mb: f64,
    rounds: usize,
}

fn main() {
    common::unless_benchmarking();
    let records = std::env::args()
        .skip_while(|a| a != "--records")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(300_000usize);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut results = Vec::new();

    let rounds = std::env::args()
        .skip_while(|a| a != "--rounds")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(3usize)
        .max(1);

    // Each round measures the server and then the ceiling on a fresh database; the
    // medians of the rounds are reported, so one noisy moment does not decide.
    let sqlite_rounds: Vec<Figures> = (0..rounds)
        .map(|_| {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("bench.db").display()
            );
            rt.block_on(run("sqlite", &url, records))
        })
        .collect();
    results.push(median(sqlite_rounds));

    let pg_admin = std::env::var("ERPSYNC_BENCH_DATABASE_URL")
        .or_else(|_| std::env::var("ERPSYNC_TEST_DATABASE_URL"))
        .ok();
    if let Some(admin) = pg_admin {
        let pg_rounds: Vec<Figures> = (0..rounds)
            .map(|round| {
                let name = format!("erpsync_bench_{}_{round}", std::process::id());
                let url = rt.block_on(common::create_pg(&admin, &name));
                let f = rt.block_on(run("postgres", &url, records));
                rt.block_on(common::drop_pg(&admin, &name));
                f
            })
            .collect();
        results.push(median(pg_rounds));
    } else {
        eprintln!("ERPSYNC_BENCH_DATABASE_URL unset: PostgreSQL not measured");
    }

    for f in &results {
        println!(
            "{}",
            serde_json::json!({
                "bench": "ingest",
                "backend": f.backend,
                "records": f.records,
                "batch": BATCH,
                "clients": CLIENTS,
                "server_records_per_s": f.server_rps.round(),
                "ceiling_records_per_s": f.ceiling_rps.round(),
                "ratio": (f.ratio * 1000.0).round() / 1000.0,
                "rounds": f.rounds,
                "server_peak_rss_mb": (f.peak_rss_mb * 10.0).round() / 10.0,
            })
        );
    }
    write_markdown(&results);
}

/// Medians of the rounds' figures (the ratio is taken per round, then its median).
fn median(mut rounds: Vec<Figures>) -> Figures {
    let mid = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut ratio: Vec<f64> = rounds
        .iter()
        .map(|f| f.server_rps / f.ceiling_rps)
        .collect();
    let mut server: Vec<f64> = rounds.iter().map(|f| f.server_rps).collect();
    let mut ceiling: Vec<f64> = rounds.iter().map(|f| f.ceiling_rps).collect();
    let peak = rounds.iter().map(|f| f.peak_rss_mb).fold(0.0, f64::max);
    let first = rounds.remove(0);
    Figures {
        server_rps: mid(&mut server),
        ceiling_rps: mid(&mut ceiling),
        ratio: mid(&mut ratio),
        peak_rss_mb: peak,
        rounds: rounds.len() + 1,
        ..first
    }
}

async fn run(backend: &'static str, url: &str, records: usize) -> Figures {
    let db = Db::connect(url).await.expect("database");
    db.migrate().await.expect("migrations");
    let tenant = TenantId::parse("bench").unwrap();
    let ceiling_tenant = TenantId::parse("ceiling").unwrap();
    for t in [&tenant, &ceiling_tenant] {
        tenants::insert(&db, &Tenant::new(t.clone(), t.to_string(), Utc::now()))
            .await
            .expect("tenant");
    }
    let token = NewToken::generate().unwrap();
    tokens::insert(
        &db,
        &token,
        &Grant {
            token_id: token.id.clone(),
            role: Role::Erp,
            scope: TenantScope::Listed(vec![tenant.clone()]),
        },
        None,
        Utc::now(),
    )
    .await
    .expect("token");

    let batches: Vec<Vec<Company>> = (0..records.div_ceil(BATCH))
        .map(|b| (0..BATCH).map(|i| Company::new(b * BATCH + i)).collect())
        .collect();

    // The server, as a separate process so its memory is its own.
    let (mut child, port) = serve(url);
    let pid = child.id();
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (done, peak) = (done.clone(), peak.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kb(pid, "VmRSS:"), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    // Requests are encoded before the clock starts, so the clients spend their time
    // sending, not encoding: the figure is the server's, as a real load generator's is.
    let requests: Vec<bytes::Bytes> = batches
        .iter()
        .map(|batch| {
            prost::Message::encode_to_vec(&PushRequest {
                tenant_id: "bench".into(),
                table: "company".into(),
                records: batch.iter().map(Company::record).collect(),
            })
            .into()
        })
        .collect();
    let auth: MetadataValue<_> = format!("Bearer {}", token.secret).parse().unwrap();
    let mut per_client: Vec<Vec<bytes::Bytes>> = (0..CLIENTS).map(|_| Vec::new()).collect();
    for (i, r) in requests.into_iter().enumerate() {
        per_client[i % CLIENTS].push(r);
    }
    let started = Instant::now();
    let mut handles = Vec::new();
    for mine in per_client {
        let auth = auth.clone();
        handles.push(tokio::spawn(async move {
            let channel =
                tonic::transport::Channel::from_shared(format!("http://127.0.0.1:{port}"))
                    .unwrap()
                    .initial_stream_window_size(Some(4 << 20))
                    .initial_connection_window_size(Some(8 << 20))
                    .connect()
                    .await
                    .expect("connect");
            let mut client = tonic::client::Grpc::new(channel).max_encoding_message_size(64 << 20);
            let path =
                tonic::codegen::http::uri::PathAndQuery::from_static("/erpsync.v1.ErpIngest/Push");
            let mut accepted = 0u64;
            for req in mine {
                let mut req = tonic::Request::new(req);
                req.metadata_mut().insert("authorization", auth.clone());
                client.ready().await.expect("ready");
                let reply: PushResponse = client
                    .unary(req, path.clone(), common::PreEncoded)
                    .await
                    .expect("push")
                    .into_inner();
                accepted += u64::from(reply.accepted);
            }
            accepted
        }));
    }
    let mut accepted = 0;
    for h in handles {
        accepted += h.await.unwrap();
    }
    let server_secs = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let peak_kb = peak.load(Ordering::Relaxed).max(rss_kb(pid, "VmHWM:"));
    let _ = child.kill();
    let _ = child.wait();
    let total = batches.len() * BATCH;
    assert_eq!(accepted as usize, total, "every record accepted");

    // The ceiling: the same rows, one prepared multi-row insert per batch, no server.
    let ceiling_secs = ceiling(url, &batches).await;
    Figures {
        backend,
        records: total,
        server_rps: total as f64 / server_secs,
        ceiling_rps: total as f64 / ceiling_secs,
        ratio: ceiling_secs / server_secs,
        peak_rss_mb: peak_kb as f64 / 1024.0,
        rounds: 1,
    }
}

async fn ceiling(url: &str, batches: &[Vec<Company>]) -> f64 {
    let columns = "tenant_id, table_name, external_id, fields, content_hash, updated_at, deleted, changed_at, request_id, size_bytes";
    // `?` on SQLite (it binds `$N` names by a linear search), `$N` on PostgreSQL.
    let sqlite = url.starts_with("sqlite:");
    let tuples: Vec<String> = (0..BATCH)
        .map(|r| {
            let ps: Vec<String> = (1..=10)
                .map(|c| {
                    if sqlite {
                        "?".to_owned()
                    } else {
                        format!("${}", r * 10 + c)
                    }
                })
                .collect();
            format!("({})", ps.join(", "))
        })
        .collect();
    let sql = format!(
        "INSERT INTO staged_record ({columns}) VALUES {}",
        tuples.join(", ")
    );
    let now = Utc::now();
    macro_rules! insert_all {
        ($conn:expr) => {{
            let started = Instant::now();
            for batch in batches {
                let mut tx = $conn.begin().await.unwrap();
                let mut q = sqlx::query(&sql);
                for c in batch {
                    q = q
                        .bind("ceiling")
                        .bind("company")
                        .bind(c.external_id())
                        .bind(c.normalized_json())
                        .bind(0i64)
                        .bind(Option::<chrono::DateTime<Utc>>::None)
                        .bind(false)
                        .bind(now)
                        .bind("00000000-0000-0000-0000-000000000000")
                        .bind(300i64);
                }
                q.execute(&mut *tx).await.unwrap();
                tx.commit().await.unwrap();
            }
            started.elapsed().as_secs_f64()
        }};
    }
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::sqlite::SqliteConnectOptions::from_str(url)
            .unwrap()
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
            .pragma("cache_size", "-16384")
            .connect()
            .await
            .unwrap();
        insert_all!(conn)
    } else {
        let mut conn = sqlx::postgres::PgConnectOptions::from_str(url)
            .unwrap()
            .connect()
            .await
            .unwrap();
        insert_all!(conn)
    }
}

/// A company record with ~10 fields, its CNPJ valid.
struct Company {
    n: usize,
    cnpj: String,
}

impl Company {
    fn new(n: usize) -> Self {
        Self {
            n,
            cnpj: cnpj(n as u64),
        }
    }

    fn external_id(&self) -> String {
        format!("C{:08}", self.n)
    }

    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("name", format!("Empresa {} Comércio de Peças Ltda", self.n)),
            ("document", self.cnpj.clone()),
            ("seller_id", format!("S{:03}", self.n % 150)),
            (
                "city",
                ["Curitiba", "São Paulo", "Recife", "Porto Alegre"][self.n % 4].into(),
            ),
            ("state", ["PR", "SP", "PE", "RS"][self.n % 4].into()),
            (
                "email",
                format!("compras{}@empresa{}.com.br", self.n % 7, self.n),
            ),
            (
                "phone",
                format!("+55 41 3{:03}-{:04}", self.n % 1000, self.n % 10_000),
            ),
            (
                "segment",
                ["varejo", "atacado", "indústria"][self.n % 3].into(),
            ),
            (
                "credit_limit",
                format!("{}.{:02}", 1000 + self.n % 50_000, self.n % 100),
            ),
            ("notes", "cliente desde 2019; pagamento 30/60/90".into()),
        ]
    }

    fn record(&self) -> Record {
        use prost_types::value::Kind;
        Record {
            external_id: self.external_id(),
            fields: Some(prost_types::Struct {
                fields: self
                    .fields()
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

    fn normalized_json(&self) -> String {
        let map: serde_json::Map<String, serde_json::Value> = self
            .fields()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.into()))
            .collect();
        serde_json::Value::Object(map).to_string()
    }
}

/// A valid CNPJ (digits only) built from `n`.
fn cnpj(n: u64) -> String {
    let mut d: Vec<u32> = format!("{:08}0001", n % 100_000_000)
        .chars()
        .map(|c| c.to_digit(10).unwrap())
        .collect();
    for weights in [
        &[5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2][..],
        &[6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2][..],
    ] {
        let sum: u32 = d.iter().zip(weights).map(|(a, b)| a * b).sum();
        let r = sum % 11;
        d.push(if r < 2 { 0 } else { 11 - r });
    }
    d.iter()
        .map(|x| char::from_digit(*x, 10).unwrap())
        .collect()
}

fn serve(url: &str) -> (Child, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_erpsync"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        // Throughput of one ERP's token: its push rate limit is lifted.
        .args(["--pushes-per-sec", "0"])
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "warn,erpsync::app=info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("starts erpsync serve");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let port = common::ready_port(&mut lines);
    // Keep draining; surface the server's errors.
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            if line.contains("\"level\":\"ERROR\"") || line.contains("\"level\":\"WARN\"") {
                eprintln!("server: {line}");
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

fn write_markdown(results: &[Figures]) {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mut section = format!(
        "## Ingestion (issue #3)\n\n`cargo bench --bench ingest` — {} on the rust-svc machine kind, {cores} cores ({cpu}).\n\
         gRPC Push, batches of {BATCH}, {CLIENTS} concurrent clients, 10 fields a record, request log on;\n\
         ceiling: the same rows, one prepared multi-row insert per batch straight into the same database.\n\n\
         Medians of {} rounds (server, then ceiling, on a fresh database each round).\n\n\
         | backend | records | server records/s | ceiling records/s | ratio | server peak RSS |\n|---|---|---|---|---|---|\n",
        Utc::now().format("%Y-%m-%d"),
        results.first().map_or(0, |f| f.rounds),
    );
    for f in results {
        section.push_str(&format!(
            "| {} | {} | {:.0} | {:.0} | {:.2} | {:.1} MB |\n",
            f.backend, f.records, f.server_rps, f.ceiling_rps, f.ratio, f.peak_rss_mb
        ));
    }
    section
        .push_str("\nTargets: ≥ 40 000 records/s on SQLite, ratio ≥ 0.5, peak RSS ≤ 300 MB.\n\n");
    common::write_section("## Ingestion (issue #3)", &section);
}
