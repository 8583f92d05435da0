//! Admin's messages: tenants as provisioned, tokens as listed, and the text fields of
//! Admin's requests (checked like IntegrationHistory's, see [`super::RequestText`]).

use super::super::pb;
use super::tenant::{
    abc_settings, deployment_status, deployment_status_from, health, integration_type,
    integration_type_from, schedule,
};
use super::text::RequestText;
use super::values::{duration, tenant_ids, timestamp};
use crate::domain::tenant::{Health, NewTenant, SettingsInput};
use crate::domain::text::{MAX_ID_CHARS, MAX_SHORT_CHARS};
use crate::domain::token::{Role, TenantScope, TokenInfo, TokenRequest};
use crate::error::FieldViolation;
use crate::tenants::TenantInfo;

/// A tenant as Admin answers it.
pub fn tenant(info: TenantInfo) -> pb::Tenant {
    let t = info.tenant;
    pb::Tenant {
        tenant_id: t.id.to_string(),
        name: t.name,
        timezone: t.timezone.name().to_owned(),
        erp_name: t.erp_name,
        erp_version: t.erp_version,
        integration_type: integration_type(t.integration_type) as i32,
        deployment_status: deployment_status(t.deployment_status) as i32,
        business_rule: t.business_rule,
        active: t.active,
        scheduled: t.scheduled,
        schedule: Some(schedule(&t.schedule)),
        max_time_without_success: Some(duration(t.max_time_without_success)),
        delete_guard_percent: t.delete_guard.percent,
        delete_guard_min_rows: t.delete_guard.min_rows,
        abc: Some(abc_settings(&t.abc)),
        health: health(info.health) as i32,
        crm_sink: info.crm_sink,
        created_at: Some(timestamp(t.created_at)),
        updated_at: Some(timestamp(t.updated_at)),
        run_history_days: t.retention.run_history_days,
        abc_history_days: t.retention.abc_history_days,
        strict_fields: t.strict_fields,
    }
}

/// The domain health of a request field: Some(None) when unspecified, None when the
/// number is not a value of the enum.
pub fn health_from(v: i32) -> Option<Option<Health>> {
    Some(match pb::Health::try_from(v).ok()? {
        pb::Health::Unspecified => None,
        pb::Health::Healthy => Some(Health::Healthy),
        pb::Health::Stale => Some(Health::Stale),
        pb::Health::Failing => Some(Health::Failing),
        pb::Health::Inactive => Some(Health::Inactive),
        pb::Health::NeverRun => Some(Health::NeverRun),
        pb::Health::Degraded => Some(Health::Degraded),
    })
}

/// The tenant a CreateTenant asks for, for the domain to validate; an enum number that
/// is no value of its enum is a violation of its field.
pub fn new_tenant(req: pb::CreateTenantRequest) -> Result<NewTenant, Vec<FieldViolation>> {
    let mut violations = Vec::new();
    let integration_type = integration_type_from(req.integration_type).unwrap_or_else(|| {
        violations.push(FieldViolation::new("integration_type", "unknown value"));
        None
    });
    let deployment_status = deployment_status_from(req.deployment_status).unwrap_or_else(|| {
        violations.push(FieldViolation::new("deployment_status", "unknown value"));
        None
    });
    if !violations.is_empty() {
        return Err(violations);
    }
    let optional = |s: String| (!s.is_empty()).then_some(s);
    Ok(NewTenant {
        id: req.tenant_id,
        name: req.name,
        timezone: optional(req.timezone),
        settings: SettingsInput {
            erp_name: optional(req.erp_name),
            erp_version: optional(req.erp_version),
            business_rule: optional(req.business_rule),
            integration_type,
            deployment_status,
            ..SettingsInput::default()
        },
    })
}

/// `violations` of a nested message, their fields under `prefix` ("settings.name").
pub fn nested(prefix: &str, violations: Vec<FieldViolation>) -> Vec<FieldViolation> {
    violations
        .into_iter()
        .map(|v| FieldViolation::new(format!("{prefix}.{}", v.field), v.description))
        .collect()
}

/// The wire form of a token role.
pub fn role(r: Role) -> pb::TokenRole {
    match r {
        Role::Crm => pb::TokenRole::Crm,
        Role::Erp => pb::TokenRole::Erp,
        Role::Admin => pb::TokenRole::Admin,
    }
}

