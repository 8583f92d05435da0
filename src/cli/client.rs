//! Client commands: they call a running erpsync over gRPC with a crm token (the
//! provisioning commands' `--server` form, with an admin token, is in `remote`).

use std::io::Write;
use std::time::Duration;

use anyhow::Context;

use super::progress::Progress;
use tonic::{metadata::MetadataValue, transport::Channel, Code, Request};

use crate::grpc::pb::{
    self, integration_history_client::IntegrationHistoryClient, ExportHistoryRequest, ExportKind,
    GetOverviewRequest, GetRunRequest, Health, LogEvent, LogLevel, RunStatus, StreamLogsRequest,
    TriggerSyncRequest,
};

/// Which running erpsync a client command calls, and with which token.
#[derive(Debug, clap::Args)]
pub(super) struct ServerArgs {
    /// Address of a running erpsync.
    #[arg(long, env = "ERPSYNC_SERVER", default_value = "http://127.0.0.1:50051")]
    pub(super) server: String,
    /// A crm token (see `erpsync token issue`).
    #[arg(long, env = "ERPSYNC_TOKEN", hide_env_values = true)]
    pub(super) token: String,
}

/// A connection to the erpsync at `server`.
pub(super) async fn channel(server: &str) -> anyhow::Result<Channel> {
    Channel::from_shared(server.to_owned())
        .with_context(|| format!("invalid server address {server:?}"))?
        .connect()
        .await
        .with_context(|| format!("cannot reach erpsync at {server}"))
}

async fn connect(server: &str) -> anyhow::Result<IntegrationHistoryClient<Channel>> {
    Ok(IntegrationHistoryClient::new(channel(server).await?))
}

/// `msg` carrying `authorization: Bearer <token>`.
pub(super) fn authorized<T>(msg: T, token: &str) -> anyhow::Result<Request<T>> {
    let mut req = Request::new(msg);
    let value: MetadataValue<_> = format!("Bearer {token}")
        .parse()
        .context("the token is not valid metadata")?;
    req.metadata_mut().insert("authorization", value);
    Ok(req)
}

/// `erpsync overview --tenant ID`.
pub async fn overview(server: &str, token: &str, tenant: &str) -> anyhow::Result<()> {
    let mut client = connect(server).await?;
    let o = client
        .get_overview(authorized(
            GetOverviewRequest {
                tenant_id: tenant.to_owned(),
            },
            token,
        )?)
        .await
        .map_err(|s| anyhow::anyhow!("{:?}: {}", s.code(), s.message()))?
        .into_inner();
    let mut health = Health::try_from(o.health)
        .map(|h| h.as_str_name().trim_start_matches("HEALTH_").to_owned())
        .unwrap_or_else(|_| format!("unknown ({})", o.health));
    if !o.health_reason.is_empty() {
        health = format!("{health}: {}", o.health_reason);
    }
    let schedule = o
        .schedule
        .as_ref()
        .map(|s| {
            if s.cron.is_empty() {
                s.daily_times.join(", ")
            } else {
                format!("cron {}", s.cron)
            }
        })
        .unwrap_or_default();
    println!("tenant:            {} ({})", o.tenant_id, o.tenant_name);
    println!("health:            {health}");
    println!(
        "erp:               {}",
        format!("{} {}", o.erp_name, o.erp_version).trim()
    );
    println!("active/scheduled:  {}/{}", o.active, o.scheduled);
    println!("schedule:          {schedule} ({})", o.timezone);
    println!(
        "next run:          {}",
        if o.next_run_local.is_empty() {
            "none"
        } else {
            &o.next_run_local
        }
    );
    println!("database size:     {} bytes", o.db_size_bytes);
    println!("strict fields:     {}", strict_fields_text(o.strict_fields));
    println!(
        "average duration:  {}",
        o.average_duration
            .map(|d| format!("{}s", d.seconds))
            .unwrap_or_else(|| "none".into())
    );
    println!("open alerts:       {}", o.open_alerts.len());
    for a in &o.open_alerts {
        let kind = pb::AlertKind::try_from(a.kind)
            .map(|k| k.as_str_name().trim_start_matches("ALERT_KIND_").to_owned())
            .unwrap_or_default();
        println!("  {kind}: {}", a.message);
    }
    println!("recent runs:       {}", o.recent_runs.len());
    print!("{}", freshness_lines(&o.table_freshness));
    print!("{}", super::reconciliation::table(&o.tables));
    Ok(())
}

