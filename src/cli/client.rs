//! Client commands: they call a running erpsync over gRPC with a crm token.

use anyhow::Context;
use tonic::{metadata::MetadataValue, transport::Channel, Request};

use crate::grpc::pb::{
    integration_history_client::IntegrationHistoryClient, ExportHistoryRequest, ExportKind,
    GetOverviewRequest, GetRunRequest, Health, RunStatus, TriggerSyncRequest,
};

async fn connect(server: &str) -> anyhow::Result<IntegrationHistoryClient<Channel>> {
    let channel = Channel::from_shared(server.to_owned())
        .with_context(|| format!("invalid server address {server:?}"))?
        .connect()
        .await
        .with_context(|| format!("cannot reach erpsync at {server}"))?;
    Ok(IntegrationHistoryClient::new(channel))
}

fn authorized<T>(msg: T, token: &str) -> anyhow::Result<Request<T>> {
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
    let health = Health::try_from(o.health)
        .map(|h| h.as_str_name().trim_start_matches("HEALTH_").to_owned())
        .unwrap_or_default();
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
    println!(
        "average duration:  {}",
        o.average_duration
            .map(|d| format!("{}s", d.seconds))
            .unwrap_or_else(|| "none".into())
    );
    println!("open alerts:       {}", o.open_alerts.len());
    println!("recent runs:       {}", o.recent_runs.len());
    Ok(())
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
            println!("{:>12}{table} {}", e.stage, e.message);
        }
        printed = got.log.len();
        let run = got.run.unwrap_or_default();
        if run.status() != RunStatus::Running {
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
        }
        anyhow::Ok(())
    };
    tokio::select! {
        r = received => r?,
        _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted; nothing was written"),
    }
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
