//! The provisioning commands' `--server` form: `tenant create|update|list|show|delete|
//! export` and `token issue|list|revoke` through a running erpsync's Admin service with an admin
//! token, instead of on the database. Answers are turned back into the domain values the
//! database form prints, so both print the same.

use std::str::FromStr;

use std::pin::Pin;

use anyhow::{anyhow, bail, Context};
use tokio_stream::{Stream, StreamExt};
use tonic::transport::Channel;

use super::client::{authorized, channel};
use crate::domain::abc::{AbcSettings, Basis};
use crate::domain::schedule::{DailyTime, Schedule};
use crate::domain::tenant::{
    parse_timezone, DeploymentStatus, IntegrationType, NewTenant, SettingsInput, Tenant, TenantId,
};
use crate::domain::token::{
    presented, Grant, Presented, Role, TenantScope, TokenInfo, TokenRequest,
};
use crate::grpc::pb::{self, admin_client::AdminClient};
use crate::grpc::wire::{
    deployment_status, deployment_status_from, instant, integration_type, integration_type_from,
    role, role_from,
};
use crate::purge::Deleted;

/// A tenant's export as it arrives, chunks of whole NDJSON lines (from the database or
/// from Admin.ExportTenant); a failure midway ends it.
pub type ExportChunks = Pin<Box<dyn Stream<Item = anyhow::Result<Vec<u8>>> + Send>>;

/// Where a provisioning command goes: the database (without `--server`), or a running
/// erpsync's Admin service.
#[derive(Debug, Clone, clap::Args)]
pub struct Remote {
    /// Go through the Admin service of the erpsync at this address (http://HOST:PORT)
    /// instead of the database; needs an admin token.
    #[arg(long)]
    server: Option<String>,
    /// The admin token for --server (`erpsync token issue --role admin`).
    #[arg(
        long = "token",
        id = "admin_token",
        env = "ERPSYNC_TOKEN",
        hide_env_values = true
    )]
    admin_token: Option<String>,
}

impl Remote {
    /// The Admin client to use; None for the database.
    pub async fn admin(&self) -> anyhow::Result<Option<Admin>> {
        let Some(server) = &self.server else {
            return Ok(None);
        };
        let token = self
            .admin_token
            .clone()
            .ok_or_else(|| anyhow!("--server needs --token (or ERPSYNC_TOKEN): an admin token"))?;
        Ok(Some(Admin {
            client: AdminClient::new(channel(server).await?),
            token,
        }))
    }
}

/// A running erpsync's Admin service, with the admin token to call it.
pub struct Admin {
    client: AdminClient<Channel>,
    token: String,
}

/// A failed call as the command reports it: its code and message (the message names the
/// invalid fields).
fn failed(s: tonic::Status) -> anyhow::Error {
    anyhow!("{:?}: {}", s.code(), s.message())
}

impl Admin {
    /// CreateTenant.
    pub async fn create_tenant(&mut self, new: NewTenant) -> anyhow::Result<Tenant> {
        let s = new.settings;
        let req = pb::CreateTenantRequest {
            tenant_id: new.id,
            name: new.name,
            timezone: new.timezone.unwrap_or_default(),
            erp_name: s.erp_name.unwrap_or_default(),
            erp_version: s.erp_version.unwrap_or_default(),
            integration_type: s.integration_type.map_or(0, |t| integration_type(t) as i32),
            deployment_status: s
                .deployment_status
                .map_or(0, |d| deployment_status(d) as i32),
            business_rule: s.business_rule.unwrap_or_default(),
        };
        let t = self
            .client
            .create_tenant(authorized(req, &self.token)?)
            .await
            .map_err(failed)?;
        tenant_from(t.into_inner())
    }

    /// UpdateTenant with these settings (the schedule left as it is).
    pub async fn update_tenant(&mut self, id: &str, s: SettingsInput) -> anyhow::Result<Tenant> {
        let settings = pb::UpdateSettingsRequest {
            tenant_id: String::new(),
            name: s.name,
            erp_name: s.erp_name,
            erp_version: s.erp_version,
            deployment_status: s
                .deployment_status
                .map_or(0, |d| deployment_status(d) as i32),
            business_rule: s.business_rule,
            integration_type: s.integration_type.map_or(0, |t| integration_type(t) as i32),
            delete_guard_percent: s.delete_guard_percent,
            delete_guard_min_rows: s.delete_guard_min_rows,
            abc_basis: s.abc.basis,
            abc_window_months: s.abc.window_months,
            abc_a_threshold: s.abc.a_threshold,
            abc_b_threshold: s.abc.b_threshold,
            lifecycle_new_days: s.abc.new_days,
            lifecycle_active_days: s.abc.active_days,
            lifecycle_inactive_days: s.abc.inactive_days,
            abc_shift_guard_percent: s.abc.shift_guard_percent,
            abc_shift_guard: s.abc.shift_guard,
            run_history_days: s.run_history_days,
            abc_history_days: s.abc_history_days,
            table_freshness: s
                .table_freshness
                .into_iter()
                .map(|f| pb::TableFreshness {
                    table: f.table,
                    max_age: f
                        .max_age
                        .map(|(seconds, nanos)| prost_types::Duration { seconds, nanos }),
                })
                .collect(),
            clear_table_freshness: s.clear_table_freshness,
            strict_fields: s.strict_fields,
        };
        let req = pb::UpdateTenantRequest {
            tenant_id: id.to_owned(),
            settings: Some(settings),
            schedule: None,
        };
        let t = self
            .client
            .update_tenant(authorized(req, &self.token)?)
            .await
            .map_err(failed)?;
        tenant_from(t.into_inner())
    }