/// The overview's per-table freshness, a line a table: its limit, when its data last
/// arrived, and STALE when past the limit; nothing when no table has a limit or data.
fn freshness_lines(tables: &[pb::TableFreshnessStatus]) -> String {
    if tables.is_empty() {
        return String::new();
    }
    let mut out = String::from("table freshness:\n");
    for f in tables {
        let limit = f.max_age.as_ref().map_or_else(
            || "none".to_owned(),
            |d| crate::domain::text::human_duration(chrono::Duration::seconds(d.seconds)),
        );
        let last = f
            .last_accepted_at
            .as_ref()
            .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, 0))
            .map_or_else(|| "never".to_owned(), |t| t.to_rfc3339());
        let stale = if f.stale { "  STALE" } else { "" };
        out.push_str(&format!(
            "  {:<14} limit {limit:<10} last accepted {last}{stale}\n",
            f.table
        ));
    }
    out
}

/// Strict mode as `tenant show` and `overview` print it.
pub(super) fn strict_fields_text(strict: bool) -> &'static str {
    if strict {
        "on (a record with an unknown field is rejected)"
    } else {
        "off (unknown fields are kept and reported as warnings)"
    }
}

/// `erpsync sync-now --tenant ID`: starts a run (or joins the one running) and prints
/// its log as it goes, then its per-table counts. Exits non-zero when the run failed.
pub async fn sync_now(server: &str, token: &str, tenant: &str) -> anyhow::Result<()> {
    let mut client = connect(server).await?;
    let started = client
        .trigger_sync(authorized(
            TriggerSyncRequest {
                tenant_id: tenant.to_owned(),
            },
            token,
        )?)
        .await
        .map_err(|s| anyhow::anyhow!("{:?}: {}", s.code(), s.message()))?
        .into_inner();
    let run_id = started.run.map(|r| r.run_id).unwrap_or_default();
    if started.already_running {
        println!("a run is already in progress: following {run_id}");
    } else {
        println!("run {run_id} started");
    }
    let mut printed = 0;
    let mut progress = Progress::new();
    loop {
        let got = client
            .get_run(authorized(
                GetRunRequest {
                    tenant_id: tenant.to_owned(),
                    run_id: run_id.clone(),
                },
                token,
            )?)
            .await
            .map_err(|s| anyhow::anyhow!("{:?}: {}", s.code(), s.message()))?
            .into_inner();
        for e in got.log.iter().skip(printed) {
            let table = e
                .table
                .as_deref()
                .map(|t| format!(" [{t}]"))
                .unwrap_or_default();
            progress.println(&format!("{:>12}{table} {}", e.stage, e.message));
        }
        printed = got.log.len();
        let run = got.run.unwrap_or_default();
        if let Some(c) = &run.current {
            progress.stage(&c.stage, &c.table, c.done, c.total);
        }
        if run.status() != RunStatus::Running {
            progress.finish();
            for t in &run.tables {
                println!(
                    "{:<14} received {:>7}  inserted {:>7}  updated {:>7}  deleted {:>7}  held {:>7}",
                    t.table, t.received, t.inserted, t.updated, t.deleted, t.held
                );
            }
            let status = run
                .status()
                .as_str_name()
                .trim_start_matches("RUN_STATUS_")
                .to_owned();
            println!("status: {status}");
            if run.status() == RunStatus::Failed {
                anyhow::bail!("the run failed: {}", run.errors.join("; "));
            }
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// What `erpsync export --kind` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportKindArg {
    /// Every request received on the ingestion endpoints and its response.
    Requests,
    /// Companies and contacts held by the delete guard.
    ExcessiveDeletes,
    /// The run log with per-table counts.
    Runs,
}

/// The arguments of `erpsync export`.
#[derive(Debug)]
pub struct ExportArgs {
    /// The tenant.
    pub tenant: String,
    /// First day, YYYY-MM-DD.
    pub from: String,
    /// Last day, YYYY-MM-DD.
    pub to: String,
    /// Tables; empty for all.
    pub tables: Vec<String>,
    /// What to export.
    pub kind: ExportKindArg,
    /// The file (or folder) to write.
    pub output: std::path::PathBuf,
}

/// `erpsync export`: streams the workbook into a temporary file next to the output and
/// renames it into place once complete, so a failed or interrupted export never leaves
/// a partial file under the output's name. Prints the path and size.
pub async fn export(server: &str, token: &str, args: ExportArgs) -> anyhow::Result<()> {
    use std::io::Write;
    use tokio_stream::StreamExt;

    let into_folder = args.output.is_dir();
    let folder = if into_folder {
        args.output.clone()
    } else {
        match args.output.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        }
    };
    let mut client = connect(server).await?;
    let kind = match args.kind {
        ExportKindArg::Requests => ExportKind::Requests,
        ExportKindArg::ExcessiveDeletes => ExportKind::ExcessiveDeletes,
        ExportKindArg::Runs => ExportKind::Runs,
    };
    let mut stream = client
        .export_history(authorized(
            ExportHistoryRequest {
                tenant_id: args.tenant,
                from_date: args.from,
                to_date: args.to,
                tables: args.tables,
                kind: kind as i32,
            },
            token,
        )?)
        .await
        .map_err(status_error)?
        .into_inner();
    let mut part = tempfile::Builder::new()
        .prefix(".erpsync-export-")
        .suffix(".part")
        .tempfile_in(&folder)
        .with_context(|| format!("cannot create a temporary file in {}", folder.display()))?;
    let mut filename = None;
    let mut size: u64 = 0;
    let mut progress = Progress::new();
    progress.bytes(0);
    let received = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(status_error)?;
            if filename.is_none() {
                anyhow::ensure!(
                    !chunk.filename.is_empty(),
                    "the server's first chunk has no file name"
                );
                filename = Some(chunk.filename);
            }
            part.write_all(&chunk.data)
                .with_context(|| format!("cannot write to {}", part.path().display()))?;
            size += chunk.data.len() as u64;
            progress.bytes(size);
        }
        anyhow::Ok(())
    };
    tokio::select! {
        r = received => r?,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted; nothing was written"),
    }
    progress.finish();
    let filename = filename.context("the server sent no file")?;
    let path = if into_folder {
        // Only the name: a server never chooses where the file goes.
        let name = std::path::Path::new(&filename)
            .file_name()
            .context("the server's file name is not a file name")?;
        folder.join(name)
    } else {
        args.output
    };
    part.as_file()
        .sync_all()
        .with_context(|| format!("cannot write to {}", part.path().display()))?;
    part.persist(&path)
        .with_context(|| format!("cannot move the export to {}", path.display()))?;
    println!("{} ({size} bytes)", path.display());
    Ok(())
}