/// The token role of a wire value; None when unspecified or unknown.
pub fn role_from(v: i32) -> Option<Role> {
    match pb::TokenRole::try_from(v).ok()? {
        pb::TokenRole::Crm => Some(Role::Crm),
        pb::TokenRole::Erp => Some(Role::Erp),
        pb::TokenRole::Admin => Some(Role::Admin),
        pb::TokenRole::Unspecified => None,
    }
}

/// The token an IssueToken asks for, for the domain to check (see
/// [`TokenRequest::check`]); a role that is missing or unknown, or a tenant id that does
/// not parse, is a violation of its field.
pub fn token_request(req: pb::IssueTokenRequest) -> Result<TokenRequest, Vec<FieldViolation>> {
    let mut violations = Vec::new();
    let role = role_from(req.role);
    if role.is_none() {
        violations.push(FieldViolation::new(
            "role",
            "set TOKEN_ROLE_CRM, TOKEN_ROLE_ERP or TOKEN_ROLE_ADMIN",
        ));
    }
    let tenants = tenant_ids(&req.tenant_ids, &mut violations);
    let Some(role) = role.filter(|_| violations.is_empty()) else {
        return Err(violations);
    };
    Ok(TokenRequest {
        role,
        scope: TenantScope::requested(role, tenants, req.all_tenants),
        expires_in_days: req.expires_in_days,
        label: req.label,
    })
}

/// A token as Admin lists it: never its secret nor its hash.
pub fn token(t: TokenInfo) -> pb::Token {
    let (tenant_ids, all_tenants) = match t.grant.scope {
        TenantScope::All => (Vec::new(), true),
        TenantScope::Listed(ids) => (ids.iter().map(ToString::to_string).collect(), false),
    };
    pb::Token {
        token_id: t.grant.token_id,
        role: role(t.grant.role) as i32,
        tenant_ids,
        all_tenants,
        label: t.label,
        created_at: Some(timestamp(t.created_at)),
        expires_at: t.expires_at.map(timestamp),
        revoked_at: t.revoked_at.map(timestamp),
        last_used_at: t.last_used_at.map(timestamp),
    }
}

/// A tenant's own sink as SetTenantSink answers it (never its secret).
pub fn tenant_sink(v: crate::worker::tenant_sink::TenantSinkView) -> pb::TenantSink {
    pb::TenantSink {
        tenant_id: v.tenant.to_string(),
        address: v.address.unwrap_or_default(),
        has_secret: v.has_secret,
    }
}

fn field<'a>(name: &str, value: &'a str, max: usize) -> (String, &'a str, usize) {
    (name.to_owned(), value, max)
}

/// Requests whose texts are checked by their own rules: tenant ids by
/// [`TenantId::parse`], a new tenant's names by the settings' rule, a label by the
/// token's.
macro_rules! no_text {
    ($($t:ty),*) => {$(
        impl RequestText for $t {
            fn fields(&self) -> Vec<(String, &str, usize)> {
                Vec::new()
            }
        }
    )*};
}

no_text!(pb::GetTenantRequest, pb::IssueTokenRequest);

impl RequestText for pb::CreateTenantRequest {
    fn fields(&self) -> Vec<(String, &str, usize)> {
        vec![field("timezone", &self.timezone, MAX_SHORT_CHARS)]
    }
}

impl RequestText for pb::UpdateTenantRequest {
    fn fields(&self) -> Vec<(String, &str, usize)> {
        self.schedule
            .as_ref()
            .map(|s| {
                s.fields()
                    .into_iter()
                    .map(|(f, v, max)| (format!("schedule.{f}"), v, max))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl RequestText for pb::ListTenantsRequest {
    fn fields(&self) -> Vec<(String, &str, usize)> {
        vec![field("page_token", &self.page_token, MAX_SHORT_CHARS)]
    }
}

impl RequestText for pb::ListTokensRequest {
    fn fields(&self) -> Vec<(String, &str, usize)> {
        vec![field("page_token", &self.page_token, MAX_SHORT_CHARS)]
    }
}

impl RequestText for pb::RevokeTokenRequest {
    fn fields(&self) -> Vec<(String, &str, usize)> {
        vec![field("token_id", &self.token_id, MAX_ID_CHARS)]
    }
}