    /// GetTenant.
    pub async fn tenant(&mut self, id: &str) -> anyhow::Result<Tenant> {
        let req = pb::GetTenantRequest {
            tenant_id: id.to_owned(),
        };
        let t = self
            .client
            .get_tenant(authorized(req, &self.token)?)
            .await
            .map_err(failed)?;
        tenant_from(t.into_inner())
    }

    /// Every tenant, by id: ListTenants page after page.
    pub async fn tenants(&mut self) -> anyhow::Result<Vec<Tenant>> {
        let mut out = Vec::new();
        let mut page_token = String::new();
        loop {
            let req = pb::ListTenantsRequest {
                page_size: 1000,
                page_token,
                ..Default::default()
            };
            let page = self
                .client
                .list_tenants(authorized(req, &self.token)?)
                .await
                .map_err(failed)?
                .into_inner();
            for t in page.tenants {
                out.push(tenant_from(t)?);
            }
            if page.next_page_token.is_empty() {
                return Ok(out);
            }
            page_token = page.next_page_token;
        }
    }

    /// IssueToken: the secret and the token as listed.
    pub async fn issue_token(
        &mut self,
        request: TokenRequest,
    ) -> anyhow::Result<(String, TokenInfo)> {
        let (tenant_ids, all_tenants) = match request.scope {
            TenantScope::All => (Vec::new(), request.role != Role::Admin),
            TenantScope::Listed(ids) => (ids.iter().map(ToString::to_string).collect(), false),
        };
        let req = pb::IssueTokenRequest {
            role: role(request.role) as i32,
            tenant_ids,
            all_tenants,
            expires_in_days: request.expires_in_days,
            label: request.label,
        };
        let issued = self
            .client
            .issue_token(authorized(req, &self.token)?)
            .await
            .map_err(failed)?
            .into_inner();
        let token = issued
            .token
            .ok_or_else(|| anyhow!("the server answered IssueToken without the token"))?;
        Ok((issued.secret, token_from(token)?))
    }

    /// Every token, revoked and expired ones included, oldest first (as the database
    /// form lists them): ListTokens page after page.
    pub async fn tokens(&mut self) -> anyhow::Result<Vec<TokenInfo>> {
        let mut out = Vec::new();
        let mut page_token = String::new();
        loop {
            let req = pb::ListTokensRequest {
                include_inactive: true,
                page_size: 1000,
                page_token,
                ..Default::default()
            };
            let page = self
                .client
                .list_tokens(authorized(req, &self.token)?)
                .await
                .map_err(failed)?
                .into_inner();
            for t in page.tokens {
                out.push(token_from(t)?);
            }
            if page.next_page_token.is_empty() {
                out.reverse();
                return Ok(out);
            }
            page_token = page.next_page_token;
        }
    }

    /// RevokeToken of the token `token` names (its id, or the token itself); false when
    /// no active token matches.
    pub async fn revoke_token(&mut self, token: &str) -> anyhow::Result<bool> {
        let token_id = match presented(token) {
            Some(Presented::Salted { id, .. }) => id,
            Some(Presented::Legacy(_)) => bail!(
                "a token issued before salts has no id: revoke it on the database (without --server)"
            ),
            None => token.to_owned(),
        };
        let req = pb::RevokeTokenRequest { token_id };
        Ok(self
            .client
            .revoke_token(authorized(req, &self.token)?)
            .await
            .map_err(failed)?
            .into_inner()
            .revoked)
    }

    /// DeleteTenant: what it removed.
    pub async fn delete_tenant(&mut self, id: &TenantId, force: bool) -> anyhow::Result<Deleted> {
        let req = pb::DeleteTenantRequest {
            tenant_id: id.to_string(),
            force,
        };
        let done = self
            .client
            .delete_tenant(authorized(req, &self.token)?)
            .await
            .map_err(failed)?
            .into_inner();
        Ok(Deleted {
            deleted: done.deleted,
            rows: done.rows_deleted,
        })
    }