fn status_error(s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", s.code(), s.message())
}

/// A `--level` of `erpsync logs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LevelArg {
    /// Everything.
    Debug,
    /// Progress and above.
    Info,
    /// Warnings and errors.
    Warn,
    /// Errors only.
    Error,
}

impl LevelArg {
    fn proto(self) -> LogLevel {
        match self {
            Self::Debug => LogLevel::Debug,
            Self::Info => LogLevel::Info,
            Self::Warn => LogLevel::Warn,
            Self::Error => LogLevel::Error,
        }
    }
}

/// What `erpsync logs` shows.
#[derive(Debug, Clone)]
pub struct LogsOptions {
    /// The tenant.
    pub tenant: String,
    /// Stay open and print new events live.
    pub follow: bool,
    /// Only this run's events.
    pub run: Option<String>,
    /// Only events at or above this level.
    pub level: Option<LevelArg>,
    /// Only this stage's events.
    pub stage: Option<String>,
    /// Only events about this table.
    pub table: Option<String>,
    /// Start after this cursor.
    pub after: Option<u64>,
    /// Print cursors.
    pub cursors: bool,
}

/// Statuses that a new connection cannot cure: the request itself is wrong.
fn is_final(code: Code) -> bool {
    matches!(
        code,
        Code::InvalidArgument
            | Code::NotFound
            | Code::PermissionDenied
            | Code::Unauthenticated
            | Code::Unimplemented
            | Code::FailedPrecondition
    )
}

