//! What the benchmarks share: a throw-away PostgreSQL database.

use std::str::FromStr;

use sqlx::{ConnectOptions, Connection};

/// Creates database `name` on the server of `admin` (dropping a leftover) and returns
/// its URL.
#[allow(dead_code)] // not every bench measures PostgreSQL
pub async fn create_pg(admin: &str, name: &str) -> String {
    let mut conn = sqlx::postgres::PgConnectOptions::from_str(admin)
        .unwrap()
        .connect()
        .await
        .expect("PostgreSQL");
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await
        .unwrap();
    let base = admin.split('?').next().unwrap();
    let slash = base.find("://").map_or(0, |i| i + 3);
    let server = match base[slash..].find('/') {
        Some(i) => &base[..slash + i],
        None => base,
    };
    format!("{server}/{name}")
}

/// Drops database `name`.
#[allow(dead_code)] // not every bench measures PostgreSQL
pub async fn drop_pg(admin: &str, name: &str) {
    if let Ok(mut conn) = sqlx::postgres::PgConnectOptions::from_str(admin)
        .unwrap()
        .connect()
        .await
    {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut conn)
            .await;
        let _ = conn.close().await;
    }
}

/// Ends the process at once when a test runner lists the bench's tests
/// (`cargo nextest run --all-targets` runs every target with `--list`): a bench has no
/// tests, and running it then would take minutes and rewrite BENCHMARKS.md with a debug
/// build's figures. Only `cargo bench` (which passes `--bench`) runs it.
pub fn unless_benchmarking() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        if !args.iter().any(|a| a == "--list") {
            eprintln!("a benchmark: run it with `cargo bench --bench NAME`");
        }
        std::process::exit(0);
    }
}