    /// ExportTenant: its chunks as they arrive.
    pub async fn export_tenant(&mut self, id: &TenantId) -> anyhow::Result<ExportChunks> {
        let req = pb::ExportTenantRequest {
            tenant_id: id.to_string(),
        };
        let stream = self
            .client
            .export_tenant(authorized(req, &self.token)?)
            .await
            .map_err(failed)?
            .into_inner();
        Ok(Box::pin(
            stream.map(|chunk| chunk.map(|c| c.ndjson).map_err(failed)),
        ))
    }
}

/// A tenant as the server answered it, as the database form reads it.
fn tenant_from(t: pb::Tenant) -> anyhow::Result<Tenant> {
    let ctx = || {
        format!(
            "the server answered tenant {:?} in a form this CLI cannot read",
            t.tenant_id
        )
    };
    let schedule = match t.schedule.clone().unwrap_or_default() {
        s if s.cron.is_empty() => Schedule::daily(
            s.daily_times
                .iter()
                .map(|d| DailyTime::from_str(d))
                .collect::<Result<Vec<_>, _>>()
                .with_context(ctx)?,
        )
        .with_context(ctx)?,
        s => Schedule::cron(&s.cron).with_context(ctx)?,
    };
    let abc = t.abc.clone().unwrap_or_default();
    let decimal = |s: &str| rust_decimal::Decimal::from_str(s).with_context(ctx);
    let window = t.max_time_without_success.unwrap_or_default();
    let timestamp = |at: Option<prost_types::Timestamp>| {
        at.as_ref()
            .and_then(instant)
            .ok_or_else(|| anyhow!("{}: a timestamp", ctx()))
    };
    Ok(Tenant {
        id: TenantId::parse(&t.tenant_id).map_err(|e| anyhow!(e))?,
        timezone: parse_timezone(&t.timezone).map_err(|e| anyhow!(e))?,
        integration_type: integration_type_from(t.integration_type)
            .flatten()
            .unwrap_or(IntegrationType::Api),
        deployment_status: deployment_status_from(t.deployment_status)
            .flatten()
            .unwrap_or(DeploymentStatus::NotStarted),
        schedule,
        max_time_without_success: chrono::Duration::seconds(window.seconds)
            + chrono::Duration::nanoseconds(i64::from(window.nanos)),
        delete_guard: crate::domain::tenant::DeleteGuard {
            percent: t.delete_guard_percent,
            min_rows: t.delete_guard_min_rows,
        },
        abc: AbcSettings {
            basis: Basis::parse(&abc.basis).ok_or_else(|| anyhow!("{}: ABC basis", ctx()))?,
            window_months: abc.window_months,
            a_threshold: decimal(&abc.a_threshold)?,
            b_threshold: decimal(&abc.b_threshold)?,
            new_days: abc.lifecycle_new_days,
            active_days: abc.lifecycle_active_days,
            inactive_days: abc.lifecycle_inactive_days,
            shift_guard_percent: decimal(&abc.shift_guard_percent)?,
            shift_guard: abc.shift_guard,
        },
        retention: crate::domain::retention::Overrides {
            run_history_days: t.run_history_days,
            abc_history_days: t.abc_history_days,
        },
        strict_fields: t.strict_fields,
        created_at: timestamp(t.created_at)?,
        updated_at: timestamp(t.updated_at)?,
        name: t.name,
        erp_name: t.erp_name,
        erp_version: t.erp_version,
        business_rule: t.business_rule,
        active: t.active,
        scheduled: t.scheduled,
    })
}

/// A token as the server listed it, as the database form reads it.
fn token_from(t: pb::Token) -> anyhow::Result<TokenInfo> {
    let Some(role) = role_from(t.role) else {
        bail!("the server listed token {} without a role", t.token_id)
    };
    let scope = if t.all_tenants {
        TenantScope::All
    } else {
        TenantScope::Listed(
            t.tenant_ids
                .iter()
                .map(|id| TenantId::parse(id).map_err(|e| anyhow!(e)))
                .collect::<anyhow::Result<_>>()?,
        )
    };
    Ok(TokenInfo {
        created_at: t
            .created_at
            .as_ref()
            .and_then(instant)
            .ok_or_else(|| anyhow!("token {} has no issue time", t.token_id))?,
        revoked_at: t.revoked_at.as_ref().and_then(instant),
        expires_at: t.expires_at.as_ref().and_then(instant),
        last_used_at: t.last_used_at.as_ref().and_then(instant),
        label: t.label,
        grant: Grant {
            token_id: t.token_id,
            role,
            scope,
        },
    })
}