/// `erpsync logs --tenant ID [--follow] …`: the tenant's log over StreamLogs, one line an
/// event in the tenant's local time, coloured by level when stdout is a terminal and
/// `NO_COLOR` is unset ([`crate::colour`]). A dropped connection (or a server restart) is
/// resumed after the last cursor printed, so nothing is missed or printed twice.
pub async fn logs(server: &str, token: &str, opts: LogsOptions) -> anyhow::Result<()> {
    let colour = crate::colour::enabled(crate::colour::Stream::Stdout);
    let mut after = opts.after;
    let mut zone: Option<chrono_tz::Tz> = None;
    let mut backoff = Duration::from_millis(250);
    loop {
        let before = after;
        let outcome = stream_once(server, token, &opts, &mut after, &mut zone, colour).await;
        if after != before {
            // It was streaming: reconnect quickly again.
            backoff = Duration::from_millis(250);
        }
        match outcome {
            Ok(()) if !opts.follow => return Ok(()),
            // A followed stream ends when the server shuts down: wait for it to return.
            Ok(()) => eprintln!("erpsync logs: the server closed the stream; reconnecting"),
            Err(Failure::Final(e)) => return Err(e),
            Err(Failure::Stop) => return Ok(()),
            Err(Failure::Retry(e)) => eprintln!("erpsync logs: {e:#}; reconnecting"),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

enum Failure {
    /// Nobody reads the output any more.
    Stop,
    /// Retrying cannot help.
    Final(anyhow::Error),
    /// The connection failed: try again after the last cursor.
    Retry(anyhow::Error),
}

fn status_failure(s: &tonic::Status) -> Failure {
    let e = anyhow::anyhow!("{:?}: {}", s.code(), s.message());
    if is_final(s.code()) {
        Failure::Final(e)
    } else {
        Failure::Retry(e)
    }
}

async fn stream_once(
    server: &str,
    token: &str,
    opts: &LogsOptions,
    after: &mut Option<u64>,
    zone: &mut Option<chrono_tz::Tz>,
    colour: bool,
) -> Result<(), Failure> {
    let mut client = connect(server).await.map_err(Failure::Retry)?;
    let tz = match zone {
        Some(tz) => *tz,
        None => {
            let o = client
                .get_overview(
                    authorized(
                        GetOverviewRequest {
                            tenant_id: opts.tenant.clone(),
                        },
                        token,
                    )
                    .map_err(Failure::Final)?,
                )
                .await
                .map_err(|s| status_failure(&s))?
                .into_inner();
            let tz = o.timezone.parse().unwrap_or(chrono_tz::UTC);
            *zone = Some(tz);
            tz
        }
    };
    let request = StreamLogsRequest {
        tenant_id: opts.tenant.clone(),
        after_cursor: *after,
        follow: opts.follow,
        run_id: opts.run.clone(),
        min_level: opts.level.map_or(LogLevel::Unspecified, LevelArg::proto) as i32,
        since: None,
        stage: opts.stage.clone(),
        table: opts.table.clone(),
    };
    let mut stream = client
        .stream_logs(authorized(request, token).map_err(Failure::Final)?)
        .await
        .map_err(|s| status_failure(&s))?
        .into_inner();
    let mut out = std::io::stdout();
    loop {
        let e = match stream.message().await {
            Ok(Some(e)) => e,
            Ok(None) => return Ok(()),
            Err(s) => return Err(status_failure(&s)),
        };
        *after = Some(e.cursor);
        if e.heartbeat {
            continue;
        }
        let line = log_line(&e, tz, opts.cursors, colour);
        // stdout closed (`| head`): stop quietly.
        if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
            return Err(Failure::Stop);
        }
    }
}

/// One event as a line: local time, level, stage, table, message, fields.
fn log_line(e: &LogEvent, tz: chrono_tz::Tz, cursors: bool, colour: bool) -> String {
    let at =
        e.at.as_ref()
            .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?))
            .map(|t| {
                t.with_timezone(&tz)
                    .format("%Y-%m-%d %H:%M:%S%.3f")
                    .to_string()
            })
            .unwrap_or_default();
    let level = LogLevel::try_from(e.level)
        .map(|l| l.as_str_name().trim_start_matches("LOG_LEVEL_").to_owned())
        .unwrap_or_default();
    let fields = e
        .fields
        .as_ref()
        .filter(|f| !f.fields.is_empty())
        .map(|f| {
            let pairs: Vec<String> = f
                .fields
                .iter()
                .map(|(k, v)| format!("{k}={}", struct_value(v)))
                .collect();
            format!("  {}", pairs.join(" "))
        })
        .unwrap_or_default();
    let table = e.table.as_deref().unwrap_or("");
    let cursor = if cursors {
        format!("{:>10} ", e.cursor)
    } else {
        String::new()
    };
    let text = format!(
        "{at} {level:<5} {:<12} {table:<12} {}{fields}",
        e.stage, e.message
    );
    match (colour, level.as_str()) {
        (true, "ERROR") => format!("{cursor}\x1b[31m{text}\x1b[0m"),
        (true, "WARN") => format!("{cursor}\x1b[33m{text}\x1b[0m"),
        (true, "DEBUG") => format!("{cursor}\x1b[2m{text}\x1b[0m"),
        _ => format!("{cursor}{text}"),
    }
}

fn struct_value(v: &prost_types::Value) -> String {
    use prost_types::value::Kind;
    match &v.kind {
        Some(Kind::StringValue(s)) => s.clone(),
        Some(Kind::NumberValue(n)) => n.to_string(),
        Some(Kind::BoolValue(b)) => b.to_string(),
        Some(Kind::NullValue(_)) | None => "null".into(),
        Some(Kind::ListValue(l)) => format!(
            "[{}]",
            l.values
                .iter()
                .map(struct_value)
                .collect::<Vec<_>>()
                .join(",")
        ),
        Some(Kind::StructValue(s)) => format!(
            "{{{}}}",
            s.fields
                .iter()
                .map(|(k, v)| format!("{k}={}", struct_value(v)))
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}