/// The number after `name` on the command line (`-- --companies 1000`), or `default`.
#[allow(dead_code)] // not every bench takes arguments
pub fn arg(name: &str, default: usize) -> usize {
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// This process's resident memory, in KiB.
#[allow(dead_code)] // the ingestion bench measures the server process instead
pub fn rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Replaces the section of BENCHMARKS.md that starts with `heading` (up to the next
/// "## ") by `section`, or appends it.
#[allow(dead_code)] // the load, retention and scheduler benches do not write BENCHMARKS.md
pub fn write_section(heading: &str, section: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("BENCHMARKS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        "# Benchmarks\n\nFigures measured on this project's CI machine kind; each section is rewritten by its bench.\n\n".into()
    });
    let new = match old.find(heading) {
        Some(s) => {
            let end = old[s + 3..]
                .find("\n## ")
                .map_or(old.len(), |e| s + 3 + e + 1);
            format!("{}{}{}", &old[..s], section, &old[end..])
        }
        None => format!("{old}{section}"),
    };
    if let Err(e) = std::fs::write(&path, new) {
        eprintln!("cannot write {}: {e}", path.display());
    }
}

/// A run worker over `db` (at `url`) delivering to the embedded CRM, with the defaults.
#[allow(dead_code)] // only the benches that run stages use it
pub async fn run_worker(db: &erpsync::storage::Db, url: &str) -> erpsync::worker::RunWorker {
    erpsync::worker::RunWorker::new(run_worker_parts(db, url).await)
}

/// The parts of [`run_worker`], for a bench that changes one.
#[allow(dead_code)] // only the benches that run stages use it
pub async fn run_worker_parts(db: &erpsync::storage::Db, url: &str) -> erpsync::worker::Parts {
    let views = erpsync::viewdb::ViewAccess::new(
        Default::default(),
        None,
        url,
        db.instance_id().await.unwrap(),
    )
    .unwrap();
    erpsync::worker::Parts::with_defaults(
        db.clone(),
        std::sync::Arc::new(erpsync::worker::sink::EmbeddedSink::new(db.clone())),
        views,
        erpsync::ingest::Limits::default(),
        erpsync::clock::system(),
    )
}

/// How many records [`stage`] writes per transaction.
const STAGE_BATCH: usize = 5_000;

/// Stages `n` records of `table` for `tenant` (external ids `<table>-00000000`…, fields
/// from `fields`), straight into staging, as pushes would have left them.
#[allow(dead_code)] // only the benches that run stages use it
pub async fn stage(
    db: &erpsync::storage::Db,
    tenant: &erpsync::domain::tenant::TenantId,
    table: &'static str,
    n: usize,
    fields: impl Fn(usize) -> serde_json::Value,
) {
    let mut i = 0;
    while i < n {
        let end = (i + STAGE_BATCH).min(n);
        let records: Vec<erpsync::domain::batch::ValidRecord> = (i..end)
            .map(|k| erpsync::domain::batch::ValidRecord {
                index: u32::try_from(k - i).unwrap(),
                external_id: format!("{table}-{k:08}"),
                fields: match fields(k) {
                    serde_json::Value::Object(m) => m,
                    _ => serde_json::Map::new(),
                },
                updated_at: None,
                deleted: false,
            })
            .collect();
        let request_id = uuid::Uuid::new_v4().to_string();
        let now = chrono::Utc::now();
        let txn = db.begin_write().await.expect("transaction");
        erpsync::storage::staging::stage(
            &txn,
            erpsync::storage::staging::StageBatch {
                tenant,
                table,
                records,
                request_id: &request_id,
                received_at: now,
                zone: chrono_tz::America::Sao_Paulo,
            },
        )
        .await
        .expect("staging");
        txn.commit().await.expect("commit");
        i = end;
    }
}

/// A codec whose requests are already-encoded PushRequest bytes (the ingestion benches
/// encode their batches once, before the clock starts).
#[allow(dead_code)] // the ingestion and load benches push
#[derive(Clone, Copy)]
pub struct PreEncoded;

#[allow(dead_code)]
pub struct BytesEncoder;

impl tonic::codec::Encoder for BytesEncoder {
    type Item = bytes::Bytes;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: bytes::Bytes,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Codec for PreEncoded {
    type Encode = bytes::Bytes;
    type Decode = erpsync::grpc::pb::PushResponse;
    type Encoder = BytesEncoder;
    type Decoder = tonic_prost::ProstDecoder<erpsync::grpc::pb::PushResponse>;

    fn encoder(&mut self) -> Self::Encoder {
        BytesEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::default()
    }
}

/// Reads a `serve --log-format json` server's log lines until "erpsync ready": its port.
#[allow(dead_code)] // the benches that run the server binary
pub fn ready_port(lines: &mut impl Iterator<Item = std::io::Result<String>>) -> u16 {
    loop {
        let line = lines.next().expect("server log").unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["fields"]["message"] == "erpsync ready" {
            let listen = v["fields"]["listen"].as_str().unwrap().to_owned();
            return listen.rsplit(':').next().unwrap().parse().unwrap();
        }
    }
}

/// A RUNNING manual run of `tenant`, stored and holding the tenant's run lease as the
/// scheduler's would: what `sync::execute` is handed.
#[allow(dead_code)] // only the benches that drive a run
pub async fn leased_run(
    db: &erpsync::storage::Db,
    tenant: &erpsync::domain::tenant::TenantId,
) -> erpsync::domain::run::RunSummary {
    use erpsync::domain::run::{RunStatus, RunSummary, RunTrigger};
    use erpsync::storage::{lease, runs};
    let now = chrono::Utc::now();
    let run = RunSummary {
        id: uuid::Uuid::new_v4().to_string(),
        status: RunStatus::Running,
        trigger: RunTrigger::Manual,
        started_at: now,
        finished_at: None,
        error: None,
    };
    lease::acquire(
        db,
        tenant,
        "bench",
        &run.id,
        erpsync::worker::LEASE_TTL,
        now,
    )
    .await
    .unwrap()
    .unwrap();
    runs::create(db, tenant, &run).await.unwrap();
    run
}
