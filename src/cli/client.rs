//! Client commands: they call a running erpsync over gRPC with a crm token.

use anyhow::Context;
use tonic::{metadata::MetadataValue, transport::Channel, Request};

use crate::grpc::pb::{
    integration_history_client::IntegrationHistoryClient, GetOverviewRequest, Health,
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
